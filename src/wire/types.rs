//! Typed wire quantities. Conversions between widths live here and in
//! [`super::ntp`], so arithmetic elsewhere never casts raw integers.

use serde::Serialize;
use std::fmt;

/// Synchronisation source identifier (RFC 3550 §5.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct Ssrc(pub u32);

impl fmt::Debug for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ssrc({:#010x})", self.0)
    }
}

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// 16-bit RTP sequence number as it appears on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// Forward distance `self - earlier` modulo 2^16 (RFC 3550 A.1 `udelta`).
    #[inline]
    pub fn delta_from(self, earlier: SeqNo) -> u16 {
        self.0.wrapping_sub(earlier.0)
    }
}

/// Extended sequence number: 16-bit cycle count above the 16-bit sequence
/// number (RFC 3550 A.1, `cycles + max_seq`). Kept in 64 bits so that the
/// difference of two of them never overflows; on the wire only the low 32
/// bits are sent (RFC 3550 §6.4.1 "extended highest sequence number").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct ExtSeqNo(pub u64);

impl ExtSeqNo {
    #[inline]
    pub fn new(cycles: u64, seq: SeqNo) -> Self {
        ExtSeqNo(cycles << 16 | u64::from(seq.0))
    }

    /// The 32-bit value written into a report block.
    #[inline]
    pub fn wire(self) -> u32 {
        // Truncation is the wire format: 16 bits of cycles, 16 of sequence.
        self.0 as u32
    }
}

/// 32-bit RTP media timestamp.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct RtpTs(pub u32);

impl RtpTs {
    /// Signed difference `self - earlier` modulo 2^32: timestamps wrap, and
    /// A.8 only ever needs the difference of two nearby ones.
    #[inline]
    pub fn signed_delta_from(self, earlier: RtpTs) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }
}
