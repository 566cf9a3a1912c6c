//! The whole observe path: an arbitrary sequence of datagrams through
//! `Engine::handle_datagram` on one or two sessions, with virtual time,
//! timeouts, events and snapshots.
//!
//! Input layout:
//! ```text
//! byte 0        setup: bit 0 = two sessions; bit 1 = idle timeout (2 s);
//!               bits 2..4 = max sources per side − 1 (1..=8, so the cap is hit)
//! then records until the input ends:
//!   flags       bit 0 = side (0 client, 1 upstream); bit 1 = session #2;
//!               bit 2 = call handle_timeout after; bit 3 = snapshot after
//!   advance     virtual time step: 0..=127 → that many ms,
//!               128..=255 → (b − 127) × 250 ms (up to 32 s, past idle)
//!   len         datagram length (clipped to what is left)
//!   bytes       the datagram
//! ```
//! Sessions closed by the idle sweep are reopened on their next datagram,
//! so stale ids (slot reuse, generations) are exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::engine::{Engine, EngineConfig, Event, SessionId, SessionInfo, Side, Verdict};
use rtp_middlebox::time::MonoTime;
use std::time::Duration;

fn info(n: u16) -> SessionInfo {
    SessionInfo {
        client: format!("192.0.2.{}:{}", n + 1, 5000 + n).parse().unwrap(),
        upstream: "198.51.100.1:3478".parse().unwrap(),
    }
}

fn check_snapshot(engine: &Engine, now: MonoTime, id: SessionId) {
    let Some(snap) = engine.snapshot(now, id) else {
        return;
    };
    let json = serde_json::to_string(&snap).expect("snapshot serializes");
    assert!(!json.is_empty());
    for side in Side::BOTH {
        for src in &snap.side(side).sources {
            if let Some(rtp) = &src.rtp {
                for j in [rtp.jitter, rtp.max_jitter, rtp.mean_jitter]
                    .into_iter()
                    .flatten()
                {
                    assert!(j.is_finite() && j >= 0.0, "jitter {j}");
                }
            }
            if let Some(remote) = &src.remote {
                assert!(
                    (0.0..=1.0).contains(&remote.fraction_lost),
                    "fractionLost {}",
                    remote.fraction_lost
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let two = setup & 1 != 0;
    let config = EngineConfig {
        max_sessions: 4,
        max_sources_per_side: usize::from(setup >> 2 & 7) + 1,
        idle_timeout: (setup & 2 != 0).then(|| Duration::from_secs(2)),
        max_queued_events: 16,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config);
    let mut now = MonoTime::from_millis(1_000);
    let mut ids: Vec<Option<SessionId>> = (0..if two { 2 } else { 1 })
        .map(|n| engine.open_session(now, info(n)).ok())
        .collect();

    while rest.len() >= 3 {
        let (flags, advance, len) = (rest[0], rest[1], usize::from(rest[2]));
        rest = &rest[3..];
        let len = len.min(rest.len());
        let (datagram, tail) = rest.split_at(len);
        rest = tail;

        now = now
            + if advance < 128 {
                Duration::from_millis(u64::from(advance))
            } else {
                Duration::from_millis(u64::from(advance - 127) * 250)
            };
        let side = if flags & 1 == 0 {
            Side::Client
        } else {
            Side::Upstream
        };
        let which = usize::from(two && flags & 2 != 0);
        let id = match ids[which] {
            Some(id) if engine.session(id).is_some() => id,
            _ => match engine.open_session(now, info(which as u16)) {
                Ok(id) => {
                    ids[which] = Some(id);
                    id
                }
                Err(_) => continue,
            },
        };
        match engine.handle_datagram(now, side, id, datagram) {
            Verdict::Forward(_) | Verdict::Drop(_) => {}
        }
        if flags & 4 != 0 {
            if let Some(deadline) = engine.poll_timeout() {
                // The deadline is never in the past by more than the step.
                let _ = deadline;
            }
            engine.handle_timeout(now);
        }
        while let Some(ev) = engine.poll_event() {
            if let Event::SessionClosed { snapshot, .. } = ev {
                serde_json::to_string(&snapshot).expect("final snapshot serializes");
            }
        }
        if flags & 8 != 0 {
            check_snapshot(&engine, now, id);
        }
    }
    // Finally: snapshot, close and drain everything.
    for id in ids.into_iter().flatten() {
        check_snapshot(&engine, now, id);
        let _ = engine.close_session(now, id);
    }
    while engine.poll_event().is_some() {}
    assert_eq!(engine.session_count(), 0);
});
