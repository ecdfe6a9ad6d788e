import Ringport
import RingportCore
import TestSupport
import Testing

/// The README's example, as written there (but for the adapter and directory of a test miniport).
@Suite struct ReadmeExampleTests {
    @Test func theReadmeExampleSendsAndCompletes() throws {
        let miniport = try MiniportProcess()
        let adapter = try Adapter.open(miniport.adapter, directory: miniport.directory)
        var packets = PacketArray()
        for i in 0..<32 {
            var packet = try adapter.allocatePacket()
            var buffer = try adapter.allocateBuffer(length: 0)
            buffer.write(Array("frame \(i)".utf8))
            packet.chainAtBack(buffer)
            packet.mediaSpecificInformation = .ieee8023Priority(5)
            packets.append(packet)
        }
        adapter.send(packets)
        var done = 0
        var statuses: [NDISStatus] = []
        var rounds = 0
        while done < 32 && rounds < 20 {
            done += adapter.waitForCompletions(timeoutSeconds: 1) { packet, status in
                _ = packet.descriptorIndex
                statuses.append(status)
            }
            rounds += 1
        }
        try adapter.close()
        #expect(done == 32 && statuses.allSatisfy { $0 == .success })
        #expect(adapter.packetPoolUsage == 0 && adapter.bufferPoolUsage == 0)
    }
}
