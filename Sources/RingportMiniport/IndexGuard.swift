import RingportCore

/// The framework's check of one ring's shared indices, at every turn, checked mode or not: `BeginIndex`
/// and `NextIndex` must be as the driver side last stored them (its own copies, `DriverIndices`), and the
/// OS may only have grown the driver's range. A protocol that writes the driver's indices, moves `EndIndex`
/// backwards or overfills the ring has its binding closed before the driver sees anything (the verifier
/// finds the rest in checked mode).
struct RingIndexRecord {
    /// The last `EndIndex` accepted.
    var end: UInt32 = 0

    mutating func verify(_ ring: NetRing, _ type: NetRingType, stored: DriverIndices) throws(NetRingViolation) {
        let own = stored.indices(type)
        let sharedBegin = ring.loadBeginIndex()
        let sharedNext = ring.loadNextIndex()
        guard sharedBegin == own.begin, sharedNext == own.next else {
            throw NetRingViolation(
                .osWroteDriverIndex, ring: type, index: sharedBegin,
                "BeginIndex/NextIndex are \(sharedBegin)/\(sharedNext), the driver side set \(own.begin)/\(own.next)")
        }
        try accept(end: ring.loadEndIndex(), ring, type, begin: own.begin)
    }

    /// Accepts an `EndIndex` snapshot (an iterator's `end`): the owned range may only grow. An overfill
    /// wraps `EndIndex` behind where it was, so it shows as a shrink too; one that ends on `BeginIndex` (the
    /// classic off-by-one, ignoring the gap) is named for what it is.
    mutating func accept(end newEnd: UInt32, _ ring: NetRing, _ type: NetRingType, begin: UInt32)
        throws(NetRingViolation)
    {
        guard ring.rangeCount(from: begin, to: newEnd) >= ring.rangeCount(from: begin, to: end) else {
            if newEnd == begin {
                throw NetRingViolation(
                    .osOverfilledRing, ring: type, index: newEnd,
                    "EndIndex went from \(end) to BeginIndex \(begin): all \(ring.numberOfElements) elements given out")
            }
            throw NetRingViolation(
                .osMovedEndBackward, ring: type, index: newEnd,
                "EndIndex went from \(end) to \(newEnd) with BeginIndex \(begin)")
        }
        end = newEnd
    }

    /// The shared `EndIndex` if it only grew the range, else the last one accepted: how far a cancel returns.
    mutating func acceptIfGrown(_ ring: NetRing, begin: UInt32) -> UInt32 {
        let newEnd = ring.loadEndIndex()
        if ring.rangeCount(from: begin, to: newEnd) >= ring.rangeCount(from: begin, to: end) { end = newEnd }
        return end
    }

    /// After the driver side's turn: a ring-style driver's iterators may have seen a newer `EndIndex` than
    /// the turn's check (and returned up to it). `previousBegin` is where `BeginIndex` stood at the check.
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
    /// `BeginIndex` of each ring at the last check (for `capture`).
    var begins: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)

    mutating func verify(transmit: NetRingCollection, receive: NetRingCollection) throws(NetRingViolation) {
        try transmitPackets.verify(transmit.packetRing, .packet, stored: transmit.stored)
        try transmitFragments.verify(transmit.fragmentRing, .fragment, stored: transmit.stored)
        try receivePackets.verify(receive.packetRing, .packet, stored: receive.stored)
        try receiveFragments.verify(receive.fragmentRing, .fragment, stored: receive.stored)
        begins = (
            transmit.stored.packetBegin, transmit.stored.fragmentBegin, receive.stored.packetBegin,
            receive.stored.fragmentBegin
        )
    }

    package mutating func capture(transmit: NetRingCollection, receive: NetRingCollection) {
        transmitPackets.capture(transmit.packetRing, previousBegin: begins.0)
        transmitFragments.capture(transmit.fragmentRing, previousBegin: begins.1)
        receivePackets.capture(receive.packetRing, previousBegin: begins.2)
        receiveFragments.capture(receive.fragmentRing, previousBegin: begins.3)
    }
}
