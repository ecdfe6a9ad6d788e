import Glibc
import RingportCore
import RingportSystem

extension Adapter {
    /// `ProtocolSendComplete`: hands each packet the miniport returned since the last call to `handler`, in
    /// ring order, with its status; the packet is the protocol's again (reinitialize and reuse it, or drop it
    /// to free it). Never blocks and, once warm, never allocates. Returns how many completed.
    @discardableResult
    public func pollCompletions(_ handler: (consuming Packet, NDISStatus) -> Void) -> Int {
        flushBacklog()
        var completed = 0
        if case .closed = state {
        } else {
            completed = reclaim(handler)
        }
        if !localCompletions.isEmpty {
            let pending = localCompletions
            localCompletions.removeAll(keepingCapacity: true)
            for (raw, status) in pending {
                handler(Packet(adapter: raw.adapter, index: raw.index, generation: raw.generation), status)
                completed += 1
            }
        }
        if completed == 0 { checkLiveness() }
        return completed
    }

    /// Waits up to `timeoutSeconds` for at least one completion (spinning briefly, then sleeping on the
    /// binding's wake word), and hands what came to `handler`. Returns how many completed; 0 on timeout.
    @discardableResult
    public func waitForCompletions(
        timeoutSeconds: Double,
        _ handler: (consuming Packet, NDISStatus) -> Void
    ) -> Int {
        wait(
            timeoutSeconds: timeoutSeconds,
            ring: regions.transmitPacketRing,
            cursor: { transmit.packetCursor },
            nothingToWaitFor: { outstandingSends == 0 && localCompletions.isEmpty },
            poll: { pollCompletions(handler) }
        )
    }

    /// The wait of `waitForCompletions` and `waitForReceives`: polls; spins a little; then sleeps on the
    /// protocol's wake word until `ring`'s `BeginIndex` leaves `cursor`, in slices, so a miniport that died is
    /// noticed (its socket closes) within one slice.
    func wait(
        timeoutSeconds: Double,
        ring: NetRing,
        cursor: () -> UInt32,
        nothingToWaitFor: () -> Bool,
        poll: () -> Int
    ) -> Int {
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(max(0, timeoutSeconds) * 1e9)
        var spins = 0
        while true {
            let count = poll()
            if count > 0 { return count }
            if case .closed = state, localCompletions.isEmpty { return 0 }
            if nothingToWaitFor() { return 0 }
            let now = ProcessControl.monotonicNanoseconds()
            if now >= deadline { return 0 }
            spins += 1
            if spins < 4096 {
                ProcessControl.relax()
                continue
            }
            let slice = Int64(min(deadline - now, 50_000_000))
            let seen = cursor()
            _ = regions.control.protocolWake.sleep(timeoutNanoseconds: slice) {
                ring.loadBeginIndex() != seen || socket.isReadable()
            }
            lastLivenessCheck = 0
            checkLiveness()
        }
    }

    /// Takes back what the miniport returned; a broken ring contract closes the binding.
    func reclaim(_ handler: (consuming Packet, NDISStatus) -> Void) -> Int {
        var completed = 0
        do {
            completed = try transmit.reclaimPackets { element in
                let slot = Int(element.index)
                let index = Int(slotDescriptor[slot])
                var status = slotIgnored[slot] ? .invalidPacket : regions.descriptors[index].status
                if status == .pending { status = .failure }  // returned but not completed: a miniport bug
                finish(index)
                handler(Packet(adapter: self, index: index, generation: generation[index]), status)
            }
            _ = try transmit.reclaimFragments()
        } catch {
            abandon(reason: "the miniport broke the ring contract: \(error)")
        }
        return completed
    }

    /// The packet is the protocol's again.
    func finish(_ index: Int) {
        owner[index] = .protocolSide
        regions.descriptors[index].owner = .protocolSide
        outstandingSends -= 1
    }

    /// Notices a miniport that closed the connection or died (at most every millisecond when idle).
    func checkLiveness() {
        let now = ProcessControl.monotonicNanoseconds()
        guard now &- lastLivenessCheck > 1_000_000 else { return }
        lastLivenessCheck = now
        guard case .open = state, socket.isReadable() else {
            if case .closing = state, socket.isReadable() { abandon(reason: "the miniport went away") }
            return
        }
        abandon(reason: "the miniport went away")
    }

    /// The binding is gone: every packet still with the miniport completes here, with `CLOSING`.
    func abandon(reason: String) {
        if case .closed = state { return }
        // What the miniport did return keeps its status; the rest completes locally.
        let returned = regions.transmitPacketRing.loadBeginIndex()
        _ = returned
        state = .closed(reason: reason)
        var slot = transmit.packetCursor
        while slot != transmit.packetEnd {
            let index = Int(slotDescriptor[Int(slot)])
            finish(index)
            localCompletions.append((RawPacket(adapter: self, index: index, generation: generation[index]), .closing))
            slot = transmit.packetRing.increment(slot)
        }
        for i in backlogStart..<backlog.count {
            let index = Int(backlog[i])
            finish(index)
            localCompletions.append((RawPacket(adapter: self, index: index, generation: generation[index]), .closing))
        }
        backlog.removeAll()
        backlogStart = 0
    }

    /// `NdisCloseAdapter`: new sends complete with `CLOSING`; waits (up to `timeoutSeconds`) until every
    /// outstanding send has completed, handing each to `handler`; then closes the binding. Throws if the
    /// sends did not all complete in time (they then complete with `CLOSING`).
    public func close(
        timeoutSeconds: Double = 10,
        _ handler: (consuming Packet, NDISStatus) -> Void = { _, _ in }
    ) throws(AdapterError) {
        if case .closed = state {
            pollCompletions(handler)
            return
        }
        state = .closing
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        while outstandingSends > 0, case .closing = state, ProcessControl.monotonicNanoseconds() < deadline {
            let remaining = Double(deadline - ProcessControl.monotonicNanoseconds()) / 1e9
            waitForCompletions(timeoutSeconds: remaining, handler)
        }
        let timedOut = outstandingSends > 0
        if case .closing = state {
            try? socket.send(.close)
            if socket.isReadable(waitingMilliseconds: Int32(max(100, timeoutSeconds * 100))) {
                _ = try? socket.receive()
            }
            abandon(reason: "closed")
        }
        pollCompletions(handler)
        if timedOut { throw .closing }
    }
}
