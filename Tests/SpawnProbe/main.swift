// spawn-probe MODE: a stand-in for a test process, for the tests of Tests/Support's spawning.
//   orphans      starts a ringportd, a `ringport recv` on it and miniports behind prefixes, prints
//                `dirs DIRECTORY...` and `pids PID...`, and waits to be killed (60 s at most)
//   thread-exit  starts a ringportd from a thread that then ends and one from a pool task, waits for idle
//                pool threads to go too, and exits 0 if both miniports still answer (1 if not)
import Foundation
import TestSupport

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

switch CommandLine.arguments.dropFirst().first {
case "orphans":
    let miniport = try MiniportProcess()
    let receiver = try miniport.protocolProcess(["recv", "--duration", "60"])
    var pids = [miniport.process.processIdentifier, receiver.processIdentifier]
    var directories = [miniport.directory.path]
    // More miniports behind prefixes that defeat a guard armed only at the start: one forks (a process in
    // between; it prints its child's pid), one changes credentials (which clears the death signal).
    var prefixes = [["/bin/sh", "-c", "\"$@\" & echo $!; wait", "sh"]]
    if getuid() == 0 {
        prefixes.append(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"])
    }
    var held: [SpawnedProcess] = []
    for (i, prefix) in prefixes.enumerated() {
        let directory = "/tmp/ringport-test-probe-\(getpid())-\(i)"
        let process = try SpawnedProcess(
            "ringportd", ["--adapter", "probe\(i)", "--dir", directory], prefix: prefix)
        _ = process.waitUntil(seconds: 20) { $0.standardOutput.contains("is up") || !$0.isRunning }
        guard process.standardOutput.contains("is up") else {
            say("a miniport behind \(prefix[0]) did not come up: \(process.standardError)")
            exit(2)
        }
        let printed = process.standardOutput.split(separator: "\n").first.flatMap { Int32($0) }
        pids.append(i == 0 ? printed ?? 0 : process.processIdentifier)
        directories.append(directory)
        held.append(process)
    }
    say("dirs " + directories.joined(separator: " "))
    say("pids " + pids.map(String.init).joined(separator: " "))
    sleep(60)
case "thread-exit":
    exit(await threadExit())
default:
    say("usage: spawn-probe orphans|thread-exit")
    exit(64)
}

final class Box: @unchecked Sendable { var miniport: MiniportProcess? }

/// Spawns from a thread that ends and from a task of the cooperative pool (whose threads may end too).
func threadExit() async -> Int32 {
    let box = Box()
    let thread = Thread { box.miniport = try? MiniportProcess() }
    thread.start()
    let fromTask = Task.detached { try MiniportProcess() }
    let deadline = Date().addingTimeInterval(30)
    while !thread.isFinished && Date() < deadline { usleep(10_000) }
    let miniports = [box.miniport, try? await fromTask.value].compactMap { $0 }
    box.miniport = nil
    guard miniports.count == 2 else {
        say("could not start both miniports")
        return 2
    }
    sleep(6)  // past the idle timeout of Dispatch's and the pool's worker threads
    let alive = miniports.filter { $0.process.isRunning && (try? $0.statistics()) != nil }.count
    say("alive \(alive) of \(miniports.count)")
    return alive == miniports.count ? 0 : 1
}
