//! SRTCP inside the engine with provisioned keys, on virtual time: reports
//! are read from SRTCP, tampered SRTCP is dropped and counted (never
//! forwarded), the proxy's own reports are protected with the key the
//! receiver expects, and `terminate` re-protects what it rewrites at the
//! mapped index. Every protected datagram the engine produces is opened
//! with the independent `rtc-srtp` reader.

mod common;
use common::{ms, report_block, sender_info, session_on, tap, Driver};

use rtp_middlebox::engine::{DropReason, EngineConfig, RtcpMode, SessionId, SessionKeys, Side, Verdict};
use rtp_middlebox::srtp::{reprotect_index, srtcp_trailer, CryptoSuite, SrtcpReader, SrtcpWriter, SrtpError, SrtpKeys};
use rtp_middlebox::stats::ClockRates;
use rtp_middlebox::wire::ntp::NtpTime;
use rtp_middlebox::wire::rtcp::{self, ReportBlock, RtcpPacket};
use rtp_middlebox::wire::Ssrc;
use std::time::Duration;

const CLIENT_AUDIO: Ssrc = Ssrc(0xc1c1_0001);
const SFU_AUDIO: Ssrc = Ssrc(0x5f50_0001);

fn keys(suite: CryptoSuite, seed: u8) -> SrtpKeys {
    let material: Vec<u8> = (0..suite.key_material_len() as u8)
        .map(|i| i.wrapping_mul(seed) ^ 0x3c)
        .collect();
    let (k, s) = material.split_at(suite.master_key_len());
    SrtpKeys::new(suite, k, s).unwrap()
}

fn rtp(seq: u16, ssrc: Ssrc) -> Vec<u8> {
    // SRTP: the payload is ciphertext and a 10-byte tag follows; the proxy
    // reads only the clear header.
    common::pcmu_filled(seq, ssrc.0, 160 + 10, 0x5a)
}

/// A tap in `mode` without clock rates, one session open.
fn engine(mode: RtcpMode) -> (Driver, SessionId) {
    session_on(tap(mode, ClockRates::new(&Default::default())), EngineConfig::default())
}

/// Provisions the client's keys alone (the upstream's SRTCP stays unread).
fn give_client_keys(e: &mut Driver, id: SessionId, client: &SrtpKeys) {
    let k = SessionKeys {
        client: Some(client.clone()),
        upstream: None,
    };
    assert_eq!(
        e.set_session_keys(id, Some(&k)).unwrap(),
        rtp_middlebox::engine::KeysOutcome::Done
    );
}

/// A session in `mode` with keys of `suite` provisioned, the client's
/// (seed 7) and the upstream's (seed 11): the driver, the session, those
/// keys, and whether the session was known to `set_session_keys`.
fn keyed(suite: CryptoSuite, mode: RtcpMode) -> (Driver, SessionId, [SrtpKeys; 2], bool) {
    let (kc, ku) = (keys(suite, 7), keys(suite, 11));
    let (mut e, id) = engine(mode);
    let keys = SessionKeys {
        client: Some(kc.clone()),
        upstream: Some(ku.clone()),
    };
    let known = e.set_session_keys(id, Some(&keys)).unwrap() == rtp_middlebox::engine::KeysOutcome::Done;
    (e, id, [kc, ku], known)
}

fn sr(sender: Ssrc, ntp: NtpTime, blocks: &[ReportBlock]) -> Vec<u8> {
    common::sr(sender, &sender_info(ntp, 8000, 50, 8000), blocks, Some(b"endpoint"))
}

/// `plain` protected by `writer`, at its SSRC's next index.
fn protect(writer: &mut SrtcpWriter, plain: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    writer.encrypt(plain, &mut wire).unwrap();
    wire
}

/// `plain` protected by a new SRTCP writer under `keys`: its SSRC's first
/// index.
fn protected_by_new_writer(keys: &SrtpKeys, plain: &[u8]) -> Vec<u8> {
    protect(&mut SrtcpWriter::new(keys).unwrap(), plain)
}

fn block(about: Ssrc, lsr: NtpTime, dlsr_ms: u64) -> ReportBlock {
    report_block(about, (12, 3), 49, 40, lsr.compact(), Duration::from_millis(dlsr_ms))
}

fn wall(t_ms: u64) -> NtpTime {
    NtpTime::from_unix(Duration::from_millis(1_795_000_000_000 + t_ms))
}

#[test]
fn reports_inside_srtcp_are_read_and_rtt_measured_for_every_suite() {
    for suite in CryptoSuite::ALL {
        let (mut e, id, [kc, ku], known) = keyed(suite, RtcpMode::Forward);
        assert!(known);
        for seq in 0..50 {
            e.handle_datagram(ms(u64::from(seq) * 20), Side::Client, id, &rtp(seq, CLIENT_AUDIO));
        }
        // The client's SRTCP SR (its own key), forwarded as is.
        let wire = protected_by_new_writer(&kc, &sr(CLIENT_AUDIO, wall(1000), &[]));
        assert_eq!(
            e.handle_datagram(ms(1000), Side::Client, id, &wire),
            Verdict::Forward(rtp_middlebox::wire::PacketKind::Rtcp)
        );
        // The SFU's SRTCP RR about it, 60 ms later, held 20 ms: RTT 40 ms.
        let mut rr = Vec::new();
        rtcp::write_receiver_report(&mut rr, SFU_AUDIO, &[block(CLIENT_AUDIO, wall(1000), 20)]);
        let wire = protected_by_new_writer(&ku, &rr);
        e.handle_datagram(ms(1060), Side::Upstream, id, &wire);

        let snap = e.snapshot(ms(1100), id).unwrap();
        let client = snap.side(Side::Client);
        assert_eq!(client.srtcp_opened, 1, "{suite}");
        let src = common::source(&snap, Side::Client, CLIENT_AUDIO);
        assert_eq!(src.sender_report.as_ref().unwrap().packet_count, 50, "{suite}: SR read");
        let remote = src.remote.as_ref().expect("the RR inside SRTCP was read");
        assert_eq!(remote.cumulative_lost, 3);
        let rtt = remote.rtt.last.unwrap();
        assert!((rtt - 0.040).abs() < 0.0002, "{suite}: RTT {rtt}");
        assert_eq!(src.srtcp_packets, 0, "nothing unreadable");
        // Fingerprints, never keys, in the snapshot.
        let json = serde_json::to_string(&snap).unwrap();
        assert!(json.contains(&kc.fingerprint()));
        assert!(!json.contains(&kc.expose_inline_secret()));
    }
}

#[test]
fn tampered_srtcp_is_dropped_and_counted_never_forwarded() {
    let suite = CryptoSuite::AesCm128HmacSha1_80;
    let (mut e, id, [kc, _], _) = keyed(suite, RtcpMode::Forward);
    let wire = protected_by_new_writer(&kc, &sr(CLIENT_AUDIO, wall(0), &[]));
    let mut bad = wire.clone();
    bad[12] ^= 0x01;
    assert_eq!(
        e.handle_datagram(ms(10), Side::Client, id, &bad),
        Verdict::Drop(DropReason::Srtcp(SrtpError::AuthFailed))
    );
    // Wrong key (the upstream's) for the client's SRTCP: also refused.
    let bad = protected_by_new_writer(&keys(suite, 99), &sr(CLIENT_AUDIO, wall(0), &[]));
    assert_eq!(
        e.handle_datagram(ms(20), Side::Client, id, &bad),
        Verdict::Drop(DropReason::Srtcp(SrtpError::AuthFailed))
    );
    assert_eq!(e.counters().srtcp_auth_failures, 2);
    // The genuine packet still opens (failures leave no replay state)…
    assert!(matches!(
        e.handle_datagram(ms(30), Side::Client, id, &wire),
        Verdict::Forward(_)
    ));
    // …once: the same packet again is a replay.
    assert_eq!(
        e.handle_datagram(ms(40), Side::Client, id, &wire),
        Verdict::Drop(DropReason::Srtcp(SrtpError::Replayed))
    );
    let snap = e.snapshot(ms(50), id).unwrap();
    assert_eq!(snap.side(Side::Client).srtcp_auth_failures, 2);
    assert_eq!(snap.side(Side::Client).srtcp_opened, 1);
}

#[test]
fn auto_protects_generated_reports_with_the_key_the_receiver_expects() {
    for suite in CryptoSuite::ALL {
        let (mut e, id, [kc, ku], _) = keyed(suite, RtcpMode::Auto);
        let mut client_w = SrtcpWriter::new(&kc).unwrap();
        // 40 s of client audio with SRs, and the SFU never reports (auto
        // calls an audio stream suppressed after 3 × 5 s).
        let mut out = Vec::new();
        for seq in 0..2000u16 {
            let t = u64::from(seq) * 20;
            e.handle_datagram(ms(t), Side::Client, id, &rtp(seq, CLIENT_AUDIO));
            if seq % 100 == 50 {
                let wire = protect(&mut client_w, &sr(CLIENT_AUDIO, wall(t), &[]));
                e.handle_datagram(ms(t), Side::Client, id, &wire);
            }
            e.set_wall_clock(ms(t), Duration::from_millis(1_795_000_000_000 + t));
            e.handle_timeout(ms(t));
            while let Some(tx) = e.poll_transmit() {
                out.push(tx);
            }
        }
        assert!(!out.is_empty(), "{suite}: no reports generated");
        // The client opens them with the upstream's key (what it expects
        // the upstream to protect with), and finds a block about its stream.
        let mut client_reader = SrtcpReader::new(&ku).unwrap();
        let mut plain = Vec::new();
        let mut indices = Vec::new();
        for tx in out.iter().filter(|t| t.toward == Side::Client) {
            client_reader
                .decrypt(&tx.datagram, &mut plain)
                .unwrap_or_else(|err| panic!("{suite}: the client cannot open a generated report: {err}"));
            indices.push(srtcp_trailer(&tx.datagram, suite.srtcp_tag_len()).unwrap().1);
            let about_us = rtcp::walk(&plain).flatten().any(|p| match p {
                RtcpPacket::ReceiverReport(rr) => rr.report_blocks().any(|b| b.ssrc == CLIENT_AUDIO),
                _ => false,
            });
            assert!(about_us, "{suite}");
        }
        assert!(!indices.is_empty(), "{suite}");
        assert_eq!(indices[0], 1, "the proxy's own SSRC starts its own index");
        assert!(indices.windows(2).all(|w| w[1] == w[0] + 1));
    }
}

#[test]
fn terminate_reprotects_at_the_mapped_index() {
    let suite = CryptoSuite::AeadAes128Gcm;
    let (mut e, id, [kc, _], _) = keyed(suite, RtcpMode::Terminate);
    let mut client_w = SrtcpWriter::new(&kc).unwrap();
    // The client's SR carries a block about the SFU's stream: terminate
    // removes it and re-protects the rest toward the upstream.
    let wire = protect(
        &mut client_w,
        &sr(CLIENT_AUDIO, wall(0), &[block(SFU_AUDIO, wall(0), 5)]),
    );
    let original_index = srtcp_trailer(&wire, suite.srtcp_tag_len()).unwrap().1;
    let v = e.handle_datagram(ms(0), Side::Client, id, &wire);
    assert_eq!(v, Verdict::Rewritten(rtp_middlebox::wire::PacketKind::Rtcp));
    let rewritten = e.rewritten().to_vec();
    let (_, index) = srtcp_trailer(&rewritten, suite.srtcp_tag_len()).unwrap();
    assert_eq!(index, reprotect_index(original_index));
    // The upstream opens it with the client's key: the SR is there, the
    // report block is not.
    let mut upstream_reader = SrtcpReader::new(&kc).unwrap();
    let mut plain = Vec::new();
    upstream_reader.decrypt(&rewritten, &mut plain).unwrap();
    let packets: Vec<_> = rtcp::walk(&plain).flatten().collect();
    match &packets[0] {
        RtcpPacket::SenderReport(sr) => {
            assert_eq!(sr.sender, CLIENT_AUDIO);
            assert_eq!(sr.report_blocks().count(), 0);
        }
        other => panic!("{other:?}"),
    }
    // A second compound without report blocks is re-protected too (one
    // index sequence for the receiver), at its mapped index.
    let wire = protect(&mut client_w, &sr(CLIENT_AUDIO, wall(1000), &[]));
    let second = srtcp_trailer(&wire, suite.srtcp_tag_len()).unwrap().1;
    assert!(matches!(
        e.handle_datagram(ms(1000), Side::Client, id, &wire),
        Verdict::Rewritten(_)
    ));
    let (_, index) = srtcp_trailer(e.rewritten(), suite.srtcp_tag_len()).unwrap();
    assert_eq!(index, reprotect_index(second));
    upstream_reader.decrypt(e.rewritten(), &mut plain).unwrap();
}

#[test]
fn without_keys_srtcp_is_forwarded_unread_and_rtp_stats_still_work() {
    let suite = CryptoSuite::AesCm128HmacSha1_80;
    let (mut plain_e, plain_id) = engine(RtcpMode::Auto);
    let (mut srtp_e, srtp_id) = engine(RtcpMode::Auto);
    // The same arrivals, once as plain RTP and once SRTP-shaped (payload
    // ciphertext + tag): loss and jitter are identical.
    for seq in 0..300u16 {
        if seq % 17 == 3 {
            continue;
        }
        let t = u64::from(seq) * 20 + u64::from(seq % 3) * 2;
        let mut plain_pkt = rtp(seq, CLIENT_AUDIO);
        plain_pkt.truncate(12 + 160);
        plain_e.handle_datagram(ms(t), Side::Client, plain_id, &plain_pkt);
        srtp_e.handle_datagram(ms(t), Side::Client, srtp_id, &rtp(seq, CLIENT_AUDIO));
    }
    // A DTLS handshake marks the SRTP session; its SRTCP stays unread.
    srtp_e.handle_datagram(
        ms(6000),
        Side::Client,
        srtp_id,
        &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    let wire = protected_by_new_writer(&keys(suite, 5), &sr(CLIENT_AUDIO, wall(0), &[]));
    assert!(matches!(
        srtp_e.handle_datagram(ms(6001), Side::Client, srtp_id, &wire),
        Verdict::Forward(_)
    ));
    let a = plain_e.snapshot(ms(7000), plain_id).unwrap();
    let b = srtp_e.snapshot(ms(7000), srtp_id).unwrap();
    let (ra, rb) = (
        a.side(Side::Client).sources[0].rtp.as_ref().unwrap(),
        b.side(Side::Client).sources[0].rtp.as_ref().unwrap(),
    );
    assert_eq!(ra.packets_received, rb.packets_received);
    assert_eq!(ra.packets_lost, rb.packets_lost);
    assert_eq!(ra.jitter, rb.jitter);
    assert_eq!(b.side(Side::Client).sources[0].srtcp_packets, 1);
    assert!(
        b.side(Side::Client).sources[0].sender_report.is_none(),
        "ciphertext is never read"
    );
}

/// A DTLS 1.2 server flight's ServerHello record choosing SRTP protection
/// profile `profile` in `use_srtp` (RFC 5764 §4.1.1), as Janus sends it.
fn server_hello(profile: u16) -> Vec<u8> {
    rtp_middlebox::sim::dtls::server_hello_record(profile, &[])
}

/// Chrome's bandwidth probe: an RTP packet whose payload is nothing but
/// padding (224 bytes, the count octet last), on the RTX SSRC over SRTP.
fn padding_probe(seq: u16, ssrc: Ssrc) -> Vec<u8> {
    let header = rtp_middlebox::wire::rtp::RtpHeader {
        payload_type: 97,
        seq: rtp_middlebox::wire::SeqNo(seq),
        timestamp: rtp_middlebox::wire::RtpTs(90 * u32::from(seq)),
        ssrc,
        padding: 224,
        ..Default::default()
    };
    common::built(|o| rtp_middlebox::wire::rtp::write_rtp(o, &header, &[]))
}

fn srtp_context(keys: &SrtpKeys) -> rtc_srtp::context::Context {
    use rtc_srtp::protection_profile::ProtectionProfile as P;
    let profile = match keys.suite() {
        CryptoSuite::AesCm128HmacSha1_80 => P::Aes128CmHmacSha1_80,
        CryptoSuite::AesCm128HmacSha1_32 => P::Aes128CmHmacSha1_32,
        CryptoSuite::AeadAes128Gcm => P::AeadAes128Gcm,
        CryptoSuite::AeadAes256Gcm => P::AeadAes256Gcm,
    };
    let provider = rtc_srtp::crypto::default_provider().unwrap();
    rtc_srtp::context::Context::new(
        keys.master_key(),
        keys.master_salt(),
        profile,
        None,
        None,
        provider.crypto(),
    )
    .unwrap()
}

/// Item 6 of issue 14: real SRTP padding-only probes (P = 1, the last octet
/// is auth tag) are all forwarded and counted; with the suite known (from
/// the DTLS ServerHello, or provisioned keys) header and payload bytes
/// leave the tag out; with it unknown the packets still pass.
#[test]
fn srtp_padding_probes_are_never_dropped_and_the_tag_is_not_counted() {
    const RTX: Ssrc = Ssrc(0xc1c1_0097);
    for (how, suite) in [
        ("dtls", Some(CryptoSuite::AesCm128HmacSha1_80)),
        ("dtls", Some(CryptoSuite::AeadAes128Gcm)),
        ("sdes", Some(CryptoSuite::AesCm128HmacSha1_32)),
        ("dtls, no ServerHello seen", None),
    ] {
        let key_suite = suite.unwrap_or(CryptoSuite::AesCm128HmacSha1_80);
        let kc = keys(key_suite, 7);
        let (mut e, id) = engine(RtcpMode::Forward);
        match (how, suite) {
            ("sdes", _) => {
                give_client_keys(&mut e, id, &kc);
            }
            (_, Some(s)) => {
                let profile = match s {
                    CryptoSuite::AesCm128HmacSha1_80 => 1,
                    CryptoSuite::AesCm128HmacSha1_32 => 2,
                    CryptoSuite::AeadAes128Gcm => 7,
                    CryptoSuite::AeadAes256Gcm => 8,
                };
                e.handle_datagram(
                    ms(0),
                    Side::Client,
                    id,
                    &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                );
                e.handle_datagram(ms(1), Side::Upstream, id, &server_hello(profile));
            }
            (_, None) => {
                e.handle_datagram(
                    ms(0),
                    Side::Client,
                    id,
                    &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                );
            }
        }
        let mut ctx = srtp_context(&kc);
        let mut unparsable_as_rtp = 0;
        let n = 200u16;
        let mut wire_bytes = 0;
        for seq in 0..n {
            let wire = ctx.encrypt_rtp(&padding_probe(seq, RTX)).unwrap();
            wire_bytes += wire.len() as u64;
            unparsable_as_rtp += usize::from(rtp_middlebox::wire::rtp::RtpView::parse(&wire).is_err());
            assert_eq!(
                e.handle_datagram(ms(10 + u64::from(seq) * 5), Side::Client, id, &wire),
                Verdict::Forward(rtp_middlebox::wire::PacketKind::Rtp),
                "{how} {suite:?}: probe {seq} forwarded"
            );
        }
        // Without the fix these probes were dropped as BadPadding.
        assert!(unparsable_as_rtp > 0, "{how}: some tags read as a bad padding count");
        let snap = e.snapshot(ms(2000), id).unwrap();
        let rtp = common::source(&snap, Side::Client, RTX).rtp.clone().unwrap();
        assert_eq!(rtp.packets_received, u64::from(n));
        assert_eq!(rtp.header_bytes, 12 * u64::from(n));
        // The encrypted padding cannot be told from payload; the tag is
        // left out when the suite is known.
        let tag = suite.map_or(0, |s| s.srtp_overhead() as u64);
        assert_eq!(
            rtp.payload_bytes,
            wire_bytes - (12 + tag) * u64::from(n),
            "{how} {suite:?}"
        );
        if suite.is_some() {
            assert_eq!(rtp.payload_bytes, 224 * u64::from(n), "{how} {suite:?}");
        }
    }
}

/// A terminate session re-provisioned twice (equal client and upstream
/// keys, then a new upstream key, then the equal keys again), both
/// endpoints sending RTP and SRTCP: across more than 1 000 generated
/// reports per suite, no (key, SSRC, index) appears twice on either leg,
/// counting the endpoints' own SRTCP, the proxy's re-protected compounds
/// and its own reports (RFC 3711 §9.1; RFC 7714 §16 for GCM's nonce).
#[test]
fn rekeying_never_repeats_an_index_under_one_key_for_every_suite() {
    use std::collections::HashSet;
    for suite in CryptoSuite::ALL {
        let fast = rtp_middlebox::engine::ReportPolicy {
            min_interval_video: Duration::from_millis(100),
            min_interval_audio: Duration::from_millis(100),
            ..Default::default()
        };
        let (mut e, id) = session_on(
            tap(RtcpMode::Terminate, ClockRates::new(&Default::default())),
            EngineConfig {
                report_policy: fast,
                ..EngineConfig::default()
            },
        );
        let all = [keys(suite, 7), keys(suite, 11)];
        // Endpoints keep one SRTCP writer (and so one index sequence) per key.
        let mut client_w: Vec<SrtcpWriter> = all.iter().map(|k| SrtcpWriter::new(k).unwrap()).collect();
        let mut sfu_w: Vec<SrtcpWriter> = all.iter().map(|k| SrtcpWriter::new(k).unwrap()).collect();
        let phases = [(0usize, 0usize), (0, 1), (0, 0)];
        let mut seen: HashSet<(usize, u32, u32)> = HashSet::new();
        let mut generated = 0usize;
        let mut wire = Vec::new();
        let mut t = 0u64;
        let mut seq = 0u16;
        for (phase, &(c, u)) in phases.iter().enumerate() {
            let keys_now = SessionKeys {
                client: Some(all[c].clone()),
                upstream: Some(all[u].clone()),
            };
            assert_eq!(
                e.set_session_keys(id, Some(&keys_now)).unwrap(),
                rtp_middlebox::engine::KeysOutcome::Done
            );
            // One datagram on the wire, protected with key `k`: it must open
            // with that key, and its (key, SSRC, index) must be new.
            let mut record = |k: usize, datagram: &[u8], what: &str| {
                let mut plain = Vec::new();
                SrtcpReader::new(&all[k])
                    .unwrap()
                    .decrypt(datagram, &mut plain)
                    .unwrap_or_else(|err| panic!("{suite} phase {phase}: {what} does not open: {err}"));
                let ssrc = u32::from_be_bytes(datagram[4..8].try_into().unwrap());
                let (_, index) = srtcp_trailer(datagram, suite.srtcp_tag_len()).unwrap();
                assert!(
                    seen.insert((k, ssrc, index)),
                    "{suite} phase {phase}: {what} repeats key {k}, SSRC {ssrc:#x}, index {index}"
                );
            };
            let end = t + 20_000;
            while t < end {
                e.handle_datagram(ms(t), Side::Client, id, &rtp(seq, CLIENT_AUDIO));
                e.handle_datagram(ms(t), Side::Upstream, id, &rtp(seq, SFU_AUDIO));
                if seq % 25 == 0 {
                    // Each endpoint's SR, protected with its own current key,
                    // and what the proxy re-protects of it toward the other.
                    let blocks = [block(SFU_AUDIO, wall(t), 5)];
                    client_w[c]
                        .encrypt(&sr(CLIENT_AUDIO, wall(t), &blocks), &mut wire)
                        .unwrap();
                    record(c, &wire, "the client's SRTCP");
                    if let Verdict::Rewritten(_) = e.handle_datagram(ms(t), Side::Client, id, &wire) {
                        let out = e.rewritten().to_vec();
                        record(c, &out, "a re-protected client compound");
                    }
                    let blocks = [block(CLIENT_AUDIO, wall(t), 5)];
                    sfu_w[u].encrypt(&sr(SFU_AUDIO, wall(t), &blocks), &mut wire).unwrap();
                    record(u, &wire, "the SFU's SRTCP");
                    if let Verdict::Rewritten(_) = e.handle_datagram(ms(t), Side::Upstream, id, &wire) {
                        let out = e.rewritten().to_vec();
                        record(u, &out, "a re-protected SFU compound");
                    }
                }
                e.set_wall_clock(ms(t), Duration::from_millis(1_795_000_000_000 + t));
                e.handle_timeout(ms(t));
                while let Some(tx) = e.poll_transmit() {
                    // Toward the client: the key the client expects from the
                    // upstream, and the other way round.
                    let k = if tx.toward == Side::Client { u } else { c };
                    record(k, &tx.datagram, "a generated report");
                    generated += 1;
                }
                t += 20;
                seq = seq.wrapping_add(1);
            }
        }
        assert!(generated > 1000, "{suite}: only {generated} reports generated");
        // libtest captures eprintln! of passing tests; the figure is wanted.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "{suite}: {generated} generated reports, {} distinct (key, SSRC, index) on the wire\n",
                seen.len()
            )
            .as_bytes(),
        );
    }
}

/// Replay windows belong to the key, not to one provisioning: an SRTCP
/// packet accepted before re-keying (the same keys again, another key and
/// back, or removal and provisioning again) is refused after it, and with
/// equal client and upstream keys a client packet is refused as coming
/// from the upstream too.
#[test]
fn a_packet_captured_before_rekeying_is_refused_after_it() {
    for suite in CryptoSuite::ALL {
        let (mut e, id, [kc, ku], _) = keyed(suite, RtcpMode::Forward);
        let mut w = SrtcpWriter::new(&kc).unwrap();
        let captured = protect(&mut w, &sr(CLIENT_AUDIO, wall(0), &[]));
        assert!(matches!(
            e.handle_datagram(ms(10), Side::Client, id, &captured),
            Verdict::Forward(_)
        ));
        let replayed = Verdict::Drop(DropReason::Srtcp(SrtpError::Replayed));
        let both = |c: &SrtpKeys, u: &SrtpKeys| SessionKeys {
            client: Some(c.clone()),
            upstream: Some(u.clone()),
        };
        let other = keys(suite, 99);
        let mut t = 20;
        for step in [
            Some(both(&kc, &ku)),
            Some(both(&other, &ku)),
            Some(both(&kc, &ku)),
            None,
            Some(both(&kc, &ku)),
            Some(both(&kc, &kc)),
        ] {
            e.set_session_keys(id, step.as_ref()).unwrap();
            let Some(k) = step else { continue };
            // Under another key it fails authentication; under its own
            // key again, the window remembered it.
            let want = if k.client.as_ref() == Some(&other) {
                Verdict::Drop(DropReason::Srtcp(SrtpError::AuthFailed))
            } else {
                replayed
            };
            assert_eq!(
                e.handle_datagram(ms(t), Side::Client, id, &captured),
                want,
                "{suite}: replay after re-keying"
            );
            t += 10;
        }
        // Equal keys: one reader, one window per SSRC, whichever side.
        assert_eq!(
            e.handle_datagram(ms(t), Side::Upstream, id, &captured),
            replayed,
            "{suite}: reflected from the other side"
        );
        // New packets still pass.
        let captured = protect(&mut w, &sr(CLIENT_AUDIO, wall(1000), &[]));
        assert!(matches!(
            e.handle_datagram(ms(t + 10), Side::Client, id, &captured),
            Verdict::Forward(_)
        ));
    }
}

/// Chromium's transport-wide feedback (RTPFB FMT 15) as libwebrtc writes
/// it: padded to a word with P = 1 and the count in its last octet. Over
/// SRTCP that octet is ciphertext (RFC 3711 §3.4 encrypts from octet 8),
/// so it reads as any count. `n` varies the feedback sequence.
fn padded_twcc(sender: Ssrc, media: Ssrc, n: u16) -> Vec<u8> {
    let mut fci = Vec::new();
    fci.extend_from_slice(&n.to_be_bytes()); // base sequence number
    fci.extend_from_slice(&1u16.to_be_bytes()); // packet status count
    fci.extend_from_slice(&[0, 0, 1, n as u8]); // reference time, feedback count
    fci.extend_from_slice(&[0x20, 0x01, 0x14]); // one run "received, small delta", its delta
    let mut p = Vec::new();
    rtcp::write_feedback(&mut p, rtcp::PT_RTPFB, rtcp::FMT_TWCC, sender, media, &fci);
    // The writer zero-fills to the word; libwebrtc marks that octet as
    // padding instead: P = 1, the count (1) last.
    p[0] |= 0x20;
    *p.last_mut().unwrap() = 1;
    // The walker reads it as RTCP in the clear.
    assert!(rtcp::walk(&p).all(|r| r.is_ok()));
    p
}

/// Padded RTCP inside SRTCP is never judged by its encrypted padding
/// count: forwarded unread without keys (whether or not the session saw
/// DTLS: a client's new address after a NAT rebinding never does), opened
/// and read with them.
#[test]
fn padded_srtcp_is_never_dropped_for_its_encrypted_padding_count() {
    let suite = CryptoSuite::AesCm128HmacSha1_80;
    let kc = keys(suite, 7);
    for how in ["no dtls seen", "dtls seen, no keys", "keys"] {
        let (mut e, id) = engine(RtcpMode::Auto);
        match how {
            "keys" => {
                give_client_keys(&mut e, id, &kc);
            }
            "dtls seen, no keys" => {
                e.handle_datagram(
                    ms(0),
                    Side::Client,
                    id,
                    &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                );
            }
            _ => {}
        }
        let mut writer = SrtcpWriter::new(&kc).unwrap();
        let (mut bad_count, n) = (0, 200u16);
        for i in 0..n {
            let wire = protect(&mut writer, &padded_twcc(CLIENT_AUDIO, SFU_AUDIO, i));
            bad_count += usize::from(rtcp::walk(&wire).next().unwrap().is_err());
            let v = e.handle_datagram(ms(10 + u64::from(i) * 50), Side::Client, id, &wire);
            assert_eq!(
                v,
                Verdict::Forward(rtp_middlebox::wire::PacketKind::Rtcp),
                "{how}: feedback {i}"
            );
        }
        // Most encrypted counts do not fit the packet (the defect's trigger).
        assert!(bad_count > usize::from(n) / 2, "{how}: {bad_count} of {n}");
        let c = e.counters();
        assert_eq!(c.total_drops(), 0, "{how}");
        let read = if how == "keys" { 0 } else { u64::from(n) };
        assert_eq!(c.rtcp_unreadable, read, "{how}: forwarded unread without keys");
    }
}
