/// SplitMix64: a small, fast, deterministic generator for the test drivers, the stress tools and the tests.
/// A seed always gives the same sequence, on every machine and in every version, so a failing run replays.
/// Not for anything that must be unpredictable.
@frozen @usableFromInline package struct SplitMix64: RandomNumberGenerator {
    @usableFromInline package var state: UInt64

    @inlinable package init(state: UInt64) { self.state = state }

    /// What each step adds to the state (2^64 over the golden ratio); also spreads seeds apart.
    @inlinable package static var increment: UInt64 { 0x9E37_79B9_7F4A_7C15 }

    /// Advances `state` and returns the next value (for callers that keep a bare `UInt64` state).
    @inlinable package static func next(_ state: inout UInt64) -> UInt64 {
        state &+= increment
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inlinable package mutating func next() -> UInt64 { Self.next(&state) }

    /// A value in `0..<bound` by modulo (a bound below 1 counts as 1): slightly biased, but stable, which
    /// the replayable tools need more than uniformity.
    @inlinable package mutating func next(below bound: Int) -> Int {
        Int(next() % UInt64(max(1, bound)))
    }
}
