import Foundation
import Ringport
import RingportCore
import RingportMiniport
import Testing

/// A ring-style driver with one bug: it completes packets as `null` does, but on its first packet it breaks
/// `rule` the way a buggy driver would. Checked mode (the framework's verifier, or the protocol library's)
/// must catch it and close the binding, naming the rule.
final class BuggyDriver: RingDriver, @unchecked Sendable {
    let name = "buggy"
    let rule: NetRingRule
    var done = false

    init(_ rule: NetRingRule) { self.rule = rule }

    func advance(_ queue: TransmitQueue, context: MiniportContext) throws(NetRingViolation) {
        let rings = queue.rings
        var post = rings.postPackets()
        guard post.hasAny else { return }
        if !done {
            done = true
            try breakRule(rings, &post, receive: context.receiveQueue(queue.binding)!)
        }
        var fragmentEnd = rings.fragmentRing.loadNextIndex()
        while post.hasAny {
            let packet = post.packet
            if packet.fragmentCount > 0 { fragmentEnd = post.fragments().end }
            queue.setStatus(.success, of: packet)
            post.advance()
        }
        try post.set()
        try rings.setFragmentNextIndex(to: fragmentEnd)
        try rings.setFragmentBeginIndex(to: fragmentEnd)
        var drain = rings.drainPackets()
        drain.advanceToTheEnd()
        try drain.set()
    }

    func breakRule(_ rings: NetRingCollection, _ post: inout NetRingPacketIterator, receive: ReceiveQueue)
        throws(NetRingViolation)
    {
        let fragments = rings.fragmentRing
        let end = fragments.loadEndIndex()
        switch rule {
        case .driverMovedBeginPastEnd:
            try rings.setFragmentBeginIndex(to: fragments.advance(end, by: 2))
        case .driverMovedNextPastEnd:
            try rings.setFragmentNextIndex(to: fragments.advance(end, by: 2))
        case .driverNextOutsideRange:
            // Rx: BeginIndex passes the (never posted) packet NextIndex, then a post iterator is made.
            var all = receive.rings.allPackets()
            all.advance()
            try all.set()
            let bad = receive.rings.postPackets()
            try bad.set()
        case .driverChangedElementOutsideRange:
            rings.packet(at: rings.packetRing.advance(post.end, by: 2)).fragmentCount = 3
        case .driverChangedIgnore:
            post.packet.ignore = true
        case .driverChangedTransmitPacket:
            post.packet.fragmentCount = 0
        case .driverChangedTransmitFragment:
            rings.fragment(at: post.packet.fragmentIndex).validLength = 1
        case .driverChangedReceiveBuffer:
            let buffers = receive.rings.postFragments()
            buffers.fragment.chunk = 0
        default:
            break
        }
    }
}

/// Each driver-side rule broken by a buggy driver in this process; returns the rules that were caught and
/// named (by the framework's log, or by the library's close reason).
enum BuggyDriverRuns {
    static let rules: [NetRingRule] = [
        .driverMovedBeginPastEnd, .driverMovedNextPastEnd, .driverNextOutsideRange,
        .driverChangedElementOutsideRange, .driverChangedIgnore, .driverChangedTransmitPacket,
        .driverChangedTransmitFragment, .driverChangedReceiveBuffer,
    ]

    static func run() throws -> Set<NetRingRule> {
        var produced: Set<NetRingRule> = []
        for rule in rules {
            let host = try ContractHost(driver: BuggyDriver(rule))
            defer { host.stop() }
            let adapter = try host.open()
            try sendSequence(adapter, count: 4)
            // Every packet still completes exactly once, whoever closes the binding.
            let completed = collectCompletions(adapter, count: 4)
            #expect(completed.count == 4, "\(rule): \(completed.count) completions")
            let named = eventually {
                if case .closed(let reason) = adapter.state, reason.contains(rule.rawValue) { return true }
                return host.log.contains("broke the ring contract: \(rule.rawValue)")
            }
            #expect(named, "\(rule) was not caught: \(adapter.state) \(host.log.all)")
            if named { produced.insert(rule) }
            #expect(collectCompletions(adapter, count: 1, seconds: 0.05).isEmpty, "\(rule): a second completion")
        }
        return produced
    }
}

@Suite(.serialized) struct ContractViolationTests {
    /// Every rule of the net-ring contract (Docs/Contract.md §1.2, §1.6, §1.10) is produced by a hostile run: a
    /// hostile protocol against `ringportd`, a hostile miniport against the library, or a buggy driver under
    /// the framework. Each run also checks that the offender is closed and named, and nobody else is hurt.
    @Test func everyRuleIsProducedByAHostilePeer() throws {
        var produced = try HostileProtocolRuns.run()
        produced.formUnion(try BuggyDriverRuns.run())
        produced.formUnion(try HostileMiniportRuns.producedRules())
        let missing = Set(NetRingRule.allCases).subtracting(produced)
        #expect(missing.isEmpty, "no hostile run produced \(missing.map(\.rawValue).sorted())")
    }
}
