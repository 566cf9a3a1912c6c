//! A real Prometheus server (Debian package `prometheus`) scrapes the proxy
//! while the demo's call flows through the seeded impairment; PromQL over
//! Prometheus's HTTP API must show the packet rates, the drop counters and
//! RTT/jitter/loss distributions consistent with what was injected.
//!
//! Skips when `prometheus` is not installed, unless REQUIRE_PROMETHEUS=1
//! (set by scripts/test.sh, whose setup installs it).

// Real processes and sockets: waiting on real time is the point.
#![allow(clippy::disallowed_methods)]

mod common;
use rtp_middlebox::engine::RtcpMode;
use rtp_middlebox::sim::demo::{self, DemoOptions, Display};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn http_get(addr: SocketAddr, path_and_query: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    // Prometheus answers small bodies plainly; decode chunked if used.
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.push_str(after.get(..n)?);
            rest = after.get(n + 2..)?;
        }
        return Some(out);
    }
    Some(body.to_string())
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A PromQL instant query's single value.
fn query(prom: SocketAddr, q: &str) -> Option<f64> {
    let body = http_get(prom, &format!("/api/v1/query?query={}", encode(q)))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    let first = result.first()?;
    first["value"][1].as_str()?.parse().ok()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn prometheus_scrapes_rates_drops_and_quality_distributions() {
    if Command::new("prometheus").arg("--version").output().is_err() {
        common::missing_program(
            "PROMETHEUS",
            "`prometheus` is not installed",
            "install with scripts/setup.sh (Debian package prometheus)",
        );
        return;
    }
    // The demo's call: 10 % random loss each way on the client leg,
    // 20 ms ± 5 ms; 5 ms upstream.
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let opts = DemoOptions {
        seconds: None,
        rtcp: RtcpMode::Auto,
        loss: 0.10,
        burst: false,
        display: Display::Off,
        ready: Some(ready_tx),
        ..Default::default()
    };
    let demo_stop = stop.clone();
    let demo = std::thread::spawn(move || demo::run(&opts, demo_stop, &mut std::io::sink()));
    let addrs = ready_rx.recv_timeout(Duration::from_secs(10)).expect("demo started");

    let dir = common::scratch_dir("prometheus");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: rtp-middlebox\n    static_configs:\n      - targets: ['{}']\n",
            addrs.api
        ),
    )
    .unwrap();
    let prom: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _server = Server(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={prom}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // 25 truncated RTP datagrams from a stray source: dropped and counted.
    let stray = common::loopback();
    for _ in 0..25 {
        stray.send_to(&[0x80, 0x00, 0x01], addrs.proxy).unwrap();
    }

    // Let Prometheus collect ~15 s of the call.
    let deadline = Instant::now() + Duration::from_secs(60);
    while query(prom, "up{job=\"rtp-middlebox\"}") != Some(1.0) {
        assert!(Instant::now() < deadline, "Prometheus never scraped the proxy");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(15));

    let q = |expr: &str| query(prom, expr).unwrap_or_else(|| panic!("no result for {expr}"));
    // The browser sends 50 audio + 30 video packets/s; 10 % are lost before
    // the proxy, so ~72/s arrive.
    let rate = q("sum(rate(rtpmb_packets_total{direction=\"from_client\",kind=\"rtp\"}[10s]))");
    assert!((55.0..90.0).contains(&rate), "client RTP rate {rate}/s");
    let upstream_rate = q("sum(rate(rtpmb_packets_total{direction=\"from_upstream\",kind=\"rtp\"}[10s]))");
    assert!(
        (70.0..90.0).contains(&upstream_rate),
        "upstream RTP rate {upstream_rate}/s"
    );
    let dropped = q("sum(rtpmb_dropped_packets_total)");
    assert_eq!(dropped, 25.0, "drop counters");
    // RTT per leg: client leg 40 ms injected, upstream leg 10 ms (STUN).
    let client_rtt =
        q("histogram_quantile(0.5, sum by (le) (rtpmb_stream_rtt_seconds_bucket{leg=\"client\",method=\"sr_rr\"}))");
    assert!(
        (0.025..0.06).contains(&client_rtt),
        "client leg RTT median {client_rtt}"
    );
    let upstream_rtt =
        q("sum(rtpmb_stream_rtt_seconds_sum{leg=\"upstream\",method=\"stun\"}) / sum(rtpmb_stream_rtt_seconds_count{leg=\"upstream\",method=\"stun\"})");
    assert!(
        (0.008..0.014).contains(&upstream_rtt),
        "upstream leg STUN RTT mean {upstream_rtt}"
    );
    // Loss: the browser's two streams lose 10 %, the SFU's none: the
    // per-stream interval fraction averages ~5 %.
    let fraction = q("sum(rtpmb_stream_fraction_lost_sum) / sum(rtpmb_stream_fraction_lost_count)");
    assert!(
        (0.025..0.08).contains(&fraction),
        "mean interval fraction lost {fraction}"
    );
    // Jitter: ±5 ms uniform gives ~3.3 ms on the browser's streams; the
    // SFU's (no delay variation) stay under 1 ms.
    let worst_jitter = q("histogram_quantile(0.9, sum by (le) (rtpmb_stream_jitter_seconds_bucket))");
    assert!((0.0015..0.006).contains(&worst_jitter), "jitter p90 {worst_jitter}");
    let generated = q("sum(rtpmb_rtcp_reports_generated_total{mode=\"auto\"})");
    assert!(generated > 0.0, "no generated reports counted");
    eprintln!(
        "PromQL: client RTP {rate:.1}/s, upstream RTP {upstream_rate:.1}/s, dropped {dropped}, \
         client RTT p50 {:.1} ms, upstream STUN RTT mean {:.1} ms, mean fraction lost {fraction:.3}, \
         jitter p90 {:.2} ms, generated reports {generated}",
        client_rtt * 1e3,
        upstream_rtt * 1e3,
        worst_jitter * 1e3
    );

    stop.store(true, Ordering::Relaxed);
    let summary = demo.join().unwrap().unwrap();
    assert!(summary.streams.iter().all(|s| s.proxy_packets > 0));
    let _ = std::fs::remove_dir_all(&dir);
}
