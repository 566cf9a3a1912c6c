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

fn load_config(path: Option<&std::path::Path>) -> Result<Config, String> {
    match path {
        None => Ok(Config::embedded_default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
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
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
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
