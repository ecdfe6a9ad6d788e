import RingportCore

/// The OS side of a transfer: fills packets and their payload, publishes them in batches, and takes them
/// back in order, checking each returned packet is the next one sent and was marked done by the driver.
package struct TransferOS {
    package let plan: TransferPlan
    package let rings: TransferRings
    var queue: OSRingQueue
    /// A fault to inject, to show the driver side detects it.
    package var fault: TransferFault?

    package init(plan: TransferPlan, rings: TransferRings, checked: Bool = NetRingChecking.isEnabledByDefault) {
        self.plan = plan
        self.rings = rings
        queue = OSRingQueue(packetRing: rings.packetRing, fragmentRing: rings.fragmentRing, checked: checked)
    }

    /// Runs until every packet came back; returns the number of payload bytes sent. Gives up after
    /// `timeoutSeconds` without progress (not in total: a long run on a slow machine is fine).
    /// `isPeerAlive` is asked while idle: a dead driver ends the run at once instead of at the timeout.
    package mutating func run(
        timeoutSeconds: Double = 60,
        spins: Int = 256,
        isPeerAlive: () -> Bool = { true }
    ) throws -> Int {
        var sent: UInt64 = 0
        var completed: UInt64 = 0
        var bytes = 0
        var failure: TransferFailure?
        var backoff = Backoff(timeoutSeconds: timeoutSeconds, spins: spins)
        let total = UInt64(plan.packets)
        while completed < total {
            var progress = false
            let returned = try queue.reclaimPackets { packet in
                if failure == nil && (packet.descriptor != UInt32(truncatingIfNeeded: completed) || !packet.scratch) {
                    failure = TransferFailure(
                        "returned packet \(packet.descriptor) (scratch \(packet.scratch)), expected \(completed)"
                    )
                }
                completed += 1
            }
            if let failure { throw failure }
            _ = try queue.reclaimFragments()
            if returned > 0 { progress = true }

            var packets = 0
            var fragments = 0
            while sent < total, packets < plan.batch, packets < queue.freePackets {
                var shape = plan.shape(of: sent)
                guard shape.fragmentCount <= queue.freeFragments - fragments else { break }
                let packet = queue.stagedPacket(packets)
                packet.reset()
                packet.fragmentIndex = queue.stagedFragmentIndex(fragments)
                packet.fragmentCount = UInt16(shape.fragmentCount)
                packet.descriptor = UInt32(truncatingIfNeeded: sent)
                for f in 0..<shape.fragmentCount {
                    let (length, offset) = shape.nextFragment()
                    let fragment = queue.stagedFragment(fragments)
                    fragment.reset()
                    fragment.chunk = fragment.index
                    fragment.capacity = UInt32(rings.data.chunkSize)
                    fragment.offset = UInt16(offset)
                    fragment.validLength = UInt32(length)
                    if plan.payload {
                        let sequence = sent
                        rings.data.withBytes(rings.data.span(of: fragment)!) { bytes in
                            for i in 0..<bytes.count { bytes[i] = TransferPlan.byte(sequence, f, i) }
                        }
                    }
                    inject(fragment, sequence: sent, fragment: f)
                    bytes += length
                    fragments += 1
                }
                packets += 1
                sent += 1
            }
            if packets > 0 {
                try queue.publish(packets: packets, fragments: fragments)
                progress = true
            }
            if progress {
                backoff.progressed()
            } else if !backoff.pause() {
                throw TransferFailure(
                    "OS side: no progress for \(timeoutSeconds) s (sent \(sent), completed \(completed))")
            } else if backoff.idle & 1023 == 0 && !isPeerAlive() {
                throw TransferFailure("OS side: the driver is gone (sent \(sent), completed \(completed))")
            }
        }
        return bytes
    }

    func inject(_ fragment: NetFragment, sequence: UInt64, fragment number: Int) {
        guard number == 0 else { return }
        switch fault {
        case .payloadByte(let packet) where packet == sequence && plan.payload:
            rings.data.withBytes(rings.data.span(of: fragment)!) { $0[0] ^= 0xFF }
        case .chunkOutOfRange(let packet) where packet == sequence:
            fragment.chunk = UInt32(rings.data.chunkCount + 5)
        default:
            break
        }
    }
}

/// A fault the OS side injects into one packet.
package enum TransferFault: Sendable, Equatable {
    /// Flip the first payload byte of the packet's first fragment.
    case payloadByte(packet: UInt64)
    /// Point the packet's first fragment at a chunk past the end of the data area.
    case chunkOutOfRange(packet: UInt64)
}
