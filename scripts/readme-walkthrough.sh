#!/usr/bin/env bash
# A newcomer's path, mechanically: clone the repository into a temporary
# directory and run README's first set-up command there exactly as written
# (the demo), then the deployment section's --check-config on the shipped
# examples. README's second command is this test suite itself, which
# tests/docs.rs checks is what CI runs.
#
#   bash scripts/readme-walkthrough.sh
#
# Reuses this checkout's target/ (CARGO_TARGET_DIR) so the clone does not
# rebuild the world; everything else comes from the clone.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

git clone --quiet "$repo" "$tmp/rtp-middlebox"
cd "$tmp/rtp-middlebox"
export CARGO_TARGET_DIR="$repo/target"

# The first ```sh block under "## Set up".
first=$(awk '/^## Set up/{s=1} s&&/^```sh/{getline; print; exit}' README.md)
if [ "$first" != "cargo run --release -- demo" ]; then
  echo "readme-walkthrough: README's first command changed: '$first'" >&2
  exit 1
fi
echo "== $first"
out=$(timeout 300 bash -c "$first" 2>&1)
echo "$out" | tail -n 25
for needle in "stats stream: http://" "/metrics" "== summary" "browser audio" "RTT per leg"; do
  if ! grep -qF "$needle" <<<"$out"; then
    echo "readme-walkthrough: the demo's output lacks '$needle'" >&2
    exit 1
  fi
done

echo "== rtp-middlebox run --check-config on the README's example configs"
for f in config/sfu-front.toml config/sip-trunk.toml config/default.toml; do
  "$CARGO_TARGET_DIR/release/rtp-middlebox" run --check-config --config "$f"
done
echo "readme-walkthrough: ok"
