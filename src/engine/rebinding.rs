//! NAT rebinding: when a session may follow its client to a new address.
//!
//! A session is bound to the client address that opened it. Datagrams from
//! any other address belong to a session of their own (or are refused), so a
//! third party can never redirect a call's media by sending to the relay.
//!
//! A client behind a NAT whose mapping changes comes back from a new
//! address. ICE lets the peer move to the new path only after a connectivity
//! check from it succeeds (RFC 8445 §7.3.1.3–7.3.1.4, consent RFC 7675): the
//! check carries the session's USERNAME and a MESSAGE-INTEGRITY that only the
//! real client can compute and only the upstream, which holds the ICE
//! password, can verify. Policy [`NatRebinding::Stun`] follows the same rule
//! without the password: a binding request whose USERNAME is the one another
//! session's client last used is forwarded on *that* session, and the
//! session moves to the new address only when the upstream answers that
//! transaction with a success response. An error response (integrity
//! failure, RFC 8489 §10.1.2: 401) or no answer within [`CHECK_MAX_AGE`]
//! leaves the session where it was.
//!
//! A USERNAME can be shared by live flows of one peer (transports that are
//! not bundled use one ufrag pair), so a check is only taken for rebinding
//! when it looks like one (see [`Engine::rebinding_check`]): the target's
//! client has been silent for [`MIN_SILENCE`], and the checking address has
//! no session yet or only one opened within [`CHECK_MAX_AGE`] (its media
//! arrived before its check). The policy is off by default; bundled WebRTC
//! (one transport per peer connection) is where it belongs.
//!
//! [`Engine::rebinding_check`]: super::Engine::rebinding_check

use super::SessionId;
use crate::time::MonoTime;
use crate::wire::stun::{StunClass, StunView, ATTR_USERNAME, METHOD_BINDING};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
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

/// RFC 8489 §14.3: USERNAME is shorter than 513 bytes; longer ones are not
/// indexed (no session can be found by them).
pub const MAX_USERNAME_LEN: usize = 512;

/// Rebinding checks awaiting the upstream's answer, engine-wide.
pub const MAX_PENDING_CHECKS: usize = 1024;

/// An answer later than this does not move the session (a transaction's
/// retransmissions end well within it, RFC 8489 §6.2.1).
pub const CHECK_MAX_AGE: Duration = Duration::from_secs(10);

/// A session whose client sent anything more recently than this is alive at
/// its address: a check from elsewhere is another flow's, not a rebinding.
pub const MIN_SILENCE: Duration = Duration::from_secs(1);

type Fast = foldhash::fast::RandomState;

#[derive(Clone, Copy, Debug)]
struct PendingCheck {
    session: SessionId,
    to: SocketAddr,
    at: MonoTime,
}

/// What an upstream STUN response meant for rebinding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Answer {
    /// Not the answer to a rebinding check of this session.
    None,
    /// The upstream accepted the check: move the session to `to`.
    Accepted { to: SocketAddr },
    /// The upstream refused it, or answered too late: the answer goes back
    /// to the address that sent the check (as it would without a proxy).
    Refused { to: SocketAddr },
}

/// The table of pending checks is full of live ones.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChecksFull;

/// The USERNAME index and the checks in flight.
#[derive(Debug, Default)]
pub struct Rebinding {
    /// [`index_key`] (upstream and USERNAME) → the session whose client
    /// last sent it.
    by_username: HashMap<Box<[u8]>, SessionId, Fast>,
    /// The index key each session holds, to replace or remove it.
    of_session: HashMap<SessionId, Box<[u8]>, Fast>,
    /// Transaction id → the check it belongs to.
    pending: HashMap<[u8; 12], PendingCheck, Fast>,
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
    /// (whose upstream is `upstream`) sent. Allocates only when it changes.
    pub fn note_client_request(&mut self, session: SessionId, upstream: SocketAddr, stun: &StunView<'_>) {
        if stun.method != METHOD_BINDING || stun.class != StunClass::Request {
            return;
        }
        let Some(name) = username(stun) else { return };
        index_key(&mut self.scratch, upstream, name);
        if self.of_session.get(&session).is_some_and(|k| **k == *self.scratch) {
            return;
        }
        self.forget(session);
        let key = Box::<[u8]>::from(self.scratch.as_slice());
        self.by_username.insert(key.clone(), session);
        self.of_session.insert(session, key);
    }

    /// Drops a closed session's index entry and checks.
    pub fn forget(&mut self, session: SessionId) {
        if let Some(key) = self.of_session.remove(&session) {
            if self.by_username.get(&key) == Some(&session) {
                self.by_username.remove(&key);
            }
        }
        if !self.pending.is_empty() {
            self.pending.retain(|_, p| p.session != session);
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
    /// upstream's answer. `expired` counts checks dropped unanswered.
    pub fn remember(
        &mut self,
        now: MonoTime,
        target: SessionId,
        from: SocketAddr,
        stun: &StunView<'_>,
        expired: &mut u64,
    ) -> Result<(), ChecksFull> {
        if self.pending.len() >= MAX_PENDING_CHECKS {
            *expired += self.expire(now);
            if self.pending.len() >= MAX_PENDING_CHECKS {
                return Err(ChecksFull);
            }
        }
        self.pending.insert(
            stun.transaction_id,
            PendingCheck {
                session: target,
                to: from,
                at: now,
            },
        );
        Ok(())
    }

    /// A STUN response the upstream of `session` sent toward its client.
    pub fn answer(&mut self, now: MonoTime, session: SessionId, stun: &StunView<'_>) -> Answer {
        if self.pending.is_empty() || stun.method != METHOD_BINDING {
            return Answer::None;
        }
        let accepted = match stun.class {
            StunClass::SuccessResponse => true,
            StunClass::ErrorResponse => false,
            StunClass::Request | StunClass::Indication => return Answer::None,
        };
        match self.pending.get(&stun.transaction_id) {
            Some(p) if p.session == session => {}
            _ => return Answer::None,
        }
        let Some(p) = self.pending.remove(&stun.transaction_id) else {
            return Answer::None;
        };
        let in_time = now.checked_since(p.at).is_some_and(|age| age <= CHECK_MAX_AGE);
        if accepted && in_time {
            Answer::Accepted { to: p.to }
        } else {
            Answer::Refused { to: p.to }
        }
    }

    /// Removes checks older than [`CHECK_MAX_AGE`]; returns how many.
    pub fn expire(&mut self, now: MonoTime) -> u64 {
        let before = self.pending.len();
        self.pending
            .retain(|_, p| now.checked_since(p.at).is_none_or(|age| age <= CHECK_MAX_AGE));
        (before - self.pending.len()) as u64
    }

    pub fn pending_checks(&self) -> usize {
        self.pending.len()
    }

    pub fn indexed_usernames(&self) -> usize {
        self.by_username.len()
    }
}

fn username<'a>(stun: &StunView<'a>) -> Option<&'a [u8]> {
    stun.attribute(ATTR_USERNAME)
        .filter(|n| !n.is_empty() && n.len() <= MAX_USERNAME_LEN)
}
