import ExampleDrivers
import RingportCore
import RingportMiniport

/// Called at the start of every driver call: the harness writes into the segments there, between the
/// framework's checks and the driver's reads.
package final class DriverHook {
    package var action: (() -> Void)?
    package init() {}
    func fire() {
        guard let action else { return }
        self.action = nil
        action()
    }
}

/// The drivers a harness can run, each wrapped so `hook` fires inside its calls.
package enum FuzzDrivers {
    package static let names = [
        "null", "hub", "loopback", "reverse-echo-serialized", "reverse-echo", "throttled", "resources",
        "random-order", "serial", "counting", "hub-stall",
    ]

    package static func make(_ choice: Int, hook: DriverHook) -> (name: String, driver: any MiniportDriver) {
        let name = names[choice % names.count]
        let driver: any MiniportDriver
        switch name {
        case "null": driver = RingProxy(NullDriver(verify: true), hook)
        case "hub": driver = ArrayProxy(HubDriver(mode: .hub), hook)
        case "loopback": driver = ArrayProxy(HubDriver(mode: .loopback, policy: .drop), hook)
        case "reverse-echo-serialized": driver = ArrayProxy(ReverseEchoDriver(serialized: true), hook)
        case "reverse-echo": driver = ArrayProxy(ReverseEchoDriver(serialized: false), hook)
        case "throttled": driver = SingleProxy(ThrottledDriver(credits: 3, maxFrame: 100), hook)
        // Delays of 0: what they hold completes at their next poll, so a run does not depend on the clock.
        case "resources": driver = ArrayProxy(ResourcesDriver(seed: 1, maxDelayMicroseconds: 0), hook)
        case "random-order": driver = ArrayProxy(RandomOrderDriver(seed: 2, maxDelayMicroseconds: 0), hook)
        case "serial": driver = SingleProxy(SerialDriver(seed: 3, maxDelayMicroseconds: 0), hook)
        // A lossless hub that stops waiting for a receiver at once: the stall path on every full receiver.
        case "hub-stall": driver = ArrayProxy(HubDriver(mode: .hub, stallTimeoutMilliseconds: 0), hook)
        default: driver = RingProxy(CountingDriver(), hook)
        }
        return (name, driver)
    }
}

final class RingProxy: RingDriver {
    let inner: any RingDriver
    let hook: DriverHook
    init(_ inner: any RingDriver, _ hook: DriverHook) {
        self.inner = inner
        self.hook = hook
    }
    var name: String { inner.name }
    func bindingOpened(_ binding: UInt64, context: MiniportContext) { inner.bindingOpened(binding, context: context) }
    func bindingClosing(_ binding: UInt64, context: MiniportContext) {
        inner.bindingClosing(binding, context: context)
    }
    func poll(context: MiniportContext) -> Bool {
        hook.fire()
        return inner.poll(context: context)
    }
    func advance(_ queue: TransmitQueue, context: MiniportContext) throws(NetRingViolation) {
        hook.fire()
        try inner.advance(queue, context: context)
    }
}

final class ArrayProxy: SendPacketsHandler {
    let inner: any SendPacketsHandler
    let hook: DriverHook
    init(_ inner: any SendPacketsHandler, _ hook: DriverHook) {
        self.inner = inner
        self.hook = hook
    }
    var name: String { inner.name }
    var isSerialized: Bool { inner.isSerialized }
    var maxSendPackets: Int { inner.maxSendPackets }
    func bindingOpened(_ binding: UInt64, context: MiniportContext) { inner.bindingOpened(binding, context: context) }
    func bindingClosing(_ binding: UInt64, context: MiniportContext) {
        inner.bindingClosing(binding, context: context)
    }
    func poll(context: MiniportContext) -> Bool {
        hook.fire()
        return inner.poll(context: context)
    }
    func sendPackets(_ packets: [MiniportPacket], statuses: inout [NDISStatus], context: MiniportContext) {
        hook.fire()
        inner.sendPackets(packets, statuses: &statuses, context: context)
    }
}

final class SingleProxy: SendHandler {
    let inner: any SendHandler
    let hook: DriverHook
    init(_ inner: any SendHandler, _ hook: DriverHook) {
        self.inner = inner
        self.hook = hook
    }
    var name: String { inner.name }
    var isSerialized: Bool { inner.isSerialized }
    var maxSendPackets: Int { inner.maxSendPackets }
    func bindingOpened(_ binding: UInt64, context: MiniportContext) { inner.bindingOpened(binding, context: context) }
    func bindingClosing(_ binding: UInt64, context: MiniportContext) {
        inner.bindingClosing(binding, context: context)
    }
    func poll(context: MiniportContext) -> Bool {
        hook.fire()
        return inner.poll(context: context)
    }
    func send(_ packet: MiniportPacket, context: MiniportContext) -> NDISStatus {
        hook.fire()
        return inner.send(packet, context: context)
    }
}
