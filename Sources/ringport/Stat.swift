import ArgumentParser
import Foundation
import Glibc
import RingportCore
import RingportSystem

struct Stat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the adapter's statistics: the adapter's totals and one line per binding.",
        discussion: """
            Per binding: its id, the process that opened it (id and name), its state, packets and bytes sent \
            (completed by the miniport) and received (delivered to it), drops, failures, outstanding sends, the \
            fill of each of its four rings (used/size), its pool use (packet descriptors and send buffers in \
            use/pool size), its wait policy and how many of its waits ended in a sleep. --json prints one object \
            (its fields are described in Docs/stat-json.md); --watch repeats with per-second rates.
            """
    )

    @OptionGroup var where_: AdapterOptions
    @Flag(help: "Print one JSON object (with --watch: one per line). Fields: Docs/stat-json.md.") var json = false
    @Option(help: ArgumentHelp("Print again every SECONDS, with rates per second, until Ctrl-C.", valueName: "seconds"))
    var watch: Double?

    func validate() throws {
        if let watch, !(watch >= 0.1 && watch <= 86_400) {
            throw ValidationError("--watch \(watch): from 0.1 to 86400 seconds")
        }
    }

    func run() throws {
        let client = try StatClient(where_)
        var previous: StatSnapshot?
        if watch != nil { Interruption.install() }  // Ctrl-C ends the watch: exit 130, as a shell reports it
        while true {
            let snapshot = try client.snapshot()
            if json {
                print(try StatJSON(snapshot, previous: previous, socket: client.path).encoded())
            } else {
                if previous != nil { print() }
                print(StatTable.render(snapshot, previous: previous))
            }
            fflush(nil)  // every stream: a pipe reader sees each snapshot at once
            guard let watch else { return }
            previous = snapshot
            var left = timespec(tv_sec: Int(watch), tv_nsec: Int((watch - watch.rounded(.down)) * 1e9))
            var rest = timespec()
            while nanosleep(&left, &rest) != 0 && errno == EINTR && !Interruption.isRequested { left = rest }
            if let signal = Interruption.signal { throw ExitCode(Interruption.exitStatus(for: signal)) }
        }
    }
}

/// Everything `stat` shows, taken at one time.
struct StatSnapshot {
    /// Monotonic, for the rates.
    var nanoseconds: UInt64
    var adapterName: String
    var adapter: AdapterStatistics
    var info: AdapterInfo
    var bindings: [BindingStatistics]
    /// `/proc/PID/comm` of each binding's process, read when the snapshot was taken (nil: unreadable).
    var processNames: [UInt64: String]
}

/// One control connection to a miniport, for its statistics.
final class StatClient {
    let socket: ControlSocket
    let path: String
    let adapterName: String

    init(_ where_: AdapterOptions) throws {
        let directory = RuntimeDirectory(where_.dir)
        try directory.checkForClient()
        path = directory.socketPath(adapter: where_.adapter)
        adapterName = where_.adapter
        socket = try ControlSocket.connect(path: path, timeout: 5)
    }

    init(path: String, adapter: String, timeout: Double) throws {
        self.path = path
        adapterName = adapter
        socket = try ControlSocket.connect(path: path, timeout: timeout)
    }

    /// Whether this connection got an answer yet: a close after one means the miniport stopped.
    private var answered = false

    /// The miniport stopped (or died) while this connection was open.
    var wentAway: RuntimeFailure { RuntimeFailure("the miniport at \(path) went away") }

    /// Sends `request` and takes the one answer `accept` maps to a value (nil: not the answer expected).
    func ask<T>(
        _ request: ControlMessage, timeoutMilliseconds: Int32 = 5000, _ accept: (ControlMessage) -> T?
    ) throws -> T {
        do {
            return try exchange(request, timeoutMilliseconds: timeoutMilliseconds, accept)
        } catch let error as SystemError where [EPIPE, ECONNRESET].contains(error.errno.rawValue) {
            throw wentAway
        }
    }

    private func exchange<T>(
        _ request: ControlMessage, timeoutMilliseconds: Int32, _ accept: (ControlMessage) -> T?
    ) throws -> T {
        try socket.send(request)
        guard socket.isReadable(waitingMilliseconds: timeoutMilliseconds) else {
            throw RuntimeFailure("the miniport at \(path) did not answer within \(timeoutMilliseconds / 1000) s")
        }
        let received = try socket.receive()
        switch consume received {
        case .message(let reply, let fd):
            if fd >= 0 { close(fd) }
            guard let value = accept(reply) else {
                throw RuntimeFailure("the miniport at \(path) answered \(request) with \(reply)")
            }
            answered = true
            return value
        default:
            if answered { throw wentAway }
            throw RuntimeFailure(
                "the miniport at \(path) closed the connection (a ringportd older than this ringport?)")
        }
    }

    func info(timeoutMilliseconds: Int32 = 5000) throws -> AdapterInfo {
        try ask(.queryAdapter, timeoutMilliseconds: timeoutMilliseconds) { reply in
            if case .adapter(let info) = reply { info } else { nil }
        }
    }

    func statistics(timeoutMilliseconds: Int32 = 5000) throws -> AdapterStatistics {
        try ask(.queryStatistics, timeoutMilliseconds: timeoutMilliseconds) { reply in
            if case .statistics(let s) = reply { s } else { nil }
        }
    }

    /// Every open binding, one question each, in order of id.
    func bindings() throws -> [BindingStatistics] {
        var list: [BindingStatistics] = []
        var after: UInt64 = 0
        while true {
            let next: BindingStatistics? = try ask(.queryBinding(after: after)) { reply in
                switch reply {
                case .binding(let b): .some(b)
                case .noMoreBindings: .some(nil)
                default: nil
                }
            }
            // The cursor must move on: a miniport that answers an id not above it would loop us for ever.
            guard let next, next.id > after else { return list }
            list.append(next)
            after = next.id
        }
    }

    func snapshot() throws -> StatSnapshot {
        let info = try info()
        let adapter = try statistics()
        let bindings = try bindings()
        var names: [UInt64: String] = [:]
        for binding in bindings where names[binding.processID] == nil {
            if let name = Self.processName(binding.processID) { names[binding.processID] = name }
        }
        return StatSnapshot(
            nanoseconds: ProcessControl.monotonicNanoseconds(), adapterName: adapterName, adapter: adapter,
            info: info, bindings: bindings, processNames: names)
    }

    /// The process's command name, if it is still there and this user may read it.
    static func processName(_ pid: UInt64) -> String? {
        guard pid > 0, pid < UInt64(Int32.max),
            let text = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)
        else { return nil }
        // Only the newline the kernel appends: the rest is the program's own name, spaces and all.
        let name = text.hasSuffix("\n") ? String(text.dropLast()) : text
        return name.isEmpty ? nil : name
    }
}

/// Per-second rates between two snapshots.
struct StatRates: Codable, Equatable {
    var packetsSentPerSecond: Double
    var bytesSentPerSecond: Double
    var packetsReceivedPerSecond: Double
    var bytesReceivedPerSecond: Double

    init(
        sent: (packets: UInt64, bytes: UInt64), received: (packets: UInt64, bytes: UInt64),
        before: (sent: (packets: UInt64, bytes: UInt64), received: (packets: UInt64, bytes: UInt64)),
        seconds: Double
    ) {
        func rate(_ now: UInt64, _ then: UInt64) -> Double {
            guard seconds > 0, now >= then else { return 0 }
            return (Double(now - then) / seconds * 10).rounded() / 10
        }
        packetsSentPerSecond = rate(sent.packets, before.sent.packets)
        bytesSentPerSecond = rate(sent.bytes, before.sent.bytes)
        packetsReceivedPerSecond = rate(received.packets, before.received.packets)
        bytesReceivedPerSecond = rate(received.bytes, before.received.bytes)
    }

    static func adapter(_ now: StatSnapshot, _ then: StatSnapshot?) -> StatRates? {
        guard let then else { return nil }
        let a = now.adapter
        let b = then.adapter
        return StatRates(
            sent: (a.packetsSent, a.bytesSent), received: (a.packetsReceived, a.bytesReceived),
            before: ((b.packetsSent, b.bytesSent), (b.packetsReceived, b.bytesReceived)),
            seconds: seconds(now, then))
    }

    /// A binding's rates; nil if it was not there in the earlier snapshot.
    static func binding(_ binding: BindingStatistics, _ now: StatSnapshot, _ then: StatSnapshot?) -> StatRates? {
        guard let then, let b = then.bindings.first(where: { $0.id == binding.id }) else { return nil }
        return StatRates(
            sent: (binding.packetsSent, binding.bytesSent), received: (binding.packetsReceived, binding.bytesReceived),
            before: ((b.packetsSent, b.bytesSent), (b.packetsReceived, b.bytesReceived)),
            seconds: seconds(now, then))
    }

    static func seconds(_ now: StatSnapshot, _ then: StatSnapshot) -> Double {
        Double(now.nanoseconds &- then.nanoseconds) / 1e9
    }
}

/// The names `stat` shows for codes that travel as numbers.
enum StatNames {
    static func waitPolicy(_ code: UInt64) -> String? { WaitPolicy(code: code)?.rawValue }

    static func state(_ code: UInt64) -> String {
        switch code {
        case UInt64(BindingState.opening.rawValue): "opening"
        case UInt64(BindingState.open.rawValue): "open"
        case UInt64(BindingState.closing.rawValue): "closing"
        default: "unknown"
        }
    }
}

/// The human form: the adapter's line, its totals, then a table of the bindings.
enum StatTable {
    static func render(_ s: StatSnapshot, previous: StatSnapshot?) -> String {
        let a = s.adapter
        let info = s.info
        var lines: [String] = []
        lines.append(
            "adapter=\(s.adapterName) driver=\(info.driver) pid=\(info.processID) "
                + "wait=\(StatNames.waitPolicy(info.waitPolicy) ?? "unknown") sleeps=\(info.sleeps) "
                + "checked=\(info.checked != 0)")
        lines.append(
            "bindings=\(a.bindings) opened=\(a.bindingsOpened) reclaimed=\(a.bindingsReclaimed) "
                + "packets=\(a.packetsSent) bytes=\(a.bytesSent) failed=\(a.packetsFailed) "
                + "outstanding=\(a.packetsOutstanding) received=\(a.packetsReceived) "
                + "received_bytes=\(a.bytesReceived) dropped=\(a.packetsDropped) "
                + "verification_errors=\(a.verificationErrors) refused_completions=\(a.completionsRefused) "
                + "violations=\(a.bindingsViolated) stalled=\(a.receiversStalled) "
                + "connections_refused=\(a.connectionsRefused) "
                + "connections_dropped=\(a.connectionsDropped) opens_over_limit=\(a.opensOverLimit)")
        if let rates = StatRates.adapter(s, previous) { lines.append("rate: " + describe(rates)) }
        guard !s.bindings.isEmpty else {
            lines.append("no bindings")
            return lines.joined(separator: "\n")
        }
        var header = [
            "BINDING", "PID", "PROCESS", "STATE", "SENT", "SENT_BYTES", "RECEIVED", "RECEIVED_BYTES", "DROPPED",
            "FAILED", "OUTSTANDING", "TX_PACKETS", "TX_FRAGMENTS", "RX_PACKETS", "RX_FRAGMENTS", "PACKETS_IN_USE",
            "BUFFERS_IN_USE", "WAIT", "SLEEPS",
        ]
        let watching = previous != nil
        if watching { header += ["SENT/S", "SENT_BYTES/S", "RECEIVED/S", "RECEIVED_BYTES/S"] }
        var rows = [header]
        for b in s.bindings {
            var row = [
                "\(b.id)", "\(b.processID)", s.processNames[b.processID].map(cell) ?? "?", StatNames.state(b.state),
                "\(b.packetsSent)", "\(b.bytesSent)", "\(b.packetsReceived)", "\(b.bytesReceived)",
                "\(b.packetsDropped)", "\(b.packetsFailed)", "\(b.packetsOutstanding)",
                "\(b.transmitPacketRingUsed)/\(b.transmitPacketRingSize)",
                "\(b.transmitFragmentRingUsed)/\(b.transmitFragmentRingSize)",
                "\(b.receivePacketRingUsed)/\(b.receivePacketRingSize)",
                "\(b.receiveFragmentRingUsed)/\(b.receiveFragmentRingSize)",
                "\(b.packetsInUse)/\(b.packetPoolSize)", "\(b.chunksInUse)/\(b.chunkPoolSize)",
                StatNames.waitPolicy(b.waitPolicy) ?? "?", "\(b.sleeps)",
            ]
            if watching {
                if let r = StatRates.binding(b, s, previous) {
                    row += [
                        r.packetsSentPerSecond, r.bytesSentPerSecond, r.packetsReceivedPerSecond,
                        r.bytesReceivedPerSecond,
                    ].map(format)
                } else {
                    row += ["-", "-", "-", "-"]
                }
            }
            rows.append(row)
        }
        var widths = [Int](repeating: 0, count: header.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        for row in rows {
            let cells = row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }
            lines.append(cells.joined(separator: "  "))
        }
        return lines.joined(separator: "\n")
    }

    /// `text` as one table cell: whitespace and control characters (a process may name itself anything)
    /// shown as `?`, as ps does, so that no name adds a line or a column.
    static func cell(_ text: String) -> String {
        String(
            String.UnicodeScalarView(
                text.unicodeScalars.map { isShown($0) ? $0 : "?" }))
    }

    /// Neither whitespace nor a control or format character (a newline, a tab, a direction override).
    static func isShown(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        return !properties.isWhitespace && ![.control, .format].contains(properties.generalCategory)
    }

    static func describe(_ r: StatRates) -> String {
        "sent=\(format(r.packetsSentPerSecond))/s sent_bytes=\(format(r.bytesSentPerSecond))/s "
            + "received=\(format(r.packetsReceivedPerSecond))/s received_bytes=\(format(r.bytesReceivedPerSecond))/s"
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int64(value)) : String(format: "%.1f", value)
    }
}

/// The `--json` form: one object, field names as Docs/stat-json.md describes them (snake_case, stable).
struct StatJSON: Encodable {
    struct Ring: Encodable {
        var used: UInt64
        var size: UInt64
    }
    struct Rings: Encodable {
        var transmitPackets: Ring
        var transmitFragments: Ring
        var receivePackets: Ring
        var receiveFragments: Ring
    }
    struct Pool: Encodable {
        var packetsInUse: UInt64
        var packets: UInt64
        var buffersInUse: UInt64
        var buffers: UInt64
    }
    struct Binding: Encodable {
        var id: UInt64
        var pid: UInt64
        var processName: String?
        var userId: UInt64
        var state: String
        var packetsSent: UInt64
        var bytesSent: UInt64
        var packetsFailed: UInt64
        var packetsOutstanding: UInt64
        var packetsReceived: UInt64
        var bytesReceived: UInt64
        var packetsDropped: UInt64
        var rings: Rings
        var pool: Pool
        var waitPolicy: String?
        var sleeps: UInt64
        var rates: StatRates?
    }
    struct Totals: Encodable {
        var bindings: UInt64
        var bindingsOpened: UInt64
        var bindingsReclaimed: UInt64
        var packetsSent: UInt64
        var bytesSent: UInt64
        var packetsFailed: UInt64
        var packetsOutstanding: UInt64
        var packetsReceived: UInt64
        var bytesReceived: UInt64
        var packetsDropped: UInt64
        var verificationErrors: UInt64
        var refusedCompletions: UInt64
        var violations: UInt64
        var receiversStalled: UInt64
        var connectionsRefused: UInt64
        var connectionsDropped: UInt64
        var opensOverLimit: UInt64
    }

    var adapter: String
    var socket: String
    var driver: String
    var miniportPid: UInt64
    var miniportWaitPolicy: String?
    var miniportSleeps: UInt64
    var checked: Bool
    var timestamp: Double
    var intervalSeconds: Double?
    var totals: Totals
    var rates: StatRates?
    var bindings: [Binding]

    init(_ s: StatSnapshot, previous: StatSnapshot?, socket: String) {
        let a = s.adapter
        adapter = s.adapterName
        self.socket = socket
        driver = s.info.driver
        miniportPid = s.info.processID
        miniportWaitPolicy = StatNames.waitPolicy(s.info.waitPolicy)
        miniportSleeps = s.info.sleeps
        checked = s.info.checked != 0
        timestamp = (Date().timeIntervalSince1970 * 1000).rounded() / 1000
        intervalSeconds = previous.map { (StatRates.seconds(s, $0) * 1000).rounded() / 1000 }
        totals = Totals(
            bindings: a.bindings, bindingsOpened: a.bindingsOpened, bindingsReclaimed: a.bindingsReclaimed,
            packetsSent: a.packetsSent, bytesSent: a.bytesSent, packetsFailed: a.packetsFailed,
            packetsOutstanding: a.packetsOutstanding, packetsReceived: a.packetsReceived,
            bytesReceived: a.bytesReceived, packetsDropped: a.packetsDropped,
            verificationErrors: a.verificationErrors, refusedCompletions: a.completionsRefused,
            violations: a.bindingsViolated, receiversStalled: a.receiversStalled,
            connectionsRefused: a.connectionsRefused, connectionsDropped: a.connectionsDropped,
            opensOverLimit: a.opensOverLimit)
        rates = StatRates.adapter(s, previous)
        bindings = s.bindings.map { b in
            Binding(
                id: b.id, pid: b.processID, processName: s.processNames[b.processID], userId: b.userID,
                state: StatNames.state(b.state), packetsSent: b.packetsSent, bytesSent: b.bytesSent,
                packetsFailed: b.packetsFailed, packetsOutstanding: b.packetsOutstanding,
                packetsReceived: b.packetsReceived, bytesReceived: b.bytesReceived, packetsDropped: b.packetsDropped,
                rings: Rings(
                    transmitPackets: Ring(used: b.transmitPacketRingUsed, size: b.transmitPacketRingSize),
                    transmitFragments: Ring(used: b.transmitFragmentRingUsed, size: b.transmitFragmentRingSize),
                    receivePackets: Ring(used: b.receivePacketRingUsed, size: b.receivePacketRingSize),
                    receiveFragments: Ring(used: b.receiveFragmentRingUsed, size: b.receiveFragmentRingSize)),
                pool: Pool(
                    packetsInUse: b.packetsInUse, packets: b.packetPoolSize, buffersInUse: b.chunksInUse,
                    buffers: b.chunkPoolSize),
                waitPolicy: StatNames.waitPolicy(b.waitPolicy), sleeps: b.sleeps,
                rates: StatRates.binding(b, s, previous))
        }
    }

    /// One line of JSON, keys sorted.
    func encoded() throws -> String {
        try StatJSON.line(self)
    }

    static func line(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
