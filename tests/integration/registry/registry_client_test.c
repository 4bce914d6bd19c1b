/*
 * registry_client_test.c: the registry client against a real docker-registry on 127.0.0.1,
 * prepared by registry_client_test.sh (which also checks the pushed images with skopeo).
 *
 * Environment (skip, exit 77, when unset):
 *   KILN_TEST_FIXTURE  output dir of tests/fixtures/make-base-image.sh
 *   KILN_TEST_REG      127.0.0.1:PORT, anonymous, holding kiln-test/base and kiln-test/multi
 *   KILN_TEST_REG_DIR  that registry's state dir (its storage is corrupted on purpose once)
 *   KILN_TEST_AREG     127.0.0.1:PORT with htpasswd auth kiln:secret, holding kiln-test/base
 *   KILN_TEST_DOCKER_CONFIG  dir with a config.json holding the credentials of KILN_TEST_AREG
 */
#include <fcntl.h>
#include <pthread.h>
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

static const char *fixture, *reg, *reg_dir, *areg, *docker_config;

/* The value of `key` in fixture/digests ("base sha256:..."); owned by caller. */
static char *
fixture_digest(const char *key)
{
    char *path = xasprintf("%s/digests", fixture), *data = NULL, *line;
    size_t len = 0, klen = strlen(key);
    kiln_error *err = NULL;
    char *out = NULL;

    assert_int_equal(kiln_fs_read_file(&data, &len, path, 4096, &err), 0);
    for (line = data; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            out = xstrndup(line + klen + 1, strcspn(line + klen + 1, "\n"));
    }
    free(path);
    free(data);
    assert_non_null(out);
    return out;
}

static void
parse_ref(kiln_oci_ref *r, const char *host, const char *rest)
{
    char *s = xasprintf("%s/%s", host, rest);
    kiln_error *err = NULL;

    assert_int_equal(kiln_oci_ref_parse(r, s, &err), 0);
    free(s);
}

static kiln_registry *
new_client(size_t chunk, const char *config_dir)
{
    kiln_registry_opts o = KILN_REGISTRY_OPTS_INIT;
    kiln_registry *r = NULL;
    kiln_error *err = NULL;

    o.chunk_size = chunk;
    o.docker_config = config_dir;
    o.max_retries = 2;
    o.retry_base_ms = 50;
    o.timeout_s = 60;
    assert_int_equal(kiln_registry_new(&r, &o, &err), 0);
    return r;
}

/* A write callback collecting into a kiln_buf. */
static int
collect(void *payload, const void *data, size_t len, kiln_error **err)
{
    return kiln_buf_put(payload, data, len, err);
}

static void
test_registry_pull__by_tag_and_digest(void **state)
{
    kiln_registry *r = new_client(0, "/nonexistent");
    char *want = fixture_digest("base");
    kiln_oci_descriptor d;
    kiln_registry_manifest m;
    kiln_oci_manifest man;
    kiln_oci_config cfg;
    kiln_buf b = KILN_BUF_INIT;
    kiln_oci_ref ref, byd;
    kiln_error *err = NULL;
    char *s;

    (void)state;
    parse_ref(&ref, reg, "kiln-test/base:latest");
    assert_int_equal(kiln_registry_resolve(r, &ref, &d, &err), 0);
    assert_string_equal(d.digest, want);
    assert_string_equal(d.media_type, KILN_OCI_MT_MANIFEST);
    assert_true(d.size > 100);
    s = xasprintf("kiln-test/base@%s", want);
    parse_ref(&byd, reg, s);
    free(s);
    assert_int_equal(kiln_registry_get_manifest(r, &byd, &m, &err), 0);
    assert_string_equal(m.digest, want);
    assert_int_equal((int64_t)m.len, d.size);
    assert_int_equal(kiln_oci_manifest_parse(&man, m.data, m.len, m.media_type, &err), 0);
    assert_int_equal(man.n_layers, 1);
    /* the config blob, streamed and verified, then parsed */
    assert_int_equal(
            kiln_registry_get_blob(r, &ref, man.config.digest, man.config.size, collect, &b, &err),
            0);
    assert_int_equal(kiln_oci_config_parse(&cfg, b.ptr, b.len, &err), 0);
    assert_string_equal(cfg.platform.os, "linux");
    assert_int_equal(cfg.diff_ids.len, 1);
    assert_string_equal(kiln_vec_get(&cfg.cmd, 0), "/bin/sh");
    kiln_buf_clear(&b);
    /* wrong expected size: KILN_EDIGEST */
    assert_int_equal(kiln_registry_get_blob(r, &ref, man.layers[0].digest, man.layers[0].size - 1,
                                            collect, &b, &err),
                     KILN_EDIGEST);
    kiln_error_free(&err);
    kiln_buf_dispose(&b);
    kiln_oci_config_dispose(&cfg);
    kiln_oci_manifest_dispose(&man);
    kiln_registry_manifest_dispose(&m);
    kiln_oci_descriptor_dispose(&d);
    kiln_oci_ref_dispose(&byd);
    kiln_oci_ref_dispose(&ref);
    free(want);
    kiln_registry_free(r);
}

static void
check_platform(kiln_registry *r, const kiln_oci_ref *ref, const char *plat, const char *key)
{
    kiln_oci_platform p;
    kiln_registry_manifest m;
    kiln_error *err = NULL;
    char *want = fixture_digest(key);

    assert_int_equal(kiln_oci_platform_parse(&p, plat, &err), 0);
    assert_int_equal(kiln_registry_get_image_manifest(r, ref, &p, &m, &err), 0);
    assert_string_equal(m.digest, want);
    assert_string_equal(m.media_type, KILN_OCI_MT_MANIFEST);
    kiln_registry_manifest_dispose(&m);
    kiln_oci_platform_dispose(&p);
    free(want);
}

static void
test_registry_pull__platform(void **state)
{
    kiln_registry *r = new_client(0, "/nonexistent");
    kiln_registry_manifest m;
    kiln_oci_platform p;
    kiln_oci_ref ref;
    kiln_error *err = NULL;
    char *idx = fixture_digest("multi");

    (void)state;
    parse_ref(&ref, reg, "kiln-test/multi:latest");
    check_platform(r, &ref, "linux/arm64", "multi-arm64");
    check_platform(r, &ref, "linux/aarch64/v8", "multi-arm64");
    check_platform(r, &ref, "linux/amd64", "multi-amd64");
    assert_int_equal(kiln_registry_get_manifest(r, &ref, &m, &err), 0);
    assert_string_equal(m.digest, idx);
    assert_string_equal(m.media_type, KILN_OCI_MT_INDEX);
    kiln_registry_manifest_dispose(&m);
    assert_int_equal(kiln_oci_platform_parse(&p, "linux/s390x", &err), 0);
    assert_int_equal(kiln_registry_get_image_manifest(r, &ref, &p, &m, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err->msg, "linux/s390x"));
    assert_non_null(strstr(err->msg, "kiln-test/multi:latest"));
    kiln_error_free(&err);
    kiln_oci_platform_dispose(&p);
    kiln_oci_ref_dispose(&ref);
    free(idx);
    kiln_registry_free(r);
}

static void
test_registry_pull__not_found(void **state)
{
    kiln_registry *r = new_client(0, "/nonexistent");
    kiln_registry_manifest m;
    kiln_buf b = KILN_BUF_INIT;
    kiln_oci_ref ref;
    kiln_error *err = NULL;
    char *name = xasprintf("%s/kiln-test/nope:latest", reg);
    bool exists = true;

    (void)state;
    parse_ref(&ref, reg, "kiln-test/nope:latest");
    assert_int_equal(kiln_registry_get_manifest(r, &ref, &m, &err), KILN_ENOTFOUND);
    if (!strstr(err->msg, name))
        fail_msg("404 error `%s` does not name %s", err->msg, name);
    assert_non_null(strstr(err->msg, "not found"));
    kiln_error_free(&err);
    kiln_oci_ref_dispose(&ref);
    parse_ref(&ref, reg, "kiln-test/base:latest");
    assert_int_equal(kiln_registry_get_blob(
                             r, &ref,
                             "sha256:"
                             "0000000000000000000000000000000000000000000000000000000000000000",
                             -1, collect, &b, &err),
                     KILN_ENOTFOUND);
    kiln_error_free(&err);
    assert_int_equal(
            kiln_registry_blob_exists(
                    r, &ref,
                    "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                    &exists, &err),
            0);
    assert_false(exists);
    kiln_buf_dispose(&b);
    kiln_oci_ref_dispose(&ref);
    free(name);
    kiln_registry_free(r);
}

/* Push `data` as a blob through the client, then corrupt it in the registry's storage: the next
 * pull must fail with KILN_EDIGEST. */
static void
test_registry_pull__digest_mismatch(void **state)
{
    kiln_registry *r = new_client(0, "/nonexistent");
    const char data[] = "kiln digest verification test blob\n";
    char dg[KILN_DIGEST_STRLEN + 1];
    kiln_buf b = KILN_BUF_INIT;
    kiln_sha256 d;
    kiln_oci_ref ref;
    kiln_error *err = NULL;
    char *path;
    int fd;

    (void)state;
    kiln_sha256_buf(&d, data, strlen(data));
    kiln_digest_format(dg, &d);
    parse_ref(&ref, reg, "kiln-test/corrupt:latest");
    assert_int_equal(kiln_registry_push_blob_mem(r, &ref, dg, data, strlen(data), NULL, &err), 0);
    assert_int_equal(kiln_registry_get_blob(r, &ref, dg, (int64_t)strlen(data), collect, &b, &err),
                     0);
    assert_int_equal(b.len, strlen(data));
    kiln_buf_clear(&b);
    path = xasprintf("%s/data/docker/registry/v2/blobs/sha256/%.2s/%s/data", reg_dir, dg + 7,
                     dg + 7);
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "K", 1, 0), 1);
    close(fd);
    assert_int_equal(kiln_registry_get_blob(r, &ref, dg, (int64_t)strlen(data), collect, &b, &err),
                     KILN_EDIGEST);
    assert_non_null(strstr(err->msg, dg));
    kiln_error_free(&err);
    free(path);
    kiln_buf_dispose(&b);
    kiln_oci_ref_dispose(&ref);
    kiln_registry_free(r);
}

/* Push blob `digest` of the fixture layout (read from its file) to ref. */
static void
push_fixture_blob(kiln_registry *r, const kiln_oci_ref *ref, const kiln_oci_descriptor *d,
                  const char *mount_from)
{
    char *path = xasprintf("%s/oci/blobs/sha256/%s", fixture, d->digest + 7);
    kiln_error *err = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    assert_true(fd >= 0);
    if (kiln_registry_push_blob(r, ref, d->digest, d->size, fd, mount_from, &err) < 0)
        fail_msg("push %s: %s", d->digest, err->msg);
    close(fd);
    free(path);
}

/* Copy the fixture base image to `repo` (blobs, then the manifest, byte-exact). */
static void
push_image(size_t chunk, const char *repo, const char *mount_from)
{
    kiln_registry *r = new_client(chunk, "/nonexistent");
    char *want = fixture_digest("base");
    char *path = xasprintf("%s/oci/blobs/sha256/%s", fixture, want + 7);
    char *data = NULL, *got = NULL;
    kiln_oci_descriptor d;
    kiln_oci_manifest m;
    kiln_oci_ref ref;
    kiln_error *err = NULL;
    size_t len = 0;

    assert_int_equal(kiln_fs_read_file(&data, &len, path, KILN_OCI_MANIFEST_MAX, &err), 0);
    assert_int_equal(kiln_oci_manifest_parse(&m, data, len, NULL, &err), 0);
    parse_ref(&ref, reg, repo);
    push_fixture_blob(r, &ref, &m.config, mount_from);
    push_fixture_blob(r, &ref, &m.layers[0], mount_from);
    assert_int_equal(kiln_registry_put_manifest(r, &ref, m.media_type, data, len, &got, &err), 0);
    assert_string_equal(got, want);
    /* read it back */
    assert_int_equal(kiln_registry_resolve(r, &ref, &d, &err), 0);
    assert_string_equal(d.digest, want);
    kiln_oci_descriptor_dispose(&d);
    kiln_oci_ref_dispose(&ref);
    kiln_oci_manifest_dispose(&m);
    free(got);
    free(data);
    free(path);
    free(want);
    kiln_registry_free(r);
}

static void
test_registry_push__monolithic(void **state)
{
    (void)state;
    push_image(0, "kiln-test/pushed:v1", NULL);
}

static void
test_registry_push__chunked(void **state)
{
    (void)state;
    push_image(256 * 1024, "kiln-test/chunked:v1", NULL);
}

static void
test_registry_push__mount(void **state)
{
    (void)state;
    push_image(0, "kiln-test/mounted:v1", "kiln-test/base");
}

static void
test_registry_push__manifest_digest_check(void **state)
{
    kiln_registry *r = new_client(0, "/nonexistent");
    const char doc[] = "{\"schemaVersion\":2}";
    kiln_oci_ref ref;
    kiln_error *err = NULL;

    (void)state;
    parse_ref(
            &ref, reg,
            "kiln-test/x@sha256:0000000000000000000000000000000000000000000000000000000000000000");
    assert_int_equal(
            kiln_registry_put_manifest(r, &ref, KILN_OCI_MT_MANIFEST, doc, strlen(doc), NULL, &err),
            KILN_EDIGEST);
    kiln_error_free(&err);
    kiln_oci_ref_dispose(&ref);
    /* a manifest whose blobs are missing: the registry rejects it, the error names the ref */
    parse_ref(&ref, reg, "kiln-test/x:bad");
    assert_true(kiln_registry_put_manifest(r, &ref, "application/vnd.oci.image.manifest.v1+json",
                                           doc, strlen(doc), NULL, &err) < 0);
    assert_non_null(strstr(err->msg, "kiln-test/x:bad"));
    kiln_error_free(&err);
    kiln_oci_ref_dispose(&ref);
    kiln_registry_free(r);
}

static void
test_registry_auth__basic(void **state)
{
    kiln_registry *r = new_client(0, "/nonexistent");
    kiln_oci_descriptor d;
    kiln_oci_ref ref;
    kiln_error *err = NULL;
    char *want = fixture_digest("base");

    (void)state;
    parse_ref(&ref, areg, "kiln-test/base:latest");
    /* no credentials */
    assert_int_equal(kiln_registry_resolve(r, &ref, &d, &err), KILN_EAUTH);
    assert_non_null(strstr(err->msg, "kiln-test/base:latest"));
    kiln_error_free(&err);
    /* wrong credentials */
    kiln_registry_set_credentials(r, areg, "kiln", "wrong");
    assert_int_equal(kiln_registry_resolve(r, &ref, &d, &err), KILN_EAUTH);
    kiln_error_free(&err);
    kiln_registry_free(r);
    /* credentials from the docker config */
    r = new_client(0, docker_config);
    assert_int_equal(kiln_registry_resolve(r, &ref, &d, &err), 0);
    assert_string_equal(d.digest, want);
    kiln_oci_descriptor_dispose(&d);
    kiln_registry_free(r);
    /* and through $DOCKER_CONFIG, with a push */
    setenv("DOCKER_CONFIG", docker_config, 1);
    r = new_client(0, NULL);
    assert_int_equal(kiln_registry_resolve(r, &ref, &d, &err), 0);
    assert_int_equal(
            kiln_registry_push_blob_mem(
                    r, &ref,
                    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "{}",
                    2, NULL, &err),
            0);
    unsetenv("DOCKER_CONFIG");
    kiln_oci_descriptor_dispose(&d);
    kiln_oci_ref_dispose(&ref);
    free(want);
    kiln_registry_free(r);
}

typedef struct pull_job {
    kiln_registry *r;
    const kiln_oci_ref *ref;
    const kiln_oci_descriptor *d;
    int ret;
    size_t got;
} pull_job;

static int
count(void *payload, const void *data, size_t len, kiln_error **err)
{
    (void)data;
    (void)err;
    ((pull_job *)payload)->got += len;
    return 0;
}

static void *
pull_thread(void *arg)
{
    pull_job *j = arg;
    kiln_error *err = NULL;

    j->ret = kiln_registry_get_blob(j->r, j->ref, j->d->digest, j->d->size, count, j, &err);
    kiln_error_free(&err);
    return NULL;
}

/* One client, several threads pulling at once (the engine's parallel layer pulls). */
static void
test_registry_pull__parallel(void **state)
{
    kiln_registry *r = new_client(0, "/nonexistent");
    kiln_registry_manifest m;
    kiln_oci_manifest man;
    kiln_oci_ref ref;
    kiln_error *err = NULL;
    pthread_t t[6];
    pull_job jobs[6];

    (void)state;
    parse_ref(&ref, reg, "kiln-test/base:latest");
    assert_int_equal(kiln_registry_get_manifest(r, &ref, &m, &err), 0);
    assert_int_equal(kiln_oci_manifest_parse(&man, m.data, m.len, m.media_type, &err), 0);
    for (int i = 0; i < 6; i++) {
        jobs[i] = (pull_job){r, &ref, i % 2 ? &man.config : &man.layers[0], -1, 0};
        assert_int_equal(pthread_create(&t[i], NULL, pull_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].ret, 0);
        assert_int_equal((int64_t)jobs[i].got, jobs[i].d->size);
    }
    kiln_oci_manifest_dispose(&man);
    kiln_registry_manifest_dispose(&m);
    kiln_oci_ref_dispose(&ref);
    kiln_registry_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_registry_pull__by_tag_and_digest),
            cmocka_unit_test(test_registry_pull__platform),
            cmocka_unit_test(test_registry_pull__not_found),
            cmocka_unit_test(test_registry_pull__digest_mismatch),
            cmocka_unit_test(test_registry_pull__parallel),
            cmocka_unit_test(test_registry_push__monolithic),
            cmocka_unit_test(test_registry_push__chunked),
            cmocka_unit_test(test_registry_push__mount),
            cmocka_unit_test(test_registry_push__manifest_digest_check),
            cmocka_unit_test(test_registry_auth__basic),
    };

    fixture = getenv("KILN_TEST_FIXTURE");
    reg = getenv("KILN_TEST_REG");
    reg_dir = getenv("KILN_TEST_REG_DIR");
    areg = getenv("KILN_TEST_AREG");
    docker_config = getenv("KILN_TEST_DOCKER_CONFIG");
    if (!fixture || !reg || !reg_dir || !areg || !docker_config) {
        fprintf(stderr, "skip: run through registry_client_test.sh (needs KILN_TEST_* env)\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
