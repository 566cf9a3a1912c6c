//! Back-to-back DTLS-SRTP in the engine, on virtual time: two real DTLS
//! endpoints (dimpl, each with its own certificate) reach each other only
//! through the engine, which terminates DTLS on both legs. Media and SRTCP
//! cross under each leg's own keys, and the proxy's reports reach the
//! client protected with the client leg's keys.

mod common;

use common::dtls::*;
use common::*;
use rtp_middlebox::dtls::DtlsIdentity;
use rtp_middlebox::engine::dtls::{CallSetup, DtlsSettings};
use rtp_middlebox::engine::{EngineConfig, Event, RtcpMode, Side, Verdict};
use rtp_middlebox::srtp::media_context;
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::rtcp::RtcpPacket;
use rtp_middlebox::wire::stun::{StunClass, ATTR_USERNAME};
use rtp_middlebox::wire::Ssrc;
use std::sync::Arc;
use std::time::Duration;

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
    let (epoch, _, mut driver) = terminating_driver(RtcpMode::Forward);
    let mut client = Peer::new(true, epoch);
    client.at(epoch);
    let hello = client.outbox.remove(0);
    let v = driver.client_datagram(ms(1), addr(CLIENT), &hello);
    assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
    assert_eq!(driver.last_sent[0].datagram, hello);
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
            client_address: None,
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

#[test]
fn a_call_without_ice_binds_by_the_client_media_address() {
    let mut c = call_without_ice(RtcpMode::Terminate);
    c.pump();
    assert!(c.client.connected && c.upstream.connected, "both peers connected");
    assert_eq!(c.client.peer_fingerprint, Some(c.proxy.fingerprint()));
    assert_eq!(c.upstream.peer_fingerprint, Some(c.proxy.fingerprint()));
    let connected = c
        .events()
        .iter()
        .filter(|e| matches!(e, Event::DtlsConnected { .. }))
        .count();
    assert_eq!(connected, 2);
    // Media crosses under each leg's keys.
    let ck = c.client.keys.clone().unwrap();
    let uk = c.upstream.keys.clone().unwrap();
    let plain = rtp(0, 1, 160, Ssrc(0x2222), 160);
    let v = c
        .driver
        .client_datagram(c.now, addr(CLIENT), &protect(&ck.own_write, &plain));
    assert!(matches!(v, Verdict::Rewritten(_)), "{v:?}");
    let sent = c.driver.last_sent[0].datagram.clone();
    let mut open = media_context(&uk.peer_write).unwrap();
    assert_eq!(open.decrypt_rtp(&sent).unwrap().to_vec(), plain);
}

#[test]
fn a_call_without_ice_is_not_bound_from_another_address() {
    let (epoch, _, mut driver) = terminating_driver(RtcpMode::Forward);
    let (client, upstream) = (Peer::new(true, epoch), Peer::new(false, epoch));
    let no_ice = |p: &Peer| rtp_middlebox::engine::dtls::PeerDtls {
        ufrag: None,
        ..p.description("-")
    };
    let setup = CallSetup {
        call_id: "sip-1".into(),
        client: no_ice(&client),
        upstream: no_ice(&upstream),
        client_address: Some(addr(CLIENT)),
    };
    driver.set_call(MonoTime::ZERO, setup.clone()).unwrap();
    // A second call waiting for the same address is refused.
    let twin = CallSetup {
        call_id: "sip-2".into(),
        ..setup.clone()
    };
    assert!(driver.set_call(MonoTime::ZERO, twin).is_err());
    // Half ICE, half not: nothing to bind by.
    let mixed = CallSetup {
        call_id: "sip-3".into(),
        client: client.description("c"),
        ..setup
    };
    assert!(driver.set_call(MonoTime::ZERO, mixed).is_err());
    // A ClientHello from a stranger's address passes through unbound.
    let mut stranger = Peer::new(true, epoch);
    stranger.at(epoch);
    let v = driver.client_datagram(ms(1), addr("192.0.2.99:4000"), &stranger.outbox.remove(0));
    assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
    assert_eq!(driver.call_session("sip-1"), None);
    assert_eq!(driver.counters().dtls_calls_bound, 0);
}

/// A client that restarts ICE from a new address (a network change): the
/// renegotiation through the calls API keeps the call's DTLS association
/// and names the new ufrags; with `nat_rebinding = "stun"` the first check
/// from the new address, carrying them, is a rebinding check of the bound
/// session, so once the upstream accepts it and the new address answers
/// the proxy's probe the session (and both DTLS legs in it) moves there,
/// and media from the new address crosses under the same keys.
#[test]
fn an_ice_restart_from_a_new_address_takes_the_dtls_session_along() {
    let mut c = call(RtcpMode::Forward, true);
    c.pump();
    assert!(c.client.connected && c.upstream.connected);
    c.driver
        .reconfigure(|cfg| cfg.nat_rebinding = rtp_middlebox::engine::NatRebinding::Stun);
    let (ck, uk) = (c.client.keys.clone().unwrap(), c.upstream.keys.clone().unwrap());
    let mut client_ctx = media_context(&ck.own_write).unwrap();
    let mut upstream_open = media_context(&uk.peer_write).unwrap();
    let mut media = |c: &mut Call, from: &str, seq: u16| {
        let plain = rtp(111, seq, u32::from(seq) * 960, Ssrc(0x1111), 80);
        let wire = client_ctx.encrypt_rtp(&plain).unwrap();
        let v = c.driver.client_datagram(c.now, addr(from), &wire);
        let opened = c
            .driver
            .last_sent
            .first()
            .and_then(|s| upstream_open.decrypt_rtp(&s.datagram).ok());
        (v, opened.map(|p| p.to_vec() == plain))
    };
    for seq in 0..5 {
        assert_eq!(media(&mut c, CLIENT, seq).1, Some(true));
        c.now = c.now + Duration::from_millis(20);
    }

    // The renegotiation: same certificates and roles, new ufrags.
    let restarted = CallSetup {
        call_id: "call-1".into(),
        client: c.client.description("cLiR"),
        upstream: c.upstream.description("uPsR"),
        client_address: None,
    };
    c.driver
        .set_call(c.now, restarted)
        .expect("a renegotiation of the bound call");
    assert_eq!(c.driver.call_session("call-1"), Some(c.id));

    // Two seconds later (the old address silent), the client's first check
    // with the new ufrags arrives from its new address.
    const NEW: &str = "192.0.2.77:61000";
    c.now = c.now + Duration::from_secs(2);
    let check = stun(StunClass::Request, [0x51; 12], &[(ATTR_USERNAME, b"uPsR:cLiR")]);
    c.driver.client_datagram(c.now, addr(NEW), &check);
    assert_eq!(c.driver.sessions().count(), 1, "no second session for the new address");
    assert!(
        c.driver
            .last_sent
            .iter()
            .any(|s| s.toward == Side::Upstream && s.datagram == check),
        "the check went to the upstream on the bound session"
    );
    let success = stun(StunClass::SuccessResponse, [0x51; 12], &[]);
    c.driver.handle_datagram(c.now, Side::Upstream, c.id, &success);
    let probe = c
        .driver
        .last_sent
        .iter()
        .find(|s| s.datagram.len() == 28 && s.datagram[..2] == [0, 1])
        .map(|s| s.datagram.clone())
        .expect("the proxy's probe to the new address");
    let answer = stun(StunClass::ErrorResponse, probe[8..20].try_into().unwrap(), &[]);
    assert_eq!(c.driver.client_datagram(c.now, addr(NEW), &answer), Verdict::Consumed);
    assert_eq!(
        c.driver.session(c.id).unwrap().info.client,
        addr(NEW),
        "the session moved"
    );

    // Media from the new address: opened and re-protected by the same legs.
    for seq in 5..10 {
        let (v, opened) = media(&mut c, NEW, seq);
        assert!(matches!(v, Verdict::Rewritten(_)), "{v:?}");
        assert_eq!(opened, Some(true));
        c.now = c.now + Duration::from_millis(20);
    }
    assert_eq!(c.driver.sessions().count(), 1);
}
