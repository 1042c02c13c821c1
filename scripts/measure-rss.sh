#!/usr/bin/env bash
# Peak resident memory (VmHWM) of the release exporter watching N identities (default
# 10,000, the SES quota per region) through three complete cycles and scrapes, plain
# and gzip, so the moment a new snapshot is rendered beside the old one is included.
# Runs against the SES double on loopback with the rate raised to keep it short.
# Usage: scripts/measure-rss.sh [N]    (prints "peak_rss_kib=...")
# MEASURE_ARGS adds exporter flags, e.g. MEASURE_ARGS="--collector.dkim --collector.verification".
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
cargo build --release --locked --bins >/dev/null 2>&1 || cargo build --release --locked --bins
tmp=$(mktemp -d)
cleanup() { kill "${exp_pid:-}" "${double_pid:-}" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

mkfifo "$tmp/ready"
./target/release/ses-double --listen 127.0.0.1:0 --seed none --seed-count "$n" --rate 0 >"$tmp/ready" &
double_pid=$!
read -r _ _ url <"$tmp/ready"

: >"$tmp/c"; : >"$tmp/k"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \
  AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE="$tmp/c" AWS_SHARED_CREDENTIALS_FILE="$tmp/k" \
  AWS_ENDPOINT_URL_SES="$url" AWS_ENDPOINT_URL_SESV2="$url" AWS_ENDPOINT_URL="$url" AWS_ENDPOINT_URL_STS="$url" \
  ./target/release/ses-identity-exporter --web.listen-address "127.0.0.1:$port" \
  --ses.rate 200 --poll.interval 2s --log.level warn --no-collector.dns ${MEASURE_ARGS:-} 2>"$tmp/log" &
exp_pid=$!

# Series of the one target, read without its aws_account_id/aws_region labels.
metric() { curl -sf "http://127.0.0.1:$port/metrics" | sed 's/{aws_account_id="123456789012",aws_region="us-east-1"}//' | awk -v m="$1" '$1==m {print $2}'; }
# Three complete cycles after the identities are known (bounded: 120 s at most).
deadline=$((SECONDS + 120))
until [ "$(metric aws_ses_exporter_identities || true)" = "$n" ] && [ "$(metric aws_ses_exporter_up || true)" = "1" ]; do
  [ $SECONDS -lt $deadline ] || { echo "timed out; log:"; cat "$tmp/log"; exit 1; }
  sleep 0.2
done
for _ in 1 2 3; do
  curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"
  curl -sf -o /dev/null -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/metrics"
  sleep 2.5
done
bytes=$(curl -sf "http://127.0.0.1:$port/metrics" | wc -c)
gz=$(curl -sf -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/metrics" | wc -c)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$exp_pid/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$exp_pid/status")
# Where the resident memory is now: heap and stacks, and pages of the binary and libc.
anon=$(awk '/RssAnon/ {print $2}' "/proc/$exp_pid/status")
file=$(awk '/RssFile/ {print $2}' "/proc/$exp_pid/status")
echo "identities=$n peak_rss_kib=$hwm rss_now_kib=$rss anon_kib=$anon file_kib=$file exposition_bytes=$bytes gzip_bytes=$gz"
