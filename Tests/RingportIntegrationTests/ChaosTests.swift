import Foundation
import TestSupport
import Testing

/// `ringport stress --chaos`: a loopback miniport and checking protocols, SIGKILLed at random and restarted.
@Suite(.serialized) struct ChaosTests {
    static func fields(_ line: Substring) -> [String: Double] {
        var fields: [String: Double] = [:]
        for word in line.split(separator: " ") {
            let pair = word.split(separator: "=", maxSplits: 1)
            if pair.count == 2, let value = Double(pair[1]) { fields[String(pair[0])] = value }
        }
        return fields
    }

    static func chaos(_ arguments: [String]) throws -> (status: Int32?, summary: [String: Double], output: String) {
        let run = try SpawnedProcess("ringport", ["stress", "--chaos"] + arguments)
        let status = run.wait(seconds: 60)
        let output = run.standardOutput + run.standardError
        let line = output.split(separator: "\n").first { $0.hasPrefix("chaos ") } ?? ""
        return (status, fields(line), output)
    }

    /// 20 protocol kills and 3 miniport kills lose, duplicate and leak nothing, and every kill is noticed.
    @Test func killedProtocolsAndMiniportsLoseDuplicateAndLeakNothing() throws {
        let (status, summary, output) = try Self.chaos([
            "--protocols", "3", "--protocol-kills", "20", "--miniport-kills", "3", "--seed", "7", "--duration", "25",
        ])
        #expect(status == 0, "\(output)")
        #expect(summary["protocol_kills"] == 20 && summary["miniport_kills"] == 3, "\(output)")
        for field in ["lost", "duplicated", "leaked_fds", "leaked_segments", "leaked_pool", "leaked_sockets", "errors"]
        {
            #expect(summary[field] == 0, "\(field): \(output)")
        }
        #expect((summary["reclaim_p99_ms"] ?? .infinity) < 1000, "\(output)")
        #expect((summary["dead_miniport_p99_ms"] ?? .infinity) < 1000, "\(output)")
        #expect((summary["packets"] ?? 0) > 0, "\(output)")
    }

    /// The checks bite: against a miniport that returns no frames (`null`), every completed frame is lost.
    @Test func framesThatNeverComeBackAreCountedLost() throws {
        let (status, summary, output) = try Self.chaos([
            "--protocols", "2", "--protocol-kills", "2", "--miniport-kills", "1", "--chaos-driver", "null",
        ])
        #expect(status == 1, "\(output)")
        #expect((summary["lost"] ?? 0) > 0, "\(output)")
    }
}
