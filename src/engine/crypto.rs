//! SRTCP inside one session when keys were provisioned (SDES, RFC 4568):
//! read the reports SRTCP carries, protect the proxy's own reports, and
//! re-protect what `terminate` rewrites.
//!
//! Keys are named by the direction they protect: `client` keys protect what
//! the client sends, `upstream` keys what the upstream sends. So SRTCP from
//! a side is opened with that side's keys, and anything the proxy sends
//! toward a side is protected with the keys that side's receiver expects:
//! the other side's.
//!
//! Indices (RFC 3711 §3.4, §9.1: an index must never repeat under one key
//! and SSRC):
//! - the proxy's own reports use its own SSRC, which no endpoint protects
//!   with these keys, and one counter from 1 for both directions and every
//!   key the session is ever given ([`SrtcpMemory`]): with equal client and
//!   upstream keys, two per-direction counters would both send index 1 under
//!   one (key, SSRC), and a counter reset by re-provisioning would repeat
//!   indices already sent under a key provisioned again. AES-CM would then
//!   reuse keystream (RFC 3711 §9.1) and GCM a nonce (RFC 7714 §16), which
//!   lets an observer forge;
//! - in `terminate` every compound an endpoint sends is re-protected under
//!   the endpoint's SSRC at [`reprotect_index`] of its original index (the
//!   other half of the 31-bit space), all of them, so the receiver's replay
//!   window sees one consistent sequence. Removing the keys (or one
//!   direction's) would forward the endpoint's own indices, which that
//!   window has left behind (2^30 behind: RFC 3711 §3.3.2 drops them), so
//!   the engine refuses it in `terminate` ([`super::KeysOutcome::Refused`]).
//!
//! Replay state (RFC 3711 §3.3.2) belongs to a key and a sender SSRC, not to
//! one provisioning: re-provisioning a key keeps its windows, so a packet
//! captured before re-keying is still refused after it, and both directions
//! share one reader (and so one window per SSRC) when their keys are equal.

use super::Side;
use crate::dtls::LegKeys;
use crate::srtp::{reprotect_index, srtcp_trailer, ReplayTable, SrtcpProtector, SrtcpReader, SrtpError, SrtpKeys};

/// Keys whose replay windows a session remembers after they were replaced;
/// beyond it the least recently used key's are forgotten.
pub const MAX_REMEMBERED_KEYS: usize = 8;

/// What outlives a session's crypto contexts: kept through re-provisioning
/// and removal, for the session's whole life.
#[derive(Default)]
pub struct SrtcpMemory {
    /// Last SRTCP index of the proxy's own reports, whichever direction and
    /// key protected them.
    own_index: u32,
    /// Replay windows of keys no reader uses now, most recent last.
    replay: Vec<(SrtpKeys, ReplayTable)>,
}

impl SrtcpMemory {
    /// Keeps `table` as `keys`' replay state.
    fn keep(&mut self, keys: &SrtpKeys, table: ReplayTable) {
        self.replay.retain(|(k, _)| !same_key(k, keys));
        if self.replay.len() >= MAX_REMEMBERED_KEYS {
            self.replay.remove(0);
        }
        self.replay.push((keys.clone(), table));
    }

    /// `keys`' replay state, when remembered.
    fn take(&mut self, keys: &SrtpKeys) -> Option<ReplayTable> {
        let at = self.replay.iter().position(|(k, _)| same_key(k, keys))?;
        Some(self.replay.remove(at).1)
    }
}

impl std::fmt::Debug for SrtcpMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtcpMemory")
            .field("own_index", &self.own_index)
            .field("keys", &self.replay.len())
            .finish()
    }
}

/// One key as far as keystream and replay go: the same master key and salt
/// derive the same SRTCP session keys (RFC 3711 §4.3) whatever the tag
/// length the suite names.
fn same_key(a: &SrtpKeys, b: &SrtpKeys) -> bool {
    a.master_key() == b.master_key() && a.master_salt() == b.master_salt()
}

/// A session's provisioned keys, per sending direction.
#[derive(Clone, Debug, Default)]
pub struct SessionKeys {
    /// Protect what the client sends.
    pub client: Option<SrtpKeys>,
    /// Protect what the upstream sends.
    pub upstream: Option<SrtpKeys>,
}

impl SessionKeys {
    /// The suite of the keys (the client's, else the upstream's).
    pub fn suite(&self) -> Option<crate::srtp::CryptoSuite> {
        self.client.as_ref().or(self.upstream.as_ref()).map(SrtpKeys::suite)
    }
}

/// The session's SRTCP contexts.
pub struct SessionCrypto {
    /// One reader per distinct key.
    readers: Vec<SrtcpReader>,
    /// Which reader opens SRTCP from each side (indexed by the sending
    /// side); both sides name the same one when their keys are equal.
    reader_of: [Option<usize>; 2],
    /// Protect toward each side (indexed by the receiving side).
    writers: [Option<SrtcpProtector>; 2],
    /// The own index counter and past keys' replay windows.
    memory: SrtcpMemory,
    /// The plain compound of the last [`SessionCrypto::open`].
    pub plain: Vec<u8>,
    /// Key fingerprints per direction, for the API (never the keys).
    pub fingerprints: [Option<String>; 2],
    /// Keys from back-to-back DTLS: each leg has its own, so every SRTCP
    /// compound is re-protected for the other leg, whatever the mode.
    pub back_to_back: bool,
}

impl SessionCrypto {
    pub fn new(keys: &SessionKeys) -> Result<Self, SrtpError> {
        let writer = |k: &Option<SrtpKeys>| k.as_ref().map(SrtcpProtector::new).transpose();
        let (readers, reader_of) = readers([keys.client.as_ref(), keys.upstream.as_ref()])?;
        Ok(SessionCrypto {
            readers,
            reader_of,
            // Toward the client: what the client expects from the upstream.
            writers: [writer(&keys.upstream)?, writer(&keys.client)?],
            memory: SrtcpMemory::default(),
            plain: Vec::new(),
            fingerprints: [
                keys.client.as_ref().map(SrtpKeys::fingerprint),
                keys.upstream.as_ref().map(SrtpKeys::fingerprint),
            ],
            back_to_back: false,
        })
    }

    /// Contexts for back-to-back DTLS-SRTP: SRTCP from a side opens with
    /// what that leg's peer writes with; toward a side the proxy protects
    /// with its own write keys of that leg (RFC 5764 §4.2).
    pub fn back_to_back(client: &LegKeys, upstream: &LegKeys) -> Result<Self, SrtpError> {
        let (readers, reader_of) = readers([Some(&client.peer_write), Some(&upstream.peer_write)])?;
        Ok(SessionCrypto {
            readers,
            reader_of,
            writers: [
                Some(SrtcpProtector::new(&client.own_write)?),
                Some(SrtcpProtector::new(&upstream.own_write)?),
            ],
            memory: SrtcpMemory::default(),
            plain: Vec::new(),
            fingerprints: [
                Some(client.peer_write.fingerprint()),
                Some(upstream.peer_write.fingerprint()),
            ],
            back_to_back: true,
        })
    }

    /// Takes over what the session's previous contexts kept: the own index
    /// counter, and the replay windows of any key provisioned again.
    pub fn adopt(&mut self, mut memory: SrtcpMemory) {
        for reader in &mut self.readers {
            if let Some(table) = memory.take(reader.keys()) {
                reader.restore_replay(table);
            }
        }
        self.memory = memory;
    }

    /// What must outlive these contexts ([`Self::adopt`]).
    pub fn into_memory(mut self) -> SrtcpMemory {
        for reader in &mut self.readers {
            let table = reader.take_replay();
            self.memory.keep(reader.keys(), table);
        }
        self.memory
    }

    fn reader(&mut self, side: Side) -> Option<&mut SrtcpReader> {
        let i = self.reader_of[side.index()]?;
        self.readers.get_mut(i)
    }

    /// Authenticates and decrypts SRTCP from `side` into [`Self::plain`];
    /// `None` when there are no keys for that side.
    pub fn open(&mut self, side: Side, datagram: &[u8]) -> Option<Result<(), SrtpError>> {
        let mut plain = std::mem::take(&mut self.plain);
        let result = self.reader(side).map(|r| r.decrypt(datagram, &mut plain));
        self.plain = plain;
        result
    }

    /// The SRTCP index of a datagram from `side` (clear trailer).
    pub fn index_of(&self, side: Side, datagram: &[u8]) -> Option<u32> {
        let reader = self.readers.get(self.reader_of[side.index()]?)?;
        srtcp_trailer(datagram, reader.suite().srtcp_tag_len()).map(|(_, i)| i)
    }

    pub fn can_protect_toward(&self, side: Side) -> bool {
        self.writers[side.index()].is_some()
    }

    /// Protects one of the proxy's own compounds toward `side`.
    pub fn protect_own(&mut self, toward: Side, plain: &[u8], out: &mut Vec<u8>) -> Option<Result<(), SrtpError>> {
        let writer = self.writers[toward.index()].as_mut()?;
        // One counter for both directions and every key (module docs); the
        // index is 31 bits (RFC 3711 §3.4).
        let next = (self.memory.own_index + 1) & 0x7fff_ffff;
        let result = writer.protect(plain, next, out);
        if result.is_ok() {
            self.memory.own_index = next;
        }
        Some(result)
    }

    /// Re-protects an endpoint's compound toward `side` at the mapped index.
    pub fn reprotect(
        &mut self,
        toward: Side,
        plain: &[u8],
        original_index: u32,
        out: &mut Vec<u8>,
    ) -> Option<Result<(), SrtpError>> {
        let writer = self.writers[toward.index()].as_mut()?;
        Some(writer.protect(plain, reprotect_index(original_index), out))
    }
}

/// One reader per distinct key of the two sending sides, and which one
/// each side's SRTCP opens with.
type Readers = (Vec<SrtcpReader>, [Option<usize>; 2]);

fn readers(keys: [Option<&SrtpKeys>; 2]) -> Result<Readers, SrtpError> {
    let mut readers: Vec<SrtcpReader> = Vec::with_capacity(2);
    let mut reader_of = [None; 2];
    for (side, k) in keys.into_iter().enumerate() {
        let Some(k) = k else { continue };
        reader_of[side] = Some(match readers.iter().position(|r| same_key(r.keys(), k)) {
            Some(i) => i,
            None => {
                readers.push(SrtcpReader::new(k)?);
                readers.len() - 1
            }
        });
    }
    Ok((readers, reader_of))
}

impl std::fmt::Debug for SessionCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCrypto")
            .field("fingerprints", &self.fingerprints)
            .finish_non_exhaustive()
    }
}
