//! rtp-middlebox: a media-aware RTP/RTCP relay that measures every stream
//! it carries (RFC 3550 loss, fraction lost, jitter; RTT per leg) and
//! reports it.
//!
//! # The engine's poll contract
//!
//! [`engine::Engine`] is sans-IO: it never touches sockets or clocks. Its
//! driver (the relay runtime, the capture analyzer, a test) owns both and
//! follows one loop:
//!
//! 1. For every datagram: `handle_datagram(now, side, session, bytes)` and
//!    act on the [`engine::Verdict`] (forward unchanged, or drop).
//! 2. Drain `poll_event()` after each batch (sessions opened/closed, new
//!    streams).
//! 3. Sleep until the earlier of the next datagram and `poll_timeout()`;
//!    when that time comes call `handle_timeout(now)`.
//!
//! `now` is a [`time::MonoTime`] the driver derives from its clock (or a
//! capture's timestamps), so tests run on virtual time:
//!
//! ```
//! use rtp_middlebox::engine::{Engine, EngineConfig, Event, SessionInfo, Side, Verdict};
//! use rtp_middlebox::time::MonoTime;
//! use rtp_middlebox::wire::PacketKind;
//!
//! let mut engine = Engine::new(EngineConfig::default());
//! let info = SessionInfo {
//!     client: "192.0.2.1:5000".parse().unwrap(),
//!     upstream: "198.51.100.1:3478".parse().unwrap(),
//! };
//! let t0 = MonoTime::from_millis(0);
//! let id = engine.open_session(t0, info).unwrap();
//!
//! // Two PCMU packets 20 ms apart, sequence 1 and 2, timestamps 160 apart.
//! for (i, t) in [(1u16, 0u64), (2, 20)] {
//!     let mut pkt = vec![0x80, 0x00];
//!     pkt.extend_from_slice(&i.to_be_bytes());
//!     pkt.extend_from_slice(&(160 * u32::from(i)).to_be_bytes());
//!     pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
//!     pkt.extend_from_slice(&[0xff; 160]);
//!     let verdict = engine.handle_datagram(MonoTime::from_millis(t), Side::Client, id, &pkt);
//!     assert_eq!(verdict, Verdict::Forward(PacketKind::Rtp));
//! }
//! assert!(matches!(engine.poll_event(), Some(Event::SessionOpened(_))));
//! assert!(matches!(engine.poll_event(), Some(Event::StreamStarted { .. })));
//!
//! let snap = engine.snapshot(MonoTime::from_millis(40), id).unwrap();
//! let rtp = snap.side(Side::Client).sources[0].rtp.as_ref().unwrap();
//! assert_eq!((rtp.packets_received, rtp.packets_lost), (2, 0));
//! assert_eq!(rtp.jitter, Some(0.0));
//!
//! // Idle sessions expire through the timeout.
//! let deadline = engine.poll_timeout().unwrap();
//! engine.handle_timeout(deadline + std::time::Duration::from_secs(60));
//! assert_eq!(engine.session_count(), 0);
//! ```

pub mod analyze;
pub mod config;
pub mod engine;
pub mod export;
pub mod report;
pub mod runtime;
pub mod sim;
pub mod srtp;
pub mod stats;
pub mod time;
pub mod wire;
