import Foundation
import Glibc
import RingportCore
import TestSupport
import Testing

/// The wait policies, across real processes: under each, every packet arrives once and in order, a sleeping
/// protocol costs nothing, and it still sees its miniport die.
@Suite(.serialized) struct WaitPolicyTests {
    @Test(arguments: WaitPolicy.allCases)
    func throughAHubEveryPacketArrivesOnceInOrder(policy: WaitPolicy) throws {
        let wait = ["--wait", policy.rawValue]
        let miniport = try MiniportProcess(driver: "hub", arguments: ["--policy", "lossless"] + wait)
        let count = 30_000
        let receiver = try miniport.protocolProcess(
            ["recv", "--check", "--count", "\(count)", "--idle-timeout", "60"] + wait)
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        let sender = try miniport.protocolProcess(["send", "--count", "\(count)", "--tag", "7"] + wait)
        #expect(sender.wait(seconds: 120) == 0, "\(sender.standardOutput) \(sender.standardError)")
        #expect(receiver.wait(seconds: 120) == 0, "\(receiver.standardOutput) \(receiver.standardError)")
        #expect(
            receiver.standardOutput.contains("received \(count) ") && receiver.standardOutput.contains("errors=0")
                && receiver.standardOutput.contains("senders=7:\(count)"),
            "\(receiver.standardOutput)")
    }

    @Test(arguments: WaitPolicy.allCases)
    func loopbackRoundTripsAllComeBack(policy: WaitPolicy) throws {
        let wait = ["--wait", policy.rawValue]
        let miniport = try MiniportProcess(driver: "loopback", arguments: wait)
        let ping = try miniport.protocolProcess(["ping", "--count", "3000", "--quiet"] + wait)
        #expect(ping.wait(seconds: 120) == 0, "\(ping.standardOutput) \(ping.standardError)")
        #expect(ping.standardOutput.contains("3000 sent, 3000 received, 0 lost"), "\(ping.standardOutput)")
    }

    /// A sleeping protocol has no timer: it wakes only when there is work or its miniport goes away.
    @Test(arguments: [WaitPolicy.adaptive, .blocking])
    func anIdleProtocolDoesNotWakeUp(policy: WaitPolicy) throws {
        let miniport = try MiniportProcess(driver: "hub", arguments: ["--wait", policy.rawValue])
        let receiver = try miniport.protocolProcess(["recv", "--wait", policy.rawValue])
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        let pid = receiver.process.processIdentifier
        usleep(300_000)  // settle: the open's own round trips are done
        let before = try Self.contextSwitches(pid)
        usleep(1_500_000)
        let after = try Self.contextSwitches(pid)
        // 50 ms slices or a 100 ms receive timeout would be 15 to 30 wake-ups here.
        #expect(after - before <= 2, "the idle receiver woke \(after - before) times in 1.5 s")
        receiver.stop()
    }

    /// The miniport's death wakes a protocol asleep in a long wait, well before its timeout.
    @Test(arguments: [WaitPolicy.adaptive, .blocking])
    func aSleepingProtocolSeesItsMiniportKilled(policy: WaitPolicy) throws {
        let miniport = try MiniportProcess(driver: "hub", arguments: ["--wait", policy.rawValue])
        let receiver = try miniport.protocolProcess(["recv", "--wait", policy.rawValue])
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        usleep(300_000)  // asleep by now
        miniport.kill9()
        // recv's own wait is an hour long: only the hang-up can end it.
        let status = receiver.wait(seconds: 5)
        #expect(status != nil, "the receiver did not notice its miniport's death")
        #expect(receiver.standardError.contains("went away"), "\(receiver.standardError)")
        if status == nil { receiver.stop() }
    }

    /// A lossless hub held up by a receiver that takes nothing waits for it without keeping a CPU busy.
    @Test(arguments: [WaitPolicy.adaptive, .blocking])
    func aHubWaitingForAStuckReceiverDoesNotSpin(policy: WaitPolicy) throws {
        let miniport = try MiniportProcess(
            driver: "hub", arguments: ["--policy", "lossless", "--stall-timeout-ms", "0", "--wait", policy.rawValue])
        let stuck = try miniport.protocolProcess(["recv", "--hold-us", "100000000"])
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        let sender = try miniport.protocolProcess(["send", "--count", "5000"])
        defer {
            sender.stop()
            stuck.stop()
        }
        _ = try miniport.waitForStatistics { $0.packetsOutstanding > 0 }
        usleep(200_000)
        let pid = miniport.process.process.processIdentifier
        let before = try Self.cpuTicks(pid)
        usleep(1_000_000)
        let used = try Self.cpuTicks(pid) - before
        // Spinning is 100 ticks a second; a short sleep between polls is a few.
        #expect(used < 40, "the waiting miniport used \(used) of 100 ticks in 1 s")
    }

    /// utime + stime of `pid`, in clock ticks (1/100 s).
    static func cpuTicks(_ pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
        return Int(fields[11])! + Int(fields[12])!
    }

    /// Voluntary and involuntary context switches of every thread of `pid`.
    static func contextSwitches(_ pid: Int32) throws -> Int {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        var total = 0
        for task in tasks {
            let status = try String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8)
            for line in status.split(separator: "\n") where line.contains("ctxt_switches") {
                total += Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        return total
    }
}
