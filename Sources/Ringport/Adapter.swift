import Glibc
public import RingportCore
public import RingportSystem

/// A binding to a miniport's adapter (`NdisOpenAdapter` → `NdisBindingHandle`): its packet and buffer pools,
/// its transmit queue, and its control connection.
///
/// Not thread-safe: one thread uses a binding at a time. Everything the library keeps about packets (owner,
/// generation, buffer chains, which descriptor sits in which ring slot) lives in this process, so a
/// misbehaving miniport can corrupt only data, never this process's bookkeeping; the copies in the segment
/// are for the miniport's benefit.
public final class Adapter {
    /// The adapter's name, as given to `open` (for example `ringport0`).
    public let name: String
    /// The miniport's id for this binding, unique among the bindings it serves (as `ringport stat` shows it).
    public let bindingID: UInt64
    /// What the miniport granted: pool sizes, ring sizes, chunk size and packet filter (at most what was asked).
    public let configuration: BindingConfiguration
    let segment: SharedSegment
    let regions: BindingRegions
    let socket: ControlSocket

    @exclusivity(unchecked) var transmit: OSRingQueue
    /// The most fragments one transmit packet may name.
    let transmitFragmentLimit: Int
    // Per packet descriptor.
    let owner: LocalTable<PacketOwner>
    @exclusivity(unchecked) var generation: [UInt32]
    @exclusivity(unchecked) var chainHead: [UInt32]
    @exclusivity(unchecked) var chainTail: [UInt32]
    @exclusivity(unchecked) var chainCount: [UInt32]
    @exclusivity(unchecked) var chainLength: [UInt32]
    @exclusivity(unchecked) var freePacketList: [Int32]
    // Per buffer (= chunk).
    @exclusivity(unchecked) var bufferNext: [UInt32]
    @exclusivity(unchecked) var bufferOffset: [UInt32]
    @exclusivity(unchecked) var bufferLength: [UInt32]
    @exclusivity(unchecked) var freeBufferList: [Int32]
    // Per transmit packet-ring slot: the descriptor it carries, and whether it went in with Ignore.
    let slotDescriptor: LocalTable<Int32>
    let slotIgnored: LocalTable<Bool>
    @exclusivity(unchecked) var receive: OSRingQueue
    /// Per receive fragment-ring slot: the chunk this side posted there (trusted, unlike the element).
    @exclusivity(unchecked) var receiveSlotChunk: [Int32]
    /// Receive buffers neither posted nor held by the protocol.
    @exclusivity(unchecked) var receiveFreeChunks: [Int32] = []
    @exclusivity(unchecked) var receiveIndicatedSlots: [Int32] = []
    /// The packets of the receive batch being handed out, and whether a batch is being handed out (returns
    /// then wait for its end, to be posted together).
    @exclusivity(unchecked) var receiveBatch: [ReceivedEntry] = []
    @exclusivity(unchecked) var receiveBatchOpen = false
    /// Tells the batch being handed out from earlier ones (a `ReceivedBatch` is usable only in its handler).
    @exclusivity(unchecked) var receiveBatchSerial: UInt64 = 0
    /// Received packets the miniport returned with fields that do not fit (dropped, buffer reused).
    public internal(set) var malformedReceives = 0
    /// Sent, not yet in the ring (it was full), in send order.
    @exclusivity(unchecked) var backlog: LocalQueue<Int32>
    /// Completions decided here (foreign packet, closing), delivered by the next poll.
    @exclusivity(unchecked) var localCompletions: [(RawPacket, NDISStatus)] = []
    /// Packets given to the miniport (ring or backlog) and not completed yet.
    @exclusivity(unchecked) public internal(set) var outstandingSends = 0
    /// Whether the binding is open, closing or closed, and why it closed.
    @exclusivity(unchecked) public internal(set) var state: State = .open
    /// Handle misuses the runtime checks caught (such handles are dropped, not sent).
    public internal(set) var misuses: [PacketMisuse] = []
    @exclusivity(unchecked) var lastLivenessCheck: UInt64 = 0
    /// Handles (`Packet`, `Buffer`, `ReceivedPacket`, and the raw packets of arrays and pending completions)
    /// alive: while there are any, the binding holds one reference to itself, so no handle outlives it,
    /// and handles themselves are not reference-counted. A plain count: one thread uses a binding.
    @exclusivity(unchecked) var liveHandles = 0
    /// What this binding's waits do when nothing has come (`waitForCompletions`, `waitForReceives`).
    public var waitPolicy: WaitPolicy = .default {
        didSet { regions.control.setProtocolStatistic(.waitPolicy, waitPolicy.code) }  // for `ringport stat`
    }
    /// Completion batches until pool use is published again (`publishStatistics`).
    @exclusivity(unchecked) var poolPublishCountdown = 1
    /// The adaptive spin's learned budget, and how many waits ended in a sleep.
    @exclusivity(unchecked) var spinner = AdaptiveSpin()
    /// Set when the miniport's end of the control socket closes; nil if no watch could be set up.
    let hangup: (id: UInt64, flag: HangupWatcher.Flag)?

    /// The life of a binding: open, then closing (while `close` waits), then closed.
    public enum State: Equatable, Sendable {
        /// Sends go to the miniport.
        case open
        /// `close` is waiting for outstanding sends; new sends complete with `CLOSING`.
        case closing
        /// Closed: by `close`, or because the miniport went away or broke the contract.
        case closed(reason: String)
    }

    /// Opens a binding to the adapter `name` served by a miniport in `directory` (`NdisOpenAdapter`).
    public static func open(
        _ name: String,
        configuration: BindingConfiguration = BindingConfiguration(),
        directory: RuntimeDirectory = RuntimeDirectory(),
        checked: Bool = NetRingChecking.isEnabledByDefault,
        timeoutSeconds: Double = 5,
        waitPolicy: WaitPolicy = .default
    ) throws(AdapterError) -> Adapter {
        guard RuntimeDirectory.isValidAdapterName(name) else { throw .invalidArgument("bad adapter name \"\(name)\"") }
        let path = directory.socketPath(adapter: name)
        // Another user's directory at our default path would be a fake miniport waiting for us.
        do { try directory.checkForClient() } catch { throw .openFailed(error.description) }
        let socket: ControlSocket
        // One deadline for the connect and the answer: a wedged miniport costs `timeoutSeconds`, no more.
        let deadline = ProcessControl.monotonicNanoseconds() + UInt64(max(0, timeoutSeconds) * 1e9)
        do {
            socket = try ControlSocket.connect(path: path, timeout: timeoutSeconds)
        } catch {
            if [.noSuchFileOrDirectory, .connectionRefused].contains(error.errno) {
                throw .adapterNotFound(name: name, socketPath: path)
            }
            throw .openFailed(error.description)
        }
        let request = ControlMessage.open(
            version: ControlMessage.version,
            adapter: name,
            requested: configuration,
            processID: getpid()
        )
        do { try socket.send(request) } catch { throw .openFailed(error.description) }
        let left = deadline &- min(deadline, ProcessControl.monotonicNanoseconds())
        guard socket.isReadable(waitingMilliseconds: Int32(clamping: (left + 999_999) / 1_000_000)) else {
            throw .openFailed("the miniport did not answer within \(timeoutSeconds) s")
        }
        let received: ControlSocket.Received
        do { received = try socket.receive() } catch { throw .openFailed(error.description) }
        guard case .message(let reply, let fd) = consume received else {
            throw .openFailed("the miniport closed the connection or answered garbage")
        }
        guard case .opened(let status, let bindingID, let granted) = reply else {
            if fd >= 0 { Glibc.close(fd) }
            throw .openFailed("unexpected reply \(reply)")
        }
        guard status == .success, fd >= 0 else {
            if fd >= 0 { Glibc.close(fd) }
            switch status {
            case .badVersion: throw .badVersion
            case .resources: throw .resources("the miniport could not create the binding")
            case .adapterNotFound: throw .adapterNotFound(name: name, socketPath: path)
            case .closing: throw .closing
            default: throw .openFailed("the miniport answered \(status)")
            }
        }
        let segment = try adoptSegment(fd, name: "binding \(bindingID) of \(name)")
        let regions = try attachRegions(segment)
        // The segment records the geometry; the packet filter is the miniport's to apply and lives only there.
        var geometry = granted
        geometry.packetFilter = regions.configuration.packetFilter
        guard regions.configuration == geometry else {
            throw .openFailed("the segment's configuration is not the one granted")
        }
        let adapter = Adapter(
            name: name,
            bindingID: bindingID,
            segment: segment,
            regions: regions,
            socket: socket,
            checked: checked
        )
        adapter.waitPolicy = waitPolicy
        return adapter
    }

    static func adoptSegment(_ fd: CInt, name: String) throws(AdapterError) -> SharedSegment {
        do {
            return try SharedSegment.adopt(descriptor: fd, name: name)
        } catch {
            // An unsealed segment could be truncated under us: not a binding's segment.
            if case .unsealed = error { throw .badSegment(error.description) }
            throw .openFailed(error.description)
        }
    }

    static func attachRegions(_ segment: borrowing SharedSegment) throws(AdapterError) -> BindingRegions {
        var views: [Region: UnsafeMutableRawBufferPointer] = [:]
        for region in segment.header.regions { views[region] = segment.bytes(of: region) }
        // The control block is read before the regions are checked against the configuration.
        guard let control = try? segment.header.region(.control), control.length >= ControlBlock.size else {
            throw .badSegment("the control region is missing or smaller than \(ControlBlock.size) bytes")
        }
        let regions: BindingRegions
        do {
            regions = try BindingRegions.attach(header: segment.header) { views[$0]! }
        } catch { throw .openFailed("binding segment: \(error)") }
        // A new binding's rings start empty: every index 0. Anything else would give this side a cursor, or
        // elements, it never posted.
        let rings = [
            ("transmit packet", regions.transmitPacketRing), ("transmit fragment", regions.transmitFragmentRing),
            ("receive packet", regions.receivePacketRing), ("receive fragment", regions.receiveFragmentRing),
        ]
        for (name, ring) in rings {
            let (begin, next, end) = (ring.loadBeginIndex(), ring.loadNextIndex(), ring.loadEndIndex())
            guard begin == 0, next == 0, end == 0 else {
                throw .badSegment("the new \(name) ring has indices \(begin)/\(next)/\(end), not 0/0/0")
            }
        }
        return regions
    }

    init(
        name: String,
        bindingID: UInt64,
        segment: consuming SharedSegment,
        regions: BindingRegions,
        socket: consuming ControlSocket,
        checked: Bool
    ) {
        let c = regions.configuration
        self.name = name
        self.bindingID = bindingID
        self.configuration = c
        self.segment = segment
        self.regions = regions
        hangup = HangupWatcher.shared.watch(socket: socket.descriptor, wake: regions.control.protocolWake)
        self.socket = socket
        transmit = OSRingQueue(
            packetRing: regions.transmitPacketRing,
            fragmentRing: regions.transmitFragmentRing,
            checked: checked
        )
        transmitFragmentLimit = min(c.fragmentsPerPacket, Int(regions.transmitFragmentRing.elementIndexMask))
        owner = LocalTable(repeating: .free, count: c.packetCount)
        generation = Array(repeating: 0, count: c.packetCount)
        chainHead = Array(repeating: BufferTable.none, count: c.packetCount)
        chainTail = Array(repeating: BufferTable.none, count: c.packetCount)
        chainCount = Array(repeating: 0, count: c.packetCount)
        chainLength = Array(repeating: 0, count: c.packetCount)
        freePacketList = (0..<Int32(c.packetCount)).reversed()
        bufferNext = Array(repeating: BufferTable.none, count: c.chunkCount)
        bufferOffset = Array(repeating: 0, count: c.chunkCount)
        bufferLength = Array(repeating: 0, count: c.chunkCount)
        freeBufferList = (0..<Int32(c.chunkCount)).reversed()
        receive = OSRingQueue(
            packetRing: regions.receivePacketRing,
            fragmentRing: regions.receiveFragmentRing,
            checked: checked
        )
        receiveSlotChunk = Array(repeating: 0, count: c.receiveRingSize)
        receiveBatch.reserveCapacity(c.receiveRingSize)
        receiveIndicatedSlots.reserveCapacity(c.receiveRingSize)
        slotDescriptor = LocalTable(repeating: -1, count: c.transmitRingSize)
        slotIgnored = LocalTable(repeating: false, count: c.transmitRingSize)
        backlog = LocalQueue(capacity: c.packetCount)  // a descriptor is in it once at most
        // Set aside the receive buffers and post them.
        for _ in 0..<receiveBufferCount {
            guard let chunk = freeBufferList.popLast() else { break }
            receiveFreeChunks.append(chunk)
        }
        postReceiveBuffers()
        publishStatistics()
    }

    /// Publishes what only this side knows (wait policy, sleeps, pool use) in the control block's protocol
    /// block, for `ringport stat`: plain stores, at sleeps and every few completion batches, never per packet.
    func publishStatistics() {
        let control = regions.control
        control.setProtocolStatistic(.waitPolicy, waitPolicy.code)
        control.setProtocolStatistic(.sleeps, spinner.sleeps)
        control.setProtocolStatistic(.packetsInUse, UInt64(packetPoolUsage))
        control.setProtocolStatistic(.chunksInUse, UInt64(max(0, bufferPoolUsage)))
    }

    deinit {
        // Before the socket closes and the segment is unmapped: the watcher must not wake a word that is gone.
        if let hangup { HangupWatcher.shared.unwatch(hangup.id, socket: socket.descriptor) }
    }

    // MARK: Pools

    /// `NdisAllocatePacket`: a zeroed descriptor with an empty chain; `RESOURCES` when the pool is used up.
    public func allocatePacket() throws(AdapterError) -> Packet {
        guard let index = freePacketList.popLast().map(Int.init) else {
            publishStatistics()  // a used-up pool is what `ringport stat` is asked about
            throw .resources("the packet pool (\(configuration.packetCount)) is used up")
        }
        generation[index] &+= 1
        owner[index] = .protocolSide
        let descriptor = regions.descriptors[index]
        descriptor.generation = generation[index]
        descriptor.owner = .protocolSide
        descriptor.flags = []
        descriptor.status = .success
        descriptor.clearOutOfBand()
        _ = descriptor.withProtocolReserved { $0.initializeMemory(as: UInt8.self, repeating: 0) }
        setChain(index, head: BufferTable.none, tail: BufferTable.none, count: 0, length: 0)
        return Packet(adapter: self, index: index, generation: generation[index])
    }

    /// A buffer of `length` bytes (at most the chunk size) in the data area; `RESOURCES` when none is free.
    public func allocateBuffer(length: Int) throws(AdapterError) -> Buffer {
        guard length >= 0 && length <= configuration.chunkSize else {
            throw .invalidArgument("buffer length \(length) exceeds the chunk size \(configuration.chunkSize)")
        }
        guard let index = freeBufferList.popLast().map(Int.init) else {
            publishStatistics()  // a used-up pool is what `ringport stat` is asked about
            throw .resources("the buffer pool (\(configuration.chunkCount)) is used up")
        }
        bufferOffset[index] = 0
        bufferLength[index] = UInt32(length)
        bufferNext[index] = BufferTable.none
        return Buffer(adapter: self, index: index)
    }

    /// `NdisPacketPoolUsage`: descriptors allocated (held by the protocol or the miniport).
    public var packetPoolUsage: Int { configuration.packetCount - freePacketList.count }
    /// Buffers allocated by the protocol (receive buffers, set aside at open, are not counted).
    public var bufferPoolUsage: Int { configuration.chunkCount - receiveBufferCount - freeBufferList.count }

    // MARK: Handles

    @inline(__always) func handleCreated() {
        if liveHandles == 0 { UncountedReference(self).retain() }
        liveHandles += 1
    }

    /// For the binding's own methods (their caller holds it): the last handle's drop releases it.
    @inline(__always) func handleDropped(_ count: Int = 1) {
        if handleDroppedKeepingReference(count) { UncountedReference(self).release() }
    }

    /// Drops `count` handles; true if they were the last, and the caller must then release the binding once,
    /// after it stopped using it (`BindingReference.dropHandle`).
    @inline(__always) func handleDroppedKeepingReference(_ count: Int = 1) -> Bool {
        precondition(count <= liveHandles, "handle count underflow")
        liveHandles -= count
        return liveHandles == 0 && count > 0
    }

    func checkHeld(_ index: Int, _ gen: UInt32) {
        precondition(generation[index] == gen && owner[index] == .protocolSide, "packet handle is stale or sent")
    }

    func freePacket(_ index: Int, generation gen: UInt32) {
        guard generation[index] == gen, owner[index] == .protocolSide else {
            misuses.append(PacketMisuse(kind: generation[index] == gen ? .alreadySent : .stale, descriptor: index))
            return
        }
        var buffer = chainHead[index]
        while buffer != BufferTable.none {
            let next = bufferNext[Int(buffer)]
            freeBuffer(Int(buffer))
            buffer = next
        }
        owner[index] = .free
        regions.descriptors[index].owner = .free
        freePacketList.append(Int32(index))
    }

    func freeBuffer(_ index: Int) {
        bufferNext[index] = BufferTable.none
        freeBufferList.append(Int32(index))
    }

    func reinitialize(_ index: Int) {
        var buffer = chainHead[index]
        while buffer != BufferTable.none {
            let next = bufferNext[Int(buffer)]
            freeBuffer(Int(buffer))
            buffer = next
        }
        setChain(index, head: BufferTable.none, tail: BufferTable.none, count: 0, length: 0)
        let descriptor = regions.descriptors[index]
        descriptor.flags = []
        descriptor.status = .success
        descriptor.clearOutOfBand()
    }

    // MARK: Chains (kept here, mirrored into the descriptor for the miniport)

    func setChain(_ index: Int, head: UInt32, tail: UInt32, count: UInt32, length: UInt32) {
        (chainHead[index], chainTail[index], chainCount[index], chainLength[index]) = (head, tail, count, length)
        let descriptor = regions.descriptors[index]
        descriptor.head = head
        descriptor.tail = tail
        descriptor.bufferCount = count
        descriptor.totalLength = length
    }

    func chain(_ buffer: Int, to index: Int, atFront: Bool) {
        let b = UInt32(buffer)
        let length = chainLength[index] + bufferLength[buffer]
        if chainHead[index] == BufferTable.none {
            bufferNext[buffer] = BufferTable.none
            setChain(index, head: b, tail: b, count: 1, length: length)
        } else if atFront {
            bufferNext[buffer] = chainHead[index]
            setChain(index, head: b, tail: chainTail[index], count: chainCount[index] + 1, length: length)
        } else {
            bufferNext[Int(chainTail[index])] = b
            bufferNext[buffer] = BufferTable.none
            setChain(index, head: chainHead[index], tail: b, count: chainCount[index] + 1, length: length)
        }
        regions.buffers[buffer].offset = bufferOffset[buffer]
        regions.buffers[buffer].length = bufferLength[buffer]
        regions.buffers[buffer].next = bufferNext[buffer]
        if !atFront && chainCount[index] > 1 {
            regions.buffers[Int(chainTail[index])].next = b
        }
    }

    func unchain(from index: Int, atFront: Bool) -> Int? {
        let head = chainHead[index]
        guard head != BufferTable.none else { return nil }
        let count = chainCount[index] - 1
        if count == 0 {
            setChain(index, head: BufferTable.none, tail: BufferTable.none, count: 0, length: 0)
            return Int(head)
        }
        if atFront {
            let next = bufferNext[Int(head)]
            let length = chainLength[index] - bufferLength[Int(head)]
            setChain(index, head: next, tail: chainTail[index], count: count, length: length)
            bufferNext[Int(head)] = BufferTable.none
            return Int(head)
        }
        var previous = head
        while bufferNext[Int(previous)] != chainTail[index] { previous = bufferNext[Int(previous)] }
        let tail = chainTail[index]
        bufferNext[Int(previous)] = BufferTable.none
        regions.buffers[Int(previous)].next = BufferTable.none
        setChain(index, head: head, tail: previous, count: count, length: chainLength[index] - bufferLength[Int(tail)])
        return Int(tail)
    }
}
