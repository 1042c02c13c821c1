#!/usr/bin/env bash
# Checks that a release tag names the version being released: TAG must be
# v<version> of Cargo.toml, and the chart's version and appVersion must be that
# version too (they move together: docs/releasing.md). Prints the version.
# Usage: release-check.sh TAG [CARGO_TOML [CHART_YAML]]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:?usage: release-check.sh TAG [CARGO_TOML [CHART_YAML]]}
cargo_toml=${2:-$root/Cargo.toml}
chart_yaml=${3:-$root/charts/ses-identity-exporter/Chart.yaml}

version=$("$root/scripts/cargo-version.sh" "$cargo_toml")
# A top-level `key: value` of Chart.yaml, quotes removed.
chart_field() {
  sed -nE "s/^$1:[[:space:]]*\"?([^\"[:space:]]*)\"?[[:space:]]*(#.*)?\$/\\1/p" "$chart_yaml" | head -n 1
}
errors=()
[ "$tag" = "v$version" ] || errors+=("tag $tag is not v$version (the version in $cargo_toml)")
for field in version appVersion; do
  value=$(chart_field "$field")
  [ "$value" = "$version" ] || errors+=("$chart_yaml: $field is '${value}', not $version")
done
if [ ${#errors[@]} -gt 0 ]; then
  printf 'release-check.sh: %s\n' "${errors[@]}" >&2
  exit 1
fi
echo "$version"
