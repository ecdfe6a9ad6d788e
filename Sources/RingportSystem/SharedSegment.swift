import CRingportShim
import Glibc
public import RingportCore
public import SystemPackage

// Shared memory: the peer maps the same pages and may write any byte of them at any time, including the
// header. Everything here that reads the mapping validates first and keeps private copies (`header`).

/// A failure to create or open a segment: a system call, or a header that does not hold.
public enum SegmentFailure: Error, Hashable, Sendable, CustomStringConvertible {
    case system(SystemError)
    case layout(name: String, SegmentError)
    case badName(String)

    public var description: String {
        switch self {
        case .system(let error): error.description
        case .layout(let name, let error): "segment \(name): \(error)"
        case .badName(let name): "bad segment name \"\(name)\" (needs /name, no other slash, at most 255 bytes)"
        }
    }
}

/// A POSIX shared-memory segment, mapped, with a validated Ringport header.
///
/// Non-copyable: one owner unmaps it. The side that created it also unlinks its name when it goes away
/// (`deinit`), so no segment outlives its owner; the side that opened it only unmaps.
public struct SharedSegment: ~Copyable {
    public let name: String
    public let header: SegmentHeader
    /// Whether this side created the segment (and so unlinks it).
    public let isOwner: Bool
    @usableFromInline let base: UnsafeMutableRawPointer
    public let size: Int

    /// Creates a segment named `/<prefix><32 random hex digits>` with `O_EXCL`, sizes it for `layout`,
    /// maps it, zeroes it and writes the header. The mode is applied exactly (umask does not narrow it).
    public static func create(
        prefix: String = "ringport-",
        layout: SegmentLayout,
        mode: FilePermissions = [.ownerReadWrite]
    ) throws(SegmentFailure) -> SharedSegment {
        var random = SystemRandomNumberGenerator()
        let token = (0..<2).map { _ in String(random.next() as UInt64, radix: 16).leftPadded(to: 16) }.joined()
        let name = "/\(prefix)\(token)"
        return try create(name: name, layout: layout, segmentID: random.next(), mode: mode)
    }

    /// Creates the segment `name` (see `create(prefix:layout:mode:)`).
    public static func create(
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
                return SharedSegment(name: name, header: header, isOwner: true, base: base, size: layout.totalSize)
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

    /// Opens and maps an existing segment, and validates its header against the mapping's real size.
    public static func open(name: String) throws(SegmentFailure) -> SharedSegment {
        try checkName(name)
        let fd: CInt
        do {
            fd = try retryingOnInterrupt("shm_open(\(name))") { shm_open(name, O_RDWR | O_CLOEXEC, 0) }
        } catch { throw .system(error) }
        return try adopt(descriptor: fd, name: name)
    }

    /// Maps a segment from a descriptor another process passed (`SCM_RIGHTS`), validates its header against
    /// the real size, and closes the descriptor. The result does not own (unlink) the name.
    public static func adopt(descriptor fd: CInt, name: String) throws(SegmentFailure) -> SharedSegment {
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .system(.fromErrno("fstat(\(name))")) }
        let size = Int(info.st_size)
        guard size >= Int(RP_SEGMENT_HEADER_SIZE) else { throw .layout(name: name, .tooSmall(actual: size)) }
        let base: UnsafeMutableRawPointer
        do { base = try map(fd: fd, size: size, name: name) } catch { throw .system(error) }
        do {
            let header = try SegmentHeader.validate(UnsafeRawBufferPointer(start: base, count: size))
            return SharedSegment(name: name, header: header, isOwner: false, base: base, size: size)
        } catch {
            munmap(base, size)
            throw .layout(name: name, error)
        }
    }

    /// A new descriptor for this segment's memory (to pass to a peer), or an error.
    public func openDescriptor() throws(SystemError) -> CInt {
        try retryingOnInterrupt("shm_open(\(name))") { shm_open(name, O_RDWR | O_CLOEXEC, 0) }
    }

    /// Removes this segment's name now (the memory lives on while mapped): after a peer has its descriptor.
    public func unlinkName() {
        shm_unlink(name)
    }

    /// Removes a segment's name; mappings stay valid until unmapped. ENOENT is not an error.
    public static func unlink(name: String) throws(SystemError) {
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
        if isOwner { shm_unlink(name) }
    }

    /// The bytes of a region named in the (validated) header. Valid while the segment lives.
    public func bytes(of region: Region) -> UnsafeMutableRawBufferPointer {
        precondition(region.offset >= 0 && region.length >= 0 && region.offset + region.length <= size)
        return UnsafeMutableRawBufferPointer(start: base + region.offset, count: region.length)
    }

    /// The bytes of the region of `kind` for `queue`.
    public func bytes(of kind: RegionKind, queue: UInt16 = 0) throws(SegmentError) -> UnsafeMutableRawBufferPointer {
        bytes(of: try header.region(kind, queue: queue))
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
