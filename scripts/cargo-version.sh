#!/usr/bin/env bash
# Prints the version of the [package] in Cargo.toml (or in the manifest given): the
# one place the release scripts, the Makefile and the release workflow read it from.
set -euo pipefail
manifest=${1:-"$(dirname "$0")/../Cargo.toml"}
version=$(awk '
  /^\[/ { in_package = ($0 == "[package]") }
  in_package && /^version[[:space:]]*=[[:space:]]*"/ {
    sub(/^version[[:space:]]*=[[:space:]]*"/, ""); sub(/".*/, ""); print; exit
  }
' "$manifest")
if [ -z "$version" ]; then
  echo "cargo-version.sh: no version in the [package] section of $manifest" >&2
  exit 1
fi
echo "$version"
