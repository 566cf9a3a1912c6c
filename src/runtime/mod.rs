//! The shell around the engine: sockets, workers (one mio poll loop each),
//! timers, the clock, signals and graceful shutdown. See `worker.rs` for the
//! packet path.

pub mod batch;
pub mod clock;
pub mod socket;
pub mod worker;

use crate::config::{parse_port_range, range_sessions, Config};
use crate::export::metrics::{counters, MetricDef};
pub use crate::view::{parse_view_id, SessionView, WorkerStats};
use batch::SendOutcome;
use serde::Serialize;
use socket::{udp_listen_socket, PortAllocator};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

counters! {
    /// Socket-level counters of one worker (summed for the process).
    #[derive(Clone, Copy, Debug, Default, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct IoCounters {
        pub received_client: u64,
        pub received_upstream: u64,
        pub sent: u64,
        /// Send buffer full (EAGAIN/ENOBUFS): the datagram was dropped.
        pub send_would_block: u64
            => SEND_ERRORS: counter("rtpmb_send_errors_total", "{packet}", [reason],
                "Datagrams the kernel refused to send, by reason.")
                {reason = "would_block"},
        /// ICMP errors (port/host unreachable) reported on send.
        pub send_refused: u64 => SEND_ERRORS {reason = "refused"},
        pub send_other_errors: u64 => SEND_ERRORS {reason = "other"},
        /// ICMP errors reported on receive (ECONNREFUSED after the upstream's
        /// port was unreachable): the session stays.
        pub recv_refused: u64
            => RECEIVE_ERRORS: counter("rtpmb_receive_errors_total", "{error}", [reason],
                "Socket receive errors, by reason (refused: ICMP unreachable from the upstream).")
                {reason = "refused"},
        pub recv_other_errors: u64 => RECEIVE_ERRORS {reason = "other"},
        pub sessions_created: u64
            => SESSIONS_CREATED: counter("rtpmb_sessions_created_total", "{session}", [],
                "Sessions opened."),
        pub sessions_expired: u64
            => SESSIONS_EXPIRED: counter("rtpmb_sessions_expired_total", "{session}", [],
                "Sessions closed after their idle timeout."),
        pub sessions_refused: u64
            => SESSIONS_REFUSED: counter("rtpmb_sessions_refused_total", "{session}", [],
                "New client addresses refused (session limit or no upstream port)."),
        pub upstream_bind_failures: u64,
        /// Datagrams the worker dropped before the engine (no session).
        pub dropped_no_session: u64 => DROPPED_PACKETS {reason = "no_session"},
        /// Generated RTCP reports sent.
        pub reports_sent: u64,
        /// Closed-session records nobody collected in time (see
        /// [`worker::MAX_CLOSED_KEPT`]).
        pub closed_records_dropped: u64,
    }
}

impl IoCounters {
    /// Drops before the engine count with the engine's, under their own reason.
    const DROPPED_PACKETS: &'static MetricDef = crate::engine::Counters::DROPPED_PACKETS;

    pub fn add_send(&mut self, o: SendOutcome) {
        self.sent += o.sent as u64;
        self.send_would_block += o.would_block as u64;
        self.send_refused += o.refused as u64;
        self.send_other_errors += o.other_errors as u64;
    }

    pub fn add_recv_error(&mut self, e: &io::Error) {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) | Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) => self.recv_refused += 1,
            _ => self.recv_other_errors += 1,
        }
    }
}

/// Options beyond the config file.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads; 0 = one per available core.
    pub workers: usize,
    pub buffer_bytes: usize,
    /// Log session open/close lines (with final statistics) to stderr.
    pub log_sessions: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 0,
            buffer_bytes: socket::DEFAULT_BUFFER_BYTES,
            log_sessions: true,
        }
    }
}

/// Addresses a relay actually bound (ports resolved when 0 was asked).
#[derive(Clone, Debug, Serialize)]
pub struct BoundRelay {
    pub listen: SocketAddr,
    pub listen_rtcp: Option<SocketAddr>,
    pub upstream: SocketAddr,
    /// Sessions it can hold: `limits.max_sessions`, or fewer when its
    /// upstream port range holds fewer; past them new clients are refused.
    pub session_capacity: usize,
}

struct WorkerHandle {
    control: ControlSender,
    thread: JoinHandle<io::Result<Vec<SessionView>>>,
}

use worker::{Control, ControlSender};

/// A running relay: its workers and how to reach them.
pub struct RelayRuntime {
    workers: Vec<WorkerHandle>,
    steering: SteeredGroups,
    bound: Vec<BoundRelay>,
    shutdown: Arc<AtomicBool>,
    calls: CallsFacts,
    descriptor_warning: Option<String>,
}

/// How client datagrams reach workers: every listening group steered by
/// the client's address and port pair, or, for `nat_rebinding = "stun"`,
/// by its address alone (see [`socket::Steering`]).
struct SteeredGroups {
    sockets: Vec<(std::net::UdpSocket, SocketAddr)>,
    workers: usize,
}

impl SteeredGroups {
    fn apply(&self, policy: crate::engine::NatRebinding) -> io::Result<()> {
        let by = match policy {
            crate::engine::NatRebinding::Stun => socket::Steering::Address,
            crate::engine::NatRebinding::Never => socket::Steering::PortPair,
        };
        for (s, local) in &self.sockets {
            socket::steer(s, *local, self.workers, by)?;
        }
        Ok(())
    }
}

/// What the calls API needs to rewrite SDP: the proxy's DTLS identity and,
/// per terminating relay, the address announced to clients.
#[derive(Clone, Default)]
pub struct CallsFacts {
    pub identity: Option<std::sync::Arc<crate::dtls::DtlsIdentity>>,
    /// (relay index, `announce`) of each `dtls = "terminate"` relay.
    pub relays: Vec<(usize, Option<SocketAddr>)>,
}

/// A random seed from the standard library's per-process hasher keys
/// (no extra dependency for one number per worker).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// Starts the relay described by `config`.
pub fn start(config: &Config, opts: &RunOptions) -> io::Result<RelayRuntime> {
    if config.relay.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no [[relay]] configured"));
    }
    // Descriptors: one upstream socket per session, two for non-mux
    // relays, the listening sockets of every worker, and room for the API,
    // logs and certificates.
    let per_session: u64 = if config.relay.iter().any(|r| r.upstream_rtcp.is_some()) {
        2
    } else {
        1
    };
    // The sessions the relays can open at all: the upstream port ranges cap
    // them below `max_sessions` unless they are widened (10 000 ports by
    // default against 100 000), so the descriptors asked for follow the
    // smaller of the two, and a default config on a 20 000-descriptor
    // system starts without a warning that does not apply.
    let sessions_in_ranges: usize = config
        .relay
        .iter()
        .map(|r| {
            parse_port_range(&r.upstream_ports).map_or(0, |range| range_sessions(range, r.upstream_rtcp.is_some()))
        })
        .sum();
    let sessions = config.limits.max_sessions.min(sessions_in_ranges);
    let wanted = sessions as u64 * per_session + 1024;
    let limit = socket::raise_descriptor_limit(wanted);
    let descriptor_warning = (limit < wanted).then(|| {
        format!(
            "warning: the open-file limit is {limit} descriptors; {sessions} sessions \
             (limits.max_sessions, or the upstream port ranges when they hold fewer) need about {wanted}: \
             sessions beyond about {} will be refused (rtpmb_sessions_refused_total). \
             Raise it (ulimit -n, LimitNOFILE= in systemd) or lower limits.max_sessions.",
            limit.saturating_sub(1024) / per_session
        )
    });
    let n = if opts.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.workers
    };
    // Bind worker 0's sockets first so that port 0 resolves to one port
    // that every other worker then shares through SO_REUSEPORT.
    let mut per_worker: Vec<Vec<worker::RelaySockets>> = (0..n).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    // One socket of each listening group, to steer it (now and on reload).
    let mut steered = Vec::new();
    for relay in &config.relay {
        let ports =
            parse_port_range(&relay.upstream_ports).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let first = udp_listen_socket(relay.listen, n > 1, opts.buffer_bytes)?;
        let listen = first.local_addr()?;
        let first_rtcp = relay
            .listen_rtcp
            .map(|a| udp_listen_socket(a, n > 1, opts.buffer_bytes))
            .transpose()?;
        let listen_rtcp = first_rtcp.as_ref().map(|s| s.local_addr()).transpose()?;
        bound.push(BoundRelay {
            listen,
            listen_rtcp,
            upstream: relay.upstream,
            session_capacity: range_sessions(ports, relay.upstream_rtcp.is_some()).min(config.limits.max_sessions),
        });
        for s in std::iter::once(&first).chain(first_rtcp.as_ref()) {
            steered.push((s.try_clone()?, s.local_addr()?));
        }
        let mut first = Some((first, first_rtcp));
        for (w, sockets) in per_worker.iter_mut().enumerate() {
            let (l, lr) = match first.take() {
                Some(v) => v,
                None => (
                    udp_listen_socket(listen, true, opts.buffer_bytes)?,
                    listen_rtcp
                        .map(|a| udp_listen_socket(a, true, opts.buffer_bytes))
                        .transpose()?,
                ),
            };
            // Spread workers over the port range to make collisions rare.
            let span = u32::from(ports.1 - ports.0) + 1;
            let offset = (span as usize * w / n) as u16;
            sockets.push(worker::RelaySockets {
                listen: l,
                listen_rtcp: lr,
                ports: PortAllocator::new(relay.upstream_bind, ports, offset),
            });
        }
    }
    let steering = SteeredGroups {
        sockets: steered,
        workers: n,
    };
    steering.apply(config.limits.nat_rebinding)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let identity = config
        .dtls_identity()
        .map_err(|e| io::Error::other(format!("dtls: {e}")))?
        .map(std::sync::Arc::new);
    for (w, sockets) in per_worker.into_iter().enumerate() {
        let mut engine = config.engine_config(n, random_seed());
        // The worker sets the epoch to its own clock's origin.
        engine.dtls = identity
            .as_ref()
            .map(|id| config.dtls_settings(id, n, clock::Clock::new().instant_of(crate::time::MonoTime::ZERO)));
        let (tx, rx) = worker::control_channel()?;
        let stop = shutdown.clone();
        let buffer_bytes = opts.buffer_bytes;
        let log = opts.log_sessions;
        let thread = std::thread::Builder::new()
            .name(format!("relay-worker-{w}"))
            .spawn(move || worker::run(w, sockets, engine, buffer_bytes, rx, stop, log))?;
        workers.push(WorkerHandle { control: tx, thread });
    }
    let calls = CallsFacts {
        identity,
        relays: config
            .relay
            .iter()
            .enumerate()
            .filter(|(_, r)| r.dtls == crate::config::DtlsMode::Terminate)
            .map(|(i, r)| (i, r.announce))
            .collect(),
    };
    Ok(RelayRuntime {
        workers,
        steering,
        bound,
        shutdown,
        calls,
        descriptor_warning,
    })
}

/// Starts the metrics pipeline (`[metrics]`, `[collector]`) and the HTTP
/// API that serves it; the pipeline stops with the returned server.
pub fn start_api(
    options: crate::export::api::ApiOptions,
    relay: RelayHandle,
    rates: crate::stats::ClockRates,
) -> io::Result<crate::export::api::ApiServer> {
    let pipeline = crate::export::pipeline::start(options.pipeline(), relay.clone(), rates.clone())?;
    crate::export::api::start(options, relay, rates, pipeline)
}

/// A cheap, cloneable way to ask the workers for sessions and counters
/// (the HTTP API holds one).
#[derive(Clone)]
pub struct RelayHandle {
    controls: Vec<ControlSender>,
    calls: CallsFacts,
}

impl RelayHandle {
    /// Sends `request` to every worker and collects the answers of those
    /// that answer (a worker that is gone is left out).
    async fn ask_all<T>(&self, request: impl Fn(oneshot::Sender<T>) -> Control) -> Vec<T> {
        let mut out = Vec::new();
        for c in &self.controls {
            let (tx, rx) = oneshot::channel();
            if c.send(request(tx)).await.is_ok() {
                if let Ok(answer) = rx.await {
                    out.push(answer);
                }
            }
        }
        out
    }

    /// Every live session with its statistics.
    pub async fn sessions(&self) -> Vec<SessionView> {
        self.ask_all(Control::Sessions).await.into_iter().flatten().collect()
    }

    /// Final views of sessions closed since the previous call.
    pub async fn take_closed(&self) -> Vec<SessionView> {
        self.ask_all(Control::TakeClosed).await.into_iter().flatten().collect()
    }

    /// Provisions (`Some`) or removes a session's SRTCP keys. `Ok(false)`:
    /// no such session.
    pub async fn set_keys(
        &self,
        id: &str,
        keys: Option<crate::engine::SessionKeys>,
    ) -> Result<crate::engine::KeysOutcome, String> {
        use crate::engine::KeysOutcome;
        let Some((worker, engine_id, tag)) = parse_view_id(id) else {
            return Ok(KeysOutcome::UnknownSession);
        };
        let Some(control) = self.controls.get(worker) else {
            return Ok(KeysOutcome::UnknownSession);
        };
        let (tx, rx) = oneshot::channel();
        control
            .send(Control::SetKeys(engine_id, tag, keys.map(Box::new), tx))
            .await
            .map_err(|_| "the worker is gone".to_string())?;
        rx.await.map_err(|_| "the worker is gone".to_string())?
    }

    /// Tells a session what its SDP says about its streams (RTX). `false`:
    /// no such session.
    pub async fn set_media(&self, id: &str, media: crate::engine::media::MediaMap) -> bool {
        let Some((worker, engine_id, tag)) = parse_view_id(id) else {
            return false;
        };
        let Some(control) = self.controls.get(worker) else {
            return false;
        };
        let (tx, rx) = oneshot::channel();
        if control
            .send(Control::SetMedia(engine_id, tag, Box::new(media), tx))
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// The proxy's DTLS identity and terminating relays.
    pub fn calls(&self) -> &CallsFacts {
        &self.calls
    }

    /// Registers a call with every worker (its session may land on any).
    pub async fn set_call(&self, setup: crate::engine::dtls::CallSetup) -> Result<(), String> {
        let answers = self.ask_all(|tx| Control::SetCall(Box::new(setup.clone()), tx)).await;
        match answers.into_iter().find(|a| a.is_err()) {
            Some(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Forgets a call everywhere (closing its session); whether any worker
    /// knew it.
    pub async fn remove_call(&self, call_id: &str) -> bool {
        self.ask_all(|tx| Control::RemoveCall(call_id.to_owned(), tx))
            .await
            .into_iter()
            .any(|known| known)
    }

    /// Per-worker counters.
    pub async fn stats(&self) -> Vec<WorkerStats> {
        self.ask_all(Control::Stats).await
    }
}

impl RelayRuntime {
    pub fn handle(&self) -> RelayHandle {
        RelayHandle {
            calls: self.calls.clone(),
            controls: self.workers.iter().map(|w| w.control.clone()).collect(),
        }
    }

    pub fn bound(&self) -> &[BoundRelay] {
        &self.bound
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Why the relay may not reach `limits.max_sessions`: the process's
    /// open-file limit stayed below what that many sessions need, even
    /// after [`start`] raised it as far as it may.
    pub fn descriptor_warning(&self) -> Option<&str> {
        self.descriptor_warning.as_deref()
    }

    /// Every live session with its statistics.
    pub async fn sessions(&self) -> Vec<SessionView> {
        self.handle().sessions().await
    }

    /// [`RelayHandle::ask_all`] from a thread outside any runtime.
    fn ask_all_blocking<T>(&self, request: impl Fn(oneshot::Sender<T>) -> Control) -> Vec<T> {
        self.workers
            .iter()
            .filter_map(|w| {
                let (tx, rx) = oneshot::channel();
                w.control.blocking_send(request(tx)).ok()?;
                rx.blocking_recv().ok()
            })
            .collect()
    }

    /// [`Self::sessions`] from a thread outside any runtime.
    pub fn sessions_blocking(&self) -> Vec<SessionView> {
        self.ask_all_blocking(Control::Sessions).into_iter().flatten().collect()
    }

    /// Applies a reloaded config (SIGHUP) to sessions opened from now on:
    /// relay upstreams and RTCP modes, limits, report settings, clock rates.
    /// Sockets are not rebound, so listen addresses, port ranges and the
    /// number of relays must stay as they are (a restart changes those).
    /// Live sessions keep their upstream, mode and statistics.
    pub fn reload(&self, old: &Config, new: &Config) -> Result<(), String> {
        if old.relay.len() != new.relay.len() {
            return Err("the number of [[relay]] sections changed: restart to apply".into());
        }
        for (i, (a, b)) in old.relay.iter().zip(&new.relay).enumerate() {
            for (key, same) in [
                ("listen", a.listen == b.listen),
                ("listen_rtcp", a.listen_rtcp == b.listen_rtcp),
                ("upstream_bind", a.upstream_bind == b.upstream_bind),
                ("upstream_ports", a.upstream_ports == b.upstream_ports),
                ("upstream_rtcp", a.upstream_rtcp.is_some() == b.upstream_rtcp.is_some()),
                ("dtls", a.dtls == b.dtls),
            ] {
                if !same {
                    return Err(format!("relay[{i}].{key} changed: restart to apply"));
                }
            }
        }
        if old.dtls.certificate != new.dtls.certificate || old.dtls.private_key != new.dtls.private_key {
            return Err("dtls.certificate changed: restart to apply".into());
        }
        // Each worker keeps its own seed and DTLS identity (the engine
        // ignores new ones).
        if old.limits.nat_rebinding != new.limits.nat_rebinding {
            self.steering
                .apply(new.limits.nat_rebinding)
                .map_err(|e| format!("steering client datagrams to workers: {e}"))?;
        }
        let reload = new.engine_config(self.workers.len(), 0);
        for w in &self.workers {
            w.control
                .blocking_send(Control::Reload(Box::new(reload.clone())))
                .map_err(|_| "a worker is gone".to_string())?;
        }
        Ok(())
    }

    /// Draining: every worker refuses new client addresses from now on.
    pub fn stop_accepting(&self) {
        for w in &self.workers {
            let _ = w.control.blocking_send(Control::StopAccepting);
        }
    }

    /// Per-worker counters, from a thread outside any runtime.
    pub fn stats_blocking(&self) -> Vec<WorkerStats> {
        self.ask_all_blocking(Control::Stats)
    }

    /// Stops accepting, closes every session and returns their final
    /// statistics. Workers that do not finish within `bound` are left
    /// behind (their sessions are not reported) so shutdown never hangs.
    pub fn shutdown(self, bound: Duration) -> Vec<SessionView> {
        self.shutdown.store(true, Ordering::Release);
        for w in &self.workers {
            w.control.wake();
        }
        let clock = clock::Clock::new();
        let mut finals = Vec::new();
        for w in self.workers {
            while !w.thread.is_finished() && clock.now().as_nanos() < bound.as_nanos() as u64 {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.thread.is_finished() {
                if let Ok(Ok(v)) = w.thread.join() {
                    finals.extend(v);
                }
            }
        }
        finals
    }
}
