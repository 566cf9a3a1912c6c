#!/usr/bin/env bash
# The whole test suite, as README's second command and CI run it.
#
#   bash scripts/test.sh            # everything (installs what it needs)
#   FUZZ_SECONDS=0 bash scripts/test.sh   # skip the fuzz smoke
#
# Steps: install Debian tools (tshark, GStreamer, Prometheus, Chromium, Janus)
# and cargo-fuzz
# idempotently; unit, property, integration and doc tests (including the
# tshark agreement test on the shipped GStreamer captures and a real
# Prometheus server); README's demo on a fresh clone; the deployment file
# checks; a bounded fuzz smoke of every target; a quick run of the
# packet-path benchmark and bounded relay load runs against the naive
# baseline.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-15}

bash scripts/setup.sh
# setup.sh installed GStreamer and its Python bindings: their interop tests
# must run, not skip.
export REQUIRE_GSTREAMER=1
export REQUIRE_PROMETHEUS=1
# ... and Chromium, Janus and the rig's node driver: the real-browser rig
# (tests/browser_rig.rs, root for its network namespaces) must run too.
export REQUIRE_CHROMIUM=1

echo "== cargo test"
cargo test --all-targets
cargo test --doc

echo "== analyze the shipped capture"
cargo run --quiet -- analyze tests/data/gst-pcmu-opus-vp8.pcap --format table

echo "== the JavaScript shim: unit, live and callstats-js tests (node)"
RTP_MIDDLEBOX_BIN="$PWD/target/debug/rtp-middlebox" bash scripts/test-shim.sh

echo "== README's main job on a fresh clone (the demo), as a newcomer runs it"
cargo build --release --quiet --examples --bins
bash scripts/readme-walkthrough.sh

echo "== deployment files (Dockerfile, compose, Kubernetes, Grafana, Prometheus)"
RTP_MIDDLEBOX_BIN=target/release/rtp-middlebox bash scripts/check-deploy.sh

if [ "$FUZZ_SECONDS" != "0" ]; then
  echo "== fuzz smoke (${FUZZ_SECONDS}s per target)"
  bash scripts/fuzz-smoke.sh "$FUZZ_SECONDS"
fi

echo "== packet-path benchmark (quick)"
BENCH_QUICK=1 bash scripts/bench.sh

echo "== SRTCP per-suite benchmark (short)"
cargo bench --quiet --bench srtcp -- --warm-up-time 0.2 --measurement-time 0.4 2>&1 | grep -E "^srtcp/|time:" || true

echo "== relay load smoke (bounded)"
echo "   3 s at 10 000 packets/s on a shared machine: this checks that the tool and"
echo "   the relay work end to end; the figures in README \"Performance\" come from"
echo "   the full-length commands listed there."
target/release/examples/relay_load bench --streams 200 --rate 50 --seconds 3 --rounds 1
target/release/examples/relay_load modes --streams 200 --rate 50 --seconds 3
target/release/examples/relay_load metrics --streams 200 --rate 50 --seconds 3 --rounds 1
target/release/examples/relay_load srtp --streams 200 --rate 50 --seconds 3 --rounds 1
target/release/examples/relay_load dtls --streams 20 --rate 50 --seconds 2 --rounds 1 --sizes 1200
target/release/examples/relay_load soak --streams 200 --rate 50 --seconds 5
