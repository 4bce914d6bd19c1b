#!/bin/sh
# export_image_test.sh DRIVER: build an image from the fixture rootfs plus an overlay-style change
# dir (a whiteout and an opaque directory), export it with kiln's exporters (export_driver), and
# check the results with independent tools: skopeo reads the oci and docker archives, umoci
# unpacks the OCI layout and must reproduce the expected files, python3's tarfile inspects the
# change layer, and a second export with the same epoch is byte-identical.
# Needs root (mknod for the whiteout, trusted.* xattrs): exits 77 (skip) otherwise.
set -eu
DRIVER=${1:?usage: export_image_test.sh DRIVER}
FIX=${KILN_SOURCE_DIR:?}/tests/fixtures
PY=/usr/bin/python3

setxattr() { # PATH NAME VALUE (python3, so the attr package is not needed)
    $PY -c 'import os, sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode(), follow_symlinks=False)' "$@"
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
for tool in skopeo umoci tar; do
    command -v $tool >/dev/null || { echo "skip: $tool missing"; exit 77; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/kiln-export-test.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM

"$FIX/make-base-image.sh" "$T/fix" >/dev/null
L=$T/fix/oci
# The fixture's manifest, config and single layer, found through index.json.
eval "$($PY - "$L" <<'PYEOF'
import json, sys
lay = sys.argv[1]
blob = lambda d: "%s/blobs/sha256/%s" % (lay, d.split(":")[1])
ix = json.load(open(lay + "/index.json"))
m = json.load(open(blob(ix["manifests"][0]["digest"])))
print("CONFIG=%s LAYER=%s" % (blob(m["config"]["digest"]), blob(m["layers"][0]["digest"])))
PYEOF
)"

# Base layer as a full tree, unpacked by GNU tar.
mkdir "$T/rootfs" "$T/upper" "$T/work" "$T/work2"
tar -xzf "$LAYER" -C "$T/rootfs" --numeric-owner --same-owner -p
[ -x "$T/rootfs/bin/busybox" ] || fail "fixture rootfs has no /bin/busybox"

# Change layer in overlayfs upper-dir form: /bin/bash deleted (whiteout), /etc replaced by an
# opaque directory holding only hostname, a new file with an xattr and a hardlink.
mkdir -p "$T/upper/bin" "$T/upper/etc" "$T/upper/opt/kiln"
mknod "$T/upper/bin/bash" c 0 0
setxattr "$T/upper/etc" trusted.overlay.opaque y
echo kiln-test >"$T/upper/etc/hostname"
echo added >"$T/upper/opt/kiln/added"
ln "$T/upper/opt/kiln/added" "$T/upper/opt/kiln/hardlink"
setxattr "$T/upper/opt/kiln/added" user.kiln yes

run_driver() { # WORKDIR OUT-PREFIX
    "$DRIVER" --config "$CONFIG" --work "$1" --epoch 1700000000 \
        --layer "full:$T/rootfs" --layer "upper:$T/upper" \
        --name docker.io/library/kiln-export:test --name kiln-export:second \
        --oci-tar "$2.oci.tar" --docker-tar "$2.docker.tar" --oci-dir "$2.layout"
}
run_driver "$T/work" "$T/a" >"$T/digest"
run_driver "$T/work2" "$T/b" >/dev/null
cmp "$T/a.oci.tar" "$T/b.oci.tar" || fail "oci tar not reproducible"
cmp "$T/a.docker.tar" "$T/b.docker.tar" || fail "docker tar not reproducible"

# skopeo reads both archives; the manifest digest is the one kiln computed.
want=$(cat "$T/digest")
got=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$T/a.oci.tar:test")
[ "$got" = "$want" ] || fail "skopeo oci-archive digest $got, expected $want"
n=$(skopeo inspect --format '{{len .Layers}}' "oci-archive:$T/a.oci.tar:test")
[ "$n" = 2 ] || fail "oci-archive has $n layers, expected 2"
skopeo inspect "docker-archive:$T/a.docker.tar" >/dev/null || fail "skopeo docker-archive"
# Both RepoTags select the image (docker media types: a different manifest digest).
for tag in kiln-export:test kiln-export:second; do
    n=$(skopeo inspect --format '{{len .Layers}}' "docker-archive:$T/a.docker.tar:$tag") ||
        fail "docker-archive has no tag $tag"
    [ "$n" = 2 ] || fail "docker-archive has $n layers, expected 2"
done
skopeo inspect --raw "docker-archive:$T/a.docker.tar" | grep -q 'vnd.docker.distribution.manifest.v2' ||
    fail "docker-archive manifest is not docker schema 2"
skopeo inspect --format '{{.Digest}}' "oci:$T/a.layout:second" >/dev/null || fail "oci dir"
# skopeo can copy the docker archive into a fresh OCI layout (reads every blob).
skopeo copy -q "docker-archive:$T/a.docker.tar" "oci:$T/copied:x" || fail "skopeo copy docker-archive"

# zstd layers: OCI media types even in the docker tar (Docker has no zstd layer type).
mkdir "$T/work3"
"$DRIVER" --config "$CONFIG" --work "$T/work3" --epoch 1700000000 --compression zstd \
    --layer "full:$T/rootfs" --layer "upper:$T/upper" --name kiln-export:zstd \
    --oci-tar "$T/z.oci.tar" --docker-tar "$T/z.docker.tar" >/dev/null
skopeo inspect --raw "oci-archive:$T/z.oci.tar:zstd" | grep -q 'vnd.oci.image.layer.v1.tar+zstd' ||
    fail "oci-archive: no zstd layer"
skopeo copy -q "oci-archive:$T/z.oci.tar:zstd" "oci:$T/zcopy:x" || fail "skopeo copy zstd oci-archive"
# skopeo's docker-archive reader rebuilds the manifest from manifest.json, so check index.json.
tar -xOf "$T/z.docker.tar" index.json | grep -q 'vnd.oci.image.manifest.v1+json' ||
    fail "docker tar with zstd layers must keep OCI media types"
skopeo inspect "docker-archive:$T/z.docker.tar:kiln-export:zstd" >/dev/null ||
    fail "skopeo docker-archive (zstd)"

# umoci unpacks the extracted OCI tar; the change layer applied on top of the rootfs.
mkdir "$T/extracted"
tar -xf "$T/a.oci.tar" -C "$T/extracted"
umoci unpack --image "$T/extracted:test" "$T/bundle" >/dev/null || fail "umoci unpack"
R=$T/bundle/rootfs
[ -x "$R/bin/busybox" ] || fail "umoci: /bin/busybox missing"
[ ! -e "$R/bin/bash" ] && [ ! -L "$R/bin/bash" ] || fail "umoci: whiteout did not delete /bin/bash"
[ -L "$R/bin/sh" ] || fail "umoci: /bin/sh symlink lost"
[ "$(cat "$R/etc/hostname")" = kiln-test ] || fail "umoci: /etc/hostname"
[ ! -e "$R/etc/passwd" ] || fail "umoci: opaque /etc did not hide /etc/passwd"
[ "$(cat "$R/opt/kiln/added")" = added ] || fail "umoci: /opt/kiln/added"
[ "$(stat -c %i "$R/opt/kiln/added")" = "$(stat -c %i "$R/opt/kiln/hardlink")" ] ||
    fail "umoci: hardlink not kept"
[ "$(stat -c %a "$R/tmp")" = 1777 ] || fail "umoci: /tmp mode"

# The OCI layout directory writer gives the same image under its second name.
umoci unpack --image "$T/a.layout:second" "$T/bundle2" >/dev/null || fail "umoci unpack (oci dir)"
[ "$(cat "$T/bundle2/rootfs/etc/hostname")" = kiln-test ] || fail "umoci (oci dir): /etc/hostname"
[ "$(skopeo inspect --format '{{.Digest}}' "oci:$T/a.layout:second")" = "$want" ] ||
    fail "oci dir manifest digest differs from the oci tar's"

# The change layer itself, as an independent tar reader sees it.
$PY - "$T/work/layer1" <<'PYEOF' || fail "change layer content"
import sys, tarfile
t = tarfile.open(sys.argv[1])
names = [m.name for m in t.getmembers()]
want = ["bin", "bin/.wh.bash", "etc", "etc/.wh..wh..opq", "etc/hostname", "opt", "opt/kiln",
        "opt/kiln/added", "opt/kiln/hardlink"]
assert names == want, names
m = {x.name: x for x in t.getmembers()}
assert m["opt/kiln/hardlink"].islnk() and m["opt/kiln/hardlink"].linkname == "opt/kiln/added"
assert m["opt/kiln/added"].pax_headers.get("SCHILY.xattr.user.kiln") == "yes"
assert all(x.mtime <= 1700000000 for x in t.getmembers())
assert not any("overlay" in k for x in t.getmembers() for k in x.pax_headers)
PYEOF
echo ok
