//! The HTTP API's JSON request bodies (attacker-reachable when the API is
//! exposed): `POST /v1/sessions/{id}/srtp` and `PUT /v1/sessions/{id}/sdp`.
//! Never panics; errors never quote key material.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::export::http::{parse_sdp_body, parse_srtp_body};

fuzz_target!(|data: &[u8]| {
    if let Err(message) = parse_srtp_body(data) {
        // Whatever the body held after "inline:" must not come back.
        if let Some(at) = data.windows(7).position(|w| w == b"inline:") {
            let secret: Vec<u8> = data[at + 7..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'+' || **b == b'/').copied().collect();
            // Real key params are 40+ base64 characters; shorter runs can
            // be words of the fixed messages ("upstream", "supported").
            if secret.len() >= 16 {
                assert!(!message.as_bytes().windows(secret.len()).any(|w| w == secret.as_slice()), "{message}");
            }
        }
    }
    let _ = parse_sdp_body(data);
});
