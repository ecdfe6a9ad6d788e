import Glibc
import Logging
import RingportCore
import RingportSystem

/// A connection of the control plane, with the binding it opened (if any).
final class Connection {
    let socket: ControlSocket
    var binding: UInt64?
    /// The protocol asked to close this binding; `closed` goes out once the data thread let go of it.
    var closingBinding: UInt64?
    init(_ socket: consuming ControlSocket) { self.socket = socket }
}

/// The control thread: accepts protocols, opens and closes their bindings, answers statistics, and notices
/// a protocol's death at once (its socket closes).
struct ControlPlane {
    let miniport: Miniport
    var connections: [Connection] = []
    var nextBindingID: UInt64 = 1

    init(miniport: Miniport) { self.miniport = miniport }

    mutating func run() {
        defer { miniport.controlDone.store(true, ordering: .sequentiallyConsistent) }
        while !miniport.dataPlaneDone.load(ordering: .sequentiallyConsistent) {
            var entries = [pollfd(fd: miniport.listener.descriptor, events: Int16(POLLIN), revents: 0)]
            entries += connections.map { pollfd(fd: $0.socket.descriptor, events: Int16(POLLIN), revents: 0) }
            entries.append(pollfd(fd: miniport.controlWake.read, events: Int16(POLLIN), revents: 0))
            _ = poll(&entries, nfds_t(entries.count), 1000)
            if entries.removeLast().revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(miniport.controlWake.read, &drain, drain.count) > 0 {}
            }
            let stopping = miniport.stopRequested.load(ordering: .sequentiallyConsistent)
            if entries[0].revents != 0 && !stopping { acceptAll() }
            var closed: [Int] = []
            for (i, entry) in entries.dropFirst().enumerated() where entry.revents != 0 {
                if !serve(connections[i]) { closed.append(i) }
            }
            let disconnect = miniport.toDisconnect.withLock { list in
                defer { list.removeAll() }
                return list
            }
            let removed = miniport.removed.withLock { list in
                defer { list.removeAll() }
                return list
            }
            for (i, connection) in connections.enumerated()
            where connection.closingBinding.map(removed.contains) == true {
                try? connection.socket.send(.closed(status: .success))
                closed.append(i)
            }
            for (i, connection) in connections.enumerated() where connection.binding.map(disconnect.contains) == true {
                closed.append(i)
            }
            for i in Set(closed).sorted(by: >) { connections.remove(at: i) }
        }
        // The data plane has completed and returned everything: now the protocols may see the sockets close.
        connections.removeAll()
    }

    mutating func acceptAll() {
        while true {
            do {
                guard let socket = try miniport.listener.accept() else { return }
                connections.append(Connection(socket))
            } catch {
                miniport.logger.error("accept: \(error)")
                return
            }
        }
    }

    /// Handles one readable connection; returns false when it is to be closed.
    mutating func serve(_ connection: Connection) -> Bool {
        let received: ControlSocket.Received
        do {
            received = try connection.socket.receive(nonBlocking: true)
        } catch {
            lost(connection)
            return false
        }
        switch consume received {
        case .nothing:
            return true
        case .closed:
            lost(connection)
            return false
        case .malformed:
            lost(connection)
            return false
        case .message(let message, let fd):
            if fd >= 0 { close(fd) }  // protocols pass no descriptors
            return handle(message, on: connection)
        }
    }

    func lost(_ connection: Connection) {
        guard let id = connection.binding else { return }
        connection.binding = nil
        miniport.enqueue(.remove(id, protocolAlive: false))
    }

    mutating func handle(_ message: ControlMessage, on connection: Connection) -> Bool {
        switch message {
        case .open(let version, let adapter, let requested, let pid):
            guard connection.binding == nil else { return refuse(connection, .failure) }
            guard version == ControlMessage.version else { return refuse(connection, .badVersion) }
            guard adapter == miniport.options.adapter else { return refuse(connection, .adapterNotFound) }
            guard !miniport.stopRequested.load(ordering: .relaxed) else { return refuse(connection, .closing) }
            guard miniport.bindingCount.load(ordering: .relaxed) < MultiWait.limit - 1 else {
                return refuse(connection, .resources)
            }
            return open(connection, requested: requested, processID: pid)
        case .close:
            // Asked again while the first close is still being carried out: the one answer comes later.
            if connection.closingBinding != nil { return true }
            guard let id = connection.binding else {
                try? connection.socket.send(.closed(status: .success))
                return false
            }
            // NdisCloseAdapter completes only when the miniport holds nothing of the binding any more: the
            // answer waits for the data thread's removal (which cancels and returns everything first).
            connection.binding = nil
            connection.closingBinding = id
            miniport.enqueue(.remove(id, protocolAlive: true))
            return true
        case .queryStatistics:
            let statistics = miniport.statistics.withLock { $0 }
            try? connection.socket.send(.statistics(statistics))
            return true
        case .opened, .closed, .statistics:
            return refuse(connection, .failure)
        }
    }

    func refuse(_ connection: Connection, _ status: NDISStatus) -> Bool {
        try? connection.socket.send(.opened(status: status, bindingID: 0, granted: BindingConfiguration()))
        return connection.binding != nil
    }

    /// Creates the binding's segment, removes its name, and hands its descriptor to the protocol: from then on
    /// it exists only as the two mappings, so nothing can be left behind in /dev/shm. (Only a miniport killed
    /// between create and unlink leaves a name; its successor removes it at start.)
    mutating func open(_ connection: Connection, requested: BindingConfiguration, processID: Int32) -> Bool {
        let granted = requested.clamped(to: miniport.options.limits)
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
            defer { close(fd) }
            // Unlink before the reply: once the protocol can use the binding, no name is left to leak.
            segment.unlinkName()
            try connection.socket.send(.opened(status: .success, bindingID: id, granted: granted), passing: fd)
            nextBindingID += 1
            connection.binding = id
            miniport.bindingCount.wrappingIncrement(ordering: .relaxed)
            miniport.enqueue(.add(BindingResources(id: id, segment: segment, regions: regions, processID: processID)))
            return true
        } catch {
            miniport.logger.error("opening a binding for process \(processID): \(error)")
            return refuse(connection, .resources)
        }
    }
}
