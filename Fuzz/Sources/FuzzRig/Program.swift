import FuzzSupport
import Ringport
import RingportCore

/// A fuzz input as a program: a header record, then operations, each a fixed record of `size` bytes (its
/// first byte the operation), so a mutation changes one operation and seeds can be written by hand.
package enum Program {
    package static let size = 16
    package static let maximumOperations = 200

    /// Calls `body` with each record of `data` (zero-filled past the end), at most `maximumOperations + 1`.
    package static func records(_ data: UnsafeRawBufferPointer, _ body: (inout FuzzInput) -> Void) {
        var offset = 0
        var count = 0
        while offset < data.count && count <= maximumOperations {
            let end = min(offset + size, data.count)
            var input = FuzzInput(UnsafeRawBufferPointer(rebasing: data[offset..<end]))
            body(&input)
            offset = end
            count += 1
        }
    }

    /// Writes records for a seed.
    package static func seed(_ records: [[UInt8]]) -> [UInt8] {
        records.flatMap { record in Array((record + Array(repeating: 0, count: size)).prefix(size)) }
    }
}

/// What an honest protocol does with the library: sends a few patterned packets, takes completions back,
/// takes receives and returns them. Everything it gets back it drops, which frees it.
package enum LibraryUse {
    package static func send(_ adapter: Adapter, _ input: inout FuzzInput, sequence: inout UInt64) {
        var batch = PacketArray()
        for _ in 0..<1 + input.below(4) {
            var packet: Packet
            do { packet = try adapter.allocatePacket() } catch { break }
            for _ in 0..<1 + input.below(adapter.configuration.fragmentsPerPacket) {
                let length = 1 + input.below(min(100, adapter.configuration.chunkSize))
                let buffer: Buffer
                do { buffer = try adapter.allocateBuffer(length: length) } catch { break }
                buffer.withUnsafeMutableBytes {
                    PayloadPattern.fill($0, sequence: sequence, totalLength: $0.count, start: 0)
                }
                packet.chainAtBack(buffer)
            }
            let options = input.u8()
            if options & 1 != 0 { packet.mediaSpecificInformation = .ieee8023Priority(options >> 5) }
            sequence &+= 1
            batch.append(packet)
        }
        adapter.send(batch)
    }

    package static func poll(_ adapter: Adapter) {
        adapter.pollCompletions { _, _ in }
        adapter.pollReceives { frame in _ = frame.withUnsafeBytes { $0.reduce(0, &+) } }
    }
}
