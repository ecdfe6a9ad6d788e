import Foundation
import RingportCore
import TestSupport
import Testing

/// Four protocol processes at once, each sending 100,000 packets of 1-8 buffers, random sizes, OOB and batch
/// sizes, through a real ringportd and each driver. The drivers check every byte and each binding's order
/// (FIFO across RESOURCES requeues too); each protocol checks every packet completed exactly once, in ring
/// order, with the status the driver gave.
@Suite(.serialized) struct SendPathTests {
    static let packets = Int(ProcessInfo.processInfo.environment["RINGPORT_STRESS_PACKETS"] ?? "") ?? 100_000

    @Test(arguments: [
        ("null", ["--verify"], "success"),
        ("resources", [], "verified"),
        ("serial", [], "verified"),
        ("random-order", [], "verified"),
    ])
    func fourProtocolsSendInOrderWithEveryByteIntact(driver: String, arguments: [String], expect: String) throws {
        let miniport = try MiniportProcess(driver: driver, arguments: arguments + ["--seed", "7"])
        var protocols: [SpawnedProcess] = []
        for seed in 1...4 {
            protocols.append(
                try miniport.protocolProcess([
                    "stress", "--packets", "\(Self.packets)", "--seed", "\(seed)", "--max-buffers", "8",
                    "--max-size", "6000", "--max-batch", "48", "--expect", expect, "--timeout", "120",
                ])
            )
        }
        for (i, process) in protocols.enumerated() {
            let status = process.wait(seconds: 300)
            #expect(
                status == 0,
                "protocol \(i + 1): \(process.standardOutput) \(process.standardError) miniport: \(miniport.process.standardError)"
            )
            #expect(process.standardOutput.hasPrefix("ok sent=\(Self.packets) completed=\(Self.packets) "))
            #expect(process.standardOutput.contains("pool_in_use=0"), "\(process.standardOutput)")
        }
        let statistics = try miniport.waitForStatistics { $0.bindings == 0 }
        #expect(statistics.verificationErrors == 0)
        #expect(statistics.packetsSent == UInt64(4 * Self.packets))
        #expect(statistics.bindingsOpened == 4 && statistics.bindingsReclaimed == 0)
        #expect(statistics.packetsOutstanding == 0)
        #expect(miniport.terminate() == 0)
        #expect(sharedMemoryNames(withPrefix: "ringport=\(miniport.adapter)=").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: miniport.directory.socketPath(adapter: miniport.adapter)))
    }
}

@Suite struct BenchToolTests {
    @Test func theBenchmarkRunsAndPrintsAResultLine() throws {
        let miniport = try MiniportProcess(driver: "null")
        let bench = try miniport.protocolProcess(["bench", "--transport", "ring", "--packets", "20000", "--batch", "8"])
        #expect(bench.wait(seconds: 120) == 0, "\(bench.standardError)")
        #expect(bench.standardOutput.hasPrefix("RESULT peer=ringport_send_batch8 mode=stream size=64 n=20000 "))
        #expect(bench.standardOutput.contains("errors=0"))
    }
}
