#!/usr/bin/env bash
# Assembles a runtime base image like distroless/cc (glibc, libgcc, the CA bundle,
# a "nonroot" user 65532, no shell) from this machine's Debian packages, with
# buildah, for the image test: no registry is reachable here, so the public base
# cannot be pulled. Usage: scripts/image-base.sh NAME [buildah global flags...]
set -euo pipefail
name=$1
shift
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
# Each package's files at their real paths (Debian 12 merges /lib into /usr/lib).
for pkg in libc6 libgcc-s1; do
  dpkg -L "$pkg" | while read -r f; do
    if [ -L "$f" ]; then
      dir=$(realpath "$(dirname "$f")")
      mkdir -p "$rootfs$dir"
      cp -P "$f" "$rootfs$dir/"
    elif [ -f "$f" ]; then
      real=$(realpath "$f")
      mkdir -p "$rootfs$(dirname "$real")"
      cp "$real" "$rootfs$real"
    fi
  done
done
for link in lib lib64 bin sbin; do
  [ -e "$rootfs/usr/$link" ] && ln -s "usr/$link" "$rootfs/$link"
done
# The bundle update-ca-certificates builds from Debian's ca-certificates package
# (it is made by the package's postinst, so not in its file list).
if ! [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  echo "no /etc/ssl/certs/ca-certificates.crt: install Debian's ca-certificates" >&2
  exit 1
fi
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
find "$rootfs" -type d -exec chmod 755 {} + 2>/dev/null || true
chmod 1777 "$rootfs/tmp"
ctr=$(buildah "$@" from scratch)
buildah "$@" copy "$ctr" "$rootfs/" / >/dev/null
buildah "$@" config --user 65532:65532 "$ctr"
buildah "$@" commit -q "$ctr" "$name" >/dev/null
buildah "$@" rm "$ctr" >/dev/null
