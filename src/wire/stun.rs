//! STUN message view (RFC 8489 §5–6): enough to pair binding requests with
//! their responses by transaction id, which stays readable in encrypted
//! sessions (ICE consent checks, RFC 7675). [`StunWriter`] builds the
//! messages the proxy and its tests send.

use super::bytes::{u16_at, u32_at, u8_at};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use thiserror::Error;

pub const HEADER_LEN: usize = 20;
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
pub const METHOD_BINDING: u16 = 0x001;
/// USERNAME attribute (RFC 8489 §14.3); in ICE checks `remote-ufrag:local-ufrag` (RFC 8445 §7.2.2).
pub const ATTR_USERNAME: u16 = 0x0006;
/// MESSAGE-INTEGRITY (RFC 8489 §14.5): 20-byte HMAC-SHA1.
pub const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
/// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
pub const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// PRIORITY (RFC 8445 §16.1): 32-bit candidate priority.
pub const ATTR_PRIORITY: u16 = 0x0024;
/// USE-CANDIDATE (RFC 8445 §16.1): no value.
pub const ATTR_USE_CANDIDATE: u16 = 0x0025;
/// FINGERPRINT (RFC 8489 §14.7): CRC-32 of the message XOR 0x5354554e.
pub const ATTR_FINGERPRINT: u16 = 0x8028;
/// ICE-CONTROLLED (RFC 8445 §16.1): 64-bit tiebreaker.
pub const ATTR_ICE_CONTROLLED: u16 = 0x8029;
/// ICE-CONTROLLING (RFC 8445 §16.1): 64-bit tiebreaker.
pub const ATTR_ICE_CONTROLLING: u16 = 0x802A;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
pub enum StunError {
    #[error("shorter than the 20-byte header")]
    TooShort,
    #[error("top two bits are not zero")]
    NotStun,
    #[error("magic cookie missing")]
    BadCookie,
    #[error("message length is not a multiple of 4 or disagrees with the datagram")]
    BadLength,
}

impl StunError {
    pub fn reason(self) -> &'static str {
        match self {
            StunError::TooShort => "stun_too_short",
            StunError::NotStun => "stun_bad_type",
            StunError::BadCookie => "stun_bad_cookie",
            StunError::BadLength => "stun_bad_length",
        }
    }
}

/// Message class (RFC 8489 §5: bits C1 C0 spread over the type field).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum StunClass {
    Request,
    Indication,
    SuccessResponse,
    ErrorResponse,
}

#[derive(Clone, Copy, Debug)]
pub struct StunView<'a> {
    pub class: StunClass,
    /// 12-bit method (0x001 = Binding).
    pub method: u16,
    pub transaction_id: [u8; 12],
    /// Attribute bytes (the message body).
    pub attributes: &'a [u8],
}

impl<'a> StunView<'a> {
    /// ```text
    /// |0 0|  STUN message type (M11..M0 with C1 at bit 8, C0 at bit 4) | message length |
    /// |                        magic cookie 0x2112A442                                  |
    /// |                        transaction id (96 bits)                                 |
    /// ```
    pub fn parse(buf: &'a [u8]) -> Result<Self, StunError> {
        if buf.len() < HEADER_LEN {
            return Err(StunError::TooShort);
        }
        let msg_type = u16_at(buf, 0).ok_or(StunError::TooShort)?;
        if msg_type & 0xc000 != 0 {
            return Err(StunError::NotStun);
        }
        let len = usize::from(u16_at(buf, 2).ok_or(StunError::TooShort)?);
        if u32_at(buf, 4) != Some(MAGIC_COOKIE) {
            return Err(StunError::BadCookie);
        }
        if len % 4 != 0 || HEADER_LEN + len != buf.len() {
            return Err(StunError::BadLength);
        }
        let class = match (msg_type >> 7 & 0b10) | (msg_type >> 4 & 0b01) {
            0b00 => StunClass::Request,
            0b01 => StunClass::Indication,
            0b10 => StunClass::SuccessResponse,
            _ => StunClass::ErrorResponse,
        };
        // M11..M7 at bits 13..9, M6..M4 at bits 7..5, M3..M0 at bits 3..0.
        let method = (msg_type & 0x000f) | (msg_type >> 1 & 0x0070) | (msg_type >> 2 & 0x0f80);
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(buf.get(8..20).ok_or(StunError::TooShort)?);
        Ok(StunView {
            class,
            method,
            transaction_id,
            attributes: buf.get(HEADER_LEN..).unwrap_or(&[]),
        })
    }

    /// The value of the first attribute of `attr_type`, if the attribute
    /// list is well formed up to it (RFC 8489 §14: type, length, value
    /// padded to a multiple of 4 bytes).
    pub fn attribute(&self, attr_type: u16) -> Option<&'a [u8]> {
        let mut rest = self.attributes;
        while rest.len() >= 4 {
            let t = u16_at(rest, 0)?;
            let len = usize::from(u16_at(rest, 2)?);
            let value = rest.get(4..4 + len)?;
            if t == attr_type {
                return Some(value);
            }
            let padded = (len + 3) & !3;
            rest = rest.get(4 + padded..)?;
        }
        None
    }

    /// The address of the first XOR-MAPPED-ADDRESS attribute (RFC 8489
    /// §14.2), un-XORed; `None` when absent or malformed.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        let v = self.attribute(ATTR_XOR_MAPPED_ADDRESS)?;
        let port = u16_at(v, 2)? ^ (MAGIC_COOKIE >> 16) as u16;
        let ip = match u8_at(v, 1)? {
            0x01 => IpAddr::V4(Ipv4Addr::from(u32_at(v, 4)? ^ MAGIC_COOKIE)),
            0x02 => {
                let mut a: [u8; 16] = v.get(4..20)?.try_into().ok()?;
                for (b, k) in a.iter_mut().zip(xor_key(&self.transaction_id)) {
                    *b ^= k;
                }
                IpAddr::V6(Ipv6Addr::from(a))
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }
}

/// The 16 bytes an IPv6 XOR-MAPPED-ADDRESS is XORed with: the magic cookie
/// then the transaction id (RFC 8489 §14.2).
fn xor_key(transaction_id: &[u8; 12]) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    k[4..].copy_from_slice(transaction_id);
    k
}

// ---------------------------------------------------------------- writer

/// The 14-bit message type of `class` and `method` (RFC 8489 §5): method
/// bits M11..M0 around the class bits C1 (bit 8) and C0 (bit 4).
/// Example: (SuccessResponse, Binding) → 0x0101.
pub fn message_type(class: StunClass, method: u16) -> u16 {
    let class_bits = match class {
        StunClass::Request => 0x0000,
        StunClass::Indication => 0x0010,
        StunClass::SuccessResponse => 0x0100,
        StunClass::ErrorResponse => 0x0110,
    };
    (method & 0x000f) | (method & 0x0070) << 1 | (method & 0x0f80) << 2 | class_bits
}

/// Appends a STUN message to a buffer, attribute by attribute; the header's
/// length field is kept current after every call, so the bytes are a
/// complete message whenever the writer is dropped.
///
/// ```text
/// |0 0|     STUN message type     |         message length        |
/// |                    magic cookie 0x2112A442                    |
/// |                  transaction id (96 bits)                     |
/// |         attribute type        |        value length           |
/// |       value …, zero-padded to a 32-bit boundary (§14)         |
/// ```
///
/// MESSAGE-INTEGRITY is not computed here; callers that need its bytes
/// (placeholders included) add them with [`Self::attribute`].
/// [`Self::fingerprint`] ends a message with FINGERPRINT.
pub struct StunWriter<'a> {
    out: &'a mut Vec<u8>,
    at: usize,
    transaction_id: [u8; 12],
}

impl<'a> StunWriter<'a> {
    /// Starts a message with no attributes.
    pub fn new(out: &'a mut Vec<u8>, class: StunClass, method: u16, transaction_id: [u8; 12]) -> Self {
        let at = out.len();
        out.extend_from_slice(&message_type(class, method).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&transaction_id);
        StunWriter {
            out,
            at,
            transaction_id,
        }
    }

    /// Any attribute: type, length, value, zero padding to a word (RFC 8489
    /// §14). A value over 65 535 bytes is cut to that; a message past the
    /// 16-bit length field is not representable and keeps the largest value.
    pub fn attribute(&mut self, attr_type: u16, value: &[u8]) -> &mut Self {
        let value = &value[..value.len().min(usize::from(u16::MAX))];
        self.out.extend_from_slice(&attr_type.to_be_bytes());
        self.out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.out.extend_from_slice(value);
        let len = self.out.len() - self.at;
        self.out.resize(self.at + len.next_multiple_of(4), 0);
        let body = u16::try_from(self.out.len() - self.at - HEADER_LEN).unwrap_or(u16::MAX);
        self.out[self.at + 2..self.at + 4].copy_from_slice(&body.to_be_bytes());
        self
    }

    /// FINGERPRINT (RFC 8489 §14.7), the last attribute: CRC-32 of the
    /// message before it, whose length field already counts it, XOR
    /// 0x5354554e. ICE agents use it to tell STUN from media (RFC 8445
    /// §7.2.2: every check carries it); libwebrtc takes a message without
    /// it for media and never answers it.
    pub fn fingerprint(&mut self) -> &mut Self {
        let body = self.out.len() - self.at - HEADER_LEN + 8;
        let body = u16::try_from(body).unwrap_or(u16::MAX);
        self.out[self.at + 2..self.at + 4].copy_from_slice(&body.to_be_bytes());
        let crc = fingerprint_crc(&self.out[self.at..]);
        self.attribute(ATTR_FINGERPRINT, &crc.to_be_bytes())
    }

    /// USERNAME (RFC 8489 §14.3).
    pub fn username(&mut self, username: &[u8]) -> &mut Self {
        self.attribute(ATTR_USERNAME, username)
    }

    /// PRIORITY (RFC 8445 §7.1.1).
    pub fn priority(&mut self, priority: u32) -> &mut Self {
        self.attribute(ATTR_PRIORITY, &priority.to_be_bytes())
    }

    /// ICE-CONTROLLING with its tiebreaker (RFC 8445 §7.1.3).
    pub fn ice_controlling(&mut self, tiebreaker: u64) -> &mut Self {
        self.attribute(ATTR_ICE_CONTROLLING, &tiebreaker.to_be_bytes())
    }

    /// ICE-CONTROLLED with its tiebreaker (RFC 8445 §7.1.3).
    pub fn ice_controlled(&mut self, tiebreaker: u64) -> &mut Self {
        self.attribute(ATTR_ICE_CONTROLLED, &tiebreaker.to_be_bytes())
    }

    /// USE-CANDIDATE (RFC 8445 §7.1.2): no value.
    pub fn use_candidate(&mut self) -> &mut Self {
        self.attribute(ATTR_USE_CANDIDATE, &[])
    }

    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2):
    /// `| 0 | family | X-Port | X-Address (32 or 128 bits) |`, port XORed
    /// with the cookie's top 16 bits, address with the cookie (IPv4) or the
    /// cookie and transaction id (IPv6).
    pub fn xor_mapped_address(&mut self, addr: SocketAddr) -> &mut Self {
        let mut v = Vec::with_capacity(20);
        let family = if addr.is_ipv4() { 0x01 } else { 0x02 };
        v.extend_from_slice(&[0, family]);
        v.extend_from_slice(&(addr.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
        match addr.ip() {
            IpAddr::V4(ip) => v.extend_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes()),
            IpAddr::V6(ip) => {
                let key = xor_key(&self.transaction_id);
                v.extend(ip.octets().iter().zip(key).map(|(b, k)| b ^ k));
            }
        }
        self.attribute(ATTR_XOR_MAPPED_ADDRESS, &v)
    }
}

/// Appends a Binding request (RFC 8489 §3), with USERNAME when given.
pub fn write_binding_request(out: &mut Vec<u8>, transaction_id: [u8; 12], username: Option<&[u8]>) {
    let mut w = StunWriter::new(out, StunClass::Request, METHOD_BINDING, transaction_id);
    if let Some(name) = username {
        w.username(name);
    }
}

/// The FINGERPRINT value of a message (RFC 8489 §14.7) given its bytes up
/// to the attribute, length field included.
pub fn fingerprint_crc(message: &[u8]) -> u32 {
    crc32fast::hash(message) ^ 0x5354_554e
}

/// Appends the proxy's own ICE probe (NAT rebinding): a Binding request
/// with FINGERPRINT and nothing else. Without credentials an ICE agent
/// answers it with an error (400, RFC 8445 §7.3: the request has no
/// USERNAME), from the address the probe reached, which is all the proxy
/// needs to know.
pub fn write_probe(out: &mut Vec<u8>, transaction_id: [u8; 12]) {
    StunWriter::new(out, StunClass::Request, METHOD_BINDING, transaction_id).fingerprint();
}

/// Appends a Binding success response, with XOR-MAPPED-ADDRESS when given.
pub fn write_binding_success(out: &mut Vec<u8>, transaction_id: [u8; 12], mapped: Option<SocketAddr>) {
    let mut w = StunWriter::new(out, StunClass::SuccessResponse, METHOD_BINDING, transaction_id);
    if let Some(addr) = mapped {
        w.xor_mapped_address(addr);
    }
}

/// Appends a Binding indication (RFC 8489 §3; ICE keepalives, RFC 8445
/// §11): no attributes.
pub fn write_binding_indication(out: &mut Vec<u8>, transaction_id: [u8; 12]) {
    StunWriter::new(out, StunClass::Indication, METHOD_BINDING, transaction_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(msg_type: u16, body: &[u8]) -> Vec<u8> {
        let mut m = msg_type.to_be_bytes().to_vec();
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn classes_and_method() {
        let cases = [
            (0x0001, StunClass::Request),
            (0x0011, StunClass::Indication),
            (0x0101, StunClass::SuccessResponse),
            (0x0111, StunClass::ErrorResponse),
        ];
        for (t, class) in cases {
            let m = msg(t, &[0, 0x20, 0, 0]);
            let v = StunView::parse(&m).unwrap();
            assert_eq!(v.class, class);
            assert_eq!(v.method, METHOD_BINDING);
            assert_eq!(v.transaction_id, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
            assert_eq!(v.attributes.len(), 4);
        }
        // Allocate (0x003) success response: 0x0103.
        assert_eq!(StunView::parse(&msg(0x0103, &[])).unwrap().method, 0x003);
    }

    #[test]
    fn finds_attributes_past_padding() {
        // SOFTWARE (0x8022, 5 bytes + 3 padding), then USERNAME "ab:cd".
        let mut body = vec![0x80, 0x22, 0, 5, b'x', b'y', b'z', b'w', b'v', 0, 0, 0];
        body.extend_from_slice(&[0, 6, 0, 5, b'a', b'b', b':', b'c', b'd', 0, 0, 0]);
        let m = msg(0x0001, &body);
        let v = StunView::parse(&m).unwrap();
        assert_eq!(v.attribute(ATTR_USERNAME), Some(&b"ab:cd"[..]));
        assert_eq!(v.attribute(0x8022), Some(&b"xyzwv"[..]));
        assert_eq!(v.attribute(0x0008), None);
        // A length running past the message ends the walk.
        let mut cut = body.clone();
        cut[3] = 200;
        let m = msg(0x0001, &cut);
        assert_eq!(StunView::parse(&m).unwrap().attribute(ATTR_USERNAME), None);
    }

    #[test]
    fn rejects_malformed() {
        let good = msg(0x0001, &[0; 8]);
        assert_eq!(StunView::parse(&good[..19]).unwrap_err(), StunError::TooShort);
        assert_eq!(StunView::parse(&good[..24]).unwrap_err(), StunError::BadLength);
        let mut bad = good.clone();
        bad[4] = 0;
        assert_eq!(StunView::parse(&bad).unwrap_err(), StunError::BadCookie);
        let mut odd = msg(0x0001, &[0; 3]);
        odd[3] = 3;
        assert_eq!(StunView::parse(&odd).unwrap_err(), StunError::BadLength);
        let mut top = good;
        top[0] = 0x40;
        assert_eq!(StunView::parse(&top).unwrap_err(), StunError::NotStun);
    }

    #[test]
    fn message_type_inverts_the_parser() {
        for method in [METHOD_BINDING, 0x003, 0xfff, 0x0a5] {
            for class in [
                StunClass::Request,
                StunClass::Indication,
                StunClass::SuccessResponse,
                StunClass::ErrorResponse,
            ] {
                let m = msg(message_type(class, method), &[]);
                let v = StunView::parse(&m).unwrap();
                assert_eq!((v.class, v.method), (class, method));
            }
        }
        assert_eq!(message_type(StunClass::Request, METHOD_BINDING), 0x0001);
        assert_eq!(message_type(StunClass::Indication, METHOD_BINDING), 0x0011);
        assert_eq!(message_type(StunClass::SuccessResponse, METHOD_BINDING), 0x0101);
        assert_eq!(message_type(StunClass::ErrorResponse, METHOD_BINDING), 0x0111);
    }

    #[test]
    fn ice_check_round_trip() {
        let txid = [7; 12];
        let mut out = vec![0xee]; // appends after what is there
        StunWriter::new(&mut out, StunClass::Request, METHOD_BINDING, txid)
            .username(b"rFrag:lFrag")
            .priority(0x6e7f_1eff)
            .ice_controlling(0x0102_0304_0506_0708)
            .use_candidate()
            .attribute(ATTR_MESSAGE_INTEGRITY, &[0xaa; 20]);
        let v = StunView::parse(&out[1..]).unwrap();
        assert_eq!(
            (v.class, v.method, v.transaction_id),
            (StunClass::Request, METHOD_BINDING, txid)
        );
        assert_eq!(v.attribute(ATTR_USERNAME), Some(&b"rFrag:lFrag"[..]));
        assert_eq!(v.attribute(ATTR_PRIORITY), Some(&[0x6e, 0x7f, 0x1e, 0xff][..]));
        assert_eq!(v.attribute(ATTR_ICE_CONTROLLING), Some(&[1, 2, 3, 4, 5, 6, 7, 8][..]));
        assert_eq!(v.attribute(ATTR_USE_CANDIDATE), Some(&[][..]));
        assert_eq!(v.attribute(ATTR_MESSAGE_INTEGRITY), Some(&[0xaa; 20][..]));
        assert_eq!(v.attribute(ATTR_ICE_CONTROLLED), None);
        // USERNAME 11 bytes → 12 padded: 4+12 + 4+4 + 4+8 + 4 + 4+20.
        assert_eq!(v.attributes.len(), 64);
    }

    /// RFC 5769 §2.1's sample request: its FINGERPRINT over the bytes
    /// before it (length field 0x58, counting the attribute).
    #[test]
    fn fingerprint_matches_rfc5769() {
        #[rustfmt::skip]
        let sample: [u8; 108] = [
            0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42,
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
            0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
            0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74,
            0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
            0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
            0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76,
            0x59, 0x20, 0x20, 0x20,
            0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56,
            0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2,
            0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
        ];
        assert_eq!(fingerprint_crc(&sample[..100]), 0xe57a_3bcf);
    }

    #[test]
    fn the_probe_ends_with_its_fingerprint() {
        let mut out = Vec::new();
        write_probe(&mut out, [9; 12]);
        assert_eq!(out.len(), HEADER_LEN + 8);
        assert_eq!(&out[2..4], &[0, 8], "the length counts the attribute");
        let v = StunView::parse(&out).unwrap();
        assert_eq!((v.class, v.method), (StunClass::Request, METHOD_BINDING));
        let crc = v.attribute(ATTR_FINGERPRINT).expect("FINGERPRINT");
        assert_eq!(crc, fingerprint_crc(&out[..HEADER_LEN]).to_be_bytes());
    }

    #[test]
    fn binding_messages_byte_for_byte() {
        let mut out = Vec::new();
        write_binding_request(&mut out, [9; 12], None);
        let mut expect = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        expect.extend_from_slice(&[9; 12]);
        assert_eq!(out, expect);

        out.clear();
        write_binding_request(&mut out, [9; 12], Some(b"ab:cd"));
        let mut with_name = expect.clone();
        with_name[3] = 12;
        with_name.extend_from_slice(&[0x00, 0x06, 0x00, 0x05, b'a', b'b', b':', b'c', b'd', 0, 0, 0]);
        assert_eq!(out, with_name);

        out.clear();
        write_binding_indication(&mut out, [9; 12]);
        assert_eq!(StunView::parse(&out).unwrap().class, StunClass::Indication);
        assert_eq!(out.len(), HEADER_LEN);

        // IPv4 XOR-MAPPED-ADDRESS as RFC 5769 §2.2 encodes 192.0.2.1:32853.
        out.clear();
        write_binding_success(&mut out, [9; 12], Some("192.0.2.1:32853".parse().unwrap()));
        assert_eq!(&out[..4], &[0x01, 0x01, 0x00, 0x0c]);
        assert_eq!(
            &out[20..],
            &[0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]
        );
    }

    #[test]
    fn xor_mapped_address_round_trip() {
        for addr in [
            "192.0.2.1:32853",
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            "0.0.0.0:0",
        ] {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            write_binding_success(
                &mut out,
                [0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae],
                Some(addr),
            );
            assert_eq!(StunView::parse(&out).unwrap().xor_mapped_address(), Some(addr));
        }
        // RFC 5769 §2.3: 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
        let mut out = Vec::new();
        let txid = [0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae];
        let v6 = "[2001:db8:1234:5678:11:2233:4455:6677]:32853".parse().unwrap();
        write_binding_success(&mut out, txid, Some(v6));
        #[rustfmt::skip]
        let attr = [
            0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47,
            0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79,
            0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        ];
        assert_eq!(&out[20..], &attr);
        // Absent, unknown family, and cut short.
        let m = msg(0x0101, &[]);
        assert_eq!(StunView::parse(&m).unwrap().xor_mapped_address(), None);
        let m = msg(0x0101, &[0x00, 0x20, 0x00, 0x08, 0x00, 0x03, 0, 0, 0, 0, 0, 0]);
        assert_eq!(StunView::parse(&m).unwrap().xor_mapped_address(), None);
        let m = msg(0x0101, &[0x00, 0x20, 0x00, 0x04, 0x00, 0x02, 0, 0]);
        assert_eq!(StunView::parse(&m).unwrap().xor_mapped_address(), None);
    }
}
