//! `rtp-middlebox demo`: a self-contained call on loopback that shows the
//! proxy measuring and fixing RTCP.
//!
//! ```text
//!  browser ──▶ [impairment: loss, bursts, delay, jitter] ──▶ proxy ──▶ [delay] ──▶ SFU
//!  (sends SR,                client leg                       │     upstream leg   (sends SR, never RR:
//!   RR, STUN)                                                 │                     the missing-RR problem)
//!                                             HTTP API: /v1/sessions, /v1/stream, /metrics
//! ```
//!
//! The browser sends Opus-like audio and VP8-like video with Sender Reports
//! and consent-freshness STUN checks, and Receiver Reports about what it
//! receives, as Chromium does. The SFU sends its own audio and video with
//! SRs and answers STUN, but suppresses its Receiver Reports, so without the
//! proxy the browser would never learn loss, jitter or RTT of what it sends.
//!
//! Each endpoint keeps the ground truth the proxy is checked against: which
//! sequence numbers actually arrived (loss), its own RFC 3550 A.8 jitter of
//! what it received, and what the report blocks it received say (generated
//! reports reaching the browser, and the RTT it computes from them).

use crate::config::Config;
use crate::engine::{RtcpMode, Side, SourceSnapshot};
use crate::export::http::ApiOptions;
use crate::runtime::clock::Clock;
use crate::runtime::SessionView;
use crate::sim::impair::{GilbertElliott, ImpairConfig};
use crate::sim::impair_live::{Forwarder, ForwarderConfig};
use crate::sim::loopback;
use crate::sim::sdp::webrtc_sdp;
use crate::wire::ntp::{CompactNtp, Delay16, NtpTime};
use crate::wire::rtcp::{self, ReportBlock, RtcpPacket, SenderInfo, CUMULATIVE_LOST_MAX, CUMULATIVE_LOST_MIN};
use crate::wire::rtp::{write_rtp, RtpHeader, RtpView};
use crate::wire::stun::{self, StunClass, StunView};
use crate::wire::types::{RtpTs, SeqNo, Ssrc};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the demo runs and how the client leg is impaired.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Run time; `None` runs until `stop` is set (Ctrl-C).
    pub seconds: Option<u64>,
    pub rtcp: RtcpMode,
    /// Random loss on the client leg, each direction, 0..=1.
    pub loss: f64,
    /// Add Gilbert-Elliott burst loss on top of `loss`.
    pub burst: bool,
    /// Loss in Gilbert bursts on the client leg, each direction, 0..1: a
    /// chain with this long-run rate in bursts of [`BURST_MEAN_PACKETS`]
    /// (replaces `burst`'s chain when > 0). With `loss` = 0 it compares
    /// with `loss` alone at the same rate: same loss, burstier.
    pub burst_loss: f64,
    /// One-way delay of the client leg, ms.
    pub delay_ms: f64,
    /// Delay variation of the client leg, ± ms (uniform).
    pub jitter_ms: f64,
    /// One-way delay of the upstream leg (proxy ↔ SFU), ms.
    pub upstream_delay_ms: f64,
    pub seed: u64,
    /// Where the HTTP API listens (port 0: any free port).
    pub api_listen: SocketAddr,
    /// Live table: refreshing in place (a terminal) or plain blocks.
    pub display: Display,
    /// Metrics publication interval, seconds (`[metrics] interval_secs`).
    pub metrics_interval_secs: u64,
    /// Told the proxy's and the API's addresses once everything runs
    /// (tests drive a live demo through it).
    pub ready: Option<std::sync::mpsc::Sender<DemoAddresses>>,
    /// DTLS-SRTP on both legs, terminated by the proxy (`dtls =
    /// "terminate"`): the endpoints do real DTLS handshakes with the proxy,
    /// whose calls API rewrote their SDPs, and send SRTP/SRTCP.
    pub dtls: bool,
}

/// Where a running demo can be reached.
#[derive(Clone, Copy, Debug)]
pub struct DemoAddresses {
    pub proxy: SocketAddr,
    pub api: SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// Refresh in place when stdout is a terminal, else plain blocks.
    Auto,
    Plain,
    /// No live table (the summary only).
    Off,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seconds: Some(20),
            rtcp: RtcpMode::Auto,
            loss: 0.02,
            burst: true,
            burst_loss: 0.0,
            delay_ms: 20.0,
            jitter_ms: 5.0,
            upstream_delay_ms: 5.0,
            seed: 7,
            api_listen: "127.0.0.1:0".parse().expect("literal address"),
            display: Display::Auto,
            metrics_interval_secs: 1,
            ready: None,
            dtls: false,
        }
    }
}

/// Gilbert-Elliott chain of `--burst`: ~3 % of the time in a bad state of
/// ~3-packet bursts losing half the packets (≈ 1.6 % loss on its own).
const BURST: GilbertElliott = GilbertElliott {
    p_good_to_bad: 0.01,
    p_bad_to_good: 0.3,
    loss_in_bad: 0.5,
    loss_in_good: 0.0,
};

/// Mean burst length of `--burst-loss`, packets (an 80 ms gap of 20 ms
/// audio): G.107 §7.5 BurstR = 1 / (p + q) ≈ 3.9 at 3 % loss.
pub const BURST_MEAN_PACKETS: f64 = 4.0;

/// One synthetic RTP stream.
#[derive(Clone, Copy, Debug)]
struct StreamSpec {
    name: &'static str,
    kind: &'static str,
    ssrc: u32,
    payload_type: u8,
    clock_rate: u32,
    /// Packet spacing, ms.
    interval_ms: u64,
    payload_len: usize,
    /// Sender Report spacing, ms.
    sr_interval_ms: u64,
}

const BROWSER_STREAMS: [StreamSpec; 2] = [
    StreamSpec {
        name: "browser audio",
        kind: "audio",
        ssrc: 0x1111_0001,
        payload_type: 111,
        clock_rate: 48_000,
        interval_ms: 20,
        payload_len: 120,
        sr_interval_ms: 2000,
    },
    StreamSpec {
        name: "browser video",
        kind: "video",
        ssrc: 0x1111_0002,
        payload_type: 96,
        clock_rate: 90_000,
        interval_ms: 33,
        payload_len: 1000,
        sr_interval_ms: 1000,
    },
];

const SFU_STREAMS: [StreamSpec; 2] = [
    StreamSpec {
        name: "sfu audio",
        kind: "audio",
        ssrc: 0x2222_0001,
        payload_type: 111,
        clock_rate: 48_000,
        interval_ms: 20,
        payload_len: 120,
        sr_interval_ms: 1000,
    },
    StreamSpec {
        name: "sfu video",
        kind: "video",
        ssrc: 0x2222_0002,
        payload_type: 96,
        clock_rate: 90_000,
        interval_ms: 33,
        payload_len: 1000,
        sr_interval_ms: 1000,
    },
];

/// How an endpoint behaves.
#[derive(Clone, Copy)]
struct Role {
    /// Own SSRC for Receiver Reports (browsers use a dedicated one when
    /// they also send; here the first stream's).
    rr_ssrc: u32,
    streams: &'static [StreamSpec],
    send_rr: bool,
    /// Send consent-freshness binding requests (RFC 7675) every 2 s.
    stun_checks: bool,
    /// ICE USERNAME of those checks (`remote:local` ufrags, RFC 8445 §7.2.2).
    ice_username: Option<&'static [u8]>,
}

/// Ground truth an endpoint keeps about one stream it receives.
#[derive(Clone, Debug, Default)]
struct ReceivedTruth {
    seqs: BTreeSet<u16>,
    packets: u64,
    /// RFC 3550 A.8 in RTP units, from this endpoint's own arrival times.
    jitter_units: f64,
    last_transit: Option<f64>,
    clock_rate: u32,
    /// For the interval fraction of this endpoint's RRs (RFC 3550 A.3).
    expected_prior: u64,
    received_prior: u64,
    /// Last SR from this source: (compact NTP, arrival wall time).
    last_sr: Option<(CompactNtp, Duration)>,
}

impl ReceivedTruth {
    /// Expected packets from the lowest to the highest sequence number seen
    /// (no wrap in a demo: at 50 packets/s 16 bits last 21 minutes; beyond
    /// that the lost count is left out rather than wrong).
    fn expected(&self) -> u64 {
        match (self.seqs.first(), self.seqs.last()) {
            (Some(lo), Some(hi)) => u64::from(hi - lo) + 1,
            _ => 0,
        }
    }

    fn lost(&self) -> i64 {
        self.expected() as i64 - self.seqs.len() as i64
    }
}

/// What an endpoint learned from report blocks about a stream it sends.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportsAbout {
    blocks: u64,
    fraction_lost: f64,
    cumulative_lost: i32,
    jitter_units: u32,
    /// RTT the endpoint computes as a browser does (RFC 3550 §6.4.1:
    /// A − LSR − DLSR), seconds.
    rtt_samples: u64,
    rtt_total: f64,
    rtt_last: Option<f64>,
}

#[derive(Default)]
struct EndpointState {
    peer: Option<SocketAddr>,
    sent: HashMap<u32, u64>,
    received: HashMap<u32, ReceivedTruth>,
    reports: HashMap<u32, ReportsAbout>,
    stun_pending: HashMap<[u8; 12], Duration>,
    stun_rtt: Vec<f64>,
    stun_answered: u64,
    /// `--dtls`: this endpoint's DTLS and SRTP state.
    secure: Option<Secure>,
}

/// A `--dtls` endpoint: its DTLS association with the proxy and, once the
/// handshake is done, its SRTP/SRTCP contexts from the exported keys
/// (RFC 5764 §4.2).
struct Secure {
    dtls: dimpl::Dtls,
    active: bool,
    /// SHA-256 of the certificate the proxy presented.
    peer_fingerprint: Option<[u8; 32]>,
    keyed: Option<SrtpContexts>,
}

struct SrtpContexts {
    suite: &'static str,
    rtp_out: rtc_srtp::context::Context,
    rtp_in: rtc_srtp::context::Context,
    rtcp_out: crate::srtp::SrtcpWriter,
    rtcp_in: crate::srtp::SrtcpReader,
}

impl Secure {
    fn new(identity: &crate::dtls::DtlsIdentity, active: bool, now: std::time::Instant) -> Option<Secure> {
        let config = std::sync::Arc::new(dimpl::Config::default());
        let mut dtls = dimpl::Dtls::new_auto(config, identity.dimpl_certificate(), now);
        if active {
            dtls.set_active(true);
        }
        Some(Secure {
            dtls,
            active,
            peer_fingerprint: None,
            keyed: None,
        })
    }

    /// Runs timers (`record`: a datagram from the proxy first) and sends
    /// what DTLS wants sent.
    fn drive(&mut self, now: std::time::Instant, record: Option<&[u8]>, socket: &UdpSocket, to: SocketAddr) {
        if self.dtls.handle_timeout(now).is_err() {
            return;
        }
        if let Some(r) = record {
            let _ = self.dtls.handle_packet(r);
        }
        let mut buf = vec![0u8; 2048];
        loop {
            match self.dtls.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => {
                    let _ = socket.send_to(p, to);
                }
                dimpl::Output::BufferTooSmall { needed } => buf.resize(needed, 0),
                dimpl::Output::PeerCert(der) => self.peer_fingerprint = Some(crate::dtls::sha256(der)),
                dimpl::Output::KeyingMaterial(material, profile) => {
                    let keys = crate::dtls::suite_of(profile)
                        .and_then(|suite| crate::dtls::srtp_keys_from_export(&material, suite, self.active));
                    if let Some(k) = keys {
                        let contexts = (|| {
                            Some(SrtpContexts {
                                suite: k.own_write.suite().sdp_name(),
                                rtp_out: crate::srtp::media_context(&k.own_write).ok()?,
                                rtp_in: crate::srtp::media_context(&k.peer_write).ok()?,
                                rtcp_out: crate::srtp::SrtcpWriter::new(&k.own_write).ok()?,
                                rtcp_in: crate::srtp::SrtcpReader::new(&k.peer_write).ok()?,
                            })
                        })();
                        self.keyed = contexts;
                    }
                }
                dimpl::Output::Timeout(_) => return,
                _ => {}
            }
        }
    }
}

struct Endpoint {
    socket: UdpSocket,
    state: Arc<Mutex<EndpointState>>,
    threads: Vec<JoinHandle<()>>,
}

/// Sends `plain` (RTP or RTCP) to `peer`, protected when the endpoint is
/// `--dtls` (nothing goes out before its keys).
fn send_protected(socket: &UdpSocket, st: &mut EndpointState, plain: &[u8], rtcp: bool, peer: SocketAddr) -> bool {
    let Some(secure) = st.secure.as_mut() else {
        return socket.send_to(plain, peer).is_ok();
    };
    let Some(k) = secure.keyed.as_mut() else {
        return false;
    };
    let wire = if rtcp {
        let mut out = Vec::with_capacity(plain.len() + 32);
        k.rtcp_out.encrypt(plain, &mut out).ok().map(|()| out)
    } else {
        k.rtp_out.encrypt_rtp(plain).ok().map(|b| b.to_vec())
    };
    wire.is_some_and(|w| socket.send_to(&w, peer).is_ok())
}

fn lock(state: &Mutex<EndpointState>) -> std::sync::MutexGuard<'_, EndpointState> {
    // A poisoned lock means a demo thread panicked: keep reporting what is there.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Endpoint {
    /// Senders stop at `stop_send`; receivers at `stop_receive`, later, so
    /// datagrams still crossing the impaired legs are counted.
    fn start(
        role: Role,
        peer: Option<SocketAddr>,
        clock: Clock,
        stop_send: Arc<AtomicBool>,
        stop_receive: Arc<AtomicBool>,
        secure: Option<Secure>,
    ) -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let state = Arc::new(Mutex::new(EndpointState {
            peer,
            secure,
            ..Default::default()
        }));
        let rx = {
            let (socket, state) = (socket.try_clone()?, state.clone());
            std::thread::Builder::new()
                .name("demo-rx".into())
                .spawn(move || receive_loop(&socket, &state, &stop_receive, clock, role))?
        };
        let tx = {
            let (socket, state) = (socket.try_clone()?, state.clone());
            std::thread::Builder::new()
                .name("demo-tx".into())
                .spawn(move || send_loop(&socket, &state, &stop_send, clock, role))?
        };
        Ok(Endpoint {
            socket,
            state,
            threads: vec![rx, tx],
        })
    }

    fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    fn join(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Sends media, SRs, RRs and STUN checks on their schedules until `stop`.
fn send_loop(socket: &UdpSocket, state: &Mutex<EndpointState>, stop: &AtomicBool, clock: Clock, role: Role) {
    let start = clock.now();
    let mut next_rtp: Vec<Duration> = vec![Duration::ZERO; role.streams.len()];
    let mut next_sr: Vec<Duration> = role
        .streams
        .iter()
        .map(|s| Duration::from_millis(s.sr_interval_ms))
        .collect();
    let mut seq: Vec<u16> = role.streams.iter().map(|s| (s.ssrc as u16) & 0x0fff).collect();
    let mut octets: Vec<u32> = vec![0; role.streams.len()];
    let mut next_rr = Duration::from_millis(1000);
    let mut next_stun = Duration::from_millis(200);
    let mut stun_counter: u64 = 0;
    let mut buf = Vec::with_capacity(1500);
    // Every stream's payload: the first `payload_len` bytes of these.
    let payload = vec![0xd5; role.streams.iter().map(|s| s.payload_len).max().unwrap_or(0)];
    while !stop.load(Ordering::Relaxed) {
        let Some(peer) = lock(state).peer else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let elapsed = clock.now().saturating_since(start);
        {
            // `--dtls`: the DTLS client starts once its first ICE check was
            // answered (as a browser does); retransmissions run here too.
            let mut st = lock(state);
            let EndpointState { secure, stun_rtt, .. } = &mut *st;
            if let Some(sec) = secure.as_mut().filter(|s| s.keyed.is_none()) {
                if !sec.active || !stun_rtt.is_empty() {
                    sec.drive(clock.instant_of(clock.now()), None, socket, peer);
                }
            }
        }
        for (i, s) in role.streams.iter().enumerate() {
            if elapsed >= next_rtp[i] {
                // The RTP timestamp follows the schedule, not the send
                // time, like a real encoder's sampling clock.
                let ts = (next_rtp[i].as_millis() as u64 * u64::from(s.clock_rate) / 1000) as u32;
                let header = RtpHeader {
                    payload_type: s.payload_type,
                    seq: SeqNo(seq[i]),
                    timestamp: RtpTs(ts),
                    ssrc: Ssrc(s.ssrc),
                    ..RtpHeader::default()
                };
                buf.clear();
                write_rtp(&mut buf, &header, &payload[..s.payload_len]);
                let mut st = lock(state);
                if send_protected(socket, &mut st, &buf, false, peer) {
                    *st.sent.entry(s.ssrc).or_default() += 1;
                    octets[i] = octets[i].wrapping_add(s.payload_len as u32);
                }
                seq[i] = seq[i].wrapping_add(1);
                next_rtp[i] += Duration::from_millis(s.interval_ms);
            }
            if elapsed >= next_sr[i] {
                // RFC 3550 §6.4.1: the SR's RTP timestamp is the media clock
                // at the SR's NTP time (extrapolated, not the last packet's).
                let rtp_ts = (elapsed.as_millis() as u64 * u64::from(s.clock_rate) / 1000) as u32;
                let sent = lock(state).sent.get(&s.ssrc).copied().unwrap_or(0);
                let info = SenderInfo {
                    ntp: NtpTime::from_unix(clock.wall()),
                    rtp_ts,
                    packet_count: sent as u32,
                    octet_count: octets[i],
                };
                buf.clear();
                rtcp::write_sender_report(&mut buf, Ssrc(s.ssrc), &info, &[]);
                rtcp::write_sdes_cname(&mut buf, Ssrc(s.ssrc), b"demo");
                send_protected(socket, &mut lock(state), &buf, true, peer);
                next_sr[i] += Duration::from_millis(s.sr_interval_ms);
            }
        }
        if role.send_rr && elapsed >= next_rr {
            let blocks = receiver_blocks(&mut lock(state), &clock);
            if !blocks.is_empty() {
                buf.clear();
                rtcp::write_receiver_report(&mut buf, Ssrc(role.rr_ssrc), &blocks);
                rtcp::write_sdes_cname(&mut buf, Ssrc(role.rr_ssrc), b"demo");
                send_protected(socket, &mut lock(state), &buf, true, peer);
            }
            next_rr += Duration::from_millis(1000);
        }
        if role.stun_checks && elapsed >= next_stun {
            stun_counter += 1;
            let mut txid = [0u8; 12];
            txid[..8].copy_from_slice(&stun_counter.to_be_bytes());
            txid[8..].copy_from_slice(&role.rr_ssrc.to_be_bytes());
            buf.clear();
            stun::write_binding_request(&mut buf, txid, role.ice_username);
            lock(state).stun_pending.insert(txid, clock.wall());
            let _ = socket.send_to(&buf, peer);
            // Once a second, more often than a browser's consent checks
            // (RFC 7675 §5.1: every 4–6 s): a short demo then has enough
            // STUN RTT samples on the upstream leg that one late thread
            // wake-up does not move their mean much.
            next_stun += Duration::from_millis(1000);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Report blocks about every stream this endpoint receives (RFC 3550
/// §6.4.1, A.3 for the interval fraction).
fn receiver_blocks(st: &mut EndpointState, clock: &Clock) -> Vec<ReportBlock> {
    let now_wall = clock.wall();
    let mut blocks = Vec::new();
    for (ssrc, r) in st.received.iter_mut() {
        let Some(&highest) = r.seqs.last() else {
            continue;
        };
        let expected = r.expected();
        let received = r.packets;
        let expected_interval = expected.saturating_sub(r.expected_prior);
        let received_interval = received.saturating_sub(r.received_prior);
        r.expected_prior = expected;
        r.received_prior = received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64) as u8
        };
        let (lsr, dlsr) = match r.last_sr {
            Some((lsr, at)) => (lsr, Delay16::from_duration(now_wall.saturating_sub(at))),
            None => (CompactNtp(0), Delay16(0)),
        };
        blocks.push(ReportBlock {
            ssrc: Ssrc(*ssrc),
            fraction_lost: fraction,
            cumulative_lost: r.lost().clamp(CUMULATIVE_LOST_MIN.into(), CUMULATIVE_LOST_MAX.into()) as i32,
            ext_highest_seq: u32::from(highest),
            jitter: r.jitter_units as u32,
            lsr,
            dlsr,
        });
    }
    blocks
}

fn receive_loop(socket: &UdpSocket, state: &Mutex<EndpointState>, stop: &AtomicBool, clock: Clock, role: Role) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let data = &buf[..n];
        let wall = clock.wall();
        let mut st = lock(state);
        if st.peer.is_none() {
            // The SFU learns the proxy's address from the first datagram, as
            // ICE would.
            st.peer = Some(from);
        }
        let rtcp = data.len() >= 2 && (192..=223).contains(&data[1]);
        match data.first() {
            Some(0..=3) => on_stun(socket, &mut st, data, from, wall),
            Some(20..=63) => {
                if let Some(sec) = st.secure.as_mut() {
                    sec.drive(clock.instant_of(clock.now()), Some(data), socket, from);
                }
            }
            Some(128..=191) if st.secure.is_some() => {
                // SRTP/SRTCP under the keys of this endpoint's own leg.
                let Some(k) = st.secure.as_mut().and_then(|s| s.keyed.as_mut()) else {
                    continue;
                };
                let plain = if rtcp {
                    let mut out = Vec::new();
                    k.rtcp_in.decrypt(data, &mut out).ok().map(|()| out)
                } else {
                    k.rtp_in.decrypt_rtp(data).ok().map(|b| b.to_vec())
                };
                match plain {
                    Some(p) if rtcp => on_rtcp(&mut st, &p, wall, role),
                    Some(p) => on_rtp(&mut st, &p, wall),
                    None => {}
                }
            }
            Some(128..=191) if rtcp => on_rtcp(&mut st, data, wall, role),
            Some(128..=191) => on_rtp(&mut st, data, wall),
            _ => {}
        }
    }
}

fn on_stun(socket: &UdpSocket, st: &mut EndpointState, data: &[u8], from: SocketAddr, wall: Duration) {
    let Ok(m) = StunView::parse(data) else { return };
    if m.method != stun::METHOD_BINDING {
        return;
    }
    match m.class {
        StunClass::Request => {
            st.stun_answered += 1;
            let mut response = Vec::new();
            stun::write_binding_success(&mut response, m.transaction_id, Some(from));
            let _ = socket.send_to(&response, from);
        }
        StunClass::SuccessResponse => {
            if let Some(sent) = st.stun_pending.remove(&m.transaction_id) {
                st.stun_rtt.push(wall.saturating_sub(sent).as_secs_f64());
            }
        }
        _ => {}
    }
}

fn on_rtp(st: &mut EndpointState, data: &[u8], wall: Duration) {
    let Ok(rtp) = RtpView::parse(data) else { return };
    let clock_rate = if rtp.payload_type() == 111 { 48_000 } else { 90_000 };
    let r = st.received.entry(rtp.ssrc().0).or_insert_with(|| ReceivedTruth {
        clock_rate,
        ..Default::default()
    });
    r.seqs.insert(rtp.seq().0);
    r.packets += 1;
    // RFC 3550 A.8: D = (Rj − Ri) − (Sj − Si) in timestamp units;
    // J += (|D| − J) / 16.
    let arrival = wall.as_secs_f64() * f64::from(r.clock_rate);
    let transit = arrival - f64::from(rtp.timestamp().0);
    if let Some(prev) = r.last_transit {
        let d = (transit - prev).abs();
        r.jitter_units += (d - r.jitter_units) / 16.0;
    }
    r.last_transit = Some(transit);
}

fn on_rtcp(st: &mut EndpointState, data: &[u8], wall: Duration, role: Role) {
    let arrival = NtpTime::from_unix(wall).compact();
    for packet in rtcp::walk(data).flatten() {
        let blocks = match packet {
            RtcpPacket::SenderReport(sr) => {
                let r = st.received.entry(sr.sender.0).or_default();
                r.last_sr = Some((sr.info.ntp.compact(), wall));
                sr.report_blocks()
            }
            RtcpPacket::ReceiverReport(rr) => rr.report_blocks(),
            _ => continue,
        };
        for b in blocks {
            if !role.streams.iter().any(|s| s.ssrc == b.ssrc.0) {
                continue;
            }
            let about = st.reports.entry(b.ssrc.0).or_default();
            about.blocks += 1;
            about.fraction_lost = f64::from(b.fraction_lost) / 256.0;
            about.cumulative_lost = b.cumulative_lost;
            about.jitter_units = b.jitter;
            if b.lsr.0 != 0 {
                // RFC 3550 §6.4.1: RTT = A − LSR − DLSR in 1/65536 s.
                let rtt = arrival.0.wrapping_sub(b.lsr.0).wrapping_sub(b.dlsr.0);
                if rtt < 0x8000_0000 {
                    let secs = f64::from(rtt) / 65_536.0;
                    about.rtt_samples += 1;
                    about.rtt_total += secs;
                    about.rtt_last = Some(secs);
                }
            }
        }
    }
}

/// One row of the live table and the summary.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamSummary {
    pub(crate) stream: String,
    pub(crate) kind: String,
    pub(crate) ssrc: u32,
    /// `browser→sfu` or `sfu→browser`.
    pub(crate) direction: String,
    pub(crate) sent: u64,
    /// The proxy's RFC 3550 figures for the stream as it arrived there.
    pub proxy_packets: u64,
    pub(crate) proxy_lost: i64,
    pub(crate) proxy_loss_percent: f64,
    pub(crate) proxy_jitter_ms: Option<f64>,
    pub(crate) proxy_mean_jitter_ms: Option<f64>,
    /// The proxy's E-model rating of an audio stream on the leg it arrived
    /// over (MOS-CQ once the leg has an RTT, else MOS-LQ), its R-factor
    /// (narrowband scale) and the BurstR of its loss.
    pub(crate) proxy_mos: Option<f64>,
    pub(crate) proxy_r_factor: Option<f64>,
    pub(crate) proxy_burst_r: Option<f64>,
    /// Loss the impairment caused before the proxy: sequence numbers missing
    /// at the proxy's side, counted by the receiving endpoint (the proxy
    /// itself drops nothing on loopback).
    pub(crate) truth_lost_before_proxy: i64,
    /// What the receiving endpoint saw end to end.
    pub(crate) receiver_packets: u64,
    pub(crate) receiver_lost: i64,
    pub(crate) receiver_jitter_ms: f64,
    /// The proxy generates report blocks about this stream.
    pub(crate) proxy_generating: bool,
    /// Report blocks about this stream that reached its sender, and the
    /// RTT the sender computed from them (as a browser would).
    pub(crate) reports_at_sender: u64,
    pub(crate) sender_rtt_ms: Option<f64>,
    pub(crate) sender_fraction_lost: Option<f64>,
}

/// RTT the proxy measured on one leg.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LegSummary {
    pub(crate) leg: String,
    pub(crate) injected_rtt_ms: f64,
    pub(crate) sr_rr_ms: Option<f64>,
    pub(crate) sr_rr_samples: u64,
    pub(crate) xr_dlrr_ms: Option<f64>,
    pub(crate) stun_ms: Option<f64>,
    pub(crate) stun_samples: u64,
    pub(crate) reports_generated: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoSummary {
    pub(crate) seconds: f64,
    pub(crate) rtcp: String,
    pub(crate) seed: u64,
    pub(crate) impairment: ImpairmentSummary,
    pub streams: Vec<StreamSummary>,
    pub(crate) legs: Vec<LegSummary>,
    /// The end-of-session record of the call (what the OTLP log record
    /// carries): per leg, the packets lost on it and its MOS.
    pub sessions: Vec<crate::export::metrics::SessionQuality>,
    /// `--dtls`: how both DTLS legs ended up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtls: Option<DtlsSummary>,
    pub(crate) api: String,
}

/// `--dtls`: the two legs' handshakes as the proxy and the endpoints saw them.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DtlsSummary {
    /// The SRTP profile the browser's leg negotiated.
    pub suite: String,
    /// The proxy's leg states (`connected`, `failed`, …).
    pub browser_leg: String,
    pub sfu_leg: String,
    /// Each endpoint was handed the proxy's certificate, the one whose
    /// fingerprint the calls API put in its SDP.
    pub browser_saw_proxy_certificate: bool,
    pub sfu_saw_proxy_certificate: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImpairmentSummary {
    /// Long-run loss rate of the client leg's model, each direction, %.
    pub(crate) expected_loss_percent: f64,
    /// Datagrams (all kinds) the client leg dropped, per direction.
    pub(crate) dropped_to_proxy: u64,
    pub(crate) dropped_to_browser: u64,
    pub(crate) delay_ms: f64,
    pub(crate) jitter_ms: f64,
    /// Expected RFC 3550 jitter for uniform ±J delay variation: E|Dᵢ − Dⱼ| = 2J/3.
    pub(crate) expected_jitter_ms: f64,
    pub(crate) upstream_delay_ms: f64,
}

fn client_leg(opts: &DemoOptions, seed: u64) -> Result<ImpairConfig, String> {
    let burst = if opts.burst_loss > 0.0 {
        Some(
            GilbertElliott::with_rate(opts.burst_loss, BURST_MEAN_PACKETS)
                .ok_or_else(|| format!("burst loss {} is not a rate in 0..1", opts.burst_loss))?,
        )
    } else {
        opts.burst.then_some(BURST)
    };
    Ok(ImpairConfig {
        seed,
        loss: opts.loss,
        burst,
        delay_ms: opts.delay_ms,
        jitter_ms: opts.jitter_ms,
        // Independent per-packet delays: no head-of-line holding across the
        // BUNDLE's streams, so the expected jitter is exactly 2J/3.
        preserve_order: false,
        ..Default::default()
    })
}

fn upstream_leg(opts: &DemoOptions, seed: u64) -> ImpairConfig {
    ImpairConfig {
        seed,
        delay_ms: opts.upstream_delay_ms,
        ..Default::default()
    }
}

/// Runs the demo; prints the live table to `out` and returns the summary.
pub fn run(opts: &DemoOptions, stop: Arc<AtomicBool>, out: &mut dyn Write) -> Result<DemoSummary, String> {
    client_leg(opts, 0)?.validate().map_err(|e| e.to_string())?;
    upstream_leg(opts, 0).validate().map_err(|e| e.to_string())?;
    let clock = Clock::new();
    let stop_send = Arc::new(AtomicBool::new(false));
    let stop_receive = Arc::new(AtomicBool::new(false));

    // `--dtls`: each endpoint has its own certificate, as a browser and an
    // SFU do; the browser is the DTLS client (`a=setup:active` side).
    let identities = match opts.dtls {
        true => Some((
            crate::dtls::DtlsIdentity::generate().map_err(|e| e.to_string())?,
            crate::dtls::DtlsIdentity::generate().map_err(|e| e.to_string())?,
        )),
        false => None,
    };
    let secure = |id: Option<&crate::dtls::DtlsIdentity>, active: bool| {
        id.and_then(|id| Secure::new(id, active, clock.instant_of(clock.now())))
    };

    // The SFU first: everything else points at it.
    let mut sfu = Endpoint::start(
        Role {
            rr_ssrc: SFU_STREAMS[0].ssrc,
            streams: &SFU_STREAMS,
            send_rr: false, // the problem the proxy fixes
            stun_checks: false,
            ice_username: None,
        },
        None,
        clock,
        stop_send.clone(),
        stop_receive.clone(),
        secure(identities.as_ref().map(|i| &i.1), false),
    )
    .map_err(|e| format!("cannot start the synthetic SFU: {e}"))?;
    let mut up_cfg = ForwarderConfig::new(sfu.local_addr());
    up_cfg.to_target = upstream_leg(opts, opts.seed.wrapping_add(2));
    up_cfg.to_client = upstream_leg(opts, opts.seed.wrapping_add(3));
    let upstream_fwd = Forwarder::start(up_cfg).map_err(|e| format!("cannot start the upstream leg: {e}"))?;

    let mut config = Config::embedded_default();
    // A short run should show generation for audio too: the default 5 s
    // audio report interval (RFC 3550's minimum) × 3 intervals would take
    // 15 s to call the SFU's audio RRs missing.
    config.rtcp.min_interval_audio_ms = 1000;
    let relay_cfg = config.relay.first_mut().ok_or("the embedded config has no [[relay]]")?;
    relay_cfg.listen = "127.0.0.1:0".parse().map_err(|_| "address")?;
    relay_cfg.upstream = upstream_fwd.listen();
    relay_cfg.upstream_bind = "127.0.0.1".parse().map_err(|_| "address")?;
    relay_cfg.rtcp = opts.rtcp;
    if opts.dtls {
        relay_cfg.dtls = crate::config::DtlsMode::Terminate;
    }
    config.api.listen = opts.api_listen;
    config.metrics.interval_secs = opts.metrics_interval_secs;
    config.validate().map_err(|e| e.to_string())?;
    let relay = loopback::start_relay(&config).map_err(|e| format!("cannot start the relay: {e}"))?;
    let proxy_listen = relay
        .bound()
        .first()
        .map(|b| b.listen)
        .ok_or("the relay bound nothing")?;
    let api = loopback::start_api(&relay, &config, ApiOptions::from_config(&config))
        .map_err(|e| format!("cannot start the HTTP API on {}: {e}", config.api.listen))?;

    let mut client_cfg = ForwarderConfig::new(proxy_listen);
    client_cfg.to_target = client_leg(opts, opts.seed)?;
    client_cfg.to_client = client_leg(opts, opts.seed.wrapping_add(1))?;
    // Each stream's losses depend on the seed and its own packet count,
    // not on how the threads interleaved audio, video and RTCP: the same
    // seed loses the same share of the audio run after run.
    client_cfg.per_stream = true;
    let client_fwd = Forwarder::start(client_cfg).map_err(|e| format!("cannot start the client leg: {e}"))?;
    // `--dtls`: the call's SDPs pass through the calls API, as the
    // application's signalling would hand them over.
    let proxy_fingerprint = match &identities {
        Some((browser_id, sfu_id)) => Some(set_up_call(api.local_addr, browser_id, sfu_id, sfu.local_addr())?),
        None => None,
    };
    let mut browser = Endpoint::start(
        Role {
            rr_ssrc: 0x1111_00ff,
            streams: &BROWSER_STREAMS,
            send_rr: true,
            stun_checks: true,
            ice_username: opts.dtls.then_some(DEMO_ICE_USERNAME),
        },
        Some(client_fwd.listen()),
        clock,
        stop_send.clone(),
        stop_receive.clone(),
        secure(identities.as_ref().map(|i| &i.0), true),
    )
    .map_err(|e| format!("cannot start the synthetic browser: {e}"))?;

    if let Some(ready) = &opts.ready {
        let _ = ready.send(DemoAddresses {
            proxy: proxy_listen,
            api: api.local_addr,
        });
    }
    let api_base = format!("http://{}", api.local_addr);
    let banner = format!(
        "rtp-middlebox demo{}: browser ⇄ [client leg: {:.1}% loss{}, {} ms ± {} ms] ⇄ proxy ({}) ⇄ [upstream leg: {} ms] ⇄ SFU (suppresses its RRs)\n\
         stats stream: {api_base}/v1/stream   sessions: {api_base}/v1/sessions   metrics: {api_base}/metrics\n",
        if opts.dtls { " (DTLS-SRTP on both legs, terminated by the proxy)" } else { "" },
        opts.loss * 100.0,
        if opts.burst_loss > 0.0 {
            format!(
                " + {:.1}% in bursts of {BURST_MEAN_PACKETS} packets",
                opts.burst_loss * 100.0
            )
        } else if opts.burst {
            " + bursts".to_string()
        } else {
            String::new()
        },
        opts.delay_ms,
        opts.jitter_ms,
        opts.rtcp,
        opts.upstream_delay_ms,
    );
    let _ = out.write_all(banner.as_bytes());
    let tty = opts.display == Display::Auto && std::io::stdout().is_terminal();
    let started = clock.now();
    let mut next_draw = Duration::from_secs(1);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let elapsed = clock.now().saturating_since(started);
        if stop.load(Ordering::Relaxed) || opts.seconds.is_some_and(|s| elapsed >= Duration::from_secs(s)) {
            break;
        }
        if opts.display != Display::Off && elapsed >= next_draw {
            let views = relay.sessions_blocking();
            let rows = stream_rows(&views, &browser, &sfu);
            let legs = leg_rows(&views, opts);
            let table = render_live(&rows, &legs, opts.rtcp, elapsed.as_secs_f64());
            if tty {
                // Home the cursor and clear below it: the table refreshes in place.
                let _ = write!(out, "\x1b[H\x1b[J{banner}{table}");
            } else {
                let _ = out.write_all(table.as_bytes());
            }
            let _ = out.flush();
            next_draw += if tty {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(5)
            };
        }
    }

    // Stop the senders, let the legs drain (delay + jitter), then read
    // everything before tearing the relay down.
    stop_send.store(true, Ordering::Relaxed);
    let elapsed = clock.now().saturating_since(started).as_secs_f64();
    std::thread::sleep(Duration::from_millis(
        (opts.delay_ms + opts.jitter_ms + opts.upstream_delay_ms) as u64 + 100,
    ));
    stop_receive.store(true, Ordering::Relaxed);
    browser.join();
    sfu.join();
    let views = relay.sessions_blocking();
    let streams = stream_rows(&views, &browser, &sfu);
    let legs = leg_rows(&views, opts);
    let dtls = proxy_fingerprint.map(|expected| {
        let leg = |e: &Endpoint| {
            let st = lock(&e.state);
            let sec = st.secure.as_ref();
            (
                sec.and_then(|s| s.keyed.as_ref()).map(|k| k.suite),
                sec.and_then(|s| s.peer_fingerprint) == Some(expected),
            )
        };
        let ((suite, browser_ok), (_, sfu_ok)) = (leg(&browser), leg(&sfu));
        DtlsSummary {
            suite: suite.unwrap_or("none").to_string(),
            browser_leg: views
                .iter()
                .find_map(|v| v.snapshot.dtls.as_ref())
                .map_or("none", |d| d.client)
                .to_string(),
            sfu_leg: views
                .iter()
                .find_map(|v| v.snapshot.dtls.as_ref())
                .map_or("none", |d| d.upstream)
                .to_string(),
            browser_saw_proxy_certificate: browser_ok,
            sfu_saw_proxy_certificate: sfu_ok,
        }
    });
    let client_counters = client_fwd.stop();
    let _ = upstream_fwd.stop();
    api.stop();
    // The end-of-session record of each session the drain closed.
    let sessions = relay
        .shutdown(Duration::from_secs(2))
        .iter()
        .map(crate::export::publish::quality)
        .collect();

    let model = crate::sim::impair::Impairment::new(client_leg(opts, 0)?).map_err(|e| e.to_string())?;
    Ok(DemoSummary {
        seconds: elapsed,
        rtcp: opts.rtcp.to_string(),
        seed: opts.seed,
        impairment: ImpairmentSummary {
            expected_loss_percent: model.config().expected_loss_rate() * 100.0,
            dropped_to_proxy: client_counters.to_target.total().dropped,
            dropped_to_browser: client_counters.to_client.total().dropped,
            delay_ms: opts.delay_ms,
            jitter_ms: opts.jitter_ms,
            expected_jitter_ms: 2.0 * opts.jitter_ms / 3.0,
            upstream_delay_ms: opts.upstream_delay_ms,
        },
        streams,
        legs,
        sessions,
        dtls,
        api: api_base,
    })
}

/// The ICE USERNAME of the demo browser's checks: the SFU's ufrag, then its
/// own (RFC 8445 §7.2.2), matching the SDPs of [`set_up_call`].
const DEMO_ICE_USERNAME: &[u8] = b"demoSfu:demoBrowser";

/// `--dtls`: the browser's offer and the SFU's answer through the calls
/// API; returns the proxy's certificate fingerprint both SDPs came back
/// with (each endpoint must then see that certificate in its handshake).
fn set_up_call(
    api: SocketAddr,
    browser: &crate::dtls::DtlsIdentity,
    sfu: &crate::dtls::DtlsIdentity,
    sfu_at: SocketAddr,
) -> Result<[u8; 32], String> {
    let post = |path: &str, sdp: String, from: &str| -> Result<String, String> {
        let body = serde_json::json!({ "sdp": sdp, "from": from }).to_string();
        let mut resp = ureq::post(&format!("http://{api}{path}"))
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .map_err(|e| format!("calls API {path}: {e}"))?;
        let text = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        v["sdp"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("calls API {path}: {text}"))
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 9));
    let offer = webrtc_sdp("demoBrowser", &browser.fingerprint_sdp(), "actpass", loopback, true);
    let to_sfu = post("/v1/calls/demo/offer", offer, "client")?;
    let answer = webrtc_sdp("demoSfu", &sfu.fingerprint_sdp(), "passive", sfu_at, true);
    let to_browser = post("/v1/calls/demo/answer", answer, "upstream")?;
    let proxy = |sdp: &str| -> Result<[u8; 32], String> {
        let d = crate::sdp::inspect(sdp).map_err(|e| e.to_string())?;
        d.fingerprints
            .first()
            .and_then(|f| <[u8; 32]>::try_from(f.value.as_slice()).ok())
            .ok_or_else(|| "no fingerprint in the rewritten SDP".to_string())
    };
    let (a, b) = (proxy(&to_sfu)?, proxy(&to_browser)?);
    if a != b || a == browser.fingerprint() || a == sfu.fingerprint() {
        return Err("the calls API did not put the proxy's fingerprint in both SDPs".into());
    }
    Ok(a)
}

fn source(views: &[SessionView], side: Side, ssrc: u32) -> Option<&SourceSnapshot> {
    views
        .iter()
        .flat_map(|v| v.snapshot.side(side).sources.iter())
        .find(|s| s.ssrc == ssrc)
}

fn stream_rows(views: &[SessionView], browser: &Endpoint, sfu: &Endpoint) -> Vec<StreamSummary> {
    let b = lock(&browser.state);
    let s = lock(&sfu.state);
    let mut rows = Vec::new();
    for (specs, side, sender, receiver, direction) in [
        (&BROWSER_STREAMS, Side::Client, &b, &s, "browser→sfu"),
        (&SFU_STREAMS, Side::Upstream, &s, &b, "sfu→browser"),
    ] {
        for spec in specs.iter() {
            let src = source(views, side, spec.ssrc);
            let rtp = src.and_then(|x| x.rtp.as_ref());
            let truth = receiver.received.get(&spec.ssrc);
            let reports = sender.reports.get(&spec.ssrc);
            // Browser→SFU: only the client leg (before the proxy) loses, so
            // the SFU's missing sequence numbers are exactly the proxy's
            // truth. SFU→browser: the upstream leg loses nothing.
            let truth_before_proxy = if side == Side::Client {
                truth.map_or(0, ReceivedTruth::lost)
            } else {
                0
            };
            let proxy_lost = rtp.map_or(0, |r| r.packets_lost);
            let proxy_expected = rtp.map_or(0, |r| r.packets_expected);
            rows.push(StreamSummary {
                stream: spec.name.into(),
                kind: spec.kind.into(),
                ssrc: spec.ssrc,
                direction: direction.into(),
                sent: sender.sent.get(&spec.ssrc).copied().unwrap_or(0),
                proxy_packets: rtp.map_or(0, |r| r.packets_received),
                proxy_lost,
                proxy_loss_percent: if proxy_expected > 0 {
                    proxy_lost as f64 * 100.0 / proxy_expected as f64
                } else {
                    0.0
                },
                proxy_jitter_ms: rtp.and_then(|r| r.jitter).map(|j| j * 1000.0),
                proxy_mean_jitter_ms: rtp.and_then(|r| r.mean_jitter).map(|j| j * 1000.0),
                proxy_mos: src.and_then(|x| x.quality).map(|q| q.mos_cq.unwrap_or(q.mos_lq)),
                proxy_r_factor: src.and_then(|x| x.quality).map(|q| q.r_narrowband),
                proxy_burst_r: rtp.map(|r| r.loss_model.burst_r),
                truth_lost_before_proxy: truth_before_proxy,
                receiver_packets: truth.map_or(0, |t| t.packets),
                receiver_lost: truth.map_or(0, ReceivedTruth::lost),
                receiver_jitter_ms: truth.map_or(0.0, |t| t.jitter_units * 1000.0 / f64::from(spec.clock_rate)),
                proxy_generating: src.is_some_and(|x| x.generating),
                reports_at_sender: reports.map_or(0, |r| r.blocks),
                sender_rtt_ms: reports
                    .and_then(|r| (r.rtt_samples > 0).then(|| r.rtt_total * 1000.0 / r.rtt_samples as f64)),
                sender_fraction_lost: reports.map(|r| r.fraction_lost),
            });
        }
    }
    rows
}

fn leg_rows(views: &[SessionView], opts: &DemoOptions) -> Vec<LegSummary> {
    let ms = |x: Option<f64>| x.map(|v| v * 1000.0);
    [
        (Side::Client, "client", opts.delay_ms),
        (Side::Upstream, "upstream", opts.upstream_delay_ms),
    ]
    .into_iter()
    .map(|(side, leg, one_way)| {
        let mut row = LegSummary {
            leg: leg.into(),
            injected_rtt_ms: 2.0 * one_way,
            ..Default::default()
        };
        for v in views {
            let s = v.snapshot.side(side);
            row.sr_rr_ms = ms(s.rtt_sr_rr.mean).or(row.sr_rr_ms);
            row.sr_rr_samples += s.rtt_sr_rr.measurements;
            row.xr_dlrr_ms = ms(s.rtt_xr_dlrr.mean).or(row.xr_dlrr_ms);
            row.stun_ms = ms(s.rtt_stun.mean).or(row.stun_ms);
            row.stun_samples += s.rtt_stun.measurements;
            // Reports generated toward this side's senders.
            row.reports_generated += s.reports_generated;
        }
        row
    })
    .collect()
}

fn opt_mos(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.1}"))
}

impl LegSummary {
    /// The best RTT the proxy has for this leg: SR/RR, else XR, else STUN.
    fn best_ms(&self) -> Option<f64> {
        self.sr_rr_ms.or(self.xr_dlrr_ms).or(self.stun_ms)
    }
}

fn render_live(rows: &[StreamSummary], legs: &[LegSummary], mode: RtcpMode, elapsed: f64) -> String {
    let leg_rtt = |name: &str| opt_ms(legs.iter().find(|l| l.leg == name).and_then(LegSummary::best_ms));
    let (client_rtt, upstream_rtt) = (leg_rtt("client"), leg_rtt("upstream"));
    let mut t = format!(
        "\n[{elapsed:5.1} s]\n{:<14} {:<12} {:>7} {:>5} {:>6} {:>6} {:>5} {:>10} {:>10} {:<9} {:<10}\n",
        "stream",
        "direction",
        "packets",
        "lost",
        "loss%",
        "jitter",
        "MOS",
        "RTT client",
        "RTT upstr",
        "rtcp",
        "reports"
    );
    t += &format!(
        "{:<14} {:<12} {:>7} {:>5} {:>6} {:>6} {:>5} {:>10} {:>10}\n",
        "", "", "", "", "", "ms", "", "leg ms", "leg ms"
    );
    for r in rows {
        t += &format!(
            "{:<14} {:<12} {:>7} {:>5} {:>6.2} {:>6} {:>5} {:>10} {:>10} {:<9} {:<10}\n",
            r.stream,
            r.direction,
            r.proxy_packets,
            r.proxy_lost,
            r.proxy_loss_percent,
            opt_ms(r.proxy_jitter_ms),
            opt_mos(r.proxy_mos),
            client_rtt,
            upstream_rtt,
            mode.to_string(),
            if r.proxy_generating { "generating" } else { "-" },
        );
    }
    t
}

/// The closing comparison of what the proxy measured with what was injected.
pub fn render_summary(s: &DemoSummary) -> String {
    let i = &s.impairment;
    let mut t = format!(
        "\n== summary after {:.1} s (rtcp={}, seed {})\n\
         client leg: {:.2}% expected loss per direction (dropped {} datagrams toward the proxy, {} toward the browser), \
         {} ms ± {} ms (expected RFC 3550 jitter ≈ {:.2} ms); upstream leg: {} ms\n\n",
        s.seconds,
        s.rtcp,
        s.seed,
        i.expected_loss_percent,
        i.dropped_to_proxy,
        i.dropped_to_browser,
        i.delay_ms,
        i.jitter_ms,
        i.expected_jitter_ms,
        i.upstream_delay_ms,
    );
    t += &format!(
        "{:<14} {:>6} {:>7} {:>7} {:>7} {:>8} {:>8} {:>6} {:>5} {:>5} {:>9} {:>8} {:>8}\n",
        "stream",
        "sent",
        "proxy",
        "proxy",
        "truth",
        "proxy",
        "proxy",
        "proxy",
        "proxy",
        "proxy",
        "receiver",
        "reports",
        "sender"
    );
    t += &format!(
        "{:<14} {:>6} {:>7} {:>7} {:>7} {:>8} {:>8} {:>6} {:>5} {:>5} {:>9} {:>8} {:>8}\n",
        "", "", "lost", "loss%", "lost", "jitter", "mean jit", "BurstR", "R", "MOS", "jitter", "at", "RTT ms"
    );
    t += &format!(
        "{:<14} {:>6} {:>7} {:>7} {:>7} {:>8} {:>8} {:>6} {:>5} {:>5} {:>9} {:>8} {:>8}\n",
        "", "", "", "", "", "ms", "ms", "", "", "", "ms", "sender", ""
    );
    for r in &s.streams {
        t += &format!(
            "{:<14} {:>6} {:>7} {:>7.2} {:>7} {:>8} {:>8} {:>6} {:>5} {:>5} {:>9.1} {:>8} {:>8}\n",
            r.stream,
            r.sent,
            r.proxy_lost,
            r.proxy_loss_percent,
            r.truth_lost_before_proxy,
            opt_ms(r.proxy_jitter_ms),
            opt_ms(r.proxy_mean_jitter_ms),
            r.proxy_burst_r.map_or_else(|| "-".into(), |b| format!("{b:.2}")),
            r.proxy_r_factor.map_or_else(|| "-".into(), |x| format!("{x:.0}")),
            opt_mos(r.proxy_mos),
            r.receiver_jitter_ms,
            r.reports_at_sender,
            opt_ms(r.sender_rtt_ms),
        );
    }
    t += "\nRTT per leg (proxy's own measurement, mean):\n";
    for l in &s.legs {
        t += &format!(
            "  {:<8} injected {:>5.1} ms   SR/RR {:>6} ms ({} samples)   STUN {:>6} ms ({} samples)   generated reports toward it: {}\n",
            l.leg,
            l.injected_rtt_ms,
            opt_ms(l.sr_rr_ms),
            l.sr_rr_samples,
            opt_ms(l.stun_ms),
            l.stun_samples,
            l.reports_generated,
        );
    }
    for q in &s.sessions {
        t += &format!("\nend-of-session record of {} (as exported over OTLP):\n", q.session);
        for l in &q.legs {
            t += &format!(
                "  {:<8} lost on this leg {:>5} (either direction)   MOS worst {:>5} mean {:>5}\n",
                l.leg,
                l.lost_on_leg,
                opt_mos(l.mos_worst),
                opt_mos(l.mos_mean),
            );
        }
    }
    if let Some(d) = &s.dtls {
        t += &format!(
            "\nDTLS-SRTP terminated on both legs ({}): browser leg {}, SFU leg {}; each endpoint got the proxy's certificate \
             (the fingerprint the calls API wrote into its SDP): browser {}, SFU {}\n",
            d.suite,
            d.browser_leg,
            d.sfu_leg,
            if d.browser_saw_proxy_certificate { "yes" } else { "NO" },
            if d.sfu_saw_proxy_certificate { "yes" } else { "NO" },
        );
    }
    t += "\nMOS and R: the proxy's E-model (G.107 / G.107.1 for Opus) of each audio stream on the leg it arrived over,\n\
          from its loss on arrival (BurstR: 1 random, > 1 bursty), jitter and the leg's RTT.\n";
    t += "\n'truth' is the loss before the proxy, from the receiving endpoint's missing sequence numbers;\n\
          'reports at sender' counts report blocks about the stream that reached its sender (the SFU sends none:\n\
          in `auto` and `terminate` they are the proxy's), and the RTT the sender computes from them.\n";
    t
}
