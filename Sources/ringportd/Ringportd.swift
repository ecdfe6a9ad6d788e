import ArgumentParser
import Foundation
import Glibc
import Logging
import RingportCore
import RingportMiniport
import RingportSystem

@main
struct Ringportd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringportd",
        abstract: "Serve a Ringport adapter: the miniport that protocol processes bind to.",
        discussion: """
            With no arguments it serves the adapter `ringport0` with the `null` driver (completes every packet \
            with SUCCESS) and prints how to connect. It runs until SIGINT or SIGTERM, when it completes every \
            outstanding send with CLOSING, closes every binding and removes its socket.

            Drivers: null (ring style), resources (serialized, an array handler; answers RESOURCES at random \
            points), serial (serialized, per-packet send only), random-order (deserialized; completes after \
            random delays in random order), loopback (every packet comes back to its sender), hub (every packet \
            goes to every other binding; --policy lossless or drop). The test drivers check every byte and the \
            order of each binding's packets, and complete packet n with FAILURE when n % 97 == 13.

            Other users bind only if the socket lets them: --group NAME (the socket 0660 in that group) or \
            --socket-mode 666 (everyone).

            Exit status: 0 after SIGINT or SIGTERM, 1 when it cannot serve (one line on stderr), 64 on a usage \
            error (every option is checked before anything starts).

            Example:
              ringportd --adapter lab0 --driver random-order --dir /tmp/ringport
            """,
        version: RingportVersion.string
    )

    /// The built-in drivers (`BuiltInDrivers.names`), as values the parser lists and completes.
    enum Driver: String, CaseIterable, ExpressibleByArgument {
        case null, resources, serial
        case randomOrder = "random-order"
        case loopback, hub
    }

    /// What a lossless or dropping hub does when a receiver has no buffer.
    enum Policy: String, CaseIterable, ExpressibleByArgument {
        case lossless, drop
        var hubPolicy: HubDriver.Policy { self == .lossless ? .lossless : .drop }
    }

    /// Parses (a usage error exits 64), then runs: a failure to serve is one line and exit 1.
    static func main() {
        var command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            try command.run()
        } catch {
            // The parser's own commands (help, completion scripts) answer through errors of their own.
            guard command is Ringportd, !(error is ExitCode) else { exit(withError: error) }
            let line = String(describing: error).split(separator: "\n").joined(separator: "; ")
            FileHandle.standardError.write(Data("ringportd: \(line)\n".utf8))
            exit(withError: ExitCode(1))
        }
    }

    @Option(help: "Adapter name: 1 to 64 of A-Z a-z 0-9 . _ - (not starting with a dot).") var adapter = "ringport0"
    @Option(help: "The built-in driver to serve the adapter with (see the drivers above).") var driver: Driver = .null
    @Option(
        help: ArgumentHelp(
            "Runtime directory for the socket and lock (default: $RINGPORT_DIR, else /run/ringport for root, else "
                + "$XDG_RUNTIME_DIR/ringport, or /tmp/ringport-<uid> without XDG_RUNTIME_DIR). The default directory "
                + "is created 0700 (0710 with --group, 0711 with a world --socket-mode) and refused if it is a "
                + "symlink, another user's, or writable by others. An explicit one is refused as a symlink or if "
                + "owned by anyone but you or root; an existing one keeps its mode.",
            valueName: "path"))
    var dir: String?
    @Option(
        help: "Members of this group may bind: the socket becomes 0660 in the group, the directory searchable by it.")
    var group: String?
    @Flag(help: "The null driver checks every byte and the order of each binding's packets.") var verify = false
    @Option(help: "Seed of the test drivers' random choices.") var seed: UInt64 = 1
    @Option(
        help:
            "Longest completion delay of the test drivers, in microseconds (0...\(Self.longestDelayMicroseconds); they draw from half of it to it)."
    )
    var delayUs: Int?
    @Flag(
        inversion: .prefixedNo,
        help: "Verify every ring transition (default: on in debug builds, off in release builds).")
    var checked: Bool?
    @Option(
        help:
            "Permissions of the control socket, octal 600...777 (the owner always reads and writes it; 666 lets every user bind)."
    )
    var socketMode = "600"
    @Option(help: "Most packet descriptors a binding may have (1...\(BindingConfiguration.maximum.packetCount)).")
    var maxPackets = BindingConfiguration.maximum.packetCount
    @Option(help: "Most data-area chunks a binding may have (1...\(BindingConfiguration.maximum.chunkCount)).")
    var maxChunks = BindingConfiguration.maximum.chunkCount
    @Option(
        help:
            "Largest transmit ring a binding may have: a power of two within 2...\(BindingConfiguration.maximum.transmitRingSize)."
    )
    var maxRing = BindingConfiguration.maximum.transmitRingSize
    @Option(help: "Log level.") var logLevel: LogLevel = .info
    @Option(help: "Most bindings one process may hold (1...4096).") var maxBindingsPerProcess = 16
    @Option(help: "Most bindings one user may hold (1...65536).") var maxBindingsPerUser = 64
    @Option(help: "Most segment memory one user's bindings may hold, bytes or with K, M, G (1M...1024G).")
    var maxMemoryPerUser = "1G"
    @Option(help: "Most segment memory of all bindings together, bytes or with K, M, G (1M...4096G).")
    var maxMemory = "4G"
    @Option(help: "Most control connections at once (16...1048576; default 4096, or fewer at a lower fd limit).")
    var maxConnections: Int?
    @Option(help: "Pin the data thread to this CPU (0...the number of CPUs - 1).") var cpu: Int?
    @Option(
        help:
            "When nothing moves, the data thread: busyPoll (spins; needs a core of its own), adaptive (spins a learned while, then sleeps), blocking (sleeps at once)."
    )
    var wait: WaitPolicy = .default
    @Option(help: "loopback and hub: lossless (back-pressure) or drop (counted) when a receiver has no buffer.")
    var policy: Policy = .lossless
    @Option(
        help:
            "lossless loopback and hub: drop for a receiver that takes nothing for this many milliseconds (0: never).")
    var stallTimeoutMs = HubDriver.defaultStallTimeoutMilliseconds
    @Option(help: "Die with this parent process (PR_SET_PDEATHSIG), for tools that spawn a miniport.")
    var parent: Int32?
    @Option(
        help: ArgumentHelp(
            "Serve Prometheus metrics at GET http://HOST:PORT/metrics; loopback only (127.0.0.1:PORT or [::1]:PORT; port 0: any free one).",
            valueName: "host:port"))
    var metrics: String?

    /// A minute: the test drivers' delays are in microseconds and must not overflow as nanoseconds.
    static let longestDelayMicroseconds = 60_000_000

    /// Every option is checked here, before anything starts: the miniport's own preconditions (a limit of 0
    /// would make the first binding's segment layout trap) become a usage error naming the allowed range.
    func validate() throws {
        let maximum = BindingConfiguration.maximum
        if let metrics { try MetricsEndpoint.validate(metrics) }
        guard RuntimeDirectory.isValidAdapterName(adapter) else {
            throw ValidationError("--adapter \"\(adapter)\": 1 to 64 of A-Z a-z 0-9 . _ - (not starting with a dot)")
        }
        let socketPath = RuntimeDirectory(dir).socketPath(adapter: adapter)
        let longestPath = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1
        guard socketPath.utf8.count <= longestPath else {
            throw ValidationError(
                "--dir: the socket path \(socketPath) is \(socketPath.utf8.count) bytes, at most \(longestPath) fit "
                    + "a Unix socket address (use a shorter --dir or --adapter)")
        }
        guard let mode = mode_t(socketMode, radix: 8), mode <= 0o777, mode & 0o600 == 0o600 else {
            throw ValidationError(
                "--socket-mode \(socketMode): must be octal within 600...777 (the owner reads and writes)")
        }
        guard (1...maximum.packetCount).contains(maxPackets) else {
            throw ValidationError("--max-packets \(maxPackets): must be within 1...\(maximum.packetCount)")
        }
        guard (1...maximum.chunkCount).contains(maxChunks) else {
            throw ValidationError("--max-chunks \(maxChunks): must be within 1...\(maximum.chunkCount)")
        }
        guard (2...maximum.transmitRingSize).contains(maxRing), maxRing & (maxRing - 1) == 0 else {
            throw ValidationError(
                "--max-ring \(maxRing): must be a power of two within 2...\(maximum.transmitRingSize)")
        }
        if let delayUs, !(0...Self.longestDelayMicroseconds).contains(delayUs) {
            throw ValidationError("--delay-us \(delayUs): must be within 0...\(Self.longestDelayMicroseconds)")
        }
        if let cpu {
            let cpus = max(1, sysconf(Int32(_SC_NPROCESSORS_CONF)))
            guard (0..<cpus).contains(cpu) else {
                throw ValidationError("--cpu \(cpu): must be within 0...\(cpus - 1) (this machine's CPUs)")
            }
        }
        if let parent, parent < 1 { throw ValidationError("--parent \(parent): must be a process id (1 or more)") }
        guard (1...4096).contains(maxBindingsPerProcess) else {
            throw ValidationError("--max-bindings-per-process \(maxBindingsPerProcess): must be within 1...4096")
        }
        guard (1...65536).contains(maxBindingsPerUser) else {
            throw ValidationError("--max-bindings-per-user \(maxBindingsPerUser): must be within 1...65536")
        }
        guard let perUser = Self.bytes(maxMemoryPerUser), (1 << 20...1 << 40).contains(perUser) else {
            throw ValidationError("--max-memory-per-user \(maxMemoryPerUser): must be within 1M...1024G")
        }
        guard let total = Self.bytes(maxMemory), (1 << 20...1 << 42).contains(total) else {
            throw ValidationError("--max-memory \(maxMemory): must be within 1M...4096G")
        }
        if let maxConnections, !(16...1 << 20).contains(maxConnections) {
            throw ValidationError("--max-connections \(maxConnections): must be within 16...1048576")
        }
        guard (0...3_600_000).contains(stallTimeoutMs) else {
            throw ValidationError("--stall-timeout-ms \(stallTimeoutMs): must be within 0...3600000")
        }
    }

    /// "1048576", "64K", "512M", "1G" as bytes.
    static func bytes(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        guard let last = text.uppercased().last else { return nil }
        guard let unit = units[last] else { return Int(text) }
        guard let count = Int(text.dropLast()) else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: unit)
        return overflow ? nil : product
    }

    /// Every connection takes a descriptor: serve as many as the hard limit allows.
    static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = max(limit.rlim_cur, min(limit.rlim_max, 1 << 16))
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    func run() throws {
        if let parent { try ProcessControl.dieWithParent(expectedParent: parent) }
        // SIGINT and SIGTERM are taken by one thread that asks the miniport to stop.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)

        let level = logLevel.level
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ringportd")
        var limits = BindingConfiguration.maximum
        limits.packetCount = min(maxPackets, limits.packetCount)
        limits.chunkCount = min(maxChunks, limits.chunkCount)
        limits.transmitRingSize = min(maxRing, limits.transmitRingSize)
        var options = MiniportOptions(
            adapter: adapter,
            directory: RuntimeDirectory(dir),
            limits: limits,
            checked: checked ?? NetRingChecking.isEnabledByDefault,
            socketMode: mode_t(socketMode, radix: 8)!,
            waitPolicy: wait,
            dataPlaneCPU: cpu
        )
        options.maxBindingsPerProcess = maxBindingsPerProcess
        options.maxBindingsPerUser = maxBindingsPerUser
        options.maxMemoryPerUser = Self.bytes(maxMemoryPerUser)!
        options.maxMemory = Self.bytes(maxMemory)!
        options.maxConnections = maxConnections
        options.group = group
        Self.raiseDescriptorLimit()
        let miniport: Miniport
        do {
            miniport = try Miniport(
                options: options,
                driver: BuiltInDrivers.make(
                    driver.rawValue,
                    verify: verify,
                    seed: seed,
                    maxDelayMicroseconds: delayUs,
                    policy: policy.hubPolicy,
                    stallTimeoutMilliseconds: stallTimeoutMs == 0 ? nil : stallTimeoutMs
                )!,
                logger: logger
            )
        } catch {
            FileHandle.standardError.write(Data("ringportd: \(error)\n".utf8))
            throw ExitCode(1)
        }
        logger.info(
            "serving adapter \(adapter) with the \(driver.rawValue) driver at \(miniport.socketPath) (pid \(getpid()))"
        )
        let metricsEndpoint: MetricsEndpoint?
        do {
            metricsEndpoint = try metrics.map { try MetricsEndpoint($0, miniport: miniport, logger: logger) }
        } catch {
            FileHandle.standardError.write(Data("ringportd: --metrics: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let scrape = metricsEndpoint.map { "  metrics:             curl \($0.url)\n" } ?? ""
        // The tool beside this executable when it was built with it, else how to build and run it.
        let tool = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("ringport").path
        let ringport = FileManager.default.isExecutableFile(atPath: tool) ? tool : "swift run -c release ringport"
        let banner = """
            ringportd: adapter \(adapter) is up (driver \(driver.rawValue)).
              connect from Swift:  import Ringport
                                   let adapter = try Adapter.open("\(adapter)", directory: RuntimeDirectory("\(options.directory.path)"))
              try it:              \(ringport) stress --adapter \(adapter) --dir \(options.directory.path) --packets 100000
            \(scrape)  stop it:             Ctrl-C (SIGINT) or SIGTERM

            """
        FileHandle.standardOutput.write(Data(banner.utf8))
        let blocked = signals
        let watcher = Thread {
            var set = blocked
            var caught: Int32 = 0
            sigwait(&set, &caught)
            logger.info("signal \(caught): closing every binding")
            miniport.requestStop()
        }
        watcher.start()
        miniport.run()
        metricsEndpoint?.stop()
        logger.info("stopped")
    }
}

extension WaitPolicy: ExpressibleByArgument {}
/// `--log-level`: swift-log's levels, as a type of our own (conforming theirs would be retroactive).
enum LogLevel: String, CaseIterable, ExpressibleByArgument {
    case trace, debug, info, notice, warning, error, critical

    var level: Logger.Level { Logger.Level(rawValue: rawValue) ?? .info }
}
