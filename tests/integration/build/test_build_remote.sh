#!/bin/bash
# test_build_remote.sh KILN MAKE_BASE_IMAGE: the network sources end to end, against real servers
# on 127.0.0.1: a git repository served by `git daemon` (git:// URLs) and files served by busybox
# httpd. Covers `ADD <git URL>` (ref, subdir, --keep-git-dir), `ADD <http URL>` (with and without
# --checksum, --chmod), cache keys that follow the commit and the downloaded content, remote build
# contexts (`kiln build git://...#ref:subdir`, a context tarball URL, a Dockerfile URL, and the
# same two on stdin) and the
# errors for a missing ref, a wrong checksum and a 404.
set -eu # no pipefail: `... | grep -q` closes the pipe early by design
KILN=$1
MKIMG=$2

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (the sandbox)"; exit 77; }
for tool in git busybox python3; do
    command -v $tool >/dev/null || { echo "SKIP: $tool missing (scripts/deps.sh installs it)"; exit 77; }
done
[ -x /usr/lib/git-core/git-daemon ] || { echo "SKIP: git-daemon missing (part of Debian's git package)"; exit 77; }

. "$(dirname "$0")/harness.sh"
harness_start remote

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "nothing listens on port $1"
}

# ---- servers ---------------------------------------------------------------------------------
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
mkdir -p "$T/work" "$T/git"
git -C "$T/work" init -q -b main
mkdir -p "$T/work/sub"
echo "v1 top" >"$T/work/top.txt"
echo "v1 sub" >"$T/work/sub/inner.txt"
printf 'FROM base\nCOPY . /ctx\nCMD ["cat", "/ctx/inner.txt"]\n' >"$T/work/sub/Dockerfile"
printf 'FROM base\nCOPY top.txt /top.txt\n' >"$T/work/Dockerfile"
git -C "$T/work" add -A && git -C "$T/work" commit -q -m one && git -C "$T/work" tag v1
git clone -q --bare "$T/work" "$T/git/repo.git"
GPORT=$(free_port)
git daemon --reuseaddr --export-all --base-path="$T/git" --listen=127.0.0.1 --port="$GPORT" \
    "$T/git" >"$T/gitd.log" 2>&1 &
PIDS="$PIDS $!"
wait_port "$GPORT"
GIT="git://127.0.0.1:$GPORT/repo.git"

mkdir -p "$T/www"
echo "payload one" >"$T/www/file.txt"
printf 'FROM base\nRUN echo from-url-dockerfile > /marker\n' >"$T/www/Dockerfile.txt"
mkdir -p "$T/ctxsrc"
printf 'FROM base\nCOPY hello.txt /hello.txt\n' >"$T/ctxsrc/Dockerfile"
echo "hello from a tarball" >"$T/ctxsrc/hello.txt"
tar -C "$T/ctxsrc" -czf "$T/www/ctx.tar.gz" .
HPORT=$(free_port)
busybox httpd -f -p "127.0.0.1:$HPORT" -h "$T/www" &
PIDS="$PIDS $!"
wait_port "$HPORT"
HTTP="http://127.0.0.1:$HPORT"

# ---- ADD <git URL> ---------------------------------------------------------------------------
mkdir -p "$T/gadd"
cat >"$T/gadd/Dockerfile" <<EOF
FROM base
ADD $GIT#v1 /src
ADD $GIT#main:sub /subonly
ADD --keep-git-dir=true $GIT#main /withgit
EOF
kb -o "type=local,dest=$T/gadd.out" "$T/gadd" >"$T/gadd.log" 2>"$T/gadd.err" || fail "ADD git build"
[ "$(cat "$T/gadd.out/src/top.txt")" = "v1 top" ] || fail "ADD git#v1: top.txt"
[ "$(cat "$T/gadd.out/src/sub/inner.txt")" = "v1 sub" ] || fail "ADD git#v1: sub/inner.txt"
[ ! -e "$T/gadd.out/src/.git" ] || fail "ADD git without --keep-git-dir kept .git"
[ "$(cat "$T/gadd.out/subonly/inner.txt")" = "v1 sub" ] || fail "ADD git#main:sub"
[ ! -e "$T/gadd.out/subonly/top.txt" ] || fail "ADD git#main:sub copied the whole tree"
[ -d "$T/gadd.out/withgit/.git" ] || fail "ADD --keep-git-dir=true has no .git"
[ "$(git -C "$T/gadd.out/withgit" rev-parse HEAD)" = "$(git -C "$T/work" rev-parse HEAD)" ] ||
    fail "kept .git is not at the commit"

# unchanged remote: every git source is a cache hit
kb -o "type=local,dest=$T/gadd2.out" "$T/gadd" >"$T/gadd2.log" 2>"$T/gadd2.err" || fail "ADD git rebuild"
grep -q "ADD $GIT#v1 /src" "$T/gadd2.err" || fail "no ADD step in the progress"
[ "$(grep -c 'CACHED' "$T/gadd2.err")" -ge 3 ] || fail "unchanged git sources were not cached"

# moving main: the main-based steps miss and see the new commit, the tag still hits
echo "v2 sub" >"$T/work/sub/inner.txt"
git -C "$T/work" commit -q -am two
git -C "$T/work" push -q "$T/git/repo.git" main
kb -o "type=local,dest=$T/gadd3.out" "$T/gadd" >"$T/gadd3.log" 2>"$T/gadd3.err" || fail "ADD git after a push"
[ "$(cat "$T/gadd3.out/subonly/inner.txt")" = "v2 sub" ] || fail "moved branch not seen"
[ "$(cat "$T/gadd3.out/src/sub/inner.txt")" = "v1 sub" ] || fail "tag v1 moved"

# a ref that does not exist: a clear error naming it
printf 'FROM base\nADD %s#no-such-branch /x\n' "$GIT" >"$T/gadd/Dockerfile"
if kb "$T/gadd" >"$T/gbad.log" 2>"$T/gbad.err"; then fail "missing ref built"; fi
grep -q 'no-such-branch' "$T/gbad.err" || fail "missing ref error does not name the ref"

# ---- ADD <http URL> --------------------------------------------------------------------------
SUM=$(sha256sum "$T/www/file.txt" | cut -d' ' -f1)
mkdir -p "$T/hadd"
cat >"$T/hadd/Dockerfile" <<EOF
FROM base
ADD $HTTP/file.txt /plain/
ADD --checksum=sha256:$SUM --chmod=755 $HTTP/file.txt /pinned.txt
RUN cat /plain/file.txt /pinned.txt > /both && stat -c %a /pinned.txt > /mode
EOF
kb -o "type=local,dest=$T/hadd.out" "$T/hadd" >"$T/hadd.log" 2>"$T/hadd.err" || fail "ADD http build"
[ "$(cat "$T/hadd.out/plain/file.txt")" = "payload one" ] || fail "ADD http: content"
[ "$(cat "$T/hadd.out/mode")" = 755 ] || fail "ADD --chmod on a URL: $(cat "$T/hadd.out/mode")"
[ "$(grep -c 'payload one' "$T/hadd.out/both")" = 2 ] || fail "ADD http: RUN did not see both"
kb -o "type=local,dest=$T/hadd2.out" "$T/hadd" >"$T/hadd2.log" 2>"$T/hadd2.err" || fail "ADD http rebuild"
grep -q 'RUN cat' "$T/hadd2.err" || fail "no RUN step"
grep -A1 'RUN cat' "$T/hadd2.err" | grep -q CACHED || fail "unchanged download was not a cache hit"

# a changed file on the server: the unpinned ADD misses, the pinned one now fails
echo "payload two" >"$T/www/file.txt"
printf 'FROM base\nADD %s/file.txt /plain/\n' "$HTTP" >"$T/hadd/Dockerfile"
kb -o "type=local,dest=$T/hadd3.out" "$T/hadd" >"$T/hadd3.log" 2>"$T/hadd3.err" || fail "ADD http after a change"
[ "$(cat "$T/hadd3.out/plain/file.txt")" = "payload two" ] || fail "changed download not seen"
printf 'FROM base\nADD --checksum=sha256:%s %s/file.txt /pinned.txt\n' "$SUM" "$HTTP" >"$T/hadd/Dockerfile"
if kb --no-cache "$T/hadd" >"$T/hsum.log" 2>"$T/hsum.err"; then fail "wrong checksum built"; fi
grep -q "expected sha256:$SUM" "$T/hsum.err" || fail "checksum error unclear"
printf 'FROM base\nADD %s/missing.txt /m\n' "$HTTP" >"$T/hadd/Dockerfile"
if kb "$T/hadd" >"$T/h404.log" 2>"$T/h404.err"; then fail "404 built"; fi
grep -q 'missing.txt' "$T/h404.err" || fail "404 error does not name the URL"
grep -qi '404\|not found' "$T/h404.err" || fail "404 error does not say not found"

# ---- FROM an image of several layers in a registry, into an empty state dir --------------------
# (the layers download in the background while the earlier ones are applied)
REG=$(dirname "$MKIMG")/registry.sh
ADDR=$("$REG" start "$T/reg") || fail "the test registry did not start"
PIDS="$PIDS $(cat "$T/reg/pid")"
mkdir -p "$T/multi" "$T/child"
printf 'FROM base\nRUN echo one > /one\nRUN echo two > /two\nRUN echo three > /three\n' >"$T/multi/Dockerfile"
kb -t "$ADDR/kiln/multi:1" --push "$T/multi" >"$T/multi.log" 2>"$T/multi.err" || fail "push multi-layer image"
printf 'FROM %s/kiln/multi:1\nRUN cat /one /two /three > /all\n' "$ADDR" >"$T/child/Dockerfile"
KILN_ROOT=$T/state2 kb -o "type=local,dest=$T/child.out" "$T/child" >"$T/child.log" 2>"$T/child.err" ||
    fail "FROM a registry image in a fresh state dir"
[ "$(cat "$T/child.out/all")" = "one
two
three" ] || fail "layers of the registry image: $(cat "$T/child.out/all")"
[ -x "$T/child.out/bin/busybox" ] || fail "the base layer of the registry image is missing"
KILN_ROOT=$T/state2 kb --no-cache -o "type=local,dest=$T/child2.out" "$T/child" >"$T/child2.log" 2>"$T/child2.err" ||
    fail "rebuild FROM the registry image"
[ "$(cat "$T/child2.out/all" | wc -l)" = 3 ] || fail "rebuild FROM the registry image: content"

# ---- remote build contexts -------------------------------------------------------------------
kb -o "type=local,dest=$T/cgit.out" "$GIT#v1:sub" >"$T/cgit.log" 2>"$T/cgit.err" || fail "git context build"
[ "$(cat "$T/cgit.out/ctx/inner.txt")" = "v1 sub" ] || fail "git context #v1:sub content"
[ ! -e "$T/cgit.out/ctx/top.txt" ] || fail "git context subdir leaked the top"
kb -f Dockerfile -o "type=local,dest=$T/cgit2.out" "$GIT" >"$T/cgit2.log" 2>"$T/cgit2.err" ||
    fail "git context at HEAD with -f"
[ "$(cat "$T/cgit2.out/top.txt")" = "v1 top" ] || fail "git context HEAD content"

kb -o "type=local,dest=$T/ctar.out" "$HTTP/ctx.tar.gz" >"$T/ctar.log" 2>"$T/ctar.err" || fail "tarball context build"
[ "$(cat "$T/ctar.out/hello.txt")" = "hello from a tarball" ] || fail "tarball context content"

kb -o "type=local,dest=$T/cdf.out" "$HTTP/Dockerfile.txt" >"$T/cdf.log" 2>"$T/cdf.err" || fail "Dockerfile URL build"
[ "$(cat "$T/cdf.out/marker")" = "from-url-dockerfile" ] || fail "Dockerfile URL content"

# stdin: a context tarball, or a lone Dockerfile
tar -C "$T/ctxsrc" -cf - . | kb -o "type=local,dest=$T/cstdin.out" - >"$T/cstdin.log" 2>"$T/cstdin.err" ||
    fail "stdin tar context build"
[ "$(cat "$T/cstdin.out/hello.txt")" = "hello from a tarball" ] || fail "stdin tar context content"
kb -o "type=local,dest=$T/cstdin2.out" - <"$T/www/Dockerfile.txt" >"$T/cstdin2.log" 2>"$T/cstdin2.err" ||
    fail "stdin Dockerfile build"
[ "$(cat "$T/cstdin2.out/marker")" = "from-url-dockerfile" ] || fail "stdin Dockerfile content"

if kb "$GIT#no-such-ref" >"$T/cbad.log" 2>"$T/cbad.err"; then fail "missing context ref built"; fi
grep -q 'no-such-ref' "$T/cbad.err" || fail "missing context ref error unclear"

echo "PASS"
