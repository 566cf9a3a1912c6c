//! What leaves the process besides media: the HTTP API (sessions and W3C
//! stats). It reads snapshots the workers produce on request and never
//! blocks the packet path.

pub mod fanout;
pub mod http;
pub mod metrics;
pub mod otlp;
pub mod publish;
