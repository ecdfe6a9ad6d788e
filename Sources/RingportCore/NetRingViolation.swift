/// A rule of the net-ring contract, as Driver Verifier checks it (Docs/Contract.md §1.2, §1.6, §1.10).
public enum NetRingRule: String, Sendable, CaseIterable {
    /// The driver moved `BeginIndex` past `EndIndex` (or backwards), returning elements it did not own.
    case driverMovedBeginPastEnd
    /// The driver moved `NextIndex` past `EndIndex` (or backwards).
    case driverMovedNextPastEnd
    /// The driver made a post iterator while its `NextIndex` lay outside `[BeginIndex, EndIndex]`.
    case driverNextOutsideRange
    /// The driver side wrote `EndIndex`, which only the OS writes.
    case driverWroteOSIndex
    /// The OS side wrote `BeginIndex` or `NextIndex`, which only the driver writes.
    case osWroteDriverIndex
    /// `EndIndex` moved backwards (or the OS filled the last slot): the OS took back owned elements.
    case osMovedEndBackward
    /// The driver changed an element outside `[BeginIndex, EndIndex)`.
    case driverChangedElementOutsideRange
    /// The driver changed `Ignore` on a transmit packet (only the OS sets it on transmit).
    case driverChangedIgnore
    /// The driver changed a transmit packet field other than `Scratch`.
    case driverChangedTransmitPacket
    /// The driver changed a transmit fragment field other than `Scratch`.
    case driverChangedTransmitFragment
    /// The driver changed the chunk or capacity of a receive buffer the OS attached.
    case driverChangedReceiveBuffer
    /// The OS changed an element inside the driver's range.
    case osChangedElementInsideDriverRange
    /// The OS tried to give the driver more than `NumberOfElements - 1` elements.
    case osOverfilledRing
    /// A posted packet names fragments the driver does not own (outside the fragment ring's
    /// `[BeginIndex, EndIndex)`), or more fragments than the ring holds.
    case osPacketFragmentsOutsideRange
    /// A returned receive packet names fragments outside the returned range, out of order, or none.
    case driverReturnedInvalidReceivePacket
    /// The driver returned a receive packet with `Ignore` and a buffer attached (`FragmentCount` not 0) or
    /// another field changed (Docs/Contract.md §1.10).
    case driverAttachedResourcesToIgnoredPacket
}

/// Which ring of a queue's collection (`NET_RING_TYPE`).
public enum NetRingType: String, Sendable {
    /// The packet ring or the fragment ring.
    case packet, fragment
}

/// A broken ring rule, named, with where it was seen.
public struct NetRingViolation: Error, Hashable, Sendable, CustomStringConvertible {
    /// The rule that was broken.
    public let rule: NetRingRule
    /// The ring it was broken in.
    public let ring: NetRingType
    /// The ring index where it was seen.
    public let index: UInt32
    /// What was seen, for the log.
    public let detail: String

    /// A violation of `rule` at `index` of `ring`.
    public init(_ rule: NetRingRule, ring: NetRingType, index: UInt32, _ detail: String) {
        self.rule = rule
        self.ring = ring
        self.index = index
        self.detail = detail
    }

    /// The rule's name, the ring, the index and the detail, on one line.
    public var description: String { "\(rule.rawValue) (\(ring) ring, index \(index)): \(detail)" }
}
