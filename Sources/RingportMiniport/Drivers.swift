import RingportCore
import RingportSystem

/// Checks, per binding, that packets arrive in sequence with the right bytes (`PayloadPattern`).
struct SequenceChecker {
    var next: [UInt64: UInt64] = [:]

    /// The packet's sequence number if it is the next one of its binding and intact; reports otherwise.
    mutating func check(_ payload: [UInt8], binding: UInt64, context: MiniportContext) -> UInt64? {
        guard let sequence = PayloadPattern.verify(payload) else {
            context.reportVerificationError(binding: binding, "payload of \(payload.count) bytes is corrupt")
            return nil
        }
        let expected = next[binding, default: 0]
        next[binding] = sequence + 1
        guard sequence == expected else {
            context.reportVerificationError(binding: binding, "sequence \(sequence) arrived, expected \(expected)")
            return nil
        }
        return sequence
    }
}

/// Packets a test driver holds (completed later, in FIFO order) and its resources-available timer.
struct DeferredCompletions {
    var pending: [(packet: MiniportPacket, status: NDISStatus, due: UInt64)] = []
    var resourcesDue: UInt64?

    /// After a `RESOURCES`: if nothing is held, no completion will resubmit, so signal resources later.
    mutating func resourcesRefused(now: UInt64, delay: UInt64) {
        if pending.isEmpty { resourcesDue = now + delay }
    }

    /// Completes what is due, in order, and fires resources-available; returns whether anything is left.
    mutating func poll(context: MiniportContext) -> Bool {
        let now = ProcessControl.monotonicNanoseconds()
        while let first = pending.first, first.due <= now {
            pending.removeFirst()
            context.sendComplete(first.packet, status: first.status)
        }
        if let due = resourcesDue, due <= now {
            resourcesDue = nil
            context.sendResourcesAvailable()
        }
        return !pending.isEmpty || resourcesDue != nil
    }

    mutating func forget(_ binding: UInt64) { pending.removeAll { $0.packet.binding == binding } }
}

extension SequenceChecker {
    /// The status a test driver gives a packet: by the pattern rule if it is intact and in order, else FAILURE.
    mutating func status(of packet: MiniportPacket, context: MiniportContext) -> NDISStatus {
        let payload = context.withPacket(packet) { $0.payload() } ?? []
        return check(payload, binding: packet.binding, context: context).map(PayloadPattern.expectedStatus) ?? .failure
    }
}

/// What the serialized test drivers keep: their random choices, the order checker, and what they hold.
struct TestDriverState {
    var random: SplitMix64
    var checker = SequenceChecker()
    var deferred = DeferredCompletions()
    let maxDelay: UInt64

    init(seed: UInt64, maxDelayMicroseconds: Int) {
        random = SplitMix64(state: seed)
        maxDelay = UInt64(max(0, maxDelayMicroseconds)) * 1000
    }

    /// The binding is going away: forget what is held for it and where its sequence stood.
    mutating func forget(_ binding: UInt64) {
        deferred.forget(binding)
        checker.next[binding] = nil
    }
}

/// `null`: completes every packet with `SUCCESS` (ring style: post and drain in one pass), counting packets
/// and bytes. With `verify`, it checks every byte and the order per binding, and fails bad packets.
public final class NullDriver: RingDriver {
    public let name = "null"
    let verify: Bool
    @exclusivity(unchecked) var checker = SequenceChecker()
    @exclusivity(unchecked) var scratch: [UInt8] = []

    public init(verify: Bool = false) { self.verify = verify }

    public func bindingClosing(_ binding: UInt64, context: MiniportContext) { checker.next[binding] = nil }

    public func advance(_ queue: TransmitQueue, context: MiniportContext) throws(NetRingViolation) {
        let rings = queue.rings
        var post = rings.postPackets()
        guard post.hasAny else { return }
        var fragmentEnd = rings.fragmentRing.loadNextIndex()
        var bytes = 0
        var count = 0
        while post.hasAny {
            let packet = post.packet
            var status = NDISStatus.success
            if packet.ignore {
                status = .invalidPacket
            } else {
                var fragments = post.fragments()
                // The element is loaded once, by the iterator; where its fragments end comes from that one load.
                let fragmentsEnd = fragments.hasAny ? fragments.end : nil
                scratch.removeAll(keepingCapacity: true)
                while fragments.hasAny {
                    let fragment = fragments.fragment
                    let length = queue.withBytes(of: fragment) { [verify] span in
                        if verify { self.scratch += span }
                        return span.count
                    }
                    guard let length else {
                        status = .invalidPacket
                        break
                    }
                    bytes += length
                    fragments.advance()
                }
                if let fragmentsEnd { fragmentEnd = fragmentsEnd }
                if verify && status == .success
                    && checker.check(scratch, binding: queue.binding, context: context) == nil
                {
                    status = .failure
                }
            }
            queue.setStatus(status, of: packet)
            count += 1
            post.advance()
        }
        // A broken ring is the framework's to handle: it closes the binding (logging it once).
        try post.set()
        try rings.setFragmentNextIndex(to: fragmentEnd)
        try rings.setFragmentBeginIndex(to: fragmentEnd)
        var all = rings.drainPackets()
        all.advanceToTheEnd()
        try all.set()
        context.recordSent(binding: queue.binding, packets: count, bytes: bytes)
    }
}

/// A small deterministic generator for the test drivers.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `resources`: a serialized NDIS 5 driver that answers `RESOURCES` at random points of each array, keeps
/// some packets `PENDING` and completes them later (in order), and signals resources-available itself
/// when it holds nothing. It checks bytes and FIFO order per binding, across the requeues.
public final class ResourcesDriver: SendPacketsHandler {
    public let name = "resources"
    public let isSerialized = true
    public let maxSendPackets = 16
    var state: TestDriverState

    public init(seed: UInt64, maxDelayMicroseconds: Int = 300) {
        state = TestDriverState(seed: seed, maxDelayMicroseconds: maxDelayMicroseconds)
    }

    public func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        let refuseAt = Int.random(in: 0...packets.count + 2, using: &state.random)  // past the end: take them all
        let now = ProcessControl.monotonicNanoseconds()
        for (i, packet) in packets.enumerated() {
            if i == refuseAt {
                statuses[i] = .resources
                state.deferred.resourcesRefused(
                    now: now, delay: UInt64.random(in: 0...state.maxDelay, using: &state.random))
                return
            }
            let status = state.checker.status(of: packet, context: context)
            if Int.random(in: 0..<10, using: &state.random) < 3 {
                statuses[i] = .pending
                let due = now + UInt64.random(in: state.maxDelay / 2...state.maxDelay, using: &state.random)
                state.deferred.pending.append((packet, status, due))
            } else {
                statuses[i] = status
            }
        }
    }

    public func poll(context: MiniportContext) -> Bool { state.deferred.poll(context: context) }

    public func bindingClosing(_ binding: UInt64, context: MiniportContext) { state.forget(binding) }
}

/// `random-order`: a deserialized NDIS 5 driver that accepts every packet and completes each after a random
/// delay, in random order. It checks bytes and arrival order per binding.
public final class RandomOrderDriver: SendPacketsHandler {
    public let name = "random-order"
    public let isSerialized = false
    public let maxSendPackets = 32
    var random: SplitMix64
    var checker = SequenceChecker()
    var pending: [(packet: MiniportPacket, status: NDISStatus, due: UInt64)] = []
    let maxDelay: UInt64

    public init(seed: UInt64, maxDelayMicroseconds: Int = 500) {
        random = SplitMix64(state: seed)
        maxDelay = UInt64(max(0, maxDelayMicroseconds)) * 1000
    }

    public func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        let now = ProcessControl.monotonicNanoseconds()
        for packet in packets {
            let status = checker.status(of: packet, context: context)
            pending.append((packet, status, now + UInt64.random(in: maxDelay / 2...maxDelay, using: &random)))
        }
    }

    public func poll(context: MiniportContext) -> Bool {
        guard !pending.isEmpty else { return false }
        let now = ProcessControl.monotonicNanoseconds()
        var due = pending.indices.filter { pending[$0].due <= now }
        guard !due.isEmpty else { return true }
        due.shuffle(using: &random)
        for i in due { context.sendComplete(pending[i].packet, status: pending[i].status) }
        let done = Set(due)
        pending = pending.enumerated().filter { !done.contains($0.offset) }.map(\.element)
        return !pending.isEmpty
    }

    public func bindingClosing(_ binding: UInt64, context: MiniportContext) {
        pending.removeAll { $0.packet.binding == binding }
        checker.next[binding] = nil
    }
}

/// `serial`: a serialized NDIS 5 driver with no array handler, so the framework calls `send` once per packet,
/// in order. It answers `RESOURCES` (about one packet in eight), `PENDING` (one in five, completed later in
/// order) or the packet's status, signals resources-available itself when it holds nothing, and checks bytes
/// and FIFO order per binding across the requeues.
public final class SerialDriver: SendHandler {
    public let name = "serial"
    public let isSerialized = true
    public let maxSendPackets = 8
    var state: TestDriverState

    public init(seed: UInt64, maxDelayMicroseconds: Int = 300) {
        state = TestDriverState(seed: seed, maxDelayMicroseconds: maxDelayMicroseconds)
    }

    public func send(_ packet: MiniportPacket, context: MiniportContext) -> NDISStatus {
        let now = ProcessControl.monotonicNanoseconds()
        if Int.random(in: 0..<8, using: &state.random) == 0 {
            state.deferred.resourcesRefused(
                now: now, delay: UInt64.random(in: state.maxDelay / 2...state.maxDelay, using: &state.random))
            return .resources
        }
        let status = state.checker.status(of: packet, context: context)
        guard Int.random(in: 0..<5, using: &state.random) == 0 else { return status }
        state.deferred.pending.append(
            (packet, status, now + UInt64.random(in: state.maxDelay / 2...state.maxDelay, using: &state.random)))
        return .pending
    }

    public func poll(context: MiniportContext) -> Bool { state.deferred.poll(context: context) }

    public func bindingClosing(_ binding: UInt64, context: MiniportContext) { state.forget(binding) }
}

/// `loopback` and `hub`: a deserialized driver that receives every sent packet back on the same binding
/// (loopback) or on every other binding that receives (hub; a binding with an empty packet filter only
/// sends). Each sender's packets wait in a FIFO and are delivered head of line, so every receiver sees them
/// in the sender's order. With `lossless`, a packet stays pending until every receiver has taken it
/// (back-pressure: nothing dropped), except that a receiver which takes nothing for `stallTimeout` is
/// dropped for (counted as its drops and as a stall) until it posts buffers again, so one stalled receiver
/// never holds the others; with `drop`, a receiver with no posted buffer loses that packet, counted for it.
public final class HubDriver: SendPacketsHandler {
    public enum Mode: String, Sendable { case loopback, hub }
    public enum Policy: String, Sendable { case lossless, drop }

    public var name: String { mode.rawValue }
    public let isSerialized = false
    public let maxSendPackets = 64
    let mode: Mode
    let policy: Policy
    /// How long a lossless hub waits for a receiver that takes nothing (nil: for ever).
    let stallTimeout: UInt64?
    /// Receivers that had no buffer, since when (monotonic ns); and those given up on.
    @exclusivity(unchecked) var waitingSince: [UInt64: UInt64] = [:]
    @exclusivity(unchecked) var stalled: Set<UInt64> = []
    /// Per sender: its pending packets in order, each with the receivers still to take it.
    @exclusivity(unchecked) var queues: [UInt64: [(packet: MiniportPacket, receivers: [UInt64])]] = [:]
    @exclusivity(unchecked) var heads: [UInt64: Int] = [:]

    public static let defaultStallTimeoutMilliseconds = 1000

    public init(
        mode: Mode, policy: Policy = .lossless, stallTimeoutMilliseconds: Int? = defaultStallTimeoutMilliseconds
    ) {
        self.mode = mode
        self.policy = policy
        stallTimeout = stallTimeoutMilliseconds.map { UInt64(max(0, $0)) * 1_000_000 }
    }

    public func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        let everyone = context.receiverIDs
        // One array of receivers per call, not per packet: every packet of a call comes from one binding.
        var receivers: [UInt64] = []
        var sender: UInt64?
        for packet in packets {
            if packet.binding != sender {
                sender = packet.binding
                receivers =
                    mode == .loopback
                    ? everyone.filter { $0 == packet.binding } : everyone.filter { $0 != packet.binding }
            }
            queues[packet.binding, default: []].append((packet, receivers))
        }
        _ = deliver(context: context)
    }

    public func poll(context: MiniportContext) -> Bool { deliver(context: context) }

    /// Delivers what it can, head of line per sender; returns whether packets still wait.
    func deliver(context: MiniportContext) -> Bool {
        var waiting = false
        var now: UInt64?
        for sender in Array(queues.keys) {
            var head = heads[sender, default: 0]
            guard var queue = queues[sender] else { continue }
            while head < queue.count {
                var remaining: [UInt64] = []
                for receiver in queue[head].receivers {
                    switch context.indicateReceive(queue[head].packet, to: receiver) {
                    case .delivered:
                        if !waitingSince.isEmpty { tookOne(receiver) }
                    case .unknownBinding, .filtered:
                        break
                    case .unfit:
                        context.recordDrop(for: receiver)
                    case .noBuffer:
                        if policy == .lossless && !gaveUp(on: receiver, now: &now, context: context) {
                            remaining.append(receiver)
                        } else {
                            context.recordDrop(for: receiver)
                        }
                    }
                }
                queue[head].receivers = remaining
                guard remaining.isEmpty else { break }
                context.sendComplete(queue[head].packet, status: .success)
                head += 1
            }
            if head == queue.count {
                queues[sender] = nil
                heads[sender] = nil
            } else {
                waiting = true
                if head > 1024 {
                    queue.removeFirst(head)
                    head = 0
                }
                queues[sender] = queue
                heads[sender] = head
            }
        }
        // Nothing waits: no receiver is being waited for, so a later wait starts a fresh stall clock.
        if !waiting && !waitingSince.isEmpty { waitingSince.removeAll() }
        return waiting
    }

    /// The receiver took a frame: it is waited for again.
    func tookOne(_ receiver: UInt64) {
        waitingSince[receiver] = nil
        stalled.remove(receiver)
    }

    /// Whether a lossless hub stops waiting for `receiver`, which has no buffer now: it has had none for the
    /// stall timeout (reported once per stall), or was already given up on.
    func gaveUp(on receiver: UInt64, now: inout UInt64?, context: MiniportContext) -> Bool {
        guard let stallTimeout else { return false }
        if stalled.contains(receiver) { return true }
        let time = now ?? ProcessControl.monotonicNanoseconds()
        now = time
        guard let since = waitingSince[receiver] else {
            waitingSince[receiver] = time
            return false
        }
        guard time &- since >= stallTimeout else { return false }
        stalled.insert(receiver)
        context.recordStall(of: receiver, afterMilliseconds: stallTimeout / 1_000_000)
        return true
    }

    public func bindingClosing(_ binding: UInt64, context: MiniportContext) {
        waitingSince[binding] = nil
        stalled.remove(binding)
        queues[binding] = nil
        heads[binding] = nil
        for sender in Array(queues.keys) {
            guard var queue = queues[sender] else { continue }
            for i in queue.indices { queue[i].receivers.removeAll { $0 == binding } }
            queues[sender] = queue
        }
    }
}

/// The built-in drivers, by name.
public enum BuiltInDrivers {
    public static let names = ["null", "resources", "serial", "random-order", "loopback", "hub"]

    public static func make(
        _ name: String,
        verify: Bool,
        seed: UInt64,
        maxDelayMicroseconds: Int? = nil,
        policy: HubDriver.Policy = .lossless,
        stallTimeoutMilliseconds: Int? = HubDriver.defaultStallTimeoutMilliseconds
    ) -> (any MiniportDriver)? {
        switch name {
        case "loopback": HubDriver(mode: .loopback, policy: policy, stallTimeoutMilliseconds: stallTimeoutMilliseconds)
        case "hub": HubDriver(mode: .hub, policy: policy, stallTimeoutMilliseconds: stallTimeoutMilliseconds)
        case "null": NullDriver(verify: verify)
        case "resources": ResourcesDriver(seed: seed, maxDelayMicroseconds: maxDelayMicroseconds ?? 300)
        case "serial": SerialDriver(seed: seed, maxDelayMicroseconds: maxDelayMicroseconds ?? 300)
        case "random-order": RandomOrderDriver(seed: seed, maxDelayMicroseconds: maxDelayMicroseconds ?? 500)
        default: nil
        }
    }
}
