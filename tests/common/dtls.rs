//! Back-to-back DTLS support for tests and benches: a DTLS endpoint (dimpl,
//! its own certificate) playing a browser or an SFU, and a call through
//! an engine that terminates DTLS on both legs, on virtual time.

use super::*;
use rtp_middlebox::dtls::{sha256, srtp_keys_from_export, suite_of, DtlsIdentity, LegKeys};
use rtp_middlebox::engine::dtls::{CallSetup, DtlsRole, DtlsSettings, PeerDtls};
use rtp_middlebox::engine::{EngineConfig, Event, RtcpMode, SessionId, Side, Verdict};
use rtp_middlebox::time::MonoTime;
use rtp_middlebox::wire::stun::{StunClass, ATTR_USERNAME};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A DTLS endpoint of the test: a browser or an SFU.
pub struct Peer {
    pub dtls: dimpl::Dtls,
    pub identity: DtlsIdentity,
    pub active: bool,
    pub keys: Option<LegKeys>,
    pub connected: bool,
    pub peer_fingerprint: Option<[u8; 32]>,
    pub outbox: Vec<Vec<u8>>,
}

impl Peer {
    pub fn new(active: bool, epoch: Instant) -> Peer {
        let identity = DtlsIdentity::generate().unwrap();
        let config = Arc::new(dimpl::Config::default());
        let mut dtls = dimpl::Dtls::new_auto(config, identity.dimpl_certificate(), epoch);
        if active {
            dtls.set_active(true);
        }
        Peer {
            dtls,
            identity,
            active,
            keys: None,
            connected: false,
            peer_fingerprint: None,
            outbox: Vec::new(),
        }
    }

    pub fn description(&self, ufrag: &str) -> PeerDtls {
        PeerDtls {
            ufrag: Some(ufrag.into()),
            fingerprints: vec![self.identity.fingerprint()],
            role: if self.active {
                DtlsRole::Client
            } else {
                DtlsRole::Server
            },
        }
    }

    pub fn at(&mut self, t: Instant) {
        self.dtls.handle_timeout(t).unwrap();
        self.poll();
    }

    pub fn feed(&mut self, t: Instant, record: &[u8]) {
        self.dtls.handle_timeout(t).unwrap();
        let _ = self.dtls.handle_packet(record);
        self.poll();
    }

    pub fn poll(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            match self.dtls.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => self.outbox.push(p.to_vec()),
                dimpl::Output::Timeout(_) => return,
                dimpl::Output::Connected => self.connected = true,
                dimpl::Output::PeerCert(der) => self.peer_fingerprint = Some(sha256(der)),
                dimpl::Output::KeyingMaterial(m, profile) => {
                    self.keys = srtp_keys_from_export(&m, suite_of(profile).unwrap(), self.active);
                }
                _ => {}
            }
        }
    }
}

pub const CLIENT_UFRAG: &str = "cLiE";
pub const UPSTREAM_UFRAG: &str = "uPsT";

pub struct Call {
    pub driver: Driver,
    pub client: Peer,
    pub upstream: Peer,
    pub proxy: DtlsIdentity,
    pub epoch: Instant,
    pub now: MonoTime,
    pub id: SessionId,
}

impl Call {
    pub fn instant(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.now.as_nanos())
    }

    /// Delivers everything both peers and the engine have to send until
    /// nothing moves, advancing time 1 ms per round.
    pub fn pump(&mut self) {
        for _ in 0..200 {
            self.now = self.now + Duration::from_millis(1);
            let t = self.instant();
            self.client.at(t);
            self.upstream.at(t);
            let mut moved = false;
            for record in std::mem::take(&mut self.client.outbox) {
                moved = true;
                self.driver.client_datagram(self.now, addr(CLIENT), &record);
                self.route();
            }
            for record in std::mem::take(&mut self.upstream.outbox) {
                moved = true;
                self.driver.handle_datagram(self.now, Side::Upstream, self.id, &record);
                self.route();
            }
            self.driver.handle_timeout(self.now);
            while let Some(sent) = self.driver.poll_transmit() {
                moved = true;
                self.peer(sent.toward).feed(t, &sent.datagram);
            }
            if !moved && self.client.connected && self.upstream.connected {
                return;
            }
        }
    }

    pub fn peer(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::Client => &mut self.client,
            Side::Upstream => &mut self.upstream,
        }
    }

    /// Hands what the engine sent for the last input to the peers.
    pub fn route(&mut self) {
        let t = self.instant();
        for sent in std::mem::take(&mut self.driver.last_sent) {
            self.peer(sent.toward).feed(t, &sent.datagram);
        }
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.driver.poll_event()).collect()
    }
}

impl Call {
    /// The call "call-1" once its one session is open and bound to it.
    fn bound(driver: Driver, client: Peer, upstream: Peer, proxy: DtlsIdentity, epoch: Instant, now: MonoTime) -> Call {
        let id = driver.sessions().next().unwrap().id;
        assert_eq!(driver.call_session("call-1"), Some(id));
        Call {
            driver,
            client,
            upstream,
            proxy,
            epoch,
            now,
            id,
        }
    }
}

/// An engine driver whose one relay terminates DTLS with a fresh proxy
/// identity; the epoch its virtual time starts from.
pub fn terminating_driver(mode: RtcpMode) -> (Instant, DtlsIdentity, Driver) {
    let epoch = epoch();
    let proxy = DtlsIdentity::generate().unwrap();
    let config = EngineConfig {
        relays: vec![rtp_middlebox::engine::RelaySettings {
            dtls_terminate: true,
            ..relay(mode)
        }],
        dtls: Some(DtlsSettings::new(Arc::new(proxy.clone()), epoch)),
        idle_timeout: None,
        ..EngineConfig::default()
    };
    (epoch, proxy, Driver::new(config))
}

/// A call where the client is the DTLS client (Chromium answering an SFU's
/// offer with `a=setup:active`) and the upstream the server.
pub fn call(mode: RtcpMode, client_fingerprint_ok: bool) -> Call {
    let (epoch, proxy, mut driver) = terminating_driver(mode);
    let client = Peer::new(true, epoch);
    let upstream = Peer::new(false, epoch);
    let mut client_desc = client.description(CLIENT_UFRAG);
    if !client_fingerprint_ok {
        client_desc.fingerprints = vec![[0xab; 32]];
    }
    driver
        .set_call(
            MonoTime::ZERO,
            CallSetup {
                call_id: "call-1".into(),
                client: client_desc,
                upstream: upstream.description(UPSTREAM_UFRAG),
                client_address: None,
            },
        )
        .unwrap();
    // ICE: the client's check opens the session and binds the call.
    let username = format!("{UPSTREAM_UFRAG}:{CLIENT_UFRAG}");
    let check = stun(StunClass::Request, [7; 12], &[(ATTR_USERNAME, username.as_bytes())]);
    let now = ms(10);
    assert!(matches!(
        driver.client_datagram(now, addr(CLIENT), &check),
        Verdict::Forward(_)
    ));
    Call::bound(driver, client, upstream, proxy, epoch, now)
}

/// A call without ICE (RFC 5763 with no ICE, as SIP trunks or GStreamer's
/// dtlssrtpenc/dec): neither peer has a ufrag, and the call names the
/// client's media address. The client's first ClientHello opens the
/// session, binds it and is the proxy's at once.
pub fn call_without_ice(mode: RtcpMode) -> Call {
    let (epoch, proxy, mut driver) = terminating_driver(mode);
    let mut client = Peer::new(true, epoch);
    let upstream = Peer::new(false, epoch);
    let no_ice = |p: &Peer| PeerDtls {
        ufrag: None,
        ..p.description("-")
    };
    driver
        .set_call(
            MonoTime::ZERO,
            CallSetup {
                call_id: "call-1".into(),
                client: no_ice(&client),
                upstream: no_ice(&upstream),
                client_address: Some(addr(CLIENT)),
            },
        )
        .unwrap();
    let now = ms(10);
    client.at(epoch + Duration::from_millis(10));
    let hello = client.outbox.remove(0);
    let verdict = driver.client_datagram(now, addr(CLIENT), &hello);
    assert!(
        matches!(verdict, Verdict::Consumed),
        "the ClientHello is the proxy's: {verdict:?}"
    );
    let mut c = Call::bound(driver, client, upstream, proxy, epoch, now);
    c.route();
    c
}

/// The `Instant` standing for virtual time zero: any will do, since dimpl
/// and the engine only use differences from it.
#[allow(clippy::disallowed_methods)]
pub fn epoch() -> Instant {
    Instant::now()
}
