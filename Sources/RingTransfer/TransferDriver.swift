import Glibc
import RingportCore

/// The driver side of a transfer, written as a NetAdapterCx transmit queue's Advance (RtEthSample):
/// post (walk the post section, check each packet's fragments and payload, mark it done in `Scratch`),
/// then drain (return everything posted: fragments first, then packets).
package struct TransferDriver {
    package let plan: TransferPlan
    package let rings: NetRingCollection
    package let data: DataArea
    package private(set) var received: UInt64 = 0
    package private(set) var bytes = 0

    package init(plan: TransferPlan, rings: TransferRings, checked: Bool = NetRingChecking.isEnabledByDefault) {
        self.plan = plan
        self.rings = NetRingCollection(packetRing: rings.packetRing, fragmentRing: rings.fragmentRing, checked: checked)
        data = rings.data
    }

    /// Runs until every planned packet was received and returned. `stallMicroseconds` sleeps after each
    /// Advance that moved packets: a slow driver, for tests of the OS side's patience.
    package mutating func run(timeoutSeconds: Double = 60, spins: Int = 256, stallMicroseconds: Int = 0) throws {
        var backoff = Backoff(timeoutSeconds: timeoutSeconds, spins: spins)
        let total = UInt64(plan.packets)
        while received < total {
            if try advance() > 0 {
                backoff.progressed()
                if stallMicroseconds > 0 { usleep(UInt32(stallMicroseconds)) }
            } else if !backoff.pause() {
                throw TransferFailure("driver side: no packet for \(timeoutSeconds) s after \(received)")
            }
        }
    }

    /// One Advance: returns how many packets it posted and returned.
    package mutating func advance() throws -> Int {
        var packets = rings.postPackets()
        guard packets.hasAny else { return 0 }
        var fragmentEnd = rings.fragmentRing.loadNextIndex()
        var count = 0
        while packets.hasAny {
            let packet = packets.packet
            try check(packet, packets.fragments())
            if packet.fragmentCount > 0 {
                fragmentEnd = packets.fragments().end
            }
            packet.scratch = true
            packets.advance()
            count += 1
        }
        try packets.set()
        try rings.setFragmentNextIndex(to: fragmentEnd)

        // Completion is in ring order and everything posted is done: return it all, fragments first.
        var drain = rings.drainPackets()
        drain.advanceToTheEnd()
        try rings.setFragmentBeginIndex(to: fragmentEnd)
        try drain.set()
        return count
    }

    mutating func check(_ packet: NetPacket, _ fragments: NetPacketFragmentIterator) throws {
        let sequence = received
        guard packet.descriptor == UInt32(truncatingIfNeeded: sequence), !packet.ignore else {
            throw TransferFailure("packet \(packet.descriptor) (ignore \(packet.ignore)) arrived, expected \(sequence)")
        }
        var shape = plan.shape(of: sequence)
        guard Int(packet.fragmentCount) == shape.fragmentCount, Int(fragments.count) == shape.fragmentCount else {
            throw TransferFailure(
                "packet \(sequence): \(packet.fragmentCount) fragments, expected \(shape.fragmentCount)")
        }
        var fragments = fragments
        var f = 0
        while fragments.hasAny {
            let fragment = fragments.fragment
            let (length, _) = shape.nextFragment()
            guard let span = data.span(of: fragment), span.count == length else {
                throw TransferFailure("packet \(sequence) fragment \(f): bad span or length \(fragment.validLength)")
            }
            if plan.payload {
                let fragmentNumber = f
                let good = data.withBytes(span) { bytes in
                    var ok = true
                    for i in 0..<bytes.count where bytes[i] != TransferPlan.byte(sequence, fragmentNumber, i) {
                        ok = false
                    }
                    return ok
                }
                guard good else { throw TransferFailure("packet \(sequence) fragment \(f): payload differs") }
            }
            bytes += span.count
            fragments.advance()
            f += 1
        }
        received += 1
    }
}
