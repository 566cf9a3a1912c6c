//! Receive-side statistics of one RTP stream: RFC 3550 A.1 (sequence
//! extension and validation), A.3 (expected, lost, fraction lost) and A.8
//! (interarrival jitter).

use crate::time::MonoTime;
use crate::wire::rtcp::clamp_lost_24;
use crate::wire::rtp::RtpView;
use crate::wire::{ExtSeqNo, RtpTs, SeqNo};

/// RFC 3550 A.1 constants.
pub const MAX_DROPOUT: u16 = 3000;
pub const MAX_MISORDER: u16 = 100;
pub(crate) const MIN_SEQUENTIAL: u8 = 2;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// A timestamp step this large (2^30 ticks: 3.3 h at 90 kHz) is a sender
/// discontinuity, not network jitter: the A.8 estimate skips it and takes
/// the packet as its new reference instead of adding ~2^30/16 to J.
const TS_DISCONTINUITY: u32 = 1 << 30;

/// What A.1 made of one packet's sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SeqOutcome {
    /// Next in order, or ahead within MAX_DROPOUT (a gap: loss).
    InOrder,
    /// Behind the highest within MAX_MISORDER, not seen before.
    OutOfOrder,
    /// Behind or equal to the highest, already received.
    Duplicate,
    /// Still in probation (RFC 3550 A.1: MIN_SEQUENTIAL in-order packets
    /// before a source is valid). Counted once probation completes.
    Probation,
    /// A jump beyond MAX_DROPOUT, or too far back: not counted unless the
    /// next packet confirms a restart.
    Invalid,
    /// The second packet after a large jump confirmed it: the sender
    /// restarted its sequence (A.1 `seq == bad_seq`); counting starts anew.
    Restarted,
}

/// Loss over one report interval (RFC 3550 A.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IntervalLoss {
    pub expected: u64,
    pub received: u64,
    /// expected − received over the interval; negative with duplicates.
    pub lost: i64,
    /// `lost / expected` in 1/256 units, 0 when nothing was lost
    /// (duplicates never make it negative): the report block's 8-bit field.
    pub fraction: u8,
}

/// Per-SSRC receive state.
/// `repr(C)` with the per-packet fields first (A.1 state, counters, A.8
/// state), so an update touches the struct's first cache lines only.
///
/// Read the counters through the accessors (`packets()`, `payload_bytes()`,
/// …). The few fields that are not private yet still have direct readers:
/// the engine's snapshot and report generator (`pub(crate)` ones) and the
/// property tests (`pub` ones).
#[derive(Clone, Debug)]
#[repr(C)]
pub struct ReceiveStats {
    // --- hot: read or written for every packet (first two cache lines) ---
    // RFC 3550 A.1 state; names follow the RFC's `source` struct.
    max_seq: u16,
    probation: u8,
    /// Payload type of the previous packet (comfort-noise rule below).
    last_pt: Option<u8>,
    /// Wrap count (the RFC keeps `cycles` shifted by 16; we keep the count).
    cycles: u64,
    /// Packets counted toward A.3 since the last (re)start.
    received: u64,
    /// Bitmap of the 128 extended sequence numbers at and below the highest:
    /// bit k set = `highest − k` received. Detects duplicates within
    /// MAX_MISORDER (100 < 128) without a per-packet allocation.
    recent: u128,
    pub packets: u64,
    /// Payload bytes (header and padding excluded), as W3C `bytesReceived`.
    pub(crate) payload_bytes: u64,
    /// RTP header bytes, as W3C `headerBytesReceived`.
    pub(crate) header_bytes: u64,
    pub(crate) last_arrival: MonoTime,
    // RFC 3550 A.8 jitter, in RTP timestamp units.
    clock_rate: Option<u32>,
    prev: Option<(MonoTime, RtpTs)>,
    jitter: f64,
    max_jitter: f64,
    mean_jitter: f64,

    // --- cold: probation, restarts, report intervals, rare outcomes ---
    base_seq: u16,
    bad_seq: u32,
    /// First sequence number of the current probation run, packets in that
    /// run, packets since the stream began, and the first few sequence
    /// numbers seen during probation.
    probation_start: u16,
    probation_run_packets: u64,
    probation_packets: u64,
    probation_seen: [u16; 8],
    probation_seen_len: usize,
    expected_prior: u64,
    received_prior: u64,
    /// Losses accumulated over earlier sequence epochs (before a restart).
    lost_before_restart: i64,
    expected_before_restart: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub invalid: u64,
    pub restarts: u64,
    pub(crate) first_arrival: MonoTime,
}

impl ReceiveStats {
    /// Starts a stream at its first packet (A.1 `init_seq` then probation).
    pub fn new(seq: SeqNo, clock_rate: Option<u32>, now: MonoTime) -> Self {
        ReceiveStats {
            max_seq: seq.0.wrapping_sub(1),
            cycles: 0,
            base_seq: seq.0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            probation_start: seq.0,
            probation_run_packets: 0,
            probation_packets: 0,
            probation_seen: [0; 8],
            probation_seen_len: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            recent: 0,
            lost_before_restart: 0,
            expected_before_restart: 0,
            packets: 0,
            duplicates: 0,
            out_of_order: 0,
            invalid: 0,
            restarts: 0,
            payload_bytes: 0,
            header_bytes: 0,
            first_arrival: now,
            last_arrival: now,
            clock_rate,
            prev: None,
            jitter: 0.0,
            max_jitter: 0.0,
            mean_jitter: 0.0,
            last_pt: None,
        }
    }

    /// A.1 `init_seq`: a new sequence epoch starting at `seq`.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = seq;
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.recent = 1;
    }

    /// Accounts one RTP packet as the relay sees it (see [`Self::on_packet`]);
    /// decides from the marker bit and payload type whether the packet is a
    /// jitter *sample* for `maxJitter`/`meanJitter`.
    #[inline]
    pub(crate) fn on_rtp(&mut self, now: MonoTime, rtp: &RtpView<'_>) -> SeqOutcome {
        // Wireshark's RTP stream analysis samples the running estimate only
        // on "regular" packets: not a marker packet (audio talkspurt start,
        // video frame end), not comfort noise (PT 13, or 19 as once
        // reserved) and not the packet after comfort noise. The estimate
        // itself (A.8) still takes every packet.
        let pt = rtp.payload_type();
        let cn = |pt: u8| pt == 13 || pt == 19;
        let sample = !rtp.marker() && !cn(pt) && !self.last_pt.is_some_and(cn);
        self.last_pt = Some(pt);
        self.account(
            now,
            rtp.seq(),
            rtp.timestamp(),
            rtp.header_len(),
            rtp.payload_len(),
            sample,
        )
    }

    /// Accounts one packet. `header_len`/`payload_len` come from the RTP
    /// view; `now` is the arrival time. Every packet is a jitter sample.
    pub fn on_packet(
        &mut self,
        now: MonoTime,
        seq: SeqNo,
        ts: RtpTs,
        header_len: usize,
        payload_len: usize,
    ) -> SeqOutcome {
        self.account(now, seq, ts, header_len, payload_len, true)
    }

    fn account(
        &mut self,
        now: MonoTime,
        seq: SeqNo,
        ts: RtpTs,
        header_len: usize,
        payload_len: usize,
        sample: bool,
    ) -> SeqOutcome {
        self.last_arrival = now;
        let outcome = self.update_seq(seq.0);
        if matches!(outcome, SeqOutcome::Invalid) {
            self.invalid += 1;
            return outcome;
        }
        self.packets += 1;
        self.header_bytes += header_len as u64;
        self.payload_bytes += payload_len as u64;
        match outcome {
            SeqOutcome::Duplicate => self.duplicates += 1,
            SeqOutcome::OutOfOrder => self.out_of_order += 1,
            SeqOutcome::Restarted => self.restarts += 1,
            _ => {}
        }
        self.update_jitter(now, ts, sample);
        outcome
    }

    /// RFC 3550 A.1 probation: the source becomes valid after
    /// MIN_SEQUENTIAL packets in sequence; an out-of-sequence packet starts
    /// the run over. Unlike the RFC, nothing seen during probation is
    /// discarded: when it passes, the epoch starts at the lowest sequence
    /// number seen (a packet reordered ahead of the first one belongs to the
    /// stream) and every probation packet counts as received, as capture
    /// tools count them.
    fn probation_step(&mut self, seq: u16) -> SeqOutcome {
        self.probation_packets += 1;
        if let Some(slot) = self.probation_seen.get_mut(self.probation_seen_len) {
            *slot = seq;
            self.probation_seen_len += 1;
        }
        if seq == self.max_seq.wrapping_add(1) {
            self.probation -= 1;
            self.max_seq = seq;
        } else if seq != self.max_seq {
            // Out of sequence: the run starts over from this packet (a
            // duplicate of the previous one does not break it).
            self.probation = MIN_SEQUENTIAL - 1;
            self.probation_start = seq;
            self.max_seq = seq;
            self.probation_run_packets = 0;
        }
        self.probation_run_packets += 1;
        if self.probation > 0 {
            return SeqOutcome::Probation;
        }
        let max = seq;
        // The lowest probation sequence number within reach of the highest.
        let seen_all = self.probation_seen;
        let seen = &seen_all[..self.probation_seen_len];
        let lowest = seen
            .iter()
            .copied()
            .filter(|s| max.wrapping_sub(*s) < MAX_DROPOUT)
            .max_by_key(|s| max.wrapping_sub(*s))
            .unwrap_or(self.probation_start);
        let all_within = seen.iter().all(|s| max.wrapping_sub(*s) < MAX_DROPOUT);
        let (base, received) = if all_within && self.probation_seen_len as u64 == self.probation_packets {
            (lowest, self.probation_packets)
        } else {
            // Earlier packets were far off (a restart) or too many to track:
            // count only the run that passed.
            (self.probation_start, self.probation_run_packets)
        };
        self.init_seq(base);
        self.max_seq = max;
        // The run may have crossed 65535 → 0 after the base: one cycle.
        self.cycles = u64::from(max < base);
        self.received = received;
        self.recent = 0;
        for s in seen {
            let back = max.wrapping_sub(*s);
            if back < 128 && (all_within || max.wrapping_sub(self.probation_start) >= back) {
                self.recent |= 1u128 << back;
            }
        }
        SeqOutcome::InOrder
    }

    /// RFC 3550 A.1 `update_seq`, with two deliberate differences:
    /// * packets seen during probation are counted once it completes (the
    ///   RFC drops them from `received`; capture tools such as Wireshark
    ///   count every packet, and so must `packetsReceived`);
    /// * duplicates are told apart from reordered packets with a bitmap.
    fn update_seq(&mut self, seq: u16) -> SeqOutcome {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            return self.probation_step(seq);
        }
        if udelta == 0 {
            // Same as the highest: a duplicate (A.1 would count it in order).
            self.received += 1;
            return SeqOutcome::Duplicate;
        }
        if udelta < MAX_DROPOUT {
            // In order, with permissible gap.
            if seq < self.max_seq {
                // Sequence number wrapped: count another 64K cycle.
                self.cycles += 1;
            }
            self.max_seq = seq;
            self.recent = if udelta >= 128 { 1 } else { (self.recent << udelta) | 1 };
            self.received += 1;
            return SeqOutcome::InOrder;
        }
        if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // The sequence number made a very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: assume the other side restarted
                // without telling us, so re-sync (A.1). Fold this epoch's
                // loss into the cumulative figure first.
                self.lost_before_restart += self.lost_in_epoch();
                self.expected_before_restart += self.expected_in_epoch();
                self.init_seq(seq);
                self.received = 1;
                return SeqOutcome::Restarted;
            }
            self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
            return SeqOutcome::Invalid;
        }
        // Duplicate or reordered packet: `back` positions behind the highest.
        let back = self.max_seq.wrapping_sub(seq);
        if back < 128 {
            let bit = 1u128 << back;
            if self.recent & bit != 0 {
                self.received += 1;
                return SeqOutcome::Duplicate;
            }
            self.recent |= bit;
        }
        // A packet from before the epoch's base would make expected smaller
        // than the count; the RFC counts it anyway (loss may read negative).
        self.received += 1;
        SeqOutcome::OutOfOrder
    }

    /// RFC 3550 A.8: D(i−1,i) = (Rj − Ri) − (Sj − Si) in timestamp units,
    /// J += (|D| − J) / 16. Arrival times convert to timestamp units with the
    /// payload type's clock rate; the RTP timestamp difference is taken
    /// modulo 2^32, so wraparound never shows up as jitter.
    ///
    /// Example at 8 kHz: packets 20 ms apart with timestamps 160 apart give
    /// D = 160 − 160 = 0; a packet 5 ms late gives D = 40 and J += 40/16.
    ///
    /// `maxJitter`/`meanJitter` follow Wireshark's RTP stream analysis so
    /// that `analyze` agrees with it: the maximum over sampled packets, and
    /// the mean by its recurrence `mean = (mean·(n−1) + J)/n` with n the
    /// packets after the first, so a packet that is not a sample counts as
    /// the mean of the moment. For a stream of regular packets this is the
    /// plain mean of J over packets 2..N.
    fn update_jitter(&mut self, now: MonoTime, ts: RtpTs, sample: bool) {
        let Some(rate) = self.clock_rate else {
            return;
        };
        if let Some((prev_at, prev_ts)) = self
            .prev
            .filter(|(_, p)| ts.signed_delta_from(*p).unsigned_abs() < TS_DISCONTINUITY)
        {
            let arrival_delta_ns = now.as_nanos() as f64 - prev_at.as_nanos() as f64;
            let arrival_delta = arrival_delta_ns * f64::from(rate) / 1e9;
            let d = arrival_delta - f64::from(ts.signed_delta_from(prev_ts));
            self.jitter += (d.abs() - self.jitter) / 16.0;
            if sample {
                let n = self.packets.saturating_sub(1).max(1) as f64;
                self.max_jitter = self.max_jitter.max(self.jitter);
                self.mean_jitter = (self.mean_jitter * (n - 1.0) + self.jitter) / n;
            }
        }
        self.prev = Some((now, ts));
    }

    /// Sets the clock rate once it becomes known (e.g. a configured PT).
    pub(crate) fn set_clock_rate(&mut self, rate: Option<u32>) {
        if self.clock_rate != rate {
            self.clock_rate = rate;
            self.prev = None;
        }
    }

    pub fn clock_rate(&self) -> Option<u32> {
        self.clock_rate
    }

    /// Packets accounted, whatever their outcome (duplicates and probation
    /// included): W3C `packetsReceived`.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Payload bytes (header and padding excluded), as W3C `bytesReceived`.
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// RTP header bytes, as W3C `headerBytesReceived`.
    pub fn header_bytes(&self) -> u64 {
        self.header_bytes
    }

    /// Arrival time of the stream's first packet.
    pub fn first_arrival(&self) -> MonoTime {
        self.first_arrival
    }

    /// Arrival time of the latest packet.
    pub fn last_arrival(&self) -> MonoTime {
        self.last_arrival
    }

    /// Packets already received (A.1 [`SeqOutcome::Duplicate`]).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Packets behind the highest, not seen before ([`SeqOutcome::OutOfOrder`]).
    pub fn out_of_order(&self) -> u64 {
        self.out_of_order
    }

    /// Packets A.1 rejected ([`SeqOutcome::Invalid`]).
    pub fn invalid(&self) -> u64 {
        self.invalid
    }

    /// Confirmed sequence restarts ([`SeqOutcome::Restarted`]).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// True once the source passed probation (RFC 3550 A.1).
    pub fn is_valid(&self) -> bool {
        self.probation == 0
    }

    /// Extended highest sequence number received in this epoch.
    pub fn ext_highest_seq(&self) -> ExtSeqNo {
        ExtSeqNo::new(self.cycles, SeqNo(self.max_seq))
    }

    fn expected_in_epoch(&self) -> u64 {
        if !self.is_valid() {
            return 0;
        }
        // A.3: expected = extended_max − base_seq + 1.
        self.ext_highest_seq().0 + 1 - u64::from(self.base_seq)
    }

    fn lost_in_epoch(&self) -> i64 {
        self.expected_in_epoch() as i64 - self.received as i64
    }

    /// Packets expected over the stream's life (A.3), across restarts.
    pub fn expected(&self) -> u64 {
        self.expected_before_restart + self.expected_in_epoch()
    }

    /// Cumulative packets lost, signed: expected − received (A.3). Negative
    /// when duplicates outnumber losses. Unclamped; see [`Self::wire_cumulative_lost`].
    pub fn cumulative_lost(&self) -> i64 {
        self.lost_before_restart + self.lost_in_epoch()
    }

    /// The 24-bit field as a report block carries it (clamped, signed).
    pub fn wire_cumulative_lost(&self) -> i32 {
        crate::wire::rtcp::sign_extend_24(clamp_lost_24(self.cumulative_lost()))
    }

    /// A.3 per-interval loss since the previous call, then starts a new
    /// interval. Only the report generator for this stream should call it.
    ///
    /// Example: 100 expected and 95 received since the last report gives
    /// lost 5 and fraction (5 << 8) / 100 = 12 (4.7%).
    pub fn take_interval(&mut self) -> IntervalLoss {
        let expected = self.expected_in_epoch();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.received_prior = self.received;
        let lost = expected_interval as i64 - received_interval as i64;
        let fraction = if expected_interval == 0 || lost <= 0 {
            0
        } else {
            // lost ≤ expected_interval, so the quotient is ≤ 256; 256 only
            // when everything was lost, which the 8-bit field caps at 255.
            u8::try_from(((lost as u64) << 8) / expected_interval).unwrap_or(u8::MAX)
        };
        IntervalLoss {
            expected: expected_interval,
            received: received_interval,
            lost,
            fraction,
        }
    }

    /// Current A.8 estimate in timestamp units (what a report block carries).
    pub fn jitter_units(&self) -> Option<f64> {
        self.clock_rate.map(|_| self.jitter)
    }

    /// Current jitter in seconds (W3C `jitter`).
    pub fn jitter_secs(&self) -> Option<f64> {
        self.clock_rate.map(|r| self.jitter / f64::from(r))
    }

    /// Largest running estimate seen, seconds.
    pub fn max_jitter_secs(&self) -> Option<f64> {
        self.clock_rate.map(|r| self.max_jitter / f64::from(r))
    }

    /// Mean of the running estimate (Wireshark's recurrence, see
    /// `update_jitter`), seconds.
    pub fn mean_jitter_secs(&self) -> Option<f64> {
        self.clock_rate.map(|r| self.mean_jitter / f64::from(r))
    }

    /// The jitter field of a report block: A.8 estimate truncated to an integer.
    pub fn wire_jitter(&self) -> u32 {
        self.jitter_units().map_or(0, |j| j as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u16]) -> ReceiveStats {
        let mut s = ReceiveStats::new(SeqNo(seqs[0]), Some(8000), MonoTime::ZERO);
        for (i, q) in seqs.iter().enumerate() {
            let t = MonoTime::from_millis(20 * i as u64);
            s.on_packet(t, SeqNo(*q), RtpTs(160 * u32::from(q.wrapping_sub(seqs[0]))), 12, 160);
        }
        s
    }

    #[test]
    fn probation_across_the_wrap() {
        // Regression (fuzz/regressions/engine/probation-across-seq-wrap):
        // the lowest probation packet sits before 65535 → 0 and the run
        // that passes probation after it.
        // 65535, then 1 (restarts probation), 2 (passes): 0 was lost.
        let s = feed(&[65535, 1, 2]);
        assert!(s.is_valid());
        assert_eq!(s.packets, 3);
        assert_eq!(s.expected(), 4);
        assert_eq!(s.cumulative_lost(), 1);
        assert_eq!(s.ext_highest_seq(), ExtSeqNo(65536 + 2));
    }

    #[test]
    fn in_order_stream_with_a_gap_and_a_duplicate() {
        let mut s = feed(&[10, 11, 12, 14, 14, 15]);
        assert_eq!(
            (s.packets, s.expected(), s.cumulative_lost(), s.duplicates),
            (6, 6, 0, 1)
        );
        let i = s.take_interval();
        assert_eq!((i.expected, i.received, i.lost, i.fraction), (6, 6, 0, 0));
        s.on_packet(MonoTime::from_millis(200), SeqNo(20), RtpTs(1600), 12, 160);
        // 16..=19 lost out of 5 expected in this interval: (4 << 8) / 5 = 204.
        let i = s.take_interval();
        assert_eq!((i.expected, i.received, i.lost, i.fraction), (5, 1, 4, 204));
    }

    #[test]
    fn restart_after_a_large_jump_keeps_cumulative_counts() {
        let mut s = feed(&[100, 101, 102]);
        let t = MonoTime::from_millis(100);
        // A jump beyond MAX_DROPOUT: the first is invalid, the next confirms.
        assert_eq!(s.on_packet(t, SeqNo(40_000), RtpTs(0), 12, 1), SeqOutcome::Invalid);
        assert_eq!(s.on_packet(t, SeqNo(40_001), RtpTs(160), 12, 1), SeqOutcome::Restarted);
        assert_eq!(s.on_packet(t, SeqNo(40_003), RtpTs(480), 12, 1), SeqOutcome::InOrder);
        assert_eq!(s.packets, 5);
        assert_eq!(s.invalid, 1);
        // Epoch 1: 3 of 3; epoch 2: 40001..=40003, 2 of 3.
        assert_eq!((s.expected(), s.cumulative_lost()), (6, 1));
    }
}
