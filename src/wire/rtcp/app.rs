//! Application-defined packet (RFC 3550 §6.7).

use super::{finish_packet, pad_to_word, start_packet, Header, RtcpError, PT_APP};
use crate::wire::bytes::u32_at;
use crate::wire::types::Ssrc;

/// APP (RFC 3550 §6.7).
///
/// ```text
/// |V=2|P| subtype |   PT=APP=204  |             length            |
/// |                           SSRC/CSRC                           |
/// |                          name (ASCII)                         |
/// |                   application-dependent data …                |
/// ```
#[derive(Clone, Copy, Debug)]
pub struct App<'a> {
    pub header: Header,
    pub sender: Ssrc,
    pub name: [u8; 4],
    pub data: &'a [u8],
}

impl<'a> App<'a> {
    pub(super) fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
        let short = RtcpError::BodyTooShort;
        let name = u32_at(body, 4).ok_or(short)?.to_be_bytes();
        Ok(App {
            header,
            sender: Ssrc(u32_at(body, 0).ok_or(short)?),
            name,
            data: body.get(8..).unwrap_or(&[]),
        })
    }
}

/// Appends an APP packet. `subtype` keeps its low 5 bits; `data` should be
/// a multiple of 4 bytes (RFC 3550 §6.7) and is zero-padded if it is not.
pub fn write_app(out: &mut Vec<u8>, subtype: u8, sender: Ssrc, name: [u8; 4], data: &[u8]) {
    let at = start_packet(out, subtype, PT_APP);
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&name);
    out.extend_from_slice(data);
    pad_to_word(out, at);
    finish_packet(out, at);
}

#[cfg(test)]
mod tests {
    use super::super::{walk, RtcpPacket};
    use super::*;

    #[test]
    fn writes_the_fixture() {
        #[rustfmt::skip]
        let fixture = [
            0x85, 0xcc, 0x00, 0x04, // V=2 subtype=5, PT=204, 4 words
            0x0b, 0xad, 0xf0, 0x0d, // SSRC/CSRC
            b'T', b'E', b'S', b'T', // name
            1, 2, 3, 4, 5, 6, 7, 8, // data
        ];
        let mut out = Vec::new();
        write_app(&mut out, 5, Ssrc(0x0bad_f00d), *b"TEST", &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(out, fixture);
        let Some(Ok(RtcpPacket::App(app))) = walk(&out).next() else {
            panic!("not APP")
        };
        assert_eq!(
            (app.header.count, app.sender, app.name),
            (5, Ssrc(0x0bad_f00d), *b"TEST")
        );
        assert_eq!(app.data, &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn missing_name_is_an_error() {
        let p = [0x80, PT_APP, 0, 1, 0, 0, 0, 1];
        assert_eq!(walk(&p).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    }
}
