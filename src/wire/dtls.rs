//! The one thing the proxy reads from a DTLS handshake: the SRTP protection
//! profile the server chose in its `use_srtp` extension (RFC 5764 §4.1.1),
//! which fixes the length of the tag every SRTP packet ends with. DTLS 1.2
//! sends the ServerHello in clear (epoch 0); nothing else is read, and a
//! handshake the proxy cannot read (DTLS 1.3 moves `use_srtp` into the
//! encrypted extensions) simply leaves the profile unknown.

use super::bytes::{u16_at, u8_at};

/// Record layer: type 1, version 2, epoch 2, sequence 6, length 2
/// (RFC 6347 §4.1).
const RECORD_HEADER: usize = 13;
/// Handshake header: type 1, length 3, message_seq 2, fragment_offset 3,
/// fragment_length 3 (RFC 6347 §4.2.2).
const HANDSHAKE_HEADER: usize = 12;
const CONTENT_HANDSHAKE: u8 = 22;
const SERVER_HELLO: u8 = 2;
const EXT_USE_SRTP: u16 = 14;

fn u24_at(b: &[u8], at: usize) -> Option<usize> {
    let hi = usize::from(u8_at(b, at)?);
    Some(hi << 16 | usize::from(u16_at(b, at + 1)?))
}

/// The SRTP protection profile (RFC 5764 §4.1.2 numbering: 0x0001
/// AES128_CM_HMAC_SHA1_80, 0x0002 …_32, 0x0007 AEAD_AES_128_GCM, 0x0008
/// AEAD_AES_256_GCM) chosen in a ServerHello inside this datagram, if one
/// is there whole (not fragmented) and names exactly one profile.
///
/// ```
/// use rtp_middlebox::wire::dtls::server_srtp_profile;
/// assert_eq!(server_srtp_profile(&[22, 0xfe, 0xfd]), None);
/// ```
pub fn server_srtp_profile(datagram: &[u8]) -> Option<u16> {
    let mut at = 0;
    // A flight packs several records into one datagram (RFC 6347 §4.1.1).
    while at + RECORD_HEADER <= datagram.len() {
        let kind = u8_at(datagram, at)?;
        let epoch = u16_at(datagram, at + 3)?;
        let len = usize::from(u16_at(datagram, at + 11)?);
        let body = datagram.get(at + RECORD_HEADER..at + RECORD_HEADER + len)?;
        at += RECORD_HEADER + len;
        if kind != CONTENT_HANDSHAKE || epoch != 0 || u8_at(body, 0) != Some(SERVER_HELLO) {
            continue;
        }
        let (total, offset, fragment) = (u24_at(body, 1)?, u24_at(body, 6)?, u24_at(body, 9)?);
        if offset != 0 || fragment != total {
            return None;
        }
        return use_srtp(body.get(HANDSHAKE_HEADER..HANDSHAKE_HEADER + total)?);
    }
    None
}

/// ServerHello body (RFC 5246 §7.4.1.3): version 2, random 32, session id
/// (length-prefixed), cipher suite 2, compression 1, extensions.
fn use_srtp(hello: &[u8]) -> Option<u16> {
    let session_id = usize::from(u8_at(hello, 34)?);
    let mut at = 35 + session_id + 2 + 1;
    let ext_len = usize::from(u16_at(hello, at)?);
    at += 2;
    let end = (at + ext_len).min(hello.len());
    while at + 4 <= end {
        let (kind, len) = (u16_at(hello, at)?, usize::from(u16_at(hello, at + 2)?));
        if kind == EXT_USE_SRTP {
            // UseSRTPData: profiles<2..2^16-1> (2-byte length), then the MKI.
            let profiles = u16_at(hello, at + 4)?;
            return (profiles == 2).then(|| u16_at(hello, at + 6)).flatten();
        }
        at += 4 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sim::dtls::{record, server_hello_record};

    /// A ServerHello record choosing `profile`, after a first record of
    /// another kind (an alert), as a server's flight packs them.
    fn flight(profile: u16, session_id: &[u8]) -> Vec<u8> {
        [record(21, &[1, 0]), server_hello_record(profile, session_id)].concat()
    }

    #[test]
    fn reads_the_chosen_profile() {
        assert_eq!(server_srtp_profile(&flight(1, &[])), Some(1));
        assert_eq!(server_srtp_profile(&flight(7, &[9; 32])), Some(7));
    }

    #[test]
    fn truncated_or_foreign_datagrams_give_nothing() {
        let f = flight(1, &[]);
        for cut in 0..f.len() {
            assert_eq!(server_srtp_profile(&f[..cut]), None, "cut {cut}");
        }
        let mut client_hello = f.clone();
        let hs_at = 15 + RECORD_HEADER;
        client_hello[hs_at] = 1;
        assert_eq!(server_srtp_profile(&client_hello), None);
    }
}
