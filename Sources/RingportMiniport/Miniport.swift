import Atomics
import Foundation
import Glibc
public import Logging
public import RingportCore
public import RingportSystem
import Synchronization

/// How a miniport serves its adapter.
public struct MiniportOptions: Sendable {
    /// The adapter's name (1 to 64 of `A-Z a-z 0-9 . _ -`), as protocols pass it to `Adapter.open`.
    public var adapter: String
    /// Where the control socket and the adapter's lock file go.
    public var directory: RuntimeDirectory
    /// The most a binding may be granted.
    public var limits: BindingConfiguration
    /// Verify every ring transition (costs time; on in debug builds).
    public var checked: Bool
    /// Permissions of the control socket: who may bind.
    public var socketMode: mode_t
    /// What the data thread does when a pass moved nothing: spin, spin a learned while then sleep, or sleep.
    public var waitPolicy: WaitPolicy
    /// Packets one binding may move per turn before the next binding's turn (fairness).
    public var budget: Int
    /// Pin the data thread to this CPU.
    public var dataPlaneCPU: Int?
    /// Caps on what clients may hold (SO_PEERCRED names the process and user): bindings per process and
    /// per user, segment bytes per user and in all. An open beyond one is answered RESOURCES.
    public var maxBindingsPerProcess = 16
    /// Bindings one user may hold at once.
    public var maxBindingsPerUser = 64
    /// Segment bytes one user's bindings may hold at once.
    public var maxMemoryPerUser = 1 << 30
    /// Segment bytes all bindings may hold at once.
    public var maxMemory = 4 << 30
    /// Most control connections at once (nil: 4096, or fewer if the descriptor limit is lower).
    public var maxConnections: Int?
    /// A group whose members may bind: the socket becomes 0660 in that group, the directory searchable by it.
    public var group: String?

    /// Options for `adapter` with the given settings; the caps and `group` keep their defaults (set them after).
    public init(
        adapter: String,
        directory: RuntimeDirectory = RuntimeDirectory(),
        limits: BindingConfiguration = .maximum,
        checked: Bool = NetRingChecking.isEnabledByDefault,
        socketMode: mode_t = 0o600,
        waitPolicy: WaitPolicy = .default,
        budget: Int = 256,
        dataPlaneCPU: Int? = nil
    ) {
        self.adapter = adapter
        self.directory = directory
        self.limits = limits
        self.checked = checked
        self.socketMode = socketMode
        self.waitPolicy = waitPolicy
        self.budget = budget
        self.dataPlaneCPU = dataPlaneCPU
    }
}

/// Why a miniport could not start.
public enum MiniportError: Error, CustomStringConvertible {
    /// The adapter name is not 1 to 64 of `A-Z a-z 0-9 . _ -`.
    case badAdapterName(String)
    /// Another miniport holds the adapter's lock: it serves the adapter already.
    case alreadyRunning(String)
    /// A system call failed (creating the socket, for example).
    case system(SystemError)
    /// The runtime directory (or the group for it) is refused: another user could have planted it.
    case runtimeDirectory(RuntimeDirectory.Failure)

    /// What went wrong, on one line.
    public var description: String {
        switch self {
        case .runtimeDirectory(let failure): "runtime directory: \(failure)"
        case .badAdapterName(let name): "bad adapter name \"\(name)\" (1 to 64 of A-Z a-z 0-9 . _ -)"
        case .alreadyRunning(let why): why
        case .system(let error): error.description
        }
    }
}

/// What the control thread asks of the data thread.
enum Command: Sendable {
    case add(BindingResources)
    case remove(UInt64, protocolAlive: Bool)
}

/// A miniport serving one adapter: the control thread accepts bindings, the data thread runs the
/// framework over the driver. `run()` returns after `requestStop()`, with every binding closed.
public final class Miniport: @unchecked Sendable {
    /// The options it serves with.
    public let options: MiniportOptions
    let driver: any MiniportDriver
    /// Where the miniport logs: bindings opened and closed, broken rules (rate-limited), failures.
    public let logger: Logger
    let lock: AdapterLock
    let listener: ControlSocket
    /// The control socket protocols connect to.
    public let socketPath: String

    let stopRequested = ManagedAtomic<Bool>(false)
    let dataPlaneDone = ManagedAtomic<Bool>(false)
    let commands = Mutex<[Command]>([])
    let toDisconnect = Mutex<[UInt64]>([])
    /// Bindings the data thread removed at their protocol's request: the control thread answers `closed`.
    let removed = Mutex<[UInt64]>([])
    let statistics = Mutex(AdapterStatistics())
    /// Each open binding as the data thread last published it (with the adapter's statistics).
    let bindingStatistics = Mutex<[BindingStatistics]>([])
    /// The control plane's counters, copied out as they change.
    let controlCounters = Mutex(ControlCounters())
    /// Waits of the data thread that ended in a sleep.
    let dataPlaneSleeps = ManagedAtomic<UInt64>(0)
    /// The driver's name, read once (the driver itself is the data thread's).
    let driverName: String
    let bindingCount = ManagedAtomic<Int>(0)
    /// A process-local word the data thread also waits on: commands and stop ring it.
    let doorbellStorage: UnsafeMutableRawBufferPointer
    let doorbell: SharedWord
    /// A pipe the control thread also polls, so it sleeps until there is something to do.
    let controlWake: (read: Int32, write: Int32)

    /// Takes the adapter's lock, creates the runtime directory if needed and listens on the control socket; the
    /// miniport serves nothing until `run()`. Throws if another miniport serves the adapter, the directory is
    /// refused, or the socket cannot be made.
    public init(options: MiniportOptions, driver: any MiniportDriver, logger: Logger) throws(MiniportError) {
        guard RuntimeDirectory.isValidAdapterName(options.adapter) else { throw .badAdapterName(options.adapter) }
        self.options = options
        self.driver = driver
        driverName = driver.name
        self.logger = logger
        let group: gid_t?
        do throws(RuntimeDirectory.Failure) {
            group = try options.group.map { name throws(RuntimeDirectory.Failure) in
                try RuntimeDirectory.groupID(name)
            }
            try options.directory.create(socketMode: options.socketMode, group: group)
        } catch { throw .runtimeDirectory(error) }
        do {
            lock = try AdapterLock(path: options.directory.lockPath(adapter: options.adapter))
        } catch {
            throw .alreadyRunning("adapter \(options.adapter): \(error)")
        }
        socketPath = options.directory.socketPath(adapter: options.adapter)
        // We hold the lock: whatever a predecessor left is stale.
        if unlink(socketPath) == 0 { logger.info("removed a stale socket \(socketPath)") }
        for name in Self.leftoverSegments(adapter: options.adapter) {
            try? SharedSegment.unlink(name: "/" + name)
            logger.info("removed a leftover segment /\(name)")
        }
        do {
            listener = try ControlSocket.listen(path: socketPath, mode: options.socketMode)
            try listener.setNonBlocking()
        } catch { throw .system(error) }
        do {
            let mode = options.socketMode | (group == nil ? 0 : 0o660)
            try RuntimeDirectory.secureSocket(path: socketPath, mode: mode, group: group)
        } catch { throw .runtimeDirectory(error) }
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw .system(.fromErrno("pipe")) }
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        controlWake = (ends[0], ends[1])
        doorbellStorage = .allocate(byteCount: 64, alignment: 64)
        doorbellStorage.initializeMemory(as: UInt8.self, repeating: 0)
        doorbell = SharedWord(doorbellStorage, offset: 0)
    }

    deinit {
        unlink(socketPath)
        doorbellStorage.deallocate()
        close(controlWake.read)
        close(controlWake.write)
    }

    /// Wakes the control thread (a full pipe already means it will wake).
    func wakeControlPlane() {
        var byte: UInt8 = 1
        _ = write(controlWake.write, &byte, 1)
    }

    static func segmentPrefix(adapter: String) -> String { "ringport=\(adapter)=" }

    static func leftoverSegments(adapter: String) -> [String] {
        let prefix = segmentPrefix(adapter: adapter)
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter {
            $0.hasPrefix(prefix)
        }
    }

    /// Asks `run()` to close every binding and return. Safe from any thread.
    public func requestStop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        ringDoorbell()
        wakeControlPlane()
    }

    func ringDoorbell() {
        doorbell.add(1)
        Futex.wake(doorbell.futexAddress)
    }

    func enqueue(_ command: Command) {
        commands.withLock { $0.append(command) }
        ringDoorbell()
    }

    /// Serves until `requestStop()`: the control plane on a thread of its own, the data plane on this one.
    public func run() {
        let control = Thread { [self] in
            var plane = ControlPlane(miniport: self)
            plane.run()
        }
        control.name = "ringportd-control"
        control.start()
        if let cpu = options.dataPlaneCPU {
            do { try ProcessControl.pin(toCPU: cpu) } catch { logger.warning("pinning the data thread: \(error)") }
        }
        var data = DataPlane(miniport: self)
        data.run()
        dataPlaneDone.store(true, ordering: .sequentiallyConsistent)
        wakeControlPlane()
        while !controlDone.load(ordering: .sequentiallyConsistent) { usleep(1000) }
        // Remove the socket and lock files now: deinit may never run before the process exits (other threads
        // can still hold this object). The lock itself is the kernel's and goes with the process.
        unlink(socketPath)
        lock.removeFile()
    }

    let controlDone = ManagedAtomic<Bool>(false)

    /// What serves the adapter, as `queryAdapter` answers it.
    func adapterInfo() -> AdapterInfo {
        var info = AdapterInfo()
        info.driver = driverName
        info.processID = UInt64(UInt32(bitPattern: getpid()))
        info.waitPolicy = options.waitPolicy.code
        info.checked = options.checked ? 1 : 0
        info.sleeps = dataPlaneSleeps.load(ordering: .relaxed)
        return info
    }

    /// The adapter's statistics (the control plane's counters included), each open binding's, and what
    /// serves it, as last published by the data thread: for metrics and other observers on any thread.
    package func statisticsSnapshot()
        -> (adapter: AdapterStatistics, bindings: [BindingStatistics], info: AdapterInfo)
    {
        var adapter = statistics.withLock { $0 }
        controlCounters.withLock { $0 }.apply(to: &adapter)
        let bindings = bindingStatistics.withLock { $0 }.sorted { $0.id < $1.id }
        return (adapter, bindings, adapterInfo())
    }
}
