//! The whole engine, driven only through its one input and one output
//! (`handle_input`/`poll_output`) as the relay's worker drives it: an
//! arbitrary sequence of datagrams on one or two sessions (each on its own
//! relay) in any RTCP mode, with virtual time, timeouts, events, generated
//! reports and snapshots.
//!
//! Input layout:
//! ```text
//! byte 0        setup: bit 0 = two sessions; bit 1 = idle timeout (2 s);
//!               bits 2..4 = max sources per side − 1 (1..=8, so the cap is hit);
//!               bit 5 = snapshots of closed sessions and the final ones
//!               also as JSON (costly under instrumentation, so not always);
//!               bits 6..7 = RTCP mode: forward, auto, terminate, or
//!               auto for relay 0 and terminate for relay 1
//! then records until the input ends:
//!   flags       bit 0 = side (0 client, 1 upstream); bit 1 = session #2;
//!               bit 2 = an Input::Timeout after; bit 3 = snapshot after
//!               (checked for range invariants); bit 4 (client side) =
//!               from a new client address 203.0.113.(bits 5..7):6000 on
//!               relay 0 (a NAT rebinding check, a probe answer or an
//!               interim session; policy `stun` throughout)
//!   advance     virtual time step: 0..=127 → that many ms,
//!               128..=255 → (b − 127) × 250 ms (up to 32 s, past idle)
//!   len         datagram length (clipped to what is left)
//!   bytes       the datagram
//! ```
//! Sessions closed by the idle sweep are reopened by their client's next
//! datagram, so stale ids (slot reuse, generations) reach the upstream
//! side too.
//!
//! Checked besides "never panics": a session only ever sits at an original
//! client's address or one that sent something; transmits from upstream
//! sockets name live sessions; what the engine writes (a rewritten
//! compound, a generated report) walks cleanly as RTCP and its probe is a
//! STUN request with FINGERPRINT alone; after `Input::Timeout(now)` the next deadline
//! lies after `now`; snapshot figures are in range.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::engine::{
    Engine, EngineConfig, Event, Input, Output, Payload, RelaySettings, RtcpMode, SessionId, SessionInfo, Side,
    SocketRef, Verdict,
};
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

/// Does what the engine says, checking each output: what it writes is
/// RTCP that walks (rewrites, generated reports) or its STUN probe
/// (FINGERPRINT alone); transmits from upstream sockets name live sessions; the ids of
/// the two original clients' sessions are followed.
fn drain(engine: &mut Engine, received: &[u8], json: bool, ids: &mut [Option<SessionId>; 2]) {
    while let Some(output) = engine.poll_output() {
        match output {
            Output::Transmit(t) => {
                if let SocketRef::Upstream { session, .. } = t.socket {
                    assert!(engine.session(session).is_some(), "a transmit for a closed session");
                }
                match &t.payload {
                    Payload::Received => assert!(!received.is_empty() || t.payload.bytes(received).is_empty()),
                    Payload::Owned(bytes) if classify(bytes) == PacketKind::Stun => {
                        // The NAT rebinding probe: a binding request whose
                        // one attribute is FINGERPRINT (RFC 8489 §14.7).
                        let stun = rtp_middlebox::wire::stun::StunView::parse(bytes).expect("the probe is STUN");
                        assert_eq!(stun.attributes.len(), 8, "{bytes:02x?}");
                        let [hi, lo] = rtp_middlebox::wire::stun::ATTR_FINGERPRINT.to_be_bytes();
                        assert_eq!(&stun.attributes[..4], &[hi, lo, 0, 4], "{bytes:02x?}");
                    }
                    Payload::Owned(bytes) => check_rtcp_out("written compound", bytes),
                }
            }
            Output::Event(Event::SessionOpened { id, client, .. }) => {
                for (n, slot) in ids.iter_mut().enumerate() {
                    if info(n as u16).client == client {
                        *slot = Some(id);
                    }
                }
            }
            Output::Event(Event::SessionClosed { snapshot, .. }) => {
                if json {
                    serde_json::to_string(&snapshot).expect("final snapshot serializes");
                }
            }
            Output::Timeout(_) => break,
            _ => {}
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
    // Session #n's client talks to relay n (both toward one upstream).
    let relay = |mode| RelaySettings {
        mode,
        upstream: Some(info(0).upstream),
        ..RelaySettings::default()
    };
    let config = EngineConfig {
        relays: modes.map(relay).to_vec(),
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
    engine.handle_input(Input::WallClock {
        now,
        wall: Duration::from_secs(1_735_689_600),
    });
    let json = setup & 0x20 != 0;
    let mut ids: [Option<SessionId>; 2] = [None, None];
    for n in 0..if two { 2 } else { 1 } {
        let _ = engine.open_session(now, n, info(n as u16));
        drain(&mut engine, &[], json, &mut ids);
    }

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
        // Client side: from the session's client (a closed session's
        // client opens a new one), or (bit 4) from a new address on relay 0:
        // a rebinding check, a probe answer, or an interim session.
        // Upstream side: on the session's upstream socket, stale or not.
        let (socket, remote) = match side {
            Side::Client if flags & 16 != 0 => (
                SocketRef::Listen { relay: 0, rtcp: false },
                SocketAddr::from(([203, 0, 113, flags >> 5], 6000)),
            ),
            Side::Client => {
                let client = ids[which]
                    .and_then(|id| engine.session(id))
                    .map_or(info(which as u16).client, |s| s.info.client);
                (SocketRef::Listen { relay: which, rtcp: false }, client)
            }
            Side::Upstream => {
                let Some(id) = ids[which] else { continue };
                (SocketRef::Upstream { session: id, rtcp: false }, info(0).upstream)
            }
        };
        let verdict = engine.handle_input(Input::Datagram {
            now,
            socket,
            remote,
            local: info(0).upstream,
            bytes: datagram,
        });
        if let Verdict::Rewritten(kind) = verdict {
            assert_eq!(kind, PacketKind::Rtcp);
        }
        drain(&mut engine, datagram, json, &mut ids);
        if flags & 4 != 0 {
            engine.handle_input(Input::Timeout(now));
            drain(&mut engine, &[], json, &mut ids);
            // Poll contract: once handled, the next deadline lies ahead
            // (a deadline at or before `now` would spin the driver).
            if let Some(next) = engine.poll_timeout() {
                assert!(next > now, "poll_timeout {next:?} not after handled {now:?}");
            }
        }
        for s in engine.sessions() {
            let c = s.info.client;
            let original = (0..2).any(|n| info(n).client == c);
            let from_new = c.ip().to_string().starts_with("203.0.113.") && c.port() == 6000;
            assert!(original || from_new, "session at {c}, which never sent anything");
        }
        if flags & 8 != 0 {
            if let Some(id) = ids[which] {
                check_snapshot(&engine, now, id, false);
            }
        }
    }
    // Finally: snapshot, close and drain everything.
    let all: Vec<SessionId> = engine.sessions().map(|s| s.id).collect();
    for id in all {
        check_snapshot(&engine, now, id, json);
        let _ = engine.close_session(now, id);
    }
    drain(&mut engine, &[], json, &mut ids);
    assert_eq!(engine.session_count(), 0);
});
