import Glibc

/// Where a miniport keeps its socket and lock: `--dir`, else `RINGPORT_DIR`, else `/run/ringport` for root
/// and `$XDG_RUNTIME_DIR/ringport` (or `/tmp/ringport-<uid>`) for anyone else.
///
/// Another local user must not be able to plant it (create it first, or make it a symlink): whoever owns the
/// directory decides which miniport a client reaches and where the miniport writes its pid. So the default
/// directory is created by its owner with 0700 (plus search permission for exactly the classes the socket
/// admits: 0710 with `--group`, 0711 with a world socket), and refused when it is a symlink, not ours, or
/// writable by anyone else (a mode that only lets others search or list it is narrowed). An explicit directory (`--dir`, `RINGPORT_DIR`) is the caller's choice: it is refused only
/// as a symlink or when owned by someone other than us or root; its mode is left alone.
public struct RuntimeDirectory: Sendable, Hashable {
    /// The directory's absolute or relative path.
    public let path: String
    /// No `--dir` and no `RINGPORT_DIR`: the per-user default, checked strictly on both sides.
    public let isDefault: Bool

    /// `explicit` if given and not empty, else `$RINGPORT_DIR`, else the per-user default.
    public init(_ explicit: String? = nil) {
        if let explicit, !explicit.isEmpty {
            path = explicit
            isDefault = false
        } else if let fromEnvironment = getenv("RINGPORT_DIR").map({ String(cString: $0) }), !fromEnvironment.isEmpty {
            path = fromEnvironment
            isDefault = false
        } else if geteuid() == 0 {
            path = "/run/ringport"
            isDefault = true
        } else if let runtime = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), !runtime.isEmpty {
            path = runtime + "/ringport"
            isDefault = true
        } else {
            path = "/tmp/ringport-\(geteuid())"
            isDefault = true
        }
    }

    /// `path`, checked as the default directory or as an explicit one (tests).
    init(path: String, isDefault: Bool) {
        self.path = path
        self.isDefault = isDefault
    }

    /// A directory (or a file in it) that someone else could have planted or could reach into: refused.
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        /// The directory or a file in it is not safe to use (a symlink, another owner, writable by others).
        case unsafe(path: String, reason: String)
        /// The group named for the socket does not exist.
        case unknownGroup(String)
        /// A system call on the directory failed.
        case system(SystemError)

        /// What was refused and why, on one line.
        public var description: String {
            switch self {
            case .unsafe(let path, let reason): "refusing \(path): \(reason)"
            case .unknownGroup(let name): "no group \"\(name)\""
            case .system(let error): error.description
            }
        }
    }

    /// The directory's mode for a socket of `socketMode`: rwx for the owner, search (x, never list or write)
    /// for each class the socket admits.
    package static func mode(forSocketMode socketMode: mode_t) -> mode_t {
        0o700 | (socketMode & 0o060 != 0 ? 0o010 : 0) | (socketMode & 0o006 != 0 ? 0o001 : 0)
    }

    /// The group `name` (or a number) names.
    package static func groupID(_ name: String) throws(Failure) -> gid_t {
        if let group = getgrnam(name) { return group.pointee.gr_gid }
        if let number = gid_t(name), getgrgid(number) != nil { return number }
        throw .unknownGroup(name)
    }

    /// Creates the directory if needed and checks that nobody else can have planted it (see the type).
    /// `group`: the directory gets that group and its search permission, for a socket of that group.
    package func create(socketMode: mode_t = 0o600, group: gid_t? = nil) throws(Failure) {
        let wanted = Self.mode(forSocketMode: socketMode | (group == nil ? 0 : 0o060))
        var created = false
        if mkdir(path, 0o700) == 0 {
            created = true
        } else if errno != EEXIST {
            throw .system(.fromErrno("mkdir(\(path))"))
        }
        // Checked through a descriptor opened without following a link: what we check is what we chmod.
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ELOOP || errno == ENOTDIR {
                throw .unsafe(path: path, reason: "it is a symbolic link or not a directory")
            }
            throw .system(.fromErrno("open(\(path))"))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .system(.fromErrno("fstat(\(path))")) }
        try Self.checkOwner(info, path: path, allowRoot: !isDefault)
        let mode = info.st_mode & 0o7777
        // Only a directory others could write in can hold what they planted; one of ours that they could only
        // search or list (say 0755, from an older version) is narrowed below.
        if isDefault && !created && mode & 0o022 != 0 {
            throw .unsafe(
                path: path,
                reason: "its mode is \(String(mode, radix: 8)), writable by others "
                    + "(someone else may have put files in it; remove it or chmod \(String(wanted, radix: 8)) it)"
            )
        }
        if let group, info.st_gid != group {
            guard fchown(fd, uid_t.max, group) == 0 else {
                throw .system(.fromErrno("fchown(\(path), group \(group)) (only a member of the group may)"))
            }
        }
        // Ours: created now, or a default that nobody else could write in. An explicit directory keeps its mode.
        if (created || isDefault) && mode != wanted {
            guard fchmod(fd, wanted) == 0 else { throw .system(.fromErrno("fchmod(\(path))")) }
        }
    }

    /// The client's check before it connects: a default directory must be ours or root's and no symlink
    /// (another user's directory at our default path is a fake miniport waiting). An explicit directory is
    /// the caller's choice (another user's miniport, reached through `--group`) and is not checked.
    package func checkForClient() throws(Failure) {
        guard isDefault else { return }
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }  // no miniport: the connect says so
            throw .system(.fromErrno("lstat(\(path))"))
        }
        guard info.st_mode & mode_t(S_IFMT) == mode_t(S_IFDIR) else {
            throw .unsafe(path: path, reason: "it is a symbolic link or not a directory")
        }
        try Self.checkOwner(info, path: path, allowRoot: true)
    }

    static func checkOwner(_ info: stat, path: String, allowRoot: Bool) throws(Failure) {
        let me = geteuid()
        guard info.st_uid == me || (allowRoot && info.st_uid == 0) else {
            throw .unsafe(path: path, reason: "it belongs to uid \(info.st_uid), not to us (uid \(me))")
        }
    }

    /// Gives the control socket at `path` its `mode` and, if set, `group`, without following a link, after
    /// checking it is the socket we just bound (ours).
    package static func secureSocket(path: String, mode: mode_t, group: gid_t?) throws(Failure) {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw .system(.fromErrno("lstat(\(path))")) }
        guard info.st_mode & mode_t(S_IFMT) == mode_t(S_IFSOCK), info.st_uid == geteuid() else {
            throw .unsafe(path: path, reason: "not the socket this process bound")
        }
        if let group {
            guard lchown(path, uid_t.max, group) == 0 else { throw .system(.fromErrno("lchown(\(path))")) }
        }
        // chmod follows links; the lstat above saw a socket in a directory no one else can write.
        guard chmod(path, mode) == 0 else { throw .system(.fromErrno("chmod(\(path))")) }
    }

    /// The control socket of `adapter` in this directory.
    public func socketPath(adapter: String) -> String { "\(path)/\(adapter).sock" }
    package func lockPath(adapter: String) -> String { "\(path)/\(adapter).lock" }

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
package struct AdapterLock: ~Copyable {
    let descriptor: CInt
    package let path: String

    package enum Failure: Error, CustomStringConvertible {
        case held(path: String, byProcess: Int32?)
        /// The lock path is a link or someone else's file: refused, nothing written.
        case unsafe(path: String, reason: String)
        case system(SystemError)
        package var description: String {
            switch self {
            case .held(let path, let pid):
                "the adapter is already served by another miniport\(pid.map { " (pid \($0))" } ?? "") (lock \(path))"
            case .unsafe(let path, let reason): "refusing \(path): \(reason)"
            case .system(let error): error.description
            }
        }
    }

    /// Takes the lock without waiting and writes our pid into the file. The file is opened without following
    /// a link and must be a regular file of ours with one name: a planted link or hard link is refused, so the
    /// pid is never written through it.
    package init(path: String) throws(Failure) {
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            if errno == ELOOP { throw .unsafe(path: path, reason: "the lock file is a symbolic link") }
            throw .system(.fromErrno("open(\(path))"))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let error = SystemError.fromErrno("fstat(\(path))")
            close(fd)
            throw .system(error)
        }
        guard info.st_mode & mode_t(S_IFMT) == mode_t(S_IFREG), info.st_uid == geteuid(), info.st_nlink == 1 else {
            close(fd)
            throw .unsafe(path: path, reason: "the lock file is not a regular file of ours with one link")
        }
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
    package func removeFile() { unlink(path) }
}
