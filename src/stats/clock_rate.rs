//! Payload type → RTP clock rate (RFC 3551 §6 static types; dynamic types
//! 96–127 only from configuration, since they mean what the SDP says).

use std::collections::BTreeMap;

/// Static payload types of RFC 3551 Table 4 and 5 with their clock rates.
const STATIC: [(u8, u32); 20] = [
    (0, 8000),   // PCMU
    (3, 8000),   // GSM
    (4, 8000),   // G723
    (5, 8000),   // DVI4/8000
    (6, 16000),  // DVI4/16000
    (7, 8000),   // LPC
    (8, 8000),   // PCMA
    (9, 8000),   // G722 (clock rate 8000 by RFC 3551's historical error)
    (10, 44100), // L16 stereo
    (11, 44100), // L16 mono
    (12, 8000),  // QCELP
    (13, 8000),  // CN
    (14, 90000), // MPA
    (15, 8000),  // G728
    (16, 11025), // DVI4/11025
    (17, 22050), // DVI4/22050
    (18, 8000),  // G729
    (25, 90000), // CelB
    (26, 90000), // JPEG
    (31, 90000), // H261
];
/// Remaining static video types (RFC 3551 Table 5).
const STATIC_VIDEO_90K: [u8; 3] = [28, 32, 33]; // nv, MPV, MP2T
const STATIC_H263: u8 = 34;

/// Media kind as far as the payload type tells.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MediaKind {
    Audio,
    Video,
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
        for (pt, rate) in STATIC {
            table.set(pt, rate);
        }
        for pt in STATIC_VIDEO_90K.into_iter().chain([STATIC_H263]) {
            table.set(pt, 90000);
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
            // 90 kHz is the video clock by convention (RFC 3551 §5); every
            // other rate is an audio sampling rate.
            *kind = Some(if rate == 90000 {
                MediaKind::Video
            } else {
                MediaKind::Audio
            });
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

    pub(crate) fn kind(&self, pt: u8) -> Option<MediaKind> {
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
    fn parses_cli_form() {
        assert_eq!(parse_pt_rate("111=48000"), Ok((111, 48000)));
        assert!(parse_pt_rate("128=8000").is_err());
        assert!(parse_pt_rate("96").is_err());
        assert!(parse_pt_rate("96=0").is_err());
        assert!(parse_pt_rate("x=1").is_err());
    }
}
