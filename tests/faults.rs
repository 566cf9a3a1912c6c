//! Faults and hijacks over real sockets: the upstream going away and
//! coming back mid-stream, and a third party sending to a session's ports
//! with the session's SSRC.

// Real sockets: waiting on real time is the point.
#![allow(clippy::disallowed_methods)]

use rtp_middlebox::config::Config;
use rtp_middlebox::engine::Side;
use rtp_middlebox::runtime::{self, RelayRuntime, RunOptions};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.resize(172, 0);
    p
}

fn relay(upstream: SocketAddr) -> RelayRuntime {
    let text = format!(
        "[[relay]]\nlisten = \"127.0.0.1:0\"\nupstream = \"{upstream}\"\nrtcp = \"forward\"\nupstream_bind = \"127.0.0.1\"\n"
    );
    runtime::start(
        &Config::from_toml(&text).unwrap(),
        &RunOptions {
            workers: 1,
            log_sessions: false,
            ..Default::default()
        },
    )
    .unwrap()
}

fn io_sum(relay: &RelayRuntime, f: impl Fn(&runtime::IoCounters) -> u64) -> u64 {
    relay.stats_blocking().iter().map(|w| f(&w.io)).sum()
}

#[test]
fn upstream_restart_mid_stream_errors_are_counted_and_forwarding_resumes() {
    let sfu = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sfu_addr = sfu.local_addr().unwrap();
    let relay = relay(sfu_addr);
    let listen = relay.bound()[0].listen;
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
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
    let sfu = UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay = relay(sfu.local_addr().unwrap());
    let listen = relay.bound()[0].listen;
    let victim = UdpSocket::bind("127.0.0.1:0").unwrap();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    sfu.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    attacker.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    victim.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 2048];
    victim.send_to(&rtp(0, 0x71c7), listen).unwrap();
    let (_, victim_up) = sfu.recv_from(&mut buf).unwrap();

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
