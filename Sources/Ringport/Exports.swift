// A protocol imports only `Ringport`: the types of its API that live in the lower layers come with it, and
// nothing else of those layers (the driver-side ring types are the driver SDK's, `RingportMiniport`).
@_exported public import struct RingportCore.BindingConfiguration
@_exported public import struct RingportCore.MediaSpecificInformation
@_exported public import struct RingportCore.NDISStatus
@_exported public import struct RingportCore.NetPacketLayout
@_exported public import enum RingportCore.NetRingRule
@_exported public import enum RingportCore.NetRingType
@_exported public import struct RingportCore.NetRingViolation
@_exported public import struct RingportCore.PacketFilter
@_exported public import struct RingportCore.PacketFlags
@_exported public import enum RingportCore.RingportVersion
@_exported public import enum RingportCore.WaitPolicy
@_exported public import struct RingportSystem.RuntimeDirectory
@_exported public import struct RingportSystem.SystemError
