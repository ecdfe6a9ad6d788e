import Foundation
import RingportCore
import TestSupport
import Testing

/// A hostile protocol (the `hostile-protocol` executable: raw control socket, raw segment) against a real
/// `ringportd` with every built-in driver, checked and unchecked, while an honest `ringport stress` runs on
/// the same miniport.
enum HostileProtocolRuns {
    /// The rule each attack breaks, as the miniport must name it.
    static let attacks: [(attack: String, rule: NetRingRule)] = [
        ("write-begin", .osWroteDriverIndex),
        ("write-next", .osWroteDriverIndex),
        ("end-backward", .osMovedEndBackward),
        ("overfill", .osOverfilledRing),
        ("change-owned-element", .osChangedElementInsideDriverRange),
        ("fragments-outside-range", .osPacketFragmentsOutsideRange),
    ]
    /// Attacks only checked mode can see: the element is the driver's to read, and nothing reads it unchecked
    /// (ring-style drivers walk fragments themselves, so only the verifier checks them).
    static func checkedOnly(_ attack: String, driver: String) -> Bool {
        attack == "change-owned-element" || (attack == "fragments-outside-range" && driver == "null")
    }

    static let drivers: [(name: String, arguments: [String], expect: String)] = [
        ("null", [], "success"),
        ("resources", [], "verified"),
        ("serial", [], "verified"),
        ("random-order", [], "verified"),
        ("loopback", ["--policy", "drop"], "success"),
        ("hub", ["--policy", "drop"], "success"),
    ]

    /// Runs every attack against every driver, checked and unchecked; checks each run; returns the rules the
    /// miniports named in their logs.
    static func run() throws -> Set<NetRingRule> {
        var produced: Set<NetRingRule> = []
        for driver in drivers {
            for checked in [true, false] {
                produced.formUnion(try run(driver: driver, checked: checked))
            }
        }
        return produced
    }

    static func run(driver: (name: String, arguments: [String], expect: String), checked: Bool) throws
        -> Set<NetRingRule>
    {
        let label = "\(driver.name) checked=\(checked)"
        let miniport = try MiniportProcess(
            driver: driver.name, arguments: driver.arguments + [checked ? "--checked" : "--no-checked"])
        let honest = try miniport.protocolProcess([
            "stress", "--packets", "20000", "--max-buffers", "4", "--max-size", "1500", "--expect", driver.expect,
            "--timeout", "60",
        ])
        defer { honest.stop() }
        var closed = 0
        var produced: Set<NetRingRule> = []
        for (attack, rule) in attacks {
            let hostile = try SpawnedProcess(
                "hostile-protocol",
                ["--adapter", miniport.adapter, "--dir", miniport.directory.path, "--attack", attack])
            defer { hostile.stop() }
            let status = hostile.wait(seconds: 20)
            // The output pipe may still hold the last lines when the process has exited.
            _ = eventually(seconds: 2) {
                hostile.standardOutput.contains("closed after") || hostile.standardOutput.contains("still open")
            }
            let out = hostile.standardOutput
            #expect(miniport.process.process.isRunning, "\(label) \(attack): the miniport died")
            if checkedOnly(attack, driver: driver.name) && !checked {
                #expect(status == 0 || status == 3, "\(label) \(attack): \(out) \(hostile.standardError)")
                if status == 0 { closed += 1 }
                continue
            }
            #expect(status == 0 && out.contains("closed after"), "\(label) \(attack): \(out) \(hostile.standardError)")
            if status == 0 { closed += 1 }
            // Within a bounded time (the hostile reports how long the miniport took).
            let milliseconds = out.split(separator: "\n").first { $0.hasPrefix("closed after ") }
                .flatMap { Int($0.dropFirst("closed after ".count).prefix { $0.isNumber }) }
            #expect((milliseconds ?? .max) < 1000, "\(label) \(attack): \(out)")
            // The miniport names the rule, for this binding.
            let binding = out.split(separator: "\n").first { $0.hasPrefix("binding ") } ?? "?"
            let report = "\(binding) broke the ring contract: \(rule.rawValue) "
            #expect(eventually { miniport.process.standardError.contains(report) }, "\(label) \(attack): \(report)")
            if miniport.process.standardError.contains(report) { produced.insert(rule) }
        }
        // The honest binding on the same miniport lost nothing and saw no error.
        let honestStatus = honest.wait(seconds: 120)
        #expect(honestStatus == 0, "\(label): honest: \(honest.standardOutput) \(honest.standardError)")
        #expect(honest.standardOutput.hasPrefix("ok sent=20000 completed=20000 "), "\(label): \(honest.standardOutput)")
        let statistics = try miniport.waitForStatistics { $0.bindings == 0 }
        #expect(statistics.bindingsViolated == UInt64(closed), "\(label): \(statistics)")
        #expect(statistics.verificationErrors == 0, "\(label)")
        #expect(miniport.terminate() == 0)
        // One line per closed binding: a broken ring is reported once, not once per turn. Counted once
        // the miniport has exited and its log is all read.
        func reports() -> Int {
            miniport.process.standardError.components(separatedBy: "broke the ring contract").count - 1
        }
        _ = eventually(seconds: 2) { reports() >= closed }
        #expect(reports() == closed, "\(label): \(reports()) reports for \(closed) closed bindings")
        return produced
    }
}
