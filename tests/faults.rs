//! Faults and hijacks over real sockets: the upstream going away and
//! coming back mid-stream, and a third party sending to a session's ports
//! with the session's SSRC.

// Real sockets: waiting on real time is the point.
#![allow(clippy::disallowed_methods)]

mod common;
use common::{loopback, pcmu as rtp, stun};
use rtp_middlebox::engine::Side;
use rtp_middlebox::runtime::{self, RelayRuntime};
use rtp_middlebox::wire::stun::{StunClass, ATTR_MESSAGE_INTEGRITY, ATTR_USERNAME};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The SFU's socket, a relay toward it (`extra` after the relay's keys),
/// and where the relay listens; the SFU waits 300 ms for a datagram.
fn sfu_and_relay(extra: &str) -> (UdpSocket, RelayRuntime, SocketAddr) {
    let sfu = waiting();
    let toml = common::relay_toml(sfu.local_addr().unwrap(), &format!("rtcp = \"forward\"\n{extra}"));
    let relay = common::start_relay(&toml);
    let listen = relay.bound()[0].listen;
    (sfu, relay, listen)
}

/// A loopback socket that waits 300 ms for a datagram.
fn waiting() -> UdpSocket {
    let s = loopback();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s
}

/// Sends `first` from `client` to the relay at `listen`: the session's
/// upstream address, which the SFU receives it from.
fn open_session(sfu: &UdpSocket, client: &UdpSocket, listen: SocketAddr, first: &[u8]) -> SocketAddr {
    client.send_to(first, listen).unwrap();
    sfu.recv_from(&mut [0u8; 2048]).unwrap().1
}

fn io_sum(relay: &RelayRuntime, f: impl Fn(&runtime::IoCounters) -> u64) -> u64 {
    relay.stats_blocking().iter().map(|w| f(&w.io)).sum()
}

#[test]
fn upstream_restart_mid_stream_errors_are_counted_and_forwarding_resumes() {
    let (sfu, relay, listen) = sfu_and_relay("");
    let sfu_addr = sfu.local_addr().unwrap();
    let client = loopback();
    sfu.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 2048];
    // 1 s of 50 packets/s, all delivered; the SFU answers once.
    let mut seq = 0u16;
    for _ in 0..50 {
        client.send_to(&rtp(seq, 0xfa17), listen).unwrap();
        seq += 1;
        let (n, from) = sfu.recv_from(&mut buf).unwrap();
        assert_eq!(n, 172);
        if seq == 1 {
            sfu.send_to(&buf[..12], from).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The SFU process dies: its port answers ICMP unreachable for 1 s.
    drop(sfu);
    for _ in 0..50 {
        client.send_to(&rtp(seq, 0xfa17), listen).unwrap();
        seq += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = io_sum(&relay, |io| io.send_refused + io.recv_refused);
    assert!(refused > 0, "ICMP unreachable was not counted");
    let before = relay.sessions_blocking()[0].snapshot.side(Side::Client).sources[0]
        .rtp
        .clone()
        .unwrap();
    // It comes back on the same port; the next packet goes through.
    let sfu = UdpSocket::bind(sfu_addr).unwrap();
    sfu.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let back = Instant::now();
    client.send_to(&rtp(seq, 0xfa17), listen).unwrap();
    seq += 1;
    let (n, _) = sfu.recv_from(&mut buf).expect("forwarding resumed");
    let resumed = back.elapsed();
    assert_eq!(n, 172);
    assert!(
        resumed < Duration::from_millis(20),
        "resumed after {resumed:?} (one packet interval: 20 ms)"
    );
    for _ in 0..20 {
        client.send_to(&rtp(seq, 0xfa17), listen).unwrap();
        seq += 1;
        sfu.recv_from(&mut buf).expect("forwarding continues");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Same session, statistics continued (never reset, never negative).
    let views = relay.sessions_blocking();
    assert_eq!(views.len(), 1, "the session survived the outage");
    let after = views[0].snapshot.side(Side::Client).sources[0].rtp.clone().unwrap();
    assert_eq!(after.packets_received, u64::from(seq));
    assert!(after.packets_received > before.packets_received);
    assert_eq!(after.packets_lost, 0, "the proxy received everything it was sent");
    assert_eq!(after.restarts, 0);
    println!(
        "upstream outage: {refused} ICMP errors counted, forwarding resumed {resumed:?} after the upstream returned; \
         {} packets received in one session",
        after.packets_received
    );
    relay.shutdown(Duration::from_secs(2));
}

#[test]
fn a_third_party_cannot_take_over_or_receive_a_sessions_media() {
    let (sfu, relay, listen) = sfu_and_relay("");
    let (victim, attacker) = (waiting(), waiting());
    let victim_up = open_session(&sfu, &victim, listen, &rtp(0, 0x71c7));
    let mut buf = [0u8; 2048];

    // The attacker sends to the relay's client port with the victim's SSRC:
    // it gets a session of its own (its own upstream socket), nothing more.
    for seq in 1..20 {
        attacker.send_to(&rtp(seq, 0x71c7), listen).unwrap();
    }
    // …and to the victim session's upstream socket, as if it were the SFU.
    for seq in 1..20 {
        attacker.send_to(&rtp(seq, 0xbad0), victim_up).unwrap();
    }
    let mut attacker_up = None;
    while let Ok((_, from)) = sfu.recv_from(&mut buf) {
        assert_ne!(
            from, victim_up,
            "attacker datagrams left through the victim's upstream socket"
        );
        attacker_up = Some(from);
    }
    assert!(attacker_up.is_some(), "the attacker's datagrams form their own session");
    // The victim never received the attacker's injection.
    assert!(
        victim.recv_from(&mut buf).is_err(),
        "injected datagrams reached the victim"
    );

    // Media for the victim still goes to the victim, and only to it.
    sfu.send_to(&rtp(1, 0x5f00), victim_up).unwrap();
    let (n, _) = victim.recv_from(&mut buf).expect("the victim's media");
    assert_eq!(&buf[..n], &rtp(1, 0x5f00)[..]);
    assert!(
        attacker.recv_from(&mut buf).is_err(),
        "the attacker received the victim's media"
    );
    // The victim's session and statistics are its own.
    let views = relay.sessions_blocking();
    assert_eq!(views.len(), 2);
    let victim_view = views.iter().find(|v| v.upstream_local == victim_up).unwrap();
    let src = &victim_view.snapshot.side(Side::Client).sources[0];
    assert_eq!(
        src.rtp.as_ref().unwrap().packets_received,
        1,
        "the attacker's packets were not counted for the victim"
    );
    assert_eq!(victim_view.snapshot.side(Side::Upstream).sources[0].ssrc, 0x5f00);
    relay.shutdown(Duration::from_secs(2));
}

const USERNAME: &[u8] = b"sfuFrag:cliFrag";

/// A binding request with USERNAME and a MESSAGE-INTEGRITY placeholder;
/// `genuine` stands for "computed with the ICE password" (the SFU below
/// checks that flag byte the way a real agent checks the HMAC).
fn check(txid: u8, genuine: bool) -> Vec<u8> {
    let integrity = [if genuine { 0x11 } else { 0x66 }; 20];
    stun(
        StunClass::Request,
        [txid; 12],
        &[(ATTR_USERNAME, USERNAME), (ATTR_MESSAGE_INTEGRITY, &integrity)],
    )
}

/// The SFU's ICE agent: success for a genuine check, 401 otherwise.
fn answer(request: &[u8]) -> Vec<u8> {
    let genuine = request.len() >= 20 && request[request.len() - 1] == 0x11;
    let class = if genuine {
        StunClass::SuccessResponse
    } else {
        StunClass::ErrorResponse
    };
    stun(class, request[8..20].try_into().unwrap(), &[])
}

#[test]
fn nat_rebinding_moves_a_session_only_after_the_sfu_accepts_a_check_and_the_new_address_answers() {
    let (sfu, relay, listen) = sfu_and_relay("[limits]\nnat_rebinding = \"stun\"\n");
    let (old, new, attacker) = (waiting(), waiting(), waiting());
    let mut buf = [0u8; 2048];
    // The SFU answers one check and returns where it came from.
    let sfu_answers = |buf: &mut [u8]| -> SocketAddr {
        let (n, from) = sfu.recv_from(buf).unwrap();
        sfu.send_to(&answer(&buf[..n]), from).unwrap();
        from
    };

    // The call: a consent check and media from the client's first address.
    old.send_to(&check(1, true), listen).unwrap();
    let session_up = sfu_answers(&mut buf);
    assert_eq!(old.recv_from(&mut buf).unwrap().0, 20, "the client got its answer");
    old.send_to(&rtp(0, 0xc11e), listen).unwrap();
    assert_eq!(sfu.recv_from(&mut buf).unwrap().1, session_up);

    // The client's address falls silent (a check while it is alive is some
    // other flow's, never a rebinding).
    let silence = Duration::from_millis(1_100);
    std::thread::sleep(silence);
    // A third party replays the USERNAME without the ICE password: the
    // check reaches the SFU on the session's own socket, the SFU refuses
    // it, the refusal goes back to the third party, and nothing moves.
    attacker.send_to(&check(2, false), listen).unwrap();
    assert_eq!(sfu_answers(&mut buf), session_up);
    let (n, _) = attacker.recv_from(&mut buf).expect("the refusal");
    assert_eq!(&buf[..2], &[0x01, 0x11], "a 401 error response ({n} bytes)");
    sfu.send_to(&rtp(1, 0x5f00), session_up).unwrap();
    assert_eq!(
        old.recv_from(&mut buf).unwrap().0,
        172,
        "media still reaches the client"
    );
    assert!(attacker.recv_from(&mut buf).is_err(), "the attacker received media");

    // The client's NAT mapping changes: media first (it opens a session of
    // its own for now), then the client's next consent check.
    new.send_to(&rtp(1, 0xc11e), listen).unwrap();
    let interim_up = sfu.recv_from(&mut buf).unwrap().1;
    assert_ne!(interim_up, session_up);
    // (The third party's check counts as activity: wait for silence again.)
    std::thread::sleep(silence);
    new.send_to(&check(3, true), listen).unwrap();
    assert_eq!(
        sfu_answers(&mut buf),
        session_up,
        "the check went out on the session's socket"
    );
    assert_eq!(new.recv_from(&mut buf).unwrap().0, 20, "the new address got the answer");
    // The proxy then checks the new address is really there: its own
    // binding request with FINGERPRINT (without it libwebrtc takes STUN
    // for media), which the client's ICE agent answers (400: no
    // credentials). Until then nothing has moved.
    let (n, from) = new.recv_from(&mut buf).expect("the proxy's probe");
    assert_eq!((n, from, &buf[..2]), (28, listen, &[0x00, 0x01][..]));
    assert_eq!(&buf[20..24], &[0x80, 0x28, 0x00, 0x04], "FINGERPRINT");
    let mut bad_request = vec![0x01, 0x11, 0, 0];
    bad_request.extend_from_slice(&buf[4..20]);
    sfu.send_to(&rtp(2, 0x5f00), session_up).unwrap();
    assert_eq!(
        old.recv_from(&mut buf).unwrap().0,
        172,
        "media stays until the probe is answered"
    );
    new.send_to(&bad_request, listen).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    // Media now follows the client; the old address gets nothing more.
    sfu.send_to(&rtp(3, 0x5f00), session_up).unwrap();
    let (n, _) = new.recv_from(&mut buf).expect("media at the new address");
    assert_eq!(&buf[..n], &rtp(3, 0x5f00)[..]);
    assert!(old.recv_from(&mut buf).is_err(), "media still went to the old address");
    new.send_to(&rtp(2, 0xc11e), listen).unwrap();
    assert_eq!(
        sfu.recv_from(&mut buf).unwrap().1,
        session_up,
        "and the client's media uses the session"
    );

    // One session, at the new address, with its statistics carried over.
    let views = relay.sessions_blocking();
    assert_eq!(views.len(), 1, "the interim session was closed");
    let v = &views[0];
    assert_eq!(v.snapshot.client, new.local_addr().unwrap());
    assert_eq!(v.upstream_local, session_up);
    let client_rtp = v.snapshot.side(Side::Client).sources[0].rtp.as_ref().unwrap();
    assert_eq!(client_rtp.packets_received, 2, "seq 0 (old address) and 2 (new)");
    let engine = relay.stats_blocking()[0].engine.clone().unwrap();
    assert_eq!((engine.sessions_rebound, engine.rebinds_rejected), (1, 1));
    relay.shutdown(Duration::from_secs(2));
}

#[test]
fn by_default_a_new_address_gets_its_own_session_even_with_the_username() {
    let (sfu, relay, listen) = sfu_and_relay("");
    let (old, new) = (waiting(), waiting());
    let session_up = open_session(&sfu, &old, listen, &check(1, true));
    std::thread::sleep(Duration::from_millis(1_100));
    new.send_to(&check(2, true), listen).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = sfu.recv_from(&mut buf).unwrap();
    assert_ne!(
        from, session_up,
        "policy never: the check left through a session of its own"
    );
    sfu.send_to(&answer(&buf[..n]), from).unwrap();
    assert_eq!(new.recv_from(&mut buf).unwrap().0, 20);
    let views = relay.sessions_blocking();
    assert_eq!(views.len(), 2);
    let first = views.iter().find(|v| v.upstream_local == session_up).unwrap();
    assert_eq!(
        first.snapshot.client,
        old.local_addr().unwrap(),
        "the first session stays put"
    );
    relay.shutdown(Duration::from_secs(2));
}
