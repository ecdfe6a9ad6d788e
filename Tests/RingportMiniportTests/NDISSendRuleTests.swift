import Foundation
import Ringport
import RingportCore
import RingportMiniport
import Testing

/// The rules of Docs/Contract.md §2.1 (NdisSendPackets) and §2.2 (MiniportSendPackets, serialized and
/// deserialized), each broken on purpose in a copy of the framework to see its test fail.
@Suite struct NDISSendRuleTests {
    static let allSuccess: @Sendable (Int, Int) -> [NDISStatus] = { _, count in Array(repeating: .success, count: count)
    }

    /// §2.2: `RESOURCES` on a packet of a serialized driver hands it and every later one back; the framework
    /// calls the driver again only after `NdisMSendResourcesAvailable`, then in the original order.
    @Test func serializedResourcesHoldsTheRestBackUntilResourcesAvailable() throws {
        let driver = ScriptedDriver(serialized: true, maxSendPackets: 4) { call, count in
            call == 0
                ? [.success, .resources] + Array(repeating: .success, count: count - 2) : Self.allSuccess(call, count)
        }
        let host = try ContractHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        try sendSequence(adapter, count: 8)
        let first = collectCompletions(adapter, count: 1)
        #expect(first.count == 1 && first.first?.1 == .success)
        usleep(200_000)
        #expect(driver.callSizes.count == 1, "called again before resources-available: \(driver.callSizes)")
        #expect(adapter.pollCompletions { _, _ in } == 0)
        driver.request(.resourcesAvailable)
        let rest = collectCompletions(adapter, count: 7)
        #expect(rest.count == 7 && rest.allSatisfy { $0.1 == .success })
        let calls = driver.sequences
        #expect(calls.first == [0, 1, 2, 3])
        #expect(Array(calls.dropFirst().joined()) == (1..<8).map { UInt64($0) })
        try adapter.close()
    }

    /// §2.2: after `RESOURCES`, the next `NdisMSendComplete` resubmits what was held back, in order.
    @Test func serializedResourcesIsResubmittedAfterTheNextSendComplete() throws {
        let driver = ScriptedDriver(serialized: true, maxSendPackets: 4) { call, count in
            call == 0
                ? [.pending, .resources] + Array(repeating: .success, count: count - 2) : Self.allSuccess(call, count)
        }
        let host = try ContractHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        try sendSequence(adapter, count: 6)
        #expect(eventually { driver.heldCount.load(ordering: .sequentiallyConsistent) == 1 })
        usleep(200_000)
        #expect(driver.callSizes.count == 1, "called again before a send-complete: \(driver.callSizes)")
        driver.request(.completeHeld(.success))
        let done = collectCompletions(adapter, count: 6)
        #expect(done.count == 6 && done.allSatisfy { $0.1 == .success })
        #expect(Array(driver.sequences.dropFirst().joined()) == (1..<6).map { UInt64($0) })
        try adapter.close()
    }

    /// §2.2: NDIS ignores the statuses a deserialized driver writes; every packet completes only through
    /// `NdisMSendComplete`, with the status given there.
    @Test func deserializedDriverStatusesAreIgnored() throws {
        let driver = ScriptedDriver(serialized: false, maxSendPackets: 8) { _, count in
            (0..<count).map { $0 % 2 == 0 ? .failure : .resources }
        }
        let host = try ContractHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        try sendSequence(adapter, count: 8)
        #expect(eventually { driver.heldCount.load(ordering: .sequentiallyConsistent) == 8 })
        usleep(100_000)
        #expect(adapter.pollCompletions { _, _ in } == 0, "a deserialized driver's status completed a packet")
        #expect(driver.callSizes == [8], "RESOURCES from a deserialized driver was obeyed: \(driver.callSizes)")
        driver.request(.completeHeld(.success))
        let done = collectCompletions(adapter, count: 8)
        #expect(done.count == 8 && done.allSatisfy { $0.1 == .success })
        try adapter.close()
    }

    /// §2.1: each packet gets exactly one completion; a second `NdisMSendComplete` of the same packet is
    /// refused, counted in the statistics and logged.
    @Test func aSecondSendCompleteOfAPacketIsRefusedAndReported() throws {
        let driver = ScriptedDriver(serialized: false, maxSendPackets: 8) { _, count in
            Array(repeating: .pending, count: count)
        }
        let host = try ContractHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        try sendSequence(adapter, count: 8)
        #expect(eventually { driver.heldCount.load(ordering: .sequentiallyConsistent) == 8 })
        driver.request(.completeHeld(.success, twice: true))
        let done = collectCompletions(adapter, count: 8)
        #expect(done.count == 8 && done.allSatisfy { $0.1 == .success })
        usleep(50_000)
        #expect(collectCompletions(adapter, count: 1, seconds: 0.1).isEmpty)
        let statistics = try host.waitForStatistics { $0.completionsRefused == 8 }
        #expect(statistics.completionsRefused == 8)
        #expect(host.log.contains("refused a send-complete"))
        try adapter.close()
    }

    /// §2.1, §2.6: a completion of a packet whose binding closed (it completed `CLOSING` then) is refused and
    /// reported, never delivered.
    @Test func aSendCompleteAfterTheBindingClosedIsRefused() throws {
        let driver = ScriptedDriver(serialized: false, maxSendPackets: 8) { _, count in
            Array(repeating: .pending, count: count)
        }
        let host = try ContractHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        try sendSequence(adapter, count: 4)
        #expect(eventually { driver.heldCount.load(ordering: .sequentiallyConsistent) == 4 })
        var statuses: [NDISStatus] = []
        #expect(throws: AdapterError.self) {
            try adapter.close(timeoutSeconds: 0.2) { _, status in statuses.append(status) }
        }
        #expect(statuses == Array(repeating: .closing, count: 4))
        _ = try host.waitForStatistics { $0.bindings == 0 }
        driver.request(.completeHeld(.success))
        let statistics = try host.waitForStatistics { $0.completionsRefused == 4 }
        #expect(statistics.completionsRefused == 4)
        #expect(host.log.contains("refused a send-complete"))
    }

    /// §2.1: the driver sees the OOB block (TimeToSend, HeaderSize, media-specific information) and the
    /// flags the protocol set before sending.
    @Test func theDriverSeesTheOutOfBandBlockAndFlags() throws {
        let driver = ScriptedDriver(serialized: true, maxSendPackets: 8, answer: Self.allSuccess)
        let host = try ContractHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        var batch = PacketArray()
        var expected: [SeenPacket] = []
        for i in 0..<6 {
            var packet = try adapter.allocatePacket()
            let buffer = try adapter.allocateBuffer(length: 64)
            buffer.withUnsafeMutableBytes { PayloadPattern.fill($0, sequence: UInt64(i), totalLength: 64, start: 0) }
            packet.chainAtBack(buffer)
            let flags: PacketFlags = i % 2 == 0 ? [.multicast] : [.dontLoopback, .doubleBuffered]
            packet.setFlags(flags)
            packet.timeToSend = 1_000_000 + UInt64(i)
            packet.headerSize = 14 + i
            packet.mediaSpecificInformation = .ieee8023Priority(UInt8(i))
            expected.append(
                SeenPacket(
                    sequence: UInt64(i), flags: flags, timeToSend: 1_000_000 + UInt64(i), headerSize: 14 + i,
                    media: .ieee8023Priority(UInt8(i))))
            batch.append(packet)
        }
        adapter.send(batch)
        #expect(collectCompletions(adapter, count: 6).count == 6)
        #expect(driver.calls.withLock { Array($0.joined()) } == expected)
        try adapter.close()
    }

    /// §2.2 (`OID_GEN_MAXIMUM_SEND_PACKETS`): the driver never gets an array larger than its maximum, and the
    /// packets arrive in the protocol's order.
    @Test func arraysNeverExceedMaxSendPackets() throws {
        let driver = ScriptedDriver(serialized: true, maxSendPackets: 4, answer: Self.allSuccess)
        let host = try ContractHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        try sendSequence(adapter, count: 64)
        let done = collectCompletions(adapter, count: 64)
        #expect(done.count == 64 && done.allSatisfy { $0.1 == .success })
        #expect(driver.callSizes.allSatisfy { $0 >= 1 && $0 <= 4 }, "\(driver.callSizes)")
        #expect(Array(driver.sequences.joined()) == (0..<64).map { UInt64($0) })
        try adapter.close()
    }

    /// §2.1 and Docs/Design.md, invariant 6: a deserialized driver may complete in any order; the protocol
    /// gets every packet once, in ring order, each with the status the driver gave.
    @Test func completionsReachTheProtocolInRingOrderWhateverTheDriversOrder() throws {
        let driver = ScriptedDriver(serialized: false, maxSendPackets: 16) { _, count in
            Array(repeating: .pending, count: count)
        }
        let host = try ContractHost(driver: driver)
        defer { host.stop() }
        let adapter = try host.open()
        var sent: [Int] = []
        var batch = PacketArray()
        for i in 0..<12 {
            var packet = try adapter.allocatePacket()
            sent.append(packet.descriptorIndex)
            let buffer = try adapter.allocateBuffer(length: 64)
            buffer.withUnsafeMutableBytes { PayloadPattern.fill($0, sequence: UInt64(i), totalLength: 64, start: 0) }
            packet.chainAtBack(buffer)
            batch.append(packet)
        }
        adapter.send(batch)
        #expect(eventually { driver.heldCount.load(ordering: .sequentiallyConsistent) == 12 })
        driver.request(.completeHeld(.failure, reversed: true))
        let done = collectCompletions(adapter, count: 12)
        #expect(done.map(\.0) == sent)
        #expect(done.allSatisfy { $0.1 == .failure })
        try adapter.close()
    }
}
