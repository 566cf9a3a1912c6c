//! Receive-side statistics of one RTP stream: RFC 3550 A.1 (sequence
//! extension and validation), A.3 (expected, lost, fraction lost) and A.8
//! (interarrival jitter).

use crate::stats::burst::{BurstMetrics, LossModel};
use crate::time::MonoTime;
use crate::wire::rtcp::clamp_lost_24;
use crate::wire::rtp::RtpView;
use crate::wire::{ExtSeqNo, RtpTs, SeqNo};
use std::time::Duration;

/// RFC 3550 A.1 constants: a packet up to MAX_DROPOUT ahead of the highest
/// is in order (the gap is loss).
pub const MAX_DROPOUT: u16 = 3000;
/// How far behind the highest a packet still belongs to the stream (late:
/// [`SeqOutcome::OutOfOrder`] or a duplicate). RFC 3550 A.1 suggests 100,
/// which assumes plain network reordering. NACK retransmissions sent on the
/// media SSRC itself (an SFU such as Janus answering a NACK with the
/// original packet) arrive one round trip after the loss: at 6 000
/// packets/s a 50 ms round trip is already 300 packets. libwebrtc's receive
/// statistics (`StreamStatisticianImpl`, `max_reordering_threshold_`) use
/// 450 when NACK is on (`kMaxPacketAgeToNack`; 50 otherwise), the oldest
/// packet its receiver ever asks for; so do we. Farther back, a packet is a
/// restart candidate as in A.1, with the confirmation rule of
/// [`BACKWARD_RESTART_AFTER`].
pub const MAX_MISORDER: u16 = 450;
pub(crate) const MIN_SEQUENTIAL: u8 = 2;

/// How far behind the highest a packet may still be a late one of the
/// current numbering, however late: 2^14, a quarter of the sequence space.
/// A receiver never asks for a packet more than 10 000 behind its newest
/// (libwebrtc's NACK module, `kMaxPacketAge`), and an answer arrives one
/// round trip later (another few thousand at video rates). Sequence numbers
/// are modulo 2^16, so a jump farther back is as much a jump ahead: RFC
/// 3550 A.1's two-packet restart rule applies to it, as to every jump of
/// MAX_DROPOUT or more ahead.
pub const MAX_LATE: u16 = 1 << 14;

/// A run of packets more than MAX_MISORDER and at most MAX_LATE *behind*
/// the highest re-syncs the stream (a sender restart to a lower sequence
/// number) only when it is sequential, no packet of the current numbering
/// arrived since it began, and it has lasted this long. RFC 3550 A.1
/// re-syncs on the second sequential packet; behind the highest, two
/// sequential packets are just as often two late retransmissions of a lost
/// burst, sent back to back. Such a burst is over within milliseconds (a
/// receiver asks for a few hundred packets at a time, and new packets
/// interleave with the answers), while after a genuine restart the old
/// numbers never come back. The packets of a run that re-syncs count
/// (received, bytes), as if accepted from its first.
///
/// Example at 6 000 packets/s: highest 35 999, then 25 000, 25 001, … with
/// nothing near 35 999: `Invalid` until 25 000 + 1 500 (250 ms later) is
/// `Restarted`, and the epoch starts at 25 000 with 1 501 received.
pub const BACKWARD_RESTART_AFTER: Duration = Duration::from_millis(250);

/// A.8 samples with |D| beyond this many seconds of the stream's clock are
/// timestamp discontinuities (the sender's clock jumped), not network
/// jitter: the estimate skips them and takes the packet as its new
/// reference. libwebrtc skips |D| ≥ 450 000 ticks (5 s at 90 kHz, its
/// "crazy jumps in TS" guard); we take 5 s of each stream's own clock.
const TS_JUMP_SECS: f64 = 5.0;

/// An A.8 reference arrival standing for "none yet" (u64::MAX ns: 584
/// years after the engine's time origin).
const NO_REFERENCE: MonoTime = MonoTime::from_nanos(u64::MAX);

/// Bits in the duplicate-detection ring ([`ReceiveStats::seen`]): a power
/// of two above MAX_MISORDER.
const SEEN_BITS: u16 = 512;
const _: () = assert!(MAX_MISORDER < SEEN_BITS && SEEN_BITS.is_power_of_two());

/// RFC 3611 §4.6 Statistics Summary jitter fields, in timestamp units,
/// from the A.8 estimate J (as pjmedia's XR does): `max` and `mean` are
/// the per-packet maximum and mean of J the receive path keeps anyway;
/// `min` and `dev` are over the values of J at each generated report (one
/// sample per report interval, so the packet path pays nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct JitterSummary {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub dev: f64,
}

/// What A.1 made of one packet's sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SeqOutcome {
    /// Next in order, or ahead within MAX_DROPOUT (a gap: loss).
    InOrder,
    /// Behind the highest within MAX_MISORDER, not seen before: reordered
    /// or a late retransmission.
    OutOfOrder,
    /// Behind or equal to the highest, already received.
    Duplicate,
    /// Still in probation (RFC 3550 A.1: MIN_SEQUENTIAL in-order packets
    /// before a source is valid). Counted once probation completes.
    Probation,
    /// A jump beyond MAX_DROPOUT ahead, or more than MAX_MISORDER back:
    /// not counted unless it turns out to start a restart.
    Invalid,
    /// The packet confirmed a sender restart: the second sequential packet
    /// after the jump (A.1 `seq == bad_seq`), or, for a jump of at most
    /// MAX_LATE back, a run per [`BACKWARD_RESTART_AFTER`]. Counting starts
    /// anew.
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
/// state, the duplicate ring), so an update touches the struct's first
/// cache lines only.
///
/// Read the counters through the accessors (`packets()`, `payload_bytes()`,
/// …). The few fields that are not private yet still have direct readers:
/// the engine's snapshot and report generator (`pub(crate)` ones) and the
/// property tests (`pub` ones).
#[derive(Clone, Debug)]
#[repr(C)]
pub struct ReceiveStats {
    // --- hot: read or written for every packet ---
    // RFC 3550 A.1 state; names follow the RFC's `source` struct.
    max_seq: u16,
    /// Next sequence number of the restart candidate run, when
    /// `bad_pending` (the RFC keeps `RTP_SEQ_MOD + 1` for "none").
    bad_seq: u16,
    probation: u8,
    /// Payload type of the previous packet (comfort-noise rule below).
    last_pt: Option<u8>,
    bad_pending: bool,
    /// Wrap count (the RFC keeps `cycles` shifted by 16; we keep the count).
    cycles: u64,
    /// Packets counted toward A.3 since the last (re)start.
    received: u64,
    pub packets: u64,
    /// Payload bytes (header and padding excluded), as W3C `bytesReceived`.
    pub(crate) payload_bytes: u64,
    /// RTP header bytes, as W3C `headerBytesReceived`.
    pub(crate) header_bytes: u64,
    pub(crate) last_arrival: MonoTime,
    // RFC 3550 A.8 jitter, in RTP timestamp units: over every packet (as
    // Wireshark computes it) ...
    // ... and over in-order packets with a new timestamp only (as libwebrtc
    // computes the `jitter` a browser's getStats() shows). Each has a
    // reference (arrival, RTP timestamp of an earlier packet), stored
    // unpacked with [`NO_REFERENCE`] for none: 24 bytes for both where two
    // `Option<(MonoTime, RtpTs)>` take 48.
    clock_rate: Option<u32>,
    prev_at: MonoTime,
    in_order_at: MonoTime,
    prev_ts: RtpTs,
    in_order_ts: RtpTs,
    jitter: f64,
    max_jitter: f64,
    mean_jitter: f64,
    jitter_in_order: f64,
    /// Ring bitmap of the SEEN_BITS sequence numbers at and below the
    /// highest: bit `s % SEEN_BITS` set = `s` received. Detects duplicates
    /// within MAX_MISORDER without a per-packet allocation or shift.
    seen: [u64; (SEEN_BITS / 64) as usize],

    // --- cold: probation, restarts, report intervals, rare outcomes ---
    base_seq: u16,
    /// The restart candidate run: its first sequence number, packets,
    /// first arrival, and bytes (counted if the run re-syncs).
    run_start: u16,
    run_packets: u64,
    run_began: MonoTime,
    run_header_bytes: u64,
    run_payload_bytes: u64,
    /// The clock the jitter estimates are in (the last known rate, kept
    /// while `clock_rate` is unknown), 0 before any.
    jitter_rate: u32,
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
    /// Missing packets that arrived inside an RTX packet (RFC 4588) of this
    /// stream's RTX stream: loss repaired behind the proxy's measuring
    /// point. Loss after repair is `cumulative_lost − repaired`.
    pub repaired: u64,
    pub out_of_order: u64,
    pub invalid: u64,
    pub restarts: u64,
    pub(crate) first_arrival: MonoTime,
    /// RFC 3611 §4.7.2 burst/gap and Gilbert loss model, fed once per gap
    /// (see [`crate::stats::burst`]).
    loss: LossModel,
    /// J sampled at each generated report: count, min, sum, sum of squares
    /// ([`JitterSummary`]).
    report_jitter: (u64, f64, f64, f64),
}

/// One packet as [`ReceiveStats::account`] takes it.
struct Accounted {
    seq: SeqNo,
    ts: RtpTs,
    header_len: usize,
    payload_len: usize,
    /// Whether the packet is a sample of the interarrival jitter estimate.
    jitter_sample: bool,
}

impl ReceiveStats {
    /// Starts a stream at its first packet (A.1 `init_seq` then probation).
    pub fn new(seq: SeqNo, clock_rate: Option<u32>, now: MonoTime) -> Self {
        ReceiveStats {
            max_seq: seq.0.wrapping_sub(1),
            bad_seq: 0,
            bad_pending: false,
            cycles: 0,
            base_seq: seq.0,
            probation: MIN_SEQUENTIAL,
            probation_start: seq.0,
            probation_run_packets: 0,
            probation_packets: 0,
            probation_seen: [0; 8],
            probation_seen_len: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            seen: [0; (SEEN_BITS / 64) as usize],
            run_start: 0,
            run_packets: 0,
            run_began: now,
            run_header_bytes: 0,
            run_payload_bytes: 0,
            lost_before_restart: 0,
            expected_before_restart: 0,
            packets: 0,
            duplicates: 0,
            repaired: 0,
            out_of_order: 0,
            invalid: 0,
            restarts: 0,
            payload_bytes: 0,
            header_bytes: 0,
            first_arrival: now,
            last_arrival: now,
            clock_rate,
            jitter_rate: clock_rate.unwrap_or(0),
            prev_at: NO_REFERENCE,
            prev_ts: RtpTs(0),
            jitter: 0.0,
            max_jitter: 0.0,
            mean_jitter: 0.0,
            in_order_at: NO_REFERENCE,
            in_order_ts: RtpTs(0),
            jitter_in_order: 0.0,
            report_jitter: (0, 0.0, 0.0, 0.0),
            last_pt: None,
            loss: LossModel::default(),
        }
    }

    /// A.1 `init_seq`: a new sequence epoch starting at `seq`.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = seq;
        self.max_seq = seq;
        self.bad_pending = false;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.seen = [0; (SEEN_BITS / 64) as usize];
        self.mark_seen(seq);
        // The model's received count is this epoch's `received`: a new
        // numbering starts the model over too.
        self.loss = LossModel::default();
    }

    /// Word and bit of `seq` in the `seen` ring.
    #[inline]
    fn seen_slot(seq: u16) -> (usize, u64) {
        let bit = seq % SEEN_BITS;
        (usize::from(bit / 64), 1u64 << (bit % 64))
    }

    #[inline]
    fn mark_seen(&mut self, seq: u16) {
        let (w, b) = Self::seen_slot(seq);
        self.seen[w] |= b;
    }

    /// Marks `seq` received; true if it already was.
    #[inline]
    fn test_and_mark_seen(&mut self, seq: u16) -> bool {
        let (w, b) = Self::seen_slot(seq);
        let was = self.seen[w] & b != 0;
        self.seen[w] |= b;
        was
    }

    /// The highest moves `udelta` ahead to `seq`: the slots of the numbers
    /// skipped held numbers SEEN_BITS older, now out of the window; clear
    /// them, then mark `seq` (whose slot held `seq − SEEN_BITS`).
    #[inline]
    fn advance_seen(&mut self, udelta: u16, seq: u16) {
        if udelta >= SEEN_BITS {
            self.seen = [0; (SEEN_BITS / 64) as usize];
        } else {
            for k in 1..udelta {
                let (w, b) = Self::seen_slot(self.max_seq.wrapping_add(k));
                self.seen[w] &= !b;
            }
        }
        self.mark_seen(seq);
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
            Accounted {
                seq: rtp.seq(),
                ts: rtp.timestamp(),
                header_len: rtp.header_len(),
                payload_len: rtp.payload_len(),
                jitter_sample: sample,
            },
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
        self.account(
            now,
            Accounted {
                seq,
                ts,
                header_len,
                payload_len,
                jitter_sample: true,
            },
        )
    }

    fn account(&mut self, now: MonoTime, packet: Accounted) -> SeqOutcome {
        self.last_arrival = now;
        let outcome = self.update_seq(packet.seq.0, now);
        if matches!(outcome, SeqOutcome::Invalid) {
            // Every invalid packet is in a restart candidate run (see
            // `jump`), which counts its bytes if it re-syncs.
            self.invalid += 1;
            self.run_header_bytes += packet.header_len as u64;
            self.run_payload_bytes += packet.payload_len as u64;
            return outcome;
        }
        self.packets += 1;
        self.header_bytes += packet.header_len as u64;
        self.payload_bytes += packet.payload_len as u64;
        match outcome {
            SeqOutcome::Duplicate => self.duplicates += 1,
            SeqOutcome::OutOfOrder => self.out_of_order += 1,
            SeqOutcome::Restarted => self.restarts += 1,
            _ => {}
        }
        self.update_jitter(now, packet.ts, packet.jitter_sample, outcome);
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
        self.seen = [0; (SEEN_BITS / 64) as usize];
        for s in seen {
            let back = max.wrapping_sub(*s);
            if back < SEEN_BITS && (all_within || max.wrapping_sub(self.probation_start) >= back) {
                self.mark_seen(*s);
            }
        }
        SeqOutcome::InOrder
    }

    /// RFC 3550 A.1 `update_seq`, with deliberate differences:
    /// * packets seen during probation are counted once it completes (the
    ///   RFC drops them from `received`; capture tools such as Wireshark
    ///   count every packet, and so must `packetsReceived`);
    /// * duplicates are told apart from reordered packets with a bitmap;
    /// * the misorder window is 450, not 100 ([`MAX_MISORDER`]);
    /// * any packet of the current numbering (in order, late or duplicate)
    ///   cancels a restart candidate, so late packets interleaved with new
    ///   ones never look like "two sequential packets"; and a restart to a
    ///   lower number needs more than two packets ([`Self::jump`]).
    ///
    /// Example (highest 1 600, window 450): 1 601 is in order; 1 300 is
    /// late (300 back, within the window: out of order); 1 000 is 600 back:
    /// invalid, a restart candidate that 1 601 cancels.
    fn update_seq(&mut self, seq: u16, now: MonoTime) -> SeqOutcome {
        if self.probation > 0 {
            return self.probation_step(seq);
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta == 0 {
            // Same as the highest: a duplicate (A.1 would count it in order).
            self.bad_pending = false;
            self.received += 1;
            return SeqOutcome::Duplicate;
        }
        if udelta < MAX_DROPOUT {
            // In order, with permissible gap.
            if seq < self.max_seq {
                // Sequence number wrapped: count another 64K cycle.
                self.cycles += 1;
            }
            if udelta > 1 {
                // udelta − 1 numbers skipped: one gap for the loss model
                // (O(1) whatever its length).
                self.loss.on_gap(self.received, u64::from(udelta - 1));
            }
            self.advance_seen(udelta, seq);
            self.max_seq = seq;
            self.bad_pending = false;
            self.received += 1;
            return SeqOutcome::InOrder;
        }
        // `back` positions behind the highest (mod 2^16).
        let back = self.max_seq.wrapping_sub(seq);
        if back < MAX_MISORDER {
            // Reordered, a late retransmission, or a duplicate of either.
            self.bad_pending = false;
            self.received += 1;
            if self.test_and_mark_seen(seq) {
                return SeqOutcome::Duplicate;
            }
            // A packet from before the epoch's base would make expected
            // smaller than the count; the RFC counts it anyway (loss may
            // read negative).
            return SeqOutcome::OutOfOrder;
        }
        self.jump(seq, back, now)
    }

    /// A.1's "very large jump": `seq` is MAX_DROPOUT or more ahead of the
    /// highest, or `back` > MAX_MISORDER behind it. It starts or extends the
    /// restart candidate run (`bad_seq` is the run's next number) and
    /// re-syncs when the run is confirmed:
    /// * within MAX_LATE behind (where late packets may be): after
    ///   [`BACKWARD_RESTART_AFTER`], adopting the whole run;
    /// * otherwise (ahead): on its second packet, as in the RFC.
    ///
    /// Example: highest 102, then 20 000 (invalid; `bad_seq` 20 001), 103
    /// (in order: candidate cancelled), 20 001 (invalid again, a new run),
    /// 20 002 (sequential, ahead: `Restarted`, epoch base 20 002).
    fn jump(&mut self, seq: u16, back: u16, now: MonoTime) -> SeqOutcome {
        if self.bad_pending && seq == self.bad_seq {
            self.run_packets += 1;
        } else {
            self.bad_pending = true;
            self.run_start = seq;
            self.run_packets = 1;
            self.run_began = now;
            self.run_header_bytes = 0;
            self.run_payload_bytes = 0;
        }
        self.bad_seq = seq.wrapping_add(1);
        let ahead = back > MAX_LATE;
        let sequential = self.run_packets >= u64::from(MIN_SEQUENTIAL);
        if !sequential || (!ahead && now.saturating_since(self.run_began) < BACKWARD_RESTART_AFTER) {
            return SeqOutcome::Invalid;
        }
        // Re-sync (A.1 `init_seq`): fold this epoch's loss into the
        // cumulative figure first. The A.8 references belong to the old
        // numbering: a transit difference across the restart is no jitter.
        self.lost_before_restart += self.lost_in_epoch();
        self.expected_before_restart += self.expected_in_epoch();
        self.prev_at = NO_REFERENCE;
        self.in_order_at = NO_REFERENCE;
        if ahead {
            // Two sequential packets: assume the other side restarted
            // without telling us (A.1); the first is not counted.
            self.init_seq(seq);
            self.received = 1;
        } else {
            // The epoch starts at the run's first packet: its earlier
            // packets, invalid so far, count now. E.g. a run 25 000..=26 500
            // gives base 25 000, highest 26 500, 1 501 received, 1 500
            // packets moved from `invalid` to `packets`.
            let (start, run) = (self.run_start, self.run_packets);
            self.init_seq(start);
            self.max_seq = seq;
            // Extended highest = start + run − 1: a wrap inside the run is
            // a cycle.
            self.cycles = (u64::from(start) + run - 1) >> 16;
            self.received = run;
            for k in 0..run.min(u64::from(SEEN_BITS)) {
                self.mark_seen(seq.wrapping_sub(k as u16));
            }
            let earlier = run - 1;
            self.packets += earlier;
            self.invalid -= earlier;
            self.header_bytes += self.run_header_bytes;
            self.payload_bytes += self.run_payload_bytes;
        }
        SeqOutcome::Restarted
    }

    /// RFC 3550 A.8: D(i−1,i) = (Rj − Ri) − (Sj − Si) in timestamp units,
    /// J += (|D| − J) / 16. Arrival times convert to timestamp units with the
    /// payload type's clock rate; the RTP timestamp difference is taken
    /// modulo 2^32, so wraparound never shows up as jitter.
    ///
    /// Example at 8 kHz: packets 20 ms apart with timestamps 160 apart give
    /// D = 160 − 160 = 0; a packet 5 ms late gives D = 40 and J += 40/16.
    /// A sample with |D| > 5 s of clock (40 000 ticks at 8 kHz: e.g. the
    /// timestamp jumps 10 s ahead while 20 ms pass, D = 160 − 80 160) is a
    /// discontinuity: skipped, the packet becomes the new reference.
    ///
    /// Two estimates run side by side:
    /// * `jitter` takes every packet that passed A.1 (late and duplicate
    ///   ones too), as RFC 3550 A.8 and Wireshark's RTP analysis do;
    ///   `maxJitter`/`meanJitter` follow Wireshark so that `analyze` agrees
    ///   with it: the maximum over sampled packets, and the mean by its
    ///   recurrence `mean = (mean·(n−1) + J)/n` with n the packets after the
    ///   first, so a packet that is not a sample counts as the mean of the
    ///   moment. For a stream of regular packets this is the plain mean of J
    ///   over packets 2..N.
    /// * `jitter_in_order` is what libwebrtc (`StreamStatisticianImpl::
    ///   UpdateCounters`) reports as a browser's `jitter`: only in-order
    ///   packets move its reference, and only those whose timestamp is
    ///   ahead of the previous in-order packet's take a sample (the packets
    ///   of one video frame share a timestamp; late and retransmitted
    ///   packets are left out). E.g. five packets of a frame 1 ms apart,
    ///   frames every 40 ms (3 600 ticks at 90 kHz): one sample a frame,
    ///   D = 36 ms − 40 ms = −360 ticks, so J → 360 ticks (4 ms).
    fn update_jitter(&mut self, now: MonoTime, ts: RtpTs, sample: bool, outcome: SeqOutcome) {
        let Some(rate) = self.clock_rate else {
            return;
        };
        let max_d = TS_JUMP_SECS * f64::from(rate);
        let transit_change = |(prev_at, prev_ts): (MonoTime, RtpTs)| {
            let arrival_delta_ns = now.as_nanos() as f64 - prev_at.as_nanos() as f64;
            let arrival_delta = arrival_delta_ns * f64::from(rate) / 1e9;
            arrival_delta - f64::from(ts.signed_delta_from(prev_ts))
        };
        let reference = |at: MonoTime, ts: RtpTs| (at != NO_REFERENCE).then_some((at, ts));
        if let Some(d) = reference(self.prev_at, self.prev_ts)
            .map(transit_change)
            .filter(|d| d.abs() <= max_d)
        {
            self.jitter += (d.abs() - self.jitter) / 16.0;
            if sample {
                let n = self.packets.saturating_sub(1).max(1) as f64;
                self.max_jitter = self.max_jitter.max(self.jitter);
                self.mean_jitter = (self.mean_jitter * (n - 1.0) + self.jitter) / n;
            }
        }
        (self.prev_at, self.prev_ts) = (now, ts);
        match outcome {
            SeqOutcome::InOrder => {
                if let Some(d) = reference(self.in_order_at, self.in_order_ts)
                    .filter(|(_, prev_ts)| ts.signed_delta_from(*prev_ts) > 0)
                    .map(transit_change)
                    .filter(|d| d.abs() <= max_d)
                {
                    self.jitter_in_order += (d.abs() - self.jitter_in_order) / 16.0;
                }
                (self.in_order_at, self.in_order_ts) = (now, ts);
            }
            // The first packets of a stream or of a new numbering: a
            // reference, no sample.
            SeqOutcome::Probation | SeqOutcome::Restarted => (self.in_order_at, self.in_order_ts) = (now, ts),
            SeqOutcome::OutOfOrder | SeqOutcome::Duplicate | SeqOutcome::Invalid => {}
        }
    }

    /// Sets the clock rate once it becomes known (e.g. a configured PT) or
    /// when a payload type switch changes it. The estimates are in ticks of
    /// the clock they were computed with: rescale them to the new one, as
    /// libwebrtc's `ReviseFrequencyAndJitter` does, so the seconds they
    /// stand for stay the same (J = 40 ticks at 8 kHz, 5 ms, becomes 240
    /// ticks at 48 kHz). While the rate is unknown they keep the last one.
    pub(crate) fn set_clock_rate(&mut self, rate: Option<u32>) {
        if self.clock_rate == rate {
            return;
        }
        if let Some(new) = rate {
            if self.jitter_rate != 0 && self.jitter_rate != new {
                let k = f64::from(new) / f64::from(self.jitter_rate);
                self.jitter *= k;
                self.max_jitter *= k;
                self.mean_jitter *= k;
                self.jitter_in_order *= k;
            }
            self.jitter_rate = new;
        }
        self.clock_rate = rate;
        // The previous timestamps are in the other clock.
        self.prev_at = NO_REFERENCE;
        self.in_order_at = NO_REFERENCE;
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
    /// An RTX packet (RFC 4588 §4) carried original sequence number `osn`
    /// of this stream: when that packet is missing and still inside the
    /// duplicate ring, it counts as repaired and is marked received (so a
    /// second retransmission, or the original arriving later, is a
    /// duplicate). Returns whether it repaired anything. The arrival
    /// figures (`received`, cumulative lost) are unchanged: they are what
    /// the proxy measured on the wire.
    pub fn repair(&mut self, osn: u16) -> bool {
        let back = self.max_seq.wrapping_sub(osn);
        if self.probation > 0 || back == 0 || back >= SEEN_BITS || back >= MAX_MISORDER {
            return false;
        }
        if self.test_and_mark_seen(osn) {
            return false;
        }
        self.repaired += 1;
        true
    }

    /// Whether `seq` lies at or just behind the highest sequence number
    /// (within the misorder window) of a stream past probation: where the
    /// original sequence numbers of its retransmissions fall.
    pub fn just_behind(&self, seq: u16) -> bool {
        self.probation == 0 && self.max_seq.wrapping_sub(seq) < MAX_MISORDER
    }

    /// Cumulative loss after RTX repair, never below zero.
    pub fn lost_after_repair(&self) -> i64 {
        (self.cumulative_lost() - self.repaired as i64).max(0)
    }

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

    /// Current all-packets A.8 estimate in seconds (as Wireshark's RTP
    /// analysis computes it). A browser's W3C `jitter` is
    /// [`Self::jitter_in_order_secs`].
    pub fn jitter_secs(&self) -> Option<f64> {
        self.clock_rate.map(|r| self.jitter / f64::from(r))
    }

    /// The in-order estimate (libwebrtc's; see `update_jitter`) in
    /// timestamp units.
    pub fn jitter_in_order_units(&self) -> Option<f64> {
        self.clock_rate.map(|_| self.jitter_in_order)
    }

    /// The in-order estimate in seconds: W3C `jitter` as a browser
    /// (libwebrtc) computes it.
    pub fn jitter_in_order_secs(&self) -> Option<f64> {
        self.clock_rate.map(|r| self.jitter_in_order / f64::from(r))
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

    /// The burst/gap loss model so far (RFC 3611 §4.7.2, G.107 BurstR). One
    /// packet's duration is the stream's mean spacing: elapsed time over
    /// the sequence numbers it spanned (20 ms before two packets).
    pub fn burst_metrics(&self) -> BurstMetrics {
        let span = self.ext_highest_seq().0.saturating_sub(u64::from(self.base_seq));
        let elapsed_ms = self.last_arrival.saturating_since(self.first_arrival).as_secs_f64() * 1e3;
        let packet_ms = if span == 0 || self.restarts > 0 {
            20.0
        } else {
            elapsed_ms / span as f64
        };
        self.loss.metrics(self.received, packet_ms)
    }

    /// Samples J for a generated report and returns the RFC 3611 §4.6
    /// jitter fields (see [`JitterSummary`]); `None` while the clock rate
    /// is unknown.
    pub(crate) fn jitter_summary_for_report(&mut self) -> Option<JitterSummary> {
        self.clock_rate?;
        let j = self.jitter;
        let (n, min, sum, sum_sq) = &mut self.report_jitter;
        *min = if *n == 0 { j } else { min.min(j) };
        *sum += j;
        *sum_sq += j * j;
        *n += 1;
        let k = *n as f64;
        Some(JitterSummary {
            min: *min,
            max: self.max_jitter.max(j),
            mean: self.mean_jitter,
            // Population deviation of the report samples, √(E[J²] − E[J]²).
            dev: (*sum_sq / k - (*sum / k).powi(2)).max(0.0).sqrt(),
        })
    }

    /// Sequence number the current numbering began at (RFC 3550 A.1
    /// `base_seq`): RFC 3611 §4.6 `begin_seq`.
    pub fn base_seq(&self) -> u16 {
        self.base_seq
    }

    /// Packets counted toward A.3 in the current numbering (duplicates
    /// included): what the loss model's received count is.
    pub fn received_in_epoch(&self) -> u64 {
        self.received
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

    /// 8 kHz packets `seqs`, the k-th at 20·k ms plus `late_ms(k)`.
    fn feed_timed(first: u16, seqs: impl IntoIterator<Item = u16>, late_ms: impl Fn(usize) -> u64) -> ReceiveStats {
        let mut s = ReceiveStats::new(SeqNo(first), Some(8000), MonoTime::ZERO);
        for (k, q) in seqs.into_iter().enumerate() {
            let t = MonoTime::from_millis(20 * k as u64 + late_ms(k));
            s.on_packet(t, SeqNo(q), RtpTs(160 * u32::from(q.wrapping_sub(first))), 12, 160);
        }
        s
    }

    #[test]
    fn clock_rate_change_rescales_jitter() {
        // Every fifth packet 5 ms late: J in 8 kHz ticks.
        let mut s = feed_timed(100, 100..140, |k| if k % 5 == 4 { 5 } else { 0 });
        let secs = |s: &ReceiveStats| {
            [
                s.jitter_secs(),
                s.max_jitter_secs(),
                s.mean_jitter_secs(),
                s.jitter_in_order_secs(),
            ]
            .map(Option::unwrap)
        };
        let before = secs(&s);
        assert!(before.iter().all(|j| *j > 1e-4), "{before:?}");
        let same = |a: [f64; 4], b: [f64; 4]| a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-12 * y);
        // 8 kHz → 48 kHz (a payload type switch): the same seconds, six
        // times the ticks.
        s.set_clock_rate(Some(48_000));
        assert!(same(secs(&s), before), "{:?} vs {before:?}", secs(&s));
        assert!((s.jitter_units().unwrap() - 6.0 * before[0] * 8000.0).abs() < 1e-9);
        // Unknown for a while, then 16 kHz: still the same seconds.
        s.set_clock_rate(None);
        assert_eq!(s.jitter_secs(), None);
        s.set_clock_rate(Some(16_000));
        assert!(same(secs(&s), before), "{:?} vs {before:?}", secs(&s));
    }

    #[test]
    fn late_packet_after_a_gap_is_not_taken_for_a_duplicate() {
        // 0..=1000 received; 1000 → 1300 skips 299 numbers whose ring slots
        // held 489..=787 (received): 1100 (slot of 588) is new, not a
        // duplicate. The same after a gap wider than the ring (→ 2000).
        for (to, late) in [(1_300u16, 1_100u16), (2_000, 1_700)] {
            let mut s = feed_timed(0, (0..=1_000).chain([to, late, late]), |_| 0);
            assert_eq!((s.out_of_order, s.duplicates, s.invalid), (1, 1, 0), "{to}");
            assert_eq!(s.cumulative_lost(), i64::from(to - 1_000 - 1) - 1 - 1);
            let t = MonoTime::from_millis(100_000);
            assert_eq!(s.on_packet(t, SeqNo(late - 1), RtpTs(0), 12, 1), SeqOutcome::OutOfOrder);
        }
    }

    #[test]
    fn backward_restart_across_the_wrap_adopts_the_run() {
        // 10 000..10 100 at 50 packets/s, then the sender restarts at
        // 65 530 (10 105 behind, mod 2^16) and carries on across the wrap.
        let old = 10_000..10_100u16;
        let new = (0..40u16).map(|k| 65_530u16.wrapping_add(k));
        let mut s = ReceiveStats::new(SeqNo(10_000), Some(8000), MonoTime::ZERO);
        let mut outcomes = Vec::new();
        for (k, q) in old.chain(new).enumerate() {
            let t = MonoTime::from_millis(20 * k as u64);
            outcomes.push(s.on_packet(t, SeqNo(q), RtpTs(160 * k as u32), 12, 160));
        }
        // 250 ms after the run began: its 13th packet (65 543 = 7 after the
        // wrap) confirms it.
        let run = &outcomes[100..];
        assert!(run[..13].iter().all(|o| *o == SeqOutcome::Invalid), "{run:?}");
        assert_eq!(run[13], SeqOutcome::Restarted);
        assert!(run[14..].iter().all(|o| *o == SeqOutcome::InOrder));
        assert_eq!((s.restarts, s.invalid, s.packets), (1, 0, 140));
        assert_eq!((s.payload_bytes, s.header_bytes), (140 * 160, 140 * 12));
        // Epoch 2: 65 530 ..= 65 536 + 33, every packet received.
        assert_eq!(s.ext_highest_seq(), ExtSeqNo(65_536 + 33));
        assert_eq!((s.expected(), s.cumulative_lost()), (140, 0));
        // The run's packets are known: a copy of one is a duplicate.
        let t = MonoTime::from_millis(10_000);
        assert_eq!(s.on_packet(t, SeqNo(65_531), RtpTs(0), 12, 1), SeqOutcome::Duplicate);
    }
}

#[cfg(test)]
mod burst_tests {
    use super::*;

    #[test]
    fn gaps_feed_the_loss_model() {
        // 200 packets at 20 ms; 3 % lost either one at a time or in runs
        // of three: same loss, different BurstR.
        let run = |lost: &dyn Fn(u16) -> bool| {
            let mut s = ReceiveStats::new(SeqNo(0), Some(8000), MonoTime::ZERO);
            for q in (0..200u16).filter(|q| !lost(*q)) {
                let t = MonoTime::from_millis(20 * u64::from(q));
                s.on_packet(t, SeqNo(q), RtpTs(160 * u32::from(q)), 12, 160);
            }
            s.burst_metrics()
        };
        let random = run(&|q| q % 33 == 5);
        let bursty = run(&|q| (q % 100) / 3 == 10);
        assert_eq!((random.lost, bursty.lost), (6, 6));
        assert!(random.burst_r < 1.1 && bursty.burst_r > 2.5, "{random:?} {bursty:?}");
        // Packet duration from the arrivals: 20 ms, so a burst of three
        // lasts 60 ms.
        assert!((bursty.burst_duration_ms - 60.0).abs() < 1e-6, "{bursty:?}");
    }
}

#[cfg(test)]
mod report_jitter_tests {
    use super::*;

    #[test]
    fn jitter_summary_samples_j_at_each_report() {
        let mut s = ReceiveStats::new(SeqNo(0), Some(8000), MonoTime::ZERO);
        let feed = |s: &mut ReceiveStats, from: u16, to: u16, late: u64| {
            for q in from..to {
                let t = MonoTime::from_millis(20 * u64::from(q) + if q % 2 == 1 { late } else { 0 });
                s.on_packet(t, SeqNo(q), RtpTs(160 * u32::from(q)), 12, 160);
            }
        };
        feed(&mut s, 0, 100, 0);
        let quiet = s.jitter_summary_for_report().unwrap();
        assert_eq!((quiet.min, quiet.max, quiet.dev), (0.0, 0.0, 0.0));
        // Odd packets 4 ms late: |D| = 32 ticks, J → 32.
        feed(&mut s, 100, 400, 4);
        let busy = s.jitter_summary_for_report().unwrap();
        assert_eq!(busy.min, 0.0, "the first report's J");
        assert!((busy.max - 32.0).abs() < 1.0 && busy.mean > 0.0, "{busy:?}");
        // Two report samples, 0 and ≈ 32: deviation ≈ 16.
        assert!((busy.dev - 16.0).abs() < 0.5, "{busy:?}");
        s.set_clock_rate(None);
        assert_eq!(s.jitter_summary_for_report(), None);
    }
}
