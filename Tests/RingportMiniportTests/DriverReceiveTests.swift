import Foundation
import Logging
import Ringport
import RingportCore
import RingportMiniport
import RingportSystem
import Testing

/// An NDIS 5 style driver that answers every sent frame with a frame of its own (`indicateReceive(bytes:)`).
final class PongDriver: SendPacketsHandler {
    let name = "pong"
    let isSerialized = true
    let maxSendPackets = 8

    func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        for (i, packet) in packets.enumerated() {
            let reply = Array("pong \(packet.descriptor)".utf8)
            let delivery = reply.withUnsafeBytes { context.indicateReceive($0, to: packet.binding) }
            statuses[i] = delivery == .delivered ? .success : .resources
            if delivery != .delivered { return }
        }
    }

    func poll(context: MiniportContext) -> Bool {
        context.sendResourcesAvailable()
        return false
    }
}

/// A miniport in this process, on a thread of its own.
final class InProcessMiniport: @unchecked Sendable {
    let miniport: Miniport
    let thread: Thread
    let directory: RuntimeDirectory

    init(driver: any MiniportDriver) throws {
        directory = RuntimeDirectory("/tmp/ringport-test-\(UInt32.random(in: 0...UInt32.max))")
        var logger = Logger(label: "test-miniport")
        logger.logLevel = .warning
        let created = try Miniport(
            options: MiniportOptions(adapter: "inproc", directory: directory, checked: true),
            driver: driver,
            logger: logger
        )
        miniport = created
        thread = Thread { created.run() }
        thread.start()
    }

    func stop() {
        miniport.requestStop()
        let deadline = Date().addingTimeInterval(10)
        while !thread.isFinished && Date() < deadline { usleep(1000) }
        try? FileManager.default.removeItem(atPath: directory.path)
    }
}

@Suite struct DriverReceiveTests {
    @Test func anNDISDriverIndicatesFramesOfItsOwn() throws {
        let host = try InProcessMiniport(driver: PongDriver())
        defer { host.stop() }
        let adapter = try Adapter.open("inproc", directory: host.directory)
        var batch = PacketArray()
        for _ in 0..<3 {
            var packet = try adapter.allocatePacket()
            var buffer = try adapter.allocateBuffer(length: 0)
            buffer.write(Array("ping".utf8))
            packet.chainAtBack(buffer)
            batch.append(packet)
        }
        adapter.send(batch)
        var replies: [String] = []
        let deadline = Date().addingTimeInterval(10)
        while replies.count < 3 && Date() < deadline {
            adapter.waitForReceives(timeoutSeconds: 0.1) { frame in
                replies.append(String(decoding: frame.bytes, as: UTF8.self))
            }
            adapter.pollCompletions { _, status in #expect(status == .success) }
        }
        #expect(replies.count == 3 && replies.allSatisfy { $0.hasPrefix("pong ") })
        // Shutting the miniport down cancels the receive queue (posted buffers back, slots ignored): nothing
        // more is indicated, and the binding closes cleanly.
        host.stop()
        var more = 0
        adapter.waitForReceives(timeoutSeconds: 2) { _ in more += 1 }
        #expect(more == 0)
        guard case .closed = adapter.state else {
            Issue.record("binding still \(adapter.state)")
            return
        }
    }
}

/// A ring-style loopback: advances the transmit queue with the iterators, and for each packet fills a posted
/// receive buffer and returns it with the receive iterators itself (drain then post).
final class RingLoopbackDriver: RingDriver {
    let name = "ring-loopback"

    func advance(_ queue: TransmitQueue, context: MiniportContext) {
        guard let rx = context.receiveQueue(queue.binding) else { return }
        let tx = queue.rings
        var post = tx.postPackets()
        var fragmentEnd = tx.fragmentRing.loadNextIndex()
        var buffers = rx.rings.postFragments()
        var slots = rx.rings.allPackets()
        while post.hasAny && buffers.hasAny && slots.hasAny {
            // Copy the sent packet's fragments into the posted buffer.
            var fragments = post.fragments()
            var length = 0
            let fits: Bool =
                rx.withBuffer(buffers.fragment) { destination in
                    while fragments.hasAny {
                        let copied = queue.withBytes(of: fragments.fragment) { source -> Bool in
                            guard length + source.count <= destination.count else { return false }
                            UnsafeMutableRawBufferPointer(rebasing: destination[length..<length + source.count])
                                .copyMemory(from: source)
                            length += source.count
                            return true
                        }
                        guard copied == true else { return false }
                        fragments.advance()
                    }
                    return true
                } ?? false
            queue.setStatus(fits ? .success : .invalidPacket, of: post.packet)
            if post.packet.fragmentCount > 0 { fragmentEnd = post.fragments().end }
            if fits {
                buffers.fragment.validLength = UInt32(length)
                buffers.fragment.offset = 0
                slots.packet.fragmentIndex = buffers.index
                slots.packet.fragmentCount = 1
                slots.packet.ignore = false
                buffers.advance()
                slots.advance()
            }
            post.advance()
        }
        do {
            try post.set()
            try tx.setFragmentNextIndex(to: fragmentEnd)
            try tx.setFragmentBeginIndex(to: fragmentEnd)
            var drain = tx.drainPackets()
            drain.advanceToTheEnd()
            try drain.set()
            try buffers.set()
            var returned = rx.rings.drainFragments()
            returned.advanceToTheEnd()
            try returned.set()
            try slots.set()
        } catch {
            Issue.record("ring loopback: \(error)")
        }
    }
}

extension DriverReceiveTests {
    @Test func aRingStyleDriverReceivesWithTheRxIterators() throws {
        let host = try InProcessMiniport(driver: RingLoopbackDriver())
        defer { host.stop() }
        let adapter = try Adapter.open("inproc", directory: host.directory)
        var received: [String] = []
        for round in 0..<300 {  // more than the rings hold: they wrap
            var packet = try adapter.allocatePacket()
            var buffer = try adapter.allocateBuffer(length: 0)
            buffer.write(Array("frame \(round)".utf8))
            packet.chainAtBack(buffer)
            adapter.send(packet)
            let deadline = Date().addingTimeInterval(5)
            var got = false
            while !got && Date() < deadline {
                adapter.pollCompletions { _, status in #expect(status == .success) }
                adapter.pollReceives { frame in
                    received.append(String(decoding: frame.bytes, as: UTF8.self))
                    got = true
                }
            }
        }
        #expect(received == (0..<300).map { "frame \($0)" })
    }
}
