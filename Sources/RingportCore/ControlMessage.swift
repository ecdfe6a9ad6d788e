/// The control protocol between a protocol process and the miniport (one `SOCK_SEQPACKET` message each
/// way per request). Binary, little-endian; every field is checked when decoded, since the peer wrote it.
public enum ControlMessage: Hashable, Sendable {
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

    /// The control protocol's version; `open` with another one is answered `BAD_VERSION`.
    public static let version: UInt32 = 3
    public static let maximumSize = 512
    static let magic: UInt32 = 0x5443_5052  // "RPCT"

    enum Kind: UInt32 {
        case open = 1
        case opened
        case close
        case closed
        case queryStatistics
        case statistics
    }

    public func encoded() -> [UInt8] {
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
        }
        return out.bytes
    }

    /// Decodes a message; nil if it is malformed in any way.
    public static func decode(_ bytes: [UInt8]) -> ControlMessage? {
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
public struct AdapterStatistics: Hashable, Sendable {
    public var bindings: UInt64 = 0
    public var bindingsOpened: UInt64 = 0
    public var bindingsReclaimed: UInt64 = 0
    public var packetsSent: UInt64 = 0
    public var bytesSent: UInt64 = 0
    public var packetsFailed: UInt64 = 0
    /// Packets a checking driver found out of order or with wrong bytes.
    public var verificationErrors: UInt64 = 0
    /// Packet descriptors currently held by the miniport over all bindings.
    public var packetsOutstanding: UInt64 = 0
    /// Packets indicated to receivers, and packets a `drop` policy discarded for want of a buffer.
    public var packetsReceived: UInt64 = 0
    public var packetsDropped: UInt64 = 0
    /// Send-completes the framework refused: the packet was not pending (completed twice, stale, or its
    /// binding gone).
    public var completionsRefused: UInt64 = 0
    /// Bindings closed because their protocol broke the ring contract.
    public var bindingsViolated: UInt64 = 0
    /// Times a lossless driver stopped waiting for a receiver that took nothing for its stall timeout (the
    /// frames it could not take are counted as its drops).
    public var receiversStalled: UInt64 = 0
    /// Connections the control plane closed at once (over its connection cap, or out of descriptors), and
    /// connections it dropped for not reading their answers.
    public var connectionsRefused: UInt64 = 0
    public var connectionsDropped: UInt64 = 0
    /// Opens refused with RESOURCES because they would break a per-process, per-user or total cap.
    public var opensOverLimit: UInt64 = 0

    static let fieldCount = 16
    public init() {}
    init(values: [UInt64]) {
        (bindings, bindingsOpened, bindingsReclaimed, packetsSent) = (values[0], values[1], values[2], values[3])
        (bytesSent, packetsFailed, verificationErrors, packetsOutstanding) = (
            values[4], values[5], values[6], values[7]
        )
        (packetsReceived, packetsDropped) = (values[8], values[9])
        (completionsRefused, bindingsViolated, receiversStalled) = (values[10], values[11], values[12])
        (connectionsRefused, connectionsDropped, opensOverLimit) = (values[13], values[14], values[15])
    }
    var values: [UInt64] {
        [
            bindings, bindingsOpened, bindingsReclaimed, packetsSent, bytesSent, packetsFailed, verificationErrors,
            packetsOutstanding, packetsReceived, packetsDropped, completionsRefused, bindingsViolated,
            receiversStalled, connectionsRefused, connectionsDropped, opensOverLimit,
        ]
    }
}
