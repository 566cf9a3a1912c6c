//! `rtp-middlebox` command line.

use clap::{Parser, Subcommand, ValueEnum};
use rtp_middlebox::analyze::{malformed_counts, render_table, Analyzer, JsonOutput};
use rtp_middlebox::config::Config;
use rtp_middlebox::stats::clock_rate::parse_pt_rate;
use rtp_middlebox::stats::ClockRates;
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "rtp-middlebox",
    version,
    about = "Media-aware RTP/RTCP middlebox: relays, measures and reports every stream"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay in front of an upstream (SFU).
    Run {
        /// TOML config (default: the embedded config/default.toml).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Client-facing address of the first relay (overrides the file).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Upstream (SFU) address of the first relay (overrides the file).
        #[arg(long)]
        upstream: Option<std::net::SocketAddr>,
        /// RTCP mode of every relay: forward, auto or terminate.
        #[arg(long, value_parser = ["forward", "auto", "terminate"])]
        rtcp: Option<String>,
        /// Shorthand for `--rtcp terminate`.
        #[arg(long, conflicts_with = "rtcp")]
        rtcp_termination: bool,
        /// HTTP API address (overrides `[api] listen`; port 0 picks one).
        #[arg(long)]
        api_listen: Option<std::net::SocketAddr>,
        /// Let the API listen on a non-loopback address without a token
        /// (`[api] allow_tokenless`): only on a private network you control.
        #[arg(long)]
        api_allow_tokenless: bool,
        /// A host name the API answers to besides its address and
        /// `localhost` (added to `[api] allowed_hosts`; repeatable), e.g.
        /// the name Prometheus scrapes it by.
        #[arg(long = "api-allowed-host", value_name = "NAME")]
        api_allowed_hosts: Vec<String>,
        /// Worker threads (0 = one per core).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Do not log session open/close lines.
        #[arg(long)]
        quiet: bool,
        /// Validate the configuration (file and flags) and exit: 0 when
        /// valid, 2 with the key and the problem otherwise.
        #[arg(long)]
        check_config: bool,
    },
    /// Exit 0 when a running proxy's API answers GET /healthz (for
    /// container health checks), 1 otherwise.
    Health {
        /// The API address of the proxy.
        #[arg(long, default_value = "127.0.0.1:9470")]
        api: std::net::SocketAddr,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 2)]
        timeout: u64,
    },
    /// A self-contained call on loopback: synthetic browser and SFU (which
    /// suppresses its RRs), seeded impairment, the proxy in between; shows
    /// live stats and compares them with what was injected.
    Demo {
        /// Run time in seconds.
        #[arg(long, default_value_t = 20, conflicts_with = "forever")]
        seconds: u64,
        /// Keep running until Ctrl-C.
        #[arg(long)]
        forever: bool,
        /// RTCP mode of the proxy.
        #[arg(long, default_value = "auto", value_parser = ["forward", "auto", "terminate"])]
        rtcp: String,
        /// Random loss on the client leg, percent, each direction.
        #[arg(long, default_value_t = 2.0)]
        loss: f64,
        /// No burst loss (Gilbert-Elliott) on top of --loss.
        #[arg(long)]
        no_burst: bool,
        /// Loss in Gilbert bursts (4 packets on average) on the client leg,
        /// percent, each direction; replaces the default burst chain. With
        /// `--loss 0` it is the same loss rate as `--loss N --no-burst`,
        /// only burstier.
        #[arg(long, default_value_t = 0.0)]
        burst_loss: f64,
        /// One-way delay of the client leg, ms.
        #[arg(long, default_value_t = 20.0)]
        delay_ms: f64,
        /// Delay variation of the client leg, ± ms.
        #[arg(long, default_value_t = 5.0)]
        jitter_ms: f64,
        /// One-way delay of the upstream leg, ms.
        #[arg(long, default_value_t = 5.0)]
        upstream_delay_ms: f64,
        /// Impairment seed (same seed, same losses).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// HTTP API address (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        api_listen: std::net::SocketAddr,
        /// Print the summary as JSON on stdout (no live table).
        #[arg(long)]
        json: bool,
        /// Plain live output even on a terminal.
        #[arg(long)]
        plain: bool,
        /// DTLS-SRTP on both legs, terminated by the proxy (relay dtls =
        /// "terminate"; the call's SDPs pass through the calls API).
        #[arg(long)]
        dtls: bool,
    },
    /// Analyze a pcap or pcapng capture with the relay's engine.
    Analyze {
        /// Capture file (pcap or pcapng; Ethernet, Linux cooked v1/v2, raw IP).
        capture: std::path::PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Clock rate of a dynamic payload type, as PT=HZ (repeatable).
        /// Adds to the static types and the embedded default config's map.
        #[arg(long = "clock-rate", value_name = "PT=HZ", value_parser = parse_pt_rate)]
        clock_rate: Vec<(u8, u32)>,
        /// Use this config file's first relay's clock-rate map instead of the embedded one.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    W3c,
    Table,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            listen,
            upstream,
            rtcp,
            rtcp_termination,
            api_listen,
            api_allow_tokenless,
            api_allowed_hosts,
            workers,
            quiet,
            check_config,
        } => {
            let overrides = Overrides {
                listen,
                upstream,
                rtcp: if rtcp_termination {
                    Some("terminate".into())
                } else {
                    rtcp
                },
                api_listen,
                api_allow_tokenless,
                api_allowed_hosts,
            };
            if check_config {
                // The DTLS identity files are read too: a key that does not
                // load fails here, not at start.
                let loaded = load_with_overrides(config.as_deref(), &overrides)
                    .and_then(|c| c.dtls_identity().map(|_| c).map_err(|e| format!("dtls: {e}")));
                return match loaded {
                    Ok(c) => {
                        println!(
                            "configuration valid: {} relay(s), api on {}",
                            c.relay.len(),
                            c.api.listen
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("rtp-middlebox run --check-config: {e}");
                        ExitCode::from(2)
                    }
                };
            }
            match run(config.as_deref(), overrides, workers, quiet) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rtp-middlebox run: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Health { api, timeout } => match health(api, std::time::Duration::from_secs(timeout.max(1))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rtp-middlebox health: {e}");
                ExitCode::from(1)
            }
        },
        Command::Demo {
            seconds,
            forever,
            rtcp,
            loss,
            no_burst,
            burst_loss,
            delay_ms,
            jitter_ms,
            upstream_delay_ms,
            seed,
            api_listen,
            json,
            plain,
            dtls,
        } => {
            let opts = rtp_middlebox::sim::demo::DemoOptions {
                seconds: (!forever).then_some(seconds),
                rtcp: rtcp.parse().unwrap_or_default(),
                loss: loss / 100.0,
                burst: !no_burst,
                burst_loss: burst_loss / 100.0,
                delay_ms,
                jitter_ms,
                upstream_delay_ms,
                seed,
                api_listen,
                display: if json {
                    rtp_middlebox::sim::demo::Display::Off
                } else if plain {
                    rtp_middlebox::sim::demo::Display::Plain
                } else {
                    rtp_middlebox::sim::demo::Display::Auto
                },
                dtls,
                ..Default::default()
            };
            if !(0.0..=100.0).contains(&loss) {
                eprintln!("rtp-middlebox demo: --loss {loss} must be a percentage in 0..=100");
                return ExitCode::from(2);
            }
            if !(0.0..100.0).contains(&burst_loss) {
                eprintln!("rtp-middlebox demo: --burst-loss {burst_loss} must be a percentage in 0..100");
                return ExitCode::from(2);
            }
            match demo(&opts, json) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rtp-middlebox demo: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Analyze {
            capture,
            format,
            clock_rate,
            config,
        } => match analyze(&capture, format, &clock_rate, config.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rtp-middlebox analyze: {e}");
                ExitCode::from(2)
            }
        },
    }
}

struct Overrides {
    listen: Option<std::net::SocketAddr>,
    upstream: Option<std::net::SocketAddr>,
    rtcp: Option<String>,
    api_listen: Option<std::net::SocketAddr>,
    api_allow_tokenless: bool,
    api_allowed_hosts: Vec<String>,
}

/// The config file (or the embedded default) with the command-line
/// overrides applied, validated.
fn load_with_overrides(path: Option<&std::path::Path>, o: &Overrides) -> Result<Config, String> {
    let mut config = load_config(path)?;
    if let Some(first) = config.relay.first_mut() {
        if let Some(l) = o.listen {
            first.listen = l;
        }
        if let Some(u) = o.upstream {
            first.upstream = u;
        }
    }
    if let Some(mode) = &o.rtcp {
        let mode = mode.parse().map_err(|e: String| e)?;
        for r in &mut config.relay {
            r.rtcp = mode;
        }
    }
    if let Some(a) = o.api_listen {
        config.api.listen = a;
    }
    config.api.allow_tokenless |= o.api_allow_tokenless;
    config.api.allowed_hosts.extend(o.api_allowed_hosts.iter().cloned());
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// How long SIGTERM's drain lets the workers finish before exiting anyway.
const DRAIN_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

fn run(path: Option<&std::path::Path>, o: Overrides, workers: usize, quiet: bool) -> Result<(), String> {
    let mut config = load_with_overrides(path, &o)?;
    // Before anything is announced: a signal sent as soon as the process
    // says it listens must find the handlers in place.
    let mut signals = Signals::register()?;
    let opts = rtp_middlebox::runtime::RunOptions {
        workers,
        log_sessions: !quiet,
        ..Default::default()
    };
    let relay = rtp_middlebox::runtime::start(&config, &opts).map_err(|e| format!("cannot start: {e}"))?;
    for b in relay.bound() {
        eprintln!(
            "relay listening on {}{} -> upstream {} ({} workers; sessions up to {})",
            b.listen,
            b.listen_rtcp.map_or(String::new(), |r| format!(" (rtcp {r})")),
            b.upstream,
            relay.workers(),
            b.session_capacity
        );
    }
    let rates = config.relay.first().map(|r| r.clock_rates()).unwrap_or_default();
    let api = rtp_middlebox::runtime::start_api(
        rtp_middlebox::export::api::ApiOptions::from_config(&config),
        relay.handle(),
        rates,
    )
    .map_err(|e| format!("cannot start the HTTP API on {}: {e}", config.api.listen))?;
    eprintln!("api listening on http://{}/v1/sessions", api.local_addr);
    // After the two lines that say where the proxy listens (scripts and
    // supervisors read them first).
    if let Some(warning) = relay.descriptor_warning() {
        eprintln!("{warning}");
    }
    while let Signal::Reload = signals.next() {
        // The file is read again; flags given at start still win.
        match load_with_overrides(path, &o).and_then(|new| {
            relay.reload(&config, &new)?;
            Ok(new)
        }) {
            Ok(new) => {
                config = new;
                eprintln!("SIGHUP: configuration reloaded (applies to new sessions; live sessions continue)");
            }
            Err(e) => eprintln!("SIGHUP: configuration not reloaded, keeping the running one: {e}"),
        }
    }
    // Drain: refuse new sessions, close the live ones with their final
    // statistics, stop the API; bounded even when a worker or a stream
    // subscriber is stuck.
    eprintln!("draining: no new sessions");
    relay.stop_accepting();
    let finals = relay.shutdown(DRAIN_BOUND);
    if quiet {
        // Without --quiet the workers already logged each session's
        // per-stream figures as they closed it.
        for v in &finals {
            eprintln!("{}", final_line(v));
        }
    }
    api.stop();
    eprintln!("closed {} sessions", finals.len());
    Ok(())
}

/// One line of final statistics per session closed by the drain.
fn final_line(v: &rtp_middlebox::runtime::SessionView) -> String {
    let q = rtp_middlebox::export::publish::quality(v);
    format!(
        "session {} closed (shutdown) after {:.1} s: {}",
        q.session,
        q.duration_secs,
        rtp_middlebox::export::publish::legs_line(&q)
    )
}

fn demo(opts: &rtp_middlebox::sim::demo::DemoOptions, json: bool) -> Result<(), String> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        // Ctrl-C (or SIGTERM) ends the run early, still with a summary.
        let stop = stop.clone();
        let mut signals = Signals::register()?;
        std::thread::spawn(move || {
            while let Signal::Reload = signals.next() {}
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let live: &mut dyn std::io::Write = if json { &mut stderr } else { &mut stdout };
    let summary = rtp_middlebox::sim::demo::run(opts, stop, live)?;
    let text = if json {
        serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())? + "\n"
    } else {
        rtp_middlebox::sim::demo::render_summary(&summary)
    };
    use std::io::Write;
    let _ = stdout.write_all(text.as_bytes());
    Ok(())
}

enum Signal {
    Reload,
    Stop,
}

/// SIGINT/SIGTERM/SIGHUP, registered once for the process so that a signal
/// arriving while the previous one is handled waits in its stream instead
/// of being lost.
struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Signals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let _guard = rt.enter();
        let term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        drop(_guard);
        Ok(Signals { rt, term, int, hup })
    }

    /// Blocks until SIGINT or SIGTERM (stop) or SIGHUP (reload).
    fn next(&mut self) -> Signal {
        let Signals { rt, term, int, hup } = self;
        rt.block_on(async {
            tokio::select! {
                _ = int.recv() => Signal::Stop,
                _ = term.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
            }
        })
    }
}

/// GET /healthz on a running proxy's API.
fn health(api: std::net::SocketAddr, timeout: std::time::Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&api, timeout).map_err(|e| format!("{api}: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(s, "GET /healthz HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).map_err(|e| format!("{api}: {e}"))?;
    let status = String::from_utf8_lossy(&head[..n]);
    if status.starts_with("HTTP/1.1 200") {
        println!("ok");
        Ok(())
    } else {
        Err(format!("{api} answered {}", status.lines().next().unwrap_or("nothing")))
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, String> {
    match path {
        None => Ok(Config::embedded_default()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            Config::from_toml(&text).map_err(|e| format!("{}: {e}", p.display()))
        }
    }
}

fn analyze(
    path: &std::path::Path,
    format: Format,
    overrides: &[(u8, u32)],
    config: Option<&std::path::Path>,
) -> Result<(), String> {
    let config = load_config(config)?;
    let mut rates: BTreeMap<u8, u32> = config
        .relay
        .first()
        .and_then(|r| r.clock_rate_table().ok())
        .unwrap_or_default();
    rates.extend(overrides.iter().copied());
    let clock_rates = ClockRates::new(&rates);
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut analyzer = Analyzer::new(clock_rates.clone());
    analyzer
        .read_capture(std::io::BufReader::new(file))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let streams = analyzer.streams();
    let text = match format {
        Format::Table => render_table(&streams),
        Format::Json => {
            let out = JsonOutput {
                streams: &streams,
                frames: analyzer.frames,
                malformed: malformed_counts(analyzer.engine()),
            };
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())? + "\n"
        }
        Format::W3c => {
            // Capture timestamps are wall-clock already: seconds → ms.
            let reports: Vec<_> = analyzer
                .snapshots()
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "session": s.id,
                        "client": s.client,
                        "upstream": s.upstream,
                        "stats": rtp_middlebox::report::session_report(s, &clock_rates, |t| t * 1000.0),
                    })
                })
                .collect();
            serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())? + "\n"
        }
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) is not an error worth a panic.
    let _ = stdout.write_all(text.as_bytes());
    Ok(())
}
