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

/// A session's public id: `"<worker>-<16 hex digits of the engine id>"`.
pub fn view_id(worker: usize, id: SessionId) -> String {
    format!("{worker}-{id}")
}

/// Inverse of [`view_id`].
pub fn parse_view_id(id: &str) -> Option<(usize, SessionId)> {
    let (w, hex) = id.split_once('-')?;
    if hex.len() != 16 {
        return None;
    }
    Some((w.parse().ok()?, SessionId::from_u64(u64::from_str_radix(hex, 16).ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id = SessionId::from_u64(0x0000_0003_0000_0011);
        let text = view_id(2, id);
        assert_eq!(text, "2-0000000300000011");
        assert_eq!(parse_view_id(&text), Some((2, id)));
        assert_eq!(parse_view_id("2-11"), None);
        assert_eq!(parse_view_id("x-0000000300000011"), None);
    }
}
