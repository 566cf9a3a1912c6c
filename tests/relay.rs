//! The relay on real sockets (127.0.0.1 and ::1, ports chosen by the OS):
//! many clients through the relay to an upstream echo, every datagram
//! delivered and echoed, one upstream source per client, engine statistics
//! equal to what was sent, idle expiry, non-mux RTP/RTCP pairs.

// Outside the engine: real-socket tests wait on real time.
#![allow(clippy::disallowed_methods)]

mod common;
use rtp_middlebox::config::Config;
use rtp_middlebox::engine::Side;
use rtp_middlebox::runtime::{self, RelayRuntime};
use rtp_middlebox::wire::stun::StunClass;
use rtp_middlebox::wire::Ssrc;
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Echoes every datagram back to its source; remembers who sent how many.
struct Echo {
    addr: SocketAddr,
    seen: Arc<Mutex<HashMap<SocketAddr, u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start(bind: &str) -> Echo {
        // Large buffers: the test bursts thousands of datagrams at once.
        let addr: SocketAddr = bind.parse().unwrap();
        let raw = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None).unwrap();
        raw.set_recv_buffer_size(8 << 20).unwrap();
        raw.set_send_buffer_size(8 << 20).unwrap();
        raw.bind(&addr.into()).unwrap();
        let sock: UdpSocket = raw.into();
        sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let addr = sock.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    *s2.lock().unwrap().entry(from).or_default() += 1;
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        });
        Echo {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn sources(&self) -> HashMap<SocketAddr, u64> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn config(listen: &str, upstream: SocketAddr, extra: &str) -> Config {
    config_with_limits(listen, upstream, extra, "")
}

/// [`config`] with more `[limits]` keys.
fn config_with_limits(listen: &str, upstream: SocketAddr, extra: &str, limits: &str) -> Config {
    let bind = if upstream.is_ipv6() { "::1" } else { "127.0.0.1" };
    let text = format!(
        "[[relay]]\nlisten = \"{listen}\"\nupstream = \"{upstream}\"\nrtcp = \"forward\"\nupstream_bind = \"{bind}\"\nupstream_ports = \"20000-59999\"\n{extra}\n[limits]\nidle_timeout_secs = 2\n{limits}"
    );
    Config::from_toml(&text).unwrap()
}

fn start(cfg: &Config, workers: usize) -> RelayRuntime {
    runtime::start(cfg, &common::quiet(workers)).unwrap()
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    common::pcmu_filled(seq, ssrc, 160, 0xd5)
}

fn stun_binding() -> Vec<u8> {
    common::stun(StunClass::Request, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], &[])
}

const DTLS_HELLO: [u8; 13] = [22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Receives until `want` datagrams arrived or `deadline`.
fn drain(sock: &UdpSocket, want: usize, deadline: Instant) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    while got.len() < want && Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    got
}

fn until<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A loopback socket connected to the relay at `listen`.
fn client_of(listen: SocketAddr) -> UdpSocket {
    let s = common::loopback();
    s.connect(listen).unwrap();
    s
}

/// `n` loopback sockets connected to the relay at `listen`.
fn clients_of(listen: SocketAddr, n: usize) -> Vec<UdpSocket> {
    (0..n).map(|_| client_of(listen)).collect()
}

#[test]
fn hundred_clients_echo_through_the_relay() {
    const CLIENTS: usize = 100;
    const PACKETS: u16 = 50;
    let echo = Echo::start("127.0.0.1:0");
    let relay = start(&config("127.0.0.1:0", echo.addr, ""), 2);
    let listen = relay.bound()[0].listen;
    let clients: Vec<UdpSocket> = clients_of(listen, CLIENTS);
    // STUN and DTLS-looking datagrams pass untouched, then RTP.
    for c in &clients {
        c.send(&stun_binding()).unwrap();
        c.send(&DTLS_HELLO).unwrap();
    }
    let expect_each = 2 + usize::from(PACKETS);
    for seq in 0..PACKETS {
        for (i, c) in clients.iter().enumerate() {
            c.send(&rtp(seq, 0x1000 + i as u32)).unwrap();
        }
        // Pace a little: loopback buffers are large but finite.
        if seq % 10 == 9 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, c) in clients.iter().enumerate() {
        let got = drain(c, expect_each, deadline);
        assert_eq!(got.len(), expect_each, "client {i} got {} echoes", got.len());
        assert_eq!(got[0], stun_binding(), "STUN untouched");
        assert_eq!(got[1], DTLS_HELLO.to_vec(), "DTLS untouched");
        for (k, d) in got[2..].iter().enumerate() {
            assert_eq!(*d, rtp(k as u16, 0x1000 + i as u32), "RTP untouched, in order");
        }
    }
    // The upstream saw one distinct source per client, each with every datagram.
    let sources = echo.sources();
    assert_eq!(sources.len(), CLIENTS);
    assert!(sources.values().all(|n| *n == expect_each as u64));

    // The engine's per-session statistics equal what the clients sent.
    let sessions = relay.sessions_blocking();
    assert_eq!(sessions.len(), CLIENTS);
    let upstream_sources: HashSet<SocketAddr> = sessions.iter().map(|s| s.upstream_local).collect();
    assert_eq!(upstream_sources, sources.keys().copied().collect::<HashSet<_>>());
    for s in &sessions {
        for side in Side::BOTH {
            let src = &s.snapshot.side(side).sources;
            assert_eq!(src.len(), 1, "{side:?}");
            let r = src[0].rtp.as_ref().unwrap();
            assert_eq!(
                (r.packets_received, r.packets_lost),
                (u64::from(PACKETS), 0),
                "{side:?}"
            );
        }
        assert_eq!(
            s.snapshot.side(Side::Client).received.total_packets(),
            expect_each as u64
        );
    }
    let stats = relay.stats_blocking();
    let sent: u64 = stats.iter().map(|w| w.io.sent).sum();
    assert_eq!(sent, 2 * (CLIENTS * expect_each) as u64);
    assert!(
        stats.iter().all(|w| w.sessions > 0),
        "both workers carry sessions: {:?}",
        stats.iter().map(|w| w.sessions).collect::<Vec<_>>()
    );
    let finals = relay.shutdown(Duration::from_secs(5));
    assert_eq!(
        finals.len(),
        CLIENTS,
        "shutdown reports every session's final statistics"
    );
}

#[test]
fn idle_sessions_expire_and_new_ones_start() {
    let echo = Echo::start("127.0.0.1:0");
    let relay = start(&config("127.0.0.1:0", echo.addr, ""), 1);
    let c = client_of(relay.bound()[0].listen);
    c.send(&rtp(1, 7)).unwrap();
    assert_eq!(drain(&c, 1, Instant::now() + Duration::from_secs(5)).len(), 1);
    assert_eq!(relay.sessions_blocking().len(), 1);
    // idle_timeout_secs = 2: gone within ~3 s of silence.
    let gone = until(Duration::from_secs(6), || {
        relay.sessions_blocking().is_empty().then_some(())
    });
    assert!(gone.is_some(), "session did not expire");
    let stats = relay.stats_blocking();
    assert_eq!(stats[0].io.sessions_expired, 1);
    // The same client comes back: a new session, a new upstream socket.
    c.send(&rtp(2, 7)).unwrap();
    assert_eq!(drain(&c, 1, Instant::now() + Duration::from_secs(5)).len(), 1);
    assert_eq!(relay.stats_blocking()[0].io.sessions_created, 2);
    relay.shutdown(Duration::from_secs(5));
}

/// Binds two sockets on an even port and the next one.
fn bind_pair(ip: &str) -> (UdpSocket, UdpSocket) {
    for _ in 0..200 {
        let a = UdpSocket::bind(format!("{ip}:0")).unwrap();
        let p = a.local_addr().unwrap().port();
        if p % 2 != 0 {
            continue;
        }
        if let Ok(b) = UdpSocket::bind(format!("{ip}:{}", p + 1)) {
            return (a, b);
        }
    }
    panic!("no adjacent port pair")
}

/// A non-mux relay (RTP and RTCP on their own ports each side) with
/// `workers` workers, and the upstream's RTP and RTCP echoes.
fn non_mux_relay(workers: usize) -> (RelayRuntime, Echo, Echo) {
    let echo_rtp = Echo::start("127.0.0.1:0");
    let echo_rtcp = Echo::start("127.0.0.1:0");
    let extra = format!(
        "listen_rtcp = \"127.0.0.1:0\"\nupstream_rtcp = \"{}\"\n",
        echo_rtcp.addr
    );
    let relay = start(&config("127.0.0.1:0", echo_rtp.addr, &extra), workers);
    (relay, echo_rtp, echo_rtcp)
}

#[test]
fn non_mux_rtp_and_rtcp_pairs_share_a_session() {
    let (relay, echo_rtp, echo_rtcp) = non_mux_relay(1);
    let b = relay.bound()[0].clone();
    let (c_rtp, c_rtcp) = bind_pair("127.0.0.1");
    c_rtp.connect(b.listen).unwrap();
    c_rtcp.connect(b.listen_rtcp.unwrap()).unwrap();
    for seq in 0..10 {
        c_rtp.send(&rtp(seq, 0x42)).unwrap();
    }
    // An RR from the client's RTCP port.
    let rr = common::rr(Ssrc(0x42), &[]);
    c_rtcp.send(&rr).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    assert_eq!(drain(&c_rtp, 10, deadline).len(), 10);
    assert_eq!(
        drain(&c_rtcp, 1, deadline),
        vec![rr],
        "RTCP echoed back to the client's RTCP port"
    );
    let sessions = relay.sessions_blocking();
    assert_eq!(sessions.len(), 1, "RTP and RTCP tied into one session");
    let s = &sessions[0];
    let (up_rtp, up_rtcp) = (s.upstream_local.port(), s.upstream_rtcp_local.unwrap().port());
    assert_eq!((up_rtp % 2, up_rtcp), (0, up_rtp + 1), "even/odd upstream pair");
    assert_eq!(echo_rtp.sources().keys().next().unwrap().port(), up_rtp);
    assert_eq!(echo_rtcp.sources().keys().next().unwrap().port(), up_rtcp);
    let client_side = s.snapshot.side(Side::Client);
    assert_eq!(
        client_side.received.packets(rtp_middlebox::wire::PacketKind::Rtcp),
        1,
        "one RTCP datagram counted in the session"
    );
    relay.shutdown(Duration::from_secs(5));
}

#[test]
fn ipv6_loopback() {
    let echo = Echo::start("[::1]:0");
    let relay = start(&config("[::1]:0", echo.addr, ""), 1);
    let c = UdpSocket::bind("[::1]:0").unwrap();
    c.connect(relay.bound()[0].listen).unwrap();
    for seq in 0..5 {
        c.send(&rtp(seq, 9)).unwrap();
    }
    assert_eq!(drain(&c, 5, Instant::now() + Duration::from_secs(5)).len(), 5);
    let sessions = relay.sessions_blocking();
    assert!(sessions[0].upstream_local.is_ipv6());
    relay.shutdown(Duration::from_secs(5));
}

#[test]
fn unreachable_upstream_is_counted_and_the_worker_survives() {
    // An upstream port with nobody listening: ICMP port unreachable comes
    // back and surfaces as ECONNREFUSED on the connected upstream socket.
    let dead = common::loopback();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let relay = start(&config("127.0.0.1:0", dead_addr, ""), 1);
    let c = client_of(relay.bound()[0].listen);
    for seq in 0..20 {
        c.send(&rtp(seq, 5)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let refused = until(Duration::from_secs(5), || {
        let io = relay.stats_blocking()[0].io;
        (io.recv_refused + io.send_refused > 0).then_some(io)
    });
    assert!(refused.is_some(), "ICMP errors counted");
    // The worker still relays: a new upstream appears and traffic flows.
    let sessions = relay.sessions_blocking();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].snapshot.side(Side::Client).sources[0]
            .rtp
            .as_ref()
            .unwrap()
            .packets_received,
        20
    );
    relay.shutdown(Duration::from_secs(5));
}

/// `n` consecutive loopback ports above both the OS's ephemeral range
/// (32768-60999) and the other tests' `upstream_ports` (20000-59999), held:
/// a relay of another test scanning into them would hit the bounded scan.
/// The lowest and the sockets.
fn hold_port_run(n: u16) -> (u16, Vec<UdpSocket>) {
    'base: for base in (61_000u16..64_800).step_by(700) {
        let mut held = Vec::new();
        for p in base..base + n {
            match UdpSocket::bind(("127.0.0.1", p)) {
                Ok(s) => held.push(s),
                Err(_) => continue 'base,
            }
        }
        return (base, held);
    }
    panic!("no {n} consecutive free loopback ports")
}

#[test]
fn a_full_upstream_port_range_refuses_new_clients_and_established_calls_flow() {
    // 600 upstream ports, all but the first 4 held by someone else (this
    // test): the relay opens the calls it has ports for; then 200 new
    // clients arrive while the range is full. Each is refused (counted),
    // and the established calls keep every datagram.
    const PORTS: u16 = 600;
    const FREE: usize = 4;
    let echo = Echo::start("127.0.0.1:0");
    let (low, mut held) = hold_port_run(PORTS);
    held.drain(..FREE);
    let cfg = Config::from_toml(&format!(
        "[[relay]]\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\nrtcp = \"forward\"\nupstream_bind = \"127.0.0.1\"\n\
         upstream_ports = \"{low}-{}\"\n[limits]\nnew_sessions_per_prefix_per_sec = 0\n",
        echo.addr,
        low + PORTS - 1
    ))
    .unwrap();
    let relay = start(&cfg, 1);
    let listen = relay.bound()[0].listen;
    let calls: Vec<UdpSocket> = clients_of(listen, FREE);
    // Open the calls: those that got a port echo (another test may have
    // taken one of the free ports meanwhile).
    let deadline = Instant::now() + Duration::from_secs(5);
    let established: Vec<&UdpSocket> = calls
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            c.send(&rtp(0, 0x2000 + *i as u32)).unwrap();
            drain(c, 1, deadline).len() == 1
        })
        .map(|(_, c)| c)
        .collect();
    assert!(!established.is_empty(), "no call found a free upstream port");
    let newcomers: Vec<UdpSocket> = clients_of(listen, 200);
    const PACKETS: u16 = 100;
    for seq in 1..=PACKETS {
        for (k, n) in newcomers.iter().enumerate() {
            let _ = n.send(&rtp(seq, 0x3000 + k as u32));
        }
        for (i, c) in established.iter().enumerate() {
            c.send(&rtp(seq, 0x2000 + i as u32)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, c) in established.iter().enumerate() {
        let got = drain(c, usize::from(PACKETS), deadline);
        assert_eq!(got.len(), usize::from(PACKETS), "established call {i} lost echoes");
    }
    let io = relay.stats_blocking()[0].io;
    assert!(io.upstream_bind_failures > 0, "the full range was counted: {io:?}");
    assert!(
        io.sessions_refused >= io.upstream_bind_failures,
        "exported as refused sessions: {io:?}"
    );
    assert!(relay.sessions_blocking().len() <= FREE, "no newcomer got a held port");
    drop(held);
    relay.shutdown(Duration::from_secs(5));
}

#[test]
fn a_full_range_is_scanned_once_then_refused_without_a_bind_for_the_back_off() {
    // 300 ports, every one held: the first bind tries each once, the next
    // ones make no system call until the back-off is over.
    use rtp_middlebox::runtime::socket::{PortAllocator, EXHAUSTED_BACKOFF};
    use rtp_middlebox::time::MonoTime;
    let (low, held) = hold_port_run(300);
    let mut alloc = PortAllocator::new("127.0.0.1".parse().unwrap(), (low, low + 299), 0);
    let refused = alloc.bind(MonoTime::ZERO, false, 1 << 16).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(alloc.attempts(), 300);
    let in_backoff = MonoTime::ZERO + EXHAUSTED_BACKOFF / 2;
    for _ in 0..1000 {
        assert!(alloc.bind(in_backoff, false, 1 << 16).is_err());
    }
    assert_eq!(alloc.attempts(), 300, "refused without a bind");
    // The back-off over, one more scan.
    let after = MonoTime::ZERO + EXHAUSTED_BACKOFF;
    assert!(alloc.bind(after, false, 1 << 16).is_err());
    assert_eq!(alloc.attempts(), 600);
    // Ports come free: the next scan after the back-off finds one.
    drop(held);
    let (s, _) = alloc
        .bind(after + EXHAUSTED_BACKOFF, false, 1 << 16)
        .expect("a freed range binds again");
    assert!((low..=low + 299).contains(&s.local_addr().unwrap().port()));
}

/// With several workers a non-mux client's RTP (port P) and RTCP (P + 1)
/// reach the same worker, so each pair is one session: the listening
/// groups are steered by the client's address and port pair, where the
/// kernel's own 4-tuple hash would split about half of the pairs.
#[test]
fn non_mux_pairs_stay_together_across_workers() {
    let (relay, _echo_rtp, _echo_rtcp) = non_mux_relay(2);
    let b = relay.bound()[0].clone();
    const PAIRS: u32 = 16;
    let mut clients = Vec::new();
    for k in 0..PAIRS {
        let (c_rtp, c_rtcp) = bind_pair("127.0.0.1");
        c_rtp.connect(b.listen).unwrap();
        c_rtcp.connect(b.listen_rtcp.unwrap()).unwrap();
        c_rtp.send(&rtp(1, 0x100 + k)).unwrap();
        clients.push((c_rtp, c_rtcp));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for (k, (c_rtp, c_rtcp)) in clients.iter().enumerate() {
        assert_eq!(drain(c_rtp, 1, deadline).len(), 1);
        let rr = common::rr(Ssrc(0x100 + k as u32), &[]);
        c_rtcp.send(&rr).unwrap();
        assert_eq!(
            drain(c_rtcp, 1, deadline),
            vec![rr],
            "pair {k}: RTCP echoed to its RTCP port"
        );
    }
    let sessions = relay.sessions_blocking();
    assert_eq!(
        sessions.len(),
        PAIRS as usize,
        "one session per pair, none for a lone RTCP port"
    );
    for s in &sessions {
        let client_side = s.snapshot.side(Side::Client);
        assert_eq!(client_side.received.packets(rtp_middlebox::wire::PacketKind::Rtcp), 1);
    }
    let per_worker: Vec<usize> = relay.stats_blocking().iter().map(|w| w.sessions).collect();
    assert!(per_worker.iter().all(|&n| n > 0), "pairs still spread: {per_worker:?}");
    relay.shutdown(Duration::from_secs(5));
}

/// `nat_rebinding = "stun"`: clients are steered by address alone, so a
/// client that comes back on a new port reaches the worker that holds its
/// session (the only one that can move it). Every port of the loopback
/// address goes to one worker; after a reload back to "never" (address and
/// port pair) they spread again, over IPv4 and IPv6 alike (the steering
/// program reads each family's header at its own offsets).
#[test]
fn rebinding_steers_a_clients_ports_to_one_worker() {
    for ip in ["127.0.0.1", "[::1]"] {
        let any = format!("{ip}:0");
        let echo = Echo::start(&any);
        let cfg = config_with_limits(&any, echo.addr, "", "nat_rebinding = \"stun\"\n");
        let relay = start(&cfg, 2);
        let listen = relay.bound()[0].listen;
        let send_from_new_ports = |count: u32, ssrc: u32| {
            let clients: Vec<UdpSocket> = (0..count)
                .map(|_| {
                    let c = UdpSocket::bind(&any).unwrap();
                    c.connect(listen).unwrap();
                    c
                })
                .collect();
            for (k, c) in clients.iter().enumerate() {
                c.send(&rtp(1, ssrc + k as u32)).unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            for c in &clients {
                assert_eq!(drain(c, 1, deadline).len(), 1);
            }
        };
        send_from_new_ports(16, 0x200);
        let per_worker: Vec<usize> = relay.stats_blocking().iter().map(|w| w.sessions).collect();
        assert_eq!(
            per_worker.iter().filter(|&&n| n > 0).count(),
            1,
            "{ip}: every port of one address on one worker: {per_worker:?}"
        );
        let back = config_with_limits(&any, echo.addr, "", "nat_rebinding = \"never\"\n");
        relay.reload(&cfg, &back).unwrap();
        send_from_new_ports(16, 0x300);
        let per_worker: Vec<usize> = relay.stats_blocking().iter().map(|w| w.sessions).collect();
        assert!(
            per_worker.iter().all(|&n| n > 0),
            "{ip}: spread again after the reload: {per_worker:?}"
        );
        relay.shutdown(Duration::from_secs(5));
    }
}
