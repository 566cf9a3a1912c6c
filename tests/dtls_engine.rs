//! Back-to-back DTLS-SRTP in the engine, on virtual time: two real DTLS
//! endpoints (dimpl, each with its own certificate) reach each other only
//! through the engine, which terminates DTLS on both legs. Media and SRTCP
//! cross under each leg's own keys, and the proxy's reports reach the
//! client protected with the client leg's keys.

mod common;

use common::*;
use rtp_middlebox::dtls::{sha256, srtp_keys_from_export, suite_of, DtlsIdentity, LegKeys};
use rtp_middlebox::engine::dtls::{CallSetup, DtlsRole, DtlsSettings, PeerDtls};
use rtp_middlebox::engine::{EngineConfig, Event, RtcpMode, Side, Verdict};
use rtp_middlebox::srtp::media_context;
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::rtcp::RtcpPacket;
use rtp_middlebox::wire::stun::{StunClass, ATTR_USERNAME};
use rtp_middlebox::wire::Ssrc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A DTLS endpoint of the test: a browser or an SFU.
struct Peer {
    dtls: dimpl::Dtls,
    identity: DtlsIdentity,
    active: bool,
    keys: Option<LegKeys>,
    connected: bool,
    peer_fingerprint: Option<[u8; 32]>,
    outbox: Vec<Vec<u8>>,
}

impl Peer {
    fn new(active: bool, epoch: Instant) -> Peer {
        let identity = DtlsIdentity::generate().unwrap();
        let config = Arc::new(dimpl::Config::default());
        let mut dtls = dimpl::Dtls::new_auto(config, identity.dimpl_certificate(), epoch);
        if active {
            dtls.set_active(true);
        }
        Peer {
            dtls,
            identity,
            active,
            keys: None,
            connected: false,
            peer_fingerprint: None,
            outbox: Vec::new(),
        }
    }

    fn description(&self, ufrag: &str) -> PeerDtls {
        PeerDtls {
            ufrag: ufrag.into(),
            fingerprints: vec![self.identity.fingerprint()],
            role: if self.active {
                DtlsRole::Client
            } else {
                DtlsRole::Server
            },
        }
    }

    fn at(&mut self, t: Instant) {
        self.dtls.handle_timeout(t).unwrap();
        self.poll();
    }

    fn feed(&mut self, t: Instant, record: &[u8]) {
        self.dtls.handle_timeout(t).unwrap();
        let _ = self.dtls.handle_packet(record);
        self.poll();
    }

    fn poll(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            match self.dtls.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => self.outbox.push(p.to_vec()),
                dimpl::Output::Timeout(_) => return,
                dimpl::Output::Connected => self.connected = true,
                dimpl::Output::PeerCert(der) => self.peer_fingerprint = Some(sha256(der)),
                dimpl::Output::KeyingMaterial(m, profile) => {
                    self.keys = srtp_keys_from_export(&m, suite_of(profile).unwrap(), self.active);
                }
                _ => {}
            }
        }
    }
}

const CLIENT_UFRAG: &str = "cLiE";
const UPSTREAM_UFRAG: &str = "uPsT";

struct Call {
    driver: Driver,
    client: Peer,
    upstream: Peer,
    proxy: DtlsIdentity,
    epoch: Instant,
    now: MonoTime,
    id: rtp_middlebox::engine::SessionId,
}

impl Call {
    fn instant(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.now.as_nanos())
    }

    /// Delivers everything both peers and the engine have to send until
    /// nothing moves, advancing time 1 ms per round.
    fn pump(&mut self) {
        for _ in 0..200 {
            self.now = self.now + Duration::from_millis(1);
            let t = self.instant();
            self.client.at(t);
            self.upstream.at(t);
            let mut moved = false;
            for record in std::mem::take(&mut self.client.outbox) {
                moved = true;
                self.driver.client_datagram(self.now, addr(CLIENT), &record);
                self.route();
            }
            for record in std::mem::take(&mut self.upstream.outbox) {
                moved = true;
                self.driver.handle_datagram(self.now, Side::Upstream, self.id, &record);
                self.route();
            }
            self.driver.handle_timeout(self.now);
            while let Some(sent) = self.driver.poll_transmit() {
                moved = true;
                self.peer(sent.toward).feed(t, &sent.datagram);
            }
            if !moved && self.client.connected && self.upstream.connected {
                return;
            }
        }
    }

    fn peer(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::Client => &mut self.client,
            Side::Upstream => &mut self.upstream,
        }
    }

    /// Hands what the engine sent for the last input to the peers.
    fn route(&mut self) {
        let t = self.instant();
        for sent in std::mem::take(&mut self.driver.last_sent) {
            self.peer(sent.toward).feed(t, &sent.datagram);
        }
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.driver.poll_event()).collect()
    }
}

/// A call where the client is the DTLS client (Chromium answering an SFU's
/// offer with `a=setup:active`) and the upstream the server.
fn call(mode: RtcpMode, client_fingerprint_ok: bool) -> Call {
    let epoch = epoch();
    let proxy = DtlsIdentity::generate().unwrap();
    let config = EngineConfig {
        relays: vec![rtp_middlebox::engine::RelaySettings {
            dtls_terminate: true,
            ..relay(mode)
        }],
        dtls: Some(DtlsSettings::new(Arc::new(proxy.clone()), epoch)),
        idle_timeout: None,
        ..EngineConfig::default()
    };
    let mut driver = Driver::new(config);
    let client = Peer::new(true, epoch);
    let upstream = Peer::new(false, epoch);
    let mut client_desc = client.description(CLIENT_UFRAG);
    if !client_fingerprint_ok {
        client_desc.fingerprints = vec![[0xab; 32]];
    }
    driver
        .set_call(
            MonoTime::ZERO,
            CallSetup {
                call_id: "call-1".into(),
                client: client_desc,
                upstream: upstream.description(UPSTREAM_UFRAG),
            },
        )
        .unwrap();
    // ICE: the client's check opens the session and binds the call.
    let username = format!("{UPSTREAM_UFRAG}:{CLIENT_UFRAG}");
    let check = stun(StunClass::Request, [7; 12], &[(ATTR_USERNAME, username.as_bytes())]);
    let now = ms(10);
    assert!(matches!(
        driver.client_datagram(now, addr(CLIENT), &check),
        Verdict::Forward(_)
    ));
    let id = driver.sessions().next().unwrap().id;
    assert_eq!(driver.call_session("call-1"), Some(id));
    Call {
        driver,
        client,
        upstream,
        proxy,
        epoch,
        now,
        id,
    }
}

fn protect(keys: &rtp_middlebox::srtp::SrtpKeys, plain: &[u8]) -> Vec<u8> {
    media_context(keys).unwrap().encrypt_rtp(plain).unwrap().to_vec()
}

#[test]
fn both_legs_handshake_with_their_own_keys_and_media_crosses() {
    let mut c = call(RtcpMode::Forward, true);
    c.pump();
    assert!(c.client.connected && c.upstream.connected, "both peers connected");
    // Each peer saw the proxy's certificate, not the other peer's.
    assert_eq!(c.client.peer_fingerprint, Some(c.proxy.fingerprint()));
    assert_eq!(c.upstream.peer_fingerprint, Some(c.proxy.fingerprint()));
    let events = c.events();
    let connected: Vec<Side> = events
        .iter()
        .filter_map(|e| match e {
            Event::DtlsConnected { side, .. } => Some(*side),
            _ => None,
        })
        .collect();
    assert_eq!(connected.len(), 2, "{events:?}");
    let ck = c.client.keys.clone().unwrap();
    let uk = c.upstream.keys.clone().unwrap();
    assert_ne!(ck.own_write, uk.own_write, "each leg has its own keys");

    // Client → upstream: opened with the client leg's keys, protected with
    // the upstream leg's; the upstream decrypts the client's plaintext.
    let mut upstream_open = media_context(&uk.peer_write).unwrap();
    let mut client_open = media_context(&ck.peer_write).unwrap();
    let mut client_ctx = media_context(&ck.own_write).unwrap();
    let mut upstream_ctx = media_context(&uk.own_write).unwrap();
    for seq in 0..50u16 {
        let plain = rtp(111, seq, u32::from(seq) * 960, Ssrc(0x1111), 80);
        let wire = client_ctx.encrypt_rtp(&plain).unwrap();
        let v = c.driver.client_datagram(c.now, addr(CLIENT), &wire);
        assert!(matches!(v, Verdict::Rewritten(_)), "{v:?}");
        let sent = &c.driver.last_sent[0];
        assert_eq!(sent.toward, Side::Upstream);
        assert_ne!(sent.datagram, wire.to_vec(), "re-protected");
        assert_eq!(upstream_open.decrypt_rtp(&sent.datagram).unwrap().to_vec(), plain);

        let back = rtp(96, seq, u32::from(seq) * 3000, Ssrc(0x2222), 900);
        let wire = upstream_ctx.encrypt_rtp(&back).unwrap();
        c.driver.handle_datagram(c.now, Side::Upstream, c.id, &wire);
        let sent = &c.driver.last_sent[0];
        assert_eq!(sent.toward, Side::Client);
        assert_eq!(client_open.decrypt_rtp(&sent.datagram).unwrap().to_vec(), back);
        c.now = c.now + Duration::from_millis(20);
    }
    // Measured in the clear: payload bytes are the plaintext's.
    let snap = c.driver.snapshot(c.now, c.id).unwrap();
    let src = source(&snap, Side::Client, Ssrc(0x1111));
    assert_eq!(src.rtp.as_ref().unwrap().packets_received, 50);

    // A packet under the wrong keys is dropped, not forwarded.
    let forged = protect(&uk.own_write, &rtp(111, 60, 0, Ssrc(0x1111), 80));
    assert!(matches!(
        c.driver.client_datagram(c.now, addr(CLIENT), &forged),
        Verdict::Drop(_)
    ));
}

#[test]
fn auto_reports_reach_the_client_under_the_client_legs_keys() {
    let mut c = call(RtcpMode::Auto, true);
    c.pump();
    c.driver.set_wall_clock(c.now, Duration::from_secs(1_800_000_000));
    let uk = c.upstream.keys.clone().unwrap();
    let ck = c.client.keys.clone().unwrap();
    let mut upstream_ctx = media_context(&uk.own_write).unwrap();
    let mut client_srtcp = rtp_middlebox::srtp::SrtcpReader::new(&ck.peer_write).unwrap();
    // The SFU sends video and nobody reports on it: `auto` generates
    // receiver reports toward the SFU, protected with the upstream leg's
    // own keys; anything sent toward the client opens with the client leg's.
    let mut reports_to_upstream = 0;
    let mut upstream_srtcp = rtp_middlebox::srtp::SrtcpReader::new(&uk.peer_write).unwrap();
    for i in 0..400u32 {
        let seq = i as u16;
        let wire = upstream_ctx
            .encrypt_rtp(&rtp(96, seq, i * 3000, Ssrc(0x2222), 900))
            .unwrap();
        c.driver.handle_datagram(c.now, Side::Upstream, c.id, &wire);
        c.now = c.now + Duration::from_millis(33);
        c.driver.handle_timeout(c.now);
        while let Some(sent) = c.driver.poll_transmit() {
            let mut plain = Vec::new();
            match sent.toward {
                Side::Upstream => {
                    upstream_srtcp
                        .decrypt(&sent.datagram, &mut plain)
                        .expect("opens with the upstream leg's keys");
                    let about_video = rtp_middlebox::wire::rtcp::walk(&plain).flatten().any(|p| match p {
                        RtcpPacket::ReceiverReport(r) => r.report_blocks().any(|b| b.ssrc == Ssrc(0x2222)),
                        _ => false,
                    });
                    reports_to_upstream += usize::from(about_video);
                }
                Side::Client => {
                    client_srtcp
                        .decrypt(&sent.datagram, &mut plain)
                        .expect("opens with the client leg's keys");
                }
            }
        }
    }
    assert!(reports_to_upstream >= 5, "auto generated {reports_to_upstream} reports");
}

#[test]
fn a_wrong_fingerprint_fails_the_leg_and_no_media_passes() {
    let mut c = call(RtcpMode::Forward, false);
    c.pump();
    let failures: Vec<(Side, &str)> = c
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::DtlsFailed { side, reason, .. } => Some((*side, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(failures, vec![(Side::Client, "fingerprint_mismatch")]);
    assert_eq!(c.driver.counters().dtls_failed, 1);
    let dtls = c.driver.snapshot(c.now, c.id).unwrap().dtls.unwrap();
    assert_eq!((dtls.client, dtls.failure), ("failed", Some("fingerprint_mismatch")));
    let keys = rtp_middlebox::srtp::SrtpKeys::generate(rtp_middlebox::srtp::CryptoSuite::AesCm128HmacSha1_80).unwrap();
    let v = c
        .driver
        .client_datagram(c.now, addr(CLIENT), &protect(&keys, &rtp(111, 1, 0, Ssrc(1), 80)));
    assert!(matches!(v, Verdict::Drop(_)), "{v:?}");
    assert!(c.driver.last_sent.is_empty());
}

#[test]
fn sessions_without_a_call_pass_dtls_through() {
    let epoch = epoch();
    let config = EngineConfig {
        relays: vec![rtp_middlebox::engine::RelaySettings {
            dtls_terminate: true,
            ..relay(RtcpMode::Forward)
        }],
        dtls: Some(DtlsSettings::new(Arc::new(DtlsIdentity::generate().unwrap()), epoch)),
        ..EngineConfig::default()
    };
    let mut driver = Driver::new(config);
    let mut client = Peer::new(true, epoch);
    client.at(epoch);
    let hello = client.outbox.remove(0);
    let v = driver.client_datagram(ms(1), addr(CLIENT), &hello);
    assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
    assert_eq!(driver.last_sent[0].datagram, hello);
}

/// The `Instant` standing for virtual time zero: any will do, since dimpl
/// and the engine only use differences from it.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

#[test]
fn garbage_records_are_discarded_and_the_call_still_connects() {
    let mut c = call(RtcpMode::Forward, true);
    // Forged records on the client's 5-tuple before and during the
    // handshake: DTLS content types with random bodies.
    let mut seed = 0x1234_5678u32;
    for i in 0..500u32 {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let len = 13 + (seed % 200) as usize;
        let mut record: Vec<u8> = (0..len).map(|j| (seed >> (j % 24)) as u8).collect();
        record[0] = 20 + (i % 4) as u8; // change_cipher_spec, alert, handshake, application_data
        let v = c.driver.client_datagram(c.now, addr(CLIENT), &record);
        assert_eq!(v, Verdict::Consumed);
    }
    c.pump();
    let snap = c.driver.snapshot(c.now, c.id).unwrap();
    assert!(
        c.client.connected && c.upstream.connected,
        "the real handshake completes: {:?} {:?} client {:?}",
        snap.dtls,
        c.events(),
        c.client.dtls
    );
    assert_eq!(c.driver.counters().dtls_failed, 0);
    assert_eq!(c.driver.counters().dtls_connected, 2);
}

#[test]
fn handshakes_are_bounded() {
    let epoch = epoch();
    let mut settings = DtlsSettings::new(Arc::new(DtlsIdentity::generate().unwrap()), epoch);
    settings.max_handshakes = 2; // one session's two legs
    let config = EngineConfig {
        relays: vec![rtp_middlebox::engine::RelaySettings {
            dtls_terminate: true,
            ..relay(RtcpMode::Forward)
        }],
        dtls: Some(settings),
        ..EngineConfig::default()
    };
    let mut driver = Driver::new(config);
    let peers: Vec<(Peer, Peer)> = (0..2)
        .map(|_| (Peer::new(true, epoch), Peer::new(false, epoch)))
        .collect();
    for (i, (client, upstream)) in peers.iter().enumerate() {
        let setup = CallSetup {
            call_id: format!("call-{i}"),
            client: client.description(&format!("c{i}")),
            upstream: upstream.description(&format!("u{i}")),
        };
        driver.set_call(MonoTime::ZERO, setup).unwrap();
    }
    // Both clients check; each starts its handshake at once.
    for i in 0..2 {
        let from = addr(&format!("192.0.2.{}:5000", 20 + i));
        let check = stun(
            StunClass::Request,
            [i as u8; 12],
            &[(ATTR_USERNAME, format!("u{i}:c{i}").as_bytes())],
        );
        driver.client_datagram(ms(1), from, &check);
        let mut p = Peer::new(true, epoch);
        p.at(epoch);
        driver.client_datagram(ms(2), from, &p.outbox.remove(0));
    }
    assert!(driver.call_session("call-0").is_some());
    assert_eq!(driver.call_session("call-1"), None, "over the handshake budget");
    assert_eq!(driver.counters().dtls_refused, 1);
}
