//! A second DTLS implementation on both legs: GStreamer's `dtlssrtpenc` /
//! `dtlssrtpdec` (OpenSSL) as the sender and the receiver of a call whose
//! DTLS-SRTP the proxy terminates back to back.
//!
//! ```text
//!  sender (tests/gst/dtls_endpoint.py)       relay, dtls = "terminate",        receiver (--receive)
//!  rtpbin → dtlssrtpenc (DTLS client)  ⇄     rtcp = "terminate"          ⇄     dtlssrtpdec → rtpbin → PCMU
//!  dtlssrtpdec → rtpbin (reports)            + calls API                       (DTLS server), RR out via enc
//! ```
//!
//! No ICE: GStreamer's elements send no STUN, so the call binds by the
//! client's media address in its SDP (`c=` + m= port), which is the
//! sender's one socket (RTP, RTCP and DTLS muxed on it). Each endpoint has
//! its own ECDSA P-256 certificate whose fingerprint goes in its SDP; the
//! SDPs pass through `POST /v1/calls/{id}/offer|answer` before either
//! endpoint starts. Checked: both legs reach `connected` in `/v1/sessions`,
//! both endpoints saw the proxy's certificate (not each other's), the
//! receiver's dtlssrtpdec decrypts the media and its decoder decodes it,
//! and the report blocks the sender's rtpbin holds come from the proxy's
//! SSRC (the receiver's own RRs are terminated), with values that match
//! the proxy's view of the stream.
//!
//! Needs GStreamer with gst-plugins-bad's dtls elements and Python's GObject
//! bindings (scripts/setup.sh installs them). Without them the test prints
//! a notice and passes, unless `REQUIRE_GSTREAMER=1`, which makes it fail.
//! Measured values are printed (`cargo test --test gstreamer_dtls -- --nocapture`).

mod common;
use rtp_middlebox::config::Config;
use rtp_middlebox::dtls::sha256;
use rtp_middlebox::engine::Side;
use rtp_middlebox::runtime::{self, WorkerStats};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gst/dtls_endpoint.py");
/// How long the sender sends.
const SECONDS: f64 = 8.0;

// ---------------------------------------------------------------- prerequisites

/// The Python interpreter with GStreamer's GObject bindings and the DTLS
/// elements, or `None` (after a notice) when missing and not required.
fn gstreamer() -> Option<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    common::script::gstreamer_or_skip(FOUND.get_or_init(probe))
}

fn probe() -> Result<PathBuf, String> {
    common::script::gst_python(&[
        "rtpbin",
        "udpsrc",
        "udpsink",
        "multiudpsink",
        "dtlssrtpenc",
        "dtlssrtpdec",
        "audiotestsrc",
        "mulawenc",
        "rtppcmupay",
        "rtppcmudepay",
        "mulawdec",
    ])
    .map_err(|why| format!("{why} (dtlssrtpenc/dtlssrtpdec come with gstreamer1.0-plugins-bad)"))
}

// ---------------------------------------------------------------- helpers

#[allow(clippy::disallowed_methods)] // real programs on real time
fn now() -> Instant {
    Instant::now()
}

/// A fresh ECDSA P-256 certificate and key in one PEM file (what
/// dtlssrtpdec's `pem` takes) and the certificate's SDP fingerprint.
fn certificate(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    (path, fingerprint_hex(&sha256(cert.der())))
}

fn fingerprint_hex(fp: &[u8]) -> String {
    fp.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A SIP-style audio SDP without ICE: the media address is the endpoint's
/// one socket (rtcp-mux, RFC 5761).
fn sdp(port: u16, fingerprint: &str, setup: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} UDP/TLS/RTP/SAVP 0\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\n\
         a=fingerprint:sha-256 {fingerprint}\r\na=setup:{setup}\r\na=sendrecv\r\n"
    )
}

/// One `dtls_endpoint.py` process (waits for `go` before its pipeline
/// starts).
struct Endpoint {
    script: common::script::Script,
    port: u16,
}

impl Endpoint {
    fn spawn(py: &Path, args: &[String]) -> Endpoint {
        let script = common::script::Script::spawn(py, SCRIPT, args, true);
        let port = script.ready["port"].as_u64().unwrap() as u16;
        Endpoint { script, port }
    }

    /// Lets the pipeline start.
    fn go(&mut self) {
        self.script.go();
    }

    fn finish(self, within: Duration) -> Value {
        self.script.finish(within)
    }
}

fn post(api: SocketAddr, path: &str, body: &Value) -> Value {
    let r = common::http(api, "POST", path, "", &body.to_string());
    assert_eq!(r.status(), 200, "{path}: {}", r.raw);
    r.json()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn engine_total(stats: &[WorkerStats], counter: impl Fn(&rtp_middlebox::engine::Counters) -> u64) -> u64 {
    stats.iter().filter_map(|w| w.engine.as_ref()).map(counter).sum()
}

// ---------------------------------------------------------------- the case

#[test]
fn gstreamer_dtlssrtp_on_both_legs_through_the_terminating_proxy() {
    let Some(py) = gstreamer() else { return };
    let dir = std::env::temp_dir().join(format!("rtp-middlebox-gst-dtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (tx_pem, tx_fp) = certificate(&dir, "sender");
    let (rx_pem, rx_fp) = certificate(&dir, "receiver");
    let arg = |p: &Path| p.to_string_lossy().into_owned();

    // The receiver (the upstream) is the DTLS server; the relay sends to it.
    let mut receiver = Endpoint::spawn(
        &py,
        &[
            "--receive".into(),
            "--pem".into(),
            arg(&rx_pem),
            "--seconds".into(),
            (SECONDS + 4.0).to_string(),
        ],
    );
    let upstream = SocketAddr::from(([127, 0, 0, 1], receiver.port));
    let toml = common::relay_toml(
        upstream,
        "dtls = \"terminate\"\nrtcp = \"terminate\"\n[rtcp]\nmin_interval_audio_ms = 1000\n",
    );
    let config = Config::from_toml(&toml).unwrap();
    let relay = runtime::start(&config, &common::quiet(1)).unwrap();
    let api = runtime::start_api(
        common::api_options(&config),
        relay.handle(),
        config.relay[0].clock_rates(),
    )
    .unwrap();
    let listen = relay.bound()[0].listen;

    let mut sender = Endpoint::spawn(
        &py,
        &[
            "--peer".into(),
            listen.to_string(),
            "--pem".into(),
            arg(&tx_pem),
            "--dtls-client".into(),
            "--seconds".into(),
            SECONDS.to_string(),
        ],
    );

    // Signalling: the client (sender) offers actpass, the upstream answers
    // passive, so the sender is the DTLS client (RFC 5763 §5). No ICE in
    // either SDP: the call binds by the sender's c= address and m= port.
    let offer = sdp(sender.port, &tx_fp, "actpass");
    let to_upstream = post(
        api.local_addr,
        "/v1/calls/gst-1/offer",
        &json!({"sdp": offer, "from": "client"}),
    );
    let answer = sdp(receiver.port, &rx_fp, "passive");
    let to_client = post(
        api.local_addr,
        "/v1/calls/gst-1/answer",
        &json!({"sdp": answer, "from": "upstream"}),
    );
    let proxy_fp = {
        let d = rtp_middlebox::sdp::inspect(to_client["sdp"].as_str().unwrap()).unwrap();
        assert_eq!(d.ice_ufrag, None);
        fingerprint_hex(&d.fingerprints[0].value)
    };
    assert!(to_upstream["sdp"].as_str().unwrap().contains(&proxy_fp));
    assert!(!to_upstream["sdp"].as_str().unwrap().contains(&tx_fp));
    assert!(!to_client["sdp"].as_str().unwrap().contains(&rx_fp));

    let t0 = now();
    receiver.go();
    sender.go();
    // Both legs connected, as the API shows them.
    let sessions = loop {
        let s = common::get(api.local_addr, "/v1/sessions").json();
        let legs = (&s[0]["dtls"]["client"], &s[0]["dtls"]["upstream"]);
        if legs.0 == "connected" && legs.1 == "connected" {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "DTLS legs not connected: {s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let connected_after = t0.elapsed();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    assert_eq!(sessions[0]["dtls"]["callId"], "gst-1");

    let sender_port = sender.port;
    let sender = sender.finish(Duration::from_secs_f64(SECONDS + 20.0));
    let receiver = receiver.finish(Duration::from_secs(20));
    let views = relay.sessions_blocking();
    let stats = relay.stats_blocking();
    api.stop();
    relay.shutdown(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);

    let tx_ssrc = u(&sender, "ssrc");
    let rx_ssrc = u(&receiver, "ssrc");
    let sent = u(&sender["sender"], "packets-sent");
    let decrypted = u(&receiver, "srtp_rtp_in");
    let decoded = u(&receiver, "decoded");
    let log = sender["rb_log"].as_array().unwrap();
    let reporters: std::collections::BTreeSet<u64> = log.iter().map(|rb| u(rb, "reporter")).collect();
    let generated = engine_total(&stats, |e| e.reports_generated);
    // `terminate` takes the report blocks out of the endpoints' compounds.
    let consumed = engine_total(&stats, |e| e.report_blocks_consumed);
    let view = &views[0].snapshot;
    let seen = view
        .side(Side::Client)
        .sources
        .iter()
        .find(|s| s.ssrc as u64 == tx_ssrc)
        .and_then(|s| s.rtp.clone())
        .expect("the proxy measured the sender's stream");
    println!(
        "[gst dtls] legs connected {:.0} ms after start; sender sent {sent} RTP, receiver's dtlssrtpdec \
         decrypted {decrypted}, decoder output {decoded}; proxy saw {} (lost {}); sender's rtpbin got {} report \
         blocks from {reporters:x?} (receiver SSRC {rx_ssrc:#x}); proxy generated {generated} RR compounds, \
         took {consumed} report blocks out of the endpoints' RTCP",
        connected_after.as_secs_f64() * 1000.0,
        seen.packets_received,
        seen.packets_lost,
        log.len()
    );

    // Each endpoint's DTLS peer was the proxy, not the other endpoint.
    assert_eq!(sender["peer_fingerprint"], proxy_fp.as_str(), "{sender}");
    assert_eq!(receiver["peer_fingerprint"], proxy_fp.as_str(), "{receiver}");
    assert_eq!(sender["own_fingerprint"], tx_fp.as_str());
    assert_eq!(receiver["own_fingerprint"], rx_fp.as_str());
    assert_eq!(sender["connection_state"], "connected");
    assert_eq!(receiver["connection_state"], "connected");
    // The receiver replied to the proxy's upstream socket, not the sender.
    assert_ne!(receiver["peer"], format!("127.0.0.1:{sender_port}"));
    let counters = |f: fn(&rtp_middlebox::engine::Counters) -> u64| engine_total(&stats, f);
    assert_eq!(counters(|e| e.dtls_calls_bound), 1);
    assert_eq!(counters(|e| e.dtls_connected), 2);
    assert_eq!(counters(|e| e.dtls_failed), 0);

    // Media: everything sent after the handshake decrypts and decodes.
    assert!(decrypted >= 200, "receiver decrypted {decrypted} of {sent}");
    assert!(
        decrypted + 10 >= seen.packets_received,
        "{decrypted} vs proxy's {}",
        seen.packets_received
    );
    assert!(decoded + 5 >= decrypted, "decoded {decoded} of {decrypted}");
    assert!(u(&receiver, "srtcp_in") >= 3, "the sender's SRs reached the receiver");

    // Reports: the sender's rtpbin holds report blocks about its SSRC from
    // one reporter, the proxy; the receiver reported too, but `terminate`
    // consumed its RRs.
    assert!(log.len() >= 3, "only {} report blocks: {sender}", log.len());
    assert_eq!(reporters.len(), 1, "{reporters:x?}");
    assert!(!reporters.contains(&rx_ssrc), "the receiver's own RR passed");
    assert_eq!(
        receiver["remote_sources"][0]["sent-rb"], true,
        "the receiver did report"
    );
    assert!(
        generated >= log.len() as u64,
        "{generated} generated, {} arrived",
        log.len()
    );
    assert!(consumed >= 3, "receiver's report blocks consumed: {consumed}");
    let report = sender["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ssrc"].as_u64() == reporters.first().copied())
        .expect("rtpbin's stats show the proxy's report");
    assert_eq!(report["have-rb"], true);
    // The values are the proxy's view: no loss on loopback, and the highest
    // sequence number it reported is one it received (RFC 3550 §6.4.1:
    // extended highest sequence number received; low 16 bits compared,
    // the cycle counts of the two counters start differently).
    let last = log.last().unwrap();
    assert_eq!(last["lost"].as_i64(), Some(seen.packets_lost), "{last}");
    let behind = (seen.ext_highest_seq as u16).wrapping_sub(u(last, "ext_seq") as u16);
    assert!(
        behind < 100,
        "report's highest seq {} vs proxy's {}",
        last["ext_seq"],
        seen.ext_highest_seq
    );
    let rtt_ms = u(report, "rb-round-trip") as f64 * 1000.0 / 65536.0;
    println!("[gst dtls] sender-proxy round trip rtpbin computed from the proxy's last block: {rtt_ms:.2} ms");
    assert!(rtt_ms > 0.0, "rtpbin computed a round trip from the proxy's LSR/DLSR");
}
