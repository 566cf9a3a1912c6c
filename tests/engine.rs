//! Engine behaviour on virtual time: statistics, passive RTT per leg,
//! report blocks in SRs and RRs, encrypted sessions, drops and expiry.

mod common;
use common::{built, ms, report_block, rr, rtp, sender_info, session_on, stun, tap, Driver};

use rtp_middlebox::engine::{DropReason, EngineConfig, Event, RtcpMode, SessionId, SessionInfo, Side, Verdict};
use rtp_middlebox::wire::ntp::{CompactNtp, NtpTime};
use rtp_middlebox::wire::rtcp::{self, ReportBlock};
use rtp_middlebox::wire::rtp::RtpError;
use rtp_middlebox::wire::stun::StunClass;
use rtp_middlebox::wire::{PacketKind, SeqNo, Ssrc};
use std::time::Duration;

const AUDIO: Ssrc = Ssrc(0x1111_1111);
const VIDEO: Ssrc = Ssrc(0x2222_2222);
const CLIENT_RR: Ssrc = Ssrc(0x3333_3333);

/// A tap with the tests' clock rates, at most 4 sources a side.
fn engine() -> (Driver, SessionId) {
    let config = EngineConfig {
        max_sources_per_side: 4,
        ..EngineConfig::default()
    };
    session_on(tap(RtcpMode::Forward, common::rates()), config)
}

fn sr(sender: Ssrc, ntp: NtpTime, blocks: &[ReportBlock]) -> Vec<u8> {
    common::sr(
        sender,
        &sender_info(ntp, 1234, 50, 8000),
        blocks,
        Some(b"sender@example"),
    )
}

/// What the client reports about any source: a quarter lost this
/// interval, −3 cumulative (duplicates), 480 units of jitter.
fn block(ssrc: Ssrc, lsr: CompactNtp, dlsr: Duration) -> ReportBlock {
    report_block(ssrc, (64, -3), 70_000, 480, lsr, dlsr)
}

#[test]
fn loss_jitter_and_counts_from_a_known_sequence() {
    let (mut e, id) = engine();
    // Opus at 48 kHz, 20 ms packets (960 ticks). Sequence 65530.. wraps;
    // 65533 and 2 are lost; 4 arrives twice; 6 arrives before 5.
    let order: [u16; 12] = [65530, 65531, 65532, 65534, 65535, 0, 1, 3, 4, 4, 6, 5];
    for (i, seq) in order.iter().enumerate() {
        let n = u32::from(seq.wrapping_sub(65530));
        // Arrival jitter: every third packet 4 ms late.
        let late = if i % 3 == 2 { 4 } else { 0 };
        let at = ms(1000 + u64::from(n) * 20 + late);
        let v = e.handle_datagram(at, Side::Client, id, &rtp(111, *seq, 960 * n + 7, AUDIO, 100));
        assert_eq!(v, Verdict::Forward(PacketKind::Rtp));
    }
    let snap = e.snapshot(ms(2000), id).unwrap();
    let src = &snap.side(Side::Client).sources[0];
    let r = src.rtp.as_ref().unwrap();
    assert_eq!(r.packets_received, 12);
    // 65530 ..= 6 (extended 65536 + 6): 13 expected.
    assert_eq!(r.packets_expected, 13);
    assert_eq!(
        r.packets_lost, 1,
        "2 lost, 1 duplicate: RFC 3550 A.3 counts expected − received"
    );
    assert_eq!(r.duplicates, 1);
    assert_eq!(r.out_of_order, 1);
    assert_eq!(r.ext_highest_seq, 65536 + 6);
    assert_eq!(r.clock_rate, Some(48_000));
    assert_eq!(r.payload_bytes, 1200);
    assert_eq!(r.header_bytes, 144);
    let j = r.jitter.unwrap();
    assert!(j > 0.0 && j < 0.004, "jitter {j} s");
    assert!(r.max_jitter.unwrap() >= j);
}

#[test]
fn rtt_per_leg_from_forwarded_sr_and_returning_rr() {
    let (mut e, id) = engine();
    // Upstream sends audio and an SR at t=1 s; the proxy forwards it toward
    // the client. The client's RR about it returns at t=1.530 s, having held
    // the SR for 500 ms: the client leg's RTT is 30 ms.
    e.handle_datagram(ms(990), Side::Upstream, id, &rtp(111, 1, 0, AUDIO, 80));
    e.handle_datagram(ms(1010), Side::Upstream, id, &rtp(111, 2, 960, AUDIO, 80));
    let ntp = NtpTime::from_unix(Duration::from_secs(1_700_000_000));
    assert_eq!(
        e.handle_datagram(ms(1000), Side::Upstream, id, &sr(AUDIO, ntp, &[])),
        Verdict::Forward(PacketKind::Rtcp)
    );
    let rr_pkt = rr(CLIENT_RR, &[block(AUDIO, ntp.compact(), Duration::from_millis(500))]);
    assert_eq!(
        e.handle_datagram(ms(1530), Side::Client, id, &rr_pkt),
        Verdict::Forward(PacketKind::Rtcp)
    );

    let snap = e.snapshot(ms(2000), id).unwrap();
    let client_leg = snap.side(Side::Client);
    let rtt = client_leg.rtt_sr_rr.last.unwrap();
    assert!((rtt - 0.030).abs() < 1e-4, "rtt {rtt}");
    assert_eq!(client_leg.rtt_sr_rr.measurements, 1);
    assert_eq!(
        snap.side(Side::Upstream).rtt_sr_rr.measurements,
        0,
        "no sample for the other leg"
    );
    // The report is about the upstream's source: stored on its entry.
    let audio = common::source(&snap, Side::Upstream, AUDIO);
    let remote = audio.remote.as_ref().unwrap();
    assert_eq!(remote.cumulative_lost, -3, "signed 24-bit cumulative loss");
    assert_eq!(remote.fraction_lost, 0.25);
    assert_eq!(
        remote.jitter,
        Some(480.0 / 48_000.0),
        "RTP units converted with the stream's clock"
    );
    assert_eq!(remote.reporter, CLIENT_RR.0);
    assert_eq!(remote.rtt.measurements, 1);
    assert_eq!(audio.sender_report.as_ref().unwrap().packet_count, 50);
}

#[test]
fn every_report_block_counts_including_those_inside_srs() {
    let (mut e, id) = engine();
    let ntp_a = NtpTime::from_unix(Duration::from_secs(1_700_000_000));
    let ntp_v = NtpTime::from_unix(Duration::from_millis(1_700_000_000_250));
    e.handle_datagram(ms(100), Side::Upstream, id, &sr(AUDIO, ntp_a, &[]));
    e.handle_datagram(ms(110), Side::Upstream, id, &sr(VIDEO, ntp_v, &[]));
    // The client answers in an SR of its own carrying two blocks; the
    // second block must be read too (Janus PR #2089 read only the first).
    let blocks = [
        block(AUDIO, ntp_a.compact(), Duration::from_millis(200)),
        block(VIDEO, ntp_v.compact(), Duration::from_millis(150)),
    ];
    e.handle_datagram(
        ms(340),
        Side::Client,
        id,
        &sr(CLIENT_RR, NtpTime::from_unix(Duration::from_secs(5)), &blocks),
    );
    let snap = e.snapshot(ms(400), id).unwrap();
    let rtt_of = |ssrc: Ssrc| {
        common::source(&snap, Side::Upstream, ssrc)
            .remote
            .as_ref()
            .unwrap()
            .rtt
            .last
            .unwrap()
    };
    assert!((rtt_of(AUDIO) - 0.040).abs() < 1e-4);
    assert!((rtt_of(VIDEO) - 0.080).abs() < 1e-4);
    assert_eq!(snap.side(Side::Client).rtt_sr_rr.measurements, 2);
}

#[test]
fn rtt_rejections_are_counted_not_recorded() {
    let (mut e, id) = engine();
    let ntp = NtpTime::from_unix(Duration::from_secs(1_700_000_000));
    e.handle_datagram(ms(100), Side::Upstream, id, &sr(AUDIO, ntp, &[]));
    let cases = [
        block(AUDIO, CompactNtp(0), Duration::from_millis(10)), // no SR yet
        block(AUDIO, ntp.compact(), Duration::ZERO),            // DLSR 0
        block(AUDIO, CompactNtp(0xdead_beef), Duration::from_millis(1)), // unknown
        block(AUDIO, ntp.compact(), Duration::from_secs(5)),    // negative
    ];
    for b in cases {
        e.handle_datagram(ms(200), Side::Client, id, &rr(CLIENT_RR, &[b]));
    }
    let snap = e.snapshot(ms(300), id).unwrap();
    assert_eq!(snap.side(Side::Client).rtt_sr_rr.measurements, 0);
    assert_eq!(snap.side(Side::Client).rtt_sr_rr.last, None);
    assert_eq!(e.counters().rtt_rejects.iter().sum::<u64>(), 4);
    assert_eq!(e.counters().rtt_samples, 0);
}

#[test]
fn xr_rrtr_and_dlrr_give_the_upstream_leg_rtt() {
    let (mut e, id) = engine();
    // The client (a receiver) sends XR RRTR; it is forwarded upstream at
    // t=2 s. The upstream answers with DLRR at t=2.3 s, held 250 ms: the
    // upstream leg's RTT is 50 ms.
    let ntp = NtpTime::from_unix(Duration::from_secs(1_700_000_100));
    let mut xr = Vec::new();
    rtcp::write_xr(&mut xr, CLIENT_RR, Some(ntp), &[]);
    e.handle_datagram(ms(2000), Side::Client, id, &xr);
    let dlrr = common::dlrr(AUDIO, CLIENT_RR, ntp.compact(), Duration::from_millis(250));
    e.handle_datagram(ms(2300), Side::Upstream, id, &dlrr);
    let snap = e.snapshot(ms(2400), id).unwrap();
    let leg = &snap.side(Side::Upstream).rtt_xr_dlrr;
    assert_eq!(leg.measurements, 1);
    assert!((leg.last.unwrap() - 0.050).abs() < 1e-4);
    // The sample is the upstream leg's: it belongs to the DLRR's sender
    // (remote-outbound-rtp of what it sends), not to the RRTR's sender.
    let answerer = common::source(&snap, Side::Upstream, AUDIO);
    assert_eq!(
        answerer.xr_rtt.measurements, 1,
        "remote-outbound-rtp RTT comes from DLRR"
    );
    assert!((answerer.xr_rtt.last.unwrap() - 0.050).abs() < 1e-4);
    assert_eq!(common::source(&snap, Side::Client, CLIENT_RR).xr_rtt.measurements, 0);
}

#[test]
fn srtcp_in_a_dtls_session_is_forwarded_unread() {
    let (mut e, id) = engine();
    // A DTLS handshake record marks the session as SRTP.
    assert_eq!(
        e.handle_datagram(ms(10), Side::Client, id, &[22, 0xfe, 0xfd, 0, 0]),
        Verdict::Forward(PacketKind::Dtls)
    );
    // An SRTCP packet: clear 8-byte header + sender SSRC, then ciphertext,
    // then E|index and a 10-byte tag. Its blocks must not be read.
    let ntp = NtpTime::from_unix(Duration::from_secs(1_700_000_000));
    let mut srtcp = rr(CLIENT_RR, &[block(AUDIO, ntp.compact(), Duration::from_millis(1))]);
    for b in &mut srtcp[8..] {
        *b ^= 0x5a;
    }
    srtcp.extend_from_slice(&[0x80, 0, 0, 1]);
    srtcp.extend_from_slice(&[0xee; 10]);
    assert_eq!(
        e.handle_datagram(ms(20), Side::Client, id, &srtcp),
        Verdict::Forward(PacketKind::Rtcp)
    );
    let snap = e.snapshot(ms(30), id).unwrap();
    assert!(snap.encrypted);
    assert_eq!(snap.side(Side::Client).rtcp_unreadable, 1);
    assert!(
        snap.side(Side::Upstream).sources.is_empty(),
        "nothing learned from ciphertext"
    );
    // Counted by its sender, which stays in clear (RFC 3711 §3.4).
    let sender = common::source(&snap, Side::Client, CLIENT_RR);
    assert_eq!(
        (sender.srtcp_packets, sender.rtp.is_none(), sender.remote.is_none()),
        (1, true, true)
    );
}

#[test]
fn malformed_packets_drop_with_a_reason() {
    let (mut e, id) = engine();
    let cases: [(&[u8], DropReason); 4] = [
        (&[], DropReason::Empty),
        (&[0x80, 0x00, 0x00], DropReason::Rtp(RtpError::TooShort)),
        (
            &[0x8f, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
            DropReason::Rtp(RtpError::CsrcOverrun),
        ),
        (&[0x70, 0x00], DropReason::UnknownProtocol),
    ];
    for (bytes, reason) in cases {
        assert_eq!(e.handle_datagram(ms(1), Side::Client, id, bytes), Verdict::Drop(reason));
        assert_eq!(e.counters().drop_count(reason), 1);
    }
    // RTCP whose first length runs past the datagram.
    let v = e.handle_datagram(ms(1), Side::Upstream, id, &[0x80, 201, 0, 9, 0, 0, 0, 1]);
    assert_eq!(v, Verdict::Drop(DropReason::Rtcp(rtcp::RtcpError::LengthOverrun)));
}

#[test]
fn ssrc_cap_per_side_bounds_state() {
    let (mut e, id) = engine();
    for i in 0..4u32 {
        assert!(matches!(
            e.handle_datagram(ms(1), Side::Client, id, &rtp(0, 1, 0, Ssrc(i), 10)),
            Verdict::Forward(_)
        ));
    }
    // A fifth live SSRC is forwarded unmeasured (never dropped: it is
    // somebody's media); the cap hit is counted.
    assert_eq!(
        e.handle_datagram(ms(1), Side::Client, id, &rtp(0, 1, 0, Ssrc(99), 10)),
        Verdict::Forward(PacketKind::Rtp)
    );
    assert_eq!(e.counters().caps_hit.get(rtp_middlebox::engine::Cap::SourcesPerSide), 1);
    assert!(e
        .snapshot(ms(1), id)
        .unwrap()
        .side(Side::Client)
        .sources
        .iter()
        .all(|s| s.ssrc != 99));
    // Known SSRCs keep flowing; the other side has its own budget.
    assert!(matches!(
        e.handle_datagram(ms(2), Side::Client, id, &rtp(0, 2, 160, Ssrc(0), 10)),
        Verdict::Forward(_)
    ));
    assert!(matches!(
        e.handle_datagram(ms(2), Side::Upstream, id, &rtp(0, 1, 0, Ssrc(99), 10)),
        Verdict::Forward(_)
    ));
}

#[test]
fn idle_sessions_expire_through_the_timeout_and_stale_ids_are_refused() {
    let (mut e, id) = engine();
    e.handle_datagram(ms(5_000), Side::Client, id, &rtp(0, 1, 0, AUDIO, 10));
    while e.poll_event().is_some() {}
    let mut t = ms(5_000);
    // Drive the timer as a runtime would until the session is gone.
    while e.session_count() > 0 {
        t = e.poll_timeout().expect("a live session keeps a timer");
        e.handle_timeout(t);
        assert!(t <= ms(5_000 + 31_000 + 1_000), "expired late: {t:?}");
    }
    assert!(t >= ms(35_000), "expired early: {t:?}");
    match e.poll_event() {
        Some(Event::SessionClosed {
            id: closed, snapshot, ..
        }) => {
            assert_eq!(closed, id);
            assert_eq!(
                snapshot.side(Side::Client).sources[0]
                    .rtp
                    .as_ref()
                    .unwrap()
                    .packets_received,
                1
            );
        }
        other => panic!("expected SessionClosed, got {other:?}"),
    }
    assert_eq!(e.poll_timeout(), None);
    assert_eq!(
        e.handle_datagram(t, Side::Client, id, &rtp(0, 2, 160, AUDIO, 10)),
        Verdict::Drop(DropReason::UnknownSession)
    );
    // The slot is reused by a new session with a new generation.
    let id2 = e.open_session(t, common::info(common::addr("192.0.2.11:1"))).unwrap();
    assert_ne!(id, id2);
    assert!(e.snapshot(t, id).is_none());
}

#[test]
fn session_table_is_bounded() {
    let mut e = Driver::new(EngineConfig {
        max_sessions: 2,
        ..EngineConfig::default()
    });
    let info = SessionInfo {
        client: "192.0.2.1:1".parse().unwrap(),
        upstream: "198.51.100.1:2".parse().unwrap(),
    };
    e.open_session(ms(0), info).unwrap();
    e.open_session(ms(0), info).unwrap();
    assert!(e.open_session(ms(0), info).is_err());
    assert_eq!(e.counters().sessions_refused, 1);
}

#[test]
fn stun_and_feedback_are_forwarded_and_counted() {
    let (mut e, id) = engine();
    assert_eq!(
        e.handle_datagram(ms(1), Side::Client, id, &common::binding_request(7)),
        Verdict::Forward(PacketKind::Stun)
    );
    // Video from upstream, then a PLI and a NACK about it from the client.
    e.handle_datagram(ms(2), Side::Upstream, id, &rtp(96, 10, 0, VIDEO, 1000));
    let pli = built(|o| rtcp::write_pli(o, CLIENT_RR, VIDEO));
    let nack = built(|o| rtcp::write_nack(o, CLIENT_RR, VIDEO, &[SeqNo(9)]));
    assert_eq!(
        e.handle_datagram(ms(3), Side::Client, id, &pli),
        Verdict::Forward(PacketKind::Rtcp)
    );
    assert_eq!(
        e.handle_datagram(ms(4), Side::Client, id, &nack),
        Verdict::Forward(PacketKind::Rtcp)
    );
    let snap = e.snapshot(ms(5), id).unwrap();
    let video = &snap.side(Side::Upstream).sources[0];
    assert_eq!((video.feedback.pli, video.feedback.nack), (1, 1));
}

#[test]
fn stun_transactions_give_the_responders_leg_rtt() {
    let (mut e, id) = engine();
    use StunClass::{ErrorResponse, Indication, Request, SuccessResponse};
    let stun = |class, txid| stun(class, [txid; 12], &[]);
    // A consent check from the client, answered by the upstream 42 ms later:
    // the upstream leg's RTT (works in SRTP sessions, no keys needed).
    e.handle_datagram(ms(1_000), Side::Client, id, &[22, 0xfe, 0xfd, 0, 0]);
    e.handle_datagram(ms(1_000), Side::Client, id, &stun(Request, 1));
    assert_eq!(
        e.handle_datagram(ms(1_042), Side::Upstream, id, &stun(SuccessResponse, 1)),
        Verdict::Forward(PacketKind::Stun)
    );
    // The SFU checks the client: answered 15 ms later (an error response
    // still measures the path).
    e.handle_datagram(ms(2_000), Side::Upstream, id, &stun(Request, 2));
    e.handle_datagram(ms(2_015), Side::Client, id, &stun(ErrorResponse, 2));
    // Not samples: an unsolicited response, a replayed response, a response
    // from the requester's own side, an indication.
    e.handle_datagram(ms(3_000), Side::Upstream, id, &stun(SuccessResponse, 9));
    e.handle_datagram(ms(3_000), Side::Upstream, id, &stun(SuccessResponse, 1));
    e.handle_datagram(ms(3_000), Side::Client, id, &stun(Request, 3));
    e.handle_datagram(ms(3_010), Side::Client, id, &stun(SuccessResponse, 3));
    e.handle_datagram(ms(3_020), Side::Client, id, &stun(Indication, 4));
    // A response after 10 s is stale.
    e.handle_datagram(ms(4_000), Side::Client, id, &stun(Request, 5));
    e.handle_datagram(ms(15_000), Side::Upstream, id, &stun(SuccessResponse, 5));
    let snap = e.snapshot(ms(16_000), id).unwrap();
    assert!(snap.encrypted);
    let up = snap.side(Side::Upstream);
    assert_eq!((up.rtt_stun.measurements, up.stun_responses), (1, 1));
    assert!((up.rtt_stun.last.unwrap() - 0.042).abs() < 1e-9);
    let client = snap.side(Side::Client);
    assert_eq!((client.rtt_stun.measurements, client.stun_responses), (1, 1));
    assert!((client.rtt_stun.last.unwrap() - 0.015).abs() < 1e-9);
}

/// A room with joins and leaves: when the table is full, a source that
/// said BYE or sent no media for 10 s gives its place to a new stream;
/// report blocks about SSRCs the proxy carries no media of take no place.
#[test]
fn ended_and_idle_sources_give_their_place_to_new_streams() {
    let (mut e, id) = engine();
    let client_ssrcs = |e: &Driver, t: u64| -> Vec<u32> {
        let snap = e.snapshot(ms(t), id).unwrap();
        let mut v: Vec<u32> = snap.side(Side::Client).sources.iter().map(|s| s.ssrc).collect();
        v.sort_unstable();
        v
    };
    for i in 0..4u32 {
        e.handle_datagram(ms(0), Side::Client, id, &rtp(0, 1, 0, Ssrc(i), 10));
    }
    // Report blocks from upstream about SSRCs that never sent media here.
    for about in 100..110u32 {
        let block = report_block(Ssrc(about), (0, 0), 1, 0, CompactNtp(0), Duration::ZERO);
        e.handle_datagram(ms(1), Side::Upstream, id, &rr(Ssrc(0x4444_4444), &[block]));
    }
    assert_eq!(client_ssrcs(&e, 1), vec![0, 1, 2, 3]);
    // SSRC 1 leaves (BYE); 2 and 3 keep sending; 0 goes quiet.
    let bye = common::built(|o| rtcp::write_bye(o, &[Ssrc(1)], None));
    e.handle_datagram(ms(100), Side::Client, id, &bye);
    for t in (1_000..12_000).step_by(1_000) {
        let seq = (t / 1_000) as u16 + 1;
        e.handle_datagram(ms(t), Side::Client, id, &rtp(0, seq, 0, Ssrc(2), 10));
        e.handle_datagram(ms(t), Side::Client, id, &rtp(0, seq, 0, Ssrc(3), 10));
    }
    // A new participant takes the BYE'd place at once, the next one the
    // quiet one's (idle 12 s); a third finds no place and is forwarded.
    e.handle_datagram(ms(12_000), Side::Client, id, &rtp(0, 1, 0, Ssrc(50), 10));
    assert_eq!(client_ssrcs(&e, 12_000), vec![0, 2, 3, 50]);
    e.handle_datagram(ms(12_000), Side::Client, id, &rtp(0, 1, 0, Ssrc(51), 10));
    assert_eq!(client_ssrcs(&e, 12_000), vec![2, 3, 50, 51]);
    assert_eq!(
        e.handle_datagram(ms(12_000), Side::Client, id, &rtp(0, 1, 0, Ssrc(52), 10)),
        Verdict::Forward(PacketKind::Rtp)
    );
    assert_eq!(client_ssrcs(&e, 12_000), vec![2, 3, 50, 51]);
}

/// The contract's order: a client's first datagram yields the upstream
/// socket's opening and the session's events before the datagram's own
/// transmit from that socket; its later datagrams yield the transmit alone
/// (the engine's fast slot), and a datagram handed in before the previous
/// one's outputs were drained drops that one's forward, never sends it
/// with the wrong bytes.
#[test]
fn outputs_come_in_the_order_they_were_made() {
    use rtp_middlebox::engine::{Engine, Input, Output, Payload, RelaySettings, SocketRef};
    let upstream: std::net::SocketAddr = "192.0.2.9:4000".parse().unwrap();
    let client: std::net::SocketAddr = "198.51.100.7:5004".parse().unwrap();
    let mut e = Engine::new(EngineConfig {
        relays: vec![RelaySettings {
            upstream: Some(upstream),
            ..RelaySettings::default()
        }],
        ..EngineConfig::default()
    });
    let datagram = |seq| Input::Datagram {
        now: ms(u64::from(seq) * 20),
        socket: SocketRef::Listen { relay: 0, rtcp: false },
        remote: client,
        local: "203.0.113.1:3478".parse().unwrap(),
        bytes: Box::leak(Box::new(common::pcmu(seq, 0x1234))),
    };
    let drain = |e: &mut Engine| {
        let mut names = Vec::new();
        while let Some(o) = e.poll_output() {
            names.push(match o {
                Output::OpenUpstream { upstream: u, .. } => {
                    assert_eq!(u, upstream);
                    "open"
                }
                Output::Event(Event::SessionOpened { .. }) => "opened",
                Output::Event(Event::StreamStarted { .. }) => "stream",
                Output::Event(_) => "event",
                Output::Transmit(t) => {
                    assert_eq!(t.payload, Payload::Received);
                    assert!(matches!(t.socket, SocketRef::Upstream { .. }));
                    assert_eq!(t.destination, upstream);
                    "transmit"
                }
                Output::CloseUpstream { .. } => "close",
                Output::Timeout(_) => break,
            });
        }
        names
    };
    assert_eq!(e.handle_input(datagram(1)), Verdict::Forward(PacketKind::Rtp));
    assert_eq!(drain(&mut e), ["open", "opened", "stream", "transmit"]);
    assert_eq!(e.handle_input(datagram(2)), Verdict::Forward(PacketKind::Rtp));
    assert_eq!(drain(&mut e), ["transmit"]);
    // Not drained: the next input forgets the forward of this one.
    e.handle_input(datagram(3));
    e.handle_input(datagram(4));
    assert_eq!(drain(&mut e), ["transmit"]);
}
