import RingportCore
import RingportSystem

/// The segment of a transfer: one transmit queue (packet ring, fragment ring) and a data area with one
/// chunk per fragment element, so the OS can pair a fragment slot with its chunk.
package struct TransferGeometry: Sendable, Equatable {
    package var packetRingSize: Int
    package var fragmentRingSize: Int
    package var chunkSize: Int

    package init(packetRingSize: Int = 64, fragmentRingSize: Int = 256, chunkSize: Int = 256) {
        self.packetRingSize = packetRingSize
        self.fragmentRingSize = fragmentRingSize
        self.chunkSize = chunkSize
    }

    package var layout: SegmentLayout {
        var layout = SegmentLayout()
        layout.add(.control, length: 128)
        layout.add(.packetRing, length: NetRing.regionSize(count: packetRingSize, stride: NetPacket.size))
        layout.add(.fragmentRing, length: NetRing.regionSize(count: fragmentRingSize, stride: NetFragment.size))
        layout.add(.dataArea, length: fragmentRingSize * chunkSize, alignment: 4096)
        return layout
    }
}

/// The rings and data area of a mapped transfer segment.
package struct TransferRings {
    package let packetRing: NetRing
    package let fragmentRing: NetRing
    package let data: DataArea
    /// Set to the driver's process id once it has attached: the benchmark starts its clock after it.
    package let driverReady: SharedWord

    /// Writes fresh ring headers into a segment made with `geometry.layout` (the OS side does this).
    package static func initialize(_ segment: borrowing SharedSegment, _ geometry: TransferGeometry) throws
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
    package static func attach(_ segment: borrowing SharedSegment, chunkSize: Int) throws -> TransferRings {
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
