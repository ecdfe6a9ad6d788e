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

    init(_ attack: String) throws {
        adapter = "h\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        directory = RuntimeDirectory("/tmp/ringport-test-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
        process = try SpawnedProcess(
            "hostile-miniport",
            ["--dir", directory.path, "--adapter", adapter, "--rule", attack, "--lifetime", "20"]
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
        waitSlice: Double = 0.01
    ) throws -> Outcome {
        let hostile = try HostileMiniport(attack)
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
        func sendBatch() throws {
            var batch = PacketArray()
            for _ in 0..<batchSize {
                var packet = try adapter.allocatePacket()
                var buffer = try adapter.allocateBuffer(length: 0)
                buffer.write(Array("packet \(nextID)".utf8))
                packet.chainAtBack(buffer)
                let id = nextID
                packet.withProtocolReserved { $0.storeBytes(of: id, as: UInt64.self) }
                outcome.sent.insert(id)
                nextID += 1
                batch.append(packet)
            }
            adapter.send(batch)
        }
        func record(_ packet: consuming Packet, _ status: NDISStatus) {
            let id = packet.withProtocolReserved { $0.load(as: UInt64.self) }
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

    /// D1: packets the miniport returned with SUCCESS keep that status when it exits right after; only
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
}
