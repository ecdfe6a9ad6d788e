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
    @exclusivity(unchecked) var bindingIndex: [UInt64: Int] = [:]
    @exclusivity(unchecked) var batch: [MiniportPacket] = []
    @exclusivity(unchecked) var statuses: [NDISStatus] = []
    /// `withPacket`'s fragment ranges, reused: no allocation per packet read.
    @exclusivity(unchecked) var spanScratch: [Range<Int>] = []
    /// Whether some binding may be `blocked` (a serialized driver answered `RESOURCES`): a completion then
    /// resubmits, and only then walks the bindings.
    @exclusivity(unchecked) var anyBlocked = false
    var verificationErrors: UInt64 = 0
    /// Send-completes refused: the packet was not pending (completed twice, stale, or its binding closed).
    var refusedCompletions: UInt64 = 0
    var receiversStalled: UInt64 = 0
    /// Bindings that broke the contract and await closing by the data plane.
    @exclusivity(unchecked) package var violations: [(binding: UInt64, violation: NetRingViolation)] = []
    let emit: (String) -> Void
    var limiter = LogLimiter()

    package init(driver: any MiniportDriver, log: @escaping (String) -> Void) {
        self.driver = driver
        self.emit = log
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
            refuseCompletion(of: packet)
            return
        }
        complete(binding, slot: slot, descriptor: packet.descriptor, status: status)
        // NDIS resubmits what RESOURCES held back after the next send-complete, whichever binding it is
        // for: the requeue belongs to the miniport, not to one binding.
        sendResourcesAvailable()
    }

    /// `NdisMSendResourcesAvailable`: resubmit what `RESOURCES` held back, on every binding.
    public func sendResourcesAvailable() {
        guard anyBlocked else { return }
        anyBlocked = false
        for binding in bindings { binding.blocked = false }
    }

    func refuseCompletion(of packet: MiniportPacket) {
        refusedCompletions += 1
        log(
            "refused a send-complete of descriptor \(packet.descriptor) on binding \(packet.binding): "
                + "it is not pending (completed twice, stale, or its binding is closed)")
    }

    /// Reads a pending packet in place: its OOB block, flags and payload fragments (checked against the
    /// data area). Nil if the packet is not pending.
    public func withPacket<R>(_ packet: MiniportPacket, _ body: (PacketView) throws -> R) rethrows -> R? {
        guard let binding = binding(packet.binding), let slot = pendingSlot(binding, packet) else { return nil }
        // The fragments as checked at post (the protocol may have rewritten the element since); each fragment
        // is loaded once more and checked again, since its fields are shared too.
        // The ranges go into a reused array (a view kept past the call, or a nested call, only makes the
        // next one copy).
        spanScratch.removeAll(keepingCapacity: true)
        let rings = binding.rings
        let data = binding.regions.data
        var index = binding.slotFragmentFirst[Int(slot)]
        for _ in 0..<binding.slotFragmentCount[Int(slot)] {
            guard let span = data.span(of: rings.fragment(at: index)) else { return nil }
            spanScratch.append(span)
            index = rings.fragmentRing.increment(index)
        }
        let view = PacketView(
            descriptor: binding.regions.descriptors[packet.descriptor],
            fragments: spanScratch,
            data: data
        )
        return try body(view)
    }

    /// The ids of the bindings now open.
    public var bindingIDs: [UInt64] { bindings.map(\.id) }

    /// The ids of the open bindings that receive (their packet filter is not empty).
    public var receiverIDs: [UInt64] { bindings.filter(\.receives).map(\.id) }

    /// A lossless driver gave up waiting for `receiver`, which took nothing for the driver's stall timeout:
    /// counted, and logged (rate-limited). The frames it misses are counted as its drops (`recordDrop`).
    public func recordStall(of receiver: UInt64, afterMilliseconds milliseconds: UInt64) {
        guard binding(receiver) != nil else { return }
        receiversStalled += 1
        log("binding \(receiver) took no frame for \(milliseconds) ms: dropping for it until it posts buffers")
    }

    /// What `indicateReceive` did.
    public enum Delivery: Sendable, Equatable {
        /// Copied into the receiver's next posted buffer and returned to it.
        case delivered
        /// The receiver has no posted buffer now (back-pressure, or a drop by the driver's policy).
        case noBuffer
        /// The packet is larger than a receive buffer, or malformed: it cannot be delivered.
        case unfit
        /// No open binding has that id.
        case unknownBinding
        /// The receiver's packet filter is empty: it does not receive (nothing lost, nothing counted).
        case filtered
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
        // One view: its fragment ranges were checked once and are the ones copied (the sender may rewrite
        // its ring meanwhile, never the copy's bounds).
        let delivery = withPacket(packet) { view in
            deliver(to: receiver, length: view.totalLength) { destination in
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
        return delivery ?? .unfit
    }

    /// Fills the receiver's next posted buffer with `length` bytes written by `fill`, and returns it with a
    /// packet (drain then post, one buffer per packet), through the receive queue's iterators.
    func deliver(to receiver: UInt64, length: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) -> Delivery {
        guard let destination = binding(receiver), !hasViolation(receiver) else { return .unknownBinding }
        guard destination.receives else { return .filtered }
        guard var batch = openReceive(destination) else { return .unknownBinding }
        let delivery = batch.append(length: length, fill)
        guard delivery == .delivered else { return delivery }
        return publish(&batch) ? .delivered : .unknownBinding
    }

    /// Opens `destination`'s receive rings for a batch of frames: the iterators' snapshots are checked once
    /// (checked mode's findings, the driver's own indices, `EndIndex` only grown) and are the ones used.
    /// Nil if the receiver broke the contract (reported: it is closed after this pass).
    func openReceive(_ destination: MiniportBinding) -> ReceiveBatch? {
        let rx = destination.receive
        let buffers = rx.postFragments()
        let slots = rx.allPackets()
        do {
            try rx.checkpoint()
            try Self.expectOwn(buffers.index, rx.stored.fragmentNext, .fragment)
            try Self.expectOwn(slots.index, rx.stored.packetBegin, .packet)
            try destination.indexGuard.receiveFragments.accept(
                end: buffers.end, rx.fragmentRing, .fragment, begin: rx.stored.fragmentBegin)
            try destination.indexGuard.receivePackets.accept(
                end: slots.end, rx.packetRing, .packet, begin: rx.stored.packetBegin)
        } catch {
            reportViolation(destination.id, error)
            return nil
        }
        return ReceiveBatch(destination: destination, buffers: buffers, slots: slots)
    }

    /// Returns every frame of the batch to its protocol: one set of index stores (buffers posted and
    /// returned, fragments before packets) and one wake check. False if the receiver broke the contract.
    func publish(_ batch: inout ReceiveBatch) -> Bool {
        guard batch.delivered > 0 else { return true }
        let destination = batch.destination
        do {
            try batch.buffers.set()  // posted (NextIndex) ...
            var drain = destination.receive.drainFragments()
            drain.advanceToTheEnd()
            try drain.set()  // ... and returned (BeginIndex), fragments before packets
            try batch.slots.set()
        } catch {
            reportViolation(destination.id, error)
            return false
        }
        destination.received &+= UInt64(batch.delivered)
        destination.receivedBytes &+= UInt64(batch.deliveredBytes)
        return true
    }

    /// Whether `binding` broke the contract this pass (it is closed after it).
    @inline(__always) func hasViolation(_ binding: UInt64) -> Bool {
        !violations.isEmpty && violations.contains { $0.binding == binding }
    }

    /// Completes one of `binding`'s pending packets without returning it yet (a packet that is not pending
    /// is refused and counted, as by `sendComplete`); `returnCompleted` then returns a whole batch.
    @inline(__always) func completePending(_ binding: MiniportBinding, _ packet: MiniportPacket, status: NDISStatus) {
        guard packet.binding == binding.id, let slot = pendingSlot(binding, packet) else {
            refuseCompletion(of: packet)
            return
        }
        complete(binding, slot: slot, descriptor: packet.descriptor, status: status)
    }

    /// After `completePending`: resubmits what `RESOURCES` held back (as a send-complete does), returns the
    /// completed prefix with one `BeginIndex` store per ring, and wakes the protocol once.
    func returnCompleted(_ binding: MiniportBinding) {
        sendResourcesAvailable()
        // One that broke the contract gets everything back when it is closed, after this pass.
        guard !hasViolation(binding.id) else { return }
        do {
            _ = try drain(binding)
        } catch {
            reportViolation(binding.id, error)
        }
    }

    /// A `drop` policy discarded a packet for `receiver`: counted per binding and in the statistics.
    public func recordDrop(for receiver: UInt64) {
        guard let binding = binding(receiver) else { return }
        binding.dropped &+= 1
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

    /// Logs a line, at most a burst per second (a peer must not be able to flood the log).
    public func log(_ line: String) {
        if limiter.admit(emit) { emit(line) }
    }

    // MARK: The framework

    /// Marks a binding as having broken the contract; the data plane closes it after this turn.
    package func reportViolation(_ binding: UInt64, _ violation: NetRingViolation) {
        guard !violations.contains(where: { $0.binding == binding }) else { return }
        violations.append((binding, violation))
    }

    package func binding(_ id: UInt64) -> MiniportBinding? { bindingIndex[id].map { bindings[$0] } }

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

    package func add(_ binding: MiniportBinding) {
        bindingIndex[binding.id] = bindings.count
        bindings.append(binding)
        binding.regions.control.state.store(BindingState.open.rawValue)
        driver.bindingOpened(binding.id, context: self)
    }

    /// Removes a binding. If its protocol is still there, everything it sent completes first (`CLOSING` for
    /// what the driver had not finished) and is returned, and the protocol is woken.
    package func remove(_ id: UInt64, protocolAlive: Bool) {
        guard let position = bindingIndex[id] else { return }
        let binding = bindings[position]
        binding.regions.control.state.store(BindingState.closing.rawValue)
        driver.bindingClosing(id, context: self)
        if protocolAlive { cancelAll(binding) }
        bindings.remove(at: position)
        bindingIndex = Dictionary(uniqueKeysWithValues: bindings.enumerated().map { ($1.id, $0) })
    }

    /// Tx cancel: completes every packet still owned with `CLOSING` (keeping statuses already given) and
    /// returns all of them, posted or not. The indices are stored directly: the binding is going away, and
    /// one that broke the contract must still get back what it gave (up to the last `EndIndex` accepted).
    func cancelAll(_ binding: MiniportBinding) {
        let rings = binding.rings
        let packetEnd = binding.indexGuard.transmitPackets.acceptIfGrown(
            rings.packetRing, begin: rings.stored.packetBegin)
        let fragmentEnd = binding.indexGuard.transmitFragments.acceptIfGrown(
            rings.fragmentRing, begin: rings.stored.fragmentBegin)
        var slot = rings.stored.packetBegin
        while slot != packetEnd {
            // A pending slot's descriptor as recorded at post (the protocol may have rewritten the element); a
            // slot not yet posted has its element's, loaded once and checked. Completed ones keep their status.
            var descriptor: Int32 = -1
            switch binding.slotState[Int(slot)] {
            case .pending: descriptor = binding.slotDescriptor[Int(slot)]
            case .completed: break
            case .idle:
                let element = rings.packet(at: slot)
                let index = element.descriptor
                if !element.ignore, binding.regions.descriptors.contains(index) { descriptor = Int32(index) }
            }
            if descriptor >= 0 { binding.regions.descriptors[Int(descriptor)].status = .closing }
            binding.slotState[Int(slot)] = .idle
            binding.slotRound[Int(slot)] &+= 1
            slot = rings.packetRing.increment(slot)
        }
        // Release stores, fragments before packets: the protocol reclaims what BeginIndex passed.
        rings.packetRing.storeNextIndex(packetEnd)
        rings.fragmentRing.storeNextIndex(fragmentEnd)
        rings.fragmentRing.storeBeginIndex(fragmentEnd)
        rings.packetRing.storeBeginIndex(packetEnd)
        binding.outstanding = 0
        cancelReceive(binding)
        binding.regions.control.protocolWake.wakeIfNeeded()
    }

    /// Rx cancel: every packet slot goes back with `Ignore`, and every buffer goes back unfilled.
    func cancelReceive(_ binding: MiniportBinding) {
        let rx = binding.receive
        let packetEnd = binding.indexGuard.receivePackets.acceptIfGrown(rx.packetRing, begin: rx.stored.packetBegin)
        let fragmentEnd = binding.indexGuard.receiveFragments.acceptIfGrown(
            rx.fragmentRing, begin: rx.stored.fragmentBegin)
        var slot = rx.stored.packetBegin
        while slot != packetEnd {
            // As the OS posted it (empty), with Ignore: an ignored packet carries nothing (Docs/Contract.md §1.10).
            let packet = rx.packet(at: slot)
            packet.reset()
            packet.ignore = true
            slot = rx.packetRing.increment(slot)
        }
        rx.fragmentRing.storeNextIndex(fragmentEnd)
        rx.fragmentRing.storeBeginIndex(fragmentEnd)
        rx.packetRing.storeBeginIndex(packetEnd)
    }

    /// One pass of the data plane: every binding's turn, starting one further each pass (fairness), then the
    /// driver's poll. Returns how many packets moved and whether the driver has work left.
    package func pass(budget: Int, start: inout Int) -> (work: Int, driverBusy: Bool) {
        var work = 0
        let bindings = self.bindings
        if !bindings.isEmpty {
            for k in 0..<bindings.count {
                // `bindings` holds it for the pass: no reference counting per turn.
                let reference = UncountedReference(bindings[(start + k) % bindings.count])
                reference { binding in
                    do throws(NetRingViolation) {
                        work += try turn(binding, budget: budget)
                    } catch {
                        reportViolation(binding.id, error)
                    }
                }
            }
            start &+= 1
        }
        let driverBusy = driver.poll(context: self)
        // A driver may have used receive queues in poll: accept the EndIndex its iterators saw.
        let open = self.bindings
        for i in open.indices {
            let reference = UncountedReference(open[i])
            reference { $0.captureIndices() }
        }
        wakeProtocols(open)
        return (work, driverBusy)
    }

    /// Wakes, once a pass and after everything of the pass is published, each sleeping protocol whose
    /// completions or receives moved. Waking as each is stored instead hands the CPU to a protocol that then
    /// finds half of its work and sleeps again (on two CPUs the woken one preempts the waker).
    func wakeProtocols(_ open: [MiniportBinding]) {
        var fenced = false
        for i in open.indices {
            let reference = UncountedReference(open[i])
            reference { binding in
                let transmit = binding.rings.stored.packetBegin
                let receive = binding.receive.stored.packetBegin
                guard transmit != binding.wokenAtTransmit || receive != binding.wokenAtReceive else { return }
                binding.wokenAtTransmit = transmit
                binding.wokenAtReceive = receive
                if !fenced {
                    WakeWords.orderIndexStoresBeforeFlags()
                    fenced = true
                }
                binding.regions.control.protocolWake.wakeIfFlagged()
            }
        }
    }

    /// One turn over a binding's transmit queue: post (hand packets to the driver), then drain (return the
    /// completed prefix in ring order). Returns how many packets moved.
    package func turn(_ binding: MiniportBinding, budget: Int) throws(NetRingViolation) -> Int {
        // Before the driver sees anything: the protocol left the driver's indices alone and only grew EndIndex.
        try binding.verifyIndices()
        if binding.rings.isChecked {
            try binding.rings.verifyNow()
            try binding.receive.verifyNow()
        }
        var work = 0
        if let ring = ringDriver {
            let before = binding.rings.stored.packetBegin
            try ring.advance(
                TransmitQueue(binding: binding.id, rings: binding.rings, regions: binding.regions), context: self)
            try binding.rings.checkpoint()
            binding.captureIndices()
            let after = binding.rings.stored.packetBegin
            work = Int(binding.regions.transmitPacketRing.rangeCount(from: before, to: after))
        } else {
            if !binding.blocked { work += try post(binding, budget: budget) }
            work += try drain(binding)
        }
        return work
    }

    func post(_ binding: MiniportBinding, budget: Int) throws(NetRingViolation) -> Int {
        // Nothing posted (a binding that only receives, or an idle one): the turn's check already took in
        // this ring, and an EndIndex loaded once and equal to NextIndex gives the driver nothing.
        if !binding.rings.isChecked
            && binding.regions.transmitPacketRing.loadEndIndex() == binding.rings.stored.packetNext
        {
            return 0
        }
        let rings = binding.rings
        var post = rings.postPackets()
        let packetRing = rings.packetRing
        let fragmentRing = rings.fragmentRing
        let ownedFragments = rings.allFragments()
        // Checked before any element goes to the driver: checked mode's findings, then the snapshots themselves
        // (EndIndex may have moved since the turn's check; the iterators' copies are what is used).
        try rings.checkpoint()
        try Self.expectOwn(post.index, rings.stored.packetNext, .packet)
        try Self.expectOwn(ownedFragments.index, rings.stored.fragmentBegin, .fragment)
        try binding.indexGuard.transmitPackets.accept(
            end: post.end, packetRing, .packet, begin: rings.stored.packetBegin)
        try binding.indexGuard.transmitFragments.accept(
            end: ownedFragments.end, fragmentRing, .fragment, begin: rings.stored.fragmentBegin)
        guard post.hasAny else { return 0 }
        let ownedFragmentEnd = ownedFragments.end
        var fragmentEnd = rings.stored.fragmentNext
        var moved = 0
        while post.hasAny && moved < budget {
            // Scan up to maxSendPackets packets; ignored and malformed ones complete at once.
            batch.removeAll(keepingCapacity: true)
            var scan = post
            var lastFragmentEnd = fragmentEnd
            while scan.hasAny && batch.count < maxSendPackets {
                let element = scan.packet
                let slot = Int(element.index)
                guard binding.slotState[slot] == .idle else {
                    throw NetRingViolation(
                        .osWroteDriverIndex, ring: .packet, index: element.index,
                        "slot \(slot) is posted again while the driver holds it")
                }
                binding.slotRound[slot] &+= 1
                binding.slotState[slot] = .pending
                binding.outstanding += 1
                binding.slotBytes[slot] = 0
                // Loaded once: the framework uses only these copies from here to the packet's return.
                let ignore = element.ignore
                let descriptor = element.descriptor
                let known = binding.regions.descriptors.contains(descriptor)
                binding.slotDescriptor[slot] = !ignore && known ? Int32(descriptor) : -1
                if !ignore, known, let end = try validate(element, binding, lastFragmentEnd, ownedFragmentEnd) {
                    lastFragmentEnd = end
                    batch.append(
                        MiniportPacket(
                            binding: binding.id,
                            slot: element.index,
                            round: binding.slotRound[slot],
                            descriptor: Int(descriptor)
                        )
                    )
                } else {
                    complete(
                        binding, slot: element.index, descriptor: !ignore && known ? Int(descriptor) : nil,
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
            anyBlocked = true
            break
        }
        try post.set()
        try rings.setFragmentNextIndex(to: fragmentEnd)
        return moved
    }

    /// Checks a posted packet's fragments; returns the fragment-ring index after them, or nil if one does not
    /// fit the data area (`INVALID_PACKET`). Fragments the driver does not own, or that an earlier packet
    /// named (`begin` is where the previous packet's fragments ended), break the ring contract
    /// (`osPacketFragmentsOutsideRange`): the binding is closed.
    func validate(_ element: NetPacket, _ binding: MiniportBinding, _ begin: UInt32, _ end: UInt32)
        throws(NetRingViolation) -> UInt32?
    {
        let ring = binding.rings.fragmentRing
        // Each field loaded once: the protocol may rewrite the element while we look.
        let count = UInt32(element.fragmentCount)
        let first = element.fragmentIndex & ring.elementIndexMask
        let owned = ring.rangeCount(from: begin, to: end)
        let offset = ring.rangeCount(from: begin, to: first)
        guard count >= 1, offset < owned, count <= owned - offset else {
            throw NetRingViolation(
                .osPacketFragmentsOutsideRange, ring: .packet, index: element.index,
                "fragments [\(first), +\(count)) are not within the driver's [\(begin), \(end))")
        }
        binding.slotFragmentFirst[Int(element.index)] = first
        binding.slotFragmentCount[Int(element.index)] = UInt16(count)
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

    /// An iterator made from the shared copy of a driver index must start where the driver side left it.
    static func expectOwn(_ shared: UInt32, _ own: UInt32, _ type: NetRingType) throws(NetRingViolation) {
        guard shared == own else {
            throw NetRingViolation(
                .osWroteDriverIndex, ring: type, index: shared,
                "a driver index is \(shared), the driver side set \(own)")
        }
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
        // Nothing taken, nothing to return (the driver side's own copies).
        if !binding.rings.isChecked && binding.rings.stored.packetBegin == binding.rings.stored.packetNext {
            return 0
        }
        var drain = binding.rings.drainPackets()
        try Self.expectOwn(drain.index, binding.rings.stored.packetBegin, .packet)
        try Self.expectOwn(drain.end, binding.rings.stored.packetNext, .packet)
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

/// One destination's receive rings opened for a batch (`MiniportContext.openReceive`): frames go into the
/// posted buffers one after another, and `MiniportContext.publish` returns them all at once.
struct ReceiveBatch {
    /// The context holds the binding for as long as the batch lives (one data-plane pass at most).
    unowned(unsafe) let destination: MiniportBinding
    var buffers: NetRingFragmentIterator
    var slots: NetRingPacketIterator
    let data: DataArea
    static let layout = NetPacketLayout(layer2Type: .ethernet)
    private(set) var delivered = 0
    private(set) var deliveredBytes = 0

    init(destination: MiniportBinding, buffers: NetRingFragmentIterator, slots: NetRingPacketIterator) {
        self.destination = destination
        self.buffers = buffers
        self.slots = slots
        data = destination.regions.data
    }

    /// Whether a posted buffer with a packet slot is left.
    var hasRoom: Bool { buffers.hasAny && slots.hasAny }

    /// Writes one frame of `length` bytes (`fill` writes them) into the next posted buffer and its packet.
    /// `.noBuffer`: none left; `.unfit`: the frame does not fit the buffer (which stays for the next frame).
    @inline(__always)
    mutating func append(
        length: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void
    ) -> MiniportContext.Delivery {
        guard buffers.hasAny, slots.hasAny else { return .noBuffer }
        let buffer = buffers.fragment
        // The OS attached the buffer: its chunk and capacity are loaded once, checked, and only the copies used.
        let chunk = Int(buffer.chunk)
        let capacity = Int(buffer.capacity)
        guard chunk < data.chunkCount, capacity <= data.chunkSize, length <= capacity else { return .unfit }
        let start = chunk * data.chunkSize
        data.withBytes(start..<start + length) { fill($0) }
        buffer.offset = 0
        buffer.validLength = UInt32(length)
        let element = slots.packet
        element.fragmentIndex = buffer.index
        element.fragmentCount = 1
        element.layout = Self.layout
        element.ignore = false
        buffers.advance()
        slots.advance()
        delivered += 1
        deliveredBytes &+= length
        return .delivered
    }
}
