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
use super::session::Session;
use super::Side;
use crate::stats::clock_rate::MediaKind;
use crate::stats::ClockRates;
use crate::time::MonoTime;
use crate::wire::ntp::{Delay16, NtpTime};
use crate::wire::rtcp::{self, ReportBlock, RtcpPacket, MAX_REPORT_BLOCKS};
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
    out.blocks = blocks.len();
    out.report = Some(pkt);
    out
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
