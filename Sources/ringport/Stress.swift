import ArgumentParser
import Foundation
import Ringport
import RingportCore
import RingportSystem

/// A protocol process that sends packets of random sizes, buffer counts, OOB data and batch sizes, and
/// checks that each completes exactly once, in ring order, with the status the driver gives.
struct Stress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send packets of random shapes and check every completion.",
        discussion: """
            Each packet carries its sequence number and a byte pattern (checked by `ringportd --verify` or the \
            test drivers), its sequence in ProtocolReserved, a random 802.3 priority and flags. Completed \
            packets are reinitialized and reused. Prints `ok sent=N ...` and exits 0 when every packet came \
            back once, in order, with the expected status. After Ctrl-C it stops sending, takes the last \
            completions, prints the same line and exits 130.

            With --chaos it starts its own loopback ringportd (found beside this executable, in a private \
            directory) and --protocols checking protocols, SIGKILLs them at random (--protocol-kills, \
            --miniport-kills) and restarts them, while the survivors check every completion, order and byte; \
            then it prints one `chaos ...` line (lost, duplicated, leaked descriptors, segments, pool and \
            socket files, reclaim and dead-miniport times) and exits 1 on any loss, duplicate or leak.

            Examples:
              ringport stress --packets 100000 --max-buffers 8 --expect verified
              ringport stress --chaos --protocols 4 --protocol-kills 1000 --miniport-kills 100
            """
    )

    enum Expectation: String, ExpressibleByArgument, CaseIterable {
        /// Every status SUCCESS (the null driver).
        case success
        /// The test drivers' rule: FAILURE for sequence % 97 == 13, SUCCESS otherwise.
        case verified
    }

    @OptionGroup var where_: AdapterOptions
    @Option(help: "Packets to send (1 or more).") var packets = 100_000
    @Option(help: "Seed of the random shapes.") var seed: UInt64 = 1
    @Option(help: "Most buffers per packet (1...16).") var maxBuffers = 8
    @Option(help: "Largest packet in bytes (16...--max-buffers × 2048, the chunk size this binding asks for).")
    var maxSize = 4096
    @Option(help: "Largest batch per send (1...1024, the packets this binding asks for).") var maxBatch = 32
    @Option(help: "Statuses to expect: success (the null driver) or verified (the test drivers).")
    var expect: Expectation = .success
    @Option(help: "Seconds to wait for the last completions (0.001...86400).") var timeout = 60.0
    @Option(help: "After this many packets, stop and hold them until killed (for tests).") var holdAfter: Int?
    @Flag(help: "Chaos: spawn a loopback ringportd and checking protocols, SIGKILL them at random, count leaks.")
    var chaos = false
    @Option(help: "Chaos: protocol processes.") var protocols = 4
    @Option(help: "Chaos: protocol kills.") var protocolKills = 20
    @Option(help: "Chaos: miniport kills.") var miniportKills = 3
    @Option(help: "Chaos: longest run in seconds (kills not done by then are skipped).") var duration = 900.0
    @Flag(help: "Chaos: log every child's events to stderr.") var verbose = false
    @Option(help: .hidden) var chaosDriver = "loopback"
    @Flag(help: .hidden) var chaosChild = false
    @Flag(help: .hidden) var tolerant = false
    @Option(help: .hidden) var parent: Int32?

    /// What this binding asks for: one packet may chain `fragmentsPerPacket` buffers of `chunkSize` bytes.
    static let binding = BindingConfiguration(
        packetCount: 1024,
        chunkCount: 4096,
        chunkSize: 2048,
        transmitRingSize: 256,
        fragmentsPerPacket: 16
    )

    func validate() throws {
        let binding = Self.binding
        guard packets >= 1 else { throw ValidationError("--packets \(packets): must be 1 or more") }
        guard (1...binding.fragmentsPerPacket).contains(maxBuffers) else {
            throw ValidationError("--max-buffers \(maxBuffers): must be within 1...\(binding.fragmentsPerPacket)")
        }
        // The library refuses a packet of more buffers than the binding's fragments per packet.
        let largest = maxBuffers * binding.chunkSize
        guard (PayloadPattern.headerSize...largest).contains(maxSize) else {
            throw ValidationError(
                "--max-size \(maxSize): must be within \(PayloadPattern.headerSize)...\(largest) "
                    + "(\(maxBuffers) buffers of \(binding.chunkSize) bytes; see --max-buffers)")
        }
        guard (1...binding.packetCount).contains(maxBatch) else {
            throw ValidationError("--max-batch \(maxBatch): must be within 1...\(binding.packetCount)")
        }
        guard (0.001...86_400).contains(timeout) else {
            throw ValidationError("--timeout \(timeout): must be within 0.001...86400 seconds")
        }
        if let holdAfter, holdAfter < 0 { throw ValidationError("--hold-after \(holdAfter): must be 0 or more") }
        guard chaos else { return }
        guard (1...64).contains(protocols) else {
            throw ValidationError("--protocols \(protocols): must be within 1...64")
        }
        guard protocolKills >= 0, miniportKills >= 0 else {
            throw ValidationError("--protocol-kills and --miniport-kills must be 0 or more")
        }
        guard (0.001...604_800).contains(duration) else {
            throw ValidationError("--duration \(duration): must be within 0.001...604800 seconds")
        }
    }

    func run() throws {
        if chaos {
            var run = ChaosRun(
                protocols: protocols, protocolKills: protocolKills, miniportKills: miniportKills, seed: seed,
                duration: duration, verbose: verbose, driver: chaosDriver)
            if try !run.go() { throw ExitCode(1) }
            return
        }
        if chaosChild {
            if let parent { try ProcessControl.dieWithParent(expectedParent: parent) }
            var child = ChaosChild(
                adapter: where_.adapter, directory: RuntimeDirectory(where_.dir), seed: seed, maxSize: maxSize,
                maxBuffers: maxBuffers, tolerant: tolerant)
            let status = child.run(openTimeout: timeout)
            if status != 0 { throw ExitCode(status) }
            return
        }
        Interruption.install()
        let adapter = try Adapter.open(
            where_.adapter, configuration: Self.binding, directory: RuntimeDirectory(where_.dir))
        adapter.waitPolicy = where_.wait
        // A miniport may grant less than asked: what the shapes need must still fit.
        let granted = adapter.configuration
        guard granted.chunkSize * min(granted.fragmentsPerPacket, maxBuffers) >= maxSize else {
            throw RuntimeFailure(
                "--max-size \(maxSize): the miniport granted \(granted.fragmentsPerPacket) buffers of "
                    + "\(granted.chunkSize) bytes per packet")
        }
        let run = StressRun(self, adapter: adapter)
        try run.go()
    }
}

struct StressRun: ~Copyable {
    let options: Stress
    // The options the per-packet code reads, as plain values: an option's wrapper costs a metadata lookup
    // at every read.
    let maxBatch: Int
    let maxSize: Int
    let maxBuffers: Int
    let expect: Stress.Expectation
    let timeout: Double
    let adapter: Adapter
    var random: SystemRandomNumberGenerator = SystemRandomNumberGenerator()
    var state: UInt64
    var sent: UInt64 = 0
    var completed: UInt64 = 0
    var failed: UInt64 = 0
    var bytes = 0
    var errors: [String] = []
    var spare = PacketArray()
    var lastProgress = ProcessControl.monotonicNanoseconds()
    var batch = PacketArray(reservingCapacity: 64)

    init(_ options: Stress, adapter: Adapter) {
        self.options = options
        (maxBatch, maxSize, maxBuffers) = (options.maxBatch, options.maxSize, options.maxBuffers)
        (expect, timeout) = (options.expect, options.timeout)
        self.adapter = adapter
        state = options.seed
    }

    mutating func next(_ bound: Int) -> Int {
        Int(SplitMix64.next(&state) % UInt64(bound))
    }

    consuming func go() throws {
        let total = UInt64(options.packets)
        let hold = options.holdAfter.map(UInt64.init) ?? UInt64.max
        while sent < total && sent < hold && !Interruption.isRequested {
            let size = 1 + next(maxBatch)
            for _ in 0..<size where sent < total && sent < hold {
                guard let packet = try makePacket(sequence: sent) else { break }
                batch.append(packet)
                sent += 1
            }
            adapter.send(&batch)
            collect(wait: 0)
            if case .closed(let reason) = adapter.state { throw RuntimeFailure("binding closed: \(reason)") }
        }
        if sent >= hold {
            FileHandle.standardOutput.write(Data("holding \(sent - completed) packets\n".utf8))
            while true { sleep(60) }
        }
        // After Ctrl-C too, the last completions come in (bounded by --timeout) before the summary.
        let interrupted = Interruption.signal
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(timeout * 1e9)
        while completed < sent && ProcessControl.monotonicNanoseconds() < deadline {
            collect(wait: 0.1)
            if case .closed = adapter.state { break }
        }
        spare = PacketArray()
        let pool = adapter.packetPoolUsage
        try? adapter.close()
        if completed != sent { errors.append("\(sent - completed) packets never completed") }
        if !adapter.misuses.isEmpty { errors.append("misuses: \(adapter.misuses)") }
        print(
            "\(errors.isEmpty ? "ok" : "FAILED") sent=\(sent) completed=\(completed) failed=\(failed) bytes=\(bytes) "
                + "pool_in_use=\(pool)"
        )
        for error in errors.prefix(10) { print("error: \(error)") }
        if interrupted != nil { try exitIfInterrupted() }
        if !errors.isEmpty { throw ExitCode(1) }
    }

    /// A packet for `sequence`: reused from `spare` when possible, else allocated (waiting for completions
    /// when the pools are used up).
    mutating func makePacket(sequence: UInt64) throws -> Packet? {
        var packet: Packet
        if let reused = spare.popLast() {
            packet = reused
        } else {
            while true {
                do {
                    packet = try adapter.allocatePacket()
                    break
                } catch {
                    guard case .resources = error else { throw error }
                    try waitForFreedResources()
                    if let reused = spare.popLast() {
                        packet = reused
                        break
                    }
                }
            }
        }
        let length = 16 + next(maxSize - 15)
        let chunk = adapter.configuration.chunkSize
        let buffers = max(min(1 + next(maxBuffers), length), (length + chunk - 1) / chunk)
        guard buffers <= maxBuffers || length > maxBuffers * chunk else { return nil }
        // Cut the payload into pieces; half the packets are built back to front with chainAtFront.
        var pieces: [Range<Int>] = []
        var offset = 0
        for b in 0..<buffers {
            let remaining = length - offset
            let piece = b == buffers - 1 ? remaining : max(1, min(chunk, remaining / (buffers - b)))
            pieces.append(offset..<offset + piece)
            offset += piece
        }
        let front = next(2) == 0
        for range in front ? pieces.reversed() : pieces {
            var buffer: Buffer
            while true {
                do {
                    buffer = try adapter.allocateBuffer(length: range.count)
                    break
                } catch {
                    guard case .resources = error else { throw error }
                    try waitForFreedResources()
                }
            }
            buffer.withUnsafeMutableBytes {
                PayloadPattern.fill($0, sequence: sequence, totalLength: length, start: range.lowerBound)
            }
            if front { packet.chainAtFront(buffer) } else { packet.chainAtBack(buffer) }
        }
        if packet.bufferCount != buffers || packet.totalLength != length {
            errors.append("packet \(sequence): query says \(packet.bufferCount) buffers, \(packet.totalLength) bytes")
        }
        bytes += length
        packet.timeToSend = sequence
        packet.mediaSpecificInformation = .ieee8023Priority(UInt8(next(8)))
        packet.setFlags(next(2) == 0 ? [.dontLoopback] : [])
        packet.withProtocolReserved { $0.storeBytes(of: sequence, as: UInt64.self) }
        return packet
    }

    /// A pool is used up: send what is batched and take completions until some come back.
    mutating func waitForFreedResources() throws {
        adapter.send(&batch)
        collect(wait: 1)
        try checkProgress()
    }

    /// Fails the run when nothing completed for `--timeout` seconds (every wait is bounded).
    func checkProgress() throws {
        let stalled = Double(ProcessControl.monotonicNanoseconds() - lastProgress) / 1e9
        guard stalled < timeout else {
            throw RuntimeFailure("no completion for \(Int(stalled)) s (sent \(sent), completed \(completed))")
        }
    }

    mutating func collect(wait seconds: Double) {
        var returned: [(UInt64, NDISStatus)] = []
        var keep = PacketArray()
        let check: (consuming Packet, NDISStatus) -> Void = { packet, status in
            let sequence = packet.withProtocolReserved { $0.load(as: UInt64.self) }
            returned.append((sequence, status))
            keep.append(packet)
        }
        if seconds > 0 {
            adapter.waitForCompletions(timeoutSeconds: seconds, check)
        } else {
            adapter.pollCompletions(check)
        }
        for (sequence, status) in returned {
            if sequence != completed { errors.append("completion \(completed) carried sequence \(sequence)") }
            let expected: NDISStatus =
                switch expect {
                case .success: .success
                case .verified: PayloadPattern.expectedStatus(sequence)
                }
            if status != expected {
                errors.append("packet \(sequence) completed with \(status), the driver gives \(expected)")
            }
            if !status.isSuccess { failed += 1 }
            completed += 1
        }
        if !returned.isEmpty { lastProgress = ProcessControl.monotonicNanoseconds() }
        // Reinitialize at once: that frees the buffers for the next packets (reuse, not free and allocate).
        while var packet = keep.popLast() {
            packet.reinitialize()
            spare.append(packet)
        }
    }
}
