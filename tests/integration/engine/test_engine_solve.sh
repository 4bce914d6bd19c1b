#!/bin/sh
# test_engine_solve.sh KILN MAKE_TEST_LLB MAKE_BASE_IMAGE: the engine end to end through
# `kiln debug solve`: an oci-layout image, a RUN, file ops and copies from local://ctx; then the
# cache: an unchanged rebuild runs nothing, a change to a file no copy selects re-runs only the
# local source, a change to a copied file re-runs the copy but not the RUN, --no-cache runs the
# RUN again (its cache mount persisted); plus wildcard copies, ADD unpacking, merge/diff, proxy env
# (exported, not in the cache key), error reporting, and a docker-image:// pull from a real
# registry on 127.0.0.1.
set -eu
KILN=$1
MKLLB=$2
MKIMG=$3
REG=$(dirname "$MKIMG")/registry.sh

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -x /bin/busybox ] || { echo "SKIP: busybox-static missing"; exit 77; }

T=$(mktemp -d /tmp/kiln-engine-test.XXXXXX)
cleanup() {
    "$REG" stop "$T/reg" >/dev/null 2>&1 || true
    # snapshots may still be mounted if a step crashed
    grep " $T/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.err; do
        [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
    done
    exit 1
}

expect_file() { # PATH CONTENT
    [ -f "$1" ] || fail "$1 missing"
    [ "$(cat "$1")" = "$2" ] || fail "$1: want '$2', got '$(cat "$1")'"
}

solve() { # NAME DEF [ARGS...]: stderr to $T/NAME.err, result in $T/NAME
    name=$1
    def=$2
    shift 2
    "$KILN" debug solve --root "${STATE:-$T/state}" --local ctx="$T/ctx" --output "$T/$name" "$@" \
        "$def" >"$T/$name.id" 2>"$T/$name.err" || fail "solve $name failed"
}

"$MKIMG" "$T/img" >/dev/null 2>&1 || fail "make-base-image.sh"
mkdir -p "$T/ctx/sub"
echo app >"$T/ctx/app.txt"
echo other >"$T/ctx/other.txt"
echo s >"$T/ctx/sub/s.txt"
"$MKLLB" main "$T/img/oci" "$T/main.pb" || fail "make_test_llb main"
"$MKLLB" fail "$T/img/oci" "$T/fail.pb" || fail "make_test_llb fail"
"$MKLLB" glob "$T/img/oci" "$T/glob.pb" || fail "make_test_llb glob"

# 1. first build: everything runs
solve b1 "$T/main.pb"
expect_file "$T/b1/out.txt" hi
expect_file "$T/b1/runs.txt" 1
expect_file "$T/b1/uid.txt" 0
expect_file "$T/b1/hello.txt" hello
expect_file "$T/b1/app/app.txt" app
expect_file "$T/b1/subcopy/s.txt" s
[ "$(readlink "$T/b1/link")" = hello.txt ] || fail "symlink /link"
[ -d "$T/b1/d/e" ] || fail "mkdir -p /d/e"
[ "$(stat -c %a "$T/b1/d/e")" = 750 ] || fail "mode of /d/e"
[ "$(stat -c %a "$T/b1/hello.txt")" = 640 ] || fail "mode of /hello.txt"
[ "$(stat -c %a:%u:%g "$T/b1/subcopy/s.txt")" = 600:1:1 ] || fail "copy mode/owner"
[ ! -e "$T/b1/etc/hosts" ] || fail "rm /etc/hosts"
[ -x "$T/b1/bin/busybox" ] || fail "image content missing"
grep -q marker-42 "$T/b1.err" || fail "RUN output not streamed"
grep -q '^started exec' "$T/b1.err" || fail "no started event for the RUN"
grep -q '^done file' "$T/b1.err" || fail "no done event for the file op"

# 2. unchanged: every vertex cached, nothing runs, same result, no context file read again
export KILN_LOG=warn,engine=debug
solve b2 "$T/main.pb"
unset KILN_LOG
grep -q 'local://.*, 0 files hashed' "$T/b2.err" || fail "context stat cache not used"
grep -q '^started' "$T/b2.err" && fail "rebuild ran a vertex"
grep -q marker-42 "$T/b2.err" && fail "rebuild ran the RUN"
[ "$(grep -c '^cached' "$T/b2.err")" = 4 ] || fail "want 4 cached vertices"
[ "$(cat "$T/b2.id")" = "$(cat "$T/b1.id")" ] || fail "rebuild gave another result"
expect_file "$T/b2/runs.txt" 1

# 3. a context file no copy selects changed: only local://ctx runs, the copy stays cached
echo changed >"$T/ctx/other.txt"
solve b3 "$T/main.pb"
grep -q '^started source local://ctx' "$T/b3.err" || fail "local source not rescanned"
grep -q '^started file' "$T/b3.err" && fail "copy of unchanged files ran again"
grep -q '^cached file' "$T/b3.err" || fail "file op not cached"
[ "$(cat "$T/b3.id")" = "$(cat "$T/b1.id")" ] || fail "unchanged copy gave another result"

# 4. a copied file changed: the file op runs, the RUN does not
echo app2 >"$T/ctx/app.txt"
solve b4 "$T/main.pb"
grep -q '^started file' "$T/b4.err" || fail "copy of a changed file did not run"
grep -q marker-42 "$T/b4.err" && fail "RUN ran for a context change"
expect_file "$T/b4/app/app.txt" app2

# 5. --no-cache runs everything; the cache mount kept the first run's line
solve b5 "$T/main.pb" --no-cache
grep -q marker-42 "$T/b5.err" || fail "--no-cache did not run the RUN"
expect_file "$T/b5/runs.txt" 2

# 6. wildcard copy
solve g1 "$T/glob.pb"
expect_file "$T/g1/globbed/app.txt" app2
expect_file "$T/g1/globbed/other.txt" changed
[ ! -e "$T/g1/globbed/sub" ] || fail "wildcard matched a directory it should not"

# 6a. ADD's archive rule: a tar.gz is extracted, a plain file copied as is
mkdir -p "$T/tarsrc/x"
echo inside >"$T/tarsrc/x/y.txt"
tar -C "$T/tarsrc" -czf "$T/ctx/arch.tar.gz" x
"$MKLLB" add "$T/img/oci" "$T/add.pb" || fail "make_test_llb add"
solve a1 "$T/add.pb"
expect_file "$T/a1/unpacked/x/y.txt" inside
expect_file "$T/a1/unpacked/app.txt" app2
[ ! -e "$T/a1/unpacked/arch.tar.gz" ] || fail "archive copied instead of extracted"

# 6b. merge and diff: deletions in a merged input's chain apply, a diff carries only its changes
"$MKLLB" merge "$T/img/oci" "$T/merge.pb" || fail "make_test_llb merge"
solve m1 "$T/merge.pb"
for f in a b c d; do
    expect_file "$T/m1/$f.txt" $f
done
[ ! -e "$T/m1/gone.txt" ] || fail "merge kept a file a later input's chain deleted"
[ "$(ls "$T/m1" | wc -l)" = 4 ] || fail "merge result has extra files: $(ls "$T/m1")"

# 6c. Meta.proxy_env: exported in both cases unless the step's env sets the name; another proxy
# value is another op (digest) but the same cache key, so the RUN stays cached
"$MKLLB" proxy-a "$T/img/oci" "$T/proxy-a.pb" || fail "make_test_llb proxy-a"
"$MKLLB" proxy-b "$T/img/oci" "$T/proxy-b.pb" || fail "make_test_llb proxy-b"
cmp -s "$T/proxy-a.pb" "$T/proxy-b.pb" && fail "the proxy is not in the op"
solve px1 "$T/proxy-a.pb"
expect_file "$T/px1/proxy.txt" "$(printf 'HTTP_PROXY=http://a:3128\nNO_PROXY=from-env\nhttp_proxy=http://a:3128\nno_proxy=from-proxy')"
grep -q '^started exec' "$T/px1.err" || fail "proxy RUN did not run"
solve px2 "$T/proxy-b.pb"
grep -q '^started' "$T/px2.err" && fail "a changed proxy re-ran the RUN"
grep -q '^cached exec' "$T/px2.err" || fail "proxy RUN not cached"
expect_file "$T/px2/proxy.txt" "$(printf 'HTTP_PROXY=http://a:3128\nNO_PROXY=from-env\nhttp_proxy=http://a:3128\nno_proxy=from-proxy')"
rm -f "$T"/*.err

# 7. errors: a failing RUN, a missing local, a malformed Definition
if "$KILN" debug solve --root "$T/state" "$T/fail.pb" >/dev/null 2>"$T/e1.err"; then
    fail "failing RUN succeeded"
fi
grep -q 'did not complete successfully: exit code: 3' "$T/e1.err" || fail "exit code not reported"
grep -q '^error ' "$T/e1.err" || fail "no error event"
if "$KILN" debug solve --root "$T/state" "$T/main.pb" >/dev/null 2>"$T/e2.err"; then
    fail "missing --local succeeded"
fi
grep -q 'local source `ctx` was not given' "$T/e2.err" || fail "missing local not reported"
ln -s /etc "$T/ctx/evil"
"$MKLLB" escape "$T/img/oci" "$T/escape.pb" || fail "make_test_llb escape"
if "$KILN" debug solve --root "$T/state" --local ctx="$T/ctx" --output "$T/esc" "$T/escape.pb" \
    >/dev/null 2>"$T/e4.err"; then
    fail "copy through a symlink escaped the context: $(cat "$T/esc/stolen" 2>&1)"
fi
grep -q 'copy source `/evil/hostname`: not found' "$T/e4.err" || fail "escape not reported"
echo garbage >"$T/bad.pb"
if "$KILN" debug solve --root "$T/state" "$T/bad.pb" >/dev/null 2>"$T/e3.err"; then
    fail "malformed definition accepted"
fi
rm -f "$T"/*.err

# 8. docker-image:// from a real registry on loopback, in a fresh state dir: the layer is pulled
# into the content store and applied; a rebuild runs nothing; the oci-layout image with the same
# layers then reuses the layer snapshot (same chain id) instead of applying it again
if [ -x /usr/bin/docker-registry ]; then
    addr=$("$REG" start "$T/reg")
    "$REG" push "$T/reg" "$T/img/oci:latest" kiln-test/base:latest
    "$MKLLB" pull "$addr/kiln-test/base:latest" "$T/pull.pb" || fail "make_test_llb pull"
    STATE=$T/state2
    solve p1 "$T/pull.pb"
    expect_file "$T/p1/pulled.txt" pulled
    [ -x "$T/p1/bin/busybox" ] || fail "pulled image content missing"
    grep -q '^done source docker-image://' "$T/p1.err" || fail "image source did not run"
    grep -q '^status .*applying' "$T/p1.err" || fail "pulled layer not applied"
    ls "$T/state2/blobs/sha256/" | grep -q . || fail "layer blobs not in the content store"
    solve p2 "$T/pull.pb"
    grep -q '^started' "$T/p2.err" && fail "pull rebuild ran a vertex"
    solve p3 "$T/main.pb"
    grep -q '^done source oci-layout://' "$T/p3.err" || fail "oci-layout source did not run"
    grep -q '^status .*applying' "$T/p3.err" && fail "shared layer applied again"
    expect_file "$T/p3/hello.txt" hello
    unset STATE
    "$REG" stop "$T/reg"
else
    echo "note: docker-registry missing, docker-image:// not tested"
fi
# the quick start's path: a make-llb example rebased onto the fixture with --base
"$KILN" debug make-llb --example hello --base "oci-layout://$T/img/oci:latest" -o "$T/ex.pb" ||
    fail "make-llb --base"
solve ex "$T/ex.pb"
expect_file "$T/ex/hello" hello
grep -q '^done RUN echo hello' "$T/ex.err" || fail "example RUN did not run"
rm -f "$T"/*.err

# nothing stays mounted
grep -q " $T/" /proc/mounts && fail "mounts left behind"
echo "PASS"
