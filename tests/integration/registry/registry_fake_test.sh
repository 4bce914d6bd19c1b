#!/bin/sh
# registry_fake_test.sh BINARY: run registry_fake_test.c against fake_registry.py on 127.0.0.1
# (bounded lifetime; always stopped on exit).
set -eu
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/kiln-fake-registry.XXXXXX")
PID=""
cleanup() {
    [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
    [ -z "$PID" ] || wait "$PID" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

[ -x /usr/bin/python3 ] || {
    echo "skip: /usr/bin/python3 missing"
    exit 77
}
timeout 180 /usr/bin/python3 "$HERE/fake_registry.py" "$T/port" 170 &
PID=$!
i=0
while [ ! -s "$T/port" ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || {
        echo "FAIL: fake registry did not start" >&2
        exit 1
    }
    sleep 0.1
done
KILN_TEST_FAKE=127.0.0.1:$(cat "$T/port") KILN_TEST_TMP=$T "$BIN"
