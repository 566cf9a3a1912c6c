//! First-byte demultiplexing (RFC 7983 / RFC 5761): `classify` on arbitrary
//! bytes, cross-checked against the RTP view.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::wire::rtp::RtpView;
use rtp_middlebox::wire::{classify, PacketKind};

fuzz_target!(|data: &[u8]| {
    let kind = classify(data);
    if data.is_empty() {
        assert_eq!(kind, PacketKind::Unknown);
    }
    // Anything the RTP view accepts has version 2, which the classifier
    // always sends to RTP or RTCP.
    if RtpView::parse(data).is_ok() {
        assert!(matches!(kind, PacketKind::Rtp | PacketKind::Rtcp), "{kind:?}");
    }
    if kind == PacketKind::Rtp {
        assert_eq!(data[0] >> 6, 2);
    }
});
