//! SRTP/SRTCP for the relay: provisioned SDES keys, SRTCP contexts and the
//! keyless SRTCP trailer.
//!
//! Three pieces, each usable without the others:
//!
//! - [`SrtpKeys`] / [`CryptoSuite`]: RFC 4568 §6.1 `inline:` key material
//!   (base64 of master key || master salt) for the four suites the relay
//!   supports. Keys never appear in `Debug`, `Display`, serde output or
//!   errors: only the suite and an 8-hex-digit fingerprint do (see
//!   [`SrtpKeys::fingerprint`]). The material is wiped when dropped.
//! - [`SrtcpReader`] / [`SrtcpWriter`]: one direction's SRTCP context on top
//!   of `rtc-srtp` (ring backend). The reader authenticates, replay-checks
//!   and decrypts; the writer protects the proxy's own reports with its own
//!   per-SSRC SRTCP index. Failures come back as an [`SrtpError`] whose
//!   [`label`](SrtpError::label) is a stable counter label.
//! - [`srtcp_trailer`]: the E flag and 31-bit SRTCP index read from the clear
//!   trailer (RFC 3711 §3.4), for observing SRTCP without keys.
//!
//! # SRTCP layout (RFC 3711 §3.4, RFC 7714 §9, §17)
//!
//! ```text
//! HMAC-SHA1 suites:  | header+SSRC (8, clear) | encrypted ... |E| index (31) | auth tag (10) |
//! AES-GCM suites:    | header+SSRC (8, clear) | encrypted ... | GCM tag (16) |E| index (31) |
//! ```
//!
//! Both HMAC-SHA1 suites carry an 80-bit SRTCP tag: the `_32` in
//! `AES_CM_128_HMAC_SHA1_32` applies to SRTP only (RFC 5764 §4.1.2 lists an
//! 80-bit SRTCP tag for it; rtpengine and `rtc-srtp` pair it the same way).
//! A GStreamer `srtpenc`/`srtpdec` peer must be set to match:
//! `rtp-auth=hmac-sha1-32 rtcp-auth=hmac-sha1-80`.
//!
//! ```
//! use rtp_middlebox::srtp::{srtcp_trailer, CryptoSuite, SrtcpReader, SrtcpWriter, SrtpKeys};
//!
//! // RFC 3711 B.3's master key and salt, as an SDES `inline:` parameter.
//! let keys = SrtpKeys::from_key_params(
//!     CryptoSuite::AesCm128HmacSha1_80,
//!     "inline:4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm",
//! )
//! .unwrap();
//! assert_eq!(format!("{keys}"), "AES_CM_128_HMAC_SHA1_80 key#a2613438");
//!
//! // A receiver report from SSRC 0x0badcafe with no report blocks.
//! let rr = [0x80, 0xc9, 0x00, 0x01, 0x0b, 0xad, 0xca, 0xfe];
//! let mut writer = SrtcpWriter::new(&keys).unwrap();
//! let mut reader = SrtcpReader::new(&keys).unwrap();
//! let (mut wire, mut plain) = (Vec::new(), Vec::new());
//! writer.encrypt(&rr, &mut wire).unwrap();
//! assert_eq!(wire.len(), rr.len() + 4 + 10);
//! assert_eq!(srtcp_trailer(&wire, CryptoSuite::AesCm128HmacSha1_80.srtcp_tag_len()), Some((true, 1)));
//!
//! reader.decrypt(&wire, &mut plain).unwrap();
//! assert_eq!(plain, rr);
//! // The same packet again is a replay.
//! assert_eq!(reader.decrypt(&wire, &mut plain).unwrap_err().label(), "replayed");
//! ```

mod base64;
mod keys;
mod protect;
mod srtcp;

pub use keys::{CryptoSuite, KeyError, SrtpKeys};
pub use protect::{reprotect_index, SrtcpProtector};
pub use srtcp::media_context;
pub(crate) use srtcp::ReplayTable;
pub use srtcp::{srtcp_trailer, SrtcpReader, SrtcpWriter, SrtpError, SRTCP_REPLAY_WINDOW};
