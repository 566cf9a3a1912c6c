//! Turns the workers' plain counters and session snapshots into one
//! [`Publication`] per interval, and feeds it to the `metrics` facade (the
//! Prometheus recorder behind `GET /metrics`).
//!
//! Runs on the metrics pipeline's thread (`pipeline.rs`), never on a
//! worker: a publication costs one control round-trip per worker and one
//! pass over the sessions.

use super::metrics::{def, Labels, LegQuality, MetricKind, Publication, Sample, SessionQuality, METRICS};
use crate::engine::{kind_label, RtcpMode, SessionSnapshot, Side, KINDS};
use crate::report::names::{media_kind, side_name};
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

/// Stats-stream and exporter facts the publisher reports besides the workers'.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExporterFacts {
    pub stream_subscribers: u64,
    pub stream_events_dropped: u64,
    pub lag_secs: f64,
    pub otlp: Option<OtlpFacts>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct OtlpFacts {
    pub metrics_ok: u64,
    pub metrics_error: u64,
    pub logs_ok: u64,
    pub logs_error: u64,
    pub retries: u64,
    pub dropped: u64,
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
    rates: ClockRates,
    /// (session id, side, ssrc) → previous figures, for interval deltas.
    streams: HashMap<(String, usize, u32), StreamPrev>,
    /// (session id, side) → STUN RTT measurements seen.
    stun: HashMap<(String, usize), (u64, u64)>,
    round: u64,
}

fn sample(name: &'static str, labels: Labels, value: f64) -> Option<Sample> {
    // Every name used here is in the table; a typo is caught by the unit test
    // that publishes a full round.
    def(name).map(|metric| Sample { metric, labels, value })
}

fn direction(side: Side) -> &'static str {
    match side {
        Side::Client => "from_client",
        Side::Upstream => "from_upstream",
    }
}

/// Packet kinds as exported: TURN channel data, ZRTP and unknown are `other`.
fn export_kind(label: &'static str) -> &'static str {
    match label {
        "rtp" | "rtcp" | "stun" | "dtls" => label,
        _ => "other",
    }
}

impl Publisher {
    pub fn new(options: PublishOptions, rates: ClockRates, start_unix_nanos: u64) -> Self {
        Publisher {
            options,
            start_unix_nanos,
            rates,
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
        let mut out: Vec<Option<Sample>> = Vec::new();
        let mut engine = crate::engine::Counters::default();
        let mut io = crate::runtime::IoCounters::default();
        for w in workers {
            io.merge(&w.io);
            if let Some(e) = &w.engine {
                engine.merge(e);
            }
        }
        for side in Side::BOTH {
            let mut by_kind: HashMap<&'static str, (u64, u64)> = HashMap::new();
            for kind in KINDS {
                let k = export_kind(kind_label(kind));
                let e = by_kind.entry(k).or_default();
                e.0 += engine.received[side.index()].packets(kind);
                e.1 += engine.received[side.index()].bytes(kind);
            }
            let mut kinds: Vec<_> = by_kind.into_iter().collect();
            kinds.sort();
            for (k, (packets, bytes)) in kinds {
                let labels = || vec![("direction", direction(side).to_string()), ("kind", k.to_string())];
                out.push(sample("rtpmb_packets_total", labels(), packets as f64));
                out.push(sample("rtpmb_bytes_total", labels(), bytes as f64));
            }
        }
        for reason in crate::engine::DropReason::ALL {
            out.push(sample(
                "rtpmb_dropped_packets_total",
                vec![("reason", reason.label().into())],
                engine.drops[reason.index()] as f64,
            ));
        }
        // Datagrams the worker dropped before the engine (no session).
        out.push(sample(
            "rtpmb_dropped_packets_total",
            vec![("reason", "no_session".into())],
            io.dropped_no_session as f64,
        ));
        for (reason, v) in [
            ("would_block", io.send_would_block),
            ("refused", io.send_refused),
            ("other", io.send_other_errors),
        ] {
            out.push(sample(
                "rtpmb_send_errors_total",
                vec![("reason", reason.into())],
                v as f64,
            ));
        }
        for (reason, v) in [("refused", io.recv_refused), ("other", io.recv_other_errors)] {
            out.push(sample(
                "rtpmb_receive_errors_total",
                vec![("reason", reason.into())],
                v as f64,
            ));
        }
        for (counter, value) in kernel_udp_errors() {
            out.push(sample(
                "rtpmb_kernel_udp_errors_total",
                vec![("counter", counter.into())],
                value as f64,
            ));
        }
        out.push(sample("rtpmb_sessions_active", vec![], active as f64));
        out.push(sample(
            "rtpmb_sessions_created_total",
            vec![],
            io.sessions_created as f64,
        ));
        out.push(sample(
            "rtpmb_sessions_expired_total",
            vec![],
            io.sessions_expired as f64,
        ));
        out.push(sample(
            "rtpmb_sessions_refused_total",
            vec![],
            io.sessions_refused as f64,
        ));
        out.push(sample(
            "rtpmb_sessions_rate_limited_total",
            vec![],
            engine.sessions_rate_limited as f64,
        ));
        out.push(sample(
            "rtpmb_sessions_unanswered_total",
            vec![],
            engine.sessions_unanswered as f64,
        ));
        for (outcome, v) in [
            ("rebound", engine.sessions_rebound),
            ("rejected", engine.rebinds_rejected),
        ] {
            out.push(sample(
                "rtpmb_nat_rebinding_total",
                vec![("outcome", outcome.into())],
                v as f64,
            ));
        }
        for cap in crate::engine::Cap::ALL {
            out.push(sample(
                "rtpmb_caps_hit_total",
                vec![("cap", cap.label().into())],
                engine.caps_hit.get(cap) as f64,
            ));
        }
        for mode in RtcpMode::ALL {
            let c = engine.rtcp_by_mode[mode.index()];
            let labels = || vec![("mode", mode.to_string())];
            out.push(sample(
                "rtpmb_rtcp_reports_generated_total",
                labels(),
                c.generated as f64,
            ));
            out.push(sample("rtpmb_rtcp_reports_consumed_total", labels(), c.consumed as f64));
            out.push(sample(
                "rtpmb_rtcp_reports_forwarded_total",
                labels(),
                c.forwarded as f64,
            ));
        }
        out.push(sample(
            "rtpmb_rtcp_suppression_detected_total",
            vec![],
            engine.suppression_detected as f64,
        ));
        out.push(sample(
            "rtpmb_rtcp_unreadable_total",
            vec![],
            engine.rtcp_unreadable as f64,
        ));
        out.push(sample(
            "rtpmb_srtcp_auth_failures_total",
            vec![],
            engine.srtcp_auth_failures as f64,
        ));
        out.push(sample("rtpmb_rtt_samples_total", vec![], engine.rtt_samples as f64));
        out.push(sample(
            "rtpmb_stats_stream_subscribers",
            vec![],
            facts.stream_subscribers as f64,
        ));
        out.push(sample(
            "rtpmb_stats_events_dropped_total",
            vec![],
            facts.stream_events_dropped as f64,
        ));
        out.push(sample("rtpmb_publish_lag_seconds", vec![], facts.lag_secs));
        if let Some(o) = facts.otlp {
            for (signal, result, v) in [
                ("metrics", "ok", o.metrics_ok),
                ("metrics", "error", o.metrics_error),
                ("logs", "ok", o.logs_ok),
                ("logs", "error", o.logs_error),
            ] {
                out.push(sample(
                    "rtpmb_otlp_exports_total",
                    vec![("signal", signal.into()), ("result", result.into())],
                    v as f64,
                ));
            }
            out.push(sample("rtpmb_otlp_retries_total", vec![], o.retries as f64));
            out.push(sample("rtpmb_otlp_dropped_total", vec![], o.dropped as f64));
        }
        p.samples.extend(out.into_iter().flatten());
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
                    let kind = media_kind(self.rates.kind(rtp.payload_type));
                    if let Some(j) = rtp.jitter {
                        p.observations
                            .extend(sample("rtpmb_stream_jitter_seconds", vec![("kind", kind.into())], j));
                    }
                    // RFC 3550 A.3 over the publication interval.
                    let (e0, r0) = prev.map_or((0, 0), |x| (x.expected, x.received));
                    let expected = now.expected.saturating_sub(e0);
                    let received = now.received.saturating_sub(r0);
                    if expected > 0 {
                        let fraction = expected.saturating_sub(received) as f64 / expected as f64;
                        now.fraction = Some(fraction);
                        p.observations.extend(sample(
                            "rtpmb_stream_fraction_lost",
                            vec![("kind", kind.into())],
                            fraction,
                        ));
                    }
                }
                // Report blocks and DLRR about this source come from the other
                // side: their RTT is that leg's.
                let rtt_leg = side_name(side.other());
                let (rtt0, xr0) = prev.map_or((0, 0), |x| (x.rtt_measurements, x.xr_measurements));
                if let Some(r) = &src.remote {
                    if r.rtt.measurements > rtt0 {
                        if let Some(last) = r.rtt.last {
                            p.observations.extend(sample(
                                "rtpmb_stream_rtt_seconds",
                                vec![("leg", rtt_leg.into()), ("method", "sr_rr".into())],
                                last,
                            ));
                        }
                    }
                }
                if src.xr_rtt.measurements > xr0 {
                    if let Some(last) = src.xr_rtt.last {
                        p.observations.extend(sample(
                            "rtpmb_stream_rtt_seconds",
                            vec![("leg", rtt_leg.into()), ("method", "xr_dlrr".into())],
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
                    p.observations.extend(sample(
                        "rtpmb_stream_rtt_seconds",
                        vec![("leg", side_name(side).into()), ("method", "stun".into())],
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
                    p.samples.extend(sample(
                        "rtpmb_session_rtt_seconds",
                        vec![("session", v.id.clone()), ("leg", side_name(side).into())],
                        rtt,
                    ));
                }
                let streams = leg.sources.iter().filter_map(|s| s.rtp.as_ref());
                let jitter = streams.clone().filter_map(|r| r.jitter).reduce(f64::max);
                if let Some(j) = jitter {
                    p.samples.extend(sample(
                        "rtpmb_session_jitter_seconds",
                        vec![("session", v.id.clone()), ("direction", direction(side).into())],
                        j,
                    ));
                }
                let fraction = leg
                    .sources
                    .iter()
                    .filter_map(|src| self.streams.get(&(v.id.clone(), side.index(), src.ssrc))?.fraction)
                    .reduce(f64::max);
                if let Some(f) = fraction {
                    p.samples.extend(sample(
                        "rtpmb_session_fraction_lost",
                        vec![("session", v.id.clone()), ("direction", direction(side).into())],
                        f,
                    ));
                }
            }
        }
    }
}

/// Kernel UDP counters from /proc/net/snmp (Linux; empty elsewhere). They
/// are machine-wide: drops before any socket read them (buffer overflow on
/// the relay's sockets under a flood or a stall) and datagrams no socket
/// accepts (e.g. sent to a session's connected upstream socket by anyone
/// but the upstream: the kernel filters them, the proxy never sees them).
pub fn kernel_udp_errors() -> Vec<(&'static str, u64)> {
    let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") else {
        return Vec::new();
    };
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return Vec::new();
    };
    let fields: HashMap<&str, u64> = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter_map(|(n, v)| Some((n, v.parse().ok()?)))
        .collect();
    [
        ("receive_buffer", "RcvbufErrors"),
        ("send_buffer", "SndbufErrors"),
        ("no_port", "NoPorts"),
        ("in_errors", "InErrors"),
    ]
    .into_iter()
    .filter_map(|(label, field)| Some((label, *fields.get(field)?)))
    .collect()
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
    let legs = Side::BOTH
        .into_iter()
        .map(|side| {
            let leg = s.side(side);
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

/// A Prometheus recorder with the table's descriptions and fixed buckets;
/// gauges not updated for `gauge_expiry` disappear (per-session series of
/// ended sessions).
pub fn prometheus_recorder(gauge_expiry: Duration) -> (PrometheusRecorder, PrometheusHandle) {
    let mut builder = PrometheusBuilder::new().idle_timeout(MetricKindMask::GAUGE, Some(gauge_expiry));
    for m in METRICS {
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
        for m in METRICS {
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
