//! Engine-wide counters: plain integers on the packet path, read by the
//! exporters from snapshots. Every drop has a reason; labels are bounded
//! enums, never SSRCs or addresses.

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
}

impl DropReason {
    pub const ALL: [DropReason; 25] = [
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

    pub fn merge(&mut self, o: &CapHits) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += b;
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

    pub fn merge(&mut self, o: &KindCounts) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            a[0] += b[0];
            a[1] += b[1];
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

/// Counters over the whole engine.
#[derive(Clone, Debug, Serialize)]
pub struct Counters {
    /// Indexed by [`crate::engine::Side::index`].
    pub received: [KindCounts; 2],
    pub drops: [u64; DROP_REASONS],
    /// RTCP compounds that could not be walked and were forwarded unread
    /// (SRTCP, or RTCP the proxy does not understand).
    pub rtcp_unreadable: u64,
    pub rtt_samples: u64,
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
    pub suppression_detected: u64,
    pub suppression_cleared: u64,
    /// RTCP compounds generated, consumed and forwarded, per
    /// [`crate::engine::RtcpMode::index`] of the session's relay.
    pub rtcp_by_mode: [RtcpModeCounts; 3],
    /// SRTCP compounds that failed authentication with provisioned keys.
    pub srtcp_auth_failures: u64,
    /// New sessions refused by the per-prefix rate (also in `sessions_refused`).
    pub sessions_rate_limited: u64,
    /// Sessions closed because the upstream never answered.
    pub sessions_unanswered: u64,
    /// Hard caps hit, by [`Cap`].
    pub caps_hit: CapHits,
    /// NAT rebinding (`[limits] nat_rebinding = "stun"`): sessions moved to
    /// a new client address after the upstream answered a STUN check from
    /// it, and checks the upstream refused (error response) or never
    /// answered in time (the session stayed where it was).
    pub sessions_rebound: u64,
    pub rebinds_rejected: u64,
}

impl Counters {
    /// Adds another worker's counters (for process-wide totals).
    pub fn merge(&mut self, o: &Counters) {
        for (a, b) in self.received.iter_mut().zip(o.received.iter()) {
            a.merge(b);
        }
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
        for (a, b) in self.rtt_rejects.iter_mut().zip(o.rtt_rejects.iter()) {
            *a += b;
        }
        for (a, b) in self.rtcp_by_mode.iter_mut().zip(o.rtcp_by_mode.iter()) {
            a.generated += b.generated;
            a.consumed += b.consumed;
            a.forwarded += b.forwarded;
        }
        self.rtcp_unreadable += o.rtcp_unreadable;
        self.rtt_samples += o.rtt_samples;
        self.sessions_opened += o.sessions_opened;
        self.sessions_closed += o.sessions_closed;
        self.sessions_refused += o.sessions_refused;
        self.events_dropped += o.events_dropped;
        self.reports_generated += o.reports_generated;
        self.report_blocks_generated += o.report_blocks_generated;
        self.reports_skipped_encrypted += o.reports_skipped_encrypted;
        self.rtcp_rewritten += o.rtcp_rewritten;
        self.rtcp_consumed += o.rtcp_consumed;
        self.report_blocks_consumed += o.report_blocks_consumed;
        self.suppression_detected += o.suppression_detected;
        self.suppression_cleared += o.suppression_cleared;
        self.srtcp_auth_failures += o.srtcp_auth_failures;
        self.sessions_rate_limited += o.sessions_rate_limited;
        self.sessions_unanswered += o.sessions_unanswered;
        self.caps_hit.merge(&o.caps_hit);
        self.sessions_rebound += o.sessions_rebound;
        self.rebinds_rejected += o.rebinds_rejected;
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

impl Default for Counters {
    fn default() -> Self {
        Counters {
            received: [KindCounts::default(); 2],
            drops: [0; DROP_REASONS],
            rtcp_unreadable: 0,
            rtt_samples: 0,
            rtt_rejects: [0; 5],
            sessions_opened: 0,
            sessions_closed: 0,
            sessions_refused: 0,
            events_dropped: 0,
            reports_generated: 0,
            report_blocks_generated: 0,
            reports_skipped_encrypted: 0,
            rtcp_rewritten: 0,
            rtcp_consumed: 0,
            report_blocks_consumed: 0,
            suppression_detected: 0,
            suppression_cleared: 0,
            rtcp_by_mode: [RtcpModeCounts::default(); 3],
            srtcp_auth_failures: 0,
            sessions_rate_limited: 0,
            sessions_unanswered: 0,
            caps_hit: CapHits::default(),
            sessions_rebound: 0,
            rebinds_rejected: 0,
        }
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
