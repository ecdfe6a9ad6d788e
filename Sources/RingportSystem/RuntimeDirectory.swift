import Glibc

/// Where a miniport keeps its socket and lock: `--dir`, else `RINGPORT_DIR`, else `/run/ringport` for root
/// and `$XDG_RUNTIME_DIR/ringport` (or `/tmp/ringport-<uid>`) for anyone else.
public struct RuntimeDirectory: Sendable, Hashable {
    public let path: String

    public init(_ explicit: String? = nil) {
        if let explicit, !explicit.isEmpty {
            path = explicit
        } else if let fromEnvironment = getenv("RINGPORT_DIR").map({ String(cString: $0) }), !fromEnvironment.isEmpty {
            path = fromEnvironment
        } else if getuid() == 0 {
            path = "/run/ringport"
        } else if let runtime = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), !runtime.isEmpty {
            path = runtime + "/ringport"
        } else {
            path = "/tmp/ringport-\(getuid())"
        }
    }

    /// Creates the directory if needed (0755 for root, whose protocols may be other users; 0700 otherwise).
    public func create() throws(SystemError) {
        let mode: mode_t = getuid() == 0 ? 0o755 : 0o700
        if mkdir(path, mode) != 0 && errno != EEXIST { throw .fromErrno("mkdir(\(path))") }
    }

    public func socketPath(adapter: String) -> String { "\(path)/\(adapter).sock" }
    public func lockPath(adapter: String) -> String { "\(path)/\(adapter).lock" }

    /// Adapter names: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
    public static func isValidAdapterName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && !name.hasPrefix(".")
            && name.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E
                    || c == 0x5F || c == 0x2D
            }
    }
}

/// The single-instance lock of an adapter: `flock` on `<adapter>.lock`. The kernel drops it when the
/// process dies, so a miniport started after a `kill -9` gets it and cleans up after its predecessor.
public struct AdapterLock: ~Copyable {
    let descriptor: CInt
    public let path: String

    public enum Failure: Error, CustomStringConvertible {
        case held(path: String, byProcess: Int32?)
        case system(SystemError)
        public var description: String {
            switch self {
            case .held(let path, let pid):
                "the adapter is already served by another miniport\(pid.map { " (pid \($0))" } ?? "") (lock \(path))"
            case .system(let error): error.description
            }
        }
    }

    /// Takes the lock without waiting and writes our pid into the file.
    public init(path: String) throws(Failure) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .system(.fromErrno("open(\(path))")) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let error = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            guard error == EWOULDBLOCK else { throw .system(SystemError("flock(\(path))", .init(rawValue: error))) }
            let text = count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : ""
            throw .held(path: path, byProcess: Int32(text.split(separator: "\n").first ?? ""))
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        descriptor = fd
        self.path = path
    }

    deinit {
        unlink(path)
        close(descriptor)
    }

    /// Removes the lock file (on the way out; the lock is held until the descriptor closes).
    public func removeFile() { unlink(path) }
}
