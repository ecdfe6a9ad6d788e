import Foundation
import RingTransfer
import RingportCore
import RingportSystem
import TestSupport
import Testing

/// The test process plays the OS; a spawned `ringport-peer drive` plays the driver of the same rings.
@Suite(.serialized) struct TwoProcessRingTests {
    struct Outcome {
        var driverStatus: Int32?
        var driverOutput: String
        var driverErrors: String
        var osError: (any Error)?
        var segmentName: String
    }

    /// Runs one transfer; the segment is unlinked and the driver reaped before this returns, also on failure.
    func transfer(
        _ plan: TransferPlan,
        geometry: TransferGeometry = TransferGeometry(packetRingSize: 16, fragmentRingSize: 64, chunkSize: 128),
        fault: TransferFault? = nil,
        timeoutSeconds: Double = 240,
        driverArguments: [String] = []
    ) throws -> Outcome {
        let segment = try SharedSegment.createNamed(prefix: "ringport-test-", layout: geometry.layout)
        let name = segment.name
        let rings = try TransferRings.initialize(segment, geometry)
        let driver = try SpawnedProcess(
            "ringport-peer",
            [
                "drive", "--segment", name, "--packets", "\(plan.packets)", "--max-fragments",
                "\(plan.maxFragments)", "--max-fragment-bytes", "\(plan.maxFragmentBytes)", "--seed", "\(plan.seed)",
                "--chunk-size", "\(geometry.chunkSize)", "--timeout", "\(timeoutSeconds)",
                "--parent", "\(getpid())", "--checked", "true",
            ] + driverArguments
        )
        defer { driver.stop() }
        var os = TransferOS(plan: plan, rings: rings, checked: true)
        os.fault = fault
        var osError: (any Error)?
        do {
            _ = try os.run(timeoutSeconds: timeoutSeconds) { driver.process.isRunning }
        } catch {
            osError = error
        }
        let status = driver.wait(seconds: 30)
        return Outcome(
            driverStatus: status,
            driverOutput: driver.standardOutput,
            driverErrors: driver.standardError,
            osError: osError,
            segmentName: name
        )
    }

    @Test func aMillionPacketsWrapASmallRingInOrderWithEveryByteIntact() throws {
        let plan = TransferPlan(packets: 1_000_000, maxFragments: 4, maxFragmentBytes: 64, seed: 42, batch: 8)
        let outcome = try transfer(plan)
        #expect(outcome.osError == nil, "\(String(describing: outcome.osError))")
        #expect(outcome.driverStatus == 0, "\(outcome.driverErrors)")
        #expect(outcome.driverOutput.hasPrefix("ok packets=1000000 "), "\(outcome.driverOutput)")
        // 1,000,000 packets through a 16-element packet ring: it wrapped 62,500 times.
        #expect(!FileManager.default.fileExists(atPath: "/dev/shm" + outcome.segmentName))
    }

    /// The timeout bounds a wait with no progress, not the whole transfer. A driver that stalls 5 ms after
    /// every Advance keeps returning packets for at least 3 s (9,000 packets, at most 15 per stall); with a 2 s
    /// timeout neither side may give up. Before the fix both did, as in the "hang": the OS with a full ring
    /// outstanding, then the driver after the OS's last packet.
    @Test func theTimeoutBoundsTimeWithoutProgressNotTheWholeTransfer() throws {
        let plan = TransferPlan(packets: 9_000, seed: 12, batch: 8)
        let start = ProcessControl.monotonicNanoseconds()
        let outcome = try transfer(
            plan,
            timeoutSeconds: 2,
            driverArguments: ["--stall-microseconds", "5000"]
        )
        let seconds = Double(ProcessControl.monotonicNanoseconds() - start) / 1e9
        #expect(outcome.osError == nil, "\(String(describing: outcome.osError))")
        #expect(outcome.driverStatus == 0, "\(outcome.driverErrors)")
        #expect(outcome.driverOutput.hasPrefix("ok packets=9000 "), "\(outcome.driverOutput)")
        // At most 15 packets per 5 ms stall: the transfer outlasted its timeout, so the test proves something.
        #expect(seconds > 2.5, "the transfer took only \(seconds) s")
    }

    @Test func theDriverReportsACorruptedPayloadByte() throws {
        let plan = TransferPlan(packets: 5_000, seed: 7, batch: 4)
        let outcome = try transfer(plan, fault: .payloadByte(packet: 3_333), timeoutSeconds: 20)
        #expect(outcome.driverStatus == 1)
        #expect(outcome.driverErrors.contains("packet 3333 fragment 0: payload differs"), "\(outcome.driverErrors)")
        #expect(outcome.osError != nil)
        #expect(!FileManager.default.fileExists(atPath: "/dev/shm" + outcome.segmentName))
    }

    @Test func theDriverRefusesAFragmentPointingOutsideTheDataArea() throws {
        let plan = TransferPlan(packets: 5_000, seed: 9, batch: 4)
        let outcome = try transfer(plan, fault: .chunkOutOfRange(packet: 100), timeoutSeconds: 20)
        #expect(outcome.driverStatus == 1)
        #expect(outcome.driverErrors.contains("packet 100 fragment 0: bad span"), "\(outcome.driverErrors)")
    }

    @Test func theDriverRefusesASegmentThatIsNotARingportSegment() throws {
        let geometry = TransferGeometry()
        let segment = try SharedSegment.createNamed(prefix: "ringport-test-", layout: geometry.layout)
        // Valid segment header, but the packet ring region was never initialised: geometry all zero.
        let driver = try SpawnedProcess("ringport-peer", ["drive", "--segment", segment.name, "--packets", "1"])
        defer { driver.stop() }
        #expect(driver.wait(seconds: 30) != 0)
        #expect(driver.standardError.contains("bad ring geometry"), "\(driver.standardError)")
    }
}
