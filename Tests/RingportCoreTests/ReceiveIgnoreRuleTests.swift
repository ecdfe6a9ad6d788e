import Testing

@testable import RingportCore

/// Docs/Contract.md §1.10, receive side, at the OS queue: a packet the driver drops comes back with `Ignore`,
/// no buffer and nothing else changed; it is never handed on, and any buffer it carries anyway comes back.
@Suite struct ReceiveIgnoreRuleTests {
    /// Posts 4 buffers and slots; the driver returns slot 0 as `mutate` leaves it (with buffer 0 if
    /// `returningBuffer`) and slot 1 as a good frame in buffer 1. Returns the rule broken and what was handed on.
    func returnDroppedFrame(
        checked: Bool,
        returningBuffer: Bool,
        _ mutate: (NetPacket) -> Void
    ) throws -> (NetRingRule?, [UInt32], UInt32) {
        let fixture = try RingFixture(packets: 8, fragments: 8, direction: .receive)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os(checked: checked)
        try fixture.postReceiveBuffers(&os, count: 4)
        let raw = fixture.driver(checked: false)  // writes around the driver's verifier
        let dropped = raw.packet(at: 0)
        dropped.ignore = true
        mutate(dropped)
        let good = raw.packet(at: 1)
        good.fragmentIndex = 1
        good.fragmentCount = 1
        raw.fragment(at: 1).validLength = 10
        if !returningBuffer { good.fragmentIndex = 0 }  // the dropped frame's buffer took the good frame
        fixture.fragmentRing.storeBeginIndex(returningBuffer ? 2 : 1)
        fixture.packetRing.storeBeginIndex(2)
        var handed: [UInt32] = []
        let rule = brokenRule { _ = try os.reclaimReceived { _, fragments in handed.append(fragments.first) } }
        return (rule, handed, os.fragmentCursor)
    }

    @Test func anIgnoredReceivePacketWithNoBufferIsNotHandedOn() throws {
        let (rule, handed, cursor) = try returnDroppedFrame(checked: true, returningBuffer: false) { _ in }
        #expect(rule == nil && handed == [0] && cursor == 1)
    }

    @Test func anIgnoredReceivePacketWithABufferBreaksTheRule() throws {
        let (rule, _, _) = try returnDroppedFrame(checked: true, returningBuffer: true) {
            $0.fragmentIndex = 0
            $0.fragmentCount = 1
        }
        #expect(rule == .driverAttachedResourcesToIgnoredPacket)
    }

    @Test func anIgnoredReceivePacketWithAnotherFieldChangedBreaksTheRule() throws {
        let (rule, _, _) = try returnDroppedFrame(checked: true, returningBuffer: false) {
            $0.layout = NetPacketLayout(layer2Type: .ethernet)
        }
        #expect(rule == .driverAttachedResourcesToIgnoredPacket)
    }

    /// Unchecked, a lone dropped frame that carries its buffer: the buffer is taken back with it at once
    /// (the fragment cursor passes it), and nothing is handed on.
    @Test func uncheckedTheBufferOfAnIgnoredPacketComesBackWithItAndIsNotHandedOn() throws {
        let fixture = try RingFixture(packets: 8, fragments: 8, direction: .receive)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os(checked: false)
        try fixture.postReceiveBuffers(&os, count: 4)
        let raw = fixture.driver(checked: false)
        raw.packet(at: 0).ignore = true
        raw.packet(at: 0).fragmentIndex = 0
        raw.packet(at: 0).fragmentCount = 1
        fixture.fragmentRing.storeBeginIndex(1)
        fixture.packetRing.storeBeginIndex(1)
        var handed = 0
        let rule = brokenRule { _ = try os.reclaimReceived { _, _ in handed += 1 } }
        #expect(rule == nil && handed == 0)
        #expect(os.fragmentCursor == 1, "the ignored packet's buffer was not taken back")
    }
}
