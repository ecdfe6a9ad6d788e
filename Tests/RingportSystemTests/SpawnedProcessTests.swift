import Foundation
import Testing

@testable import TestSupport

/// Tests/Support's spawning: no process outlives the test run that started it, whatever kills the run, and
/// none dies while the run lives.
@Suite struct SpawnedProcessTests {
    /// Whether `pid` is a live process (not gone, not a zombie).
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: end)...].trimmingCharacters(in: .whitespaces).first != "Z"
    }

    /// A test process (spawn-probe, linking Tests/Support as the test targets do) starts a ringportd, a
    /// `ringport recv`, and miniports behind a forking prefix and (as root) a credential-changing one, and is
    /// killed with SIGKILL, which runs no cleanup at all: every one of them goes with it.
    @Test func aKilledTestRunLeavesNoProcessBehind() throws {
        let probe = try SpawnedProcess("spawn-probe", ["orphans"])
        defer { probe.stop() }
        #expect(probe.waitUntil(seconds: 60) { $0.standardOutput.contains("pids") || !$0.isRunning })
        let lines = probe.standardOutput.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let directories = lines.first { $0.first == "dirs" }?.dropFirst() ?? []
        let pids = (lines.first { $0.first == "pids" }?.dropFirst() ?? []).compactMap { Int32($0) }
        defer { for directory in directories { try? FileManager.default.removeItem(atPath: directory) } }
        guard pids.count >= 3, !pids.contains(0) else {
            Issue.record("no pids from the probe: \(probe.standardOutput) \(probe.standardError)")
            return
        }
        #expect(pids.allSatisfy(Self.isAlive))
        probe.signal(SIGKILL)
        #expect(probe.wait(seconds: 10) == SIGKILL)
        let deadline = Date().addingTimeInterval(10)
        while pids.contains(where: Self.isAlive) && Date() < deadline { usleep(10_000) }
        let survivors = pids.filter(Self.isAlive)
        #expect(survivors.isEmpty, "\(survivors) of \(pids) outlived the killed test process")
        for pid in survivors { kill(pid, SIGKILL) }  // not to leak them when this fails
    }

    /// The death signal follows the thread that spawned: processes started from a thread that ends, or from
    /// a pool's task whose thread may end, still live (swift-subprocess spawns from one thread of its own).
    @Test func processesOutliveTheThreadsThatStartedThem() throws {
        let probe = try SpawnedProcess("spawn-probe", ["thread-exit"])
        defer { probe.stop() }
        #expect(probe.wait(seconds: 60) == 0, "\(probe.standardOutput) \(probe.standardError)")
    }

    /// The output of a process and its end reach a test whose threads (and every other thread of the
    /// cooperative pool) are blocked: the supervision runs on a thread of its own.
    @Test func outputAndExitArriveWhileThePoolIsBlocked() throws {
        let release = DispatchSemaphore(value: 0)
        let blocked = DispatchSemaphore(value: 0)
        let width = ProcessInfo.processInfo.activeProcessorCount
        for _ in 0..<width {
            Task.detached {
                blocked.signal()
                release.wait()
            }
        }
        defer { for _ in 0..<width { release.signal() } }
        // Whether or not every pool thread took a blocker, the process must be seen to its end.
        for _ in 0..<width { _ = blocked.wait(timeout: .now() + 2) }
        let process = try SpawnedProcess("ringport", ["--help"])
        #expect(process.wait(seconds: 30) == 0)
        #expect(process.standardOutput.contains("USAGE"))
    }

    /// Output written while the test waits, the exit status, a signal's number and standard input.
    @Test func outputStatusAndInput() throws {
        let echo = try SpawnedProcess.command(
            "/bin/sh", ["-c", "read line; echo \"$line\"; echo err >&2; exit 3"], standardInput: "hello\n")
        #expect(echo.wait(seconds: 20) == 3)
        #expect(echo.standardOutput == "hello\n" && echo.standardError == "err\n")
        #expect(echo.terminationReason == .exit && !echo.isRunning)
        let sleeper = try SpawnedProcess.command("/bin/sleep", ["60"])
        #expect(sleeper.isRunning)
        sleeper.signal(SIGTERM)
        #expect(sleeper.wait(seconds: 20) == SIGTERM)
        #expect(sleeper.terminationReason == .uncaughtSignal)
        let slow = try SpawnedProcess.command("/bin/sleep", ["60"])
        #expect(slow.wait(seconds: 0.2) == nil)  // did not end in time: killed and reaped
        #expect(!slow.isRunning && slow.terminationStatus == SIGKILL)
    }
}
