#!/usr/bin/env bash
# Builds localhost/bookworm-minbase:latest from Debian's mirror with debootstrap, for hosts that
# cannot pull from a registry (the Containerfiles default to it; elsewhere pass
# --build-arg BASE=docker.io/library/debian:bookworm-slim instead). Needs root, debootstrap
# and podman. Idempotent: does nothing when the image exists (FORCE=1 rebuilds).
#   deploy/make-base-image.sh [IMAGE] [MIRROR]     (SECURITY_MIRROR= for the security suite)
set -euo pipefail
IMAGE=${1:-localhost/bookworm-minbase:latest}
MIRROR=${2:-http://deb.debian.org/debian}

if [ "${FORCE:-0}" != 1 ] && podman image exists "$IMAGE"; then
  echo "make-base-image: $IMAGE exists" >&2
  exit 0
fi
rootfs=$(mktemp -d /tmp/qwenbox-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
# minbase: dpkg, apt and essentials only (~200 MB); the runtime stage adds its few libraries.
debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >&2
# debootstrap leaves the host's resolv.conf and the apt lists behind: neither belongs in an image.
# debootstrap writes only "bookworm main"; the updates and security suites keep libssl & co current.
cat >"$rootfs"/etc/apt/sources.list <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main
SOURCES
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/etc/resolv.conf
tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$IMAGE" >&2
echo "make-base-image: built $IMAGE" >&2
