import Testing

@testable import RingportCore

@Suite struct ControlMessageTests {
    @Test func everyMessageRoundTrips() {
        var statistics = AdapterStatistics()
        statistics.bindings = 3
        statistics.packetsDropped = 9
        statistics.packetsReceived = 12
        let messages: [ControlMessage] = [
            .open(version: 1, adapter: "lab0", requested: BindingConfiguration(), processID: 42),
            .opened(status: .success, bindingID: 7, granted: BindingConfiguration(receiveRingSize: 64)),
            .close, .closed(status: .closing), .queryStatistics, .statistics(statistics),
        ]
        for message in messages {
            #expect(ControlMessage.decode(message.encoded()) == message)
        }
    }

    @Test func malformedMessagesDecodeToNil() {
        let good = ControlMessage.open(version: 1, adapter: "x", requested: BindingConfiguration(), processID: 1)
            .encoded()
        #expect(ControlMessage.decode(Array(good.dropLast())) == nil)
        #expect(ControlMessage.decode(good + [0]) == nil)
        #expect(ControlMessage.decode([0, 0, 0, 0, 1, 0, 0, 0]) == nil)
        #expect(ControlMessage.decode([]) == nil)
    }
}
