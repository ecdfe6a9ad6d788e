import Foundation
import Glibc
import RingportCore
import RingportSystem

/// A process a chaos run started: its stdout split into lines for the run to read, its stderr kept (the
/// last 64 KiB) for the report.
final class ChaosProcess: @unchecked Sendable {
    let process = Process()
    let lock = NSLock()
    var pending = Data()
    var errorTail = Data()
    let name: String

    init(_ name: String, executable: String, _ arguments: [String]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            if data.isEmpty { handle.readabilityHandler = nil }
            self.lock.withLock { self.pending.append(data) }
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            if data.isEmpty { handle.readabilityHandler = nil }
            self.lock.withLock {
                self.errorTail.append(data)
                if self.errorTail.count > 65_536 { self.errorTail.removeFirst(self.errorTail.count - 65_536) }
            }
        }
        try process.run()
    }

    var pid: pid_t { process.processIdentifier }

    /// The complete lines printed since the last call.
    func lines() -> [String] {
        lock.withLock {
            guard let last = pending.lastIndex(of: UInt8(ascii: "\n")) else { return [] }
            let text = String(decoding: pending[pending.startIndex...last], as: UTF8.self)
            pending.removeSubrange(pending.startIndex...last)
            return text.split(separator: "\n").map(String.init)
        }
    }

    var standardError: String { lock.withLock { String(decoding: errorTail, as: UTF8.self) } }

    func kill9() {
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    /// Waits up to `seconds` for the exit; SIGKILL after that. The exit status, or nil if it had to be killed.
    func wait(seconds: Double) -> Int32? {
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(seconds * 1e9)
        while process.isRunning {
            if ProcessControl.monotonicNanoseconds() > deadline {
                kill9()
                return nil
            }
            usleep(1000)
        }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// `ringport stress --chaos`: a loopback miniport and N checking protocols (`--chaos-child`), killed with
/// SIGKILL at random and restarted, with every completion, order and byte checked by the survivors and the
/// leaks counted at the end. All waits are bounded; every child dies with this process.
struct ChaosRun {
    let protocols: Int
    let protocolKills: Int
    let miniportKills: Int
    let seed: UInt64
    let duration: Double
    let verbose: Bool
    /// `loopback`; another driver only to prove the checks fail (a `null` miniport returns no frames).
    let driver: String

    let adapter: String
    let directory: RuntimeDirectory
    let tools: URL

    final class Child {
        let process: ChaosProcess
        var opened = false
        var goneAt: UInt64?
        var done: String?
        init(_ process: ChaosProcess) { self.process = process }
    }

    var miniport: ChaosProcess?
    var children: [Child?] = []
    var random: UInt64
    var lost = 0
    var duplicated = 0
    var errors: [String] = []
    var sessions = 0
    var packets: UInt64 = 0
    var reclaimMilliseconds: [Double] = []
    var deadMiniportMilliseconds: [Double] = []
    var protocolKillsDone = 0
    var miniportKillsDone = 0
    var childSerial: UInt64 = 0

    init(
        protocols: Int, protocolKills: Int, miniportKills: Int, seed: UInt64, duration: Double, verbose: Bool,
        driver: String
    ) {
        self.driver = driver
        self.protocols = protocols
        self.protocolKills = protocolKills
        self.miniportKills = miniportKills
        self.seed = seed
        self.duration = duration
        self.verbose = verbose
        random = seed
        var system = SystemRandomNumberGenerator()
        let token = String(system.next() as UInt32, radix: 16)
        adapter = "chaos\(getpid())x\(token)"
        directory = RuntimeDirectory("/tmp/ringport-chaos-\(getpid())-\(token)")
        tools = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    mutating func next(_ bound: Int) -> Int {
        Int(SplitMix64.next(&random) % UInt64(bound))
    }

    static func now() -> UInt64 { ProcessControl.monotonicNanoseconds() }

    func log(_ line: String) {
        if verbose { FileHandle.standardError.write(Data("chaos: \(line)\n".utf8)) }
    }

    // MARK: Processes

    mutating func startMiniport() throws {
        let process = try ChaosProcess(
            "ringportd",
            executable: tools.appendingPathComponent("ringportd").path,
            [
                "--adapter", adapter, "--dir", directory.path, "--driver", driver, "--log-level", "error",
                "--parent", "\(getpid())",
            ]
        )
        var output = ""
        let deadline = Self.now() + 20_000_000_000
        while !output.contains("is up") {
            output += process.lines().joined(separator: "\n")
            guard process.process.isRunning, Self.now() < deadline else {
                process.kill9()
                throw ChaosFailure("ringportd did not come up: \(process.standardError)")
            }
            usleep(1000)
        }
        miniport = process
    }

    mutating func startChild(_ slot: Int) throws {
        childSerial += 1
        let process = try ChaosProcess(
            "protocol \(slot)",
            executable: tools.appendingPathComponent("ringport").path,
            [
                "stress", "--chaos-child", "--adapter", adapter, "--dir", directory.path, "--parent", "\(getpid())",
                "--seed", "\(seed &* 1_000_003 &+ childSerial)",
            ]
        )
        children[slot] = Child(process)
    }

    /// Reads every child's new lines: opens, departures, session checks, errors.
    mutating func pump() {
        for slot in children.indices {
            guard let child = children[slot] else { continue }
            for line in child.process.lines() {
                let words = line.split(separator: " ", maxSplits: 2).map(String.init)
                switch words.first {
                case "open":
                    child.opened = true
                    child.goneAt = nil
                case "gone":
                    child.opened = false
                    child.goneAt = words.count > 1 ? UInt64(words[1]) : nil
                case "session":
                    sessions += 1
                    let fields = Self.fields(line)
                    lost += fields["lost"] ?? 0
                    duplicated += fields["duplicated"] ?? 0
                    packets += UInt64(fields["sent"] ?? 0)
                case "error":
                    errors.append("\(child.process.name): \(line.dropFirst(6))")
                case "done":
                    child.done = line
                default:
                    break
                }
                if words.first != "session" { log("\(child.process.name): \(line)") }
            }
        }
    }

    static func fields(_ line: String) -> [String: Int] {
        var fields: [String: Int] = [:]
        for word in line.split(separator: " ") {
            let pair = word.split(separator: "=", maxSplits: 1)
            if pair.count == 2, let value = Int(pair[1]) { fields[String(pair[0])] = value }
        }
        return fields
    }

    /// Pumps for `milliseconds`.
    mutating func idle(milliseconds: Int) {
        let end = Self.now() + UInt64(milliseconds) * 1_000_000
        repeat {
            pump()
            usleep(1000)
        } while Self.now() < end
    }

    /// Waits (bounded) until every child has a binding on the living miniport.
    mutating func waitForOpens(seconds: Double) -> Bool {
        let deadline = Self.now() + UInt64(seconds * 1e9)
        while Self.now() < deadline {
            pump()
            if children.allSatisfy({ $0?.opened == true }) { return true }
            usleep(1000)
        }
        return false
    }

    // MARK: Statistics and leaks

    func statistics() -> AdapterStatistics? {
        guard let socket = try? ControlSocket.connect(path: directory.socketPath(adapter: adapter)) else { return nil }
        guard (try? socket.send(.queryStatistics)) != nil, socket.isReadable(waitingMilliseconds: 2000),
            let received = try? socket.receive()
        else { return nil }
        guard case .message(.statistics(let statistics), let fd) = consume received else { return nil }
        if fd >= 0 { Glibc.close(fd) }
        return statistics
    }

    static func openDescriptors(_ pid: pid_t) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    }

    /// Segment names this run's adapter left in /dev/shm.
    func segmentNames() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
        return names.filter { $0.contains(adapter) }
    }

    /// The binding segments (labelled memfds) the miniport still maps.
    func mappedSegments(of pid: pid_t) -> Int {
        guard let maps = try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8) else { return 0 }
        return maps.split(separator: "\n").filter { $0.contains("memfd:ringport=\(adapter)=") }.count
    }

    /// The miniport's descriptors once they settle (a statistics query holds one for a moment).
    func settledDescriptors(of pid: pid_t, toward target: Int?, seconds: Double) -> Int {
        let deadline = Self.now() + UInt64(seconds * 1e9)
        var count = Self.openDescriptors(pid)
        while Self.now() < deadline {
            if let target, count <= target { return count }
            usleep(20_000)
            let again = Self.openDescriptors(pid)
            if target == nil && again == count { return count }
            count = again
        }
        return count
    }

    // MARK: Kills

    /// SIGKILL one protocol with a binding, time the miniport's reclaim, and start another in its place.
    mutating func killProtocol() throws {
        // A protocol just started in place of a killed one may not have its binding yet.
        let wait = Self.now() + 10_000_000_000
        while !children.contains(where: { $0?.opened == true }) && Self.now() < wait { idle(milliseconds: 1) }
        let open = children.indices.filter { children[$0]?.opened == true }
        guard !open.isEmpty else {
            errors.append("no protocol had a binding to kill")
            return
        }
        let slot = open[next(open.count)]
        guard let before = statistics() else {
            errors.append("no statistics before protocol kill \(protocolKillsDone + 1)")
            return
        }
        let start = Self.now()
        let victim = children[slot]!.process
        kill(victim.pid, SIGKILL)  // reaped after: Process.waitUntilExit polls, it would add its own delay
        var reclaimed = false
        var polls = 0
        while Self.now() < start + 5_000_000_000 {
            polls += 1
            if let s = statistics(), s.bindingsReclaimed > before.bindingsReclaimed {
                reclaimMilliseconds.append(Double(Self.now() - start) / 1e6)
                reclaimed = true
                break
            }
            usleep(200)
        }
        log("protocol kill \(protocolKillsDone + 1): reclaimed after \(polls) statistics queries")
        if !reclaimed { errors.append("protocol kill \(protocolKillsDone + 1): binding not reclaimed in 5 s") }
        victim.kill9()
        pump()
        protocolKillsDone += 1
        try startChild(slot)
    }

    /// SIGKILL the miniport, time each survivor's notice, and start it again; the survivors reopen.
    mutating func killMiniport() throws {
        pump()
        let open = children.indices.filter { children[$0]?.opened == true }
        let start = Self.now()
        kill(miniport!.pid, SIGKILL)
        let deadline = start + 5_000_000_000
        var waiting = Set(open)
        while !waiting.isEmpty && Self.now() < deadline {
            pump()
            for slot in waiting {
                if let child = children[slot], let gone = child.goneAt, gone >= start {
                    deadMiniportMilliseconds.append(Double(gone - start) / 1e6)
                    waiting.remove(slot)
                } else if children[slot]?.process.process.isRunning != true {
                    waiting.remove(slot)
                }
            }
            usleep(200)
        }
        if !waiting.isEmpty {
            errors.append("miniport kill \(miniportKillsDone + 1): \(waiting.count) survivors never saw it go in 5 s")
        }
        miniportKillsDone += 1
        miniport!.kill9()  // reaped
        try startMiniport()
        if !waitForOpens(seconds: 15) { errors.append("protocols did not all reopen after miniport kill") }
    }

    // MARK: The run

    mutating func go() throws -> Bool {
        try directory.create()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        try startMiniport()
        let baselineDescriptors = settledDescriptors(of: miniport!.pid, toward: nil, seconds: 2)
        children = Array(repeating: nil, count: protocols)
        for slot in 0..<protocols { try startChild(slot) }
        guard waitForOpens(seconds: 20) else {
            for child in children { child?.process.kill9() }
            miniport?.kill9()
            throw ChaosFailure("the protocols did not open their bindings")
        }
        // The kills in a seeded order, the miniport's spread among the protocols'.
        var events = Array(repeating: false, count: protocolKills) + Array(repeating: true, count: miniportKills)
        for i in stride(from: events.count - 1, to: 0, by: -1) { events.swapAt(i, next(i + 1)) }
        let started = Self.now()
        let cap = UInt64(duration * 1e9)
        for isMiniport in events {
            if Self.now() - started > cap {
                log("duration cap reached")
                break
            }
            idle(milliseconds: 5 + next(40))  // traffic flows between kills
            if isMiniport { try killMiniport() } else { try killProtocol() }
            if (protocolKillsDone + miniportKillsDone) % 50 == 0 {
                log("\(protocolKillsDone) protocol kills, \(miniportKillsDone) miniport kills")
            }
        }
        idle(milliseconds: 100)
        // A protocol started in place of a killed one takes SIGTERM as a stop only once it has its binding.
        if !waitForOpens(seconds: 15) { errors.append("protocols did not all open before the end") }
        // The end: every survivor drains and closes; then the miniport must hold nothing.
        for child in children { if let child { kill(child.process.pid, SIGTERM) } }
        for slot in children.indices {
            guard let child = children[slot] else { continue }
            let status = child.process.wait(seconds: 30)
            pump()
            if status != 0 {
                errors.append(
                    "\(child.process.name) exited with \(status.map(String.init) ?? "a hang"): "
                        + "\(child.done ?? "no summary") \(child.process.standardError.suffix(400))")
            }
        }
        pump()
        var leakedFDs = 0
        var leakedPools = 0
        var leakedMappings = 0
        if let pid = miniport?.pid {
            let s = statistics()
            var settled = s
            let deadline = Self.now() + 5_000_000_000
            while let current = settled, current.bindings != 0 || current.packetsOutstanding != 0,
                Self.now() < deadline
            {
                usleep(10_000)
                settled = statistics()
            }
            if let settled {
                leakedPools = Int(settled.bindings + settled.packetsOutstanding)
                if settled.verificationErrors != 0 {
                    errors.append("verification_errors=\(settled.verificationErrors)")
                }
                if settled.bindingsViolated != 0 { errors.append("violations=\(settled.bindingsViolated)") }
            } else {
                errors.append("no statistics at the end")
            }
            let descriptors = settledDescriptors(of: pid, toward: baselineDescriptors, seconds: 5)
            leakedFDs = max(0, descriptors - baselineDescriptors)
            leakedMappings = mappedSegments(of: pid)
        }
        if let pid = miniport?.pid { kill(pid, SIGTERM) }
        if miniport?.wait(seconds: 10) != 0 { errors.append("ringportd did not exit cleanly on SIGTERM") }
        let leftFiles = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
        // Names left in /dev/shm, and segments the miniport still maps with no binding left.
        let leakedSegments = segmentNames().count + leakedMappings
        if !leftFiles.isEmpty { errors.append("left in the runtime directory: \(leftFiles)") }
        let seconds = Double(Self.now() - started) / 1e9
        print(
            "chaos protocol_kills=\(protocolKillsDone) miniport_kills=\(miniportKillsDone) lost=\(lost) "
                + "duplicated=\(duplicated) leaked_fds=\(leakedFDs) leaked_segments=\(leakedSegments) "
                + "reclaim_p50_ms=\(Self.format(Self.percentile(reclaimMilliseconds, 0.5))) "
                + "reclaim_p99_ms=\(Self.format(Self.percentile(reclaimMilliseconds, 0.99))) "
                + "dead_miniport_p99_ms=\(Self.format(Self.percentile(deadMiniportMilliseconds, 0.99))) "
                + "reclaim_max_ms=\(Self.format(reclaimMilliseconds.max() ?? 0)) "
                + "dead_miniport_max_ms=\(Self.format(deadMiniportMilliseconds.max() ?? 0)) "
                + "leaked_pool=\(leakedPools) leaked_sockets=\(leftFiles.count) errors=\(errors.count) "
                + "sessions=\(sessions) packets=\(packets) seconds=\(Self.format(seconds))"
        )
        for error in errors.prefix(20) { print("error: \(error)") }
        return lost == 0 && duplicated == 0 && leakedFDs == 0 && leakedSegments == 0 && leakedPools == 0
            && leftFiles.isEmpty && errors.isEmpty
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }

    static func format(_ value: Double) -> String { String(format: "%.1f", value) }
}

struct ChaosFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
