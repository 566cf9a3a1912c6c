#!/usr/bin/env bash
# Installs what the browser rig's driver (tests/browser/rig.mjs) needs:
# playwright-core from tests/browser/package-lock.json. It drives Debian's
# /usr/bin/chromium (scripts/setup.sh installs it); no browser is downloaded.
#
# Idempotent: runs `npm ci` only when node_modules is missing or was
# installed from a different package-lock.json. Needs node >= 18 and npm.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1 ||
  ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; then
  echo "tests/browser/setup.sh: need node >= 18 and npm on PATH" >&2
  exit 1
fi

stamp=node_modules/.rig-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ "$want" = "$have" ] && [ -f node_modules/playwright-core/package.json ]; then
  echo "tests/browser/setup.sh: node $(node --version), tests/browser/node_modules up to date"
  exit 0
fi

echo "tests/browser/setup.sh: npm ci (node $(node --version))"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 600 npm ci --no-audit --no-fund
echo "$want" >"$stamp"
echo "tests/browser/setup.sh: done"
