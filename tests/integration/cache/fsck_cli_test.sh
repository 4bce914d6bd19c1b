#!/bin/sh
# `kiln debug fsck`: exit 0 and "ok" on a fresh state dir, exit 1 naming the problem on a damaged
# one, exit 2 on a usage error. Usage: fsck_cli_test.sh KILN CACHE_CRASH_TEST
set -u
kiln=$1
helper=$2
tmp=$(mktemp -d /tmp/kiln-fsck-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$kiln" debug fsck --root "$tmp/clean" >"$tmp/out" 2>&1 || fail "fresh store: $(cat "$tmp/out")"
grep -q ": ok$" "$tmp/out" || fail "fresh store: no ok line: $(cat "$tmp/out")"

"$helper" --make-damaged "$tmp/bad" || fail "cannot create the damaged store"
"$kiln" debug fsck --root "$tmp/bad" >"$tmp/out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "damaged store: exit $rc, want 1: $(cat "$tmp/out")"
grep -q "is missing" "$tmp/out" || fail "damaged store: problem not reported: $(cat "$tmp/out")"
grep -q "1 problem$" "$tmp/out" || fail "damaged store: no summary: $(cat "$tmp/out")"

"$kiln" debug fsck --root "$tmp/clean" --no-such-flag >/dev/null 2>&1
rc=$?
[ "$rc" -eq 2 ] || fail "bad flag: exit $rc, want 2"
echo "ok"
