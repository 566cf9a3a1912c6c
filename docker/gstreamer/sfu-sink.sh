#!/bin/sh
# "SFU" stand-in for the demo: receives whatever the relay sends upstream on
# one UDP port and discards it. It never sends RTCP, so the sender gets
# Receiver Reports only because the relay generates them (rtcp = "terminate"
# or "auto").
#
#   SINK_PORT (default 5004)
set -eu
exec gst-launch-1.0 -q udpsrc port="${SINK_PORT:-5004}" buffer-size=4194304 ! fakesink sync=false
