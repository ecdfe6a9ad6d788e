import DequeModule
import Glibc
import Logging
import RingportCore
import RingportSystem

/// A connection of the control plane, with the binding it opened (if any). Its socket never blocks: answers
/// go out at once or wait in a short queue, and a client that lets the queue fill is dropped.
final class Connection {
    let socket: ControlSocket
    /// Who is on the other end, as the kernel saw it at connect (SO_PEERCRED).
    let peer: Peer
    var binding: UInt64?
    /// The protocol asked to close this binding; `closed` goes out once the data thread let go of it.
    var closingBinding: UInt64?
    /// The budget the binding holds against the caps (given back when the connection goes).
    var charge: Int?
    /// Answers not yet taken by the socket, each with a descriptor to pass (owned here) or -1.
    var output: Deque<(bytes: [UInt8], descriptor: CInt)> = []
    /// When the output first could not be written (monotonic ns), while it still cannot.
    var blockedSince: UInt64?
    /// Close once the output is out (a refused open on a connection without a binding).
    var closeAfterOutput = false
    /// To be removed at the end of this turn.
    var dropped = false

    init(_ socket: consuming ControlSocket, peer: Peer) {
        self.socket = socket
        self.peer = peer
    }

    deinit { for entry in output where entry.descriptor >= 0 { close(entry.descriptor) } }
}

struct Peer: Hashable {
    var processID: Int32
    var userID: UInt32
}

/// What the caps count: bindings per process and per user, segment bytes per user and in all.
struct Budget {
    var bindingsPerProcess: [Int32: Int] = [:]
    var bindingsPerUser: [UInt32: Int] = [:]
    var memoryPerUser: [UInt32: Int] = [:]
    var memory = 0

    /// Why `bytes` more for `peer` would break a cap, or nil.
    func refusal(_ peer: Peer, bytes: Int, _ options: MiniportOptions) -> String? {
        if bindingsPerProcess[peer.processID, default: 0] >= options.maxBindingsPerProcess {
            return "process \(peer.processID) has \(options.maxBindingsPerProcess) bindings (the most per process)"
        }
        if bindingsPerUser[peer.userID, default: 0] >= options.maxBindingsPerUser {
            return "user \(peer.userID) has \(options.maxBindingsPerUser) bindings (the most per user)"
        }
        if memoryPerUser[peer.userID, default: 0] + bytes > options.maxMemoryPerUser {
            return "user \(peer.userID) would hold more than \(options.maxMemoryPerUser) bytes of segments"
        }
        if memory + bytes > options.maxMemory {
            return "the miniport would hold more than \(options.maxMemory) bytes of segments"
        }
        return nil
    }

    mutating func charge(_ peer: Peer, bytes: Int) {
        bindingsPerProcess[peer.processID, default: 0] += 1
        bindingsPerUser[peer.userID, default: 0] += 1
        memoryPerUser[peer.userID, default: 0] += bytes
        memory += bytes
    }

    mutating func release(_ peer: Peer, bytes: Int) {
        func lower<Key: Hashable>(_ table: inout [Key: Int], _ key: Key, by amount: Int) {
            let left = table[key, default: 0] - amount
            table[key] = left > 0 ? left : nil
        }
        lower(&bindingsPerProcess, peer.processID, by: 1)
        lower(&bindingsPerUser, peer.userID, by: 1)
        lower(&memoryPerUser, peer.userID, by: bytes)
        memory -= bytes
    }
}

/// The control thread: accepts protocols, opens and closes their bindings, answers statistics, and notices
/// a protocol's death at once (its socket closes). Nothing a client does can make it wait: every socket is
/// non-blocking, each connection gets a bounded share of a turn, and output is bounded.
struct ControlPlane {
    let miniport: Miniport
    var connections: [Connection] = []
    var nextBindingID: UInt64 = 1
    var budget = Budget()
    /// Most connections (pending answers and open bindings alike); beyond, new ones are closed at once.
    let connectionLimit: Int
    /// A descriptor held back for `EMFILE`: closed to accept (and close) one connection, then reopened.
    var reserve: CInt = -1
    /// No accept before this (monotonic ns): back-off after `EMFILE` and other accept failures.
    var acceptResumes: UInt64 = 0
    var acceptPause: UInt64 = 0
    var counters = ControlCounters() {
        didSet { miniport.controlCounters.withLock { $0 = counters } }  // for the metrics; changes are rare
    }
    var acceptLog = LogLimiter(burst: 5)
    var clientLog = LogLimiter(burst: 10)

    /// Answers waiting per connection; one more and the client is dropped (it is not reading).
    static let outputLimit = 4
    /// How long a connection's output may stay blocked before the client is dropped.
    static let outputStall: UInt64 = 500_000_000
    /// Messages read from one connection per turn, so one flooding client cannot starve the others.
    static let readsPerTurn = 8
    /// Connections accepted per turn.
    static let acceptsPerTurn = 64
    /// Descriptors kept free below the limit for segments, the reserve and the rest of the process.
    static let descriptorHeadroom = 24

    init(miniport: Miniport) {
        self.miniport = miniport
        connectionLimit = Self.connectionLimit(miniport.options.maxConnections)
        reserve = Self.openReserve()
    }

    static func connectionLimit(_ configured: Int?) -> Int {
        if let configured { return configured }
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 4096 }
        let soft = Int(clamping: min(limit.rlim_cur, 1 << 20))
        return max(1, min(4096, soft - descriptorHeadroom))
    }

    static func openReserve() -> CInt { Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC) }

    /// The descriptors of one `poll`, kept between turns.
    var entries: [pollfd] = []

    mutating func run() {
        defer {
            miniport.controlDone.store(true, ordering: .sequentiallyConsistent)
            if reserve >= 0 { close(reserve) }
        }
        while !miniport.dataPlaneDone.load(ordering: .sequentiallyConsistent) {
            let now = ProcessControl.monotonicNanoseconds()
            let stopping = miniport.stopRequested.load(ordering: .sequentiallyConsistent)
            let listening = !stopping && now >= acceptResumes
            entries.removeAll(keepingCapacity: true)  // reused: a wake allocates nothing
            entries.append(pollfd(fd: miniport.controlWake.read, events: Int16(POLLIN), revents: 0))
            entries.append(pollfd(fd: listening ? miniport.listener.descriptor : -1, events: Int16(POLLIN), revents: 0))
            var waitingOutput = false
            for connection in connections {
                var events = Int16(0)
                if !connection.closeAfterOutput { events |= Int16(POLLIN) }
                if !connection.output.isEmpty {
                    events |= Int16(POLLOUT)
                    waitingOutput = true
                }
                entries.append(pollfd(fd: connection.socket.descriptor, events: events, revents: 0))
            }
            // Wake for the next deadline: a back-off's end or a stalled output's limit.
            var timeout: Int32 = 1000
            if waitingOutput { timeout = 50 }
            if !stopping && now < acceptResumes {
                timeout = min(timeout, Int32(clamping: (acceptResumes - now) / 1_000_000 + 1))
            }
            _ = poll(&entries, nfds_t(entries.count), timeout)
            if entries[0].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(miniport.controlWake.read, &drain, drain.count) > 0 {}
            }
            // First what the data thread reports (closes done, violators), then each client's share.
            settleDataPlaneReports()
            for (i, connection) in connections.enumerated() {
                let revents = Int32(entries[i + 2].revents)
                guard revents != 0, !connection.dropped else { continue }
                if revents & Int32(POLLOUT) != 0 { flush(connection) }
                if revents & Int32(POLLIN | POLLHUP | POLLERR) != 0 { serve(connection) }
            }
            let checked = ProcessControl.monotonicNanoseconds()
            for connection in connections where !connection.dropped {
                if let since = connection.blockedSince, checked &- since > Self.outputStall {
                    disconnect(connection, "it has not read its answers for \(Self.outputStall / 1_000_000) ms")
                } else if connection.closeAfterOutput && connection.output.isEmpty {
                    drop(connection)
                }
            }
            if connections.contains(where: \.dropped) {
                connections.removeAll { $0.dropped }
            }
            if entries[1].revents != 0 { acceptSome() }
        }
        // The data plane has completed and returned everything: now the protocols may see the sockets close.
        for connection in connections { drop(connection) }
        connections.removeAll()
    }

    /// Answers the closes the data thread carried out, and drops the connections of bindings it closed.
    mutating func settleDataPlaneReports() {
        let disconnect = miniport.toDisconnect.withLock { list in
            defer { list.removeAll() }
            return list
        }
        let removed = miniport.removed.withLock { list in
            defer { list.removeAll() }
            return list
        }
        guard !disconnect.isEmpty || !removed.isEmpty else { return }
        for connection in connections where !connection.dropped {
            if let id = connection.closingBinding, removed.contains(id) {
                connection.closingBinding = nil
                send(.closed(status: .success), on: connection)
                connection.closeAfterOutput = true
            } else if let id = connection.binding, disconnect.contains(id) {
                connection.binding = nil  // the data thread already removed it
                drop(connection)
            }
        }
    }

    // MARK: accepting

    mutating func acceptSome() {
        for _ in 0..<Self.acceptsPerTurn {
            let socket: ControlSocket?
            do {
                socket = try miniport.listener.accept()
            } catch {
                acceptFailed(error)
                return
            }
            guard let socket else {
                acceptPause = 0
                return
            }
            guard connections.count < connectionLimit else {
                counters.connectionsRefused += 1
                Self.log(miniport.logger, &acceptLog, "refusing a connection: \(connectionLimit) are open (the most)")
                continue  // closed as it goes
            }
            let peer: Peer
            do {
                try socket.setNonBlocking()
                let credentials = try socket.peerCredentials()
                peer = Peer(processID: credentials.processID, userID: credentials.userID)
            } catch {
                Self.log(miniport.logger, &acceptLog, "refusing a connection: \(error)")
                continue
            }
            connections.append(Connection(socket, peer: peer))
        }
    }

    /// Out of descriptors (or kernel memory): shed one waiting connection through the reserve so the
    /// backlog does not keep the listener readable, and wait before trying again (no busy loop).
    mutating func acceptFailed(_ error: SystemError) {
        let code = error.errno.rawValue
        counters.acceptFailures += 1
        if code == EMFILE || code == ENFILE {
            if reserve >= 0 {
                close(reserve)
                reserve = -1
            }
            if let shed = try? miniport.listener.accept() {
                counters.connectionsRefused += 1
                _ = consume shed
            }
            reserve = Self.openReserve()
        }
        acceptPause = min(max(acceptPause * 2, 10_000_000), 1_000_000_000)
        acceptResumes = ProcessControl.monotonicNanoseconds() &+ acceptPause
        Self.log(miniport.logger, &acceptLog, "accept: \(error); not accepting for \(acceptPause / 1_000_000) ms")
    }

    // MARK: serving

    /// Reads a bounded number of messages from one readable connection.
    mutating func serve(_ connection: Connection) {
        for _ in 0..<Self.readsPerTurn {
            guard !connection.dropped, !connection.closeAfterOutput else { return }
            let received: ControlSocket.Received
            do {
                received = try connection.socket.receive(nonBlocking: true)
            } catch {
                drop(connection)
                return
            }
            switch consume received {
            case .nothing:
                return
            case .closed:
                drop(connection)
                return
            case .malformed:
                Self.log(
                    miniport.logger, &clientLog,
                    "process \(connection.peer.processID) sent a malformed message; dropping it")
                drop(connection)
                return
            case .message(let message, let fd):
                if fd >= 0 { close(fd) }  // protocols pass no descriptors
                handle(message, on: connection)
            }
        }
    }

    mutating func handle(_ message: ControlMessage, on connection: Connection) {
        switch message {
        case .open(let version, let adapter, let requested, _):
            // The process is the one the kernel names, never the one the message claims.
            guard connection.binding == nil, connection.closingBinding == nil else {
                return refuse(connection, .failure)
            }
            guard version == ControlMessage.version else { return refuse(connection, .badVersion) }
            guard adapter == miniport.options.adapter else { return refuse(connection, .adapterNotFound) }
            guard !miniport.stopRequested.load(ordering: .relaxed) else { return refuse(connection, .closing) }
            guard miniport.bindingCount.load(ordering: .relaxed) < MultiWait.limit - 1 else {
                return refuse(connection, .resources)
            }
            open(connection, requested: requested)
        case .close:
            // Asked again while the first close is still being carried out: the one answer comes later.
            if connection.closingBinding != nil { return }
            guard let id = connection.binding else {
                send(.closed(status: .success), on: connection)
                connection.closeAfterOutput = true
                return
            }
            // NdisCloseAdapter completes only when the miniport holds nothing of the binding any more: the
            // answer waits for the data thread's removal (which cancels and returns everything first).
            connection.binding = nil
            connection.closingBinding = id
            miniport.enqueue(.remove(id, protocolAlive: true))
        case .queryStatistics:
            var statistics = miniport.statistics.withLock { $0 }
            counters.apply(to: &statistics)
            send(.statistics(statistics), on: connection)
        case .queryAdapter:
            send(.adapter(miniport.adapterInfo()), on: connection)
        case .queryBinding(let after):
            // The smallest id above `after`: a cursor that holds while bindings come and go.
            let next = miniport.bindingStatistics.withLock { list in
                list.lazy.filter { $0.id > after }.min { $0.id < $1.id }
            }
            send(next.map { .binding($0) } ?? .noMoreBindings, on: connection)
        case .opened, .closed, .statistics, .adapter, .binding, .noMoreBindings:
            refuse(connection, .failure)
        }
    }

    mutating func refuse(_ connection: Connection, _ status: NDISStatus) {
        send(.opened(status: status, bindingID: 0, granted: BindingConfiguration()), on: connection)
        if connection.binding == nil && connection.closingBinding == nil { connection.closeAfterOutput = true }
    }

    /// Creates the binding's segment, removes its name, and hands its descriptor to the protocol: from then on
    /// it exists only as the two mappings, so nothing can be left behind in /dev/shm. (Only a miniport killed
    /// between create and unlink leaves a name; its successor removes it at start.)
    mutating func open(_ connection: Connection, requested: BindingConfiguration) {
        let granted = requested.clamped(to: miniport.options.limits)
        let bytes = granted.layout.totalSize
        let peer = connection.peer
        if let why = budget.refusal(peer, bytes: bytes, miniport.options) {
            counters.opensOverLimit += 1
            Self.log(
                miniport.logger, &clientLog,
                "refusing an open by process \(peer.processID) (user \(peer.userID)): \(why)")
            return refuse(connection, .resources)
        }
        let id = nextBindingID
        do {
            let segment = try SharedSegment.create(
                prefix: Miniport.segmentPrefix(adapter: miniport.options.adapter),
                layout: granted.layout
            )
            var views: [Region: UnsafeMutableRawBufferPointer] = [:]
            for region in segment.header.regions { views[region] = segment.bytes(of: region) }
            let regions = try BindingRegions.initialize(header: segment.header, configuration: granted) { views[$0]! }
            let fd = try segment.openDescriptor()
            // Unlink before the reply: once the protocol can use the binding, no name is left to leak.
            segment.unlinkName()
            // The descriptor now belongs to the answer (sent at once, or queued and closed when sent or dropped).
            send(.opened(status: .success, bindingID: id, granted: granted), on: connection, passing: fd)
            guard !connection.dropped else { return }
            nextBindingID += 1
            connection.binding = id
            connection.charge = bytes
            budget.charge(peer, bytes: bytes)
            miniport.bindingCount.wrappingIncrement(ordering: .relaxed)
            let resources = BindingResources(
                id: id, segment: segment, regions: regions, processID: peer.processID, userID: peer.userID)
            miniport.enqueue(.add(resources))
        } catch {
            Self.log(miniport.logger, &clientLog, "opening a binding for process \(peer.processID): \(error)")
            refuse(connection, .resources)
        }
    }

    // MARK: output

    /// Sends at once if nothing is queued and the socket takes it; queues it otherwise; drops a client whose
    /// queue is full. Takes ownership of `fd`.
    mutating func send(_ message: ControlMessage, on connection: Connection, passing fd: CInt = -1) {
        guard !connection.dropped else {
            if fd >= 0 { close(fd) }
            return
        }
        let bytes = message.encoded()
        if connection.output.isEmpty {
            switch connection.socket.trySend(bytes, passing: fd) {
            case .sent:
                if fd >= 0 { close(fd) }
                return
            case .wouldBlock:
                break
            case .failed:
                if fd >= 0 { close(fd) }
                drop(connection)
                return
            }
        }
        guard connection.output.count < Self.outputLimit else {
            if fd >= 0 { close(fd) }
            disconnect(connection, "\(Self.outputLimit) answers wait unread")
            return
        }
        connection.output.append((bytes, fd))
        if connection.blockedSince == nil { connection.blockedSince = ProcessControl.monotonicNanoseconds() }
    }

    /// Writes what the queue holds while the socket takes it.
    mutating func flush(_ connection: Connection) {
        while let first = connection.output.first {
            switch connection.socket.trySend(first.bytes, passing: first.descriptor) {
            case .sent:
                if first.descriptor >= 0 { close(first.descriptor) }
                connection.output.removeFirst()
                connection.blockedSince = connection.output.isEmpty ? nil : ProcessControl.monotonicNanoseconds()
            case .wouldBlock:
                return
            case .failed:
                drop(connection)
                return
            }
        }
    }

    // MARK: closing

    /// Drops a client that does not keep up, counted and (rate-limited) logged.
    mutating func disconnect(_ connection: Connection, _ why: String) {
        counters.connectionsDropped += 1
        Self.log(miniport.logger, &clientLog, "dropping the connection of process \(connection.peer.processID): \(why)")
        drop(connection)
    }

    /// Closes a connection at the end of the turn: its binding (if any) goes as a dead protocol's, and its
    /// budget comes back.
    mutating func drop(_ connection: Connection) {
        guard !connection.dropped else { return }
        connection.dropped = true
        if let id = connection.binding {
            connection.binding = nil
            miniport.enqueue(.remove(id, protocolAlive: false))
        }
        if let bytes = connection.charge {
            connection.charge = nil
            budget.release(connection.peer, bytes: bytes)
        }
    }

    /// Logs what a client caused, at most a burst a second (the rest is counted in one line).
    static func log(_ logger: Logger, _ limiter: inout LogLimiter, _ line: String) {
        if limiter.admit({ logger.warning("\($0)") }) { logger.warning("\(line)") }
    }
}

/// What the control plane counts about its clients (reported with the adapter's statistics).
struct ControlCounters: Sendable {
    var connectionsRefused: UInt64 = 0
    var connectionsDropped: UInt64 = 0
    var opensOverLimit: UInt64 = 0
    var acceptFailures: UInt64 = 0

    func apply(to statistics: inout AdapterStatistics) {
        statistics.connectionsRefused = connectionsRefused
        statistics.connectionsDropped = connectionsDropped
        statistics.opensOverLimit = opensOverLimit
    }
}
