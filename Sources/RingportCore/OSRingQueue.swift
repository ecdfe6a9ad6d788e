/// The OS side of one queue's rings (the role the protocol library plays): it fills elements it owns,
/// publishes them by moving `EndIndex`, and takes back what the driver returns through `BeginIndex`.
///
/// It keeps the one-slot gap (the driver never owns more than `NumberOfElements - 1` elements) and its
/// own cursor of returned-but-not-yet-processed elements (NetAdapterCx keeps it in `OSReserved0`; ours
/// is process-local, since the peer must not be able to move it). Every `BeginIndex` it loads is
/// checked against the range it gave out, checked mode or not.
@usableFromInline package struct OSRingQueue {
    @usableFromInline package let packetRing: NetRing
    @usableFromInline package let fragmentRing: NetRing
    @usableFromInline package let verifier: NetRingVerifier?
    /// The `EndIndex` values this side last stored.
    @usableFromInline var _packetEnd: UInt32
    @inlinable package var packetEnd: UInt32 { _packetEnd }
    @usableFromInline var _fragmentEnd: UInt32
    @inlinable package var fragmentEnd: UInt32 { _fragmentEnd }
    /// First element not yet taken back (`OSReserved0`).
    @usableFromInline var _packetCursor: UInt32
    @inlinable package var packetCursor: UInt32 { _packetCursor }
    @usableFromInline var _fragmentCursor: UInt32
    @inlinable package var fragmentCursor: UInt32 { _fragmentCursor }

    @usableFromInline package init(
        packetRing: NetRing, fragmentRing: NetRing, checked: Bool = NetRingChecking.isEnabledByDefault
    ) {
        precondition(packetRing.flags.contains(.packet) && fragmentRing.flags.contains(.fragment), "ring kinds swapped")
        self.packetRing = packetRing
        self.fragmentRing = fragmentRing
        _packetEnd = packetRing.loadEndIndex()
        _fragmentEnd = fragmentRing.loadEndIndex()
        _packetCursor = packetRing.loadBeginIndex()
        _fragmentCursor = fragmentRing.loadBeginIndex()
        verifier = checked ? NetRingVerifier(side: .os, packetRing: packetRing, fragmentRing: fragmentRing) : nil
    }

    /// Packet elements the OS may fill and publish now.
    @inlinable package var freePackets: Int {
        Int(packetRing.elementIndexMask &- packetRing.rangeCount(from: packetCursor, to: packetEnd))
    }
    /// Fragment elements the OS may fill and publish now.
    @inlinable package var freeFragments: Int {
        Int(fragmentRing.elementIndexMask &- fragmentRing.rangeCount(from: fragmentCursor, to: fragmentEnd))
    }
    /// Packets given to the driver and not yet taken back.
    @inlinable package var outstandingPackets: Int { Int(packetRing.rangeCount(from: packetCursor, to: packetEnd)) }

    /// The `k`-th free packet element past `EndIndex`, to fill before `publish`.
    @inlinable package func stagedPacket(_ k: Int) -> NetPacket {
        precondition(k >= 0 && k < freePackets, "staging past the free packet elements")
        return packet(at: packetRing.advance(packetEnd, by: Int32(k)))
    }
    /// The `k`-th free fragment element past `EndIndex`.
    @inlinable package func stagedFragment(_ k: Int) -> NetFragment {
        precondition(k >= 0 && k < freeFragments, "staging past the free fragment elements")
        return fragment(at: fragmentRing.advance(fragmentEnd, by: Int32(k)))
    }
    /// The fragment-ring index of the `k`-th free fragment element (what a packet's `fragmentIndex` names).
    @inlinable package func stagedFragmentIndex(_ k: Int) -> UInt32 { fragmentRing.advance(fragmentEnd, by: Int32(k)) }

    @inlinable package func packet(at index: UInt32) -> NetPacket {
        NetPacket(packetRing, at: index, verifier: verifier)
    }
    @inlinable package func fragment(at index: UInt32) -> NetFragment {
        NetFragment(fragmentRing, at: index, verifier: verifier)
    }

    /// Gives the driver the next `packets` packet elements and `fragments` fragment elements: fragments
    /// first, so a packet never names a fragment the driver does not own yet. One release store per ring.
    @inlinable package mutating func publish(packets: Int, fragments: Int) throws(NetRingViolation) {
        guard packets <= freePackets, fragments <= freeFragments, packets >= 0, fragments >= 0 else {
            throw NetRingViolation(
                .osOverfilledRing,
                ring: packets > freePackets ? .packet : .fragment,
                index: packetEnd,
                "publishing \(packets)/\(fragments) with \(freePackets)/\(freeFragments) free"
            )
        }
        if fragments > 0 {
            let end = fragmentRing.advance(fragmentEnd, by: Int32(fragments))
            if let verifier { try verifier.osWillPublish(.fragment, to: end) }
            fragmentRing.storeEndIndex(end)
            _fragmentEnd = end
        }
        if packets > 0 {
            let end = packetRing.advance(packetEnd, by: Int32(packets))
            if let verifier { try verifier.osWillPublish(.packet, to: end) }
            packetRing.storeEndIndex(end)
            _packetEnd = end
        }
    }

    /// Takes back the packets the driver returned since the last call, in ring order, handing each to
    /// `body`. Returns how many. A `BeginIndex` outside what was given out is a violation.
    @inlinable package mutating func reclaimPackets(_ body: (NetPacket) -> Void) throws(NetRingViolation) -> Int {
        let begin = try returnedEnd(packetRing, .packet, cursor: packetCursor, end: packetEnd)
        if let verifier { try verifier.osDidReclaim(.packet, upTo: begin) }
        var i = packetCursor
        while i != begin {
            body(packet(at: i))
            i = packetRing.increment(i)
        }
        let count = Int(packetRing.rangeCount(from: packetCursor, to: begin))
        _packetCursor = begin
        return count
    }

    /// `reclaimPackets` for a side that keeps its own record of each slot: hands `body` the ring index of
    /// each returned packet, without a view of the element. The cursor moves once `body` has seen them all.
    @inlinable package mutating func reclaimPacketSlots(_ body: (UInt32) -> Void) throws(NetRingViolation) -> Int {
        let begin = try returnedEnd(packetRing, .packet, cursor: packetCursor, end: packetEnd)
        if let verifier { try verifier.osDidReclaim(.packet, upTo: begin) }
        var i = packetCursor
        while i != begin {
            body(i)
            i = packetRing.increment(i)
        }
        let count = Int(packetRing.rangeCount(from: packetCursor, to: begin))
        _packetCursor = begin
        return count
    }

    /// Takes back the fragments the driver returned since the last call. Returns how many.
    @inlinable package mutating func reclaimFragments() throws(NetRingViolation) -> Int {
        let begin = try returnedEnd(fragmentRing, .fragment, cursor: fragmentCursor, end: fragmentEnd)
        if let verifier { try verifier.osDidReclaim(.fragment, upTo: begin) }
        let count = Int(fragmentRing.rangeCount(from: fragmentCursor, to: begin))
        _fragmentCursor = begin
        return count
    }

    /// Takes back received packets with their fragments (the Rx flow): each packet that is not ignored
    /// must name at least one fragment, inside the returned fragments, after the previous packet's.
    /// `body` gets the packet and the fragment-ring index of its first fragment.
    @usableFromInline package mutating func reclaimReceived(_ body: (NetPacket, NetPacketFragments) -> Void)
        throws(NetRingViolation)
        -> Int
    {
        let packetBegin = try returnedEnd(packetRing, .packet, cursor: packetCursor, end: packetEnd)
        // Nothing returned while the driver holds packet slots: the fragment index is not read (the driver
        // returns fragments first, so whatever it returned comes with the next packet). Checked mode reads
        // it anyway: the verifier looks at both rings on every reclaim.
        if packetBegin == packetCursor && packetBegin != packetEnd && verifier == nil { return 0 }
        // Load after the packet index: the driver returns fragments first, so this one is at least as new.
        let fragmentBegin = try returnedEnd(fragmentRing, .fragment, cursor: fragmentCursor, end: fragmentEnd)
        if let verifier {
            try verifier.osDidReclaim(.packet, upTo: packetBegin)
            try verifier.osDidReclaim(.fragment, upTo: fragmentBegin)
        }
        var next = fragmentCursor
        var i = packetCursor
        var count = 0
        while i != packetBegin {
            let p = packet(at: i)
            // Each field is loaded once: the driver may be writing the element (it should not, but may).
            let ignored = p.ignore
            let first = p.fragmentIndex
            let n = UInt32(p.fragmentCount)
            let available = fragmentRing.rangeCount(from: next, to: fragmentBegin)
            let named =
                n >= 1 && first < fragmentRing.numberOfElements
                && fragmentRing.rangeCount(from: next, to: first) < available
                && n <= available - fragmentRing.rangeCount(from: next, to: first)
            if !ignored {
                guard named else {
                    throw NetRingViolation(
                        .driverReturnedInvalidReceivePacket,
                        ring: .packet,
                        index: i,
                        "fragments [\(first), +\(n)) are not within the returned [\(next), \(fragmentBegin))"
                    )
                }
                body(p, NetPacketFragments(ring: fragmentRing, first: first, count: n))
                next = fragmentRing.advance(first, by: Int32(n))
            } else if named {
                // An ignored packet must carry no buffer (Docs/Contract.md §1.10; checked mode reports it).
                // Unchecked, buffers it names anyway are taken back with it, never indicated, so none is lost.
                next = fragmentRing.advance(first, by: Int32(n))
            }
            i = packetRing.increment(i)
            count += 1
        }
        _packetCursor = packetBegin
        // Fragments come back before their packets: take only those the returned packets named, unless the
        // driver owns no packet slot any more (a cancel), when nothing can name the rest.
        _fragmentCursor = packetBegin == packetEnd ? fragmentBegin : next
        return count
    }

    /// The driver's `BeginIndex`, checked to lie in `[cursor, end]`.
    @inlinable func returnedEnd(
        _ ring: NetRing,
        _ type: NetRingType,
        cursor: UInt32,
        end: UInt32
    ) throws(NetRingViolation) -> UInt32 {
        let begin = ring.loadBeginIndex()
        guard ring.rangeCount(from: cursor, to: begin) <= ring.rangeCount(from: cursor, to: end) else {
            throw NetRingViolation(
                .driverMovedBeginPastEnd,
                ring: type,
                index: begin,
                "BeginIndex \(begin) is outside the [\(cursor), \(end)] the OS gave out"
            )
        }
        return begin
    }
}

/// A received packet's fragments in the fragment ring: `count` elements from `first`, wrapping.
@frozen
@usableFromInline package struct NetPacketFragments {
    @usableFromInline let ring: NetRing
    @usableFromInline package let first: UInt32
    @usableFromInline package let count: UInt32

    @inlinable init(ring: NetRing, first: UInt32, count: UInt32) {
        self.ring = ring
        self.first = first
        self.count = count
    }

    /// The `k`-th fragment, to read (the OS's writes go through its staged elements).
    @inlinable package func fragment(_ k: Int) -> NetFragment {
        precondition(k >= 0 && k < Int(count), "fragment number out of range")
        let index = ring.advance(first, by: Int32(k))
        return NetFragment(base: ring.element(at: index), shadow: nil, verifier: nil, index: index)
    }
}
