//! TOML configuration: defaults, validation and CLI overrides.
//! `config/default.toml` is embedded and documents every key.

use crate::stats::ClockRates;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The embedded default configuration.
pub(crate) const DEFAULT_TOML: &str = include_str!("../config/default.toml");

pub use crate::engine::RtcpMode;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub relay: Vec<RelayConfig>,
    pub api: ApiConfig,
    pub(crate) limits: Limits,
    pub(crate) rtcp: RtcpSettings,
    pub(crate) metrics: MetricsConfig,
    pub collector: CollectorConfig,
    /// Static SDES keys for sessions from known client addresses.
    pub(crate) srtp: Vec<SrtpConfig>,
    /// The proxy's DTLS identity and limits (relays with `dtls = "terminate"`).
    pub dtls: DtlsConfig,
}

/// `dtls` of a `[[relay]]`: what the relay does with DTLS-SRTP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DtlsMode {
    /// DTLS passes through untouched (the proxy holds no keys).
    #[default]
    Pass,
    /// Sessions bound to a call of the calls API terminate DTLS-SRTP on
    /// both legs; others pass through.
    Terminate,
}

/// `[dtls]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DtlsConfig {
    /// PEM certificate and private key (ECDSA); both or neither. Neither:
    /// a fresh self-signed P-256 certificate at every start.
    pub certificate: Option<std::path::PathBuf>,
    pub private_key: Option<std::path::PathBuf>,
    /// A leg whose handshake is not done by then fails (`dtls-failure`).
    pub handshake_timeout_secs: u64,
    /// Legs handshaking at once, over all workers; more calls are refused.
    pub max_handshakes: usize,
    /// Calls set up through the calls API but never seen on the wire are
    /// forgotten after this.
    pub unbound_call_ttl_secs: u64,
}

impl Default for DtlsConfig {
    fn default() -> Self {
        DtlsConfig {
            certificate: None,
            private_key: None,
            handshake_timeout_secs: 10,
            max_handshakes: 1024,
            unbound_call_ttl_secs: 60,
        }
    }
}

/// A secret string from the config: never printed by `Debug` or serialised.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// `[[srtp]]`: SDES keys (RFC 4568 `inline:` key params) for sessions opened
/// by a client address, for static deployments (SIP trunks). Sessions of
/// dynamic clients get theirs through `POST /v1/sessions/{id}/srtp`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SrtpConfig {
    /// `IP` (any port) or `IP:PORT` of the client.
    pub(crate) client: String,
    /// AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AEAD_AES_128_GCM or AEAD_AES_256_GCM.
    pub(crate) suite: String,
    /// Key params protecting what the client sends (`inline:<base64>`).
    #[serde(default)]
    pub(crate) client_key: Option<Secret>,
    /// Key params protecting what the upstream sends.
    #[serde(default)]
    pub(crate) upstream_key: Option<Secret>,
}

impl SrtpConfig {
    /// The parsed keys (errors name the problem, never the key material).
    pub(crate) fn keys(&self) -> Result<crate::engine::SessionKeys, (String, String)> {
        let suite: crate::srtp::CryptoSuite = self
            .suite
            .parse()
            .map_err(|e: crate::srtp::KeyError| ("suite".to_string(), e.to_string()))?;
        let parse = |name: &str, k: &Option<Secret>| {
            k.as_ref()
                .map(|k| crate::srtp::SrtpKeys::from_key_params(suite, k.expose()))
                .transpose()
                .map_err(|e| (name.to_string(), e.to_string()))
        };
        Ok(crate::engine::SessionKeys {
            client: parse("client_key", &self.client_key)?,
            upstream: parse("upstream_key", &self.upstream_key)?,
        })
    }

    /// Which clients get these keys: `IP:PORT` or a bare IP.
    pub(crate) fn client_match(&self) -> Option<crate::engine::ClientMatch> {
        use crate::engine::ClientMatch;
        match self.client.parse::<SocketAddr>() {
            Ok(a) => Some(ClientMatch::Addr(a)),
            Err(_) => self.client.parse::<std::net::IpAddr>().ok().map(ClientMatch::Ip),
        }
    }
}

/// `[metrics]`: the Prometheus endpoint (`GET /metrics` on the API).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MetricsConfig {
    /// Serve `GET /metrics` and run the publisher (and OTLP push).
    pub(crate) enabled: bool,
    /// How often counters are read from the workers and stream
    /// distributions sampled (one histogram sample per stream), seconds.
    pub(crate) interval_secs: u64,
    /// Per-session gauges (`session` label) for finding the bad call.
    pub(crate) per_session: bool,
    /// Hard cap on sessions with per-session series (worst by loss first).
    pub(crate) max_session_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            interval_secs: 5,
            per_session: false,
            max_session_series: 500,
        }
    }
}

/// `[collector]`: OTLP/HTTP push to an OpenTelemetry collector.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Base URL of the collector's OTLP/HTTP receiver, e.g.
    /// `http://127.0.0.1:4318` (`/v1/metrics` and `/v1/logs` are appended).
    /// Unset: no push.
    pub(crate) otlp_endpoint: Option<String>,
    /// Push interval, seconds (default 10).
    pub(crate) interval_secs: Option<u64>,
    /// Per-request timeout, ms (default 5000).
    pub(crate) timeout_ms: Option<u64>,
    /// Attempts after a failure before a batch is given up (default 5).
    pub(crate) max_retries: Option<u32>,
    /// OTLP resource attributes, e.g. `"service.instance.id" = "sfu-1"`.
    pub resource: BTreeMap<String, String>,
}

/// Report generation (`auto` and `terminate` relays).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtcpSettings {
    /// Minimum report interval on a leg carrying video, ms.
    pub(crate) min_interval_video_ms: u64,
    /// Minimum report interval on an audio-only leg, ms.
    pub(crate) min_interval_audio_ms: u64,
    /// `auto`: report intervals without a report block about a stream
    /// before the proxy generates reports for it.
    pub(crate) suppression_intervals: u32,
    /// Add XR RRTR to generated reports (RTT of terminated legs via DLRR).
    pub(crate) xr_rrtr: bool,
    /// Add XR Statistics Summary and VoIP Metrics (RFC 3611 §4.6–4.7)
    /// about audio streams to generated reports.
    pub(crate) xr_voip_metrics: bool,
}

impl Default for RtcpSettings {
    fn default() -> Self {
        RtcpSettings {
            min_interval_video_ms: 1000,
            min_interval_audio_ms: 5000,
            suppression_intervals: 3,
            xr_rrtr: true,
            xr_voip_metrics: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    #[serde(default)]
    pub rtcp: RtcpMode,
    #[serde(default = "default_upstream_bind")]
    pub(crate) upstream_bind: std::net::IpAddr,
    #[serde(default = "default_upstream_ports")]
    pub(crate) upstream_ports: String,
    /// Separate RTCP sockets for non-mux RTP/RTCP pairs.
    pub listen_rtcp: Option<SocketAddr>,
    pub upstream_rtcp: Option<SocketAddr>,
    /// Without a `[relay.clock_rates]` table a relay takes the default
    /// one (`config/default.toml`), so its dynamic payload types keep
    /// their clocks; a table given replaces it whole.
    #[serde(default = "default_clock_rates")]
    pub(crate) clock_rates: BTreeMap<String, u32>,
    /// `pass` (default) or `terminate` (back-to-back DTLS-SRTP for calls
    /// set up through `POST /v1/calls/{id}/offer|answer`).
    #[serde(default)]
    pub dtls: DtlsMode,
    /// The address clients reach this relay at: the calls API writes it as
    /// the only candidate into SDP sent to clients (no NAT mapping needed
    /// on the upstream).
    #[serde(default)]
    pub announce: Option<SocketAddr>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// HTTP API address; loopback by default (the API exposes call data).
    pub listen: SocketAddr,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub(crate) token: Option<String>,
    /// Interval of `stats` events on `GET /v1/stream`, ms.
    pub(crate) stream_interval_ms: u64,
    /// Origins allowed to read the API from a web page (CORS); `"*"` for
    /// any. Empty: no CORS headers (same-origin only).
    pub(crate) cors_origins: Vec<String>,
    /// Host names (`name` or `name:port`) the API answers to besides its
    /// listen address and `localhost`: a request whose `Host` names anything
    /// else is refused (403), so a DNS-rebound name gives a web page no
    /// access.
    pub allowed_hosts: Vec<String>,
    /// Lets the API listen on a non-loopback address without a token (a
    /// private network the operator controls); otherwise that refuses to
    /// start.
    pub allow_tokenless: bool,
    /// A session whose binding requests stay unanswered this long is
    /// `failed` with reason `consent-lost` on the stream (RFC 7675 §5.1: 30 s).
    pub(crate) consent_timeout_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9470)),
            token: None,
            stream_interval_ms: 1000,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            allow_tokenless: false,
            consent_timeout_secs: 30,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Limits {
    /// Live sessions at most; new client addresses beyond are refused.
    pub(crate) max_sessions: usize,
    /// A session without datagrams this long is closed.
    pub(crate) idle_timeout_secs: u64,
    /// SSRCs tracked per side of one session (attacker-controlled, so capped).
    pub(crate) max_sources_per_side: usize,
    /// New sessions a second per source prefix (IPv4 /24, IPv6 /64); 0: no limit.
    pub(crate) new_sessions_per_prefix_per_sec: u32,
    /// Close sessions the upstream never answered within this many seconds; 0: never.
    pub(crate) unanswered_timeout_secs: u64,
    /// Datagrams a second accepted from each side of one session; 0: no limit.
    pub(crate) max_packets_per_session_per_sec: u32,
    /// When a session may follow its client to a new address: `stun` (after
    /// the upstream accepts an ICE check from it) or `never`.
    pub(crate) nat_rebinding: crate::engine::NatRebinding,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 100_000,
            idle_timeout_secs: 30,
            max_sources_per_side: 64,
            // Room for a burst of clients behind one NAT (a /24 of a CGNAT
            // or an office) joining at once, far below what a spoofed flood
            // sends.
            new_sessions_per_prefix_per_sec: 200,
            unanswered_timeout_secs: 20,
            // An SFU's downstream bundle toward one client in a large room:
            // 25 videos at ~2.5 Mbit/s in 1 200-byte packets (~6 500/s),
            // their audio (~1 250/s), screen share and RTX bursts: 20 000/s
            // (~190 Mbit/s) leaves room and still stops a flood.
            max_packets_per_session_per_sec: 20_000,
            nat_rebinding: crate::engine::NatRebinding::default(),
        }
    }
}

/// The common WebRTC dynamic payload types (what browsers offer first):
/// the table `config/default.toml` shows.
fn default_clock_rates() -> BTreeMap<String, u32> {
    [(111, 48000), (96, 90000), (97, 90000), (98, 90000), (102, 90000)]
        .into_iter()
        .map(|(pt, hz): (u8, u32)| (pt.to_string(), hz))
        .collect()
}

fn default_upstream_bind() -> std::net::IpAddr {
    std::net::IpAddr::from([0, 0, 0, 0])
}
fn default_upstream_ports() -> String {
    "40000-49999".into()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Parse(String),
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// A TOML error as one log-friendly line naming the key when the error
/// points at one: `relay.upstream (line 3, column 12): invalid socket address syntax`.
fn one_line(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else { return message };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or("");
    let key = line_text.split_once('=').map(|(k, _)| k.trim().trim_matches('"'));
    // The table the line is in: the last `[name]` / `[[name]]` header above.
    let table = text
        .lines()
        .take(line - 1)
        .filter_map(|l| l.trim().strip_prefix('['))
        .last()
        .map(|h| h.trim_start_matches('[').split(']').next().unwrap_or("").trim());
    match (table, key) {
        (Some(t), Some(k)) if !k.is_empty() => format!("{t}.{k} (line {line}, column {column}): {message}"),
        (None, Some(k)) if !k.is_empty() => format!("{k} (line {line}, column {column}): {message}"),
        _ => format!("line {line}, column {column}: {message}"),
    }
}

impl Config {
    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(one_line(text, &e)))?;
        config.validate()?;
        Ok(config)
    }

    pub fn embedded_default() -> Self {
        // The embedded file is checked by a unit test; failing here is a build defect.
        Self::from_toml(DEFAULT_TOML).unwrap_or_else(|e| panic!("embedded config/default.toml is invalid: {e}"))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, relay) in self.relay.iter().enumerate() {
            let key = |k: &str| format!("relay[{i}].{k}");
            parse_port_range(&relay.upstream_ports).map_err(|p| invalid(key("upstream_ports"), p))?;
            if relay.listen_rtcp.is_some() != relay.upstream_rtcp.is_some() {
                return Err(invalid(
                    key("listen_rtcp"),
                    "listen_rtcp and upstream_rtcp must be set together",
                ));
            }
            relay
                .clock_rate_table()
                .map_err(|(k, p)| invalid(format!("{}.{k}", key("clock_rates")), p))?;
            if relay.dtls == DtlsMode::Terminate && relay.listen_rtcp.is_some() {
                return Err(invalid(
                    key("dtls"),
                    "DTLS termination needs rtcp-mux (WebRTC): remove listen_rtcp/upstream_rtcp or set dtls = \"pass\"",
                ));
            }
        }
        if self.dtls.certificate.is_some() != self.dtls.private_key.is_some() {
            return Err(invalid(
                "dtls.certificate",
                "dtls.certificate and dtls.private_key must be set together",
            ));
        }
        if self.dtls.handshake_timeout_secs == 0 || self.dtls.max_handshakes == 0 {
            return Err(invalid(
                "dtls",
                "handshake_timeout_secs and max_handshakes must be positive",
            ));
        }
        for (key, ms) in [
            ("rtcp.min_interval_video_ms", self.rtcp.min_interval_video_ms),
            ("rtcp.min_interval_audio_ms", self.rtcp.min_interval_audio_ms),
        ] {
            if !(100..=60_000).contains(&ms) {
                return Err(invalid(key, format!("{ms} ms is outside 100-60000")));
            }
        }
        if self.rtcp.suppression_intervals == 0 {
            return Err(invalid("rtcp.suppression_intervals", "must be at least 1"));
        }
        if !(100..=60_000).contains(&self.api.stream_interval_ms) {
            return Err(invalid("api.stream_interval_ms", "must be within 100-60000"));
        }
        if !(1..=300).contains(&self.api.consent_timeout_secs) {
            return Err(invalid("api.consent_timeout_secs", "must be within 1-300"));
        }
        if self.api.token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(invalid("api.token", "must be at least 16 characters"));
        }
        if !self.api.listen.ip().is_loopback() && self.api.token.is_none() && !self.api.allow_tokenless {
            return Err(invalid(
                "api.listen",
                format!(
                    "{} is not a loopback address and no [api] token is set: the API exposes call data and \
                     takes SRTP keys; set [api] token (at least 16 characters), listen on 127.0.0.1, or, on a \
                     private network only, set [api] allow_tokenless = true (--api-allow-tokenless)",
                    self.api.listen
                ),
            ));
        }
        for h in &self.api.allowed_hosts {
            if h.is_empty() || h.contains(['/', ' ', '@']) {
                return Err(invalid(
                    "api.allowed_hosts",
                    "entries are host names, optionally with :port",
                ));
            }
        }
        if self.limits.max_sessions == 0 {
            return Err(invalid("limits.max_sessions", "must be at least 1"));
        }
        if !(1..=3600).contains(&self.metrics.interval_secs) {
            return Err(invalid("metrics.interval_secs", "must be within 1-3600"));
        }
        if self.metrics.max_session_series == 0 || self.metrics.max_session_series > 100_000 {
            return Err(invalid("metrics.max_session_series", "must be within 1-100000"));
        }
        if let Some(url) = &self.collector.otlp_endpoint {
            if !url.starts_with("http://") {
                return Err(invalid(
                    "collector.otlp_endpoint",
                    format!("{url:?} must be an http:// URL (run a collector sidecar for TLS)"),
                ));
            }
        }
        if self.collector.interval_secs.is_some_and(|s| !(1..=3600).contains(&s)) {
            return Err(invalid("collector.interval_secs", "must be within 1-3600"));
        }
        if self
            .collector
            .timeout_ms
            .is_some_and(|ms| !(100..=60_000).contains(&ms))
        {
            return Err(invalid("collector.timeout_ms", "must be within 100-60000"));
        }
        for (i, e) in self.srtp.iter().enumerate() {
            if e.client.parse::<SocketAddr>().is_err() && e.client.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(format!("srtp[{i}].client"), "must be an IP address or IP:PORT"));
            }
            if e.client_key.is_none() && e.upstream_key.is_none() {
                return Err(invalid(format!("srtp[{i}]"), "needs client_key, upstream_key or both"));
            }
            e.keys().map_err(|(k, p)| invalid(format!("srtp[{i}].{k}"), p))?;
        }
        if self.limits.max_sources_per_side == 0 {
            return Err(invalid("limits.max_sources_per_side", "must be at least 1"));
        }
        Ok(())
    }

    pub(crate) fn report_policy(&self) -> crate::engine::ReportPolicy {
        crate::engine::ReportPolicy {
            min_interval_video: Duration::from_millis(self.rtcp.min_interval_video_ms),
            min_interval_audio: Duration::from_millis(self.rtcp.min_interval_audio_ms),
            suppression_intervals: self.rtcp.suppression_intervals,
            xr_rrtr: self.rtcp.xr_rrtr,
            xr_voip_metrics: self.rtcp.xr_voip_metrics,
        }
    }

    /// Whether any relay terminates DTLS.
    pub fn terminates_dtls(&self) -> bool {
        self.relay.iter().any(|r| r.dtls == DtlsMode::Terminate)
    }

    /// The proxy's DTLS identity when some relay terminates DTLS: loaded
    /// from `[dtls]` files or generated.
    pub fn dtls_identity(&self) -> Result<Option<crate::dtls::DtlsIdentity>, crate::dtls::IdentityError> {
        if !self.terminates_dtls() {
            return Ok(None);
        }
        match (&self.dtls.certificate, &self.dtls.private_key) {
            (Some(c), Some(k)) => crate::dtls::DtlsIdentity::load(c, k).map(Some),
            _ => crate::dtls::DtlsIdentity::generate().map(Some),
        }
    }

    /// The engine's DTLS settings for one of `workers` workers (the
    /// handshake budget is split between them); `epoch` is replaced by the
    /// worker's clock origin.
    pub fn dtls_settings(
        &self,
        identity: &std::sync::Arc<crate::dtls::DtlsIdentity>,
        workers: usize,
        epoch: std::time::Instant,
    ) -> crate::engine::dtls::DtlsSettings {
        let mut s = crate::engine::dtls::DtlsSettings::new(identity.clone(), epoch);
        s.handshake_timeout = Duration::from_secs(self.dtls.handshake_timeout_secs);
        s.max_handshakes = self.dtls.max_handshakes.div_ceil(workers.max(1));
        s.unbound_call_ttl = Duration::from_secs(self.dtls.unbound_call_ttl_secs);
        s
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.limits.idle_timeout_secs > 0).then(|| Duration::from_secs(self.limits.idle_timeout_secs))
    }

    /// The engine's settings for one of `workers` workers: the one place
    /// config becomes engine settings (start and reload alike). Budgets
    /// that SO_REUSEPORT spreads over the workers (sessions, the per-prefix
    /// rate: the kernel hashes flows by 4-tuple) are split between them.
    pub fn engine_config(&self, workers: usize, seed: u64) -> crate::engine::EngineConfig {
        let n = workers.max(1);
        crate::engine::EngineConfig {
            relays: self
                .relay
                .iter()
                .map(|r| crate::engine::RelaySettings {
                    mode: r.rtcp,
                    upstream: Some(r.upstream),
                    upstream_rtcp: r.upstream_rtcp,
                    non_mux: r.listen_rtcp.is_some(),
                    clock_rates: r.clock_rates(),
                    dtls_terminate: r.dtls == DtlsMode::Terminate,
                })
                .collect(),
            max_sessions: self.limits.max_sessions.div_ceil(n),
            max_sources_per_side: self.limits.max_sources_per_side,
            idle_timeout: self.idle_timeout(),
            report_policy: self.report_policy(),
            seed,
            new_sessions_per_prefix_per_sec: self.limits.new_sessions_per_prefix_per_sec.div_ceil(n as u32),
            unanswered_timeout: (self.limits.unanswered_timeout_secs > 0)
                .then(|| Duration::from_secs(self.limits.unanswered_timeout_secs)),
            max_packets_per_side_per_sec: self.limits.max_packets_per_session_per_sec,
            nat_rebinding: self.limits.nat_rebinding,
            // Validated at load: entries whose keys do not parse are skipped.
            static_keys: self
                .srtp
                .iter()
                .filter_map(|e| {
                    Some(crate::engine::StaticKeys {
                        client: e.client_match()?,
                        keys: e.keys().ok()?,
                    })
                })
                .collect(),
            ..crate::engine::EngineConfig::default()
        }
    }
}

impl RelayConfig {
    /// The relay's payload type → clock rate map, keys validated as 0–127.
    pub fn clock_rate_table(&self) -> Result<BTreeMap<u8, u32>, (String, String)> {
        let mut out = BTreeMap::new();
        for (k, &hz) in &self.clock_rates {
            let pt: u8 = k
                .parse()
                .ok()
                .filter(|pt| *pt <= 127)
                .ok_or_else(|| (k.clone(), "payload type must be a number 0-127".to_string()))?;
            if hz == 0 {
                return Err((k.clone(), "clock rate must be positive".into()));
            }
            out.insert(pt, hz);
        }
        Ok(out)
    }

    pub fn clock_rates(&self) -> ClockRates {
        ClockRates::new(&self.clock_rate_table().unwrap_or_default())
    }
}

/// Parses `"LOW-HIGH"` into an inclusive port range.
/// Sessions a port range holds: one port each, or an even/odd pair each
/// when `pairs` (a non-mux relay: RTP on the even port, RTCP on the next,
/// as the allocator in `runtime/socket.rs` takes them).
pub(crate) fn range_sessions((low, high): (u16, u16), pairs: bool) -> usize {
    let (low, high) = (u32::from(low), u32::from(high));
    if !pairs {
        return (high + 1).saturating_sub(low) as usize;
    }
    // Even ports p with low <= p and p + 1 <= high.
    let first_even = low.next_multiple_of(2);
    match first_even < high {
        true => ((high - 1 - first_even) / 2 + 1) as usize,
        false => 0,
    }
}

pub(crate) fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("expected LOW-HIGH, got {s:?}"))?;
    let lo: u16 = lo.trim().parse().map_err(|_| format!("{lo:?} is not a port"))?;
    let hi: u16 = hi.trim().parse().map_err(|_| format!("{hi:?} is not a port"))?;
    if lo == 0 || lo > hi {
        return Err(format!("range {lo}-{hi} is empty or starts at 0"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_holds_a_session_per_port_or_per_even_odd_pair() {
        assert_eq!(range_sessions((40000, 49999), false), 10_000);
        assert_eq!(range_sessions((40000, 49999), true), 5_000);
        assert_eq!(range_sessions((40001, 40004), true), 1, "40002/40003 only");
        assert_eq!(range_sessions((40001, 40005), true), 2);
        assert_eq!(range_sessions((40000, 40000), true), 0);
        assert_eq!(range_sessions((65535, 65535), false), 1);
        assert_eq!(range_sessions((65534, 65535), true), 1);
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default();
        assert_eq!(c.relay.len(), 1);
        assert_eq!(c.relay[0].rtcp, RtcpMode::Auto);
        assert_eq!(c.relay[0].clock_rates().get(111), Some(48000));
        assert_eq!(c.limits.max_sessions, 100_000);
        assert_eq!(c.idle_timeout(), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_relay_without_clock_rates_keeps_the_default_dynamic_types() {
        let base = "[[relay]]\nlisten = \"0.0.0.0:1\"\nupstream = \"127.0.0.1:2\"\n";
        let c = Config::from_toml(base).unwrap();
        let embedded = Config::embedded_default().relay[0].clock_rate_table().unwrap();
        assert_eq!(c.relay[0].clock_rate_table().unwrap(), embedded);
        assert_eq!(c.relay[0].clock_rates().get(111), Some(48000));
        assert_eq!(c.relay[0].clock_rates().get(96), Some(90000));
        // A table given replaces the default whole.
        let c = Config::from_toml(&format!("{base}[relay.clock_rates]\n100 = 16000\n")).unwrap();
        assert_eq!(c.relay[0].clock_rates().get(100), Some(16000));
        assert_eq!(c.relay[0].clock_rates().get(111), None);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_toml("[limits]\nmax_sesions = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_sesions"), "{e}");
        let base = "[[relay]]\nlisten = \"0.0.0.0:1\"\nupstream = \"127.0.0.1:2\"\n";
        let e = Config::from_toml(&format!("{base}upstream_ports = \"9-3\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("relay[0].upstream_ports"), "{e}");
        let e = Config::from_toml(&format!("{base}[relay.clock_rates]\n200 = 8000\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("relay[0].clock_rates.200"), "{e}");
        let e = Config::from_toml(&format!("{base}rtcp = \"maybe\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("maybe"), "{e}");
    }

    #[test]
    fn remote_api_needs_a_token() {
        let e = Config::from_toml("[api]\nlisten = \"0.0.0.0:9470\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("api.listen") && e.contains("[api] token"), "{e}");
        assert!(Config::from_toml("[api]\nlisten = \"0.0.0.0:9470\"\ntoken = \"0123456789abcdef\"\n").is_ok());
        assert!(Config::from_toml("[api]\nlisten = \"10.0.0.1:9470\"\nallow_tokenless = true\n").is_ok());
        assert!(Config::from_toml("[api]\nlisten = \"[::1]:9470\"\n").is_ok());
        let e = Config::from_toml("[api]\nallowed_hosts = [\"http://x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("api.allowed_hosts"), "{e}");
    }
}
