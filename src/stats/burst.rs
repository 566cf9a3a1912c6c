//! Burst-aware loss model of one stream: the RFC 3611 §4.7.2 run-length
//! burst/gap model (Appendix A.2, Gmin = 16) and the two-state Markov
//! (Gilbert) chain behind G.107's BurstR (§7.5).
//!
//! It is fed once per *gap* (a run of missing sequence numbers that the
//! next in-order packet reveals), not per packet: the received packets
//! between two gaps are a difference of counters the receive path keeps
//! anyway. A gap of k losses is the A.2 per-packet loop run k times with
//! `pkt = 0` after the first, which has a closed form. So the per-packet
//! cost is one predictable branch, and nothing allocates.
//!
//! Loss here is loss *on arrival at the proxy*: a packet filled in later
//! (reordered, or retransmitted on its own SSRC) stays counted as lost,
//! as it is for a playout buffer it arrives too late for. The proxy has no
//! playout buffer, so RFC 3611's "discarded" packets are always 0.

use serde::Serialize;

/// RFC 3611 §4.7.2: the minimum gap length, in received packets; a run of
/// fewer received packets between losses is part of the burst. 16 is the
/// RFC's recommended value.
pub const GMIN: u64 = 16;

/// Counters of RFC 3611 Appendix A.2 and of the Gilbert chain. All
/// additive: the model over an interval is the difference of two copies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossModel {
    /// A.2 `lost`: losses in the current burst.
    burst_losses: u64,
    /// A.2 transition counts (state 1: received in a gap, 2: received in a
    /// burst, 3: lost in a burst, 4: lost isolated in a gap).
    c11: u64,
    c13: u64,
    c14: u64,
    c22: u64,
    c23: u64,
    c33: u64,
    /// Received-packet count (the receive path's) at the last loss: A.2's
    /// `pkt` is the count now minus this.
    received_mark: u64,
    /// Packets lost, and runs of consecutive losses (Gilbert chain).
    lost: u64,
    runs: u64,
}

/// What the model says about a stream so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BurstMetrics {
    /// Packets lost on arrival, and received.
    pub lost: u64,
    pub received: u64,
    /// Loss fraction 0..1 (RFC 3611 §4.7.1 loss rate / 256).
    pub loss_rate: f64,
    /// RFC 3611 §4.7.2 burst and gap density, fractions 0..1 (the wire
    /// carries them ×256), and mean durations, ms.
    pub burst_density: f64,
    pub gap_density: f64,
    pub burst_duration_ms: f64,
    pub gap_duration_ms: f64,
    /// G.107 §7.5 BurstR: 1 random loss, > 1 bursty, < 1 smoother than
    /// random.
    pub burst_r: f64,
}

impl LossModel {
    /// A gap of `lost` ≥ 1 consecutive packets, revealed by a packet that
    /// arrives after `received_before` packets were received. Appendix A.2
    /// for each lost packet:
    ///
    /// ```text
    /// if pkt >= Gmin { if lost == 1 { c14++ } else { c13++ }; lost = 1; c11 += pkt }
    /// else { lost++; if pkt == 0 { c33++ } else { c23++; c22 += pkt - 1 } }
    /// pkt = 0
    /// ```
    ///
    /// The first loss of the gap sees `pkt` received packets since the
    /// previous loss; the other k − 1 see `pkt = 0` (lost++, c33++ each).
    /// Out of line: loss is rare, and the in-order path stays small.
    #[inline(never)]
    pub fn on_gap(&mut self, received_before: u64, lost: u64) {
        let pkt = received_before.saturating_sub(self.received_mark);
        if pkt >= GMIN {
            if self.burst_losses == 1 {
                self.c14 += 1;
            } else {
                self.c13 += 1;
            }
            self.burst_losses = 1;
            self.c11 += pkt;
        } else {
            self.burst_losses += 1;
            if pkt == 0 {
                self.c33 += 1;
            } else {
                self.c23 += 1;
                self.c22 += pkt - 1;
            }
        }
        let rest = lost.saturating_sub(1);
        self.burst_losses += rest;
        self.c33 += rest;
        self.received_mark = received_before;
        self.lost += lost;
        self.runs += 1;
    }

    /// Metrics with `received` packets received in all (the receive path's
    /// count now) and `packet_ms` the duration one packet carries.
    ///
    /// Appendix A.2, after the loop (received packets after the last loss
    /// count as gap when there are Gmin of them, else they are still in a
    /// burst and wait for the next loss):
    ///
    /// ```text
    /// c31 = c13; c32 = c23
    /// ctotal = c11 + c14 + c13 + c22 + c23 + c31 + c32 + c33
    /// p32 = c32 / (c31 + c32 + c33)
    /// p23 = 1 − c22 / (c22 + c23)        (1 when c22 + c23 < 1)
    /// burst density = p23 / (p23 + p32)
    /// gap density   = c14 / (c11 + c14)
    /// gap length    = (c11 + c14 + c13) · m / c13
    /// burst length  = ctotal · m / c13 − gap length
    /// ```
    pub fn metrics(&self, received: u64, packet_ms: f64) -> BurstMetrics {
        let tail = received.saturating_sub(self.received_mark);
        let c11 = self.c11 + if tail >= GMIN || self.lost == 0 { tail } else { 0 };
        let (c13, c14, c22, c23, c33) = (self.c13, self.c14, self.c22, self.c23, self.c33);
        let f = |x: u64| x as f64;
        let total = received + self.lost;
        let loss_rate = if total == 0 { 0.0 } else { f(self.lost) / f(total) };
        let m = if packet_ms.is_finite() && packet_ms > 0.0 {
            packet_ms
        } else {
            0.0
        };
        let (burst_density, gap_density, burst_duration_ms, gap_duration_ms) = if c13 == 0 {
            // No burst (§4.7.2: then the gap density is the loss rate and
            // the gap lasts the whole stream).
            (0.0, loss_rate, 0.0, f(total) * m)
        } else {
            let (c31, c32) = (c13, c23);
            let ctotal = c11 + c14 + c13 + c22 + c23 + c31 + c32 + c33;
            let p32 = f(c32) / f(c31 + c32 + c33);
            let p23 = if c22 + c23 < 1 {
                1.0
            } else {
                1.0 - f(c22) / f(c22 + c23)
            };
            let burst_density = if p23 + p32 > 0.0 { p23 / (p23 + p32) } else { 0.0 };
            let gap_density = if c11 + c14 == 0 { 0.0 } else { f(c14) / f(c11 + c14) };
            let gap_ms = f(c11 + c14 + c13) * m / f(c13);
            let burst_ms = f(ctotal) * m / f(c13) - gap_ms;
            (burst_density, gap_density, burst_ms, gap_ms)
        };
        // G.107 §7.5 (7-30): BurstR = 1/(p + q) with p = P(loss | received)
        // and q = P(received | loss). Each run of losses is one
        // received→lost and one lost→received transition: p = runs /
        // received, q = runs / lost. Random loss gives p + q = 1.
        let burst_r = if self.lost == 0 || received == 0 {
            1.0
        } else {
            1.0 / (f(self.runs) / f(received) + f(self.runs) / f(self.lost))
        };
        BurstMetrics {
            lost: self.lost,
            received,
            loss_rate,
            burst_density,
            gap_density,
            burst_duration_ms,
            gap_duration_ms,
            burst_r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a received/lost pattern ('.' received, 'x' lost) the way the
    /// receive path does: a gap is revealed by the next received packet.
    fn feed(pattern: &str) -> (LossModel, u64) {
        let mut m = LossModel::default();
        let (mut received, mut gap) = (0u64, 0u64);
        for c in pattern.chars() {
            if c == 'x' {
                gap += 1;
            } else {
                if gap > 0 {
                    m.on_gap(received, gap);
                    gap = 0;
                }
                received += 1;
            }
        }
        (m, received)
    }

    /// Appendix A.2's loop, per packet, for comparison.
    fn reference(pattern: &str) -> [u64; 6] {
        let (mut lost, mut pkt) = (0u64, 0u64);
        let mut c = [0u64; 6]; // c11 c13 c14 c22 c23 c33
        for ch in pattern.chars() {
            if ch == '.' {
                pkt += 1;
                continue;
            }
            if pkt >= GMIN {
                if lost == 1 {
                    c[2] += 1;
                } else {
                    c[1] += 1;
                }
                lost = 1;
                c[0] += pkt;
            } else {
                lost += 1;
                if pkt == 0 {
                    c[5] += 1;
                } else {
                    c[4] += 1;
                    c[3] += pkt - 1;
                }
            }
            pkt = 0;
        }
        c
    }

    #[test]
    fn closed_form_matches_the_per_packet_loop() {
        let pattern = format!(
            "{}x{}xxx.x..xx{}x{}xxxxx.{}",
            ".".repeat(40),
            ".".repeat(20),
            ".".repeat(5),
            ".".repeat(30),
            ".".repeat(16)
        );
        // Gaps end on a received packet in `feed`; the pattern does too.
        let (m, _) = feed(&pattern);
        assert_eq!([m.c11, m.c13, m.c14, m.c22, m.c23, m.c33], reference(&pattern));
    }

    #[test]
    fn random_loss_has_burst_r_near_one_and_bursts_more() {
        // Every 33rd packet lost (3 %, isolated): smoother than random
        // (BurstR = 1/(p + q) with p = 1/32, q = 1 → 0.97).
        let isolated = ".".repeat(32) + "x";
        let (m, rx) = feed(&(isolated.repeat(100) + "."));
        let iso = m.metrics(rx, 20.0);
        assert!((iso.loss_rate - 100.0 / 3300.0).abs() < 1e-3, "{iso:?}");
        assert!((iso.burst_r - 1.0 / (1.0 / 32.0 + 1.0)).abs() < 1e-3, "{iso:?}");
        // Isolated losses 32 apart are gap losses (c14), all but the first:
        // A.2 starts with `lost = 0`, so the first loss opens a burst of
        // one packet (c13 = 1), 20 ms long. Gap density 99/(3200 + 99).
        assert!((iso.burst_duration_ms - 20.0).abs() < 1e-6, "{iso:?}");
        assert!((iso.gap_density - 99.0 / 3299.0).abs() < 1e-9, "{iso:?}");

        // Same rate in runs of 4 every 132: BurstR = 1/(1/128 + 1/4) = 3.88.
        let bursty = ".".repeat(128) + "xxxx";
        let (m, rx) = feed(&(bursty.repeat(25) + "."));
        let b = m.metrics(rx, 20.0);
        assert!((b.loss_rate - iso.loss_rate).abs() < 1e-3);
        assert!((b.burst_r - 1.0 / (1.0 / 128.0 + 0.25)).abs() < 1e-3, "{b:?}");
        // Bursts of 4 losses: burst density 1 (every packet in a burst is
        // lost), 80 ms long; gaps (c11 + c13)/c13 = 129 packets, 2 580 ms
        // (A.2 counts the transition into the burst to the gap); no
        // isolated loss.
        assert!((b.burst_density - 1.0).abs() < 1e-9, "{b:?}");
        assert_eq!(b.gap_density, 0.0);
        assert!((b.burst_duration_ms - 80.0).abs() < 1.0, "{b:?}");
        assert!((b.gap_duration_ms - 2580.0).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn no_loss() {
        let (m, rx) = feed(&".".repeat(50));
        let b = m.metrics(rx, 20.0);
        assert_eq!((b.lost, b.received, b.burst_r, b.burst_density), (0, 50, 1.0, 0.0));
        assert_eq!(b.gap_duration_ms, 1000.0);
    }
}
