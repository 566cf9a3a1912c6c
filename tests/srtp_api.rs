//! Provisioning SRTP keys: the API's answers to good and bad input, and
//! that key material never appears in the API's other answers, the
//! metrics, config errors or the process's logs.

// Real sockets and processes: waiting on real time is the point.
#![allow(clippy::disallowed_methods)]

mod common;
use common::{pcmu_filled, start_relay_and_api};
use rtp_middlebox::runtime::RelayRuntime;
use rtp_middlebox::srtp::{CryptoSuite, SrtpKeys};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

fn request(api: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let r = common::http(api, method, path, "", body);
    (r.status(), r.body().to_string())
}

fn keys(seed: u8) -> SrtpKeys {
    let m: Vec<u8> = (0..30u8).map(|i| i.wrapping_mul(seed) ^ 0x77).collect();
    SrtpKeys::new(CryptoSuite::AesCm128HmacSha1_80, &m[..16], &m[16..]).unwrap()
}

/// The client's and the upstream's keys from these seeds, and the inline
/// secret of each.
fn keys_and_secrets(client_seed: u8, upstream_seed: u8) -> (SrtpKeys, SrtpKeys, String, String) {
    let (kc, ku) = (keys(client_seed), keys(upstream_seed));
    let (sc, su) = (kc.expose_inline_secret(), ku.expose_inline_secret());
    (kc, ku, sc, su)
}

fn rtp(seq: u16) -> Vec<u8> {
    pcmu_filled(seq, 0x0102_0304, 170, 0)
}

/// Opens a session with one RTP packet from a new client (waits until the
/// upstream got it): the client's socket, the session's id and the path
/// of its SRTP keys.
fn open_session(relay: &RelayRuntime, upstream: &UdpSocket) -> (UdpSocket, String, String) {
    let client = common::loopback();
    client.send_to(&rtp(0), relay.bound()[0].listen).unwrap();
    let mut b = [0u8; 2048];
    upstream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    upstream.recv_from(&mut b).unwrap();
    let id = relay.sessions_blocking()[0].id.clone();
    let path = format!("/v1/sessions/{id}/srtp");
    (client, id, path)
}

#[test]
fn the_api_validates_keys_and_never_echoes_them() {
    let (relay, api, upstream) = start_relay_and_api("[metrics]\ninterval_secs = 1\nper_session = true\n", |_| {});
    let (client, id, path) = open_session(&relay, &upstream);

    let (kc, ku, sc, su) = keys_and_secrets(3, 5);
    let secret_parts = [sc[7..].to_string(), su[7..].to_string()];
    let no_secrets = |what: &str, body: &str| {
        for s in &secret_parts {
            assert!(!body.contains(s.as_str()), "{what} shows key material: {body}");
        }
    };

    // Malformed input: clear 4xx errors that never quote the material.
    let cases = [
        (
            format!(
                "{{\"suite\":\"AES_CM_128_HMAC_SHA1_80\",\"client\":\"inline:{}!!\"}}",
                &sc[7..20]
            ),
            400,
            "base64",
        ),
        (
            format!(
                "{{\"suite\":\"AES_CM_128_HMAC_SHA1_80\",\"client\":\"inline:{}\"}}",
                &sc[7..27]
            ),
            400,
            "must decode to 30 bytes",
        ),
        (
            format!("{{\"suite\":\"F8_128_HMAC_SHA1_80\",\"client\":\"{sc}\"}}"),
            400,
            "unknown SRTP crypto suite",
        ),
        (
            "{\"suite\":\"AES_CM_128_HMAC_SHA1_80\"}".to_string(),
            400,
            "client key, the upstream key or both",
        ),
        (
            format!("{{\"suite\":\"AES_CM_128_HMAC_SHA1_80\",\"client\":\"{sc}\",\"extra\":1}}"),
            400,
            "body must be",
        ),
        ("not json".to_string(), 400, "body must be"),
    ];
    for (body, status, message) in &cases {
        let (got, answer) = request(api.local_addr, "POST", &path, body);
        assert_eq!(got, *status, "{body} → {answer}");
        assert!(answer.contains(message), "{body} → {answer}");
        assert!(!answer.contains(&sc[7..20]), "{answer}");
    }
    let (got, answer) = request(
        api.local_addr,
        "POST",
        "/v1/sessions/0-00000000ffffffff0123456789abcdef/srtp",
        &format!("{{\"suite\":\"AES_CM_128_HMAC_SHA1_80\",\"client\":\"{sc}\"}}"),
    );
    assert_eq!(got, 404, "{answer}");
    let (got, _) = request(api.local_addr, "POST", "/v1/sessions/nonsense/srtp", "{}");
    assert_eq!(got, 400);

    // Good keys: the answer carries fingerprints only.
    let body = format!("{{\"suite\":\"AES_CM_128_HMAC_SHA1_80\",\"client\":\"{sc}\",\"upstream\":\"{su}\"}}");
    let (got, answer) = request(api.local_addr, "POST", &path, &body);
    assert_eq!(got, 200, "{answer}");
    assert!(
        answer.contains(&kc.fingerprint()) && answer.contains(&ku.fingerprint()),
        "{answer}"
    );
    no_secrets("POST answer", &answer);

    for _ in 0..30 {
        client.send_to(&rtp(1), relay.bound()[0].listen).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1200));
    let (_, sessions) = request(api.local_addr, "GET", "/v1/sessions", "");
    assert!(sessions.contains(&kc.fingerprint()), "{sessions}");
    for (what, path) in [
        ("sessions", "/v1/sessions".to_string()),
        ("stats", format!("/v1/sessions/{id}/stats")),
        ("counters", "/v1/counters".to_string()),
        ("metrics", "/metrics".to_string()),
    ] {
        let (status, body) = request(api.local_addr, "GET", &path, "");
        assert_eq!(status, 200, "{what}");
        no_secrets(what, &body);
    }

    let (got, _) = request(api.local_addr, "DELETE", &path, "");
    assert_eq!(got, 204);
    let (_, sessions) = request(api.local_addr, "GET", "/v1/sessions", "");
    assert!(!sessions.contains(&kc.fingerprint()), "{sessions}");
}

#[test]
fn static_keys_stay_out_of_logs_and_config_errors() {
    let (_, _, sc, su) = keys_and_secrets(7, 11);
    let upstream = common::loopback();
    let dir = common::scratch_dir("srtp");
    let path = dir.join("relay.toml");
    std::fs::write(
        &path,
        common::relay_toml(
            upstream.local_addr().unwrap(),
            &format!(
                "[[srtp]]\nclient = \"127.0.0.1\"\nsuite = \"AES_CM_128_HMAC_SHA1_80\"\nclient_key = \"{sc}\"\n\
                 upstream_key = \"{su}\"\n"
            ),
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let (mut child, lines, listen) =
        common::spawn_run(&["--workers", "1", "--api-listen", "127.0.0.1:0", "--config", config]);
    let client = common::loopback();
    for seq in 0..20 {
        client.send_to(&rtp(seq), listen).unwrap();
    }
    // A garbage "SRTCP" compound from the keyed client: refused, counted.
    let mut bogus = vec![0x80, 0xc8, 0x00, 0x06, 1, 2, 3, 4];
    bogus.resize(8 + 20 + 4 + 10, 0xee);
    client.send_to(&bogus, listen).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    common::terminate(&child);
    let log: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success());
    let log = log.join("\n");
    assert!(log.contains("closed (shutdown)"), "{log}");
    for s in [&sc[7..], &su[7..]] {
        assert!(!log.contains(s), "the log shows key material:\n{log}");
    }

    // A bad key in the config: the error names the key, not the material.
    let bad = format!("{}A", &sc[..sc.len() - 4]);
    std::fs::write(
        &path,
        format!("[[srtp]]\nclient = \"127.0.0.1\"\nsuite = \"AES_CM_128_HMAC_SHA1_80\"\nclient_key = \"{bad}\"\n"),
    )
    .unwrap();
    let out = common::run_bin(&["run", "--check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("srtp[0].client_key"), "{err}");
    assert!(!err.contains(&bad[7..]), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a page in the operator's browser could send: a `text/plain` or
/// form body (no preflight), a foreign `Origin`, a rebound `Host`, or an id
/// guessed from the previous one. None of them reaches the keys, and the
/// answers name no address, key or internal detail. In `terminate` the
/// keys cannot be removed (409).
#[test]
fn cross_site_and_guessed_requests_change_nothing() {
    let (relay, api, upstream) = start_relay_and_api("rtcp = \"terminate\"\n", |_| {});
    let (client, id, path) = open_session(&relay, &upstream);
    let (kc, _, sc, su) = keys_and_secrets(3, 5);
    let body = format!("{{\"suite\":\"AES_CM_128_HMAC_SHA1_80\",\"client\":\"{sc}\",\"upstream\":\"{su}\"}}");
    let raw = |method: &str, path: &str, headers: &str, body: &str| {
        let r = common::raw_http(api.local_addr, method, path, headers, body);
        (r.status(), r.body().to_string())
    };
    let host = format!("Host: {}\r\n", api.local_addr);
    let attempts = [
        (format!("{host}Content-Type: text/plain;charset=UTF-8\r\n"), 415),
        (
            format!("{host}Content-Type: application/x-www-form-urlencoded\r\n"),
            415,
        ),
        (format!("{host}Content-Type: multipart/form-data; boundary=x\r\n"), 415),
        (host.clone(), 415),
        (
            format!("{host}Origin: http://127.0.0.2:8000\r\nContent-Type: application/json\r\n"),
            403,
        ),
        (
            format!(
                "Host: evil.test:{}\r\nContent-Type: application/json\r\n",
                api.local_addr.port()
            ),
            403,
        ),
    ];
    let internals = [
        api.local_addr.to_string(),
        relay.bound()[0].listen.to_string(),
        client.local_addr().unwrap().to_string(),
        sc[7..].to_string(),
        su[7..].to_string(),
        "panicked".into(),
        ".rs:".into(),
    ];
    let clean = |what: &str, answer: &str| {
        let v: serde_json::Value = serde_json::from_str(answer).unwrap_or_else(|_| panic!("{what}: {answer}"));
        assert!(v["error"].is_string(), "{what}: {answer}");
        for s in &internals {
            assert!(!answer.contains(s.as_str()), "{what} names {s}: {answer}");
        }
    };
    for (headers, want) in &attempts {
        let (got, answer) = raw("POST", &path, headers, &body);
        assert_eq!(got, *want, "{headers} → {answer}");
        clean(headers, &answer);
    }
    // The same session's engine id with another random half: unknown.
    let (worker_and_engine, tag) = id.split_at(id.len() - 16);
    let guessed_tag = format!("{:016x}", u64::from_str_radix(tag, 16).unwrap() ^ 1);
    let guessed = format!("/v1/sessions/{worker_and_engine}{guessed_tag}/srtp");
    let (got, answer) = request(api.local_addr, "POST", &guessed, &body);
    assert_eq!(got, 404, "{answer}");
    clean("guessed id", &answer);
    let (got, answer) = request(api.local_addr, "PUT", &guessed.replace("/srtp", "/sdp"), "{}");
    assert_eq!(got, 404, "{answer}");
    let (_, sessions) = request(api.local_addr, "GET", "/v1/sessions", "");
    assert!(
        !sessions.contains(&kc.fingerprint()) && sessions.contains("\"encrypted\":false"),
        "{sessions}"
    );

    // The real request works; then removal is refused in terminate.
    let (got, answer) = request(api.local_addr, "POST", &path, &body);
    assert_eq!(got, 200, "{answer}");
    let (got, answer) = request(api.local_addr, "DELETE", &path, "");
    assert_eq!(got, 409, "{answer}");
    clean("DELETE in terminate", &answer);
    // Nor may one direction lose its key.
    let one = format!("{{\"suite\":\"AES_CM_128_HMAC_SHA1_80\",\"client\":\"{sc}\"}}");
    let (got, answer) = request(api.local_addr, "POST", &path, &one);
    assert_eq!(got, 409, "{answer}");
    clean("one key in terminate", &answer);
    let (_, sessions) = request(api.local_addr, "GET", "/v1/sessions", "");
    assert!(sessions.contains(&kc.fingerprint()), "{sessions}");
    api.stop();
    relay.shutdown(Duration::from_secs(5));
}
