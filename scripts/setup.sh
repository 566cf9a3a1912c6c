#!/usr/bin/env bash
# Installs the Debian packages the tests need: tshark (golden values) and
# GStreamer (RTP senders), the Python GObject bindings that drive rtpbin in
# tests/gstreamer_rtcp.rs and dtlssrtpenc/dtlssrtpdec (plugins-bad) in
# tests/gstreamer_dtls.rs, Prometheus (tests/prometheus_server.rs starts
# its own server on loopback; the package's service is not used), and
# Chromium and Janus for the real-browser rig (tests/browser_rig.rs starts
# its own Janus in a network namespace), then the rig's node driver's
# playwright-core (tests/browser/setup.sh). libssl-dev and pkg-config build
# the `openssl` crate of the load tool's DTLS endpoints (relay_load dtls).
#
# Idempotent: does nothing when every package is already installed; runs
# `apt-get update` only when something is missing. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  tshark
  gstreamer1.0-tools
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  python3-gi
  gir1.2-gstreamer-1.0
  gir1.2-gst-plugins-base-1.0
  prometheus
  chromium
  janus
  libssl-dev
  pkg-config
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

browser_rig() {
  bash "$(dirname "$0")/../tests/browser/setup.sh"
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all packages present: ${PACKAGES[*]}"
  browser_rig
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer "no" up front.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
timeout 900 $SUDO apt-get update -q
timeout 1800 $SUDO apt-get install -y -q "${missing[@]}"
browser_rig
echo "setup.sh: done"
