/*
 * test_solver.c: unit tests of the solver with a fake op table and cache store (fake_ops.c):
 * dedup, parallelism, cache keys (definition and content), no-cache options, failures,
 * cancellation, progress events and summaries. No root needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"
#include "solver/solver_internal.h"
#include "tests/unit/solver/fake_ops.h"

#define MS 1000000LL

static fake_env env;

static int
setup(void **state)
{
    (void)state;
    fake_env_init(&env);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    fake_env_clear_cache(&env);
    assert_int_equal(atomic_load(&env.live_results), 0); /* every result reference released */
    fake_env_dispose(&env);
    return 0;
}

static kiln_solver *
new_solver(unsigned par, bool cache)
{
    kiln_solver_opts o = {
            .max_parallelism = par,
            .op_ops = &fake_op_ops,
            .op_payload = &env,
            .cache_ops = cache ? &fake_cache_ops : NULL,
            .cache_payload = &env,
    };
    kiln_solver *s = NULL;
    kiln_error *err = NULL;

    assert_int_equal(kiln_solver_new(&s, &o, &err), 0);
    return s;
}

/* Add specs to a new build and start it on `target` output 0. */
static kiln_solver_build *
start(kiln_solver *s, const kiln_solve_opts *o, const fake_spec *sp, size_t n, const char *target)
{
    kiln_solver_build *b = NULL;
    kiln_error *err = NULL;
    kiln_solve_opts def = {.progress = fake_progress, .progress_payload = &env};

    assert_int_equal(kiln_solver_build_new(&b, s, o ? o : &def, &err), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fake_add(b, &sp[i], &err), 0);
    assert_int_equal(kiln_solver_build_start(b, target, 0, &err), 0);
    return b;
}

/* Wait for b; on success *content = copy of the result content. Returns the wait code. */
static int
finish(kiln_solver_build *b, char **content, kiln_error **err)
{
    kiln_solver_result *r = NULL;
    int rc = kiln_solver_build_wait(&r, b, err);

    if (rc == 0) {
        if (content)
            *content = xstrdup(fake_result_content(r));
        fake_result_unref(r);
    }
    return rc;
}

static int
solve(kiln_solver *s, const kiln_solve_opts *o, const fake_spec *sp, size_t n, const char *target,
      char **content, kiln_error **err)
{
    kiln_solver_build *b = start(s, o, sp, n, target);
    int rc = finish(b, content, err);

    kiln_solver_build_free(b);
    return rc;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- cache key format ---- */

static void
test_solver_cachekey__format(void **state)
{
    /* golden values computed independently from the format documented in solver.h */
    solver_key_part parts[2] = {{'k', "sha256:aa", 0, "sel"}, {'c', "sha256:bb", 7, NULL}};
    char key[KILN_DIGEST_STRLEN + 1];

    (void)state;
    solver_key_compute(key, "b", parts, 2);
    assert_string_equal(key, "sha256:63ebecabec59ad36ea8335236976b07f0768685e3c23933f5d79f3d3"
                             "c66b3512");
    solver_key_compute(key, "base0", NULL, 0);
    assert_string_equal(key, "sha256:6ccbd5b21fd492d33e6aa4e2c34d1b519a8200f269032de490d30739"
                             "bff6d202");
    /* the output index of a definition component is part of the key */
    parts[0].index = 1;
    solver_key_compute(key, "b", parts, 2);
    assert_string_not_equal(key, "sha256:63ebecabec59ad36ea8335236976b07f0768685e3c23933f5d79f3"
                                 "d3c66b3512");
}

/* ---- dedup ---- */

static void
test_solver_dedup__within_graph(void **state)
{
    /* diamond: a -> b, a -> c (output 1 of a), b + c -> d; a added twice */
    fake_spec g[] = {
            {.name = "a", .files = "x=1", .noutputs = 2},
            {.name = "b", .inputs = {"a"}},
            {.name = "c", .inputs = {"a"}, .input_out = {1}},
            {.name = "a", .files = "ignored: duplicate digest"},
            {.name = "d", .inputs = {"b", "c"}},
    };
    kiln_solver *s = new_solver(2, false);
    cleanup_free char *out = NULL;
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(solve(s, NULL, g, N(g), "d", &out, &err), 0);
    assert_int_equal(fake_execs(&env, "a"), 1);
    assert_int_equal(fake_total_execs(&env), 4);
    assert_string_equal(out, "x=1;step=b;x=1;out=1;step=c;step=d");
    kiln_solver_free(s);
}

static void
test_solver_dedup__concurrent_builds(void **state)
{
    /* two builds with different targets share a slow vertex: it runs once, both get it */
    fake_spec g1[] = {{.name = "shared", .files = "s=1", .sleep_ms = 200},
                      {.name = "t1", .inputs = {"shared"}}};
    fake_spec g2[] = {{.name = "shared too", .digest = "shared", .files = "s=1", .sleep_ms = 200},
                      {.name = "t2", .inputs = {"shared"}}};
    kiln_solver *s = new_solver(4, false);
    kiln_solver_build *b1 = start(s, NULL, g1, 2, "t1");
    kiln_solver_build *b2 = start(s, NULL, g2, 2, "t2");
    cleanup_free char *o1 = NULL;
    cleanup_free char *o2 = NULL;
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(finish(b1, &o1, &err), 0);
    assert_int_equal(finish(b2, &o2, &err), 0);
    assert_int_equal(fake_execs(&env, "shared"), 1);
    assert_int_equal(s->registry.len, 3); /* shared, t1, t2: one registry entry for shared */
    /* each build reports the vertex under its own name */
    assert_string_equal(kiln_solver_build_summary(b2)->vertices[0].name, "shared too");
    assert_string_equal(kiln_solver_build_summary(b1)->vertices[0].name, "shared");
    assert_string_equal(o1, "s=1;step=t1");
    assert_string_equal(o2, "s=1;step=t2");
    kiln_solver_build_free(b1);
    assert_int_equal(s->registry.len, 2); /* b2 still holds shared and t2 */
    kiln_solver_build_free(b2);
    assert_int_equal(s->registry.len, 0);
    kiln_solver_free(s);
}

static void
test_solver_dedup__no_cache_not_merged(void **state)
{
    /* a no-cache build must not reuse the run of a concurrent cached build, nor vice versa */
    fake_spec g[] = {{.name = "a", .files = "a=1", .sleep_ms = 100},
                     {.name = "t", .inputs = {"a"}}};
    kiln_solve_opts nc = {.no_cache = true};
    kiln_solver *s = new_solver(4, true);
    kiln_solver_build *b1 = start(s, NULL, g, 2, "t");
    kiln_solver_build *b2 = start(s, &nc, g, 2, "t");
    kiln_solver_build *b3 = start(s, &nc, g, 2, "t");
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(finish(b1, NULL, &err), 0);
    assert_int_equal(finish(b2, NULL, &err), 0);
    assert_int_equal(finish(b3, NULL, &err), 0);
    assert_int_equal(fake_execs(&env, "a"), 2); /* cached build once, no-cache builds once */
    assert_int_equal(s->registry.len, 4);
    /* a later no-cache build runs afresh although b2 and b3 still hold the finished run */
    kiln_solver_build_free(b1);
    b1 = start(s, &nc, g, 2, "t");
    assert_int_equal(finish(b1, NULL, &err), 0);
    assert_int_equal(fake_execs(&env, "a"), 3);
    assert_int_equal(fake_execs(&env, "t"), 3);
    assert_int_equal(s->registry.len, 2); /* the new run; the old one is retired */
    kiln_solver_build_free(b1);
    kiln_solver_build_free(b2);
    kiln_solver_build_free(b3);
    assert_int_equal(s->registry.len, 0);
    kiln_solver_free(s);
}

static void
test_solver_build__misuse(void **state)
{
    fake_spec g[] = {{.name = "a", .files = "a=1", .sleep_ms = 100}};
    kiln_solver *s = new_solver(1, false);
    kiln_solver_build *b = NULL;
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(kiln_solver_build_new(&b, s, NULL, &err), 0);
    assert_int_equal(kiln_solver_build_wait(NULL, b, &err), KILN_EINVAL); /* not started */
    kiln_error_free(&err);
    assert_int_equal(fake_add(b, &(fake_spec){.name = "bad~digest"}, &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(fake_add(b, &g[0], &err), 0);
    assert_int_equal(kiln_solver_build_start(b, "missing", 0, &err), KILN_EINVAL);
    kiln_error_free(&err);
    kiln_solver_build_free(b);

    b = start(s, NULL, g, 1, "a");
    assert_null(kiln_solver_build_summary(b));               /* still running */
    assert_int_equal(fake_add(b, &g[0], &err), KILN_EINVAL); /* started */
    kiln_error_free(&err);
    assert_int_equal(kiln_solver_build_start(b, "a", 0, &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(finish(b, NULL, &err), 0);
    assert_int_equal(kiln_solver_build_summary(b)->nvertices, 1);
    assert_int_equal(kiln_solver_build_summary(b)->vertices[0].status, KILN_VSTATUS_DONE);
    assert_int_equal(kiln_solver_build_summary(b)->nexecuted, 1);
    kiln_solver_build_free(b);
    kiln_solver_free(s);
}

/* ---- parallelism ---- */

/* Three 200 ms steps and a merge. With `meet` set the steps also wait for each other to be
 * running at once (up to 5 s), which makes the concurrency check independent of machine load. */
static int64_t
timed_fanin(unsigned par, int meet)
{
    fake_spec g[] = {
            {.name = "p1", .files = "a=1", .sleep_ms = 200, .rendezvous = meet},
            {.name = "p2", .files = "b=1", .sleep_ms = 200, .rendezvous = meet},
            {.name = "p3", .files = "c=1", .sleep_ms = 200, .rendezvous = meet},
            {.name = "merge", .inputs = {"p1", "p2", "p3"}},
    };
    kiln_solver *s = new_solver(par, false);
    kiln_error *err = NULL;
    int64_t t0 = kiln_solver_now_ns();

    assert_int_equal(solve(s, NULL, g, N(g), "merge", NULL, &err), 0);
    t0 = kiln_solver_now_ns() - t0;
    kiln_solver_free(s);
    return t0;
}

static void
test_solver_sched__parallel(void **state)
{
    int64_t t = timed_fanin(3, 3);

    (void)state;
    /* all three ran at once, and the whole graph took less than the 600 ms of a serial run */
    assert_int_equal(env.max_running, 3);
    assert_true(t < 600 * MS);
}

static void
test_solver_sched__serial(void **state)
{
    int64_t t = timed_fanin(1, 0);

    (void)state;
    assert_true(t >= 600 * MS);
    assert_int_equal(env.max_running, 1);
}

/* Steps that wait on a process (KILN_VERTEX_WAITS, a RUN) hold no max_parallelism slot: with one
 * slot, three of them still run at once (each waits until all three run). */
static void
test_solver_sched__waiting_steps(void **state)
{
    fake_spec g[] = {
            {.name = "w1",
             .files = "a=1",
             .sleep_ms = 50,
             .rendezvous = 3,
             .flags = KILN_VERTEX_WAITS},
            {.name = "w2",
             .files = "b=1",
             .sleep_ms = 50,
             .rendezvous = 3,
             .flags = KILN_VERTEX_WAITS},
            {.name = "w3",
             .files = "c=1",
             .sleep_ms = 50,
             .rendezvous = 3,
             .flags = KILN_VERTEX_WAITS},
            {.name = "merge", .inputs = {"w1", "w2", "w3"}},
    };
    kiln_solver *s = new_solver(1, false);
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(solve(s, NULL, g, N(g), "merge", NULL, &err), 0);
    assert_int_equal(env.max_running, 3);
    kiln_solver_free(s);
}

static void
test_solver_sched__only_needed(void **state)
{
    fake_spec g[] = {
            {.name = "a", .files = "a=1"},
            {.name = "unused", .inputs = {"a"}},
            {.name = "t", .inputs = {"a"}},
    };
    kiln_solver *s = new_solver(2, false);
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(solve(s, NULL, g, N(g), "t", NULL, &err), 0);
    assert_int_equal(fake_execs(&env, "unused"), 0);
    assert_int_equal(fake_total_execs(&env), 2);
    kiln_solver_free(s);
}

/* ---- cache ---- */

static void
test_solver_cache__unchanged_rebuild(void **state)
{
    fake_spec g[] = {
            {.name = "c1", .files = "f=1"},   {.name = "c2", .inputs = {"c1"}},
            {.name = "c3", .inputs = {"c2"}}, {.name = "c4", .inputs = {"c3"}},
            {.name = "c5", .inputs = {"c4"}},
    };
    kiln_solver *s = new_solver(2, true);
    kiln_solver_build *b;
    const kiln_build_summary *sum;
    cleanup_free char *o1 = NULL;
    cleanup_free char *o2 = NULL;
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(solve(s, NULL, g, N(g), "c5", &o1, &err), 0);
    assert_int_equal(fake_total_execs(&env), 5);
    env.loads = env.lookups = 0;
    b = start(s, NULL, g, N(g), "c5");
    assert_int_equal(finish(b, &o2, &err), 0);
    assert_int_equal(fake_total_execs(&env), 5); /* nothing executed */
    assert_int_equal(env.lookups, 1);            /* only the target was looked up */
    assert_int_equal(env.loads, 1);              /* and only its result loaded */
    assert_string_equal(o1, o2);
    sum = kiln_solver_build_summary(b);
    assert_non_null(sum);
    assert_int_equal(sum->nvertices, 5);
    assert_int_equal(sum->ncached, 1);
    assert_int_equal(sum->nexecuted, 0);
    assert_string_equal(sum->vertices[4].name, "c5");
    assert_int_equal(sum->vertices[4].status, KILN_VSTATUS_CACHED);
    assert_int_equal(sum->vertices[0].status, KILN_VSTATUS_SKIPPED);
    assert_non_null(sum->vertices[0].cache_key);
    kiln_solver_build_free(b);
    kiln_solver_free(s);
}

/* src (base and files vary) -> copy (reads only file a, by content) -> after */
static int
content_build(kiln_solver *s, const char *base, const char *files, char **out)
{
    fake_spec g[] = {
            {.name = "src", .base = base, .files = files},
            {.name = "copy", .inputs = {"src"}, .selectors = {"a"}, .content = {true}},
            {.name = "after", .inputs = {"copy"}},
    };
    kiln_error *err = NULL;

    return solve(s, NULL, g, N(g), "after", out, &err);
}

static void
test_solver_cache__content_keys(void **state)
{
    kiln_solver *s = new_solver(2, true);
    cleanup_free char *o1 = NULL;
    cleanup_free char *o2 = NULL;
    cleanup_free char *o3 = NULL;

    (void)state;
    assert_int_equal(content_build(s, "v1", "a=1;b=2", &o1), 0);
    assert_int_equal(fake_total_execs(&env), 3);
    /* the source changed, but not the file copy reads: copy and after stay cached */
    assert_int_equal(content_build(s, "v2", "a=1;b=3", &o2), 0);
    assert_int_equal(fake_execs(&env, "src"), 2);
    assert_int_equal(fake_execs(&env, "copy"), 1);
    assert_int_equal(fake_execs(&env, "after"), 1);
    assert_string_equal(o1, o2); /* the cached result of the first build */
    /* the selected file changed: everything below runs */
    assert_int_equal(content_build(s, "v3", "a=9;b=3", &o3), 0);
    assert_int_equal(fake_execs(&env, "copy"), 2);
    assert_int_equal(fake_execs(&env, "after"), 2);
    assert_string_equal(o3, "a=9;b=3;step=copy;step=after");
    /* an unchanged rebuild after a content hit hits on the definition key alone */
    env.lookups = 0;
    assert_int_equal(content_build(s, "v2", "a=1;b=3", NULL), 0);
    assert_int_equal(fake_total_execs(&env), 7);
    assert_int_equal(env.lookups, 1);
    kiln_solver_free(s);
}

static void
test_solver_cache__no_cache(void **state)
{
    fake_spec g[] = {{.name = "a", .files = "a=1"}, {.name = "b", .inputs = {"a"}}};
    kiln_solve_opts o = {.no_cache = true};
    kiln_solver *s = new_solver(2, true);
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(solve(s, NULL, g, N(g), "b", NULL, &err), 0);
    assert_int_equal(solve(s, &o, g, N(g), "b", NULL, &err), 0);
    assert_int_equal(fake_total_execs(&env), 4);
    /* the no-cache run refreshed the cache: a normal run is fully cached */
    assert_int_equal(solve(s, NULL, g, N(g), "b", NULL, &err), 0);
    assert_int_equal(fake_total_execs(&env), 4);
    /* the flag on one vertex (OpMetadata.ignore_cache) */
    g[1].flags = KILN_VERTEX_IGNORE_CACHE;
    assert_int_equal(solve(s, NULL, g, N(g), "b", NULL, &err), 0);
    assert_int_equal(fake_execs(&env, "a"), 2);
    assert_int_equal(fake_execs(&env, "b"), 3);
    kiln_solver_free(s);
}

static void
test_solver_cache__no_cache_filter(void **state)
{
    fake_spec g[] = {
            {.name = "a", .files = "a=1"},
            {.name = "b", .digest = "sha256:b", .inputs = {"a"}},
            {.name = "c", .inputs = {"sha256:b"}},
            {.name = "d", .inputs = {"sha256:b"}, .selectors = {"a"}, .content = {true}},
            {.name = "t", .inputs = {"c", "d"}},
    };
    const char *filter[] = {"b"};
    kiln_solve_opts o = {.no_cache_filter = filter, .n_no_cache_filter = 1};
    kiln_solver *s = new_solver(2, true);
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(solve(s, NULL, g, N(g), "t", NULL, &err), 0);
    assert_int_equal(fake_total_execs(&env), 5);
    assert_int_equal(solve(s, &o, g, N(g), "t", NULL, &err), 0);
    assert_int_equal(fake_execs(&env, "a"), 1); /* loaded from the cache for b */
    assert_int_equal(fake_execs(&env, "b"), 2); /* filtered: rebuilt */
    assert_int_equal(fake_execs(&env, "c"), 2); /* below a rebuilt vertex: rebuilt */
    assert_int_equal(fake_execs(&env, "d"), 1); /* reads unchanged content of b: cached */
    assert_int_equal(fake_execs(&env, "t"), 2);
    /* filter by digest works too */
    filter[0] = "sha256:b";
    assert_int_equal(solve(s, &o, g, N(g), "t", NULL, &err), 0);
    assert_int_equal(fake_execs(&env, "b"), 3);
    kiln_solver_free(s);
}

static void
test_solver_cache__load_failure_executes(void **state)
{
    /* a key that is recorded but whose result cannot be loaded counts as a miss */
    fake_spec g[] = {{.name = "a", .files = "a=1"}, {.name = "b", .inputs = {"a"}}};
    kiln_solver *s = new_solver(2, true);
    cleanup_free char *o1 = NULL;
    cleanup_free char *o2 = NULL;
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(solve(s, NULL, g, N(g), "b", &o1, &err), 0);
    env.fail_loads = true;
    assert_int_equal(solve(s, NULL, g, N(g), "b", &o2, &err), 0);
    assert_int_equal(fake_total_execs(&env), 4);
    assert_string_equal(o1, o2);
    kiln_solver_free(s);
}

/* ---- errors and cancellation ---- */

static void
test_solver_error__cache_map_and_checksum(void **state)
{
    fake_spec g[] = {{.name = "a", .files = "a=1"},
                     {.name = "copy", .inputs = {"a"}, .selectors = {"nope"}, .content = {true}}};
    kiln_solver *s = new_solver(2, true);
    cleanup_kiln_error kiln_error *err = NULL;

    (void)state;
    /* a selected path missing from the input fails the vertex that reads it */
    assert_int_equal(solve(s, NULL, g, N(g), "copy", NULL, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err->msg, "copy: checksum input 0: `nope` not found"));
    kiln_error_free(&err);
    assert_int_equal(fake_execs(&env, "copy"), 0);
    /* a failing cache map (e.g. an image that cannot be resolved) fails the build */
    env.fail_cache_map = true;
    assert_int_equal(solve(s, NULL, g, N(g), "copy", NULL, &err), KILN_EAUTH);
    assert_non_null(strstr(err->msg, "unauthorized"));
    kiln_solver_free(s);
}

static void
test_solver_error__propagation(void **state)
{
    fake_spec g[] = {
            {.name = "base", .files = "a=1"},
            {.name = "[2/3] RUN false",
             .inputs = {"base"},
             .fail = true,
             .sleep_ms = 50,
             .src_file = "Dockerfile",
             .src_line = 7},
            {.name = "after", .inputs = {"[2/3] RUN false"}},
            {.name = "slow sibling", .files = "s=1", .sleep_ms = 10000},
            {.name = "t", .inputs = {"after", "slow sibling"}},
    };
    kiln_solver *s = new_solver(3, false);
    kiln_solver_build *b = start(s, NULL, g, N(g), "t");
    cleanup_kiln_error kiln_error *err = NULL;
    const kiln_build_summary *sum;
    int64_t t0 = kiln_solver_now_ns();

    (void)state;
    assert_int_equal(finish(b, NULL, &err), KILN_EINVAL);
    assert_true(kiln_solver_now_ns() - t0 < 2000 * MS);
    assert_non_null(err);
    assert_int_equal(err->code, KILN_EINVAL);
    assert_non_null(strstr(err->msg, "[2/3] RUN false: process"));
    assert_non_null(strstr(err->msg, "exit code 1"));
    assert_string_equal(err->file, "Dockerfile");
    assert_int_equal(err->line, 7);
    sum = kiln_solver_build_summary(b);
    assert_int_equal(sum->vertices[1].status, KILN_VSTATUS_FAILED);
    assert_non_null(strstr(sum->vertices[1].error, "Dockerfile:7"));
    kiln_solver_build_free(b);
    kiln_solver_free(s); /* waits for the cancelled sibling */
    assert_int_equal(fake_execs(&env, "after"), 0);
    assert_int_equal(fake_execs(&env, "t"), 0);
    assert_int_equal(env.canceled_execs, 1); /* the sibling saw the cancel */
    assert_int_equal(env.cancels, 1);        /* through the op table too */
}

static void
test_solver_cancel__latency(void **state)
{
    fake_spec g[] = {{.name = "sleeper", .files = "a=1", .sleep_ms = 10000},
                     {.name = "t", .inputs = {"sleeper"}}};
    kiln_solver *s = new_solver(2, false);
    kiln_solver_build *b = start(s, NULL, g, N(g), "t");
    kiln_error *err = NULL;
    int64_t t0;

    (void)state;
    assert_true(fake_wait_running(&env, 1));
    t0 = kiln_solver_now_ns();
    kiln_solver_build_cancel(b);
    assert_int_equal(finish(b, NULL, &err), KILN_ECANCELED);
    kiln_error_free(&err);
    kiln_solver_build_free(b);
    kiln_solver_free(s); /* returns once the op has returned */
    assert_true(kiln_solver_now_ns() - t0 < 100 * MS);
    assert_int_equal(env.canceled_execs, 1);
    assert_int_equal(env.cancels, 1); /* the op table's cancel callback ran */
    assert_int_equal(fake_execs(&env, "t"), 0);
}

static void
test_solver_cancel__shared_vertex_survives(void **state)
{
    /* cancelling one of two builds that share a running vertex must not cancel it */
    fake_spec g1[] = {{.name = "shared", .files = "s=1", .sleep_ms = 200},
                      {.name = "t1", .inputs = {"shared"}}};
    fake_spec g2[] = {{.name = "shared", .files = "s=1", .sleep_ms = 200},
                      {.name = "t2", .inputs = {"shared"}}};
    kiln_solver *s = new_solver(2, false);
    kiln_solver_build *b1 = start(s, NULL, g1, 2, "t1");
    kiln_solver_build *b2 = start(s, NULL, g2, 2, "t2");
    kiln_error *err = NULL;

    (void)state;
    assert_true(fake_wait_running(&env, 1));
    kiln_solver_cancel(s); /* all builds: both return ECANCELED */
    assert_int_equal(finish(b1, NULL, &err), KILN_ECANCELED);
    kiln_error_free(&err);
    assert_int_equal(finish(b2, NULL, &err), KILN_ECANCELED);
    kiln_error_free(&err);
    kiln_solver_build_free(b1);
    kiln_solver_build_free(b2);
    assert_true(fake_wait_count(&env, &env.canceled_execs, 1)); /* the op saw the cancel */

    b1 = start(s, NULL, g1, 2, "t1");
    b2 = start(s, NULL, g2, 2, "t2");
    assert_true(fake_wait_running(&env, 1));
    kiln_solver_build_cancel(b1);
    assert_int_equal(finish(b1, NULL, &err), KILN_ECANCELED);
    kiln_error_free(&err);
    assert_int_equal(finish(b2, NULL, &err), 0);
    pthread_mutex_lock(&env.mu);
    assert_int_equal(env.canceled_execs, 1); /* still needed by b2: not cancelled */
    pthread_mutex_unlock(&env.mu);
    assert_int_equal(fake_execs(&env, "shared"), 2);
    kiln_solver_build_free(b1);
    kiln_solver_build_free(b2);
    kiln_solver_free(s);
}

static void
test_solver_error__invalid_graph(void **state)
{
    fake_spec missing[] = {{.name = "a", .inputs = {"nope"}}};
    fake_spec cycle[] = {{.name = "a", .inputs = {"b"}}, {.name = "b", .inputs = {"a"}}};
    fake_spec badout[] = {{.name = "a", .files = "x"},
                          {.name = "b", .inputs = {"a"}, .input_out = {3}}};
    kiln_solver *s = new_solver(1, false);
    const fake_spec *graphs[] = {missing, cycle, badout};
    size_t sizes[] = {1, 2, 2};
    const char *targets[] = {"a", "a", "b"};

    (void)state;
    for (size_t k = 0; k < 3; k++) {
        kiln_solver_build *b = NULL;
        kiln_error *err = NULL;

        assert_int_equal(kiln_solver_build_new(&b, s, NULL, &err), 0);
        for (size_t i = 0; i < sizes[k]; i++)
            assert_int_equal(fake_add(b, &graphs[k][i], &err), 0);
        assert_int_equal(kiln_solver_build_start(b, targets[k], 0, &err), KILN_EINVAL);
        kiln_error_free(&err);
        assert_int_equal(kiln_solver_build_wait(NULL, b, &err), KILN_EINVAL);
        kiln_error_free(&err);
        kiln_solver_build_free(b);
    }
    assert_int_equal(fake_total_execs(&env), 0);
    kiln_solver_free(s);
}

/* ---- progress ---- */

static void
assert_events(const char *const *want, size_t n)
{
    size_t i;

    for (i = 0; i < n && i < env.events.len; i++)
        assert_string_equal(env.events.items[i], want[i]);
    assert_int_equal(env.events.len, n);
    assert_true(env.events_monotonic);
    kiln_strvec_dispose(&env.events);
    env.last_event_ns = 0;
}

static void
test_solver_progress__order(void **state)
{
    fake_spec g[] = {{.name = "src", .files = "a=1"},
                     {.name = "step", .inputs = {"src"}, .log = "hello"}};
    const char *cold[] = {"started:src",    "done:src",    "started:step",
                          "log:step:hello", "status:step", "done:step"};
    const char *warm[] = {"cached:step", "skipped:src"};
    kiln_solver *s = new_solver(1, true);
    kiln_error *err = NULL;

    (void)state;
    env.record_events = true;
    assert_int_equal(solve(s, NULL, g, N(g), "step", NULL, &err), 0);
    assert_events(cold, N(cold));
    assert_int_equal(solve(s, NULL, g, N(g), "step", NULL, &err), 0);
    assert_events(warm, N(warm));
    kiln_solver_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_solver_cachekey__format, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_dedup__within_graph, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_dedup__concurrent_builds, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_dedup__no_cache_not_merged, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_solver_build__misuse, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_sched__parallel, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_sched__serial, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_sched__waiting_steps, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_sched__only_needed, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_cache__unchanged_rebuild, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_cache__content_keys, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_cache__no_cache, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_cache__no_cache_filter, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_cache__load_failure_executes, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_solver_error__cache_map_and_checksum, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_solver_error__propagation, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_error__invalid_graph, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_cancel__latency, setup, teardown),
            cmocka_unit_test_setup_teardown(test_solver_cancel__shared_vertex_survives, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_solver_progress__order, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
