#!/bin/bash
# test_crash_builds.sh KILN MAKE_BASE_IMAGE [TRIALS]: kill -9 `kiln build` at random points (20
# trials by default) on one state dir. After each kill the store must open and pass `kiln debug
# fsck`, and the next build must succeed with a result equal to a clean build's (same files,
# modes, owners and contents).
set -eu
KILN=$1
MKIMG=$2
TRIALS=${3:-20}

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }

T=$(mktemp -d /tmp/kiln-crash-test.XXXXXX)
cleanup() {
    rc=$?
    set +e
    pkill -9 -f "kiln-crash-test" 2>/dev/null
    grep " $T/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m"; done
    for _ in $(seq 50); do rm -rf "$T" 2>/dev/null && break; sleep 0.2; done
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

sh "$MKIMG" "$T/base" >/dev/null
BASE="oci-layout://$T/base/oci:latest"
mkdir -p "$T/ctx/files"
for i in $(seq 1 300); do echo "file $i" >"$T/ctx/files/f$i"; done
cat >"$T/ctx/Dockerfile" <<'DF'
FROM base
COPY files /files
RUN for i in 1 2 3 4 5; do echo step $i >> /log; sleep 0.1; done
RUN mkdir /out && cp -r /files /out/ && sleep 0.2
RUN echo done > /out/done
DF
export KILN_NO_AUTO_GC=1

# the reference: a clean build in its own store
tree() { # a listing of a tar: type, mode, owner, size, name; plus a digest of the contents
    tar -tvf "$1" | awk '{print $1, $2, $3, $6}' | sort
    mkdir -p "$1.x" && tar -xf "$1" -C "$1.x" && (cd "$1.x" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}
KILN_ROOT=$T/clean "$KILN" build --progress quiet --build-context "base=$BASE" \
    -o "type=tar,dest=$T/clean.tar" "$T/ctx" >/dev/null 2>"$T/clean.err" || fail "clean build: $(cat "$T/clean.err")"
tree "$T/clean.tar" >"$T/clean.list"

export KILN_ROOT=$T/state
for trial in $(seq 1 "$TRIALS"); do
    delay_ms=$(( (RANDOM % 1500) + 20 ))
    "$KILN" build --progress quiet --no-cache --build-context "base=$BASE" -t crash "$T/ctx" \
        >/dev/null 2>"$T/killed.err" &
    pid=$!
    sleep "$(printf '0.%03d' $((delay_ms % 1000)))"
    [ $delay_ms -ge 1000 ] && sleep 1
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    # the store opens and is consistent
    "$KILN" debug fsck --root "$KILN_ROOT" >"$T/fsck.out" 2>&1 ||
        fail "trial $trial (kill after ${delay_ms} ms): fsck: $(cat "$T/fsck.out")"
    # and the next build gives the clean build's result
    rm -f "$T/next.tar"
    "$KILN" build --progress quiet --build-context "base=$BASE" -o "type=tar,dest=$T/next.tar" \
        "$T/ctx" >/dev/null 2>"$T/next.err" ||
        fail "trial $trial (kill after ${delay_ms} ms): next build: $(tail -5 "$T/next.err")"
    rm -rf "$T/next.tar.x"
    tree "$T/next.tar" >"$T/next.list"
    diff -u "$T/clean.list" "$T/next.list" >"$T/diff.out" ||
        fail "trial $trial (kill after ${delay_ms} ms): result differs: $(head -20 "$T/diff.out")"
    echo "trial $trial: killed after ${delay_ms} ms; fsck ok; rebuild equal"
done
echo "ok"
