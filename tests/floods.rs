//! Flood limits on virtual time: new sessions per source prefix, sessions
//! the upstream never answers, and packets per session side. Established
//! sessions are not affected by floods around them.

mod common;
use common::{addr, binding_request, ms, Driver};
use rtp_middlebox::engine::RelaySettings;

use rtp_middlebox::engine::{
    Cap, CloseReason, DropReason, EngineConfig, Event, Input, OpenError, Output, RtcpMode, SessionInfo, Side,
    SocketRef, Verdict,
};
use rtp_middlebox::wire::ntp::NtpTime;
use rtp_middlebox::wire::Ssrc;
use std::time::Duration;

fn rtp(seq: u16) -> [u8; 172] {
    common::pcmu(seq, 0xabcd_0001)
}

fn info(client: &str) -> SessionInfo {
    common::info(addr(client))
}

#[test]
fn new_sessions_are_limited_per_source_prefix() {
    let mut e = Driver::new(EngineConfig {
        new_sessions_per_prefix_per_sec: 20,
        ..EngineConfig::default()
    });
    // A spoofed flood from one /24: 1000 new ports in 100 ms.
    let admitted = (0..1000u16)
        .filter(|p| {
            e.admit(
                ms(u64::from(*p) / 10),
                format!("203.0.113.9:{}", 1024 + p).parse().unwrap(),
            )
            .is_ok()
        })
        .count();
    assert!((20..=22).contains(&admitted), "{admitted} admitted from one prefix");
    // Another prefix is unaffected; the flooding one stays limited (at most
    // the fraction of a token left), then recovers with time.
    assert!(e.admit(ms(100), "192.0.2.1:5000".parse().unwrap()).is_ok());
    let more = (0..3)
        .filter(|_| e.admit(ms(101), "203.0.113.77:9".parse().unwrap()).is_ok())
        .count();
    assert!(more <= 1, "{more}");
    assert_eq!(
        e.admit(ms(102), "203.0.113.78:9".parse().unwrap()),
        Err(OpenError::RateLimited)
    );
    assert!(e.admit(ms(1200), "203.0.113.77:9".parse().unwrap()).is_ok());
    let refused = (1000 - admitted) + (3 - more) + 1;
    assert_eq!(e.counters().sessions_rate_limited, refused as u64);
}

#[test]
fn sessions_the_upstream_never_answers_are_evicted_early() {
    let mut e = Driver::new(EngineConfig {
        unanswered_timeout: Some(Duration::from_secs(5)),
        idle_timeout: Some(Duration::from_secs(30)),
        ..EngineConfig::default()
    });
    // Junk that is not media (a spoofed flow), an answered flow, and a
    // one-way media flow (a SIP trunk toward a receiver that never sends
    // anything back).
    let spoofed = e.open_session(ms(0), info("203.0.113.9:4000")).unwrap();
    let real = e.open_session(ms(0), info("192.0.2.1:5000")).unwrap();
    let one_way = e.open_session(ms(0), info("192.0.2.2:5000")).unwrap();
    for t in (0..8000).step_by(20) {
        e.handle_datagram(ms(t), Side::Client, spoofed, &binding_request((t % 200) as u8 + 1));
        e.handle_datagram(ms(t), Side::Client, real, &rtp((t / 20) as u16));
        e.handle_datagram(ms(t), Side::Client, one_way, &rtp((t / 20) as u16));
        if t == 100 {
            e.handle_datagram(ms(t), Side::Upstream, real, &rtp(1));
        }
        e.handle_timeout(ms(t));
    }
    let mut closed = Vec::new();
    while let Some(ev) = e.poll_event() {
        if let Event::SessionClosed { id, reason, .. } = ev {
            closed.push((id, reason));
        }
    }
    assert_eq!(closed, vec![(spoofed, CloseReason::Unanswered)]);
    assert!(e.snapshot(ms(8000), real).is_some(), "the answered session stays");
    assert!(e.snapshot(ms(8000), one_way).is_some(), "a one-way media flow stays");
    assert_eq!(e.counters().sessions_unanswered, 1);
}

/// Under table pressure (90 % full) an unanswered flow goes even when it
/// sends media: spoofed RTP cannot hold the table.
#[test]
fn under_table_pressure_unanswered_media_flows_are_evicted() {
    let mut e = Driver::new(EngineConfig {
        unanswered_timeout: Some(Duration::from_secs(5)),
        max_sessions: 10,
        ..EngineConfig::default()
    });
    let ids: Vec<_> = (0..9)
        .map(|i| {
            e.open_session(ms(0), info(&format!("203.0.113.9:{}", 4000 + i)))
                .unwrap()
        })
        .collect();
    for t in (0..6000).step_by(20) {
        for id in &ids {
            e.handle_datagram(ms(t), Side::Client, *id, &rtp((t / 20) as u16));
        }
        e.handle_timeout(ms(t));
    }
    assert_eq!(e.session_count(), 0);
    assert_eq!(e.counters().sessions_unanswered, 9);
}

#[test]
fn a_flooding_session_is_rate_limited_per_side_and_others_flow() {
    let mut e = Driver::new(EngineConfig {
        max_packets_per_side_per_sec: 100,
        ..EngineConfig::default()
    });
    let flood = e.open_session(ms(0), info("203.0.113.9:4000")).unwrap();
    let calm = e.open_session(ms(0), info("192.0.2.1:5000")).unwrap();
    // 10 000 datagrams in one second on one session; 50/s on the other.
    let mut dropped = 0;
    let mut calm_ok = 0;
    for i in 0..10_000u64 {
        let t = i / 10;
        if let Verdict::Drop(DropReason::RateLimited) = e.handle_datagram(ms(t), Side::Client, flood, &rtp(i as u16)) {
            dropped += 1;
        }
        if i % 200 == 0
            && matches!(
                e.handle_datagram(ms(t), Side::Client, calm, &rtp((i / 200) as u16)),
                Verdict::Forward(_)
            )
        {
            calm_ok += 1;
        }
    }
    let forwarded = 10_000 - dropped;
    assert!(
        (190..=210).contains(&forwarded),
        "{forwarded} forwarded: burst 100 + 100/s"
    );
    assert_eq!(calm_ok, 50, "the calm session is untouched");
    // Announced once (the worker logs it), however many drops follow.
    let announced: Vec<_> = std::iter::from_fn(|| e.poll_event())
        .filter_map(|ev| match ev {
            Event::RateLimited { session, side, per_sec } => Some((session, side, per_sec)),
            _ => None,
        })
        .collect();
    assert_eq!(announced, vec![(flood, Side::Client, 100)]);
    // The other side of the flooding session has its own bucket.
    assert!(matches!(
        e.handle_datagram(ms(1000), Side::Upstream, flood, &rtp(1)),
        Verdict::Forward(_)
    ));
    let drops = e.counters().drops[DropReason::RateLimited.index()];
    assert_eq!(drops, dropped);
}

fn sender_report(ssrc: u32, ntp: u64) -> Vec<u8> {
    common::sr(Ssrc(ssrc), &common::sender_info(NtpTime(ntp), 0, 1, 160), &[], None)
}

/// The bounded tables an attacker can grow count the times their cap
/// refused or evicted something (the prefix table's cap is tested in
/// `engine::admission`, pending rebinding checks' in `tests/rebinding.rs`).
#[test]
fn hard_caps_count_their_hits() {
    let mut e = Driver::new(EngineConfig {
        relays: vec![RelaySettings {
            mode: RtcpMode::Terminate,
            ..RelaySettings::default()
        }],
        max_sessions: 2,
        max_sources_per_side: 2,
        max_queued_events: 4,
        ..EngineConfig::default()
    });
    let id = e.open_session(ms(0), info("192.0.2.1:5000")).unwrap();
    e.open_session(ms(0), info("192.0.2.2:5000")).unwrap();
    assert!(e.open_session(ms(0), info("192.0.2.3:5000")).is_err());
    assert!(e.admit(ms(0), "192.0.2.4:5000".parse().unwrap()).is_err());
    let caps = |e: &Driver, cap| e.counters().caps_hit.get(cap);
    assert_eq!(caps(&e, Cap::SessionTable), 2);

    // A third SSRC on one side.
    for ssrc in 1..=3u32 {
        e.handle_datagram(ms(10), Side::Client, id, &common::pcmu(1, ssrc));
    }
    assert_eq!(caps(&e, Cap::SourcesPerSide), 1);

    // Five unanswered binding requests in 4 ms: the fifth evicts the first
    // (four kept). Ten seconds later the old ones are dead: no more hits.
    for t in 0..5u8 {
        e.handle_datagram(ms(20 + u64::from(t)), Side::Client, id, &binding_request(t + 1));
    }
    assert_eq!(caps(&e, Cap::StunTransactions), 1);
    for t in 0..4u8 {
        e.handle_datagram(ms(11_000 + u64::from(t)), Side::Client, id, &binding_request(t + 10));
    }
    assert_eq!(caps(&e, Cap::StunTransactions), 1);
    // Retransmissions (same transaction id) take no new slot.
    for k in 0..6u64 {
        e.handle_datagram(ms(11_100 + k * 100), Side::Client, id, &binding_request(10));
    }
    assert_eq!(caps(&e, Cap::StunTransactions), 1);

    // An SR flood: 20 SRs of one SSRC in 190 ms; past the eighth each
    // evicts a young entry. One a second evicts nothing young.
    for (start, step, first_ntp) in [(12_000, 10, 1), (13_200, 1000, 100)] {
        for k in 0..20u64 {
            let sr = sender_report(9, (k + first_ntp) << 32);
            e.handle_datagram(ms(start + k * step), Side::Upstream, id, &sr);
        }
        assert_eq!(caps(&e, Cap::RttReportLog), 12);
    }

    // A driver that never drains outputs: the queue stays at its cap (4)
    // and what falls out is counted, events and transmits apart.
    let mut raw = rtp_middlebox::engine::Engine::new(EngineConfig {
        relays: vec![common::relay(RtcpMode::Terminate)],
        max_queued_events: 4,
        ..EngineConfig::default()
    });
    let a = raw.open_session(ms(0), 0, info("192.0.2.1:5000")).unwrap();
    let b = raw.open_session(ms(0), 0, info("192.0.2.2:5000")).unwrap();
    // Two openings (OpenUpstream and SessionOpened each) fill it; closing
    // one pushes two more out.
    raw.close_session(ms(500), b);
    let caps = |e: &rtp_middlebox::engine::Engine, cap| e.counters().caps_hit.get(cap);
    assert_eq!(caps(&raw, Cap::EventQueue), 2);
    assert_eq!(caps(&raw, Cap::EventQueue), raw.counters().events_dropped);
    for t in (1_000..30_000).step_by(20) {
        let p = common::pcmu((t / 20) as u16, 1);
        raw.handle_input(Input::Datagram {
            now: ms(t),
            socket: SocketRef::Listen { relay: 0, rtcp: false },
            remote: "192.0.2.1:5000".parse().unwrap(),
            local: "192.0.2.254:3478".parse().unwrap(),
            bytes: &p,
        });
        raw.handle_input(Input::Timeout(ms(t)));
    }
    let generated = raw.counters().reports_generated;
    assert!(generated > 4, "{generated} reports generated");
    assert!(caps(&raw, Cap::TransmitQueue) >= generated - 4);
    assert_eq!(caps(&raw, Cap::EventQueue), raw.counters().events_dropped);
    let queued = std::iter::from_fn(|| raw.poll_output())
        .take_while(|o| !matches!(o, Output::Timeout(_)))
        .count();
    // At the cap, less the forwarded datagram the timeout input retired
    // (its bytes belong to the driver only until the next input).
    assert_eq!(queued, 3);
    let _ = a;
}
