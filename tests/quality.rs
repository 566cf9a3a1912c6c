//! Call quality per leg on virtual time: the E-model rating of each audio
//! stream on the leg it arrived over (W3C `x-` members), burst-aware loss,
//! and where a stream's loss happened.

mod common;
use common::{ms, session_on, Driver};

use rtp_middlebox::engine::{EngineConfig, RtcpMode, SessionId, Side};
use rtp_middlebox::report::session_report;
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::ntp::CompactNtp;
use rtp_middlebox::wire::Ssrc;
use serde_json::Value;
use std::time::Duration;

const CLIENT_AUDIO: u32 = 0x0c0c_0c0c;
const UPSTREAM_AUDIO: u32 = 0x0d0d_0d0d;
const PACKETS: u16 = 3000;

/// 60 s of PCMU each way; the client's packets for which `lost(seq)` are
/// dropped before the proxy (client leg). Returns the report objects.
fn call(lost: impl Fn(u16) -> bool, far_end_extra_loss: Option<i32>) -> Vec<Value> {
    let (d, id, end) = call_snapshot(lost, far_end_extra_loss);
    session_report(&d.snapshot(end, id).unwrap(), &common::rates(), |t| t * 1000.0)
}

/// [`call`]'s engine, session and end time, for a test that reads the
/// snapshot itself.
fn call_snapshot(lost: impl Fn(u16) -> bool, far_end_extra_loss: Option<i32>) -> (Driver, SessionId, MonoTime) {
    let (mut d, id) = session_on(common::relay(RtcpMode::Forward), EngineConfig::default());
    for seq in 0..PACKETS {
        let at = ms(u64::from(seq) * 20);
        if !lost(seq) {
            d.handle_datagram(at, Side::Client, id, &common::pcmu(seq, CLIENT_AUDIO));
        }
        d.handle_datagram(at, Side::Upstream, id, &common::pcmu(seq, UPSTREAM_AUDIO));
    }
    let end = ms(u64::from(PACKETS) * 20);
    if let Some(extra) = far_end_extra_loss {
        // The upstream receiver's RR about the client's stream: everything
        // the proxy found missing, plus `extra` lost after the proxy.
        let missing = (0..PACKETS).filter(|q| lost(*q)).count() as i32;
        let block = common::report_block(
            Ssrc(CLIENT_AUDIO),
            (0, missing + extra),
            u32::from(PACKETS - 1),
            0,
            CompactNtp(0),
            Duration::ZERO,
        );
        d.handle_datagram(end, Side::Upstream, id, &common::rr(Ssrc(0x0e0e_0e0e), &[block]));
    }
    (d, id, end)
}

fn inbound<'a>(report: &'a [Value], leg: &str) -> &'a Value {
    report
        .iter()
        .find(|o| o["type"] == "inbound-rtp" && o["x-leg"] == leg)
        .unwrap_or_else(|| panic!("no inbound-rtp on the {leg} leg"))
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("no {k} in {v:#}"))
}

/// Deterministic 3 % random loss (a 64-bit LCG per sequence number).
fn random_3(seq: u16) -> bool {
    let x = u64::from(seq)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (x >> 33) % 100 < 3
}

/// 3 % in runs of 6: six consecutive losses every 200 packets.
fn bursty_3(seq: u16) -> bool {
    seq % 200 >= 100 && seq % 200 < 106
}

#[test]
fn client_leg_loss_lowers_the_client_legs_mos_only_and_bursts_hurt_more() {
    let clean = call(|_| false, None);
    let random = call(random_3, None);
    let bursty = call(bursty_3, None);
    let mos = |r: &[Value], leg| num(inbound(r, leg), "x-mosLq");
    // No loss: G.711 with PLC at default parameters. Listening quality
    // R 93.2, MOS 4.41; the conversational R has Ta = 20 ms (one packet of
    // samples; no RTT known, no jitter): 92.53.
    let c = inbound(&clean, "client");
    assert!((num(c, "x-rFactor") - 92.53).abs() < 0.01, "{c:#}");
    assert!((mos(&clean, "client") - 4.41).abs() < 0.01);
    assert_eq!(c["x-eModel"], "G.107");
    assert_eq!(c["x-eModelCodec"], "G.711+PLC");
    assert!(c.get("x-mosCq").is_none(), "no RTT on the leg: no MOS-CQ");

    let (r, b) = (inbound(&random, "client"), inbound(&bursty, "client"));
    let rate = |o: &Value| num(o, "x-lossRateOnArrival");
    assert!(
        (rate(r) - 0.03).abs() < 0.01 && (rate(b) - 0.03).abs() < 0.001,
        "{r:#} {b:#}"
    );
    assert!(num(r, "x-burstR") < 1.3, "{r:#}");
    assert!(num(b, "x-burstR") > 4.0, "{b:#}");
    assert!(num(b, "x-burstDensity") > 0.9 && num(b, "x-gapDensity") == 0.0, "{b:#}");
    assert!(
        (num(b, "x-burstDuration") - 0.12).abs() < 1e-6,
        "six packets of 20 ms: {b:#}"
    );

    // The client leg's MOS drops, more with bursts at an equal rate; the
    // upstream leg's does not move.
    let (m0, mr, mb) = (mos(&clean, "client"), mos(&random, "client"), mos(&bursty, "client"));
    assert!(m0 > mr && mr > mb, "clean {m0}, random {mr}, bursty {mb}");
    for r in [&clean, &random, &bursty] {
        assert_eq!(mos(r, "upstream"), m0);
        assert_eq!(num(inbound(r, "upstream"), "x-lossRateOnArrival"), 0.0);
    }
}

#[test]
fn loss_is_split_between_the_legs() {
    // 3 % lost before the proxy (client leg), 7 more after it.
    let report = call(bursty_3, Some(7));
    let c = inbound(&report, "client");
    let before = (0..PACKETS).filter(|q| bursty_3(*q)).count() as u64;
    assert_eq!(c["packetsLost"], before);
    assert_eq!(c["x-lossClientLeg"], before);
    assert_eq!(c["x-lossUpstreamLeg"], 7);
    // The upstream's stream has no report about it: no split yet.
    assert!(inbound(&report, "upstream").get("x-lossClientLeg").is_none());
}

#[test]
fn voip_metrics_from_the_far_receiver_are_read() {
    use rtp_middlebox::wire::rtcp::{write_xr_blocks, VoipMetrics, VOIP_UNAVAILABLE};
    let (mut d, id) = session_on(common::relay(RtcpMode::Forward), EngineConfig::default());
    for seq in 0..100u16 {
        d.handle_datagram(
            ms(u64::from(seq) * 20),
            Side::Client,
            id,
            &common::pcmu(seq, CLIENT_AUDIO),
        );
    }
    // A SIP phone behind the upstream rates the client's stream.
    let vm = VoipMetrics {
        ssrc: Ssrc(CLIENT_AUDIO),
        loss_rate: 13,
        burst_density: 64,
        gap_density: 3,
        burst_duration: 80,
        gap_duration: 4000,
        round_trip_delay: 120,
        gmin: 16,
        r_factor: 78,
        mos_lq: 39,
        mos_cq: VOIP_UNAVAILABLE,
        signal_level: VOIP_UNAVAILABLE,
        noise_level: VOIP_UNAVAILABLE,
        rerl: VOIP_UNAVAILABLE,
        ext_r_factor: VOIP_UNAVAILABLE,
        ..VoipMetrics::default()
    };
    let mut blocks = Vec::new();
    vm.write(&mut blocks);
    let mut xr = Vec::new();
    write_xr_blocks(&mut xr, Ssrc(0x0e0e_0e0e), &blocks);
    d.handle_datagram(ms(2000), Side::Upstream, id, &xr);
    let report = session_report(&d.snapshot(ms(2000), id).unwrap(), &common::rates(), |t| t * 1000.0);
    let out = report
        .iter()
        .find(|o| o["type"] == "outbound-rtp" && o["ssrc"] == CLIENT_AUDIO)
        .unwrap();
    assert_eq!(num(out, "x-xrLossRate"), 13.0 / 256.0);
    assert_eq!(num(out, "x-xrMosLq"), 3.9);
    assert_eq!(out["x-xrRFactor"], 78);
    assert_eq!(num(out, "x-xrRoundTripDelay"), 0.12);
    assert!(out.get("x-xrMosCq").is_none(), "127 is unavailable: {out:#}");
}

#[test]
fn the_end_of_session_record_says_which_leg_lost_what() {
    use rtp_middlebox::export::publish::quality;
    use rtp_middlebox::runtime::SessionView;
    // Client → upstream audio: 3 % lost on the client leg, 7 packets more
    // after the proxy (the upstream receiver's RR); upstream → client
    // audio arrives clean.
    let (d, id, end) = call_snapshot(bursty_3, Some(7));
    let before = (0..PACKETS).filter(|q| bursty_3(*q)).count() as i32;
    let view = SessionView {
        id: "0-test".into(),
        worker: 0,
        relay: 0,
        upstream_local: common::addr(common::LOCAL),
        upstream_rtcp_local: None,
        upstream_refused: 0,
        wall_offset_ms: 0.0,
        snapshot: d.snapshot(end, id).unwrap(),
    };
    let q = quality(&view);
    let (client, upstream) = (&q.legs[0], &q.legs[1]);
    assert_eq!((client.leg, upstream.leg), ("client", "upstream"));
    assert_eq!(client.lost_on_leg, i64::from(before));
    assert_eq!(upstream.lost_on_leg, 7);
    let (cw, uw) = (client.mos_worst.unwrap(), upstream.mos_worst.unwrap());
    assert!(cw < uw - 0.02, "client leg {cw}, upstream leg {uw}");
    assert_eq!(client.mos_mean, client.mos_worst, "one audio stream per leg");
}

/// `remote-inbound-rtp` carries the proxy's rating of what the far receiver
/// reported: both legs' loss (its RR cumulative lost over what it
/// expected), BurstR 1 (an RR has no loss pattern), the RR's jitter.
#[test]
fn the_far_receivers_report_is_rated_on_remote_inbound_rtp() {
    use rtp_middlebox::stats::burst::BurstMetrics;
    use rtp_middlebox::stats::quality::{stream_quality, Codec};
    let report = call(random_3, Some(60));
    let ri = report
        .iter()
        .find(|o| o["type"] == "remote-inbound-rtp" && o["ssrc"] == CLIENT_AUDIO)
        .expect("the upstream receiver's report");
    // The proxy's first packet of the stream to the RR's highest (2999).
    let first = (0..PACKETS).find(|q| !random_3(*q)).unwrap();
    let expected = f64::from(PACKETS - first);
    let missing = (0..PACKETS).filter(|q| random_3(*q)).count() as f64;
    let ppl = (missing + 60.0) / expected;
    assert!((num(ri, "x-eModelLossRate") - ppl).abs() < 1e-12, "{ri:#}");
    let want = stream_quality(
        Codec::G711Plc,
        &BurstMetrics {
            loss_rate: ppl,
            burst_r: 1.0,
            ..Default::default()
        },
        Some(0.0),
        None,
    );
    assert!((num(ri, "x-mosLq") - want.mos_lq).abs() < 1e-12, "{ri:#}");
    assert!((num(ri, "x-rFactor") - want.r_factor).abs() < 1e-12, "{ri:#}");
    // After both legs the stream rates below what reached the proxy.
    assert!(num(ri, "x-mosLq") < num(inbound(&report, "client"), "x-mosLq") - 0.05);
    // No report about the upstream's stream: no rating of its far end.
    assert!(report
        .iter()
        .all(|o| o["type"] != "remote-inbound-rtp" || o["ssrc"] == CLIENT_AUDIO));
}

/// The upstream forwards a stream with 3 % of its sequence numbers missing
/// (an SFU or Janus's EchoTest passing on a publisher's loss) and sends an
/// SR every second with its own packet count; the proxy ⇄ upstream leg
/// additionally drops the packets for which `leg_drops(seq)`. Returns the
/// report objects at the end.
fn forwarded(leg_drops: impl Fn(u16) -> bool) -> Vec<Value> {
    use rtp_middlebox::wire::ntp::NtpTime;
    use rtp_middlebox::wire::rtcp::SenderInfo;
    let (mut d, id) = session_on(common::relay(RtcpMode::Forward), EngineConfig::default());
    let mut sent = 0u32;
    for seq in 0..PACKETS {
        let at = ms(u64::from(seq) * 20);
        d.handle_datagram(at, Side::Client, id, &common::pcmu(seq, CLIENT_AUDIO));
        if !random_3(seq) {
            sent += 1;
            if !leg_drops(seq) {
                d.handle_datagram(at, Side::Upstream, id, &common::pcmu(seq, UPSTREAM_AUDIO));
            }
        }
        if seq % 50 == 49 {
            let info = SenderInfo {
                ntp: NtpTime(u64::from(seq) << 32),
                rtp_ts: u32::from(seq) * 160,
                packet_count: sent,
                octet_count: sent * 160,
            };
            let sr = common::sr(Ssrc(UPSTREAM_AUDIO), &info, &[], None);
            d.handle_datagram(at, Side::Upstream, id, &sr);
        }
    }
    let end = ms(u64::from(PACKETS) * 20);
    session_report(&d.snapshot(end, id).unwrap(), &common::rates(), |t| t * 1000.0)
}

#[test]
fn a_forwarders_gaps_are_not_charged_to_the_leg_it_sends_over() {
    // Clean leg: every gap is one the forwarder never sent.
    let clean = forwarded(|_| false);
    let u = inbound(&clean, "upstream");
    let gaps = (0..PACKETS).filter(|q| random_3(*q)).count() as u64;
    // The W3C figure keeps its meaning: every sequence gap counts.
    assert_eq!(u["packetsLost"], gaps);
    // Gaps before the first SR (the first second) are not told apart.
    let early = (0..50).filter(|q| random_3(*q)).count() as u64;
    assert_eq!(num(u, "x-lossNotSent") as u64, gaps - early, "{u:#}");
    // The leg is rated as lossless as the clean client leg (within what
    // the first second's gaps cost).
    let unsent_mos = num(u, "x-mosLq");
    let clean_client = num(inbound(&clean, "client"), "x-mosLq");
    assert!(unsent_mos > clean_client - 0.05, "{unsent_mos} vs {clean_client}");

    // Without the SRs the same stream rates as 3 % loss: far lower.
    let lossy = call(random_3, None);
    assert!(num(inbound(&lossy, "client"), "x-mosLq") < unsent_mos - 0.2);

    // The leg itself drops 1 in 100 of what was sent: that is its loss,
    // and the unsent gaps still are not.
    let dropping = forwarded(|seq| seq % 100 == 37);
    let u = inbound(&dropping, "upstream");
    let dropped = (0..PACKETS).filter(|q| q % 100 == 37 && !random_3(*q)).count() as u64;
    assert_eq!(u["packetsLost"], gaps + dropped);
    assert_eq!(num(u, "x-lossNotSent") as u64, gaps - early, "{u:#}");
    let leg_mos = num(u, "x-mosLq");
    assert!(leg_mos < unsent_mos - 0.05 && leg_mos > num(inbound(&lossy, "client"), "x-mosLq"));
}
