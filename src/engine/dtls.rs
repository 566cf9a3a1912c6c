//! Back-to-back DTLS-SRTP (RFC 5763, RFC 5764): on a relay with
//! `dtls = "terminate"`, a session bound to a call set up through the
//! calls API has two DTLS associations, one per leg. Toward the client the
//! proxy plays the upstream's DTLS role, toward the upstream the client's,
//! and each peer's certificate is checked against the fingerprint that peer
//! put in its own SDP. Each leg exports its own SRTP keys, so every SRTP
//! and SRTCP packet is opened with one leg's keys and protected with the
//! other's; the engine then reads, generates and rewrites RTCP on both legs
//! as it does with SDES keys.
//!
//! ICE stays end to end: STUN passes through unchanged, and a session binds
//! to its call by the ICE ufrags in a Binding request's USERNAME
//! (`remote:local`, RFC 8445 §7.2.2). A call without ICE (RFC 5763 allows
//! DTLS-SRTP without it: SIP trunks, GStreamer's dtlssrtpenc/dec) binds by
//! the client's media address instead (see `engine::calls`).
//!
//! DTLS is `dimpl`'s, a sans-IO state machine driven like the engine: it
//! gets datagrams and times and answers with records and a next timeout.
//! Its times are `std::time::Instant`s; the engine hands it
//! `epoch + (now - MonoTime::ZERO)`, where `epoch` is an arbitrary
//! `Instant` its driver supplied once, so virtual time drives handshakes
//! and their retransmissions exactly as it drives everything else.

use super::Side;
use crate::dtls::{srtp_keys_from_export, suite_of, LegKeys, SharedIdentity};
use crate::srtp::{CryptoSuite, SrtpError};
use crate::time::MonoTime;
use rtc_shared::marshal::Unmarshal;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A peer's DTLS role once offer and answer are both known (RFC 5763 §5:
/// `active` is the DTLS client).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DtlsRole {
    Client,
    Server,
}

/// What the calls API learned about one peer from its SDP.
#[derive(Clone, Debug)]
pub struct PeerDtls {
    /// `None` when the peer's SDP has no ICE (no `a=ice-ufrag`).
    pub ufrag: Option<String>,
    /// SHA-256 certificate fingerprints the peer announced (RFC 8122).
    pub fingerprints: Vec<[u8; 32]>,
    pub role: DtlsRole,
}

/// A call whose offer and answer passed through the calls API.
#[derive(Clone, Debug)]
pub struct CallSetup {
    pub call_id: String,
    pub client: PeerDtls,
    pub upstream: PeerDtls,
    /// For a call without ICE (neither peer has a ufrag): where the client
    /// sends its media from, per its SDP (`c=` and m= port; symmetric RTP,
    /// RFC 4961). The session whose client address this is binds the call.
    pub client_address: Option<std::net::SocketAddr>,
}

/// Engine-wide DTLS settings (present when some relay terminates DTLS).
#[derive(Clone, Debug)]
pub struct DtlsSettings {
    pub identity: SharedIdentity,
    /// The `Instant` that stands for `MonoTime::ZERO` (see module docs).
    pub epoch: Instant,
    /// A leg whose handshake is not done by then fails.
    pub handshake_timeout: Duration,
    /// Legs handshaking at once in this engine; more are refused.
    pub max_handshakes: usize,
    /// Calls set up but never bound to a session expire after this.
    pub unbound_call_ttl: Duration,
    /// Calls waiting for their session, at most.
    pub max_calls: usize,
}

impl DtlsSettings {
    pub fn new(identity: SharedIdentity, epoch: Instant) -> Self {
        DtlsSettings {
            identity,
            epoch,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 1024,
            unbound_call_ttl: Duration::from_secs(60),
            max_calls: 10_000,
        }
    }

    pub(crate) fn instant(&self, now: MonoTime) -> Instant {
        self.epoch + Duration::from_nanos(now.as_nanos())
    }

    pub(crate) fn mono(&self, t: Instant) -> MonoTime {
        let since = t.saturating_duration_since(self.epoch);
        MonoTime::from_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    fn dimpl_config(&self) -> Option<Arc<dimpl::Config>> {
        dimpl::Config::builder()
            .require_client_certificate(true)
            .handshake_timeout(self.handshake_timeout)
            .build()
            .ok()
            .map(Arc::new)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LegState {
    /// Waiting for the peer's first flight (the proxy is the server), or
    /// for the other leg's peer to start (the proxy is the client).
    Idle,
    Handshaking,
    Connected,
    Failed(&'static str),
}

struct Leg {
    dtls: dimpl::Dtls,
    expected: Vec<[u8; 32]>,
    proxy_is_client: bool,
    state: LegState,
    cert_verified: bool,
    keys: Option<(LegKeys, CryptoSuite)>,
    timeout: Option<MonoTime>,
    /// `Connected` was reported.
    announced: bool,
}

/// Something a leg wants done.
pub enum LegOutput {
    /// A DTLS record for the peer on `side`.
    Record(Side, Vec<u8>),
    Connected(Side, CryptoSuite),
    Failed(Side, &'static str),
}

/// The two legs of one session.
pub struct BackToBack {
    pub call_id: Arc<str>,
    legs: [Leg; 2],
    /// Both legs' SRTP contexts once both are connected.
    pub media: Option<MediaCrypto>,
    /// The DTLS timer queued in the engine for this session, if any.
    pub(crate) scheduled: Option<MonoTime>,
    /// Records discarded as invalid (RFC 6347 §4.1.2.7).
    pub discarded: u64,
}

impl BackToBack {
    /// The proxy toward each side takes the opposite of that side's peer's
    /// role.
    pub fn new(call: &CallSetup, settings: &DtlsSettings, now: MonoTime) -> Option<Self> {
        let config = settings.dimpl_config()?;
        let leg = |peer: &PeerDtls| {
            let mut dtls = dimpl::Dtls::new_auto(
                config.clone(),
                settings.identity.dimpl_certificate(),
                settings.instant(now),
            );
            let proxy_is_client = peer.role == DtlsRole::Server;
            if proxy_is_client {
                dtls.set_active(true);
            }
            Leg {
                dtls,
                expected: peer.fingerprints.clone(),
                proxy_is_client,
                state: LegState::Idle,
                cert_verified: false,
                keys: None,
                timeout: None,
                announced: false,
            }
        };
        Some(BackToBack {
            call_id: Arc::from(call.call_id.as_str()),
            legs: [leg(&call.client), leg(&call.upstream)],
            media: None,
            scheduled: None,
            discarded: 0,
        })
    }

    pub fn state(&self, side: Side) -> LegState {
        self.legs[side.index()].state
    }

    pub fn failed(&self) -> bool {
        self.legs.iter().any(|l| matches!(l.state, LegState::Failed(_)))
    }

    pub fn handshaking(&self) -> usize {
        self.legs.iter().filter(|l| l.state == LegState::Handshaking).count()
    }

    /// The earliest retransmission or deadline of either leg.
    pub fn next_timeout(&self) -> Option<MonoTime> {
        self.legs.iter().filter_map(|l| l.timeout).min()
    }

    /// A DTLS record from the peer on `side`. When that peer starts its
    /// handshake and the proxy is the client on the other leg, the other
    /// leg starts too: each endpoint starts DTLS once its own ICE check
    /// succeeded, so the proxy follows the endpoints' timing.
    pub fn on_record(
        &mut self,
        settings: &DtlsSettings,
        now: MonoTime,
        side: Side,
        record: &[u8],
        out: &mut Vec<LegOutput>,
    ) {
        if self.failed() {
            return;
        }
        let t = settings.instant(now);
        let leg = &mut self.legs[side.index()];
        let result = leg.dtls.handle_timeout(t).and_then(|()| leg.dtls.handle_packet(record));
        if let Err(e) = result {
            // RFC 6347 §4.1.2.7: invalid records are discarded silently, so
            // a forged or garbled datagram cannot kill a leg; what is fatal
            // is the peer failing authentication or the deadline.
            if fatal(&e) {
                self.fail(side, error_label(&e), out);
                return;
            }
            self.discarded += 1;
            if leg.state == LegState::Idle && !leg.proxy_is_client {
                // Nothing valid came yet: start over clean, so junk that
                // dimpl buffered as ClientHello fragments cannot wedge the
                // real ClientHello that follows.
                if let Some(config) = settings.dimpl_config() {
                    leg.dtls = dimpl::Dtls::new_auto(config, settings.identity.dimpl_certificate(), t);
                }
                return;
            }
        }
        let before = out.len();
        self.drain(settings, side, out);
        // The leg is under way once the proxy answers the peer (a real
        // first flight, not junk); then the proxy starts the other leg when
        // it is the client there.
        let answered = out[before..]
            .iter()
            .any(|o| matches!(o, LegOutput::Record(s, _) if *s == side));
        let leg = &mut self.legs[side.index()];
        if leg.state == LegState::Idle && answered {
            leg.state = LegState::Handshaking;
        }
        let other = side.other();
        if leg.state != LegState::Idle
            && self.legs[other.index()].state == LegState::Idle
            && self.legs[other.index()].proxy_is_client
        {
            self.start(settings, now, other, out);
        }
        self.key_media();
    }

    fn start(&mut self, settings: &DtlsSettings, now: MonoTime, side: Side, out: &mut Vec<LegOutput>) {
        let leg = &mut self.legs[side.index()];
        leg.state = LegState::Handshaking;
        if let Err(e) = leg.dtls.handle_timeout(settings.instant(now)) {
            self.fail(side, error_label(&e), out);
            return;
        }
        self.drain(settings, side, out);
    }

    /// Runs due retransmissions and deadlines.
    pub fn on_timeout(&mut self, settings: &DtlsSettings, now: MonoTime, out: &mut Vec<LegOutput>) {
        for side in Side::BOTH {
            let leg = &mut self.legs[side.index()];
            if leg.timeout.is_none_or(|t| t > now) || matches!(leg.state, LegState::Failed(_) | LegState::Idle) {
                continue;
            }
            match leg.dtls.handle_timeout(settings.instant(now)) {
                Ok(()) => self.drain(settings, side, out),
                Err(e) => self.fail(side, error_label(&e), out),
            }
        }
    }

    fn drain(&mut self, settings: &DtlsSettings, side: Side, out: &mut Vec<LegOutput>) {
        // Records of this drain are held back when the leg fails in it: a
        // peer whose certificate does not match its SDP never gets the
        // proxy's final flight (dimpl may queue it before surfacing the
        // certificate).
        let start = out.len();
        self.drain_into(settings, side, out);
        if matches!(self.legs[side.index()].state, LegState::Failed(_)) {
            let mut i = start;
            while i < out.len() {
                if matches!(out[i], LegOutput::Record(s, _) if s == side) {
                    out.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    fn drain_into(&mut self, settings: &DtlsSettings, side: Side, out: &mut Vec<LegOutput>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let leg = &mut self.legs[side.index()];
            match leg.dtls.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => out.push(LegOutput::Record(side, p.to_vec())),
                dimpl::Output::BufferTooSmall { needed } => buf.resize(needed, 0),
                dimpl::Output::Timeout(t) => {
                    // dimpl may hand the keys after `Connected`: announce
                    // the leg once both are in.
                    if leg.state == LegState::Connected && !leg.announced {
                        if let Some((_, suite)) = &leg.keys {
                            leg.announced = true;
                            out.push(LegOutput::Connected(side, *suite));
                        }
                    }
                    leg.timeout = (leg.state == LegState::Handshaking || leg.state == LegState::Connected)
                        .then(|| settings.mono(t))
                        // dimpl's idle timer is far away once connected;
                        // only handshake timers matter to the engine.
                        .filter(|_| leg.state == LegState::Handshaking);
                    return;
                }
                dimpl::Output::PeerCert(der) => {
                    // RFC 8122 §5 / RFC 5763 §5: the certificate must match a
                    // fingerprint from the peer's own SDP.
                    let digest = crate::dtls::sha256(der);
                    leg.cert_verified = leg.expected.contains(&digest);
                    if !leg.cert_verified {
                        self.fail(side, "fingerprint_mismatch", out);
                        return;
                    }
                }
                dimpl::Output::KeyingMaterial(material, profile) => {
                    let Some(suite) = suite_of(profile) else {
                        self.fail(side, "srtp_profile", out);
                        return;
                    };
                    match srtp_keys_from_export(&material, suite, leg.proxy_is_client) {
                        Some(keys) => leg.keys = Some((keys, suite)),
                        None => {
                            self.fail(side, "keying_material", out);
                            return;
                        }
                    }
                }
                dimpl::Output::Connected => {
                    if !leg.cert_verified {
                        self.fail(side, "no_certificate", out);
                        return;
                    }
                    leg.state = LegState::Connected;
                    leg.timeout = None;
                }
                dimpl::Output::ApplicationData(_) | dimpl::Output::CloseNotify => {}
                _ => {}
            }
        }
    }

    fn fail(&mut self, side: Side, reason: &'static str, out: &mut Vec<LegOutput>) {
        let leg = &mut self.legs[side.index()];
        if matches!(leg.state, LegState::Failed(_)) {
            return;
        }
        leg.state = LegState::Failed(reason);
        leg.timeout = None;
        leg.keys = None;
        self.media = None;
        out.push(LegOutput::Failed(side, reason));
    }

    /// Both legs connected: SRTP contexts from their keys.
    fn key_media(&mut self) {
        if self.media.is_some() {
            return;
        }
        let [c, u] = &self.legs;
        let (Some((ck, _)), Some((uk, _))) = (&c.keys, &u.keys) else {
            return;
        };
        if c.state != LegState::Connected || u.state != LegState::Connected {
            return;
        }
        self.media = MediaCrypto::new(ck, uk).ok();
    }

    /// Both legs' keys, for the session's SRTCP contexts.
    pub fn leg_keys(&self) -> Option<[&LegKeys; 2]> {
        let [c, u] = &self.legs;
        match (&c.keys, &u.keys) {
            (Some((ck, _)), Some((uk, _))) if self.media.is_some() => Some([ck, uk]),
            _ => None,
        }
    }
}

/// Errors that end a leg; anything else is a record to discard.
fn fatal(e: &dimpl::Error) -> bool {
    matches!(
        e,
        dimpl::Error::Timeout(_)
            | dimpl::Error::CertificateError(_)
            | dimpl::Error::SecurityError(_)
            | dimpl::Error::ConfigError(_)
            | dimpl::Error::ConnectionClosed
    )
}

fn error_label(e: &dimpl::Error) -> &'static str {
    match e {
        dimpl::Error::Timeout(_) => "timeout",
        dimpl::Error::CertificateError(_) => "certificate",
        dimpl::Error::SecurityError(_) => "security",
        dimpl::Error::CryptoError(_) => "crypto",
        dimpl::Error::UnexpectedMessage(_) => "unexpected_message",
        dimpl::Error::ReceiveQueueFull | dimpl::Error::TransmitQueueFull => "queue_full",
        dimpl::Error::ConnectionClosed => "closed",
        _ => "handshake",
    }
}

/// SRTP (media) contexts of a back-to-back session: open what a side sends
/// with that leg's peer keys, protect toward a side with that leg's own
/// keys. `rtc-srtp` keeps ROC and per-SSRC state per context, so each leg
/// has its own (RFC 3711 §3.3.1).
pub struct MediaCrypto {
    open: [rtc_srtp::context::Context; 2],
    protect: [rtc_srtp::context::Context; 2],
}

impl MediaCrypto {
    fn new(client: &LegKeys, upstream: &LegKeys) -> Result<Self, SrtpError> {
        use crate::srtp::media_context;
        Ok(MediaCrypto {
            open: [media_context(&client.peer_write)?, media_context(&upstream.peer_write)?],
            protect: [media_context(&client.own_write)?, media_context(&upstream.own_write)?],
        })
    }

    /// Authenticates and decrypts SRTP the peer on `side` sent: the plain
    /// packet and its parsed header, which [`Self::protect`] takes again
    /// (an RTP header is sent in the clear and SRTP leaves it unchanged,
    /// RFC 3711 §3.1: one parse serves both legs).
    pub fn open(&mut self, side: Side, packet: &[u8]) -> Result<(bytes::BytesMut, rtp::Header), SrtpError> {
        let header = rtp::Header::unmarshal(&mut &packet[..]).map_err(|_| SrtpError::AuthFailed)?;
        let plain = self.open[side.index()]
            .decrypt_rtp_with_header(packet, &header)
            .map_err(|_| SrtpError::AuthFailed)?;
        Ok((plain, header))
    }

    /// Protects plain RTP (with its header from [`Self::open`]) toward the
    /// peer on `toward`; the protected packet's buffer becomes the
    /// transmit's, uncopied.
    pub fn protect(&mut self, toward: Side, plain: &[u8], header: &rtp::Header) -> Result<Vec<u8>, SrtpError> {
        self.protect[toward.index()]
            .encrypt_rtp_with_header(plain, header)
            .map(Vec::from)
            .map_err(|_| SrtpError::Crypto)
    }
}
