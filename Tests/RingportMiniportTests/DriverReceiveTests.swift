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
