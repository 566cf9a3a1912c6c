//! W3C webrtc-stats shaped objects (RTCStatsReport entries) built from
//! engine snapshots. Spec fields keep their spec meaning and units
//! (seconds, 0..1 fractions, ms timestamps); proxy-only facts carry an
//! `x-` prefix. Existence rules follow the spec: `roundTripTime` is absent
//! until a report with DLSR ≠ 0 produced a valid sample.

pub mod names;

use crate::engine::{SessionSnapshot, Side, SourceSnapshot};
use crate::stats::ClockRates;
use crate::wire::ntp::NtpTime;
use names::side_name;
use serde_json::{json, Map, Value};

/// Builds the stats objects of one session. `wall_ms(t)` maps the engine's
/// monotonic seconds to milliseconds since the Unix epoch. Kinds, clocks
/// and codecs come from the snapshot, which the session's own relay table
/// and SDP made; `_rates` (one table for every relay) is no longer read.
pub fn session_report(snap: &SessionSnapshot, _rates: &ClockRates, wall_ms: impl Fn(f64) -> f64) -> Vec<Value> {
    let now_ms = wall_ms(snap.taken_at);
    let mut out = Vec::new();
    for side in Side::BOTH {
        let s = side_name(side);
        let transport_id = format!("T-{s}");
        let leg = snap.side(side);
        let peer = match side {
            Side::Client => snap.client,
            Side::Upstream => snap.upstream,
        };
        out.push(json!({
            "id": transport_id,
            "type": "transport",
            "timestamp": now_ms,
            "packetsReceived": leg.received.total_packets(),
            "bytesReceived": leg.received.total_bytes(),
            "x-leg": s,
            "x-remoteAddress": peer.to_string(),
        }));
        if leg.stun_responses > 0 {
            // RTT of this leg from STUN binding transactions (works in SRTP
            // sessions without keys): W3C RTCIceCandidatePairStats.
            out.push(json!({
                "id": format!("CP-{s}"),
                "type": "candidate-pair",
                "timestamp": now_ms,
                "transportId": transport_id,
                "currentRoundTripTime": leg.rtt_stun.last,
                "totalRoundTripTime": leg.rtt_stun.total,
                // The path's floor: single samples also carry how long the
                // endpoint took to answer (a browser busy starting a call).
                "x-minRoundTripTime": leg.rtt_stun.min,
                "responsesReceived": leg.stun_responses,
                "x-leg": s,
            }));
        }
        // Feedback about this leg's streams comes from the other side: in an
        // SRTP session without that side's keys it is ciphertext, so the
        // counts are unknown (omitted), not zero.
        let reader = side.other().index();
        let feedback_readable = !snap.encrypted || snap.srtp_keys.as_ref().is_some_and(|k| k[reader].is_some());
        for src in &leg.sources {
            // An RTX stream is reported inside its primary (W3C rtxSsrc).
            let folded = src
                .rtx_of
                .flatten()
                .or(src.fec_of.flatten())
                .is_some_and(|p| leg.sources.iter().any(|s| s.ssrc == p));
            if !folded {
                out.extend(source_objects(
                    src,
                    side,
                    &transport_id,
                    feedback_readable,
                    now_ms,
                    &wall_ms,
                ));
            }
        }
    }
    unique_ids(out)
}

/// An RTCStatsReport is a map: one object per id. Streams that share a
/// payload type share its codec object; the first stays.
fn unique_ids(mut objects: Vec<Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    objects.retain(|o| match o.get("id").and_then(Value::as_str) {
        Some(id) => seen.insert(id.to_string()),
        None => true,
    });
    objects
}

fn source_objects(
    src: &SourceSnapshot,
    side: Side,
    transport_id: &str,
    feedback_readable: bool,
    now_ms: f64,
    wall_ms: &impl Fn(f64) -> f64,
) -> Vec<Value> {
    let s = side_name(side);
    let mut out = Vec::new();
    let Some(rtp) = &src.rtp else {
        return out;
    };
    let kind = rtp.kind.name();
    let inbound_id = format!("IT-{s}-{}", src.ssrc);
    // One codec object per payload type and transport (leg): W3C codec ids
    // name both, and streams sharing them share the object.
    let codec_id = format!("C-{s}-{}", rtp.payload_type);
    let mut codec = Map::new();
    codec.insert("id".into(), json!(codec_id));
    codec.insert("type".into(), json!("codec"));
    codec.insert("timestamp".into(), json!(now_ms));
    codec.insert("payloadType".into(), json!(rtp.payload_type));
    codec.insert("transportId".into(), json!(transport_id));
    // mimeType is required by the spec: the SDP's or the static type's; a
    // dynamic type without SDP is named by its kind only (`x-unknown` is
    // an unregistered subtype, RFC 6838 §3.4).
    let mime = rtp.mime_type.clone().unwrap_or_else(|| format!("{kind}/x-unknown"));
    codec.insert("mimeType".into(), json!(mime));
    if let Some(hz) = rtp.clock_rate {
        codec.insert("clockRate".into(), json!(hz));
    }
    if let Some(ch) = rtp.channels {
        codec.insert("channels".into(), json!(ch));
    }
    out.push(Value::Object(codec));

    let stream = |id: &str, stats_type: &str, timestamp: f64| {
        rtp_stream_stats(id, stats_type, timestamp, src.ssrc, kind, transport_id)
    };
    let mut inbound = stream(&inbound_id, "inbound-rtp", now_ms);
    // trackIdentifier is a required member of RTCInboundRtpStreamStats
    // (W3C webrtc-stats, the receiving MediaStreamTrack's id);
    // spec-strict monitors (observertc's client-monitor-js) drop an
    // inbound-rtp without it. The proxy has no track: the stream's own id
    // names it, unique in the report and stable for the stream's life.
    inbound.insert("trackIdentifier".into(), json!(inbound_id));
    inbound.insert("codecId".into(), json!(codec_id));
    // Retransmissions (RTX) are a subset of packetsReceived/bytesReceived.
    let (rtx_packets, rtx_bytes, rtx_header) = src
        .rtx
        .map_or((0, 0, 0), |r| (r.packets_received, r.payload_bytes, r.header_bytes));
    inbound.insert("packetsReceived".into(), json!(rtp.packets_received + rtx_packets));
    inbound.insert("packetsLost".into(), json!(rtp.packets_lost));
    // A browser's jitter: in-order packets only (late and retransmitted
    // ones do not move it); the RFC 3550 A.8 figure over every packet
    // beside it.
    if let Some(j) = rtp.jitter_in_order {
        inbound.insert("jitter".into(), json!(j));
    }
    if let Some(j) = rtp.jitter {
        inbound.insert("x-jitterRfc3550".into(), json!(j));
    }
    inbound.insert("bytesReceived".into(), json!(rtp.payload_bytes + rtx_bytes));
    inbound.insert("headerBytesReceived".into(), json!(rtp.header_bytes + rtx_header));
    // FEC (W3C fecPacketsReceived, fecSsrc): ULPFEC inside RED on this
    // SSRC, and a FlexFEC stream of its own.
    let fec = src.ulpfec_packets + src.fec.as_ref().map_or(0, |f| f.packets_received);
    if fec > 0 || src.fec.is_some() {
        inbound.insert("fecPacketsReceived".into(), json!(fec));
    }
    if let Some(f) = &src.fec {
        inbound.insert("fecSsrc".into(), json!(f.ssrc));
    }
    if let Some(r) = src.rtx {
        inbound.insert("rtxSsrc".into(), json!(r.ssrc));
        inbound.insert("retransmittedPacketsReceived".into(), json!(r.packets_received));
        inbound.insert("retransmittedBytesReceived".into(), json!(r.payload_bytes));
    }
    inbound.insert("lastPacketReceivedTimestamp".into(), json!(wall_ms(rtp.last_arrival)));
    insert_feedback(&mut inbound, src, s, feedback_readable);
    if src.srtcp_packets > 0 {
        // Keyless SRTCP from this sender: counted, E flag and index read
        // from the clear trailer, bodies never parsed.
        inbound.insert("x-srtcpPackets".into(), json!(src.srtcp_packets));
        inbound.insert("x-srtcpEncrypted".into(), json!(src.srtcp_encrypted));
        inbound.insert("x-srtcpIndex".into(), json!(src.srtcp_index));
    }
    inbound.insert("x-packetsDuplicated".into(), json!(rtp.duplicates));
    // Loss before the receiver repairs it (packetsLost, what arrived at the
    // proxy) and after RTX filled the gaps: the loss a NACK/RTX receiver
    // such as libwebrtc is left with.
    if src.rtx.is_some() {
        inbound.insert("x-packetsRepaired".into(), json!(rtp.packets_repaired));
        inbound.insert(
            "x-packetsLostAfterRepair".into(),
            json!((rtp.packets_lost - rtp.packets_repaired as i64).max(0)),
        );
    }
    inbound.insert("x-packetsOutOfOrder".into(), json!(rtp.out_of_order));
    insert_quality(&mut inbound, src);
    if let Some(sr) = &src.sender_report {
        let remote_id = format!("ROA-{s}-{}", src.ssrc);
        inbound.insert("remoteId".into(), json!(remote_id));
        let mut ro = stream(&remote_id, "remote-outbound-rtp", wall_ms(sr.received_at));
        ro.insert("localId".into(), json!(inbound_id));
        ro.insert(
            "remoteTimestamp".into(),
            json!(NtpTime(sr.ntp).to_unix().as_secs_f64() * 1000.0),
        );
        ro.insert("packetsSent".into(), json!(sr.packet_count));
        ro.insert("bytesSent".into(), json!(sr.octet_count));
        ro.insert("reportsSent".into(), json!(sr.reports));
        // RTT on remote-outbound-rtp exists only from XR DLRR (webrtc-stats).
        if let Some(last) = src.xr_rtt.last {
            ro.insert("roundTripTime".into(), json!(last));
            ro.insert("totalRoundTripTime".into(), json!(src.xr_rtt.total));
            ro.insert("roundTripTimeMeasurements".into(), json!(src.xr_rtt.measurements));
        }
        out.push(Value::Object(ro));
    }
    out.push(Value::Object(inbound));

    // The sender's side of the stream as the proxy sees it: what its SRs
    // say was sent (else what reached the proxy, counting what was lost on
    // the way), and the feedback its receiver sent about it.
    let outbound_id = format!("OT-{s}-{}", src.ssrc);
    let mut outbound = stream(&outbound_id, "outbound-rtp", now_ms);
    outbound.insert("codecId".into(), json!(codec_id));
    match &src.sender_report {
        Some(sr) => {
            outbound.insert("packetsSent".into(), json!(sr.packet_count));
            outbound.insert("bytesSent".into(), json!(sr.octet_count));
            outbound.insert("x-sentFrom".into(), json!("sender-report"));
        }
        None => {
            outbound.insert("packetsSent".into(), json!(rtp.packets_expected));
            outbound.insert("bytesSent".into(), json!(rtp.payload_bytes));
            outbound.insert("x-sentFrom".into(), json!("proxy-observed"));
        }
    }
    outbound.insert("headerBytesSent".into(), json!(rtp.header_bytes));
    insert_feedback(&mut outbound, src, s, feedback_readable);
    if src.remote.is_some() {
        outbound.insert("remoteId".into(), json!(format!("RIA-{s}-{}", src.ssrc)));
    } else {
        insert_remote_xr(&mut outbound, src);
    }
    out.push(Value::Object(outbound));

    if let Some(remote) = &src.remote {
        // The receiver on the other side reported on this stream: from the
        // proxy's seat this is what a sender's remote-inbound-rtp shows.
        let mut ri = stream(
            &format!("RIA-{s}-{}", src.ssrc),
            "remote-inbound-rtp",
            wall_ms(remote.received_at),
        );
        ri.insert("localId".into(), json!(outbound_id));
        ri.insert("packetsLost".into(), json!(remote.cumulative_lost));
        ri.insert("fractionLost".into(), json!(remote.fraction_lost));
        if let Some(j) = remote.jitter {
            ri.insert("jitter".into(), json!(j));
        }
        if let Some(last) = remote.rtt.last {
            ri.insert("roundTripTime".into(), json!(last));
            ri.insert("totalRoundTripTime".into(), json!(remote.rtt.total));
        }
        ri.insert("roundTripTimeMeasurements".into(), json!(remote.rtt.measurements));
        ri.insert("x-leg".into(), json!(side_name(side.other())));
        ri.insert("x-rttMethod".into(), json!("sr-rr"));
        insert_remote_xr(&mut ri, src);
        insert_remote_quality(&mut ri, src);
        out.push(Value::Object(ri));
    }
    out
}

/// Burst/gap loss (RFC 3611 §4.7.2, densities as 0..1 fractions), the
/// E-model rating of an audio stream on the leg it arrived over, and where
/// its loss happened.
fn insert_quality(m: &mut Map<String, Value>, src: &SourceSnapshot) {
    let Some(rtp) = &src.rtp else { return };
    let lm = &rtp.loss_model;
    m.insert("x-lossRateOnArrival".into(), json!(lm.loss_rate));
    m.insert("x-burstDensity".into(), json!(lm.burst_density));
    m.insert("x-gapDensity".into(), json!(lm.gap_density));
    m.insert("x-burstDuration".into(), json!(lm.burst_duration_ms / 1e3));
    m.insert("x-gapDuration".into(), json!(lm.gap_duration_ms / 1e3));
    m.insert("x-burstR".into(), json!(lm.burst_r));
    if let Some(q) = &src.quality {
        m.insert("x-rFactor".into(), json!(q.r_factor));
        m.insert("x-rFactorNarrowband".into(), json!(q.r_narrowband));
        m.insert("x-mosLq".into(), json!(q.mos_lq));
        if let Some(cq) = q.mos_cq {
            m.insert("x-mosCq".into(), json!(cq));
        }
        m.insert("x-eModel".into(), json!(q.model));
        m.insert("x-eModelCodec".into(), json!(q.codec.name()));
        m.insert("x-jitterBufferDelayEstimate".into(), json!(q.jitter_buffer_ms / 1e3));
        if let Some(d) = q.one_way_delay_ms {
            m.insert("x-oneWayDelay".into(), json!(d / 1e3));
        }
    }
    if let Some(w) = src.sender_report.as_ref().and_then(|r| r.window) {
        m.insert("x-lossNotSent".into(), json!(w.not_sent));
    }
    if let Some((client, upstream)) = leg_loss(src) {
        m.insert("x-lossClientLeg".into(), json!(client));
        m.insert("x-lossUpstreamLeg".into(), json!(upstream));
    }
}

/// The proxy's E-model rating of what the far receiver reported about an
/// audio stream (its RR), on `remote-inbound-rtp`: the stream as it reached
/// the far end, after both legs. Ppl = the RR's cumulative lost over the
/// packets the far receiver expected (its extended highest sequence number
/// less the stream's first, RFC 3550 §6.4.1 / A.3), BurstR = 1 (an RR
/// carries counts, not the loss pattern: G.107 §7.5's random case), the
/// RR's jitter, and the RTT of the leg the report came over.
fn insert_remote_quality(m: &mut Map<String, Value>, src: &SourceSnapshot) {
    let (Some(q), Some(remote)) = (&src.quality, &src.remote) else {
        return;
    };
    let Some(ppl) = remote_loss_rate(src) else {
        return;
    };
    let loss = crate::stats::burst::BurstMetrics {
        loss_rate: ppl,
        burst_r: 1.0,
        ..Default::default()
    };
    let r = crate::stats::quality::stream_quality(q.codec, &loss, remote.jitter, remote.rtt.last);
    m.insert("x-eModelLossRate".into(), json!(ppl));
    m.insert("x-rFactor".into(), json!(r.r_factor));
    m.insert("x-rFactorNarrowband".into(), json!(r.r_narrowband));
    m.insert("x-mosLq".into(), json!(r.mos_lq));
    if let Some(cq) = r.mos_cq {
        m.insert("x-mosCq".into(), json!(cq));
    }
}

/// Loss fraction the far receiver's RR implies: cumulative lost over the
/// packets it expected, `ext_highest − first + 1` with the stream's first
/// sequence number as the proxy saw it (the proxy forwards from there).
/// Compared on 32 bits, as the RR carries them; `None` when the report is
/// about nothing the proxy recognises.
fn remote_loss_rate(src: &SourceSnapshot) -> Option<f64> {
    let (rtp, remote) = (src.rtp.as_ref()?, src.remote.as_ref()?);
    let first = rtp.ext_highest_seq.checked_sub(rtp.packets_expected.checked_sub(1)?)?;
    let expected = u64::from(remote.ext_highest_seq.wrapping_sub(first as u32)) + 1;
    // A report from before the stream's start, or a wrapped difference.
    if expected > rtp.packets_expected + (1 << 15) {
        return None;
    }
    Some((f64::from(remote.cumulative_lost.max(0)) / expected as f64).clamp(0.0, 1.0))
}

/// The far receiver's own RFC 3611 VoIP Metrics / Statistics Summary about
/// the stream (on `remote-inbound-rtp`, else on `outbound-rtp`).
fn insert_remote_xr(m: &mut Map<String, Value>, src: &SourceSnapshot) {
    let Some(x) = &src.remote_xr else { return };
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    let decimals = [
        ("x-xrLossRate", x.loss_rate),
        ("x-xrDiscardRate", x.discard_rate),
        ("x-xrBurstDensity", x.burst_density),
        ("x-xrGapDensity", x.gap_density),
        ("x-xrBurstDuration", x.burst_duration),
        ("x-xrGapDuration", x.gap_duration),
        ("x-xrRoundTripDelay", x.round_trip_delay),
        ("x-xrMosLq", x.mos_lq),
        ("x-xrMosCq", x.mos_cq),
    ];
    for (k, v) in decimals {
        put(k, v.map(|v| json!(v)));
    }
    let integers = [
        ("x-xrRFactor", x.r_factor.map(u32::from)),
        ("x-xrLostPackets", x.lost_packets),
        ("x-xrDupPackets", x.dup_packets),
    ];
    for (k, v) in integers {
        put(k, v.map(|v| json!(v)));
    }
}

/// Where a stream's loss happened: packets lost before the proxy (what it
/// found missing on arrival, RFC 3550 A.3 cumulative) and after it (the
/// far receiver's RR cumulative lost minus what the proxy already saw
/// missing, floored at 0: late packets the proxy counted may still be lost
/// on the second leg). Sequence numbers the sender's SRs say it never
/// sent (a forwarder passing on earlier loss) are neither leg's.
/// `(client leg, upstream leg)`; `None` until the far receiver reported.
pub fn leg_loss(src: &SourceSnapshot) -> Option<(i64, i64)> {
    let rtp = src.rtp.as_ref()?;
    let remote = src.remote.as_ref()?;
    let before = src.lost_on_arrival_leg();
    // The far receiver counts every gap, the unsent ones included.
    let after = (i64::from(remote.cumulative_lost) - rtp.packets_lost.max(0)).max(0);
    Some(match src.side {
        Side::Client => (before, after),
        Side::Upstream => (after, before),
    })
}

/// The members of every RTP stream's stats object (W3C RTCRtpStreamStats).
fn rtp_stream_stats(
    id: &str,
    stats_type: &str,
    timestamp: f64,
    ssrc: u32,
    kind: &str,
    transport_id: &str,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("type".into(), json!(stats_type));
    m.insert("timestamp".into(), json!(timestamp));
    m.insert("ssrc".into(), json!(ssrc));
    m.insert("kind".into(), json!(kind));
    m.insert("transportId".into(), json!(transport_id));
    m
}

/// The feedback the stream's receiver sent about it (when the proxy can
/// read it), and the proxy's own members: the leg `s` and whether the
/// proxy generates its reports.
fn insert_feedback(m: &mut Map<String, Value>, src: &SourceSnapshot, s: &str, readable: bool) {
    if readable {
        m.insert("nackCount".into(), json!(src.feedback.nack));
        m.insert("pliCount".into(), json!(src.feedback.pli));
        m.insert("firCount".into(), json!(src.feedback.fir));
    }
    m.insert("x-leg".into(), json!(s));
    m.insert("x-generatingReports".into(), json!(src.generating));
}
