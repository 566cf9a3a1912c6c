//! What a session's SDP says about its RTP streams that the packets do not:
//! which payload types are RTX (RFC 4588 `rtx/<rate>` with `apt=`), and
//! which SSRC retransmits for which (`a=ssrc-group:FID primary rtx`,
//! RFC 5576 §4.2). With it the engine folds an RTX stream into its primary
//! stream, as W3C webrtc-stats does (`rtxSsrc`,
//! `retransmittedPacketsReceived`), instead of reporting it as a stream of
//! its own with jitter computed on retransmitted timestamps.
//!
//! It also names each payload type (`m=` line kind, `a=rtpmap` encoding,
//! clock rate and channels): the W3C `kind`, codec `mimeType` and the
//! clock a stream's jitter runs on when the relay's table lacks it.
//!
//! Only these few attributes are read; everything else in the SDP is
//! ignored. Bounded: an attacker-sized SDP yields at most
//! [`MAX_ENTRIES`] entries of each kind.

use crate::stats::clock_rate::MediaKind;
use crate::wire::Ssrc;

/// What an SDP says a payload type is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadInfo {
    pub payload_type: u8,
    /// From the `m=` line it is listed under (`audio` or `video`).
    pub kind: Option<MediaKind>,
    /// `a=rtpmap` encoding name (at most 32 bytes), e.g. `opus`, `VP8`.
    pub encoding: String,
    pub clock_rate: u32,
    /// `a=rtpmap`'s third field (audio channels).
    pub channels: Option<u8>,
}

impl PayloadInfo {
    /// W3C codec `mimeType`: `audio/opus`, `video/VP8`.
    pub fn mime_type(&self) -> Option<String> {
        Some(format!("{}/{}", self.kind?.name(), self.encoding))
    }
}

/// Entries kept of each kind (payload types, FID groups).
pub const MAX_ENTRIES: usize = 64;

/// RTX payload types and FID groups from one or more SDP documents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaMap {
    /// (RTX payload type, the payload type it retransmits: `apt`).
    rtx_payload_types: Vec<(u8, u8)>,
    /// (primary SSRC, RTX SSRC).
    fid: Vec<(Ssrc, Ssrc)>,
    /// Payload types named by `a=rtpmap` (the first document naming one wins).
    payload_types: Vec<PayloadInfo>,
    /// `a=ssrc-group:FEC-FR primary fec` (RFC 5956 §4.3, FlexFEC).
    fec_fr: Vec<(Ssrc, Ssrc)>,
    /// `red/…` payload types, kept apart: every RTP packet of a session
    /// with SDP asks about them ([`MediaMap::is_red`]).
    red: Vec<u8>,
}

impl MediaMap {
    /// Reads `a=rtpmap:<pt> rtx/<rate>`, `a=fmtp:<pt> apt=<pt>` and
    /// `a=ssrc-group:FID <primary> <rtx>` lines of every document given
    /// (an offer and its answer name different SSRCs; both count).
    ///
    /// ```
    /// use rtp_middlebox::engine::media::MediaMap;
    /// use rtp_middlebox::wire::Ssrc;
    /// let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
    ///            a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
    ///            a=ssrc-group:FID 1111 2222\r\n";
    /// let map = MediaMap::from_sdp([sdp]);
    /// assert_eq!(map.apt(97), Some(96));
    /// assert_eq!(map.apt(96), None);
    /// assert_eq!(map.primary_of(Ssrc(2222)), Some(Ssrc(1111)));
    /// ```
    pub fn from_sdp<'a>(documents: impl IntoIterator<Item = &'a str>) -> Self {
        let mut map = MediaMap::default();
        for sdp in documents {
            let mut rtx_pts: Vec<u8> = Vec::new();
            let mut apts: Vec<(u8, u8)> = Vec::new();
            let mut kind = None;
            for line in sdp.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("m=") {
                    kind = match rest.split_whitespace().next() {
                        Some("audio") => Some(MediaKind::Audio),
                        Some("video") => Some(MediaKind::Video),
                        _ => None,
                    };
                } else if let Some(rest) = line.strip_prefix("a=rtpmap:") {
                    let mut it = rest.split_whitespace();
                    let (Some(pt), Some(enc)) = (it.next().and_then(|p| p.parse::<u8>().ok()), it.next()) else {
                        continue;
                    };
                    if enc.split('/').next().is_some_and(|n| n.eq_ignore_ascii_case("rtx")) {
                        rtx_pts.push(pt);
                    }
                    // RFC 4566 §6: <encoding name>/<clock rate>[/<channels>].
                    let mut parts = enc.split('/');
                    let (Some(name), Some(rate)) = (parts.next(), parts.next().and_then(|r| r.parse::<u32>().ok()))
                    else {
                        continue;
                    };
                    if pt < 128
                        && rate > 0
                        && name.len() <= 32
                        && !map.payload_types.iter().any(|p| p.payload_type == pt)
                    {
                        let info = PayloadInfo {
                            payload_type: pt,
                            kind,
                            encoding: name.to_string(),
                            clock_rate: rate,
                            channels: parts.next().and_then(|c| c.parse().ok()),
                        };
                        push_bounded(&mut map.payload_types, info);
                    }
                } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
                    let mut it = rest.splitn(2, char::is_whitespace);
                    let Some(pt) = it.next().and_then(|p| p.parse::<u8>().ok()) else {
                        continue;
                    };
                    let params = it.next().unwrap_or("");
                    if let Some(apt) = params
                        .split(';')
                        .filter_map(|kv| kv.trim().strip_prefix("apt="))
                        .find_map(|v| v.trim().parse::<u8>().ok())
                    {
                        apts.push((pt, apt));
                    }
                } else if let Some(rest) = line.strip_prefix("a=ssrc-group:FEC-FR ") {
                    let ssrcs: Vec<u32> = rest.split_whitespace().filter_map(|s| s.parse().ok()).collect();
                    if let [primary, fec] = ssrcs[..] {
                        push_bounded(&mut map.fec_fr, (Ssrc(primary), Ssrc(fec)));
                    }
                } else if let Some(rest) = line.strip_prefix("a=ssrc-group:FID ") {
                    let ssrcs: Vec<u32> = rest.split_whitespace().filter_map(|s| s.parse().ok()).collect();
                    if let [primary, rtx] = ssrcs[..] {
                        push_bounded(&mut map.fid, (Ssrc(primary), Ssrc(rtx)));
                    }
                }
            }
            for p in &map.payload_types {
                if p.encoding.eq_ignore_ascii_case("red") && !map.red.contains(&p.payload_type) {
                    map.red.push(p.payload_type);
                }
            }
            for (pt, apt) in apts {
                if rtx_pts.contains(&pt) {
                    push_bounded(&mut map.rtx_payload_types, (pt, apt));
                }
            }
        }
        map
    }

    /// The payload type an RTX payload type retransmits, if it is one.
    pub fn apt(&self, payload_type: u8) -> Option<u8> {
        self.rtx_payload_types
            .iter()
            .find(|(pt, _)| *pt == payload_type)
            .map(|(_, apt)| *apt)
    }

    /// The primary SSRC an RTX SSRC belongs to (FID group).
    pub fn primary_of(&self, rtx: Ssrc) -> Option<Ssrc> {
        self.fid.iter().find(|(_, r)| *r == rtx).map(|(p, _)| *p)
    }

    /// What the SDP says about a payload type.
    pub fn payload(&self, payload_type: u8) -> Option<&PayloadInfo> {
        self.payload_types.iter().find(|p| p.payload_type == payload_type)
    }

    /// The `a=rtpmap` clock rate of a payload type.
    pub fn clock_rate(&self, payload_type: u8) -> Option<u32> {
        self.payload(payload_type).map(|p| p.clock_rate)
    }

    pub fn is_empty(&self) -> bool {
        self.rtx_payload_types.is_empty()
            && self.fid.is_empty()
            && self.payload_types.is_empty()
            && self.fec_fr.is_empty()
    }

    fn encoding_is(&self, payload_type: u8, names: &[&str]) -> bool {
        self.payload(payload_type)
            .is_some_and(|p| names.iter().any(|n| p.encoding.eq_ignore_ascii_case(n)))
    }

    /// `red/…` (RFC 2198): ULPFEC rides inside it on the media's SSRC.
    pub fn is_red(&self, payload_type: u8) -> bool {
        self.red.contains(&payload_type)
    }

    /// `ulpfec/…` (RFC 5109).
    pub fn is_ulpfec(&self, payload_type: u8) -> bool {
        self.encoding_is(payload_type, &["ulpfec"])
    }

    /// `flexfec-03/…` or `flexfec/…` (RFC 8627): FEC on an SSRC of its own.
    pub fn is_flexfec(&self, payload_type: u8) -> bool {
        self.encoding_is(payload_type, &["flexfec-03", "flexfec"])
    }

    /// The primary SSRC a FlexFEC SSRC protects (FEC-FR group).
    pub fn fec_primary_of(&self, fec: Ssrc) -> Option<Ssrc> {
        self.fec_fr.iter().find(|(_, f)| *f == fec).map(|(p, _)| *p)
    }
}

fn push_bounded<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if v.len() < MAX_ENTRIES && !v.contains(&item) {
        v.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromium_offer_and_janus_answer() {
        // Trimmed from a Chromium 156 offer and a Janus 1.1.2 answer.
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r\n\
            a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
            a=rtpmap:98 VP9/90000\r\na=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n\
            a=ssrc-group:FID 3735928559 4277009102\r\n";
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
            a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
            a=ssrc-group:FID 1000 1001\r\n";
        let map = MediaMap::from_sdp([offer, answer]);
        assert_eq!((map.apt(97), map.apt(99), map.apt(96)), (Some(96), Some(98), None));
        assert_eq!(map.primary_of(Ssrc(4_277_009_102)), Some(Ssrc(3_735_928_559)));
        assert_eq!(map.primary_of(Ssrc(1001)), Some(Ssrc(1000)));
        assert_eq!(map.primary_of(Ssrc(1000)), None);
        let vp8 = map.payload(96).unwrap();
        assert_eq!(
            (vp8.kind, vp8.clock_rate, vp8.mime_type().as_deref()),
            (Some(MediaKind::Video), 90_000, Some("video/VP8"))
        );
    }

    #[test]
    fn payload_types_take_their_m_line_kind() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\nm=application 9 x 100\r\n\
            a=rtpmap:100 foo/1000\r\na=rtpmap:101 bad\r\na=rtpmap:102 bad/0\r\n";
        let map = MediaMap::from_sdp([sdp]);
        let opus = map.payload(111).unwrap();
        assert_eq!(
            (opus.mime_type().as_deref(), opus.channels),
            (Some("audio/opus"), Some(2))
        );
        assert_eq!(map.clock_rate(96), Some(90_000));
        assert_eq!(map.payload(100).unwrap().mime_type(), None, "not audio or video");
        assert_eq!((map.payload(101), map.payload(102), map.payload(0)), (None, None, None));
    }

    #[test]
    fn an_apt_without_rtx_rtpmap_and_junk_are_ignored() {
        let sdp = "a=fmtp:100 apt=96\r\na=rtpmap:x rtx/90000\r\na=ssrc-group:FID 1\r\n\
            a=ssrc-group:FID a b\r\na=fmtp:97 profile-id=0;apt=300\r\n";
        assert!(MediaMap::from_sdp([sdp]).is_empty());
    }

    #[test]
    fn entries_are_bounded() {
        let mut sdp = String::new();
        for i in 0..1000u32 {
            sdp.push_str(&format!("a=ssrc-group:FID {i} {}\r\n", i + 100_000));
        }
        assert_eq!(MediaMap::from_sdp([sdp.as_str()]).fid.len(), MAX_ENTRIES);
    }
}
