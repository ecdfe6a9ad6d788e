import Foundation
@_spi(Testing) import Ringport
import RingportCore
import TestSupport
import Testing

/// The packet model and the ownership checks, against a real miniport.
@Suite struct PacketTests {
    @Test func chainsQueryAndUnchainLikeNDIS() throws {
        let miniport = try MiniportProcess()
        let adapter = try Adapter.open(miniport.adapter, directory: miniport.directory)
        var packet = try adapter.allocatePacket()
        #expect(packet.bufferCount == 0 && packet.totalLength == 0)
        if case .some = packet.unchainAtFront() { Issue.record("unchained a buffer from an empty chain") }
        for (length, front) in [(10, false), (20, false), (5, true), (7, true)] {
            var buffer = try adapter.allocateBuffer(length: 0)
            buffer.write(Array(repeating: UInt8(length), count: length))
            if front { packet.chainAtFront(buffer) } else { packet.chainAtBack(buffer) }
        }
        #expect(packet.bufferCount == 4 && packet.totalLength == 42)
        #expect(packet.unchainAtFront()?.length == 7)
        #expect(packet.unchainAtBack()?.length == 20)
        #expect(packet.bufferCount == 2 && packet.totalLength == 15 && adapter.bufferPoolUsage == 2)
        packet.setFlags([.dontLoopback, .loopbackOnly])
        packet.clearFlags(.loopbackOnly)
        #expect(packet.flags == .dontLoopback)
        packet.mediaSpecificInformation = .ieee8023Priority(6)
        packet.timeToSend = 1234
        #expect(packet.mediaSpecificInformation?.ieee8023Priority == 6 && packet.timeToSend == 1234)
        packet.reinitialize()
        #expect(packet.bufferCount == 0 && packet.flags == [] && packet.mediaSpecificInformation == nil)
        #expect(adapter.bufferPoolUsage == 0 && adapter.packetPoolUsage == 1)
        _ = consume packet
        #expect(adapter.packetPoolUsage == 0)
    }

    @Test func poolExhaustionIsResourcesNotACrash() throws {
        let miniport = try MiniportProcess()
        let adapter = try Adapter.open(
            miniport.adapter,
            configuration: BindingConfiguration(packetCount: 4, chunkCount: 4),
            directory: miniport.directory
        )
        var held = PacketArray()
        for _ in 0..<4 { held.append(try adapter.allocatePacket()) }
        #expect(throws: AdapterError.self) { _ = try adapter.allocatePacket() }
        do {
            _ = try adapter.allocatePacket()
        } catch {
            #expect(error.status == .resources)
        }
        let a = try adapter.allocateBuffer(length: 1)
        let b = try adapter.allocateBuffer(length: 1)
        #expect(throws: AdapterError.self) { _ = try adapter.allocateBuffer(length: 1) }
        #expect(adapter.bufferPoolUsage == 2)
        _ = consume a
        _ = consume b
        #expect(adapter.bufferPoolUsage == 0)
    }

    @Test func untranslatablePacketsCompleteWithInvalidPacket() throws {
        let miniport = try MiniportProcess()
        let adapter = try Adapter.open(miniport.adapter, directory: miniport.directory)
        let empty = try adapter.allocatePacket()  // no buffers: cannot be translated
        adapter.send(empty)
        var statuses: [NDISStatus] = []
        adapter.waitForCompletions(timeoutSeconds: 5) { _, status in statuses.append(status) }
        #expect(statuses == [.invalidPacket])
        #expect(adapter.packetPoolUsage == 0)
    }

    @Test func aPacketOfAnotherBindingCompletesWithInvalidPacketAndStaysItsOwn() throws {
        let miniport = try MiniportProcess()
        let a = try Adapter.open(miniport.adapter, directory: miniport.directory)
        let b = try Adapter.open(miniport.adapter, directory: miniport.directory)
        var packet = try a.allocatePacket()
        packet.chainAtBack(try a.allocateBuffer(length: 32))
        b.send(packet)
        var statuses: [NDISStatus] = []
        var back = PacketArray()
        #expect(b.pollCompletions { _, _ in } == 0 && b.misuses.map(\.kind) == [.foreignBinding])
        a.pollCompletions { packet, status in  // it completes on its own binding
            statuses.append(status)
            back.append(packet)
        }
        #expect(statuses == [.invalidPacket])
        #expect(a.packetPoolUsage == 1 && b.packetPoolUsage == 0)
        a.send(back)  // it is still a's, and a can send it
        var onA: [NDISStatus] = []
        a.waitForCompletions(timeoutSeconds: 5) { _, status in onA.append(status) }
        #expect(onA == [.success])
        #expect(a.packetPoolUsage == 0)
    }

    @Test func aDoublySentOrStaleHandleIsCaughtAndTheRealPacketCompletesOnce() throws {
        let miniport = try MiniportProcess(driver: "random-order", arguments: ["--delay-us", "100000"])
        let adapter = try Adapter.open(miniport.adapter, directory: miniport.directory)
        var packet = try adapter.allocatePacket()
        let buffer = try adapter.allocateBuffer(length: 64)
        buffer.withUnsafeMutableBytes { PayloadPattern.fill($0, sequence: 0, totalLength: 64, start: 0) }
        packet.chainAtBack(buffer)
        let sentAgain = packet.forgedCopy()
        let usedLater = packet.forgedCopy()
        adapter.send(packet)
        adapter.send(sentAgain)  // the descriptor is already with the miniport
        #expect(adapter.misuses == [PacketMisuse(kind: .alreadySent, descriptor: 0)])
        var completions = 0
        let deadline = Date().addingTimeInterval(5)
        while adapter.outstandingSends > 0 && Date() < deadline {
            adapter.waitForCompletions(timeoutSeconds: 0.5) { _, _ in completions += 1 }
        }
        #expect(completions == 1 && adapter.packetPoolUsage == 0)
        // The packet was freed when its completion was dropped; descriptor 0 is allocated anew, so a handle
        // from before is stale: sending it is caught, and the new packet is untouched.
        let reused = try adapter.allocatePacket()
        adapter.send(usedLater)
        #expect(adapter.misuses.last == PacketMisuse(kind: .stale, descriptor: 0))
        #expect(adapter.outstandingSends == 0 && adapter.packetPoolUsage == 1)
        _ = consume reused
        #expect(adapter.packetPoolUsage == 0)
    }
}
