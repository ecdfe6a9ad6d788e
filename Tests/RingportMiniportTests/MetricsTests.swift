import Foundation
import Glibc
import Prometheus
import RingportMiniport
import RingportSystem
import TestSupport
import Testing

@testable import Ringport

/// `ringportd --metrics`: the miniport's counters through swift-metrics, scraped over TCP as Prometheus text.
@Suite(.serialized) struct MetricsTests {
    /// A hub miniport serving metrics on a free loopback port (port 0: the kernel's choice, printed).
    static func miniport() throws -> (MiniportProcess, port: UInt16) {
        let miniport = try MiniportProcess(driver: "hub", arguments: ["--metrics", "127.0.0.1:0"])
        let output = miniport.process.standardOutput
        guard let range = output.range(of: "http://127.0.0.1:"),
            let port = UInt16(output[range.upperBound...].prefix { $0.isNumber })
        else { throw SupportFailure("no metrics address in: \(output)") }
        return (miniport, port)
    }

    static func scrape(_ port: UInt16, path: String = "/metrics") throws -> (head: String, body: String) {
        let answer = try LoopbackHTTPClient.exchange(
            host: "127.0.0.1", port: port, request: "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
        guard let split = answer.range(of: "\r\n\r\n") else { throw SupportFailure("no HTTP answer: \(answer)") }
        return (String(answer[..<split.lowerBound]), String(answer[split.upperBound...]))
    }

    /// The value of the sample `name{labels}` in a Prometheus text body.
    static func sample(_ body: String, _ series: String) -> Double? {
        for line in body.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test func aScrapeAfterTrafficHasTheAdapterAndPerBindingCounters() throws {
        let (miniport, port) = try Self.miniport()
        let a = miniport.adapter
        let receiver = try miniport.protocolProcess(["recv", "--duration", "120"])
        defer { receiver.stop() }
        _ = try miniport.waitForStatistics { $0.bindings == 1 }
        let sender = try miniport.protocolProcess(["send", "--count", "4", "--size", "64"])
        #expect(sender.wait(seconds: 60) == 0, "\(sender.standardError)")
        _ = try miniport.waitForStatistics { $0.packetsReceived == 4 && $0.bindings == 1 }
        let (head, body) = try Self.scrape(port)
        #expect(head.hasPrefix("HTTP/1.1 200 "), "\(head)")
        #expect(head.contains("Content-Type: text/plain; version=0.0.4"), "\(head)")
        #expect(Self.sample(body, "ringport_packets_sent_total{adapter=\"\(a)\"}") == 4, "\(body)")
        #expect(Self.sample(body, "ringport_bytes_sent_total{adapter=\"\(a)\"}") == 256)
        #expect(Self.sample(body, "ringport_packets_received_total{adapter=\"\(a)\"}") == 4)
        #expect(Self.sample(body, "ringport_bytes_received_total{adapter=\"\(a)\"}") == 256)
        #expect(Self.sample(body, "ringport_packets_dropped_total{adapter=\"\(a)\"}") == 0)
        #expect(Self.sample(body, "ringport_bindings_opened_total{adapter=\"\(a)\"}") == 2)
        #expect(body.contains("# TYPE ringport_packets_sent_total counter"))
        // The receiver is binding 1 (the first to bind), the sender binding 2.
        let binding = "{adapter=\"\(a)\",binding=\"1\"}"
        #expect(Self.sample(body, "ringport_binding_packets_received_total" + binding) == 4, "\(body)")
        #expect(Self.sample(body, "ringport_binding_bytes_received_total" + binding) == 256)
        #expect(Self.sample(body, "ringport_binding_packets_sent_total" + binding) == 0)
        #expect(Self.sample(body, "ringport_binding_process_id" + binding) == Double(receiver.processIdentifier))
        #expect((Self.sample(body, "ringport_binding_receive_fragment_ring_used" + binding) ?? 0) > 0)
        #expect(Self.sample(body, "ringport_bindings{adapter=\"\(a)\"}") == 1)
        // A binding's metrics go with it (here its process is killed: reclaimed); the adapter's stay.
        receiver.stop()
        _ = try miniport.waitForStatistics { $0.bindings == 0 }
        let after = try Self.scrape(port).body
        #expect(!after.contains("binding=\"1\""), "\(after)")
        #expect(Self.sample(after, "ringport_bindings{adapter=\"\(a)\"}") == 0)
        #expect(Self.sample(after, "ringport_packets_received_total{adapter=\"\(a)\"}") == 4)
        #expect(Self.sample(after, "ringport_bindings_reclaimed_total{adapter=\"\(a)\"}") == 1)
    }

    @Test func onlyGetMetricsIsAnsweredAndAnIdleClientStallsNoOne() throws {
        let (miniport, port) = try Self.miniport()
        defer { withExtendedLifetime(miniport) {} }  // it serves until the test ends
        #expect(try Self.scrape(port, path: "/").head.hasPrefix("HTTP/1.1 404 "))
        #expect(try Self.scrape(port, path: "/metricsx").head.hasPrefix("HTTP/1.1 404 "))
        // Another method on /metrics: 405, naming the one allowed.
        for method in ["POST", "HEAD", "PUT"] {
            let answer = try LoopbackHTTPClient.exchange(
                host: "127.0.0.1", port: port, request: "\(method) /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 405 "), "\(method): \(answer)")
            #expect(answer.contains("\r\nAllow: GET\r\n"), "\(method): \(answer)")
        }
        // Clients that connect and send nothing hold a slot each; a scrape beside them is answered.
        let idle = try (0..<4).map { _ in try LoopbackHTTPClient.connect(host: "127.0.0.1", port: port) }
        defer { for fd in idle { LoopbackHTTPClient.close(fd) } }
        let (head, body) = try Self.scrape(port)
        #expect(head.hasPrefix("HTTP/1.1 200 "))
        #expect(body.contains("ringport_packets_sent_total"))
    }

    /// Twice the server's connection limit in clients that connect and send nothing, opened afresh before
    /// every scrape: the oldest connection that has not asked is closed to make room, so each scrape is
    /// answered.
    @Test func idleClientsBeyondTheConnectionLimitStallNoScrape() throws {
        let (miniport, port) = try Self.miniport()
        defer { withExtendedLifetime(miniport) {} }
        var idle: [CInt] = []
        defer { for fd in idle { LoopbackHTTPClient.close(fd) } }
        var failures: [String] = []
        for round in 0..<12 {
            for fd in idle { LoopbackHTTPClient.close(fd) }
            idle = try (0..<64).map { _ in try LoopbackHTTPClient.connect(host: "127.0.0.1", port: port) }
            do {
                let (head, body) = try Self.scrape(port)
                if !head.hasPrefix("HTTP/1.1 200 ") || !body.contains("ringport_packets_sent_total") {
                    failures.append("round \(round): \(head)")
                }
            } catch {
                failures.append("round \(round): \(error)")
            }
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    /// `sleeps` is what a protocol publishes about itself: a protocol that writes 2^64-1, then 0, then
    /// 2^64-1 again must not make its counter go backwards, negative or past `Int64.max`.
    @Test func aProtocolsPublishedSleepsCannotMakeItsCounterGoBackwards() throws {
        let host = try ContractHost(driver: NullDriver())
        defer { host.stop() }
        let adapter = try host.open()
        let registry = PrometheusCollectorRegistry()
        let metrics = MiniportMetrics(miniport: host.miniport, factory: PrometheusMetricsFactory(registry: registry))
        let series = "ringport_binding_sleeps_total{adapter=\"\(host.adapter)\",binding=\"\(adapter.bindingID)\"}"
        var scraped: [Double] = []
        for forged in [3, 10, UInt64.max, 0, UInt64.max, 5] {
            adapter.regions.control.setProtocolStatistic(.sleeps, forged)
            // The data thread publishes before it sleeps again: woken, it reads the forged value.
            adapter.regions.control.miniportWake.wake()
            let published = eventually { host.miniport.statisticsSnapshot().bindings.first?.sleeps == forged }
            #expect(published, "sleeps \(forged) not published")
            metrics.update()
            var body: [UInt8] = []
            registry.emit(into: &body)
            scraped.append(Self.sample(String(decoding: body, as: UTF8.self), series) ?? -1)
        }
        let top = Double(Int64.max)
        #expect(scraped == [3, 10, top, top, top, top], "\(scraped)")
        // Still a counter: `rate()` works on it.
        var body: [UInt8] = []
        registry.emit(into: &body)
        #expect(String(decoding: body, as: UTF8.self).contains("# TYPE ringport_binding_sleeps_total counter"))
    }

    @Test func aNonLoopbackAddressIsAUsageError() throws {
        let directory = "/tmp/ringport-metrics-refused-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for address in ["0.0.0.0:9464", "192.0.2.1:9464", "localhost:9464", "127.0.0.1", "127.0.0.1:70000"] {
            let daemon = try SpawnedProcess(
                "ringportd", ["--metrics", address, "--dir", directory, "--adapter", "m0"])
            #expect(daemon.wait(seconds: 30) == 64, "\(address): \(daemon.standardOutput)")
            #expect(daemon.standardError.contains("--metrics"), "\(address): \(daemon.standardError)")
        }
        #expect(!FileManager.default.fileExists(atPath: directory + "/m0.sock"))
    }
}
