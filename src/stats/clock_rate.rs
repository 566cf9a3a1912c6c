//! Payload type → RTP clock rate (RFC 3551 §6 static types; dynamic types
//! 96–127 only from configuration, since they mean what the SDP says).

use std::collections::BTreeMap;

/// The assigned static payload types (RFC 3551 Tables 4 and 5): the
/// encoding name (the MIME subtype of `mimeType`) and the clock rate
/// (`None`: reserved, no rate of its own).
const STATIC: [(u8, &str, Option<u32>); 25] = [
    (0, "PCMU", Some(8000)),
    (3, "GSM", Some(8000)),
    (4, "G723", Some(8000)),
    (5, "DVI4", Some(8000)),  // DVI4/8000
    (6, "DVI4", Some(16000)), // DVI4/16000
    (7, "LPC", Some(8000)),
    (8, "PCMA", Some(8000)),
    (9, "G722", Some(8000)),  // clock rate 8000 by RFC 3551's historical error
    (10, "L16", Some(44100)), // stereo
    (11, "L16", Some(44100)), // mono
    (12, "QCELP", Some(8000)),
    (13, "CN", Some(8000)),
    (14, "MPA", Some(90000)),
    (15, "G728", Some(8000)),
    (16, "DVI4", Some(11025)), // DVI4/11025
    (17, "DVI4", Some(22050)), // DVI4/22050
    (18, "G729", Some(8000)),
    (19, "CN", None), // reserved, once comfort noise
    (25, "CelB", Some(90000)),
    (26, "JPEG", Some(90000)),
    (28, "nv", Some(90000)),
    (31, "H261", Some(90000)),
    (32, "MPV", Some(90000)),
    (33, "MP2T", Some(90000)),
    (34, "H263", Some(90000)),
];

/// Media kind as far as the payload type tells.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    /// The W3C `kind` and SDP media name: `audio` or `video`.
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// The kind of a static payload type (RFC 3551 §6): 0–23 are audio (MPA,
/// PT 14, is audio on a 90 kHz clock), 24–34 video; `None` above.
pub fn static_kind(pt: u8) -> Option<MediaKind> {
    match pt {
        0..=23 => Some(MediaKind::Audio),
        24..=34 => Some(MediaKind::Video),
        _ => None,
    }
}

/// `mimeType` of an assigned static payload type, e.g. `audio/PCMU`.
pub fn static_mime_type(pt: u8) -> Option<String> {
    let (_, name, _) = STATIC.iter().find(|(p, _, _)| *p == pt)?;
    Some(format!("{}/{name}", static_kind(pt)?.name()))
}

/// Mean payload at or above which a stream that nothing else classifies is
/// taken for video: 20 ms of compressed audio (Opus, G.711, G.722) stays
/// well under it, video packets fill toward the path MTU.
pub const VIDEO_PAYLOAD_GUESS: f64 = 400.0;

/// The kind of a stream without SDP: a static payload type's own kind; a
/// dynamic one by its clock rate (90 kHz is video by convention, RFC 3551
/// §5; any other rate is an audio sampling rate, 8/16/48 kHz the usual
/// ones); with neither, by its mean payload size (see
/// [`VIDEO_PAYLOAD_GUESS`]).
pub fn infer_kind(pt: u8, clock_rate: Option<u32>, mean_payload: f64) -> MediaKind {
    if let Some(kind) = static_kind(pt) {
        return kind;
    }
    match clock_rate {
        Some(90_000) => MediaKind::Video,
        Some(_) => MediaKind::Audio,
        None if mean_payload >= VIDEO_PAYLOAD_GUESS => MediaKind::Video,
        None => MediaKind::Audio,
    }
}

#[derive(Clone, Debug)]
pub struct ClockRates {
    /// Dense table for the per-packet lookup: index = PT, 0 = unknown.
    rates: [u32; 128],
    kinds: [Option<MediaKind>; 128],
}

impl Default for ClockRates {
    /// The static table only.
    fn default() -> Self {
        ClockRates::new(&BTreeMap::new())
    }
}

impl ClockRates {
    /// The static table plus `overrides` (PT → Hz). Overrides win, so a
    /// deployment can remap a static type if it must.
    pub fn new(overrides: &BTreeMap<u8, u32>) -> Self {
        let mut table = ClockRates {
            rates: [0; 128],
            kinds: [None; 128],
        };
        for (pt, _, rate) in STATIC {
            if let Some(rate) = rate {
                table.set(pt, rate);
            }
        }
        for (&pt, &rate) in overrides {
            table.set(pt, rate);
        }
        table
    }

    fn set(&mut self, pt: u8, rate: u32) {
        if let Some(slot) = self.rates.get_mut(usize::from(pt)) {
            *slot = rate;
        }
        if let Some(kind) = self.kinds.get_mut(usize::from(pt)) {
            *kind = Some(infer_kind(pt, Some(rate), 0.0));
        }
    }

    /// Clock rate for `pt`, or `None` when it is dynamic and not configured.
    #[inline]
    pub(crate) fn get(&self, pt: u8) -> Option<u32> {
        match self.rates.get(usize::from(pt)) {
            Some(&0) | None => None,
            Some(&r) => Some(r),
        }
    }

    pub fn kind(&self, pt: u8) -> Option<MediaKind> {
        self.kinds.get(usize::from(pt)).copied().flatten()
    }
}

/// Parses `PT=HZ` (the `--clock-rate` CLI form).
pub fn parse_pt_rate(s: &str) -> Result<(u8, u32), String> {
    let (pt, hz) = s.split_once('=').ok_or_else(|| format!("expected PT=HZ, got {s:?}"))?;
    let pt: u8 = pt
        .trim()
        .parse()
        .map_err(|_| format!("payload type {pt:?} is not a number 0-127"))?;
    if pt > 127 {
        return Err(format!("payload type {pt} is out of range 0-127"));
    }
    let hz: u32 = hz
        .trim()
        .parse()
        .map_err(|_| format!("clock rate {hz:?} is not a positive integer"))?;
    if hz == 0 {
        return Err("clock rate must be positive".into());
    }
    Ok((pt, hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic() {
        let mut o = BTreeMap::new();
        o.insert(111, 48000);
        o.insert(96, 90000);
        let t = ClockRates::new(&o);
        assert_eq!(t.get(0), Some(8000));
        assert_eq!(t.get(8), Some(8000));
        assert_eq!(t.get(34), Some(90000));
        assert_eq!(t.get(111), Some(48000));
        assert_eq!(t.kind(111), Some(MediaKind::Audio));
        assert_eq!(t.kind(96), Some(MediaKind::Video));
        assert_eq!(t.get(97), None);
        assert_eq!(t.get(200), None);
    }

    #[test]
    fn kinds_and_mime_types() {
        assert_eq!(
            ClockRates::default().kind(14),
            Some(MediaKind::Audio),
            "MPA is audio at 90 kHz"
        );
        assert_eq!(static_mime_type(0).as_deref(), Some("audio/PCMU"));
        assert_eq!(static_mime_type(34).as_deref(), Some("video/H263"));
        assert_eq!(static_mime_type(20), None);
        assert_eq!(static_mime_type(96), None);
        assert_eq!(infer_kind(20, None, 1000.0), MediaKind::Audio);
        assert_eq!(infer_kind(24, None, 10.0), MediaKind::Video);
        assert_eq!(infer_kind(96, Some(90_000), 10.0), MediaKind::Video);
        for hz in [8000, 16000, 48000] {
            assert_eq!(infer_kind(111, Some(hz), 1000.0), MediaKind::Audio);
        }
        assert_eq!(infer_kind(100, None, 120.0), MediaKind::Audio);
        assert_eq!(infer_kind(100, None, 1100.0), MediaKind::Video);
    }

    #[test]
    fn parses_cli_form() {
        assert_eq!(parse_pt_rate("111=48000"), Ok((111, 48000)));
        assert!(parse_pt_rate("128=8000").is_err());
        assert!(parse_pt_rate("96").is_err());
        assert!(parse_pt_rate("96=0").is_err());
        assert!(parse_pt_rate("x=1").is_err());
    }
}
