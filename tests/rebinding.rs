//! NAT rebinding and hijack resistance on virtual time: a session follows its
//! client to a new address only after the upstream accepts an ICE check
//! from there carrying the session's USERNAME and the new address answers
//! the proxy's probe (`[limits] nat_rebinding = "stun"`); refused, late,
//! spoofed, foreign, live-flow and policy-`never` checks move nothing.

mod common;
use common::{addr, ms, stun, Driver};

use rtp_middlebox::engine::{
    rebinding::{CHECK_MAX_AGE, MAX_PENDING_CHECKS},
    Cap, EngineConfig, Event, NatRebinding, RtcpMode, SessionId, SessionInfo, Side, SocketRef, Verdict,
};
use rtp_middlebox::wire::stun::{StunClass, ATTR_MESSAGE_INTEGRITY, ATTR_USERNAME};
use std::net::SocketAddr;

const USERNAME: &[u8] = b"sfuFrag:cliFrag";

/// A Binding message: USERNAME when given, then MESSAGE-INTEGRITY (the
/// upstream checks it).
fn message(class: StunClass, txid: u8, username: Option<&[u8]>) -> Vec<u8> {
    let mut attrs: Vec<(u16, &[u8])> = username.map(|name| (ATTR_USERNAME, name)).into_iter().collect();
    attrs.push((ATTR_MESSAGE_INTEGRITY, &[0xaa; 20]));
    stun(class, [txid; 12], &attrs)
}

fn request(txid: u8, username: &[u8]) -> Vec<u8> {
    message(StunClass::Request, txid, Some(username))
}

fn success(txid: u8) -> Vec<u8> {
    message(StunClass::SuccessResponse, txid, None)
}

/// 401 Unauthenticated: what an ICE agent answers a check whose
/// MESSAGE-INTEGRITY does not verify (RFC 8489 §9.1.3).
fn unauthenticated(txid: u8) -> Vec<u8> {
    message(StunClass::ErrorResponse, txid, None)
}

/// Where the engine sent the upstream's answer to a rebinding check, and
/// the probe it sent after it.
#[derive(Debug, PartialEq, Eq)]
struct CheckAnswer {
    to: SocketAddr,
    probe: Option<[u8; 28]>,
}

/// Two relays: relay 0 toward the call's upstream, relay 1 toward another.
fn config(policy: NatRebinding) -> EngineConfig {
    let mut other = common::relay(RtcpMode::Forward);
    other.upstream = Some(addr("198.51.100.2:3478"));
    EngineConfig {
        relays: vec![common::relay(RtcpMode::Forward), other],
        nat_rebinding: policy,
        ..EngineConfig::default()
    }
}

/// A datagram from `from` on relay `relay`'s client socket: `Some(target)`
/// when the engine took it as a NAT rebinding check for another session
/// (forwarded on that session's upstream socket, no session opened).
fn check_from(e: &mut Driver, relay: usize, t: u64, from: &str, datagram: &[u8]) -> Option<SessionId> {
    e.input(ms(t), SocketRef::Listen { relay, rtcp: false }, addr(from), datagram);
    e.last_sent.iter().find_map(|s| match s.socket {
        SocketRef::Upstream { session, .. } if e.session(session).is_some_and(|x| x.info.client != addr(from)) => {
            Some(session)
        }
        _ => None,
    })
}

struct Call {
    engine: Driver,
    id: SessionId,
    upstream: SocketAddr,
}

/// A session whose client at `OLD` has made one answered consent check.
fn call(policy: NatRebinding) -> Call {
    let upstream = addr("198.51.100.1:3478");
    let mut engine = Driver::new(config(policy));
    let id = engine
        .open_session(
            ms(0),
            SessionInfo {
                client: addr(OLD),
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

impl Call {
    /// A datagram from `from` to the relay; see [`check_from`].
    fn check(&mut self, t: u64, _current: Option<SessionId>, from: &str, datagram: &[u8]) -> Option<SessionId> {
        check_from(&mut self.engine, 0, t, from, datagram)
    }

    /// A check from `from` taken, forwarded on the session and answered by
    /// the upstream with `answer`; returns where the answer went.
    fn checked(&mut self, t: u64, from: &str, txid: u8, answer: &[u8]) -> Option<CheckAnswer> {
        assert_eq!(self.check(t, None, from, &request(txid, USERNAME)), Some(self.id));
        self.engine.handle_datagram(ms(t + 20), Side::Upstream, self.id, answer);
        self.take_check_answer()
    }

    /// After an upstream datagram: `Some` when it went somewhere other
    /// than the session's client (the answer to a rebinding check).
    fn take_check_answer(&mut self) -> Option<CheckAnswer> {
        let client = self.client();
        let sent = std::mem::take(&mut self.engine.last_sent);
        let first = sent.first().filter(|s| s.destination != client)?;
        Some(CheckAnswer {
            to: first.destination,
            probe: sent.get(1).map(|p| p.datagram.as_slice().try_into().unwrap()),
        })
    }

    /// A STUN response from `from`: `Some(session)` when it answered the
    /// proxy's probe and moved that session there.
    fn probe_answer(&mut self, t: u64, from: &str, datagram: &[u8]) -> Option<SessionId> {
        let v = self.engine.client_datagram(ms(t), addr(from), datagram);
        if v != Verdict::Consumed {
            return None;
        }
        self.engine
            .sessions()
            .find(|s| s.info.client == addr(from))
            .map(|s| s.id)
    }

    fn client(&self) -> SocketAddr {
        self.engine.session(self.id).unwrap().info.client
    }
}

const OLD: &str = "203.0.113.10:50000";
const NEW: &str = "203.0.113.10:61000";

/// The new address's answer to the proxy's probe (400: the probe carries
/// no credentials, which an ICE agent answers all the same).
fn probe_answer(probe: &[u8; 28]) -> Vec<u8> {
    stun(StunClass::ErrorResponse, probe[8..20].try_into().unwrap(), &[])
}

#[test]
fn the_session_moves_once_the_upstream_accepts_and_the_new_address_answers() {
    let mut c = call(NatRebinding::Stun);
    let answer = c.checked(5_000, NEW, 2, &success(2)).expect("the answer is redirected");
    assert_eq!(answer.to, addr(NEW), "the success goes to the checking address");
    let probe = answer.probe.expect("a probe follows an accepted check");
    assert_eq!(&probe[..2], &[0, 1], "a binding request");
    assert_eq!(c.client(), addr(OLD), "nothing moves before the probe is answered");
    // Another answer (not this check's) concerns nobody.
    c.engine.handle_datagram(ms(5_030), Side::Upstream, c.id, &success(9));
    assert_eq!(c.take_check_answer(), None);
    // The probe's answer from anywhere else, or with another id, moves nothing.
    let reply = probe_answer(&probe);
    assert_eq!(c.probe_answer(5_040, "192.0.2.66:4444", &reply), None);
    let mut wrong = reply.clone();
    wrong[19] ^= 1;
    assert_eq!(c.probe_answer(5_040, NEW, &wrong), None);
    assert_eq!(c.client(), addr(OLD));
    // From the new address, with the probe's id: the session moves.
    assert_eq!(c.probe_answer(5_050, NEW, &reply), Some(c.id));
    assert_eq!(c.client(), addr(NEW));
    assert_eq!(c.engine.counters().sessions_rebound, 1);
    assert_eq!(c.engine.counters().rebinds_rejected, 0);
    let rebound: Vec<_> = std::iter::from_fn(|| c.engine.poll_event())
        .filter_map(|e| match e {
            Event::SessionRebound { session, from, to } => Some((session, from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(rebound, vec![(c.id, addr(OLD), addr(NEW))]);
    // The check still timed the upstream leg like any binding transaction.
    let snap = c.engine.snapshot(ms(5_100), c.id).unwrap();
    assert_eq!(snap.side(Side::Upstream).rtt_stun.measurements, 2);
    // Answered once: a replayed answer moves nothing more.
    assert_eq!(c.probe_answer(5_060, NEW, &reply), None);
    // From the new address the session is the current one: no check.
    assert_eq!(c.check(7_000, Some(c.id), NEW, &request(3, USERNAME)), None);
}

/// A check with a spoofed source (sent by whoever holds the ICE password,
/// or replayed): the upstream accepts it, but nobody at that address
/// answers the probe, and the session stays.
#[test]
fn a_spoofed_check_the_upstream_accepts_moves_nothing_without_the_probe_answer() {
    let mut c = call(NatRebinding::Stun);
    let spoofed = "192.0.2.200:9999";
    let answer = c.checked(2_000, spoofed, 2, &success(2)).unwrap();
    assert!(answer.probe.is_some());
    assert_eq!(c.client(), addr(OLD));
    // The probe's answer never comes; after the check's lifetime the
    // sweep drops it and counts a rejection.
    c.engine
        .handle_timeout(ms(2_020 + CHECK_MAX_AGE.as_millis() as u64 + 1_500));
    assert_eq!(c.client(), addr(OLD));
    assert_eq!(c.engine.counters().rebinds_rejected, 1);
    assert_eq!(c.engine.counters().sessions_rebound, 0);
}

#[test]
fn a_check_the_upstream_refuses_or_answers_late_moves_nothing() {
    let mut c = call(NatRebinding::Stun);
    let attacker = "192.0.2.66:4444";
    // A third party replaying the USERNAME without the ICE password: the
    // upstream answers 401; the refusal goes back to the third party.
    let answer = c.checked(2_000, attacker, 2, &unauthenticated(2)).unwrap();
    assert_eq!(
        answer,
        CheckAnswer {
            to: addr(attacker),
            probe: None
        }
    );
    assert_eq!(c.client(), addr(OLD));
    // A success after the check's lifetime is refused too.
    assert!(c.check(3_100, None, attacker, &request(3, USERNAME)).is_some());
    let late = 3_100 + CHECK_MAX_AGE.as_millis() as u64 + 1;
    c.engine.handle_datagram(ms(late), Side::Upstream, c.id, &success(3));
    assert_eq!(
        c.take_check_answer(),
        Some(CheckAnswer {
            to: addr(attacker),
            probe: None
        })
    );
    assert_eq!(c.client(), addr(OLD));
    assert_eq!(c.engine.counters().sessions_rebound, 0);
    assert_eq!(c.engine.counters().rebinds_rejected, 2);
    // A check never answered is dropped by the sweep and counted.
    assert!(c.check(20_000, None, attacker, &request(4, USERNAME)).is_some());
    c.engine
        .handle_timeout(ms(20_000 + CHECK_MAX_AGE.as_millis() as u64 + 1_500));
    assert_eq!(c.engine.counters().rebinds_rejected, 3);
    assert!(std::iter::from_fn(|| c.engine.poll_event()).all(|e| !matches!(e, Event::SessionRebound { .. })));
}

#[test]
fn only_the_same_username_toward_the_same_upstream_and_relay_is_a_check() {
    let mut c = call(NatRebinding::Stun);
    let other_upstream = addr("198.51.100.2:3478");
    assert_eq!(c.check(2_000, None, NEW, &request(2, b"sfuFrag:other")), None);
    // Relay 1 relays to another upstream from another listen socket.
    assert_eq!(c.engine.config().relays[1].upstream, Some(other_upstream));
    assert_eq!(check_from(&mut c.engine, 1, 2_000, NEW, &request(2, USERNAME)), None);
    // Media, responses and requests without USERNAME are not checks.
    assert_eq!(c.check(2_000, None, NEW, &success(2)), None);
    assert_eq!(c.check(2_000, None, NEW, &message(StunClass::Request, 2, None)), None);
    assert_eq!(
        c.check(2_000, None, NEW, &[0x80u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]),
        None
    );
    // The control: the same username toward the same upstream is one.
    assert_eq!(c.check(2_000, None, NEW, &request(2, USERNAME)), Some(c.id));
    // Once the session closes its USERNAME finds nothing, and the check in
    // flight counts as rejected.
    c.engine.close_session(ms(3_000), c.id);
    assert_eq!(c.engine.counters().rebinds_rejected, 1);
    assert_eq!(c.check(3_000, None, NEW, &request(3, USERNAME)), None);
}

#[test]
fn policy_never_takes_no_check() {
    let mut c = call(NatRebinding::Never);
    assert_eq!(c.check(2_000, None, NEW, &request(2, USERNAME)), None);
    assert_eq!(c.probe_answer(2_000, NEW, &success(2)), None);
    assert_eq!(c.client(), addr(OLD));
}

#[test]
fn rebindings_in_flight_are_one_per_session_and_capped() {
    let mut c = call(NatRebinding::Stun);
    // Checks for one session replace each other.
    for i in 0..10u8 {
        assert!(c.check(2_000, None, NEW, &request(100 + i, USERNAME)).is_some());
    }
    c.engine.handle_datagram(ms(2_010), Side::Upstream, c.id, &success(100));
    assert_eq!(c.take_check_answer(), None, "superseded");
    c.engine.handle_datagram(ms(2_010), Side::Upstream, c.id, &success(109));
    assert!(c.take_check_answer().is_some());
    // Engine-wide: one per session up to the cap.
    let mut e = Driver::new(EngineConfig {
        max_sessions: MAX_PENDING_CHECKS + 20,
        ..config(NatRebinding::Stun)
    });
    let upstream = c.upstream;
    let mut taken = 0;
    for i in 0..(MAX_PENDING_CHECKS + 10) {
        let name = format!("sfu:{i}");
        let client = addr(&format!("10.0.{}.{}:5000", i / 250, i % 250));
        let id = e.open_session(ms(0), SessionInfo { client, upstream }).unwrap();
        e.handle_datagram(ms(0), Side::Client, id, &request(1, name.as_bytes()));
        let mut req = request(0, name.as_bytes());
        req[8..12].copy_from_slice(&(i as u32).to_be_bytes());
        if check_from(&mut e, 0, 2_000, NEW, &req).is_some() {
            taken += 1;
        }
    }
    assert_eq!(taken, MAX_PENDING_CHECKS);
    assert_eq!(e.counters().caps_hit.get(Cap::RebindChecks), 10);
}

/// A USERNAME shared by live flows of one peer (transports that are not
/// bundled, several local candidates) never moves one onto the other.
#[test]
fn a_live_flow_sharing_the_username_is_not_a_rebinding() {
    let mut c = call(NatRebinding::Stun);
    let second = "203.0.113.10:50002";
    // The session's client is alive: it sent 500 ms ago.
    c.engine
        .handle_datagram(ms(1_500), Side::Client, c.id, &request(5, USERNAME));
    assert_eq!(c.check(2_000, None, second, &request(6, USERNAME)), None);
    // The second flow has a session the upstream answers (its own checks
    // succeed): even while the first is silent, its checks are its own.
    let upstream = c.upstream;
    let other = c
        .engine
        .open_session(
            ms(3_000),
            SessionInfo {
                client: addr(second),
                upstream,
            },
        )
        .unwrap();
    c.engine.handle_datagram(ms(3_010), Side::Upstream, other, &success(77));
    assert_eq!(c.check(4_000, Some(other), second, &request(7, USERNAME)), None);
    // An old session (opened long ago) is no interim either.
    let old_other = c
        .engine
        .open_session(
            ms(0),
            SessionInfo {
                client: addr("203.0.113.10:50004"),
                upstream,
            },
        )
        .unwrap();
    assert_eq!(
        c.check(20_000, Some(old_other), "203.0.113.10:50004", &request(8, USERNAME)),
        None
    );
    // A session the new address opened moments ago with media the
    // upstream never answered does not stand in the way. (A fresh call:
    // the checks above, forwarded on their own sessions, made those the
    // USERNAME's last senders.)
    let mut c = call(NatRebinding::Stun);
    let interim = c
        .engine
        .open_session(
            ms(19_000),
            SessionInfo {
                client: addr(NEW),
                upstream,
            },
        )
        .unwrap();
    assert_eq!(c.check(20_000, Some(interim), NEW, &request(9, USERNAME)), Some(c.id));
}

/// A NAT that changes its mapping mid-call: media from the new address
/// comes first (an interim session), and the client's next ICE check may
/// come before the old address has been silent for a second. That check is
/// held (dropped and counted, not forwarded on the interim session, where
/// the upstream's answer would make the interim session established for
/// good), and the next check, a second later, moves the session. A flow
/// that overlaps the old one (it opened while the old address still sent)
/// is another flow: its check goes through on its own session.
#[test]
fn an_early_check_after_the_media_moved_is_held_until_the_old_address_is_silent() {
    let mut c = call(NatRebinding::Stun);
    let upstream = c.upstream;
    // The old address's last media at 4 000 ms; from 4 020 ms everything
    // comes from NEW, media first.
    c.engine
        .handle_datagram(ms(4_000), Side::Client, c.id, &request(4, USERNAME));
    let interim = c
        .engine
        .open_session(
            ms(4_020),
            SessionInfo {
                client: addr(NEW),
                upstream,
            },
        )
        .unwrap();
    let held_before = c.engine.counters().drops[rtp_middlebox::engine::DropReason::RebindingHeld.index()];
    let v = c.engine.client_datagram(ms(4_300), addr(NEW), &request(5, USERNAME));
    assert_eq!(v, Verdict::Drop(rtp_middlebox::engine::DropReason::RebindingHeld));
    assert!(c.engine.last_sent.is_empty(), "held: sent nowhere");
    assert_eq!(
        c.engine.counters().drops[rtp_middlebox::engine::DropReason::RebindingHeld.index()],
        held_before + 1
    );
    // The next check, 1.3 s after the old address's last datagram, moves it.
    let answer = c
        .checked(5_300, NEW, 6, &success(6))
        .expect("taken as a rebinding check");
    let probe = answer.probe.expect("probe");
    assert_eq!(c.probe_answer(5_350, NEW, &probe_answer(&probe)), Some(c.id));
    assert_eq!(c.client(), addr(NEW));
    assert!(
        c.engine.session(interim).is_none(),
        "the interim session was the moved one's flow"
    );

    // Overlapping flows: the second address opened while the first still
    // sent; its early check is its own session's, not held.
    let mut c = call(NatRebinding::Stun);
    let second = "203.0.113.10:50002";
    let other = c
        .engine
        .open_session(
            ms(4_000),
            SessionInfo {
                client: addr(second),
                upstream,
            },
        )
        .unwrap();
    c.engine
        .handle_datagram(ms(4_100), Side::Client, c.id, &request(4, USERNAME));
    let v = c.engine.client_datagram(ms(4_300), addr(second), &request(5, USERNAME));
    assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
    assert!(c
        .engine
        .last_sent
        .iter()
        .any(|s| matches!(s.socket, SocketRef::Upstream { session, .. } if session == other)));
}
