//! What a relay does with RTCP (its mode) and how the proxy paces the
//! reports it writes (its policy): plain settings, read by the session, the
//! report generator and the config alike.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RtcpMode {
    /// RTCP passes unchanged; the proxy observes it.
    Forward,
    /// Forward, and generate RRs where the receiver suppresses them.
    #[default]
    Auto,
    /// Consume report blocks on both legs and generate the proxy's own.
    Terminate,
}

impl RtcpMode {
    pub const ALL: [RtcpMode; 3] = [RtcpMode::Forward, RtcpMode::Auto, RtcpMode::Terminate];

    /// Index into per-mode counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for RtcpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RtcpMode::Forward => "forward",
            RtcpMode::Auto => "auto",
            RtcpMode::Terminate => "terminate",
        })
    }
}

impl std::str::FromStr for RtcpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "forward" => Ok(RtcpMode::Forward),
            "auto" => Ok(RtcpMode::Auto),
            "terminate" => Ok(RtcpMode::Terminate),
            other => Err(format!(
                "unknown RTCP mode {other:?} (expected forward, auto or terminate)"
            )),
        }
    }
}

/// Report generation settings.
#[derive(Clone, Copy, Debug)]
pub struct ReportPolicy {
    /// Minimum report interval when the leg carries video (browsers and
    /// SFUs report video about every second).
    pub min_interval_video: Duration,
    /// Minimum report interval for audio-only legs (RFC 3550's 5 s).
    pub min_interval_audio: Duration,
    /// `auto`: a stream is suppressed when no report block about it came
    /// back for this many of its report intervals.
    pub suppression_intervals: u32,
    /// Append XR RRTR to generated reports, so endpoints that answer with
    /// DLRR give the proxy the RTT of legs it terminates (RFC 3611 §4.4).
    pub xr_rrtr: bool,
    /// Append XR Statistics Summary and VoIP Metrics blocks (RFC 3611
    /// §4.6–4.7) about the audio streams a generated report covers.
    pub xr_voip_metrics: bool,
}

impl Default for ReportPolicy {
    fn default() -> Self {
        ReportPolicy {
            min_interval_video: Duration::from_secs(1),
            min_interval_audio: Duration::from_secs(5),
            suppression_intervals: 3,
            xr_rrtr: true,
            xr_voip_metrics: true,
        }
    }
}
