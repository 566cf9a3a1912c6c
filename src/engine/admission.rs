//! Floods: who may open a session, and how fast one session may send.
//!
//! A relay on the public internet sees spoofed source addresses: every new
//! address would otherwise cost a session slot and an upstream socket. New
//! sessions are limited per source prefix (IPv4 /24, IPv6 /64: one
//! attacker's block, not one address) with a token bucket; the table of
//! buckets is itself capped. Established sessions are not affected.
//! Packets of one session are limited per side with another token bucket,
//! so one flooding client cannot take a worker's time from the others.

use crate::time::MonoTime;
use std::collections::HashMap;
use std::net::IpAddr;

/// A token bucket: `rate` tokens a second, at most `burst` banked.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    last: MonoTime,
}

impl Bucket {
    pub fn full(burst: f64, now: MonoTime) -> Self {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    #[inline]
    pub fn take(&mut self, now: MonoTime, rate: f64, burst: f64) -> bool {
        let dt = now.saturating_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Buckets kept for source prefixes; beyond this the fullest (idle) ones
/// are forgotten first, and if none is, all of them (a fresh start costs
/// an attacker nothing it did not have).
pub const MAX_PREFIXES: usize = 16_384;

/// The source prefix a new session is charged to.
pub fn prefix_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => (4u128 << 120) | u128::from(u32::from(v4) & 0xffff_ff00),
        IpAddr::V6(v6) => (6u128 << 120) | (u128::from(v6) >> 64),
    }
}

/// New-session rate per source prefix.
#[derive(Debug)]
pub struct PrefixLimiter {
    rate: f64,
    burst: f64,
    buckets: HashMap<u128, Bucket, foldhash::fast::RandomState>,
}

impl PrefixLimiter {
    /// `per_sec` new sessions a second per prefix, with a burst of as many.
    pub fn new(per_sec: u32) -> Self {
        PrefixLimiter {
            rate: f64::from(per_sec),
            burst: f64::from(per_sec.max(1)),
            buckets: HashMap::default(),
        }
    }

    /// Takes a token from `ip`'s prefix; a full table that cannot shed idle
    /// prefixes starts over (counted in `caps`).
    pub fn allow(&mut self, now: MonoTime, ip: IpAddr, caps: &mut super::CapHits) -> bool {
        let key = prefix_of(ip);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= MAX_PREFIXES {
            let (rate, burst) = (self.rate, self.burst);
            // Forget prefixes whose bucket has refilled: they are idle.
            self.buckets.retain(|_, b| {
                let mut probe = *b;
                probe.take(now, rate, burst);
                probe.tokens + 1.0 < burst
            });
            if self.buckets.len() >= MAX_PREFIXES {
                caps.hit(super::Cap::PrefixTable);
                self.buckets.clear();
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        self.buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(burst, now))
            .take(now, rate, burst)
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Cap, CapHits};

    fn ms(v: u64) -> MonoTime {
        MonoTime::from_millis(v)
    }

    #[test]
    fn a_prefix_gets_its_rate_and_neighbours_share_it() {
        let mut l = PrefixLimiter::new(10);
        let mut caps = CapHits::default();
        let a: IpAddr = "203.0.113.5".parse().unwrap();
        let b: IpAddr = "203.0.113.200".parse().unwrap();
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        let allowed = (0..30)
            .filter(|i| l.allow(ms(0), if i % 2 == 0 { a } else { b }, &mut caps))
            .count();
        assert_eq!(allowed, 10, "one /24 shares one bucket");
        assert!(l.allow(ms(0), other, &mut caps), "another prefix has its own");
        assert!(!l.allow(ms(50), a, &mut caps));
        assert!(l.allow(ms(100), a, &mut caps), "10 a second: one token per 100 ms");
        assert_eq!(caps, CapHits::default());
    }

    #[test]
    fn the_bucket_table_stays_bounded() {
        let mut l = PrefixLimiter::new(5);
        let mut caps = CapHits::default();
        for i in 0..(MAX_PREFIXES as u32 * 3) {
            let ip = IpAddr::from((i << 8).to_be_bytes());
            l.allow(ms(u64::from(i)), ip, &mut caps);
            assert!(l.tracked() <= MAX_PREFIXES);
        }
        assert_eq!(caps.get(Cap::PrefixTable), 0, "idle prefixes made room");
        // All busy at once: the table starts over, and says so.
        let mut l = PrefixLimiter::new(5);
        for i in 0..=(MAX_PREFIXES as u32) {
            l.allow(ms(0), IpAddr::from((i << 8).to_be_bytes()), &mut caps);
        }
        assert_eq!(caps.get(Cap::PrefixTable), 1);
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn bucket_refills_at_its_rate_up_to_the_burst() {
        let mut b = Bucket::full(3.0, ms(0));
        assert!((0..3).all(|_| b.take(ms(0), 100.0, 3.0)));
        assert!(!b.take(ms(0), 100.0, 3.0));
        assert!(b.take(ms(10), 100.0, 3.0));
        assert!(!b.take(ms(10), 100.0, 3.0));
        // A long pause banks no more than the burst.
        assert_eq!((0..10).filter(|_| b.take(ms(10_000), 100.0, 3.0)).count(), 3);
    }
}
