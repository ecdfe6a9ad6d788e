import Foundation
import Ringport
import RingportCore
import RingportMiniport
import Testing

/// Handles reach their binding without reference counting: the binding keeps itself alive while any handle
/// (packet, buffer, received packet, packet array, pending completion) exists, and not a moment longer.
@Suite struct HandleLifetimeTests {
    @Test func aBindingLivesWhileAnyOfItsHandlesDoesAndNoLonger() throws {
        let host = try ContractHost(driver: NullDriver())
        defer { host.stop() }
        weak var weakBinding: Adapter?
        var packet: Packet
        let spare: Buffer
        var array = PacketArray()
        var completed = PacketArray()
        do {
            let adapter = try host.open()
            weakBinding = adapter
            packet = try adapter.allocatePacket()
            spare = try adapter.allocateBuffer(length: 8)
            array.append(try adapter.allocatePacket())
            try sendSequence(adapter, count: 4)
            var got = 0
            let deadline = Date().addingTimeInterval(5)
            while got < 4 && Date() < deadline {
                got += adapter.waitForCompletions(timeoutSeconds: 0.02) { packet, _ in completed.append(packet) }
            }
            #expect(got == 4)
        }
        // Only handles hold the binding now, and they still work.
        #expect(weakBinding != nil)
        packet.chainAtBack(spare)
        #expect(packet.bufferCount == 1 && packet.totalLength == 8)
        #expect(weakBinding?.packetPoolUsage == 6)
        _ = consume packet
        #expect(weakBinding?.packetPoolUsage == 5 && weakBinding?.bufferPoolUsage == 4)
        _ = consume completed
        #expect(weakBinding?.packetPoolUsage == 1 && weakBinding?.bufferPoolUsage == 0)
        _ = consume array
        #expect(weakBinding == nil, "the last handle did not let the binding go")
    }

    @Test func aHandleOutlivesCloseAndTheLastReferenceToItsBinding() throws {
        let host = try ContractHost(driver: NullDriver())
        defer { host.stop() }
        weak var weakBinding: Adapter?
        var packet: Packet
        do {
            let adapter = try host.open()
            weakBinding = adapter
            packet = try adapter.allocatePacket()
            packet.chainAtBack(try adapter.allocateBuffer(length: 16))
            try adapter.close()
        }
        #expect(weakBinding != nil)
        #expect(packet.totalLength == 16)
        packet.withUnsafeMutableBytes(ofBufferAt: 0) { _ = $0.initializeMemory(as: UInt8.self, repeating: 7) }
        #expect(weakBinding?.packetPoolUsage == 1)
        _ = consume packet
        #expect(weakBinding == nil, "the last handle did not let the binding go")
    }

    @Test func aReceivedPacketKeepsItsBindingAndIsReturnedWhenDropped() throws {
        let host = try InProcessMiniport(driver: RingLoopbackDriver())
        defer { host.stop() }
        weak var weakBinding: Adapter?
        var kept: ReceivedPacket? = nil
        do {
            let adapter = try Adapter.open("inproc", directory: host.directory)
            weakBinding = adapter
            var packet = try adapter.allocatePacket()
            var buffer = try adapter.allocateBuffer(length: 0)
            buffer.write(Array("kept".utf8))
            packet.chainAtBack(buffer)
            adapter.send(packet)
            let deadline = Date().addingTimeInterval(5)
            var received = 0
            while received == 0 && Date() < deadline {
                adapter.pollCompletions { _, _ in }
                received += adapter.pollReceives { frame in kept = .some(frame) }
            }
            #expect(received == 1)
        }
        #expect(weakBinding != nil)
        switch consume kept {
        case .some(let frame):
            #expect(String(decoding: frame.bytes, as: UTF8.self) == "kept")
        case .none:
            Issue.record("nothing was received")
        }
        #expect(weakBinding == nil, "the last handle did not let the binding go")
    }
}
