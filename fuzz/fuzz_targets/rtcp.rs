//! RTCP compound walker: `rtcp::walk` on arbitrary bytes, every view's
//! sub-iterators, and a round trip of SR/RR report blocks through the
//! builders (parse → write → parse must give the same blocks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::wire::ntp::NtpTime;
use rtp_middlebox::wire::rtcp::{
    self, DlrrItem, ReportBlock, RtcpPacket, StatsSummary, VoipMetrics, Xr, XrBlock, MAX_REPORT_BLOCKS,
};

/// An XR's last RRTR, all its DLRR items, and how many other blocks it has.
fn xr_contents(xr: &Xr) -> (Option<NtpTime>, Vec<DlrrItem>, usize) {
    let (mut rrtr, mut dlrr, mut others) = (None, Vec::new(), 0);
    for block in xr.blocks() {
        match block {
            XrBlock::Rrtr { ntp } => rrtr = Some(ntp),
            XrBlock::Dlrr(items) => dlrr.extend(items),
            XrBlock::StatsSummary(_) | XrBlock::VoipMetrics(_) | XrBlock::Other { .. } => others += 1,
        }
    }
    (rrtr, dlrr, others)
}

/// An XR's Statistics Summary and VoIP Metrics blocks, in order.
fn quality_blocks(xr: &Xr) -> (Vec<StatsSummary>, Vec<VoipMetrics>) {
    let (mut ss, mut vm) = (Vec::new(), Vec::new());
    for block in xr.blocks() {
        match block {
            XrBlock::StatsSummary(b) => ss.push(b),
            XrBlock::VoipMetrics(b) => vm.push(b),
            _ => {}
        }
    }
    (ss, vm)
}

fuzz_target!(|data: &[u8]| {
    let mut consumed = 0usize;
    for packet in rtcp::walk(data) {
        let Ok(packet) = packet else {
            break;
        };
        let header = packet.header();
        assert!(header.len >= 4 && header.len % 4 == 0);
        consumed += header.len;
        assert!(consumed <= data.len());
        match packet {
            RtcpPacket::SenderReport(sr) => {
                let blocks: Vec<ReportBlock> = sr.report_blocks().collect();
                assert_eq!(blocks.len(), usize::from(header.count));
                assert!(blocks.len() <= MAX_REPORT_BLOCKS);
                let _ = sr.extension.len();
                let mut out = Vec::new();
                rtcp::write_sender_report(&mut out, sr.sender, &sr.info, &blocks);
                match rtcp::walk(&out).next() {
                    Some(Ok(RtcpPacket::SenderReport(again))) => {
                        assert_eq!(again.sender, sr.sender);
                        assert_eq!(again.info, sr.info);
                        assert!(again.report_blocks().eq(blocks.iter().copied()));
                        assert_eq!(again.header.len, out.len());
                    }
                    other => panic!("rewritten SR did not parse: {other:?}"),
                }
            }
            RtcpPacket::ReceiverReport(rr) => {
                let blocks: Vec<ReportBlock> = rr.report_blocks().collect();
                assert_eq!(blocks.len(), usize::from(header.count));
                let _ = rr.extension.len();
                let mut out = Vec::new();
                rtcp::write_receiver_report(&mut out, rr.sender, &blocks);
                match rtcp::walk(&out).next() {
                    Some(Ok(RtcpPacket::ReceiverReport(again))) => {
                        assert_eq!(again.sender, rr.sender);
                        assert!(again.report_blocks().eq(blocks.iter().copied()));
                        assert_eq!(again.header.len, out.len());
                    }
                    other => panic!("rewritten RR did not parse: {other:?}"),
                }
            }
            RtcpPacket::Sdes(sdes) => {
                for (ssrc, items) in sdes.chunks() {
                    let _ = ssrc;
                    for item in items {
                        assert!(item.text.len() <= 255);
                        if item.kind == rtcp::SDES_CNAME {
                            // The CNAME builder must produce something that walks back.
                            let mut out = Vec::new();
                            rtcp::write_sdes_cname(&mut out, ssrc, item.text);
                            let again = rtcp::walk(&out).next();
                            let Some(Ok(RtcpPacket::Sdes(again))) = again else {
                                panic!("rewritten SDES did not parse: {again:?}");
                            };
                            let (s2, mut items2) = again.chunks().next().expect("one chunk");
                            assert_eq!(s2, ssrc);
                            assert_eq!(items2.next().map(|i| i.text), Some(item.text));
                        }
                    }
                }
            }
            RtcpPacket::Bye(bye) => {
                assert_eq!(bye.ssrcs().count(), usize::from(header.count));
                let _ = bye.reason.map(|r| r.len());
            }
            RtcpPacket::App(app) => {
                let _ = (app.sender, app.name, app.data.len());
            }
            RtcpPacket::Feedback(fb) => {
                let _ = (fb.kind, fb.sender, fb.media, fb.fci.len());
            }
            RtcpPacket::Xr(xr) => {
                let (rrtr, mut dlrr, _) = xr_contents(&xr);
                // Rebuild an XR from what was read and read it back.
                dlrr.truncate(1000);
                let mut out = Vec::new();
                rtcp::write_xr(&mut out, xr.sender, rrtr, &dlrr);
                let again = rtcp::walk(&out).next();
                let Some(Ok(RtcpPacket::Xr(again))) = again else {
                    panic!("rewritten XR did not parse: {again:?}");
                };
                let (rrtr2, dlrr2, others) = xr_contents(&again);
                assert_eq!(others, 0, "builder wrote an unknown block");
                assert_eq!(rrtr2, rrtr);
                assert_eq!(dlrr2, dlrr);
                // RFC 3611 §4.6/§4.7 blocks: written back, read the same.
                let (ss, vm) = quality_blocks(&xr);
                let mut blocks = Vec::new();
                ss.iter().for_each(|b| b.write(&mut blocks));
                vm.iter().for_each(|b| b.write(&mut blocks));
                let mut out = Vec::new();
                rtcp::write_xr_blocks(&mut out, xr.sender, &blocks);
                let Some(Ok(RtcpPacket::Xr(again))) = rtcp::walk(&out).next() else {
                    panic!("rewritten quality XR did not parse");
                };
                assert_eq!(quality_blocks(&again), (ss, vm));
            }
            RtcpPacket::Other { body, .. } => {
                assert!(body.len() + 4 <= header.len);
            }
        }
    }
});
