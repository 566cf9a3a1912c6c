//! One worker: a thread with a single-threaded tokio runtime, its own
//! engine, its own SO_REUSEPORT copy of every listening socket and the
//! upstream sockets of the sessions its engine opened. Nothing on the
//! packet path is shared with other workers, so there is no lock to take.
//!
//! The packet path, in full ([`receive_loop`] → [`run_batch`] →
//! [`Sender`]): receive a batch with recvmmsg; hand each datagram to
//! `Engine::handle_input`; drain `Engine::poll_output`, which says what to
//! send from which socket to where, which sockets to open and close, and
//! what happened; send consecutive datagrams for one socket and address in
//! one sendmmsg. The worker keeps no routing state: only the sockets the
//! engine asked for, by session.

use super::batch::{self, RecvBuffers, SendOutcome, BATCH};
use super::clock::Clock;
use super::socket::PortAllocator;
use super::IoCounters;
use crate::engine::{
    CloseReason, DropReason, Engine, EngineConfig, Event, Input, KeysOutcome, Output, Payload, SessionId, SessionKeys,
    Side, SocketRef, Verdict,
};
use crate::time::MonoTime;
use crate::view::{view_id, SessionView, WorkerStats};
use quinn_udp::UdpSocketState;
use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::AbortHandle;

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

/// What a worker needs to serve one `[[relay]]`: its client-facing
/// socket(s) and the port range of its sessions' upstream sockets.
pub struct RelaySockets {
    pub listen: std::net::UdpSocket,
    pub listen_rtcp: Option<std::net::UdpSocket>,
    pub ports: PortAllocator,
}

/// Requests from outside the worker (API, tests, shutdown reporting).
pub enum Control {
    Sessions(oneshot::Sender<Vec<SessionView>>),
    Stats(oneshot::Sender<WorkerStats>),
    /// Final views of the sessions closed since the last call (for
    /// end-of-session quality records).
    TakeClosed(oneshot::Sender<Vec<SessionView>>),
    /// SIGHUP: new engine settings for sessions opened from now on.
    Reload(Box<EngineConfig>),
    /// Draining: refuse new client addresses; live sessions continue.
    StopAccepting,
    /// Provision (`Some`) or remove a session's SRTCP keys; answers what
    /// the engine did. The session is named by its engine id and its public
    /// id's random tag ([`crate::view::view_id`]); a wrong tag is an
    /// unknown session (here and in `SetMedia`).
    SetKeys(
        SessionId,
        u64,
        Option<Box<SessionKeys>>,
        oneshot::Sender<Result<KeysOutcome, String>>,
    ),
    /// What a session's SDP says about its streams; answers whether the
    /// session exists.
    SetMedia(
        SessionId,
        u64,
        Box<crate::engine::media::MediaMap>,
        oneshot::Sender<bool>,
    ),
    /// A call set up through the calls API (DTLS termination).
    SetCall(Box<crate::engine::dtls::CallSetup>, oneshot::Sender<Result<(), String>>),
    /// Forget a call (its session closes); answers whether it was known.
    RemoveCall(String, oneshot::Sender<bool>),
}

/// Closed sessions kept for [`Control::TakeClosed`]; beyond this the oldest
/// are dropped (and counted) so an absent exporter costs bounded memory.
pub const MAX_CLOSED_KEPT: usize = 4096;

/// A socket with its quinn-udp receive state.
struct Socket {
    fd: UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
}

impl Socket {
    fn new(sock: std::net::UdpSocket) -> io::Result<Rc<Socket>> {
        let local = sock.local_addr()?;
        let fd = register(sock)?;
        let state = UdpSocketState::new(fd.get_ref().into())?;
        Ok(Rc::new(Socket { fd, state, local }))
    }
}

struct Relay {
    listen: Rc<Socket>,
    listen_rtcp: Option<Rc<Socket>>,
    ports: PortAllocator,
}

/// The socket side of one session: what the engine asked the worker to open.
struct Upstream {
    id: SessionId,
    /// The random half of the session's public id ([`view_id`]).
    tag: u64,
    relay: usize,
    rtp: Rc<Socket>,
    rtcp: Option<Rc<Socket>>,
    tasks: Vec<AbortHandle>,
    refused: u64,
}

/// A session's socket facts, kept from its `CloseUpstream` for the
/// `SessionClosed` event that follows it.
struct Closing {
    id: SessionId,
    tag: u64,
    relay: usize,
    upstream_local: SocketAddr,
    upstream_rtcp_local: Option<SocketAddr>,
    refused: u64,
}

struct State {
    index: usize,
    engine: Engine,
    clock: Clock,
    relays: Vec<Relay>,
    /// By session slot ([`SessionId::slot`]).
    upstreams: Vec<Option<Upstream>>,
    live: usize,
    closing: Option<Closing>,
    io: IoCounters,
    buffer_bytes: usize,
    closed: std::collections::VecDeque<SessionView>,
    /// Shutdown: closed sessions' views go here instead of `closed`.
    finals: Option<Vec<SessionView>>,
    log: bool,
}

struct Shared {
    state: RefCell<State>,
    bufs: RefCell<RecvBuffers>,
    shutdown: watch::Receiver<bool>,
    /// The engine's next deadline as the timer task last saw it; an
    /// earlier one wakes the task.
    timer_due: Cell<Option<MonoTime>>,
    timer_changed: Notify,
}

/// Runs a worker to completion (until shutdown). Call on its own thread.
pub fn run(
    index: usize,
    relays: Vec<RelaySockets>,
    engine: EngineConfig,
    buffer_bytes: usize,
    control: mpsc::Receiver<Control>,
    shutdown: watch::Receiver<bool>,
    log: bool,
) -> io::Result<Vec<SessionView>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut rs = Vec::new();
        for r in relays {
            rs.push(Relay {
                listen: Socket::new(r.listen)?,
                listen_rtcp: r.listen_rtcp.map(Socket::new).transpose()?,
                ports: r.ports,
            });
        }
        let clock = Clock::new();
        let mut engine = engine;
        if let Some(dtls) = engine.dtls.as_mut() {
            // DTLS handshakes run on the engine's time (see engine::dtls).
            dtls.epoch = clock.instant_of(crate::time::MonoTime::ZERO);
        }
        let mut engine = Engine::new(engine);
        let map = clock.wall_to_mono();
        engine.handle_input(Input::WallClock {
            now: map.mono,
            wall: map.wall,
        });
        let shared = Rc::new(Shared {
            state: RefCell::new(State {
                index,
                engine,
                clock,
                relays: rs,
                upstreams: Vec::new(),
                live: 0,
                closing: None,
                io: IoCounters::default(),
                buffer_bytes,
                closed: std::collections::VecDeque::new(),
                finals: None,
                log,
            }),
            bufs: RefCell::new(RecvBuffers::new()),
            shutdown: shutdown.clone(),
            timer_due: Cell::new(None),
            timer_changed: Notify::new(),
        });
        let listening: Vec<(usize, Rc<Socket>, bool)> = {
            let st = shared.state.borrow();
            st.relays
                .iter()
                .enumerate()
                .flat_map(|(i, r)| {
                    std::iter::once((i, r.listen.clone(), false)).chain(r.listen_rtcp.clone().map(|s| (i, s, true)))
                })
                .collect()
        };
        for (relay, sock, rtcp) in listening {
            tokio::task::spawn_local(receive_loop(shared.clone(), SocketRef::Listen { relay, rtcp }, sock));
        }
        tokio::task::spawn_local(timer_loop(shared.clone()));
        control_loop(shared.clone(), control).await;
        // Shutdown: close every session, reporting final statistics.
        let mut st = shared.state.borrow_mut();
        let now = st.clock.now();
        st.finals = Some(Vec::new());
        let ids: Vec<SessionId> = st.engine.sessions().map(|s| s.id).collect();
        for id in ids {
            st.engine.close_session(now, id);
        }
        drain_outputs(&shared, &mut st, &[], &mut Sender::default());
        Ok(st.finals.take().unwrap_or_default())
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
                    let views = st
                        .upstreams
                        .iter()
                        .flatten()
                        .filter_map(|u| Some(make_view(&st, u.facts(), st.engine.snapshot(now, u.id)?)))
                        .collect();
                    let _ = reply.send(views);
                }
                Some(Control::Reload(config)) => {
                    shared.state.borrow_mut().engine.reconfigure(|c| *c = *config);
                }
                Some(Control::StopAccepting) => shared.state.borrow_mut().engine.stop_accepting(),
                Some(Control::SetKeys(id, tag, keys, reply)) => {
                    let mut st = shared.state.borrow_mut();
                    let result = if st.upstream(id).is_some_and(|u| u.tag == tag) {
                        st.engine.set_session_keys(id, keys.as_deref())
                    } else {
                        Ok(KeysOutcome::UnknownSession)
                    };
                    let _ = reply.send(result.map_err(|e| e.to_string()));
                }
                Some(Control::SetMedia(id, tag, media, reply)) => {
                    let mut st = shared.state.borrow_mut();
                    let known = st.upstream(id).is_some_and(|u| u.tag == tag) && st.engine.set_session_media(id, *media);
                    let _ = reply.send(known);
                }
                Some(Control::SetCall(setup, reply)) => {
                    let mut st = shared.state.borrow_mut();
                    let now = st.clock.now();
                    let result = st.engine.set_call(now, *setup).map_err(|e| e.to_string());
                    let _ = reply.send(result);
                }
                Some(Control::RemoveCall(call_id, reply)) => {
                    let known = {
                        let mut st = shared.state.borrow_mut();
                        let now = st.clock.now();
                        st.engine.remove_call(now, &call_id)
                    };
                    // A closed session's sockets and record follow.
                    let mut st = shared.state.borrow_mut();
                    let mut sender = Sender::default();
                    drain_outputs(&shared, &mut st, &[], &mut sender);
                    sender.flush(&mut st);
                    let _ = reply.send(known);
                }
                Some(Control::TakeClosed(reply)) => {
                    let closed = shared.state.borrow_mut().closed.drain(..).collect();
                    let _ = reply.send(closed);
                }
                Some(Control::Stats(reply)) => {
                    let st = shared.state.borrow();
                    let _ = reply.send(WorkerStats {
                        worker: st.index,
                        sessions: st.live,
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

/// Receives on one socket until shutdown (or, for an upstream socket,
/// until the session's task is aborted).
async fn receive_loop(shared: Rc<Shared>, socket: SocketRef, sock: Rc<Socket>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let mut ready = tokio::select! {
            r = sock.fd.readable() => match r { Ok(g) => g, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        loop {
            let mut bufs = shared.bufs.borrow_mut();
            let batch_len = match ready.try_io(|inner| bufs.recv(&sock.state, inner.get_ref().into())) {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    // ICMP port unreachable from the upstream surfaces here
                    // as ECONNREFUSED: count it, keep the session.
                    let mut st = shared.state.borrow_mut();
                    st.io.add_recv_error(&e);
                    if let (SocketRef::Upstream { session, .. }, Some(libc::ECONNREFUSED)) = (socket, e.raw_os_error())
                    {
                        st.note_refused(session, 1);
                    }
                    continue;
                }
                Err(_would_block) => break,
            };
            run_batch(&shared, socket, sock.local, &bufs);
            if batch_len < BATCH {
                // The queue was drained: wait for the next readiness event.
                ready.clear_ready();
                break;
            }
        }
    }
}

/// Every datagram of one received batch through the engine, and out.
fn run_batch(shared: &Rc<Shared>, socket: SocketRef, local: SocketAddr, bufs: &RecvBuffers) {
    let mut guard = shared.state.borrow_mut();
    let st = &mut *guard;
    let map = st.clock.wall_to_mono();
    let mut sender = Sender::default();
    for (remote, kernel_ts, bytes) in bufs.datagrams() {
        match socket.side() {
            Side::Client => st.io.received_client += 1,
            Side::Upstream => st.io.received_upstream += 1,
        }
        let now = map.map(kernel_ts);
        let verdict = st.engine.handle_input(Input::Datagram {
            now,
            socket,
            remote,
            local,
            bytes,
        });
        if matches!(socket, SocketRef::Listen { .. }) && verdict == Verdict::Drop(DropReason::UnknownSession) {
            // A new client the engine refused (table, prefix rate, draining).
            st.io.sessions_refused += 1;
            st.io.dropped_no_session += 1;
        }
        drain_outputs(shared, st, bytes, &mut sender);
    }
    sender.flush(st);
}

/// Does what the engine says until it has nothing more for now.
/// `received` is the datagram last handed in ([`Payload::Received`]).
fn drain_outputs<'a>(shared: &Rc<Shared>, st: &mut State, received: &'a [u8], sender: &mut Sender<'a>) {
    while let Some(output) = st.engine.poll_output() {
        match output {
            Output::Transmit(t) => match &t.payload {
                Payload::Received => sender.queue(st, t.socket, t.destination, received),
                Payload::Owned(bytes) => {
                    sender.flush(st);
                    let before = st.io.sent;
                    sender.send_now(st, t.socket, t.destination, bytes);
                    if received.is_empty() {
                        // Outside a datagram's handling: a generated report.
                        st.io.reports_sent += st.io.sent - before;
                    }
                }
            },
            Output::OpenUpstream {
                session,
                relay,
                upstream,
                upstream_rtcp,
            } => {
                sender.flush(st);
                if open_upstream(shared, st, session, relay, upstream, upstream_rtcp).is_err() {
                    st.io.upstream_bind_failures += 1;
                    let now = st.clock.now();
                    st.engine.handle_input(Input::UpstreamFailed { now, session });
                }
            }
            Output::CloseUpstream { session } => {
                sender.flush(st);
                st.close_upstream(session);
            }
            Output::Event(event) => on_event(st, event),
            Output::Timeout(due) => {
                if shared.timer_due.get().is_none_or(|t| due < t) {
                    shared.timer_due.set(Some(due));
                    shared.timer_changed.notify_one();
                }
                break;
            }
        }
    }
}

/// Runs of datagrams for one (socket, destination), each sent with one
/// sendmmsg. Holds slices of the current receive batch only.
#[derive(Default)]
struct Sender<'a> {
    run: Vec<&'a [u8]>,
    target: Option<(SocketRef, SocketAddr)>,
}

impl<'a> Sender<'a> {
    fn queue(&mut self, st: &mut State, socket: SocketRef, destination: SocketAddr, bytes: &'a [u8]) {
        if self.target != Some((socket, destination)) || self.run.len() == BATCH {
            self.flush(st);
            self.target = Some((socket, destination));
        }
        self.run.push(bytes);
    }

    fn flush(&mut self, st: &mut State) {
        if let Some((socket, destination)) = self.target.take() {
            st.send(socket, destination, &self.run);
        }
        self.run.clear();
    }

    fn send_now(&mut self, st: &mut State, socket: SocketRef, destination: SocketAddr, bytes: &[u8]) {
        st.send(socket, destination, &[bytes]);
    }
}

impl State {
    /// Sends on the socket the engine named; upstream sockets are
    /// connected, so they take no address.
    fn send(&mut self, socket: SocketRef, destination: SocketAddr, datagrams: &[&[u8]]) {
        if datagrams.is_empty() {
            return;
        }
        let (sock, dest) = match socket {
            SocketRef::Listen { relay, rtcp } => {
                let Some(r) = self.relays.get(relay) else { return };
                let s = if rtcp { r.listen_rtcp.as_ref() } else { Some(&r.listen) };
                let Some(s) = s else { return };
                (s.clone(), Some(destination))
            }
            SocketRef::Upstream { session, rtcp } => {
                let Some(u) = self.upstream(session) else { return };
                let s = if rtcp { u.rtcp.as_ref() } else { Some(&u.rtp) };
                let Some(s) = s else { return };
                (s.clone(), None)
            }
        };
        let out: SendOutcome = batch::send_batch(&sock.fd, dest, datagrams);
        if let SocketRef::Upstream { session, .. } = socket {
            self.note_refused(session, out.refused);
        }
        self.io.add_send(out);
    }

    /// A live session's public id (logs).
    fn public_id(&self, id: SessionId) -> String {
        view_id(self.index, id, self.upstream(id).map_or(0, |u| u.tag))
    }

    fn upstream(&self, id: SessionId) -> Option<&Upstream> {
        self.upstreams.get(id.slot())?.as_ref().filter(|u| u.id == id)
    }

    fn note_refused(&mut self, id: SessionId, refused: usize) {
        if refused == 0 {
            return;
        }
        if let Some(u) = self
            .upstreams
            .get_mut(id.slot())
            .and_then(|u| u.as_mut())
            .filter(|u| u.id == id)
        {
            u.refused += refused as u64;
        }
    }

    /// Drops a session's sockets (they close when the last handle goes)
    /// and keeps their facts for the `SessionClosed` event that follows.
    fn close_upstream(&mut self, id: SessionId) {
        let Some(slot) = self.upstreams.get_mut(id.slot()) else {
            return;
        };
        if slot.as_ref().is_none_or(|u| u.id != id) {
            return;
        }
        let Some(u) = slot.take() else { return };
        for t in &u.tasks {
            t.abort();
        }
        self.live -= 1;
        self.closing = Some(u.facts());
    }
}

impl Upstream {
    fn facts(&self) -> Closing {
        Closing {
            id: self.id,
            tag: self.tag,
            relay: self.relay,
            upstream_local: self.rtp.local,
            upstream_rtcp_local: self.rtcp.as_ref().map(|s| s.local),
            refused: self.refused,
        }
    }
}

/// Opens a session's upstream socket(s), connected to the upstream so only
/// its datagrams arrive there, and starts receiving on them.
fn open_upstream(
    shared: &Rc<Shared>,
    st: &mut State,
    session: SessionId,
    relay: usize,
    upstream: SocketAddr,
    upstream_rtcp: Option<SocketAddr>,
) -> io::Result<()> {
    let buffer_bytes = st.buffer_bytes;
    let r = st
        .relays
        .get_mut(relay)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such relay"))?;
    let (rtp, rtcp) = r.ports.bind(upstream_rtcp.is_some(), buffer_bytes)?;
    rtp.connect(upstream)?;
    if let (Some(s), Some(a)) = (&rtcp, upstream_rtcp) {
        s.connect(a)?;
    }
    let rtp = Socket::new(rtp)?;
    let rtcp = rtcp.map(Socket::new).transpose()?;
    let mut tasks = Vec::new();
    for (sock, is_rtcp) in std::iter::once((&rtp, false)).chain(rtcp.as_ref().map(|s| (s, true))) {
        let socket = SocketRef::Upstream { session, rtcp: is_rtcp };
        tasks.push(tokio::task::spawn_local(receive_loop(shared.clone(), socket, sock.clone())).abort_handle());
    }
    let slot = session.slot();
    if st.upstreams.len() <= slot {
        st.upstreams.resize_with(slot + 1, || None);
    }
    if let Some(old) = st.upstreams[slot].take() {
        // A stale entry (never closed): its tasks stop here.
        for t in &old.tasks {
            t.abort();
        }
        st.live -= 1;
    }
    st.upstreams[slot] = Some(Upstream {
        id: session,
        tag: session_tag()?,
        relay,
        rtp,
        rtcp,
        tasks,
        refused: 0,
    });
    st.live += 1;
    st.io.sessions_created += 1;
    Ok(())
}

/// 64 bits from the OS's CSPRNG for a session's public id.
fn session_tag() -> io::Result<u64> {
    getrandom::u64().map_err(|e| io::Error::other(format!("no OS randomness for a session id: {e}")))
}

fn wall_offset_ms(clock: &Clock) -> f64 {
    let map = clock.wall_to_mono();
    map.wall.as_secs_f64() * 1000.0 - map.mono.as_secs_f64() * 1000.0
}

/// The one place a [`SessionView`] is built: listing and closing.
fn make_view(st: &State, facts: Closing, snapshot: crate::engine::SessionSnapshot) -> SessionView {
    SessionView {
        wall_offset_ms: wall_offset_ms(&st.clock),
        id: view_id(st.index, facts.id, facts.tag),
        worker: st.index,
        relay: facts.relay,
        upstream_local: facts.upstream_local,
        upstream_rtcp_local: facts.upstream_rtcp_local,
        upstream_refused: facts.refused,
        snapshot,
    }
}

fn log_close(v: &SessionView, reason: CloseReason, shutdown: bool) {
    let reason = match reason {
        _ if shutdown => "shutdown".to_string(),
        CloseReason::Superseded => "superseded by a rebound session".to_string(),
        r => format!("{r:?}").to_lowercase(),
    };
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
    // The end-of-session record (the OTLP `session.quality` log record's
    // figures): which leg lost what, and each leg's MOS.
    line.push_str(" || ");
    line.push_str(&crate::export::publish::legs_line(&crate::export::publish::quality(v)));
    eprintln!("{line}");
}

fn on_event(st: &mut State, event: Event) {
    match event {
        Event::SessionClosed { id, snapshot, reason } => {
            let Some(facts) = st.closing.take().filter(|c| c.id == id) else {
                return; // never had sockets (its opening failed)
            };
            if matches!(reason, CloseReason::Idle | CloseReason::Unanswered) {
                st.io.sessions_expired += 1;
            }
            let view = make_view(st, facts, *snapshot);
            if st.log {
                log_close(&view, reason, st.finals.is_some());
            }
            match st.finals.as_mut() {
                Some(finals) => finals.push(view),
                None => {
                    if st.closed.len() >= MAX_CLOSED_KEPT {
                        st.closed.pop_front();
                        st.io.closed_records_dropped += 1;
                    }
                    st.closed.push_back(view);
                }
            }
        }
        Event::SessionOpened { id, client, .. } if st.log => {
            if let Some(u) = st.upstream(id) {
                eprintln!(
                    "session {} opened: client={client} upstream_local={}",
                    view_id(st.index, id, u.tag),
                    u.rtp.local
                );
            }
        }
        Event::SuppressionDetected { session, side, ssrc } if st.log => {
            eprintln!(
                "session {} {side:?} stream {ssrc}: no reports from its receiver, generating RRs",
                st.public_id(session)
            );
        }
        Event::SuppressionCleared { session, side, ssrc } if st.log => {
            eprintln!(
                "session {} {side:?} stream {ssrc}: receiver reports again, generation stopped",
                st.public_id(session)
            );
        }
        Event::RateLimited { session, side, per_sec } => {
            // Logged whatever the session log setting: a limit that bites
            // on a real call loses media.
            eprintln!(
                "session {} {side:?}: over {per_sec} datagrams/s, dropping the excess \
                 (limits.max_packets_per_session_per_sec; counted as rate_limited)",
                st.public_id(session)
            );
        }
        Event::DtlsConnected { session, side, suite } if st.log => {
            eprintln!(
                "session {} {side:?} leg: DTLS connected ({suite})",
                st.public_id(session)
            );
        }
        Event::DtlsFailed { session, side, reason } => {
            // Logged always: the call has no media on this session.
            eprintln!(
                "session {} {side:?} leg: DTLS failed ({reason}); no media passes",
                st.public_id(session)
            );
        }
        Event::SessionRebound { session, from, to } if st.log => {
            eprintln!(
                "session {} rebound: client {from} -> {to} (the upstream accepted an ICE check from it)",
                st.public_id(session)
            );
        }
        _ => {}
    }
}

/// Hands the engine its timer expiries (with the wall clock, for the NTP
/// times of generated reports) and does what follows.
async fn timer_loop(shared: Rc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let wake = {
            let st = shared.state.borrow();
            let next = st
                .engine
                .poll_timeout()
                .unwrap_or(st.clock.now() + std::time::Duration::from_secs(1));
            shared.timer_due.set(Some(next));
            st.clock.instant_of(next)
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = shared.timer_changed.notified() => continue,
            _ = shutdown.changed() => return,
        }
        let mut st = shared.state.borrow_mut();
        let map = st.clock.wall_to_mono();
        st.engine.handle_input(Input::WallClock {
            now: map.mono,
            wall: map.wall,
        });
        st.engine.handle_input(Input::Timeout(map.mono));
        let mut sender = Sender::default();
        drain_outputs(&shared, &mut st, &[], &mut sender);
        sender.flush(&mut st);
    }
}
