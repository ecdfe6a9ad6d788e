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
    @Option(help: "Runtime directory for the socket and lock (default: $RINGPORT_DIR, else /run/ringport for root).")
    var dir: String?
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
    @Option(help: "Pin the data thread to this CPU.") var cpu: Int?
    @Option(help: "loopback and hub: lossless (back-pressure) or drop (counted) when a receiver has no buffer.")
    var policy = "lossless"

    func validate() throws {
        guard BuiltInDrivers.names.contains(driver) else { throw ValidationError("unknown driver \(driver)") }
        guard mode_t(socketMode, radix: 8) != nil else { throw ValidationError("socket mode must be octal") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
        guard HubDriver.Policy(rawValue: policy) != nil else { throw ValidationError("policy: lossless or drop") }
    }

    func run() throws {
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
        let options = MiniportOptions(
            adapter: adapter,
            directory: RuntimeDirectory(dir),
            limits: limits,
            checked: checked ?? NetRingChecking.isEnabledByDefault,
            socketMode: mode_t(socketMode, radix: 8)!,
            dataPlaneCPU: cpu
        )
        let miniport: Miniport
        do {
            miniport = try Miniport(
                options: options,
                driver: BuiltInDrivers.make(
                    driver,
                    verify: verify,
                    seed: seed,
                    maxDelayMicroseconds: delayUs,
                    policy: HubDriver.Policy(rawValue: policy)!
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
