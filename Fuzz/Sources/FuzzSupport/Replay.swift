import Foundation

/// The replay side of a fuzz harness: in a normal build each harness is an executable that runs its entry
/// point over corpus files (a crash found by libFuzzer reproduces without the fuzzer), or writes its seeds.
public enum FuzzReplay {
    /// `harness [--write-seeds DIR] [FILE|DIR]...`: replays every file named (a directory: every file in it),
    /// or writes `seeds` into DIR. Exits non-zero if a file cannot be read.
    public static func main(
        name: String,
        seeds: () -> [(name: String, bytes: [UInt8])],
        _ body: (UnsafeRawBufferPointer) -> Void
    ) {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--write-seeds", arguments.count == 2 {
            let directory = arguments[1]
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let all = seeds()
            for seed in all {
                let path = directory + "/" + seed.name
                guard FileManager.default.createFile(atPath: path, contents: Data(seed.bytes)) else {
                    fatalError("\(name): cannot write \(path)")
                }
            }
            print("\(name): wrote \(all.count) seeds to \(directory)")
            return
        }
        if arguments.isEmpty || arguments.contains("--help") {
            print("usage: \(name) [--write-seeds DIR] [FILE|DIR]...  (replays inputs through the fuzz entry point)")
            if arguments.isEmpty { return }
            arguments.removeAll { $0 == "--help" }
        }
        var replayed = 0
        for path in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("\(name): no such file \(path)\n".utf8))
                exit(2)
            }
            let files =
                isDirectory.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else {
                    FileHandle.standardError.write(Data("\(name): cannot read \(file)\n".utf8))
                    exit(2)
                }
                data.withUnsafeBytes { body($0) }
                replayed += 1
            }
        }
        print("\(name): replayed \(replayed) inputs")
    }
}

/// Reads a fuzz input as a stream of choices; past the end every read is 0, so any input is a valid program.
public struct FuzzInput {
    let bytes: UnsafeRawBufferPointer
    public private(set) var position = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var isAtEnd: Bool { position >= bytes.count }

    public mutating func u8() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    public mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    public mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// A value in `0..<bound` (0 if `bound` is 0).
    public mutating func below(_ bound: Int) -> Int {
        guard bound > 1 else { return 0 }
        return bound <= 256 ? Int(u8()) % bound : Int(u32() % UInt32(clamping: bound))
    }

    /// Up to `count` bytes (fewer at the end of the input).
    public mutating func take(_ count: Int) -> [UInt8] {
        let n = max(0, min(count, bytes.count - position))
        defer { position += n }
        return Array(bytes[position..<position + n])
    }
}

/// Builds seed inputs for `FuzzInput` readers.
public struct FuzzSeedWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func raw(_ v: [UInt8]) { bytes += v }
}
