import Glibc

/// Checked mode: verifies every ring transition of one side like Driver Verifier (Docs/Design.md, invariant 10).
///
/// Each side keeps, in its own memory, the indices it last saw and a shadow copy of every element as
/// it believes it to be. Its own writes go to both (the element views do this). At each transition
/// (an iterator made, an index set, a publish, a reclaim) the shared elements and indices are compared
/// with the shadows: a difference in what the side owns is the peer's doing, and is reported by the
/// rule it breaks. Forbidden writes of the side's own are caught as they are made.
///
/// Violations found where no error can be thrown (an element write, an iterator being made) are kept
/// and thrown by the side's next `set` or `publish`.
public final class NetRingVerifier {
    @usableFromInline package enum Side: Sendable { case driver, os }

    @usableFromInline package let side: Side
    @usableFromInline var packet: Shadow
    @usableFromInline var fragment: Shadow
    var pending: NetRingViolation?

    @usableFromInline struct Shadow {
        let ring: NetRing
        let type: NetRingType
        let elements: UnsafeMutableRawPointer
        var begin: UInt32
        var next: UInt32
        @usableFromInline var end: UInt32

        init(_ ring: NetRing, _ type: NetRingType) {
            self.ring = ring
            self.type = type
            // Indices first (EndIndex with acquire), then the elements: an element published after the copy
            // would otherwise sit in the shadow as stale bytes the driver seems to own.
            begin = ring.loadBeginIndex()
            next = ring.loadNextIndex()
            end = ring.loadEndIndex()
            let bytes = Int(ring.numberOfElements) * ring.elementStride
            elements = .allocate(byteCount: bytes, alignment: 16)
            elements.copyMemory(from: ring.elements, byteCount: bytes)
        }

        @usableFromInline func shadow(at index: UInt32) -> UnsafeMutableRawPointer {
            elements + Int(index) * ring.elementStride
        }

        func matches(_ index: UInt32) -> Bool {
            memcmp(ring.element(at: index), shadow(at: index), ring.elementStride) == 0
        }

        func copyIn(from start: UInt32, to end: UInt32) {
            var i = start
            while i != end {
                shadow(at: i).copyMemory(from: ring.element(at: i), byteCount: ring.elementStride)
                i = ring.increment(i)
            }
        }

        /// The first index in `[start, end)` whose element differs from its shadow.
        func firstChange(from start: UInt32, to end: UInt32) -> UInt32? {
            var i = start
            while i != end {
                if !matches(i) { return i }
                i = ring.increment(i)
            }
            return nil
        }
    }

    init(side: Side, packetRing: NetRing, fragmentRing: NetRing) {
        self.side = side
        packet = Shadow(packetRing, .packet)
        fragment = Shadow(fragmentRing, .fragment)
        if side == .os {
            // The OS's cursor starts where the driver's range starts: nothing is waiting to be reclaimed.
            packet.next = packet.begin
            fragment.next = fragment.begin
        }
    }

    deinit {
        packet.elements.deallocate()
        fragment.elements.deallocate()
    }

    func latch(_ violation: NetRingViolation) {
        if pending == nil { pending = violation }
    }

    func throwPending() throws(NetRingViolation) {
        if let violation = pending {
            pending = nil
            throw violation
        }
    }

    func withShadow<R>(_ type: NetRingType, _ body: (inout Shadow) -> R) -> R {
        switch type {
        case .packet: body(&packet)
        case .fragment: body(&fragment)
        }
    }

    // MARK: Driver side

    /// Called when the driver makes an iterator: takes in newly posted elements and checks that the OS
    /// left the driver's indices and owned elements alone.
    @usableFromInline func driverObserve() {
        for type in [NetRingType.packet, .fragment] {
            if let violation = withShadow(type, { Self.driverObserve(&$0) }) { latch(violation) }
        }
    }

    static func driverObserve(_ s: inout Shadow) -> NetRingViolation? {
        var found: NetRingViolation?
        let sharedBegin = s.ring.loadBeginIndex()
        let sharedNext = s.ring.loadNextIndex()
        if sharedBegin != s.begin || sharedNext != s.next {
            found = NetRingViolation(
                .osWroteDriverIndex,
                ring: s.type,
                index: sharedBegin,
                "BeginIndex/NextIndex are \(sharedBegin)/\(sharedNext), the driver set \(s.begin)/\(s.next)"
            )
        }
        if let changed = s.firstChange(from: s.begin, to: s.end) {
            found =
                found
                ?? NetRingViolation(
                    .osChangedElementInsideDriverRange,
                    ring: s.type,
                    index: changed,
                    "element \(changed) changed while the driver owned [\(s.begin), \(s.end))"
                )
            s.copyIn(from: changed, to: s.ring.increment(changed))
        }
        let newEnd = s.ring.loadEndIndex()
        if s.ring.rangeCount(from: s.begin, to: newEnd) < s.ring.rangeCount(from: s.begin, to: s.end) {
            // EndIndex on BeginIndex: the OS gave out all N elements (the gap ignored); else it moved back.
            found =
                found
                ?? NetRingViolation(
                    newEnd == s.begin ? .osOverfilledRing : .osMovedEndBackward,
                    ring: s.type,
                    index: newEnd,
                    "EndIndex went from \(s.end) to \(newEnd) with BeginIndex \(s.begin)"
                )
        } else {
            s.copyIn(from: s.end, to: newEnd)
        }
        s.end = newEnd
        return found
    }

    /// Called by the driver's `set` of `BeginIndex` or `NextIndex`; throws any violation found so far.
    @usableFromInline func driverWillSet(_ type: NetRingType, _ target: NetRingIndex, to index: UInt32)
        throws(NetRingViolation)
    {
        driverObserve()
        // A violation means the caller does not store: the shadow must not move either.
        try throwPending()
        let violation: NetRingViolation? = withShadow(type) { s in
            switch target {
            case .next:
                guard s.ring.rangeCount(from: s.next, to: index) <= s.ring.rangeCount(from: s.next, to: s.end) else {
                    return NetRingViolation(
                        .driverMovedNextPastEnd,
                        ring: type,
                        index: index,
                        "NextIndex \(s.next) -> \(index) passes EndIndex \(s.end)"
                    )
                }
                s.next = index
            case .begin:
                guard s.ring.rangeCount(from: s.begin, to: index) <= s.ring.rangeCount(from: s.begin, to: s.end) else {
                    return NetRingViolation(
                        .driverMovedBeginPastEnd,
                        ring: type,
                        index: index,
                        "BeginIndex \(s.begin) -> \(index) passes EndIndex \(s.end)"
                    )
                }
                // Rx packets are never posted, so BeginIndex may pass a stale NextIndex; a post iterator
                // made from that state is reported by driverCheckPostStart.
                s.begin = index
            }
            return nil
        }
        if let violation { latch(violation) }
        try throwPending()
    }

    /// Checks a post iterator's start: `NextIndex` must lie in `[BeginIndex, EndIndex]`.
    @usableFromInline func driverCheckPostStart(_ type: NetRingType) {
        let violation: NetRingViolation? = withShadow(type) { s in
            let inRange = s.ring.rangeCount(from: s.begin, to: s.next) <= s.ring.rangeCount(from: s.begin, to: s.end)
            return inRange
                ? nil
                : NetRingViolation(
                    .driverNextOutsideRange,
                    ring: type,
                    index: s.next,
                    "NextIndex \(s.next) is outside [\(s.begin), \(s.end)]"
                )
        }
        if let violation { latch(violation) }
    }

    /// Checks that a packet the driver is about to walk names only fragments the driver owns.
    @usableFromInline func driverCheckFragments(of packet: UInt32, first: UInt32, count: UInt16) {
        guard count > 0 else { return }
        let ring = fragment.ring
        let owned = ring.rangeCount(from: fragment.begin, to: fragment.end)
        let offset = ring.rangeCount(from: fragment.begin, to: first & ring.elementIndexMask)
        guard UInt32(count) > owned || offset >= owned || UInt32(count) > owned - offset else { return }
        latch(
            .init(
                .osPacketFragmentsOutsideRange,
                ring: .packet,
                index: packet,
                "fragments [\(first), +\(count)) are not within the driver's [\(fragment.begin), \(fragment.end))"
            )
        )
    }

    // MARK: Element writes (both sides)

    @usableFromInline func willWrite(packet index: UInt32, field: PacketField) {
        let violation: NetRingViolation?
        switch side {
        case .driver:
            if !packet.ring.contains(index, from: packet.begin, to: packet.end) {
                violation = .init(
                    .driverChangedElementOutsideRange,
                    ring: .packet,
                    index: index,
                    "driver wrote \(field) outside [\(packet.begin), \(packet.end))"
                )
            } else if packet.ring.flags.contains(.transmit) && field != .scratch {
                violation = .init(
                    field == .ignore ? .driverChangedIgnore : .driverChangedTransmitPacket,
                    ring: .packet,
                    index: index,
                    "driver wrote \(field) of a transmit packet"
                )
            } else {
                violation = nil
            }
        case .os:
            violation = osWriteViolation(packet, index, field.rawValue)
        }
        if let violation { latch(violation) }
    }

    @usableFromInline func willWrite(fragment index: UInt32, field: FragmentField) {
        let violation: NetRingViolation?
        switch side {
        case .driver:
            if !fragment.ring.contains(index, from: fragment.begin, to: fragment.end) {
                violation = .init(
                    .driverChangedElementOutsideRange,
                    ring: .fragment,
                    index: index,
                    "driver wrote \(field) outside [\(fragment.begin), \(fragment.end))"
                )
            } else if fragment.ring.flags.contains(.transmit) && field != .scratch {
                violation = .init(
                    .driverChangedTransmitFragment,
                    ring: .fragment,
                    index: index,
                    "driver wrote \(field) of a transmit fragment"
                )
            } else if fragment.ring.flags.contains(.receive) && [.capacity, .chunk, .all].contains(field) {
                violation = .init(
                    .driverChangedReceiveBuffer,
                    ring: .fragment,
                    index: index,
                    "driver wrote \(field) of a receive buffer the OS attached"
                )
            } else {
                violation = nil
            }
        case .os:
            violation = osWriteViolation(fragment, index, field.rawValue)
        }
        if let violation { latch(violation) }
    }

    /// The OS owns `[End, its cursor)`; everything from its cursor to `End` is the driver's or waits to
    /// be reclaimed.
    func osWriteViolation(_ s: Shadow, _ index: UInt32, _ field: String) -> NetRingViolation? {
        guard s.ring.contains(index, from: s.next, to: s.end) else { return nil }
        return .init(
            .osChangedElementInsideDriverRange,
            ring: s.type,
            index: index,
            "OS wrote \(field) of an element it has not taken back ([\(s.next), \(s.end)) is not the OS's)"
        )
    }

    // MARK: OS side

    /// Called before the OS stores a new `EndIndex`: checks the driver left it alone and records the
    /// published elements as the OS wrote them.
    @usableFromInline func osWillPublish(_ type: NetRingType, to newEnd: UInt32) throws(NetRingViolation) {
        try throwPending()  // a violation means no store: the shadow must not move either
        let violation: NetRingViolation? = withShadow(type) { s in
            let shared = s.ring.loadEndIndex()
            if shared != s.end {
                return NetRingViolation(
                    .driverWroteOSIndex,
                    ring: type,
                    index: shared,
                    "EndIndex is \(shared), the OS set \(s.end)"
                )
            }
            s.copyIn(from: s.end, to: newEnd)
            s.end = newEnd
            return nil
        }
        if let violation { latch(violation) }
        try throwPending()
    }

    /// Called when the OS takes back `[cursor, newBegin)`: the returned elements may differ from what
    /// the OS posted only in the fields the driver may write, and the OS's own elements not at all.
    @usableFromInline func osDidReclaim(_ type: NetRingType, upTo newBegin: UInt32) throws(NetRingViolation) {
        let violation: NetRingViolation? = withShadow(type) { s in
            if let changed = s.firstChange(from: s.end, to: s.next) {
                s.copyIn(from: changed, to: s.ring.increment(changed))
                return NetRingViolation(
                    .driverChangedElementOutsideRange,
                    ring: type,
                    index: changed,
                    "element \(changed) changed while the OS owned it"
                )
            }
            var i = s.next
            var found: NetRingViolation?
            while i != newBegin {
                if found == nil { found = Self.returnedViolation(s, i) }
                s.copyIn(from: i, to: s.ring.increment(i))
                i = s.ring.increment(i)
            }
            s.next = newBegin
            s.begin = newBegin
            return found
        }
        if let violation { latch(violation) }
        try throwPending()
    }

    static func returnedViolation(_ s: Shadow, _ i: UInt32) -> NetRingViolation? {
        let now = s.ring.element(at: i)
        let was = s.shadow(at: i)
        switch s.type {
        case .packet:
            let a = PacketFields(now)
            let b = PacketFields(was)
            if s.ring.flags.contains(.receive) {
                // Docs/Contract.md §1.10: a frame the driver drops comes back with Ignore, no buffer, nothing
                // else changed.
                guard a.ignore, a.withoutFlags != b.withoutFlags else { return nil }
                return .init(
                    .driverAttachedResourcesToIgnoredPacket,
                    ring: .packet,
                    index: i,
                    "ignored receive packet returned with fragments [\(a.fragmentIndex), +\(a.fragmentCount)) "
                        + "or other fields changed"
                )
            }
            guard s.ring.flags.contains(.transmit) else { return nil }
            if a.ignore != b.ignore {
                return .init(.driverChangedIgnore, ring: .packet, index: i, "Ignore changed on a transmit packet")
            }
            if a.withoutScratch != b.withoutScratch {
                return .init(.driverChangedTransmitPacket, ring: .packet, index: i, "transmit packet fields changed")
            }
        case .fragment:
            let a = FragmentFields(now)
            let b = FragmentFields(was)
            if s.ring.flags.contains(.transmit), a.withoutScratch != b.withoutScratch {
                return .init(.driverChangedTransmitFragment, ring: .fragment, index: i, "transmit fragment changed")
            }
            if s.ring.flags.contains(.receive), a.chunk != b.chunk || a.capacity != b.capacity {
                return .init(.driverChangedReceiveBuffer, ring: .fragment, index: i, "receive buffer chunk or capacity")
            }
        }
        return nil
    }
}

/// Which driver index an iterator's `set` writes (`IndexToSet`).
public enum NetRingIndex: Sendable {
    /// `BeginIndex` (drain and all-element iterators) or `NextIndex` (post iterators).
    case begin, next
}

/// A packet element's fields as plain values, for comparisons.
struct PacketFields: Equatable {
    var fragmentIndex: UInt32
    var fragmentCount: UInt16
    var layout: UInt64
    var flags: UInt8
    var descriptor: UInt32

    init(_ p: UnsafeMutableRawPointer) {
        let view = NetPacket(base: p, shadow: nil, verifier: nil, index: 0)
        fragmentIndex = view.fragmentIndex
        fragmentCount = view.fragmentCount
        layout = view.layout.bits
        flags = view.flags
        descriptor = view.descriptor
    }
    var ignore: Bool { flags & NetPacket.ignoreBit != 0 }
    var withoutScratch: PacketFields {
        var copy = self
        copy.flags &= ~NetPacket.scratchBit
        return copy
    }
    /// Everything but `Ignore` and `Scratch`.
    var withoutFlags: PacketFields {
        var copy = self
        copy.flags &= ~(NetPacket.scratchBit | NetPacket.ignoreBit)
        return copy
    }
}

/// A fragment element's fields as plain values, for comparisons.
struct FragmentFields: Equatable {
    var validLength: UInt32
    var capacity: UInt32
    var chunk: UInt32
    var offset: UInt16
    var flags: UInt8

    init(_ p: UnsafeMutableRawPointer) {
        let view = NetFragment(base: p, shadow: nil, verifier: nil, index: 0)
        validLength = view.validLength
        capacity = view.capacity
        chunk = view.chunk
        offset = view.offset
        flags = view.flags
    }
    var withoutScratch: FragmentFields {
        var copy = self
        copy.flags &= ~NetFragment.scratchBit
        return copy
    }
}
