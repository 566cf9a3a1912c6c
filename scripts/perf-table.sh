#!/usr/bin/env bash
# The relay's cost against the floor of its own design (README, Performance):
# every scenario of the table in one invocation of the project's load tool
# per row, the relays alternating within it, medians of ROUNDS.
#
#   bash scripts/perf-table.sh             # 7 to 15 minutes, on a quiet machine
#   ROUNDS=1 SECONDS_PER_RUN=3 bash scripts/perf-table.sh   # a quick look
#
# Run as root: the generator writes through a raw socket (cheap on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-6}
cargo build --release --examples --bins --quiet
LOAD=target/release/examples/relay_load
RELAYS=floor,rtp-middlebox:auto,rtp-middlebox:terminate,floor-uring,naive

echo "== 1000 streams x 50 packets/s, 160 B"
$LOAD bench --streams 1000 --rate 50 --seconds "$SECS" --rounds "$ROUNDS" --relays "$RELAYS"
echo "== 2000 streams x 50 packets/s, 160 B"
$LOAD bench --streams 2000 --rate 50 --seconds "$SECS" --rounds "$ROUNDS" --relays "$RELAYS"
echo "== 50 streams x 1000 packets/s, 1200 B"
$LOAD bench --streams 50 --rate 1000 --payload 1200 --seconds "$SECS" --rounds "$ROUNDS" --relays "$RELAYS"
echo "== 18000 streams x 5 packets/s (many quiet sessions; 20 000 needs more than a 20 000-descriptor hard limit), 160 B"
$LOAD bench --streams 18000 --rate 5 --seconds "$SECS" --rounds 1 --relays floor,rtp-middlebox:auto
echo "== 1 stream, highest rate with < 0.1 % loss"
$LOAD max-rate --relay floor --streams 1 --workers 2 --seconds 2
$LOAD max-rate --relay rtp-middlebox:auto --streams 1 --workers 2 --seconds 2
