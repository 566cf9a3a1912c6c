//! One relayed flow: a client and its upstream, two sides, and every source
//! (SSRC) seen on each side.

use super::counters::{Counters, KindCounts};
use super::mode::RtcpMode;
use super::{SessionId, Side};
use crate::stats::{Arrivals, ReceiveStats, RemoteReport, RttMethod, RttReject, RttStats, SenderRecord, SentLog};
use crate::time::MonoTime;
use crate::wire::rtcp::{FeedbackKind, ReportBlock, RtcpPacket, StatsSummary, VoipMetrics, XrBlock};
use crate::wire::rtp::RtpView;
use crate::wire::stun::{StunClass, StunView, METHOD_BINDING};
use crate::wire::Ssrc;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// Addresses of the session's two legs, as the runtime (or a capture) saw them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The client's address (client leg).
    pub client: SocketAddr,
    /// The upstream's address (upstream leg).
    pub upstream: SocketAddr,
}

/// Feedback messages the other side sent about a source (W3C nackCount,
/// pliCount, firCount on its inbound-rtp, counted where the proxy sees them).
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackCounts {
    pub nack: u64,
    pub pli: u64,
    pub fir: u64,
    pub remb: u64,
    pub transport_cc: u64,
    pub other: u64,
}

/// RTP stream state of a source.
#[derive(Clone, Debug)]
/// `repr(C)` with the payload type (compared on every packet) ahead of the
/// receive state's hot fields, not behind its cold ones.
#[repr(C)]
pub struct RtpStream {
    pub payload_type: u8,
    pub stats: ReceiveStats,
}

/// Everything known about one SSRC sent from one side. `repr(C)` puts what
/// every packet reads first: the SSRC and RTX/FEC roles (a few bytes), then
/// the per-packet receive state, in the entry's leading cache lines.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Source {
    pub ssrc: Ssrc,
    /// Without SDP: what the stream's first payloads said about being an
    /// RTX stream ([`RtxGuess`]).
    pub rtx_guess: RtxGuess,
    /// An RTX stream (RFC 4588, known from the session's SDP): its packets
    /// are retransmissions, it gets no jitter of its own, and it is
    /// reported inside its primary stream (`Some(primary)`) once that is
    /// known.
    pub rtx: Option<Option<Ssrc>>,
    /// A FlexFEC stream (RFC 8627, known from the SDP): no jitter of its
    /// own; reported inside the primary of its FEC-FR group when known.
    pub fec: Option<Option<Ssrc>>,
    pub rtp: Option<RtpStream>,
    /// Latest SR from this source.
    pub sender_report: Option<SenderRecord>,
    /// SRs from this source that the proxy forwarded (for LSR matching).
    pub sr_log: SentLog,
    /// XR RRTRs from this source that the proxy forwarded (for DLRR matching).
    pub rrtr_log: SentLog,
    /// Latest report block about this source from the other side.
    pub remote: Option<RemoteReport>,
    /// RTT of this source's own leg from the DLRR it sent, answering RRTRs
    /// from the other side (W3C remote-outbound-rtp `roundTripTime`).
    pub xr_rtt: RttStats,
    pub feedback: FeedbackCounts,
    pub bye: bool,
    /// `auto`: the receiver stopped reporting on this source, so the proxy
    /// generates report blocks about it.
    pub generating: bool,
    /// RTP packets counted at the leg's last report tick (`auto`/
    /// `terminate`): a source with none since gets no report block (RFC
    /// 3550 §6.4). Per source, so an idle session pays nothing for it.
    pub packets_at_tick: Option<u64>,
    /// The last report tick found no RTP from this source since the tick
    /// before: a paused or stopped stream, which its receiver rightly
    /// stops reporting (RFC 3550 §6.4).
    pub quiet: bool,
    /// `auto`: the first report tick that heard the stream again after a
    /// pause; suppression is timed from here.
    pub quiet_at: Option<MonoTime>,
    /// SRTCP compounds this source sent that the proxy could not read
    /// (RFC 3711 §3.4 leaves the header and sender SSRC in clear).
    pub srtcp_packets: u64,
    /// Keyless: the E flag and 31-bit index of its last SRTCP compound, read
    /// from the clear trailer (see [`srtcp_trailer_guess`]).
    pub srtcp_last: Option<(bool, u32)>,
    /// ULPFEC packets (RFC 5109) inside RED (RFC 2198) on this stream's
    /// own SSRC (W3C `fecPacketsReceived`).
    pub ulpfec_packets: u64,
    /// The latest RFC 3611 Statistics Summary and VoIP Metrics blocks the
    /// receiver on the other side sent about this source (SIP phones do;
    /// Chrome does not). Boxed: most sources never get one.
    pub remote_xr: Option<Box<RemoteXr>>,
}

/// Recognising an RTX stream (RFC 4588) in a session without SDP: an RTX
/// payload starts with the original sequence number (OSN) of a packet of
/// its primary, so the OSNs of a real RTX stream fall just behind its
/// primary's highest sequence number (within the misorder window), packet
/// after packet. The first [`RTX_GUESS_PACKETS`] packets with a payload
/// (padding-only probes say nothing) are checked against the other streams
/// of the side; [`RTX_GUESS_HITS`] of them on one primary make the stream
/// that primary's RTX. A stream that is not RTX hits a 450-number window
/// of a 65 536 space by chance with p ≈ 0.007 per packet and stream, so 12
/// of 16 by chance is about 1e-20; a real one hits nearly always. Checking
/// stops after those packets: a stream pays nothing for it afterwards.
#[derive(Clone, Copy, Debug, Default)]
pub struct RtxGuess {
    checked: u8,
    hits: u8,
    primary: Option<Ssrc>,
}

pub const RTX_GUESS_PACKETS: u8 = 16;
pub const RTX_GUESS_HITS: u8 = 12;

/// XR quality blocks about a source, as its receiver sent them.
#[derive(Clone, Copy, Debug, Default)]
pub struct RemoteXr {
    pub stats_summary: Option<StatsSummary>,
    pub voip_metrics: Option<VoipMetrics>,
    pub received_at: MonoTime,
}

/// Reads the SRTCP E flag and index without keys. The trailer's place
/// depends on the suite, which is unknown: after an 80-bit tag for the
/// HMAC-SHA1 suites (10 bytes), at the very end for AES-GCM (RFC 7714 §9,
/// the tag sits inside). The candidate that continues the sender's previous
/// index wins. Otherwise an encrypted (E = 1) reading with the smaller
/// index: endpoints count up from small numbers, while the wrong reading
/// lands in tag or ciphertext bytes, a uniformly random 31-bit value.
pub fn srtcp_trailer_guess(datagram: &[u8], previous: Option<(bool, u32)>) -> Option<(bool, u32)> {
    let candidates = [10usize, 0].map(|tag| crate::srtp::srtcp_trailer(datagram, tag));
    if let Some((_, prev)) = previous {
        let next = prev.wrapping_add(1) & 0x7fff_ffff;
        if let Some(hit) = candidates.iter().flatten().find(|(_, i)| *i == next) {
            return Some(*hit);
        }
    }
    candidates
        .iter()
        .flatten()
        .filter(|(e, _)| *e)
        .min_by_key(|(_, i)| *i)
        .copied()
        .or(candidates[0])
}

impl Source {
    fn new(ssrc: Ssrc) -> Self {
        Source {
            ssrc,
            rtp: None,
            sender_report: None,
            sr_log: SentLog::default(),
            rrtr_log: SentLog::default(),
            remote: None,
            xr_rtt: RttStats::default(),
            feedback: FeedbackCounts::default(),
            bye: false,
            generating: false,
            packets_at_tick: None,
            quiet: false,
            quiet_at: None,
            srtcp_packets: 0,
            srtcp_last: None,
            rtx: None,
            rtx_guess: RtxGuess::default(),
            fec: None,
            ulpfec_packets: 0,
            remote_xr: None,
        }
    }
}

/// RTT of one leg (proxy ↔ the endpoint on that side), by method.
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LegRtt {
    pub sr_rr: RttStats,
    pub xr_dlrr: RttStats,
    pub stun: RttStats,
}

impl LegRtt {
    fn add(&mut self, rtt: Duration, method: RttMethod) {
        match method {
            RttMethod::SrRr => self.sr_rr.add(rtt, method),
            RttMethod::XrDlrr => self.xr_dlrr.add(rtt, method),
            RttMethod::Stun => self.stun.add(rtt, method),
        }
    }
}

/// How many SSRCs per side are indexed inline, in the session's own cache
/// lines (a call has one to four per direction); more spill to a Vec.
const INLINE_SSRCS: usize = 4;

/// What arrived from one side. `repr(C)` keeps the fields the per-packet
/// path touches (activity, counts, SSRC index, sources pointer) together
/// at the front, away from the RTCP-only state.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct SideState {
    pub last_activity: Option<MonoTime>,
    /// SSRC index parallel to `sources`: a scan of packed u32s finds a
    /// source faster than a hash for the handful a session carries.
    inline_ssrcs: [Ssrc; INLINE_SSRCS],
    n_ssrcs: usize,
    pub sources: Vec<Source>,
    pub received: KindCounts,
    more_ssrcs: Vec<Ssrc>,
    /// When this leg's next report tick is due (`auto`/`terminate`).
    pub next_report: Option<MonoTime>,
    /// RTCP-only state, out of line: the packet path never touches it, and
    /// keeping it here would double the session's size in the slot table.
    pub rtcp: Box<SideRtcp>,
}

/// What RTCP taught the proxy about one side's leg.
#[derive(Clone, Debug, Default)]
pub struct SideRtcp {
    /// RTT of this side's leg.
    pub rtt: LegRtt,
    /// RTCP report packets seen from this side.
    pub reports: u64,
    pub unreadable: u64,
    /// XR RRTRs the proxy sent toward this side (its DLRR gives this leg's RTT).
    pub own_rrtr_log: SentLog,
    pub reports_generated: u64,
    /// STUN binding requests from this side still waiting for an answer.
    pub stun_pending: StunPending,
    /// STUN responses from this side that answered a forwarded request.
    pub stun_responses: u64,
    /// STUN binding requests seen from this side.
    pub stun_requests: u64,
    /// The oldest of this side's binding requests the other side has not
    /// answered since its last answer (RFC 7675 consent: ICE agents give
    /// up 30 s after the last answered check).
    pub unanswered_since: Option<MonoTime>,
    /// SRTCP from this side that failed authentication with provisioned keys.
    pub srtcp_auth_failures: u64,
    /// SRTCP from this side opened with provisioned keys.
    pub srtcp_opened: u64,
}

/// How many outstanding STUN transactions per side are remembered. ICE
/// consent checks run every ~5 s (RFC 7675) and connectivity checks come in
/// small bursts; older ones are overwritten.
pub const STUN_PENDING: usize = 4;

/// A STUN request older than this is not matched (RFC 8489 §6.2.1 gives up
/// after 39.5 s; a useful RTT sample is far younger).
pub const STUN_MAX_AGE: Duration = Duration::from_secs(10);

/// Ring of (transaction id, forwarded at, retransmitted) for requests from
/// one side; an all-zero id marks an empty slot.
#[derive(Clone, Debug, Default)]
pub struct StunPending {
    entries: [([u8; 12], MonoTime, bool); STUN_PENDING],
    next: u8,
}

impl StunPending {
    /// Records a forwarded request; returns true when that evicted an
    /// unanswered request younger than [`STUN_MAX_AGE`] (the cap was hit).
    /// A retransmission (same transaction id) takes no new slot and marks
    /// the transaction: its answer cannot say which copy it answers.
    pub fn record(&mut self, txid: [u8; 12], at: MonoTime) -> bool {
        if txid != [0; 12] {
            if let Some(entry) = self.entries.iter_mut().find(|(t, ..)| *t == txid) {
                entry.2 = true;
                return false;
            }
        }
        let (old, old_at, _) = self.entries[usize::from(self.next)];
        let evicted = old != [0; 12] && at.checked_since(old_at).is_some_and(|age| age <= STUN_MAX_AGE);
        self.entries[usize::from(self.next)] = (txid, at, false);
        self.next = (self.next + 1) % STUN_PENDING as u8;
        evicted
    }

    /// Removes the request with `txid`: when it was forwarded, and whether
    /// it was retransmitted.
    pub fn take(&mut self, txid: &[u8; 12]) -> Option<(MonoTime, bool)> {
        if *txid == [0; 12] {
            return None;
        }
        let slot = self.entries.iter_mut().find(|(t, ..)| t == txid)?;
        let (_, at, retransmitted) = *slot;
        *slot = ([0; 12], MonoTime::ZERO, false);
        Some((at, retransmitted))
    }
}

impl SideState {
    #[inline]
    pub fn position(&self, ssrc: Ssrc) -> Option<usize> {
        let inline = self.n_ssrcs.min(INLINE_SSRCS);
        match self.inline_ssrcs[..inline].iter().position(|s| *s == ssrc) {
            Some(i) => Some(i),
            None => self
                .more_ssrcs
                .iter()
                .position(|s| *s == ssrc)
                .map(|i| i + INLINE_SSRCS),
        }
    }

    pub fn source(&self, ssrc: Ssrc) -> Option<&Source> {
        self.position(ssrc).map(|i| &self.sources[i])
    }

    /// The source's entry, created if there is room under `cap`.
    fn source_mut(&mut self, ssrc: Ssrc, cap: usize) -> Option<&mut Source> {
        let i = match self.position(ssrc) {
            Some(i) => i,
            None if self.n_ssrcs < cap => self.push_source(ssrc),
            None => return None,
        };
        Some(&mut self.sources[i])
    }

    /// Appends an entry for a new SSRC; returns its index.
    fn push_source(&mut self, ssrc: Ssrc) -> usize {
        // Grow 1, 2, 4, …: Vec's first allocation would hold four
        // ~900-byte sources where most sides carry one or two.
        if self.sources.len() == self.sources.capacity() {
            self.sources.reserve_exact(self.sources.capacity().max(1));
        }
        match self.inline_ssrcs.get_mut(self.n_ssrcs) {
            Some(slot) => *slot = ssrc,
            None => self.more_ssrcs.push(ssrc),
        }
        self.sources.push(Source::new(ssrc));
        self.n_ssrcs += 1;
        self.n_ssrcs - 1
    }

    /// An existing source's entry; never creates one (report blocks about
    /// SSRCs the proxy carries no media of).
    fn known_mut(&mut self, ssrc: Ssrc) -> Option<&mut Source> {
        self.position(ssrc).map(|i| &mut self.sources[i])
    }

    /// An entry for a new media stream (an SSRC not in the table): created
    /// under `cap`, or when the table is full in place of a source that
    /// ended (BYE), never sent media, or sent none for [`SOURCE_IDLE`] (the
    /// stalest goes). A room with joins and leaves keeps measuring its
    /// newest participants. Returns the entry's index.
    fn new_media_source(&mut self, ssrc: Ssrc, cap: usize, now: MonoTime) -> Option<usize> {
        if self.n_ssrcs < cap {
            return Some(self.push_source(ssrc));
        }
        let last_media = |s: &Source| s.rtp.as_ref().map(|r| r.stats.last_arrival());
        let victim = self
            .sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.bye || last_media(s).is_none_or(|t| now.saturating_since(t) >= SOURCE_IDLE))
            .min_by_key(|(_, s)| (!s.bye, last_media(s)))
            .map(|(i, _)| i)?;
        self.sources[victim] = Source::new(ssrc);
        match self.inline_ssrcs.get_mut(victim) {
            Some(slot) => *slot = ssrc,
            None => self.more_ssrcs[victim - INLINE_SSRCS] = ssrc,
        }
        Some(victim)
    }
}

/// A source that sent no media for this long gives its place to a new one
/// when the table is full.
pub const SOURCE_IDLE: Duration = Duration::from_secs(10);

/// Whether `ssrc` (first seen with payload type `pt` on `side`) is an RTX
/// stream, and of which primary: its FID group names it, or its payload
/// type is an RTX one (`apt`) and exactly one stream on the side carries
/// the payload type it retransmits (RFC 4588 §8: one RTX stream per
/// original stream, session-multiplexed).
/// Whether `ssrc` (first seen with payload type `pt`) is a FlexFEC stream,
/// and which primary it protects (FEC-FR group; `Some(None)`: unknown).
fn fec_role(media: &super::media::MediaMap, ssrc: Ssrc, pt: u8) -> Option<Option<Ssrc>> {
    match media.fec_primary_of(ssrc) {
        Some(primary) => Some(Some(primary)),
        None => media.is_flexfec(pt).then_some(None),
    }
}

/// Whether a RED payload (RFC 2198 §3: 4-byte headers with the F bit set,
/// then a 1-byte last header) carries a block of an ULPFEC payload type.
fn red_carries_ulpfec(media: &super::media::MediaMap, payload: &[u8]) -> bool {
    let mut at = 0;
    while let Some(&b) = payload.get(at) {
        if media.is_ulpfec(b & 0x7f) {
            return true;
        }
        if b & 0x80 == 0 {
            return false;
        }
        at += 4;
    }
    false
}

fn rtx_role(media: &super::media::MediaMap, side: &SideState, ssrc: Ssrc, pt: u8) -> Option<Option<Ssrc>> {
    if let Some(primary) = media.primary_of(ssrc) {
        return Some(Some(primary));
    }
    let apt = media.apt(pt)?;
    let mut primaries = side
        .sources
        .iter()
        .filter(|s| s.ssrc != ssrc && s.rtx.is_none() && s.rtp.as_ref().is_some_and(|r| r.payload_type == apt));
    let primary = primaries.next().map(|s| s.ssrc);
    Some(primary.filter(|_| primaries.next().is_none()))
}

/// A non-mux session's RTCP addresses (RFC 3550 §11: RTCP on its own port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonMux {
    /// The client's RTCP address, learned from its first RTCP (until then
    /// its RTP port + 1).
    pub client_rtcp: Option<SocketAddr>,
    /// The upstream's RTCP address.
    pub upstream_rtcp: SocketAddr,
}

/// `repr(C)` with what every datagram reads first (identity, addresses,
/// relay, the flags and the pointers a packet is checked against), so the
/// packet path reads one header line and the sending side's counters and
/// SSRC index, not fields strewn behind both sides.
#[repr(C)]
pub struct Session {
    pub id: SessionId,
    /// The `[[relay]]` the session belongs to (index in config order;
    /// 16 bits fill padding beside the flags).
    pub relay: u16,
    /// DTLS was seen: RTCP here is SRTCP and its bodies are ciphertext.
    pub encrypted: bool,
    /// The SRTP suite when known (the DTLS ServerHello's `use_srtp`, or
    /// provisioned keys): RTP payload counts then leave its tag out.
    pub srtp_suite: Option<crate::srtp::CryptoSuite>,
    /// Sides whose rate limit has bitten (bit = side index): announced once.
    pub rate_limited: u8,
    pub mode: RtcpMode,
    /// Where the client and the upstream are: the one record of it (the
    /// engine's route map indexes it, NAT rebinding moves it).
    pub info: SessionInfo,
    /// Back-to-back DTLS-SRTP, once bound to a call (`dtls = "terminate"`).
    pub dtls: Option<Box<super::dtls::BackToBack>>,
    /// RTX payload types and SSRC groups from the session's SDP.
    pub media: Option<Box<super::media::MediaMap>>,
    /// RTCP's own ports on a non-mux relay (boxed: most sessions are
    /// rtcp-mux and pay one pointer).
    pub non_mux: Option<Box<NonMux>>,
    pub sides: [SideState; 2],
    pub opened_at: MonoTime,
    /// The proxy's own SSRC and CNAME in this session's generated reports.
    pub own_ssrc: Ssrc,
    /// The proxy's CNAME in this session is `rtp-middlebox-` and these 64
    /// random bits in hex ([`Session::cname`]): written only into reports,
    /// so formatted there rather than held per session.
    pub cname_bits: u64,
    /// SRTCP contexts when keys were provisioned (SDES).
    pub crypto: Option<Box<super::crypto::SessionCrypto>>,
    /// Per-side packet rate buckets (`[limits] max_packets_per_session_per_sec`).
    pub buckets: [super::admission::Bucket; 2],
}

/// What the RTP path tells the engine after accounting a packet.
pub enum RtpOutcome {
    Counted,
    NewSource(Ssrc, u8),
    SourceLimit,
}

impl Session {
    /// The proxy's CNAME in this session's reports (RFC 3550 §6.5.1).
    pub fn cname(&self) -> String {
        format!("rtp-middlebox-{:016x}", self.cname_bits)
    }

    pub fn new(
        id: SessionId,
        info: SessionInfo,
        now: MonoTime,
        mode: RtcpMode,
        own_ssrc: Ssrc,
        cname_bits: u64,
    ) -> Self {
        Session {
            id,
            info,
            relay: 0,
            non_mux: None,
            opened_at: now,
            sides: [SideState::default(), SideState::default()],
            encrypted: false,
            srtp_suite: None,
            mode,
            own_ssrc,
            cname_bits,
            crypto: None,
            // Full at 2^20 tokens: the real rate and burst clamp it on first use.
            buckets: [super::admission::Bucket::full(f64::from(1u32 << 20), now); 2],
            media: None,
            dtls: None,
            rate_limited: 0,
        }
    }

    pub fn last_activity(&self) -> MonoTime {
        let [a, b] = &self.sides;
        a.last_activity.max(b.last_activity).unwrap_or(self.opened_at)
    }

    /// The per-packet path: one SSRC scan and the A.1/A.8 update.
    #[inline]
    pub fn on_rtp(
        &mut self,
        now: MonoTime,
        side: Side,
        rtp: &RtpView<'_>,
        clock_rate: impl FnOnce(u8) -> Option<u32>,
        cap: usize,
    ) -> RtpOutcome {
        let ssrc = rtp.ssrc();
        let pt = rtp.payload_type();
        // One SSRC scan per packet; a stream's first packet also decides
        // its RTX role (sessions with SDP attached only) and its place.
        let index = match self.sides[side.index()].position(ssrc) {
            Some(i) => i,
            None => {
                let state = &self.sides[side.index()];
                let rtx = self.media.as_deref().and_then(|m| rtx_role(m, state, ssrc, pt));
                let fec = self.media.as_deref().and_then(|m| fec_role(m, ssrc, pt));
                let state = &mut self.sides[side.index()];
                let Some(i) = state.new_media_source(ssrc, cap, now) else {
                    return RtpOutcome::SourceLimit;
                };
                state.sources[i].rtx = rtx;
                state.sources[i].fec = fec;
                i
            }
        };
        if self.media.is_none() {
            self.guess_rtx(side, index, rtp);
        }
        // The session's SDP (`a=rtpmap`) names the clock first; the relay's
        // table covers sessions without one.
        let media = self.media.as_deref();
        let clock_rate = |pt: u8| media.and_then(|m| m.clock_rate(pt)).or_else(|| clock_rate(pt));
        if let Some(m) = self.media.as_deref().filter(|m| m.is_red(rtp.payload_type())) {
            if red_carries_ulpfec(m, rtp.payload()) {
                self.sides[side.index()].sources[index].ulpfec_packets += 1;
            }
        }
        let source = &mut self.sides[side.index()].sources[index];
        if let Some(Some(primary)) = source.rtx {
            // RFC 4588 §4: an RTX payload starts with the original sequence
            // number; a packet its primary misses is repaired by it.
            // Padding-only probes carry none.
            if let Some(osn) = rtp.payload().get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) {
                let state = &mut self.sides[side.index()];
                if let Some(p) = state.position(primary) {
                    if let Some(stream) = state.sources[p].rtp.as_mut() {
                        stream.stats.repair(osn);
                    }
                }
            }
        }
        let source = &mut self.sides[side.index()].sources[index];
        match &mut source.rtp {
            Some(stream) => {
                if stream.payload_type != pt {
                    // A PT switch (e.g. to comfort noise or RED) can change
                    // the clock; A.8 needs one clock per estimate.
                    stream.payload_type = pt;
                    let rate = if source.rtx.is_some() { None } else { clock_rate(pt) };
                    stream.stats.set_clock_rate(rate);
                }
                stream.stats.on_rtp(now, rtp);
                RtpOutcome::Counted
            }
            None => {
                // Retransmitted timestamps are the original ones, and FEC
                // packets' are the protected packets': no jitter.
                let rate = if source.rtx.is_some() || source.fec.is_some() {
                    None
                } else {
                    clock_rate(pt)
                };
                let mut stats = ReceiveStats::new(rtp.seq(), rate, now);
                stats.on_rtp(now, rtp);
                source.rtp = Some(RtpStream {
                    payload_type: pt,
                    stats,
                });
                RtpOutcome::NewSource(ssrc, pt)
            }
        }
    }

    /// One step of [`RtxGuess`] for the stream at `index` on `side`.
    fn guess_rtx(&mut self, side: Side, index: usize, rtp: &RtpView<'_>) {
        let state = &mut self.sides[side.index()];
        let guess = state.sources[index].rtx_guess;
        if state.sources[index].rtx.is_some() || guess.checked >= RTX_GUESS_PACKETS {
            return;
        }
        let Some(osn) = rtp.payload().get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return;
        };
        let pt = rtp.payload_type();
        let hit = state.sources.iter().enumerate().find_map(|(j, other)| {
            let stream = other.rtp.as_ref()?;
            (j != index && other.rtx.is_none() && stream.payload_type != pt && stream.stats.just_behind(osn))
                .then_some(other.ssrc)
        });
        let g = &mut state.sources[index].rtx_guess;
        g.checked += 1;
        if let Some(primary) = hit {
            if g.primary.is_none_or(|p| p == primary) {
                g.primary = Some(primary);
                g.hits += 1;
            }
        }
        if g.checked == RTX_GUESS_PACKETS && g.hits >= RTX_GUESS_HITS {
            let primary = g.primary;
            let source = &mut state.sources[index];
            source.rtx = Some(primary);
            // Retransmitted timestamps are the original ones: no jitter.
            if let Some(r) = source.rtp.as_mut() {
                r.stats.set_clock_rate(None);
            }
        }
    }

    /// Takes the session's SDP-derived media map and classifies the
    /// streams already seen: an RTX stream loses its jitter estimate and is
    /// folded into its primary from now on.
    pub fn set_media(&mut self, media: super::media::MediaMap) {
        for side in &mut self.sides {
            let roles: Vec<Option<Option<Ssrc>>> = side
                .sources
                .iter()
                .map(|src| match &src.rtp {
                    Some(r) => rtx_role(&media, side, src.ssrc, r.payload_type),
                    None => None,
                })
                .collect();
            for (src, role) in side.sources.iter_mut().zip(roles) {
                src.fec = src
                    .rtp
                    .as_ref()
                    .and_then(|r| fec_role(&media, src.ssrc, r.payload_type));
                if src.fec.is_some() {
                    if let Some(r) = src.rtp.as_mut() {
                        r.stats.set_clock_rate(None);
                    }
                    continue;
                }
                src.rtx = role;
                if let Some(r) = src.rtp.as_mut() {
                    if role.is_some() {
                        r.stats.set_clock_rate(None);
                    } else if let Some(hz) = media.clock_rate(r.payload_type) {
                        // The SDP's clock wins over the relay's table.
                        r.stats.set_clock_rate(Some(hz));
                    }
                }
            }
        }
        self.media = (!media.is_empty()).then(|| Box::new(media));
    }

    /// Counts an SRTCP (or otherwise unreadable) compound by its sender: the
    /// first 8 bytes (header, sender SSRC) are in clear even when the rest
    /// is encrypted.
    pub fn on_unreadable_rtcp(&mut self, side: Side, datagram: &[u8], cap: usize) {
        let state = &mut self.sides[side.index()];
        state.rtcp.unreadable += 1;
        if let Some(b) = datagram.get(4..8) {
            let sender = Ssrc(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            if let Some(src) = state.source_mut(sender, cap) {
                src.srtcp_packets += 1;
                src.srtcp_last = srtcp_trailer_guess(datagram, src.srtcp_last);
            }
        }
    }

    /// STUN transaction RTT (the source that works in encrypted sessions):
    /// a binding request from one side is forwarded to the other; its
    /// response (success or error) comes back from that other side, so
    /// RTT(leg of the responder) = response arrival − request forward time.
    /// Returns true when a sample was taken.
    pub fn on_stun(&mut self, now: MonoTime, side: Side, stun: &StunView<'_>, counters: &mut Counters) -> bool {
        if stun.method != METHOD_BINDING {
            return false;
        }
        match stun.class {
            StunClass::Request => {
                let rtcp = &mut self.sides[side.index()].rtcp;
                if rtcp.stun_pending.record(stun.transaction_id, now) {
                    counters.caps_hit.hit(super::Cap::StunTransactions);
                }
                rtcp.stun_requests += 1;
                rtcp.unanswered_since.get_or_insert(now);
                false
            }
            StunClass::SuccessResponse | StunClass::ErrorResponse => {
                let asker = &mut self.sides[side.other().index()].rtcp;
                let asked = asker.stun_pending.take(&stun.transaction_id);
                if asked.is_some() {
                    asker.unanswered_since = None;
                }
                // Karn's rule: the answer to a retransmitted request may
                // answer either copy, so it gives no RTT sample.
                let Some(rtt) = asked
                    .filter(|(_, retransmitted)| !retransmitted)
                    .and_then(|(t, _)| now.checked_since(t))
                    .filter(|d| *d <= STUN_MAX_AGE)
                else {
                    return false;
                };
                let state = &mut self.sides[side.index()].rtcp;
                state.rtt.add(rtt, RttMethod::Stun);
                state.stun_responses += 1;
                true
            }
            StunClass::Indication => false,
        }
    }

    /// Observes one readable RTCP packet from `side` that is being forwarded.
    /// `cleared` collects the streams (side they came from, SSRC) whose real
    /// report blocks returned in `auto` mode.
    pub fn on_rtcp(
        &mut self,
        now: MonoTime,
        side: Side,
        packet: &RtcpPacket<'_>,
        cap: usize,
        counters: &mut Counters,
        cleared: &mut Vec<(Side, Ssrc)>,
    ) {
        let other = side.other();
        match packet {
            RtcpPacket::SenderReport(sr) => {
                self.sides[side.index()].rtcp.reports += 1;
                if let Some(src) = self.sides[side.index()].source_mut(sr.sender, cap) {
                    let arrivals = src.rtp.as_ref().map(|r| Arrivals {
                        packets: r.stats.packets(),
                        gaps: r.stats.cumulative_lost(),
                    });
                    src.sender_report = Some(SenderRecord::next(src.sender_report, sr.info, now, arrivals));
                    if src.sr_log.record(sr.info.ntp.compact(), now) {
                        counters.caps_hit.hit(super::Cap::RttReportLog);
                    }
                }
                for block in sr.report_blocks() {
                    self.on_report_block(now, side, sr.sender, block, counters, cleared);
                }
            }
            RtcpPacket::ReceiverReport(rr) => {
                self.sides[side.index()].rtcp.reports += 1;
                for block in rr.report_blocks() {
                    self.on_report_block(now, side, rr.sender, block, counters, cleared);
                }
            }
            RtcpPacket::Xr(xr) => {
                for block in xr.blocks() {
                    match block {
                        XrBlock::Rrtr { ntp } => {
                            if let Some(src) = self.sides[side.index()].source_mut(xr.sender, cap) {
                                if src.rrtr_log.record(ntp.compact(), now) {
                                    counters.caps_hit.hit(super::Cap::RttReportLog);
                                }
                            }
                        }
                        XrBlock::Dlrr(items) => {
                            for item in items {
                                if item.ssrc == self.own_ssrc {
                                    // Answers an RRTR the proxy itself sent toward `side`.
                                    let state = &mut self.sides[side.index()];
                                    match state.rtcp.own_rrtr_log.match_report(item.lrr, item.dlrr, now) {
                                        Ok(rtt) => {
                                            state.rtcp.rtt.add(rtt, RttMethod::XrDlrr);
                                            counters.rtt_samples += 1;
                                        }
                                        Err(e) => counters.rtt_rejects[reject_index(e)] += 1,
                                    }
                                    continue;
                                }
                                // DLRR from `side` answers an RRTR that came from
                                // `other` and was forwarded toward `side`: the
                                // sample is the leg of `side` (RFC 3611 §4.5),
                                // so it belongs to the DLRR's sender there (W3C
                                // remote-outbound-rtp of the streams it sends),
                                // never to the RRTR's sender on the other leg.
                                let Some(i) = self.sides[other.index()].position(item.ssrc) else {
                                    counters.rtt_rejects[reject_index(RttReject::UnknownLsr)] += 1;
                                    continue;
                                };
                                let asked = &mut self.sides[other.index()].sources[i];
                                match asked.rrtr_log.match_report(item.lrr, item.dlrr, now) {
                                    Ok(rtt) => {
                                        let state = &mut self.sides[side.index()];
                                        state.rtcp.rtt.add(rtt, RttMethod::XrDlrr);
                                        if let Some(answerer) = state.source_mut(xr.sender, cap) {
                                            answerer.xr_rtt.add(rtt, RttMethod::XrDlrr);
                                        }
                                        counters.rtt_samples += 1;
                                    }
                                    Err(e) => counters.rtt_rejects[reject_index(e)] += 1,
                                }
                            }
                        }
                        XrBlock::StatsSummary(b) => {
                            self.remote_xr(other, b.ssrc, now, |x| x.stats_summary = Some(b));
                        }
                        XrBlock::VoipMetrics(b) => {
                            self.remote_xr(other, b.ssrc, now, |x| x.voip_metrics = Some(b));
                        }
                        XrBlock::Other { .. } => {}
                    }
                }
            }
            RtcpPacket::Feedback(fb) => {
                // Feedback from `side` is about media sent by `other`.
                let target = match fb.kind {
                    // FIR (RFC 5104 §4.3.1) names its target in the FCI; the
                    // header's media SSRC is zero.
                    FeedbackKind::Fir => fb
                        .fci
                        .get(..4)
                        .map_or(fb.media, |b| Ssrc(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
                    _ => fb.media,
                };
                if let Some(i) = self.sides[other.index()].position(target) {
                    let f = &mut self.sides[other.index()].sources[i].feedback;
                    match fb.kind {
                        FeedbackKind::Nack => f.nack += 1,
                        FeedbackKind::Pli => f.pli += 1,
                        FeedbackKind::Fir => f.fir += 1,
                        FeedbackKind::Remb => f.remb += 1,
                        FeedbackKind::TransportCc => f.transport_cc += 1,
                        _ => f.other += 1,
                    }
                }
            }
            RtcpPacket::Bye(bye) => {
                for ssrc in bye.ssrcs() {
                    if let Some(i) = self.sides[side.index()].position(ssrc) {
                        self.sides[side.index()].sources[i].bye = true;
                    }
                }
            }
            RtcpPacket::Sdes(_) | RtcpPacket::App(_) | RtcpPacket::Other { .. } => {}
        }
    }

    /// A block from a receiver on `side` about a source sent from the other
    /// side. Its RTT is the leg of `side`: SR forwarded toward `side`,
    /// report block back from `side`.
    /// Records an XR quality block from the receiver on the far side about
    /// `ssrc`, a source of `sender_side` (only a source the proxy already
    /// knows: a block never creates one).
    fn remote_xr(&mut self, sender_side: Side, ssrc: Ssrc, now: MonoTime, set: impl FnOnce(&mut RemoteXr)) {
        if let Some(i) = self.sides[sender_side.index()].position(ssrc) {
            let x = self.sides[sender_side.index()].sources[i]
                .remote_xr
                .get_or_insert_with(Box::default);
            x.received_at = now;
            set(x);
        }
    }

    fn on_report_block(
        &mut self,
        now: MonoTime,
        side: Side,
        reporter: Ssrc,
        block: ReportBlock,
        counters: &mut Counters,
        cleared: &mut Vec<(Side, Ssrc)>,
    ) {
        let other = side.other();
        let Some(src) = self.sides[other.index()].known_mut(block.ssrc) else {
            return;
        };
        match &mut src.remote {
            Some(r) => r.update(reporter, block, now),
            None => src.remote = Some(RemoteReport::new(reporter, block, now)),
        }
        // `auto`: the receiver reports again, so stop generating for it.
        let reports_again = src.generating && self.mode == RtcpMode::Auto;
        src.generating &= !reports_again;
        match src.sr_log.match_report(block.lsr, block.dlsr, now) {
            Ok(rtt) => {
                if let Some(r) = &mut src.remote {
                    r.rtt.add(rtt, RttMethod::SrRr);
                }
                self.sides[side.index()].rtcp.rtt.add(rtt, RttMethod::SrRr);
                counters.rtt_samples += 1;
            }
            Err(e) => counters.rtt_rejects[reject_index(e)] += 1,
        }
        if reports_again {
            cleared.push((other, block.ssrc));
        }
    }
}

pub fn reject_index(r: RttReject) -> usize {
    match r {
        RttReject::NoLsr => 0,
        RttReject::ZeroDelay => 1,
        RttReject::UnknownLsr => 2,
        RttReject::Stale => 3,
        RttReject::Negative => 4,
    }
}
