//! RTCP modes (ARCHITECTURE.md §2 "Relay model"):
//!
//! * `forward`: RTCP passes unchanged; the proxy only observes it.
//! * `auto`: forward, and for every stream whose receiver sends no report
//!   block about it within the suppression timeout, generate Receiver
//!   Reports toward the stream's sender from the proxy's own measurements;
//!   stop when real report blocks return.
//! * `terminate`: consume report blocks and XR from both sides (SR sender
//!   info is forwarded with its blocks removed, RRs become empty RRs), pass
//!   SDES, BYE, APP and feedback unchanged, and generate the proxy's own RRs
//!   on each leg for every SSRC received there.
//!
//! Reports are built here; the engine schedules them (RFC 3550 §6.2–6.3).

use super::mode::{ReportPolicy, RtcpMode};
use super::session::{RtpStream, Session};
use super::Side;
use crate::stats::burst::GMIN;
use crate::stats::clock_rate::MediaKind;
use crate::stats::quality::{stream_quality, Codec};
use crate::stats::ClockRates;
use crate::time::MonoTime;
use crate::wire::ntp::{Delay16, NtpTime};
use crate::wire::rtcp::{
    self, ReportBlock, RtcpPacket, StatsSummary, VoipMetrics, MAX_REPORT_BLOCKS, VOIP_UNAVAILABLE,
};
use crate::wire::Ssrc;
use std::time::Duration;

/// RFC 3550 §6.3.1 randomisation: the deterministic interval times a
/// uniform factor in [0.5, 1.5], so reports of many sessions do not
/// synchronise. `unit` is a uniform sample in [0, 1). The RFC's division by
/// e − 3/2 compensates for timer reconsideration, which a proxy with no
/// group-size estimate does not run, so it is not applied.
///
/// Example: Td = 1 s and unit = 0.25 give 0.75 s.
pub fn randomised_interval(td: Duration, unit: f64) -> Duration {
    td.mul_f64(0.5 + unit.clamp(0.0, 1.0))
}

/// The deterministic interval for a leg: the video minimum if any source
/// received there is video, else the audio minimum (RFC 3550 §6.2 Tmin,
/// raised to what browsers use for audio).
pub fn leg_interval(session: &Session, side: Side, rates: &ClockRates, policy: &ReportPolicy) -> Duration {
    let media = session.media.as_deref();
    let video = session.sides[side.index()]
        .sources
        .iter()
        .filter_map(|s| s.rtp.as_ref())
        .any(|r| kind(media, rates, r.payload_type) == Some(MediaKind::Video));
    if video {
        policy.min_interval_video
    } else {
        policy.min_interval_audio
    }
}

/// A payload type's kind: the session's SDP `m=` line, else the relay's table.
fn kind(media: Option<&super::media::MediaMap>, rates: &ClockRates, pt: u8) -> Option<MediaKind> {
    media.and_then(|m| m.payload(pt)?.kind).or_else(|| rates.kind(pt))
}

/// What a tick of a leg's report timer found, for counters and events.
#[derive(Default)]
pub struct TickOutcome {
    pub suppressed: Vec<Ssrc>,
    pub report: Option<Vec<u8>>,
    pub blocks: usize,
}

/// Runs one report tick for the sources received from `side`: in `auto`,
/// detects streams whose receiver stopped reporting; then builds the RR
/// compound (RR ×⌈n/31⌉ + SDES CNAME [+ XR RRTR]) to send toward `side`.
pub fn tick(
    session: &mut Session,
    side: Side,
    now: MonoTime,
    wall: Duration,
    rates: &ClockRates,
    policy: &ReportPolicy,
) -> TickOutcome {
    let mut out = TickOutcome::default();
    let mode = session.mode;
    if mode == RtcpMode::Forward {
        return out;
    }
    let own = session.own_ssrc;
    let media = session.media.as_deref();
    let state = &mut session.sides[side.index()];
    let mut blocks: Vec<ReportBlock> = Vec::new();
    // RFC 3611 §4.6/§4.7 blocks about the audio streams, one XR packet.
    let mut xr_blocks: Vec<u8> = Vec::new();
    let leg_rtt = [&state.rtcp.rtt.sr_rr, &state.rtcp.rtt.xr_dlrr, &state.rtcp.rtt.stun]
        .into_iter()
        .find_map(|r| r.mean());
    for src in &mut state.sources {
        let Some(rtp) = &mut src.rtp else { continue };
        if !rtp.stats.is_valid() || src.bye {
            // A source that said BYE has left the session (RFC 3550 §6.6).
            continue;
        }
        // RFC 3550 §6.4: a receiver reports the sources it received RTP
        // from since its last report. A paused or removed stream gets no
        // block (never frozen counters), and in `auto` its receiver's
        // silence about it is no suppression: that clock restarts here.
        let packets = rtp.stats.packets;
        if src.packets_at_tick.replace(packets) == Some(packets) {
            src.quiet = true;
            continue;
        }
        if std::mem::take(&mut src.quiet) {
            // Quiet at the last tick, heard again by this one: the stream
            // resumed in between, and its receiver's reports may take
            // their usual intervals from here.
            src.quiet_at = Some(now);
        }
        if mode == RtcpMode::Auto && !src.generating {
            let td = if kind(media, rates, rtp.payload_type) == Some(MediaKind::Video) {
                policy.min_interval_video
            } else {
                policy.min_interval_audio
            };
            let heard = src.remote.as_ref().map_or(rtp.stats.first_arrival, |r| r.received_at);
            let since = src.quiet_at.map_or(heard, |q| q.max(heard));
            if now.saturating_since(since) >= td * policy.suppression_intervals {
                src.generating = true;
                out.suppressed.push(src.ssrc);
            }
        }
        if mode == RtcpMode::Auto && !src.generating {
            continue;
        }
        let interval = rtp.stats.take_interval();
        // LSR/DLSR from the last SR this source sent (RFC 3550 §6.4.1):
        // DLSR is the time the proxy has held it, in 1/65536 s.
        let (lsr, dlsr) = match &src.sender_report {
            Some(sr) => (
                sr.info.ntp.compact(),
                Delay16::from_duration(now.saturating_since(sr.received_at)),
            ),
            None => (Default::default(), Delay16(0)),
        };
        blocks.push(ReportBlock {
            ssrc: src.ssrc,
            fraction_lost: interval.fraction,
            cumulative_lost: rtp.stats.wire_cumulative_lost(),
            ext_highest_seq: rtp.stats.ext_highest_seq().wire(),
            jitter: rtp.stats.wire_jitter(),
            lsr,
            dlsr,
        });
        if policy.xr_voip_metrics && rtp.stats.clock_rate().is_some_and(|hz| hz != 90_000) && src.rtx.is_none() {
            quality_blocks(&mut xr_blocks, src.ssrc, rtp, leg_rtt);
        }
    }
    if blocks.is_empty() {
        return out;
    }
    let mut pkt = Vec::with_capacity(8 + blocks.len() * rtcp::REPORT_BLOCK_LEN + 64);
    for chunk in blocks.chunks(MAX_REPORT_BLOCKS) {
        rtcp::write_receiver_report(&mut pkt, own, chunk);
    }
    rtcp::write_sdes_cname(&mut pkt, own, session.cname().as_bytes());
    if policy.xr_rrtr {
        let ntp = NtpTime::from_unix(wall);
        rtcp::write_xr(&mut pkt, own, Some(ntp), &[]);
        // The proxy's own RRTRs follow its report interval: never a flood.
        session.sides[side.index()].rtcp.own_rrtr_log.record(ntp.compact(), now);
    }
    if !xr_blocks.is_empty() {
        rtcp::write_xr_blocks(&mut pkt, own, &xr_blocks);
    }
    out.blocks = blocks.len();
    out.report = Some(pkt);
    out
}

/// Appends RFC 3611 Statistics Summary (BT=6) and VoIP Metrics (BT=7)
/// blocks about one audio stream, from the proxy's own measurements over
/// the stream so far, rated on the leg it arrived over (RTT `leg_rtt`).
fn quality_blocks(out: &mut Vec<u8>, ssrc: Ssrc, rtp: &mut RtpStream, leg_rtt: Option<Duration>) {
    let jitter = rtp.stats.jitter_summary_for_report();
    let st = &rtp.stats;
    let sat8 = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    let sat16 = |x: f64| x.round().clamp(0.0, 65_535.0) as u16;
    let sat32 = |x: f64| x.round().clamp(0.0, f64::from(u32::MAX)) as u32;
    // §4.6: the interval is the current numbering, begin_seq up to the
    // highest (end_seq exclusive, "last sequence number plus one");
    // jitter fields from the A.8 estimate in timestamp units
    // ([`crate::stats::JitterSummary`]); the proxy reads no TTL, so ToH = 3
    // and the TTL fields are 0.
    let j = jitter.unwrap_or_default();
    StatsSummary {
        ssrc,
        loss: true,
        dup: true,
        jitter: jitter.is_some(),
        toh: 3,
        begin_seq: st.base_seq(),
        end_seq: (st.ext_highest_seq().wire() as u16).wrapping_add(1),
        lost_packets: u32::try_from(st.cumulative_lost().max(0)).unwrap_or(u32::MAX),
        dup_packets: u32::try_from(st.duplicates()).unwrap_or(u32::MAX),
        min_jitter: sat32(j.min),
        max_jitter: sat32(j.max),
        mean_jitter: sat32(j.mean),
        dev_jitter: sat32(j.dev),
        ttl: [0; 4],
    }
    .write(out);
    let lm = st.burst_metrics();
    let codec = Codec::from_payload(rtp.payload_type, st.clock_rate());
    let rtt_secs = leg_rtt.map(|d| d.as_secs_f64());
    let q = stream_quality(codec, &lm, st.jitter_in_order_secs(), rtt_secs);
    // §4.7.1 rates and densities in 1/256, §4.7.2–3 ms, §4.7.5 R 0–100 and
    // MOS ×10, 127 = unavailable; §4.7.6 RX config 0: PLC and jitter
    // buffer unknown (the proxy has neither; the JB fields carry its
    // estimate of the receiver's buffer).
    let jb = sat16(q.jitter_buffer_ms);
    VoipMetrics {
        ssrc,
        loss_rate: sat8(lm.loss_rate * 256.0),
        discard_rate: 0,
        burst_density: sat8(lm.burst_density * 256.0),
        gap_density: sat8(lm.gap_density * 256.0),
        burst_duration: sat16(lm.burst_duration_ms),
        gap_duration: sat16(lm.gap_duration_ms),
        round_trip_delay: rtt_secs.map_or(0, |r| sat16(r * 1e3)),
        end_system_delay: 0,
        signal_level: VOIP_UNAVAILABLE,
        noise_level: VOIP_UNAVAILABLE,
        rerl: VOIP_UNAVAILABLE,
        gmin: GMIN as u8,
        r_factor: q.r_narrowband.round().clamp(0.0, 100.0) as u8,
        ext_r_factor: VOIP_UNAVAILABLE,
        mos_lq: sat8(q.mos_lq * 10.0),
        mos_cq: q.mos_cq.map_or(VOIP_UNAVAILABLE, |m| sat8(m * 10.0)),
        rx_config: 0,
        jb_nominal: jb,
        jb_maximum: jb,
        jb_abs_max: jb,
    }
    .write(out);
}

/// The `terminate` rewrite of a readable compound. Returns `None` when the
/// compound passes unchanged, `Some(empty)` when nothing is left to forward,
/// and otherwise the compound to forward: SRs keep sender info without
/// report blocks (RC = 0, length recomputed), RRs become empty RRs (the
/// compound keeps its leading report packet, RFC 3550 §6.1), XR is dropped,
/// everything else is copied byte for byte.
pub fn strip_reports(datagram: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let mut changed = false;
    let mut consumed_blocks = 0;
    let mut kept_other = false;
    out.clear();
    let mut rest = datagram;
    for packet in rtcp::walk(datagram) {
        let Ok(packet) = packet else { return None };
        let len = packet.header().len;
        let raw = &rest[..len.min(rest.len())];
        rest = &rest[raw.len()..];
        let removed = match packet {
            RtcpPacket::SenderReport(sr) => {
                kept_other = true;
                without_blocks(out, raw, sr.report_blocks().len(), sr.extension, |out| {
                    rtcp::write_sender_report(out, sr.sender, &sr.info, &[])
                })
            }
            RtcpPacket::ReceiverReport(rr) => without_blocks(out, raw, rr.report_blocks().len(), rr.extension, |out| {
                rtcp::write_receiver_report(out, rr.sender, &[])
            }),
            RtcpPacket::Xr(_) => {
                changed = true;
                None
            }
            _ => {
                out.extend_from_slice(raw);
                kept_other = true;
                None
            }
        };
        if let Some(n) = removed {
            consumed_blocks += n;
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    if !kept_other {
        // Only empty RRs would remain: nothing worth forwarding.
        out.clear();
    }
    Some(consumed_blocks)
}

/// An SR or RR (`raw`) with `blocks` report blocks and `extension`: copied
/// when it has neither (`None`), else written again by `write` without them
/// (`Some(blocks)`).
fn without_blocks(
    out: &mut Vec<u8>,
    raw: &[u8],
    blocks: usize,
    extension: &[u8],
    write: impl FnOnce(&mut Vec<u8>),
) -> Option<usize> {
    if blocks == 0 && extension.is_empty() {
        out.extend_from_slice(raw);
        None
    } else {
        write(out);
        Some(blocks)
    }
}
