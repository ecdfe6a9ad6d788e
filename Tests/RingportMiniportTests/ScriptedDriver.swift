import RingportCore
import RingportMiniport
import Synchronization

/// What an NDIS 5 driver saw of one packet: its payload's sequence number and its OOB block and flags.
struct SeenPacket: Equatable, Sendable {
    var sequence: UInt64?
    var flags: PacketFlags
    var timeToSend: UInt64
    var headerSize: Int
    var media: MediaSpecificInformation?
}

/// An NDIS 5 array driver whose answers a test scripts: it records every `sendPackets` call, answers each
/// packet with the status `answer` gives (serialized) or holds every packet (deserialized), and on the
/// test's request completes what it holds (once, twice, in reverse) or signals resources-available.
final class ScriptedDriver: SendPacketsHandler, @unchecked Sendable {
    enum Request: Sendable {
        case completeHeld(NDISStatus, twice: Bool = false, reversed: Bool = false)
        case resourcesAvailable
    }

    let name = "scripted"
    let isSerialized: Bool
    let maxSendPackets: Int
    /// The statuses of call `n` for `count` packets (serialized); deserialized drivers write them too, to
    /// show the framework ignores them.
    let answer: @Sendable (_ call: Int, _ count: Int) -> [NDISStatus]
    let calls = Mutex<[[SeenPacket]]>([])
    let requests = Mutex<[Request]>([])
    let heldCount = Atomic<Int>(0)
    /// Data thread only.
    var held: [MiniportPacket] = []

    init(
        serialized: Bool,
        maxSendPackets: Int,
        answer: @escaping @Sendable (_ call: Int, _ count: Int) -> [NDISStatus]
    ) {
        isSerialized = serialized
        self.maxSendPackets = maxSendPackets
        self.answer = answer
    }

    var callSizes: [Int] { calls.withLock { $0.map(\.count) } }
    var sequences: [[UInt64?]] { calls.withLock { $0.map { $0.map(\.sequence) } } }
    func request(_ request: Request) { requests.withLock { $0.append(request) } }

    func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        let seen = packets.map { packet in
            context.withPacket(packet) { view in
                SeenPacket(
                    sequence: PayloadPattern.verify(view.payload()),
                    flags: view.flags,
                    timeToSend: view.timeToSend,
                    headerSize: view.headerSize,
                    media: view.mediaSpecificInformation
                )
            }!
        }
        let call = calls.withLock { calls in
            calls.append(seen)
            return calls.count - 1
        }
        let answers = answer(call, packets.count)
        for i in packets.indices {
            statuses[i] = answers[i]
            if answers[i] == .resources && isSerialized { break }
            if answers[i] == .pending || !isSerialized { held.append(packets[i]) }
        }
        heldCount.store(held.count, ordering: .sequentiallyConsistent)
    }

    func poll(context: MiniportContext) -> Bool {
        let pending = requests.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for request in pending {
            switch request {
            case .completeHeld(let status, let twice, let reversed):
                for packet in reversed ? held.reversed() : held {
                    context.sendComplete(packet, status: status)
                    if twice { context.sendComplete(packet, status: .failure) }
                }
                held.removeAll()
            case .resourcesAvailable:
                context.sendResourcesAvailable()
            }
        }
        heldCount.store(held.count, ordering: .sequentiallyConsistent)
        return true  // stay awake: the test's requests arrive without a doorbell
    }
}
