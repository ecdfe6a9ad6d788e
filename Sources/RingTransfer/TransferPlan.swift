import RingportCore

/// A two-process transfer through one queue's rings: the OS side sends `packets` packets of
/// 1...`maxFragments` fragments; the driver side checks order and every payload byte and returns them.
/// Both sides derive each packet's shape and bytes from `seed` and its sequence number.
package struct TransferPlan: Sendable, Equatable {
    package var packets: Int
    package var maxFragments: Int
    package var maxFragmentBytes: Int
    package var seed: UInt64
    /// Packets the OS publishes with one `EndIndex` store.
    package var batch: Int
    /// Whether payload is written and checked (off: descriptors only, for the bare-ring benchmark).
    package var payload: Bool

    package init(
        packets: Int,
        maxFragments: Int = 4,
        maxFragmentBytes: Int = 64,
        seed: UInt64 = 1,
        batch: Int = 32,
        payload: Bool = true
    ) {
        self.packets = packets
        self.maxFragments = maxFragments
        self.maxFragmentBytes = maxFragmentBytes
        self.seed = seed
        self.batch = batch
        self.payload = payload
    }

    /// The shape of packet `sequence`: its fragments' lengths and offsets.
    @inlinable package func shape(of sequence: UInt64) -> PacketShape {
        var state = seed ^ (sequence &* SplitMix64.increment)
        let count = maxFragments == 1 ? 1 : 1 + Int(splitmix(&state) % UInt64(maxFragments))
        return PacketShape(sequence: sequence, fragmentCount: count, state: state, maxBytes: maxFragmentBytes)
    }

    /// The byte at `position` of fragment `fragment` of packet `sequence`.
    @inlinable package static func byte(_ sequence: UInt64, _ fragment: Int, _ position: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: sequence &* 131 &+ UInt64(fragment) &* 31 &+ UInt64(position) &* 7)
    }
}

/// One packet's fragment layout, drawn from the plan's seed.
package struct PacketShape {
    package let sequence: UInt64
    package let fragmentCount: Int
    @usableFromInline var state: UInt64
    @usableFromInline let maxBytes: Int

    @inlinable init(sequence: UInt64, fragmentCount: Int, state: UInt64, maxBytes: Int) {
        self.sequence = sequence
        self.fragmentCount = fragmentCount
        self.state = state
        self.maxBytes = maxBytes
    }

    /// The next fragment's length (1...maxBytes) and offset in its chunk (0...63).
    @inlinable package mutating func nextFragment() -> (length: Int, offset: Int) {
        let r = splitmix(&state)
        return (1 + Int(r % UInt64(maxBytes)), Int((r >> 32) % 64))
    }
}

@inlinable func splitmix(_ state: inout UInt64) -> UInt64 { SplitMix64.next(&state) }
