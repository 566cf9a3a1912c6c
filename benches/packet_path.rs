//! The per-packet path, measured per packet (`Throughput::Elements(1)`, so
//! criterion's "time" is ns/packet).
//!
//! Groups:
//! * `parse`   — `classify` + `RtpView::parse` (+ the fields the engine reads)
//!   on a 172-byte PCMU packet and a 1200-byte VP8 packet with a one-byte
//!   (RFC 8285) header extension, against the `rtp` crate's
//!   (`rtc-rtp` 0.21) `Packet::unmarshal` on the same bytes. `view_ext` also
//!   walks the extension elements, as the crate's parser does.
//! * `observe` — the full `Engine::handle_datagram` path (classify, view,
//!   session lookup, SSRC scan, RFC 3550 A.1/A.8 update, counters), with
//!   `idle_timeout: None` and `max_sessions` large:
//!   `1k_streams` is 1 000 sessions × 1 SSRC (client PCMU audio);
//!   `1k_streams_3pct_loss` the same streams each skipping one sequence
//!   number in 33 (a gap per lost packet: the loss model's per-gap work);
//!   `100k_streams` is 25 000 sessions × 4 SSRCs (audio + video from the
//!   client, audio + video from the upstream: a two-way WebRTC call per
//!   session). Streams are visited round-robin in a fixed shuffled order, so
//!   consecutive packets hit unrelated sessions (the slot table is walked
//!   randomly, as interleaved arrivals from many clients would), and each
//!   stream's sequence number and timestamp advance as a 20 ms sender's would
//!   (PCMU 160 units, VP8 1800 units at 90 kHz); virtual time advances
//!   20 ms / streams per packet, so every stream sees 20 ms between its
//!   packets. Two packet buffers (audio, video) are patched in place (SSRC,
//!   sequence number, timestamp: the cost is included, a few ns). Every
//!   stream passed RFC 3550 probation before measuring.
//! * `rtcp`    — `handle_datagram` on 1 000 sessions (round-robin) for an
//!   SR+SDES compound from the client (NTP advancing) and for an RR with one
//!   report block from the upstream whose LSR/DLSR match an SR the proxy
//!   forwarded (so each RR yields an RTT sample). SRs that the RR answers
//!   are refreshed outside the timed region.
//!
//! Run: `cargo bench --bench packet_path` (≈3 s per benchmark) or
//! `scripts/bench.sh`, which prints a summary table. Quick mode for CI:
//! `cargo bench --bench packet_path -- --quick`, or `BENCH_QUICK=1` which
//! also shortens warm-up and measurement to a fraction of a second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
#[path = "../tests/common/mod.rs"]
mod common;
use common::deliver;
use rtc_shared::marshal::Unmarshal;
use rtp_middlebox::engine::{Engine, EngineConfig, RelaySettings, SessionId, SessionInfo, Side, Verdict};
use rtp_middlebox::stats::ClockRates;
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::ntp::{CompactNtp, Delay16, NtpTime};
use rtp_middlebox::wire::rtcp::{self, ReportBlock, SenderInfo};
use rtp_middlebox::wire::rtp::{write_rtp, Extension, RtpHeader, RtpView};
use rtp_middlebox::wire::{classify, PacketKind, PacketKind::Rtp, RtpTs, SeqNo, Ssrc};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

const PT_PCMU: u8 = 0;
const PT_VP8: u8 = 96;
/// 20 ms of PCMU at 8 kHz and of video at 90 kHz.
const PCMU_TS_STEP: u32 = 160;
const VIDEO_TS_STEP: u32 = 1800;
const PACKET_INTERVAL_NS: u64 = 20_000_000;

// ------------------------------------------------------------------ packets

/// 172-byte PCMU packet: 12-byte header + 160 bytes (20 ms at 8 kHz).
fn audio_packet(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
    let header = RtpHeader {
        payload_type: PT_PCMU,
        seq: SeqNo(seq),
        timestamp: RtpTs(ts),
        ssrc: Ssrc(ssrc),
        ..RtpHeader::default()
    };
    let mut p = Vec::with_capacity(172);
    write_rtp(&mut p, &header, &[0xff; 160]);
    p
}

/// 1200-byte VP8 packet with a one-byte header extension (RFC 8285 §4.2):
/// abs-send-time (id 3, 3 bytes) and transport-wide sequence (id 5, 2 bytes),
/// padded to two words. 12 + 4 + 8 header bytes, 1176 payload bytes.
fn video_packet(ssrc: u32, seq: u16, ts: u32) -> Vec<u8> {
    let extensions = [
        Extension {
            id: 3,
            data: &[0x12, 0x34, 0x56], // abs-send-time
        },
        Extension {
            id: 5,
            data: &[0x00, 0x07], // transport-wide sequence 7
        },
    ];
    let header = RtpHeader {
        marker: true,
        payload_type: PT_VP8,
        seq: SeqNo(seq),
        timestamp: RtpTs(ts),
        ssrc: Ssrc(ssrc),
        extensions: &extensions,
        ..RtpHeader::default()
    };
    // VP8 descriptor + key frame start, then filler.
    let mut payload = vec![0x90, 0xe0, 0x80, 0x00, 0x9d, 0x01, 0x2a];
    payload.resize(1176, 0x55);
    let mut p = Vec::with_capacity(1200);
    write_rtp(&mut p, &header, &payload);
    debug_assert_eq!(p.len(), 1200);
    p
}

#[inline]
fn patch(buf: &mut [u8], ssrc: u32, seq: u16, ts: u32) {
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

fn engine_config() -> EngineConfig {
    let mut rates = BTreeMap::new();
    rates.insert(PT_VP8, 90_000);
    rates.insert(111, 48_000);
    EngineConfig {
        relays: vec![RelaySettings {
            upstream: Some(UPSTREAM),
            clock_rates: ClockRates::new(&rates),
            ..RelaySettings::default()
        }],
        max_sessions: 10_000_000,
        idle_timeout: None,
        ..EngineConfig::default()
    }
}

const UPSTREAM: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 3478));

fn session_info(n: u32) -> SessionInfo {
    let ip = Ipv4Addr::from(0x0a00_0000 | n);
    SessionInfo {
        client: SocketAddr::V4(SocketAddrV4::new(ip, 40_000 + (n % 20_000) as u16)),
        upstream: "192.0.2.1:3478".parse().expect("address"),
    }
}

/// Deterministic shuffle (xorshift64*; no RNG crate needed).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let r = seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
        v.swap(i, (r % (i as u64 + 1)) as usize);
    }
}

// ------------------------------------------------------------------ parse

fn bench_parse(c: &mut Criterion) {
    let audio = audio_packet(0x1234_5678, 1000, 160_000);
    let video = video_packet(0x9abc_def0, 4242, 900_000);
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, pkt) in [("audio172", &audio), ("video1200", &video)] {
        // What the engine reads per packet: kind, SSRC, PT, seq, ts, lengths.
        g.bench_function(format!("view/{name}"), |b| {
            b.iter(|| {
                let d = black_box(&pkt[..]);
                let kind = classify(d);
                let v = RtpView::parse(d).expect("valid RTP");
                black_box((
                    kind,
                    v.ssrc(),
                    v.payload_type(),
                    v.seq(),
                    v.timestamp(),
                    v.header_len(),
                    v.payload_len(),
                ))
            })
        });
        // The same plus every header extension element (the crate parses them).
        g.bench_function(format!("view_ext/{name}"), |b| {
            b.iter(|| {
                let d = black_box(&pkt[..]);
                let kind = classify(d);
                let v = RtpView::parse(d).expect("valid RTP");
                let mut ext = 0usize;
                for e in v.extensions() {
                    ext += usize::from(e.id) + e.data.len();
                }
                black_box((kind, v.ssrc(), v.seq(), v.timestamp(), v.payload_len(), ext))
            })
        });
        // Baseline: the `rtp` crate (rtc-rtp 0.21), owning `Packet`.
        g.bench_function(format!("rtp_crate/{name}"), |b| {
            b.iter(|| {
                let p = rtp::packet::Packet::unmarshal(&mut black_box(&pkt[..])).expect("valid RTP");
                black_box((
                    p.header.ssrc,
                    p.header.sequence_number,
                    p.header.timestamp,
                    p.payload.len(),
                ));
                p
            })
        });
    }
    g.finish();
}

// ------------------------------------------------------------------ observe

struct Stream {
    id: SessionId,
    client: SocketAddr,
    side: Side,
    video: bool,
    ssrc: u32,
    seq: u16,
    ts: u32,
}

/// Many live streams in one engine, fed round-robin.
struct Fleet {
    engine: Engine,
    streams: Vec<Stream>,
    audio: Vec<u8>,
    video: Vec<u8>,
    now_ns: u64,
    step_ns: u64,
    cursor: usize,
    /// Every stream skips a sequence number after each `gap_every`-th one
    /// (0: never): one lost packet in `gap_every + 1`, each a gap the
    /// receive path (and the loss model it feeds) sees.
    gap_every: u16,
}

impl Fleet {
    /// `kinds` lists the streams of each session: (side, video?).
    fn new(sessions: u32, kinds: &[(Side, bool)]) -> Self {
        let mut engine = Engine::new(engine_config());
        let t0 = MonoTime::from_millis(1_000);
        let mut streams = Vec::with_capacity(sessions as usize * kinds.len());
        for n in 0..sessions {
            let info = session_info(n);
            let id = engine.open_session(t0, 0, info).expect("room for the session");
            for (k, &(side, video)) in kinds.iter().enumerate() {
                let ssrc = n.wrapping_mul(0x9e37_79b9) ^ (k as u32) << 28 ^ 0x5555;
                streams.push(Stream {
                    id,
                    client: info.client,
                    side,
                    video,
                    ssrc,
                    seq: (ssrc >> 7) as u16,
                    ts: ssrc.rotate_left(9),
                });
            }
        }
        shuffle(&mut streams, 0x0123_4567_89ab_cdef);
        let step_ns = (PACKET_INTERVAL_NS / streams.len() as u64).max(1);
        let mut fleet = Fleet {
            engine,
            streams,
            audio: audio_packet(0, 0, 0),
            video: video_packet(0, 0, 0),
            now_ns: t0.as_nanos(),
            step_ns,
            cursor: 0,
            gap_every: 0,
        };
        // Three rounds: every source is created and out of probation (A.1).
        for _ in 0..3 * fleet.streams.len() {
            let v = fleet.next_packet();
            assert_eq!(v, Verdict::Forward(Rtp));
        }
        fleet
    }

    /// Sends the next stream's next packet through the engine.
    #[inline]
    fn next_packet(&mut self) -> Verdict {
        let n = self.streams.len();
        let s = &mut self.streams[self.cursor];
        self.cursor += 1;
        if self.cursor == n {
            self.cursor = 0;
        }
        let (buf, ts_step) = if s.video {
            (&mut self.video, VIDEO_TS_STEP)
        } else {
            (&mut self.audio, PCMU_TS_STEP)
        };
        patch(buf, s.ssrc, s.seq, s.ts);
        s.seq = s.seq.wrapping_add(1);
        s.ts = s.ts.wrapping_add(ts_step);
        if self.gap_every != 0 && s.seq % self.gap_every == 0 {
            s.seq = s.seq.wrapping_add(1);
            s.ts = s.ts.wrapping_add(ts_step);
        }
        self.now_ns += self.step_ns;
        deliver(
            &mut self.engine,
            MonoTime::from_nanos(self.now_ns),
            s.side,
            s.id,
            s.client,
            buf,
        )
    }
}

/// A recvmmsg-sized batch of packets with their own buffers.
struct Batch {
    bufs: Vec<Vec<u8>>,
    meta: Vec<(SessionId, SocketAddr, Side, u64)>,
}

impl Fleet {
    /// Fills a batch with the next 32 streams' next packets, then hands
    /// them to the engine one by one, as the worker does with a recvmmsg
    /// batch.
    fn next_batch(&mut self, batch: &mut Batch) {
        let n = self.streams.len();
        for k in 0..batch.bufs.len() {
            let s = &mut self.streams[self.cursor];
            self.cursor += 1;
            if self.cursor == n {
                self.cursor = 0;
            }
            let (template, ts_step) = if s.video {
                (&self.video, VIDEO_TS_STEP)
            } else {
                (&self.audio, PCMU_TS_STEP)
            };
            let buf = &mut batch.bufs[k];
            buf.clear();
            buf.extend_from_slice(template);
            patch(buf, s.ssrc, s.seq, s.ts);
            s.seq = s.seq.wrapping_add(1);
            s.ts = s.ts.wrapping_add(ts_step);
            self.now_ns += self.step_ns;
            batch.meta[k] = (s.id, s.client, s.side, self.now_ns);
        }
        for (buf, &(id, client, side, now)) in batch.bufs.iter().zip(&batch.meta) {
            deliver(&mut self.engine, MonoTime::from_nanos(now), side, id, client, buf);
        }
    }
}

fn bench_observe(c: &mut Criterion) {
    let mut g = c.benchmark_group("observe");
    g.throughput(Throughput::Elements(1));
    {
        let mut fleet = Fleet::new(1_000, &[(Side::Client, false)]);
        g.bench_function("1k_streams", |b| b.iter(|| fleet.next_packet()));
        let c = fleet.engine.counters();
        assert_eq!(c.total_drops(), 0, "every packet was forwarded");
        // The same streams losing 3 % (one in 33, each its own gap): what
        // the gap path and the loss model it feeds add per packet.
        fleet.gap_every = 32;
        g.bench_function("1k_streams_3pct_loss", |b| b.iter(|| fleet.next_packet()));
        assert_eq!(fleet.engine.counters().total_drops(), 0);
    }
    {
        let kinds = [
            (Side::Client, false),
            (Side::Client, true),
            (Side::Upstream, false),
            (Side::Upstream, true),
        ];
        let mut fleet = Fleet::new(25_000, &kinds);
        g.bench_function("100k_streams", |b| b.iter(|| fleet.next_packet()));
        assert_eq!(fleet.engine.counters().total_drops(), 0);
        // The same fleet through the batch API, as the relay hands over a
        // recvmmsg batch (32): per packet, with prefetching.
        let mut batch = Batch {
            bufs: (0..32).map(|_| Vec::with_capacity(1300)).collect(),
            meta: vec![(fleet.streams[0].id, fleet.streams[0].client, Side::Client, 0); 32],
        };
        g.throughput(Throughput::Elements(32));
        g.bench_function("100k_streams_batch32", |b| b.iter(|| fleet.next_batch(&mut batch)));
        g.throughput(Throughput::Elements(1));
        assert_eq!(fleet.engine.counters().total_drops(), 0);
    }
    g.finish();
}

// ------------------------------------------------------------------ rtcp

const RTCP_SESSIONS: u32 = 1_000;
const CLIENT_SSRC_BASE: u32 = 0x1000_0000;
const UPSTREAM_SSRC: u32 = 0x7777_7777;

/// NTP timestamp (RFC 3550 §4) for a virtual time: seconds since an
/// arbitrary 2025 epoch, 32.32 fixed point.
fn ntp_at(ns: u64) -> u64 {
    let secs = 3_960_000_000u64 + ns / 1_000_000_000;
    let frac = ((ns % 1_000_000_000) << 32) / 1_000_000_000;
    secs << 32 | frac
}

/// SR (no report blocks: a send-only client) + SDES CNAME, 56 bytes.
fn sr_sdes(ssrc: u32, ntp: u64, rtp_ts: u32) -> Vec<u8> {
    let info = SenderInfo {
        ntp: NtpTime(ntp),
        rtp_ts,
        packet_count: 1_000,
        octet_count: 160_000,
    };
    let mut p = Vec::with_capacity(56);
    rtcp::write_sender_report(&mut p, Ssrc(ssrc), &info, &[]);
    // SDES, one chunk: CNAME "{ab12cd34-ef56-}" (16 bytes) + null + pad.
    rtcp::write_sdes_cname(&mut p, Ssrc(ssrc), b"{ab12cd34-ef56-}");
    debug_assert_eq!(p.len(), 56);
    p
}

/// RR with one report block, 32 bytes.
fn rr_one(reporter: u32, about: u32, lsr: u32, dlsr: u32) -> Vec<u8> {
    let block = ReportBlock {
        ssrc: Ssrc(about),
        fraction_lost: 3,
        cumulative_lost: 12,
        ext_highest_seq: 0x0001_1234,
        jitter: 42,
        lsr: CompactNtp(lsr),
        dlsr: Delay16(dlsr),
    };
    let mut p = Vec::with_capacity(32);
    rtcp::write_receiver_report(&mut p, Ssrc(reporter), &[block]);
    p
}

struct RtcpFleet {
    engine: Engine,
    /// (session, its client's address and SSRC), in a shuffled order.
    ids: Vec<(SessionId, SocketAddr, u32)>,
    sr: Vec<u8>,
    rr: Vec<u8>,
    now_ns: u64,
    cursor: usize,
    /// Time each session's latest SR was forwarded, for the RR's LSR/DLSR.
    sr_sent: Vec<u64>,
}

impl RtcpFleet {
    /// 1 000 sessions whose client sends PCMU (so the SSRCs exist).
    fn new() -> Self {
        let mut engine = Engine::new(engine_config());
        let t0 = 1_000_000_000u64;
        let mut ids = Vec::new();
        for n in 0..RTCP_SESSIONS {
            let info = session_info(n);
            let id = engine.open_session(MonoTime::from_nanos(t0), 0, info).expect("room");
            for i in 0..3u16 {
                let p = audio_packet(CLIENT_SSRC_BASE + n, i, u32::from(i) * 160);
                let now = MonoTime::from_nanos(t0 + u64::from(i) * 20_000_000);
                deliver(&mut engine, now, Side::Client, id, info.client, &p);
            }
            ids.push((id, info.client, CLIENT_SSRC_BASE + n));
        }
        shuffle(&mut ids, 42);
        RtcpFleet {
            engine,
            ids,
            sr: sr_sdes(0, 0, 0),
            rr: rr_one(UPSTREAM_SSRC, 0, 0, 0),
            now_ns: t0 + 100_000_000,
            cursor: 0,
            sr_sent: vec![0; RTCP_SESSIONS as usize],
        }
    }

    /// One SR+SDES from the next session's client (1 ms of virtual time apart).
    #[inline]
    fn next_sr(&mut self) -> Verdict {
        let i = self.cursor;
        self.cursor = (i + 1) % self.ids.len();
        self.now_ns += 1_000_000;
        let (id, client, ssrc) = self.ids[i];
        let ntp = ntp_at(self.now_ns);
        self.sr[4..8].copy_from_slice(&ssrc.to_be_bytes());
        self.sr[8..16].copy_from_slice(&ntp.to_be_bytes());
        self.sr[32..36].copy_from_slice(&ssrc.to_be_bytes());
        self.sr_sent[i] = self.now_ns;
        deliver(
            &mut self.engine,
            MonoTime::from_nanos(self.now_ns),
            Side::Client,
            id,
            client,
            &self.sr,
        )
    }

    /// One RR from the next session's upstream answering that session's
    /// latest SR: 50 ms of RTT plus whatever delay has elapsed since.
    #[inline]
    fn next_rr(&mut self) -> Verdict {
        let i = self.cursor;
        self.cursor = (i + 1) % self.ids.len();
        self.now_ns += 1_000_000;
        let sent = self.sr_sent[i];
        let lsr = (ntp_at(sent) >> 16) as u32;
        let held = self.now_ns - sent;
        let dlsr = ((held.saturating_sub(50_000_000) << 16) / 1_000_000_000) as u32;
        let (id, client, about) = self.ids[i];
        self.rr[8..12].copy_from_slice(&about.to_be_bytes());
        self.rr[24..28].copy_from_slice(&lsr.to_be_bytes());
        self.rr[28..32].copy_from_slice(&dlsr.max(1).to_be_bytes());
        deliver(
            &mut self.engine,
            MonoTime::from_nanos(self.now_ns),
            Side::Upstream,
            id,
            client,
            &self.rr,
        )
    }

    /// An SR from every session (outside any timed region), so that the
    /// next round of RRs finds fresh SRs to match.
    fn refresh_srs(&mut self) {
        self.cursor = 0;
        for _ in 0..self.ids.len() {
            let v = self.next_sr();
            assert_eq!(v, Verdict::Forward(PacketKind::Rtcp));
        }
        self.cursor = 0;
    }
}

fn bench_rtcp(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtcp");
    g.throughput(Throughput::Elements(1));
    let mut fleet = RtcpFleet::new();
    // One untimed round checks the set-up: every SR and RR is forwarded and
    // every RR yields an RTT sample (criterion filters may skip the rest).
    fleet.refresh_srs();
    let before = fleet.engine.counters().rtt_samples;
    for _ in 0..fleet.ids.len() {
        assert_eq!(fleet.next_rr(), Verdict::Forward(PacketKind::Rtcp));
    }
    let matched = fleet.engine.counters().rtt_samples - before;
    assert_eq!(matched, fleet.ids.len() as u64, "every RR matched its SR");
    g.bench_function("sr_sdes_1k_sessions", |b| b.iter(|| fleet.next_sr()));
    g.bench_function("rr_1block_1k_sessions", |b| {
        b.iter_custom(|iters| {
            let mut left = iters;
            let mut total = Duration::ZERO;
            while left > 0 {
                fleet.refresh_srs();
                let n = left.min(fleet.ids.len() as u64);
                // Timing is the point of a benchmark: the engine's no-clock rule
                // (clippy.toml) does not apply here.
                #[allow(clippy::disallowed_methods)]
                let start = Instant::now();
                for _ in 0..n {
                    black_box(fleet.next_rr());
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });
    assert_eq!(fleet.engine.counters().total_drops(), 0);
    g.finish();
}

// ------------------------------------------------------------------ harness

fn config() -> Criterion {
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0" && !v.is_empty());
    let c = Criterion::default();
    let c = if quick {
        c.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500))
            .sample_size(10)
    } else {
        c.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
    };
    c.configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_parse, bench_observe, bench_rtcp
}
criterion_main!(benches);
