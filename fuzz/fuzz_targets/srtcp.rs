//! SRTCP with provisioned keys, in the reader and through a keyed engine
//! session: arbitrary datagrams and, to reach the decrypted path, arbitrary
//! plain compounds protected with the right key first.
//!
//! Input layout:
//! ```text
//! byte 0     suite (mod 4) and RTCP mode (bits 2..3: forward, auto, terminate)
//! records    flags: bit 0 = side; bit 1 = protect the bytes first (with
//!            that side's key), bit 2 = run timeouts after
//!            len, bytes
//! ```
//! Checked besides "never panics": a datagram that fails to open is never
//! forwarded; what the engine sends toward a side (rewritten compounds,
//! generated reports) opens with the key that side expects and walks as RTCP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::engine::{Engine, EngineConfig, RtcpMode, SessionInfo, SessionKeys, Side, Verdict};
use rtp_middlebox::srtp::{CryptoSuite, SrtcpProtector, SrtcpReader, SrtpKeys};
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::{classify, rtcp, PacketKind};
use std::time::Duration;

fn keys(suite: CryptoSuite, seed: u8) -> SrtpKeys {
    let m: Vec<u8> = (0..suite.key_material_len() as u8).map(|i| i.wrapping_mul(seed) ^ 0x5a).collect();
    let (k, s) = m.split_at(suite.master_key_len());
    SrtpKeys::new(suite, k, s).unwrap()
}

fn opens_and_walks(reader: &mut SrtcpReader, datagram: &[u8]) {
    let mut plain = Vec::new();
    reader.decrypt(datagram, &mut plain).unwrap_or_else(|e| panic!("cannot open the engine's output: {e}"));
    assert_eq!(classify(&plain), PacketKind::Rtcp);
    assert!(rtcp::walk(&plain).all(|p| p.is_ok()));
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else { return };
    let suite = CryptoSuite::ALL[usize::from(setup & 3)];
    let mode = [RtcpMode::Forward, RtcpMode::Auto, RtcpMode::Terminate, RtcpMode::Auto][usize::from((setup >> 2) & 3)];
    let (kc, ku) = (keys(suite, 7), keys(suite, 11));
    let mut engine = Engine::new(EngineConfig {
        rtcp_mode: mode,
        ..EngineConfig::default()
    });
    let info = SessionInfo {
        client: "192.0.2.1:5000".parse().unwrap(),
        upstream: "198.51.100.1:3478".parse().unwrap(),
    };
    let Ok(id) = engine.open_session(MonoTime::ZERO, info) else { return };
    let session_keys = SessionKeys {
        client: Some(kc.clone()),
        upstream: Some(ku.clone()),
    };
    engine.set_session_keys(id, Some(&session_keys)).unwrap();
    // What each side's endpoint protects with, and opens with.
    let mut protect = [SrtcpProtector::new(&kc).unwrap(), SrtcpProtector::new(&ku).unwrap()];
    let mut open_at = [SrtcpReader::new(&ku).unwrap(), SrtcpReader::new(&kc).unwrap()];
    let mut index = [0u32; 2];
    let mut now = MonoTime::ZERO;
    while let [flags, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        let side = if flags & 1 == 0 { Side::Client } else { Side::Upstream };
        now = now + Duration::from_millis(u64::from(*len) * 7);
        let mut datagram = bytes.to_vec();
        if flags & 2 != 0 {
            index[side.index()] += 1;
            let mut sealed = Vec::new();
            if protect[side.index()].protect(bytes, index[side.index()], &mut sealed).is_ok() {
                datagram = sealed;
            }
        }
        let verdict = engine.handle_datagram(now, side, id, &datagram);
        if classify(&datagram) == PacketKind::Rtcp {
            // A compound that did not open is never forwarded as is.
            let mut probe = SrtcpReader::new(if side == Side::Client { &kc } else { &ku }).unwrap();
            let mut scratch = Vec::new();
            if probe.decrypt(&datagram, &mut scratch).is_err() && datagram.len() >= 8 && flags & 2 == 0 {
                assert!(!matches!(verdict, Verdict::Rewritten(_)), "{verdict:?}");
            }
        }
        if let Verdict::Rewritten(_) = verdict {
            let toward = side.other();
            let rewritten = engine.rewritten().to_vec();
            opens_and_walks(&mut open_at[toward.index()], &rewritten);
        }
        if flags & 4 != 0 {
            engine.handle_timeout(now);
            while let Some(tx) = engine.poll_transmit() {
                opens_and_walks(&mut open_at[tx.toward.index()], &tx.datagram);
            }
        }
    }
    let _ = engine.snapshot(now, id);
});
