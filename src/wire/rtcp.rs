//! RTCP compound walker and typed borrowed views (RFC 3550 §6.4–6.6,
//! RFC 3611 XR, RFC 4585 feedback), plus builders for what the proxy writes.
//!
//! The walker never trusts a length: every packet's declared length is
//! checked against what remains, every count against the packet body.
//! Unknown packet types are yielded as [`RtcpPacket::Other`] and skipped by
//! their length, so compounds with new types still walk.

use super::bytes::{u16_at, u32_at, u64_at, u8_at};
use super::ntp::{CompactNtp, Delay16, NtpTime};
use super::types::Ssrc;
use thiserror::Error;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;
pub const PT_RTPFB: u8 = 205;
pub const PT_PSFB: u8 = 206;
pub const PT_XR: u8 = 207;

/// Size of one report block (RFC 3550 §6.4.1).
pub const REPORT_BLOCK_LEN: usize = 24;
/// Report count is a 5-bit field: at most 31 blocks per SR/RR.
pub const MAX_REPORT_BLOCKS: usize = 31;

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

fn split_packet(buf: &[u8]) -> Result<(RtcpPacket<'_>, &[u8]), RtcpError> {
    // RFC 3550 §6.4.1 common header:
    // |V=2|P|  count  |      PT       |   length (32-bit words − 1)   |
    let b0 = u8_at(buf, 0).ok_or(RtcpError::TooShort)?;
    let pt = u8_at(buf, 1).ok_or(RtcpError::TooShort)?;
    let words = u16_at(buf, 2).ok_or(RtcpError::TooShort)?;
    if b0 >> 6 != 2 {
        return Err(RtcpError::BadVersion);
    }
    let len = (usize::from(words) + 1) * 4;
    let packet = buf.get(..len).ok_or(RtcpError::LengthOverrun)?;
    let rest = buf.get(len..).unwrap_or(&[]);
    let mut body_end = len;
    if b0 & 0x20 != 0 {
        let pad = usize::from(*packet.last().ok_or(RtcpError::TooShort)?);
        if pad == 0 || pad > len - 4 {
            return Err(RtcpError::BadPadding);
        }
        body_end -= pad;
    }
    let header = Header {
        count: b0 & 0x1f,
        packet_type: pt,
        len,
    };
    // `body` excludes the 4-byte header and any padding.
    let body = packet.get(4..body_end).unwrap_or(&[]);
    let view = match pt {
        PT_SR => RtcpPacket::SenderReport(SenderReport::parse(header, body)?),
        PT_RR => RtcpPacket::ReceiverReport(ReceiverReport::parse(header, body)?),
        PT_SDES => RtcpPacket::Sdes(Sdes { header, body }),
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

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on (SSRC_n).
    pub ssrc: Ssrc,
    /// Fraction lost since the previous report, 0..=255 of 256ths.
    pub fraction_lost: u8,
    /// Cumulative packets lost: signed 24-bit on the wire, may be negative
    /// when duplicates arrive (RFC 3550 §6.4.1; Janus PR #3228 read it as
    /// unsigned and saw ~16.7 million).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | seq).
    pub ext_highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units (RFC 3550 A.8).
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from SSRC_n.
    pub lsr: CompactNtp,
    /// Delay since that SR was received, 1/65 536 s.
    pub dlsr: Delay16,
}

/// Largest and smallest values of the signed 24-bit cumulative loss field.
pub const CUMULATIVE_LOST_MAX: i32 = 0x7f_ffff;
pub const CUMULATIVE_LOST_MIN: i32 = -0x80_0000;

impl ReportBlock {
    fn parse(b: &[u8]) -> Option<Self> {
        let lost_word = u32_at(b, 4)?;
        Some(ReportBlock {
            ssrc: Ssrc(u32_at(b, 0)?),
            fraction_lost: (lost_word >> 24) as u8,
            cumulative_lost: sign_extend_24(lost_word & 0xff_ffff),
            ext_highest_seq: u32_at(b, 8)?,
            jitter: u32_at(b, 12)?,
            lsr: CompactNtp(u32_at(b, 16)?),
            dlsr: Delay16(u32_at(b, 20)?),
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        let lost24 = clamp_lost_24(i64::from(self.cumulative_lost));
        out.extend_from_slice(&(u32::from(self.fraction_lost) << 24 | lost24).to_be_bytes());
        out.extend_from_slice(&self.ext_highest_seq.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.lsr.0.to_be_bytes());
        out.extend_from_slice(&self.dlsr.0.to_be_bytes());
    }
}

/// Two's-complement 24-bit to i32. Example: 0xFF_FFFF → −1, 0x80_0000 → −8 388 608.
#[inline]
pub fn sign_extend_24(v: u32) -> i32 {
    ((v << 8) as i32) >> 8
}

/// Clamps a signed loss to the 24-bit field and returns its wire bits
/// (RFC 3550 §6.4.1: "clamped" at 0x7fffff positive, 0x800000 negative).
/// Example: −1 → 0xFF_FFFF; 10 000 000 → 0x7F_FFFF.
#[inline]
pub fn clamp_lost_24(lost: i64) -> u32 {
    let clamped = lost.clamp(i64::from(CUMULATIVE_LOST_MIN), i64::from(CUMULATIVE_LOST_MAX));
    (clamped as i32 as u32) & 0xff_ffff
}

/// Iterator over report blocks of an SR or RR.
#[derive(Clone, Copy, Debug)]
pub struct ReportBlocks<'a> {
    raw: &'a [u8],
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        let block = ReportBlock::parse(self.raw.get(..REPORT_BLOCK_LEN)?)?;
        self.raw = self.raw.get(REPORT_BLOCK_LEN..).unwrap_or(&[]);
        Some(block)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.raw.len() / REPORT_BLOCK_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for ReportBlocks<'_> {}

fn report_blocks(body: &[u8], at: usize, count: u8) -> Result<ReportBlocks<'_>, RtcpError> {
    let len = usize::from(count) * REPORT_BLOCK_LEN;
    let raw = body.get(at..at + len).ok_or(RtcpError::BodyTooShort)?;
    Ok(ReportBlocks { raw })
}

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SenderInfo {
    pub ntp: NtpTime,
    pub rtp_ts: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct SenderReport<'a> {
    pub header: Header,
    pub sender: Ssrc,
    pub info: SenderInfo,
    blocks: ReportBlocks<'a>,
    /// Profile-specific extension after the blocks, if any.
    pub extension: &'a [u8],
}

impl<'a> SenderReport<'a> {
    fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
        let short = RtcpError::BodyTooShort;
        let info = SenderInfo {
            ntp: NtpTime(u64_at(body, 4).ok_or(short)?),
            rtp_ts: u32_at(body, 12).ok_or(short)?,
            packet_count: u32_at(body, 16).ok_or(short)?,
            octet_count: u32_at(body, 20).ok_or(short)?,
        };
        let blocks = report_blocks(body, 24, header.count)?;
        Ok(SenderReport {
            header,
            sender: Ssrc(u32_at(body, 0).ok_or(short)?),
            info,
            blocks,
            extension: body.get(24 + blocks.raw.len()..).unwrap_or(&[]),
        })
    }

    /// Every report block, not only the first (Janus PR #2089 read one).
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        self.blocks
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ReceiverReport<'a> {
    pub header: Header,
    pub sender: Ssrc,
    blocks: ReportBlocks<'a>,
    pub extension: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
        let sender = Ssrc(u32_at(body, 0).ok_or(RtcpError::BodyTooShort)?);
        let blocks = report_blocks(body, 4, header.count)?;
        Ok(ReceiverReport {
            header,
            sender,
            blocks,
            extension: body.get(4 + blocks.raw.len()..).unwrap_or(&[]),
        })
    }

    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        self.blocks
    }
}

/// SDES (RFC 3550 §6.5). Chunks are walked lazily.
#[derive(Clone, Copy, Debug)]
pub struct Sdes<'a> {
    pub header: Header,
    body: &'a [u8],
}

pub const SDES_CNAME: u8 = 1;

/// One SDES item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdesItem<'a> {
    pub kind: u8,
    pub text: &'a [u8],
}

impl<'a> Sdes<'a> {
    /// Chunks as (SSRC, items). A malformed chunk ends the walk.
    pub fn chunks(&self) -> SdesChunks<'a> {
        SdesChunks {
            body: self.body,
            remaining: self.header.count,
        }
    }
}

pub struct SdesChunks<'a> {
    body: &'a [u8],
    remaining: u8,
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = (Ssrc, SdesItems<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let ssrc = Ssrc(u32_at(self.body, 0)?);
        // Items run to a null item type; the chunk then pads to a word.
        let mut at = 4;
        loop {
            let kind = u8_at(self.body, at)?;
            if kind == 0 {
                break;
            }
            let len = usize::from(u8_at(self.body, at + 1)?);
            at += 2 + len;
        }
        let items = SdesItems {
            raw: self.body.get(4..at)?,
        };
        let end = (at + 1).next_multiple_of(4);
        self.body = self.body.get(end..).unwrap_or(&[]);
        Some((ssrc, items))
    }
}

pub struct SdesItems<'a> {
    raw: &'a [u8],
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = SdesItem<'a>;
    fn next(&mut self) -> Option<SdesItem<'a>> {
        let kind = u8_at(self.raw, 0)?;
        let len = usize::from(u8_at(self.raw, 1)?);
        let text = self.raw.get(2..2 + len)?;
        self.raw = self.raw.get(2 + len..).unwrap_or(&[]);
        Some(SdesItem { kind, text })
    }
}

/// BYE (RFC 3550 §6.6).
#[derive(Clone, Copy, Debug)]
pub struct Bye<'a> {
    pub header: Header,
    ssrcs: &'a [u8],
    pub reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
        let n = usize::from(header.count) * 4;
        let ssrcs = body.get(..n).ok_or(RtcpError::BodyTooShort)?;
        let reason = u8_at(body, n).and_then(|len| body.get(n + 1..n + 1 + usize::from(len)));
        Ok(Bye { header, ssrcs, reason })
    }

    pub fn ssrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        self.ssrcs.chunks_exact(4).filter_map(|c| u32_at(c, 0).map(Ssrc))
    }
}

/// APP (RFC 3550 §6.7).
#[derive(Clone, Copy, Debug)]
pub struct App<'a> {
    pub header: Header,
    pub sender: Ssrc,
    pub name: [u8; 4],
    pub data: &'a [u8],
}

impl<'a> App<'a> {
    fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
        let short = RtcpError::BodyTooShort;
        let name = u32_at(body, 4).ok_or(short)?.to_be_bytes();
        Ok(App {
            header,
            sender: Ssrc(u32_at(body, 0).ok_or(short)?),
            name,
            data: body.get(8..).unwrap_or(&[]),
        })
    }
}

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

/// Transport-layer (205) or payload-specific (206) feedback. Passed through
/// untouched; only identified for counters.
#[derive(Clone, Copy, Debug)]
pub struct Feedback<'a> {
    pub header: Header,
    pub kind: FeedbackKind,
    pub sender: Ssrc,
    pub media: Ssrc,
    pub fci: &'a [u8],
}

impl<'a> Feedback<'a> {
    fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
        let short = RtcpError::BodyTooShort;
        let fci = body.get(8..).unwrap_or(&[]);
        let fmt = header.count;
        let kind = match (header.packet_type, fmt) {
            (PT_RTPFB, 1) => FeedbackKind::Nack,
            (PT_RTPFB, 15) => FeedbackKind::TransportCc,
            (PT_RTPFB, f) => FeedbackKind::OtherTransport(f),
            (_, 1) => FeedbackKind::Pli,
            (_, 2) => FeedbackKind::Sli,
            (_, 3) => FeedbackKind::Rpsi,
            (_, 4) => FeedbackKind::Fir,
            (_, 15) if fci.starts_with(b"REMB") => FeedbackKind::Remb,
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

/// Extended Reports (RFC 3611).
#[derive(Clone, Copy, Debug)]
pub struct Xr<'a> {
    pub header: Header,
    pub sender: Ssrc,
    blocks: &'a [u8],
}

pub const XR_RRTR: u8 = 4;
pub const XR_DLRR: u8 = 5;

/// One XR report block.
#[derive(Clone, Copy, Debug)]
pub enum XrBlock<'a> {
    /// Receiver Reference Time (RFC 3611 §4.4).
    Rrtr { ntp: NtpTime },
    /// DLRR (RFC 3611 §4.5): sub-blocks of (SSRC, LRR, DLRR).
    Dlrr(DlrrItems<'a>),
    /// Any other block type, skipped by its length.
    Other { block_type: u8 },
}

/// One DLRR sub-block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DlrrItem {
    /// The receiver whose RRTR this answers.
    pub ssrc: Ssrc,
    /// Middle 32 bits of that RRTR's NTP time.
    pub lrr: CompactNtp,
    /// Delay since that RRTR arrived, 1/65 536 s.
    pub dlrr: Delay16,
}

#[derive(Clone, Copy, Debug)]
pub struct DlrrItems<'a> {
    raw: &'a [u8],
}

impl Iterator for DlrrItems<'_> {
    type Item = DlrrItem;
    fn next(&mut self) -> Option<DlrrItem> {
        let item = DlrrItem {
            ssrc: Ssrc(u32_at(self.raw, 0)?),
            lrr: CompactNtp(u32_at(self.raw, 4)?),
            dlrr: Delay16(u32_at(self.raw, 8)?),
        };
        self.raw = self.raw.get(12..).unwrap_or(&[]);
        Some(item)
    }
}

impl<'a> Xr<'a> {
    fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
        Ok(Xr {
            header,
            sender: Ssrc(u32_at(body, 0).ok_or(RtcpError::BodyTooShort)?),
            blocks: body.get(4..).unwrap_or(&[]),
        })
    }

    /// Report blocks. A block whose length overruns the packet ends the walk.
    pub fn blocks(&self) -> XrBlocks<'a> {
        XrBlocks { raw: self.blocks }
    }
}

pub struct XrBlocks<'a> {
    raw: &'a [u8],
}

impl<'a> Iterator for XrBlocks<'a> {
    type Item = XrBlock<'a>;
    fn next(&mut self) -> Option<XrBlock<'a>> {
        // RFC 3611 §3: | BT | type-specific | block length (words, excl. header) |
        let block_type = u8_at(self.raw, 0)?;
        let words = usize::from(u16_at(self.raw, 2)?);
        let content = self.raw.get(4..4 + 4 * words)?;
        self.raw = self.raw.get(4 + 4 * words..).unwrap_or(&[]);
        Some(match block_type {
            XR_RRTR => XrBlock::Rrtr {
                ntp: NtpTime(u64_at(content, 0)?),
            },
            XR_DLRR => XrBlock::Dlrr(DlrrItems { raw: content }),
            other => XrBlock::Other { block_type: other },
        })
    }
}

// ---------------------------------------------------------------- builders

/// Writes a common header whose length is fixed up by [`finish_packet`].
fn start_packet(out: &mut Vec<u8>, count: u8, packet_type: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0x80 | (count & 0x1f), packet_type, 0, 0]);
    at
}

/// Pads to a 32-bit boundary with zero bytes and writes the length field.
fn finish_packet(out: &mut [u8], at: usize) {
    let len = out.len() - at;
    debug_assert_eq!(len % 4, 0, "RTCP packets are word-aligned");
    let words = u16::try_from(len / 4 - 1).unwrap_or(u16::MAX);
    out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
}

/// Appends a Receiver Report. At most 31 blocks fit one RR (5-bit count);
/// callers split longer lists over several RRs in one compound.
pub fn write_receiver_report(out: &mut Vec<u8>, sender: Ssrc, blocks: &[ReportBlock]) {
    let blocks = &blocks[..blocks.len().min(MAX_REPORT_BLOCKS)];
    let at = start_packet(out, blocks.len() as u8, PT_RR);
    out.extend_from_slice(&sender.0.to_be_bytes());
    for b in blocks {
        b.write(out);
    }
    finish_packet(out, at);
}

/// Appends a Sender Report with up to 31 blocks.
pub fn write_sender_report(out: &mut Vec<u8>, sender: Ssrc, info: &SenderInfo, blocks: &[ReportBlock]) {
    let blocks = &blocks[..blocks.len().min(MAX_REPORT_BLOCKS)];
    let at = start_packet(out, blocks.len() as u8, PT_SR);
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&info.ntp.0.to_be_bytes());
    out.extend_from_slice(&info.rtp_ts.to_be_bytes());
    out.extend_from_slice(&info.packet_count.to_be_bytes());
    out.extend_from_slice(&info.octet_count.to_be_bytes());
    for b in blocks {
        b.write(out);
    }
    finish_packet(out, at);
}

/// Appends an SDES packet with one chunk carrying a CNAME (RFC 3550 §6.5.1).
/// A CNAME longer than 255 bytes is truncated to fit the length octet.
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: Ssrc, cname: &[u8]) {
    let cname = &cname[..cname.len().min(255)];
    let at = start_packet(out, 1, PT_SDES);
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    // Null item terminates the list, then pad the chunk to a word boundary.
    out.push(0);
    while (out.len() - at) % 4 != 0 {
        out.push(0);
    }
    finish_packet(out, at);
}

/// Appends an XR packet with an optional RRTR block and an optional DLRR
/// block (RFC 3611 §4.4, §4.5).
pub fn write_xr(out: &mut Vec<u8>, sender: Ssrc, rrtr: Option<NtpTime>, dlrr: &[DlrrItem]) {
    let at = start_packet(out, 0, PT_XR);
    out.extend_from_slice(&sender.0.to_be_bytes());
    if let Some(ntp) = rrtr {
        out.extend_from_slice(&[XR_RRTR, 0, 0, 2]);
        out.extend_from_slice(&ntp.0.to_be_bytes());
    }
    if !dlrr.is_empty() {
        let words = u16::try_from(dlrr.len() * 3).unwrap_or(u16::MAX);
        out.extend_from_slice(&[XR_DLRR, 0]);
        out.extend_from_slice(&words.to_be_bytes());
        for item in dlrr {
            out.extend_from_slice(&item.ssrc.0.to_be_bytes());
            out.extend_from_slice(&item.lrr.0.to_be_bytes());
            out.extend_from_slice(&item.dlrr.0.to_be_bytes());
        }
    }
    finish_packet(out, at);
}
