import Foundation
import Ringport
import RingportCore
import RingportSystem
import TestSupport
import Testing

/// A `hostile-miniport` process serving one binding and breaking `attack`; stopped and cleaned up on deinit.
final class HostileMiniport: @unchecked Sendable {
    let adapter: String
    let directory: RuntimeDirectory
    let process: SpawnedProcess

    init(_ attack: String, arguments: [String] = []) throws {
        adapter = "h\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        directory = RuntimeDirectory("/tmp/ringport-test-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
        process = try SpawnedProcess(
            "hostile-miniport",
            ["--dir", directory.path, "--adapter", adapter, "--rule", attack, "--lifetime", "20"] + arguments
        )
        let deadline = Date().addingTimeInterval(20)
        while !process.standardOutput.contains("is up") {
            guard process.process.isRunning, Date() < deadline else {
                process.stop()
                throw SupportFailure("hostile-miniport did not come up: \(process.standardError)")
            }
            usleep(2000)
        }
    }

    deinit {
        _ = process.wait(seconds: 2)  // it exits once the binding is closed; killed if not
        try? FileManager.default.removeItem(atPath: directory.path)
    }
}

/// Runs the real library against a hostile miniport, one attack at a time.
enum HostileMiniportRuns {
    /// What one run saw.
    struct Outcome {
        var openError: AdapterError?
        var closedReason: String?
        /// Seconds from the first send until the library noticed (closed the binding).
        var closedAfter: Double?
        var sent: Set<UInt64> = []
        var completions: [UInt64: Int] = [:]
        var statuses: [NDISStatus] = []
        var indicated: [String] = []
        var outstandingAtEnd = 0
        var packetPoolUsageAtEnd = 0

        /// The rule the close reason names (NetRingViolation's description starts with it).
        var rule: NetRingRule? {
            guard let closedReason else { return nil }
            return NetRingRule.allCases.first { closedReason.contains("\($0.rawValue) (") }
        }
        var everyPacketCompletedOnce: Bool {
            Set(completions.keys) == sent && completions.values.allSatisfy { $0 == 1 }
        }
    }

    /// The attacks that break a ring rule the protocol side can observe, and the rule each must produce.
    static let ringAttacks: [(attack: String, rule: NetRingRule)] = [
        ("driverMovedBeginPastEnd", .driverMovedBeginPastEnd),
        ("driverWroteOSIndex", .driverWroteOSIndex),
        ("driverChangedElementOutsideRange", .driverChangedElementOutsideRange),
        ("driverChangedIgnore", .driverChangedIgnore),
        ("driverChangedTransmitPacket", .driverChangedTransmitPacket),
        ("driverChangedTransmitFragment", .driverChangedTransmitFragment),
        ("driverChangedReceiveBuffer", .driverChangedReceiveBuffer),
        ("driverReturnedInvalidReceivePacket", .driverReturnedInvalidReceivePacket),
        ("driverAttachedResourcesToIgnoredPacket", .driverAttachedResourcesToIgnoredPacket),
        ("completeUnsent", .driverMovedBeginPastEnd),
    ]

    static let configuration = BindingConfiguration(
        packetCount: 64,
        chunkCount: 128,
        chunkSize: 256,
        transmitRingSize: 64,
        receiveRingSize: 16
    )

    /// Opens a binding to a fresh hostile miniport, sends batches of 4 packets (the next once the last has
    /// completed) and polls completions and receives for `seconds`, or until the binding closed and every
    /// packet came back; then closes the binding (bounded).
    static func run(
        _ attack: String,
        checked: Bool,
        batches: Int = 3,
        batchSize: Int = 4,
        seconds: Double = 2,
        waitSlice: Double = 0.01,
        hostileArguments: [String] = []
    ) throws -> Outcome {
        let hostile = try HostileMiniport(attack, arguments: hostileArguments)
        var outcome = Outcome()
        let adapter: Adapter
        do {
            adapter = try Adapter.open(
                hostile.adapter,
                configuration: configuration,
                directory: hostile.directory,
                checked: checked,
                timeoutSeconds: 5
            )
        } catch {
            outcome.openError = error
            return outcome
        }
        var nextID: UInt64 = 0
        // Which packet each descriptor carries, kept here: ProtocolReserved is in the segment, where a
        // hostile miniport can rewrite it.
        var idOf: [Int: UInt64] = [:]
        func sendBatch() throws {
            var batch = PacketArray()
            for _ in 0..<batchSize {
                var packet = try adapter.allocatePacket()
                var buffer = try adapter.allocateBuffer(length: 0)
                buffer.write(Array("packet \(nextID)".utf8))
                packet.chainAtBack(buffer)
                let id = nextID
                packet.withProtocolReserved { $0.storeBytes(of: id, as: UInt64.self) }
                idOf[packet.descriptorIndex] = id
                outcome.sent.insert(id)
                nextID += 1
                batch.append(packet)
            }
            adapter.send(batch)
        }
        func record(_ packet: consuming Packet, _ status: NDISStatus) {
            let id = idOf[packet.descriptorIndex] ?? UInt64.max
            outcome.completions[id, default: 0] += 1
            outcome.statuses.append(status)
        }
        let start = Date()
        try sendBatch()
        var sentBatches = 1
        while Date().timeIntervalSince(start) < seconds {
            var moved = adapter.waitForCompletions(timeoutSeconds: waitSlice) { record($0, $1) }
            moved += adapter.pollReceives { frame in
                outcome.indicated.append(String(decoding: frame.bytes, as: UTF8.self))
            }
            if case .closed(let reason) = adapter.state {
                if outcome.closedReason == nil {
                    outcome.closedReason = reason
                    outcome.closedAfter = Date().timeIntervalSince(start)
                }
                if adapter.outstandingSends == 0 && outcome.completions.count == outcome.sent.count { break }
            } else if outcome.completions.count == outcome.sent.count && sentBatches < batches {
                try sendBatch()
                sentBatches += 1
            }
            if moved == 0 { usleep(500) }
        }
        try? adapter.close(timeoutSeconds: 0.5) { record($0, $1) }
        outcome.outstandingAtEnd = adapter.outstandingSends
        outcome.packetPoolUsageAtEnd = adapter.packetPoolUsage
        if outcome.closedReason == nil, case .closed(let reason) = adapter.state, reason != "closed" {
            outcome.closedReason = reason
        }
        return outcome
    }

    /// The rule a run of the attack of that name produced (parsed from the close reason), if any.
    static func run(rule: NetRingRule, checked: Bool) throws -> NetRingRule? {
        try run(rule.rawValue, checked: checked).rule
    }

    /// Every rule the hostile-miniport runs actually produced (checked mode), for the aggregate test that
    /// requires each named rule to be produced by some hostile run.
    static func producedRules() throws -> Set<NetRingRule> {
        var rules: Set<NetRingRule> = []
        for (attack, _) in ringAttacks {
            if let rule = try run(attack, checked: true).rule { rules.insert(rule) }
        }
        return rules
    }
}

/// The library against a miniport that breaks the contract: every violation closes the binding within a
/// bounded time and names the rule (checked mode); the library never crashes or hangs, and every packet
/// sent gets exactly one completion. Serialized: each case spawns a process and times its detection.
@Suite(.serialized) struct HostileMiniportTests {
    static var ringAttackNames: [String] { HostileMiniportRuns.ringAttacks.map(\.attack) }

    @Test(arguments: ringAttackNames)
    func aMiniportBreakingARingRuleHasTheBindingClosedNamingTheRule(_ attack: String) throws {
        let expected = HostileMiniportRuns.ringAttacks.first { $0.attack == attack }!.rule
        let outcome = try HostileMiniportRuns.run(attack, checked: true)
        #expect(outcome.openError == nil)
        #expect(outcome.rule == expected, "closed with \(outcome.closedReason ?? "nothing")")
        #expect((outcome.closedAfter ?? .infinity) < 2, "closed after \(outcome.closedAfter ?? .infinity) s")
        #expect(outcome.everyPacketCompletedOnce, "sent \(outcome.sent.count), completions \(outcome.completions)")
        #expect(outcome.outstandingAtEnd == 0 && outcome.packetPoolUsageAtEnd == 0)
    }

    /// Unchecked, the library still neither crashes nor hangs, and completes each packet once; the rules it
    /// checks in every mode (indices, receive packets naming buffers) still close the binding.
    @Test(arguments: ringAttackNames)
    func uncheckedTheLibrarySurvivesEveryRingAttack(_ attack: String) throws {
        let outcome = try HostileMiniportRuns.run(attack, checked: false)
        #expect(outcome.openError == nil)
        #expect(outcome.everyPacketCompletedOnce, "sent \(outcome.sent.count), completions \(outcome.completions)")
        #expect(outcome.outstandingAtEnd == 0 && outcome.packetPoolUsageAtEnd == 0)
        let alwaysChecked = ["driverMovedBeginPastEnd", "completeUnsent", "driverReturnedInvalidReceivePacket"]
        if alwaysChecked.contains(attack) {
            let expected = HostileMiniportRuns.ringAttacks.first { $0.attack == attack }!.rule
            #expect(outcome.rule == expected, "closed with \(outcome.closedReason ?? "nothing")")
        }
    }

    /// §1.10 in the library's view, unchecked: a dropped frame that carries its buffer anyway is not indicated
    /// and its buffer is not lost (64 frames through a 16-slot receive ring: a leak would stall it).
    @Test func uncheckedAnIgnoredReceivePacketWithABufferIsNotIndicatedNorItsBufferLost() throws {
        let outcome = try HostileMiniportRuns.run("driverAttachedResourcesToIgnoredPacket", checked: false, seconds: 3)
        #expect(outcome.closedReason == nil)
        #expect(outcome.indicated == stride(from: 1, to: 64, by: 2).map { "frame \($0)" })
    }

    /// Unchecked, a receive buffer whose chunk the driver rewrote is read from the chunk the library posted.
    @Test func uncheckedARewrittenReceiveBufferIsReadFromTheChunkTheLibraryPosted() throws {
        let outcome = try HostileMiniportRuns.run("driverChangedReceiveBuffer", checked: false, seconds: 3)
        #expect(outcome.closedReason == nil)
        #expect(outcome.indicated == (0..<64).map { "frame \($0)" })
    }

    @Test(arguments: [true, false])
    func statusesOutsideNDISsSetCompleteEachPacketOnceAndTheBindingStaysOpen(_ checked: Bool) throws {
        let outcome = try HostileMiniportRuns.run("statusGarbage", checked: checked, seconds: 1)
        #expect(outcome.closedReason == nil)
        #expect(outcome.everyPacketCompletedOnce && outcome.sent.count == 12)
        // PENDING on a returned packet is the miniport's bug: reported as FAILURE; the rest pass through.
        #expect(!outcome.statuses.contains(.pending) && outcome.statuses.contains(NDISStatus(rawValue: 0xDEAD_BEEF)))
    }

    @Test(arguments: [true, false])
    func indexBitsAboveTheMaskAreIgnored(_ checked: Bool) throws {
        let outcome = try HostileMiniportRuns.run("unmaskedIndices", checked: checked, seconds: 1)
        #expect(outcome.closedReason == nil)
        #expect(outcome.everyPacketCompletedOnce && outcome.statuses.allSatisfy { $0 == .success })
    }

    @Test(arguments: [true, false])
    func aSegmentWhoseRingsDoNotStartEmptyIsRefusedAtOpen(_ checked: Bool) throws {
        let outcome = try HostileMiniportRuns.run("nonZeroStartIndices", checked: checked)
        guard case .badSegment = outcome.openError else {
            Issue.record("opened, or failed otherwise: \(String(describing: outcome.openError))")
            return
        }
        #expect(outcome.openError?.status == .openFailed)
    }

    @Test func anHonestMiniportCompletesEverythingWithSuccess() throws {
        let outcome = try HostileMiniportRuns.run("honest", checked: true, seconds: 1)
        #expect(outcome.closedReason == nil)
        #expect(outcome.everyPacketCompletedOnce && outcome.statuses.allSatisfy { $0 == .success })
    }

    /// Packets the miniport returned with SUCCESS keep that status when it exits right after; only
    /// what it did not return completes with CLOSING. The protocol waits as a real one does (one long
    /// wait), so it is asleep when the miniport returns everything and goes.
    @Test func packetsReturnedBeforeTheMiniportExitsKeepTheirStatus() throws {
        for run in 0..<20 {
            let outcome = try HostileMiniportRuns.run(
                "exitAfterComplete", checked: true, batches: 1, batchSize: 8, seconds: 3, waitSlice: 2)
            #expect(outcome.everyPacketCompletedOnce)
            #expect(
                outcome.statuses.count == 8 && outcome.statuses.allSatisfy { $0 == .success },
                "run \(run): \(outcome.statuses)")
            #expect(outcome.closedReason?.contains("went away") == true, "\(outcome.closedReason ?? "open")")
        }
    }

    // MARK: Attacks that once crashed or fooled the library

    /// Receive packets and buffers returned past `EndIndex` (slots never posted or never filled, whose chunk
    /// this side never chose) close the binding, naming the rule, in every mode; nothing is indicated from
    /// them. (When every slot is posted, past `EndIndex` wraps into slots posted but never filled: then the
    /// packets name no buffer.)
    @Test(arguments: [true, false])
    func receiveSlotsNeverPostedCloseTheBindingNamingTheRule(_ checked: Bool) throws {
        let outcome = try HostileMiniportRuns.run("receiveUnpostedSlots", checked: checked)
        #expect(outcome.openError == nil)
        #expect(
            [.driverMovedBeginPastEnd, .driverReturnedInvalidReceivePacket].contains(outcome.rule),
            "closed with \(outcome.closedReason ?? "nothing")")
        #expect(outcome.indicated.isEmpty, "indicated \(outcome.indicated)")
        #expect(outcome.everyPacketCompletedOnce, "sent \(outcome.sent.count), completions \(outcome.completions)")
        #expect(outcome.outstandingAtEnd == 0 && outcome.packetPoolUsageAtEnd == 0)
    }

    /// A receive buffer naming a chunk the library never posted (a transmit buffer, or past the data area):
    /// checked, the binding closes naming the rule; unchecked, every frame is read from the chunk posted in
    /// that slot, never from the one the miniport named.
    @Test(arguments: [true, false])
    func receiveBuffersNamingChunksNeverPostedAreNeverRead(_ checked: Bool) throws {
        let outcome = try HostileMiniportRuns.run("receiveUnpostedChunks", checked: checked, seconds: 3)
        #expect(outcome.openError == nil)
        #expect(!outcome.indicated.contains { $0.contains("FOREIGN") }, "\(outcome.indicated)")
        if checked {
            #expect(outcome.rule == .driverChangedReceiveBuffer, "closed with \(outcome.closedReason ?? "nothing")")
        } else {
            #expect(outcome.closedReason == nil, "closed with \(outcome.closedReason ?? "")")
            #expect(outcome.indicated == (0..<64).map { "frame \($0)" }, "\(outcome.indicated)")
        }
        #expect(outcome.everyPacketCompletedOnce && outcome.packetPoolUsageAtEnd == 0)
    }

    /// A segment passed as a plain, unsealable POSIX shared-memory descriptor is refused at open, naming why.
    @Test func anUnsealedSegmentIsRefusedAtOpenWithAClearError() throws {
        let outcome = try HostileMiniportRuns.run("unsealedSegment", checked: false)
        let error = try #require(outcome.openError, "opened an unsealed segment")
        #expect(error.status == .openFailed)
        #expect(error.description.contains("not sealed"), "\(error)")
    }

    /// The miniport truncates the segment after handing it over. With sealed segments the truncation is
    /// refused and traffic goes on; whatever happens, the protocol (a separate `ringport stress`, so a
    /// SIGBUS would show) is not killed by a signal, and it either finishes or reports the closed binding.
    @Test func aTruncatedSegmentNeverKillsTheProtocol() throws {
        let hostile = try HostileMiniport("truncateSegment")
        let protocolProcess = try SpawnedProcess(
            "ringport",
            [
                "stress", "--adapter", hostile.adapter, "--dir", hostile.directory.path, "--packets", "2000",
                "--timeout", "5",
            ]
        )
        let status = protocolProcess.wait(seconds: 20)
        #expect(
            protocolProcess.process.terminationReason == .exit, "killed by signal \(status.map(String.init) ?? "?")")
        let deadline = Date().addingTimeInterval(2)  // its output arrives through a pipe
        while !hostile.process.standardOutput.contains("truncat") && Date() < deadline { usleep(2000) }
        let said = hostile.process.standardOutput
        #expect(said.contains("truncat"), "\(said)")
        if said.contains("truncation refused") {
            #expect(status == 0, "\(protocolProcess.standardOutput) \(protocolProcess.standardError)")
        } else {
            #expect(protocolProcess.standardError.contains("binding closed"), "\(protocolProcess.standardError)")
        }
    }

    /// A miniport whose listen backlog is full never accepts: `Adapter.open` returns within its timeout
    /// instead of blocking in `connect()`. (Run on a thread, so a hang is seen, and ended by the miniport's
    /// death.)
    @Test func openingAWedgedMiniportFailsWithinTheOpenTimeout() throws {
        let hostile = try HostileMiniport("wedged")
        let result = OpenResult()
        let adapter = hostile.adapter
        let directory = hostile.directory
        let thread = Thread {
            let start = Date()
            var failure: AdapterError?
            do throws(AdapterError) {
                _ = try Adapter.open(adapter, directory: directory, timeoutSeconds: 1)
            } catch {
                failure = error
            }
            result.set(Date().timeIntervalSince(start), failure)
        }
        thread.start()
        let deadline = Date().addingTimeInterval(6)
        while result.get() == nil && Date() < deadline { usleep(5000) }
        let finished = result.get()
        hostile.process.stop()  // a blocked connect() fails now
        while result.get() == nil && Date() < deadline.addingTimeInterval(5) { usleep(5000) }
        let (seconds, error) = try #require(finished, "Adapter.open still blocked after 6 s")
        #expect(seconds < 3, "returned after \(seconds) s")
        #expect(error != nil, "opened a wedged miniport")
    }

    /// Random bytes over the segment (bounded rounds, three seeds), checked and unchecked: the library never
    /// crashes or hangs, completes every packet once, leaks no packet, and the binding ends with a reason:
    /// a named rule, or the miniport going away once its rounds are played.
    @Test(arguments: [(true, 1), (true, 2), (false, 1), (false, 2), (false, 3)] as [(Bool, Int)])
    func randomScribblesNeverCrashTheLibraryAndCloseTheBindingWithANamedReason(_ checked: Bool, _ seed: Int) throws {
        try roundAttackSurvives("scribble", checked: checked, seed: seed)
    }

    /// Completion statuses, ring indices and receive elements flipped and flipped back in a loop: as above.
    @Test(arguments: [(true, 1), (true, 2), (false, 1), (false, 2), (false, 3)] as [(Bool, Int)])
    func flippedFieldsNeverCrashTheLibraryAndCloseTheBindingWithANamedReason(_ checked: Bool, _ seed: Int) throws {
        try roundAttackSurvives("flip", checked: checked, seed: seed)
    }

    /// Only completion statuses and transmit elements (descriptor, fragments) flipped: unchecked, the binding
    /// stays open for the rounds, and each completion still names the packet this side put in that slot, once
    /// (checked, the verifier closes it at the first changed element, naming the rule).
    @Test(arguments: [true, false])
    func flippedTransmitElementsAndStatusesNeverMisdirectACompletion(_ checked: Bool) throws {
        let outcome = try roundAttackSurvives("flip", checked: checked, seed: 4, targets: "status,tx")
        if !checked { #expect(outcome.sent.count > 64, "only \(outcome.sent.count) packets sent") }
    }

    @discardableResult
    func roundAttackSurvives(_ attack: String, checked: Bool, seed: Int, targets: String = "index,status,tx,rx")
        throws -> HostileMiniportRuns.Outcome
    {
        let outcome = try HostileMiniportRuns.run(
            attack, checked: checked, batches: 100_000, batchSize: 8, seconds: 3,
            hostileArguments: ["--rounds", "3000", "--seed", "\(seed)", "--targets", targets])
        #expect(outcome.openError == nil, "\(String(describing: outcome.openError))")
        let reason = outcome.closedReason ?? ""
        #expect(
            outcome.rule != nil || reason.contains("went away"), "closed with \(reason.isEmpty ? "nothing" : reason)")
        #expect(
            outcome.everyPacketCompletedOnce, "sent \(outcome.sent.count), completions \(outcome.completions.count)")
        #expect(outcome.outstandingAtEnd == 0 && outcome.packetPoolUsageAtEnd == 0)
        return outcome
    }
}

/// What the open on the wedged miniport's thread saw.
final class OpenResult: @unchecked Sendable {
    let lock = NSLock()
    var value: (Double, AdapterError?)?
    func set(_ seconds: Double, _ error: AdapterError?) { lock.withLock { value = (seconds, error) } }
    func get() -> (Double, AdapterError?)? { lock.withLock { value } }
}
