//! A relay and its HTTP API started in-process, as the demo and the
//! integration tests run them: one worker, no session log lines.

use crate::config::Config;
use crate::export::http::{self, ApiOptions, ApiServer};
use crate::runtime::{self, RelayRuntime, RunOptions};
use std::io;

/// Starts the relays `config` describes on one worker, without session log
/// lines.
pub fn start_relay(config: &Config) -> io::Result<RelayRuntime> {
    let options = RunOptions {
        workers: 1,
        log_sessions: false,
        ..RunOptions::default()
    };
    runtime::start(config, &options)
}

/// Starts the HTTP API (and the metrics pipeline) with `options` in front
/// of `relay`, with the clock rates of `config`'s first relay.
pub fn start_api(relay: &RelayRuntime, config: &Config, options: ApiOptions) -> io::Result<ApiServer> {
    let rates = config
        .relay
        .first()
        .map(|r| r.clock_rates())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no [[relay]] configured"))?;
    http::start(options, relay.handle(), rates)
}
