import DequeModule
public import RingportMiniport

/// NDIS 5 array (`MiniportSendPackets`): answers every sent frame with the same bytes reversed, indicated
/// back to the sender, then completes the frame.
///
/// Serialized, it gives each packet its status in `sendPackets`; when the sender has no receive buffer it
/// answers `RESOURCES`, and the framework hands that packet and every later one back and resubmits them,
/// in order, after `sendResourcesAvailable`. Deserialized, it holds every packet and completes each later
/// with `sendComplete`, once its reply is delivered.
public final class ReverseEchoDriver: SendPacketsHandler {
    public let name = "reverse-echo"
    public let isSerialized: Bool
    public let maxSendPackets = 8
    var held: Deque<MiniportPacket> = []  // deserialized: accepted, reply not yet delivered, in order
    var refused = false  // serialized: answered RESOURCES, owes a resources-available

    public init(serialized: Bool) { isSerialized = serialized }

    public func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        guard isSerialized else {
            held.append(contentsOf: packets)  // statuses are ignored for a deserialized driver
            _ = deliverHeld(context: context)
            return
        }
        for (i, packet) in packets.enumerated() {
            switch reply(to: packet, context: context) {
            case .delivered, .filtered: statuses[i] = .success  // filtered: the binding chose not to receive
            case .noBuffer:
                statuses[i] = .resources  // this one and the rest come back later, in order
                refused = true
                return
            case .unfit, .unknownBinding: statuses[i] = .failure
            }
        }
    }

    public func poll(context: MiniportContext) -> Bool {
        if refused {
            refused = false
            context.sendResourcesAvailable()
        }
        return deliverHeld(context: context)
    }

    public func bindingClosing(_ binding: UInt64, context: MiniportContext) {
        // The framework completes what is still held with CLOSING; completing it here too would be refused.
        held.removeAll { $0.binding == binding }
    }

    /// Replies to held packets head of line; returns whether some still wait for a receive buffer.
    func deliverHeld(context: MiniportContext) -> Bool {
        while let packet = held.first {
            let delivery = reply(to: packet, context: context)
            if delivery == .noBuffer { return true }
            held.removeFirst()
            context.sendComplete(packet, status: delivery == .delivered ? .success : .failure)
        }
        return false
    }

    /// Reads the packet in place and indicates its bytes reversed to its sender.
    func reply(to packet: MiniportPacket, context: MiniportContext) -> MiniportContext.Delivery {
        guard let payload = context.withPacket(packet, { $0.payload() }) else { return .unfit }
        let reversed = Array(payload.reversed())
        return reversed.withUnsafeBytes { context.indicateReceive($0, to: packet.binding) }
    }
}
