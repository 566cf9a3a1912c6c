//! rtp-middlebox: a media-aware RTP/RTCP relay that measures every stream
//! it carries (RFC 3550 loss, fraction lost, jitter; RTT per leg) and
//! reports it.
//!
//! # The engine's contract: one input, one output
//!
//! [`engine::Engine`] is sans-IO: it never touches sockets or clocks. It
//! owns demultiplexing and routing (which session a datagram belongs to,
//! admission, NAT rebinding, non-mux pairing), statistics and the RTCP
//! policy. Its driver (the relay runtime, the capture analyzer, a test)
//! owns the sockets and the clock and follows one loop:
//!
//! 1. Hand every datagram to `handle_input(Input::Datagram { now, socket,
//!    remote, local, bytes })`, naming the socket it arrived on
//!    ([`engine::SocketRef`]: a relay's client-facing socket, or a
//!    session's upstream socket).
//! 2. Drain `poll_output()` before the next input, doing what each
//!    [`engine::Output`] says: `Transmit` (send these bytes from this
//!    socket to this address: forwarded, rewritten, generated and probe
//!    datagrams alike), `OpenUpstream`/`CloseUpstream` (a session's own
//!    sockets), `Event` (log, export), and finally `Timeout`.
//! 3. When that time comes, `handle_input(Input::Timeout(now))`.
//!
//! `now` is a [`time::MonoTime`] the driver derives from its clock (or a
//! capture's timestamps), so tests run on virtual time:
//!
//! ```
//! use rtp_middlebox::engine::{
//!     Engine, EngineConfig, Event, Input, Output, Payload, RelaySettings, SocketRef, Verdict,
//! };
//! use rtp_middlebox::time::MonoTime;
//! use rtp_middlebox::wire::PacketKind;
//! use std::net::SocketAddr;
//!
//! let upstream: SocketAddr = "198.51.100.1:3478".parse().unwrap();
//! let mut engine = Engine::new(EngineConfig {
//!     relays: vec![RelaySettings { upstream: Some(upstream), ..RelaySettings::default() }],
//!     ..EngineConfig::default()
//! });
//! let client: SocketAddr = "192.0.2.1:5000".parse().unwrap();
//! let listen = SocketRef::Listen { relay: 0, rtcp: false };
//!
//! // Two PCMU packets 20 ms apart, sequence 1 and 2, timestamps 160 apart.
//! let mut session = None;
//! for (i, t) in [(1u16, 0u64), (2, 20)] {
//!     let mut pkt = vec![0x80, 0x00];
//!     pkt.extend_from_slice(&i.to_be_bytes());
//!     pkt.extend_from_slice(&(160 * u32::from(i)).to_be_bytes());
//!     pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
//!     pkt.extend_from_slice(&[0xff; 160]);
//!     let now = MonoTime::from_millis(t);
//!     let input = Input::Datagram { now, socket: listen, remote: client, local: upstream, bytes: &pkt };
//!     assert_eq!(engine.handle_input(input), Verdict::Forward(PacketKind::Rtp));
//!     // The first datagram of a new client opens a session: the driver
//!     // opens its upstream socket, then sends the datagram from it.
//!     while let Some(output) = engine.poll_output() {
//!         match output {
//!             Output::OpenUpstream { session: id, upstream: to, .. } => {
//!                 assert_eq!(to, upstream);
//!                 session = Some(id);
//!             }
//!             Output::Transmit(t) => {
//!                 assert_eq!(t.socket, SocketRef::Upstream { session: session.unwrap(), rtcp: false });
//!                 assert_eq!((t.destination, t.payload.bytes(&pkt)), (upstream, &pkt[..]));
//!                 assert_eq!(t.payload, Payload::Received); // no copy
//!             }
//!             Output::Event(Event::SessionOpened { .. } | Event::StreamStarted { .. }) => {}
//!             Output::Timeout(_) => break,
//!             other => panic!("unexpected {other:?}"),
//!         }
//!     }
//! }
//! let id = session.unwrap();
//! let snap = engine.snapshot(MonoTime::from_millis(40), id).unwrap();
//! let rtp = snap.side(rtp_middlebox::engine::Side::Client).sources[0].rtp.as_ref().unwrap();
//! assert_eq!((rtp.packets_received, rtp.packets_lost), (2, 0));
//! assert_eq!(rtp.jitter, Some(0.0));
//!
//! // Idle sessions expire through the timeout: the driver closes the
//! // session's sockets when told to.
//! let deadline = engine.poll_timeout().unwrap();
//! engine.handle_input(Input::Timeout(deadline + std::time::Duration::from_secs(60)));
//! assert!(matches!(engine.poll_output(), Some(Output::CloseUpstream { session }) if session == id));
//! assert_eq!(engine.session_count(), 0);
//! ```

pub mod analyze;
pub mod config;
pub mod dtls;
pub mod engine;
pub mod export;
pub mod report;
pub mod runtime;
pub mod sdp;
pub mod sim;
pub mod srtp;
pub mod stats;
pub mod time;
pub mod view;
pub mod wire;
