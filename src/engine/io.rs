//! The engine's one input and one output (the sans-IO contract).
//!
//! A driver hands every datagram and every timer expiry to
//! [`super::Engine::handle_input`] and then drains
//! [`super::Engine::poll_output`] until it returns [`Output::Timeout`] or
//! `None`. Everything the driver must do (send bytes from a socket to an
//! address, open or close a session's upstream sockets, log an event, wake
//! at a time) arrives as an [`Output`]; the driver decides nothing about
//! sessions. The model is str0m's `handle_input`/`poll_output` and
//! quinn-proto's `Endpoint::handle` → `Transmit { destination, .. }`.

use super::counters::DropReason;
use super::snapshot::SessionSnapshot;
use super::{SessionId, Side};
use crate::time::MonoTime;
use crate::wire::{PacketKind, Ssrc};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// A socket of the driver's, named the way the engine knows it. The engine
/// never holds a socket; it names which one a datagram came in on and
/// which one to send from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SocketRef {
    /// A relay's client-facing socket (`listen`); `rtcp` is its `listen_rtcp`
    /// twin on a non-mux relay (RTP on P, RTCP on its own port).
    Listen { relay: usize, rtcp: bool },
    /// A session's own upstream socket, connected to the upstream (opened
    /// on [`Output::OpenUpstream`]); `rtcp` is the odd port of a non-mux pair.
    Upstream { session: SessionId, rtcp: bool },
}

impl SocketRef {
    /// Which side's endpoint datagrams received on this socket come from.
    pub fn side(self) -> Side {
        match self {
            SocketRef::Listen { .. } => Side::Client,
            SocketRef::Upstream { .. } => Side::Upstream,
        }
    }

    /// Whether this is the RTCP socket of a non-mux pair.
    pub fn is_rtcp(self) -> bool {
        match self {
            SocketRef::Listen { rtcp, .. } | SocketRef::Upstream { rtcp, .. } => rtcp,
        }
    }
}

/// Everything the engine is told.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// A datagram received at `now` on `socket` (whose own address is
    /// `local`) from `remote`.
    Datagram {
        now: MonoTime,
        socket: SocketRef,
        remote: SocketAddr,
        local: SocketAddr,
        bytes: &'a [u8],
    },
    /// A deadline the engine asked for ([`Output::Timeout`]) was reached.
    Timeout(MonoTime),
    /// The wall-clock time (since the Unix epoch) at monotonic `now`;
    /// generated SR/XR carry NTP times derived from it. Drivers send it
    /// with their timer ticks (the relay) or once (a capture).
    WallClock { now: MonoTime, wall: Duration },
    /// The driver could not open the upstream socket(s) an
    /// [`Output::OpenUpstream`] asked for: the session is closed.
    UpstreamFailed { now: MonoTime, session: SessionId },
}

/// What the driver does next.
#[derive(Debug)]
pub enum Output {
    /// Send `payload` from `socket` to `destination` (on a connected
    /// upstream socket the destination is the one it is connected to).
    Transmit(Transmit),
    /// Open the session's upstream socket(s), connected to `upstream` (and
    /// `upstream_rtcp` for a non-mux pair: RTP on an even port P, RTCP on
    /// P + 1). Transmits from [`SocketRef::Upstream`] of this session follow.
    OpenUpstream {
        session: SessionId,
        relay: usize,
        upstream: SocketAddr,
        upstream_rtcp: Option<SocketAddr>,
    },
    /// The session is gone: close its upstream socket(s).
    CloseUpstream {
        session: SessionId,
    },
    Event(Event),
    /// Nothing more to do until this time (or the next datagram).
    Timeout(MonoTime),
}

/// One datagram to send.
#[derive(Debug)]
pub struct Transmit {
    pub socket: SocketRef,
    pub destination: SocketAddr,
    pub payload: Payload,
}

/// The bytes of a [`Transmit`].
#[derive(Debug, PartialEq, Eq)]
pub enum Payload {
    /// The datagram of the last [`Input::Datagram`], unchanged (forwarding
    /// costs no copy). Valid until the next `handle_input`: drain the
    /// outputs of one input before handing in the next.
    Received,
    /// Bytes the engine wrote: a rewritten or re-protected compound, a
    /// generated report, a STUN probe.
    Owned(Vec<u8>),
}

impl Payload {
    /// The bytes to send, given the datagram last handed in.
    pub fn bytes<'a>(&'a self, received: &'a [u8]) -> &'a [u8] {
        match self {
            Payload::Received => received,
            Payload::Owned(v) => v,
        }
    }
}

/// What became of a datagram ([`super::Engine::handle_input`]'s answer;
/// the transmits themselves come from `poll_output`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Sent on, unchanged, to the other side (or, for a NAT rebinding
    /// check or its answer, to the address it concerns).
    Forward(PacketKind),
    /// Sent on rewritten (an RTCP compound with its report blocks removed,
    /// or re-protected with the other leg's keys, `terminate` mode).
    Rewritten(PacketKind),
    /// Taken by the proxy: RTCP it terminates, the answer to its own probe,
    /// or a non-datagram input. Nothing is forwarded (not an error).
    Consumed,
    Drop(DropReason),
}

/// Why a session ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CloseReason {
    Idle,
    Closed,
    /// The upstream never sent anything within the unanswered timeout.
    Unanswered,
    /// NAT rebinding moved another session onto this one's client address:
    /// this session's flow was that session's all along.
    Superseded,
    /// The driver could not open its upstream socket(s).
    NoUpstreamSocket,
}

/// Things the engine tells its driver, in order.
#[derive(Debug)]
pub enum Event {
    SessionOpened {
        id: SessionId,
        relay: usize,
        client: SocketAddr,
    },
    /// The session is gone; `snapshot` holds its final statistics.
    SessionClosed {
        id: SessionId,
        reason: CloseReason,
        snapshot: Box<SessionSnapshot>,
    },
    /// First RTP packet of a new SSRC on a side.
    StreamStarted {
        session: SessionId,
        side: Side,
        ssrc: Ssrc,
        payload_type: u8,
    },
    /// `auto`: no report block about this stream (sent from `side`) came
    /// back in time; the proxy now generates reports about it.
    SuppressionDetected { session: SessionId, side: Side, ssrc: Ssrc },
    /// `auto`: real report blocks about the stream returned; generation stops.
    SuppressionCleared { session: SessionId, side: Side, ssrc: Ssrc },
    /// The session's per-side packet rate limit
    /// (`[limits] max_packets_per_session_per_sec`) dropped a datagram from
    /// `side` for the first time; later drops are only counted.
    RateLimited {
        session: SessionId,
        side: Side,
        per_sec: u32,
    },
    /// DTLS termination: the leg toward `side` completed its handshake
    /// (peer certificate matched its SDP fingerprint).
    DtlsConnected {
        session: SessionId,
        side: Side,
        suite: &'static str,
    },
    /// DTLS termination: the leg toward `side` failed (`reason`: a stable
    /// label such as `fingerprint_mismatch` or `timeout`); the session
    /// passes no media from then on.
    DtlsFailed {
        session: SessionId,
        side: Side,
        reason: &'static str,
    },
    /// NAT rebinding: the upstream accepted a check from the client's new
    /// address and the client answered the proxy's probe from there; the
    /// session's client-bound datagrams now go to `to`.
    SessionRebound {
        session: SessionId,
        from: SocketAddr,
        to: SocketAddr,
    },
}
