//! OTLP/HTTP push of the metrics table and of end-of-session quality records.
//!
//! The exporter speaks OTLP/HTTP with the binary Protobuf encoding
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>): each export is one
//! `POST {endpoint}/v1/metrics` (or `/v1/logs`) with
//! `Content-Type: application/x-protobuf` and a prost-encoded
//! `ExportMetricsServiceRequest` (or `ExportLogsServiceRequest`) as the body
//! (<https://opentelemetry.io/docs/specs/otlp/#binary-protobuf-encoding>).
//!
//! # Never blocking the relay
//!
//! All network I/O happens on one dedicated std thread running blocking
//! `ureq`; the relay's threads and the tokio runtime never wait on a
//! collector. The publisher hands each [`Publication`] over with
//! [`OtlpExporter::offer`], a `try_send` on a bounded channel: when the
//! exporter is behind (collector slow or down), the publication is dropped
//! and counted instead of queueing without bound or stalling the caller.
//!
//! # Cumulative temporality, and why a newer batch supersedes an older one
//!
//! Counters are exported as monotonic `Sum`s and histograms as `Histogram`s,
//! both with `AGGREGATION_TEMPORALITY_CUMULATIVE` and
//! `start_time_unix_nano` = process start: each point carries the total
//! since start, not a delta
//! (<https://opentelemetry.io/docs/specs/otel/metrics/data-model/#temporality>).
//! That matches how the relay counts (plain cumulative counters) and makes
//! loss harmless: a lost or dropped export only lowers the resolution, the
//! next one carries everything. So a metrics batch still being retried is
//! *replaced* by the next publication — only the newest cumulative state
//! matters, and a retry queue of stale snapshots would only delay it. Log
//! records are events, not state: they are kept (bounded) and retried until
//! sent, or dropped and counted.
//!
//! Histograms come in as raw per-interval observations; the exporter folds
//! them into cumulative per-label-set bucket counts using the table's fixed
//! bounds, on the export thread. Observations of every publication the
//! exporter *accepted* are counted, including superseded ones; those of a
//! publication dropped because the queue was full are lost.
//!
//! # Failures
//!
//! Connection errors, timeouts and the retryable statuses of the OTLP
//! spec (429, 502, 503, 504 —
//! <https://opentelemetry.io/docs/specs/otlp/#retryable-response-codes>) are
//! retried with exponential backoff (200 ms doubling to 5 s, with jitter;
//! a `Retry-After` in seconds is honoured, per
//! <https://opentelemetry.io/docs/specs/otlp/#otlphttp-throttling>), at most
//! `max_retries` times per batch. Every other 4xx or 5xx status is *not*
//! retried — the spec says they "MUST NOT be retried" (that includes 500) —
//! and counts as an error.
//!
//! # Counters
//!
//! [`OtlpCounters`] feeds `rtpmb_otlp_exports_total{signal,result}` (one per
//! HTTP request: `ok` on 2xx, `error` otherwise), `rtpmb_otlp_retries_total`
//! (requests that were a retry of a failed one) and
//! `rtpmb_otlp_dropped_total` (batches given up: queue full, retries
//! exhausted, log backlog overflow, or unsent at shutdown). A metrics batch
//! superseded by a newer one is not "dropped": nothing is lost.

use super::metrics::{Labels, MetricDef, MetricKind, Publication, Sample, SessionQuality, METRICS};
use crate::runtime::clock::Clock;
use crate::time::MonoTime;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Instrumentation scope name of everything exported.
pub const SCOPE_NAME: &str = "rtp-middlebox";
/// Event name (and string body) of the end-of-session log record.
pub const SESSION_EVENT: &str = "session.quality";

/// First retry delay; doubles per consecutive failure.
const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
/// Cap of the exponential backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Cap of a collector's `Retry-After`.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);
/// Log records waiting to be sent; beyond this the oldest are dropped.
const MAX_QUEUED_LOG_RECORDS: usize = 10_000;
/// Log records per `/v1/logs` request.
const MAX_LOG_RECORDS_PER_REQUEST: usize = 1_000;
/// Response bodies are read (so the connection can be reused) up to this.
const MAX_RESPONSE_BODY: u64 = 64 * 1024;
/// Grace on top of `timeout` that [`OtlpExporter::stop`] waits for the thread.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Where and how to push.
#[derive(Clone, Debug)]
pub struct OtlpConfig {
    /// Base URL of the collector's OTLP/HTTP receiver, e.g.
    /// `http://127.0.0.1:4318`; `/v1/metrics` and `/v1/logs` are appended.
    /// Plain HTTP only (no TLS in this build).
    pub endpoint: String,
    /// How often the publisher calls [`OtlpExporter::offer`]. The exporter
    /// itself has no timer: it sends what it is offered.
    pub interval: Duration,
    /// Budget of one HTTP request, connect to last response byte.
    pub timeout: Duration,
    /// Resource attributes (`service.instance.id`, `region`, …).
    /// `service.name` = `rtp-middlebox` is added unless given here.
    pub resource: Vec<(String, String)>,
    /// Retries of one failed batch before it is given up.
    pub max_retries: u32,
    /// Publications the channel to the export thread holds (at least 1).
    pub queue: usize,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            endpoint: "http://127.0.0.1:4318".into(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            resource: vec![("service.name".into(), "rtp-middlebox".into())],
            max_retries: 5,
            queue: 4,
        }
    }
}

/// A snapshot of the exporter's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OtlpCounters {
    /// `/v1/metrics` requests answered 2xx.
    pub metrics_ok: u64,
    /// `/v1/metrics` requests that failed (transport error or non-2xx).
    pub metrics_error: u64,
    /// `/v1/logs` requests answered 2xx.
    pub logs_ok: u64,
    /// `/v1/logs` requests that failed.
    pub logs_error: u64,
    /// Requests that retried a failed one (both signals).
    pub retries: u64,
    /// Batches given up: publication refused (queue full), retries
    /// exhausted, log backlog overflow, unsent at shutdown.
    pub dropped: u64,
}

#[derive(Default)]
struct SharedCounters {
    metrics_ok: AtomicU64,
    metrics_error: AtomicU64,
    logs_ok: AtomicU64,
    logs_error: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
}

impl SharedCounters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> OtlpCounters {
        OtlpCounters {
            metrics_ok: self.metrics_ok.load(Ordering::Relaxed),
            metrics_error: self.metrics_error.load(Ordering::Relaxed),
            logs_ok: self.logs_ok.load(Ordering::Relaxed),
            logs_error: self.logs_error.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// State shared between the handle and the export thread.
struct Shared {
    counters: SharedCounters,
    stop: AtomicBool,
    /// Monotonic ns at which [`OtlpExporter::stop`] was called.
    stop_at: AtomicU64,
}

/// Handle of the OTLP export thread. Dropping it stops the thread like
/// [`OtlpExporter::stop`].
pub struct OtlpExporter {
    tx: Option<SyncSender<Publication>>,
    thread: Option<JoinHandle<()>>,
    done: Option<Receiver<()>>,
    shared: Arc<Shared>,
    clock: Clock,
    timeout: Duration,
}

impl OtlpExporter {
    /// Validates `cfg` and starts the export thread.
    pub fn start(cfg: OtlpConfig) -> io::Result<Self> {
        let base = cfg.endpoint.trim_end_matches('/');
        if !base.starts_with("http://") || base.len() <= "http://".len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "OTLP endpoint {:?}: expected http://host:port (plain HTTP, no TLS in this build)",
                    cfg.endpoint
                ),
            ));
        }
        if cfg.timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "OTLP timeout must be positive",
            ));
        }
        let metrics_url = format!("{base}/v1/metrics");
        let logs_url = format!("{base}/v1/logs");
        // Reject what ureq cannot parse now rather than on every export.
        for url in [&metrics_url, &logs_url] {
            url.parse::<ureq::http::Uri>()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("OTLP endpoint {url:?}: {e}")))?;
        }

        let clock = Clock::new();
        let shared = Arc::new(Shared {
            counters: SharedCounters::default(),
            stop: AtomicBool::new(false),
            stop_at: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::sync_channel(cfg.queue.max(1));
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(cfg.timeout))
                .http_status_as_error(false)
                .max_redirects(0)
                .user_agent(concat!("rtp-middlebox/", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        let seed = clock.wall().as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
        let worker = Worker {
            rx,
            shared: Arc::clone(&shared),
            clock,
            agent,
            metrics_url,
            logs_url,
            timeout: cfg.timeout,
            max_retries: cfg.max_retries,
            resource: resource(&cfg.resource),
            histograms: BTreeMap::new(),
            metrics: None,
            metrics_gate: Backoff::default(),
            log_queue: VecDeque::new(),
            logs: None,
            logs_gate: Backoff::default(),
            rng: seed | 1,
        };
        let thread = std::thread::Builder::new().name("otlp-export".into()).spawn(move || {
            worker.run();
            let _ = done_tx.send(());
        })?;
        Ok(OtlpExporter {
            tx: Some(tx),
            thread: Some(thread),
            done: Some(done_rx),
            shared,
            clock,
            timeout: cfg.timeout,
        })
    }

    /// Hands one publication to the export thread. Never blocks: when the
    /// thread is behind and the queue is full, the publication is dropped
    /// and counted in `dropped` (the next one carries the cumulative
    /// values; only its histogram observations and ended sessions are lost).
    pub fn offer(&self, p: Publication) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(p) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                SharedCounters::bump(&self.shared.counters.dropped)
            }
        }
    }

    /// The export counters so far.
    pub fn counters(&self) -> OtlpCounters {
        self.shared.counters.snapshot()
    }

    /// Stops the thread after one last attempt to send what it holds, and
    /// joins it. Returns within `timeout` + 1 s even if the collector hangs
    /// (the thread is then left to finish its request on its own).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.shared
            .stop_at
            .store(self.clock.now().as_nanos(), Ordering::Relaxed);
        self.shared.stop.store(true, Ordering::Release);
        drop(self.tx.take()); // wakes the thread if it is waiting
        let finished = self
            .done
            .take()
            .is_some_and(|done| done.recv_timeout(self.timeout + STOP_GRACE).is_ok());
        if finished {
            let _ = thread.join();
        }
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Consecutive failures of one signal and the earliest next attempt.
#[derive(Default)]
struct Backoff {
    failures: u32,
    not_before: MonoTime,
}

/// An encoded request waiting to be (re)sent.
struct Batch {
    body: Vec<u8>,
    /// Requests already made for it.
    attempts: u32,
}

/// Cumulative histogram state by (metric name, label set).
type Histograms = BTreeMap<(&'static str, Labels), HistState>;

/// Cumulative state of one histogram series.
struct HistState {
    def: &'static MetricDef,
    bounds: &'static [f64],
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    negative: bool,
}

impl HistState {
    fn new(def: &'static MetricDef, bounds: &'static [f64]) -> Self {
        HistState {
            def,
            bounds,
            buckets: vec![0; bounds.len() + 1],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            negative: false,
        }
    }

    /// OTLP explicit buckets are upper-inclusive like Prometheus `le`:
    /// bucket `i` holds `bounds[i-1] < v <= bounds[i]`, the last one
    /// `v > bounds[last]`.
    fn observe(&mut self, v: f64) {
        let i = self.bounds.iter().position(|&b| v <= b).unwrap_or(self.bounds.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.negative |= v < 0.0;
    }
}

type Outcome = Result<(), Failure>;

enum Failure {
    /// Transport error or 429/502/503/504; maybe with the server's delay.
    Retryable(Option<Duration>),
    /// Any other non-2xx: not retried.
    Permanent,
}

#[derive(Clone, Copy, PartialEq)]
enum Signal {
    Metrics,
    Logs,
}

struct Worker {
    rx: Receiver<Publication>,
    shared: Arc<Shared>,
    clock: Clock,
    agent: ureq::Agent,
    metrics_url: String,
    logs_url: String,
    timeout: Duration,
    max_retries: u32,
    resource: Resource,
    histograms: Histograms,
    /// Newest metrics batch not yet accepted (superseded by each publication).
    metrics: Option<Batch>,
    metrics_gate: Backoff,
    /// Log records not yet in a batch.
    log_queue: VecDeque<LogRecord>,
    /// Log batch being sent or retried.
    logs: Option<Batch>,
    logs_gate: Backoff,
    rng: u64,
}

impl Worker {
    fn run(mut self) {
        loop {
            let now = self.clock.now();
            let msg = match self.next_due() {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(due) => self.rx.recv_timeout(due.saturating_since(now)),
            };
            match msg {
                Ok(p) => {
                    self.ingest(p);
                    // Catch up with a backlog, bounded so that sending is
                    // not postponed indefinitely by a fast producer.
                    for _ in 0..64 {
                        match self.rx.try_recv() {
                            Ok(p) => self.ingest(p),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.stopping() {
                break;
            }
            self.send_due();
        }
        self.flush();
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// When the next attempt is due, if anything is waiting.
    fn next_due(&self) -> Option<MonoTime> {
        let metrics = self.metrics.as_ref().map(|_| self.metrics_gate.not_before);
        let logs = (self.logs.is_some() || !self.log_queue.is_empty()).then_some(self.logs_gate.not_before);
        match (metrics, logs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn ingest(&mut self, p: Publication) {
        for o in &p.observations {
            self.observe(o);
        }
        let body = encode_metrics(&self.resource, &p, &self.histograms);
        // Supersede: the newest cumulative state replaces whatever is pending.
        self.metrics = body.map(|body| Batch { body, attempts: 0 });
        let mut overflowed = false;
        for s in &p.ended_sessions {
            if self.log_queue.len() >= MAX_QUEUED_LOG_RECORDS {
                self.log_queue.pop_front();
                overflowed = true;
            }
            self.log_queue.push_back(session_record(s, p.time_unix_nanos));
        }
        if overflowed {
            SharedCounters::bump(&self.shared.counters.dropped);
        }
    }

    fn observe(&mut self, o: &Sample) {
        let MetricKind::Histogram(bounds) = o.metric.kind else {
            return;
        };
        if !o.value.is_finite() {
            return;
        }
        self.histograms
            .entry((o.metric.name, o.labels.clone()))
            .or_insert_with(|| HistState::new(o.metric, bounds))
            .observe(o.value);
    }

    /// One attempt per signal that is due.
    fn send_due(&mut self) {
        let now = self.clock.now();
        if self.metrics.is_some() && now >= self.metrics_gate.not_before {
            self.attempt(Signal::Metrics, self.timeout);
        }
        if self.logs.is_none() {
            self.fill_log_batch();
        }
        if self.logs.is_some() && !self.stopping() && self.clock.now() >= self.logs_gate.not_before {
            self.attempt(Signal::Logs, self.timeout);
        }
    }

    fn fill_log_batch(&mut self) {
        if self.log_queue.is_empty() {
            return;
        }
        let n = self.log_queue.len().min(MAX_LOG_RECORDS_PER_REQUEST);
        let records: Vec<LogRecord> = self.log_queue.drain(..n).collect();
        let body = encode_logs(&self.resource, records);
        self.logs = Some(Batch { body, attempts: 0 });
    }

    /// Sends the pending batch of `signal` once and books the outcome.
    fn attempt(&mut self, signal: Signal, timeout: Duration) {
        let slot = match signal {
            Signal::Metrics => &mut self.metrics,
            Signal::Logs => &mut self.logs,
        };
        let Some(mut batch) = slot.take() else { return };
        let url = match signal {
            Signal::Metrics => &self.metrics_url,
            Signal::Logs => &self.logs_url,
        };
        let c = &self.shared.counters;
        if batch.attempts > 0 {
            SharedCounters::bump(&c.retries);
        }
        batch.attempts += 1;
        let outcome = post(&self.agent, url, &batch.body, timeout);
        let (ok, error) = match signal {
            Signal::Metrics => (&c.metrics_ok, &c.metrics_error),
            Signal::Logs => (&c.logs_ok, &c.logs_error),
        };
        let now = self.clock.now();
        let failure = match outcome {
            Ok(()) => {
                SharedCounters::bump(ok);
                let gate = self.gate(signal);
                gate.failures = 0;
                gate.not_before = now;
                return;
            }
            Err(failure) => failure,
        };
        SharedCounters::bump(error);
        let mut retry_after = Duration::ZERO;
        match failure {
            Failure::Retryable(after) if batch.attempts <= self.max_retries => {
                retry_after = after.unwrap_or_default();
                match signal {
                    Signal::Metrics => self.metrics = Some(batch),
                    Signal::Logs => self.logs = Some(batch),
                }
            }
            Failure::Retryable(_) => SharedCounters::bump(&c.dropped),
            Failure::Permanent => {}
        }
        let jitter = self.next_random();
        let gate = self.gate(signal);
        gate.failures = gate.failures.saturating_add(1);
        let delay = backoff_delay(gate.failures, jitter).max(retry_after.min(RETRY_AFTER_MAX));
        gate.not_before = now + delay;
    }

    fn gate(&mut self, signal: Signal) -> &mut Backoff {
        match signal {
            Signal::Metrics => &mut self.metrics_gate,
            Signal::Logs => &mut self.logs_gate,
        }
    }

    /// splitmix64: jitter only, no quality needed.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// At stop: take in what is queued, then one last attempt per signal
    /// (backoff ignored) within `timeout` of the stop request; what is
    /// still unsent is counted as dropped.
    fn flush(&mut self) {
        while let Ok(p) = self.rx.try_recv() {
            self.ingest(p);
        }
        let stop_at = MonoTime::from_nanos(self.shared.stop_at.load(Ordering::Relaxed));
        let deadline = stop_at + self.timeout;
        let budget = |w: &Self| deadline.saturating_since(w.clock.now());
        if self.metrics.is_some() && !budget(self).is_zero() {
            self.attempt(Signal::Metrics, budget(self));
        }
        if self.metrics.take().is_some() {
            SharedCounters::bump(&self.shared.counters.dropped);
        }
        loop {
            if self.logs.is_none() {
                self.fill_log_batch();
            }
            if self.logs.is_none() {
                break;
            }
            let b = budget(self);
            if b.is_zero() {
                break;
            }
            let before = self.logs.as_ref().map_or(0, |l| l.attempts);
            self.attempt(Signal::Logs, b);
            if self.logs.as_ref().is_some_and(|l| l.attempts > before) {
                break; // failed and kept for a retry there is no time for
            }
        }
        let unsent =
            usize::from(self.logs.take().is_some()) + self.log_queue.len().div_ceil(MAX_LOG_RECORDS_PER_REQUEST);
        self.log_queue.clear();
        self.shared.counters.dropped.fetch_add(unsent as u64, Ordering::Relaxed);
    }
}

/// `BACKOFF_INITIAL * 2^(failures-1)` capped at `BACKOFF_MAX`, then "equal
/// jitter": uniformly in [d/2, d], so a fleet restarted together does not
/// hit a recovering collector in lockstep.
fn backoff_delay(failures: u32, random: u64) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let d = BACKOFF_INITIAL.saturating_mul(1 << exp).min(BACKOFF_MAX);
    let half = d / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(if nanos == 0 { 0 } else { random % (nanos + 1) })
}

/// One OTLP/HTTP request.
fn post(agent: &ureq::Agent, url: &str, body: &[u8], timeout: Duration) -> Outcome {
    let res = agent
        .post(url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("Content-Type", "application/x-protobuf")
        .send(body);
    let mut resp = match res {
        Ok(r) => r,
        // Connection refused or reset, DNS, timeout: transient by nature.
        Err(_) => return Err(Failure::Retryable(None)),
    };
    // Drain the (small) body so the connection can be reused. A 2xx may
    // carry `partial_success`; rejected points are not retryable either.
    let _ = resp.body_mut().with_config().limit(MAX_RESPONSE_BODY).read_to_vec();
    let status = resp.status().as_u16();
    match status {
        200..=299 => Ok(()),
        429 | 502 | 503 | 504 => {
            let after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Err(Failure::Retryable(after))
        }
        _ => Err(Failure::Permanent),
    }
}

fn kv(key: impl Into<String>, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn kv_str(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn kv_f64(key: impl Into<String>, value: f64) -> KeyValue {
    kv(key, any_value::Value::DoubleValue(value))
}

fn kv_i64(key: impl Into<String>, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn attributes(labels: &[(&'static str, String)]) -> Vec<KeyValue> {
    labels.iter().map(|(k, v)| kv_str(*k, v.as_str())).collect()
}

/// The configured resource attributes, `service.name` first (defaulted).
fn resource(attrs: &[(String, String)]) -> Resource {
    let mut out = Vec::with_capacity(attrs.len() + 1);
    if !attrs.iter().any(|(k, _)| k == "service.name") {
        out.push(kv_str("service.name", SCOPE_NAME));
    }
    out.extend(attrs.iter().map(|(k, v)| kv_str(k.as_str(), v.as_str())));
    Resource {
        attributes: out,
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// Position of a metric in the table (export order); unknown ones last.
fn table_order(name: &str) -> usize {
    METRICS.iter().position(|m| m.name == name).unwrap_or(usize::MAX)
}

/// The metrics request for a publication and the cumulative histogram
/// state (already including its observations); `None` when there is
/// nothing to export.
///
/// Numbers are always `as_double`: the table's values are `f64`, and a
/// series must keep one point type (a counter that switched between int and
/// double would be a type change to the backend). Integers up to 2^53 are
/// exact.
fn encode_metrics(resource: &Resource, p: &Publication, histograms: &Histograms) -> Option<Vec<u8>> {
    let number = |s: &Sample, start: u64| NumberDataPoint {
        attributes: attributes(&s.labels),
        start_time_unix_nano: start,
        time_unix_nano: p.time_unix_nanos,
        value: Some(number_data_point::Value::AsDouble(s.value)),
        ..Default::default()
    };
    // Group samples by metric, keeping their order within a metric.
    let mut groups: Vec<(&'static MetricDef, Vec<&Sample>)> = Vec::new();
    for s in &p.samples {
        if matches!(s.metric.kind, MetricKind::Histogram(_)) {
            continue;
        }
        match groups.iter_mut().find(|(d, _)| d.name == s.metric.name) {
            Some((_, v)) => v.push(s),
            None => groups.push((s.metric, vec![s])),
        }
    }
    let mut metrics: Vec<Metric> = Vec::new();
    for (def, samples) in groups {
        let data = match def.kind {
            MetricKind::Counter => metric::Data::Sum(Sum {
                data_points: samples.iter().map(|s| number(s, p.start_unix_nanos)).collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
            // Gauges have no start time (the data model ignores it).
            MetricKind::Gauge => metric::Data::Gauge(Gauge {
                data_points: samples.iter().map(|s| number(s, 0)).collect(),
            }),
            MetricKind::Histogram(_) => continue,
        };
        metrics.push(new_metric(def, data));
    }
    let mut hist: Vec<(&'static MetricDef, Vec<HistogramDataPoint>)> = Vec::new();
    for ((name, labels), h) in histograms {
        let point = HistogramDataPoint {
            attributes: attributes(labels),
            start_time_unix_nano: p.start_unix_nanos,
            time_unix_nano: p.time_unix_nanos,
            count: h.count,
            // The data model leaves `sum` out when negative values were seen.
            sum: (!h.negative).then_some(h.sum),
            bucket_counts: h.buckets.clone(),
            explicit_bounds: h.bounds.to_vec(),
            min: (h.count > 0).then_some(h.min),
            max: (h.count > 0).then_some(h.max),
            ..Default::default()
        };
        match hist.iter_mut().find(|(d, _)| d.name == *name) {
            Some((_, v)) => v.push(point),
            None => hist.push((h.def, vec![point])),
        }
    }
    for (def, data_points) in hist {
        let data = metric::Data::Histogram(Histogram {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        });
        metrics.push(new_metric(def, data));
    }
    if metrics.is_empty() {
        return None;
    }
    metrics.sort_by(|a, b| (table_order(&a.name), &a.name).cmp(&(table_order(&b.name), &b.name)));
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Some(req.encode_to_vec())
}

fn new_metric(def: &MetricDef, data: metric::Data) -> Metric {
    Metric {
        name: def.name.into(),
        description: def.help.into(),
        unit: def.unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

/// One `session.quality` log record. Attributes: `session.id`,
/// `client.address`, `upstream.address`, `duration_secs`, and per leg
/// `{leg}.packets_received`, `{leg}.packets_lost` (int),
/// `{leg}.loss_ratio`, `{leg}.jitter_secs`, `{leg}.rtt_secs`,
/// `{leg}.mos_worst`, `{leg}.mos_mean` (double; absent values omitted),
/// `{leg}.lost_on_leg` (int), with `{leg}` = `client` / `upstream`.
fn session_record(s: &SessionQuality, observed_unix_nanos: u64) -> LogRecord {
    let mut attrs = vec![
        kv_str("session.id", s.session.as_str()),
        kv_str("client.address", s.client.as_str()),
        kv_str("upstream.address", s.upstream.as_str()),
        kv_f64("duration_secs", s.duration_secs),
    ];
    for leg in &s.legs {
        let l = leg.leg;
        attrs.push(kv_i64(
            format!("{l}.packets_received"),
            i64::try_from(leg.packets_received).unwrap_or(i64::MAX),
        ));
        attrs.push(kv_i64(format!("{l}.packets_lost"), leg.packets_lost));
        attrs.push(kv_f64(format!("{l}.loss_ratio"), leg.loss_ratio));
        if let Some(j) = leg.jitter_secs {
            attrs.push(kv_f64(format!("{l}.jitter_secs"), j));
        }
        if let Some(r) = leg.rtt_secs {
            attrs.push(kv_f64(format!("{l}.rtt_secs"), r));
        }
        if let Some(m) = leg.mos_worst {
            attrs.push(kv_f64(format!("{l}.mos_worst"), m));
        }
        if let Some(m) = leg.mos_mean {
            attrs.push(kv_f64(format!("{l}.mos_mean"), m));
        }
        attrs.push(kv_i64(format!("{l}.lost_on_leg"), leg.lost_on_leg));
    }
    LogRecord {
        time_unix_nano: s.end_unix_nanos,
        observed_time_unix_nano: observed_unix_nanos,
        severity_number: SeverityNumber::Info as i32,
        severity_text: "INFO".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(SESSION_EVENT.into())),
        }),
        attributes: attrs,
        event_name: SESSION_EVENT.into(),
        ..Default::default()
    }
}

fn encode_logs(resource: &Resource, records: Vec<LogRecord>) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        for (failures, full) in [(1, 200), (2, 400), (3, 800), (5, 3200), (6, 5000), (40, 5000)] {
            let full = Duration::from_millis(full);
            for r in [0, 1, u64::MAX / 3, u64::MAX] {
                let d = backoff_delay(failures, r);
                assert!(d >= full / 2 && d <= full, "{failures} {r}: {d:?}");
            }
        }
    }

    #[test]
    fn buckets_are_upper_inclusive() {
        let def = super::super::metrics::def("rtpmb_stream_rtt_seconds").unwrap();
        let MetricKind::Histogram(bounds) = def.kind else {
            panic!()
        };
        let mut h = HistState::new(def, bounds);
        for v in [0.0, 0.001, 0.0011, 2.0, 2.5] {
            h.observe(v);
        }
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[bounds.len() - 1], 1);
        assert_eq!(h.buckets[bounds.len()], 1);
        assert_eq!(h.count, 5);
    }
}
