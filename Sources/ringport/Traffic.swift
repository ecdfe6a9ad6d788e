import ArgumentParser
import Foundation
import Histogram
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

/// Sends everything still batched, then takes completions until the pools have room again (bounded), or
/// until Ctrl-C: the caller checks `Interruption.isRequested` before it allocates again.
func relieve(_ adapter: Adapter, _ batch: inout PacketArray, failed: inout Int, seconds: Double = 10) throws {
    adapter.send(&batch)
    let deadline = ProcessControl.monotonicNanoseconds() + UInt64(seconds * 1e9)
    while adapter.outstandingSends > adapter.configuration.packetCount / 2 && !Interruption.isRequested {
        adapter.waitForCompletions(timeoutSeconds: 0.1) { _, status in if !status.isSuccess { failed += 1 } }
        if case .closed(let reason) = adapter.state { throw RuntimeFailure("binding closed: \(reason)") }
        guard ProcessControl.monotonicNanoseconds() < deadline else {
            throw RuntimeFailure("no completion in \(seconds) s")
        }
    }
}

func standardError(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

/// Frames of one buffer: the library's default chunk, which is what a binding opened with the default
/// configuration gets.
let largestFrame = BindingConfiguration().chunkSize

/// Sender tags live in the high bits of a 64-bit sequence, above its 40-bit counter.
let largestTag: UInt64 = 65_535

/// After a Ctrl-C the summary has been printed: exit as a shell expects of an interrupted process (130).
func exitIfInterrupted() throws {
    if let signal = Interruption.signal { throw ExitCode(Interruption.exitStatus(for: signal)) }
}

/// A frame size the opened binding cannot carry in one buffer: refused with one line, before anything is sent.
func checkFrameSize(_ size: Int, option: String, _ adapter: Adapter) throws {
    let chunk = adapter.configuration.chunkSize
    guard size <= chunk else {
        throw RuntimeFailure("\(option) \(size): the miniport granted \(chunk)-byte buffers (frames of 16...\(chunk))")
    }
}

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send frames: from arguments, from stdin (one per line), or generated at a rate and size.",
        discussion: """
            Prints `sent N failed=F` at the end, and after Ctrl-C (then exits 130).

            Examples:
              ringport send hello world               two frames
              printf 'a\\nb\\n' | ringport send --stdin
              ringport send --count 100000 --size 512 --rate 50000
            """
    )

    @OptionGroup var where_: AdapterOptions
    @Argument(help: "Frames to send, as text.") var frames: [String] = []
    @Flag(help: "Read frames from stdin, one per line.") var stdin = false
    @Option(help: "Generated frames to send (when no frames are given; 0 or more).") var count = 10
    @Option(help: "Generated frame size in bytes (16...2048: the pattern's 16-byte header, one 2048-byte buffer).")
    var size = 64
    @Option(help: "Frames per second (0: as fast as the ring takes them).") var rate = 0
    @Option(
        help: "Sender tag (0...65535) in the high bits of the sequence numbers, for receivers to tell senders apart.")
    var tag: UInt64 = 0

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count \(count): must be 0 or more") }
        guard (PayloadPattern.headerSize...largestFrame).contains(size) else {
            throw ValidationError("--size \(size): must be within \(PayloadPattern.headerSize)...\(largestFrame)")
        }
        guard rate >= 0 else { throw ValidationError("--rate \(rate): must be 0 (no limit) or more") }
        guard tag <= largestTag else { throw ValidationError("--tag \(tag): must be within 0...\(largestTag)") }
        for frame in frames where !(1...largestFrame).contains(frame.utf8.count) {
            throw ValidationError(
                "frame \"\(frame.prefix(20))\" is \(frame.utf8.count) bytes: frames are 1...\(largestFrame) bytes")
        }
    }

    func run() throws {
        Interruption.install()
        // It only sends: an empty packet filter, so a lossless hub never waits for it to take frames.
        let adapter = try Adapter.open(
            where_.adapter, configuration: BindingConfiguration(packetFilter: .none),
            directory: RuntimeDirectory(where_.dir), waitPolicy: where_.wait)
        // Options as plain locals: an option's wrapper costs a metadata lookup at every read in the loop.
        let (size, rate, tag) = (self.size, self.rate, self.tag)
        var texts = frames
        if stdin {
            while let line = readLine() {
                guard (1...largestFrame).contains(line.utf8.count) else {
                    throw RuntimeFailure(
                        "stdin line \(texts.count + 1) is \(line.utf8.count) bytes: frames are 1...\(largestFrame) bytes"
                    )
                }
                texts.append(line)
            }
        }
        if texts.isEmpty { try checkFrameSize(size, option: "--size", adapter) }
        let total = texts.isEmpty ? count : texts.count
        var batch = PacketArray(reservingCapacity: 32)
        var failed = 0
        var made = 0
        let start = ProcessControl.monotonicNanoseconds()
        var lastProgress = start
        // The next frame; when the pools are out of room, after completions made some (nil: Ctrl-C came first).
        func makeFrameMakingRoom(_ bytes: [UInt8]?, sequence: UInt64) throws -> Packet? {
            do {
                return try makeFrame(adapter, bytes: bytes, sequence: sequence, size: size)
            } catch let error as AdapterError where error.status == .resources {
                try relieve(adapter, &batch, failed: &failed)
                if Interruption.isRequested { return nil }
                return try makeFrame(adapter, bytes: bytes, sequence: sequence, size: size)
            }
        }
        for n in 0..<total {
            if rate > 0 {
                let due = start + UInt64(Double(n) / Double(rate) * 1e9)
                // Sleep until the frame is due, taking completions meanwhile; each wait bounded, for Ctrl-C.
                while !Interruption.isRequested {
                    let now = ProcessControl.monotonicNanoseconds()
                    guard now < due else { break }
                    let left = min(Double(due - now) / 1e9, 0.1)
                    if adapter.outstandingSends > 0 {
                        adapter.waitForCompletions(timeoutSeconds: left) { _, status in
                            if !status.isSuccess { failed += 1 }
                        }
                    } else {
                        // Nothing to wait for: the completion wait would return at once.
                        var pause = timespec(tv_sec: 0, tv_nsec: Int(left * 1e9))
                        nanosleep(&pause, nil)
                    }
                }
                if Interruption.isRequested { break }
            }
            let sequence = tag << 40 | UInt64(n)
            let bytes = texts.isEmpty ? nil : Array(texts[n].utf8)
            guard let frame = try makeFrameMakingRoom(bytes, sequence: sequence) else { break }
            batch.append(frame)
            made = n + 1
            guard batch.count == 32 || rate > 0 else { continue }
            // Per batch, not per frame: the send, the completions, the clock, the binding's state.
            if case .closed(let reason) = adapter.state { throw RuntimeFailure("binding closed: \(reason)") }
            adapter.send(&batch)
            adapter.pollCompletions { _, status in if !status.isSuccess { failed += 1 } }
            if Interruption.isRequested { break }
            let now = ProcessControl.monotonicNanoseconds()
            if now - lastProgress > 1_000_000_000 {
                lastProgress = now
                standardError("sent \(n + 1)/\(total)")
            }
        }
        adapter.send(&batch)
        if Interruption.isRequested {
            // After Ctrl-C, wait little for the last completions: a stalled receiver may hold them, and then
            // the miniport cancels them (counted as failed). The summary comes all the same.
            do {
                try adapter.close(timeoutSeconds: 1) { _, status in if !status.isSuccess { failed += 1 } }
            } catch {
                guard case .closing = error else { throw error }
            }
        } else {
            try adapter.close(timeoutSeconds: 30) { _, status in if !status.isSuccess { failed += 1 } }
        }
        print("sent \(made) failed=\(failed)")
        try exitIfInterrupted()
        if failed > 0 { throw ExitCode(1) }
    }
}

struct Recv: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receive frames: print or count them, with a summary.",
        discussion: """
            Prints one `received N bytes=B errors=E sent=S failed=F rate=R` line at the end, and after Ctrl-C \
            (then exits 130).

            Examples:
              ringport recv --print --count 2          print two frames
              ringport recv --check --count 100000     count, checking each sender's order and bytes
              ringport recv --echo                     send every frame back (the far end of a ping)
            """
    )

    @OptionGroup var where_: AdapterOptions
    @Option(help: "Stop after this many frames (0: no limit).") var count = 0
    @Option(help: "Stop after this many seconds (0: no limit; at most 31536000, a year).") var duration = 0.0
    @Option(help: "Stop when nothing arrives for this many seconds (0: never; at most 31536000).")
    var idleTimeout = 0.0
    @Flag(help: "Print each frame (text if printable, else its length and first bytes).") var print = false
    @Flag(help: "Check each frame's pattern and each sender's order.") var check = false
    @Flag(help: "Send every frame back.") var echo = false
    @Option(help: "Hold each frame this many microseconds before returning it (a slow receiver; 0...3600000000).")
    var holdUs = 0
    @Option(help: "Also send this many generated frames, while receiving.") var sendCount = 0
    @Option(help: "Tag of the frames sent (0...65535; see `send --tag`).") var tag: UInt64 = 0
    @Option(help: "Size of the frames sent (16...2048).") var size = 64
    @Option(help: "Start sending once the adapter has this many bindings (peers that must all get every frame).")
    var sendAfterBindings = 0
    @Option(help: "Take only the frames of this sender tag (see `send --tag`): others are counted as foreign.")
    var onlyTag: UInt64?

    /// A year: longer waits are a typo, and seconds as nanoseconds must not overflow.
    static let longestSeconds = 31_536_000.0

    func validate() throws {
        for (name, value) in [
            ("--count", count), ("--send-count", sendCount), ("--send-after-bindings", sendAfterBindings),
        ]
        where value < 0 {
            throw ValidationError("\(name) \(value): must be 0 or more")
        }
        for (name, value) in [("--duration", duration), ("--idle-timeout", idleTimeout)]
        where !(0...Self.longestSeconds).contains(value) {
            throw ValidationError("\(name) \(value): must be within 0...\(Int(Self.longestSeconds)) seconds")
        }
        guard (0...3_600_000_000).contains(holdUs) else {
            throw ValidationError("--hold-us \(holdUs): must be within 0...3600000000")
        }
        guard tag <= largestTag else { throw ValidationError("--tag \(tag): must be within 0...\(largestTag)") }
        if let onlyTag, onlyTag > largestTag {
            throw ValidationError("--only-tag \(onlyTag): must be within 0...\(largestTag)")
        }
        guard (PayloadPattern.headerSize...largestFrame).contains(size) else {
            throw ValidationError("--size \(size): must be within \(PayloadPattern.headerSize)...\(largestFrame)")
        }
    }

    func run() throws {
        Interruption.install()
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
        if sendCount > 0 { try checkFrameSize(size, option: "--size", adapter) }
        if sendCount > 0 && sendAfterBindings > 0 {
            let deadline = start + 30_000_000_000
            while try StatClient(where_).statistics().bindings < sendAfterBindings && !Interruption.isRequested {
                guard ProcessControl.monotonicNanoseconds() < deadline else {
                    throw RuntimeFailure("fewer than \(sendAfterBindings) bindings after 30 s")
                }
                usleep(5_000)
            }
        }
        while (count == 0 || received < count || sent < sendCount || adapter.outstandingSends > 0)
            && !Interruption.isRequested
        {
            let now = ProcessControl.monotonicNanoseconds()
            if duration > 0 && Double(now - start) / 1e9 >= duration { break }
            if idleTimeout > 0 && Double(now - lastFrame) / 1e9 >= idleTimeout { break }
            if case .closed(let reason) = adapter.state { throw RuntimeFailure("binding closed: \(reason)") }
            // Copy frames out only when something looks at their bytes; counting reads them in place.
            let needBytes = check || print || echo || onlyTag != nil
            // Sleep as long as nothing else is due: an idle receiver costs nothing (Ctrl-C ends the wait).
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
        try? adapter.close(timeoutSeconds: Interruption.isRequested ? 5 : 10)
        let senders = next.keys.sorted().map { "\($0):\(next[$0]!)" }.joined(separator: ",")
        let seconds = Double(lastFrame - (firstFrame ?? lastFrame)) / 1e9
        let rate = seconds > 0 ? Int(Double(received - 1) / seconds) : 0
        Swift.print(
            "received \(received) bytes=\(bytes) errors=\(errors) sent=\(sent) failed=\(failed) rate=\(rate)"
                + (check ? " senders=\(senders)" : "") + (onlyTag != nil ? " foreign=\(foreign)" : "")
        )
        try exitIfInterrupted()
        if errors > 0 || failed > 0 { throw ExitCode(1) }
    }
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Round trips through a loopback adapter, or to `ringport recv --echo` across a hub.",
        discussion: """
            Like ping(8): one line per round trip (or per reply that did not come within --timeout), then the \
            statistics, also after Ctrl-C (then the exit status is 130). Exits 1 if any reply was lost. With \
            --quiet only the statistics go to stdout, and the first lost reply is said once on stderr, so a \
            peer that never answers is not silent. A miniport that goes away ends it at once (exit 1).

            Example:
              ringportd --driver loopback &
              ringport ping --count 5
            """
    )

    @OptionGroup var where_: AdapterOptions
    @Option(help: "Round trips (1 or more).") var count = 10
    @Option(help: "Frame size in bytes (16...2048: the pattern's 16-byte header, one 2048-byte buffer).")
    var size = 64
    @Option(help: "Milliseconds between round trips (0...3600000).") var intervalMs = 0.0
    @Flag(help: "Only the summary.") var quiet = false
    @Option(help: "Seconds to wait for each reply (0.001...3600).") var timeout = 2.0

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count \(count): must be 1 or more") }
        guard (PayloadPattern.headerSize...largestFrame).contains(size) else {
            throw ValidationError("--size \(size): must be within \(PayloadPattern.headerSize)...\(largestFrame)")
        }
        guard (0...3_600_000).contains(intervalMs) else {
            throw ValidationError("--interval-ms \(intervalMs): must be within 0...3600000")
        }
        guard (0.001...3600).contains(timeout) else {
            throw ValidationError("--timeout \(timeout): must be within 0.001...3600 seconds")
        }
    }

    /// Waits end at least this often: a Ctrl-C that lands just before a sleep (not cutting it short) is seen.
    static let longestWaitSeconds = 0.1

    func run() throws {
        Interruption.install()
        let adapter = try Adapter.open(where_.adapter, directory: RuntimeDirectory(where_.dir), waitPolicy: where_.wait)
        let (count, size, intervalMs, quiet, timeout) = (
            self.count, self.size, self.intervalMs, self.quiet, self.timeout
        )
        try checkFrameSize(size, option: "--size", adapter)
        let timeoutNanoseconds = UInt64(timeout * 1e9)
        // Nanoseconds, 3 significant digits, up to twice the longest wait (a reply is never older than that).
        var histogram = Histogram<UInt64>(
            highestTrackableValue: max(2, 2 * timeoutNanoseconds), numberOfSignificantValueDigits: .three)
        var (lowest, highest, total): (UInt64, UInt64, UInt64) = (.max, 0, 0)
        var sent = 0
        var toldLost = false
        if !quiet { print("PING \(where_.adapter): \(size) bytes") }
        for n in 0..<count {
            if Interruption.isRequested { break }
            let sequence = UInt64(n)
            let t0 = ProcessControl.monotonicNanoseconds()
            adapter.send(try makeFrame(adapter, sequence: sequence, size: size))
            sent += 1
            var got = false
            let deadline = t0 + timeoutNanoseconds
            // Each wait sleeps (as --wait says) until a frame comes, the deadline, or 100 ms for Ctrl-C.
            while !got && !Interruption.isRequested {
                let now = ProcessControl.monotonicNanoseconds()
                guard now < deadline else { break }
                adapter.pollCompletions { _, _ in }
                let left = min(Double(deadline - now) / 1e9, Self.longestWaitSeconds)
                adapter.waitForReceives(timeoutSeconds: left) { frame in
                    if frame.withUnsafeBytes({ PayloadPattern.verify($0) }) == sequence { got = true }
                }
                if case .closed(let reason) = adapter.state {
                    throw RuntimeFailure("ping: binding closed after \(sent) sent: \(reason)")
                }
            }
            let rtt = ProcessControl.monotonicNanoseconds() - t0
            if got {
                histogram.record(rtt)
                (lowest, highest, total) = (min(lowest, rtt), max(highest, rtt), total + rtt)
                if !quiet { print("\(size) bytes: seq=\(n) time=\(microseconds(rtt)) µs") }
            } else if !Interruption.isRequested {
                if !quiet {
                    print("seq=\(n): no reply in \(timeout) s")
                } else if !toldLost {
                    toldLost = true
                    standardError(
                        "ringport: ping: seq=\(n): no reply in \(timeout) s (is a loopback ringportd or a "
                            + "`ringport recv --echo` there?); going on, Ctrl-C for the statistics")
                }
            }
            if intervalMs > 0 && n + 1 < count { pause(milliseconds: intervalMs) }
        }
        try? adapter.close(timeoutSeconds: 5)
        let received = Int(histogram.totalCount)
        func percentile(_ p: Double) -> String {
            received == 0 ? "-" : microseconds(min(highest, histogram.valueAtPercentile(p)))
        }
        // As ping(8): what was sent and not answered is lost, also the round trip Ctrl-C cut short.
        print("--- \(where_.adapter) ping statistics ---")
        print("\(sent) sent, \(received) received, \(sent - received) lost")
        print(
            "rtt µs: min \(received == 0 ? "-" : microseconds(lowest)) "
                + "avg \(received == 0 ? "-" : microseconds(total / UInt64(received))) "
                + "p50 \(percentile(50)) p99 \(percentile(99)) p99.9 \(percentile(99.9)) "
                + "max \(received == 0 ? "-" : microseconds(highest))"
        )
        try exitIfInterrupted()
        if sent > received { throw ExitCode(1) }
    }

    /// Nanoseconds as microseconds with two decimals.
    func microseconds(_ nanoseconds: UInt64) -> String { String(format: "%.2f", Double(nanoseconds) / 1000) }

    /// Sleeps between round trips, in slices short enough to see Ctrl-C.
    func pause(milliseconds: Double) {
        let end = ProcessControl.monotonicNanoseconds() + UInt64(milliseconds * 1e6)
        while !Interruption.isRequested {
            let now = ProcessControl.monotonicNanoseconds()
            guard now < end else { return }
            usleep(UInt32(min(end - now, 100_000_000) / 1000))
        }
    }
}
