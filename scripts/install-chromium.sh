#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the browser tests (tests/compare/test_pages.py) when it is
# missing. Idempotent; needs root (apt-get). Prints the browser's path.
#   scripts/install-chromium.sh
set -euo pipefail
find_chromium() {
  for c in chromium chromium-browser; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi
  done
  return 1
}
if ! find_chromium >/dev/null; then
  echo "installing chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
find_chromium
