//! The `run` process as operators drive it, with real sockets and signals:
//! SIGHUP reloads relay rules without dropping live sessions (and keeps the
//! running config when the new one is bad), SIGTERM drains with final
//! statistics and exits 0 within a bound even with a stuck stream
//! subscriber, `health` and `--check-config` answer as documented.

// Real processes and sockets: waiting on real time is the point.
#![allow(clippy::disallowed_methods)]

mod common;
use common::{get, loopback, pcmu, BIN};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn config(upstream: SocketAddr, mode: &str) -> String {
    format!(
        "[[relay]]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\nrtcp = \"{mode}\"\nupstream_bind = \"127.0.0.1\"\n\
         [api]\nlisten = \"127.0.0.1:0\"\nstream_interval_ms = 100\n"
    )
}

struct Proxy {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    listen: SocketAddr,
    api: SocketAddr,
}

impl Proxy {
    fn start(config_path: &std::path::Path) -> Proxy {
        let mut child = Command::new(BIN)
            .args(["run", "--workers", "1", "--config"])
            .arg(config_path)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut p = Proxy {
            child,
            lines,
            log: Vec::new(),
            listen: "0.0.0.0:0".parse().unwrap(),
            api: "0.0.0.0:0".parse().unwrap(),
        };
        p.listen = p.address_after("relay listening on ", ' ');
        p.api = p.address_after("api listening on http://", '/');
        p
    }

    /// Waits for a stderr line starting with `prefix`: the address after
    /// it, up to `end`.
    fn address_after(&mut self, prefix: &str, end: char) -> SocketAddr {
        let line = self.wait_for(prefix);
        line[prefix.len()..].split(end).next().unwrap().parse().unwrap()
    }

    /// Waits for a stderr line containing `needle` (10 s at most).
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; stderr so far:\n{}", self.log.join("\n")),
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `n` packets and returns how many arrived at `sink`.
fn send_and_count(client: &UdpSocket, to: SocketAddr, sink: &UdpSocket, seq0: u16, n: u16, ssrc: u32) -> usize {
    for seq in seq0..seq0 + n {
        client.send_to(&pcmu(seq, ssrc), to).unwrap();
    }
    sink.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while got < n as usize {
        match sink.recv_from(&mut buf) {
            Ok(_) => got += 1,
            Err(_) => break,
        }
    }
    got
}

#[test]
fn sighup_reloads_without_dropping_sessions_and_sigterm_drains() {
    let dir = common::scratch_dir("lifecycle");
    let path = dir.join("relay.toml");
    let sfu_a = loopback();
    let sfu_b = loopback();
    std::fs::write(&path, config(sfu_a.local_addr().unwrap(), "forward")).unwrap();
    let mut proxy = Proxy::start(&path);

    let c1 = loopback();
    assert_eq!(send_and_count(&c1, proxy.listen, &sfu_a, 0, 50, 0xc1), 50);

    // Reload: new sessions go to SFU B in terminate mode; c1's session stays on A.
    std::fs::write(&path, config(sfu_b.local_addr().unwrap(), "terminate")).unwrap();
    proxy.signal(libc::SIGHUP);
    proxy.wait_for("SIGHUP: configuration reloaded");
    assert_eq!(
        send_and_count(&c1, proxy.listen, &sfu_a, 50, 50, 0xc1),
        50,
        "live session moved"
    );
    let c2 = loopback();
    assert_eq!(
        send_and_count(&c2, proxy.listen, &sfu_b, 0, 20, 0xc2),
        20,
        "new session not on B"
    );

    // Statistics continued across the reload: 100 packets on c1's stream.
    let sessions = get(proxy.api, "/v1/sessions").json();
    let id = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ssrcs"]["client"][0] == 0xc1)
        .unwrap_or_else(|| panic!("{sessions:#}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stats = get(proxy.api, &format!("/v1/sessions/{id}/stats")).json();
    let inbound = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "inbound-rtp" && o["ssrc"] == 0xc1)
        .unwrap_or_else(|| panic!("{stats:#}"));
    assert_eq!(inbound["packetsReceived"], 100, "{inbound:#}");

    // A bad config is refused; the running one stays.
    std::fs::write(&path, "[[relay]]\nlisten = \"127.0.0.1:0\"\nupstream = \"nonsense\"\n").unwrap();
    proxy.signal(libc::SIGHUP);
    let line = proxy.wait_for("SIGHUP: configuration not reloaded");
    assert!(line.contains("upstream"), "{line}");
    assert_eq!(send_and_count(&c2, proxy.listen, &sfu_b, 20, 20, 0xc2), 20);

    // Changing what needs a rebind is refused with a reason.
    let mut moved = config(sfu_b.local_addr().unwrap(), "auto");
    moved = moved.replace("upstream_bind = \"127.0.0.1\"", "upstream_bind = \"127.0.0.2\"");
    std::fs::write(&path, moved).unwrap();
    proxy.signal(libc::SIGHUP);
    let line = proxy.wait_for("SIGHUP: configuration not reloaded");
    assert!(line.contains("upstream_bind changed: restart"), "{line}");

    // `health` against the live API.
    let status = Command::new(BIN)
        .args(["health", "--api", &proxy.api.to_string()])
        .output()
        .unwrap();
    common::assert_success(&status, "health");

    // A stats-stream subscriber that never reads.
    let mut stuck = TcpStream::connect(proxy.api).unwrap();
    write!(stuck, "GET /v1/stream HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.api).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let asked = Instant::now();
    proxy.signal(libc::SIGTERM);
    proxy.wait_for("draining: no new sessions");
    // Final statistics of c1's session: all 100 packets across the reload.
    let c1_final = proxy.wait_for("ssrc=0x000000c1");
    assert!(
        c1_final.contains("closed (shutdown)") && c1_final.contains("recv=100 lost=0"),
        "{c1_final}"
    );
    proxy.wait_for("closed 2 sessions");
    let status = loop {
        if let Some(s) = proxy.child.try_wait().unwrap() {
            break s;
        }
        assert!(asked.elapsed() < Duration::from_secs(10), "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn health_fails_when_nothing_listens() {
    let port = loopback().local_addr().unwrap().port();
    let out = common::run_bin(&["health", "--api", &format!("127.0.0.1:{port}"), "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rtp-middlebox health"));
}

#[test]
fn check_config_accepts_the_examples_and_names_the_bad_key() {
    for example in [
        "config/default.toml",
        "config/sfu-front.toml",
        "config/sip-trunk.toml",
        "config/webrtc-dtls.toml",
    ] {
        let out = common::run_bin(&["run", "--check-config", "--config", example]);
        common::assert_success(&out, example);
    }
    let dir = common::scratch_dir("check");
    for (text, key) in [
        ("[metrics]\ninterval_secs = 0\n", "metrics.interval_secs"),
        (
            "[collector]\notlp_endpoint = \"https://x\"\n",
            "collector.otlp_endpoint",
        ),
        ("[limits]\nmax_sesions = 3\n", "max_sesions"),
        (
            "[[relay]]\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:9\"\ndtls = \"terminate\"\n\
             listen_rtcp = \"127.0.0.1:0\"\nupstream_rtcp = \"127.0.0.1:10\"\n",
            "relay[0].dtls",
        ),
        (
            "[[relay]]\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:9\"\ndtls = \"terminate\"\n\
             [dtls]\ncertificate = \"/nonexistent/cert.pem\"\nprivate_key = \"/nonexistent/key.pem\"\n",
            "/nonexistent/cert.pem",
        ),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = common::run_bin(&["run", "--check-config", "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{text}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
