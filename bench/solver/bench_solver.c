/*
 * bench_solver.c: solver overhead with fake ops (no I/O) and an in-memory cache store
 * (tests/unit/solver/fake_ops.c). Builds a generated layered graph of 10,000 vertices (100
 * layers of 100, each vertex reading 3 vertices of the layer above, plus a small reduction tree
 * to one target) cold, then fully cached, and an unchanged rebuild of a 20-step chain.
 * Prints timings; never a pass/fail test. Usage: bench_solver [max-parallelism]
 */
#include <inttypes.h>

#include "base/base.h"
#include "base/str.h"
#include "tests/unit/solver/fake_ops.h"

#define LAYERS 100
#define WIDTH  100

static fake_env env;

static void
die_on(int rc, kiln_error *err, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "bench_solver: %s: %s\n", what, err ? err->msg : "?");
        exit(1);
    }
}

/* Add the layered graph to b; returns the target digest. */
static const char *
add_layered(kiln_solver_build *b)
{
    char name[32], files[48], in[3][32];
    kiln_error *err = NULL;

    for (int l = 0; l < LAYERS; l++) {
        for (int i = 0; i < WIDTH; i++) {
            fake_spec sp = {.name = name, .files = files};

            snprintf(name, sizeof(name), "v%d.%d", l, i);
            snprintf(files, sizeof(files), "f=%d.%d", l, i);
            for (int k = 0; l > 0 && k < 3; k++) {
                snprintf(in[k], sizeof(in[k]), "v%d.%d", l - 1, (i * 7 + k * 31) % WIDTH);
                sp.inputs[k] = in[k];
            }
            die_on(fake_add(b, &sp, &err), err, "add");
        }
    }
    /* reduction tree so that every vertex is an ancestor of the target: 100 -> 7 -> 1 */
    for (int j = 0; j * 16 < WIDTH; j++) {
        char ins[16][32];
        fake_spec sp = {.name = name, .files = "r=1"};

        snprintf(name, sizeof(name), "reduce%d", j);
        for (int k = 0; k < 16 && j * 16 + k < WIDTH; k++) {
            snprintf(ins[k], sizeof(ins[k]), "v%d.%d", LAYERS - 1, j * 16 + k);
            sp.inputs[k] = ins[k];
        }
        die_on(fake_add(b, &sp, &err), err, "add");
    }
    {
        char ins[8][32];
        fake_spec sp = {.name = "target", .files = "t=1"};

        for (int j = 0; j * 16 < WIDTH; j++) {
            snprintf(ins[j], sizeof(ins[j]), "reduce%d", j);
            sp.inputs[j] = ins[j];
        }
        die_on(fake_add(b, &sp, &err), err, "add");
    }
    return "target";
}

static const char *
add_chain(kiln_solver_build *b)
{
    char name[16], prev[16];
    kiln_error *err = NULL;

    for (int i = 0; i < 20; i++) {
        fake_spec sp = {.name = name, .files = "c=1"};

        snprintf(name, sizeof(name), "step%d", i);
        if (i > 0)
            sp.inputs[0] = prev;
        die_on(fake_add(b, &sp, &err), err, "add");
        kiln_strlcpy(prev, name, sizeof(prev));
    }
    return "step19";
}

/* One build: returns nanoseconds from build creation to result. */
static int64_t
run(kiln_solver *s, const char *(*add)(kiln_solver_build *), size_t *nvertices)
{
    kiln_solver_build *b = NULL;
    kiln_solver_result *r = NULL;
    kiln_error *err = NULL;
    int64_t t0 = kiln_solver_now_ns(), t;
    const char *target;

    die_on(kiln_solver_build_new(&b, s, NULL, &err), err, "build");
    target = add(b);
    die_on(kiln_solver_build_start(b, target, 0, &err), err, "start");
    die_on(kiln_solver_build_wait(&r, b, &err), err, "wait");
    t = kiln_solver_now_ns() - t0;
    *nvertices = kiln_solver_build_summary(b)->nvertices;
    fake_result_unref(r);
    kiln_solver_build_free(b);
    return t;
}

int
main(int argc, char **argv)
{
    kiln_solver_opts o = {.op_ops = &fake_op_ops,
                          .op_payload = &env,
                          .cache_ops = &fake_cache_ops,
                          .cache_payload = &env};
    kiln_solver *s = NULL;
    kiln_error *err = NULL;
    uint64_t par = 0;
    size_t nv = 0;
    int64_t cold, warm, chain_cold, chain_warm = INT64_MAX;

    if (argc > 1)
        die_on(kiln_parse_u64(argv[1], &par, "max-parallelism", &err), err, "usage");
    o.max_parallelism = (unsigned)par;
    fake_env_init(&env);
    die_on(kiln_solver_new(&s, &o, &err), err, "solver");

    cold = run(s, add_layered, &nv);
    printf("layered graph: %zu vertices, %d executed\n", nv, fake_total_execs(&env));
    printf("  cold solve:            %8.1f ms\n", (double)cold / 1e6);
    env.lookups = env.loads = 0;
    warm = run(s, add_layered, &nv);
    printf("  fully cached solve:    %8.1f ms (target < 1000 ms), %d lookups, %d loads\n",
           (double)warm / 1e6, env.lookups, env.loads);

    chain_cold = run(s, add_chain, &nv);
    for (int i = 0; i < 10; i++) { /* best of 10: scheduler noise on a busy machine */
        int64_t t = run(s, add_chain, &nv);

        chain_warm = t < chain_warm ? t : chain_warm;
    }
    printf("20-step chain: cold %.2f ms, unchanged rebuild %.3f ms (target < 20 ms)\n",
           (double)chain_cold / 1e6, (double)chain_warm / 1e6);
    printf("executions in total: %d\n", fake_total_execs(&env));
    kiln_solver_free(s);
    fake_env_dispose(&env);
    return 0;
}
