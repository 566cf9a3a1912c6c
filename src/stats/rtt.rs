//! Round-trip time at a middlebox, without shared clocks.
//!
//! The proxy remembers when it forwarded each SR (keyed by the SR's compact
//! NTP time, which the receiver echoes as LSR). When a report block with that
//! LSR comes back, the receiver held it for DLSR, so the leg's round trip is
//!
//! ```text
//!   RTT(proxy↔receiver) = arrival − forwarded_at − DLSR        (RFC 3550 §6.4.1)
//! ```
//!
//! Example: SR forwarded at t=10.000 s, RR arrives at t=10.530 s with
//! DLSR = 0x8000 (0.5 s): RTT = 0.530 − 0.5 = 30 ms.
//!
//! The same holds for XR RRTR → DLRR (RFC 3611 §4.5) and, with DLSR = 0,
//! for a STUN binding request and its response.

use crate::time::MonoTime;
use crate::wire::ntp::{CompactNtp, Delay16};
use serde::Serialize;
use std::time::Duration;

/// How many forwarded SRs (or RRTRs) per SSRC stay matchable. Senders emit
/// one every 0.5–5 s and receivers answer the latest, so eight covers reports
/// that cross in flight and a receiver that answers late.
pub(crate) const SENT_LOG_LEN: usize = 8;

/// Older forwarded reports are never matched: compact NTP wraps after ~18 h,
/// and a report answering one this old is stale or forged.
pub const MAX_REPORT_AGE: Duration = Duration::from_secs(60);

/// An entry evicted younger than this means reports come faster than the log
/// covers: a report flood, or a sender whose AVPF early-feedback compounds
/// each carry an SR (RFC 4585 §3.5). Counted as the log's cap being hit.
pub const SENT_LOG_FLOOD_AGE: Duration = Duration::from_secs(1);

/// Rounding slack: DLSR has a resolution of 1/65 536 s (~15.3 µs), and
/// both arrival and DLSR are rounded, so a true RTT near zero may compute
/// as slightly negative. Within this slack it is clamped to zero.
const ROUNDING_SLACK: Duration = Duration::from_micros(31);

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RttMethod {
    /// SR → report block LSR/DLSR.
    SrRr,
    /// XR RRTR → DLRR.
    XrDlrr,
    /// STUN binding request → success response.
    Stun,
}

/// Why a report block gave no RTT sample.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RttReject {
    /// LSR = 0: the receiver has had no SR yet (RFC 3550 §6.4.1).
    NoLsr,
    /// DLSR = 0: W3C webrtc-stats gives no RTT for such a report.
    ZeroDelay,
    /// No forwarded report with that LSR (never forwarded, or overwritten).
    UnknownLsr,
    /// The matched report was forwarded too long ago.
    Stale,
    /// DLSR larger than the time since forwarding (bogus or forged).
    Negative,
}

impl RttReject {
    pub fn reason(self) -> &'static str {
        match self {
            RttReject::NoLsr => "lsr_zero",
            RttReject::ZeroDelay => "dlsr_zero",
            RttReject::UnknownLsr => "lsr_unknown",
            RttReject::Stale => "lsr_stale",
            RttReject::Negative => "rtt_negative",
        }
    }
}

/// A small ring of (compact NTP, forward time) for one SSRC's reports.
#[derive(Clone, Debug, Default)]
pub struct SentLog {
    entries: [(CompactNtp, MonoTime); SENT_LOG_LEN],
    next: usize,
    len: usize,
}

impl SentLog {
    /// Records a forwarded report; returns true when that evicted an entry
    /// younger than [`SENT_LOG_FLOOD_AGE`] (the log's cap was hit).
    pub fn record(&mut self, ntp: CompactNtp, forwarded_at: MonoTime) -> bool {
        let evicted_young = self.len == SENT_LOG_LEN
            && forwarded_at
                .checked_since(self.entries[self.next].1)
                .is_some_and(|age| age < SENT_LOG_FLOOD_AGE);
        self.entries[self.next] = (ntp, forwarded_at);
        self.next = (self.next + 1) % SENT_LOG_LEN;
        self.len = (self.len + 1).min(SENT_LOG_LEN);
        evicted_young
    }

    fn lookup(&self, ntp: CompactNtp) -> Option<MonoTime> {
        // Newest first: if compact NTP repeats (after ~18 h), the newest wins.
        (1..=self.len)
            .map(|k| self.entries[(self.next + SENT_LOG_LEN - k) % SENT_LOG_LEN])
            .find(|(n, _)| *n == ntp)
            .map(|(_, at)| at)
    }

    /// Matches a returning (LSR, DLSR) against this log.
    pub fn match_report(&self, lsr: CompactNtp, dlsr: Delay16, arrival: MonoTime) -> Result<Duration, RttReject> {
        if lsr.0 == 0 {
            return Err(RttReject::NoLsr);
        }
        if dlsr.0 == 0 {
            return Err(RttReject::ZeroDelay);
        }
        let forwarded_at = self.lookup(lsr).ok_or(RttReject::UnknownLsr)?;
        let held = arrival.checked_since(forwarded_at).ok_or(RttReject::Negative)?;
        if held > MAX_REPORT_AGE {
            return Err(RttReject::Stale);
        }
        rtt_from(held, dlsr.to_duration())
    }
}

/// `held − delay`, clamped to zero within the rounding slack, else rejected.
pub fn rtt_from(held: Duration, delay: Duration) -> Result<Duration, RttReject> {
    match held.checked_sub(delay) {
        Some(rtt) => Ok(rtt),
        None if delay - held <= ROUNDING_SLACK => Ok(Duration::ZERO),
        None => Err(RttReject::Negative),
    }
}

/// Running RTT figures for one leg or one stream (W3C `roundTripTime`,
/// `totalRoundTripTime`, `roundTripTimeMeasurements`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RttStats {
    pub(crate) last: Option<Duration>,
    pub(crate) min: Option<Duration>,
    pub(crate) max: Option<Duration>,
    pub(crate) total: Duration,
    /// Valid samples only (rejected reports never count). 32 bits, so
    /// that with `last_method` it fills one word (three of these per leg
    /// and side sit in every session).
    pub(crate) measurements: u32,
    pub(crate) last_method: Option<RttMethod>,
}

impl RttStats {
    pub(crate) fn add(&mut self, rtt: Duration, method: RttMethod) {
        self.last = Some(rtt);
        self.min = Some(self.min.map_or(rtt, |m| m.min(rtt)));
        self.max = Some(self.max.map_or(rtt, |m| m.max(rtt)));
        self.total += rtt;
        self.measurements = self.measurements.saturating_add(1);
        self.last_method = Some(method);
    }

    /// Latest valid sample (W3C `roundTripTime`).
    pub fn last(&self) -> Option<Duration> {
        self.last
    }

    pub fn min(&self) -> Option<Duration> {
        self.min
    }

    pub fn max(&self) -> Option<Duration> {
        self.max
    }

    /// Sum of the valid samples (W3C `totalRoundTripTime`).
    pub fn total(&self) -> Duration {
        self.total
    }

    /// Valid samples (W3C `roundTripTimeMeasurements`).
    pub fn measurements(&self) -> u64 {
        u64::from(self.measurements)
    }

    /// How the latest sample was taken.
    pub fn last_method(&self) -> Option<RttMethod> {
        self.last_method
    }

    pub fn mean(&self) -> Option<Duration> {
        let n = Some(self.measurements).filter(|&n| n > 0)?;
        Some(self.total / n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example() {
        let mut log = SentLog::default();
        assert!(!log.record(CompactNtp(0x1234_0000), MonoTime::from_millis(10_000)));
        let rtt = log
            .match_report(CompactNtp(0x1234_0000), Delay16(0x8000), MonoTime::from_millis(10_530))
            .unwrap();
        assert_eq!(rtt, Duration::from_millis(30));
    }

    #[test]
    fn rejections() {
        let mut log = SentLog::default();
        let at = MonoTime::from_millis(1_000);
        assert!(!log.record(CompactNtp(7), at));
        let later = MonoTime::from_millis(1_100);
        let much_later = at + MAX_REPORT_AGE + Duration::from_secs(1);
        for (lsr, dlsr, now, reject) in [
            (0, 1, later, RttReject::NoLsr),
            (7, 0, later, RttReject::ZeroDelay),
            (8, 1, later, RttReject::UnknownLsr),
            // DLSR of 1 s but only 100 ms passed: negative.
            (7, 65_536, later, RttReject::Negative),
            (7, 1, much_later, RttReject::Stale),
            // Arrival before forwarding (time stepped back in a capture).
            (7, 1, MonoTime::from_millis(999), RttReject::Negative),
        ] {
            assert_eq!(
                log.match_report(CompactNtp(lsr), Delay16(dlsr), now),
                Err(reject),
                "LSR {lsr}, DLSR {dlsr}"
            );
        }
    }

    #[test]
    fn ring_keeps_newest() {
        let mut log = SentLog::default();
        for i in 0..20u32 {
            // One a second: evictions are of 8-second-old entries, no flood.
            assert!(!log.record(CompactNtp(100 + i), MonoTime::from_millis(u64::from(i) * 1000)));
        }
        let at = MonoTime::from_millis(30_000);
        assert_eq!(
            log.match_report(CompactNtp(100), Delay16(1), at),
            Err(RttReject::UnknownLsr)
        );
        assert!(log.match_report(CompactNtp(119), Delay16(1), at).is_ok());
        assert!(log.match_report(CompactNtp(112), Delay16(1), at).is_ok());
    }

    #[test]
    fn a_report_flood_evicting_young_entries_is_reported() {
        let mut log = SentLog::default();
        let hits = (0..20u32)
            .filter(|i| log.record(CompactNtp(*i + 1), MonoTime::from_millis(u64::from(*i) * 10)))
            .count();
        assert_eq!(hits, 12, "every record past the eighth evicts a 80 ms old entry");
    }

    #[test]
    fn rounding_slack_clamps_to_zero() {
        assert_eq!(
            rtt_from(Duration::from_micros(100), Duration::from_micros(120)),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            rtt_from(Duration::from_micros(100), Duration::from_micros(200)),
            Err(RttReject::Negative)
        );
    }
}
