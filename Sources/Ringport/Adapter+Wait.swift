import RingportCore
import RingportSystem

extension Adapter {
    /// The wait of `waitForCompletions` and `waitForReceives`: polls; then, as `waitPolicy` says, spins or
    /// sleeps on the protocol's wake word until `ring`'s `BeginIndex` leaves `cursor`. A sleep has no timer of
    /// its own: the miniport's death wakes it through the control socket's hang-up (`HangupWatcher`).
    func wait(
        timeoutSeconds: Double,
        ring: NetRing,
        cursor: () -> UInt32,
        nothingToWaitFor: () -> Bool,
        poll: () -> Int
    ) -> Int {
        let deadline = ProcessControl.monotonicNanoseconds() &+ UInt64(max(0, min(timeoutSeconds, 1e9)) * 1e9)
        let flag = hangup?.flag
        while true {
            let count = poll()
            if count > 0 { return count }
            if case .closed = state, localCompletions.isEmpty { return 0 }
            if nothingToWaitFor() { return 0 }
            let seen = cursor()
            if spinner.spin(
                policy: waitPolicy, deadline: deadline, { ring.loadBeginIndex() != seen || flag?.isSet == true })
            {
                continue
            }
            let now = ProcessControl.monotonicNanoseconds()
            if now >= deadline { return 0 }
            spinner.willSleep()
            publishStatistics()
            // Unwatched (no descriptor was left for the watch), the socket is looked at every 50 ms instead.
            let timeout = Int64(clamping: flag == nil ? min(deadline - now, 50_000_000) : deadline - now)
            _ = regions.control.protocolWake.sleep(timeoutNanoseconds: timeout) {
                ring.loadBeginIndex() != seen || flag?.isSet == true || (flag == nil && socket.isReadable())
                    || Interruption.isRequested
            }
            lastLivenessCheck = 0
            checkLiveness()
            // A tool's Ctrl-C (the signal cut the sleep short): return, so it can print its summary.
            if Interruption.isRequested { return 0 }
        }
    }

    /// Waits that ended in a sleep since the binding opened.
    public var sleeps: UInt64 { spinner.sleeps }

    /// Notices a miniport that closed the connection or died: at once through the hang-up watch, else (and
    /// for a message the miniport sent) by looking at the socket, at most every millisecond.
    func checkLiveness() {
        if case .closed = state { return }
        if hangup?.flag.isSet == true {
            abandon(reason: "the miniport went away", reclaimingReturned: true)
            return
        }
        let now = ProcessControl.monotonicNanoseconds()
        guard now &- lastLivenessCheck > 1_000_000 else { return }
        lastLivenessCheck = now
        guard socket.isReadable() else { return }
        abandon(reason: "the miniport went away", reclaimingReturned: true)
    }
}
