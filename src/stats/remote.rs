//! The send-side view of a stream: what its receiver says about it in
//! report blocks (RR *and* SR blocks, every block: pion/interceptor #412 and
//! Janus PR #2089 read fewer), and what its sender says in SRs.

use super::rtt::RttStats;
use crate::time::MonoTime;
use crate::wire::rtcp::{ReportBlock, SenderInfo};
use crate::wire::Ssrc;

/// Latest report block about one SSRC from one reporter side, plus the RTT
/// matched from those blocks. Kept separate from the proxy's own loss
/// measurement (rtpengine PR #2114 conflated the two).
#[derive(Clone, Debug)]
pub struct RemoteReport {
    /// Who sent the block (the receiver's SSRC).
    pub(crate) reporter: Ssrc,
    pub(crate) block: ReportBlock,
    pub(crate) received_at: MonoTime,
    pub(crate) reports: u64,
    pub(crate) rtt: RttStats,
}

impl RemoteReport {
    pub(crate) fn new(reporter: Ssrc, block: ReportBlock, now: MonoTime) -> Self {
        RemoteReport {
            reporter,
            block,
            received_at: now,
            reports: 1,
            rtt: RttStats::default(),
        }
    }

    pub(crate) fn update(&mut self, reporter: Ssrc, block: ReportBlock, now: MonoTime) {
        self.reporter = reporter;
        self.block = block;
        self.received_at = now;
        self.reports += 1;
    }

    /// Who sent the latest block (the receiver's SSRC).
    pub fn reporter(&self) -> Ssrc {
        self.reporter
    }

    /// The latest report block.
    pub fn block(&self) -> &ReportBlock {
        &self.block
    }

    pub fn received_at(&self) -> MonoTime {
        self.received_at
    }

    /// Blocks received about this SSRC.
    pub fn reports(&self) -> u64 {
        self.reports
    }

    /// RTT matched from these blocks' LSR/DLSR.
    pub fn rtt(&self) -> &RttStats {
        &self.rtt
    }

    /// Fraction lost as 0..=1 (W3C `fractionLost`).
    pub fn fraction_lost(&self) -> f64 {
        f64::from(self.block.fraction_lost) / 256.0
    }
}

/// Latest SR from one sender SSRC.
#[derive(Clone, Copy, Debug)]
pub struct SenderRecord {
    pub(crate) info: SenderInfo,
    pub(crate) received_at: MonoTime,
    pub(crate) reports: u64,
}

impl SenderRecord {
    /// The SR's sender info (NTP and RTP timestamps, packet and octet counts).
    pub fn info(&self) -> &SenderInfo {
        &self.info
    }

    pub fn received_at(&self) -> MonoTime {
        self.received_at
    }

    /// SRs received from this sender.
    pub fn reports(&self) -> u64 {
        self.reports
    }
}
