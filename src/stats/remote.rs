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
    pub reporter: Ssrc,
    pub block: ReportBlock,
    pub received_at: MonoTime,
    pub reports: u64,
    pub rtt: RttStats,
}

impl RemoteReport {
    pub fn new(reporter: Ssrc, block: ReportBlock, now: MonoTime) -> Self {
        RemoteReport {
            reporter,
            block,
            received_at: now,
            reports: 1,
            rtt: RttStats::default(),
        }
    }

    pub fn update(&mut self, reporter: Ssrc, block: ReportBlock, now: MonoTime) {
        self.reporter = reporter;
        self.block = block;
        self.received_at = now;
        self.reports += 1;
    }

    /// Fraction lost as 0..=1 (W3C `fractionLost`).
    pub fn fraction_lost(&self) -> f64 {
        f64::from(self.block.fraction_lost) / 256.0
    }
}

/// Latest SR from one sender SSRC.
#[derive(Clone, Copy, Debug)]
pub struct SenderRecord {
    pub info: SenderInfo,
    pub received_at: MonoTime,
    pub reports: u64,
}
