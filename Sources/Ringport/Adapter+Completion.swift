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
                handler(Packet(raw), status)
                completed += 1
            }
        }
        if completed == 0 {
            checkLiveness()
        } else {
            poolPublishCountdown &-= 1
            if poolPublishCountdown <= 0 {
                poolPublishCountdown = 64
                publishStatistics()
            }
        }
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

    /// Takes back what the miniport returned; a broken ring contract closes the binding.
    func reclaim(_ handler: (consuming Packet, NDISStatus) -> Void) -> Int {
        // Counted as handed out: a contract broken after some completions still reports them.
        var delivered = 0
        do {
            _ = try takeBackReturned { index, status in
                delivered += 1
                handler(Packet(adapter: self, index: index, generation: generation[index]), status)
            }
        } catch {
            abandon(reason: "the miniport broke the ring contract: \(error)", reclaimingReturned: false)
        }
        return delivered
    }

    /// Takes back the packets (then the fragments) the miniport returned through `BeginIndex`, handing each
    /// descriptor with the status the miniport wrote in it. The descriptor comes from this side's own record
    /// of the slot, never from the element; the status is loaded once. The fragment ring's `BeginIndex` is
    /// read only when packets came back (the miniport returns fragments first) or in checked mode; a send
    /// that finds the fragment ring full by this view reads it again.
    func takeBackReturned(_ body: (Int, NDISStatus) -> Void) throws(NetRingViolation) -> Int {
        let count = try transmit.reclaimPacketSlots { ringIndex in
            let slot = Int(ringIndex)
            let index = Int(slotDescriptor[slot])
            guard index >= 0 && index < configuration.packetCount else { return }  // reclaim stays in what was sent
            let written = regions.descriptors[index].status
            var status = slotIgnored[slot] ? .invalidPacket : written
            if status == .pending { status = .failure }  // returned but not completed: a miniport bug
            slotDescriptor[slot] = -1
            finish(index)
            body(index, status)
        }
        if count > 0 || transmit.verifier != nil { _ = try transmit.reclaimFragments() }
        return count
    }

    /// A new handle to packet `index` (counted), held until a poll delivers it.
    func newRawPacket(_ index: Int) -> RawPacket {
        handleCreated()
        return RawPacket(binding: BindingReference(self), index: index, generation: generation[index])
    }

    /// The packet is the protocol's again.
    func finish(_ index: Int) {
        owner[index] = .protocolSide
        regions.descriptors[index].owner = .protocolSide
        outstandingSends -= 1
    }

    /// The binding is gone: every packet still with the miniport completes, in ring order, then the backlog.
    /// When the miniport went away or closed the binding (`reclaimingReturned`), what it returned through the
    /// rings first completes with the status it wrote, as a poll would have; only the rest completes here
    /// with `CLOSING`. After a broken contract the rings are not read again: everything not taken back yet
    /// completes with `CLOSING`.
    func abandon(reason: String, reclaimingReturned: Bool) {
        if case .closed = state { return }
        var reason = reason
        if reclaimingReturned {
            do {
                _ = try takeBackReturned { index, status in
                    localCompletions.append((newRawPacket(index), status))
                }
            } catch {
                reason = "the miniport broke the ring contract: \(error)"
            }
        }
        state = .closed(reason: reason)
        var slot = transmit.packetCursor
        while slot != transmit.packetEnd {
            let index = Int(slotDescriptor[Int(slot)])
            if index >= 0 && index < configuration.packetCount {
                slotDescriptor[Int(slot)] = -1
                finish(index)
                localCompletions.append((newRawPacket(index), .closing))
            }
            slot = transmit.packetRing.increment(slot)
        }
        for i in 0..<backlog.count {
            let index = Int(backlog[i])
            finish(index)
            localCompletions.append((newRawPacket(index), .closing))
        }
        backlog.removeAll()
    }

    /// Waits up to `seconds` for the miniport's `.closed` answer or the connection closing.
    /// Waits for the miniport's `closed` or the connection's end; false if neither came in time.
    @discardableResult
    func waitForClosed(seconds: Double) -> Bool {
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(seconds * 1e9)
        while true {
            let now = ProcessControl.monotonicNanoseconds()
            guard now < deadline else { return false }
            let milliseconds = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            guard socket.isReadable(waitingMilliseconds: milliseconds) else { return false }
            guard let received = try? socket.receive() else { return true }  // the connection broke
            switch consume received {
            case .message(.closed, let fd):
                if fd >= 0 { Glibc.close(fd) }
                return true
            case .message(_, let fd):
                if fd >= 0 { Glibc.close(fd) }  // not the answer: keep waiting
            case .closed: return true
            case .malformed: return true
            case .nothing: continue
            }
        }
    }

    /// `NdisCloseAdapter`: new sends complete with `CLOSING`; waits (up to `timeoutSeconds`) until every
    /// outstanding send has completed, handing each to `handler`; then asks the miniport to close the binding
    /// and waits (up to `max(1, timeoutSeconds)` more) until it has let go of it: when `close` returns
    /// without throwing, the miniport no longer touches the segment. Throws `CLOSING` if the sends did not all
    /// complete in time (the miniport then cancels them, and they complete with `CLOSING`), or if a living
    /// miniport did not let go in time: then what it still holds stays its own, the binding stays closing,
    /// and a later `close`, a poll, or the miniport's death completes the rest (never two owners).
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
            // The miniport answers `.closed` only once it let go of the binding: what it held is cancelled
            // (`CLOSING`) and everything is back in the rings. Take that back first (real statuses), and only
            // then complete what is still missing here.
            try? socket.send(.close)
            guard waitForClosed(seconds: max(1, timeoutSeconds)) else {
                // No answer and the miniport lives: what it still holds stays its own (handing it back now
                // would make two owners). The binding stays closing; a later poll or close, or the
                // miniport's death, completes the rest.
                pollCompletions(handler)
                throw .closing
            }
            abandon(reason: "closed", reclaimingReturned: true)
        }
        pollCompletions(handler)
        if timedOut { throw .closing }
    }
}
