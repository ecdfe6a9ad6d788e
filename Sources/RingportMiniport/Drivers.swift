import DequeModule
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
    var pending: Deque<(packet: MiniportPacket, status: NDISStatus, due: UInt64)> = []
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
    /// `null`.
    public let name = "null"
    let verify: Bool
    @exclusivity(unchecked) var checker = SequenceChecker()
    @exclusivity(unchecked) var scratch: [UInt8] = []

    /// A null driver; with `verify`, every byte and the order are checked and bad packets fail.
    public init(verify: Bool = false) { self.verify = verify }

    /// Forgets where the binding's sequence stood.
    public func bindingClosing(_ binding: UInt64, context: MiniportContext) { checker.next[binding] = nil }

    /// Takes every posted packet, completes it with `SUCCESS` (or fails it), and returns it in the same turn.
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

/// `resources`: a serialized NDIS 5 driver that answers `RESOURCES` at random points of each array, keeps
/// some packets `PENDING` and completes them later (in order), and signals resources-available itself
/// when it holds nothing. It checks bytes and FIFO order per binding, across the requeues.
public final class ResourcesDriver: SendPacketsHandler {
    /// `resources`.
    public let name = "resources"
    /// Serialized: each packet gets its status in `sendPackets`.
    public let isSerialized = true
    /// At most 16 packets an array.
    public let maxSendPackets = 16
    var state: TestDriverState

    /// A driver whose choices follow `seed`, holding a pending packet up to `maxDelayMicroseconds`.
    public init(seed: UInt64, maxDelayMicroseconds: Int = 300) {
        state = TestDriverState(seed: seed, maxDelayMicroseconds: maxDelayMicroseconds)
    }

    /// Completes, pends or refuses (`RESOURCES`) each packet, at random.
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

    /// Completes the pending packets that are due; true while it holds any.
    public func poll(context: MiniportContext) -> Bool { state.deferred.poll(context: context) }

    /// Forgets the binding's pending packets (the framework completes them with `CLOSING`).
    public func bindingClosing(_ binding: UInt64, context: MiniportContext) { state.forget(binding) }
}

/// `random-order`: a deserialized NDIS 5 driver that accepts every packet and completes each after a random
/// delay, in random order. It checks bytes and arrival order per binding.
public final class RandomOrderDriver: SendPacketsHandler {
    /// `random-order`.
    public let name = "random-order"
    /// Deserialized: every packet is accepted and completes through `sendComplete`.
    public let isSerialized = false
    /// At most 32 packets an array.
    public let maxSendPackets = 32
    var random: SplitMix64
    var checker = SequenceChecker()
    var pending: [(packet: MiniportPacket, status: NDISStatus, due: UInt64)] = []
    let maxDelay: UInt64

    /// A driver whose delays follow `seed`, each up to `maxDelayMicroseconds`.
    public init(seed: UInt64, maxDelayMicroseconds: Int = 500) {
        random = SplitMix64(state: seed)
        maxDelay = UInt64(max(0, maxDelayMicroseconds)) * 1000
    }

    /// Accepts every packet and gives it a random due time.
    public func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        let now = ProcessControl.monotonicNanoseconds()
        for packet in packets {
            let status = checker.status(of: packet, context: context)
            pending.append((packet, status, now + UInt64.random(in: maxDelay / 2...maxDelay, using: &random)))
        }
    }

    /// Completes the packets that are due, in random order; true while it holds any.
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

    /// Forgets the binding's packets (the framework completes them with `CLOSING`).
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
    /// `serial`.
    public let name = "serial"
    /// Serialized: each packet gets its status from `send`.
    public let isSerialized = true
    /// At most 8 packets a turn.
    public let maxSendPackets = 8
    var state: TestDriverState

    /// A driver whose choices follow `seed`, holding a pending packet up to `maxDelayMicroseconds`.
    public init(seed: UInt64, maxDelayMicroseconds: Int = 300) {
        state = TestDriverState(seed: seed, maxDelayMicroseconds: maxDelayMicroseconds)
    }

    /// Completes, pends or refuses (`RESOURCES`) the packet, at random.
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

    /// Completes the pending packets that are due; true while it holds any.
    public func poll(context: MiniportContext) -> Bool { state.deferred.poll(context: context) }

    /// Forgets the binding's pending packets (the framework completes them with `CLOSING`).
    public func bindingClosing(_ binding: UInt64, context: MiniportContext) { state.forget(binding) }
}

/// `loopback` and `hub`: a deserialized driver that receives every sent packet back on the same binding
/// (loopback) or on every other binding that receives (hub; a binding with an empty packet filter only
/// sends). A batching soft switch: `sendPackets` only queues (each sender's packets in a FIFO, their
/// payload ranges loaded from the fragments once and checked); `poll`, once per pass of the data plane,
/// then serves each destination once, with every frame queued for it by every sender: its receive rings
/// checked and snapshotted once, every frame copied, one set of index stores and one wake. Each receiver
/// keeps its own place in each sender's FIFO, so every receiver sees a sender's packets in order; a packet
/// completes once every receiver has taken it, and a sender's completed packets go back with one
/// `BeginIndex` store per pass. With `lossless`, what does not fit a receiver stays queued for the next
/// pass (back-pressure: nothing dropped), except that a receiver which takes nothing for `stallTimeout` is
/// dropped for (counted as its drops and as a stall) until it posts buffers again, so one stalled receiver
/// never holds the others; with `drop`, a receiver with no posted buffer loses those frames, counted for it.
public final class HubDriver: SendPacketsHandler {
    /// Where a frame goes: back to its sender (`loopback`) or to every other binding that receives (`hub`).
    public enum Mode: String, Sendable { case loopback, hub }
    /// What happens to a frame for a receiver with no posted buffer: it waits (`lossless`) or is dropped and
    /// counted (`drop`).
    public enum Policy: String, Sendable { case lossless, drop }

    /// `loopback` or `hub`.
    public var name: String { mode.rawValue }
    /// Deserialized: a packet completes once every receiver has taken it.
    public let isSerialized = false
    /// The framework's whole turn budget in one call.
    public let maxSendPackets = 256
    let mode: Mode
    let policy: Policy
    /// How long a lossless hub waits for a receiver that takes nothing (nil: for ever).
    let stallTimeout: UInt64?

    /// A queued packet and where its payload lies in its sender's data area: `spanCount` ranges from
    /// `spanFirst` in the sender's `spans`, loaded once and checked (-1: a fragment did not fit the area).
    struct Frame {
        let packet: MiniportPacket
        var spanFirst: Int32
        let spanCount: Int32
        let length: Int32
    }

    /// Every binding, as a sender: its FIFO of frames (`frames[head...]` still queued; frame `i` has
    /// sequence number `base + i`) and, per entry of `receivers`, the sequence number of the next frame
    /// that receiver takes (`Int.max`: not one of this sender's destinations).
    struct Sender {
        /// The context holds the binding from `bindingOpened` to `bindingClosing`, which drops this entry.
        unowned(unsafe) let binding: MiniportBinding
        let data: DataArea
        var frames: [Frame] = []
        var spans: [Range<Int>] = []
        var head = 0
        var base = 0
        var cursors: [Int] = []
        var tail: Int { base + frames.count }
    }

    /// A binding that receives, and its stall clock.
    struct Receiver {
        unowned(unsafe) let binding: MiniportBinding
        /// Since when (monotonic ns) it has had no buffer for a frame that waits; nil: it is not waited for.
        var waitingSince: UInt64?
        /// Given up on: dropped for until it takes a frame again.
        var stalled = false
    }

    @exclusivity(unchecked) var senders: [Sender] = []
    @exclusivity(unchecked) var receivers: [Receiver] = []
    /// Where each binding's `Sender` is, looked up once per call of `sendPackets`.
    @exclusivity(unchecked) var senderIndex: [UInt64: Int] = [:]
    /// Frames queued over all senders (nothing to do while 0).
    @exclusivity(unchecked) var queued = 0
    /// Receivers with a stall clock running.
    @exclusivity(unchecked) var clocks = 0
    /// Rotates which sender a destination is served from first.
    @exclusivity(unchecked) var rotation: UInt = 0

    /// How long a lossless hub waits, by default, for a receiver that takes nothing before dropping for it.
    public static let defaultStallTimeoutMilliseconds = 1000

    /// A hub or loopback with `policy`; `stallTimeoutMilliseconds` nil waits for a stalled receiver for ever.
    public init(
        mode: Mode, policy: Policy = .lossless, stallTimeoutMilliseconds: Int? = defaultStallTimeoutMilliseconds
    ) {
        self.mode = mode
        self.policy = policy
        stallTimeout = stallTimeoutMilliseconds.map { UInt64(max(0, $0)) * 1_000_000 }
    }

    /// Whether the frames of `sender` go to `receiver`.
    func routes(_ sender: UInt64, to receiver: UInt64) -> Bool {
        mode == .loopback ? sender == receiver : sender != receiver
    }

    /// Makes the binding a sender and, if it receives, a destination from now on.
    public func bindingOpened(_ binding: UInt64, context: MiniportContext) {
        _ = sender(binding, context: context)
    }

    /// The index of `id`'s `Sender`, made (with its place in `receivers`) when first seen.
    func sender(_ id: UInt64, context: MiniportContext) -> Int? {
        if let index = senderIndex[id] { return index }
        guard let binding = context.binding(id) else { return nil }
        // A new binding takes only what is sent from now on.
        senders.append(
            Sender(
                binding: binding, data: binding.regions.data,
                cursors: receivers.map { routes(id, to: $0.binding.id) ? 0 : Int.max }))
        senderIndex[id] = senders.count - 1
        if binding.receives {
            receivers.append(Receiver(binding: binding))
            for s in senders.indices {
                senders[s].cursors.append(routes(senders[s].binding.id, to: id) ? senders[s].tail : Int.max)
            }
        }
        return senders.count - 1
    }

    /// First pass: queues the packets, each with its payload ranges (loaded once, checked).
    public func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        var current: UInt64?
        var s = 0
        // Every packet of a call comes from one binding: one lookup per call, not per packet.
        for packet in packets {
            if packet.binding != current {
                guard let index = sender(packet.binding, context: context) else {
                    context.sendComplete(packet, status: .success)  // not pending: refused and counted
                    continue
                }
                current = packet.binding
                s = index
            }
            enqueue(packet, into: s, context: context)
        }
    }

    @inline(__always)
    func enqueue(_ packet: MiniportPacket, into s: Int, context: MiniportContext) {
        let binding = senders[s].binding
        guard let slot = context.pendingSlot(binding, packet) else {
            context.refuseCompletion(of: packet)
            return
        }
        // The fragments as checked at post; each is loaded once more (the protocol may have rewritten it),
        // checked, and only the range copied from then on.
        let rings = binding.rings
        let data = senders[s].data
        let spanFirst = Int32(truncatingIfNeeded: senders[s].spans.count)
        var index = binding.slotFragmentFirst[Int(slot)]
        var count: Int32 = 0
        var length = 0
        for _ in 0..<binding.slotFragmentCount[Int(slot)] {
            guard let span = data.span(of: rings.fragment(at: index)) else {
                count = -1
                break
            }
            senders[s].spans.append(span)
            length += span.count
            count += 1
            index = rings.fragmentRing.increment(index)
        }
        if count < 0 { senders[s].spans.removeLast(senders[s].spans.count - Int(spanFirst)) }
        senders[s].frames.append(
            Frame(packet: packet, spanFirst: spanFirst, spanCount: count, length: Int32(clamping: length)))
        queued += 1
    }

    /// Second pass: serves every destination once, then completes and returns what every receiver took.
    /// Returns whether frames still wait.
    public func poll(context: MiniportContext) -> Bool {
        guard queued > 0 else {
            resetClocks()
            return false
        }
        var now: UInt64?
        var waiting = false
        rotation &+= 1
        for r in receivers.indices {
            if serve(r, context: context, now: &now) { waiting = true }
        }
        for s in senders.indices where senders[s].head < senders[s].frames.count {
            completeTaken(s, context: context)
        }
        // Nothing waits: no receiver is being waited for, so a later wait starts a fresh stall clock.
        if !waiting { resetClocks() }
        return queued > 0
    }

    func resetClocks() {
        guard clocks > 0 else { return }
        for r in receivers.indices { receivers[r].waitingSince = nil }
        clocks = 0
    }

    /// Delivers to receiver `r` every frame queued for it, from every sender, in one batch. Returns whether
    /// frames are left waiting for it (lossless back-pressure).
    func serve(_ r: Int, context: MiniportContext, now: inout UInt64?) -> Bool {
        let destination = receivers[r].binding
        var pending = 0
        for s in senders.indices where senders[s].cursors[r] < senders[s].tail {
            pending += senders[s].tail - senders[s].cursors[r]
        }
        guard pending > 0 else { return false }
        // A receiver that broke the contract is closed after this pass: what it would get is skipped.
        guard !context.hasViolation(destination.id), var batch = context.openReceive(destination) else {
            skipAll(for: r)
            return false
        }
        var unfit = 0
        let count = senders.count
        var k = 0
        while k < count && batch.hasRoom {
            let s = Int((rotation &+ UInt(k)) % UInt(count))
            k += 1
            var cursor = senders[s].cursors[r]
            let tail = senders[s].tail
            guard cursor < tail else { continue }
            let frames = senders[s].frames
            let spans = senders[s].spans
            let source = senders[s].data
            let base = senders[s].base
            while cursor < tail {
                let frame = frames[cursor - base]
                let delivery: MiniportContext.Delivery
                if frame.spanCount < 0 {
                    delivery = .unfit
                } else {
                    delivery = batch.append(length: Int(frame.length)) { destination in
                        var at = 0
                        for i in Int(frame.spanFirst)..<Int(frame.spanFirst) + Int(frame.spanCount) {
                            source.withBytes(spans[i]) { bytes in
                                UnsafeMutableRawBufferPointer(rebasing: destination[at..<at + bytes.count])
                                    .copyMemory(from: UnsafeRawBufferPointer(bytes))
                                at += bytes.count
                            }
                        }
                    }
                }
                if delivery == .noBuffer { break }
                if delivery == .unfit { unfit += 1 }
                cursor += 1
            }
            senders[s].cursors[r] = cursor
        }
        let delivered = batch.delivered
        if !context.publish(&batch) {
            skipAll(for: r)
            return false
        }
        if unfit > 0 { destination.dropped &+= UInt64(unfit) }
        if delivered > 0 {
            // It took frames: it is waited for again.
            if receivers[r].waitingSince != nil {
                receivers[r].waitingSince = nil
                clocks -= 1
            }
            receivers[r].stalled = false
        }
        let left = pending - delivered - unfit
        guard left > 0 else { return false }
        if policy == .lossless && !gaveUp(on: r, now: &now, context: context) { return true }
        destination.dropped &+= UInt64(left)
        skipAll(for: r)
        return false
    }

    /// Moves receiver `r` past every frame queued for it.
    func skipAll(for r: Int) {
        for s in senders.indices where senders[s].cursors[r] < senders[s].tail {
            senders[s].cursors[r] = senders[s].tail
        }
    }

    /// Completes the frames of sender `s` that every receiver has taken, and returns them in one batch.
    func completeTaken(_ s: Int, context: MiniportContext) {
        var done = senders[s].tail
        for cursor in senders[s].cursors where cursor < done { done = cursor }
        let head = senders[s].head
        let base = senders[s].base
        guard done - base > head else { return }
        let binding = senders[s].binding
        do {
            // A local copy of the FIFO, ended before `compact` changes it (no copy on write).
            let frames = senders[s].frames
            for i in head..<done - base { context.completePending(binding, frames[i].packet, status: .success) }
        }
        queued -= done - base - head
        senders[s].head = done - base
        context.returnCompleted(binding)
        compact(s)
    }

    /// Drops the completed frames from the front of sender `s`'s FIFO: at once when all are done, else
    /// once enough have gathered (amortized).
    func compact(_ s: Int) {
        let head = senders[s].head
        if head == senders[s].frames.count {
            senders[s].base += head
            senders[s].head = 0
            senders[s].frames.removeAll(keepingCapacity: true)
            senders[s].spans.removeAll(keepingCapacity: true)
        } else if head >= 1024 {
            let cut = Int(senders[s].frames[head].spanFirst)
            senders[s].frames.removeFirst(head)
            senders[s].spans.removeFirst(cut)
            for i in senders[s].frames.indices { senders[s].frames[i].spanFirst -= Int32(cut) }
            senders[s].base += head
            senders[s].head = 0
        }
    }

    /// Whether a lossless hub stops waiting for receiver `r`, which has no buffer now: it has had none for
    /// the stall timeout (reported once per stall), or was already given up on.
    func gaveUp(on r: Int, now: inout UInt64?, context: MiniportContext) -> Bool {
        guard let stallTimeout else { return false }
        if receivers[r].stalled { return true }
        let time = now ?? ProcessControl.monotonicNanoseconds()
        now = time
        guard let since = receivers[r].waitingSince else {
            receivers[r].waitingSince = time
            clocks += 1
            return false
        }
        guard time &- since >= stallTimeout else { return false }
        receivers[r].stalled = true
        context.recordStall(of: receivers[r].binding.id, afterMilliseconds: stallTimeout / 1_000_000)
        return true
    }

    /// Drops the binding as a sender and as a receiver (the framework completes what it sent with `CLOSING`).
    public func bindingClosing(_ binding: UInt64, context: MiniportContext) {
        if let r = receivers.firstIndex(where: { $0.binding.id == binding }) {
            if receivers[r].waitingSince != nil { clocks -= 1 }
            receivers.remove(at: r)
            for s in senders.indices { senders[s].cursors.remove(at: r) }
        }
        if let s = senderIndex[binding] {
            // The framework completes what it held with CLOSING.
            queued -= senders[s].frames.count - senders[s].head
            senders.remove(at: s)
            senderIndex = Dictionary(uniqueKeysWithValues: senders.enumerated().map { ($1.binding.id, $0) })
        }
        // Frames only the closed receiver still needed complete at the next poll.
    }
}

/// The built-in drivers, by name.
public enum BuiltInDrivers {
    /// The names `make` knows, as `ringportd --driver` takes them.
    public static let names = ["null", "resources", "serial", "random-order", "loopback", "hub"]

    /// The built-in driver named `name`, or nil. `verify` turns on the null driver's checks, `seed` drives the
    /// random ones, `policy` and `stallTimeoutMilliseconds` are the hub's and loopback's.
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
