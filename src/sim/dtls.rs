//! DTLS records as a server's first flight carries them, for tests of what
//! the proxy reads in clear from a handshake it passes through.

/// A DTLS 1.2 handshake record (epoch 0) holding one ServerHello, not
/// fragmented, that chooses SRTP protection profile `profile` in
/// `use_srtp` (RFC 5764 §4.1.1) after an empty renegotiation_info
/// (RFC 5746), with `session_id`, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
/// and no compression: what Janus sends.
pub fn server_hello_record(profile: u16, session_id: &[u8]) -> Vec<u8> {
    let mut hello = vec![0xfe, 0xfd];
    hello.extend_from_slice(&[0x42; 32]);
    hello.push(session_id.len() as u8);
    hello.extend_from_slice(session_id);
    hello.extend_from_slice(&[0xc0, 0x2b, 0]);
    // use_srtp: profiles (2-byte length 2, one profile), then an empty MKI.
    let exts = [
        &[0xff, 0x01, 0, 1, 0][..],
        &[0, 14, 0, 5, 0, 2],
        &profile.to_be_bytes(),
        &[0],
    ]
    .concat();
    hello.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    hello.extend_from_slice(&exts);
    // Handshake header (RFC 6347 §4.2.2): type, length, message_seq 0,
    // fragment_offset 0, fragment_length = length.
    let len = &(hello.len() as u32).to_be_bytes()[1..];
    let handshake = [&[2u8][..], len, &[0, 0, 0, 0, 0], len, &hello].concat();
    record(22, &handshake)
}

/// A DTLS 1.2 record of content type `kind` in epoch 0, sequence number 1
/// (RFC 6347 §4.1).
pub fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![kind, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}
