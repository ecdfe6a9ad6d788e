import Foundation
import Logging
import Ringport
import RingportCore
import RingportMiniport
import RingportSystem
import Synchronization
import Testing

/// Log lines a miniport in this process wrote, for tests that check what it reports.
final class CapturedLog: @unchecked Sendable {
    let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }
    func count(_ text: String) -> Int { all.filter { $0.contains(text) }.count }
}

struct CapturingLogHandler: LogHandler {
    let log: CapturedLog
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        log.lines.withLock { $0.append("\(event.level): \(event.message)") }
    }
}

/// A miniport in this process serving `driver`, with its log captured and its statistics readable over
/// the control socket; stopped (bounded) and its directory removed by `stop()`.
final class ContractHost: @unchecked Sendable {
    let miniport: Miniport
    let thread: Thread
    let directory: RuntimeDirectory
    let adapter: String
    let log = CapturedLog()

    init(driver: any MiniportDriver, checked: Bool = true, limits: BindingConfiguration = .maximum) throws {
        adapter = "c\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        directory = RuntimeDirectory("/tmp/ringport-test-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
        let captured = log
        let logger = Logger(label: "contract") { _ in CapturingLogHandler(log: captured) }
        let created = try Miniport(
            options: MiniportOptions(adapter: adapter, directory: directory, limits: limits, checked: checked),
            driver: driver,
            logger: logger
        )
        miniport = created
        thread = Thread { created.run() }
        thread.start()
    }

    func open(checked: Bool = true, configuration: BindingConfiguration = BindingConfiguration()) throws -> Adapter {
        try Adapter.open(adapter, configuration: configuration, directory: directory, checked: checked)
    }

    func stop() {
        miniport.requestStop()
        let deadline = Date().addingTimeInterval(10)
        while !thread.isFinished && Date() < deadline { usleep(1000) }
        try? FileManager.default.removeItem(atPath: directory.path)
    }

    func statistics() throws -> AdapterStatistics {
        let socket = try ControlSocket.connect(path: directory.socketPath(adapter: adapter))
        try socket.send(.queryStatistics)
        guard socket.isReadable(waitingMilliseconds: 5000),
            case .message(.statistics(let statistics), _) = try socket.receive()
        else { throw ContractFailure("no statistics") }
        return statistics
    }

    /// Waits (bounded) until `condition` holds of the statistics; returns the last ones read.
    func waitForStatistics(seconds: Double = 5, _ condition: (AdapterStatistics) -> Bool) throws -> AdapterStatistics {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let s = try statistics()
            if condition(s) || Date() > deadline { return s }
            usleep(5000)
        }
    }
}

struct ContractFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Waits (bounded) until `condition` holds, checking every millisecond; returns whether it did.
func eventually(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { return false }
        usleep(1000)
    }
    return true
}

/// Sends `count` one-buffer packets of 64 bytes carrying their sequence number, in one array.
func sendSequence(_ adapter: Adapter, count: Int, from first: Int = 0) throws {
    var batch = PacketArray()
    for sequence in first..<first + count {
        var packet = try adapter.allocatePacket()
        let buffer = try adapter.allocateBuffer(length: 64)
        buffer.withUnsafeMutableBytes {
            PayloadPattern.fill($0, sequence: UInt64(sequence), totalLength: 64, start: 0)
        }
        packet.chainAtBack(buffer)
        batch.append(packet)
    }
    adapter.send(batch)
}

/// Collects completions until `count` came or `seconds` passed; returns descriptor and status of each.
func collectCompletions(_ adapter: Adapter, count: Int, seconds: Double = 5) -> [(Int, NDISStatus)] {
    var completed: [(Int, NDISStatus)] = []
    let deadline = Date().addingTimeInterval(seconds)
    while completed.count < count && Date() < deadline {
        adapter.waitForCompletions(timeoutSeconds: 0.02) { packet, status in
            completed.append((packet.descriptorIndex, status))
        }
    }
    return completed
}
