//! `GET /v1/sessions`, `GET /v1/sessions/{id}/stats`, `GET /v1/counters`,
//! `GET /healthz` and `GET /metrics`.

use super::stream::{connection_state, ice_state, ACTIVE_WITHIN_SECS};
use super::{error, malformed_id, no_such_session, well_formed_id, ApiState};
use crate::report::session_report;
use crate::runtime::SessionView;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

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
    /// Back-to-back DTLS legs when the session is bound to a call.
    #[serde(skip_serializing_if = "Option::is_none")]
    dtls: Option<crate::engine::DtlsSnapshot>,
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
        dtls: s.dtls.clone(),
        opened_at: s.opened_at * 1000.0 + v.wall_offset_ms,
        last_activity: last.map(|t| t * 1000.0 + v.wall_offset_ms),
        ssrcs: json!({ "client": ssrcs(0), "upstream": ssrcs(1) }),
    }
}

pub(super) async fn list_sessions(State(state): State<Arc<ApiState>>) -> Response {
    let mut sessions: Vec<SessionSummary> = state.relay.sessions().await.iter().map(summary).collect();
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    Json(sessions).into_response()
}

pub(super) async fn session_stats(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    if !well_formed_id(&id) {
        return malformed_id();
    }
    let sessions = state.relay.sessions().await;
    match sessions.iter().find(|v| v.id == id) {
        Some(v) => {
            let offset = v.wall_offset_ms;
            Json(session_report(&v.snapshot, &state.rates, |t| t * 1000.0 + offset)).into_response()
        }
        None => no_such_session(),
    }
}

pub(super) async fn counters(State(state): State<Arc<ApiState>>) -> Response {
    Json(json!({
        "workers": state.relay.stats().await,
        "stream": {
            "subscribers": state.events.subscribers(),
            "eventsDropped": state.events.dropped(),
        },
    }))
    .into_response()
}

/// Prometheus text exposition format 0.0.4.
pub(super) async fn metrics_text(State(state): State<Arc<ApiState>>) -> Response {
    let Some(prometheus) = &state.prometheus else {
        return error(
            StatusCode::NOT_FOUND,
            "metrics are disabled ([metrics] enabled = false)",
        );
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        prometheus.render(),
    )
        .into_response()
}

/// Readiness: the API answers and every worker answers its control channel.
pub(super) async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    let workers = state.relay.stats().await;
    if workers.is_empty() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no relay worker answers");
    }
    Json(json!({ "status": "ok", "workers": workers.len() })).into_response()
}
