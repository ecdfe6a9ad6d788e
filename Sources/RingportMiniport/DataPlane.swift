import Glibc
import Logging
import RingportCore
import RingportSystem

/// The data thread: owns every binding's rings and the driver; polls the bindings in turn; sleeps on
/// their wake words (and the doorbell) when nothing moves (Docs/Design.md, invariant 9).
struct DataPlane {
    let miniport: Miniport
    let context: MiniportContext
    var totals = AdapterStatistics()
    var removedPackets: UInt64 = 0
    var removedBytes: UInt64 = 0
    var removedFailed: UInt64 = 0
    var removedReceived: UInt64 = 0
    var removedDropped: UInt64 = 0
    var removedReceivedBytes: UInt64 = 0
    var lastStatistics: UInt64 = 0
    var lastDoorbell: UInt32 = 0
    var turns = 0
    /// Each binding's receive EndIndex before the last pass ahead of a sleep.
    var receiveEnds: [UInt64] = []
    var driverWaitSleep = DataPlane.driverWaitFirstSleep
    /// The miniport's wake word of each binding (at most `MultiWait.limit - 1`), kept as bindings come and go.
    var wakeChannels: [WakeWords] = []
    var wakeChannelsBindings = -1
    /// Counts binding additions and removals (the wake channels are rebuilt when it moved).
    var bindingsChanged = 0
    /// Binding lifecycle lines: a client that binds, breaks its ring and binds again in a loop must not
    /// grow the log without bound.
    var lifecycleLog = LogLimiter(burst: 50)

    init(miniport: Miniport) {
        self.miniport = miniport
        let logger = miniport.logger
        context = MiniportContext(driver: miniport.driver) { logger.warning("\($0)") }
    }

    mutating func run() {
        var start = 0
        var spinner = AdaptiveSpin()
        let policy = miniport.options.waitPolicy
        while true {
            // Commands ring the doorbell: take the lock only when it rang.
            var commands: [Command] = []
            let bell = miniport.doorbell.load()
            if bell != lastDoorbell {
                lastDoorbell = bell
                commands = miniport.commands.withLock { queue in
                    defer { queue.removeAll(keepingCapacity: true) }
                    return queue
                }
                for command in commands { apply(command) }
            }
            if miniport.stopRequested.load(ordering: .sequentiallyConsistent) {
                shutdown()
                return
            }
            let (work, driverBusy) = context.pass(budget: miniport.options.budget, start: &start)
            closeViolators()
            publishStatistics(force: false)
            if work > 0 || !commands.isEmpty {
                driverWaitSleep = Self.driverWaitFirstSleep
                continue
            }
            // A driver with work it cannot do yet (a lossless hub waiting for a receiver's buffers, a deferred
            // completion not due) is polled again, but not in a loop that keeps a CPU: after the spin it
            // sleeps for a short while, and a receiver's post wakes it sooner.
            var driverWaits = driverBusy
            // Nothing moved: pass again and again (as the policy says) until something does, then sleep.
            if policy == .busyPoll {
                ProcessControl.relax()
                continue
            }
            let context = self.context
            let miniport = self.miniport
            let doorbellSeen = lastDoorbell
            let budget = miniport.options.budget
            let found = spinner.spin(policy: policy, deadline: .max) {
                if miniport.doorbell.load() != doorbellSeen { return true }
                let (work, busy) = context.pass(budget: budget, start: &start)
                driverWaits = busy
                return work > 0 || !context.violations.isEmpty
            }
            if found { continue }
            // A receive post the last pass did not see wakes no one (the flags are not up yet): the sleep's
            // re-check compares both receive rings' EndIndex with this snapshot, taken before that pass.
            receiveEnds.removeAll(keepingCapacity: true)
            for binding in context.bindings {
                receiveEnds.append(Self.receiveEnds(binding))
            }
            let last = context.pass(budget: budget, start: &start)
            if last.work > 0 || !context.violations.isEmpty { continue }
            driverWaits = driverWaits || last.driverBusy
            publishStatistics(force: true)
            spinner.willSleep()
            miniport.dataPlaneSleeps.store(spinner.sleeps, ordering: .relaxed)
            if wakeChannelsBindings != bindingsChanged {
                wakeChannels = context.bindings.prefix(MultiWait.limit - 1).map { $0.regions.control.miniportWake }
                wakeChannelsBindings = bindingsChanged
            }
            guard driverWaits else {
                sleep(timeoutNanoseconds: 5_000_000_000)
                continue
            }
            // The longer nothing moves, the longer it sleeps (up to 5 ms); work resets it.
            sleep(timeoutNanoseconds: driverWaitSleep)
            driverWaitSleep = min(2 * driverWaitSleep, Self.driverWaitLastSleep)
        }
    }

    /// Both receive rings' `EndIndex` (buffers and packet slots are posted separately).
    static func receiveEnds(_ binding: MiniportBinding) -> UInt64 {
        UInt64(binding.receive.fragmentRing.loadEndIndex()) | UInt64(binding.receive.packetRing.loadEndIndex()) << 32
    }

    /// The sleeps of a data thread whose driver still has work it cannot do yet.
    static let driverWaitFirstSleep: Int64 = 50_000
    static let driverWaitLastSleep: Int64 = 5_000_000

    /// Announces on every binding's wake word and the doorbell, re-checks everything, then sleeps.
    func sleep(timeoutNanoseconds: Int64) {
        let bindings = context.bindings
        let miniport = self.miniport
        let doorbellSeen = lastDoorbell  // a ring since the commands were taken must not be slept through
        MultiWait.sleep(
            on: wakeChannels,
            extra: CollectionOfOne(miniport.doorbell),
            timeoutNanoseconds: timeoutNanoseconds
        ) {
            miniport.doorbell.load() != doorbellSeen || miniport.stopRequested.load(ordering: .sequentiallyConsistent)
                || bindings.contains { $0.hasPostedWork }
                || zip(bindings, receiveEnds).contains { Self.receiveEnds($0) != $1 }
        }
    }

    /// Closes every binding that broke the contract this turn, naming the rule; its protocol sees the socket
    /// close (the library then completes locally what the miniport could not return).
    mutating func closeViolators() {
        guard !context.violations.isEmpty else { return }
        let found = context.violations
        context.violations.removeAll()
        for (id, violation) in found where context.binding(id) != nil {
            log(.error, "binding \(id) broke the ring contract: \(violation); closing it")
            totals.bindingsViolated += 1
            remove(id, protocolAlive: true)
            miniport.toDisconnect.withLock { $0.append(id) }
        }
        miniport.wakeControlPlane()
        publishStatistics(force: true)
    }

    mutating func apply(_ command: Command) {
        switch command {
        case .add(let resources):
            context.add(MiniportBinding(resources, checked: miniport.options.checked))
            bindingsChanged += 1
            totals.bindingsOpened += 1
            log(.info, "binding \(resources.id) opened by process \(resources.processID)")
        case .remove(let id, let alive):
            remove(id, protocolAlive: alive)
            if !alive { totals.bindingsReclaimed += 1 }
            // The protocol asked to close: it is answered only now that nothing here touches the binding.
            if alive {
                miniport.removed.withLock { $0.append(id) }
                miniport.wakeControlPlane()
            }
        }
        publishStatistics(force: true)
    }

    mutating func remove(_ id: UInt64, protocolAlive: Bool) {
        guard let binding = context.binding(id) else { return }
        removedPackets += binding.packets
        removedBytes += binding.bytes
        removedFailed += binding.failed
        removedReceived += binding.received
        removedDropped += binding.dropped
        removedReceivedBytes += binding.receivedBytes
        context.remove(id, protocolAlive: protocolAlive)
        bindingsChanged += 1
        miniport.bindingCount.wrappingDecrement(ordering: .relaxed)
        log(.info, "binding \(id) \(protocolAlive ? "closed" : "reclaimed: its protocol is gone")")
    }

    /// Logs a lifecycle line, rate-limited (a summary line counts what was suppressed).
    mutating func log(_ level: Logger.Level, _ message: String) {
        let logger = miniport.logger
        if lifecycleLog.admit({ logger.warning("\($0)") }) { logger.log(level: level, "\(message)") }
    }

    /// Closes every binding: what is outstanding completes with `CLOSING` and goes back to its protocol.
    mutating func shutdown() {
        for binding in context.bindings { remove(binding.id, protocolAlive: true) }
        publishStatistics(force: true)
    }

    mutating func publishStatistics(force: Bool) {
        turns &+= 1
        guard force || turns & 1023 == 0 else { return }
        let now = ProcessControl.monotonicNanoseconds()
        guard force || now &- lastStatistics > 5_000_000 else { return }
        lastStatistics = now
        var s = totals
        s.bindings = UInt64(context.bindings.count)
        s.packetsSent = removedPackets + context.bindings.reduce(0) { $0 + $1.packets }
        s.bytesSent = removedBytes + context.bindings.reduce(0) { $0 + $1.bytes }
        s.packetsFailed = removedFailed + context.bindings.reduce(0) { $0 + $1.failed }
        s.packetsOutstanding = UInt64(context.bindings.reduce(0) { $0 + max(0, $1.outstanding) })
        s.verificationErrors = context.verificationErrors
        s.completionsRefused = context.refusedCompletions
        s.receiversStalled = context.receiversStalled
        s.packetsReceived = removedReceived + context.bindings.reduce(0) { $0 + $1.received }
        s.packetsDropped = removedDropped + context.bindings.reduce(0) { $0 + $1.dropped }
        s.bytesReceived = removedReceivedBytes + context.bindings.reduce(0) { $0 + $1.receivedBytes }
        for binding in context.bindings {
            binding.regions.control.setStatistic(0, binding.packets)
            binding.regions.control.setStatistic(1, binding.bytes)
            binding.regions.control.setStatistic(2, binding.received)
            binding.regions.control.setStatistic(3, binding.dropped)
        }
        miniport.statistics.withLock { $0 = s }
        let bindings = context.bindings
        miniport.bindingStatistics.withLock { list in
            list.removeAll(keepingCapacity: true)  // reused: a publish allocates nothing once warm
            for binding in bindings { list.append(binding.statistics()) }
        }
    }
}
