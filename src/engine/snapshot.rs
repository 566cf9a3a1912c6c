//! Plain-data copies of a session's state for reporting: built on demand,
//! never on the packet path. Times are seconds (f64) relative to the
//! engine's monotonic origin; converting to wall clock is the reporter's job.

use super::session::{FeedbackCounts, Session, Source};
use super::{KindCounts, RtcpMode, SessionId, Side};
use crate::stats::burst::BurstMetrics;
use crate::stats::clock_rate::{infer_kind, static_mime_type, MediaKind};
use crate::stats::quality::{stream_quality, Codec, StreamQuality};
use crate::stats::{RttMethod, RttStats};
use crate::time::MonoTime;
use serde::Serialize;
use std::net::SocketAddr;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSnapshot {
    pub id: SessionId,
    pub client: SocketAddr,
    pub upstream: SocketAddr,
    pub opened_at: f64,
    pub taken_at: f64,
    pub encrypted: bool,
    /// Fingerprints of provisioned SRTCP keys per sending side (client,
    /// upstream); never the keys.
    pub srtp_keys: Option<[Option<String>; 2]>,
    /// Back-to-back DTLS, when the session is bound to a call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtls: Option<DtlsSnapshot>,
    /// `[client side, upstream side]`: what arrived from each.
    pub sides: [SideSnapshot; 2],
}

/// The two DTLS legs of a session bound to a call of the calls API.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DtlsSnapshot {
    pub call_id: String,
    /// Leg states toward the client and the upstream: `new`, `connecting`,
    /// `connected`, `failed`.
    pub client: &'static str,
    pub upstream: &'static str,
    /// Why a leg failed (`fingerprint_mismatch`, `timeout`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SideSnapshot {
    pub side: Side,
    pub received: KindCounts,
    pub last_activity: Option<f64>,
    /// RTT of the leg between the proxy and this side's endpoint.
    pub rtt_sr_rr: RttSummary,
    pub rtt_xr_dlrr: RttSummary,
    pub rtt_stun: RttSummary,
    pub rtcp_reports: u64,
    pub rtcp_unreadable: u64,
    /// STUN responses from this side that answered a forwarded request
    /// (W3C candidate-pair `responsesReceived` for this leg).
    pub stun_responses: u64,
    /// Compound reports the proxy generated toward this side's senders.
    pub reports_generated: u64,
    /// STUN binding requests from this side, and since when the oldest
    /// still unanswered one waits (none: all answered).
    pub stun_requests: u64,
    pub stun_unanswered_since: Option<f64>,
    /// SRTCP from this side opened / refused with provisioned keys.
    pub srtcp_opened: u64,
    pub srtcp_auth_failures: u64,
    pub sources: Vec<SourceSnapshot>,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RttSummary {
    pub last: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub total: f64,
    pub measurements: u64,
    pub method: Option<RttMethod>,
}

impl From<&RttStats> for RttSummary {
    fn from(r: &RttStats) -> Self {
        RttSummary {
            last: r.last.map(|d| d.as_secs_f64()),
            min: r.min.map(|d| d.as_secs_f64()),
            max: r.max.map(|d| d.as_secs_f64()),
            mean: r.mean().map(|d| d.as_secs_f64()),
            total: r.total.as_secs_f64(),
            measurements: u64::from(r.measurements),
            method: r.last_method,
        }
    }
}

/// One SSRC sent from a side.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceSnapshot {
    pub ssrc: u32,
    pub side: Side,
    pub rtp: Option<RtpSnapshot>,
    pub sender_report: Option<SenderReportSnapshot>,
    pub remote: Option<RemoteSnapshot>,
    /// RTT from DLRR answering this source's RRTRs (the other side's leg).
    pub xr_rtt: RttSummary,
    pub feedback: FeedbackCounts,
    pub bye: bool,
    /// SRTCP compounds from this sender the proxy could not read (no keys).
    pub srtcp_packets: u64,
    /// Keyless reading of its last SRTCP trailer: E flag and index.
    pub srtcp_encrypted: Option<bool>,
    pub srtcp_index: Option<u32>,
    /// The proxy writes report blocks about this source (`terminate`, or
    /// `auto` after its receiver went quiet).
    pub generating: bool,
    /// An RTX stream (RFC 4588): `Some(primary SSRC)` once its primary is
    /// known, `Some(None)` before. Reported inside its primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtx_of: Option<Option<u32>>,
    /// The RTX stream that retransmits this one, and what it carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtx: Option<RtxSnapshot>,
    /// A FlexFEC stream (RFC 8627): `Some(primary SSRC)` from its FEC-FR
    /// group, `Some(None)` when unknown. Reported inside its primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fec_of: Option<Option<u32>>,
    /// The FlexFEC stream protecting this one (its SSRC and packets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fec: Option<RtxSnapshot>,
    /// ULPFEC packets inside RED on this stream's own SSRC.
    pub ulpfec_packets: u64,
    /// E-model rating of an audio stream on the leg it arrived over
    /// (computed here, per snapshot, never per packet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<StreamQuality>,
    /// What the receiver on the other side said in RFC 3611 VoIP Metrics /
    /// Statistics Summary blocks about this source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_xr: Option<RemoteXrSnapshot>,
}

/// RFC 3611 §4.6/§4.7 figures a receiver sent, in report units (fractions
/// 0..1, seconds, MOS 1–5); `None` where the block said "unavailable"
/// (127) or did not come.
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteXrSnapshot {
    pub loss_rate: Option<f64>,
    pub discard_rate: Option<f64>,
    pub burst_density: Option<f64>,
    pub gap_density: Option<f64>,
    pub burst_duration: Option<f64>,
    pub gap_duration: Option<f64>,
    pub round_trip_delay: Option<f64>,
    pub r_factor: Option<u8>,
    pub mos_lq: Option<f64>,
    pub mos_cq: Option<f64>,
    /// Statistics Summary: lost and duplicate packets.
    pub lost_packets: Option<u32>,
    pub dup_packets: Option<u32>,
    pub received_at: f64,
}

impl RemoteXrSnapshot {
    fn of(x: &super::session::RemoteXr) -> Self {
        use crate::wire::rtcp::VOIP_UNAVAILABLE;
        let known = |v: u8| (v != VOIP_UNAVAILABLE).then_some(v);
        let mut out = RemoteXrSnapshot {
            received_at: x.received_at.as_secs_f64(),
            ..Default::default()
        };
        if let Some(v) = &x.voip_metrics {
            // §4.7.1: rates and densities in 1/256; §4.7.2–3: ms; §4.7.5:
            // R 0–100 and MOS ×10, 127 unavailable.
            out.loss_rate = Some(f64::from(v.loss_rate) / 256.0);
            out.discard_rate = Some(f64::from(v.discard_rate) / 256.0);
            out.burst_density = Some(f64::from(v.burst_density) / 256.0);
            out.gap_density = Some(f64::from(v.gap_density) / 256.0);
            out.burst_duration = Some(f64::from(v.burst_duration) / 1e3);
            out.gap_duration = Some(f64::from(v.gap_duration) / 1e3);
            out.round_trip_delay = (v.round_trip_delay != 0).then(|| f64::from(v.round_trip_delay) / 1e3);
            out.r_factor = known(v.r_factor);
            out.mos_lq = known(v.mos_lq).map(|m| f64::from(m) / 10.0);
            out.mos_cq = known(v.mos_cq).map(|m| f64::from(m) / 10.0);
        }
        if let Some(s) = &x.stats_summary {
            out.lost_packets = s.loss.then_some(s.lost_packets);
            out.dup_packets = s.dup.then_some(s.dup_packets);
        }
        out
    }
}

/// The packets of a primary stream's RTX stream (W3C `rtxSsrc`,
/// `retransmittedPacketsReceived`, `retransmittedBytesReceived`).
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RtxSnapshot {
    pub ssrc: u32,
    pub packets_received: u64,
    pub payload_bytes: u64,
    pub header_bytes: u64,
}

/// The proxy's own measurement of the RTP it received from this source.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpSnapshot {
    pub payload_type: u8,
    pub clock_rate: Option<u32>,
    /// `audio` or `video`: the payload type's `m=` line when the session's
    /// SDP is attached, else [`crate::stats::clock_rate::infer_kind`].
    pub kind: MediaKind,
    /// W3C codec `mimeType`: from the SDP's `a=rtpmap`, else the static
    /// payload type's (RFC 3551); `None` for a dynamic type without SDP.
    pub mime_type: Option<String>,
    /// Audio channels from `a=rtpmap`.
    pub channels: Option<u8>,
    pub packets_received: u64,
    pub packets_expected: u64,
    pub packets_lost: i64,
    /// Of the lost, repaired by RTX (RFC 4588) before reaching the proxy's
    /// view of the primary; loss after repair is the difference.
    pub packets_repaired: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub invalid: u64,
    pub restarts: u64,
    pub payload_bytes: u64,
    pub header_bytes: u64,
    pub ext_highest_seq: u64,
    /// A.8 estimate, seconds (`None` when the clock rate is unknown).
    pub jitter: Option<f64>,
    pub max_jitter: Option<f64>,
    pub mean_jitter: Option<f64>,
    /// A.8 over in-order packets only, seconds: what libwebrtc (and so a
    /// browser's `inbound-rtp.jitter`) reports; late and retransmitted
    /// packets do not move it.
    pub jitter_in_order: Option<f64>,
    pub first_arrival: f64,
    pub last_arrival: f64,
    /// Burst/gap loss model on arrival (RFC 3611 §4.7.2, G.107 BurstR).
    pub loss_model: BurstMetrics,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SenderReportSnapshot {
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    pub received_at: f64,
    pub reports: u64,
    /// From the first SR that found the stream flowing to this one: packets
    /// the sender counted as sent, packets that arrived at the proxy, what
    /// the leg lost (sent − arrived) and the sequence gaps the sender never
    /// sent (a forwarder passing on earlier loss). See
    /// [`crate::stats::SenderWindow`].
    pub window: Option<SenderWindowSnapshot>,
}

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SenderWindowSnapshot {
    pub sent: u64,
    pub arrived: u64,
    pub lost_on_leg: u64,
    pub not_sent: u64,
}

/// What the receiver on the other side reported about this source.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteSnapshot {
    pub reporter: u32,
    pub fraction_lost: f64,
    pub cumulative_lost: i32,
    pub ext_highest_seq: u32,
    /// Jitter as reported, in RTP timestamp units.
    pub jitter_units: u32,
    /// The same in seconds, when the source's clock rate is known.
    pub jitter: Option<f64>,
    pub received_at: f64,
    pub reports: u64,
    pub rtt: RttSummary,
}

impl SessionSnapshot {
    pub fn of(s: &Session, now: MonoTime) -> Self {
        let side = |side: Side| {
            let st = &s.sides[side.index()];
            SideSnapshot {
                side,
                received: st.received,
                last_activity: st.last_activity.map(MonoTime::as_secs_f64),
                rtt_sr_rr: (&st.rtcp.rtt.sr_rr).into(),
                rtt_xr_dlrr: (&st.rtcp.rtt.xr_dlrr).into(),
                rtt_stun: (&st.rtcp.rtt.stun).into(),
                rtcp_reports: st.rtcp.reports,
                rtcp_unreadable: st.rtcp.unreadable,
                stun_responses: st.rtcp.stun_responses,
                reports_generated: st.rtcp.reports_generated,
                stun_requests: st.rtcp.stun_requests,
                stun_unanswered_since: st.rtcp.unanswered_since.map(MonoTime::as_secs_f64),
                srtcp_opened: st.rtcp.srtcp_opened,
                srtcp_auth_failures: st.rtcp.srtcp_auth_failures,
                sources: with_rtx(
                    st.sources
                        .iter()
                        .map(|src| {
                            let mut snap = SourceSnapshot::of(src, side, s.mode, s.media.as_deref());
                            snap.rate(leg_rtt(&st.rtcp.rtt.sr_rr, &st.rtcp.rtt.xr_dlrr, &st.rtcp.rtt.stun));
                            snap
                        })
                        .collect(),
                ),
            }
        };
        SessionSnapshot {
            id: s.id,
            client: s.info.client,
            upstream: s.info.upstream,
            opened_at: s.opened_at.as_secs_f64(),
            taken_at: now.as_secs_f64(),
            encrypted: s.encrypted,
            srtp_keys: s.crypto.as_ref().map(|c| c.fingerprints.clone()),
            dtls: s.dtls.as_ref().map(|d| {
                use super::dtls::LegState;
                let label = |st: LegState| match st {
                    LegState::Idle => "new",
                    LegState::Handshaking => "connecting",
                    LegState::Connected => "connected",
                    LegState::Failed(_) => "failed",
                };
                let failure = Side::BOTH.iter().find_map(|side| match d.state(*side) {
                    LegState::Failed(reason) => Some(reason),
                    _ => None,
                });
                DtlsSnapshot {
                    call_id: d.call_id.to_string(),
                    client: label(d.state(Side::Client)),
                    upstream: label(d.state(Side::Upstream)),
                    failure,
                }
            }),
            sides: [side(Side::Client), side(Side::Upstream)],
        }
    }

    pub fn side(&self, side: Side) -> &SideSnapshot {
        &self.sides[side.index()]
    }
}

impl SourceSnapshot {
    fn of(src: &Source, side: Side, mode: RtcpMode, media: Option<&super::media::MediaMap>) -> Self {
        let clock_rate = src.rtp.as_ref().and_then(|r| r.stats.clock_rate());
        SourceSnapshot {
            ssrc: src.ssrc.0,
            side,
            rtp: src.rtp.as_ref().map(|r| {
                let st = &r.stats;
                let sdp = media.and_then(|m| m.payload(r.payload_type));
                let mean_payload = st.payload_bytes as f64 / st.packets.max(1) as f64;
                let kind = sdp
                    .and_then(|p| p.kind)
                    .unwrap_or_else(|| infer_kind(r.payload_type, st.clock_rate(), mean_payload));
                RtpSnapshot {
                    payload_type: r.payload_type,
                    clock_rate: st.clock_rate(),
                    kind,
                    mime_type: sdp
                        .and_then(|p| p.mime_type())
                        .or_else(|| static_mime_type(r.payload_type)),
                    channels: sdp.and_then(|p| p.channels),
                    packets_received: st.packets,
                    packets_expected: st.expected(),
                    packets_lost: st.cumulative_lost(),
                    packets_repaired: st.repaired,
                    duplicates: st.duplicates,
                    out_of_order: st.out_of_order,
                    invalid: st.invalid,
                    restarts: st.restarts,
                    payload_bytes: st.payload_bytes,
                    header_bytes: st.header_bytes,
                    ext_highest_seq: st.ext_highest_seq().0,
                    jitter: st.jitter_secs(),
                    max_jitter: st.max_jitter_secs(),
                    mean_jitter: st.mean_jitter_secs(),
                    jitter_in_order: st.jitter_in_order_secs(),
                    first_arrival: st.first_arrival.as_secs_f64(),
                    last_arrival: st.last_arrival.as_secs_f64(),
                    loss_model: st.burst_metrics(),
                }
            }),
            sender_report: src.sender_report.map(|r| SenderReportSnapshot {
                ntp: r.info.ntp.0,
                rtp_timestamp: r.info.rtp_ts,
                packet_count: r.info.packet_count,
                octet_count: r.info.octet_count,
                received_at: r.received_at.as_secs_f64(),
                reports: r.reports,
                window: r.window().map(|w| SenderWindowSnapshot {
                    sent: w.sent,
                    arrived: w.arrived,
                    lost_on_leg: w.lost_on_leg(),
                    not_sent: w.not_sent(),
                }),
            }),
            remote: src.remote.as_ref().map(|r| RemoteSnapshot {
                reporter: r.reporter.0,
                fraction_lost: r.fraction_lost(),
                cumulative_lost: r.block.cumulative_lost,
                ext_highest_seq: r.block.ext_highest_seq,
                jitter_units: r.block.jitter,
                jitter: clock_rate.map(|hz| f64::from(r.block.jitter) / f64::from(hz)),
                received_at: r.received_at.as_secs_f64(),
                reports: r.reports,
                rtt: (&r.rtt).into(),
            }),
            xr_rtt: (&src.xr_rtt).into(),
            feedback: src.feedback,
            bye: src.bye,
            srtcp_packets: src.srtcp_packets,
            srtcp_encrypted: src.srtcp_last.map(|(e, _)| e),
            srtcp_index: src.srtcp_last.map(|(_, i)| i),
            generating: src.rtp.is_some() && (mode == RtcpMode::Terminate || src.generating),
            rtx_of: src.rtx.map(|p| p.map(|s| s.0)),
            rtx: None,
            fec_of: src.fec.map(|p| p.map(|s| s.0)),
            fec: None,
            ulpfec_packets: src.ulpfec_packets,
            quality: None,
            remote_xr: src.remote_xr.as_deref().map(RemoteXrSnapshot::of),
        }
    }

    /// Rates this source if it is audio (a known clock rate other than
    /// video's 90 kHz, the rule of [`crate::stats::ClockRates`]) and not an
    /// RTX stream, with `rtt` the round-trip time of the leg it came over.
    fn rate(&mut self, rtt: Option<f64>) {
        let Some(rtp) = &self.rtp else { return };
        let audio = rtp.clock_rate.is_some_and(|hz| hz != 90_000);
        if !audio || self.rtx_of.is_some() || self.fec_of.is_some() || rtp.packets_received == 0 {
            return;
        }
        let codec = Codec::from_payload(rtp.payload_type, rtp.clock_rate);
        let jitter = rtp.jitter_in_order.or(rtp.jitter);
        // The leg is rated on what it lost: sequence numbers the sender
        // never sent (it forwards earlier loss) are not the leg's. Ppl is
        // then (lost − not sent) / (expected − not sent); BurstR stays the
        // arrival pattern's (which gaps were whose is not known).
        let mut loss = rtp.loss_model;
        let not_sent = self.not_sent();
        if not_sent > 0 {
            let expected = rtp.packets_expected.saturating_sub(not_sent);
            let lost = self.lost_on_arrival_leg();
            loss.loss_rate = if expected == 0 {
                0.0
            } else {
                lost as f64 / expected as f64
            };
        }
        self.quality = Some(stream_quality(codec, &loss, jitter, rtt));
    }

    /// Sequence gaps of this stream that its sender's SR count says it never
    /// sent: not lost on the leg it arrived over (0 without SRs).
    pub fn not_sent(&self) -> u64 {
        self.sender_report
            .as_ref()
            .and_then(|r| r.window)
            .map_or(0, |w| w.not_sent)
    }

    /// Packets of this stream lost on the leg it arrived over: its sequence
    /// gaps on arrival (RFC 3550 A.3 cumulative) less those its sender never
    /// sent (0 for a stream without RTP).
    pub fn lost_on_arrival_leg(&self) -> i64 {
        let Some(rtp) = &self.rtp else { return 0 };
        (rtp.packets_lost - self.not_sent() as i64).max(0)
    }
}

/// The round-trip time of a leg for the E-model, seconds: the mean of its
/// SR/RR samples, else of XR DLRR, else of STUN (the order of how directly
/// each measures the media path).
fn leg_rtt(sr_rr: &RttStats, xr: &RttStats, stun: &RttStats) -> Option<f64> {
    [sr_rr, xr, stun]
        .into_iter()
        .find_map(|r| r.mean())
        .map(|d| d.as_secs_f64())
}

/// Links each RTX and FlexFEC stream to its primary: the primary's `rtx`
/// (`fec`) carries that stream's counts. A stream whose primary is not
/// (yet) known stays as it is.
fn with_rtx(mut sources: Vec<SourceSnapshot>) -> Vec<SourceSnapshot> {
    link(&mut sources, |s| s.rtx_of, |p, r| p.rtx = Some(r));
    link(&mut sources, |s| s.fec_of, |p, r| p.fec = Some(r));
    sources
}

/// One kind of folding: `of` names a stream's primary, `set` hands the
/// stream's counts to it.
fn link(
    sources: &mut [SourceSnapshot],
    of: fn(&SourceSnapshot) -> Option<Option<u32>>,
    set: fn(&mut SourceSnapshot, RtxSnapshot),
) {
    let links: Vec<(u32, RtxSnapshot)> = sources
        .iter()
        .filter_map(|s| {
            let primary = of(s)??;
            let rtp = s.rtp.as_ref()?;
            Some((
                primary,
                RtxSnapshot {
                    ssrc: s.ssrc,
                    packets_received: rtp.packets_received,
                    payload_bytes: rtp.payload_bytes,
                    header_bytes: rtp.header_bytes,
                },
            ))
        })
        .collect();
    for (primary, counts) in links {
        if let Some(p) = sources.iter_mut().find(|s| s.ssrc == primary && of(s).is_none()) {
            set(p, counts);
        }
    }
}
