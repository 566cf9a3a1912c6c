#!/usr/bin/env bash
# One criterion benchmark target (BENCH, default packet_path: the per-packet
# benchmarks of benches/packet_path.rs) of two revisions in one run: both
# are built, then run in alternating rounds on the same
# machine state, and the medians and their ratio are printed. This is how
# "the per-packet path did not grow" is measured: a single run's noise is a
# few percent, and two runs minutes apart differ by more than that.
#
#   scripts/bench-revisions.sh BASE [HEAD] [FILTER]
#     BASE, HEAD   git revisions (HEAD defaults to the work tree's HEAD)
#     FILTER       criterion filter (default: observe)
#   ROUNDS=3       alternating rounds (median of each side)
#   BENCH=dtls     another target of benches/ (default packet_path)
#   BENCH_QUICK=1  criterion's shortest measurement (a quick look)
#
# Each revision is exported with `git archive` under target/bench-revisions/
# and built with a shared target directory (only the crate itself is
# rebuilt). Each revision runs its own benches/$BENCH.rs: compare
# revisions whose bench file defines the same workload (`git diff BASE HEAD
# -- benches/$BENCH.rs`), or set BENCH_FROM=REV to build REV's bench
# file (with each revision's tests/common) at both, when both compile it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BASE="${1:?usage: scripts/bench-revisions.sh BASE [HEAD] [FILTER]}"
HEAD_REV="${2:-HEAD}"
FILTER="${3:-observe}"
BENCH="${BENCH:-packet_path}"
ROUNDS="${ROUNDS:-3}"
WORK="$ROOT/target/bench-revisions"
mkdir -p "$WORK"

build() { # rev name → path of the bench binary
    local rev="$1" name="$2" dir="$WORK/$2"
    rm -rf "$dir" && mkdir -p "$dir"
    git archive "$rev" | tar -x -C "$dir"
    if [[ -n "${BENCH_FROM:-}" ]]; then
        git show "$BENCH_FROM:benches/$BENCH.rs" >"$dir/benches/$BENCH.rs"
    fi
    (cd "$dir" && CARGO_TARGET_DIR="$WORK/target" cargo bench --bench "$BENCH" --no-run \
        --message-format=json 2>"$WORK/build-$name.log") |
        BENCH="$BENCH" python3 -c 'import json, os, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == os.environ["BENCH"]:
        print(m["executable"])' | tail -1
}

echo "building $BASE and $HEAD_REV …" >&2
built() { # name path: fail with the build's log when there is no binary
    if [[ -z "$2" || ! -x "$2" ]]; then
        echo "building $1 failed:" >&2
        tail -30 "$WORK/build-$1.log" >&2
        exit 1
    fi
}
base_bin="$(build "$BASE" base)"
built base "$base_bin"
cp "$base_bin" "$WORK/base.bin"
head_bin="$(build "$HEAD_REV" head)"
built head "$head_bin"
cp "$head_bin" "$WORK/head.bin"

args=(--bench "$FILTER" --noplot)
if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
    args+=(--warm-up-time 0.2 --measurement-time 0.5)
fi
: >"$WORK/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
    for side in base head; do
        echo "round $round: $side" >&2
        CRITERION_HOME="$WORK/criterion-$side" "$WORK/$side.bin" "${args[@]}" 2>&1 |
            awk -v side="$side" -v round="$round" '
            function ns(v, u) {
              if (u == "ps") return v / 1000
              if (u == "µs" || u == "us") return v * 1000
              if (u == "ms") return v * 1e6
              return v
            }
            # criterion comparing with its previous run: "change:" and a
            # time line of percentages; not a measurement
            $1 == "change:" { skip = 1; next }
            /time:/ && skip { skip = 0; next }
            /time:/ {
              if ($1 != "time:") name = $1
              for (i = 1; i <= NF; i++) if ($i ~ /^\[/) { v = substr($(i+2), 1); u = $(i+3); break }
              printf "%s\t%s\t%s\t%.2f\n", name, side, round, ns(v, u)
              next
            }
            NF == 1 { name = $1 }' >>"$WORK/results.tsv"
    done
done

echo
echo "same run, $ROUNDS alternating rounds, median ns/packet ($BASE → $HEAD_REV):"
python3 - "$WORK/results.tsv" <<'EOF'
import statistics, sys, collections
runs = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    name, side, _, v = line.rstrip("\n").split("\t")
    runs[name][side].append(float(v))
print(f"{'benchmark':<36} {'base':>9} {'head':>9} {'head/base':>10}")
for name, sides in runs.items():
    if "base" not in sides or "head" not in sides:
        continue
    b, h = statistics.median(sides["base"]), statistics.median(sides["head"])
    print(f"{name:<36} {b:>9.1f} {h:>9.1f} {h / b:>9.3f}×")
EOF
