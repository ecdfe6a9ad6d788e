import Glibc
import RingportSystem

/// How a side waits for its peer when there is nothing to do: spin with PAUSE, then yield the CPU; give up
/// at a deadline (every wait in a test is bounded).
struct Backoff {
    let deadline: UInt64
    let spins: Int
    var idle = 0

    init(timeoutSeconds: Double, spins: Int) {
        deadline = ProcessControl.monotonicNanoseconds() + UInt64(timeoutSeconds * 1e9)
        self.spins = spins
    }

    mutating func progressed() { idle = 0 }

    /// Waits a little; returns false once the deadline has passed with no progress.
    mutating func pause() -> Bool {
        idle += 1
        if idle < spins {
            ProcessControl.relax()
            return true
        }
        sched_yield()
        if idle & 255 == 0 { return ProcessControl.monotonicNanoseconds() < deadline }
        return true
    }
}

/// Why a transfer stopped early.
public struct TransferFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
