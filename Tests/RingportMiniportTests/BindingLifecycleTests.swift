import Foundation
import Glibc
import Ringport
import RingportCore
import RingportSystem
import TestSupport
import Testing

/// Bindings opened, closed, and lost: protocol death, miniport death, shutdown, a second miniport, restart.
@Suite struct BindingLifecycleTests {
    /// Sends `count` one-buffer packets; returns how many were sent.
    static func send(_ adapter: Adapter, count: Int) throws { try sendSequence(adapter, count: count) }

    /// Collects completions for up to `seconds`; returns their statuses.
    static func collect(_ adapter: Adapter, count: Int, seconds: Double) -> [NDISStatus] {
        var statuses: [NDISStatus] = []
        let deadline = Date().addingTimeInterval(seconds)
        while statuses.count < count && Date() < deadline {
            adapter.waitForCompletions(timeoutSeconds: 0.05) { _, status in statuses.append(status) }
        }
        return statuses
    }

    @Test func killingAProtocolFreesItsBindingAtOnce() throws {
        let miniport = try MiniportProcess(driver: "random-order", arguments: ["--delay-us", "30000000"])
        let client = try miniport.protocolProcess(["stress", "--packets", "1000", "--hold-after", "200"])
        defer { client.stop() }
        let deadline = Date().addingTimeInterval(30)
        while !client.standardOutput.contains("holding") && Date() < deadline { usleep(10_000) }
        let held = try miniport.waitForStatistics { $0.packetsOutstanding == 200 }
        #expect(held.bindings == 1 && held.packetsOutstanding == 200)
        kill(client.process.processIdentifier, SIGKILL)
        let start = Date()
        let after = try miniport.waitForStatistics(seconds: 5) { $0.bindings == 0 }
        #expect(after.bindings == 0 && after.bindingsReclaimed == 1 && after.packetsOutstanding == 0)
        #expect(Date().timeIntervalSince(start) < 1)
        #expect(sharedMemoryNames(withPrefix: "ringport=\(miniport.adapter)=").isEmpty)
    }

    @Test func killingTheMiniportCompletesEverySendWithClosingWithinASecond() throws {
        let miniport = try MiniportProcess(driver: "random-order", arguments: ["--delay-us", "30000000"])
        let adapter = try Adapter.open(miniport.adapter, directory: miniport.directory)
        try Self.send(adapter, count: 50)
        _ = try miniport.waitForStatistics { $0.packetsOutstanding == 50 }
        miniport.kill9()
        let start = Date()
        let statuses = Self.collect(adapter, count: 50, seconds: 5)
        #expect(Date().timeIntervalSince(start) < 1)
        #expect(statuses.count == 50 && statuses.allSatisfy { $0 == .closing })
        guard case .closed = adapter.state else {
            Issue.record("binding still \(adapter.state)")
            return
        }
        #expect(adapter.outstandingSends == 0 && adapter.packetPoolUsage == 0)
        // Sends after that complete with CLOSING too, each exactly once.
        try Self.send(adapter, count: 3)
        #expect(Self.collect(adapter, count: 3, seconds: 1) == [.closing, .closing, .closing])
    }

    @Test func sigtermCompletesOutstandingSendsWithClosingAndCleansUp() throws {
        let miniport = try MiniportProcess(driver: "random-order", arguments: ["--delay-us", "30000000"])
        let adapter = try Adapter.open(miniport.adapter, directory: miniport.directory)
        try Self.send(adapter, count: 40)
        _ = try miniport.waitForStatistics { $0.packetsOutstanding == 40 }
        kill(miniport.process.process.processIdentifier, SIGTERM)
        let statuses = Self.collect(adapter, count: 40, seconds: 5)
        #expect(statuses.count == 40 && statuses.allSatisfy { $0 == .closing })
        #expect(miniport.process.wait(seconds: 10) == 0)
        let left = (try? FileManager.default.contentsOfDirectory(atPath: miniport.directory.path)) ?? []
        #expect(left.isEmpty, "left in the runtime directory: \(left)")
    }

    @Test func closeWaitsForEveryOutstandingSend() throws {
        let miniport = try MiniportProcess(driver: "random-order", arguments: ["--delay-us", "200000"])
        let adapter = try Adapter.open(miniport.adapter, directory: miniport.directory)
        try Self.send(adapter, count: 100)
        var statuses: [NDISStatus] = []
        try adapter.close(timeoutSeconds: 10) { _, status in statuses.append(status) }
        #expect(statuses.count == 100 && statuses.allSatisfy { $0 == .success || $0 == .failure })
        #expect(adapter.outstandingSends == 0 && adapter.packetPoolUsage == 0)
        try Self.send(adapter, count: 1)
        #expect(Self.collect(adapter, count: 1, seconds: 1) == [.closing])
        let after = try miniport.waitForStatistics { $0.bindings == 0 }
        #expect(after.bindings == 0 && after.bindingsReclaimed == 0)
    }

    @Test func closeSendsWhatWaitedForRoomInTheRingFirst() throws {
        let miniport = try MiniportProcess(driver: "random-order", arguments: ["--delay-us", "2000"])
        let adapter = try Adapter.open(
            miniport.adapter,
            configuration: BindingConfiguration(transmitRingSize: 16),
            directory: miniport.directory
        )
        try Self.send(adapter, count: 200)  // far more than a 16-element ring holds
        var statuses: [NDISStatus] = []
        try adapter.close(timeoutSeconds: 20) { _, status in statuses.append(status) }
        #expect(statuses.count == 200 && !statuses.contains(.closing))
    }

    @Test func aSecondMiniportForTheAdapterIsRefused() throws {
        let first = try MiniportProcess()
        let second = try SpawnedProcess(
            "ringportd",
            ["--adapter", first.adapter, "--dir", first.directory.path]
        )
        #expect(second.wait(seconds: 20) == 1)
        #expect(second.standardError.contains("already served by another miniport"), "\(second.standardError)")
        #expect(try first.statistics().bindings == 0)  // the first one still serves
    }

    @Test func aMiniportStartedAfterAKillRemovesWhatItsPredecessorLeft() throws {
        let miniport = try MiniportProcess()
        miniport.kill9()
        let socket = miniport.directory.socketPath(adapter: miniport.adapter)
        #expect(FileManager.default.fileExists(atPath: socket))  // left behind
        // A segment name of this adapter left behind (as a crash between create and unlink would).
        var layout = SegmentLayout()
        layout.add(.control, length: 128)
        let stale = try SharedSegment.createNamed(prefix: "ringport=\(miniport.adapter)=", layout: layout)
        let staleName = stale.name
        try miniport.restart()
        #expect(!FileManager.default.fileExists(atPath: "/dev/shm" + staleName))
        let adapter = try Adapter.open(miniport.adapter, directory: miniport.directory)
        try Self.send(adapter, count: 10)
        #expect(Self.collect(adapter, count: 10, seconds: 5).count == 10)
        withExtendedLifetime(stale) {}
    }

    @Test func openingAnAdapterNobodyServesIsAdapterNotFound() throws {
        do {
            _ = try Adapter.open("nobody", directory: RuntimeDirectory("/tmp/ringport-test-none"))
            Issue.record("opened an adapter nobody serves")
        } catch {
            #expect(error.status == .adapterNotFound)
        }
    }

    @Test func anotherControlProtocolVersionIsBadVersion() throws {
        let miniport = try MiniportProcess()
        let socket = try ControlSocket.connect(path: miniport.directory.socketPath(adapter: miniport.adapter))
        try socket.send(.open(version: 99, adapter: miniport.adapter, requested: BindingConfiguration(), processID: 1))
        let answered = socket.isReadable(waitingMilliseconds: 5000)
        #expect(answered)
        guard case .message(.opened(let status, _, _), _) = try socket.receive() else {
            Issue.record("no answer")
            return
        }
        #expect(status == .badVersion)
        let wrongName = try ControlSocket.connect(path: miniport.directory.socketPath(adapter: miniport.adapter))
        try wrongName.send(
            .open(version: ControlMessage.version, adapter: "other", requested: BindingConfiguration(), processID: 1))
        let answeredToo = wrongName.isReadable(waitingMilliseconds: 5000)
        #expect(answeredToo)
        guard case .message(.opened(let status2, _, _), _) = try wrongName.receive() else { return }
        #expect(status2 == .adapterNotFound)
    }
}
