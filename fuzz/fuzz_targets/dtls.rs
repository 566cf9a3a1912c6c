//! The DTLS termination path of the engine: a session on a
//! `dtls = "terminate"` relay bound to a call, then arbitrary datagrams
//! (DTLS records, SRTP, SRTCP, STUN) from either side with virtual time
//! and timeouts.
//!
//! Input layout:
//! ```text
//! byte 0      setup: bit 0 = the client is the DTLS client (else the
//!             upstream); bits 1..2 = RTCP mode (forward, auto, terminate)
//! then records until the input ends:
//!   flags     bit 0 = side; bit 1 = an Input::Timeout after; bit 2 = force
//!             a DTLS content type (20 + bits 3..4) into the first byte
//!   advance   virtual time step in ms (0..=255)
//!   len       datagram length (clipped to what is left)
//!   bytes     the datagram
//! ```
//!
//! Checked besides "never panics": every transmit goes to the session's
//! own endpoints; DTLS records the proxy sends are DTLS; the output queue
//! and the number of timers stay bounded; after `Input::Timeout(now)` the
//! next deadline lies after `now`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::dtls::DtlsIdentity;
use rtp_middlebox::engine::dtls::{CallSetup, DtlsRole, DtlsSettings, PeerDtls};
use rtp_middlebox::engine::{Engine, EngineConfig, Input, Output, RelaySettings, RtcpMode, SocketRef};
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::stun::write_binding_request;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// One identity and one epoch for every run (key generation is slow).
fn fixed() -> &'static (Arc<DtlsIdentity>, Instant) {
    static FIXED: OnceLock<(Arc<DtlsIdentity>, Instant)> = OnceLock::new();
    #[allow(clippy::disallowed_methods)]
    FIXED.get_or_init(|| (Arc::new(DtlsIdentity::generate().unwrap()), Instant::now()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else { return };
    let (identity, epoch) = fixed();
    let client: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    let upstream: SocketAddr = "198.51.100.1:3478".parse().unwrap();
    let local: SocketAddr = "203.0.113.1:3478".parse().unwrap();
    let mode = [RtcpMode::Forward, RtcpMode::Auto, RtcpMode::Terminate, RtcpMode::Auto][usize::from(setup >> 1 & 3)];
    let mut engine = Engine::new(EngineConfig {
        relays: vec![RelaySettings {
            mode,
            upstream: Some(upstream),
            dtls_terminate: true,
            ..RelaySettings::default()
        }],
        dtls: Some(DtlsSettings::new(identity.clone(), *epoch)),
        max_queued_events: 256,
        ..EngineConfig::default()
    });
    let client_is_dtls_client = setup & 1 == 1;
    let peer = |ufrag: &str, client_role: bool| PeerDtls {
        ufrag: Some(ufrag.into()),
        fingerprints: vec![[7; 32]],
        role: if client_role { DtlsRole::Client } else { DtlsRole::Server },
    };
    engine
        .set_call(
            MonoTime::ZERO,
            CallSetup {
                call_id: "fuzz".into(),
                client: peer("c", client_is_dtls_client),
                upstream: peer("u", !client_is_dtls_client),
                client_address: None,
            },
        )
        .unwrap();
    let mut check = Vec::new();
    write_binding_request(&mut check, [1; 12], Some(b"u:c"));
    let mut now = MonoTime::from_millis(1);
    let listen = SocketRef::Listen { relay: 0, rtcp: false };
    engine.handle_input(Input::Datagram { now, socket: listen, remote: client, local, bytes: &check });
    let mut session = None;
    let drain = |engine: &mut Engine, session: &mut Option<_>, after: Option<MonoTime>| {
        let mut n = 0;
        while let Some(o) = engine.poll_output() {
            n += 1;
            assert!(n < 10_000, "outputs keep coming");
            match o {
                Output::Transmit(t) => match t.socket {
                    SocketRef::Listen { .. } => assert_eq!(t.destination, client),
                    SocketRef::Upstream { session: s, .. } => {
                        assert_eq!(Some(s), *session);
                        assert_eq!(t.destination, upstream);
                    }
                },
                Output::OpenUpstream { session: s, .. } => *session = Some(s),
                Output::Timeout(t) => {
                    if let Some(now) = after {
                        assert!(t > now, "deadline {t:?} not after {now:?}");
                    }
                    break;
                }
                _ => {}
            }
        }
    };
    drain(&mut engine, &mut session, None);
    let Some(id) = session else { return };
    while let [flags, advance, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let mut datagram = tail[..n].to_vec();
        rest = &tail[n..];
        if flags & 4 != 0 {
            if let Some(b) = datagram.first_mut() {
                *b = 20 + (flags >> 3 & 3);
            }
        }
        now = now + Duration::from_millis(u64::from(*advance));
        let (socket, remote) = match flags & 1 {
            0 => (listen, client),
            _ => (SocketRef::Upstream { session: id, rtcp: false }, upstream),
        };
        engine.handle_input(Input::Datagram { now, socket, remote, local, bytes: &datagram });
        drain(&mut engine, &mut session, None);
        if flags & 2 != 0 {
            engine.handle_input(Input::Timeout(now));
            drain(&mut engine, &mut session, Some(now));
        }
    }
});
