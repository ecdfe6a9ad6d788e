public import RingportCore
import RingportSystem

/// Why an adapter could not be opened, or a request on it failed: each with its NDIS status.
public enum AdapterError: Error, CustomStringConvertible {
    /// No miniport serves the adapter (no socket, or nobody listening).
    case adapterNotFound(name: String, socketPath: String)
    /// The miniport speaks another control-protocol version.
    case badVersion
    /// The miniport could not allocate the binding, or a pool is exhausted.
    case resources(String)
    /// The binding is closing or closed.
    case closing
    /// Opening failed for another reason (a system call, a bad segment, a refusal).
    case openFailed(String)
    /// The miniport handed over a segment that is not a fresh binding's (a ring not empty, a control block
    /// too small): the open is refused.
    case badSegment(String)
    /// The miniport broke the ring contract; the binding was closed.
    case ringViolation(NetRingViolation)
    /// An argument out of range (a bad adapter name, a buffer longer than a chunk).
    case invalidArgument(String)

    /// The NDIS status that stands for the error.
    public var status: NDISStatus {
        switch self {
        case .adapterNotFound: .adapterNotFound
        case .badVersion: .badVersion
        case .resources: .resources
        case .closing: .closing
        case .openFailed, .badSegment: .openFailed
        case .ringViolation: .invalidData
        case .invalidArgument: .failure
        }
    }

    /// The status's name and what went wrong, on one line.
    public var description: String {
        switch self {
        case .adapterNotFound(let name, let path): "ADAPTER_NOT_FOUND: no miniport serves \(name) (\(path))"
        case .badVersion: "BAD_VERSION: the miniport speaks another control-protocol version"
        case .resources(let what): "RESOURCES: \(what)"
        case .closing: "CLOSING: the binding is closing"
        case .openFailed(let why): "OPEN_FAILED: \(why)"
        case .badSegment(let why): "OPEN_FAILED: the binding segment is not a new binding's: \(why)"
        case .ringViolation(let violation): "the miniport broke the ring contract: \(violation)"
        case .invalidArgument(let what): "FAILURE: \(what)"
        }
    }
}

/// A misuse of a packet handle that the runtime checks caught (the handle was dropped, not sent).
public struct PacketMisuse: Hashable, Sendable, CustomStringConvertible {
    /// What was wrong with the handle.
    public enum Kind: String, Sendable {
        /// The handle's generation is not the descriptor's: it outlived its packet.
        case stale
        /// The descriptor is already with the miniport.
        case alreadySent
        /// A handle of another binding: a packet of binding A sent on B, or a buffer of A chained to a packet
        /// of B. Recorded on B, which is otherwise untouched; the handle goes back to A (the packet completes
        /// there with `INVALID_PACKET`, the buffer returns to A's pool).
        case foreignBinding
    }
    /// What was wrong with the handle.
    public let kind: Kind
    /// The index of the packet descriptor the handle named.
    public let descriptor: Int
    /// A misuse of `kind` on packet descriptor `descriptor`.
    public init(kind: Kind, descriptor: Int) {
        self.kind = kind
        self.descriptor = descriptor
    }
    /// The kind and the descriptor, on one line.
    public var description: String { "\(kind.rawValue) handle for packet descriptor \(descriptor)" }
}
