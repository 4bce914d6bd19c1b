#!/bin/bash
# test_dockerfile_diff.sh KILN MAKE_BASE_IMAGE: the differential suite of the Dockerfile frontend.
# Each case under cases/ is built by kiln and by `docker build` (dockerd from Debian's docker.io,
# with its embedded BuildKit) from the same base image; the resulting file trees (types, modes,
# owners, contents, link targets) and image configs must match, except for the differences listed
# in expected-differences.txt with their reasons. Last, an image kiln exports as type=docker must
# `docker load` and `docker run`.
set -euo pipefail
KILN=$1
MKIMG=$2
HERE=$(cd "$(dirname "$0")" && pwd)

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
if ! command -v dockerd >/dev/null || [ ! -x /usr/bin/docker ]; then
    echo "SKIP: dockerd or /usr/bin/docker missing (scripts/deps.sh installs docker.io)"
    exit 77
fi

T=$(mktemp -d /var/tmp/kiln-dfdiff.XXXXXX)
DPID=""
cleanup() {
    rc=$?
    set +e
    if [ -n "$DPID" ]; then kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; fi
    grep " $T/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m"; done
    # dockerd's containerd may still be writing under $T for a moment after dockerd exits
    for _ in $(seq 50); do rm -rf "$T" 2>/dev/null && break; sleep 0.2; done
    [ ! -e "$T" ] || echo "note: could not remove $T"
    exit $rc
}
trap cleanup EXIT

sh "$MKIMG" "$T/base" >/dev/null
dockerd --data-root "$T/docker/root" --exec-root "$T/docker/exec" \
    --host "unix://$T/docker.sock" --pidfile "$T/docker.pid" --iptables=false --bridge=none \
    >"$T/dockerd.log" 2>&1 &
DPID=$!
export DOCKER_HOST=unix://$T/docker.sock DOCKER_BUILDKIT=1
for _ in $(seq 150); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 0.2; done
if ! /usr/bin/docker info >/dev/null 2>&1; then
    echo "SKIP: dockerd could not start here:"
    tail -5 "$T/dockerd.log"
    exit 77
fi
if ! /usr/bin/docker load -i "$T/base/base.docker.tar" >"$T/base-load.log" 2>&1; then
    # inside a chroot (as tools/fresh-machine.sh runs the suite) dockerd cannot remount / to
    # unpack a layer: not something kiln can change
    if grep -q "remount /" "$T/base-load.log"; then
        echo "SKIP: dockerd cannot unpack images here (a chroot: $(tail -1 "$T/base-load.log"))"
        exit 77
    fi
    echo "FAIL: docker load of the base image:"; cat "$T/base-load.log"; exit 1
fi

export KILN_ROOT=$T/kiln
bad=0
for dir in "$HERE"/cases/*/; do
    case=$(basename "$dir")
    ctx=$T/ctx/$case
    mkdir -p "$ctx"
    cp -a "$dir." "$ctx/"
    if [ "$case" = addtar ]; then
        mkdir -p "$T/payload/dir" && echo inner >"$T/payload/dir/inner.txt"
        tar -C "$T/payload" -cf "$ctx/archive.tar" dir
        tar -C "$T/payload" -czf "$ctx/archive.tgz" dir
    fi
    echo "== $case"
    if ! /usr/bin/docker build --network none -o "type=tar,dest=$T/$case.docker.tar" "$ctx" \
        >"$T/$case.docker.log" 2>&1 ||
        ! /usr/bin/docker build --network none -t "diff-$case" "$ctx" >>"$T/$case.docker.log" 2>&1; then
        echo "$case: docker build failed:"; tail -15 "$T/$case.docker.log"; bad=1; continue
    fi
    /usr/bin/docker image inspect "diff-$case" >"$T/$case.docker.json"
    if ! "$KILN" build --progress plain --build-context "kiln-test/base=oci-layout://$T/base/oci:latest" \
        -o "type=tar,dest=$T/$case.kiln.tar" "$ctx" >"$T/$case.kiln.log" 2>&1 ||
        ! "$KILN" build --progress plain --build-context "kiln-test/base=oci-layout://$T/base/oci:latest" \
        -t "diff-$case" "$ctx" >>"$T/$case.kiln.log" 2>&1; then
        echo "$case: kiln build failed:"; tail -25 "$T/$case.kiln.log"; bad=1; continue
    fi
    "$KILN" inspect "diff-$case" >"$T/$case.kiln.json"
    # both trees go through the same tar extraction (owners kept, as root)
    for who in docker kiln; do
        mkdir -p "$T/out/$who-$case"
        tar --numeric-owner --same-owner -xpf "$T/$case.$who.tar" -C "$T/out/$who-$case"
    done
    python3 "$HERE/compare.py" "$T/out/kiln-$case" "$T/$case.kiln.json" "$T/out/docker-$case" \
        "$T/$case.docker.json" "$case" "$HERE/expected-differences.txt" || bad=1
done
# kiln's type=docker archive loads into dockerd and runs there
echo "== kiln build -o type=docker, docker load, docker run"
mkdir -p "$T/made"
printf 'FROM kiln-test/base\nRUN echo "made by kiln" > /made\nCMD ["cat", "/made"]\n' >"$T/made/Dockerfile"
if ! "$KILN" build --progress plain --build-context "kiln-test/base=oci-layout://$T/base/oci:latest" \
    -t kiln-made:1 -o "type=docker,dest=$T/made.tar" "$T/made" >"$T/made.log" 2>&1; then
    echo "kiln build type=docker failed:"; tail -20 "$T/made.log"; bad=1
elif ! /usr/bin/docker load -i "$T/made.tar" >"$T/made-load.log" 2>&1; then
    echo "docker load rejected kiln's archive:"; cat "$T/made-load.log"; bad=1
elif [ "$(/usr/bin/docker run --rm --network none kiln-made:1 2>"$T/made-run.err")" != "made by kiln" ]; then
    echo "docker run of kiln's image: wrong output"; cat "$T/made-run.err"; bad=1
fi
[ $bad = 0 ] || { echo "FAIL: kiln and docker build differ (see above)"; exit 1; }
echo "ok"
