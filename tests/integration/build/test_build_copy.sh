#!/bin/bash
# test_build_copy.sh KILN MAKE_BASE_IMAGE: COPY of a directory between snapshots, which kiln does
# by hardlinking the files into the new layer's upper dir: the result must be what a copy through
# overlay gives. Into a new directory, into an existing one (its owner and mode kept, its other
# files kept, overlapping ones replaced), into /, with the source snapshot never changed by later
# steps that write to the copied files, and a plain copy when --chown/--chmod ask for other
# owners or modes.
set -eu # no pipefail: `... | grep -q` closes the pipe early by design
KILN=$1
MKIMG=$2

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (the sandbox)"; exit 77; }

. "$(dirname "$0")/harness.sh"
harness_start copy

mkdir -p "$T/ctx/src/sub" "$T/ctx/other"
echo "from context" >"$T/ctx/src/a.txt"
echo "replaces the image's" >"$T/ctx/src/keep-or-replace.txt"
echo "nested" >"$T/ctx/src/sub/n.txt"
printf '#!/bin/sh\necho run\n' >"$T/ctx/src/run.sh"
chmod 0750 "$T/ctx/src/run.sh"
ln -s a.txt "$T/ctx/src/alias"
echo "root file" >"$T/ctx/other/top.txt"
cat >"$T/ctx/Dockerfile" <<'EOF'
FROM base
RUN mkdir -p /app && echo image > /app/keep-or-replace.txt && echo untouched > /app/mine.txt \
    && chown 1000:1000 /app && chmod 0750 /app
COPY src /app
COPY src /fresh/dir
COPY other /
RUN echo appended >> /fresh/dir/a.txt
COPY --chown=1234:1234 --chmod=0600 src /owned
EOF

kb -o "type=local,dest=$T/out" "$T/ctx" >"$T/b1.log" 2>"$T/b1.err" || fail "build"
O=$T/out
[ "$(cat "$O/app/a.txt")" = "from context" ] || fail "COPY into an existing dir: content"
[ "$(cat "$O/app/keep-or-replace.txt")" = "replaces the image's" ] || fail "overlapping file not replaced"
[ "$(cat "$O/app/mine.txt")" = untouched ] || fail "the existing dir's own file is gone"
[ "$(stat -c '%u:%g %a' "$O/app")" = "1000:1000 750" ] || fail "existing dir: $(stat -c '%u:%g %a' "$O/app")"
[ "$(cat "$O/app/sub/n.txt")" = nested ] || fail "nested file"
[ "$(stat -c '%a' "$O/app/run.sh")" = 750 ] || fail "mode of a copied file"
[ "$(readlink "$O/app/alias")" = a.txt ] || fail "symlink"
[ "$(cat "$O/fresh/dir/a.txt")" = "from context
appended" ] || fail "RUN writing to a copied file"
[ "$(cat "$O/top.txt")" = "root file" ] || fail "COPY into /"
[ -x "$O/bin/busybox" ] || fail "COPY into / hid the image"
[ "$(stat -c '%u:%g %a' "$O/owned/a.txt")" = "1234:1234 600" ] || fail "--chown/--chmod: $(stat -c '%u:%g %a' "$O/owned/a.txt")"

# the image's layers hold the same: the files as the sandbox sees them
kb -t copytest "$T/ctx" >"$T/b1i.log" 2>"$T/b1i.err" || fail "build the image"
out=$("$KILN" run --rm copytest sh -c 'cat /app/a.txt /fresh/dir/a.txt; stat -c "%u %a" /app/run.sh')
[ "$out" = "from context
from context
appended
0 750" ] || fail "in the image: $out"

# the context snapshot was not changed by the RUN that appended to a copied file: a second
# build that copies the same (cached) context sees the original content
cat >"$T/ctx/Dockerfile" <<'EOF'
FROM base
COPY src /again
EOF
kb -o "type=local,dest=$T/out2" "$T/ctx" >"$T/b2.log" 2>"$T/b2.err" || fail "second build"
[ "$(cat "$T/out2/again/a.txt")" = "from context" ] || fail "the source snapshot changed: $(cat "$T/out2/again/a.txt")"
# and the host's context neither
[ "$(cat "$T/ctx/src/a.txt")" = "from context" ] || fail "the host's context changed"
[ "$(stat -c %h "$T/ctx/src/a.txt")" = 1 ] || fail "the host's file was linked"

# an edited context: the new context snapshot links the unchanged files from the previous one
# and copies the rest; removed files are gone, added ones there
echo "edited" >"$T/ctx/src/a.txt"
rm "$T/ctx/src/sub/n.txt"
echo "added" >"$T/ctx/src/new.txt"
kb -o "type=local,dest=$T/out3" "$T/ctx" >"$T/b3.log" 2>"$T/b3.err" || fail "build after edits"
[ "$(cat "$T/out3/again/a.txt")" = edited ] || fail "edited file: $(cat "$T/out3/again/a.txt")"
[ ! -e "$T/out3/again/sub/n.txt" ] || fail "removed file still there"
[ "$(cat "$T/out3/again/new.txt")" = added ] || fail "added file"
[ "$(cat "$T/out3/again/keep-or-replace.txt")" = "replaces the image's" ] || fail "unchanged file"
[ "$(stat -c %a "$T/out3/again/run.sh")" = 750 ] || fail "unchanged file's mode"
chmod 0700 "$T/ctx/src/run.sh" # same content, other mode: not linked
kb -o "type=local,dest=$T/out4" "$T/ctx" >"$T/b4.log" 2>"$T/b4.err" || fail "build after chmod"
[ "$(stat -c %a "$T/out4/again/run.sh")" = 700 ] || fail "a mode change was not seen"

# FROM --platform of another platform of a multi-platform layout: the frontend pins that
# platform's manifest, which is below the layout's top index
mkdir -p "$T/plat"
echo hi >"$T/plat/f"
printf 'FROM --platform=linux/arm64 base\nCOPY f /f\n' >"$T/plat/Dockerfile"
"$KILN" build --progress plain --build-context "base=oci-layout://$T/base/multi:latest" \
    -o "type=oci,dest=$T/plat.tar" "$T/plat" >"$T/plat.log" 2>"$T/plat.err" || fail "FROM --platform=linux/arm64"
tar -xOf "$T/plat.tar" index.json | grep -q manifest || fail "no image in the OCI archive"

echo "PASS"
