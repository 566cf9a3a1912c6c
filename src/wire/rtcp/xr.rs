//! Extended Reports (RFC 3611): the block walk (§3) and the two blocks the
//! proxy reads and writes, RRTR (§4.4) and DLRR (§4.5).

use super::{finish_packet, start_packet, Header, RtcpError, PT_XR};
use crate::wire::bytes::{take, u16_at, u32_at, u64_at, u8_at};
use crate::wire::ntp::{CompactNtp, Delay16, NtpTime};
use crate::wire::types::Ssrc;

/// Receiver Reference Time block type (RFC 3611 §4.4).
pub const XR_RRTR: u8 = 4;
/// DLRR block type (RFC 3611 §4.5).
pub const XR_DLRR: u8 = 5;

/// Extended Reports (RFC 3611 §2).
///
/// ```text
/// |V=2|P|reserved |   PT=XR=207   |             length            |
/// |                              SSRC                             |
/// :                         report blocks                         :
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Xr<'a> {
    pub header: Header,
    pub sender: Ssrc,
    blocks: &'a [u8],
}

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
        let item = take(&mut self.raw, 0, 12)?;
        Some(DlrrItem {
            ssrc: Ssrc(u32_at(item, 0)?),
            lrr: CompactNtp(u32_at(item, 4)?),
            dlrr: Delay16(u32_at(item, 8)?),
        })
    }
}

impl<'a> Xr<'a> {
    pub(super) fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
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
        let content = take(&mut self.raw, 4, 4 * words)?;
        Some(match block_type {
            XR_RRTR => XrBlock::Rrtr {
                ntp: NtpTime(u64_at(content, 0)?),
            },
            XR_DLRR => XrBlock::Dlrr(DlrrItems { raw: content }),
            other => XrBlock::Other { block_type: other },
        })
    }
}

/// Appends an XR packet with an optional RRTR block and an optional DLRR
/// block.
///
/// ```text
/// RRTR (RFC 3611 §4.4):
/// |     BT=4      |   reserved    |       block length = 2        |
/// |              NTP timestamp, most significant word             |
/// |             NTP timestamp, least significant word             |
/// DLRR (RFC 3611 §4.5):
/// |     BT=5      |   reserved    |         block length          |
/// |                 SSRC_1 (SSRC of first receiver)               | sub-
/// |                         last RR (LRR)                         | block
/// |                   delay since last RR (DLRR)                  | 1
/// :                               …                               :
/// ```
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

#[cfg(test)]
mod tests {
    use super::super::{walk, RtcpPacket};
    use super::*;

    #[test]
    fn rrtr_and_dlrr_round_trip() {
        let items = [
            DlrrItem {
                ssrc: Ssrc(1),
                lrr: CompactNtp(0x1234_5678),
                dlrr: Delay16(0x8000),
            },
            DlrrItem {
                ssrc: Ssrc(2),
                lrr: CompactNtp(0),
                dlrr: Delay16(0),
            },
        ];
        let ntp = NtpTime(0xe84b_1f80_8000_0000);
        let mut out = Vec::new();
        write_xr(&mut out, Ssrc(9), Some(ntp), &items);
        assert_eq!(out.len(), 8 + 12 + 4 + 24);
        let Some(Ok(RtcpPacket::Xr(xr))) = walk(&out).next() else {
            panic!("not XR")
        };
        assert_eq!(xr.sender, Ssrc(9));
        let blocks: Vec<_> = xr.blocks().collect();
        assert_eq!(blocks.len(), 2);
        assert!(matches!(blocks[0], XrBlock::Rrtr { ntp: n } if n == ntp));
        let XrBlock::Dlrr(d) = blocks[1] else {
            panic!("not DLRR")
        };
        assert_eq!(d.collect::<Vec<_>>(), items);
    }

    #[test]
    fn empty_xr_and_overrunning_block() {
        let mut out = Vec::new();
        write_xr(&mut out, Ssrc(9), None, &[]);
        assert_eq!(out, [0x80, PT_XR, 0, 1, 0, 0, 0, 9]);
        // A block declaring more words than the packet holds ends the walk.
        let mut p = out.clone();
        p.extend_from_slice(&[XR_RRTR, 0, 0, 9, 0, 0, 0, 0]);
        p[3] = 3;
        let Some(Ok(RtcpPacket::Xr(xr))) = walk(&p).next() else {
            panic!("not XR")
        };
        assert_eq!(xr.blocks().count(), 0);
    }
}
