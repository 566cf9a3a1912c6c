//! STUN RTT across retransmissions (Karn's rule): the answer to a
//! retransmitted binding request may answer either copy, so it gives no
//! RTT sample; the next clean transaction does.

mod common;
use common::{binding_request, driver_and_session, ms, stun};
use rtp_middlebox::engine::{EngineConfig, RtcpMode, Side};
use rtp_middlebox::wire::stun::StunClass;

#[test]
fn a_retransmitted_request_gives_no_rtt_sample() {
    let (mut e, id) = driver_and_session(RtcpMode::Forward, EngineConfig::default());
    let answer = |txid: u8| stun(StunClass::SuccessResponse, [txid; 12], &[]);
    // The client checks at 0, retransmits at 500 ms (the first copy was
    // lost upstream of the proxy or the answer was); the answer at 540 ms
    // would read 540 ms where the path takes 40 ms.
    e.handle_datagram(ms(0), Side::Client, id, &binding_request(1));
    e.handle_datagram(ms(500), Side::Client, id, &binding_request(1));
    e.handle_datagram(ms(540), Side::Upstream, id, &answer(1));
    let snap = e.snapshot(ms(600), id).unwrap();
    let up = snap.side(Side::Upstream);
    assert_eq!(
        up.rtt_stun.measurements, 0,
        "no sample from a retransmitted transaction"
    );
    assert_eq!(up.rtt_stun.last, None);
    // Answered all the same: consent is fresh.
    assert_eq!(snap.side(Side::Client).stun_unanswered_since, None);
    // A clean transaction measures the path.
    e.handle_datagram(ms(1_000), Side::Client, id, &binding_request(2));
    e.handle_datagram(ms(1_040), Side::Upstream, id, &answer(2));
    let snap = e.snapshot(ms(1_100), id).unwrap();
    let up = snap.side(Side::Upstream);
    assert_eq!(up.rtt_stun.measurements, 1);
    assert!((up.rtt_stun.last.unwrap() - 0.040).abs() < 1e-9);
}
