import FuzzSupport
import RingportCore

// Harness 1: `ControlMessage.decode` on arbitrary bytes (the miniport decodes what any local client sends,
// the library what the miniport answers). Whatever decodes re-encodes to bytes that decode to the same
// message, and a message never encodes past the size a receiver accepts.

func fuzzControlMessage(_ input: UnsafeRawBufferPointer) {
    let bytes = Array(input)
    guard let message = ControlMessage.decode(bytes) else { return }
    let encoded = message.encoded()
    guard encoded.count <= ControlMessage.maximumSize else {
        fatalError("\(message) encodes to \(encoded.count) bytes, more than \(ControlMessage.maximumSize)")
    }
    guard let again = ControlMessage.decode(encoded), again == message else {
        fatalError("\(message) does not survive a round trip: \(encoded)")
    }
    // Decoding is a function of the bytes: the canonical encoding is the input itself.
    guard encoded == bytes else { fatalError("\(message) re-encodes differently: \(bytes) -> \(encoded)") }
}

func controlMessageSeeds() -> [(name: String, bytes: [UInt8])] {
    var statistics = AdapterStatistics()
    statistics.bindings = 2
    statistics.packetsSent = 1000
    statistics.bindingsViolated = 1
    var info = AdapterInfo()
    info.driver = "hub"
    info.processID = 100
    info.waitPolicy = 2
    var binding = BindingStatistics()
    binding.id = 4
    binding.packetsSent = 10
    binding.transmitPacketRingSize = 512
    let messages: [(String, ControlMessage)] = [
        (
            "open",
            .open(
                version: ControlMessage.version, adapter: "ringport0", requested: BindingConfiguration(), processID: 42)
        ),
        ("open-small", .open(version: 1, adapter: "x", requested: BindingConfiguration(packetCount: 1), processID: -1)),
        ("opened", .opened(status: .success, bindingID: 7, granted: BindingConfiguration(receiveRingSize: 64))),
        ("opened-refused", .opened(status: .resources, bindingID: 0, granted: BindingConfiguration())),
        ("close", .close),
        ("closed", .closed(status: .closing)),
        ("query-statistics", .queryStatistics),
        ("statistics", .statistics(statistics)),
        ("query-adapter", .queryAdapter),
        ("adapter", .adapter(info)),
        ("query-binding", .queryBinding(after: 3)),
        ("binding", .binding(binding)),
        ("no-more-bindings", .noMoreBindings),
    ]
    return messages.map { ($0.0, $0.1.encoded()) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzControlMessage(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

#if !FUZZING
    @main
    struct ControlMessageReplay {
        static func main() {
            FuzzReplay.main(name: "fuzz-control-message", seeds: controlMessageSeeds, fuzzControlMessage)
        }
    }
#endif
