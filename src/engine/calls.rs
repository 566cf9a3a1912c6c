//! Calls set up through the calls API and their binding to sessions, and
//! the engine's side of back-to-back DTLS: binding on the first ICE check,
//! DTLS records, handshake timers, and the session's SRTCP contexts once
//! both legs have keys.
//!
//! A call is known by its two ICE username fragments. A Binding request
//! carries `USERNAME = <receiver's ufrag>:<sender's ufrag>` (RFC 8445
//! §7.2.2), so a check from the client reads `upstream:client` and one from
//! the upstream `client:upstream`; either binds the session it arrives on.
//!
//! A call without ICE (no `a=ice-ufrag` in either SDP: RFC 5763 §5 makes
//! no use of ICE, and SIP trunks or GStreamer's dtlssrtpenc/dec do none)
//! has no check to bind by. It binds by the client's media address from
//! its SDP (`c=` + m= port): the first datagram, either way, of an unbound
//! session of a terminating relay whose client address is exactly that
//! binds it, so the client's first ClientHello (or the first record the
//! upstream sends toward it) is already the proxy's. Symmetric RTP (RFC
//! 4961), which DTLS-SRTP needs anyway since both directions share one
//! association (RFC 5764 §4.1), makes that the session's address.
//! Why not "the first DTLS record on the relay": any datagram from anyone
//! would then capture the call; the address at least comes from the
//! signalling, and a spoofed one only wins a handshake that the peer's
//! fingerprint check then fails (no media can be read or injected). A
//! client behind a NAT whose SDP shows its private address never matches:
//! such a call is not bound and its session passes through (with ICE, the
//! ufrags bind it wherever the client appears).

use super::counters::DropReason;
use super::dtls::{BackToBack, CallSetup, LegOutput};
use super::io::{Event, Output, Payload, Transmit, Verdict};
use super::{leg_route, push_output, Engine, SessionId, Side};
use crate::time::MonoTime;
use crate::wire::stun::{StunView, ATTR_USERNAME};
use foldhash::HashMap;
use std::cmp::Reverse;
use std::net::SocketAddr;
use std::sync::Arc;

struct Entry {
    setup: Arc<CallSetup>,
    /// When an unbound call is forgotten; `None` once bound.
    expires: Option<MonoTime>,
    session: Option<SessionId>,
}

/// Calls by id, and by (upstream ufrag, client ufrag) or, without ICE,
/// by the client's media address.
#[derive(Default)]
pub(super) struct Calls {
    by_id: HashMap<String, Entry>,
    by_ufrags: HashMap<(String, String), String>,
    by_address: HashMap<SocketAddr, String>,
}

/// How a call finds its session.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Key {
    /// (upstream ufrag, client ufrag), seen in STUN USERNAME.
    Ufrags(String, String),
    /// The client's media address, for calls without ICE.
    Address(SocketAddr),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CallError {
    #[error("no relay terminates DTLS (set dtls = \"terminate\" on a [[relay]])")]
    NotTerminating,
    #[error("too many calls waiting for their session")]
    TooManyCalls,
    #[error("another call already uses these ICE username fragments")]
    UfragsInUse,
    #[error("another call without ICE already waits for this client media address")]
    AddressInUse,
    #[error(
        "the call's session is live and this offer/answer changes a peer's certificate fingerprint or DTLS \
         role (a new DTLS association, RFC 8842 §5.5): delete the call and set it up again"
    )]
    NewDtlsAssociation,
    #[error(
        "the call cannot be bound: ICE needs a=ice-ufrag in both SDPs; without ICE the client's SDP needs \
         a c= address and an m= port"
    )]
    NoBinding,
}

impl Calls {
    fn expire(&mut self, now: MonoTime) {
        let (by_ufrags, by_address) = (&mut self.by_ufrags, &mut self.by_address);
        self.by_id.retain(|_, e| {
            let keep = e.expires.is_none_or(|t| t > now);
            if !keep {
                forget_key(by_ufrags, by_address, key_of(&e.setup));
            }
            keep
        });
    }

    fn remove(&mut self, call_id: &str) -> Option<Option<SessionId>> {
        let e = self.by_id.remove(call_id)?;
        forget_key(&mut self.by_ufrags, &mut self.by_address, key_of(&e.setup));
        Some(e.session)
    }

    /// The call id a key names, if any.
    fn owner(&self, key: &Key) -> Option<&String> {
        match key {
            Key::Ufrags(u, c) => self.by_ufrags.get(&(u.clone(), c.clone())),
            Key::Address(a) => self.by_address.get(a),
        }
    }

    /// Makes `key` name call `id`.
    fn index(&mut self, key: Key, id: String) {
        match key {
            Key::Ufrags(u, c) => {
                self.by_ufrags.insert((u, c), id);
            }
            Key::Address(a) => {
                self.by_address.insert(a, id);
            }
        }
    }

    /// The unbound call without ICE whose client media address is `client`.
    fn find_by_address(&self, client: SocketAddr) -> Option<&Entry> {
        let id = self.by_address.get(&client)?;
        self.by_id.get(id).filter(|e| e.session.is_none())
    }

    /// The unbound call a check's USERNAME names, from `from`'s endpoint.
    fn find(&self, username: &[u8], from: Side) -> Option<&Entry> {
        let text = std::str::from_utf8(username).ok()?;
        let (receiver, sender) = text.split_once(':')?;
        let key = match from {
            Side::Client => (receiver.to_owned(), sender.to_owned()),
            Side::Upstream => (sender.to_owned(), receiver.to_owned()),
        };
        let id = self.by_ufrags.get(&key)?;
        self.by_id.get(id).filter(|e| e.session.is_none())
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// ICE when both peers have a ufrag; else the client's media address when
/// neither has one (a call half ICE, half not, has no binding).
fn key_of(setup: &CallSetup) -> Option<Key> {
    match (&setup.upstream.ufrag, &setup.client.ufrag, setup.client_address) {
        (Some(u), Some(c), _) => Some(Key::Ufrags(u.clone(), c.clone())),
        (None, None, Some(a)) => Some(Key::Address(a)),
        _ => None,
    }
}

fn forget_key(
    by_ufrags: &mut HashMap<(String, String), String>,
    by_address: &mut HashMap<SocketAddr, String>,
    key: Option<Key>,
) {
    match key {
        Some(Key::Ufrags(u, c)) => {
            by_ufrags.remove(&(u, c));
        }
        Some(Key::Address(a)) => {
            by_address.remove(&a);
        }
        None => {}
    }
}

impl Engine {
    /// Registers a call whose offer and answer passed through the calls
    /// API; the session whose ICE checks carry its ufrags (without ICE:
    /// whose client address is the client's media address) terminates
    /// DTLS on both legs. Setting a known call id again replaces it (a
    /// re-offer); once it is bound, that is a renegotiation
    /// ([`Self::renegotiate`]).
    pub fn set_call(&mut self, now: MonoTime, setup: CallSetup) -> Result<(), CallError> {
        let Some(settings) = self.config.dtls.as_ref() else {
            return Err(CallError::NotTerminating);
        };
        let (ttl, max) = (settings.unbound_call_ttl, settings.max_calls);
        self.calls.expire(now);
        let key = key_of(&setup).ok_or(CallError::NoBinding)?;
        if let Some(owner) = self.calls.owner(&key) {
            if *owner != setup.call_id {
                return Err(match key {
                    Key::Ufrags(..) => CallError::UfragsInUse,
                    Key::Address(_) => CallError::AddressInUse,
                });
            }
        }
        if let Some(old) = self.calls.by_id.get(&setup.call_id) {
            if let Some(session) = old.session {
                return self.renegotiate(setup, session, key);
            }
            let old_key = key_of(&old.setup);
            forget_key(&mut self.calls.by_ufrags, &mut self.calls.by_address, old_key);
        } else if self.calls.len() >= max {
            return Err(CallError::TooManyCalls);
        }
        self.calls.index(key, setup.call_id.clone());
        let id = setup.call_id.clone();
        self.calls.by_id.insert(
            id,
            Entry {
                setup: Arc::new(setup),
                expires: Some(now + ttl),
                session: None,
            },
        );
        Ok(())
    }

    /// A later offer/answer of a call whose session is bound (RFC 3264
    /// §8: a track added, a codec changed, an ICE restart). The same DTLS
    /// association goes on when both peers keep their certificates and
    /// roles (RFC 8842 §5.5: a changed fingerprint or role means a new
    /// association): the legs stay as they are and an ICE restart's new
    /// ufrags now name the call. Anything else would need new handshakes
    /// on a live session, which the proxy does not do: refused, the call
    /// is deleted and set up again. With `nat_rebinding = "stun"` the new
    /// ufrags' USERNAME also finds the session as a rebinding check, so a
    /// client that restarts ICE from a new address (a network change)
    /// takes its session, and the DTLS legs in it, along.
    fn renegotiate(&mut self, setup: CallSetup, session: SessionId, key: Key) -> Result<(), CallError> {
        let Some(entry) = self.calls.by_id.get_mut(&setup.call_id) else {
            return Err(CallError::NoBinding);
        };
        let same_peer =
            |a: &super::dtls::PeerDtls, b: &super::dtls::PeerDtls| a.role == b.role && a.fingerprints == b.fingerprints;
        if !(same_peer(&entry.setup.client, &setup.client) && same_peer(&entry.setup.upstream, &setup.upstream)) {
            return Err(CallError::NewDtlsAssociation);
        }
        let old_key = key_of(&entry.setup);
        let id = setup.call_id.clone();
        entry.setup = Arc::new(setup);
        debug_assert_eq!(entry.session, Some(session));
        if old_key.as_ref() != Some(&key) {
            if let Key::Ufrags(upstream_ufrag, client_ufrag) = &key {
                // The client's checks toward the upstream read
                // `<upstream ufrag>:<client ufrag>` (RFC 8445 §7.2.2).
                let name = format!("{upstream_ufrag}:{client_ufrag}");
                if let Some(upstream) = self.session(session).map(|s| s.info.upstream) {
                    self.rebinding.note_username(session, upstream, name.as_bytes());
                }
            }
            forget_key(&mut self.calls.by_ufrags, &mut self.calls.by_address, old_key);
            self.calls.index(key, id);
        }
        Ok(())
    }

    /// Forgets a call; a session bound to it is closed (the call ended).
    /// Returns false for an unknown call.
    pub fn remove_call(&mut self, now: MonoTime, call_id: &str) -> bool {
        match self.calls.remove(call_id) {
            None => false,
            Some(session) => {
                if let Some(id) = session {
                    self.close_session(now, id);
                }
                true
            }
        }
    }

    /// The session bound to a call, if any.
    pub fn call_session(&self, call_id: &str) -> Option<SessionId> {
        self.calls.by_id.get(call_id).and_then(|e| e.session)
    }

    /// A closing session's call goes with it.
    pub(super) fn forget_call_of(&mut self, session: &super::Session) {
        if let Some(b2b) = &session.dtls {
            self.calls.remove(&b2b.call_id);
        }
    }

    /// After a STUN datagram on a `dtls = "terminate"` relay's unbound
    /// session: binds it when the check names a known call.
    pub(super) fn try_bind_call(&mut self, now: MonoTime, id: SessionId, side: Side, datagram: &[u8]) {
        let Ok(stun) = StunView::parse(datagram) else { return };
        let Some(username) = stun.attribute(ATTR_USERNAME) else {
            return;
        };
        let Some(entry) = self.calls.find(username, side) else {
            return;
        };
        let setup = entry.setup.clone();
        self.bind_call(now, id, setup);
    }

    /// Before a datagram on a `dtls = "terminate"` relay's unbound
    /// session: binds it to the call without ICE whose client media
    /// address is the session's client address (see the module docs).
    pub(super) fn try_bind_call_by_address(&mut self, now: MonoTime, id: SessionId) {
        if self.calls.by_address.is_empty() || !self.binds_calls(id) {
            return;
        }
        let Some(client) = self.session(id).map(|s| s.info.client) else {
            return;
        };
        let Some(entry) = self.calls.find_by_address(client) else {
            return;
        };
        let setup = entry.setup.clone();
        self.bind_call(now, id, setup);
    }

    /// Gives session `id` the call's two DTLS legs, within the handshake
    /// budget.
    fn bind_call(&mut self, now: MonoTime, id: SessionId, setup: Arc<CallSetup>) {
        let Some(settings) = self.config.dtls.as_ref() else {
            return;
        };
        let handshaking: usize = self
            .sessions()
            .filter_map(|s| s.dtls.as_ref())
            .map(|d| d.handshaking())
            .sum();
        if handshaking + 2 > settings.max_handshakes {
            self.counters.dtls_refused += 1;
            return;
        }
        let Some(b2b) = BackToBack::new(&setup, settings, now) else {
            return;
        };
        let Some(session) = self.session_mut(id) else { return };
        session.dtls = Some(Box::new(b2b));
        session.encrypted = true;
        if let Some(e) = self.calls.by_id.get_mut(&setup.call_id) {
            e.session = Some(id);
            e.expires = None;
        }
        self.counters.dtls_calls_bound += 1;
    }

    /// A DTLS record on a bound session: handed to its leg, never forwarded.
    pub(super) fn on_dtls_record(&mut self, now: MonoTime, id: SessionId, side: Side, datagram: &[u8]) -> Verdict {
        let Engine {
            slots,
            config,
            leg_outputs,
            ..
        } = self;
        let Some(settings) = config.dtls.as_ref() else {
            return Verdict::Drop(DropReason::DtlsFailed);
        };
        let Some(session) = slots
            .get_mut(id.slot())
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.session.as_mut())
        else {
            return Verdict::Drop(DropReason::UnknownSession);
        };
        let state = &mut session.sides[side.index()];
        state.last_activity = Some(now);
        state.received.add(crate::wire::PacketKind::Dtls, datagram.len());
        let Some(b2b) = session.dtls.as_deref_mut() else {
            return Verdict::Drop(DropReason::DtlsFailed);
        };
        b2b.on_record(settings, now, side, datagram, leg_outputs);
        self.apply_leg_outputs(id);
        Verdict::Consumed
    }

    /// Runs due DTLS retransmissions and deadlines.
    pub(super) fn run_dtls_timers(&mut self, now: MonoTime) {
        while let Some(Reverse((due, slot, generation))) = self.dtls_timers.peek().copied() {
            if due > now {
                break;
            }
            self.dtls_timers.pop();
            let id = SessionId {
                index: slot,
                generation,
            };
            let Engine {
                slots,
                config,
                leg_outputs,
                ..
            } = self;
            let Some(settings) = config.dtls.as_ref() else { return };
            let Some(b2b) = slots
                .get_mut(slot as usize)
                .filter(|s| s.generation == generation)
                .and_then(|s| s.session.as_mut())
                .and_then(|s| s.dtls.as_deref_mut())
            else {
                continue;
            };
            b2b.scheduled = None;
            b2b.on_timeout(settings, now, leg_outputs);
            self.apply_leg_outputs(id);
        }
    }

    pub(super) fn next_dtls_timer(&self) -> Option<MonoTime> {
        self.dtls_timers.peek().map(|Reverse((due, ..))| *due)
    }

    /// Sends the legs' records, announces handshakes, keys the session's
    /// SRTCP once both legs are up, and schedules the next DTLS timer.
    fn apply_leg_outputs(&mut self, id: SessionId) {
        let cap = self.config.max_queued_events;
        let mut outs = std::mem::take(&mut self.leg_outputs);
        for out in outs.drain(..) {
            let Some(session) = self.session(id) else { break };
            let o = match out {
                LegOutput::Record(toward, bytes) => {
                    let (socket, destination) = leg_route(session, &self.config.relays, toward, false);
                    Output::Transmit(Transmit {
                        socket,
                        destination,
                        payload: Payload::Owned(bytes),
                    })
                }
                LegOutput::Connected(side, suite) => {
                    self.counters.dtls_connected += 1;
                    Output::Event(Event::DtlsConnected {
                        session: id,
                        side,
                        suite: suite.sdp_name(),
                    })
                }
                LegOutput::Failed(side, reason) => {
                    self.counters.dtls_failed += 1;
                    Output::Event(Event::DtlsFailed {
                        session: id,
                        side,
                        reason,
                    })
                }
            };
            push_output(&mut self.outputs, &mut self.counters, cap, o);
        }
        self.leg_outputs = outs;
        let Some(session) = self.session_mut(id) else { return };
        let Some(b2b) = session.dtls.as_deref_mut() else { return };
        if session.crypto.as_ref().is_none_or(|c| !c.back_to_back) {
            if let Some([client, upstream]) = b2b.leg_keys() {
                if let Ok(c) = super::crypto::SessionCrypto::back_to_back(client, upstream) {
                    session.crypto = Some(Box::new(c));
                }
            }
        }
        if let Some(next) = b2b.next_timeout() {
            if b2b.scheduled.is_none_or(|s| next < s) {
                b2b.scheduled = Some(next);
                self.dtls_timers.push(Reverse((next, id.index, id.generation)));
            }
        }
    }
}
