#!/bin/sh
# test_gc.sh KILN GC_TOOL MAKE_BASE_IMAGE: `kiln du`, `kiln prune` and the engine's automatic GC
# on cache made by `kiln debug solve` (the hello and parallel LLB examples over the fixture base
# image): du lists every record with a size; a dry run and a declined confirmation remove
# nothing; --filter until= keeps what was used recently; --keep-storage keeps at most that many
# bytes, least recently used going first; a full prune empties the store and a rebuild works;
# KILN_GC_KEEP_STORAGE drives the automatic GC; bad flags are usage errors (exit 2).
set -eu
KILN=$1
TOOL=$2
MKIMG=$3

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -x /bin/busybox ] || { echo "SKIP: busybox-static missing"; exit 77; }

T=$(mktemp -d /tmp/kiln-gc-test.XXXXXX)
S=$T/state
cleanup() {
    grep " $T/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.err "$T"/*.out; do
        [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
    done
    exit 1
}

solve() { # NAME DEF: stderr (progress) to $T/NAME.err, files in $T/NAME
    "$KILN" debug solve --root "$S" --output "$T/$1" "$2" >"$T/$1.id" 2>"$T/$1.err" ||
        fail "solve $1 failed"
}

records() { "$TOOL" du "$S" | cut -d' ' -f1; }
bytes() { "$TOOL" du "$S" | cut -d' ' -f2; }
rows() { grep -v -e '^ID ' -e '^$' -e '^[A-Z][a-z]*: ' "$1" || true; } # the records of a table
ids() { rows "$1" | cut -d' ' -f1 | sort; }

"$MKIMG" "$T/img" >/dev/null 2>&1 || fail "make-base-image.sh"
for ex in hello parallel; do
    "$KILN" debug make-llb --example $ex --base "oci-layout://$T/img/oci:latest" -o "$T/$ex.pb" ||
        fail "make-llb $ex"
done

# 1. du lists the records of a build, each with a size, and the totals
solve h1 "$T/hello.pb"
[ "$(cat "$T/h1/hello")" = hello ] || fail "hello build"
"$KILN" du --root "$S" >"$T/du1.out" || fail "du"
head -1 "$T/du1.out" | grep -q '^ID  *RECLAIMABLE  *SIZE  *LAST ACCESSED$' || fail "du header"
n=$(ids "$T/du1.out" | wc -l)
[ "$n" -ge 3 ] || fail "du lists $n records, want the image layer, its blob and the RUN"
[ "$n" = "$(records)" ] || fail "du lists $n records, the engine $(records)"
ids "$T/du1.out" | grep -q '^sha256:' || fail "du lists no blob"
rows "$T/du1.out" | while read -r id recl size _; do
    echo "$size" | grep -Eq '^[0-9.]+(B|kB|MB|GB)$' || fail "record $id: size '$size'"
    [ "$recl" = true ] || fail "record $id not reclaimable"
done
for w in Shared Private Reclaimable Total; do
    grep -q "^$w: " "$T/du1.out" || fail "du: no $w line"
done
grep -q '^Total: *0B$' "$T/du1.out" && fail "du total is 0"
KILN_ROOT=$S "$KILN" du >"$T/du-env.out" || fail "du with KILN_ROOT"
[ "$(ids "$T/du-env.out")" = "$(ids "$T/du1.out")" ] || fail "KILN_ROOT names another store"
"$KILN" du --root "$S" --verbose >"$T/du-v.out" || fail "du --verbose"
[ "$(grep -c '^ID:' "$T/du-v.out")" = "$n" ] || fail "du --verbose: records"
grep -q '^Description:.*layer sha256:' "$T/du-v.out" || fail "du --verbose: no layer description"
grep -q '^Parent:' "$T/du-v.out" || fail "du --verbose: the RUN snapshot has no parent"
before=$(bytes)

# 2. a dry run lists what would go and removes nothing; so does declining the confirmation
"$KILN" prune --root "$S" --dry-run >"$T/dry.out" || fail "prune --dry-run"
[ "$(ids "$T/dry.out")" = "$(ids "$T/du1.out")" ] || fail "dry run would not remove everything"
grep -q '^Total: *0B$' "$T/dry.out" && fail "dry run total is 0"
[ "$(bytes)" = "$before" ] || fail "dry run removed something"
echo n | "$KILN" prune --root "$S" >"$T/no.out" 2>"$T/no.err" || fail "prune, declined"
grep -q 'Are you sure' "$T/no.err" || fail "prune did not ask"
[ "$(bytes)" = "$before" ] || fail "declined prune removed something"

# 3. --filter until= keeps records used more recently
"$KILN" prune --root "$S" -f --filter until=24h >"$T/until.out" || fail "prune until=24h"
grep -q '^Total: *0B$' "$T/until.out" || fail "until=24h removed something"
[ "$(bytes)" = "$before" ] || fail "until=24h changed the store"
sleep 2
"$KILN" prune --root "$S" -n --filter until=1s >"$T/until1.out" || fail "prune until=1s"
[ "$(ids "$T/until1.out")" = "$(ids "$T/du1.out")" ] || fail "until=1s would not remove old cache"

# 4. --keep-storage keeps at most that, least recently used first: the parallel build (newer)
# survives a budget one byte under the total, the hello RUN (older) does not
solve p1 "$T/parallel.pb"
total=$(bytes)
keep=$((total - 1))
"$KILN" prune --root "$S" -f --keep-storage "$keep" >"$T/keep.out" || fail "prune --keep-storage"
after=$(bytes)
[ "$after" -le "$keep" ] || fail "--keep-storage $keep left $after bytes"
[ "$after" -gt 0 ] || fail "--keep-storage $keep removed everything"
solve p2 "$T/parallel.pb"
grep -q '^started' "$T/p2.err" && fail "the newer build lost its cache"
solve h2 "$T/hello.pb"
grep -q '^started RUN echo hello' "$T/h2.err" || fail "the older build kept its cache"
[ "$(cat "$T/h2/hello")" = hello ] || fail "hello rebuild"

# 5. prune without filters removes every unreferenced record; a rebuild works
"$KILN" prune --root "$S" --force >"$T/all.out" || fail "prune"
grep -q '^Total: *0B$' "$T/all.out" && fail "prune freed nothing"
[ "$("$TOOL" du "$S")" = "0 0" ] || fail "prune left $("$TOOL" du "$S")"
"$KILN" du --root "$S" >"$T/du-empty.out" || fail "du of an empty store"
grep -q '^Total: *0B$' "$T/du-empty.out" || fail "empty store: total"
solve h3 "$T/hello.pb"
grep -q '^started RUN echo hello' "$T/h3.err" || fail "rebuild after prune did not run"
[ "$(cat "$T/h3/hello")" = hello ] || fail "rebuild after prune"

# 6. automatic GC: the budget from KILN_GC_KEEP_STORAGE (size suffixes), else 10% of the file
# system (at least 512 MiB, far above this store); a bad value is logged and prunes nothing
n=$(records)
[ "$n" -gt 0 ] || fail "nothing to collect"
"$TOOL" gc "$S" >"$T/gc-default.out" 2>&1 || fail "gc, default budget"
[ "$(records)" = "$n" ] || fail "default budget collected a few MB"
KILN_GC_KEEP_STORAGE=1GiB "$TOOL" gc "$S" >"$T/gc-1g.out" 2>&1 || fail "gc 1GiB"
[ "$(records)" = "$n" ] || fail "KILN_GC_KEEP_STORAGE=1GiB collected"
KILN_GC_KEEP_STORAGE=nonsense "$TOOL" gc "$S" >"$T/gc-bad.out" 2>&1 || fail "gc nonsense"
grep -q 'KILN_GC_KEEP_STORAGE' "$T/gc-bad.out" || fail "a bad KILN_GC_KEEP_STORAGE is not logged"
[ "$(records)" = "$n" ] || fail "KILN_GC_KEEP_STORAGE=nonsense collected"
KILN_GC_KEEP_STORAGE=1 "$TOOL" gc "$S" >"$T/gc-1.out" 2>&1 || fail "gc 1 byte"
[ "$(records)" = 0 ] || fail "KILN_GC_KEEP_STORAGE=1 left $(records) records"

# 7. usage errors exit 2 with a message naming the problem
usage() { # WANT-IN-MESSAGE ARGS...
    want=$1
    shift
    set +e
    "$KILN" "$@" >"$T/usage.out" 2>"$T/usage.err"
    rc=$?
    set -e
    [ $rc = 2 ] || fail "kiln $*: exit $rc, want 2"
    grep -q -- "$want" "$T/usage.err" || fail "kiln $*: message lacks '$want'"
}
usage "invalid size \`nonsense\`" prune --root "$S" --keep-storage nonsense
usage "keep-storage" prune --root "$S" --keep-storage nonsense
usage "unsupported filter" prune --root "$S" --filter label=x
usage "invalid duration" prune --root "$S" --filter until=soon
usage "unknown flag" prune --bogus
usage "unexpected argument" du --root "$S" extra
echo "PASS"
