import FuzzRig
import FuzzSupport
import Glibc
import Ringport
import RingportCore

// Harness 3: the library's view of its segment. The real library binds to a miniport in this process (the
// real framework and a driver, honest); the input makes it send, poll and receive, and writes any byte of
// the segment the miniport could write (its indices, statuses, receive elements, data) between its calls,
// and inside the driver's. Expected: no crash, no sanitizer report; a broken contract closes the binding,
// and once the miniport is gone every send has completed and every descriptor and buffer is back.

let endpoint: ControlEndpoint = {
    do { return try ControlEndpoint() } catch { fatalError("fuzz-library-segment: \(error)") }
}()

enum Operation: UInt8 {
    case send = 0
    case poll, scribble, scribbleInDriver, turn, turns, miniportCloses, miniportDies, close
    static let count: UInt8 = 9
}

func fuzzLibrarySegment(_ data: UnsafeRawBufferPointer) {
    var header = FuzzInput(UnsafeRawBufferPointer(rebasing: data.prefix(Program.size)))
    let hook = DriverHook()
    let (_, driver) = FuzzDrivers.make(Int(header.u8()), hook: hook)
    let flags = header.u8()
    let rig = MiniportRig(driver: driver, checked: flags & 1 == 0, budget: 1 + header.below(16))
    let peer: LibraryPeer
    do {
        peer = try LibraryPeer(rig: rig, endpoint: endpoint, configuration: fuzzConfiguration, checked: flags & 2 == 0)
    } catch { fatalError("fuzz-library-segment: opening the binding: \(error)") }
    let adapter = peer.adapter
    let views = peer.binding.views
    var sequence: UInt64 = 0
    var closed = false

    Program.records(UnsafeRawBufferPointer(rebasing: data.dropFirst(Program.size))) { input in
        guard let operation = Operation(rawValue: input.u8() % Operation.count) else { return }
        switch operation {
        case .send: LibraryUse.send(adapter, &input, sequence: &sequence)
        case .poll: LibraryUse.poll(adapter)
        case .scribble:
            for _ in 0..<1 + input.below(2) { Scribble.apply(&input, to: views) }
        case .scribbleInDriver:
            let bytes = input.take(Program.size)
            hook.action = {
                bytes.withUnsafeBytes { raw in
                    var writes = FuzzInput(raw)
                    Scribble.apply(&writes, to: views)
                }
            }
        case .turn: rig.turn()
        case .turns: for _ in 0..<1 + input.below(8) { rig.turn() }
        case .miniportCloses:
            rig.remove(peer.binding.id, protocolAlive: true)
            peer.disconnect()
        case .miniportDies: peer.disconnect()
        case .close:
            // Only once the miniport is gone: a living one would have to answer (on another thread).
            if !peer.isConnected && !closed {
                try? adapter.close(timeoutSeconds: 0)
                closed = true
            }
        }
        if peer.isConnected, !rig.isOpen(peer.binding.id) { peer.disconnect() }
    }
    // The miniport goes away: everything sent completes, and every packet and buffer comes back.
    rig.shutdown()
    peer.disconnect()
    // The library looks for a closed connection at most once a millisecond while polls find nothing.
    for _ in 0..<200 {
        LibraryUse.poll(adapter)
        if case .closed = adapter.state {
            LibraryUse.poll(adapter)  // what closing completed is handed out by the next poll
            break
        }
        usleep(500)
    }
    guard adapter.outstandingSends == 0 else {
        fatalError("\(adapter.outstandingSends) sends never completed after the miniport went away")
    }
    guard adapter.packetPoolUsage == 0, adapter.bufferPoolUsage == 0 else {
        fatalError(
            "packets \(adapter.packetPoolUsage) or buffers \(adapter.bufferPoolUsage) not back in the pools "
                + "(state \(adapter.state), misuses \(adapter.misuses))")
    }
}

func librarySegmentSeeds() -> [(name: String, bytes: [UInt8])] {
    var seeds: [(String, [UInt8])] = []
    for (d, name) in FuzzDrivers.names.enumerated() {
        let records: [[UInt8]] = [
            [UInt8(d), 0, 7],
            [Operation.send.rawValue, 2, 1, 40, 0, 20, 1],
            [Operation.turn.rawValue],
            [Operation.poll.rawValue],
            [Operation.send.rawValue, 0, 0, 10, 0],
            [Operation.scribble.rawValue, 0, 0, 0, 1],
            [Operation.turns.rawValue, 4],
            [Operation.poll.rawValue],
            [Operation.scribbleInDriver.rawValue, 2, 2, 0, 4, 1, 0xFF],
            [Operation.send.rawValue, 1, 0, 60, 0, 30, 0],
            [Operation.turns.rawValue, 2],
            [Operation.poll.rawValue],
            [Operation.miniportCloses.rawValue],
            [Operation.poll.rawValue],
            [Operation.close.rawValue],
        ]
        seeds.append((name, Program.seed(records)))
    }
    return seeds
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzLibrarySegment(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

#if !FUZZING
    @main
    struct LibrarySegmentReplay {
        static func main() {
            FuzzReplay.main(name: "fuzz-library-segment", seeds: librarySegmentSeeds, fuzzLibrarySegment)
        }
    }
#endif
