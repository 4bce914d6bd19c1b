/*
 * test_oci.c: unit tests of the oci module's formats: references, platforms, media types and
 * digests, descriptors, manifests, indexes, image configs, WWW-Authenticate challenges and the
 * docker config credential lookup (with a fake credential helper). No network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/digest.h"
#include "base/fs.h"
#include "oci/oci.h"
#include "oci/registry.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

/* ---- references ------------------------------------------------------------------------------ */

static void
check_ref(const char *in, const char *domain, const char *path, const char *tag, const char *digest,
          const char *full)
{
    kiln_oci_ref r;
    kiln_error *err = NULL;
    char *s;

    assert_int_equal(kiln_oci_ref_parse(&r, in, &err), 0);
    assert_null(err);
    assert_string_equal(r.domain, domain);
    assert_string_equal(r.path, path);
    if (tag)
        assert_string_equal(r.tag, tag);
    else
        assert_null(r.tag);
    if (digest)
        assert_string_equal(r.digest, digest);
    else
        assert_null(r.digest);
    s = kiln_oci_ref_string(&r);
    assert_string_equal(s, full);
    free(s);
    kiln_oci_ref_dispose(&r);
}

static void
test_oci_ref__normalize(void **state)
{
    (void)state;
    check_ref("busybox", "docker.io", "library/busybox", "latest", NULL,
              "docker.io/library/busybox:latest");
    check_ref("user/app:1.0", "docker.io", "user/app", "1.0", NULL, "docker.io/user/app:1.0");
    check_ref("index.docker.io/alpine", "docker.io", "library/alpine", "latest", NULL,
              "docker.io/library/alpine:latest");
    check_ref("localhost/foo", "localhost", "foo", "latest", NULL, "localhost/foo:latest");
    check_ref("127.0.0.1:5000/kiln-test/base:v1.2_x", "127.0.0.1:5000", "kiln-test/base", "v1.2_x",
              NULL, "127.0.0.1:5000/kiln-test/base:v1.2_x");
    check_ref("host:5000/a/b@sha256:" HEX_A, "host:5000", "a/b", NULL, "sha256:" HEX_A,
              "host:5000/a/b@sha256:" HEX_A);
    check_ref("ghcr.io/o/r:t@sha256:" HEX_B, "ghcr.io", "o/r", "t", "sha256:" HEX_B,
              "ghcr.io/o/r:t@sha256:" HEX_B);
    check_ref("[::1]:5000/x__y-z.w", "[::1]:5000", "x__y-z.w", "latest", NULL,
              "[::1]:5000/x__y-z.w:latest");
    check_ref("Registry.Example.com/app", "Registry.Example.com", "app", "latest", NULL,
              "Registry.Example.com/app:latest");
}

static void
check_bad_ref(const char *in, const char *needle)
{
    kiln_oci_ref r;
    kiln_error *err = NULL;

    assert_int_equal(kiln_oci_ref_parse(&r, in, &err), KILN_EINVAL);
    assert_non_null(err);
    if (!strstr(err->msg, needle))
        fail_msg("error for `%s` is `%s`, wanted `%s`", in, err->msg, needle);
    assert_null(r.domain);
    kiln_error_free(&err);
}

static void
test_oci_ref__invalid(void **state)
{
    (void)state;
    check_bad_ref("", "empty");
    check_bad_ref("Busybox", "must be lowercase");
    check_bad_ref("busybox:", "invalid tag");
    check_bad_ref("busybox:-x", "invalid tag");
    check_bad_ref("a//b", "invalid repository name");
    check_bad_ref("a/b_", "invalid repository name");
    check_bad_ref("a/b___c", "invalid repository name");
    check_bad_ref("busybox@sha256:abc", "invalid digest");
    check_bad_ref("busybox@sha256:" HEX_A "A", "invalid digest");
    check_bad_ref(HEX_A, "64-byte hexadecimal");
    check_bad_ref("host:port/x", "invalid domain");
    check_bad_ref("-host.io/x", "invalid domain");
    check_bad_ref("docker.io/library/", "invalid repository name");
}

/* ---- platforms ---------------------------------------------------------------------------------
 */

static void
test_oci_platform__parse_match(void **state)
{
    kiln_oci_platform p, q, host;
    kiln_error *err = NULL;
    char *s;

    (void)state;
    assert_int_equal(kiln_oci_platform_parse(&p, "linux/aarch64", &err), 0);
    s = kiln_oci_platform_string(&p);
    assert_string_equal(s, "linux/arm64/v8");
    free(s);
    assert_int_equal(kiln_oci_platform_parse(&q, "Linux/ARM64", &err), 0);
    assert_true(kiln_oci_platform_match(&p, &q));
    kiln_oci_platform_dispose(&q);
    assert_int_equal(kiln_oci_platform_parse(&q, "linux/armhf", &err), 0);
    s = kiln_oci_platform_string(&q);
    assert_string_equal(s, "linux/arm/v7");
    free(s);
    assert_false(kiln_oci_platform_match(&p, &q));
    kiln_oci_platform_dispose(&p);
    /* arm/v7 runs arm/v6 images but not arm/v8 */
    assert_int_equal(kiln_oci_platform_parse(&p, "linux/arm/v6", &err), 0);
    assert_true(kiln_oci_platform_match(&q, &p));
    assert_false(kiln_oci_platform_match(&p, &q));
    kiln_oci_platform_dispose(&p);
    kiln_oci_platform_dispose(&q);
    assert_int_equal(kiln_oci_platform_parse(&p, "linux", &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "`linux`"));
    kiln_error_free(&err);
    assert_int_equal(kiln_oci_platform_parse(&p, "linux/amd64/v2/x", &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(kiln_oci_platform_parse(&p, "linux/am d64", &err), KILN_EINVAL);
    kiln_error_free(&err);
    kiln_oci_platform_host(&host);
    assert_string_equal(host.os, "linux");
    assert_non_null(host.architecture);
    assert_null(strchr(host.architecture, '_')); /* x86_64 became amd64 */
    kiln_oci_platform_dispose(&host);
}

/* ---- media types and digests ------------------------------------------------------------------
 */

static void
test_oci_media__types(void **state)
{
    kiln_oci_compression c;
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(kiln_oci_media_kind(KILN_DOCKER_MT_LIST), KILN_OCI_KIND_INDEX);
    assert_int_equal(kiln_oci_media_kind(KILN_OCI_MT_MANIFEST "; charset=utf-8"),
                     KILN_OCI_KIND_MANIFEST);
    assert_int_equal(kiln_oci_media_kind(KILN_DOCKER_MT_CONFIG), KILN_OCI_KIND_CONFIG);
    assert_int_equal(kiln_oci_media_kind("application/x-foo"), KILN_OCI_KIND_UNKNOWN);
    assert_int_equal(kiln_oci_media_kind(NULL), KILN_OCI_KIND_UNKNOWN);
    assert_int_equal(kiln_oci_layer_compression(&c, KILN_OCI_MT_LAYER_ZSTD, &err), 0);
    assert_int_equal(c, KILN_OCI_COMP_ZSTD);
    assert_int_equal(kiln_oci_layer_compression(&c, KILN_DOCKER_MT_LAYER_GZIP, &err), 0);
    assert_int_equal(c, KILN_OCI_COMP_GZIP);
    assert_int_equal(kiln_oci_layer_compression(&c, KILN_OCI_MT_LAYER_ND_TAR, &err), 0);
    assert_int_equal(c, KILN_OCI_COMP_NONE);
    assert_true(kiln_oci_layer_nondistributable(KILN_DOCKER_MT_LAYER_FOREIGN));
    assert_false(kiln_oci_layer_nondistributable(KILN_OCI_MT_LAYER_GZIP));
    assert_int_equal(kiln_oci_layer_compression(&c, KILN_OCI_MT_CONFIG, &err), KILN_EUNSUPPORTED);
    kiln_error_free(&err);
    assert_true(kiln_oci_media_type_valid("application/vnd.oci.image.manifest.v1+json"));
    assert_false(kiln_oci_media_type_valid("application"));
    assert_false(kiln_oci_media_type_valid("application/"));
    assert_false(kiln_oci_media_type_valid("a/b c"));
    assert_true(kiln_oci_digest_valid("sha256:" HEX_A));
    assert_false(kiln_oci_digest_valid("sha256:" HEX_A "a"));
    assert_false(
            kiln_oci_digest_valid("sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                  "AAAAAAAA"));
    assert_true(kiln_oci_digest_valid("sha512:" HEX_A HEX_B));
    assert_true(kiln_oci_digest_valid(
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"));
    assert_false(kiln_oci_digest_valid("sha256+:abc"));
    assert_false(kiln_oci_digest_valid(":abc"));
    assert_false(kiln_oci_digest_valid("sha256:"));
}

/* ---- manifests and indexes ---------------------------------------------------------------------
 */

static const char oci_manifest[] =
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
        "\"sha256:" HEX_A "\",\"size\":7023},\"layers\":[{\"mediaType\":"
        "\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:" HEX_B
        "\",\"size\":32654,\"annotations\":{\"k\":\"v\"}},{\"mediaType\":"
        "\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"sha256:" HEX_C
        "\",\"size\":16724,\"urls\":[\"https://example.com/x\"]}],\"annotations\":{\"a\":\"b\"},"
        "\"unknownField\":[1,2]}";

/* an artifact manifest with the empty config embedded (image-spec's example) */
static const char empty_data_manifest[] =
        "{\"schemaVersion\":2,\"artifactType\":\"application/x-kiln\",\"config\":{\"mediaType\":"
        "\"application/vnd.oci.empty.v1+json\",\"digest\":\"sha256:"
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\",\"size\":2,\"data\":"
        "\"e30=\"},\"layers\":[]}";

static void
test_oci_manifest__parse(void **state)
{
    kiln_oci_manifest m, m2;
    kiln_error *err = NULL;
    size_t len;
    char *json;

    (void)state;
    assert_int_equal(kiln_oci_manifest_parse(&m, oci_manifest, strlen(oci_manifest),
                                             KILN_OCI_MT_MANIFEST, &err),
                     0);
    assert_string_equal(m.media_type, KILN_OCI_MT_MANIFEST);
    assert_string_equal(m.config.digest, "sha256:" HEX_A);
    assert_int_equal(m.config.size, 7023);
    assert_int_equal(m.n_layers, 2);
    assert_string_equal(m.layers[1].media_type, KILN_OCI_MT_LAYER_ZSTD);
    assert_string_equal(kiln_vec_get(&m.layers[1].urls, 0), "https://example.com/x");
    assert_string_equal(json_string_value(json_object_get(m.layers[0].annotations, "k")), "v");
    assert_int_equal(kiln_oci_manifest_parse(&m2, empty_data_manifest, strlen(empty_data_manifest),
                                             NULL, &err),
                     0);
    assert_non_null(m2.config.data);
    kiln_oci_manifest_dispose(&m2);
    /* canonical round trip */
    json = kiln_oci_manifest_to_json(&m, &len);
    assert_int_equal(kiln_oci_manifest_parse(&m2, json, len, NULL, &err), 0);
    assert_int_equal(m2.n_layers, 2);
    assert_string_equal(m2.layers[0].digest, "sha256:" HEX_B);
    assert_null(strstr(json, "unknownField"));
    assert_non_null(strstr(json, "\"schemaVersion\":2"));
    free(json);
    kiln_oci_manifest_dispose(&m2);
    kiln_oci_manifest_dispose(&m);
    assert_int_equal(kiln_oci_document_kind(oci_manifest, strlen(oci_manifest), NULL),
                     KILN_OCI_KIND_MANIFEST);
}

static void
check_bad_manifest(const char *doc, const char *mt, int code, const char *needle)
{
    kiln_oci_manifest m;
    kiln_error *err = NULL;

    assert_int_equal(kiln_oci_manifest_parse(&m, doc, strlen(doc), mt, &err), code);
    if (!strstr(err->msg, needle))
        fail_msg("error `%s`, wanted `%s`", err->msg, needle);
    assert_null(m.media_type);
    kiln_error_free(&err);
}

static void
test_oci_manifest__invalid(void **state)
{
    char *big;

    (void)state;
    check_bad_manifest(oci_manifest, KILN_OCI_MT_INDEX, KILN_EPARSE, "does not match");
    check_bad_manifest("{\"schemaVersion\":1,\"fsLayers\":[]}", KILN_DOCKER_MT_SCHEMA1,
                       KILN_EUNSUPPORTED, "schema 1");
    check_bad_manifest("{\"schemaVersion\":3}", NULL, KILN_EPARSE, "schemaVersion");
    check_bad_manifest("{\"schemaVersion\":2,\"layers\":[]}", NULL, KILN_EPARSE, "config");
    check_bad_manifest("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":"
                       "\"sha256:" HEX_A "\",\"size\":-1},\"layers\":[]}",
                       NULL, KILN_EPARSE, "size");
    check_bad_manifest("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":"
                       "\"sha256:" HEX_A "\",\"size\":1},\"layers\":[{\"mediaType\":\"a/b\","
                       "\"digest\":\"md5:\",\"size\":1}]}",
                       NULL, KILN_EPARSE, "layers[0]");
    /* embedded data: "e30=" is "{}" (2 bytes, the empty descriptor's digest) */
    check_bad_manifest("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":"
                       "\"sha256:" HEX_A "\",\"size\":2,\"data\":\"e30=\"},\"layers\":[]}",
                       NULL, KILN_EDIGEST, "expected sha256:" HEX_A);
    check_bad_manifest("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":"
                       "\"sha256:" HEX_A "\",\"size\":3,\"data\":\"e30=\"},\"layers\":[]}",
                       NULL, KILN_EDIGEST, "2 bytes");
    check_bad_manifest("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":"
                       "\"sha256:" HEX_A "\",\"size\":2,\"data\":\"e3 =\"},\"layers\":[]}",
                       NULL, KILN_EPARSE, "base64");
    check_bad_manifest("[1]", NULL, KILN_EPARSE, "not a JSON object");
    check_bad_manifest("{\"schemaVersion\":2,", NULL, KILN_EPARSE, "manifest");
    big = xmalloc(KILN_OCI_MANIFEST_MAX + 2);
    memset(big, ' ', KILN_OCI_MANIFEST_MAX + 1);
    big[KILN_OCI_MANIFEST_MAX + 1] = '\0';
    check_bad_manifest(big, NULL, KILN_EINVAL, "manifest");
    free(big);
}

static const char docker_list[] =
        "{\"schemaVersion\":2,\"mediaType\":"
        "\"application/vnd.docker.distribution.manifest.list.v2+json\",\"manifests\":["
        "{\"mediaType\":\"application/vnd.in-toto+json\",\"digest\":\"sha256:" HEX_C
        "\",\"size\":1,\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"}},"
        "{\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"digest\":"
        "\"sha256:" HEX_A "\",\"size\":528,\"platform\":{\"architecture\":\"amd64\",\"os\":"
        "\"linux\"}},{\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
        "\"digest\":\"sha256:" HEX_B "\",\"size\":528,\"platform\":{\"architecture\":\"arm64\","
        "\"os\":\"linux\",\"variant\":\"v8\",\"features\":[\"sse4\"]}}]}";

static void
test_oci_index__select(void **state)
{
    kiln_oci_index ix;
    const kiln_oci_descriptor *d = NULL;
    kiln_oci_platform p;
    kiln_error *err = NULL;
    size_t len;
    char *json;

    (void)state;
    assert_int_equal(kiln_oci_index_parse(&ix, docker_list, strlen(docker_list), NULL, &err), 0);
    assert_int_equal(ix.n_manifests, 3);
    assert_string_equal(ix.media_type, KILN_DOCKER_MT_LIST);
    assert_int_equal(kiln_oci_document_kind(docker_list, strlen(docker_list), "text/plain"),
                     KILN_OCI_KIND_INDEX);
    assert_int_equal(kiln_oci_platform_parse(&p, "linux/arm64", &err), 0);
    assert_int_equal(kiln_oci_index_select(&d, &ix, &p, &err), 0);
    assert_string_equal(d->digest, "sha256:" HEX_B);
    kiln_oci_platform_dispose(&p);
    assert_int_equal(kiln_oci_platform_parse(&p, "linux/x86_64", &err), 0);
    assert_int_equal(kiln_oci_index_select(&d, &ix, &p, &err), 0);
    assert_string_equal(d->digest, "sha256:" HEX_A);
    kiln_oci_platform_dispose(&p);
    assert_int_equal(kiln_oci_platform_parse(&p, "linux/s390x", &err), 0);
    assert_int_equal(kiln_oci_index_select(&d, &ix, &p, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err->msg, "linux/s390x"));
    assert_non_null(strstr(err->msg, "linux/amd64, linux/arm64/v8"));
    kiln_error_free(&err);
    kiln_oci_platform_dispose(&p);
    json = kiln_oci_index_to_json(&ix, &len);
    assert_non_null(strstr(json, "\"features\":[\"sse4\"]"));
    free(json);
    kiln_oci_index_dispose(&ix);
}

/* ---- image config ------------------------------------------------------------------------------
 */

static const char config_doc[] =
        "{\"created\":\"2024-01-02T03:04:05Z\",\"author\":\"me\",\"architecture\":\"arm64\","
        "\"variant\":\"v8\",\"os\":\"linux\",\"config\":{\"User\":\"1000:1000\",\"ExposedPorts\":"
        "{\"8080/tcp\":{},\"53/udp\":{}},\"Env\":[\"PATH=/bin\",\"A=b\"],\"Entrypoint\":[],"
        "\"Cmd\":[\"/bin/sh\",\"-c\",\"echo\"],\"Volumes\":{\"/data\":{}},\"WorkingDir\":\"/w\","
        "\"Labels\":{\"l\":\"v\"},\"StopSignal\":\"SIGTERM\",\"ArgsEscaped\":true,"
        "\"Healthcheck\":{\"Test\":[\"CMD-SHELL\",\"true\"],\"Interval\":30000000000,"
        "\"Timeout\":5000000000,\"StartPeriod\":1,\"StartInterval\":2,\"Retries\":3},"
        "\"OnBuild\":[\"RUN x\"],\"Shell\":[\"/bin/bash\",\"-c\"]},\"rootfs\":{\"type\":"
        "\"layers\",\"diff_ids\":[\"sha256:" HEX_A "\",\"sha256:" HEX_B "\"]},\"history\":["
        "{\"created\":\"2024-01-02T03:04:05Z\",\"created_by\":\"ADD x\",\"comment\":\"c\"},"
        "{\"created_by\":\"ENV A=b\",\"empty_layer\":true},{\"created_by\":\"RUN y\"}],"
        "\"moby.buildkit.cache.v0\":\"e30=\"}";

static void
test_oci_config__roundtrip(void **state)
{
    kiln_oci_config c, c2;
    kiln_error *err = NULL;
    char *json, *json2;
    size_t len, len2;

    (void)state;
    assert_int_equal(kiln_oci_config_parse(&c, config_doc, strlen(config_doc), &err), 0);
    assert_string_equal(c.platform.architecture, "arm64");
    assert_string_equal(c.platform.variant, "v8");
    assert_string_equal(c.user, "1000:1000");
    assert_int_equal(c.exposed_ports.len, 2);
    assert_string_equal(kiln_vec_get(&c.exposed_ports, 0), "53/udp");
    assert_true(c.has_entrypoint);
    assert_int_equal(c.entrypoint.len, 0);
    assert_true(c.has_cmd);
    assert_int_equal(c.cmd.len, 3);
    assert_string_equal(kiln_vec_get(&c.volumes, 0), "/data");
    assert_string_equal(c.working_dir, "/w");
    assert_true(c.args_escaped);
    assert_non_null(c.healthcheck);
    assert_int_equal(c.healthcheck->interval, 30000000000LL);
    assert_int_equal(c.healthcheck->retries, 3);
    assert_int_equal(c.on_build.len, 1);
    assert_int_equal(c.shell.len, 2);
    assert_int_equal(c.diff_ids.len, 2);
    assert_int_equal(c.n_history, 3);
    assert_true(c.history[1].empty_layer);
    assert_non_null(json_object_get(c.extra, "moby.buildkit.cache.v0"));
    json = kiln_oci_config_to_json(&c, &len);
    assert_int_equal(kiln_oci_config_parse(&c2, json, len, &err), 0);
    json2 = kiln_oci_config_to_json(&c2, &len2);
    assert_string_equal(json, json2); /* canonical: stable bytes */
    assert_non_null(strstr(json, "\"moby.buildkit.cache.v0\":\"e30=\""));
    assert_non_null(strstr(json, "\"Entrypoint\":[]"));
    assert_non_null(strstr(json, "\"ExposedPorts\":{\"53/udp\":{},\"8080/tcp\":{}}"));
    free(json);
    free(json2);
    kiln_oci_config_dispose(&c2);
    kiln_oci_config_dispose(&c);
}

static void
check_bad_config(const char *doc, const char *needle)
{
    kiln_oci_config c;
    kiln_error *err = NULL;

    assert_int_equal(kiln_oci_config_parse(&c, doc, strlen(doc), &err), KILN_EPARSE);
    if (!strstr(err->msg, needle))
        fail_msg("error `%s`, wanted `%s`", err->msg, needle);
    kiln_error_free(&err);
}

static void
test_oci_config__invalid(void **state)
{
    (void)state;
    check_bad_config("{\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                     "architecture");
    check_bad_config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"x\","
                     "\"diff_ids\":[]}}",
                     "rootfs");
    check_bad_config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":"
                     "\"layers\",\"diff_ids\":[\"nope\"]}}",
                     "diff_ids[0]");
    check_bad_config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":"
                     "\"layers\",\"diff_ids\":[]},\"history\":[{\"created_by\":\"x\"}]}",
                     "1 non-empty history entries for 0 layers");
    check_bad_config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"config\":{\"Env\":[1]},"
                     "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                     "Env[0]");
    check_bad_config("{\"os\":\"linux\",\"architecture\":\"amd64\",\"config\":{\"Labels\":"
                     "{\"a\":1}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
                     "label `a`");
}

static void
test_oci_chain_id__known(void **state)
{
    kiln_vec ids = KILN_VEC_INIT;
    char out[KILN_DIGEST_STRLEN + 1];

    (void)state;
    kiln_strvec_push(&ids, "sha256:" HEX_A);
    kiln_strvec_push(&ids, "sha256:" HEX_B);
    kiln_strvec_push(&ids, "sha256:" HEX_C);
    kiln_oci_chain_id(out, &ids, 1);
    assert_string_equal(out, "sha256:" HEX_A);
    /* values from `printf 'sha256:a.. sha256:b..' | sha256sum` */
    kiln_oci_chain_id(out, &ids, 2);
    assert_string_equal(out,
                        "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
    kiln_oci_chain_id(out, &ids, 3);
    assert_string_equal(out,
                        "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588");
    kiln_strvec_dispose(&ids);
}

/* ---- WWW-Authenticate
 * ---------------------------------------------------------------------------- */

static void
test_oci_challenge__parse(void **state)
{
    kiln_registry_challenge c;
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(kiln_registry_parse_challenge(
                             &c,
                             "Bearer realm=\"https://auth.docker.io/token\",service=\"registry."
                             "docker.io\",scope=\"repository:library/busybox:pull,push\","
                             "error=\"insufficient_scope\"",
                             &err),
                     0);
    assert_string_equal(c.scheme, "bearer");
    assert_string_equal(c.realm, "https://auth.docker.io/token");
    assert_string_equal(c.service, "registry.docker.io");
    assert_string_equal(c.scope, "repository:library/busybox:pull,push");
    assert_string_equal(c.error, "insufficient_scope");
    kiln_registry_challenge_dispose(&c);
    assert_int_equal(kiln_registry_parse_challenge(&c, "Basic realm=\"a \\\"q\\\" b\"", &err), 0);
    assert_string_equal(c.scheme, "basic");
    assert_string_equal(c.realm, "a \"q\" b");
    assert_null(c.service);
    kiln_registry_challenge_dispose(&c);
    assert_int_equal(
            kiln_registry_parse_challenge(
                    &c, "BEARER  realm=http://127.0.0.1:1/t , service=x, Basic realm=y", &err),
            0);
    assert_string_equal(c.realm, "http://127.0.0.1:1/t");
    assert_string_equal(c.service, "x");
    kiln_registry_challenge_dispose(&c);
    assert_int_equal(kiln_registry_parse_challenge(&c, "Bearer realm=\"unterminated", &err),
                     KILN_EPARSE);
    kiln_error_free(&err);
    assert_int_equal(kiln_registry_parse_challenge(&c, "=x", &err), KILN_EPARSE);
    kiln_error_free(&err);
    assert_int_equal(kiln_registry_parse_challenge(&c, "Bearer realm=\"x\" junk", &err),
                     KILN_EPARSE);
    kiln_error_free(&err);
    assert_int_equal(kiln_registry_parse_challenge(&c, "", &err), KILN_EPARSE);
    kiln_error_free(&err);
}

/* ---- docker config credentials
 * --------------------------------------------------------------------- */

static char *
make_dir(void)
{
    char *d = NULL;
    kiln_error *err = NULL;

    const char *tmp = getenv("TMPDIR");

    assert_int_equal(kiln_fs_mkdtemp(&d, tmp && *tmp ? tmp : "/tmp", "kiln-oci-test", &err), 0);
    return d;
}

static void
write_text(const char *dir, const char *name, const char *text, mode_t mode)
{
    char *p = xasprintf("%s/%s", dir, name);
    kiln_error *err = NULL;

    assert_int_equal(kiln_fs_write_atomic(p, text, strlen(text), mode, &err), 0);
    free(p);
}

static void
test_oci_credentials__auths(void **state)
{
    char *dir = make_dir(), *user = NULL, *secret = NULL;
    kiln_error *err = NULL;

    (void)state;
    /* "user:pa:ss" -> the password may contain ':' */
    write_text(dir, "config.json",
               "{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"dXNlcjpwYTpzcw==\"},"
               "\"http://127.0.0.1:5000/v2/\":{\"username\":\"u\",\"password\":\"p\"},"
               "\"bad.example\":{\"auth\":\"!!!\"}}}",
               0600);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "docker.io", &err), 0);
    assert_string_equal(user, "user");
    assert_string_equal(secret, "pa:ss");
    free(user);
    free(secret);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "127.0.0.1:5000", &err),
                     0);
    assert_string_equal(user, "u");
    assert_string_equal(secret, "p");
    free(user);
    free(secret);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "other.io", &err), 0);
    assert_null(user);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "bad.example", &err),
                     KILN_EPARSE);
    assert_non_null(strstr(err->msg, "bad.example"));
    kiln_error_free(&err);
    /* $DOCKER_AUTH_CONFIG comes first in the default lookup, and is ignored with an explicit dir */
    setenv("DOCKER_CONFIG", dir, 1);
    setenv("DOCKER_AUTH_CONFIG", "{\"auths\":{\"127.0.0.1:5000\":{\"auth\":\"ZW52OnB3\"}}}", 1);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, NULL, "127.0.0.1:5000", &err),
                     0);
    assert_string_equal(user, "env");
    assert_string_equal(secret, "pw");
    free(user);
    free(secret);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, NULL, "docker.io", &err), 0);
    assert_string_equal(user, "user"); /* not in the env document: from $DOCKER_CONFIG */
    free(user);
    free(secret);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "127.0.0.1:5000", &err),
                     0);
    assert_string_equal(user, "u");
    free(user);
    free(secret);
    setenv("DOCKER_AUTH_CONFIG", "{", 1);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, NULL, "x.io", &err),
                     KILN_EPARSE);
    assert_non_null(strstr(err->msg, "DOCKER_AUTH_CONFIG"));
    kiln_error_free(&err);
    unsetenv("DOCKER_AUTH_CONFIG");
    unsetenv("DOCKER_CONFIG");
    write_text(dir, "config.json", "{\"auths\":[]}", 0600);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "x.io", &err),
                     KILN_EPARSE);
    kiln_error_free(&err);
    kiln_fs_rm_rf(dir, &err);
    free(dir);
}

static void
test_oci_credentials__helper(void **state)
{
    char *dir = make_dir(), *user = NULL, *secret = NULL, *path = NULL;
    const char *old_path = getenv("PATH");
    kiln_error *err = NULL;

    (void)state;
    /* a fake helper: echoes the server URL it was asked for into the secret */
    write_text(dir, "docker-credential-kilntest",
               "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread url\n"
               "case \"$url\" in nope*) echo 'credentials not found in native keychain'; "
               "exit 1;; boom*) echo 'helper exploded' >&1; exit 2;; esac\n"
               "printf '{\"ServerURL\":\"%s\",\"Username\":\"hu\",\"Secret\":\"s-%s\"}' "
               "\"$url\" \"$url\"\n",
               0755);
    /* a helper that never reads stdin: writing the URL must not kill us with SIGPIPE */
    write_text(dir, "docker-credential-kilnquick",
               "#!/bin/sh\nexec printf '{\"Username\":\"q\",\"Secret\":\"s\"}'\n", 0755);
    write_text(dir, "config.json",
               "{\"credHelpers\":{\"quick.example\":\"kilnquick\",\"reg.example\":\"kilntest\","
               "\"nope.example\":\"kilntest\","
               "\"boom.example\":\"kilntest\",\"evil.example\":\"../x\"},"
               "\"auths\":{\"nope.example\":{\"auth\":\"YTpi\"}}}",
               0600);
    path = xasprintf("%s:%s", dir, old_path ? old_path : "/usr/bin:/bin");
    setenv("PATH", path, 1);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "reg.example", &err), 0);
    assert_string_equal(user, "hu");
    assert_string_equal(secret, "s-reg.example");
    free(user);
    free(secret);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "quick.example", &err),
                     0);
    assert_string_equal(user, "q");
    free(user);
    free(secret);
    /* helper has nothing: fall back to auths */
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "nope.example", &err),
                     0);
    assert_string_equal(user, "a");
    assert_string_equal(secret, "b");
    free(user);
    free(secret);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "boom.example", &err),
                     KILN_EAUTH);
    assert_non_null(strstr(err->msg, "helper exploded"));
    kiln_error_free(&err);
    assert_int_equal(kiln_registry_lookup_credentials(&user, &secret, dir, "evil.example", &err),
                     KILN_EPARSE);
    kiln_error_free(&err);
    if (old_path)
        setenv("PATH", old_path, 1);
    free(path);
    kiln_fs_rm_rf(dir, &err);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_oci_ref__normalize),
            cmocka_unit_test(test_oci_ref__invalid),
            cmocka_unit_test(test_oci_platform__parse_match),
            cmocka_unit_test(test_oci_media__types),
            cmocka_unit_test(test_oci_manifest__parse),
            cmocka_unit_test(test_oci_manifest__invalid),
            cmocka_unit_test(test_oci_index__select),
            cmocka_unit_test(test_oci_config__roundtrip),
            cmocka_unit_test(test_oci_config__invalid),
            cmocka_unit_test(test_oci_chain_id__known),
            cmocka_unit_test(test_oci_challenge__parse),
            cmocka_unit_test(test_oci_credentials__auths),
            cmocka_unit_test(test_oci_credentials__helper),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
