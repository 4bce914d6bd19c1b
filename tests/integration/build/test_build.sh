#!/bin/bash
# test_build.sh KILN MAKE_BASE_IMAGE: `kiln build` end to end, as a user runs it: Dockerfiles on
# the fixture base image (given as a named context), the image store and `kiln run`, every output
# type checked with an independent reader (skopeo, umoci, tar), caching seen in the plain
# progress, proxy build args (in RUN's env, not in the image or the cache key), reproducible
# digests with SOURCE_DATE_EPOCH, and the errors a user meets (unknown flag, missing Dockerfile,
# failing RUN) with their exit codes and messages.
set -eu   # no pipefail: `... | grep -q` closes the pipe early by design
KILN=$1
MKIMG=$2
REG=$(dirname "$MKIMG")/registry.sh

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (the sandbox)"; exit 77; }
for tool in skopeo umoci python3; do
    command -v $tool >/dev/null || { echo "SKIP: $tool missing (scripts/deps.sh installs it)"; exit 77; }
done

T=$(mktemp -d /tmp/kiln-build-test.XXXXXX)
cleanup() {
    rc=$?
    set +e
    "$REG" stop "$T/reg" >/dev/null 2>&1 || true
    grep " $T/" /proc/mounts | cut -d' ' -f2 | sort -r | while read -r m; do umount -l "$m"; done
    # the automatic GC a build starts runs in the background for a moment
    for _ in $(seq 50); do rm -rf "$T" 2>/dev/null && break; sleep 0.2; done
    [ ! -e "$T" ] || echo "note: could not remove $T"
    exit $rc
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in "$T"/*.err; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }
    done
    exit 1
}

export KILN_ROOT=$T/state
sh "$MKIMG" "$T/base" >/dev/null
BASE="oci-layout://$T/base/oci:latest"
kb() { "$KILN" build --progress plain --build-context "base=$BASE" "$@"; }

# ---- a single-stage image: store, run, config ------------------------------------------------
mkdir -p "$T/app"
cat >"$T/app/Dockerfile" <<'EOF'
FROM base
ARG WHO=world
ENV GREETING=hello APP_HOME=/srv/app
WORKDIR $APP_HOME
COPY greet.sh ./
COPY data/ data/
RUN chmod 755 greet.sh && echo "built for $WHO" > built.txt && mkdir -p /var/empty-dir
LABEL org.example.kind=test
EXPOSE 8080/tcp
USER 1000:1000
CMD ["./greet.sh"]
EOF
printf '#!/bin/sh\necho "$GREETING from $(id -u) in $(pwd)"\ncat built.txt\n' >"$T/app/greet.sh"
mkdir -p "$T/app/data/sub" "$T/app/ignored"
echo one >"$T/app/data/one.txt"
echo two >"$T/app/data/sub/two.txt"
echo secret >"$T/app/ignored/secret.txt"
printf 'ignored\n' >"$T/app/.dockerignore"

kb -t app --build-arg WHO=tests "$T/app" >"$T/b1.out" 2>"$T/b1.err" || fail "first build"
grep -q '^#[0-9]* \[internal\] load build definition from Dockerfile' "$T/b1.err" ||
    fail "plain progress lacks the load step"
grep -q 'RUN chmod 755 greet.sh' "$T/b1.err" || fail "plain progress lacks the RUN step"
grep -q 'naming to' "$T/b1.err" || fail "no naming step"
"$KILN" images >"$T/images.out" 2>"$T/images.err" || fail "kiln images"
grep -q 'app' "$T/images.out" || fail "app not listed by kiln images"
"$KILN" run --rm app >"$T/run.out" 2>"$T/run.err" || fail "kiln run app"
grep -qx 'hello from 1000 in /srv/app' "$T/run.out" || fail "run output: $(cat "$T/run.out")"
grep -qx 'built for tests' "$T/run.out" || fail "build arg not seen by RUN"

"$KILN" inspect app >"$T/inspect.json" 2>"$T/inspect.err" || fail "kiln inspect"
python3 - "$T/inspect.json" <<'EOF' || fail "image config"
import json, sys
doc = json.load(open(sys.argv[1]))
if isinstance(doc, list):
    doc = doc[0]
cfg = doc["config"] if "config" in doc and "config" in doc["config"] else doc
c = cfg["config"]
env = c["Env"]
assert "GREETING=hello" in env and "APP_HOME=/srv/app" in env, env
assert not any(e.startswith("WHO=") for e in env), "ARG leaked into the config"
assert c["WorkingDir"] == "/srv/app", c
assert c["User"] == "1000:1000", c
assert c["Cmd"] == ["./greet.sh"], c
assert "8080/tcp" in c["ExposedPorts"], c
assert c["Labels"]["org.example.kind"] == "test", c
hist = [h for h in cfg["history"] if not h.get("empty_layer")]
assert len(hist) == len(cfg["rootfs"]["diff_ids"]), (hist, cfg["rootfs"])
EOF

# ---- outputs: local, tar, oci, docker --------------------------------------------------------
kb -o "type=local,dest=$T/local" "$T/app" >/dev/null 2>"$T/local.err" || fail "type=local"
[ -x "$T/local/srv/app/greet.sh" ] || fail "local: greet.sh missing or not executable"
[ "$(cat "$T/local/srv/app/data/sub/two.txt")" = two ] || fail "local: data/sub/two.txt"
[ ! -e "$T/local/srv/app/ignored" ] || fail "local: .dockerignore'd dir was copied"
[ -d "$T/local/var/empty-dir" ] || fail "local: RUN's directory missing"
[ "$(stat -c %u "$T/local/srv/app/greet.sh")" = 0 ] || fail "local: COPY owner not 0"

kb -o "type=tar,dest=$T/files.tar" "$T/app" >/dev/null 2>"$T/tar.err" || fail "type=tar"
tar -tf "$T/files.tar" | grep -qx 'srv/app/built.txt' || fail "tar lacks srv/app/built.txt"

kb -t app:oci -o "type=oci,dest=$T/app.oci.tar" "$T/app" >/dev/null 2>"$T/oci.err" ||
    fail "type=oci"
skopeo inspect "oci-archive:$T/app.oci.tar" >"$T/skopeo-oci.json" 2>"$T/skopeo-oci.err" ||
    fail "skopeo rejects the OCI archive"
mkdir -p "$T/umoci" && tar -xf "$T/app.oci.tar" -C "$T/umoci"
umoci unpack --image "$T/umoci:oci" "$T/bundle" >/dev/null 2>"$T/umoci.err" ||
    umoci unpack --image "$T/umoci" "$T/bundle" >/dev/null 2>>"$T/umoci.err" ||
    fail "umoci cannot unpack the OCI archive"
[ "$(cat "$T/bundle/rootfs/srv/app/built.txt")" = "built for world" ] || fail "umoci rootfs"

kb -t app:docker -o "type=docker,dest=$T/app.docker.tar" "$T/app" >/dev/null \
    2>"$T/docker.err" || fail "type=docker"
skopeo inspect "docker-archive:$T/app.docker.tar" >/dev/null 2>"$T/skopeo-docker.err" ||
    fail "skopeo rejects the docker archive"

# ---- caching: an unchanged rebuild runs nothing; a changed file re-runs from its COPY ---------
kb -t app --iidfile "$T/b2a.iid" "$T/app" >/dev/null 2>"$T/b2a.err" || fail "rebuild"
sleep 1 # a later second: a time taken from the clock would now differ
kb -t app --iidfile "$T/b2.iid" "$T/app" >/dev/null 2>"$T/b2.err" || fail "rebuild"
grep -A2 'RUN chmod 755' "$T/b2.err" | grep -q CACHED || fail "unchanged rebuild re-ran the RUN"
# as BuildKit: the times come from the layers, so an unchanged rebuild is the same image
[ "$(cat "$T/b2a.iid")" = "$(cat "$T/b2.iid")" ] ||
    fail "unchanged rebuild changed the image: $(cat "$T/b2a.iid") vs $(cat "$T/b2.iid")"
echo "changed" >"$T/app/ignored/secret.txt"
kb -t app "$T/app" >/dev/null 2>"$T/b3.err" || fail "rebuild after ignored change"
grep -A2 'RUN chmod 755' "$T/b3.err" | grep -q CACHED || fail "an ignored file invalidated the RUN"
echo three >"$T/app/data/one.txt"
kb -t app "$T/app" >/dev/null 2>"$T/b4.err" || fail "rebuild after change"
grep -A2 'RUN chmod 755' "$T/b4.err" | grep -q CACHED && fail "a changed COPY source did not re-run the RUN"

# ---- proxy build args: no ARG needed, seen by RUN in both cases (an ENV of the step wins), not in
# the image, and another proxy keeps the RUN cached -------------------------------------------------
mkdir -p "$T/proxy"
cat >"$T/proxy/Dockerfile" <<'EOF'
FROM base
ENV no_proxy=from-env
RUN env | grep -i '_proxy=' | sort > /proxy.txt
EOF
kb -t proxy --build-arg HTTP_PROXY=http://p1:3128 --build-arg NO_PROXY=.example \
    -o "type=local,dest=$T/proxy1" "$T/proxy" >/dev/null 2>"$T/px1.err" || fail "proxy build"
printf 'HTTP_PROXY=http://p1:3128\nNO_PROXY=.example\nhttp_proxy=http://p1:3128\nno_proxy=from-env\n' \
    >"$T/proxy.want"
cmp -s "$T/proxy1/proxy.txt" "$T/proxy.want" || fail "RUN proxy env: $(cat "$T/proxy1/proxy.txt")"
kb -t proxy --build-arg HTTP_PROXY=http://p2:3128 --build-arg NO_PROXY=.example \
    -o "type=local,dest=$T/proxy2" "$T/proxy" >/dev/null 2>"$T/px2.err" || fail "proxy rebuild"
grep -A2 'RUN env | grep' "$T/px2.err" | grep -q CACHED || fail "a changed proxy re-ran the RUN"
cmp -s "$T/proxy2/proxy.txt" "$T/proxy.want" || fail "cached proxy result differs"
kb -t proxy --build-arg HTTP_PROXY=http://p2:3128 "$T/proxy" >/dev/null 2>"$T/px3.err" ||
    fail "proxy build to the store"
"$KILN" inspect proxy >"$T/proxy-inspect.json" 2>"$T/proxy-inspect.err" || fail "kiln inspect proxy"
grep -qi 'http_proxy\|p2:3128' "$T/proxy-inspect.json" && fail "a proxy build arg reached the image"

# ---- reproducible: SOURCE_DATE_EPOCH twice, no cache -> identical manifests -------------------
SOURCE_DATE_EPOCH=1700000000 kb --no-cache --metadata-file "$T/m1.json" -t repro \
    "$T/app" >/dev/null 2>"$T/r1.err" || fail "repro build 1"
sleep 1
SOURCE_DATE_EPOCH=1700000000 kb --no-cache --metadata-file "$T/m2.json" -t repro \
    "$T/app" >/dev/null 2>"$T/r2.err" || fail "repro build 2"
d1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$T/m1.json")
d2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerimage.digest"])' "$T/m2.json")
[ -n "$d1" ] && [ "$d1" = "$d2" ] || fail "SOURCE_DATE_EPOCH builds differ: $d1 vs $d2"

# ---- multi-stage, --target, --iidfile ----------------------------------------------------------
mkdir -p "$T/ms"
cat >"$T/ms/Dockerfile" <<'EOF'
FROM base AS build
RUN mkdir /out && echo compiled > /out/prog

FROM base AS unused
RUN exit 1

FROM base
COPY --from=build /out/prog /usr/local/bin/prog
CMD ["cat", "/usr/local/bin/prog"]
EOF
kb -t ms --iidfile "$T/ms.iid" "$T/ms" >/dev/null 2>"$T/ms.err" || fail "multi-stage build"
grep -q '^sha256:' "$T/ms.iid" || fail "--iidfile content: $(cat "$T/ms.iid")"
[ "$("$KILN" run --rm ms 2>"$T/msrun.err")" = compiled ] || fail "multi-stage run"
kb -o "type=local,dest=$T/ms-build" --target build "$T/ms" >/dev/null 2>"$T/mst.err" ||
    fail "--target build"
[ -f "$T/ms-build/out/prog" ] && [ ! -e "$T/ms-build/usr/local/bin/prog" ] || fail "--target tree"

# ---- rawjson progress: one JSON object per line ------------------------------------------------
"$KILN" build --progress rawjson --build-context "base=$BASE" "$T/ms" >/dev/null \
    2>"$T/raw.err" || fail "rawjson build"
python3 - "$T/raw.err" <<'EOF' || fail "rawjson output is not JSON lines"
import json, sys
n = 0
for line in open(sys.argv[1]):
    if line.startswith("WARNING"):
        continue
    ev = json.loads(line)
    assert set(ev) <= {"vertexes", "logs", "statuses"}, ev
    n += 1
assert n > 3, n
EOF

# ---- eight builds at once on one state dir, sharing a stage, each rebuilding it (--no-cache),
# each with its automatic GC at the end: all succeed and the store stays consistent ----------------
for i in 1 2 3 4 5 6 7 8; do
    mkdir -p "$T/conc/b$i"
    printf 'FROM base AS shared\nRUN echo shared > /shared && sleep 0.2\nFROM shared\nRUN echo build %d > /b%d\nCMD ["cat", "/b%d"]\n' \
        $i $i $i >"$T/conc/b$i/Dockerfile"
done
pids=""
for i in 1 2 3 4 5 6 7 8; do
    kb --no-cache -t "conc$i" "$T/conc/b$i" >/dev/null 2>"$T/conc$i.err" &
    pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "a concurrent build failed"; done
for i in 1 2 3 4 5 6 7 8; do
    [ "$("$KILN" run --rm "conc$i" 2>/dev/null)" = "build $i" ] || fail "concurrent build $i: wrong image"
done
"$KILN" debug fsck --root "$KILN_ROOT" >"$T/fsck.out" 2>&1 || fail "fsck after concurrent builds: $(cat "$T/fsck.out")"

# ---- Ctrl-C (SIGTERM here: a background job of a script ignores SIGINT): the running step is
# killed, kiln exits 130 promptly, nothing is left running -----------------------------------------
mkdir -p "$T/slow"
printf 'FROM base\nRUN echo started && sleep 60\n' >"$T/slow/Dockerfile"
"$KILN" build --progress plain --build-context "base=$BASE" "$T/slow" >/dev/null 2>"$T/slow.err" &
pid=$!
for _ in $(seq 100); do grep -q started "$T/slow.err" && break; sleep 0.1; done
t0=$(date +%s)
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ $rc = 130 ] || fail "Ctrl-C: exit $rc, want 130"
[ $(( $(date +%s) - t0 )) -le 5 ] || fail "Ctrl-C took more than 5 s"
grep -q 'canceling the build' "$T/slow.err" || fail "Ctrl-C: no message"
pgrep -f 'sleep 60' >/dev/null && fail "Ctrl-C left the step running"

# ---- errors: exit codes and messages -----------------------------------------------------------
set +e
"$KILN" build --no-such-flag "$T/app" >/dev/null 2>"$T/e1.err"; rc=$?
set -e
[ $rc = 2 ] || fail "unknown flag: exit $rc, want 2"
grep -q 'no-such-flag' "$T/e1.err" || fail "unknown flag not named"

mkdir -p "$T/empty"
set +e
kb "$T/empty" >/dev/null 2>"$T/e2.err"; rc=$?
set -e
[ $rc = 1 ] || fail "missing Dockerfile: exit $rc, want 1"
grep -q 'failed to read dockerfile' "$T/e2.err" || fail "missing Dockerfile message"

mkdir -p "$T/bad"
printf 'FROM base\nRUN echo step-one-ok\nRUN echo about to fail && exit 3\nRUN echo never\n' >"$T/bad/Dockerfile"
set +e
kb -t bad "$T/bad" >/dev/null 2>"$T/e3.err"; rc=$?
set -e
[ $rc = 1 ] || fail "failing RUN: exit $rc, want 1"
grep -q 'about to fail' "$T/e3.err" || fail "failing RUN: output not shown"
grep -q '>>> RUN echo about to fail && exit 3' "$T/e3.err" || fail "failing RUN: Dockerfile line not shown"
grep -q 'Dockerfile:3' "$T/e3.err" || fail "failing RUN: line number not shown"
grep -q 'exit code: 3' "$T/e3.err" || fail "failing RUN: exit code not shown"
"$KILN" images >"$T/images2.out" 2>/dev/null
grep -q '^[^ ]*bad ' "$T/images2.out" && fail "a failed build created an image"
# the step that succeeded is cached
kb --progress plain -t bad "$T/bad" >/dev/null 2>"$T/e4.err" || true
grep -A2 'RUN echo step-one-ok' "$T/e4.err" | grep -q CACHED || fail "successful step before a failure not cached"

printf 'FROM base\nRUNN echo typo\n' >"$T/bad/Dockerfile"
set +e
kb "$T/bad" >/dev/null 2>"$T/e5.err"; rc=$?
set -e
[ $rc = 1 ] || fail "unknown instruction: exit $rc, want 1"
grep -qi 'unknown instruction' "$T/e5.err" || fail "unknown instruction message"

# ---- push to a real registry on 127.0.0.1 ------------------------------------------------------
if "$REG" start "$T/reg" >/dev/null 2>"$T/reg.err"; then
    addr=$("$REG" addr "$T/reg")
    kb --push -t "$addr/kiln/app:1" "$T/app" >/dev/null 2>"$T/push.err" || fail "--push"
    skopeo inspect --tls-verify=false "docker://$addr/kiln/app:1" >"$T/pushed.json" \
        2>"$T/skopeo-push.err" || fail "skopeo cannot read the pushed image"
else
    echo "FAIL: the test registry did not start" >&2
    cat "$T/reg.err" >&2
    exit 1
fi
echo "ok"
