//! Annotated RTCP byte fixtures, one per view the walker yields.
//!
//! Every fixture is written field by field, RFC-diagram style, and checked
//! three ways:
//! 1. `walk()` yields the expected view and every field reads back;
//! 2. where the crate has a builder (RR, SR, SDES CNAME, XR RRTR/DLRR) the
//!    packet is rebuilt from the parsed fields and must be byte-identical;
//! 3. the independent `rtcp` crate (rtc-rtcp 0.21) parses the fixture or the
//!    rebuilt bytes and agrees on the main fields.
//!
//! Note on the cross-check: rtc-rtcp reads the 24-bit cumulative loss as an
//! *unsigned* `u32` (its own source carries a TODO saying it should be
//! `i32`), so a wire value of 0xFF_FFFE, which is −2 per RFC 3550 §6.4.1,
//! comes back from it as 16 777 214. We compare its raw 24 bits against
//! ours with `clamp_lost_24`, and sign-extend its value with
//! `sign_extend_24` to compare against our signed field.
//!
//! The negative tests at the end truncate, corrupt and over-count packets:
//! the walker must yield `Err` (once, then stop) or stop, and never panic.

use rtp_middlebox::wire::ntp::{CompactNtp, Delay16, NtpTime};
use rtp_middlebox::wire::rtcp::{
    clamp_lost_24, sign_extend_24, walk, write_receiver_report, write_sdes_cname, write_sender_report, write_xr,
    DlrrItem, Feedback, FeedbackKind, ReceiverReport, ReportBlock, RtcpError, RtcpPacket, SenderInfo, XrBlock,
    MAX_REPORT_BLOCKS, PT_APP, PT_BYE, PT_PSFB, PT_RR, PT_RTPFB, PT_SDES, PT_SR, PT_XR, SDES_CNAME,
};
use rtp_middlebox::wire::{classify, PacketKind, Ssrc};

// ------------------------------------------------------------------ helpers

/// Walks a datagram that must be entirely well-formed.
fn walk_ok(datagram: &[u8]) -> Vec<RtcpPacket<'_>> {
    walk(datagram)
        .enumerate()
        .map(|(i, p)| p.unwrap_or_else(|e| panic!("packet {i} failed to parse: {e:?}")))
        .collect()
}

/// Walks a datagram holding exactly one packet.
fn walk_one(datagram: &[u8]) -> RtcpPacket<'_> {
    let mut packets = walk_ok(datagram);
    assert_eq!(packets.len(), 1, "expected exactly one packet");
    packets.remove(0)
}

/// Parses with the independent `rtcp` crate.
/// [`walk_one`], its header (count or FMT, packet type, length in bytes)
/// checked.
fn walk_one_with_header(datagram: &[u8], header: (u8, u8, usize)) -> RtcpPacket<'_> {
    let p = walk_one(datagram);
    let h = p.header();
    assert_eq!((h.count, h.packet_type, h.len), header);
    p
}

/// The datagram's one feedback packet, its header, kind and (sender,
/// media source) checked.
fn feedback(datagram: &[u8], header: (u8, u8, usize), kind: FeedbackKind, ssrcs: (Ssrc, Ssrc)) -> Feedback<'_> {
    let p = walk_one_with_header(datagram, header);
    let RtcpPacket::Feedback(fb) = p else {
        panic!("not feedback: {p:?}")
    };
    assert_eq!(fb.kind, kind);
    assert_eq!((fb.sender, fb.media), ssrcs);
    fb
}

/// The datagram's one RR, its header checked.
fn receiver_report(datagram: &[u8], header: (u8, u8, usize)) -> ReceiverReport<'_> {
    let p = walk_one_with_header(datagram, header);
    let RtcpPacket::ReceiverReport(rr) = p else {
        panic!("not an RR: {p:?}")
    };
    rr
}

/// Asserts that the RR written from `sender` and `blocks` is `fixture`
/// byte for byte; returns the independent parser's reading of it.
fn rebuilt_rr(fixture: &[u8], sender: Ssrc, blocks: &[ReportBlock]) -> rtcp::receiver_report::ReceiverReport {
    let mut out = Vec::new();
    write_receiver_report(&mut out, sender, blocks);
    assert_eq!(out, fixture);
    let theirs = ext_parse(&out);
    downcast::<rtcp::receiver_report::ReceiverReport>(theirs[0].as_ref()).clone()
}

fn ext_parse(datagram: &[u8]) -> Vec<Box<dyn rtcp::packet::Packet>> {
    let mut buf: &[u8] = datagram;
    rtcp::packet::unmarshal(&mut buf).unwrap_or_else(|e| panic!("rtc-rtcp refused the packet: {e:?}"))
}

fn downcast<T: 'static>(p: &dyn rtcp::packet::Packet) -> &T {
    p.as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("rtc-rtcp parsed a different packet type: {p:?}"))
}

/// Our report block against rtc-rtcp's reception report.
fn assert_same_block(ours: &ReportBlock, theirs: &rtcp::reception_report::ReceptionReport) {
    assert_eq!(theirs.ssrc, ours.ssrc.0, "ssrc");
    assert_eq!(theirs.fraction_lost, ours.fraction_lost, "fraction lost");
    // rtc-rtcp reads the signed 24-bit field as unsigned: compare wire bits,
    // and compare the value after sign extension.
    assert_eq!(
        theirs.total_lost,
        clamp_lost_24(i64::from(ours.cumulative_lost)),
        "cumulative lost (wire bits)"
    );
    assert_eq!(
        sign_extend_24(theirs.total_lost),
        ours.cumulative_lost,
        "cumulative lost (signed)"
    );
    assert_eq!(theirs.last_sequence_number, ours.ext_highest_seq, "ext highest seq");
    assert_eq!(theirs.jitter, ours.jitter, "jitter");
    assert_eq!(theirs.last_sender_report, ours.lsr.0, "LSR");
    assert_eq!(theirs.delay, ours.dlsr.0, "DLSR");
}

/// An SDES chunk as (SSRC, [(item type, text)]).
type Chunk = (Ssrc, Vec<(u8, Vec<u8>)>);

fn sdes_chunks(p: &RtcpPacket<'_>) -> Vec<Chunk> {
    let RtcpPacket::Sdes(sdes) = p else {
        panic!("not SDES: {p:?}")
    };
    sdes.chunks()
        .map(|(ssrc, items)| (ssrc, items.map(|i| (i.kind, i.text.to_vec())).collect()))
        .collect()
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

// ------------------------------------------------------------- SR, 2 blocks

/// SR with sender info and two report blocks; the second reports a
/// negative cumulative loss (0xFF_FFFE = −2: two duplicates, no loss).
#[rustfmt::skip]
const SR_TWO_BLOCKS: &[u8] = &[
    // ---- common header (RFC 3550 §6.4.1) ----
    0x82,                   // V=2 P=0 RC=2
    0xc8,                   // PT=200 SR
    0x00, 0x12,             // length 18 words → (18+1)*4 = 76 bytes
    0x11, 0x22, 0x33, 0x44, // SSRC of sender
    // ---- sender info ----
    0xe8, 0x4b, 0x1f, 0x80, // NTP timestamp, most significant word (seconds)
    0x80, 0x00, 0x00, 0x00, // NTP timestamp, least significant word (0.5 s)
    0x00, 0x01, 0xe2, 0x40, // RTP timestamp 123 456
    0x00, 0x00, 0x03, 0xe8, // sender's packet count 1 000
    0x00, 0x02, 0x71, 0x00, // sender's octet count 160 000
    // ---- report block 1 ----
    0xaa, 0xbb, 0xcc, 0x01, // SSRC_1
    0x19,                   // fraction lost 25/256
    0x00, 0x00, 0x07,       // cumulative number of packets lost: 7
    0x00, 0x01, 0x00, 0x2a, // extended highest seq: cycles 1, seq 42
    0x00, 0x00, 0x00, 0x50, // interarrival jitter 80
    0x1f, 0x80, 0x40, 0x00, // last SR (LSR)
    0x00, 0x00, 0x80, 0x00, // delay since last SR: 0x8000/65536 = 0.5 s
    // ---- report block 2 ----
    0xaa, 0xbb, 0xcc, 0x02, // SSRC_2
    0x00,                   // fraction lost 0
    0xff, 0xff, 0xfe,       // cumulative lost 0xFFFFFE = −2 (signed 24-bit)
    0x00, 0x00, 0xff, 0xff, // extended highest seq: cycles 0, seq 65535
    0x00, 0x00, 0x00, 0x00, // jitter 0
    0x00, 0x00, 0x00, 0x00, // LSR 0: no SR received from SSRC_2 yet
    0x00, 0x00, 0x00, 0x00, // DLSR 0
];

fn sr_blocks() -> [ReportBlock; 2] {
    [
        ReportBlock {
            ssrc: Ssrc(0xaabb_cc01),
            fraction_lost: 25,
            cumulative_lost: 7,
            ext_highest_seq: 0x0001_002a,
            jitter: 80,
            lsr: CompactNtp(0x1f80_4000),
            dlsr: Delay16(0x8000),
        },
        ReportBlock {
            ssrc: Ssrc(0xaabb_cc02),
            fraction_lost: 0,
            cumulative_lost: -2,
            ext_highest_seq: 0xffff,
            jitter: 0,
            lsr: CompactNtp(0),
            dlsr: Delay16(0),
        },
    ]
}

#[test]
fn sr_with_two_blocks() {
    assert_eq!(SR_TWO_BLOCKS.len(), 76);
    assert_eq!(classify(SR_TWO_BLOCKS), PacketKind::Rtcp);
    let p = walk_one_with_header(SR_TWO_BLOCKS, (2, PT_SR, 76));
    let RtcpPacket::SenderReport(sr) = p else {
        panic!("not an SR: {p:?}")
    };
    assert_eq!(sr.sender, Ssrc(0x1122_3344));
    assert_eq!(sr.info.ntp, NtpTime(0xe84b_1f80_8000_0000));
    assert_eq!(sr.info.ntp.compact(), CompactNtp(0x1f80_8000));
    assert_eq!(sr.info.rtp_ts, 123_456);
    assert_eq!(sr.info.packet_count, 1_000);
    assert_eq!(sr.info.octet_count, 160_000);
    assert!(sr.extension.is_empty());
    let blocks: Vec<ReportBlock> = sr.report_blocks().collect();
    assert_eq!(sr.report_blocks().len(), 2);
    assert_eq!(blocks, sr_blocks());
    assert_eq!(blocks[0].dlsr.to_duration(), std::time::Duration::from_millis(500));
    assert_eq!(blocks[1].cumulative_lost, -2);

    // Rebuild from the parsed fields.
    let mut out = Vec::new();
    write_sender_report(&mut out, sr.sender, &sr.info, &blocks);
    assert_eq!(out, SR_TWO_BLOCKS);

    // Independent parser.
    let theirs = ext_parse(&out);
    assert_eq!(theirs.len(), 1);
    let t = downcast::<rtcp::sender_report::SenderReport>(theirs[0].as_ref());
    assert_eq!(t.ssrc, 0x1122_3344);
    assert_eq!(t.ntp_time, sr.info.ntp.0);
    assert_eq!(t.rtp_time, 123_456);
    assert_eq!(t.packet_count, 1_000);
    assert_eq!(t.octet_count, 160_000);
    assert_eq!(t.reports.len(), 2);
    for (ours, theirs) in blocks.iter().zip(&t.reports) {
        assert_same_block(ours, theirs);
    }
    // The unsigned reading of −2, spelled out.
    assert_eq!(t.reports[1].total_lost, 0xff_fffe);
    assert_eq!(t.reports[1].total_lost, 16_777_214);
}

// --------------------------------------------------------------- RR, 1 block

#[rustfmt::skip]
const RR_ONE_BLOCK: &[u8] = &[
    0x81,                   // V=2 P=0 RC=1
    0xc9,                   // PT=201 RR
    0x00, 0x07,             // length 7 words → 32 bytes
    0x90, 0x2f, 0x9e, 0x2e, // SSRC of packet sender (the receiver)
    // ---- report block ----
    0x12, 0x34, 0x56, 0x78, // SSRC_1 (source reported on)
    0x80,                   // fraction lost 128/256 = 50 %
    0x00, 0x01, 0x00,       // cumulative lost 256
    0x00, 0x02, 0xff, 0xfe, // extended highest seq: cycles 2, seq 65534
    0x00, 0x00, 0x01, 0x2c, // jitter 300
    0x7e, 0x80, 0x80, 0x00, // LSR 0x7e808000
    0x00, 0x01, 0x80, 0x00, // DLSR 0x18000 = 1.5 s
];

#[test]
fn rr_with_one_block() {
    let rr = receiver_report(RR_ONE_BLOCK, (1, PT_RR, 32));
    assert_eq!(rr.sender, Ssrc(0x902f_9e2e));
    assert!(rr.extension.is_empty());
    let blocks: Vec<ReportBlock> = rr.report_blocks().collect();
    assert_eq!(
        blocks,
        [ReportBlock {
            ssrc: Ssrc(0x1234_5678),
            fraction_lost: 128,
            cumulative_lost: 256,
            ext_highest_seq: 0x0002_fffe,
            jitter: 300,
            lsr: CompactNtp(0x7e80_8000),
            dlsr: Delay16(0x0001_8000),
        }]
    );
    assert_eq!(blocks[0].dlsr.to_duration(), std::time::Duration::from_millis(1500));

    let t = rebuilt_rr(RR_ONE_BLOCK, rr.sender, &blocks);
    assert_eq!(t.ssrc, 0x902f_9e2e);
    assert_eq!(t.reports.len(), 1);
    assert_same_block(&blocks[0], &t.reports[0]);
}

// -------------------------------------------------------------- RR, 0 blocks

#[rustfmt::skip]
const RR_NO_BLOCKS: &[u8] = &[
    0x80,                   // V=2 P=0 RC=0
    0xc9,                   // PT=201 RR
    0x00, 0x01,             // length 1 word → 8 bytes
    0x00, 0x00, 0x00, 0x2a, // SSRC of packet sender
];

#[test]
fn rr_with_no_blocks() {
    let rr = receiver_report(RR_NO_BLOCKS, (0, PT_RR, 8));
    assert_eq!(rr.sender, Ssrc(42));
    assert_eq!(rr.report_blocks().len(), 0);
    assert_eq!(rr.report_blocks().next(), None);
    assert!(rr.extension.is_empty());

    let t = rebuilt_rr(RR_NO_BLOCKS, rr.sender, &[]);
    assert_eq!(t.ssrc, 42);
    assert!(t.reports.is_empty());
}

// ------------------------------------------------- RR, 31 blocks (generated)

/// Block `i` of the generated RR: every field distinct and derived from `i`,
/// half of them with a negative cumulative loss.
fn generated_block(i: u32) -> ReportBlock {
    let lost = i as i32 * 1000 - 15_000;
    ReportBlock {
        ssrc: Ssrc(0x5000_0000 + i),
        fraction_lost: (i * 8) as u8,
        cumulative_lost: lost,
        ext_highest_seq: (i << 16) | (65_535 - i),
        jitter: i * 11,
        lsr: CompactNtp(0xabcd_0000 | i),
        dlsr: Delay16(i * 0x100),
    }
}

/// The 31-block RR written by hand (independently of the builder), one
/// block per loop iteration following the §6.4.1 layout.
fn rr_31_fixture() -> Vec<u8> {
    let mut b = vec![
        0x9f, // V=2 P=0 RC=31
        0xc9, // PT=201 RR
        0x00, 0xbb, // length 187 words: (4 + 4 + 31*24)/4 − 1
        0xde, 0xad, 0xbe, 0xef, // SSRC of packet sender
    ];
    for i in 0..31u32 {
        b.extend_from_slice(&(0x5000_0000 + i).to_be_bytes()); // SSRC_i
        b.push((i * 8) as u8); // fraction lost
        let lost = i as i32 * 1000 - 15_000;
        b.extend_from_slice(&lost.to_be_bytes()[1..]); // cumulative lost, low 24 bits of two's complement
        b.extend_from_slice(&((i << 16) | (65_535 - i)).to_be_bytes()); // ext highest seq
        b.extend_from_slice(&(i * 11).to_be_bytes()); // jitter
        b.extend_from_slice(&(0xabcd_0000 | i).to_be_bytes()); // LSR
        b.extend_from_slice(&(i * 0x100).to_be_bytes()); // DLSR
    }
    b
}

#[test]
fn rr_with_31_blocks() {
    let fixture = rr_31_fixture();
    assert_eq!(fixture.len(), 4 + 4 + 31 * 24);
    let rr = receiver_report(&fixture, (31, PT_RR, 752));
    assert_eq!(rr.sender, Ssrc(0xdead_beef));
    let blocks: Vec<ReportBlock> = rr.report_blocks().collect();
    let expected: Vec<ReportBlock> = (0..31).map(generated_block).collect();
    assert_eq!(blocks, expected);
    assert_eq!(blocks[0].cumulative_lost, -15_000);
    assert_eq!(blocks[30].cumulative_lost, 15_000);

    let t = rebuilt_rr(&fixture, rr.sender, &blocks);
    assert_eq!(t.ssrc, 0xdead_beef);
    assert_eq!(t.reports.len(), 31);
    for (ours, theirs) in blocks.iter().zip(&t.reports) {
        assert_same_block(ours, theirs);
    }

    // A 32nd block does not fit the 5-bit count: the builder writes 31.
    let mut more = expected.clone();
    more.push(generated_block(31));
    let mut out32 = Vec::new();
    write_receiver_report(&mut out32, Ssrc(0xdead_beef), &more);
    assert_eq!(out32, fixture);
    assert_eq!(MAX_REPORT_BLOCKS, 31);
}

// ------------------------------------------------------- SDES, two chunks

#[rustfmt::skip]
const SDES_TWO_CHUNKS: &[u8] = &[
    0x82,                   // V=2 P=0 SC=2
    0xca,                   // PT=202 SDES
    0x00, 0x0c,             // length 12 words → 52 bytes
    // ---- chunk 1 (28 bytes) ----
    0x11, 0x22, 0x33, 0x44, // SSRC/CSRC_1
    0x01, 0x0d,             // CNAME=1, length 13
    b'a', b'l', b'i', b'c', b'e', b'@', b'e', b'x', b'a', b'm', b'p', b'l', b'e',
    0x02, 0x05,             // NAME=2, length 5
    b'A', b'l', b'i', b'c', b'e',
    0x00,                   // end of item list (offset 26 in the chunk)
    0x00,                   // pad to a 32-bit boundary (28)
    // ---- chunk 2 (20 bytes) ----
    0x55, 0x66, 0x77, 0x88, // SSRC/CSRC_2
    0x01, 0x05,             // CNAME=1, length 5
    b'b', b'o', b'b', b'@', b'x',
    0x02, 0x03,             // NAME=2, length 3
    b'B', b'o', b'b',
    0x00,                   // end of item list (offset 16 in the chunk)
    0x00, 0x00, 0x00,       // pad to a 32-bit boundary (20)
];

#[test]
fn sdes_with_two_chunks() {
    assert_eq!(SDES_TWO_CHUNKS.len(), 52);
    let p = walk_one_with_header(SDES_TWO_CHUNKS, (2, PT_SDES, 52));
    assert_eq!(
        sdes_chunks(&p),
        vec![
            (
                Ssrc(0x1122_3344),
                vec![(SDES_CNAME, b"alice@example".to_vec()), (2, b"Alice".to_vec())]
            ),
            (
                Ssrc(0x5566_7788),
                vec![(SDES_CNAME, b"bob@x".to_vec()), (2, b"Bob".to_vec())]
            ),
        ]
    );

    let theirs = ext_parse(SDES_TWO_CHUNKS);
    let t = downcast::<rtcp::source_description::SourceDescription>(theirs[0].as_ref());
    assert_eq!(t.chunks.len(), 2);
    assert_eq!(t.chunks[0].source, 0x1122_3344);
    assert_eq!(t.chunks[0].items.len(), 2);
    assert_eq!(
        t.chunks[0].items[0].sdes_type,
        rtcp::source_description::SdesType::SdesCname
    );
    assert_eq!(&t.chunks[0].items[0].text[..], b"alice@example");
    assert_eq!(
        t.chunks[0].items[1].sdes_type,
        rtcp::source_description::SdesType::SdesName
    );
    assert_eq!(&t.chunks[0].items[1].text[..], b"Alice");
    assert_eq!(t.chunks[1].source, 0x5566_7788);
    assert_eq!(&t.chunks[1].items[0].text[..], b"bob@x");
    assert_eq!(&t.chunks[1].items[1].text[..], b"Bob");
}

/// The builder's null-termination and padding for every CNAME length mod 4,
/// including a CNAME whose items end exactly on a word boundary (a whole
/// word of nulls follows, RFC 3550 §6.5: "at least one null octet").
#[test]
fn sdes_cname_builder_padding() {
    for len in 0..=9usize {
        let cname: Vec<u8> = (0..len).map(|i| b'a' + i as u8).collect();
        let mut out = Vec::new();
        write_sdes_cname(&mut out, Ssrc(7), &cname);
        // header 4 + SSRC 4 + type 1 + len 1 + text + at least one null, padded.
        let expected_len = (4 + 4 + 2 + len + 1).next_multiple_of(4);
        assert_eq!(out.len(), expected_len, "cname length {len}");
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1], PT_SDES);
        assert_eq!(usize::from(u16::from_be_bytes([out[2], out[3]])), expected_len / 4 - 1);
        assert_eq!(out[8], SDES_CNAME);
        assert_eq!(usize::from(out[9]), len);
        assert_eq!(&out[10..10 + len], &cname[..]);
        assert!(
            out[10 + len..].iter().all(|&b| b == 0),
            "null terminator and zero padding"
        );
        assert!(!out[10 + len..].is_empty());

        let p = walk_one(&out);
        assert_eq!(sdes_chunks(&p), vec![(Ssrc(7), vec![(SDES_CNAME, cname.clone())])]);
        let theirs = ext_parse(&out);
        let t = downcast::<rtcp::source_description::SourceDescription>(theirs[0].as_ref());
        assert_eq!(t.chunks[0].source, 7);
        assert_eq!(&t.chunks[0].items[0].text[..], &cname[..]);
    }
    // A CNAME longer than the 8-bit length allows is cut to 255.
    let mut out = Vec::new();
    write_sdes_cname(&mut out, Ssrc(7), &[b'x'; 300]);
    let p = walk_one(&out);
    assert_eq!(sdes_chunks(&p)[0].1[0].1.len(), 255);
}

// ------------------------------------------------------- BYE with reason

#[rustfmt::skip]
const BYE_WITH_REASON: &[u8] = &[
    0x82,                   // V=2 P=0 SC=2
    0xcb,                   // PT=203 BYE
    0x00, 0x05,             // length 5 words → 24 bytes
    0x11, 0x22, 0x33, 0x44, // SSRC/CSRC 1
    0x55, 0x66, 0x77, 0x88, // SSRC/CSRC 2
    0x08,                   // reason length 8
    b's', b'h', b'u', b't', b'd', b'o', b'w', b'n',
    0x00, 0x00, 0x00,       // pad to a 32-bit boundary
];

#[test]
fn bye_with_reason() {
    let p = walk_one_with_header(BYE_WITH_REASON, (2, PT_BYE, 24));
    let RtcpPacket::Bye(bye) = p else {
        panic!("not BYE: {p:?}")
    };
    assert_eq!(
        bye.ssrcs().collect::<Vec<_>>(),
        vec![Ssrc(0x1122_3344), Ssrc(0x5566_7788)]
    );
    assert_eq!(bye.reason, Some(&b"shutdown"[..]));

    let theirs = ext_parse(BYE_WITH_REASON);
    let t = downcast::<rtcp::goodbye::Goodbye>(theirs[0].as_ref());
    assert_eq!(t.sources, vec![0x1122_3344, 0x5566_7788]);
    assert_eq!(&t.reason[..], b"shutdown");
}

// -------------------------------------------------------------------- APP

#[rustfmt::skip]
const APP_PACKET: &[u8] = &[
    0x85,                   // V=2 P=0 subtype=5
    0xcc,                   // PT=204 APP
    0x00, 0x04,             // length 4 words → 20 bytes
    0x0b, 0xad, 0xf0, 0x0d, // SSRC/CSRC
    b'T', b'E', b'S', b'T', // name (ASCII)
    0x01, 0x02, 0x03, 0x04, // application-dependent data
    0x05, 0x06, 0x07, 0x08,
];

#[test]
fn app_packet() {
    let p = walk_one_with_header(APP_PACKET, (5, PT_APP, 20));
    let RtcpPacket::App(app) = p else {
        panic!("not APP: {p:?}")
    };
    assert_eq!(app.sender, Ssrc(0x0bad_f00d));
    assert_eq!(&app.name, b"TEST");
    assert_eq!(app.data, &[1, 2, 3, 4, 5, 6, 7, 8]);
    // rtc-rtcp has no APP type; it keeps unknown packets raw.
    let theirs = ext_parse(APP_PACKET);
    let raw = downcast::<rtcp::raw_packet::RawPacket>(theirs[0].as_ref());
    assert_eq!(&raw.0[..], APP_PACKET);
}

// --------------------------------------------------------------- feedback

#[rustfmt::skip]
const RTPFB_NACK: &[u8] = &[
    0x81,                   // V=2 P=0 FMT=1 (Generic NACK, RFC 4585 §6.2.1)
    0xcd,                   // PT=205 RTPFB
    0x00, 0x03,             // length 3 words → 16 bytes
    0x00, 0x00, 0x00, 0x01, // SSRC of packet sender
    0x00, 0x00, 0x00, 0x02, // SSRC of media source
    0x00, 0x64,             // PID: 100 lost
    0x00, 0x05,             // BLP 0b101: 101 and 103 lost too
];

#[test]
fn rtpfb_nack() {
    let fb = feedback(RTPFB_NACK, (1, PT_RTPFB, 16), FeedbackKind::Nack, (Ssrc(1), Ssrc(2)));
    assert_eq!(fb.fci, &[0x00, 0x64, 0x00, 0x05]);
    let pid = u16::from_be_bytes([fb.fci[0], fb.fci[1]]);
    let blp = u16::from_be_bytes([fb.fci[2], fb.fci[3]]);
    let lost: Vec<u16> = std::iter::once(pid)
        .chain((0..16).filter(|k| blp & (1 << k) != 0).map(|k| pid + 1 + k))
        .collect();
    assert_eq!(lost, vec![100, 101, 103]);

    let theirs = ext_parse(RTPFB_NACK);
    let t = downcast::<rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack>(theirs[0].as_ref());
    assert_eq!((t.sender_ssrc, t.media_ssrc), (1, 2));
    assert_eq!(t.nacks.len(), 1);
    assert_eq!(t.nacks[0].packet_list(), vec![100, 101, 103]);
}

#[rustfmt::skip]
const RTPFB_TWCC: &[u8] = &[
    0x8f,                   // V=2 P=0 FMT=15 (transport-cc)
    0xcd,                   // PT=205 RTPFB
    0x00, 0x05,             // length 5 words → 24 bytes
    0x00, 0x00, 0x00, 0x01, // SSRC of packet sender
    0x00, 0x00, 0x00, 0x00, // SSRC of media source (unused, 0)
    // ---- FCI (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) ----
    0x00, 0x05,             // base sequence number 5
    0x00, 0x02,             // packet status count 2
    0x00, 0x00, 0x01,       // reference time 1 (× 64 ms)
    0x00,                   // feedback packet count 0
    0x20, 0x02,             // run-length chunk: T=0, S=01 (small delta), run 2
    0x04,                   // recv delta 1: 4 × 250 µs
    0x08,                   // recv delta 2: 8 × 250 µs
];

#[test]
fn rtpfb_transport_cc() {
    let fb = feedback(
        RTPFB_TWCC,
        (15, PT_RTPFB, 24),
        FeedbackKind::TransportCc,
        (Ssrc(1), Ssrc(0)),
    );
    assert_eq!(fb.fci.len(), 12);
    assert_eq!(&fb.fci[..4], &[0x00, 0x05, 0x00, 0x02]);

    let theirs = ext_parse(RTPFB_TWCC);
    let t = downcast::<rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc>(theirs[0].as_ref());
    assert_eq!(t.sender_ssrc, 1);
    assert_eq!(t.base_sequence_number, 5);
    assert_eq!(t.packet_status_count, 2);
    assert_eq!(t.reference_time, 1);
    assert_eq!(t.recv_deltas.len(), 2);
    assert_eq!(t.recv_deltas[0].delta, 1000);
    assert_eq!(t.recv_deltas[1].delta, 2000);
}

#[rustfmt::skip]
const PSFB_PLI: &[u8] = &[
    0x81,                   // V=2 P=0 FMT=1 (PLI, RFC 4585 §6.3.1)
    0xce,                   // PT=206 PSFB
    0x00, 0x02,             // length 2 words → 12 bytes
    0x00, 0x00, 0x00, 0x0a, // SSRC of packet sender
    0x00, 0x00, 0x00, 0x0b, // SSRC of media source
                            // no FCI
];

#[test]
fn psfb_pli() {
    let fb = feedback(PSFB_PLI, (1, PT_PSFB, 12), FeedbackKind::Pli, (Ssrc(10), Ssrc(11)));
    assert!(fb.fci.is_empty());

    let theirs = ext_parse(PSFB_PLI);
    let t = downcast::<rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>(theirs[0].as_ref());
    assert_eq!((t.sender_ssrc, t.media_ssrc), (10, 11));
}

#[rustfmt::skip]
const PSFB_FIR: &[u8] = &[
    0x84,                   // V=2 P=0 FMT=4 (FIR, RFC 5104 §4.3.1)
    0xce,                   // PT=206 PSFB
    0x00, 0x04,             // length 4 words → 20 bytes
    0x00, 0x00, 0x00, 0x0a, // SSRC of packet sender
    0x00, 0x00, 0x00, 0x00, // SSRC of media source: 0 for FIR
    // ---- FCI entry ----
    0x00, 0x00, 0x00, 0x0b, // SSRC of the target media sender
    0x07,                   // command sequence number 7
    0x00, 0x00, 0x00,       // reserved
];

#[test]
fn psfb_fir() {
    let fb = feedback(PSFB_FIR, (4, PT_PSFB, 20), FeedbackKind::Fir, (Ssrc(10), Ssrc(0)));
    assert_eq!(fb.fci.len(), 8);
    assert_eq!(be32(fb.fci), 11, "FIR target lives in the FCI");
    assert_eq!(fb.fci[4], 7);

    let theirs = ext_parse(PSFB_FIR);
    let t = downcast::<rtcp::payload_feedbacks::full_intra_request::FullIntraRequest>(theirs[0].as_ref());
    assert_eq!((t.sender_ssrc, t.media_ssrc), (10, 0));
    assert_eq!(t.fir.len(), 1);
    assert_eq!((t.fir[0].ssrc, t.fir[0].sequence_number), (11, 7));
}

#[rustfmt::skip]
const PSFB_REMB: &[u8] = &[
    0x8f,                   // V=2 P=0 FMT=15 (application layer feedback)
    0xce,                   // PT=206 PSFB
    0x00, 0x05,             // length 5 words → 24 bytes
    0x00, 0x00, 0x00, 0x0a, // SSRC of packet sender
    0x00, 0x00, 0x00, 0x00, // SSRC of media source: 0 for REMB
    // ---- FCI (draft-alvestrand-rmcat-remb-03 §2.2) ----
    b'R', b'E', b'M', b'B', // unique identifier
    0x01,                   // Num SSRC 1
    0x0b, 0xd0, 0x90,       // BR Exp 2 (6 bits) | BR Mantissa 250 000 (18 bits) → 1 Mbit/s
    0x00, 0x00, 0x00, 0x0b, // SSRC feedback
];

#[test]
fn psfb_remb() {
    let fb = feedback(PSFB_REMB, (15, PT_PSFB, 24), FeedbackKind::Remb, (Ssrc(10), Ssrc(0)));
    assert_eq!(&fb.fci[..4], b"REMB");
    let exp = fb.fci[5] >> 2;
    let mantissa = (u32::from(fb.fci[5] & 0x03) << 16) | u32::from(fb.fci[6]) << 8 | u32::from(fb.fci[7]);
    assert_eq!((exp, mantissa), (2, 250_000));
    assert_eq!(u64::from(mantissa) << exp, 1_000_000);
    assert_eq!(be32(&fb.fci[8..]), 11);

    let theirs = ext_parse(PSFB_REMB);
    let t = downcast::<rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate>(
        theirs[0].as_ref(),
    );
    assert_eq!(t.sender_ssrc, 10);
    assert_eq!(t.bitrate, 1_000_000.0);
    assert_eq!(t.ssrcs, vec![11]);

    // PSFB FMT 15 without the "REMB" identifier is other application feedback.
    let mut not_remb = PSFB_REMB.to_vec();
    not_remb[12] = b'X';
    let RtcpPacket::Feedback(fb) = walk_one(&not_remb) else {
        panic!("not feedback")
    };
    assert_eq!(fb.kind, FeedbackKind::OtherPayload(15));
}

// --------------------------------------------- XR: RRTR + unknown + DLRR(2)

#[rustfmt::skip]
const XR_RRTR_UNKNOWN_DLRR: &[u8] = &[
    0x80,                   // V=2 P=0 reserved=0
    0xcf,                   // PT=207 XR
    0x00, 0x0e,             // length 14 words → 60 bytes
    0x11, 0x22, 0x33, 0x44, // SSRC of packet sender
    // ---- RRTR block (RFC 3611 §4.4) ----
    0x04,                   // BT=4
    0x00,                   // reserved
    0x00, 0x02,             // block length 2 words
    0xe8, 0x4b, 0x1f, 0x80, // NTP timestamp, most significant word
    0x40, 0x00, 0x00, 0x00, // NTP timestamp, least significant word (0.25 s)
    // ---- unknown block type 42: skipped by its length ----
    0x2a,                   // BT=42 (unassigned)
    0x7f,                   // type-specific
    0x00, 0x02,             // block length 2 words
    0x05, 0x00, 0x00, 0x06, // content that would read as a DLRR header
    0x04, 0x00, 0x00, 0x02, // and an RRTR header if not skipped
    // ---- DLRR block (RFC 3611 §4.5) ----
    0x05,                   // BT=5
    0x00,                   // reserved
    0x00, 0x06,             // block length 6 words: two sub-blocks
    0xaa, 0xaa, 0xaa, 0xaa, // sub-block 1: SSRC_1 (receiver)
    0x1f, 0x80, 0x00, 0x00, //   last RR (LRR), compact NTP
    0x00, 0x00, 0x40, 0x00, //   delay since last RR 0x4000 = 0.25 s
    0xbb, 0xbb, 0xbb, 0xbb, // sub-block 2: SSRC_2
    0x1f, 0x81, 0x80, 0x00, //   LRR
    0x00, 0x02, 0x00, 0x00, //   DLRR 0x20000 = 2 s
];

fn xr_dlrr_items() -> [DlrrItem; 2] {
    [
        DlrrItem {
            ssrc: Ssrc(0xaaaa_aaaa),
            lrr: CompactNtp(0x1f80_0000),
            dlrr: Delay16(0x4000),
        },
        DlrrItem {
            ssrc: Ssrc(0xbbbb_bbbb),
            lrr: CompactNtp(0x1f81_8000),
            dlrr: Delay16(0x0002_0000),
        },
    ]
}

#[test]
fn xr_rrtr_dlrr_and_unknown_block() {
    assert_eq!(XR_RRTR_UNKNOWN_DLRR.len(), 60);
    let p = walk_one_with_header(XR_RRTR_UNKNOWN_DLRR, (0, PT_XR, 60));
    let RtcpPacket::Xr(xr) = p else { panic!("not XR: {p:?}") };
    assert_eq!(xr.sender, Ssrc(0x1122_3344));
    let blocks: Vec<XrBlock<'_>> = xr.blocks().collect();
    assert_eq!(blocks.len(), 3);
    let XrBlock::Rrtr { ntp } = blocks[0] else {
        panic!("block 0 is not RRTR: {:?}", blocks[0])
    };
    assert_eq!(ntp, NtpTime(0xe84b_1f80_4000_0000));
    assert!(
        matches!(blocks[1], XrBlock::Other { block_type: 42 }),
        "{:?}",
        blocks[1]
    );
    let XrBlock::Dlrr(items) = blocks[2] else {
        panic!("block 2 is not DLRR: {:?}", blocks[2])
    };
    let items: Vec<DlrrItem> = items.collect();
    assert_eq!(items, xr_dlrr_items());
    assert_eq!(items[1].dlrr.to_duration(), std::time::Duration::from_secs(2));

    // The builder writes RRTR and DLRR only: the rebuild equals the fixture
    // with the 12-byte unknown block (bytes 20..32) cut out and the length
    // field reduced by its 3 words.
    let mut out = Vec::new();
    write_xr(&mut out, xr.sender, Some(ntp), &items);
    let mut expected = XR_RRTR_UNKNOWN_DLRR.to_vec();
    expected.drain(20..32);
    expected[3] -= 3;
    assert_eq!(out, expected);

    // Independent parser, on the fixture (unknown block included).
    let theirs = ext_parse(XR_RRTR_UNKNOWN_DLRR);
    let t = downcast::<rtcp::extended_report::ExtendedReport>(theirs[0].as_ref());
    assert_eq!(t.sender_ssrc, 0x1122_3344);
    assert_eq!(t.reports.len(), 3);
    let rrt = downcast::<rtcp::extended_report::ReceiverReferenceTimeReportBlock>(t.reports[0].as_ref());
    assert_eq!(rrt.ntp_timestamp, ntp.0);
    let dlrr = downcast::<rtcp::extended_report::DLRRReportBlock>(t.reports[2].as_ref());
    assert_eq!(dlrr.reports.len(), 2);
    for (ours, theirs) in items.iter().zip(&dlrr.reports) {
        assert_eq!(
            (theirs.ssrc, theirs.last_rr, theirs.dlrr),
            (ours.ssrc.0, ours.lrr.0, ours.dlrr.0)
        );
    }
    // And on the rebuild.
    let theirs = ext_parse(&out);
    let t = downcast::<rtcp::extended_report::ExtendedReport>(theirs[0].as_ref());
    assert_eq!(t.reports.len(), 2);
    let dlrr = downcast::<rtcp::extended_report::DLRRReportBlock>(t.reports[1].as_ref());
    assert_eq!(dlrr.reports[0].ssrc, 0xaaaa_aaaa);
}

/// An XR block whose length runs past the packet ends the block walk
/// without failing the packet; the complete blocks before it still read.
#[test]
fn xr_block_overrun_ends_block_walk() {
    #[rustfmt::skip]
    let xr: &[u8] = &[
        0x80, 0xcf, 0x00, 0x05, // XR, 5 words → 24 bytes
        0x00, 0x00, 0x00, 0x01, // SSRC of packet sender
        0x04, 0x00, 0x00, 0x02, // RRTR, 2 words
        0x00, 0x00, 0x00, 0x01, //   NTP msw
        0x00, 0x00, 0x00, 0x02, //   NTP lsw
        0x05, 0x00, 0x00, 0x09, // DLRR claiming 9 words; none present
    ];
    let RtcpPacket::Xr(x) = walk_one(xr) else {
        panic!("not XR")
    };
    let blocks: Vec<XrBlock<'_>> = x.blocks().collect();
    assert_eq!(blocks.len(), 1);
    assert!(matches!(
        blocks[0],
        XrBlock::Rrtr {
            ntp: NtpTime(0x1_0000_0002)
        }
    ));
    // An RRTR whose block length is too short for its NTP time ends the walk.
    #[rustfmt::skip]
    let short_rrtr: &[u8] = &[
        0x80, 0xcf, 0x00, 0x03, // XR, 16 bytes
        0x00, 0x00, 0x00, 0x01, // SSRC
        0x04, 0x00, 0x00, 0x01, // RRTR claiming 1 word (RFC 3611: 2)
        0x00, 0x00, 0x00, 0x01, //   half an NTP time
    ];
    let RtcpPacket::Xr(x) = walk_one(short_rrtr) else {
        panic!("not XR")
    };
    assert_eq!(x.blocks().count(), 0);
}

// ------------------------------------------------ compound SR + SDES + XR

#[rustfmt::skip]
const COMPOUND_SR_SDES_XR: &[u8] = &[
    // ======== SR (52 bytes) ========
    0x81,                   // V=2 P=0 RC=1
    0xc8,                   // PT=200 SR
    0x00, 0x0c,             // length 12 words
    0x00, 0x00, 0x10, 0x01, // SSRC of sender
    0xe8, 0x4b, 0x20, 0x00, // NTP msw
    0x00, 0x00, 0x00, 0x01, // NTP lsw
    0xff, 0xff, 0xff, 0xf0, // RTP timestamp (near the 2^32 wrap)
    0x00, 0x00, 0x00, 0x64, // packet count 100
    0x00, 0x00, 0x3e, 0x80, // octet count 16 000
    0x00, 0x00, 0x20, 0x02, // block: SSRC_1
    0x01,                   //   fraction lost 1/256
    0x80, 0x00, 0x00,       //   cumulative lost 0x800000 = −8 388 608 (the minimum)
    0xff, 0xff, 0xff, 0xff, //   ext highest seq: cycles 65535, seq 65535
    0xff, 0xff, 0xff, 0xff, //   jitter u32::MAX
    0x20, 0x00, 0x00, 0x00, //   LSR
    0xff, 0xff, 0xff, 0xff, //   DLSR (largest)
    // ======== SDES (28 bytes) ========
    0x81,                   // V=2 P=0 SC=1
    0xca,                   // PT=202 SDES
    0x00, 0x06,             // length 6 words
    0x00, 0x00, 0x10, 0x01, // SSRC
    0x01, 0x10,             // CNAME, length 16
    b'a', b'b', b'1', b'2', b'c', b'd', b'3', b'4',
    b'e', b'f', b'5', b'6', b'g', b'h', b'7', b'8',
    0x00,                   // end of items
    0x00,                   // pad
    // ======== XR (36 bytes) ========
    0x80,                   // V=2 P=0
    0xcf,                   // PT=207 XR
    0x00, 0x08,             // length 8 words
    0x00, 0x00, 0x10, 0x01, // SSRC
    0x04, 0x00, 0x00, 0x02, // RRTR, 2 words
    0xe8, 0x4b, 0x20, 0x00, //   NTP msw
    0x00, 0x00, 0x00, 0x01, //   NTP lsw
    0x05, 0x00, 0x00, 0x03, // DLRR, 3 words: one sub-block
    0x00, 0x00, 0x20, 0x02, //   SSRC_1
    0x1f, 0xff, 0xff, 0xff, //   LRR
    0x00, 0x00, 0x00, 0x01, //   DLRR 1/65536 s
];

#[test]
fn compound_sr_sdes_xr() {
    assert_eq!(COMPOUND_SR_SDES_XR.len(), 52 + 28 + 36);
    let packets = walk_ok(COMPOUND_SR_SDES_XR);
    assert_eq!(packets.len(), 3);
    assert_eq!(
        packets
            .iter()
            .map(|p| (p.header().packet_type, p.header().len))
            .collect::<Vec<_>>(),
        vec![(PT_SR, 52), (PT_SDES, 28), (PT_XR, 36)]
    );

    let RtcpPacket::SenderReport(sr) = packets[0] else {
        panic!("not SR")
    };
    assert_eq!(sr.sender, Ssrc(0x1001));
    assert_eq!(
        sr.info,
        SenderInfo {
            ntp: NtpTime(0xe84b_2000_0000_0001),
            rtp_ts: 0xffff_fff0,
            packet_count: 100,
            octet_count: 16_000,
        }
    );
    let blocks: Vec<ReportBlock> = sr.report_blocks().collect();
    assert_eq!(
        blocks,
        [ReportBlock {
            ssrc: Ssrc(0x2002),
            fraction_lost: 1,
            cumulative_lost: -8_388_608,
            ext_highest_seq: u32::MAX,
            jitter: u32::MAX,
            lsr: CompactNtp(0x2000_0000),
            dlsr: Delay16(u32::MAX),
        }]
    );

    let chunks = sdes_chunks(&packets[1]);
    assert_eq!(
        chunks,
        vec![(Ssrc(0x1001), vec![(SDES_CNAME, b"ab12cd34ef56gh78".to_vec())])]
    );

    let RtcpPacket::Xr(xr) = packets[2] else {
        panic!("not XR")
    };
    assert_eq!(xr.sender, Ssrc(0x1001));
    let xr_blocks: Vec<XrBlock<'_>> = xr.blocks().collect();
    assert_eq!(xr_blocks.len(), 2);
    let XrBlock::Rrtr { ntp } = xr_blocks[0] else {
        panic!("not RRTR")
    };
    assert_eq!(ntp, NtpTime(0xe84b_2000_0000_0001));
    let XrBlock::Dlrr(items) = xr_blocks[1] else {
        panic!("not DLRR")
    };
    let items: Vec<DlrrItem> = items.collect();
    assert_eq!(
        items,
        [DlrrItem {
            ssrc: Ssrc(0x2002),
            lrr: CompactNtp(0x1fff_ffff),
            dlrr: Delay16(1),
        }]
    );

    // Rebuild the whole compound from the parsed fields.
    let mut out = Vec::new();
    write_sender_report(&mut out, sr.sender, &sr.info, &blocks);
    write_sdes_cname(&mut out, chunks[0].0, &chunks[0].1[0].1);
    write_xr(&mut out, xr.sender, Some(ntp), &items);
    assert_eq!(out, COMPOUND_SR_SDES_XR);

    // Independent parser on the rebuilt compound.
    let theirs = ext_parse(&out);
    assert_eq!(theirs.len(), 3);
    let t_sr = downcast::<rtcp::sender_report::SenderReport>(theirs[0].as_ref());
    assert_eq!(t_sr.ssrc, 0x1001);
    assert_eq!(t_sr.ntp_time, 0xe84b_2000_0000_0001);
    assert_eq!(t_sr.rtp_time, 0xffff_fff0);
    assert_eq!(t_sr.reports.len(), 1);
    assert_same_block(&blocks[0], &t_sr.reports[0]);
    assert_eq!(t_sr.reports[0].total_lost, 0x80_0000, "unsigned reading of −2^23");
    let t_sdes = downcast::<rtcp::source_description::SourceDescription>(theirs[1].as_ref());
    assert_eq!(t_sdes.chunks[0].source, 0x1001);
    assert_eq!(&t_sdes.chunks[0].items[0].text[..], b"ab12cd34ef56gh78");
    let t_xr = downcast::<rtcp::extended_report::ExtendedReport>(theirs[2].as_ref());
    assert_eq!(t_xr.sender_ssrc, 0x1001);
    let rrt = downcast::<rtcp::extended_report::ReceiverReferenceTimeReportBlock>(t_xr.reports[0].as_ref());
    assert_eq!(rrt.ntp_timestamp, ntp.0);
    let dlrr = downcast::<rtcp::extended_report::DLRRReportBlock>(t_xr.reports[1].as_ref());
    assert_eq!(
        (dlrr.reports[0].ssrc, dlrr.reports[0].last_rr, dlrr.reports[0].dlrr),
        (0x2002, 0x1fff_ffff, 1)
    );
}

// ------------------------------------------- padding on the last packet

/// RR followed by a BYE with P=1: the BYE is the last packet of the
/// compound and carries the padding; its last octet counts the padding
/// bytes, itself included (RFC 3550 §6.4.1).
#[rustfmt::skip]
const COMPOUND_RR_PADDED_BYE: &[u8] = &[
    // ======== RR (32 bytes) ========
    0x81, 0xc9, 0x00, 0x07, // V=2 P=0 RC=1, RR, 7 words
    0x00, 0x00, 0x00, 0x05, // SSRC of packet sender
    0x00, 0x00, 0x00, 0x06, // SSRC_1
    0x00, 0x00, 0x00, 0x00, // fraction lost 0, cumulative lost 0
    0x00, 0x00, 0x00, 0x10, // ext highest seq 16
    0x00, 0x00, 0x00, 0x02, // jitter 2
    0x00, 0x00, 0x00, 0x00, // LSR
    0x00, 0x00, 0x00, 0x00, // DLSR
    // ======== BYE with padding (16 bytes) ========
    0xa1,                   // V=2 P=1 SC=1
    0xcb,                   // PT=203 BYE
    0x00, 0x03,             // length 3 words → 16 bytes, padding included
    0x00, 0x00, 0x00, 0x05, // SSRC
    0x00, 0x00, 0x00, 0x00, // padding
    0x00, 0x00, 0x00, 0x08, // padding, last octet: 8 padding bytes
];

#[test]
fn padding_on_last_packet() {
    let packets = walk_ok(COMPOUND_RR_PADDED_BYE);
    assert_eq!(packets.len(), 2);
    let RtcpPacket::ReceiverReport(rr) = packets[0] else {
        panic!("not RR")
    };
    assert_eq!(rr.sender, Ssrc(5));
    assert_eq!(
        rr.report_blocks().next().map(|b| (b.ssrc, b.ext_highest_seq, b.jitter)),
        Some((Ssrc(6), 16, 2))
    );
    let h = packets[1].header();
    assert_eq!(
        (h.count, h.packet_type, h.len),
        (1, PT_BYE, 16),
        "len counts the padding"
    );
    let RtcpPacket::Bye(bye) = packets[1] else {
        panic!("not BYE")
    };
    assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![Ssrc(5)]);
    // Were the padding read as body, its first zero would read as an empty reason.
    assert_eq!(bye.reason, None);

    // An RR with padding: the padding is not a profile extension.
    #[rustfmt::skip]
    let padded_rr: &[u8] = &[
        0xa0, 0xc9, 0x00, 0x02, // V=2 P=1 RC=0, RR, 2 words
        0x00, 0x00, 0x00, 0x05, // SSRC
        0x00, 0x00, 0x00, 0x04, // 4 padding bytes
    ];
    let RtcpPacket::ReceiverReport(rr) = walk_one(padded_rr) else {
        panic!("not RR")
    };
    assert!(rr.extension.is_empty());
    assert_eq!(rr.report_blocks().len(), 0);
}

/// Unknown packet types walk as `Other`, skipped by their length.
#[test]
fn unknown_packet_type_is_skipped() {
    let mut compound = vec![
        0x83, 0xd0, 0x00, 0x01, // V=2 count=3 PT=208 (unassigned), 1 word
        0x01, 0x02, 0x03, 0x04,
    ];
    compound.extend_from_slice(RR_NO_BLOCKS);
    let packets = walk_ok(&compound);
    assert_eq!(packets.len(), 2);
    let RtcpPacket::Other { header, body } = packets[0] else {
        panic!("not Other: {:?}", packets[0])
    };
    assert_eq!((header.count, header.packet_type, header.len), (3, 208, 8));
    assert_eq!(body, &[1, 2, 3, 4]);
    assert!(matches!(packets[1], RtcpPacket::ReceiverReport(_)));
}

// ------------------------------------------------------------- negatives

/// Every fixture above, concatenated: a long compound to truncate.
fn all_fixtures() -> Vec<Vec<u8>> {
    vec![
        SR_TWO_BLOCKS.to_vec(),
        RR_ONE_BLOCK.to_vec(),
        RR_NO_BLOCKS.to_vec(),
        rr_31_fixture(),
        SDES_TWO_CHUNKS.to_vec(),
        BYE_WITH_REASON.to_vec(),
        APP_PACKET.to_vec(),
        RTPFB_NACK.to_vec(),
        RTPFB_TWCC.to_vec(),
        PSFB_PLI.to_vec(),
        PSFB_FIR.to_vec(),
        PSFB_REMB.to_vec(),
        XR_RRTR_UNKNOWN_DLRR.to_vec(),
        COMPOUND_SR_SDES_XR.to_vec(),
        COMPOUND_RR_PADDED_BYE.to_vec(),
    ]
}

/// Fully consumes every lazy sub-iterator so nothing is left untouched.
fn touch_everything(p: &RtcpPacket<'_>) -> usize {
    match p {
        RtcpPacket::SenderReport(sr) => sr.report_blocks().count() + sr.extension.len(),
        RtcpPacket::ReceiverReport(rr) => rr.report_blocks().count() + rr.extension.len(),
        RtcpPacket::Sdes(s) => s
            .chunks()
            .map(|(_, items)| items.map(|i| i.text.len()).sum::<usize>())
            .sum(),
        RtcpPacket::Bye(b) => b.ssrcs().count() + b.reason.map_or(0, <[u8]>::len),
        RtcpPacket::App(a) => a.data.len(),
        RtcpPacket::Feedback(f) => f.fci.len(),
        RtcpPacket::Xr(x) => x
            .blocks()
            .map(|b| match b {
                XrBlock::Dlrr(items) => items.count(),
                _ => 1,
            })
            .sum(),
        RtcpPacket::Other { body, .. } => body.len(),
    }
}

/// Truncating a compound at every length: the complete packets before the
/// cut walk `Ok`, then exactly one `Err` (TooShort when fewer than 4 header
/// bytes remain, LengthOverrun otherwise), then nothing.
#[test]
fn truncated_at_every_length() {
    let pieces = all_fixtures();
    let compound: Vec<u8> = pieces.concat();
    assert_eq!(
        walk_ok(&compound).len(),
        pieces.len() + 3,
        "two fixtures are compounds, of 3 and 2 packets"
    );
    // Packet boundaries in the compound.
    let mut boundaries = vec![0usize];
    let mut at = 0;
    for p in walk_ok(&compound) {
        at += p.header().len;
        boundaries.push(at);
    }
    assert_eq!(at, compound.len());

    for cut in 0..=compound.len() {
        let prefix = &compound[..cut];
        let items: Vec<_> = walk(prefix).collect();
        let complete = boundaries.iter().filter(|&&b| b > 0 && b <= cut).count();
        let last_boundary = boundaries.iter().copied().filter(|&b| b <= cut).max().unwrap_or(0);
        let oks = items.iter().take_while(|r| r.is_ok()).count();
        assert_eq!(oks, complete, "cut at {cut}");
        for p in items.iter().flatten() {
            touch_everything(p);
        }
        let rest = cut - last_boundary;
        match rest {
            0 => assert_eq!(items.len(), complete, "cut at {cut}: clean boundary, no error"),
            1..=3 => {
                assert_eq!(items.len(), complete + 1, "cut at {cut}");
                assert_eq!(
                    items.last().unwrap().as_ref().unwrap_err(),
                    &RtcpError::TooShort,
                    "cut at {cut}"
                );
            }
            _ => {
                assert_eq!(items.len(), complete + 1, "cut at {cut}");
                assert_eq!(
                    items.last().unwrap().as_ref().unwrap_err(),
                    &RtcpError::LengthOverrun,
                    "cut at {cut}"
                );
            }
        }
    }
}

/// Each single fixture truncated at every length, with the length field
/// patched to match the cut (so the walker gets past the header and the
/// view parsers see short bodies): never a panic, only `Ok` or a clean error.
#[test]
fn truncated_bodies_with_consistent_length() {
    for fixture in all_fixtures() {
        for cut in (4..fixture.len()).step_by(4) {
            let mut p = fixture[..cut].to_vec();
            let words = (cut / 4 - 1) as u16;
            p[2..4].copy_from_slice(&words.to_be_bytes());
            p[0] &= !0x20; // drop the padding bit: the cut removed the count
            for item in walk(&p) {
                match item {
                    Ok(pkt) => {
                        touch_everything(&pkt);
                    }
                    Err(e) => assert!(
                        matches!(e, RtcpError::BodyTooShort | RtcpError::LengthOverrun),
                        "unexpected {e:?}"
                    ),
                }
            }
        }
    }
}

#[test]
fn bad_version() {
    for b0 in [0x01u8, 0x41, 0xc1] {
        // Versions 0, 1 and 3.
        let mut p = RR_ONE_BLOCK.to_vec();
        p[0] = b0;
        let items: Vec<_> = walk(&p).collect();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap_err(), &RtcpError::BadVersion);
    }
    // A bad version after a good packet: one Ok, one Err, stop.
    let mut compound = RR_NO_BLOCKS.to_vec();
    let mut bad = RR_ONE_BLOCK.to_vec();
    bad[0] = 0x41;
    compound.extend_from_slice(&bad);
    compound.extend_from_slice(RR_NO_BLOCKS);
    let items: Vec<_> = walk(&compound).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err(), &RtcpError::BadVersion);
}

#[test]
fn length_overrun() {
    let mut p = RR_ONE_BLOCK.to_vec();
    p[3] = 8; // 36 bytes declared, 32 present
    assert_eq!(walk(&p).next().unwrap().unwrap_err(), RtcpError::LengthOverrun);
    p[2..4].copy_from_slice(&u16::MAX.to_be_bytes()); // 256 KiB declared
    assert_eq!(walk(&p).next().unwrap().unwrap_err(), RtcpError::LengthOverrun);
    // Overrun in the second packet of a compound: the first still walks.
    let mut compound = SR_TWO_BLOCKS.to_vec();
    compound.extend_from_slice(&p);
    let items: Vec<_> = walk(&compound).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err(), &RtcpError::LengthOverrun);
    // A declared length shorter than the packet's counts: RC=1 needs a
    // block, the 8 declared bytes hold only the SSRC.
    let mut short = RR_ONE_BLOCK.to_vec();
    short[3] = 1;
    assert_eq!(walk(&short).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
}

#[test]
fn bad_padding() {
    // Padding count 0.
    let mut p = COMPOUND_RR_PADDED_BYE.to_vec();
    *p.last_mut().unwrap() = 0;
    let items: Vec<_> = walk(&p).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err(), &RtcpError::BadPadding);
    // Padding larger than the packet body (16-byte BYE: at most 12).
    for pad in [13u8, 16, 17, 255] {
        *p.last_mut().unwrap() = pad;
        let items: Vec<_> = walk(&p).collect();
        assert_eq!(items[1].as_ref().unwrap_err(), &RtcpError::BadPadding, "pad {pad}");
    }
    // Padding of exactly the body: valid padding, but the BYE then has no
    // room for its SSRC.
    *p.last_mut().unwrap() = 12;
    let items: Vec<_> = walk(&p).collect();
    assert_eq!(items[1].as_ref().unwrap_err(), &RtcpError::BodyTooShort);
    // ...whereas an unknown type accepts an all-padding body.
    let other = [0xa0, 0xd0, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04];
    let RtcpPacket::Other { body, header } = walk_one(&other) else {
        panic!("not Other")
    };
    assert!(body.is_empty());
    assert_eq!(header.len, 8);
    // A header-only packet (length 0) with P=1: its last octet, the padding
    // count, is the low byte of the length field, 0: BadPadding.
    let header_only = [0xa0, 0xd0, 0x00, 0x00];
    assert_eq!(walk(&header_only).next().unwrap().unwrap_err(), RtcpError::BadPadding);
}

#[test]
fn count_larger_than_body() {
    // RR with RC=2 but one block.
    let mut rr = RR_ONE_BLOCK.to_vec();
    rr[0] = 0x82;
    assert_eq!(walk(&rr).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    // RR with RC=31 and one block.
    rr[0] = 0x9f;
    assert_eq!(walk(&rr).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    // SR with RC=3 and two blocks.
    let mut sr = SR_TWO_BLOCKS.to_vec();
    sr[0] = 0x83;
    assert_eq!(walk(&sr).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    // SR without the full sender info.
    let sr_short = [0x80, 0xc8, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
    assert_eq!(walk(&sr_short).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    // BYE with two SSRCs and a reason (20 body bytes). SC=5 still fits the
    // body (the reason bytes read as SSRCs: BYE has no other length to
    // check against); SC=6 needs 24 bytes and does not.
    let mut bye = BYE_WITH_REASON.to_vec();
    bye[0] = 0x85;
    let RtcpPacket::Bye(b) = walk_one(&bye) else {
        panic!("not BYE")
    };
    assert_eq!((b.ssrcs().count(), b.reason), (5, None));
    bye[0] = 0x86;
    assert_eq!(walk(&bye).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    // Feedback without the media SSRC.
    let fb = [0x81, 0xce, 0x00, 0x01, 0, 0, 0, 1];
    assert_eq!(walk(&fb).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    // APP without its name.
    let app = [0x80, 0xcc, 0x00, 0x01, 0, 0, 0, 1];
    assert_eq!(walk(&app).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    // XR without its sender SSRC.
    let xr = [0x80, 0xcf, 0x00, 0x00];
    assert_eq!(walk(&xr).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    // RR without its sender SSRC.
    let rr0 = [0x80, 0xc9, 0x00, 0x00];
    assert_eq!(walk(&rr0).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
}

/// SDES whose count claims more chunks than the body holds, or whose
/// items run past the body, yields what it can and stops.
#[test]
fn sdes_malformed_chunks_stop() {
    let mut p = SDES_TWO_CHUNKS.to_vec();
    p[0] = 0x85; // SC=5, two present
    let chunks = sdes_chunks(&walk_one(&p));
    assert_eq!(chunks.len(), 2);
    // An item length running past the packet: the chunk walk ends there.
    let mut p = SDES_TWO_CHUNKS.to_vec();
    p[9] = 200; // CNAME length 200 in a 52-byte packet
    assert_eq!(sdes_chunks(&walk_one(&p)).len(), 0);
    // Items with no terminating null before the end.
    let unterminated = [0x81, 0xca, 0x00, 0x02, 0, 0, 0, 1, 0x01, 0x02, b'a', b'b'];
    assert_eq!(sdes_chunks(&walk_one(&unterminated)).len(), 0);
}

/// Every single-byte corruption of every fixture (each byte set to a few
/// interesting values): walking and consuming never panics.
#[test]
fn single_byte_corruptions_never_panic() {
    for fixture in all_fixtures() {
        for i in 0..fixture.len() {
            for v in [0x00u8, 0x01, 0x03, 0x20, 0x7f, 0x80, 0xa0, 0xbf, 0xfe, 0xff] {
                let mut p = fixture.clone();
                p[i] = v;
                for pkt in walk(&p).flatten() {
                    touch_everything(&pkt);
                }
            }
        }
    }
}
