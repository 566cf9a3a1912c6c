//! STUN message view (RFC 8489 §5–6): enough to pair binding requests with
//! their responses by transaction id, which stays readable in encrypted
//! sessions (ICE consent checks, RFC 7675).

use super::bytes::{u16_at, u32_at};
use thiserror::Error;

pub const HEADER_LEN: usize = 20;
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
pub const METHOD_BINDING: u16 = 0x001;
/// USERNAME attribute (RFC 8489 §14.3); in ICE checks `remote-ufrag:local-ufrag` (RFC 8445 §7.2.2).
pub const ATTR_USERNAME: u16 = 0x0006;

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
}
