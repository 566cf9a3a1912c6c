//! The sans-IO engine: every datagram the relay (or a capture replay, or a
//! test) sees goes through [`Engine::handle_datagram`], which classifies it,
//! updates statistics and returns a [`Verdict`]. The engine owns no sockets
//! and reads no clock: `now` is always handed in.

pub mod admission;
mod counters;
pub mod crypto;
pub mod rebinding;
pub mod rtcp_policy;
mod session;
mod snapshot;

pub use counters::{kind_index, kind_label, Cap, CapHits, Counters, DropReason, KindCounts, DROP_REASONS, KINDS};
pub use crypto::SessionKeys;
pub use rebinding::NatRebinding;
pub use rtcp_policy::{ReportPolicy, RtcpMode};
pub use session::{FeedbackCounts, LegRtt, Session, SessionInfo, SideRtcp, SideState, Source};
pub use snapshot::{SessionSnapshot, SideSnapshot, SourceSnapshot};

use crate::stats::ClockRates;
use crate::time::MonoTime;
use crate::wire::rtcp;
use crate::wire::rtp::RtpView;
use crate::wire::stun::StunView;
use crate::wire::{classify, PacketKind, Ssrc};
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;
use session::RtpOutcome;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
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

/// What to do with a datagram.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Send it on, unchanged, to the other side.
    Forward(PacketKind),
    /// Send [`Engine::rewritten`] instead (an RTCP compound with its report
    /// blocks removed, `terminate` mode).
    Rewritten(PacketKind),
    /// RTCP the proxy terminates: nothing is left to forward (not an error).
    Consumed,
    Drop(DropReason),
}

/// One received datagram for [`Engine::handle_batch`].
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    pub now: MonoTime,
    pub side: Side,
    pub session: SessionId,
    pub datagram: &'a [u8],
}

impl Incoming<'_> {
    /// A placeholder for fixed-size arrays (an empty datagram).
    pub const EMPTY: Incoming<'static> = Incoming {
        now: MonoTime::ZERO,
        side: Side::Client,
        session: SessionId {
            index: 0,
            generation: 0,
        },
        datagram: &[],
    };
}

/// Hints the CPU to load the cache line at `p` (never faults, whatever `p`).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it reads nothing architecturally and
    // does not fault on any address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A datagram the engine originates (generated reports).
#[derive(Debug, Clone)]
pub struct Transmit {
    pub session: SessionId,
    /// The side whose endpoint receives it.
    pub toward: Side,
    pub datagram: Vec<u8>,
}

/// The answer to a NAT rebinding check (see [`Engine::take_check_answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckAnswer {
    /// The address the check came from: the answer goes there.
    pub to: std::net::SocketAddr,
    /// The upstream accepted: the proxy's binding request to send after
    /// the answer; its response from `to` completes the move.
    pub probe: Option<[u8; 20]>,
}

/// A binding request with no attributes (RFC 8489 §5): the rebinding probe.
fn binding_probe(txid: [u8; 12]) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[..2].copy_from_slice(&0x0001u16.to_be_bytes());
    m[4..8].copy_from_slice(&crate::wire::stun::MAGIC_COOKIE.to_be_bytes());
    m[8..].copy_from_slice(&txid);
    m
}

/// Why a session ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CloseReason {
    Idle,
    Closed,
    /// The upstream never sent anything within the unanswered timeout.
    Unanswered,
}

/// Things the engine tells its driver, in order.
#[derive(Debug)]
pub enum Event {
    SessionOpened(SessionId),
    /// The session is gone; `snapshot` holds its final statistics. For
    /// idle expiry the driver closes the session's sockets on this event.
    SessionClosed {
        id: SessionId,
        reason: CloseReason,
        snapshot: Box<SessionSnapshot>,
    },
    /// First RTP packet of a new SSRC on a side.
    StreamStarted {
        session: SessionId,
        side: Side,
        ssrc: Ssrc,
        payload_type: u8,
    },
    /// `auto`: no report block about this stream (sent from `side`) came
    /// back in time; the proxy now generates reports about it.
    SuppressionDetected {
        session: SessionId,
        side: Side,
        ssrc: Ssrc,
    },
    /// `auto`: real report blocks about the stream returned; generation stops.
    SuppressionCleared {
        session: SessionId,
        side: Side,
        ssrc: Ssrc,
    },
    /// NAT rebinding: the upstream accepted a check from the client's new
    /// address; the driver now sends the session's client-bound datagrams
    /// to `to` (and treats `from` as unknown).
    SessionRebound {
        session: SessionId,
        from: std::net::SocketAddr,
        to: std::net::SocketAddr,
    },
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub clock_rates: ClockRates,
    pub max_sessions: usize,
    /// Cap on SSRCs tracked per side of a session (attacker-controlled).
    pub max_sources_per_side: usize,
    /// Sessions silent this long on both sides are closed; `None` never.
    pub idle_timeout: Option<Duration>,
    /// Events (and, separately, generated reports) kept for the driver;
    /// past this the oldest are dropped (counted).
    pub max_queued_events: usize,
    /// RTCP mode of sessions opened with [`Engine::open_session`].
    pub rtcp_mode: RtcpMode,
    pub report_policy: ReportPolicy,
    /// Seeds the proxy's per-session SSRC/CNAME and report-interval
    /// randomisation (the driver picks it; tests fix it).
    pub seed: u64,
    /// New sessions per second per source prefix admitted by
    /// [`Engine::admit`]; 0: no limit.
    pub new_sessions_per_prefix_per_sec: u32,
    /// Sessions that never got a datagram from the upstream within this
    /// are closed (spoofed or abandoned flows); `None` never.
    pub unanswered_timeout: Option<Duration>,
    /// Datagrams per second accepted from each side of a session (a
    /// token bucket with a one-second burst); 0: no limit.
    pub max_packets_per_side_per_sec: u32,
    /// Whether a session may follow its client to a new address.
    pub nat_rebinding: NatRebinding,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            clock_rates: ClockRates::new(&Default::default()),
            max_sessions: 100_000,
            max_sources_per_side: 64,
            idle_timeout: Some(Duration::from_secs(30)),
            max_queued_events: 65_536,
            rtcp_mode: RtcpMode::Forward,
            report_policy: ReportPolicy::default(),
            seed: 0x5eed,
            new_sessions_per_prefix_per_sec: 0,
            unanswered_timeout: None,
            max_packets_per_side_per_sec: 0,
            nat_rebinding: NatRebinding::Never,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum OpenError {
    #[error("session table full ({0} sessions)")]
    TableFull(usize),
    #[error("too many new sessions from this source prefix")]
    RateLimited,
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
    events: VecDeque<Event>,
    next_sweep: Option<MonoTime>,
    /// Report ticks: (due, slot index, generation, side index). Entries of
    /// closed sessions or superseded times are skipped when popped.
    report_timers: BinaryHeap<Reverse<(MonoTime, u32, u32, u8)>>,
    transmits: VecDeque<Transmit>,
    /// The last `terminate` rewrite (reused: no allocation per rewrite).
    rewritten: Vec<u8>,
    rng: Pcg64Mcg,
    /// (monotonic, wall since the Unix epoch) taken together by the driver,
    /// for NTP timestamps in generated XR RRTR.
    wall_anchor: (MonoTime, Duration),
    prefixes: Option<admission::PrefixLimiter>,
    rebinding: rebinding::Rebinding,
    /// Set while handling an upstream STUN answer to a rebinding check:
    /// where it goes instead of the client, and the probe to send there.
    check_answer: Option<CheckAnswer>,
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
            events: VecDeque::new(),
            next_sweep: None,
            report_timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            rewritten: Vec::new(),
            rng,
            wall_anchor: (MonoTime::ZERO, Duration::ZERO),
            rebinding: rebinding::Rebinding::default(),
            check_answer: None,
        }
    }

    /// Tells the engine the wall-clock time (since the Unix epoch) at a
    /// monotonic instant; generated XR RRTR carry NTP times derived from it.
    pub fn set_wall_clock(&mut self, now: MonoTime, wall: Duration) {
        self.wall_anchor = (now, wall);
    }

    fn wall_at(&self, now: MonoTime) -> Duration {
        let (mono, wall) = self.wall_anchor;
        wall + now.saturating_since(mono)
    }

    /// The datagram to send for the last [`Verdict::Rewritten`].
    pub fn rewritten(&self) -> &[u8] {
        &self.rewritten
    }

    /// Next report the engine generated, for the driver to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn unit(&mut self) -> f64 {
        // 53 random bits → [0, 1).
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Applies reloaded limits and report settings. Live sessions stay (a
    /// lower `max_sessions` only refuses new ones); the new report policy
    /// applies from each session's next report.
    pub fn reconfigure(&mut self, f: impl FnOnce(&mut EngineConfig)) {
        let seed = self.config.seed;
        let per_prefix = self.config.new_sessions_per_prefix_per_sec;
        f(&mut self.config);
        self.config.seed = seed;
        if self.config.new_sessions_per_prefix_per_sec != per_prefix {
            let rate = self.config.new_sessions_per_prefix_per_sec;
            self.prefixes = (rate > 0).then(|| admission::PrefixLimiter::new(rate));
        }
    }

    /// Provisions (or with `None` removes) a session's SRTCP keys. With
    /// keys the session is SRTP: SRTCP from a side with keys is opened and
    /// read, failures are dropped and counted, and the proxy's reports are
    /// protected toward sides whose receiver's keys it has. Returns false
    /// for an unknown session; an error when the crypto provider fails.
    pub fn set_session_keys(
        &mut self,
        id: SessionId,
        keys: Option<&SessionKeys>,
    ) -> Result<bool, crate::srtp::SrtpError> {
        let Some(session) = self.session_mut(id) else {
            return Ok(false);
        };
        match keys {
            Some(k) => {
                session.crypto = Some(Box::new(crypto::SessionCrypto::new(k)?));
                session.encrypted = true;
            }
            None => session.crypto = None,
        }
        Ok(true)
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

    /// Whether a new flow from `client` may open a session now: the table
    /// has room and the client's source prefix is within its rate. Drivers
    /// call this before spending anything on the flow (an upstream socket);
    /// a refusal is counted.
    pub fn admit(&mut self, now: MonoTime, client: std::net::SocketAddr) -> Result<(), OpenError> {
        if self.live >= self.config.max_sessions {
            self.counters.sessions_refused += 1;
            self.counters.caps_hit.hit(Cap::SessionTable);
            return Err(OpenError::TableFull(self.config.max_sessions));
        }
        if let Some(limiter) = self.prefixes.as_mut() {
            if !limiter.allow(now, client.ip(), &mut self.counters.caps_hit) {
                self.counters.sessions_refused += 1;
                self.counters.sessions_rate_limited += 1;
                return Err(OpenError::RateLimited);
            }
        }
        Ok(())
    }

    /// NAT rebinding ([`NatRebinding::Stun`]): a datagram from client
    /// address `from` (which belongs to session `current`, or to none) that
    /// is an ICE check carrying the USERNAME another session's client last
    /// used, toward the same `upstream`. Returns that session: the driver
    /// passes the datagram to it (as from its client) and forwards it on
    /// its upstream socket; the session moves to `from` only if the
    /// upstream answers the check with success ([`Event::SessionRebound`]).
    /// `None`: handle the datagram as usual.
    ///
    /// Only what looks like a rebinding is a check: `same_flow(target)`
    /// (the driver's relay of both), the target's client has been silent
    /// for [`rebinding::MIN_SILENCE`] (a live flow sharing the USERNAME is
    /// not moved), and `current` is absent or an interim session: opened
    /// within [`rebinding::CHECK_MAX_AGE`] and never answered by the
    /// upstream (media from the new address that came before its check).
    pub fn rebinding_check(
        &mut self,
        now: MonoTime,
        upstream: std::net::SocketAddr,
        current: Option<SessionId>,
        from: std::net::SocketAddr,
        datagram: &[u8],
        same_flow: impl FnOnce(SessionId) -> bool,
    ) -> Option<SessionId> {
        if self.config.nat_rebinding != NatRebinding::Stun || classify(datagram) != PacketKind::Stun {
            return None;
        }
        let stun = StunView::parse(datagram).ok()?;
        let target = self
            .rebinding
            .owner(upstream, &stun)
            .filter(|t| Some(*t) != current && same_flow(*t))?;
        let interim = |s: &Session| {
            now.saturating_since(s.opened_at) <= rebinding::CHECK_MAX_AGE
                && s.sides[Side::Upstream.index()].last_activity.is_none()
        };
        if current.and_then(|c| self.session(c)).is_some_and(|s| !interim(s)) {
            return None;
        }
        let silent = self.session(target)?.sides[Side::Client.index()]
            .last_activity
            .is_none_or(|t| now.saturating_since(t) >= rebinding::MIN_SILENCE);
        if !silent {
            return None;
        }
        let mut expired = 0;
        let result = self.rebinding.remember(now, target, from, &stun, &mut expired);
        self.counters.rebinds_rejected += expired;
        match result {
            Ok(()) => Some(target),
            Err(_) => {
                self.counters.caps_hit.hit(Cap::RebindChecks);
                None
            }
        }
    }

    /// Right after an upstream STUN datagram was forwarded: `Some` when it
    /// answered a rebinding check. The driver sends it to the check's
    /// sender instead of the session's client, then the probe, if any,
    /// from the same socket.
    pub fn take_check_answer(&mut self) -> Option<CheckAnswer> {
        self.check_answer.take()
    }

    /// NAT rebinding, second step: a STUN response from client address
    /// `from` that answers the proxy's probe moves the probed session there
    /// ([`Event::SessionRebound`]). Returns that session; the driver
    /// consumes the datagram (it was the proxy's own transaction) and moves
    /// its routing. `None`: handle the datagram as usual.
    pub fn rebinding_probe_answer(
        &mut self,
        now: MonoTime,
        from: std::net::SocketAddr,
        datagram: &[u8],
    ) -> Option<SessionId> {
        if self.config.nat_rebinding != NatRebinding::Stun
            || self.rebinding.pending_checks() == 0
            || classify(datagram) != PacketKind::Stun
        {
            return None;
        }
        let stun = StunView::parse(datagram).ok()?;
        let id = self.rebinding.probe_answer(now, from, &stun)?;
        let session = self.session_mut(id)?;
        let old = std::mem::replace(&mut session.info.client, from);
        self.counters.sessions_rebound += 1;
        self.push_event(Event::SessionRebound {
            session: id,
            from: old,
            to: from,
        });
        Some(id)
    }

    /// Opens a session for a new flow, in the configured RTCP mode.
    pub fn open_session(&mut self, now: MonoTime, info: SessionInfo) -> Result<SessionId, OpenError> {
        let mode = self.config.rtcp_mode;
        self.open_session_mode(now, info, mode)
    }

    /// Opens a session for a new flow with its own RTCP mode.
    pub fn open_session_mode(
        &mut self,
        now: MonoTime,
        info: SessionInfo,
        mode: RtcpMode,
    ) -> Result<SessionId, OpenError> {
        if self.live >= self.config.max_sessions {
            self.counters.sessions_refused += 1;
            self.counters.caps_hit.hit(Cap::SessionTable);
            return Err(OpenError::TableFull(self.config.max_sessions));
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    session: None,
                });
                u32::try_from(self.slots.len() - 1).map_err(|_| OpenError::TableFull(self.live))?
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        let id = SessionId {
            index,
            generation: slot.generation,
        };
        let own_ssrc = Ssrc(self.rng.next_u32());
        let cname = format!("rtp-middlebox-{:016x}", self.rng.next_u64());
        let slot = &mut self.slots[index as usize];
        slot.session = Some(Session::new(id, info, now, mode, own_ssrc, cname));
        if mode != RtcpMode::Forward {
            // RFC 3550 §6.2: the first report after half the minimum interval.
            let first = self.config.report_policy.min_interval_video / 2;
            for side in Side::BOTH {
                let due = now + rtcp_policy::randomised_interval(first, self.unit());
                self.schedule_report(id, side, due);
            }
        }
        self.live += 1;
        self.counters.sessions_opened += 1;
        if self.next_sweep.is_none() {
            self.next_sweep = self.sweeps().then(|| now + SWEEP_INTERVAL);
        }
        self.push_event(Event::SessionOpened(id));
        Ok(id)
    }

    /// Closes a session now; its final snapshot is returned and also
    /// announced as [`Event::SessionClosed`].
    pub fn close_session(&mut self, now: MonoTime, id: SessionId) -> Option<SessionSnapshot> {
        self.close(now, id, CloseReason::Closed)
    }

    fn close(&mut self, now: MonoTime, id: SessionId, reason: CloseReason) -> Option<SessionSnapshot> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let session = slot.session.take()?;
        self.counters.rebinds_rejected += self.rebinding.forget(id);
        self.free.push(id.index);
        self.live -= 1;
        self.counters.sessions_closed += 1;
        let snapshot = SessionSnapshot::of(&session, now);
        self.push_event(Event::SessionClosed {
            id,
            reason,
            snapshot: Box::new(snapshot.clone()),
        });
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

    /// Accounts one datagram that arrived from `side` of session `id` and
    /// says whether to forward it.
    #[inline]
    pub fn handle_datagram(&mut self, now: MonoTime, side: Side, id: SessionId, datagram: &[u8]) -> Verdict {
        let kind = classify(datagram);
        let verdict = self.observe(now, side, id, kind, datagram);
        let len = datagram.len();
        self.counters.received[side.index()].add(kind, len);
        if let Verdict::Drop(reason) = verdict {
            self.counters.drops[reason.index()] += 1;
        }
        verdict
    }

    /// [`Self::handle_datagram`] for a batch (e.g. one recvmmsg worth),
    /// writing one verdict per datagram. With many sessions the per-packet
    /// cost is memory latency: the session and the stream state are cache
    /// misses. A batch lets the engine prefetch them a few packets ahead
    /// (sessions 8 ahead, streams 4 ahead) so the misses overlap.
    ///
    /// Returns how many datagrams were handled: all of them, or fewer when
    /// one was [`Verdict::Rewritten`] (its bytes are in [`Self::rewritten`]
    /// only until the next rewrite), so the caller sends it and calls again
    /// with the rest.
    pub fn handle_batch(&mut self, batch: &[Incoming<'_>], verdicts: &mut [Verdict]) -> usize {
        const SLOT_AHEAD: usize = 8;
        const SOURCE_AHEAD: usize = 4;
        let n = batch.len().min(verdicts.len());
        for (i, d) in batch[..n].iter().enumerate() {
            if let Some(ahead) = batch.get(i + SLOT_AHEAD) {
                self.prefetch_session(ahead);
            }
            if let Some(ahead) = batch.get(i + SOURCE_AHEAD) {
                self.prefetch_source(ahead);
            }
            let v = self.handle_datagram(d.now, d.side, d.session, d.datagram);
            verdicts[i] = v;
            if matches!(v, Verdict::Rewritten(_)) {
                return i + 1;
            }
        }
        n
    }

    /// First stage: the slot's header and the side's hot fields, by address
    /// only (no read, so no stall here).
    #[inline(always)]
    fn prefetch_session(&self, d: &Incoming<'_>) {
        let base = self.slots.as_ptr().wrapping_add(d.session.index as usize) as *const u8;
        // `Slot` and `Session` are repr(C) with the sides first; the side's
        // hot fields span its first two cache lines. A wrong guess only
        // costs a useless prefetch.
        let side =
            base.wrapping_add(std::mem::offset_of!(Slot, session) + d.side.index() * std::mem::size_of::<SideState>());
        prefetch(base);
        prefetch(side);
        prefetch(side.wrapping_add(64));
    }

    /// Second stage: the session is (nearly) in cache; find the stream's
    /// entry by SSRC and prefetch its receive state.
    #[inline(always)]
    fn prefetch_source(&self, d: &Incoming<'_>) {
        let Some(ssrc) = d.datagram.get(8..12) else { return };
        if classify(d.datagram) != PacketKind::Rtp {
            return;
        }
        let ssrc = Ssrc(u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]));
        let Some(session) = self.session(d.session) else { return };
        let side = &session.sides[d.side.index()];
        if let Some(i) = side.position(ssrc) {
            let p = side.sources.as_ptr().wrapping_add(i) as *const u8;
            prefetch(p);
            prefetch(p.wrapping_add(64));
        }
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
            events,
            rewritten,
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
            // without refreshing the session's liveness.
            return Verdict::Drop(DropReason::RateLimited);
        }
        state.last_activity = Some(now);
        state.received.add(kind, datagram.len());
        match kind {
            PacketKind::Rtp => {
                let rtp = match RtpView::parse(datagram) {
                    Ok(v) => v,
                    Err(e) => return Verdict::Drop(DropReason::Rtp(e)),
                };
                let rates = &config.clock_rates;
                match session.on_rtp(now, side, &rtp, |pt| rates.get(pt), cap) {
                    RtpOutcome::Counted => {}
                    RtpOutcome::NewSource(ssrc, payload_type) => {
                        let ev = Event::StreamStarted {
                            session: id,
                            side,
                            ssrc,
                            payload_type,
                        };
                        push_bounded(events, counters, config.max_queued_events, ev);
                    }
                    RtpOutcome::SourceLimit => {
                        counters.caps_hit.hit(Cap::SourcesPerSide);
                        return Verdict::Drop(DropReason::SourceLimit);
                    }
                }
                Verdict::Forward(kind)
            }
            PacketKind::Rtcp => {
                let v = Self::observe_rtcp(session, now, side, datagram, cap, counters, rewritten);
                for (side, ssrc) in session.cleared.drain(..) {
                    counters.suppression_cleared += 1;
                    let ev = Event::SuppressionCleared {
                        session: id,
                        side,
                        ssrc,
                    };
                    push_bounded(events, counters, config.max_queued_events, ev);
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
                                    *check_answer = Some(CheckAnswer {
                                        to,
                                        probe: Some(binding_probe(probe)),
                                    });
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
                Verdict::Forward(kind)
            }
            PacketKind::TurnChannel | PacketKind::Zrtp => Verdict::Forward(kind),
            PacketKind::Unknown if datagram.is_empty() => Verdict::Drop(DropReason::Empty),
            PacketKind::Unknown => Verdict::Drop(DropReason::UnknownProtocol),
        }
    }

    /// RTCP is read only when the whole compound walks cleanly to its end
    /// (RFC 3550 A.2: the packets' lengths add up to the datagram's) and the
    /// session is not SRTP. SRTCP encrypts everything after the first
    /// 8 bytes and appends an index and tag, so reading it as plain RTCP
    /// would record garbage; it is forwarded and counted instead.
    fn observe_rtcp(
        session: &mut Session,
        now: MonoTime,
        side: Side,
        datagram: &[u8],
        cap: usize,
        counters: &mut Counters,
        rewritten: &mut Vec<u8>,
    ) -> Verdict {
        // The first header must hold for anything to be RTCP at all.
        let mut walker = rtcp::walk(datagram);
        match walker.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Verdict::Drop(DropReason::Rtcp(e)),
            None => return Verdict::Drop(DropReason::Rtcp(rtcp::RtcpError::TooShort)),
        }
        let by_mode = session.mode.index();
        // With keys, SRTCP from this side is opened into the session's
        // plain buffer (taken out while the packets are read, then put back).
        let mut plain = None;
        if session.encrypted {
            if let Some(crypto) = session.crypto.as_mut() {
                match crypto.open(side, datagram) {
                    Some(Ok(())) => plain = Some(std::mem::take(&mut crypto.plain)),
                    Some(Err(e)) => {
                        if e == crate::srtp::SrtpError::AuthFailed {
                            counters.srtcp_auth_failures += 1;
                            session.sides[side.index()].rtcp.srtcp_auth_failures += 1;
                        }
                        return Verdict::Drop(DropReason::Srtcp(e));
                    }
                    None => {}
                }
            }
        }
        let verdict = Self::read_rtcp(
            session,
            now,
            side,
            datagram,
            plain.as_deref(),
            cap,
            counters,
            rewritten,
            by_mode,
        );
        if let (Some(buf), Some(crypto)) = (plain, session.crypto.as_mut()) {
            crypto.plain = buf;
        }
        verdict
    }

    /// Reads a compound (the plain one when SRTCP was opened) and decides
    /// what is forwarded.
    #[allow(clippy::too_many_arguments)]
    fn read_rtcp(
        session: &mut Session,
        now: MonoTime,
        side: Side,
        datagram: &[u8],
        plain: Option<&[u8]>,
        cap: usize,
        counters: &mut Counters,
        rewritten: &mut Vec<u8>,
        by_mode: usize,
    ) -> Verdict {
        let body = plain.unwrap_or(datagram);
        let readable = (plain.is_some() || !session.encrypted) && rtcp::walk(body).all(|p| p.is_ok());
        if !readable {
            session.on_unreadable_rtcp(side, datagram, cap);
            counters.rtcp_unreadable += 1;
            counters.rtcp_by_mode[by_mode].forwarded += 1;
            return Verdict::Forward(PacketKind::Rtcp);
        }
        if plain.is_some() {
            session.sides[side.index()].rtcp.srtcp_opened += 1;
        }
        for packet in rtcp::walk(body).flatten() {
            session.on_rtcp(now, side, &packet, cap, counters);
        }
        if session.mode != RtcpMode::Terminate {
            counters.rtcp_by_mode[by_mode].forwarded += 1;
            return Verdict::Forward(PacketKind::Rtcp);
        }
        let toward = side.other();
        if plain.is_some() && !session.crypto.as_ref().is_some_and(|c| c.can_protect_toward(toward)) {
            // No keys for the other leg: the proxy can read but not rewrite.
            counters.rtcp_by_mode[by_mode].forwarded += 1;
            return Verdict::Forward(PacketKind::Rtcp);
        }
        let stripped = rtcp_policy::strip_reports(body, rewritten);
        if let Some(blocks) = stripped {
            counters.report_blocks_consumed += blocks as u64;
            if rewritten.is_empty() {
                counters.rtcp_consumed += 1;
                counters.rtcp_by_mode[by_mode].consumed += 1;
                return Verdict::Consumed;
            }
        }
        if plain.is_some() {
            // Every compound from an endpoint is re-protected at the mapped
            // index, stripped or not, so the receiver sees one sequence.
            let crypto = session.crypto.as_mut();
            let index = crypto.as_ref().and_then(|c| c.index_of(side, datagram));
            let source: Vec<u8> = if stripped.is_some() {
                rewritten.clone()
            } else {
                body.to_vec()
            };
            match (crypto, index) {
                (Some(c), Some(index)) => {
                    if let Some(Ok(())) = c.reprotect(toward, &source, index, rewritten) {
                        counters.rtcp_rewritten += 1;
                        counters.rtcp_by_mode[by_mode].forwarded += 1;
                        return Verdict::Rewritten(PacketKind::Rtcp);
                    }
                    return Verdict::Drop(DropReason::Srtcp(crate::srtp::SrtpError::Crypto));
                }
                _ => return Verdict::Drop(DropReason::Srtcp(crate::srtp::SrtpError::TooShort)),
            }
        }
        match stripped {
            None => {
                counters.rtcp_by_mode[by_mode].forwarded += 1;
                Verdict::Forward(PacketKind::Rtcp)
            }
            Some(_) => {
                counters.rtcp_rewritten += 1;
                counters.rtcp_by_mode[by_mode].forwarded += 1;
                Verdict::Rewritten(PacketKind::Rtcp)
            }
        }
    }

    fn schedule_report(&mut self, id: SessionId, side: Side, due: MonoTime) {
        if let Some(s) = self.slots.get_mut(id.index as usize).and_then(|s| s.session.as_mut()) {
            s.sides[side.index()].next_report = Some(due);
            self.report_timers
                .push(Reverse((due, id.index, id.generation, side.index() as u8)));
        }
    }

    /// Runs every report tick due by `now`.
    fn run_report_timers(&mut self, now: MonoTime) {
        while let Some(Reverse((due, index, generation, side_ix))) = self.report_timers.peek().copied() {
            if due > now {
                break;
            }
            self.report_timers.pop();
            let id = SessionId { index, generation };
            let side = if side_ix == 0 { Side::Client } else { Side::Upstream };
            let wall = self.wall_at(now);
            let unit = self.unit();
            let Some(slot) = self
                .slots
                .get_mut(index as usize)
                .filter(|s| s.generation == generation)
            else {
                continue;
            };
            let Some(session) = slot.session.as_mut() else {
                continue;
            };
            if session.sides[side.index()].next_report != Some(due) {
                continue; // superseded
            }
            let rates = &self.config.clock_rates;
            let policy = &self.config.report_policy;
            let td = rtcp_policy::leg_interval(session, side, rates, policy);
            let next = due + rtcp_policy::randomised_interval(td, unit);
            let protect = session.encrypted;
            if protect && !session.crypto.as_ref().is_some_and(|c| c.can_protect_toward(side)) {
                // SRTCP without the receiver's keys: the proxy cannot write
                // reports here.
                self.counters.reports_skipped_encrypted += 1;
            } else {
                let outcome = rtcp_policy::tick(session, side, now, wall, rates, policy);
                let report = match (outcome.report, protect) {
                    (Some(plain), true) => {
                        let mut sealed = Vec::new();
                        match session
                            .crypto
                            .as_mut()
                            .and_then(|c| c.protect_own(side, &plain, &mut sealed))
                        {
                            Some(Ok(())) => Some(sealed),
                            _ => None,
                        }
                    }
                    (report, _) => report,
                };
                if let Some(datagram) = report {
                    session.sides[side.index()].rtcp.reports_generated += 1;
                    self.counters.reports_generated += 1;
                    self.counters.rtcp_by_mode[session.mode.index()].generated += 1;
                    self.counters.report_blocks_generated += outcome.blocks as u64;
                    if self.transmits.len() >= self.config.max_queued_events {
                        // A driver that stopped sending: the oldest report goes.
                        self.transmits.pop_front();
                        self.counters.caps_hit.hit(Cap::TransmitQueue);
                    }
                    self.transmits.push_back(Transmit {
                        session: id,
                        toward: side,
                        datagram,
                    });
                }
                for ssrc in outcome.suppressed {
                    self.counters.suppression_detected += 1;
                    let ev = Event::SuppressionDetected {
                        session: id,
                        side,
                        ssrc,
                    };
                    push_bounded(&mut self.events, &mut self.counters, self.config.max_queued_events, ev);
                }
            }
            self.schedule_report(id, side, next);
        }
    }

    /// Expires idle sessions and runs due report ticks. Call when
    /// [`Self::poll_timeout`] is reached (earlier calls are harmless).
    pub fn handle_timeout(&mut self, now: MonoTime) {
        self.run_report_timers(now);
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
            let unanswered: Vec<SessionId> = self
                .sessions()
                .filter(|s| {
                    s.sides[Side::Upstream.index()].last_activity.is_none()
                        && now.saturating_since(s.opened_at) >= limit
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

    /// When the engine next needs [`Self::handle_timeout`], if ever.
    pub fn poll_timeout(&self) -> Option<MonoTime> {
        let report = self.report_timers.peek().map(|Reverse((due, ..))| *due);
        match (self.next_sweep, report) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn push_event(&mut self, ev: Event) {
        let cap = self.config.max_queued_events;
        push_bounded(&mut self.events, &mut self.counters, cap, ev);
    }
}

fn push_bounded(events: &mut VecDeque<Event>, counters: &mut Counters, cap: usize, ev: Event) {
    if events.len() >= cap {
        events.pop_front();
        counters.events_dropped += 1;
        counters.caps_hit.hit(Cap::EventQueue);
    }
    events.push_back(ev);
}
