import Foundation
import Glibc
import Ringport
import RingportCore
import RingportMiniport
import TestSupport
import Testing

/// Protocols talking to each other through a hub or a loopback miniport, as separate processes.
@Suite(.serialized) struct HubTests {
    @Test func threeProtocolsOnALosslessHubGetEveryOtherSendersPacketsOnceInOrder() throws {
        let miniport = try MiniportProcess(driver: "hub", arguments: ["--policy", "lossless"])
        let perSender = 50_000
        var peers: [SpawnedProcess] = []
        for tag in 1...3 {
            peers.append(
                try miniport.protocolProcess([
                    "recv", "--check", "--count", "\(2 * perSender)", "--send-count", "\(perSender)", "--tag",
                    "\(tag)", "--size", "200", "--idle-timeout", "60", "--send-after-bindings", "3",
                ])
            )
        }
        for (i, peer) in peers.enumerated() {
            let tag = i + 1
            let others = (1...3).filter { $0 != tag }.map { "\($0):\(perSender)" }.joined(separator: ",")
            #expect(peer.wait(seconds: 300) == 0, "\(peer.standardOutput) \(peer.standardError)")
            #expect(
                peer.standardOutput.contains("received \(2 * perSender) ") && peer.standardOutput.contains("errors=0")
                    && peer.standardOutput.contains("senders=\(others)"),
                "\(peer.standardOutput)"
            )
        }
        let statistics = try miniport.waitForStatistics { $0.bindings == 0 }
        #expect(statistics.packetsReceived == UInt64(6 * perSender) && statistics.packetsDropped == 0)
    }

    @Test func withDropASlowReceiverMissesPacketsAndEveryOneIsCounted() throws {
        let miniport = try MiniportProcess(driver: "hub", arguments: ["--policy", "drop"])
        let receiver = try miniport.protocolProcess(["recv", "--hold-us", "200", "--idle-timeout", "3"])
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        let sender = try miniport.protocolProcess(["send", "--count", "50000", "--size", "100"])
        #expect(sender.wait(seconds: 120) == 0, "\(sender.standardOutput) \(sender.standardError)")
        #expect(receiver.wait(seconds: 120) == 0, "\(receiver.standardError)")
        let statistics = try miniport.waitForStatistics { $0.bindings == 0 }
        #expect(statistics.packetsSent == 50_000)
        #expect(statistics.packetsReceived + statistics.packetsDropped == 50_000, "\(statistics)")
        #expect(statistics.packetsDropped > 0)
        let received = receiver.standardOutput.split(separator: " ").dropFirst().first.flatMap { UInt64($0) }
        #expect(received == statistics.packetsReceived, "\(receiver.standardOutput)")
    }

    @Test func loopbackRoundTripsUnderCheckedMode() throws {
        let miniport = try MiniportProcess(driver: "loopback", arguments: ["--checked"])
        let ping = try SpawnedProcess(
            "ringport",
            ["ping", "--count", "2000", "--quiet", "--adapter", miniport.adapter, "--dir", miniport.directory.path],
            environment: ["RINGPORT_CHECKED": "1"]
        )
        #expect(ping.wait(seconds: 120) == 0, "\(ping.standardOutput) \(ping.standardError)")
        #expect(ping.standardOutput.contains("2000 sent, 2000 received, 0 lost"), "\(ping.standardOutput)")
    }

    @Test func aReceiverThatStopsAndDiesStallsTheOthersOnlyUntilItIsReclaimed() throws {
        // No stall timeout: only the reclaim of the dead receiver unblocks the hub.
        let miniport = try MiniportProcess(
            driver: "hub", arguments: ["--policy", "lossless", "--stall-timeout-ms", "0"])
        let stuck = try miniport.protocolProcess(["recv", "--hold-us", "100000000"])
        let good = try miniport.protocolProcess(["recv", "--check", "--count", "20000", "--idle-timeout", "60"])
        _ = try miniport.waitForStatistics { $0.bindings == 2 }
        let sender = try miniport.protocolProcess(["send", "--count", "20000", "--tag", "1"])
        // Lossless: the stuck receiver's buffers fill, then the sender waits for it.
        let stalled = try miniport.waitForStatistics(seconds: 20) {
            $0.packetsOutstanding > 0 && $0.packetsReceived > 0
        }
        #expect(stalled.packetsSent < 20_000)
        kill(stuck.process.processIdentifier, SIGKILL)
        #expect(sender.wait(seconds: 120) == 0, "\(sender.standardOutput) \(sender.standardError)")
        #expect(good.wait(seconds: 120) == 0, "\(good.standardOutput)")
        #expect(good.standardOutput.contains("received 20000 ") && good.standardOutput.contains("senders=1:20000"))
        let after = try miniport.waitForStatistics { $0.bindings == 0 }
        #expect(after.bindingsReclaimed >= 1 && after.packetsOutstanding == 0)
    }

    @Test func sendersThatDoNotReceiveNeverHoldEachOtherUpOnALosslessHub() throws {
        // No stall timeout: only the empty packet filter of `ringport send` keeps the hub from waiting for
        // the other sender to take frames it never reads.
        let miniport = try MiniportProcess(
            driver: "hub", arguments: ["--policy", "lossless", "--stall-timeout-ms", "0"])
        // Paced, so both are open while the other sends.
        var senders: [SpawnedProcess] = []
        for tag in 1...2 {
            senders.append(
                try miniport.protocolProcess(["send", "--count", "10000", "--rate", "10000", "--tag", "\(tag)"]))
            _ = try miniport.waitForStatistics { $0.bindings == UInt64(tag) }
        }
        for sender in senders {
            #expect(sender.wait(seconds: 60) == 0, "\(sender.standardOutput) \(sender.standardError)")
            #expect(sender.standardOutput.contains("sent 10000 failed=0"), "\(sender.standardOutput)")
        }
        let statistics = try miniport.waitForStatistics { $0.bindings == 0 }
        #expect(statistics.packetsSent == 20_000 && statistics.packetsReceived == 0, "\(statistics)")
    }

    @Test func aStalledLivingReceiverIsDroppedForAndTheOthersLoseNothing() throws {
        let miniport = try MiniportProcess(
            driver: "hub", arguments: ["--policy", "lossless", "--stall-timeout-ms", "500"])
        // Takes its first frames, then holds them (and its buffers) for good, alive.
        let stalled = try miniport.protocolProcess(["recv", "--hold-us", "100000000"])
        defer { stalled.stop() }
        let good = try miniport.protocolProcess(["recv", "--check", "--count", "20000", "--idle-timeout", "60"])
        _ = try miniport.waitForStatistics { $0.bindings == 2 }
        let sender = try miniport.protocolProcess(["send", "--count", "20000", "--tag", "1"])
        #expect(sender.wait(seconds: 60) == 0, "\(sender.standardOutput) \(sender.standardError)")
        #expect(sender.standardOutput.contains("sent 20000 failed=0"), "\(sender.standardOutput)")
        #expect(good.wait(seconds: 60) == 0, "\(good.standardOutput) \(good.standardError)")
        #expect(
            good.standardOutput.contains("received 20000 ") && good.standardOutput.contains("senders=1:20000"),
            "\(good.standardOutput)")
        // Counted and reported: one stall, and every frame the stalled receiver missed is its drop.
        let statistics = try miniport.waitForStatistics { $0.receiversStalled >= 1 && $0.bindings == 1 }
        #expect(statistics.receiversStalled == 1, "\(statistics)")
        #expect(statistics.packetsReceived + statistics.packetsDropped == 40_000, "\(statistics)")
        #expect(statistics.packetsOutstanding == 0, "\(statistics)")
        #expect(miniport.process.standardError.contains("took no frame for 500 ms"))
    }

    /// Sends frames `sequences`, frame `i` in `1 + i % 3` buffers (the hub copies each buffer's range).
    static func sendChained(_ adapter: Adapter, sequences: Range<Int>) throws {
        var batch = PacketArray()
        for sequence in sequences {
            var packet = try adapter.allocatePacket()
            let pieces = 1 + sequence % 3
            let total = 40 + 30 * pieces + sequence % 7
            var at = 0
            for piece in 0..<pieces {
                let length = piece == pieces - 1 ? total - at : 30
                let buffer = try adapter.allocateBuffer(length: length)
                buffer.withUnsafeMutableBytes {
                    PayloadPattern.fill($0, sequence: UInt64(sequence), totalLength: total, start: at)
                }
                at += length
                packet.chainAtBack(buffer)
            }
            batch.append(packet)
        }
        adapter.send(batch)
    }

    /// In-process: a receiver with an 8-slot receive ring takes frames from a batch many times larger. The
    /// hub delivers what fits, keeps the rest (in order) for later passes, and holds the sender meanwhile.
    @Test func aLosslessHubKeepsWhatDoesNotFitAReceiverAndDeliversItLaterInOrder() throws {
        let host = try ContractHost(driver: HubDriver(mode: .hub, policy: .lossless, stallTimeoutMilliseconds: nil))
        defer { host.stop() }
        let receiver = try host.open(configuration: BindingConfiguration(receiveRingSize: 8))
        let sender = try host.open(configuration: BindingConfiguration(packetFilter: .none))
        let total = 600
        var sent = 0
        var completed = 0
        var failures = 0
        var received: [UInt64] = []
        let deadline = Date().addingTimeInterval(60)
        while (received.count < total || completed < total) && Date() < deadline {
            if sent < total && sender.outstandingSends < 200 {
                try Self.sendChained(sender, sequences: sent..<min(total, sent + 100))
                sent = min(total, sent + 100)
            }
            completed += sender.pollCompletions { _, status in if status != .success { failures += 1 } }
            receiver.waitForReceives(timeoutSeconds: 0.01) { packet in
                received.append(PayloadPattern.verify(packet.bytes) ?? UInt64.max)
            }
        }
        #expect(received == (0..<UInt64(total)).map { $0 }, "\(received.prefix(20))")
        #expect(completed == total && failures == 0, "\(completed) completed, \(failures) failed")
        let statistics = try host.waitForStatistics { $0.packetsReceived == UInt64(total) }
        #expect(statistics.packetsReceived == UInt64(total) && statistics.packetsDropped == 0, "\(statistics)")
        try sender.close()
        try receiver.close()
    }

    /// In-process: with `drop`, a receiver that takes nothing gets what its posted buffers hold, the first
    /// frames in order, and every other frame of the batch is counted as its drop; the sender is never held.
    @Test func withDropWhatDoesNotFitAReceiverIsCountedForItAndTheRestArrivesInOrder() throws {
        let host = try ContractHost(driver: HubDriver(mode: .hub, policy: .drop))
        defer { host.stop() }
        let receiver = try host.open(configuration: BindingConfiguration(receiveRingSize: 8))
        let sender = try host.open(configuration: BindingConfiguration(packetFilter: .none))
        let total = 300
        try Self.sendChained(sender, sequences: 0..<total)
        let completions = collectCompletions(sender, count: total, seconds: 20)
        #expect(completions.count == total && completions.allSatisfy { $0.1 == .success })
        let statistics = try host.waitForStatistics { $0.packetsReceived + $0.packetsDropped == UInt64(total) }
        #expect(statistics.packetsReceived + statistics.packetsDropped == UInt64(total), "\(statistics)")
        #expect(statistics.packetsReceived <= 8 && statistics.packetsDropped >= UInt64(total - 8), "\(statistics)")
        var received: [UInt64] = []
        let deadline = Date().addingTimeInterval(10)
        while received.count < Int(statistics.packetsReceived) && Date() < deadline {
            receiver.waitForReceives(timeoutSeconds: 0.01) { packet in
                received.append(PayloadPattern.verify(packet.bytes) ?? UInt64.max)
            }
        }
        #expect(received == (0..<statistics.packetsReceived).map { $0 }, "\(received)")
        try sender.close()
        try receiver.close()
    }
}
