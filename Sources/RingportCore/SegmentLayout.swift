import _RingportShim

// Shared memory: the segment header is written once by the creator before any peer maps the segment.
// A peer may overwrite it later; so each side validates it once against the real mapping size and keeps
// its own copy (`SegmentHeader`), never reading the shared one again.

/// What a region of a segment holds.
@frozen
package struct RegionKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package var rawValue: UInt32
    package init(rawValue: UInt32) { self.rawValue = rawValue }
    package static let control = RegionKind(rawValue: 1)
    package static let packetRing = RegionKind(rawValue: 2)
    package static let fragmentRing = RegionKind(rawValue: 3)
    package static let dataArea = RegionKind(rawValue: 4)
    package static let descriptorTable = RegionKind(rawValue: 5)
    package var description: String {
        switch self {
        case .control: "control"
        case .packetRing: "packet ring"
        case .fragmentRing: "fragment ring"
        case .dataArea: "data area"
        case .descriptorTable: "descriptor table"
        default: "region kind \(rawValue)"
        }
    }
}

/// One entry of the region table: where a region sits in the segment.
package struct Region: Hashable, Sendable {
    package var kind: RegionKind
    package var queue: UInt16
    package var offset: Int
    package var length: Int
}

/// Errors in a segment's layout: what its header or a ring header says does not hold.
package enum SegmentError: Error, Hashable, Sendable, CustomStringConvertible {
    case tooSmall(actual: Int)
    case badMagic(UInt64)
    case badVersion(UInt32)
    case badHeaderSize(UInt32)
    case sizeMismatch(header: UInt64, actual: Int)
    case badRegionCount(UInt32)
    case badRegion(index: Int, reason: String)
    case missingRegion(RegionKind, queue: UInt16)
    case ringHeaderTooSmall(length: Int)
    case badRingGeometry(String)

    package var description: String {
        switch self {
        case .tooSmall(let actual): "segment of \(actual) bytes is smaller than its header"
        case .badMagic(let magic): "bad magic 0x\(String(magic, radix: 16)): not a Ringport segment"
        case .badVersion(let version): "layout version \(version), expected \(RP_LAYOUT_VERSION)"
        case .badHeaderSize(let size): "header size \(size), expected \(RP_SEGMENT_HEADER_SIZE)"
        case .sizeMismatch(let header, let actual): "header says \(header) bytes, the mapping has \(actual)"
        case .badRegionCount(let count): "\(count) regions, at most \(RP_MAX_REGIONS)"
        case .badRegion(let index, let reason): "region \(index): \(reason)"
        case .missingRegion(let kind, let queue): "no \(kind) region for queue \(queue)"
        case .ringHeaderTooSmall(let length): "ring region of \(length) bytes cannot hold a ring header"
        case .badRingGeometry(let reason): "bad ring geometry: \(reason)"
        }
    }
}

/// Plans a segment: a 4 KiB header, then regions, each cache-block aligned.
package struct SegmentLayout: Sendable {
    package private(set) var regions: [Region] = []
    package private(set) var totalSize = Int(RP_SEGMENT_HEADER_SIZE)

    package init() {}

    /// Appends a region of `length` bytes; returns its entry.
    @discardableResult
    package mutating func add(_ kind: RegionKind, queue: UInt16 = 0, length: Int, alignment: Int = Int(RP_CACHE_BLOCK))
        -> Region
    {
        precondition(regions.count < Int(RP_MAX_REGIONS), "too many regions")
        precondition(length > 0 && alignment >= Int(RP_CACHE_BLOCK) && alignment & (alignment - 1) == 0)
        let offset = (totalSize + alignment - 1) & ~(alignment - 1)
        let region = Region(kind: kind, queue: queue, offset: offset, length: length)
        regions.append(region)
        totalSize = (offset + length + Int(RP_CACHE_BLOCK) - 1) & ~(Int(RP_CACHE_BLOCK) - 1)
        return region
    }
}

/// A segment header, validated against the mapping it was read from. A private copy.
package struct SegmentHeader: Hashable, Sendable {
    package let segmentID: UInt64
    package let totalSize: Int
    package let regions: [Region]

    @usableFromInline enum Offset {
        static let magic = 0
        static let layoutVersion = 8
        static let headerSize = 12
        static let totalSize = 16
        static let segmentID = 24
        static let regionCount = 32
        static let regions = 128
        static let regionSize = 32
    }

    /// Writes the header for `layout` at the start of `segment` (zeroed, `layout.totalSize` bytes).
    package static func write(_ layout: SegmentLayout, segmentID: UInt64, into segment: UnsafeMutableRawBufferPointer) {
        precondition(segment.count >= layout.totalSize, "segment smaller than its layout")
        let base = segment.baseAddress!
        base.storeBytes(of: UInt32(RP_LAYOUT_VERSION), toByteOffset: Offset.layoutVersion, as: UInt32.self)
        base.storeBytes(of: UInt32(RP_SEGMENT_HEADER_SIZE), toByteOffset: Offset.headerSize, as: UInt32.self)
        base.storeBytes(of: UInt64(layout.totalSize), toByteOffset: Offset.totalSize, as: UInt64.self)
        base.storeBytes(of: segmentID, toByteOffset: Offset.segmentID, as: UInt64.self)
        base.storeBytes(of: UInt32(layout.regions.count), toByteOffset: Offset.regionCount, as: UInt32.self)
        for (i, region) in layout.regions.enumerated() {
            let entry = Offset.regions + i * Offset.regionSize
            base.storeBytes(of: region.kind.rawValue, toByteOffset: entry, as: UInt32.self)
            base.storeBytes(of: region.queue, toByteOffset: entry + 4, as: UInt16.self)
            base.storeBytes(of: UInt64(region.offset), toByteOffset: entry + 16, as: UInt64.self)
            base.storeBytes(of: UInt64(region.length), toByteOffset: entry + 24, as: UInt64.self)
        }
        // The magic goes last: a half-written header never looks valid.
        base.storeBytes(of: RP_SEGMENT_MAGIC, toByteOffset: Offset.magic, as: UInt64.self)
    }

    /// Reads and checks the header of a mapping of `mapping.count` bytes (its real size, from fstat).
    package static func validate(_ mapping: UnsafeRawBufferPointer) throws(SegmentError) -> SegmentHeader {
        guard let base = mapping.baseAddress, mapping.count >= Int(RP_SEGMENT_HEADER_SIZE) else {
            throw .tooSmall(actual: mapping.count)
        }
        let magic = base.load(fromByteOffset: Offset.magic, as: UInt64.self)
        guard magic == RP_SEGMENT_MAGIC else { throw .badMagic(magic) }
        let version = base.load(fromByteOffset: Offset.layoutVersion, as: UInt32.self)
        guard version == RP_LAYOUT_VERSION else { throw .badVersion(version) }
        let headerSize = base.load(fromByteOffset: Offset.headerSize, as: UInt32.self)
        guard headerSize == RP_SEGMENT_HEADER_SIZE else { throw .badHeaderSize(headerSize) }
        let total = base.load(fromByteOffset: Offset.totalSize, as: UInt64.self)
        guard total == UInt64(mapping.count) else { throw .sizeMismatch(header: total, actual: mapping.count) }
        let count = base.load(fromByteOffset: Offset.regionCount, as: UInt32.self)
        guard count <= RP_MAX_REGIONS else { throw .badRegionCount(count) }

        var regions: [Region] = []
        var lowestFree = UInt64(headerSize)
        for i in 0..<Int(count) {
            let entry = Offset.regions + i * Offset.regionSize
            let kind = RegionKind(rawValue: base.load(fromByteOffset: entry, as: UInt32.self))
            let queue = base.load(fromByteOffset: entry + 4, as: UInt16.self)
            let offset = base.load(fromByteOffset: entry + 16, as: UInt64.self)
            let length = base.load(fromByteOffset: entry + 24, as: UInt64.self)
            // Regions are laid out in order, so "after the previous one" also rules out overlap.
            guard offset % UInt64(RP_CACHE_BLOCK) == 0 else {
                throw .badRegion(index: i, reason: "offset \(offset) unaligned")
            }
            guard offset >= lowestFree else { throw .badRegion(index: i, reason: "offset \(offset) overlaps") }
            guard length > 0, length <= total, offset <= total - length else {
                throw .badRegion(index: i, reason: "[\(offset), +\(length)) exceeds the segment's \(total) bytes")
            }
            lowestFree = offset + length
            regions.append(Region(kind: kind, queue: queue, offset: Int(offset), length: Int(length)))
        }
        return SegmentHeader(
            segmentID: base.load(fromByteOffset: Offset.segmentID, as: UInt64.self),
            totalSize: Int(total),
            regions: regions
        )
    }

    /// The region of `kind` for `queue`.
    package func region(_ kind: RegionKind, queue: UInt16 = 0) throws(SegmentError) -> Region {
        guard let region = regions.first(where: { $0.kind == kind && $0.queue == queue }) else {
            throw .missingRegion(kind, queue: queue)
        }
        return region
    }
}
