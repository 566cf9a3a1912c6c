//! Call quality as operators read it: the ITU-T G.107 E-model (R-factor,
//! MOS), with the G.107.1 wideband scale where the codec is wideband.
//!
//! Everything here is plain arithmetic on figures the proxy already has
//! (loss and its burstiness, jitter, round-trip time); it runs once per
//! report or snapshot, never per packet.
//!
//! Clause numbers refer to ITU-T G.107 (06/2015) unless stated otherwise.
//! Only the terms that depend on what the proxy measures are inputs; the
//! terminal and room parameters (loudness ratings, noise, sidetone, echo
//! loss) are the recommendation's defaults of Table 3, as every
//! network-side E-model (RFC 3611 §4.7.5, G.1020) assumes.

use serde::Serialize;

/// G.107 Table 3 default values (the ones this module does not vary).
mod defaults {
    /// Send / receive loudness ratings, dB.
    pub const SLR: f64 = 8.0;
    pub const RLR: f64 = 2.0;
    /// Sidetone masking rating, listener sidetone rating, dB.
    pub const STMR: f64 = 15.0;
    pub const LSTR: f64 = 18.0;
    /// D-value of the telephone, send side.
    pub const DS: f64 = 3.0;
    /// Talker echo loudness rating, weighted echo path loss, dB.
    pub const TELR: f64 = 65.0;
    pub const WEPL: f64 = 110.0;
    /// Circuit noise (dBm0p), noise floor (dBmp), room noise (dB(A)).
    pub const NC: f64 = -70.0;
    pub const NFOR: f64 = -64.0;
    pub const PS: f64 = 35.0;
    pub const PR: f64 = 35.0;
    /// Quantizing distortion units.
    pub const QDU: f64 = 1.0;
    /// Advantage factor: 0 for wired access (Table 3).
    pub const A: f64 = 0.0;
    /// §7.4 Idd: delay threshold mT (ms) and sharpness sT.
    pub const MT: f64 = 100.0;
}

/// G.107.1 §7: the wideband rating scale tops at Ro = 129 …
pub const RO_WIDEBAND: f64 = 129.0;
/// … and relates to the narrowband scale by the factor 1.29
/// (R_nb = R_wb / 1.29: G.107.1 clause 7 / Appendix I for the MOS mapping).
pub const WIDEBAND_SCALE: f64 = 1.29;

/// A speech codec's place in the E-model: equipment impairment Ie and
/// packet-loss robustness Bpl (G.113 Appendix I; G.113 Appendix IV for
/// wideband `Ie,wb`), whether it is rated on the wideband scale, and the
/// delay it adds at the sender (frame + look-ahead, ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Codec {
    /// G.711 (PCMU/PCMA, PT 0/8) with packet-loss concealment (G.711
    /// Appendix I): Ie = 0, Bpl = 25.1 (G.113 Table I.3). Every WebRTC
    /// stack and nearly every SIP phone conceals, so this is what a
    /// G.711 stream is rated as.
    G711Plc,
    /// G.711 without concealment: Ie = 0, Bpl = 4.3 (G.113 Table I.3,
    /// "random loss, no PLC"). Also the model's documented default.
    G711,
    /// G.722 at 64 kbit/s (PT 9), wideband: Ie,wb = 13 (G.113 Appendix IV,
    /// Table IV.1). Bpl = 10 is our assumption for its Appendix III/IV
    /// concealment (G.113 gives none for G.722).
    G722,
    /// Opus (a dynamic PT with a 48 kHz clock: the only common 48 kHz
    /// speech codec, and WebRTC's default), rated on the wideband scale
    /// (G.107.1): the proxy cannot tell which audio bandwidth Opus
    /// actually coded, and WebRTC voice at 20–32 kbit/s is wideband in
    /// practice. G.113 has no Opus entry: Ie,wb = 11 and Bpl = 20 are our
    /// estimates from published listening tests of Opus at ~24 kbit/s
    /// with its built-in concealment.
    Opus,
    /// An audio codec the proxy cannot name: rated as G.711 without
    /// concealment (Ie = 0, Bpl = 4.3), the least robust entry of the
    /// table, so an unknown codec never looks better than it is.
    Unknown,
}

impl Codec {
    /// Names the codec of an audio payload type from what the proxy knows
    /// (the RFC 3551 static table, and the clock rate of dynamic types).
    pub fn from_payload(pt: u8, clock_rate: Option<u32>) -> Codec {
        match (pt, clock_rate) {
            (0 | 8, _) => Codec::G711Plc,
            (9, _) => Codec::G722,
            (96..=127, Some(48_000)) => Codec::Opus,
            _ => Codec::Unknown,
        }
    }

    /// (Ie, Bpl): equipment impairment and packet-loss robustness.
    pub fn impairment(self) -> (f64, f64) {
        match self {
            Codec::G711Plc => (0.0, 25.1),
            Codec::G711 | Codec::Unknown => (0.0, 4.3),
            Codec::G722 => (13.0, 10.0),
            Codec::Opus => (11.0, 20.0),
        }
    }

    /// Rated on the G.107.1 wideband scale.
    pub fn wideband(self) -> bool {
        matches!(self, Codec::G722 | Codec::Opus)
    }

    /// Delay the codec adds at the sender, ms: one 20 ms packet of
    /// samples (the WebRTC and SIP default ptime) plus look-ahead (G.711
    /// and G.722: none; Opus: 6.5 ms, RFC 6716 §2.1.8 default).
    pub fn algorithmic_delay_ms(self) -> f64 {
        match self {
            Codec::Opus => 26.5,
            _ => 20.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::G711Plc => "G.711+PLC",
            Codec::G711 => "G.711",
            Codec::G722 => "G.722",
            Codec::Opus => "Opus",
            Codec::Unknown => "unknown",
        }
    }
}

/// What the E-model is fed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EModelInput {
    /// Absolute one-way delay Ta, ms (mouth to ear). The echo path delays
    /// follow from it: T = Ta (talker echo) and Tr = 2·Ta (listener echo
    /// round trip), G.107 §7.4 for a path with no other echo source.
    pub ta_ms: f64,
    /// Packet-loss probability Ppl, percent (0–100).
    pub ppl_percent: f64,
    /// BurstR (§7.5): 1 for random loss, > 1 for bursty loss.
    pub burst_r: f64,
    pub codec: Codec,
}

/// An E-model rating.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rating {
    /// R on the codec's own scale (0–100 narrowband, 0–129 wideband).
    pub r: f64,
    /// The same on the narrowband scale (R / 1.29 for wideband), the one
    /// MOS is computed from and ratings of different codecs compare on.
    pub r_narrowband: f64,
    pub mos: f64,
    pub wideband: bool,
}

/// Basic signal-to-noise ratio Ro (§7.2), simultaneous impairment Is
/// (§7.3) and the talker/listener echo part of Id (§7.4) at one-way delay
/// `t_ms` (T = Ta, Tr = 2T), with Table 3 defaults elsewhere.
struct Terms {
    ro: f64,
    is: f64,
    id: f64,
}

fn terms(ta_ms: f64) -> Terms {
    use defaults::*;
    let l10 = f64::log10;
    let (t, tr) = (ta_ms.max(0.0), 2.0 * ta_ms.max(0.0));
    // §7.2 (eq. 7-3 … 7-8): noise sources summed as powers.
    let olr = SLR + RLR;
    let nfo = NFOR + RLR;
    let pre = PR + 10.0 * l10(1.0 + 10f64.powf((10.0 - LSTR) / 10.0));
    let nor = RLR - 121.0 + pre + 0.008 * (pre - 35.0).powi(2);
    let nos = PS - SLR - DS - 100.0 + 0.004 * (PS - olr - DS - 14.0).powi(2);
    let no =
        10.0 * l10(10f64.powf(NC / 10.0) + 10f64.powf(nos / 10.0) + 10f64.powf(nor / 10.0) + 10f64.powf(nfo / 10.0));
    // (7-2) Ro = 15 − 1.5 (SLR + No)
    let ro = 15.0 - 1.5 * (SLR + no);

    // §7.3 Is = Iolr + Ist + Iq (7-9).
    // (7-10, 7-11) Iolr = 20 [(1 + (Xolr/8)^8)^(1/8) − Xolr/8]
    let xolr = olr + 0.2 * (64.0 + no - RLR);
    let iolr = 20.0 * ((1.0 + (xolr / 8.0).powi(8)).powf(1.0 / 8.0) - xolr / 8.0);
    // (7-12, 7-13) Ist from STMRo = −10 log(10^(−STMR/10) + e^(−T/4) 10^(−TELR/10))
    let stmro = -10.0 * l10(10f64.powf(-STMR / 10.0) + (-t / 4.0).exp() * 10f64.powf(-TELR / 10.0));
    let ist = 12.0 * (1.0 + ((stmro - 13.0) / 6.0).powi(8)).powf(1.0 / 8.0)
        - 28.0 * (1.0 + ((stmro + 1.0) / 19.4).powi(35)).powf(1.0 / 35.0)
        - 13.0 * (1.0 + ((stmro - 3.0) / 33.0).powi(13)).powf(1.0 / 13.0)
        + 29.0;
    // (7-14 … 7-18) Iq = 15 log(1 + 10^Y + 10^Z)
    let q = 37.0 - 15.0 * l10(QDU);
    let g = 1.07 + 0.258 * q + 0.0602 * q * q;
    let z = 46.0 / 30.0 - g / 40.0;
    let y = (ro - 100.0) / 15.0 + 46.0 / 8.4 - g / 9.0;
    let iq = 15.0 * l10(1.0 + 10f64.powf(y) + 10f64.powf(z));
    let is = iolr + ist + iq;

    // §7.4 Id = Idte + Idle + Idd (7-19).
    // (7-21, 7-22) TERV = TELR − 40 log((1 + T/10)/(1 + T/150)) + 6 e^(−0.3 T²)
    // (STMR ≥ 9 at defaults, so no Ist/2 correction).
    let terv = TELR - 40.0 * l10((1.0 + t / 10.0) / (1.0 + t / 150.0)) + 6.0 * (-0.3 * t * t).exp();
    // (7-20) Idte = [(Roe − Re)/2 + √((Roe − Re)²/4 + 100) − 1] (1 − e^(−T))
    let roe = -1.5 * (no - RLR);
    let re = 80.0 + 2.5 * (terv - 14.0);
    let idte = ((roe - re) / 2.0 + ((roe - re).powi(2) / 4.0 + 100.0).sqrt() - 1.0) * (1.0 - (-t).exp());
    // (7-25, 7-26) Idle = (Ro − Rle)/2 + √((Ro − Rle)²/4 + 169),
    // Rle = 10.5 (WEPL + 7)(Tr + 1)^(−0.25)
    let rle = 10.5 * (WEPL + 7.0) * (tr + 1.0).powf(-0.25);
    let idle = (ro - rle) / 2.0 + ((ro - rle).powi(2) / 4.0 + 169.0).sqrt();
    // (7-27, 7-28) Idd = 0 for Ta ≤ mT, else
    // 25 {(1 + X⁶)^(1/6) − 3 (1 + (X/3)⁶)^(1/6) + 2}, X = log(Ta/mT)/log 2
    // (sT = 1, the default).
    let idd = if ta_ms <= MT {
        0.0
    } else {
        let x = l10(ta_ms / MT) / l10(2.0);
        25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0) + 2.0)
    };
    Terms {
        ro,
        is,
        id: idte + idle + idd,
    }
}

/// §7.5 (7-29): effective equipment impairment under random or bursty loss,
/// Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl/BurstR + Bpl).
pub fn ie_eff(ie: f64, bpl: f64, ppl_percent: f64, burst_r: f64) -> f64 {
    let ppl = ppl_percent.clamp(0.0, 100.0);
    let burst_r = if burst_r.is_finite() && burst_r >= 1.0 {
        burst_r
    } else {
        1.0
    };
    ie + (95.0 - ie) * ppl / (ppl / burst_r + bpl)
}

/// Annex B (B-4): MOS from a narrowband R:
/// 1 for R < 0; 1 + 0.035 R + R (R − 60)(100 − R) · 7·10⁻⁶ for 0 ≤ R ≤ 100;
/// 4.5 above.
pub fn mos_from_r(r: f64) -> f64 {
    if r < 0.0 {
        1.0
    } else if r > 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

/// The rating for `input`.
///
/// Narrowband (§7.1, 7-1): R = Ro − Is − Id − Ie,eff + A.
///
/// Wideband (G.107.1): R_wb = 129 − 1.29 (Is + Id) − Ie,eff,wb + A. Our
/// choice, documented: the simultaneous and delay impairments are the
/// narrowband ones at default terminal parameters, carried to the wideband
/// scale by its factor 1.29 (G.107.1 keeps G.107's delay model); Ie,eff,wb
/// is (7-29) unchanged with the codec's Ie,wb and Bpl. MOS from R_wb / 1.29 by Annex B, so an ideal wideband call is
/// MOS 4.5 and an ideal narrowband one 4.41.
pub fn rate(input: EModelInput) -> Rating {
    let Terms { ro, is, id } = terms(input.ta_ms);
    let (ie, bpl) = input.codec.impairment();
    if input.codec.wideband() {
        let ie_eff_wb = ie_eff(ie, bpl, input.ppl_percent, input.burst_r);
        let r = RO_WIDEBAND - WIDEBAND_SCALE * (is + id) - ie_eff_wb + defaults::A;
        let r_nb = r / WIDEBAND_SCALE;
        Rating {
            r,
            r_narrowband: r_nb,
            mos: mos_from_r(r_nb),
            wideband: true,
        }
    } else {
        let r = ro - is - id - ie_eff(ie, bpl, input.ppl_percent, input.burst_r) + defaults::A;
        Rating {
            r,
            r_narrowband: r,
            mos: mos_from_r(r),
            wideband: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn default_parameters_give_r_93_2() {
        // G.107 §7 / Table 3: "the default values … result in R = 93.2".
        let t = terms(0.0);
        assert!(close(t.ro, 94.7688, 1e-3), "Ro {}", t.ro);
        assert!(close(t.is, 1.4136, 1e-3), "Is {}", t.is);
        assert!(close(t.id, 0.1490, 1e-3), "Id {}", t.id);
        let r = rate(EModelInput {
            ta_ms: 0.0,
            ppl_percent: 0.0,
            burst_r: 1.0,
            codec: Codec::G711,
        });
        assert_eq!((r.r * 10.0).round() / 10.0, 93.2);
        // Annex B at R = 93.2: 4.41.
        assert!(close(r.mos, 4.4094, 1e-3), "{}", r.mos);
    }

    #[test]
    fn annex_b_mos_mapping() {
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(0.0), 1.0);
        // R = 50: 1 + 1.75 + 50·(−10)·50·7e-6 = 2.575.
        assert!(close(mos_from_r(50.0), 2.575, 1e-12));
        // R = 100: 1 + 3.5 + 0 = 4.5.
        assert!(close(mos_from_r(100.0), 4.5, 1e-12));
        assert_eq!(mos_from_r(120.0), 4.5);
    }

    #[test]
    fn ie_eff_random_and_bursty() {
        // (7-29) by hand: G.711+PLC, 3 % random: 95·3/(3 + 25.1) = 10.142.
        assert!(close(ie_eff(0.0, 25.1, 3.0, 1.0), 285.0 / 28.1, 1e-9));
        // BurstR 2: 95·3/(1.5 + 25.1) = 10.714: bursty loss hurts more.
        assert!(close(ie_eff(0.0, 25.1, 3.0, 2.0), 285.0 / 26.6, 1e-9));
        assert_eq!(ie_eff(11.0, 20.0, 0.0, 1.0), 11.0);
    }

    #[test]
    fn hand_computed_table() {
        use Codec::*;
        // (loss %, BurstR, Ta ms, codec) → (R, MOS), computed by hand from
        // the formulas of this module's clauses (Ro 94.769, Is 1.414 at
        // defaults; Id and Ie,eff per row in the comment).
        let table = [
            // Id 0.149, Ie,eff 0: the reference case.
            (0.0, 1.0, 0.0, G711Plc, 93.2062, 4.4094),
            // Ie,eff = 95·3/28.1 = 10.142.
            (3.0, 1.0, 0.0, G711Plc, 83.0639, 4.1344),
            // Ie,eff = 95·3/26.6 = 10.714.
            (3.0, 2.0, 0.0, G711Plc, 82.4919, 4.1146),
            // No PLC: Ie,eff = 95·3/7.3 = 39.041.
            (3.0, 1.0, 0.0, G711, 54.1651, 2.7944),
            // Id 3.816 (Idte 3.45 + Idle 0.37; Idd 0 below 100 ms), Ie,eff 3.640.
            (1.0, 1.0, 150.0, G711Plc, 85.8993, 4.2261),
            // Id 20.689 (Idd 16.0 at X = log2 3), Ie,eff = 95·5/26.77 = 17.746.
            (5.0, 3.0, 300.0, G711Plc, 54.9204, 2.8342),
            // Wideband: 129 − 1.29·(1.414 + 1.599) − (13 + 82·2/12) = 98.447; /1.29 → MOS.
            (2.0, 1.0, 50.0, G722, 98.4470, 3.8775),
            // 129 − 1.29·(1.414 + 2.692) − (11 + 84·3/21.5) = 100.984.
            (3.0, 2.0, 100.0, Opus, 100.9835, 3.9574),
            // Unknown codec: G.711 without PLC, 10 %: Ie,eff = 950/14.3 = 66.434.
            (10.0, 1.0, 0.0, Unknown, 26.7726, 1.4810),
            // Delay only: Id 7.551 (Idd 3.96 at 200 ms).
            (0.0, 1.0, 200.0, G711Plc, 85.8047, 4.2232),
        ];
        for (loss, burst_r, ta, codec, want_r, want_mos) in table {
            let got = rate(EModelInput {
                ta_ms: ta,
                ppl_percent: loss,
                burst_r,
                codec,
            });
            assert!(
                close(got.r, want_r, 2e-3) && close(got.mos, want_mos, 2e-3),
                "{loss} % × {burst_r}, {ta} ms, {codec:?}: {got:?}, want R {want_r} MOS {want_mos}"
            );
        }
    }

    #[test]
    fn codec_from_payload() {
        assert_eq!(Codec::from_payload(0, Some(8000)), Codec::G711Plc);
        assert_eq!(Codec::from_payload(8, Some(8000)), Codec::G711Plc);
        assert_eq!(Codec::from_payload(9, Some(8000)), Codec::G722);
        assert_eq!(Codec::from_payload(111, Some(48_000)), Codec::Opus);
        assert_eq!(Codec::from_payload(111, None), Codec::Unknown);
        assert_eq!(Codec::from_payload(18, Some(8000)), Codec::Unknown);
        assert!(Codec::Opus.wideband() && !Codec::G711Plc.wideband());
    }
}

/// One stream's quality as the proxy rates it, per leg: the leg the
/// stream arrived on (loss, jitter and delay measured between its sender
/// and the proxy).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamQuality {
    pub codec: Codec,
    /// "G.107" or "G.107.1" (wideband scale).
    pub model: &'static str,
    /// Ppl, percent, and BurstR the rating used (burst model on arrival).
    pub loss_percent: f64,
    pub burst_r: f64,
    /// De-jitter buffer delay estimate, ms: twice the jitter.
    pub jitter_buffer_ms: f64,
    /// The leg's one-way delay (RTT/2), ms, when an RTT is known.
    pub one_way_delay_ms: Option<f64>,
    /// Ta the conversational rating used, ms.
    pub ta_ms: f64,
    /// Conversational R on the codec's scale (with delay; Ta without the
    /// network part when the leg's RTT is unknown) and narrowband-scale R.
    pub r_factor: f64,
    pub r_narrowband: f64,
    /// Listening quality: no delay impairment (RFC 3611 §4.7.5 MOS-LQ).
    pub mos_lq: f64,
    /// Conversational quality, with delay (MOS-CQ): only with a leg RTT.
    pub mos_cq: Option<f64>,
}

/// Rates one audio stream. `jitter_secs` is its interarrival jitter (RFC
/// 3550 A.8, seconds), `rtt_secs` the round-trip time of the leg it came
/// over.
///
/// Choices, documented:
/// * de-jitter buffer = 2 × jitter: an adaptive playout buffer (libwebrtc
///   NetEq, SIP phones' adaptive buffers) holds about two mean deviations
///   of arrival delay to keep late loss low;
/// * Ta = RTT/2 + buffer + the codec's frame and look-ahead: the leg's
///   share of mouth-to-ear delay as far as the proxy sees it (the other
///   leg is rated on its own streams);
/// * Ppl and BurstR from the loss model on arrival ([`crate::stats::burst`]).
pub fn stream_quality(
    codec: Codec,
    loss: &crate::stats::burst::BurstMetrics,
    jitter_secs: Option<f64>,
    rtt_secs: Option<f64>,
) -> StreamQuality {
    let jitter_buffer_ms = 2.0 * jitter_secs.unwrap_or(0.0) * 1e3;
    let one_way = rtt_secs.map(|r| r * 1e3 / 2.0);
    let ta_ms = one_way.unwrap_or(0.0) + jitter_buffer_ms + codec.algorithmic_delay_ms();
    let input = |ta_ms| EModelInput {
        ta_ms,
        ppl_percent: loss.loss_rate * 100.0,
        burst_r: loss.burst_r,
        codec,
    };
    let cq = rate(input(ta_ms));
    let lq = rate(input(0.0));
    StreamQuality {
        codec,
        model: if codec.wideband() { "G.107.1" } else { "G.107" },
        loss_percent: loss.loss_rate * 100.0,
        burst_r: loss.burst_r,
        jitter_buffer_ms,
        one_way_delay_ms: one_way,
        ta_ms,
        r_factor: cq.r,
        r_narrowband: cq.r_narrowband,
        mos_lq: lq.mos,
        mos_cq: one_way.map(|_| cq.mos),
    }
}
