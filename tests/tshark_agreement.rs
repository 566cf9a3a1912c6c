//! `analyze` agrees with a tool nobody here wrote: Wireshark's RTP stream
//! analysis (`tshark -z rtp,streams`) on real GStreamer RTP that passed the
//! project's seeded impairment (fixtures and how they were made:
//! tests/data/README.md, scripts/make-captures.sh).
//!
//! * packets and lost: equal, every stream;
//! * max and mean jitter: within 1 %, for every stream whose clock rate
//!   tshark knows (the static PCMU stream always; with the SDP preamble, the
//!   dynamic Opus and VP8 streams as well);
//! * loss: equal to what the impairment dropped.
//!
//! The committed golden tables are checked; when `tshark` is installed it is
//! also run live on the same files (`BLESS=1` rewrites the golden tables).

mod common;
use rtp_middlebox::analyze::{Analyzer, StreamResult};
use rtp_middlebox::config::Config;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const CAPTURE: &str = "gst-pcmu-opus-vp8";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// One row of tshark's `rtp,streams` table.
#[derive(Debug, Clone)]
struct TsharkRow {
    src: String,
    dst: String,
    ssrc: u32,
    packets: u64,
    lost: i64,
    mean_jitter_ms: f64,
    max_jitter_ms: f64,
    /// tshark prints -1 when it does not know the payload type's clock.
    knows_clock: bool,
}

fn parse_tshark(text: &str) -> Vec<TsharkRow> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Start End SrcIP Port DstIP Port SSRC Payload Pkts Lost (pct) MinΔ MeanΔ MaxΔ MinJ MeanJ MaxJ [Problems]
        if f.len() < 17 || !f[6].starts_with("0x") {
            continue;
        }
        // The payload column may contain spaces ("g711U, CN"): read the
        // numeric columns from the right, after the optional Problems "X".
        let mut tail: Vec<&str> = f[7..].to_vec();
        if tail.last() == Some(&"X") {
            tail.pop();
        }
        let n = tail.len();
        let [pkts, lost, _pct, _min_d, _mean_d, _max_d, min_j, mean_j, max_j] = tail[n - 9..] else {
            panic!("unexpected row: {line}")
        };
        let min_jitter: f64 = min_j.parse().unwrap();
        rows.push(TsharkRow {
            src: format!("{}:{}", f[2], f[3]),
            dst: format!("{}:{}", f[4], f[5]),
            ssrc: u32::from_str_radix(&f[6][2..], 16).unwrap(),
            packets: pkts.parse().unwrap(),
            lost: lost.parse().unwrap(),
            mean_jitter_ms: mean_j.parse().unwrap(),
            max_jitter_ms: max_j.parse().unwrap(),
            knows_clock: min_jitter >= 0.0,
        });
    }
    rows
}

fn analyze(files: &[PathBuf]) -> Vec<StreamResult> {
    // The embedded default config maps 111 → 48 kHz and 96 → 90 kHz.
    let rates = Config::embedded_default().relay[0].clock_rates();
    let mut a = Analyzer::new(rates);
    for f in files {
        a.read_capture(std::fs::File::open(f).unwrap()).unwrap();
    }
    a.streams()
}

fn tshark_live(files: &[PathBuf]) -> Option<String> {
    let which = Command::new("tshark").arg("--version").output().ok()?;
    if !which.status.success() {
        return None;
    }
    // tshark reads one file: merge the SDP preamble in front when given.
    let input = if files.len() > 1 {
        let merged = std::env::temp_dir().join(format!("rtp-middlebox-merged-{}.pcap", std::process::id()));
        let ok = Command::new("mergecap")
            .args(["-a", "-F", "pcap", "-w"])
            .arg(&merged)
            .args(files)
            .status()
            .ok()?
            .success();
        assert!(ok, "mergecap failed");
        merged
    } else {
        files[0].clone()
    };
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&input)
        .args(["-q", "-o", "rtp.heuristic_rtp:TRUE", "-z", "rtp,streams"])
        .output()
        .expect("tshark runs");
    common::assert_success(&out, "tshark");
    Some(String::from_utf8(out.stdout).unwrap())
}

fn assert_agree(label: &str, ours: &[StreamResult], theirs: &[TsharkRow], require_jitter_for: &[u32]) {
    assert_eq!(ours.len(), theirs.len(), "{label}: stream count");
    for t in theirs {
        let o = ours
            .iter()
            .find(|o| o.ssrc_decimal == t.ssrc && o.src.to_string() == t.src && o.dst.to_string() == t.dst)
            .unwrap_or_else(|| panic!("{label}: no stream {:#x} {} → {}", t.ssrc, t.src, t.dst));
        assert_eq!(o.packets_received, t.packets, "{label} {:#x}: packets", t.ssrc);
        assert_eq!(o.packets_lost, t.lost, "{label} {:#x}: lost", t.ssrc);
        if require_jitter_for.contains(&t.ssrc) {
            assert!(t.knows_clock, "{label} {:#x}: tshark should know this clock", t.ssrc);
        }
        if t.knows_clock {
            let max = o.max_jitter.unwrap() * 1000.0;
            let mean = o.mean_jitter.unwrap() * 1000.0;
            let within = |a: f64, b: f64| (a - b).abs() <= 0.01 * b.abs().max(0.001);
            assert!(
                within(max, t.max_jitter_ms),
                "{label} {:#x}: max jitter ours {max:.3} ms, tshark {:.3} ms",
                t.ssrc,
                t.max_jitter_ms
            );
            assert!(
                within(mean, t.mean_jitter_ms),
                "{label} {:#x}: mean jitter ours {mean:.3} ms, tshark {:.3} ms",
                t.ssrc,
                t.mean_jitter_ms
            );
        }
    }
}

fn golden(name: &str, files: &[PathBuf]) -> Vec<TsharkRow> {
    let path = data(name);
    if std::env::var_os("BLESS").is_some() {
        let text = tshark_live(files).expect("BLESS=1 needs tshark");
        std::fs::write(&path, text).unwrap();
    }
    parse_tshark(&std::fs::read_to_string(&path).unwrap())
}

const PCMU: u32 = 0x1111_0000;
const OPUS: u32 = 0x2222_0000;
const VP8: u32 = 0x3333_0000;

#[test]
fn agrees_with_tshark_on_the_plain_capture() {
    let files = [data(&format!("{CAPTURE}.pcap"))];
    let ours = analyze(&files);
    let rows = golden(&format!("{CAPTURE}.tshark-rtp-streams.txt"), &files);
    assert_eq!(rows.len(), 3);
    assert_agree("golden", &ours, &rows, &[PCMU]);
    if let Some(live) = tshark_live(&files) {
        assert_agree("live tshark", &ours, &parse_tshark(&live), &[PCMU]);
    }
}

#[test]
fn agrees_with_tshark_when_it_knows_the_dynamic_clocks() {
    // With the SDP preamble tshark learns opus/48000 and VP8/90000.
    let files = [
        data(&format!("{CAPTURE}.sdp-preamble.pcap")),
        data(&format!("{CAPTURE}.pcap")),
    ];
    let ours = analyze(&files);
    let rows = golden(&format!("{CAPTURE}.sdp.tshark-rtp-streams.txt"), &files);
    assert_agree("golden+sdp", &ours, &rows, &[PCMU, OPUS, VP8]);
    if let Some(live) = tshark_live(&files) {
        assert_agree("live tshark+sdp", &ours, &parse_tshark(&live), &[PCMU, OPUS, VP8]);
    }
}

#[test]
fn pcapng_sll2_gives_the_same_results() {
    // Same packets in another container and link type. The pcapng keeps
    // nanosecond timestamps where the pcap has microseconds, so jitter may
    // differ in the sixth significant digit; counts must be identical.
    let a = analyze(&[data(&format!("{CAPTURE}.pcap"))]);
    let b = analyze(&[data(&format!("{CAPTURE}.sll2.pcapng"))]);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        let counts = |s: &StreamResult| {
            (
                s.ssrc_decimal,
                s.src,
                s.dst,
                s.packets_received,
                s.packets_expected,
                s.packets_lost,
                s.duplicates,
                s.out_of_order,
            )
        };
        assert_eq!(counts(x), counts(y));
        for (p, q) in [(x.max_jitter, y.max_jitter), (x.mean_jitter, y.mean_jitter)] {
            let (p, q) = (p.unwrap(), q.unwrap());
            assert!((p - q).abs() <= 1e-5 * p.max(q), "{p} vs {q}");
        }
    }
}

#[test]
fn loss_equals_what_the_impairment_dropped() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data(&format!("{CAPTURE}.impairment.json"))).unwrap()).unwrap();
    let ours = analyze(&[data(&format!("{CAPTURE}.pcap"))]);
    let mut checked = BTreeMap::new();
    for port in meta["ports"].as_array().unwrap() {
        for s in port["rtp_streams"].as_array().into_iter().flatten() {
            let ssrc = s["ssrc_dec"].as_u64().unwrap() as u32;
            let dropped = s["dropped_between_min_and_max_captured"].as_i64().unwrap();
            let dup = s["duplicated"].as_u64().unwrap();
            let o = ours.iter().find(|o| o.ssrc_decimal == ssrc).unwrap();
            // RFC 3550 counts duplicates as received, so the unique loss is
            // lost + duplicates; it must equal the sequence numbers dropped.
            assert_eq!(o.packets_lost + o.duplicates as i64, dropped, "{ssrc:#x}");
            assert_eq!(o.duplicates, dup, "{ssrc:#x} duplicates");
            checked.insert(ssrc, dropped);
        }
    }
    assert_eq!(checked.len(), 3, "every stream checked: {checked:?}");
}

/// The hand-built corner cases (scripts/make-quirks-capture.py). Where
/// tshark 4.0 has a bug (tests/data/README.md: a packet older than the
/// first, a same-timestamp reorder below the first sequence number, a late
/// pre-wrap packet after the wrap) we keep RFC 3550's answer and say so
/// here; everywhere else we agree with it.
#[test]
fn corner_cases_follow_rfc_3550_where_tshark_errs() {
    let files = [data("synthetic-ws-quirks.pcap")];
    let ours = analyze(&files);
    let rows = golden("synthetic-ws-quirks.tshark-rtp-streams.txt", &files);
    let get = |ssrc: u32| ours.iter().find(|s| s.ssrc_decimal == ssrc).unwrap();
    let tshark = |ssrc: u32| rows.iter().find(|r| r.ssrc == ssrc).unwrap().clone();
    // (ssrc, received, expected, lost, duplicates, tshark's lost)
    let cases = [
        (0xA, 9, 8, -1, 1, -2),     // seq 99 after the first (100): 99..=106 expected
        (0xB, 8, 8, 0, 0, 65535),   // 499 right after 500: no phantom cycle
        (0xC, 11, 12, 1, 1, 65537), // late 65535 after the wrap: one cycle, not two
        (0xD, 5, 5, 0, 0, 0),
    ];
    for (ssrc, recv, expected, lost, dup, their_lost) in cases {
        let s = get(ssrc);
        assert_eq!(
            (s.packets_received, s.packets_expected, s.packets_lost, s.duplicates),
            (recv, expected, lost, dup),
            "{ssrc:#x}"
        );
        let t = tshark(ssrc);
        assert_eq!((t.packets, t.lost), (recv, their_lost), "{ssrc:#x}: golden tshark row");
    }
    // Jitter agrees where tshark's estimator saw the same packets.
    for ssrc in [0xB, 0xC] {
        let (s, t) = (get(ssrc), tshark(ssrc));
        assert!(
            (s.max_jitter.unwrap() * 1000.0 - t.max_jitter_ms).abs() < 0.001,
            "{ssrc:#x}"
        );
        assert!(
            (s.mean_jitter.unwrap() * 1000.0 - t.mean_jitter_ms).abs() < 0.001,
            "{ssrc:#x}"
        );
    }
    // A timestamp step of 2^31 is a discontinuity, not 6 hours of jitter.
    assert!(get(0xD).max_jitter.unwrap() < 0.001, "{:?}", get(0xD).max_jitter);
}

/// The shipped capture cut to a snap length of `snap` bytes per frame, as
/// `tcpdump -s` writes it (each record keeps its original length; only
/// `incl_len` bytes are stored). Classic pcap, either byte order.
fn snapped(snap: usize) -> PathBuf {
    let raw = std::fs::read(data(&format!("{CAPTURE}.pcap"))).unwrap();
    let le = raw[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || raw[..4] == [0x4d, 0x3c, 0xb2, 0xa1];
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let put = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let mut out = raw[..24].to_vec();
    // The global header's snaplen field.
    out[16..20].copy_from_slice(&put(snap as u32));
    let mut at = 24;
    while at + 16 <= raw.len() {
        let incl = u32_at(&raw[at + 8..]) as usize;
        let keep = incl.min(snap);
        out.extend_from_slice(&raw[at..at + 8]);
        out.extend_from_slice(&put(keep as u32));
        out.extend_from_slice(&raw[at + 12..at + 16]);
        out.extend_from_slice(&raw[at + 16..at + 16 + keep]);
        at += 16 + incl;
    }
    let path = std::env::temp_dir().join(format!("rtp-middlebox-snap{snap}-{}.pcap", std::process::id()));
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn a_snap_length_capture_gives_the_same_streams() {
    // VoIP captures keep the headers (tcpdump -s 256): video datagrams lose
    // payload, the RTP header stays. Every stream, video included, must
    // count as in the whole capture, and as tshark counts it.
    let whole = analyze(&[data(&format!("{CAPTURE}.pcap"))]);
    let cut = snapped(256);
    let ours = analyze(std::slice::from_ref(&cut));
    let rows = golden(
        &format!("{CAPTURE}.tshark-rtp-streams.txt"),
        &[data(&format!("{CAPTURE}.pcap"))],
    );
    assert_agree("snap 256 vs tshark on the whole capture", &ours, &rows, &[PCMU]);
    assert_eq!(ours.len(), whole.len());
    for (a, b) in ours.iter().zip(&whole) {
        assert_eq!(
            (
                a.ssrc_decimal,
                a.packets_received,
                a.packets_lost,
                a.max_jitter,
                a.mean_jitter
            ),
            (
                b.ssrc_decimal,
                b.packets_received,
                b.packets_lost,
                b.max_jitter,
                b.mean_jitter
            ),
            "snap 256: stream {:#x}",
            a.ssrc_decimal
        );
    }
    if let Some(live) = tshark_live(std::slice::from_ref(&cut)) {
        assert_agree(
            "live tshark on the snap-length capture",
            &ours,
            &parse_tshark(&live),
            &[PCMU],
        );
    }
    let _ = std::fs::remove_file(cut);
}
