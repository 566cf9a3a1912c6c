//! Flood limits on virtual time: new sessions per source prefix, sessions
//! the upstream never answers, and packets per session side. Established
//! sessions are not affected by floods around them.

use rtp_middlebox::engine::{
    CloseReason, DropReason, Engine, EngineConfig, Event, OpenError, SessionInfo, Side, Verdict,
};
use rtp_middlebox::time::MonoTime;
use std::time::Duration;

fn ms(v: u64) -> MonoTime {
    MonoTime::from_millis(v)
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
    p.resize(172, 0);
    p
}

fn info(client: &str) -> SessionInfo {
    SessionInfo {
        client: client.parse().unwrap(),
        upstream: "198.51.100.1:3478".parse().unwrap(),
    }
}

#[test]
fn new_sessions_are_limited_per_source_prefix() {
    let mut e = Engine::new(EngineConfig {
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
    let mut e = Engine::new(EngineConfig {
        unanswered_timeout: Some(Duration::from_secs(5)),
        idle_timeout: Some(Duration::from_secs(30)),
        ..EngineConfig::default()
    });
    let spoofed = e.open_session(ms(0), info("203.0.113.9:4000")).unwrap();
    let real = e.open_session(ms(0), info("192.0.2.1:5000")).unwrap();
    for t in (0..8000).step_by(20) {
        e.handle_datagram(ms(t), Side::Client, spoofed, &rtp((t / 20) as u16));
        e.handle_datagram(ms(t), Side::Client, real, &rtp((t / 20) as u16));
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
    assert_eq!(e.counters().sessions_unanswered, 1);
}

#[test]
fn a_flooding_session_is_rate_limited_per_side_and_others_flow() {
    let mut e = Engine::new(EngineConfig {
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
    // The other side of the flooding session has its own bucket.
    assert!(matches!(
        e.handle_datagram(ms(1000), Side::Upstream, flood, &rtp(1)),
        Verdict::Forward(_)
    ));
    let drops = e.counters().drops[DropReason::RateLimited.index()];
    assert_eq!(drops, dropped);
}
