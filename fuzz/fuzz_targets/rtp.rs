//! RTP header view: `RtpView::parse` on arbitrary bytes, then every accessor
//! and iterator. Besides "never panics", checks that the lengths the view
//! reports add up to the datagram and that iterators stay inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::wire::rtp::{RtpView, FIXED_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = RtpView::parse(data) else {
        return;
    };
    assert!(data.len() >= FIXED_HEADER_LEN);
    assert_eq!(v.header_len() + v.payload_len() + v.padding_len(), data.len());
    assert_eq!(v.payload().len(), v.payload_len());
    assert!(v.header_len() >= FIXED_HEADER_LEN + 4 * v.csrc_count());
    let _ = (v.marker(), v.payload_type(), v.seq(), v.timestamp(), v.ssrc());
    let _ = (v.has_padding(), v.extension_profile());
    assert_eq!(v.csrcs().count(), v.csrc_count());
    let mut ext_bytes = 0usize;
    for e in v.extensions() {
        assert!(e.id != 0 && e.data.len() <= 256);
        ext_bytes += e.data.len();
    }
    assert!(ext_bytes <= v.header_len());
});
