public import RingportMiniport
import Synchronization

/// NDIS 5 per packet (`MiniportSend`, no array handler): serialized, so each call returns the packet's
/// status. It takes `credits` packets per turn of the data plane and answers `RESOURCES` after that (the
/// framework requeues that packet and the rest, in order, until `sendResourcesAvailable`); it fails frames
/// longer than `maxFrame`, and keeps the payload and 802.1p priority of every packet it took, in order.
public final class ThrottledDriver: SendHandler, Sendable {
    public struct Taken: Sendable, Equatable {
        public var payload: [UInt8]
        public var priority: UInt8?
        public init(payload: [UInt8], priority: UInt8?) {
            self.payload = payload
            self.priority = priority
        }
    }

    public let name = "throttled"
    public let isSerialized = true
    public let maxSendPackets = 4
    let credits: Int
    let maxFrame: Int
    struct State {
        var left: Int
        var starved = false
        var taken: [Taken] = []
        var refusals = 0
    }
    // The data thread writes it; a test reads `taken` from another thread.
    let state: Mutex<State>

    public init(credits: Int, maxFrame: Int) {
        self.credits = credits
        self.maxFrame = maxFrame
        state = Mutex(State(left: credits))
    }

    /// Every packet the driver took (`SUCCESS` or `FAILURE`), in the order it got them.
    public var taken: [Taken] { state.withLock { $0.taken } }
    /// How many times it answered `RESOURCES`.
    public var refusals: Int { state.withLock { $0.refusals } }

    public func send(_ packet: MiniportPacket, context: MiniportContext) -> NDISStatus {
        let view = context.withPacket(packet) { view in
            Taken(payload: view.payload(), priority: view.mediaSpecificInformation?.ieee8023Priority)
        }
        return state.withLock { state in
            guard state.left > 0 else {
                state.starved = true
                state.refusals += 1
                return .resources
            }
            state.left -= 1
            guard let view else { return .invalidPacket }
            state.taken.append(view)
            return view.payload.count <= maxFrame ? .success : .failure
        }
    }

    public func poll(context: MiniportContext) -> Bool {
        let signal = state.withLock { state in
            state.left = credits
            defer { state.starved = false }
            return state.starved
        }
        // Nothing is pending, so no send-complete will come: resubmission waits for this call.
        if signal { context.sendResourcesAvailable() }
        return false
    }
}
