import _RingportShim

// Shared memory: a packet element belongs to exactly one side at a time (the driver inside
// `[BeginIndex, EndIndex)`, the OS outside); the other side must not write it, and may be writing it
// right now if it is not ours.

/// A view of one packet element (`NET_PACKET` plus the reference of an NDIS packet descriptor).
///
/// In checked mode every write goes through the verifier (which rejects writes the contract forbids,
/// such as the driver changing `ignore` on a transmit packet) and into the side's shadow copy, so a
/// later change by the peer can be told from our own.
@frozen
public struct NetPacket: NetRingElement {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let shadow: UnsafeMutableRawPointer?
    @usableFromInline unowned(unsafe) let verifier: NetRingVerifier?
    /// The element's index in the packet ring (`NetPacketIteratorGetIndex`).
    public let index: UInt32

    @usableFromInline package static let size = MemoryLayout<rp_net_packet>.size

    @usableFromInline enum Offset {
        @usableFromInline static let fragmentIndex = 0
        @usableFromInline static let fragmentCount = 4
        @usableFromInline static let layout = 6
        @usableFromInline static let flags = 11
        @usableFromInline static let descriptor = 12
    }
    @usableFromInline static let ignoreBit: UInt8 = 0x1
    @usableFromInline static let scratchBit: UInt8 = 0x2

    @inlinable init(
        base: UnsafeMutableRawPointer,
        shadow: UnsafeMutableRawPointer?,
        verifier: NetRingVerifier?,
        index: UInt32
    ) {
        self.base = base
        self.shadow = shadow
        self.verifier = verifier
        self.index = index
    }

    /// Packets live in a collection's packet ring.
    public static var ringType: NetRingType { .packet }

    /// A view of element `index` of `ring`, checked through `verifier` when there is one.
    @inlinable public init(_ ring: NetRing, at index: UInt32, verifier: NetRingVerifier?) {
        self.init(
            base: ring.element(at: index),
            shadow: verifier.map { $0.packet.shadow(at: index) },
            verifier: verifier,
            index: index
        )
    }

    /// Fragment-ring index of the first fragment. Untrusted when the peer wrote it: mask before use.
    @inlinable public var fragmentIndex: UInt32 {
        get { base.load(fromByteOffset: Offset.fragmentIndex, as: UInt32.self) }
        nonmutating set { store(newValue, at: Offset.fragmentIndex, field: .fragmentIndex) }
    }

    /// Number of fragments, contiguous in the fragment ring. 0 on an ignored transmit packet.
    @inlinable public var fragmentCount: UInt16 {
        get { base.load(fromByteOffset: Offset.fragmentCount, as: UInt16.self) }
        nonmutating set { store(newValue, at: Offset.fragmentCount, field: .fragmentCount) }
    }

    /// `Layout`: the header lengths and types the driver reports on receive.
    @inlinable public var layout: NetPacketLayout {
        get {
            var bits: UInt64 = 0
            for i in 0..<5 {
                bits |= UInt64(base.load(fromByteOffset: Offset.layout + i, as: UInt8.self)) << (8 * i)
            }
            return NetPacketLayout(bits: bits)
        }
        nonmutating set {
            verifier?.willWrite(packet: index, field: .layout)
            for i in 0..<5 {
                let byte = UInt8(truncatingIfNeeded: newValue.bits >> (8 * i))
                base.storeBytes(of: byte, toByteOffset: Offset.layout + i, as: UInt8.self)
                shadow?.storeBytes(of: byte, toByteOffset: Offset.layout + i, as: UInt8.self)
            }
        }
    }

    /// `Ignore`: set only by the OS on transmit (a packet it could not translate) and only by the
    /// driver on receive (a frame to drop).
    @inlinable public var ignore: Bool {
        get { flags & Self.ignoreBit != 0 }
        nonmutating set { setFlag(Self.ignoreBit, newValue, field: .ignore) }
    }

    /// `Scratch`: the driver's one bit; the OS resets it when it reuses the element.
    @inlinable public var scratch: Bool {
        get { flags & Self.scratchBit != 0 }
        nonmutating set { setFlag(Self.scratchBit, newValue, field: .scratch) }
    }

    /// The NDIS packet descriptor this element carries (an index the OS side gives meaning to).
    @inlinable public var descriptor: UInt32 {
        get { base.load(fromByteOffset: Offset.descriptor, as: UInt32.self) }
        nonmutating set { store(newValue, at: Offset.descriptor, field: .descriptor) }
    }

    @inlinable var flags: UInt8 { base.load(fromByteOffset: Offset.flags, as: UInt8.self) }

    @inlinable func setFlag(_ bit: UInt8, _ on: Bool, field: PacketField) {
        let value = on ? flags | bit : flags & ~bit
        store(value, at: Offset.flags, field: field)
    }

    @inlinable func store<T: FixedWidthInteger>(_ value: T, at offset: Int, field: PacketField) {
        verifier?.willWrite(packet: index, field: field)
        base.storeBytes(of: value, toByteOffset: offset, as: T.self)
        shadow?.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    /// Writes the whole element at once, as the OS does when it reuses one (`reset`, then the fields):
    /// layout and `Scratch` zero, two stores.
    @inlinable package func fill(fragmentIndex: UInt32, fragmentCount: UInt16, ignore: Bool, descriptor: UInt32) {
        if verifier != nil { verifier!.willWrite(packet: index, field: .all) }  // unchecked: no retain
        // Little-endian bytes 0-7: fragmentIndex, fragmentCount, layout[0..<2]; 8-15: layout[2..<5], flags,
        // descriptor (the offsets above).
        let low = UInt64(fragmentIndex) | UInt64(fragmentCount) << 32
        let high = UInt64(ignore ? Self.ignoreBit : 0) << 24 | UInt64(descriptor) << 32
        base.storeBytes(of: low.littleEndian, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: high.littleEndian, toByteOffset: 8, as: UInt64.self)
        shadow?.storeBytes(of: low.littleEndian, toByteOffset: 0, as: UInt64.self)
        shadow?.storeBytes(of: high.littleEndian, toByteOffset: 8, as: UInt64.self)
    }

    /// Zeroes the element, as the OS does before it reuses one (so `Scratch` starts at 0).
    @inlinable package func reset() {
        verifier?.willWrite(packet: index, field: .all)
        base.storeBytes(of: 0, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: 0, toByteOffset: 8, as: UInt64.self)
        shadow?.storeBytes(of: 0, toByteOffset: 0, as: UInt64.self)
        shadow?.storeBytes(of: 0, toByteOffset: 8, as: UInt64.self)
    }
}

/// The fields of a packet element, named in checked-mode reports.
@usableFromInline package enum PacketField: String, Sendable {
    case fragmentIndex, fragmentCount, layout, ignore, scratch, descriptor, all
}

/// `NET_PACKET_LAYOUT`: five bytes of bit fields, packed as MSVC packs them (low bits first).
@frozen
public struct NetPacketLayout: Hashable, Sendable {
    /// The 40 packed bits.
    public var bits: UInt64

    /// The layout packed in the low 40 bits of `bits`.
    @inlinable public init(bits: UInt64) { self.bits = bits & 0xFF_FFFF_FFFF }

    /// A layout with these types and header lengths (each length must fit its bit field).
    public init(
        layer2Type: Layer2Type = .unspecified,
        layer3Type: Layer3Type = .unspecified,
        layer4Type: Layer4Type = .unspecified,
        layer2HeaderLength: Int = 0,
        layer3HeaderLength: Int = 0,
        layer4HeaderLength: Int = 0
    ) {
        bits = 0
        self.layer2Type = layer2Type
        self.layer3Type = layer3Type
        self.layer4Type = layer4Type
        self.layer2HeaderLength = layer2HeaderLength
        self.layer3HeaderLength = layer3HeaderLength
        self.layer4HeaderLength = layer4HeaderLength
    }

    @inlinable func field(_ shift: Int, _ width: Int) -> Int { Int((bits >> shift) & (1 << width - 1)) }
    @inlinable mutating func setField(_ shift: Int, _ width: Int, _ value: Int) {
        precondition(value >= 0 && value < 1 << width, "layout field out of range")
        bits = bits & ~((1 << UInt64(width) - 1) << shift) | UInt64(value) << shift
    }

    /// `Layer2HeaderLength:7`.
    public var layer2HeaderLength: Int {
        get { field(0, 7) }
        set { setField(0, 7, newValue) }
    }
    /// `Layer3HeaderLength:9`.
    public var layer3HeaderLength: Int {
        get { field(7, 9) }
        set { setField(7, 9, newValue) }
    }
    /// `Layer4HeaderLength:8`.
    public var layer4HeaderLength: Int {
        get { field(16, 8) }
        set { setField(16, 8, newValue) }
    }
    /// `Layer2Type:4`.
    public var layer2Type: Layer2Type {
        get { Layer2Type(rawValue: UInt8(field(24, 4))) }
        set { setField(24, 4, Int(newValue.rawValue)) }
    }
    /// `Layer3Type:4`.
    public var layer3Type: Layer3Type {
        get { Layer3Type(rawValue: UInt8(field(28, 4))) }
        set { setField(28, 4, Int(newValue.rawValue)) }
    }
    /// `Layer4Type:4`.
    public var layer4Type: Layer4Type {
        get { Layer4Type(rawValue: UInt8(field(32, 4))) }
        set { setField(32, 4, Int(newValue.rawValue)) }
    }

    /// `NET_PACKET_LAYER2_TYPE`.
    @frozen public struct Layer2Type: RawRepresentable, Hashable, Sendable {
        /// The 4-bit value.
        public var rawValue: UInt8
        /// The type with this value.
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Not reported.
        public static let unspecified = Self(rawValue: 0)
        /// No layer 2 header.
        public static let null = Self(rawValue: 1)
        /// Ethernet.
        public static let ethernet = Self(rawValue: 2)
        /// IEEE 802.11.
        public static let ieee80211 = Self(rawValue: 3)
    }
    /// `NET_PACKET_LAYER3_TYPE`.
    @frozen public struct Layer3Type: RawRepresentable, Hashable, Sendable {
        /// The 4-bit value.
        public var rawValue: UInt8
        /// The type with this value.
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Not reported.
        public static let unspecified = Self(rawValue: 0)
        /// IPv4, options not known.
        public static let ipv4UnspecifiedOptions = Self(rawValue: 1)
        /// IPv4 with options.
        public static let ipv4WithOptions = Self(rawValue: 2)
        /// IPv4 without options.
        public static let ipv4NoOptions = Self(rawValue: 3)
        /// IPv6, extension headers not known.
        public static let ipv6UnspecifiedExtensions = Self(rawValue: 4)
        /// IPv6 with extension headers.
        public static let ipv6WithExtensions = Self(rawValue: 5)
        /// IPv6 without extension headers.
        public static let ipv6NoExtensions = Self(rawValue: 6)
    }
    /// `NET_PACKET_LAYER4_TYPE`.
    @frozen public struct Layer4Type: RawRepresentable, Hashable, Sendable {
        /// The 4-bit value.
        public var rawValue: UInt8
        /// The type with this value.
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Not reported.
        public static let unspecified = Self(rawValue: 0)
        /// TCP.
        public static let tcp = Self(rawValue: 1)
        /// UDP.
        public static let udp = Self(rawValue: 2)
        /// An IP fragment (no layer 4 header of its own).
        public static let ipFragment = Self(rawValue: 3)
        /// Not an IP fragment, layer 4 protocol not reported.
        public static let ipNotFragment = Self(rawValue: 4)
    }
}
