import Testing

@testable import RingportCore

@Suite struct IteratorTests {
    @Test func iteratorsCoverTheirSections() throws {
        let fixture = try RingFixture(packets: 8, fragments: 16)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.send(&os, count: 5)
        var post = rings.postPackets()
        #expect(post.hasAny && post.count == 5 && post.index == 0 && post.end == 5)
        post.advance()
        post.advance()
        try post.set()  // NextIndex = 2: drain [0, 2), post [2, 5)
        #expect(rings.drainPackets().count == 2)
        #expect(rings.postPackets().count == 3)
        #expect(rings.allPackets().count == 5)
        #expect(fixture.packetRing.loadBeginIndex() == 0)
    }

    @Test func advancingAndDroppingAnIteratorLeavesTheRingUnchanged() throws {
        let fixture = try RingFixture()
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.send(&os, count: 4)
        var all = rings.allPackets()
        all.advanceToTheEnd()
        #expect(!all.hasAny && all.count == 0 && all.index == 4)
        var fragments = rings.allFragments()
        fragments.advance()
        #expect(fixture.packetRing.loadBeginIndex() == 0 && fixture.packetRing.loadNextIndex() == 0)
        #expect(fixture.fragmentRing.loadBeginIndex() == 0 && fixture.fragmentRing.loadNextIndex() == 0)
        #expect(rings.allPackets().count == 4)
    }

    @Test func theEndIsASnapshotTakenAtCreation() throws {
        let fixture = try RingFixture()
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.send(&os, count: 2)
        var post = rings.postPackets()
        try fixture.send(&os, count: 3, first: 2)
        #expect(post.count == 2)
        post.advanceToTheEnd()
        try post.set()
        #expect(rings.postPackets().count == 3)
    }

    @Test func aFullRingGivesTheDriverNMinusOneElements() throws {
        let fixture = try RingFixture(packets: 8, fragments: 16)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        #expect(os.freePackets == 7)
        try fixture.send(&os, count: 7)
        #expect(os.freePackets == 0 && os.outstandingPackets == 7)
        #expect(rings.allPackets().count == 7)
        #expect(brokenRule { try os.publish(packets: 1, fragments: 0) } == .osOverfilledRing)
        // Returning one packet frees exactly one slot once the OS has reclaimed it.
        var drain = rings.allPackets()
        drain.advance()
        try drain.set()
        #expect(os.freePackets == 0)
        #expect(try os.reclaimPackets { _ in } == 1)
        #expect(os.freePackets == 1)
    }

    @Test func txPostThenDrainCompletesInRingOrderAcrossManyWraps() throws {
        let fixture = try RingFixture(packets: 8, fragments: 16)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        var sent: UInt32 = 0
        var completed: UInt32 = 0
        for round in 0..<500 {
            let count = min(1 + round % 7, os.freePackets, os.freeFragments / 2)
            try fixture.send(&os, count: count, fragmentsEach: 2, first: sent)
            sent += UInt32(count)

            // Post: walk the post section, program each fragment, move both NextIndex values.
            var post = rings.postPackets()
            var fragmentNext = fixture.fragmentRing.loadNextIndex()
            while post.hasAny {
                var fragments = post.fragments()
                #expect(fragments.count == 2)
                while fragments.hasAny {
                    #expect(fragments.fragment.validLength == 10)
                    fragments.advance()
                }
                fragmentNext = fragments.index
                post.packet.scratch = true
                post.advance()
            }
            try post.set()
            try rings.setFragmentNextIndex(to: fragmentNext)

            // Drain: complete everything posted, return fragments then packets.
            var drain = rings.drainPackets()
            #expect(drain.count == UInt32(count))
            drain.advanceToTheEnd()
            try rings.setFragmentBeginIndex(to: fragmentNext)
            try drain.set()

            _ = try os.reclaimPackets { packet in
                #expect(packet.descriptor == completed)
                #expect(packet.scratch)
                completed += 1
            }
            #expect(try os.reclaimFragments() == 2 * count)
        }
        #expect(completed == sent && sent > 1000)
        #expect(os.outstandingPackets == 0 && os.freePackets == 7 && os.freeFragments == 15)
    }

    @Test func drainStopsAtTheFirstIncompletePacket() throws {
        let fixture = try RingFixture()
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.send(&os, count: 4)
        var post = rings.postPackets()
        post.advanceToTheEnd()
        try post.set()
        // Out-of-order hardware: packets 0, 1 and 3 done (marked in Scratch), 2 not yet.
        for i: UInt32 in [0, 1, 3] { rings.packet(at: i).scratch = true }
        var drain = rings.drainPackets()
        while drain.hasAny && drain.packet.scratch { drain.advance() }
        try drain.set()
        var returned: [UInt32] = []
        _ = try os.reclaimPackets { returned.append($0.descriptor) }
        #expect(returned == [0, 1])
    }

    @Test func rxDrainThenPostIndicatesFilledBuffers() throws {
        let fixture = try RingFixture(packets: 8, fragments: 8, direction: .receive)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.postReceiveBuffers(&os, count: 7)
        var indicated: [UInt32] = []
        for round in 0..<40 {
            // Post: hand the new buffers to the "hardware".
            var post = rings.postFragments()
            post.advanceToTheEnd()
            try post.set()

            // Indicate (drain): the hardware filled the first three buffers; fill packets for them.
            var fragments = rings.drainFragments()
            var packets = rings.allPackets()
            var filled = 0
            while fragments.hasAny && packets.hasAny && filled < 3 {
                let fragment = fragments.fragment
                fragment.validLength = 20 + UInt32(round)
                fragment.offset = 2
                let packet = packets.packet
                packet.fragmentIndex = fragments.index
                packet.fragmentCount = 1
                packet.layout = NetPacketLayout(layer2Type: .ethernet, layer2HeaderLength: 14)
                packet.ignore = false
                fragments.advance()
                packets.advance()
                filled += 1
            }
            try fragments.set()
            try packets.set()

            var got = 0
            _ = try os.reclaimReceived { packet, list in
                #expect(list.count == 1)
                let fragment = list.fragment(0)
                #expect(fragment.validLength == 20 + UInt32(round) && fragment.offset == 2)
                #expect(packet.layout.layer2Type == .ethernet)
                indicated.append(list.first)
                got += 1
            }
            #expect(got == filled)
            // The protocol returned them: post the buffers again.
            let free = min(os.freePackets, os.freeFragments)
            try fixture.postReceiveBuffers(&os, count: free)
        }
        #expect(indicated.count == 120)
    }

    @Test func ignoredTransmitPacketHasNoFragmentsAndIsReturned() throws {
        let fixture = try RingFixture()
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        let bad = os.stagedPacket(0)
        bad.reset()
        bad.ignore = true  // the OS could not translate it: Ignore, FragmentCount 0
        bad.fragmentIndex = os.stagedFragmentIndex(0)
        bad.descriptor = 77
        try os.publish(packets: 1, fragments: 0)
        var post = rings.postPackets()
        #expect(post.packet.ignore)
        #expect(!post.fragments().hasAny && post.fragments().count == 0)
        post.advance()
        try post.set()
        var drain = rings.drainPackets()
        drain.advanceToTheEnd()
        try drain.set()
        var returned: [UInt32] = []
        _ = try os.reclaimPackets { returned.append($0.ignore ? $0.descriptor : 0) }
        #expect(returned == [77])
    }

    @Test func ignoredReceivePacketsAreNeverIndicated() throws {
        let fixture = try RingFixture(packets: 8, fragments: 8, direction: .receive)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.postReceiveBuffers(&os, count: 4)
        var post = rings.postFragments()
        post.advanceToTheEnd()
        try post.set()
        var fragments = rings.drainFragments()
        var packets = rings.allPackets()
        for k in 0..<4 {
            if k % 2 == 1 {
                packets.packet.ignore = true  // a bad frame: dropped, with no buffer attached (§1.10)
            } else {
                packets.packet.fragmentIndex = fragments.index
                packets.packet.fragmentCount = 1
                fragments.advance()
            }
            packets.advance()
        }
        try fragments.set()
        try packets.set()
        var indicated = 0
        #expect(try os.reclaimReceived { _, _ in indicated += 1 } == 4)
        #expect(indicated == 2)
    }

    @Test func rxCancelReturnsEverythingIgnored() throws {
        let fixture = try RingFixture(packets: 8, fragments: 8, direction: .receive)
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.postReceiveBuffers(&os, count: 6)
        var post = rings.postFragments()
        post.advance()
        post.advance()
        try post.set()
        // Cancel: every packet Ignore, then return all packets and all fragments.
        var packets = rings.allPackets()
        while packets.hasAny {
            packets.packet.ignore = true
            packets.advance()
        }
        try packets.set()
        var fragments = rings.allFragments()
        fragments.advanceToTheEnd()
        try fragments.set()
        var indicated = 0
        #expect(try os.reclaimReceived { _, _ in indicated += 1 } == 6)
        #expect(indicated == 0 && os.outstandingPackets == 0)
        #expect(fixture.fragmentRing.loadBeginIndex() == fixture.fragmentRing.loadEndIndex())
    }

    @Test func txCancelAdvancesAllToTheEnd() throws {
        let fixture = try RingFixture()
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os()
        let rings = fixture.driver()
        try fixture.send(&os, count: 5, fragmentsEach: 2)
        var packets = rings.allPackets()
        packets.advanceToTheEnd()
        try packets.set()
        var fragments = rings.allFragments()
        fragments.advanceToTheEnd()
        try fragments.set()
        #expect(try os.reclaimPackets { _ in } == 5)
        #expect(try os.reclaimFragments() == 10)
    }

    @Test func setPastTheEndIsRefusedEvenUnchecked() throws {
        let fixture = try RingFixture()
        defer { withExtendedLifetime(fixture) {} }
        var os = fixture.os(checked: false)
        let rings = fixture.driver(checked: false)
        try fixture.send(&os, count: 2)
        var all = rings.allPackets()
        all.advance()
        all.advance()
        all.advance()
        #expect(brokenRule { try all.set() } == .driverMovedBeginPastEnd)
        var post = rings.postPackets()
        post.advanceToTheEnd()
        post.advance()
        #expect(brokenRule { try post.set() } == .driverMovedNextPastEnd)
        #expect(brokenRule { try rings.setFragmentBeginIndex(to: 5) } == .driverMovedBeginPastEnd)
        #expect(fixture.packetRing.loadBeginIndex() == 0 && fixture.packetRing.loadNextIndex() == 0)
    }
}
