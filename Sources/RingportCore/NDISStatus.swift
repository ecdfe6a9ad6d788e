/// An NDIS-style status: the value every completion, return and refusal carries.
///
/// A `RawRepresentable` struct rather than an enum, so a status from a newer peer survives a round trip.
@frozen
public struct NDISStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let success = NDISStatus(rawValue: 0)
    public static let pending = NDISStatus(rawValue: 0x0000_0103)
    public static let failure = NDISStatus(rawValue: 0xC000_0001)
    public static let resources = NDISStatus(rawValue: 0xC000_009A)
    public static let notSupported = NDISStatus(rawValue: 0xC000_00BB)
    public static let closing = NDISStatus(rawValue: 0xC001_0002)
    public static let badVersion = NDISStatus(rawValue: 0xC001_0004)
    public static let adapterNotFound = NDISStatus(rawValue: 0xC001_0006)
    public static let openFailed = NDISStatus(rawValue: 0xC001_0007)
    public static let requestAborted = NDISStatus(rawValue: 0xC001_000C)
    public static let invalidPacket = NDISStatus(rawValue: 0xC001_000F)
    public static let adapterNotReady = NDISStatus(rawValue: 0xC001_0011)
    /// Not in the NDIS 5 headers we could read: a value of our own in the NDIS error range.
    public static let invalidData = NDISStatus(rawValue: 0xC001_0015)

    public var isSuccess: Bool { rawValue == 0 }

    public var description: String {
        switch self {
        case .success: "SUCCESS"
        case .pending: "PENDING"
        case .failure: "FAILURE"
        case .resources: "RESOURCES"
        case .notSupported: "NOT_SUPPORTED"
        case .closing: "CLOSING"
        case .badVersion: "BAD_VERSION"
        case .adapterNotFound: "ADAPTER_NOT_FOUND"
        case .openFailed: "OPEN_FAILED"
        case .requestAborted: "REQUEST_ABORTED"
        case .invalidPacket: "INVALID_PACKET"
        case .adapterNotReady: "ADAPTER_NOT_READY"
        case .invalidData: "INVALID_DATA"
        default: "NDIS_STATUS(0x\(String(rawValue, radix: 16, uppercase: true)))"
        }
    }
}
