//! Provisioned SDES key material: RFC 4568 §6.1 `inline:` parameters
//! (base64 of master key || master salt) and the crypto suites that give
//! them their lengths (RFC 4568 §6.2, RFC 7714 §12 and §14.1).

use std::fmt;
use std::str::FromStr;

use rtc_srtp::crypto::{self as rtc_crypto, HashAlgorithm};
use rtc_srtp::protection_profile::ProtectionProfile;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::base64::{self, Base64Error};

/// The SRTP crypto suites the relay can key, named as in SDP `a=crypto`.
///
/// | suite | master key | master salt | SRTP tag | SRTCP trailer |
/// |---|---|---|---|---|
/// | `AES_CM_128_HMAC_SHA1_80` | 16 | 14 | 10 | index 4 + tag 10 |
/// | `AES_CM_128_HMAC_SHA1_32` | 16 | 14 | 4 | index 4 + tag 10 |
/// | `AEAD_AES_128_GCM` | 16 | 12 | 16 | tag 16 + index 4 |
/// | `AEAD_AES_256_GCM` | 32 | 12 | 16 | tag 16 + index 4 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoSuite {
    /// `AES_CM_128_HMAC_SHA1_80` (RFC 4568 §6.2), the default everywhere.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32` (RFC 4568 §6.2): 32-bit SRTP tag, but SRTCP
    /// keeps the 80-bit tag.
    AesCm128HmacSha1_32,
    /// `AEAD_AES_128_GCM` (RFC 7714).
    AeadAes128Gcm,
    /// `AEAD_AES_256_GCM` (RFC 7714).
    AeadAes256Gcm,
}

impl CryptoSuite {
    /// Every supported suite, in SDP preference order of most offers.
    pub const ALL: [CryptoSuite; 4] = [
        CryptoSuite::AesCm128HmacSha1_80,
        CryptoSuite::AesCm128HmacSha1_32,
        CryptoSuite::AeadAes128Gcm,
        CryptoSuite::AeadAes256Gcm,
    ];

    /// The name as written in SDP `a=crypto` lines.
    pub const fn sdp_name(self) -> &'static str {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            CryptoSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            CryptoSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            CryptoSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The DTLS-SRTP protection profile name (RFC 5764 §4.1.2, RFC 7714 §14.2).
    pub(crate) const fn dtls_srtp_name(self) -> &'static str {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => "SRTP_AES128_CM_HMAC_SHA1_80",
            CryptoSuite::AesCm128HmacSha1_32 => "SRTP_AES128_CM_HMAC_SHA1_32",
            CryptoSuite::AeadAes128Gcm => "SRTP_AEAD_AES_128_GCM",
            CryptoSuite::AeadAes256Gcm => "SRTP_AEAD_AES_256_GCM",
        }
    }

    /// Master key length in bytes.
    pub const fn master_key_len(self) -> usize {
        match self {
            CryptoSuite::AeadAes256Gcm => 32,
            _ => 16,
        }
    }

    /// Master salt length in bytes: 112 bits for AES-CM (RFC 3711, RFC 4568 §6.2), 96
    /// bits for AES-GCM (RFC 7714 §12).
    pub const fn master_salt_len(self) -> usize {
        if self.is_aead() {
            12
        } else {
            14
        }
    }

    /// Length of the decoded `inline:` key material: master key || salt.
    pub const fn key_material_len(self) -> usize {
        self.master_key_len() + self.master_salt_len()
    }

    /// Whether this is an AEAD (AES-GCM) suite.
    pub(crate) const fn is_aead(self) -> bool {
        matches!(self, CryptoSuite::AeadAes128Gcm | CryptoSuite::AeadAes256Gcm)
    }

    /// Bytes SRTP appends to an RTP packet (the authentication tag).
    pub const fn srtp_overhead(self) -> usize {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => 10,
            CryptoSuite::AesCm128HmacSha1_32 => 4,
            CryptoSuite::AeadAes128Gcm | CryptoSuite::AeadAes256Gcm => 16,
        }
    }

    /// Bytes SRTCP appends to an RTCP compound: the 4-byte E flag + index
    /// word plus the tag (10 for HMAC-SHA1, 16 for GCM).
    pub const fn srtcp_overhead(self) -> usize {
        if self.is_aead() {
            16 + 4
        } else {
            4 + 10
        }
    }

    /// Bytes that follow the E flag + index word in SRTCP: the HMAC tag (10)
    /// for the AES-CM suites, nothing for GCM, whose tag precedes the word.
    /// This is the `tag_len` to pass to [`srtcp_trailer`](super::srtcp_trailer).
    pub const fn srtcp_tag_len(self) -> usize {
        if self.is_aead() {
            0
        } else {
            10
        }
    }

    /// The suite of a DTLS-SRTP protection profile (RFC 5764 §4.1.2,
    /// RFC 7714 §14.2), as read by [`crate::wire::dtls::server_srtp_profile`].
    pub const fn from_dtls_profile(profile: u16) -> Option<Self> {
        match profile {
            0x0001 => Some(CryptoSuite::AesCm128HmacSha1_80),
            0x0002 => Some(CryptoSuite::AesCm128HmacSha1_32),
            0x0007 => Some(CryptoSuite::AeadAes128Gcm),
            0x0008 => Some(CryptoSuite::AeadAes256Gcm),
            _ => None,
        }
    }

    pub(crate) fn profile(self) -> ProtectionProfile {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            CryptoSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            CryptoSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            CryptoSuite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
        }
    }
}

impl fmt::Display for CryptoSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sdp_name())
    }
}

impl FromStr for CryptoSuite {
    type Err = KeyError;

    /// Accepts the SDP names and the DTLS-SRTP profile names, ignoring ASCII
    /// case and surrounding whitespace.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        CryptoSuite::ALL
            .into_iter()
            .find(|suite| s.eq_ignore_ascii_case(suite.sdp_name()) || s.eq_ignore_ascii_case(suite.dtls_srtp_name()))
            .ok_or(KeyError::UnknownSuite)
    }
}

impl Serialize for CryptoSuite {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.sdp_name())
    }
}

impl<'de> Deserialize<'de> for CryptoSuite {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why key material was refused. Messages name the suite and lengths but
/// never the input: a mistyped field may hold key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The suite name is not one of [`CryptoSuite::ALL`].
    #[error(
        "unknown SRTP crypto suite (supported: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, \
         AEAD_AES_128_GCM, AEAD_AES_256_GCM)"
    )]
    UnknownSuite,
    /// The key is not standard base64 (RFC 4648 §4).
    #[error("SRTP key is not valid base64")]
    BadBase64,
    /// The decoded key || salt has the wrong length for the suite.
    #[error("SRTP key for {suite} must decode to {expected} bytes (master key || master salt), got {got}")]
    WrongLength {
        /// The suite the key was given for.
        suite: CryptoSuite,
        /// Its master key length plus master salt length.
        expected: usize,
        /// What the base64 decoded to.
        got: usize,
    },
    /// A `|lifetime` key parameter (RFC 4568 §6.1) was given.
    #[error("SRTP key lifetime parameter (`|2^n` after the key) is not supported: provision the key without it")]
    LifetimeUnsupported,
    /// A `|MKI:length` key parameter (RFC 4568 §6.1) was given: packets would
    /// carry an MKI field, which the SRTCP contexts do not handle.
    #[error("SRTP MKI parameter (`|value:length` after the key) is not supported: provision the key without an MKI")]
    MkiUnsupported,
    /// More than one `;`-separated key parameter was given.
    #[error("only one SRTP key per direction is supported (got several `;`-separated key parameters)")]
    MultipleKeysUnsupported,
    /// A key method other than `inline:` was given.
    #[error("SRTP key method must be `inline:`")]
    UnsupportedKeyMethod,
    /// An `a=crypto` line carried session parameters (RFC 4568 §6), such
    /// as `UNENCRYPTED_SRTCP` or `KDR=`, that change the transform.
    #[error("SDES session parameters (such as UNENCRYPTED_SRTCP or KDR) are not supported")]
    SessionParamsUnsupported,
    /// An `a=crypto` line did not have the `<tag> <suite> <key-params>` shape.
    #[error("malformed a=crypto attribute: expected `a=crypto:<tag> <suite> inline:<base64 key||salt>`")]
    MalformedAttribute,
    /// The cryptographic provider failed (no provider compiled in).
    #[error("SRTP crypto provider unavailable")]
    Crypto,
}

impl KeyError {
    /// Every variant's label, for a metric table.
    pub const LABELS: [&'static str; 10] = [
        "unknown_suite",
        "bad_base64",
        "wrong_length",
        "lifetime_unsupported",
        "mki_unsupported",
        "multiple_keys_unsupported",
        "unsupported_key_method",
        "session_params_unsupported",
        "malformed_attribute",
        "crypto_error",
    ];

    /// A stable, bounded label for counters and API error codes.
    pub const fn label(&self) -> &'static str {
        match self {
            KeyError::UnknownSuite => "unknown_suite",
            KeyError::BadBase64 => "bad_base64",
            KeyError::WrongLength { .. } => "wrong_length",
            KeyError::LifetimeUnsupported => "lifetime_unsupported",
            KeyError::MkiUnsupported => "mki_unsupported",
            KeyError::MultipleKeysUnsupported => "multiple_keys_unsupported",
            KeyError::UnsupportedKeyMethod => "unsupported_key_method",
            KeyError::SessionParamsUnsupported => "session_params_unsupported",
            KeyError::MalformedAttribute => "malformed_attribute",
            KeyError::Crypto => "crypto_error",
        }
    }
}

/// Longest key || salt of any suite: 32 + 14 (no suite has both, but the
/// buffer need not care).
const MAX_MATERIAL: usize = 46;

/// Overwrites `buf` with zeros in a way the optimiser may not elide.
pub(crate) fn wipe(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference to a u8.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// One direction's SRTP master key and master salt for one suite.
///
/// Built from an RFC 4568 `inline:` key parameter
/// ([`from_key_params`](Self::from_key_params)), a whole `a=crypto` line
/// ([`from_crypto_attribute`](Self::from_crypto_attribute)), raw bytes
/// ([`new`](Self::new)), or serde (`{"suite": "...", "key": "inline:..."}`).
///
/// `Debug`, `Display` and `Serialize` show only the suite and the
/// [`fingerprint`](Self::fingerprint); the key bytes are reachable only
/// through [`master_key`](Self::master_key), [`master_salt`](Self::master_salt)
/// and [`expose_inline_secret`](Self::expose_inline_secret). Dropping the
/// value overwrites the material (copies made by moves are not tracked: keep
/// keys in one place, behind a `Box` or `Arc`, if that matters).
///
/// Equality compares suite and material in constant time.
#[derive(Clone)]
pub struct SrtpKeys {
    suite: CryptoSuite,
    /// master key || master salt, then zeros.
    material: [u8; MAX_MATERIAL],
    fingerprint: [u8; 4],
}

impl SrtpKeys {
    /// Keys from raw master key and master salt bytes.
    pub fn new(suite: CryptoSuite, master_key: &[u8], master_salt: &[u8]) -> Result<Self, KeyError> {
        if master_key.len() != suite.master_key_len() || master_salt.len() != suite.master_salt_len() {
            return Err(KeyError::WrongLength {
                suite,
                expected: suite.key_material_len(),
                got: master_key.len() + master_salt.len(),
            });
        }
        let mut material = [0u8; MAX_MATERIAL];
        material[..master_key.len()].copy_from_slice(master_key);
        material[master_key.len()..suite.key_material_len()].copy_from_slice(master_salt);
        let keys = Self::from_material(suite, material);
        wipe(&mut material);
        keys
    }

    fn from_material(suite: CryptoSuite, material: [u8; MAX_MATERIAL]) -> Result<Self, KeyError> {
        let mut keys = SrtpKeys {
            suite,
            material,
            fingerprint: [0; 4],
        };
        keys.fingerprint = fingerprint(suite, &keys.material[..suite.key_material_len()])?;
        Ok(keys)
    }

    /// Test keys of `suite` from made-up material: byte `i` is
    /// `i × mul ^ xor`.
    #[cfg(test)]
    pub(crate) fn made_up(suite: CryptoSuite, mul: u8, xor: u8) -> Self {
        let material: Vec<u8> = (0..suite.key_material_len() as u8)
            .map(|i| i.wrapping_mul(mul) ^ xor)
            .collect();
        let (k, s) = material.split_at(suite.master_key_len());
        SrtpKeys::new(suite, k, s).unwrap()
    }

    /// Fresh random keys from the crypto provider's CSPRNG.
    pub fn generate(suite: CryptoSuite) -> Result<Self, KeyError> {
        let provider = rtc_crypto::default_provider().map_err(|_| KeyError::Crypto)?;
        let mut material = [0u8; MAX_MATERIAL];
        let filled = provider.random().fill(&mut material[..suite.key_material_len()]);
        let keys = filled
            .map_err(|_| KeyError::Crypto)
            .and_then(|()| Self::from_material(suite, material));
        wipe(&mut material);
        keys
    }

    /// Keys from one RFC 4568 §6.1 key parameter: `inline:<base64>` or the
    /// bare base64 of master key || master salt. Surrounding whitespace is
    /// ignored. A `|lifetime` or `|MKI:length` suffix, `;`-separated extra
    /// keys and key methods other than `inline` are refused.
    ///
    /// ```
    /// use rtp_middlebox::srtp::{CryptoSuite, KeyError, SrtpKeys};
    ///
    /// let suite = CryptoSuite::AesCm128HmacSha1_80;
    /// let key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    /// assert!(SrtpKeys::from_key_params(suite, key).is_ok());
    /// assert_eq!(SrtpKeys::from_key_params(suite, &format!("inline:{key}|2^20")).unwrap_err(), KeyError::LifetimeUnsupported);
    /// assert_eq!(SrtpKeys::from_key_params(suite, &format!("inline:{key}|1:4")).unwrap_err(), KeyError::MkiUnsupported);
    /// assert_eq!(
    ///     SrtpKeys::from_key_params(CryptoSuite::AeadAes128Gcm, key).unwrap_err(),
    ///     KeyError::WrongLength { suite: CryptoSuite::AeadAes128Gcm, expected: 28, got: 30 },
    /// );
    /// ```
    pub fn from_key_params(suite: CryptoSuite, params: &str) -> Result<Self, KeyError> {
        let params = params.trim();
        if params.contains(';') {
            return Err(KeyError::MultipleKeysUnsupported);
        }
        let info = match params.split_once(':') {
            Some((method, rest)) if method.eq_ignore_ascii_case("inline") => rest,
            // A colon only after a `|` belongs to an MKI, checked below.
            Some((method, _)) if !method.contains('|') => return Err(KeyError::UnsupportedKeyMethod),
            _ => params,
        };
        let mut parts = info.split('|');
        let key = parts.next().unwrap_or_default();
        if let Some(extra) = parts.next() {
            // key-info = key-salt ["|" lifetime] ["|" mki]; an MKI has a colon.
            let mki = extra.contains(':') || parts.any(|p| p.contains(':'));
            return Err(if mki {
                KeyError::MkiUnsupported
            } else {
                KeyError::LifetimeUnsupported
            });
        }
        let mut material = [0u8; MAX_MATERIAL];
        let decoded = base64::decode(key.as_bytes(), &mut material);
        let result = match decoded {
            Ok(n) if n == suite.key_material_len() => Self::from_material(suite, material),
            Ok(got) | Err(Base64Error::TooLong(got)) => Err(KeyError::WrongLength {
                suite,
                expected: suite.key_material_len(),
                got,
            }),
            Err(Base64Error::Invalid) => Err(KeyError::BadBase64),
        };
        wipe(&mut material);
        result
    }

    /// Keys from a whole SDP crypto attribute (RFC 4568 §4):
    /// `a=crypto:<tag> <suite> inline:<key||salt>`, with or without the
    /// leading `a=`. Returns the tag with the keys. Session parameters after
    /// the key are refused.
    pub fn from_crypto_attribute(attribute: &str) -> Result<(u32, Self), KeyError> {
        let line = attribute.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        let body = line.strip_prefix("crypto:").ok_or(KeyError::MalformedAttribute)?;
        let mut fields = body.split_ascii_whitespace();
        let (Some(tag), Some(suite), Some(params)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(KeyError::MalformedAttribute);
        };
        let tag = (tag.len() <= 9 && tag.bytes().all(|b| b.is_ascii_digit()))
            .then(|| tag.parse::<u32>().ok())
            .flatten()
            .ok_or(KeyError::MalformedAttribute)?;
        let suite: CryptoSuite = suite.parse()?;
        if !params.get(..7).is_some_and(|m| m.eq_ignore_ascii_case("inline:")) {
            return Err(KeyError::UnsupportedKeyMethod);
        }
        let keys = Self::from_key_params(suite, params)?;
        if fields.next().is_some() {
            return Err(KeyError::SessionParamsUnsupported);
        }
        Ok((tag, keys))
    }

    /// The suite these keys are for.
    pub fn suite(&self) -> CryptoSuite {
        self.suite
    }

    /// The master key (secret).
    pub fn master_key(&self) -> &[u8] {
        &self.material[..self.suite.master_key_len()]
    }

    /// The master salt (secret).
    pub fn master_salt(&self) -> &[u8] {
        &self.material[self.suite.master_key_len()..self.suite.key_material_len()]
    }

    /// The key material as an RFC 4568 `inline:` parameter. This is the
    /// secret itself: hand it to the peer that needs it, never to a log.
    pub fn expose_inline_secret(&self) -> String {
        format!(
            "inline:{}",
            base64::encode(&self.material[..self.suite.key_material_len()])
        )
    }

    /// A short, non-reversible identifier of the key material: the first 4
    /// bytes of SHA-256(`"rtp-middlebox srtp key v1"` || 0 || suite name ||
    /// 0 || master key || master salt), as 8 lowercase hex digits. Equal keys
    /// give equal fingerprints, so operators can tell which key is
    /// installed without seeing it.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn fingerprint(suite: CryptoSuite, material: &[u8]) -> Result<[u8; 4], KeyError> {
    const DOMAIN: &[u8] = b"rtp-middlebox srtp key v1\0";
    let provider = rtc_crypto::default_provider().map_err(|_| KeyError::Crypto)?;
    let mut input = [0u8; DOMAIN.len() + 24 + 1 + MAX_MATERIAL];
    let name = suite.sdp_name().as_bytes();
    let parts: [&[u8]; 4] = [DOMAIN, name, b"\0", material];
    let mut at = 0;
    for part in parts {
        input[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    let digest = provider.crypto().hash(HashAlgorithm::Sha256, &input[..at]);
    wipe(&mut input);
    let digest = digest.map_err(|_| KeyError::Crypto)?;
    let mut out = [0u8; 4];
    out.copy_from_slice(digest.get(..4).ok_or(KeyError::Crypto)?);
    Ok(out)
}

impl Drop for SrtpKeys {
    fn drop(&mut self) {
        wipe(&mut self.material);
    }
}

impl PartialEq for SrtpKeys {
    fn eq(&self, other: &Self) -> bool {
        self.suite == other.suite && rtc_crypto::constant_time_eq(&self.material, &other.material)
    }
}

impl Eq for SrtpKeys {}

impl fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &format_args!("{}", self.suite))
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SrtpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} key#{}", self.suite, self.fingerprint())
    }
}

/// Serializes as `{"suite": "...", "fingerprint": "..."}`: the key is
/// never written. This does not deserialize back (there is no key in it).
impl Serialize for SrtpKeys {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("SrtpKeys", 2)?;
        s.serialize_field("suite", &self.suite)?;
        s.serialize_field("fingerprint", &self.fingerprint())?;
        s.end()
    }
}

/// Deserializes from `{"suite": "AES_CM_128_HMAC_SHA1_80", "key": "inline:..."}`
/// (`key` takes anything [`SrtpKeys::from_key_params`] does; `inline` is an
/// alias). The intermediate string is wiped after parsing.
impl<'de> Deserialize<'de> for SrtpKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire {
            suite: CryptoSuite,
            #[serde(alias = "inline")]
            key: String,
        }
        let wire = Wire::deserialize(deserializer)?;
        let parsed = SrtpKeys::from_key_params(wire.suite, &wire.key);
        let mut secret = wire.key.into_bytes();
        wipe(&mut secret);
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 3711 B.3 master key and salt.
    const KEY: [u8; 16] = [
        0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39,
    ];
    const SALT: [u8; 14] = [
        0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
    ];
    const INLINE: &str = "4fl6DT4Bi+DWT6MsBt5BOQ7Gda1Jiv7rtpYLOqvm";

    fn secret_renderings(keys: &SrtpKeys) -> Vec<String> {
        let b64 = base64::encode(&keys.material[..keys.suite.key_material_len()]);
        let hex: String = keys.master_key().iter().map(|b| format!("{b:02x}")).collect();
        vec![
            b64[..16].to_string(),
            hex[..16].to_string(),
            hex[..16].to_uppercase(),
            format!("{:?}", &keys.master_key()[..4]),
        ]
    }

    #[test]
    fn suite_lengths_follow_rfc4568_and_rfc7714() {
        use CryptoSuite::*;
        let table = [
            (AesCm128HmacSha1_80, 16, 14, 10, 14),
            (AesCm128HmacSha1_32, 16, 14, 4, 14),
            (AeadAes128Gcm, 16, 12, 16, 20),
            (AeadAes256Gcm, 32, 12, 16, 20),
        ];
        for (suite, key, salt, srtp, srtcp) in table {
            assert_eq!(
                (suite.master_key_len(), suite.master_salt_len()),
                (key, salt),
                "{suite}"
            );
            assert_eq!(
                (suite.srtp_overhead(), suite.srtcp_overhead()),
                (srtp, srtcp),
                "{suite}"
            );
            // The crate agrees with our table.
            let p = suite.profile();
            assert_eq!((p.key_len(), p.salt_len()), (key, salt), "{suite}");
            assert_eq!(p.rtcp_auth_tag_len() + p.aead_auth_tag_len() + 4, srtcp, "{suite}");
            assert_eq!(p.rtp_auth_tag_len() + p.aead_auth_tag_len(), srtp, "{suite}");
        }
    }

    #[test]
    fn suite_names_round_trip() {
        for suite in CryptoSuite::ALL {
            assert_eq!(suite.to_string().parse::<CryptoSuite>().unwrap(), suite);
            assert_eq!(suite.dtls_srtp_name().parse::<CryptoSuite>().unwrap(), suite);
            assert_eq!(suite.sdp_name().to_lowercase().parse::<CryptoSuite>().unwrap(), suite);
            let json = serde_json::to_string(&suite).unwrap();
            assert_eq!(json, format!("\"{}\"", suite.sdp_name()));
            assert_eq!(serde_json::from_str::<CryptoSuite>(&json).unwrap(), suite);
        }
        for bad in [
            "",
            "AES_CM_128_HMAC_SHA1",
            "AES_256_CM_HMAC_SHA1_80",
            "F8_128_HMAC_SHA1_80",
            "NULL_HMAC_SHA1_80",
        ] {
            assert_eq!(bad.parse::<CryptoSuite>(), Err(KeyError::UnknownSuite), "{bad}");
        }
        assert!(serde_json::from_str::<CryptoSuite>("\"AES_192_CM_HMAC_SHA1_80\"").is_err());
    }

    #[test]
    fn parses_inline_and_raw_base64() {
        let expect = SrtpKeys::new(CryptoSuite::AesCm128HmacSha1_80, &KEY, &SALT).unwrap();
        for form in [
            INLINE.to_string(),
            format!("inline:{INLINE}"),
            format!("  INLINE:{INLINE}\n"),
        ] {
            let keys = SrtpKeys::from_key_params(CryptoSuite::AesCm128HmacSha1_80, &form).unwrap();
            assert_eq!(keys, expect);
            assert_eq!(keys.master_key(), KEY);
            assert_eq!(keys.master_salt(), SALT);
        }
        assert_eq!(expect.expose_inline_secret(), format!("inline:{INLINE}"));
    }

    #[test]
    fn lengths_are_checked_per_suite() {
        for suite in CryptoSuite::ALL {
            for len in [0, 12, 16, 28, 30, 44, 46, 60] {
                let material: Vec<u8> = (0..len as u8).collect();
                let got = SrtpKeys::from_key_params(suite, &base64::encode(&material));
                if len == suite.key_material_len() {
                    let keys = got.unwrap();
                    assert_eq!(keys.master_key(), &material[..suite.master_key_len()]);
                    assert_eq!(keys.master_salt(), &material[suite.master_key_len()..]);
                } else {
                    assert_eq!(
                        got.unwrap_err(),
                        KeyError::WrongLength {
                            suite,
                            expected: suite.key_material_len(),
                            got: len
                        }
                    );
                }
            }
            let key = vec![7u8; suite.master_key_len()];
            assert!(SrtpKeys::new(suite, &key, &vec![1u8; suite.master_salt_len()]).is_ok());
            assert!(matches!(
                SrtpKeys::new(suite, &key, &[1u8; 13]),
                Err(KeyError::WrongLength { .. })
            ));
        }
        // A very long input is refused by length without overflowing the buffer.
        let long = "QUFB".repeat(1000);
        assert_eq!(
            SrtpKeys::from_key_params(CryptoSuite::AeadAes256Gcm, &long).unwrap_err(),
            KeyError::WrongLength {
                suite: CryptoSuite::AeadAes256Gcm,
                expected: 44,
                got: 3000
            }
        );
    }

    #[test]
    fn refuses_unsupported_parameters() {
        let s = CryptoSuite::AesCm128HmacSha1_80;
        let cases = [
            (format!("inline:{INLINE}|2^20"), KeyError::LifetimeUnsupported),
            (format!("inline:{INLINE}|1048576"), KeyError::LifetimeUnsupported),
            (format!("inline:{INLINE}|1:4"), KeyError::MkiUnsupported),
            (format!("inline:{INLINE}|2^20|1:4"), KeyError::MkiUnsupported),
            (format!("{INLINE}|1:4"), KeyError::MkiUnsupported),
            (
                format!("inline:{INLINE};inline:{INLINE}"),
                KeyError::MultipleKeysUnsupported,
            ),
            (format!("uri:{INLINE}"), KeyError::UnsupportedKeyMethod),
            (format!("inline:{}!", &INLINE[..39]), KeyError::BadBase64),
            (
                "inline:".to_string(),
                KeyError::WrongLength {
                    suite: s,
                    expected: 30,
                    got: 0,
                },
            ),
            (format!("inline:{}", &INLINE[..39]), KeyError::BadBase64),
            (INLINE.replace('+', "-"), KeyError::BadBase64),
        ];
        for (input, want) in cases {
            assert_eq!(SrtpKeys::from_key_params(s, &input).unwrap_err(), want, "{input}");
        }
    }

    #[test]
    fn parses_sdp_crypto_attributes() {
        let (tag, keys) =
            SrtpKeys::from_crypto_attribute(&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}\r\n"))
                .unwrap();
        assert_eq!(
            (tag, keys.suite(), keys.master_key()),
            (1, CryptoSuite::AesCm128HmacSha1_80, &KEY[..])
        );
        let (tag, _) =
            SrtpKeys::from_crypto_attribute(&format!("crypto:42 AES_CM_128_HMAC_SHA1_32 inline:{INLINE}")).unwrap();
        assert_eq!(tag, 42);
        let cases = [
            (
                format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE} UNENCRYPTED_SRTCP"),
                KeyError::SessionParamsUnsupported,
            ),
            (
                format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|2^31"),
                KeyError::LifetimeUnsupported,
            ),
            (
                format!("a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{INLINE}"),
                KeyError::UnknownSuite,
            ),
            (
                format!("a=crypto:1 AEAD_AES_128_GCM inline:{INLINE}"),
                KeyError::WrongLength {
                    suite: CryptoSuite::AeadAes128Gcm,
                    expected: 28,
                    got: 30,
                },
            ),
            (
                format!("a=crypto:x AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"),
                KeyError::MalformedAttribute,
            ),
            (
                format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 {INLINE}"),
                KeyError::UnsupportedKeyMethod,
            ),
            (
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80".to_string(),
                KeyError::MalformedAttribute,
            ),
            (
                format!("a=fingerprint:1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}"),
                KeyError::MalformedAttribute,
            ),
            // A key pasted into the suite position must not be echoed.
            (
                format!("a=crypto:1 inline:{INLINE} AES_CM_128_HMAC_SHA1_80"),
                KeyError::UnknownSuite,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(SrtpKeys::from_crypto_attribute(&input).unwrap_err(), want, "{input}");
        }
    }

    #[test]
    fn renderings_redact_the_key() {
        for suite in CryptoSuite::ALL {
            let keys = SrtpKeys::generate(suite).unwrap();
            let shown = [
                format!("{keys:?}"),
                format!("{keys:#?}"),
                keys.to_string(),
                serde_json::to_string(&keys).unwrap(),
                toml::to_string(&keys).unwrap(),
            ];
            for text in &shown {
                assert!(text.contains(suite.sdp_name()), "{text}");
                assert!(text.contains(&keys.fingerprint()), "{text}");
                for secret in secret_renderings(&keys) {
                    assert!(!text.contains(&secret), "{text} leaks {secret}");
                }
            }
            assert_eq!(
                serde_json::to_value(&keys).unwrap(),
                serde_json::json!({"suite": suite.sdp_name(), "fingerprint": keys.fingerprint()})
            );
        }
    }

    #[test]
    fn errors_never_echo_input() {
        let keys = SrtpKeys::generate(CryptoSuite::AesCm128HmacSha1_80).unwrap();
        let inline = keys.expose_inline_secret();
        let b64 = inline.trim_start_matches("inline:");
        let messages = [
            SrtpKeys::from_key_params(CryptoSuite::AeadAes256Gcm, &inline)
                .unwrap_err()
                .to_string(),
            SrtpKeys::from_key_params(CryptoSuite::AesCm128HmacSha1_80, &format!("{inline}|2^20"))
                .unwrap_err()
                .to_string(),
            SrtpKeys::from_key_params(CryptoSuite::AesCm128HmacSha1_80, &format!("{inline}#"))
                .unwrap_err()
                .to_string(),
            SrtpKeys::from_crypto_attribute(&format!("a=crypto:1 {b64} {inline}"))
                .unwrap_err()
                .to_string(),
            serde_json::from_str::<SrtpKeys>(&format!(r#"{{"suite":"{b64}","key":"{inline}"}}"#))
                .unwrap_err()
                .to_string(),
        ];
        for e in messages {
            assert!(!e.contains(&b64[..12]), "{e}");
        }
        // serde's own messages too.
        let e = serde_json::from_str::<SrtpKeys>(&format!(r#"{{"suite":"AEAD_AES_128_GCM","key":"{inline}"}}"#))
            .unwrap_err();
        assert!(!e.to_string().contains(&b64[..12]), "{e}");
        assert!(e.to_string().contains("must decode to 28 bytes"), "{e}");
    }

    #[test]
    fn deserializes_from_suite_and_key() {
        let json = format!(r#"{{"suite": "AES_CM_128_HMAC_SHA1_80", "key": "inline:{INLINE}"}}"#);
        let keys: SrtpKeys = serde_json::from_str(&json).unwrap();
        assert_eq!(keys.master_key(), KEY);
        let toml_text = format!(
            "suite = \"AEAD_AES_128_GCM\"\ninline = \"{}\"\n",
            base64::encode(&[9u8; 28])
        );
        let keys: SrtpKeys = toml::from_str(&toml_text).unwrap();
        assert_eq!(keys.suite(), CryptoSuite::AeadAes128Gcm);
        assert!(serde_json::from_str::<SrtpKeys>(&serde_json::to_string(&keys).unwrap()).is_err());
    }

    #[test]
    fn fingerprint_is_stable_and_key_dependent() {
        let a = SrtpKeys::new(CryptoSuite::AesCm128HmacSha1_80, &KEY, &SALT).unwrap();
        let b = SrtpKeys::new(CryptoSuite::AesCm128HmacSha1_32, &KEY, &SALT).unwrap();
        let mut salt = SALT;
        salt[13] ^= 1;
        let c = SrtpKeys::new(CryptoSuite::AesCm128HmacSha1_80, &KEY, &salt).unwrap();
        // Pinned: documentation and operators' notes refer to it.
        assert_eq!(a.fingerprint(), "a2613438");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, a.clone());
    }

    #[test]
    fn key_error_labels_are_listed() {
        let all = [
            KeyError::UnknownSuite,
            KeyError::BadBase64,
            KeyError::WrongLength {
                suite: CryptoSuite::AeadAes128Gcm,
                expected: 28,
                got: 0,
            },
            KeyError::LifetimeUnsupported,
            KeyError::MkiUnsupported,
            KeyError::MultipleKeysUnsupported,
            KeyError::UnsupportedKeyMethod,
            KeyError::SessionParamsUnsupported,
            KeyError::MalformedAttribute,
            KeyError::Crypto,
        ];
        assert_eq!(all.map(|e| e.label()), KeyError::LABELS);
    }

    #[test]
    fn drop_wipes_the_material() {
        let mut slot =
            std::mem::MaybeUninit::new(SrtpKeys::new(CryptoSuite::AesCm128HmacSha1_80, &KEY, &SALT).unwrap());
        // SAFETY: the value is initialised; after drop_in_place we only read
        // its bytes (u8 arrays, no invariants) and never use it as SrtpKeys.
        unsafe {
            std::ptr::drop_in_place(slot.as_mut_ptr());
            let material = std::ptr::addr_of!((*slot.as_ptr()).material).read();
            assert_eq!(material, [0u8; MAX_MATERIAL]);
        }
    }
}
