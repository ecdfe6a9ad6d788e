import ArgumentParser
import Foundation
import RingTransfer
import RingportCore
import RingportSystem

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure descriptors per second between two processes: through the bare ring, or a pipe.",
        discussion: """
            Each packet is one packet element and one fragment element (32 bytes of descriptors, no payload).
            This process (pinned to CPU 0) plays the OS; a spawned `ringport-peer` (CPU 1) plays the driver.
            `ring` publishes EndIndex once per --batch packets and reclaims through BeginIndex; `pipe` writes the
            same 32-byte records, --batch per write(2). Prints a RESULT line in the anchors' format (BENCHMARKS.md).

            Example:
              ringport-peer bench --transport ring --batch 32 --packets 20000000
            """
    )

    enum Transport: String, ExpressibleByArgument { case ring, pipe }

    @Option(help: "ring or pipe.") var transport: Transport = .ring
    @Option(help: "Packets per publish (ring) or per write (pipe).") var batch = 32
    @Option(help: "Packets to send.") var packets = 20_000_000
    @Option(help: "Packet-ring elements (power of two); the fragment ring is the same size.") var ringSize = 1024

    func validate() throws {
        guard batch >= 1, packets >= 1, ringSize >= 2, ringSize & (ringSize - 1) == 0, batch < ringSize else {
            throw ValidationError("need batch >= 1, packets >= 1, ring-size a power of two above batch")
        }
    }

    func run() throws {
        try ProcessControl.pin(toCPU: 0)
        let result: (seconds: Double, cpuNanoseconds: Double) =
            switch transport {
            case .ring: try runRing()
            case .pipe: try runPipe()
            }
        let peer = "ringport_\(transport.rawValue)" + (batch == 1 ? "" : "_batch\(batch)")
        let mps = Double(packets) / result.seconds
        print(
            "RESULT peer=\(peer) mode=stream size=32 n=\(packets) mps=\(Int(mps)) "
                + "cpu_ns_per_msg=\(String(format: "%.1f", result.cpuNanoseconds / Double(packets))) "
                + "wall_s=\(String(format: "%.3f", result.seconds)) errors=0"
        )
    }

    func runRing() throws -> (Double, Double) {
        let geometry = TransferGeometry(packetRingSize: ringSize, fragmentRingSize: ringSize, chunkSize: 128)
        let segment = try SharedSegment.createNamed(prefix: "ringport-bench-", layout: geometry.layout)
        let rings = try TransferRings.initialize(segment, geometry)
        let child = try spawnSelf([
            "drive", "--segment", segment.name, "--packets", "\(packets)", "--max-fragments", "1",
            "--max-fragment-bytes", "64", "--chunk-size", "128", "--no-payload", "--checked", "false",
            "--cpu", "1", "--parent", "\(getpid())", "--bench",
        ])
        let deadline = ProcessControl.monotonicNanoseconds() + 10_000_000_000
        while rings.driverReady.load() == 0 {
            guard child.isRunning, ProcessControl.monotonicNanoseconds() < deadline else {
                child.terminate()
                throw TransferFailure("the driver process did not attach")
            }
            usleep(1000)
        }
        let cpu0 = Self.cpuNanoseconds(RUSAGE_SELF)
        let t0 = ProcessControl.monotonicNanoseconds()
        try RingBench.runOS(rings, packets: packets, batch: batch, timeoutSeconds: 30)
        let t1 = ProcessControl.monotonicNanoseconds()
        let cpu = Self.cpuNanoseconds(RUSAGE_SELF) - cpu0
        child.waitUntilExit()
        guard child.terminationStatus == 0 else { throw TransferFailure("driver exited \(child.terminationStatus)") }
        return (Double(t1 - t0) / 1e9, cpu + Self.cpuNanoseconds(RUSAGE_CHILDREN))
    }

    func runPipe() throws -> (Double, Double) {
        let input = Pipe()
        let output = Pipe()
        let child = try spawnSelf(
            ["pipe-sink", "--packets", "\(packets)", "--batch", "\(batch)", "--cpu", "1", "--parent", "\(getpid())"],
            input: input,
            output: output
        )
        guard String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("ready") else {
            throw TransferFailure("pipe sink did not start")
        }
        let fd = input.fileHandleForWriting.fileDescriptor
        var buffer = [UInt8](repeating: 0, count: batch * PipeRecord.size)
        let cpu0 = Self.cpuNanoseconds(RUSAGE_SELF)
        let t0 = ProcessControl.monotonicNanoseconds()
        var sent = 0
        while sent < packets {
            let n = min(batch, packets - sent)
            buffer.withUnsafeMutableBytes { bytes in
                for k in 0..<n { PipeRecord.write(sequence: UInt32(truncatingIfNeeded: sent + k), into: bytes, at: k) }
                var done = 0
                while done < n * PipeRecord.size {
                    let w = write(fd, bytes.baseAddress! + done, n * PipeRecord.size - done)
                    precondition(w > 0, "pipe write failed")
                    done += w
                }
            }
            sent += n
        }
        guard String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("done") else {
            throw TransferFailure("pipe sink failed")
        }
        let t1 = ProcessControl.monotonicNanoseconds()
        let cpu = Self.cpuNanoseconds(RUSAGE_SELF) - cpu0
        try input.fileHandleForWriting.close()
        child.waitUntilExit()
        guard child.terminationStatus == 0 else { throw TransferFailure("pipe sink exited \(child.terminationStatus)") }
        return (Double(t1 - t0) / 1e9, cpu + Self.cpuNanoseconds(RUSAGE_CHILDREN))
    }

    func spawnSelf(_ arguments: [String], input: Pipe? = nil, output: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = arguments
        if let input { process.standardInput = input }
        process.standardOutput = output ?? FileHandle.nullDevice
        try process.run()
        return process
    }

    static func cpuNanoseconds(_ who: __rusage_who) -> Double {
        var usage = rusage()
        getrusage(who.rawValue, &usage)
        let user = Double(usage.ru_utime.tv_sec) * 1e9 + Double(usage.ru_utime.tv_usec) * 1e3
        return user + Double(usage.ru_stime.tv_sec) * 1e9 + Double(usage.ru_stime.tv_usec) * 1e3
    }
}
