//! Goodbye (RFC 3550 §6.6).

use super::{finish_packet, pad_to_word, start_packet, Header, RtcpError, PT_BYE};
use crate::wire::bytes::{u32_at, u8_at};
use crate::wire::types::Ssrc;

/// BYE (RFC 3550 §6.6).
///
/// ```text
/// |V=2|P|    SC   |   PT=BYE=203  |             length            |
/// |                     SSRC/CSRC 1 … SC                          |
/// |     length    |   reason for leaving (opt) … zero-padded      |
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Bye<'a> {
    pub header: Header,
    ssrcs: &'a [u8],
    pub reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    pub(super) fn parse(header: Header, body: &'a [u8]) -> Result<Self, RtcpError> {
        let n = usize::from(header.count) * 4;
        let ssrcs = body.get(..n).ok_or(RtcpError::BodyTooShort)?;
        let reason = u8_at(body, n).and_then(|len| body.get(n + 1..n + 1 + usize::from(len)));
        Ok(Bye { header, ssrcs, reason })
    }

    pub fn ssrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        self.ssrcs.chunks_exact(4).filter_map(|c| u32_at(c, 0).map(Ssrc))
    }
}

/// Appends a BYE for up to 31 sources (the source count is 5 bits; further
/// sources are left out) with an optional reason, truncated to 255 bytes.
pub fn write_bye(out: &mut Vec<u8>, ssrcs: &[Ssrc], reason: Option<&[u8]>) {
    let ssrcs = &ssrcs[..ssrcs.len().min(31)];
    let at = start_packet(out, ssrcs.len() as u8, PT_BYE);
    for s in ssrcs {
        out.extend_from_slice(&s.0.to_be_bytes());
    }
    if let Some(reason) = reason {
        let reason = &reason[..reason.len().min(255)];
        out.push(reason.len() as u8);
        out.extend_from_slice(reason);
        pad_to_word(out, at);
    }
    finish_packet(out, at);
}

#[cfg(test)]
mod tests {
    use super::super::{walk, RtcpPacket};
    use super::*;

    #[rustfmt::skip]
    const BYE_WITH_REASON: &[u8] = &[
        0x82, 0xcb, 0x00, 0x05, // V=2 SC=2, PT=203, 5 words
        0x11, 0x22, 0x33, 0x44, // SSRC/CSRC 1
        0x55, 0x66, 0x77, 0x88, // SSRC/CSRC 2
        0x08, b's', b'h', b'u', b't', b'd', b'o', b'w', b'n',
        0x00, 0x00, 0x00,       // pad to a 32-bit boundary
    ];

    fn parse(d: &[u8]) -> Bye<'_> {
        let Some(Ok(RtcpPacket::Bye(bye))) = walk(d).next() else {
            panic!("not BYE")
        };
        bye
    }

    #[test]
    fn writes_the_fixture() {
        let mut out = Vec::new();
        write_bye(&mut out, &[Ssrc(0x1122_3344), Ssrc(0x5566_7788)], Some(b"shutdown"));
        assert_eq!(out, BYE_WITH_REASON);
        let bye = parse(&out);
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), [Ssrc(0x1122_3344), Ssrc(0x5566_7788)]);
        assert_eq!(bye.reason, Some(&b"shutdown"[..]));
    }

    #[test]
    fn without_reason() {
        let mut out = Vec::new();
        write_bye(&mut out, &[Ssrc(7)], None);
        assert_eq!(out, [0x81, PT_BYE, 0, 1, 0, 0, 0, 7]);
        assert_eq!(parse(&out).reason, None);
    }

    #[test]
    fn count_beyond_the_body_is_an_error() {
        let p = [0x82, PT_BYE, 0, 1, 0, 0, 0, 7];
        assert_eq!(walk(&p).next().unwrap().unwrap_err(), RtcpError::BodyTooShort);
    }
}
