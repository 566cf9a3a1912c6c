//! `rtp_middlebox::sdp` on real SDPs (tests/data/sdp/, README.md there says
//! where each one comes from): what `inspect` reads from a Chromium offer
//! and answers, a Janus EchoTest answer, a Firefox offer, mediasoup's
//! transport description and a plain SIP SDP; that `rewrite` changes only
//! the transport lines (fingerprint, setup, candidates, c=, m= port) and
//! keeps every other line byte for byte; that its output inspects to the
//! proxy's fingerprint and rewrites to itself.

use rtp_middlebox::sdp::{inspect, rewrite, Fingerprint, Rewrite, SdpError, Setup};
use std::net::SocketAddr;

struct Case {
    file: &'static str,
    sdp: &'static str,
    setup: Setup,
    ufrag: &'static str,
    /// The start of the fingerprint's SDP value (algorithm and first bytes).
    fingerprint: &'static str,
    /// (kind, port, mid) of each m-line.
    media: &'static [(&'static str, u16, &'static str)],
}

/// One corpus case: the SDP is `file` in tests/data/sdp/, read at build time.
macro_rules! case {
    ($file:literal, $setup:ident, $ufrag:literal, $fingerprint:literal, $media:expr) => {
        Case {
            file: $file,
            sdp: include_str!(concat!("data/sdp/", $file)),
            setup: Setup::$setup,
            ufrag: $ufrag,
            fingerprint: $fingerprint,
            media: &$media,
        }
    };
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    //    file                           setup     ufrag               fingerprint             (kind, port, mid) of each m-line
    case!("chromium-offer.sdp",          Actpass,  "uXT1",             "sha-256 9A:24:A4:0A:", [("audio", 51942, "0"), ("video", 45465, "1")]),
    case!("chromium-answer.sdp",         Active,   "fC5R",             "sha-256 1E:8A:BA:FC:", [("audio", 52367, "0"), ("video", 9, "1")]),
    case!("chromium-answer-passive.sdp", Passive,  "v0bm",             "sha-256 22:5D:D3:0C:", [("audio", 33479, "0"), ("video", 9, "1")]),
    case!("janus-echotest-answer.sdp",   Active,   "6ruK",             "sha-256 DF:B7:D1:AD:", [("audio", 9, "0"), ("video", 9, "1")]),
    case!("firefox-offer.sdp",           Actpass,  "6c0579ea",         "sha-256 75:4F:CA:8F:", [("audio", 9, "0"), ("video", 9, "1")]),
    case!("mediasoup-recv-offer.sdp",    Actpass,  "d7it3k20q92fgfz3", "sha-512 45:DA:1C:EC:", [
        ("application", 7, "datachannel"), ("video", 7, "0"), ("video", 7, "probator"), ("video", 7, "1"),
    ]),
];

const SIP: &str = include_str!("data/sdp/freeswitch-sip-offer.sdp");

fn proxy() -> Fingerprint {
    // The value is arbitrary here: only that it replaces the peers' counts.
    Fingerprint {
        algorithm: "sha-256".into(),
        value: (0xA0..0xC0).collect(),
    }
}

fn lines(s: &str) -> Vec<&str> {
    s.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect()
}

/// The lines `rewrite` may change.
fn transport_line(l: &str) -> bool {
    ["a=fingerprint:", "a=setup:", "a=candidate:", "c=", "m=", "a=rtcp:"]
        .iter()
        .any(|p| l.starts_with(p))
}

/// Every line that is not a transport line is kept, in order, byte for
/// byte (line endings aside), and m-lines differ at most in their port.
fn assert_only_transport_lines_differ(file: &str, input: &str, output: &str) {
    let kept = |s| lines(s).into_iter().filter(|l| !transport_line(l)).collect::<Vec<_>>();
    assert_eq!(kept(input), kept(output), "{file}: a non-transport line changed");
    let m = |s| lines(s).into_iter().filter(|l| l.starts_with("m=")).collect::<Vec<_>>();
    let (mi, mo) = (m(input), m(output));
    assert_eq!(mi.len(), mo.len(), "{file}");
    for (a, b) in mi.iter().zip(&mo) {
        let (a, b): (Vec<_>, Vec<_>) = (a.split(' ').collect(), b.split(' ').collect());
        assert_eq!(
            (a[0], &a[2..]),
            (b[0], &b[2..]),
            "{file}: m-line changed beyond its port"
        );
    }
}

#[test]
fn inspect_reads_every_corpus_file() {
    for case in CASES {
        let d = inspect(case.sdp).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        assert_eq!(d.setup, case.setup, "{}", case.file);
        assert_eq!(d.ice_ufrag.as_deref(), Some(case.ufrag), "{}", case.file);
        assert!(d.ice_pwd_present, "{}", case.file);
        assert!(!d.crypto_present, "{}", case.file);
        // Session-level and per-media copies of one certificate count once.
        assert_eq!(d.fingerprints.len(), 1, "{}", case.file);
        assert!(
            d.fingerprints[0].to_sdp_value().starts_with(case.fingerprint),
            "{}",
            case.file
        );
        let media: Vec<_> = d
            .media
            .iter()
            .map(|m| (m.kind.as_str(), m.port, m.mid.as_deref().unwrap()))
            .collect();
        assert_eq!(media, case.media, "{}", case.file);
        assert!(
            d.media
                .iter()
                .all(|m| !m.rtcp_component() && m.rtcp_mux == (m.kind != "application")),
            "{}",
            case.file
        );
        assert!(d.media.iter().all(|m| !m.bundle_only), "{}", case.file);
    }
}

#[test]
fn a_plain_sip_sdp_has_no_fingerprint() {
    let e = inspect(SIP).unwrap_err();
    assert_eq!(e, SdpError::NoFingerprint);
    assert_eq!(e.label(), "no-fingerprint");
    let fp = proxy();
    let rw = Rewrite {
        fingerprint: &fp,
        setup: None,
        announce: None,
    };
    assert_eq!(rewrite(SIP, &rw), Err(SdpError::NoFingerprint));
}

#[test]
fn rewrite_replaces_only_transport_lines() {
    let fp = proxy();
    let announces: [Option<SocketAddr>; 3] = [
        None,
        Some("203.0.113.5:40000".parse().unwrap()),
        Some("[2001:db8::5]:3478".parse().unwrap()),
    ];
    for case in CASES {
        for announce in announces {
            for setup in [None, Some(Setup::Passive), Some(Setup::Active)] {
                let what = format!("{} announce {announce:?} setup {setup:?}", case.file);
                let rw = Rewrite {
                    fingerprint: &fp,
                    setup,
                    announce,
                };
                let out = rewrite(case.sdp, &rw).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_only_transport_lines_differ(&what, case.sdp, &out);

                // The line ending is the input's, throughout.
                if case.sdp.contains("\r\n") {
                    assert_eq!(out.matches('\n').count(), out.matches("\r\n").count(), "{what}");
                } else {
                    assert!(!out.contains('\r'), "{what}");
                }
                assert_eq!(out.ends_with('\n'), case.sdp.ends_with('\n'), "{what}");

                // Exactly the proxy's fingerprint, once per level that had one.
                let d = inspect(&out).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(d.fingerprints, std::slice::from_ref(&fp), "{what}");
                let levels = |s: &str| {
                    let mut n = 0;
                    let mut seen = false;
                    for l in lines(s) {
                        if l.starts_with("m=") {
                            seen = false;
                        } else if l.starts_with("a=fingerprint:") && !seen {
                            seen = true;
                            n += 1;
                        }
                    }
                    n
                };
                assert_eq!(levels(&out), out.matches("a=fingerprint:").count(), "{what}");
                assert_eq!(levels(&out), levels(case.sdp), "{what}");
                assert!(out.contains(&format!("a=fingerprint:{}", fp.to_sdp_value())), "{what}");

                // ICE stays end to end: same ufrag (the pwd is a kept line).
                assert_eq!(d.ice_ufrag.as_deref(), Some(case.ufrag), "{what}");
                let n_setup = case.sdp.matches("a=setup:").count();
                assert_eq!(d.setup, setup.unwrap_or(case.setup), "{what}");
                if let Some(s) = setup {
                    assert_eq!(
                        out.matches(&format!("a=setup:{}", s.as_str())).count(),
                        n_setup,
                        "{what}"
                    );
                }

                let candidates = |s: &str| lines(s).into_iter().filter(|l| l.starts_with("a=candidate:")).count();
                let end_of = |s: &str| s.matches("a=end-of-candidates").count();
                assert_eq!(end_of(&out), end_of(case.sdp), "{what}: a=end-of-candidates is kept");
                match announce {
                    None => {
                        assert_eq!(candidates(&out), candidates(case.sdp), "{what}");
                        assert_eq!(
                            d.media.iter().map(|m| m.port).collect::<Vec<_>>(),
                            case.media.iter().map(|m| m.1).collect::<Vec<_>>()
                        );
                    }
                    Some(addr) => {
                        // One host candidate per m-section: all are rtcp-mux
                        // or a data channel (SCTP, one component).
                        assert_eq!(candidates(&out), d.media.len(), "{what}");
                        let host = format!("a=candidate:1 1 udp 2130706431 {} {} typ host", addr.ip(), addr.port());
                        assert_eq!(out.matches(&host).count(), d.media.len(), "{what}");
                        assert!(d.media.iter().all(|m| m.port == addr.port()), "{what}");
                        let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
                        let c = format!("c=IN {family} {}", addr.ip());
                        let c_lines: Vec<_> = lines(&out).into_iter().filter(|l| l.starts_with("c=")).collect();
                        assert!(
                            !c_lines.is_empty() && c_lines.iter().all(|l| *l == c),
                            "{what}: {c_lines:?}"
                        );
                    }
                }

                // Rewriting the output again changes nothing.
                assert_eq!(rewrite(&out, &rw).unwrap(), out, "{what}: not idempotent");
            }
        }
    }
}

#[test]
fn rewrite_without_options_changes_only_fingerprints() {
    let fp = proxy();
    let rw = Rewrite {
        fingerprint: &fp,
        setup: None,
        announce: None,
    };
    for case in CASES {
        let out = rewrite(case.sdp, &rw).unwrap();
        let other = |s| {
            lines(s)
                .into_iter()
                .filter(|l| !l.starts_with("a=fingerprint:"))
                .collect::<Vec<_>>()
        };
        assert_eq!(other(case.sdp), other(&out), "{}", case.file);
        // Same number of lines: each level had one fingerprint line.
        assert_eq!(lines(case.sdp).len(), lines(&out).len(), "{}", case.file);
    }
}

#[test]
fn errors_on_real_sdps() {
    let offer = CASES[0].sdp;
    // a=setup:holdconn: nothing to terminate.
    let holdconn = offer.replace("a=setup:actpass", "a=setup:holdconn");
    let e = inspect(&holdconn).unwrap_err();
    assert_eq!(
        (e.label(), e),
        ("unsupported-setup", SdpError::UnsupportedSetup("holdconn".into()))
    );
    // No m-line: the session level alone.
    let session = &offer[..offer.find("m=audio").unwrap()];
    assert_eq!(inspect(session), Err(SdpError::NoMediaLine));
    assert_eq!(inspect(""), Err(SdpError::NoMediaLine));
    // The two BUNDLEd m-lines with different ufrags or roles.
    let second = offer.rfind("a=ice-ufrag:").unwrap();
    let mut split = offer.to_owned();
    split.replace_range(second..second + "a=ice-ufrag:uXT1".len(), "a=ice-ufrag:zzzz");
    assert_eq!(inspect(&split), Err(SdpError::ConflictingIceUfrag));
    let second = offer.rfind("a=setup:actpass").unwrap();
    let mut split = offer.to_owned();
    split.replace_range(second..second + "a=setup:actpass".len(), "a=setup:passive");
    assert_eq!(inspect(&split), Err(SdpError::ConflictingSetup));
    // A fingerprint that is not hex: the line number, never the line.
    let janus = CASES[3]
        .sdp
        .replacen("a=fingerprint:sha-256 DF:", "a=fingerprint:sha-256 XY:", 1);
    let e = inspect(&janus).unwrap_err();
    assert_eq!(
        e,
        SdpError::Malformed {
            line: 7,
            reason: "a=fingerprint is not colon-separated hex pairs"
        }
    );
    assert!(!e.reason().contains("XY"));
    // The ICE password never appears in an error.
    let pwd = "johk62W6kazxnUJGQIsnVa2F";
    assert!(offer.contains(pwd));
    for bad in [holdconn.as_str(), session, janus.as_str()] {
        let e = inspect(bad).unwrap_err();
        assert!(!format!("{e} {e:?}").contains(pwd));
    }
}

#[test]
fn a_rejected_m_line_in_a_real_answer_is_skipped_and_kept() {
    // RFC 3264 §6: an answerer rejects an m-line with port 0. Janus's answer
    // with its video rejected: only the audio m-line is described, and the
    // rewrite leaves the rejected m-line on port 0 without candidates.
    let janus = CASES[3].sdp;
    let rejected = janus.replace("m=video 9 ", "m=video 0 ");
    let d = inspect(&rejected).unwrap();
    assert_eq!(d.media.len(), 1);
    assert_eq!(d.media[0].kind, "audio");
    let fp = proxy();
    let rw = Rewrite {
        fingerprint: &fp,
        setup: None,
        announce: Some("198.51.100.7:5000".parse().unwrap()),
    };
    let out = rewrite(&rejected, &rw).unwrap();
    assert!(out.contains("m=video 0 UDP/TLS/RTP/SAVPF 96 97\r\n"));
    assert_eq!(out.matches("a=candidate:").count(), 1);
    assert_only_transport_lines_differ("janus rejected video", &rejected, &out);
}
