// Shared memory: the control block. The miniport writes the configuration once, the binding state and the
// statistics; the protocol only its display values (wait policy, sleeps, pool use) in the last block; the
// wake words are written by both sides as the wake-up protocol says (each flag only by its
// sleeper, each word by atomic add). Values read from it are checked like any other.

/// The binding's control block: configuration, state, wake words (one per direction) and statistics,
/// each writer in its own 128-byte block.
@frozen
@usableFromInline package struct ControlBlock {
    @usableFromInline let base: UnsafeMutableRawPointer

    @usableFromInline package static let size = 1024

    enum Offset {
        static let configuration = 0  // 7 x UInt32, miniport, once
        static let state = 128  // miniport
        static let miniportWake = 256  // word, then flag at +64: the miniport sleeps here
        static let protocolWake = 384  // word, then flag at +64: the protocol sleeps here
        static let statistics = 512  // miniport: UInt64 counters
        static let protocolStatistics = 768  // protocol: UInt64 display values
    }

    @usableFromInline package init(_ region: UnsafeMutableRawBufferPointer) {
        precondition(region.count >= Self.size, "control region too small")
        base = region.baseAddress!
    }

    func writeConfiguration(_ c: BindingConfiguration) {
        let values = [
            c.packetCount, c.protocolReservedBytes, c.chunkCount, c.chunkSize, c.transmitRingSize, c.fragmentsPerPacket,
            c.receiveRingSize,
        ]
        for (i, value) in values.enumerated() {
            base.storeBytes(of: UInt32(value), toByteOffset: Offset.configuration + 4 * i, as: UInt32.self)
        }
    }

    func readConfiguration() -> BindingConfiguration {
        func value(_ i: Int) -> Int {
            Int(base.load(fromByteOffset: Offset.configuration + 4 * i, as: UInt32.self))
        }
        return BindingConfiguration(
            packetCount: value(0),
            protocolReservedBytes: value(1),
            chunkCount: value(2),
            chunkSize: value(3),
            transmitRingSize: value(4),
            fragmentsPerPacket: value(5),
            receiveRingSize: value(6)
        )
    }

    func word(_ offset: Int) -> SharedWord {
        SharedWord(UnsafeMutableRawBufferPointer(start: base, count: Self.size), offset: offset)
    }

    /// The binding's state, written by the miniport (`BindingState`).
    @usableFromInline package var state: SharedWord { word(Offset.state) }
    /// The miniport's wake word and need-wake flag: the protocol wakes it after publishing `EndIndex`.
    @usableFromInline package var miniportWake: WakeWords {
        WakeWords(word: word(Offset.miniportWake), flag: word(Offset.miniportWake + 64))
    }
    /// The protocol's wake word and need-wake flag: the miniport wakes it after returning packets.
    @usableFromInline package var protocolWake: WakeWords {
        WakeWords(word: word(Offset.protocolWake), flag: word(Offset.protocolWake + 64))
    }

    /// Statistics counter `index` (0..<32), written by the miniport only.
    @usableFromInline package func statistic(_ index: Int) -> UInt64 {
        precondition(index >= 0 && index < 32)
        return base.load(fromByteOffset: Offset.statistics + 8 * index, as: UInt64.self)
    }
    @usableFromInline package func setStatistic(_ index: Int, _ value: UInt64) {
        precondition(index >= 0 && index < 32)
        base.storeBytes(of: value, toByteOffset: Offset.statistics + 8 * index, as: UInt64.self)
    }

    /// A value only the protocol knows (`ProtocolStatistic`), published by it for display: a plain store in
    /// a block only the protocol writes. The miniport reads it as untrusted.
    package func setProtocolStatistic(_ field: ProtocolStatistic, _ value: UInt64) {
        base.storeBytes(of: value, toByteOffset: Offset.protocolStatistics + 8 * field.rawValue, as: UInt64.self)
    }
    package func protocolStatistic(_ field: ProtocolStatistic) -> UInt64 {
        base.load(fromByteOffset: Offset.protocolStatistics + 8 * field.rawValue, as: UInt64.self)
    }
}

/// What the protocol publishes in its block of the control block, for `ringport stat`; 0 until published.
package enum ProtocolStatistic: Int, Sendable {
    /// `WaitPolicy.code` of the binding's waits.
    case waitPolicy = 0
    /// Waits that ended in a sleep.
    case sleeps
    /// Packet descriptors allocated (held by the protocol or the miniport).
    case packetsInUse
    /// Data-area chunks the protocol allocated as send buffers (receive buffers not counted).
    case chunksInUse
}

extension WaitPolicy {
    /// The policy's number in the control block and control messages; 0 is "not known".
    package var code: UInt64 {
        switch self {
        case .busyPoll: 1
        case .adaptive: 2
        case .blocking: 3
        }
    }

    /// The policy a code names; nil for 0 or a value no policy has.
    package init?(code: UInt64) {
        switch code {
        case 1: self = .busyPoll
        case 2: self = .adaptive
        case 3: self = .blocking
        default: return nil
        }
    }
}

/// The state of a binding as the miniport publishes it.
@usableFromInline package enum BindingState: UInt32, Sendable {
    case opening = 0
    case open = 1
    /// The miniport is shutting down: outstanding sends complete with `CLOSING`.
    case closing = 2
}

/// A futex word and the need-wake flag of its sleeper (Docs/Design.md, "Wake-up protocol").
@frozen
@usableFromInline package struct WakeWords {
    @usableFromInline package let word: SharedWord
    @usableFromInline package let flag: SharedWord
}
