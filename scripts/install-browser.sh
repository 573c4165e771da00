#!/bin/sh
# Install Debian's Chromium for the dashboard browser tests (tests/test_dashboard.py).
# Playwright drives it through executable_path=/usr/bin/chromium; `playwright install`
# (downloading its own browser build) is not used. Idempotent: does nothing when present.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-browser.sh: $CHROMIUM is missing; run this script as root (it uses apt-get)." >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q chromium
test -x "$CHROMIUM"
