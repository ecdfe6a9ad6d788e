// Shared memory: the control block. The miniport writes the configuration once, the binding state and the
// statistics; the wake words are written by both sides as the wake-up protocol says (each flag only by its
// sleeper, each word by atomic add). Values read from it are checked like any other.

/// The binding's control block: configuration, state, wake words (one per direction) and statistics,
/// each writer in its own 128-byte block.
@frozen
public struct ControlBlock {
    @usableFromInline let base: UnsafeMutableRawPointer

    public static let size = 1024

    enum Offset {
        static let configuration = 0  // 7 x UInt32, miniport, once
        static let state = 128  // miniport
        static let miniportWake = 256  // word, then flag at +64: the miniport sleeps here
        static let protocolWake = 384  // word, then flag at +64: the protocol sleeps here
        static let statistics = 512  // miniport: UInt64 counters
    }

    public init(_ region: UnsafeMutableRawBufferPointer) {
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
    public var state: SharedWord { word(Offset.state) }
    /// The miniport's wake word and need-wake flag: the protocol wakes it after publishing `EndIndex`.
    public var miniportWake: WakeWords {
        WakeWords(word: word(Offset.miniportWake), flag: word(Offset.miniportWake + 64))
    }
    /// The protocol's wake word and need-wake flag: the miniport wakes it after returning packets.
    public var protocolWake: WakeWords {
        WakeWords(word: word(Offset.protocolWake), flag: word(Offset.protocolWake + 64))
    }

    /// Statistics counter `index` (0..<32), written by the miniport only.
    public func statistic(_ index: Int) -> UInt64 {
        precondition(index >= 0 && index < 32)
        return base.load(fromByteOffset: Offset.statistics + 8 * index, as: UInt64.self)
    }
    public func setStatistic(_ index: Int, _ value: UInt64) {
        precondition(index >= 0 && index < 32)
        base.storeBytes(of: value, toByteOffset: Offset.statistics + 8 * index, as: UInt64.self)
    }
}

/// The state of a binding as the miniport publishes it.
public enum BindingState: UInt32, Sendable {
    case opening = 0
    case open = 1
    /// The miniport is shutting down: outstanding sends complete with `CLOSING`.
    case closing = 2
}

/// A futex word and the need-wake flag of its sleeper (DESIGN.md, the verified wake-up protocol).
@frozen
public struct WakeWords {
    public let word: SharedWord
    public let flag: SharedWord
}
