//! STUN view: `StunView::parse` and the attribute walk on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::wire::stun::{StunView, ATTR_USERNAME, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = StunView::parse(data) {
        assert_eq!(v.attributes.len() + HEADER_LEN, data.len());
        assert_eq!(v.attributes.len() % 4, 0);
        assert!(v.method <= 0x0fff);
        assert_eq!(&data[8..20], &v.transaction_id[..]);
        if let Some(name) = v.attribute(ATTR_USERNAME) {
            // The value lies inside the attribute bytes.
            let start = name.as_ptr() as usize - v.attributes.as_ptr() as usize;
            assert!(start >= 4 && start + name.len() <= v.attributes.len());
        }
    }
});
