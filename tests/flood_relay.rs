//! A flood on loopback against the relay as an operator runs it (its own
//! process): while 200 legitimate streams flow, 10 000 spoofed source ports
//! send 100 000 datagrams, a third of them malformed or truncated RTP,
//! RTCP, STUN and DTLS. Afterwards every legitimate stream arrived whole at
//! the sink, the relay's memory stayed bounded, and every hostile datagram
//! is accounted for: dropped with a reason, or forwarded in one of the few
//! sessions the per-prefix rate admitted (and counted at the sink).

// Real processes and sockets: waiting on real time is the point.
#![allow(clippy::disallowed_methods)]

mod common;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LEGIT: usize = 200;
const LEGIT_SSRC: u32 = 0x1e61_0000;
const HOSTILE_PORTS: usize = 10_000;
const PER_PORT: usize = 10;

fn rtp(seq: u16, ssrc: u32, len: usize) -> Vec<u8> {
    common::pcmu_filled(seq, ssrc, len - 12, 0xd5)
}

/// One hostile datagram: valid RTP, or malformed/truncated protocol bytes.
fn hostile(i: usize) -> Vec<u8> {
    match i % 10 {
        0..=5 => rtp(i as u16, 0x0bad_0000 | (i as u32 & 0xffff), 60),
        6 => vec![22, 0xfe, 0xfd, 0x00],               // truncated DTLS record
        7 => vec![0x80, 0x00, 0x01],                   // truncated RTP
        8 => vec![0x81, 0xc9, 0x00, 0x09, 1, 2, 3, 4], // RTCP length overrun
        _ => vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42, 7], // truncated STUN
    }
}

/// The test's own sink must not be where datagrams are lost: as root, a
/// receive buffer past `net.core.rmem_max` (SO_RCVBUFFORCE).
fn force_receive_buffer(s: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on our open socket with a c_int and its size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::addr_of!(bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Kernel UDP receive-buffer drops, machine-wide (/proc/net/snmp).
fn rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors").unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

fn counters(api: SocketAddr) -> serde_json::Value {
    serde_json::from_str(common::get(api, "/v1/counters").body()).unwrap()
}

fn sum(c: &serde_json::Value, f: impl Fn(&serde_json::Value) -> u64) -> u64 {
    c["workers"].as_array().unwrap().iter().map(f).sum()
}

#[test]
fn established_streams_survive_a_spoofed_flood_and_every_datagram_is_accounted_for() {
    // The SFU: counts per SSRC, answers the first datagram of each flow.
    let sink = common::loopback();
    force_receive_buffer(&sink, 16 << 20);
    let sink_addr = sink.local_addr().unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let counts: Arc<Mutex<HashMap<u32, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sink_thread = {
        let (counts, stop) = (counts.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut answered = std::collections::HashSet::new();
            let mut other = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = sink.recv_from(&mut buf) else {
                    continue;
                };
                if n >= 12 && buf[0] >> 6 == 2 && (buf[1] & 0x7f) < 64 {
                    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                    *counts.lock().unwrap().entry(ssrc).or_default() += 1;
                } else {
                    other += 1;
                }
                if answered.insert(from) {
                    let _ = sink.send_to(&buf[..n.min(12)], from);
                }
            }
            other
        })
    };

    let dir = common::scratch_dir("flood");
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        common::relay_toml(
            sink_addr,
            "rtcp = \"forward\"\nupstream_ports = \"20000-59999\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [limits]\nnew_sessions_per_prefix_per_sec = 100\n",
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (mut child, mut lines, listen) = common::spawn_run(&["--workers", "2", "--quiet", "--config", config]);
    let api_line = lines.next().unwrap().unwrap();
    let api: SocketAddr = api_line
        .trim_start_matches("api listening on http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let pid = child.id();
    // Keep draining the relay's stderr so it can never block on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});

    // Legitimate clients: sessions opened within the prefix's rate.
    let legit: Vec<UdpSocket> = (0..LEGIT).map(|_| common::loopback()).collect();
    let mut sent = vec![0u64; LEGIT];
    for (i, c) in legit.iter().enumerate() {
        c.send_to(&rtp(0, LEGIT_SSRC + i as u32, 172), listen).unwrap();
        sent[i] += 1;
        std::thread::sleep(Duration::from_millis(12));
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = rss_kib(pid);
    let drops_before = rcvbuf_errors();
    let base = counters(api);
    let received_before = sum(&base, |w| w["io"]["receivedClient"].as_u64().unwrap());

    // 6 s of legitimate media at 50 packets/s per stream, and the flood in
    // the middle: 10 000 ports × 10 datagrams over ~3 s.
    let flood = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let mut n = 0usize;
        let started = Instant::now();
        for chunk in 0..(HOSTILE_PORTS / 500) {
            let socks: Vec<UdpSocket> = (0..500).map(|_| common::loopback()).collect();
            for k in 0..PER_PORT {
                for s in &socks {
                    s.send_to(&hostile(n + k), listen).unwrap();
                    n += 1;
                }
            }
            // Pace to ~35 000 datagrams a second.
            let due = Duration::from_millis(150 * (chunk as u64 + 1));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        n
    });
    let start = Instant::now();
    for round in 1..300u16 {
        for (i, c) in legit.iter().enumerate() {
            c.send_to(&rtp(round, LEGIT_SSRC + i as u32, 172), listen).unwrap();
            sent[i] += 1;
        }
        let due = Duration::from_millis(20 * u64::from(round));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let hostile_sent = flood.join().unwrap() as u64;
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_kib(pid);
    let kernel_drops = rcvbuf_errors() - drops_before;
    let c = counters(api);
    stop.store(true, Ordering::Relaxed);
    let sink_other = sink_thread.join().unwrap();
    common::terminate(&child);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let counts = counts.lock().unwrap();
    let legit_sent: u64 = sent.iter().sum();
    let missing: Vec<(usize, u64, u64)> = (0..LEGIT)
        .map(|i| (i, sent[i], counts.get(&(LEGIT_SSRC + i as u32)).copied().unwrap_or(0)))
        .filter(|(_, s, got)| s != got)
        .collect();
    let io = |f: &str| sum(&c, |w| w["io"][f].as_u64().unwrap());
    let drops = |c: &serde_json::Value| {
        sum(c, |w| {
            w["engine"]["drops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .sum()
        })
    };
    let (engine_drops, base_drops) = (drops(&c), drops(&base));
    let received = io("receivedClient") - received_before;
    let no_session = io("droppedNoSession") - sum(&base, |w| w["io"]["droppedNoSession"].as_u64().unwrap());
    let hostile_forwarded: u64 = counts
        .iter()
        .filter(|(ssrc, _)| *ssrc >> 16 == 0x0bad)
        .map(|(_, n)| n)
        .sum();
    let rate_limited = sum(&c, |w| w["engine"]["sessions_rate_limited"].as_u64().unwrap());
    println!(
        "flood: {hostile_sent} hostile datagrams from {HOSTILE_PORTS} ports; legit {legit_sent} sent over {LEGIT} streams; \
         relay received {received} (kernel receive-buffer drops {kernel_drops}); hostile: {no_session} dropped without a \
         session ({rate_limited} session openings refused by the prefix rate), {} dropped by reason, {hostile_forwarded} \
         forwarded in admitted sessions (+{sink_other} non-RTP); relay RSS {rss_before} → {rss_after} KiB",
        engine_drops - base_drops
    );
    assert!(
        missing.is_empty(),
        "legitimate streams lost packets (index, sent, got): {:?}",
        &missing[..missing.len().min(10)]
    );
    assert_eq!(
        kernel_drops, 0,
        "the kernel dropped datagrams: the accounting below would not close"
    );
    // The first datagram of each legitimate stream came before the baseline.
    assert_eq!(
        received,
        legit_sent - LEGIT as u64 + hostile_sent,
        "every datagram reached the relay"
    );
    // Every hostile datagram: dropped with a reason (the engine's verdict;
    // those it opened no session for are also the worker's
    // `droppedNoSession`), or forwarded (and seen at the sink, RTP or not).
    assert_eq!(
        (engine_drops - base_drops) + hostile_forwarded + sink_other,
        hostile_sent,
        "hostile datagrams unaccounted for"
    );
    assert!(no_session <= engine_drops - base_drops);
    assert!(rate_limited > 0);
    assert!(rss_after < 96 * 1024, "relay RSS {rss_after} KiB");
}
