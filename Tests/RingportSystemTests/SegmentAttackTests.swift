import Foundation
import Glibc
import RingportCore
import SystemPackage
import TestSupport
import Testing
import _RingportShim

@testable import RingportSystem

/// A binding opened by hand over the control socket (as a hostile protocol would), keeping the raw
/// descriptor of its segment, which the library never exposes.
struct RawOpen: ~Copyable {
    let socket: ControlSocket
    let status: NDISStatus
    let descriptor: CInt

    static let small = BindingConfiguration(
        packetCount: 64, chunkCount: 64, transmitRingSize: 16, fragmentsPerPacket: 2, receiveRingSize: 16)

    init(adapter: String, directory: RuntimeDirectory, configuration: BindingConfiguration = small) throws {
        let connected = try ControlSocket.connect(path: directory.socketPath(adapter: adapter))
        try connected.send(
            .open(
                version: ControlMessage.version, adapter: adapter, requested: configuration, processID: getpid()))
        guard connected.isReadable(waitingMilliseconds: 10_000) else { throw SupportFailure("no answer to open") }
        guard case .message(.opened(let status, _, _), let fd) = try connected.receive() else {
            throw SupportFailure("not an open answer")
        }
        socket = connected
        self.status = status
        descriptor = fd
    }

    deinit { if descriptor >= 0 { close(descriptor) } }
}

/// A ringportd started through `prefix` (a namespace or cgroup wrapper): bounded start, always killed.
final class WrappedMiniport {
    let adapter = "t\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    let directory = RuntimeDirectory("/tmp/ringport-test-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
    let process: SpawnedProcess

    init(prefix: [String], arguments: [String] = []) throws {
        process = try SpawnedProcess(
            "ringportd",
            ["--adapter", adapter, "--dir", directory.path, "--driver", "null"] + arguments,
            prefix: prefix
        )
        let deadline = Date().addingTimeInterval(20)
        while !process.standardOutput.contains("is up") {
            guard process.process.isRunning, Date() < deadline else {
                process.stop()
                throw SupportFailure("ringportd did not come up: \(process.standardError)")
            }
            usleep(5000)
        }
    }

    var pid: Int32 { process.process.processIdentifier }

    deinit {
        process.stop()
        try? FileManager.default.removeItem(atPath: directory.path)
    }

    /// Waits (bounded) until `condition` holds of the statistics (the data thread counts a binding late).
    func waitForStatistics(_ condition: (AdapterStatistics) -> Bool) throws -> AdapterStatistics {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let statistics = try statistics()
            if condition(statistics) || Date() > deadline { return statistics }
            usleep(10_000)
        }
    }

    func statistics() throws -> AdapterStatistics {
        let socket = try ControlSocket.connect(path: directory.socketPath(adapter: adapter))
        try socket.send(.queryStatistics)
        guard socket.isReadable(waitingMilliseconds: 5000) else { throw SupportFailure("no statistics") }
        guard case .message(.statistics(let statistics), _) = try socket.receive() else {
            throw SupportFailure("not statistics")
        }
        return statistics
    }
}

/// Exit status of a shell command (for probes: may this test mount, make a cgroup?); -1 if it does not
/// end within 30 s.
func shell(_ command: String) -> Int32 {
    (try? SpawnedProcess.command("/bin/sh", ["-c", command]))?.wait(seconds: 30) ?? -1
}

@Suite(.serialized) struct SegmentAttackTests {
    /// The miniport's segment cannot be resized by the protocol it was handed to: the truncate that killed
    /// the miniport with SIGBUS is EPERM, and the miniport goes on serving honest traffic.
    @Test func aProtocolThatTruncatesItsSegmentCannotKillTheMiniport() throws {
        let miniport = try MiniportProcess()
        let hostile = try RawOpen(adapter: miniport.adapter, directory: miniport.directory)
        let (status, fd) = (hostile.status, hostile.descriptor)
        #expect(status == .success && fd >= 0)
        #expect(ftruncate(fd, 1 << 30) == -1 && errno == EPERM)
        #expect(ftruncate(fd, 4096) == -1 && errno == EPERM)
        #expect(ftruncate(fd, 0) == -1 && errno == EPERM)  // last: had it worked, every page is gone
        // The data thread walks every binding, the truncated one too, while it serves an honest sender.
        let honest = try miniport.protocolProcess(["send", "--count", "2000"])
        #expect(honest.wait(seconds: 20) == 0, "\(honest.standardError)")
        #expect(miniport.process.process.isRunning, "the miniport died: \(miniport.process.standardError)")
        let statistics = try miniport.waitForStatistics { $0.bindings == 1 && $0.packetsSent >= 2000 }
        #expect(statistics.bindings == 1 && statistics.packetsSent >= 2000)
        withExtendedLifetime(hostile) {}  // the hostile binding stayed open throughout
    }

    /// Hole punching is the one size-keeping change a seal cannot stop (F_SEAL_WRITE would, but the
    /// protocol must write). On shmem a punched page faults back in zeroed: no SIGBUS, the miniport serves on.
    @Test func aProtocolThatPunchesHolesInItsSegmentCannotKillTheMiniport() throws {
        let miniport = try MiniportProcess()
        let hostile = try RawOpen(adapter: miniport.adapter, directory: miniport.directory)
        let (status, fd) = (hostile.status, hostile.descriptor)
        #expect(status == .success)
        var info = stat()
        #expect(fstat(fd, &info) == 0)
        let size = Int64(info.st_size)
        let honest = try miniport.protocolProcess(["send", "--count", "20000"])
        // Everything after the header, again and again while the miniport reads the rings.
        for _ in 0..<200 {
            #expect(rp_memfd_punch_hole(fd, 4096, size - 4096) == 0)
            usleep(500)
        }
        #expect(honest.wait(seconds: 20) == 0, "\(honest.standardError)")
        #expect(miniport.process.process.isRunning, "the miniport died: \(miniport.process.standardError)")
        #expect(try miniport.statistics().packetsSent >= 20000)
        withExtendedLifetime(hostile) {}  // the hostile binding stayed open throughout
    }

    /// /dev/shm (a 2 MiB tmpfs in the miniport's own mount namespace, filled to the last block) no longer
    /// matters: segments are not there. Under the shm_open segments this was SIGBUS at the first write.
    @Test(
        .enabled(
            if: shell("unshare -m --propagation private sh -c 'mount -t tmpfs -o size=1m tmpfs /dev/shm'") == 0,
            "needs unshare -m and mount (root, or CAP_SYS_ADMIN)")
    )
    func honestTrafficCompletesWithAFullDevShm() throws {
        let fill =
            "mount -t tmpfs -o size=2m tmpfs /dev/shm && { dd if=/dev/zero of=/dev/shm/fill bs=64k 2>/dev/null; "
            + "true; } && exec \"$0\" \"$@\""
        let miniport = try WrappedMiniport(prefix: [
            "/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", fill,
        ])
        var shm = statvfs()
        #expect(statvfs("/proc/\(miniport.pid)/root/dev/shm", &shm) == 0)
        #expect(shm.f_bavail == 0 && shm.f_blocks * shm.f_frsize <= 2 << 20, "\(shm.f_bavail) of \(shm.f_blocks)")
        // The protocol shares the miniport's mount namespace, full /dev/shm and all.
        let inside = ["/usr/bin/nsenter", "-t", "\(miniport.pid)", "-m", "--"]
        let stress = try SpawnedProcess(
            "ringport",
            ["stress", "--packets", "20000", "--adapter", miniport.adapter, "--dir", miniport.directory.path],
            prefix: inside
        )
        #expect(stress.wait(seconds: 30) == 0, "\(stress.standardOutput) \(stress.standardError)")
        let send = try SpawnedProcess(
            "ringport",
            ["send", "--count", "100", "--adapter", miniport.adapter, "--dir", miniport.directory.path],
            prefix: inside
        )
        #expect(send.wait(seconds: 20) == 0, "\(send.standardError)")
        #expect(miniport.process.process.isRunning, "the miniport died: \(miniport.process.standardError)")
        #expect(try miniport.statistics().packetsSent >= 20100)
    }

    /// Memory the kernel will not give (a memory cgroup's limit on the miniport) is a RESOURCES answer to the
    /// open, because every page is reserved at creation, never a SIGBUS or an OOM kill at a later write.
    @Test(.enabled(if: MemoryCgroup.available, "needs a writable cgroup v1 or v2 memory controller"))
    func anOpenBeyondTheMiniportsMemoryLimitIsResourcesAndTheMiniportLives() throws {
        let cgroup = try MemoryCgroup()
        defer { withExtendedLifetime(cgroup) {} }  // removed only after the miniport is stopped
        let miniport = try WrappedMiniport(prefix: ["/bin/sh", "-c", cgroup.enterAndExec])
        defer { miniport.process.stop() }
        // v1 has the cgroup's OOM killer off; v2 has none to turn off, so the miniport is made unkillable by
        // it: either way a charge that cannot be made fails (ENOMEM) instead of killing the miniport.
        let unkillable =
            (try? "-1000".write(toFile: "/proc/\(miniport.pid)/oom_score_adj", atomically: false, encoding: .utf8))
            != nil
        guard unkillable || cgroup.version == 1 else {
            print("skipped: cgroup v2 and oom_score_adj cannot be lowered here")
            return
        }
        try cgroup.limit(toUsagePlus: 4 << 20)
        // 16 MiB of data area: four times what is left.
        let big = BindingConfiguration(
            packetCount: 256, chunkCount: 8192, transmitRingSize: 64, fragmentsPerPacket: 4, receiveRingSize: 64)
        #expect(big.layout.totalSize > 16 << 20)
        let refused = try RawOpen(adapter: miniport.adapter, directory: miniport.directory, configuration: big)
        let (refusedStatus, refusedFD) = (refused.status, refused.descriptor)
        #expect(refusedStatus == .resources && refusedFD < 0)
        #expect(miniport.process.process.isRunning, "the miniport died: \(miniport.process.standardError)")
        // A binding that fits still opens, and the miniport serves it.
        let small = try RawOpen(adapter: miniport.adapter, directory: miniport.directory)
        let smallStatus = small.status
        #expect(smallStatus == .success)
        #expect(try miniport.waitForStatistics { $0.bindings == 1 }.bindings == 1)
        withExtendedLifetime(small) {}
    }
}

/// A child of this process's memory cgroup (v2 `memory.max`, or v1 `memory.limit_in_bytes` with the OOM
/// killer off), removed when done.
final class MemoryCgroup {
    let path: String
    let version: Int

    static var parent: (path: String, version: Int)? {
        guard let lines = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else { return nil }
        for line in lines.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if fields[1] == "memory" { return ("/sys/fs/cgroup/memory" + fields[2], 1) }
            if fields[0] == "0", fields[1].isEmpty,
                FileManager.default.fileExists(atPath: "/sys/fs/cgroup\(fields[2])/memory.max")
                    || FileManager.default.fileExists(atPath: "/sys/fs/cgroup\(fields[2])/cgroup.subtree_control")
                        && (try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.controllers", encoding: .utf8))?
                            .contains("memory") == true
            {
                return ("/sys/fs/cgroup" + fields[2], 2)
            }
        }
        return nil
    }

    static var available: Bool {
        guard getuid() == 0, let parent, access(parent.path, W_OK) == 0 else { return false }
        return (try? MemoryCgroup()) != nil
    }

    init() throws {
        guard let parent = Self.parent else { throw SupportFailure("no memory cgroup") }
        path = parent.path + "/ringport-test-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        version = parent.version
        guard mkdir(path, 0o755) == 0 else { throw SystemError.fromErrno("mkdir(\(path))") }
        let limitFile = version == 1 ? "memory.limit_in_bytes" : "memory.max"
        guard FileManager.default.fileExists(atPath: path + "/" + limitFile) else {
            rmdir(path)
            throw SupportFailure("no memory controller in \(path)")
        }
        if version == 1 { try write("memory.oom_control", "1") }
    }

    /// A `sh -c` script that moves the shell into the cgroup and execs `$0 "$@"`.
    var enterAndExec: String { "echo $$ > \(path)/cgroup.procs && exec \"$0\" \"$@\"" }

    func write(_ file: String, _ value: String) throws {
        try value.write(toFile: path + "/" + file, atomically: false, encoding: .utf8)
    }

    func limit(toUsagePlus bytes: Int) throws {
        let usageFile = version == 1 ? "memory.usage_in_bytes" : "memory.current"
        let text = try String(contentsOfFile: path + "/" + usageFile, encoding: .utf8)
        guard let usage = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SupportFailure("usage \(text)")
        }
        try write(version == 1 ? "memory.limit_in_bytes" : "memory.max", "\(usage + bytes)")
    }

    deinit {
        // The miniport is gone by now (its owner stopped it); rmdir retries while the kernel lets go.
        for _ in 0..<200 where rmdir(path) != 0 && errno == EBUSY { usleep(10_000) }
    }
}
