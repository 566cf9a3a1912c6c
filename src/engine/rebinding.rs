//! NAT rebinding: when a session may follow its client to a new address.
//!
//! A session is bound to the client address that opened it. Datagrams from
//! any other address belong to a session of their own (or are refused), so a
//! third party can never redirect a call's media by sending to the relay.
//!
//! A client behind a NAT whose mapping changes comes back from a new
//! address. ICE moves a path only after a connectivity check from the new
//! address succeeds (RFC 8445 §7.3.1.3–7.3.1.4; consent, RFC 7675): the
//! check carries the session's USERNAME and a MESSAGE-INTEGRITY that only
//! the real client can compute and only the upstream, which holds the ICE
//! password, can verify. Policy [`NatRebinding::Stun`] follows that rule in
//! two steps, because the upstream never sees the new address itself:
//!
//! 1. *The check*: a binding request whose USERNAME is the one another
//!    session's client last used is forwarded on that session; the
//!    upstream's answer goes back to the address that sent it. An error
//!    answer (integrity failure is 401, RFC 8489 §9.1.3) or none within
//!    [`CHECK_MAX_AGE`] ends it: the session stays.
//! 2. *The probe*: after a success answer the proxy sends its own binding
//!    request (random transaction id) to the new address, and moves the
//!    session only when a response with that id comes back from there
//!    (ICE agents answer even an unauthenticated request, with 400, as
//!    long as it carries FINGERPRINT: libwebrtc takes a STUN message
//!    without one for media and drops it, which the browser rig showed). This
//!    stands in for ICE's triggered check (RFC 8445 §7.3.1.4): a check
//!    with a spoofed source address, or replayed from where the real
//!    client is not, cannot pull a call's media toward an address that did
//!    not ask for it.
//!
//! A USERNAME can be shared by live flows of one peer (transports that are
//! not bundled; several local candidates), so a request is only taken as a
//! check when it looks like a rebinding (see [`Engine::rebinding_check`]).
//! The policy is off by default; bundled WebRTC is where it belongs.
//!
//! Limits: an on-path attacker who can both replay the client's check and
//! answer the probe from an address of its own can move a silent session
//! until the client's next consent check moves it back (ICE itself
//! authenticates the triggered check's answer, which the proxy cannot).
//!
//! [`Engine::rebinding_check`]: super::Engine::rebinding_check

use super::SessionId;
use crate::time::MonoTime;
use crate::wire::stun::{StunClass, StunView, ATTR_USERNAME, METHOD_BINDING};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// `[limits] nat_rebinding`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NatRebinding {
    /// A session never changes its client address (a rebound client gets a
    /// new session; the upstream's own ICE follows it).
    #[default]
    Never,
    /// A session moves after the upstream accepts an ICE check from the
    /// new address (see the module documentation).
    Stun,
}

/// RFC 8489 §14.3: USERNAME is shorter than 509 bytes; longer ones are not
/// indexed (no session can be found by them).
pub const MAX_USERNAME_LEN: usize = 508;

/// Rebinding checks and probes in flight, engine-wide (one per session).
pub const MAX_PENDING_CHECKS: usize = 1024;

/// An answer (to the check, or to the probe) later than this moves nothing.
/// ICE checks are answered within a round trip; RFC 8489 §6.2.1's 39.5 s
/// retransmission budget is for lossy paths, not for a path worth moving to.
pub const CHECK_MAX_AGE: Duration = Duration::from_secs(10);

/// A session whose client sent anything more recently than this is alive at
/// its address: a check from elsewhere is another flow's, not a rebinding.
pub const MIN_SILENCE: Duration = Duration::from_secs(1);

type Fast = foldhash::fast::RandomState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Forwarded to the upstream; waiting for its answer.
    Check,
    /// The upstream accepted; the proxy's probe went to the new address.
    Probe,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    session: SessionId,
    to: SocketAddr,
    at: MonoTime,
    stage: Stage,
}

/// What an upstream STUN response meant for rebinding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Answer {
    /// Not the answer to a rebinding check of this session.
    None,
    /// The upstream accepted the check from `to`: the answer goes there,
    /// followed by the proxy's probe with transaction id `probe`.
    Accepted { to: SocketAddr, probe: [u8; 12] },
    /// The upstream refused it, or answered too late: the answer goes back
    /// to the address that sent the check (as it would without a proxy).
    Refused { to: SocketAddr },
}

/// The table of pending checks is full of live ones.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChecksFull;

/// The USERNAME index and the rebindings in flight.
#[derive(Debug, Default)]
pub struct Rebinding {
    /// [`index_key`] (upstream and USERNAME) → the session whose client
    /// last sent it.
    by_username: HashMap<Arc<[u8]>, SessionId, Fast>,
    /// The index key each session holds, to replace or remove it.
    of_session: HashMap<SessionId, Arc<[u8]>, Fast>,
    /// Transaction id (the client's check, then the proxy's probe) → the
    /// rebinding it belongs to.
    pending: HashMap<[u8; 12], Pending, Fast>,
    /// The one transaction each session has in `pending`.
    pending_of: HashMap<SessionId, [u8; 12], Fast>,
    /// Reused for lookups: no allocation per binding request.
    scratch: Vec<u8>,
}

/// The upstream's address then the USERNAME, as one byte string: a
/// username only finds sessions relayed to the same upstream.
fn index_key(out: &mut Vec<u8>, upstream: SocketAddr, name: &[u8]) {
    out.clear();
    match upstream.ip() {
        std::net::IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        std::net::IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
    out.extend_from_slice(&upstream.port().to_be_bytes());
    out.extend_from_slice(name);
}

impl Rebinding {
    /// Notes the USERNAME of a binding request the client of `session`
    /// (whose upstream is `upstream`) sent: the session becomes the one
    /// that name finds. Allocates only when it changes.
    pub fn note_client_request(&mut self, session: SessionId, upstream: SocketAddr, stun: &StunView<'_>) {
        if stun.method != METHOD_BINDING || stun.class != StunClass::Request {
            return;
        }
        let Some(name) = username(stun) else { return };
        self.note_username(session, upstream, name);
    }

    /// Makes `name` (a client's binding-request USERNAME toward `upstream`)
    /// find `session`, as if its client had sent it: the signalled ufrags
    /// of an ICE restart (RFC 8445 §9), whose first checks may come from a
    /// new address before any came from the old one.
    pub fn note_username(&mut self, session: SessionId, upstream: SocketAddr, name: &[u8]) {
        if name.is_empty() || name.len() > MAX_USERNAME_LEN {
            return;
        }
        index_key(&mut self.scratch, upstream, name);
        if self.by_username.get(self.scratch.as_slice()) == Some(&session) {
            return;
        }
        self.unindex(session);
        let key: Arc<[u8]> = Arc::from(self.scratch.as_slice());
        self.by_username.insert(key.clone(), session);
        self.of_session.insert(session, key);
    }

    fn unindex(&mut self, session: SessionId) {
        if let Some(key) = self.of_session.remove(&session) {
            if self.by_username.get(&key) == Some(&session) {
                self.by_username.remove(&key);
            }
        }
    }

    /// Drops a closed session's index entry and its rebinding in flight;
    /// returns 1 when one was in flight.
    pub fn forget(&mut self, session: SessionId) -> u64 {
        self.unindex(session);
        match self.pending_of.remove(&session) {
            Some(txid) => {
                self.pending.remove(&txid);
                1
            }
            None => 0,
        }
    }

    /// The session whose client last sent the USERNAME of this binding
    /// request toward `upstream`.
    pub fn owner(&mut self, upstream: SocketAddr, stun: &StunView<'_>) -> Option<SessionId> {
        if stun.method != METHOD_BINDING || stun.class != StunClass::Request {
            return None;
        }
        let name = username(stun)?;
        index_key(&mut self.scratch, upstream, name);
        self.by_username.get(self.scratch.as_slice()).copied()
    }

    /// Remembers a check from `from` for `target`, to be settled by the
    /// upstream's answer; it replaces the target's earlier one. `expired`
    /// counts rebindings dropped unanswered.
    pub fn remember(
        &mut self,
        now: MonoTime,
        target: SessionId,
        from: SocketAddr,
        stun: &StunView<'_>,
        expired: &mut u64,
    ) -> Result<(), ChecksFull> {
        if let Some(old) = self.pending_of.remove(&target) {
            self.pending.remove(&old);
        }
        if self.pending.len() >= MAX_PENDING_CHECKS {
            *expired += self.expire(now);
            if self.pending.len() >= MAX_PENDING_CHECKS {
                return Err(ChecksFull);
            }
        }
        self.insert(
            stun.transaction_id,
            Pending {
                session: target,
                to: from,
                at: now,
                stage: Stage::Check,
            },
        );
        Ok(())
    }

    fn insert(&mut self, txid: [u8; 12], p: Pending) {
        self.pending_of.insert(p.session, txid);
        self.pending.insert(txid, p);
    }

    fn take(&mut self, txid: &[u8; 12]) -> Option<Pending> {
        let p = self.pending.remove(txid)?;
        self.pending_of.remove(&p.session);
        Some(p)
    }

    /// A STUN response the upstream of `session` sent toward its client.
    /// `probe_id` draws the probe's transaction id when the check succeeded.
    pub fn answer(
        &mut self,
        now: MonoTime,
        session: SessionId,
        stun: &StunView<'_>,
        probe_id: impl FnOnce() -> [u8; 12],
    ) -> Answer {
        if self.pending.is_empty() || stun.method != METHOD_BINDING {
            return Answer::None;
        }
        let accepted = match stun.class {
            StunClass::SuccessResponse => true,
            StunClass::ErrorResponse => false,
            StunClass::Request | StunClass::Indication => return Answer::None,
        };
        match self.pending.get(&stun.transaction_id) {
            Some(p) if p.session == session && p.stage == Stage::Check => {}
            _ => return Answer::None,
        }
        let Some(p) = self.take(&stun.transaction_id) else {
            return Answer::None;
        };
        let in_time = now.checked_since(p.at).is_some_and(|age| age <= CHECK_MAX_AGE);
        if !(accepted && in_time) {
            return Answer::Refused { to: p.to };
        }
        let probe = probe_id();
        self.insert(
            probe,
            Pending {
                at: now,
                stage: Stage::Probe,
                ..p
            },
        );
        Answer::Accepted { to: p.to, probe }
    }

    /// A STUN response that arrived from client address `from`: when it
    /// answers a probe sent there, the session to move there.
    pub fn probe_answer(&mut self, now: MonoTime, from: SocketAddr, stun: &StunView<'_>) -> Option<SessionId> {
        if self.pending.is_empty() || !matches!(stun.class, StunClass::SuccessResponse | StunClass::ErrorResponse) {
            return None;
        }
        match self.pending.get(&stun.transaction_id) {
            Some(p) if p.stage == Stage::Probe && p.to == from => {}
            _ => return None,
        }
        let p = self.take(&stun.transaction_id)?;
        now.checked_since(p.at)
            .is_some_and(|age| age <= CHECK_MAX_AGE)
            .then_some(p.session)
    }

    /// Removes rebindings older than [`CHECK_MAX_AGE`]; returns how many.
    pub fn expire(&mut self, now: MonoTime) -> u64 {
        if self.pending.is_empty() {
            return 0;
        }
        let before = self.pending.len();
        let pending_of = &mut self.pending_of;
        self.pending.retain(|_, p| {
            let live = now.checked_since(p.at).is_none_or(|age| age <= CHECK_MAX_AGE);
            if !live {
                pending_of.remove(&p.session);
            }
            live
        });
        (before - self.pending.len()) as u64
    }

    pub fn pending_checks(&self) -> usize {
        self.pending.len()
    }
}

fn username<'a>(stun: &StunView<'a>) -> Option<&'a [u8]> {
    stun.attribute(ATTR_USERNAME)
        .filter(|n| !n.is_empty() && n.len() <= MAX_USERNAME_LEN)
}
