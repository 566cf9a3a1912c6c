//! `GET /metrics` against a running relay on loopback: the Prometheus text
//! format, aggregate counters consistent with the traffic sent, stream
//! distributions and the optional per-session series.

// Real sockets: waiting on real time is the point.
#![allow(clippy::disallowed_methods)]

mod common;
use common::{get, pcmu, start_relay_and_api, start_relay_and_api_with};
use rtp_middlebox::runtime::RunOptions;
use std::time::{Duration, Instant};

/// The value of one series line `name{labels} value` (labels as rendered).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_endpoint_reports_traffic_drops_and_distributions() {
    let (relay, api, _upstream) =
        start_relay_and_api("rtcp = \"forward\"\n", |o| o.metrics = common::publish_every_second());
    let listen = relay.bound()[0].listen;

    // 400 packets with every 10th missing (40 lost, 10 %), paced 5 ms
    // apart, plus 7 truncated RTP packets (dropped as malformed).
    let client = common::loopback();
    let mut sent = 0u64;
    for seq in 0..440u16 {
        if seq % 11 != 10 {
            client.send_to(&pcmu(seq, 0x5150_5150), listen).unwrap();
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for _ in 0..7 {
        client.send_to(&[0x80, 0x00, 0x00], listen).unwrap();
    }

    // Wait for a publication that has seen everything.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let r = get(api.local_addr, "/metrics");
        let (head, body) = (r.head(), r.body().to_string());
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        let rtp_in = value(&body, "rtpmb_packets_total{direction=\"from_client\",kind=\"rtp\"}");
        let dropped = value(&body, "rtpmb_dropped_packets_total{reason=\"rtp_too_short\"}");
        // Truncated RTP counts as received RTP, then as dropped.
        if rtp_in == Some(sent as f64 + 7.0) && dropped == Some(7.0) && body.contains("rtpmb_session_fraction_lost") {
            break body;
        }
        assert!(Instant::now() < deadline, "counters never caught up:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(body.contains("# TYPE rtpmb_packets_total counter"), "{body}");
    assert!(body.contains("# HELP rtpmb_packets_total "), "{body}");
    assert_eq!(value(&body, "rtpmb_sessions_active"), Some(1.0));
    // The machine's kernel UDP counters (/proc/net/snmp) are exported.
    assert!(
        value(&body, "rtpmb_kernel_udp_errors_total{counter=\"receive_buffer\"}").is_some(),
        "{body}"
    );
    assert_eq!(value(&body, "rtpmb_sessions_created_total"), Some(1.0));
    assert_eq!(
        value(&body, "rtpmb_bytes_total{direction=\"from_client\",kind=\"rtp\"}"),
        Some(sent as f64 * 172.0 + 7.0 * 3.0)
    );
    // The jitter histogram has buckets and at least one sample per stream.
    assert!(
        body.contains("rtpmb_stream_jitter_seconds_bucket{kind=\"audio\",le=\"0.0005\"}"),
        "{body}"
    );
    assert!(value(&body, "rtpmb_stream_jitter_seconds_count{kind=\"audio\"}").unwrap() >= 1.0);
    // Loss over the whole run: the per-session gauge shows the stream's
    // latest interval; 1 in 11 missing ≈ 0.09.
    let fractions_sum = value(&body, "rtpmb_stream_fraction_lost_sum{kind=\"audio\"}").unwrap();
    let fractions_n = value(&body, "rtpmb_stream_fraction_lost_count{kind=\"audio\"}").unwrap();
    let mean = fractions_sum / fractions_n;
    assert!((0.04..0.15).contains(&mean), "mean interval fraction lost {mean}");
    // The E-model per leg and kind: 1 in 11 lost on the client leg rates
    // G.711+PLC at MOS-LQ ≈ 3.5 (R ≈ 68; no RTT on the leg, so the
    // listening MOS) once every packet is counted (an
    // earlier publication may have seen a stream without loss yet, MOS
    // 4.4: hence a bucket, not the mean); nothing arrived over the upstream
    // leg.
    let mos_low = value(
        &body,
        "rtpmb_stream_mos_bucket{leg=\"client\",kind=\"audio\",le=\"3.8\"}",
    )
    .unwrap_or_else(|| panic!("no MOS histogram:\n{body}"));
    let mos_fair = value(&body, "rtpmb_stream_mos_bucket{leg=\"client\",kind=\"audio\",le=\"3\"}").unwrap();
    assert!(
        mos_low >= 1.0 && mos_fair == 0.0,
        "MOS buckets: ≤3.8 {mos_low}, ≤3 {mos_fair}:\n{body}"
    );
    let r_n = value(&body, "rtpmb_stream_r_factor_count{leg=\"client\",kind=\"audio\"}").unwrap();
    assert!(
        r_n >= 1.0 && value(&body, "rtpmb_stream_mos_count{leg=\"upstream\",kind=\"audio\"}").is_none_or(|n| n == 0.0)
    );
    // No SSRC or address anywhere in the exposition.
    assert!(!body.contains("1364414800") && !body.contains("127.0.0.1"), "{body}");
    let session_id = body
        .lines()
        .find(|l| l.starts_with("rtpmb_session_jitter_seconds{"))
        .and_then(|l| l.split("session=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .expect("a per-session series")
        .to_string();
    assert!(session_id.starts_with("0-"), "{session_id}");
    drop(api);
    drop(relay);
}

#[test]
fn healthz_answers_when_workers_do() {
    let (_relay, api, _upstream) = start_relay_and_api_with(&RunOptions::default(), "", |_| {});
    let r = get(api.local_addr, "/healthz");
    let (head, body) = (r.head(), r.body());
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
}
