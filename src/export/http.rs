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
//! `[api] cors_origins` lets web pages on those origins read the API.
//!
//! Errors are JSON `{"error": "..."}` with 400/401/404. With `[api] token`
//! set, every request needs `Authorization: Bearer <token>`.

use super::publish;
use crate::engine::Side;
use crate::report::session_report;
use crate::runtime::clock::Clock;
use crate::runtime::{RelayHandle, SessionView};
use crate::stats::ClockRates;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// A session counts as `active` while it carried a datagram this recently.
const ACTIVE_WITHIN_SECS: f64 = 2.0;

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
    /// `[api]` and `[metrics]` of a config.
    pub fn from_config(c: &crate::config::Config) -> Self {
        ApiOptions {
            metrics: super::publish::PublishOptions {
                enabled: c.metrics.enabled,
                interval: Duration::from_secs(c.metrics.interval_secs),
                per_session: c.metrics.per_session,
                max_session_series: c.metrics.max_session_series,
            },
            otlp: c.collector.otlp_endpoint.as_ref().map(|endpoint| {
                let defaults = super::otlp::OtlpConfig::default();
                let mut resource = defaults.resource.clone();
                for (k, v) in &c.collector.resource {
                    resource.retain(|(rk, _)| rk != k);
                    resource.push((k.clone(), v.clone()));
                }
                super::otlp::OtlpConfig {
                    endpoint: endpoint.clone(),
                    interval: c
                        .collector
                        .interval_secs
                        .map_or(Duration::from_secs(10), Duration::from_secs),
                    // 5 s unless set, as documented (the exporter's own
                    // default is longer; a drain waits for one last push).
                    timeout: Duration::from_millis(c.collector.timeout_ms.unwrap_or(5000)),
                    max_retries: c.collector.max_retries.unwrap_or(defaults.max_retries),
                    resource,
                    ..defaults
                }
            }),
            ..(&c.api).into()
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
    events: super::fanout::Fanout<Arc<StreamEvent>>,
    prometheus: PrometheusHandle,
    metrics_enabled: bool,
    descriptions: std::sync::Mutex<HashMap<String, Descriptions>>,
    consent_timeout_secs: f64,
    /// The producer's latest state per session, for the first events a new
    /// subscriber gets.
    current: std::sync::Mutex<HashMap<String, (&'static str, Option<Trouble>)>>,
}

/// One Server-Sent Event, serialised once for every subscriber.
struct StreamEvent {
    name: &'static str,
    /// The session the event is about (for `?session=` filtering).
    session: String,
    data: String,
}

/// SDP attached to a session through `PUT /v1/sessions/{id}/sdp`, served to
/// the shim as `localDescription`/`remoteDescription`.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Descriptions {
    #[serde(default)]
    local_description: Option<Description>,
    #[serde(default)]
    remote_description: Option<Description>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Description {
    #[serde(rename = "type")]
    kind: String,
    sdp: String,
}

/// Largest SDP accepted per description, and sessions with SDP attached.
const MAX_SDP_BYTES: usize = 64 * 1024;
const MAX_DESCRIPTIONS: usize = 10_000;

/// How long `stop` lets in-flight requests finish before connections
/// (stuck stream subscribers included) are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Events buffered per subscriber before the oldest are dropped.
const SUBSCRIBER_BUFFER: usize = 256;

/// The running API server.
pub struct ApiServer {
    pub local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Stops accepting and waits for the server thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds `listen` (errors surface here) and serves on a thread of its own.
pub fn start(options: ApiOptions, relay: RelayHandle, rates: ClockRates) -> io::Result<ApiServer> {
    let ApiOptions {
        listen,
        token,
        stream_interval,
        cors_origins,
        consent_timeout,
        metrics,
        otlp,
    } = options;
    let exporter = match otlp {
        Some(cfg) if metrics.enabled => Some((
            cfg.interval,
            super::otlp::OtlpExporter::start(cfg)
                .map_err(|e| io::Error::new(e.kind(), format!("OTLP exporter: {e}")))?,
        )),
        _ => None,
    };
    let std_listener = std::net::TcpListener::bind(listen)?;
    std_listener.set_nonblocking(true)?;
    let local_addr = std_listener.local_addr()?;
    let events = super::fanout::Fanout::new(SUBSCRIBER_BUFFER);
    // Per-session gauges of ended sessions expire after three intervals.
    let (recorder, prometheus) = publish::prometheus_recorder(metrics.interval * 3);
    let publisher = publish::Publisher::new(metrics.clone(), rates.clone(), unix_nanos(&Clock::new()));
    let state = Arc::new(ApiState {
        relay,
        rates,
        token,
        cors_origins,
        events,
        prometheus,
        metrics_enabled: metrics.enabled,
        descriptions: std::sync::Mutex::new(HashMap::new()),
        consent_timeout_secs: consent_timeout.as_secs_f64(),
        current: std::sync::Mutex::new(HashMap::new()),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let thread = std::thread::Builder::new().name("http-api".into()).spawn(move || {
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            tokio::spawn(produce_stream(state.clone(), stream_interval));
            if state.metrics_enabled {
                tokio::spawn(publish_metrics(state.clone(), publisher, recorder, exporter));
            }
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
        });
    })?;
    Ok(ApiServer {
        local_addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{id}/stats", get(session_stats))
        .route(
            "/v1/sessions/{id}/srtp",
            axum::routing::post(post_srtp)
                .delete(delete_srtp)
                .layer(axum::extract::DefaultBodyLimit::max(4096)),
        )
        .route(
            "/v1/sessions/{id}/sdp",
            get(get_sdp)
                .put(put_sdp)
                .delete(delete_sdp)
                .layer(axum::extract::DefaultBodyLimit::max(3 * MAX_SDP_BYTES)),
        )
        .route("/v1/counters", get(counters))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/v1/stream", get(stream))
        .route("/v1/stream/ws", get(stream_ws))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        // No endpoint but the two above reads a body; anything larger than
        // this is refused (413) before it is buffered.
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        // Outermost, so CORS preflights are answered before the token check.
        .layer(middleware::from_fn_with_state(state.clone(), cors))
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionSummary {
    id: String,
    worker: usize,
    relay: usize,
    client: SocketAddr,
    upstream: SocketAddr,
    upstream_local: SocketAddr,
    upstream_rtcp_local: Option<SocketAddr>,
    /// `active` while datagrams flow, else `quiet` (until the idle timeout).
    state: &'static str,
    /// The same `iceConnectionState`/`connectionState` the stream sends.
    ice_connection_state: &'static str,
    connection_state: &'static str,
    encrypted: bool,
    /// Fingerprints of provisioned SRTCP keys (never the keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    srtp_keys: Option<serde_json::Value>,
    opened_at: f64,
    last_activity: Option<f64>,
    /// SSRCs received from each side.
    ssrcs: serde_json::Value,
}

fn summary(v: &SessionView) -> SessionSummary {
    let s = &v.snapshot;
    let last = s
        .sides
        .iter()
        .filter_map(|x| x.last_activity)
        .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
    let ssrcs = |i: usize| s.sides[i].sources.iter().map(|x| x.ssrc).collect::<Vec<_>>();
    let (ice, _) = ice_state(v, None, f64::INFINITY);
    SessionSummary {
        id: v.id.clone(),
        worker: v.worker,
        relay: v.relay,
        client: s.client,
        upstream: s.upstream,
        upstream_local: v.upstream_local,
        upstream_rtcp_local: v.upstream_rtcp_local,
        state: if last.is_some_and(|t| s.taken_at - t <= ACTIVE_WITHIN_SECS) {
            "active"
        } else {
            "quiet"
        },
        ice_connection_state: ice,
        connection_state: connection_state(ice),
        encrypted: s.encrypted,
        srtp_keys: s.srtp_keys.as_ref().map(|[c, u]| json!({ "client": c, "upstream": u })),
        opened_at: s.opened_at * 1000.0 + v.wall_offset_ms,
        last_activity: last.map(|t| t * 1000.0 + v.wall_offset_ms),
        ssrcs: json!({ "client": ssrcs(0), "upstream": ssrcs(1) }),
    }
}

async fn list_sessions(State(state): State<Arc<ApiState>>) -> Response {
    let mut sessions: Vec<SessionSummary> = state.relay.sessions().await.iter().map(summary).collect();
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    Json(sessions).into_response()
}

async fn session_stats(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    // Ids look like "<worker>-<16 hex digits>" (see GET /v1/sessions).
    let well_formed = id
        .split_once('-')
        .is_some_and(|(w, s)| w.parse::<usize>().is_ok() && s.len() == 16 && s.chars().all(|c| c.is_ascii_hexdigit()));
    if !well_formed {
        return error(StatusCode::BAD_REQUEST, "session id must look like 0-0000000100000000");
    }
    let sessions = state.relay.sessions().await;
    match sessions.iter().find(|v| v.id == id) {
        Some(v) => {
            let offset = v.wall_offset_ms;
            Json(session_report(&v.snapshot, &state.rates, |t| t * 1000.0 + offset)).into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no such session (it may have expired)"),
    }
}

async fn counters(State(state): State<Arc<ApiState>>) -> Response {
    Json(json!({
        "workers": state.relay.stats().await,
        "stream": {
            "subscribers": state.events.subscribers(),
            "eventsDropped": state.events.dropped(),
        },
    }))
    .into_response()
}

fn unix_nanos(clock: &Clock) -> u64 {
    u64::try_from(clock.wall().as_nanos()).unwrap_or(u64::MAX)
}

/// Reads the workers once per interval, publishes to the Prometheus
/// recorder (and the OTLP exporter when configured).
async fn publish_metrics(
    state: Arc<ApiState>,
    mut publisher: publish::Publisher,
    recorder: PrometheusRecorder,
    exporter: Option<(Duration, super::otlp::OtlpExporter)>,
) {
    let clock = Clock::new();
    let interval = publisher.options().interval;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due = clock.now();
    // OTLP pushes at its own interval: histogram observations and ended
    // sessions gathered in between go with the next push.
    let mut otlp_due = clock.now();
    let mut pending = super::metrics::Publication::default();
    loop {
        tick.tick().await;
        let lag = clock.now().saturating_since(due).as_secs_f64();
        let workers = state.relay.stats().await;
        let sessions = state.relay.sessions().await;
        let closed = state.relay.take_closed().await;
        let facts = publish::ExporterFacts {
            stream_subscribers: state.events.subscribers() as u64,
            stream_events_dropped: state.events.dropped(),
            lag_secs: lag,
            otlp: exporter.as_ref().map(|(_, e)| {
                let c = e.counters();
                publish::OtlpFacts {
                    metrics_ok: c.metrics_ok,
                    metrics_error: c.metrics_error,
                    logs_ok: c.logs_ok,
                    logs_error: c.logs_error,
                    retries: c.retries,
                    dropped: c.dropped,
                }
            }),
        };
        let p = publisher.publish(unix_nanos(&clock), &workers, &sessions, &closed, facts);
        publish::apply(&recorder, &p);
        state.prometheus.run_upkeep();
        if let Some((every, exporter)) = &exporter {
            pending.observations.extend(p.observations.iter().cloned());
            pending.ended_sessions.extend(p.ended_sessions.iter().cloned());
            if clock.now() >= otlp_due {
                let mut push = p;
                push.observations = std::mem::take(&mut pending.observations);
                push.ended_sessions = std::mem::take(&mut pending.ended_sessions);
                exporter.offer(push);
                otlp_due = clock.now() + *every;
            }
        }
        due = clock.now() + interval;
    }
}

fn well_formed_id(id: &str) -> bool {
    // Ids look like "<worker>-<16 hex digits>" (see GET /v1/sessions).
    id.split_once('-')
        .is_some_and(|(w, s)| w.parse::<usize>().is_ok() && s.len() == 16 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

async fn session_exists(state: &ApiState, id: &str) -> Result<(), Response> {
    if !well_formed_id(id) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "session id must look like 0-0000000100000000",
        ));
    }
    if state.relay.sessions().await.iter().any(|v| v.id == id) {
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, "no such session (it may have expired)"))
    }
}

/// `POST /v1/sessions/{id}/srtp` body: SDES key params per direction.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SrtpBody {
    suite: String,
    /// Protects what the client sends (`inline:<base64 key||salt>`).
    #[serde(default)]
    client: Option<String>,
    /// Protects what the upstream sends.
    #[serde(default)]
    upstream: Option<String>,
}

/// Parses a `POST /v1/sessions/{id}/srtp` body into keys. Error messages
/// name the problem, never the key material (serde's would quote it).
pub fn parse_srtp_body(body: &[u8]) -> Result<crate::engine::SessionKeys, String> {
    let Ok(b) = serde_json::from_slice::<SrtpBody>(body) else {
        return Err(
            "body must be {\"suite\": \"…\", \"client\": \"inline:…\", \"upstream\": \"inline:…\"} (at least one key)"
                .into(),
        );
    };
    let suite: crate::srtp::CryptoSuite = b.suite.parse().map_err(|e: crate::srtp::KeyError| e.to_string())?;
    if b.client.is_none() && b.upstream.is_none() {
        return Err("give the client key, the upstream key or both".into());
    }
    let parse = |name: &str, k: &Option<String>| {
        k.as_deref()
            .map(|k| crate::srtp::SrtpKeys::from_key_params(suite, k))
            .transpose()
            .map_err(|e| format!("{name}: {e}"))
    };
    Ok(crate::engine::SessionKeys {
        client: parse("client", &b.client)?,
        upstream: parse("upstream", &b.upstream)?,
    })
}

/// Parses and checks a `PUT /v1/sessions/{id}/sdp` body.
pub fn parse_sdp_body(body: &[u8]) -> Result<(), String> {
    parse_descriptions(body).map(|_| ())
}

fn parse_descriptions(body: &[u8]) -> Result<Descriptions, String> {
    let d: Descriptions = serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))?;
    for (name, desc) in [
        ("localDescription", &d.local_description),
        ("remoteDescription", &d.remote_description),
    ] {
        if let Some(desc) = desc {
            if !["offer", "answer", "pranswer", "rollback"].contains(&desc.kind.as_str()) {
                return Err(format!("{name}.type must be offer, answer, pranswer or rollback"));
            }
            if desc.sdp.len() > MAX_SDP_BYTES || !(desc.sdp.is_empty() || desc.sdp.starts_with("v=0")) {
                return Err(format!(
                    "{name}.sdp must be an SDP document (v=0 …) of at most {MAX_SDP_BYTES} bytes"
                ));
            }
        }
    }
    Ok(d)
}

/// `POST /v1/sessions/{id}/srtp`: provisions the session's SRTCP keys (RFC
/// 4568 inline key params per direction). Answers with the keys'
/// fingerprints; errors never echo key material.
async fn post_srtp(State(state): State<Arc<ApiState>>, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    if !well_formed_id(&id) {
        return error(StatusCode::BAD_REQUEST, "session id must look like 0-0000000100000000");
    }
    let keys = match parse_srtp_body(&body) {
        Ok(k) => k,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let fingerprints = json!({
        "client": keys.client.as_ref().map(crate::srtp::SrtpKeys::fingerprint),
        "upstream": keys.upstream.as_ref().map(crate::srtp::SrtpKeys::fingerprint),
    });
    match state.relay.set_keys(&id, Some(keys)).await {
        Ok(true) => Json(fingerprints).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such session (it may have expired)"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// `DELETE /v1/sessions/{id}/srtp`: forgets the session's keys.
async fn delete_srtp(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    if !well_formed_id(&id) {
        return error(StatusCode::BAD_REQUEST, "session id must look like 0-0000000100000000");
    }
    match state.relay.set_keys(&id, None).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such session (it may have expired)"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// `GET /v1/sessions/{id}/sdp`: the descriptions attached to a session.
async fn get_sdp(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    if let Err(r) = session_exists(&state, &id).await {
        return r;
    }
    let d = state.descriptions.lock().ok().and_then(|m| m.get(&id).cloned());
    Json(d.unwrap_or_default()).into_response()
}

/// `PUT /v1/sessions/{id}/sdp` with `{"localDescription": {"type", "sdp"},
/// "remoteDescription": {...}}` (either may be omitted): what the shim
/// shows as the fake peer connection's descriptions.
async fn put_sdp(State(state): State<Arc<ApiState>>, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    if let Err(r) = session_exists(&state, &id).await {
        return r;
    }
    let live = state.relay.sessions().await;
    let d = match parse_descriptions(&body) {
        Ok(d) => d,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    {
        let Ok(mut map) = state.descriptions.lock() else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "descriptions unavailable");
        };
        if map.len() >= MAX_DESCRIPTIONS && !map.contains_key(&id) {
            // Forget SDP of sessions that ended (the stream producer does
            // this too, but only while somebody subscribes).
            map.retain(|k, _| live.iter().any(|v| v.id == *k));
        }
        if map.len() >= MAX_DESCRIPTIONS && !map.contains_key(&id) {
            return error(StatusCode::INSUFFICIENT_STORAGE, "too many sessions with SDP attached");
        }
        map.insert(id.clone(), d.clone());
    }
    description_event(&state, &id, &d);
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_sdp(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    if !well_formed_id(&id) {
        return error(StatusCode::BAD_REQUEST, "session id must look like 0-0000000100000000");
    }
    let removed = state.descriptions.lock().ok().and_then(|mut m| m.remove(&id));
    match removed {
        Some(_) => {
            description_event(&state, &id, &Descriptions::default());
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(StatusCode::NOT_FOUND, "no SDP attached to this session"),
    }
}

/// Prometheus text exposition format 0.0.4.
async fn metrics_text(State(state): State<Arc<ApiState>>) -> Response {
    if !state.metrics_enabled {
        return error(
            StatusCode::NOT_FOUND,
            "metrics are disabled ([metrics] enabled = false)",
        );
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.prometheus.render(),
    )
        .into_response()
}

/// Readiness: the API answers and every worker answers its control channel.
async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    let workers = state.relay.stats().await;
    if workers.is_empty() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no relay worker answers");
    }
    Json(json!({ "status": "ok", "workers": workers.len() })).into_response()
}

/// Why a session is `failed`, or went `disconnected`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Trouble {
    ConsentLost,
    UpstreamUnreachable,
    Idle,
    SrtcpAuth,
}

impl Trouble {
    fn reason(self) -> &'static str {
        match self {
            Trouble::ConsentLost => "consent-lost",
            Trouble::UpstreamUnreachable => "upstream-unreachable",
            Trouble::Idle => "idle",
            Trouble::SrtcpAuth => "srtcp-auth-failure",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Trouble::ConsentLost => "binding requests unanswered past the consent timeout (RFC 7675)",
            Trouble::UpstreamUnreachable => "the upstream answers with ICMP unreachable and sends nothing",
            Trouble::Idle => "no datagrams in either direction",
            Trouble::SrtcpAuth => "SRTCP failed authentication with the provisioned keys (dropped)",
        }
    }
}

/// `iceConnectionState`-style state of a session, derived from traffic
/// liveness and STUN: `checking` (binding requests went out, nothing came
/// back yet), `connected` (datagrams within the last 2 s, either way: one-way
/// media such as a SIP trunk's is connected too), `disconnected` (quiet),
/// `failed` (consent expired, or the upstream unreachable). A session only
/// exists once a client sent something, so `new` is the subscriber's state
/// before the first event. `refused_now`: ICMP errors since the last look.
fn ice_state(v: &SessionView, refused_at: Option<f64>, consent_timeout: f64) -> (&'static str, Option<Trouble>) {
    let s = &v.snapshot;
    let (client, upstream) = (s.side(Side::Client), s.side(Side::Upstream));
    let recent = |t: Option<f64>| t.is_some_and(|t| s.taken_at - t <= ACTIVE_WITHIN_SECS);
    if client
        .stun_unanswered_since
        .is_some_and(|t| s.taken_at - t >= consent_timeout)
        || upstream
            .stun_unanswered_since
            .is_some_and(|t| s.taken_at - t >= consent_timeout)
    {
        return ("failed", Some(Trouble::ConsentLost));
    }
    // ICMP unreachable came after the last datagram from the upstream, and
    // the upstream has been silent since.
    if refused_at.is_some_and(|r| upstream.last_activity.is_none_or(|u| r > u)) && !recent(upstream.last_activity) {
        return ("failed", Some(Trouble::UpstreamUnreachable));
    }
    if upstream.last_activity.is_none() && client.stun_requests > 0 {
        // Connectivity checks went out and nothing came back yet.
        return ("checking", None);
    }
    if recent(client.last_activity) || recent(upstream.last_activity) {
        ("connected", None)
    } else {
        ("disconnected", Some(Trouble::Idle))
    }
}

/// RTCPeerConnectionState for an ICE state.
fn connection_state(ice: &str) -> &'static str {
    match ice {
        "new" => "new",
        "checking" => "connecting",
        "connected" => "connected",
        "disconnected" => "disconnected",
        "failed" => "failed",
        _ => "closed",
    }
}

fn state_event(state: &ApiState, session: &str, ice: &'static str) {
    let signaling = if ice == "closed" { "closed" } else { "stable" };
    send(
        state,
        "state",
        json!({
            "session": session,
            "iceConnectionState": ice,
            "connectionState": connection_state(ice),
            "signalingState": signaling,
        }),
    );
}

fn description_data(session: &str, d: &Descriptions) -> serde_json::Value {
    json!({
        "session": session,
        "localDescription": d.local_description,
        "remoteDescription": d.remote_description,
    })
}

fn description_event(state: &ApiState, session: &str, d: &Descriptions) {
    send(state, "description", description_data(session, d));
}

fn error_data(session: &str, t: Trouble, clock: &Clock) -> serde_json::Value {
    json!({
        "session": session,
        "reason": t.reason(),
        "message": t.message(),
        "timestamp": clock.wall().as_secs_f64() * 1000.0,
    })
}

/// Takes one snapshot of every session per interval while anybody listens
/// and broadcasts `state` transitions (with an `error` event when the
/// transition has a reason) and `stats` reports. New subscribers get every
/// session's current state first, from [`initial_events`].
async fn produce_stream(state: Arc<ApiState>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut known: HashMap<String, &'static str> = HashMap::new();
    // Per session: ICMP error count, and when it last grew.
    let mut refused: HashMap<String, (u64, Option<f64>)> = HashMap::new();
    // Per session: SRTCP authentication failures seen.
    let mut auth_failures: HashMap<String, u64> = HashMap::new();
    let clock = Clock::new();
    loop {
        tick.tick().await;
        if state.events.subscribers() == 0 {
            known.clear();
            if let Ok(mut c) = state.current.lock() {
                c.clear();
            }
            continue;
        }
        let views = state.relay.sessions().await;
        let mut seen = HashMap::new();
        let mut current = HashMap::new();
        let mut seen_refused = HashMap::new();
        for v in &views {
            let (count, mut at) = refused.get(&v.id).copied().unwrap_or((0, None));
            if v.upstream_refused > count {
                at = Some(v.snapshot.taken_at);
            }
            seen_refused.insert(v.id.clone(), (v.upstream_refused, at));
            let (mut ice, mut trouble) = ice_state(v, at, state.consent_timeout_secs);
            // An unreachable upstream stays failed until traffic returns.
            if known.get(&v.id) == Some(&"failed") && ice == "disconnected" {
                ice = "failed";
                trouble = state.current.lock().ok().and_then(|c| c.get(&v.id).and_then(|x| x.1));
            }
            if known.get(&v.id) != Some(&ice) {
                state_event(&state, &v.id, ice);
                // A fresh session that is merely quiet is not an error.
                if let (Some(t), true) = (trouble, known.contains_key(&v.id) || ice == "failed") {
                    send(&state, "error", error_data(&v.id, t, &clock));
                }
            }
            let failures: u64 = v.snapshot.sides.iter().map(|x| x.srtcp_auth_failures).sum();
            if failures > auth_failures.get(&v.id).copied().unwrap_or(0) {
                send(&state, "error", error_data(&v.id, Trouble::SrtcpAuth, &clock));
            }
            auth_failures.insert(v.id.clone(), failures);
            seen.insert(v.id.clone(), ice);
            current.insert(v.id.clone(), (ice, trouble));
            let offset = v.wall_offset_ms;
            let report = session_report(&v.snapshot, &state.rates, |t| t * 1000.0 + offset);
            send(&state, "stats", json!({ "session": v.id, "report": report }));
        }
        for gone in known.keys().filter(|id| !seen.contains_key(*id)) {
            state_event(&state, gone, "closed");
        }
        if let Ok(mut d) = state.descriptions.lock() {
            // SDP of sessions that ended goes with them.
            d.retain(|id, _| seen.contains_key(id));
        }
        if let Ok(mut c) = state.current.lock() {
            *c = current;
        }
        auth_failures.retain(|id, _| seen.contains_key(id));
        known = seen;
        refused = seen_refused;
    }
}

/// What a new subscriber gets before the broadcast: each session's SDP,
/// current state, and the reason when it is failed.
async fn initial_events(state: &ApiState, only: Option<&str>) -> Vec<Arc<StreamEvent>> {
    let clock = Clock::new();
    let mut out = Vec::new();
    let event = |name: &'static str, session: &str, data: serde_json::Value| {
        Arc::new(StreamEvent {
            name,
            session: session.to_string(),
            data: data.to_string(),
        })
    };
    for v in state.relay.sessions().await {
        if only.is_some_and(|id| id != v.id) {
            continue;
        }
        let known = state.current.lock().ok().and_then(|c| c.get(&v.id).copied());
        let (ice, trouble) = known.unwrap_or_else(|| ice_state(&v, None, state.consent_timeout_secs));
        if let Some(d) = state.descriptions.lock().ok().and_then(|m| m.get(&v.id).cloned()) {
            out.push(event("description", &v.id, description_data(&v.id, &d)));
        }
        out.push(event(
            "state",
            &v.id,
            json!({
                "session": v.id,
                "iceConnectionState": ice,
                "connectionState": connection_state(ice),
                "signalingState": "stable",
            }),
        ));
        if let (Some(t), "failed") = (trouble, ice) {
            out.push(event("error", &v.id, error_data(&v.id, t, &clock)));
        }
    }
    out
}

fn send(state: &ApiState, name: &'static str, data: serde_json::Value) {
    let event = Arc::new(StreamEvent {
        name,
        session: data["session"].as_str().unwrap_or_default().to_string(),
        data: data.to_string(),
    });
    state.events.send(&event.session, &event);
}

/// `?session=ID`: only that session's events.
#[derive(serde::Deserialize)]
struct StreamQuery {
    session: Option<String>,
}

async fn stream(
    State(state): State<Arc<ApiState>>,
    Query(q): Query<StreamQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let sub = state.events.subscribe(q.session.clone());
    let initial: std::collections::VecDeque<Arc<StreamEvent>> =
        initial_events(&state, q.session.as_deref()).await.into();
    let events = stream::unfold((sub, initial), |(sub, mut initial)| async move {
        let e = match initial.pop_front() {
            Some(e) => e,
            None => sub.recv().await,
        };
        let event = Event::default().event(e.name).data(e.data.as_str());
        Some((Ok(event), (sub, initial)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The same messages as `/v1/stream`, as WebSocket text frames
/// `{"event": "stats"|"state"|…, "data": {...}}`.
async fn stream_ws(State(state): State<Arc<ApiState>>, Query(q): Query<StreamQuery>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        let sub = state.events.subscribe(q.session.clone());
        for e in initial_events(&state, q.session.as_deref()).await {
            let text = format!("{{\"event\":\"{}\",\"data\":{}}}", e.name, e.data);
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
        loop {
            let e = sub.recv().await;
            let text = format!("{{\"event\":\"{}\",\"data\":{}}}", e.name, e.data);
            if socket.send(Message::Text(text.into())).await.is_err() {
                return; // the client went away
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abcdefghijklmnop", b"abcdefghijklmnop"));
        assert!(!constant_time_eq(b"abcdefghijklmnop", b"abcdefghijklmnoq"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
