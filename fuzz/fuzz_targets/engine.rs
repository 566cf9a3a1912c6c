//! The whole engine: an arbitrary sequence of datagrams through
//! `Engine::handle_datagram` on one or two sessions in any RTCP mode, with
//! virtual time, timeouts, events, generated reports and snapshots.
//!
//! Input layout:
//! ```text
//! byte 0        setup: bit 0 = two sessions; bit 1 = idle timeout (2 s);
//!               bits 2..4 = max sources per side − 1 (1..=8, so the cap is hit);
//!               bit 5 = snapshots of closed sessions and the final ones
//!               also as JSON (costly under instrumentation, so not always);
//!               bits 6..7 = RTCP mode: forward, auto, terminate, or
//!               auto for session #1 and terminate for session #2
//! then records until the input ends:
//!   flags       bit 0 = side (0 client, 1 upstream); bit 1 = session #2;
//!               bit 2 = call handle_timeout after; bit 3 = snapshot after
//!               (checked for range invariants); bit 4 (client side) =
//!               from a new client address 203.0.113.(bits 5..7):6000,
//!               offered as the answer to a rebinding probe, then as a
//!               NAT rebinding check (policy `stun` throughout)
//!   advance     virtual time step: 0..=127 → that many ms,
//!               128..=255 → (b − 127) × 250 ms (up to 32 s, past idle)
//!   len         datagram length (clipped to what is left)
//!   bytes       the datagram
//! ```
//! Sessions closed by the idle sweep are reopened on their next datagram,
//! so stale ids (slot reuse, generations) are exercised too.
//!
//! Checked besides "never panics": a rebinding check names a live session
//! and a session only ever moves to an address that sent a check; what the
//! engine writes (a rewritten
//! compound, a generated report) walks cleanly as RTCP; after
//! `handle_timeout(now)` the next deadline lies after `now`; snapshot
//! figures are in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::engine::{Engine, EngineConfig, Event, RtcpMode, SessionId, SessionInfo, Side, Verdict};
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::{classify, rtcp, PacketKind};
use std::net::SocketAddr;
use std::time::Duration;

fn info(n: u16) -> SessionInfo {
    SessionInfo {
        client: format!("192.0.2.{}:{}", n + 1, 5000 + n).parse().unwrap(),
        upstream: "198.51.100.1:3478".parse().unwrap(),
    }
}

/// Anything the engine emits as RTCP must be a compound that walks to its end.
fn check_rtcp_out(what: &str, datagram: &[u8]) {
    assert_eq!(classify(datagram), PacketKind::Rtcp, "{what}: {datagram:02x?}");
    let mut len = 0;
    for p in rtcp::walk(datagram) {
        match p {
            Ok(p) => len += p.header().len,
            Err(e) => panic!("{what} does not walk: {e:?} in {datagram:02x?}"),
        }
    }
    assert_eq!(len, datagram.len(), "{what}");
}

fn check_snapshot(engine: &Engine, now: MonoTime, id: SessionId, json: bool) {
    let Some(snap) = engine.snapshot(now, id) else {
        return;
    };
    if json {
        // JSON is costly under coverage instrumentation: only when asked.
        let json = serde_json::to_string(&snap).expect("snapshot serializes");
        assert!(!json.is_empty());
    }
    for side in Side::BOTH {
        for src in &snap.side(side).sources {
            if let Some(rtp) = &src.rtp {
                for j in [rtp.jitter, rtp.max_jitter, rtp.mean_jitter].into_iter().flatten() {
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

fn drain(engine: &mut Engine, json: bool) {
    while let Some(t) = engine.poll_transmit() {
        check_rtcp_out("generated report", &t.datagram);
    }
    while let Some(ev) = engine.poll_event() {
        if let Event::SessionClosed { snapshot, .. } = ev {
            if json {
                serde_json::to_string(&snapshot).expect("final snapshot serializes");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let two = setup & 1 != 0;
    let modes = match setup >> 6 {
        0 => [RtcpMode::Forward; 2],
        1 => [RtcpMode::Auto; 2],
        2 => [RtcpMode::Terminate; 2],
        _ => [RtcpMode::Auto, RtcpMode::Terminate],
    };
    let config = EngineConfig {
        max_sessions: 4,
        max_sources_per_side: usize::from(setup >> 2 & 7) + 1,
        idle_timeout: (setup & 2 != 0).then(|| Duration::from_secs(2)),
        max_queued_events: 16,
        seed: 7,
        nat_rebinding: rtp_middlebox::engine::NatRebinding::Stun,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config);
    let mut now = MonoTime::from_millis(1_000);
    // 2025-01-01T00:00:00Z, for the NTP times of generated reports.
    engine.set_wall_clock(now, Duration::from_secs(1_735_689_600));
    let open = |engine: &mut Engine, now, n: usize| engine.open_session_mode(now, info(n as u16), modes[n]).ok();
    let mut ids: Vec<Option<SessionId>> = (0..if two { 2 } else { 1 })
        .map(|n| open(&mut engine, now, n))
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
        let side = if flags & 1 == 0 { Side::Client } else { Side::Upstream };
        let which = usize::from(two && flags & 2 != 0);
        let id = match ids[which] {
            Some(id) if engine.session(id).is_some() => id,
            _ => match open(&mut engine, now, which) {
                Some(id) => {
                    ids[which] = Some(id);
                    id
                }
                None => continue,
            },
        };
        let mut id = id;
        if flags & 16 != 0 && side == Side::Client {
            let from = SocketAddr::from(([203, 0, 113, flags >> 5], 6000));
            if let Some(moved) = engine.rebinding_probe_answer(now, from, datagram) {
                let s = engine.session(moved).expect("a probe answer moved a closed session");
                assert_eq!(s.info.client, from);
                drain(&mut engine, setup & 0x20 != 0);
                continue;
            }
            let upstream = info(0).upstream;
            if let Some(target) = engine.rebinding_check(now, upstream, None, from, datagram, |_| true) {
                assert!(engine.session(target).is_some(), "a check for a closed session");
                id = target;
            }
        }
        if let Verdict::Rewritten(kind) = engine.handle_datagram(now, side, id, datagram) {
            assert_eq!(kind, PacketKind::Rtcp);
            check_rtcp_out("rewritten compound", engine.rewritten());
        }
        if flags & 4 != 0 {
            engine.handle_timeout(now);
            // Poll contract: once handled, the next deadline lies ahead
            // (a deadline at or before `now` would spin the driver).
            if let Some(next) = engine.poll_timeout() {
                assert!(next > now, "poll_timeout {next:?} not after handled {now:?}");
            }
        }
        if let Some(answer) = engine.take_check_answer() {
            assert!(side == Side::Upstream, "a check answer from the client side");
            if let Some(probe) = answer.probe {
                let stun = rtp_middlebox::wire::stun::StunView::parse(&probe).expect("the probe is STUN");
                assert_eq!(stun.attributes.len(), 0);
            }
        }
        if let Some(s) = engine.session(id) {
            let c = s.info.client;
            let original = (0..2).any(|n| info(n).client == c);
            let checked = c.ip().to_string().starts_with("203.0.113.") && c.port() == 6000;
            assert!(original || checked, "session moved to {c}, which never sent a check");
        }
        drain(&mut engine, setup & 0x20 != 0);
        if flags & 8 != 0 {
            check_snapshot(&engine, now, id, false);
        }
    }
    // Finally: snapshot, close and drain everything.
    for id in ids.into_iter().flatten() {
        check_snapshot(&engine, now, id, setup & 0x20 != 0);
        let _ = engine.close_session(now, id);
    }
    drain(&mut engine, setup & 0x20 != 0);
    assert_eq!(engine.session_count(), 0);
});
