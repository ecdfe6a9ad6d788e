import Foundation
import Glibc
import RingportCore
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
                    "\(tag)", "--size", "200", "--idle-timeout", "60",
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
        let miniport = try MiniportProcess(driver: "loopback", arguments: ["--checked", "true"])
        let ping = try SpawnedProcess(
            "ringport",
            ["ping", "--count", "2000", "--quiet", "--adapter", miniport.adapter, "--dir", miniport.directory.path],
            environment: ["RINGPORT_CHECKED": "1"]
        )
        #expect(ping.wait(seconds: 120) == 0, "\(ping.standardOutput) \(ping.standardError)")
        #expect(ping.standardOutput.contains("2000 sent, 2000 received, 0 lost"), "\(ping.standardOutput)")
    }

    @Test func aReceiverThatStopsAndDiesStallsTheOthersOnlyUntilItIsReclaimed() throws {
        let miniport = try MiniportProcess(driver: "hub", arguments: ["--policy", "lossless"])
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
}
