package import RingportCore
package import RingportSystem

/// A binding's segment, handed from the control thread (which creates it) to the data thread.
package final class BindingResources: @unchecked Sendable {
    let id: UInt64
    let segment: SharedSegment
    let regions: BindingRegions
    let processID: Int32

    package init(id: UInt64, segment: consuming SharedSegment, regions: BindingRegions, processID: Int32) {
        self.id = id
        self.segment = segment
        self.regions = regions
        self.processID = processID
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

    /// Whether the protocol published packets not yet given to the driver.
    var hasPostedWork: Bool {
        !blocked && regions.transmitPacketRing.loadEndIndex() != regions.transmitPacketRing.loadNextIndex()
    }
}
