import RingportCore
import RingportSystem

/// A batch being written past the transmit rings' `EndIndex`, published by one store per ring.
struct TransmitBatch {
    var packets = 0
    var fragments = 0
    var freePackets: Int
    var freeFragments: Int
    /// Whether the fragment ring's `BeginIndex` was read again for this batch (once at most).
    var refreshed = false
    /// A broken ring contract seen while staging: nothing is published and the binding closes.
    var failure: String?

    @inline(__always) init(freePackets: Int, freeFragments: Int) {
        self.freePackets = freePackets
        self.freeFragments = freeFragments
    }
}

extension Adapter {
    /// `NdisSendPackets`: gives every packet of `packets` to the miniport, in order. The packets, their
    /// buffers and their OOB blocks are the miniport's until each comes back through a completion; every
    /// packet gets exactly one completion, with its status (`INVALID_PACKET` for one that cannot be
    /// translated, `CLOSING` once the binding is closing). A packet of another binding is not sent: this
    /// binding records a `.foreignBinding` misuse and is otherwise unchanged, and the packet completes on
    /// its own binding with `INVALID_PACKET` (through that binding's next poll).
    public func send(_ packets: consuming PacketArray) {
        var packets = packets
        send(&packets)
    }

    /// Sends and empties `packets`, keeping its capacity for the next batch.
    public func send(_ packets: inout PacketArray) {
        var batch = TransmitBatch(freePackets: transmit.freePackets, freeFragments: transmit.freeFragments)
        stageBacklog(&batch)
        var used = 0
        for i in 0..<packets.packets.count where submit(packets.packets[i], &batch) { used += 1 }
        packets.packets.removeAll()
        publish(batch)
        handleDropped(used)
    }

    /// Sends one packet (`NdisSendPackets` with an array of one).
    public func send(_ packet: consuming Packet) {
        var batch = TransmitBatch(freePackets: transmit.freePackets, freeFragments: transmit.freeFragments)
        stageBacklog(&batch)
        let used = submit(packet.take(), &batch)
        publish(batch)
        handleDropped(used ? 1 : 0)
    }

    /// The runtime ownership checks (Docs/Design.md, invariant 3): the handle must be this binding's,
    /// current, and held. A packet that passes is the miniport's: written into `batch` if nothing waits
    /// before it and it fits, else backlogged. Returns whether the handle was used up here (sent, or dropped
    /// as stale); the caller drops those from the live-handle count.
    func submit(_ raw: RawPacket, _ batch: inout TransmitBatch) -> Bool {
        guard raw.binding.refers(to: self) else {
            // Another binding's packet: recorded here, this binding untouched; it completes on its own.
            misuses.append(PacketMisuse(kind: .foreignBinding, descriptor: raw.index))
            // A stale one is dropped from its binding's count, after the call (it may be the last handle).
            if !raw.binding({ $0.completeForeign(raw) }) { raw.binding.dropHandle { _ in } }
            return false
        }
        let index = raw.index
        guard generation[index] == raw.generation, owner[index] == .protocolSide else {
            // A forged or stale handle: the real packet (if any) still gets its one completion.
            misuses.append(
                PacketMisuse(kind: generation[index] == raw.generation ? .alreadySent : .stale, descriptor: index))
            return true
        }
        guard state == .open else {
            localCompletions.append((raw, .closing))
            return false
        }
        owner[index] = .miniport
        let descriptor = regions.descriptors[index]
        descriptor.owner = .miniport
        descriptor.status = .pending
        outstandingSends += 1
        if backlog.isEmpty && stage(index, &batch) { return true }
        backlog.append(Int32(index))
        return true
    }

    /// A packet of this binding was sent on another one: it completes here with `INVALID_PACKET` (next
    /// poll), if the handle is still this binding's current one.
    /// Returns false for a stale handle, whose count the caller then drops.
    func completeForeign(_ raw: RawPacket) -> Bool {
        let index = raw.index
        guard generation[index] == raw.generation, owner[index] == .protocolSide else {
            misuses.append(
                PacketMisuse(kind: generation[index] == raw.generation ? .alreadySent : .stale, descriptor: index))
            return false
        }
        localCompletions.append((raw, .invalidPacket))
        return true
    }

    /// Translates backlogged packets into the transmit rings, as many as fit, and publishes them with one
    /// `EndIndex` store per ring; wakes the miniport if it sleeps.
    func flushBacklog() {
        guard !backlog.isEmpty else { return }
        var batch = TransmitBatch(freePackets: transmit.freePackets, freeFragments: transmit.freeFragments)
        stageBacklog(&batch)
        publish(batch)
    }

    /// Writes the backlog, oldest first, into `batch` while it fits.
    func stageBacklog(_ batch: inout TransmitBatch) {
        guard !backlog.isEmpty else { return }
        // Closing refuses new sends, not the ones already made: the backlog still goes out.
        if case .closed = state { return }
        while !backlog.isEmpty && stage(Int(backlog[0]), &batch) { backlog.removeFirst() }
    }

    /// Writes packet `index`'s element (and its fragments) after those of `batch`, from this side's own
    /// record of the chain; false, nothing written, if the rings have no room for it. Each element is
    /// written whole, once.
    func stage(_ index: Int, _ batch: inout TransmitBatch) -> Bool {
        guard batch.packets < batch.freePackets, batch.failure == nil else { return false }
        let count = Int(chainCount[index])
        let translatable = count >= 1 && count <= transmitFragmentLimit && chainLength[index] > 0
        if translatable && batch.fragments + count > batch.freeFragments {
            // Full by the cached view: read the miniport's fragment `BeginIndex` again, once per batch.
            guard !batch.refreshed else { return false }
            batch.refreshed = true
            do { _ = try transmit.reclaimFragments() } catch {
                batch.failure = "the miniport broke the ring contract: \(error)"
                return false
            }
            batch.freeFragments = transmit.freeFragments
            guard batch.fragments + count <= batch.freeFragments else { return false }
        }
        let slot = transmit.packetRing.advance(transmit.packetEnd, by: Int32(batch.packets))
        let first = transmit.fragmentRing.advance(transmit.fragmentEnd, by: Int32(batch.fragments))
        slotDescriptor[Int(slot)] = Int32(index)
        slotIgnored[Int(slot)] = !translatable
        let element = transmit.packet(at: slot)
        if translatable {
            let capacity = UInt32(configuration.chunkSize)
            var buffer = chainHead[index]
            var k = first
            while buffer != BufferTable.none {
                let b = Int(buffer)
                transmit.fragment(at: k).fill(
                    validLength: bufferLength[b],
                    capacity: capacity,
                    chunk: buffer,
                    offset: UInt16(truncatingIfNeeded: bufferOffset[b])
                )
                k = transmit.fragmentRing.increment(k)
                buffer = bufferNext[b]
            }
            element.fill(fragmentIndex: first, fragmentCount: UInt16(count), ignore: false, descriptor: UInt32(index))
            batch.fragments += count
        } else {
            // The OS could not translate it: Ignore, no fragments.
            element.fill(fragmentIndex: first, fragmentCount: 0, ignore: true, descriptor: UInt32(index))
        }
        batch.packets += 1
        return true
    }

    /// Publishes `batch` (one `EndIndex` store per ring) and wakes the miniport if it sleeps. If the batch
    /// cannot be published, its packets go back before the backlog, in order, and complete with it as the
    /// binding closes.
    func publish(_ batch: TransmitBatch) {
        var failure = batch.failure
        if failure == nil && batch.packets > 0 {
            do { try transmit.publish(packets: batch.packets, fragments: batch.fragments) } catch {
                failure = "ring: \(error)"
            }
        }
        if let failure {
            for k in (0..<batch.packets).reversed() {
                let slot = Int(transmit.packetRing.advance(transmit.packetEnd, by: Int32(k)))
                backlog.prepend(slotDescriptor[slot])
                slotDescriptor[slot] = -1
            }
            abandon(reason: failure, reclaimingReturned: false)
            return
        }
        guard batch.packets > 0 else { return }
        regions.control.miniportWake.wakeIfNeeded()
    }
}
