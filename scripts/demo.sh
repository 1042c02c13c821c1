#!/usr/bin/env bash
# The quick-start demo: builds both binaries, starts the SES double on loopback with
# identities in every MAIL FROM state, and runs the exporter against it on
# http://127.0.0.1:10150/metrics until Ctrl-C. No AWS account is touched: the
# environment below points the SDK at the double and disables instance metadata.
# Extra arguments go to the exporter (e.g. --log.level debug).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --bins

tmp=$(mktemp -d)
cleanup() {
  [ -n "${double_pid:-}" ] && kill "$double_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

mkfifo "$tmp/ready"
./target/debug/ses-double --listen 127.0.0.1:0 --seed demo >"$tmp/ready" &
double_pid=$!
# The double prints "listening on URL" once its port accepts connections.
read -r _ _ url <"$tmp/ready"
echo "SES double (demo identities in every state) at $url"

: >"$tmp/aws-config"
: >"$tmp/aws-credentials"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
  AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE="$tmp/aws-config" \
  AWS_SHARED_CREDENTIALS_FILE="$tmp/aws-credentials" AWS_ENDPOINT_URL_SES="$url" AWS_ENDPOINT_URL_SESV2="$url" AWS_ENDPOINT_URL="$url" \
  AWS_ENDPOINT_URL_STS="$url"
echo "Metrics: http://127.0.0.1:10150/metrics   (Ctrl-C stops both)"
# The demo domains do not exist: the dns collector is off (pass --collector.dns
# --dns.nameserver ADDR to try it against a server of your own).
./target/debug/ses-identity-exporter --web.listen-address 127.0.0.1:10150 --poll.interval 30s --no-collector.dns "$@"
