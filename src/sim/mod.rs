//! Simulation and test tooling: not the product.
//!
//! Everything here exists to exercise the relay, never to run in it:
//!
//! - [`impair`]: the seeded, deterministic, sans-IO impairment model (loss,
//!   Gilbert–Elliott bursts, delay, jitter, reorder, duplicates);
//! - [`impair_live`]: a thread-based UDP forwarder that applies that model
//!   between real sockets;
//! - [`demo`]: the embedded `rtp-middlebox demo` call on loopback (browser,
//!   impaired leg, relay, SFU), with its own ground truth;
//! - [`loopback`]: the relay and its HTTP API started in-process, as the
//!   demo and the integration tests run them;
//! - [`sdp`]: WebRTC-shaped SDPs for the synthetic DTLS endpoints;
//! - [`dtls`]: DTLS records of a server's flight, for tests of what the
//!   proxy reads from a handshake it passes through.
//!
//! They are used by the `demo` subcommand, the integration tests and
//! `examples/capture_gen.rs` (which makes the captures in `tests/data/`).
//! They are public only so those can reach them; they are not part of the
//! relay's API, and nothing in the product depends on them.
//!
//! The product's surface is [`engine`](crate::engine) (the sans-IO relay),
//! [`wire`](crate::wire) (packet views), [`stats`](crate::stats) (receive
//! statistics and RTT), [`report`](crate::report) (W3C stats objects) and
//! [`config`](crate::config); the binary adds [`runtime`](crate::runtime)
//! (sockets and clocks), [`export`](crate::export) (HTTP API, metrics, OTLP)
//! and [`analyze`](crate::analyze) (capture analysis). None of those import
//! from `sim`; the dependency goes one way only.

pub mod demo;
pub mod dtls;
pub mod impair;
pub mod impair_live;
pub mod loopback;
pub mod sdp;
