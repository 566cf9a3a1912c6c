//! The documentation matches the program: every config key is documented in
//! README's configuration reference and in the embedded default config,
//! every example config validates, and README's set-up section holds
//! exactly the two commands CI runs.

use rtp_middlebox::config::Config;
use serde_json::Value;

/// A config with every optional key set, so that serialising it names every
/// key the structs accept.
fn everything() -> Config {
    let mut c = Config::from_toml(
        "[[relay]]\nlisten = \"0.0.0.0:20000\"\nlisten_rtcp = \"0.0.0.0:20001\"\n\
         upstream = \"127.0.0.1:30000\"\nupstream_rtcp = \"127.0.0.1:30001\"\n\
         [api]\ntoken = \"0123456789abcdef\"\n\
         [collector]\notlp_endpoint = \"http://127.0.0.1:4318\"\ninterval_secs = 10\ntimeout_ms = 5000\nmax_retries = 5\n\
         [[srtp]]\nclient = \"192.0.2.20\"\nsuite = \"AES_CM_128_HMAC_SHA1_80\"\n\
         client_key = \"inline:WVNfmVf9m9WJgyhjCeAfTCAbzPWGCt08ktYeDHyq\"\n\
         upstream_key = \"inline:WVNfmVf9m9WJgyhjCeAfTCAbzPWGCt08ktYeDHyq\"\n",
    )
    .unwrap();
    c.collector.resource.insert("region".into(), "x".into());
    c
}

/// Dotted key paths; maps with free-form keys (clock rates, resource
/// attributes) stop at the map.
fn paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !["relay.clock_rates", "collector.resource"].contains(&prefix) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                paths(v, &p, out);
            }
        }
        Value::Array(a) if prefix == "relay" || prefix == "srtp" => {
            if let Some(first) = a.first() {
                paths(first, prefix, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn every_config_key_is_documented() {
    let mut keys = Vec::new();
    paths(&serde_json::to_value(everything()).unwrap(), "", &mut keys);
    assert!(keys.len() > 20, "{keys:?}");
    let readme = std::fs::read_to_string("README.md").unwrap();
    let default = std::fs::read_to_string("config/default.toml").unwrap();
    let mut missing = Vec::new();
    for key in &keys {
        if !readme.contains(&format!("| `{key}` |")) {
            missing.push(format!("README configuration reference: {key}"));
        }
        let leaf = key.rsplit('.').next().unwrap();
        let documented = default.lines().any(|l| {
            let l = l.trim_start_matches(['#', ' ']);
            l.starts_with(&format!("{leaf} =")) || l.starts_with(&format!("[{key}]"))
        });
        if !documented {
            missing.push(format!("config/default.toml: {key}"));
        }
    }
    assert!(missing.is_empty(), "undocumented config keys:\n{}", missing.join("\n"));
}

#[test]
fn every_example_config_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir("config").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            Config::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 3, "default, sfu-front and sip-trunk at least");
    let front = Config::from_toml(&std::fs::read_to_string("config/sfu-front.toml").unwrap()).unwrap();
    assert_eq!(front.relay[0].rtcp, rtp_middlebox::config::RtcpMode::Terminate);
    let trunk = Config::from_toml(&std::fs::read_to_string("config/sip-trunk.toml").unwrap()).unwrap();
    assert!(trunk.relay[0].listen_rtcp.is_some() && trunk.relay[0].upstream_rtcp.is_some());
}

#[test]
fn readme_set_up_has_the_two_commands_ci_runs() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let setup = readme
        .split("## Set up")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Set up section");
    let commands: Vec<&str> = setup
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim())
        .collect();
    assert_eq!(commands, ["cargo run --release -- demo", "bash scripts/test.sh"]);
    let ci = std::fs::read_to_string(".ci/run").unwrap();
    assert!(ci.contains("bash scripts/test.sh"), "{ci}");
}

const METRICS_BEGIN: &str = "<!-- metric reference: generated from the tables";
const METRICS_END: &str = "<!-- end of metric reference -->";

/// The metric name in a reference row's first cell.
fn row_metric(line: &str) -> Option<&str> {
    line.strip_prefix("| `")?.split('`').next()
}

#[test]
fn readme_metric_reference_is_the_table() {
    use rtp_middlebox::export::metrics::{markdown_table, MetricKind, METRICS};
    use std::collections::BTreeSet;
    let readme = std::fs::read_to_string("README.md").unwrap();
    let begin = readme.find(METRICS_BEGIN).expect("README has the metric reference");
    let start = begin + readme[begin..].find('\n').unwrap() + 1;
    let end = start + readme[start..].find(METRICS_END).expect("its end marker");
    let listed = &readme[start..end];
    let table = markdown_table();

    let in_readme: BTreeSet<&str> = listed.lines().filter_map(row_metric).collect();
    let in_table: BTreeSet<&str> = METRICS.iter().map(|m| m.name).collect();
    if in_readme != in_table && std::env::var_os("RTPMB_WRITE_README").is_none() {
        panic!(
            "README lists metrics the table lacks: {:?}; the table has metrics README lacks: {:?}",
            in_readme.difference(&in_table).collect::<Vec<_>>(),
            in_table.difference(&in_readme).collect::<Vec<_>>(),
        );
    }
    if listed != table {
        if std::env::var_os("RTPMB_WRITE_README").is_some() {
            // Renamed into place: the other tests read README concurrently.
            std::fs::write(
                "README.md.new",
                format!("{}{table}{}", &readme[..start], &readme[end..]),
            )
            .unwrap();
            std::fs::rename("README.md.new", "README.md").unwrap();
        } else {
            panic!("README's metric reference differs from the table (RTPMB_WRITE_README=1 cargo test --test docs rewrites it); expected:\n{table}");
        }
    }

    // Metric names in the prose are families too (or a histogram's series).
    let families: Vec<_> = METRICS.iter().map(|m| (m.name, m.kind)).collect();
    let known = |name: &str| {
        families.iter().any(|(f, kind)| {
            *f == name
                || (matches!(kind, MetricKind::Histogram(_))
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(f)))
        })
    };
    let unknown: BTreeSet<&str> = readme
        .match_indices("rtpmb_")
        .map(|(i, _)| {
            let rest = &readme[i..];
            &rest[..rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len())]
        })
        .filter(|name| !known(name))
        .collect();
    assert!(
        unknown.is_empty(),
        "README names metrics that do not exist: {unknown:?}"
    );
}
