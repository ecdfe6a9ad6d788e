import Atomics
import _RingportShim

// Shared memory: the peer process reads and writes this ring's header and elements at the same time.
// It may store only the indices its side owns (the OS `EndIndex`, the driver `BeginIndex`/`NextIndex`/`Scratch`)
// and elements in its own range; it must never rely on the other side's copy of the geometry.

/// A process-local view of one NET_RING in a shared-memory segment (Docs/Contract.md §1.1, split into
/// per-writer cache blocks).
///
/// The geometry (`numberOfElements`, `elementIndexMask`, `elementStride`) is copied out and validated
/// once, when the view is made; the copy in shared memory is never trusted again. Every index loaded
/// from shared memory is masked before use, so it always names an element of this ring.
@frozen
public struct NetRing {
    @usableFromInline let header: UnsafeMutableRawPointer
    @usableFromInline let elements: UnsafeMutableRawPointer
    /// `NumberOfElements`: a power of two, greater than one.
    public let numberOfElements: UInt32
    /// `ElementIndexMask`: `numberOfElements - 1`; every index is reduced with it.
    public let elementIndexMask: UInt32
    @usableFromInline package let elementStride: Int
    /// The ring's kind (packet or fragment) and direction (transmit or receive).
    public let flags: NetRingFlags

    /// Byte offsets inside `rp_net_ring`.
    @usableFromInline enum Offset {
        @usableFromInline static let flags = 0
        @usableFromInline static let elementStride = 2
        @usableFromInline static let numberOfElements = 4
        @usableFromInline static let elementIndexMask = 8
        @usableFromInline static let endIndex = 128
        @usableFromInline static let osReserved0 = 132
        @usableFromInline static let beginIndex = 256
        @usableFromInline static let nextIndex = 260
        @usableFromInline static let scratch = 264
    }
    /// Size of the ring header; elements start here.
    @usableFromInline package static let headerSize = 384

    /// Bytes a ring of `count` elements of `stride` bytes takes in a region.
    @usableFromInline package static func regionSize(count: Int, stride: Int) -> Int { headerSize + count * stride }

    /// Writes a fresh ring header into `region` (all indices 0, as at queue start) and returns its view.
    /// Only the side that creates the segment calls this, before any peer maps it.
    @usableFromInline package static func initialize(
        at region: UnsafeMutableRawBufferPointer,
        count: Int,
        stride: Int,
        flags: NetRingFlags
    ) throws(SegmentError) -> NetRing {
        try checkGeometry(count: count, stride: stride, flags: flags, regionLength: region.count)
        let base = region.baseAddress!
        base.initializeMemory(as: UInt8.self, repeating: 0, count: headerSize + count * stride)
        base.storeBytes(of: flags.rawValue, toByteOffset: Offset.flags, as: UInt16.self)
        base.storeBytes(of: UInt16(stride), toByteOffset: Offset.elementStride, as: UInt16.self)
        base.storeBytes(of: UInt32(count), toByteOffset: Offset.numberOfElements, as: UInt32.self)
        base.storeBytes(of: UInt32(count - 1), toByteOffset: Offset.elementIndexMask, as: UInt32.self)
        return try attach(to: region)
    }

    /// Validates the ring header in `region` (written by another process) and returns a view with a
    /// private copy of its geometry.
    @usableFromInline package static func attach(to region: UnsafeMutableRawBufferPointer) throws(SegmentError)
        -> NetRing
    {
        guard let base = region.baseAddress, region.count >= headerSize,
            Int(bitPattern: base) % Int(RP_CACHE_BLOCK) == 0
        else { throw .ringHeaderTooSmall(length: region.count) }
        let flags = NetRingFlags(rawValue: base.load(fromByteOffset: Offset.flags, as: UInt16.self))
        let stride = Int(base.load(fromByteOffset: Offset.elementStride, as: UInt16.self))
        let count = Int(base.load(fromByteOffset: Offset.numberOfElements, as: UInt32.self))
        let mask = base.load(fromByteOffset: Offset.elementIndexMask, as: UInt32.self)
        try checkGeometry(count: count, stride: stride, flags: flags, regionLength: region.count)
        guard mask == UInt32(count - 1) else {
            throw .badRingGeometry("ElementIndexMask \(mask) for \(count) elements")
        }
        return NetRing(
            header: base,
            elements: base + headerSize,
            numberOfElements: UInt32(count),
            elementIndexMask: mask,
            elementStride: stride,
            flags: flags
        )
    }

    static func checkGeometry(count: Int, stride: Int, flags: NetRingFlags, regionLength: Int) throws(SegmentError) {
        guard count > 1, count <= 1 << 24, count & (count - 1) == 0 else {
            throw .badRingGeometry("NumberOfElements \(count) is not a power of two in 2...2^24")
        }
        let minimum = flags.contains(.fragment) ? NetFragment.size : NetPacket.size
        guard flags.contains(.packet) != flags.contains(.fragment) else {
            throw .badRingGeometry("ring flags \(flags.rawValue) name neither or both element kinds")
        }
        guard stride >= minimum, stride % 8 == 0, stride <= 4096 else {
            throw .badRingGeometry("ElementStride \(stride) (needs a multiple of 8, at least \(minimum))")
        }
        guard regionSize(count: count, stride: stride) <= regionLength else {
            throw .badRingGeometry("\(count) elements of \(stride) bytes do not fit a region of \(regionLength)")
        }
    }

    @inlinable init(
        header: UnsafeMutableRawPointer,
        elements: UnsafeMutableRawPointer,
        numberOfElements: UInt32,
        elementIndexMask: UInt32,
        elementStride: Int,
        flags: NetRingFlags
    ) {
        self.header = header
        self.elements = elements
        self.numberOfElements = numberOfElements
        self.elementIndexMask = elementIndexMask
        self.elementStride = elementStride
        self.flags = flags
    }

    // MARK: ring.h helpers: pure arithmetic, no index is touched.

    /// `NetRingIncrementIndex`: `(index + 1) & mask`.
    @inlinable public func increment(_ index: UInt32) -> UInt32 { (index &+ 1) & elementIndexMask }

    /// `NetRingAdvanceIndex`: `(index + distance) & mask`; a negative distance goes backwards.
    @inlinable public func advance(_ index: UInt32, by distance: Int32) -> UInt32 {
        (index &+ UInt32(bitPattern: distance)) & elementIndexMask
    }

    /// `NetRingGetRangeCount`: elements in the half-open range `[start, end)`, modulo the ring size.
    @inlinable public func rangeCount(from start: UInt32, to end: UInt32) -> UInt32 {
        precondition(start < numberOfElements && end < numberOfElements, "ring index out of range")
        return (end &- start) & elementIndexMask
    }

    /// `NetRingGetElementAtIndex`: the element's address. Not masked, as in ring.h; checked instead.
    @inlinable package func element(at index: UInt32) -> UnsafeMutableRawPointer {
        precondition(index < numberOfElements, "ring index out of range")
        return elements + Int(index) &* elementStride
    }

    /// Whether `index` lies in the half-open ring range `[start, end)`.
    @inlinable public func contains(_ index: UInt32, from start: UInt32, to end: UInt32) -> Bool {
        (index &- start) & elementIndexMask < (end &- start) & elementIndexMask
    }

    // MARK: Indices in shared memory. Loads are masked: the writer is another process.

    @inlinable @inline(__always) func atomic(_ offset: Int) -> UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: (header + offset).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    /// Acquire: pairs with the release in `storeEndIndex`; the elements the OS filled are visible after it.
    @inlinable public func loadEndIndex() -> UInt32 {
        atomic(Offset.endIndex).load(ordering: .acquiring) & elementIndexMask
    }
    /// Acquire: pairs with the release in `storeBeginIndex`; returned elements are visible after it.
    @inlinable public func loadBeginIndex() -> UInt32 {
        atomic(Offset.beginIndex).load(ordering: .acquiring) & elementIndexMask
    }
    /// Relaxed: only the driver writes `NextIndex` and only the driver reads it.
    @inlinable public func loadNextIndex() -> UInt32 {
        atomic(Offset.nextIndex).load(ordering: .relaxed) & elementIndexMask
    }
    /// Release: publishes every element written before it to the driver (Docs/Design.md, invariant 1).
    @inlinable package func storeEndIndex(_ index: UInt32) {
        atomic(Offset.endIndex).store(index, ordering: .releasing)
    }
    /// Release: hands the returned elements, with everything the driver wrote in them, to the OS.
    @inlinable package func storeBeginIndex(_ index: UInt32) {
        atomic(Offset.beginIndex).store(index, ordering: .releasing)
    }
    /// Relaxed: `NextIndex` publishes nothing; the OS never reads it.
    @inlinable package func storeNextIndex(_ index: UInt32) {
        atomic(Offset.nextIndex).store(index, ordering: .relaxed)
    }

    /// The driver's `Scratch` word. The OS never reads it.
    @inlinable package var scratch: UInt64 {
        get { header.load(fromByteOffset: Offset.scratch, as: UInt64.self) }
        nonmutating set { header.storeBytes(of: newValue, toByteOffset: Offset.scratch, as: UInt64.self) }
    }
}

/// The ring's kind and direction, kept in `OSReserved1` of the ring header.
@frozen
public struct NetRingFlags: OptionSet, Hashable, Sendable {
    /// The bits, as stored in the ring header.
    public var rawValue: UInt16
    /// The flags with these bits.
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// A packet ring.
    public static let packet = NetRingFlags(rawValue: UInt16(RP_RING_PACKET))
    /// A fragment ring.
    public static let fragment = NetRingFlags(rawValue: UInt16(RP_RING_FRAGMENT))
    /// A ring of the transmit queue.
    public static let transmit = NetRingFlags(rawValue: UInt16(RP_RING_TRANSMIT))
    /// A ring of the receive queue.
    public static let receive = NetRingFlags(rawValue: UInt16(RP_RING_RECEIVE))
}
