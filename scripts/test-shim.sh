#!/usr/bin/env bash
# Tests of the JavaScript RTCPeerConnection shim (shim/): unit tests against a
# fake proxy stream, live tests against the rtp-middlebox binary, and
# callstats-js, @jitsi/rtcstats, @peermetrics/webrtc-stats and
# @observertc/client-monitor-js driven through the shim.
#
#   bash scripts/test-shim.sh
#   RTP_MIDDLEBOX_BIN=/path/to/rtp-middlebox bash scripts/test-shim.sh   # no cargo build
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-shim.sh

if [ -z "${RTP_MIDDLEBOX_BIN:-}" ]; then
  echo "== cargo build (debug binary for the live tests)"
  cargo build --quiet
  RTP_MIDDLEBOX_BIN="$PWD/target/debug/rtp-middlebox"
fi
# The tests resolve a relative path against shim/.
case "$RTP_MIDDLEBOX_BIN" in
  /*) ;;
  *) RTP_MIDDLEBOX_BIN="$PWD/shim/$RTP_MIDDLEBOX_BIN" ;;
esac
export RTP_MIDDLEBOX_BIN
# A missing binary fails the live tests instead of skipping them.
export SHIM_REQUIRE_BINARY=1

echo "== shim tests (node --test; proxy: $RTP_MIDDLEBOX_BIN)"
cd shim
npm test
