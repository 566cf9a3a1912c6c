#!/bin/sh
# WebRTC-like test sender: one rtpbin, two RTP sessions (Opus PT 111 and
# VP8 PT 96, fixed SSRCs), RTP and RTCP (SR + SDES) of both funnelled into ONE
# udpsink, so the relay sees one client 5-tuple carrying RTP and RTCP
# multiplexed (RFC 5761), like a BUNDLEd browser PeerConnection.
#
#   RELAY_HOST (default 127.0.0.1)  RELAY_PORT (default 3478)
#   SECONDS_TO_RUN (default 0 = until stopped)
set -eu
host=${RELAY_HOST:-127.0.0.1}
port=${RELAY_PORT:-3478}
secs=${SECONDS_TO_RUN:-0}

audio_limit=""
video_limit=""
if [ "$secs" -gt 0 ]; then
  # 20 ms Opus frames (960 samples at 48 kHz), 15 fps video.
  audio_limit="num-buffers=$((secs * 50))"
  video_limit="num-buffers=$((secs * 15))"
fi

# shellcheck disable=SC2086  # the *_limit words are meant to split
exec gst-launch-1.0 -e \
  rtpbin name=rb \
  audiotestsrc is-live=true wave=sine samplesperbuffer=960 $audio_limit \
    ! audio/x-raw,rate=48000,channels=1 \
    ! opusenc bitrate=32000 frame-size=20 \
    ! rtpopuspay pt=111 ssrc=572653568 \
    ! rb.send_rtp_sink_0 \
  videotestsrc is-live=true pattern=ball $video_limit \
    ! video/x-raw,width=320,height=240,framerate=15/1 \
    ! vp8enc deadline=1 target-bitrate=300000 keyframe-max-dist=60 \
    ! rtpvp8pay pt=96 ssrc=858980352 mtu=1200 \
    ! rb.send_rtp_sink_1 \
  rb.send_rtp_src_0 ! mux. \
  rb.send_rtcp_src_0 ! mux. \
  rb.send_rtp_src_1 ! mux. \
  rb.send_rtcp_src_1 ! mux. \
  funnel name=mux ! udpsink host="$host" port="$port" sync=false async=false
