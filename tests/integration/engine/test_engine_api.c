/*
 * test_engine_api.c: the public engine API (include/kiln/engine.h) as root, over the fixture base
 * image: two solves of one Definition at once share the RUN (it runs once), a cancelled solve
 * returns KILN_ECANCELED promptly and leaves no mount behind, bad requests get clear errors, and
 * image configs resolve for frontends.
 * Skips (77) when not root or when the fixture cannot be built.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/fs.h"
#include "kiln/engine.h"
#include "llb/llb.h"

#include "base/base.h"

static char *fixture_dir; /* temp dir with img/oci (made once) */

typedef struct fixture {
    char *state;
    kiln_engine *e;
} fixture;

static int
setup(void **state)
{
    fixture *f = xnew(fixture);
    kiln_engine_opts o = KILN_ENGINE_OPTS_INIT;
    kiln_error *err = NULL;

    assert_int_equal(kiln_fs_mkdtemp(&f->state, fixture_dir, "state-", &err), 0);
    o.root = f->state;
    assert_int_equal(kiln_engine_open(&f->e, &o, &err), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    kiln_error *err = NULL;

    kiln_engine_free(f->e);
    assert_int_equal(kiln_fs_rm_rf(f->state, &err), 0);
    free(f->state);
    free(f);
    return 0;
}

/* Marshal: oci-layout base image -> RUN script (with a cache mount at /cache). */
static void
make_run_def(kiln_buf *out, const char *script)
{
    cleanup_free char *id = xasprintf("oci-layout://%s/img/oci:latest", fixture_dir);
    const char *args[] = {"/bin/sh", "-c", script, NULL};
    kiln_llb_mount cache = {.dest = "/cache", .type = KILN_LLB_MOUNT_CACHE, .cache_id = "api"};
    kiln_llb_exec_opts o = {.args = args, .mounts = &cache, .n_mounts = 1};
    kiln_llb_builder *b = NULL;
    kiln_llb_state img, ran;
    kiln_error *err = NULL;

    kiln_llb_builder_new(&b);
    assert_int_equal(kiln_llb_source(&img, b, id, NULL, 0, &err), 0);
    o.root = img;
    assert_int_equal(kiln_llb_exec(&ran, b, &o, &err), 0);
    assert_int_equal(kiln_llb_marshal(out, b, ran, NULL, &err), 0);
    kiln_llb_builder_free(b);
}

typedef struct solve_job {
    kiln_engine *e;
    const kiln_buf *def;
    kiln_engine_result *res;
    int ret;
    kiln_error *err;
} solve_job;

static void *
solve_thread(void *arg)
{
    solve_job *j = arg;

    j->ret = kiln_engine_solve(&j->res, j->e, j->def->ptr, j->def->len, NULL, &j->err);
    return NULL;
}

static void
test_engine_api__parallel_solves_share_the_run(void **state)
{
    fixture *f = *state;
    kiln_buf def = KILN_BUF_INIT;
    solve_job j[2] = {{f->e, &def, NULL, 0, NULL}, {f->e, &def, NULL, 0, NULL}};
    pthread_t t[2];
    cleanup_free char *out = xasprintf("%s/out", f->state);
    cleanup_free char *runs = xasprintf("%s/out/runs.txt", f->state);
    cleanup_free char *data = NULL;
    kiln_error *err = NULL;

    make_run_def(&def, "sleep 1; echo run >> /cache/runs; cat /cache/runs > /runs.txt");
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, solve_thread, &j[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        if (j[i].err)
            fprintf(stderr, "solve %d: %s\n", i, j[i].err->msg);
        assert_int_equal(j[i].ret, 0);
    }
    assert_string_equal(kiln_engine_result_id(j[0].res), kiln_engine_result_id(j[1].res));
    assert_int_equal(kiln_engine_result_export_dir(f->e, j[0].res, out, &err), 0);
    assert_int_equal(kiln_fs_read_file(&data, NULL, runs, 0, &err), 0);
    assert_string_equal(data, "run\n");
    kiln_engine_result_free(f->e, j[0].res);
    kiln_engine_result_free(f->e, j[1].res);
    kiln_buf_dispose(&def);
}

static bool
mounts_under(const char *dir)
{
    cleanup_free char *data = NULL;
    cleanup_free char *needle = xasprintf(" %s/", dir);
    kiln_error *err = NULL;

    assert_int_equal(kiln_fs_read_file(&data, NULL, "/proc/self/mounts", 0, &err), 0);
    return strstr(data, needle) != NULL;
}

static void
test_engine_api__cancel_stops_a_running_step(void **state)
{
    fixture *f = *state;
    kiln_buf def = KILN_BUF_INIT;
    solve_job j = {f->e, &def, NULL, 0, NULL};
    struct timespec t0, t1;
    pthread_t t;

    make_run_def(&def, "sleep 60");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pthread_create(&t, NULL, solve_thread, &j), 0);
    sleep(2);
    kiln_engine_cancel(f->e);
    pthread_join(t, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(j.ret, KILN_ECANCELED);
    assert_true(t1.tv_sec - t0.tv_sec < 20);
    kiln_error_free(&j.err);
    /* the engine waits for the cancelled step when it closes: then nothing stays mounted */
    kiln_engine_free(f->e);
    f->e = NULL;
    assert_false(mounts_under(f->state));
    kiln_buf_dispose(&def);
}

static void
test_engine_api__bad_requests(void **state)
{
    fixture *f = *state;
    kiln_engine_solve_opts so = KILN_ENGINE_SOLVE_OPTS_INIT;
    kiln_engine_result *r = NULL;
    kiln_llb_builder *b = NULL;
    kiln_llb_state s;
    kiln_buf def = KILN_BUF_INIT;
    kiln_error *err = NULL;

    assert_true(kiln_engine_solve(&r, f->e, "garbage", 7, NULL, &err) < 0);
    kiln_error_free(&err);
    so.version = 99;
    assert_int_equal(kiln_engine_solve(&r, f->e, "x", 1, &so, &err), KILN_EINVAL);
    kiln_error_free(&err);

    kiln_llb_builder_new(&b);
    assert_int_equal(kiln_llb_local(&s, b, "nope", NULL, &err), 0);
    assert_int_equal(kiln_llb_marshal(&def, b, s, NULL, &err), 0);
    assert_int_equal(kiln_engine_solve(&r, f->e, def.ptr, def.len, NULL, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "local source `nope` was not given"));
    kiln_error_free(&err);
    kiln_buf_clear(&def);

    /* nothing listens on port 1: the error names the URL */
    assert_int_equal(kiln_llb_source(&s, b, "http://127.0.0.1:1/x", NULL, 0, &err), 0);
    assert_int_equal(kiln_llb_marshal(&def, b, s, NULL, &err), 0);
    assert_int_equal(kiln_engine_solve(&r, f->e, def.ptr, def.len, NULL, &err), KILN_ESYS);
    assert_non_null(strstr(err->msg, "http://127.0.0.1:1/x"));
    kiln_error_free(&err);
    kiln_buf_clear(&def);

    assert_int_equal(kiln_llb_source(&s, b, "s3://bucket/x", NULL, 0, &err), 0);
    assert_int_equal(kiln_llb_marshal(&def, b, s, NULL, &err), 0);
    assert_int_equal(kiln_engine_solve(&r, f->e, def.ptr, def.len, NULL, &err), KILN_EUNSUPPORTED);
    kiln_error_free(&err);
    kiln_llb_builder_free(b);
    kiln_buf_dispose(&def);
}

static void
test_engine_api__resolve_image_config(void **state)
{
    fixture *f = *state;
    cleanup_free char *ref = xasprintf("oci-layout://%s/img/oci:latest", fixture_dir);
    cleanup_free char *missing = xasprintf("oci-layout://%s/img/oci:nope", fixture_dir);
    cleanup_free char *digests_path = xasprintf("%s/img/digests", fixture_dir);
    cleanup_free char *digests = NULL;
    cleanup_free char *want = NULL;
    char *config = NULL, *digest = NULL;
    kiln_error *err = NULL;

    assert_int_equal(kiln_fs_read_file(&digests, NULL, digests_path, 0, &err), 0);
    assert_int_equal(kiln_engine_resolve_image_config(&config, &digest, f->e, ref, &err), 0);
    assert_non_null(strstr(config, "\"architecture\""));
    assert_non_null(strstr(config, "\"diff_ids\""));
    want = xasprintf("base %s\n", digest);
    assert_non_null(strstr(digests, want));
    free(config);
    free(digest);
    assert_int_equal(kiln_engine_resolve_image_config(&config, NULL, f->e, missing, &err),
                     KILN_ENOTFOUND);
    kiln_error_free(&err);
    assert_int_equal(kiln_engine_resolve_image_config(&config, NULL, f->e, "git://x/y", &err),
                     KILN_EUNSUPPORTED);
    kiln_error_free(&err);
}

static int
make_fixture(void)
{
    const char *script = getenv("KILN_MAKE_BASE_IMAGE");
    kiln_error *err = NULL;
    cleanup_free char *cmd = NULL;
    int st;

    if (!script || kiln_fs_mkdtemp(&fixture_dir, "/tmp", "kiln-engine-api-", &err) < 0)
        return -1;
    cmd = xasprintf("'%s' '%s/img' >/dev/null 2>&1", script, fixture_dir);
    st = system(cmd);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_engine_api__parallel_solves_share_the_run, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_engine_api__cancel_stops_a_running_step, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_engine_api__bad_requests, setup, teardown),
            cmocka_unit_test_setup_teardown(test_engine_api__resolve_image_config, setup, teardown),
    };
    kiln_error *err = NULL;
    int ret;

    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root\n");
        return 77;
    }
    if (make_fixture() < 0) {
        fprintf(stderr, "SKIP: cannot build the fixture image (KILN_MAKE_BASE_IMAGE)\n");
        return 77;
    }
    ret = cmocka_run_group_tests(tests, NULL, NULL);
    kiln_fs_rm_rf(fixture_dir, &err);
    kiln_error_free(&err);
    free(fixture_dir);
    return ret;
}
