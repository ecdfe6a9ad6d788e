import Foundation
import Glibc
import RingportCore
import SystemPackage
import TestSupport
import Testing

@testable import RingportSystem

@Suite struct SharedSegmentTests {
    static func layout() -> SegmentLayout {
        var layout = SegmentLayout()
        layout.add(.control, length: 128)
        layout.add(.packetRing, length: NetRing.regionSize(count: 8, stride: NetPacket.size))
        layout.add(.dataArea, length: 8192, alignment: 4096)
        return layout
    }

    /// Opens the segment's file directly (as a hostile peer would) and maps it.
    static func withRawMapping(_ name: String, _ body: (UnsafeMutableRawBufferPointer) -> Void) {
        let fd = shm_open(name, O_RDWR, 0)
        precondition(fd >= 0)
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        let base = mmap(nil, Int(info.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)!
        defer { munmap(base, Int(info.st_size)) }
        body(UnsafeMutableRawBufferPointer(start: base, count: Int(info.st_size)))
    }

    static func openFailure(_ name: String) -> SegmentFailure? {
        do {
            _ = try SharedSegment.open(name: name)
            return nil
        } catch {
            return error
        }
    }

    @Test func openSeesTheHeaderAndBytesTheCreatorWrote() throws {
        let owner = try SharedSegment.createNamed(prefix: "ringport-test-", layout: Self.layout())
        let peer = try SharedSegment.open(name: owner.name)
        let (peerHeader, peerSize, peerIsOwner) = (peer.header, peer.size, peer.isOwner)
        #expect(peerHeader == owner.header && peerSize == Self.layout().totalSize && !peerIsOwner)
        let a = try owner.bytes(of: .dataArea)
        let b = try peer.bytes(of: .dataArea)
        a.storeBytes(of: 0xDEAD_BEEF, toByteOffset: 100, as: UInt32.self)
        #expect(b.load(fromByteOffset: 100, as: UInt32.self) == 0xDEAD_BEEF)
        #expect(a.baseAddress != b.baseAddress)  // two mappings, one memory
        #expect(peerHeader.regions.map(\.kind) == [.control, .packetRing, .dataArea])
        #expect(throws: SegmentError.missingRegion(.fragmentRing, queue: 0)) { _ = try peer.bytes(of: .fragmentRing) }
    }

    @Test func namesAreUnguessable() throws {
        let a = try SharedSegment.createNamed(prefix: "ringport-test-", layout: Self.layout())
        let b = try SharedSegment.createNamed(prefix: "ringport-test-", layout: Self.layout())
        let (nameA, nameB, idA, idB) = (a.name, b.name, a.header.segmentID, b.header.segmentID)
        #expect(nameA != nameB && idA != idB)
        let token = a.name.dropFirst("/ringport-test-".count)
        #expect(token.count == 32 && token.allSatisfy(\.isHexDigit))
    }

    @Test func createIsExclusive() throws {
        let first = try SharedSegment.createNamed(prefix: "ringport-test-", layout: Self.layout())
        do {
            _ = try SharedSegment.create(name: first.name, layout: Self.layout(), segmentID: 1)
            Issue.record("a second create of \(first.name) succeeded")
        } catch {
            guard case .system(let system) = error else { throw error }
            #expect(system.errno == .fileExists && system.call.hasPrefix("shm_open"))
        }
        let again = try SharedSegment.open(name: first.name)
        let againIsOwner = again.isOwner
        #expect(!againIsOwner)  // the first one is intact
    }

    @Test func modeIsExactlyWhatWasAskedFor() throws {
        let privateOne = try SharedSegment.createNamed(prefix: "ringport-test-", layout: Self.layout())
        let groupOne = try SharedSegment.createNamed(
            prefix: "ringport-test-",
            layout: Self.layout(),
            mode: [.ownerReadWrite, .groupReadWrite]
        )
        let old = umask(0o077)
        defer { umask(old) }
        let masked = try SharedSegment.createNamed(
            prefix: "ringport-test-",
            layout: Self.layout(),
            mode: [.ownerReadWrite, .groupReadWrite]
        )
        func mode(_ name: String) throws -> mode_t {
            var info = stat()
            guard stat("/dev/shm" + name, &info) == 0 else { throw SystemError.fromErrno("stat") }
            return info.st_mode & 0o777
        }
        #expect(try mode(privateOne.name) == 0o600)
        #expect(try mode(groupOne.name) == 0o660)
        #expect(try mode(masked.name) == 0o660)
    }

    @Test func ownerUnlinksOnDeinitAndOpenerDoesNot() throws {
        var name = ""
        do {
            let owner = try SharedSegment.createNamed(prefix: "ringport-test-", layout: Self.layout())
            name = owner.name
            do {
                let peer = try SharedSegment.open(name: name)
                let peerIsOwner = peer.isOwner
                #expect(!peerIsOwner)
            }
            #expect(FileManager.default.fileExists(atPath: "/dev/shm" + name))
        }
        #expect(!FileManager.default.fileExists(atPath: "/dev/shm" + name))
        guard case .system(let error) = Self.openFailure(name) else { throw TestFailure("opened a removed segment") }
        #expect(error.errno == .noSuchFileOrDirectory && error.description.contains("shm_open(\(name))"))
    }

    @Test func badNamesAreRefused() {
        for name in ["noslash", "/a/b", "/", "/" + String(repeating: "x", count: 300)] {
            #expect(Self.openFailure(name) == .badName(name))
        }
    }

    @Test func corruptHeadersAreRefusedWithTheReason() throws {
        let owner = try SharedSegment.createNamed(prefix: "ringport-test-", layout: Self.layout())
        let name = owner.name
        let size = owner.size
        func corrupt(_ offset: Int, _ value: UInt64, expect: SegmentError) {
            var saved: UInt64 = 0
            Self.withRawMapping(name) { saved = $0.load(fromByteOffset: offset, as: UInt64.self) }
            Self.withRawMapping(name) { $0.storeBytes(of: value, toByteOffset: offset, as: UInt64.self) }
            #expect(Self.openFailure(name) == .layout(name: name, expect))
            Self.withRawMapping(name) { $0.storeBytes(of: saved, toByteOffset: offset, as: UInt64.self) }
        }
        corrupt(0, 0x1234, expect: .badMagic(0x1234))
        corrupt(8, 2 | UInt64(4096) << 32, expect: .badVersion(2))
        corrupt(16, UInt64(size) * 2, expect: .sizeMismatch(header: UInt64(size) * 2, actual: size))
        corrupt(32, 33, expect: .badRegionCount(33))
        // Region table: entry 1 at 128 + 32; its offset at +16, length at +24.
        corrupt(128 + 32 + 16, 128, expect: .badRegion(index: 1, reason: "offset 128 overlaps"))
        corrupt(128 + 32 + 16, 4100, expect: .badRegion(index: 1, reason: "offset 4100 unaligned"))
        corrupt(
            128 + 64 + 24,
            UInt64(size),
            expect: .badRegion(index: 2, reason: "[8192, +\(size)) exceeds the segment's \(size) bytes")
        )
        corrupt(
            128 + 64 + 24, UInt64.max,
            expect: .badRegion(index: 2, reason: "[8192, +\(UInt64.max)) exceeds the segment's \(size) bytes"))
        let reopened = try SharedSegment.open(name: name).header
        #expect(reopened == owner.header)
    }

    @Test func aSegmentTruncatedBelowItsHeaderIsRefused() throws {
        let owner = try SharedSegment.createNamed(prefix: "ringport-test-", layout: Self.layout())
        let fd = shm_open(owner.name, O_RDWR, 0)
        ftruncate(fd, 100)
        close(fd)
        #expect(Self.openFailure(owner.name) == .layout(name: owner.name, .tooSmall(actual: 100)))
    }

    @Test(.enabled(if: getuid() == 0 && getpwnam("ringport-test") != nil, "needs root and the user ringport-test"))
    func anotherUserCannotOpenAPrivateSegment() throws {
        let owner = try SharedSegment.createNamed(prefix: "ringport-test-", layout: Self.layout())
        let asOther = try SpawnedProcess(
            "ringport-peer",
            ["probe", "--segment", owner.name],
            prefix: ["/usr/sbin/runuser", "-u", "ringport-test", "--"]
        )
        #expect(asOther.wait(seconds: 30) == 1)
        #expect(asOther.standardOutput.contains("Permission denied"), "\(asOther.standardOutput)")
        let asOwner = try SpawnedProcess("ringport-peer", ["probe", "--segment", owner.name])
        #expect(asOwner.wait(seconds: 30) == 0)
        #expect(asOwner.standardOutput.hasPrefix("ok \(owner.size)"))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
