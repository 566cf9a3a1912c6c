//! Per-stream measurements: what the proxy computes itself from the RTP it
//! relays (receive side, RFC 3550 A.1/A.3/A.8), what endpoints say about
//! streams in their report blocks (send side), and round-trip times matched
//! from reports the proxy forwards.

pub mod burst;
pub mod clock_rate;
pub mod quality;
pub mod receive;
pub mod remote;
pub mod rtt;

pub use clock_rate::ClockRates;
pub use receive::{IntervalLoss, JitterSummary, ReceiveStats, SeqOutcome};
pub use remote::{Arrivals, RemoteReport, SenderRecord, SenderWindow};
pub use rtt::{RttMethod, RttReject, RttStats, SentLog};
