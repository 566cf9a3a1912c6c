//! SRTCP contexts (RFC 3711 §3.4, RFC 7714 §9) on top of `rtc-srtp`, and
//! the keyless trailer reader.
//!
//! What this layer adds to `rtc_srtp::context::Context`, and why:
//!
//! - **Refuses E = 0.** For the AES-CM suites the crate returns a packet
//!   whose E flag is clear *without checking its tag* (it treats it as
//!   unencrypted and skips authentication). An attacker could then inject
//!   any RTCP by clearing one bit. The reader rejects such packets as
//!   [`SrtpError::Unencrypted`] before the crate sees them (SDES
//!   `UNENCRYPTED_SRTCP` is not supported anyway).
//! - **Replay protection after authentication only.** The crate's per-SSRC
//!   state is created for every SSRC it is shown, authenticated or not, and
//!   never removed; its replay detector is off unless asked for. The reader
//!   keeps its own RFC 3711 §3.3.2 window (128 indices, as libsrtp uses for
//!   SRTCP) per sender SSRC, created only once a packet from that SSRC
//!   authenticated, in a table of at most [`MAX_REPLAY_SSRCS`] senders.
//! - **Bounded state under hostile input.** The crate context is rebuilt
//!   from the keys whenever unauthenticated packets have shown it more than
//!   [`MAX_CONTEXT_SSRCS`] distinct SSRCs (rebuilding costs a key derivation,
//!   a few microseconds; replay state lives here and survives it).
//! - **Stable error labels.** Every failure maps to an [`SrtpError`].

use std::collections::{HashMap, HashSet};
use std::fmt;

use rtc_srtp::context::Context;
use rtc_srtp::option::{srtcp_no_replay_protection, srtp_no_replay_protection};

use super::keys::{CryptoSuite, SrtpKeys};

/// RTCP header (4) + sender SSRC (4): the part of SRTCP that stays clear.
const CLEAR_PREFIX: usize = 8;

/// The SRTCP index is 31 bits (RFC 3711 §3.4).
const INDEX_MASK: u32 = 0x7fff_ffff;

/// Replay window width in indices (RFC 3711 §3.3.2: at least 64).
pub const SRTCP_REPLAY_WINDOW: u32 = 128;

/// Senders whose replay state a reader keeps; beyond it the least recently
/// accepted one is forgotten.
pub(crate) const MAX_REPLAY_SSRCS: usize = 64;

/// Distinct SSRCs the crate context may hold state for before it is rebuilt.
pub(crate) const MAX_CONTEXT_SSRCS: usize = 256;

/// Why an SRTCP packet was not decrypted or encrypted. [`label`](Self::label)
/// is a stable, bounded counter label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SrtpError {
    /// Shorter than the clear 8 bytes plus the suite's SRTCP trailer.
    #[error("SRTCP packet too short")]
    TooShort,
    /// The RTCP version field is not 2.
    #[error("SRTCP packet is not RTP version 2")]
    BadVersion,
    /// The E flag is clear: unencrypted SRTCP is not accepted (see module docs).
    #[error("SRTCP packet has the E flag clear (unencrypted SRTCP is not supported)")]
    Unencrypted,
    /// The authentication tag did not verify (wrong keys, corruption, forgery).
    #[error("SRTCP authentication failed")]
    AuthFailed,
    /// The index was already accepted from this sender, or is older than
    /// the replay window.
    #[error("SRTCP packet replayed or too old")]
    Replayed,
    /// The crypto provider failed to build a context or encrypt.
    #[error("SRTCP crypto provider error")]
    Crypto,
}

impl SrtpError {
    /// Every variant, in label order, for a metric table.
    pub const ALL: [SrtpError; 6] = [
        SrtpError::TooShort,
        SrtpError::BadVersion,
        SrtpError::Unencrypted,
        SrtpError::AuthFailed,
        SrtpError::Replayed,
        SrtpError::Crypto,
    ];

    /// A stable, bounded label for counters.
    pub const fn label(self) -> &'static str {
        match self {
            SrtpError::TooShort => "too_short",
            SrtpError::BadVersion => "bad_version",
            SrtpError::Unencrypted => "unencrypted",
            SrtpError::AuthFailed => "auth_failed",
            SrtpError::Replayed => "replayed",
            SrtpError::Crypto => "crypto_error",
        }
    }
}

/// Reads the E flag and the 31-bit SRTCP index from the clear trailer of an
/// SRTCP packet, without keys (RFC 3711 §3.4).
///
/// `tag_len` is the number of bytes *after* the E + index word: 10 for the
/// AES-CM HMAC-SHA1 suites (both `_80` and `_32`), 0 for AES-GCM, whose
/// 16-byte tag sits before the word (see
/// [`CryptoSuite::srtcp_tag_len`]). Returns `None` when the packet is too
/// short to hold the clear 8-byte prefix, the word and the tag.
///
/// Without keys the suite is usually unknown; WebRTC always sets E, and a
/// sender's index grows by one per packet, so an observer can try both
/// layouts (10 and 0) and keep the one whose per-SSRC indices run on.
///
/// ```
/// use rtp_middlebox::srtp::srtcp_trailer;
///
/// // RFC 7714 §17: ... | GCM tag | 80 00 05 d4 (E = 1, index 0x5d4).
/// let mut pkt = vec![0x81, 0xc8, 0x00, 0x0d, 0x4d, 0x61, 0x72, 0x73];
/// pkt.extend_from_slice(&[0u8; 16]);
/// pkt.extend_from_slice(&[0x80, 0x00, 0x05, 0xd4]);
/// assert_eq!(srtcp_trailer(&pkt, 0), Some((true, 0x5d4)));
/// assert_eq!(srtcp_trailer(&pkt[..11], 0), None);
/// ```
pub fn srtcp_trailer(packet: &[u8], tag_len: usize) -> Option<(bool, u32)> {
    let end = packet.len().checked_sub(tag_len)?;
    let start = end.checked_sub(4)?;
    if start < CLEAR_PREFIX {
        return None;
    }
    let word = u32::from_be_bytes(packet.get(start..end)?.try_into().ok()?);
    Some((word >> 31 == 1, word & INDEX_MASK))
}

/// Checks the fixed prefix every SRTCP (and RTCP) packet shares and returns
/// the sender SSRC.
fn clear_prefix(packet: &[u8], min_len: usize) -> Result<u32, SrtpError> {
    if packet.len() < min_len.max(CLEAR_PREFIX) {
        return Err(SrtpError::TooShort);
    }
    match packet.first().map(|b| b >> 6) {
        Some(2) => {}
        _ => return Err(SrtpError::BadVersion),
    }
    let ssrc = packet.get(4..8).and_then(|s| s.try_into().ok()).map(u32::from_be_bytes);
    ssrc.ok_or(SrtpError::TooShort)
}

fn new_context(keys: &SrtpKeys) -> Result<Context, SrtpError> {
    let provider = rtc_srtp::crypto::default_provider().map_err(|_| SrtpError::Crypto)?;
    Context::new(
        keys.master_key(),
        keys.master_salt(),
        keys.suite().profile(),
        Some(srtp_no_replay_protection()),
        Some(srtcp_no_replay_protection()),
        provider.crypto(),
    )
    .map_err(|_| SrtpError::Crypto)
}

/// An SRTP (media) context for one direction of a back-to-back DTLS-SRTP
/// session: `rtc-srtp` keeps the ROC per SSRC and checks replays (RFC 3711
/// §3.3.2) over 512 packets, wide enough for the reordering real paths show.
pub fn media_context(keys: &SrtpKeys) -> Result<Context, SrtpError> {
    let provider = rtc_srtp::crypto::default_provider().map_err(|_| SrtpError::Crypto)?;
    Context::new(
        keys.master_key(),
        keys.master_salt(),
        keys.suite().profile(),
        Some(rtc_srtp::option::srtp_replay_protection(512)),
        Some(srtcp_no_replay_protection()),
        provider.crypto(),
    )
    .map_err(|_| SrtpError::Crypto)
}

/// RFC 3711 §3.3.2 sliding window over the 31-bit SRTCP index of one sender.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplayWindow {
    /// Highest index accepted.
    top: u32,
    /// Bit `i` set: index `top - i` accepted.
    seen: u128,
    /// Reader-wide acceptance counter when this sender last got a packet in.
    last_used: u64,
}

impl ReplayWindow {
    fn new(index: u32, now: u64) -> Self {
        ReplayWindow {
            top: index & INDEX_MASK,
            seen: 1,
            last_used: now,
        }
    }

    /// Indices up to 2^30 ahead of `top` (mod 2^31) count as new, the rest
    /// as behind, so the window follows the index through its wrap.
    fn position(&self, index: u32) -> Result<u32, u32> {
        let ahead = index.wrapping_sub(self.top) & INDEX_MASK;
        if ahead != 0 && ahead < 1 << 30 {
            Ok(ahead)
        } else {
            Err(self.top.wrapping_sub(index) & INDEX_MASK)
        }
    }

    pub(crate) fn check(&self, index: u32) -> bool {
        match self.position(index) {
            Ok(_) => true,
            Err(behind) => behind < SRTCP_REPLAY_WINDOW && self.seen & (1u128 << behind) == 0,
        }
    }

    pub(crate) fn accept(&mut self, index: u32, now: u64) {
        match self.position(index) {
            Ok(ahead) => {
                self.seen = if ahead >= SRTCP_REPLAY_WINDOW {
                    1
                } else {
                    (self.seen << ahead) | 1
                };
                self.top = index & INDEX_MASK;
            }
            Err(behind) if behind < SRTCP_REPLAY_WINDOW => self.seen |= 1u128 << behind,
            Err(_) => {}
        }
        self.last_used = now;
    }
}

/// Authenticates, replay-checks and decrypts SRTCP for one direction.
///
/// One reader per key (direction): it accepts packets from any sender SSRC
/// under that key and keeps a replay window per sender. Failures leave its
/// state untouched: a forged or corrupted packet never advances a window.
pub struct SrtcpReader {
    keys: SrtpKeys,
    ctx: Context,
    /// SSRCs the crate context has created state for.
    ctx_ssrcs: HashSet<u32>,
    replay: HashMap<u32, ReplayWindow>,
    accepted: u64,
}

impl SrtcpReader {
    /// A reader for packets protected with `keys` (the sender's keys).
    pub fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        Ok(SrtcpReader {
            keys: keys.clone(),
            ctx: new_context(keys)?,
            ctx_ssrcs: HashSet::new(),
            replay: HashMap::new(),
            accepted: 0,
        })
    }

    /// The suite of the keys this reader was built with.
    pub(crate) fn suite(&self) -> CryptoSuite {
        self.keys.suite()
    }

    /// The fingerprint of the keys this reader was built with.
    pub fn fingerprint(&self) -> String {
        self.keys.fingerprint()
    }

    /// Decrypts one SRTCP packet into `out` (cleared first): the plain RTCP
    /// compound, without the E + index word and tags. On error `out` is
    /// left as it was.
    pub fn decrypt(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let suite = self.keys.suite();
        let ssrc = clear_prefix(packet, CLEAR_PREFIX + suite.srtcp_overhead())?;
        let (encrypted, index) = srtcp_trailer(packet, suite.srtcp_tag_len()).ok_or(SrtpError::TooShort)?;
        if !encrypted {
            return Err(SrtpError::Unencrypted);
        }
        if self.replay.get(&ssrc).is_some_and(|w| !w.check(index)) {
            return Err(SrtpError::Replayed);
        }
        self.make_room(ssrc)?;
        // After the checks above the crate can only fail authentication
        // (its length, version and E-flag errors are pre-empted), so every
        // error it returns is counted as one.
        let plain = self.ctx.decrypt_rtcp(packet).map_err(|_| SrtpError::AuthFailed)?;
        self.accept(ssrc, index);
        out.clear();
        out.extend_from_slice(&plain);
        Ok(())
    }

    /// Lets the crate context see `ssrc`, rebuilding it first when it holds
    /// state for too many SSRCs.
    fn make_room(&mut self, ssrc: u32) -> Result<(), SrtpError> {
        if self.ctx_ssrcs.contains(&ssrc) {
            return Ok(());
        }
        if self.ctx_ssrcs.len() >= MAX_CONTEXT_SSRCS {
            self.ctx = new_context(&self.keys)?;
            self.ctx_ssrcs.clear();
        }
        self.ctx_ssrcs.insert(ssrc);
        Ok(())
    }

    fn accept(&mut self, ssrc: u32, index: u32) {
        self.accepted += 1;
        let now = self.accepted;
        if let Some(window) = self.replay.get_mut(&ssrc) {
            window.accept(index, now);
            return;
        }
        if self.replay.len() >= MAX_REPLAY_SSRCS {
            let oldest = self.replay.iter().min_by_key(|(_, w)| w.last_used).map(|(&s, _)| s);
            if let Some(oldest) = oldest {
                self.replay.remove(&oldest);
            }
        }
        self.replay.insert(ssrc, ReplayWindow::new(index, now));
    }

    /// Senders with replay state (authenticated at least once).
    pub fn senders(&self) -> usize {
        self.replay.len()
    }

    /// The keys this reader opens packets with.
    pub(crate) fn keys(&self) -> &SrtpKeys {
        &self.keys
    }

    /// Hands the replay windows over (the reader is being replaced).
    pub(crate) fn take_replay(&mut self) -> ReplayTable {
        std::mem::take(&mut self.replay)
    }

    /// Takes the replay windows a reader of the same key kept, so packets
    /// it accepted stay refused (RFC 3711 §3.3.2).
    pub(crate) fn restore_replay(&mut self, table: ReplayTable) {
        self.accepted = self
            .accepted
            .max(table.values().map(|w| w.last_used).max().unwrap_or(0));
        self.replay = table;
    }
}

/// A reader's replay windows, by sender SSRC.
pub(crate) type ReplayTable = HashMap<u32, ReplayWindow>;

impl fmt::Debug for SrtcpReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtcpReader")
            .field("keys", &self.keys)
            .field("senders", &self.replay.len())
            .finish_non_exhaustive()
    }
}

/// Protects RTCP compounds as SRTCP for one direction.
///
/// Each sender SSRC (the first packet's SSRC) gets its own SRTCP index,
/// starting at 1 and growing by one per packet, as libsrtp's does. Reusing
/// an index with the same key reuses keystream (and, for GCM, a nonce), so:
/// keep one writer per key for the key's lifetime, never build a second
/// writer for the same key and SSRC, and never protect packets under an
/// SSRC whose owner protects its own with the same key (the endpoint's
/// index space is not ours). The proxy's reports use its own SSRC.
pub struct SrtcpWriter {
    suite: CryptoSuite,
    fingerprint: String,
    protector: super::SrtcpProtector,
    /// Last index used per sender SSRC.
    indices: HashMap<u32, u32>,
}

impl SrtcpWriter {
    /// A writer protecting with `keys` (the keys the receiver decrypts with).
    pub fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        Ok(SrtcpWriter {
            suite: keys.suite(),
            fingerprint: keys.fingerprint(),
            protector: super::SrtcpProtector::new(keys)?,
            indices: HashMap::new(),
        })
    }

    /// The suite of the keys this writer was built with.
    pub fn suite(&self) -> CryptoSuite {
        self.suite
    }

    /// The fingerprint of the keys this writer was built with.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// Encrypts one plain RTCP compound into `out` (cleared first). The
    /// compound's first 8 bytes (header, sender SSRC) stay clear and select
    /// the index counter. On error `out` is left as it was.
    pub fn encrypt(&mut self, plain_compound: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let ssrc = clear_prefix(plain_compound, CLEAR_PREFIX)?;
        let next = self.indices.get(&ssrc).map_or(1, |i| (i + 1) & INDEX_MASK);
        self.protector.protect(plain_compound, next, out)?;
        self.indices.insert(ssrc, next);
        Ok(())
    }
}

impl fmt::Debug for SrtcpWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtcpWriter")
            .field("suite", &format_args!("{}", self.suite))
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(suite: CryptoSuite) -> SrtpKeys {
        SrtpKeys::made_up(suite, 29, 0x5a)
    }

    fn rr(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0xc9, 0x00, 0x01];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn replay_window_semantics() {
        let mut w = ReplayWindow::new(1000, 0);
        assert!(!w.check(1000));
        assert!(w.check(1001) && w.check(999) && w.check(1000 - 127));
        assert!(!w.check(1000 - 128), "older than the window");
        w.accept(1005, 1);
        assert!(!w.check(1005) && !w.check(1000));
        assert!(w.check(1003) && w.check(1004));
        w.accept(1003, 2);
        assert!(!w.check(1003));
        // A jump beyond the window forgets everything behind it.
        w.accept(5000, 3);
        assert!(!w.check(5000) && w.check(4999) && !w.check(1005));
        // Wrap of the 31-bit index: 0x7fffffff → 0 is "ahead".
        let mut w = ReplayWindow::new(INDEX_MASK - 1, 0);
        assert!(w.check(0) && w.check(INDEX_MASK));
        w.accept(1, 1);
        assert!(!w.check(1) && !w.check(INDEX_MASK - 1) && w.check(INDEX_MASK) && w.check(0) && w.check(2));
        w.accept(INDEX_MASK, 2);
        assert!(!w.check(INDEX_MASK));
    }

    #[test]
    fn failures_leave_no_replay_state() {
        for suite in CryptoSuite::ALL {
            let k = keys(suite);
            let mut writer = SrtcpWriter::new(&k).unwrap();
            let mut reader = SrtcpReader::new(&k).unwrap();
            let (mut wire, mut out) = (Vec::new(), vec![0xee]);
            writer.encrypt(&rr(7), &mut wire).unwrap();
            let mut forged = wire.clone();
            forged[9] ^= 1;
            assert_eq!(reader.decrypt(&forged, &mut out), Err(SrtpError::AuthFailed));
            assert_eq!(out, [0xee], "out untouched on error");
            assert_eq!(reader.senders(), 0);
            reader.decrypt(&wire, &mut out).unwrap();
            assert_eq!(out, rr(7));
            assert_eq!(reader.senders(), 1);
        }
    }

    #[test]
    fn hostile_ssrcs_do_not_grow_state() {
        let k = keys(CryptoSuite::AesCm128HmacSha1_80);
        let mut writer = SrtcpWriter::new(&k).unwrap();
        let mut reader = SrtcpReader::new(&k).unwrap();
        let mut out = Vec::new();
        let mut first = Vec::new();
        writer.encrypt(&rr(1), &mut first).unwrap();
        reader.decrypt(&first, &mut out).unwrap();
        // Forged packets from many SSRCs: the crate context is rebuilt, our
        // tables stay bounded, and the real sender's replay state survives.
        for ssrc in 0..(3 * MAX_CONTEXT_SSRCS as u32) {
            let mut forged = first.clone();
            forged[4..8].copy_from_slice(&(ssrc + 100).to_be_bytes());
            assert_eq!(reader.decrypt(&forged, &mut out), Err(SrtpError::AuthFailed));
            assert!(reader.ctx_ssrcs.len() <= MAX_CONTEXT_SSRCS);
        }
        assert_eq!(reader.senders(), 1);
        assert_eq!(reader.decrypt(&first, &mut out), Err(SrtpError::Replayed));
        let mut second = Vec::new();
        writer.encrypt(&rr(1), &mut second).unwrap();
        reader.decrypt(&second, &mut out).unwrap();
    }

    #[test]
    fn replay_table_evicts_least_recent_sender() {
        let k = keys(CryptoSuite::AeadAes128Gcm);
        let mut writer = SrtcpWriter::new(&k).unwrap();
        let mut reader = SrtcpReader::new(&k).unwrap();
        let (mut wire, mut out) = (Vec::new(), Vec::new());
        for ssrc in 0..(MAX_REPLAY_SSRCS as u32 + 10) {
            writer.encrypt(&rr(ssrc), &mut wire).unwrap();
            reader.decrypt(&wire, &mut out).unwrap();
        }
        assert_eq!(reader.senders(), MAX_REPLAY_SSRCS);
        assert!(!reader.replay.contains_key(&0) && reader.replay.contains_key(&(MAX_REPLAY_SSRCS as u32 + 9)));
    }

    #[test]
    fn reader_and_writer_are_send_and_debug_redacts() {
        fn send<T: Send>() {}
        send::<SrtcpReader>();
        send::<SrtcpWriter>();
        let k = keys(CryptoSuite::AeadAes256Gcm);
        let text = format!(
            "{:?} {:?}",
            SrtcpReader::new(&k).unwrap(),
            SrtcpWriter::new(&k).unwrap()
        );
        assert!(
            text.contains(&k.fingerprint()) && text.contains("AEAD_AES_256_GCM"),
            "{text}"
        );
        let hex: String = k.master_key().iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            !text.contains(&hex[..8]) && !text.contains(&format!("{:?}", &k.master_key()[..3])),
            "{text}"
        );
    }

    #[test]
    fn error_labels_are_unique() {
        let labels: HashSet<_> = SrtpError::ALL.iter().map(|e| e.label()).collect();
        assert_eq!(labels.len(), SrtpError::ALL.len());
    }
}
