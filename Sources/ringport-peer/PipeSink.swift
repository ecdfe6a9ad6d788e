import ArgumentParser
import Glibc
import RingTransfer
import RingportSystem

/// The pipe baseline's reader: the same 32-byte descriptor records the ring carries.
struct PipeSink: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipe-sink",
        abstract: "Read descriptor records from stdin (the pipe baseline of `bench`).",
        shouldDisplay: false
    )

    @Option var packets: Int
    @Option var batch: Int
    @Option var cpu: Int?
    @Option var parent: Int32?

    func run() throws {
        if let parent { try ProcessControl.dieWithParent(expectedParent: parent) }
        if let cpu { try ProcessControl.pin(toCPU: cpu) }
        writeLine("ready")
        var buffer = [UInt8](repeating: 0, count: batch * PipeRecord.size)
        var received = 0
        while received < packets {
            let n = min(batch, packets - received)
            let ok = buffer.withUnsafeMutableBytes { bytes in
                var done = 0
                while done < n * PipeRecord.size {
                    let r = read(0, bytes.baseAddress! + done, n * PipeRecord.size - done)
                    if r <= 0 { return false }
                    done += r
                }
                for k in 0..<n where PipeRecord.sequence(in: bytes, at: k) != UInt32(truncatingIfNeeded: received + k) {
                    return false
                }
                return true
            }
            guard ok else {
                FileHandleStderr.write("pipe-sink: short read or out-of-order record after \(received)\n")
                throw ExitCode(1)
            }
            received += n
        }
        writeLine("done")
    }
}

/// Writes a line to stdout at once (unbuffered: the parent waits for it).
func writeLine(_ line: String) {
    var line = line + "\n"
    line.withUTF8 { _ = Glibc.write(1, $0.baseAddress, $0.count) }
}

/// A packet element and a fragment element, as the ring carries them: 32 bytes.
enum PipeRecord {
    static let size = 32

    static func write(sequence: UInt32, into bytes: UnsafeMutableRawBufferPointer, at k: Int) {
        let base = k * size
        bytes.storeBytes(of: UInt32(k), toByteOffset: base, as: UInt32.self)  // fragment index
        bytes.storeBytes(of: UInt32(1), toByteOffset: base + 4, as: UInt32.self)  // fragment count
        bytes.storeBytes(of: UInt32(0), toByteOffset: base + 8, as: UInt32.self)
        bytes.storeBytes(of: sequence, toByteOffset: base + 12, as: UInt32.self)  // descriptor
        bytes.storeBytes(of: UInt32(64), toByteOffset: base + 16, as: UInt32.self)  // valid length
        bytes.storeBytes(of: UInt32(128), toByteOffset: base + 20, as: UInt32.self)  // capacity
        bytes.storeBytes(of: UInt32(k), toByteOffset: base + 24, as: UInt32.self)  // chunk
        bytes.storeBytes(of: UInt32(0), toByteOffset: base + 28, as: UInt32.self)  // offset, flags
    }

    static func sequence(in bytes: UnsafeMutableRawBufferPointer, at k: Int) -> UInt32 {
        bytes.load(fromByteOffset: k * size + 12, as: UInt32.self)
    }
}
