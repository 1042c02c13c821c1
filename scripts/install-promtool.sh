#!/usr/bin/env bash
# Makes sure promtool (from Debian's prometheus package) is on PATH for the tests
# that lint the exposition. Installs it when running as root; otherwise says how.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "promtool is missing: install Debian's prometheus package (sudo apt-get install prometheus)" >&2
  exit 1
fi
echo "installing Debian's prometheus package for promtool..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends prometheus >/dev/null
# The package's service is not needed: tests start their own Prometheus when they
# need one. Stop it where an init system started it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
fi
command -v promtool >/dev/null
