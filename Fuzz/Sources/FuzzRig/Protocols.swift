import Dispatch
import Foundation
import FuzzSupport
import Glibc
import Ringport
import RingportCore
import RingportSystem

/// A protocol that drives a binding's rings directly (the OS side's queues), with packet and buffer fields
/// the fuzz input chooses: mostly plausible, often not. Its own bookkeeping is process-local, like the
/// library's, so whatever the miniport or the scribbles write, it does not trap.
package struct RawProtocol {
    var transmit: OSRingQueue
    var receive: OSRingQueue
    let configuration: BindingConfiguration

    package init(_ regions: BindingRegions) {
        configuration = regions.configuration
        transmit = OSRingQueue(
            packetRing: regions.transmitPacketRing, fragmentRing: regions.transmitFragmentRing, checked: false)
        receive = OSRingQueue(
            packetRing: regions.receivePacketRing, fragmentRing: regions.receiveFragmentRing, checked: false)
    }

    /// Publishes up to a few packets whose fragments, descriptors and flags come from `input`.
    package mutating func send(_ input: inout FuzzInput) {
        let packets = 1 + input.below(4)
        var staged = 0
        var fragments = 0
        while staged < packets && staged < transmit.freePackets {
            let count = 1 + input.below(configuration.fragmentsPerPacket)
            guard fragments + count <= transmit.freeFragments else { break }
            let first = transmit.stagedFragmentIndex(fragments)
            for k in 0..<count {
                let fragment = transmit.stagedFragment(fragments + k)
                fragment.reset()
                let plausible = input.u8() & 0x7 != 0
                fragment.chunk = plausible ? UInt32(input.below(configuration.chunkCount)) : input.u32()
                fragment.offset = plausible ? UInt16(input.below(64)) : input.u16()
                fragment.validLength = plausible ? UInt32(input.below(64)) : input.u32()
                fragment.capacity = UInt32(configuration.chunkSize)
            }
            let packet = transmit.stagedPacket(staged)
            packet.reset()
            let shape = input.u8()
            packet.fragmentIndex = shape & 0x10 == 0 ? first : UInt32(input.u8())
            packet.fragmentCount = shape & 0x20 == 0 ? UInt16(count) : UInt16(input.u8())
            packet.descriptor = shape & 0x40 == 0 ? UInt32(input.below(configuration.packetCount)) : input.u32()
            packet.ignore = shape & 0x0F == 1
            fragments += count
            staged += 1
        }
        try? transmit.publish(packets: staged, fragments: fragments)
    }

    /// Takes back what the miniport returned (a violation it finds is the harness's business, not a crash).
    package mutating func reclaim() {
        _ = try? transmit.reclaimPackets { _ in }
        _ = try? transmit.reclaimFragments()
        _ = try? receive.reclaimReceived { _, _ in }
    }

    /// Posts receive buffers and packet slots, their chunk and capacity from `input`.
    package mutating func postReceives(_ input: inout FuzzInput) {
        let slots = min(receive.freePackets, 1 + input.below(8))
        let buffers = min(receive.freeFragments, 1 + input.below(8))
        for k in 0..<buffers {
            let fragment = receive.stagedFragment(k)
            fragment.reset()
            let plausible = input.u8() & 0x7 != 0
            fragment.chunk = plausible ? UInt32(input.below(configuration.chunkCount)) : input.u32()
            fragment.capacity = plausible ? UInt32(configuration.chunkSize) : input.u32()
        }
        for k in 0..<slots { receive.stagedPacket(k).reset() }
        try? receive.publish(packets: slots, fragments: buffers)
    }
}

/// The miniport's end of the control sockets, in a private directory: enough of the control plane to
/// hand the library a binding (`Adapter.open` works unchanged), and to close its connection.
package final class ControlEndpoint: @unchecked Sendable {
    package let directory: RuntimeDirectory
    package let adapter = "fuzz0"
    let listener: ControlSocket

    package init() throws {
        let path = "/tmp/ringport-fuzz-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        directory = RuntimeDirectory(path)
        try directory.create()
        listener = try ControlSocket.listen(path: directory.socketPath(adapter: adapter), mode: 0o600)
    }

    deinit {
        unlink(directory.socketPath(adapter: adapter))
        rmdir(directory.path)
    }
}

/// A binding of the real library, served by the rig: the segment is the rig's, the answer to the open comes
/// from a short-lived thread (the library's open blocks until it is answered).
package final class LibraryPeer {
    package let adapter: Adapter
    package let binding: RigBinding
    /// The miniport's end of the control connection; nil once it closed it (the library sees it go away).
    var connection: Box?

    final class Box: @unchecked Sendable {
        var socket: ControlSocket?
        init() {}
    }

    package init(
        rig: MiniportRig, endpoint: ControlEndpoint, configuration: BindingConfiguration, checked: Bool
    ) throws {
        let (binding, fd) = try rig.open(configuration: configuration, descriptor: true)
        let granted = configuration.clamped()
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        // libFuzzer's timeout timer (SIGALRM) would interrupt the polls of the open on both sides, and an
        // interrupted poll reads as "not readable": keep it off this thread (and the one started here).
        var alarm = sigset_t()
        var previous = sigset_t()
        sigemptyset(&alarm)
        sigaddset(&alarm, SIGALRM)
        pthread_sigmask(SIG_BLOCK, &alarm, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let id = binding.id
        let thread = Thread {
            box.socket = Self.answerOpen(endpoint, descriptor: fd, bindingID: id, granted: granted)
            done.signal()
        }
        thread.start()
        var made: Adapter?
        var failure: (any Error)?
        do {
            made = try Adapter.open(
                endpoint.adapter, configuration: configuration, directory: endpoint.directory, checked: checked,
                timeoutSeconds: 5)
        } catch { failure = error }
        done.wait()
        guard let made else { throw failure ?? AdapterError.openFailed("no adapter") }
        adapter = made
        self.binding = binding
        connection = box
    }

    /// Accepts, reads the open and answers it with the segment: the control plane's part of an open. Closes
    /// `descriptor`; returns the miniport's end of the connection.
    static func answerOpen(
        _ endpoint: ControlEndpoint, descriptor fd: CInt, bindingID: UInt64, granted: BindingConfiguration
    ) -> ControlSocket? {
        defer { close(fd) }
        guard endpoint.listener.isReadable(waitingMilliseconds: 5000),
            let accepted = try? endpoint.listener.accept(),
            accepted.isReadable(waitingMilliseconds: 5000),
            let received = try? accepted.receive()
        else { return nil }
        switch consume received {
        case .message(.open, let extra):
            if extra >= 0 { close(extra) }
        case .message(_, let extra):
            if extra >= 0 { close(extra) }
            return nil
        default:
            return nil
        }
        try? accepted.send(.opened(status: .success, bindingID: bindingID, granted: granted), passing: fd)
        return accepted
    }

    /// The miniport closes the connection (as the control plane does for a binding it closed).
    package func disconnect() { connection = nil }
    package var isConnected: Bool { connection != nil }
}
