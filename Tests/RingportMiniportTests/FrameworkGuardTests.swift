import Foundation
import RingportCore
import RingportMiniport
import Testing

@testable import Ringport

/// The framework checks the protocol's indices before the driver sees anything, checked mode or not.
@Suite struct FrameworkGuardTests {
    enum Tamper: String, CaseIterable, Sendable {
        /// `EndIndex` back over packets the driver holds.
        case endBackward
        /// `EndIndex` forward past the gap, wrapping behind the packets the driver holds.
        case overfill
    }

    /// Docs/Contract.md §1.2 (the OS only grows the driver's range) and §1.3 (the one-slot gap): a binding whose
    /// protocol takes back or overfills the transmit ring is closed, naming the rule, before any packet the
    /// driver holds is handed to it again or rewritten; every packet completes once, with `CLOSING`.
    @Test(arguments: Tamper.allCases, [true, false])
    func aProtocolThatMovesEndIndexWrongIsClosedBeforeTheDriverSeesIt(tamper: Tamper, checked: Bool) throws {
        let driver = ScriptedDriver(serialized: false, maxSendPackets: 8) { _, count in
            Array(repeating: .pending, count: count)
        }
        let host = try ContractHost(driver: driver, checked: checked)
        defer { host.stop() }
        // The library's own checks off: the test plays a hostile protocol through its segment.
        let adapter = try host.open(checked: false)
        try sendSequence(adapter, count: 4)
        #expect(eventually { driver.heldCount.load(ordering: .sequentiallyConsistent) == 4 })
        let ring = adapter.regions.transmitPacketRing
        let end = ring.loadEndIndex()
        switch tamper {
        case .endBackward: ring.storeEndIndex(ring.advance(end, by: -2))
        case .overfill: ring.storeEndIndex(ring.advance(end, by: Int32(ring.numberOfElements) - 2))
        }
        adapter.regions.control.miniportWake.wakeIfNeeded()
        // Either way the owned range shrank: EndIndex moved back (an overfill wraps behind where it was).
        #expect(eventually { host.log.contains("broke the ring contract: osMovedEndBackward") }, "\(host.log.all)")
        #expect(driver.callSizes.reduce(0, +) == 4, "the driver got packets it already held: \(driver.sequences)")
        let statuses = collectCompletions(adapter, count: 4).map(\.1)
        #expect(statuses == Array(repeating: .closing, count: 4), "\(statuses)")
    }
}
