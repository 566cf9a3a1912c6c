//! `POST`/`DELETE /v1/sessions/{id}/srtp`: SRTCP keys of a session.

use super::{error, malformed_id, no_such_session, well_formed_id, ApiState};
use crate::engine::{KeysOutcome, SessionKeys};
use crate::srtp::{CryptoSuite, KeyError, SrtpKeys};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

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
pub fn parse_srtp_body(body: &[u8]) -> Result<SessionKeys, String> {
    let Ok(b) = serde_json::from_slice::<SrtpBody>(body) else {
        return Err(
            "body must be {\"suite\": \"…\", \"client\": \"inline:…\", \"upstream\": \"inline:…\"} (at least one key)"
                .into(),
        );
    };
    let suite: CryptoSuite = b.suite.parse().map_err(|e: KeyError| e.to_string())?;
    if b.client.is_none() && b.upstream.is_none() {
        return Err("give the client key, the upstream key or both".into());
    }
    let parse = |name: &str, k: &Option<String>| {
        k.as_deref()
            .map(|k| SrtpKeys::from_key_params(suite, k))
            .transpose()
            .map_err(|e| format!("{name}: {e}"))
    };
    Ok(SessionKeys {
        client: parse("client", &b.client)?,
        upstream: parse("upstream", &b.upstream)?,
    })
}

/// `POST /v1/sessions/{id}/srtp`: provisions the session's SRTCP keys (RFC
/// 4568 inline key params per direction). Answers with the keys'
/// fingerprints; errors never echo key material.
pub(super) async fn post_srtp(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if !well_formed_id(&id) {
        return malformed_id();
    }
    let keys = match parse_srtp_body(&body) {
        Ok(k) => k,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let fingerprints = json!({
        "client": keys.client.as_ref().map(SrtpKeys::fingerprint),
        "upstream": keys.upstream.as_ref().map(SrtpKeys::fingerprint),
    });
    match state.relay.set_keys(&id, Some(keys)).await {
        Ok(KeysOutcome::Done) => Json(fingerprints).into_response(),
        Ok(KeysOutcome::UnknownSession) => no_such_session(),
        Ok(KeysOutcome::Refused(why)) => error(StatusCode::CONFLICT, why),
        Err(_) => internal_error(),
    }
}

/// `DELETE /v1/sessions/{id}/srtp`: forgets the session's keys; 409 in
/// `terminate`, where the receivers' replay windows sit at the indices the
/// proxy re-protects at, so forwarding the endpoints' own would be refused
/// (provision new keys instead), and for keys from DTLS (POST too).
pub(super) async fn delete_srtp(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    if !well_formed_id(&id) {
        return malformed_id();
    }
    match state.relay.set_keys(&id, None).await {
        Ok(KeysOutcome::Done) => StatusCode::NO_CONTENT.into_response(),
        Ok(KeysOutcome::UnknownSession) => no_such_session(),
        Ok(KeysOutcome::Refused(why)) => error(StatusCode::CONFLICT, why),
        Err(_) => internal_error(),
    }
}

/// 500 without details: the crypto provider's or the worker's failure is
/// nothing a client can act on, and its text could name internals.
fn internal_error() -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "the relay could not apply the keys")
}
