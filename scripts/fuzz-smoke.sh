#!/usr/bin/env bash
# Fuzz smoke test: runs every cargo-fuzz target for SECONDS each (default 20)
# and fails if any of them crashes (panic, overflow, ASan report, timeout,
# OOM). Prints one summary line per target.
#
#   scripts/fuzz-smoke.sh [SECONDS]
#
# Before fuzzing, for every target:
#   * fuzz/seeds/<target>/ (hand-made, committed) is copied into
#     fuzz/corpus/<target>/ (gitignored, grows across runs); the capture
#     target also gets tests/data/*.pcap*;
#   * every saved crash in fuzz/regressions/<target>/ is replayed first, so a
#     fixed bug that comes back fails at once.
# Crash inputs land in fuzz/artifacts/<target>/; logs in fuzz/logs/ (ignored).
#
# Toolchain: `cargo +nightly fuzz` when a nightly toolchain is installed,
# else `RUSTC_BOOTSTRAP=1 cargo fuzz` on stable. cargo-fuzz itself is
# installed with `cargo install cargo-fuzz --locked` only when missing.
# Env: FUZZ_TARGETS="rtp rtcp" to run a subset; FUZZ_JOBS is not used (one
# process per target keeps the 2-core machine responsive).
set -euo pipefail

SECONDS_PER_TARGET="${1:-20}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
  echo "usage: $0 [SECONDS]   (seconds per target, default 20)" >&2
  exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FUZZ="$ROOT/fuzz"
ALL_TARGETS=(rtp rtcp stun classify engine capture config api srtcp dtls sdp_rewrite)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"

# ---------------------------------------------------------------- toolchain
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  CARGO_FUZZ=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  CARGO_FUZZ=(cargo fuzz)
fi

# ---------------------------------------------------------------- seeds
seed() {
  local t="$1"
  mkdir -p "$FUZZ/corpus/$t"
  if [ -d "$FUZZ/seeds/$t" ]; then
    cp -f "$FUZZ/seeds/$t"/* "$FUZZ/corpus/$t/"
  fi
  if [ "$t" = capture ]; then
    local f
    for f in "$ROOT"/tests/data/*.pcap "$ROOT"/tests/data/*.pcapng; do
      [ -f "$f" ] && cp -f "$f" "$FUZZ/corpus/$t/"
    done
  fi
  return 0
}

# ---------------------------------------------------------------- run
echo "fuzz-smoke: building ${#TARGETS[@]} targets (${CARGO_FUZZ[*]})" >&2
(cd "$FUZZ" && "${CARGO_FUZZ[@]}" build >/dev/null)

mkdir -p "$FUZZ/logs"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
  seed "$t"
  log="$FUZZ/logs/$t.log"
  : >"$log"

  # Replay saved crashes first: each must now pass.
  if compgen -G "$FUZZ/regressions/$t/*" >/dev/null; then
    if ! (cd "$FUZZ" && "${CARGO_FUZZ[@]}" run "$t" "$FUZZ/regressions/$t"/* -- -runs=1) >>"$log" 2>&1; then
      failed+=("$t")
      summary+=("$(printf '%-9s REGRESSION  a saved input in fuzz/regressions/%s crashes again (see %s)' "$t" "$t" "$log")")
      continue
    fi
  fi

  # -max_len for packet targets: a UDP datagram; captures take their size from the corpus.
  extra=()
  case "$t" in
    capture) extra=(-max_len=300000 -rss_limit_mb=2048) ;;
    engine) extra=(-max_len=16384) ;;
    sdp_rewrite) extra=(-max_len=16384) ;; # real SDPs are 2-7 KB
    *) extra=(-max_len=2048) ;;
  esac
  status=0
  (cd "$FUZZ" && "${CARGO_FUZZ[@]}" run "$t" "$FUZZ/corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1 "${extra[@]}") >>"$log" 2>&1 || status=$?

  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  corpus="$(find "$FUZZ/corpus/$t" -type f | wc -l)"
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    artifact="$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')"
    panic="$(grep -m1 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" || true)"
    summary+=("$(printf '%-9s CRASH  exit %s after %s execs; %s; input %s; log %s' \
      "$t" "$status" "${execs:-?}" "${panic:-see log}" "${artifact:-?}" "$log")")
  else
    summary+=("$(printf '%-9s ok     %10s execs  %7s exec/s  corpus %5s files  (%ss)' \
      "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$SECONDS_PER_TARGET")")
  fi
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz-smoke: ${#TARGETS[@]} targets, no crash"
