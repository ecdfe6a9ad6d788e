import Glibc

/// One queue's rings as the driver sees them (`NET_RING_COLLECTION`): a packet ring and a fragment ring.
///
/// The driver owns `[BeginIndex, EndIndex)` of each ring and moves only `BeginIndex` and `NextIndex`,
/// through the iterators' `set` or the explicit index setters below. In checked mode it carries a
/// verifier that checks every transition.
@frozen
public struct NetRingCollection {
    /// The queue's packet ring (`NetRingCollectionGetPacketRing`).
    public let packetRing: NetRing
    /// The queue's fragment ring (`NetRingCollectionGetFragmentRing`).
    public let fragmentRing: NetRing
    /// Non-nil in checked mode.
    @usableFromInline package let verifier: NetRingVerifier?
    /// `BeginIndex` and `NextIndex` of both rings as this side last stored them (process-local): the
    /// framework compares the shared copies with these, since the OS may write the shared ones.
    @usableFromInline package let stored: DriverIndices

    /// - Parameter checked: verify every transition (defaults to `NetRingChecking.isEnabledByDefault`).
    @usableFromInline package init(
        packetRing: NetRing, fragmentRing: NetRing, checked: Bool = NetRingChecking.isEnabledByDefault
    ) {
        precondition(packetRing.flags.contains(.packet) && fragmentRing.flags.contains(.fragment), "ring kinds swapped")
        self.packetRing = packetRing
        self.fragmentRing = fragmentRing
        verifier = checked ? NetRingVerifier(side: .driver, packetRing: packetRing, fragmentRing: fragmentRing) : nil
        stored = DriverIndices(packetRing: packetRing, fragmentRing: fragmentRing)
    }

    /// Whether every transition is verified (checked mode): the iterators' `set` then throws a broken rule.
    @inlinable public var isChecked: Bool { verifier != nil }

    @inlinable func ring(_ type: NetRingType) -> NetRing {
        switch type {
        case .packet: packetRing
        case .fragment: fragmentRing
        }
    }

    // MARK: Iterators (netringiterator.h)
    // Begin and Next come from this side's own copies (`stored`), never from the shared words the peer can
    // write; only EndIndex is loaded. The framework compares the shared words with the copies every turn.

    /// `NetRingGetAllPackets`: `[BeginIndex, EndIndex)`; `set` moves `BeginIndex`.
    @inlinable public func allPackets() -> NetRingPacketIterator {
        observe()
        return NetRingPacketIterator(
            rings: NetRingPair(self),
            target: .begin,
            index: stored.packetBegin,
            end: snapshotEnd(.packet)
        )
    }
    /// `NetRingGetPostPackets`: `[NextIndex, EndIndex)`; `set` moves `NextIndex`.
    @inlinable public func postPackets() -> NetRingPacketIterator {
        observe()
        verifier?.driverCheckPostStart(.packet)
        return NetRingPacketIterator(
            rings: NetRingPair(self),
            target: .next,
            index: stored.packetNext,
            end: snapshotEnd(.packet)
        )
    }
    /// `NetRingGetDrainPackets`: `[BeginIndex, NextIndex)`; `set` moves `BeginIndex`.
    @inlinable public func drainPackets() -> NetRingPacketIterator {
        observe()
        return NetRingPacketIterator(
            rings: NetRingPair(self),
            target: .begin,
            index: stored.packetBegin,
            end: stored.packetNext
        )
    }
    /// `NetRingGetAllFragments`: `[BeginIndex, EndIndex)`; `set` moves `BeginIndex`.
    @inlinable public func allFragments() -> NetRingFragmentIterator {
        observe()
        return NetRingFragmentIterator(
            rings: NetRingPair(self),
            target: .begin,
            index: stored.fragmentBegin,
            end: snapshotEnd(.fragment)
        )
    }
    /// `NetRingGetPostFragments`: `[NextIndex, EndIndex)`; `set` moves `NextIndex`.
    @inlinable public func postFragments() -> NetRingFragmentIterator {
        observe()
        verifier?.driverCheckPostStart(.fragment)
        return NetRingFragmentIterator(
            rings: NetRingPair(self),
            target: .next,
            index: stored.fragmentNext,
            end: snapshotEnd(.fragment)
        )
    }
    /// `NetRingGetDrainFragments`: `[BeginIndex, NextIndex)`; `set` moves `BeginIndex`.
    @inlinable public func drainFragments() -> NetRingFragmentIterator {
        observe()
        return NetRingFragmentIterator(
            rings: NetRingPair(self),
            target: .begin,
            index: stored.fragmentBegin,
            end: stored.fragmentNext
        )
    }

    /// Throws the violation checked mode found since the last index write, if any: the framework calls it
    /// after making an iterator and before handing its elements to anyone.
    public func checkpoint() throws(NetRingViolation) {
        if let verifier { try verifier.throwPending() }
    }

    /// Checked mode: compares both rings with the shadows now (as making an iterator does) and throws what the
    /// OS broke. The framework calls it at every turn, so a ring no iterator walks is still watched.
    public func verifyNow() throws(NetRingViolation) {
        observe()
        try checkpoint()
    }

    @inlinable func observe() {
        if let verifier { verifier.driverObserve() }
    }

    /// `EndIndex` for a new iterator: in checked mode the one the verifier just observed, so the iterator
    /// never covers elements the verifier has not taken in (the OS may publish between two loads).
    @inlinable func snapshotEnd(_ type: NetRingType) -> UInt32 {
        guard let verifier else { return ring(type).loadEndIndex() }
        return type == .packet ? verifier.packet.end : verifier.fragment.end
    }

    // MARK: Elements

    /// `NetRingGetPacketAtIndex`.
    @inlinable public func packet(at index: UInt32) -> NetPacket {
        NetPacket(packetRing, at: index, verifier: verifier)
    }
    /// `NetRingGetFragmentAtIndex`.
    @inlinable public func fragment(at index: UInt32) -> NetFragment {
        NetFragment(fragmentRing, at: index, verifier: verifier)
    }

    // MARK: Index writes

    /// Sets the fragment ring's `NextIndex`, as drivers do after posting a packet's fragments
    /// (a packet's fragment iterator has no `set`).
    @inlinable public func setFragmentNextIndex(to index: UInt32) throws(NetRingViolation) {
        let current = stored.fragmentNext
        try store(.fragment, .next, index, start: current, end: snapshotEnd(.fragment))
    }
    /// Sets the fragment ring's `BeginIndex`, returning fragments to the OS.
    @inlinable public func setFragmentBeginIndex(to index: UInt32) throws(NetRingViolation) {
        let current = stored.fragmentBegin
        try store(.fragment, .begin, index, start: current, end: snapshotEnd(.fragment))
    }

    /// The one index write: checks the move stays within `[start, end]` (always: it is one comparison),
    /// runs the verifier in checked mode, then stores.
    @inlinable func store(
        _ type: NetRingType,
        _ target: NetRingIndex,
        _ index: UInt32,
        start: UInt32,
        end: UInt32
    ) throws(NetRingViolation) {
        try NetRingPair(self).store(type, target, index, start: start, end: end)
    }

    @inline(never) @usableFromInline
    static func pastEnd(
        _ type: NetRingType,
        _ target: NetRingIndex,
        _ index: UInt32,
        start: UInt32,
        end: UInt32
    ) -> NetRingViolation {
        let rule: NetRingRule = target == .begin ? .driverMovedBeginPastEnd : .driverMovedNextPastEnd
        let name = target == .begin ? "BeginIndex" : "NextIndex"
        return NetRingViolation(rule, ring: type, index: index, "\(name) \(start) -> \(index) passes \(end)")
    }
}

/// What an iterator needs of its collection: the two rings and the verifier, without a strong reference
/// (copying a collection retains its verifier; iterators are copied per packet). The collection the iterator
/// came from keeps the verifier alive, and must outlive the iterator, as the mapping must.
@frozen
@usableFromInline package struct NetRingPair {
    @usableFromInline let packetRing: NetRing
    @usableFromInline let fragmentRing: NetRing
    @usableFromInline unowned(unsafe) let verifier: NetRingVerifier?
    @usableFromInline unowned(unsafe) let stored: DriverIndices

    @inlinable init(_ rings: NetRingCollection) {
        packetRing = rings.packetRing
        fragmentRing = rings.fragmentRing
        verifier = rings.verifier
        stored = rings.stored
    }

    @inlinable func ring(_ type: NetRingType) -> NetRing {
        switch type {
        case .packet: packetRing
        case .fragment: fragmentRing
        }
    }

    @inlinable func fragment(at index: UInt32) -> NetFragment {
        NetFragment(fragmentRing, at: index, verifier: verifier)
    }

    @inlinable func store(
        _ type: NetRingType,
        _ target: NetRingIndex,
        _ index: UInt32,
        start: UInt32,
        end: UInt32
    ) throws(NetRingViolation) {
        let ring = ring(type)
        guard index < ring.numberOfElements,
            ring.rangeCount(from: start, to: index) <= ring.rangeCount(from: start, to: end)
        else { throw NetRingCollection.pastEnd(type, target, index, start: start, end: end) }
        if let verifier { try verifier.driverWillSet(type, target, to: index) }
        switch target {
        case .begin: ring.storeBeginIndex(index)
        case .next: ring.storeNextIndex(index)
        }
        stored.record(type, target, index)
    }
}

/// The driver side's own copies of the indices it writes, kept in its process.
@usableFromInline package final class DriverIndices {
    // One thread (the driver side's) reads and writes these. Kept behind a pointer, not in stored
    // properties: a client module's inlined access to a class's stored property gets a dynamic exclusivity
    // check (`@exclusivity(unchecked)` is not seen across modules), and the iterators read these per call.
    @usableFromInline let words: UnsafeMutablePointer<UInt32>

    @inlinable package var packetBegin: UInt32 { words[0] }
    @inlinable package var packetNext: UInt32 { words[1] }
    @inlinable package var fragmentBegin: UInt32 { words[2] }
    @inlinable package var fragmentNext: UInt32 { words[3] }

    init(packetRing: NetRing, fragmentRing: NetRing) {
        words = .allocate(capacity: 4)
        words.initialize(repeating: 0, count: 4)
        words[0] = packetRing.loadBeginIndex()
        words[1] = packetRing.loadNextIndex()
        words[2] = fragmentRing.loadBeginIndex()
        words[3] = fragmentRing.loadNextIndex()
    }

    deinit { words.deallocate() }

    @inlinable func record(_ type: NetRingType, _ target: NetRingIndex, _ index: UInt32) {
        switch (type, target) {
        case (.packet, .begin): words[0] = index
        case (.packet, .next): words[1] = index
        case (.fragment, .begin): words[2] = index
        case (.fragment, .next): words[3] = index
        }
    }

    /// `BeginIndex` and `NextIndex` of the ring of `type`.
    @usableFromInline package func indices(_ type: NetRingType) -> (begin: UInt32, next: UInt32) {
        type == .packet ? (packetBegin, packetNext) : (fragmentBegin, fragmentNext)
    }
}

/// Whether rings verify every transition unless told otherwise: on in debug builds (and so in tests),
/// off in release builds; the environment variable `RINGPORT_CHECKED=1` or `=0` overrides both.
@usableFromInline package enum NetRingChecking {
    @usableFromInline package static var isEnabledByDefault: Bool {
        if let value = getenv("RINGPORT_CHECKED") { return value.pointee == UInt8(ascii: "1") }
        return _isDebugAssertConfiguration()
    }
}
