//! SDP inspection and rewriting for back-to-back DTLS-SRTP (issue 15): what
//! the calls API (`POST /v1/calls/{id}/offer|answer`) reads from an SDP on
//! its way through the application, and how it puts the proxy in as each
//! side's DTLS peer.
//!
//! * [`inspect`] reads the DTLS and ICE parameters: certificate
//!   fingerprints (RFC 8122 §5), the DTLS role (`a=setup`, RFC 4145 §4 and
//!   RFC 5763 §5), the ICE username fragment (RFC 8839 §5.4) that later
//!   binds the call to the 5-tuple seen in STUN USERNAME, and the m-lines.
//! * [`rewrite`] replaces every `a=fingerprint` with the proxy's, and
//!   optionally every `a=setup` value and every candidate (with the proxy's
//!   announced address). Every other line is kept byte for byte:
//!   `a=ice-ufrag`/`a=ice-pwd` (ICE stays end to end), `a=ssrc`,
//!   `a=rtpmap`, `a=group:BUNDLE`, `a=crypto` (SDES keys are not ours to
//!   change; [`DtlsDescription::crypto_present`] says they are there).
//!
//! Pure and bounded: no I/O, input at most [`MAX_SDP_BYTES`] bytes and
//! [`MAX_LINES`] lines. Lines are split like the rest of the crate reads
//! SDP ([`crate::engine::media`]: LF or CRLF), but kept exactly so that a
//! rewrite changes only the lines it must. Errors name a line number and a
//! fixed reason, never the line itself: an SDP carries `a=ice-pwd` and may
//! carry `a=crypto` keys, and errors end up in JSON bodies and logs.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Largest SDP accepted (the same bound as `PUT /v1/sessions/{id}/sdp`).
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Most lines accepted. A Chromium offer carries ~80 lines per m-line, so
/// this leaves room for ~50 m-lines.
pub const MAX_LINES: usize = 4096;
/// Longest fingerprint accepted, in bytes (SHA-512: 64).
const MAX_FINGERPRINT_BYTES: usize = 64;
/// Longest unsupported `a=setup` value echoed back in an error.
const MAX_ECHOED_SETUP: usize = 16;

/// Why an SDP cannot be inspected or rewritten. [`SdpError::label`] is a
/// stable token for JSON error bodies; `Display` a sentence for people.
/// Neither ever contains a whole SDP line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("the SDP has no (accepted) m-line")]
    NoMediaLine,
    #[error("the SDP has no a=fingerprint (not DTLS-SRTP)")]
    NoFingerprint,
    /// `a=setup:holdconn` (RFC 4145 §4: no connection; nothing to
    /// terminate) or an unknown value, shortened and sanitised.
    #[error("unsupported a=setup value {0:?}")]
    UnsupportedSetup(String),
    /// Some accepted m-lines have an `a=ice-ufrag` and others none: a
    /// transport is either ICE or not. An SDP without any ufrag is taken
    /// (DTLS-SRTP without ICE, RFC 5763 §5; e.g. SIP trunks).
    #[error("some m-lines have an a=ice-ufrag (at media or session level) and others none")]
    MissingIceUfrag,
    #[error("BUNDLEd m-lines (or one m-line) carry different a=ice-ufrag values")]
    ConflictingIceUfrag,
    #[error("BUNDLEd m-lines (or one m-line) carry different a=setup values")]
    ConflictingSetup,
    /// 1-based line number and a fixed reason.
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: &'static str },
    #[error("the SDP is larger than {MAX_SDP_BYTES} bytes or {MAX_LINES} lines")]
    TooLarge,
    /// The `announce` address cannot be written: port 0 (RFC 3264 §6:
    /// that rejects the m-line), or port 65535 where an m-line without
    /// `a=rtcp-mux` needs a second component on port + 1 (RFC 8839 §5.1).
    #[error("the announced address has port 0, or port 65535 with an m-line without a=rtcp-mux")]
    UnusableAnnounce,
}

impl SdpError {
    /// A stable token for JSON error bodies (`{"error": label, "reason": ..}`).
    pub fn label(&self) -> &'static str {
        match self {
            SdpError::NoMediaLine => "no-media-line",
            SdpError::NoFingerprint => "no-fingerprint",
            SdpError::UnsupportedSetup(_) => "unsupported-setup",
            SdpError::MissingIceUfrag => "missing-ice-ufrag",
            SdpError::ConflictingIceUfrag => "conflicting-ice-ufrag",
            SdpError::ConflictingSetup => "conflicting-setup",
            SdpError::Malformed { .. } => "malformed",
            SdpError::TooLarge => "too-large",
            SdpError::UnusableAnnounce => "unusable-announce",
        }
    }

    /// The human-readable reason (the `Display` text).
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

/// The DTLS role an SDP asks for (`a=setup`, RFC 4145 §4; RFC 5763 §5: the
/// offerer says `actpass`, the answerer `active` or `passive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    Actpass,
    Active,
    Passive,
}

impl Setup {
    /// The `a=setup` value (case-insensitive on input, RFC 4145 tokens are
    /// lowercase). `holdconn` and anything else is unsupported.
    pub fn parse(value: &str) -> Result<Self, SdpError> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("actpass") {
            Ok(Setup::Actpass)
        } else if v.eq_ignore_ascii_case("active") {
            Ok(Setup::Active)
        } else if v.eq_ignore_ascii_case("passive") {
            Ok(Setup::Passive)
        } else {
            // Echo only a short, printable prefix: the value is the peer's.
            let shown: String = v
                .chars()
                .take(MAX_ECHOED_SETUP)
                .map(|c| if c.is_ascii_graphic() { c } else { '?' })
                .collect();
            Err(SdpError::UnsupportedSetup(shown))
        }
    }

    /// The `a=setup` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Actpass => "actpass",
            Setup::Active => "active",
            Setup::Passive => "passive",
        }
    }
}

/// A certificate fingerprint (`a=fingerprint:<hash-func> <hex:hex:..>`,
/// RFC 8122 §5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// Hash function, lowercase (`sha-256`).
    pub algorithm: String,
    /// The digest bytes.
    pub value: Vec<u8>,
}

impl Fingerprint {
    /// Parses an `a=fingerprint` value, `sha-256 AB:CD:..`. The hash
    /// function is case-insensitive (RFC 8122 §5 lists lowercase tokens;
    /// browsers write them so) and so are the hex digits (RFC 8122 writes
    /// UHEX, but lowercase is common); a known hash function must have its
    /// digest length. Errors are [`SdpError::Malformed`] with line 0 (no
    /// document); [`inspect`] reports the line number instead.
    pub fn parse(attr_value: &str) -> Result<Self, SdpError> {
        parse_fingerprint(attr_value).map_err(|reason| SdpError::Malformed { line: 0, reason })
    }

    /// The `a=fingerprint` value: `sha-256 AB:CD:..`, uppercase hex.
    pub fn to_sdp_value(&self) -> String {
        let mut s = String::with_capacity(self.algorithm.len() + 1 + self.value.len() * 3);
        s.push_str(&self.algorithm);
        s.push(' ');
        for (i, b) in self.value.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            let _ = write!(s, "{b:02X}");
        }
        s
    }

    /// Whether this is the sha-256 fingerprint of a certificate whose DER
    /// encoding hashes to `cert_der_digest_sha256` (RFC 8122 §5: the hash
    /// is over the DER form of the certificate). Public data: no need for a
    /// constant-time comparison.
    pub fn matches(&self, cert_der_digest_sha256: &[u8]) -> bool {
        self.algorithm == "sha-256" && self.value == cert_der_digest_sha256
    }
}

/// Digest length of the hash functions of RFC 8122 §5 (and RFC 4572's md5
/// and md2, still in the registry).
fn digest_len(algorithm: &str) -> Option<usize> {
    Some(match algorithm {
        "sha-1" => 20,
        "sha-224" => 28,
        "sha-256" => 32,
        "sha-384" => 48,
        "sha-512" => 64,
        "md5" | "md2" => 16,
        _ => return None,
    })
}

fn parse_fingerprint(value: &str) -> Result<Fingerprint, &'static str> {
    let mut it = value.split_ascii_whitespace();
    let (Some(alg), Some(hex), None) = (it.next(), it.next(), it.next()) else {
        return Err("a=fingerprint is not <hash-func> <fingerprint>");
    };
    // RFC 8122 §5: hash-func is a token (RFC 4566 token-char); these
    // characters cover every registered name.
    if alg.len() > 32 || !alg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("a=fingerprint hash function is not a token");
    }
    let algorithm = alg.to_ascii_lowercase();
    let mut bytes = Vec::with_capacity(hex.len().div_ceil(3));
    for pair in hex.split(':') {
        let p = pair.as_bytes();
        if p.len() != 2 || bytes.len() == MAX_FINGERPRINT_BYTES {
            return Err("a=fingerprint is not colon-separated hex pairs");
        }
        let hi = (p[0] as char).to_digit(16);
        let lo = (p[1] as char).to_digit(16);
        let (Some(hi), Some(lo)) = (hi, lo) else {
            return Err("a=fingerprint is not colon-separated hex pairs");
        };
        bytes.push((hi * 16 + lo) as u8);
    }
    if digest_len(&algorithm).is_some_and(|n| n != bytes.len()) {
        return Err("a=fingerprint length does not match its hash function");
    }
    Ok(Fingerprint {
        algorithm,
        value: bytes,
    })
}

/// One accepted m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    /// `audio`, `video`, `application`, ...
    pub kind: String,
    /// The m-line's port (0 for a bundle-only m-line).
    pub port: u16,
    /// `a=mid` (RFC 5888 §4).
    pub mid: Option<String>,
    /// `a=bundle-only` (RFC 8843 §6).
    pub bundle_only: bool,
    /// The transport protocol (`UDP/TLS/RTP/SAVPF`, `UDP/DTLS/SCTP`, ...).
    pub proto: String,
    /// `a=rtcp-mux` (RFC 5761 §5.1.1): RTCP on the RTP port.
    pub rtcp_mux: bool,
}

impl MediaLine {
    /// Whether this m-line needs an ICE component 2 for RTCP: RTP without
    /// `a=rtcp-mux` (RFC 8839 §5.1). SCTP over DTLS (RFC 8841) has one.
    pub fn rtcp_component(&self) -> bool {
        self.proto.contains("RTP/") && !self.rtcp_mux
    }
}

/// What an SDP says about its DTLS-SRTP transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsDescription {
    /// Session-level and per-media fingerprints of accepted m-lines, in
    /// order of appearance, each once.
    pub fingerprints: Vec<Fingerprint>,
    /// The DTLS role: media level, else session level, else RFC 4145 §4's
    /// default `active` when no a=setup is given at all. All m-lines of a
    /// BUNDLE group must agree ([`SdpError::ConflictingSetup`]); m-lines
    /// not bundled together may differ and then the first m-line's role is
    /// given (each such m-line is a transport of its own).
    pub setup: Setup,
    /// The ICE username fragment (media level, else session level). All
    /// m-lines of a BUNDLE group share one ([`SdpError::ConflictingIceUfrag`]);
    /// m-lines not bundled together may differ, and then the first
    /// m-line's is given. `None` when no m-line has one: DTLS-SRTP
    /// without ICE (RFC 5763 §5 does not require ICE).
    pub ice_ufrag: Option<String>,
    /// Where the first accepted m-line's media is: its `c=` (media level,
    /// else session level, RFC 8866 §5.7) and its m= port. `None` without a
    /// `c=`, with an unspecified address (`0.0.0.0`/`::`, ICE's "no
    /// candidate yet" placeholder, RFC 8839 §5.1) or an unparsable one.
    pub media_address: Option<SocketAddr>,
    /// Whether every m-line with a ufrag has an `a=ice-pwd` too. The
    /// password itself is never copied out.
    pub ice_pwd_present: bool,
    /// Whether any `a=crypto` (SDES, RFC 4568) line is present; they are
    /// left as they are by [`rewrite`].
    pub crypto_present: bool,
    /// Accepted m-lines in order; rejected ones (port 0 without
    /// `a=bundle-only`, RFC 8843 §6 / RFC 3264 §6) are skipped.
    pub media: Vec<MediaLine>,
}

/// How [`rewrite`] changes an SDP.
#[derive(Debug, Clone, Copy)]
pub struct Rewrite<'a> {
    /// The proxy's certificate fingerprint: replaces every a=fingerprint.
    pub fingerprint: &'a Fingerprint,
    /// When set, replaces every `a=setup` value.
    pub setup: Option<Setup>,
    /// When set, every candidate is replaced by one host candidate for this
    /// address (two without `a=rtcp-mux`), and every `c=` and non-zero m=
    /// port points to it.
    pub announce: Option<SocketAddr>,
}

// ------------------------------------------------------------------ parsing

/// One SDP line without its line ending.
struct Line<'a> {
    text: &'a str,
    /// Whether a `\n` ended it in the input.
    terminated: bool,
}

impl<'a> Line<'a> {
    /// `a=<name>[:<value>]` → (name, value).
    fn attribute(&self) -> Option<(&'a str, Option<&'a str>)> {
        let rest = self.text.strip_prefix("a=")?;
        Some(match rest.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (rest, None),
        })
    }

    fn attr_value(&self, name: &str) -> Option<&'a str> {
        match self.attribute() {
            Some((n, v)) if n == name => Some(v.unwrap_or("")),
            _ => None,
        }
    }

    fn is_attr(&self, name: &str) -> bool {
        matches!(self.attribute(), Some((n, _)) if n == name)
    }
}

/// An m-section: lines `start..end`, `start` being the m= line.
struct Section<'a> {
    start: usize,
    end: usize,
    kind: &'a str,
    port: u16,
    /// Byte range of the port digits in the m= line.
    port_span: (usize, usize),
    proto: &'a str,
    mid: Option<&'a str>,
    bundle_only: bool,
    rtcp_mux: bool,
}

impl Section<'_> {
    /// See [`MediaLine::rtcp_component`].
    fn rtcp_component(&self) -> bool {
        self.proto.contains("RTP/") && !self.rtcp_mux
    }

    /// RFC 3264 §6: port 0 rejects the m-line, unless it is bundle-only
    /// (RFC 8843 §6), which shares the BUNDLE transport.
    fn rejected(&self) -> bool {
        self.port == 0 && !self.bundle_only
    }
}

struct Parsed<'a> {
    lines: Vec<Line<'a>>,
    /// Index of the first m= line (end of the session level).
    session_end: usize,
    sections: Vec<Section<'a>>,
    /// CRLF when the input used it anywhere, else LF.
    eol: &'static str,
}

fn parse(sdp: &str) -> Result<Parsed<'_>, SdpError> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge);
    }
    let mut lines = Vec::new();
    for raw in sdp.split_inclusive('\n') {
        if lines.len() == MAX_LINES {
            return Err(SdpError::TooLarge);
        }
        let terminated = raw.ends_with('\n');
        // Only a CR before the LF is the line ending (any other CR is
        // refused below).
        let text = match raw.strip_suffix('\n') {
            Some(t) => t.strip_suffix('\r').unwrap_or(t),
            None => raw,
        };
        let n = lines.len() + 1;
        // RFC 8866 §9: text never holds a CR; the only CR is the one of the
        // CRLF ending a line. A stray one would end a line once a rewrite
        // appends after it (a CR closing the last, unterminated line).
        if text.contains('\r') {
            return Err(SdpError::Malformed {
                line: n,
                reason: "a CR that does not end the line",
            });
        }
        // RFC 8866 §5: <type>=<value>, type one lowercase letter. Blank
        // lines (some SIP stacks end with one) are kept and ignored.
        if !text.is_empty() {
            let b = text.as_bytes();
            if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' {
                return Err(SdpError::Malformed {
                    line: n,
                    reason: "not a <type>=<value> line",
                });
            }
        }
        lines.push(Line { text, terminated });
    }
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };

    let mut sections: Vec<Section> = Vec::new();
    let mut session_end = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.text.strip_prefix("m=") {
            if sections.is_empty() {
                session_end = i;
            }
            if let Some(last) = sections.last_mut() {
                last.end = i;
            }
            sections.push(parse_m_line(rest, i)?);
        } else if let Some(sec) = sections.last_mut() {
            if let Some(mid) = line.attr_value("mid") {
                sec.mid.get_or_insert(mid);
            } else if line.is_attr("bundle-only") {
                sec.bundle_only = true;
            } else if line.is_attr("rtcp-mux") {
                sec.rtcp_mux = true;
            }
        }
    }
    if let Some(last) = sections.last_mut() {
        last.end = lines.len();
    }
    Ok(Parsed {
        lines,
        session_end,
        sections,
        eol,
    })
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...` (RFC 8866 §5.14).
fn parse_m_line(rest: &str, index: usize) -> Result<Section<'_>, SdpError> {
    let malformed = |reason| SdpError::Malformed {
        line: index + 1,
        reason,
    };
    let (kind, after) = rest.split_once(' ').ok_or(malformed("m-line without a port"))?;
    let port_str = after.split([' ', '/']).next().unwrap_or("");
    if kind.is_empty() || port_str.is_empty() || !port_str.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("m-line port is not a number"));
    }
    let port: u16 = port_str.parse().map_err(|_| malformed("m-line port is out of range"))?;
    let proto = after.split(' ').nth(1).unwrap_or("");
    let start = 2 + kind.len() + 1; // "m=" + kind + " "
    Ok(Section {
        start: index,
        end: index + 1,
        kind,
        port,
        port_span: (start, start + port_str.len()),
        proto,
        mid: None,
        bundle_only: false,
        rtcp_mux: false,
    })
}

/// Attributes of one level (session, or one m-section) that inspect reads.
#[derive(Default)]
struct Level<'a> {
    setup: Option<Setup>,
    ufrag: Option<&'a str>,
    pwd: bool,
}

fn read_level<'a>(
    lines: &[Line<'a>],
    range: std::ops::Range<usize>,
    fingerprints: &mut Vec<Fingerprint>,
    crypto: &mut bool,
) -> Result<Level<'a>, SdpError> {
    let mut level = Level::default();
    for i in range {
        let Some((name, value)) = lines[i].attribute() else {
            continue;
        };
        let value = value.unwrap_or("");
        let malformed = |reason| SdpError::Malformed { line: i + 1, reason };
        match name {
            "fingerprint" => {
                let fp = parse_fingerprint(value).map_err(malformed)?;
                if !fingerprints.contains(&fp) {
                    fingerprints.push(fp);
                }
            }
            "setup" => {
                let s = Setup::parse(value)?;
                if level.setup.is_some_and(|prev| prev != s) {
                    return Err(SdpError::ConflictingSetup);
                }
                level.setup = Some(s);
            }
            "ice-ufrag" => {
                // RFC 8839 §5.4: ufrag is 4..256 ice-chars; an empty one
                // cannot name a STUN USERNAME.
                if value.is_empty() {
                    return Err(malformed("empty a=ice-ufrag"));
                }
                if level.ufrag.is_some_and(|prev| prev != value) {
                    return Err(SdpError::ConflictingIceUfrag);
                }
                level.ufrag = Some(value);
            }
            "ice-pwd" => level.pwd |= !value.is_empty(),
            "crypto" => *crypto = true,
            _ => {}
        }
    }
    Ok(level)
}

/// The mids of each `a=group:BUNDLE` line (RFC 8843 §7.1).
fn bundle_groups<'a>(parsed: &Parsed<'a>) -> Vec<Vec<&'a str>> {
    parsed.lines[..parsed.session_end]
        .iter()
        .filter_map(|l| l.attr_value("group"))
        .filter_map(|v| {
            let mut it = v.split_ascii_whitespace();
            (it.next() == Some("BUNDLE")).then(|| it.collect())
        })
        .collect()
}

// ------------------------------------------------------------------ inspect

/// Reads the DTLS and ICE parameters of an SDP. See [`DtlsDescription`]
/// for how each is chosen and [`SdpError`] for what is refused.
pub fn inspect(sdp: &str) -> Result<DtlsDescription, SdpError> {
    let parsed = parse(sdp)?;
    inspect_parsed(&parsed)
}

/// One accepted m-line's values after the session-level fallback.
struct Effective<'a> {
    mid: Option<&'a str>,
    setup: Option<Setup>,
    ufrag: Option<&'a str>,
    /// Has a password, or has no ufrag either.
    pwd: bool,
}

fn inspect_parsed(parsed: &Parsed<'_>) -> Result<DtlsDescription, SdpError> {
    let mut fingerprints = Vec::new();
    let mut crypto = false;
    let session = read_level(&parsed.lines, 0..parsed.session_end, &mut fingerprints, &mut crypto)?;
    let groups = bundle_groups(parsed);

    let mut media = Vec::new();
    let mut effective: Vec<Effective> = Vec::new();
    let mut missing_ufrag = false;
    let mut any_ufrag = false;
    for sec in parsed.sections.iter().filter(|s| !s.rejected()) {
        let level = read_level(&parsed.lines, sec.start + 1..sec.end, &mut fingerprints, &mut crypto)?;
        let ufrag = level.ufrag.or(session.ufrag);
        // A bundle-only m-line may leave the transport to the BUNDLE
        // group's tagged m-line (RFC 8843 §7.2.1), so it needs no ufrag.
        missing_ufrag |= ufrag.is_none() && !sec.bundle_only;
        any_ufrag |= ufrag.is_some();
        let pwd = ufrag.is_none() || level.pwd || session.pwd;
        effective.push(Effective {
            mid: sec.mid,
            setup: level.setup.or(session.setup),
            ufrag,
            pwd,
        });
        media.push(MediaLine {
            kind: sec.kind.to_owned(),
            port: sec.port,
            mid: sec.mid.map(str::to_owned),
            bundle_only: sec.bundle_only,
            proto: sec.proto.to_owned(),
            rtcp_mux: sec.rtcp_mux,
        });
    }
    if media.is_empty() {
        return Err(SdpError::NoMediaLine);
    }
    if fingerprints.is_empty() {
        return Err(SdpError::NoFingerprint);
    }
    // All ICE or none: without ICE (no ufrag anywhere) the call binds by
    // media address instead (see `media_address`).
    if missing_ufrag && any_ufrag {
        return Err(SdpError::MissingIceUfrag);
    }
    // One BUNDLE group is one transport: one DTLS role, one ICE ufrag.
    for group in &groups {
        let members = || effective.iter().filter(|e| e.mid.is_some_and(|m| group.contains(&m)));
        let mut setups = members().filter_map(|e| e.setup);
        if let Some(first) = setups.next() {
            if setups.any(|s| s != first) {
                return Err(SdpError::ConflictingSetup);
            }
        }
        let mut ufrags = members().filter_map(|e| e.ufrag);
        if let Some(first) = ufrags.next() {
            if ufrags.any(|u| u != first) {
                return Err(SdpError::ConflictingIceUfrag);
            }
        }
    }
    let ice_ufrag = effective.iter().find_map(|e| e.ufrag);
    // RFC 4145 §4: "If the attribute is not present, 'active' is assumed".
    let setup = effective.iter().find_map(|e| e.setup).unwrap_or(Setup::Active);
    Ok(DtlsDescription {
        fingerprints,
        setup,
        ice_ufrag: ice_ufrag.map(str::to_owned),
        media_address: media_address(parsed),
        ice_pwd_present: effective.iter().all(|e| e.pwd),
        crypto_present: crypto,
        media,
    })
}

/// The first accepted m-line's `c=` address (media level, else session
/// level) with its m= port; see [`DtlsDescription::media_address`].
fn media_address(parsed: &Parsed<'_>) -> Option<SocketAddr> {
    let sec = parsed.sections.iter().find(|s| !s.rejected() && s.port != 0)?;
    let connection = |range: std::ops::Range<usize>| {
        parsed.lines[range]
            .iter()
            .find_map(|l| l.text.strip_prefix("c="))
            .map(str::to_owned)
    };
    let c = connection(sec.start + 1..sec.end).or_else(|| connection(0..parsed.session_end))?;
    // `c=IN IP4 <address>[/<ttl>][/<count>]` (RFC 8866 §5.7).
    let mut fields = c.split_ascii_whitespace();
    let (Some("IN"), Some(family), Some(address)) = (fields.next(), fields.next(), fields.next()) else {
        return None;
    };
    let address = address.split('/').next()?;
    let ip: std::net::IpAddr = address.parse().ok()?;
    let family_ok = matches!(
        (family, ip),
        ("IP4", std::net::IpAddr::V4(_)) | ("IP6", std::net::IpAddr::V6(_))
    );
    (family_ok && !ip.is_unspecified()).then(|| SocketAddr::new(ip, sec.port))
}

// ------------------------------------------------------------------ rewrite

/// RFC 8445 §5.1.2.1: priority = 2^24 * type preference + 2^8 * local
/// preference + (256 - component ID); host type preference 126 (§5.1.2.2),
/// local preference 65535 (one address).
fn host_priority(component: u32) -> u32 {
    (1 << 24) * 126 + (1 << 8) * 65535 + (256 - component)
}

/// `a=candidate:1 <component> udp <priority> <ip> <port> typ host`
/// (RFC 8839 §5.1). The IP is written bare (no brackets for IPv6).
fn host_candidate(component: u32, addr: SocketAddr, port: u16) -> String {
    format!(
        "a=candidate:1 {component} udp {} {} {port} typ host",
        host_priority(component),
        addr.ip()
    )
}

/// `c=IN IP4 <ip>` / `c=IN IP6 <ip>` (RFC 8866 §5.7).
fn connection_line(addr: SocketAddr) -> String {
    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
    format!("c=IN {family} {}", addr.ip())
}

/// Rewrites an SDP for the other side of the proxy:
///
/// * every `a=fingerprint` is replaced by the proxy's: the first line of
///   each level (session, each m-section) in place, further ones at that
///   level dropped;
/// * with `setup`, every `a=setup` value is replaced;
/// * with `announce`, every `a=candidate` is removed (`a=end-of-candidates`
///   stays) and each m-section that carries a transport (not rejected, not
///   bundle-only) gets one host candidate for the announced address,
///   component 1, plus component 2 on port + 1 for RTP without
///   `a=rtcp-mux` (whose `a=rtcp` then names port + 1 too, RFC 3605 §2.1;
///   SCTP m-lines have one component); the candidates go
///   where the section's first candidate was, else before its
///   `a=end-of-candidates`, else at its end. Every `c=` names the announced
///   address, and every m-line port but 0 becomes the announced port
///   (rejected and bundle-only m-lines keep port 0, RFC 3264 §6 and
///   RFC 8843 §6).
///
/// Everything else is kept byte for byte. The output uses CRLF when the
/// input has any CRLF (else LF), and ends with a line ending when the
/// input does. The SDP must pass [`inspect`] first (same errors), so an
/// output always inspects to the proxy's fingerprint.
pub fn rewrite(sdp: &str, rw: &Rewrite<'_>) -> Result<String, SdpError> {
    let parsed = parse(sdp)?;
    inspect_parsed(&parsed)?;
    if rw.announce.is_some_and(|a| a.port() == 0) {
        return Err(SdpError::UnusableAnnounce);
    }
    let eol = parsed.eol;
    let fingerprint_line = format!("a=fingerprint:{}", rw.fingerprint.to_sdp_value());
    let setup_line = rw.setup.map(|s| format!("a=setup:{}", s.as_str()));

    let mut out: Vec<Cow<'_, str>> = Vec::with_capacity(parsed.lines.len() + 2 * parsed.sections.len());
    let texts = Texts {
        fingerprint: &fingerprint_line,
        setup: setup_line.as_deref(),
    };
    emit_level(&mut out, &parsed, 0..parsed.session_end, None, rw, &texts)?;
    for sec in &parsed.sections {
        emit_level(&mut out, &parsed, sec.start..sec.end, Some(sec), rw, &texts)?;
    }

    let mut s = String::with_capacity(sdp.len() + 256);
    for (i, line) in out.iter().enumerate() {
        if i > 0 {
            s.push_str(eol);
        }
        s.push_str(line);
    }
    if parsed.lines.last().is_some_and(|l| l.terminated) {
        s.push_str(eol);
    }
    // The proxy's fingerprint and the candidates may be longer than what
    // they replace: the output keeps the input's bounds, so that it can
    // be inspected (and passed on) in turn.
    if s.len() > MAX_SDP_BYTES || out.len() > MAX_LINES {
        return Err(SdpError::TooLarge);
    }
    Ok(s)
}

/// The replacement lines [`rewrite`] writes.
struct Texts<'t> {
    fingerprint: &'t str,
    setup: Option<&'t str>,
}

/// Writes one level's lines (the session level when `sec` is `None`).
fn emit_level<'a>(
    out: &mut Vec<Cow<'a, str>>,
    parsed: &Parsed<'a>,
    range: std::ops::Range<usize>,
    sec: Option<&Section<'a>>,
    rw: &Rewrite<'_>,
    texts: &Texts<'_>,
) -> Result<(), SdpError> {
    let mut fingerprint_done = false;
    let transport = sec.is_some_and(|s| !s.rejected() && !s.bundle_only);
    let mut candidates: Option<Vec<String>> = None;
    if let (Some(addr), Some(s), true) = (rw.announce, sec, transport) {
        let mut c = vec![host_candidate(1, addr, addr.port())];
        if s.rtcp_component() {
            let rtcp = addr.port().checked_add(1).ok_or(SdpError::UnusableAnnounce)?;
            c.push(host_candidate(2, addr, rtcp));
        }
        candidates = Some(c);
    }
    for i in range {
        let line = &parsed.lines[i];
        let text: &'a str = line.text;
        if line.is_attr("fingerprint") {
            if !fingerprint_done {
                out.push(Cow::Owned(texts.fingerprint.to_owned()));
                fingerprint_done = true;
            }
            continue;
        }
        if let (Some(l), true) = (texts.setup, line.is_attr("setup")) {
            out.push(Cow::Owned(l.to_owned()));
            continue;
        }
        if let Some(addr) = rw.announce {
            if line.is_attr("candidate") {
                if let Some(c) = candidates.take() {
                    out.extend(c.into_iter().map(Cow::Owned));
                }
                continue;
            }
            if line.is_attr("end-of-candidates") {
                if let Some(c) = candidates.take() {
                    out.extend(c.into_iter().map(Cow::Owned));
                }
            } else if text.starts_with("c=") {
                out.push(Cow::Owned(connection_line(addr)));
                continue;
            } else if let (Some(s), true) = (sec, line.is_attr("rtcp")) {
                if transport && s.rtcp_component() {
                    let rtcp = addr.port().checked_add(1).ok_or(SdpError::UnusableAnnounce)?;
                    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
                    out.push(Cow::Owned(format!("a=rtcp:{rtcp} IN {family} {}", addr.ip())));
                    continue;
                }
            } else if let Some(s) = sec.filter(|s| s.start == i && s.port != 0) {
                let (a, b) = s.port_span;
                out.push(Cow::Owned(format!("{}{}{}", &text[..a], addr.port(), &text[b..])));
                continue;
            }
        }
        out.push(Cow::Borrowed(text));
    }
    if let Some(c) = candidates.take() {
        // Blank lines at the end of the last section stay last.
        let mut at = out.len();
        while at > 0 && out[at - 1].is_empty() {
            at -= 1;
        }
        out.splice(at..at, c.into_iter().map(Cow::Owned));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str =
        "sha-256 E2:5C:EF:0F:48:53:23:1F:9C:4E:C8:CF:F3:7F:49:C2:60:C3:D8:2B:DD:9A:CA:A3:FF:67:46:61:4A:71:EF:3E";

    fn proxy() -> Fingerprint {
        Fingerprint {
            algorithm: "sha-256".into(),
            value: (0..32).collect(),
        }
    }

    /// The proxy's fingerprint in, the roles kept, `announce` as the
    /// candidate.
    fn rewrite_announcing(input: &str, announce: &str) -> Result<String, SdpError> {
        let fp = proxy();
        let rw = Rewrite {
            fingerprint: &fp,
            setup: None,
            announce: Some(announce.parse().unwrap()),
        };
        rewrite(input, &rw)
    }

    fn sdp(body: &str) -> String {
        format!("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n{body}")
    }

    #[test]
    fn fingerprint_round_trips_and_matches() {
        let fp = Fingerprint::parse(FP).unwrap();
        assert_eq!(fp.algorithm, "sha-256");
        assert_eq!(fp.value.len(), 32);
        assert_eq!(fp.value[..2], [0xE2, 0x5C]);
        assert_eq!(fp.to_sdp_value(), FP);
        assert!(fp.matches(&fp.value.clone()));
        assert!(!fp.matches(&[0; 32]));
        // Case-insensitive input, uppercase output.
        let lower = Fingerprint::parse(&FP.to_ascii_lowercase().replace("sha-256", "SHA-256")).unwrap();
        assert_eq!(lower, fp);
        // A sha-1 fingerprint never matches a sha-256 digest.
        let sha1 = Fingerprint::parse(&format!("sha-1 {}", vec!["AB"; 20].join(":"))).unwrap();
        assert!(!sha1.matches(&sha1.value.clone()));
    }

    #[test]
    fn malformed_fingerprints_are_refused() {
        for bad in [
            "",
            "sha-256",
            "sha-256 AB:CD",                            // wrong length for sha-256
            "sha-256 ABC:DE",                           // not pairs
            "sha-256 GG:00",                            // not hex
            "sha-256 AB::CD",                           // empty pair
            "sha 256 AB",                               // three fields
            "sh@ AB",                                   // not a token
            &format!("x-new {}", ["00"; 65].join(":")), // longer than any digest
        ] {
            assert!(
                matches!(Fingerprint::parse(bad), Err(SdpError::Malformed { .. })),
                "{bad:?} was accepted"
            );
        }
        // An unknown hash function of sane length is kept (RFC 8122 §5 is
        // extensible through the IANA registry).
        assert_eq!(Fingerprint::parse("x-new AB:CD").unwrap().value, [0xAB, 0xCD]);
    }

    #[test]
    fn setup_values() {
        assert_eq!(Setup::parse("actpass"), Ok(Setup::Actpass));
        assert_eq!(Setup::parse("ACTIVE"), Ok(Setup::Active));
        assert_eq!(Setup::parse("passive"), Ok(Setup::Passive));
        assert_eq!(
            Setup::parse("holdconn"),
            Err(SdpError::UnsupportedSetup("holdconn".into()))
        );
        // Unknown values are echoed short and printable only.
        let e = Setup::parse("x\u{7}yyyyyyyyyyyyyyyyyyyyyyyyyy").unwrap_err();
        assert_eq!(e, SdpError::UnsupportedSetup("x?yyyyyyyyyyyyyy".into()));
        assert_eq!(e.label(), "unsupported-setup");
    }

    #[test]
    fn setup_falls_back_to_session_then_rfc4145_default() {
        let body = format!(
            "a=fingerprint:{FP}\r\na=setup:passive\r\na=ice-ufrag:abcd\r\na=ice-pwd:p\r\nm=audio 9 RTP/SAVPF 0\r\n"
        );
        assert_eq!(inspect(&sdp(&body)).unwrap().setup, Setup::Passive);
        let body = body.replace("a=setup:passive\r\n", "");
        assert_eq!(inspect(&sdp(&body)).unwrap().setup, Setup::Active);
    }

    #[test]
    fn errors_carry_no_sdp_line() {
        let secret = "a=ice-pwd:SECRETSECRET\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEYKEYKEY\r\n";
        for body in [
            format!("{secret}a=fingerprint:sha-256 zz\r\nm=audio 9 RTP/SAVPF 0\r\n"),
            format!("{secret}m=audio x RTP/SAVPF 0\r\n"),
            format!("{secret}garbage SECRETSECRET\r\nm=audio 9 RTP/SAVPF 0\r\n"),
        ] {
            let e = inspect(&sdp(&body)).unwrap_err();
            let text = format!("{e} {e:?} {}", e.reason());
            assert!(!text.contains("SECRET") && !text.contains("KEY"), "{text}");
            assert_eq!(e.label(), "malformed");
        }
        assert_eq!(
            inspect(&sdp(&format!("{secret}bogus\r\n"))).unwrap_err(),
            SdpError::Malformed {
                line: 7,
                reason: "not a <type>=<value> line"
            }
        );
    }

    #[test]
    fn size_and_line_bounds() {
        let big = "a".repeat(MAX_SDP_BYTES + 1);
        assert_eq!(inspect(&big), Err(SdpError::TooLarge));
        let many = "a=x\n".repeat(MAX_LINES + 1);
        assert_eq!(inspect(&many), Err(SdpError::TooLarge));
        let rw = Rewrite {
            fingerprint: &proxy(),
            setup: None,
            announce: None,
        };
        assert_eq!(rewrite(&many, &rw), Err(SdpError::TooLarge));
    }

    #[test]
    fn conflicts_within_one_section_and_bundle() {
        let base = format!("a=fingerprint:{FP}\r\na=group:BUNDLE a b\r\n");
        let m = |mid: &str, setup: &str, ufrag: &str| {
            format!("m=audio 9 RTP/SAVPF 0\r\na=mid:{mid}\r\na=setup:{setup}\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:p\r\n")
        };
        let ok = sdp(&format!("{base}{}{}", m("a", "active", "u1"), m("b", "active", "u1")));
        assert_eq!(inspect(&ok).unwrap().ice_ufrag.as_deref(), Some("u1"));
        let setup = sdp(&format!("{base}{}{}", m("a", "active", "u1"), m("b", "passive", "u1")));
        assert_eq!(inspect(&setup), Err(SdpError::ConflictingSetup));
        let ufrag = sdp(&format!("{base}{}{}", m("a", "active", "u1"), m("b", "active", "u2")));
        assert_eq!(inspect(&ufrag), Err(SdpError::ConflictingIceUfrag));
        // Not bundled together: each m-line is its own transport; the
        // first m-line's values are given.
        let unbundled = ufrag.replace("a=group:BUNDLE a b", "a=group:BUNDLE a");
        assert_eq!(inspect(&unbundled).unwrap().ice_ufrag.as_deref(), Some("u1"));
        let unbundled = setup.replace("a=group:BUNDLE a b\r\n", "");
        assert_eq!(inspect(&unbundled).unwrap().setup, Setup::Active);
        // Two different values at one level.
        let twice = sdp(&format!(
            "a=fingerprint:{FP}\r\n{}a=setup:passive\r\n",
            m("a", "active", "u1")
        ));
        assert_eq!(inspect(&twice), Err(SdpError::ConflictingSetup));
        let twice = sdp(&format!(
            "a=fingerprint:{FP}\r\n{}a=ice-ufrag:u3\r\n",
            m("a", "active", "u1")
        ));
        assert_eq!(inspect(&twice), Err(SdpError::ConflictingIceUfrag));
    }

    #[test]
    fn missing_pieces() {
        let m = "m=audio 9 RTP/SAVPF 0\r\na=setup:active\r\n";
        assert_eq!(
            inspect(&sdp(&format!("a=fingerprint:{FP}\r\n"))),
            Err(SdpError::NoMediaLine)
        );
        assert_eq!(
            inspect(&sdp(&format!("a=ice-ufrag:u\r\n{m}"))),
            Err(SdpError::NoFingerprint)
        );
        // No ICE at all: taken, with the media address.
        let plain = inspect(&sdp(&format!("a=fingerprint:{FP}\r\n{m}"))).unwrap();
        assert_eq!(plain.ice_ufrag, None);
        assert_eq!(plain.media_address, None, "no c= line");
        // Some m-lines with ICE, others without: refused.
        let mixed = format!("a=fingerprint:{FP}\r\n{m}a=ice-ufrag:u1\r\n{m}");
        assert_eq!(inspect(&sdp(&mixed)), Err(SdpError::MissingIceUfrag));
        // A rejected m-line does not count, nor do its attributes.
        let rejected = format!("a=ice-ufrag:u\r\nm=audio 0 RTP/SAVPF 0\r\na=fingerprint:{FP}\r\n");
        assert_eq!(inspect(&sdp(&rejected)), Err(SdpError::NoMediaLine));
        // A plain SIP SDP: no fingerprint matters before no ufrag.
        assert_eq!(inspect(&sdp(m)), Err(SdpError::NoFingerprint));
        let d = inspect(&sdp(&format!("a=ice-ufrag:u\r\na=fingerprint:{FP}\r\n{m}"))).unwrap();
        assert!(!d.ice_pwd_present);
        assert!(!d.crypto_present);
    }

    #[test]
    fn media_address_from_c_and_m_lines() {
        let at = |body: &str| {
            inspect(&sdp(&format!("a=fingerprint:{FP}\r\n{body}")))
                .unwrap()
                .media_address
        };
        let m = "m=audio 40000 UDP/TLS/RTP/SAVP 0\r\n";
        // Session level c=, media level c= wins, TTL suffix, IPv6.
        assert_eq!(
            at(&format!("c=IN IP4 192.0.2.1\r\n{m}")),
            Some("192.0.2.1:40000".parse().unwrap())
        );
        assert_eq!(
            at(&format!("c=IN IP4 192.0.2.1\r\n{m}c=IN IP4 192.0.2.2/127\r\n")),
            Some("192.0.2.2:40000".parse().unwrap())
        );
        assert_eq!(
            at(&format!("{m}c=IN IP6 2001:db8::1\r\n")),
            Some("[2001:db8::1]:40000".parse().unwrap())
        );
        // A rejected first m-line is skipped.
        let rejected = "m=video 0 UDP/TLS/RTP/SAVP 96\r\n";
        assert_eq!(
            at(&format!("c=IN IP4 192.0.2.1\r\n{rejected}{m}")),
            Some("192.0.2.1:40000".parse().unwrap())
        );
        // ICE's placeholder, a family mismatch, a host name: no address.
        assert_eq!(at(&format!("c=IN IP4 0.0.0.0\r\n{m}")), None);
        assert_eq!(at(&format!("c=IN IP6 192.0.2.1\r\n{m}")), None);
        assert_eq!(at(&format!("c=IN IP4 host.example\r\n{m}")), None);
    }

    #[test]
    fn announce_without_rtcp_mux_adds_component_two_and_rtcp_port() {
        let input = sdp(&format!(
            "a=fingerprint:{FP}\r\nm=audio 5004 RTP/SAVP 0\r\nc=IN IP4 10.0.0.1\r\na=rtcp:5005 IN IP4 10.0.0.1\r\n\
             a=ice-ufrag:u\r\na=ice-pwd:p\r\na=setup:actpass\r\n\
             a=candidate:9 1 udp 1 10.0.0.1 5004 typ host\r\na=candidate:9 2 udp 1 10.0.0.1 5005 typ host\r\n"
        ));
        let fp = proxy();
        let announce: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
        let rw = Rewrite {
            fingerprint: &fp,
            setup: Some(Setup::Passive),
            announce: Some(announce),
        };
        let out = rewrite(&input, &rw).unwrap();
        let want = sdp(&format!(
            "a=fingerprint:{}\r\nm=audio 40000 RTP/SAVP 0\r\nc=IN IP6 2001:db8::7\r\na=rtcp:40001 IN IP6 2001:db8::7\r\n\
             a=ice-ufrag:u\r\na=ice-pwd:p\r\na=setup:passive\r\n\
             a=candidate:1 1 udp 2130706431 2001:db8::7 40000 typ host\r\n\
             a=candidate:1 2 udp 2130706430 2001:db8::7 40001 typ host\r\n",
            fp.to_sdp_value()
        ));
        assert_eq!(out, want);
        let high = Rewrite {
            announce: Some("192.0.2.1:65535".parse().unwrap()),
            ..rw
        };
        assert_eq!(rewrite(&input, &high), Err(SdpError::UnusableAnnounce));
        let zero = Rewrite {
            announce: Some("192.0.2.1:0".parse().unwrap()),
            ..rw
        };
        assert_eq!(rewrite(&input, &zero), Err(SdpError::UnusableAnnounce));
        // With rtcp-mux, 65535 is fine: one component.
        let muxed = input.replace("a=setup:actpass\r\n", "a=setup:actpass\r\na=rtcp-mux\r\n");
        let out = rewrite(&muxed, &high).unwrap();
        assert!(
            out.contains("a=rtcp:5005 IN IP4 10.0.0.1\r\n"),
            "a=rtcp of a muxed m-line is left alone"
        );
        assert_eq!(out.matches("a=candidate:").count(), 1);
    }

    #[test]
    fn sdes_crypto_lines_are_noted_and_kept() {
        let crypto = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        let input = sdp(&format!(
            "a=fingerprint:{FP}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=ice-ufrag:u\r\n{crypto}\r\na=rtcp-mux\r\n"
        ));
        assert!(inspect(&input).unwrap().crypto_present);
        let fp = proxy();
        let rw = Rewrite {
            fingerprint: &fp,
            setup: Some(Setup::Active),
            announce: Some("192.0.2.1:9".parse().unwrap()),
        };
        let out = rewrite(&input, &rw).unwrap();
        assert!(out.contains(&format!("\r\n{crypto}\r\n")));
    }

    #[test]
    fn sctp_m_lines_get_one_component() {
        let input = sdp(&format!(
            "a=fingerprint:{FP}\r\na=ice-ufrag:u\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        ));
        let d = inspect(&input).unwrap();
        assert!(!d.media[0].rtcp_mux && !d.media[0].rtcp_component());
        let out = rewrite_announcing(&input, "192.0.2.1:65535").unwrap();
        assert_eq!(out.matches("a=candidate:").count(), 1);
    }

    #[test]
    fn priorities_follow_rfc8445() {
        // RFC 8445 §5.1.2.1 with host (126), local preference 65535.
        assert_eq!(host_priority(1), 2130706431);
        assert_eq!(host_priority(2), 2130706430);
    }

    #[test]
    fn a_cr_that_does_not_end_a_line_is_refused() {
        // The last, unterminated line ends in a CR (fuzz: sdp_rewrite; a
        // rewrite that appends candidates after it would make it a CRLF),
        // and a CR inside a line.
        let base = format!("v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nt=0 0\nm=audio 9 RTP/SAVP 0\na=fingerprint:{FP}\n");
        for (input, line) in [(format!("{base}a=mid:0\r"), 7), (format!("{base}a=mid:\r0\r\n"), 7)] {
            let err = inspect(&input).unwrap_err();
            assert_eq!(
                err,
                SdpError::Malformed {
                    line,
                    reason: "a CR that does not end the line"
                },
                "{input:?}"
            );
            assert_eq!(rewrite_announcing(&input, "192.0.2.9:3478").unwrap_err(), err);
        }
    }

    #[test]
    fn line_endings_and_extra_fingerprints() {
        // LF input, no final newline, two fingerprints at one level.
        let input = format!(
            "v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nt=0 0\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=ice-ufrag:u\n\
             a=fingerprint:{FP}\na=fingerprint:sha-1 {}\na=mid:0",
            ["00"; 20].join(":")
        );
        assert_eq!(inspect(&input).unwrap().fingerprints.len(), 2);
        let out = rewrite_announcing(&input, "192.0.2.9:3478").unwrap();
        assert!(!out.contains('\r'));
        assert!(
            out.ends_with("a=candidate:1 2 udp 2130706430 192.0.2.9 3479 typ host"),
            "{out}"
        );
        assert_eq!(out.matches("a=fingerprint:").count(), 1);
        let d = inspect(&out).unwrap();
        assert_eq!(d.fingerprints, [proxy()]);
        assert_eq!(d.media[0].port, 3478);
        assert_eq!(rewrite_announcing(&out, "192.0.2.9:3478").unwrap(), out);
        // Any CRLF makes the output CRLF throughout.
        let mixed = input.replacen('\n', "\r\n", 1);
        let out = rewrite_announcing(&mixed, "192.0.2.9:3478").unwrap();
        assert_eq!(out.matches('\n').count(), out.matches("\r\n").count());
    }

    #[test]
    fn bundle_only_keeps_port_zero_and_gets_no_candidates() {
        let input = sdp(&format!(
            "a=group:BUNDLE 0 1\r\na=fingerprint:{FP}\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtcp-mux\r\na=end-of-candidates\r\n\
             m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=bundle-only\r\na=rtcp-mux\r\n\
             m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n"
        ));
        let d = inspect(&input).unwrap();
        assert_eq!(d.media.len(), 2, "the rejected third m-line is skipped");
        assert!(d.media[1].bundle_only);
        let out = rewrite_announcing(&input, "192.0.2.9:3478").unwrap();
        assert!(out.contains(
            "m=audio 3478 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 192.0.2.9\r\na=mid:0\r\na=rtcp-mux\r\n\
             a=candidate:1 1 udp 2130706431 192.0.2.9 3478 typ host\r\na=end-of-candidates\r\n"
        ));
        assert!(out.contains("m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 192.0.2.9\r\na=mid:1\r\na=bundle-only\r\n"));
        assert!(out.ends_with("m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 192.0.2.9\r\na=mid:2\r\n"));
        assert_eq!(out.matches("a=candidate").count(), 1);
        // A bundle-only m-line with a port (not what RFC 8843 §6 writes)
        // does not keep the peer's port either; it still gets no candidate.
        let odd = input.replace(
            "m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1",
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1",
        );
        let out = rewrite_announcing(&odd, "192.0.2.9:3478").unwrap();
        assert!(out.contains("m=video 3478 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 192.0.2.9\r\na=mid:1\r\na=bundle-only\r\n"));
        assert_eq!(out.matches("a=candidate").count(), 1);
    }
}
