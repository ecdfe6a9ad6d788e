import Foundation
import Ringport
import RingportCore
import TestSupport
import Testing

/// The receive path through a real miniport.
@Suite struct ReceivePathTests {
    static func send(_ adapter: Adapter, sequences: Range<Int>, size: Int = 100) throws {
        var batch = PacketArray()
        for sequence in sequences {
            var packet = try adapter.allocatePacket()
            let buffer = try adapter.allocateBuffer(length: size)
            buffer.withUnsafeMutableBytes {
                PayloadPattern.fill($0, sequence: UInt64(sequence), totalLength: size, start: 0)
            }
            packet.chainAtBack(buffer)
            batch.append(packet)
        }
        adapter.send(batch)
    }

    @Test func loopbackReturnsEveryPacketToItsSenderInOrderByteExact() throws {
        let miniport = try MiniportProcess(driver: "loopback")
        let adapter = try Adapter.open(miniport.adapter, directory: miniport.directory)
        var received: [UInt64] = []
        var completed = 0
        var failures = 0
        let total = 500
        var sent = 0
        let deadline = Date().addingTimeInterval(30)
        while (received.count < total || completed < total) && Date() < deadline {
            if sent < total && adapter.outstandingSends < 100 {
                try Self.send(adapter, sequences: sent..<min(total, sent + 50))
                sent = min(total, sent + 50)
            }
            completed += adapter.pollCompletions { _, status in if status != .success { failures += 1 } }
            adapter.waitForReceives(timeoutSeconds: 0.05) { packet in
                received.append(PayloadPattern.verify(packet.bytes) ?? UInt64.max)
            }
        }
        #expect(received == (0..<UInt64(total)).map { $0 }, "miniport: \(miniport.process.standardError.suffix(1500))")
        #expect(completed == total && failures == 0, "state: \(adapter.state)")
        #expect(adapter.packetPoolUsage == 0 && adapter.bufferPoolUsage == 0)
        let statistics = try miniport.waitForStatistics { $0.packetsReceived == UInt64(total) }
        #expect(statistics.packetsReceived == UInt64(total) && statistics.packetsDropped == 0)
    }
}
