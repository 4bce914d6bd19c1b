# harness.sh: sourced by the `kiln build` integration scripts, after they set KILN and MKIMG.
#   harness_start NAME  makes the work dir $T (at exit: the processes in $PIDS killed, the mounts
#                       below $T unmounted, $T removed, the script's status kept), a state dir
#                       ($KILN_ROOT, no automatic GC) and the fixture base image ($BASE)
#   kb ARGS...          kiln build --progress plain with $BASE as the build context `base`
#   fail MSG            print MSG and the tail of every $T/*.err, exit 1
PIDS=""

harness_cleanup() {
    rc=$?
    set +e
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    grep " $T/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m"; done
    for _ in $(seq 50); do rm -rf "$T" 2>/dev/null && break; sleep 0.2; done
    exit $rc
}

harness_start() {
    T=$(mktemp -d "/tmp/kiln-$1-test.XXXXXX")
    trap harness_cleanup EXIT
    export KILN_ROOT=$T/state KILN_NO_AUTO_GC=1
    sh "$MKIMG" "$T/base" >/dev/null
    BASE="oci-layout://$T/base/oci:latest"
}

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.err; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
    done
    exit 1
}

kb() { "$KILN" build --progress plain --build-context "base=$BASE" "$@"; }
