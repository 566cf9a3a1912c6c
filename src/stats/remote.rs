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
    /// The sender's own count against the proxy's (see [`SenderWindow`]).
    pub(crate) window: Option<SenderWindow>,
}

/// What the stream looked like at the proxy when an SR arrived: packets
/// that arrived on its SSRC (duplicates included, as the sender counts
/// every packet it sends) and its cumulative sequence-gap loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrivals {
    pub packets: u64,
    pub gaps: i64,
}

/// The sender's packet count (RFC 3550 §6.4.1: every RTP data packet it
/// transmitted on the SSRC) against the proxy's arrivals, from the first
/// SR that found the stream flowing to the latest one.
///
/// Why: a forwarder (an SFU, Janus's EchoTest) sends on the sequence
/// numbers of a stream it received, gaps included, so the proxy's
/// sequence-gap count charges the leg it measures with loss that happened
/// before the forwarder. The sender's own count tells them apart:
/// `sent − arrived` is what the leg lost; gaps beyond that are sequence
/// numbers the sender never sent. Both counts are taken at the SR, whose
/// packets precede it on the path, so the difference is exact up to the
/// packets reordered around the SR (a few at most; clamped at zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderWindow {
    /// At the window's first SR: the sender's packet count and the arrivals.
    base_count: u32,
    base: Arrivals,
    /// Since then: packets sent (by the sender's count), arrived, and
    /// sequence gaps counted.
    pub sent: u64,
    pub arrived: u64,
    pub gaps: i64,
}

impl SenderWindow {
    fn start(count: u32, at: Arrivals) -> Self {
        SenderWindow {
            base_count: count,
            base: at,
            sent: 0,
            arrived: 0,
            gaps: 0,
        }
    }

    /// The window after an SR with packet count `count` found `at`. A count
    /// below the previous SR's (the sender restarted it; the 32-bit wrap is
    /// forward) or arrivals below the base start a new window.
    fn advance(self, count: u32, at: Arrivals) -> Self {
        let sent = count.wrapping_sub(self.base_count);
        if sent > i32::MAX as u32 || u64::from(sent) < self.sent || at.packets < self.base.packets {
            return SenderWindow::start(count, at);
        }
        SenderWindow {
            sent: u64::from(sent),
            arrived: at.packets - self.base.packets,
            gaps: at.gaps - self.base.gaps,
            ..self
        }
    }

    /// Packets the sender sent in the window that never arrived: the leg's
    /// own loss.
    pub fn lost_on_leg(&self) -> u64 {
        self.sent.saturating_sub(self.arrived)
    }

    /// Sequence gaps in the window that the leg did not cause: numbers the
    /// sender skipped (it forwards a stream that lost them earlier).
    pub fn not_sent(&self) -> u64 {
        u64::try_from(self.gaps).unwrap_or(0).saturating_sub(self.lost_on_leg())
    }
}

impl SenderRecord {
    /// The record after an SR (`info`) from this sender, given the
    /// previous one and the stream's arrivals now (`None` before any of
    /// its RTP arrived: no window yet).
    pub(crate) fn next(prev: Option<SenderRecord>, info: SenderInfo, now: MonoTime, at: Option<Arrivals>) -> Self {
        let window = at.map(|at| match prev.and_then(|p| p.window) {
            Some(w) => w.advance(info.packet_count, at),
            None => SenderWindow::start(info.packet_count, at),
        });
        SenderRecord {
            info,
            received_at: now,
            reports: prev.map_or(0, |p| p.reports) + 1,
            window,
        }
    }

    /// The sender's count against the proxy's arrivals, once an SR found
    /// the stream flowing.
    pub fn window(&self) -> Option<&SenderWindow> {
        self.window.as_ref()
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ntp::NtpTime;

    fn sr(count: u32) -> SenderInfo {
        SenderInfo {
            ntp: NtpTime(0),
            rtp_ts: 0,
            packet_count: count,
            octet_count: 0,
        }
    }

    fn at(packets: u64, gaps: i64) -> Option<Arrivals> {
        Some(Arrivals { packets, gaps })
    }

    #[test]
    fn a_forwarders_gaps_are_not_the_legs_loss() {
        // First SR: 100 sent, 100 arrived. Then 200 more sent, 195 arrived
        // (5 lost on the leg) with 12 sequence gaps: 7 were never sent.
        let r = SenderRecord::next(None, sr(100), MonoTime::ZERO, at(100, 0));
        let r = SenderRecord::next(Some(r), sr(300), MonoTime::ZERO, at(295, 12));
        let w = r.window().unwrap();
        assert_eq!((w.sent, w.arrived, w.gaps), (200, 195, 12));
        assert_eq!((w.lost_on_leg(), w.not_sent()), (5, 7));
        assert_eq!(r.reports(), 2);
    }

    #[test]
    fn the_window_survives_the_count_wrapping_and_restarts_when_it_goes_back() {
        let r = SenderRecord::next(None, sr(u32::MAX - 9), MonoTime::ZERO, at(10, 0));
        let r = SenderRecord::next(Some(r), sr(40), MonoTime::ZERO, at(60, 0));
        assert_eq!(r.window().unwrap().sent, 50);
        assert_eq!(r.window().unwrap().lost_on_leg(), 0);
        // The sender restarted its count: a new window from here.
        let r = SenderRecord::next(Some(r), sr(3), MonoTime::ZERO, at(63, 2));
        let w = r.window().unwrap();
        assert_eq!((w.sent, w.arrived, w.gaps, w.not_sent()), (0, 0, 0, 0));
        // No RTP yet: no window.
        let r = SenderRecord::next(None, sr(5), MonoTime::ZERO, None);
        assert!(r.window().is_none());
    }
}
