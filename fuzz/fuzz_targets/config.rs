//! Configuration parsing: `Config::from_toml` on arbitrary UTF-8, then the
//! accessors a running relay calls on an accepted config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    let _ = config.idle_timeout();
    for relay in &config.relay {
        let _ = relay.clock_rate_table();
        let _ = relay.clock_rates();
    }
});
