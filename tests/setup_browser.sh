#!/usr/bin/env bash
# Installs what the browser test needs: Debian's chromium plus the Python driver.
# Never fails the build: where nothing can be installed, tests/test_browser.py skips with a message.
set -u
PY="${PY:-python3}"
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup_browser: could not install chromium; the browser test will skip"
  else
    echo "setup_browser: chromium missing and apt-get unavailable (not root); the browser test will skip"
  fi
fi
"$PY" -m pip install -q -c constraints.txt playwright || echo "setup_browser: could not install playwright; the browser test will skip"
exit 0
