#!/usr/bin/env bash
# Packs a release binary the way Prometheus' exporters ship theirs:
# ses-identity-exporter-VERSION.linux-ARCH.tar.gz holds one directory of the same
# name with the binary, LICENSE, README.md, CHANGELOG.md, the systemd units and their
# environment file (systemd/) and the example configuration (examples/). Beside it,
# the tarball's SHA-256 in sha256sum's format (NAME.tar.gz.sha256, checked with
# `sha256sum -c` from that directory). Prints the tarball's path.
#
# The release workflow runs it on each architecture's runner after `make release`
# (`make tarball` does both). VERSION is Cargo.toml's. Settings, from the environment:
#   ARCH     amd64 or arm64 (x86_64 and aarch64 are accepted); default: this machine's
#   BINARY   default: target/release/ses-identity-exporter; its ELF machine must be ARCH's
#   DIST     output directory, default: dist/ (only dist/linux-*/ is in the image's
#            build context: .dockerignore)
#   SOURCE_DATE_EPOCH  the files' modification time; default: the last commit's, so
#            the same commit and binary give the same bytes
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "release-tarball.sh: $*" >&2; exit 1; }

version=$("$root/scripts/cargo-version.sh" "$root/Cargo.toml")
case ${ARCH:-$(uname -m)} in
  amd64 | x86_64) arch=amd64 elf_machine="3e 00" ;;
  arm64 | aarch64) arch=arm64 elf_machine="b7 00" ;;
  *) fail "unsupported architecture ${ARCH:-$(uname -m)} (amd64 or arm64)" ;;
esac
binary=${BINARY:-$root/target/release/ses-identity-exporter}
[ -x "$binary" ] || fail "no executable $binary: build it first (make release)"
# e_machine, bytes 18-19 of the ELF header: a tarball must not carry another
# architecture's binary under this one's name.
machine=$(od -An -tx1 -j18 -N2 "$binary" | xargs)
[ "$machine" = "$elf_machine" ] || fail "$binary is not a linux-$arch binary (ELF machine $machine)"

mkdir -p "${DIST:-$root/dist}"
dist=$(cd "${DIST:-$root/dist}" && pwd)
# Dated at the commit, so the same commit packs the same bytes; never the clock.
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
  epoch=$SOURCE_DATE_EPOCH
else
  epoch=$(git -C "$root" log -1 --format=%ct) ||
    fail "cannot read the last commit's date from git (is $root a repository git trusts?); set SOURCE_DATE_EPOCH"
fi
name=ses-identity-exporter-$version.linux-$arch

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
top=$stage/$name
# Explicit modes, so the umask of the machine that packs does not show.
install -d -m 0755 "$top" "$top/systemd"
install -m 0755 "$binary" "$top/ses-identity-exporter"
install -m 0644 "$root/LICENSE" "$root/README.md" "$root/CHANGELOG.md" "$top/"
# Every systemd unit and the environment file they read.
install -m 0644 "$root"/deploy/systemd/* "$top/systemd/"
if [ -f "$root/examples/config.yaml" ]; then
  install -d -m 0755 "$top/examples"
  install -m 0644 "$root/examples/config.yaml" "$top/examples/"
fi

tar --create --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
  --mtime="@$epoch" --directory="$stage" "$name" | gzip -9 -n >"$dist/$name.tar.gz"
(cd "$dist" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "$dist/$name.tar.gz"
