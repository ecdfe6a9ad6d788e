/// An element type of a net ring (`NetPacket` or `NetFragment`): how to find its ring in a collection and
/// how to make a view of one.
public protocol NetRingElement {
    /// Which ring of a collection holds elements of this type.
    static var ringType: NetRingType { get }
    /// A view of element `index` of `ring` (already reduced), checked through `verifier` in checked mode.
    init(_ ring: NetRing, at index: UInt32, verifier: NetRingVerifier?)
}

/// `NET_RING_ITERATOR`: a cursor over a range of one ring of a collection.
///
/// A plain value: the end is a snapshot taken when it was made, `advance` and `advanceToTheEnd` move only
/// the iterator, and `set` (through `IndexToSet`: `BeginIndex` or `NextIndex`) is its only write to the
/// ring. Moving an index past the end is refused.
@frozen
public struct NetRingIterator<Element: NetRingElement> {
    @usableFromInline let rings: NetRingPair
    @usableFromInline let target: NetRingIndex
    @usableFromInline let start: UInt32
    @usableFromInline var _index: UInt32
    /// `Net*IteratorGetIndex`.
    @inlinable public var index: UInt32 { _index }
    /// The snapshot of the range's end.
    public let end: UInt32

    @inlinable init(rings: NetRingPair, target: NetRingIndex, index: UInt32, end: UInt32) {
        self.rings = rings
        self.target = target
        self.start = index
        self._index = index
        self.end = end
    }

    @inlinable var ring: NetRing { rings.ring(Element.ringType) }

    /// `Net*IteratorHasAny`.
    @inlinable public var hasAny: Bool { _index != end }
    /// `Net*IteratorGetCount`: elements left.
    @inlinable public var count: UInt32 { (end &- _index) & ring.elementIndexMask }
    /// `Net*IteratorAdvance`.
    @inlinable public mutating func advance() { _index = ring.increment(_index) }
    /// `Net*IteratorAdvanceToTheEnd`.
    @inlinable public mutating func advanceToTheEnd() { _index = end }
    /// `NetPacketIteratorGetPacket` / `NetFragmentIteratorGetFragment`.
    @inlinable public var element: Element { Element(ring, at: _index, verifier: rings.verifier) }
    /// `Net*IteratorSet`: stores the iterator's index in `NextIndex` (post) or `BeginIndex` (drain, all).
    @inlinable public func set() throws(NetRingViolation) {
        try rings.store(Element.ringType, target, _index, start: start, end: end)
    }
}

/// `NET_RING_PACKET_ITERATOR`.
public typealias NetRingPacketIterator = NetRingIterator<NetPacket>
/// `NET_RING_FRAGMENT_ITERATOR`.
public typealias NetRingFragmentIterator = NetRingIterator<NetFragment>

extension NetRingIterator where Element == NetPacket {
    /// `NetPacketIteratorGetPacket`.
    @inlinable public var packet: NetPacket { element }

    /// `NetPacketIteratorGetFragments`: the current packet's fragments,
    /// `[FragmentIndex, FragmentIndex + FragmentCount)` in the fragment ring.
    @inlinable public func fragments() -> NetPacketFragmentIterator {
        let packet = self.packet
        let ring = rings.fragmentRing
        let count = packet.fragmentCount
        let first = packet.fragmentIndex & ring.elementIndexMask
        let end = (first &+ UInt32(count)) & ring.elementIndexMask
        if let verifier = rings.verifier { verifier.driverCheckFragments(of: _index, first: first, count: count) }
        return NetPacketFragmentIterator(rings: rings, index: first, end: end)
    }
}

extension NetRingIterator where Element == NetFragment {
    /// `NetFragmentIteratorGetFragment`.
    @inlinable public var fragment: NetFragment { element }
}

/// The fragments of one packet (`NetPacketIteratorGetFragments`). It has no `set`: its `IndexToSet` is
/// NULL in netringiterator.h; drivers move the fragment ring's indices with
/// `NetRingCollection.setFragmentNextIndex(to:)` and `setFragmentBeginIndex(to:)` instead.
@frozen
public struct NetPacketFragmentIterator {
    @usableFromInline let rings: NetRingPair
    @usableFromInline var _index: UInt32
    /// `NetFragmentIteratorGetIndex`: the fragment-ring index it is at.
    @inlinable public var index: UInt32 { _index }
    /// One past the packet's last fragment.
    public let end: UInt32

    @inlinable init(rings: NetRingPair, index: UInt32, end: UInt32) {
        self.rings = rings
        self._index = index
        self.end = end
    }

    /// `NetFragmentIteratorHasAny`: whether fragments are left.
    @inlinable public var hasAny: Bool { _index != end }
    /// `NetFragmentIteratorGetCount`: the fragments left.
    @inlinable public var count: UInt32 { (end &- _index) & rings.fragmentRing.elementIndexMask }
    /// `NetFragmentIteratorAdvance`: to the next fragment (the ring is not touched).
    @inlinable public mutating func advance() { _index = rings.fragmentRing.increment(_index) }
    /// `NetFragmentIteratorAdvanceToTheEnd`: past the last fragment.
    @inlinable public mutating func advanceToTheEnd() { _index = end }
    /// `NetFragmentIteratorGetFragment`: the fragment it is at.
    @inlinable public var fragment: NetFragment { rings.fragment(at: _index) }
}
