import ArgumentParser
import Foundation
import Ringport
import RingportCore
import RingportSystem
import _RingportShim

/// Packets per second from one protocol to the miniport (through the ring), or the same payloads through a
/// Unix domain socket to a spawned reader, as one `RESULT peer=... mode=...` line (the format tools/bench.sh collects).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure packets per second to the miniport, or through a Unix socket.",
        discussion: """
            ring: sends --packets packets of --size bytes (one buffer each; the payload is rewritten for every \
            send) to the adapter's miniport, --batch per send, reusing each packet when it completes; the clock \
            stops at the last completion. Run `ringportd --driver null --cpu 1` first. uds: the same payloads \
            through a SOCK_SEQPACKET socket pair to a spawned reader (sendmmsg/recvmmsg for batches). This \
            process pins itself to CPU 0.

            Example:
              ringport bench --transport ring --size 64 --batch 32
            """
    )

    enum Transport: String, ExpressibleByArgument { case ring, uds }

    @OptionGroup var where_: AdapterOptions
    @Option(help: "ring or uds.") var transport: Transport = .ring
    @Option(help: "Payload bytes per packet (16...2048).") var size = 64
    @Option(help: "Packets per send call.") var batch = 32
    @Option(help: "Packets to send.") var packets = 5_000_000

    func validate() throws {
        guard (16...2048).contains(size) else { throw ValidationError("--size \(size): must be within 16...2048") }
        guard (1...64).contains(batch) else { throw ValidationError("--batch \(batch): must be within 1...64") }
        guard packets > 0 else { throw ValidationError("--packets \(packets): must be 1 or more") }
    }

    func run() throws {
        try ProcessControl.pin(toCPU: 0)
        let (seconds, cpu) = transport == .ring ? try runRing() : try runSocket()
        let peer = "ringport_\(transport == .ring ? "send" : "uds_seqpacket")" + (batch == 1 ? "" : "_batch\(batch)")
        print(
            "RESULT peer=\(peer) mode=stream size=\(size) n=\(packets) mps=\(Int(Double(packets) / seconds)) "
                + "cpu_ns_per_msg=\(String(format: "%.1f", cpu / Double(packets))) wall_s=\(String(format: "%.3f", seconds)) errors=0"
        )
    }

    func runRing() throws -> (Double, Double) {
        let directory = RuntimeDirectory(where_.dir)
        let adapter = try Adapter.open(
            where_.adapter,
            configuration: BindingConfiguration(
                packetCount: 2048,
                chunkCount: 2304,
                chunkSize: 2048,
                transmitRingSize: 1024,
                fragmentsPerPacket: 2,
                receiveRingSize: 2  // this benchmark receives nothing: the smallest receive queue
            ),
            directory: directory,
            checked: false
        )
        adapter.waitPolicy = where_.wait
        let miniportPID = Self.miniportProcess(directory: directory, adapter: where_.adapter)
        var spare = PacketArray(reservingCapacity: 2048)
        for _ in 0..<2000 {
            var packet = try adapter.allocatePacket()
            packet.chainAtBack(try adapter.allocateBuffer(length: size))
            spare.append(packet)
        }
        let (packets, batch, wait) = (self.packets, self.batch, where_.wait)  // not the option wrappers in the loop
        var batchArray = PacketArray(reservingCapacity: batch)
        var sent = 0
        var completed = 0
        var errors = 0
        let cpu0 = Self.cpu(of: nil) + Self.cpu(of: miniportPID)
        let t0 = ProcessControl.monotonicNanoseconds()
        while completed < packets {
            while sent < packets && batchArray.count < batch && !spare.isEmpty {
                let packet = spare.removeLast()
                let sequence = UInt64(sent)
                packet.withUnsafeMutableBytes(ofBufferAt: 0) { bytes in
                    bytes.storeBytes(of: sequence, as: UInt64.self)
                    bytes.baseAddress!.advanced(by: 8).initializeMemory(
                        as: UInt8.self,
                        repeating: UInt8(truncatingIfNeeded: sequence),
                        count: bytes.count - 8
                    )
                }
                batchArray.append(packet)
                sent += 1
                if batchArray.count == batch || sent == packets { adapter.send(&batchArray) }
            }
            // Nothing more to send until packets come back: a blocking binding sleeps for them; otherwise the
            // loop polls (the benchmark measures the send path, not a wait).
            if wait == .blocking && (spare.isEmpty || sent == packets) {
                completed += adapter.waitForCompletions(timeoutSeconds: 10) { packet, status in
                    if status != .success { errors += 1 }
                    spare.append(packet)
                }
            } else {
                // A closure literal each time, not a stored one: its captures stay on the stack.
                completed += adapter.pollCompletions { packet, status in
                    if status != .success { errors += 1 }
                    spare.append(packet)
                }
            }
            if case .closed(let reason) = adapter.state { throw RuntimeFailure("binding closed: \(reason)") }
        }
        let t1 = ProcessControl.monotonicNanoseconds()
        let cpu = Self.cpu(of: nil) + Self.cpu(of: miniportPID) - cpu0
        guard errors == 0 else { throw RuntimeFailure("\(errors) packets failed") }
        return (Double(t1 - t0) / 1e9, cpu)
    }

    func runSocket() throws -> (Double, Double) {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &pair) == 0 else {
            throw SystemError.fromErrno("socketpair")
        }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = ["uds-sink", "--size", "\(size)", "--batch", "\(batch)", "--packets", "\(packets)"]
        child.standardInput = FileHandle(fileDescriptor: pair[1], closeOnDealloc: false)
        let output = Pipe()
        child.standardOutput = output
        try child.run()
        close(pair[1])
        defer { close(pair[0]) }
        guard String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("ready") else {
            throw RuntimeFailure("the socket reader did not start")
        }
        var buffer = [UInt8](repeating: 0, count: size * batch)
        var sent = 0
        let cpu0 = Self.cpu(of: nil)
        let t0 = ProcessControl.monotonicNanoseconds()
        try buffer.withUnsafeMutableBytes { bytes in
            while sent < packets {
                let n = min(batch, packets - sent)
                for k in 0..<n {
                    let message = UnsafeMutableRawBufferPointer(rebasing: bytes[k * size..<(k + 1) * size])
                    message.storeBytes(of: UInt64(sent + k), as: UInt64.self)
                    message.baseAddress!.advanced(by: 8).initializeMemory(
                        as: UInt8.self,
                        repeating: UInt8(truncatingIfNeeded: sent + k),
                        count: size - 8
                    )
                }
                var done = 0
                while done < n {
                    let r =
                        n == 1
                        ? Int32(send(pair[0], bytes.baseAddress!, size, Int32(MSG_NOSIGNAL)) == size ? 1 : -1)
                        : rp_sendmmsg_same(pair[0], bytes.baseAddress! + done * size, size, UInt32(n - done))
                    guard r > 0 else { throw SystemError.fromErrno("send") }
                    done += Int(r)
                }
                sent += n
            }
        }
        guard String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("done") else {
            throw RuntimeFailure("the socket reader failed")
        }
        let t1 = ProcessControl.monotonicNanoseconds()
        child.waitUntilExit()
        let cpu = Self.cpu(of: nil) - cpu0 + Self.childrenCPU()
        return (Double(t1 - t0) / 1e9, cpu)
    }

    /// The miniport's pid, from its lock file.
    static func miniportProcess(directory: RuntimeDirectory, adapter: String) -> Int32? {
        guard let text = try? String(contentsOfFile: directory.lockPath(adapter: adapter), encoding: .utf8) else {
            return nil
        }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// User+system CPU of this process (nil) or of another, in nanoseconds.
    static func cpu(of pid: Int32?) -> Double {
        guard let pid else {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e9
                + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e3
        }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) * 1e9 / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func childrenCPU() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e9
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e3
    }
}

/// The reader of the socket baseline: receives every message from stdin (a socket) and checks its sequence.
struct SocketSink: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "uds-sink", shouldDisplay: false)

    @Option var size: Int
    @Option var batch: Int
    @Option var packets: Int

    func run() throws {
        try ProcessControl.pin(toCPU: 1)
        FileHandle.standardOutput.write(Data("ready\n".utf8))
        var buffer = [UInt8](repeating: 0, count: size * batch)
        var received = 0
        var errors = 0
        buffer.withUnsafeMutableBytes { bytes in
            while received < packets {
                let r =
                    batch == 1
                    ? Int32(recv(0, bytes.baseAddress!, size, 0) == size ? 1 : -1)
                    : rp_recvmmsg_same(0, bytes.baseAddress!, size, UInt32(batch))
                guard r > 0 else { break }
                for k in 0..<Int(r) where bytes.load(fromByteOffset: k * size, as: UInt64.self) != UInt64(received + k)
                {
                    errors += 1
                }
                received += Int(r)
            }
        }
        FileHandle.standardOutput.write(Data((received == packets && errors == 0 ? "done\n" : "failed\n").utf8))
    }
}
