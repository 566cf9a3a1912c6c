//! A session as seen from outside the engine (API, stream, exporters, the
//! end-of-session log): its statistics plus the socket facts only the
//! runtime knows, and the one definition of its public id.

use crate::engine::{SessionId, SessionSnapshot};
use serde::Serialize;
use std::net::SocketAddr;

/// A session as seen from outside: where it is and its statistics.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Globally unique: worker index and the engine's session id
    /// ([`view_id`]).
    pub id: String,
    pub worker: usize,
    pub relay: usize,
    /// Local address of the session's upstream socket (what the SFU sees).
    pub upstream_local: SocketAddr,
    pub upstream_rtcp_local: Option<SocketAddr>,
    /// ICMP errors (port/host unreachable) on this session's upstream
    /// socket(s): the upstream is not there.
    pub upstream_refused: u64,
    /// Wall clock minus the worker's monotonic clock, ms: a snapshot time
    /// `t` (s) happened at `t * 1000 + wall_offset_ms` ms since the epoch.
    pub wall_offset_ms: f64,
    pub snapshot: SessionSnapshot,
}

/// One worker's counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerStats {
    pub worker: usize,
    pub sessions: usize,
    pub io: crate::runtime::IoCounters,
    pub engine: Option<crate::engine::Counters>,
}

/// A session's public id: `"<worker>-<32 hex digits>"`, the engine id's 16
/// then `tag`'s 16. The engine id is a slot and a generation, so alone it
/// is guessable (the next session's is one more); `tag` is 64 random bits
/// the worker draws from the OS when the session opens, and every request
/// naming a session must carry it: a page that sprays ids at the API finds
/// none.
pub fn view_id(worker: usize, id: SessionId, tag: u64) -> String {
    format!("{worker}-{id}{tag:016x}")
}

/// Inverse of [`view_id`]: worker, engine id and tag.
pub fn parse_view_id(id: &str) -> Option<(usize, SessionId, u64)> {
    let (w, hex) = id.split_once('-')?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || !w.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let engine = u64::from_str_radix(&hex[..16], 16).ok()?;
    let tag = u64::from_str_radix(&hex[16..], 16).ok()?;
    Some((w.parse().ok()?, SessionId::from_u64(engine), tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id = SessionId::from_u64(0x0000_0003_0000_0011);
        let text = view_id(2, id, 0x9f3a_0c11_d2e4_5b67);
        assert_eq!(text, "2-00000003000000119f3a0c11d2e45b67");
        assert_eq!(parse_view_id(&text), Some((2, id, 0x9f3a_0c11_d2e4_5b67)));
        assert_eq!(parse_view_id("2-11"), None);
        assert_eq!(parse_view_id("2-0000000300000011"), None);
        assert_eq!(parse_view_id("x-00000003000000119f3a0c11d2e45b67"), None);
        assert_eq!(parse_view_id("+2-00000003000000119f3a0c11d2e45b67"), None);
    }
}
