import ArgumentParser
import Glibc
import RingTransfer
import RingportCore
import RingportSystem

struct Drive: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play the driver of the transmit queue in an existing transfer segment.",
        discussion: "Prints `ok packets=N bytes=B` and exits 0 when every packet arrived intact and was returned."
    )

    @Option(help: "Name of the shared-memory segment (/name).") var segment: String
    @OptionGroup var plan: PlanOptions
    @Option(help: "Verify every ring transition (default: on in debug builds).") var checked: Bool?
    @Option(help: "Give up after this many seconds without a packet.") var timeout = 60.0
    @Option(help: "Pin to this CPU.") var cpu: Int?
    @Option(help: "Spins before yielding the CPU when idle.") var spins = 256
    @Option(help: "Exit when this process id is no longer our parent.") var parent: Int32?
    @Option(help: "Sleep this many microseconds after each Advance that moved packets (a slow driver).")
    var stallMicroseconds = 0
    @Flag(help: "Run the bare-ring benchmark's driver loop (one fragment per packet, no payload).")
    var bench = false

    func run() throws {
        if let parent { try ProcessControl.dieWithParent(expectedParent: parent) }
        if let cpu { try ProcessControl.pin(toCPU: cpu) }
        let mapped = try SharedSegment.open(name: segment)
        let rings = try TransferRings.attach(mapped, chunkSize: plan.chunkSize)
        let arguments = plan.plan(batch: 1)
        var driver = TransferDriver(
            plan: TransferPlan(
                packets: arguments.packets,
                maxFragments: arguments.maxFragments,
                maxFragmentBytes: arguments.maxFragmentBytes,
                seed: arguments.seed,
                payload: arguments.payload
            ),
            rings: rings,
            checked: checked ?? NetRingChecking.isEnabledByDefault
        )
        rings.driverReady.store(UInt32(getpid()))
        if bench {
            do {
                try RingBench.runDriver(rings, packets: plan.packets, timeoutSeconds: timeout)
            } catch {
                FileHandleStderr.write("ringport-peer drive: \(error)\n")
                throw ExitCode(1)
            }
            print("ok packets=\(plan.packets)")
            return
        }
        do {
            try driver.run(timeoutSeconds: timeout, spins: spins, stallMicroseconds: stallMicroseconds)
        } catch {
            FileHandleStderr.write("ringport-peer drive: \(error)\n")
            throw ExitCode(1)
        }
        print("ok packets=\(driver.received) bytes=\(driver.bytes)")
    }
}

enum FileHandleStderr {
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
