//! The sans-IO engine: every datagram the relay (or a capture replay, or a
//! test) sees goes through [`Engine::handle_datagram`], which classifies it,
//! updates statistics and returns a [`Verdict`]. The engine owns no sockets
//! and reads no clock: `now` is always handed in.

mod counters;
mod session;
mod snapshot;

pub use counters::{kind_index, Counters, DropReason, KindCounts, DROP_REASONS, KINDS};
pub use session::{FeedbackCounts, LegRtt, Session, SessionInfo, SideState, Source};
pub use snapshot::{SessionSnapshot, SideSnapshot, SourceSnapshot};

use crate::stats::ClockRates;
use crate::time::MonoTime;
use crate::wire::rtcp;
use crate::wire::rtp::RtpView;
use crate::wire::stun::StunView;
use crate::wire::{classify, PacketKind, Ssrc};
use serde::Serialize;
use session::RtpOutcome;
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// Which endpoint a datagram came from. A session's *leg* on a side is the
/// path between the proxy and the endpoint on that side.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
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
    Drop(DropReason),
}

/// Why a session ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CloseReason {
    Idle,
    Closed,
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
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub clock_rates: ClockRates,
    pub max_sessions: usize,
    /// Cap on SSRCs tracked per side of a session (attacker-controlled).
    pub max_sources_per_side: usize,
    /// Sessions silent this long on both sides are closed; `None` never.
    pub idle_timeout: Option<Duration>,
    /// Events kept for the driver; past this the oldest are dropped (counted).
    pub max_queued_events: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            clock_rates: ClockRates::new(&Default::default()),
            max_sessions: 100_000,
            max_sources_per_side: 64,
            idle_timeout: Some(Duration::from_secs(30)),
            max_queued_events: 65_536,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum OpenError {
    #[error("session table full ({0} sessions)")]
    TableFull(usize),
}

/// How often idle sessions are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Sessions are boxed so the slot table stays small (16 bytes a slot)
/// however large a session's state grows.
struct Slot {
    generation: u32,
    session: Option<Box<Session>>,
}

pub struct Engine {
    config: EngineConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    counters: Counters,
    events: VecDeque<Event>,
    next_sweep: Option<MonoTime>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            counters: Counters::default(),
            events: VecDeque::new(),
            next_sweep: None,
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

    /// Opens a session for a new flow.
    pub fn open_session(
        &mut self,
        now: MonoTime,
        info: SessionInfo,
    ) -> Result<SessionId, OpenError> {
        if self.live >= self.config.max_sessions {
            self.counters.sessions_refused += 1;
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
        slot.session = Some(Box::new(Session::new(id, info, now)));
        self.live += 1;
        self.counters.sessions_opened += 1;
        if self.next_sweep.is_none() {
            self.next_sweep = self.config.idle_timeout.map(|_| now + SWEEP_INTERVAL);
        }
        self.push_event(Event::SessionOpened(id));
        Ok(id)
    }

    /// Closes a session now; its final snapshot is returned and also
    /// announced as [`Event::SessionClosed`].
    pub fn close_session(&mut self, now: MonoTime, id: SessionId) -> Option<SessionSnapshot> {
        self.close(now, id, CloseReason::Closed)
    }

    fn close(
        &mut self,
        now: MonoTime,
        id: SessionId,
        reason: CloseReason,
    ) -> Option<SessionSnapshot> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let session = slot.session.take()?;
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
        slot.session.as_deref()
    }

    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.slots.iter().filter_map(|s| s.session.as_deref())
    }

    /// Final or current statistics of one session.
    pub fn snapshot(&self, now: MonoTime, id: SessionId) -> Option<SessionSnapshot> {
        self.session(id).map(|s| SessionSnapshot::of(s, now))
    }

    /// Accounts one datagram that arrived from `side` of session `id` and
    /// says whether to forward it.
    #[inline]
    pub fn handle_datagram(
        &mut self,
        now: MonoTime,
        side: Side,
        id: SessionId,
        datagram: &[u8],
    ) -> Verdict {
        let kind = classify(datagram);
        let verdict = self.observe(now, side, id, kind, datagram);
        let len = datagram.len();
        self.counters.received[side.index()].add(kind, len);
        if let Verdict::Drop(reason) = verdict {
            self.counters.drops[reason.index()] += 1;
        }
        verdict
    }

    #[inline]
    fn observe(
        &mut self,
        now: MonoTime,
        side: Side,
        id: SessionId,
        kind: PacketKind,
        datagram: &[u8],
    ) -> Verdict {
        let cap = self.config.max_sources_per_side;
        // Borrow the parts of `self` separately: the session from the slot
        // table, the clock-rate table and counters beside it.
        let Engine {
            slots,
            config,
            counters,
            events,
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
                    RtpOutcome::SourceLimit => return Verdict::Drop(DropReason::SourceLimit),
                }
                Verdict::Forward(kind)
            }
            PacketKind::Rtcp => Self::observe_rtcp(session, now, side, datagram, cap, counters),
            PacketKind::Stun => match StunView::parse(datagram) {
                Ok(_) => Verdict::Forward(kind),
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
    ) -> Verdict {
        // The first header must hold for anything to be RTCP at all.
        let mut walker = rtcp::walk(datagram);
        match walker.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Verdict::Drop(DropReason::Rtcp(e)),
            None => return Verdict::Drop(DropReason::Rtcp(rtcp::RtcpError::TooShort)),
        }
        let readable = !session.encrypted && rtcp::walk(datagram).all(|p| p.is_ok());
        if !readable {
            session.sides[side.index()].rtcp_unreadable += 1;
            counters.rtcp_unreadable += 1;
            return Verdict::Forward(PacketKind::Rtcp);
        }
        for packet in rtcp::walk(datagram).flatten() {
            session.on_rtcp(now, side, &packet, cap, counters);
        }
        Verdict::Forward(PacketKind::Rtcp)
    }

    /// Expires idle sessions. Call when [`Self::poll_timeout`] is reached.
    pub fn handle_timeout(&mut self, now: MonoTime) {
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
        self.next_sweep =
            (self.live > 0 && self.config.idle_timeout.is_some()).then(|| now + SWEEP_INTERVAL);
    }

    /// When the engine next needs [`Self::handle_timeout`], if ever.
    pub fn poll_timeout(&self) -> Option<MonoTime> {
        self.next_sweep
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
    }
    events.push_back(ev);
}
