/// The payload the stress tools send and the checking drivers verify: a 16-byte header (magic, length,
/// sequence number) and then bytes that depend on the sequence number and position, so a lost,
/// reordered, torn or misdirected packet is caught byte for byte.
@usableFromInline package enum PayloadPattern {
    @usableFromInline package static let magic: UInt32 = 0x4C50_5052  // "RPPL"
    @usableFromInline package static let headerSize = 16

    @inlinable package static func byte(_ sequence: UInt64, _ position: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: sequence &* 131 &+ UInt64(position) &* 7)
    }

    /// Writes the pattern of packet `sequence`, `bytes.count` long (at least `headerSize`), at `start`
    /// bytes into the packet (a packet spans several buffers).
    @inlinable package static func fill(
        _ bytes: UnsafeMutableRawBufferPointer, sequence: UInt64, totalLength: Int, start: Int
    ) {
        let headerEnd = max(0, min(bytes.count, headerSize - start))
        for i in 0..<headerEnd { bytes[i] = byte(at: start + i, sequence: sequence, totalLength: totalLength) }
        // The body is a plain loop the compiler vectorizes.
        let base = sequence &* 131
        for i in headerEnd..<bytes.count { bytes[i] = UInt8(truncatingIfNeeded: base &+ UInt64(start + i) &* 7) }
    }

    @inlinable static func byte(at position: Int, sequence: UInt64, totalLength: Int) -> UInt8 {
        switch position {
        case 0..<4: UInt8(truncatingIfNeeded: magic >> (8 * position))
        case 4..<8: UInt8(truncatingIfNeeded: UInt32(totalLength) >> (8 * (position - 4)))
        case 8..<16: UInt8(truncatingIfNeeded: sequence >> (8 * (position - 8)))
        default: byte(sequence, position)
        }
    }

    /// The sequence number of a whole payload, if every byte is what it should be.
    @usableFromInline package static func verify(_ payload: [UInt8]) -> UInt64? {
        payload.withUnsafeBytes { verify($0) }
    }

    /// The same, in place (a received frame's bytes in the shared data area, say).
    @inlinable package static func verify(_ payload: UnsafeRawBufferPointer) -> UInt64? {
        guard payload.count >= headerSize else { return nil }
        var sequence: UInt64 = 0
        for i in (8..<16).reversed() { sequence = sequence << 8 | UInt64(payload[i]) }
        for i in 0..<headerSize where payload[i] != byte(at: i, sequence: sequence, totalLength: payload.count) {
            return nil
        }
        // The body as `fill` writes it, in a plain loop.
        let base = sequence &* 131
        var mismatch: UInt8 = 0
        for i in headerSize..<payload.count {
            mismatch |= payload[i] ^ UInt8(truncatingIfNeeded: base &+ UInt64(i) &* 7)
        }
        return mismatch == 0 ? sequence : nil
    }

    /// The status the checking test drivers complete packet `sequence` with: mostly `SUCCESS`, and
    /// `FAILURE` for about one in 97, so protocols can check each completion carries the driver's status.
    @usableFromInline package static func expectedStatus(_ sequence: UInt64) -> NDISStatus {
        sequence % 97 == 13 ? .failure : .success
    }
}
