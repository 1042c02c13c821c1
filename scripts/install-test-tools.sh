#!/usr/bin/env bash
# Installs the system tools the tests and benchmarks use, from Debian's packages:
# promtool and the Prometheus server (package prometheus), amtool and the
# Alertmanager server (prometheus-alertmanager), wrk and nginx (nginx-light) for
# the scrape benchmark, openssl and curl for the TLS tests. kubectl,
# systemd-analyze, systemd-socket-activate (both from systemd) and node come with
# the machine image. Installs as root; otherwise
# says what is missing.
set -euo pipefail
missing=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
# TLS tests: certificates made with openssl, curl as the client.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The container image test: buildah builds, podman runs (with runc; crun fails on
# these machines' cgroups).
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing test tools: install Debian's ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing Debian's ${missing[*]}..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  # Their services are not needed: tests start their own servers on loopback.
  for svc in prometheus prometheus-alertmanager nginx; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc" || true
    fi
  done
fi
for t in promtool prometheus amtool prometheus-alertmanager wrk nginx openssl curl buildah podman runc kubectl systemd-analyze systemd-socket-activate node npm; do
  command -v "$t" >/dev/null 2>&1 || { echo "test tool $t not found" >&2; exit 1; }
done
