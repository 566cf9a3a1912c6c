//! NAT rebinding and hijack resistance on virtual time: a session follows its
//! client to a new address only after the upstream accepts an ICE check
//! from there carrying the session's USERNAME (`[limits] nat_rebinding =
//! "stun"`); refused, late, foreign and policy-`never` checks move nothing.

use rtp_middlebox::engine::{
    rebinding::{CHECK_MAX_AGE, MAX_PENDING_CHECKS},
    Cap, Engine, EngineConfig, Event, NatRebinding, SessionId, SessionInfo, Side, Verdict,
};
use rtp_middlebox::time::MonoTime;
use std::net::SocketAddr;

const COOKIE: u32 = 0x2112_A442;
const USERNAME: &[u8] = b"sfuFrag:cliFrag";

fn ms(v: u64) -> MonoTime {
    MonoTime::from_millis(v)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

fn stun(msg_type: u16, txid: u8, username: Option<&[u8]>) -> Vec<u8> {
    let mut attrs = Vec::new();
    if let Some(name) = username {
        attr(&mut attrs, 0x0006, name);
    }
    attr(&mut attrs, 0x0008, &[0xaa; 20]); // MESSAGE-INTEGRITY (the upstream checks it)
    let mut m = msg_type.to_be_bytes().to_vec();
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&COOKIE.to_be_bytes());
    m.extend_from_slice(&[txid; 12]);
    m.extend_from_slice(&attrs);
    m
}

fn request(txid: u8, username: &[u8]) -> Vec<u8> {
    stun(0x0001, txid, Some(username))
}

fn success(txid: u8) -> Vec<u8> {
    stun(0x0101, txid, None)
}

/// 401 Unauthenticated: what an ICE agent answers a check whose
/// MESSAGE-INTEGRITY does not verify (RFC 8489 §10.1.2).
fn unauthenticated(txid: u8) -> Vec<u8> {
    stun(0x0111, txid, None)
}

struct Call {
    engine: Engine,
    id: SessionId,
    upstream: SocketAddr,
}

/// A session whose client at `old` has made one answered consent check.
fn call(policy: NatRebinding) -> Call {
    let upstream = addr("198.51.100.1:3478");
    let mut engine = Engine::new(EngineConfig {
        nat_rebinding: policy,
        ..EngineConfig::default()
    });
    let id = engine
        .open_session(
            ms(0),
            SessionInfo {
                client: addr("203.0.113.10:50000"),
                upstream,
            },
        )
        .unwrap();
    assert!(matches!(
        engine.handle_datagram(ms(10), Side::Client, id, &request(1, USERNAME)),
        Verdict::Forward(_)
    ));
    engine.handle_datagram(ms(30), Side::Upstream, id, &success(1));
    while engine.poll_event().is_some() {}
    Call { engine, id, upstream }
}

fn client_of(c: &Call) -> SocketAddr {
    c.engine.session(c.id).unwrap().info.client
}

const NEW: &str = "203.0.113.10:61000";

#[test]
fn the_session_moves_when_the_upstream_accepts_a_check_from_the_new_address() {
    let mut c = call(NatRebinding::Stun);
    let to = addr(NEW);
    let target = c
        .engine
        .rebinding_check(ms(5_000), c.upstream, None, to, &request(2, USERNAME));
    assert_eq!(
        target,
        Some(c.id),
        "the check belongs to the session with that USERNAME"
    );
    c.engine
        .handle_datagram(ms(5_000), Side::Client, c.id, &request(2, USERNAME));
    assert_eq!(
        client_of(&c),
        addr("203.0.113.10:50000"),
        "nothing moves before the answer"
    );
    // Another answer (not this check's) moves nothing either.
    c.engine.handle_datagram(ms(5_010), Side::Upstream, c.id, &success(9));
    assert_eq!(client_of(&c), addr("203.0.113.10:50000"));
    c.engine.handle_datagram(ms(5_020), Side::Upstream, c.id, &success(2));
    assert_eq!(client_of(&c), to);
    assert_eq!(c.engine.take_refused_check_sender(), None);
    assert_eq!(c.engine.counters().sessions_rebound, 1);
    assert_eq!(c.engine.counters().rebinds_rejected, 0);
    let rebound: Vec<_> = std::iter::from_fn(|| c.engine.poll_event())
        .filter_map(|e| match e {
            Event::SessionRebound { session, from, to } => Some((session, from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(rebound, vec![(c.id, addr("203.0.113.10:50000"), to)]);
    // The check still timed the upstream leg like any binding transaction.
    let snap = c.engine.snapshot(ms(5_100), c.id).unwrap();
    assert_eq!(snap.side(Side::Upstream).rtt_stun.measurements, 2);
    // From the new address the session is the current one: no check.
    assert_eq!(
        c.engine
            .rebinding_check(ms(6_000), c.upstream, Some(c.id), to, &request(3, USERNAME)),
        None
    );
}

#[test]
fn a_check_the_upstream_refuses_or_answers_late_moves_nothing() {
    let mut c = call(NatRebinding::Stun);
    let attacker = addr("192.0.2.66:4444");
    // A third party replaying the USERNAME without the ICE password: the
    // upstream answers 401.
    assert_eq!(
        c.engine
            .rebinding_check(ms(2_000), c.upstream, None, attacker, &request(2, USERNAME)),
        Some(c.id)
    );
    c.engine
        .handle_datagram(ms(2_000), Side::Client, c.id, &request(2, USERNAME));
    c.engine
        .handle_datagram(ms(2_020), Side::Upstream, c.id, &unauthenticated(2));
    assert_eq!(client_of(&c), addr("203.0.113.10:50000"));
    // The refusal goes back to the check's sender, not to the client.
    assert_eq!(c.engine.take_refused_check_sender(), Some(attacker));
    assert_eq!(c.engine.take_refused_check_sender(), None);
    // A success that comes after the check expired moves nothing.
    let late_at = 3_100 + CHECK_MAX_AGE.as_millis() as u64 + 1;
    assert!(c
        .engine
        .rebinding_check(ms(3_100), c.upstream, None, attacker, &request(3, USERNAME))
        .is_some());
    c.engine.handle_datagram(ms(late_at), Side::Upstream, c.id, &success(3));
    assert_eq!(client_of(&c), addr("203.0.113.10:50000"));
    assert_eq!(c.engine.counters().sessions_rebound, 0);
    assert_eq!(c.engine.counters().rebinds_rejected, 2);
    // A check never answered is dropped by the sweep and counted.
    assert!(c
        .engine
        .rebinding_check(ms(20_000), c.upstream, None, attacker, &request(4, USERNAME))
        .is_some());
    c.engine
        .handle_timeout(ms(20_000 + CHECK_MAX_AGE.as_millis() as u64 + 1_500));
    assert_eq!(c.engine.counters().rebinds_rejected, 3);
    assert!(std::iter::from_fn(|| c.engine.poll_event()).all(|e| !matches!(e, Event::SessionRebound { .. })));
}

#[test]
fn only_the_same_username_toward_the_same_upstream_is_a_check() {
    let mut c = call(NatRebinding::Stun);
    let to = addr(NEW);
    let other_upstream = addr("198.51.100.2:3478");
    let e = &mut c.engine;
    assert_eq!(
        e.rebinding_check(ms(2_000), c.upstream, None, to, &request(2, b"sfuFrag:other")),
        None
    );
    assert_eq!(
        e.rebinding_check(ms(2_000), other_upstream, None, to, &request(2, USERNAME)),
        None
    );
    // Media, responses and requests without USERNAME are not checks.
    assert_eq!(e.rebinding_check(ms(2_000), c.upstream, None, to, &success(2)), None);
    assert_eq!(
        e.rebinding_check(ms(2_000), c.upstream, None, to, &stun(0x0001, 2, None)),
        None
    );
    let rtp = [0x80u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(e.rebinding_check(ms(2_000), c.upstream, None, to, &rtp), None);
    // The control: the same username toward the same upstream is one.
    assert_eq!(
        e.rebinding_check(ms(2_000), c.upstream, None, to, &request(2, USERNAME)),
        Some(c.id)
    );
    // Once the session closes its USERNAME finds nothing.
    e.close_session(ms(3_000), c.id);
    assert_eq!(
        e.rebinding_check(ms(3_000), c.upstream, None, to, &request(3, USERNAME)),
        None
    );
}

#[test]
fn policy_never_keeps_every_session_on_its_address() {
    let mut c = call(NatRebinding::Never);
    let to = addr(NEW);
    assert_eq!(
        c.engine
            .rebinding_check(ms(2_000), c.upstream, None, to, &request(2, USERNAME)),
        None
    );
    // Even an answered check on the session's own path moves nothing.
    c.engine
        .handle_datagram(ms(2_000), Side::Client, c.id, &request(2, USERNAME));
    c.engine.handle_datagram(ms(1_010), Side::Upstream, c.id, &success(2));
    assert_eq!(client_of(&c), addr("203.0.113.10:50000"));
    assert_eq!(c.engine.counters().sessions_rebound, 0);
}

#[test]
fn pending_checks_are_capped_and_counted() {
    let mut c = call(NatRebinding::Stun);
    let mut accepted = 0;
    for i in 0..(MAX_PENDING_CHECKS + 10) {
        let from = addr(&format!("192.0.2.{}:{}", i % 250, 1024 + i));
        let mut req = request(0, USERNAME);
        req[8..12].copy_from_slice(&(i as u32).to_be_bytes());
        if c.engine
            .rebinding_check(ms(2_000), c.upstream, None, from, &req)
            .is_some()
        {
            accepted += 1;
        }
    }
    assert_eq!(accepted, MAX_PENDING_CHECKS);
    assert_eq!(c.engine.counters().caps_hit.get(Cap::RebindChecks), 10);
    // Expired checks make room again (and count as rejected).
    let later = ms(2_000 + CHECK_MAX_AGE.as_millis() as u64 + 1);
    assert_eq!(
        c.engine
            .rebinding_check(later, c.upstream, None, addr(NEW), &request(7, USERNAME)),
        Some(c.id)
    );
    assert_eq!(c.engine.counters().rebinds_rejected, MAX_PENDING_CHECKS as u64);
}

/// A USERNAME shared by two live flows of one peer (transports that are not
/// bundled) never moves one onto the other.
#[test]
fn a_live_flow_sharing_the_username_is_not_a_rebinding() {
    let mut c = call(NatRebinding::Stun);
    let second = addr("203.0.113.10:50002");
    // The session's client is alive: it sent 500 ms ago.
    c.engine
        .handle_datagram(ms(1_500), Side::Client, c.id, &request(5, USERNAME));
    assert_eq!(
        c.engine
            .rebinding_check(ms(2_000), c.upstream, None, second, &request(6, USERNAME)),
        None
    );
    // The second flow has its own session, opened long ago: even once the
    // first falls silent, its checks are its own.
    let other = c
        .engine
        .open_session(
            ms(0),
            SessionInfo {
                client: second,
                upstream: c.upstream,
            },
        )
        .unwrap();
    let t = ms(20_000);
    assert_eq!(
        c.engine
            .rebinding_check(t, c.upstream, Some(other), second, &request(7, USERNAME)),
        None
    );
    // A session the new address opened moments ago (its media came before
    // its check) does not stand in the way.
    let interim = c
        .engine
        .open_session(
            ms(19_000),
            SessionInfo {
                client: addr(NEW),
                upstream: c.upstream,
            },
        )
        .unwrap();
    assert_eq!(
        c.engine
            .rebinding_check(t, c.upstream, Some(interim), addr(NEW), &request(8, USERNAME)),
        Some(c.id)
    );
}
