//! RTCP modes on virtual time: `auto` detects suppressed reports at the
//! right time and stops when they return; generated report blocks carry
//! the statistics of a known packet sequence; intervals stay within RFC
//! 3550 §6.3 bounds; `terminate` strips report blocks into valid
//! compounds and leaves feedback untouched byte for byte.

mod common;
use common::{addr, built, info, ms, tap, Driver, CLIENT as CLIENT_ADDR};

use common::Sent as Transmit;
use rtp_middlebox::engine::{EngineConfig, Event, RtcpMode, SessionId, Side, Verdict};
use rtp_middlebox::stats::ClockRates;
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::ntp::NtpTime;
use rtp_middlebox::wire::rtcp::{self, ReportBlock, RtcpPacket, XrBlock};
use rtp_middlebox::wire::{PacketKind, SeqNo, Ssrc};
use std::collections::BTreeMap;
use std::time::Duration;

const AUDIO: Ssrc = Ssrc(0xA0D1_0000);
const VIDEO: Ssrc = Ssrc(0x71DE_0000);
const CLIENT: Ssrc = Ssrc(0xC11E_0000);

/// A tap in `mode` (VP8 at 90 kHz, no idle timeout), the wall clock set,
/// one session open.
fn engine(mode: RtcpMode) -> (Driver, SessionId) {
    let mut e = Driver::new(EngineConfig {
        relays: vec![tap(mode, ClockRates::new(&BTreeMap::from([(96, 90_000)])))],
        idle_timeout: None,
        ..EngineConfig::default()
    });
    e.set_wall_clock(MonoTime::ZERO, Duration::from_secs(1_700_000_000));
    let id = e.open_session(ms(0), info(addr(CLIENT_ADDR))).unwrap();
    (e, id)
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: Ssrc) -> Vec<u8> {
    common::rtp_filled(pt, seq, ts, ssrc, 100, 0)
}

fn sr(sender: Ssrc, ntp: NtpTime, blocks: &[ReportBlock]) -> Vec<u8> {
    common::sr(sender, &common::sender_info(ntp, 99, 10, 1000), blocks, None)
}

fn rr(sender: Ssrc, about: Ssrc) -> Vec<u8> {
    let b = ReportBlock {
        ssrc: about,
        ..ReportBlock::default()
    };
    common::rr(sender, &[b])
}

/// Drives the engine's timer to `until` with media flowing from upstream
/// every 20 ms (audio) and 33 ms (video); returns every transmit with its
/// time and every event.
fn drive(
    e: &mut Driver,
    id: SessionId,
    from: u64,
    until: u64,
    video: bool,
    seq0: &mut u16,
) -> (Vec<(MonoTime, Transmit)>, Vec<Event>) {
    let mut tx = Vec::new();
    let mut ev = Vec::new();
    let mut t = from;
    while t < until {
        let now = ms(t);
        if t % 20 == 0 {
            let s = *seq0;
            e.handle_datagram(now, Side::Upstream, id, &rtp(0, s, u32::from(s) * 160, AUDIO));
            if video {
                e.handle_datagram(now, Side::Upstream, id, &rtp(96, s, u32::from(s) * 1800, VIDEO));
            }
            *seq0 = s.wrapping_add(1);
        }
        if e.poll_timeout().is_some_and(|d| d <= now) {
            e.handle_timeout(now);
        }
        while let Some(x) = e.poll_transmit() {
            tx.push((now, x));
        }
        while let Some(x) = e.poll_event() {
            ev.push(x);
        }
        t += 1;
    }
    (tx, ev)
}

/// A fresh `engine(mode)` driven from 0 to `until` ms by `drive` (audio and
/// video from upstream, sequence numbers going on from `seq`): the engine,
/// its session, and the transmits and events `drive` returned.
fn driven_engine(
    mode: RtcpMode,
    until: u64,
    seq: &mut u16,
) -> (Driver, SessionId, Vec<(MonoTime, Transmit)>, Vec<Event>) {
    let (mut e, id) = engine(mode);
    let (tx, ev) = drive(&mut e, id, 0, until, true, seq);
    (e, id, tx, ev)
}

/// When each transmit toward the upstream was sent.
fn upstream_send_times(tx: &[(MonoTime, Transmit)]) -> Vec<MonoTime> {
    tx.iter()
        .filter(|(_, t)| t.toward == Side::Upstream)
        .map(|(at, _)| *at)
        .collect()
}

fn blocks_of(datagram: &[u8]) -> Vec<ReportBlock> {
    rtcp::walk(datagram)
        .filter_map(|p| match p.unwrap() {
            RtcpPacket::ReceiverReport(r) => Some(r.report_blocks().collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Runs the timer a millisecond at a time after `t` to the first tick that
/// sends a report upstream: that tick, and its last report upstream.
fn next_upstream_report(e: &mut Driver, mut t: u64) -> (u64, Transmit) {
    loop {
        t += 1;
        e.handle_timeout(ms(t));
        let mut report = None;
        while let Some(x) = e.poll_transmit() {
            if x.toward == Side::Upstream {
                report = Some(x);
            }
        }
        if let Some(x) = report {
            return (t, x);
        }
    }
}

#[test]
fn auto_detects_suppression_on_time_and_stops_when_reports_return() {
    let mut seq = 1000;
    // Video from upstream; the client never reports. Video interval 1 s,
    // suppression after 3 intervals: detection between 3.0 and ~4.5 s.
    let (mut e, id, tx, ev) = driven_engine(RtcpMode::Auto, 6_000, &mut seq);
    let detected: Vec<_> = ev
        .iter()
        .filter(|x| matches!(x, Event::SuppressionDetected { .. }))
        .collect();
    assert_eq!(
        detected.len(),
        1,
        "video detected once; audio (15 s) not yet: {detected:?}"
    );
    assert!(matches!(detected[0], Event::SuppressionDetected { side: Side::Upstream, ssrc, .. } if *ssrc == VIDEO));
    let first = tx.first().expect("reports generated").0;
    assert!(
        first >= ms(3_000) && first <= ms(4_600),
        "first generated RR at {first:?}"
    );
    // Generated reports go toward the upstream (the stream's sender), from
    // the proxy's own SSRC, with a CNAME and an XR RRTR.
    for (_, t) in &tx {
        assert_eq!(t.toward, Side::Upstream);
        let kinds: Vec<u8> = rtcp::walk(&t.datagram)
            .map(|p| p.unwrap().header().packet_type)
            .collect();
        assert_eq!(kinds, vec![rtcp::PT_RR, rtcp::PT_SDES, rtcp::PT_XR]);
        assert_eq!(
            blocks_of(&t.datagram).iter().map(|b| b.ssrc).collect::<Vec<_>>(),
            vec![VIDEO]
        );
    }
    assert_eq!(e.counters().suppression_detected, 1);

    // The client's RR about the video returns: generation stops for it.
    let v = e.handle_datagram(ms(6_000), Side::Client, id, &rr(CLIENT, VIDEO));
    assert_eq!(v, Verdict::Forward(PacketKind::Rtcp), "auto forwards real reports");
    let cleared = std::iter::from_fn(|| e.poll_event())
        .filter(|x| matches!(x, Event::SuppressionCleared { ssrc, .. } if *ssrc == VIDEO))
        .count();
    assert_eq!(cleared, 1);
    assert_eq!(e.counters().suppression_cleared, 1);
    // Audio (5 s interval) becomes suppressed at ≥ 15 s; video is reported
    // by the client every second from now on, so it stays cleared.
    let mut tx2 = Vec::new();
    for k in 0..14 {
        let (tx, _) = drive(&mut e, id, 6_000 + k * 1000, 7_000 + k * 1000, true, &mut seq);
        e.handle_datagram(ms(7_000 + k * 1000), Side::Client, id, &rr(CLIENT, VIDEO));
        tx2.extend(tx);
    }
    let audio_reports: Vec<_> = tx2
        .iter()
        .filter(|(_, t)| blocks_of(&t.datagram).iter().any(|b| b.ssrc == AUDIO))
        .collect();
    let video_reports = tx2
        .iter()
        .filter(|(_, t)| blocks_of(&t.datagram).iter().any(|b| b.ssrc == VIDEO))
        .count();
    assert_eq!(video_reports, 0, "no generation for a stream its receiver reports on");
    assert!(!audio_reports.is_empty(), "audio detected after 15 s");
    assert!(
        audio_reports[0].0 >= ms(15_000),
        "audio detected too early: {:?}",
        audio_reports[0].0
    );
}

#[test]
fn intervals_stay_within_rfc_bounds() {
    let (_, _, tx, _) = driven_engine(RtcpMode::Terminate, 60_000, &mut 1);
    let upstream = upstream_send_times(&tx);
    assert!(upstream.len() > 30);
    for w in upstream.windows(2) {
        let gap = w[1].saturating_since(w[0]);
        // Video leg: Td = 1 s, randomised to [0.5, 1.5] s (§6.3.1); 1 ms of tick granularity.
        assert!(
            gap >= Duration::from_millis(499) && gap <= Duration::from_millis(1501),
            "gap {gap:?}"
        );
    }
    let mean = upstream.last().unwrap().saturating_since(upstream[0]).as_secs_f64() / (upstream.len() - 1) as f64;
    assert!((0.85..1.15).contains(&mean), "mean interval {mean} s");
    // Intervals are not all equal (randomised).
    let gaps: std::collections::BTreeSet<u64> = upstream
        .windows(2)
        .map(|w| w[1].saturating_since(w[0]).as_millis() as u64)
        .collect();
    assert!(gaps.len() > 5);
}

#[test]
fn report_block_fields_equal_the_computed_statistics() {
    let (mut e, id) = engine(RtcpMode::Terminate);
    let ntp = NtpTime::from_unix(Duration::from_secs(1_700_000_010));
    // Audio 20 ms apart; seq 100..=199 with 5 lost, every 4th packet 8 ms late.
    let lost = [110u16, 111, 150, 151, 152];
    let mut sent = 0u64;
    for seq in 100u16..200 {
        if lost.contains(&seq) {
            continue;
        }
        let n = u64::from(seq - 100);
        let late = if n % 4 == 3 { 8 } else { 0 };
        e.handle_datagram(
            ms(100 + n * 20 + late),
            Side::Upstream,
            id,
            &rtp(0, seq, u32::from(seq) * 160, AUDIO),
        );
        sent += 1;
    }
    assert_eq!(sent, 95);
    e.handle_datagram(ms(2_000), Side::Upstream, id, &sr(AUDIO, ntp, &[]));
    let snap = e.snapshot(ms(2_100), id).unwrap();
    let stats = common::source(&snap, Side::Upstream, AUDIO).rtp.clone().unwrap();
    // Run the timer to the next upstream report.
    let (at, x) = next_upstream_report(&mut e, 2_100);
    let b = blocks_of(&x.datagram).into_iter().find(|b| b.ssrc == AUDIO).unwrap();
    assert_eq!(b.cumulative_lost, 5);
    // First interval covers the whole stream: 5 of 100 → (5 << 8) / 100 = 12.
    assert_eq!(b.fraction_lost, 12);
    assert_eq!(b.ext_highest_seq, 199);
    // Jitter in RTP timestamp units (str0m PR #907 wrote µs): the snapshot's
    // seconds × 8000 Hz, truncated.
    assert_eq!(b.jitter, (stats.jitter.unwrap() * 8000.0) as u32);
    assert!(b.jitter > 10 && b.jitter < 64, "jitter {} units", b.jitter);
    assert_eq!(b.lsr, ntp.compact());
    let held = Duration::from_millis(at - 2_000);
    assert!(b.dlsr.to_duration().abs_diff(held) < Duration::from_micros(50));
    // The next interval has no loss: fraction 0 for that interval only,
    // cumulative loss unchanged.
    for seq in 200u16..260 {
        e.handle_datagram(
            ms(at + u64::from(seq - 199) * 20),
            Side::Upstream,
            id,
            &rtp(0, seq, u32::from(seq) * 160, AUDIO),
        );
    }
    let (_, next) = next_upstream_report(&mut e, at);
    let b2 = blocks_of(&next.datagram).into_iter().find(|b| b.ssrc == AUDIO).unwrap();
    assert_eq!((b2.fraction_lost, b2.cumulative_lost), (0, 5));
}

#[test]
fn terminate_strips_blocks_keeps_valid_compounds_and_feedback_bytes() {
    let (mut e, id) = engine(RtcpMode::Terminate);
    let block = ReportBlock {
        ssrc: AUDIO,
        fraction_lost: 3,
        ..ReportBlock::default()
    };
    let ntp = NtpTime::from_unix(Duration::from_secs(1_700_000_000));
    // SR with a block + SDES: forwarded as SR without blocks + the same SDES.
    let mut compound = sr(CLIENT, ntp, &[block]);
    let sdes_at = compound.len();
    rtcp::write_sdes_cname(&mut compound, CLIENT, b"alice");
    assert_eq!(
        e.handle_datagram(ms(10), Side::Client, id, &compound),
        Verdict::Rewritten(PacketKind::Rtcp)
    );
    let out = e.rewritten().to_vec();
    let packets: Vec<_> = rtcp::walk(&out).map(|p| p.unwrap()).collect();
    assert_eq!(packets.len(), 2, "valid compound, every length consistent");
    match packets[0] {
        RtcpPacket::SenderReport(s) => {
            assert_eq!(s.report_blocks().len(), 0);
            assert_eq!(s.info.ntp, ntp);
            assert_eq!(s.sender, CLIENT);
        }
        _ => panic!("first packet must stay the SR"),
    }
    assert_eq!(&out[28..], &compound[sdes_at..], "SDES byte for byte");
    assert_eq!(e.counters().report_blocks_consumed, 1);

    // RR + NACK + PLI + REMB + transport-cc: an empty RR leads, feedback
    // unchanged byte for byte.
    let mut fb = rr(CLIENT, AUDIO);
    let rr_len = fb.len();
    let feedback = built(|o| {
        rtcp::write_nack(o, CLIENT, AUDIO, &[SeqNo(7), SeqNo(8)]);
        rtcp::write_pli(o, CLIENT, VIDEO);
        rtcp::write_remb(o, CLIENT, 717_688, &[VIDEO]);
        // TWCC (transport-cc, FMT 15) with a truncated FCI, passed through.
        rtcp::write_feedback(o, rtcp::PT_RTPFB, 15, CLIENT, VIDEO, &[0, 1, 0, 1, 0, 0, 0, 0]);
    });
    fb.extend_from_slice(&feedback);
    assert_eq!(
        e.handle_datagram(ms(20), Side::Client, id, &fb),
        Verdict::Rewritten(PacketKind::Rtcp)
    );
    let out = e.rewritten().to_vec();
    assert_eq!(
        &out[..8],
        &[0x80, 201, 0, 1, 0xc1, 0x1e, 0, 0],
        "empty RR from the same sender"
    );
    assert_eq!(&out[8..], &feedback[..], "feedback untouched");
    assert!(rtcp::walk(&out).all(|p| p.is_ok()));
    let _ = rr_len;

    // A lone feedback packet (RFC 5506 reduced size) passes unchanged.
    let nack = &feedback[..16];
    assert_eq!(
        e.handle_datagram(ms(30), Side::Client, id, nack),
        Verdict::Forward(PacketKind::Rtcp)
    );
    // RR alone, and RR + XR: nothing left to forward.
    assert_eq!(
        e.handle_datagram(ms(40), Side::Client, id, &rr(CLIENT, AUDIO)),
        Verdict::Consumed
    );
    let mut rr_xr = rr(CLIENT, AUDIO);
    rtcp::write_xr(&mut rr_xr, CLIENT, Some(ntp), &[]);
    assert_eq!(e.handle_datagram(ms(50), Side::Client, id, &rr_xr), Verdict::Consumed);
    // BYE passes (after an empty RR).
    let mut bye = rr(CLIENT, AUDIO);
    rtcp::write_bye(&mut bye, &[CLIENT], None);
    assert_eq!(
        e.handle_datagram(ms(60), Side::Client, id, &bye),
        Verdict::Rewritten(PacketKind::Rtcp)
    );
    assert_eq!(&e.rewritten()[8..], &[0x81, 203, 0, 1, 0xc1, 0x1e, 0, 0]);
}

#[test]
fn terminate_reports_every_ssrc_on_each_leg_and_splits_past_31_blocks() {
    let (mut e, id) = engine(RtcpMode::Terminate);
    // 40 audio SSRCs from the client, 2 from upstream (the engine's
    // per-side cap defaults to 64 SSRCs).
    for (side, first_ssrc, sources) in [(Side::Client, 0x1000, 40u32), (Side::Upstream, 0x9000, 2)] {
        for k in 0..sources {
            for seq in 0..3u16 {
                e.handle_datagram(
                    ms(u64::from(seq) * 20),
                    side,
                    id,
                    &rtp(0, seq, u32::from(seq) * 160, Ssrc(first_ssrc + k)),
                );
            }
        }
    }
    let mut got = BTreeMap::new();
    let mut t = 60;
    while got.len() < 2 && t < 20_000 {
        t += 1;
        e.handle_timeout(ms(t));
        while let Some(x) = e.poll_transmit() {
            got.entry(x.toward).or_insert(x.datagram);
        }
    }
    let to_client = &got[&Side::Client];
    let rrs: Vec<usize> = rtcp::walk(to_client)
        .filter_map(|p| match p.unwrap() {
            RtcpPacket::ReceiverReport(r) => Some(r.report_blocks().len()),
            _ => None,
        })
        .collect();
    assert_eq!(rrs, vec![31, 9], "40 blocks split into two RRs in one compound");
    assert_eq!(blocks_of(&got[&Side::Upstream]).len(), 2);
}

#[test]
fn dlrr_answering_the_proxys_rrtr_gives_the_terminated_legs_rtt() {
    let (mut e, id, tx, _) = driven_engine(RtcpMode::Terminate, 3_000, &mut 1);
    let (sent_at, report) = tx.iter().find(|(_, t)| t.toward == Side::Upstream).unwrap();
    let (own, rrtr) = rtcp::walk(&report.datagram)
        .find_map(|p| match p.unwrap() {
            RtcpPacket::Xr(x) => x.blocks().find_map(|b| match b {
                XrBlock::Rrtr { ntp } => Some((x.sender, ntp)),
                _ => None,
            }),
            _ => None,
        })
        .expect("XR RRTR in the generated report");
    // The upstream holds it 100 ms and answers 140 ms after it left: 40 ms RTT.
    let dlrr = common::dlrr(AUDIO, own, rrtr.compact(), Duration::from_millis(100));
    let answer_at = MonoTime::from_nanos(sent_at.as_nanos() + 140_000_000);
    assert_eq!(
        e.handle_datagram(answer_at, Side::Upstream, id, &dlrr),
        Verdict::Consumed
    );
    let snap = e.snapshot(answer_at, id).unwrap();
    let rtt = snap.side(Side::Upstream).rtt_xr_dlrr.last.unwrap();
    assert!((rtt - 0.040).abs() < 1e-3, "rtt {rtt}");
}

#[test]
fn forward_mode_generates_nothing_and_encrypted_sessions_are_skipped() {
    let mut seq = 1;
    let (_, _, tx, ev) = driven_engine(RtcpMode::Forward, 20_000, &mut seq);
    assert!(tx.is_empty());
    assert!(!ev.iter().any(|x| matches!(x, Event::SuppressionDetected { .. })));

    let (mut e, id) = engine(RtcpMode::Terminate);
    e.handle_datagram(ms(0), Side::Client, id, &[22, 0xfe, 0xfd, 0, 0]); // DTLS: SRTP session
    let (tx, _) = drive(&mut e, id, 0, 5_000, true, &mut seq);
    assert!(tx.is_empty(), "no keys: no SRTCP can be written");
    assert!(e.counters().reports_skipped_encrypted > 0);
}

#[test]
fn a_rewrite_is_sent_in_its_place_between_forwarded_datagrams() {
    let (mut e, id) = engine(RtcpMode::Terminate);
    let ntp = NtpTime::from_unix(Duration::from_secs(1_700_000_000));
    let block = ReportBlock {
        ssrc: AUDIO,
        ..ReportBlock::default()
    };
    let sr_with_block = sr(CLIENT, ntp, &[block]);
    let datagrams = [
        rtp(0, 1, 160, CLIENT),
        sr_with_block.clone(),
        rtp(0, 2, 320, CLIENT),
        rr(CLIENT, AUDIO),
        sr_with_block,
    ];
    let mut verdicts = Vec::new();
    let mut sent = Vec::new();
    for d in &datagrams {
        verdicts.push(e.handle_datagram(ms(5), Side::Client, id, d));
        sent.extend(e.last_sent.drain(..).map(|s| s.datagram.len()));
    }
    assert_eq!(
        verdicts,
        [
            Verdict::Forward(PacketKind::Rtp),
            Verdict::Rewritten(PacketKind::Rtcp),
            Verdict::Forward(PacketKind::Rtp),
            Verdict::Consumed,
            Verdict::Rewritten(PacketKind::Rtcp)
        ]
    );
    assert_eq!(e.rewritten().len(), 28, "SR without its block");
    // In order, one transmit per datagram that goes on; the consumed RR
    // sends nothing.
    assert_eq!(sent, [datagrams[0].len(), 28, datagrams[2].len(), 28]);
    let snap = e.snapshot(ms(6), id).unwrap();
    assert_eq!(
        common::source(&snap, Side::Client, CLIENT)
            .rtp
            .as_ref()
            .unwrap()
            .packets_received,
        2
    );
}

/// Runs the engine a millisecond at a time over [from, until): `media(e, t)`
/// sends what the endpoints send at `t`; returns the reports (time, toward,
/// datagram) and the events.
fn run(
    e: &mut Driver,
    from: u64,
    until: u64,
    mut media: impl FnMut(&mut Driver, u64),
) -> (Vec<(u64, Transmit)>, Vec<Event>) {
    let (mut tx, mut ev) = (Vec::new(), Vec::new());
    for t in from..until {
        media(e, t);
        if e.poll_timeout().is_some_and(|d| d <= ms(t)) {
            e.handle_timeout(ms(t));
        }
        tx.extend(std::iter::from_fn(|| e.poll_transmit()).map(|x| (t, x)));
        ev.extend(std::iter::from_fn(|| e.poll_event()));
    }
    (tx, ev)
}

/// Video packet `t / 20` from upstream every 20 ms.
fn video_at(e: &mut Driver, id: SessionId, t: u64) {
    if t % 20 == 0 {
        let s = (t / 20) as u16;
        e.handle_datagram(ms(t), Side::Upstream, id, &rtp(96, s, u32::from(s) * 1800, VIDEO));
    }
}

fn detections(ev: &[Event]) -> Vec<Ssrc> {
    ev.iter()
        .filter_map(|x| match x {
            Event::SuppressionDetected { ssrc, .. } => Some(*ssrc),
            _ => None,
        })
        .collect()
}

/// Issue 14 item 11: a stream that pauses (a simulcast layer switched off,
/// a removed track) while its receiver rightly stops reporting it is no
/// suppression (RFC 3550 §6.4: receivers report the sources they heard
/// since their last report). When it resumes unreported, detection is
/// timed from the pause's end, not from the receiver's last report.
#[test]
fn auto_a_paused_stream_is_no_suppression() {
    let (mut e, id) = engine(RtcpMode::Auto);
    // 0–2 s: video, reported by the client every second.
    let (tx, ev) = run(&mut e, 0, 2_000, |e, t| {
        video_at(e, id, t);
        if t % 1000 == 999 {
            e.handle_datagram(ms(t), Side::Client, id, &rr(CLIENT, VIDEO));
        }
    });
    assert!(tx.is_empty() && detections(&ev).is_empty());
    // 2–12 s: paused; the client says nothing about it.
    let (tx, ev) = run(&mut e, 2_000, 12_000, |_, _| {});
    assert_eq!(detections(&ev), vec![], "a paused stream is not suppressed");
    assert!(tx.is_empty(), "nothing generated for a paused stream: {}", tx.len());
    // 12 s on: it resumes and the client never reports it: suppression,
    // detected 3 video intervals (3 s) after the first tick that heard it
    // again (that tick is 0.5–1.5 s after the previous one).
    let (tx, ev) = run(&mut e, 12_000, 20_000, |e, t| video_at(e, id, t));
    assert_eq!(detections(&ev), vec![VIDEO]);
    let first = tx.first().expect("generated after the resume").0;
    assert!(
        (15_000..=18_100).contains(&first),
        "first generated report at {first} ms"
    );
}

/// A stream `auto` generates for, then stopped: its blocks stop with it
/// (no frozen counters forever) and resume with its media.
#[test]
fn auto_generated_blocks_stop_with_the_stream() {
    let (mut e, id) = engine(RtcpMode::Auto);
    let (tx, _) = run(&mut e, 0, 6_000, |e, t| video_at(e, id, t));
    assert!(!tx.is_empty(), "suppression detected and reported");
    let (tx, ev) = run(&mut e, 6_000, 20_000, |_, _| {});
    let about_video = |tx: &[(u64, Transmit)]| {
        tx.iter()
            .filter(|(_, x)| blocks_of(&x.datagram).iter().any(|b| b.ssrc == VIDEO))
            .map(|(t, _)| *t)
            .collect::<Vec<_>>()
    };
    // One tick may still cover packets of the last second before the stop.
    let late = about_video(&tx);
    assert!(
        late.iter().all(|t| *t < 7_600),
        "blocks about a stopped stream: {late:?}"
    );
    assert!(detections(&ev).is_empty());
    let (tx, _) = run(&mut e, 20_000, 23_000, |e, t| video_at(e, id, t));
    assert!(about_video(&tx).len() >= 2, "reported again once media returns");
}

/// `terminate` reports only sources heard since the last report: not a
/// source that said BYE, not one that stopped; the others go on.
#[test]
fn terminate_skips_byed_and_stopped_sources() {
    let (mut e, id) = engine(RtcpMode::Terminate);
    let other = Ssrc(0x0B1E_0000);
    let (tx, _) = run(&mut e, 0, 3_000, |e, t| {
        if t % 20 == 0 {
            let s = (t / 20) as u16;
            e.handle_datagram(ms(t), Side::Upstream, id, &rtp(0, s, u32::from(s) * 160, AUDIO));
            e.handle_datagram(ms(t), Side::Upstream, id, &rtp(0, s, u32::from(s) * 160, other));
            video_at(e, id, t);
        }
    });
    let toward_upstream = |tx: &[(u64, Transmit)]| {
        tx.iter()
            .filter(|(_, x)| x.toward == Side::Upstream)
            .map(|(t, x)| (*t, blocks_of(&x.datagram).iter().map(|b| b.ssrc).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    };
    let before = toward_upstream(&tx);
    assert!(
        before.iter().any(|(_, b)| b.len() == 3),
        "all three reported: {before:?}"
    );
    // 3 s: AUDIO says BYE and stops; VIDEO stops without one; `other` goes on.
    let bye = built(|o| rtcp::write_bye(o, &[AUDIO], None));
    e.handle_datagram(ms(3_000), Side::Upstream, id, &bye);
    let (tx, _) = run(&mut e, 3_000, 20_000, |e, t| {
        if t % 20 == 0 {
            let s = (t / 20) as u16;
            e.handle_datagram(ms(t), Side::Upstream, id, &rtp(0, s, u32::from(s) * 160, other));
        }
    });
    let after = toward_upstream(&tx);
    assert!(after.len() >= 3, "reports go on: {after:?}");
    for (t, blocks) in &after {
        assert!(!blocks.contains(&AUDIO), "BYE'd source reported at {t} ms");
        if *t >= 4_600 {
            assert_eq!(blocks, &vec![other], "at {t} ms");
        }
    }
}
