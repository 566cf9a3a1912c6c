//! The `rtp-middlebox analyze` command as users run it: output formats,
//! clock-rate options, and clear errors (exit code 2, no panic) on bad input.

mod common;
use rtp_middlebox::wire::Ssrc;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn capture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gst-pcmu-opus-vp8.pcap")
}

fn run(args: &[&str], file: &Path) -> Output {
    Command::new(common::BIN)
        .arg("analyze")
        .arg(file)
        .args(args)
        .output()
        .unwrap()
}

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("rtp-middlebox-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The stream of payload type `pt` in `analyze --format json` output.
fn stream_of_type(out: &Output, pt: u8) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["payloadType"] == pt)
        .unwrap()
        .clone()
}

fn assert_clean_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn json_has_the_pinned_fields() {
    let out = run(&["--format", "json"], &capture());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 3);
    for s in streams {
        for key in [
            "ssrc",
            "src",
            "dst",
            "payloadType",
            "clockRate",
            "packetsReceived",
            "packetsExpected",
            "packetsLost",
            "duplicates",
            "outOfOrder",
            "jitter",
            "maxJitter",
            "meanJitter",
        ] {
            assert!(s.get(key).is_some(), "missing {key} in {s}");
        }
    }
    let pcmu = streams.iter().find(|s| s["payloadType"] == 0).unwrap();
    assert_eq!(pcmu["clockRate"], 8000);
    assert!(pcmu["jitter"].as_f64().unwrap() > 0.0);
    // Call quality: 22 of 500 PCMU packets lost (4.4 %) rates G.711+PLC at
    // R ≈ 77, MOS-LQ ≈ 3.9; no RTT in the capture, so no MOS-CQ; video is
    // not rated but has its loss model.
    let mos = pcmu["mosLq"].as_f64().unwrap();
    assert!((3.7..4.1).contains(&mos), "{pcmu}");
    assert!(
        pcmu["rFactor"].as_f64().unwrap() > 70.0 && pcmu["mosCq"].is_null(),
        "{pcmu}"
    );
    assert!(
        pcmu["burstR"].as_f64().unwrap() > 0.5 && pcmu["gapDensity"].is_f64(),
        "{pcmu}"
    );
    let vp8 = streams.iter().find(|s| s["payloadType"] == 96).unwrap();
    assert!(vp8["mosLq"].is_null() && vp8["burstDensity"].is_f64(), "{vp8}");
}

#[test]
fn clock_rate_option_overrides_and_unknown_stays_explicit() {
    // 111 → 16 kHz instead of the default map's 48 kHz.
    let out = run(&["--format", "json", "--clock-rate", "111=16000"], &capture());
    let opus = stream_of_type(&out, 111);
    assert_eq!(opus["clockRate"], 16000);
    // A config whose map lacks 96: the VP8 stream's clock is unknown (null).
    let relay = "[[relay]]\nlisten = \"127.0.0.1:1\"\nupstream = \"127.0.0.1:2\"\n";
    let cfg = tmp(
        "cfg.toml",
        format!("{relay}[relay.clock_rates]\n111 = 48000\n").as_bytes(),
    );
    let out = run(&["--format", "json", "--config", cfg.to_str().unwrap()], &capture());
    let vp8 = stream_of_type(&out, 96);
    assert!(vp8["clockRate"].is_null() && vp8["jitter"].is_null(), "{vp8}");
    // A relay without a table keeps the default one: 96 is not lost.
    let cfg = tmp("cfg-default.toml", relay.as_bytes());
    let out = run(&["--format", "json", "--config", cfg.to_str().unwrap()], &capture());
    let vp8 = stream_of_type(&out, 96);
    assert!(vp8["clockRate"] == 90_000 && vp8["jitter"].is_f64(), "{vp8}");
}

#[test]
fn w3c_and_table_formats() {
    let out = run(&["--format", "w3c"], &capture());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stats: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["stats"].as_array().unwrap())
        .collect();
    let inbound: Vec<_> = stats.iter().filter(|o| o["type"] == "inbound-rtp").collect();
    assert_eq!(inbound.len(), 3);
    for o in &inbound {
        assert!(o["ssrc"].is_u64() && o["kind"].is_string() && o["timestamp"].is_f64());
    }
    // No receiver reports in this capture: no remote-inbound-rtp, no RTT.
    assert!(stats.iter().all(|o| o["type"] != "remote-inbound-rtp"));
    assert!(
        stats.iter().any(|o| o["type"] == "remote-outbound-rtp"),
        "SRs are in the capture"
    );

    let out = run(&["--format", "table"], &capture());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains("0x11110000"));
    assert!(
        text.lines().next().unwrap().ends_with("BURSTR     R MOS-LQ MOS-CQ"),
        "{text}"
    );
}

#[test]
fn bad_inputs_fail_clearly_with_exit_code_2() {
    assert_clean_failure(&run(&[], Path::new("/nonexistent/capture.pcap")), "cannot open");
    assert_clean_failure(
        &run(&[], &tmp("text.pcap", b"this is not a capture file at all")),
        "not a pcap or pcapng",
    );
    assert_clean_failure(&run(&[], &tmp("empty.pcap", b"")), "not a pcap or pcapng");
    // A real capture cut in the middle of a packet.
    let bytes = std::fs::read(capture()).unwrap();
    let cut = tmp("cut.pcap", &bytes[..bytes.len() / 2 + 7]);
    assert_clean_failure(&run(&[], &cut), "truncated or corrupt");
    // Option errors come from the argument parser, also exit code 2.
    let out = run(&["--clock-rate", "300=8000"], &capture());
    assert_clean_failure(&out, "0-127");
    let out = run(&["--format", "xml"], &capture());
    assert_clean_failure(&out, "xml");
    let cfg = tmp("bad.toml", b"[limits]\nmax_sessions = 0\n");
    assert_clean_failure(
        &run(&["--config", cfg.to_str().unwrap()], &capture()),
        "limits.max_sessions",
    );
}

/// `run` end to end as an operator starts it: it reports where it listens,
/// relays, and on SIGTERM closes every session with its final statistics
/// and exits 0 within the shutdown bound.
#[test]
fn run_relays_and_shuts_down_cleanly_on_sigterm() {
    let upstream = common::loopback();
    upstream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let upstream_addr = upstream.local_addr().unwrap().to_string();
    // The first line: "relay listening on 127.0.0.1:PORT -> upstream ... (1 workers)".
    let (mut child, mut lines, listen) = common::spawn_run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream_addr,
        "--rtcp-termination",
        "--workers",
        "1",
        "--api-listen",
        "127.0.0.1:0",
    ]);
    let client = common::loopback();
    let pkt = common::rtp_filled(0, 7, 0, Ssrc(0xabcd_ef01), 160, 0);
    client.send_to(&pkt, listen).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = upstream.recv_from(&mut buf).expect("relayed to the upstream");
    assert_eq!(&buf[..n], &pkt[..]);
    // The API's line and the session's may come in either order: the
    // relay runs (and logs) before the API has started.
    let (mut api, mut opened) = (false, false);
    while !(api && opened) {
        let line = lines.next().unwrap().unwrap();
        api |= line.starts_with("api listening on http://127.0.0.1:");
        opened |= line.contains("opened");
    }
    common::terminate(&child);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?} {rest:?}");
    let closed = rest
        .iter()
        .find(|l| l.contains("closed (shutdown)"))
        .expect("final stats logged");
    assert!(
        closed.contains("ssrc=0xabcdef01") && closed.contains("recv=1"),
        "{closed}"
    );
}

/// An API beyond loopback without a token does not start: it would expose
/// call data and take keys from anyone who reaches it. The error names the
/// key and the ways out; `--api-allow-tokenless` is the explicit one.
#[test]
fn run_refuses_a_tokenless_api_beyond_loopback() {
    let base = [
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:9",
        "--workers",
        "1",
        "--api-listen",
        "0.0.0.0:0",
    ];
    let out = common::run_bin(&base);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("api.listen") && stderr.contains("[api] token") && stderr.contains("--api-allow-tokenless"),
        "{stderr}"
    );
    assert!(!stderr.contains("relay listening"), "it started: {stderr}");
    let out = common::run_bin(&[&base[..], &["--api-allow-tokenless", "--check-config"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `run` says at start how many sessions each relay can hold: the smaller
/// of `limits.max_sessions` and what its upstream port range holds (a port
/// a session, an even/odd pair on a non-mux relay). A range smaller than
/// `max_sessions` is the real cap, and an operator should see it before
/// clients are refused.
#[test]
fn run_states_each_relays_session_cap_from_its_port_range() {
    let config = |ports: &str, non_mux: bool, max: usize| {
        let rtcp = match non_mux {
            true => "listen_rtcp = \"127.0.0.1:0\"\nupstream_rtcp = \"127.0.0.1:10\"\n",
            false => "",
        };
        format!(
            "[[relay]]\nlisten = \"127.0.0.1:0\"\nupstream = \"127.0.0.1:9\"\nupstream_ports = \"{ports}\"\n{rtcp}\
             [api]\nlisten = \"127.0.0.1:0\"\n[limits]\nmax_sessions = {max}\n"
        )
    };
    for (ports, non_mux, max, cap) in [
        ("41000-41099", false, 1000, 100),
        ("41000-41099", true, 1000, 50),
        ("41001-41004", true, 1000, 1),
        ("41000-41099", false, 30, 30),
    ] {
        let path = tmp(&format!("cap-{cap}.toml"), config(ports, non_mux, max).as_bytes());
        let mut child = Command::new(common::BIN)
            .args(["run", "--workers", "1", "--config", path.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
        let first = lines.next().unwrap().unwrap();
        common::terminate(&child);
        let _ = child.wait();
        assert!(
            first.starts_with("relay listening on ") && first.ends_with(&format!("sessions up to {cap})")),
            "{ports} non_mux={non_mux} max_sessions={max}: {first}"
        );
    }
}
