import Benchmark
import Foundation
import Logging
import Ringport
import RingportMiniport

// In-process costs of the public API: a `Miniport` served on a thread of this process (the embedding API) and
// bindings opened to it with `Adapter.open`, as a protocol would. Every benchmark runs 1000 packets per
// iteration (`scalingFactor: .kilo`): `swift package benchmark` prints time and mallocs per packet (whole
// numbers, so a malloc every few packets shows as 0), `--scale` per iteration, that is per 1000 packets,
// exactly. The malloc counter sees the whole process, the miniport's data thread too; the "harness" row
// (an empty iteration beside an idle miniport) is what the framework itself counts per iteration.

/// 1000 packets (or frames) per iteration.
func configuration() -> Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 20,  // pools, rings and arrays reach their steady state first
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 5_000
    )
}

/// A miniport in this process and the bindings of one benchmark.
final class Rig {
    enum Shape {
        /// One binding to the null driver: it completes every packet.
        case null
        /// One binding to a loopback driver: every frame comes back to it.
        case loopback
        /// A send-only binding and a receiving one on a hub: every frame goes from the first to the second.
        case hub
    }

    let miniport: Miniport
    let thread: Thread
    let directory: RuntimeDirectory
    let sender: Adapter
    let receiver: Adapter?
    let batch: Int
    let size = 64
    /// Packets in flight at most: well inside the pools and rings, so allocation never fails.
    let window = 256
    var pending: PacketArray
    var sequence: UInt64 = 0
    var completed = 0
    var received = 0

    static let adapter = "bench0"

    init(_ shape: Shape, batch: Int) throws {
        directory = RuntimeDirectory("/tmp/ringport-benchmarks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        var logger = Logger(label: "ringport-benchmarks")
        logger.logLevel = .warning
        let driver: any MiniportDriver =
            switch shape {
            case .null: NullDriver()
            case .loopback: HubDriver(mode: .loopback)
            case .hub: HubDriver(mode: .hub)
            }
        let created = try Miniport(
            options: MiniportOptions(adapter: Self.adapter, directory: directory, checked: false),
            driver: driver,
            logger: logger
        )
        miniport = created
        thread = Thread { created.run() }
        thread.start()
        let geometry = BindingConfiguration(
            packetCount: 1024,
            chunkCount: 4096,
            chunkSize: 2048,
            transmitRingSize: 512,
            fragmentsPerPacket: 2,
            receiveRingSize: shape == .null ? 2 : 512,
            // On a hub the sender takes nothing: an empty filter, so the hub never waits for it.
            packetFilter: shape == .hub ? .none : .default
        )
        sender = try Adapter.open(Self.adapter, configuration: geometry, directory: directory, checked: false)
        if shape == .hub {
            var receiving = geometry
            receiving.packetFilter = .default
            receiver = try Adapter.open(Self.adapter, configuration: receiving, directory: directory, checked: false)
        } else {
            receiver = shape == .loopback ? sender : nil
        }
        self.batch = batch
        pending = PacketArray(reservingCapacity: batch)
    }

    /// Allocates one packet of one buffer, writes its sequence number, chains it and sends it once `batch`
    /// are waiting; takes what has completed or arrived meanwhile.
    @inline(__always)
    func step() {
        if sender.outstandingSends >= window { drain(below: window) }
        var packet = try! sender.allocatePacket()
        let buffer = try! sender.allocateBuffer(length: size)
        let sequence = self.sequence
        buffer.withUnsafeMutableBytes { $0.storeBytes(of: sequence, as: UInt64.self) }
        packet.chainAtBack(buffer)
        pending.append(packet)
        self.sequence = sequence &+ 1
        if pending.count >= batch {
            sender.send(&pending)
            pump()
        }
    }

    /// Allocates a packet and a buffer, chains them, and drops the packet: the pools alone.
    @inline(__always)
    func allocateAndDrop() {
        var packet = try! sender.allocatePacket()
        packet.chainAtBack(try! sender.allocateBuffer(length: size))
    }

    /// Send-completions on the sender, receives (each returned at once, by dropping it) on the receiver.
    @inline(__always)
    func pump() {
        completed += sender.pollCompletions { _, _ in }
        if let receiver { received += receiver.pollReceives { _ in } }
    }

    /// Pumps until fewer than `limit` sends are outstanding.
    func drain(below limit: Int) {
        let deadline = DispatchTime.now().uptimeNanoseconds + 10_000_000_000
        while sender.outstandingSends >= max(limit, 1) {
            pump()
            if case .closed(let reason) = sender.state { fatalError("binding closed: \(reason)") }
            if DispatchTime.now().uptimeNanoseconds > deadline { fatalError("no progress in 10 s") }
        }
    }

    func shutDown() {
        sender.send(&pending)
        drain(below: 1)
        try? sender.close(timeoutSeconds: 5)
        if let receiver, receiver !== sender { try? receiver.close(timeoutSeconds: 5) }
        miniport.requestStop()
        let deadline = Date().addingTimeInterval(10)
        while !thread.isFinished && Date() < deadline { usleep(1000) }
        try? FileManager.default.removeItem(atPath: directory.path)
    }
}

/// The rig of the benchmark running now (each runs alone; setup makes it, teardown ends it).
nonisolated(unsafe) var rig: Rig?

func register(_ name: String, _ shape: Rig.Shape, batch: Int, body: @escaping (Rig) -> Void) {
    _ = Benchmark(
        name,
        configuration: configuration(),
        closure: { benchmark in
            let rig = rig!
            for _ in benchmark.scaledIterations { body(rig) }
        },
        setup: { rig = try Rig(shape, batch: batch) },
        teardown: {
            rig?.shutDown()
            rig = nil
        }
    )
}

let benchmarks: @Sendable () -> Void = {
    register("harness: an empty iteration, an idle miniport beside it", .null, batch: 1) { _ in }
    register("pools: allocate, chain, drop (per packet)", .null, batch: 1) { $0.allocateAndDrop() }
    register("null: allocate, chain, send, complete, batch 1 (per packet)", .null, batch: 1) { $0.step() }
    register("null: allocate, chain, send, complete, batch 32 (per packet)", .null, batch: 32) { $0.step() }
    register("loopback: send, complete, receive, return, batch 32 (per frame)", .loopback, batch: 32) {
        $0.step()
    }
    register("hub: send, complete on one binding, receive, return on another, batch 32 (per frame)", .hub, batch: 32) {
        $0.step()
    }
}
