// Shared memory: one segment per binding, created by the miniport. The miniport and one protocol process
// map it; each writes only what its role owns (see each region's view) and checks everything it reads.

/// The sizes of one binding's segment. The protocol asks for them when it opens the adapter; the miniport
/// clamps them to its limits and says what it granted.
public struct BindingConfiguration: Hashable, Sendable {
    /// Packet descriptors in the pool (`NdisAllocatePacketPool`'s NumberOfDescriptors).
    public var packetCount: Int
    /// `ProtocolReserved` bytes per packet descriptor.
    public var protocolReservedBytes: Int
    /// Data-area chunks; one buffer descriptor per chunk.
    public var chunkCount: Int
    /// Bytes per chunk: the largest buffer, and so the largest received frame.
    public var chunkSize: Int
    /// Elements of the transmit packet ring (a power of two); the fragment ring has `fragmentsPerPacket` times as many.
    public var transmitRingSize: Int
    /// The most buffers one transmit packet may chain (a power of two).
    public var fragmentsPerPacket: Int
    /// Elements of the receive packet ring and of its fragment ring (one buffer per received packet).
    public var receiveRingSize: Int
    /// Which received frames the binding wants (`OID_GEN_CURRENT_PACKET_FILTER`); none: it only sends, and a
    /// lossless driver never waits for it.
    public var packetFilter: PacketFilter

    /// A configuration with these sizes; a miniport grants at most `maximum` and rounds as `clamped` does.
    public init(
        packetCount: Int = 1024,
        protocolReservedBytes: Int = 16,
        chunkCount: Int = 4096,
        chunkSize: Int = 2048,
        transmitRingSize: Int = 512,
        fragmentsPerPacket: Int = 8,
        receiveRingSize: Int = 256,
        packetFilter: PacketFilter = .default
    ) {
        self.packetCount = packetCount
        self.protocolReservedBytes = protocolReservedBytes
        self.chunkCount = chunkCount
        self.chunkSize = chunkSize
        self.transmitRingSize = transmitRingSize
        self.fragmentsPerPacket = fragmentsPerPacket
        self.receiveRingSize = receiveRingSize
        self.packetFilter = packetFilter
    }

    /// The limits a miniport grants at most.
    public static let maximum = BindingConfiguration(
        packetCount: 65_535,
        protocolReservedBytes: 256,
        chunkCount: 262_144,
        chunkSize: 65_536,
        transmitRingSize: 16_384,
        fragmentsPerPacket: 16,
        receiveRingSize: 16_384
    )

    /// Every size within `1...maximum`, rings rounded up to powers of two, chunks to multiples of 64.
    public func clamped(to limit: BindingConfiguration = .maximum) -> BindingConfiguration {
        func clamp(_ value: Int, _ low: Int, _ high: Int) -> Int { Swift.min(Swift.max(value, low), high) }
        func powerOfTwo(_ value: Int) -> Int { 1 << (Int.bitWidth - (Swift.max(value, 2) - 1).leadingZeroBitCount) }
        return BindingConfiguration(
            packetCount: clamp(packetCount, 1, limit.packetCount),
            protocolReservedBytes: clamp(protocolReservedBytes, 0, limit.protocolReservedBytes),
            chunkCount: clamp(chunkCount, 1, limit.chunkCount),
            chunkSize: (clamp(chunkSize, 64, limit.chunkSize) + 63) & ~63,
            transmitRingSize: powerOfTwo(clamp(transmitRingSize, 2, limit.transmitRingSize)),
            fragmentsPerPacket: powerOfTwo(clamp(fragmentsPerPacket, 1, limit.fragmentsPerPacket)),
            receiveRingSize: powerOfTwo(clamp(receiveRingSize, 2, limit.receiveRingSize)),
            packetFilter: packetFilter.intersection(.known)
        )
    }

    @usableFromInline package var descriptorStride: Int {
        PacketDescriptor.fixedSize + (protocolReservedBytes + 63) & ~63
    }
    @usableFromInline package var fragmentRingSize: Int { transmitRingSize * fragmentsPerPacket }

    /// The segment's regions, in order.
    package var layout: SegmentLayout {
        var layout = SegmentLayout()
        layout.add(.control, length: ControlBlock.size)
        layout.add(.descriptorTable, length: packetCount * descriptorStride)
        layout.add(.bufferTable, length: chunkCount * BufferDescriptor.size)
        layout.add(.packetRing, queue: 0, length: NetRing.regionSize(count: transmitRingSize, stride: NetPacket.size))
        layout.add(
            .fragmentRing,
            queue: 0,
            length: NetRing.regionSize(count: fragmentRingSize, stride: NetFragment.size)
        )
        layout.add(.packetRing, queue: 1, length: NetRing.regionSize(count: receiveRingSize, stride: NetPacket.size))
        layout.add(
            .fragmentRing,
            queue: 1,
            length: NetRing.regionSize(count: receiveRingSize, stride: NetFragment.size)
        )
        layout.add(.dataArea, length: chunkCount * chunkSize, alignment: 4096)
        return layout
    }
}

/// The frames a binding receives: NDIS's `NDIS_PACKET_TYPE_*` bits. The built-in `loopback` and `hub` do
/// not parse addresses: they deliver every frame to a binding whose filter is not empty, and none to one
/// whose filter is empty.
public struct PacketFilter: OptionSet, Hashable, Sendable {
    /// The `NDIS_PACKET_TYPE_*` bits.
    public let rawValue: UInt32
    /// The filter with these bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Frames addressed to this binding.
    public static let directed = PacketFilter(rawValue: 0x1)
    /// Frames to the multicast addresses it joined.
    public static let multicast = PacketFilter(rawValue: 0x2)
    /// Every multicast frame.
    public static let allMulticast = PacketFilter(rawValue: 0x4)
    /// Broadcast frames.
    public static let broadcast = PacketFilter(rawValue: 0x8)
    /// Every frame.
    public static let promiscuous = PacketFilter(rawValue: 0x20)
    /// Nothing: a binding that only sends.
    public static let none: PacketFilter = []
    /// Directed, multicast and broadcast: what a binding receives unless it says otherwise.
    public static let `default`: PacketFilter = [.directed, .multicast, .broadcast]
    static let known: PacketFilter = [.directed, .multicast, .allMulticast, .broadcast, .promiscuous]
}

extension RegionKind {
    @usableFromInline package static let bufferTable = RegionKind(rawValue: 6)
}

/// A binding's segment, validated: the views of each region, made from a private copy of the geometry.
@usableFromInline package struct BindingRegions {
    @usableFromInline package let configuration: BindingConfiguration
    @usableFromInline package let control: ControlBlock
    @usableFromInline package let descriptors: DescriptorTable
    @usableFromInline package let buffers: BufferTable
    @usableFromInline package let transmitPacketRing: NetRing
    @usableFromInline package let transmitFragmentRing: NetRing
    @usableFromInline package let receivePacketRing: NetRing
    @usableFromInline package let receiveFragmentRing: NetRing
    @usableFromInline package let data: DataArea

    /// Writes fresh ring headers and the control block into a new segment (the miniport does this).
    package static func initialize(
        header: SegmentHeader,
        configuration: BindingConfiguration,
        bytes: (Region) -> UnsafeMutableRawBufferPointer
    ) throws(SegmentError) -> BindingRegions {
        let control = ControlBlock(bytes(try header.region(.control)))
        control.writeConfiguration(configuration)
        _ = try NetRing.initialize(
            at: bytes(try header.region(.packetRing)),
            count: configuration.transmitRingSize,
            stride: NetPacket.size,
            flags: [.packet, .transmit]
        )
        _ = try NetRing.initialize(
            at: bytes(try header.region(.fragmentRing)),
            count: configuration.fragmentRingSize,
            stride: NetFragment.size,
            flags: [.fragment, .transmit]
        )
        _ = try NetRing.initialize(
            at: bytes(try header.region(.packetRing, queue: 1)),
            count: configuration.receiveRingSize,
            stride: NetPacket.size,
            flags: [.packet, .receive]
        )
        _ = try NetRing.initialize(
            at: bytes(try header.region(.fragmentRing, queue: 1)),
            count: configuration.receiveRingSize,
            stride: NetFragment.size,
            flags: [.fragment, .receive]
        )
        // The segment records the geometry only; the packet filter granted is the miniport's to keep.
        let attached = try attach(header: header, bytes: bytes)
        return BindingRegions(
            configuration: configuration,
            control: attached.control,
            descriptors: attached.descriptors,
            buffers: attached.buffers,
            transmitPacketRing: attached.transmitPacketRing,
            transmitFragmentRing: attached.transmitFragmentRing,
            receivePacketRing: attached.receivePacketRing,
            receiveFragmentRing: attached.receiveFragmentRing,
            data: attached.data
        )
    }

    /// Validates a binding segment: its configuration against its regions, and its rings.
    package static func attach(
        header: SegmentHeader,
        bytes: (Region) -> UnsafeMutableRawBufferPointer
    ) throws(SegmentError) -> BindingRegions {
        let control = ControlBlock(bytes(try header.region(.control)))
        let configuration = control.readConfiguration()
        guard configuration.clamped() == configuration else {
            throw .badRingGeometry("binding configuration out of range: \(configuration)")
        }
        let expected = configuration.layout
        guard expected.regions.count == header.regions.count,
            zip(expected.regions, header.regions).allSatisfy({ $0.kind == $1.kind && $0.length <= $1.length })
        else { throw .badRegion(index: 0, reason: "regions do not match the binding configuration") }
        let packetRing = try NetRing.attach(to: bytes(try header.region(.packetRing)))
        let fragmentRing = try NetRing.attach(to: bytes(try header.region(.fragmentRing)))
        guard packetRing.flags == [.packet, .transmit], fragmentRing.flags == [.fragment, .transmit],
            Int(packetRing.numberOfElements) == configuration.transmitRingSize,
            Int(fragmentRing.numberOfElements) == configuration.fragmentRingSize
        else { throw .badRingGeometry("transmit rings do not match the binding configuration") }
        let receivePackets = try NetRing.attach(to: bytes(try header.region(.packetRing, queue: 1)))
        let receiveFragments = try NetRing.attach(to: bytes(try header.region(.fragmentRing, queue: 1)))
        guard receivePackets.flags == [.packet, .receive], receiveFragments.flags == [.fragment, .receive],
            Int(receivePackets.numberOfElements) == configuration.receiveRingSize,
            Int(receiveFragments.numberOfElements) == configuration.receiveRingSize
        else { throw .badRingGeometry("receive rings do not match the binding configuration") }
        return BindingRegions(
            configuration: configuration,
            control: control,
            descriptors: DescriptorTable(bytes(try header.region(.descriptorTable)), configuration: configuration),
            buffers: BufferTable(bytes(try header.region(.bufferTable)), count: configuration.chunkCount),
            transmitPacketRing: packetRing,
            transmitFragmentRing: fragmentRing,
            receivePacketRing: receivePackets,
            receiveFragmentRing: receiveFragments,
            data: DataArea(bytes(try header.region(.dataArea)), chunkSize: configuration.chunkSize)
        )
    }
}
