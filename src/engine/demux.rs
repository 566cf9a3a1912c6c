//! Which session a client datagram belongs to, and opening sessions.
//!
//! The engine is the one owner of the (relay, client address) → session
//! map: admission (table room, per-prefix rate, draining), non-mux pairing
//! (RTCP from the client's RTP port + 1, RFC 3550 §11), interim sessions
//! and NAT rebinding (a session follows its client only after the upstream
//! accepted an ICE check from the new address and the client answered the
//! proxy's own probe from there) all happen here. The driver learns the
//! outcome as outputs: [`Output::OpenUpstream`], transmits, events.

use super::io::{CloseReason, Event, Output, Verdict};
use super::rebinding::{self, NatRebinding};
use super::session::{NonMux, Session};
use super::{Cap, DropReason, Engine, OpenError, SessionId, SessionInfo, SessionKeys, Side, Slot};
use crate::time::MonoTime;
use crate::wire::stun::StunView;
use crate::wire::{PacketKind, Ssrc};
use rand_core::Rng;
use std::net::{IpAddr, SocketAddr};

/// Which clients a `[[srtp]]` entry's keys are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientMatch {
    Addr(SocketAddr),
    Ip(IpAddr),
}

impl ClientMatch {
    pub fn matches(self, client: SocketAddr) -> bool {
        match self {
            ClientMatch::Addr(a) => a == client,
            ClientMatch::Ip(ip) => ip == client.ip(),
        }
    }
}

/// SRTCP keys provisioned from config for sessions of matching clients.
#[derive(Clone, Debug)]
pub struct StaticKeys {
    pub client: ClientMatch,
    pub keys: SessionKeys,
}

/// The route map's key for a client address on a relay, packed into two
/// integers: hashing and comparing them is a few instructions, where a
/// `(usize, SocketAddr)` key walks the address enum field by field (this
/// look-up runs for every client datagram). IPv4 addresses take their
/// IPv4-mapped IPv6 form, the form a dual-stack socket reports the same
/// host in. Relays are numbered in 16 bits (see `Session::relay`). The
/// address is two u64 halves, not a u128: a 16-byte alignment would pad
/// each map entry (key and id) from 32 to 48 bytes, so fewer entries per
/// cache line in a look-up that usually misses the cache.
pub(super) fn route_key(relay: usize, a: SocketAddr) -> RouteKey {
    let ip = match a.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let scope = match a {
        SocketAddr::V6(v6) => u64::from(v6.scope_id()),
        SocketAddr::V4(_) => 0,
    };
    let relay = (relay & 0xffff) as u64;
    let ip = u128::from(ip);
    (
        (ip >> 64) as u64,
        ip as u64,
        relay << 48 | scope << 16 | u64::from(a.port()),
    )
}

/// [`route_key`]'s packed form: address high and low halves, then relay,
/// scope and port.
pub(super) type RouteKey = (u64, u64, u64);

/// A port pair's even member: a tap keys both ends by pair, so RTP (P) and
/// RTCP (P + 1) of one endpoint meet in one session.
fn pair_of(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip(), a.port() & !1)
}

/// What [`Engine::rebinding_check`] made of a client datagram.
enum RebindingCheck {
    /// Not a rebinding check: routed as usual.
    No,
    /// A check for this session: forwarded on it.
    Check(SessionId),
    /// A check that comes too early: dropped (see the method).
    Hold,
}

impl Engine {
    /// Finds (or opens) the session of a datagram that arrived on a relay's
    /// client-facing socket. `Err` carries the verdict of a datagram that
    /// belongs to no session (refused) or that the engine took itself (the
    /// answer to its rebinding probe).
    #[allow(clippy::too_many_arguments)] // the datagram's fields, unpacked
    pub(super) fn route_client(
        &mut self,
        now: MonoTime,
        relay: usize,
        rtcp: bool,
        from: SocketAddr,
        local: SocketAddr,
        kind: PacketKind,
        bytes: &[u8],
    ) -> Result<Routed, Verdict> {
        let Some(upstream) = self.config.relays.get(relay).map(|r| r.upstream) else {
            return Err(Verdict::Drop(DropReason::UnknownSession));
        };
        if upstream.is_none() {
            let key = (relay, pair_of(from), pair_of(local));
            if let Some(id) = self.taps.get(&key) {
                return Ok(Routed::Session(*id));
            }
            let info = SessionInfo {
                client: from,
                upstream: local,
            };
            let id = self.open(now, relay, info).map_err(|_| refused())?;
            self.taps.insert(key, id);
            return Ok(Routed::Session(id));
        }
        // Non-mux RTCP arrives from the client's RTCP port: the session is
        // the one of its RTP address (port − 1) until the port is learned.
        let client = match rtcp {
            true => SocketAddr::new(from.ip(), from.port().wrapping_sub(1)),
            false => from,
        };
        let known = self.routes.get(&route_key(relay, client)).copied();
        if !rtcp && kind == PacketKind::Stun && self.config.nat_rebinding == NatRebinding::Stun {
            if self.rebinding_probe_answer(now, relay, from, bytes) {
                return Err(Verdict::Consumed);
            }
            match self.rebinding_check(now, relay, known, from, bytes) {
                RebindingCheck::Check(target) => return Ok(Routed::Check(target)),
                RebindingCheck::Hold => return Err(Verdict::Drop(DropReason::RebindingHeld)),
                RebindingCheck::No => {}
            }
        }
        let id = match known {
            Some(id) => id,
            None => {
                let info = SessionInfo {
                    client,
                    upstream: upstream.unwrap_or(local),
                };
                self.open(now, relay, info).map_err(|_| refused())?
            }
        };
        if rtcp {
            if let Some(ports) = self.session_mut(id).and_then(|s| s.non_mux.as_mut()) {
                ports.client_rtcp.get_or_insert(from);
            }
        }
        Ok(Routed::Session(id))
    }

    /// Opens a session on `relay` for a client, as a first datagram from it
    /// would: the driver gets [`Output::OpenUpstream`] and
    /// [`Event::SessionOpened`]. For drivers that learn of a flow before
    /// its first datagram (signalling) and for tests; the upstream is the
    /// relay's (for a tap, `upstream` as given).
    pub fn open_session(&mut self, now: MonoTime, relay: usize, info: SessionInfo) -> Result<SessionId, OpenError> {
        let settings = self.config.relays.get(relay).ok_or(OpenError::NoRelay)?;
        let tap = settings.upstream.is_none();
        let info = SessionInfo {
            client: info.client,
            upstream: settings.upstream.unwrap_or(info.upstream),
        };
        if !tap {
            if let Some(id) = self.routes.get(&route_key(relay, info.client)) {
                return Ok(*id);
            }
        }
        let id = self.open(now, relay, info)?;
        if tap {
            self.taps
                .insert((relay, pair_of(info.client), pair_of(info.upstream)), id);
        }
        Ok(id)
    }

    /// Admission, the slot, the report timers, static keys, the route.
    fn open(&mut self, now: MonoTime, relay: usize, info: SessionInfo) -> Result<SessionId, OpenError> {
        let relay16 = u16::try_from(relay).map_err(|_| OpenError::NoRelay)?;
        // The table's room and the source prefix's rate, before anything
        // is spent on the flow (spoofed floods stop here).
        if !self.accepting {
            self.counters.sessions_refused += 1;
            return Err(OpenError::Draining);
        }
        if self.live >= self.config.max_sessions {
            self.counters.sessions_refused += 1;
            self.counters.caps_hit.hit(Cap::SessionTable);
            return Err(OpenError::TableFull(self.config.max_sessions));
        }
        if let Some(limiter) = self.prefixes.as_mut() {
            if !limiter.allow(now, info.client.ip(), &mut self.counters.caps_hit) {
                self.counters.sessions_refused += 1;
                self.counters.sessions_rate_limited += 1;
                return Err(OpenError::RateLimited);
            }
        }
        let settings = &self.config.relays[relay];
        // A non-mux session's RTCP goes to the upstream's RTCP address,
        // its RTP port + 1 unless configured (RFC 3550 §11).
        let next_port = SocketAddr::new(info.upstream.ip(), info.upstream.port().wrapping_add(1));
        let (mode, upstream_rtcp, tap) = (
            settings.mode,
            settings.non_mux.then(|| settings.upstream_rtcp.unwrap_or(next_port)),
            settings.upstream.is_none(),
        );
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len()).map_err(|_| OpenError::TableFull(self.live))?;
                self.slots.push(Slot {
                    generation: 0,
                    session: None,
                });
                i
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        let id = SessionId {
            index,
            generation: slot.generation,
        };
        let own_ssrc = Ssrc(self.rng.next_u32());
        let cname_bits = self.rng.next_u64();
        let mut session = Session::new(id, info, now, mode, own_ssrc, cname_bits);
        session.relay = relay16;
        session.non_mux = upstream_rtcp.map(|upstream_rtcp| {
            Box::new(NonMux {
                client_rtcp: None,
                upstream_rtcp,
            })
        });
        if let Some(k) = self.config.static_keys.iter().find(|k| k.client.matches(info.client)) {
            // Validated when the config was mapped; a failure here is the
            // crypto provider's, and the session stays keyless.
            if let Ok(crypto) = super::crypto::SessionCrypto::new(&k.keys) {
                session.crypto = Some(Box::new(crypto));
                session.encrypted = true;
                session.srtp_suite = k.keys.suite();
            }
        }
        self.slots[index as usize].session = Some(session);
        if mode != super::RtcpMode::Forward {
            // RFC 3550 §6.2: the first report after half the minimum interval.
            let first = self.config.report_policy.min_interval_video / 2;
            for side in Side::BOTH {
                let due = now + super::rtcp_policy::randomised_interval(first, self.unit());
                self.schedule_report(id, side, due);
            }
        }
        self.live += 1;
        self.counters.sessions_opened += 1;
        if self.next_sweep.is_none() {
            self.next_sweep = self.sweeps().then(|| now + super::SWEEP_INTERVAL);
        }
        if !tap {
            self.routes.insert(route_key(relay, info.client), id);
            self.push(Output::OpenUpstream {
                session: id,
                relay,
                upstream: info.upstream,
                upstream_rtcp,
            });
        }
        self.push(Output::Event(Event::SessionOpened {
            id,
            relay,
            client: info.client,
        }));
        Ok(id)
    }

    /// Removes a closing session's routes.
    pub(super) fn unroute(&mut self, session: &Session) {
        let id = session.id;
        let key = route_key(usize::from(session.relay), session.info.client);
        if self.routes.get(&key) == Some(&id) {
            self.routes.remove(&key);
        }
        let tap = (
            usize::from(session.relay),
            pair_of(session.info.client),
            pair_of(session.info.upstream),
        );
        if self.taps.get(&tap) == Some(&id) {
            self.taps.remove(&tap);
        }
    }

    /// NAT rebinding ([`NatRebinding::Stun`]): a datagram from client
    /// address `from` (which belongs to session `current`, or to none) that
    /// is an ICE check carrying the USERNAME another session's client last
    /// used, toward the same upstream on the same relay. Returns that
    /// session: the datagram goes to it (as from its client) and on to its
    /// upstream; the session moves to `from` only if the upstream answers
    /// the check with success and the client answers the proxy's probe.
    ///
    /// Only what looks like a rebinding is a check: the target's client
    /// has been silent for [`rebinding::MIN_SILENCE`] (a live flow sharing
    /// the USERNAME is not moved), and `current` is absent or an interim
    /// session: opened within [`rebinding::CHECK_MAX_AGE`] and never
    /// answered by the upstream (media from the new address that came
    /// before its check).
    ///
    /// A check that comes before that second of silence, from an interim
    /// session whose first datagram came after the target's client last
    /// sent (the flows do not overlap: a NAT rebinding, not a second
    /// flow), is held: dropped, so that the upstream does not answer it on
    /// the interim session, which would make that session established and
    /// the move impossible. ICE checks are repeated (RFC 8445 §14; a
    /// browser checks its selected pair every few seconds), and the next
    /// one finds the old address silent.
    fn rebinding_check(
        &mut self,
        now: MonoTime,
        relay: usize,
        current: Option<SessionId>,
        from: SocketAddr,
        datagram: &[u8],
    ) -> RebindingCheck {
        let Ok(stun) = StunView::parse(datagram) else {
            return RebindingCheck::No;
        };
        let Some(upstream) = self.config.relays.get(relay).and_then(|r| r.upstream) else {
            return RebindingCheck::No;
        };
        let Some(target) = self.rebinding.owner(upstream, &stun).filter(|t| Some(*t) != current) else {
            return RebindingCheck::No;
        };
        let Some(target_session) = self.session(target).filter(|s| usize::from(s.relay) == relay) else {
            return RebindingCheck::No;
        };
        let last_heard = target_session.sides[Side::Client.index()].last_activity;
        let silent = last_heard.is_none_or(|t| now.saturating_since(t) >= rebinding::MIN_SILENCE);
        let interim = |s: &Session| {
            now.saturating_since(s.opened_at) <= rebinding::CHECK_MAX_AGE
                && s.sides[Side::Upstream.index()].last_activity.is_none()
        };
        let current = current.and_then(|c| self.session(c));
        if current.is_some_and(|s| !interim(s)) {
            return RebindingCheck::No;
        }
        if !silent {
            // Held only when the new flow began after the old one's last
            // datagram; overlapping flows are two flows.
            let after = current.is_some_and(|s| last_heard.is_none_or(|t| s.opened_at >= t));
            return if after {
                RebindingCheck::Hold
            } else {
                RebindingCheck::No
            };
        }
        let mut expired = 0;
        let result = self.rebinding.remember(now, target, from, &stun, &mut expired);
        self.counters.rebinds_rejected += expired;
        match result {
            Ok(()) => RebindingCheck::Check(target),
            Err(_) => {
                self.counters.caps_hit.hit(Cap::RebindChecks);
                RebindingCheck::No
            }
        }
    }

    /// NAT rebinding, last step: a STUN response from client address
    /// `from` that answers the proxy's probe moves the probed session
    /// there ([`Event::SessionRebound`]); the response was the proxy's own
    /// transaction and goes no further. An interim session the new address
    /// opened meanwhile (media before the check) is closed: its flow is
    /// the moved session's.
    fn rebinding_probe_answer(&mut self, now: MonoTime, relay: usize, from: SocketAddr, datagram: &[u8]) -> bool {
        if self.rebinding.pending_checks() == 0 {
            return false;
        }
        let Ok(stun) = StunView::parse(datagram) else {
            return false;
        };
        let Some(id) = self.rebinding.probe_answer(now, from, &stun) else {
            return false;
        };
        if let Some(interim) = self.routes.get(&route_key(relay, from)).copied().filter(|i| *i != id) {
            self.close(now, interim, CloseReason::Superseded);
        }
        let Some(session) = self.session_mut(id) else {
            return false;
        };
        let old = std::mem::replace(&mut session.info.client, from);
        // Non-mux: the RTCP port is learned again from the new address.
        if let Some(ports) = session.non_mux.as_mut() {
            ports.client_rtcp = None;
        }
        let relay = usize::from(session.relay);
        if self.routes.get(&route_key(relay, old)) == Some(&id) {
            self.routes.remove(&route_key(relay, old));
        }
        self.routes.insert(route_key(relay, from), id);
        self.counters.sessions_rebound += 1;
        self.push(Output::Event(Event::SessionRebound {
            session: id,
            from: old,
            to: from,
        }));
        true
    }
}

/// Where a client datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Routed {
    /// The session of its address (perhaps just opened).
    Session(SessionId),
    /// A NAT rebinding check for this session, from an address that is not
    /// (yet) its client's: relayed on the session, but it says nothing
    /// about the client's current address being alive.
    Check(SessionId),
}

/// A datagram for no session, because opening one was refused.
fn refused() -> Verdict {
    Verdict::Drop(DropReason::UnknownSession)
}
