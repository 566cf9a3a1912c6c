//! RFC 3611 Statistics Summary (BT=6) and VoIP Metrics (BT=7) in the
//! reports `terminate` generates: they round-trip through the proxy's own
//! parser with the values its snapshot holds, and Wireshark's dissector
//! (`tshark -V`) reads the same fields from a capture of them.

mod common;
use common::{ms, session_on};

use rtp_middlebox::engine::{EngineConfig, RtcpMode, Side};
use rtp_middlebox::wire::rtcp::{walk, RtcpPacket, StatsSummary, VoipMetrics, XrBlock, VOIP_UNAVAILABLE};
use std::process::Command;

const SSRC: u32 = 0x0c0c_0c0c;

/// 10 s of PCMU from the client, six packets lost every 200 (3 %, bursty)
/// plus one isolated loss every 200; returns the last report the proxy
/// generated toward the client and the session snapshot's loss figures.
fn generated_report() -> (Vec<u8>, rtp_middlebox::engine::SessionSnapshot) {
    let (mut d, id) = session_on(common::relay(RtcpMode::Terminate), EngineConfig::default());
    let mut last = None;
    for seq in 0..500u16 {
        let t = ms(u64::from(seq) * 20);
        let lost = (100..106).contains(&(seq % 200)) || seq % 200 == 150;
        if !lost {
            d.handle_datagram(t, Side::Client, id, &common::pcmu(seq, SSRC));
        }
        d.handle_timeout(t);
        while let Some(x) = d.poll_transmit() {
            if x.toward == Side::Client {
                last = Some((x.datagram, d.snapshot(t, id).unwrap()));
            }
        }
    }
    last.expect("a generated report toward the client")
}

fn quality_blocks(report: &[u8]) -> (StatsSummary, VoipMetrics) {
    let (mut ss, mut vm) = (None, None);
    for p in walk(report) {
        if let Ok(RtcpPacket::Xr(xr)) = p {
            for b in xr.blocks() {
                match b {
                    XrBlock::StatsSummary(b) => ss = Some(b),
                    XrBlock::VoipMetrics(b) => vm = Some(b),
                    _ => {}
                }
            }
        }
    }
    (ss.expect("BT=6 block"), vm.expect("BT=7 block"))
}

#[test]
fn terminate_appends_statistics_summary_and_voip_metrics() {
    let (report, snap) = generated_report();
    let (ss, vm) = quality_blocks(&report);
    let src = common::source(&snap, Side::Client, rtp_middlebox::wire::Ssrc(SSRC));
    let rtp = src.rtp.as_ref().unwrap();
    let q = src.quality.expect("audio stream rated");
    assert_eq!((ss.ssrc.0, vm.ssrc.0), (SSRC, SSRC));
    assert!(ss.loss && ss.dup && ss.jitter);
    assert_eq!(ss.begin_seq, 0);
    assert_eq!(u64::from(ss.end_seq), rtp.ext_highest_seq + 1);
    assert_eq!(i64::from(ss.lost_packets), rtp.packets_lost);
    assert_eq!(ss.dup_packets, 0);
    // Packets exactly 20 ms apart: every |D| is 0.
    assert_eq!((ss.min_jitter, ss.max_jitter, ss.mean_jitter), (0, 0, 0));

    let lm = &rtp.loss_model;
    assert_eq!(vm.loss_rate, (lm.loss_rate * 256.0).round() as u8);
    assert!(vm.loss_rate > 0);
    assert_eq!(vm.burst_density, (lm.burst_density * 256.0).round().min(255.0) as u8);
    assert_eq!(vm.gap_density, (lm.gap_density * 256.0).round() as u8);
    assert!(vm.burst_density > 200 && vm.gap_density > 0, "{vm:?}");
    assert_eq!(vm.burst_duration, lm.burst_duration_ms.round() as u16);
    assert_eq!(vm.gap_duration, lm.gap_duration_ms.round() as u16);
    assert_eq!(vm.gmin, 16);
    assert_eq!(vm.r_factor, q.r_narrowband.round() as u8);
    assert_eq!(vm.mos_lq, (q.mos_lq * 10.0).round() as u8);
    // No RTT on the client leg yet: MOS-CQ and round-trip delay unknown.
    assert_eq!((vm.mos_cq, vm.round_trip_delay), (VOIP_UNAVAILABLE, 0));
    assert_eq!(vm.signal_level, VOIP_UNAVAILABLE);
}

/// Wraps `payload` in IPv4/UDP 192.0.2.1:5005 → 192.0.2.2:5005 as a
/// LINKTYPE_RAW (101) pcap.
fn pcap_of(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65_535u32.to_le_bytes());
    f.extend_from_slice(&101u32.to_le_bytes());
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    ip[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    ip.extend_from_slice(&5005u16.to_be_bytes());
    ip.extend_from_slice(&5005u16.to_be_bytes());
    ip.extend_from_slice(&(udp_len as u16).to_be_bytes());
    ip.extend_from_slice(&0u16.to_be_bytes()); // no UDP checksum (IPv4 allows)
    ip.extend_from_slice(payload);
    for v in [1_795_564_800u32, 0, ip.len() as u32, ip.len() as u32] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&ip);
    f
}

#[test]
fn wireshark_dissects_the_generated_blocks() {
    let (report, _) = generated_report();
    let (ss, vm) = quality_blocks(&report);
    let path = std::env::temp_dir().join(format!("rtp-middlebox-xr-quality-{}.pcap", std::process::id()));
    std::fs::write(&path, pcap_of(&report)).unwrap();
    let out = Command::new("tshark")
        .args(["-n", "-V", "-d", "udp.port==5005,rtcp", "-r"])
        .arg(&path)
        .output()
        .expect("tshark runs (scripts/setup.sh installs it)");
    common::assert_success(&out, "tshark");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if std::env::var_os("XR_TSHARK_PRINT").is_some() {
        eprintln!("{text}");
    }
    let _ = std::fs::remove_file(&path);
    let has = |needle: String| {
        assert!(text.contains(&needle), "tshark -V lacks {needle:?}:\n{text}");
    };
    // Field names as Wireshark's RTCP dissector (packet-rtcp.c) prints them.
    has(format!("Identifier: 0x{SSRC:08x}"));
    has(format!("Begin Sequence Number: {}", ss.begin_seq));
    has(format!("End Sequence Number: {}", ss.end_seq));
    has(format!("Lost Packets: {}", ss.lost_packets));
    has(format!("Duplicate Packets: {}", ss.dup_packets));
    has("TTL or Hop Limit Flag: Undefined (3)".into());
    has(format!("Fraction lost: {} / 256", vm.loss_rate));
    has(format!("Burst Density: {}", vm.burst_density));
    has(format!("Gap Density: {}", vm.gap_density));
    has(format!("Burst Duration(ms): {}", vm.burst_duration));
    has(format!("Gap Duration(ms): {}", vm.gap_duration));
    has(format!("Gmin: {}", vm.gmin));
    has(format!("R Factor: {}", vm.r_factor));
    has(format!("MOS - Listening Quality: {:.1}", f64::from(vm.mos_lq) / 10.0));
    has("MOS - Conversational Quality: Unavailable".into());
}
