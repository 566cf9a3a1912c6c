//! Load generator and sink for the relay, with a naive relay as baseline.
//!
//! ```text
//! cargo build --release --examples --bins
//! target/release/examples/relay_load bench --streams 2000 --rate 50 --seconds 10
//! target/release/examples/relay_load max-rate --workers 1
//! target/release/examples/relay_load naive --listen 127.0.0.1:4000 --upstream 127.0.0.1:5000
//! ```
//!
//! `bench` starts a sink (the "SFU") in this process, then for each relay
//! under test (rtp-middlebox `run`, and the naive relay) as a child process:
//! drives K RTP streams (one client socket each, valid RTP headers, 160-byte
//! payloads carrying the send time, an RTCP SR every 5 s per stream) at R
//! packets/s each through the relay to the sink for S seconds, and reports
//! delivered packets, loss, one-way latency percentiles and the relay's CPU
//! time per packet (summed over its threads from /proc/PID/task/*/schedstat).
//!
//! The naive relay is what a first tokio relay looks like: a multi-threaded
//! runtime, one `recv_from`/`send_to` per packet, a session map behind a
//! mutex, no statistics.

// Outside the engine: a load tool measures real time.
#![allow(clippy::disallowed_methods)]

use rtp_middlebox::sim::sdp::webrtc_sdp;
use rtp_middlebox::wire::ntp::NtpTime;
use rtp_middlebox::wire::rtcp::{self, SenderInfo};
use rtp_middlebox::wire::rtp::{write_rtp, RtpHeader};
use rtp_middlebox::wire::{RtpTs, SeqNo, Ssrc};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/floor_relay.rs"]
mod floor_relay;

const SSRC_BASE: u32 = 0x5000_0000;
/// Largest `--payload` (bytes of RTP payload per packet).
const MAX_PAYLOAD: usize = 1400;

/// RTP payload bytes per generated packet (`--payload`, default 160: 20 ms
/// of G.711).
static PAYLOAD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(160);

fn payload_bytes() -> usize {
    PAYLOAD.load(Ordering::Relaxed)
}

/// `srtp` runs: streams look like keyless SRTP (a DTLS record first, so the
/// relay treats the session as encrypted; SRs carry an SRTCP trailer and are
/// forwarded unread). The RTP path is the same either way: headers are clear.
/// `max-rate --pin`: the relay runs on CPU 0 and the load tool (generator
/// and sink) on CPU 1 ([`pin_relay_apart`]).
static PIN_RELAY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static SRTP_SHAPE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value after `name`, if any.
fn arg_text(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The load of a run: K streams at R packets/s each for S seconds through
/// a relay with W workers.
#[derive(Clone, Copy)]
struct Load {
    streams: usize,
    rate: f64,
    secs: f64,
    workers: usize,
}

impl Load {
    /// `--streams`, `--rate`, `--seconds` and `--workers` from `args`; by
    /// default `streams` streams at 50 packets/s for `secs` s, 2 workers.
    fn from_args(args: &[String], streams: usize, secs: f64) -> Self {
        Load {
            streams: arg(args, "--streams", streams),
            rate: arg(args, "--rate", 50.0),
            secs: arg(args, "--seconds", secs),
            workers: arg(args, "--workers", 2),
        }
    }

    /// One run through relay `kind`, printed as a row.
    fn run(&self, kind: &str) -> RunResult {
        self.run_as(kind, kind)
    }

    /// [`Self::run`], its row named `label`.
    fn run_as(&self, kind: &str, label: &str) -> RunResult {
        let mut r = run_once(kind, self.streams, self.rate, self.secs, self.workers);
        r.kind = label.into();
        print_row(&r);
        r
    }
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Load {
            streams,
            rate,
            secs,
            workers,
        } = self;
        write!(
            f,
            "{streams} streams x {rate} packets/s for {secs} s, {workers} workers"
        )
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let payload = arg(&args, "--payload", 160usize);
    assert!(
        (8..=MAX_PAYLOAD).contains(&payload),
        "--payload: 8 to {MAX_PAYLOAD} bytes"
    );
    PAYLOAD.store(payload, Ordering::Relaxed);
    match args.get(1).map(String::as_str) {
        Some(kind @ ("floor" | "floor-uring")) => floor_relay::run(
            arg(&args, "--listen", "127.0.0.1:0".parse().unwrap()),
            arg(&args, "--upstream", "127.0.0.1:0".parse().unwrap()),
            arg(&args, "--workers", 2usize),
            kind == "floor-uring",
        ),
        Some("naive") => naive_relay(
            arg(&args, "--listen", "127.0.0.1:0".parse().unwrap()),
            arg(&args, "--upstream", "127.0.0.1:0".parse().unwrap()),
            arg(&args, "--workers", 2usize),
        ),
        Some("bench") => {
            // Every relay of `--relays` on the same load, in alternating
            // rounds of one run; medians compared with the first relay
            // (by default the floor of the proxy's own design).
            let load = Load::from_args(&args, 2000, 10.0);
            let rounds = arg(&args, "--rounds", 3usize);
            let relays = arg_text(&args, "--relays").unwrap_or("floor,rtp-middlebox:auto,naive".into());
            let limits_off = limits_off_config();
            let kinds: Vec<String> = relays.split(',').map(|k| with_limits_off(k, &limits_off)).collect();
            println!(
                "load: {} streams x {} packets/s for {} s ({} packets/s, {} B payload), {} relay workers, {rounds} rounds",
                load.streams,
                load.rate,
                load.secs,
                load.streams as f64 * load.rate,
                payload_bytes(),
                load.workers
            );
            print_header();
            let mut results: Vec<Vec<RunResult>> = kinds.iter().map(|_| Vec::new()).collect();
            for _ in 0..rounds {
                for (k, kind) in kinds.iter().enumerate() {
                    results[k].push(load.run_as(kind, &relay_label(kind)));
                }
            }
            print_medians(&kinds, &mut results);
            let _ = std::fs::remove_file(&limits_off);
        }
        Some("modes") => {
            // The cost of RTCP termination: the same load through
            // rtp-middlebox in `forward` and in `terminate`, in one run.
            let load = Load::from_args(&args, 2000, 10.0);
            println!("modes: {load}");
            print_header();
            let f = load.run("rtp-middlebox:forward");
            let t = load.run("rtp-middlebox:terminate");
            println!(
                "terminate vs forward: {:.3} vs {:.3} s of relay CPU per million packets ({:+.1}%)",
                t.cpu_us_per_packet,
                f.cpu_us_per_packet,
                100.0 * (t.cpu_us_per_packet / f.cpu_us_per_packet - 1.0)
            );
        }
        Some("metrics") => {
            // The cost of metrics: the same load with the publisher off and
            // on (1 s interval, per-session series: the worst case), in
            // alternating rounds of one run; medians compared.
            let load = Load::from_args(&args, 2000, 10.0);
            let rounds = arg(&args, "--rounds", 3usize);
            let dir = std::env::temp_dir().join(format!("relay-load-metrics-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let relay =
                "[[relay]]\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:9\"\nupstream_bind = \"127.0.0.1\"\n";
            let off = dir.join("off.toml");
            let on = dir.join("on.toml");
            std::fs::write(&off, format!("{relay}[metrics]\nenabled = false\n")).unwrap();
            std::fs::write(
                &on,
                format!("{relay}[metrics]\nenabled = true\ninterval_secs = 1\nper_session = true\nmax_session_series = 1000\n"),
            )
            .unwrap();
            println!("metrics: {load}, {rounds} rounds");
            print_header();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                a.push(
                    load.run(&format!("rtp-middlebox:forward@{}", off.display()))
                        .cpu_us_per_packet,
                );
                b.push(
                    load.run(&format!("rtp-middlebox:forward@{}", on.display()))
                        .cpu_us_per_packet,
                );
            }
            let (off_us, on_us) = (median(&mut a), median(&mut b));
            println!(
                "metrics on vs off: {:.3} vs {:.3} s of relay CPU per million packets ({:+.1}%, medians of {rounds})",
                on_us,
                off_us,
                100.0 * (on_us / off_us - 1.0)
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
        Some("srtp") => {
            // Keyless SRTP streams against plain RTP, same load, alternating
            // rounds in one run: nothing is decrypted on the RTP path.
            let load = Load::from_args(&args, 2000, 10.0);
            let rounds = arg(&args, "--rounds", 3usize);
            println!("srtp: {load}, {rounds} rounds");
            print_header();
            let (mut plain, mut srtp) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                SRTP_SHAPE.store(false, Ordering::Relaxed);
                plain.push(load.run("rtp-middlebox:forward").cpu_us_per_packet);
                SRTP_SHAPE.store(true, Ordering::Relaxed);
                srtp.push(
                    load.run_as("rtp-middlebox:forward", "rtp-middlebox:srtp")
                        .cpu_us_per_packet,
                );
            }
            SRTP_SHAPE.store(false, Ordering::Relaxed);
            let (p, s) = (median(&mut plain), median(&mut srtp));
            println!(
                "srtp vs plain: {s:.3} vs {p:.3} s of relay CPU per million packets ({:+.1}%, medians of {rounds})",
                100.0 * (s / p - 1.0)
            );
        }
        Some("soak") => {
            // A long run with flat memory: K streams for S seconds through
            // one relay process, its RSS sampled every minute.
            let load = Load::from_args(&args, 1000, 600.0);
            let relay = arg_text(&args, "--relay").unwrap_or("rtp-middlebox:forward".into());
            soak(&relay, load.streams, load.rate, load.secs, load.workers);
        }
        Some("dtls") => dtls_cost(&args),
        Some("max-rate") => {
            let workers = arg(&args, "--workers", 1usize);
            let secs = arg(&args, "--seconds", 3.0f64);
            let streams = arg(&args, "--streams", 500usize);
            let kind = arg_text(&args, "--relay").unwrap_or("rtp-middlebox".into());
            if args.iter().any(|a| a == "--pin") {
                pin_relay_apart();
            }
            max_rate(&kind, workers, streams, secs);
        }
        _ => {
            eprintln!("usage: relay_load bench [--streams K] [--rate R] [--seconds S] [--workers W] [--payload B] [--rounds N] [--relays floor,rtp-middlebox:auto,naive,rtp-middlebox:auto=BINARY]\n       relay_load soak [--streams K] [--rate R] [--seconds S] [--workers W] [--relay rtp-middlebox:MODE]\n       relay_load srtp [--streams K] [--rate R] [--seconds S] [--workers W] [--rounds N]\n       relay_load metrics [--streams K] [--rate R] [--seconds S] [--workers W] [--rounds N]\n       relay_load max-rate [--workers W] [--streams K] [--seconds S] [--relay naive|rtp-middlebox] [--pin]\n       relay_load naive|floor|floor-uring --listen ADDR --upstream ADDR [--workers W]");
            std::process::exit(2);
        }
    }
}

// ------------------------------------------------------------------ results

struct RunResult {
    kind: String,
    offered_pps: f64,
    sent: u64,
    delivered: u64,
    loss_pct: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    cpu_us_per_packet: f64,
    relay_cpu_pct: f64,
    /// Resident memory the relay gained per session (one stream each) once
    /// every session exists, kernel socket buffers excluded.
    rss_per_session: f64,
    /// Resident memory at the end of the measured run against a third of
    /// the way in, in per cent.
    rss_growth_pct: f64,
    /// Packets the generator sent against the offer over the run (1.0: all
    /// of it); below [`GENERATOR_SHORTFALL`] the round carried less load
    /// than its row says, and its row is marked.
    offer_share: f64,
}

/// What one measured run counted: packets offered (per second), sent and
/// delivered, and the relay's CPU time over the run's wall time.
struct Measured {
    offered_pps: f64,
    sent: u64,
    delivered: u64,
    cpu_ns: u64,
    wall: Duration,
}

impl RunResult {
    /// The row of a run from its counts and its one-way latencies (µs, in
    /// any order); memory not sampled (NaN) until the caller sets it.
    fn new(kind: String, m: &Measured, mut lat: Vec<u32>) -> RunResult {
        lat.sort_unstable();
        RunResult {
            kind,
            offered_pps: m.offered_pps,
            sent: m.sent,
            delivered: m.delivered,
            loss_pct: 100.0 * m.sent.saturating_sub(m.delivered) as f64 / m.sent.max(1) as f64,
            p50_us: percentile(&lat, 0.5),
            p99_us: percentile(&lat, 0.99),
            p999_us: percentile(&lat, 0.999),
            cpu_us_per_packet: m.cpu_ns as f64 / 1000.0 / m.delivered.max(1) as f64,
            relay_cpu_pct: 100.0 * m.cpu_ns as f64 / m.wall.as_nanos() as f64,
            rss_per_session: f64::NAN,
            rss_growth_pct: f64::NAN,
            offer_share: 1.0,
        }
    }
}

fn print_header() {
    println!(
        "{:<24} {:>8} {:>9} {:>9} {:>7} {:>8} {:>8} {:>9} {:>10} {:>6} {:>10}",
        "relay",
        "offer/s",
        "sent",
        "delivered",
        "loss%",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "cpu us/pkt",
        "cpu %",
        "rss B/sess"
    );
}

fn print_row(r: &RunResult) {
    println!(
        "{:<24} {:>8.0} {:>9} {:>9} {:>7.3} {:>8.0} {:>8.0} {:>9.0} {:>10.2} {:>6.1} {:>10.0}",
        // "kind@/dir/on.toml" prints as "kind@on".
        match r.kind.split_once('@') {
            Some((k, path)) => format!(
                "{k}@{}",
                std::path::Path::new(path)
                    .file_stem()
                    .map_or("".into(), |s| s.to_string_lossy())
            ),
            None => r.kind.clone(),
        },
        r.offered_pps,
        r.sent,
        r.delivered,
        r.loss_pct,
        r.p50_us,
        r.p99_us,
        r.p999_us,
        r.cpu_us_per_packet,
        r.relay_cpu_pct,
        r.rss_per_session
    );
    if r.offer_share < GENERATOR_SHORTFALL {
        println!(
            "{:<24} ^ the generator sent {:.1}% of the offer: this round carried less load than its row says",
            "",
            100.0 * r.offer_share
        );
    }
}

// --------------------------------------------------------------- processes

fn exe_dir() -> std::path::PathBuf {
    let me = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/relay_load → target/<profile>/
    me.parent().and_then(|p| p.parent()).expect("target dir").to_path_buf()
}

fn free_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_relay(kind: &str, listen: SocketAddr, upstream: SocketAddr, workers: usize) -> ChildGuard {
    let RelayKind {
        name: kind,
        mode,
        binary,
        config,
    } = RelayKind::parse(kind);
    let dir = exe_dir();
    let mut cmd = match kind {
        "naive" | "floor" | "floor-uring" => {
            let mut c = Command::new(dir.join("examples/relay_load"));
            c.args([
                kind,
                "--listen",
                &listen.to_string(),
                "--upstream",
                &upstream.to_string(),
                "--workers",
                &workers.to_string(),
            ]);
            c
        }
        _ => {
            let mut c = Command::new(binary.map_or_else(|| dir.join("rtp-middlebox"), Into::into));
            c.args([
                "run",
                "--listen",
                &listen.to_string(),
                "--upstream",
                &upstream.to_string(),
                "--rtcp",
                mode,
                "--workers",
                &workers.to_string(),
                "--quiet",
                "--api-listen",
                "127.0.0.1:0",
            ]);
            if let Some(path) = config {
                c.args(["--config", path]);
            }
            c
        }
    };
    if PIN_RELAY.load(Ordering::Relaxed) {
        use std::os::unix::process::CommandExt;
        // SAFETY: sched_setaffinity is async-signal-safe; the closure runs
        // in the forked child before exec and allocates nothing.
        unsafe {
            cmd.pre_exec(|| set_cpu(0));
        }
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {kind} relay: {e} (build with `cargo build --release --examples --bins`)")
        });
    ChildGuard(child)
}

/// Resident set size of `pid` in bytes (VmRSS).
fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time (ns) of every thread of `pid` (schedstat: ns on CPU).
fn cpu_ns(pid: u32) -> u64 {
    let mut total = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

// -------------------------------------------------------------------- sink

struct Sink {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<u32>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The receiving end. `answer_every`: like an SFU, send an RTCP RR back
/// to each source on its first packet and every that-many packets after
/// (the soak needs it: the relay evicts sessions its upstream never answers).
fn start_sink(epoch: Instant, answer_every: Option<u32>) -> Sink {
    let addr = free_port();
    let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    raw.set_recv_buffer_size(32 << 20).unwrap();
    // As root, past net.core.rmem_max: the sink shares 2 cores with the
    // relay and the generator, and a datagram it drops while descheduled
    // would be counted against the relay.
    raw.bind(&addr.into()).unwrap();
    let sock: UdpSocket = raw.into();
    rtp_middlebox::runtime::socket::force_buffers(&sock, 32 << 20);
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(1 << 20)));
    let stop = Arc::new(AtomicBool::new(false));
    let (r2, l2, s2) = (received.clone(), latencies.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let state = quinn_udp::UdpSocketState::new((&sock).into()).unwrap();
        let mut bufs = vec![[0u8; 2048]; 32];
        let mut meta = [quinn_udp::RecvMeta::default(); 32];
        let mut local = Vec::with_capacity(1 << 16);
        let mut per_source: std::collections::HashMap<SocketAddr, u32> = Default::default();
        // RR from SSRC 0x51c0ffee with no report blocks (RFC 3550 §6.4.2).
        let mut rr = Vec::with_capacity(8);
        rtcp::write_receiver_report(&mut rr, Ssrc(0x51c0_ffee), &[]);
        while !s2.load(Ordering::Relaxed) {
            let mut slices: Vec<std::io::IoSliceMut> =
                bufs.iter_mut().map(|b| std::io::IoSliceMut::new(&mut b[..])).collect();
            let n = match state.recv((&sock).into(), &mut slices, &mut meta) {
                Ok(n) => n,
                Err(_) => {
                    // Idle for the read timeout: hand over what was measured,
                    // so a run that ends (or a warm-up whose samples are
                    // cleared) leaves no samples behind in `local`.
                    if !local.is_empty() {
                        l2.lock().unwrap().append(&mut local);
                    }
                    continue;
                }
            };
            let now = epoch.elapsed().as_nanos() as u64;
            for (i, m) in meta[..n].iter().enumerate() {
                let b = &bufs[i][..m.len];
                // RTP (not RTCP): second byte outside 192..=223.
                if let Some(every) = answer_every {
                    let n = per_source.entry(m.addr).or_insert(0);
                    if *n % every == 0 {
                        let _ = sock.send_to(&rr, m.addr);
                    }
                    *n = n.wrapping_add(1);
                }
                if b.len() >= 20 && !(192..=223).contains(&b[1]) {
                    r2.fetch_add(1, Ordering::Relaxed);
                    let sent = u64::from_be_bytes(b[12..20].try_into().unwrap());
                    local.push(((now.saturating_sub(sent)) / 1000) as u32);
                }
            }
            if local.len() > 4096 {
                l2.lock().unwrap().append(&mut local);
            }
        }
        l2.lock().unwrap().append(&mut local);
    });
    Sink {
        addr,
        received,
        latencies,
        stop,
        thread: Some(thread),
    }
}

/// Datagrams the kernel dropped on the IPv4 UDP socket bound to `addr`
/// (the `drops` column of /proc/net/udp): loss that is the load tool's own.
fn socket_drops(addr: SocketAddr) -> u64 {
    let local = format!(":{:04X}", addr.port());
    std::fs::read_to_string("/proc/net/udp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(1)
                .filter(|a| a.ends_with(&local))
                .and_then(|_| cols.last()?.parse::<u64>().ok())
        })
        .sum()
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// --------------------------------------------------------------- generator

/// Replaces `out` with a PCMU packet whose payload starts with the send time.
fn rtp(out: &mut Vec<u8>, seq: u16, ts: u32, ssrc: u32, sent_ns: u64) {
    let header = RtpHeader {
        payload_type: 0, // PCMU
        seq: SeqNo(seq),
        timestamp: RtpTs(ts),
        ssrc: Ssrc(ssrc),
        ..RtpHeader::default()
    };
    let mut payload = [0u8; MAX_PAYLOAD];
    payload[..8].copy_from_slice(&sent_ns.to_be_bytes());
    out.clear();
    write_rtp(out, &header, &payload[..payload_bytes()]);
}

/// A 28-byte SR without report blocks.
fn sender_report(ssrc: u32, packets: u32) -> Vec<u8> {
    let info = SenderInfo {
        ntp: NtpTime(0xe000_0000_0000_0000),
        rtp_ts: 0,
        packet_count: packets,
        octet_count: packets * payload_bytes() as u32,
    };
    let mut p = Vec::with_capacity(28 + 14);
    rtcp::write_sender_report(&mut p, Ssrc(ssrc), &info, &[]);
    p
}

/// Where generated datagrams go out.
enum Senders {
    /// One connected UDP socket per stream: a syscall per packet.
    Sockets(Vec<UdpSocket>),
    /// A raw IPv4 socket writing whole IP/UDP packets from a distinct source
    /// port per stream, 32 per sendmmsg: the generator then costs a small
    /// fraction of what the relay does, so on 2 cores the relay's figures
    /// are not starved by the load tool (needs CAP_NET_RAW).
    Raw { fd: i32, dest: SocketAddr, base_port: u16 },
}

impl Senders {
    fn new(relay: SocketAddr, streams: usize) -> Senders {
        if std::env::var_os("RELAY_LOAD_SOCKETS").is_none() {
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
            if fd >= 0 {
                let sndbuf: libc::c_int = 8 << 20;
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_SNDBUF,
                        &sndbuf as *const _ as *const libc::c_void,
                        4,
                    );
                }
                // Source ports base..base+streams, away from ephemeral ones.
                return Senders::Raw {
                    fd,
                    dest: relay,
                    base_port: 20_000,
                };
            }
        }
        Senders::Sockets(
            (0..streams)
                .map(|_| {
                    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                    s.connect(relay).unwrap();
                    s.set_nonblocking(true).unwrap();
                    s
                })
                .collect(),
        )
    }

    /// Sends one datagram per `(stream, payload)`.
    fn send(&self, batch: &[(usize, &[u8])]) {
        match self {
            Senders::Sockets(socks) => {
                for (i, p) in batch {
                    let _ = socks[*i].send(p);
                }
            }
            Senders::Raw { fd, dest, base_port } => {
                let SocketAddr::V4(d) = dest else {
                    panic!("raw sender is IPv4 only")
                };
                // IP + UDP + RTP (+ SRTP tag) + `--payload` up to MAX_PAYLOAD:
                // `dtls` runs send SRTP with 1200-byte payloads.
                let mut pkts = [[0u8; 1500]; 32];
                for chunk in batch.chunks(32) {
                    let mut iov: [libc::iovec; 32] = unsafe { std::mem::zeroed() };
                    let mut hdrs: [libc::mmsghdr; 32] = unsafe { std::mem::zeroed() };
                    let sa = libc::sockaddr_in {
                        sin_family: libc::AF_INET as u16,
                        sin_port: 0,
                        sin_addr: libc::in_addr {
                            s_addr: u32::from(*d.ip()).to_be(),
                        },
                        sin_zero: [0; 8],
                    };
                    for (k, (i, p)) in chunk.iter().enumerate() {
                        let total = 28 + p.len();
                        let b = &mut pkts[k];
                        // IPv4 header: the kernel fills checksum, id and total length.
                        b[0] = 0x45;
                        b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                        b[8] = 64;
                        b[9] = 17;
                        b[12..16].copy_from_slice(&d.ip().octets());
                        b[16..20].copy_from_slice(&d.ip().octets());
                        // UDP header, checksum 0 (none; allowed on IPv4).
                        b[20..22].copy_from_slice(&(base_port + *i as u16).to_be_bytes());
                        b[22..24].copy_from_slice(&d.port().to_be_bytes());
                        b[24..26].copy_from_slice(&((8 + p.len()) as u16).to_be_bytes());
                        b[26..28].copy_from_slice(&[0, 0]);
                        b[28..total].copy_from_slice(p);
                        iov[k] = libc::iovec {
                            iov_base: b.as_mut_ptr() as *mut libc::c_void,
                            iov_len: total,
                        };
                        hdrs[k].msg_hdr.msg_name = &sa as *const _ as *mut libc::c_void;
                        hdrs[k].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                        hdrs[k].msg_hdr.msg_iov = &mut iov[k];
                        hdrs[k].msg_hdr.msg_iovlen = 1;
                    }
                    let mut off = 0;
                    while off < chunk.len() {
                        let r = unsafe { libc::sendmmsg(*fd, hdrs[off..].as_mut_ptr(), (chunk.len() - off) as u32, 0) };
                        if r <= 0 {
                            break;
                        }
                        off += r as usize;
                    }
                }
            }
        }
    }
}

impl Drop for Senders {
    fn drop(&mut self) {
        if let Senders::Raw { fd, .. } = self {
            unsafe {
                libc::close(*fd);
            }
        }
    }
}

/// Sends `streams` × `rate` packets/s for `secs` to `relay`; returns packets sent.
fn generate(relay: SocketAddr, streams: usize, rate: f64, secs: f64, epoch: Instant) -> u64 {
    let senders = Senders::new(relay, streams);
    let mut pacer = Pacer::new(streams, rate, secs);
    let mut due = Vec::with_capacity(32);
    let started = Instant::now();
    let mut srs_sent = 0usize;
    let mut bufs: Vec<Vec<u8>> = (0..32).map(|_| Vec::with_capacity(12 + MAX_PAYLOAD)).collect();
    let srtp = SRTP_SHAPE.load(Ordering::Relaxed);
    if srtp {
        // A DTLS record (content type 22) from every stream's address.
        let dtls = [22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        let batch: Vec<(usize, &[u8])> = (0..streams).map(|i| (i, &dtls[..])).collect();
        senders.send(&batch);
    }
    while pacer.next_round() {
        while pacer.due(&mut due) {
            for (buf, &(i, s)) in bufs.iter_mut().zip(&due) {
                rtp(
                    buf,
                    s,
                    u32::from(s) * 160,
                    SSRC_BASE + i as u32,
                    epoch.elapsed().as_nanos() as u64,
                );
            }
            let batch: Vec<(usize, &[u8])> = due.iter().zip(&bufs).map(|(&(i, _), b)| (i, &b[..])).collect();
            senders.send(&batch);
        }
        // Each stream's SR every 5 s, the streams' phases spread over the
        // interval as RFC 3550 §6.3.5's randomised intervals spread real
        // senders' (a burst of one SR per stream at once would overflow
        // the relay's receive buffer at 18 000 streams: the tool's shape,
        // not a call's).
        let sr_due = (started.elapsed().as_secs_f64() / 5.0 * streams as f64) as usize;
        if sr_due > srs_sent {
            let srs: Vec<(usize, Vec<u8>)> = (srs_sent..sr_due)
                .map(|n| {
                    let i = n % streams;
                    let mut sr = sender_report(SSRC_BASE + i as u32, u32::from(pacer.seq[i]));
                    if srtp {
                        // SRTCP: E flag + index, 80-bit tag (contents opaque without keys).
                        sr.extend_from_slice(&[0x80, 0, 0, 1]);
                        sr.extend_from_slice(&[0x5a; 10]);
                    }
                    (i, sr)
                })
                .collect();
            srs_sent = sr_due;
            let batch: Vec<(usize, &[u8])> = srs.iter().map(|(i, p)| (*i, &p[..])).collect();
            senders.send(&batch);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    pacer.sent
}

/// Paces `streams` × `rate` packets/s, round-robin over the streams, for
/// `secs` from its creation: each round ([`Pacer::next_round`]) makes what
/// is due by then available, handed out in batches of 32 at most (a
/// sendmmsg's worth). A generator that falls behind catches up to the
/// round's target, never beyond it, so a run ends on time.
struct Pacer {
    start: Instant,
    end: Duration,
    total_rate: f64,
    /// Each stream's next sequence number.
    seq: Vec<u16>,
    /// Packets handed out so far, and due by the current round.
    sent: u64,
    target: u64,
    next: usize,
}

impl Pacer {
    fn new(streams: usize, rate: f64, secs: f64) -> Pacer {
        Pacer {
            start: Instant::now(),
            end: Duration::from_secs_f64(secs),
            total_rate: streams as f64 * rate,
            seq: vec![0; streams],
            sent: 0,
            target: 0,
            next: 0,
        }
    }

    /// Starts a round: false once the run's time is over.
    fn next_round(&mut self) -> bool {
        let elapsed = self.start.elapsed();
        self.target = (elapsed.as_secs_f64() * self.total_rate) as u64;
        elapsed < self.end
    }

    /// Fills `due` with the next (stream, sequence number) pairs due in
    /// this round (32 at most); false when none is left.
    fn due(&mut self, due: &mut Vec<(usize, u16)>) -> bool {
        due.clear();
        let n = self.target.saturating_sub(self.sent).min(32);
        for _ in 0..n {
            let i = self.next;
            self.next = (self.next + 1) % self.seq.len();
            due.push((i, self.seq[i]));
            self.seq[i] = self.seq[i].wrapping_add(1);
        }
        self.sent += n;
        n > 0
    }
}

fn soak(relay: &str, streams: usize, rate: f64, secs: f64, workers: usize) {
    let epoch = Instant::now();
    // Answered every 5 s at 50 packets/s, as an SFU's RRs would.
    let sink = start_sink(epoch, Some(250));
    let listen = free_port();
    // As in `bench`: admission limits off (every stream comes from one
    // address) and 25 000 upstream ports. With the defaults, 18 000 streams
    // from one /24 take 90 s to admit, and the default range holds 10 000
    // sessions (the rest are refused, counted as upstream_bind_failures).
    let limits_off = limits_off_config();
    let relay = spawn_relay(&with_limits_off(relay, &limits_off), listen, sink.addr, workers);
    std::thread::sleep(Duration::from_millis(300));
    let pid = relay.0.id();
    // Warm-up: every stream opens its session.
    generate(listen, streams, 2.0, 3.0, epoch);
    std::thread::sleep(Duration::from_millis(200));
    let base = sink.received.load(Ordering::Relaxed);
    let rss_start = rss_bytes(pid);
    println!(
        "soak: {streams} streams x {rate} packets/s for {secs} s, {workers} workers; RSS at start {:.1} MiB",
        rss_start as f64 / 1048576.0
    );
    let mut sent = 0u64;
    let mut left = secs;
    // The first minute holds the first metrics publications' high-water
    // mark; flat memory is the end against it.
    let mut rss_first_minute = None;
    while left > 0.0 {
        let chunk = left.min(60.0);
        sent += generate(listen, streams, rate, chunk, epoch);
        left -= chunk;
        let delivered = sink.received.load(Ordering::Relaxed) - base;
        let rss = rss_bytes(pid);
        rss_first_minute.get_or_insert(rss);
        println!(
            "  after {:>4.0} s: RSS {:.1} MiB, delivered {delivered}/{sent}",
            secs - left,
            rss as f64 / 1048576.0
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let delivered = sink.received.load(Ordering::Relaxed) - base;
    let rss_end = rss_bytes(pid);
    println!(
        "soak: RSS {:.1} MiB at start, {:.1} MiB at the end ({:+.1} %); delivered {delivered} of {sent} ({:.4} % loss)",
        rss_start as f64 / 1048576.0,
        rss_end as f64 / 1048576.0,
        100.0 * (rss_end as f64 / rss_start as f64 - 1.0),
        100.0 * sent.saturating_sub(delivered) as f64 / sent.max(1) as f64
    );
    println!(
        "soak: of the loss, {} datagrams the sink's own socket dropped (the load tool's, not the relay's)",
        socket_drops(sink.addr)
    );
    if let Some(first) = rss_first_minute.filter(|_| secs > 60.0) {
        println!(
            "soak: RSS {:.1} MiB after the first minute, {:.1} MiB at the end ({:+.1} %)",
            first as f64 / 1048576.0,
            rss_end as f64 / 1048576.0,
            100.0 * (rss_end as f64 / first as f64 - 1.0),
        );
    }
    drop(relay);
    let _ = std::fs::remove_file(&limits_off);
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i])
}

fn run_once(kind: &str, streams: usize, rate: f64, secs: f64, workers: usize) -> RunResult {
    let epoch = Instant::now();
    let sink = start_sink(epoch, None);
    let listen = free_port();
    let relay = spawn_relay(kind, listen, sink.addr, workers);
    std::thread::sleep(Duration::from_millis(300));
    let pid = relay.0.id();
    let rss0 = rss_bytes(pid);
    // Warm-up: create every session before measuring.
    generate(listen, streams, 2.0, 0.6, epoch);
    std::thread::sleep(Duration::from_millis(200));
    let rss_per_session = rss_bytes(pid).saturating_sub(rss0) as f64 / streams as f64;
    let base_recv = sink.received.load(Ordering::Relaxed);
    sink.latencies.lock().unwrap().clear();
    let cpu0 = cpu_ns(pid);
    let t0 = Instant::now();
    // RSS once a third of the run is over (every session has met its
    // steady state: streams, report timers, generated reports) against
    // the end: memory that keeps growing with time shows here.
    let rss_settled = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(secs / 3.0));
        rss_bytes(pid)
    });
    let sent = generate(listen, streams, rate, secs, epoch);
    std::thread::sleep(Duration::from_millis(300));
    let cpu = cpu_ns(pid).saturating_sub(cpu0);
    let wall = t0.elapsed();
    let rss_settled = rss_settled.join().unwrap_or(0);
    let rss_growth_pct = 100.0 * (rss_bytes(pid) as f64 / rss_settled.max(1) as f64 - 1.0);
    let delivered = sink.received.load(Ordering::Relaxed) - base_recv;
    drop(relay);
    let lat = std::mem::take(&mut *sink.latencies.lock().unwrap());
    let measured = Measured {
        offered_pps: streams as f64 * rate,
        sent,
        delivered,
        cpu_ns: cpu,
        wall,
    };
    RunResult {
        rss_per_session,
        rss_growth_pct,
        offer_share: sent as f64 / (measured.offered_pps * secs).max(1.0),
        ..RunResult::new(kind.into(), &measured, lat)
    }
}

fn max_rate(kind: &str, workers: usize, streams: usize, secs: f64) {
    let limits_off = limits_off_config();
    let kind = &with_limits_off(kind, &limits_off);
    println!(
        "max-rate: {kind}, {workers} workers, {streams} streams, {secs} s per step; a step holds when loss < 0.1% \
         and the generator sent >= {:.0}% of the offer",
        GENERATOR_SHORTFALL * 100.0
    );
    print_header();
    // Coarse steps of x1.3 to the first step that fails, then steps of
    // x1.06 from the last one that held toward it: two relays a coarse
    // step apart may be 3 % apart, and a ratio of their highest rates
    // needs the finer grid.
    let mut rate_pps = 20_000.0f64;
    let mut best = None;
    let mut failed = None;
    let mut why = "";
    for _ in 0..12 {
        let r = run_once(kind, streams, rate_pps / streams as f64, secs, workers);
        print_row(&r);
        if let Some(reason) = step_fails(&r) {
            (failed, why) = (Some(rate_pps), reason);
            break;
        }
        best = Some(r.offered_pps);
        rate_pps *= 1.3;
    }
    if let (Some(held), Some(failed)) = (best, failed) {
        let mut rate_pps = held * 1.06;
        while rate_pps < failed * 0.99 {
            let r = run_once(kind, streams, rate_pps / streams as f64, secs, workers);
            print_row(&r);
            if let Some(reason) = step_fails(&r) {
                why = reason;
                break;
            }
            best = Some(r.offered_pps);
            rate_pps *= 1.06;
        }
    }
    match best {
        Some(b) => println!("highest rate with < 0.1% loss: {b:.0} packets/s (the next step: {why})"),
        None => println!("no step held ({why})"),
    }
}

/// Runs this process (the generator and the sink, whose threads start
/// later and inherit it) on CPU 1 and every relay it spawns on CPU 0. On 2
/// cores shared by three busy threads, one stream's highest rate is
/// otherwise the scheduler's: the generator falls behind the offer at
/// 60 000-130 000 packets/s from one run to the next, whichever relay runs.
/// Apart, the relay's core is its own and the tool's ceiling is higher.
fn pin_relay_apart() {
    if let Err(e) = set_cpu(1) {
        eprintln!("--pin: cannot run on CPU 1 ({e}); not pinned");
        return;
    }
    PIN_RELAY.store(true, Ordering::Relaxed);
}

/// Restricts the calling thread (and the threads and processes it starts
/// from now on) to CPU `cpu`.
fn set_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes one bit
    // within it; sched_setaffinity(0, ..) reads it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        match libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }
}

/// The generator must send at least this share of the offer for a run to
/// measure the relay at the load it names (`max-rate` steps; marked rows
/// elsewhere). A generator starved of CPU (it shares
/// the 2 cores with the relay and the sink) sends fewer, and the relay then
/// looks lossless at a rate it never saw: a step once passed at "133 000
/// packets/s" with 76 000 a second sent.
const GENERATOR_SHORTFALL: f64 = 0.98;
/// Why a `max-rate` step does not hold, if it does not.
fn step_fails(r: &RunResult) -> Option<&'static str> {
    if r.offer_share < GENERATOR_SHORTFALL {
        Some("the generator fell short of the offer: the load tool's ceiling, not the relay's")
    } else if r.loss_pct >= 0.1 {
        Some("loss >= 0.1%")
    } else {
        None
    }
}

/// A config with the admission and rate limits off (the generator is one
/// address, and the per-session cap is not what a load test measures) and
/// no expiry of unanswered sessions (the sink does not answer).
fn limits_off_config() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("relay-load-limits-off-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[relay]]\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:9\"\nupstream_bind = \"127.0.0.1\"\nupstream_ports = \"40000-64999\"\n\
         [limits]\nnew_sessions_per_prefix_per_sec = 0\nmax_packets_per_session_per_sec = 0\nunanswered_timeout_secs = 0\n",
    )
    .unwrap();
    path
}

/// `kind` with [`limits_off_config`] when it is rtp-middlebox without a
/// config of its own: admission limits off, as for the floor (the
/// generator is one address).
fn with_limits_off(kind: &str, config: &std::path::Path) -> String {
    match kind.starts_with("rtp-middlebox") && !kind.contains('@') {
        true => format!("{kind}@{}", config.display()),
        false => kind.to_string(),
    }
}

/// One entry of `--relays`: "rtp-middlebox:terminate" selects the RTCP
/// mode (default forward); "…@FILE" also passes --config FILE;
/// "rtp-middlebox:forward=BINARY" runs another build of the relay (an
/// older revision's, for a same-run comparison).
struct RelayKind<'a> {
    name: &'a str,
    mode: &'a str,
    binary: Option<&'a str>,
    config: Option<&'a str>,
}

impl<'a> RelayKind<'a> {
    fn parse(kind: &'a str) -> RelayKind<'a> {
        let (kind, config) = kind.split_once('@').map_or((kind, None), |(k, c)| (k, Some(c)));
        let (kind, binary) = kind.split_once('=').map_or((kind, None), |(k, b)| (k, Some(b)));
        let (name, mode) = kind.split_once(':').unwrap_or((kind, "forward"));
        RelayKind {
            name,
            mode,
            binary,
            config,
        }
    }
}

/// A relay's name in tables: its `--relays` entry without the config
/// file, another build named by its file name
/// ("rtp-middlebox:forward=rtpmb-46ded79").
fn relay_label(kind: &str) -> String {
    let shown = kind.split('@').next().unwrap_or(kind);
    match RelayKind::parse(kind).binary {
        Some(binary) => {
            let file = std::path::Path::new(binary)
                .file_name()
                .map_or(binary.into(), |n| n.to_string_lossy());
            shown.replace(binary, &file)
        }
        None => shown.to_string(),
    }
}

/// Medians over rounds per relay, and each relay's ratio to the first.
fn print_medians(kinds: &[String], results: &mut [Vec<RunResult>]) {
    println!("medians of {} rounds:", results.first().map_or(0, Vec::len));
    // Wide enough for the longest label (another build's is its file name).
    let w = kinds.iter().map(|k| relay_label(k).len()).max().unwrap_or(0).max(24);
    println!(
        "{:<w$} {:>7} {:>8} {:>8} {:>10} {:>9} {:>9} {:>10} {:>8}",
        "relay", "loss%", "p50 us", "p99 us", "cpu us/pkt", "cpu ratio", "p99 ratio", "rss B/sess", "rss +%"
    );
    let mut first: Option<(f64, f64)> = None;
    for (kind, runs) in kinds.iter().zip(results.iter_mut()) {
        let col = |f: fn(&RunResult) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        let (loss, p50, p99, cpu, rss, growth) = (
            col(|r| r.loss_pct),
            col(|r| r.p50_us),
            col(|r| r.p99_us),
            col(|r| r.cpu_us_per_packet),
            col(|r| r.rss_per_session),
            col(|r| r.rss_growth_pct),
        );
        let (cpu0, p990) = *first.get_or_insert((cpu, p99));
        println!(
            "{:<w$} {:>7.3} {:>8.0} {:>8.0} {:>10.2} {:>9.2} {:>9.2} {:>10.0} {:>8.1}",
            relay_label(kind),
            loss,
            p50,
            p99,
            cpu,
            cpu / cpu0,
            p99 / p990,
            rss,
            growth
        );
    }
}

// ------------------------------------------------------------- naive relay

fn naive_relay(listen: SocketAddr, upstream: SocketAddr, workers: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listen = Arc::new(tokio::net::UdpSocket::bind(listen).await.unwrap());
        let sessions: Arc<Mutex<HashMap<SocketAddr, Arc<tokio::net::UdpSocket>>>> = Arc::default();
        let mut buf = vec![0u8; 2048];
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        loop {
            let (n, from) = tokio::select! {
                r = listen.recv_from(&mut buf) => match r { Ok(v) => v, Err(_) => continue },
                _ = term.recv() => return,
            };
            let existing = sessions.lock().unwrap().get(&from).cloned();
            let up = match existing {
                Some(s) => s,
                None => {
                    let s = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
                    s.connect(upstream).await.unwrap();
                    sessions.lock().unwrap().insert(from, s.clone());
                    let (s2, l2) = (s.clone(), listen.clone());
                    tokio::spawn(async move {
                        let mut b = vec![0u8; 2048];
                        while let Ok(n) = s2.recv(&mut b).await {
                            let _ = l2.send_to(&b[..n], from).await;
                        }
                    });
                    s
                }
            };
            let _ = up.send(&buf[..n]).await;
        }
    });
}

// --------------------------------------------------------------- DTLS-SRTP

/// One SRTP suite of a `dtls` run: the tool's endpoints offer only its
/// DTLS-SRTP profile (RFC 5764 §4.1.2), so the proxy's dimpl, which picks
/// from what the peer offers, negotiates it on both legs.
#[derive(Clone, Copy)]
struct DtlsSuite {
    name: &'static str,
    /// OpenSSL's name of the profile (`SSL_CTX_set_tlsext_use_srtp`).
    openssl: &'static str,
    suite: rtp_middlebox::srtp::CryptoSuite,
}

const DTLS_SUITES: [DtlsSuite; 3] = [
    DtlsSuite {
        name: "AES_128_GCM",
        openssl: "SRTP_AEAD_AES_128_GCM",
        suite: rtp_middlebox::srtp::CryptoSuite::AeadAes128Gcm,
    },
    DtlsSuite {
        name: "AES_CM_128_HMAC_SHA1_80",
        openssl: "SRTP_AES128_CM_SHA1_80",
        suite: rtp_middlebox::srtp::CryptoSuite::AesCm128HmacSha1_80,
    },
    DtlsSuite {
        name: "AES_256_GCM",
        openssl: "SRTP_AEAD_AES_256_GCM",
        suite: rtp_middlebox::srtp::CryptoSuite::AeadAes256Gcm,
    },
];

/// Datagrams in and out of one OpenSSL DTLS endpoint: OpenSSL reads one
/// datagram per read and writes one per write (its record layer packs a
/// flight into datagrams of at most the MTU it is given).
#[derive(Default, Debug)]
struct Datagrams {
    inbox: std::collections::VecDeque<Vec<u8>>,
    outbox: Vec<Vec<u8>>,
}

impl std::io::Read for Datagrams {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inbox.pop_front() {
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl std::io::Write for Datagrams {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.outbox.push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Handshake {
    Running(openssl::ssl::MidHandshakeSslStream<Datagrams>),
    Done(openssl::ssl::SslStream<Datagrams>),
    Failed(String),
}

/// A browser's or an SFU's DTLS-SRTP endpoint (OpenSSL, sans-IO): the
/// caller hands it datagrams and sends what it wants sent.
struct DtlsEnd {
    state: Handshake,
    client: bool,
    /// This endpoint's SRTP keys once the handshake is done.
    keys: Option<rtp_middlebox::dtls::LegKeys>,
}

impl DtlsEnd {
    /// A context offering only `suite`'s profile, with `identity`'s
    /// certificate; it asks for the peer's certificate (as WebRTC does) and
    /// takes any: the proxy's fingerprint check is what the run exercises.
    fn context(identity: &rtp_middlebox::dtls::DtlsIdentity, suite: DtlsSuite) -> openssl::ssl::SslContext {
        use openssl::ssl::{SslContextBuilder, SslMethod, SslOptions, SslVerifyMode};
        let cert = identity.dimpl_certificate();
        let mut b = SslContextBuilder::new(SslMethod::dtls()).unwrap();
        b.set_certificate(&openssl::x509::X509::from_der(&cert.certificate).unwrap())
            .unwrap();
        b.set_private_key(&openssl::pkey::PKey::private_key_from_pkcs8(&cert.private_key).unwrap())
            .unwrap();
        b.set_tlsext_use_srtp(suite.openssl).unwrap();
        b.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
        // The MTU is set per connection (the datagram "BIO" has none to query).
        b.set_options(SslOptions::NO_QUERY_MTU);
        b.build()
    }

    fn new(ctx: &openssl::ssl::SslContext, client: bool) -> DtlsEnd {
        let mut ssl = openssl::ssl::Ssl::new(ctx).unwrap();
        ssl.set_mtu(1200).unwrap();
        let r = if client {
            ssl.connect(Datagrams::default())
        } else {
            ssl.accept(Datagrams::default())
        };
        let mut end = DtlsEnd {
            state: Handshake::Failed(String::new()),
            client,
            keys: None,
        };
        end.settle(r);
        end
    }

    fn settle(&mut self, r: Result<openssl::ssl::SslStream<Datagrams>, openssl::ssl::HandshakeError<Datagrams>>) {
        self.state = match r {
            Ok(s) => {
                // RFC 5764 §4.2: 2 × (key + salt) from the exporter.
                let profile = s.ssl().selected_srtp_profile().map(|p| p.name().to_owned());
                let suite = DTLS_SUITES
                    .iter()
                    .find(|d| Some(d.openssl) == profile.as_deref())
                    .map(|d| d.suite);
                match suite {
                    Some(suite) => {
                        let mut m = vec![0u8; suite.key_material_len() * 2];
                        s.ssl()
                            .export_keying_material(&mut m, "EXTRACTOR-dtls_srtp", None)
                            .unwrap();
                        self.keys = rtp_middlebox::dtls::srtp_keys_from_export(&m, suite, self.client);
                        Handshake::Done(s)
                    }
                    None => Handshake::Failed(format!("no SRTP profile negotiated ({profile:?})")),
                }
            }
            Err(openssl::ssl::HandshakeError::WouldBlock(m)) => Handshake::Running(m),
            Err(e) => Handshake::Failed(e.to_string()),
        };
    }

    /// A datagram from the peer.
    fn feed(&mut self, datagram: &[u8]) {
        let state = std::mem::replace(&mut self.state, Handshake::Failed(String::new()));
        match state {
            Handshake::Running(mut m) => {
                m.get_mut().inbox.push_back(datagram.to_vec());
                let r = m.handshake();
                self.settle(r);
            }
            other => self.state = other,
        }
    }

    /// What to send to the peer.
    fn take_out(&mut self) -> Vec<Vec<u8>> {
        match &mut self.state {
            Handshake::Running(m) => std::mem::take(&mut m.get_mut().outbox),
            Handshake::Done(s) => std::mem::take(&mut s.get_mut().outbox),
            Handshake::Failed(_) => Vec::new(),
        }
    }

    fn connected(&self) -> bool {
        self.keys.is_some()
    }

    fn failure(&self) -> Option<&str> {
        match &self.state {
            Handshake::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// A minimal HTTP/1.1 POST of a JSON body (the relay's API on loopback);
/// returns status and body.
fn http_post(api: SocketAddr, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// The sink's side of one session: its DTLS endpoint (the relay's upstream
/// socket is its peer) and, once connected, the SRTP context it opens with.
struct DtlsSinkStream {
    end: DtlsEnd,
    open: Option<rtc_srtp::context::Context>,
}

/// One `dtls` run: a relay with `dtls = mode` (`pass` or `terminate`), K
/// streams set up (calls API, ICE check, both handshakes), then SRTP of
/// `payload` bytes at R packets/s each for S seconds.
struct DtlsRun {
    row: RunResult,
    /// Relay CPU (ns) from the first offer to the last connected endpoint.
    setup_cpu_ns: u64,
}

fn dtls_run(load: &Load, mode: &str, suite: DtlsSuite, payload: usize, dir: &std::path::Path) -> DtlsRun {
    use rtp_middlebox::dtls::DtlsIdentity;
    let streams = load.streams;
    let epoch = Instant::now();
    // The sink: one socket for every session's upstream socket, as an SFU's
    // one port with ICE-lite would be.
    let sink_addr = free_port();
    let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    raw.set_recv_buffer_size(32 << 20).unwrap();
    raw.bind(&sink_addr.into()).unwrap();
    let sink: UdpSocket = raw.into();
    sink.set_nonblocking(true).unwrap();
    let listen = free_port();
    let api = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = dir.join(format!("{mode}.toml"));
    std::fs::write(
        &config,
        format!(
            "[[relay]]\nlisten = \"{listen}\"\nupstream = \"{sink_addr}\"\nupstream_bind = \"127.0.0.1\"\n\
             rtcp = \"forward\"\ndtls = \"{mode}\"\n\
             [api]\nlisten = \"{api}\"\n\
             [limits]\nnew_sessions_per_prefix_per_sec = 0\n\
             [dtls]\nmax_handshakes = {}\n",
            (4 * streams).max(1024)
        ),
    )
    .unwrap();
    let child = Command::new(exe_dir().join("rtp-middlebox"))
        .args(["run", "--config"])
        .arg(&config)
        .args(["--workers", &load.workers.to_string(), "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start rtp-middlebox: {e} (build with `cargo build --release --examples --bins`)")
        });
    let relay = ChildGuard(child);
    let pid = relay.0.id();
    let up = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(api).is_err() {
        assert!(Instant::now() < up, "the relay's API did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss0 = rss_bytes(pid);

    // The endpoints: one certificate for the clients, one for the sink.
    let client_id = DtlsIdentity::generate().unwrap();
    let sink_id = DtlsIdentity::generate().unwrap();
    let client_ctx = DtlsEnd::context(&client_id, suite);
    let sink_ctx = DtlsEnd::context(&sink_id, suite);
    // Client sockets on fixed ports, so the raw sender (when allowed) can
    // send from the same addresses after the handshakes.
    let base_port = 20_000u16;
    let fixed: Option<Vec<UdpSocket>> = (0..streams)
        .map(|i| {
            let port = u16::try_from(usize::from(base_port) + i).ok()?;
            UdpSocket::bind(("127.0.0.1", port)).ok()
        })
        .collect();
    let clients: Vec<UdpSocket> =
        fixed.unwrap_or_else(|| (0..streams).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect());
    for c in &clients {
        c.connect(listen).unwrap();
        c.set_nonblocking(true).unwrap();
    }
    let mut ends: Vec<Option<DtlsEnd>> = (0..streams).map(|_| None).collect();
    let mut sinks: HashMap<SocketAddr, DtlsSinkStream> = HashMap::new();
    let mut buf = vec![0u8; 2048];

    // Set-up, at most `window` streams in flight: the endpoints have no
    // retransmission timers (OpenSSL's need its datagram BIO), so the
    // set-up stays well within socket buffers.
    let cpu0 = cpu_ns(pid);
    let window = 32usize;
    let mut next = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30 + streams as u64 / 10);
    let sink_pump = |sinks: &mut HashMap<SocketAddr, DtlsSinkStream>, buf: &mut [u8]| {
        while let Ok((n, from)) = sink.recv_from(buf) {
            // DTLS records only (RFC 7983 §7: first byte 20..=63).
            if !(20..=63).contains(&buf[0]) {
                continue;
            }
            let s = sinks.entry(from).or_insert_with(|| DtlsSinkStream {
                end: DtlsEnd::new(&sink_ctx, false),
                open: None,
            });
            s.end.feed(&buf[..n]);
            for d in s.end.take_out() {
                let _ = sink.send_to(&d, from);
            }
            if let (None, Some(k)) = (&s.open, &s.end.keys) {
                s.open = Some(rtp_middlebox::srtp::media_context(&k.peer_write).unwrap());
            }
        }
    };
    loop {
        let done = ends
            .iter()
            .filter(|e| e.as_ref().is_some_and(DtlsEnd::connected))
            .count();
        let sinks_done = sinks.values().filter(|s| s.open.is_some()).count();
        if done == streams && sinks_done == streams {
            break;
        }
        if Instant::now() > deadline {
            let failed: Vec<&str> = ends.iter().flatten().filter_map(DtlsEnd::failure).take(3).collect();
            panic!("dtls {mode}: {done}/{streams} clients and {sinks_done} sink ends connected in time; failures: {failed:?}");
        }
        // Start new streams while fewer than `window` are handshaking.
        let started = next;
        while next < streams && next - done.min(next) < window && next < started + 8 {
            let i = next;
            next += 1;
            let (cu, uu) = (format!("c{i}"), format!("u{i}"));
            if mode == "terminate" {
                let port = clients[i].local_addr().unwrap().port();
                let offer = webrtc_sdp(
                    &cu,
                    &client_id.fingerprint_sdp(),
                    "actpass",
                    SocketAddr::from(([127, 0, 0, 1], port)),
                    false,
                );
                let (s, b) = http_post(
                    api,
                    &format!("/v1/calls/call-{i}/offer"),
                    &serde_json::json!({"sdp": offer, "from": "client"}).to_string(),
                );
                assert_eq!(s, 200, "offer: {b}");
                let answer = webrtc_sdp(&uu, &sink_id.fingerprint_sdp(), "passive", sink_addr, false);
                let (s, b) = http_post(
                    api,
                    &format!("/v1/calls/call-{i}/answer"),
                    &serde_json::json!({"sdp": answer, "from": "upstream"}).to_string(),
                );
                assert_eq!(s, 200, "answer: {b}");
            }
            // ICE: the client's binding request carries "upstream:client"
            // ufrags (RFC 8445 §7.2.2), which binds the call to the session.
            let mut check = Vec::new();
            rtp_middlebox::wire::stun::StunWriter::new(
                &mut check,
                rtp_middlebox::wire::stun::StunClass::Request,
                rtp_middlebox::wire::stun::METHOD_BINDING,
                [i as u8; 12],
            )
            .username(format!("{uu}:{cu}").as_bytes());
            let _ = clients[i].send(&check);
            // The client is the DTLS client (it answered actpass with active).
            let mut end = DtlsEnd::new(&client_ctx, true);
            for d in end.take_out() {
                let _ = clients[i].send(&d);
            }
            ends[i] = Some(end);
        }
        let mut moved = false;
        for i in 0..next {
            let Some(end) = ends[i].as_mut() else { continue };
            while let Ok(n) = clients[i].recv(&mut buf) {
                moved = true;
                if (20..=63).contains(&buf[0]) {
                    end.feed(&buf[..n]);
                    for d in end.take_out() {
                        let _ = clients[i].send(&d);
                    }
                }
            }
        }
        sink_pump(&mut sinks, &mut buf);
        if !moved {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let setup_cpu_ns = cpu_ns(pid) - cpu0;
    // Each side negotiated the one profile offered.
    let negotiated = ends
        .iter()
        .flatten()
        .filter_map(|e| e.keys.as_ref())
        .chain(sinks.values().filter_map(|s| s.end.keys.as_ref()))
        .all(|k| k.own_write.suite() == suite.suite);
    assert!(
        negotiated,
        "dtls {mode}: a leg negotiated another profile than {}",
        suite.name
    );
    std::thread::sleep(Duration::from_millis(200));
    let rss_per_session = rss_bytes(pid).saturating_sub(rss0) as f64 / streams as f64;

    // Media: the sink opens every packet with its leg's keys in a thread
    // of its own; the generator protects with each client's keys.
    let received = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let sink_thread = {
        let (received, bad, stop, latencies) = (received.clone(), bad.clone(), stop.clone(), latencies.clone());
        let mut contexts: HashMap<SocketAddr, rtc_srtp::context::Context> =
            sinks.into_iter().filter_map(|(a, s)| Some((a, s.open?))).collect();
        sink.set_nonblocking(false).unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        std::thread::spawn(move || {
            // Batched receive (recvmmsg, GRO segments split by stride), so
            // the sink keeps up on a shared machine.
            let state = quinn_udp::UdpSocketState::new((&sink).into()).unwrap();
            let mut bufs = vec![[0u8; 64 * 1024]; 8];
            let mut meta = [quinn_udp::RecvMeta::default(); 8];
            let mut local = Vec::with_capacity(1 << 16);
            while !stop.load(Ordering::Relaxed) {
                let mut slices: Vec<std::io::IoSliceMut> =
                    bufs.iter_mut().map(|b| std::io::IoSliceMut::new(&mut b[..])).collect();
                let Ok(n) = state.recv((&sink).into(), &mut slices, &mut meta) else {
                    continue;
                };
                for (m, b) in meta[..n].iter().zip(&bufs) {
                    // An IPv4 socket may report IPv4-mapped addresses.
                    let from = match m.addr {
                        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
                            Some(ip) => SocketAddr::new(ip.into(), a.port()),
                            None => m.addr,
                        },
                        a => a,
                    };
                    for d in b[..m.len].chunks(m.stride.max(1)) {
                        // SRTP only (RFC 7983 §7: 128..=191; not RTCP 192..=223).
                        if d.len() < 2 || !(128..=191).contains(&d[0]) || (192..=223).contains(&d[1]) {
                            continue;
                        }
                        match contexts.get_mut(&from).map(|c| c.decrypt_rtp(d)) {
                            Some(Ok(plain)) if plain.len() >= 20 => {
                                received.fetch_add(1, Ordering::Relaxed);
                                let sent = u64::from_be_bytes(plain[12..20].try_into().unwrap());
                                let now = epoch.elapsed().as_nanos() as u64;
                                local.push((now.saturating_sub(sent) / 1000) as u32);
                            }
                            _ => {
                                bad.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
            latencies.lock().unwrap().append(&mut local);
        })
    };
    let mut protect: Vec<rtc_srtp::context::Context> = ends
        .iter()
        .map(|e| rtp_middlebox::srtp::media_context(&e.as_ref().unwrap().keys.as_ref().unwrap().own_write).unwrap())
        .collect();
    // The raw sender when allowed and the client ports are the fixed ones;
    // otherwise the clients' own sockets (a syscall per packet).
    let mut senders = Senders::new(listen, 0);
    match &mut senders {
        Senders::Raw { base_port: b, .. } if clients[0].local_addr().unwrap().port() == base_port => {
            *b = base_port;
            // The handshake sockets stay bound: nothing else takes the ports.
        }
        _ => senders = Senders::Sockets(clients.iter().map(|c| c.try_clone().unwrap()).collect()),
    }
    let cpu0 = cpu_ns(pid);
    let mut pacer = Pacer::new(streams, load.rate, load.secs);
    let mut due = Vec::with_capacity(32);
    let mut plain = Vec::with_capacity(12 + payload);
    let mut wires: Vec<Vec<u8>> = Vec::with_capacity(32);
    while pacer.next_round() {
        while pacer.due(&mut due) {
            wires.clear();
            for &(i, s) in &due {
                let header = RtpHeader {
                    payload_type: 111,
                    seq: SeqNo(s),
                    timestamp: RtpTs(u32::from(s) * 960),
                    ssrc: Ssrc(SSRC_BASE + i as u32),
                    ..RtpHeader::default()
                };
                let mut body = vec![0u8; payload];
                body[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
                plain.clear();
                write_rtp(&mut plain, &header, &body);
                wires.push(protect[i].encrypt_rtp(&plain).unwrap().to_vec());
            }
            let batch: Vec<(usize, &[u8])> = due.iter().zip(&wires).map(|(&(i, _), w)| (i, &w[..])).collect();
            senders.send(&batch);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    std::thread::sleep(Duration::from_millis(300));
    let cpu = cpu_ns(pid) - cpu0;
    let wall = pacer.start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = sink_thread.join();
    drop(senders);
    drop(clients);
    drop(relay);
    let delivered = received.load(Ordering::Relaxed);
    let undecryptable = bad.load(Ordering::Relaxed);
    // Every packet that arrives opens under the sink's keys: with
    // `terminate` the relay re-protected it under the upstream leg's.
    assert!(
        undecryptable == 0 && delivered > 0,
        "dtls {mode}: {delivered} packets opened at the sink, {undecryptable} did not"
    );
    let lat = std::mem::take(&mut *latencies.lock().unwrap());
    let short = match suite.suite {
        rtp_middlebox::srtp::CryptoSuite::AeadAes128Gcm => "gcm128",
        rtp_middlebox::srtp::CryptoSuite::AeadAes256Gcm => "gcm256",
        _ => "cm80",
    };
    let measured = Measured {
        offered_pps: pacer.total_rate,
        sent: pacer.sent,
        delivered,
        cpu_ns: cpu,
        wall,
    };
    let kind = format!("{} {short} {payload}B", if mode == "pass" { "pass" } else { "term" });
    let row = RunResult {
        rss_per_session,
        ..RunResult::new(kind, &measured, lat)
    };
    print_row(&row);
    DtlsRun { row, setup_cpu_ns }
}

/// `relay_load dtls [--streams K] [--rate R] [--seconds S] [--workers W]
/// [--rounds N] [--sizes 160,1200] [--suites AES_128_GCM,AES_CM_128_HMAC_SHA1_80,AES_256_GCM]`:
/// the cost of terminating DTLS-SRTP against passing it
/// through, in one run: for each suite and payload size, alternating
/// rounds of `pass` and `terminate` with the same streams and rate; medians
/// of relay CPU per delivered packet, and the relay CPU of the set-up phase
/// (calls API, ICE check, two handshakes per call when terminating).
fn dtls_cost(args: &[String]) {
    let load = Load::from_args(args, 200, 8.0);
    let rounds = arg(args, "--rounds", 3usize);
    let sizes: Vec<usize> = arg_text(args, "--sizes")
        .unwrap_or("160,1200".into())
        .split(',')
        .map(|s| s.trim().parse().expect("--sizes: payload bytes, comma-separated"))
        .collect();
    let suites: Vec<DtlsSuite> = arg_text(args, "--suites")
        .unwrap_or("AES_128_GCM,AES_CM_128_HMAC_SHA1_80".into())
        .split(',')
        .map(|n| {
            *DTLS_SUITES
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(n.trim()))
                .unwrap_or_else(|| panic!("--suites: one of AES_128_GCM, AES_CM_128_HMAC_SHA1_80, AES_256_GCM"))
        })
        .collect();
    assert!(
        sizes.iter().all(|&s| (8..=1400).contains(&s)),
        "--sizes: 8..=1400 bytes"
    );
    let dir = std::env::temp_dir().join(format!("relay-load-dtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("dtls: {load}, {rounds} rounds; SRTP payloads {sizes:?} B");
    print_header();
    // (suite, size) → per-mode samples of CPU per packet; set-up CPU per call.
    let mut cpu: HashMap<(usize, usize, &str), Vec<f64>> = HashMap::new();
    let mut setup: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 0..rounds {
        for (si, suite) in suites.iter().enumerate() {
            for &size in &sizes {
                // Alternate which mode goes first, so drift in the machine's
                // load does not favour one.
                let order = if round % 2 == 0 {
                    ["pass", "terminate"]
                } else {
                    ["terminate", "pass"]
                };
                for mode in order {
                    let r = dtls_run(&load, mode, *suite, size, &dir);
                    cpu.entry((si, size, mode)).or_default().push(r.row.cpu_us_per_packet);
                    setup
                        .entry(mode)
                        .or_default()
                        .push(r.setup_cpu_ns as f64 / load.streams as f64);
                }
            }
        }
    }
    println!();
    println!(
        "{:<26} {:>7} {:>14} {:>14} {:>9}",
        "suite", "payload", "pass us/pkt", "term us/pkt", "term/pass"
    );
    for (si, suite) in suites.iter().enumerate() {
        for &size in &sizes {
            let p = median(cpu.get_mut(&(si, size, "pass")).unwrap());
            let t = median(cpu.get_mut(&(si, size, "terminate")).unwrap());
            println!(
                "{:<26} {:>5} B {:>14.2} {:>14.2} {:>8.2}x ({:+.1}%, medians of {rounds})",
                suite.name,
                size,
                p,
                t,
                t / p,
                100.0 * (t / p - 1.0)
            );
        }
    }
    let p = median(setup.get_mut("pass").unwrap());
    let t = median(setup.get_mut("terminate").unwrap());
    // The relay's CPU for one call's set-up when terminating, less what the
    // same set-up costs it passing through (forwarding the records and the
    // ICE check): the two handshakes and the calls API.
    let extra = (t - p).max(1.0);
    println!(
        "set-up: relay CPU per call {:.2} ms terminating (2 handshakes + 2 API calls + ICE check), {:.2} ms passing through",
        t / 1e6,
        p / 1e6
    );
    println!(
        "handshakes per second on one core: {:.0} (2 per call / {:.2} ms of relay CPU per terminated call beyond pass-through; {:.0} counting all of it)",
        2e9 / extra,
        extra / 1e6,
        2e9 / t
    );
    let _ = std::fs::remove_dir_all(&dir);
}
