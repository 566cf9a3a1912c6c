//! DTLS termination through the running relay and its calls API, on
//! loopback sockets: the signalling passes the client's offer and the
//! upstream's answer through `POST /v1/calls/{id}/offer|answer`, each
//! endpoint gets the proxy's fingerprint, the ICE check binds the session,
//! both DTLS handshakes end at the proxy, and SRTP crosses re-keyed.

mod common;

use common::dtls::Peer;
use common::*;
use rtp_middlebox::dtls::DtlsIdentity;
use rtp_middlebox::sim::sdp::webrtc_sdp;
use rtp_middlebox::srtp::media_context;
use rtp_middlebox::wire::stun::{StunClass, ATTR_USERNAME};
use rtp_middlebox::wire::Ssrc;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A real-socket DTLS endpoint driven by the test thread: the tests' DTLS
/// peer (`common::dtls::Peer`) behind a UDP socket.
struct Endpoint {
    socket: UdpSocket,
    dtls: Peer,
    /// Where to send: the last address heard from, at first the relay.
    peer: SocketAddr,
}

#[allow(clippy::disallowed_methods)] // a real endpoint on real time
fn now() -> Instant {
    Instant::now()
}

impl Endpoint {
    fn new(socket: UdpSocket, active: bool, peer: SocketAddr) -> Endpoint {
        socket.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        Endpoint {
            socket,
            dtls: Peer::new(active, now()),
            peer,
        }
    }

    /// Receives what arrived (learning the peer's address), runs timers,
    /// and sends what DTLS wants sent.
    fn step(&mut self) {
        let mut buf = [0u8; 2048];
        self.dtls.at(now());
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            self.peer = from;
            if (20..64).contains(&buf[0]) {
                self.dtls.feed(now(), &buf[..n]);
            }
        }
        for record in self.dtls.outbox.drain(..) {
            self.socket.send_to(&record, self.peer).unwrap();
        }
    }
}

/// Posts `sdp` to the calls API as call `call`'s offer from the client.
fn post_offer(api: SocketAddr, call: &str, sdp: &str) -> Response {
    post(
        api,
        &format!("/v1/calls/{call}/offer"),
        &serde_json::json!({"sdp": sdp, "from": "client"}),
    )
}

/// Posts `sdp` to the calls API as call `call`'s answer from the upstream.
fn post_answer(api: SocketAddr, call: &str, sdp: &str) -> Response {
    post(
        api,
        &format!("/v1/calls/{call}/answer"),
        &serde_json::json!({"sdp": sdp, "from": "upstream"}),
    )
}

fn sdp(ufrag: &str, fingerprint: &str, setup: &str, port: u16) -> String {
    webrtc_sdp(
        ufrag,
        fingerprint,
        setup,
        SocketAddr::from(([127, 0, 0, 1], port)),
        false,
    )
}

fn post(api: SocketAddr, path: &str, body: &serde_json::Value) -> Response {
    http(api, "POST", path, "", &body.to_string())
}

#[test]
fn a_call_through_the_calls_api_terminates_dtls_on_both_legs() {
    let (relay, api, upstream_socket) = start_relay_and_api("dtls = \"terminate\"\nrtcp = \"auto\"\n", |_| {});
    let listen = relay.bound()[0].listen;
    let api = api.local_addr;
    let client_socket = loopback();
    let client_port = client_socket.local_addr().unwrap().port();
    let upstream_addr = upstream_socket.local_addr().unwrap();
    let mut client = Endpoint::new(client_socket, true, listen);
    // The upstream learns the session's upstream socket from the first
    // datagram it receives.
    let mut upstream = Endpoint::new(upstream_socket, false, listen);

    // Errors first: no fingerprint, unknown call.
    let plain_sip =
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\n";
    let r = post_offer(api, "c1", plain_sip);
    assert_eq!(r.status(), 400, "{}", r.raw);
    assert_eq!(r.json()["reason"], "no-fingerprint");
    let r = post_answer(
        api,
        "nope",
        &sdp("u", &upstream.dtls.identity.fingerprint_sdp(), "passive", 1),
    );
    assert_eq!(r.status(), 404, "{}", r.raw);
    assert_eq!(r.json()["reason"], "call-unknown");

    let offer = sdp("cliE", &client.dtls.identity.fingerprint_sdp(), "actpass", client_port);
    let r = post_offer(api, "c1", &offer);
    assert_eq!(r.status(), 200, "{}", r.raw);
    let to_upstream = r.json()["sdp"].as_str().unwrap().to_owned();
    assert!(!to_upstream.contains(&client.dtls.identity.fingerprint_sdp()[8..]));
    let answer = sdp(
        "upsT",
        &upstream.dtls.identity.fingerprint_sdp(),
        "passive",
        upstream_addr.port(),
    );
    let r = post_answer(api, "c1", &answer);
    assert_eq!(r.status(), 200, "{}", r.raw);
    let to_client = r.json()["sdp"].as_str().unwrap().to_owned();
    assert!(!to_client.contains(&upstream.dtls.identity.fingerprint_sdp()[8..]));
    assert_eq!(
        rtp_middlebox::sdp::inspect(&to_client).unwrap().fingerprints[0].value,
        rtp_middlebox::sdp::inspect(&to_upstream).unwrap().fingerprints[0].value,
        "both sides see the proxy's one certificate"
    );

    // ICE: the client's check binds the session.
    let check = stun(StunClass::Request, [9; 12], &[(ATTR_USERNAME, b"upsT:cliE")]);
    client.socket.send_to(&check, listen).unwrap();
    let deadline = now() + Duration::from_secs(10);
    while !(client.dtls.connected
        && upstream.dtls.connected
        && client.dtls.keys.is_some()
        && upstream.dtls.keys.is_some())
    {
        assert!(now() < deadline, "handshakes did not complete");
        client.step();
        upstream.step();
    }
    let proxy_fp = rtp_middlebox::sdp::inspect(&to_client).unwrap().fingerprints[0]
        .value
        .clone();
    assert_eq!(client.dtls.peer_fingerprint.map(|f| f.to_vec()), Some(proxy_fp.clone()));
    assert_eq!(upstream.dtls.peer_fingerprint.map(|f| f.to_vec()), Some(proxy_fp));

    // Media: the client's SRTP reaches the upstream under the upstream
    // leg's keys.
    let ck = client.dtls.keys.clone().unwrap();
    let uk = upstream.dtls.keys.clone().unwrap();
    let mut protect = media_context(&ck.own_write).unwrap();
    let mut open = media_context(&uk.peer_write).unwrap();
    upstream.socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut media = |seqs: std::ops::Range<u16>| {
        for seq in seqs {
            let plain = rtp(111, seq, u32::from(seq) * 960, Ssrc(0xabc), 60);
            client
                .socket
                .send_to(&protect.encrypt_rtp(&plain).unwrap(), listen)
                .unwrap();
            let mut buf = [0u8; 2048];
            loop {
                let (n, _) = upstream.socket.recv_from(&mut buf).unwrap();
                if buf[0] >> 6 == 2 && !(200..=206).contains(&buf[1]) {
                    assert_eq!(open.decrypt_rtp(&buf[..n]).unwrap().to_vec(), plain, "packet {seq}");
                    break;
                }
            }
        }
    };
    media(0..20);

    // The legs' keys came from DTLS: SDES keys through the API can neither
    // replace nor remove them (409), and the fingerprints stay.
    let id = relay.sessions_blocking()[0].id.clone();
    let before = relay.sessions_blocking()[0].snapshot.srtp_keys.clone();
    let sdes = serde_json::json!({
        "suite": "AES_CM_128_HMAC_SHA1_80",
        "client": "inline:WVNfmVf9m9WJgyhjCeAfTCAbzPWGCt08ktYeDHyq",
    });
    let r = post(api, &format!("/v1/sessions/{id}/srtp"), &sdes);
    assert_eq!(r.status(), 409, "{}", r.raw);
    let r = http(api, "DELETE", &format!("/v1/sessions/{id}/srtp"), "", "");
    assert_eq!(r.status(), 409, "{}", r.raw);
    assert!(r.json()["error"].as_str().unwrap().contains("DTLS"), "{}", r.raw);
    assert_eq!(relay.sessions_blocking()[0].snapshot.srtp_keys, before);

    // The call's SDPs became the session's descriptions (the client's
    // view: its own offer, the answer it got with the proxy's fingerprint).
    let sessions = get(api, "/v1/sessions").json();
    let id = sessions[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(sessions[0]["dtls"]["callId"], "c1");
    let deadline = now() + Duration::from_secs(5);
    let described = loop {
        let d = get(api, &format!("/v1/sessions/{id}/sdp")).json();
        if d["remoteDescription"]["sdp"].is_string() || now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(described["localDescription"]["sdp"], offer);
    assert_eq!(described["remoteDescription"]["sdp"], to_client);
    assert_eq!(described["remoteDescription"]["type"], "answer");

    // A renegotiation, offered by the upstream as Janus does when a track
    // is added (RFC 3264 §8): same certificates, same DTLS roles (the
    // upstream stays the server, so the client answers `active`). Both
    // requests succeed, each SDP handed on carries the proxy's
    // fingerprint, and the live legs go on with their keys.
    let call = |what: &str, from: &str, sdp: &str| {
        post(
            api,
            &format!("/v1/calls/c1/{what}"),
            &serde_json::json!({"sdp": sdp, "from": from}),
        )
    };
    let proxy_fp = rtp_middlebox::sdp::inspect(&to_client).unwrap().fingerprints[0]
        .value
        .clone();
    let re_offer = sdp(
        "upsT",
        &upstream.dtls.identity.fingerprint_sdp(),
        "actpass",
        upstream_addr.port(),
    );
    let r = call("offer", "upstream", &re_offer);
    assert_eq!(r.status(), 200, "{}", r.raw);
    let re_offer_out = r.json()["sdp"].as_str().unwrap().to_owned();
    assert_eq!(
        rtp_middlebox::sdp::inspect(&re_offer_out).unwrap().fingerprints[0].value,
        proxy_fp
    );
    let re_answer = sdp("cliE", &client.dtls.identity.fingerprint_sdp(), "active", client_port);
    let r = call("answer", "client", &re_answer);
    assert_eq!(r.status(), 200, "renegotiation refused: {}", r.raw);
    assert_eq!(
        rtp_middlebox::sdp::inspect(r.json()["sdp"].as_str().unwrap())
            .unwrap()
            .fingerprints[0]
            .value,
        proxy_fp
    );
    // An ICE restart keeps the DTLS association: new ufrags, same
    // certificates (client offers this time). A changed certificate is a
    // new DTLS association: refused, and the session goes on untouched.
    let restart = |client_fingerprint: &str| {
        let r = call(
            "offer",
            "client",
            &sdp("cliR", client_fingerprint, "actpass", client_port),
        );
        assert_eq!(r.status(), 200, "{}", r.raw);
        let upstream_fingerprint = upstream.dtls.identity.fingerprint_sdp();
        let answer = sdp("upsR", &upstream_fingerprint, "passive", upstream_addr.port());
        call("answer", "upstream", &answer)
    };
    let r = restart(&client.dtls.identity.fingerprint_sdp());
    assert_eq!(r.status(), 200, "ICE restart refused: {}", r.raw);
    let stranger = rtp_middlebox::dtls::DtlsIdentity::generate().unwrap();
    let r = restart(&stranger.fingerprint_sdp());
    assert_eq!(r.status(), 409, "{}", r.raw);
    assert_eq!(r.json()["reason"], "call-refused");
    assert!(
        r.json()["error"].as_str().unwrap().contains("new DTLS association"),
        "{}",
        r.raw
    );
    assert_eq!(relay.sessions_blocking().len(), 1);
    // Media after the renegotiations, under the same keys.
    media(20..25);

    // The last renegotiation that went through (the ICE restart) became
    // the session's descriptions.
    let deadline = now() + Duration::from_secs(5);
    loop {
        let d = get(api, &format!("/v1/sessions/{id}/sdp")).json();
        if d["localDescription"]["sdp"]
            .as_str()
            .is_some_and(|s| s.contains("cliR"))
        {
            assert!(d["remoteDescription"]["sdp"].as_str().unwrap().contains("upsR"), "{d}");
            break;
        }
        assert!(now() < deadline, "descriptions not updated: {d}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let r = http(api, "DELETE", "/v1/calls/c1", "", "");
    assert_eq!(r.status(), 204, "{}", r.raw);
    let r = http(api, "DELETE", "/v1/calls/c1", "", "");
    assert_eq!(r.status(), 404, "{}", r.raw);
}

#[test]
fn a_fingerprint_that_does_not_match_the_sdp_fails_the_leg_visibly() {
    let (relay, api, upstream_socket) = start_relay_and_api("dtls = \"terminate\"\n", |_| {});
    let listen = relay.bound()[0].listen;
    let api = api.local_addr;
    let mut client = Endpoint::new(loopback(), true, listen);
    let mut upstream = Endpoint::new(upstream_socket, false, listen);
    // The signalling carries somebody else's certificate for the client.
    let impostor = DtlsIdentity::generate().unwrap();
    let offer = sdp("cliE", &impostor.fingerprint_sdp(), "actpass", 9);
    let r = post_offer(api, "c2", &offer);
    assert_eq!(r.status(), 200, "{}", r.raw);
    let answer = sdp("upsT", &upstream.dtls.identity.fingerprint_sdp(), "passive", 9);
    let r = post_answer(api, "c2", &answer);
    assert_eq!(r.status(), 200, "{}", r.raw);
    let check = stun(StunClass::Request, [9; 12], &[(ATTR_USERNAME, b"upsT:cliE")]);
    client.socket.send_to(&check, listen).unwrap();
    let deadline = now() + Duration::from_secs(10);
    let failed = loop {
        assert!(now() < deadline, "the leg never failed");
        client.step();
        upstream.step();
        let sessions = get(api, "/v1/sessions").json();
        let s = &sessions.as_array().unwrap()[0];
        if s["dtls"]["failure"].is_string() {
            break s.clone();
        }
    };
    assert_eq!(failed["dtls"]["client"], "failed");
    assert_eq!(failed["dtls"]["failure"], "fingerprint_mismatch");
    assert_eq!(failed["iceConnectionState"], "failed");
    // (With DTLS 1.3 the client may consider its side done: it
    // authenticates last, after the server's Finished. What matters is the
    // proxy's verdict: the leg is failed and nothing is relayed.)
    // No media passes to the upstream.
    // Under the client's own keys when its side of the handshake finished.
    let keys = client
        .dtls
        .keys
        .as_ref()
        .map(|k| k.own_write.clone())
        .unwrap_or_else(|| {
            rtp_middlebox::srtp::SrtpKeys::generate(rtp_middlebox::srtp::CryptoSuite::AesCm128HmacSha1_80).unwrap()
        });
    let wire = media_context(&keys)
        .unwrap()
        .encrypt_rtp(&rtp(111, 1, 0, Ssrc(5), 60))
        .unwrap();
    client.socket.send_to(&wire, listen).unwrap();
    upstream
        .socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = upstream.socket.recv_from(&mut buf) {
        assert!(
            !(buf[0] >> 6 == 2 && n > 12 && !(200..=206).contains(&buf[1])),
            "media reached the upstream"
        );
    }
}

#[test]
fn calls_without_ice_need_a_client_media_address_and_no_ice_on_either_side() {
    let (_relay, api, _upstream) = start_relay_and_api("dtls = \"terminate\"\n", |_| {});
    let api = api.local_addr;
    let fp = DtlsIdentity::generate().unwrap().fingerprint_sdp();
    let no_ice = |c: &str, port: u16, setup: &str| {
        format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n{c}t=0 0\r\nm=audio {port} UDP/TLS/RTP/SAVP 0\r\n\
             a=rtcp-mux\r\na=fingerprint:{fp}\r\na=setup:{setup}\r\n"
        )
    };
    let exchange = |call: &str, offer: String, answer: String| {
        let r = post_offer(api, call, &offer);
        assert_eq!(r.status(), 200, "{}", r.raw);
        post_answer(api, call, &answer)
    };
    let loopback_c = "c=IN IP4 127.0.0.1\r\n";
    // (call, the c= line of the client's offer, the upstream's answer, the
    // status, the refusal's reason)
    let cases = [
        // One side with ICE, the other without: nothing to bind by.
        (
            "m1",
            loopback_c,
            sdp("upsT", &fp, "passive", 5000),
            400,
            Some("mixed-ice"),
        ),
        // No ICE and the client's SDP names no address (ICE's placeholder).
        (
            "m2",
            "c=IN IP4 0.0.0.0\r\n",
            no_ice(loopback_c, 5000, "passive"),
            400,
            Some("no-media-address"),
        ),
        // With one: taken.
        ("m3", loopback_c, no_ice(loopback_c, 5000, "passive"), 200, None),
    ];
    for (call, client_c, answer, status, reason) in cases {
        let r = exchange(call, no_ice(client_c, 4000, "actpass"), answer);
        assert_eq!(r.status(), status, "{call}: {}", r.raw);
        if let Some(reason) = reason {
            assert_eq!(r.json()["reason"], reason, "{call}");
        }
    }
    // A second call for the same client address is not taken.
    let r = exchange(
        "m4",
        no_ice(loopback_c, 4000, "actpass"),
        no_ice(loopback_c, 5002, "passive"),
    );
    assert_eq!(r.status(), 409, "{}", r.raw);
    assert!(r.raw.contains("client media address"), "{}", r.raw);
}
