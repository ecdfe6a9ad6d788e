import Foundation
import Glibc
import RingportCore
import TestSupport
import Testing

@testable import RingportSystem

/// A fresh path under /tmp, removed (whatever it became) when done.
final class ScratchPath {
    let path = "/tmp/ringport-test-dir-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
    deinit { _ = shell("rm -rf '\(path)'") }
}

func fileMode(_ path: String) -> (mode: mode_t, uid: uid_t, gid: gid_t)? {
    var info = stat()
    guard lstat(path, &info) == 0 else { return nil }
    return (info.st_mode & 0o7777, info.st_uid, info.st_gid)
}

/// In-process: what the miniport's side accepts as its runtime directory and lock.
@Suite struct RuntimeDirectoryTests {
    @Test func theDirectoryAdmitsExactlyTheClassesTheSocketAdmits() {
        #expect(RuntimeDirectory.mode(forSocketMode: 0o600) == 0o700)
        #expect(RuntimeDirectory.mode(forSocketMode: 0o660) == 0o710)
        #expect(RuntimeDirectory.mode(forSocketMode: 0o666) == 0o711)
        #expect(RuntimeDirectory.mode(forSocketMode: 0o606) == 0o701)
    }

    @Test func aDefaultDirectoryIsCreated0700EvenUnderAPermissiveUmask() throws {
        let scratch = ScratchPath()
        let old = umask(0)
        defer { umask(old) }
        try RuntimeDirectory(path: scratch.path, isDefault: true).create()
        #expect(fileMode(scratch.path)?.mode == 0o700)
    }

    @Test func aDefaultDirectoryOfAnotherOwnerIsRefused() throws {
        let scratch = ScratchPath()
        #expect(mkdir(scratch.path, 0o700) == 0)
        #expect(chown(scratch.path, 12345, 12345) == 0)
        let error = #expect(throws: RuntimeDirectory.Failure.self) {
            try RuntimeDirectory(path: scratch.path, isDefault: true).create()
        }
        #expect(
            error?.description
                == "refusing \(scratch.path): it belongs to uid 12345, not to us (uid \(geteuid()))",
            "\(String(describing: error))")
        // An explicit directory may be root's but not another user's either.
        #expect(throws: RuntimeDirectory.Failure.self) {
            try RuntimeDirectory(path: scratch.path, isDefault: false).create()
        }
    }

    @Test func aDefaultDirectoryOthersCouldWriteInIsRefusedAndAnyOtherModeIsSetToItsOwn() throws {
        let scratch = ScratchPath()
        #expect(mkdir(scratch.path, 0o700) == 0)
        #expect(chmod(scratch.path, 0o777) == 0)
        let error = #expect(throws: RuntimeDirectory.Failure.self) {
            try RuntimeDirectory(path: scratch.path, isDefault: true).create()
        }
        #expect(
            error?.description.contains("its mode is 777, writable by others") == true, "\(String(describing: error))")
        #expect(chmod(scratch.path, 0o730) == 0)  // group-writable: refused too
        #expect(throws: RuntimeDirectory.Failure.self) {
            try RuntimeDirectory(path: scratch.path, isDefault: true).create()
        }
        #expect(chmod(scratch.path, 0o700) == 0)
        try RuntimeDirectory(path: scratch.path, isDefault: true).create(socketMode: 0o666)
        #expect(fileMode(scratch.path)?.mode == 0o711)
        // The same directory for a private socket again: others could only search it, so it is narrowed.
        try RuntimeDirectory(path: scratch.path, isDefault: true).create()
        #expect(fileMode(scratch.path)?.mode == 0o700)
        // As an older version left /run/ringport (0755, ours): narrowed, not refused.
        #expect(chmod(scratch.path, 0o755) == 0)
        try RuntimeDirectory(path: scratch.path, isDefault: true).create()
        #expect(fileMode(scratch.path)?.mode == 0o700)
    }

    @Test func aSymlinkedDirectoryIsRefusedDefaultOrExplicit() throws {
        let target = ScratchPath()
        let link = ScratchPath()
        #expect(mkdir(target.path, 0o700) == 0)
        #expect(symlink(target.path, link.path) == 0)
        for isDefault in [true, false] {
            let error = #expect(throws: RuntimeDirectory.Failure.self) {
                try RuntimeDirectory(path: link.path, isDefault: isDefault).create()
            }
            #expect(error?.description.contains("symbolic link") == true, "\(String(describing: error))")
        }
        #expect(throws: RuntimeDirectory.Failure.self) {
            try RuntimeDirectory(path: link.path, isDefault: true).checkForClient()
        }
    }

    @Test func aGroupGetsSearchOnTheDirectory() throws {
        let scratch = ScratchPath()
        let group = getgid() == 0 ? gid_t(12345) : getgid()
        try RuntimeDirectory(path: scratch.path, isDefault: true).create(group: group)
        let created = fileMode(scratch.path)
        #expect(created?.mode == 0o710 && created?.gid == group)
    }

    @Test func theClientRefusesADefaultDirectoryOfAnotherUserButNotRoots() throws {
        let scratch = ScratchPath()
        #expect(mkdir(scratch.path, 0o755) == 0)
        #expect(chown(scratch.path, 12345, 12345) == 0)
        #expect(throws: RuntimeDirectory.Failure.self) {
            try RuntimeDirectory(path: scratch.path, isDefault: true).checkForClient()
        }
        try RuntimeDirectory(path: scratch.path, isDefault: false).checkForClient()  // explicit: the caller's choice
        #expect(chown(scratch.path, 0, 0) == 0)
        try RuntimeDirectory(path: scratch.path, isDefault: true).checkForClient()
    }

    @Test func aSymlinkedLockFileIsNotFollowed() throws {
        let scratch = ScratchPath()
        let target = ScratchPath()
        #expect(mkdir(scratch.path, 0o700) == 0)
        #expect(symlink(target.path, scratch.path + "/a.lock") == 0)
        let error = #expect(throws: AdapterLock.Failure.self) {
            _ = try AdapterLock(path: scratch.path + "/a.lock")
        }
        #expect(
            error?.description == "refusing \(scratch.path)/a.lock: the lock file is a symbolic link",
            "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: target.path))  // nothing created through the link
    }

    @Test func aHardLinkedLockFileIsRefusedAndNotWritten() throws {
        let scratch = ScratchPath()
        let target = ScratchPath()
        #expect(mkdir(scratch.path, 0o700) == 0)
        try "precious\n".write(toFile: target.path, atomically: false, encoding: .utf8)
        #expect(link(target.path, scratch.path + "/a.lock") == 0)
        #expect(throws: AdapterLock.Failure.self) { _ = try AdapterLock(path: scratch.path + "/a.lock") }
        #expect(try String(contentsOfFile: target.path, encoding: .utf8) == "precious\n")
    }
}

/// Two unprivileged users (ringport-test, ringport-test2, both in the group ringport-bind: a miniport can
/// give its socket only to a group its user is in) and nobody, each running the real executables. The users are system users made once (here, or by .ci/run).
enum Users {
    static let victim = "ringport-test"
    static let other = "ringport-test2"
    static let group = "ringport-bind"

    /// Idempotent: makes the group and the second user if missing.
    static let ready: Bool = {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser") else { return false }
        let made = shell(
            """
            getent group \(group) >/dev/null || groupadd --system \(group) || exit 1
            id \(victim) >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin \(victim) || exit 1
            id \(other) >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin \(other) || exit 1
            id -nG \(other) | grep -qw \(group) || usermod -aG \(group) \(other) || exit 1
            id -nG \(victim) | grep -qw \(group) || usermod -aG \(group) \(victim)
            """)
        return made == 0 && getpwnam("nobody") != nil
    }()

    static func uid(_ name: String) -> uid_t { getpwnam(name)!.pointee.pw_uid }

    /// Runs a product of this package as `user`, with the default runtime directory (no RINGPORT_DIR, no
    /// XDG_RUNTIME_DIR), with the user's groups. env and setpriv exec (runuser would fork): the process
    /// the test stops is the product itself.
    static func run(_ user: String, _ executable: String, _ arguments: [String]) throws -> SpawnedProcess {
        let account = getpwnam(user)!.pointee
        return try SpawnedProcess(
            executable,
            arguments,
            prefix: [
                "/usr/bin/env", "-u", "RINGPORT_DIR", "-u", "XDG_RUNTIME_DIR", "/usr/bin/setpriv",
                "--reuid=\(account.pw_uid)", "--regid=\(account.pw_gid)", "--init-groups", "--",
            ]
        )
    }

    /// Waits (bounded) for a ringportd's banner.
    static func waitUntilUp(_ process: SpawnedProcess) throws {
        let deadline = Date().addingTimeInterval(20)
        while !process.standardOutput.contains("is up") {
            guard process.process.isRunning, Date() < deadline else {
                process.stop()
                throw SupportFailure("ringportd did not come up: \(process.standardError)")
            }
            usleep(5000)
        }
    }
}

@Suite(.serialized, .enabled(if: Users.ready, "needs root, runuser, useradd/groupadd"))
struct RuntimeDirectoryUserTests {
    static func adapterName() -> String { "t\(String(UInt32.random(in: 0...UInt32.max), radix: 16))" }

    /// Another user makes the victim's default directory first and serves a fake miniport in it: the
    /// victim's ringportd refuses to start there and the victim's clients refuse to talk to it.
    @Test func aDefaultDirectoryPlantedByAnotherUserIsRefusedByMiniportAndClient() throws {
        let victimDirectory = "/tmp/ringport-\(Users.uid(Users.victim))"
        _ = shell("rm -rf '\(victimDirectory)'")
        defer { _ = shell("rm -rf '\(victimDirectory)'") }
        let adapter = Self.adapterName()
        // The attacker's fake miniport, world-reachable, in the victim's default directory.
        #expect(shell("runuser -u \(Users.other) -- mkdir -m 777 '\(victimDirectory)'") == 0)
        let fake = try Users.run(
            Users.other, "ringportd", ["--adapter", adapter, "--dir", victimDirectory, "--socket-mode", "666"])
        defer { fake.stop() }
        try Users.waitUntilUp(fake)

        let miniport = try Users.run(Users.victim, "ringportd", ["--adapter", adapter])
        #expect(miniport.wait(seconds: 20) == 1)
        let other = Users.uid(Users.other)
        #expect(
            miniport.standardError.contains("refusing \(victimDirectory): it belongs to uid \(other)"),
            "\(miniport.standardError)")

        let send = try Users.run(Users.victim, "ringport", ["send", "--count", "1", "--adapter", adapter])
        #expect(send.wait(seconds: 20) != 0)
        #expect(send.standardError.contains("refusing \(victimDirectory)"), "\(send.standardError)")
        let stat = try Users.run(Users.victim, "ringport", ["stat", "--adapter", adapter])
        #expect(stat.wait(seconds: 20) != 0)
        #expect(stat.standardError.contains("refusing \(victimDirectory)"), "\(stat.standardError)")
        #expect(fake.process.isRunning)  // it was there to be talked to
    }

    /// The lock file planted as a symlink (in a directory the attacker could write) is not followed: the pid
    /// is never written through it and the miniport does not start.
    @Test func aMiniportDoesNotFollowASymlinkedLockFile() throws {
        let scratch = ScratchPath()
        let target = ScratchPath()
        let adapter = Self.adapterName()
        #expect(mkdir(scratch.path, 0o700) == 0)
        try "precious\n".write(toFile: target.path, atomically: false, encoding: .utf8)
        #expect(symlink(target.path, "\(scratch.path)/\(adapter).lock") == 0)
        let miniport = try SpawnedProcess("ringportd", ["--adapter", adapter, "--dir", scratch.path])
        #expect(miniport.wait(seconds: 20) == 1)
        #expect(miniport.standardError.contains("the lock file is a symbolic link"), "\(miniport.standardError)")
        #expect(try String(contentsOfFile: target.path, encoding: .utf8) == "precious\n")
    }

    /// `--group`: a member binds, a non-member is refused; nobody else can reach the segments, which have no
    /// name in /dev/shm and whose descriptors only the miniport's own user may open through /proc.
    @Test func aGroupMemberBindsAndANonMemberIsDenied() throws {
        let directory = "/tmp/ringport-\(Users.uid(Users.victim))"
        _ = shell("rm -rf '\(directory)'")
        defer { _ = shell("rm -rf '\(directory)'") }
        let adapter = Self.adapterName()
        let miniport = try Users.run(Users.victim, "ringportd", ["--adapter", adapter, "--group", Users.group])
        defer { miniport.stop() }
        try Users.waitUntilUp(miniport)
        let gid = getgrnam(Users.group)!.pointee.gr_gid
        let directoryMode = fileMode(directory)
        let socketMode = fileMode("\(directory)/\(adapter).sock")
        #expect(
            directoryMode?.mode == 0o710 && directoryMode?.gid == gid && directoryMode?.uid == Users.uid(Users.victim))
        #expect(socketMode?.mode == 0o660 && socketMode?.gid == gid)

        let where_ = ["--adapter", adapter, "--dir", directory]
        let member = try Users.run(Users.other, "ringport", ["send", "--count", "1"] + where_)
        #expect(member.wait(seconds: 20) == 0, "\(member.standardError)")
        let outsider = try Users.run("nobody", "ringport", ["send", "--count", "1"] + where_)
        #expect(outsider.wait(seconds: 20) != 0)
        #expect(outsider.standardError.contains("Permission denied"), "\(outsider.standardError)")

        // A binding held open by the member: nothing of it in /dev/shm, and its memory is out of reach.
        let holder = try Users.run(Users.other, "ringport", ["recv", "--duration", "10"] + where_)
        defer { holder.stop() }
        let socket = "\(directory)/\(adapter).sock"
        let deadline = Date().addingTimeInterval(10)
        var bindings: UInt64 = 0
        while bindings == 0 && Date() < deadline {
            bindings = (try? Self.statistics(socket).bindings) ?? 0
            usleep(10_000)
        }
        #expect(bindings == 1)
        #expect(sharedMemoryNames(withPrefix: "ringport=\(adapter)=").isEmpty)
        let pid = miniport.process.processIdentifier
        for user in [Users.other, "nobody"] {
            #expect(shell("runuser -u \(user) -- sh -c 'cat /proc/\(pid)/fd/* >/dev/null'") != 0, "\(user)")
            #expect(shell("runuser -u \(user) -- sh -c 'ls /proc/\(pid)/fd'") != 0, "\(user)")
        }
    }

    static func statistics(_ path: String) throws -> AdapterStatistics {
        let socket = try ControlSocket.connect(path: path)
        try socket.send(.queryStatistics)
        guard socket.isReadable(waitingMilliseconds: 5000), case .message(.statistics(let s), _) = try socket.receive()
        else { throw SupportFailure("no statistics") }
        return s
    }
}
