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
    /// Completes everything with `SUCCESS`, then exits at once (they must stay SUCCESS).
    case exitAfterComplete
    /// Plays by the rules: completes every send with `SUCCESS`, echoes nothing.
    case honest
    /// Returns receive packets and buffers past `EndIndex`: slots the library never posted.
    case receiveUnpostedSlots
    /// Every frame's buffer names a chunk the library never posted for receive (its own transmit buffers,
    /// or past the data area), with the payload written there.
    case receiveUnpostedChunks
    /// Truncates the segment to one page once the first packets completed (refused when it is sealed).
    case truncateSegment
    /// Hands over a named POSIX segment, which cannot be sealed, instead of a sealed memfd.
    case unsealedSegment
    /// Listens but never accepts, with its backlog full: a blocking `connect()` would wait for good.
    case wedged
    /// Loops sends back honestly while each round writes random bytes somewhere in the segment's regions.
    case scribble
    /// Loops sends back honestly while each round flips a bit of a completion status, a ring index or a
    /// receive element, and flips it back a moment later.
    case flip

    /// The attacks that act in rounds (`--rounds`), looping every send back meanwhile.
    var isRounds: Bool { self == .scribble || self == .flip }

    var isReceive: Bool {
        [
            .driverChangedReceiveBuffer, .driverReturnedInvalidReceivePacket, .driverAttachedResourcesToIgnoredPacket,
            .receiveUnpostedChunks,
        ]
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
                "usage: hostile-miniport --dir D --adapter A --rule R [--lifetime S] [--bindings N] [--rounds R] "
                    + "[--seed S] [--targets index,status,tx,rx] (rules: "
                    + Attack.allCases.map(\.rawValue).joined(separator: " ") + ")")
        }
        let lifetime = Double(options["lifetime"] ?? "") ?? 30
        let plan = Plan(
            bindings: Int(options["bindings"] ?? "") ?? 1,
            rounds: Int(options["rounds"] ?? "") ?? 2000,
            seed: UInt64(options["seed"] ?? "") ?? 1,
            targets: Set((options["targets"] ?? "index,status,tx,rx").split(separator: ",").map(String.init))
        )
        do {
            try serve(RuntimeDirectory(directory), adapter: adapter, attack: attack, lifetime: lifetime, plan: plan)
        } catch {
            fail("hostile-miniport: \(error)")
        }
    }

    static func fail(_ message: String) -> Never {
        let line = Array((message + "\n").utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(2)
    }

    /// How many bindings to serve one after another, and the rounds of a round attack in each.
    struct Plan {
        var bindings: Int
        var rounds: Int
        var seed: UInt64
        /// What `flip` flips: `index`, `status`, `tx` (transmit elements), `rx` (receive elements).
        var targets: Set<String>
    }

    static func say(_ line: String) {
        print(line)
        fflush(nil)
    }

    static func serve(
        _ directory: RuntimeDirectory, adapter: String, attack: Attack, lifetime: Double, plan: Plan
    ) throws {
        try directory.create()
        let path = directory.socketPath(adapter: adapter)
        unlink(path)
        let listener = try ControlSocket.listen(path: path, mode: 0o600)
        defer { unlink(path) }
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(lifetime * 1e9)
        if attack == .wedged {
            let held = fillBacklog(path)
            say("hostile-miniport \(adapter) is up (\(attack.rawValue), \(held.count) connections in the backlog)")
            while ProcessControl.monotonicNanoseconds() < deadline { usleep(10_000) }
            withExtendedLifetime(held) {}
            return
        }
        say("hostile-miniport \(adapter) is up (\(attack.rawValue))")
        var rounds = 0
        var served = 0
        var random = plan.seed
        for _ in 0..<plan.bindings {
            let now = ProcessControl.monotonicNanoseconds()
            guard now < deadline else { break }
            let milliseconds = Int32(clamping: (deadline - now) / 1_000_000)
            guard listener.isReadable(waitingMilliseconds: milliseconds), let socket = try listener.accept() else {
                if served == 0 { fail("nobody connected") }
                break
            }
            served += 1
            random &+= SplitMix64.increment
            rounds += try serveBinding(
                socket, adapter: adapter, attack: attack, deadline: deadline, plan: plan, seed: random)
        }
        say("hostile-miniport served \(served) bindings, \(rounds) rounds")
    }

    /// Connects to its own listener until a connect would block (the backlog is full); the sockets stay
    /// open, never accepted.
    static func fillBacklog(_ path: String) -> [Int32] {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        var held: [Int32] = []
        while held.count < 100_000 {
            guard let socket = try? ControlSocket.connect(path: path, timeout: 0.02) else { break }
            held.append(dup(socket.descriptor))
        }
        return held
    }

    /// Serves one binding: returns the rounds of a round attack it played.
    static func serveBinding(
        _ socket: borrowing ControlSocket, adapter: String, attack: Attack, deadline: UInt64, plan: Plan, seed: UInt64
    ) throws -> Int {
        guard socket.isReadable(waitingMilliseconds: 5000) else { return 0 }
        let received = try socket.receive()
        guard case .message(let request, let passed) = consume received else { return 0 }
        if passed >= 0 { close(passed) }
        guard case .open(_, _, let requested, _) = request else { fail("not an open request: \(request)") }
        // As ControlPlane.open: create, initialize, pass the descriptor, unlink the name.
        let granted = requested.clamped(to: .maximum)
        let segment =
            attack == .unsealedSegment
            ? try SharedSegment.createNamed(prefix: "ringport=\(adapter)=", layout: granted.layout)
            : try SharedSegment.create(prefix: "ringport=\(adapter)=", layout: granted.layout)
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
        try socket.send(.opened(status: .success, bindingID: 1, granted: granted), passing: fd)
        segment.unlinkName()
        // truncateSegment keeps a descriptor to truncate through later.
        let kept = attack == .truncateSegment ? fd : -1
        if kept < 0 { close(fd) }
        defer { if kept >= 0 { close(kept) } }
        regions.control.state.store(BindingState.open.rawValue)
        var driver = HostileDriver(
            regions: regions, attack: attack, views: segment.header.regions.map { views[$0]! }, rounds: plan.rounds,
            seed: seed, segmentDescriptor: kept, flipTargets: plan.targets)
        while ProcessControl.monotonicNanoseconds() < deadline {
            if socket.isReadable() {
                let received: ControlSocket.Received
                do { received = try socket.receive(nonBlocking: true) } catch { return driver.roundsDone }
                switch consume received {
                case .message(let message, let fd):
                    if fd >= 0 { close(fd) }
                    if message == .close {
                        try? socket.send(.closed(status: .success))
                        return driver.roundsDone
                    }
                case .nothing: break
                case .closed: return driver.roundsDone  // the protocol closed the connection
                case .malformed: return driver.roundsDone
                }
            }
            switch driver.step() {
            case .worked: continue
            case .idle: usleep(200)
            case .exitNow:
                // Everything is returned with SUCCESS; the connection closes before anyone is woken.
                shutdown(socket.descriptor, Int32(SHUT_RDWR))
                exit(0)
            case .hangUp:
                // The rounds are played and the binding still open: let the protocol see the miniport go.
                shutdown(socket.descriptor, Int32(SHUT_RDWR))
                return driver.roundsDone
            }
        }
        withExtendedLifetime(segment) {}
        return driver.roundsDone
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
    /// The round attacks: every region of the segment, the rounds to play and played, a SplitMix64 state.
    let views: [UnsafeMutableRawBufferPointer]
    let maxRounds: Int
    let flipTargets: Set<String>
    var roundsDone = 0
    var random: UInt64
    /// truncateSegment: the segment's descriptor (else -1).
    let segmentDescriptor: Int32

    enum Step { case worked, idle, exitNow, hangUp }

    init(
        regions: BindingRegions, attack: Attack, views: [UnsafeMutableRawBufferPointer] = [], rounds: Int = 0,
        seed: UInt64 = 1, segmentDescriptor: Int32 = -1, flipTargets: Set<String> = []
    ) {
        self.regions = regions
        self.attack = attack
        self.views = views
        maxRounds = rounds
        random = seed
        self.segmentDescriptor = segmentDescriptor
        self.flipTargets = flipTargets
    }

    mutating func next(_ bound: Int) -> Int {
        Int(SplitMix64.next(&random) % UInt64(max(1, bound)))
    }

    var tx: NetRing { regions.transmitPacketRing }
    var txFragments: NetRing { regions.transmitFragmentRing }
    var rx: NetRing { regions.receivePacketRing }
    var rxFragments: NetRing { regions.receiveFragmentRing }

    mutating func step() -> Step {
        if attack.isReceive { return receiveStep() || transmitHonestly() ? .worked : .idle }
        if attack.isRounds { return roundStep() }
        let end = tx.loadEndIndex()
        switch attack {
        case .honest, .nonZeroStartIndices, .unsealedSegment, .wedged:
            return transmitHonestly() ? .worked : .idle
        case .truncateSegment:
            if broken { return .idle }  // truncated: touching the segment now would be SIGBUS here too
            guard completed > 0 else { return transmitHonestly() ? .worked : .idle }
            if ftruncate(segmentDescriptor, 4096) == 0 {
                HostileMiniportMain.say("truncated the segment to 4096 bytes")
                broken = true
                wakeProtocol()  // the control block is in the first page
                return .worked
            }
            let error = errno
            HostileMiniportMain.say("truncation refused (errno \(error))")
            broken = false
            return transmitHonestly() ? .worked : .idle
        case .receiveUnpostedSlots:
            _ = transmitHonestly()
            if broken || completed == 0 { return .idle }
            // Packets and buffers returned past EndIndex: slots the library never posted.
            rx.storeBeginIndex(rx.advance(rx.loadEndIndex(), by: 3))
            rxFragments.storeBeginIndex(rxFragments.advance(rxFragments.loadEndIndex(), by: 3))
            broken = true
            wakeProtocol()
            return .worked
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
            case .receiveUnpostedChunks:
                // A chunk past the data area, or one at its top, never a receive buffer (the library sets
                // those aside from the bottom): the payload goes there.
                let foreign = UInt32(frames % 4 == 1 ? data.chunkCount + frames : data.chunkCount - 1 - frames % 8)
                if Int(foreign) < data.chunkCount {
                    let start = Int(foreign) * data.chunkSize
                    data.withBytes(start..<start + payload.count) {
                        $0.copyBytes(from: Array("FOREIGN!".utf8.prefix(payload.count)))
                    }
                }
                fragment.chunk = foreign
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
    // MARK: Round attacks (scribble, flip)

    /// One round of the attack (while rounds remain), then a loopback turn: each sent packet completes
    /// with SUCCESS and comes back as a frame when a receive slot and buffer are posted.
    mutating func roundStep() -> Step {
        if roundsDone >= maxRounds { return .hangUp }
        // The rounds start once the library has attached and sent (before that, a scribble only makes
        // the open fail).
        guard completed > 0 else { return loopback() ? .worked : .idle }
        roundsDone += 1
        if attack == .scribble { scribble() } else { flip() }
        if !loopback() { usleep(20) }  // give the protocol a moment between rounds
        return .worked
    }

    /// Random bytes (1 to 16) at a random place of a random region.
    mutating func scribble() {
        guard !views.isEmpty else { return }
        let view = views[next(views.count)]
        guard view.count > 0 else { return }
        let length = min(view.count, 1 + next(16))
        let offset = next(view.count - length + 1)
        for i in 0..<length { view[offset + i] = UInt8(truncatingIfNeeded: next(256)) }
    }

    /// Flips one bit of a field the library reads, waits a moment, and flips it back.
    mutating func flip() {
        let bit = UInt32(1) << UInt32(next(32))
        let pause = next(2000)
        func hold(_ pause: Int) { for _ in 0..<pause { ProcessControl.relax() } }
        // Index flips are caught at once (the binding closes), so they are rare: the rest race the reads.
        var choice = next(32)
        let target = choice == 0 ? "index" : choice <= 8 ? "status" : choice <= 16 ? "tx" : "rx"
        if !flipTargets.contains(target) {
            // Another enabled target (the list is never empty of all four).
            let order: [(String, Int)] = [("status", 1), ("tx", 9), ("rx", 17), ("index", 0)]
            guard let other = order.first(where: { flipTargets.contains($0.0) }) else { return }
            choice = other.1
        }
        switch choice {
        case 1...8:  // a completion status
            let descriptor = regions.descriptors[next(regions.descriptors.count)]
            let status = descriptor.status
            descriptor.status = NDISStatus(rawValue: status.rawValue ^ bit)
            hold(pause)
            descriptor.status = status
        case 0:  // a ring index the driver owns
            let ring = [tx, txFragments, rx, rxFragments][next(4)]
            let begin = ring.loadBeginIndex()
            ring.storeBeginIndex(begin ^ bit)
            wakeProtocol()
            hold(pause)
            ring.storeBeginIndex(begin)
        case 9...16:  // a transmit packet element: its descriptor and fragments
            let packet = NetPacket(tx, at: UInt32(next(Int(tx.numberOfElements))), verifier: nil)
            let (descriptor, index, count) = (packet.descriptor, packet.fragmentIndex, packet.fragmentCount)
            packet.descriptor = descriptor ^ bit
            if next(2) == 0 { packet.fragmentIndex = index ^ bit }
            hold(pause)
            (packet.descriptor, packet.fragmentIndex, packet.fragmentCount) = (descriptor, index, count)
        case 17...24:  // a receive packet element
            let packet = NetPacket(rx, at: UInt32(next(Int(rx.numberOfElements))), verifier: nil)
            let (index, count) = (packet.fragmentIndex, packet.fragmentCount)
            packet.fragmentIndex = index ^ bit
            packet.fragmentCount = count ^ UInt16(truncatingIfNeeded: bit | bit >> 16)
            hold(pause)
            (packet.fragmentIndex, packet.fragmentCount) = (index, count)
        default:  // a receive buffer element
            let fragment = NetFragment(rxFragments, at: UInt32(next(Int(rxFragments.numberOfElements))), verifier: nil)
            let (length, offset, chunk) = (fragment.validLength, fragment.offset, fragment.chunk)
            switch next(3) {
            case 0: fragment.validLength = length ^ bit
            case 1: fragment.offset = offset ^ UInt16(truncatingIfNeeded: bit | bit >> 16)
            default: fragment.chunk = chunk ^ bit
            }
            hold(pause)
            (fragment.validLength, fragment.offset, fragment.chunk) = (length, offset, chunk)
        }
    }

    /// Completes every posted send with SUCCESS and hands each one's bytes back as a received frame, when
    /// a slot and a buffer are posted (else the frame is dropped). Returns whether there was work.
    mutating func loopback() -> Bool {
        let end = tx.loadEndIndex()
        guard end != txBegin else { return false }
        let data = regions.data
        var i = txBegin
        var fragmentEnd = txFragmentBegin
        while i != end {
            let packet = NetPacket(tx, at: i, verifier: nil)
            let count = Int(packet.fragmentCount)
            let first = packet.fragmentIndex & txFragments.elementIndexMask
            if count > 0 { fragmentEnd = txFragments.advance(first, by: Int32(count)) }
            var payload: [UInt8] = []
            if !packet.ignore && count <= 16 {
                for k in 0..<count {
                    let fragment = NetFragment(txFragments, at: txFragments.advance(first, by: Int32(k)), verifier: nil)
                    if let span = data.span(of: fragment) { data.withBytes(span) { payload += $0 } }
                }
            }
            let descriptor = packet.descriptor
            if regions.descriptors.contains(descriptor) { regions.descriptors[Int(descriptor)].status = .success }
            completed += 1
            deliver(payload)
            i = tx.increment(i)
        }
        txFragments.storeNextIndex(fragmentEnd)
        txFragments.storeBeginIndex(fragmentEnd)
        txFragmentBegin = fragmentEnd
        tx.storeNextIndex(end)
        tx.storeBeginIndex(end)
        txBegin = end
        wakeProtocol()
        return true
    }

    /// One frame into the next posted receive slot and buffer, if there are both and it fits.
    mutating func deliver(_ payload: [UInt8]) {
        let data = regions.data
        guard !payload.isEmpty, payload.count <= data.chunkSize, rx.loadEndIndex() != rxPacketBegin,
            rxFragments.loadEndIndex() != rxFragmentBegin
        else { return }
        let packet = NetPacket(rx, at: rxPacketBegin, verifier: nil)
        let fragment = NetFragment(rxFragments, at: rxFragmentBegin, verifier: nil)
        let chunk = Int(fragment.chunk)
        guard chunk < data.chunkCount, payload.count <= Int(fragment.capacity) else { return }
        data.withBytes(chunk * data.chunkSize..<chunk * data.chunkSize + payload.count) { $0.copyBytes(from: payload) }
        fragment.offset = 0
        fragment.validLength = UInt32(payload.count)
        packet.fragmentIndex = rxFragmentBegin
        packet.fragmentCount = 1
        packet.ignore = false
        rxFragmentBegin = rxFragments.increment(rxFragmentBegin)
        rxFragments.storeNextIndex(rxFragmentBegin)
        rxFragments.storeBeginIndex(rxFragmentBegin)
        rxPacketBegin = rx.increment(rxPacketBegin)
        rx.storeNextIndex(rxPacketBegin)
        rx.storeBeginIndex(rxPacketBegin)
    }
}
