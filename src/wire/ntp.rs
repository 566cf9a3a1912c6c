//! NTP timestamps as RTCP carries them (RFC 3550 §4, RFC 5905 §6).
//!
//! * 64-bit: seconds since 1900-01-01 in the high 32 bits, binary fraction in
//!   the low 32 bits (SR sender info, XR RRTR).
//! * Compact: the middle 32 bits, 16.16 fixed point (LSR in report blocks,
//!   LRR in XR DLRR). Wraps every 65 536 s (~18.2 h).
//! * Delay (DLSR, DLRR): a duration in units of 1/65 536 s, also 16.16.

use serde::Serialize;
use std::time::Duration;

/// Seconds from the NTP era origin (1900-01-01) to the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Full 64-bit NTP timestamp.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// From time since the Unix epoch. Example: 1 s after the epoch is
    /// `(2_208_988_801 << 32) | 0`; 0.5 s adds `0x8000_0000` to the fraction.
    pub fn from_unix(since_epoch: Duration) -> Self {
        let secs = since_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET_SECS);
        // fraction = nanos * 2^32 / 1e9, exact in u64 (nanos < 1e9 < 2^30).
        let frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTime(secs << 32 | frac)
    }

    /// Back to time since the Unix epoch (saturating at the epoch).
    pub fn to_unix(self) -> Duration {
        let secs = (self.0 >> 32).saturating_sub(NTP_UNIX_OFFSET_SECS);
        let nanos = ((self.0 & 0xffff_ffff) * 1_000_000_000) >> 32;
        Duration::new(secs, nanos as u32)
    }

    /// Middle 32 bits (RFC 3550 §6.4.1 LSR): low 16 bits of the seconds and
    /// high 16 bits of the fraction. Example: `0x83aa7e80_80000000` (…s + 0.5)
    /// gives `0x7e80_8000`.
    #[inline]
    pub fn compact(self) -> CompactNtp {
        CompactNtp((self.0 >> 16) as u32)
    }
}

/// Middle 32 bits of an NTP timestamp, 16.16 fixed point seconds, wrapping.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct CompactNtp(pub u32);

/// A delay in units of 1/65 536 s (RFC 3550 §6.4.1 DLSR, RFC 3611 §4.5 DLRR).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Delay16(pub u32);

impl Delay16 {
    /// Example: `Delay16(0x0001_8000)` is 1.5 s.
    #[inline]
    pub fn to_duration(self) -> Duration {
        // nanos = units * 1e9 / 65536; u64 holds 2^32 * 1e9 comfortably.
        Duration::from_nanos((u64::from(self.0) * 1_000_000_000) >> 16)
    }

    /// Saturates at the largest representable delay (~18.2 h) rather than
    /// wrapping, so an absurd delay never looks like a small one.
    #[inline]
    pub fn from_duration(d: Duration) -> Self {
        let units = d.as_nanos().saturating_mul(65_536) / 1_000_000_000;
        Delay16(u32::try_from(units).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_round_trip_and_compact() {
        let t = NtpTime::from_unix(Duration::new(1, 500_000_000));
        assert_eq!(t.0 >> 32, NTP_UNIX_OFFSET_SECS + 1);
        assert_eq!(t.0 & 0xffff_ffff, 0x8000_0000);
        assert_eq!(t.to_unix(), Duration::new(1, 500_000_000));
        assert_eq!(NtpTime(0x83aa_7e80_8000_0000).compact(), CompactNtp(0x7e80_8000));
    }

    #[test]
    fn delay_units() {
        assert_eq!(Delay16(0x0001_8000).to_duration(), Duration::from_millis(1500));
        assert_eq!(
            Delay16::from_duration(Duration::from_millis(1500)),
            Delay16(0x0001_8000)
        );
        assert_eq!(Delay16::from_duration(Duration::from_secs(1 << 20)), Delay16(u32::MAX));
    }
}
