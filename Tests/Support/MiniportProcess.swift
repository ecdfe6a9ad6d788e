import Foundation
import RingportCore
import RingportSystem

/// A real `ringportd` for a test: its own adapter name and runtime directory, started and waited for
/// (bounded), and always stopped and cleaned up, also when the test fails.
public final class MiniportProcess: @unchecked Sendable {
    public let adapter: String
    public let directory: RuntimeDirectory
    public private(set) var process: SpawnedProcess

    public init(driver: String = "null", arguments: [String] = [], adapter: String? = nil, directory: String? = nil)
        throws
    {
        var random = SystemRandomNumberGenerator()
        self.adapter = adapter ?? "t\(String(random.next() as UInt32, radix: 16))"
        let path = directory ?? "/tmp/ringport-test-\(String(random.next() as UInt64, radix: 16))"
        self.directory = RuntimeDirectory(path)
        process = try Self.start(self.adapter, path, driver, arguments)
    }

    static func start(_ adapter: String, _ path: String, _ driver: String, _ arguments: [String]) throws
        -> SpawnedProcess
    {
        let process = try SpawnedProcess(
            "ringportd",
            ["--adapter", adapter, "--dir", path, "--driver", driver] + arguments
        )
        // Ready once it says so (a socket file may be a dead predecessor's).
        let up = process.waitUntil(seconds: 20) { $0.standardOutput.contains("is up") || !$0.isRunning }
        guard up, process.isRunning else {
            process.stop()
            throw SupportFailure("ringportd did not come up: \(process.standardError)")
        }
        return process
    }

    deinit {
        if process.isRunning { _ = terminate(seconds: 5) }
        process.stop()
        try? FileManager.default.removeItem(atPath: directory.path)
    }

    /// Starts another ringportd for the same adapter and directory (after a kill, say).
    public func restart(driver: String = "null", arguments: [String] = []) throws {
        process.stop()
        process = try Self.start(adapter, directory.path, driver, arguments)
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    public func terminate(seconds: Double = 20) -> Int32? {
        process.signal(SIGTERM)
        return process.wait(seconds: seconds)
    }

    /// SIGKILL: the miniport dies without cleaning up.
    public func kill9() {
        process.signal(SIGKILL)
        _ = process.wait(seconds: 10)
    }

    /// The adapter's statistics, asked over the control socket.
    package func statistics() throws -> AdapterStatistics {
        let socket = try ControlSocket.connect(path: directory.socketPath(adapter: adapter))
        try socket.send(.queryStatistics)
        guard socket.isReadable(waitingMilliseconds: 5000) else { throw SupportFailure("no statistics") }
        guard case .message(.statistics(let statistics), _) = try socket.receive() else {
            throw SupportFailure("not statistics")
        }
        return statistics
    }

    /// Waits (bounded) until `condition` holds of the statistics.
    package func waitForStatistics(seconds: Double = 10, _ condition: (AdapterStatistics) -> Bool) throws
        -> AdapterStatistics
    {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let s = try statistics()
            if condition(s) || Date() > deadline { return s }
            usleep(10_000)
        }
    }

    /// A `ringport` protocol process against this adapter.
    public func protocolProcess(_ arguments: [String]) throws -> SpawnedProcess {
        try SpawnedProcess("ringport", arguments + ["--adapter", adapter, "--dir", directory.path])
    }
}

public struct SupportFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
