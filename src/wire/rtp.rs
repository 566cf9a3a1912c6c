//! Zero-copy RTP header view (RFC 3550 §5.1, header extensions RFC 8285),
//! and [`write_rtp`], which builds a packet from [`RtpHeader`] fields.
//!
//! The hot path reads only the fixed header and the lengths needed to find
//! the payload; nothing is copied or allocated. The `rtp` crate's parser
//! costs 20–50× more per packet (see `benches/packet_path.rs`).

use super::bytes::{u16_at, u32_at, u8_at};
use super::types::{RtpTs, SeqNo, Ssrc};
use thiserror::Error;

/// Fixed RTP header length (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Error)]
pub enum RtpError {
    #[error("shorter than the 12-byte fixed header")]
    TooShort,
    #[error("version is not 2")]
    BadVersion,
    #[error("CSRC list runs past the end")]
    CsrcOverrun,
    #[error("header extension runs past the end")]
    ExtensionOverrun,
    #[error("padding count is zero or larger than the payload")]
    BadPadding,
}

impl RtpError {
    /// Stable label for counters.
    pub fn reason(self) -> &'static str {
        match self {
            RtpError::TooShort => "rtp_too_short",
            RtpError::BadVersion => "rtp_bad_version",
            RtpError::CsrcOverrun => "rtp_csrc_overrun",
            RtpError::ExtensionOverrun => "rtp_extension_overrun",
            RtpError::BadPadding => "rtp_bad_padding",
        }
    }
}

/// A validated RTP packet borrowed from the datagram.
#[derive(Clone, Copy, Debug)]
pub struct RtpView<'a> {
    buf: &'a [u8],
    header_len: usize,
    padding_len: usize,
    /// Start of the extension header (the 16-bit profile), when X=1.
    ext_at: Option<usize>,
}

impl<'a> RtpView<'a> {
    /// Validates the header and the lengths it declares.
    ///
    /// ```text
    ///  0                   1                   2                   3
    ///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    /// |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    /// |                           timestamp                           |
    /// |           synchronization source (SSRC) identifier            |
    /// |            contributing source (CSRC) identifiers  (CC × 4)   |
    /// |      defined by profile       |        length (32-bit words)  |  X=1
    /// |                        header extension                       |
    /// ```
    #[inline]
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let mut view = Self::parse_header(buf)?;
        if view.byte(0) & 0x20 != 0 {
            // RFC 3550 §5.1: the last octet counts the padding, itself included.
            let padding_len = usize::from(*buf.last().ok_or(RtpError::TooShort)?);
            if padding_len == 0 || view.header_len + padding_len > buf.len() {
                return Err(RtpError::BadPadding);
            }
            view.padding_len = padding_len;
        }
        Ok(view)
    }

    /// An SRTP packet (RFC 3711 §3.1): the header is in clear, but the
    /// padding and its count octet are inside the encrypted portion, and
    /// the packet ends with the authentication tag (`trailer` bytes, MKI
    /// included, when the suite is known; 0 when not). The P bit is
    /// therefore never checked against the last octet, which is tag: a
    /// padding-only probe (libwebrtc's bandwidth probes over SRTP) parses.
    /// [`Self::payload_len`] is what follows the header, tag excluded;
    /// encrypted padding cannot be told apart from payload.
    #[inline]
    pub fn parse_srtp(buf: &'a [u8], trailer: usize) -> Result<Self, RtpError> {
        let mut view = Self::parse_header(buf)?;
        // A packet shorter than its tag is the receiver's to reject; the
        // proxy forwards it and counts no payload.
        view.padding_len = trailer.min(buf.len() - view.header_len);
        Ok(view)
    }

    #[inline]
    fn parse_header(buf: &'a [u8]) -> Result<Self, RtpError> {
        let Some(b0) = u8_at(buf, 0) else {
            return Err(RtpError::TooShort);
        };
        if buf.len() < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort);
        }
        if b0 >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let csrc_count = usize::from(b0 & 0x0f);
        let mut header_len = FIXED_HEADER_LEN + 4 * csrc_count;
        if header_len > buf.len() {
            return Err(RtpError::CsrcOverrun);
        }
        let mut ext_at = None;
        if b0 & 0x10 != 0 {
            let words = u16_at(buf, header_len + 2).ok_or(RtpError::ExtensionOverrun)?;
            ext_at = Some(header_len);
            header_len += 4 + 4 * usize::from(words);
            if header_len > buf.len() {
                return Err(RtpError::ExtensionOverrun);
            }
        }
        Ok(RtpView {
            buf,
            header_len,
            padding_len: 0,
            ext_at,
        })
    }

    #[inline]
    fn byte(&self, at: usize) -> u8 {
        u8_at(self.buf, at).unwrap_or(0)
    }

    pub fn has_padding(&self) -> bool {
        self.byte(0) & 0x20 != 0
    }

    pub fn csrc_count(&self) -> usize {
        usize::from(self.byte(0) & 0x0f)
    }

    #[inline]
    pub fn marker(&self) -> bool {
        self.byte(1) & 0x80 != 0
    }

    #[inline]
    pub fn payload_type(&self) -> u8 {
        self.byte(1) & 0x7f
    }

    #[inline]
    pub fn seq(&self) -> SeqNo {
        SeqNo(u16_at(self.buf, 2).unwrap_or(0))
    }

    #[inline]
    pub fn timestamp(&self) -> RtpTs {
        RtpTs(u32_at(self.buf, 4).unwrap_or(0))
    }

    #[inline]
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(u32_at(self.buf, 8).unwrap_or(0))
    }

    pub fn csrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        let buf = self.buf;
        (0..self.csrc_count()).filter_map(move |i| u32_at(buf, FIXED_HEADER_LEN + 4 * i).map(Ssrc))
    }

    /// Header length including CSRCs and extension: what W3C calls header bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Payload length, padding excluded.
    #[inline]
    pub fn payload_len(&self) -> usize {
        self.buf.len() - self.header_len - self.padding_len
    }

    /// Bytes after the payload: the padding (RFC 3550), or for a view
    /// from [`Self::parse_srtp`] the authentication tag.
    pub fn padding_len(&self) -> usize {
        self.padding_len
    }

    pub fn payload(&self) -> &'a [u8] {
        self.buf
            .get(self.header_len..self.buf.len() - self.padding_len)
            .unwrap_or(&[])
    }

    /// The extension's 16-bit profile ("defined by profile") when X=1.
    pub fn extension_profile(&self) -> Option<u16> {
        u16_at(self.buf, self.ext_at?)
    }

    /// RFC 8285 elements of a one-byte (0xBEDE) or two-byte (0x100x)
    /// extension. Other profiles yield nothing. Malformed elements end the
    /// iteration; they never panic or read past the extension.
    pub fn extensions(&self) -> ExtensionIter<'a> {
        let (body, form) = match self.ext_at {
            Some(at) => {
                let body = self.buf.get(at + 4..self.header_len).unwrap_or(&[]);
                match u16_at(self.buf, at) {
                    Some(0xBEDE) => (body, ExtForm::OneByte),
                    Some(p) if p & 0xfff0 == 0x1000 => (body, ExtForm::TwoByte),
                    _ => (&[][..], ExtForm::OneByte),
                }
            }
            None => (&[][..], ExtForm::OneByte),
        };
        ExtensionIter { body, at: 0, form }
    }
}

#[derive(Clone, Copy, Debug)]
enum ExtForm {
    OneByte,
    TwoByte,
}

/// One RFC 8285 header extension element.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Extension<'a> {
    pub id: u8,
    pub data: &'a [u8],
}

pub struct ExtensionIter<'a> {
    body: &'a [u8],
    at: usize,
    form: ExtForm,
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = Extension<'a>;

    fn next(&mut self) -> Option<Extension<'a>> {
        loop {
            let b = u8_at(self.body, self.at)?;
            match self.form {
                // RFC 8285 §4.2: ID (4 bits) | L (4 bits), L+1 data bytes;
                // ID 0 is padding (one byte); ID 15 ends processing.
                ExtForm::OneByte => {
                    let id = b >> 4;
                    if id == 0 {
                        self.at += 1;
                        continue;
                    }
                    if id == 15 {
                        return None;
                    }
                    let len = usize::from(b & 0x0f) + 1;
                    let data = self.body.get(self.at + 1..self.at + 1 + len)?;
                    self.at += 1 + len;
                    return Some(Extension { id, data });
                }
                // RFC 8285 §4.3: ID (8 bits), length (8 bits); ID 0 is padding.
                ExtForm::TwoByte => {
                    if b == 0 {
                        self.at += 1;
                        continue;
                    }
                    let len = usize::from(u8_at(self.body, self.at + 1)?);
                    let data = self.body.get(self.at + 2..self.at + 2 + len)?;
                    self.at += 2 + len;
                    return Some(Extension { id: b, data });
                }
            }
        }
    }
}

// ---------------------------------------------------------------- writer

/// Most CSRCs one header carries (the CC field is 4 bits).
pub const MAX_CSRCS: usize = 15;
/// Profile of the one-byte extension form (RFC 8285 §4.2).
pub const EXT_PROFILE_ONE_BYTE: u16 = 0xBEDE;
/// Profile of the two-byte extension form with appbits 0 (RFC 8285 §4.3).
pub const EXT_PROFILE_TWO_BYTE: u16 = 0x1000;

/// The header fields [`write_rtp`] writes (RFC 3550 §5.1). Version is
/// always 2; X and CC follow from `extensions` and `csrcs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RtpHeader<'a> {
    pub marker: bool,
    /// 7 bits; the high bit is ignored.
    pub payload_type: u8,
    pub seq: SeqNo,
    pub timestamp: RtpTs,
    pub ssrc: Ssrc,
    /// Contributing sources; at most [`MAX_CSRCS`] are written.
    pub csrcs: &'a [Ssrc],
    /// RFC 8285 elements, in order. Written in the one-byte form (profile
    /// 0xBEDE, §4.2) when every element fits it (ID 1–14, 1–16 data bytes),
    /// otherwise in the two-byte form (profile 0x1000, §4.3: ID 1–255,
    /// 0–255 data bytes). Elements that fit neither (ID 0, more than 255
    /// bytes) are left out. Empty: no extension, X=0.
    pub extensions: &'a [Extension<'a>],
    /// Bytes of padding after the payload, the count octet included
    /// (RFC 3550 §5.1): 0 writes none and leaves P=0; otherwise P=1 and
    /// `padding − 1` zero bytes are followed by the count.
    pub padding: u8,
}

/// Appends an RTP packet: the header from `header`, then `payload`, then
/// any padding. Never panics; what cannot be represented is left out as
/// documented on [`RtpHeader`].
///
/// ```text
/// |V=2|P|X|  CC   |M|     PT      |       sequence number         |
/// |                           timestamp                           |
/// |                             SSRC                              |
/// |                     CSRC list (CC × 4 bytes)                  |
/// |      0xBEDE or 0x1000         |     length (32-bit words)     |  X=1
/// |  elements …, zero-padded to a 32-bit boundary                 |
/// |                           payload …                           |
/// |              padding …        |         padding count         |  P=1
/// ```
pub fn write_rtp(out: &mut Vec<u8>, header: &RtpHeader<'_>, payload: &[u8]) {
    let csrcs = &header.csrcs[..header.csrcs.len().min(MAX_CSRCS)];
    let one_byte = header
        .extensions
        .iter()
        .all(|e| (1..=14).contains(&e.id) && (1..=16).contains(&e.data.len()));
    let fits = |e: &&Extension<'_>| {
        if one_byte {
            true
        } else {
            e.id != 0 && e.data.len() <= 255
        }
    };
    let has_ext = header.extensions.iter().any(|e| fits(&e));
    let b0 = 0x80 | u8::from(header.padding > 0) << 5 | u8::from(has_ext) << 4 | csrcs.len() as u8;
    let b1 = u8::from(header.marker) << 7 | (header.payload_type & 0x7f);
    out.extend_from_slice(&[b0, b1]);
    out.extend_from_slice(&header.seq.0.to_be_bytes());
    out.extend_from_slice(&header.timestamp.0.to_be_bytes());
    out.extend_from_slice(&header.ssrc.0.to_be_bytes());
    for c in csrcs {
        out.extend_from_slice(&c.0.to_be_bytes());
    }
    if has_ext {
        let at = out.len();
        let profile = if one_byte {
            EXT_PROFILE_ONE_BYTE
        } else {
            EXT_PROFILE_TWO_BYTE
        };
        out.extend_from_slice(&profile.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        for e in header.extensions.iter().filter(fits) {
            if one_byte {
                // RFC 8285 §4.2: ID (4 bits) | L (4 bits) = length − 1.
                out.push(e.id << 4 | (e.data.len() - 1) as u8);
            } else {
                // RFC 8285 §4.3: ID (8 bits), length (8 bits).
                out.extend_from_slice(&[e.id, e.data.len() as u8]);
            }
            out.extend_from_slice(e.data);
        }
        let body = out.len() - at - 4;
        out.resize(at + 4 + body.next_multiple_of(4), 0);
        let words = u16::try_from(body.div_ceil(4)).unwrap_or(u16::MAX);
        out[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
    }
    out.extend_from_slice(payload);
    if header.padding > 0 {
        out.resize(out.len() + usize::from(header.padding) - 1, 0);
        out.push(header.padding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const WITH_EXT: [u8; 32] = [
        0xb1,                   // V=2 P=1 X=1 CC=1
        0xe0,                   // M=1 PT=96
        0x12, 0x34,             // sequence number 0x1234
        0x00, 0x01, 0x00, 0x00, // timestamp 65536
        0xde, 0xad, 0xbe, 0xef, // SSRC
        0x01, 0x02, 0x03, 0x04, // CSRC[0]
        0xbe, 0xde, 0x00, 0x02, // one-byte extension profile, 2 words
        0x10, 0xaa,             // id 1, len 1: 0xaa
        0x00,                   // padding element
        0x21, 0xbb, 0xcc,       // id 2, len 2: 0xbb 0xcc
        0x00, 0x00,             // extension padding to the word boundary
        0x99, 0x98,             // payload
        0x00, 0x02,             // RTP padding: 2 bytes (count included)
    ];

    #[test]
    fn parses_every_field() {
        let v = RtpView::parse(&WITH_EXT).unwrap();
        assert!(v.marker());
        assert_eq!(v.payload_type(), 96);
        assert_eq!(v.seq(), SeqNo(0x1234));
        assert_eq!(v.timestamp(), RtpTs(65536));
        assert_eq!(v.ssrc(), Ssrc(0xdeadbeef));
        assert_eq!(v.csrcs().collect::<Vec<_>>(), vec![Ssrc(0x01020304)]);
        assert_eq!(v.header_len(), 28);
        assert_eq!(v.padding_len(), 2);
        assert_eq!(v.payload(), &[0x99, 0x98]);
        assert_eq!(v.payload_len(), 2);
        assert_eq!(v.extension_profile(), Some(0xbede));
        let ext: Vec<_> = v.extensions().collect();
        assert_eq!(
            ext,
            vec![
                Extension { id: 1, data: &[0xaa] },
                Extension {
                    id: 2,
                    data: &[0xbb, 0xcc]
                }
            ]
        );
    }

    #[test]
    fn two_byte_extensions() {
        #[rustfmt::skip]
        let p = [
            0x90, 0x6f, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1,
            0x10, 0x00, 0x00, 0x01, // two-byte profile 0x1000, 1 word
            0x05, 0x01, 0x42, 0x00, // id 5, len 1, 0x42, padding
        ];
        let v = RtpView::parse(&p).unwrap();
        assert_eq!(
            v.extensions().collect::<Vec<_>>(),
            vec![Extension { id: 5, data: &[0x42] }]
        );
        assert_eq!(v.payload_len(), 0);
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(RtpView::parse(&[]).unwrap_err(), RtpError::TooShort);
        assert_eq!(RtpView::parse(&WITH_EXT[..11]).unwrap_err(), RtpError::TooShort);
        let mut v1 = WITH_EXT;
        v1[0] = 0x71;
        assert_eq!(RtpView::parse(&v1).unwrap_err(), RtpError::BadVersion);
        assert_eq!(RtpView::parse(&WITH_EXT[..14]).unwrap_err(), RtpError::CsrcOverrun);
        assert_eq!(RtpView::parse(&WITH_EXT[..18]).unwrap_err(), RtpError::ExtensionOverrun);
        assert_eq!(RtpView::parse(&WITH_EXT[..25]).unwrap_err(), RtpError::ExtensionOverrun);
        let mut pad0 = WITH_EXT;
        pad0[31] = 0;
        assert_eq!(RtpView::parse(&pad0).unwrap_err(), RtpError::BadPadding);
        let mut pad_big = WITH_EXT;
        pad_big[31] = 5;
        assert_eq!(RtpView::parse(&pad_big).unwrap_err(), RtpError::BadPadding);
        // Padding that eats the whole payload exactly is valid.
        pad_big[31] = 4;
        assert_eq!(RtpView::parse(&pad_big).unwrap().payload_len(), 0);
    }

    #[test]
    fn srtp_padding_is_never_read_and_the_tag_is_not_payload() {
        // P = 1 and a last octet (tag) of 0, then one larger than the packet:
        // both plain-RTP errors, both fine as SRTP.
        for last in [0u8, 200] {
            let mut p = WITH_EXT;
            p[31] = last;
            let v = RtpView::parse_srtp(&p, 2).unwrap();
            assert!(v.has_padding());
            assert_eq!((v.header_len(), v.payload_len(), v.padding_len()), (28, 2, 2));
            assert_eq!(v.seq(), RtpView::parse_srtp(&p, 0).unwrap().seq());
            assert_eq!(RtpView::parse_srtp(&p, 0).unwrap().payload_len(), 4);
        }
        // A tag longer than what follows the header leaves no payload.
        assert_eq!(RtpView::parse_srtp(&WITH_EXT, 10).unwrap().payload_len(), 0);
        // The header is still validated.
        assert_eq!(
            RtpView::parse_srtp(&WITH_EXT[..18], 0).unwrap_err(),
            RtpError::ExtensionOverrun
        );
    }

    /// The fixture's marker, payload type, sequence number, timestamp and
    /// SSRC, with these CSRCs, extension elements and padding.
    fn fixture_header<'a>(csrcs: &'a [Ssrc], extensions: &'a [Extension<'a>], padding: u8) -> RtpHeader<'a> {
        RtpHeader {
            marker: true,
            payload_type: 96,
            seq: SeqNo(0x1234),
            timestamp: RtpTs(65_536),
            ssrc: Ssrc(0xdead_beef),
            csrcs,
            extensions,
            padding,
        }
    }

    #[test]
    fn writer_round_trips_every_field() {
        let csrcs = [Ssrc(0x0102_0304), Ssrc(5)];
        let ext = [
            Extension { id: 1, data: &[0xaa] },
            Extension {
                id: 14,
                data: &[0xbb; 16],
            },
        ];
        let h = fixture_header(&csrcs, &ext, 3);
        let mut out = vec![0xee]; // appends after what is there
        write_rtp(&mut out, &h, &[0x99, 0x98]);
        let v = RtpView::parse(&out[1..]).unwrap();
        assert!(v.marker() && v.has_padding());
        assert_eq!(v.payload_type(), 96);
        assert_eq!(
            (v.seq(), v.timestamp(), v.ssrc()),
            (SeqNo(0x1234), RtpTs(65_536), Ssrc(0xdead_beef))
        );
        assert_eq!(v.csrcs().collect::<Vec<_>>(), csrcs);
        assert_eq!(v.extension_profile(), Some(EXT_PROFILE_ONE_BYTE));
        assert_eq!(v.extensions().collect::<Vec<_>>(), ext);
        // 12 + 8 CSRC + 4 + (2 + 17 → 20) extension bytes.
        assert_eq!(v.header_len(), 44);
        assert_eq!(v.payload(), &[0x99, 0x98]);
        assert_eq!(v.padding_len(), 3);
        assert_eq!(&out[out.len() - 3..], &[0, 0, 3]);
    }

    #[test]
    fn writer_matches_the_fixture_layout() {
        // The fixture's extension has a padding element between its two
        // elements; the writer packs them, so compare all but that.
        let csrcs = [Ssrc(0x0102_0304)];
        let ext = [
            Extension { id: 1, data: &[0xaa] },
            Extension {
                id: 2,
                data: &[0xbb, 0xcc],
            },
        ];
        let h = fixture_header(&csrcs, &ext, 2);
        let mut out = Vec::new();
        write_rtp(&mut out, &h, &[0x99, 0x98]);
        #[rustfmt::skip]
        let expect = [
            0xb1, 0xe0, 0x12, 0x34, 0x00, 0x01, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef,
            0x01, 0x02, 0x03, 0x04,
            0xbe, 0xde, 0x00, 0x02,
            0x10, 0xaa, 0x21, 0xbb, 0xcc, 0x00, 0x00, 0x00,
            0x99, 0x98, 0x00, 0x02,
        ];
        assert_eq!(out, expect);
    }

    #[test]
    fn writer_minimal_and_two_byte_form() {
        let mut out = Vec::new();
        let h = RtpHeader {
            payload_type: 0xff,
            seq: SeqNo(7),
            ssrc: Ssrc(9),
            ..RtpHeader::default()
        };
        write_rtp(&mut out, &h, &[1; 160]);
        assert_eq!(&out[..4], &[0x80, 0x7f, 0, 7]);
        let v = RtpView::parse(&out).unwrap();
        assert_eq!(
            (v.header_len(), v.payload_len(), v.extension_profile()),
            (12, 160, None)
        );

        // An empty element and an ID above 14 need the two-byte form; ID 0
        // fits no form and is left out.
        let ext = [
            Extension { id: 0, data: &[1] },
            Extension { id: 5, data: &[] },
            Extension {
                id: 200,
                data: &[0x42; 20],
            },
        ];
        out.clear();
        write_rtp(&mut out, &RtpHeader { extensions: &ext, ..h }, &[]);
        let v = RtpView::parse(&out).unwrap();
        assert_eq!(v.extension_profile(), Some(EXT_PROFILE_TWO_BYTE));
        assert_eq!(v.extensions().collect::<Vec<_>>(), ext[1..]);
        assert_eq!(v.payload_len(), 0);

        // Only unwritable elements: no extension at all; CSRCs capped at 15.
        out.clear();
        let many = [Ssrc(1); 20];
        write_rtp(
            &mut out,
            &RtpHeader {
                extensions: &ext[..1],
                csrcs: &many,
                ..h
            },
            &[],
        );
        let v = RtpView::parse(&out).unwrap();
        assert_eq!((v.extension_profile(), v.csrc_count()), (None, MAX_CSRCS));
    }
}
