import RingportCore
import RingportSystem

/// The segment of a transfer: one transmit queue (packet ring, fragment ring) and a data area with one
/// chunk per fragment element, so the OS can pair a fragment slot with its chunk.
public struct TransferGeometry: Sendable, Equatable {
    public var packetRingSize: Int
    public var fragmentRingSize: Int
    public var chunkSize: Int

    public init(packetRingSize: Int = 64, fragmentRingSize: Int = 256, chunkSize: Int = 256) {
        self.packetRingSize = packetRingSize
        self.fragmentRingSize = fragmentRingSize
        self.chunkSize = chunkSize
    }

    public var layout: SegmentLayout {
        var layout = SegmentLayout()
        layout.add(.control, length: 128)
        layout.add(.packetRing, length: NetRing.regionSize(count: packetRingSize, stride: NetPacket.size))
        layout.add(.fragmentRing, length: NetRing.regionSize(count: fragmentRingSize, stride: NetFragment.size))
        layout.add(.dataArea, length: fragmentRingSize * chunkSize, alignment: 4096)
        return layout
    }
}

/// The rings and data area of a mapped transfer segment.
public struct TransferRings {
    public let packetRing: NetRing
    public let fragmentRing: NetRing
    public let data: DataArea
    /// Set to the driver's process id once it has attached: the benchmark starts its clock after it.
    public let driverReady: SharedWord

    /// Writes fresh ring headers into a segment made with `geometry.layout` (the OS side does this).
    public static func initialize(_ segment: borrowing SharedSegment, _ geometry: TransferGeometry) throws
        -> TransferRings
    {
        let flags: NetRingFlags = .transmit
        let packetRing = try NetRing.initialize(
            at: try segment.bytes(of: .packetRing),
            count: geometry.packetRingSize,
            stride: NetPacket.size,
            flags: flags.union(.packet)
        )
        let fragmentRing = try NetRing.initialize(
            at: try segment.bytes(of: .fragmentRing),
            count: geometry.fragmentRingSize,
            stride: NetFragment.size,
            flags: flags.union(.fragment)
        )
        let data = DataArea(try segment.bytes(of: .dataArea), chunkSize: geometry.chunkSize)
        let ready = SharedWord(try segment.bytes(of: .control), offset: 0)
        return TransferRings(packetRing: packetRing, fragmentRing: fragmentRing, data: data, driverReady: ready)
    }

    /// Validates the rings of a segment another process made (the driver side does this).
    public static func attach(_ segment: borrowing SharedSegment, chunkSize: Int) throws -> TransferRings {
        let packetRing = try NetRing.attach(to: try segment.bytes(of: .packetRing))
        let fragmentRing = try NetRing.attach(to: try segment.bytes(of: .fragmentRing))
        guard packetRing.flags.contains(.packet), fragmentRing.flags.contains(.fragment) else {
            throw SegmentError.badRingGeometry("ring regions hold the wrong element kinds")
        }
        let data = DataArea(try segment.bytes(of: .dataArea), chunkSize: chunkSize)
        let ready = SharedWord(try segment.bytes(of: .control), offset: 0)
        return TransferRings(packetRing: packetRing, fragmentRing: fragmentRing, data: data, driverReady: ready)
    }
}
