/// An NDIS-style status: the value every completion, return and refusal carries.
///
/// A `RawRepresentable` struct rather than an enum, so a status from a newer peer survives a round trip.
@frozen
public struct NDISStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 32-bit `NDIS_STATUS` value.
    public var rawValue: UInt32
    /// The status with that value, known or not.
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `NDIS_STATUS_SUCCESS`: done, and it worked.
    @inlinable public static var success: NDISStatus { NDISStatus(rawValue: 0) }
    /// `NDIS_STATUS_PENDING`: the driver keeps the packet and completes it later.
    @inlinable public static var pending: NDISStatus { NDISStatus(rawValue: 0x0000_0103) }
    /// `NDIS_STATUS_FAILURE`: done, and it failed.
    @inlinable public static var failure: NDISStatus { NDISStatus(rawValue: 0xC000_0001) }
    /// `NDIS_STATUS_RESOURCES`: out of something (a pool, a cap, room in a ring); try again later.
    @inlinable public static var resources: NDISStatus { NDISStatus(rawValue: 0xC000_009A) }
    /// `NDIS_STATUS_NOT_SUPPORTED`.
    @inlinable public static var notSupported: NDISStatus { NDISStatus(rawValue: 0xC000_00BB) }
    /// `NDIS_STATUS_CLOSING`: the binding is closing, or the miniport went away; the packet was not sent.
    @inlinable public static var closing: NDISStatus { NDISStatus(rawValue: 0xC001_0002) }
    /// `NDIS_STATUS_BAD_VERSION`: the two sides speak different control-protocol versions.
    @inlinable public static var badVersion: NDISStatus { NDISStatus(rawValue: 0xC001_0004) }
    /// `NDIS_STATUS_ADAPTER_NOT_FOUND`: no miniport serves the adapter.
    @inlinable public static var adapterNotFound: NDISStatus { NDISStatus(rawValue: 0xC001_0006) }
    /// `NDIS_STATUS_OPEN_FAILED`: the binding could not be opened.
    @inlinable public static var openFailed: NDISStatus { NDISStatus(rawValue: 0xC001_0007) }
    /// `NDIS_STATUS_REQUEST_ABORTED`.
    @inlinable public static var requestAborted: NDISStatus { NDISStatus(rawValue: 0xC001_000C) }
    /// `NDIS_STATUS_INVALID_PACKET`: the packet could not be translated or read (a bad fragment, for example).
    @inlinable public static var invalidPacket: NDISStatus { NDISStatus(rawValue: 0xC001_000F) }
    /// `NDIS_STATUS_ADAPTER_NOT_READY`.
    @inlinable public static var adapterNotReady: NDISStatus { NDISStatus(rawValue: 0xC001_0011) }
    /// Not in the NDIS 5 headers we could read: a value of our own in the NDIS error range.
    @inlinable public static var invalidData: NDISStatus { NDISStatus(rawValue: 0xC001_0015) }

    /// Whether the status is `SUCCESS`.
    @inlinable public var isSuccess: Bool { rawValue == 0 }

    /// The status's NDIS name without the `NDIS_STATUS_` prefix (`SUCCESS`, `CLOSING`, ...), or its value in hex.
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
