//! RTCP arriving at the proxy: opened (SRTCP with provisioned keys), read
//! into the session's statistics, and in `terminate` stripped of report
//! blocks and re-protected for the other leg.

use super::counters::{Counters, DropReason};
use super::io::Verdict;
use super::mode::RtcpMode;
use super::session::Session;
use super::{rtcp_policy, Side};
use crate::time::MonoTime;
use crate::wire::rtcp;
use crate::wire::PacketKind;

/// RTCP is read only when the whole compound walks cleanly to its end
/// (RFC 3550 A.2: the packets' lengths add up to the datagram's) and the
/// session is not SRTP. SRTCP encrypts everything after the first
/// 8 bytes and appends an index and tag, so reading it as plain RTCP
/// would record garbage; it is forwarded and counted instead.
#[allow(clippy::too_many_arguments)] // the session, the datagram, and the engine scratch it writes
pub(super) fn observe_rtcp(
    session: &mut Session,
    now: MonoTime,
    side: Side,
    datagram: &[u8],
    cap: usize,
    counters: &mut Counters,
    rewritten: &mut Vec<u8>,
    cleared: &mut Vec<(Side, crate::wire::Ssrc)>,
) -> Verdict {
    // The first packet's common header must hold for anything to be RTCP
    // at all. Its padding count and body are not judged here: in SRTCP
    // they are ciphertext (RFC 3711 §3.4 encrypts from octet 8), and
    // libwebrtc pads its transport-wide feedback to a word with P = 1, so
    // the encrypted count reads as any number. Such a compound is opened
    // with keys and read in the clear; without keys (or in a session not
    // known to be SRTP, as a client's new address after a NAT rebinding
    // is) it goes on unread, as an RTP packet whose padding count does
    // not fit does: the receiver, which holds the keys, judges it.
    if let Err(e) = rtcp::first_header(datagram) {
        return Verdict::Drop(DropReason::Rtcp(e));
    }
    let by_mode = session.mode.index();
    // With keys, SRTCP from this side is opened into the session's
    // plain buffer (taken out while the packets are read, then put back).
    let mut plain = None;
    if session.encrypted {
        if let Some(crypto) = session.crypto.as_mut() {
            match crypto.open(side, datagram) {
                Some(Ok(())) => plain = Some(std::mem::take(&mut crypto.plain)),
                Some(Err(e)) => {
                    if e == crate::srtp::SrtpError::AuthFailed {
                        counters.srtcp_auth_failures += 1;
                        session.sides[side.index()].rtcp.srtcp_auth_failures += 1;
                    }
                    return Verdict::Drop(DropReason::Srtcp(e));
                }
                None => {}
            }
        }
    }
    let verdict = read_rtcp(
        session,
        now,
        side,
        datagram,
        plain.as_deref(),
        cap,
        counters,
        rewritten,
        by_mode,
        cleared,
    );
    if let (Some(buf), Some(crypto)) = (plain, session.crypto.as_mut()) {
        crypto.plain = buf;
    }
    verdict
}

/// Reads a compound (the plain one when SRTCP was opened) and decides
/// what is forwarded.
#[allow(clippy::too_many_arguments)]
fn read_rtcp(
    session: &mut Session,
    now: MonoTime,
    side: Side,
    datagram: &[u8],
    plain: Option<&[u8]>,
    cap: usize,
    counters: &mut Counters,
    rewritten: &mut Vec<u8>,
    by_mode: usize,
    cleared: &mut Vec<(Side, crate::wire::Ssrc)>,
) -> Verdict {
    let body = plain.unwrap_or(datagram);
    let readable = (plain.is_some() || !session.encrypted) && rtcp::walk(body).all(|p| p.is_ok());
    if !readable && session.crypto.as_ref().is_some_and(|c| c.back_to_back) {
        // Opened but not RTCP: the other leg could not open it either.
        return Verdict::Drop(DropReason::SrtpRejected);
    }
    if !readable {
        session.on_unreadable_rtcp(side, datagram, cap);
        counters.rtcp_unreadable += 1;
        counters.rtcp_by_mode[by_mode].forwarded += 1;
        return Verdict::Forward(PacketKind::Rtcp);
    }
    if plain.is_some() {
        session.sides[side.index()].rtcp.srtcp_opened += 1;
    }
    for packet in rtcp::walk(body).flatten() {
        session.on_rtcp(now, side, &packet, cap, counters, cleared);
    }
    let back_to_back = session.crypto.as_ref().is_some_and(|c| c.back_to_back);
    if session.mode != RtcpMode::Terminate && !back_to_back {
        counters.rtcp_by_mode[by_mode].forwarded += 1;
        return Verdict::Forward(PacketKind::Rtcp);
    }
    if session.mode != RtcpMode::Terminate {
        // Back-to-back DTLS: the other leg has its own keys, so the
        // compound goes on whole, re-protected for it.
        return reprotect_whole(session, side, datagram, body, counters, rewritten, by_mode);
    }
    let toward = side.other();
    if plain.is_some() && !session.crypto.as_ref().is_some_and(|c| c.can_protect_toward(toward)) {
        // No keys for the other leg: the proxy can read but not rewrite.
        counters.rtcp_by_mode[by_mode].forwarded += 1;
        return Verdict::Forward(PacketKind::Rtcp);
    }
    let stripped = rtcp_policy::strip_reports(body, rewritten);
    if let Some(blocks) = stripped {
        counters.report_blocks_consumed += blocks as u64;
        if rewritten.is_empty() {
            counters.rtcp_consumed += 1;
            counters.rtcp_by_mode[by_mode].consumed += 1;
            return Verdict::Consumed;
        }
    }
    if plain.is_some() {
        // Every compound from an endpoint is re-protected at the mapped
        // index, stripped or not, so the receiver sees one sequence.
        let crypto = session.crypto.as_mut();
        let index = crypto.as_ref().and_then(|c| c.index_of(side, datagram));
        let source: Vec<u8> = if stripped.is_some() {
            rewritten.clone()
        } else {
            body.to_vec()
        };
        match (crypto, index) {
            (Some(c), Some(index)) => {
                if let Some(Ok(())) = c.reprotect(toward, &source, index, rewritten) {
                    counters.rtcp_rewritten += 1;
                    counters.rtcp_by_mode[by_mode].forwarded += 1;
                    return Verdict::Rewritten(PacketKind::Rtcp);
                }
                return Verdict::Drop(DropReason::Srtcp(crate::srtp::SrtpError::Crypto));
            }
            _ => return Verdict::Drop(DropReason::Srtcp(crate::srtp::SrtpError::TooShort)),
        }
    }
    match stripped {
        None => {
            counters.rtcp_by_mode[by_mode].forwarded += 1;
            Verdict::Forward(PacketKind::Rtcp)
        }
        Some(_) => {
            counters.rtcp_rewritten += 1;
            counters.rtcp_by_mode[by_mode].forwarded += 1;
            Verdict::Rewritten(PacketKind::Rtcp)
        }
    }
}

/// Re-protects an endpoint's whole compound for the other leg at the
/// mapped index (back-to-back DTLS outside `terminate`).
fn reprotect_whole(
    session: &mut Session,
    side: Side,
    datagram: &[u8],
    body: &[u8],
    counters: &mut Counters,
    rewritten: &mut Vec<u8>,
    by_mode: usize,
) -> Verdict {
    let Some(crypto) = session.crypto.as_mut() else {
        return Verdict::Drop(DropReason::DtlsPending);
    };
    let Some(index) = crypto.index_of(side, datagram) else {
        return Verdict::Drop(DropReason::Srtcp(crate::srtp::SrtpError::TooShort));
    };
    match crypto.reprotect(side.other(), body, index, rewritten) {
        Some(Ok(())) => {
            counters.rtcp_by_mode[by_mode].forwarded += 1;
            Verdict::Rewritten(PacketKind::Rtcp)
        }
        _ => Verdict::Drop(DropReason::SrtpRejected),
    }
}
