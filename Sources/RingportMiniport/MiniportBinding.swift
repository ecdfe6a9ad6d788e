package import RingportCore
package import RingportSystem

/// A binding's segment, handed from the control thread (which creates it) to the data thread.
package final class BindingResources: @unchecked Sendable {
    let id: UInt64
    let segment: SharedSegment
    let regions: BindingRegions
    let processID: Int32
    /// The user that opened it (SO_PEERCRED), for the statistics.
    let userID: UInt32

    package init(
        id: UInt64, segment: consuming SharedSegment, regions: BindingRegions, processID: Int32, userID: UInt32 = 0
    ) {
        self.id = id
        self.segment = segment
        self.regions = regions
        self.processID = processID
        self.userID = userID
    }
}

/// The data thread's state of one binding's transmit queue.
package final class MiniportBinding {
    enum SlotState: UInt8 {
        case idle = 0
        case pending, completed
    }

    let id: UInt64
    let resources: BindingResources
    let regions: BindingRegions
    package let rings: NetRingCollection
    /// The receive queue's rings, driver side.
    package let receive: NetRingCollection
    // The data thread alone touches these: no dynamic exclusivity checks per packet.
    @exclusivity(unchecked) var received: UInt64 = 0
    @exclusivity(unchecked) var receivedBytes: UInt64 = 0
    /// Both queues' `BeginIndex` as of the last wake check: the protocol is woken when one moved.
    @exclusivity(unchecked) var wokenAtTransmit: UInt32 = 0
    @exclusivity(unchecked) var wokenAtReceive: UInt32 = 0
    @exclusivity(unchecked) var dropped: UInt64 = 0
    @exclusivity(unchecked) var slotState: [SlotState]
    @exclusivity(unchecked) var slotRound: [UInt32]
    /// The fragment-ring index after the packet's fragments: where `BeginIndex` goes once it is returned.
    @exclusivity(unchecked) var slotFragmentEnd: [UInt32]
    @exclusivity(unchecked) var slotBytes: [UInt32]
    /// The descriptor each pending slot carries, as loaded (once) when it was posted; -1 for none.
    @exclusivity(unchecked) var slotDescriptor: [Int32]
    /// Each pending slot's fragments as checked at post: the first index and the count.
    @exclusivity(unchecked) var slotFragmentFirst: [UInt32]
    @exclusivity(unchecked) var slotFragmentCount: [UInt16]
    /// Whether its packet filter lets any frame in (as granted at open).
    let receives: Bool
    /// A serialized driver answered `RESOURCES`: resubmit after the next completion or resources-available.
    @exclusivity(unchecked) var blocked = false
    @exclusivity(unchecked) var packets: UInt64 = 0
    @exclusivity(unchecked) var bytes: UInt64 = 0
    @exclusivity(unchecked) var failed: UInt64 = 0
    @exclusivity(unchecked) var outstanding = 0
    /// The indices the framework last stored and accepted, checked at every turn.
    @exclusivity(unchecked) package var indexGuard = BindingIndexGuard()

    package init(_ resources: BindingResources, checked: Bool) {
        id = resources.id
        self.resources = resources
        regions = resources.regions
        receives = !resources.regions.configuration.packetFilter.isEmpty
        rings = NetRingCollection(
            packetRing: regions.transmitPacketRing,
            fragmentRing: regions.transmitFragmentRing,
            checked: checked
        )
        receive = NetRingCollection(
            packetRing: regions.receivePacketRing,
            fragmentRing: regions.receiveFragmentRing,
            checked: checked
        )
        let n = Int(regions.transmitPacketRing.numberOfElements)
        slotState = Array(repeating: .idle, count: n)
        slotRound = Array(repeating: 0, count: n)
        slotFragmentEnd = Array(repeating: 0, count: n)
        slotBytes = Array(repeating: 0, count: n)
        slotDescriptor = Array(repeating: -1, count: n)
        slotFragmentFirst = Array(repeating: 0, count: n)
        slotFragmentCount = Array(repeating: 0, count: n)
    }

    /// The binding as `ringport stat` shows it: the framework's counters, each ring's fill from the driver
    /// side's own `BeginIndex` and the shared `EndIndex` (loaded once, checked), and what the protocol
    /// published about itself (loaded once, clamped: display values only). Data thread only.
    func statistics() -> BindingStatistics {
        let c = regions.configuration
        var s = BindingStatistics()
        s.id = id
        s.processID = UInt64(UInt32(bitPattern: resources.processID))
        s.userID = UInt64(resources.userID)
        s.state = UInt64(regions.control.state.load())
        (s.packetsSent, s.bytesSent, s.packetsFailed) = (packets, bytes, failed)
        s.packetsOutstanding = UInt64(max(0, outstanding))
        (s.packetsReceived, s.bytesReceived, s.packetsDropped) = (received, receivedBytes, dropped)
        (s.transmitPacketRingUsed, s.transmitPacketRingSize) = Self.fill(
            regions.transmitPacketRing, begin: rings.stored.packetBegin)
        (s.transmitFragmentRingUsed, s.transmitFragmentRingSize) = Self.fill(
            regions.transmitFragmentRing, begin: rings.stored.fragmentBegin)
        (s.receivePacketRingUsed, s.receivePacketRingSize) = Self.fill(
            regions.receivePacketRing, begin: receive.stored.packetBegin)
        (s.receiveFragmentRingUsed, s.receiveFragmentRingSize) = Self.fill(
            regions.receiveFragmentRing, begin: receive.stored.fragmentBegin)
        let control = regions.control
        s.packetPoolSize = UInt64(c.packetCount)
        s.chunkPoolSize = UInt64(c.chunkCount)
        s.packetsInUse = min(control.protocolStatistic(.packetsInUse), s.packetPoolSize)
        s.chunksInUse = min(control.protocolStatistic(.chunksInUse), s.chunkPoolSize)
        let policy = control.protocolStatistic(.waitPolicy)
        s.waitPolicy = WaitPolicy(code: policy) == nil ? 0 : policy
        s.sleeps = control.protocolStatistic(.sleeps)
        return s
    }

    /// Elements from `begin` (the driver side's own copy) to the shared `EndIndex`, and the ring's size; an
    /// `EndIndex` outside the ring counts as empty (the index checks close such a binding at its turn).
    static func fill(_ ring: NetRing, begin: UInt32) -> (used: UInt64, size: UInt64) {
        let end = ring.loadEndIndex()
        let size = UInt64(ring.numberOfElements)
        guard begin < ring.numberOfElements, end < ring.numberOfElements else { return (0, size) }
        return (UInt64(ring.rangeCount(from: begin, to: end)), size)
    }

    /// Whether the protocol published packets not yet given to the driver.
    var hasPostedWork: Bool {
        !blocked && regions.transmitPacketRing.loadEndIndex() != regions.transmitPacketRing.loadNextIndex()
    }
}
