// A miniport that serves the real protocol library one binding and then breaks one rule of the contract
// (`--rule`), for the tests of the library's side: each violation must close the binding within a bounded
// time, named (checked mode), and never crash or hang the protocol.
//
// It listens on `<dir>/<adapter>.sock` as ringportd does, opens the binding as ControlPlane.open does, and
// then plays the driver on the raw rings, without the iterators or a verifier, so it can break anything.

import Glibc
import RingportCore
import RingportSystem

/// What the hostile driver does. The first group breaks the ring rule of the same name (NetRingRule); the
/// second is NDIS-level misbehaviour.
enum Attack: String, CaseIterable {
    case driverMovedBeginPastEnd
    case driverWroteOSIndex
    case driverChangedElementOutsideRange
    case driverChangedIgnore
    case driverChangedTransmitPacket
    case driverChangedTransmitFragment
    case driverChangedReceiveBuffer
    case driverReturnedInvalidReceivePacket
    case driverAttachedResourcesToIgnoredPacket
    /// Returns slots never sent: `BeginIndex` moves past `EndIndex` while nothing is outstanding.
    case completeUnsent
    /// Completes every packet with statuses outside NDIS's set (and `PENDING`).
    case statusGarbage
    /// Completes honestly but stores `BeginIndex` with garbage above the index mask.
    case unmaskedIndices
    /// Hands over a segment whose transmit ring does not start empty.
    case nonZeroStartIndices
    /// Completes everything with `SUCCESS`, then exits at once (D1).
    case exitAfterComplete
    /// Plays by the rules: completes every send with `SUCCESS`, echoes nothing.
    case honest

    var isReceive: Bool {
        [.driverChangedReceiveBuffer, .driverReturnedInvalidReceivePacket, .driverAttachedResourcesToIgnoredPacket]
            .contains(self)
    }
}

@main
struct HostileMiniportMain {
    static func main() {
        var options: [String: String] = [:]
        var arguments = CommandLine.arguments.dropFirst()
        while let key = arguments.popFirst() {
            guard key.hasPrefix("--"), let value = arguments.popFirst() else {
                fail("usage: --dir D --adapter A --rule R")
            }
            options[String(key.dropFirst(2))] = value
        }
        guard let directory = options["dir"], let adapter = options["adapter"], let name = options["rule"],
            let attack = Attack(rawValue: name)
        else {
            fail(
                "usage: hostile-miniport --dir D --adapter A --rule R [--lifetime S] (rules: "
                    + Attack.allCases.map(\.rawValue).joined(separator: " ") + ")")
        }
        let lifetime = Double(options["lifetime"] ?? "") ?? 30
        do {
            try serve(RuntimeDirectory(directory), adapter: adapter, attack: attack, lifetime: lifetime)
        } catch {
            fail("hostile-miniport: \(error)")
        }
    }

    static func fail(_ message: String) -> Never {
        let line = Array((message + "\n").utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(2)
    }

    static func serve(_ directory: RuntimeDirectory, adapter: String, attack: Attack, lifetime: Double) throws {
        try directory.create()
        let path = directory.socketPath(adapter: adapter)
        unlink(path)
        let listener = try ControlSocket.listen(path: path, mode: 0o600)
        defer { unlink(path) }
        print("hostile-miniport \(adapter) is up (\(attack.rawValue))")
        fflush(nil)
        let milliseconds = Int32(lifetime * 1000)
        guard listener.isReadable(waitingMilliseconds: milliseconds), let socket = try listener.accept() else {
            fail("nobody connected")
        }
        guard socket.isReadable(waitingMilliseconds: 5000) else { fail("no open request") }
        let received = try socket.receive()
        guard case .message(let request, let passed) = consume received else { fail("no open request") }
        if passed >= 0 { close(passed) }
        guard case .open(_, _, let requested, _) = request else { fail("not an open request: \(request)") }
        // As ControlPlane.open: create, initialize, pass the descriptor, unlink the name.
        let granted = requested.clamped(to: .maximum)
        let segment = try SharedSegment.create(prefix: "ringport=\(adapter)=", layout: granted.layout)
        var views: [Region: UnsafeMutableRawBufferPointer] = [:]
        for region in segment.header.regions { views[region] = segment.bytes(of: region) }
        let regions = try BindingRegions.initialize(header: segment.header, configuration: granted) { views[$0]! }
        if attack == .nonZeroStartIndices {
            for ring in [regions.transmitPacketRing, regions.transmitFragmentRing] {
                ring.storeBeginIndex(5)
                ring.storeNextIndex(5)
                ring.storeEndIndex(5)
            }
        }
        let fd = try segment.openDescriptor()
        segment.unlinkName()
        try socket.send(.opened(status: .success, bindingID: 1, granted: granted), passing: fd)
        close(fd)
        regions.control.state.store(BindingState.open.rawValue)
        var driver = HostileDriver(regions: regions, attack: attack)
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(lifetime * 1e9)
        while ProcessControl.monotonicNanoseconds() < deadline {
            if socket.isReadable() {
                let received: ControlSocket.Received
                do { received = try socket.receive(nonBlocking: true) } catch { return }
                switch consume received {
                case .message(let message, let fd):
                    if fd >= 0 { close(fd) }
                    if message == .close {
                        try? socket.send(.closed(status: .success))
                        return
                    }
                case .nothing: break
                case .closed: return  // the protocol closed the connection
                case .malformed: return
                }
            }
            switch driver.step() {
            case .worked: continue
            case .idle: usleep(200)
            case .exitNow:
                // D1: everything is returned with SUCCESS; the connection closes before anyone is woken.
                shutdown(socket.descriptor, Int32(SHUT_RDWR))
                exit(0)
            }
        }
        withExtendedLifetime(segment) {}
    }
}

/// The driver side of the binding, on the raw rings.
struct HostileDriver {
    let regions: BindingRegions
    let attack: Attack
    /// Indices this side last stored (what an honest driver would keep).
    var txBegin: UInt32 = 0
    var txFragmentBegin: UInt32 = 0
    var rxPacketBegin: UInt32 = 0
    var rxFragmentBegin: UInt32 = 0
    var frames = 0
    var completed = 0
    /// After breaking its rule once, the driver does nothing more on that ring.
    var broken = false
    var brokeAt: UInt64 = 0

    enum Step { case worked, idle, exitNow }

    init(regions: BindingRegions, attack: Attack) {
        self.regions = regions
        self.attack = attack
    }

    var tx: NetRing { regions.transmitPacketRing }
    var txFragments: NetRing { regions.transmitFragmentRing }
    var rx: NetRing { regions.receivePacketRing }
    var rxFragments: NetRing { regions.receiveFragmentRing }

    mutating func step() -> Step {
        if attack.isReceive { return receiveStep() || transmitHonestly() ? .worked : .idle }
        let end = tx.loadEndIndex()
        switch attack {
        case .honest, .nonZeroStartIndices:
            return transmitHonestly() ? .worked : .idle
        case .statusGarbage:
            let garbage: [NDISStatus] = [
                NDISStatus(rawValue: 0xDEAD_BEEF), .pending, NDISStatus(rawValue: 0x1234_5678), .success,
            ]
            return complete(status: { garbage[$0 % garbage.count] }) ? .worked : .idle
        case .unmaskedIndices:
            return complete(beginBits: 0xABC0_0000) ? .worked : .idle
        case .exitAfterComplete:
            guard end != txBegin else { return .idle }
            usleep(300_000)  // let the protocol fall asleep in its wait (past its spinning)
            _ = complete(wake: false)  // it wakes by itself, to a returned ring and a closed connection
            return .exitNow
        case .completeUnsent:
            if broken { return .idle }
            if completed == 0 { return complete() ? .worked : .idle }
            usleep(50_000)  // the protocol took the first batch back (and may have sent more)
            tx.storeBeginIndex(tx.advance(tx.loadEndIndex(), by: 2))  // over slots never sent
            broken = true
            return .worked
        default:
            break
        }
        // The ring rules: break once the first packets are here, then stay idle.
        guard !broken, end != txBegin else { return .idle }
        broken = true
        let first = NetPacket(tx, at: txBegin, verifier: nil)
        switch attack {
        case .driverMovedBeginPastEnd:
            tx.storeBeginIndex(tx.advance(end, by: 2))
            return .worked
        case .driverWroteOSIndex:
            _ = complete()
            tx.storeEndIndex(tx.advance(end, by: 1))
            return .worked
        case .driverChangedElementOutsideRange:
            let outside = tx.advance(end, by: Int32(tx.numberOfElements / 2))
            NetPacket(tx, at: outside, verifier: nil).descriptor = 0xBAD
        case .driverChangedIgnore:
            first.ignore = true
        case .driverChangedTransmitPacket:
            first.layout = NetPacketLayout(bits: 0x12_3456)
        case .driverChangedTransmitFragment:
            let fragment = NetFragment(
                txFragments, at: first.fragmentIndex & txFragments.elementIndexMask, verifier: nil)
            fragment.validLength = fragment.validLength &+ 1
        default:
            break
        }
        _ = complete()
        return .worked
    }

    func wakeProtocol() { regions.control.protocolWake.wakeIfNeeded() }

    mutating func transmitHonestly() -> Bool { complete() }

    /// Completes every posted transmit packet (statuses into the descriptors), returns their fragments, then
    /// the packets, and wakes the protocol (unless `wake` is false).
    mutating func complete(
        status: (Int) -> NDISStatus = { _ in .success },
        beginBits: UInt32 = 0,
        wake: Bool = true
    ) -> Bool {
        let end = tx.loadEndIndex()
        guard end != txBegin else { return false }
        var fragmentEnd = txFragmentBegin
        var i = txBegin
        while i != end {
            let packet = NetPacket(tx, at: i, verifier: nil)
            let descriptor = packet.descriptor
            let count = packet.fragmentCount
            if count > 0 {
                fragmentEnd = txFragments.advance(packet.fragmentIndex & txFragments.elementIndexMask, by: Int32(count))
            }
            if regions.descriptors.contains(descriptor) {
                regions.descriptors[Int(descriptor)].status = status(completed)
            }
            completed += 1
            i = tx.increment(i)
        }
        txFragments.storeNextIndex(fragmentEnd)
        txFragments.storeBeginIndex(fragmentEnd)
        txFragmentBegin = fragmentEnd
        tx.storeNextIndex(end)
        tx.storeBeginIndex(end | beginBits)
        txBegin = end
        if wake { wakeProtocol() }
        return true
    }

    /// One receive frame, if a slot and a buffer are posted: every other frame is the attack (for rules the
    /// library survives unchecked, it keeps going, so a leak would stall it), the others are honest.
    mutating func receiveStep() -> Bool {
        guard frames < 64 else { return false }
        if broken && attack == .driverReturnedInvalidReceivePacket { return false }
        let packetEnd = rx.loadEndIndex()
        let fragmentEnd = rxFragments.loadEndIndex()
        guard packetEnd != rxPacketBegin, fragmentEnd != rxFragmentBegin else { return false }
        let bad = frames % 2 == 0
        frames += 1
        let packet = NetPacket(rx, at: rxPacketBegin, verifier: nil)
        let fragment = NetFragment(rxFragments, at: rxFragmentBegin, verifier: nil)
        let payload = Array("frame \(frames - 1)".utf8)
        let data = regions.data
        let chunk = Int(fragment.chunk)
        guard chunk < data.chunkCount, Int(fragment.capacity) <= data.chunkSize, payload.count <= data.chunkSize else {
            return false
        }
        data.withBytes(chunk * data.chunkSize..<chunk * data.chunkSize + payload.count) { $0.copyBytes(from: payload) }
        fragment.offset = 0
        fragment.validLength = UInt32(payload.count)
        packet.fragmentIndex = rxFragmentBegin
        packet.fragmentCount = 1
        packet.ignore = false
        var returnsFragment = true
        if bad {
            broken = true
            switch attack {
            case .driverChangedReceiveBuffer:
                fragment.chunk = UInt32((chunk + 1) % data.chunkCount)
            case .driverReturnedInvalidReceivePacket:
                // Names a buffer slot never posted, and returns no buffer.
                packet.fragmentIndex = rxFragments.advance(fragmentEnd, by: 3)
                returnsFragment = false
            case .driverAttachedResourcesToIgnoredPacket:
                packet.ignore = true  // dropped, yet with the buffer attached and returned
            default:
                break
            }
        }
        if returnsFragment {
            rxFragmentBegin = rxFragments.increment(rxFragmentBegin)
            rxFragments.storeNextIndex(rxFragmentBegin)
            rxFragments.storeBeginIndex(rxFragmentBegin)
        }
        rxPacketBegin = rx.increment(rxPacketBegin)
        rx.storeBeginIndex(rxPacketBegin)
        wakeProtocol()
        return true
    }
}
