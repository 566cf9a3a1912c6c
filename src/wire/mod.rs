//! Zero-copy views of what crosses the relay, and builders for what it writes.
//!
//! Every parser here takes attacker-controlled bytes: it validates lengths
//! before every read, returns an error instead of panicking, and allocates
//! nothing. Reads go through [`bytes`], the one place that indexes buffers.

pub mod classify;
pub mod dtls;
pub mod ntp;
pub mod rtcp;
pub mod rtp;
pub mod stun;
pub mod types;

pub use classify::{classify, PacketKind};
pub use types::{ExtSeqNo, RtpTs, SeqNo, Ssrc};

/// Bounds-checked big-endian reads. The only code in `wire` that indexes a
/// buffer; every accessor returns `None` past the end instead of panicking.
pub(crate) mod bytes {
    #[inline]
    pub fn u8_at(b: &[u8], at: usize) -> Option<u8> {
        b.get(at).copied()
    }

    #[inline]
    pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        let s = b.get(at..at.checked_add(2)?)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }

    #[inline]
    pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        let s = b.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    #[inline]
    pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
        let hi = u32_at(b, at)? as u64;
        let lo = u32_at(b, at.checked_add(4)?)? as u64;
        Some(hi << 32 | lo)
    }

    /// The `len` bytes after the first `skip` of `*b`, taking everything up
    /// to their end off the front of `*b`; `None`, and `*b` as it was, when
    /// `*b` is shorter.
    #[inline]
    pub fn take<'a>(b: &mut &'a [u8], skip: usize, len: usize) -> Option<&'a [u8]> {
        let end = skip.checked_add(len)?;
        let taken = b.get(skip..end)?;
        *b = b.get(end..)?;
        Some(taken)
    }
}
