import Foundation
import Glibc
import RingportCore
import SystemPackage
import TestSupport
import Testing
import _RingportShim

@testable import RingportSystem

/// Binding segments: anonymous, every page reserved, sealed against any change of size.
@Suite struct SealedSegmentTests {
    static let layout = SharedSegmentTests.layout()

    /// A sealable memfd holding a valid header, with only `seals` added (what a hostile miniport could send).
    static func memfd(sealedWith seals: Int32) throws -> CInt {
        let fd = rp_memfd_create_sealable("ringport-test-unsealed")
        guard fd >= 0 else { throw SystemError("memfd_create", Errno(rawValue: -fd)) }
        let size = layout.totalSize
        guard ftruncate(fd, off_t(size)) == 0 else { throw SystemError.fromErrno("ftruncate") }
        let base = try SharedSegment.map(fd: fd, size: size, name: "test")
        SegmentHeader.write(layout, segmentID: 7, into: UnsafeMutableRawBufferPointer(start: base, count: size))
        munmap(base, size)
        if seals != 0 { guard rp_memfd_add_seals(fd, seals) == 0 else { throw SystemError.fromErrno("seal") } }
        return fd
    }

    static func adoptFailure(_ fd: CInt) -> SegmentFailure? {
        do {
            _ = try SharedSegment.adopt(descriptor: fd, name: "passed")
            return nil
        } catch { return error }
    }

    @Test func aCreatedSegmentCannotBeTruncatedGrownOrUnsealed() throws {
        let segment = try SharedSegment.create(prefix: "ringport-test-", layout: Self.layout)
        let fd = try segment.openDescriptor()
        defer { close(fd) }
        #expect(SharedSegment.seals(of: fd) == RP_SEALS_REQUIRED)
        #expect(ftruncate(fd, 100) == -1 && errno == EPERM)
        #expect(ftruncate(fd, 0) == -1 && errno == EPERM)
        #expect(ftruncate(fd, off_t(segment.size * 2)) == -1 && errno == EPERM)
        #expect(rp_memfd_add_seals(fd, 0x0008) == EPERM)  // F_SEAL_WRITE: no seal can be added any more
        var info = stat()
        #expect(fstat(fd, &info) == 0 && Int(info.st_size) == segment.size)
        // Still readable and writable through the mapping, and the header still holds.
        let data = try segment.bytes(of: .dataArea)
        data.storeBytes(of: 0xFEED, toByteOffset: data.count - 8, as: UInt64.self)
        #expect(data.load(fromByteOffset: data.count - 8, as: UInt64.self) == 0xFEED)
    }

    @Test func everyPageIsReservedAtCreation() throws {
        let segment = try SharedSegment.create(prefix: "ringport-test-", layout: Self.layout)
        let fd = try segment.openDescriptor()
        defer { close(fd) }
        var info = stat()
        #expect(fstat(fd, &info) == 0)
        // st_blocks counts 512-byte blocks the file really holds: all of it, before anyone touched the pages.
        #expect(Int(info.st_blocks) * 512 >= segment.size, "\(info.st_blocks) blocks for \(segment.size) bytes")
    }

    @Test func aBindingSegmentLeavesNothingInDevShm() throws {
        let before = sharedMemoryNames(withPrefix: "ringport-test-memfd-")
        let segment = try SharedSegment.create(prefix: "ringport-test-memfd-", layout: Self.layout)
        #expect(segment.name.hasPrefix("memfd:ringport-test-memfd-"))
        #expect(sharedMemoryNames(withPrefix: "ringport-test-memfd-") == before)
        segment.unlinkName()  // nothing to remove: harmless
    }

    @Test func aPassedSealedDescriptorIsAdoptedAndSharesTheMemory() throws {
        let owner = try SharedSegment.create(prefix: "ringport-test-", layout: Self.layout)
        let peer = try SharedSegment.adopt(descriptor: try owner.openDescriptor(), name: "peer")
        let (peerHeader, peerSize) = (peer.header, peer.size)
        #expect(peerHeader == owner.header && peerSize == owner.size)
        try owner.bytes(of: .dataArea).storeBytes(of: 0xABCD, toByteOffset: 64, as: UInt32.self)
        #expect(try peer.bytes(of: .dataArea).load(fromByteOffset: 64, as: UInt32.self) == 0xABCD)
    }

    @Test func adoptRefusesASegmentThatIsNotSealedAgainstResizing() throws {
        #expect(Self.adoptFailure(try Self.memfd(sealedWith: 0)) == .unsealed(name: "passed", seals: 0))
        #expect(
            Self.adoptFailure(try Self.memfd(sealedWith: RP_SEAL_SHRINK | RP_SEAL_GROW))
                == .unsealed(name: "passed", seals: RP_SEAL_SHRINK | RP_SEAL_GROW)
        )
        #expect(
            Self.adoptFailure(try Self.memfd(sealedWith: RP_SEAL_GROW | RP_SEAL_SEAL))
                == .unsealed(name: "passed", seals: RP_SEAL_GROW | RP_SEAL_SEAL)
        )
        // A named POSIX segment is born with only F_SEAL_SEAL: it can never get the others.
        let named = try SharedSegment.createNamed(prefix: "ringport-test-", layout: Self.layout)
        let fd = shm_open(named.name, O_RDWR, 0)
        #expect(fd >= 0)
        let failure = Self.adoptFailure(fd)
        #expect(failure == .unsealed(name: "passed", seals: RP_SEAL_SEAL))
        #expect(failure?.description.contains("not sealed") == true)
        // A file that cannot carry seals at all.
        let file = Glibc.open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        #expect(Self.adoptFailure(file) == .unsealed(name: "passed", seals: nil))
        // With every seal it is taken.
        #expect(Self.adoptFailure(try Self.memfd(sealedWith: RP_SEALS_REQUIRED)) == nil)
    }

    /// Hole punching is not stopped by the SHRINK seal; on shmem a punched page faults back in as a fresh zero
    /// page, so it loses bytes but never raises SIGBUS.
    @Test func aPunchedHoleReadsAsZeroesWithoutASignal() throws {
        let segment = try SharedSegment.create(prefix: "ringport-test-", layout: Self.layout)
        let data = try segment.bytes(of: .dataArea)
        data.storeBytes(of: 0x1234, toByteOffset: 0, as: UInt64.self)
        let fd = try segment.openDescriptor()
        defer { close(fd) }
        let offset = try segment.header.region(.dataArea).offset
        #expect(rp_memfd_punch_hole(fd, Int64(offset), Int64(data.count)) == 0)
        #expect(data.load(fromByteOffset: 0, as: UInt64.self) == 0)
        data.storeBytes(of: 0x5678, toByteOffset: 0, as: UInt64.self)
        #expect(data.load(fromByteOffset: 0, as: UInt64.self) == 0x5678)
    }
}
