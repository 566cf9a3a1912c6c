#!/usr/bin/env bash
# Installs what the JavaScript shim's tests (shim/) need: Node.js >= 18 with
# npm, and shim/'s devDependencies from shim/package-lock.json: callstats-js
# and today's monitors (@jitsi/rtcstats, @peermetrics/webrtc-stats,
# @observertc/client-monitor-js, ws for rtcstats' WebSocket).
#
# Idempotent: installs Debian's nodejs/npm only when no node >= 18 is on PATH
# (apt-get update only then); runs `npm ci` only when shim/node_modules is
# missing or was installed from a different package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

node_ok() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
    node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'
}

if ! node_ok; then
  PACKAGES=(nodejs npm)
  missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-shim.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 900 $SUDO apt-get update -q
    timeout 1800 $SUDO apt-get install -y -q "${missing[@]}"
  fi
  node_ok || { echo "setup-shim.sh: need node >= 18 and npm on PATH" >&2; exit 1; }
fi

stamp=shim/node_modules/.setup-shim-lock.sha256
want=$(sha256sum shim/package-lock.json | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
installed() {
  local p
  for p in callstats-js @jitsi/rtcstats @peermetrics/webrtc-stats @observertc/client-monitor-js ws; do
    [ -f "shim/node_modules/$p/package.json" ] || return 1
  done
}
if [ "$want" = "$have" ] && installed; then
  echo "setup-shim.sh: node $(node --version), shim/node_modules up to date"
  exit 0
fi

echo "setup-shim.sh: npm ci in shim/ (node $(node --version))"
(cd shim && timeout 600 npm ci --no-audit --no-fund)
echo "$want" >"$stamp"
echo "setup-shim.sh: done"
