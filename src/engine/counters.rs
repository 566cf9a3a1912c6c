//! Engine-wide counters: plain integers on the packet path, read by the
//! exporters from snapshots. Every drop has a reason; labels are bounded
//! enums, never SSRCs or addresses. [`Counters`] is declared with the
//! metrics table's `counters!` (see `export::metrics`): a field's row also
//! names the metric family it feeds.

use super::{RtcpMode, Side};
use crate::export::metrics::{counters, Dimension, EmitField, Label, Series, Tally, DIRECTIONS};
use crate::srtp::SrtpError;
use crate::wire::rtcp::RtcpError;
use crate::wire::rtp::RtpError;
use crate::wire::stun::StunError;
use crate::wire::PacketKind;
use serde::Serialize;

/// Why a datagram was not forwarded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DropReason {
    Empty,
    UnknownProtocol,
    UnknownSession,
    Rtp(RtpError),
    Rtcp(RtcpError),
    Stun(StunError),
    /// The per-session cap on SSRCs was reached; a new SSRC's packets drop.
    SourceLimit,
    /// Over the session's per-side packet rate (`[limits]`).
    RateLimited,
    /// SRTCP with provisioned keys that did not open (authentication,
    /// replay, framing): dropped, never forwarded as modified.
    Srtcp(SrtpError),
    /// DTLS termination: SRTP/SRTCP before both legs have keys.
    DtlsPending,
    /// DTLS termination: a leg's handshake failed; nothing passes.
    DtlsFailed,
    /// DTLS termination: SRTP that did not open with its leg's keys
    /// (authentication, replay) or could not be protected for the other.
    SrtpRejected,
    /// NAT rebinding: an ICE check from a client's new address that came
    /// before its old address had been silent for a second; held so the
    /// next check can move the session (`Engine::rebinding_check`).
    RebindingHeld,
}

impl DropReason {
    pub const ALL: [DropReason; 29] = [
        DropReason::Empty,
        DropReason::UnknownProtocol,
        DropReason::UnknownSession,
        DropReason::Rtp(RtpError::TooShort),
        DropReason::Rtp(RtpError::BadVersion),
        DropReason::Rtp(RtpError::CsrcOverrun),
        DropReason::Rtp(RtpError::ExtensionOverrun),
        DropReason::Rtp(RtpError::BadPadding),
        DropReason::Rtcp(RtcpError::TooShort),
        DropReason::Rtcp(RtcpError::BadVersion),
        DropReason::Rtcp(RtcpError::LengthOverrun),
        DropReason::Rtcp(RtcpError::BadPadding),
        DropReason::Rtcp(RtcpError::BodyTooShort),
        DropReason::Stun(StunError::TooShort),
        DropReason::Stun(StunError::NotStun),
        DropReason::Stun(StunError::BadCookie),
        DropReason::Stun(StunError::BadLength),
        DropReason::SourceLimit,
        DropReason::RateLimited,
        DropReason::Srtcp(SrtpError::TooShort),
        DropReason::Srtcp(SrtpError::BadVersion),
        DropReason::Srtcp(SrtpError::Unencrypted),
        DropReason::Srtcp(SrtpError::AuthFailed),
        DropReason::Srtcp(SrtpError::Replayed),
        DropReason::Srtcp(SrtpError::Crypto),
        DropReason::DtlsPending,
        DropReason::DtlsFailed,
        DropReason::SrtpRejected,
        DropReason::RebindingHeld,
    ];

    /// Index into [`Counters::drops`].
    pub fn index(self) -> usize {
        // Linear over 18 entries: only dropped packets pay for it.
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    pub fn label(self) -> &'static str {
        match self {
            DropReason::Empty => "empty",
            DropReason::UnknownProtocol => "unknown_protocol",
            DropReason::UnknownSession => "unknown_session",
            DropReason::Rtp(e) => e.reason(),
            DropReason::Rtcp(e) => e.reason(),
            DropReason::Stun(e) => e.reason(),
            DropReason::SourceLimit => "source_limit",
            DropReason::RateLimited => "rate_limited",
            DropReason::DtlsPending => "dtls_pending",
            DropReason::DtlsFailed => "dtls_failed",
            DropReason::SrtpRejected => "srtp_rejected",
            DropReason::RebindingHeld => "rebinding_held",
            DropReason::Srtcp(e) => match e {
                SrtpError::TooShort => "srtcp_too_short",
                SrtpError::BadVersion => "srtcp_bad_version",
                SrtpError::Unencrypted => "srtcp_unencrypted",
                SrtpError::AuthFailed => "srtcp_auth_failed",
                SrtpError::Replayed => "srtcp_replayed",
                SrtpError::Crypto => "srtcp_crypto_error",
            },
        }
    }
}

pub const DROP_REASONS: usize = DropReason::ALL.len();

/// `reason` of [`Counters::drops`].
impl Dimension<DROP_REASONS> for DropReason {
    const LABEL: &'static str = "reason";
    fn value(index: usize) -> &'static str {
        DropReason::ALL[index].label()
    }
}

/// `direction` of [`Counters::received`].
impl Dimension<2> for Side {
    const LABEL: &'static str = "direction";
    fn value(index: usize) -> &'static str {
        DIRECTIONS[index]
    }
}

/// `mode` of [`Counters::rtcp_by_mode`] (`RtcpMode::ALL` order).
impl Dimension<3> for RtcpMode {
    const LABEL: &'static str = "mode";
    fn value(index: usize) -> &'static str {
        ["forward", "auto", "terminate"][index]
    }
}

/// Hard caps on state an attacker can grow. Every time one refuses or
/// evicts something, [`Counters::caps_hit`] counts it under the cap's label,
/// so an operator sees which bound a flood is pressing on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cap {
    /// `[limits] max_sessions`: a new session refused.
    SessionTable,
    /// Source prefixes tracked by the session-rate limiter: the table was
    /// full of busy prefixes and started over.
    PrefixTable,
    /// SSRCs tracked per side of a session: a new SSRC's packet dropped.
    SourcesPerSide,
    /// STUN requests awaiting their response per side: a young unanswered
    /// one was evicted (its RTT sample is lost).
    StunTransactions,
    /// Forwarded SR/RRTR times kept per SSRC for RTT: one younger than a
    /// second was evicted (a report flood).
    RttReportLog,
    /// Engine events queued for the driver: the oldest was dropped.
    EventQueue,
    /// Generated reports queued for sending: the oldest was dropped.
    TransmitQueue,
    /// NAT rebinding checks awaiting the upstream's answer: a new one refused.
    RebindChecks,
}

impl Cap {
    pub const ALL: [Cap; 8] = [
        Cap::SessionTable,
        Cap::PrefixTable,
        Cap::SourcesPerSide,
        Cap::StunTransactions,
        Cap::RttReportLog,
        Cap::EventQueue,
        Cap::TransmitQueue,
        Cap::RebindChecks,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Cap::SessionTable => "session_table",
            Cap::PrefixTable => "prefix_table",
            Cap::SourcesPerSide => "sources_per_side",
            Cap::StunTransactions => "stun_transactions",
            Cap::RttReportLog => "rtt_report_log",
            Cap::EventQueue => "event_queue",
            Cap::TransmitQueue => "transmit_queue",
            Cap::RebindChecks => "rebind_checks",
        }
    }
}

/// Hits per [`Cap`], serialised as `{"session_table": n, …}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapHits([u64; Cap::ALL.len()]);

impl CapHits {
    #[inline]
    pub fn hit(&mut self, cap: Cap) {
        self.0[cap as usize] += 1;
    }

    pub fn get(&self, cap: Cap) -> u64 {
        self.0[cap as usize]
    }
}

impl Tally for CapHits {
    fn merge(&mut self, o: &CapHits) {
        self.0.merge(&o.0);
    }
}

/// One series per cap, labelled `cap`.
impl Series for CapHits {
    fn series(&self, _col: usize, labels: &mut Vec<Label>, emit: &mut EmitField<'_>) {
        for cap in Cap::ALL {
            labels.push(("cap", cap.label()));
            emit(labels, self.get(cap) as f64);
            labels.pop();
        }
    }
}

impl Serialize for CapHits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(Cap::ALL.len()))?;
        for cap in Cap::ALL {
            m.serialize_entry(cap.label(), &self.get(cap))?;
        }
        m.end()
    }
}

pub const KINDS: [PacketKind; 7] = [
    PacketKind::Rtp,
    PacketKind::Rtcp,
    PacketKind::Stun,
    PacketKind::Dtls,
    PacketKind::TurnChannel,
    PacketKind::Zrtp,
    PacketKind::Unknown,
];

#[inline]
pub fn kind_index(kind: PacketKind) -> usize {
    match kind {
        PacketKind::Rtp => 0,
        PacketKind::Rtcp => 1,
        PacketKind::Stun => 2,
        PacketKind::Dtls => 3,
        PacketKind::TurnChannel => 4,
        PacketKind::Zrtp => 5,
        PacketKind::Unknown => 6,
    }
}

/// Packets and bytes per packet kind, for one direction. Each kind's pair
/// sits together (16 bytes) so an update touches one cache line.
#[derive(Clone, Copy, Debug, Default)]
pub struct KindCounts {
    counts: [[u64; 2]; 7],
}

impl KindCounts {
    #[inline]
    pub fn add(&mut self, kind: PacketKind, len: usize) {
        let c = &mut self.counts[kind_index(kind)];
        c[0] += 1;
        c[1] += len as u64;
    }

    pub fn packets(&self, kind: PacketKind) -> u64 {
        self.counts[kind_index(kind)][0]
    }

    pub fn bytes(&self, kind: PacketKind) -> u64 {
        self.counts[kind_index(kind)][1]
    }

    pub fn total_packets(&self) -> u64 {
        self.counts.iter().map(|c| c[0]).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.counts.iter().map(|c| c[1]).sum()
    }
}

impl Tally for KindCounts {
    fn merge(&mut self, o: &KindCounts) {
        self.counts.merge(&o.counts);
    }
}

/// Packet kinds as exported: TURN channel data, ZRTP and unknown are `other`.
pub fn export_kind_label(kind: PacketKind) -> &'static str {
    match kind {
        PacketKind::Rtp | PacketKind::Rtcp | PacketKind::Stun | PacketKind::Dtls => kind_label(kind),
        PacketKind::TurnChannel | PacketKind::Zrtp | PacketKind::Unknown => "other",
    }
}

/// Column 0: packets, column 1: bytes; one series per exported packet kind
/// (labelled `kind`, see `export_kind_label`).
impl Series for KindCounts {
    fn series(&self, col: usize, labels: &mut Vec<Label>, emit: &mut EmitField<'_>) {
        for exported in ["rtp", "rtcp", "stun", "dtls", "other"] {
            let sum: u64 = KINDS
                .iter()
                .filter(|k| export_kind_label(**k) == exported)
                .map(|k| self.counts[kind_index(*k)][col])
                .sum();
            labels.push(("kind", exported));
            emit(labels, sum as f64);
            labels.pop();
        }
    }
}

/// Serialised as `{"packets": {"rtp": n, …}, "bytes": {…}}`.
impl Serialize for KindCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let by = |i: usize| -> std::collections::BTreeMap<&'static str, u64> {
            KINDS
                .iter()
                .map(|k| (kind_label(*k), self.counts[kind_index(*k)][i]))
                .collect()
        };
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("packets", &by(0))?;
        m.serialize_entry("bytes", &by(1))?;
        m.end()
    }
}

pub fn kind_label(kind: PacketKind) -> &'static str {
    match kind {
        PacketKind::Rtp => "rtp",
        PacketKind::Rtcp => "rtcp",
        PacketKind::Stun => "stun",
        PacketKind::Dtls => "dtls",
        PacketKind::TurnChannel => "turn_channel",
        PacketKind::Zrtp => "zrtp",
        PacketKind::Unknown => "unknown",
    }
}

counters! {
    /// Counters over the whole engine.
    #[derive(Clone, Debug, Default, Serialize)]
    pub struct Counters {
        /// Indexed by [`crate::engine::Side::index`].
        pub received: [KindCounts; 2]
            => PACKETS: counter("rtpmb_packets_total", "{packet}", [direction, kind],
                "Datagrams received for relaying, by direction and packet kind.")
            | BYTES: counter("rtpmb_bytes_total", "By", [direction, kind],
                "UDP payload bytes received for relaying, by direction and packet kind.")
            by Side,
        pub drops: [u64; DROP_REASONS]
            => DROPPED_PACKETS: counter("rtpmb_dropped_packets_total", "{packet}", [reason],
                "Datagrams dropped by the proxy, by reason.")
            by DropReason,
        /// RTCP compounds that could not be walked and were forwarded unread
        /// (SRTCP, or RTCP the proxy does not understand).
        pub rtcp_unreadable: u64
            => RTCP_UNREADABLE: counter("rtpmb_rtcp_unreadable_total", "{report}", [],
                "RTCP compounds forwarded unread (SRTCP without keys, or a compound past its first header the proxy cannot walk)."),
        pub rtt_samples: u64
            => RTT_SAMPLES: counter("rtpmb_rtt_samples_total", "{sample}", [],
                "Valid RTT samples from report blocks, XR DLRR and STUN."),
        /// Report blocks that gave no RTT, by [`crate::stats::RttReject`].
        pub rtt_rejects: [u64; 5],
        pub sessions_opened: u64,
        pub sessions_closed: u64,
        pub sessions_refused: u64,
        pub events_dropped: u64,
        /// Generated RR compounds, and the report blocks in them.
        pub reports_generated: u64,
        pub report_blocks_generated: u64,
        /// Report ticks skipped because the session is SRTP without keys.
        pub reports_skipped_encrypted: u64,
        /// `terminate`: compounds forwarded with report blocks removed, wholly
        /// consumed, and the report blocks taken out.
        pub rtcp_rewritten: u64,
        pub rtcp_consumed: u64,
        pub report_blocks_consumed: u64,
        /// `auto`: streams found suppressed, and found reported again.
        pub suppression_detected: u64
            => RTCP_SUPPRESSION_DETECTED: counter("rtpmb_rtcp_suppression_detected_total", "{stream}", [],
                "auto: streams whose receiver stopped sending report blocks."),
        pub suppression_cleared: u64,
        /// RTCP compounds generated, consumed and forwarded, per
        /// [`crate::engine::RtcpMode::index`] of the session's relay.
        pub rtcp_by_mode: [RtcpModeCounts; 3]
            => RTCP_REPORTS_GENERATED: counter("rtpmb_rtcp_reports_generated_total", "{report}", [mode],
                "RTCP compounds the proxy generated, by the relay's RTCP mode.")
            | RTCP_REPORTS_CONSUMED: counter("rtpmb_rtcp_reports_consumed_total", "{report}", [mode],
                "RTCP compounds the proxy consumed (terminate: report-only compounds).")
            | RTCP_REPORTS_FORWARDED: counter("rtpmb_rtcp_reports_forwarded_total", "{report}", [mode],
                "RTCP compounds forwarded (unchanged, or with report blocks removed in terminate).")
            by RtcpMode,
        /// SRTCP compounds that failed authentication with provisioned keys.
        pub srtcp_auth_failures: u64
            => SRTCP_AUTH_FAILURES: counter("rtpmb_srtcp_auth_failures_total", "{report}", [],
                "SRTCP compounds failing authentication with provisioned keys (dropped)."),
        /// New sessions refused by the per-prefix rate (also in `sessions_refused`).
        pub sessions_rate_limited: u64
            => SESSIONS_RATE_LIMITED: counter("rtpmb_sessions_rate_limited_total", "{session}", [],
                "New client addresses refused by the per-source-prefix session rate (a spoofed flood)."),
        /// Sessions closed because the upstream never answered.
        pub sessions_unanswered: u64
            => SESSIONS_UNANSWERED: counter("rtpmb_sessions_unanswered_total", "{session}", [],
                "Sessions closed because the upstream never answered them."),
        /// Hard caps hit, by [`Cap`].
        pub caps_hit: CapHits
            => CAPS_HIT: counter("rtpmb_caps_hit_total", "{event}", [cap],
                "Times a hard cap on attacker-growable state refused or evicted something, by cap."),
        /// NAT rebinding (`[limits] nat_rebinding = "stun"`): sessions moved to
        /// a new client address after the upstream answered a STUN check from
        /// it, and checks the upstream refused (error response) or never
        /// answered in time (the session stayed where it was).
        pub sessions_rebound: u64
            => NAT_REBINDING: counter("rtpmb_nat_rebinding_total", "{check}", [outcome],
                "ICE checks from a session's new client address: rebound (the upstream accepted it, the session moved) or rejected (refused or unanswered; the session stayed).")
                {outcome = "rebound"},
        pub rebinds_rejected: u64 => NAT_REBINDING {outcome = "rejected"},
        /// DTLS termination: legs whose handshake completed and legs that
        /// failed (fingerprint mismatch, timeout, bad records).
        pub dtls_connected: u64
            => DTLS_HANDSHAKES: counter("rtpmb_dtls_handshakes_total", "{handshake}", [outcome],
                "DTLS termination: per-leg handshakes that completed or failed (fingerprint mismatch, timeout, protocol error).")
                {outcome = "connected"},
        pub dtls_failed: u64 => DTLS_HANDSHAKES {outcome = "failed"},
        /// Sessions bound to a call of the calls API, and bindings refused
        /// (handshake limit).
        pub dtls_calls_bound: u64,
        pub dtls_refused: u64,
    }
}

/// RTCP compound dispositions of the sessions in one mode.
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RtcpModeCounts {
    pub generated: u64,
    pub consumed: u64,
    /// Forwarded unchanged, or with report blocks removed (`terminate`).
    pub forwarded: u64,
}

impl Tally for RtcpModeCounts {
    fn merge(&mut self, o: &RtcpModeCounts) {
        self.generated += o.generated;
        self.consumed += o.consumed;
        self.forwarded += o.forwarded;
    }
}

/// Columns 0, 1, 2: generated, consumed, forwarded.
impl Series for RtcpModeCounts {
    fn series(&self, col: usize, labels: &mut Vec<Label>, emit: &mut EmitField<'_>) {
        let v = [self.generated, self.consumed, self.forwarded][col];
        emit(labels, v as f64);
    }
}

impl Counters {
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::metrics::{MetricDef, Table};

    /// Every exported series: (family, labels, value).
    fn series(c: &Counters) -> Vec<(&'static str, Vec<Label>, f64)> {
        let mut out = Vec::new();
        c.series(&mut |def: &'static MetricDef, labels: &[Label], v| out.push((def.name, labels.to_vec(), v)));
        out
    }

    fn value(c: &Counters, name: &str, labels: &[Label]) -> f64 {
        let matching: Vec<f64> = series(c)
            .into_iter()
            .filter(|(n, l, _)| *n == name && l == labels)
            .map(|(_, _, v)| v)
            .collect();
        assert_eq!(matching.len(), 1, "{name} {labels:?}");
        matching[0]
    }

    #[test]
    fn dimensions_follow_the_indices() {
        for side in Side::BOTH {
            assert_eq!(
                <Side as Dimension<2>>::value(side.index()),
                ["from_client", "from_upstream"][side.index()]
            );
        }
        for mode in RtcpMode::ALL {
            assert_eq!(<RtcpMode as Dimension<3>>::value(mode.index()), mode.to_string());
        }
        for reason in DropReason::ALL {
            assert_eq!(
                <DropReason as Dimension<DROP_REASONS>>::value(reason.index()),
                reason.label()
            );
        }
    }

    #[test]
    fn rows_export_their_fields() {
        let mut c = Counters::default();
        c.received[Side::Upstream.index()].add(PacketKind::Rtp, 100);
        c.received[Side::Upstream.index()].add(PacketKind::Zrtp, 10);
        c.received[Side::Upstream.index()].add(PacketKind::TurnChannel, 20);
        c.drops[DropReason::RateLimited.index()] = 3;
        let auto = &mut c.rtcp_by_mode[RtcpMode::Auto.index()];
        (auto.generated, auto.consumed, auto.forwarded) = (1, 2, 3);
        c.caps_hit.hit(Cap::EventQueue);
        c.sessions_rebound = 4;
        c.rebinds_rejected = 5;
        c.sessions_opened = 6; // not exported
        let up = |kind| vec![("direction", "from_upstream"), ("kind", kind)];
        assert_eq!(value(&c, "rtpmb_packets_total", &up("rtp")), 1.0);
        assert_eq!(value(&c, "rtpmb_bytes_total", &up("rtp")), 100.0);
        assert_eq!(value(&c, "rtpmb_packets_total", &up("other")), 2.0);
        assert_eq!(value(&c, "rtpmb_bytes_total", &up("other")), 30.0);
        assert_eq!(
            value(&c, "rtpmb_dropped_packets_total", &[("reason", "rate_limited")]),
            3.0
        );
        let auto = [("mode", "auto")];
        assert_eq!(value(&c, "rtpmb_rtcp_reports_generated_total", &auto), 1.0);
        assert_eq!(value(&c, "rtpmb_rtcp_reports_consumed_total", &auto), 2.0);
        assert_eq!(value(&c, "rtpmb_rtcp_reports_forwarded_total", &auto), 3.0);
        assert_eq!(value(&c, "rtpmb_caps_hit_total", &[("cap", "event_queue")]), 1.0);
        assert_eq!(value(&c, "rtpmb_nat_rebinding_total", &[("outcome", "rebound")]), 4.0);
        assert_eq!(value(&c, "rtpmb_nat_rebinding_total", &[("outcome", "rejected")]), 5.0);
        assert!(series(&c).iter().all(|(_, _, v)| *v != 6.0));
        // What the series carry is what the schema declares.
        let mut schema = Vec::new();
        Counters::schema(&mut |def, labels, _| schema.push((def.name, labels.to_vec())));
        let emitted: Vec<_> = series(&c).into_iter().map(|(n, l, _)| (n, l)).collect();
        assert_eq!(emitted, schema);
    }

    #[test]
    fn merge_sums_every_field() {
        // `merge` is generated per field; each field type's sum is checked
        // through the JSON of /v1/counters (every field, exported or not).
        let mut one = Counters::default();
        for (i, r) in DropReason::ALL.into_iter().enumerate() {
            one.drops[r.index()] = i as u64 + 1;
        }
        one.received[0].add(PacketKind::Stun, 7);
        one.received[1].add(PacketKind::Dtls, 70);
        one.rtt_rejects = [1, 2, 3, 4, 5];
        one.rtcp_by_mode[2].forwarded = 9;
        one.rtcp_by_mode[0].consumed = 8;
        one.caps_hit.hit(Cap::RebindChecks);
        one.sessions_opened = 3;
        one.rebinds_rejected = 4;
        let mut two = one.clone();
        two.merge(&one);
        fn doubled(a: &serde_json::Value, b: &serde_json::Value) -> bool {
            use serde_json::Value::*;
            match (a, b) {
                (Number(x), Number(y)) => x.as_u64().unwrap() * 2 == y.as_u64().unwrap(),
                (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| doubled(x, y)),
                (Object(x), Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| doubled(v, &y[k])),
                _ => false,
            }
        }
        let (a, b) = (serde_json::to_value(&one).unwrap(), serde_json::to_value(&two).unwrap());
        assert!(doubled(&a, &b), "{a}\n{b}");
        assert_eq!(two.caps_hit.get(Cap::RebindChecks), 2);
        assert_eq!(two.received[1].bytes(PacketKind::Dtls), 140);
    }
}
