#!/bin/bash
# deps.sh: install the Debian packages kiln needs to build and test, only those that are missing.
# Runs apt-get as root (through sudo when not root). Idempotent and quiet when nothing is missing.
set -euo pipefail

PACKAGES=(
  # toolchain
  gcc make cmake pkg-config clang-14 libclang-rt-14-dev clang-format-14 git ca-certificates
  # libraries (DESIGN.md §3)
  libgit2-dev libarchive-dev libxxhash-dev liblmdb-dev libseccomp-dev libprotobuf-c-dev
  protobuf-c-compiler libcurl4-openssl-dev libssl-dev libjansson-dev zlib1g-dev libzstd-dev
  libcmocka-dev
  # test oracles and fixtures
  protobuf-compiler python3 python3-protobuf golang-go busybox-static bash-static skopeo umoci
  docker-registry uidmap apache2-utils pmccabe curl iproute2 procps util-linux kmod jq
  # peers for the differential tests and benchmarks (dockerd with its BuildKit, buildah)
  docker.io buildah time bc openssh-client
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "kiln: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
