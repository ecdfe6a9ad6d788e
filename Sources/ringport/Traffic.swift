import ArgumentParser
import Foundation
import Ringport
import RingportCore
import RingportSystem

/// Builds a one-buffer packet holding `bytes` (or the pattern of `sequence`, `size` long).
func makeFrame(_ adapter: Adapter, bytes: [UInt8]? = nil, sequence: UInt64 = 0, size: Int = 64) throws -> Packet {
    var packet = try adapter.allocatePacket()
    let length = bytes?.count ?? size
    var buffer = try adapter.allocateBuffer(length: length)
    if let bytes {
        buffer.write(bytes)
    } else {
        buffer.withUnsafeMutableBytes { PayloadPattern.fill($0, sequence: sequence, totalLength: length, start: 0) }
    }
    packet.chainAtBack(buffer)
    return packet
}

/// Builds a one-buffer packet holding a copy of `bytes` (a received frame, read in place).
func makeFrame(_ adapter: Adapter, copying bytes: UnsafeRawBufferPointer) throws -> Packet {
    var packet = try adapter.allocatePacket()
    let buffer = try adapter.allocateBuffer(length: bytes.count)
    buffer.withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
    packet.chainAtBack(buffer)
    return packet
}

/// Sends everything still batched, then takes completions until the pools have room again (bounded).
func relieve(_ adapter: Adapter, _ batch: inout PacketArray, failed: inout Int, seconds: Double = 10) throws {
    adapter.send(&batch)
    let deadline = ProcessControl.monotonicNanoseconds() + UInt64(seconds * 1e9)
    while adapter.outstandingSends > adapter.configuration.packetCount / 2 {
        adapter.waitForCompletions(timeoutSeconds: 0.1) { _, status in if !status.isSuccess { failed += 1 } }
        if case .closed(let reason) = adapter.state { throw ValidationError("binding closed: \(reason)") }
        guard ProcessControl.monotonicNanoseconds() < deadline else {
            throw ValidationError("no completion in \(seconds) s")
        }
    }
}

func standardError(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send frames: from arguments, from stdin (one per line), or generated at a rate and size.",
        discussion: """
            Examples:
              ringport send hello world               two frames
              printf 'a\\nb\\n' | ringport send --stdin
              ringport send --count 100000 --size 512 --rate 50000
            """
    )

    @OptionGroup var where_: AdapterOptions
    @Argument(help: "Frames to send, as text.") var frames: [String] = []
    @Flag(help: "Read frames from stdin, one per line.") var stdin = false
    @Option(help: "Generated frames to send (when no frames are given).") var count = 10
    @Option(help: "Generated frame size in bytes (16...chunk size).") var size = 64
    @Option(help: "Frames per second (0: as fast as the ring takes them).") var rate = 0
    @Option(
        help: "Sender tag (0...65535) in the high bits of the sequence numbers, for receivers to tell senders apart.")
    var tag: UInt64 = 0

    func run() throws {
        // It only sends: an empty packet filter, so a lossless hub never waits for it to take frames.
        let adapter = try Adapter.open(
            where_.adapter, configuration: BindingConfiguration(packetFilter: .none),
            directory: RuntimeDirectory(where_.dir), waitPolicy: where_.wait)
        // Options as plain locals: an option's wrapper costs a metadata lookup at every read in the loop.
        let (size, rate, tag) = (self.size, self.rate, self.tag)
        var texts = frames
        if stdin { while let line = readLine() { texts.append(line) } }
        let total = texts.isEmpty ? count : texts.count
        var batch = PacketArray(reservingCapacity: 32)
        var failed = 0
        let start = ProcessControl.monotonicNanoseconds()
        var lastProgress = start
        for n in 0..<total {
            if rate > 0 {
                let due = start + UInt64(Double(n) / Double(rate) * 1e9)
                while ProcessControl.monotonicNanoseconds() < due {
                    adapter.pollCompletions { _, status in if !status.isSuccess { failed += 1 } }
                }
            }
            let sequence = tag << 40 | UInt64(n)
            let frame: Packet
            do {
                frame = try makeFrame(
                    adapter, bytes: texts.isEmpty ? nil : Array(texts[n].utf8), sequence: sequence, size: size)
            } catch let error as AdapterError where error.status == .resources {
                try relieve(adapter, &batch, failed: &failed)
                frame = try makeFrame(
                    adapter, bytes: texts.isEmpty ? nil : Array(texts[n].utf8), sequence: sequence, size: size)
            }
            batch.append(frame)
            guard batch.count == 32 || rate > 0 else { continue }
            // Per batch, not per frame: the send, the completions, the clock.
            adapter.send(&batch)
            adapter.pollCompletions { _, status in if !status.isSuccess { failed += 1 } }
            let now = ProcessControl.monotonicNanoseconds()
            if now - lastProgress > 1_000_000_000 {
                lastProgress = now
                standardError("sent \(n + 1)/\(total)")
            }
        }
        adapter.send(&batch)
        try adapter.close(timeoutSeconds: 30) { _, status in if !status.isSuccess { failed += 1 } }
        print("sent \(total) failed=\(failed)")
        if failed > 0 { throw ExitCode(1) }
    }
}

struct Recv: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receive frames: print or count them, with a summary.",
        discussion: """
            Examples:
              ringport recv --print --count 2          print two frames
              ringport recv --check --count 100000     count, checking each sender's order and bytes
              ringport recv --echo                     send every frame back (the far end of a ping)
            """
    )

    @OptionGroup var where_: AdapterOptions
    @Option(help: "Stop after this many frames (0: no limit).") var count = 0
    @Option(help: "Stop after this many seconds (0: no limit).") var duration = 0.0
    @Option(help: "Stop when nothing arrives for this many seconds (0: never).") var idleTimeout = 0.0
    @Flag(help: "Print each frame (text if printable, else its length and first bytes).") var print = false
    @Flag(help: "Check each frame's pattern and each sender's order.") var check = false
    @Flag(help: "Send every frame back.") var echo = false
    @Option(help: "Hold each frame this many microseconds before returning it (a slow receiver).") var holdUs = 0
    @Option(help: "Also send this many generated frames, while receiving.") var sendCount = 0
    @Option(help: "Tag of the frames sent (see `send --tag`).") var tag: UInt64 = 0
    @Option(help: "Size of the frames sent.") var size = 64
    @Option(help: "Start sending once the adapter has this many bindings (peers that must all get every frame).")
    var sendAfterBindings = 0
    @Option(help: "Take only the frames of this sender tag (see `send --tag`): others are counted as foreign.")
    var onlyTag: UInt64?

    func run() throws {
        let adapter = try Adapter.open(where_.adapter, directory: RuntimeDirectory(where_.dir), waitPolicy: where_.wait)
        // Options as plain locals: an option's wrapper costs a metadata lookup at every read in the loop.
        let (count, duration, idleTimeout, print, check, echo) = (
            self.count, self.duration, self.idleTimeout, self.print, self.check, self.echo
        )
        let (holdUs, sendCount, tag, size, onlyTag) = (self.holdUs, self.sendCount, self.tag, self.size, self.onlyTag)
        var received = 0
        var foreign = 0
        var bytes = 0
        var errors = 0
        var next: [UInt64: UInt64] = [:]
        var echoes = PacketArray(reservingCapacity: 64)
        var failed = 0
        let start = ProcessControl.monotonicNanoseconds()
        var lastFrame = start
        var firstFrame: UInt64?
        var lastProgress = start
        var sent = 0
        var outgoing = PacketArray(reservingCapacity: 32)
        if sendCount > 0 && sendAfterBindings > 0 {
            let deadline = start + 30_000_000_000
            while try Stat.query(where_).bindings < sendAfterBindings {
                guard ProcessControl.monotonicNanoseconds() < deadline else {
                    throw ValidationError("fewer than \(sendAfterBindings) bindings after 30 s")
                }
                usleep(5_000)
            }
        }
        while count == 0 || received < count || sent < sendCount || adapter.outstandingSends > 0 {
            let now = ProcessControl.monotonicNanoseconds()
            if duration > 0 && Double(now - start) / 1e9 >= duration { break }
            if idleTimeout > 0 && Double(now - lastFrame) / 1e9 >= idleTimeout { break }
            if case .closed(let reason) = adapter.state { throw ValidationError("binding closed: \(reason)") }
            // Copy frames out only when something looks at their bytes; counting reads them in place.
            let needBytes = check || print || echo || onlyTag != nil
            // Sleep as long as nothing else is due: an idle receiver costs nothing.
            var waitSeconds = sent < sendCount || adapter.outstandingSends > 0 ? 0.001 : 3600
            if duration > 0 { waitSeconds = min(waitSeconds, duration - Double(now - start) / 1e9) }
            if idleTimeout > 0 { waitSeconds = min(waitSeconds, idleTimeout - Double(now - lastFrame) / 1e9) }
            var failure: (any Error)?
            // Each frame is read in place; the batch's buffers go back together when it ends.
            adapter.waitForReceiveBatch(timeoutSeconds: max(0, waitSeconds)) { batch in
                lastFrame = ProcessControl.monotonicNanoseconds()
                if firstFrame == nil { firstFrame = lastFrame }
                for i in 0..<batch.count {
                    guard needBytes else {
                        received += 1
                        bytes += batch.length(at: i)
                        continue
                    }
                    batch.withUnsafeBytes(at: i) { frame in
                        let sequence = check || onlyTag != nil ? PayloadPattern.verify(frame) : nil
                        if let onlyTag, sequence.map({ $0 >> 40 }) != onlyTag {
                            foreign += 1
                            return
                        }
                        received += 1
                        bytes += frame.count
                        if check {
                            if let sequence {
                                let sender = sequence >> 40
                                if sequence & (1 << 40 - 1) != next[sender, default: 0] { errors += 1 }
                                next[sender] = (sequence & (1 << 40 - 1)) + 1
                            } else {
                                errors += 1
                            }
                        }
                        if print {
                            let text = String(decoding: frame, as: UTF8.self)
                            Swift.print(text.allSatisfy { $0.isASCII && !$0.isNewline } ? text : "\(frame.count) bytes")
                        }
                        if echo {
                            do { echoes.append(try makeFrame(adapter, copying: frame)) } catch { failure = error }
                        }
                    }
                }
                // A slow receiver holds its buffers meanwhile.
                if holdUs > 0 { usleep(UInt32(clamping: holdUs * batch.count)) }
            }
            if let failure { throw failure }
            if echo { adapter.send(&echoes) }
            while sent < sendCount && outgoing.count < 32
                && adapter.outstandingSends < adapter.configuration.packetCount / 2
            {
                outgoing.append(try makeFrame(adapter, sequence: tag << 40 | UInt64(sent), size: size))
                sent += 1
            }
            adapter.send(&outgoing)
            adapter.pollCompletions { _, status in if !status.isSuccess { failed += 1 } }
            if ProcessControl.monotonicNanoseconds() - lastProgress > 1_000_000_000 {
                lastProgress = ProcessControl.monotonicNanoseconds()
                if !print { standardError("received \(received)") }
            }
        }
        try? adapter.close(timeoutSeconds: 10)
        let senders = next.keys.sorted().map { "\($0):\(next[$0]!)" }.joined(separator: ",")
        let seconds = Double(lastFrame - (firstFrame ?? lastFrame)) / 1e9
        let rate = seconds > 0 ? Int(Double(received - 1) / seconds) : 0
        Swift.print(
            "received \(received) bytes=\(bytes) errors=\(errors) sent=\(sent) failed=\(failed) rate=\(rate)"
                + (check ? " senders=\(senders)" : "") + (onlyTag != nil ? " foreign=\(foreign)" : "")
        )
        if errors > 0 || failed > 0 { throw ExitCode(1) }
    }
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Round trips through a loopback adapter, or to `ringport recv --echo` across a hub.",
        discussion: """
            Example:
              ringportd --driver loopback &
              ringport ping --count 5
            """
    )

    @OptionGroup var where_: AdapterOptions
    @Option(help: "Round trips.") var count = 10
    @Option(help: "Frame size in bytes.") var size = 64
    @Option(help: "Milliseconds between round trips.") var intervalMs = 0.0
    @Flag(help: "Only the summary.") var quiet = false
    @Option(help: "Seconds to wait for each reply.") var timeout = 2.0

    func run() throws {
        let adapter = try Adapter.open(where_.adapter, directory: RuntimeDirectory(where_.dir), waitPolicy: where_.wait)
        let (count, size, intervalMs, quiet, timeout) = (
            self.count, self.size, self.intervalMs, self.quiet, self.timeout
        )
        var rtts: [UInt64] = []
        var lost = 0
        if !quiet { print("PING \(where_.adapter): \(size) bytes") }
        for n in 0..<count {
            let sequence = UInt64(n)
            let t0 = ProcessControl.monotonicNanoseconds()
            adapter.send(try makeFrame(adapter, sequence: sequence, size: size))
            var got = false
            let deadline = t0 + UInt64(timeout * 1e9)
            while !got && ProcessControl.monotonicNanoseconds() < deadline {
                adapter.pollCompletions { _, _ in }
                let left = Double(deadline &- min(deadline, ProcessControl.monotonicNanoseconds())) / 1e9
                adapter.waitForReceives(timeoutSeconds: left) { frame in
                    if frame.withUnsafeBytes({ PayloadPattern.verify($0) }) == sequence { got = true }
                }
                if case .closed(let reason) = adapter.state { throw ValidationError("binding closed: \(reason)") }
            }
            let rtt = ProcessControl.monotonicNanoseconds() - t0
            if got {
                rtts.append(rtt)
                if !quiet { print("\(size) bytes: seq=\(n) time=\(String(format: "%.2f", Double(rtt) / 1000)) µs") }
            } else {
                lost += 1
                if !quiet { print("seq=\(n): no reply in \(timeout) s") }
            }
            if intervalMs > 0 { usleep(UInt32(intervalMs * 1000)) }
        }
        try? adapter.close(timeoutSeconds: 5)
        let sorted = rtts.sorted()
        func pick(_ q: Double) -> String {
            sorted.isEmpty
                ? "-"
                : String(format: "%.2f", Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) / 1000)
        }
        let average = sorted.isEmpty ? 0 : Double(sorted.reduce(0, +)) / Double(sorted.count) / 1000
        print("--- \(where_.adapter) ping statistics ---")
        print("\(count) sent, \(rtts.count) received, \(lost) lost")
        print(
            "rtt µs: min \(pick(0)) avg \(String(format: "%.2f", average)) p50 \(pick(0.5)) p99 \(pick(0.99)) "
                + "p99.9 \(pick(0.999)) max \(pick(1))"
        )
        if lost > 0 { throw ExitCode(1) }
    }
}
