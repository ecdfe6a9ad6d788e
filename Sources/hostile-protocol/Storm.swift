import Foundation
import Glibc
import RingportCore
import RingportSystem
import Synchronization

// The storm attacks: a second thread rewrites the segment while the miniport reads it and the main thread
// keeps traffic going (good packets out, receive buffers posted and reposted), binding after binding, until
// `--writes` writes are done. They expect nothing of the miniport but that it survives: the tests check that,
// and that an honest binding on the same miniport loses nothing.

/// What the writer thread and the main thread share.
final class StormControl: Sendable {
    let stop = Atomic<Bool>(false)
    let done = Atomic<Bool>(false)
    let writes = Atomic<Int>(0)
}

/// A writable span of the mapping, as an address (so the writer thread can take it) and a length.
struct Target: Sendable {
    let address: Int
    let count: Int
}

enum Storm {
    /// Runs `attack` (flip or scribble) until `writes` writes, or `seconds`; prints a summary and returns 0.
    static func run(_ attack: Attack, adapter: String, directory: RuntimeDirectory, writes: Int, seconds: Double)
        -> Int32
    {
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(seconds * 1e9)
        var total = 0
        var bindings = 0
        var closed = 0
        var refused = 0
        var random = SystemRandomNumberGenerator()
        while total < writes && ProcessControl.monotonicNanoseconds() < deadline {
            let binding: RawBinding
            do {
                binding = try RawBinding(adapter: adapter, directory: directory, quiet: true)
            } catch {
                refused += 1
                guard refused < 200 else {
                    print("hostile-protocol: no binding: \(error)")
                    return 1
                }
                usleep(10_000)
                continue
            }
            bindings += 1
            let budget = min(writes - total, Int.random(in: 20_000...200_000, using: &random))
            let (wrote, wasClosed) = oneBinding(attack, binding, budget: budget, deadline: deadline)
            total += wrote
            if wasClosed { closed += 1 }
        }
        print("storm \(attack.rawValue): writes=\(total) bindings=\(bindings) closed=\(closed) refused=\(refused)")
        return 0
    }

    /// One binding under attack; returns the writes done and whether the miniport closed the binding.
    static func oneBinding(_ attack: Attack, _ binding: borrowing RawBinding, budget: Int, deadline: UInt64)
        -> (Int, Bool)
    {
        var os = HostileOS(binding.regions)
        let buffers = min(Int(binding.regions.receiveFragmentRing.numberOfElements) - 1, 15)
        try? os.postReceiveBuffers(buffers, capacity: binding.regions.configuration.chunkSize)
        let control = StormControl()
        let targets = self.targets(attack, binding)
        let thread = Thread {
            var random = SystemRandomNumberGenerator()
            while !control.stop.load(ordering: .relaxed) && control.writes.load(ordering: .relaxed) < budget {
                if attack == .flip { flip(targets, &random) } else { scribble(targets, &random) }
                control.writes.add(1, ordering: .relaxed)
            }
            control.done.store(true, ordering: .releasing)
        }
        thread.start()
        var closed = false
        while !control.done.load(ordering: .acquiring) {
            if binding.socket.isReadable(), HostileProtocol.isClosed(binding.socket) {
                closed = true
                break
            }
            if ProcessControl.monotonicNanoseconds() > deadline { break }
            // Our own view of the rings is scribbled on too: errors are expected, traffic goes on.
            do {
                _ = try os.transmit.reclaimPackets { _ in }
                _ = try os.transmit.reclaimFragments()
                if os.transmit.freePackets >= 4 && os.transmit.freeFragments >= 4 { try os.send(4) }
                _ = try os.receive.reclaimReceived { _, _ in }
                let free = min(os.receive.freePackets, os.receive.freeFragments)
                if free > 0 { try os.postReceiveBuffers(free, capacity: binding.regions.configuration.chunkSize) }
            } catch {}
            os.wake()
            sched_yield()
        }
        control.stop.store(true, ordering: .relaxed)
        while !control.done.load(ordering: .acquiring) { usleep(100) }
        close(binding.descriptor)
        return (control.writes.load(ordering: .relaxed), closed)
    }

    /// Flip: the fields the miniport reads (ring indices and elements, descriptors), not the payload. Scribble:
    /// the whole mapping, header included.
    static func targets(_ attack: Attack, _ binding: borrowing RawBinding) -> [Target] {
        let buffers = binding.segment.bytes(of: try! binding.segment.header.region(.fragmentRing, queue: 1))
        var targets = [Target(address: Int(bitPattern: buffers.baseAddress), count: buffers.count)]
        for region in binding.segment.header.regions
        where attack == .scribble || (region.kind != .dataArea && region.kind != .control) {
            let bytes = binding.segment.bytes(of: region)
            targets.append(Target(address: Int(bitPattern: bytes.baseAddress), count: bytes.count))
        }
        return targets
    }

    /// Flips random bits of one aligned word for a moment and puts it back: the value is wrong only between
    /// two of the miniport's loads, the window a check-then-use bug has.
    static func flip(_ targets: [Target], _ random: inout SystemRandomNumberGenerator) {
        // Half the flips go to the receive buffers (the first target): the miniport writes frames into them
        // from the chunk and capacity it read, the hottest check-then-use window there is.
        let target = targets[Bool.random(using: &random) ? 0 : Int.random(in: 0..<targets.count, using: &random)]
        guard target.count >= 4, let base = UnsafeMutableRawPointer(bitPattern: target.address) else { return }
        let word = base + Int.random(in: 0..<target.count / 4, using: &random) * 4
        let mask: UInt32 =
            Bool.random(using: &random) ? UInt32(1) << UInt32.random(in: 0..<32, using: &random) : random.next()
        let value = word.load(as: UInt32.self)
        word.storeBytes(of: value ^ mask, as: UInt32.self)
        for _ in 0..<Int.random(in: 0..<64, using: &random) { ProcessControl.relax() }
        word.storeBytes(of: value, as: UInt32.self)
    }

    /// Writes 1 to 8 random bytes at a random place, for good.
    static func scribble(_ targets: [Target], _ random: inout SystemRandomNumberGenerator) {
        let target = targets[Int.random(in: 0..<targets.count, using: &random)]
        guard target.count >= 8, let base = UnsafeMutableRawPointer(bitPattern: target.address) else { return }
        let at = base + Int.random(in: 0...(target.count - 8), using: &random)
        let bytes: UInt64 = random.next()
        let count = Int.random(in: 1...8, using: &random)
        for i in 0..<count {
            at.storeBytes(of: UInt8(truncatingIfNeeded: bytes >> (8 * UInt64(i))), toByteOffset: i, as: UInt8.self)
        }
    }

    /// Truncate: shrinks the binding's segment under the miniport (and then tries to grow it), then keeps
    /// sending for a second; prints what the kernel said.
    static func truncate(_ binding: borrowing RawBinding) -> Int32 {
        var os = HostileOS(binding.regions)
        try? os.postReceiveBuffers(8)
        let shrunk =
            ftruncate(binding.descriptor, 4096) == 0 ? "shrunk" : "refused (\(String(cString: strerror(errno))))"
        let grown =
            ftruncate(binding.descriptor, off_t(binding.segment.size * 2)) == 0
            ? "grown" : "refused (\(String(cString: strerror(errno))))"
        print("truncate: shrink \(shrunk), grow \(grown)")
        let deadline = ProcessControl.monotonicNanoseconds() + 1_000_000_000
        while ProcessControl.monotonicNanoseconds() < deadline {
            if binding.socket.isReadable(), HostileProtocol.isClosed(binding.socket) {
                print("closed")
                return 0
            }
            // After a shrink that worked, touching the lost pages would kill us (SIGBUS): only the miniport may.
            if shrunk != "shrunk" {
                _ = try? os.transmit.reclaimPackets { _ in }
                _ = try? os.transmit.reclaimFragments()
                if os.transmit.freePackets >= 4 && os.transmit.freeFragments >= 4 { try? os.send(4) }
            }
            os.wake()
            usleep(1000)
        }
        print("still open")
        return 0
    }
}
