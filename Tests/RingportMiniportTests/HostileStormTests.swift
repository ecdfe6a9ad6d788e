import Foundation
import RingportCore
import TestSupport
import Testing

/// A hostile protocol that rewrites its own segment while the miniport reads it (`flip`: fields wrong for a
/// moment, the window of a check-then-use bug; `scribble`: random bytes anywhere, for good), binding after
/// binding, against a real `ringportd`, while honest protocols run on the same miniport. The miniport must
/// survive, and the honest bindings must lose nothing.
@Suite("A protocol rewriting its segment under the miniport", .serialized)
struct HostileStormTests {
    enum Honest: Sendable {
        /// `ringport stress`, expecting these statuses.
        case stress(expect: String)
        /// A sender and a receiver across the hub: the receiver must get every frame once, in order.
        case hubPair
    }

    static let drivers: [(name: String, arguments: [String], honest: Honest)] = [
        ("null", [], .stress(expect: "success")),
        ("resources", [], .stress(expect: "verified")),
        // The hostile binding receives too (so the hub writes into buffers it rewrites); it may stall.
        ("hub", ["--stall-timeout-ms", "2000"], .hubPair),
    ]

    @Test(
        "The miniport survives and the honest bindings lose nothing",
        arguments: ["flip", "scribble"], [0, 1, 2])
    func survives(attack: String, driverIndex: Int) throws {
        let driver = Self.drivers[driverIndex]
        let label = "\(attack) on \(driver.name)"
        let miniport = try MiniportProcess(driver: driver.name, arguments: driver.arguments)
        var honestProcesses: [SpawnedProcess] = []
        defer { for process in honestProcesses { process.stop() } }
        var receiver: SpawnedProcess?
        if case .hubPair = driver.honest {
            let recv = try miniport.protocolProcess([
                "recv", "--check", "--only-tag", "1", "--count", "60000", "--idle-timeout", "30",
            ])
            honestProcesses.append(recv)
            receiver = recv
            _ = try miniport.waitForStatistics { $0.bindings == 1 }
        }
        let hostile = try SpawnedProcess(
            "hostile-protocol",
            [
                "--adapter", miniport.adapter, "--dir", miniport.directory.path, "--attack", attack,
                "--writes", "3000000", "--seconds", "6",
            ])
        defer { hostile.stop() }
        usleep(300_000)
        let sender: SpawnedProcess
        switch driver.honest {
        case .stress(let expect):
            sender = try miniport.protocolProcess([
                "stress", "--packets", "100000", "--max-buffers", "4", "--max-size", "1500", "--expect", expect,
                "--timeout", "60",
            ])
        case .hubPair:
            // Paced, so that the hub writes into the hostile's buffers all through the storm.
            sender = try miniport.protocolProcess([
                "send", "--count", "60000", "--rate", "12000", "--tag", "1", "--size", "128",
            ])
        }
        honestProcesses.append(sender)
        let senderStatus = sender.wait(seconds: 90)
        let hostileStatus = hostile.wait(seconds: 30)
        _ = eventually(seconds: 2) { hostile.standardOutput.contains("storm ") }
        #expect(hostileStatus == 0, "\(label): hostile: \(hostile.standardOutput) \(hostile.standardError)")
        #expect(miniport.process.process.isRunning, "\(label): the miniport died: \(miniport.process.standardError)")
        #expect(senderStatus == 0, "\(label): honest sender: \(sender.standardOutput) \(sender.standardError)")
        switch driver.honest {
        case .stress:
            #expect(
                sender.standardOutput.hasPrefix("ok sent=100000 completed=100000 "),
                "\(label): \(sender.standardOutput)")
        case .hubPair:
            #expect(sender.standardOutput.contains("sent 60000 failed=0"), "\(label): \(sender.standardOutput)")
            guard let receiver else { return }
            let status = receiver.wait(seconds: 60)
            _ = eventually(seconds: 2) { receiver.standardOutput.contains("received ") }
            #expect(status == 0, "\(label): honest receiver: \(receiver.standardOutput) \(receiver.standardError)")
            #expect(
                receiver.standardOutput.contains("received 60000 ")
                    && receiver.standardOutput.contains("errors=0")
                    && receiver.standardOutput.contains("senders=1:60000"),
                "\(label): \(receiver.standardOutput)")
        }
        // Binding after binding broke its ring: the log says so at a bounded rate (unbounded, it was ~700
        // lines a second).
        let lines = miniport.process.standardError.split(separator: "\n").count
        #expect(lines < 1500, "\(label): \(lines) log lines")
        // Still serving: it answers, holds nothing of the bindings gone, and stops cleanly.
        let statistics = try miniport.waitForStatistics { $0.bindings == 0 }
        #expect(statistics.packetsOutstanding == 0, "\(label): \(statistics)")
        #expect(miniport.terminate() == 0, "\(label): \(miniport.process.standardError.suffix(2000))")
    }

    @Test("Shrinking or growing a binding's segment is refused, and the miniport serves on")
    func truncatedSegment() throws {
        let miniport = try MiniportProcess(driver: "null")
        let hostile = try SpawnedProcess(
            "hostile-protocol",
            ["--adapter", miniport.adapter, "--dir", miniport.directory.path, "--attack", "truncate"])
        defer { hostile.stop() }
        let status = hostile.wait(seconds: 20)
        _ = eventually(seconds: 2) { hostile.standardOutput.contains("truncate: ") }
        #expect(status == 0, "\(hostile.standardOutput) \(hostile.standardError)")
        #expect(hostile.standardOutput.contains("shrink refused"), "\(hostile.standardOutput)")
        #expect(hostile.standardOutput.contains("grow refused"), "\(hostile.standardOutput)")
        #expect(miniport.process.process.isRunning, "the miniport died: \(miniport.process.standardError)")
        let honest = try miniport.protocolProcess(["stress", "--packets", "10000", "--expect", "success"])
        defer { honest.stop() }
        #expect(honest.wait(seconds: 60) == 0, "\(honest.standardOutput) \(honest.standardError)")
        #expect(miniport.terminate() == 0)
    }
}
