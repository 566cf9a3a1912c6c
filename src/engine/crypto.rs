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
//!   with these keys, and its own counter from 1;
//! - in `terminate` every compound an endpoint sends is re-protected under
//!   the endpoint's SSRC at [`reprotect_index`] of its original index (the
//!   other half of the 31-bit space), all of them, so the receiver's replay
//!   window sees one consistent sequence.

use super::Side;
use crate::dtls::LegKeys;
use crate::srtp::{reprotect_index, srtcp_trailer, SrtcpProtector, SrtcpReader, SrtpError, SrtpKeys};

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
    /// Open SRTCP from each side (indexed by the sending side).
    readers: [Option<SrtcpReader>; 2],
    /// Protect toward each side (indexed by the receiving side).
    writers: [Option<SrtcpProtector>; 2],
    /// Last index of the proxy's own reports toward each side.
    own_index: [u32; 2],
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
        let reader = |k: &Option<SrtpKeys>| k.as_ref().map(SrtcpReader::new).transpose();
        let writer = |k: &Option<SrtpKeys>| k.as_ref().map(SrtcpProtector::new).transpose();
        Ok(SessionCrypto {
            readers: [reader(&keys.client)?, reader(&keys.upstream)?],
            // Toward the client: what the client expects from the upstream.
            writers: [writer(&keys.upstream)?, writer(&keys.client)?],
            own_index: [0; 2],
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
        Ok(SessionCrypto {
            readers: [
                Some(SrtcpReader::new(&client.peer_write)?),
                Some(SrtcpReader::new(&upstream.peer_write)?),
            ],
            writers: [
                Some(SrtcpProtector::new(&client.own_write)?),
                Some(SrtcpProtector::new(&upstream.own_write)?),
            ],
            own_index: [0; 2],
            plain: Vec::new(),
            fingerprints: [
                Some(client.peer_write.fingerprint()),
                Some(upstream.peer_write.fingerprint()),
            ],
            back_to_back: true,
        })
    }

    /// Authenticates and decrypts SRTCP from `side` into [`Self::plain`];
    /// `None` when there are no keys for that side.
    pub fn open(&mut self, side: Side, datagram: &[u8]) -> Option<Result<(), SrtpError>> {
        let reader = self.readers[side.index()].as_mut()?;
        Some(reader.decrypt(datagram, &mut self.plain))
    }

    /// The SRTCP index of a datagram from `side` (clear trailer).
    pub fn index_of(&self, side: Side, datagram: &[u8]) -> Option<u32> {
        let reader = self.readers[side.index()].as_ref()?;
        srtcp_trailer(datagram, reader.suite().srtcp_tag_len()).map(|(_, i)| i)
    }

    pub fn can_protect_toward(&self, side: Side) -> bool {
        self.writers[side.index()].is_some()
    }

    /// Protects one of the proxy's own compounds toward `side`.
    pub fn protect_own(&mut self, toward: Side, plain: &[u8], out: &mut Vec<u8>) -> Option<Result<(), SrtpError>> {
        let writer = self.writers[toward.index()].as_mut()?;
        let next = (self.own_index[toward.index()] + 1) & 0x7fff_ffff;
        let result = writer.protect(plain, next, out);
        if result.is_ok() {
            self.own_index[toward.index()] = next;
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

impl std::fmt::Debug for SessionCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCrypto")
            .field("fingerprints", &self.fingerprints)
            .finish_non_exhaustive()
    }
}
