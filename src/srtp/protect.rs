//! SRTCP protection under an SRTCP index the caller chooses.
//!
//! Why our own transform instead of `rtc-srtp`'s context: the crate picks
//! the index itself (1, 2, 3, … per SSRC) and offers no way to set it. The
//! proxy protects under two kinds of SSRC: its own (generated reports: its
//! own counter, which the crate could do) and, in `terminate`, the
//! endpoint's (a stripped SR re-protected toward the other leg with the
//! endpoint's key). Under the endpoint's SSRC the crate's 1, 2, 3 would
//! collide with the endpoint's own indices under the same key: keystream
//! (and, for GCM, nonce) reuse, which RFC 3711 §9.1 forbids. With the index
//! in our hands the proxy maps the endpoint's index into the other half of
//! the 31-bit space (see [`reprotect_index`]).
//!
//! Only protection lives here; authentication and decryption stay with the
//! crate (`SrtcpReader`), so every byte we produce is checked by an
//! independent implementation in the tests, besides the RFC 3711, RFC 7714
//! and libsrtp vectors. The primitives (AES block and CTR, HMAC-SHA1,
//! AES-GCM) come from the same crypto provider the crate uses.

use super::{CryptoSuite, SrtpError, SrtpKeys};
use rtc_srtp::crypto::{self as rtc_crypto, AeadAlgorithm, BlockCipherAlgorithm, HmacAlgorithm, StreamCipherAlgorithm};

/// RFC 3711 §4.3.2 key derivation labels for SRTCP.
const LABEL_SRTCP_ENCRYPTION: u8 = 0x03;
const LABEL_SRTCP_AUTH: u8 = 0x04;
const LABEL_SRTCP_SALT: u8 = 0x05;

/// Header and sender SSRC: the clear part of every SRTCP packet.
const CLEAR: usize = 8;
/// The E flag of the ESRTCP word (RFC 3711 §3.4).
const E_FLAG: u32 = 1 << 31;
pub(crate) const INDEX_MASK: u32 = 0x7fff_ffff;

/// The index a packet the endpoint protected with `index` gets when the
/// proxy re-protects it under the same SSRC and key: the other half of the
/// 31-bit index space (index + 2^30 mod 2^31). Endpoints start near 0 and
/// count up by one per packet, so the two never meet in 2^30 packets
/// (3.4 years at 10 compounds a second); the map is a bijection, so the
/// receiver's replay window sees the endpoint's order unchanged.
pub fn reprotect_index(index: u32) -> u32 {
    index.wrapping_add(1 << 30) & INDEX_MASK
}

enum Transform {
    /// AES-CM + HMAC-SHA1 (RFC 3711 §4.1.1, §4.2.1).
    CmHmac {
        cipher: Box<dyn rtc_crypto::StreamCipher>,
        mac: Box<dyn rtc_crypto::Mac>,
        salt: [u8; 14],
        tag_len: usize,
    },
    /// AEAD AES-GCM (RFC 7714 §9).
    Gcm {
        aead: Box<dyn rtc_crypto::AeadCipher>,
        salt: [u8; 12],
    },
}

/// Protects RTCP compounds as SRTCP with one key, at any index.
pub struct SrtcpProtector {
    suite: CryptoSuite,
    transform: Transform,
}

/// RFC 3711 §4.3.1 (and RFC 7714 §11 for the GCM suites): the AES-CM PRF
/// over x = (label || r) XOR master salt, r = 0 (key derivation rate 0, as
/// DTLS-SRTP and SDES deployments use). Block i of the output is
/// AES(master key, x · 2^16 + i).
fn derive(
    crypto: &dyn rtc_crypto::RTCCrypto,
    keys: &SrtpKeys,
    label: u8,
    out_len: usize,
) -> Result<Vec<u8>, SrtpError> {
    let master_key = keys.master_key();
    let algorithm = match master_key.len() {
        16 => BlockCipherAlgorithm::Aes128,
        32 => BlockCipherAlgorithm::Aes256,
        _ => return Err(SrtpError::Crypto),
    };
    let mut x = [0u8; 16];
    let salt = keys.master_salt();
    x[..salt.len()].copy_from_slice(salt);
    // The label sits in the 8th byte of the 112-bit x (key_id = label || r
    // right-aligned against the salt's 14 bytes: byte 7 counts from the left).
    x[7] ^= label;
    let mut out = Vec::with_capacity(out_len.div_ceil(16) * 16);
    for i in 0..out_len.div_ceil(16) {
        let mut block = x;
        block[14..16].copy_from_slice(&(i as u16).to_be_bytes());
        crypto
            .block_encrypt(algorithm, master_key, &mut block)
            .map_err(|_| SrtpError::Crypto)?;
        out.extend_from_slice(&block);
    }
    out.truncate(out_len);
    Ok(out)
}

impl SrtcpProtector {
    pub fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        let provider = rtc_crypto::default_provider().map_err(|_| SrtpError::Crypto)?;
        let crypto = provider.crypto();
        let suite = keys.suite();
        let key_len = keys.master_key().len();
        let session_key = derive(crypto, keys, LABEL_SRTCP_ENCRYPTION, key_len)?;
        let transform = match suite {
            CryptoSuite::AesCm128HmacSha1_80 | CryptoSuite::AesCm128HmacSha1_32 => {
                let cipher = crypto
                    .new_stream_cipher(StreamCipherAlgorithm::Aes128Ctr, &session_key)
                    .map_err(|_| SrtpError::Crypto)?;
                // n_a = 160 bits of HMAC-SHA1 key (RFC 3711 §4.2.1).
                let auth_key = derive(crypto, keys, LABEL_SRTCP_AUTH, 20)?;
                let mac = crypto
                    .new_hmac(HmacAlgorithm::Sha1, &auth_key)
                    .map_err(|_| SrtpError::Crypto)?;
                let mut salt = [0u8; 14];
                salt.copy_from_slice(&derive(crypto, keys, LABEL_SRTCP_SALT, 14)?);
                Transform::CmHmac {
                    cipher,
                    mac,
                    salt,
                    tag_len: suite.srtcp_tag_len(),
                }
            }
            CryptoSuite::AeadAes128Gcm | CryptoSuite::AeadAes256Gcm => {
                let algorithm = if key_len == 16 {
                    AeadAlgorithm::Aes128Gcm
                } else {
                    AeadAlgorithm::Aes256Gcm
                };
                let aead = crypto
                    .new_aead(algorithm, &session_key)
                    .map_err(|_| SrtpError::Crypto)?;
                let mut salt = [0u8; 12];
                salt.copy_from_slice(&derive(crypto, keys, LABEL_SRTCP_SALT, 12)?);
                Transform::Gcm { aead, salt }
            }
        };
        Ok(SrtcpProtector { suite, transform })
    }

    pub fn suite(&self) -> CryptoSuite {
        self.suite
    }

    /// Protects the plain compound `plain` (its first 8 bytes stay clear and
    /// name the SSRC) at SRTCP index `index` (31 bits) into `out` (cleared
    /// first). On error `out` is left as it was.
    pub fn protect(&mut self, plain: &[u8], index: u32, out: &mut Vec<u8>) -> Result<(), SrtpError> {
        if plain.len() < CLEAR {
            return Err(SrtpError::TooShort);
        }
        if plain[0] >> 6 != 2 {
            return Err(SrtpError::BadVersion);
        }
        let ssrc = [plain[4], plain[5], plain[6], plain[7]];
        let index = index & INDEX_MASK;
        let e_index = (E_FLAG | index).to_be_bytes();
        match &mut self.transform {
            Transform::CmHmac {
                cipher,
                mac,
                salt,
                tag_len,
            } => {
                // RFC 3711 §4.1.1: IV = (k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16).
                let mut iv = [0u8; 16];
                iv[..14].copy_from_slice(salt);
                for (b, s) in iv[4..8].iter_mut().zip(ssrc) {
                    *b ^= s;
                }
                for (b, s) in iv[10..14].iter_mut().zip(index.to_be_bytes()) {
                    *b ^= s;
                }
                let mut sealed = Vec::with_capacity(plain.len() + 4 + *tag_len);
                sealed.extend_from_slice(plain);
                cipher
                    .apply_keystream(&iv, &mut sealed[CLEAR..])
                    .map_err(|_| SrtpError::Crypto)?;
                sealed.extend_from_slice(&e_index);
                // RFC 3711 §3.4: the tag covers the header, the encrypted
                // portion and the E + index word.
                let mut tag = [0u8; 20];
                mac.sign(&[&sealed], &mut tag).map_err(|_| SrtpError::Crypto)?;
                sealed.extend_from_slice(&tag[..*tag_len]);
                *out = sealed;
            }
            Transform::Gcm { aead, salt } => {
                // RFC 7714 §9.1: IV = (0x0000 || SSRC || 0x0000 || index) XOR salt;
                // §17: AAD = the clear 8 bytes || ESRTCP word.
                let mut iv = [0u8; 12];
                iv[2..6].copy_from_slice(&ssrc);
                iv[8..12].copy_from_slice(&index.to_be_bytes());
                for (b, s) in iv.iter_mut().zip(salt.iter()) {
                    *b ^= s;
                }
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&plain[..CLEAR]);
                aad[8..].copy_from_slice(&e_index);
                let mut sealed = Vec::with_capacity(plain.len() + 16 + 4);
                sealed.extend_from_slice(plain);
                let mut tag = [0u8; 16];
                aead.seal_in_place(&iv, &aad, &mut sealed[CLEAR..], &mut tag)
                    .map_err(|_| SrtpError::Crypto)?;
                sealed.extend_from_slice(&tag);
                sealed.extend_from_slice(&e_index);
                *out = sealed;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for SrtcpProtector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtcpProtector")
            .field("suite", &format_args!("{}", self.suite))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::SrtcpReader;

    fn keys(suite: CryptoSuite) -> SrtpKeys {
        SrtpKeys::made_up(suite, 37, 0xa5)
    }

    #[test]
    fn the_crate_reader_accepts_what_we_protect_at_any_index() {
        let plain = [0x81, 0xc9, 0x00, 0x07, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8]
            .iter()
            .copied()
            .chain([0u8; 16])
            .collect::<Vec<u8>>();
        for suite in CryptoSuite::ALL {
            let k = keys(suite);
            let mut p = SrtcpProtector::new(&k).unwrap();
            let mut reader = SrtcpReader::new(&k).unwrap();
            for index in [1u32, 2, 1 << 30, (1 << 30) + 5, INDEX_MASK] {
                let (mut wire, mut back) = (Vec::new(), Vec::new());
                p.protect(&plain, index, &mut wire).unwrap();
                assert_eq!(wire.len(), plain.len() + suite.srtcp_overhead(), "{suite}");
                assert_eq!(
                    crate::srtp::srtcp_trailer(&wire, suite.srtcp_tag_len()),
                    Some((true, index)),
                    "{suite}"
                );
                reader
                    .decrypt(&wire, &mut back)
                    .unwrap_or_else(|e| panic!("{suite} index {index}: {e}"));
                assert_eq!(back, plain, "{suite}");
            }
        }
    }

    #[test]
    fn reprotected_indices_never_meet_the_endpoints() {
        assert_eq!(reprotect_index(0), 1 << 30);
        assert_eq!(reprotect_index(1), (1 << 30) + 1);
        assert_eq!(reprotect_index((1 << 30) + 7), 7);
        assert_eq!(reprotect_index(INDEX_MASK), (1 << 30) - 1);
        // Order is kept within a replay window of the endpoint's indices.
        assert!(reprotect_index(100) < reprotect_index(101));
    }
}
