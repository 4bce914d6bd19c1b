#!/bin/sh
# registry_client_test.sh BINARY: run kiln's registry client tests (registry_client_test.c)
# against two real docker-registry instances on 127.0.0.1 (one anonymous, one with htpasswd
# basic auth), then check what the client pushed with skopeo, an independent reader.
set -eu
BIN=$1
FIX=${KILN_SOURCE_DIR:?}/tests/fixtures
T=$(mktemp -d "${TMPDIR:-/tmp}/kiln-registry-test.XXXXXX")
cleanup() {
    "$FIX/registry.sh" stop "$T/reg" || true
    "$FIX/registry.sh" stop "$T/areg" || true
    rm -rf "$T"
}
trap cleanup EXIT INT TERM

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

command -v htpasswd >/dev/null || {
    echo "skip: htpasswd missing (apt-get install apache2-utils)"
    exit 77
}
"$FIX/make-base-image.sh" "$T/fx"
reg=$("$FIX/registry.sh" start "$T/reg")
"$FIX/registry.sh" push "$T/reg" "$T/fx/oci:latest" kiln-test/base:latest
"$FIX/registry.sh" push "$T/reg" "$T/fx/multi:latest" kiln-test/multi:latest
areg=$("$FIX/registry.sh" start "$T/areg" kiln:secret)
KILN_REGISTRY_CREDS=kiln:secret "$FIX/registry.sh" push "$T/areg" "$T/fx/oci:latest" \
    kiln-test/base:latest
mkdir -p "$T/dockercfg"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$areg" "$(printf kiln:secret | base64)" \
    >"$T/dockercfg/config.json"

KILN_TEST_FIXTURE=$T/fx KILN_TEST_REG=$reg KILN_TEST_REG_DIR=$T/reg KILN_TEST_AREG=$areg \
    KILN_TEST_DOCKER_CONFIG=$T/dockercfg "$BIN"

want=$(sed -n 's/^base //p' "$T/fx/digests")
for repo in pushed chunked mounted; do
    got=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' \
        "docker://$reg/kiln-test/$repo:v1")
    [ "$got" = "$want" ] || fail "skopeo sees $got for kiln-test/$repo:v1, expected $want"
    skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$reg/kiln-test/$repo:v1" \
        "oci:$T/back-$repo:v1" || fail "skopeo cannot copy kiln-test/$repo:v1 back"
done
echo ok
