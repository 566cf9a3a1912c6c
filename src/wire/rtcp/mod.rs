//! RTCP compound walker and typed borrowed views (RFC 3550 §6.4–6.7,
//! RFC 3611 XR, RFC 4585 / RFC 5104 feedback), plus writers for each type.
//!
//! One file per packet type, each owning its zero-copy view, parser and
//! writer: [`sr`] (SR), [`rr`] (RR and the report block), [`sdes`], [`bye`],
//! [`app`], [`feedback`] (RTPFB/PSFB: NACK, TWCC, PLI, FIR, REMB) and [`xr`]
//! (RRTR/DLRR). This file holds what they share: the common header, the
//! compound walker, the error type and the packet enum. Every type is
//! re-exported here, so `crate::wire::rtcp::Whatever` is the one path.
//!
//! The walker never trusts a length: every packet's declared length is
//! checked against what remains, every count against the packet body.
//! Unknown packet types are yielded as [`RtcpPacket::Other`] and skipped by
//! their length, so compounds with new types still walk.

mod app;
mod bye;
mod feedback;
mod rr;
mod sdes;
mod sr;
mod xr;

pub use app::{write_app, App};
pub use bye::{write_bye, Bye};
pub use feedback::{
    write_feedback, write_fir, write_nack, write_pli, write_remb, Feedback, FeedbackKind, FMT_AFB, FMT_FIR, FMT_NACK,
    FMT_PLI, FMT_RPSI, FMT_SLI, FMT_TWCC,
};
pub use rr::{
    clamp_lost_24, sign_extend_24, write_receiver_report, ReceiverReport, ReportBlock, ReportBlocks,
    CUMULATIVE_LOST_MAX, CUMULATIVE_LOST_MIN, MAX_REPORT_BLOCKS, REPORT_BLOCK_LEN,
};
pub use sdes::{write_sdes_cname, Sdes, SdesChunks, SdesItem, SdesItems, SDES_CNAME};
pub use sr::{write_sender_report, SenderInfo, SenderReport};
pub use xr::{
    write_xr, write_xr_blocks, DlrrItem, DlrrItems, StatsSummary, VoipMetrics, Xr, XrBlock, XrBlocks, VOIP_UNAVAILABLE,
    XR_DLRR, XR_RRTR, XR_STATS_SUMMARY, XR_VOIP_METRICS,
};

use super::bytes::{u16_at, u8_at};
use thiserror::Error;

/// Packet types (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611 §2).
pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;
pub const PT_RTPFB: u8 = 205;
pub const PT_PSFB: u8 = 206;
pub const PT_XR: u8 = 207;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
pub enum RtcpError {
    #[error("shorter than the 4-byte common header")]
    TooShort,
    #[error("version is not 2")]
    BadVersion,
    #[error("declared length runs past the end of the datagram")]
    LengthOverrun,
    #[error("padding count is zero or larger than the packet")]
    BadPadding,
    #[error("packet body too short for its type or count")]
    BodyTooShort,
}

impl RtcpError {
    /// Stable label for counters.
    pub fn reason(self) -> &'static str {
        match self {
            RtcpError::TooShort => "rtcp_too_short",
            RtcpError::BadVersion => "rtcp_bad_version",
            RtcpError::LengthOverrun => "rtcp_length_overrun",
            RtcpError::BadPadding => "rtcp_bad_padding",
            RtcpError::BodyTooShort => "rtcp_body_too_short",
        }
    }
}

/// Walks the packets of a compound RTCP datagram.
///
/// Yields `Err` once for the first malformed packet and then stops: after a
/// bad length there is no way to find the next header.
pub struct CompoundWalker<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// Iterates the packets of an RTCP compound.
pub fn walk(datagram: &[u8]) -> CompoundWalker<'_> {
    CompoundWalker {
        rest: datagram,
        failed: false,
    }
}

impl<'a> Iterator for CompoundWalker<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match split_packet(self.rest) {
            Ok((packet, rest)) => {
                self.rest = rest;
                Some(Ok(packet))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Header fields common to every RTCP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The 5-bit count field (RC, SC or FMT, by type).
    pub count: u8,
    pub packet_type: u8,
    /// Total packet length in bytes, header and padding included.
    pub len: usize,
}

/// The first packet's common header (RFC 3550 §6.4.1): version 2 and a
/// length that fits the datagram; with the P bit. All of it is what SRTCP
/// leaves in the clear (RFC 3711 §3.4 encrypts from octet 8), so this is
/// the check that holds for RTCP and SRTCP alike; padding count and body
/// are not judged (in SRTCP they are ciphertext).
pub fn first_header(buf: &[u8]) -> Result<(Header, bool), RtcpError> {
    // |V=2|P|  count  |      PT       |   length (32-bit words − 1)   |
    let b0 = u8_at(buf, 0).ok_or(RtcpError::TooShort)?;
    let pt = u8_at(buf, 1).ok_or(RtcpError::TooShort)?;
    let words = u16_at(buf, 2).ok_or(RtcpError::TooShort)?;
    if b0 >> 6 != 2 {
        return Err(RtcpError::BadVersion);
    }
    let len = (usize::from(words) + 1) * 4;
    if buf.len() < len {
        return Err(RtcpError::LengthOverrun);
    }
    let header = Header {
        count: b0 & 0x1f,
        packet_type: pt,
        len,
    };
    Ok((header, b0 & 0x20 != 0))
}

fn split_packet(buf: &[u8]) -> Result<(RtcpPacket<'_>, &[u8]), RtcpError> {
    let (header, padded) = first_header(buf)?;
    let len = header.len;
    let (packet, rest) = buf.split_at(len);
    let mut body_end = len;
    if padded {
        let pad = usize::from(*packet.last().ok_or(RtcpError::TooShort)?);
        if pad == 0 || pad > len - 4 {
            return Err(RtcpError::BadPadding);
        }
        body_end -= pad;
    }
    let pt = header.packet_type;
    // `body` excludes the 4-byte header and any padding.
    let body = packet.get(4..body_end).unwrap_or(&[]);
    let view = match pt {
        PT_SR => RtcpPacket::SenderReport(SenderReport::parse(header, body)?),
        PT_RR => RtcpPacket::ReceiverReport(ReceiverReport::parse(header, body)?),
        PT_SDES => RtcpPacket::Sdes(Sdes::parse(header, body)),
        PT_BYE => RtcpPacket::Bye(Bye::parse(header, body)?),
        PT_APP => RtcpPacket::App(App::parse(header, body)?),
        PT_RTPFB | PT_PSFB => RtcpPacket::Feedback(Feedback::parse(header, body)?),
        PT_XR => RtcpPacket::Xr(Xr::parse(header, body)?),
        _ => RtcpPacket::Other { header, body },
    };
    Ok((view, rest))
}

/// One packet of a compound, borrowed.
#[derive(Clone, Copy, Debug)]
pub enum RtcpPacket<'a> {
    SenderReport(SenderReport<'a>),
    ReceiverReport(ReceiverReport<'a>),
    Sdes(Sdes<'a>),
    Bye(Bye<'a>),
    App(App<'a>),
    Feedback(Feedback<'a>),
    Xr(Xr<'a>),
    Other { header: Header, body: &'a [u8] },
}

impl RtcpPacket<'_> {
    pub fn header(&self) -> Header {
        match self {
            RtcpPacket::SenderReport(p) => p.header,
            RtcpPacket::ReceiverReport(p) => p.header,
            RtcpPacket::Sdes(p) => p.header,
            RtcpPacket::Bye(p) => p.header,
            RtcpPacket::App(p) => p.header,
            RtcpPacket::Feedback(p) => p.header,
            RtcpPacket::Xr(p) => p.header,
            RtcpPacket::Other { header, .. } => *header,
        }
    }
}

// ---------------------------------------------------------------- writers

/// Writes a common header (V=2, P=0) whose length is fixed up by
/// [`finish_packet`]; returns where the packet starts. `count` keeps its low
/// 5 bits (RC, SC, subtype or FMT by type).
fn start_packet(out: &mut Vec<u8>, count: u8, packet_type: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0x80 | (count & 0x1f), packet_type, 0, 0]);
    at
}

/// Zero-pads the packet started at `at` to a 32-bit boundary (what SDES
/// chunks, BYE reasons and APP data need; a no-op for the fixed layouts).
fn pad_to_word(out: &mut Vec<u8>, at: usize) {
    let len = out.len() - at;
    out.resize(at + len.next_multiple_of(4), 0);
}

/// Writes the length field (32-bit words − 1) of the word-aligned packet
/// started at `at`. A packet longer than the field can say is clamped to
/// the largest value, as the 16-bit field allows no more.
fn finish_packet(out: &mut [u8], at: usize) {
    let len = out.len() - at;
    debug_assert_eq!(len % 4, 0, "RTCP packets are word-aligned");
    let words = u16::try_from(len / 4 - 1).unwrap_or(u16::MAX);
    out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::types::Ssrc;

    #[test]
    fn walker_stops_after_the_first_error() {
        let mut d = Vec::new();
        write_receiver_report(&mut d, Ssrc(1), &[]);
        d.extend_from_slice(&[0x80, PT_RR, 0, 9, 0, 0, 0, 1]);
        write_receiver_report(&mut d, Ssrc(2), &[]);
        let got: Vec<_> = walk(&d).map(|p| p.map(|p| p.header().packet_type)).collect();
        assert_eq!(got, vec![Ok(PT_RR), Err(RtcpError::LengthOverrun)]);
    }

    #[test]
    fn header_errors() {
        assert_eq!(walk(&[0x80, 201]).next().unwrap().unwrap_err(), RtcpError::TooShort);
        assert_eq!(
            walk(&[0x40, 201, 0, 0]).next().unwrap().unwrap_err(),
            RtcpError::BadVersion
        );
        // Padding count 0, and padding larger than the body.
        let pad0 = [0xa0, 201, 0, 1, 0, 0, 0, 0];
        assert_eq!(walk(&pad0).next().unwrap().unwrap_err(), RtcpError::BadPadding);
        let pad_big = [0xa0, 201, 0, 1, 0, 0, 0, 5];
        assert_eq!(walk(&pad_big).next().unwrap().unwrap_err(), RtcpError::BadPadding);
    }

    #[test]
    fn unknown_types_are_skipped_by_length() {
        let mut d = vec![0x80, 210, 0, 1, 1, 2, 3, 4];
        write_receiver_report(&mut d, Ssrc(7), &[]);
        let got: Vec<_> = walk(&d).map(|p| p.unwrap()).collect();
        assert!(
            matches!(got[0], RtcpPacket::Other { header, body } if header.packet_type == 210 && body == [1, 2, 3, 4])
        );
        assert!(matches!(got[1], RtcpPacket::ReceiverReport(rr) if rr.sender == Ssrc(7)));
    }
}
