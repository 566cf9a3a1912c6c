//! Shared test support: a driver that plays the relay runtime around the
//! engine on virtual time (through `handle_input`/`poll_output` only),
//! packet builders over the `wire` writers, and for the real-socket tests
//! the relay and API start-up, a small HTTP client and upstream sockets.
//! Each test binary uses part of it.
#![allow(dead_code)]

pub mod dtls;
pub mod script;

use rtp_middlebox::config::Config;
use rtp_middlebox::engine::{
    Engine, EngineConfig, Event, Input, OpenError, Output, Payload, RelaySettings, RtcpMode, SessionId, SessionInfo,
    SessionSnapshot, Side, SocketRef, SourceSnapshot, Verdict,
};
use rtp_middlebox::export::api::{ApiOptions, ApiServer};
use rtp_middlebox::export::publish::PublishOptions;
use rtp_middlebox::runtime::{self, RelayRuntime, RunOptions};
use rtp_middlebox::stats::ClockRates;
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::ntp::{CompactNtp, Delay16, NtpTime};
use rtp_middlebox::wire::rtcp::{
    write_receiver_report, write_sdes_cname, write_sender_report, write_xr, DlrrItem, ReportBlock, SenderInfo,
};
use rtp_middlebox::wire::rtp::{write_rtp, RtpHeader};
use rtp_middlebox::wire::stun::{StunClass, StunWriter, METHOD_BINDING};
use rtp_middlebox::wire::{RtpTs, SeqNo, Ssrc};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::thread::JoinHandle;
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
pub fn relay(mode: RtcpMode) -> RelaySettings {
    RelaySettings {
        mode,
        upstream: Some(addr(UPSTREAM)),
        clock_rates: rates(),
        ..RelaySettings::default()
    }
}

/// A passive tap (no upstream address: sessions are keyed by both ends)
/// in `mode`, with clock rates `rates`.
pub fn tap(mode: RtcpMode, rates: ClockRates) -> RelaySettings {
    RelaySettings {
        mode,
        clock_rates: rates,
        ..RelaySettings::default()
    }
}

/// A session of the client at `client` toward [`UPSTREAM`].
pub fn info(client: SocketAddr) -> SessionInfo {
    SessionInfo {
        client,
        upstream: addr(UPSTREAM),
    }
}

// ---------------------------------------------------------------- packets

/// A plain RTP packet: version 2, no extension, `payload` bytes of 0xab.
pub fn rtp(pt: u8, seq: u16, ts: u32, ssrc: Ssrc, payload: usize) -> Vec<u8> {
    rtp_filled(pt, seq, ts, ssrc, payload, 0xab)
}

/// A plain RTP packet whose `payload` bytes are all `fill`.
pub fn rtp_filled(pt: u8, seq: u16, ts: u32, ssrc: Ssrc, payload: usize, fill: u8) -> Vec<u8> {
    let header = RtpHeader {
        payload_type: pt,
        seq: SeqNo(seq),
        timestamp: RtpTs(ts),
        ssrc,
        ..RtpHeader::default()
    };
    let mut p = Vec::with_capacity(12 + payload);
    write_rtp(&mut p, &header, &vec![fill; payload]);
    p
}

/// PCMU (payload type 0, 8 kHz) packet `seq` of a 20 ms stream: timestamp
/// `seq` × 160, `payload` bytes of `fill`.
pub fn pcmu_filled(seq: u16, ssrc: u32, payload: usize, fill: u8) -> Vec<u8> {
    rtp_filled(0, seq, u32::from(seq) * 160, Ssrc(ssrc), payload, fill)
}

/// [`pcmu_filled`] with 160 zero bytes (20 ms of PCMU), in an array: the
/// same 172 bytes, built without touching the heap (the memory tests count
/// allocations on the packet path).
pub fn pcmu(seq: u16, ssrc: u32) -> [u8; 172] {
    let mut p = [0u8; 172];
    p[0] = 0x80;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// What `write` appends to an empty buffer: `built(|o| write_pli(o, a, b))`.
pub fn built(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out);
    out
}

/// Sender info of an SR.
pub fn sender_info(ntp: NtpTime, rtp_ts: u32, packet_count: u32, octet_count: u32) -> SenderInfo {
    SenderInfo {
        ntp,
        rtp_ts,
        packet_count,
        octet_count,
    }
}

/// A report block about `ssrc`: `(fraction lost in 256ths, cumulative
/// lost)`, extended highest sequence number, jitter (RTP units), LSR and
/// DLSR.
pub fn report_block(
    ssrc: Ssrc,
    (fraction_lost, cumulative_lost): (u8, i32),
    ext_highest_seq: u32,
    jitter: u32,
    lsr: CompactNtp,
    dlsr: Duration,
) -> ReportBlock {
    ReportBlock {
        ssrc,
        fraction_lost,
        cumulative_lost,
        ext_highest_seq,
        jitter,
        lsr,
        dlsr: Delay16::from_duration(dlsr),
    }
}

/// An SR from `sender` with `blocks`, followed by an SDES CNAME when given.
pub fn sr(sender: Ssrc, info: &SenderInfo, blocks: &[ReportBlock], cname: Option<&[u8]>) -> Vec<u8> {
    built(|out| {
        write_sender_report(out, sender, info, blocks);
        if let Some(cname) = cname {
            write_sdes_cname(out, sender, cname);
        }
    })
}

/// An RR from `sender` with `blocks`.
pub fn rr(sender: Ssrc, blocks: &[ReportBlock]) -> Vec<u8> {
    built(|out| write_receiver_report(out, sender, blocks))
}

/// An XR from `sender` with one DLRR item answering `about`'s RRTR whose
/// compact NTP time was `lrr`, held for `held`.
pub fn dlrr(sender: Ssrc, about: Ssrc, lrr: CompactNtp, held: Duration) -> Vec<u8> {
    let item = DlrrItem {
        ssrc: about,
        lrr,
        dlrr: Delay16::from_duration(held),
    };
    built(|out| write_xr(out, sender, None, &[item]))
}

/// A STUN Binding message of `class` with `attrs` (type, value) in order;
/// MESSAGE-INTEGRITY and FINGERPRINT, when wanted, are given as values.
pub fn stun(class: StunClass, txid: [u8; 12], attrs: &[(u16, &[u8])]) -> Vec<u8> {
    built(|out| {
        let mut w = StunWriter::new(out, class, METHOD_BINDING, txid);
        for (kind, value) in attrs {
            w.attribute(*kind, value);
        }
    })
}

/// A Binding request without attributes, transaction id 12 × `txid`.
pub fn binding_request(txid: u8) -> Vec<u8> {
    stun(StunClass::Request, [txid; 12], &[])
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
        self.open_session(now, info(client)).map(|_| ())
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
pub fn driver_with(mode: RtcpMode, config: EngineConfig) -> Driver {
    Driver::new(EngineConfig {
        relays: vec![relay(mode)],
        ..config
    })
}

/// A driver with one session open for [`CLIENT`] at t = 0.
pub fn driver_and_session(mode: RtcpMode, config: EngineConfig) -> (Driver, SessionId) {
    session_on(relay(mode), config)
}

/// A driver over `config` with the one relay `relay`, and a session open
/// for [`CLIENT`] at t = 0.
pub fn session_on(relay: RelaySettings, config: EngineConfig) -> (Driver, SessionId) {
    let mut d = Driver::new(EngineConfig {
        relays: vec![relay],
        ..config
    });
    let id = d.open_session(ms(0), info(addr(CLIENT))).unwrap();
    (d, id)
}

/// The source `ssrc` on `side` of a snapshot; panics when there is none.
pub fn source(snap: &SessionSnapshot, side: Side, ssrc: Ssrc) -> &SourceSnapshot {
    snap.side(side)
        .sources
        .iter()
        .find(|s| s.ssrc == ssrc.0)
        .unwrap_or_else(|| panic!("no source {:#x} on the {side:?} side", ssrc.0))
}

// ---------------------------------------------------------------- real sockets

/// A UDP socket on 127.0.0.1, port chosen by the OS.
pub fn loopback() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// Run options of the relays the tests start: `workers` workers, no
/// per-session log lines.
pub fn quiet(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        log_sessions: false,
        ..Default::default()
    }
}

/// A config of one relay listening on 127.0.0.1 (port chosen by the OS)
/// toward `upstream`, its upstream sockets on 127.0.0.1; `rest` follows the
/// relay's keys (more keys, then other sections).
pub fn relay_toml(upstream: SocketAddr, rest: &str) -> String {
    format!("[[relay]]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\nupstream_bind = \"127.0.0.1\"\n{rest}")
}

/// The relay runtime for the config `toml`, with [`quiet`]`(1)`.
pub fn start_relay(toml: &str) -> RelayRuntime {
    runtime::start(&Config::from_toml(toml).unwrap(), &quiet(1)).unwrap()
}

/// The API options of `config`, listening on 127.0.0.1 (port chosen by the OS).
pub fn api_options(config: &Config) -> ApiOptions {
    let mut options = ApiOptions::from_config(config);
    options.listen = "127.0.0.1:0".parse().unwrap();
    options
}

/// The metrics publisher the API tests run: every second, per-session
/// series for at most 10 sessions.
pub fn publish_every_second() -> PublishOptions {
    PublishOptions {
        enabled: true,
        interval: Duration::from_secs(1),
        per_session: true,
        max_session_series: 10,
    }
}

/// An upstream socket on loopback, and a relay toward it (see
/// [`relay_toml`]; `rest` after the relay's keys) started with `run`, with
/// its API: [`api_options`] of the config, changed by `adjust`.
pub fn start_relay_and_api_with(
    run: &RunOptions,
    rest: &str,
    adjust: impl FnOnce(&mut ApiOptions),
) -> (RelayRuntime, ApiServer, UdpSocket) {
    let upstream = loopback();
    let config = Config::from_toml(&relay_toml(upstream.local_addr().unwrap(), rest)).unwrap();
    let relay = runtime::start(&config, run).unwrap();
    let mut options = api_options(&config);
    adjust(&mut options);
    let api = runtime::start_api(options, relay.handle(), config.relay[0].clock_rates()).unwrap();
    (relay, api, upstream)
}

/// [`start_relay_and_api_with`] one quiet worker.
pub fn start_relay_and_api(rest: &str, adjust: impl FnOnce(&mut ApiOptions)) -> (RelayRuntime, ApiServer, UdpSocket) {
    start_relay_and_api_with(&quiet(1), rest, adjust)
}

/// The upstream answers one datagram with its own bytes (5 s at most).
pub fn echo_once(upstream: &UdpSocket) {
    upstream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 2048];
    let (n, from) = upstream.recv_from(&mut b).unwrap();
    upstream.send_to(&b[..n], from).unwrap();
}

/// A thread counting the datagrams `sock` receives until none came for
/// `quiet`.
pub fn sink(sock: UdpSocket, quiet: Duration) -> JoinHandle<u64> {
    sock.set_read_timeout(Some(quiet)).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut n = 0u64;
        while sock.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    })
}

/// An HTTP/1.1 answer as received.
pub struct Response {
    pub raw: String,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.raw.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The status line and headers.
    pub fn head(&self) -> &str {
        self.raw.split_once("\r\n\r\n").map_or(&self.raw, |(h, _)| h)
    }

    pub fn body(&self) -> &str {
        self.raw.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.body()).unwrap_or(serde_json::Value::Null)
    }
}

/// One request on its own connection (`Connection: close`), read to the
/// end: `headers` are extra header lines, each ending in CRLF; a body goes
/// as JSON with its length.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> Response {
    let content = match (method, body) {
        ("GET", "") => String::new(),
        _ => "Content-Type: application/json\r\n".to_string(),
    };
    raw_http(addr, method, path, &format!("Host: {addr}\r\n{headers}{content}"), body)
}

/// One request with exactly `headers` (each ending in CRLF; no `Host`
/// unless given) beside its Content-Length (for a body) and
/// `Connection: close`, as a hostile page or client would shape it.
pub fn raw_http(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let length = match (method, body) {
        ("GET", "") => String::new(),
        _ => format!("Content-Length: {}\r\n", body.len()),
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\n{headers}{length}Connection: close\r\n\r\n{body}"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    Response { raw }
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    http(addr, "GET", path, "", "")
}

// ---------------------------------------------------------------- processes

/// What a test does when an outside program it drives is missing (`why`):
/// with `REQUIRE_{program}=1` (scripts/test.sh and CI set each) it fails,
/// naming `install`; otherwise it prints a notice and the caller skips.
/// The notice goes straight to the stderr handle: libtest captures
/// `eprintln!` of passing tests, and a skip should be seen.
pub fn missing_program(program: &str, why: &str, install: &str) {
    let var = format!("REQUIRE_{program}");
    if std::env::var(&var).as_deref() == Ok("1") {
        panic!("{var}=1 but {why} ({install})");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {why}; {install} ({var}=1 makes this a failure)"
    );
}

/// The `rtp-middlebox` binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_rtp-middlebox");

/// Runs the `rtp-middlebox` binary with `args` to its end: its status and
/// what it wrote.
pub fn run_bin(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// A directory of this test process's own, `rtpmb-{name}-{pid}` under the
/// system's temporary directory, created.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rtpmb-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `rtp-middlebox run` with `args`, stderr piped: the child, its stderr
/// lines after the first, and where the relay listens (the first line is
/// "relay listening on ADDR -> upstream …").
pub fn spawn_run(args: &[&str]) -> (Child, Lines<BufReader<ChildStderr>>, SocketAddr) {
    let mut child = Command::new(BIN)
        .arg("run")
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let listen = first.split_whitespace().nth(3).unwrap().parse().unwrap();
    (child, lines, listen)
}

/// SIGTERM to a child process of the test.
pub fn terminate(child: &Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// Asserts that a finished command succeeded, showing `what` and its
/// stderr when it did not.
pub fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
