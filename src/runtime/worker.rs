//! One worker: a thread with a single-threaded tokio runtime, its own
//! engine, its own SO_REUSEPORT copy of every listening socket and the
//! upstream sockets of the sessions it created. Nothing on the packet path
//! is shared with other workers, so there is no lock to take.

use super::batch::{self, RecvBuffers, SendOutcome, BATCH};
use super::clock::Clock;
use super::socket::PortAllocator;
use super::IoCounters;
use crate::engine::{
    Engine, EngineConfig, Event, Incoming, RtcpMode, SessionId, SessionInfo, SessionSnapshot, Side, Transmit, Verdict,
};
use crate::time::MonoTime;
use crate::wire::PacketKind;
use foldhash::HashMap;
use quinn_udp::UdpSocketState;
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

/// A non-blocking UDP socket registered with the worker's reactor. `AsyncFd`
/// rather than tokio's `UdpSocket` so that a short recvmmsg batch can clear
/// readiness without one more syscall to see `EAGAIN` (tokio keeps the
/// readiness if an event arrived meanwhile, so no wake-up is lost).
type UdpSocket = AsyncFd<std::net::UdpSocket>;

/// Registers a socket with the worker's reactor for readability (the
/// sockets are written with non-blocking sendmmsg and never await writability).
fn register(sock: std::net::UdpSocket) -> io::Result<UdpSocket> {
    // SAFETY: a `std::net::UdpSocket` owns its descriptor, which stays open
    // and unchanged until the `AsyncFd` (which owns the socket) is dropped.
    unsafe { AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) }.map_err(|e| e.into_parts().1)
}
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

/// What a worker needs to serve one `[[relay]]`.
pub struct RelaySockets {
    pub mode: RtcpMode,
    pub listen: std::net::UdpSocket,
    pub listen_rtcp: Option<std::net::UdpSocket>,
    pub upstream: SocketAddr,
    pub upstream_rtcp: Option<SocketAddr>,
    pub ports: PortAllocator,
}

/// Requests from outside the worker (API, tests, shutdown reporting).
pub enum Control {
    Sessions(oneshot::Sender<Vec<SessionView>>),
    Stats(oneshot::Sender<WorkerStats>),
    /// Final views of the sessions closed since the last call (for
    /// end-of-session quality records).
    TakeClosed(oneshot::Sender<Vec<SessionView>>),
    /// SIGHUP: new relay rules and limits for sessions opened from now on.
    Reload(Box<Reload>),
    /// Draining: refuse new client addresses; live sessions continue.
    StopAccepting,
    /// Provision (`Some`) or remove a session's SRTCP keys; answers whether
    /// the session exists.
    SetKeys(
        SessionId,
        Option<Box<crate::engine::SessionKeys>>,
        oneshot::Sender<Result<bool, String>>,
    ),
}

/// What a reload may change without rebinding sockets.
#[derive(Clone, Debug)]
pub struct Reload {
    /// Per relay, in config order: RTCP mode and upstream addresses.
    pub relays: Vec<(RtcpMode, SocketAddr, Option<SocketAddr>)>,
    pub max_sessions: usize,
    pub max_sources_per_side: usize,
    pub idle_timeout: Option<std::time::Duration>,
    pub report_policy: crate::engine::ReportPolicy,
    pub clock_rates: crate::stats::ClockRates,
    pub static_keys: Vec<crate::config::SrtpConfig>,
    pub new_sessions_per_prefix_per_sec: u32,
    pub unanswered_timeout: Option<std::time::Duration>,
    pub max_packets_per_side_per_sec: u32,
    pub nat_rebinding: crate::engine::NatRebinding,
}

/// Closed sessions kept for [`Control::TakeClosed`]; beyond this the oldest
/// are dropped (and counted) so an absent exporter costs bounded memory.
pub const MAX_CLOSED_KEPT: usize = 4096;

/// A session as seen from outside: where it is and its statistics.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Globally unique: worker index and the engine's session id.
    pub id: String,
    pub worker: usize,
    pub relay: usize,
    /// Local address of the session's upstream socket (what the SFU sees).
    pub upstream_local: SocketAddr,
    pub upstream_rtcp_local: Option<SocketAddr>,
    /// ICMP errors (port/host unreachable) on this session's upstream
    /// socket(s): the upstream is not there.
    pub upstream_refused: u64,
    /// Wall clock minus the worker's monotonic clock, ms: a snapshot time
    /// `t` (s) happened at `t * 1000 + wall_offset_ms` ms since the epoch.
    pub wall_offset_ms: f64,
    pub snapshot: SessionSnapshot,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WorkerStats {
    pub worker: usize,
    pub sessions: usize,
    pub io: IoCounters,
    pub engine: Option<crate::engine::Counters>,
}

pub fn view_id(worker: usize, id: SessionId) -> String {
    format!("{worker}-{id}")
}

struct Relay {
    mode: RtcpMode,
    listen: Rc<UdpSocket>,
    listen_state: UdpSocketState,
    listen_rtcp: Option<(Rc<UdpSocket>, UdpSocketState)>,
    upstream: SocketAddr,
    upstream_rtcp: Option<SocketAddr>,
    ports: PortAllocator,
}

struct Entry {
    id: SessionId,
    relay: usize,
    client: SocketAddr,
    /// Client's RTCP address on a non-mux relay, learned from its first RTCP.
    client_rtcp: Option<SocketAddr>,
    up: Rc<UdpSocket>,
    up_rtcp: Option<Rc<UdpSocket>>,
    tasks: Vec<AbortHandle>,
    upstream_refused: u64,
}

struct State {
    index: usize,
    engine: Engine,
    clock: Clock,
    relays: Vec<Relay>,
    sessions: HashMap<(usize, SocketAddr), Entry>,
    by_id: HashMap<SessionId, (usize, SocketAddr)>,
    io: IoCounters,
    buffer_bytes: usize,
    closed: std::collections::VecDeque<SessionView>,
    /// False once draining: new client addresses are refused.
    accepting: bool,
    /// `[[srtp]]`: keys for sessions from known client addresses.
    static_keys: Vec<crate::config::SrtpConfig>,
}

struct Shared {
    state: RefCell<State>,
    bufs: RefCell<RecvBuffers>,
    shutdown: watch::Receiver<bool>,
}

/// Runs a worker to completion (until shutdown). Call on its own thread.
#[allow(clippy::too_many_arguments)] // each is one independent input of the worker
pub fn run(
    index: usize,
    relays: Vec<RelaySockets>,
    engine: EngineConfig,
    buffer_bytes: usize,
    control: mpsc::Receiver<Control>,
    shutdown: watch::Receiver<bool>,
    log_sessions: bool,
    static_keys: Vec<crate::config::SrtpConfig>,
) -> io::Result<Vec<SessionView>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut rs = Vec::new();
        for r in relays {
            let listen = register(r.listen)?;
            let listen_state = UdpSocketState::new(listen.get_ref().into())?;
            let listen_rtcp = match r.listen_rtcp {
                Some(s) => {
                    let s = register(s)?;
                    let st = UdpSocketState::new(s.get_ref().into())?;
                    Some((Rc::new(s), st))
                }
                None => None,
            };
            rs.push(Relay {
                mode: r.mode,
                listen: Rc::new(listen),
                listen_state,
                listen_rtcp,
                upstream: r.upstream,
                upstream_rtcp: r.upstream_rtcp,
                ports: r.ports,
            });
        }
        let shared = Rc::new(Shared {
            state: RefCell::new(State {
                index,
                engine: Engine::new(engine),
                clock: Clock::new(),
                relays: rs,
                sessions: HashMap::default(),
                by_id: HashMap::default(),
                io: IoCounters::default(),
                closed: std::collections::VecDeque::new(),
                accepting: true,
                static_keys,
                buffer_bytes,
            }),
            bufs: RefCell::new(RecvBuffers::new()),
            shutdown: shutdown.clone(),
        });
        let n_relays = shared.state.borrow().relays.len();
        for relay in 0..n_relays {
            tokio::task::spawn_local(listen_loop(shared.clone(), relay, false, log_sessions));
            if shared.state.borrow().relays[relay].listen_rtcp.is_some() {
                tokio::task::spawn_local(listen_loop(shared.clone(), relay, true, log_sessions));
            }
        }
        tokio::task::spawn_local(timer_loop(shared.clone(), log_sessions));
        control_loop(shared.clone(), control).await;
        // Shutdown: close every session, reporting final statistics.
        let mut st = shared.state.borrow_mut();
        let now = st.clock.now();
        let ids: Vec<SessionId> = st.by_id.keys().copied().collect();
        let mut finals = Vec::new();
        for id in ids {
            if let Some(view) = close_entry(&mut st, now, id) {
                if log_sessions {
                    log_close(&view, "shutdown");
                }
                finals.push(view);
            }
        }
        Ok(finals)
    })
}

async fn control_loop(shared: Rc<Shared>, mut control: mpsc::Receiver<Control>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            msg = control.recv() => match msg {
                Some(Control::Sessions(reply)) => {
                    let st = shared.state.borrow();
                    let now = st.clock.now();
                    let views = st.sessions.values().filter_map(|e| view_of(&st, now, e)).collect();
                    let _ = reply.send(views);
                }
                Some(Control::Reload(r)) => {
                    let r = *r;
                    let mut st = shared.state.borrow_mut();
                    for (relay, (mode, upstream, upstream_rtcp)) in st.relays.iter_mut().zip(r.relays) {
                        relay.mode = mode;
                        relay.upstream = upstream;
                        relay.upstream_rtcp = upstream_rtcp;
                    }
                    st.engine.reconfigure(|c| {
                        c.max_sessions = r.max_sessions;
                        c.max_sources_per_side = r.max_sources_per_side;
                        c.idle_timeout = r.idle_timeout;
                        c.report_policy = r.report_policy;
                        c.clock_rates = r.clock_rates;
                        c.new_sessions_per_prefix_per_sec = r.new_sessions_per_prefix_per_sec;
                        c.unanswered_timeout = r.unanswered_timeout;
                        c.max_packets_per_side_per_sec = r.max_packets_per_side_per_sec;
                        c.nat_rebinding = r.nat_rebinding;
                    });
                    st.static_keys = r.static_keys;
                }
                Some(Control::StopAccepting) => shared.state.borrow_mut().accepting = false,
                Some(Control::SetKeys(id, keys, reply)) => {
                    let result = shared
                        .state
                        .borrow_mut()
                        .engine
                        .set_session_keys(id, keys.as_deref())
                        .map_err(|e| e.to_string());
                    let _ = reply.send(result);
                }
                Some(Control::TakeClosed(reply)) => {
                    let closed = shared.state.borrow_mut().closed.drain(..).collect();
                    let _ = reply.send(closed);
                }
                Some(Control::Stats(reply)) => {
                    let st = shared.state.borrow();
                    let _ = reply.send(WorkerStats {
                        worker: st.index,
                        sessions: st.sessions.len(),
                        io: st.io,
                        engine: Some(st.engine.counters().clone()),
                    });
                }
                None => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}

fn wall_offset_ms(clock: &Clock) -> f64 {
    let map = clock.wall_to_mono();
    map.wall.as_secs_f64() * 1000.0 - map.mono.as_secs_f64() * 1000.0
}

/// The one place a [`SessionView`] is built: listing, closing and expiry.
fn make_view(st: &State, e: &Entry, snapshot: SessionSnapshot) -> SessionView {
    SessionView {
        wall_offset_ms: wall_offset_ms(&st.clock),
        id: view_id(st.index, e.id),
        worker: st.index,
        relay: e.relay,
        // A bound socket always has a local address; the client's is a
        // harmless stand-in should the kernel ever refuse to say.
        upstream_local: e.up.get_ref().local_addr().unwrap_or(e.client),
        upstream_rtcp_local: e.up_rtcp.as_ref().and_then(|s| s.get_ref().local_addr().ok()),
        upstream_refused: e.upstream_refused,
        snapshot,
    }
}

fn view_of(st: &State, now: MonoTime, e: &Entry) -> Option<SessionView> {
    let snapshot = st.engine.snapshot(now, e.id)?;
    Some(make_view(st, e, snapshot))
}

/// Removes a session's entry from the worker's tables and stops its tasks
/// (its sockets close when the last handle drops).
fn take_entry(st: &mut State, id: SessionId) -> Option<Entry> {
    let key = st.by_id.remove(&id)?;
    let entry = st.sessions.remove(&key)?;
    for t in &entry.tasks {
        t.abort();
    }
    Some(entry)
}

fn close_entry(st: &mut State, now: MonoTime, id: SessionId) -> Option<SessionView> {
    let entry = take_entry(st, id)?;
    let snapshot = st.engine.close_session(now, id)?;
    Some(make_view(st, &entry, snapshot))
}

fn log_close(v: &SessionView, reason: &str) {
    let mut line = format!(
        "session {} closed ({reason}): client={} upstream_local={}",
        v.id, v.snapshot.client, v.upstream_local
    );
    for side in Side::BOTH {
        for src in &v.snapshot.side(side).sources {
            if let Some(r) = &src.rtp {
                line.push_str(&format!(
                    " | {side:?} ssrc={:#010x} pt={} recv={} lost={} jitter_ms={}",
                    src.ssrc,
                    r.payload_type,
                    r.packets_received,
                    r.packets_lost,
                    r.jitter.map_or("-".into(), |j| format!("{:.2}", j * 1e3))
                ));
            }
        }
    }
    eprintln!("{line}");
}

/// Drains engine events: log openings, tear down expired sessions.
fn drain_events(st: &mut State, log: bool) {
    while let Some(ev) = st.engine.poll_event() {
        match ev {
            Event::SessionClosed { id, snapshot, reason } => {
                // Expiry decided by the engine: drop the sockets. (Sessions
                // the worker closed itself are no longer in its tables.)
                if let Some(entry) = take_entry(st, id) {
                    st.io.sessions_expired += 1;
                    let view = make_view(st, &entry, *snapshot);
                    if log {
                        log_close(&view, &format!("{reason:?}").to_lowercase());
                    }
                    push_closed(st, view);
                }
            }
            Event::SuppressionDetected { session, side, ssrc } if log => {
                eprintln!(
                    "session {} {side:?} stream {ssrc}: no reports from its receiver, generating RRs",
                    view_id(st.index, session)
                );
            }
            Event::SuppressionCleared { session, side, ssrc } if log => {
                eprintln!(
                    "session {} {side:?} stream {ssrc}: receiver reports again, generation stopped",
                    view_id(st.index, session)
                );
            }
            // The listen loop moved the entry when the probe's answer came.
            Event::SessionRebound { session, from, to } if log => {
                eprintln!(
                    "session {} rebound: client {from} -> {to} (the upstream accepted an ICE check from it)",
                    view_id(st.index, session)
                );
            }
            _ => {}
        }
    }
    send_transmits(st);
}

/// NAT rebinding: moves session `id`'s entry to the client address the
/// engine now holds for it. A session that the new address opened in the
/// meantime (media arriving before the check) is closed: its flow is this
/// session's. Returns the session's client address.
fn follow_client(st: &mut State, now: MonoTime, id: SessionId, log: bool) -> Option<SocketAddr> {
    let to = st.engine.session(id)?.info.client;
    let (relay, from) = *st.by_id.get(&id)?;
    if from == to {
        return Some(to);
    }
    if let Some(interim) = st.sessions.get(&(relay, to)).map(|e| e.id) {
        if let Some(view) = close_entry(st, now, interim) {
            if log {
                log_close(&view, "superseded by a rebound session");
            }
            push_closed(st, view);
        }
    }
    let mut entry = st.sessions.remove(&(relay, from))?;
    entry.client = to;
    // Non-mux: the RTCP port is learned again from the new address.
    entry.client_rtcp = None;
    st.sessions.insert((relay, to), entry);
    st.by_id.insert(id, (relay, to));
    Some(to)
}

fn push_closed(st: &mut State, view: SessionView) {
    if st.closed.len() >= MAX_CLOSED_KEPT {
        st.closed.pop_front();
        st.io.closed_records_dropped += 1;
    }
    st.closed.push_back(view);
}

/// Sends the reports the engine generated.
fn send_transmits(st: &mut State) {
    while let Some(Transmit {
        session,
        toward,
        datagram,
    }) = st.engine.poll_transmit()
    {
        let Some(key) = st.by_id.get(&session) else { continue };
        let Some(entry) = st.sessions.get(key) else { continue };
        let out = match toward {
            // Upstream sockets are connected to the upstream.
            Side::Upstream => {
                let sock = entry.up_rtcp.as_ref().unwrap_or(&entry.up);
                batch::send_batch(&**sock, None, &[&datagram])
            }
            Side::Client => {
                let r = &st.relays[entry.relay];
                match &r.listen_rtcp {
                    Some((s, _)) => {
                        let dest = entry
                            .client_rtcp
                            .unwrap_or(SocketAddr::new(entry.client.ip(), entry.client.port().wrapping_add(1)));
                        batch::send_batch(&**s, Some(dest), &[&datagram])
                    }
                    None => batch::send_batch(&*r.listen, Some(entry.client), &[&datagram]),
                }
            }
        };
        st.io.add_send(out);
        st.io.reports_sent += out.sent as u64;
    }
}

async fn timer_loop(shared: Rc<Shared>, log: bool) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let wake = {
            let st = shared.state.borrow();
            let next = st
                .engine
                .poll_timeout()
                .unwrap_or(st.clock.now() + std::time::Duration::from_secs(1));
            st.clock.instant_of(next)
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = shutdown.changed() => return,
        }
        let mut st = shared.state.borrow_mut();
        let map = st.clock.wall_to_mono();
        st.engine.set_wall_clock(map.mono, map.wall);
        st.engine.handle_timeout(map.mono);
        drain_events(&mut st, log);
    }
}

/// Creates a session for a new client: its upstream socket(s), connected
/// to the upstream so only the upstream's datagrams arrive on them.
fn open_session(
    shared: &Rc<Shared>,
    st: &mut State,
    relay: usize,
    client: SocketAddr,
    now: MonoTime,
    log: bool,
) -> Option<()> {
    if !st.accepting {
        st.io.sessions_refused += 1;
        return None;
    }
    // The table's room and the source prefix's rate, before any socket is
    // spent on the flow (spoofed floods stop here).
    if st.engine.admit(now, client).is_err() {
        st.io.sessions_refused += 1;
        return None;
    }
    let buffer_bytes = st.buffer_bytes;
    let r = &mut st.relays[relay];
    let pair = r.listen_rtcp.is_some();
    let (up, up_rtcp) = match r.ports.bind(pair, buffer_bytes) {
        Ok(v) => v,
        Err(_) => {
            st.io.upstream_bind_failures += 1;
            return None;
        }
    };
    let (upstream, upstream_rtcp, mode) = (r.upstream, r.upstream_rtcp, r.mode);
    if up.connect(upstream).is_err() {
        st.io.upstream_bind_failures += 1;
        return None;
    }
    if let (Some(s), Some(a)) = (&up_rtcp, upstream_rtcp) {
        if s.connect(a).is_err() {
            st.io.upstream_bind_failures += 1;
            return None;
        }
    }
    let info = SessionInfo { client, upstream };
    let id = match st.engine.open_session_mode(now, info, mode) {
        Ok(id) => id,
        Err(_) => {
            st.io.sessions_refused += 1;
            return None;
        }
    };
    // Validated at config load; a failure here is the crypto provider's.
    if let Some(keys) = st
        .static_keys
        .iter()
        .find(|k| k.matches(client))
        .and_then(|k| k.keys().ok())
    {
        let _ = st.engine.set_session_keys(id, Some(&keys));
    }
    let up = Rc::new(register(up).ok()?);
    let up_state = UdpSocketState::new(up.get_ref().into()).ok()?;
    let mut tasks =
        vec![tokio::task::spawn_local(upstream_loop(shared.clone(), id, up.clone(), up_state, false)).abort_handle()];
    let up_rtcp = match up_rtcp {
        Some(s) => {
            let s = Rc::new(register(s).ok()?);
            let s_state = UdpSocketState::new(s.get_ref().into()).ok()?;
            tasks.push(
                tokio::task::spawn_local(upstream_loop(shared.clone(), id, s.clone(), s_state, true)).abort_handle(),
            );
            Some(s)
        }
        None => None,
    };
    if log {
        eprintln!(
            "session {} opened: client={client} upstream_local={}",
            view_id(st.index, id),
            up.get_ref().local_addr().map_or("?".into(), |a| a.to_string())
        );
    }
    st.io.sessions_created += 1;
    st.by_id.insert(id, (relay, client));
    st.sessions.insert(
        (relay, client),
        Entry {
            id,
            relay,
            client,
            client_rtcp: None,
            up,
            up_rtcp,
            tasks,
            upstream_refused: 0,
        },
    );
    Some(())
}

/// Flushes a run of datagrams for one destination socket.
fn flush(io: &mut IoCounters, sock: &UdpSocket, dest: Option<SocketAddr>, run: &[&[u8]]) {
    if run.is_empty() {
        return;
    }
    let out: SendOutcome = batch::send_batch(sock, dest, run);
    io.add_send(out);
}

/// Runs a chunk of client datagrams through the engine and sends what it
/// forwards to each session's upstream socket, consecutive datagrams for
/// one socket in one sendmmsg.
fn forward_chunk(st: &mut State, incoming: &[Incoming<'_>], dests: &[Option<Rc<UdpSocket>>]) {
    let mut verdicts = [Verdict::Consumed; BATCH];
    let mut run: [&[u8]; BATCH] = [&[]; BATCH];
    let mut run_len = 0;
    // The socket (and its session) of the datagrams queued in `run`.
    let mut run_sock: Option<(&Rc<UdpSocket>, SessionId)> = None;
    let mut done = 0;
    while done < incoming.len() {
        let k = st.engine.handle_batch(&incoming[done..], &mut verdicts[done..]);
        for i in done..done + k {
            let Some(dest) = &dests[i] else { continue };
            let session = incoming[i].session;
            match verdicts[i] {
                Verdict::Forward(_) => {
                    let same = run_sock.is_some_and(|(s, _)| Rc::ptr_eq(s, dest));
                    if !same || run_len == BATCH {
                        if let Some((s, id)) = run_sock {
                            flush_upstream(st, s, id, &run[..run_len]);
                        }
                        run_len = 0;
                        run_sock = Some((dest, session));
                    }
                    run[run_len] = incoming[i].datagram;
                    run_len += 1;
                }
                Verdict::Rewritten(_) => {
                    // Keep order: what is queued goes first. A rewrite is
                    // always the last datagram `handle_batch` handled.
                    if let Some((s, id)) = run_sock {
                        flush_upstream(st, s, id, &run[..run_len]);
                    }
                    run_len = 0;
                    let out = batch::send_batch(&**dest, None, &[st.engine.rewritten()]);
                    note_refused(st, session, out.refused);
                    st.io.add_send(out);
                }
                Verdict::Consumed | Verdict::Drop(_) => {}
            }
        }
        done += k.max(1);
    }
    if let Some((s, id)) = run_sock {
        flush_upstream(st, s, id, &run[..run_len]);
    }
}

/// Sends a run toward a session's upstream; ICMP unreachable reported on
/// the send counts against the session (the upstream is not there).
fn flush_upstream(st: &mut State, sock: &UdpSocket, session: SessionId, run: &[&[u8]]) {
    if run.is_empty() {
        return;
    }
    let out: SendOutcome = batch::send_batch(sock, None, run);
    note_refused(st, session, out.refused);
    st.io.add_send(out);
}

fn note_refused(st: &mut State, session: SessionId, refused: usize) {
    if refused == 0 {
        return;
    }
    if let Some(entry) = st.by_id.get(&session).and_then(|key| st.sessions.get_mut(key)) {
        entry.upstream_refused += refused as u64;
    }
}

/// Client → upstream: the relay's listening socket (RTP/mux, or the RTCP
/// socket of a non-mux relay).
async fn listen_loop(shared: Rc<Shared>, relay: usize, rtcp_socket: bool, log: bool) {
    let mut shutdown = shared.shutdown.clone();
    let sock = {
        let st = shared.state.borrow();
        let r = &st.relays[relay];
        match (&r.listen_rtcp, rtcp_socket) {
            (Some((s, _)), true) => s.clone(),
            (None, true) => return,
            _ => r.listen.clone(),
        }
    };
    loop {
        let mut ready = tokio::select! {
            r = sock.readable() => match r { Ok(g) => g, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        loop {
            let mut bufs = shared.bufs.borrow_mut();
            let res = {
                let st = shared.state.borrow();
                let r = &st.relays[relay];
                let qstate = if rtcp_socket {
                    match &r.listen_rtcp {
                        Some((_, q)) => q,
                        None => return,
                    }
                } else {
                    &r.listen_state
                };
                ready.try_io(|inner| bufs.recv(qstate, inner.get_ref().into()))
            };
            let batch_len = match res {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    shared.state.borrow_mut().io.add_recv_error(&e);
                    continue;
                }
                Err(_would_block) => break,
            };
            let mut guard = shared.state.borrow_mut();
            let st = &mut *guard;
            let map = st.clock.wall_to_mono();
            // Sessions for up to BATCH datagrams first, then the engine over
            // the chunk at once (it prefetches across packets), then the
            // sends, in arrival order.
            let mut incoming = [Incoming::EMPTY; BATCH];
            let mut dests: [Option<Rc<UdpSocket>>; BATCH] = Default::default();
            let mut n = 0;
            let mut datagrams = bufs.datagrams();
            loop {
                let next = datagrams.next();
                if let Some((from, kernel_ts, bytes)) = next {
                    st.io.received_client += 1;
                    let now = map.map(kernel_ts);
                    // Non-mux RTCP arrives from the client's RTCP port: find
                    // the session by the client's RTP address (port − 1).
                    let client = if rtcp_socket {
                        SocketAddr::new(from.ip(), from.port().wrapping_sub(1))
                    } else {
                        from
                    };
                    let known = st.sessions.get(&(relay, client)).map(|e| e.id);
                    // NAT rebinding (STUN only; the first byte test keeps
                    // media off this path): the answer to the proxy's probe
                    // completes a move; an ICE check from a new address for
                    // another session goes to that session.
                    let stun = !rtcp_socket && bytes.first().is_some_and(|b| *b < 4);
                    if stun {
                        if let Some(moved) = st.engine.rebinding_probe_answer(now, from, bytes) {
                            follow_client(st, now, moved, log);
                            continue;
                        }
                    }
                    let rebinding = if stun {
                        let upstream = st.relays[relay].upstream;
                        let by_id = &st.by_id;
                        let same_relay = |t| by_id.get(&t).is_some_and(|key| key.0 == relay);
                        st.engine.rebinding_check(now, upstream, known, from, bytes, same_relay)
                    } else {
                        None
                    };
                    let entry = match rebinding {
                        Some(target) => st.by_id.get(&target).and_then(|key| st.sessions.get_mut(key)),
                        None => {
                            if known.is_none() && open_session(&shared, st, relay, client, now, log).is_none() {
                                st.io.dropped_no_session += 1;
                                continue;
                            }
                            st.sessions.get_mut(&(relay, client))
                        }
                    };
                    let Some(entry) = entry else {
                        continue;
                    };
                    if rtcp_socket && entry.client_rtcp.is_none() {
                        entry.client_rtcp = Some(from);
                    }
                    incoming[n] = Incoming {
                        now,
                        side: Side::Client,
                        session: entry.id,
                        datagram: bytes,
                    };
                    dests[n] = if rtcp_socket {
                        entry.up_rtcp.clone()
                    } else {
                        Some(entry.up.clone())
                    };
                    n += 1;
                    if n < BATCH {
                        continue;
                    }
                }
                if n > 0 {
                    forward_chunk(st, &incoming[..n], &dests[..n]);
                    n = 0;
                }
                if next.is_none() {
                    break;
                }
            }
            drain_events(st, log);
            if batch_len < BATCH {
                // The queue was drained: wait for the next readiness event.
                ready.clear_ready();
                break;
            }
        }
    }
}

/// Upstream → client, for one session's upstream socket.
async fn upstream_loop(
    shared: Rc<Shared>,
    id: SessionId,
    sock: Rc<UdpSocket>,
    qstate: UdpSocketState,
    rtcp_socket: bool,
) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let mut ready = tokio::select! {
            r = sock.readable() => match r { Ok(g) => g, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        loop {
            let mut bufs = shared.bufs.borrow_mut();
            let batch_len = match ready.try_io(|inner| bufs.recv(&qstate, inner.get_ref().into())) {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    // ICMP port unreachable from the upstream surfaces here
                    // as ECONNREFUSED: count it, keep the session.
                    let mut st = shared.state.borrow_mut();
                    st.io.add_recv_error(&e);
                    if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                        if let Some(entry) = st.by_id.get(&id).copied().and_then(|key| st.sessions.get_mut(&key)) {
                            entry.upstream_refused += 1;
                        }
                    }
                    continue;
                }
                Err(_would_block) => break,
            };
            let mut guard = shared.state.borrow_mut();
            let st = &mut *guard;
            // Looked up per batch: NAT rebinding may have moved the client.
            let Some(&(relay, client)) = st.by_id.get(&id) else {
                return;
            };
            let Some(entry) = st.sessions.get(&(relay, client)) else {
                return;
            };
            let dest = if rtcp_socket {
                entry
                    .client_rtcp
                    .unwrap_or(SocketAddr::new(client.ip(), client.port().wrapping_add(1)))
            } else {
                client
            };
            let out_sock = {
                let r = &st.relays[relay];
                match (&r.listen_rtcp, rtcp_socket) {
                    (Some((s, _)), true) => s.clone(),
                    _ => r.listen.clone(),
                }
            };
            let map = st.clock.wall_to_mono();
            let mut run: [&[u8]; BATCH] = [&[]; BATCH];
            let mut run_len = 0;
            for (_from, kernel_ts, bytes) in bufs.datagrams() {
                st.io.received_upstream += 1;
                let now = map.map(kernel_ts);
                let verdict = st.engine.handle_datagram(now, Side::Upstream, id, bytes);
                if verdict == Verdict::Forward(PacketKind::Stun) {
                    // The answer to a NAT rebinding check goes back to
                    // whoever sent the check, not to the client; when the
                    // upstream accepted, the proxy's probe follows it.
                    if let Some(answer) = st.engine.take_check_answer() {
                        let out = batch::send_batch(&*out_sock, Some(answer.to), &[bytes]);
                        st.io.add_send(out);
                        if let Some(probe) = &answer.probe {
                            let out = batch::send_batch(&*out_sock, Some(answer.to), &[&probe[..]]);
                            st.io.add_send(out);
                        }
                        continue;
                    }
                }
                match verdict {
                    Verdict::Forward(_) => {
                        if run_len == BATCH {
                            flush(&mut st.io, &out_sock, Some(dest), &run[..run_len]);
                            run_len = 0;
                        }
                        run[run_len] = bytes;
                        run_len += 1;
                    }
                    Verdict::Rewritten(_) => {
                        flush(&mut st.io, &out_sock, Some(dest), &run[..run_len]);
                        run_len = 0;
                        let out = batch::send_batch(&*out_sock, Some(dest), &[st.engine.rewritten()]);
                        st.io.add_send(out);
                    }
                    Verdict::Consumed | Verdict::Drop(_) => {}
                }
            }
            flush(&mut st.io, &out_sock, Some(dest), &run[..run_len]);
            drain_events(st, false);
            if batch_len < BATCH {
                ready.clear_ready();
                break;
            }
        }
    }
}
