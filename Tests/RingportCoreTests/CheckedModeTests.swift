import Testing

@testable import RingportCore

/// Each checked-mode rule, broken on purpose, is reported by name.
@Suite struct CheckedModeTests {
    /// A fixture with two transmit packets (one fragment each) published to the driver.
    func published() throws -> (RingFixture, OSRingQueue, NetRingCollection) {
        let fixture = try RingFixture()
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.send(&os, count: 2)
        return (fixture, os, rings)
    }

    @Test func driverCannotMoveBeginPastEnd() throws {
        var (fixture, os, _) = try published()
        defer { withExtendedLifetime(fixture) {} }
        // A driver that writes the index itself, around the iterator's check.
        fixture.packetRing.storeBeginIndex(5)
        #expect(brokenRule { _ = try os.reclaimPackets { _ in } } == .driverMovedBeginPastEnd)
    }

    @Test func driverCannotWriteEndIndex() throws {
        var (fixture, os, _) = try published()
        defer { withExtendedLifetime(fixture) {} }
        fixture.packetRing.storeEndIndex(1)
        #expect(brokenRule { try fixture.send(&os, count: 1, first: 2) } == .driverWroteOSIndex)
    }

    @Test func osCannotWriteTheDriversIndices() throws {
        let (fixture, _, rings) = try published()
        defer { withExtendedLifetime(fixture) {} }
        _ = rings.postPackets()
        fixture.packetRing.storeNextIndex(1)
        var post = rings.postPackets()
        post.advanceToTheEnd()
        #expect(brokenRule { try post.set() } == .osWroteDriverIndex)
    }

    @Test func osCannotMoveEndBackward() throws {
        let (fixture, _, rings) = try published()
        defer { withExtendedLifetime(fixture) {} }
        _ = rings.allPackets()
        fixture.packetRing.storeEndIndex(1)
        let all = rings.allPackets()
        #expect(brokenRule { try all.set() } == .osMovedEndBackward)
    }

    @Test func driverCannotChangeAnElementOutsideItsRange() throws {
        let (fixture, _, rings) = try published()
        defer { withExtendedLifetime(fixture) {} }
        rings.packet(at: 5).scratch = true
        let all = rings.allPackets()
        #expect(brokenRule { try all.set() } == .driverChangedElementOutsideRange)
    }

    @Test func osSeesADriverChangeToAnElementItOwns() throws {
        var (fixture, os, _) = try published()
        defer { withExtendedLifetime(fixture) {} }
        let rogue = fixture.driver(checked: false)
        rogue.packet(at: 6).descriptor = 99  // not through a checked view: only the OS can tell
        #expect(brokenRule { _ = try os.reclaimPackets { _ in } } == .driverChangedElementOutsideRange)
    }

    @Test func driverCannotChangeIgnoreOnTransmit() throws {
        let (fixture, _, rings) = try published()
        defer { withExtendedLifetime(fixture) {} }
        let all = rings.allPackets()
        all.packet.ignore = true
        #expect(brokenRule { try all.set() } == .driverChangedIgnore)
    }

    @Test func osSeesIgnoreChangedOnTransmit() throws {
        var (fixture, os, _) = try published()
        defer { withExtendedLifetime(fixture) {} }
        let rogue = fixture.driver(checked: false)
        var all = rogue.allPackets()
        all.packet.ignore = true
        all.advanceToTheEnd()
        try all.set()
        #expect(brokenRule { _ = try os.reclaimPackets { _ in } } == .driverChangedIgnore)
    }

    @Test func driverCannotChangeTransmitPacketOrFragmentFields() throws {
        let (fixture, _, rings) = try published()
        defer { withExtendedLifetime(fixture) {} }
        let all = rings.allPackets()
        all.fragments().fragment.validLength = 1
        #expect(brokenRule { try all.set() } == .driverChangedTransmitFragment)
        all.packet.descriptor = 3
        #expect(brokenRule { try all.set() } == .driverChangedTransmitPacket)
        all.packet.scratch = true  // the one field it may write
        #expect(brokenRule { try all.set() } == nil)
    }

    @Test func osSeesTransmitFragmentChanged() throws {
        var (fixture, os, _) = try published()
        defer { withExtendedLifetime(fixture) {} }
        let rogue = fixture.driver(checked: false)
        let all = rogue.allPackets()
        all.fragments().fragment.offset = 9
        var fragments = rogue.allFragments()
        fragments.advanceToTheEnd()
        try fragments.set()
        #expect(brokenRule { _ = try os.reclaimFragments() } == .driverChangedTransmitFragment)
    }

    @Test func driverCannotChangeAReceiveBuffersChunkOrCapacity() throws {
        let fixture = try RingFixture(packets: 8, fragments: 8, direction: .receive)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.postReceiveBuffers(&os, count: 3)
        let fragments = rings.allFragments()
        fragments.fragment.validLength = 5  // allowed
        fragments.fragment.capacity = 1
        #expect(brokenRule { try fragments.set() } == .driverChangedReceiveBuffer)
    }

    @Test func osCannotChangeAnElementInsideTheDriversRange() throws {
        var (fixture, os, rings) = try published()
        defer { withExtendedLifetime(fixture) {} }
        os.packet(at: 0).descriptor = 5  // published: the driver's now
        #expect(brokenRule { try fixture.send(&os, count: 1, first: 2) } == .osChangedElementInsideDriverRange)

        let rogue = fixture.os(checked: false)
        _ = rings.allPackets()
        rogue.packet(at: 1).fragmentCount = 4
        let all = rings.allPackets()
        #expect(brokenRule { try all.set() } == .osChangedElementInsideDriverRange)
    }

    @Test func postIteratorWithNextOutsideTheRangeIsReported() throws {
        let fixture = try RingFixture(packets: 8, fragments: 8, direction: .receive)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.postReceiveBuffers(&os, count: 3)
        var all = rings.allPackets()
        all.advanceToTheEnd()
        try all.set()  // Rx: BeginIndex passes the (unused) packet NextIndex
        let post = rings.postPackets()
        #expect(brokenRule { try post.set() } == .driverNextOutsideRange)
    }

    @Test func receivePacketNamingUnreturnedFragmentsIsRefused() throws {
        let fixture = try RingFixture(packets: 8, fragments: 8, direction: .receive)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.postReceiveBuffers(&os, count: 3)
        var packets = rings.allPackets()
        packets.packet.fragmentIndex = 1
        packets.packet.fragmentCount = 1
        packets.advance()
        try packets.set()  // the fragment itself is never returned
        #expect(brokenRule { _ = try os.reclaimReceived { _, _ in } } == .driverReturnedInvalidReceivePacket)
    }

    @Test(arguments: [(UInt32(5), UInt16(1)), (1, 2), (0, 17), (15, 2), (1, 1)])
    func packetNamingFragmentsTheDriverDoesNotOwnIsReported(first: UInt32, count: UInt16) throws {
        let fixture = try RingFixture(packets: 8, fragments: 16)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        try fixture.send(&os, count: 2)  // fragments [0, 2) published
        // A hostile OS rewrites a published packet before the driver looks at it.
        let rogue = fixture.os(checked: false)
        rogue.packet(at: 1).fragmentIndex = first
        rogue.packet(at: 1).fragmentCount = count
        let rings = fixture.driver()
        var all = rings.allPackets()
        all.advance()
        _ = all.fragments()
        let inRange = first == 1 && count == 1
        #expect(brokenRule { try all.set() } == (inRange ? nil : .osPacketFragmentsOutsideRange))
    }
}
