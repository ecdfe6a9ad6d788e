import Foundation
import Glibc
import Ringport
import RingportCore
import RingportSystem

/// One protocol process of a chaos run (`ringport stress --chaos-child`), against a loopback miniport that
/// may die at any moment: it sends packets carrying `PayloadPattern`, checks that each completes exactly once
/// and in ring order, and that every frame comes back byte for byte, once and in order. When the miniport
/// goes away it reports when it saw that (`gone`), checks the session, and opens again until it succeeds.
/// SIGTERM ends it cleanly: it stops sending, drains, closes and prints `done`.
///
/// Lines on stdout, for the parent: `open <binding>`, `gone <monotonic ns> <reason>`,
/// `session sent= completed= success= received= lost= duplicated= errors=`, `error <text>`, `done ...`.
struct ChaosChild {
    let adapterName: String
    let directory: RuntimeDirectory
    let seed: UInt64
    let maxSize: Int
    let maxBuffers: Int
    /// Against a hostile miniport: wrong bytes, statuses and frames are counted (`corrupt`), not errors; a
    /// packet completed twice or never, a completion out of ring order or a leaked packet still are.
    let tolerant: Bool

    static let configuration = BindingConfiguration(
        packetCount: 128,
        chunkCount: 512,
        chunkSize: 2048,
        transmitRingSize: 128,
        fragmentsPerPacket: 4,
        receiveRingSize: 128
    )

    /// Per-session bookkeeping; sequence numbers run on across sessions, so a frame of an old binding can
    /// never pass for one of the new.
    struct Session {
        let first: UInt64
        var next: UInt64
        var nextCompletion: UInt64
        /// Status per completed sequence, indexed from `first`.
        var statuses: [NDISStatus?] = []
        var received: [Bool] = []
        var lastReceived: UInt64?
        var receivedCount = 0
        var duplicated = 0
        var errors = 0
        var corrupt = 0
        /// The sequence each packet descriptor carries now, kept here: ProtocolReserved is in the segment,
        /// where a hostile miniport can rewrite it.
        var sequenceOf: [UInt64]

        init(first: UInt64, packets: Int) {
            sequenceOf = Array(repeating: UInt64.max, count: packets)
            self.first = first
            next = first
            nextCompletion = first
        }
    }

    var state: UInt64
    var totals = (sessions: 0, sent: UInt64(0), lost: 0, duplicated: 0, errors: 0, corrupt: 0)

    init(
        adapter: String, directory: RuntimeDirectory, seed: UInt64, maxSize: Int, maxBuffers: Int,
        tolerant: Bool = false
    ) {
        self.tolerant = tolerant
        adapterName = adapter
        self.directory = directory
        self.seed = seed
        self.maxSize = min(maxSize, Self.configuration.chunkSize)
        self.maxBuffers = min(maxBuffers, Self.configuration.fragmentsPerPacket)
        state = seed
    }

    mutating func next(_ bound: Int) -> Int {
        Int(SplitMix64.next(&state) % UInt64(bound))
    }

    static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }

    /// Whether SIGTERM is pending (it is blocked, and taken only here).
    static func stopRequested() -> Bool {
        var pending = sigset_t()
        sigpending(&pending)
        return sigismember(&pending, SIGTERM) == 1
    }

    mutating func run(openTimeout: Double) -> Int32 {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)
        var sequence: UInt64 = 0
        while !Self.stopRequested() {
            // Open, again and again while the miniport is down or restarting (bounded).
            let deadline = ProcessControl.monotonicNanoseconds() + UInt64(openTimeout * 1e9)
            var adapter: Adapter?
            var lastError = ""
            while adapter == nil && !Self.stopRequested() {
                do {
                    adapter = try Adapter.open(
                        adapterName, configuration: Self.configuration, directory: directory, timeoutSeconds: 2)
                } catch {
                    if tolerant && "\(error)" != lastError { Self.say("refused \(error)") }
                    lastError = "\(error)"
                    guard ProcessControl.monotonicNanoseconds() < deadline else {
                        // A hostile miniport that is done serving is not an error.
                        if !tolerant {
                            Self.say("error no open for \(openTimeout) s: \(lastError)")
                            totals.errors += 1
                        }
                        return finish()
                    }
                    usleep(2000)
                }
            }
            guard let adapter else { break }
            Self.say("open \(adapter.bindingID)")
            var session = Session(first: sequence, packets: adapter.configuration.packetCount)
            let graceful = runSession(adapter, &session)
            sequence = session.next
            check(session, graceful: graceful)
            if graceful { break }
        }
        return finish()
    }

    func finish() -> Int32 {
        Self.say(
            "done sessions=\(totals.sessions) sent=\(totals.sent) lost=\(totals.lost) "
                + "duplicated=\(totals.duplicated) errors=\(totals.errors) corrupt=\(totals.corrupt)")
        return totals.lost + totals.duplicated + totals.errors == 0 ? 0 : 1
    }

    /// Traffic until the binding closes (false) or SIGTERM (true: drained and closed).
    mutating func runSession(_ adapter: Adapter, _ session: inout Session) -> Bool {
        var iterations = 0
        while true {
            iterations += 1
            if iterations % 32 == 0 && Self.stopRequested() { break }
            if case .closed(let reason) = adapter.state {
                Self.say("gone \(ProcessControl.monotonicNanoseconds()) \(reason)")
                close(adapter, &session)
                return false
            }
            if adapter.outstandingSends < 48 { send(adapter, &session, count: 1 + next(8)) }
            var moved = collect(adapter, &session)
            if moved == 0 {
                moved += adapter.waitForCompletions(timeoutSeconds: 0.002) { complete($0, $1, &session) }
            }
            _ = moved
        }
        // Drain: every packet completes, every frame that completed with SUCCESS comes back.
        let deadline = ProcessControl.monotonicNanoseconds() + 10_000_000_000
        while ProcessControl.monotonicNanoseconds() < deadline {
            if case .closed = adapter.state { break }
            let success = session.statuses.reduce(0) { $0 + ($1 == .success ? 1 : 0) }
            if adapter.outstandingSends == 0 && session.receivedCount >= success { break }
            if collect(adapter, &session) == 0 {
                adapter.waitForCompletions(timeoutSeconds: 0.002) { complete($0, $1, &session) }
            }
        }
        let clean: Bool
        if case .closed(let reason) = adapter.state {
            Self.say("gone \(ProcessControl.monotonicNanoseconds()) \(reason)")
            clean = false
        } else {
            clean = true
        }
        close(adapter, &session)
        return clean
    }

    mutating func close(_ adapter: Adapter, _ session: inout Session) {
        do {
            try adapter.close(timeoutSeconds: 2) { complete($0, $1, &session) }
        } catch {
            Self.say("error close: \(error)")
            session.errors += 1
        }
        _ = collect(adapter, &session)
        if adapter.packetPoolUsage != 0 {
            Self.say("error \(adapter.packetPoolUsage) packets still in use after close")
            session.errors += 1
        }
    }

    mutating func send(_ adapter: Adapter, _ session: inout Session, count: Int) {
        var batch = PacketArray()
        for _ in 0..<count {
            guard var packet = try? adapter.allocatePacket() else { break }
            let length = PayloadPattern.headerSize + next(maxSize - PayloadPattern.headerSize + 1)
            let pieces = min(1 + next(maxBuffers), length / PayloadPattern.headerSize)
            var offset = 0
            var complete = true
            for p in 0..<pieces {
                let piece = p == pieces - 1 ? length - offset : (length - offset) / (pieces - p)
                guard let buffer = try? adapter.allocateBuffer(length: piece) else {
                    complete = false
                    break
                }
                let start = offset
                let sequence = session.next
                buffer.withUnsafeMutableBytes {
                    PayloadPattern.fill($0, sequence: sequence, totalLength: length, start: start)
                }
                packet.chainAtBack(buffer)
                offset += piece
            }
            guard complete else { break }  // the buffers go back with the packet
            let sequence = session.next
            packet.withProtocolReserved { $0.storeBytes(of: sequence, as: UInt64.self) }
            session.sequenceOf[packet.descriptorIndex] = sequence
            batch.append(packet)
            session.next += 1
            session.statuses.append(nil)
            session.received.append(false)
        }
        if !batch.isEmpty { adapter.send(&batch) }
    }

    /// Takes completions and receives; returns how many.
    mutating func collect(_ adapter: Adapter, _ session: inout Session) -> Int {
        var moved = adapter.pollCompletions { complete($0, $1, &session) }
        moved += adapter.pollReceives { frame in receive(frame, &session) }
        return moved
    }

    func complete(_ packet: consuming Packet, _ status: NDISStatus, _ session: inout Session) {
        let sequence = session.sequenceOf[packet.descriptorIndex]
        session.sequenceOf[packet.descriptorIndex] = UInt64.max
        if packet.withProtocolReserved({ $0.load(as: UInt64.self) }) != sequence {
            wrong("ProtocolReserved of sequence \(sequence) changed while the miniport held it", &session)
        }
        guard sequence >= session.first, sequence < session.next else {
            Self.say("error completion of sequence \(sequence), not of this session")
            session.errors += 1
            return
        }
        let i = Int(sequence - session.first)
        if session.statuses[i] != nil {
            Self.say("error sequence \(sequence) completed twice")
            session.duplicated += 1
            return
        }
        if sequence != session.nextCompletion {
            Self.say("error completion \(session.nextCompletion) expected, \(sequence) came (ring order)")
            session.errors += 1
        }
        session.nextCompletion = sequence + 1
        session.statuses[i] = status
        if status != .success && status != .closing {
            wrong("sequence \(sequence) completed with \(status)", &session)
        }
    }

    func receive(_ frame: consuming ReceivedPacket, _ session: inout Session) {
        guard let sequence = PayloadPattern.verify(frame.bytes) else {
            wrong("a frame of \(frame.length) bytes came back corrupt", &session)
            return
        }
        guard sequence >= session.first, sequence < session.next else {
            wrong("frame \(sequence) is not of this session", &session)
            return
        }
        let i = Int(sequence - session.first)
        if session.received[i] {
            if tolerant {
                session.corrupt += 1
            } else {
                Self.say("error frame \(sequence) came back twice")
                session.duplicated += 1
            }
            return
        }
        if let last = session.lastReceived, sequence < last {
            wrong("frame \(sequence) came back after \(last)", &session)
        }
        session.received[i] = true
        session.receivedCount += 1
        session.lastReceived = sequence
    }

    /// What a hostile miniport may cause: an error, or (tolerant) counted as corrupt.
    func wrong(_ what: String, _ session: inout Session) {
        if tolerant {
            session.corrupt += 1
        } else {
            Self.say("error \(what)")
            session.errors += 1
        }
    }

    /// Every packet completed once; every frame that completed with SUCCESS came back, except, when the
    /// miniport died, those after the last frame that came back (still in the receive ring then).
    mutating func check(_ session: Session, graceful: Bool) {
        var lost = 0
        var success = 0
        var completed = 0
        var unreceived = 0
        for (i, status) in session.statuses.enumerated() {
            guard let status else {
                lost += 1
                continue
            }
            completed += 1
            guard status == .success else { continue }
            success += 1
            let sequence = session.first + UInt64(i)
            if !session.received[i] && (graceful || sequence < (session.lastReceived ?? 0)) { unreceived += 1 }
        }
        if tolerant {
            totals.corrupt += session.corrupt + unreceived
        } else {
            lost += unreceived
        }
        if lost > 0 { Self.say("error \(lost) packets lost (never completed, or completed but never received)") }
        let sent = session.next - session.first
        Self.say(
            "session sent=\(sent) completed=\(completed) success=\(success) received=\(session.receivedCount) "
                + "lost=\(lost) duplicated=\(session.duplicated) errors=\(session.errors) corrupt=\(session.corrupt)")
        totals.sessions += 1
        totals.sent += sent
        totals.lost += lost
        totals.duplicated += session.duplicated
        totals.errors += session.errors
    }
}
