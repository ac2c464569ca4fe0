#!/usr/bin/env bash
# Makes sure a Debian 12 base image exists in podman's store under the name docker/Dockerfile's
# runtime stage starts FROM (docker.io/library/debian:bookworm-slim), for machines that reach no
# image registry. It is built with debootstrap (minbase) from the Debian mirror apt already uses
# here and imported with `podman import`. Used by tests/container.rs; also fine by hand.
#
#   tests/container/base-image.sh [IMAGE]
#
# Cached twice: the image stays in podman's store (an existing image is used as it is), and the
# root file system's tarball is kept in $CONCLAVE_CONTAINER_CACHE (default
# /var/cache/conclave-container) so that a wiped store is refilled without debootstrap.
# Concurrent callers (nextest runs each test in its own process) wait on a lock there.
# An image made by an older version of this recipe (its label below) is made again; any other
# image of that name, e.g. the real one pulled from a registry, is used as it is.
set -euo pipefail

IMAGE=${1:-docker.io/library/debian:bookworm-slim}
CACHE=${CONCLAVE_CONTAINER_CACHE:-/var/cache/conclave-container}
SUITE=bookworm
# Bump when the recipe changes, to replace the images and tarballs made by the old one.
RECIPE=debootstrap-2
mkdir -p "$CACHE"
exec 9>"$CACHE/base-image.lock"
flock 9

if podman image exists "$IMAGE"; then
  made_by=$(podman image inspect --format '{{index .Config.Labels "org.conclave.test-base"}}' "$IMAGE" 2>/dev/null || true)
  case "$made_by" in
    "$RECIPE" | "" | "<no value>") exit 0 ;;
  esac
fi

# The mirror apt uses on this machine: the first URIs of a deb822 .sources file, else the first
# `deb` line of sources.list, skipping the security archive.
mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' \
    | grep -v -- '-security' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' \
      | grep -v -- '-security' | head -n1 || true)
  fi
  if [ -z "$uri" ]; then
    echo "base-image.sh: no Debian mirror found in /etc/apt/sources.list*" >&2
    exit 1
  fi
  echo "$uri"
}

tarball=$CACHE/debian-$SUITE-minbase-$RECIPE.tar
if ! [ -s "$tarball" ]; then
  MIRROR=$(mirror)
  root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "base-image.sh: debootstrap --variant=minbase $SUITE from $MIRROR" >&2
  debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
    tail -n 30 "$CACHE/debootstrap.log" >&2
    exit 1
  }
  # Like the official slim image: the same suites as this machine's apt (updates, security),
  # apt set to keep no downloaded packages or translations, no package lists, no logs.
  if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    rm -f "$root/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/"
  fi
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/* "$root"/tmp/*
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  --change "LABEL org.conclave.test-base=$RECIPE" \
  "$tarball" "$IMAGE" >/dev/null
echo "base-image.sh: imported $IMAGE from $tarball" >&2
