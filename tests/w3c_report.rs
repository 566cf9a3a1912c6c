//! The W3C report of a scripted session on virtual time: the spec's fields,
//! units (seconds, 0..1 fractions, ms timestamps) and existence rules
//! (`roundTripTime` absent until a report with DLSR ≠ 0; measurements count
//! valid samples only), and the ids that tie objects together.

mod common;
use common::{ms, session_on, tap};

use rtp_middlebox::engine::{EngineConfig, RtcpMode, Side};
use rtp_middlebox::report::session_report;
use rtp_middlebox::stats::ClockRates;
use rtp_middlebox::wire::ntp::{Delay16, NtpTime};
use rtp_middlebox::wire::rtcp::ReportBlock;
use rtp_middlebox::wire::Ssrc;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const SENDER: Ssrc = Ssrc(0x0a0a_0a0a);
const RECEIVER: Ssrc = Ssrc(0x0b0b_0b0b);
/// Wall clock of engine time 0, ms since the epoch (2026-11-25T00:00:00Z).
const EPOCH_MS: f64 = 1_795_564_800_000.0;

fn rtp(seq: u16, ts: u32) -> Vec<u8> {
    common::rtp_filled(0, seq, ts, SENDER, 160, 0xd5)
}

fn find<'a>(report: &'a [Value], kind: &str) -> Vec<&'a Value> {
    report.iter().filter(|o| o["type"] == kind).collect()
}

fn by_id<'a>(report: &'a [Value], id: &Value) -> &'a Value {
    report
        .iter()
        .find(|o| o["id"] == *id)
        .unwrap_or_else(|| panic!("no object {id}"))
}

#[test]
fn scripted_session_report_follows_the_spec() {
    let rates = ClockRates::new(&BTreeMap::new());
    let (mut e, id) = session_on(tap(RtcpMode::Forward, rates.clone()), EngineConfig::default());
    // PCMU, 20 ms packets; every 10th is lost before the proxy; odd packets
    // arrive 4 ms late (|D| = 4 ms between neighbours → jitter → 32 units).
    let mut sent = 0;
    for seq in 0..200u16 {
        if seq % 10 == 9 {
            continue;
        }
        let at = u64::from(seq) * 20 + if seq % 2 == 1 { 4 } else { 0 };
        e.handle_datagram(ms(at), Side::Client, id, &rtp(seq, u32::from(seq) * 160));
        sent += 1;
    }
    let wall = |t_ms: u64| NtpTime::from_unix(Duration::from_millis(EPOCH_MS as u64 + t_ms));
    // The sender's SR at 4.0 s, forwarded by the proxy.
    let sr = common::sr(SENDER, &common::sender_info(wall(4000), 32_000, 200, 32_000), &[], None);
    e.handle_datagram(ms(4000), Side::Client, id, &sr);

    // First report back: DLSR = 0 (the receiver claims no delay): no RTT.
    let mut block = ReportBlock {
        ssrc: SENDER,
        fraction_lost: 26, // 26/256 ≈ 0.1016
        cumulative_lost: 20,
        ext_highest_seq: 199,
        jitter: 32,
        lsr: wall(4000).compact(),
        dlsr: Delay16(0),
    };
    e.handle_datagram(ms(4100), Side::Upstream, id, &common::rr(RECEIVER, &[block]));
    let report = session_report(&e.snapshot(ms(4100), id).unwrap(), &rates, |t| t * 1000.0 + EPOCH_MS);
    let ri = find(&report, "remote-inbound-rtp");
    assert_eq!(ri.len(), 1);
    assert!(
        ri[0].get("roundTripTime").is_none(),
        "RTT must not exist before DLSR ≠ 0: {:#}",
        ri[0]
    );
    assert!(ri[0].get("totalRoundTripTime").is_none());
    assert_eq!(ri[0]["roundTripTimeMeasurements"], 0);

    // Second: held 50 ms, arrives 4 s + 90 ms → RTT = 90 − 50 = 40 ms.
    block.dlsr = Delay16::from_duration(Duration::from_millis(50));
    e.handle_datagram(ms(4090), Side::Upstream, id, &common::rr(RECEIVER, &[block]));
    let snap = e.snapshot(ms(4200), id).unwrap();
    let report = session_report(&snap, &rates, |t| t * 1000.0 + EPOCH_MS);

    // Every object: a unique id, a type, a timestamp in ms since the epoch.
    let mut ids = std::collections::HashSet::new();
    for o in &report {
        assert!(
            ids.insert(o["id"].as_str().unwrap().to_string()),
            "duplicate id {}",
            o["id"]
        );
        let ts = o["timestamp"].as_f64().unwrap();
        assert!((EPOCH_MS..EPOCH_MS + 10_000.0).contains(&ts), "{o:#}");
    }

    let inbound = find(&report, "inbound-rtp");
    assert_eq!(inbound.len(), 1);
    let inbound = inbound[0];
    assert_eq!(inbound["ssrc"], SENDER.0);
    assert_eq!(inbound["kind"], "audio");
    // Required by the spec (a monitor drops the entry without it).
    assert_eq!(inbound["trackIdentifier"], inbound["id"]);
    assert_eq!(inbound["packetsReceived"], sent);
    assert_eq!(inbound["packetsLost"], 19); // 0..=198 expected, 19 missing
    let jitter = inbound["jitter"].as_f64().unwrap();
    // A.8 converges to |D| = 4 ms (32 units at 8 kHz), in seconds.
    assert!((0.0035..0.0041).contains(&jitter), "jitter {jitter} s");
    assert_eq!(inbound["bytesReceived"], sent * 160);
    assert_eq!(inbound["headerBytesReceived"], sent * 12);
    assert!(inbound["lastPacketReceivedTimestamp"].as_f64().unwrap() > EPOCH_MS);
    for k in ["nackCount", "pliCount", "firCount"] {
        assert_eq!(inbound[k], 0, "{k}");
    }
    let codec = by_id(&report, &inbound["codecId"]);
    assert_eq!(codec["type"], "codec");
    assert_eq!(codec["payloadType"], 0);
    assert_eq!(codec["clockRate"], 8000);
    let transport = by_id(&report, &inbound["transportId"]);
    assert_eq!(transport["type"], "transport");
    assert_eq!(transport["x-leg"], "client");

    // remote-outbound-rtp from the SR: remoteTimestamp is the SR's NTP time
    // in ms; no RTT (that would need XR DLRR).
    let ro = by_id(&report, &inbound["remoteId"]);
    assert_eq!(ro["type"], "remote-outbound-rtp");
    assert_eq!(ro["localId"], inbound["id"]);
    assert!((ro["remoteTimestamp"].as_f64().unwrap() - (EPOCH_MS + 4000.0)).abs() < 0.01);
    assert_eq!(ro["packetsSent"], 200);
    assert_eq!(ro["bytesSent"], 32_000);
    assert_eq!(ro["reportsSent"], 1);
    assert!(ro.get("roundTripTime").is_none());

    // outbound-rtp (the sender's side) ↔ remote-inbound-rtp (its receiver's report).
    let out = find(&report, "outbound-rtp");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["packetsSent"], 200);
    let ri = by_id(&report, &out[0]["remoteId"]);
    assert_eq!(ri["type"], "remote-inbound-rtp");
    assert_eq!(ri["localId"], out[0]["id"]);
    assert_eq!(ri["ssrc"], SENDER.0);
    assert_eq!(ri["kind"], "audio");
    assert_eq!(ri["packetsLost"], 20);
    let fraction = ri["fractionLost"].as_f64().unwrap();
    assert!((fraction - 26.0 / 256.0).abs() < 1e-9 && (0.0..=1.0).contains(&fraction));
    assert!((ri["jitter"].as_f64().unwrap() - 32.0 / 8000.0).abs() < 1e-9);
    let rtt = ri["roundTripTime"].as_f64().unwrap();
    assert!((rtt - 0.040).abs() < 0.0001, "RTT {rtt} s");
    assert!((ri["totalRoundTripTime"].as_f64().unwrap() - rtt).abs() < 1e-9);
    assert_eq!(
        ri["roundTripTimeMeasurements"], 1,
        "the DLSR = 0 report is not a sample"
    );
    assert_eq!(ri["x-leg"], "upstream");
    // No STUN transactions: no candidate-pair.
    assert!(find(&report, "candidate-pair").is_empty());
}

/// Issue 14 item 12: an XR DLRR from the upstream answering the client's
/// RRTR measures the upstream leg. It shows as `roundTripTime` on the
/// remote-outbound-rtp of the upstream's stream (the DLRR's sender, on that
/// leg), never on the client stream's object.
#[test]
fn dlrr_rtt_shows_on_the_answering_legs_remote_outbound_rtp() {
    let rates = ClockRates::new(&BTreeMap::new());
    let (mut e, id) = session_on(tap(RtcpMode::Forward, rates.clone()), EngineConfig::default());
    let wall = |t_ms: u64| NtpTime::from_unix(Duration::from_millis(EPOCH_MS as u64 + t_ms));
    const UP: Ssrc = Ssrc(0x0c0c_0c0c);
    for seq in 0..100u16 {
        let t = u64::from(seq) * 20;
        e.handle_datagram(ms(t), Side::Client, id, &rtp(seq, u32::from(seq) * 160));
        let up = common::rtp_filled(0, seq, u32::from(seq) * 160, UP, 160, 0xd5);
        e.handle_datagram(ms(t), Side::Upstream, id, &up);
    }
    // Both send SRs, so both have a remote-outbound-rtp.
    let info = common::sender_info(wall(2000), 16_000, 100, 16_000);
    e.handle_datagram(ms(2000), Side::Client, id, &common::sr(SENDER, &info, &[], None));
    e.handle_datagram(ms(2000), Side::Upstream, id, &common::sr(UP, &info, &[], None));
    // The client's RRTR at 2.1 s; the upstream's DLRR 130 ms later, held
    // 100 ms: the upstream leg's RTT is 30 ms.
    let mut rrtr = Vec::new();
    rtp_middlebox::wire::rtcp::write_xr(&mut rrtr, SENDER, Some(wall(2100)), &[]);
    e.handle_datagram(ms(2100), Side::Client, id, &rrtr);
    let dlrr = common::dlrr(UP, SENDER, wall(2100).compact(), Duration::from_millis(100));
    e.handle_datagram(ms(2230), Side::Upstream, id, &dlrr);

    let report = session_report(&e.snapshot(ms(2300), id).unwrap(), &rates, |t| t * 1000.0 + EPOCH_MS);
    let ro = |leg: &str, ssrc: Ssrc| {
        let o = by_id(&report, &Value::from(format!("ROA-{leg}-{}", ssrc.0)));
        assert_eq!(o["type"], "remote-outbound-rtp");
        o
    };
    let upstream = ro("upstream", UP);
    let rtt = upstream["roundTripTime"].as_f64().expect("the answering leg's RTT");
    assert!((rtt - 0.030).abs() < 1e-4, "RTT {rtt}");
    assert_eq!(upstream["roundTripTimeMeasurements"], 1);
    assert!(
        ro("client", SENDER).get("roundTripTime").is_none(),
        "the client leg's object carries no upstream-leg RTT"
    );
}

/// Issue 14 item 14: every stream's `kind` is `audio` or `video`, never
/// `unknown`; every codec has a `mimeType`; one codec object per payload
/// type and transport. Without SDP: static payload types by RFC 3551 (MPA,
/// PT 14, is audio on its 90 kHz clock), dynamic ones by the relay's clock
/// rate, and with none by their payload size.
#[test]
fn kinds_and_codecs_without_sdp() {
    let rates = ClockRates::new(&BTreeMap::from([(96, 90_000), (111, 48_000)]));
    let (mut e, id) = session_on(tap(RtcpMode::Forward, rates.clone()), EngineConfig::default());
    // (side, SSRC, PT, payload bytes, kind, mimeType)
    let streams = [
        (Side::Client, 0x100, 0, 160, "audio", "audio/PCMU"),
        (Side::Client, 0x101, 0, 160, "audio", "audio/PCMU"),
        (Side::Client, 0x102, 14, 400, "audio", "audio/MPA"),
        (Side::Client, 0x103, 26, 900, "video", "video/JPEG"),
        (Side::Client, 0x104, 96, 100, "video", "video/x-unknown"),
        (Side::Client, 0x105, 111, 900, "audio", "audio/x-unknown"),
        (Side::Client, 0x106, 100, 120, "audio", "audio/x-unknown"),
        (Side::Client, 0x107, 101, 1100, "video", "video/x-unknown"),
        (Side::Upstream, 0x200, 0, 160, "audio", "audio/PCMU"),
    ];
    for seq in 0..50u16 {
        for (side, ssrc, pt, len, ..) in streams {
            let p = common::rtp_filled(pt, seq, u32::from(seq) * 160, Ssrc(ssrc), len, 1);
            e.handle_datagram(ms(u64::from(seq) * 20), side, id, &p);
        }
    }
    let report = session_report(&e.snapshot(ms(1000), id).unwrap(), &rates, |t| t * 1000.0 + EPOCH_MS);
    for (side, ssrc, pt, _, kind, mime) in streams {
        let leg = if side == Side::Client { "client" } else { "upstream" };
        let inbound = by_id(&report, &Value::from(format!("IT-{leg}-{ssrc}")));
        assert_eq!(inbound["kind"], kind, "SSRC {ssrc:#x} PT {pt}");
        let codec = by_id(&report, &inbound["codecId"]);
        assert_eq!(codec["mimeType"], mime, "PT {pt}");
        assert_eq!(codec["payloadType"], pt);
        assert_eq!(codec["transportId"], inbound["transportId"]);
    }
    for o in &report {
        assert_ne!(o.get("kind"), Some(&Value::from("unknown")), "{o:#}");
    }
    // Two PCMU streams on the client leg share one codec; the upstream's
    // PCMU has its own (another transport).
    let codecs: Vec<&str> = find(&report, "codec")
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<_> = codecs.iter().collect();
    assert_eq!(codecs.len(), unique.len(), "codec ids unique: {codecs:?}");
    assert!(unique.contains(&"C-client-0") && unique.contains(&"C-upstream-0"));
    assert_eq!(codecs.len(), 8);
}

/// With the session's SDP attached, the `m=` line gives the kind and
/// `a=rtpmap` the codec's `mimeType`, `channels` and clock, so jitter runs
/// on a dynamic payload type the relay's table lacks.
#[test]
fn kinds_and_codecs_from_sdp() {
    let rates = ClockRates::new(&BTreeMap::new());
    let (mut e, id) = session_on(tap(RtcpMode::Forward, rates.clone()), EngineConfig::default());
    let sdp = "v=0\r\nm=audio 9 RTP/AVP 109\r\na=rtpmap:109 opus/48000/2\r\n\
               m=video 9 RTP/AVP 100\r\na=rtpmap:100 H264/90000\r\n";
    assert!(e.set_session_media(id, rtp_middlebox::engine::media::MediaMap::from_sdp([sdp])));
    for seq in 0..50u16 {
        let t = ms(u64::from(seq) * 20);
        // Small video packets (a still picture), large audio ones: the SDP,
        // not the size, decides.
        let v = common::rtp_filled(100, seq, u32::from(seq) * 1800, Ssrc(0x300), 90, 1);
        e.handle_datagram(t, Side::Client, id, &v);
        let a = common::rtp_filled(109, seq, u32::from(seq) * 960, Ssrc(0x301), 1000, 1);
        e.handle_datagram(t, Side::Client, id, &a);
    }
    let report = session_report(&e.snapshot(ms(1000), id).unwrap(), &rates, |t| t * 1000.0 + EPOCH_MS);
    let video = by_id(&report, &Value::from("IT-client-768"));
    let audio = by_id(&report, &Value::from("IT-client-769"));
    assert_eq!(
        (video["kind"].as_str(), audio["kind"].as_str()),
        (Some("video"), Some("audio"))
    );
    assert!(video["jitter"].is_number(), "the SDP's clock runs jitter: {video:#}");
    let vc = by_id(&report, &video["codecId"]);
    assert_eq!(
        (vc["mimeType"].as_str(), vc["clockRate"].as_u64()),
        (Some("video/H264"), Some(90_000))
    );
    let ac = by_id(&report, &audio["codecId"]);
    assert_eq!(ac["mimeType"], "audio/opus");
    assert_eq!(
        (ac["clockRate"].as_u64(), ac["channels"].as_u64()),
        (Some(48_000), Some(2))
    );
}

/// In an SRTP session the proxy has no keys for, feedback (NACK, PLI, FIR)
/// is inside SRTCP it cannot read: the counts are unknown, so they are
/// omitted, never shown as 0. With the keys of the side that sends the
/// feedback they are shown again.
#[test]
fn feedback_counts_are_omitted_when_srtcp_is_unreadable() {
    use rtp_middlebox::engine::SessionKeys;
    use rtp_middlebox::srtp::{CryptoSuite, SrtpKeys};
    let rates = ClockRates::new(&BTreeMap::new());
    for keyed in [false, true] {
        let (mut e, id) = session_on(tap(RtcpMode::Forward, rates.clone()), EngineConfig::default());
        // A DTLS record: the session is SRTP.
        e.handle_datagram(
            ms(0),
            Side::Client,
            id,
            &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        );
        if keyed {
            let suite = CryptoSuite::AesCm128HmacSha1_80;
            let keys = SessionKeys {
                client: None,
                upstream: Some(SrtpKeys::new(suite, &[5; 16], &[6; 14]).unwrap()),
            };
            assert_eq!(
                e.set_session_keys(id, Some(&keys)).unwrap(),
                rtp_middlebox::engine::KeysOutcome::Done
            );
        }
        for seq in 0..20u16 {
            e.handle_datagram(
                ms(10 + u64::from(seq) * 20),
                Side::Client,
                id,
                &rtp(seq, u32::from(seq) * 160),
            );
        }
        let report = session_report(&e.snapshot(ms(1000), id).unwrap(), &rates, |t| t * 1000.0 + EPOCH_MS);
        let client_stream = by_id(&report, &Value::from(format!("IT-client-{}", SENDER.0)));
        let outbound = by_id(&report, &Value::from(format!("OT-client-{}", SENDER.0)));
        for k in ["nackCount", "pliCount", "firCount"] {
            for o in [client_stream, outbound] {
                match keyed {
                    false => assert!(o.get(k).is_none(), "{k} shown although unreadable: {o:#}"),
                    true => assert_eq!(o[k], 0, "{k} with the upstream's keys"),
                }
            }
        }
    }
}
