//! `GET`/`PUT`/`DELETE /v1/sessions/{id}/sdp`: descriptions attached to a
//! session, which the stream sends as `description` events.

use super::stream::description_event;
use super::{error, malformed_id, no_such_session, well_formed_id, ApiState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::Arc;

/// SDP attached to a session through `PUT /v1/sessions/{id}/sdp`, served to
/// the shim as `localDescription`/`remoteDescription`.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Descriptions {
    #[serde(default)]
    pub(super) local_description: Option<Description>,
    #[serde(default)]
    pub(super) remote_description: Option<Description>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Description {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) sdp: String,
}

/// Attaches descriptions to a session (and tells the engine the streams
/// they describe): `PUT …/sdp` and the calls API once a call is bound.
pub(super) async fn attach(state: &ApiState, id: &str, d: Descriptions) {
    if let Ok(mut map) = state.descriptions.lock() {
        if map.len() >= MAX_DESCRIPTIONS && !map.contains_key(id) {
            return;
        }
        map.insert(id.to_owned(), d.clone());
    }
    let sdps = [&d.local_description, &d.remote_description];
    let media = crate::engine::media::MediaMap::from_sdp(sdps.iter().flat_map(|x| x.as_ref()).map(|x| x.sdp.as_str()));
    state.relay.set_media(id, media).await;
    description_event(state, id, &d);
}

/// Largest SDP accepted per description, and sessions with SDP attached.
pub(super) const MAX_SDP_BYTES: usize = 64 * 1024;
const MAX_DESCRIPTIONS: usize = 10_000;

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

async fn session_exists(state: &ApiState, id: &str) -> Result<(), Response> {
    if !well_formed_id(id) {
        return Err(malformed_id());
    }
    if state.relay.sessions().await.iter().any(|v| v.id == id) {
        Ok(())
    } else {
        Err(no_such_session())
    }
}

/// `GET /v1/sessions/{id}/sdp`: the descriptions attached to a session.
pub(super) async fn get_sdp(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    if let Err(r) = session_exists(&state, &id).await {
        return r;
    }
    let d = state.descriptions.lock().ok().and_then(|m| m.get(&id).cloned());
    Json(d.unwrap_or_default()).into_response()
}

/// `PUT /v1/sessions/{id}/sdp` with `{"localDescription": {"type", "sdp"},
/// "remoteDescription": {...}}` (either may be omitted): what the shim
/// shows as the fake peer connection's descriptions.
pub(super) async fn put_sdp(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
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
    // What the engine needs from it: RTX payload types and SSRC groups.
    let sdps = [&d.local_description, &d.remote_description];
    let media = crate::engine::media::MediaMap::from_sdp(sdps.iter().flat_map(|x| x.as_ref()).map(|x| x.sdp.as_str()));
    state.relay.set_media(&id, media).await;
    description_event(&state, &id, &d);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn delete_sdp(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    if !well_formed_id(&id) {
        return malformed_id();
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
