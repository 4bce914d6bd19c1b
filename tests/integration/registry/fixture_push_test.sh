#!/bin/sh
# fixture_push_test.sh: the test base image is reproducible, readable by skopeo and umoci, and a
# push to a real registry on 127.0.0.1 keeps its manifest digest.
set -eu
FIX=${KILN_SOURCE_DIR:?}/tests/fixtures
T=$(mktemp -d "${TMPDIR:-/tmp}/kiln-fixture-test.XXXXXX")
trap '"$FIX/registry.sh" stop "$T/reg"; rm -rf "$T"' EXIT INT TERM

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

"$FIX/make-base-image.sh" "$T/a"
"$FIX/make-base-image.sh" "$T/b"
diff -r "$T/a" "$T/b" || fail "fixture is not reproducible"

want=$(sed -n 's/^base //p' "$T/a/digests")
got=$(skopeo inspect --format '{{.Digest}}' "oci:$T/a/oci:latest")
[ "$want" = "$got" ] || fail "oci layout digest $got, expected $want"
umoci unpack --image "$T/a/oci:latest" "$T/bundle" >/dev/null
[ -x "$T/bundle/rootfs/bin/busybox" ] || fail "umoci: /bin/busybox missing"
[ "$(readlink "$T/bundle/rootfs/bin/bash")" = bash-static ] || fail "umoci: /bin/bash link"
[ "$(stat -c %a "$T/bundle/rootfs/tmp")" = 1777 ] || fail "umoci: /tmp mode"
grep -q '^nobody:x:65534:' "$T/bundle/rootfs/etc/passwd" || fail "umoci: nobody in /etc/passwd"
skopeo inspect "docker-archive:$T/a/base.docker.tar" >/dev/null || fail "docker archive unreadable"

addr=$("$FIX/registry.sh" start "$T/reg")
"$FIX/registry.sh" push "$T/reg" "$T/a/oci:latest" kiln-test/base:latest
got=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$addr/kiln-test/base:latest")
[ "$want" = "$got" ] || fail "registry digest $got, expected $want"

# The multi-platform index survives a push unchanged (registry.sh push copies with --all).
"$FIX/registry.sh" push "$T/reg" "$T/a/multi:latest" kiln-test/multi:latest
want=$(sed -n 's/^multi //p' "$T/a/digests")
got=$(skopeo inspect --raw --tls-verify=false "docker://$addr/kiln-test/multi:latest" | sha256sum |
    cut -d' ' -f1)
[ "$want" = "sha256:$got" ] || fail "registry index digest sha256:$got, expected $want"
echo "ok"
