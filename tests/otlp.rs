//! The OTLP/HTTP exporter against a local receiver: what it sends decodes
//! into the official OTLP types with the right names, units, values,
//! temporality and attributes; cumulative histograms; log records; and the
//! failure paths (collector down, retryable and permanent statuses, a
//! hanging collector) stay bounded and never block `offer`.
#![allow(clippy::disallowed_methods)] // tests measure and wait on real time

mod common;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, AggregationTemporality, Metric};
use prost::Message;
use rtp_middlebox::export::metrics::{
    def, LegQuality, MetricKind, Publication, Sample, SessionQuality, JITTER_BUCKETS, RTT_BUCKETS,
};
use rtp_middlebox::export::otlp::{OtlpConfig, OtlpCounters, OtlpExporter};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// A minimal OTLP/HTTP receiver: HTTP/1.1, Content-Length bodies, one request
// per connection (answers `Connection: close`).

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// (status, delay before answering) for the n-th request on a path.
type Responder = Arc<dyn Fn(&Received, usize) -> (u16, Duration) + Send + Sync>;

struct Collector {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    fn ok() -> Self {
        Self::with(Arc::new(|_, _| (200, Duration::ZERO)))
    }

    fn with(responder: Responder) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stop2) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut handlers = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (reqs, stop, responder) = (Arc::clone(&reqs), Arc::clone(&stop2), Arc::clone(&responder));
                        handlers.push(std::thread::spawn(move || serve(conn, &reqs, &stop, &*responder)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for h in handlers {
                let _ = h.join();
            }
        });
        Collector {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    fn count(&self, path: &str) -> usize {
        self.received(path).len()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    mut conn: TcpStream,
    reqs: &Mutex<Vec<Received>>,
    stop: &AtomicBool,
    responder: &(dyn Fn(&Received, usize) -> (u16, Duration) + Send + Sync),
) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let path = request_line.split(' ').nth(1).unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().expect("content-length"))
        .expect("the exporter sends Content-Length");
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let req = Received { path, headers, body };
    let (status, delay) = {
        let mut all = reqs.lock().unwrap();
        let n = all.iter().filter(|r| r.path == req.path).count();
        let answer = responder(&req, n);
        all.push(req);
        answer
    };
    let until = Instant::now() + delay;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = write!(
        conn,
        "HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = conn.flush();
}

// ---------------------------------------------------------------------------
// Helpers

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops the exporter, asserting that it took less than `limit`.
fn stops_within(exporter: OtlpExporter, limit: Duration) {
    let started = Instant::now();
    exporter.stop();
    assert!(started.elapsed() < limit, "stop took {:?}", started.elapsed());
}

fn sample(name: &str, labels: &[(&'static str, &str)], value: f64) -> Sample {
    Sample {
        metric: def(name).unwrap_or_else(|| panic!("{name} is in the table")),
        labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        value,
    }
}

const START: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn config(endpoint: String) -> OtlpConfig {
    OtlpConfig {
        endpoint,
        timeout: Duration::from_secs(2),
        resource: vec![
            ("service.instance.id".into(), "node-1".into()),
            ("region".into(), "eu-west-1".into()),
        ],
        max_retries: 3,
        queue: 4,
        ..OtlpConfig::default()
    }
}

fn session() -> SessionQuality {
    SessionQuality {
        session: "s-42".into(),
        client: "192.0.2.1:5000".into(),
        upstream: "198.51.100.1:3478".into(),
        duration_secs: 12.5,
        end_unix_nanos: START + 9 * SEC,
        legs: vec![
            LegQuality {
                leg: "client",
                streams: 2,
                packets_received: 600,
                packets_lost: 6,
                loss_ratio: 0.01,
                jitter_secs: Some(0.004),
                rtt_secs: Some(0.05),
                mos_worst: Some(4.1),
                mos_mean: Some(4.25),
                lost_on_leg: 6,
            },
            LegQuality {
                leg: "upstream",
                streams: 1,
                packets_received: 300,
                packets_lost: 0,
                loss_ratio: 0.0,
                jitter_secs: Some(0.001),
                rtt_secs: None,
                mos_worst: None,
                mos_mean: None,
                lost_on_leg: 0,
            },
        ],
    }
}

/// A publication `t` seconds after [`START`], cumulative since then.
fn publication(t: u64, samples: Vec<Sample>, observations: Vec<Sample>) -> Publication {
    Publication {
        time_unix_nanos: START + t * SEC,
        start_unix_nanos: START,
        samples,
        observations,
        ..Publication::default()
    }
}

fn simple_publication(t: u64, packets: f64) -> Publication {
    let client_rtp = [("direction", "from_client"), ("kind", "rtp")];
    publication(t, vec![sample("rtpmb_packets_total", &client_rtp, packets)], vec![])
}

/// [`simple_publication`] carrying one ended session, so that both the
/// metrics and the logs signal have something to send.
fn publication_with_ended_session(t: u64, packets: f64) -> Publication {
    let mut p = simple_publication(t, packets);
    p.ended_sessions.push(session());
    p
}

/// An exporter with the test [`config`], sending to `collector`.
fn exporter_for(collector: &Collector) -> OtlpExporter {
    OtlpExporter::start(config(collector.endpoint())).unwrap()
}

/// Waits up to `limit` for the exporter's counters to satisfy `cond`.
fn wait_for_counters(exporter: &OtlpExporter, limit: Duration, cond: impl Fn(&OtlpCounters) -> bool) -> bool {
    wait_until(limit, || cond(&exporter.counters()))
}

/// The value of attribute `key`, of whatever kind.
fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()
}

fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key)? {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn attr_i64(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)? {
        any_value::Value::IntValue(v) => Some(*v),
        _ => None,
    }
}

fn labels_match(attrs: &[KeyValue], want: &[(&str, &str)]) -> bool {
    attrs.len() == want.len() && want.iter().all(|(k, v)| attr_str(attrs, k) == Some(v))
}

fn decode_metrics(r: &Received) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest::decode(r.body.as_slice()).expect("a binary ExportMetricsServiceRequest")
}

fn metrics_of(req: &ExportMetricsServiceRequest) -> &[Metric] {
    &req.resource_metrics[0].scope_metrics[0].metrics
}

fn find<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    metrics_of(req)
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} exported"))
}

fn counter_value(req: &ExportMetricsServiceRequest, name: &str, labels: &[(&str, &str)]) -> f64 {
    let Some(metric::Data::Sum(sum)) = &find(req, name).data else {
        panic!("{name} is a Sum")
    };
    let p = sum
        .data_points
        .iter()
        .find(|p| labels_match(&p.attributes, labels))
        .expect("data point");
    match p.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        ref other => panic!("as_double expected, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------

#[test]
fn metrics_and_logs_decode_into_otlp_with_cumulative_histograms() {
    let collector = Collector::ok();
    let exporter = exporter_for(&collector);

    let client_rtp = [("direction", "from_client"), ("kind", "rtp")];
    let upstream_rtp = [("direction", "from_upstream"), ("kind", "rtp")];
    let rtt_client = [("leg", "client"), ("method", "sr_rr")];
    let rtt_upstream = [("leg", "upstream"), ("method", "stun")];
    let jitter_audio = [("kind", "audio")];
    // Both publications set the same counters and gauge, to other values.
    let counters_and_gauge = |client_packets, upstream_packets, sessions_active| {
        vec![
            sample("rtpmb_packets_total", &client_rtp, client_packets),
            sample("rtpmb_packets_total", &upstream_rtp, upstream_packets),
            sample("rtpmb_sessions_active", &[], sessions_active),
        ]
    };

    let mut p1 = publication(
        10,
        counters_and_gauge(100.0, 50.0, 3.0),
        vec![
            sample("rtpmb_stream_rtt_seconds", &rtt_client, 0.004),
            sample("rtpmb_stream_rtt_seconds", &rtt_client, 0.02),
            sample("rtpmb_stream_jitter_seconds", &jitter_audio, 0.003),
        ],
    );
    p1.ended_sessions.push(session());
    exporter.offer(p1);
    assert!(wait_until(Duration::from_secs(5), || collector.count("/v1/metrics")
        == 1
        && collector.count("/v1/logs") == 1));

    let p2 = publication(
        20,
        counters_and_gauge(250.0, 50.0, 1.0),
        vec![
            sample("rtpmb_stream_rtt_seconds", &rtt_client, 3.0), // above the last bound
            sample("rtpmb_stream_rtt_seconds", &rtt_upstream, 0.001), // on a bound: upper-inclusive
        ],
    );
    exporter.offer(p2);
    assert!(wait_until(Duration::from_secs(5), || collector.count("/v1/metrics") == 2));
    exporter.stop();

    let metrics = collector.received("/v1/metrics");
    for r in &metrics {
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    }
    let (r1, r2) = (decode_metrics(&metrics[0]), decode_metrics(&metrics[1]));

    // Resource and scope.
    for r in [&r1, &r2] {
        assert_eq!(r.resource_metrics.len(), 1);
        let res = &r.resource_metrics[0].resource.as_ref().unwrap().attributes;
        assert_eq!(attr_str(res, "service.name"), Some("rtp-middlebox"));
        assert_eq!(attr_str(res, "service.instance.id"), Some("node-1"));
        assert_eq!(attr_str(res, "region"), Some("eu-west-1"));
        let scope = r.resource_metrics[0].scope_metrics[0].scope.as_ref().unwrap();
        assert_eq!(scope.name, "rtp-middlebox");
        assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
    }

    // Counter: monotonic cumulative Sum, from the process start.
    let packets = find(&r1, "rtpmb_packets_total");
    let d = def("rtpmb_packets_total").unwrap();
    assert_eq!((packets.unit.as_str(), packets.description.as_str()), (d.unit, d.help));
    let Some(metric::Data::Sum(sum)) = &packets.data else {
        panic!("Sum")
    };
    assert!(sum.is_monotonic);
    assert_eq!(sum.aggregation_temporality, AggregationTemporality::Cumulative as i32);
    assert_eq!(sum.data_points.len(), 2);
    for p in &sum.data_points {
        assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (START, START + 10 * SEC));
    }
    assert_eq!(counter_value(&r1, "rtpmb_packets_total", &client_rtp), 100.0);
    assert_eq!(counter_value(&r1, "rtpmb_packets_total", &upstream_rtp), 50.0);
    assert_eq!(counter_value(&r2, "rtpmb_packets_total", &client_rtp), 250.0);

    // Gauge: current value.
    let active = find(&r2, "rtpmb_sessions_active");
    assert_eq!(active.unit, "{session}");
    let Some(metric::Data::Gauge(g)) = &active.data else {
        panic!("Gauge")
    };
    assert_eq!(g.data_points.len(), 1);
    assert!(g.data_points[0].attributes.is_empty());
    assert_eq!(g.data_points[0].value, Some(number_data_point::Value::AsDouble(1.0)));
    assert_eq!(g.data_points[0].time_unix_nano, START + 20 * SEC);

    // Histograms: cumulative across publications, fixed bounds.
    let rtt1 = find(&r1, "rtpmb_stream_rtt_seconds");
    assert_eq!(rtt1.unit, "s");
    let Some(metric::Data::Histogram(h1)) = &rtt1.data else {
        panic!("Histogram")
    };
    assert_eq!(h1.aggregation_temporality, AggregationTemporality::Cumulative as i32);
    assert_eq!(h1.data_points.len(), 1, "only the label set observed so far");
    let p = &h1.data_points[0];
    assert!(labels_match(&p.attributes, &rtt_client));
    assert_eq!(p.explicit_bounds, RTT_BUCKETS);
    assert_eq!(p.bucket_counts.len(), RTT_BUCKETS.len() + 1);
    let mut want = vec![0u64; RTT_BUCKETS.len() + 1];
    want[2] = 1; // 0.004 in (0.0025, 0.005]
    want[4] = 1; // 0.02 in (0.01, 0.025]
    assert_eq!(p.bucket_counts, want);
    assert_eq!(p.count, 2);
    assert!((p.sum.unwrap() - 0.024).abs() < 1e-12);
    assert_eq!((p.min, p.max), (Some(0.004), Some(0.02)));
    assert_eq!((p.start_time_unix_nano, p.time_unix_nano), (START, START + 10 * SEC));

    let Some(metric::Data::Histogram(h2)) = &find(&r2, "rtpmb_stream_rtt_seconds").data else {
        panic!("Histogram")
    };
    assert_eq!(h2.data_points.len(), 2);
    let client = h2
        .data_points
        .iter()
        .find(|p| labels_match(&p.attributes, &rtt_client))
        .unwrap();
    want[RTT_BUCKETS.len()] = 1; // 3.0 > 2.0: overflow bucket
    assert_eq!(
        client.bucket_counts, want,
        "cumulative: the first interval's observations are still there"
    );
    assert_eq!(client.count, 3);
    assert!((client.sum.unwrap() - 3.024).abs() < 1e-12);
    assert_eq!((client.min, client.max), (Some(0.004), Some(3.0)));
    assert_eq!(
        (client.start_time_unix_nano, client.time_unix_nano),
        (START, START + 20 * SEC)
    );
    let upstream = h2
        .data_points
        .iter()
        .find(|p| labels_match(&p.attributes, &rtt_upstream))
        .unwrap();
    assert_eq!(upstream.bucket_counts[0], 1, "0.001 falls in the le=0.001 bucket");
    assert_eq!(upstream.bucket_counts.iter().sum::<u64>(), 1);

    // A histogram without new observations is still exported (cumulative).
    let Some(metric::Data::Histogram(j2)) = &find(&r2, "rtpmb_stream_jitter_seconds").data else {
        panic!()
    };
    assert_eq!(j2.data_points[0].explicit_bounds, JITTER_BUCKETS);
    assert_eq!(j2.data_points[0].count, 1);
    assert!(labels_match(&j2.data_points[0].attributes, &jitter_audio));

    // Every exported metric carries the table's unit and help.
    for m in metrics_of(&r2) {
        let d = def(&m.name).unwrap();
        assert_eq!(
            (m.unit.as_str(), m.description.as_str()),
            (d.unit, d.help),
            "{}",
            m.name
        );
        let kind_ok = matches!(
            (&m.data, d.kind),
            (Some(metric::Data::Sum(_)), MetricKind::Counter)
                | (Some(metric::Data::Gauge(_)), MetricKind::Gauge)
                | (Some(metric::Data::Histogram(_)), MetricKind::Histogram(_))
        );
        assert!(kind_ok, "{}", m.name);
    }

    // The end-of-session log record.
    let logs = collector.received("/v1/logs");
    assert_eq!(logs.len(), 1, "one ended session, sent once");
    assert_eq!(logs[0].header("content-type"), Some("application/x-protobuf"));
    let lr = ExportLogsServiceRequest::decode(logs[0].body.as_slice()).unwrap();
    let res = &lr.resource_logs[0].resource.as_ref().unwrap().attributes;
    assert_eq!(attr_str(res, "service.name"), Some("rtp-middlebox"));
    assert_eq!(attr_str(res, "region"), Some("eu-west-1"));
    let records = &lr.resource_logs[0].scope_logs[0].log_records;
    assert_eq!(records.len(), 1);
    let rec = &records[0];
    assert_eq!(rec.event_name, "session.quality");
    assert_eq!(
        rec.body.as_ref().and_then(|b| b.value.clone()),
        Some(any_value::Value::StringValue("session.quality".into()))
    );
    assert_eq!(rec.time_unix_nano, START + 9 * SEC);
    assert_eq!(rec.observed_time_unix_nano, START + 10 * SEC);
    let a = &rec.attributes;
    use any_value::Value::{DoubleValue, IntValue, StringValue};
    for (key, want) in [
        ("session.id", StringValue("s-42".into())),
        ("client.address", StringValue("192.0.2.1:5000".into())),
        ("upstream.address", StringValue("198.51.100.1:3478".into())),
        ("duration_secs", DoubleValue(12.5)),
        ("client.packets_received", IntValue(600)),
        ("client.packets_lost", IntValue(6)),
        ("client.loss_ratio", DoubleValue(0.01)),
        ("client.jitter_secs", DoubleValue(0.004)),
        ("client.rtt_secs", DoubleValue(0.05)),
        ("upstream.packets_lost", IntValue(0)),
        ("upstream.loss_ratio", DoubleValue(0.0)),
        ("upstream.jitter_secs", DoubleValue(0.001)),
        ("client.mos_worst", DoubleValue(4.1)),
        ("client.mos_mean", DoubleValue(4.25)),
        ("client.lost_on_leg", IntValue(6)),
    ] {
        assert_eq!(attr(a, key), Some(&want), "{key}");
    }
    assert!(a.iter().all(|kv| kv.key != "upstream.mos_worst"));
    assert!(
        a.iter().all(|kv| kv.key != "upstream.rtt_secs"),
        "absent values are omitted"
    );
}

#[test]
fn collector_down_counts_errors_and_retries_and_stop_returns() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // dropped: connections are refused
    let cfg = OtlpConfig {
        max_retries: 2,
        ..config(format!("http://127.0.0.1:{port}"))
    };
    let exporter = OtlpExporter::start(cfg).unwrap();
    exporter.offer(publication_with_ended_session(10, 1.0));

    // 1 attempt + 2 retries per signal, then both batches are given up.
    let done = wait_for_counters(&exporter, Duration::from_secs(10), |c| {
        c.metrics_error == 3 && c.logs_error == 3 && c.dropped == 2
    });
    let c = exporter.counters();
    assert!(done, "{c:?}");
    assert_eq!((c.retries, c.metrics_ok, c.logs_ok), (4, 0, 0), "{c:?}");

    // More publications: errors keep counting, offer never waits.
    for t in 0..5 {
        exporter.offer(simple_publication(20 + t, 2.0));
    }
    assert!(wait_for_counters(&exporter, Duration::from_secs(10), |c| c
        .metrics_error
        > 3));
    stops_within(exporter, Duration::from_secs(3));
}

#[test]
fn offer_never_blocks_and_counts_drops_while_the_collector_hangs() {
    // The collector reads the request and then sits on it.
    let collector = Collector::with(Arc::new(|_, _| (200, Duration::from_secs(30))));
    let cfg = OtlpConfig {
        timeout: Duration::from_secs(2),
        queue: 4,
        ..config(collector.endpoint())
    };
    let exporter = OtlpExporter::start(cfg).unwrap();
    exporter.offer(simple_publication(1, 1.0));
    // The export thread is now blocked in its request.
    assert!(wait_until(Duration::from_secs(5), || collector.count("/v1/metrics") == 1));
    for i in 0..1000 {
        exporter.offer(simple_publication(2 + i, 2.0));
    }
    // Exactly the queue's capacity was taken; the rest was dropped at once.
    assert_eq!(exporter.counters().dropped, 1000 - 4);

    // Bounded by timeout + 1 s even though the collector never answers.
    stops_within(exporter, Duration::from_millis(3500));
}

#[test]
fn retryable_statuses_are_retried_until_delivered() {
    // 503 twice on metrics, 429 once on logs, then 200.
    let collector = Collector::with(Arc::new(|r: &Received, n| match (r.path.as_str(), n) {
        ("/v1/metrics", 0 | 1) => (503, Duration::ZERO),
        ("/v1/logs", 0) => (429, Duration::ZERO),
        _ => (200, Duration::ZERO),
    }));
    let exporter = exporter_for(&collector);
    exporter.offer(publication_with_ended_session(10, 77.0));
    assert!(wait_for_counters(&exporter, Duration::from_secs(10), |c| {
        c.metrics_ok == 1 && c.logs_ok == 1
    }));
    let c = exporter.counters();
    assert_eq!(
        (c.metrics_error, c.logs_error, c.retries, c.dropped),
        (2, 1, 3, 0),
        "{c:?}"
    );
    exporter.stop();

    let metrics = collector.received("/v1/metrics");
    assert_eq!(metrics.len(), 3);
    assert!(
        metrics.windows(2).all(|w| w[0].body == w[1].body),
        "the same batch is resent"
    );
    assert_eq!(
        counter_value(
            &decode_metrics(&metrics[2]),
            "rtpmb_packets_total",
            &[("direction", "from_client"), ("kind", "rtp")]
        ),
        77.0
    );
    let logs = collector.received("/v1/logs");
    assert_eq!(logs.len(), 2);
    let lr = ExportLogsServiceRequest::decode(logs[1].body.as_slice()).unwrap();
    assert_eq!(
        attr_str(
            &lr.resource_logs[0].scope_logs[0].log_records[0].attributes,
            "session.id"
        ),
        Some("s-42")
    );
}

#[test]
fn a_newer_publication_supersedes_a_metrics_batch_being_retried() {
    let collector = Collector::with(Arc::new(|r: &Received, n| match (r.path.as_str(), n) {
        ("/v1/metrics", 0..=2) => (503, Duration::ZERO),
        _ => (200, Duration::ZERO),
    }));
    let exporter = exporter_for(&collector);
    let client_rtp = [("direction", "from_client"), ("kind", "rtp")];
    let mut p1 = simple_publication(10, 10.0);
    p1.observations
        .push(sample("rtpmb_stream_fraction_lost", &[("kind", "audio")], 0.05));
    exporter.offer(p1);
    assert!(wait_until(Duration::from_secs(5), || collector.count("/v1/metrics") == 1));
    let mut p2 = simple_publication(20, 20.0);
    p2.observations
        .push(sample("rtpmb_stream_fraction_lost", &[("kind", "audio")], 0.5));
    exporter.offer(p2);
    assert!(wait_for_counters(&exporter, Duration::from_secs(10), |c| c.metrics_ok == 1));
    let c = exporter.counters();
    // p2 replaced p1 after its first refusal: p2's first request is a new
    // batch, its two resends are retries; superseding is not dropping.
    assert_eq!((c.metrics_error, c.retries, c.dropped), (3, 2, 0), "{c:?}");
    exporter.stop();

    let metrics = collector.received("/v1/metrics");
    assert_eq!(metrics.len(), 4, "3 refusals, then the delivery");
    assert_eq!(
        counter_value(&decode_metrics(&metrics[0]), "rtpmb_packets_total", &client_rtp),
        10.0
    );
    for r in &metrics[1..] {
        let req = decode_metrics(r);
        assert_eq!(
            counter_value(&req, "rtpmb_packets_total", &client_rtp),
            20.0,
            "only the newest state is retried"
        );
        let Some(metric::Data::Histogram(h)) = &find(&req, "rtpmb_stream_fraction_lost").data else {
            panic!()
        };
        assert_eq!(
            h.data_points[0].count, 2,
            "the superseded publication's observations are kept"
        );
    }
}

#[test]
fn other_error_statuses_are_not_retried() {
    // OTLP: only 429, 502, 503, 504 are retryable; 500 and 400 are not.
    let collector = Collector::with(Arc::new(|r: &Received, _| match r.path.as_str() {
        "/v1/metrics" => (500, Duration::ZERO),
        _ => (400, Duration::ZERO),
    }));
    let exporter = exporter_for(&collector);
    exporter.offer(publication_with_ended_session(10, 1.0));
    assert!(wait_for_counters(&exporter, Duration::from_secs(5), |c| {
        c.metrics_error == 1 && c.logs_error == 1
    }));
    // Longer than the first backoff (≤ 200 ms): a retry would have happened.
    std::thread::sleep(Duration::from_millis(600));
    let c = exporter.counters();
    assert_eq!(
        (c.retries, c.metrics_error, c.logs_error, c.dropped),
        (0, 1, 1, 0),
        "{c:?}"
    );
    assert_eq!((collector.count("/v1/metrics"), collector.count("/v1/logs")), (1, 1));
    exporter.stop();
}

#[test]
fn stop_flushes_what_is_pending() {
    let collector = Collector::ok();
    let exporter = exporter_for(&collector);
    exporter.offer(publication_with_ended_session(10, 5.0));
    exporter.stop();
    assert_eq!(collector.count("/v1/metrics"), 1);
    assert_eq!(collector.count("/v1/logs"), 1);
}

#[test]
fn start_rejects_endpoints_it_cannot_reach() {
    for bad in ["https://collector:4318", "collector:4318", "http://"] {
        let cfg = OtlpConfig {
            endpoint: bad.into(),
            ..OtlpConfig::default()
        };
        assert!(OtlpExporter::start(cfg).is_err(), "{bad}");
    }
    let d = OtlpConfig::default();
    assert!(d
        .resource
        .iter()
        .any(|(k, v)| k == "service.name" && v == "rtp-middlebox"));
}

// ---------------------------------------------------------------- end to end

fn relay_with_collector(
    endpoint: String,
) -> (
    rtp_middlebox::runtime::RelayRuntime,
    rtp_middlebox::export::api::ApiServer,
    std::net::UdpSocket,
) {
    common::start_relay_and_api(
        &format!(
            "rtcp = \"forward\"\n[api]\nlisten = \"127.0.0.1:0\"\n[limits]\nidle_timeout_secs = 1\n\
             [metrics]\ninterval_secs = 1\n[collector]\notlp_endpoint = \"{endpoint}\"\ninterval_secs = 1\n\
             timeout_ms = 500\nmax_retries = 1\n\
             [collector.resource]\n\"service.instance.id\" = \"sfu-node-7\"\nregion = \"eu-test\"\n"
        ),
        |_| {},
    )
}

fn send_stream(to: SocketAddr, n: u16) -> std::net::UdpSocket {
    let client = common::loopback();
    for seq in 0..n {
        client.send_to(&common::pcmu(seq, 0x0a0b_0c0d), to).unwrap();
        // Paced: the sinks read after the burst, and a loopback socket's
        // default receive buffer holds only ~256 small datagrams.
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
    client
}

#[test]
fn the_relay_pushes_its_metrics_and_session_records_to_a_collector() {
    let collector = Collector::ok();
    let (relay, _api, _upstream) = relay_with_collector(collector.endpoint());
    let _client = send_stream(relay.bound()[0].listen, 200);
    // The session idles out after 1 s; its quality record follows as a log.
    assert!(
        wait_until(Duration::from_secs(15), || collector.count("/v1/logs") > 0),
        "no session record pushed"
    );
    let latest = collector
        .received("/v1/metrics")
        .last()
        .cloned()
        .expect("metrics pushed");
    let req = decode_metrics(&latest);
    let resource = req.resource_metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        attr_str(&resource.attributes, "service.instance.id"),
        Some("sfu-node-7")
    );
    assert_eq!(attr_str(&resource.attributes, "region"), Some("eu-test"));
    assert_eq!(attr_str(&resource.attributes, "service.name"), Some("rtp-middlebox"));
    assert_eq!(
        counter_value(
            &req,
            "rtpmb_packets_total",
            &[("direction", "from_client"), ("kind", "rtp")]
        ),
        200.0
    );
    assert_eq!(counter_value(&req, "rtpmb_sessions_created_total", &[]), 1.0);
    let logs = ExportLogsServiceRequest::decode(collector.received("/v1/logs")[0].body.as_slice()).unwrap();
    let record = &logs.resource_logs[0].scope_logs[0].log_records[0];
    assert!(attr_str(&record.attributes, "session.id").is_some_and(|id| id.starts_with("0-")));
    assert_eq!(attr_i64(&record.attributes, "client.packets_received"), Some(200));
    assert_eq!(attr_i64(&record.attributes, "client.packets_lost"), Some(0));
}

#[test]
fn collector_down_counts_errors_and_the_relay_keeps_forwarding() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (relay, api, upstream) = relay_with_collector(closed);
    let sink = common::sink(upstream, Duration::from_millis(500));
    let _client = send_stream(relay.bound()[0].listen, 300);
    assert_eq!(
        sink.join().unwrap(),
        300,
        "the relay lost packets while the collector was down"
    );
    // The failures show on /metrics.
    let errors = || {
        common::get(api.local_addr, "/metrics")
            .body()
            .lines()
            .find(|l| l.starts_with("rtpmb_otlp_exports_total{signal=\"metrics\",result=\"error\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(15), || errors() >= 2.0),
        "errors never counted"
    );
}
