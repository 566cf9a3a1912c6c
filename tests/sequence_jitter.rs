//! RFC 3550 A.1 sequence validation under NACK retransmissions and sender
//! restarts, and A.8 jitter across restarts, timestamp jumps and late
//! packets (`stats::ReceiveStats`, src/stats/receive.rs).
//!
//! Retransmissions here arrive on the media SSRC itself, late, as an SFU
//! that answers NACKs with the original packet does (Janus): hundreds of
//! packets behind the highest at video packet rates.

mod common;
use common::{ms, rtp, session_on, tap};

use rtp_middlebox::engine::{EngineConfig, RtcpMode, Side};
use rtp_middlebox::stats::{ReceiveStats, SeqOutcome};
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::{RtpTs, SeqNo, Ssrc};

/// One packet as it arrives: when (ns), its sequence number and timestamp.
#[derive(Clone, Copy, Debug)]
struct Arrival {
    at_ns: u64,
    seq: u16,
    ts: u32,
}

/// Feeds `arrivals` into a fresh stream at `rate` Hz (100-byte payloads);
/// returns the stats and every packet's outcome.
fn feed(rate: u32, arrivals: &[Arrival]) -> (ReceiveStats, Vec<SeqOutcome>) {
    let first = arrivals[0];
    let mut s = ReceiveStats::new(SeqNo(first.seq), Some(rate), MonoTime::from_nanos(first.at_ns));
    let outcomes = arrivals.iter().map(|a| push(&mut s, a)).collect();
    (s, outcomes)
}

fn push(s: &mut ReceiveStats, a: &Arrival) -> SeqOutcome {
    s.on_packet(MonoTime::from_nanos(a.at_ns), SeqNo(a.seq), RtpTs(a.ts), 12, 100)
}

fn count(outcomes: &[SeqOutcome], which: SeqOutcome) -> usize {
    outcomes.iter().filter(|o| **o == which).count()
}

// ------------------------------------------------ a 6 000 packet/s stream

/// 6 000 packets/s of 90 kHz video: 15 ticks a packet.
const PPS: u64 = 6_000;
const TICKS: u32 = 15;

fn slot_ns(k: u64) -> u64 {
    k * 1_000_000_000 / PPS
}

/// How the lost packets come back.
#[derive(Clone, Copy)]
enum Resend {
    /// Each lost packet `i` right after in-order packet `i + behind`: late
    /// packets interleave with in-order ones.
    Interleaved { behind: usize },
    /// A burst's packets back to back (1 µs apart) right after in-order
    /// packet `burst start + behind`, nothing in between.
    Burst { behind: usize },
}

/// `n` packets at 6 000/s from sequence number `first` (timestamp `ts0`),
/// starting at slot `slot0`. Bursts of `burst` consecutive packets at
/// indices 500, 1000, … up to `n` − 1000 are lost and come back as
/// `resend` says. Returns the arrivals and the number of packets lost
/// (and resent).
fn video_with_resends(
    first: u16,
    ts0: u32,
    slot0: u64,
    n: usize,
    burst: usize,
    resend: Resend,
) -> (Vec<Arrival>, usize) {
    let lost = |i: usize| {
        let start = i - i % 500;
        start >= 500 && start + 1_000 <= n && i % 500 < burst
    };
    let packet = |i: usize, at_ns: u64| Arrival {
        at_ns,
        seq: first.wrapping_add(i as u16),
        ts: ts0.wrapping_add(TICKS * i as u32),
    };
    let mut out = Vec::new();
    let mut resent = 0;
    for i in 0..n {
        let at = slot_ns(slot0 + i as u64);
        if !lost(i) {
            out.push(packet(i, at));
        }
        // The lost packets that come back after packet i.
        let back: Vec<usize> = match resend {
            Resend::Interleaved { behind } => i.checked_sub(behind).filter(|&j| lost(j)).into_iter().collect(),
            Resend::Burst { behind } => match i.checked_sub(behind) {
                Some(j) if lost(j) && (j == 0 || !lost(j - 1)) => (j..j + burst).collect(),
                _ => Vec::new(),
            },
        };
        for (k, j) in back.into_iter().enumerate() {
            out.push(packet(j, at + 1_000 * (k as u64 + 1)));
            resent += 1;
        }
    }
    (out, resent)
}

/// A stream of `n` packets with bursts of 40 lost: resent 600 packets
/// (100 ms) later, beyond the misorder window, never re-syncs: the late
/// packets are rejected one by one, the highest never moves back and the
/// loss stays what was lost.
#[test]
fn retransmissions_600_behind_at_6000_pps_never_resync() {
    for resend in [Resend::Interleaved { behind: 600 }, Resend::Burst { behind: 600 }] {
        let (arrivals, resent) = video_with_resends(1_000, 0, 0, 6_000, 40, resend);
        assert_eq!(resent, 400);
        let (s, outcomes) = feed(90_000, &arrivals);
        assert_eq!(count(&outcomes, SeqOutcome::Restarted), 0);
        assert_eq!((s.restarts, s.invalid, s.out_of_order), (0, 400, 0));
        assert_eq!(s.ext_highest_seq().0, 1_000 + 5_999);
        assert_eq!((s.packets, s.expected(), s.cumulative_lost()), (5_600, 6_000, 400));
    }
}

/// The same resent 300 packets (50 ms) later, within the window that
/// covers retransmissions: late, counted, nothing lost in the end.
#[test]
fn retransmissions_300_behind_are_late_packets() {
    for resend in [Resend::Interleaved { behind: 300 }, Resend::Burst { behind: 300 }] {
        let (arrivals, resent) = video_with_resends(1_000, 0, 0, 6_000, 40, resend);
        let (s, outcomes) = feed(90_000, &arrivals);
        assert_eq!(count(&outcomes, SeqOutcome::OutOfOrder), resent);
        assert_eq!((s.restarts, s.invalid, s.out_of_order, s.duplicates), (0, 0, 400, 0));
        assert_eq!((s.packets, s.expected(), s.cumulative_lost()), (6_000, 6_000, 0));
    }
}

/// A late packet 200 behind at 50 packets/s audio (RFC 3550's own
/// MAX_MISORDER of 100 would reject it, and a second one right behind it
/// would have re-synced the stream 200 packets back).
#[test]
fn late_packet_200_behind_is_out_of_order() {
    let mut arrivals = Vec::new();
    for i in 0..400u16 {
        let at_ns = u64::from(i) * 20_000_000;
        if i != 100 && i != 101 {
            arrivals.push(Arrival {
                at_ns,
                seq: 1_000 + i,
                ts: 160 * u32::from(i),
            });
        }
        if i == 300 || i == 301 {
            let j = i - 200;
            arrivals.push(Arrival {
                at_ns: at_ns + 1_000_000,
                seq: 1_000 + j,
                ts: 160 * u32::from(j),
            });
        }
    }
    let (s, outcomes) = feed(8_000, &arrivals);
    assert_eq!(count(&outcomes, SeqOutcome::OutOfOrder), 2);
    assert_eq!((s.restarts, s.invalid, s.out_of_order), (0, 0, 2));
    assert_eq!((s.packets, s.expected(), s.cumulative_lost()), (400, 400, 0));
}

/// A retransmission of a packet that had arrived (the NACK raced the
/// original) is a duplicate, 300 behind as well as 3 behind.
#[test]
fn spurious_retransmission_300_behind_is_a_duplicate() {
    let mut arrivals: Vec<Arrival> = (0..400u16)
        .map(|i| Arrival {
            at_ns: u64::from(i) * 20_000_000,
            seq: 1_000 + i,
            ts: 160 * u32::from(i),
        })
        .collect();
    let copy = |j: usize, after: &Arrival| Arrival {
        at_ns: after.at_ns + 1_000,
        ..arrivals[j]
    };
    let (late, near) = (copy(50, &arrivals[350]), copy(347, &arrivals[350]));
    arrivals.insert(351, near);
    arrivals.insert(351, late);
    let (s, outcomes) = feed(8_000, &arrivals);
    assert_eq!(
        (outcomes[351], outcomes[352]),
        (SeqOutcome::Duplicate, SeqOutcome::Duplicate)
    );
    assert_eq!((s.duplicates, s.out_of_order, s.invalid), (2, 0, 0));
    assert_eq!((s.packets, s.expected(), s.cumulative_lost()), (402, 400, -2));
}

/// RFC 3550 A.1's restart test is "two sequential packets" after a jump.
/// An in-order packet between them means the old numbers go on: the jump
/// was a stray packet, not a restart.
#[test]
fn in_order_packet_between_two_jumps_resets_the_candidate() {
    let seqs = [100u16, 101, 102, 20_000, 103, 20_001, 104, 20_002];
    let arrivals: Vec<Arrival> = seqs
        .iter()
        .enumerate()
        .map(|(k, &seq)| Arrival {
            at_ns: k as u64 * 20_000_000,
            seq,
            ts: 160 * u32::from(seq),
        })
        .collect();
    let (s, outcomes) = feed(8_000, &arrivals);
    assert_eq!(count(&outcomes, SeqOutcome::Restarted), 0, "{outcomes:?}");
    assert_eq!((s.restarts, s.invalid), (0, 3));
    assert_eq!(s.ext_highest_seq().0, 104);
    assert_eq!((s.packets, s.expected(), s.cumulative_lost()), (5, 5, 0));
}

/// The old numbers: 6 000 packets from 30 000 with resends 600 behind.
fn before_restart() -> (Vec<Arrival>, usize) {
    video_with_resends(30_000, 0, 0, 6_000, 40, Resend::Interleaved { behind: 600 })
}

/// [`before_restart`], then the sender restarts at `new_seq` and carries on
/// with 3 000 packets at 6 000 packets/s, fed at 90 kHz: the statistics,
/// every packet's outcome, where the new run starts among them, and how
/// many old packets were resent.
fn fed_with_restart_to(new_seq: u16) -> (ReceiveStats, Vec<SeqOutcome>, usize, usize) {
    let (mut arrivals, resent) = before_restart();
    let new = video_with_resends(new_seq, 0x4000_0000, 6_000, 3_000, 0, Resend::Interleaved { behind: 0 }).0;
    arrivals.extend(&new);
    let (s, outcomes) = feed(90_000, &arrivals);
    let new_run = outcomes.len() - new.len();
    (s, outcomes, new_run, resent)
}

/// A sender that restarts its sequence *below* the highest (to 25 000,
/// within the reach of late packets: 10 999 back) and
/// carries on at 6 000 packets/s while the old numbers stop: re-synced
/// once, and every packet of the new run counts (none of it is loss).
#[test]
fn backward_restart_at_6000_pps_resyncs_once_old_numbers_stop() {
    let (s, outcomes, new_run, resent) = fed_with_restart_to(25_000);
    let tail = &outcomes[new_run..];
    assert_eq!(count(&outcomes, SeqOutcome::Restarted), 1);
    let at = tail.iter().position(|o| *o == SeqOutcome::Restarted).unwrap();
    // Confirmed within half a second, every later packet in order.
    assert!(at < 3_000, "restart confirmed at packet {at} of the new run");
    assert!(tail[at + 1..].iter().all(|o| *o == SeqOutcome::InOrder));
    assert_eq!(s.restarts, 1);
    assert_eq!(
        s.invalid as usize, resent,
        "only the old epoch's late packets are rejected"
    );
    assert_eq!(s.ext_highest_seq().0, 25_000 + 2_999);
    // Epoch 1: 6000 expected, 400 lost; epoch 2: 3000 of 3000.
    assert_eq!(
        (s.packets, s.expected(), s.cumulative_lost()),
        (5_600 + 3_000, 9_000, 400)
    );
    // The restart is no jitter: packets are on time throughout.
    assert!(s.max_jitter_secs().unwrap() < 1e-4, "{:?}", s.max_jitter_secs());
}

/// The same sender restarting *above* (to 50 000): two sequential packets
/// re-sync, as in RFC 3550 A.1; the first of them is not counted.
#[test]
fn forward_restart_at_6000_pps_resyncs_after_two_packets() {
    let (s, outcomes, new_run, _) = fed_with_restart_to(50_000);
    let tail = &outcomes[new_run..];
    assert_eq!((tail[0], tail[1]), (SeqOutcome::Invalid, SeqOutcome::Restarted));
    assert!(tail[2..].iter().all(|o| *o == SeqOutcome::InOrder));
    assert_eq!((s.restarts, s.invalid), (1, 401));
    assert_eq!(
        (s.packets, s.expected(), s.cumulative_lost()),
        (5_600 + 2_999, 6_000 + 2_999, 400)
    );
    assert!(s.max_jitter_secs().unwrap() < 1e-4, "{:?}", s.max_jitter_secs());
}

/// Two consecutive late packets far behind, with in-order packets before
/// and after but none between them: still no restart backward.
#[test]
fn two_sequential_late_packets_do_not_resync_backward() {
    let mut arrivals: Vec<Arrival> = (0..2_000u16)
        .filter(|i| !(500..502).contains(i))
        .map(|i| Arrival {
            at_ns: slot_ns(u64::from(i)),
            seq: 20_000 + i,
            ts: TICKS * u32::from(i),
        })
        .collect();
    let at = arrivals[1_500].at_ns;
    for (k, j) in [500u16, 501].into_iter().enumerate() {
        let a = Arrival {
            at_ns: at + 1 + k as u64,
            seq: 20_000 + j,
            ts: TICKS * u32::from(j),
        };
        arrivals.insert(1_501 + k, a);
    }
    let (s, _) = feed(90_000, &arrivals);
    assert_eq!((s.restarts, s.invalid), (0, 2));
    assert_eq!((s.packets, s.expected(), s.cumulative_lost()), (1_998, 2_000, 2));
}

// ------------------------------------------------------------------ jitter

/// 50 packets/s of 8 kHz audio from sequence number `seq0`, timestamp
/// `ts0`, from slot `slot0`, `n` packets, all on time.
fn audio(seq0: u16, ts0: u32, slot0: u64, n: u16) -> Vec<Arrival> {
    (0..n)
        .map(|i| Arrival {
            at_ns: (slot0 + u64::from(i)) * 20_000_000,
            seq: seq0.wrapping_add(i),
            ts: ts0.wrapping_add(160 * u32::from(i)),
        })
        .collect()
}

/// A sender restart (sequence and timestamp both start over, here the
/// timestamp 2 s of clock ahead while 20 ms pass) is not jitter: the
/// estimate starts from the new epoch's first packet.
#[test]
fn restart_does_not_inflate_jitter() {
    let mut arrivals = audio(100, 0, 0, 100);
    arrivals.extend(audio(20_000, 160 * 100 + 16_000, 100, 100));
    let (s, _) = feed(8_000, &arrivals);
    assert_eq!(s.restarts, 1);
    for j in [s.jitter_secs(), s.max_jitter_secs(), s.jitter_in_order_secs()] {
        assert!(j.unwrap() < 1e-6, "{j:?}");
    }
}

/// A timestamp step of 10 s (the sender's clock jumped; 2^29 ticks would
/// do too) within an epoch is skipped: more than 5 s of the stream's clock
/// is a discontinuity, not jitter. A 4 s step still counts.
#[test]
fn timestamp_jump_is_not_jitter() {
    for (jump, counts) in [(80_000u32, false), (1 << 29, false), (32_000, true)] {
        let mut arrivals = audio(100, 0, 0, 50);
        arrivals.extend(audio(150, 160 * 50 + jump, 50, 50));
        let (s, _) = feed(8_000, &arrivals);
        assert_eq!((s.restarts, s.invalid), (0, 0));
        for j in [s.max_jitter_secs(), s.jitter_in_order_secs()] {
            let j = j.unwrap();
            if counts {
                // |D| = 4 s: J += 4 s / 16 = 250 ms, then decays 49 times.
                assert!(j > 0.25 * (15.0f64 / 16.0).powi(49) * 0.99, "{jump}: {j}");
            } else {
                assert!(j < 1e-6, "{jump}: {j}");
            }
        }
    }
}

/// Late packets (200 behind, 48 kHz audio at 1 000 packets/s) swing the
/// all-packets estimate, which Wireshark's analysis matches; the estimate
/// a browser reports updates on in-order packets only and stays at zero.
#[test]
fn late_packets_leave_in_order_jitter_at_zero() {
    let mut arrivals = Vec::new();
    let lost = |i: u32| i >= 100 && i % 100 == 0;
    // Ends 20 packets after the last late one, before J decays away.
    for i in 0..1_920u32 {
        let at_ns = u64::from(i) * 1_000_000;
        let packet = |j: u32, at_ns| Arrival {
            at_ns,
            seq: 7_000 + j as u16,
            ts: 48 * j,
        };
        if !lost(i) {
            arrivals.push(packet(i, at_ns));
        }
        if i >= 200 && lost(i - 200) {
            arrivals.push(packet(i - 200, at_ns + 100_000));
        }
    }
    let (s, outcomes) = feed(48_000, &arrivals);
    assert_eq!(count(&outcomes, SeqOutcome::OutOfOrder), 17);
    assert!(s.jitter_secs().unwrap() > 1e-3, "all packets: {:?}", s.jitter_secs());
    assert!(s.max_jitter_secs().unwrap() > 0.01);
    assert!(
        s.jitter_in_order_secs().unwrap() < 1e-9,
        "in order: {:?}",
        s.jitter_in_order_secs()
    );
}

/// Video: five packets a frame, 1 ms apart, all with the frame's
/// timestamp; frames every 40 ms (3 600 ticks at 90 kHz). As libwebrtc's
/// receive statistics do, the in-order estimate takes a sample on the
/// first packet of each frame only (a new timestamp), against the last
/// packet of the frame before: D = 3 240 − 3 600 ticks, so J → 360 ticks.
#[test]
fn in_order_jitter_samples_new_timestamps_only() {
    let mut arrivals = Vec::new();
    for f in 0..200u32 {
        for p in 0..5u32 {
            arrivals.push(Arrival {
                at_ns: u64::from(f) * 40_000_000 + u64::from(p) * 1_000_000,
                seq: (5 * f + p) as u16,
                ts: 3_600 * f,
            });
        }
    }
    let (s, _) = feed(90_000, &arrivals);
    // J after n samples of |D| = 360: 360 · (1 − (15/16)^n), n = 199 frames.
    let model = 360.0 * (1.0 - (15.0f64 / 16.0).powi(199));
    let j = s.jitter_in_order_secs().unwrap() * 90_000.0;
    assert!((j - model).abs() < 1e-6, "{j} vs {model}");
}

// ------------------------------------------------------- through the engine

/// A PCMU client stream whose lost packets come back 200 packets late: the
/// snapshot counts them as out of order, nothing lost, no restart.
#[test]
fn engine_counts_late_retransmissions_as_out_of_order() {
    let (mut e, id) = session_on(tap(RtcpMode::Forward, common::rates()), EngineConfig::default());
    let ssrc = Ssrc(0x5151_5151);
    let send = |e: &mut common::Driver, at: u64, seq: u16| {
        e.handle_datagram(ms(at), Side::Client, id, &rtp(0, seq, 160 * u32::from(seq), ssrc, 160));
    };
    for i in 0..600u16 {
        if i % 50 != 10 {
            send(&mut e, 20 * u64::from(i), i);
        }
        if i >= 210 && (i - 200) % 50 == 10 {
            send(&mut e, 20 * u64::from(i) + 1, i - 200);
            send(&mut e, 20 * u64::from(i) + 2, i - 200 + 1);
        }
    }
    let snap = e.snapshot(ms(20 * 600), id).unwrap();
    let r = common::source(&snap, Side::Client, ssrc).rtp.as_ref().unwrap();
    // Packets 10, 60, …, 360 (8) come back 200 late; 410 … 560 (4) never.
    // Each comes back with its successor (a duplicate of one that came):
    // 588 + 8 + 8 received of 600, 4 lost less 8 duplicates.
    assert_eq!((r.restarts, r.invalid, r.out_of_order, r.duplicates), (0, 0, 8, 8));
    assert_eq!((r.packets_received, r.packets_expected, r.packets_lost), (604, 600, -4));
}
