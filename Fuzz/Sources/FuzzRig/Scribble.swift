import FuzzSupport
import RingportCore

/// Writes a fuzz input's bytes into a binding's segment: ring indices, ring elements, descriptors, or any
/// byte of any region. A peer maps the segment read-write, so any of these is a write it can make.
package enum Scribble {
    /// Byte offsets of the indices in a ring header (`rp_net_ring` in the C header).
    static let indexOffsets = [256, 260, 128]  // BeginIndex, NextIndex, EndIndex
    static let ringHeaderSize = NetRing.headerSize
    /// Region numbers of the rings in the segment's region table, and their element sizes.
    static let rings: [(region: Int, stride: Int)] = [
        (3, NetPacket.size), (4, NetFragment.size), (5, NetPacket.size), (6, NetFragment.size),
    ]

    /// One write read from `input` (about 4 to 12 bytes of it) into `views`.
    package static func apply(_ input: inout FuzzInput, to views: [UnsafeMutableRawBufferPointer]) {
        guard views.count >= 8 else { return }
        switch input.u8() % 5 {
        case 0, 1:
            // A ring index: mostly small values near the real ones, sometimes any 32 bits.
            let ring = views[rings[input.below(4)].region]
            let offset = indexOffsets[input.below(3)]
            let raw = input.u8()
            let value = raw & 0x80 != 0 ? input.u32() : UInt32(raw & 0x3F)
            store(value, width: 4, into: ring, at: offset)
        case 2:
            // A field of a ring element.
            let (region, stride) = rings[input.below(4)]
            let ring = views[region]
            let count = (ring.count - ringHeaderSize) / stride
            guard count > 0 else { return }
            let offset = ringHeaderSize + input.below(count) * stride + input.below(stride)
            write(&input, into: ring, at: offset)
        case 3:
            // A field of a packet descriptor (its OOB block, chain, status) or of a buffer descriptor.
            let table = views[1 + input.below(2)]
            write(&input, into: table, at: input.below(min(table.count, 4096)))
        default:
            // Any byte of any region.
            let region = views[input.below(views.count)]
            write(&input, into: region, at: input.below(region.count))
        }
    }

    static func write(_ input: inout FuzzInput, into region: UnsafeMutableRawBufferPointer, at offset: Int) {
        let width = [1, 2, 4, 8][input.below(4)]
        let value = input.u64()
        store(value, width: width, into: region, at: offset)
    }

    static func store<V: FixedWidthInteger>(
        _ value: V, width: Int, into region: UnsafeMutableRawBufferPointer, at offset: Int
    ) {
        guard offset >= 0, region.count >= width else { return }
        let at = min(offset, region.count - width)
        withUnsafeBytes(of: value.littleEndian) { bytes in
            for i in 0..<min(width, bytes.count) { region[at + i] = bytes[i] }
        }
    }
}
