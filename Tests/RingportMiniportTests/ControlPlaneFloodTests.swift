import Foundation
import Glibc
import Ringport
import RingportCore
import RingportSystem
import Synchronization
import TestSupport
import Testing

/// No client of the control socket can stall the control plane, make it leak, spin, or
/// grow its log without bound; every honest open, `stat`, reclaim and SIGTERM still goes through.
@Suite(.serialized) struct ControlPlaneFloodTests {
    @Test func everyDescriptorAClientPassesIsClosed() throws {
        let miniport = try MiniportProcess()
        let pid = miniport.process.process.processIdentifier
        _ = try FloodSupport.honestOpen(miniport)
        let baseline = FloodSupport.descriptorCount(pid)
        let files = (0..<6).compactMap { _ in FileHandle(forReadingAtPath: "/dev/null") }
        let fds = files.map(\.fileDescriptor)
        let query = ControlMessage.queryStatistics.encoded()
        var messages = 0
        var unanswered = 0
        for _ in 0..<160 {
            // Answered queries with descriptors in every layout: one cmsg of many, many of one, a single one.
            for (count, perMessage) in [(4, 2), (3, 1), (6, 6), (1, 1)] {
                let socket = try FloodSupport.connect(miniport)
                try socket.sendRaw(query, passing: Array(fds.prefix(count)), perControlMessage: perMessage)
                messages += 1
                guard socket.isReadable(waitingMilliseconds: 2000),
                    case .message(.statistics, let fd) = try socket.receive()
                else {
                    unanswered += 1
                    continue
                }
                #expect(fd < 0)
            }
            // A malformed message with descriptors, and an empty one (the miniport sees a close).
            let socket = try FloodSupport.connect(miniport)
            try socket.sendRaw([1, 2, 3], passing: Array(fds.prefix(5)), perControlMessage: 2)
            let other = try FloodSupport.connect(miniport)
            try other.sendRaw([], passing: Array(fds.prefix(3)), perControlMessage: 3)
            messages += 2
        }
        #expect(unanswered == 0, "\(unanswered) queries that carried descriptors went unanswered")
        #expect(messages >= 900)
        let settled = FloodSupport.waitUntil(seconds: 5) { FloodSupport.descriptorCount(pid) <= baseline }
        #expect(settled, "the miniport holds \(FloodSupport.descriptorCount(pid)) descriptors, \(baseline) before")
        #expect(try FloodSupport.honestOpen(miniport) < 1)
    }

    @Test func honestOpensStayFastBeside1000IdleConnectionsAndFloodingClients() throws {
        let miniport = try MiniportProcess()
        let pid = miniport.process.process.processIdentifier
        _ = try FloodSupport.honestOpen(miniport)
        let baseline = FloodSupport.descriptorCount(pid)
        var idle: [HeldSocket] = []
        for _ in 0..<1000 { idle.append(HeldSocket(try FloodSupport.connect(miniport))) }
        let floods = Floods(miniport, [.neverReads, .reads, .descriptors])
        defer { floods.stop() }
        var times: [Double] = []
        for _ in 0..<60 {
            do { times.append(try FloodSupport.honestOpen(miniport)) } catch {
                Issue.record("an honest open failed beside the flood: \(error)")
                return
            }
        }
        floods.stop()
        times.sort()
        let p99 = times[min(times.count - 1, times.count * 99 / 100)]
        print(
            "honest opens beside 1000 idle connections and 3 floods: p50 \(times[times.count / 2] * 1000) ms, p99 \(p99 * 1000) ms, max \(times.last! * 1000) ms; floods: \(floods.summary)"
        )
        #expect(times.last! < 1, "slowest honest open \(times.last!) s")
        #expect(floods.dropped > 0, "the client that never reads was never dropped")
        idle.removeAll()
        let settled = FloodSupport.waitUntil(seconds: 5) { FloodSupport.descriptorCount(pid) <= baseline }
        #expect(settled, "the miniport holds \(FloodSupport.descriptorCount(pid)) descriptors, \(baseline) before")
    }

    @Test func aClientThatNeverReadsIsDroppedAndStallsNeitherStatNorReclaimNorSigterm() throws {
        let miniport = try MiniportProcess()
        // Queries as fast as the socket takes them, never a read: the miniport must let go of this client.
        let client = try FloodSupport.connect(miniport)
        try client.setNonBlocking()
        let droppedFlooder = FloodSupport.floodUntilDropped(client, seconds: 5)
        #expect(droppedFlooder, "the client that never reads was never dropped")
        let floods = Floods(miniport, [.neverReads, .neverReads, .reads])
        defer { floods.stop() }
        let statistics = try miniport.statistics()
        #expect(statistics.connectionsDropped >= 1)
        #expect(try FloodSupport.honestOpen(miniport) < 1)
        let stat = try miniport.protocolProcess(["stat"])
        #expect(stat.wait(seconds: 5) == 0, "ringport stat: \(stat.standardError)")
        // A protocol killed meanwhile is reclaimed at once.
        let holder = try miniport.protocolProcess(["recv", "--duration", "30"])
        defer { holder.stop() }
        let before = try miniport.waitForStatistics(seconds: 5) { $0.bindings >= 1 }
        #expect(before.bindings >= 1)
        kill(holder.process.processIdentifier, SIGKILL)
        let killed = Date()
        let after = try miniport.waitForStatistics(seconds: 5) { $0.bindingsReclaimed > before.bindingsReclaimed }
        let reclaim = Date().timeIntervalSince(killed)
        #expect(after.bindingsReclaimed == before.bindingsReclaimed + 1)
        #expect(reclaim < 1, "reclaimed after \(reclaim) s")
        // SIGTERM with the floods still on.
        let terminated = Date()
        let status = miniport.terminate(seconds: 5)
        let exit = Date().timeIntervalSince(terminated)
        floods.stop()
        print(
            "never-reading client: reclaim \(reclaim * 1000) ms, SIGTERM to exit \(exit * 1000) ms; floods: \(floods.summary)"
        )
        #expect(status == 0)
        #expect(exit < 1, "SIGTERM took \(exit) s")
    }

    @Test func outOfDescriptorsTheMiniportBacksOffInsteadOfSpinning() throws {
        // A connection cap above the descriptor limit, so accept itself meets EMFILE.
        let miniport = try LimitedMiniport(nofile: 64, arguments: ["--max-connections", "4096"])
        defer { miniport.stop() }
        let pid = miniport.process.process.processIdentifier
        var held: [HeldSocket] = []
        for _ in 0..<150 {
            guard let socket = try? ControlSocket.connect(path: miniport.socketPath, timeout: 0.2) else { break }
            held.append(HeldSocket(socket))
        }
        #expect(held.count > 64)
        usleep(300_000)
        let cpuBefore = FloodSupport.cpuSeconds(pid)
        let logBefore = miniport.process.standardError.utf8.count
        usleep(2_000_000)
        let cpu = FloodSupport.cpuSeconds(pid) - cpuBefore
        let log = miniport.process.standardError.utf8.count
        print("at EMFILE: \(cpu) s of CPU in 2 s, log \(logBefore) -> \(log) bytes")
        #expect(cpu < 0.3, "the miniport spent \(cpu) s of CPU in 2 s at its descriptor limit")
        #expect(log < 32_768, "the log grew to \(log) bytes")
        let stderr = miniport.process.standardError
        #expect(stderr.contains("Too many open files"), "the miniport never met EMFILE: \(stderr)")
        held.removeAll()
        // Once the clients are gone, honest opens work again.
        var opened = false
        let deadline = Date().addingTimeInterval(5)
        while !opened && Date() < deadline {
            opened = (try? FloodSupport.honestOpen(miniport.adapter, miniport.directory)) != nil
            if !opened { usleep(50_000) }
        }
        #expect(opened)
        for _ in 0..<5 { #expect(try FloodSupport.honestOpen(miniport.adapter, miniport.directory) < 1) }
        #expect(miniport.terminate() == 0)
    }

    @Test func connectionsBeyondTheCapAreClosedAtOnceAndCounted() throws {
        let miniport = try MiniportProcess(arguments: ["--max-connections", "16"])
        var held: [HeldSocket] = []
        for _ in 0..<40 { held.append(HeldSocket(try FloodSupport.connect(miniport))) }
        // The 24 beyond the cap see their connection closed.
        let closed = FloodSupport.waitUntil(seconds: 5) {
            held.filter { $0.socket.isReadable(waitingMilliseconds: 0) }.count >= 24
        }
        #expect(closed)
        held.removeAll()
        // Asked until the miniport has seen the held ones go (until then this connection is over the cap too).
        var refused: UInt64 = 0
        _ = FloodSupport.waitUntil(seconds: 5) {
            refused = (try? miniport.statistics())?.connectionsRefused ?? 0
            return refused >= 24
        }
        #expect(refused >= 24)
        #expect(try FloodSupport.honestOpen(miniport) < 1)
    }

    @Test func adapterOpenGivesUpOnAWedgedMiniportWithinItsTimeout() throws {
        let directory = "/tmp/ringport-test-wedged-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let runtime = RuntimeDirectory(directory)
        let path = runtime.socketPath(adapter: "wedged0")
        // A listener that never accepts, its backlog full: a blocking connect would wait for good.
        let listener = Mutex<ControlSocket?>(try ControlSocket.listen(path: path, mode: 0o600, backlog: 0))
        var queued: [HeldSocket] = []
        while queued.count < 8, let socket = try? ControlSocket.connect(path: path, timeout: 0.1) {
            queued.append(HeldSocket(socket))
        }
        #expect(queued.count < 8, "the backlog never filled")
        let outcome = Mutex<String?>(nil)
        let start = Date()
        let thread = Thread {
            let result: String
            do {
                let adapter = try Adapter.open("wedged0", directory: runtime, timeoutSeconds: 0.5)
                try? adapter.close()
                result = "opened"
            } catch { result = "\(error)" }
            outcome.withLock { $0 = result }
        }
        thread.start()
        let returned = FloodSupport.waitUntil(seconds: 3) { outcome.withLock { $0 } != nil }
        let elapsed = Date().timeIntervalSince(start)
        // Unwedge a blocked connect (closing the listener refuses it), so no thread outlives the test.
        listener.withLock { $0 = nil }
        _ = FloodSupport.waitUntil(seconds: 5) { thread.isFinished }
        #expect(returned, "Adapter.open was still in connect after 3 s")
        #expect(elapsed < 1.5, "Adapter.open took \(elapsed) s with a 0.5 s timeout")
        #expect(outcome.withLock { $0 } != "opened")
        print("Adapter.open against a full backlog: \(outcome.withLock { $0 } ?? "-") after \(elapsed) s")
    }
}

/// Caps on bindings and segment memory per process, per user and in all; the peer is the
/// one the kernel names.
@Suite(.serialized) struct ControlPlaneLimitTests {
    @Test func aProcessOverItsBindingCapGetsResourcesAndAnotherProcessStillOpens() throws {
        let miniport = try MiniportProcess(arguments: ["--max-bindings-per-process", "2"])
        let first = try Adapter.open(miniport.adapter, directory: miniport.directory)
        let second = try Adapter.open(miniport.adapter, directory: miniport.directory)
        #expect(FloodSupport.isResources { try Adapter.open(miniport.adapter, directory: miniport.directory) })
        // Claiming another process in the open message changes nothing: SO_PEERCRED names the peer.
        #expect(try FloodSupport.rawOpen(miniport, claimingProcess: getpid() + 1) == .resources)
        let other = try miniport.protocolProcess(["send", "--count", "1"])
        #expect(other.wait(seconds: 10) == 0, "a second process could not open: \(other.standardError)")
        let statistics = try miniport.statistics()
        #expect(statistics.opensOverLimit == 2)
        // Closing gives the budget back.
        try first.close()
        let third = try Adapter.open(miniport.adapter, directory: miniport.directory)
        try second.close()
        try third.close()
    }

    @Test func aUserOverItsBindingCapGetsResourcesUntilOneCloses() throws {
        let miniport = try MiniportProcess(arguments: ["--max-bindings-per-user", "2"])
        let first = try Adapter.open(miniport.adapter, directory: miniport.directory)
        let second = try Adapter.open(miniport.adapter, directory: miniport.directory)
        let refused = try miniport.protocolProcess(["send", "--count", "1"])
        #expect(refused.wait(seconds: 10) != 0, "a third binding of the same user was granted")
        #expect(refused.standardError.lowercased().contains("resources"), "\(refused.standardError)")
        try first.close()
        let admitted = try miniport.protocolProcess(["send", "--count", "1"])
        #expect(admitted.wait(seconds: 10) == 0, "\(admitted.standardError)")
        try second.close()
    }

    @Test func segmentMemoryIsCappedPerUserAndInAllAndComesBackWhenAProtocolDies() throws {
        let size = BindingConfiguration().layout.totalSize
        let cap = String(size * 2 + size / 2)
        for flag in ["--max-memory-per-user", "--max-memory"] {
            let miniport = try MiniportProcess(arguments: [flag, cap])
            let first = try Adapter.open(miniport.adapter, directory: miniport.directory)
            // A second binding held by a process that then dies.
            let holder = try miniport.protocolProcess(["recv", "--duration", "30"])
            defer { holder.stop() }
            _ = try miniport.waitForStatistics(seconds: 5) { $0.bindings == 2 }
            #expect(
                FloodSupport.isResources { try Adapter.open(miniport.adapter, directory: miniport.directory) },
                "\(flag): a third binding of \(size) bytes fit under \(cap)")
            kill(holder.process.processIdentifier, SIGKILL)
            _ = try miniport.waitForStatistics(seconds: 5) { $0.bindingsReclaimed == 1 }
            let again = try Adapter.open(miniport.adapter, directory: miniport.directory)
            #expect(try miniport.statistics().opensOverLimit == 1)
            try again.close()
            try first.close()
        }
    }

    @Test func ringportdRefusesLimitsOutOfRange() throws {
        for arguments in [
            ["--max-bindings-per-process", "0"], ["--max-bindings-per-user", "100000"],
            ["--max-memory-per-user", "1K"], ["--max-memory", "9999G"], ["--max-connections", "2"],
            ["--max-memory", "lots"],
        ] {
            let process = try SpawnedProcess("ringportd", ["--dir", "/tmp/ringport-test-never"] + arguments)
            #expect(process.wait(seconds: 10) == 64, "\(arguments): \(process.standardError)")
        }
    }
}

/// A control socket kept open by a test (an array cannot hold a non-copyable socket).
final class HeldSocket {
    let socket: ControlSocket
    init(_ socket: consuming ControlSocket) { self.socket = socket }
}

enum FloodSupport {
    static func connect(_ miniport: MiniportProcess) throws -> ControlSocket {
        try ControlSocket.connect(path: miniport.directory.socketPath(adapter: miniport.adapter), timeout: 2)
    }

    /// Opens and closes a binding; returns the seconds the open took.
    static func honestOpen(_ miniport: MiniportProcess) throws -> Double {
        try honestOpen(miniport.adapter, miniport.directory)
    }

    static func honestOpen(_ adapter: String, _ directory: RuntimeDirectory) throws -> Double {
        let start = Date()
        let binding = try Adapter.open(adapter, directory: directory, timeoutSeconds: 2)
        let opened = Date().timeIntervalSince(start)
        try binding.close(timeoutSeconds: 2)
        return opened
    }

    static func isResources(_ open: () throws -> Adapter) -> Bool {
        do {
            let adapter = try open()
            try? adapter.close()
            return false
        } catch let error as AdapterError {
            if case .resources = error { return true }
            return false
        } catch { return false }
    }

    /// An open over a raw connection that claims `claimingProcess`; the status of the answer.
    static func rawOpen(_ miniport: MiniportProcess, claimingProcess: Int32) throws -> NDISStatus? {
        let socket = try connect(miniport)
        try socket.send(
            .open(
                version: ControlMessage.version, adapter: miniport.adapter, requested: BindingConfiguration(),
                processID: claimingProcess))
        guard socket.isReadable(waitingMilliseconds: 2000) else { return nil }
        guard case .message(.opened(let status, _, _), let fd) = try socket.receive() else { return nil }
        if fd >= 0 { close(fd) }
        return status
    }

    /// Sends queries as fast as the socket takes them, never reading; true once the miniport hangs up.
    static func floodUntilDropped(_ socket: borrowing ControlSocket, seconds: Double) -> Bool {
        let query = ControlMessage.queryStatistics.encoded()
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            switch socket.trySend(query) {
            case .sent: continue
            case .wouldBlock: usleep(500)
            case .failed: return true
            }
        }
        return false
    }

    static func descriptorCount(_ pid: Int32) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    }

    /// User plus system CPU time of `pid`, from /proc/PID/stat.
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > deadline { return false }
            usleep(10_000)
        }
        return true
    }
}

/// Hostile clients on threads of the test: each reconnects when the miniport drops it.
final class Floods: @unchecked Sendable {
    enum Kind { case neverReads, reads, descriptors }
    let stopping = Atomic<Bool>(false)
    let droppedCount = Atomic<Int>(0)
    let messages = Atomic<Int>(0)
    var threads: [Thread] = []

    init(_ miniport: MiniportProcess, _ kinds: [Kind]) {
        let path = miniport.directory.socketPath(adapter: miniport.adapter)
        for kind in kinds {
            let thread = Thread { [self] in run(kind, path) }
            threads.append(thread)
            thread.start()
        }
    }

    var dropped: Int { droppedCount.load(ordering: .relaxed) }
    var summary: String { "\(messages.load(ordering: .relaxed)) messages, \(dropped) clients dropped" }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        let deadline = Date().addingTimeInterval(10)
        while threads.contains(where: { !$0.isFinished }) && Date() < deadline { usleep(1000) }
    }

    func run(_ kind: Kind, _ path: String) {
        let query = ControlMessage.queryStatistics.encoded()
        let junk = FileHandle(forReadingAtPath: "/dev/null")
        let fds = Array(repeating: junk?.fileDescriptor ?? 0, count: 8)
        while !stopping.load(ordering: .relaxed) {
            guard let socket = try? ControlSocket.connect(path: path, timeout: 1) else {
                usleep(1000)
                continue
            }
            switch kind {
            case .neverReads:
                try? socket.setNonBlocking()
                var sent = 0
                while !stopping.load(ordering: .relaxed) {
                    let result = socket.trySend(query)
                    if result == .sent {
                        sent += 1
                    } else if result == .wouldBlock {
                        usleep(200)
                    } else {
                        droppedCount.add(1, ordering: .relaxed)
                        break
                    }
                }
                messages.add(sent, ordering: .relaxed)
            case .reads:
                for _ in 0..<200 where !stopping.load(ordering: .relaxed) {
                    guard (try? socket.send(.queryStatistics)) != nil, socket.isReadable(waitingMilliseconds: 1000),
                        (try? socket.receive()) != nil
                    else { break }
                    messages.add(1, ordering: .relaxed)
                }
            case .descriptors:
                for _ in 0..<50 where !stopping.load(ordering: .relaxed) {
                    guard (try? socket.sendRaw(query, passing: fds, perControlMessage: 3)) != nil,
                        socket.isReadable(waitingMilliseconds: 1000), (try? socket.receive()) != nil
                    else { break }
                    messages.add(1, ordering: .relaxed)
                }
            }
        }
        _ = junk
    }
}

/// A ringportd under a low descriptor limit (prlimit), which MiniportProcess cannot start.
final class LimitedMiniport {
    let adapter = "tl\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    let directory: RuntimeDirectory
    let process: SpawnedProcess
    var socketPath: String { directory.socketPath(adapter: adapter) }

    init(nofile: Int, arguments: [String]) throws {
        directory = RuntimeDirectory("/tmp/ringport-test-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
        process = try SpawnedProcess(
            "ringportd",
            ["--adapter", adapter, "--dir", directory.path] + arguments,
            prefix: ["/usr/bin/prlimit", "--nofile=\(nofile):\(nofile)", "--"]
        )
        let up = FloodSupport.waitUntil(seconds: 20) { [process] in
            process.standardOutput.contains("is up") || !process.process.isRunning
        }
        guard up, process.process.isRunning else {
            process.stop()
            throw SupportFailure("ringportd did not come up: \(process.standardError)")
        }
    }

    func terminate() -> Int32? {
        kill(process.process.processIdentifier, SIGTERM)
        return process.wait(seconds: 10)
    }

    func stop() {
        process.stop()
        try? FileManager.default.removeItem(atPath: directory.path)
    }

    deinit { stop() }
}
