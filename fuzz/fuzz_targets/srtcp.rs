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
use rtp_middlebox::engine::{
    Engine, EngineConfig, Input, Output, Payload, RelaySettings, RtcpMode, SessionInfo, SessionKeys, Side, SocketRef,
    Verdict,
};
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

/// Drains the engine's outputs: the datagrams it wrote (not forwarded
/// unchanged), with the side each goes toward.
fn written(engine: &mut Engine) -> Vec<(Side, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(o) = engine.poll_output() {
        match o {
            Output::Transmit(t) => {
                let toward = match t.socket {
                    SocketRef::Listen { .. } => Side::Client,
                    SocketRef::Upstream { .. } => Side::Upstream,
                };
                if let Payload::Owned(bytes) = t.payload {
                    out.push((toward, bytes));
                }
            }
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else { return };
    let suite = CryptoSuite::ALL[usize::from(setup & 3)];
    let mode = [RtcpMode::Forward, RtcpMode::Auto, RtcpMode::Terminate, RtcpMode::Auto][usize::from((setup >> 2) & 3)];
    let (kc, ku) = (keys(suite, 7), keys(suite, 11));
    let mut engine = Engine::new(EngineConfig {
        relays: vec![RelaySettings {
            mode,
            upstream: Some("198.51.100.1:3478".parse().unwrap()),
            ..RelaySettings::default()
        }],
        ..EngineConfig::default()
    });
    let info = SessionInfo {
        client: "192.0.2.1:5000".parse().unwrap(),
        upstream: "198.51.100.1:3478".parse().unwrap(),
    };
    let Ok(id) = engine.open_session(MonoTime::ZERO, 0, info) else { return };
    written(&mut engine);
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
        let (socket, remote) = match side {
            Side::Client => (SocketRef::Listen { relay: 0, rtcp: false }, info.client),
            Side::Upstream => (SocketRef::Upstream { session: id, rtcp: false }, info.upstream),
        };
        let verdict = engine.handle_input(Input::Datagram {
            now,
            socket,
            remote,
            local: info.upstream,
            bytes: &datagram,
        });
        let sent = written(&mut engine);
        if classify(&datagram) == PacketKind::Rtcp {
            // A compound that did not open is never forwarded as is.
            let mut probe = SrtcpReader::new(if side == Side::Client { &kc } else { &ku }).unwrap();
            let mut scratch = Vec::new();
            if probe.decrypt(&datagram, &mut scratch).is_err() && datagram.len() >= 8 && flags & 2 == 0 {
                assert!(!matches!(verdict, Verdict::Rewritten(_)), "{verdict:?}");
            }
        }
        if let Verdict::Rewritten(_) = verdict {
            let (toward, rewritten) = sent.first().expect("a rewrite is sent");
            assert_eq!(*toward, side.other());
            opens_and_walks(&mut open_at[toward.index()], rewritten);
        }
        if flags & 4 != 0 {
            engine.handle_input(Input::Timeout(now));
            for (toward, datagram) in written(&mut engine) {
                opens_and_walks(&mut open_at[toward.index()], &datagram);
            }
        }
    }
    let _ = engine.snapshot(now, id);
});
