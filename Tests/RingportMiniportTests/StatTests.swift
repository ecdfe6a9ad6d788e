import Foundation
import Glibc
import RingportCore
import TestSupport
import Testing

/// `ringport stat` (table, `--json`, `--watch`) and `ringport list` against a real hub with real traffic.
@Suite(.serialized) struct StatTests {
    /// Two receivers on a hub, one of which also sends, and a `ringport send`: what stat shows per binding
    /// must be what each one sent and received, under its own process id and wait policy.
    struct Traffic {
        let miniport: MiniportProcess
        /// Receives only, waits `blocking`.
        let quiet: SpawnedProcess
        /// Sends 5 frames of 100 bytes once both are bound, receives, waits `adaptive`.
        let talker: SpawnedProcess

        init() throws {
            miniport = try MiniportProcess(driver: "hub")
            quiet = try miniport.protocolProcess(["recv", "--wait", "blocking", "--duration", "120"])
            talker = try miniport.protocolProcess([
                "recv", "--wait", "adaptive", "--send-count", "5", "--size", "100", "--send-after-bindings", "2",
                "--duration", "120",
            ])
            // The hub completes a frame once every receiver took it: 5 sent means 5 delivered to `quiet`.
            let before = try miniport.waitForStatistics(seconds: 30) { $0.bindings == 2 && $0.packetsSent == 5 }
            guard before.packetsSent == 5 else { throw SupportFailure("the talker did not send: \(before)") }
            let sender = try miniport.protocolProcess(["send", "--count", "4", "--size", "64"])
            guard sender.wait(seconds: 60) == 0 else { throw SupportFailure("send: \(sender.standardError)") }
            // 4 frames to each receiver, and the sender's binding gone.
            let after = try miniport.waitForStatistics(seconds: 30) { $0.packetsReceived == 13 && $0.bindings == 2 }
            guard after.packetsReceived == 13 else { throw SupportFailure("not delivered: \(after)") }
        }

        func stat(_ arguments: [String]) throws -> String {
            let stat = try miniport.protocolProcess(["stat"] + arguments)
            guard stat.wait(seconds: 30) == 0 else { throw SupportFailure("stat: \(stat.standardError)") }
            return stat.standardOutput
        }
    }

    @Test func statJSONShowsEachBindingsProcessTrafficRingsPoolsAndWaitPolicy() throws {
        let traffic = try Traffic()
        let output = try traffic.stat(["--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(object["driver"] as? String == "hub")
        #expect(object["adapter"] as? String == traffic.miniport.adapter)
        #expect((object["miniport_pid"] as? NSNumber)?.int32Value == traffic.miniport.process.processIdentifier)
        let totals = try #require(object["totals"] as? [String: Any])
        #expect((totals["packets_sent"] as? NSNumber)?.intValue == 9)
        #expect((totals["bytes_sent"] as? NSNumber)?.intValue == 5 * 100 + 4 * 64)
        #expect((totals["packets_received"] as? NSNumber)?.intValue == 13)
        #expect((totals["bytes_received"] as? NSNumber)?.intValue == 5 * 100 + 2 * 4 * 64)
        #expect((totals["bindings"] as? NSNumber)?.intValue == 2)
        let bindings = try #require(object["bindings"] as? [[String: Any]])
        #expect(bindings.count == 2)
        func binding(of process: SpawnedProcess) throws -> [String: Any] {
            try #require(
                bindings.first { ($0["pid"] as? NSNumber)?.int32Value == process.processIdentifier },
                "no binding of pid \(process.processIdentifier) in \(output)")
        }
        func number(_ b: [String: Any], _ key: String) -> Int? { (b[key] as? NSNumber)?.intValue }
        let quiet = try binding(of: traffic.quiet)
        #expect(quiet["process_name"] as? String == "ringport")
        #expect(quiet["state"] as? String == "open")
        #expect(quiet["wait_policy"] as? String == "blocking")
        #expect(number(quiet, "packets_sent") == 0 && number(quiet, "bytes_sent") == 0)
        #expect(number(quiet, "packets_received") == 9 && number(quiet, "bytes_received") == 5 * 100 + 4 * 64)
        #expect(number(quiet, "packets_dropped") == 0 && number(quiet, "packets_failed") == 0)
        #expect(number(quiet, "packets_outstanding") == 0)
        let talker = try binding(of: traffic.talker)
        #expect(talker["wait_policy"] as? String == "adaptive")
        #expect(number(talker, "packets_sent") == 5 && number(talker, "bytes_sent") == 500)
        #expect(number(talker, "packets_received") == 4 && number(talker, "bytes_received") == 4 * 64)
        for b in [quiet, talker] {
            let rings = try #require(b["rings"] as? [String: [String: NSNumber]])
            for ring in ["transmit_packets", "transmit_fragments", "receive_packets", "receive_fragments"] {
                let used = try #require(rings[ring]?["used"]?.intValue)
                let size = try #require(rings[ring]?["size"]?.intValue)
                #expect(size > 0 && used >= 0 && used < size, "\(ring): \(used)/\(size)")
            }
            // Idle receivers: every receive buffer but the ring's gap posted, nothing in the transmit rings.
            #expect(rings["transmit_packets"]?["used"]?.intValue == 0)
            #expect((rings["receive_fragments"]?["used"]?.intValue ?? 0) > 0)
            let pool = try #require(b["pool"] as? [String: NSNumber])
            #expect((pool["packets"]?.intValue ?? 0) > 0 && pool["packets_in_use"]?.intValue == 0)
            #expect((pool["buffers"]?.intValue ?? 0) > 0 && pool["buffers_in_use"]?.intValue == 0)
            #expect(b["sleeps"] is NSNumber)
        }
        // A blocking receiver that idled between the frames slept in its waits.
        #expect((number(quiet, "sleeps") ?? 0) > 0, "\(quiet)")
    }

    /// Sends held by a hub receiver that keeps every frame: the sender's binding shows them outstanding and
    /// its pool's packets and buffers in use.
    @Test func statJSONShowsThePoolInUseOfSendsHeldByAReceiver() throws {
        let miniport = try MiniportProcess(driver: "hub", arguments: ["--stall-timeout-ms", "0"])
        let receiver = try miniport.protocolProcess(["recv", "--hold-us", "100000000"])
        defer { receiver.stop() }
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        let sender = try miniport.protocolProcess(["send", "--count", "5000"])
        defer { sender.stop() }
        let held = try miniport.waitForStatistics(seconds: 30) { $0.bindings == 2 && $0.packetsOutstanding > 0 }
        #expect(held.packetsOutstanding > 0, "\(held)")
        let stat = try miniport.protocolProcess(["stat", "--json"])
        #expect(stat.wait(seconds: 30) == 0, "\(stat.standardError)")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(stat.standardOutput.utf8)) as? [String: Any])
        let bindings = try #require(object["bindings"] as? [[String: Any]])
        let binding = try #require(
            bindings.first { ($0["pid"] as? NSNumber)?.int32Value == sender.processIdentifier }, "\(bindings)")
        let outstanding = try #require((binding["packets_outstanding"] as? NSNumber)?.intValue)
        let pool = try #require(binding["pool"] as? [String: NSNumber])
        #expect(outstanding > 0, "\(binding)")
        #expect((pool["packets_in_use"]?.intValue ?? 0) > 0, "\(pool)")
        #expect((pool["buffers_in_use"]?.intValue ?? 0) > 0, "\(pool)")
        let packets = try #require(pool["packets"]?.intValue)
        #expect((pool["packets_in_use"]?.intValue ?? 0) <= packets, "\(pool)")
    }

    @Test func statTableHasTheAdapterLineAndOneRowPerBinding() throws {
        let traffic = try Traffic()
        let output = try traffic.stat([])
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("adapter=\(traffic.miniport.adapter) driver=hub ") == true, "\(output)")
        #expect(output.contains("bindings=2 ") && output.contains("received=13 "), "\(output)")
        let header = try #require(lines.first { $0.hasPrefix("BINDING ") }, "\(output)")
        let columns = header.split(separator: " ").map(String.init)
        func row(of process: SpawnedProcess) throws -> [String: String] {
            let line = try #require(
                lines.first {
                    $0.split(separator: " ").dropFirst().first.map(String.init) == "\(process.processIdentifier)"
                },
                "\(output)")
            return Dictionary(uniqueKeysWithValues: zip(columns, line.split(separator: " ").map(String.init)))
        }
        let quiet = try row(of: traffic.quiet)
        #expect(quiet["PROCESS"] == "ringport" && quiet["STATE"] == "open" && quiet["WAIT"] == "blocking")
        #expect(quiet["SENT"] == "0" && quiet["RECEIVED"] == "9" && quiet["RECEIVED_BYTES"] == "756")
        let talker = try row(of: traffic.talker)
        #expect(talker["WAIT"] == "adaptive" && talker["SENT"] == "5" && talker["SENT_BYTES"] == "500")
        #expect(talker["RECEIVED"] == "4" && talker["DROPPED"] == "0" && talker["OUTSTANDING"] == "0")
        #expect(talker["TX_PACKETS"]?.hasPrefix("0/") == true)
    }

    @Test func watchPrintsSnapshotsWithPerSecondRatesUntilCtrlC() throws {
        let miniport = try MiniportProcess(driver: "hub")
        let receiver = try miniport.protocolProcess(["recv", "--duration", "120"])
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        // About 200 frames a second for as long as the watch runs.
        let sender = try miniport.protocolProcess(["send", "--count", "6000", "--rate", "200", "--size", "100"])
        defer {
            sender.stop()
            receiver.stop()
        }
        _ = try miniport.waitForStatistics { $0.packetsReceived > 0 }
        let watch = try miniport.protocolProcess(["stat", "--json", "--watch", "1"])
        func snapshots() -> [[String: Any]] {
            watch.standardOutput.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }
        let enough = watch.waitUntil(seconds: 30) { _ in snapshots().count >= 3 }
        watch.signal(SIGINT)
        #expect(watch.wait(seconds: 10) == 130, "\(watch.standardError)")
        #expect(enough, "\(watch.standardOutput)")
        let all = snapshots()
        #expect(all.first?["rates"] == nil, "the first snapshot has nothing to compare with")
        let rated = all.dropFirst()
        #expect(rated.count >= 2)
        for snapshot in rated {
            let rates = try #require(snapshot["rates"] as? [String: NSNumber], "\(snapshot)")
            let interval = try #require((snapshot["interval_seconds"] as? NSNumber)?.doubleValue)
            #expect(interval > 0.5 && interval < 10)
            let received = try #require(rates["packets_received_per_second"]?.doubleValue)
            let bytes = try #require(rates["bytes_received_per_second"]?.doubleValue)
            // Frames of 100 bytes at 200 a second: the sender keeps to its schedule, catching up after a stall,
            // so an interval of about a second sees about 200 (a loaded machine may shift some to the next).
            #expect(received > 100 && received < 400, "\(rates)")
            #expect(abs(bytes - 100 * received) < 10, "\(rates)")  // each rounded to 0.1
            // The receiver's binding took them all: its rate is the adapter's (asked a moment apart).
            let bindings = try #require(snapshot["bindings"] as? [[String: Any]])
            let binding = try #require(
                bindings.first { ($0["pid"] as? NSNumber)?.int32Value == receiver.processIdentifier }, "\(bindings)")
            let own = try #require(binding["rates"] as? [String: NSNumber], "\(binding)")
            let ownReceived = try #require(own["packets_received_per_second"]?.doubleValue)
            #expect(abs(ownReceived - received) < 0.25 * received + 5, "\(own) vs \(rates)")
            #expect(own["packets_sent_per_second"]?.doubleValue == 0, "\(own)")
        }
        // Over the whole watch the sender's 200 a second.
        let total = rated.compactMap {
            ($0["rates"] as? [String: NSNumber])?["packets_received_per_second"]?.doubleValue
        }
        let mean = total.reduce(0, +) / Double(max(1, total.count))
        #expect(mean > 130 && mean < 270, "\(total)")
        // And the table form: a rate line from the second snapshot on.
        let table = try miniport.protocolProcess(["stat", "--watch", "1"])
        let rates = table.waitUntil(seconds: 30) { $0.standardOutput.components(separatedBy: "rate: ").count >= 3 }
        table.signal(SIGINT)
        #expect(table.wait(seconds: 10) == 130)
        #expect(rates, "\(table.standardOutput)")
        #expect(table.standardOutput.contains("RECEIVED/S"))
    }

    /// A watch whose miniport stops says so in one line, exit 1 (not the socket call that failed).
    @Test func aWatchWhoseMiniportGoesAwaySaysSoInOneLine() throws {
        let miniport = try MiniportProcess(driver: "null")
        let watch = try miniport.protocolProcess(["stat", "--watch", "0.5"])
        defer { watch.stop() }
        #expect(watch.waitUntil(seconds: 30) { $0.standardOutput.components(separatedBy: "adapter=").count >= 3 })
        #expect(miniport.terminate() != nil)
        #expect(watch.wait(seconds: 20) == 1, "\(watch.standardOutput) \(watch.standardError)")
        let path = miniport.directory.socketPath(adapter: miniport.adapter)
        #expect(watch.standardError == "ringport: the miniport at \(path) went away\n", "\(watch.standardError)")
    }

    /// `list` of a directory this user may search but not read (a world socket's 0711) cannot list it: it says
    /// so and how to reach an adapter by name instead.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func listOfADirectoryThatCannotBeReadSaysHowToAskByName() throws {
        let miniport = try MiniportProcess(driver: "null", arguments: ["--socket-mode", "666"])
        var info = stat()
        #expect(stat(miniport.directory.path, &info) == 0 && info.st_mode & 0o777 == 0o711)
        let user = getpwnam("ringport-test") ?? getpwnam("nobody")!
        let (uid, gid) = (user.pointee.pw_uid, user.pointee.pw_gid)
        let list = try SpawnedProcess(
            "ringport", ["list", "--dir", miniport.directory.path],
            prefix: ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--"])
        #expect(list.wait(seconds: 20) == 1, "\(list.standardOutput) \(list.standardError)")
        let lines = list.standardError.split(separator: "\n")
        #expect(lines.count == 1, "\(list.standardError)")
        #expect(list.standardError.contains("\(miniport.directory.path) cannot be listed"), "\(list.standardError)")
        #expect(
            list.standardError.contains("ringport stat --adapter NAME --dir \(miniport.directory.path)"),
            "\(list.standardError)")
        #expect(!list.standardError.contains("NSCocoaErrorDomain"), "\(list.standardError)")
        // And asked by name, the adapter answers that user.
        let stat = try SpawnedProcess(
            "ringport", ["stat", "--adapter", miniport.adapter, "--dir", miniport.directory.path],
            prefix: ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--"])
        #expect(stat.wait(seconds: 20) == 0, "\(stat.standardError)")
    }

    @Test func listOfAFileThatIsNoDirectorySaysSo() throws {
        let list = try SpawnedProcess("ringport", ["list", "--dir", "/etc/passwd"])
        #expect(list.wait(seconds: 20) == 1, "\(list.standardOutput) \(list.standardError)")
        #expect(list.standardError == "ringport: /etc/passwd is not a directory\n", "\(list.standardError)")
        #expect(list.standardOutput.isEmpty)
    }

    /// A process name is the program's file name, which may hold newlines and spaces: the table shows them
    /// escaped (one row per binding, one cell per column); JSON carries the name as it is.
    @Test func aProcessNameCannotAddLinesOrColumnsToTheTable() throws {
        let miniport = try MiniportProcess(driver: "null")
        let folder = miniport.directory.path + "-bin"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // The kernel keeps 15 bytes of it.
        let name = "x\n9 9 ringport\tz"
        let copy = folder + "/" + name
        try FileManager.default.copyItem(
            atPath: SpawnedProcess.productsDirectory.appendingPathComponent("ringport").path, toPath: copy)
        let receiver = try SpawnedProcess.command(
            copy, ["recv", "--adapter", miniport.adapter, "--dir", miniport.directory.path])
        defer { receiver.stop() }
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        let stat = try miniport.protocolProcess(["stat"])
        #expect(stat.wait(seconds: 30) == 0, "\(stat.standardError)")
        let lines = stat.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
        // The adapter line, the totals, the header, one row (and the final newline).
        #expect(lines.count == 5 && lines.last == "", "\(stat.standardOutput)")
        let header = lines[2].split(separator: " ").map(String.init)
        let row = lines[3].split(separator: " ").map(String.init)
        #expect(header.count == row.count, "\(stat.standardOutput)")
        let process = header.firstIndex(of: "PROCESS").map { row[$0] }
        #expect(process == "x?9?9?ringport?", "\(stat.standardOutput)")
        let json = try miniport.protocolProcess(["stat", "--json"])
        #expect(json.wait(seconds: 30) == 0)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any])
        let binding = try #require((object["bindings"] as? [[String: Any]])?.first)
        #expect(binding["process_name"] as? String == String(name.prefix(15)), "\(json.standardOutput)")
    }

    @Test func listShowsALiveAdapterAndReportsAStaleSocket() throws {
        let live = try MiniportProcess(driver: "hub")
        let stale = try MiniportProcess(driver: "null", adapter: "stale0", directory: live.directory.path)
        stale.kill9()  // its socket file stays behind
        #expect(FileManager.default.fileExists(atPath: stale.directory.socketPath(adapter: "stale0")))
        let receiver = try live.protocolProcess(["recv", "--duration", "120"])
        defer { receiver.stop() }
        _ = try live.waitForStatistics { $0.bindings == 1 }
        let list = try SpawnedProcess("ringport", ["list", "--dir", live.directory.path])
        #expect(list.wait(seconds: 30) == 0, "\(list.standardError)")
        let lines = list.standardOutput.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let liveRow = try #require(lines.first { $0.first == live.adapter }, "\(list.standardOutput)")
        #expect(Array(liveRow.dropFirst().prefix(4)) == ["running", "hub", "\(live.process.processIdentifier)", "1"])
        let staleRow = try #require(lines.first { $0.first == "stale0" }, "\(list.standardOutput)")
        #expect(staleRow.dropFirst().prefix(2).joined(separator: " ") == "not running", "\(list.standardOutput)")
        let json = try SpawnedProcess("ringport", ["list", "--json", "--dir", live.directory.path])
        #expect(json.wait(seconds: 30) == 0)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any])
        let adapters = try #require(object["adapters"] as? [[String: Any]])
        #expect(adapters.map { $0["adapter"] as? String } == ["stale0", live.adapter].sorted())
        #expect(
            adapters.first { $0["adapter"] as? String == "stale0" }?["status"] as? String
                == "not running (stale socket)")
        #expect(adapters.first { $0["adapter"] as? String == live.adapter }?["driver"] as? String == "hub")
    }
}
