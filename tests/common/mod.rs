//! Shared test support: a driver that plays the relay runtime around the
//! engine on virtual time (through `handle_input`/`poll_output` only),
//! packet builders, and small helpers. Each test binary uses part of it.
#![allow(dead_code)]

use rtp_middlebox::engine::{
    Engine, EngineConfig, Event, Input, OpenError, Output, Payload, RelaySettings, SessionId, SessionInfo, Side,
    SocketRef, Verdict,
};
use rtp_middlebox::stats::ClockRates;
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::Ssrc;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

pub const CLIENT: &str = "192.0.2.10:50000";
pub const UPSTREAM: &str = "198.51.100.1:3478";
/// The address of the relay's own sockets, as the driver reports it.
pub const LOCAL: &str = "203.0.113.254:3478";

pub fn ms(v: u64) -> MonoTime {
    MonoTime::from_millis(v)
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Clock rates with the dynamic payload types the tests use (Opus 111,
/// VP8 96) beside the static ones.
pub fn rates() -> ClockRates {
    let mut r = BTreeMap::new();
    r.insert(111, 48_000);
    r.insert(96, 90_000);
    ClockRates::new(&r)
}

/// One relay toward [`UPSTREAM`] in `mode`, with [`rates`].
pub fn relay(mode: rtp_middlebox::engine::RtcpMode) -> RelaySettings {
    RelaySettings {
        mode,
        upstream: Some(addr(UPSTREAM)),
        clock_rates: rates(),
        ..RelaySettings::default()
    }
}

/// A plain RTP packet: version 2, no extension, `payload` bytes of 0xab.
pub fn rtp(pt: u8, seq: u16, ts: u32, ssrc: Ssrc, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.0.to_be_bytes());
    p.resize(12 + payload, 0xab);
    p
}

/// One datagram through the engine as the relay's worker hands it over,
/// its outputs drained without copying anything (for cost and allocation
/// measurements): from the session's `client` on relay 0's socket, or on
/// the session's upstream socket.
#[inline]
pub fn deliver(
    engine: &mut Engine,
    now: MonoTime,
    side: Side,
    id: SessionId,
    client: SocketAddr,
    bytes: &[u8],
) -> Verdict {
    let (socket, remote) = match side {
        Side::Client => (SocketRef::Listen { relay: 0, rtcp: false }, client),
        Side::Upstream => (
            SocketRef::Upstream {
                session: id,
                rtcp: false,
            },
            addr_const(),
        ),
    };
    let v = engine.handle_input(Input::Datagram {
        now,
        socket,
        remote,
        local: addr_const(),
        bytes,
    });
    while let Some(o) = engine.poll_output() {
        if let Output::Timeout(_) = o {
            break;
        }
        std::hint::black_box(&o);
    }
    v
}

/// [`UPSTREAM`] without parsing (no allocation).
fn addr_const() -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 1], 3478))
}

/// A datagram the engine sent, with the session and side it was for.
#[derive(Clone, Debug)]
pub struct Sent {
    pub session: Option<SessionId>,
    pub toward: Side,
    pub socket: SocketRef,
    pub destination: SocketAddr,
    pub datagram: Vec<u8>,
}

/// The relay runtime's part, on virtual time: hands datagrams and timer
/// expiries to the engine as the worker does and records every output.
/// Derefs to the engine for snapshots, counters and control calls.
pub struct Driver {
    pub engine: Engine,
    events: VecDeque<Event>,
    /// What the engine generated on its own (timer ticks): reports.
    reports: VecDeque<Sent>,
    /// What the last datagram caused to be sent.
    pub last_sent: Vec<Sent>,
    /// Upstream sockets the engine asked for and has not closed.
    pub open_upstreams: Vec<SessionId>,
    rewritten: Vec<u8>,
}

impl Deref for Driver {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl DerefMut for Driver {
    fn deref_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

impl Driver {
    pub fn new(config: EngineConfig) -> Self {
        Driver {
            engine: Engine::new(config),
            events: VecDeque::new(),
            reports: VecDeque::new(),
            last_sent: Vec::new(),
            open_upstreams: Vec::new(),
            rewritten: Vec::new(),
        }
    }

    /// Opens a session on relay 0 for `info.client`, as signalling would.
    pub fn open_session(&mut self, now: MonoTime, info: SessionInfo) -> Result<SessionId, OpenError> {
        let r = self.engine.open_session(now, 0, info);
        self.drain(&[], false);
        r
    }

    /// Whether a new flow from `client` is admitted (it opens a session).
    pub fn admit(&mut self, now: MonoTime, client: SocketAddr) -> Result<(), OpenError> {
        let info = SessionInfo {
            client,
            upstream: addr(UPSTREAM),
        };
        self.open_session(now, info).map(|_| ())
    }

    /// A datagram from `side` of session `id`: from its client's address
    /// on the relay's socket, or on the session's upstream socket.
    pub fn handle_datagram(&mut self, now: MonoTime, side: Side, id: SessionId, bytes: &[u8]) -> Verdict {
        let socket = match (side, self.engine.session(id)) {
            (Side::Client, Some(s)) => {
                let (relay, client) = (usize::from(s.relay), s.info.client);
                return self.input(now, SocketRef::Listen { relay, rtcp: false }, client, bytes);
            }
            // A closed session: its (stale) upstream socket.
            _ => SocketRef::Upstream {
                session: id,
                rtcp: false,
            },
        };
        let from = self.engine.session(id).map_or(addr(UPSTREAM), |s| s.info.upstream);
        self.input(now, socket, from, bytes)
    }

    /// A datagram from client address `from` on relay 0's socket.
    pub fn client_datagram(&mut self, now: MonoTime, from: SocketAddr, bytes: &[u8]) -> Verdict {
        self.input(now, SocketRef::Listen { relay: 0, rtcp: false }, from, bytes)
    }

    /// A datagram on one of the driver's sockets.
    pub fn input(&mut self, now: MonoTime, socket: SocketRef, remote: SocketAddr, bytes: &[u8]) -> Verdict {
        // A capture-style (tap) relay keys sessions by both ends: the
        // datagram was sent to the session's upstream.
        let tap = matches!(socket, SocketRef::Listen { relay, .. }
            if self.engine.config().relays.get(relay).is_some_and(|r| r.upstream.is_none()));
        let local = match tap {
            true => self
                .engine
                .sessions()
                .find(|s| s.info.client == remote)
                .map_or(addr(UPSTREAM), |s| s.info.upstream),
            false => addr(LOCAL),
        };
        let v = self.engine.handle_input(Input::Datagram {
            now,
            socket,
            remote,
            local,
            bytes,
        });
        self.last_sent.clear();
        self.drain(bytes, false);
        v
    }

    pub fn handle_timeout(&mut self, now: MonoTime) {
        self.engine.handle_input(Input::Timeout(now));
        self.drain(&[], true);
    }

    pub fn set_wall_clock(&mut self, now: MonoTime, wall: Duration) {
        self.engine.handle_input(Input::WallClock { now, wall });
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next report the engine generated on a timer tick.
    pub fn poll_transmit(&mut self) -> Option<Sent> {
        self.reports.pop_front()
    }

    /// The bytes the last datagram was rewritten to.
    pub fn rewritten(&self) -> &[u8] {
        &self.rewritten
    }

    fn session_of(&self, socket: SocketRef, destination: SocketAddr) -> Option<SessionId> {
        match socket {
            SocketRef::Upstream { session, .. } => Some(session),
            SocketRef::Listen { relay, .. } => self
                .engine
                .sessions()
                .find(|s| {
                    let next = SocketAddr::new(s.info.client.ip(), s.info.client.port().wrapping_add(1));
                    usize::from(s.relay) == relay
                        && (s.info.client == destination
                            || s.non_mux.as_ref().and_then(|p| p.client_rtcp) == Some(destination)
                            || next == destination)
                })
                .map(|s| s.id),
        }
    }

    fn drain(&mut self, received: &[u8], timer: bool) {
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Transmit(t) => {
                    if let Payload::Owned(bytes) = &t.payload {
                        if !timer {
                            self.rewritten = bytes.clone();
                        }
                    }
                    let sent = Sent {
                        session: self.session_of(t.socket, t.destination),
                        toward: match t.socket {
                            SocketRef::Listen { .. } => Side::Client,
                            SocketRef::Upstream { .. } => Side::Upstream,
                        },
                        socket: t.socket,
                        destination: t.destination,
                        datagram: t.payload.bytes(received).to_vec(),
                    };
                    if timer {
                        self.reports.push_back(sent);
                    } else {
                        self.last_sent.push(sent);
                    }
                }
                Output::OpenUpstream { session, .. } => self.open_upstreams.push(session),
                Output::CloseUpstream { session } => self.open_upstreams.retain(|s| *s != session),
                Output::Event(e) => self.events.push_back(e),
                Output::Timeout(_) => break,
            }
        }
    }
}

/// An engine with one relay in `mode` (see [`relay`]) and the config's
/// other settings from `config`.
pub fn driver_with(mode: rtp_middlebox::engine::RtcpMode, config: EngineConfig) -> Driver {
    Driver::new(EngineConfig {
        relays: vec![relay(mode)],
        ..config
    })
}

/// A driver with one session open for [`CLIENT`] at t = 0.
pub fn driver_and_session(mode: rtp_middlebox::engine::RtcpMode, config: EngineConfig) -> (Driver, SessionId) {
    let mut d = driver_with(mode, config);
    let id = d
        .open_session(
            ms(0),
            SessionInfo {
                client: addr(CLIENT),
                upstream: addr(UPSTREAM),
            },
        )
        .unwrap();
    (d, id)
}
