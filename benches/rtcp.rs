//! Cost of RTCP work the proxy adds: generating a Receiver Report compound
//! (per report), and the `terminate` rewrite of an SR+SDES compound, each
//! beside the plain observe path of the same packet in the same run.
//!
//! `cargo bench --bench rtcp`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
#[path = "../tests/common/mod.rs"]
mod common;
use common::Driver;
use rtp_middlebox::engine::{EngineConfig, RelaySettings, RtcpMode, SessionId, SessionInfo, Side};
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::ntp::NtpTime;
use rtp_middlebox::wire::rtcp::{self, ReportBlock, SenderInfo};
use rtp_middlebox::wire::rtp::{write_rtp, RtpHeader};
use rtp_middlebox::wire::{RtpTs, SeqNo, Ssrc};
use std::hint::black_box;
use std::time::Duration;

const SESSIONS: usize = 1000;

/// 172-byte PCMU packet (payload type 0, 20 ms at 8 kHz, silent payload).
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let header = RtpHeader {
        seq: SeqNo(seq),
        timestamp: RtpTs(u32::from(seq) * 160),
        ssrc: Ssrc(ssrc),
        ..RtpHeader::default()
    };
    let mut p = Vec::with_capacity(172);
    write_rtp(&mut p, &header, &[0; 160]);
    p
}

/// An engine with `SESSIONS` sessions, each with one audio stream per side.
fn loaded(mode: RtcpMode) -> (Driver, Vec<SessionId>) {
    let mut e = Driver::new(EngineConfig {
        relays: vec![RelaySettings {
            mode,
            ..RelaySettings::default()
        }],
        idle_timeout: None,
        max_sessions: SESSIONS,
        ..EngineConfig::default()
    });
    let ids: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let info = SessionInfo {
                client: format!("192.0.2.1:{}", 5000 + i).parse().unwrap(),
                upstream: "198.51.100.1:3478".parse().unwrap(),
            };
            e.open_session(MonoTime::ZERO, info).unwrap()
        })
        .collect();
    for seq in 0..50u16 {
        let t = MonoTime::from_millis(u64::from(seq) * 20);
        for (i, id) in ids.iter().enumerate() {
            e.handle_datagram(t, Side::Client, *id, &rtp(seq, i as u32));
            e.handle_datagram(t, Side::Upstream, *id, &rtp(seq, !(i as u32)));
        }
    }
    while e.poll_event().is_some() {}
    (e, ids)
}

fn report_generation(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtcp");
    g.measurement_time(Duration::from_secs(3));
    // Run the timer across 10 s of virtual time: every session reports on
    // both legs about every 5 s (audio), so each iteration builds ~4 000
    // reports; the figure is per generated report.
    let (e0, _) = loaded(RtcpMode::Terminate);
    let mut probe = loaded(RtcpMode::Terminate).0;
    let mut count = 0u64;
    for t in (1_000..11_000).step_by(10) {
        probe.handle_timeout(MonoTime::from_millis(t));
        while probe.poll_transmit().is_some() {
            count += 1;
        }
    }
    drop(e0);
    g.throughput(Throughput::Elements(count));
    g.bench_function("generate_reports", |b| {
        b.iter_batched(
            || loaded(RtcpMode::Terminate).0,
            |mut e| {
                for t in (1_000..11_000).step_by(10) {
                    e.handle_timeout(MonoTime::from_millis(t));
                    while let Some(x) = e.poll_transmit() {
                        black_box(x);
                    }
                }
            },
            BatchSize::LargeInput,
        )
    });

    // One SR with two report blocks + SDES from the client: observe only
    // (forward) vs observe and strip (terminate).
    let mut sr = Vec::new();
    let blocks = [
        ReportBlock {
            ssrc: Ssrc(1),
            ..Default::default()
        },
        ReportBlock {
            ssrc: Ssrc(2),
            ..Default::default()
        },
    ];
    let info = SenderInfo {
        ntp: NtpTime(0x83aa_7e80_0000_0000),
        rtp_ts: 1,
        packet_count: 2,
        octet_count: 3,
    };
    rtcp::write_sender_report(&mut sr, Ssrc(9), &info, &blocks);
    rtcp::write_sdes_cname(&mut sr, Ssrc(9), b"bench@example");
    g.throughput(Throughput::Elements(1));
    for mode in [RtcpMode::Forward, RtcpMode::Terminate] {
        let (mut e, ids) = loaded(mode);
        let mut i = 0;
        g.bench_function(format!("sr_compound_{mode:?}").to_lowercase(), |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                black_box(e.handle_datagram(MonoTime::from_millis(2_000), Side::Client, ids[i], black_box(&sr)))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, report_generation);
criterion_main!(benches);
