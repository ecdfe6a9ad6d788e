import Testing

@testable import RingportCore

@Suite struct ControlMessageTests {
    @Test func everyMessageRoundTrips() {
        var statistics = AdapterStatistics()
        statistics.bindings = 3
        statistics.packetsDropped = 9
        statistics.packetsReceived = 12
        statistics.bytesReceived = 1200
        let messages: [ControlMessage] = [
            .open(version: 1, adapter: "lab0", requested: BindingConfiguration(), processID: 42),
            .opened(status: .success, bindingID: 7, granted: BindingConfiguration(receiveRingSize: 64)),
            .close, .closed(status: .closing), .queryStatistics, .statistics(statistics),
            .queryAdapter, .adapter(Self.info), .queryBinding(after: 0), .queryBinding(after: .max),
            .binding(Self.binding), .noMoreBindings,
        ]
        for message in messages {
            #expect(ControlMessage.decode(message.encoded()) == message)
        }
    }

    static var info: AdapterInfo {
        var info = AdapterInfo()
        info.driver = "hub"
        info.processID = 4321
        info.waitPolicy = WaitPolicy.blocking.code
        info.checked = 1
        info.sleeps = 99
        return info
    }

    static var binding: BindingStatistics {
        var b = BindingStatistics()
        b.id = 3
        b.processID = 77
        b.packetsSent = 5
        b.bytesReceived = 640
        b.receiveFragmentRingSize = 256
        b.waitPolicy = WaitPolicy.adaptive.code
        b.sleeps = .max
        return b
    }

    /// Every field of the per-binding answer travels, each in its own place, and the answer fits a message.
    @Test func bindingStatisticsTravelFieldByField() throws {
        for field in 0..<BindingStatistics.fieldCount {
            var values = [UInt64](repeating: 0, count: BindingStatistics.fieldCount)
            values[field] = UInt64(field) + 1
            let message = ControlMessage.binding(BindingStatistics(values: values))
            let encoded = message.encoded()
            #expect(encoded.count <= ControlMessage.maximumSize)
            let decoded = try #require(ControlMessage.decode(encoded))
            guard case .binding(let b) = decoded else {
                Issue.record("decoded as \(decoded)")
                continue
            }
            #expect(b.values == values)
        }
    }

    /// The protocol's display values sit in a 128-byte block of their own, after the miniport's counters.
    @Test func theProtocolsBlockOfTheControlBlockIsItsOwn() {
        let start = ControlBlock.Offset.protocolStatistics
        #expect(start % 128 == 0 && start >= ControlBlock.Offset.statistics + 32 * 8)
        #expect(start + 8 * (ProtocolStatistic.chunksInUse.rawValue + 1) <= min(start + 128, ControlBlock.size))
    }

    @Test func waitPolicyCodesRoundTripAndZeroIsUnknown() {
        for policy in WaitPolicy.allCases { #expect(WaitPolicy(code: policy.code) == policy) }
        #expect(WaitPolicy(code: 0) == nil)
        #expect(WaitPolicy(code: 4) == nil)
    }

    @Test func malformedMessagesDecodeToNil() {
        let good = ControlMessage.open(version: 1, adapter: "x", requested: BindingConfiguration(), processID: 1)
            .encoded()
        #expect(ControlMessage.decode(Array(good.dropLast())) == nil)
        #expect(ControlMessage.decode(good + [0]) == nil)
        #expect(ControlMessage.decode([0, 0, 0, 0, 1, 0, 0, 0]) == nil)
        #expect(ControlMessage.decode([]) == nil)
        for message in [ControlMessage.binding(Self.binding), .adapter(Self.info), .queryBinding(after: 9)] {
            let bytes = message.encoded()
            #expect(ControlMessage.decode(Array(bytes.dropLast())) == nil, "\(message) cut short")
            #expect(ControlMessage.decode(bytes + [0]) == nil, "\(message) with a byte more")
        }
        // A driver name that is not UTF-8.
        var badName = ControlMessage.adapter(Self.info).encoded()
        badName[9] = 0xFF
        #expect(ControlMessage.decode(badName) == nil)
    }
}
