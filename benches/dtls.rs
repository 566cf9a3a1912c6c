//! The cost of terminating DTLS-SRTP, per packet and per call
//! (`Throughput::Elements(1)`: criterion's "time" is ns per packet or per
//! call).
//!
//! Groups:
//! * `dtls_packet` — one SRTP datagram from the client through the engine
//!   (`handle_input` + draining the outputs, as the worker does): `pass` on
//!   a session that relays DTLS-SRTP untouched (observe the clear header,
//!   forward the same bytes) against `terminate` on a session bound to a
//!   call whose two legs completed real handshakes (open with the client
//!   leg's keys, observe the plaintext, protect with the upstream leg's).
//!   160 B and 1200 B of payload. The legs negotiate dimpl's preferred
//!   profile, AEAD_AES_256_GCM. Packets are protected outside the timed
//!   region (`iter_batched`).
//! * `srtp_transcode` — the crypto alone for every suite: open one SRTP
//!   packet and protect it under other keys, 160 B and 1200 B.
//! * `dtls_handshake` — one whole back-to-back call set-up: two DTLS
//!   endpoints and the engine, both handshakes to completion (certificates
//!   made once, outside the timed region); its rate is handshakes per second
//!   on one core (two legs each).
//!
//! Run: `cargo bench --bench dtls` (`-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
#[path = "../tests/common/mod.rs"]
mod common;
use common::dtls::call;
use common::{addr, deliver, driver_and_session, ms, rtp, CLIENT};
use rtp_middlebox::engine::{EngineConfig, RtcpMode, Side, Verdict};
use rtp_middlebox::srtp::{media_context, CryptoSuite, SrtpKeys};
use rtp_middlebox::wire::Ssrc;
use std::hint::black_box;
use std::time::Duration;

fn keys(suite: CryptoSuite, xor: u8) -> SrtpKeys {
    let material: Vec<u8> = (0..suite.key_material_len() as u8).map(|i| i ^ xor).collect();
    let (k, s) = material.split_at(suite.master_key_len());
    SrtpKeys::new(suite, k, s).unwrap()
}

fn dtls_packet(c: &mut Criterion) {
    let mut g = c.benchmark_group("dtls_packet");
    g.throughput(Throughput::Elements(1));
    for payload in [160usize, 1200] {
        for terminate in [false, true] {
            // Terminate: a call whose two legs completed real handshakes.
            // Pass-through: a session on a relay that leaves DTLS alone, so
            // the SRTP it cannot open is forwarded as it is (any keys make
            // realistic bytes).
            let (mut driver, id, now, client_keys) = if terminate {
                let mut call = call(RtcpMode::Auto, true);
                call.pump();
                assert!(call.client.connected && call.upstream.connected);
                let k = call.client.keys.clone().unwrap().own_write;
                (call.driver, call.id, call.now, k)
            } else {
                let (d, id) = driver_and_session(RtcpMode::Auto, EngineConfig::default());
                (d, id, ms(10), keys(CryptoSuite::AeadAes256Gcm, 0x11))
            };
            let mut protect = media_context(&client_keys).unwrap();
            let mut seq = 0u16;
            let name = format!("{}/{payload}B", if terminate { "terminate" } else { "pass" });
            let engine = &mut driver.engine;
            g.bench_function(name, |b| {
                b.iter_batched(
                    || {
                        seq = seq.wrapping_add(1);
                        let plain = rtp(96, seq, u32::from(seq) * 3000, Ssrc(0x5eed), payload);
                        protect.encrypt_rtp(&plain).unwrap().to_vec()
                    },
                    |wire| {
                        let v = deliver(engine, now, Side::Client, id, addr(CLIENT), black_box(&wire));
                        // Forwarded (pass) or re-protected (terminate), never dropped.
                        assert!(matches!(v, Verdict::Forward(_) | Verdict::Rewritten(_)), "{v:?}");
                        v
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

fn srtp_transcode(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp_transcode");
    g.throughput(Throughput::Elements(1));
    for suite in CryptoSuite::ALL {
        for payload in [160usize, 1200] {
            let (a, b_keys) = (keys(suite, 0x5c), keys(suite, 0x3a));
            let mut sender = media_context(&a).unwrap();
            let mut open = media_context(&a).unwrap();
            let mut protect = media_context(&b_keys).unwrap();
            let mut seq = 0u16;
            g.bench_function(format!("{}/{payload}B", suite.sdp_name()), |b| {
                b.iter_batched(
                    || {
                        seq = seq.wrapping_add(1);
                        let plain = rtp(96, seq, u32::from(seq) * 3000, Ssrc(0x5eed), payload);
                        sender.encrypt_rtp(&plain).unwrap()
                    },
                    |wire| {
                        let plain = open.decrypt_rtp(black_box(&wire)).unwrap();
                        protect.encrypt_rtp(&plain).unwrap()
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

fn dtls_handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("dtls_handshake");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.bench_function("back_to_back_call", |b| {
        b.iter_batched(
            || call(RtcpMode::Auto, true),
            |mut call| {
                call.pump();
                assert!(call.client.connected && call.upstream.connected);
                call
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn config() -> Criterion {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let c = Criterion::default();
    if quick {
        c.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600))
    } else {
        c
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = dtls_packet, srtp_transcode, dtls_handshake
}
criterion_main!(benches);
