//! One worker: a thread with one poll loop (mio's epoll), its own engine,
//! its own SO_REUSEPORT copy of every listening socket and the upstream
//! sockets of the sessions its engine opened. Nothing on the packet path is
//! shared with other workers, so there is no lock to take.
//!
//! The packet path, in full ([`run`] → [`receive`] → [`run_batch`] →
//! [`Sender`]): wait for readiness of any of the worker's sockets, the
//! engine's next deadline or a control message; drain every ready socket
//! with recvmmsg batches; hand each datagram to `Engine::handle_input`;
//! drain `Engine::poll_output`, which says what to send from which socket
//! to where, which sockets to open and close, and what happened; send
//! consecutive datagrams for one socket and address in one sendmmsg. The
//! worker keeps no routing state: only the sockets the engine asked for, by
//! session.
//!
//! Why one loop and not a task per socket: the relay's cost at 50 packets/s
//! per session is dominated by wake-ups, not by the engine. One `epoll_wait`
//! hands back every ready socket at once and they are all drained before
//! the next wait; timers are the engine's one deadline as that wait's
//! timeout, so no task, waker or timer wheel runs per datagram or per
//! session (measured against a stats-free relay of the same design in
//! `examples/relay_load.rs`; see README, Performance).

use super::batch::{self, RecvBuffers, SendOutcome, BATCH};
use super::clock::Clock;
use super::socket::PortAllocator;
use super::IoCounters;
use crate::engine::{
    CloseReason, DropReason, Engine, EngineConfig, Event, Input, KeysOutcome, Output, Payload, SessionId, SessionKeys,
    Side, SocketRef, Verdict,
};
use crate::view::{view_id, SessionView, WorkerStats};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use quinn_udp::UdpSocketState;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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

/// The way to a worker from other threads: its control queue, and the
/// waker that interrupts its poll so the message is read now.
#[derive(Clone)]
pub struct ControlSender {
    tx: mpsc::Sender<Control>,
    waker: Arc<mio::Waker>,
}

/// The worker's end of [`ControlSender`], handed to [`run`].
pub struct ControlReceiver {
    poll: Poll,
    rx: mpsc::Receiver<Control>,
}

/// A control channel to one worker (made before the worker's thread).
pub fn control_channel() -> io::Result<(ControlSender, ControlReceiver)> {
    let poll = Poll::new()?;
    let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE)?);
    // A few requests in flight per worker (API calls are answered in turn).
    let (tx, rx) = mpsc::channel(16);
    Ok((ControlSender { tx, waker }, ControlReceiver { poll, rx }))
}

/// The worker is gone.
#[derive(Debug)]
pub struct WorkerGone;

impl ControlSender {
    pub async fn send(&self, msg: Control) -> Result<(), WorkerGone> {
        self.tx.send(msg).await.map_err(|_| WorkerGone)?;
        self.wake();
        Ok(())
    }

    /// [`Self::send`] from a thread outside any async runtime.
    pub fn blocking_send(&self, msg: Control) -> Result<(), WorkerGone> {
        self.tx.blocking_send(msg).map_err(|_| WorkerGone)?;
        self.wake();
        Ok(())
    }

    /// Interrupts the worker's poll (it then reads its queue and the
    /// shutdown flag).
    pub fn wake(&self) {
        // Fails only when the worker's poll is gone: nothing to wake then.
        let _ = self.waker.wake();
    }
}

/// Closed sessions kept for [`Control::TakeClosed`]; beyond this the oldest
/// are dropped (and counted) so an absent exporter costs bounded memory.
pub const MAX_CLOSED_KEPT: usize = 4096;

/// The poll token of the control waker.
const WAKE: Token = Token(usize::MAX);

/// A socket with its quinn-udp receive state.
struct Socket {
    fd: std::net::UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
}

impl Socket {
    /// Takes a non-blocking socket and registers it for readability under
    /// `token` (edge-triggered: a reader drains it, see [`receive`]).
    fn new(sock: std::net::UdpSocket, registry: &mio::Registry, token: Token) -> io::Result<Socket> {
        let local = sock.local_addr()?;
        let state = UdpSocketState::new((&sock).into())?;
        batch::drop_unread_control_messages(&sock);
        registry.register(&mut SourceFd(&sock.as_raw_fd()), token, Interest::READABLE)?;
        // Closing the descriptor (dropping the socket) removes it from the
        // epoll set: the worker never duplicates descriptors.
        Ok(Socket { fd: sock, state, local })
    }
}

struct Relay {
    listen: Socket,
    listen_rtcp: Option<Socket>,
    ports: PortAllocator,
}

/// The socket side of one session: what the engine asked the worker to open.
struct Upstream {
    id: SessionId,
    /// The random half of the session's public id ([`view_id`]).
    tag: u64,
    relay: usize,
    rtp: Socket,
    rtcp: Option<Socket>,
    refused: u64,
}

/// A slot's upstream descriptors ([`State::send_fds`]); `rtp < 0`: vacant.
#[derive(Clone, Copy)]
struct SendFds {
    id: SessionId,
    rtp: RawFd,
    /// Negative without an RTCP socket.
    rtcp: RawFd,
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

/// Poll tokens: the listening sockets first (two per relay: RTP, RTCP),
/// then two per session slot (RTP, RTCP upstream sockets).
fn listen_token(relay: usize, rtcp: bool) -> Token {
    Token(relay * 2 + usize::from(rtcp))
}

fn upstream_token(relays: usize, slot: usize, rtcp: bool) -> Token {
    Token(relays * 2 + slot * 2 + usize::from(rtcp))
}

struct State {
    index: usize,
    engine: Engine,
    clock: Clock,
    registry: mio::Registry,
    relays: Vec<Relay>,
    /// By session slot ([`SessionId::slot`]).
    upstreams: Vec<Option<Upstream>>,
    /// The same sessions' descriptors, by slot, for the send path alone:
    /// 16 bytes a session, so a worker's table stays in cache where the
    /// `Upstream` entries (200 bytes, id and descriptor on different cache
    /// lines) cost two misses per datagram at 1 000 sessions (perf annotate
    /// of `State::send`: three quarters of its samples).
    send_fds: Vec<SendFds>,
    live: usize,
    closing: Option<Closing>,
    io: IoCounters,
    buffer_bytes: usize,
    closed: std::collections::VecDeque<SessionView>,
    /// Shutdown: closed sessions' views go here instead of `closed`.
    finals: Option<Vec<SessionView>>,
    /// Answers to `Control::Sessions` still being built, oldest first.
    snapshots: std::collections::VecDeque<SnapshotJob>,
    log: bool,
}

/// Sessions snapshotted per loop turn while a [`Control::Sessions`] answer
/// is built. A snapshot costs microseconds per session (every source's
/// statistics, quality ratings, views): all of a worker's 10 000 sessions
/// at once would stop forwarding for tens of milliseconds at every metrics
/// publication, the tail latency of a relay with many quiet sessions. In
/// chunks, packets wait at most one chunk's work; each session's snapshot
/// is still of one instant, the answer spans the turns it took. 64 rather
/// than 256: the same run at 2 000 x 50 pps put p99 at 28 ms against
/// 132 ms (README, Performance).
const SNAPSHOT_CHUNK: usize = 64;

/// A `Control::Sessions` answer being built, `SNAPSHOT_CHUNK` sessions a
/// turn: `next` is the next session slot to visit.
struct SnapshotJob {
    reply: oneshot::Sender<Vec<SessionView>>,
    next: usize,
    views: Vec<SessionView>,
}

/// Runs a worker to completion (until `shutdown` is set and the worker
/// woken). Call on its own thread.
pub fn run(
    index: usize,
    relays: Vec<RelaySockets>,
    engine: EngineConfig,
    buffer_bytes: usize,
    control: ControlReceiver,
    shutdown: Arc<AtomicBool>,
    log: bool,
) -> io::Result<Vec<SessionView>> {
    let ControlReceiver {
        mut poll,
        rx: mut control,
    } = control;
    let registry = poll.registry().try_clone()?;
    let mut rs = Vec::new();
    for (i, r) in relays.into_iter().enumerate() {
        rs.push(Relay {
            listen: Socket::new(r.listen, &registry, listen_token(i, false))?,
            listen_rtcp: r
                .listen_rtcp
                .map(|s| Socket::new(s, &registry, listen_token(i, true)))
                .transpose()?,
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
    let mut st = State {
        index,
        engine,
        clock,
        registry,
        relays: rs,
        upstreams: Vec::new(),
        send_fds: Vec::new(),
        live: 0,
        closing: None,
        io: IoCounters::default(),
        buffer_bytes,
        closed: std::collections::VecDeque::new(),
        finals: None,
        snapshots: std::collections::VecDeque::new(),
        log,
    };
    let mut bufs = RecvBuffers::new();
    let mut events = Events::with_capacity(1024);
    loop {
        let timeout = st
            .engine
            .poll_timeout()
            .map(|due| due.saturating_since(st.clock.now()))
            // Nothing due: the control waker ends the wait when needed.
            .unwrap_or(Duration::from_secs(1));
        // A snapshot answer in progress: look at the sockets, do not sleep.
        let timeout = if st.snapshots.is_empty() {
            timeout
        } else {
            Duration::ZERO
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let mut woken = false;
        for event in events.iter() {
            if event.token() == WAKE {
                woken = true;
            } else if let Some(socket) = st.socket_of(event.token()) {
                receive(&mut st, &mut bufs, socket);
            }
        }
        if woken {
            while let Ok(msg) = control.try_recv() {
                on_control(&mut st, msg);
            }
            if shutdown.load(Ordering::Acquire) {
                // Answer what was asked before the shutdown.
                while !st.snapshots.is_empty() {
                    snapshot_chunk(&mut st);
                }
                break;
            }
        }
        let now = st.clock.now();
        if st.engine.poll_timeout().is_some_and(|due| due <= now) {
            on_timeout(&mut st);
        }
        snapshot_chunk(&mut st);
    }
    // Shutdown: close every session, reporting final statistics.
    let now = st.clock.now();
    st.finals = Some(Vec::new());
    let ids: Vec<SessionId> = st.engine.sessions().map(|s| s.id).collect();
    for id in ids {
        st.engine.close_session(now, id);
    }
    drain_outputs(&mut st, &[], &mut Sender::default());
    Ok(st.finals.take().unwrap_or_default())
}

/// Snapshots the next [`SNAPSHOT_CHUNK`] sessions of the oldest pending
/// `Control::Sessions` answer, and sends it once every slot was visited
/// (sessions opened meanwhile are in it, closed ones are not).
fn snapshot_chunk(st: &mut State) {
    let Some(mut job) = st.snapshots.pop_front() else {
        return;
    };
    let now = st.clock.now();
    let mut taken = 0;
    while taken < SNAPSHOT_CHUNK && job.next < st.upstreams.len() {
        if let Some(u) = &st.upstreams[job.next] {
            if let Some(snapshot) = st.engine.snapshot(now, u.id) {
                job.views.push(make_view(st, u.facts(), snapshot));
            }
            taken += 1;
        }
        job.next += 1;
    }
    if job.next < st.upstreams.len() {
        st.snapshots.push_front(job);
    } else {
        let _ = job.reply.send(job.views);
    }
}

fn on_control(st: &mut State, msg: Control) {
    match msg {
        Control::Sessions(reply) => st.snapshots.push_back(SnapshotJob {
            reply,
            next: 0,
            views: Vec::with_capacity(st.live),
        }),
        Control::Reload(config) => st.engine.reconfigure(|c| *c = *config),
        Control::StopAccepting => st.engine.stop_accepting(),
        Control::SetKeys(id, tag, keys, reply) => {
            let result = if st.upstream(id).is_some_and(|u| u.tag == tag) {
                st.engine.set_session_keys(id, keys.as_deref())
            } else {
                Ok(KeysOutcome::UnknownSession)
            };
            let _ = reply.send(result.map_err(|e| e.to_string()));
        }
        Control::SetMedia(id, tag, media, reply) => {
            let known = st.upstream(id).is_some_and(|u| u.tag == tag) && st.engine.set_session_media(id, *media);
            let _ = reply.send(known);
        }
        Control::SetCall(setup, reply) => {
            let now = st.clock.now();
            let result = st.engine.set_call(now, *setup).map_err(|e| e.to_string());
            let _ = reply.send(result);
        }
        Control::RemoveCall(call_id, reply) => {
            let now = st.clock.now();
            let known = st.engine.remove_call(now, &call_id);
            // A closed session's sockets and record follow.
            let mut sender = Sender::default();
            drain_outputs(st, &[], &mut sender);
            sender.flush(st);
            let _ = reply.send(known);
        }
        Control::TakeClosed(reply) => {
            let _ = reply.send(st.closed.drain(..).collect());
        }
        Control::Stats(reply) => {
            let _ = reply.send(WorkerStats {
                worker: st.index,
                sessions: st.live,
                io: st.io,
                engine: Some(st.engine.counters().clone()),
            });
        }
    }
}

/// Hands the engine its timer expiries (with the wall clock, for the NTP
/// times of generated reports) and does what follows.
fn on_timeout(st: &mut State) {
    let map = st.clock.wall_to_mono();
    st.engine.handle_input(Input::WallClock {
        now: map.mono,
        wall: map.wall,
    });
    st.engine.handle_input(Input::Timeout(map.mono));
    let mut sender = Sender::default();
    drain_outputs(st, &[], &mut sender);
    sender.flush(st);
}

/// Drains one ready socket: recvmmsg batches until a short one. With
/// edge-triggered readiness a short batch is enough: a datagram queued
/// after it raises a new edge, so nothing waits unseen.
fn receive(st: &mut State, bufs: &mut RecvBuffers, socket: SocketRef) {
    loop {
        let result = {
            let Some(sock) = st.socket(socket) else { return };
            bufs.recv(&sock.state, (&sock.fd).into()).map(|n| (n, sock.local))
        };
        match result {
            Ok((n, local)) => {
                run_batch(st, socket, local, bufs);
                if n < BATCH {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // ICMP port unreachable from the upstream surfaces here as
                // ECONNREFUSED: count it, keep the session, read on.
                st.io.add_recv_error(&e);
                if let (SocketRef::Upstream { session, .. }, Some(libc::ECONNREFUSED)) = (socket, e.raw_os_error()) {
                    st.note_refused(session, 1);
                }
            }
        }
    }
}

/// Every datagram of one received batch through the engine, and out.
fn run_batch(st: &mut State, socket: SocketRef, local: SocketAddr, bufs: &RecvBuffers) {
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
        drain_outputs(st, bytes, &mut sender);
    }
    sender.flush(st);
}

/// Does what the engine says until it has nothing more for now.
/// `received` is the datagram last handed in ([`Payload::Received`]).
fn drain_outputs<'a>(st: &mut State, received: &'a [u8], sender: &mut Sender<'a>) {
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
                if open_upstream(st, session, relay, upstream, upstream_rtcp).is_err() {
                    // A full port range refuses the client: the exported
                    // count says so ("no upstream port").
                    st.io.upstream_bind_failures += 1;
                    st.io.sessions_refused += 1;
                    let now = st.clock.now();
                    st.engine.handle_input(Input::UpstreamFailed { now, session });
                }
            }
            Output::CloseUpstream { session } => {
                sender.flush(st);
                st.close_upstream(session);
            }
            Output::Event(event) => on_event(st, event),
            // The poll loop reads the engine's deadline before each wait.
            Output::Timeout(_) => break,
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
    /// The socket a poll token stands for (`None`: a session closed since).
    fn socket_of(&self, token: Token) -> Option<SocketRef> {
        let listening = self.relays.len() * 2;
        let (index, rtcp) = (token.0 / 2, token.0 % 2 == 1);
        if token.0 < listening {
            return Some(SocketRef::Listen { relay: index, rtcp });
        }
        let u = self.upstreams.get(index - self.relays.len())?.as_ref()?;
        Some(SocketRef::Upstream { session: u.id, rtcp })
    }

    /// The socket the engine names by `socket`.
    fn socket(&self, socket: SocketRef) -> Option<&Socket> {
        match socket {
            SocketRef::Listen { relay, rtcp } => {
                let r = self.relays.get(relay)?;
                if rtcp {
                    r.listen_rtcp.as_ref()
                } else {
                    Some(&r.listen)
                }
            }
            SocketRef::Upstream { session, rtcp } => {
                let u = self.upstream(session)?;
                if rtcp {
                    u.rtcp.as_ref()
                } else {
                    Some(&u.rtp)
                }
            }
        }
    }

    /// Sends on the socket the engine named; upstream sockets are
    /// connected, so they take no address.
    fn send(&mut self, socket: SocketRef, destination: SocketAddr, datagrams: &[&[u8]]) {
        if datagrams.is_empty() {
            return;
        }
        let out: SendOutcome = match socket {
            SocketRef::Listen { .. } => {
                let Some(sock) = self.socket(socket) else { return };
                batch::send_batch(&sock.fd, Some(destination), datagrams)
            }
            // Upstream sockets are connected: no address.
            SocketRef::Upstream { session, rtcp } => {
                let Some(fds) = self
                    .send_fds
                    .get(session.slot())
                    .filter(|f| f.id == session && f.rtp >= 0)
                else {
                    return;
                };
                let fd = if rtcp { fds.rtcp } else { fds.rtp };
                if fd < 0 {
                    return;
                }
                let out = batch::send_batch(&fd, None, datagrams);
                self.note_refused(session, out.refused);
                out
            }
        };
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
        // Dropping the sockets closes them (and takes them off the poll);
        // the send table lets go of their descriptors first.
        let Some(u) = slot.take() else { return };
        self.send_fds[id.slot()].rtp = -1;
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
    st: &mut State,
    session: SessionId,
    relay: usize,
    upstream: SocketAddr,
    upstream_rtcp: Option<SocketAddr>,
) -> io::Result<()> {
    let buffer_bytes = st.buffer_bytes;
    let relays = st.relays.len();
    let now = st.clock.now();
    let r = st
        .relays
        .get_mut(relay)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such relay"))?;
    let (rtp, rtcp) = r.ports.bind(now, upstream_rtcp.is_some(), buffer_bytes)?;
    rtp.connect(upstream)?;
    if let (Some(s), Some(a)) = (&rtcp, upstream_rtcp) {
        s.connect(a)?;
    }
    let tag = session_tag()?;
    let slot = session.slot();
    if st.upstreams.len() <= slot {
        st.upstreams.resize_with(slot + 1, || None);
        let vacant = SendFds {
            id: session,
            rtp: -1,
            rtcp: -1,
        };
        st.send_fds.resize(slot + 1, vacant);
    }
    st.send_fds[slot].rtp = -1;
    if st.upstreams[slot].take().is_some() {
        // A stale entry (never closed): its sockets close here, before
        // the new ones take the slot's poll tokens.
        st.live -= 1;
    }
    let rtp = Socket::new(rtp, &st.registry, upstream_token(relays, slot, false))?;
    let rtcp = rtcp
        .map(|s| Socket::new(s, &st.registry, upstream_token(relays, slot, true)))
        .transpose()?;
    st.send_fds[slot] = SendFds {
        id: session,
        rtp: rtp.fd.as_raw_fd(),
        rtcp: rtcp.as_ref().map_or(-1, |s| s.fd.as_raw_fd()),
    };
    st.upstreams[slot] = Some(Upstream {
        id: session,
        tag,
        relay,
        rtp,
        rtcp,
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

/// One line of the session log: `session <public id> <what>`.
fn log_session(st: &State, session: SessionId, what: std::fmt::Arguments) {
    eprintln!("session {} {what}", st.public_id(session));
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
        Event::SuppressionDetected { session, side, ssrc } if st.log => log_session(
            st,
            session,
            format_args!("{side:?} stream {ssrc}: no reports from its receiver, generating RRs"),
        ),
        Event::SuppressionCleared { session, side, ssrc } if st.log => log_session(
            st,
            session,
            format_args!("{side:?} stream {ssrc}: receiver reports again, generation stopped"),
        ),
        // Logged whatever the session log setting: a limit that bites on a
        // real call loses media.
        Event::RateLimited { session, side, per_sec } => log_session(
            st,
            session,
            format_args!(
                "{side:?}: over {per_sec} datagrams/s, dropping the excess \
                 (limits.max_packets_per_session_per_sec; counted as rate_limited)"
            ),
        ),
        Event::DtlsConnected { session, side, suite } if st.log => {
            log_session(st, session, format_args!("{side:?} leg: DTLS connected ({suite})"))
        }
        // Logged always: the call has no media on this session.
        Event::DtlsFailed { session, side, reason } => log_session(
            st,
            session,
            format_args!("{side:?} leg: DTLS failed ({reason}); no media passes"),
        ),
        Event::SessionRebound { session, from, to } if st.log => log_session(
            st,
            session,
            format_args!("rebound: client {from} -> {to} (the upstream accepted an ICE check from it)"),
        ),
        _ => {}
    }
}
