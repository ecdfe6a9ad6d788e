/// An NDIS-style status: the value every completion, return and refusal carries.
///
/// A `RawRepresentable` struct rather than an enum, so a status from a newer peer survives a round trip.
@frozen
public struct NDISStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    @inlinable public static var success: NDISStatus { NDISStatus(rawValue: 0) }
    @inlinable public static var pending: NDISStatus { NDISStatus(rawValue: 0x0000_0103) }
    @inlinable public static var failure: NDISStatus { NDISStatus(rawValue: 0xC000_0001) }
    @inlinable public static var resources: NDISStatus { NDISStatus(rawValue: 0xC000_009A) }
    @inlinable public static var notSupported: NDISStatus { NDISStatus(rawValue: 0xC000_00BB) }
    @inlinable public static var closing: NDISStatus { NDISStatus(rawValue: 0xC001_0002) }
    @inlinable public static var badVersion: NDISStatus { NDISStatus(rawValue: 0xC001_0004) }
    @inlinable public static var adapterNotFound: NDISStatus { NDISStatus(rawValue: 0xC001_0006) }
    @inlinable public static var openFailed: NDISStatus { NDISStatus(rawValue: 0xC001_0007) }
    @inlinable public static var requestAborted: NDISStatus { NDISStatus(rawValue: 0xC001_000C) }
    @inlinable public static var invalidPacket: NDISStatus { NDISStatus(rawValue: 0xC001_000F) }
    @inlinable public static var adapterNotReady: NDISStatus { NDISStatus(rawValue: 0xC001_0011) }
    /// Not in the NDIS 5 headers we could read: a value of our own in the NDIS error range.
    @inlinable public static var invalidData: NDISStatus { NDISStatus(rawValue: 0xC001_0015) }

    @inlinable public var isSuccess: Bool { rawValue == 0 }

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
