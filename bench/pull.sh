#!/bin/bash
# bench/pull.sh: pulling a 5-layer, ~200 MB image from a loopback registry (Debian's
# docker-registry, tests/fixtures/registry.sh): `kiln pull` into an empty state dir against
# `skopeo copy docker://... oci:DIR` into an empty directory, alternating, N repetitions each;
# prints the median wall time of both and their ratio. The image: the busybox fixture base layer
# plus four 50 MiB layers of random data, built and pushed by kiln.
#
#   bench/pull.sh [--reps N] [--mb-per-layer M] [--kiln PATH]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
KILN=$top/build/cmd/kiln/kiln
REPS=5
MB=50
while [ $# -gt 0 ]; do
    case $1 in
    --reps) REPS=$2; shift ;;
    --mb-per-layer) MB=$2; shift ;;
    --kiln) KILN=$2; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "bench/pull.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "bench/pull.sh: needs root (kiln build's sandbox)" >&2; exit 1; }
[ -x "$KILN" ] || { echo "bench/pull.sh: $KILN missing: run scripts/build.sh first" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "bench/pull.sh: skopeo missing (scripts/deps.sh installs it)" >&2; exit 1; }

W=$(mktemp -d /var/tmp/kiln-bench-pull.XXXXXX)
REG=$top/tests/fixtures/registry.sh
cleanup() {
    local rc=$?
    set +e +o pipefail
    "$REG" stop "$W/reg" >/dev/null 2>&1 || true
    grep " $W/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    for _ in $(seq 50); do rm -rf "$W" 2>/dev/null && break; sleep 0.2; done
    exit $rc
}
trap cleanup EXIT

sh "$top/tests/fixtures/make-base-image.sh" "$W/base" >/dev/null
ADDR=$("$REG" start "$W/reg")
REF=$ADDR/bench/pull:5layers
mkdir -p "$W/ctx"
{
    echo "FROM base"
    for i in 1 2 3 4; do echo "RUN head -c $((MB << 20)) /dev/urandom > /layer$i"; done
} >"$W/ctx/Dockerfile"
KILN_ROOT=$W/build-state KILN_NO_AUTO_GC=1 "$KILN" build --progress quiet \
    --build-context "base=oci-layout://$W/base/oci:latest" -t "$REF" --push "$W/ctx" >/dev/null
skopeo inspect --tls-verify=false "docker://$REF" >"$W/inspect.json"
layers=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["Layers"]))' "$W/inspect.json")
echo "image $REF: $layers layers, $((4 * MB)) MiB of random data (gzip)"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
: >"$W/kiln.t"
: >"$W/skopeo.t"
for rep in $(seq "$REPS"); do
    rm -rf "$W/kstate" "$W/sk"
    sync
    t0=$(now)
    KILN_ROOT=$W/kstate KILN_NO_AUTO_GC=1 "$KILN" pull "$REF" >/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc >>"$W/kiln.t"
    t0=$(now)
    skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$W/sk:x" >/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc >>"$W/skopeo.t"
    echo "rep $rep/$REPS: kiln $(tail -1 "$W/kiln.t") s, skopeo $(tail -1 "$W/skopeo.t") s"
done
k=$(median <"$W/kiln.t")
s=$(median <"$W/skopeo.t")
printf '| pull %d layers, %d MiB | kiln %.3f s | skopeo copy %.3f s | kiln/skopeo %.2f |\n' \
    "$layers" $((4 * MB)) "$k" "$s" "$(echo "$k / $s" | bc -l)"
