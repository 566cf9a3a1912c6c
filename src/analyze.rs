//! Offline analysis: pcap/pcapng → the same engine the relay runs →
//! per-stream results. Capture timestamps are the engine's `now`.
//!
//! Each UDP conversation becomes a session, its first sender the "client"
//! side. RTP and RTCP of a non-mux pair (ports P and P+1 on both ends) fold
//! into one session, as the relay ties them, so report blocks meet the
//! stream they describe.

use crate::engine::{
    Engine, EngineConfig, Event, Input, Output, RelaySettings, SessionId, SessionSnapshot, Side, SocketRef,
};
use crate::stats::ClockRates;
use crate::time::MonoTime;
use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, Linktype, PcapBlockOwned, PcapError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("not a pcap or pcapng capture (unrecognised file header)")]
    NotACapture,
    #[error("capture is truncated or corrupt after {packets} packets (byte offset {offset}): {detail}")]
    Corrupt {
        packets: u64,
        offset: usize,
        detail: String,
    },
}

/// Why a frame of the capture was not analysed (counted, reported).
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameCounts {
    pub(crate) frames: u64,
    pub(crate) udp: u64,
    pub(crate) not_udp: u64,
    pub(crate) ip_fragments: u64,
    pub(crate) undecodable: u64,
    pub(crate) unsupported_link_type: u64,
}

/// Link types we decode (LINKTYPE_* numbers from the tcpdump registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Ethernet,
    /// Raw IPv4 or IPv6 (LINKTYPE_RAW 101, DLT_RAW 12/14, IPV4 228, IPV6 229).
    RawIp,
    /// Linux cooked capture v1 (113).
    Sll,
    /// Linux cooked capture v2 (276).
    Sll2,
    /// BSD loopback (0): 4-byte host-order family, then IP.
    Null,
    Unsupported(i32),
}

impl Link {
    fn from(l: Linktype) -> Self {
        match l.0 {
            1 => Link::Ethernet,
            12 | 14 | 101 | 228 | 229 => Link::RawIp,
            113 => Link::Sll,
            276 => Link::Sll2,
            0 => Link::Null,
            other => Link::Unsupported(other),
        }
    }
}

/// One UDP datagram lifted out of a frame.
struct Udp<'a> {
    src: SocketAddr,
    dst: SocketAddr,
    payload: &'a [u8],
}

/// Lifts the UDP datagram out of a frame. Captures taken with a snap
/// length (`tcpdump -s 256`, as VoIP captures usually are) cut long
/// datagrams short: the IP and UDP lengths promise more than the frame
/// holds. Such frames are sliced laxly (etherparse's `LaxSlicedPacket`):
/// the headers are whole, so the datagram's RTP header, the part the
/// statistics read, is there; only payload bytes are missing.
fn decode_frame<'a>(link: Link, frame: &'a [u8], counts: &mut FrameCounts) -> Option<Udp<'a>> {
    let ip = |bytes: &'a [u8]| LaxSlicedPacket::from_ip(bytes).ok();
    let sliced = match link {
        Link::Ethernet => LaxSlicedPacket::from_ethernet(frame).ok(),
        Link::RawIp => ip(frame),
        // SLL (https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html):
        // packet type (2), ARPHRD (2), address length (2), address (8),
        // protocol type (2): 16 bytes, then the protocol's payload.
        Link::Sll => frame.get(14..16).zip(frame.get(16..)).map(|(proto, rest)| {
            LaxSlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([proto[0], proto[1]])), rest)
        }),
        // SLL2 (https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html):
        // protocol type (2), reserved (2), ifindex (4), ARPHRD (2), packet
        // type (1), address length (1), address (8): 20 bytes, then the
        // protocol's payload. Only IP payloads carry UDP.
        Link::Sll2 => frame.get(20..).and_then(ip),
        Link::Null => frame.get(4..).and_then(ip),
        Link::Unsupported(_) => {
            counts.unsupported_link_type += 1;
            return None;
        }
    };
    let Some(sliced) = sliced else {
        counts.undecodable += 1;
        return None;
    };
    let (src_ip, dst_ip, fragmented): (IpAddr, IpAddr, bool) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
            v4.is_payload_fragmented(),
        ),
        Some(LaxNetSlice::Ipv6(v6)) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
            v6.is_payload_fragmented(),
        ),
        _ => {
            counts.not_udp += 1;
            return None;
        }
    };
    if fragmented {
        // Reassembly is out of scope: RTP over fragmented UDP is rare and
        // the fragments are counted so the omission is visible.
        counts.ip_fragments += 1;
        return None;
    }
    match sliced.transport {
        Some(TransportSlice::Udp(udp)) => Some(Udp {
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            payload: udp.payload(),
        }),
        _ => {
            counts.not_udp += 1;
            None
        }
    }
}

/// A conversation, endpoint order normalised; RTP/RTCP port pairs folded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct ConversationKey(SocketAddr, SocketAddr);

impl ConversationKey {
    fn of(a: SocketAddr, b: SocketAddr) -> Self {
        let fold = |s: SocketAddr| SocketAddr::new(s.ip(), s.port() & !1);
        let (a, b) = (fold(a), fold(b));
        if a <= b {
            ConversationKey(a, b)
        } else {
            ConversationKey(b, a)
        }
    }
}

/// Drives the engine from captured datagrams.
pub struct Analyzer {
    engine: Engine,
    conversations: HashMap<ConversationKey, (SessionId, SocketAddr)>,
    /// The RTP 5-tuple of each stream, from its first packet.
    tuples: HashMap<(SessionId, Side, u32), (SocketAddr, SocketAddr)>,
    pub frames: FrameCounts,
    last_now: MonoTime,
}

impl Analyzer {
    pub fn new(clock_rates: ClockRates) -> Self {
        let config = EngineConfig {
            // One passive tap: a capture has no sockets, so a session's
            // upstream is where its first datagram went.
            relays: vec![RelaySettings {
                clock_rates,
                ..RelaySettings::default()
            }],
            max_sessions: 1_000_000,
            max_sources_per_side: 4096,
            // A capture is analysed whole: sessions end with the file.
            idle_timeout: None,
            max_queued_events: usize::MAX,
            ..EngineConfig::default()
        };
        Analyzer {
            engine: Engine::new(config),
            conversations: HashMap::new(),
            tuples: HashMap::new(),
            frames: FrameCounts::default(),
            last_now: MonoTime::ZERO,
        }
    }

    /// Feeds one UDP datagram seen at `now` (nanoseconds since the Unix epoch).
    pub(crate) fn datagram(&mut self, now: MonoTime, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        self.last_now = self.last_now.max(now);
        let key = ConversationKey::of(src, dst);
        // The client side is whichever end spoke first (either of its
        // ports); the engine's tap keys it the same way.
        let (socket, remote, local) = match self.conversations.get(&key) {
            Some(&(id, client)) if !(src.ip() == client.ip() && src.port() & !1 == client.port() & !1) => (
                SocketRef::Upstream {
                    session: id,
                    rtcp: false,
                },
                src,
                dst,
            ),
            _ => (SocketRef::Listen { relay: 0, rtcp: false }, src, dst),
        };
        self.engine.handle_input(Input::Datagram {
            now,
            socket,
            remote,
            local,
            bytes: payload,
        });
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Event(Event::SessionOpened { id, client, .. }) => {
                    self.conversations.insert(key, (id, client));
                }
                Output::Event(Event::StreamStarted {
                    session, side, ssrc, ..
                }) => {
                    self.tuples.entry((session, side, ssrc.0)).or_insert((src, dst));
                }
                Output::Timeout(_) => break,
                _ => {}
            }
        }
    }

    /// Reads a whole capture.
    pub fn read_capture(&mut self, reader: impl Read + Send) -> Result<(), AnalyzeError> {
        let mut reader = match create_reader(1 << 20, reader) {
            Ok(r) => r,
            Err(PcapError::Eof) | Err(PcapError::HeaderNotRecognized) | Err(PcapError::Incomplete(_)) => {
                return Err(AnalyzeError::NotACapture)
            }
            Err(e) => {
                return Err(AnalyzeError::Corrupt {
                    packets: 0,
                    offset: 0,
                    detail: format!("{e:?}"),
                })
            }
        };
        // Legacy pcap: one link type and precision for the file.
        let mut legacy: Option<(Link, bool)> = None;
        // pcapng: per interface (link, ticks per second, offset seconds).
        let mut interfaces: Vec<(Link, u64, i64)> = Vec::new();
        let mut offset = 0usize;
        loop {
            match reader.next() {
                Ok((consumed, block)) => {
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            legacy = Some((Link::from(h.network), h.is_nanosecond_precision()));
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let (link, nanos) = legacy.unwrap_or((Link::Ethernet, false));
                            let frac = if nanos {
                                u64::from(b.ts_usec)
                            } else {
                                u64::from(b.ts_usec) * 1000
                            };
                            let now = MonoTime::from_nanos(u64::from(b.ts_sec) * 1_000_000_000 + frac);
                            let caplen = b.caplen as usize;
                            let data = b.data.get(..caplen).unwrap_or(b.data);
                            self.frame(now, link, data);
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            // Resolution defaults to microseconds (pcapng §4.2 if_tsresol).
                            let res = idb.ts_resolution().filter(|r| *r > 0).unwrap_or(1_000_000);
                            interfaces.push((Link::from(idb.linktype), res, idb.ts_offset()));
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let (link, res, off) = interfaces.get(epb.if_id as usize).copied().unwrap_or((
                                Link::Unsupported(-1),
                                1_000_000,
                                0,
                            ));
                            let ticks = u64::from(epb.ts_high) << 32 | u64::from(epb.ts_low);
                            let now = ticks_to_time(ticks, res, off);
                            let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                            self.frame(now, link, data);
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            // No timestamp: reuse the latest one seen.
                            let link = interfaces.first().map_or(Link::Unsupported(-1), |i| i.0);
                            let now = self.last_now;
                            let data = spb.data.get(..spb.origlen as usize).unwrap_or(spb.data);
                            self.frame(now, link, data);
                        }
                        PcapBlockOwned::NG(_) => {}
                    }
                    offset += consumed;
                    reader.consume(consumed);
                }
                Err(PcapError::Eof) => return Ok(()),
                Err(PcapError::Incomplete(_)) => {
                    reader.refill().map_err(|e| AnalyzeError::Corrupt {
                        packets: self.frames.frames,
                        offset,
                        detail: format!("{e:?}"),
                    })?;
                }
                Err(e) => {
                    return Err(AnalyzeError::Corrupt {
                        packets: self.frames.frames,
                        offset,
                        detail: describe_pcap_error(&e),
                    })
                }
            }
        }
    }

    fn frame(&mut self, now: MonoTime, link: Link, data: &[u8]) {
        self.frames.frames += 1;
        let mut counts = self.frames;
        if let Some(udp) = decode_frame(link, data, &mut counts) {
            counts.udp += 1;
            self.frames = counts;
            self.datagram(now, udp.src, udp.dst, udp.payload);
        } else {
            self.frames = counts;
        }
    }

    /// Final snapshots of every conversation, in order of appearance.
    ///
    /// RTCP sent from another source port than its RTP (common for senders
    /// that do not bind their RTCP socket, such as GStreamer's udpsink) lands
    /// in a conversation of its own. Its SR and report-block facts are
    /// joined to the RTP stream with the same SSRC between the same two
    /// hosts, so every stream shows its reports.
    pub fn snapshots(&self) -> Vec<SessionSnapshot> {
        let mut ids: Vec<SessionId> = self.conversations.values().map(|(id, _)| *id).collect();
        ids.sort();
        let mut snaps: Vec<SessionSnapshot> = ids
            .into_iter()
            .filter_map(|id| self.engine.snapshot(self.last_now, id))
            .collect();
        join_split_rtcp(&mut snaps);
        snaps
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// One result per RTP stream (5-tuple + SSRC), ARCHITECTURE.md §3.
    pub fn streams(&self) -> Vec<StreamResult> {
        let mut out = Vec::new();
        for snap in self.snapshots() {
            for side in Side::BOTH {
                for src in &snap.side(side).sources {
                    let Some(rtp) = &src.rtp else { continue };
                    let (from, to) = self
                        .tuples
                        .get(&(snap.id, side, src.ssrc))
                        .copied()
                        .unwrap_or(match side {
                            Side::Client => (snap.client, snap.upstream),
                            Side::Upstream => (snap.upstream, snap.client),
                        });
                    // RTT of this stream: its receiver's leg (the other side)
                    // from report blocks about it, else its own leg from the
                    // XR DLRR it sent.
                    let from_blocks = src.remote.as_ref().map(|r| r.rtt).filter(|r| r.measurements > 0);
                    let leg = if from_blocks.is_some() { side.other() } else { side };
                    let rtt = from_blocks
                        .or(Some(src.xr_rtt).filter(|r| r.measurements > 0))
                        .map(|r| RttResult {
                            seconds: r.last.unwrap_or_default(),
                            mean: r.mean.unwrap_or_default(),
                            min: r.min.unwrap_or_default(),
                            max: r.max.unwrap_or_default(),
                            measurements: r.measurements,
                            method: r.method,
                            leg,
                            leg_endpoint: from_side(&snap, leg),
                        });
                    out.push(StreamResult {
                        ssrc: format!("{:#010x}", src.ssrc),
                        ssrc_decimal: src.ssrc,
                        src: from,
                        dst: to,
                        side,
                        payload_type: rtp.payload_type,
                        clock_rate: rtp.clock_rate,
                        packets_received: rtp.packets_received,
                        packets_expected: rtp.packets_expected,
                        packets_lost: rtp.packets_lost,
                        duplicates: rtp.duplicates,
                        out_of_order: rtp.out_of_order,
                        jitter: rtp.jitter,
                        max_jitter: rtp.max_jitter,
                        mean_jitter: rtp.mean_jitter,
                        bytes_received: rtp.payload_bytes,
                        header_bytes_received: rtp.header_bytes,
                        first_packet: rtp.first_arrival,
                        last_packet: rtp.last_arrival,
                        remote_fraction_lost: src.remote.as_ref().map(|r| r.fraction_lost),
                        remote_packets_lost: src.remote.as_ref().map(|r| r.cumulative_lost),
                        remote_jitter: src.remote.as_ref().and_then(|r| r.jitter),
                        sender_reports: src.sender_report.as_ref().map_or(0, |r| r.reports),
                        round_trip_time: rtt.map(|r| r.seconds),
                        round_trip_time_detail: rtt,
                        burst_density: rtp.loss_model.burst_density,
                        gap_density: rtp.loss_model.gap_density,
                        burst_duration: rtp.loss_model.burst_duration_ms / 1e3,
                        gap_duration: rtp.loss_model.gap_duration_ms / 1e3,
                        burst_r: rtp.loss_model.burst_r,
                        r_factor: src.quality.map(|q| q.r_narrowband),
                        mos_lq: src.quality.map(|q| q.mos_lq),
                        mos_cq: src.quality.and_then(|q| q.mos_cq),
                    });
                }
            }
        }
        out
    }
}

/// Copies RTCP-derived facts from RTCP-only sources to RTP sources with the
/// same SSRC, sent in the same direction between the same two hosts.
fn join_split_rtcp(snaps: &mut [SessionSnapshot]) {
    let host = |s: &SessionSnapshot, side: Side| match side {
        Side::Client => s.client.ip(),
        Side::Upstream => s.upstream.ip(),
    };
    let mut donors = Vec::new();
    for snap in snaps.iter() {
        for side in Side::BOTH {
            for src in snap.side(side).sources.iter().filter(|s| s.rtp.is_none()) {
                donors.push((host(snap, side), host(snap, side.other()), src.clone()));
            }
        }
    }
    for snap in snaps.iter_mut() {
        for side in Side::BOTH {
            let (from, to) = (host(snap, side), host(snap, side.other()));
            for src in snap.sides[side.index()].sources.iter_mut().filter(|s| s.rtp.is_some()) {
                let Some((_, _, d)) = donors
                    .iter()
                    .find(|(f, t, d)| *f == from && *t == to && d.ssrc == src.ssrc)
                else {
                    continue;
                };
                if src.sender_report.is_none() {
                    src.sender_report = d.sender_report.clone();
                }
                if src.remote.is_none() {
                    src.remote = d.remote.clone();
                }
                if src.xr_rtt.measurements == 0 {
                    src.xr_rtt = d.xr_rtt;
                }
                src.bye |= d.bye;
            }
        }
    }
}

fn from_side(snap: &SessionSnapshot, side: Side) -> SocketAddr {
    match side {
        Side::Client => snap.client,
        Side::Upstream => snap.upstream,
    }
}

/// Capture ticks at `per_sec` resolution plus an offset in seconds → time
/// since the epoch, saturating instead of overflowing on hostile values.
fn ticks_to_time(ticks: u64, per_sec: u64, offset_secs: i64) -> MonoTime {
    let secs = (ticks / per_sec) as i128 + i128::from(offset_secs);
    let frac_ns = u128::from(ticks % per_sec) * 1_000_000_000 / u128::from(per_sec);
    let ns = (secs.max(0) as u128 * 1_000_000_000 + frac_ns).min(u128::from(u64::MAX));
    MonoTime::from_nanos(ns as u64)
}

fn describe_pcap_error<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::UnexpectedEof => "the last block is cut short".into(),
        PcapError::BufferTooSmall => "a block is larger than 1 MiB".into(),
        PcapError::ReadError => "read error".into(),
        PcapError::HeaderNotRecognized => "unrecognised block header".into(),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("malformed block ({kind:?})")
        }
        PcapError::Incomplete(_) | PcapError::Eof => "unexpected end of data".into(),
    }
}

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RttResult {
    /// Latest valid sample, seconds.
    pub(crate) seconds: f64,
    pub(crate) mean: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) measurements: u64,
    pub(crate) method: Option<crate::stats::RttMethod>,
    /// The leg measured: between the capture point and this side's endpoint.
    pub(crate) leg: Side,
    pub(crate) leg_endpoint: SocketAddr,
}

/// `analyze --format json`: one object per RTP stream (ARCHITECTURE.md §3).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamResult {
    pub(crate) ssrc: String,
    pub ssrc_decimal: u32,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub(crate) side: Side,
    pub(crate) payload_type: u8,
    pub(crate) clock_rate: Option<u32>,
    pub packets_received: u64,
    pub packets_expected: u64,
    pub packets_lost: i64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Final A.8 value, seconds; null when the clock rate is unknown.
    pub(crate) jitter: Option<f64>,
    pub max_jitter: Option<f64>,
    pub mean_jitter: Option<f64>,
    pub(crate) bytes_received: u64,
    pub(crate) header_bytes_received: u64,
    pub(crate) first_packet: f64,
    pub(crate) last_packet: f64,
    /// What the stream's receiver reported in RTCP (absent without reports).
    pub(crate) remote_fraction_lost: Option<f64>,
    pub(crate) remote_packets_lost: Option<i32>,
    pub(crate) remote_jitter: Option<f64>,
    pub(crate) sender_reports: u64,
    pub(crate) round_trip_time: Option<f64>,
    #[serde(rename = "roundTripTimeDetail")]
    pub(crate) round_trip_time_detail: Option<RttResult>,
    /// Burst/gap loss on arrival (RFC 3611 §4.7.2, densities 0..1,
    /// durations s) and G.107 BurstR.
    pub burst_density: f64,
    pub gap_density: f64,
    pub burst_duration: f64,
    pub gap_duration: f64,
    pub burst_r: f64,
    /// E-model of an audio stream on the leg it arrived over (absent for
    /// video): R (narrowband scale), MOS-LQ, and MOS-CQ when that leg's
    /// RTT is in the capture.
    pub r_factor: Option<f64>,
    pub mos_lq: Option<f64>,
    pub mos_cq: Option<f64>,
}

/// Output of `analyze --format json`.
#[derive(Serialize)]
pub struct JsonOutput<'a> {
    pub streams: &'a [StreamResult],
    pub frames: FrameCounts,
    /// Datagrams dropped by the engine as malformed, by reason.
    pub malformed: BTreeMap<&'static str, u64>,
}

pub fn malformed_counts(engine: &Engine) -> BTreeMap<&'static str, u64> {
    crate::engine::DropReason::ALL
        .iter()
        .map(|r| (r.label(), engine.counters().drop_count(*r)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// `--format table`: one line per stream.
pub fn render_table(streams: &[StreamResult]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<22} {:<22} {:>4} {:>6} {:>8} {:>8} {:>7} {:>6} {:>5} {:>9} {:>9} {:>9} {:>9} {:>6} {:>5} {:>6} {:>6}",
        "SSRC",
        "SRC",
        "DST",
        "PT",
        "CLOCK",
        "RECV",
        "EXPECT",
        "LOST",
        "LOST%",
        "DUP",
        "JIT ms",
        "MAXJ ms",
        "MEANJ ms",
        "RTT ms",
        "BURSTR",
        "R",
        "MOS-LQ",
        "MOS-CQ"
    );
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |x| format!("{x:.digits$}"));
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{:.3}", s * 1000.0));
    for s in streams {
        let pct = if s.packets_expected > 0 {
            format!("{:.2}", s.packets_lost as f64 * 100.0 / s.packets_expected as f64)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "{:<10} {:<22} {:<22} {:>4} {:>6} {:>8} {:>8} {:>7} {:>6} {:>5} {:>9} {:>9} {:>9} {:>9} {:>6.2} {:>5} {:>6} {:>6}",
            s.ssrc,
            s.src.to_string(),
            s.dst.to_string(),
            s.payload_type,
            s.clock_rate.map_or("?".into(), |r| r.to_string()),
            s.packets_received,
            s.packets_expected,
            s.packets_lost,
            pct,
            s.duplicates,
            ms(s.jitter),
            ms(s.max_jitter),
            ms(s.mean_jitter),
            ms(s.round_trip_time),
            s.burst_r,
            opt(s.r_factor, 0),
            opt(s.mos_lq, 2),
            opt(s.mos_cq, 2),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_and_saturate() {
        assert_eq!(ticks_to_time(1_500_000, 1_000_000, 0).as_nanos(), 1_500_000_000);
        assert_eq!(ticks_to_time(3, 2, 10).as_nanos(), 11_500_000_000);
        assert_eq!(ticks_to_time(u64::MAX, 1, i64::MAX).as_nanos(), u64::MAX);
        assert_eq!(ticks_to_time(5, 1, -100).as_nanos(), 0);
    }

    #[test]
    fn garbage_is_not_a_capture() {
        let mut a = Analyzer::new(ClockRates::default());
        assert!(matches!(
            a.read_capture(&b"hello world, not a pcap"[..]),
            Err(AnalyzeError::NotACapture)
        ));
        assert!(matches!(a.read_capture(&b""[..]), Err(AnalyzeError::NotACapture)));
    }
}
