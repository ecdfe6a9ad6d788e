import ArgumentParser
import CoreMetrics
import Foundation
import Logging
import Prometheus
import RingportMiniport
import RingportSystem
import Synchronization

/// `ringportd --metrics HOST:PORT`: the miniport's statistics as Prometheus text at `GET /metrics`, served on
/// a thread of its own from a loopback address. The metrics (swift-metrics, into a Prometheus registry) are
/// brought up to date from the statistics snapshot at each scrape: nothing on the data thread.
final class MetricsEndpoint: Sendable {
    let stopping = Atomic<Bool>(false)
    let port: UInt16
    let host: String

    /// `address` as host and port: a well-formed address, and loopback only (the metrics name processes
    /// and count traffic: not for other hosts).
    static func parse(_ address: String) throws(ValidationError) -> (host: String, port: UInt16) {
        guard let (host, port) = LoopbackHTTPServer.parse(address) else {
            throw ValidationError(
                "--metrics \"\(address)\": HOST:PORT, as 127.0.0.1:9464 or [::1]:9464 (port 0...65535)")
        }
        guard LoopbackHTTPServer.isLoopback(host) else {
            throw ValidationError(
                "--metrics \"\(address)\": only a loopback address is served (127.0.0.1:PORT, or [::1]:PORT)")
        }
        return (host, port)
    }

    /// The check `validate()` makes, before anything starts.
    static func validate(_ address: String) throws { _ = try parse(address) }

    /// Binds now (a port in use fails the start) and serves until `stop()`.
    init(_ address: String, miniport: Miniport, logger: Logger) throws {
        let (host, port) = try Self.parse(address)
        let server = try LoopbackHTTPServer(host: host, port: port)
        self.port = server.port
        self.host = host
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        // Drivers that report metrics of their own get the same registry.
        MetricsSystem.bootstrap(factory)
        let metrics = MiniportMetrics(miniport: miniport, factory: factory)
        let thread = Thread { [self] in
            server.serve(until: { stopping.load(ordering: .relaxed) }) { method, path in
                Self.answer(method: method, path: path, metrics: metrics, registry: registry)
            }
        }
        thread.name = "ringportd-metrics"
        thread.start()
        logger.info("serving metrics at \(url)")
    }

    var url: String { host.contains(":") ? "http://[\(host)]:\(port)/metrics" : "http://\(host):\(port)/metrics" }

    func stop() { stopping.store(true, ordering: .relaxed) }

    static func answer(
        method: String, path: String, metrics: MiniportMetrics, registry: PrometheusCollectorRegistry
    ) -> LoopbackHTTPServer.Response {
        let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        guard route == "/metrics" else {
            return .init(status: 404, contentType: "text/plain", body: Array("not found: GET /metrics\n".utf8))
        }
        guard method == "GET" else {
            return .init(
                status: 405, contentType: "text/plain", headers: [("Allow", "GET")],
                body: Array("method not allowed: GET /metrics\n".utf8))
        }
        metrics.update()
        var body: [UInt8] = []
        registry.emit(into: &body)
        return .init(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: body)
    }
}
