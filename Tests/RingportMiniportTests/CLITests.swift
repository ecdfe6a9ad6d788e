import Foundation
import Glibc
import RingportCore
import TestSupport
import Testing

/// The command-line tools as a user meets them: what they refuse (exit 64, naming the option and its range,
/// before anything starts), how a runtime failure reads (one line, exit 1), Ctrl-C (the summary, exit 130),
/// and their conventions (`--version`, flag pairs, listed values).
@Suite(.serialized) struct CLITests {
    /// A runtime directory no miniport serves (and that nothing creates: refused options start nothing).
    static func emptyDirectory() -> String {
        var random = SystemRandomNumberGenerator()
        return "/tmp/ringport-cli-\(String(random.next() as UInt64, radix: 16))"
    }

    /// Runs `tool` to its end (bounded): its exit status and output.
    static func run(_ tool: String, _ arguments: [String], seconds: Double = 30) throws -> (
        status: Int32?, out: String, err: String
    ) {
        let process = try SpawnedProcess(tool, arguments)
        let status = process.wait(seconds: seconds)
        return (status, process.standardOutput, process.standardError)
    }

    /// Waits (bounded) until `condition` holds, polling every 10 ms.
    static func eventually(seconds: Double = 20, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > deadline { return false }
            usleep(10_000)
        }
        return true
    }

    // MARK: Refused before anything starts

    @Test(arguments: [
        (["--max-packets", "0"], "--max-packets 0: must be within 1...65535"),
        (["--max-chunks", "0"], "--max-chunks 0: must be within 1...262144"),
        (["--max-ring", "1000"], "--max-ring 1000: must be a power of two within 2...16384"),
        (["--max-ring", "0"], "must be a power of two within 2...16384"),
        (["--socket-mode", "9"], "--socket-mode 9: must be octal within 600...777"),
        (["--socket-mode", "0"], "must be octal within 600...777"),
        (["--delay-us=-1"], "--delay-us -1: must be within 0...60000000"),
        (["--cpu", "100000"], "--cpu 100000: must be within 0..."),
        (["--max-connections", "1"], "--max-connections 1: must be within 16...1048576"),
        (["--max-memory", "1K"], "--max-memory 1K: must be within 1M...4096G"),
        (["--stall-timeout-ms=-1"], "--stall-timeout-ms -1: must be within 0...3600000"),
        (["--adapter", "../x"], "1 to 64 of A-Z a-z 0-9 . _ -"),
        (["--driver", "nope"], "random-order"),
        (["--policy", "maybe"], "one of 'lossless' and 'drop'"),
        (["--log-level", "loud"], "critical"),
        (["--checked", "true"], "true"),
    ])
    func ringportdRefusesABadOptionBeforeItStarts(_ bad: [String], _ message: String) throws {
        let directory = Self.emptyDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let adapter = bad.first == "--adapter" ? [] : ["--adapter", "cli0"]
        let result = try Self.run("ringportd", adapter + ["--dir", directory] + bad)
        #expect(result.status == 64, "\(result.out) \(result.err)")
        #expect(result.err.contains(message), "\(result.err)")
        #expect(!result.out.contains("is up"))
        // Nothing started: not even the runtime directory, let alone a socket.
        #expect(!FileManager.default.fileExists(atPath: directory))
    }

    @Test(arguments: [
        (["send", "--size", "0"], "--size 0: must be within 16...2048"),
        (["send", "--size", "5000"], "--size 5000: must be within 16...2048"),
        (["send", ""], "frames are 1...2048 bytes"),
        (["send", "--tag", "65536"], "--tag 65536: must be within 0...65535"),
        (["send", "--count=-1"], "--count -1: must be 0 or more"),
        (["ping", "--size", "0"], "--size 0: must be within 16...2048"),
        (["ping", "--size", "8"], "--size 8: must be within 16...2048"),
        (["ping", "--size", "5000"], "--size 5000: must be within 16...2048"),
        (["ping", "--count", "0"], "--count 0: must be 1 or more"),
        (["ping", "--timeout", "0"], "--timeout 0.0: must be within 0.001...3600 seconds"),
        (["stress", "--max-size", "100000000"], "--max-size 100000000: must be within 16...16384"),
        (["stress", "--max-size", "40000", "--max-buffers", "16"], "--max-size 40000: must be within 16...32768"),
        (["stress", "--max-size", "8"], "--max-size 8: must be within 16...16384"),
        (["stress", "--max-buffers", "17"], "--max-buffers 17: must be within 1...16"),
        (["stress", "--max-batch", "0"], "--max-batch 0: must be within 1...1024"),
        (["recv", "--size", "0"], "--size 0: must be within 16...2048"),
        (["recv", "--duration=-1"], "--duration -1.0: must be within 0...31536000 seconds"),
        (["stat", "--adapter", "a/b"], "--adapter \"a/b\": 1 to 64 of A-Z a-z 0-9 . _ -"),
        (["send", "--adapter", String(repeating: "a", count: 65)], "1 to 64 of A-Z a-z 0-9 . _ -"),
        (
            [
                "send", "--adapter", String(repeating: "a", count: 64), "--dir",
                "/tmp/" + String(repeating: "d", count: 40),
            ],
            "at most 107 fit a Unix socket address"
        ),
    ])
    func ringportRefusesABadSizeOrNameBeforeItConnects(_ bad: [String], _ message: String) throws {
        let directory = Self.emptyDirectory()
        let result = try Self.run("ringport", bad + (bad.contains("--dir") ? [] : ["--dir", directory]))
        #expect(result.status == 64, "\(result.out) \(result.err)")
        #expect(result.err.contains(message), "\(result.err)")
        // Refused while parsing: it never tried the (missing) miniport.
        #expect(!result.err.contains("not running"), "\(result.err)")
    }

    // MARK: Runtime failures

    @Test(arguments: [
        ["send", "hello"], ["recv", "--count", "1"], ["ping", "--count", "1"], ["stress", "--packets", "10"],
        ["stat"],
    ])
    func noMiniportIsOneLineAndExit1(_ command: [String]) throws {
        let directory = Self.emptyDirectory()
        let result = try Self.run("ringport", command + ["--adapter", "cli0", "--dir", directory])
        #expect(result.status == 1, "\(result.out) \(result.err)")
        let lines = result.err.split(separator: "\n")
        #expect(
            lines == [
                "ringport: the miniport at \(directory)/cli0.sock is not running (connect: No such file or directory)"
            ],
            "\(result.err)")
        #expect(!result.err.contains("Usage:"))
    }

    @Test func aMiniportThatGoesAwayEndsRecvAndSendWithOneLineAndExit1() throws {
        let miniport = try MiniportProcess(driver: "null")
        let receiver = try miniport.protocolProcess(["recv"])
        let sender = try miniport.protocolProcess(["send", "--count", "100000000", "--rate", "2000"])
        _ = try miniport.waitForStatistics { $0.bindings == 2 }
        miniport.kill9()
        for peer in [receiver, sender] {
            #expect(peer.wait(seconds: 20) == 1, "\(peer.standardOutput) \(peer.standardError)")
            let errors = peer.standardError.split(separator: "\n").filter { $0.hasPrefix("ringport:") }
            #expect(errors.count == 1, "\(peer.standardError)")
            #expect(!peer.standardError.contains("Usage:"), "\(peer.standardError)")
        }
    }

    /// A ping against a miniport that dies ends at once, also with --quiet and a long --timeout (not after
    /// count × timeout).
    @Test func pingAgainstAKilledMiniportEndsAtOnceWithExit1() throws {
        let miniport = try MiniportProcess(driver: "loopback")
        let ping = try miniport.protocolProcess([
            "ping", "--count", "100000000", "--quiet", "--timeout", "3600", "--interval-ms", "1",
        ])
        _ = try miniport.waitForStatistics { $0.packetsReceived > 10 }
        miniport.kill9()
        #expect(ping.wait(seconds: 15) == 1, "\(ping.standardOutput) \(ping.standardError)")
        #expect(ping.standardError.contains("ringport: ping: binding closed"), "\(ping.standardError)")
        #expect(ping.standardError.split(separator: "\n").count == 1, "\(ping.standardError)")
        #expect(!ping.standardError.contains("Usage:"))
    }

    /// With --quiet and no peer that answers (the null driver completes but never echoes), the first lost
    /// reply is said on stderr at once, not after count × timeout.
    @Test func aQuietPingThatGetsNoReplySaysSoAfterTheFirstTimeout() throws {
        let miniport = try MiniportProcess(driver: "null")
        let ping = try miniport.protocolProcess(["ping", "--count", "100", "--quiet", "--timeout", "0.2"])
        defer { ping.stop() }
        #expect(
            Self.eventually(seconds: 10) { ping.standardError.contains("no reply in 0.2 s") }, "\(ping.standardError)")
        kill(ping.process.processIdentifier, SIGINT)
        #expect(ping.wait(seconds: 15) == 130, "\(ping.standardOutput) \(ping.standardError)")
        #expect(ping.standardOutput.contains("0 received"), "\(ping.standardOutput)")
    }

    /// A user the socket does not admit is told how the miniport's owner can let them in.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func aPermissionDeniedNamesTheOptionsThatGrantAccess() throws {
        let miniport = try MiniportProcess(driver: "null")
        let nobody = getpwnam("nobody")!.pointee
        let outsider = try SpawnedProcess(
            "ringport",
            ["send", "hello", "--adapter", miniport.adapter, "--dir", miniport.directory.path],
            prefix: [
                "/usr/bin/setpriv", "--reuid=\(nobody.pw_uid)", "--regid=\(nobody.pw_gid)", "--clear-groups", "--",
            ]
        )
        #expect(outsider.wait(seconds: 20) == 1, "\(outsider.standardError)")
        #expect(outsider.standardError.contains("Permission denied"), "\(outsider.standardError)")
        #expect(outsider.standardError.contains("--group NAME") && outsider.standardError.contains("--socket-mode"))
        #expect(outsider.standardError.split(separator: "\n").count == 1, "\(outsider.standardError)")
    }

    // MARK: Ctrl-C

    @Test func ctrlCEndsAnIdleRecvWithItsSummaryAndExit130() throws {
        let miniport = try MiniportProcess(driver: "null")
        let receiver = try miniport.protocolProcess(["recv"])
        defer { receiver.stop() }
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        kill(receiver.process.processIdentifier, SIGINT)
        #expect(receiver.wait(seconds: 10) == 130, "\(receiver.standardOutput) \(receiver.standardError)")
        #expect(receiver.standardOutput.hasPrefix("received 0 bytes=0 errors=0"), "\(receiver.standardOutput)")
    }

    @Test func ctrlCEndsSendWithItsSummaryAndExit130() throws {
        let miniport = try MiniportProcess(driver: "null")
        let sender = try miniport.protocolProcess(["send", "--count", "100000000", "--rate", "2000"])
        defer { sender.stop() }
        _ = try miniport.waitForStatistics { $0.packetsSent > 10 }
        kill(sender.process.processIdentifier, SIGINT)
        #expect(sender.wait(seconds: 15) == 130, "\(sender.standardOutput) \(sender.standardError)")
        #expect(
            sender.standardOutput.hasPrefix("sent ") && sender.standardOutput.contains(" failed=0"),
            "\(sender.standardOutput)")
    }

    /// A send held by back-pressure (a hub whose only receiver holds every frame, never declared stalled)
    /// still ends at Ctrl-C with its summary and 130, not after its wait for room runs out.
    @Test func ctrlCEndsASendHeldByBackPressureWithItsSummaryAndExit130() throws {
        let miniport = try MiniportProcess(driver: "hub", arguments: ["--stall-timeout-ms", "0"])
        let receiver = try miniport.protocolProcess(["recv", "--hold-us", "100000000"])
        defer { receiver.stop() }
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        let sender = try miniport.protocolProcess(["send", "--count", "5000"])
        defer { sender.stop() }
        // Held: sends outstanding, and no more of them completing.
        var last = try miniport.statistics()
        let held = Self.eventually(seconds: 30) {
            usleep(300_000)
            guard let now = try? miniport.statistics() else { return false }
            defer { last = now }
            return now.bindings == 2 && now.packetsOutstanding > 0 && now.packetsSent == last.packetsSent
        }
        #expect(held, "\(last)")
        sender.signal(SIGINT)
        #expect(sender.wait(seconds: 8) == 130, "\(sender.standardOutput) \(sender.standardError)")
        #expect(sender.standardOutput.hasPrefix("sent "), "\(sender.standardOutput) \(sender.standardError)")
        #expect(!sender.standardError.contains("ringport:"), "\(sender.standardError)")
    }

    /// A rate-limited send sleeps until each frame is due: its CPU time is a small part of its wall time.
    @Test func aRateLimitedSendSleepsBetweenFrames() throws {
        let miniport = try MiniportProcess(driver: "null")
        let sender = try miniport.protocolProcess(["send", "--count", "300", "--rate", "100"])
        defer { sender.stop() }
        // Sampled while it still runs (about 3 s in all): user + system ticks against its age.
        _ = try miniport.waitForStatistics(seconds: 30) { $0.packetsSent >= 200 }
        let pid = sender.processIdentifier
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let uptime = try String(contentsOfFile: "/proc/uptime", encoding: .utf8)
        // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15, start 22.
        let fields = stat[stat.range(of: ")", options: .backwards)!.upperBound...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let cpu = (Double(fields[11])! + Double(fields[12])!) / ticks
        let age = Double(uptime.split(separator: " ")[0])! - Double(fields[19])! / ticks
        #expect(age > 1, "age \(age) s")
        #expect(cpu < 0.3 * age, "cpu \(cpu) s in \(age) s")
        #expect(sender.wait(seconds: 30) == 0, "\(sender.standardError)")
        #expect(sender.standardOutput == "sent 300 failed=0\n", "\(sender.standardOutput)")
    }

    @Test func ctrlCEndsPingWithItsStatisticsAndExit130() throws {
        let miniport = try MiniportProcess(driver: "loopback")
        let ping = try miniport.protocolProcess(["ping", "--count", "100000000", "--interval-ms", "1"])
        defer { ping.stop() }
        #expect(Self.eventually { ping.standardOutput.contains("seq=5 ") }, "\(ping.standardOutput)")
        kill(ping.process.processIdentifier, SIGINT)
        #expect(ping.wait(seconds: 15) == 130, "\(ping.standardOutput) \(ping.standardError)")
        #expect(ping.standardOutput.contains("--- \(miniport.adapter) ping statistics ---"), "\(ping.standardOutput)")
        #expect(ping.standardOutput.contains(" sent, ") && ping.standardOutput.contains("rtt µs: min "))
    }

    @Test func ctrlCEndsStressWithItsSummaryAndExit130() throws {
        let miniport = try MiniportProcess(driver: "null")
        let stress = try miniport.protocolProcess(["stress", "--packets", "2000000000"])
        defer { stress.stop() }
        _ = try miniport.waitForStatistics { $0.packetsSent > 1000 }
        kill(stress.process.processIdentifier, SIGINT)
        #expect(stress.wait(seconds: 30) == 130, "\(stress.standardOutput) \(stress.standardError)")
        // Every packet sent before Ctrl-C still completed, once, in order.
        #expect(stress.standardOutput.hasPrefix("ok sent="), "\(stress.standardOutput)")
    }

    // MARK: Conventions

    @Test(arguments: ["ringport", "ringportd"])
    func versionIsTheOneConstant(_ tool: String) throws {
        let result = try Self.run(tool, ["--version"])
        #expect(result.status == 0)
        #expect(result.out == RingportVersion.string + "\n", "\(result.out)")
    }

    @Test(arguments: ["--checked", "--no-checked"])
    func checkedIsAFlagPair(_ flag: String) throws {
        let miniport = try MiniportProcess(driver: "loopback", arguments: [flag])
        let ping = try miniport.protocolProcess(["ping", "--count", "3", "--quiet"])
        #expect(ping.wait(seconds: 30) == 0, "\(ping.standardOutput) \(ping.standardError)")
        // The miniport says which it took.
        let stat = try miniport.protocolProcess(["stat"])
        #expect(stat.wait(seconds: 30) == 0, "\(stat.standardError)")
        let adapterLine = stat.standardOutput.split(separator: "\n").first.map(String.init) ?? ""
        let expected = flag == "--checked" ? "checked=true" : "checked=false"
        #expect(adapterLine.split(separator: " ").contains { $0 == expected }, "\(stat.standardOutput)")
    }

    @Test func helpListsTheValuesAndTheFullDefaultDirectory() throws {
        let daemon = try Self.run("ringportd", ["--help"])
        #expect(daemon.status == 0)
        let flat = daemon.out.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(flat.contains("--checked/--no-checked"), "\(daemon.out)")
        #expect(flat.contains("values: null, resources, serial, random-order, loopback, hub"), "\(daemon.out)")
        #expect(flat.contains("values: lossless, drop"))
        #expect(flat.contains("$XDG_RUNTIME_DIR/ringport, or /tmp/ringport-<uid>"))
        let tool = try Self.run("ringport", ["send", "--help"])
        let toolFlat = tool.out.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(
            toolFlat.contains("else /run/ringport for root, else $XDG_RUNTIME_DIR/ringport, or /tmp/ringport-<uid>"))
        #expect(toolFlat.contains("values: busyPoll, adaptive, blocking"), "\(tool.out)")
    }
}
