public import RingportCore
import RingportSystem

/// The miniport framework as a driver sees it (the NDIS library's `NdisM*` calls): completing packets,
/// signalling resources, reading a packet in place. Used on the data thread only.
public final class MiniportContext {
    let driver: any MiniportDriver
    // The driver's model, found once: a dynamic cast per turn costs more than the turn.
    let ringDriver: (any RingDriver)?
    let arrayDriver: (any SendPacketsHandler)?
    let singleDriver: (any SendHandler)?
    let serialized: Bool
    let maxSendPackets: Int
    @exclusivity(unchecked) var bindings: [MiniportBinding] = []
    var bindingIndex: [UInt64: Int] = [:]
    @exclusivity(unchecked) var batch: [MiniportPacket] = []
    @exclusivity(unchecked) var statuses: [NDISStatus] = []
    var verificationErrors: UInt64 = 0
    var unknownCompletions: UInt64 = 0
    var log: (String) -> Void

    init(driver: any MiniportDriver, log: @escaping (String) -> Void) {
        self.driver = driver
        self.log = log
        ringDriver = driver as? any RingDriver
        arrayDriver = driver as? any SendPacketsHandler
        singleDriver = driver as? any SendHandler
        if let ndis = driver as? any NDISDriver {
            serialized = ndis.isSerialized
            maxSendPackets = max(1, ndis.maxSendPackets)
        } else {
            serialized = true
            maxSendPackets = 1
        }
    }

    // MARK: For drivers

    /// `NdisMSendComplete`: the driver is done with `packet`. Refused (and counted) if the packet is not
    /// pending: completed twice, or its binding is gone.
    public func sendComplete(_ packet: MiniportPacket, status: NDISStatus) {
        guard let binding = binding(packet.binding), let slot = pendingSlot(binding, packet) else {
            unknownCompletions += 1
            return
        }
        complete(binding, slot: slot, descriptor: packet.descriptor, status: status)
        // NDIS resubmits what RESOURCES held back after the next send-complete, whichever binding it is
        // for: the requeue belongs to the miniport, not to one binding.
        for binding in bindings { binding.blocked = false }
    }

    /// `NdisMSendResourcesAvailable`: resubmit what `RESOURCES` held back, on every binding.
    public func sendResourcesAvailable() {
        for binding in bindings { binding.blocked = false }
    }

    /// Reads a pending packet in place: its OOB block, flags and payload fragments (checked against the
    /// data area). Nil if the packet is not pending.
    public func withPacket<R>(_ packet: MiniportPacket, _ body: (PacketView) throws -> R) rethrows -> R? {
        guard let binding = binding(packet.binding), let slot = pendingSlot(binding, packet) else { return nil }
        let element = binding.rings.packet(at: slot)
        var spans: [Range<Int>] = []
        var index = element.fragmentIndex & binding.rings.fragmentRing.elementIndexMask
        for _ in 0..<Int(element.fragmentCount) {
            guard let span = binding.regions.data.span(of: binding.rings.fragment(at: index)) else { return nil }
            spans.append(span)
            index = binding.rings.fragmentRing.increment(index)
        }
        let view = PacketView(
            descriptor: binding.regions.descriptors[packet.descriptor],
            fragments: spans,
            data: binding.regions.data
        )
        return try body(view)
    }

    /// The ids of the bindings now open.
    public var bindingIDs: [UInt64] { bindings.map(\.id) }

    /// What `indicateReceive` did.
    public enum Delivery: Sendable, Equatable {
        case delivered
        /// The receiver has no posted buffer now (back-pressure, or a drop by the driver's policy).
        case noBuffer
        /// The packet is larger than a receive buffer, or malformed: it cannot be delivered.
        case unfit
        case unknownBinding
    }

    /// Indicates a frame of the driver's own (`NdisMIndicateReceivePacket` with one buffer): copies `bytes`
    /// into `receiver`'s next posted buffer and returns it as a received packet.
    public func indicateReceive(_ bytes: UnsafeRawBufferPointer, to receiver: UInt64) -> Delivery {
        deliver(to: receiver, length: bytes.count) { destination in destination.copyMemory(from: bytes) }
    }

    /// A binding's receive queue, for ring-style drivers that drain and post with the Rx iterators themselves.
    public func receiveQueue(_ binding: UInt64) -> ReceiveQueue? {
        self.binding(binding).map { ReceiveQueue(binding: $0.id, rings: $0.receive, regions: $0.regions) }
    }

    /// Indicates a copy of `packet` (a pending send, read in place) to `receiver`: copies its payload into
    /// the receiver's next posted buffer and returns it as a received packet, through the receive queue's
    /// iterators (drain then post, one buffer per packet). Exactly one copy between two protocols.
    public func indicateReceive(_ packet: MiniportPacket, to receiver: UInt64) -> Delivery {
        let fits: Int?? = withPacket(packet) { view -> Int? in view.totalLength }
        guard let length = fits ?? nil else { return .unfit }
        return deliver(to: receiver, length: length) { destination in
            _ = withPacket(packet) { view in
                var at = 0
                for i in 0..<view.fragmentCount {
                    view.withFragmentBytes(i) { source in
                        UnsafeMutableRawBufferPointer(rebasing: destination[at..<at + source.count]).copyMemory(
                            from: source)
                        at += source.count
                    }
                }
            }
        }
    }

    /// Fills the receiver's next posted buffer with `length` bytes written by `fill`, and returns it with a
    /// packet (drain then post, one buffer per packet), through the receive queue's iterators.
    func deliver(to receiver: UInt64, length: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) -> Delivery {
        guard let destination = binding(receiver) else { return .unknownBinding }
        let rx = destination.receive
        var buffers = rx.postFragments()
        var slots = rx.allPackets()
        guard buffers.hasAny, slots.hasAny else { return .noBuffer }
        let buffer = buffers.fragment
        let data = destination.regions.data
        // The OS attached the buffer: its chunk and capacity are checked, never trusted.
        guard Int(buffer.chunk) < data.chunkCount, Int(buffer.capacity) <= data.chunkSize,
            length <= Int(buffer.capacity)
        else { return .unfit }
        let start = Int(buffer.chunk) * data.chunkSize
        data.withBytes(start..<start + length) { fill($0) }
        buffer.offset = 0
        buffer.validLength = UInt32(length)
        let element = slots.packet
        element.fragmentIndex = buffer.index
        element.fragmentCount = 1
        element.layout = NetPacketLayout(layer2Type: .ethernet)
        element.ignore = false
        buffers.advance()
        slots.advance()
        do {
            try buffers.set()  // posted (NextIndex) ...
            var drain = rx.drainFragments()
            drain.advanceToTheEnd()
            try drain.set()  // ... and returned (BeginIndex), fragments before packets
            try slots.set()
        } catch {
            log("binding \(receiver): receive: \(error)")
            return .unfit
        }
        destination.received &+= 1
        destination.regions.control.protocolWake.wakeIfNeeded()
        return .delivered
    }

    /// A `drop` policy discarded a packet for `receiver`: counted per binding and in the statistics.
    public func recordDrop(for receiver: UInt64) {
        binding(receiver)?.dropped &+= 1
    }

    /// A checking driver found a packet out of order or with wrong bytes: counted in the statistics.
    public func reportVerificationError(binding: UInt64, _ message: String) {
        verificationErrors += 1
        if verificationErrors <= 10 { log("verification error on binding \(binding): \(message)") }
    }

    /// Ring-style drivers count what they sent (the NDIS 5 path is counted by the framework).
    public func recordSent(binding: UInt64, packets: Int, bytes: Int) {
        guard let binding = self.binding(binding) else { return }
        binding.packets &+= UInt64(packets)
        binding.bytes &+= UInt64(bytes)
    }

    // MARK: The framework

    func binding(_ id: UInt64) -> MiniportBinding? { bindingIndex[id].map { bindings[$0] } }

    func pendingSlot(_ binding: MiniportBinding, _ packet: MiniportPacket) -> UInt32? {
        let slot = Int(packet.slot)
        guard slot < binding.slotState.count, binding.slotState[slot] == .pending,
            binding.slotRound[slot] == packet.round
        else { return nil }
        return packet.slot
    }

    func complete(_ binding: MiniportBinding, slot: UInt32, descriptor: Int?, status: NDISStatus) {
        if let descriptor { binding.regions.descriptors[descriptor].status = status }
        binding.slotState[Int(slot)] = .completed
        binding.outstanding -= 1
        if !status.isSuccess { binding.failed += 1 }
    }

    func add(_ binding: MiniportBinding) {
        bindingIndex[binding.id] = bindings.count
        bindings.append(binding)
        binding.regions.control.state.store(BindingState.open.rawValue)
        driver.bindingOpened(binding.id, context: self)
    }

    /// Removes a binding. If its protocol is still there, everything it sent completes first (`CLOSING` for
    /// what the driver had not finished) and is returned, and the protocol is woken.
    func remove(_ id: UInt64, protocolAlive: Bool) {
        guard let position = bindingIndex[id] else { return }
        let binding = bindings[position]
        binding.regions.control.state.store(BindingState.closing.rawValue)
        driver.bindingClosing(id, context: self)
        if protocolAlive { cancelAll(binding) }
        bindings.remove(at: position)
        bindingIndex = Dictionary(uniqueKeysWithValues: bindings.enumerated().map { ($1.id, $0) })
    }

    /// Tx cancel: completes every packet still owned with `CLOSING` (keeping statuses already given) and
    /// returns all of them, posted or not.
    func cancelAll(_ binding: MiniportBinding) {
        var all = binding.rings.allPackets()
        var fragmentEnd = binding.rings.fragmentRing.loadBeginIndex()
        while all.hasAny {
            let slot = all.index
            let element = all.packet
            if binding.slotState[Int(slot)] != .completed && !element.ignore,
                binding.regions.descriptors.contains(element.descriptor)
            {
                binding.regions.descriptors[Int(element.descriptor)].status = .closing
            }
            binding.slotState[Int(slot)] = .idle
            binding.slotRound[Int(slot)] &+= 1
            all.advance()
        }
        var fragments = binding.rings.allFragments()
        fragments.advanceToTheEnd()
        fragmentEnd = fragments.index
        do {
            var post = binding.rings.postPackets()
            post.advanceToTheEnd()
            try post.set()
            try binding.rings.setFragmentNextIndex(to: fragmentEnd)
            try fragments.set()
            try all.set()
        } catch {
            log("binding \(binding.id): cancel: \(error)")
        }
        binding.outstanding = 0
        cancelReceive(binding)
        binding.regions.control.protocolWake.wakeIfNeeded()
    }

    /// Rx cancel: every packet slot goes back with `Ignore`, and every buffer goes back unfilled.
    func cancelReceive(_ binding: MiniportBinding) {
        let rx = binding.receive
        var packets = rx.allPackets()
        while packets.hasAny {
            packets.packet.ignore = true
            packets.advance()
        }
        var buffers = rx.allFragments()
        buffers.advanceToTheEnd()
        do {
            var post = rx.postFragments()
            post.advanceToTheEnd()
            try post.set()
            try buffers.set()
            try packets.set()
        } catch {
            log("binding \(binding.id): receive cancel: \(error)")
        }
    }

    /// One turn over a binding's transmit queue: post (hand packets to the driver), then drain (return the
    /// completed prefix in ring order). Returns how many packets moved.
    func turn(_ binding: MiniportBinding, budget: Int) throws(NetRingViolation) -> Int {
        var work = 0
        if let ring = ringDriver {
            let before = binding.regions.transmitPacketRing.loadBeginIndex()
            ring.advance(
                TransmitQueue(binding: binding.id, rings: binding.rings, regions: binding.regions), context: self)
            let after = binding.regions.transmitPacketRing.loadBeginIndex()
            work = Int(binding.regions.transmitPacketRing.rangeCount(from: before, to: after))
        } else {
            if !binding.blocked { work += try post(binding, budget: budget) }
            work += try drain(binding)
        }
        if work > 0 { binding.regions.control.protocolWake.wakeIfNeeded() }
        return work
    }

    func post(_ binding: MiniportBinding, budget: Int) throws(NetRingViolation) -> Int {
        let rings = binding.rings
        var post = rings.postPackets()
        guard post.hasAny else { return 0 }
        let packetRing = rings.packetRing
        let fragmentRing = rings.fragmentRing
        let ownedFragmentBegin = fragmentRing.loadBeginIndex()
        let ownedFragmentEnd = fragmentRing.loadEndIndex()
        var fragmentEnd = fragmentRing.loadNextIndex()
        var moved = 0
        while post.hasAny && moved < budget {
            // Scan up to maxSendPackets packets; ignored and malformed ones complete at once.
            batch.removeAll(keepingCapacity: true)
            var scan = post
            var lastFragmentEnd = fragmentEnd
            while scan.hasAny && batch.count < maxSendPackets {
                let element = scan.packet
                let slot = Int(element.index)
                binding.slotRound[slot] &+= 1
                binding.slotState[slot] = .pending
                binding.outstanding += 1
                binding.slotBytes[slot] = 0
                if !element.ignore, let end = validate(element, binding, ownedFragmentBegin, ownedFragmentEnd) {
                    lastFragmentEnd = end
                    batch.append(
                        MiniportPacket(
                            binding: binding.id,
                            slot: element.index,
                            round: binding.slotRound[slot],
                            descriptor: Int(element.descriptor)
                        )
                    )
                } else {
                    let known = !element.ignore && binding.regions.descriptors.contains(element.descriptor)
                    complete(
                        binding, slot: element.index, descriptor: known ? Int(element.descriptor) : nil,
                        status: .invalidPacket)
                }
                binding.slotFragmentEnd[slot] = lastFragmentEnd
                scan.advance()
            }
            let accepted = submit(binding)
            if accepted == batch.count {
                moved += Int(packetRing.rangeCount(from: post.index, to: scan.index))
                post = scan
                fragmentEnd = lastFragmentEnd
                continue
            }
            // RESOURCES: that packet and every one scanned after it go back to the post section, in order,
            // and are resubmitted after the next completion or resources-available.
            let stop = batch[accepted].slot
            var slot = stop
            while slot != scan.index {
                if binding.slotState[Int(slot)] == .pending { binding.outstanding -= 1 }
                binding.slotState[Int(slot)] = .idle
                slot = packetRing.increment(slot)
            }
            if stop != post.index { fragmentEnd = binding.slotFragmentEnd[Int(packetRing.advance(stop, by: -1))] }
            moved += Int(packetRing.rangeCount(from: post.index, to: stop))
            while post.index != stop { post.advance() }
            binding.blocked = true
            break
        }
        try post.set()
        try rings.setFragmentNextIndex(to: fragmentEnd)
        return moved
    }

    /// Checks a posted packet's descriptor and fragments against the binding; returns the fragment-ring
    /// index after its fragments, or nil if it is malformed.
    func validate(_ element: NetPacket, _ binding: MiniportBinding, _ begin: UInt32, _ end: UInt32) -> UInt32? {
        guard binding.regions.descriptors.contains(element.descriptor) else { return nil }
        let ring = binding.rings.fragmentRing
        let count = UInt32(element.fragmentCount)
        let first = element.fragmentIndex & ring.elementIndexMask
        let owned = ring.rangeCount(from: begin, to: end)
        let offset = ring.rangeCount(from: begin, to: first)
        guard count >= 1, offset < owned, count <= owned - offset else { return nil }
        var index = first
        var bytes = 0
        for _ in 0..<count {
            guard let span = binding.regions.data.span(of: binding.rings.fragment(at: index)) else { return nil }
            bytes += span.count
            index = ring.increment(index)
        }
        binding.slotBytes[Int(element.index)] = UInt32(clamping: bytes)
        return index
    }

    /// Gives the batch to the driver; returns how many it accepted.
    func submit(_ binding: MiniportBinding) -> Int {
        guard !batch.isEmpty else { return 0 }
        if let arrayDriver {
            statuses.removeAll(keepingCapacity: true)
            statuses.append(contentsOf: repeatElement(NDISStatus.pending, count: batch.count))
            arrayDriver.sendPackets(batch, statuses: &statuses, context: self)
            guard serialized else { return batch.count }
            for (i, packet) in batch.enumerated() {
                if statuses[i] == .resources { return i }
                if statuses[i] != .pending, pendingSlot(binding, packet) != nil {
                    complete(binding, slot: packet.slot, descriptor: packet.descriptor, status: statuses[i])
                }
            }
            return batch.count
        }
        if let single = singleDriver {
            for (i, packet) in batch.enumerated() {
                let status = single.send(packet, context: self)
                if status == .resources && serialized { return i }
                if serialized && status != .pending, pendingSlot(binding, packet) != nil {
                    complete(binding, slot: packet.slot, descriptor: packet.descriptor, status: status)
                }
            }
            return batch.count
        }
        for packet in batch {
            complete(binding, slot: packet.slot, descriptor: packet.descriptor, status: .notSupported)
        }
        return batch.count
    }

    /// Returns the completed prefix of the drain section, fragments first, then packets.
    func drain(_ binding: MiniportBinding) throws(NetRingViolation) -> Int {
        var drain = binding.rings.drainPackets()
        var fragmentBegin: UInt32?
        var count = 0
        while drain.hasAny && binding.slotState[Int(drain.index)] == .completed {
            let slot = Int(drain.index)
            fragmentBegin = binding.slotFragmentEnd[slot]
            binding.bytes &+= UInt64(binding.slotBytes[slot])
            binding.slotState[slot] = .idle
            drain.advance()
            count += 1
        }
        guard count > 0 else { return 0 }
        binding.packets &+= UInt64(count)
        if let fragmentBegin { try binding.rings.setFragmentBeginIndex(to: fragmentBegin) }
        try drain.set()
        return count
    }
}
