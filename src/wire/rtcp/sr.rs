//! Sender Report (RFC 3550 §6.4.1).

use super::rr::{report_blocks, write_report, ReportBlock, ReportBlocks};
use super::{Header, RtcpError, PT_SR};
use crate::wire::bytes::{u32_at, u64_at};
use crate::wire::ntp::NtpTime;
use crate::wire::types::Ssrc;

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SenderInfo {
    pub ntp: NtpTime,
    pub rtp_ts: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// Sender Report (RFC 3550 §6.4.1).
///
/// ```text
/// |V=2|P|    RC   |   PT=SR=200   |             length            |
/// |                         SSRC of sender                        |
/// |              NTP timestamp, most significant word             |
/// |             NTP timestamp, least significant word             |
/// |                         RTP timestamp                         |
/// |                     sender's packet count                     |
/// |                      sender's octet count                     |
/// |                 report block 1 … RC (24 bytes each)           |
/// |                  profile-specific extensions                  |
/// ```
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
    pub(super) fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
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
            extension: body.get(24 + blocks.byte_len()..).unwrap_or(&[]),
        })
    }

    /// Every report block, not only the first (Janus PR #2089 read one).
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        self.blocks
    }
}

/// Appends a Sender Report with up to 31 blocks (further blocks are left
/// out: the count is a 5-bit field).
pub fn write_sender_report(out: &mut Vec<u8>, sender: Ssrc, info: &SenderInfo, blocks: &[ReportBlock]) {
    let sender_info = |out: &mut Vec<u8>| {
        out.extend_from_slice(&info.ntp.0.to_be_bytes());
        out.extend_from_slice(&info.rtp_ts.to_be_bytes());
        out.extend_from_slice(&info.packet_count.to_be_bytes());
        out.extend_from_slice(&info.octet_count.to_be_bytes());
    };
    write_report(out, PT_SR, sender, sender_info, blocks);
}

#[cfg(test)]
mod tests {
    use super::super::{walk, RtcpPacket};
    use super::*;

    #[test]
    fn round_trip_without_blocks() {
        let info = SenderInfo {
            ntp: NtpTime(0xe84b_1f80_8000_0000),
            rtp_ts: 123_456,
            packet_count: 1_000,
            octet_count: 160_000,
        };
        let mut out = Vec::new();
        write_sender_report(&mut out, Ssrc(9), &info, &[]);
        assert_eq!(&out[..4], &[0x80, PT_SR, 0, 6]);
        let Some(Ok(RtcpPacket::SenderReport(sr))) = walk(&out).next() else {
            panic!("not an SR")
        };
        assert_eq!((sr.sender, sr.info), (Ssrc(9), info));
        assert_eq!(sr.report_blocks().len(), 0);
        assert!(sr.extension.is_empty());
    }

    #[test]
    fn short_sender_info_is_an_error() {
        let mut out = Vec::new();
        write_sender_report(&mut out, Ssrc(9), &SenderInfo::default(), &[]);
        // Declare one word less: the octet count is missing.
        out[3] = 5;
        assert_eq!(walk(&out[..24]).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    }
}
