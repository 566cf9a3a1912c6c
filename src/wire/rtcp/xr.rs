//! Extended Reports (RFC 3611): the block walk (§3) and the blocks the
//! proxy reads and writes: RRTR (§4.4), DLRR (§4.5), Statistics Summary
//! (§4.6) and VoIP Metrics (§4.7).

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
    /// Statistics Summary (RFC 3611 §4.6).
    StatsSummary(StatsSummary),
    /// VoIP Metrics (RFC 3611 §4.7).
    VoipMetrics(VoipMetrics),
    /// Any other block type (or one too short for its type), skipped by
    /// its length.
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
        let type_specific = u8_at(self.raw, 1)?;
        let words = usize::from(u16_at(self.raw, 2)?);
        let content = take(&mut self.raw, 4, 4 * words)?;
        Some(match block_type {
            XR_RRTR => XrBlock::Rrtr {
                ntp: NtpTime(u64_at(content, 0)?),
            },
            XR_DLRR => XrBlock::Dlrr(DlrrItems { raw: content }),
            XR_STATS_SUMMARY => {
                StatsSummary::parse(type_specific, content).map_or(XrBlock::Other { block_type }, XrBlock::StatsSummary)
            }
            XR_VOIP_METRICS => VoipMetrics::parse(content).map_or(XrBlock::Other { block_type }, XrBlock::VoipMetrics),
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

/// Statistics Summary block type (RFC 3611 §4.6).
pub const XR_STATS_SUMMARY: u8 = 6;
/// VoIP Metrics block type (RFC 3611 §4.7).
pub const XR_VOIP_METRICS: u8 = 7;
/// "Unavailable" in VoIP Metrics' one-byte fields (RFC 3611 §4.7.4–4.7.5).
pub const VOIP_UNAVAILABLE: u8 = 127;

/// Statistics Summary (RFC 3611 §4.6): loss, duplicates and jitter of one
/// source over `begin_seq .. end_seq` (end exclusive).
///
/// ```text
/// |     BT=6      |L|D|J|ToH|rsvd.|       block length = 9        |
/// |                        SSRC of source                         |
/// |          begin_seq            |             end_seq           |
/// |                        lost_packets                           |
/// |                        dup_packets                            |
/// |                         min_jitter                            |
/// |                         max_jitter                            |
/// |                         mean_jitter                           |
/// |                         dev_jitter                            |
/// | min_ttl_or_hl | max_ttl_or_hl |mean_ttl_or_hl | dev_ttl_or_hl |
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StatsSummary {
    pub ssrc: Ssrc,
    /// Flags: L (lost_packets valid), D (dup_packets), J (jitter fields).
    pub loss: bool,
    pub dup: bool,
    pub jitter: bool,
    /// ToH (2 bits): 0 IPv4 TTL, 1 IPv6 hop limit; the proxy does not read
    /// either and writes 3 ("not reported" as Wireshark reads it), with the
    /// TTL fields 0.
    pub toh: u8,
    pub begin_seq: u16,
    pub end_seq: u16,
    pub lost_packets: u32,
    pub dup_packets: u32,
    /// Jitter, RTP timestamp units (see [`crate::stats::JitterSummary`]
    /// for what the proxy writes).
    pub min_jitter: u32,
    pub max_jitter: u32,
    pub mean_jitter: u32,
    pub dev_jitter: u32,
    /// min, max, mean, dev of TTL / hop limit.
    pub ttl: [u8; 4],
}

/// VoIP Metrics (RFC 3611 §4.7), fields in their wire units: rates and
/// densities ×256, durations and delays in ms, levels in dB(m), R 0–100,
/// MOS ×10; [`VOIP_UNAVAILABLE`] (127) where unknown.
///
/// ```text
/// |     BT=7      |   reserved    |       block length = 8        |
/// |                        SSRC of source                         |
/// |   loss rate   | discard rate  | burst density |  gap density  |
/// |       burst duration          |         gap duration          |
/// |     round trip delay          |       end system delay        |
/// | signal level  |  noise level  |     RERL      |     Gmin      |
/// |   R factor    | ext. R factor |    MOS-LQ     |    MOS-CQ     |
/// |   RX config   |   reserved    |          JB nominal           |
/// |          JB maximum           |          JB abs max           |
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VoipMetrics {
    pub ssrc: Ssrc,
    pub loss_rate: u8,
    pub discard_rate: u8,
    pub burst_density: u8,
    pub gap_density: u8,
    pub burst_duration: u16,
    pub gap_duration: u16,
    pub round_trip_delay: u16,
    pub end_system_delay: u16,
    pub signal_level: u8,
    pub noise_level: u8,
    pub rerl: u8,
    pub gmin: u8,
    pub r_factor: u8,
    pub ext_r_factor: u8,
    pub mos_lq: u8,
    pub mos_cq: u8,
    /// PLC (2 bits) | JBA (2 bits) | JB rate (4 bits).
    pub rx_config: u8,
    pub jb_nominal: u16,
    pub jb_maximum: u16,
    pub jb_abs_max: u16,
}

impl StatsSummary {
    /// `flags` is the block header's type-specific byte, `b` the block
    /// after its header.
    fn parse(flags: u8, b: &[u8]) -> Option<Self> {
        Some(StatsSummary {
            loss: flags & 0x80 != 0,
            dup: flags & 0x40 != 0,
            jitter: flags & 0x20 != 0,
            toh: (flags >> 3) & 0x03,
            ssrc: Ssrc(u32_at(b, 0)?),
            begin_seq: u16_at(b, 4)?,
            end_seq: u16_at(b, 6)?,
            lost_packets: u32_at(b, 8)?,
            dup_packets: u32_at(b, 12)?,
            min_jitter: u32_at(b, 16)?,
            max_jitter: u32_at(b, 20)?,
            mean_jitter: u32_at(b, 24)?,
            dev_jitter: u32_at(b, 28)?,
            ttl: [u8_at(b, 32)?, u8_at(b, 33)?, u8_at(b, 34)?, u8_at(b, 35)?],
        })
    }

    /// Appends the block (12 words: header + 9).
    pub fn write(&self, out: &mut Vec<u8>) {
        let flags =
            u8::from(self.loss) << 7 | u8::from(self.dup) << 6 | u8::from(self.jitter) << 5 | (self.toh & 3) << 3;
        out.extend_from_slice(&[XR_STATS_SUMMARY, flags, 0, 9]);
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(&self.begin_seq.to_be_bytes());
        out.extend_from_slice(&self.end_seq.to_be_bytes());
        for v in [
            self.lost_packets,
            self.dup_packets,
            self.min_jitter,
            self.max_jitter,
            self.mean_jitter,
            self.dev_jitter,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.ttl);
    }
}

impl VoipMetrics {
    /// `b` is the block after its header.
    fn parse(b: &[u8]) -> Option<Self> {
        Some(VoipMetrics {
            ssrc: Ssrc(u32_at(b, 0)?),
            loss_rate: u8_at(b, 4)?,
            discard_rate: u8_at(b, 5)?,
            burst_density: u8_at(b, 6)?,
            gap_density: u8_at(b, 7)?,
            burst_duration: u16_at(b, 8)?,
            gap_duration: u16_at(b, 10)?,
            round_trip_delay: u16_at(b, 12)?,
            end_system_delay: u16_at(b, 14)?,
            signal_level: u8_at(b, 16)?,
            noise_level: u8_at(b, 17)?,
            rerl: u8_at(b, 18)?,
            gmin: u8_at(b, 19)?,
            r_factor: u8_at(b, 20)?,
            ext_r_factor: u8_at(b, 21)?,
            mos_lq: u8_at(b, 22)?,
            mos_cq: u8_at(b, 23)?,
            rx_config: u8_at(b, 24)?,
            jb_nominal: u16_at(b, 26)?,
            jb_maximum: u16_at(b, 28)?,
            jb_abs_max: u16_at(b, 30)?,
        })
    }

    /// Appends the block (9 words: header + 8).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[XR_VOIP_METRICS, 0, 0, 8]);
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(&[self.loss_rate, self.discard_rate, self.burst_density, self.gap_density]);
        for v in [
            self.burst_duration,
            self.gap_duration,
            self.round_trip_delay,
            self.end_system_delay,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&[self.signal_level, self.noise_level, self.rerl, self.gmin]);
        out.extend_from_slice(&[self.r_factor, self.ext_r_factor, self.mos_lq, self.mos_cq]);
        out.extend_from_slice(&[self.rx_config, 0]);
        for v in [self.jb_nominal, self.jb_maximum, self.jb_abs_max] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// Appends an XR packet from `sender` carrying `blocks` (already written
/// report blocks, e.g. by [`StatsSummary::write`] and
/// [`VoipMetrics::write`]).
pub fn write_xr_blocks(out: &mut Vec<u8>, sender: Ssrc, blocks: &[u8]) {
    let at = start_packet(out, 0, PT_XR);
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(blocks);
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

    #[test]
    fn statistics_summary_and_voip_metrics_round_trip() {
        let ss = StatsSummary {
            ssrc: Ssrc(0x0c0c_0c0c),
            loss: true,
            dup: true,
            jitter: true,
            toh: 3,
            begin_seq: 65_000,
            end_seq: 1_234,
            lost_packets: 90,
            dup_packets: 2,
            min_jitter: 0,
            max_jitter: 320,
            mean_jitter: 40,
            dev_jitter: 12,
            ttl: [0; 4],
        };
        let vm = VoipMetrics {
            ssrc: Ssrc(0x0c0c_0c0c),
            loss_rate: 8,
            discard_rate: 0,
            burst_density: 255,
            gap_density: 0,
            burst_duration: 120,
            gap_duration: 3_900,
            round_trip_delay: 48,
            end_system_delay: 0,
            signal_level: VOIP_UNAVAILABLE,
            noise_level: VOIP_UNAVAILABLE,
            rerl: VOIP_UNAVAILABLE,
            gmin: 16,
            r_factor: 82,
            ext_r_factor: VOIP_UNAVAILABLE,
            mos_lq: 41,
            mos_cq: 40,
            rx_config: 0,
            jb_nominal: 8,
            jb_maximum: 8,
            jb_abs_max: 8,
        };
        let mut blocks = Vec::new();
        ss.write(&mut blocks);
        vm.write(&mut blocks);
        assert_eq!(blocks.len(), 4 * (10 + 9), "BT=6 is 10 words, BT=7 9");
        let mut out = Vec::new();
        write_xr_blocks(&mut out, Ssrc(9), &blocks);
        assert_eq!(out[3], 1 + 19, "length in words minus one");
        let Some(Ok(RtcpPacket::Xr(xr))) = walk(&out).next() else {
            panic!("not XR")
        };
        let parsed: Vec<_> = xr.blocks().collect();
        assert!(matches!(parsed[0], XrBlock::StatsSummary(p) if p == ss), "{parsed:?}");
        assert!(matches!(parsed[1], XrBlock::VoipMetrics(p) if p == vm), "{parsed:?}");
        // A VoIP Metrics block cut short is skipped, not misread.
        let mut short = Vec::new();
        write_xr_blocks(&mut short, Ssrc(9), &[XR_VOIP_METRICS, 0, 0, 1, 0, 0, 0, 1]);
        let Some(Ok(RtcpPacket::Xr(xr))) = walk(&short).next() else {
            panic!("not XR")
        };
        assert!(matches!(xr.blocks().next(), Some(XrBlock::Other { block_type: 7 })));
    }
}
