import Foundation
import Glibc
import Ringport
import RingportCore
import RingportMiniport
import RingportSystem

/// The framework run in this process, one deterministic turn at a time (`SteppedDataPlane`: what the data
/// thread's loop does), over bindings whose segments are real mappings. The harnesses write into those
/// segments between turns, and from inside the driver's calls through `DriverHook`.
package final class MiniportRig {
    package let plane: SteppedDataPlane
    package var context: MiniportContext { plane.context }
    /// Bindings in the order they were opened.
    package private(set) var bindings: [RigBinding] = []
    var nextID: UInt64 = 1

    package init(driver: any MiniportDriver, checked: Bool, budget: Int = 256) {
        plane = SteppedDataPlane(driver: driver, checked: checked, budget: budget)
    }

    /// Why each closed binding was closed: the rule it broke, or "closed" / "reclaimed".
    package var closed: [UInt64: String] { plane.closed }

    /// Creates a binding's segment as the control plane does and adds it to the framework; `descriptor`
    /// also opens a descriptor of it for a protocol (the caller closes it).
    package func open(configuration: BindingConfiguration, descriptor: Bool = false) throws -> (RigBinding, CInt) {
        let granted = configuration.clamped()
        let segment = try SharedSegment.create(prefix: "ringport=fuzz=", layout: granted.layout)
        var views: [Region: UnsafeMutableRawBufferPointer] = [:]
        for region in segment.header.regions { views[region] = segment.bytes(of: region) }
        let regions = try BindingRegions.initialize(header: segment.header, configuration: granted) { views[$0]! }
        let fd = descriptor ? try segment.openDescriptor() : -1
        segment.unlinkName()
        let ordered = segment.header.regions.map { views[$0]! }
        let id = nextID
        nextID += 1
        plane.add(id: id, segment: segment, regions: regions, processID: getpid())
        let binding = RigBinding(id: id, regions: regions, views: ordered)
        bindings.append(binding)
        return (binding, fd)
    }

    package func isOpen(_ id: UInt64) -> Bool { plane.isOpen(id) }

    @discardableResult
    package func turn() -> Bool { plane.turn() }

    /// The protocol asked to close (`protocolAlive`) or died.
    package func remove(_ id: UInt64, protocolAlive: Bool) { plane.remove(id, protocolAlive: protocolAlive) }

    /// Closes every binding, as a stopping miniport does.
    package func shutdown() {
        for binding in bindings { remove(binding.id, protocolAlive: true) }
    }
}

/// One binding of the rig: its regions and the raw bytes of every region of its segment (valid while the
/// rig lives: the framework keeps the segment mapped after it closed the binding).
package final class RigBinding {
    package let id: UInt64
    package let regions: BindingRegions
    /// The segment's regions in header order (control, descriptors, buffers, rings, data).
    package let views: [UnsafeMutableRawBufferPointer]

    init(id: UInt64, regions: BindingRegions, views: [UnsafeMutableRawBufferPointer]) {
        self.id = id
        self.regions = regions
        self.views = views
    }
}

/// A small geometry, so that a fuzz input reaches every slot, wrap and full ring within a few operations.
package let fuzzConfiguration = BindingConfiguration(
    packetCount: 16,
    protocolReservedBytes: 16,
    chunkCount: 16,
    chunkSize: 128,
    transmitRingSize: 8,
    fragmentsPerPacket: 2,
    receiveRingSize: 8
)
