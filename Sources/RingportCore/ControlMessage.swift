/// The control protocol between a protocol process and the miniport (one `SOCK_SEQPACKET` message each
/// way per request). Binary, little-endian; every field is checked when decoded, since the peer wrote it.
package enum ControlMessage: Hashable, Sendable {
    /// `NdisOpenAdapter`: the protocol asks for a binding of `adapter` with `requested` sizes.
    case open(version: UInt32, adapter: String, requested: BindingConfiguration, processID: Int32)
    /// The answer; on success the binding's segment descriptor travels with it (`SCM_RIGHTS`).
    case opened(status: NDISStatus, bindingID: UInt64, granted: BindingConfiguration)
    /// `NdisCloseAdapter`, sent once every send has completed.
    case close
    case closed(status: NDISStatus)
    /// Asks for the adapter's statistics.
    case queryStatistics
    case statistics(AdapterStatistics)
    /// Asks what serves the adapter (driver, miniport process, wait policy).
    case queryAdapter
    case adapter(AdapterInfo)
    /// Asks for the open binding with the smallest id above `after` (0: the first): answered `binding`, or
    /// `noMoreBindings`. One answer per question, so a listing never floods the connection's output.
    case queryBinding(after: UInt64)
    case binding(BindingStatistics)
    case noMoreBindings

    /// The control protocol's version; `open` with another one is answered `BAD_VERSION`.
    package static let version: UInt32 = 4
    package static let maximumSize = 512
    static let magic: UInt32 = 0x5443_5052  // "RPCT"

    enum Kind: UInt32 {
        case open = 1
        case opened
        case close
        case closed
        case queryStatistics
        case statistics
        case queryAdapter
        case adapter
        case queryBinding
        case binding
        case noMoreBindings
    }

    package func encoded() -> [UInt8] {
        var out = Encoder()
        out.u32(Self.magic)
        switch self {
        case .open(let version, let adapter, let requested, let processID):
            out.u32(Kind.open.rawValue)
            out.u32(version)
            out.string(adapter)
            out.configuration(requested)
            out.u32(UInt32(bitPattern: processID))
        case .opened(let status, let bindingID, let granted):
            out.u32(Kind.opened.rawValue)
            out.u32(status.rawValue)
            out.u64(bindingID)
            out.configuration(granted)
        case .close:
            out.u32(Kind.close.rawValue)
        case .closed(let status):
            out.u32(Kind.closed.rawValue)
            out.u32(status.rawValue)
        case .queryStatistics:
            out.u32(Kind.queryStatistics.rawValue)
        case .statistics(let s):
            out.u32(Kind.statistics.rawValue)
            for value in s.values { out.u64(value) }
        case .queryAdapter:
            out.u32(Kind.queryAdapter.rawValue)
        case .adapter(let info):
            out.u32(Kind.adapter.rawValue)
            out.string(info.driver)
            for value in info.values { out.u64(value) }
        case .queryBinding(let after):
            out.u32(Kind.queryBinding.rawValue)
            out.u64(after)
        case .binding(let b):
            out.u32(Kind.binding.rawValue)
            for value in b.values { out.u64(value) }
        case .noMoreBindings:
            out.u32(Kind.noMoreBindings.rawValue)
        }
        return out.bytes
    }

    /// Decodes a message; nil if it is malformed in any way.
    package static func decode(_ bytes: [UInt8]) -> ControlMessage? {
        var input = Decoder(bytes: bytes)
        guard bytes.count <= maximumSize, input.u32() == magic, let raw = input.u32(), let kind = Kind(rawValue: raw)
        else { return nil }
        let message: ControlMessage?
        switch kind {
        case .open:
            guard let version = input.u32(), let adapter = input.string(), let requested = input.configuration(),
                let pid = input.u32()
            else { return nil }
            message = .open(version: version, adapter: adapter, requested: requested, processID: Int32(bitPattern: pid))
        case .opened:
            guard let status = input.u32(), let id = input.u64(), let granted = input.configuration() else {
                return nil
            }
            message = .opened(status: NDISStatus(rawValue: status), bindingID: id, granted: granted)
        case .close:
            message = .close
        case .closed:
            guard let status = input.u32() else { return nil }
            message = .closed(status: NDISStatus(rawValue: status))
        case .queryStatistics:
            message = .queryStatistics
        case .statistics:
            var values: [UInt64] = []
            for _ in 0..<AdapterStatistics.fieldCount {
                guard let value = input.u64() else { return nil }
                values.append(value)
            }
            message = .statistics(AdapterStatistics(values: values))
        case .queryAdapter:
            message = .queryAdapter
        case .adapter:
            guard let driver = input.string(), let values = input.u64s(AdapterInfo.fieldCount) else { return nil }
            message = .adapter(AdapterInfo(driver: driver, values: values))
        case .queryBinding:
            guard let after = input.u64() else { return nil }
            message = .queryBinding(after: after)
        case .binding:
            guard let values = input.u64s(BindingStatistics.fieldCount) else { return nil }
            message = .binding(BindingStatistics(values: values))
        case .noMoreBindings:
            message = .noMoreBindings
        }
        return input.isAtEnd ? message : nil
    }

    struct Encoder {
        var bytes: [UInt8] = []
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func string(_ s: String) {
            let utf8 = Array(s.utf8.prefix(255))
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        mutating func configuration(_ c: BindingConfiguration) {
            for v in [c.packetCount, c.protocolReservedBytes, c.chunkCount, c.chunkSize, c.transmitRingSize] {
                u32(UInt32(clamping: v))
            }
            u32(UInt32(clamping: c.fragmentsPerPacket))
            u32(UInt32(clamping: c.receiveRingSize))
            u32(c.packetFilter.rawValue)
        }
    }

    struct Decoder {
        let bytes: [UInt8]
        var position = 0
        var isAtEnd: Bool { position == bytes.count }
        mutating func take(_ n: Int) -> ArraySlice<UInt8>? {
            guard n <= bytes.count - position else { return nil }
            defer { position += n }
            return bytes[position..<position + n]
        }
        mutating func u32() -> UInt32? {
            take(4).map { $0.reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        }
        mutating func u64() -> UInt64? {
            take(8).map { $0.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        }
        mutating func u64s(_ count: Int) -> [UInt64]? {
            var values: [UInt64] = []
            for _ in 0..<count {
                guard let value = u64() else { return nil }
                values.append(value)
            }
            return values
        }
        mutating func string() -> String? {
            guard let count = take(1)?.first, let utf8 = take(Int(count)) else { return nil }
            return String(validating: utf8, as: UTF8.self)
        }
        mutating func configuration() -> BindingConfiguration? {
            var values: [Int] = []
            for _ in 0..<8 {
                guard let v = u32() else { return nil }
                values.append(Int(v))
            }
            return BindingConfiguration(
                packetCount: values[0],
                protocolReservedBytes: values[1],
                chunkCount: values[2],
                chunkSize: values[3],
                transmitRingSize: values[4],
                fragmentsPerPacket: values[5],
                receiveRingSize: values[6],
                packetFilter: PacketFilter(rawValue: UInt32(values[7]))
            )
        }
    }
}

/// What a miniport reports about its adapter.
package struct AdapterStatistics: Hashable, Sendable {
    package var bindings: UInt64 = 0
    package var bindingsOpened: UInt64 = 0
    package var bindingsReclaimed: UInt64 = 0
    package var packetsSent: UInt64 = 0
    package var bytesSent: UInt64 = 0
    package var packetsFailed: UInt64 = 0
    /// Packets a checking driver found out of order or with wrong bytes.
    package var verificationErrors: UInt64 = 0
    /// Packet descriptors currently held by the miniport over all bindings.
    package var packetsOutstanding: UInt64 = 0
    /// Packets indicated to receivers, and packets a `drop` policy discarded for want of a buffer.
    package var packetsReceived: UInt64 = 0
    package var packetsDropped: UInt64 = 0
    /// Send-completes the framework refused: the packet was not pending (completed twice, stale, or its
    /// binding gone).
    package var completionsRefused: UInt64 = 0
    /// Bindings closed because their protocol broke the ring contract.
    package var bindingsViolated: UInt64 = 0
    /// Times a lossless driver stopped waiting for a receiver that took nothing for its stall timeout (the
    /// frames it could not take are counted as its drops).
    package var receiversStalled: UInt64 = 0
    /// Connections the control plane closed at once (over its connection cap, or out of descriptors), and
    /// connections it dropped for not reading their answers.
    package var connectionsRefused: UInt64 = 0
    package var connectionsDropped: UInt64 = 0
    /// Opens refused with RESOURCES because they would break a per-process, per-user or total cap.
    package var opensOverLimit: UInt64 = 0
    /// Bytes of the frames indicated to receivers.
    package var bytesReceived: UInt64 = 0

    static let fieldCount = 17
    package init() {}
    init(values: [UInt64]) {
        (bindings, bindingsOpened, bindingsReclaimed, packetsSent) = (values[0], values[1], values[2], values[3])
        (bytesSent, packetsFailed, verificationErrors, packetsOutstanding) = (
            values[4], values[5], values[6], values[7]
        )
        (packetsReceived, packetsDropped) = (values[8], values[9])
        (completionsRefused, bindingsViolated, receiversStalled) = (values[10], values[11], values[12])
        (connectionsRefused, connectionsDropped, opensOverLimit) = (values[13], values[14], values[15])
        bytesReceived = values[16]
    }
    var values: [UInt64] {
        [
            bindings, bindingsOpened, bindingsReclaimed, packetsSent, bytesSent, packetsFailed, verificationErrors,
            packetsOutstanding, packetsReceived, packetsDropped, completionsRefused, bindingsViolated,
            receiversStalled, connectionsRefused, connectionsDropped, opensOverLimit, bytesReceived,
        ]
    }
}

/// What serves an adapter: the driver's name, the miniport's process and the data thread's wait policy.
package struct AdapterInfo: Hashable, Sendable {
    /// The driver's `name` (at most 255 bytes of UTF-8 travel).
    package var driver = ""
    package var processID: UInt64 = 0
    /// `WaitPolicy.code` of the miniport's data thread.
    package var waitPolicy: UInt64 = 0
    /// 1 if the miniport verifies every ring transition (checked mode).
    package var checked: UInt64 = 0
    /// Waits of the data thread that ended in a sleep.
    package var sleeps: UInt64 = 0

    static let fieldCount = 4
    package init() {}
    init(driver: String, values: [UInt64]) {
        self.driver = String(decoding: Array(driver.utf8.prefix(255)), as: UTF8.self)
        (processID, waitPolicy, checked, sleeps) = (values[0], values[1], values[2], values[3])
    }
    var values: [UInt64] { [processID, waitPolicy, checked, sleeps] }
}

/// One binding as its miniport sees it. The framework's own counters are exact; the ring fills come from
/// the shared indices (each loaded once and checked), and what only the protocol knows (wait policy,
/// sleeps, pool use) is what the protocol published, clamped: display values, not to be trusted.
package struct BindingStatistics: Hashable, Sendable {
    package var id: UInt64 = 0
    /// The process and user that opened it, as the kernel named them (SO_PEERCRED).
    package var processID: UInt64 = 0
    package var userID: UInt64 = 0
    /// `BindingState`'s raw value as the miniport published it.
    package var state: UInt64 = 0
    /// Sent packets the miniport completed and returned, their bytes, and those completed with a failure.
    package var packetsSent: UInt64 = 0
    package var bytesSent: UInt64 = 0
    package var packetsFailed: UInt64 = 0
    /// Sent packets the miniport holds now.
    package var packetsOutstanding: UInt64 = 0
    /// Frames delivered to the binding, their bytes, and frames dropped for want of a buffer.
    package var packetsReceived: UInt64 = 0
    package var bytesReceived: UInt64 = 0
    package var packetsDropped: UInt64 = 0
    /// Elements between `BeginIndex` and `EndIndex` of each ring (the driver's share), and each ring's size.
    package var transmitPacketRingUsed: UInt64 = 0
    package var transmitPacketRingSize: UInt64 = 0
    package var transmitFragmentRingUsed: UInt64 = 0
    package var transmitFragmentRingSize: UInt64 = 0
    package var receivePacketRingUsed: UInt64 = 0
    package var receivePacketRingSize: UInt64 = 0
    package var receiveFragmentRingUsed: UInt64 = 0
    package var receiveFragmentRingSize: UInt64 = 0
    /// Pool use as the protocol published it (clamped to the pool sizes), and the pool sizes granted.
    package var packetsInUse: UInt64 = 0
    package var packetPoolSize: UInt64 = 0
    package var chunksInUse: UInt64 = 0
    package var chunkPoolSize: UInt64 = 0
    /// `WaitPolicy.code` of the protocol's waits (0: not published), and its waits that ended in a sleep.
    package var waitPolicy: UInt64 = 0
    package var sleeps: UInt64 = 0

    static let fieldCount = 25
    package init() {}
    init(values: [UInt64]) {
        (id, processID, userID, state, packetsSent) = (values[0], values[1], values[2], values[3], values[4])
        (bytesSent, packetsFailed, packetsOutstanding) = (values[5], values[6], values[7])
        (packetsReceived, bytesReceived, packetsDropped) = (values[8], values[9], values[10])
        (transmitPacketRingUsed, transmitPacketRingSize) = (values[11], values[12])
        (transmitFragmentRingUsed, transmitFragmentRingSize) = (values[13], values[14])
        (receivePacketRingUsed, receivePacketRingSize) = (values[15], values[16])
        (receiveFragmentRingUsed, receiveFragmentRingSize) = (values[17], values[18])
        (packetsInUse, packetPoolSize, chunksInUse, chunkPoolSize) = (values[19], values[20], values[21], values[22])
        (waitPolicy, sleeps) = (values[23], values[24])
    }
    var values: [UInt64] {
        [
            id, processID, userID, state, packetsSent, bytesSent, packetsFailed, packetsOutstanding, packetsReceived,
            bytesReceived, packetsDropped, transmitPacketRingUsed, transmitPacketRingSize, transmitFragmentRingUsed,
            transmitFragmentRingSize, receivePacketRingUsed, receivePacketRingSize, receiveFragmentRingUsed,
            receiveFragmentRingSize, packetsInUse, packetPoolSize, chunksInUse, chunkPoolSize, waitPolicy, sleeps,
        ]
    }
}
