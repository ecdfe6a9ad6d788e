/// `NET_RING_PACKET_ITERATOR`: a cursor over a range of the packet ring.
///
/// A plain value: the end is a snapshot taken when it was made, `advance` and `advanceToTheEnd` move only
/// the iterator, and `set` is its only write to the ring.
@frozen
public struct NetRingPacketIterator {
    @usableFromInline let rings: NetRingCollection
    @usableFromInline let target: NetRingIndex
    @usableFromInline let start: UInt32
    /// `NetPacketIteratorGetIndex`.
    @usableFromInline var _index: UInt32
    @inlinable public var index: UInt32 { _index }
    /// The snapshot of the range's end.
    public let end: UInt32

    @inlinable init(rings: NetRingCollection, target: NetRingIndex, index: UInt32, end: UInt32) {
        self.rings = rings
        self.target = target
        self.start = index
        self._index = index
        self.end = end
    }

    /// `NetPacketIteratorHasAny`.
    @inlinable public var hasAny: Bool { index != end }
    /// `NetPacketIteratorGetCount`: elements left.
    @inlinable public var count: UInt32 { (end &- index) & rings.packetRing.elementIndexMask }
    /// `NetPacketIteratorAdvance`.
    @inlinable public mutating func advance() { _index = rings.packetRing.increment(_index) }
    /// `NetPacketIteratorAdvanceToTheEnd`.
    @inlinable public mutating func advanceToTheEnd() { _index = end }
    /// `NetPacketIteratorGetPacket`.
    @inlinable public var packet: NetPacket { rings.packet(at: index) }
    /// `NetPacketIteratorSet`: stores the iterator's index in `NextIndex` (post) or `BeginIndex`
    /// (drain, all): the only write to the ring. Moving past the end is refused.
    @inlinable public func set() throws(NetRingViolation) {
        try rings.store(.packet, target, index, start: start, end: end)
    }

    /// `NetPacketIteratorGetFragments`: the current packet's fragments,
    /// `[FragmentIndex, FragmentIndex + FragmentCount)` in the fragment ring.
    @inlinable public func fragments() -> NetPacketFragmentIterator {
        let packet = self.packet
        let ring = rings.fragmentRing
        let first = packet.fragmentIndex & ring.elementIndexMask
        let end = (first &+ UInt32(packet.fragmentCount)) & ring.elementIndexMask
        return NetPacketFragmentIterator(rings: rings, index: first, end: end)
    }
}

/// `NET_RING_FRAGMENT_ITERATOR` over a range of the fragment ring: like the packet iterator.
@frozen
public struct NetRingFragmentIterator {
    @usableFromInline let rings: NetRingCollection
    @usableFromInline let target: NetRingIndex
    @usableFromInline let start: UInt32
    /// `NetFragmentIteratorGetIndex`.
    @usableFromInline var _index: UInt32
    @inlinable public var index: UInt32 { _index }
    public let end: UInt32

    @inlinable init(rings: NetRingCollection, target: NetRingIndex, index: UInt32, end: UInt32) {
        self.rings = rings
        self.target = target
        self.start = index
        self._index = index
        self.end = end
    }

    /// `NetFragmentIteratorHasAny`.
    @inlinable public var hasAny: Bool { index != end }
    /// `NetFragmentIteratorGetCount`.
    @inlinable public var count: UInt32 { (end &- index) & rings.fragmentRing.elementIndexMask }
    /// `NetFragmentIteratorAdvance`.
    @inlinable public mutating func advance() { _index = rings.fragmentRing.increment(_index) }
    /// `NetFragmentIteratorAdvanceToTheEnd`.
    @inlinable public mutating func advanceToTheEnd() { _index = end }
    /// `NetFragmentIteratorGetFragment`.
    @inlinable public var fragment: NetFragment { rings.fragment(at: index) }
    /// `NetFragmentIteratorSet`.
    @inlinable public func set() throws(NetRingViolation) {
        try rings.store(.fragment, target, index, start: start, end: end)
    }
}

/// The fragments of one packet (`NetPacketIteratorGetFragments`). It has no `set`: its `IndexToSet` is
/// NULL in netringiterator.h; drivers move the fragment ring's indices with
/// `NetRingCollection.setFragmentNextIndex(to:)` and `setFragmentBeginIndex(to:)` instead.
@frozen
public struct NetPacketFragmentIterator {
    @usableFromInline let rings: NetRingCollection
    @usableFromInline var _index: UInt32
    @inlinable public var index: UInt32 { _index }
    public let end: UInt32

    @inlinable init(rings: NetRingCollection, index: UInt32, end: UInt32) {
        self.rings = rings
        self._index = index
        self.end = end
    }

    @inlinable public var hasAny: Bool { index != end }
    @inlinable public var count: UInt32 { (end &- index) & rings.fragmentRing.elementIndexMask }
    @inlinable public mutating func advance() { _index = rings.fragmentRing.increment(_index) }
    @inlinable public mutating func advanceToTheEnd() { _index = end }
    @inlinable public var fragment: NetFragment { rings.fragment(at: index) }
}
