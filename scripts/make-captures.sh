#!/usr/bin/env bash
# make-captures.sh — regenerate the real-RTP fixtures in tests/data/.
#
# What it does
#   1. Builds `examples/capture_gen.rs` and starts it listening on six loopback
#      UDP ports (BASE_PORT .. BASE_PORT+5, default 5000..5005).
#   2. Runs one GStreamer pipeline with an `rtpbin` sending three RTP sessions,
#      each RTP stream to its own port and its RTCP (rtpbin's Sender Reports)
#      to the next port up:
#        PCMU  8 kHz, static PT 0, 20 ms packets,   SSRC 0x11110000 → 5000 (RTCP 5001)
#              sequence numbers start at 65300 and RTP timestamps at 4294900000,
#              so both wrap inside the capture;
#        Opus 48 kHz, PT 111, 20 ms, 16 kbit/s,    SSRC 0x22220000 → 5002 (RTCP 5003)
#        VP8  90 kHz, PT 96, 160x120 @ 15 fps, MTU 250 (mostly 2+ packets per frame),
#                                                  SSRC 0x33330000 → 5004 (RTCP 5005)
#              sequence numbers start at 65500, RTP timestamps at 4294500000;
#      for DURATION seconds (default 10; live test sources with num-buffers).
#   3. capture_gen passes every datagram through rtp_middlebox::impair with
#      seed SEED (default 42; port P uses sim::impair::derive_seed(SEED, P)):
#      3 % random loss, Gilbert–Elliott burst loss (good→bad 1 %, bad→good 30 %,
#      60 % loss in bad), 20 ms ± 8 ms (uniform) delay, 1 % reordered by an 80 ms
#      hold, 0.5 % duplicated, and writes, timestamped at the scheduled delivery
#      times (floored to µs, identical in both files):
#        tests/data/$NAME.pcap                   classic pcap, Ethernet/IPv4/UDP, µs
#        tests/data/$NAME.sll2.pcapng            same frames, pcapng, Linux cooked v2, ns units
#        tests/data/$NAME.impairment.json        sidecar: per port and SSRC, what was
#                                                dropped / duplicated / reordered
#        tests/data/$NAME.sdp-preamble.pcap      2 frames: SIP INVITE + 200 OK with SDP
#                                                (rtpmap 0 PCMU/8000, 111 opus/48000/2,
#                                                96 VP8/90000); NOT part of the fixture
#   4. Golden values from tshark, exactly these commands (stderr discarded):
#        tshark -n -r tests/data/$NAME.pcap -q -o rtp.heuristic_rtp:TRUE -z rtp,streams \
#            > tests/data/$NAME.tshark-rtp-streams.txt
#        tshark -n -r tests/data/$NAME.sll2.pcapng -q -o rtp.heuristic_rtp:TRUE -z rtp,streams
#            (must be byte-identical to the previous output, else the script fails)
#        mergecap -a -F pcap -w SIGNALLED.pcap tests/data/$NAME.sdp-preamble.pcap tests/data/$NAME.pcap
#        tshark -n -r SIGNALLED.pcap -q -o rtp.heuristic_rtp:TRUE -z rtp,streams \
#            > tests/data/$NAME.sdp.tshark-rtp-streams.txt
#      Without signalling, tshark 4.0 knows no clock rate for dynamic payload
#      types 96/111, so their jitter columns read -1/0/0 in the first file; the
#      SDP preamble gives tshark the clock rates exactly as real SIP/SDP would,
#      so the `.sdp.` file has jitter for all three streams. Its Start/End time
#      columns are relative to the preamble's first frame, which is 2 ms before
#      the fixture's first frame; every other column is unaffected by the preamble.
#      tests/data/$NAME.versions.txt records the tshark and GStreamer versions
#      and these commands.
#   5. Self-check of the written-down semantics: scripts/wireshark-rtp-model.py
#      recomputes every column of both golden files from the captures, following
#      tests/data/README.md, and the script fails unless all of them match.
#   6. The byte-deterministic synthetic fixture of Wireshark's corner cases:
#        scripts/make-quirks-capture.py tests/data/synthetic-ws-quirks.pcap
#        tshark -n -r tests/data/synthetic-ws-quirks.pcap -q -o rtp.heuristic_rtp:TRUE -z rtp,streams \
#            > tests/data/synthetic-ws-quirks.tshark-rtp-streams.txt
#      (checked by the model too).
#
# The result is not byte-reproducible (GStreamer's encoders and the kernel's
# scheduling change arrival times and payloads), so this script is a generator:
# the committed files are the fixture, and the sidecar plus the golden files
# describe exactly that fixture. Run scripts/setup.sh first to install tshark
# and GStreamer. Everything is bounded by `timeout`.
#
# Usage: scripts/make-captures.sh            (from anywhere in the repo)
# Env:   OUT=tests/data NAME=gst-pcmu-opus-vp8 SEED=42 DURATION=10 BASE_PORT=5000
#        CAPTURE_GEN=/path/to/capture_gen   (skip the cargo build, use this binary)
#        SKIP_CAPTURE=1   keep the committed captures; redo steps 4-6 only (golden
#                         values, self-check, synthetic fixture), e.g. after a
#                         tshark upgrade
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-tests/data}
NAME=${NAME:-gst-pcmu-opus-vp8}
SEED=${SEED:-42}
DURATION=${DURATION:-10}
BASE_PORT=${BASE_PORT:-5000}

die() { echo "make-captures.sh: $*" >&2; exit 1; }

for tool in gst-launch-1.0 gst-inspect-1.0 tshark mergecap python3; do
  command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh"
done
mkdir -p "$OUT"
tmp=$(mktemp -d)
cg_pid=""
cleanup() {
  if [ -n "$cg_pid" ] && kill -0 "$cg_pid" 2>/dev/null; then kill "$cg_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ "${SKIP_CAPTURE:-0}" != 1 ]; then
for el in rtpbin audiotestsrc videotestsrc mulawenc rtppcmupay opusenc rtpopuspay vp8enc rtpvp8pay udpsink; do
  timeout 30 gst-inspect-1.0 "$el" >/dev/null 2>&1 || die "GStreamer element $el missing: run scripts/setup.sh"
done

if [ -z "${CAPTURE_GEN:-}" ]; then
  timeout 900 cargo build --release --example capture_gen
  CAPTURE_GEN=target/release/examples/capture_gen
fi
[ -x "$CAPTURE_GEN" ] || die "capture_gen binary $CAPTURE_GEN not found"

P0=$BASE_PORT
P=("$P0" $((P0 + 1)) $((P0 + 2)) $((P0 + 3)) $((P0 + 4)) $((P0 + 5)))
PORTS=$(IFS=,; echo "${P[*]}")

IMPAIR=(--seed "$SEED" --loss 0.03 --burst 0.01,0.3,0.6 --delay-ms 20 --jitter-ms 8
        --reorder 0.01 --reorder-hold-ms 80 --duplicate 0.005)

timeout $((DURATION + 60)) "$CAPTURE_GEN" --port "$PORTS" "${IMPAIR[@]}" \
  --duration $((DURATION + 30)) --idle-exit 2 --ready-file "$tmp/ready" \
  --pcap "$OUT/$NAME.pcap" --pcapng-sll2 "$OUT/$NAME.sll2.pcapng" \
  --sidecar "$OUT/$NAME.impairment.json" \
  --sdp-preamble "$OUT/$NAME.sdp-preamble.pcap" --rtpmap 111=opus/48000/2 --rtpmap 96=VP8/90000 \
  2> "$tmp/capture_gen.log" &
cg_pid=$!
for _ in $(seq 100); do [ -f "$tmp/ready" ] && break; sleep 0.1; done
[ -f "$tmp/ready" ] || { cat "$tmp/capture_gen.log" >&2; die "capture_gen did not start"; }

AUDIO_BUFS=$((DURATION * 50))   # 20 ms per buffer
VIDEO_BUFS=$((DURATION * 15))   # 15 fps
GST_PIPELINE=(
  rtpbin name=rtpbin
  audiotestsrc is-live=true num-buffers=$AUDIO_BUFS samplesperbuffer=160 wave=sine freq=440
    '!' audio/x-raw,rate=8000,channels=1 '!' mulawenc
    '!' rtppcmupay pt=0 ssrc=0x11110000 seqnum-offset=65300 timestamp-offset=4294900000
    '!' rtpbin.send_rtp_sink_0
  rtpbin.send_rtp_src_0 '!' udpsink host=127.0.0.1 port=${P[0]}
  rtpbin.send_rtcp_src_0 '!' udpsink host=127.0.0.1 port=${P[1]} sync=false async=false
  audiotestsrc is-live=true num-buffers=$AUDIO_BUFS samplesperbuffer=960 wave=sine freq=330
    '!' audio/x-raw,rate=48000,channels=1 '!' opusenc bitrate=16000 frame-size=20
    '!' rtpopuspay pt=111 ssrc=0x22220000
    '!' rtpbin.send_rtp_sink_1
  rtpbin.send_rtp_src_1 '!' udpsink host=127.0.0.1 port=${P[2]}
  rtpbin.send_rtcp_src_1 '!' udpsink host=127.0.0.1 port=${P[3]} sync=false async=false
  videotestsrc is-live=true num-buffers=$VIDEO_BUFS pattern=ball
    '!' video/x-raw,width=160,height=120,framerate=15/1
    '!' vp8enc target-bitrate=64000 deadline=1 keyframe-max-dist=30
    '!' rtpvp8pay pt=96 mtu=250 ssrc=0x33330000 seqnum-offset=65500 timestamp-offset=4294500000
    '!' rtpbin.send_rtp_sink_2
  rtpbin.send_rtp_src_2 '!' udpsink host=127.0.0.1 port=${P[4]}
  rtpbin.send_rtcp_src_2 '!' udpsink host=127.0.0.1 port=${P[5]} sync=false async=false
)
echo "make-captures.sh: sending for ${DURATION}s"
timeout $((DURATION + 30)) gst-launch-1.0 -q -e "${GST_PIPELINE[@]}" > "$tmp/gst.log" 2>&1 \
  || { cat "$tmp/gst.log" >&2; die "gst-launch-1.0 failed"; }

wait "$cg_pid" || { cat "$tmp/capture_gen.log" >&2; die "capture_gen failed"; }
cg_pid=""
cat "$tmp/capture_gen.log" >&2
fi # SKIP_CAPTURE

# Golden values.
TSHARK=(tshark -n -q -o rtp.heuristic_rtp:TRUE -z rtp,streams)
timeout 120 "${TSHARK[@]}" -r "$OUT/$NAME.pcap" 2>/dev/null > "$OUT/$NAME.tshark-rtp-streams.txt"
timeout 120 "${TSHARK[@]}" -r "$OUT/$NAME.sll2.pcapng" 2>/dev/null > "$tmp/sll2.txt"
cmp -s "$OUT/$NAME.tshark-rtp-streams.txt" "$tmp/sll2.txt" \
  || die "tshark reports differ between the pcap and the pcapng/SLL2 variant"
timeout 60 mergecap -a -F pcap -w "$tmp/signalled.pcap" "$OUT/$NAME.sdp-preamble.pcap" "$OUT/$NAME.pcap"
timeout 120 "${TSHARK[@]}" -r "$tmp/signalled.pcap" 2>/dev/null > "$OUT/$NAME.sdp.tshark-rtp-streams.txt"

streams=$(grep -c "0x[0-9A-F]\{8\}" "$OUT/$NAME.tshark-rtp-streams.txt" || true)
[ "$streams" -eq 3 ] || die "tshark found $streams RTP streams, expected 3"
if grep "0x[0-9A-F]\{8\}" "$OUT/$NAME.sdp.tshark-rtp-streams.txt" | grep -q -- " -1.000 "; then
  die "tshark lacks a clock rate for some stream even with the SDP preamble"
fi

# The README's description of tshark's arithmetic must reproduce every column.
MODEL=scripts/wireshark-rtp-model.py
timeout 120 python3 "$MODEL" "$OUT/$NAME.pcap" --golden "$OUT/$NAME.tshark-rtp-streams.txt" \
  || die "model disagrees with tshark on $NAME.pcap"
timeout 120 python3 "$MODEL" "$tmp/signalled.pcap" --golden "$OUT/$NAME.sdp.tshark-rtp-streams.txt" \
  --clock 111=48000 --clock 96=90000 || die "model disagrees with tshark on the signalled capture"

# Synthetic corner cases (byte-deterministic).
timeout 60 python3 scripts/make-quirks-capture.py "$OUT/synthetic-ws-quirks.pcap"
timeout 120 "${TSHARK[@]}" -r "$OUT/synthetic-ws-quirks.pcap" 2>/dev/null \
  > "$OUT/synthetic-ws-quirks.tshark-rtp-streams.txt"
timeout 120 python3 "$MODEL" "$OUT/synthetic-ws-quirks.pcap" \
  --golden "$OUT/synthetic-ws-quirks.tshark-rtp-streams.txt" || die "model disagrees with tshark on the quirks"

if [ "${SKIP_CAPTURE:-0}" = 1 ]; then
  # Captures unchanged: only record the tshark that made the golden files.
  sed -i "s/^tshark: .*/tshark: $(tshark --version 2>/dev/null | head -1)/" "$OUT/$NAME.versions.txt"
else
{
  echo "# Tools that produced the $NAME fixtures (scripts/make-captures.sh)"
  echo "tshark: $(tshark --version 2>/dev/null | head -1)"
  echo "gstreamer: $(gst-launch-1.0 --version 2>/dev/null | sed -n 2p)"
  echo "capture_gen: examples/capture_gen.rs ${IMPAIR[*]}"
  echo "golden: tshark -n -r $NAME.pcap -q -o rtp.heuristic_rtp:TRUE -z rtp,streams > $NAME.tshark-rtp-streams.txt"
  echo "golden: tshark -n -r $NAME.sll2.pcapng -q -o rtp.heuristic_rtp:TRUE -z rtp,streams   (identical output)"
  echo "golden: mergecap -a -F pcap -w SIGNALLED.pcap $NAME.sdp-preamble.pcap $NAME.pcap"
  echo "golden: tshark -n -r SIGNALLED.pcap -q -o rtp.heuristic_rtp:TRUE -z rtp,streams > $NAME.sdp.tshark-rtp-streams.txt"
  echo "gst-launch-1.0 -q -e ${GST_PIPELINE[*]}"
} > "$OUT/$NAME.versions.txt"
fi

echo "make-captures.sh: wrote"
ls -l "$OUT/$NAME".* "$OUT"/synthetic-ws-quirks.*
