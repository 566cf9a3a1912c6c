//! SRTCP cost per packet and suite: protecting the proxy's own report (48 B
//! RR + SDES, the common case), protecting a large compound (1 KB), and
//! opening (authenticate, replay-check, decrypt) each. Baseline in the same
//! run: the keyless path, which only reads the clear 8 bytes and trailer.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rtp_middlebox::srtp::{srtcp_trailer, CryptoSuite, SrtcpProtector, SrtcpReader, SrtpKeys};
use std::hint::black_box;

fn compound(len: usize) -> Vec<u8> {
    // RR header with the proxy's SSRC, then opaque report content.
    let words = (len / 4 - 1) as u16;
    let mut p = vec![0x80, 0xc9];
    p.extend_from_slice(&words.to_be_bytes());
    p.extend_from_slice(&0x5052_4f58u32.to_be_bytes());
    p.resize(len, 0x33);
    p
}

fn srtcp(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtcp");
    g.throughput(Throughput::Elements(1));
    for suite in CryptoSuite::ALL {
        let material: Vec<u8> = (0..suite.key_material_len() as u8).map(|i| i ^ 0x5c).collect();
        let (k, s) = material.split_at(suite.master_key_len());
        let keys = SrtpKeys::new(suite, k, s).unwrap();
        for len in [48usize, 1024] {
            let plain = compound(len);
            let name = format!("{}/{len}B", suite.sdp_name());
            let mut protector = SrtcpProtector::new(&keys).unwrap();
            let mut out = Vec::with_capacity(len + 32);
            let mut index = 0u32;
            g.bench_function(format!("protect/{name}"), |b| {
                b.iter(|| {
                    index = (index + 1) & 0x7fff_ffff;
                    protector.protect(black_box(&plain), index, &mut out).unwrap();
                })
            });
            // Opening needs a fresh index each time (replays are refused):
            // packets are protected in the untimed setup.
            let mut reader = SrtcpReader::new(&keys).unwrap();
            let mut sealer = SrtcpProtector::new(&keys).unwrap();
            let mut next = 0u32;
            let mut opened = Vec::with_capacity(len);
            g.bench_function(format!("open/{name}"), |b| {
                b.iter_batched(
                    || {
                        next += 1;
                        let mut w = Vec::new();
                        sealer.protect(&plain, next, &mut w).unwrap();
                        w
                    },
                    |wire| reader.decrypt(&wire, &mut opened).unwrap(),
                    BatchSize::SmallInput,
                )
            });
            if suite == CryptoSuite::AesCm128HmacSha1_80 {
                let mut wire = Vec::new();
                protector.protect(&plain, 1, &mut wire).unwrap();
                g.bench_function(format!("keyless_trailer/{len}B"), |b| {
                    b.iter(|| srtcp_trailer(black_box(&wire), 10))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, srtcp);
criterion_main!(benches);
