// Shared memory: packet descriptors. The protocol writes a descriptor while it owns the packet; the
// miniport reads it (and writes `status`) while the packet is sent. Neither side may trust what the other
// wrote: indices are checked against the table, lengths against the data area.

/// Who holds a packet descriptor (Docs/Design.md, invariant 3).
@frozen
@usableFromInline package struct PacketOwner: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    @usableFromInline package var rawValue: UInt32
    @inlinable package init(rawValue: UInt32) { self.rawValue = rawValue }
    // Computed and inlinable: a `static let` costs a call per use in another module, on every packet.
    @inlinable package static var free: PacketOwner { PacketOwner(rawValue: 0) }
    @inlinable package static var protocolSide: PacketOwner { PacketOwner(rawValue: 1) }
    @inlinable package static var miniport: PacketOwner { PacketOwner(rawValue: 2) }
    @usableFromInline package var description: String {
        switch self {
        case .free: "free"
        case .protocolSide: "protocol"
        case .miniport: "miniport"
        default: "owner(\(rawValue))"
        }
    }
}

/// `NdisPacketFlags` bits.
@frozen
public struct PacketFlags: OptionSet, Hashable, Sendable {
    /// The flag bits (the low four are a protocol id in NDIS).
    public var rawValue: UInt32
    /// The flags with these bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `NDIS_FLAGS_MULTICAST_PACKET`.
    public static let multicast = PacketFlags(rawValue: 0x10)
    /// `NDIS_FLAGS_DONT_LOOPBACK`: do not hand the packet back to the sender.
    public static let dontLoopback = PacketFlags(rawValue: 0x80)
    /// `NDIS_FLAGS_IS_LOOPBACK_PACKET`: a packet that was looped back.
    public static let isLoopback = PacketFlags(rawValue: 0x100)
    /// `NDIS_FLAGS_LOOPBACK_ONLY`.
    public static let loopbackOnly = PacketFlags(rawValue: 0x200)
    /// `NDIS_FLAGS_DOUBLE_BUFFERED`.
    public static let doubleBuffered = PacketFlags(rawValue: 0x800)
    /// `NDIS_FLAGS_SENT_AT_DPC`.
    public static let sentAtDPC = PacketFlags(rawValue: 0x1000)
}

/// A view of one packet descriptor (`NDIS_PACKET` with its `NDIS_PACKET_OOB_DATA`).
@frozen
@usableFromInline package struct PacketDescriptor {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline package let index: Int
    @usableFromInline package let protocolReservedBytes: Int

    @usableFromInline package static let fixedSize = 64

    @usableFromInline enum Offset {
        @usableFromInline static let owner = 0
        @usableFromInline static let generation = 4
        @usableFromInline static let flags = 8
        @usableFromInline static let status = 12
        @usableFromInline static let head = 16
        @usableFromInline static let tail = 20
        @usableFromInline static let bufferCount = 24
        @usableFromInline static let totalLength = 28
        @usableFromInline static let timeToSend = 32
        @usableFromInline static let timeReceived = 40
        @usableFromInline static let headerSize = 48
        @usableFromInline static let mediaSpecificSize = 52
        @usableFromInline static let mediaClass = 56
        @usableFromInline static let mediaValue = 60
        @usableFromInline static let protocolReserved = 64
    }

    @inlinable init(base: UnsafeMutableRawPointer, index: Int, protocolReservedBytes: Int) {
        self.base = base
        self.index = index
        self.protocolReservedBytes = protocolReservedBytes
    }

    @inlinable func load(_ offset: Int) -> UInt32 { base.load(fromByteOffset: offset, as: UInt32.self) }
    @inlinable func store(_ offset: Int, _ value: UInt32) {
        base.storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
    }

    @inlinable package var owner: PacketOwner {
        get { PacketOwner(rawValue: load(Offset.owner)) }
        nonmutating set { store(Offset.owner, newValue.rawValue) }
    }
    @usableFromInline package var generation: UInt32 {
        get { load(Offset.generation) }
        nonmutating set { store(Offset.generation, newValue) }
    }
    @usableFromInline package var flags: PacketFlags {
        get { PacketFlags(rawValue: load(Offset.flags)) }
        nonmutating set { store(Offset.flags, newValue.rawValue) }
    }
    /// The OOB `Status`: the miniport's completion status while it holds the packet.
    @inlinable package var status: NDISStatus {
        get { NDISStatus(rawValue: load(Offset.status)) }
        nonmutating set { store(Offset.status, newValue.rawValue) }
    }
    /// First and last buffer of the chain (`BufferTable.none` when empty), and the cached counts.
    @usableFromInline package var head: UInt32 {
        get { load(Offset.head) }
        nonmutating set { store(Offset.head, newValue) }
    }
    @usableFromInline package var tail: UInt32 {
        get { load(Offset.tail) }
        nonmutating set { store(Offset.tail, newValue) }
    }
    @usableFromInline package var bufferCount: UInt32 {
        get { load(Offset.bufferCount) }
        nonmutating set { store(Offset.bufferCount, newValue) }
    }
    @usableFromInline package var totalLength: UInt32 {
        get { load(Offset.totalLength) }
        nonmutating set { store(Offset.totalLength, newValue) }
    }
    /// OOB `TimeToSend` (the same eight bytes as `TimeSent`).
    @usableFromInline package var timeToSend: UInt64 {
        get { base.load(fromByteOffset: Offset.timeToSend, as: UInt64.self) }
        nonmutating set { base.storeBytes(of: newValue, toByteOffset: Offset.timeToSend, as: UInt64.self) }
    }
    @usableFromInline package var timeReceived: UInt64 {
        get { base.load(fromByteOffset: Offset.timeReceived, as: UInt64.self) }
        nonmutating set { base.storeBytes(of: newValue, toByteOffset: Offset.timeReceived, as: UInt64.self) }
    }
    @usableFromInline package var headerSize: UInt32 {
        get { load(Offset.headerSize) }
        nonmutating set { store(Offset.headerSize, newValue) }
    }
    /// OOB media-specific information: one entry (class and a 32-bit value), or nil.
    @usableFromInline package var mediaSpecificInformation: MediaSpecificInformation? {
        get {
            guard load(Offset.mediaSpecificSize) != 0 else { return nil }
            return MediaSpecificInformation(classID: load(Offset.mediaClass), value: load(Offset.mediaValue))
        }
        nonmutating set {
            store(Offset.mediaSpecificSize, newValue == nil ? 0 : 4)
            store(Offset.mediaClass, newValue?.classID ?? 0)
            store(Offset.mediaValue, newValue?.value ?? 0)
        }
    }

    /// Clears the OOB block (`NdisReinitializePacket` leaves it to the protocol; allocation zeroes it).
    @usableFromInline package func clearOutOfBand() {
        (base + Offset.timeToSend).initializeMemory(
            as: UInt8.self, repeating: 0, count: Offset.protocolReserved - Offset.timeToSend)
    }

    /// The `ProtocolReserved` bytes.
    @usableFromInline package func withProtocolReserved<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows
        -> R
    {
        try body(UnsafeMutableRawBufferPointer(start: base + Offset.protocolReserved, count: protocolReservedBytes))
    }
}

/// One `MEDIA_SPECIFIC_INFORMATION` entry.
public struct MediaSpecificInformation: Hashable, Sendable {
    /// The information's class (`NdisClass802_3Priority` is `class8023Priority`).
    public var classID: UInt32
    /// The class's value (for the 802.3 priority class, the priority).
    public var value: UInt32
    /// An entry of class `classID` with `value`.
    public init(classID: UInt32, value: UInt32) {
        self.classID = classID
        self.value = value
    }
    /// `NdisClass802_3Priority`.
    public static let class8023Priority: UInt32 = 0
    /// An 802.3 priority entry (`NdisClass802_3Priority`) with `priority`.
    public static func ieee8023Priority(_ priority: UInt8) -> MediaSpecificInformation {
        MediaSpecificInformation(classID: class8023Priority, value: UInt32(priority))
    }
    /// The 802.3 priority class, if this entry is one.
    public var ieee8023Priority: UInt8? { classID == Self.class8023Priority ? UInt8(truncatingIfNeeded: value) : nil }
}

/// The table of packet descriptors.
@frozen
@usableFromInline package struct DescriptorTable {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline package let count: Int
    @usableFromInline package let stride: Int
    @usableFromInline package let protocolReservedBytes: Int

    @usableFromInline package init(_ region: UnsafeMutableRawBufferPointer, configuration: BindingConfiguration) {
        precondition(region.count >= configuration.packetCount * configuration.descriptorStride)
        base = region.baseAddress!
        count = configuration.packetCount
        stride = configuration.descriptorStride
        protocolReservedBytes = configuration.protocolReservedBytes
    }

    /// Descriptor `index`, which must be below `count` (check peer-supplied indices with `contains`).
    @inlinable package subscript(index: Int) -> PacketDescriptor {
        precondition(index >= 0 && index < count, "descriptor index out of range")
        return PacketDescriptor(base: base + index * stride, index: index, protocolReservedBytes: protocolReservedBytes)
    }

    @inlinable package func contains(_ index: UInt32) -> Bool { Int(index) < count }
}

/// One buffer descriptor (`NDIS_BUFFER`): a byte range of one data-area chunk, and the chain link.
@frozen
@usableFromInline package struct BufferDescriptor {
    @usableFromInline let base: UnsafeMutableRawPointer
    /// Also the index of the buffer's chunk.
    @usableFromInline package let index: Int

    @usableFromInline package static let size = 16

    @inlinable init(base: UnsafeMutableRawPointer, index: Int) {
        self.base = base
        self.index = index
    }

    /// The next buffer in the packet's chain (`NDIS_BUFFER_LINKAGE`), or `BufferTable.none`.
    @usableFromInline package var next: UInt32 {
        get { base.load(fromByteOffset: 0, as: UInt32.self) }
        nonmutating set { base.storeBytes(of: newValue, toByteOffset: 0, as: UInt32.self) }
    }
    /// Where the buffer's bytes start in its chunk.
    @usableFromInline package var offset: UInt32 {
        get { base.load(fromByteOffset: 4, as: UInt32.self) }
        nonmutating set { base.storeBytes(of: newValue, toByteOffset: 4, as: UInt32.self) }
    }
    @usableFromInline package var length: UInt32 {
        get { base.load(fromByteOffset: 8, as: UInt32.self) }
        nonmutating set { base.storeBytes(of: newValue, toByteOffset: 8, as: UInt32.self) }
    }
}

/// The table of buffer descriptors, one per data-area chunk.
@frozen
@usableFromInline package struct BufferTable {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline package let count: Int
    /// The chain terminator.
    @usableFromInline package static let none = UInt32.max

    @usableFromInline package init(_ region: UnsafeMutableRawBufferPointer, count: Int) {
        precondition(region.count >= count * BufferDescriptor.size)
        base = region.baseAddress!
        self.count = count
    }

    @inlinable package subscript(index: Int) -> BufferDescriptor {
        precondition(index >= 0 && index < count, "buffer index out of range")
        return BufferDescriptor(base: base + index * BufferDescriptor.size, index: index)
    }
}
