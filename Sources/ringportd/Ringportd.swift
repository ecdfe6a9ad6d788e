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
            With no arguments it serves the adapter `ringport0` with the `null` driver (completes every packet
            with SUCCESS) and prints how to connect. It runs until SIGINT or SIGTERM, when it completes every
            outstanding send with CLOSING, closes every binding and removes its socket.

            Drivers: null (ring style), resources (serialized, an array handler; answers RESOURCES at random
            points), serial (serialized, per-packet send only), random-order (deserialized; completes after
            random delays in random order), loopback (every packet comes back to its sender), hub (every packet
            goes to every other binding; --policy lossless or drop). The test drivers check every byte and the
            order of each binding's packets, and complete packet n with FAILURE when n % 97 == 13.

            Example:
              ringportd --adapter lab0 --driver random-order --dir /tmp/ringport
            """
    )

    @Option(help: "Adapter name (A-Z a-z 0-9 . _ -).") var adapter = "ringport0"
    @Option(help: "Driver: \(BuiltInDrivers.names.joined(separator: ", ")).") var driver = "null"
    @Option(
        help: """
            Runtime directory for the socket and lock (default: $RINGPORT_DIR, else /run/ringport for root, \
            $XDG_RUNTIME_DIR/ringport or /tmp/ringport-<uid> for others). The default directory is created 0700 \
            (0710 with --group, 0711 with a world --socket-mode) and refused if it is a symlink, another \
            user's, or writable by others. An explicit one is refused as a symlink or if owned by anyone but you or root; \
            an existing one keeps its mode.
            """)
    var dir: String?
    @Option(
        help: "Members of this group may bind: the socket becomes 0660 in the group, the directory searchable by it.")
    var group: String?
    @Flag(help: "The null driver checks every byte and the order of each binding's packets.") var verify = false
    @Option(help: "Seed of the test drivers' random choices.") var seed: UInt64 = 1
    @Option(help: "Longest completion delay of the test drivers, in microseconds (they draw from half of it to it).")
    var delayUs: Int?
    @Option(help: "Verify every ring transition (default: on in debug builds).") var checked: Bool?
    @Option(help: "Permissions of the control socket, octal.") var socketMode = "600"
    @Option(help: "Most packet descriptors a binding may have.") var maxPackets = 65_535
    @Option(help: "Most data-area chunks a binding may have.") var maxChunks = 262_144
    @Option(help: "Largest transmit ring a binding may have.") var maxRing = 16_384
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"
    @Option(help: "Most bindings one process may hold (1...4096).") var maxBindingsPerProcess = 16
    @Option(help: "Most bindings one user may hold (1...65536).") var maxBindingsPerUser = 64
    @Option(help: "Most segment memory one user's bindings may hold, bytes or with K, M, G (1M...1024G).")
    var maxMemoryPerUser = "1G"
    @Option(help: "Most segment memory of all bindings together, bytes or with K, M, G (1M...4096G).")
    var maxMemory = "4G"
    @Option(help: "Most control connections at once (16...1048576; default 4096, or fewer at a lower fd limit).")
    var maxConnections: Int?
    @Option(help: "Pin the data thread to this CPU.") var cpu: Int?
    @Option(
        help:
            "When nothing moves, the data thread: busyPoll (spins; needs a core of its own), adaptive (spins a learned while, then sleeps), blocking (sleeps at once)."
    )
    var wait: WaitPolicy = .default
    @Option(help: "loopback and hub: lossless (back-pressure) or drop (counted) when a receiver has no buffer.")
    var policy = "lossless"
    @Option(
        help:
            "lossless loopback and hub: drop for a receiver that takes nothing for this many milliseconds (0: never).")
    var stallTimeoutMs = HubDriver.defaultStallTimeoutMilliseconds
    @Option(help: "Die with this parent process (PR_SET_PDEATHSIG), for tools that spawn a miniport.")
    var parent: Int32?

    func validate() throws {
        guard BuiltInDrivers.names.contains(driver) else { throw ValidationError("unknown driver \(driver)") }
        guard mode_t(socketMode, radix: 8) != nil else { throw ValidationError("socket mode must be octal") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
        guard HubDriver.Policy(rawValue: policy) != nil else { throw ValidationError("policy: lossless or drop") }
        guard (1...4096).contains(maxBindingsPerProcess) else {
            throw ValidationError("max-bindings-per-process must be within 1...4096")
        }
        guard (1...65536).contains(maxBindingsPerUser) else {
            throw ValidationError("max-bindings-per-user must be within 1...65536")
        }
        guard let perUser = Self.bytes(maxMemoryPerUser), (1 << 20...1 << 40).contains(perUser) else {
            throw ValidationError("max-memory-per-user must be within 1M...1024G")
        }
        guard let total = Self.bytes(maxMemory), (1 << 20...1 << 42).contains(total) else {
            throw ValidationError("max-memory must be within 1M...4096G")
        }
        if let maxConnections, !(16...1 << 20).contains(maxConnections) {
            throw ValidationError("max-connections must be within 16...1048576")
        }
        guard (0...3_600_000).contains(stallTimeoutMs) else {
            throw ValidationError("stall-timeout-ms must be within 0...3600000")
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

        let level = Logger.Level(rawValue: logLevel)!
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
                    driver,
                    verify: verify,
                    seed: seed,
                    maxDelayMicroseconds: delayUs,
                    policy: HubDriver.Policy(rawValue: policy)!,
                    stallTimeoutMilliseconds: stallTimeoutMs == 0 ? nil : stallTimeoutMs
                )!,
                logger: logger
            )
        } catch {
            FileHandle.standardError.write(Data("ringportd: \(error)\n".utf8))
            throw ExitCode(1)
        }
        logger.info(
            "serving adapter \(adapter) with the \(driver) driver at \(miniport.socketPath) (pid \(getpid()))"
        )
        let banner = """
            ringportd: adapter \(adapter) is up (driver \(driver)).
              connect from Swift:  try Adapter.open("\(adapter)", directory: RuntimeDirectory("\(options.directory.path)"))
              try it:              ringport stress --adapter \(adapter) --dir \(options.directory.path) --packets 100000
              stop it:             Ctrl-C (SIGINT) or SIGTERM

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
        logger.info("stopped")
    }
}

extension WaitPolicy: ExpressibleByArgument {}
