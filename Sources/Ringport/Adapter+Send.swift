import RingportCore
import RingportSystem

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
        for raw in packets.packets { submit(raw) }
        packets.packets.removeAll(keepingCapacity: true)
        flushBacklog()
    }

    /// Sends one packet (`NdisSendPackets` with an array of one).
    public func send(_ packet: consuming Packet) {
        submit(packet.take())
        flushBacklog()
    }

    /// The runtime ownership checks (DESIGN.md I3): the handle must be this binding's, current, and held.
    func submit(_ raw: RawPacket) {
        guard raw.adapter === self else {
            // Another binding's packet: recorded here, this binding untouched; it completes on its own.
            misuses.append(PacketMisuse(kind: .foreignBinding, descriptor: raw.index))
            raw.adapter.completeForeign(raw)
            return
        }
        let index = raw.index
        guard generation[index] == raw.generation, owner[index] == .protocolSide else {
            // A forged or stale handle: the real packet (if any) still gets its one completion.
            misuses.append(
                PacketMisuse(kind: generation[index] == raw.generation ? .alreadySent : .stale, descriptor: index))
            return
        }
        guard state == .open else {
            localCompletions.append((raw, .closing))
            return
        }
        owner[index] = .miniport
        let descriptor = regions.descriptors[index]
        descriptor.owner = .miniport
        descriptor.status = .pending
        backlog.append(Int32(index))
        outstandingSends += 1
    }

    /// A packet of this binding was sent on another one: it completes here with `INVALID_PACKET` (next
    /// poll), if the handle is still this binding's current one.
    func completeForeign(_ raw: RawPacket) {
        let index = raw.index
        guard generation[index] == raw.generation, owner[index] == .protocolSide else {
            misuses.append(
                PacketMisuse(kind: generation[index] == raw.generation ? .alreadySent : .stale, descriptor: index))
            return
        }
        localCompletions.append((raw, .invalidPacket))
    }

    /// Translates backlogged packets into the transmit rings, as many as fit, and publishes them with one
    /// `EndIndex` store per ring; wakes the miniport if it sleeps.
    func flushBacklog() {
        // Closing refuses new sends, not the ones already made: the backlog still goes out.
        guard backlogStart < backlog.count else { return }
        if case .closed = state { return }
        let fragmentLimit = min(configuration.fragmentsPerPacket, Int(transmit.fragmentRing.elementIndexMask))
        var packets = 0
        var fragments = 0
        let freePackets = transmit.freePackets
        let freeFragments = transmit.freeFragments
        while backlogStart < backlog.count && packets < freePackets {
            let index = Int(backlog[backlogStart])
            let count = Int(chainCount[index])
            let translatable = count >= 1 && count <= fragmentLimit && chainLength[index] > 0
            if translatable && fragments + count > freeFragments { break }
            let element = transmit.stagedPacket(packets)
            element.reset()
            element.descriptor = UInt32(index)
            slotDescriptor[Int(element.index)] = Int32(index)
            slotIgnored[Int(element.index)] = !translatable
            element.fragmentIndex = transmit.stagedFragmentIndex(fragments)
            if translatable {
                element.fragmentCount = UInt16(count)
                var buffer = chainHead[index]
                while buffer != BufferTable.none {
                    let fragment = transmit.stagedFragment(fragments)
                    fragment.reset()
                    fragment.chunk = buffer
                    fragment.offset = UInt16(bufferOffset[Int(buffer)])
                    fragment.validLength = bufferLength[Int(buffer)]
                    fragment.capacity = UInt32(configuration.chunkSize)
                    fragments += 1
                    buffer = bufferNext[Int(buffer)]
                }
            } else {
                element.ignore = true  // the OS could not translate it: Ignore, no fragments
            }
            packets += 1
            backlogStart += 1
        }
        if packets > 0 {
            do {
                try transmit.publish(packets: packets, fragments: fragments)
            } catch {
                // Nothing was published: the staged packets are still the backlog's and complete with it.
                backlogStart -= packets
                abandon(reason: "ring: \(error)", reclaimingReturned: false)
                return
            }
        }
        if backlogStart == backlog.count {
            backlog.removeAll(keepingCapacity: true)
            backlogStart = 0
        }
        guard packets > 0 else { return }
        regions.control.miniportWake.wakeIfNeeded()
    }
}
