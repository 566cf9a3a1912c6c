//! What leaves the process besides media: the HTTP API (sessions and W3C
//! stats) and the metrics pipeline (Prometheus, OTLP). Both read snapshots
//! the workers produce on request and never block the packet path.

pub mod api;
pub mod fanout;
pub mod http;
pub mod metrics;
pub mod otlp;
pub mod pipeline;
pub mod publish;
mod service;
