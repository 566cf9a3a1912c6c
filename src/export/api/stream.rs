//! `GET /v1/stream` (Server-Sent Events) and `GET /v1/stream/ws`
//! (WebSocket): the producer that snapshots the sessions per interval, the
//! `iceConnectionState`/`connectionState` derivation, and the `state`,
//! `description`, `error` and `stats` events.

use super::sdp::Descriptions;
use super::ApiState;
use crate::engine::Side;
use crate::export::fanout::Fanout;
use crate::report::session_report;
use crate::runtime::clock::Clock;
use crate::runtime::SessionView;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use futures_util::stream::{self, Stream};
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// A session counts as `active` while it carried a datagram this recently.
pub(super) const ACTIVE_WITHIN_SECS: f64 = 2.0;

/// Events buffered per subscriber before the oldest are dropped.
pub(super) const SUBSCRIBER_BUFFER: usize = 256;

/// The stream's subscribers.
pub(super) type Events = Fanout<Arc<StreamEvent>>;

/// One Server-Sent Event, serialised once for every subscriber.
pub(super) struct StreamEvent {
    name: &'static str,
    /// The session the event is about (for `?session=` filtering).
    session: String,
    data: String,
}

/// Why a session is `failed`, or went `disconnected`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Trouble {
    ConsentLost,
    UpstreamUnreachable,
    Idle,
    SrtcpAuth,
    DtlsFailure,
}

impl Trouble {
    fn reason(self) -> &'static str {
        match self {
            Trouble::ConsentLost => "consent-lost",
            Trouble::UpstreamUnreachable => "upstream-unreachable",
            Trouble::Idle => "idle",
            Trouble::SrtcpAuth => "srtcp-auth-failure",
            Trouble::DtlsFailure => "dtls-failure",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Trouble::ConsentLost => "binding requests unanswered past the consent timeout (RFC 7675)",
            Trouble::UpstreamUnreachable => "the upstream answers with ICMP unreachable and sends nothing",
            Trouble::Idle => "no datagrams in either direction",
            Trouble::SrtcpAuth => "SRTCP failed authentication with the provisioned keys (dropped)",
            Trouble::DtlsFailure => {
                "a DTLS leg failed (its certificate did not match the SDP fingerprint, or the handshake timed out): no media passes"
            }
        }
    }
}

/// `iceConnectionState`-style state of a session, derived from traffic
/// liveness and STUN: `checking` (binding requests went out, nothing came
/// back yet), `connected` (datagrams within the last 2 s, either way: one-way
/// media such as a SIP trunk's is connected too), `disconnected` (quiet),
/// `failed` (consent expired, or the upstream unreachable). A session only
/// exists once a client sent something, so `new` is the subscriber's state
/// before the first event. `refused_at`: when ICMP errors last grew.
pub(super) fn ice_state(
    v: &SessionView,
    refused_at: Option<f64>,
    consent_timeout: f64,
) -> (&'static str, Option<Trouble>) {
    let s = &v.snapshot;
    let (client, upstream) = (s.side(Side::Client), s.side(Side::Upstream));
    let recent = |t: Option<f64>| t.is_some_and(|t| s.taken_at - t <= ACTIVE_WITHIN_SECS);
    if s.dtls.as_ref().is_some_and(|d| d.failure.is_some()) {
        return ("failed", Some(Trouble::DtlsFailure));
    }
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
pub(super) fn connection_state(ice: &str) -> &'static str {
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

/// A `description` event: the session's SDP changed (`d` empty: removed).
pub(super) fn description_event(state: &ApiState, session: &str, d: &Descriptions) {
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

/// Calls of the calls API bound to a session since the last tick: their
/// SDPs become the session's descriptions (the stream's `description`
/// event, `GET …/sdp`, the shim).
async fn attach_call_descriptions(state: &ApiState, views: &[SessionView]) {
    for v in views {
        if let Some(call) = v.snapshot.dtls.as_ref().map(|d| d.call_id.clone()) {
            let taken = state.calls.lock().ok().and_then(|mut c| c.take_descriptions(&call));
            if let Some(d) = taken {
                super::sdp::attach(state, &v.id, d).await;
            }
        }
    }
}

/// Takes one snapshot of every session per interval while anybody listens
/// and broadcasts `state` transitions (with an `error` event when the
/// transition has a reason) and `stats` reports. New subscribers get every
/// session's current state first, from [`initial_events`].
pub(super) async fn produce(state: Arc<ApiState>, interval: Duration) {
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
        let calls_waiting = state.calls.lock().is_ok_and(|c| c.answered_waiting());
        if state.events.subscribers() == 0 {
            known.clear();
            if let Ok(mut c) = state.current.lock() {
                c.clear();
            }
            if calls_waiting {
                attach_call_descriptions(&state, &state.relay.sessions().await).await;
            }
            continue;
        }
        let views = state.relay.sessions().await;
        attach_call_descriptions(&state, &views).await;
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
pub(super) struct StreamQuery {
    session: Option<String>,
}

pub(super) async fn stream(
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
pub(super) async fn stream_ws(
    State(state): State<Arc<ApiState>>,
    Query(q): Query<StreamQuery>,
    ws: WebSocketUpgrade,
) -> Response {
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
    use super::connection_state;

    #[test]
    fn connection_states_follow_ice_states() {
        for (ice, connection) in [
            ("new", "new"),
            ("checking", "connecting"),
            ("connected", "connected"),
            ("disconnected", "disconnected"),
            ("failed", "failed"),
            ("closed", "closed"),
        ] {
            assert_eq!(connection_state(ice), connection);
        }
    }
}
