import ArgumentParser

@main
struct RingportPeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringport-peer",
        abstract: "Plays one side of a bare Ringport ring in its own process, for tests and benchmarks.",
        discussion: """
            `drive` attaches to a segment another process made and plays the NetAdapterCx driver of its
            transmit queue: it checks every packet's order, fragments and payload bytes and returns them.
            `bench` measures descriptors per second through the ring (or a pipe) between two processes.

            Example:
              ringport-peer bench --transport ring --batch 32
            """,
        subcommands: [Drive.self, Bench.self, PipeSink.self, Probe.self]
    )
}

/// Options both sides of a transfer must agree on.
struct PlanOptions: ParsableArguments {
    @Option(help: "Packets to transfer.") var packets = 1_000_000
    @Option(help: "Most fragments per packet (each packet has 1...this many).") var maxFragments = 4
    @Option(help: "Most payload bytes per fragment.") var maxFragmentBytes = 64
    @Option(help: "Seed of the packet shapes and payload bytes.") var seed: UInt64 = 1
    @Flag(inversion: .prefixedNo, help: "Write and check payload bytes.") var payload = true
    @Option(help: "Data-area chunk size in bytes.") var chunkSize = 256

    func validate() throws {
        guard packets > 0, (1...64).contains(maxFragments), maxFragmentBytes >= 1,
            maxFragmentBytes + 63 <= chunkSize
        else { throw ValidationError("need packets > 0, 1...64 fragments, and max-fragment-bytes + 63 <= chunk-size") }
    }

    func plan(batch: Int) -> TransferPlanArguments {
        TransferPlanArguments(
            packets: packets,
            maxFragments: maxFragments,
            maxFragmentBytes: maxFragmentBytes,
            seed: seed,
            batch: batch,
            payload: payload,
            chunkSize: chunkSize
        )
    }
}

/// The plan as passed on to a spawned driver.
struct TransferPlanArguments {
    var packets: Int
    var maxFragments: Int
    var maxFragmentBytes: Int
    var seed: UInt64
    var batch: Int
    var payload: Bool
    var chunkSize: Int

    var driverArguments: [String] {
        [
            "--packets", "\(packets)", "--max-fragments", "\(maxFragments)", "--max-fragment-bytes",
            "\(maxFragmentBytes)", "--seed", "\(seed)", "--chunk-size", "\(chunkSize)",
            payload ? "--payload" : "--no-payload",
        ]
    }
}
