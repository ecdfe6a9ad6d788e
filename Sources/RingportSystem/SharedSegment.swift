import Glibc
package import RingportCore
package import SystemPackage
import _RingportShim

// Shared memory: the peer maps the same pages and may write any byte of them at any time, including the
// header. Everything here that reads the mapping validates first and keeps private copies (`header`).

/// A failure to create or open a segment: a system call, or a header that does not hold.
package enum SegmentFailure: Error, Hashable, Sendable, CustomStringConvertible {
    case system(SystemError)
    case layout(name: String, SegmentError)
    case badName(String)
    /// A descriptor passed as a binding segment lacks seals that keep its size fixed: the sender (or anyone
    /// holding it) could shrink it and turn the receiver's next access into SIGBUS. `seals` is what it has
    /// (`nil`: not a sealable file at all, e.g. a `shm_open` segment).
    case unsealed(name: String, seals: Int32?)

    package var description: String {
        switch self {
        case .system(let error): error.description
        case .layout(let name, let error): "segment \(name): \(error)"
        case .badName(let name): "bad segment name \"\(name)\" (needs /name, no other slash, at most 255 bytes)"
        case .unsealed(let name, let seals):
            "segment \(name) is not sealed against shrinking and growing ("
                + (seals.map { "seals 0x\(String($0, radix: 16)), needs 0x\(String(RP_SEALS_REQUIRED, radix: 16))" }
                    ?? "not a sealable memfd") + "): refused"
        }
    }
}

/// A shared-memory segment, mapped, with a validated Ringport header.
///
/// Binding segments are anonymous and sealed (`create(prefix:layout:)`): a `memfd` whose every page is
/// reserved at creation and whose size no one, the creator included, can change afterwards. So no peer can
/// shrink it under the other side (SIGBUS), and a full tmpfs or memory cgroup fails the creation, never a
/// later write. They have no name in /dev/shm; the only way in is the descriptor the creator passes.
///
/// Named POSIX segments (`createNamed`, `open(name:)`) remain for tools and tests that hand a name to a
/// child process; they cannot be sealed and `adopt` refuses them.
///
/// Non-copyable: one owner unmaps it. The side that created a named segment also unlinks its name when it
/// goes away (`deinit`), so no segment outlives its owner; the side that opened it only unmaps.
package struct SharedSegment: ~Copyable {
    /// For a named segment its `/name`; for an anonymous one `memfd:<prefix><token>` (diagnostics only).
    package let name: String
    package let header: SegmentHeader
    /// Whether this side created the segment (and so unlinks a named one).
    package let isOwner: Bool
    @usableFromInline let base: UnsafeMutableRawPointer
    package let size: Int
    /// The creator's memfd (anonymous segments), or -1 (named, or not the creator).
    let memfd: CInt

    /// Creates an anonymous, sealed segment for `layout` (`memfd_create`, labelled `<prefix><32 random hex
    /// digits>` for diagnostics), reserves every page (`fallocate`), seals it (`F_SEAL_SHRINK`, `F_SEAL_GROW`,
    /// `F_SEAL_SEAL`), maps it and writes the header. Reaches no file system: a full /dev/shm does not matter;
    /// memory the kernel cannot give (a memory cgroup's limit) is an error here.
    package static func create(prefix: String = "ringport-", layout: SegmentLayout) throws(SegmentFailure)
        -> SharedSegment
    {
        var random = SystemRandomNumberGenerator()
        let label = prefix + randomToken(&random)
        let name = "memfd:" + label
        let size = layout.totalSize
        let created = rp_memfd_create_sealable(label)
        guard created >= 0 else { throw .system(SystemError("memfd_create(\(label))", Errno(rawValue: -created))) }
        let fd = created
        func check(_ result: CInt, _ call: @autoclosure () -> String) throws(SegmentFailure) {
            guard result == 0 else {
                close(fd)
                throw .system(SystemError("\(call()) on \(name)", Errno(rawValue: result)))
            }
        }
        // The mode is the owner's alone (a memfd starts 0777; only /proc/<pid>/fd could reach it).
        try check(fchmod(fd, 0o600) == 0 ? 0 : Glibc.errno, "fchmod")
        try check(ftruncate(fd, off_t(size)) == 0 ? 0 : Glibc.errno, "ftruncate(\(size))")
        try check(rp_memfd_reserve(fd, Int64(size)), "fallocate(\(size))")
        try check(rp_memfd_add_seals(fd, RP_SEALS_REQUIRED), "fcntl(F_ADD_SEALS)")
        let base: UnsafeMutableRawPointer
        do { base = try map(fd: fd, size: size, name: name) } catch {
            close(fd)
            throw .system(error)
        }
        let buffer = UnsafeMutableRawBufferPointer(start: base, count: size)
        SegmentHeader.write(layout, segmentID: random.next(), into: buffer)
        do {
            let header = try SegmentHeader.validate(UnsafeRawBufferPointer(buffer))
            return SharedSegment(name: name, header: header, isOwner: true, base: base, size: size, memfd: fd)
        } catch {
            munmap(base, size)
            close(fd)
            throw .layout(name: name, error)
        }
    }

    /// Creates a named POSIX segment `/<prefix><32 random hex digits>` with `O_EXCL`, for a peer that opens it
    /// by name (tools, tests). Not sealed: binding segments use `create(prefix:layout:)`. The mode is applied
    /// exactly (umask does not narrow it).
    package static func createNamed(
        prefix: String = "ringport-",
        layout: SegmentLayout,
        mode: FilePermissions = [.ownerReadWrite]
    ) throws(SegmentFailure) -> SharedSegment {
        var random = SystemRandomNumberGenerator()
        let name = "/\(prefix)\(randomToken(&random))"
        return try create(name: name, layout: layout, segmentID: random.next(), mode: mode)
    }

    static func randomToken(_ random: inout SystemRandomNumberGenerator) -> String {
        (0..<2).map { _ in String(random.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
    }

    /// Creates the named segment `name` (see `createNamed(prefix:layout:mode:)`).
    package static func create(
        name: String,
        layout: SegmentLayout,
        segmentID: UInt64,
        mode: FilePermissions = [.ownerReadWrite]
    ) throws(SegmentFailure) -> SharedSegment {
        try checkName(name)
        let fd: CInt
        do {
            fd = try retryingOnInterrupt("shm_open(\(name), O_CREAT|O_EXCL)") {
                shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(mode.rawValue))
            }
        } catch { throw .system(error) }
        defer { close(fd) }
        do {
            _ = try retryingOnInterrupt("fchmod(\(name))") { fchmod(fd, mode_t(mode.rawValue)) }
            _ = try retryingOnInterrupt("ftruncate(\(name), \(layout.totalSize))") {
                ftruncate(fd, off_t(layout.totalSize))
            }
            let base = try map(fd: fd, size: layout.totalSize, name: name)
            let buffer = UnsafeMutableRawBufferPointer(start: base, count: layout.totalSize)
            SegmentHeader.write(layout, segmentID: segmentID, into: buffer)
            do {
                let header = try SegmentHeader.validate(UnsafeRawBufferPointer(buffer))
                return SharedSegment(
                    name: name,
                    header: header,
                    isOwner: true,
                    base: base,
                    size: layout.totalSize,
                    memfd: -1
                )
            } catch {
                munmap(base, layout.totalSize)
                throw SegmentFailure.layout(name: name, error)
            }
        } catch let error as SystemError {
            shm_unlink(name)
            throw .system(error)
        } catch let error as SegmentFailure {
            shm_unlink(name)
            throw error
        } catch {
            shm_unlink(name)
            fatalError("unexpected error \(error)")
        }
    }

    /// Opens and maps an existing named segment, and validates its header against the mapping's real size.
    /// (Tools and tests only: a named segment is not sealed.)
    package static func open(name: String) throws(SegmentFailure) -> SharedSegment {
        try checkName(name)
        let fd: CInt
        do {
            fd = try retryingOnInterrupt("shm_open(\(name))") { shm_open(name, O_RDWR | O_CLOEXEC, 0) }
        } catch { throw .system(error) }
        return try map(descriptor: fd, name: name, requiringSeals: false)
    }

    /// Maps a binding segment from a descriptor another process passed (`SCM_RIGHTS`), validates its header
    /// against the real size, and closes the descriptor. Refuses (`.unsealed`), before mapping anything, a
    /// descriptor that is not sealed against shrinking, growing and unsealing: the sender could otherwise
    /// truncate it under us. The result does not own the segment.
    package static func adopt(descriptor fd: CInt, name: String) throws(SegmentFailure) -> SharedSegment {
        try map(descriptor: fd, name: name, requiringSeals: true)
    }

    /// The seals on `fd` (`nil` if it cannot carry any: not a memfd created sealable).
    package static func seals(of fd: CInt) -> Int32? {
        let seals = rp_memfd_get_seals(fd)
        return seals >= 0 ? seals : nil
    }

    static func map(descriptor fd: CInt, name: String, requiringSeals: Bool) throws(SegmentFailure) -> SharedSegment {
        defer { close(fd) }
        if requiringSeals {
            // Checked before the size is read: with SHRINK and GROW on, the size below is the size for good.
            let seals = Self.seals(of: fd)
            guard let seals, seals & RP_SEALS_REQUIRED == RP_SEALS_REQUIRED else {
                throw .unsealed(name: name, seals: seals)
            }
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .system(.fromErrno("fstat(\(name))")) }
        let size = Int(info.st_size)
        guard size >= Int(RP_SEGMENT_HEADER_SIZE) else { throw .layout(name: name, .tooSmall(actual: size)) }
        let base: UnsafeMutableRawPointer
        do { base = try map(fd: fd, size: size, name: name) } catch { throw .system(error) }
        do {
            let header = try SegmentHeader.validate(UnsafeRawBufferPointer(start: base, count: size))
            return SharedSegment(name: name, header: header, isOwner: false, base: base, size: size, memfd: -1)
        } catch {
            munmap(base, size)
            throw .layout(name: name, error)
        }
    }

    /// A new descriptor for this segment's memory (to pass to a peer; the caller closes it), or an error.
    /// For an anonymous segment a duplicate of its memfd, seals and all.
    package func openDescriptor() throws(SystemError) -> CInt {
        if memfd >= 0 {
            return try retryingOnInterrupt("fcntl(F_DUPFD_CLOEXEC, \(name))") { fcntl(memfd, F_DUPFD_CLOEXEC, 0) }
        }
        return try retryingOnInterrupt("shm_open(\(name))") { shm_open(name, O_RDWR | O_CLOEXEC, 0) }
    }

    /// Removes a named segment's name now (the memory lives on while mapped): after a peer has its
    /// descriptor. An anonymous segment has no name: nothing to do.
    package func unlinkName() {
        if memfd < 0 && isOwner { shm_unlink(name) }
    }

    /// Removes a segment's name; mappings stay valid until unmapped. ENOENT is not an error.
    package static func unlink(name: String) throws(SystemError) {
        if shm_unlink(name) != 0 && Glibc.errno != ENOENT { throw .fromErrno("shm_unlink(\(name))") }
    }

    static func map(fd: CInt, size: Int, name: String) throws(SystemError) -> UnsafeMutableRawPointer {
        let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        // MAP_FAILED is a macro Swift does not import: it is (void *)-1.
        guard let address, address != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw .fromErrno("mmap(\(name), \(size))")
        }
        return address
    }

    static func checkName(_ name: String) throws(SegmentFailure) {
        guard name.hasPrefix("/"), name.utf8.count <= 255, name.utf8.count > 1,
            !name.dropFirst().contains("/")
        else { throw .badName(name) }
    }

    deinit {
        munmap(base, size)
        if memfd >= 0 {
            close(memfd)
        } else if isOwner {
            shm_unlink(name)
        }
    }

    /// The bytes of a region named in the (validated) header. Valid while the segment lives.
    package func bytes(of region: Region) -> UnsafeMutableRawBufferPointer {
        precondition(region.offset >= 0 && region.length >= 0 && region.offset + region.length <= size)
        return UnsafeMutableRawBufferPointer(start: base + region.offset, count: region.length)
    }

    /// The bytes of the region of `kind` for `queue`.
    package func bytes(of kind: RegionKind, queue: UInt16 = 0) throws(SegmentError) -> UnsafeMutableRawBufferPointer {
        bytes(of: try header.region(kind, queue: queue))
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
