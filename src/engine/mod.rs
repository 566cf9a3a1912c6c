//! The sans-IO engine. Its driver (the relay runtime, the capture
//! analyzer, a test) hands it every datagram and timer expiry through
//! [`Engine::handle_input`] and does what [`Engine::poll_output`] says:
//! the engine owns demultiplexing (which session a datagram belongs to,
//! admission, NAT rebinding, non-mux pairing), statistics, the RTCP policy
//! and where every datagram goes. It owns no sockets and reads no clock:
//! `now` is always handed in.
//!
//! Files, one concern each: [`io`] the contract's types, `demux` routing
//! and session opening, `rtcp_in` reading (and rewriting) RTCP,
//! `rtcp_out` the proxy's own reports, [`mode`] RTCP modes and pacing,
//! [`rtcp_policy`] building reports, `session` per-flow state,
//! [`rebinding`] and [`admission`] the hostile-input policies.

pub mod admission;
mod calls;
mod counters;
pub mod crypto;
mod demux;
pub mod dtls;
pub mod io;
pub mod media;
pub mod mode;
pub mod rebinding;
mod rtcp_in;
mod rtcp_out;
pub mod rtcp_policy;
mod session;
mod snapshot;

pub use counters::{kind_index, kind_label, Cap, CapHits, Counters, DropReason, KindCounts, DROP_REASONS, KINDS};
pub use crypto::SessionKeys;

/// What [`Engine::set_session_keys`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysOutcome {
    Done,
    UnknownSession,
    /// Refused, and why (for the API's 409): removing keys of a
    /// `terminate` session (see [`crypto`]'s module docs), or any change to
    /// keys that came from DTLS.
    Refused(&'static str),
}
pub use demux::{ClientMatch, StaticKeys};
pub use io::{CloseReason, Event, Input, Output, Payload, SocketRef, Transmit, Verdict};
pub use mode::{ReportPolicy, RtcpMode};
pub use rebinding::NatRebinding;
pub use session::{FeedbackCounts, LegRtt, NonMux, Session, SessionInfo, SideRtcp, SideState, Source};
pub use snapshot::{DtlsSnapshot, RtxSnapshot, SessionSnapshot, SideSnapshot, SourceSnapshot};

use crate::stats::ClockRates;
use crate::time::MonoTime;
use crate::wire::rtp::{RtpError, RtpView};
use crate::wire::stun::StunView;
use crate::wire::{classify, PacketKind};
use foldhash::HashMap;
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;
use session::RtpOutcome;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Which endpoint a datagram came from. A session's *leg* on a side is the
/// path between the proxy and the endpoint on that side.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// From the client (heading upstream).
    Client,
    /// From the upstream, e.g. the SFU (heading to the client).
    Upstream,
}

impl Side {
    #[inline]
    pub fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Upstream => 1,
        }
    }

    #[inline]
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }

    pub const BOTH: [Side; 2] = [Side::Client, Side::Upstream];
}

/// Handle to a session: slot index and a generation, so a stale id held by
/// the runtime or the API never reaches a newer session in the same slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct SessionId {
    index: u32,
    generation: u32,
}

impl SessionId {
    /// The slot the session occupies: dense and small, so drivers can
    /// index their own per-session tables by it (check the whole id too).
    pub fn slot(self) -> usize {
        self.index as usize
    }

    pub fn as_u64(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.index)
    }

    pub fn from_u64(v: u64) -> Self {
        SessionId {
            index: v as u32,
            generation: (v >> 32) as u32,
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.as_u64())
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How one `[[relay]]` treats its sessions (the engine's view of the
/// config: see [`crate::config::Config::engine_config`]).
#[derive(Clone, Debug)]
pub struct RelaySettings {
    pub mode: RtcpMode,
    /// Where a session's upstream socket connects. `None`: a passive tap
    /// (capture analysis), where a session's upstream is the address its
    /// first datagram was sent to and clients are keyed by (address, port
    /// pair) on both ends.
    pub upstream: Option<SocketAddr>,
    /// The upstream's RTCP address on a non-mux relay.
    pub upstream_rtcp: Option<SocketAddr>,
    /// The relay has a client-facing RTCP socket (`listen_rtcp`): RTCP on
    /// its own port, a session's upstream sockets an even/odd pair.
    pub non_mux: bool,
    /// Payload type → RTP clock rate for this relay's streams.
    pub clock_rates: ClockRates,
    /// `dtls = "terminate"`: sessions bound to a call of the calls API
    /// terminate DTLS-SRTP on both legs ([`dtls`]); others pass through.
    pub dtls_terminate: bool,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            mode: RtcpMode::Forward,
            upstream: None,
            upstream_rtcp: None,
            non_mux: false,
            clock_rates: ClockRates::new(&Default::default()),
            dtls_terminate: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// One entry per `[[relay]]`, in config order ([`SocketRef::Listen`]'s
    /// `relay` indexes it).
    pub relays: Vec<RelaySettings>,
    pub max_sessions: usize,
    /// Cap on SSRCs tracked per side of a session (attacker-controlled).
    pub max_sources_per_side: usize,
    /// Sessions silent this long on both sides are closed; `None` never.
    pub idle_timeout: Option<Duration>,
    /// Outputs (transmits, events) kept for the driver; past this the
    /// oldest are dropped (counted).
    pub max_queued_events: usize,
    pub report_policy: ReportPolicy,
    /// Seeds the proxy's per-session SSRC/CNAME and report-interval
    /// randomisation (the driver picks it; tests fix it).
    pub seed: u64,
    /// New sessions per second per source prefix; 0: no limit.
    pub new_sessions_per_prefix_per_sec: u32,
    /// Sessions that never got a datagram from the upstream within this
    /// are closed (spoofed or abandoned flows); `None` never.
    pub unanswered_timeout: Option<Duration>,
    /// Datagrams per second accepted from each side of a session (a
    /// token bucket with a one-second burst); 0: no limit.
    pub max_packets_per_side_per_sec: u32,
    /// Whether a session may follow its client to a new address.
    pub nat_rebinding: NatRebinding,
    /// `[[srtp]]`: SRTCP keys for sessions of known client addresses.
    pub static_keys: Vec<StaticKeys>,
    /// The proxy's DTLS identity and limits, when a relay terminates DTLS.
    pub dtls: Option<dtls::DtlsSettings>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            relays: vec![RelaySettings::default()],
            max_sessions: 100_000,
            max_sources_per_side: 64,
            idle_timeout: Some(Duration::from_secs(30)),
            max_queued_events: 65_536,
            report_policy: ReportPolicy::default(),
            seed: 0x5eed,
            new_sessions_per_prefix_per_sec: 0,
            unanswered_timeout: None,
            max_packets_per_side_per_sec: 0,
            nat_rebinding: NatRebinding::Never,
            static_keys: Vec::new(),
            dtls: None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum OpenError {
    #[error("session table full ({0} sessions)")]
    TableFull(usize),
    #[error("too many new sessions from this source prefix")]
    RateLimited,
    #[error("not accepting new sessions (draining)")]
    Draining,
    #[error("no such relay")]
    NoRelay,
}

/// The answer to a NAT rebinding check, found while handling the
/// upstream's STUN response: where it goes instead of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CheckAnswer {
    /// The address the check came from: the answer goes there.
    to: SocketAddr,
    /// The upstream accepted: the transaction id of the proxy's binding
    /// request to send after the answer; its response from `to` completes
    /// the move.
    probe: Option<[u8; 12]>,
}

/// How often idle sessions are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Sessions live in the slot table itself: the per-packet path then reads
/// the generation, the side's counters and its SSRC index from adjacent
/// memory instead of chasing a pointer to a boxed session first.
#[repr(C)]
struct Slot {
    generation: u32,
    session: Option<Session>,
}

pub struct Engine {
    config: EngineConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    counters: Counters,
    /// What the driver does next, in order ([`Engine::poll_output`]).
    outputs: VecDeque<Output>,
    /// The forward of the datagram last handed in, when nothing was queued
    /// before it: most datagrams yield exactly this one output, and it
    /// skips the queue (a push and a pop of an 80-byte `Output` per
    /// datagram). Only ever set while `outputs` is empty, so it comes out
    /// first and the order of outputs is the order they were made in.
    forward: Option<Transmit>,
    next_sweep: Option<MonoTime>,
    /// Report ticks: (due, slot index, generation, side index). Entries of
    /// closed sessions or superseded times are skipped when popped.
    report_timers: BinaryHeap<Reverse<(MonoTime, u32, u32, u8)>>,
    /// Scratch for `terminate` rewrites (moved into the transmit).
    rewritten: Vec<u8>,
    /// Scratch: `auto` streams whose real reports returned in the compound
    /// being read (side they came from, SSRC).
    cleared: Vec<(Side, crate::wire::Ssrc)>,
    rng: Pcg64Mcg,
    /// (monotonic, wall since the Unix epoch) from [`Input::WallClock`],
    /// for NTP timestamps in generated reports.
    wall_anchor: (MonoTime, Duration),
    prefixes: Option<admission::PrefixLimiter>,
    rebinding: rebinding::Rebinding,
    /// Set while handling an upstream STUN answer to a rebinding check.
    check_answer: Option<CheckAnswer>,
    /// (relay, client address) → session, for live relays (keyed by
    /// [`demux::route_key`]).
    routes: HashMap<demux::RouteKey, SessionId>,
    /// (client, local) → session, for tap relays (ports folded to pairs).
    taps: HashMap<(usize, SocketAddr, SocketAddr), SessionId>,
    /// What the crypto contexts of sessions whose keys were removed kept
    /// (own SRTCP index, replay windows), for keys given again; here rather
    /// than in [`Session`], which stays small for the many keyless ones.
    parked_srtcp: HashMap<SessionId, Box<crypto::SrtcpMemory>>,
    /// False once draining: new client addresses are refused.
    accepting: bool,
    /// Calls set up through the calls API, waiting for (or bound to) their
    /// session ([`calls`]).
    calls: calls::Calls,
    /// DTLS retransmission and deadline ticks: (due, slot, generation).
    dtls_timers: BinaryHeap<Reverse<(MonoTime, u32, u32)>>,
    /// Scratch: what the DTLS legs of the datagram being handled want done.
    leg_outputs: Vec<dtls::LegOutput>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        let rng = Pcg64Mcg::seed_from_u64(config.seed);
        let prefixes = (config.new_sessions_per_prefix_per_sec > 0)
            .then(|| admission::PrefixLimiter::new(config.new_sessions_per_prefix_per_sec));
        Engine {
            prefixes,
            config,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            counters: Counters::default(),
            outputs: VecDeque::new(),
            forward: None,
            next_sweep: None,
            report_timers: BinaryHeap::new(),
            rewritten: Vec::new(),
            cleared: Vec::new(),
            rng,
            wall_anchor: (MonoTime::ZERO, Duration::ZERO),
            rebinding: rebinding::Rebinding::default(),
            check_answer: None,
            routes: HashMap::default(),
            taps: HashMap::default(),
            parked_srtcp: HashMap::default(),
            accepting: true,
            calls: calls::Calls::default(),
            dtls_timers: BinaryHeap::new(),
            leg_outputs: Vec::new(),
        }
    }

    /// The one door in: a datagram, a timer expiry, the wall clock, or a
    /// failed socket. Returns what became of a datagram ([`Verdict`];
    /// other inputs answer [`Verdict::Consumed`]); what to send and do
    /// comes from [`Self::poll_output`], which the driver drains before the
    /// next input.
    pub fn handle_input(&mut self, input: Input<'_>) -> Verdict {
        match input {
            Input::Datagram {
                now,
                socket,
                remote,
                local,
                bytes,
            } => {
                self.forget_received();
                self.on_datagram(now, socket, remote, local, bytes)
            }
            Input::Timeout(now) => {
                self.forget_received();
                self.handle_timeout(now);
                Verdict::Consumed
            }
            Input::WallClock { now, wall } => {
                self.wall_anchor = (now, wall);
                Verdict::Consumed
            }
            Input::UpstreamFailed { now, session } => {
                self.close(now, session, CloseReason::NoUpstreamSocket);
                Verdict::Consumed
            }
        }
    }

    /// The one door out: the next thing to do, in order. Ends with
    /// [`Output::Timeout`] (when the engine next needs
    /// [`Input::Timeout`]) or `None` when it needs no timer.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(t) = self.forward.take() {
            return Some(Output::Transmit(t));
        }
        match self.outputs.pop_front() {
            Some(o) => Some(o),
            None => self.poll_timeout().map(Output::Timeout),
        }
    }

    /// A driver that did not drain the outputs of the previous datagram:
    /// its [`Payload::Received`] transmits name bytes that are gone.
    fn forget_received(&mut self) {
        // The fast slot only ever holds a `Payload::Received` forward.
        self.forward = None;
        if !self.outputs.is_empty() {
            self.outputs.retain(|o| {
                !matches!(
                    o,
                    Output::Transmit(Transmit {
                        payload: Payload::Received,
                        ..
                    })
                )
            });
        }
    }

    fn on_datagram(
        &mut self,
        now: MonoTime,
        socket: SocketRef,
        remote: SocketAddr,
        local: SocketAddr,
        bytes: &[u8],
    ) -> Verdict {
        let kind = classify(bytes);
        let side = socket.side();
        let routed = match socket {
            SocketRef::Upstream { session, .. } => Ok(demux::Routed::Session(session)),
            SocketRef::Listen { relay, rtcp } => self.route_client(now, relay, rtcp, remote, local, kind, bytes),
        };
        if let Ok(demux::Routed::Session(id)) = routed {
            // A call without ICE binds before its first datagram is handled,
            // so a ClientHello that opens the session is already the proxy's.
            self.try_bind_call_by_address(now, id);
        }
        let verdict = match routed {
            Ok(demux::Routed::Session(id)) if kind == PacketKind::Dtls && self.terminates_dtls(id) => {
                self.on_dtls_record(now, id, side, bytes)
            }
            Ok(demux::Routed::Session(id)) => {
                let verdict = self.observe(now, side, id, kind, bytes);
                self.send_on(id, side, socket.is_rtcp(), verdict);
                if kind == PacketKind::Stun && self.binds_calls(id) {
                    self.try_bind_call(now, id, side, bytes);
                }
                verdict
            }
            Ok(demux::Routed::Check(id)) => {
                // The check is not the client's liveness at its address.
                let alive = self.session(id).and_then(|s| s.sides[side.index()].last_activity);
                let verdict = self.observe(now, side, id, kind, bytes);
                if let Some(s) = self.session_mut(id) {
                    s.sides[side.index()].last_activity = alive;
                }
                self.send_on(id, side, socket.is_rtcp(), verdict);
                verdict
            }
            Err(verdict) => verdict,
        };
        self.counters.received[side.index()].add(kind, bytes.len());
        if let Verdict::Drop(reason) = verdict {
            self.counters.drops[reason.index()] += 1;
        }
        verdict
    }

    /// A session bound to a call: its DTLS records are the proxy's.
    fn terminates_dtls(&self, id: SessionId) -> bool {
        self.session(id).is_some_and(|s| s.dtls.is_some())
    }

    /// A session of a `dtls = "terminate"` relay not yet bound to a call.
    pub(super) fn binds_calls(&self, id: SessionId) -> bool {
        self.session(id).is_some_and(|s| {
            s.dtls.is_none()
                && self
                    .config
                    .relays
                    .get(usize::from(s.relay))
                    .is_some_and(|r| r.dtls_terminate)
        })
    }

    /// Queues the transmit a verdict calls for: the datagram (or its
    /// rewrite) to the other side of the session; an upstream answer to a
    /// NAT rebinding check to the checker instead, then the proxy's probe.
    fn send_on(&mut self, id: SessionId, from: Side, rtcp: bool, verdict: Verdict) {
        let payload = match verdict {
            Verdict::Forward(_) => Payload::Received,
            Verdict::Rewritten(_) => Payload::Owned(std::mem::take(&mut self.rewritten)),
            Verdict::Consumed | Verdict::Drop(_) => return,
        };
        let Some(session) = self.session(id) else { return };
        let relay = usize::from(session.relay);
        let route = leg_route(session, &self.config.relays, from.other(), rtcp);
        let cap = self.config.max_queued_events;
        if let Some(answer) = self.check_answer.take() {
            let socket = SocketRef::Listen { relay, rtcp: false };
            let mut push = |payload| {
                let t = Transmit {
                    socket,
                    destination: answer.to,
                    payload,
                };
                push_output(&mut self.outputs, &mut self.counters, cap, Output::Transmit(t));
            };
            push(payload);
            if let Some(txid) = answer.probe {
                // A binding request with FINGERPRINT only (see write_probe).
                let mut probe = Vec::with_capacity(28);
                crate::wire::stun::write_probe(&mut probe, txid);
                push(Payload::Owned(probe));
            }
            return;
        }
        let (socket, destination) = route;
        let t = Transmit {
            socket,
            destination,
            payload,
        };
        if self.outputs.is_empty() && self.forward.is_none() && t.payload == Payload::Received {
            self.forward = Some(t);
            return;
        }
        push_output(&mut self.outputs, &mut self.counters, cap, Output::Transmit(t));
    }

    fn unit(&mut self) -> f64 {
        // 53 random bits → [0, 1).
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn wall_at(&self, now: MonoTime) -> Duration {
        let (mono, wall) = self.wall_anchor;
        wall + now.saturating_since(mono)
    }

    /// Applies reloaded relay rules, limits and report settings. Live
    /// sessions stay (a lower `max_sessions` only refuses new ones; each
    /// keeps its upstream, mode and clock rates); the new report policy
    /// applies from each session's next report. The number of relays is
    /// kept (sockets are not rebound).
    pub fn reconfigure(&mut self, f: impl FnOnce(&mut EngineConfig)) {
        let seed = self.config.seed;
        let dtls = self.config.dtls.take();
        let per_prefix = self.config.new_sessions_per_prefix_per_sec;
        let relays = self.config.relays.len();
        f(&mut self.config);
        self.config.seed = seed;
        self.config.dtls = dtls;
        self.config.relays.resize_with(relays, RelaySettings::default);
        if self.config.new_sessions_per_prefix_per_sec != per_prefix {
            let rate = self.config.new_sessions_per_prefix_per_sec;
            self.prefixes = (rate > 0).then(|| admission::PrefixLimiter::new(rate));
        }
    }

    /// Draining: new client addresses are refused from now on; live
    /// sessions continue.
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// Provisions (or with `None` removes) a session's SRTCP keys. With
    /// keys the session is SRTP: SRTCP from a side with keys is opened and
    /// read, failures are dropped and counted, and the proxy's reports are
    /// protected toward sides whose receiver's keys it has. The own index
    /// counter and the replay windows of keys given again carry over
    /// ([`crypto::SrtcpMemory`]). Removal is refused in `terminate` while
    /// keys are set (the receivers' replay windows sit at the mapped
    /// indices). An error when the crypto provider fails.
    pub fn set_session_keys(
        &mut self,
        id: SessionId,
        keys: Option<&SessionKeys>,
    ) -> Result<KeysOutcome, crate::srtp::SrtpError> {
        let Some(session) = self.session_mut(id) else {
            return Ok(KeysOutcome::UnknownSession);
        };
        if session.dtls.is_some() || session.crypto.as_ref().is_some_and(|c| c.back_to_back) {
            // Each leg's keys come from its own DTLS handshake (RFC 5764);
            // SDES keys over them would break both legs.
            return Ok(KeysOutcome::Refused(
                "this session's keys come from DTLS (dtls = \"terminate\") and cannot be replaced or removed",
            ));
        }
        let protects = |side| session.crypto.as_ref().is_some_and(|c| c.can_protect_toward(side));
        match keys {
            // In `terminate` a direction the proxy re-protects must stay
            // keyed, for the same reason as removal below.
            Some(k)
                if session.mode == RtcpMode::Terminate
                    && ((protects(Side::Client) && k.upstream.is_none())
                        || (protects(Side::Upstream) && k.client.is_none())) =>
            {
                return Ok(KeysOutcome::Refused(
                    "a session in rtcp = \"terminate\" keeps the keys of both directions once given (its reports \
                     are re-protected at mapped indices); give both",
                ));
            }
            Some(k) => {
                let mut fresh = crypto::SessionCrypto::new(k)?;
                let memory = match session.crypto.take() {
                    Some(old) => old.into_memory(),
                    None => self.parked_srtcp.remove(&id).map(|m| *m).unwrap_or_default(),
                };
                fresh.adopt(memory);
                // Borrowed again: `parked_srtcp` was used in between.
                if let Some(session) = self.session_mut(id) {
                    session.crypto = Some(Box::new(fresh));
                    session.encrypted = true;
                    session.srtp_suite = k.suite().or(session.srtp_suite);
                }
            }
            None if session.mode == RtcpMode::Terminate && session.crypto.is_some() => {
                return Ok(KeysOutcome::Refused(
                    "keys of a session in rtcp = \"terminate\" cannot be removed (its reports are re-protected at \
                     mapped indices); provision new keys instead",
                ));
            }
            None => {
                if let Some(old) = session.crypto.take() {
                    self.parked_srtcp.insert(id, Box::new(old.into_memory()));
                }
            }
        }
        Ok(KeysOutcome::Done)
    }

    /// Gives a session what its SDP says about its streams (RTX payload
    /// types and FID groups, [`media::MediaMap`]); RTX streams are then
    /// folded into their primaries. Returns false for an unknown session.
    pub fn set_session_media(&mut self, id: SessionId, media: media::MediaMap) -> bool {
        match self.session_mut(id) {
            Some(session) => {
                session.set_media(media);
                true
            }
            None => false,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn session_count(&self) -> usize {
        self.live
    }

    /// Closes a session now (shutdown, or an operator's request); its
    /// final snapshot is returned and also announced as
    /// [`Event::SessionClosed`] after [`Output::CloseUpstream`].
    pub fn close_session(&mut self, now: MonoTime, id: SessionId) -> Option<SessionSnapshot> {
        self.close(now, id, CloseReason::Closed)
    }

    fn close(&mut self, now: MonoTime, id: SessionId, reason: CloseReason) -> Option<SessionSnapshot> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let session = slot.session.take()?;
        self.parked_srtcp.remove(&id);
        self.unroute(&session);
        self.forget_call_of(&session);
        self.counters.rebinds_rejected += self.rebinding.forget(id);
        self.free.push(id.index);
        self.live -= 1;
        self.counters.sessions_closed += 1;
        let snapshot = SessionSnapshot::of(&session, now);
        self.push(Output::CloseUpstream { session: id });
        self.push(Output::Event(Event::SessionClosed {
            id,
            reason,
            snapshot: Box::new(snapshot.clone()),
        }));
        Some(snapshot)
    }

    pub fn session(&self, id: SessionId) -> Option<&Session> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.session.as_ref()
    }

    fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.session.as_mut()
    }

    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.slots.iter().filter_map(|s| s.session.as_ref())
    }

    /// Final or current statistics of one session.
    pub fn snapshot(&self, now: MonoTime, id: SessionId) -> Option<SessionSnapshot> {
        self.session(id).map(|s| SessionSnapshot::of(s, now))
    }

    #[inline]
    fn observe(&mut self, now: MonoTime, side: Side, id: SessionId, kind: PacketKind, datagram: &[u8]) -> Verdict {
        let cap = self.config.max_sources_per_side;
        // Borrow the parts of `self` separately: the session from the slot
        // table, the clock-rate table and counters beside it.
        let Engine {
            slots,
            config,
            counters,
            outputs,
            rewritten,
            cleared,
            rebinding,
            check_answer,
            rng,
            ..
        } = self;
        let Some(session) = slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.session.as_mut())
        else {
            return Verdict::Drop(DropReason::UnknownSession);
        };
        let state = &mut session.sides[side.index()];
        let rate = config.max_packets_per_side_per_sec;
        if rate > 0 && !session.buckets[side.index()].take(now, f64::from(rate), f64::from(rate)) {
            // A flood on this session: dropped before any parsing, and
            // without refreshing the session's liveness. Announced once per
            // session and side; every drop is counted.
            let bit = 1u8 << side.index();
            if session.rate_limited & bit == 0 {
                session.rate_limited |= bit;
                let ev = Event::RateLimited {
                    session: id,
                    side,
                    per_sec: rate,
                };
                push_output(outputs, counters, config.max_queued_events, Output::Event(ev));
            }
            return Verdict::Drop(DropReason::RateLimited);
        }
        state.last_activity = Some(now);
        state.received.add(kind, datagram.len());
        match kind {
            PacketKind::Rtp => {
                // Back-to-back DTLS: measured in the clear, sent on under
                // the other leg's keys.
                let mut opened = None;
                if let Some(b2b) = session.dtls.as_deref_mut() {
                    let failed = b2b.failed();
                    let Some(media) = b2b.media.as_mut() else {
                        return Verdict::Drop(if failed {
                            DropReason::DtlsFailed
                        } else {
                            DropReason::DtlsPending
                        });
                    };
                    match media.open(side, datagram) {
                        Ok(plain) => opened = Some(plain),
                        Err(_) => return Verdict::Drop(DropReason::SrtpRejected),
                    }
                }
                // SRTP (RFC 3711 §3.1): the last octet is tag, never the
                // padding count, so an encrypted packet is never judged by
                // its padding; its tag is left out of the payload when the
                // suite is known. In a session not known to be SRTP (keyless
                // SDES looks like plain RTP) a padding count that does not
                // fit is read the same way: the receiver, not the proxy,
                // decides what such a packet is. Opened SRTP is plain RTP.
                let parsed = match (&opened, session.encrypted, session.srtp_suite) {
                    (Some((plain, _)), ..) => RtpView::parse(plain),
                    (None, true, suite) => RtpView::parse_srtp(datagram, suite.map_or(0, |s| s.srtp_overhead())),
                    (None, false, _) => match RtpView::parse(datagram) {
                        Err(RtpError::BadPadding) => RtpView::parse_srtp(datagram, 0),
                        other => other,
                    },
                };
                let rtp = match parsed {
                    Ok(v) => v,
                    Err(e) => return Verdict::Drop(DropReason::Rtp(e)),
                };
                let rates = &config.relays[usize::from(session.relay)].clock_rates;
                match session.on_rtp(now, side, &rtp, |pt| rates.get(pt), cap) {
                    RtpOutcome::Counted => {}
                    RtpOutcome::NewSource(ssrc, payload_type) => {
                        let ev = Event::StreamStarted {
                            session: id,
                            side,
                            ssrc,
                            payload_type,
                        };
                        push_output(outputs, counters, config.max_queued_events, Output::Event(ev));
                    }
                    RtpOutcome::SourceLimit => {
                        // Every live stream is measured and the table is
                        // full: this one is forwarded unmeasured (never
                        // dropped: it is somebody's media), and counted.
                        counters.caps_hit.hit(Cap::SourcesPerSide);
                    }
                }
                if let Some((plain, header)) = opened {
                    let protected = session
                        .dtls
                        .as_deref_mut()
                        .and_then(|b| b.media.as_mut())
                        .map(|m| m.protect(side.other(), &plain, &header));
                    return match protected {
                        Some(Ok(wire)) => {
                            // The transmit takes `rewritten` (see send_on).
                            *rewritten = wire;
                            Verdict::Rewritten(kind)
                        }
                        _ => Verdict::Drop(DropReason::SrtpRejected),
                    };
                }
                Verdict::Forward(kind)
            }
            PacketKind::Rtcp if session.dtls.as_ref().is_some_and(|b| b.media.is_none()) => {
                let failed = session.dtls.as_ref().is_some_and(|b| b.failed());
                Verdict::Drop(if failed {
                    DropReason::DtlsFailed
                } else {
                    DropReason::DtlsPending
                })
            }
            PacketKind::Rtcp => {
                let v = rtcp_in::observe_rtcp(session, now, side, datagram, cap, counters, rewritten, cleared);
                for (side, ssrc) in cleared.drain(..) {
                    counters.suppression_cleared += 1;
                    let ev = Event::SuppressionCleared {
                        session: id,
                        side,
                        ssrc,
                    };
                    push_output(outputs, counters, config.max_queued_events, Output::Event(ev));
                }
                v
            }
            PacketKind::Stun => match StunView::parse(datagram) {
                Ok(stun) => {
                    if session.on_stun(now, side, &stun, counters) {
                        counters.rtt_samples += 1;
                    }
                    if config.nat_rebinding == NatRebinding::Stun {
                        *check_answer = None;
                        let probe_id = || {
                            let mut t = [0u8; 12];
                            rng.fill_bytes(&mut t);
                            t
                        };
                        match side {
                            Side::Client => rebinding.note_client_request(id, session.info.upstream, &stun),
                            Side::Upstream => match rebinding.answer(now, id, &stun, probe_id) {
                                rebinding::Answer::None => {}
                                rebinding::Answer::Accepted { to, probe } => {
                                    *check_answer = Some(CheckAnswer { to, probe: Some(probe) });
                                }
                                rebinding::Answer::Refused { to } => {
                                    counters.rebinds_rejected += 1;
                                    *check_answer = Some(CheckAnswer { to, probe: None });
                                }
                            },
                        }
                    }
                    Verdict::Forward(kind)
                }
                Err(e) => Verdict::Drop(DropReason::Stun(e)),
            },
            PacketKind::Dtls => {
                session.encrypted = true;
                if session.srtp_suite.is_none() {
                    session.srtp_suite = crate::wire::dtls::server_srtp_profile(datagram)
                        .and_then(crate::srtp::CryptoSuite::from_dtls_profile);
                }
                Verdict::Forward(kind)
            }
            PacketKind::TurnChannel | PacketKind::Zrtp => Verdict::Forward(kind),
            PacketKind::Unknown if datagram.is_empty() => Verdict::Drop(DropReason::Empty),
            PacketKind::Unknown => Verdict::Drop(DropReason::UnknownProtocol),
        }
    }

    /// Expires idle sessions and runs due report ticks. Call when
    /// [`Self::poll_timeout`] is reached (earlier calls are harmless).
    fn handle_timeout(&mut self, now: MonoTime) {
        self.run_report_timers(now);
        self.run_dtls_timers(now);
        let Some(due) = self.next_sweep else {
            return;
        };
        if now < due {
            return;
        }
        if let Some(idle) = self.config.idle_timeout {
            let expired: Vec<SessionId> = self
                .sessions()
                .filter(|s| now.saturating_since(s.last_activity()) >= idle)
                .map(|s| s.id)
                .collect();
            for id in expired {
                self.close(now, id, CloseReason::Idle);
            }
        }
        self.counters.rebinds_rejected += self.rebinding.expire(now);
        if let Some(limit) = self.config.unanswered_timeout {
            // A flow the upstream never answered is closed when it never
            // sent media (spoofed or abandoned), or when the table is 90 %
            // full. A one-way media flow (a SIP trunk toward a receiver
            // that sends nothing back, RTCP suppressed) keeps its session:
            // that is the flow `auto` exists for.
            let pressure = self.live * 10 >= self.config.max_sessions * 9;
            let unanswered: Vec<SessionId> = self
                .sessions()
                .filter(|s| {
                    let media = s.sides[Side::Client.index()].received.packets(PacketKind::Rtp) > 0;
                    s.sides[Side::Upstream.index()].last_activity.is_none()
                        && now.saturating_since(s.opened_at) >= limit
                        && (pressure || !media)
                })
                .map(|s| s.id)
                .collect();
            for id in unanswered {
                self.counters.sessions_unanswered += 1;
                self.close(now, id, CloseReason::Unanswered);
            }
        }
        self.next_sweep = (self.live > 0 && self.sweeps()).then(|| now + SWEEP_INTERVAL);
    }

    /// Whether anything needs the periodic sweep.
    fn sweeps(&self) -> bool {
        self.config.idle_timeout.is_some()
            || self.config.unanswered_timeout.is_some()
            || self.config.nat_rebinding == NatRebinding::Stun
    }

    /// When the engine next needs [`Input::Timeout`], if ever.
    pub fn poll_timeout(&self) -> Option<MonoTime> {
        let report = self.report_timers.peek().map(|Reverse((due, ..))| *due);
        [self.next_sweep, report, self.next_dtls_timer()]
            .into_iter()
            .flatten()
            .min()
    }

    fn push(&mut self, o: Output) {
        let cap = self.config.max_queued_events;
        push_output(&mut self.outputs, &mut self.counters, cap, o);
    }
}

/// Queues an output; a driver that stopped draining loses the oldest
/// (counted), so memory stays bounded.
fn push_output(outputs: &mut VecDeque<Output>, counters: &mut Counters, cap: usize, o: Output) {
    if outputs.len() >= cap {
        match outputs.pop_front() {
            Some(Output::Transmit(_)) => counters.caps_hit.hit(Cap::TransmitQueue),
            _ => {
                counters.events_dropped += 1;
                counters.caps_hit.hit(Cap::EventQueue);
            }
        }
    }
    outputs.push_back(o);
}

/// The socket and address that reach `toward`'s endpoint of a session.
/// RTCP (`rtcp`) on a non-mux relay uses the RTCP ports: the client's
/// learned RTCP address (RTP port + 1 until one is seen, RFC 3550 §11) and
/// the session's RTCP upstream socket.
fn leg_route(session: &Session, relays: &[RelaySettings], toward: Side, rtcp: bool) -> (SocketRef, SocketAddr) {
    let rtcp = rtcp && relays.get(usize::from(session.relay)).is_some_and(|r| r.non_mux);
    let next_port = |a: SocketAddr| SocketAddr::new(a.ip(), a.port().wrapping_add(1));
    match toward {
        Side::Upstream => {
            let socket = SocketRef::Upstream {
                session: session.id,
                rtcp,
            };
            let dest = match rtcp {
                true => session
                    .non_mux
                    .as_ref()
                    .map_or(next_port(session.info.upstream), |p| p.upstream_rtcp),
                false => session.info.upstream,
            };
            (socket, dest)
        }
        Side::Client => {
            let socket = SocketRef::Listen {
                relay: usize::from(session.relay),
                rtcp,
            };
            let dest = match rtcp {
                true => session
                    .non_mux
                    .as_ref()
                    .and_then(|p| p.client_rtcp)
                    .unwrap_or(next_port(session.info.client)),
                false => session.info.client,
            };
            (socket, dest)
        }
    }
}
