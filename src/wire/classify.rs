//! Demultiplexing one UDP port: first byte per RFC 7983 §7 (as updated by
//! RFC 9443), then RTP vs RTCP per RFC 5761 §4.

use serde::Serialize;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketKind {
    Stun,
    Zrtp,
    Dtls,
    TurnChannel,
    Rtp,
    Rtcp,
    /// Empty datagram or a first byte no protocol on a media port claims.
    Unknown,
}

/// Classifies a datagram by its first two bytes.
///
/// RFC 7983 §7, first byte B:
/// ```text
///   0..=3     STUN           (top two bits 00, RFC 8489 §5)
///   16..=19   ZRTP
///   20..=63   DTLS           (content types 20–63)
///   64..=79   TURN channel   (channel numbers 0x4000–0x4FFF)
///   128..=191 RTP / RTCP     (version bits 10)
/// ```
/// RFC 5761 §4, second byte of an RTP/RTCP packet: RTCP packet types
/// 192–223 overlap RTP payload types 64–95 with the marker bit set, so a
/// second byte in 192..=223 is RTCP. Consequently an RTP packet with PT
/// 64–95 and M=1 is taken for RTCP: RFC 5761 §4 forbids those payload types
/// when RTP and RTCP share a port. PT 96–127 with M=1 (second byte 224–255)
/// and every PT with M=0 are RTP.
#[inline]
pub fn classify(datagram: &[u8]) -> PacketKind {
    let Some(&first) = datagram.first() else {
        return PacketKind::Unknown;
    };
    match first {
        0..=3 => PacketKind::Stun,
        16..=19 => PacketKind::Zrtp,
        20..=63 => PacketKind::Dtls,
        64..=79 => PacketKind::TurnChannel,
        128..=191 => match datagram.get(1) {
            Some(192..=223) => PacketKind::Rtcp,
            Some(_) => PacketKind::Rtp,
            None => PacketKind::Unknown,
        },
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(marker: bool, pt: u8) -> u8 {
        (u8::from(marker) << 7) | pt
    }

    #[test]
    fn first_byte_ranges() {
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[0x00, 0x01]), PacketKind::Stun); // Binding request
        assert_eq!(classify(&[0x01, 0x01]), PacketKind::Stun); // Binding success
        assert_eq!(classify(&[3]), PacketKind::Stun);
        assert_eq!(classify(&[4]), PacketKind::Unknown);
        assert_eq!(classify(&[16]), PacketKind::Zrtp);
        assert_eq!(classify(&[22, 0xfe, 0xfd]), PacketKind::Dtls); // handshake
        assert_eq!(classify(&[20]), PacketKind::Dtls);
        assert_eq!(classify(&[63]), PacketKind::Dtls);
        assert_eq!(classify(&[64, 0]), PacketKind::TurnChannel);
        assert_eq!(classify(&[79, 0]), PacketKind::TurnChannel);
        assert_eq!(classify(&[80, 0]), PacketKind::Unknown);
        assert_eq!(classify(&[127, 0]), PacketKind::Unknown);
        assert_eq!(classify(&[192, 0]), PacketKind::Unknown); // version 3
        assert_eq!(classify(&[0x80]), PacketKind::Unknown); // too short to tell
    }

    #[test]
    fn rtp_vs_rtcp_by_second_byte() {
        // RTCP packet types are taken for RTCP whatever the first byte's count.
        for pt in [192u8, 200, 201, 202, 203, 204, 205, 206, 207, 223] {
            assert_eq!(classify(&[0x81, pt]), PacketKind::Rtcp, "PT {pt}");
        }
        // Marker-bit cases.
        assert_eq!(classify(&[0x80, second(false, 0)]), PacketKind::Rtp); // PCMU
        assert_eq!(classify(&[0x80, second(true, 0)]), PacketKind::Rtp); // 128
        assert_eq!(classify(&[0x80, second(true, 63)]), PacketKind::Rtp); // 191
        assert_eq!(classify(&[0x80, second(true, 96)]), PacketKind::Rtp); // 224: VP8 frame end
        assert_eq!(classify(&[0x80, second(true, 111)]), PacketKind::Rtp); // opus, M=1
        assert_eq!(classify(&[0x80, second(true, 127)]), PacketKind::Rtp); // 255
        assert_eq!(classify(&[0x80, second(false, 72)]), PacketKind::Rtp); // M=0: RTP
                                                                           // The documented RFC 5761 §4 ambiguity: PT 64-95 with M=1 reads as RTCP.
        assert_eq!(classify(&[0x80, second(true, 64)]), PacketKind::Rtcp); // 192
        assert_eq!(classify(&[0x80, second(true, 72)]), PacketKind::Rtcp); // 200 = SR
        assert_eq!(classify(&[0x80, second(true, 95)]), PacketKind::Rtcp); // 223
    }
}
