import Testing

@testable import RingportCore

@Suite struct RingHelperTests {
    @Test func rangeCountMatchesTheDocumentedExamples() throws {
        let fixture = try RingFixture(packets: 8)
        defer { withExtendedLifetime(fixture) {} }
        let ring = fixture.packetRing
        #expect(ring.rangeCount(from: 1, to: 4) == 3)
        #expect(ring.rangeCount(from: 4, to: 1) == 5)
        #expect(ring.rangeCount(from: 2, to: 2) == 0)
        #expect(ring.rangeCount(from: 7, to: 0) == 1)
    }

    @Test func incrementAndAdvanceWrapWithTheMask() throws {
        let fixture = try RingFixture(packets: 8)
        defer { withExtendedLifetime(fixture) {} }
        let ring = fixture.packetRing
        #expect(ring.numberOfElements == 8 && ring.elementIndexMask == 7)
        #expect(ring.increment(6) == 7)
        #expect(ring.increment(7) == 0)
        #expect(ring.advance(5, by: 4) == 1)
        #expect(ring.advance(1, by: -1) == 0)
        #expect(ring.advance(0, by: -1) == 7)
        #expect(ring.advance(3, by: -11) == 0)
        #expect(ring.advance(3, by: 0) == 3)
    }

    @Test func elementAtIndexIsBufferPlusIndexTimesStride() throws {
        let fixture = try RingFixture(packets: 8)
        defer { withExtendedLifetime(fixture) {} }
        let ring = fixture.packetRing
        let buffer = fixture.memory.baseAddress! + NetRing.headerSize
        for i in UInt32(0)..<8 {
            #expect(ring.element(at: i) == buffer + Int(i) * NetPacket.size)
        }
    }

    @Test func containsFollowsTheRingOrder() throws {
        let fixture = try RingFixture(packets: 8)
        defer { withExtendedLifetime(fixture) {} }
        let ring = fixture.packetRing
        #expect(ring.contains(6, from: 6, to: 1))
        #expect(ring.contains(0, from: 6, to: 1))
        #expect(!ring.contains(1, from: 6, to: 1))
        #expect(!ring.contains(3, from: 3, to: 3))
    }

    @Test func freshRingHasEveryIndexAtZero() throws {
        let fixture = try RingFixture()
        defer { withExtendedLifetime(fixture) {} }
        let ring = fixture.packetRing
        #expect(ring.loadBeginIndex() == 0 && ring.loadNextIndex() == 0 && ring.loadEndIndex() == 0)
    }

    @Test func attachRefusesBadGeometry() throws {
        let region = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 128)
        defer { region.deallocate() }
        region.initializeMemory(as: UInt8.self, repeating: 0)
        #expect(throws: SegmentError.self) { _ = try NetRing.attach(to: region) }  // 0 elements
        for (count, stride) in [(6, 16), (1, 16), (8, 12), (8, 8), (1024, 16)] {
            #expect(throws: SegmentError.self) {
                _ = try NetRing.initialize(at: region, count: count, stride: stride, flags: [.packet, .transmit])
            }
        }
        let ring = try NetRing.initialize(at: region, count: 8, stride: 32, flags: [.fragment, .receive])
        #expect(ring.elementStride == 32)
        // A peer rewriting the mask afterwards is caught by the next attach, and never read by this view.
        region.storeBytes(of: UInt32(3), toByteOffset: 8, as: UInt32.self)
        #expect(throws: SegmentError.self) { _ = try NetRing.attach(to: region) }
        #expect(ring.elementIndexMask == 7)
    }

    @Test func indicesLoadedFromSharedMemoryAreMasked() throws {
        let fixture = try RingFixture(packets: 8)
        defer { withExtendedLifetime(fixture) {} }
        let ring = fixture.packetRing
        ring.storeEndIndex(0xFFFF_FFF9)
        #expect(ring.loadEndIndex() == 1)
    }
}
