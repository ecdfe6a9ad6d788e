import Glibc
import RingportCore
import RingportSystem

/// A protocol that binds over the raw control socket, maps its segment, and breaks one rule of the ring
/// contract (tests only). It first behaves: posts receive buffers and sends a few good packets, and waits
/// until they complete; then it attacks, and reports whether (and how fast) the miniport closed the
/// binding: `closed after N ms` (exit 0) or `still open` (exit 3).
///
///     hostile-protocol --adapter NAME --dir DIR --attack ATTACK [--writes N --seconds S]
enum Attack: String, CaseIterable {
    /// Writes the transmit packet ring's `BeginIndex`, which only the driver writes.
    case writeBegin = "write-begin"
    /// Writes the transmit fragment ring's `NextIndex`.
    case writeNext = "write-next"
    /// Moves the receive fragment ring's `EndIndex` back over buffers the driver owns.
    case endBackward = "end-backward"
    /// Moves the receive fragment ring's `EndIndex` onto `BeginIndex`: all elements given out.
    case overfill
    /// Rewrites a receive buffer the driver owns.
    case changeOwnedElement = "change-owned-element"
    /// Publishes a packet whose fragments lie past the fragment ring's `EndIndex`.
    case fragmentsOutsideRange = "fragments-outside-range"
    /// Storm: flips fields of the rings and descriptors for a moment while the miniport reads them.
    case flip
    /// Storm: random bytes anywhere in the mapping.
    case scribble
    /// Shrinks (and grows) the segment's memory under the miniport.
    case truncate

    /// The attacks after which the miniport must close the binding; the others only must not hurt it.
    var expectsClose: Bool { ![.flip, .scribble, .truncate].contains(self) }
}

struct HostileFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The binding, raw: the segment's regions and the control socket that keeps it alive.
struct RawBinding: ~Copyable {
    let socket: ControlSocket
    let segment: SharedSegment
    let regions: BindingRegions
    /// The segment's descriptor, kept (the truncate attack uses it; the storms close it when done).
    let descriptor: CInt

    init(adapter: String, directory: RuntimeDirectory, quiet: Bool = false) throws {
        let socket = try ControlSocket.connect(path: directory.socketPath(adapter: adapter))
        try socket.send(
            .open(
                version: ControlMessage.version, adapter: adapter,
                requested: BindingConfiguration(
                    packetCount: 64, chunkCount: 64, transmitRingSize: 16, fragmentsPerPacket: 2, receiveRingSize: 16),
                processID: getpid()))
        guard socket.isReadable(waitingMilliseconds: 5000) else { throw HostileFailure("no answer to open") }
        guard case .message(.opened(let status, let id, _), let fd) = try socket.receive(), status == .success, fd >= 0
        else { throw HostileFailure("open refused") }
        if !quiet { print("binding \(id)") }
        let spare = dup(fd)
        let segment = try SharedSegment.adopt(descriptor: fd, name: "hostile")
        var views: [Region: UnsafeMutableRawBufferPointer] = [:]
        for region in segment.header.regions { views[region] = segment.bytes(of: region) }
        regions = try BindingRegions.attach(header: segment.header) { views[$0]! }
        self.segment = segment
        self.socket = socket
        descriptor = spare
    }
}

/// The OS side's own cursors, kept here (as the library keeps its own).
struct HostileOS {
    let regions: BindingRegions
    var transmit: OSRingQueue
    var receive: OSRingQueue
    var nextChunk = 0

    init(_ regions: BindingRegions) {
        self.regions = regions
        transmit = OSRingQueue(
            packetRing: regions.transmitPacketRing, fragmentRing: regions.transmitFragmentRing, checked: false)
        receive = OSRingQueue(
            packetRing: regions.receivePacketRing, fragmentRing: regions.receiveFragmentRing, checked: false)
    }

    /// Posts `count` receive buffers and packet slots, as the library does at open.
    mutating func postReceiveBuffers(_ count: Int, capacity: Int = 8) throws {
        for k in 0..<count {
            let fragment = receive.stagedFragment(k)
            fragment.reset()
            fragment.chunk = UInt32(regions.configuration.chunkCount - 1 - k % 16)
            fragment.capacity = UInt32(capacity)
            receive.stagedPacket(k).reset()
        }
        try receive.publish(packets: count, fragments: count)
        regions.control.miniportWake.wakeIfNeeded()
    }

    /// Sends `count` good one-fragment packets (64 bytes each) with one publish.
    mutating func send(_ count: Int, publish: Bool = true) throws {
        for k in 0..<count {
            let descriptorIndex = nextChunk % 32
            let chunk = nextChunk % 32
            nextChunk += 1
            let descriptor = regions.descriptors[descriptorIndex]
            descriptor.owner = .miniport
            descriptor.status = .pending
            let fragment = transmit.stagedFragment(k)
            fragment.reset()
            fragment.chunk = UInt32(chunk)
            fragment.validLength = 64
            fragment.capacity = UInt32(regions.configuration.chunkSize)
            let packet = transmit.stagedPacket(k)
            packet.reset()
            packet.descriptor = UInt32(descriptorIndex)
            packet.fragmentIndex = transmit.stagedFragmentIndex(k)
            packet.fragmentCount = 1
            regions.data.withBytes(
                chunk * regions.configuration.chunkSize..<chunk * regions.configuration.chunkSize + 64
            ) {
                PayloadPattern.fill($0, sequence: UInt64(nextChunk - 1), totalLength: 64, start: 0)
            }
        }
        if publish {
            try transmit.publish(packets: count, fragments: count)
            regions.control.miniportWake.wakeIfNeeded()
        }
    }

    /// Waits (bounded) until the driver returned every packet sent.
    mutating func waitForCompletions(seconds: Double) -> Bool {
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(seconds * 1e9)
        while transmit.outstandingPackets > 0 {
            _ = try? transmit.reclaimPackets { _ in }
            _ = try? transmit.reclaimFragments()
            if ProcessControl.monotonicNanoseconds() > deadline { return false }
            usleep(100)
        }
        return true
    }

    func wake() { regions.control.miniportWake.wakeIfNeeded() }
}

@main
enum HostileProtocol {
    static func main() {
        var arguments: [String: String] = [:]
        var words = CommandLine.arguments.dropFirst()
        while let key = words.popFirst(), let value = words.popFirst() { arguments[key] = value }
        guard let adapter = arguments["--adapter"], let dir = arguments["--dir"],
            let attack = arguments["--attack"].flatMap(Attack.init(rawValue:))
        else {
            print("usage: hostile-protocol --adapter NAME --dir DIR --attack \(Attack.allCases.map(\.rawValue))")
            exit(64)
        }
        if attack == .flip || attack == .scribble {
            exit(
                Storm.run(
                    attack, adapter: adapter, directory: RuntimeDirectory(dir),
                    writes: arguments["--writes"].flatMap(Int.init) ?? 1_000_000,
                    seconds: arguments["--seconds"].flatMap(Double.init) ?? 20))
        }
        do {
            let binding = try RawBinding(adapter: adapter, directory: RuntimeDirectory(dir))
            if attack == .truncate { exit(Storm.truncate(binding)) }
            exit(try run(attack, binding: binding))
        } catch {
            print("hostile-protocol: \(error)")
            exit(1)
        }
    }

    static func run(_ attack: Attack, binding: borrowing RawBinding) throws -> Int32 {
        var os = HostileOS(binding.regions)
        try os.postReceiveBuffers(8)
        try os.send(4)
        // Drivers that hold packets (random-order with a long delay, a blocked hub) may not return them.
        let returned = os.waitForCompletions(seconds: 2)
        print("behaved: returned=\(returned)")
        let regions = binding.regions
        switch attack {
        case .writeBegin:
            let ring = regions.transmitPacketRing
            ring.storeBeginIndex(ring.increment(ring.loadBeginIndex()))
        case .writeNext:
            let ring = regions.transmitFragmentRing
            ring.storeNextIndex(ring.increment(ring.loadNextIndex()))
        // The receive buffers are too small for any frame, so they stay the driver's (a hub drops what it
        // cannot fit): the attacks on them are not raced by other bindings' traffic.
        case .endBackward:
            let ring = regions.receiveFragmentRing
            ring.storeEndIndex(ring.advance(ring.loadEndIndex(), by: -2))
        case .overfill:
            let ring = regions.receiveFragmentRing
            ring.storeEndIndex(ring.loadBeginIndex())
        case .changeOwnedElement:
            let ring = regions.receiveFragmentRing
            os.receive.fragment(at: ring.loadBeginIndex()).capacity = 4
        case .flip, .scribble, .truncate:
            return 64  // run by Storm
        case .fragmentsOutsideRange:
            try os.send(1, publish: false)
            let packet = os.transmit.stagedPacket(0)
            packet.fragmentIndex = regions.transmitFragmentRing.advance(os.transmit.fragmentEnd, by: 3)
            // Only the packet ring moves: the fragments it names were never given out.
            regions.transmitPacketRing.storeEndIndex(regions.transmitPacketRing.increment(os.transmit.packetEnd))
        }
        os.wake()
        print("attacked: \(attack.rawValue)")
        let start = ProcessControl.monotonicNanoseconds()
        // The miniport closes the binding by closing the connection.
        while ProcessControl.monotonicNanoseconds() - start < 5_000_000_000 {
            if binding.socket.isReadable(waitingMilliseconds: 50), isClosed(binding.socket) {
                print("closed after \((ProcessControl.monotonicNanoseconds() - start) / 1_000_000) ms")
                return 0
            }
            os.wake()
        }
        print("still open")
        return 3
    }

    static func isClosed(_ socket: borrowing ControlSocket) -> Bool {
        do {
            let received = try socket.receive()
            switch consume received {
            case .closed: return true
            default: return false
            }
        } catch {
            return true
        }
    }
}
