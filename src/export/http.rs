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
use crate::report::session_report;
use crate::runtime::clock::Clock;
use crate::runtime::{RelayHandle, SessionView};
use crate::stats::ClockRates;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::broadcast;
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
                    interval: c.collector.interval_secs.map_or(Duration::from_secs(10), Duration::from_secs),
                    timeout: c.collector.timeout_ms.map_or(defaults.timeout, Duration::from_millis),
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
    events: broadcast::Sender<Arc<StreamEvent>>,
    events_dropped: AtomicU64,
    prometheus: PrometheusHandle,
    metrics_enabled: bool,
}

/// One Server-Sent Event, serialised once for every subscriber.
struct StreamEvent {
    name: &'static str,
    data: String,
}

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
    let (events, _) = broadcast::channel(SUBSCRIBER_BUFFER);
    // Per-session gauges of ended sessions expire after three intervals.
    let (recorder, prometheus) = publish::prometheus_recorder(metrics.interval * 3);
    let publisher = publish::Publisher::new(metrics.clone(), rates.clone(), unix_nanos(&Clock::new()));
    let state = Arc::new(ApiState {
        relay,
        rates,
        token,
        cors_origins,
        events,
        events_dropped: AtomicU64::new(0),
        prometheus,
        metrics_enabled: metrics.enabled,
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
        .route("/v1/counters", get(counters))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/v1/stream", get(stream))
        .route("/v1/stream/ws", get(stream_ws))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
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
    encrypted: bool,
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
        encrypted: s.encrypted,
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
            "subscribers": state.events.receiver_count(),
            "eventsDropped": state.events_dropped.load(Ordering::Relaxed),
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
            stream_subscribers: state.events.receiver_count() as u64,
            stream_events_dropped: state.events_dropped.load(Ordering::Relaxed),
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

/// Prometheus text exposition format 0.0.4.
async fn metrics_text(State(state): State<Arc<ApiState>>) -> Response {
    if !state.metrics_enabled {
        return error(StatusCode::NOT_FOUND, "metrics are disabled ([metrics] enabled = false)");
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

/// `iceConnectionState`-style name of a session's liveness.
fn connection_state(summary: &SessionSummary) -> &'static str {
    if summary.state == "active" {
        "connected"
    } else {
        "disconnected"
    }
}

/// Takes one snapshot of every session per interval while anybody listens
/// and broadcasts `state` transitions and `stats` reports.
async fn produce_stream(state: Arc<ApiState>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut known: HashMap<String, &'static str> = HashMap::new();
    loop {
        tick.tick().await;
        if state.events.receiver_count() == 0 {
            known.clear();
            continue;
        }
        let views = state.relay.sessions().await;
        let mut seen = HashMap::new();
        for v in &views {
            let now = connection_state(&summary(v));
            if known.get(&v.id) != Some(&now) {
                send(
                    &state,
                    "state",
                    json!({ "session": v.id, "iceConnectionState": now, "signalingState": "stable" }),
                );
            }
            seen.insert(v.id.clone(), now);
            let offset = v.wall_offset_ms;
            let report = session_report(&v.snapshot, &state.rates, |t| t * 1000.0 + offset);
            send(&state, "stats", json!({ "session": v.id, "report": report }));
        }
        for gone in known.keys().filter(|id| !seen.contains_key(*id)) {
            send(
                &state,
                "state",
                json!({ "session": gone, "iceConnectionState": "closed", "signalingState": "closed" }),
            );
        }
        known = seen;
    }
}

fn send(state: &ApiState, name: &'static str, data: serde_json::Value) {
    let event = Arc::new(StreamEvent {
        name,
        data: data.to_string(),
    });
    // No receiver is not an error: the next tick checks again.
    let _ = state.events.send(event);
}

async fn stream(State(state): State<Arc<ApiState>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.events.subscribe();
    let events = stream::unfold((rx, state), |(mut rx, state)| async move {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    let event = Event::default().event(e.name).data(e.data.as_str());
                    return Some((Ok(event), (rx, state)));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    state.events_dropped.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The same messages as `/v1/stream`, as WebSocket text frames
/// `{"event": "stats"|"state", "data": {...}}`.
async fn stream_ws(State(state): State<Arc<ApiState>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |mut socket| async move {
        let mut rx = state.events.subscribe();
        loop {
            match rx.recv().await {
                Ok(e) => {
                    let text = format!("{{\"event\":\"{}\",\"data\":{}}}", e.name, e.data);
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return; // the client went away
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    state.events_dropped.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return,
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
