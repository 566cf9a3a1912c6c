//! Feedback messages (RFC 4585 §6): transport-layer (RTPFB, 205) and
//! payload-specific (PSFB, 206). The proxy passes them through untouched
//! and identifies them for counters; writers exist for the common kinds.

use super::{finish_packet, pad_to_word, start_packet, Header, RtcpError, PT_PSFB, PT_RTPFB};
use crate::wire::bytes::u32_at;
use crate::wire::types::{SeqNo, Ssrc};

/// RTPFB FMT: Generic NACK (RFC 4585 §6.2.1).
pub const FMT_NACK: u8 = 1;
/// RTPFB FMT: transport-wide congestion control
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).
pub const FMT_TWCC: u8 = 15;
/// PSFB FMT: Picture Loss Indication (RFC 4585 §6.3.1).
pub const FMT_PLI: u8 = 1;
/// PSFB FMT: Slice Loss Indication (RFC 4585 §6.3.2).
pub const FMT_SLI: u8 = 2;
/// PSFB FMT: Reference Picture Selection Indication (RFC 4585 §6.3.3).
pub const FMT_RPSI: u8 = 3;
/// PSFB FMT: Full Intra Request (RFC 5104 §4.3.1).
pub const FMT_FIR: u8 = 4;
/// PSFB FMT: application layer feedback (RFC 4585 §6.4), which REMB uses.
pub const FMT_AFB: u8 = 15;

/// What a feedback message asks for (RFC 4585 §6, RFC 5104, transport-cc
/// draft-holmer-rmcat-transport-wide-cc-extensions-01, REMB draft-alvestrand-rmcat-remb-03).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeedbackKind {
    Nack,
    TransportCc,
    OtherTransport(u8),
    Pli,
    Sli,
    Rpsi,
    Fir,
    Remb,
    OtherPayload(u8),
}

/// Transport-layer (205) or payload-specific (206) feedback (RFC 4585 §6.1).
/// Passed through untouched; only identified for counters.
///
/// ```text
/// |V=2|P|   FMT   |       PT      |          length               |
/// |                  SSRC of packet sender                        |
/// |                  SSRC of media source                         |
/// :            Feedback Control Information (FCI)                 :
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Feedback<'a> {
    pub header: Header,
    pub kind: FeedbackKind,
    pub sender: Ssrc,
    pub media: Ssrc,
    pub fci: &'a [u8],
}

impl<'a> Feedback<'a> {
    pub(super) fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
        let short = RtcpError::BodyTooShort;
        let fci = body.get(8..).unwrap_or(&[]);
        let fmt = header.count;
        let kind = match (header.packet_type, fmt) {
            (PT_RTPFB, FMT_NACK) => FeedbackKind::Nack,
            (PT_RTPFB, FMT_TWCC) => FeedbackKind::TransportCc,
            (PT_RTPFB, f) => FeedbackKind::OtherTransport(f),
            (_, FMT_PLI) => FeedbackKind::Pli,
            (_, FMT_SLI) => FeedbackKind::Sli,
            (_, FMT_RPSI) => FeedbackKind::Rpsi,
            (_, FMT_FIR) => FeedbackKind::Fir,
            (_, FMT_AFB) if fci.starts_with(b"REMB") => FeedbackKind::Remb,
            (_, f) => FeedbackKind::OtherPayload(f),
        };
        Ok(Feedback {
            header,
            kind,
            sender: Ssrc(u32_at(body, 0).ok_or(short)?),
            media: Ssrc(u32_at(body, 4).ok_or(short)?),
            fci,
        })
    }
}

/// Appends any feedback message (RFC 4585 §6.1): `packet_type` is
/// [`PT_RTPFB`] or [`PT_PSFB`], `fmt` keeps its low 5 bits, and the FCI is
/// zero-padded to a 32-bit boundary.
pub fn write_feedback(out: &mut Vec<u8>, packet_type: u8, fmt: u8, sender: Ssrc, media: Ssrc, fci: &[u8]) {
    let at = start_packet(out, fmt, packet_type);
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&media.0.to_be_bytes());
    out.extend_from_slice(fci);
    pad_to_word(out, at);
    finish_packet(out, at);
}

/// Appends a PLI (RFC 4585 §6.3.1): no FCI.
pub fn write_pli(out: &mut Vec<u8>, sender: Ssrc, media: Ssrc) {
    write_feedback(out, PT_PSFB, FMT_PLI, sender, media, &[]);
}

/// Appends a Generic NACK (RFC 4585 §6.2.1) for the `lost` sequence
/// numbers, given in ascending order (modulo 2^16). Each FCI entry is
/// `| PID | BLP |`: PID is lost, and bit i of BLP marks PID + i + 1 lost;
/// a number more than 16 past the current PID starts a new entry.
pub fn write_nack(out: &mut Vec<u8>, sender: Ssrc, media: Ssrc, lost: &[SeqNo]) {
    let at = start_packet(out, FMT_NACK, PT_RTPFB);
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&media.0.to_be_bytes());
    let mut entry: Option<(SeqNo, u16)> = None;
    for &seq in lost {
        match entry {
            Some((pid, ref mut blp)) if (1..=16).contains(&seq.delta_from(pid)) => {
                *blp |= 1 << (seq.delta_from(pid) - 1);
            }
            Some((pid, _)) if seq == pid => {}
            _ => {
                if let Some((pid, blp)) = entry {
                    out.extend_from_slice(&pid.0.to_be_bytes());
                    out.extend_from_slice(&blp.to_be_bytes());
                }
                entry = Some((seq, 0));
            }
        }
    }
    if let Some((pid, blp)) = entry {
        out.extend_from_slice(&pid.0.to_be_bytes());
        out.extend_from_slice(&blp.to_be_bytes());
    }
    finish_packet(out, at);
}

/// Appends a FIR (RFC 5104 §4.3.1): media source SSRC 0, one FCI entry
/// `| SSRC | seq nr | reserved (24) |` per (target, command sequence number).
pub fn write_fir(out: &mut Vec<u8>, sender: Ssrc, requests: &[(Ssrc, u8)]) {
    let at = start_packet(out, FMT_FIR, PT_PSFB);
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    for (target, seq) in requests {
        out.extend_from_slice(&target.0.to_be_bytes());
        out.extend_from_slice(&[*seq, 0, 0, 0]);
    }
    finish_packet(out, at);
}

/// Appends a REMB (draft-alvestrand-rmcat-remb-03 §2.2): media source SSRC
/// 0, then `"REMB" | Num SSRC (8) | BR Exp (6) | BR Mantissa (18) | SSRCs`.
/// The bitrate is rounded down to the 18-bit mantissa with the smallest
/// exponent that holds it; at most 255 SSRCs are listed.
pub fn write_remb(out: &mut Vec<u8>, sender: Ssrc, bitrate_bps: u64, ssrcs: &[Ssrc]) {
    let ssrcs = &ssrcs[..ssrcs.len().min(255)];
    let mut exp = 0u32;
    while bitrate_bps >> exp > 0x3_ffff {
        exp += 1;
    }
    let mantissa = (bitrate_bps >> exp) as u32;
    let at = start_packet(out, FMT_AFB, PT_PSFB);
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(b"REMB");
    out.push(ssrcs.len() as u8);
    out.extend_from_slice(&(exp << 18 | mantissa).to_be_bytes()[1..]);
    for s in ssrcs {
        out.extend_from_slice(&s.0.to_be_bytes());
    }
    finish_packet(out, at);
}

#[cfg(test)]
mod tests {
    use super::super::{walk, RtcpPacket};
    use super::*;

    fn parse(d: &[u8]) -> Feedback<'_> {
        let Some(Ok(RtcpPacket::Feedback(fb))) = walk(d).next() else {
            panic!("not feedback")
        };
        fb
    }

    #[test]
    fn nack_matches_the_fixture() {
        #[rustfmt::skip]
        let fixture = [
            0x81, 0xcd, 0x00, 0x03, // FMT=1, PT=205, 3 words
            0, 0, 0, 1, 0, 0, 0, 2, // sender, media source
            0x00, 0x64, 0x00, 0x05, // PID 100, BLP 0b101
        ];
        let mut out = Vec::new();
        write_nack(&mut out, Ssrc(1), Ssrc(2), &[SeqNo(100), SeqNo(101), SeqNo(103)]);
        assert_eq!(out, fixture);
        let fb = parse(&out);
        assert_eq!((fb.kind, fb.sender, fb.media), (FeedbackKind::Nack, Ssrc(1), Ssrc(2)));
    }

    #[test]
    fn nack_entries_split_past_16_and_across_the_wrap() {
        let mut out = Vec::new();
        let lost = [SeqNo(65_534), SeqNo(65_535), SeqNo(0), SeqNo(14), SeqNo(15), SeqNo(40)];
        write_nack(&mut out, Ssrc(1), Ssrc(2), &lost);
        let fb = parse(&out);
        // 65534 + {1, 2, 16}; then 15 (17 past) starts an entry; then 40.
        assert_eq!(
            fb.fci,
            &[0xff, 0xfe, 0x80, 0x03, 0x00, 0x0f, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00]
        );
        let mut empty = Vec::new();
        write_nack(&mut empty, Ssrc(1), Ssrc(2), &[]);
        assert!(parse(&empty).fci.is_empty());
    }

    #[test]
    fn pli_fir_remb_match_the_fixtures() {
        let mut out = Vec::new();
        write_pli(&mut out, Ssrc(10), Ssrc(11));
        assert_eq!(out, [0x81, 0xce, 0, 2, 0, 0, 0, 10, 0, 0, 0, 11]);
        assert_eq!(parse(&out).kind, FeedbackKind::Pli);

        out.clear();
        write_fir(&mut out, Ssrc(10), &[(Ssrc(11), 7)]);
        #[rustfmt::skip]
        let fir = [0x84, 0xce, 0, 4, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 11, 7, 0, 0, 0];
        assert_eq!(out, fir);
        assert_eq!(parse(&out).kind, FeedbackKind::Fir);

        out.clear();
        write_remb(&mut out, Ssrc(10), 1_000_000, &[Ssrc(11)]);
        #[rustfmt::skip]
        let remb = [
            0x8f, 0xce, 0, 5, 0, 0, 0, 10, 0, 0, 0, 0,
            b'R', b'E', b'M', b'B', 0x01, 0x0b, 0xd0, 0x90, 0, 0, 0, 11,
        ];
        assert_eq!(out, remb);
        assert_eq!(parse(&out).kind, FeedbackKind::Remb);
    }

    #[test]
    fn remb_mantissa_and_exponent() {
        for bps in [0u64, 1, 0x3_ffff, 0x4_0000, 123_456_789, u64::MAX] {
            let mut out = Vec::new();
            write_remb(&mut out, Ssrc(1), bps, &[]);
            let fci = parse(&out).fci;
            let exp = fci[5] >> 2;
            let mantissa = u64::from(fci[5] & 3) << 16 | u64::from(fci[6]) << 8 | u64::from(fci[7]);
            let back = mantissa << exp;
            assert!(back <= bps && bps - back < 1 << exp, "{bps}: {mantissa} << {exp}");
        }
    }

    #[test]
    fn generic_writer_pads_the_fci() {
        let mut out = Vec::new();
        write_feedback(&mut out, PT_RTPFB, 9, Ssrc(1), Ssrc(2), &[1, 2, 3]);
        assert_eq!(out.len(), 16);
        let fb = parse(&out);
        assert_eq!(fb.kind, FeedbackKind::OtherTransport(9));
        assert_eq!(fb.fci, &[1, 2, 3, 0]);
    }

    #[test]
    fn missing_media_ssrc_is_an_error() {
        let p = [0x81, PT_PSFB, 0, 1, 0, 0, 0, 1];
        assert_eq!(walk(&p).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    }
}
