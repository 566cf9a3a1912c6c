//! RTX (RFC 4588) on virtual time: with the session's SDP attached, an RTX
//! stream is folded into its primary (W3C `rtxSsrc`,
//! `retransmittedPacketsReceived`, a subset of `packetsReceived`) and gets
//! no jitter of its own; its retransmitted timestamps never touch the
//! primary's jitter or loss.

mod common;
use common::{driver_and_session, ms, rtp, source};
use rtp_middlebox::engine::media::MediaMap;
use rtp_middlebox::engine::{EngineConfig, RtcpMode, SessionId, Side};
use rtp_middlebox::wire::Ssrc;

const VIDEO: Ssrc = Ssrc(0x1111_0001);
const RTX: Ssrc = Ssrc(0x1111_0002);
const OTHER_VIDEO: Ssrc = Ssrc(0x1111_0003);

/// What Chromium offers for VP8 with RTX (trimmed).
fn offer(fid: bool) -> String {
    let mut sdp = String::from(
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 VP8/90000\r\n\
         a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n",
    );
    if fid {
        sdp.push_str(&format!("a=ssrc-group:FID {} {}\r\n", VIDEO.0, RTX.0));
    }
    sdp
}

/// 100 video packets 33 ms apart (90 kHz, one per frame); every tenth is
/// lost on the way and retransmitted on the RTX SSRC 120 ms later (late,
/// with the original timestamp, RFC 4588 §4: OSN first in the payload).
fn call(e: &mut common::Driver, id: SessionId, start: u64) {
    let mut rtx_seq = 500u16;
    for i in 0..100u16 {
        let t = start + u64::from(i) * 33;
        let ts = 2970 * u32::from(i); // 33 ms at 90 kHz
        if i % 10 != 5 {
            e.handle_datagram(ms(t), Side::Client, id, &rtp(96, i, ts, VIDEO, 900));
        }
        if i >= 4 && (i - 4) % 10 == 5 {
            // The retransmission of packet i − 4.
            let mut p = rtp(97, rtx_seq, 2970 * u32::from(i - 4), RTX, 902);
            p[12..14].copy_from_slice(&(i - 4).to_be_bytes());
            e.handle_datagram(ms(t + 1), Side::Client, id, &p);
            rtx_seq += 1;
        }
    }
}

#[test]
fn with_sdp_rtx_is_folded_into_its_primary() {
    // With the FID group, and with `apt` only (the one VP8 stream on the
    // side is the primary; a second VP8 stream from another SSRC appears
    // only after the RTX stream was classified).
    for fid in [true, false] {
        let (mut e, id) = driver_and_session(RtcpMode::Forward, EngineConfig::default());
        let sdp = offer(fid);
        assert!(e.set_session_media(id, MediaMap::from_sdp([sdp.as_str()])));
        call(&mut e, id, 0);
        e.handle_datagram(ms(4_000), Side::Client, id, &rtp(96, 7, 0, OTHER_VIDEO, 900));
        let snap = e.snapshot(ms(5_000), id).unwrap();
        let video = source(&snap, Side::Client, VIDEO);
        let rtx = source(&snap, Side::Client, RTX);
        assert_eq!(rtx.rtx_of, Some(Some(VIDEO.0)), "fid {fid}");
        let folded = video.rtx.expect("the primary carries its RTX stream");
        assert_eq!((folded.ssrc, folded.packets_received), (RTX.0, 10));
        let v = video.rtp.as_ref().unwrap();
        // 100 sent, 10 lost on the primary on arrival, all 10 repaired by
        // RTX (loss after repair 0).
        assert_eq!((v.packets_lost, v.out_of_order), (10, 0), "fid {fid}");
        assert_eq!(v.packets_repaired, 10, "fid {fid}");
        assert_eq!(
            v.jitter,
            Some(0.0),
            "fid {fid}: retransmissions never touch the primary's jitter"
        );
        assert_eq!(rtx.rtp.as_ref().unwrap().jitter, None, "no jitter of its own");
        assert_eq!(source(&snap, Side::Client, OTHER_VIDEO).rtx_of, None);
    }
}

#[test]
fn without_sdp_rtx_is_a_stream_of_its_own_until_its_payloads_show_it() {
    // Ten retransmissions: too few to tell.
    let (mut e, id) = driver_and_session(RtcpMode::Forward, EngineConfig::default());
    call(&mut e, id, 0);
    let snap = e.snapshot(ms(5_000), id).unwrap();
    let rtx = source(&snap, Side::Client, RTX);
    assert_eq!(rtx.rtx_of, None);
    assert!(source(&snap, Side::Client, VIDEO).rtx.is_none());
}

#[test]
fn without_sdp_rtx_is_recognised_by_its_original_sequence_numbers() {
    // A longer call with padding-only probes on the RTX SSRC first (as
    // Chromium sends them), then retransmissions, and an audio stream whose
    // payloads are arbitrary bytes.
    let (mut e, id) = driver_and_session(RtcpMode::Forward, EngineConfig::default());
    let audio = Ssrc(0x1111_0009);
    let mut rtx_seq = 100u16;
    for i in 0..400u16 {
        let t = u64::from(i) * 33;
        if i % 10 != 5 {
            e.handle_datagram(ms(t), Side::Client, id, &rtp(96, i, 2970 * u32::from(i), VIDEO, 900));
        }
        let mut a = rtp(111, i, 960 * u32::from(i), audio, 80);
        a[12..14].copy_from_slice(&(i.wrapping_mul(7919)).to_be_bytes());
        e.handle_datagram(ms(t), Side::Client, id, &a);
        if i < 20 {
            // A padding-only probe: P bit, no payload, 255 bytes of padding.
            let mut probe = rtp(97, rtx_seq, 0, RTX, 0);
            probe[0] |= 0x20;
            probe.extend(std::iter::repeat_n(0u8, 254));
            probe.push(255);
            e.handle_datagram(ms(t), Side::Client, id, &probe);
            rtx_seq += 1;
        }
        if i >= 24 && (i - 4) % 10 == 5 {
            let mut p = rtp(97, rtx_seq, 2970 * u32::from(i - 4), RTX, 902);
            p[12..14].copy_from_slice(&(i - 4).to_be_bytes());
            e.handle_datagram(ms(t + 1), Side::Client, id, &p);
            rtx_seq += 1;
        }
    }
    let snap = e.snapshot(ms(20_000), id).unwrap();
    assert_eq!(source(&snap, Side::Client, RTX).rtx_of, Some(Some(VIDEO.0)));
    assert_eq!(
        source(&snap, Side::Client, audio).rtx_of,
        None,
        "arbitrary payloads are no RTX"
    );
    let v = source(&snap, Side::Client, VIDEO);
    assert_eq!(v.rtx.as_ref().map(|r| r.ssrc), Some(RTX.0), "folded into its primary");
    // Repairs count from the moment the stream is known as RTX: the 16th
    // retransmission completes the evidence and already repairs.
    let lost = v.rtp.as_ref().unwrap().packets_lost;
    let repaired = v.rtp.as_ref().unwrap().packets_repaired;
    assert_eq!(lost, 40);
    assert_eq!(repaired, 38 - 15, "{repaired}");
}

#[test]
fn sdp_after_the_streams_classifies_them() {
    let (mut e, id) = driver_and_session(RtcpMode::Forward, EngineConfig::default());
    call(&mut e, id, 0);
    let sdp = offer(true);
    assert!(e.set_session_media(id, MediaMap::from_sdp([sdp.as_str()])));
    let snap = e.snapshot(ms(5_000), id).unwrap();
    assert_eq!(source(&snap, Side::Client, RTX).rtx_of, Some(Some(VIDEO.0)));
    assert_eq!(source(&snap, Side::Client, RTX).rtp.as_ref().unwrap().jitter, None);
    assert_eq!(source(&snap, Side::Client, VIDEO).rtx.unwrap().packets_received, 10);
    assert!(!e.set_session_media(SessionId::from_u64(u64::MAX), MediaMap::default()));
}

/// The W3C report of a session with RTX and a second stream of the same
/// payload type: the RTX stream is folded into its primary's inbound-rtp,
/// ids are unique (one codec object per payload type and leg), and
/// `jitter` is the browser's in-order figure while the RFC 3550 figure
/// over every packet stays beside it.
#[test]
fn w3c_report_folds_rtx_and_keeps_ids_unique() {
    use rtp_middlebox::report::session_report;
    let (mut e, id) = driver_and_session(RtcpMode::Forward, EngineConfig::default());
    let sdp = offer(true);
    assert!(e.set_session_media(id, MediaMap::from_sdp([sdp.as_str()])));
    call(&mut e, id, 0);
    // A second VP8 stream (simulcast layer) with one late packet 200
    // behind: the RFC figure moves, the browser's does not.
    for i in 0..300u16 {
        e.handle_datagram(
            ms(u64::from(i) * 10),
            Side::Client,
            id,
            &rtp(96, i, 900 * u32::from(i), OTHER_VIDEO, 900),
        );
        if i == 250 {
            e.handle_datagram(ms(2_505), Side::Client, id, &rtp(96, 50, 900 * 50, OTHER_VIDEO, 900));
        }
    }
    let snap = e.snapshot(ms(5_000), id).unwrap();
    let report = session_report(&snap, &common::rates(), |t| t * 1000.0);
    let mut ids: Vec<&str> = report.iter().filter_map(|o| o["id"].as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "ids are unique: {ids:?}");
    let inbound: Vec<_> = report.iter().filter(|o| o["type"] == "inbound-rtp").collect();
    assert!(
        inbound.iter().all(|o| o["ssrc"] != RTX.0),
        "no inbound-rtp of its own for RTX"
    );
    let video = inbound.iter().find(|o| o["ssrc"] == VIDEO.0).unwrap();
    assert_eq!(video["rtxSsrc"], RTX.0);
    assert_eq!(video["retransmittedPacketsReceived"], 10);
    assert_eq!(
        video["packetsReceived"],
        90 + 10,
        "retransmissions are a subset of packetsReceived"
    );
    let other = inbound.iter().find(|o| o["ssrc"] == OTHER_VIDEO.0).unwrap();
    assert_eq!(other["jitter"], 0.0, "a late packet does not move the browser's jitter");
    assert!(other["x-jitterRfc3550"].as_f64().unwrap() > 0.0);
    assert_eq!(
        report.iter().filter(|o| o["type"] == "codec").count(),
        1,
        "VP8 once, for both of its streams"
    );
}

#[test]
fn rtx_repairs_only_what_is_missing_and_only_once() {
    let (mut e, id) = driver_and_session(RtcpMode::Forward, EngineConfig::default());
    let sdp = offer(true);
    assert!(e.set_session_media(id, MediaMap::from_sdp([sdp.as_str()])));
    // 0..40 with 10, 11 and 20 lost.
    for i in 0..40u16 {
        if ![10, 11, 20].contains(&i) {
            e.handle_datagram(
                ms(u64::from(i) * 33),
                Side::Client,
                id,
                &rtp(96, i, 2970 * u32::from(i), VIDEO, 900),
            );
        }
    }
    let mut rtx_seq = 900u16;
    let mut retransmit = |e: &mut common::Driver, osn: u16| {
        let mut p = rtp(97, rtx_seq, 2970 * u32::from(osn), RTX, 902);
        p[12..14].copy_from_slice(&osn.to_be_bytes());
        e.handle_datagram(ms(2_000), Side::Client, id, &p);
        rtx_seq += 1;
    };
    retransmit(&mut e, 10); // repairs
    retransmit(&mut e, 10); // a second retransmission of the same packet
    retransmit(&mut e, 12); // a packet that arrived: nothing to repair
    retransmit(&mut e, 20); // repairs
    let snap = e.snapshot(ms(3_000), id).unwrap();
    let v = source(&snap, Side::Client, VIDEO).rtp.clone().unwrap();
    assert_eq!((v.packets_lost, v.packets_repaired), (3, 2));
    let report = rtp_middlebox::report::session_report(&snap, &common::rates(), |t| t);
    let inbound = report
        .iter()
        .find(|s| s["type"] == "inbound-rtp" && s["ssrc"] == VIDEO.0)
        .unwrap()
        .clone();
    assert_eq!(inbound["packetsLost"], 3, "{inbound:#}");
    assert_eq!(inbound["x-packetsRepaired"], 2, "{inbound:#}");
    assert_eq!(inbound["x-packetsLostAfterRepair"], 1, "{inbound:#}");
}

#[test]
fn fec_is_counted_in_its_primary() {
    // RED with ULPFEC inside (RFC 2198, RFC 5109) on the video SSRC, and a
    // FlexFEC stream of its own (RFC 8627) in a FEC-FR group.
    const FLEX: Ssrc = Ssrc(0x1111_00fe);
    let sdp = format!(
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100\r\na=rtpmap:96 VP8/90000\r\n\
         a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 red/90000\r\n\
         a=rtpmap:99 ulpfec/90000\r\na=rtpmap:100 flexfec-03/90000\r\n\
         a=ssrc-group:FEC-FR {} {}\r\n",
        VIDEO.0, FLEX.0
    );
    let (mut e, id) = driver_and_session(RtcpMode::Forward, EngineConfig::default());
    assert!(e.set_session_media(id, MediaMap::from_sdp([sdp.as_str()])));
    for i in 0..60u16 {
        let t = u64::from(i) * 33;
        // Every packet in RED; every sixth carries an ULPFEC block (a RED
        // header with F set naming 99, then the last header naming 96).
        let mut p = rtp(98, i, 2970 * u32::from(i), VIDEO, 900);
        if i % 6 == 0 {
            p[12..17].copy_from_slice(&[0x80 | 99, 0, 0, 10, 96]);
        } else {
            p[12] = 96;
        }
        e.handle_datagram(ms(t), Side::Client, id, &p);
        if i % 10 == 0 {
            e.handle_datagram(
                ms(t),
                Side::Client,
                id,
                &rtp(100, i / 10, 2970 * u32::from(i), FLEX, 300),
            );
        }
    }
    let snap = e.snapshot(ms(3_000), id).unwrap();
    let v = source(&snap, Side::Client, VIDEO);
    assert_eq!(v.ulpfec_packets, 10);
    assert_eq!(v.fec.as_ref().map(|f| (f.ssrc, f.packets_received)), Some((FLEX.0, 6)));
    let flex = source(&snap, Side::Client, FLEX);
    assert_eq!(flex.fec_of, Some(Some(VIDEO.0)));
    assert_eq!(flex.rtp.as_ref().unwrap().jitter, None, "no jitter of its own");
    let report = rtp_middlebox::report::session_report(&snap, &common::rates(), |t| t);
    let inbound: Vec<_> = report.iter().filter(|s| s["type"] == "inbound-rtp").collect();
    assert_eq!(inbound.len(), 1, "the FlexFEC stream is folded: {inbound:#?}");
    assert_eq!(inbound[0]["fecPacketsReceived"], 16);
    assert_eq!(inbound[0]["fecSsrc"], FLEX.0);
}
