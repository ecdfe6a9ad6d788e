public import CoreMetrics
import RingportCore
import Synchronization

/// A ``Miniport``'s statistics through swift-metrics, for a process that embeds the miniport and
/// bootstraps a `MetricsSystem` of its own (`ringportd --metrics` is one).
///
/// The adapter's totals become counters and gauges with an `adapter` dimension, each open binding's with
/// `adapter` and `binding` dimensions (a binding's are destroyed when it closes); the names are those of
/// Docs/stat-json.md, section Metrics. ``update()`` copies the statistics the data thread last published
/// into them: call it when the metrics are read (before a scrape), from any thread; the data thread does
/// no work for it. Make one per miniport and factory: two would count every increment twice.
///
/// ```swift
/// let metrics = MiniportMetrics(miniport: miniport)  // after MetricsSystem.bootstrap(...)
/// // before each export or scrape:
/// metrics.update()
/// ```
public final class MiniportMetrics: @unchecked Sendable {
    let miniport: Miniport
    let factory: any MetricsFactory
    let adapter: String
    let state: Mutex<State>

    /// A counter and the total it was last brought to (swift-metrics counters only grow by increments).
    /// The total only grows and stops at `Int64.max` (what a Prometheus counter holds): a protocol's
    /// published value (`sleeps`) that drops or jumps cannot make the counter go backwards or wrap.
    final class Total {
        let counter: Counter
        var last: UInt64 = 0
        init(_ counter: Counter) { self.counter = counter }

        func set(_ value: UInt64) {
            let clamped = min(value, UInt64(Int64.max))
            guard clamped > last else { return }
            counter.increment(by: Int64(clamped - last))
            last = clamped
        }
    }

    final class BindingMetrics {
        var totals: [String: Total] = [:]
        var gauges: [String: Gauge] = [:]
    }

    struct State {
        var totals: [String: Total] = [:]
        var gauges: [String: Gauge] = [:]
        var bindings: [UInt64: BindingMetrics] = [:]
    }

    /// Metrics of `miniport`, made by `factory` (by default the one `MetricsSystem` was bootstrapped with).
    /// Nothing is reported until the first ``update()``.
    public init(miniport: Miniport, factory: any MetricsFactory = MetricsSystem.factory) {
        self.miniport = miniport
        self.factory = factory
        adapter = miniport.options.adapter
        state = Mutex(State())
    }

    /// The adapter's counters (name, value) as swift-metrics labels; each becomes `<name>_total`.
    static func adapterTotals(_ s: AdapterStatistics, _ info: AdapterInfo) -> [(String, UInt64)] {
        [
            ("ringport_packets_sent", s.packetsSent), ("ringport_bytes_sent", s.bytesSent),
            ("ringport_packets_failed", s.packetsFailed), ("ringport_packets_received", s.packetsReceived),
            ("ringport_bytes_received", s.bytesReceived), ("ringport_packets_dropped", s.packetsDropped),
            ("ringport_bindings_opened", s.bindingsOpened), ("ringport_bindings_reclaimed", s.bindingsReclaimed),
            ("ringport_bindings_violated", s.bindingsViolated),
            ("ringport_verification_errors", s.verificationErrors),
            ("ringport_completions_refused", s.completionsRefused),
            ("ringport_receivers_stalled", s.receiversStalled),
            ("ringport_connections_refused", s.connectionsRefused),
            ("ringport_connections_dropped", s.connectionsDropped),
            ("ringport_opens_over_limit", s.opensOverLimit), ("ringport_miniport_sleeps", info.sleeps),
        ]
    }

    static func adapterGauges(_ s: AdapterStatistics) -> [(String, UInt64)] {
        [("ringport_bindings", s.bindings), ("ringport_packets_outstanding", s.packetsOutstanding)]
    }

    static func bindingTotals(_ b: BindingStatistics) -> [(String, UInt64)] {
        [
            ("ringport_binding_packets_sent", b.packetsSent), ("ringport_binding_bytes_sent", b.bytesSent),
            ("ringport_binding_packets_failed", b.packetsFailed),
            ("ringport_binding_packets_received", b.packetsReceived),
            ("ringport_binding_bytes_received", b.bytesReceived),
            ("ringport_binding_packets_dropped", b.packetsDropped), ("ringport_binding_sleeps", b.sleeps),
        ]
    }

    static func bindingGauges(_ b: BindingStatistics) -> [(String, UInt64)] {
        [
            ("ringport_binding_packets_outstanding", b.packetsOutstanding),
            ("ringport_binding_transmit_packet_ring_used", b.transmitPacketRingUsed),
            ("ringport_binding_transmit_fragment_ring_used", b.transmitFragmentRingUsed),
            ("ringport_binding_receive_packet_ring_used", b.receivePacketRingUsed),
            ("ringport_binding_receive_fragment_ring_used", b.receiveFragmentRingUsed),
            ("ringport_binding_packets_in_use", b.packetsInUse),
            ("ringport_binding_buffers_in_use", b.chunksInUse),
            ("ringport_binding_process_id", b.processID),
        ]
    }

    /// Brings every metric to the statistics the data thread last published (when it does: Docs/stat-json.md,
    /// "When the statistics are taken"); a closed binding's metrics are destroyed. Safe from any thread.
    public func update() {
        let snapshot = miniport.statisticsSnapshot()
        let adapter = self.adapter
        let factory = self.factory
        state.withLock { state in
            let dimensions = [("adapter", adapter)]
            for (name, value) in Self.adapterTotals(snapshot.adapter, snapshot.info) {
                let total =
                    state.totals[name]
                    ?? Total(Counter(label: name + "_total", dimensions: dimensions, factory: factory))
                state.totals[name] = total
                total.set(value)
            }
            for (name, value) in Self.adapterGauges(snapshot.adapter) {
                let gauge = state.gauges[name] ?? Gauge(label: name, dimensions: dimensions, factory: factory)
                state.gauges[name] = gauge
                gauge.record(Int64(clamping: value))
            }
            var open = Set<UInt64>()
            for b in snapshot.bindings {
                open.insert(b.id)
                let metrics = state.bindings[b.id] ?? BindingMetrics()
                state.bindings[b.id] = metrics
                let dimensions = [("adapter", adapter), ("binding", String(b.id))]
                for (name, value) in Self.bindingTotals(b) {
                    let total =
                        metrics.totals[name]
                        ?? Total(Counter(label: name + "_total", dimensions: dimensions, factory: factory))
                    metrics.totals[name] = total
                    total.set(value)
                }
                for (name, value) in Self.bindingGauges(b) {
                    let gauge = metrics.gauges[name] ?? Gauge(label: name, dimensions: dimensions, factory: factory)
                    metrics.gauges[name] = gauge
                    gauge.record(Int64(clamping: value))
                }
            }
            for (id, metrics) in state.bindings where !open.contains(id) {
                for total in metrics.totals.values { total.counter.destroy() }
                for gauge in metrics.gauges.values { gauge.destroy() }
                state.bindings[id] = nil
            }
        }
    }
}
