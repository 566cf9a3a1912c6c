//! Source Description (RFC 3550 §6.5).

use super::{finish_packet, pad_to_word, start_packet, Header, PT_SDES};
use crate::wire::bytes::{take, u32_at, u8_at};
use crate::wire::types::Ssrc;

/// CNAME item type (RFC 3550 §6.5.1).
pub const SDES_CNAME: u8 = 1;

/// SDES (RFC 3550 §6.5). Chunks are walked lazily.
///
/// ```text
/// |V=2|P|    SC   |  PT=SDES=202  |             length            |
/// |                          SSRC/CSRC_1                          |   chunk 1
/// |  item type    |     length    | text (length octets) …        |
/// | … items, then a null octet, zero-padded to a 32-bit boundary  |
/// |                          SSRC/CSRC_2 …                        |   chunk 2
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Sdes<'a> {
    pub header: Header,
    body: &'a [u8],
}

/// One SDES item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdesItem<'a> {
    pub kind: u8,
    pub text: &'a [u8],
}

impl<'a> Sdes<'a> {
    /// Nothing to check up front: chunks are validated as they are walked.
    pub(super) fn parse(header: Header, body: &'a [u8]) -> Self {
        Sdes { header, body }
    }

    /// Chunks as (SSRC, items). A malformed chunk ends the walk.
    pub fn chunks(&self) -> SdesChunks<'a> {
        SdesChunks {
            body: self.body,
            remaining: self.header.count,
        }
    }
}

pub struct SdesChunks<'a> {
    body: &'a [u8],
    remaining: u8,
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = (Ssrc, SdesItems<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let ssrc = Ssrc(u32_at(self.body, 0)?);
        // Items run to a null item type; the chunk then pads to a word.
        let mut at = 4;
        loop {
            let kind = u8_at(self.body, at)?;
            if kind == 0 {
                break;
            }
            let len = usize::from(u8_at(self.body, at + 1)?);
            at += 2 + len;
        }
        let items = SdesItems {
            raw: self.body.get(4..at)?,
        };
        let end = (at + 1).next_multiple_of(4);
        self.body = self.body.get(end..).unwrap_or(&[]);
        Some((ssrc, items))
    }
}

pub struct SdesItems<'a> {
    raw: &'a [u8],
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = SdesItem<'a>;
    fn next(&mut self) -> Option<SdesItem<'a>> {
        let kind = u8_at(self.raw, 0)?;
        let len = usize::from(u8_at(self.raw, 1)?);
        let text = take(&mut self.raw, 2, len)?;
        Some(SdesItem { kind, text })
    }
}

/// Appends an SDES packet with one chunk carrying a CNAME (RFC 3550 §6.5.1).
/// A CNAME longer than 255 bytes is truncated to fit the length octet.
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: Ssrc, cname: &[u8]) {
    let cname = &cname[..cname.len().min(255)];
    let at = start_packet(out, 1, PT_SDES);
    out.extend_from_slice(&ssrc.0.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    // Null item terminates the list, then pad the chunk to a word boundary.
    out.push(0);
    pad_to_word(out, at);
    finish_packet(out, at);
}

#[cfg(test)]
mod tests {
    use super::super::{walk, RtcpPacket};
    use super::*;

    /// A chunk as (SSRC, [(item type, text)]).
    type Chunk = (Ssrc, Vec<(u8, Vec<u8>)>);

    fn chunks(d: &[u8]) -> Vec<Chunk> {
        let Some(Ok(RtcpPacket::Sdes(sdes))) = walk(d).next() else {
            panic!("not SDES")
        };
        sdes.chunks()
            .map(|(s, items)| (s, items.map(|i| (i.kind, i.text.to_vec())).collect()))
            .collect()
    }

    #[test]
    fn cname_round_trip_at_every_padding() {
        for n in 0..8 {
            let cname = vec![b'a'; n];
            let mut out = Vec::new();
            write_sdes_cname(&mut out, Ssrc(5), &cname);
            assert_eq!(out.len() % 4, 0);
            // Header, SSRC, type, length, text, null: padded up to a word.
            assert_eq!(out.len(), (4 + 4 + 2 + n + 1).next_multiple_of(4));
            assert_eq!(chunks(&out), vec![(Ssrc(5), vec![(SDES_CNAME, cname)])]);
        }
    }

    #[test]
    fn long_cname_is_truncated() {
        let mut out = Vec::new();
        write_sdes_cname(&mut out, Ssrc(5), &[b'x'; 300]);
        assert_eq!(chunks(&out)[0].1[0].1.len(), 255);
    }

    #[test]
    fn chunk_without_terminator_ends_the_walk() {
        // SC = 1, one chunk whose item runs to the end with no null octet.
        let p = [0x81, PT_SDES, 0, 2, 0, 0, 0, 5, SDES_CNAME, 2, b'a', b'b'];
        assert!(chunks(&p).is_empty());
    }
}
