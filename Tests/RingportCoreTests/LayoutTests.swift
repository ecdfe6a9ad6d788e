import Testing
import _RingportShim

@testable import RingportCore

@Suite struct LayoutTests {
    @Test func swiftOffsetsMatchTheCStructs() {
        #expect(MemoryLayout<rp_net_packet>.size == NetPacket.size)
        #expect(MemoryLayout<rp_net_packet>.offset(of: \.fragment_index) == NetPacket.Offset.fragmentIndex)
        #expect(MemoryLayout<rp_net_packet>.offset(of: \.fragment_count) == NetPacket.Offset.fragmentCount)
        #expect(MemoryLayout<rp_net_packet>.offset(of: \.layout) == NetPacket.Offset.layout)
        #expect(MemoryLayout<rp_net_packet>.offset(of: \.flags) == NetPacket.Offset.flags)
        #expect(MemoryLayout<rp_net_packet>.offset(of: \.descriptor) == NetPacket.Offset.descriptor)

        #expect(MemoryLayout<rp_net_fragment>.size == NetFragment.size)
        #expect(MemoryLayout<rp_net_fragment>.offset(of: \.valid_length) == NetFragment.Offset.validLength)
        #expect(MemoryLayout<rp_net_fragment>.offset(of: \.capacity) == NetFragment.Offset.capacity)
        #expect(MemoryLayout<rp_net_fragment>.offset(of: \.chunk) == NetFragment.Offset.chunk)
        #expect(MemoryLayout<rp_net_fragment>.offset(of: \.offset) == NetFragment.Offset.offset)
        #expect(MemoryLayout<rp_net_fragment>.offset(of: \.flags) == NetFragment.Offset.flags)

        #expect(MemoryLayout<rp_net_ring>.size == NetRing.headerSize)
        #expect(MemoryLayout<rp_net_ring>.offset(of: \.element_stride) == NetRing.Offset.elementStride)
        #expect(MemoryLayout<rp_net_ring>.offset(of: \.number_of_elements) == NetRing.Offset.numberOfElements)
        #expect(MemoryLayout<rp_net_ring>.offset(of: \.element_index_mask) == NetRing.Offset.elementIndexMask)
        #expect(MemoryLayout<rp_net_ring>.offset(of: \.end_index) == NetRing.Offset.endIndex)
        #expect(MemoryLayout<rp_net_ring>.offset(of: \.begin_index) == NetRing.Offset.beginIndex)
        #expect(MemoryLayout<rp_net_ring>.offset(of: \.next_index) == NetRing.Offset.nextIndex)
        #expect(MemoryLayout<rp_net_ring>.offset(of: \.scratch) == NetRing.Offset.scratch)
    }

    @Test func writersOfTheRingIndicesSitInSeparateCacheBlocks() {
        let block = Int(RP_CACHE_BLOCK)
        #expect(NetRing.Offset.endIndex / block != NetRing.Offset.beginIndex / block)
        #expect(NetRing.Offset.endIndex / block != NetRing.Offset.elementStride / block)
        #expect(NetRing.Offset.nextIndex / block == NetRing.Offset.beginIndex / block)
        #expect(NetRing.headerSize % block == 0)
    }

    @Test func segmentHeaderOffsetsMatchTheCStruct() {
        #expect(MemoryLayout<rp_segment_header>.offset(of: \.total_size) == 16)
        #expect(MemoryLayout<rp_segment_header>.offset(of: \.region_count) == 32)
        #expect(MemoryLayout<rp_segment_header>.offset(of: \.regions) == 128)
        #expect(MemoryLayout<rp_region>.offset(of: \.offset) == 16)
        #expect(MemoryLayout<rp_region>.offset(of: \.length) == 24)
    }

    @Test func packetLayoutPacksFortyBitsLowFirst() {
        var layout = NetPacketLayout(
            layer2Type: .ethernet,
            layer3Type: .ipv4NoOptions,
            layer4Type: .udp,
            layer2HeaderLength: 14,
            layer3HeaderLength: 20,
            layer4HeaderLength: 8
        )
        #expect(layout.bits == 14 | 20 << 7 | 8 << 16 | 2 << 24 | 3 << 28 | 2 << 32)
        layout.layer3HeaderLength = 511
        #expect(layout.layer3HeaderLength == 511 && layout.layer2HeaderLength == 14 && layout.layer4HeaderLength == 8)
        #expect(NetPacketLayout(bits: layout.bits) == layout)
    }

    @Test func packetLayoutRoundTripsThroughAnElement() throws {
        let fixture = try RingFixture()
        defer { withExtendedLifetime(fixture) {} }
        let packet = fixture.driver(checked: false).packet(at: 3)
        let layout = NetPacketLayout(layer2Type: .ieee80211, layer4Type: .tcp, layer2HeaderLength: 127)
        packet.layout = layout
        #expect(packet.layout == layout)
        // The five layout bytes do not spill into their neighbours.
        packet.fragmentCount = 0xABCD
        packet.ignore = true
        #expect(packet.layout == layout && packet.fragmentCount == 0xABCD && packet.ignore && !packet.scratch)
    }

    @Test func fragmentSpanRejectsEveryInconsistentField() throws {
        let fixture = try RingFixture(fragments: 16, chunkSize: 64)
        defer { withExtendedLifetime(fixture) {} }
        let fragment = fixture.driver(checked: false).fragment(at: 0)
        fragment.reset()
        fragment.chunk = 3
        fragment.capacity = 64
        fragment.offset = 10
        fragment.validLength = 54
        #expect(fixture.data.span(of: fragment) == 3 * 64 + 10..<4 * 64)
        fragment.validLength = 55
        #expect(fixture.data.span(of: fragment) == nil)
        fragment.validLength = 1
        fragment.chunk = 16
        #expect(fixture.data.span(of: fragment) == nil)
        fragment.chunk = 0
        fragment.capacity = 65
        #expect(fixture.data.span(of: fragment) == nil)
        fragment.capacity = 8
        #expect(fixture.data.span(of: fragment) == nil)
    }

    @Test func statusesCarryTheirNDISValues() {
        #expect(NDISStatus.resources.rawValue == 0xC000_009A)
        #expect(NDISStatus.closing.rawValue == 0xC001_0002)
        #expect(NDISStatus.invalidPacket.description == "INVALID_PACKET")
        #expect(NDISStatus(rawValue: 0xC0FF_EE00).description == "NDIS_STATUS(0xC0FFEE00)")
    }
}
