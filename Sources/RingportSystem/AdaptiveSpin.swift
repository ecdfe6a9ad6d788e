import Glibc
package import RingportCore

/// The spin before a sleep, bounded by the clock, for `WaitPolicy.adaptive`; it offers the CPU every
/// microsecond, so a peer on the same CPU is not kept from giving us work. The budget learns from what
/// spinning found: a wait that ended while spinning lets it grow to twice that wait, a spin that found
/// nothing halves it, so spinning that rarely pays stops costing. A small floor keeps probing, so short waits
/// are noticed again when the traffic changes.
package struct AdaptiveSpin: Sendable {
    package static let ceilingNanoseconds: UInt64 = 50_000
    package static let floorNanoseconds: UInt64 = 2_000
    /// Spinning between two offers of the CPU.
    package static let sliceNanoseconds: UInt64 = 1_000

    package private(set) var budgetNanoseconds: UInt64 = 20_000
    /// Waits that ended in a sleep.
    package private(set) var sleeps: UInt64 = 0

    package init() {}

    /// Spins (then yields) while `ready` is false, as long as the policy says; true if `ready` became true.
    /// `busyPoll` spins until `deadline`; `blocking` does not spin.
    package mutating func spin(policy: WaitPolicy, deadline: UInt64, _ ready: () -> Bool) -> Bool {
        switch policy {
        case .blocking:
            return ready()
        case .busyPoll:
            while true {
                for _ in 0..<64 {
                    if ready() { return true }
                    ProcessControl.relax()
                }
                if ProcessControl.monotonicNanoseconds() >= deadline { return ready() }
            }
        case .adaptive:
            // Spinning, and between slices the CPU offered to whatever else is runnable here (the peer that
            // would give us work may be waiting for it), until the budget is spent.
            let start = ProcessControl.monotonicNanoseconds()
            guard deadline > start else { return ready() }  // a poll, not a wait: nothing to learn
            let end = min(deadline, start &+ budgetNanoseconds)
            let budgetEnds = end == start &+ budgetNanoseconds  // else the caller's deadline does
            var now = start
            repeat {
                let slice = min(end, now &+ Self.sliceNanoseconds)
                repeat {
                    for _ in 0..<16 {
                        if ready() {
                            found(after: ProcessControl.monotonicNanoseconds() &- start)
                            return true
                        }
                        ProcessControl.relax()
                    }
                    now = ProcessControl.monotonicNanoseconds()
                } while now < slice
                sched_yield()
                now = ProcessControl.monotonicNanoseconds()
                if ready() {
                    found(after: now &- start)
                    return true
                }
            } while now < end
            if budgetEnds { budgetNanoseconds = max(Self.floorNanoseconds, budgetNanoseconds / 2) }
            return false
        }
    }

    /// The caller is about to sleep (counted, for statistics).
    package mutating func willSleep() { sleeps &+= 1 }

    mutating func found(after waited: UInt64) {
        budgetNanoseconds = min(Self.ceilingNanoseconds, max(budgetNanoseconds, 2 * waited))
    }
}
