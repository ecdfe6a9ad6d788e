import Glibc
import RingportSystem

/// How a side waits for its peer when there is nothing to do: spin with PAUSE, then yield the CPU; give up
/// once `timeoutSeconds` pass without progress (every wait in a test is bounded).
struct Backoff {
    let timeoutNanoseconds: UInt64
    let spins: Int
    var idle = 0
    /// When the current idle spell gives up: set at its first yield, so the timeout counts from the last
    /// progress (a deadline fixed at the start once failed any run longer than the timeout) and a busy side
    /// reads no clock.
    var deadline: UInt64 = 0

    init(timeoutSeconds: Double, spins: Int) {
        timeoutNanoseconds = UInt64(timeoutSeconds * 1e9)
        self.spins = max(spins, 1)
    }

    mutating func progressed() { idle = 0 }

    /// Waits a little; returns false once the timeout has passed with no progress.
    mutating func pause() -> Bool {
        idle += 1
        if idle < spins {
            ProcessControl.relax()
            return true
        }
        if idle == spins {
            deadline = ProcessControl.monotonicNanoseconds() + timeoutNanoseconds
        } else if idle & 255 == 0 && ProcessControl.monotonicNanoseconds() >= deadline {
            return false
        }
        sched_yield()
        return true
    }
}

/// Why a transfer stopped early.
package struct TransferFailure: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
