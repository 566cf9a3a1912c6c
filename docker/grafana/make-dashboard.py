#!/usr/bin/env python3
"""Writes docker/grafana/dashboards/rtp-middlebox.json (the Grafana dashboard
docker/compose.yaml provisions).

    python3 docker/grafana/make-dashboard.py           # rewrite the JSON
    python3 docker/grafana/make-dashboard.py --check   # exit 1 if it differs

Edit the panels here, not in the JSON: scripts/check-deploy.sh fails when the
JSON is not what this script writes, and checks every rtpmb_ metric and label
the queries use against docker/metric-names.txt.
"""
import json
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards", "rtp-middlebox.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'
RI = "$__rate_interval"
panels = []
pid = [0]
y = [0]
x = [0]

def nid():
    pid[0] += 1
    return pid[0]

def row(title, collapsed=False):
    if x[0] != 0:
        y[0] += 8; x[0] = 0
    panels.append({"type": "row", "title": title, "id": nid(), "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y[0]}, "panels": []})
    y[0] += 1

def panel(title, targets, unit="short", desc="", w=12, h=8, kind="timeseries", stack=False, extra=None):
    if x[0] + w > 24:
        y[0] += h; x[0] = 0
    p = {
        "type": kind, "title": title, "id": nid(), "datasource": DS, "description": desc,
        "gridPos": {"h": h, "w": w, "x": x[0], "y": y[0]},
        "targets": [{"datasource": DS, "refId": chr(ord("A") + i), "expr": e, "legendFormat": l,
                     "range": True, "instant": False}
                    for i, (e, l) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit, "custom": {}}, "overrides": []},
        "options": {},
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
            "spanNulls": False, "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
        p["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                                   "calcs": ["mean", "max", "lastNotNull"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}
    elif kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto", "orientation": "auto"}
    if extra:
        p.update(extra)
    panels.append(p)
    x[0] += w
    if x[0] >= 24:
        x[0] = 0; y[0] += h

def q(expr):
    return expr.replace("SEL", SEL).replace("RI", RI)

def rate_by(metric, by, agg="sum"):
    """The per-second rate of counter `metric` on the selected relays, `agg` by labels `by`."""
    return q(f"{agg} by ({by}) (rate({metric}{{SEL}}[RI]))")

def total_rate(metric):
    """The per-second rate of counter `metric`, summed over the selected relays."""
    return q(f"sum(rate({metric}{{SEL}}[RI]))")

row("Traffic")
panel("Packets/s by direction and kind",
      [(rate_by("rtpmb_packets_total", "direction, kind"), "{{direction}} {{kind}}")],
      unit="pps", desc="Datagrams the relay received, by side (from_client, from_upstream) and classification (RTP, RTCP, STUN, DTLS, other).")
panel("Bit rate by direction and kind",
      [(q('8 * sum by (direction, kind) (rate(rtpmb_bytes_total{SEL}[RI]))'), "{{direction}} {{kind}}")],
      unit="bps", desc="UDP payload bytes received, as bits per second.")
panel("Dropped packets/s by reason",
      [(rate_by("rtpmb_dropped_packets_total", "reason"), "{{reason}}")],
      unit="pps", stack=True, desc="Datagrams the relay did not forward, by reason.")
panel("Socket errors/s by reason",
      [(rate_by("rtpmb_send_errors_total", "reason"), "send {{reason}}"),
       (rate_by("rtpmb_receive_errors_total", "reason"), "receive {{reason}}"),
       (rate_by("rtpmb_kernel_udp_errors_total", "counter", agg="max"), "kernel {{counter}}")],
      unit="pps", desc="Datagrams the kernel refused to send, receive errors (refused: ICMP unreachable from the upstream), and the machine's kernel UDP drops (buffer overflow before any read; no port: e.g. strangers writing to a session's upstream socket).")

row("Sessions")
panel("Sessions active", [(q('sum(rtpmb_sessions_active{SEL})'), "active")], w=6, kind="stat",
      desc="Client 5-tuples with live state on the selected relays.")
panel("Sessions active by instance",
      [(q('sum by (instance) (rtpmb_sessions_active{SEL})'), "{{instance}}")], w=9,
      desc="Sessions are per node: each relay only knows the clients that reach it.")
panel("Sessions created / expired / refused per second",
      [(total_rate("rtpmb_sessions_created_total"), "created"),
       (total_rate("rtpmb_sessions_expired_total"), "expired"),
       (total_rate("rtpmb_sessions_refused_total"), "refused"),
       (total_rate("rtpmb_sessions_rate_limited_total"), "rate-limited (flood)"),
       (total_rate("rtpmb_sessions_unanswered_total"), "never answered")], w=9, unit="ops",
      desc="Refused: new client addresses turned away (session limit, per-prefix rate, no free upstream port). Never answered: closed early because the upstream sent nothing.")
panel("Hard caps hit per second",
      [(rate_by("rtpmb_caps_hit_total", "cap"), "{{cap}}")], w=6, unit="ops",
      desc="A bounded table refused or evicted something: which bound a flood presses on.")
panel("NAT rebinding per second",
      [(rate_by("rtpmb_nat_rebinding_total", "outcome"), "{{outcome}}")], w=6, unit="ops",
      desc="Rebound: a client's new address passed an ICE check with the upstream and the session moved. Rejected: the upstream refused or ignored the check (a hijack attempt or a stale path).")
panel("DTLS handshakes per second",
      [(rate_by("rtpmb_dtls_handshakes_total", "outcome"), "{{outcome}}")], w=6, unit="ops",
      desc="DTLS termination (relay dtls = \"terminate\"): per-leg handshakes that completed, and that failed (fingerprint mismatch, timeout, protocol error; the call has no media).")

row("RTCP")
panel("RTCP reports/s by mode",
      [(rate_by("rtpmb_rtcp_reports_generated_total", "mode"), "generated {{mode}}"),
       (rate_by("rtpmb_rtcp_reports_consumed_total", "mode"), "consumed {{mode}}"),
       (rate_by("rtpmb_rtcp_reports_forwarded_total", "mode"), "forwarded {{mode}}")],
      unit="ops", desc="Reports the relay generated (terminate/auto), consumed (did not pass on) and forwarded, by the relay's RTCP mode.")
panel("RTCP suppression detected",
      [(q('sum by (instance) (increase(rtpmb_rtcp_suppression_detected_total{SEL}[RI]))'), "{{instance}}")],
      w=6, unit="short", desc="Streams whose receiver stopped reporting (auto mode takes over generating RRs).",
      extra={})
panel("SRTCP auth failures / unreadable RTCP per second",
      [(total_rate("rtpmb_srtcp_auth_failures_total"), "SRTCP auth failures"),
       (total_rate("rtpmb_rtcp_unreadable_total"), "forwarded unread (SRTCP without keys)")],
      w=6, unit="pps", desc="SRTCP compounds failing authentication with provisioned keys (dropped), and RTCP the relay could not read (encrypted, no keys) and forwarded as is.")

row("Stream quality")
# The quantiles a histogram panel shows: the usual spread, or for quality
# scores (bad at the low end) the worst streams.
SPREAD = [0.5, 0.95, 0.99]
WORST = [0.01, 0.05, 0.5]
for title, metric, by, qs, unit, desc in [
    ("RTT by leg (p50 / p95 / p99)", "rtpmb_stream_rtt_seconds", "leg", SPREAD, "s",
     "Round-trip time of each leg: client (relay <-> client) and upstream (relay <-> SFU)."),
    ("RTT by method (p95)", "rtpmb_stream_rtt_seconds", "method", [0.95], "s",
     "Where RTT samples come from: SR/RR (LSR/DLSR), XR DLRR, or STUN transactions."),
    ("Interarrival jitter by media kind (p50 / p95 / p99)", "rtpmb_stream_jitter_seconds", "kind", SPREAD, "s",
     "RFC 3550 interarrival jitter of the streams, in seconds."),
    ("Fraction lost by media kind (p50 / p95 / p99)", "rtpmb_stream_fraction_lost", "kind", SPREAD, "percentunit",
     "Fraction of packets lost per report interval (0-1)."),
    ("MOS by leg (p1 / p5 / p50: the worst streams)", "rtpmb_stream_mos", "leg", WORST, "short",
     "E-model (G.107) MOS of the audio streams on the leg they arrived over: conversational (with the leg's RTT) once known, else listening quality."),
    ("R-factor by leg (p1 / p5 / p50: the worst streams)", "rtpmb_stream_r_factor", "leg", WORST, "short",
     "E-model (G.107) transmission rating R of the audio streams, narrowband scale, by the leg they arrived over."),
]:
    panel(title,
          [(q(f'histogram_quantile({v}, sum by (le, {by}) (rate({metric}_bucket{{SEL}}[RI])))'),
            f"p{int(v*100)} {{{{{by}}}}}") for v in qs],
          unit=unit, desc=desc + " Quantiles from the histogram buckets.")

panel("RTT samples/s",
      [(rate_by("rtpmb_rtt_samples_total", "instance"), "{{instance}}")],
      unit="ops", desc="Valid RTT samples (report blocks, XR DLRR, STUN). Zero means the RTT panels have nothing to show.")

row("Exporters")
panel("Stats stream: events dropped/s and subscribers",
      [(total_rate("rtpmb_stats_events_dropped_total"), "events dropped/s"),
       (q('sum(rtpmb_stats_stream_subscribers{SEL})'), "subscribers")],
      desc="Events dropped because a /v1/stream subscriber read too slowly; subscribers connected.")
panel("Metrics publication lag",
      [(q('max by (instance) (rtpmb_publish_lag_seconds{SEL})'), "{{instance}}")],
      unit="s", desc="How late the last metrics publication ran against its schedule.")
panel("OTLP exports/s by signal and result",
      [(rate_by("rtpmb_otlp_exports_total", "signal, result"), "{{signal}} {{result}}")],
      unit="ops", desc="Export requests to [collector] otlp_endpoint; errors mean the collector is unreachable or refused them.")
panel("OTLP errors, retries and dropped batches per second",
      [(q('sum(rate(rtpmb_otlp_exports_total{SEL,result="error"}[RI]))'), "export errors"),
       (total_rate("rtpmb_otlp_retries_total"), "retries"),
       (total_rate("rtpmb_otlp_dropped_total"), "batches dropped")],
      unit="ops", desc="Dropped: batches given up (exporter queue full or retries exhausted): data lost to the collector.")

row("Per-session (needs [metrics] per_session = true)")
panel("Top 10 sessions by RTT",
      [(q('topk(10, max by (session, leg) (rtpmb_session_rtt_seconds{SEL}))'), "{{session}} {{leg}}")], w=8, unit="s")
panel("Top 10 sessions by jitter",
      [(q('topk(10, max by (session, direction) (rtpmb_session_jitter_seconds{SEL}))'), "{{session}} {{direction}}")], w=8, unit="s")
panel("Top 10 sessions by fraction lost",
      [(q('topk(10, max by (session, direction) (rtpmb_session_fraction_lost{SEL}))'), "{{session}} {{direction}}")], w=8, unit="percentunit")

dash = {
    "uid": "rtp-middlebox",
    "title": "rtp-middlebox",
    "description": "RTP/RTCP relay beside an SFU: traffic, drops, sessions, RTCP termination, stream quality, exporters.",
    "tags": ["rtp", "webrtc", "rtp-middlebox"],
    "timezone": "browser",
    "editable": True,
    "graphTooltip": 1,
    "refresh": "10s",
    "schemaVersion": 39,
    "version": 1,
    "time": {"from": "now-30m", "to": "now"},
    "timepicker": {},
    "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                              "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                              "name": "Annotations & Alerts", "type": "dashboard"}]},
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {"text": "Prometheus", "value": "prometheus"}, "hide": 0, "refresh": 1,
         "options": [], "regex": "", "includeAll": False, "multi": False},
        {"name": "instance", "label": "Relay", "type": "query", "datasource": DS,
         "definition": "label_values(rtpmb_sessions_active, instance)",
         "query": {"query": "label_values(rtpmb_sessions_active, instance)", "refId": "instance"},
         "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
         "current": {"text": ["All"], "value": ["$__all"]}, "options": [], "regex": "", "sort": 1, "hide": 0},
    ]},
    "links": [],
    "panels": panels,
}
text = json.dumps(dash, indent=2) + "\n"
if "--check" in sys.argv[1:]:
    with open(OUT) as f:
        same = f.read() == text
    print(f"{os.path.relpath(OUT)} is {'up to date' if same else 'NOT what make-dashboard.py writes'}")
    sys.exit(0 if same else 1)
with open(OUT, "w") as f:
    f.write(text)
print(f"wrote {os.path.relpath(OUT)}: {len(panels)} panels")
