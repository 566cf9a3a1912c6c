//! HTTP API (axum) on `[api] listen`, loopback by default:
//!
//! * `GET /v1/sessions` — every session: id, addresses, SSRCs per side, state.
//! * `GET /v1/sessions/{id}/stats` — the session's RTCStatsReport as a JSON
//!   array of W3C stats objects (`src/report`).
//! * `GET /v1/counters` — per-worker socket and engine counters, and the
//!   stream's own (subscribers, events dropped for slow subscribers).
//! * `GET /v1/stream` — Server-Sent Events: `stats` (session id + its W3C
//!   report) every `[api] stream_interval_ms`, and `state` events with
//!   `iceConnectionState`-style transitions (`connected` while datagrams
//!   flow, `disconnected` when quiet, `closed` when the session ended).
//! * `GET /v1/stream/ws` — the same messages over a WebSocket.
//!
//! * `POST /v1/calls/{id}/offer`, `POST /v1/calls/{id}/answer`,
//!   `DELETE /v1/calls/{id}` — DTLS termination's signalling hook
//!   (`calls.rs`): SDP in, SDP with the proxy's fingerprint out.
//!
//! `[api] cors_origins` lets web pages on those origins read the API.
//!
//! Errors are JSON `{"error": "..."}` with 400/401/404. With `[api] token`
//! set, every request needs `Authorization: Bearer <token>`.
//!
//! This file: options, server, router and middleware. Routes live by
//! concern: `sessions.rs` (listing, stats, counters, health, `/metrics`),
//! `keys.rs` (SRTP), `sdp.rs` (descriptions), `stream.rs` (SSE/WebSocket
//! and the connection states). `GET /metrics` renders what the metrics
//! pipeline (`export/pipeline.rs`) publishes; the runtime starts both
//! ([`crate::runtime::start_api`]).

mod calls;
mod keys;
mod sdp;
mod sessions;
mod stream;

pub use keys::parse_srtp_body;
pub use sdp::parse_sdp_body;

use super::pipeline::{Pipeline, PipelineOptions};
use super::service::ServiceThread;
use crate::runtime::RelayHandle;
use crate::stats::ClockRates;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How the API is served (from `[api]`).
#[derive(Clone, Debug)]
pub struct ApiOptions {
    pub listen: SocketAddr,
    pub token: Option<String>,
    pub stream_interval: Duration,
    pub cors_origins: Vec<String>,
    /// Unanswered binding requests for this long: `failed`, `consent-lost`.
    pub consent_timeout: Duration,
    /// `GET /metrics` and its publisher.
    pub metrics: super::publish::PublishOptions,
    /// `[collector]`: OTLP push of the same publications.
    pub otlp: Option<super::otlp::OtlpConfig>,
}

impl ApiOptions {
    /// `[api]`, `[metrics]` and `[collector]` of a config.
    pub fn from_config(c: &crate::config::Config) -> Self {
        let PipelineOptions { metrics, otlp } = PipelineOptions::from_config(c);
        ApiOptions {
            metrics,
            otlp,
            ..(&c.api).into()
        }
    }

    /// The metrics pipeline's share (`metrics`, `otlp`).
    pub fn pipeline(&self) -> PipelineOptions {
        PipelineOptions {
            metrics: self.metrics.clone(),
            otlp: self.otlp.clone(),
        }
    }
}

impl From<&crate::config::ApiConfig> for ApiOptions {
    fn from(c: &crate::config::ApiConfig) -> Self {
        ApiOptions {
            listen: c.listen,
            token: c.token.clone(),
            stream_interval: Duration::from_millis(c.stream_interval_ms),
            cors_origins: c.cors_origins.clone(),
            consent_timeout: Duration::from_secs(c.consent_timeout_secs),
            metrics: Default::default(),
            otlp: None,
        }
    }
}

struct ApiState {
    relay: RelayHandle,
    rates: ClockRates,
    token: Option<String>,
    cors_origins: Vec<String>,
    /// One producer takes snapshots per interval and broadcasts the events;
    /// a subscriber that falls behind loses the oldest (counted), so a slow
    /// client never slows the relay or other subscribers.
    events: Arc<stream::Events>,
    /// `GET /metrics`'s source; `None` when metrics are disabled.
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    descriptions: std::sync::Mutex<HashMap<String, sdp::Descriptions>>,
    consent_timeout_secs: f64,
    /// The producer's latest state per session, for the first events a new
    /// subscriber gets.
    current: std::sync::Mutex<HashMap<String, (&'static str, Option<stream::Trouble>)>>,
    /// Calls of the calls API waiting for their answer.
    calls: std::sync::Mutex<calls::Calls>,
}

/// How long `stop` lets in-flight requests finish before connections
/// (stuck stream subscribers included) are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// The running API server.
pub struct ApiServer {
    pub local_addr: SocketAddr,
    /// Fields drop in order: the server stops before the pipeline.
    service: ServiceThread,
    /// The metrics pipeline `/metrics` renders; stops with the server.
    pipeline: Pipeline,
}

impl ApiServer {
    /// Stops accepting and waits for the server thread (then for the
    /// metrics pipeline's). Dropping the server does the same.
    pub fn stop(mut self) {
        self.service.stop();
        self.pipeline.stop();
    }
}

/// Binds `listen` (errors surface here) and serves on a thread of its own;
/// `GET /metrics` renders what `pipeline` publishes, and the pipeline
/// publishes the stream's subscribers and drops.
pub fn start(options: ApiOptions, relay: RelayHandle, rates: ClockRates, pipeline: Pipeline) -> io::Result<ApiServer> {
    let ApiOptions {
        listen,
        token,
        stream_interval,
        cors_origins,
        consent_timeout,
        metrics: _,
        otlp: _,
    } = options;
    let std_listener = std::net::TcpListener::bind(listen)?;
    std_listener.set_nonblocking(true)?;
    let local_addr = std_listener.local_addr()?;
    let events = Arc::new(stream::Events::new(stream::SUBSCRIBER_BUFFER));
    pipeline.report_stream(events.clone());
    let state = Arc::new(ApiState {
        relay,
        rates,
        token,
        cors_origins,
        events,
        prometheus: pipeline.prometheus().cloned(),
        descriptions: std::sync::Mutex::new(HashMap::new()),
        consent_timeout_secs: consent_timeout.as_secs_f64(),
        current: std::sync::Mutex::new(HashMap::new()),
        calls: std::sync::Mutex::new(calls::Calls::default()),
    });
    let service = ServiceThread::spawn("http-api", move |stopped| async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
            return;
        };
        tokio::spawn(stream::produce(state.clone(), stream_interval));
        let app = router(state);
        let (graceful_tx, graceful_rx) = oneshot::channel::<()>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = graceful_rx.await;
        });
        // Graceful shutdown waits for open connections, and a stats
        // stream subscriber never closes its own: give requests in
        // flight a grace period, then drop every connection.
        tokio::select! {
            _ = serve => {}
            _ = async {
                let _ = stopped.await;
                let _ = graceful_tx.send(());
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => {}
        }
    })?;
    Ok(ApiServer {
        local_addr,
        service,
        pipeline,
    })
}

fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/sessions", get(sessions::list_sessions))
        .route("/v1/sessions/{id}/stats", get(sessions::session_stats))
        .route(
            "/v1/sessions/{id}/srtp",
            axum::routing::post(keys::post_srtp)
                .delete(keys::delete_srtp)
                .layer(axum::extract::DefaultBodyLimit::max(4096)),
        )
        .route(
            "/v1/sessions/{id}/sdp",
            get(sdp::get_sdp)
                .put(sdp::put_sdp)
                .delete(sdp::delete_sdp)
                .layer(axum::extract::DefaultBodyLimit::max(3 * sdp::MAX_SDP_BYTES)),
        )
        .route(
            "/v1/calls/{call_id}/offer",
            axum::routing::post(calls::post_offer).layer(axum::extract::DefaultBodyLimit::max(2 * sdp::MAX_SDP_BYTES)),
        )
        .route(
            "/v1/calls/{call_id}/answer",
            axum::routing::post(calls::post_answer).layer(axum::extract::DefaultBodyLimit::max(2 * sdp::MAX_SDP_BYTES)),
        )
        .route("/v1/calls/{call_id}", axum::routing::delete(calls::delete_call))
        .route("/v1/counters", get(sessions::counters))
        .route("/metrics", get(sessions::metrics_text))
        .route("/healthz", get(sessions::healthz))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/stream/ws", get(stream::stream_ws))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        // No endpoint but the two above reads a body; anything larger than
        // this is refused (413) before it is buffered.
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        // Outermost, so CORS preflights are answered before the token check.
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        .with_state(state)
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Ids look like "<worker>-<16 hex digits>" (see GET /v1/sessions).
fn well_formed_id(id: &str) -> bool {
    id.split_once('-')
        .is_some_and(|(w, s)| w.parse::<usize>().is_ok() && s.len() == 16 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

/// 400 for a session id that cannot be one.
fn malformed_id() -> Response {
    error(StatusCode::BAD_REQUEST, "session id must look like 0-0000000100000000")
}

/// 404 for a session that is not (or no longer) there.
fn no_such_session() -> Response {
    error(StatusCode::NOT_FOUND, "no such session (it may have expired)")
}

/// Compares without an early exit, so response time does not reveal how
/// much of a guessed token was right (only its length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// CORS for the configured origins (a dashboard page subscribing to the
/// stream): echoes an allowed `Origin`, answers preflights with 204.
async fn cors(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed = origin.filter(|o| state.cors_origins.iter().any(|a| a == "*" || a == o));
    let Some(origin) = allowed else {
        return next.run(request).await;
    };
    let mut response = if request.method() == axum::http::Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::HeaderValue::from_static("GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::HeaderValue::from_static("authorization"),
    );
    h.insert(header::VARY, header::HeaderValue::from_static("origin"));
    response
}

async fn require_token(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    // Probes (Docker HEALTHCHECK, Kubernetes readiness) carry no token and
    // /healthz reveals nothing about calls.
    let open = request.uri().path() == "/healthz";
    if let (Some(token), false) = (&state.token, open) {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"abcdefghijklmnop", b"abcdefghijklmnoq"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn session_ids() {
        assert!(well_formed_id("0-0000000100000000"));
        assert!(well_formed_id("12-abcdefABCDEF0123"));
        assert!(!well_formed_id("0-000000010000000"));
        assert!(!well_formed_id("x-0000000100000000"));
        assert!(!well_formed_id("00000001000000000"));
    }
}
