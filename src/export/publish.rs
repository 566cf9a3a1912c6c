//! Turns the workers' plain counters and session snapshots into one
//! [`Publication`] per interval, and feeds it to the `metrics` facade (the
//! Prometheus recorder behind `GET /metrics`).
//!
//! Runs on the metrics pipeline's thread (`pipeline.rs`), never on a
//! worker: a publication costs one control round-trip per worker and one
//! pass over the sessions.

use super::metrics::{
    counters, Label, Labels, LegQuality, MetricDef, MetricKind, Observed, Publication, Sample, SessionQuality,
    DIRECTIONS, METRICS,
};
use crate::engine::{SessionSnapshot, Side};
use crate::report::names::side_name;
use crate::runtime::{SessionView, WorkerStats};
use crate::stats::ClockRates;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use metrics_util::MetricKindMask;
use std::collections::HashMap;
use std::time::Duration;

/// `[metrics]`: what the publisher exports and how often.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// No publisher and no `/metrics` when false.
    pub enabled: bool,
    pub interval: Duration,
    /// Per-session gauges (`session` label), capped at `max_session_series`
    /// sessions (the worst by loss first).
    pub per_session: bool,
    pub max_session_series: usize,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            enabled: true,
            interval: Duration::from_secs(5),
            per_session: false,
            max_session_series: 500,
        }
    }
}

counters! {
    /// Stats-stream and exporter facts the publisher reports besides the workers'.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct ExporterFacts {
        pub stream_subscribers: u64
            => STATS_STREAM_SUBSCRIBERS: gauge("rtpmb_stats_stream_subscribers", "{subscriber}", [],
                "Clients subscribed to /v1/stream (SSE and WebSocket)."),
        pub stream_events_dropped: u64
            => STATS_EVENTS_DROPPED: counter("rtpmb_stats_events_dropped_total", "{event}", [],
                "Stats stream events a slow subscriber lost (drop-oldest)."),
        pub lag_secs: f64
            => PUBLISH_LAG_SECONDS: gauge("rtpmb_publish_lag_seconds", "s", [],
                "How late the last metrics publication ran against its schedule."),
        /// `None` without an OTLP exporter (its series are then absent).
        pub otlp: Option<OtlpFacts>,
    }
}

counters! {
    /// The OTLP exporter's own counters.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct OtlpFacts {
        pub metrics_ok: u64
            => OTLP_EXPORTS: counter("rtpmb_otlp_exports_total", "{request}", [signal, result],
                "OTLP export requests, by signal (metrics, logs) and result (ok, error).")
                {signal = "metrics", result = "ok"},
        pub metrics_error: u64 => OTLP_EXPORTS {signal = "metrics", result = "error"},
        pub logs_ok: u64 => OTLP_EXPORTS {signal = "logs", result = "ok"},
        pub logs_error: u64 => OTLP_EXPORTS {signal = "logs", result = "error"},
        pub retries: u64
            => OTLP_RETRIES: counter("rtpmb_otlp_retries_total", "{request}", [],
                "OTLP export attempts retried after a failure."),
        pub dropped: u64
            => OTLP_DROPPED: counter("rtpmb_otlp_dropped_total", "{batch}", [],
                "OTLP batches given up (exporter queue full or retries exhausted)."),
    }
}

counters! {
    /// What the publisher reads itself each interval: the live sessions,
    /// and the machine's kernel UDP counters ([`Readings::read`]; `None`
    /// where unavailable, and then not exported).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Readings {
        pub sessions_active: u64
            => SESSIONS_ACTIVE: gauge("rtpmb_sessions_active", "{session}", [],
                "Sessions currently relayed."),
        /// `RcvbufErrors`: datagrams dropped on a full receive buffer.
        pub udp_receive_buffer: Option<u64>
            => KERNEL_UDP_ERRORS: counter("rtpmb_kernel_udp_errors_total", "{packet}", [counter],
                "Machine-wide kernel UDP errors from /proc/net/snmp: receive/send buffer overflows (datagrams dropped before any socket read them), no port (including datagrams to a session's upstream socket from anyone but the upstream), all receive errors.")
                {counter = "receive_buffer"},
        /// `SndbufErrors`.
        pub udp_send_buffer: Option<u64> => KERNEL_UDP_ERRORS {counter = "send_buffer"},
        /// `NoPorts`.
        pub udp_no_port: Option<u64> => KERNEL_UDP_ERRORS {counter = "no_port"},
        /// `InErrors`.
        pub udp_in_errors: Option<u64> => KERNEL_UDP_ERRORS {counter = "in_errors"},
    }
}

impl Readings {
    /// `sessions_active` as given, and the kernel UDP counters from
    /// /proc/net/snmp (Linux; `None` elsewhere). They are machine-wide:
    /// drops before any socket read them (buffer overflow on the relay's
    /// sockets under a flood or a stall) and datagrams no socket accepts
    /// (e.g. sent to a session's connected upstream socket by anyone but the
    /// upstream: the kernel filters them, the proxy never sees them).
    pub fn read(sessions_active: usize) -> Readings {
        let mut r = Readings {
            sessions_active: sessions_active as u64,
            ..Readings::default()
        };
        let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") else {
            return r;
        };
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
            return r;
        };
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            let field = match name {
                "RcvbufErrors" => &mut r.udp_receive_buffer,
                "SndbufErrors" => &mut r.udp_send_buffer,
                "NoPorts" => &mut r.udp_no_port,
                "InErrors" => &mut r.udp_in_errors,
                _ => continue,
            };
            *field = value.parse().ok();
        }
        r
    }
}

/// What the previous publication saw of one stream.
#[derive(Clone, Copy, Debug)]
struct StreamPrev {
    expected: u64,
    received: u64,
    rtt_measurements: u64,
    xr_measurements: u64,
    /// Fraction lost over the last interval (RFC 3550 A.3), if any expected.
    fraction: Option<f64>,
    seen: u64,
}

pub struct Publisher {
    options: PublishOptions,
    start_unix_nanos: u64,
    /// (session id, side, ssrc) → previous figures, for interval deltas.
    streams: HashMap<(String, usize, u32), StreamPrev>,
    /// (session id, side) → STUN RTT measurements seen.
    stun: HashMap<(String, usize), (u64, u64)>,
    round: u64,
}

fn direction(side: Side) -> &'static str {
    DIRECTIONS[side.index()]
}

impl Publisher {
    /// `_rates` is no longer read: a stream's kind comes from its snapshot
    /// (its own relay's table and the session's SDP).
    pub fn new(options: PublishOptions, _rates: ClockRates, start_unix_nanos: u64) -> Self {
        Publisher {
            options,
            start_unix_nanos,
            streams: HashMap::new(),
            stun: HashMap::new(),
            round: 0,
        }
    }

    pub fn options(&self) -> &PublishOptions {
        &self.options
    }

    /// One publication from the workers' counters, the live sessions and
    /// those closed since the previous call.
    pub fn publish(
        &mut self,
        now_unix_nanos: u64,
        workers: &[WorkerStats],
        sessions: &[SessionView],
        closed: &[SessionView],
        facts: ExporterFacts,
    ) -> Publication {
        self.round += 1;
        let mut p = Publication {
            time_unix_nanos: now_unix_nanos,
            start_unix_nanos: self.start_unix_nanos,
            ..Default::default()
        };
        self.aggregate(&mut p, workers, sessions.len(), facts);
        for v in sessions {
            self.observe_session(&mut p, v);
        }
        if self.options.per_session {
            self.session_gauges(&mut p, sessions);
        }
        p.ended_sessions = closed.iter().map(quality).collect();
        // Forget streams of sessions that are gone.
        let round = self.round;
        self.streams.retain(|_, s| s.seen == round);
        self.stun.retain(|_, s| s.1 == round);
        p
    }

    fn aggregate(&self, p: &mut Publication, workers: &[WorkerStats], active: usize, facts: ExporterFacts) {
        let mut engine = crate::engine::Counters::default();
        let mut io = crate::runtime::IoCounters::default();
        for w in workers {
            io.merge(&w.io);
            if let Some(e) = &w.engine {
                engine.merge(e);
            }
        }
        let mut push = |metric: &'static MetricDef, labels: &[Label], value: f64| {
            p.samples.push(Sample::new(metric, labels, value))
        };
        engine.series(&mut push);
        io.series(&mut push);
        Readings::read(active).series(&mut push);
        facts.series(&mut push);
        if let Some(o) = &facts.otlp {
            o.series(&mut push);
        }
    }

    /// Histogram observations: one per stream per interval (jitter, interval
    /// fraction lost) and one per new RTT measurement of a leg.
    fn observe_session(&mut self, p: &mut Publication, v: &SessionView) {
        let round = self.round;
        for side in Side::BOTH {
            let leg = v.snapshot.side(side);
            for src in &leg.sources {
                let key = (v.id.clone(), side.index(), src.ssrc);
                let prev = self.streams.get(&key).copied();
                let mut now = StreamPrev {
                    expected: 0,
                    received: 0,
                    rtt_measurements: src.remote.as_ref().map_or(0, |r| r.rtt.measurements),
                    xr_measurements: src.xr_rtt.measurements,
                    fraction: None,
                    seen: round,
                };
                if let Some(rtp) = &src.rtp {
                    now.expected = rtp.packets_expected;
                    now.received = rtp.packets_received;
                    let kind = rtp.kind.name();
                    if let Some(j) = rtp.jitter {
                        p.observations
                            .push(Sample::observed(Observed::STREAM_JITTER_SECONDS, &[kind], j));
                    }
                    // RFC 3550 A.3 over the publication interval.
                    let (e0, r0) = prev.map_or((0, 0), |x| (x.expected, x.received));
                    let expected = now.expected.saturating_sub(e0);
                    let received = now.received.saturating_sub(r0);
                    if expected > 0 {
                        let fraction = expected.saturating_sub(received) as f64 / expected as f64;
                        now.fraction = Some(fraction);
                        p.observations
                            .push(Sample::observed(Observed::STREAM_FRACTION_LOST, &[kind], fraction));
                    }
                }
                // Quality of an audio stream on the leg it arrived over.
                if let (Some(q), Some(rtp)) = (&src.quality, &src.rtp) {
                    let labels = [side_name(side), rtp.kind.name()];
                    let mos = q.mos_cq.unwrap_or(q.mos_lq);
                    p.observations
                        .push(Sample::observed(Observed::STREAM_MOS, &labels, mos));
                    p.observations
                        .push(Sample::observed(Observed::STREAM_R_FACTOR, &labels, q.r_narrowband));
                }
                // Report blocks about this source come from the other side:
                // their RTT is that leg's. DLRR this source sent measures its
                // own leg.
                let rtt_leg = side_name(side.other());
                let (rtt0, xr0) = prev.map_or((0, 0), |x| (x.rtt_measurements, x.xr_measurements));
                if let Some(r) = &src.remote {
                    if r.rtt.measurements > rtt0 {
                        if let Some(last) = r.rtt.last {
                            p.observations.push(Sample::observed(
                                Observed::STREAM_RTT_SECONDS,
                                &[rtt_leg, "sr_rr"],
                                last,
                            ));
                        }
                    }
                }
                if src.xr_rtt.measurements > xr0 {
                    if let Some(last) = src.xr_rtt.last {
                        p.observations.push(Sample::observed(
                            Observed::STREAM_RTT_SECONDS,
                            &[side_name(side), "xr_dlrr"],
                            last,
                        ));
                    }
                }
                self.streams.insert(key, now);
            }
            // STUN: per leg, not per stream (one transaction serves the 5-tuple).
            let key = (v.id.clone(), side.index());
            let seen = self.stun.get(&key).map_or(0, |s| s.0);
            if leg.rtt_stun.measurements > seen {
                if let Some(last) = leg.rtt_stun.last {
                    p.observations.push(Sample::observed(
                        Observed::STREAM_RTT_SECONDS,
                        &[side_name(side), "stun"],
                        last,
                    ));
                }
            }
            self.stun.insert(key, (leg.rtt_stun.measurements, round));
        }
    }

    /// Per-session gauges for the worst sessions, at most `max_session_series`.
    fn session_gauges(&self, p: &mut Publication, sessions: &[SessionView]) {
        let mut ranked: Vec<(f64, &SessionView)> = sessions.iter().map(|v| (worst_loss(&v.snapshot), v)).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        for (_, v) in ranked.into_iter().take(self.options.max_session_series) {
            for side in Side::BOTH {
                let leg = v.snapshot.side(side);
                let rtt = leg.rtt_sr_rr.last.or(leg.rtt_xr_dlrr.last).or(leg.rtt_stun.last);
                if let Some(rtt) = rtt {
                    p.samples.push(Sample::observed(
                        Observed::SESSION_RTT_SECONDS,
                        &[&v.id, side_name(side)],
                        rtt,
                    ));
                }
                let streams = leg.sources.iter().filter_map(|s| s.rtp.as_ref());
                let jitter = streams.clone().filter_map(|r| r.jitter).reduce(f64::max);
                if let Some(j) = jitter {
                    p.samples.push(Sample::observed(
                        Observed::SESSION_JITTER_SECONDS,
                        &[&v.id, direction(side)],
                        j,
                    ));
                }
                let fraction = leg
                    .sources
                    .iter()
                    .filter_map(|src| self.streams.get(&(v.id.clone(), side.index(), src.ssrc))?.fraction)
                    .reduce(f64::max);
                if let Some(f) = fraction {
                    p.samples.push(Sample::observed(
                        Observed::SESSION_FRACTION_LOST,
                        &[&v.id, direction(side)],
                        f,
                    ));
                }
            }
        }
    }
}

/// Cumulative loss ratio of a session's worst stream (ranking for the cap).
fn worst_loss(s: &SessionSnapshot) -> f64 {
    s.sides
        .iter()
        .flat_map(|side| side.sources.iter())
        .filter_map(|src| src.rtp.as_ref())
        .filter(|r| r.packets_expected > 0)
        .map(|r| r.packets_lost.max(0) as f64 / r.packets_expected as f64)
        .fold(0.0, f64::max)
}

/// The end-of-session quality record of a closed session.
pub fn quality(v: &SessionView) -> SessionQuality {
    let s = &v.snapshot;
    let last = s
        .sides
        .iter()
        .filter_map(|x| x.last_activity)
        .fold(s.opened_at, f64::max);
    // Loss per leg over every stream (both directions cross both legs).
    let mut lost_on = [0i64; 2];
    for src in s.sides.iter().flat_map(|x| &x.sources) {
        match crate::report::leg_loss(src) {
            Some((client, upstream)) => {
                lost_on[Side::Client.index()] += client;
                lost_on[Side::Upstream.index()] += upstream;
            }
            None => lost_on[src.side.index()] += src.lost_on_arrival_leg(),
        }
    }
    let legs = Side::BOTH
        .into_iter()
        .map(|side| {
            let leg = s.side(side);
            let mos: Vec<f64> = leg
                .sources
                .iter()
                .filter_map(|x| x.quality.map(|q| q.mos_cq.unwrap_or(q.mos_lq)))
                .collect();
            let rtps: Vec<_> = leg.sources.iter().filter_map(|x| x.rtp.as_ref()).collect();
            let received: u64 = rtps.iter().map(|r| r.packets_received).sum();
            let lost: i64 = rtps.iter().map(|r| r.packets_lost).sum();
            let expected: u64 = rtps.iter().map(|r| r.packets_expected).sum();
            let jitter = rtps.iter().filter_map(|r| r.jitter).reduce(f64::max);
            LegQuality {
                leg: side_name(side),
                streams: rtps.len(),
                packets_received: received,
                packets_lost: lost,
                loss_ratio: if expected > 0 {
                    (lost.max(0) as f64 / expected as f64).clamp(0.0, 1.0)
                } else {
                    0.0
                },
                jitter_secs: jitter,
                rtt_secs: leg.rtt_sr_rr.mean.or(leg.rtt_xr_dlrr.mean).or(leg.rtt_stun.mean),
                mos_worst: mos.iter().copied().reduce(f64::min),
                mos_mean: (!mos.is_empty()).then(|| mos.iter().sum::<f64>() / mos.len() as f64),
                lost_on_leg: lost_on[side.index()],
            }
        })
        .collect();
    SessionQuality {
        session: v.id.clone(),
        client: s.client.to_string(),
        upstream: s.upstream.to_string(),
        duration_secs: (last - s.opened_at).max(0.0),
        end_unix_nanos: ((last * 1000.0 + v.wall_offset_ms).max(0.0) * 1e6) as u64,
        legs,
    }
}

/// The per-leg part of an end-of-session record as one log line: what
/// arrived over each leg, what was lost on it (either direction) and the
/// MOS of its audio.
pub fn legs_line(q: &SessionQuality) -> String {
    let legs: Vec<String> = q
        .legs
        .iter()
        .map(|l| {
            format!(
                "{}: {} packets, {} lost, jitter {}, rtt {}, {} lost on this leg, MOS worst {} mean {}",
                l.leg,
                l.packets_received,
                l.packets_lost,
                l.jitter_secs.map_or("-".into(), |j| format!("{:.1} ms", j * 1e3)),
                l.rtt_secs.map_or("-".into(), |r| format!("{:.1} ms", r * 1e3)),
                l.lost_on_leg,
                l.mos_worst.map_or("-".into(), |m| format!("{m:.2}")),
                l.mos_mean.map_or("-".into(), |m| format!("{m:.2}")),
            )
        })
        .collect();
    legs.join("; ")
}

/// A Prometheus recorder with the table's descriptions and fixed buckets;
/// gauges not updated for `gauge_expiry` disappear (per-session series of
/// ended sessions).
pub fn prometheus_recorder(gauge_expiry: Duration) -> (PrometheusRecorder, PrometheusHandle) {
    let mut builder = PrometheusBuilder::new().idle_timeout(MetricKindMask::GAUGE, Some(gauge_expiry));
    for m in METRICS.iter() {
        if let MetricKind::Histogram(bounds) = m.kind {
            builder = match builder.set_buckets_for_metric(Matcher::Full(m.name.to_string()), bounds) {
                Ok(b) => b,
                // Only an empty bucket list fails; the table's are not empty
                // (checked by a unit test).
                Err(_) => PrometheusBuilder::new(),
            };
        }
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        for m in METRICS.iter() {
            match m.kind {
                MetricKind::Counter => metrics::describe_counter!(m.name, m.help),
                MetricKind::Gauge => metrics::describe_gauge!(m.name, m.help),
                MetricKind::Histogram(_) => metrics::describe_histogram!(m.name, m.help),
            }
        }
    });
    (recorder, handle)
}

fn facade_labels(labels: &Labels) -> Vec<metrics::Label> {
    labels.iter().map(|(k, v)| metrics::Label::new(*k, v.clone())).collect()
}

/// Feeds a publication to a `metrics` recorder: counters absolute,
/// gauges set, histogram observations recorded.
pub fn apply(recorder: &PrometheusRecorder, p: &Publication) {
    metrics::with_local_recorder(recorder, || {
        for s in &p.samples {
            let labels = facade_labels(&s.labels);
            match s.metric.kind {
                MetricKind::Counter => metrics::counter!(s.metric.name, labels).absolute(s.value as u64),
                MetricKind::Gauge => metrics::gauge!(s.metric.name, labels).set(s.value),
                MetricKind::Histogram(_) => metrics::histogram!(s.metric.name, labels).record(s.value),
            }
        }
        for o in &p.observations {
            metrics::histogram!(o.metric.name, facade_labels(&o.labels)).record(o.value);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::metrics::{schema, Table, ANY_SESSION};
    use std::collections::HashSet;

    #[test]
    fn a_publication_carries_every_counted_family_with_declared_labels() {
        let worker = WorkerStats {
            engine: Some(crate::engine::Counters::default()),
            ..WorkerStats::default()
        };
        let facts = ExporterFacts {
            otlp: Some(OtlpFacts::default()),
            ..ExporterFacts::default()
        };
        let mut publisher = Publisher::new(PublishOptions::default(), ClockRates::default(), 0);
        let p = publisher.publish(1, &[worker.clone(), worker], &[], &[], facts);
        let declared: HashSet<(&str, Vec<(&str, &str)>)> =
            schema().into_iter().map(|(def, labels)| (def.name, labels)).collect();
        let mut families = HashSet::new();
        for s in &p.samples {
            let labels: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert!(
                declared.contains(&(s.metric.name, labels)),
                "{} {:?}",
                s.metric.name,
                s.labels
            );
            families.insert(s.metric.name);
        }
        // Everything but what needs sessions (histograms, per-session
        // gauges), and the kernel's counters only where there are any.
        let kernel = std::path::Path::new("/proc/net/snmp").exists();
        for m in METRICS.iter() {
            let observed = Observed::METRICS.iter().any(|o| o.name == m.name);
            let expected = !observed && (kernel || m.name != "rtpmb_kernel_udp_errors_total");
            assert_eq!(families.contains(m.name), expected, "{}", m.name);
        }
        assert_eq!(Observed::dimensions(Observed::SESSION_RTT_SECONDS)[0].1, ANY_SESSION);
    }
}
