//! Property tests for the arithmetic that wraps or clamps (ARCHITECTURE.md
//! §3–4): sequence numbers past 65535, RTP timestamps past 2^32, compact
//! NTP past 2^32, the signed 24-bit cumulative loss, fraction lost, RTT
//! from LSR/DLSR; plus a no-panic property over the whole engine.
//!
//! Case counts are kept modest so the file runs in a few seconds in a debug
//! build; `PROPTEST_CASES=N` raises them all for a longer soak. Failure
//! persistence is off so a failing run writes no files into the tree: the
//! minimal failing input is printed instead.

mod common;
use common::Driver;
use rtp_middlebox::engine::RelaySettings;

use proptest::prelude::*;
use proptest::sample::Index;
use rtp_middlebox::engine::{EngineConfig, Event, RtcpMode, SessionId, SessionInfo, Side, Verdict};
use rtp_middlebox::stats::receive::{MAX_DROPOUT, MAX_MISORDER};
use rtp_middlebox::stats::rtt::{rtt_from, MAX_REPORT_AGE};
use rtp_middlebox::stats::{ReceiveStats, RttReject, SentLog, SeqOutcome};
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::ntp::{CompactNtp, Delay16, NtpTime};
use rtp_middlebox::wire::rtcp::{
    clamp_lost_24, sign_extend_24, walk, write_receiver_report, write_sdes_cname, write_sender_report, write_xr,
    DlrrItem, ReportBlock, RtcpPacket, SenderInfo, XrBlock, CUMULATIVE_LOST_MAX, CUMULATIVE_LOST_MIN, PT_BYE,
};
use rtp_middlebox::wire::rtp::RtpView;
use rtp_middlebox::wire::stun::{StunView, MAGIC_COOKIE};
use rtp_middlebox::wire::{RtpTs, SeqNo, Ssrc};
use std::time::Duration;

/// `cases` for this file: modest by default, `PROPTEST_CASES` overrides.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One DLSR unit (1/65 536 s) in nanoseconds, rounded up.
const DLSR_UNIT_NS: u64 = 15_259;

// ====================================================== sequence wraparound

/// A stream of `n` packets with sequence numbers `start + i` (mod 2^16):
/// the first two arrive first and in order (they pass RFC 3550 A.1
/// probation); the rest lose packets where `lost[i]`, arrive shuffled
/// within consecutive windows of `window` packets (so never more than
/// `window` ≤ 50 < MAX_MISORDER behind the highest), and are duplicated
/// right after themselves where `dup[i]`.
#[derive(Debug, Clone)]
struct Stream {
    start: u16,
    /// Indices (i, not sequence numbers) in arrival order.
    arrivals: Vec<(usize, bool)>,
}

fn stream(start: impl Strategy<Value = u16>, dups: bool) -> impl Strategy<Value = Stream> {
    (start, 250usize..600, 1usize..=50).prop_flat_map(move |(start, n, window)| {
        (
            Just(start),
            Just(n),
            Just(window),
            prop::collection::vec(prop::bool::weighted(0.1), n),
            prop::collection::vec(prop::bool::weighted(if dups { 0.05 } else { 0.0 }), n),
            prop::collection::vec(any::<u16>(), n),
        )
            .prop_map(|(start, n, window, lost, dup, keys)| {
                let mut arrivals = vec![(0, false), (1, false)];
                for chunk in (2..n).collect::<Vec<_>>().chunks(window) {
                    let mut w: Vec<usize> = chunk.iter().copied().filter(|&i| !lost[i]).collect();
                    w.sort_by_key(|&i| (keys[i], i));
                    arrivals.extend(w.into_iter().map(|i| (i, dup[i])));
                }
                Stream { start, arrivals }
            })
    })
}

/// Feeds a stream and checks the A.1/A.3 figures after every packet.
fn check_stream(s: &Stream) -> Result<(), TestCaseError> {
    let seq_of = |i: usize| SeqNo((usize::from(s.start) + i) as u16);
    let ext_of = |i: usize| u64::from(s.start) + i as u64;
    let t0 = MonoTime::from_millis(10);
    let mut stats = ReceiveStats::new(seq_of(0), Some(8000), t0);
    let mut now = t0;
    let mut delivered = 0u64;
    let mut unique = 0u64;
    let mut dups = 0u64;
    let mut out_of_order = 0u64;
    let mut highest: Option<usize> = None;
    for (k, &(i, dup)) in s.arrivals.iter().enumerate() {
        let copies = if dup { 2 } else { 1 };
        for copy in 0..copies {
            now = now + Duration::from_millis(20);
            let outcome = stats.on_packet(now, seq_of(i), RtpTs(160 * i as u32), 12, 160);
            delivered += 1;
            let expected_outcome = if k < 2 {
                // k = 0 starts probation, k = 1 completes it.
                if k == 0 {
                    SeqOutcome::Probation
                } else {
                    SeqOutcome::InOrder
                }
            } else if copy == 1 {
                SeqOutcome::Duplicate
            } else if highest.is_some_and(|h| i < h) {
                SeqOutcome::OutOfOrder
            } else {
                SeqOutcome::InOrder
            };
            prop_assert_eq!(
                outcome,
                expected_outcome,
                "packet index {} (arrival {}, copy {})",
                i,
                k,
                copy
            );
            match outcome {
                SeqOutcome::Duplicate => dups += 1,
                SeqOutcome::OutOfOrder => {
                    out_of_order += 1;
                    unique += 1;
                }
                _ => unique += 1,
            }
            highest = highest.max(Some(i));
        }
        if k >= 1 {
            let h = highest.unwrap();
            prop_assert!(stats.is_valid());
            // The extended highest crosses 65 536 exactly when the stream does.
            prop_assert_eq!(stats.ext_highest_seq().0, ext_of(h), "after index {}", i);
            prop_assert_eq!(stats.ext_highest_seq().0 >> 16, ext_of(h) >> 16, "cycles");
            prop_assert_eq!(stats.expected(), h as u64 + 1);
            prop_assert_eq!(stats.cumulative_lost(), h as i64 + 1 - delivered as i64);
        }
    }
    let h = highest.unwrap();
    prop_assert_eq!(
        stats.packets,
        delivered,
        "packetsReceived counts every delivered packet"
    );
    prop_assert_eq!(delivered, unique + dups);
    prop_assert_eq!(stats.duplicates, dups);
    prop_assert_eq!(stats.out_of_order, out_of_order);
    prop_assert_eq!((stats.invalid, stats.restarts), (0, 0));
    // A.3: expected = ext highest − first + 1, lost = expected − received
    // (duplicates count as received, so loss may go negative).
    let expected = ext_of(h) - u64::from(s.start) + 1;
    prop_assert_eq!(stats.expected(), expected);
    prop_assert_eq!(stats.cumulative_lost(), expected as i64 - delivered as i64);
    prop_assert_eq!(
        i64::from(stats.wire_cumulative_lost()),
        (expected as i64 - delivered as i64).clamp(i64::from(CUMULATIVE_LOST_MIN), i64::from(CUMULATIVE_LOST_MAX))
    );
    prop_assert_eq!(stats.ext_highest_seq().wire(), ext_of(h) as u32);
    Ok(())
}

/// Starts within 200 of the wrap, often within a few packets of it.
fn near_wrap() -> impl Strategy<Value = u16> {
    prop_oneof![65_335u16..=65_535, 65_530u16..=65_535]
}

proptest! {
    #![proptest_config(config(48))]

    /// Streams starting within 200 of the wrap, reordered and lossy: the
    /// counts match a direct model in extended sequence space. (A start of
    /// 65535 puts the probation run itself across the wrap.)
    #[test]
    fn sequence_wraparound_with_reordering_and_loss(s in stream(near_wrap(), false)) {
        check_stream(&s)?;
    }

    /// The same with immediate duplicates: counted as received (A.3), as
    /// duplicates, and never advancing the highest.
    #[test]
    fn sequence_wraparound_with_duplicates(s in stream(near_wrap(), true)) {
        check_stream(&s)?;
    }

    /// Anywhere in sequence space (not only near the wrap).
    #[test]
    fn sequence_anywhere(s in stream(0u16..=65_535, true)) {
        check_stream(&s)?;
    }
}

/// The reordering the stream strategy produces (windows of ≤ 50 packets,
/// streams of < 600) stays within A.1's misorder and dropout limits, so
/// every packet is in order, reordered or a duplicate: never invalid.
const _: () = assert!(50 < MAX_MISORDER && 600 < MAX_DROPOUT);

// ------------------------------------ regression: probation across the wrap
//
// Found here (and by the engine fuzz target) against commit ca213eb:
// `ReceiveStats::probation_step` took the lowest probation packet as the
// epoch's base and the packet completing probation as max_seq, but never
// counted a 65535 → 0 wrap between them, so `expected_in_epoch()`
// (`ext + 1 − base`) underflowed u64: a debug-build panic from
// `expected()`, `cumulative_lost()`, `take_interval()` and the engine's
// snapshot; in release `packetsExpected` ≈ 1.8e19 and `packetsLost`
// ≈ −65 536. Fixed in 4e8746c (`self.cycles = u64::from(max < base)`).
// These tests pin the fix.

/// Two in-order packets 65535, 0 at the very start of a stream.
#[test]
fn probation_run_straddling_the_wrap() {
    let t0 = MonoTime::from_millis(0);
    let mut stats = ReceiveStats::new(SeqNo(65_535), Some(8000), t0);
    assert_eq!(
        stats.on_packet(t0, SeqNo(65_535), RtpTs(0), 12, 160),
        SeqOutcome::Probation
    );
    assert_eq!(
        stats.on_packet(MonoTime::from_millis(20), SeqNo(0), RtpTs(160), 12, 160),
        SeqOutcome::InOrder
    );
    assert_eq!(stats.ext_highest_seq().0, 65_536);
    assert_eq!(stats.expected(), 2);
    assert_eq!(stats.cumulative_lost(), 0);
}

/// The first packet seen is 65530, then 0 and 1 pass probation: the epoch
/// starts at 65530 (the lowest), ext highest must be 65 537, expected 8
/// (65530..=65535, 0, 1), received 3, lost 5.
#[test]
fn probation_lowest_before_the_wrap() {
    let t0 = MonoTime::from_millis(0);
    let mut stats = ReceiveStats::new(SeqNo(65_530), Some(8000), t0);
    for (k, seq) in [65_530u16, 0, 1].into_iter().enumerate() {
        stats.on_packet(
            MonoTime::from_millis(20 * k as u64),
            SeqNo(seq),
            RtpTs(160 * k as u32),
            12,
            160,
        );
    }
    assert!(stats.is_valid());
    assert_eq!(stats.ext_highest_seq().0, 65_537);
    assert_eq!(stats.expected(), 8);
    assert_eq!(stats.cumulative_lost(), 5);
}

/// A session whose client sends PCMU-typed packets `seqs` of `ssrc`, the
/// k-th with timestamp k × `ts_step` and `payload` bytes, at `at_ms(k)`:
/// the driver, the session and the verdicts.
fn client_stream(
    ssrc: Ssrc,
    seqs: [u16; 3],
    (ts_step, payload): (u32, usize),
    at_ms: impl Fn(u64) -> u64,
) -> (Driver, SessionId, Vec<Verdict>) {
    let mut engine = Driver::new(EngineConfig::default());
    let id = engine.open_session(MonoTime::ZERO, session_info()).unwrap();
    let verdicts = (0..)
        .zip(seqs)
        .map(|(k, seq)| {
            let pkt = common::rtp_filled(0, seq, ts_step * k as u32, ssrc, payload, 0x5a);
            engine.handle_datagram(MonoTime::from_millis(at_ms(k)), Side::Client, id, &pkt)
        })
        .collect();
    (engine, id, verdicts)
}

/// The same bug through the engine: a client whose first RTP packets are
/// 65535, 0, 1. The snapshot panics in debug builds.
#[test]
fn engine_stream_starting_at_65535() {
    let (engine, id, verdicts) = client_stream(Ssrc(0x1234), [65_535, 0, 1], (160, 160), |k| 20 * k);
    for v in verdicts {
        assert_eq!(v, Verdict::Forward(rtp_middlebox::wire::PacketKind::Rtp));
    }
    let snap = engine.snapshot(MonoTime::from_millis(100), id).unwrap();
    let rtp = snap.side(Side::Client).sources[0].rtp.as_ref().unwrap();
    assert_eq!(
        (rtp.packets_received, rtp.packets_expected, rtp.packets_lost),
        (3, 3, 0)
    );
    assert_eq!(rtp.ext_highest_seq, 65_537);
}

/// The minimal case `engine_never_panics` found (release build, 3000
/// cases): a stream at 1001.. whose first packet had its sequence number
/// corrupted to 64489 (0x03e9 with 0xf8 XORed into the high byte).
/// 1002 − 64489 is 2050 mod 2^16, within MAX_DROPOUT, so probation takes
/// 64489 as the lowest packet, before the wrap. Before the fix the release
/// build reported packetsExpected 18446744073709488131, packetsLost −63488.
#[test]
fn engine_corrupted_first_sequence_number() {
    let (engine, id, _) = client_stream(Ssrc(0x1111_1111), [64_489, 1002, 1003], (960, 20), |_| 1_000);
    let snap = engine.snapshot(MonoTime::from_millis(1_000), id).unwrap();
    let rtp = snap.side(Side::Client).sources[0].rtp.as_ref().unwrap();
    // Whatever the base, expected can never exceed the span 64489..=1003
    // (2051 packets) nor the loss exceed it.
    assert!(rtp.packets_expected <= 2051, "expected {}", rtp.packets_expected);
    assert!((-3..=2051).contains(&rtp.packets_lost), "lost {}", rtp.packets_lost);
}

proptest! {
    #![proptest_config(config(48))]

    /// Streams whose very first packets are reordered too (the first
    /// window shuffled, so probation sees packets out of order), away from
    /// the wrap: no panic, and the figures stay within what any base the
    /// probation logic may pick allows.
    #[test]
    fn reordered_start_away_from_wrap(s in reordered_start_stream(1_000u16..=60_000)) {
        check_reordered_start(&s)?;
    }

    /// The same near the wrap: probation packets straddle 65535 → 0 (the
    /// regression above, in property form).
    #[test]
        fn reordered_start_across_wrap(s in reordered_start_stream(65_480u16..=65_535)) {
        check_reordered_start(&s)?;
    }
}

/// Like [`stream`] but every window, the first included, is shuffled.
fn reordered_start_stream(start: impl Strategy<Value = u16>) -> impl Strategy<Value = Stream> {
    (start, 100usize..400, 2usize..=50).prop_flat_map(|(start, n, window)| {
        (
            Just(start),
            prop::collection::vec(prop::bool::weighted(0.1), n),
            prop::collection::vec(any::<u16>(), n),
        )
            .prop_map(move |(start, lost, keys)| {
                let mut arrivals = Vec::new();
                for chunk in (0..n).collect::<Vec<_>>().chunks(window) {
                    let mut w: Vec<usize> = chunk.iter().copied().filter(|&i| !lost[i]).collect();
                    w.sort_by_key(|&i| (keys[i], i));
                    arrivals.extend(w.into_iter().map(|i| (i, false)));
                }
                Stream { start, arrivals }
            })
    })
}

fn check_reordered_start(s: &Stream) -> Result<(), TestCaseError> {
    prop_assume!(s.arrivals.len() >= 2);
    let seq_of = |i: usize| SeqNo((usize::from(s.start) + i) as u16);
    let first = s.arrivals[0].0;
    let mut stats = ReceiveStats::new(seq_of(first), Some(8000), MonoTime::ZERO);
    let mut now = MonoTime::ZERO;
    // Highest index from the packet that completed probation on: A.1 takes
    // that packet as max_seq, whatever higher ones probation saw before it
    // (RFC 3550 A.1 discards probation packets; so does their maximum here).
    let mut highest_after_probation: Option<usize> = None;
    for &(i, _) in &s.arrivals {
        now = now + Duration::from_millis(20);
        let outcome = stats.on_packet(now, seq_of(i), RtpTs(160 * i as u32), 12, 160);
        prop_assert!(
            !matches!(
                outcome,
                SeqOutcome::Invalid | SeqOutcome::Restarted | SeqOutcome::Duplicate
            ),
            "{:?}",
            outcome
        );
        if outcome != SeqOutcome::Probation {
            highest_after_probation = highest_after_probation.max(Some(i));
        }
    }
    prop_assert_eq!(stats.packets, s.arrivals.len() as u64);
    // A stream that never has two consecutive arrivals never passes
    // probation; nothing more to check then.
    let Some(highest) = highest_after_probation else {
        prop_assert!(!stats.is_valid());
        return Ok(());
    };
    let min_idx = s.arrivals.iter().map(|a| a.0).min().unwrap();
    prop_assert!(stats.is_valid());
    // Low 16 bits: the highest packet since probation passed. The cycle
    // count starts at the epoch's base (RFC 3550 A.1 counts cycles from
    // `init_seq`), so wraps before probation passed are not in it; the
    // bounds on `expected` below pin the cycles relative to the base.
    let ext = stats.ext_highest_seq().0;
    prop_assert_eq!(ext & 0xffff, u64::from(seq_of(highest).0));
    prop_assert!(ext < 2 << 16, "at most one wrap within a stream this short: {}", ext);
    // Whatever base probation picked lies within the stream.
    let expected = stats.expected();
    prop_assert!(
        expected >= 1 && expected <= (highest - min_idx + 1) as u64,
        "expected {}",
        expected
    );
    let lost = stats.cumulative_lost();
    prop_assert!(
        lost <= expected as i64 && lost >= expected as i64 - stats.packets as i64,
        "lost {}",
        lost
    );
    Ok(())
}

// ====================================================== timestamp wraparound

proptest! {
    #![proptest_config(config(64))]

    /// A.8 jitter depends on timestamp differences only: the same packet
    /// timing with every RTP timestamp offset by `k` (mod 2^32, so the
    /// stream wraps past 2^32 somewhere for most k) gives identical values
    /// after every packet; both match a direct model of A.8 computed on
    /// unwrapped 64-bit timestamps.
    #[test]
    fn timestamp_wrap_leaves_jitter_unchanged(
        rate in prop::sample::select(vec![8000u32, 16_000, 48_000, 90_000]),
        ts0 in prop_oneof![any::<u32>(), (u32::MAX - 200_000)..=u32::MAX],
        k in any::<u32>(),
        steps in prop::collection::vec((0u64..60_000_000, 0u32..20_000, any::<bool>()), 2..150),
    ) {
        let t0 = MonoTime::from_millis(5);
        let mut a = ReceiveStats::new(SeqNo(1), Some(rate), t0);
        let mut b = ReceiveStats::new(SeqNo(1), Some(rate), t0);
        let mut now = t0.as_nanos();
        let mut ts: i64 = i64::from(ts0);
        let mut model_j = 0.0f64;
        let mut prev: Option<(u64, i64)> = None;
        for (n, &(dt, dts, backwards)) in steps.iter().enumerate() {
            now += dt;
            // Occasionally a timestamp steps back (B-frames, retransmits).
            ts += if backwards && n > 0 { -i64::from(dts / 4) } else { i64::from(dts) };
            let wire_a = RtpTs(ts as u32);
            let wire_b = RtpTs((ts as u32).wrapping_add(k));
            let seq = SeqNo(1 + n as u16);
            a.on_packet(MonoTime::from_nanos(now), seq, wire_a, 12, 100);
            b.on_packet(MonoTime::from_nanos(now), seq, wire_b, 12, 100);
            prop_assert_eq!(a.jitter_units().unwrap().to_bits(), b.jitter_units().unwrap().to_bits(), "after packet {}", n);
            prop_assert_eq!(a.wire_jitter(), b.wire_jitter());
            if let Some((pn, pts)) = prev {
                let d = (now - pn) as f64 * f64::from(rate) / 1e9 - (ts - pts) as f64;
                model_j += (d.abs() - model_j) / 16.0;
            }
            prev = Some((now, ts));
            let j = a.jitter_units().unwrap();
            prop_assert!((j - model_j).abs() <= 1e-6 * model_j.max(1.0), "A.8 model {} vs {}", model_j, j);
            prop_assert!(j.is_finite() && j >= 0.0);
        }
        prop_assert_eq!(a.max_jitter_secs().map(f64::to_bits), b.max_jitter_secs().map(f64::to_bits));
        prop_assert_eq!(a.mean_jitter_secs().map(f64::to_bits), b.mean_jitter_secs().map(f64::to_bits));
    }
}

/// A deterministic wrap: 8 kHz audio, timestamps 160 apart crossing 2^32,
/// packets 20 ms apart with one 5 ms late: the same jitter as far from
/// the wrap (RFC 3550 A.8 worked example in src/stats/receive.rs).
#[test]
fn timestamp_wrap_worked_example() {
    let run = |ts0: u32| {
        let mut s = ReceiveStats::new(SeqNo(100), Some(8000), MonoTime::ZERO);
        for i in 0..10u32 {
            let late = if i == 5 { 5 } else { 0 };
            let at = MonoTime::from_millis(u64::from(i) * 20 + late);
            s.on_packet(at, SeqNo(100 + i as u16), RtpTs(ts0.wrapping_add(160 * i)), 12, 160);
        }
        s.jitter_units().unwrap()
    };
    let far = run(1_000);
    let wrapping = run(u32::MAX - 400);
    assert_eq!(far.to_bits(), wrapping.to_bits());
    // Packet 5 is 5 ms (40 units) late, packet 6 back on time: D = 40 then
    // −40, so J = 40/16 = 2.5, then 2.5 + (40 − 2.5)/16 = 4.84375, then
    // decays by 15/16 per on-time packet (three more).
    let expected = 4.843_75 * (15.0f64 / 16.0).powi(3);
    assert!((far - expected).abs() < 1e-9, "{far} vs {expected}");
}

// ================================================ signed cumulative loss

proptest! {
    #![proptest_config(config(512))]

    /// Any i64 clamps to the signed 24-bit range, and the wire bits
    /// sign-extend back to the clamped value.
    #[test]
    fn clamp_lost_24_clamps_and_round_trips(x in prop_oneof![
        any::<i64>(),
        i64::from(CUMULATIVE_LOST_MIN) - 1000..=i64::from(CUMULATIVE_LOST_MAX) + 1000,
        -1000i64..=1000,
    ]) {
        let wire = clamp_lost_24(x);
        prop_assert!(wire <= 0xff_ffff, "wire bits {:#x} exceed 24 bits", wire);
        let clamped = x.clamp(i64::from(CUMULATIVE_LOST_MIN), i64::from(CUMULATIVE_LOST_MAX));
        prop_assert_eq!(i64::from(sign_extend_24(wire)), clamped);
        if (i64::from(CUMULATIVE_LOST_MIN)..=i64::from(CUMULATIVE_LOST_MAX)).contains(&x) {
            prop_assert_eq!(i64::from(sign_extend_24(wire)), x, "in range: exact round trip");
        } else if x > 0 {
            prop_assert_eq!(wire, 0x7f_ffff);
        } else {
            prop_assert_eq!(wire, 0x80_0000);
        }
    }

    /// Every 24-bit pattern sign-extends into range and re-encodes to
    /// itself; the top byte of the input is ignored.
    #[test]
    fn sign_extend_24_round_trips(v in any::<u32>()) {
        let x = sign_extend_24(v);
        prop_assert!((CUMULATIVE_LOST_MIN..=CUMULATIVE_LOST_MAX).contains(&x));
        prop_assert_eq!(sign_extend_24(v & 0xff_ffff), x);
        prop_assert_eq!(clamp_lost_24(i64::from(x)), v & 0xff_ffff);
        // Negative exactly when bit 23 is set.
        prop_assert_eq!(x < 0, v & 0x80_0000 != 0);
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Report blocks with any field values survive write → walk, with the
    /// loss clamped; the independent rtc-rtcp parser agrees (reading the
    /// loss as unsigned 24 bits, see tests/rtcp_fixtures.rs).
    #[test]
    fn report_blocks_round_trip(
        sender in any::<u32>(),
        sr in any::<Option<(u64, u32, u32, u32)>>(),
        blocks in prop::collection::vec(
            (any::<u32>(), any::<u8>(), any::<i32>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
            0..=31,
        ),
    ) {
        let blocks: Vec<ReportBlock> = blocks
            .into_iter()
            .map(|(ssrc, fraction_lost, lost, ext, jitter, lsr, dlsr)| ReportBlock {
                ssrc: Ssrc(ssrc),
                fraction_lost,
                cumulative_lost: lost,
                ext_highest_seq: ext,
                jitter,
                lsr: CompactNtp(lsr),
                dlsr: Delay16(dlsr),
            })
            .collect();
        let mut out = Vec::new();
        match sr {
            Some((ntp, rtp_ts, packet_count, octet_count)) => write_sender_report(
                &mut out,
                Ssrc(sender),
                &SenderInfo { ntp: NtpTime(ntp), rtp_ts, packet_count, octet_count },
                &blocks,
            ),
            None => write_receiver_report(&mut out, Ssrc(sender), &blocks),
        }
        let packets: Vec<_> = walk(&out).collect::<Result<_, _>>().map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(packets.len(), 1);
        let parsed: Vec<ReportBlock> = match &packets[0] {
            RtcpPacket::SenderReport(p) => {
                prop_assert_eq!(p.sender, Ssrc(sender));
                p.report_blocks().collect()
            }
            RtcpPacket::ReceiverReport(p) => {
                prop_assert_eq!(p.sender, Ssrc(sender));
                p.report_blocks().collect()
            }
            other => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        };
        prop_assert_eq!(parsed.len(), blocks.len());
        for (a, b) in blocks.iter().zip(&parsed) {
            let clamped = i64::from(a.cumulative_lost)
                .clamp(i64::from(CUMULATIVE_LOST_MIN), i64::from(CUMULATIVE_LOST_MAX)) as i32;
            prop_assert_eq!(*b, ReportBlock { cumulative_lost: clamped, ..*a });
        }
        // Independent parser.
        let mut buf: &[u8] = &out;
        let theirs = ::rtcp::packet::unmarshal(&mut buf).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let reports = if sr.is_some() {
            let t = theirs[0].as_any().downcast_ref::<::rtcp::sender_report::SenderReport>().unwrap();
            prop_assert_eq!(t.ssrc, sender);
            t.reports.clone()
        } else {
            let t = theirs[0].as_any().downcast_ref::<::rtcp::receiver_report::ReceiverReport>().unwrap();
            prop_assert_eq!(t.ssrc, sender);
            t.reports.clone()
        };
        prop_assert_eq!(reports.len(), parsed.len());
        for (ours, t) in parsed.iter().zip(&reports) {
            prop_assert_eq!(t.ssrc, ours.ssrc.0);
            prop_assert_eq!(t.fraction_lost, ours.fraction_lost);
            prop_assert_eq!(sign_extend_24(t.total_lost), ours.cumulative_lost);
            prop_assert_eq!(t.last_sequence_number, ours.ext_highest_seq);
            prop_assert_eq!(t.jitter, ours.jitter);
            prop_assert_eq!(t.last_sender_report, ours.lsr.0);
            prop_assert_eq!(t.delay, ours.dlsr.0);
        }
    }
}

// ============================================================ fraction lost

proptest! {
    #![proptest_config(config(64))]

    /// Per-interval loss (A.3) against a model: a stream with losses and
    /// duplicates, intervals cut at random packets. Fraction is
    /// floor(lost·256/expected) (capped at 255), 0 when lost ≤ 0; the
    /// intervals' losses add up to the cumulative loss.
    #[test]
    fn fraction_lost_per_interval(
        start in 0u16..=65_535,
        steps in prop::collection::vec((
            prop_oneof![8 => Just(0u16), 2 => 1u16..4, 1 => 4u16..300],
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.15),
        ), 2..400),
    ) {
        let t0 = MonoTime::from_millis(1);
        let mut stats = ReceiveStats::new(SeqNo(start), Some(90_000), t0);
        let mut ext = u64::from(start); // next extended sequence number to send
        let mut received_total = 0u64; // every packet counted since probation began
        let mut prior = (0u64, 0u64); // (expected, received) at the last cut
        let mut lost_sum = 0i64;
        for (n, &(gap, dup, cut)) in steps.iter().enumerate() {
            // The first two packets are consecutive so probation completes.
            if n >= 2 {
                ext += u64::from(gap);
            }
            let seq = SeqNo(ext as u16);
            let copies = if dup && n >= 2 { 2 } else { 1 };
            for _ in 0..copies {
                stats.on_packet(t0 + Duration::from_millis(n as u64 * 10), seq, RtpTs(0), 12, 100);
                received_total += 1;
            }
            let highest = ext;
            ext += 1;
            if cut {
                let valid = n >= 1;
                let expected_total = if valid { highest - u64::from(start) + 1 } else { 0 };
                let recv_total = if valid { received_total } else { 0 };
                let e = expected_total - prior.0;
                let r = recv_total - prior.1;
                prior = (expected_total, recv_total);
                let lost = e as i64 - r as i64;
                let model_fraction = if e == 0 || lost <= 0 {
                    0
                } else {
                    ((lost as u64 * 256) / e).min(255) as u8
                };
                let got = stats.take_interval();
                prop_assert_eq!(got.expected, e, "interval expected at packet {}", n);
                prop_assert_eq!(got.received, r, "interval received at packet {}", n);
                prop_assert_eq!(got.lost, lost);
                prop_assert_eq!(got.fraction, model_fraction, "fraction at packet {}", n);
                if lost <= 0 {
                    prop_assert_eq!(got.fraction, 0);
                }
                lost_sum += got.lost;
            }
        }
        // Close the last interval: the intervals add up to the cumulative figures.
        let last = stats.take_interval();
        lost_sum += last.lost;
        prop_assert_eq!(lost_sum, stats.cumulative_lost());
        prop_assert_eq!(stats.cumulative_lost(), stats.expected() as i64 - received_total as i64);
        // An interval with nothing new is empty.
        prop_assert_eq!(stats.take_interval(), Default::default());
    }

    /// Intervals containing only duplicates: lost < 0, fraction 0.
    #[test]
    fn fraction_zero_for_duplicate_only_interval(start in 0u16..=65_535, dups in 1usize..50) {
        let t0 = MonoTime::ZERO;
        let mut stats = ReceiveStats::new(SeqNo(start), None, t0);
        stats.on_packet(t0, SeqNo(start), RtpTs(0), 12, 0);
        stats.on_packet(t0, SeqNo(start.wrapping_add(1)), RtpTs(0), 12, 0);
        stats.take_interval();
        for _ in 0..dups {
            stats.on_packet(t0, SeqNo(start.wrapping_add(1)), RtpTs(0), 12, 0);
        }
        let i = stats.take_interval();
        prop_assert_eq!((i.expected, i.received, i.lost, i.fraction), (0, dups as u64, -(dups as i64), 0));
        prop_assert_eq!(stats.cumulative_lost(), -(dups as i64));
        prop_assert_eq!(stats.wire_cumulative_lost(), -(dups as i32));
    }
}

// ================================================================ RTT

/// An SR whose compact NTP time is exactly 0 cannot be answered: LSR 0
/// means "no SR received yet" (RFC 3550 §6.4.1), so the matcher rightly
/// rejects it (`RttReject::NoLsr`). Such an SR falls exactly on the compact
/// wrap these properties center on (proptest found one), so nudge it by
/// one compact unit (15 µs) to keep it answerable.
fn nonzero_compact(ntp: NtpTime) -> NtpTime {
    if ntp.compact().0 == 0 {
        NtpTime(ntp.0 + (1 << 16))
    } else {
        ntp
    }
}

/// NTP time `base + since` as a 64-bit NTP timestamp.
fn ntp_at(base: NtpTime, since: Duration) -> NtpTime {
    let units = (since.as_nanos() << 32) / 1_000_000_000;
    NtpTime(base.0.wrapping_add(units as u64))
}

proptest! {
    #![proptest_config(config(64))]

    /// SRs forwarded every 0.5–5 s whose NTP seconds run through xxxx_FFFF
    /// → xxxx_0000+1, so their compact (middle 32 bit) times wrap from
    /// 0xFFFF_xxxx to 0x0000_xxxx: each still matches its report block and
    /// gives the exact RTT.
    #[test]
    fn compact_ntp_wrap_in_sent_log(
        hi in any::<u16>(),
        before in 0u64..6_000,          // ms before the middle-32 wrap of the first SR
        frac in any::<u32>(),
        gaps in prop::collection::vec(500u64..5_000, 2..8),
        answers in prop::collection::vec((0u64..2_000_000_000, 1u32..(20 * 65_536)), 8),
        fwd0 in 0u64..1_000_000_000_000,
    ) {
        // First SR's NTP: seconds ...FFFF minus a few, so the wrap comes within the run.
        let base_secs = (u64::from(hi) << 16 | 0xffff).saturating_sub(before / 1000);
        let base = NtpTime(base_secs << 32 | u64::from(frac));
        let mut log = SentLog::default();
        let mut srs = Vec::new();
        let mut since = Duration::ZERO;
        for gap in std::iter::once(0).chain(gaps.iter().copied()) {
            since += Duration::from_millis(gap);
            let ntp = nonzero_compact(ntp_at(base, since));
            let fwd = MonoTime::from_nanos(fwd0) + since;
            log.record(ntp.compact(), fwd);
            srs.push((ntp, fwd));
        }
        let compacts: Vec<u32> = srs.iter().map(|(n, _)| n.compact().0).collect();
        // Each SR answered (the log holds up to 8, we record at most 8).
        for ((ntp, fwd), &(rtt_ns, dlsr)) in srs.iter().zip(&answers) {
            let dlsr = Delay16(dlsr);
            let rtt = Duration::from_nanos(rtt_ns);
            let arrival = *fwd + rtt + dlsr.to_duration();
            let got = log.match_report(ntp.compact(), dlsr, arrival);
            prop_assert_eq!(got, Ok(rtt), "compacts {:08x?}", compacts);
        }
        // The compact times decrease exactly when the run crosses a change
        // of the NTP bits above the middle 32 (the compact wrap).
        let crossed = srs[0].0 .0 >> 48 != srs[srs.len() - 1].0 .0 >> 48;
        prop_assert_eq!(crossed, compacts.windows(2).any(|w| w[1] < w[0]), "{:08x?}", compacts);
    }

    /// The same through the engine, for both SR→RR (LSR/DLSR) and
    /// XR RRTR→DLRR, across the compact-NTP wrap: every answer gives the
    /// leg's RTT on the answering side.
    #[test]
    fn compact_ntp_wrap_through_engine(
        before_ms in 0u64..4_000,
        frac in any::<u32>(),
        rounds in prop::collection::vec((200u64..3_000, 1u64..500, 1u32..(5 * 65_536)), 3..8),
    ) {
        let base = NtpTime(0x0001_ffff_u64.saturating_sub(before_ms / 1000) << 32 | u64::from(frac));
        let mut engine = Driver::new(EngineConfig::default());
        let mut now = MonoTime::from_millis(1_000);
        let id = engine.open_session(now, session_info()).unwrap();
        let (sender, receiver) = (Ssrc(0xaaaa_0001), Ssrc(0xbbbb_0002));
        let mut since = Duration::ZERO;
        for (n, &(gap_ms, rtt_ms, dlsr_units)) in rounds.iter().enumerate() {
            since += Duration::from_millis(gap_ms);
            now = now + Duration::from_millis(gap_ms);
            let ntp = nonzero_compact(ntp_at(base, since));
            let dlsr = Delay16(dlsr_units);
            let rtt = Duration::from_millis(rtt_ms);

            // Upstream's SR, forwarded toward the client.
            let mut sr = Vec::new();
            write_sender_report(&mut sr, sender, &SenderInfo { ntp, ..Default::default() }, &[]);
            prop_assert_eq!(engine.handle_datagram(now, Side::Upstream, id, &sr), Verdict::Forward(rtp_middlebox::wire::PacketKind::Rtcp));
            // The client's RRTR, forwarded upstream.
            let mut rrtr = Vec::new();
            write_xr(&mut rrtr, receiver, Some(ntp), &[]);
            prop_assert_eq!(engine.handle_datagram(now, Side::Client, id, &rrtr), Verdict::Forward(rtp_middlebox::wire::PacketKind::Rtcp));

            // The client answers the SR: RR with LSR/DLSR.
            let arrival = now + rtt + dlsr.to_duration();
            let block = ReportBlock { ssrc: sender, lsr: ntp.compact(), dlsr, ..Default::default() };
            let mut rr = Vec::new();
            write_receiver_report(&mut rr, receiver, &[block]);
            engine.handle_datagram(arrival, Side::Client, id, &rr);
            // Upstream answers the RRTR: DLRR.
            let mut dlrr = Vec::new();
            write_xr(&mut dlrr, sender, None, &[DlrrItem { ssrc: receiver, lrr: ntp.compact(), dlrr: dlsr }]);
            engine.handle_datagram(arrival, Side::Upstream, id, &dlrr);
            now = arrival;

            let snap = engine.snapshot(now, id).unwrap();
            let client = snap.side(Side::Client);
            prop_assert_eq!(client.rtt_sr_rr.measurements, n as u64 + 1);
            prop_assert_eq!(client.rtt_sr_rr.last, Some(rtt.as_secs_f64()), "SR/RR RTT, round {}", n);
            let upstream = snap.side(Side::Upstream);
            prop_assert_eq!(upstream.rtt_xr_dlrr.measurements, n as u64 + 1);
            prop_assert_eq!(upstream.rtt_xr_dlrr.last, Some(rtt.as_secs_f64()), "XR RTT, round {}", n);
        }
        prop_assert_eq!(engine.counters().rtt_samples, 2 * rounds.len() as u64);
        prop_assert_eq!(engine.counters().rtt_rejects, [0; 5]);
    }
}

/// A deterministic compact-NTP wrap: SRs at NTP seconds 0x0001_FFFF.8 and
/// 0x0002_0000.8 have compact times 0xFFFF_8000 and 0x0000_8000.
#[test]
fn compact_ntp_wrap_example() {
    let a = NtpTime(0x0001_ffff_8000_0000);
    let b = NtpTime(0x0002_0000_8000_0000);
    assert_eq!(a.compact(), CompactNtp(0xffff_8000));
    assert_eq!(b.compact(), CompactNtp(0x0000_8000));
    let mut log = SentLog::default();
    log.record(a.compact(), MonoTime::from_millis(10_000));
    log.record(b.compact(), MonoTime::from_millis(11_000));
    // RR for b arrives at 11.530 s with DLSR 0.5 s: 30 ms.
    assert_eq!(
        log.match_report(b.compact(), Delay16(0x8000), MonoTime::from_millis(11_530)),
        Ok(Duration::from_millis(30))
    );
    // RR for a (the older one, before the wrap) at 10.540 s: 40 ms.
    assert_eq!(
        log.match_report(a.compact(), Delay16(0x8000), MonoTime::from_millis(10_540)),
        Ok(Duration::from_millis(40))
    );
}

/// An SR sent exactly on the compact wrap (compact NTP 0) is answered
/// with LSR 0, which RFC 3550 §6.4.1 reserves for "no SR yet": no RTT.
#[test]
fn sr_with_compact_zero_gives_no_rtt() {
    let ntp = NtpTime(0x0002_0000_0000_1234);
    assert_eq!(ntp.compact(), CompactNtp(0));
    let mut log = SentLog::default();
    log.record(ntp.compact(), MonoTime::from_millis(1_000));
    assert_eq!(
        log.match_report(CompactNtp(0), Delay16(1), MonoTime::from_millis(1_100)),
        Err(RttReject::NoLsr)
    );
}

/// What `match_report` must return, computed independently.
fn rtt_oracle(fwd: u64, arrival: u64, lsr: u32, dlsr: u32) -> Result<Duration, RttReject> {
    if lsr == 0 {
        return Err(RttReject::NoLsr);
    }
    if dlsr == 0 {
        return Err(RttReject::ZeroDelay);
    }
    if arrival < fwd {
        return Err(RttReject::Negative);
    }
    let held = arrival - fwd;
    if held > MAX_REPORT_AGE.as_nanos() as u64 {
        return Err(RttReject::Stale);
    }
    let delay = (u64::from(dlsr) * 1_000_000_000) >> 16;
    if held >= delay {
        Ok(Duration::from_nanos(held - delay))
    } else if delay - held <= 31_000 {
        Ok(Duration::ZERO)
    } else {
        Err(RttReject::Negative)
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary (forward time, arrival time, LSR, DLSR): either a
    /// rejection or an RTT no larger than the time the report was away
    /// (a `Duration`, so never negative), exactly as the oracle says.
    #[test]
    fn rtt_never_negative(
        fwd in prop_oneof![any::<u64>(), 0u64..1_000_000_000_000],
        delta in prop_oneof![any::<i64>(), -1_000_000_000i64..70_000_000_000],
        lsr in prop_oneof![Just(0u32), any::<u32>()],
        dlsr in prop_oneof![Just(0u32), any::<u32>(), 0u32..(70 * 65_536)],
    ) {
        let arrival = fwd.saturating_add_signed(delta);
        let mut log = SentLog::default();
        log.record(CompactNtp(lsr), MonoTime::from_nanos(fwd));
        let got = log.match_report(CompactNtp(lsr), Delay16(dlsr), MonoTime::from_nanos(arrival));
        prop_assert_eq!(got, rtt_oracle(fwd, arrival, lsr, dlsr));
        if let Ok(rtt) = got {
            prop_assert!(arrival >= fwd);
            prop_assert!(rtt <= Duration::from_nanos(arrival - fwd));
        }
        // An LSR never forwarded does not match, whatever the times.
        if lsr != 0 && lsr != u32::MAX && dlsr != 0 {
            let other = CompactNtp(lsr.wrapping_add(1));
            prop_assert_eq!(log.match_report(other, Delay16(dlsr), MonoTime::from_nanos(arrival)), Err(RttReject::UnknownLsr));
        }
    }

    /// Consistent inputs — arrival = forward + rtt + DLSR, with the DLSR the
    /// receiver actually held rounded to its 1/65 536 s field and arrival
    /// rounded to the nanosecond — give the true RTT within 2 DLSR units.
    #[test]
    fn rtt_consistent_within_two_units(
        fwd in 0u64..1_000_000_000_000_000,
        rtt_ns in prop_oneof![0u64..100_000, 0u64..5_000_000_000],
        held_ns in 16_000u64..50_000_000_000, // what the receiver held the SR for
        lsr in 1u32..,
    ) {
        // The receiver rounds its holding time to DLSR units (down or to
        // nearest: both within one unit).
        let dlsr = Delay16(((u128::from(held_ns) << 16) / 1_000_000_000) as u32);
        prop_assume!(dlsr.0 > 0);
        let arrival = fwd + rtt_ns + held_ns;
        let mut log = SentLog::default();
        log.record(CompactNtp(lsr), MonoTime::from_nanos(fwd));
        let got = log.match_report(CompactNtp(lsr), dlsr, MonoTime::from_nanos(arrival));
        let rtt = got.map_err(|e| TestCaseError::fail(format!("rejected {e:?}")))?;
        let err = (rtt.as_nanos() as i128 - i128::from(rtt_ns)).abs();
        prop_assert!(err <= 2 * i128::from(DLSR_UNIT_NS), "rtt {:?} vs true {} ns", rtt, rtt_ns);
    }

    /// `rtt_from` is `held − delay`, clamped to zero within 31 µs, else
    /// rejected.
    #[test]
    fn rtt_from_clamps_only_within_slack(held in any::<u64>(), delay in any::<u64>()) {
        let (h, d) = (Duration::from_nanos(held), Duration::from_nanos(delay));
        match rtt_from(h, d) {
            Ok(r) => {
                prop_assert!(r <= h);
                if held >= delay {
                    prop_assert_eq!(r, h - d);
                } else {
                    prop_assert_eq!(r, Duration::ZERO);
                    prop_assert!(delay - held <= 31_000);
                }
            }
            Err(e) => {
                prop_assert_eq!(e, RttReject::Negative);
                prop_assert!(delay > held && delay - held > 31_000);
            }
        }
    }
}

// ============================================================ no panics

fn session_info() -> SessionInfo {
    SessionInfo {
        client: "192.0.2.1:5000".parse().unwrap(),
        upstream: "198.51.100.1:3478".parse().unwrap(),
    }
}

/// A generated RTP packet's shape: anything a sender may set, written by
/// hand (CSRCs 0xc0000000.., `ext_words` words of one-byte extension
/// elements whose lengths need not fit, payload bytes 0x5a, `pad` bytes of
/// padding).
#[derive(Debug, Clone)]
struct RtpShape {
    pt: u8,
    marker: bool,
    csrcs: u8,
    ext_words: Option<u8>,
    payload: usize,
    pad: u8,
}

impl RtpShape {
    fn packet(&self, ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
        let cc = self.csrcs & 0x0f;
        let mut b0 = 0x80 | cc;
        if self.ext_words.is_some() {
            b0 |= 0x10;
        }
        if self.pad > 0 {
            b0 |= 0x20;
        }
        let mut p = vec![b0, (u8::from(self.marker) << 7) | (self.pt & 0x7f)];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        for i in 0..cc {
            p.extend_from_slice(&(0xc000_0000u32 + u32::from(i)).to_be_bytes());
        }
        if let Some(words) = self.ext_words {
            p.extend_from_slice(&[0xbe, 0xde]);
            p.extend_from_slice(&u16::from(words).to_be_bytes());
            for w in 0..words {
                p.extend_from_slice(&[0x10 | (w & 0x0f), 0xaa, 0x00, 0x00]);
            }
        }
        p.extend(std::iter::repeat_n(0x5a, self.payload));
        if self.pad > 0 {
            p.extend(std::iter::repeat_n(0, usize::from(self.pad) - 1));
            p.push(self.pad);
        }
        p
    }
}

const SSRCS: [u32; 4] = [0x1111_1111, 0x2222_2222, 0x3333_3333, 0x4444_4444];

/// One RTCP packet of a generated compound.
#[derive(Debug, Clone)]
enum RtcpPart {
    Sr {
        sender: usize,
        ntp: u64,
        blocks: Vec<BlockGen>,
    },
    Rr {
        sender: usize,
        blocks: Vec<BlockGen>,
    },
    Sdes {
        ssrc: usize,
        cname: Vec<u8>,
    },
    Xr {
        sender: usize,
        rrtr: Option<u64>,
        dlrr: Vec<(usize, bool, u32)>,
    },
    Bye {
        ssrcs: Vec<usize>,
        reason: Option<Vec<u8>>,
    },
    Feedback {
        pt: u8,
        fmt: u8,
        sender: usize,
        media: usize,
        fci_words: Vec<u32>,
    },
}

#[derive(Debug, Clone)]
struct BlockGen {
    about: usize,
    fraction: u8,
    lost: i32,
    ext: u32,
    jitter: u32,
    /// Echo the last NTP sent for `about` (a matchable LSR) or a random one.
    echo_lsr: bool,
    lsr: u32,
    dlsr: u32,
}

fn block_gen() -> impl Strategy<Value = BlockGen> {
    (
        0usize..4,
        any::<u8>(),
        any::<i32>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        any::<u32>(),
        prop_oneof![Just(0u32), 1u32..200_000, any::<u32>()],
    )
        .prop_map(|(about, fraction, lost, ext, jitter, echo_lsr, lsr, dlsr)| BlockGen {
            about,
            fraction,
            lost,
            ext,
            jitter,
            echo_lsr,
            lsr,
            dlsr,
        })
}

fn rtcp_part() -> impl Strategy<Value = RtcpPart> {
    prop_oneof![
        (0usize..4, any::<u64>(), prop::collection::vec(block_gen(), 0..4))
            .prop_map(|(sender, ntp, blocks)| RtcpPart::Sr { sender, ntp, blocks }),
        (0usize..4, prop::collection::vec(block_gen(), 0..4))
            .prop_map(|(sender, blocks)| RtcpPart::Rr { sender, blocks }),
        (0usize..4, prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(ssrc, cname)| RtcpPart::Sdes { ssrc, cname }),
        (
            0usize..4,
            any::<Option<u64>>(),
            prop::collection::vec((0usize..4, any::<bool>(), any::<u32>()), 0..3)
        )
            .prop_map(|(sender, rrtr, dlrr)| RtcpPart::Xr { sender, rrtr, dlrr }),
        (
            prop::collection::vec(0usize..4, 0..3),
            proptest::option::of(prop::collection::vec(any::<u8>(), 0..20))
        )
            .prop_map(|(ssrcs, reason)| RtcpPart::Bye { ssrcs, reason }),
        (
            prop::sample::select(vec![205u8, 206]),
            prop::sample::select(vec![1u8, 2, 3, 4, 5, 15, 31]),
            0usize..4,
            0usize..4,
            prop::collection::vec(any::<u32>(), 0..5)
        )
            .prop_map(|(pt, fmt, sender, media, fci_words)| RtcpPart::Feedback {
                pt,
                fmt,
                sender,
                media,
                fci_words
            }),
    ]
}

/// Last NTP time each SSRC sent in an SR or RRTR, so generated report
/// blocks and DLRRs can echo it and exercise the RTT matcher.
#[derive(Default)]
struct Echo {
    ntp: [Option<u64>; 4],
}

fn build_compound(parts: &[RtcpPart], echo: &mut Echo) -> Vec<u8> {
    let mut out = Vec::new();
    let block = |b: &BlockGen, echo: &Echo| ReportBlock {
        ssrc: Ssrc(SSRCS[b.about]),
        fraction_lost: b.fraction,
        cumulative_lost: b.lost,
        ext_highest_seq: b.ext,
        jitter: b.jitter,
        lsr: CompactNtp(match (b.echo_lsr, echo.ntp[b.about]) {
            (true, Some(n)) => NtpTime(n).compact().0,
            _ => b.lsr,
        }),
        dlsr: Delay16(b.dlsr),
    };
    for part in parts {
        match part {
            RtcpPart::Sr { sender, ntp, blocks } => {
                let blocks: Vec<_> = blocks.iter().map(|b| block(b, echo)).collect();
                let info = SenderInfo {
                    ntp: NtpTime(*ntp),
                    rtp_ts: 1234,
                    packet_count: 10,
                    octet_count: 1000,
                };
                write_sender_report(&mut out, Ssrc(SSRCS[*sender]), &info, &blocks);
                echo.ntp[*sender] = Some(*ntp);
            }
            RtcpPart::Rr { sender, blocks } => {
                let blocks: Vec<_> = blocks.iter().map(|b| block(b, echo)).collect();
                write_receiver_report(&mut out, Ssrc(SSRCS[*sender]), &blocks);
            }
            RtcpPart::Sdes { ssrc, cname } => write_sdes_cname(&mut out, Ssrc(SSRCS[*ssrc]), cname),
            RtcpPart::Xr { sender, rrtr, dlrr } => {
                let items: Vec<DlrrItem> = dlrr
                    .iter()
                    .map(|&(about, echo_it, raw)| DlrrItem {
                        ssrc: Ssrc(SSRCS[about]),
                        lrr: CompactNtp(match (echo_it, echo.ntp[about]) {
                            (true, Some(n)) => NtpTime(n).compact().0,
                            _ => raw,
                        }),
                        dlrr: Delay16(raw & 0x3_ffff),
                    })
                    .collect();
                write_xr(&mut out, Ssrc(SSRCS[*sender]), rrtr.map(NtpTime), &items);
                if let Some(n) = rrtr {
                    echo.ntp[*sender] = Some(*n);
                }
            }
            RtcpPart::Bye { ssrcs, reason } => {
                let at = out.len();
                out.extend_from_slice(&[0x80 | ssrcs.len() as u8, PT_BYE, 0, 0]);
                for &s in ssrcs {
                    out.extend_from_slice(&SSRCS[s].to_be_bytes());
                }
                if let Some(r) = reason {
                    out.push(r.len() as u8);
                    out.extend_from_slice(r);
                }
                while (out.len() - at) % 4 != 0 {
                    out.push(0);
                }
                let words = ((out.len() - at) / 4 - 1) as u16;
                out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
            }
            RtcpPart::Feedback {
                pt,
                fmt,
                sender,
                media,
                fci_words,
            } => {
                let words = (2 + fci_words.len()) as u16;
                out.extend_from_slice(&[0x80 | fmt, *pt]);
                out.extend_from_slice(&words.to_be_bytes());
                out.extend_from_slice(&SSRCS[*sender].to_be_bytes());
                out.extend_from_slice(&SSRCS[*media].to_be_bytes());
                for (i, w) in fci_words.iter().enumerate() {
                    // Make REMB and FIR targets appear sometimes.
                    let w = match (*fmt, i) {
                        (15, 0) if w % 2 == 0 => u32::from_be_bytes(*b"REMB"),
                        (4, 0) => SSRCS[(*w % 4) as usize],
                        _ => *w,
                    };
                    out.extend_from_slice(&w.to_be_bytes());
                }
            }
        }
    }
    out
}

/// How a datagram is made before mutation.
#[derive(Debug, Clone)]
enum Gen {
    Random(Vec<u8>),
    Rtp {
        ssrc: usize,
        /// Sequence step from the stream's previous packet: mostly +1,
        /// sometimes a gap, a step back, a repeat or a big jump.
        step: i32,
        shape: RtpShape,
    },
    Rtcp(Vec<RtcpPart>),
    Stun {
        msg_type: u16,
        tid: [u8; 12],
        attr_words: u8,
    },
}

fn gen() -> impl Strategy<Value = Gen> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..80).prop_map(Gen::Random),
        6 => (
            0usize..4,
            prop_oneof![10 => Just(1i32), 2 => 2i32..20, 1 => -60i32..1, 1 => 3_000i32..40_000],
            prop::sample::select(vec![0u8, 8, 9, 13, 96, 100, 111, 127]),
            any::<bool>(),
            0u8..3,
            proptest::option::of(0u8..3),
            0usize..200,
            prop_oneof![3 => Just(0u8), 1 => 1u8..8],
        )
            .prop_map(|(ssrc, step, pt, marker, csrcs, ext_words, payload, pad)| {
                let shape = RtpShape { pt, marker, csrcs, ext_words, payload, pad };
                Gen::Rtp { ssrc, step, shape }
            }),
        4 => prop::collection::vec(rtcp_part(), 1..4).prop_map(Gen::Rtcp),
        1 => (
            prop::sample::select(vec![0x0001u16, 0x0011, 0x0101, 0x0111, 0x0003]),
            any::<[u8; 12]>(),
            0u8..6
        )
            .prop_map(|(msg_type, tid, attr_words)| Gen::Stun { msg_type, tid, attr_words }),
    ]
}

#[derive(Debug, Clone)]
struct Op {
    upstream: bool,
    /// Virtual time step before the datagram.
    dt_ms: u64,
    gen: Gen,
    /// XOR these bytes in (index taken modulo the length).
    flips: Vec<(Index, u8)>,
    /// Cut the datagram to this fraction of its length.
    truncate: Option<Index>,
    snapshot: bool,
}

fn op() -> impl Strategy<Value = Op> {
    (
        any::<bool>(),
        prop_oneof![3 => 0u64..40, 1 => 40u64..3_000],
        gen(),
        prop_oneof![3 => Just(vec![]), 1 => prop::collection::vec((any::<Index>(), 1u8..), 1..4)],
        prop_oneof![5 => Just(None), 1 => any::<Index>().prop_map(Some)],
        prop::bool::weighted(0.1),
    )
        .prop_map(|(upstream, dt_ms, gen, flips, truncate, snapshot)| Op {
            upstream,
            dt_ms,
            gen,
            flips,
            truncate,
            snapshot,
        })
}

/// Checks a snapshot's invariants and that it serializes.
fn check_snapshot(engine: &Driver, now: MonoTime, id: SessionId) -> Result<(), TestCaseError> {
    let snap = engine
        .snapshot(now, id)
        .ok_or_else(|| TestCaseError::fail("session vanished"))?;
    let json = serde_json::to_string(&snap).map_err(|e| TestCaseError::fail(format!("serialize: {e}")))?;
    prop_assert_eq!(json.as_bytes().first().copied(), Some(0x7b), "a JSON object");
    let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(value.is_object());
    for side in Side::BOTH {
        for src in &snap.side(side).sources {
            if let Some(rtp) = &src.rtp {
                for j in [rtp.jitter, rtp.max_jitter, rtp.mean_jitter].into_iter().flatten() {
                    prop_assert!(j.is_finite() && j >= 0.0, "jitter {}", j);
                }
                prop_assert!(rtp.packets_expected < 1 << 48, "expected {}", rtp.packets_expected);
            }
            if let Some(remote) = &src.remote {
                prop_assert!((0.0..=1.0).contains(&remote.fraction_lost));
                if let Some(rtt) = remote.rtt.last {
                    prop_assert!(rtt >= 0.0 && rtt <= MAX_REPORT_AGE.as_secs_f64());
                }
            }
        }
        for rtt in [&snap.side(side).rtt_sr_rr, &snap.side(side).rtt_xr_dlrr] {
            for v in [rtt.last, rtt.min, rtt.max, rtt.mean].into_iter().flatten() {
                prop_assert!(v >= 0.0 && v <= MAX_REPORT_AGE.as_secs_f64(), "rtt {}", v);
            }
        }
    }
    Ok(())
}

/// Consumes every field a view offers, so lazy iterators run to the end.
fn consume_views(d: &[u8]) {
    for p in walk(d).flatten() {
        match p {
            RtcpPacket::SenderReport(sr) => {
                let _ = sr.report_blocks().count();
            }
            RtcpPacket::ReceiverReport(rr) => {
                let _ = rr.report_blocks().count();
            }
            RtcpPacket::Sdes(s) => {
                for (_, items) in s.chunks() {
                    let _ = items.count();
                }
            }
            RtcpPacket::Bye(b) => {
                let _ = b.ssrcs().count();
            }
            RtcpPacket::Xr(x) => {
                for b in x.blocks() {
                    if let XrBlock::Dlrr(items) = b {
                        let _ = items.count();
                    }
                }
            }
            RtcpPacket::App(_) | RtcpPacket::Feedback(_) | RtcpPacket::Other { .. } => {}
        }
    }
    if let Ok(v) = RtpView::parse(d) {
        let _ = (
            v.seq(),
            v.timestamp(),
            v.ssrc(),
            v.marker(),
            v.payload_type(),
            v.has_padding(),
        );
        let _ = v.csrcs().count();
        let _ = v.extensions().count();
        let _ = (
            v.extension_profile(),
            v.payload().len(),
            v.payload_len(),
            v.header_len(),
        );
        assert!(v.header_len() + v.padding_len() + v.payload_len() == d.len());
    }
    if let Ok(s) = StunView::parse(d) {
        assert_eq!(s.attributes.len() + 20, d.len());
    }
}

fn run_ops(ops: &[Op], idle: bool) -> Result<(), TestCaseError> {
    // Every RTCP mode gets its share of the cases.
    let rtcp_mode = [RtcpMode::Forward, RtcpMode::Auto, RtcpMode::Terminate][ops.len() % 3];
    let config = EngineConfig {
        relays: vec![RelaySettings {
            mode: rtcp_mode,
            ..RelaySettings::default()
        }],
        max_sources_per_side: 3,
        idle_timeout: idle.then(|| Duration::from_secs(2)),
        max_queued_events: 8,
        ..EngineConfig::default()
    };
    let mut engine = Driver::new(config);
    let mut now = MonoTime::from_millis(1_000);
    let mut id = engine.open_session(now, session_info()).unwrap();
    // Sequence/timestamp state per side and SSRC; one stream starts right
    // at the wrap so probation straddles 65535 → 0 (the regression above).
    let mut seq = [[5_000u16, 30_000, 65_530, 65_534], [1_000, 40_000, 65_500, 65_533]];
    let mut ts = [0u32, u32::MAX - 100_000, 7, 1 << 31];
    let mut echo = Echo::default();
    let mut handled = 0u64;
    for op in ops {
        now = now + Duration::from_millis(op.dt_ms);
        let mut d = match &op.gen {
            Gen::Random(b) => b.clone(),
            Gen::Rtp { ssrc, step, shape } => {
                let k = usize::from(op.upstream);
                let next = seq[k][*ssrc].wrapping_add(*step as u16);
                seq[k][*ssrc] = next;
                ts[*ssrc] = ts[*ssrc].wrapping_add(960);
                shape.packet(SSRCS[*ssrc], next, ts[*ssrc])
            }
            Gen::Rtcp(parts) => build_compound(parts, &mut echo),
            Gen::Stun {
                msg_type,
                tid,
                attr_words,
            } => {
                let mut m = msg_type.to_be_bytes().to_vec();
                m.extend_from_slice(&(u16::from(*attr_words) * 4).to_be_bytes());
                m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
                m.extend_from_slice(tid);
                m.extend(std::iter::repeat_n(0x42, usize::from(*attr_words) * 4));
                m
            }
        };
        if !d.is_empty() {
            for (i, x) in &op.flips {
                let at = i.index(d.len());
                d[at] ^= x;
            }
            if let Some(cut) = &op.truncate {
                let keep = cut.index(d.len());
                d.truncate(keep);
            }
        }
        consume_views(&d);
        if engine.session(id).is_none() {
            // Closed by the idle sweep: reopen (exercises slot reuse).
            id = engine.open_session(now, session_info()).unwrap();
        }
        let side = if op.upstream { Side::Upstream } else { Side::Client };
        let before = engine.counters().total_drops();
        match engine.handle_datagram(now, side, id, &d) {
            Verdict::Forward(_) | Verdict::Consumed => prop_assert_eq!(engine.counters().total_drops(), before),
            Verdict::Rewritten(_) => {
                prop_assert_eq!(engine.counters().total_drops(), before);
                // A rewrite only ever removes report blocks: never longer.
                prop_assert!(engine.rewritten().len() <= d.len());
            }
            Verdict::Drop(r) => {
                prop_assert_eq!(engine.counters().total_drops(), before + 1);
                prop_assert!(!r.label().is_empty());
            }
        }
        handled += 1;
        if let Some(deadline) = engine.poll_timeout() {
            if deadline <= now {
                engine.handle_timeout(now);
            }
        }
        while let Some(t) = engine.poll_transmit() {
            // Generated reports are well-formed RTCP compounds.
            prop_assert!(rtp_middlebox::wire::rtcp::walk(&t.datagram).all(|p| p.is_ok()));
        }
        while let Some(ev) = engine.poll_event() {
            if let Event::SessionClosed { snapshot, .. } = ev {
                serde_json::to_string(&snapshot).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
        if op.snapshot && engine.session(id).is_some() {
            check_snapshot(&engine, now, id)?;
        }
    }
    let c = engine.counters();
    let seen: u64 = c.received.iter().map(|k| k.total_packets()).sum();
    prop_assert_eq!(seen, handled, "every datagram is counted once");
    serde_json::to_string(c).map_err(|e| TestCaseError::fail(e.to_string()))?;
    if engine.session(id).is_some() {
        check_snapshot(&engine, now, id)?;
        let fin = engine
            .close_session(now, id)
            .ok_or_else(|| TestCaseError::fail("close"))?;
        serde_json::to_string(&fin).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    // A stale id is refused, not a panic.
    prop_assert!(matches!(
        engine.handle_datagram(now, Side::Client, id, &[0x80, 0, 0, 1]),
        Verdict::Drop(_)
    ));
    Ok(())
}

proptest! {
    #![proptest_config(config(48))]

    /// Random and mutated RTP, RTCP compounds and STUN from both sides,
    /// with increasing virtual time, through `handle_datagram`; the views
    /// parse the same bytes; the snapshot serializes with serde_json.
    #[test]
    fn engine_never_panics(ops in prop::collection::vec(op(), 1..80), idle in any::<bool>()) {
        run_ops(&ops, idle)?;
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Raw bytes through every parser.
    #[test]
    fn parsers_never_panic(d in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        // Plausible first bytes: RTP/RTCP version 2, STUN.
        (prop::sample::select(vec![0x80u8, 0x81, 0x9f, 0xa0, 0xa1, 0xbf, 0x00, 0x01]), prop::collection::vec(any::<u8>(), 0..120))
            .prop_map(|(b0, mut rest)| { rest.insert(0, b0); rest }),
        // RTCP-looking: version 2, RTCP packet type, small length.
        (any::<u8>(), 192u8..=223, 0u8..40, prop::collection::vec(any::<u8>(), 0..160))
            .prop_map(|(b0, pt, words, mut rest)| {
                let mut v = vec![0x80 | (b0 & 0x3f), pt, 0, words];
                v.append(&mut rest);
                v
            }),
    ]) {
        consume_views(&d);
        let _ = rtp_middlebox::wire::classify(&d);
    }
}
