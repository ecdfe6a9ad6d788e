import Foundation
import Subprocess
import SystemPackage

/// A process a test spawned from one of the package's executables, with its output captured.
///
/// Every wait is bounded; `stop()` (and deinit) kills it if it still runs and reaps it, so no test leaks a
/// process. Nor does a test run that is killed (`kill -9`, a crash, a timeout): every process starts through
/// `spawn-guard`, which arms `PR_SET_PDEATHSIG` (SIGKILL) in the child before it execs the program, and
/// exits instead if the test process is already gone. swift-subprocess spawns every child from one
/// worker thread of its own that lives as long as the process, and the death signal follows the thread
/// that spawned: so it fires when the test process dies, never when some idle thread of a pool exits.
public final class SpawnedProcess: @unchecked Sendable {
    let child: Child

    /// Starts `executable` (a product of this package, found beside the test binary) with `arguments`.
    /// `prefix` runs it through another command first (for example `setpriv --reuid=USER --`); the guard
    /// goes both before the prefix and right before the product, since a prefix that changes credentials
    /// clears the death signal and one that forks puts a process in between. `standardInput` is written to
    /// the process's standard input (else it reads `/dev/null`).
    public convenience init(
        _ executable: String,
        _ arguments: [String],
        prefix: [String] = [],
        environment: [String: String] = [:],
        standardInput: String? = nil
    ) throws {
        try self.init(
            path: Self.productsDirectory.appendingPathComponent(executable).path, name: executable, arguments,
            prefix: prefix, environment: environment, standardInput: standardInput)
    }

    /// Starts the program at `path` (a system command, say), guarded and supervised as a product is.
    public static func command(
        _ path: String, _ arguments: [String], environment: [String: String] = [:], standardInput: String? = nil
    ) throws -> SpawnedProcess {
        try SpawnedProcess(
            path: path, name: path, arguments, prefix: [], environment: environment, standardInput: standardInput)
    }

    init(
        path: String, name executable: String, _ arguments: [String], prefix: [String],
        environment: [String: String], standardInput: String?
    ) throws {
        let guardPath = try Self.guardPath()
        let test = String(getpid())
        var argv = [test]
        if !prefix.isEmpty { argv += prefix + [guardPath, test] }
        argv += [path] + arguments
        var variables: [Environment.Key: String?] = [:]
        for (key, value) in environment {
            guard let key = Environment.Key(rawValue: key) else { throw SupportFailure("environment \(key)") }
            variables[key] = value
        }
        let configuration = Configuration(
            executable: .path(FilePath(guardPath)),
            arguments: Arguments(argv),
            environment: .inherit.updating(variables)
        )
        child = Child(name: executable)
        let child = self.child
        // Output goes to pipes read by threads of our own, and the end is seen by the supervisor (below):
        // neither waits for a thread of the cooperative pool, which the tests' bounded waits may all hold.
        let output = try FileDescriptor.pipe()
        let error = try FileDescriptor.pipe()
        child.read(output.readEnd, into: \.standardOutput)
        child.read(error.readEnd, into: \.standardError)
        let input = try standardInput.map { text in
            _ = Self.ignoreBrokenPipes  // a child that exits without reading it all must not kill the test
            let pipe = try FileDescriptor.pipe()
            Thread {
                _ = try? pipe.writeEnd.writeAll(Array(text.utf8))
                try? pipe.writeEnd.close()
            }.start()
            return pipe.readEnd
        }
        for descriptor in [output.readEnd, output.writeEnd, error.readEnd, error.writeEnd] + (input.map { [$0] } ?? [])
        {
            _ = fcntl(descriptor.rawValue, F_SETFD, FD_CLOEXEC)  // in no other child but this one (dup2 clears it)
        }
        Task(executorPreference: SupervisorExecutor.shared) {
            let out = FileDescriptorOutput.fileDescriptor(output.writeEnd, closeAfterSpawningProcess: true)
            let err = FileDescriptorOutput.fileDescriptor(error.writeEnd, closeAfterSpawningProcess: true)
            if let input {
                await child.supervise(configuration, .fileDescriptor(input, closeAfterSpawningProcess: true), out, err)
            } else {
                await child.supervise(configuration, .none, out, err)
            }
        }
        try child.waitForStart(seconds: 30)
    }

    deinit { stop() }

    /// Children start with every signal's default action (swift-subprocess resets them).
    static let ignoreBrokenPipes: Void = { _ = Glibc.signal(SIGPIPE, SIG_IGN) }()

    /// The directory holding the package's built products (the test bundle sits there too).
    public static var productsDirectory: URL {
        // RINGPORT_PRODUCTS points the multi-process tests at other builds (say, release) of the executables.
        if let override = ProcessInfo.processInfo.environment["RINGPORT_PRODUCTS"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        return ownDirectory
    }

    /// Where the running test binary's products are: swift test runs <products>/<Package>PackageTests.xctest;
    /// some runners nest it one level deeper.
    static var ownDirectory: URL {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        while directory.path != "/"
            && !FileManager.default.fileExists(atPath: directory.appendingPathComponent("ringport-peer").path)
        {
            directory = directory.deletingLastPathComponent()
        }
        return directory
    }

    /// `spawn-guard` from the products in use, else from this test binary's own build.
    static func guardPath() throws -> String {
        for directory in [productsDirectory, ownDirectory] {
            let path = directory.appendingPathComponent("spawn-guard").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw SupportFailure("spawn-guard is not built (in \(productsDirectory.path) or \(ownDirectory.path))")
    }

    /// Waits up to `seconds` for the process to exit and its output to end; kills it and returns nil if it
    /// does not. The status is the exit code, or the signal's number if a signal ended it.
    public func wait(seconds: Double) -> Int32? {
        if let status = child.waitForExit(seconds: seconds) { return status.code }
        stop()
        return nil
    }

    /// Waits up to `seconds` until `condition` holds of the process (checked again whenever it writes
    /// output or ends); returns whether it held.
    public func waitUntil(seconds: Double, _ condition: (SpawnedProcess) -> Bool) -> Bool {
        child.waitForChange(seconds: seconds) { condition(self) }
    }

    /// Kills the process (SIGKILL) if it is still running and reaps it (bounded).
    public func stop() {
        child.signal(SIGKILL)
        _ = child.waitForExit(seconds: 30)
    }

    /// Sends `signal` to the process if it has not ended.
    public func signal(_ signal: Int32) { child.signal(signal) }

    public var standardOutput: String { child.output(\.standardOutput) }
    public var standardError: String { child.output(\.standardError) }

    public var processIdentifier: Int32 { child.processIdentifier }
    /// Whether the process has not ended yet.
    public var isRunning: Bool { child.isRunning }
    /// How it ended (valid once `isRunning` is false).
    public var terminationReason: TerminationReason { child.terminationReason }
    /// The exit code, or the number of the signal that ended it (valid once `isRunning` is false).
    public var terminationStatus: Int32 { child.terminationStatus }

    /// This process, as the tests written against Foundation's `Process` ask it (`process.isRunning`).
    public var process: SpawnedProcess { self }

    public enum TerminationReason: Sendable { case exit, uncaughtSignal }
}

/// What the supervising task and the test's threads share about one child, under one lock.
final class Child: @unchecked Sendable {
    struct State {
        var processIdentifier: pid_t = 0
        var standardOutput = Data()
        var standardError = Data()
        var status: TerminationStatus?
        var failure: String?
        var openStreams = 2
    }

    let name: String
    let condition = NSCondition()
    var state = State()

    init(name: String) { self.name = name }

    func supervise<Input: InputProtocol>(
        _ configuration: Configuration, _ input: Input, _ output: FileDescriptorOutput,
        _ error: FileDescriptorOutput
    ) async {
        do {
            // swift-subprocess spawns (from its own long-lived thread), waits for the end and reaps.
            let result = try await Subprocess.run(configuration, input: input, output: output, error: error) {
                execution in
                update { $0.processIdentifier = execution.processIdentifier.value }
                SupervisorExecutor.shared.watch(self)
            }
            update { if $0.status == nil { $0.status = result.terminationStatus } }
        } catch {
            update { $0.failure = "\(name): \(error)" }
        }
    }

    /// Reads `descriptor` to its end on a thread of its own, appending to `stream`.
    func read(_ descriptor: FileDescriptor, into stream: WritableKeyPath<State, Data> & Sendable) {
        let handle = FileHandle(fileDescriptor: descriptor.rawValue, closeOnDealloc: true)
        Thread {
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                self.update { $0[keyPath: stream].append(data) }
            }
            self.update { $0.openStreams -= 1 }
        }.start()
    }

    /// Records the exit status if the process has ended, without reaping it (that is swift-subprocess's);
    /// returns whether there is nothing more to watch.
    func peekExit() -> Bool {
        let pid = processIdentifier
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else { return true }
        let child = info._sifields._sigchld
        guard child.si_pid == pid else { return false }  // still running
        let status: TerminationStatus =
            info.si_code == CLD_EXITED ? .exited(child.si_status) : .signaled(child.si_status)
        update { if $0.status == nil { $0.status = status } }
        return true
    }

    /// Changes the state and wakes every waiter.
    func update(_ change: (inout State) -> Void) {
        condition.lock()
        change(&state)
        condition.broadcast()
        condition.unlock()
    }

    func read<T>(_ body: (State) -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body(state)
    }

    /// Waits until `done` holds of the state, or the deadline passes; returns whether it held.
    func wait(seconds: Double, until done: (State) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while !done(state) {
            guard condition.wait(until: deadline) || done(state) else { return false }
        }
        return true
    }

    func waitForStart(seconds: Double) throws {
        let started = wait(seconds: seconds) { $0.processIdentifier != 0 || $0.failure != nil }
        if let failure = read(\.failure) { throw SupportFailure(failure) }
        guard started else { throw SupportFailure("\(name) did not start within \(seconds) s") }
    }

    /// The status once the process has ended (and its output reached its end, or 2 s more passed), or nil
    /// if it does not end within `seconds`.
    func waitForExit(seconds: Double) -> TerminationStatus? {
        let deadline = Date().addingTimeInterval(seconds)
        _ = wait(seconds: seconds) { $0.status != nil || $0.failure != nil }
        // Then its output to the end (a descendant may hold the pipes: not for long).
        let rest = min(max(deadline.timeIntervalSinceNow, 0), 2)
        _ = wait(seconds: rest) { $0.openStreams == 0 || $0.status == nil }
        return read(\.status)
    }

    /// Waits until `condition` holds, checking it at each change (output, exit) and at least every 100 ms.
    func waitForChange(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if condition() { return true }
            let now = Date()
            guard now < deadline else { return false }
            let step = min(deadline.timeIntervalSince(now), 0.1)
            let before = read { ($0.standardOutput.count, $0.standardError.count, $0.status) }
            _ = wait(seconds: step) { ($0.standardOutput.count, $0.standardError.count, $0.status) != before }
        }
    }

    /// Sends `signal` unless the process is reaped (or never started). Under the lock, so a reaped pid is
    /// never signalled.
    func signal(_ signal: Int32) {
        condition.lock()
        defer { condition.unlock() }
        if state.processIdentifier != 0 && state.status == nil && state.failure == nil {
            kill(state.processIdentifier, signal)
        }
    }

    func output(_ stream: KeyPath<State, Data>) -> String {
        read { String(decoding: $0[keyPath: stream], as: UTF8.self) }
    }

    var processIdentifier: pid_t { read(\.processIdentifier) }
    var isRunning: Bool { read { $0.processIdentifier != 0 && $0.status == nil && $0.failure == nil } }

    var terminationReason: SpawnedProcess.TerminationReason {
        if case .signaled = read(\.status) { return .uncaughtSignal }
        return .exit
    }

    var terminationStatus: Int32 { read(\.status)?.code ?? -1 }
}

extension TerminationStatus {
    /// As Foundation's `Process.terminationStatus`: the exit code, or the signal's number.
    var code: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): signal
        }
    }
}

/// One thread that runs the tasks supervising spawned processes, and sees each process end. The tests block
/// their own threads in bounded waits, often on the cooperative pool, which has one thread per CPU: the end
/// of a process must reach them without a thread from there. swift-subprocess reaps a process in a job run
/// here (its task prefers this executor), and before each job this thread looks (`waitid` with `WNOWAIT`) at
/// the processes not seen to end yet: one that has ended is seen before it can be reaped, and a zombie's pid
/// is never reused, so a signal sent before that is never for another process.
final class SupervisorExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = SupervisorExecutor()
    let condition = NSCondition()
    var jobs: [UnownedJob] = []
    var watched: [Child] = []

    init() {
        let thread = Thread { [unowned self] in run() }
        thread.name = "SpawnedProcess supervisor"
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Watches `child` for its end (from a job on this executor, so before its reaping job).
    func watch(_ child: Child) {
        condition.lock()
        watched.append(child)
        condition.unlock()
    }

    func run() -> Never {
        while true {
            condition.lock()
            // An end wakes this thread through swift-subprocess's job; the period is only a safety net.
            if jobs.isEmpty { _ = condition.wait(until: Date().addingTimeInterval(0.1)) }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            condition.unlock()
            peek()
            for job in batch {
                peek()  // the job may be the one that reaps
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
    }

    /// Records the end of every watched process that has ended, and stops watching it.
    func peek() {
        condition.lock()
        let children = watched
        condition.unlock()
        guard !children.isEmpty else { return }
        let ended = children.filter { $0.peekExit() }.map(ObjectIdentifier.init)
        guard !ended.isEmpty else { return }
        condition.lock()
        watched.removeAll { ended.contains(ObjectIdentifier($0)) }
        condition.unlock()
    }
}

/// Names of segments in /dev/shm that start with `prefix` (to check a test left none behind).
public func sharedMemoryNames(withPrefix prefix: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
    return names.filter { $0.hasPrefix(prefix) }
}
