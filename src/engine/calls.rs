//! Calls set up through the calls API and their binding to sessions, and
//! the engine's side of back-to-back DTLS: binding on the first ICE check,
//! DTLS records, handshake timers, and the session's SRTCP contexts once
//! both legs have keys.
//!
//! A call is known by its two ICE username fragments. A Binding request
//! carries `USERNAME = <receiver's ufrag>:<sender's ufrag>` (RFC 8445
//! §7.2.2), so a check from the client reads `upstream:client` and one from
//! the upstream `client:upstream`; either binds the session it arrives on.

use super::counters::DropReason;
use super::dtls::{BackToBack, CallSetup, LegOutput};
use super::io::{Event, Output, Payload, Transmit, Verdict};
use super::{leg_route, push_output, Engine, SessionId, Side};
use crate::time::MonoTime;
use crate::wire::stun::{StunView, ATTR_USERNAME};
use foldhash::HashMap;
use std::cmp::Reverse;
use std::sync::Arc;

struct Entry {
    setup: Arc<CallSetup>,
    /// When an unbound call is forgotten; `None` once bound.
    expires: Option<MonoTime>,
    session: Option<SessionId>,
}

/// Calls by id, and by (upstream ufrag, client ufrag).
#[derive(Default)]
pub(super) struct Calls {
    by_id: HashMap<String, Entry>,
    by_ufrags: HashMap<(String, String), String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CallError {
    #[error("no relay terminates DTLS (set dtls = \"terminate\" on a [[relay]])")]
    NotTerminating,
    #[error("too many calls waiting for their session")]
    TooManyCalls,
    #[error("another call already uses these ICE username fragments")]
    UfragsInUse,
}

impl Calls {
    fn expire(&mut self, now: MonoTime) {
        let by_ufrags = &mut self.by_ufrags;
        self.by_id.retain(|_, e| {
            let keep = e.expires.is_none_or(|t| t > now);
            if !keep {
                by_ufrags.remove(&ufrag_key(&e.setup));
            }
            keep
        });
    }

    fn remove(&mut self, call_id: &str) -> Option<Option<SessionId>> {
        let e = self.by_id.remove(call_id)?;
        self.by_ufrags.remove(&ufrag_key(&e.setup));
        Some(e.session)
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

fn ufrag_key(setup: &CallSetup) -> (String, String) {
    (setup.upstream.ufrag.clone(), setup.client.ufrag.clone())
}

impl Engine {
    /// Registers a call whose offer and answer passed through the calls
    /// API; the session whose ICE checks carry its ufrags terminates DTLS
    /// on both legs. Setting a known call id again replaces it (a
    /// re-offer), unless it is already bound.
    pub fn set_call(&mut self, now: MonoTime, setup: CallSetup) -> Result<(), CallError> {
        let Some(settings) = self.config.dtls.as_ref() else {
            return Err(CallError::NotTerminating);
        };
        let (ttl, max) = (settings.unbound_call_ttl, settings.max_calls);
        self.calls.expire(now);
        let key = ufrag_key(&setup);
        if let Some(owner) = self.calls.by_ufrags.get(&key) {
            if *owner != setup.call_id {
                return Err(CallError::UfragsInUse);
            }
        }
        if let Some(old) = self.calls.by_id.get(&setup.call_id) {
            if old.session.is_some() {
                return Err(CallError::UfragsInUse);
            }
            let old_key = ufrag_key(&old.setup);
            self.calls.by_ufrags.remove(&old_key);
        } else if self.calls.len() >= max {
            return Err(CallError::TooManyCalls);
        }
        self.calls.by_ufrags.insert(key, setup.call_id.clone());
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
