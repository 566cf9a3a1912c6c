//! The calls API's SDP handling (attacker-reachable: SDP comes from both
//! peers): `sdp::inspect` and `sdp::rewrite` on arbitrary text. Never
//! panics; rewrite fails exactly when inspect does (or with too-large when
//! the proxy's lines no longer fit the bounds); a rewritten SDP inspects
//! to the proxy's fingerprint with the same ufrag and m-lines, and
//! rewriting it again changes nothing; errors stay short (no SDP line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::sdp::{inspect, rewrite, Fingerprint, Rewrite, SdpError, Setup};
use std::net::SocketAddr;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the options; the rest is the SDP.
    let Some((&options, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let setup = match options & 3 {
        0 => None,
        1 => Some(Setup::Active),
        2 => Some(Setup::Passive),
        _ => Some(Setup::Actpass),
    };
    let announce: Option<SocketAddr> = match (options >> 2) & 3 {
        0 => None,
        1 => Some("203.0.113.9:40000".parse().unwrap()),
        2 => Some("[2001:db8::9]:3478".parse().unwrap()),
        _ => Some("192.0.2.1:65534".parse().unwrap()),
    };
    let proxy = Fingerprint { algorithm: "sha-256".into(), value: vec![0x5a; 32] };
    let rw = Rewrite { fingerprint: &proxy, setup, announce };

    let inspected = inspect(&text);
    let rewritten = rewrite(&text, &rw);
    if let Err(e) = &inspected {
        assert!(e.reason().len() < 160, "{e}");
        assert_eq!(rewritten.as_ref().err(), Some(e));
        return;
    }
    let before = inspected.unwrap();
    let out = match rewritten {
        Ok(out) => out,
        Err(SdpError::TooLarge) => return,
        Err(e) => panic!("inspect accepted what rewrite refused: {e}"),
    };
    let after = inspect(&out).unwrap_or_else(|e| panic!("rewrite output does not inspect: {e}"));
    assert_eq!(after.fingerprints, [proxy.clone()]);
    assert_eq!(after.ice_ufrag, before.ice_ufrag);
    assert_eq!(after.media.len(), before.media.len());
    match setup {
        // Every a=setup now says s; with none at all RFC 4145's default.
        Some(s) => assert!(after.setup == s || after.setup == Setup::Active),
        None => assert_eq!(after.setup, before.setup),
    }
    if let Some(addr) = announce {
        for m in &after.media {
            assert!(m.port == addr.port() || (m.port == 0 && m.bundle_only));
        }
    }
    assert_eq!(rewrite(&out, &rw).as_deref(), Ok(out.as_str()), "not idempotent");
});
