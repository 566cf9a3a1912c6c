//! Receiver Report (RFC 3550 §6.4.2) and the reception report block that
//! SR and RR share (RFC 3550 §6.4.1).

use super::{finish_packet, start_packet, Header, RtcpError, PT_RR};
use crate::wire::bytes::{take, u32_at};
use crate::wire::ntp::{CompactNtp, Delay16};
use crate::wire::types::Ssrc;

/// Size of one report block (RFC 3550 §6.4.1).
pub const REPORT_BLOCK_LEN: usize = 24;
/// Report count is a 5-bit field: at most 31 blocks per SR/RR.
pub const MAX_REPORT_BLOCKS: usize = 31;

/// Largest and smallest values of the signed 24-bit cumulative loss field.
pub const CUMULATIVE_LOST_MAX: i32 = 0x7f_ffff;
pub const CUMULATIVE_LOST_MIN: i32 = -0x80_0000;

/// One reception report block (RFC 3550 §6.4.1).
///
/// ```text
/// |                 SSRC_n (SSRC of the source)                   |
/// | fraction lost |   cumulative number of packets lost (signed)  |
/// |           extended highest sequence number received           |
/// |                      interarrival jitter                      |
/// |                         last SR (LSR)                         |
/// |                   delay since last SR (DLSR)                  |
/// ```
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

    /// Appends the 24-byte block; the loss is clamped to 24 bits.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
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

impl ReportBlocks<'_> {
    /// Bytes the blocks occupy (count × 24).
    pub(super) fn byte_len(&self) -> usize {
        self.raw.len()
    }
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        ReportBlock::parse(take(&mut self.raw, 0, REPORT_BLOCK_LEN)?)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.raw.len() / REPORT_BLOCK_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for ReportBlocks<'_> {}

/// The `count` blocks starting at `at` in `body`; too few bytes for the
/// count is an error (the count is checked, never trusted).
pub(super) fn report_blocks(body: &[u8], at: usize, count: u8) -> Result<ReportBlocks<'_>, RtcpError> {
    let len = usize::from(count) * REPORT_BLOCK_LEN;
    let raw = body.get(at..at + len).ok_or(RtcpError::BodyTooShort)?;
    Ok(ReportBlocks { raw })
}

/// Receiver Report (RFC 3550 §6.4.2).
///
/// ```text
/// |V=2|P|    RC   |   PT=RR=201   |             length            |
/// |                     SSRC of packet sender                     |
/// |                 report block 1 … RC (24 bytes each)           |
/// |                  profile-specific extensions                  |
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ReceiverReport<'a> {
    pub header: Header,
    pub sender: Ssrc,
    blocks: ReportBlocks<'a>,
    pub extension: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    pub(super) fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
        let sender = Ssrc(u32_at(body, 0).ok_or(RtcpError::BodyTooShort)?);
        let blocks = report_blocks(body, 4, header.count)?;
        Ok(ReceiverReport {
            header,
            sender,
            blocks,
            extension: body.get(4 + blocks.byte_len()..).unwrap_or(&[]),
        })
    }

    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        self.blocks
    }
}

/// Appends a Receiver Report. At most 31 blocks fit one RR (5-bit count);
/// callers split longer lists over several RRs in one compound.
pub fn write_receiver_report(out: &mut Vec<u8>, sender: Ssrc, blocks: &[ReportBlock]) {
    write_report(out, PT_RR, sender, |_| {}, blocks);
}

/// Appends an SR or RR (packet type `pt`): the sender's SSRC, what
/// `sender_fields` writes after it (an SR's sender info), then at most 31
/// blocks (further blocks are left out: the count is a 5-bit field).
pub(super) fn write_report(
    out: &mut Vec<u8>,
    pt: u8,
    sender: Ssrc,
    sender_fields: impl FnOnce(&mut Vec<u8>),
    blocks: &[ReportBlock],
) {
    let blocks = &blocks[..blocks.len().min(MAX_REPORT_BLOCKS)];
    let at = start_packet(out, blocks.len() as u8, pt);
    out.extend_from_slice(&sender.0.to_be_bytes());
    sender_fields(out);
    for b in blocks {
        b.write(out);
    }
    finish_packet(out, at);
}

#[cfg(test)]
mod tests {
    use super::super::{walk, RtcpPacket};
    use super::*;

    #[test]
    fn loss_field_sign_and_clamp() {
        assert_eq!(sign_extend_24(0xff_ffff), -1);
        assert_eq!(sign_extend_24(0x80_0000), CUMULATIVE_LOST_MIN);
        assert_eq!(clamp_lost_24(-1), 0xff_ffff);
        assert_eq!(clamp_lost_24(10_000_000), 0x7f_ffff);
        assert_eq!(clamp_lost_24(-10_000_000), 0x80_0000);
    }

    #[test]
    fn round_trip_and_block_cap() {
        let blocks: Vec<ReportBlock> = (0..40)
            .map(|i| ReportBlock {
                ssrc: Ssrc(i),
                fraction_lost: i as u8,
                cumulative_lost: -(i as i32),
                ext_highest_seq: 0x1_0000 + i,
                jitter: 3 * i,
                lsr: CompactNtp(i << 8),
                dlsr: Delay16(i << 4),
            })
            .collect();
        let mut out = Vec::new();
        write_receiver_report(&mut out, Ssrc(0xabc), &blocks);
        assert_eq!(out.len(), 8 + MAX_REPORT_BLOCKS * REPORT_BLOCK_LEN);
        let Some(Ok(RtcpPacket::ReceiverReport(rr))) = walk(&out).next() else {
            panic!("not an RR")
        };
        assert_eq!(rr.sender, Ssrc(0xabc));
        assert!(rr.extension.is_empty());
        assert_eq!(rr.report_blocks().collect::<Vec<_>>(), blocks[..MAX_REPORT_BLOCKS]);
    }

    #[test]
    fn count_beyond_the_body_is_an_error() {
        // RC = 1 but no block follows the sender SSRC.
        let p = [0x81, PT_RR, 0, 1, 0, 0, 0, 1];
        assert_eq!(walk(&p).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
        // An empty RR without even the sender SSRC.
        assert_eq!(
            walk(&[0x80, PT_RR, 0, 0]).next().unwrap().unwrap_err(),
            RtcpError::BodyTooShort
        );
    }
}
