//! The proxy's DTLS identity and DTLS-SRTP key export, for terminating
//! DTLS-SRTP on both legs of a WebRTC call (RFC 5763, RFC 5764).
//!
//! The DTLS protocol itself is `dimpl`'s (sans-IO, DTLS 1.2 and 1.3,
//! written for WebRTC): it fits the engine's contract, since it reads no
//! clock and owns no socket; the engine hands it datagrams and times. This
//! module holds what the engine needs around it:
//!
//! - [`DtlsIdentity`]: the proxy's certificate (ECDSA P-256, self-signed,
//!   generated at start with `rcgen` or loaded from PEM files) and its
//!   SHA-256 fingerprint for SDP (RFC 8122 §5). The private key never
//!   appears in `Debug`, logs or errors.
//! - [`srtp_keys_from_export`]: RFC 5764 §4.2's split of the exported
//!   keying material into each direction's SRTP master key and salt.
//! - [`sha256`] for checking a peer's certificate against its SDP.

use crate::srtp::{CryptoSuite, SrtpKeys};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The proxy's certificate and key, shared by every session's handshakes.
#[derive(Clone)]
pub struct DtlsIdentity {
    certificate: dimpl::DtlsCertificate,
    fingerprint: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{what} {path} is not a PEM {expected}")]
    Format {
        what: &'static str,
        path: String,
        expected: &'static str,
    },
    #[error("the private key is not ECDSA P-256 or P-384 (dimpl signs with ECDSA only)")]
    KeyType,
    #[error("certificate generation failed")]
    Generate,
}

impl DtlsIdentity {
    /// A fresh self-signed ECDSA P-256 certificate (WebRTC endpoints check
    /// only the fingerprint, RFC 8827 §6.5, so self-signed is the norm).
    pub fn generate() -> Result<Self, IdentityError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|_| IdentityError::Generate)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|_| IdentityError::Generate)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "rtp-middlebox");
        // A random serial: Firefox refuses two certificates with the same
        // issuer and serial in one profile.
        let mut serial = [0u8; 16];
        ring_fill(&mut serial)?;
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let cert = params.self_signed(&key).map_err(|_| IdentityError::Generate)?;
        Ok(Self::from_der(cert.der().to_vec(), key.serialize_der()))
    }

    /// Loads `[dtls] certificate` and `private_key` (PEM). The key must be
    /// ECDSA (P-256 recommended).
    pub fn load(certificate: &Path, private_key: &Path) -> Result<Self, IdentityError> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read_to_string(path).map_err(|source| IdentityError::Read {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        let cert_pem = read("certificate", certificate)?;
        let key_pem = read("private key", private_key)?;
        let cert = pem::parse(cert_pem.as_bytes())
            .ok()
            .filter(|p| p.tag() == "CERTIFICATE")
            .ok_or_else(|| IdentityError::Format {
                what: "certificate",
                path: certificate.display().to_string(),
                expected: "CERTIFICATE",
            })?;
        // rcgen reads PKCS#8 and SEC1 EC keys; the error says nothing of
        // the key's contents.
        let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|_| IdentityError::Format {
            what: "private key",
            path: private_key.display().to_string(),
            expected: "PRIVATE KEY (PKCS#8) or EC PRIVATE KEY",
        })?;
        if !(key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) || key.is_compatible(&rcgen::PKCS_ECDSA_P384_SHA384)) {
            return Err(IdentityError::KeyType);
        }
        Ok(Self::from_der(cert.contents().to_vec(), key.serialize_der()))
    }

    fn from_der(certificate: Vec<u8>, private_key: Vec<u8>) -> Self {
        let fingerprint = sha256(&certificate);
        DtlsIdentity {
            certificate: dimpl::DtlsCertificate {
                certificate,
                private_key,
            },
            fingerprint,
        }
    }

    /// SHA-256 of the certificate's DER (RFC 8122 §5).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The fingerprint as SDP writes it: `sha-256 AB:CD:…`.
    pub fn fingerprint_sdp(&self) -> String {
        format!("sha-256 {}", hex_colon(&self.fingerprint))
    }

    pub fn dimpl_certificate(&self) -> dimpl::DtlsCertificate {
        self.certificate.clone()
    }
}

impl fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsIdentity")
            .field("fingerprint", &self.fingerprint_sdp())
            .finish_non_exhaustive()
    }
}

/// Shared between workers.
pub type SharedIdentity = Arc<DtlsIdentity>;

fn ring_fill(buf: &mut [u8]) -> Result<(), IdentityError> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| IdentityError::Generate)
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `AB:CD:…`, the hex form of RFC 8122 §5.
pub fn hex_colon(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// The SRTP suite a negotiated DTLS-SRTP profile names.
pub fn suite_of(profile: dimpl::SrtpProfile) -> Option<CryptoSuite> {
    match profile {
        dimpl::SrtpProfile::AES128_CM_SHA1_80 => Some(CryptoSuite::AesCm128HmacSha1_80),
        dimpl::SrtpProfile::AEAD_AES_128_GCM => Some(CryptoSuite::AeadAes128Gcm),
        dimpl::SrtpProfile::AEAD_AES_256_GCM => Some(CryptoSuite::AeadAes256Gcm),
        _ => None,
    }
}

/// One leg's SRTP keys after its handshake.
#[derive(Clone, Debug)]
pub struct LegKeys {
    /// What the peer protects its SRTP/SRTCP with (the proxy opens with it).
    pub peer_write: SrtpKeys,
    /// What the proxy protects toward the peer with.
    pub own_write: SrtpKeys,
}

/// RFC 5764 §4.2: the exporter ("EXTRACTOR-dtls_srtp") output is
/// `client_write_key | server_write_key | client_write_salt |
/// server_write_salt`; the DTLS client writes with the client key.
pub fn srtp_keys_from_export(material: &[u8], suite: CryptoSuite, proxy_is_client: bool) -> Option<LegKeys> {
    let (k, s) = (suite.master_key_len(), suite.master_salt_len());
    if material.len() < 2 * (k + s) {
        return None;
    }
    let client_key = &material[..k];
    let server_key = &material[k..2 * k];
    let client_salt = &material[2 * k..2 * k + s];
    let server_salt = &material[2 * k + s..2 * (k + s)];
    let client = SrtpKeys::new(suite, client_key, client_salt).ok()?;
    let server = SrtpKeys::new(suite, server_key, server_salt).ok()?;
    Some(match proxy_is_client {
        true => LegKeys {
            peer_write: server,
            own_write: client,
        },
        false => LegKeys {
            peer_write: client,
            own_write: server,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_has_a_sha256_fingerprint_and_hides_its_key() {
        let id = DtlsIdentity::generate().unwrap();
        let sdp = id.fingerprint_sdp();
        assert!(sdp.starts_with("sha-256 "));
        assert_eq!(sdp.len(), "sha-256 ".len() + 32 * 3 - 1);
        assert_eq!(id.fingerprint(), sha256(&id.dimpl_certificate().certificate));
        let debug = format!("{id:?}");
        assert!(!debug.contains("private"), "{debug}");
        assert_ne!(DtlsIdentity::generate().unwrap().fingerprint(), id.fingerprint());
    }

    #[test]
    fn loads_pem_files_and_refuses_garbage() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = std::env::temp_dir().join(format!("rtp-middlebox-dtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let id = DtlsIdentity::load(&c, &k).unwrap();
        assert_eq!(id.fingerprint(), sha256(cert.der()));
        std::fs::write(&k, "not a key").unwrap();
        let err = DtlsIdentity::load(&c, &k).unwrap_err().to_string();
        assert!(err.contains("private key") && !err.contains("not a key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn export_split_follows_rfc5764_order() {
        let suite = CryptoSuite::AesCm128HmacSha1_80;
        let material: Vec<u8> = (0..60u8).collect();
        let proxy_client = srtp_keys_from_export(&material, suite, true).unwrap();
        assert_eq!(proxy_client.own_write.master_key(), &material[..16]);
        assert_eq!(proxy_client.own_write.master_salt(), &material[32..46]);
        assert_eq!(proxy_client.peer_write.master_key(), &material[16..32]);
        assert_eq!(proxy_client.peer_write.master_salt(), &material[46..60]);
        let proxy_server = srtp_keys_from_export(&material, suite, false).unwrap();
        assert_eq!(proxy_server.own_write, proxy_client.peer_write);
        assert!(srtp_keys_from_export(&material[..59], suite, true).is_none());
    }
}
