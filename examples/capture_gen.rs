//! Test-capture generator: receive real RTP/RTCP on loopback UDP ports, pass
//! every datagram through the crate's seeded impairment model
//! (`rtp_middlebox::impair`, one instance per port), and write what a receiver
//! behind that impaired path would have captured:
//!
//! - `--pcap FILE`: classic pcap, microsecond timestamps, LINKTYPE_ETHERNET,
//!   with IPv4/UDP headers (correct lengths and checksums, built with etherparse);
//! - `--pcapng-sll2 FILE`: the same packets as pcapng with LINKTYPE_LINUX_SLL2
//!   (interface "lo", `if_tsresol` = 9, i.e. nanosecond timestamp units);
//! - `--sidecar FILE`: JSON with, per destination port and per RTP SSRC, what
//!   the impairment did (offered, dropped sequence numbers, duplicated,
//!   reordered) and the loss a capture-based analyzer should therefore report.
//!
//! Packet timestamps are the scheduled delivery times (arrival + impairment
//! delay), sorted by delivery time, floored to whole microseconds so that both
//! output files carry identical times.
//!
//! Used by `scripts/make-captures.sh`; see `tests/data/README.md`.
//!
//! ```text
//! cargo run --release --example capture_gen -- --port 5000 --port 5001 \
//!     --seed 42 --loss 0.03 --delay-ms 20 --jitter-ms 8 \
//!     --pcap out.pcap --pcapng-sll2 out.pcapng --sidecar out.json --ready-file /tmp/ready
//! ```
// This binary is an I/O shell (sockets and the clock), like the runtime: the
// engine-side rule against reading clocks does not apply here.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, UdpHeader};
use rtp_middlebox::sim::impair::{derive_seed, Fate, GilbertElliott, ImpairConfig, Impairment};
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "Receive RTP/RTCP on loopback ports, impair it deterministically, write pcap/pcapng + JSON sidecar")]
struct Args {
    /// UDP port to listen on (repeat, or comma-separated).
    #[arg(long = "port", required = true, value_delimiter = ',')]
    ports: Vec<u16>,
    /// Local IPv4 address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: Ipv4Addr,
    /// Hard limit on the receive phase, seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Stop once something was received and every port has been quiet this long, seconds.
    #[arg(long, default_value_t = 2.0)]
    idle_exit: f64,
    /// Stop after this many datagrams in total (safety bound).
    #[arg(long, default_value_t = 200_000)]
    max_packets: u64,
    /// Written (empty) once every socket is bound.
    #[arg(long)]
    ready_file: Option<PathBuf>,

    /// Base seed; port P uses `derive_seed(seed, P)`.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Random loss probability.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Gilbert–Elliott burst loss: P_GOOD_TO_BAD,P_BAD_TO_GOOD,LOSS_IN_BAD[,LOSS_IN_GOOD].
    #[arg(long)]
    burst: Option<String>,
    #[arg(long, default_value_t = 0.0)]
    delay_ms: f64,
    /// Delay variation (uniform ± this many ms).
    #[arg(long, default_value_t = 0.0)]
    jitter_ms: f64,
    /// Probability a packet is held back behind its successor(s).
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Extra hold for reordered packets, ms (default: 2 × jitter + 20).
    #[arg(long)]
    reorder_hold_ms: Option<f64>,
    /// Duplicate probability.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Full impairment config as JSON (`ImpairConfig`); replaces the flags above except --seed.
    #[arg(long)]
    impair_json: Option<String>,

    /// Classic pcap output (Ethernet, µs).
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// pcapng output (Linux cooked v2, ns resolution).
    #[arg(long)]
    pcapng_sll2: Option<PathBuf>,
    /// JSON sidecar output.
    #[arg(long)]
    sidecar: Option<PathBuf>,
    /// Signalling preamble (Ethernet pcap, µs): a SIP INVITE and 200 OK whose
    /// SDP maps every captured RTP port to its payload types (see --rtpmap),
    /// timestamped just before the first captured packet. Not part of the
    /// fixture: merged in front of it (`mergecap -a`) only so that Wireshark
    /// learns the dynamic payload types' clock rates as it would from real
    /// signalling.
    #[arg(long)]
    sdp_preamble: Option<PathBuf>,
    /// SDP rtpmap for the preamble, `PT=ENCODING/RATE[/CHANNELS]` (repeat).
    /// Static payload types 0 (PCMU/8000) and 8 (PCMA/8000) need none.
    #[arg(long = "rtpmap")]
    rtpmaps: Vec<String>,
}

/// One datagram as received, with its fate.
struct Received {
    port: u16,
    /// Order of arrival on this port.
    index: u64,
    arrival_ns: u64,
    peer: SocketAddr,
    data: Vec<u8>,
    fate: Fate,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Rtp { ssrc: u32, pt: u8, seq: u16 },
    Rtcp,
    Other,
}

/// RTP (v2, second byte outside the RTCP range 192..=223 of RFC 5761 §4, which
/// covers SR/RR/SDES/BYE/APP 200..=204 and feedback 205..=207) or RTCP.
fn classify(d: &[u8]) -> Kind {
    if d.len() < 8 || d[0] >> 6 != 2 {
        return Kind::Other;
    }
    if (192..=223).contains(&d[1]) {
        return Kind::Rtcp;
    }
    if d.len() < 12 {
        return Kind::Other;
    }
    Kind::Rtp {
        ssrc: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
        pt: d[1] & 0x7f,
        seq: u16::from_be_bytes([d[2], d[3]]),
    }
}

fn impair_config(args: &Args) -> Result<ImpairConfig, String> {
    let mut cfg = if let Some(j) = &args.impair_json {
        serde_json::from_str::<ImpairConfig>(j).map_err(|e| format!("--impair-json: {e}"))?
    } else {
        let burst = match &args.burst {
            None => None,
            Some(s) => {
                let v: Vec<f64> = s
                    .split(',')
                    .map(|x| x.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--burst: {e}"))?;
                if !(3..=4).contains(&v.len()) {
                    return Err("--burst takes P_GOOD_TO_BAD,P_BAD_TO_GOOD,LOSS_IN_BAD[,LOSS_IN_GOOD]".into());
                }
                Some(GilbertElliott {
                    p_good_to_bad: v[0],
                    p_bad_to_good: v[1],
                    loss_in_bad: v[2],
                    loss_in_good: v.get(3).copied().unwrap_or(0.0),
                })
            }
        };
        ImpairConfig {
            loss: args.loss,
            burst,
            delay_ms: args.delay_ms,
            jitter_ms: args.jitter_ms,
            reorder: args.reorder,
            reorder_hold_ms: args.reorder_hold_ms,
            duplicate: args.duplicate,
            ..Default::default()
        }
    };
    cfg.seed = args.seed;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn config_json(cfg: &ImpairConfig) -> Value {
    json!({
        "seed": cfg.seed,
        "loss": cfg.loss,
        "burst": cfg.burst.map(|b| json!({
            "p_good_to_bad": b.p_good_to_bad,
            "p_bad_to_good": b.p_bad_to_good,
            "loss_in_bad": b.loss_in_bad,
            "loss_in_good": b.loss_in_good,
        })),
        "delay_ms": cfg.delay_ms,
        "jitter_ms": cfg.jitter_ms,
        "jitter_distribution": format!("{:?}", cfg.jitter_distribution).to_lowercase(),
        "preserve_order": cfg.preserve_order,
        "reorder": cfg.reorder,
        "reorder_hold_ms": cfg.effective_reorder_hold_ms(),
        "duplicate": cfg.duplicate,
        "expected_loss_rate": cfg.expected_loss_rate(),
    })
}

fn receive(args: &Args, cfg: &ImpairConfig) -> std::io::Result<Vec<Received>> {
    let sockets: Vec<(u16, UdpSocket)> = args
        .ports
        .iter()
        .map(|&p| {
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(args.bind), p))?;
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            Ok((p, s))
        })
        .collect::<std::io::Result<_>>()?;

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let last_rx_ns = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    if let Some(r) = &args.ready_file {
        std::fs::write(r, b"")?;
    }
    eprintln!("capture_gen: listening on {:?} (seed {})", args.ports, cfg.seed);

    let mut handles = Vec::new();
    for (port, sock) in sockets {
        let mut imp = Impairment::new(ImpairConfig {
            seed: derive_seed(cfg.seed, u64::from(port)),
            ..cfg.clone()
        })
        .expect("validated");
        let (stop, last_rx_ns, total) = (stop.clone(), last_rx_ns.clone(), total.clone());
        handles.push(std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65536];
            let mut index = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match sock.recv_from(&mut buf) {
                    Ok((n, peer)) => {
                        let arrival_ns = start.elapsed().as_nanos() as u64;
                        last_rx_ns.fetch_max(arrival_ns, Ordering::Relaxed);
                        total.fetch_add(1, Ordering::Relaxed);
                        let fate = imp.offer(arrival_ns, n);
                        out.push(Received {
                            port,
                            index,
                            arrival_ns,
                            peer,
                            data: buf[..n].to_vec(),
                            fate,
                        });
                        index += 1;
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(e) => {
                        eprintln!("capture_gen: port {port}: {e}");
                        break;
                    }
                }
            }
            (port, out, *imp.counters())
        }));
    }

    let duration_ns = (args.duration * 1e9) as u64;
    let idle_ns = (args.idle_exit * 1e9) as u64;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = start.elapsed().as_nanos() as u64;
        let last = last_rx_ns.load(Ordering::Relaxed);
        if now >= duration_ns {
            eprintln!("capture_gen: duration limit reached");
            break;
        }
        if last > 0 && now.saturating_sub(last) >= idle_ns {
            break;
        }
        if total.load(Ordering::Relaxed) >= args.max_packets {
            eprintln!("capture_gen: packet limit reached");
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        let (port, out, c) = h.join().expect("receiver thread");
        eprintln!(
            "capture_gen: port {port}: offered {} dropped {} duplicated {} reordered {}",
            c.offered, c.dropped, c.duplicated, c.reordered
        );
        all.extend(out);
    }
    Ok(all)
}

/// One frame to write: delivery time and the IPv4 packet (without link header).
struct Frame {
    at_ns: u64,
    /// Index into the received list (for the sidecar's capture-order stats).
    rx: usize,
    ip_packet: Vec<u8>,
}

fn ipv4_udp(src: SocketAddr, dst: SocketAddr, ident: u16, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("IPv4 only");
    };
    let udp_len = u16::try_from(UdpHeader::LEN + payload.len()).expect("datagram fits");
    let mut ip = Ipv4Header::new(udp_len, 64, IpNumber::UDP, s.octets(), d.octets()).expect("fits");
    ip.identification = ident;
    ip.header_checksum = ip.calc_header_checksum();
    let udp = UdpHeader::with_ipv4_checksum(src.port(), dst.port(), &ip, payload).expect("fits");
    let mut v = Vec::with_capacity(ip.header_len() + UdpHeader::LEN + payload.len());
    ip.write(&mut v).expect("vec write");
    udp.write(&mut v).expect("vec write");
    v.extend_from_slice(payload);
    v
}

fn write_pcap(path: &PathBuf, base_ns: u64, frames: &[Frame]) -> std::io::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    // Global header: magic (µs), v2.4, thiszone 0, sigfigs 0, snaplen, LINKTYPE_ETHERNET.
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&0i32.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;
    let eth = Ethernet2Header {
        source: [0x02, 0, 0, 0, 0, 0x01],
        destination: [0x02, 0, 0, 0, 0, 0x02],
        ether_type: EtherType::IPV4,
    }
    .to_bytes();
    for f in frames {
        let t = base_ns + f.at_ns;
        let len = (eth.len() + f.ip_packet.len()) as u32;
        w.write_all(&((t / 1_000_000_000) as u32).to_le_bytes())?;
        w.write_all(&((t % 1_000_000_000 / 1_000) as u32).to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&eth)?;
        w.write_all(&f.ip_packet)?;
    }
    w.flush()
}

fn pcapng_block(w: &mut impl Write, block_type: u32, body: &[u8]) -> std::io::Result<()> {
    let pad = (4 - body.len() % 4) % 4;
    let total = (12 + body.len() + pad) as u32;
    w.write_all(&block_type.to_le_bytes())?;
    w.write_all(&total.to_le_bytes())?;
    w.write_all(body)?;
    w.write_all(&[0u8; 3][..pad])?;
    w.write_all(&total.to_le_bytes())
}

fn pcapng_option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&(value.len() as u16).to_le_bytes());
    body.extend_from_slice(value);
    body.extend(std::iter::repeat_n(0u8, (4 - value.len() % 4) % 4));
}

fn write_pcapng_sll2(path: &PathBuf, base_ns: u64, frames: &[Frame]) -> std::io::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    // Section Header Block.
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
    pcapng_option(&mut shb, 4, b"rtp-middlebox examples/capture_gen.rs"); // shb_userappl
    pcapng_option(&mut shb, 0, b"");
    pcapng_block(&mut w, 0x0A0D_0D0A, &shb)?;
    // Interface Description Block: LINKTYPE_LINUX_SLL2 (276), ns resolution.
    let mut idb = Vec::new();
    idb.extend_from_slice(&276u16.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&262_144u32.to_le_bytes());
    pcapng_option(&mut idb, 2, b"lo"); // if_name
    pcapng_option(&mut idb, 9, &[9]); // if_tsresol = 10^-9
    pcapng_option(&mut idb, 0, b"");
    pcapng_block(&mut w, 1, &idb)?;
    for f in frames {
        // SLL2 header (20 bytes): protocol, reserved, ifindex, ARPHRD_LOOPBACK,
        // PACKET_HOST, address length 6, address (8 bytes, zero on loopback).
        let mut pkt = Vec::with_capacity(20 + f.ip_packet.len());
        pkt.extend_from_slice(&0x0800u16.to_be_bytes());
        pkt.extend_from_slice(&0u16.to_be_bytes());
        pkt.extend_from_slice(&1u32.to_be_bytes());
        pkt.extend_from_slice(&772u16.to_be_bytes());
        pkt.push(0);
        pkt.push(6);
        pkt.extend_from_slice(&[0u8; 8]);
        pkt.extend_from_slice(&f.ip_packet);
        let t = base_ns + f.at_ns;
        let mut epb = Vec::with_capacity(20 + pkt.len() + 3);
        epb.extend_from_slice(&0u32.to_le_bytes()); // interface id
        epb.extend_from_slice(&((t >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(t as u32).to_le_bytes());
        epb.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        epb.extend_from_slice(&pkt);
        epb.extend(std::iter::repeat_n(0u8, (4 - pkt.len() % 4) % 4));
        pcapng_block(&mut w, 6, &epb)?;
    }
    w.flush()
}

fn sdp_body(ports: &[(u16, Vec<u8>)], rtpmaps: &BTreeMap<u8, String>, ip: Ipv4Addr) -> String {
    let mut sdp = format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=capture_gen\r\nc=IN IP4 {ip}\r\nt=0 0\r\n");
    for (port, pts) in ports {
        let video = pts
            .iter()
            .any(|pt| rtpmaps.get(pt).is_some_and(|m| m.contains("/90000")));
        let list: Vec<String> = pts.iter().map(|p| p.to_string()).collect();
        sdp += &format!(
            "m={} {port} RTP/AVP {}\r\n",
            if video { "video" } else { "audio" },
            list.join(" ")
        );
        for pt in pts {
            if let Some(m) = rtpmaps.get(pt) {
                sdp += &format!("a=rtpmap:{pt} {m}\r\n");
            }
        }
        sdp += "a=sendrecv\r\n";
    }
    sdp
}

fn sip_message(start_line: &str, to_tag: Option<&str>, sdp: &str) -> Vec<u8> {
    let to = match to_tag {
        Some(t) => format!("<sip:sender@127.0.0.1>;tag={t}"),
        None => "<sip:sender@127.0.0.1>".to_string(),
    };
    format!(
        "{start_line}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-capture-gen\r\nMax-Forwards: 70\r\n\
         From: <sip:receiver@127.0.0.1>;tag=capture-gen\r\nTo: {to}\r\nCall-ID: capture-gen@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:receiver@127.0.0.1:5060>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

/// Writes the SIP/SDP preamble: INVITE (offer: the receiver's RTP ports) and
/// 200 OK (answer: the senders' source ports), 2 ms and 1 ms before `first_ns`.
fn write_sdp_preamble(
    path: &PathBuf,
    base_ns: u64,
    first_ns: u64,
    offer: &[(u16, Vec<u8>)],
    answer: &[(u16, Vec<u8>)],
    rtpmaps: &BTreeMap<u8, String>,
    ip: Ipv4Addr,
) -> std::io::Result<()> {
    let sip = SocketAddr::new(IpAddr::V4(ip), 5060);
    let invite = sip_message(
        "INVITE sip:sender@127.0.0.1 SIP/2.0",
        None,
        &sdp_body(offer, rtpmaps, ip),
    );
    let ok = sip_message("SIP/2.0 200 OK", Some("sender"), &sdp_body(answer, rtpmaps, ip));
    let t0 = first_ns.saturating_sub(2_000_000) / 1_000 * 1_000;
    let frames = [
        Frame {
            at_ns: t0,
            rx: 0,
            ip_packet: ipv4_udp(sip, sip, 1, &invite),
        },
        Frame {
            at_ns: t0 + 1_000_000,
            rx: 0,
            ip_packet: ipv4_udp(sip, sip, 2, &ok),
        },
    ];
    write_pcap(path, base_ns, &frames)
}

/// Per-(port, SSRC) bookkeeping, in the sender's order.
#[derive(Default)]
struct StreamLog {
    src: Option<SocketAddr>,
    payload_types: Vec<u8>,
    offered: u64,
    first_seq: Option<u16>,
    last_seq: u16,
    last_ext: u64,
    dropped: Vec<u16>,
    dropped_ext: Vec<u64>,
    duplicated: Vec<u16>,
    reordered: Vec<u16>,
    /// Capture order: extended seq of each written copy.
    captured_ext: Vec<u64>,
}

fn main() {
    let args = Args::parse();
    let cfg = match impair_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("capture_gen: {e}");
            std::process::exit(2);
        }
    };
    let base_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64;
    let mut rx = match receive(&args, &cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("capture_gen: {e}");
            std::process::exit(1);
        }
    };
    rx.sort_by_key(|r| (r.port, r.index));

    // Sender-order bookkeeping (sequence extension per port + SSRC) and frames.
    let mut streams: BTreeMap<(u16, u32), StreamLog> = BTreeMap::new();
    let mut ext_of: Vec<Option<(u16, u32, u64)>> = Vec::with_capacity(rx.len());
    let mut per_port: BTreeMap<u16, BTreeMap<&'static str, u64>> = BTreeMap::new();
    let mut frames = Vec::new();
    let dst_ip = IpAddr::V4(args.bind);
    for (i, r) in rx.iter().enumerate() {
        let kind = classify(&r.data);
        let pc = per_port.entry(r.port).or_default();
        let kname = match kind {
            Kind::Rtp { .. } => "rtp",
            Kind::Rtcp => "rtcp",
            Kind::Other => "other",
        };
        *pc.entry(if kname == "rtp" {
            "rtp_offered"
        } else if kname == "rtcp" {
            "rtcp_offered"
        } else {
            "other_offered"
        })
        .or_default() += 1;
        if r.fate.is_dropped() {
            *pc.entry(match kind {
                Kind::Rtp { .. } => "rtp_dropped",
                Kind::Rtcp => "rtcp_dropped",
                Kind::Other => "other_dropped",
            })
            .or_default() += 1;
        }
        match kind {
            Kind::Rtp { ssrc, pt, seq } => {
                let s = streams.entry((r.port, ssrc)).or_default();
                s.src.get_or_insert(r.peer);
                if !s.payload_types.contains(&pt) {
                    s.payload_types.push(pt);
                }
                let ext = match s.first_seq {
                    None => {
                        s.first_seq = Some(seq);
                        65_536 + u64::from(seq)
                    }
                    Some(_) => s
                        .last_ext
                        .wrapping_add_signed(i64::from(seq.wrapping_sub(s.last_seq) as i16)),
                };
                s.last_seq = seq;
                s.last_ext = ext;
                s.offered += 1;
                match &r.fate {
                    Fate::Dropped(_) => {
                        s.dropped.push(seq);
                        s.dropped_ext.push(ext);
                    }
                    Fate::Delivered(d) => {
                        if d.duplicate_at_ns.is_some() {
                            s.duplicated.push(seq);
                        }
                        if d.reordered {
                            s.reordered.push(seq);
                        }
                    }
                }
                ext_of.push(Some((r.port, ssrc, ext)));
            }
            _ => ext_of.push(None),
        }
        let ident = (derive_seed(u64::from(r.port), r.index) & 0xffff) as u16;
        let ip = ipv4_udp(r.peer, SocketAddr::new(dst_ip, r.port), ident, &r.data);
        for at in r.fate.delivery_times() {
            // Floor to µs so the pcap (µs) and pcapng (ns) carry identical times.
            frames.push(Frame {
                at_ns: at / 1_000 * 1_000,
                rx: i,
                ip_packet: ip.clone(),
            });
        }
    }
    // Delivery order; ties keep arrival order (stable sort, original before duplicate).
    frames.sort_by_key(|f| (f.at_ns, rx[f.rx].arrival_ns));
    let mut written_per_port: BTreeMap<u16, u64> = BTreeMap::new();
    for f in &frames {
        *written_per_port.entry(rx[f.rx].port).or_default() += 1;
        if let Some((port, ssrc, ext)) = ext_of[f.rx] {
            streams.get_mut(&(port, ssrc)).expect("stream").captured_ext.push(ext);
        }
    }

    if let Some(p) = &args.pcap {
        write_pcap(p, base_ns, &frames).expect("write pcap");
    }
    if let Some(p) = &args.pcapng_sll2 {
        write_pcapng_sll2(p, base_ns, &frames).expect("write pcapng");
    }
    if let Some(p) = &args.sdp_preamble {
        let mut rtpmaps: BTreeMap<u8, String> = [(0u8, "PCMU/8000".to_string()), (8u8, "PCMA/8000".to_string())]
            .into_iter()
            .collect();
        for m in &args.rtpmaps {
            let Some((pt, enc)) = m
                .split_once('=')
                .and_then(|(pt, enc)| Some((pt.trim().parse::<u8>().ok()?, enc)))
            else {
                eprintln!("capture_gen: bad --rtpmap {m:?} (want PT=ENCODING/RATE[/CHANNELS])");
                std::process::exit(2);
            };
            rtpmaps.insert(pt, enc.trim().to_string());
        }
        let mut offer: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        let mut answer: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
        for ((port, _), s) in &streams {
            for pt in &s.payload_types {
                for (map, key) in [(&mut offer, *port), (&mut answer, s.src.map_or(*port, |a| a.port()))] {
                    let v = map.entry(key).or_default();
                    if !v.contains(pt) {
                        v.push(*pt);
                    }
                }
            }
        }
        let first_ns = frames.first().map_or(0, |f| f.at_ns);
        let offer: Vec<_> = offer.into_iter().collect();
        let answer: Vec<_> = answer.into_iter().collect();
        write_sdp_preamble(p, base_ns, first_ns, &offer, &answer, &rtpmaps, args.bind).expect("write preamble");
    }

    let mut ports_json = Vec::new();
    for &port in &args.ports {
        let mut rtp_streams = Vec::new();
        for ((_, ssrc), s) in streams.range((port, 0)..=(port, u32::MAX)) {
            let cap = &s.captured_ext;
            let (first, last) = (cap.first().copied(), cap.last().copied());
            let (min, max) = (cap.iter().min().copied(), cap.iter().max().copied());
            let in_capture = cap.len() as i64;
            let (lost_rfc, lost_ws, dropped_in_span) = match (first, last, min, max) {
                (Some(f), Some(l), Some(mn), Some(mx)) => (
                    // RFC 3550 A.3: base = first received, max = highest extended seq.
                    (mx as i64 - f as i64 + 1) - in_capture,
                    // Wireshark 4.0 `-z rtp,streams`: last packet's seq − first packet's seq + 1 (+ wraps).
                    (l as i64 - f as i64 + 1) - in_capture,
                    s.dropped_ext.iter().filter(|&&e| e >= mn && e <= mx).count() as u64,
                ),
                _ => (0, 0, 0),
            };
            rtp_streams.push(json!({
                "ssrc": format!("0x{ssrc:08X}"),
                "ssrc_dec": ssrc,
                "src": s.src.map(|a| a.to_string()),
                "payload_types": s.payload_types,
                "offered": s.offered,
                "first_seq_offered": s.first_seq,
                "last_seq_offered": s.last_seq,
                "dropped": s.dropped.len(),
                "dropped_seqs": s.dropped,
                "duplicated": s.duplicated.len(),
                "duplicated_seqs": s.duplicated,
                "reordered": s.reordered.len(),
                "reordered_seqs": s.reordered,
                "packets_in_capture": cap.len(),
                "first_seq_in_capture": first.map(|e| e as u16),
                "last_seq_in_capture": last.map(|e| e as u16),
                "max_seq_in_capture": max.map(|e| e as u16),
                "dropped_between_min_and_max_captured": dropped_in_span,
                "expected_lost_rfc3550": lost_rfc,
                "expected_lost_wireshark": lost_ws,
            }));
        }
        let c = per_port.get(&port).cloned().unwrap_or_default();
        ports_json.push(json!({
            "port": port,
            "seed": derive_seed(cfg.seed, u64::from(port)),
            "datagrams_offered": c.iter().filter(|(k, _)| k.ends_with("_offered")).map(|(_, v)| v).sum::<u64>(),
            "frames_written": written_per_port.get(&port).copied().unwrap_or(0),
            "by_kind": c,
            "rtp_streams": rtp_streams,
        }));
    }
    let sidecar = json!({
        "generator": "cargo run --release --example capture_gen (rtp-middlebox)",
        "impairment": config_json(&cfg),
        "per_port_seed": "rtp_middlebox::sim::impair::derive_seed(impairment.seed, port)",
        "rtp_rule": "UDP payload with version 2, length >= 12 and second byte not in 192..=223 (RFC 5761 RTCP range)",
        "timestamps": "delivery time (arrival + impairment delay), floored to microseconds, sorted by delivery",
        "expected_lost_rfc3550": "(highest extended seq captured - extended seq of first captured packet + 1) - packets captured (duplicates count as received)",
        "expected_lost_wireshark": "(extended seq of last captured packet - extended seq of first captured packet + 1) - packets captured",
        "pcap": args.pcap.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
        "pcapng_sll2": args.pcapng_sll2.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()),
        "frames_written": frames.len(),
        "ports": ports_json,
    });
    if let Some(p) = &args.sidecar {
        let mut text = serde_json::to_string_pretty(&sidecar).expect("json");
        text.push('\n');
        std::fs::write(p, text).expect("write sidecar");
    }
    eprintln!("capture_gen: wrote {} frames", frames.len());
}
