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
//! Errors are JSON `{"error": "..."}` with 400/401/403/404/409/415. With
//! `[api] token` set, every request needs `Authorization: Bearer <token>`.
//!
//! Browser-facing rules ([`guard`], for every route, the WebSocket upgrade
//! and SSE included), because the API answers without a token on loopback
//! and any page the operator's browser opens can send requests to it:
//! - `Host` must name the listen address, `localhost` or an `[api]
//!   allowed_hosts` entry (403 otherwise): a DNS-rebound name would make
//!   an attacker's page same-origin with the API.
//! - `Origin`, when present, must be in `[api] cors_origins` or be the
//!   API's own (403 otherwise): browsers send it on WebSocket upgrades and
//!   cross-origin requests, and a WebSocket has no CORS of its own.
//! - A request with a body (POST, PUT, or any with a length) must be
//!   `Content-Type: application/json` (415 otherwise): `text/plain` and
//!   form bodies are what a page may send cross-site without a preflight.
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
    /// Host names accepted besides the listen address and `localhost`.
    pub allowed_hosts: Vec<String>,
    /// Listening on a non-loopback address without a token is allowed.
    pub allow_tokenless: bool,
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
            allowed_hosts: c.allowed_hosts.clone(),
            allow_tokenless: c.allow_tokenless,
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
    /// Where the API listens, and the other names it answers to ([`guard`]).
    listen: SocketAddr,
    allowed_hosts: Vec<String>,
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
        allowed_hosts,
        allow_tokenless,
        consent_timeout,
        metrics: _,
        otlp: _,
    } = options;
    if !listen.ip().is_loopback() && token.is_none() && !allow_tokenless {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{listen} is not a loopback address and no [api] token is set (see README, Security)"),
        ));
    }
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
        listen: local_addr,
        allowed_hosts,
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
        // So CORS preflights are answered before the token check.
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        // Outermost: a rebound Host, a foreign Origin or a body a page could
        // send without a preflight never reaches anything else.
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Ids look like "<worker>-<32 hex digits>" (see GET /v1/sessions and
/// [`crate::view::view_id`]).
fn well_formed_id(id: &str) -> bool {
    crate::view::parse_view_id(id).is_some()
}

/// 400 for a session id that cannot be one.
fn malformed_id() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "session id must look like 0-00000001000000009f3a0c11d2e45b67 (see GET /v1/sessions)",
    )
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

/// `host[:port]` or `[v6]:port` into the host and the port text.
fn split_host(value: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        return Some((host, port));
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None, // a bare IPv6 address is not a valid Host
        None => Some((value, None)),
    }
}

/// Whether a `Host` header value names this API: an IP literal of the
/// listen address (any when it listens on every address; any loopback one
/// when it listens on loopback), `localhost`, or an `allowed` entry (`name`
/// or `name:port`). The port is not checked against the listen port, so
/// port mappings (Docker's `-p 19470:9470`) keep working: what defeats DNS
/// rebinding is the name: a rebound page's requests carry its own. No header
/// (an HTTP/1.0 tool, never a browser) passes.
pub(crate) fn host_allowed(host: Option<&str>, listen: SocketAddr, allowed: &[String]) -> bool {
    let Some(value) = host else { return true };
    let Some((name, port)) = split_host(value.trim()) else {
        return false;
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) || name.is_empty() {
        return false;
    }
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        let own = listen.ip();
        return ip == own || own.is_unspecified() || (ip.is_loopback() && own.is_loopback());
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    allowed.iter().any(|a| match split_host(a) {
        Some((n, p)) => n.strip_suffix('.').unwrap_or(n).eq_ignore_ascii_case(name) && (p.is_none() || p == port),
        None => false,
    })
}

/// Whether a request's `Origin` may use the API: none (curl, servers, and
/// browsers' same-origin GETs), one listed in `cors` (`"*"`: any), or the
/// API's own (`http(s)://` + the already checked `Host`).
pub(crate) fn origin_allowed(origin: Option<&str>, host: Option<&str>, cors: &[String]) -> bool {
    let Some(origin) = origin else { return true };
    if cors.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((own, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h.trim()))
}

/// Whether a request's body is acceptable: requests that may carry one
/// (POST, PUT, PATCH) and any with a length or chunked body must say
/// `application/json` (parameters such as `charset` allowed).
pub(crate) fn body_type_allowed(method: &axum::http::Method, headers: &axum::http::HeaderMap) -> bool {
    use axum::http::Method;
    let has_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    if !has_body {
        return true;
    }
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The browser-facing rules (module docs): `Host`, `Origin`, body type.
async fn guard(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let text = |name| headers.get(name).and_then(|v: &header::HeaderValue| v.to_str().ok());
    // HTTP/2 and absolute-form requests carry the authority in the URI:
    // it must pass as well.
    let authority = request.uri().authority().map(|a| a.as_str());
    let host = text(header::HOST).or(authority);
    if headers.get_all(header::HOST).iter().count() > 1
        || headers.get(header::HOST).is_some_and(|v| v.to_str().is_err())
        || !host_allowed(host, state.listen, &state.allowed_hosts)
        || !host_allowed(authority, state.listen, &state.allowed_hosts)
    {
        return error(
            StatusCode::FORBIDDEN,
            "Host names neither this API's address nor localhost; add the name to [api] allowed_hosts",
        );
    }
    if headers.get(header::ORIGIN).is_some_and(|v| v.to_str().is_err())
        || !origin_allowed(text(header::ORIGIN), host, &state.cors_origins)
    {
        return error(
            StatusCode::FORBIDDEN,
            "cross-origin request from an origin not in [api] cors_origins",
        );
    }
    if !body_type_allowed(request.method(), headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request bodies must be sent as Content-Type: application/json",
        );
    }
    next.run(request).await
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
    fn host_rules() {
        let lo: SocketAddr = "127.0.0.1:9470".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9470".parse().unwrap();
        let private: SocketAddr = "10.1.2.3:9470".parse().unwrap();
        let allowed = vec!["relay.example".to_string(), "api.internal:8443".to_string()];
        for ok in [
            "127.0.0.1:9470",
            "127.0.0.1",
            "localhost:9470",
            "LOCALHOST",
            "localhost.:9470",
            "[::1]:9470",
            "127.0.0.1:19470",
        ] {
            assert!(host_allowed(Some(ok), lo, &allowed), "{ok}");
        }
        assert!(host_allowed(None, lo, &allowed));
        for bad in [
            "evil.test:9470",
            "evil.test",
            "127.0.0.1.nip.io:9470",
            "localhost.evil.test",
            "api.internal:9470",
            "10.1.2.3:9470",
            "",
            ":9470",
            "127.0.0.1:x",
            "::1",
            "[::1",
        ] {
            assert!(!host_allowed(Some(bad), lo, &allowed), "{bad}");
        }
        assert!(host_allowed(Some("relay.example:9470"), lo, &allowed));
        assert!(host_allowed(Some("Relay.Example"), lo, &allowed));
        assert!(host_allowed(Some("api.internal:8443"), lo, &allowed));
        // Every address: any IP literal (a rebinding page cannot send one).
        assert!(host_allowed(Some("192.0.2.7:9470"), any, &[]));
        assert!(!host_allowed(Some("evil.test:9470"), any, &[]));
        assert!(host_allowed(Some("10.1.2.3:9470"), private, &[]));
        assert!(!host_allowed(Some("10.1.2.4:9470"), private, &[]));
        assert!(!host_allowed(Some("127.0.0.1:9470"), private, &[]));
    }

    #[test]
    fn origin_rules() {
        let cors = vec!["https://dash.example".to_string()];
        assert!(origin_allowed(None, Some("127.0.0.1:9470"), &[]));
        assert!(origin_allowed(
            Some("https://dash.example"),
            Some("127.0.0.1:9470"),
            &cors
        ));
        assert!(!origin_allowed(
            Some("https://evil.example"),
            Some("127.0.0.1:9470"),
            &cors
        ));
        assert!(!origin_allowed(Some("null"), Some("127.0.0.1:9470"), &cors));
        assert!(!origin_allowed(
            Some("http://127.0.0.2:8000"),
            Some("127.0.0.1:9470"),
            &[]
        ));
        assert!(!origin_allowed(
            Some("http://127.0.0.1:8000"),
            Some("127.0.0.1:9470"),
            &[]
        ));
        // The API's own origin.
        assert!(origin_allowed(
            Some("http://127.0.0.1:9470"),
            Some("127.0.0.1:9470"),
            &[]
        ));
        assert!(origin_allowed(
            Some("http://localhost:9470"),
            Some("localhost:9470"),
            &[]
        ));
        assert!(!origin_allowed(Some("http://localhost:9470"), None, &[]));
        assert!(origin_allowed(
            Some("https://anything.example"),
            None,
            &["*".to_string()]
        ));
    }

    #[test]
    fn body_type_rules() {
        use axum::http::{HeaderMap, HeaderValue, Method};
        let with = |pairs: &[(header::HeaderName, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(k.clone(), HeaderValue::from_static(v));
            }
            h
        };
        let json = with(&[(header::CONTENT_TYPE, "application/json")]);
        let json_charset = with(&[(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")]);
        let plain = with(&[(header::CONTENT_TYPE, "text/plain;charset=UTF-8")]);
        let form = with(&[(header::CONTENT_TYPE, "application/x-www-form-urlencoded")]);
        let none = HeaderMap::new();
        assert!(body_type_allowed(&Method::POST, &json));
        assert!(body_type_allowed(&Method::PUT, &json_charset));
        for m in [Method::POST, Method::PUT, Method::PATCH] {
            assert!(!body_type_allowed(&m, &plain));
            assert!(!body_type_allowed(&m, &form));
            assert!(!body_type_allowed(&m, &none));
        }
        assert!(body_type_allowed(&Method::GET, &none));
        assert!(body_type_allowed(&Method::DELETE, &none));
        let delete_with_body = with(&[(header::CONTENT_LENGTH, "5"), (header::CONTENT_TYPE, "text/plain")]);
        assert!(!body_type_allowed(&Method::DELETE, &delete_with_body));
        assert!(body_type_allowed(&Method::GET, &with(&[(header::CONTENT_LENGTH, "0")])));
    }

    #[test]
    fn session_ids() {
        assert!(well_formed_id("0-00000001000000009f3a0c11d2e45b67"));
        assert!(well_formed_id("12-abcdefABCDEF0123abcdefABCDEF0123"));
        assert!(!well_formed_id("0-0000000100000000"));
        assert!(!well_formed_id("0-00000001000000009f3a0c11d2e45b6"));
        assert!(!well_formed_id("x-00000001000000009f3a0c11d2e45b67"));
        assert!(!well_formed_id("000000010000000009f3a0c11d2e45b67"));
    }
}
