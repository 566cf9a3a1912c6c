//! The calls API: the application's signalling hands each SDP offer and
//! answer of a WebRTC call through the proxy, which puts its own DTLS
//! fingerprint in them (and, with `announce`, its own address as the only
//! candidate toward the client), so each endpoint's DTLS handshake ends at
//! the proxy (RFC 5763 §5, RFC 8842). Once offer and answer are both known
//! the call goes to the engine, which binds it to the session whose ICE
//! checks carry the two ufrags, or, when neither SDP has ICE, to the
//! session whose client address is the client SDP's `c=` address and m=
//! port.
//!
//! * `POST /v1/calls/{call_id}/offer`, `POST /v1/calls/{call_id}/answer`:
//!   `{"sdp": "...", "from": "client" | "upstream"}` → `{"sdp": "..."}`,
//!   the SDP to hand to the other side.
//! * `DELETE /v1/calls/{call_id}`: forget the call (its session closes).
//!
//! Errors are JSON with a stable `reason` (`no-media-line`,
//! `no-fingerprint`, `unsupported-setup`, `call-unknown`, `mixed-ice`,
//! `no-media-address`, …) and never
//! echo SDP lines (they carry ICE passwords and possibly SDES keys).

use super::sdp::{Description, Descriptions};
use super::{error, ApiState};
use crate::engine::dtls::{CallSetup, DtlsRole, PeerDtls};
use crate::runtime::clock::Clock;
use crate::sdp::{self, DtlsDescription, Fingerprint, Rewrite, Setup};
use crate::time::MonoTime;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Calls whose answer has not come yet, at most (each holds one SDP's facts).
const MAX_PENDING_CALLS: usize = 10_000;
/// A call whose answer never comes is forgotten after this.
const PENDING_TTL: Duration = Duration::from_secs(120);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    sdp: String,
    from: From,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
enum From {
    Client,
    Upstream,
}

/// An offer waiting for its answer.
pub(super) struct Pending {
    from: From,
    description: DtlsDescription,
    /// The offer as its side sent it, and as the other side got it.
    original: String,
    sent: String,
    at: MonoTime,
}

/// Calls in progress, by call id.
#[derive(Default)]
pub(super) struct Calls {
    pending: HashMap<String, Pending>,
    /// Answered calls: the client's view of the exchange (its own SDP and
    /// the rewritten one it got), attached to the session once it binds.
    answered: HashMap<String, (Descriptions, MonoTime)>,
    /// Ages of pending and answered calls (the runtime's clock).
    clock: Clock,
}

impl Calls {
    /// The descriptions of an answered call, taken once (its session is
    /// bound: they now belong to the session).
    pub(super) fn take_descriptions(&mut self, call_id: &str) -> Option<Descriptions> {
        self.answered.remove(call_id).map(|(d, _)| d)
    }

    /// Whether answered calls wait for their session to show up.
    pub(super) fn answered_waiting(&self) -> bool {
        !self.answered.is_empty()
    }
}

/// A refused request: status, stable reason label, message. The handlers
/// return it as their `Err`, so `?` answers with it.
pub(super) struct Failure(StatusCode, &'static str, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Failure(status, reason, message) = self;
        (status, Json(json!({ "error": message, "reason": reason }))).into_response()
    }
}

fn fail(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Failure {
    Failure(status, reason, message.into())
}

/// 400 for a call id the API does not take.
fn check_call_id(id: &str) -> Result<(), Failure> {
    match well_formed_call_id(id) {
        true => Ok(()),
        false => Err(fail(
            StatusCode::BAD_REQUEST,
            "bad-call-id",
            "call id: 1-128 of A-Z a-z 0-9 - _ .",
        )),
    }
}

fn well_formed_call_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn parse(body: &Bytes) -> Result<(Body, DtlsDescription), Failure> {
    let body: Body = serde_json::from_slice(body).map_err(|_| {
        fail(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "body must be {\"sdp\": \"...\", \"from\": \"client\" | \"upstream\"}",
        )
    })?;
    let description = sdp::inspect(&body.sdp).map_err(|e| fail(StatusCode::BAD_REQUEST, e.label(), e.reason()))?;
    if !description.fingerprints.iter().any(|f| f.algorithm == "sha-256") {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "no-sha-256-fingerprint",
            "the SDP has no sha-256 a=fingerprint",
        ));
    }
    Ok((body, description))
}

/// The proxy's fingerprint, the announced address toward clients, and the
/// rewritten SDP for the side that receives it.
fn rewritten(state: &ApiState, sdp_text: &str, toward: From) -> Result<String, Failure> {
    let facts = state.relay.calls();
    let Some(identity) = facts.identity.as_ref() else {
        return Err(fail(
            StatusCode::CONFLICT,
            "not-terminating",
            "no [[relay]] has dtls = \"terminate\"",
        ));
    };
    let fingerprint = Fingerprint {
        algorithm: "sha-256".into(),
        value: identity.fingerprint().to_vec(),
    };
    // Toward the client the proxy's own address replaces the upstream's
    // candidates when the relay announces one.
    let announce = match toward {
        From::Client => facts.relays.first().and_then(|(_, a)| *a),
        From::Upstream => None,
    };
    let rw = Rewrite {
        fingerprint: &fingerprint,
        setup: None,
        announce,
    };
    sdp::rewrite(sdp_text, &rw).map_err(|e| fail(StatusCode::BAD_REQUEST, e.label(), e.reason()))
}

fn other(from: From) -> From {
    match from {
        From::Client => From::Upstream,
        From::Upstream => From::Client,
    }
}

/// `POST /v1/calls/{call_id}/offer`.
pub(super) async fn post_offer(
    State(state): State<Arc<ApiState>>,
    Path(call_id): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    check_call_id(&call_id)?;
    let (body, description) = parse(&body)?;
    let sdp_out = rewritten(&state, &body.sdp, other(body.from))?;
    let Ok(mut calls) = state.calls.lock() else {
        return Ok(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
    };
    let now = calls.clock.now();
    calls.pending.retain(|_, p| now.saturating_since(p.at) < PENDING_TTL);
    if calls.pending.len() >= MAX_PENDING_CALLS && !calls.pending.contains_key(&call_id) {
        return Err(fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-calls",
            "too many calls waiting for an answer",
        ));
    }
    // A re-offer replaces the pending one.
    calls.pending.insert(
        call_id,
        Pending {
            from: body.from,
            description,
            original: body.sdp,
            sent: sdp_out.clone(),
            at: now,
        },
    );
    Ok(Json(json!({ "sdp": sdp_out })).into_response())
}

/// The DTLS roles once the answer is known (RFC 5763 §5): the answerer
/// says `active` or `passive`; an `actpass` offerer takes the other role,
/// and an offerer that already chose must have chosen the other one.
fn roles(offer: Setup, answer: Setup) -> Result<(DtlsRole, DtlsRole), Failure> {
    let answerer = match answer {
        Setup::Active => DtlsRole::Client,
        Setup::Passive => DtlsRole::Server,
        Setup::Actpass => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "unsupported-setup",
                "an answer must say a=setup:active or a=setup:passive",
            ))
        }
    };
    let offerer = match answerer {
        DtlsRole::Client => DtlsRole::Server,
        DtlsRole::Server => DtlsRole::Client,
    };
    let consistent = match offer {
        Setup::Actpass => true,
        Setup::Active => offerer == DtlsRole::Client,
        Setup::Passive => offerer == DtlsRole::Server,
    };
    if !consistent {
        return Err(fail(
            StatusCode::CONFLICT,
            "conflicting-setup",
            "the answer's a=setup takes the role the offer already took",
        ));
    }
    Ok((offerer, answerer))
}

/// How the engine will find the call's session: by the ICE ufrags when
/// both SDPs have them (`None` here), else (DTLS-SRTP without ICE, RFC
/// 5763 §5) by the client's media address from its own SDP; an SDP pair
/// half ICE, half not, cannot be bound.
fn binding_address(
    offer: &DtlsDescription,
    answer: &DtlsDescription,
    answer_from: From,
) -> Result<Option<std::net::SocketAddr>, Failure> {
    let client = match answer_from {
        From::Client => answer,
        From::Upstream => offer,
    };
    match (offer.ice_ufrag.is_some(), answer.ice_ufrag.is_some()) {
        (true, true) => Ok(None),
        (false, false) => client.media_address.map(Some).ok_or_else(|| {
            fail(
                StatusCode::BAD_REQUEST,
                "no-media-address",
                "without ICE the client's SDP needs a c= address and an m= port: the call binds by them",
            )
        }),
        _ => Err(fail(
            StatusCode::BAD_REQUEST,
            "mixed-ice",
            "one SDP has a=ice-ufrag and the other none",
        )),
    }
}

fn peer(d: &DtlsDescription, role: DtlsRole) -> PeerDtls {
    PeerDtls {
        ufrag: d.ice_ufrag.clone(),
        fingerprints: d
            .fingerprints
            .iter()
            .filter(|f| f.algorithm == "sha-256")
            .filter_map(|f| <[u8; 32]>::try_from(f.value.as_slice()).ok())
            .collect(),
        role,
    }
}

/// `POST /v1/calls/{call_id}/answer`.
pub(super) async fn post_answer(
    State(state): State<Arc<ApiState>>,
    Path(call_id): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    check_call_id(&call_id)?;
    let (body, answer) = parse(&body)?;
    let offer = {
        let Ok(mut calls) = state.calls.lock() else {
            return Ok(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
        };
        match calls.pending.get(&call_id) {
            None => {
                return Err(fail(
                    StatusCode::NOT_FOUND,
                    "call-unknown",
                    "no offer for this call (or it expired)",
                ))
            }
            Some(p) if p.from == body.from => {
                return Err(fail(
                    StatusCode::CONFLICT,
                    "same-side",
                    "the answer must come from the other side than the offer",
                ))
            }
            Some(_) => {}
        }
        match calls.pending.remove(&call_id) {
            Some(p) => p,
            None => return Err(fail(StatusCode::NOT_FOUND, "call-unknown", "no offer for this call")),
        }
    };
    let (offerer, answerer) = roles(offer.description.setup, answer.setup)?;
    let sdp_out = rewritten(&state, &body.sdp, other(body.from))?;
    let (client, upstream) = match body.from {
        From::Upstream => (peer(&offer.description, offerer), peer(&answer, answerer)),
        From::Client => (peer(&answer, answerer), peer(&offer.description, offerer)),
    };
    let client_address = binding_address(&offer.description, &answer, body.from)?;
    // The client's view, for the stream and the shim: what it sent, and
    // what it got (rewritten).
    let kind = |k: &str| {
        Some(Description {
            kind: k.into(),
            sdp: String::new(),
        })
    };
    let mut view = Descriptions {
        local_description: kind(if body.from == From::Client { "answer" } else { "offer" }),
        remote_description: kind(if body.from == From::Client { "offer" } else { "answer" }),
    };
    let (local, remote) = match body.from {
        From::Client => (body.sdp.clone(), offer.sent),
        From::Upstream => (offer.original, sdp_out.clone()),
    };
    if let (Some(l), Some(r)) = (view.local_description.as_mut(), view.remote_description.as_mut()) {
        l.sdp = local;
        r.sdp = remote;
    }
    let setup = CallSetup {
        call_id: call_id.clone(),
        client,
        upstream,
        client_address,
    };
    if let Err(e) = state.relay.set_call(setup).await {
        return Err(fail(StatusCode::CONFLICT, "call-refused", e));
    }
    if let Ok(mut calls) = state.calls.lock() {
        let now = calls.clock.now();
        calls
            .answered
            .retain(|_, (_, at)| now.saturating_since(*at) < PENDING_TTL);
        if calls.answered.len() < MAX_PENDING_CALLS {
            calls.answered.insert(call_id, (view, now));
        }
    }
    Ok(Json(json!({ "sdp": sdp_out })).into_response())
}

/// `DELETE /v1/calls/{call_id}`.
pub(super) async fn delete_call(
    State(state): State<Arc<ApiState>>,
    Path(call_id): Path<String>,
) -> Result<Response, Failure> {
    check_call_id(&call_id)?;
    let pending = state
        .calls
        .lock()
        .map(|mut c| c.pending.remove(&call_id).is_some())
        .unwrap_or(false);
    let bound = state.relay.remove_call(&call_id).await;
    if pending || bound {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(fail(StatusCode::NOT_FOUND, "call-unknown", "no such call"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_rfc5763() {
        let ok = |o, a| roles(o, a).ok();
        assert_eq!(
            ok(Setup::Actpass, Setup::Active),
            Some((DtlsRole::Server, DtlsRole::Client))
        );
        assert_eq!(
            ok(Setup::Actpass, Setup::Passive),
            Some((DtlsRole::Client, DtlsRole::Server))
        );
        assert_eq!(
            ok(Setup::Active, Setup::Passive),
            Some((DtlsRole::Client, DtlsRole::Server))
        );
        assert!(ok(Setup::Active, Setup::Active).is_none());
        assert!(ok(Setup::Passive, Setup::Passive).is_none());
        assert!(ok(Setup::Actpass, Setup::Actpass).is_none());
    }

    #[test]
    fn call_ids() {
        assert!(well_formed_call_id("room-1.call_2"));
        assert!(!well_formed_call_id(""));
        assert!(!well_formed_call_id("a/b"));
        assert!(!well_formed_call_id(&"x".repeat(129)));
    }
}
