//! WebRTC-shaped SDPs for the synthetic DTLS endpoints of the demo, the
//! load tool and the tests: what a browser or an SFU would put in an offer
//! or an answer, reduced to what the calls API reads (RFC 8829 §5.2).

use std::net::SocketAddr;

/// One BUNDLEd audio m-line (Opus), and a VP8 video m-line after it with
/// `video`, each with the ICE credentials (`ufrag`, a fixed password), the
/// DTLS `fingerprint` (`sha-256 AB:…`), the DTLS `setup` role
/// (`actpass`, `active`, `passive`; RFC 5763 §5), rtcp-mux and one host
/// candidate at `at` (RFC 8839 §5.1).
pub fn webrtc_sdp(ufrag: &str, fingerprint: &str, setup: &str, at: SocketAddr, video: bool) -> String {
    let (ip, port) = (at.ip(), at.port());
    let family = if at.is_ipv4() { "IP4" } else { "IP6" };
    let bundle = if video { "0 1" } else { "0" };
    let mut sdp = format!("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {bundle}\r\n");
    let mut media = |kind: &str, mid: u8, pt: u8, rtpmap: &str| {
        sdp += &format!(
            "m={kind} {port} UDP/TLS/RTP/SAVPF {pt}\r\nc=IN {family} {ip}\r\na=mid:{mid}\r\n\
             a=ice-ufrag:{ufrag}\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
             a=fingerprint:{fingerprint}\r\na=setup:{setup}\r\na=rtcp-mux\r\n\
             a=rtpmap:{pt} {rtpmap}\r\na=candidate:1 1 udp 2130706431 {ip} {port} typ host\r\n"
        );
    };
    media("audio", 0, 111, "opus/48000/2");
    if video {
        media("video", 1, 96, "VP8/90000");
    }
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdp_is_what_the_calls_api_reads() {
        let at: SocketAddr = "127.0.0.1:5004".parse().unwrap();
        let fingerprint = format!("sha-256 {}", ["AB"; 32].join(":"));
        let sdp = webrtc_sdp("uFrag", &fingerprint, "actpass", at, true);
        let parsed = crate::sdp::inspect(&sdp).unwrap();
        assert_eq!(parsed.ice_ufrag.as_deref(), Some("uFrag"));
        assert_eq!(parsed.fingerprints.len(), 1);
        assert_eq!(parsed.media_address, Some(at));
        assert_eq!(parsed.media.len(), 2);
        assert_eq!(
            sdp.matches("a=candidate:1 1 udp 2130706431 127.0.0.1 5004 typ host")
                .count(),
            2
        );
    }
}
