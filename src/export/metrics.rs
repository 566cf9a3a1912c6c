//! The one table of every exported metric, and the per-interval
//! [`Publication`] the exporters (Prometheus text via the `metrics` facade,
//! OTLP push) are fed from.
//!
//! The packet path never touches a registry: workers bump plain counters
//! they own (`engine::Counters`, `runtime::IoCounters`); a publisher reads
//! them once per interval through the control channel, turns them into a
//! [`Publication`], and hands that to the exporters. Labels are bounded:
//! direction, packet kind, drop reason, RTCP mode, leg, RTT method, media
//! kind. SSRCs and addresses never label aggregate series; the optional
//! per-session series carry a `session` label under a hard cap.

use serde::Serialize;

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricKind {
    /// Monotonic, cumulative since start.
    Counter,
    Gauge,
    /// Fixed bucket upper bounds (Prometheus `le`), ascending.
    Histogram(&'static [f64]),
}

/// One row of the metrics table.
#[derive(Debug)]
pub struct MetricDef {
    /// Prometheus name (base units, `_total` on counters).
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
    /// Label names; each has a bounded value set (see [`label_values`]).
    pub labels: &'static [&'static str],
    /// UCUM unit for OTLP ("s", "By", "1", "{packet}").
    pub unit: &'static str,
}

/// RTT buckets, seconds: 1 ms … 2 s.
pub const RTT_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0];
/// Jitter buckets, seconds: 0.5 ms … 500 ms.
pub const JITTER_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5];
/// Interval fraction-lost buckets, 0..1.
pub const FRACTION_LOST_BUCKETS: &[f64] = &[0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

macro_rules! metric {
    ($name:literal, $kind:expr, $unit:literal, [$($label:literal),*], $help:literal) => {
        MetricDef { name: $name, kind: $kind, help: $help, labels: &[$($label),*], unit: $unit }
    };
}

use MetricKind::{Counter, Gauge, Histogram};

/// Every metric the proxy exports. Names are pinned by `docker/metric-names.txt`
/// (the Grafana dashboard's queries are checked against it).
#[rustfmt::skip]
pub static METRICS: &[MetricDef] = &[
    metric!("rtpmb_packets_total", Counter, "{packet}", ["direction", "kind"],
        "Datagrams received for relaying, by direction and packet kind."),
    metric!("rtpmb_bytes_total", Counter, "By", ["direction", "kind"],
        "UDP payload bytes received for relaying, by direction and packet kind."),
    metric!("rtpmb_dropped_packets_total", Counter, "{packet}", ["reason"],
        "Datagrams dropped by the proxy, by reason."),
    metric!("rtpmb_send_errors_total", Counter, "{packet}", ["reason"],
        "Datagrams the kernel refused to send, by reason."),
    metric!("rtpmb_receive_errors_total", Counter, "{error}", ["reason"],
        "Socket receive errors, by reason (refused: ICMP unreachable from the upstream)."),
    metric!("rtpmb_kernel_udp_errors_total", Counter, "{packet}", ["counter"],
        "Machine-wide kernel UDP errors from /proc/net/snmp: receive/send buffer overflows (datagrams dropped before any socket read them), no port (including datagrams to a session's upstream socket from anyone but the upstream), all receive errors."),
    metric!("rtpmb_sessions_active", Gauge, "{session}", [],
        "Sessions currently relayed."),
    metric!("rtpmb_sessions_created_total", Counter, "{session}", [],
        "Sessions opened."),
    metric!("rtpmb_sessions_expired_total", Counter, "{session}", [],
        "Sessions closed after their idle timeout."),
    metric!("rtpmb_sessions_rate_limited_total", Counter, "{session}", [],
        "New client addresses refused by the per-source-prefix session rate (a spoofed flood)."),
    metric!("rtpmb_sessions_unanswered_total", Counter, "{session}", [],
        "Sessions closed because the upstream never answered them."),
    metric!("rtpmb_sessions_refused_total", Counter, "{session}", [],
        "New client addresses refused (session limit or no upstream port)."),
    metric!("rtpmb_nat_rebinding_total", Counter, "{check}", ["outcome"],
        "ICE checks from a session's new client address: rebound (the upstream accepted it, the session moved) or rejected (refused or unanswered; the session stayed)."),
    metric!("rtpmb_caps_hit_total", Counter, "{event}", ["cap"],
        "Times a hard cap on attacker-growable state refused or evicted something, by cap."),
    metric!("rtpmb_rtcp_reports_generated_total", Counter, "{report}", ["mode"],
        "RTCP compounds the proxy generated, by the relay's RTCP mode."),
    metric!("rtpmb_rtcp_reports_consumed_total", Counter, "{report}", ["mode"],
        "RTCP compounds the proxy consumed (terminate: report-only compounds)."),
    metric!("rtpmb_rtcp_reports_forwarded_total", Counter, "{report}", ["mode"],
        "RTCP compounds forwarded (unchanged, or with report blocks removed in terminate)."),
    metric!("rtpmb_rtcp_suppression_detected_total", Counter, "{stream}", [],
        "auto: streams whose receiver stopped sending report blocks."),
    metric!("rtpmb_rtcp_unreadable_total", Counter, "{report}", [],
        "RTCP compounds forwarded unread (SRTCP without keys)."),
    metric!("rtpmb_srtcp_auth_failures_total", Counter, "{report}", [],
        "SRTCP compounds failing authentication with provisioned keys (dropped)."),
    metric!("rtpmb_rtt_samples_total", Counter, "{sample}", [],
        "Valid RTT samples from report blocks, XR DLRR and STUN."),
    metric!("rtpmb_stream_rtt_seconds", Histogram(RTT_BUCKETS), "s", ["leg", "method"],
        "Per-stream RTT of a leg (proxy to endpoint), one sample per stream per interval with a new measurement."),
    metric!("rtpmb_stream_jitter_seconds", Histogram(JITTER_BUCKETS), "s", ["kind"],
        "Per-stream RFC 3550 interarrival jitter at the proxy, one sample per stream per interval."),
    metric!("rtpmb_stream_fraction_lost", Histogram(FRACTION_LOST_BUCKETS), "1", ["kind"],
        "Per-stream fraction of packets lost in the interval at the proxy (RFC 3550 A.3)."),
    metric!("rtpmb_stats_stream_subscribers", Gauge, "{subscriber}", [],
        "Clients subscribed to /v1/stream (SSE and WebSocket)."),
    metric!("rtpmb_stats_events_dropped_total", Counter, "{event}", [],
        "Stats stream events a slow subscriber lost (drop-oldest)."),
    metric!("rtpmb_publish_lag_seconds", Gauge, "s", [],
        "How late the last metrics publication ran against its schedule."),
    metric!("rtpmb_otlp_exports_total", Counter, "{request}", ["signal", "result"],
        "OTLP export requests, by signal (metrics, logs) and result (ok, error)."),
    metric!("rtpmb_otlp_retries_total", Counter, "{request}", [],
        "OTLP export attempts retried after a failure."),
    metric!("rtpmb_otlp_dropped_total", Counter, "{batch}", [],
        "OTLP batches given up (exporter queue full or retries exhausted)."),
    metric!("rtpmb_session_rtt_seconds", Gauge, "s", ["session", "leg"],
        "Optional ([metrics] per_session): latest RTT of a session's leg."),
    metric!("rtpmb_session_jitter_seconds", Gauge, "s", ["session", "direction"],
        "Optional ([metrics] per_session): worst stream jitter of a session per direction."),
    metric!("rtpmb_session_fraction_lost", Gauge, "1", ["session", "direction"],
        "Optional ([metrics] per_session): worst stream interval fraction lost per direction."),
];

/// Looks a metric up by name (exporters and tests; not on the packet path).
pub fn def(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}

/// The bounded value set of each label (`None`: the `session` label, capped
/// by `[metrics] max_session_series` instead).
pub fn label_values(label: &str) -> Option<Vec<&'static str>> {
    let fixed: &[&'static str] = match label {
        "direction" => &["from_client", "from_upstream"],
        "kind" => &["rtp", "rtcp", "stun", "dtls", "other", "audio", "video", "unknown"],
        "reason" => {
            let mut v: Vec<&'static str> = crate::engine::DropReason::ALL.iter().map(|r| r.label()).collect();
            v.extend(IO_REASONS);
            return Some(v);
        }
        "mode" => &["forward", "auto", "terminate"],
        "leg" => &["client", "upstream"],
        "method" => &["sr_rr", "xr_dlrr", "stun"],
        "signal" => &["metrics", "logs"],
        "counter" => &["receive_buffer", "send_buffer", "no_port", "in_errors"],
        "result" => &["ok", "error"],
        "outcome" => &["rebound", "rejected"],
        "cap" => {
            return Some(crate::engine::Cap::ALL.iter().map(|c| c.label()).collect());
        }
        _ => return None,
    };
    Some(fixed.to_vec())
}

/// `reason` values of socket-level drops and errors (besides the engine's
/// drop reasons).
pub const IO_REASONS: [&str; 4] = ["no_session", "would_block", "refused", "other"];

/// A label set: (name, value) in the table's label order.
pub type Labels = Vec<(&'static str, String)>;

/// A counter's cumulative value or a gauge's current value.
#[derive(Clone, Debug)]
pub struct Sample {
    pub metric: &'static MetricDef,
    pub labels: Labels,
    pub value: f64,
}

/// End-of-session quality record (OTLP log record; also the `session`
/// event on the stats stream).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionQuality {
    pub session: String,
    pub client: String,
    pub upstream: String,
    pub duration_secs: f64,
    /// Wall clock of the session's last activity, ns since the Unix epoch.
    pub end_unix_nanos: u64,
    pub legs: Vec<LegQuality>,
}

/// Final figures of one leg: what the proxy received from that side.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LegQuality {
    pub leg: &'static str,
    pub streams: usize,
    pub packets_received: u64,
    pub packets_lost: i64,
    /// Lost / expected over the session, 0..1.
    pub loss_ratio: f64,
    /// Worst final RFC 3550 jitter of the leg's streams, seconds.
    pub jitter_secs: Option<f64>,
    /// Mean RTT of the leg (any method), seconds.
    pub rtt_secs: Option<f64>,
}

/// Everything exporters get per interval.
#[derive(Clone, Debug, Default)]
pub struct Publication {
    /// When the values were read, ns since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Process start (start of every cumulative counter), ns since the epoch.
    pub start_unix_nanos: u64,
    /// Counters (cumulative) and gauges (current), every label set.
    pub samples: Vec<Sample>,
    /// Histogram observations made this interval (exporters aggregate).
    pub observations: Vec<Sample>,
    /// Sessions that ended since the previous publication.
    pub ended_sessions: Vec<SessionQuality>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn valid_name(n: &str) -> bool {
        // Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*; ours are lower-case snake.
        n.starts_with("rtpmb_")
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }

    #[test]
    fn every_metric_is_defined_once_with_a_valid_name() {
        let mut seen = HashSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} defined twice", m.name);
            assert!(valid_name(m.name), "{} is not a valid name", m.name);
            assert!(!m.help.is_empty(), "{} has no help", m.name);
            match m.kind {
                MetricKind::Counter => assert!(m.name.ends_with("_total"), "counter {} lacks _total", m.name),
                _ => assert!(!m.name.ends_with("_total"), "{} is not a counter", m.name),
            }
            if m.unit == "s" {
                assert!(
                    m.name.ends_with("_seconds"),
                    "{}: base unit seconds in the name",
                    m.name
                );
            }
            if m.unit == "By" {
                assert!(m.name.contains("_bytes"), "{}: bytes in the name", m.name);
            }
        }
    }

    #[test]
    fn label_sets_are_bounded_and_session_labels_only_on_per_session_series() {
        for m in METRICS {
            for label in m.labels {
                assert!(
                    !["ssrc", "address", "client", "upstream"].contains(label),
                    "{} has an unbounded label {label}",
                    m.name
                );
                if *label == "session" {
                    assert!(m.name.starts_with("rtpmb_session_"), "{} is aggregate", m.name);
                } else {
                    let values = label_values(label).unwrap_or_else(|| panic!("{}: label {label} unbounded", m.name));
                    assert!(!values.is_empty() && values.len() <= 32, "{}: {label}", m.name);
                }
            }
            let series: usize = m
                .labels
                .iter()
                .filter(|l| **l != "session")
                .map(|l| label_values(l).map_or(1, |v| v.len()))
                .product();
            assert!(series <= 64, "{} may have {series} series", m.name);
        }
    }

    #[test]
    fn histogram_buckets_are_ascending_and_non_empty() {
        for m in METRICS {
            if let MetricKind::Histogram(b) = m.kind {
                assert!(!b.is_empty(), "{}", m.name);
                assert!(b.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
            }
        }
    }

    #[test]
    fn docker_metric_names_match_the_table() {
        // `TYPE NAME LABELS` per line; the Grafana dashboard is checked
        // against this file by scripts/check-deploy.sh.
        let pinned = include_str!("../../docker/metric-names.txt");
        let rows: Vec<(String, String, String)> = pinned
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_string(), f[1].to_string(), f[2].to_string())
            })
            .collect();
        let table: Vec<(String, String, String)> = METRICS
            .iter()
            .map(|m| {
                let kind = match m.kind {
                    MetricKind::Counter => "counter",
                    MetricKind::Gauge => "gauge",
                    MetricKind::Histogram(_) => "histogram",
                };
                let labels = if m.labels.is_empty() {
                    "-".to_string()
                } else {
                    m.labels.join(",")
                };
                (kind.to_string(), m.name.to_string(), labels)
            })
            .collect();
        assert_eq!(rows, table, "docker/metric-names.txt and the table differ");
    }
}
