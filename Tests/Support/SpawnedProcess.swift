import Foundation

/// A process a test spawned from one of the package's executables, with its output captured.
/// Every wait is bounded; `stop()` (and deinit) kills it if it still runs, so no test leaks a process.
public final class SpawnedProcess: @unchecked Sendable {
    public let process = Process()
    let stdoutPipe = Pipe()
    let stderrPipe = Pipe()
    let lock = NSLock()
    var stdoutData = Data()
    var stderrData = Data()

    /// Starts `executable` (a product of this package, found beside the test binary) with `arguments`.
    /// `prefix` runs it through another command first (for example `runuser -u USER --`).
    public init(
        _ executable: String,
        _ arguments: [String],
        prefix: [String] = [],
        environment: [String: String] = [:]
    ) throws {
        let path = Self.productsDirectory.appendingPathComponent(executable).path
        if prefix.isEmpty {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: prefix[0])
            process.arguments = Array(prefix.dropFirst()) + [path] + arguments
        }
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        stdoutPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.withLock { self.stdoutData.append(data) }
        }
        stderrPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.withLock { self.stderrData.append(data) }
        }
        try process.run()
    }

    deinit { stop() }

    /// The directory holding the package's built products (the test bundle sits there too).
    public static var productsDirectory: URL {
        // RINGPORT_PRODUCTS points the multi-process tests at other builds (say, release) of the executables.
        if let override = ProcessInfo.processInfo.environment["RINGPORT_PRODUCTS"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        // swift test runs <products>/<Package>PackageTests.xctest; some runners nest it one level deeper.
        while directory.path != "/"
            && !FileManager.default.fileExists(atPath: directory.appendingPathComponent("ringport-peer").path)
        {
            directory = directory.deletingLastPathComponent()
        }
        return directory
    }

    /// Waits up to `seconds` for the process to exit; kills it and returns nil if it does not.
    public func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() > deadline {
                stop()
                return nil
            }
            usleep(2000)
        }
        process.waitUntilExit()
        // Let the readability handlers drain what is left in the pipes.
        let rest = stdoutPipe.fileHandleForReading.readDataToEndOfFile()
        let restErr = stderrPipe.fileHandleForReading.readDataToEndOfFile()
        lock.withLock {
            stdoutData.append(rest)
            stderrData.append(restErr)
        }
        return process.terminationStatus
    }

    /// Kills the process (SIGKILL) if it is still running and reaps it.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        stdoutPipe.fileHandleForReading.readabilityHandler = nil
        stderrPipe.fileHandleForReading.readabilityHandler = nil
    }

    public var standardOutput: String { lock.withLock { String(decoding: stdoutData, as: UTF8.self) } }
    public var standardError: String { lock.withLock { String(decoding: stderrData, as: UTF8.self) } }
}

/// Names of segments in /dev/shm that start with `prefix` (to check a test left none behind).
public func sharedMemoryNames(withPrefix prefix: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
    return names.filter { $0.hasPrefix(prefix) }
}
