import RingportCore

/// The framework's check of one ring's shared indices, at every turn, checked mode or not: `BeginIndex`
/// and `NextIndex` must be as the driver side last stored them (its own copies, `DriverIndices`), and the
/// OS may only have grown the driver's range. A protocol that writes the driver's indices, moves `EndIndex`
/// backwards or overfills the ring has its binding closed before the driver sees anything (the verifier
/// finds the rest in checked mode).
struct RingIndexRecord {
    /// The last `EndIndex` accepted.
    var end: UInt32 = 0

    @inline(__always)
    mutating func verify(_ ring: NetRing, _ type: NetRingType, begin: UInt32, next: UInt32) throws(NetRingViolation) {
        let sharedBegin = ring.loadBeginIndex()
        let sharedNext = ring.loadNextIndex()
        guard sharedBegin == begin, sharedNext == next else {
            throw Self.wroteDriverIndex(type, sharedBegin, sharedNext, begin, next)
        }
        try accept(end: ring.loadEndIndex(), ring, type, begin: begin)
    }

    @inline(never)
    static func wroteDriverIndex(
        _ type: NetRingType, _ sharedBegin: UInt32, _ sharedNext: UInt32, _ begin: UInt32, _ next: UInt32
    ) -> NetRingViolation {
        NetRingViolation(
            .osWroteDriverIndex, ring: type, index: sharedBegin,
            "BeginIndex/NextIndex are \(sharedBegin)/\(sharedNext), the driver side set \(begin)/\(next)")
    }

    /// Accepts an `EndIndex` snapshot (an iterator's `end`): the owned range may only grow. An overfill
    /// wraps `EndIndex` behind where it was, so it shows as a shrink too; one that ends on `BeginIndex` (the
    /// classic off-by-one, ignoring the gap) is named for what it is.
    @inline(__always)
    mutating func accept(end newEnd: UInt32, _ ring: NetRing, _ type: NetRingType, begin: UInt32)
        throws(NetRingViolation)
    {
        guard ring.rangeCount(from: begin, to: newEnd) >= ring.rangeCount(from: begin, to: end) else {
            throw shrank(to: newEnd, ring, type, begin: begin)
        }
        end = newEnd
    }

    @inline(never)
    func shrank(to newEnd: UInt32, _ ring: NetRing, _ type: NetRingType, begin: UInt32) -> NetRingViolation {
        if newEnd == begin {
            return NetRingViolation(
                .osOverfilledRing, ring: type, index: newEnd,
                "EndIndex went from \(end) to BeginIndex \(begin): all \(ring.numberOfElements) elements given out")
        }
        return NetRingViolation(
            .osMovedEndBackward, ring: type, index: newEnd,
            "EndIndex went from \(end) to \(newEnd) with BeginIndex \(begin)")
    }

    /// The shared `EndIndex` if it only grew the range, else the last one accepted: how far a cancel returns.
    mutating func acceptIfGrown(_ ring: NetRing, begin: UInt32) -> UInt32 {
        let newEnd = ring.loadEndIndex()
        if ring.rangeCount(from: begin, to: newEnd) >= ring.rangeCount(from: begin, to: end) { end = newEnd }
        return end
    }

    /// After the driver side's turn: a ring-style driver's iterators may have seen a newer `EndIndex` than
    /// the turn's check (and returned up to it). `previousBegin` is where `BeginIndex` stood at the check.
    @inline(__always)
    mutating func capture(_ ring: NetRing, previousBegin: UInt32) {
        let newEnd = ring.loadEndIndex()
        if ring.rangeCount(from: previousBegin, to: newEnd) >= ring.rangeCount(from: previousBegin, to: end) {
            end = newEnd
        }
    }
}

/// The checks of a binding's four rings.
package struct BindingIndexGuard {
    var transmitPackets = RingIndexRecord()
    var transmitFragments = RingIndexRecord()
    var receivePackets = RingIndexRecord()
    var receiveFragments = RingIndexRecord()
    /// `BeginIndex` of each ring at the last check (for `MiniportBinding.captureIndices`).
    var begins: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
}

extension MiniportBinding {
    /// The turn's check of the four rings, from the binding's own fields: no
    /// ring collection is copied (a copy retains its references).
    @inline(__always)
    func verifyIndices() throws(NetRingViolation) {
        let tx = rings.stored
        let rx = receive.stored
        try indexGuard.transmitPackets.verify(
            regions.transmitPacketRing, .packet, begin: tx.packetBegin, next: tx.packetNext)
        try indexGuard.transmitFragments.verify(
            regions.transmitFragmentRing, .fragment, begin: tx.fragmentBegin, next: tx.fragmentNext)
        try indexGuard.receivePackets.verify(
            regions.receivePacketRing, .packet, begin: rx.packetBegin, next: rx.packetNext)
        try indexGuard.receiveFragments.verify(
            regions.receiveFragmentRing, .fragment, begin: rx.fragmentBegin, next: rx.fragmentNext)
        indexGuard.begins = (tx.packetBegin, tx.fragmentBegin, rx.packetBegin, rx.fragmentBegin)
    }

    /// After a driver's turn or poll: accept the `EndIndex` its iterators may have seen.
    @inline(__always)
    func captureIndices() {
        let begins = indexGuard.begins
        indexGuard.transmitPackets.capture(regions.transmitPacketRing, previousBegin: begins.0)
        indexGuard.transmitFragments.capture(regions.transmitFragmentRing, previousBegin: begins.1)
        indexGuard.receivePackets.capture(regions.receivePacketRing, previousBegin: begins.2)
        indexGuard.receiveFragments.capture(regions.receiveFragmentRing, previousBegin: begins.3)
    }
}
