#!/bin/sh
# images_test.sh KILN IMAGES_DRIVER FIXTURES_DIR: images end to end. A result built on the fixture
# base image is exported through the engine API (images_driver) and named; then: base layers keep
# their digests, a re-export writes no blob, SOURCE_DATE_EPOCH exports are reproducible across
# state dirs, empty layers and history are aligned, and the CLI: images/tag/rmi/inspect, save
# (checked by skopeo and umoci), load (OCI and classic docker archives), push/pull against a real
# registry on 127.0.0.1 (read back by skopeo), run (output, exit codes, env/user/workdir), FROM a
# local image, and error cases with their exit codes.
set -eu
KILN=$1
DRIVER=$2
FIX=$3

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -x /bin/busybox ] || { echo "SKIP: busybox-static missing"; exit 77; }
for t in skopeo umoci jq; do
    command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done

T=$(mktemp -d /tmp/kiln-images-test.XXXXXX)
S=$T/state
cleanup() {
    "$FIX/registry.sh" stop "$T/reg" >/dev/null 2>&1 || true
    grep " $T/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.err; do
        [ -s "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }
    done
    exit 1
}

k() { # k CMD ARGS...: kiln CMD --root $S ARGS..., stderr to $T/k.err

    cmd=$1
    shift
    "$KILN" "$cmd" --root "$S" "$@" 2>"$T/k.err"
}

expect_rc() { # RC CMD...: run, check the exit code
    want=$1
    shift
    set +e
    "$@" >"$T/out" 2>"$T/rc.err"
    got=$?
    set -e
    [ "$got" = "$want" ] || fail "$*: exit $got, want $want ($(cat "$T/rc.err"))"
}

nblobs() { ls "$1/blobs/sha256" | wc -l; }
layers() { jq -r '.[0].manifest.layers[].digest' "$1"; }

"$FIX/make-base-image.sh" "$T/img" >/dev/null 2>&1 || fail "make-base-image.sh"
BASE_LAYER=$(jq -r '.layers[0].digest' \
    "$T/img/oci/blobs/sha256/$(sed -n 's/^base sha256://p' "$T/img/digests")")
"$KILN" debug make-llb --example hello --base "oci-layout://$T/img/oci" -o "$T/hello.pb" ||
    fail "make-llb"
"$DRIVER" llb "$T/img/oci" "$T/empty.pb" || fail "driver llb"

# 1. export: the base layer keeps its blob, the RUN adds one layer
"$DRIVER" export "$S" "$T/hello.pb" app --epoch 0 >"$T/e1" 2>"$T/e1.err" || fail "export"
k inspect app >"$T/app.json" || fail "inspect app"
[ "$(jq -r '.[0].digest' "$T/app.json")" = "$(cut -d' ' -f1 "$T/e1")" ] || fail "inspect digest"
[ "$(layers "$T/app.json" | wc -l)" = 2 ] || fail "want 2 layers: $(layers "$T/app.json")"
[ "$(layers "$T/app.json" | head -1)" = "$BASE_LAYER" ] || fail "base layer digest changed"
[ "$(jq -r '.[0].config.rootfs.diff_ids | length' "$T/app.json")" = 2 ] || fail "diff_ids"
[ "$(jq -r '.[0].config.created' "$T/app.json")" = 1970-01-01T00:00:00Z ] || fail "created"

# 2. re-export: same digest, no new blob
n1=$(nblobs "$S")
"$DRIVER" export "$S" "$T/hello.pb" app --epoch 0 >"$T/e2" 2>"$T/e2.err" || fail "re-export"
cmp -s "$T/e1" "$T/e2" || fail "re-export changed the image: $(cat "$T/e1") vs $(cat "$T/e2")"
[ "$(nblobs "$S")" = "$n1" ] || fail "re-export wrote blobs ($n1 -> $(nblobs "$S"))"
# zstd without force reuses the stored gzip blobs; with force it recompresses
"$DRIVER" export "$S" "$T/hello.pb" appz --epoch 0 --zstd >"$T/e3" 2>"$T/e3.err" || fail "zstd"
cmp -s "$T/e1" "$T/e3" || fail "zstd without force recompressed"
"$DRIVER" export "$S" "$T/hello.pb" appz --epoch 0 --zstd --force >"$T/e4" 2>"$T/e4.err" ||
    fail "zstd --force"
n2=$(nblobs "$S")
"$DRIVER" export "$S" "$T/hello.pb" appz --epoch 0 --zstd --force >"$T/e4b" 2>"$T/e4.err" ||
    fail "zstd --force again"
cmp -s "$T/e4" "$T/e4b" || fail "second zstd export differs"
[ "$(nblobs "$S")" = "$n2" ] || fail "second zstd export recompressed"
k inspect appz >"$T/appz.json" || fail "inspect appz"
[ "$(jq -r '.[0].manifest.layers[].mediaType' "$T/appz.json" | sort -u)" = \
    application/vnd.oci.image.layer.v1.tar+zstd ] || fail "zstd layers"

# Docker schema 2 media types (type=docker) with the same layer blobs
"$DRIVER" export "$S" "$T/hello.pb" appd --epoch 0 --docker >/dev/null 2>"$T/e5.err" || fail "docker"
k inspect appd >"$T/appd.json" || fail "inspect appd"
[ "$(jq -r '.[0].manifest.mediaType' "$T/appd.json")" = \
    application/vnd.docker.distribution.manifest.v2+json ] || fail "docker manifest type"
[ "$(jq -r '.[0].manifest.layers[0].mediaType' "$T/appd.json")" = \
    application/vnd.docker.image.rootfs.diff.tar.gzip ] || fail "docker layer type"
[ "$(layers "$T/appd.json")" = "$(layers "$T/app.json")" ] || fail "docker types changed blobs"

# 3. SOURCE_DATE_EPOCH + rewrite: identical images from two fresh state dirs
"$DRIVER" export "$T/sa" "$T/hello.pb" r --epoch 1700000000 --rewrite >"$T/ra" 2>"$T/ra.err" ||
    fail "export sa"
sleep 1
"$DRIVER" export "$T/sb" "$T/hello.pb" r --epoch 1700000000 --rewrite >"$T/rb" 2>"$T/rb.err" ||
    fail "export sb"
cmp -s "$T/ra" "$T/rb" || fail "not reproducible: $(cat "$T/ra") vs $(cat "$T/rb")"

# 4. empty layers and history: RUN true adds no layer; its history entry is marked empty
cat >"$T/cfg.json" <<'EOF'
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","A=1"],"Cmd":["cat","/x.txt"]},
 "rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},
 "history":[{"created_by":"base"},{"created_by":"ENV A=1","empty_layer":true},
  {"created_by":"RUN true"},{"created_by":"COPY x"},{"created_by":"RUN echo y"}]}
EOF
"$DRIVER" export "$T/se" "$T/empty.pb" e --config "$T/cfg.json" >/dev/null 2>"$T/se.err" ||
    fail "export empty"
"$KILN" inspect --root "$T/se" e >"$T/e.json" || fail "inspect e"
[ "$(layers "$T/e.json" | wc -l)" = 3 ] || fail "empty layer not skipped: $(layers "$T/e.json")"
[ "$(jq -c '[.[0].config.history[] | .empty_layer // false]' "$T/e.json")" = \
    '[false,true,true,false,false]' ] || fail "history: $(jq -c '.[0].config.history' "$T/e.json")"
# without a config: one generated history entry per layer
"$DRIVER" export "$T/se" "$T/empty.pb" e2 >/dev/null 2>"$T/se.err" || fail "export e2"
"$KILN" inspect --root "$T/se" e2 >"$T/e2.json" || fail "inspect e2"
[ "$(jq '.[0].config.history | length' "$T/e2.json")" = 3 ] || fail "generated history"

# 5. the store: images, tag, get by id prefix, rmi
k images >"$T/images" || fail "images"
grep -q '^app  *latest  *[0-9a-f]\{12\} ' "$T/images" || fail "images table: $(cat "$T/images")"
ID=$(jq -r '.[0].id' "$T/app.json")
SHORT=$(echo "$ID" | cut -c8-19)
k images -q | grep -qx "$SHORT" || fail "images -q"
KILN_ROOT=$S "$KILN" images -q | grep -qx "$SHORT" || fail "KILN_ROOT not used"
k images --format json | jq -e '.[] | select(.name == "docker.io/library/app:latest")' >/dev/null ||
    fail "images --format json"
k tag "$SHORT" example.com/team/app:v2 || fail "tag by id prefix"
k images --digests | grep -q '^example.com/team/app  *v2  *sha256:' || fail "tag not listed"
k rmi example.com/team/app:v2 >/dev/null || fail "rmi"
k images | grep -q 'example.com/team/app' && fail "rmi left the name"
expect_rc 1 "$KILN" rmi --root "$S" nosuch
grep -q "no such image \`nosuch\`" "$T/rc.err" || fail "rmi message: $(cat "$T/rc.err")"
expect_rc 1 "$KILN" inspect --root "$S" nosuch
expect_rc 1 "$KILN" tag --root "$S" app 'Bad Name'
grep -q 'lowercase' "$T/rc.err" || fail "bad name message: $(cat "$T/rc.err")"
expect_rc 2 "$KILN" images --root "$S" --bogus
grep -q "unknown flag \`--bogus\`" "$T/rc.err" || fail "unknown flag message"
expect_rc 2 "$KILN" tag --root "$S" app
expect_rc 2 "$KILN" save --root "$S" --format zip app

# 6. save: OCI archive (skopeo, umoci) and docker archive (skopeo)
k save --format oci -o "$T/app-oci.tar" app || fail "save oci"
skopeo inspect "oci-archive:$T/app-oci.tar" >"$T/sk.json" 2>"$T/sk.err" || fail "skopeo oci-archive"
[ "$(jq -r .Digest "$T/sk.json")" = "$(jq -r '.[0].digest' "$T/app.json")" ] || fail "oci digest"
mkdir -p "$T/ocidir"
tar -C "$T/ocidir" -xf "$T/app-oci.tar"
umoci unpack --image "$T/ocidir:latest" "$T/bundle" >/dev/null 2>"$T/umoci.err" || fail "umoci"
[ "$(cat "$T/bundle/rootfs/hello")" = hello ] || fail "umoci rootfs"
k save -o "$T/app-docker.tar" app || fail "save docker"
skopeo inspect "docker-archive:$T/app-docker.tar" >"$T/skd.json" 2>"$T/skd.err" ||
    fail "skopeo docker-archive"
# skopeo names docker-archive layers by their diffIDs (it reads them uncompressed)
[ "$(jq -c '.Layers' "$T/skd.json")" = "$(jq -c '.[0].config.rootfs.diff_ids' "$T/app.json")" ] ||
    fail "docker archive layers"
if docker info >/dev/null 2>&1; then
    docker load -i "$T/app-docker.tar" >/dev/null 2>"$T/dl.err" || fail "docker load"
fi

# 7. load: OCI and classic docker archives into a fresh store, then run from them
S2=$T/s2
"$KILN" load --root "$S2" -i "$T/app-oci.tar" >"$T/l1" 2>"$T/l1.err" || fail "load oci"
grep -qx 'Loaded image: docker.io/library/app:latest' "$T/l1" || fail "load output: $(cat "$T/l1")"
[ "$("$KILN" inspect --root "$S2" app | jq -r '.[0].digest')" = \
    "$(jq -r '.[0].digest' "$T/app.json")" ] || fail "loaded digest differs"
mkdir -p "$T/classic"
tar -C "$T/classic" -xf "$T/app-docker.tar"
rm "$T/classic/index.json" "$T/classic/oci-layout"
tar -C "$T/classic" -cf "$T/classic.tar" .
"$KILN" load --root "$T/s3" <"$T/classic.tar" >"$T/l2" 2>"$T/l2.err" || fail "load classic"
grep -qx 'Loaded image: app:latest' "$T/l2" || fail "classic load output: $(cat "$T/l2")"
[ "$("$KILN" run --root "$T/s3" app cat /hello)" = hello ] || fail "run loaded image"
"$KILN" tag --root "$T/s3" app t:1 || fail "tag in s3"
"$KILN" rmi --root "$T/s3" "$SHORT" >"$T/rmi" || fail "rmi by id"
[ "$(wc -l <"$T/rmi")" = 2 ] || fail "rmi by id: $(cat "$T/rmi")"
[ "$("$KILN" images --root "$T/s3" -q)" = "" ] || fail "rmi by id left names"
# a broken archive fails cleanly: nothing named, the store consistent
head -c 100000 "$T/app-oci.tar" >"$T/trunc.tar"
expect_rc 1 "$KILN" load --root "$T/s5" -i "$T/trunc.tar"
python3 - "$T/app-oci.tar" "$T/bad.tar" "$(layers "$T/app.json" | tail -1 | cut -d: -f2)" <<'PY'
import io, sys, tarfile
src, dst, victim = tarfile.open(sys.argv[1]), tarfile.open(sys.argv[2], "w"), sys.argv[3]
for m in src.getmembers():
    f = src.extractfile(m) if m.isfile() else None
    if m.isfile() and m.name.endswith(victim):
        m.size, f = 8, io.BytesIO(b"tampered")
    dst.addfile(m, f)
dst.close()
PY
expect_rc 1 "$KILN" load --root "$T/s5" -i "$T/bad.tar"
grep -q "has digest" "$T/rc.err" || fail "tampered blob message: $(cat "$T/rc.err")"
[ "$("$KILN" images --root "$T/s5" -q)" = "" ] || fail "a failed load named an image"
"$KILN" debug fsck --root "$T/s5" >/dev/null || fail "fsck after failed loads"
expect_rc 1 "$KILN" load --root "$T/s3" -i /dev/null
expect_rc 1 "$KILN" load --root "$T/s3" -i "$T/hello.pb"

# 8. registry: push (read back by skopeo; a second push skips the blobs), pull, run
ADDR=$("$FIX/registry.sh" start "$T/reg") || fail "registry start"
k push app "$ADDR/kiln/app:v1" >"$T/push" || fail "push"
skopeo inspect --tls-verify=false "docker://$ADDR/kiln/app:v1" >"$T/skr.json" 2>"$T/skr.err" ||
    fail "skopeo registry"
[ "$(jq -r .Digest "$T/skr.json")" = "$(jq -r '.[0].digest' "$T/app.json")" ] || fail "pushed digest"
k push app "$ADDR/kiln/app:v1" >/dev/null || fail "second push"
S4=$T/s4
"$KILN" pull --root "$S4" "$ADDR/kiln/app:v1" >"$T/pull" 2>"$T/pull.err" || fail "pull"
grep -q "Digest: $(jq -r '.[0].digest' "$T/app.json")" "$T/pull" || fail "pull output"
[ "$("$KILN" run --root "$S4" "$ADDR/kiln/app:v1" cat /hello)" = hello ] || fail "run pulled image"
expect_rc 1 "$KILN" pull --root "$S4" 127.0.0.1:1/nothing/here:v1
expect_rc 1 "$KILN" push --root "$S" app 127.0.0.1:1/nothing/here:v1
expect_rc 1 "$KILN" pull --root "$S4" "$ADDR/kiln/missing:v1"

# 9. run: output, exit codes, signals, env/user/workdir, entrypoint, cleanup
nsnap=$(ls "$S/snapshots" | wc -l)
[ "$(k run app cat /hello)" = hello ] || fail "run output"
expect_rc 7 "$KILN" run --root "$S" app sh -c 'exit 7'
# stdin: attached with -i (as docker run -i), /dev/null without
[ "$(printf 'a\nb\nc\n' | "$KILN" run -i --root "$S" app wc -l)" = 3 ] || fail "run -i: stdin not attached"
[ "$(printf 'a\nb\n' | "$KILN" run --root "$S" app wc -l)" = 0 ] || fail "run without -i read stdin"
expect_rc 137 "$KILN" run --root "$S" app sh -c 'kill -9 $$'
[ "$(k run --rm -e A=b -w /tmp -u nobody app sh -c 'echo $A $(pwd) $(id -u)')" = "b /tmp 65534" ] ||
    fail "run env/workdir/user"
[ "$(k run --entrypoint /bin/echo app hi there)" = "hi there" ] || fail "run --entrypoint"
[ "$("$KILN" run --root "$T/se" e)" = x ] || fail "run the image's Cmd"
[ "$("$KILN" run --root "$T/se" e sh -c 'echo $A')" = 1 ] || fail "run the image's Env"
expect_rc 1 "$KILN" run --root "$S" app
grep -q 'no Entrypoint or Cmd' "$T/rc.err" || fail "no-command message"
expect_rc 1 "$KILN" run --root "$S" nosuch true
expect_rc 2 "$KILN" run --root "$S" --network bridge app true
[ "$(ls "$S/snapshots" | wc -l)" = "$nsnap" ] || fail "run left snapshots behind"

# 10. FROM a local image: docker-image://app resolves in the local store first
"$KILN" debug make-llb --example hello --base docker-image://app -o "$T/from.pb" || fail "make-llb"
"$DRIVER" export "$S" "$T/from.pb" app2 >/dev/null 2>"$T/from.err" || fail "build FROM app"
k inspect app2 >"$T/app2.json" || fail "inspect app2"
[ "$(layers "$T/app2.json" | head -2)" = "$(layers "$T/app.json")" ] || fail "FROM app layers"
[ "$(layers "$T/app2.json" | wc -l)" = 3 ] || fail "FROM app: want 3 layers"

[ "$("$DRIVER" resolve "$S" app)" = "$(jq -r '.[0].digest' "$T/app.json")" ] ||
    fail "resolve image config: local image first"

# 11. whiteouts, with overlay and with the naive snapshotter (changes rebuilt from a tree diff)
for mode in overlay naive; do
    R=$T/w-$mode
    [ $mode = naive ] && { "$DRIVER" naive "$R" || fail "naive state dir"; }
    "$DRIVER" export "$R" "$T/empty.pb" w --epoch 0 >/dev/null 2>"$T/w.err" || fail "export ($mode)"
    "$KILN" save --root "$R" --format oci -o "$T/w-$mode.tar" w || fail "save ($mode)"
    mkdir -p "$T/wd-$mode"
    tar -C "$T/wd-$mode" -xf "$T/w-$mode.tar"
    umoci unpack --image "$T/wd-$mode:latest" "$T/wb-$mode" >/dev/null 2>"$T/umoci.err" ||
        fail "umoci ($mode)"
    [ "$(cat "$T/wb-$mode/rootfs/y.txt")" = y ] || fail "/y.txt ($mode)"
    [ "$(cat "$T/wb-$mode/rootfs/x.txt")" = x ] || fail "/x.txt ($mode)"
    [ ! -e "$T/wb-$mode/rootfs/etc/group" ] || fail "whiteout of /etc/group ($mode)"
    [ -f "$T/wb-$mode/rootfs/etc/passwd" ] || fail "/etc/passwd ($mode)"
done

# 12. GC: a prune keeps every named image whole; once unnamed, its blobs and snapshots go
if "$KILN" prune --help >/dev/null 2>&1; then
    P=$T/w-overlay
    "$KILN" prune --root "$P" --all -f >/dev/null 2>"$T/prune.err" || fail "prune"
    "$KILN" save --root "$P" -o "$T/p.tar" w || fail "save after prune"
    [ "$("$KILN" run --root "$P" w cat /y.txt)" = y ] || fail "run after prune"
    "$KILN" rmi --root "$P" w >/dev/null || fail "rmi w"
    "$KILN" prune --root "$P" --all -f >/dev/null 2>"$T/prune.err" || fail "prune after rmi"
    [ "$(nblobs "$P")" = 0 ] || fail "prune after rmi left $(nblobs "$P") blobs"
fi

"$KILN" debug fsck --root "$S" >/dev/null || fail "fsck of the main state dir"
echo "PASS"
