import RingportCore
import RingportSystem

/// The data plane's loop one turn at a time, in the caller's thread, with no control plane: for the fuzz
/// harnesses (Fuzz/Sources/FuzzRig), which write into the segments between turns. Each `turn()` does what
/// one pass of `DataPlane.run` does: every binding's turn, the driver's poll, the index capture after it,
/// and closing the bindings that broke the contract.
package final class SteppedDataPlane {
    package let context: MiniportContext
    let checked: Bool
    let budget: Int
    var start = 0
    /// Why each removed binding went: the rule it broke, "closed" or "reclaimed".
    package private(set) var closed: [UInt64: String] = [:]
    /// Every binding's segment, kept mapped until this goes: a harness may still write into a closed
    /// binding's segment, as its protocol still can.
    var segments: [BindingResources] = []

    package init(driver: any MiniportDriver, checked: Bool, budget: Int) {
        context = MiniportContext(driver: driver) { _ in }
        self.checked = checked
        self.budget = budget
    }

    /// Adds a binding over `segment` (whose regions `initialize` wrote), as the data plane's `add` command.
    package func add(id: UInt64, segment: consuming SharedSegment, regions: BindingRegions, processID: Int32) {
        let resources = BindingResources(id: id, segment: segment, regions: regions, processID: processID)
        segments.append(resources)
        context.add(MiniportBinding(resources, checked: checked))
    }

    package func isOpen(_ id: UInt64) -> Bool { context.binding(id) != nil }

    /// One pass of the loop; returns whether anything moved or the driver has work left.
    @discardableResult
    package func turn() -> Bool {
        let (work, busy) = context.pass(budget: budget, start: &start)
        if !context.violations.isEmpty {
            let found = context.violations
            context.violations.removeAll()
            for (id, violation) in found where isOpen(id) {
                closed[id] = "\(violation)"
                context.remove(id, protocolAlive: true)
            }
        }
        return work > 0 || busy
    }

    /// The protocol closed the binding (`protocolAlive`) or died.
    package func remove(_ id: UInt64, protocolAlive: Bool) {
        guard isOpen(id) else { return }
        closed[id] = protocolAlive ? "closed" : "reclaimed"
        context.remove(id, protocolAlive: protocolAlive)
    }
}
