// A client imports only `Ringport`: the types of its API that live in the lower layers come with it.
@_exported public import RingportCore

@_exported public import struct RingportSystem.RuntimeDirectory
@_exported public import struct RingportSystem.SystemError
