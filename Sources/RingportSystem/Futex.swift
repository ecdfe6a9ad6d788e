import _RingportShim

/// Futex wait and wake on a 32-bit word in shared memory (shared futexes: no private flag).
package enum Futex {
    package enum WaitResult: Sendable, Equatable {
        /// Woken by a wake on the word (or spuriously: callers re-check their condition).
        case woken
        /// The word did not hold the expected value when the kernel looked.
        case valueChanged
        case interrupted
        case timedOut
    }

    /// `FUTEX_WAIT`: sleeps while `*word == expected`, at most `timeoutNanoseconds` (nil: no limit).
    package static func wait(
        _ word: UnsafeMutablePointer<UInt32>,
        expected: UInt32,
        timeoutNanoseconds: Int64?
    ) -> WaitResult {
        switch rp_futex_wait(word, expected, timeoutNanoseconds ?? -1) {
        case 0: .woken
        case EAGAIN: .valueChanged
        case EINTR: .interrupted
        case ETIMEDOUT: .timedOut
        case let other: preconditionFailure("futex wait failed with errno \(other): a bad word address")
        }
    }

    /// `FUTEX_WAKE`: wakes up to `count` sleepers; returns how many woke.
    @discardableResult
    package static func wake(_ word: UnsafeMutablePointer<UInt32>, count: Int32 = Int32.max) -> Int {
        let woken = rp_futex_wake(word, count)
        precondition(woken >= 0, "futex wake failed with errno \(-woken): a bad word address")
        return Int(woken)
    }
}
