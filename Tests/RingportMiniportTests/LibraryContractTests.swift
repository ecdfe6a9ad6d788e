import Foundation
import RingportCore
import RingportMiniport
import RingportSystem
import Synchronization
import Testing

@testable import Ringport

/// The library's tests use the contract tests' in-process miniport.
typealias LibraryHost = ContractHost

/// A driver that produces `total` frames for every binding, through the Rx iterators. Frames with an odd
/// number are dropped: returned with `Ignore` and no buffer (Docs/Contract.md §1.10), or, with
/// `attachToDropped`, with the buffer attached (which breaks §1.10).
final class DroppingReceiveDriver: RingDriver, @unchecked Sendable {
    let name = "dropping-receive"
    /// Ring style (so the framework records its receive-index stores in `poll`); it sends nothing.
    func advance(_ queue: TransmitQueue, context: MiniportContext) {}
    let total: Int
    let attachToDropped: Bool
    var produced: [UInt64: Int] = [:]  // data thread only

    init(total: Int, attachToDropped: Bool = false) {
        self.total = total
        self.attachToDropped = attachToDropped
    }

    func poll(context: MiniportContext) -> Bool {
        var busy = false
        for id in context.bindingIDs {
            guard let rx = context.receiveQueue(id) else { continue }
            var n = produced[id, default: 0]
            guard n < total else { continue }
            busy = true
            var slots = rx.rings.allPackets()
            var buffers = rx.rings.postFragments()
            while slots.hasAny && n < total {
                let drop = n % 2 == 1
                if drop && !attachToDropped {
                    slots.packet.ignore = true  // dropped: the buffer stays posted for the next frame
                    slots.advance()
                    n += 1
                    continue
                }
                guard buffers.hasAny else { break }
                let payload = Array("frame \(n)".utf8)
                let fragment = buffers.fragment
                guard rx.withBuffer(fragment, { $0.copyBytes(from: payload) }) != nil else { break }
                fragment.offset = 0
                fragment.validLength = UInt32(payload.count)
                slots.packet.fragmentIndex = buffers.index
                slots.packet.fragmentCount = 1
                slots.packet.ignore = drop
                buffers.advance()
                slots.advance()
                n += 1
            }
            produced[id] = n
            do {
                try buffers.set()
                var returned = rx.rings.drainFragments()
                returned.advanceToTheEnd()
                try returned.set()
                try slots.set()
            } catch {
                Issue.record("dropping driver: \(error)")
            }
        }
        return busy
    }
}

/// An NDIS 5 deserialized driver that holds every packet (never completes) and whose `bindingClosing` is
/// slow: the miniport lets go of a binding well after it was asked to.
final class HoldingSlowCloseDriver: SendPacketsHandler, @unchecked Sendable {
    let name = "holding-slow-close"
    let isSerialized = false
    let maxSendPackets = 16
    let held = Atomic<Int>(0)
    let closingFinished = Atomic<Bool>(false)
    let closeDelay: UInt32

    /// The default is longer than the 100 ms the library once waited for the answer.
    init(closeDelayMicroseconds: UInt32 = 300_000) { closeDelay = closeDelayMicroseconds }

    func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        _ = held.add(packets.count, ordering: .sequentiallyConsistent)
    }

    func bindingClosing(_ binding: UInt64, context: MiniportContext) {
        usleep(closeDelay)
        closingFinished.store(true, ordering: .sequentiallyConsistent)
    }
}

/// Completes every packet at once with SUCCESS (serialized).
final class SucceedingDriver: SendPacketsHandler {
    let name = "succeeding"
    let isSerialized = true
    let maxSendPackets = 16
    func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        for i in statuses.indices { statuses[i] = .success }
    }
}

/// A driver that indicates frames on request and watches the buffers the library posts: a chunk posted
/// again while the driver still holds it, or before the protocol dropped it, is a double return.
final class ReceiveProbeDriver: RingDriver, @unchecked Sendable {
    struct State {
        var toDeliver = 0
        var delivered = 0
        /// Chunks the library posted, in order.
        var posted: [UInt32] = []
        /// Chunks posted and not yet returned to the library.
        var holding: Set<UInt32> = []
        var doublePosts = 0
        /// The next frames go back with `Ignore` yet with their buffer attached (breaking §1.10).
        var attachToIgnored = false
    }
    let name = "receive-probe"
    func advance(_ queue: TransmitQueue, context: MiniportContext) {}
    let state = Mutex(State())
    var seenEnd: UInt32 = 0  // data thread only

    func deliver(_ count: Int) { state.withLock { $0.toDeliver += count } }

    func poll(context: MiniportContext) -> Bool {
        guard let id = context.bindingIDs.first, let rx = context.receiveQueue(id) else { return false }
        return state.withLock { s in
            let ring = rx.rings.fragmentRing
            let end = ring.loadEndIndex()
            while seenEnd != end {
                let chunk = rx.rings.fragment(at: seenEnd).chunk
                if !s.holding.insert(chunk).inserted { s.doublePosts += 1 }
                s.posted.append(chunk)
                seenEnd = ring.increment(seenEnd)
            }
            guard s.toDeliver > 0 else { return false }
            var slots = rx.rings.allPackets()
            var buffers = rx.rings.postFragments()
            // Only buffers already seen posted (a later post is seen at the next poll, before it is used).
            while s.toDeliver > 0 && slots.hasAny && buffers.hasAny && buffers.index != end {
                let payload = Array("frame \(s.delivered)".utf8)
                let fragment = buffers.fragment
                guard rx.withBuffer(fragment, { $0.copyBytes(from: payload) }) != nil else { break }
                fragment.offset = 0
                fragment.validLength = UInt32(payload.count)
                s.holding.remove(fragment.chunk)
                slots.packet.fragmentIndex = buffers.index
                slots.packet.fragmentCount = 1
                slots.packet.ignore = s.attachToIgnored
                buffers.advance()
                slots.advance()
                s.toDeliver -= 1
                s.delivered += 1
            }
            do {
                try buffers.set()
                var returned = rx.rings.drainFragments()
                returned.advanceToTheEnd()
                try returned.set()
                try slots.set()
            } catch {
                Issue.record("probe driver: \(error)")
            }
            return true
        }
    }
}

/// Waits (bounded) until `condition` holds; returns whether it did.
func within(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { return false }
        usleep(1000)
    }
    return true
}

/// Holds a received packet (non-copyable) until the test drops it.
final class HeldFrame {
    var frame: ReceivedPacket?
    init(_ frame: consuming ReceivedPacket) { self.frame = Optional(frame) }
}

/// The library's side of the contract, in process: receive (Docs/Contract.md §1.10 Rx, §2.5), close, handles of
/// another binding.
@Suite struct LibraryContractTests {
    /// Polls receives until `count` frames came or `seconds` passed; returns their texts.
    static func receive(_ adapter: Adapter, count: Int, seconds: Double = 10) -> [String] {
        var frames: [String] = []
        let deadline = Date().addingTimeInterval(seconds)
        while frames.count < count && Date() < deadline {
            if adapter.pollReceives({ frames.append(String(decoding: $0.bytes, as: UTF8.self)) }) == 0 {
                if case .closed = adapter.state { break }
                usleep(100)
            }
        }
        return frames
    }

    /// Sends `count` one-buffer packets of 64 bytes in one array.
    static func send(_ adapter: Adapter, count: Int) throws { try sendSequence(adapter, count: count) }

    // MARK: §1.10 Rx

    /// §1.10: a driver drops every other frame the way §1.10 says (Ignore, no buffer). Receive never
    /// stalls (the library posts packet slots apart from buffers), and no dropped frame is indicated.
    @Test func droppedFramesAreNeverIndicatedAndNeverStallReceive() throws {
        let driver = DroppingReceiveDriver(total: 1000)
        let host = try LibraryHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open(configuration: BindingConfiguration(receiveRingSize: 16))
        let frames = Self.receive(adapter, count: 500)
        #expect(
            frames.count == 500 && frames == stride(from: 0, to: 1000, by: 2).map { "frame \($0)" },
            "\(frames.count) frames indicated")
        #expect(Self.receive(adapter, count: 1, seconds: 0.2).isEmpty)  // nothing more: no dropped one late
        #expect(adapter.state == .open)
    }

    /// Checked: an ignored receive packet returned with its buffer attached is reported by name and
    /// closes the binding; the frame is not indicated.
    @Test func anIgnoredReceivePacketWithABufferIsReportedInCheckedMode() throws {
        let host = try LibraryHost(driver: DroppingReceiveDriver(total: 1000, attachToDropped: true))
        defer { host.stop() }
        let adapter = try host.open(checked: true, configuration: BindingConfiguration(receiveRingSize: 16))
        let frames = Self.receive(adapter, count: 500, seconds: 5)
        guard case .closed(let reason) = adapter.state else {
            Issue.record("binding still \(adapter.state)")
            return
        }
        #expect(reason.contains(NetRingRule.driverAttachedResourcesToIgnoredPacket.rawValue), "\(reason)")
        #expect(frames.allSatisfy { Int($0.dropFirst(6))! % 2 == 0 })
    }

    /// Unchecked: the same driver's dropped frames are not indicated and their buffers are not lost
    /// (1000 frames through a 16-slot ring: a lost buffer would stall it).
    @Test func anIgnoredReceivePacketWithABufferIsNotIndicatedNorLeakedUnchecked() throws {
        let host = try LibraryHost(driver: DroppingReceiveDriver(total: 1000, attachToDropped: true))
        defer { host.stop() }
        let adapter = try host.open(checked: false, configuration: BindingConfiguration(receiveRingSize: 16))
        let frames = Self.receive(adapter, count: 500)
        #expect(
            frames.count == 500 && frames == stride(from: 0, to: 1000, by: 2).map { "frame \($0)" },
            "\(frames.count) frames indicated")
        #expect(adapter.state == .open)
    }

    // MARK: §2.5

    /// §2.5 `NdisReturnPackets`: every received packet goes back exactly once (dropping it), and its buffer
    /// is posted again only then: never while the protocol holds it, never twice.
    @Test func aReceivedPacketsBufferIsRepostedOnlyAfterTheProtocolDropsItAndOnce() throws {
        let driver = ReceiveProbeDriver()
        let host = try LibraryHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open(configuration: BindingConfiguration(receiveRingSize: 16))
        let buffers = adapter.receiveBufferCount
        #expect(within { driver.state.withLock { $0.holding.count } == buffers })
        // Hold the first frame; let 3 ring turns of others through.
        driver.deliver(1)
        adapter.regions.control.miniportWake.wake()
        var held: HeldFrame?
        var heldChunk: Int?
        let deadline = Date().addingTimeInterval(5)
        while held == nil && Date() < deadline {
            adapter.pollReceives { frame in
                heldChunk = frame.chunk
                held = HeldFrame(frame)
            }
        }
        let chunk = UInt32(try #require(heldChunk))
        let postedBefore = driver.state.withLock { $0.posted.count }
        driver.deliver(3 * 16)
        adapter.regions.control.miniportWake.wake()
        let others = Self.receive(adapter, count: 3 * 16)
        #expect(others.count == 3 * 16)
        let whileHeld = driver.state.withLock { Array($0.posted[postedBefore...]) }
        #expect(!whileHeld.contains(chunk), "the held frame's buffer was posted while the protocol held it")
        #expect(adapter.pollReceives { _ in } == 0)
        held = nil  // NdisReturnPackets
        // Posted again with the drop (other returned buffers may go out in the same post, and the driver may
        // see that post in more than one turn).
        #expect(within { driver.state.withLock { $0.posted[(postedBefore + whileHeld.count)...].contains(chunk) } })
        #expect(within { driver.state.withLock { $0.holding.count } == buffers })
        #expect(driver.state.withLock { $0.doublePosts } == 0)
        #expect(driver.state.withLock { $0.delivered } == 1 + 3 * 16)
    }

    /// Unchecked: the buffer of an ignored packet that carries one anyway comes back to the library with
    /// the packet and is posted again at once; the packet is not indicated.
    @Test func anIgnoredPacketsAttachedBufferIsPostedAgainAtOnceUnchecked() throws {
        let driver = ReceiveProbeDriver()
        let host = try LibraryHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open(checked: false, configuration: BindingConfiguration(receiveRingSize: 16))
        let buffers = adapter.receiveBufferCount
        #expect(within { driver.state.withLock { $0.holding.count } == buffers })
        driver.state.withLock {
            $0.attachToIgnored = true
            $0.toDeliver = 1
        }
        adapter.regions.control.miniportWake.wake()
        #expect(within { driver.state.withLock { $0.delivered } == 1 })
        #expect(Self.receive(adapter, count: 1, seconds: 0.3).isEmpty)
        let reposted = within { driver.state.withLock { $0.holding.count } == buffers }
        #expect(reposted, "the ignored packet's buffer was not posted again")
        #expect(driver.state.withLock { $0.doublePosts } == 0 && adapter.state == .open)
    }

    // MARK: Close

    /// `close` returns only after the miniport let go of the binding. The driver holds every packet and
    /// is slow to close; after `close` (which times out on the held sends) the miniport has run the driver's
    /// `bindingClosing` to its end and no descriptor or ring index of the segment changes any more.
    @Test func closeReturnsOnlyOnceTheMiniportLetGoOfTheBinding() throws {
        let driver = HoldingSlowCloseDriver()
        let host = try LibraryHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        try Self.send(adapter, count: 8)
        let held = within { driver.held.load(ordering: .sequentiallyConsistent) == 8 }
        #expect(held)
        var statuses: [NDISStatus] = []
        #expect(throws: AdapterError.self) {
            try adapter.close(timeoutSeconds: 0.2) { _, status in statuses.append(status) }
        }
        let closingFinished = driver.closingFinished.load(ordering: .sequentiallyConsistent)
        #expect(closingFinished, "close returned before the miniport's bindingClosing ended")
        #expect(statuses.count == 8 && statuses.allSatisfy { $0 == .closing })
        let before = Self.snapshot(adapter)
        usleep(300_000)
        #expect(Self.snapshot(adapter) == before, "the miniport wrote the segment after close returned")
        #expect(adapter.outstandingSends == 0 && adapter.packetPoolUsage == 0)
    }

    /// The same with a miniport slower than close's wait for its answer (ownership model, BUG_REPLY_TIMEOUT): close
    /// throws and hands back nothing the miniport still holds; once the miniport lets go, a poll completes
    /// each packet once, with `CLOSING`, and the segment no longer changes.
    @Test func aCloseTheMiniportDoesNotAnswerInTimeHandsBackNothingItHolds() throws {
        let driver = HoldingSlowCloseDriver(closeDelayMicroseconds: 2_500_000)
        let host = try LibraryHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        try Self.send(adapter, count: 8)
        #expect(within { driver.held.load(ordering: .sequentiallyConsistent) == 8 })
        var statuses: [NDISStatus] = []
        #expect(throws: AdapterError.self) {
            try adapter.close(timeoutSeconds: 0.2) { _, status in statuses.append(status) }
        }
        let finishedEarly = driver.closingFinished.load(ordering: .sequentiallyConsistent)
        #expect(!finishedEarly)
        #expect(statuses.isEmpty, "close handed back packets the miniport still held: \(statuses)")
        #expect(adapter.outstandingSends == 8)
        let deadline = Date().addingTimeInterval(10)
        while statuses.count < 8 && Date() < deadline {
            adapter.waitForCompletions(timeoutSeconds: 0.05) { _, status in statuses.append(status) }
        }
        let finished = driver.closingFinished.load(ordering: .sequentiallyConsistent)
        #expect(finished)
        #expect(statuses == Array(repeating: .closing, count: 8))
        let before = Self.snapshot(adapter)
        usleep(200_000)
        #expect(Self.snapshot(adapter) == before, "the miniport wrote the segment after it let go")
        #expect(adapter.pollCompletions { _, _ in } == 0)
        #expect(adapter.outstandingSends == 0 && adapter.packetPoolUsage == 0)
    }

    /// Every descriptor's owner and status, and the driver's indices of every ring.
    static func snapshot(_ adapter: Adapter) -> [UInt32] {
        let regions = adapter.regions
        var words: [UInt32] = []
        for i in 0..<regions.descriptors.count {
            words += [regions.descriptors[i].owner.rawValue, regions.descriptors[i].status.rawValue]
        }
        for ring in [
            regions.transmitPacketRing, regions.transmitFragmentRing, regions.receivePacketRing,
            regions.receiveFragmentRing,
        ] {
            words += [ring.loadBeginIndex(), ring.loadNextIndex()]
        }
        return words
    }

    // MARK: Handles of another binding

    /// A buffer of binding A chained to a packet of binding B does not trap: B records a
    /// `.foreignBinding` misuse, the packet is unchanged, and the buffer goes back to A's pool.
    @Test func aBufferOfAnotherBindingIsAForeignBindingMisuseAndGoesBackToItsPool() throws {
        let host = try LibraryHost(driver: SucceedingDriver())
        defer { host.stop() }
        let a = try host.open()
        let b = try host.open()
        var packet = try b.allocatePacket()
        packet.chainAtBack(try b.allocateBuffer(length: 16))
        packet.chainAtBack(try a.allocateBuffer(length: 32))
        packet.chainAtFront(try a.allocateBuffer(length: 8))
        let index = packet.descriptorIndex
        #expect(
            b.misuses == [
                PacketMisuse(kind: .foreignBinding, descriptor: index),
                PacketMisuse(kind: .foreignBinding, descriptor: index),
            ])
        #expect(a.misuses.isEmpty)
        #expect(packet.bufferCount == 1 && packet.totalLength == 16)
        #expect(a.bufferPoolUsage == 0 && b.bufferPoolUsage == 1)
        b.send(packet)  // still a good packet of B
        var statuses: [NDISStatus] = []
        b.waitForCompletions(timeoutSeconds: 5) { _, status in statuses.append(status) }
        #expect(statuses == [.success])
    }

    /// A packet of binding A sent on binding B is the same kind of outcome: B records a
    /// `.foreignBinding` misuse and is unchanged; the packet completes on A, its own binding, with
    /// `INVALID_PACKET` through A's next poll, and A can send it.
    @Test func aPacketOfAnotherBindingIsAForeignBindingMisuseAndCompletesOnItsOwnBinding() throws {
        let host = try LibraryHost(driver: SucceedingDriver())
        defer { host.stop() }
        let a = try host.open()
        let b = try host.open()
        var packet = try a.allocatePacket()
        packet.chainAtBack(try a.allocateBuffer(length: 32))
        let index = packet.descriptorIndex
        b.send(packet)
        #expect(b.misuses == [PacketMisuse(kind: .foreignBinding, descriptor: index)])
        #expect(b.pollCompletions { _, _ in } == 0)
        #expect(b.outstandingSends == 0 && b.packetPoolUsage == 0 && b.state == .open)
        var back = PacketArray()
        var statuses: [NDISStatus] = []
        a.pollCompletions { packet, status in
            statuses.append(status)
            back.append(packet)
        }
        #expect(statuses == [.invalidPacket])
        #expect(a.packetPoolUsage == 1 && a.misuses.isEmpty)
        a.send(back)
        var onA: [NDISStatus] = []
        a.waitForCompletions(timeoutSeconds: 5) { _, status in onA.append(status) }
        #expect(onA == [.success] && a.packetPoolUsage == 0)
    }
}
