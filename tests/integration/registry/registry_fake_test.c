/*
 * registry_fake_test.c: the registry client against fake_registry.py (a scripted registry and
 * token server on 127.0.0.1): bearer tokens (anonymous, with basic credentials, with an OAuth2
 * refresh token from the docker config), token caching, retries on 503 and 429, persistent 500s,
 * and a redirect to another host name that must not receive the Authorization header.
 *
 * Environment: KILN_TEST_FAKE=127.0.0.1:PORT (skip, exit 77, when unset), KILN_TEST_TMP (a
 * scratch directory).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/json.h"
#include "oci/oci.h"
#include "oci/registry.h"

static const char *fake, *tmpdir;

/* Counter `key` of the fake server's /stats. */
static int64_t
stat_of(const char *key)
{
    char *cmd = xasprintf("curl -sf http://%s/stats", fake);
    FILE *p = popen(cmd, "r");
    char buf[4096];
    size_t n;
    json_t *j;
    int64_t v;

    assert_non_null(p);
    n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = '\0';
    assert_int_equal(pclose(p), 0);
    j = json_loads(buf, 0, NULL);
    assert_non_null(j);
    v = json_integer_value(json_object_get(j, key));
    json_decref(j);
    free(cmd);
    return v;
}

static kiln_registry *
client(const char *config_dir)
{
    kiln_registry_opts o = KILN_REGISTRY_OPTS_INIT;
    kiln_registry *r = NULL;
    kiln_error *err = NULL;

    o.docker_config = config_dir;
    o.max_retries = 3;
    o.retry_base_ms = 20;
    o.timeout_s = 30;
    assert_int_equal(kiln_registry_new(&r, &o, &err), 0);
    return r;
}

static int
get(kiln_registry *r, const char *repo, kiln_error **err)
{
    char *s = xasprintf("%s/%s", fake, repo);
    kiln_registry_manifest m;
    kiln_oci_ref ref;
    int ret;

    assert_int_equal(kiln_oci_ref_parse(&ref, s, NULL), 0);
    ret = kiln_registry_get_manifest(r, &ref, &m, err);
    if (ret == 0) {
        assert_string_equal(m.media_type, KILN_OCI_MT_MANIFEST);
        kiln_registry_manifest_dispose(&m);
    }
    kiln_oci_ref_dispose(&ref);
    free(s);
    return ret;
}

static void
test_registry_fake__bearer_anonymous(void **state)
{
    kiln_registry *r = client("/nonexistent");
    kiln_error *err = NULL;
    int64_t before = stat_of("token");

    (void)state;
    assert_int_equal(get(r, "kiln-test/tok:latest", &err), 0);
    assert_int_equal(stat_of("token"), before + 1);
    /* the token is cached for its scope */
    assert_int_equal(get(r, "kiln-test/tok:latest", &err), 0);
    assert_int_equal(get(r, "kiln-test/tok:other", &err), 0);
    assert_int_equal(stat_of("token"), before + 1);
    kiln_registry_free(r);
}

static void
test_registry_fake__bearer_credentials(void **state)
{
    kiln_registry *r = client("/nonexistent");
    kiln_error *err = NULL;
    char *dir = NULL, *path;
    char *text;

    (void)state;
    /* anonymous tokens do not open the private repository */
    assert_int_equal(get(r, "kiln-test/private:latest", &err), KILN_EAUTH);
    assert_non_null(strstr(err->msg, "kiln-test/private:latest"));
    kiln_error_free(&err);
    kiln_registry_set_credentials(r, fake, "kiln", "wrong");
    assert_int_equal(get(r, "kiln-test/private:latest", &err), KILN_EAUTH);
    assert_non_null(strstr(err->msg, "token"));
    kiln_error_free(&err);
    kiln_registry_set_credentials(r, fake, "kiln", "secret");
    assert_int_equal(get(r, "kiln-test/private:latest", &err), 0);
    assert_true(stat_of("token_basic") >= 1);
    kiln_registry_free(r);
    /* an identity token from the docker config: the OAuth2 refresh-token POST */
    assert_int_equal(kiln_fs_mkdtemp(&dir, tmpdir, "dockercfg", &err), 0);
    path = xasprintf("%s/config.json", dir);
    text = xasprintf("{\"auths\":{\"%s\":{\"username\":\"<token>\","
                     "\"identitytoken\":\"refresh-kiln\"}}}",
                     fake);
    assert_int_equal(kiln_fs_write_atomic(path, text, strlen(text), 0600, &err), 0);
    r = client(dir);
    assert_int_equal(get(r, "kiln-test/private:latest", &err), 0);
    assert_int_equal(stat_of("token_refresh"), 1);
    kiln_registry_free(r);
    free(text);
    free(path);
    free(dir);
}

static void
test_registry_fake__retries(void **state)
{
    kiln_registry *r = client("/nonexistent");
    kiln_error *err = NULL;
    struct timespec a, b;

    (void)state;
    assert_int_equal(get(r, "kiln-test/flaky:latest", &err), 0);
    assert_int_equal(stat_of("flaky"), 3);
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(get(r, "kiln-test/ratelimit:latest", &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_int_equal(stat_of("ratelimit"), 2);
    /* Retry-After: 1 was honoured (the backoff base alone is 20 ms) */
    assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 >= 900);
    assert_int_equal(get(r, "kiln-test/broken:latest", &err), KILN_ESYS);
    assert_non_null(strstr(err->msg, "500"));
    assert_non_null(strstr(err->msg, "storage on fire"));
    assert_non_null(strstr(err->msg, "kiln-test/broken:latest"));
    kiln_error_free(&err);
    assert_int_equal(stat_of("broken"), 4); /* 1 + max_retries */
    kiln_registry_free(r);
}

static int
collect(void *payload, const void *data, size_t len, kiln_error **err)
{
    return kiln_buf_put(payload, data, len, err);
}

static void
test_registry_fake__redirect_drops_auth(void **state)
{
    kiln_registry *r = client("/nonexistent");
    const char blob[] = "kiln redirected blob\n";
    char *s = xasprintf("%s/kiln-test/redirect:latest", fake);
    kiln_buf b = KILN_BUF_INIT;
    kiln_sha256 d;
    char dg[KILN_DIGEST_STRLEN + 1];
    kiln_oci_ref ref;
    kiln_error *err = NULL;

    (void)state;
    kiln_sha256_buf(&d, blob, strlen(blob));
    kiln_digest_format(dg, &d);
    assert_int_equal(kiln_oci_ref_parse(&ref, s, &err), 0);
    if (kiln_registry_get_blob(r, &ref, dg, (int64_t)strlen(blob), collect, &b, &err) < 0)
        fail_msg("redirected blob: %s", err->msg);
    assert_int_equal(b.len, strlen(blob));
    assert_int_equal(stat_of("storage"), 1);
    assert_int_equal(stat_of("storage_with_auth"), 0);
    kiln_buf_dispose(&b);
    kiln_oci_ref_dispose(&ref);
    free(s);
    kiln_registry_free(r);
}

/* The fake's 300000-byte blob: byte i = (7i + i/251) mod 256. */
static void
big_blob(kiln_buf *b, char dg[KILN_DIGEST_STRLEN + 1])
{
    kiln_sha256 d;

    for (size_t i = 0; i < 300000; i++)
        kiln_buf_putc(b, (char)((i * 7 + i / 251) % 256), NULL);
    kiln_sha256_buf(&d, b->ptr, b->len);
    kiln_digest_format(dg, &d);
}

static void
pull_cut(const char *repo, int64_t range_requests)
{
    kiln_registry *r = client("/nonexistent");
    char *s = xasprintf("%s/%s:latest", fake, repo);
    kiln_buf want = KILN_BUF_INIT, got = KILN_BUF_INIT;
    char dg[KILN_DIGEST_STRLEN + 1];
    kiln_oci_ref ref;
    kiln_error *err = NULL;
    int64_t before = stat_of("cut_range");

    big_blob(&want, dg);
    assert_int_equal(kiln_oci_ref_parse(&ref, s, &err), 0);
    if (kiln_registry_get_blob(r, &ref, dg, (int64_t)want.len, collect, &got, &err) < 0)
        fail_msg("interrupted pull of %s: %s", repo, err->msg);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.ptr, want.ptr, want.len);
    assert_int_equal(stat_of("cut_range"), before + range_requests);
    kiln_buf_dispose(&want);
    kiln_buf_dispose(&got);
    kiln_oci_ref_dispose(&ref);
    free(s);
    kiln_registry_free(r);
}

/* A transfer broken off half-way resumes with Range (206), or re-reads and skips (200). */
static void
test_registry_fake__resume(void **state)
{
    (void)state;
    pull_cut("kiln-test/cut", 1);
    pull_cut("kiln-test/cutnorange", 1);
    assert_int_equal(stat_of("cut_first"), 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_registry_fake__bearer_anonymous),
            cmocka_unit_test(test_registry_fake__bearer_credentials),
            cmocka_unit_test(test_registry_fake__retries),
            cmocka_unit_test(test_registry_fake__redirect_drops_auth),
            cmocka_unit_test(test_registry_fake__resume),
    };

    fake = getenv("KILN_TEST_FAKE");
    tmpdir = getenv("KILN_TEST_TMP");
    if (!fake || !tmpdir) {
        fprintf(stderr, "skip: run through registry_fake_test.sh (needs KILN_TEST_FAKE)\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
