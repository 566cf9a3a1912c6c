//! Capture replay: `Analyzer::read_capture` on arbitrary bytes (pcap or
//! pcapng, any link type), then the per-stream results `analyze` prints,
//! serialized as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtp_middlebox::analyze::Analyzer;
use rtp_middlebox::stats::ClockRates;

fuzz_target!(|data: &[u8]| {
    let mut analyzer = Analyzer::new(ClockRates::new(&Default::default()));
    let _ = analyzer.read_capture(data);
    let streams = analyzer.streams();
    for s in &streams {
        serde_json::to_string(s).expect("stream result serializes");
    }
    let _ = analyzer.snapshots();
});
