import RingportSystem

/// Passes at most `burst` lines per second and counts the rest, so no peer can grow the log without bound
/// (a flood of refused completions or broken rings costs one summary line a second).
struct LogLimiter {
    let burst: Int
    var windowStart: UInt64 = 0
    var passed = 0
    var suppressed = 0

    init(burst: Int = 20) { self.burst = burst }

    /// Whether to log a line now; a line that opens a new window first reports what the last one dropped.
    mutating func admit(_ emit: (String) -> Void) -> Bool {
        let now = ProcessControl.monotonicNanoseconds()
        if now &- windowStart >= 1_000_000_000 {
            if suppressed > 0 { emit("\(suppressed) similar lines suppressed in the last second") }
            windowStart = now
            passed = 0
            suppressed = 0
        }
        guard passed < burst else {
            suppressed += 1
            return false
        }
        passed += 1
        return true
    }
}
