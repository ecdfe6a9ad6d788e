import FuzzRig
import FuzzSupport
import Ringport
import RingportCore

// Harness 2: the miniport's view of a binding's segment. A hostile protocol drives its binding's rings with
// fields the input picks and writes any byte of its segment between the framework's turns and inside the
// driver's calls; the driver (null, hub, loopback, the NDIS 5 drivers) runs in the real framework. Expected:
// no crash, no sanitizer report; a violation closes the hostile binding only. The second binding is honest
// (the real library, or a second raw protocol): the framework must never blame it.

let endpoint: ControlEndpoint = {
    do { return try ControlEndpoint() } catch { fatalError("fuzz-miniport-segment: \(error)") }
}()

enum Operation: UInt8 {
    case hostileSend = 0
    case hostileScribble, scribbleInDriver, turn, hostileReclaim, hostilePostReceives
    case honestSend, honestPoll, hostileCloses, hostileDies, turns
    static let count: UInt8 = 11
}

func fuzzMiniportSegment(_ data: UnsafeRawBufferPointer) {
    var header = FuzzInput(UnsafeRawBufferPointer(rebasing: data.prefix(Program.size)))
    let hook = DriverHook()
    let (_, driver) = FuzzDrivers.make(Int(header.u8()), hook: hook)
    let flags = header.u8()
    let rig = MiniportRig(driver: driver, checked: flags & 1 == 0, budget: 1 + header.below(16))
    let library = flags & 2 == 0
    let hostile: RigBinding
    do { hostile = try rig.open(configuration: fuzzConfiguration).0 } catch {
        fatalError("fuzz-miniport-segment: opening a binding: \(error)")
    }
    var raw = RawProtocol(hostile.regions)
    var honestPeer: LibraryPeer?
    var honestRaw: (binding: RigBinding, raw: RawProtocol)?
    do {
        if library {
            honestPeer = try LibraryPeer(
                rig: rig, endpoint: endpoint, configuration: fuzzConfiguration, checked: flags & 4 == 0)
        } else {
            let binding = try rig.open(configuration: fuzzConfiguration).0
            honestRaw = (binding, RawProtocol(binding.regions))
        }
    } catch { fatalError("fuzz-miniport-segment: opening the honest binding: \(error)") }
    var sequence: UInt64 = 0

    Program.records(UnsafeRawBufferPointer(rebasing: data.dropFirst(Program.size))) { input in
        guard let operation = Operation(rawValue: input.u8() % Operation.count) else { return }
        switch operation {
        case .hostileSend: raw.send(&input)
        case .hostileScribble:
            for _ in 0..<1 + input.below(2) { Scribble.apply(&input, to: hostile.views) }
        case .scribbleInDriver:
            let bytes = input.take(Program.size)
            let views = hostile.views
            hook.action = {
                bytes.withUnsafeBytes { raw in
                    var writes = FuzzInput(raw)
                    Scribble.apply(&writes, to: views)
                }
            }
        case .turn: rig.turn()
        case .turns: for _ in 0..<1 + input.below(8) { rig.turn() }
        case .hostileReclaim: raw.reclaim()
        case .hostilePostReceives: raw.postReceives(&input)
        case .honestSend:
            if let peer = honestPeer {
                LibraryUse.send(peer.adapter, &input, sequence: &sequence)
            } else if var honest = honestRaw {
                honest.raw.send(&input)
                honestRaw = honest
            }
        case .honestPoll:
            if let peer = honestPeer {
                LibraryUse.poll(peer.adapter)
            } else if var honest = honestRaw {
                honest.raw.reclaim()
                honest.raw.postReceives(&input)
                honestRaw = honest
            }
        case .hostileCloses: rig.remove(hostile.id, protocolAlive: true)
        case .hostileDies: rig.remove(hostile.id, protocolAlive: false)
        }
        if let peer = honestPeer, peer.isConnected, !rig.isOpen(peer.binding.id) { peer.disconnect() }
    }
    for _ in 0..<4 { rig.turn() }
    // The honest binding broke no rule: the framework must not have closed it for one, and the library must
    // not have found the miniport breaking one.
    if let peer = honestPeer {
        LibraryUse.poll(peer.adapter)
        if let reason = rig.closed[peer.binding.id] {
            fatalError("the framework closed the honest library binding: \(reason)")
        }
        if case .closed(let reason) = peer.adapter.state {
            fatalError("the honest library binding closed: \(reason)")
        }
    }
    rig.shutdown()
    if let peer = honestPeer {
        peer.disconnect()
        LibraryUse.poll(peer.adapter)
    }
}

func miniportSegmentSeeds() -> [(name: String, bytes: [UInt8])] {
    var seeds: [(String, [UInt8])] = []
    for (d, name) in FuzzDrivers.names.enumerated() {
        for (flags, kind) in [(0, "library"), (2, "raw")] {
            let records: [[UInt8]] = [
                [UInt8(d), UInt8(flags), 7],
                [Operation.hostilePostReceives.rawValue, 3, 3, 1, 1, 1],
                [Operation.honestPoll.rawValue],
                [Operation.hostileSend.rawValue, 1, 0, 1, 0, 40, 0, 0, 0, 1, 0, 1, 0, 20],
                [Operation.honestSend.rawValue, 1, 0, 30, 0],
                [Operation.turn.rawValue],
                [Operation.honestPoll.rawValue],
                [Operation.hostileScribble.rawValue, 0, 0, 2, 0x05],
                [Operation.turns.rawValue, 3],
                [Operation.hostileReclaim.rawValue],
                [Operation.scribbleInDriver.rawValue, 2, 1, 0, 0, 1, 0xFF],
                [Operation.hostileSend.rawValue, 0, 0, 1, 0, 8, 0, 0, 0],
                [Operation.honestSend.rawValue, 2, 1, 50, 1, 20, 0],
                [Operation.turns.rawValue, 7],
                [Operation.honestPoll.rawValue],
                [Operation.hostileDies.rawValue],
                [Operation.turn.rawValue],
            ]
            seeds.append(("\(name)-\(kind)", Program.seed(records)))
        }
    }
    return seeds
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzMiniportSegment(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

#if !FUZZING
    @main
    struct MiniportSegmentReplay {
        static func main() {
            FuzzReplay.main(name: "fuzz-miniport-segment", seeds: miniportSegmentSeeds, fuzzMiniportSegment)
        }
    }
#endif
