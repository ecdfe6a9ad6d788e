public import RingportCore

/// A packet the framework handed to an NDIS 5 style driver (`PNDIS_PACKET` on the miniport side).
/// A plain value the driver may keep until it completes the packet; the framework checks it then, so a
/// packet completed twice, or after its binding went away, is refused, never double-counted.
public struct MiniportPacket: Hashable, Sendable {
    /// The binding that sent the packet.
    public let binding: UInt64
    let slot: UInt32
    let round: UInt32
    /// The packet's descriptor index in its binding's pool.
    public let descriptor: Int
}

/// What every driver implements, whatever its model.
public protocol MiniportDriver: AnyObject {
    /// A short name for logs and `--driver`.
    var name: String { get }
    /// A binding was opened.
    func bindingOpened(_ binding: UInt64, context: MiniportContext)
    /// The binding is going away (closed, its protocol died, or the miniport stops): forget every packet of
    /// it. Do not complete them: after this call the framework completes what the driver still holds with
    /// `CLOSING` (if the protocol is still there to see it), and refuses a later `sendComplete` of any of them.
    func bindingClosing(_ binding: UInt64, context: MiniportContext)
    /// Called on every turn of the data-plane loop: finish deferred work (complete packets, signal
    /// resources). Returns whether deferred work remains (the miniport then stays awake).
    func poll(context: MiniportContext) -> Bool
}

extension MiniportDriver {
    /// Does nothing.
    public func bindingOpened(_ binding: UInt64, context: MiniportContext) {}
    /// Does nothing: a driver that holds nothing per binding has nothing to forget.
    public func bindingClosing(_ binding: UInt64, context: MiniportContext) {}
    /// Does nothing and reports no deferred work.
    public func poll(context: MiniportContext) -> Bool { false }
}

/// An NDIS 5 style driver: the framework gives it packets in FIFO order, at most `maxSendPackets` at a time,
/// through `SendPacketsHandler` (an array) or, failing that, `SendHandler` (one at a time, in order).
public protocol NDISDriver: MiniportDriver {
    /// Serialized: each packet gets a status at once (`SUCCESS`, `FAILURE`, `PENDING`, `RESOURCES`).
    /// Deserialized: every packet is accepted and completes later through `sendComplete`.
    var isSerialized: Bool { get }
    /// `OID_GEN_MAXIMUM_SEND_PACKETS`.
    var maxSendPackets: Int { get }
}

/// `MiniportSendPackets`.
public protocol SendPacketsHandler: NDISDriver {
    /// Serialized drivers set `statuses[i]` for each packet (it starts as `PENDING`); `RESOURCES` on one
    /// packet hands it and every later one back to the framework, which resubmits them in order after the
    /// next `sendComplete` or `sendResourcesAvailable`. Deserialized drivers leave `statuses` alone.
    func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext)
}

/// `MiniportSend`, for drivers without an array handler.
public protocol SendHandler: NDISDriver {
    /// Takes one packet and answers its status as a serialized `MiniportSend` does: `SUCCESS` or `FAILURE`
    /// completes it now, `PENDING` means the driver completes it later with `sendComplete`, `RESOURCES` hands
    /// it and every later packet back to the framework, which resubmits them in order.
    func send(_ packet: MiniportPacket, context: MiniportContext) -> NDISStatus
}

/// A NetAdapterCx style driver: advances each binding's transmit queue with the net-ring iterators itself.
public protocol RingDriver: MiniportDriver {
    /// `EvtPacketQueueAdvance`. A ring violation the driver's iterators report (checked mode) is thrown on:
    /// the framework then closes the binding, naming the rule.
    func advance(_ queue: TransmitQueue, context: MiniportContext) throws(NetRingViolation)
}

/// A binding's transmit queue as a ring-style driver sees it.
public struct TransmitQueue {
    /// The binding whose queue this is.
    public let binding: UInt64
    /// The queue's rings, driver side.
    public let rings: NetRingCollection
    let regions: BindingRegions

    /// Records a packet's completion status in its descriptor (the OOB `Status` the protocol reads).
    /// A descriptor index the protocol wrote is checked first; returns false if it is out of range.
    @discardableResult
    public func setStatus(_ status: NDISStatus, of packet: NetPacket) -> Bool {
        let descriptor = packet.descriptor  // loaded once: the protocol may rewrite it meanwhile
        guard regions.descriptors.contains(descriptor) else { return false }
        regions.descriptors[Int(descriptor)].status = status
        return true
    }

    /// The payload bytes of one of the queue's fragments, if the fragment's fields fit the data area.
    public func withBytes<R>(of fragment: NetFragment, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        guard let span = regions.data.span(of: fragment) else { return nil }
        return regions.data.withBytes(span) { body(UnsafeRawBufferPointer($0)) }
    }
}

/// A binding's receive queue as a ring-style driver sees it: the OS posted buffers (fragment ring) and packet
/// slots; the driver fills buffers, writes packets and returns both with the Rx iterators (drain then post).
public struct ReceiveQueue {
    /// The binding whose queue this is.
    public let binding: UInt64
    /// The queue's rings, driver side.
    public let rings: NetRingCollection
    let regions: BindingRegions

    /// The bytes of a posted buffer (up to its capacity), if its chunk and capacity fit the data area.
    public func withBuffer<R>(_ fragment: NetFragment, _ body: (UnsafeMutableRawBufferPointer) -> R) -> R? {
        let data = regions.data
        let chunk = Int(fragment.chunk)  // each field loaded once, checked, and only the copy used
        let capacity = Int(fragment.capacity)
        guard chunk < data.chunkCount, capacity <= data.chunkSize else { return nil }
        let start = chunk * data.chunkSize
        return data.withBytes(start..<start + capacity) { body($0) }
    }
}

/// A sent packet's contents as a driver reads them in place: OOB block, flags and payload fragments.
/// Valid only inside `MiniportContext.withPacket`.
public struct PacketView {
    let descriptor: PacketDescriptor
    let fragments: [Range<Int>]
    let data: DataArea

    /// The packet's flags, as the protocol set them.
    public var flags: PacketFlags { descriptor.flags }
    /// OOB `TimeToSend`, as the protocol set it.
    public var timeToSend: UInt64 { descriptor.timeToSend }
    /// OOB `HeaderSize`, as the protocol set it.
    public var headerSize: Int { Int(descriptor.headerSize) }
    /// OOB media-specific information (an 802.3 priority, for example), if the protocol set any.
    public var mediaSpecificInformation: MediaSpecificInformation? { descriptor.mediaSpecificInformation }
    /// Sets OOB `TimeSent` (the miniport may, while it holds the packet).
    public func setTimeSent(_ time: UInt64) { descriptor.timeToSend = time }
    /// The packet's fragments (one per chained buffer).
    public var fragmentCount: Int { fragments.count }
    /// The payload's length in bytes, over all fragments.
    public var totalLength: Int { fragments.reduce(0) { $0 + $1.count } }
    /// The bytes of fragment `index`.
    public func withFragmentBytes<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try data.withBytes(fragments[index]) { try body(UnsafeRawBufferPointer($0)) }
    }
    /// The whole payload, copied (for checking; a fast driver reads the fragments in place).
    public func payload() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(totalLength)
        for i in 0..<fragments.count { withFragmentBytes(i) { bytes += $0 } }
        return bytes
    }
}
