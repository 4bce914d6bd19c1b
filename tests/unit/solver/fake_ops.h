/*
 * fake_ops.h: a fake op table and an in-memory cache store for the solver tests and benchmark.
 * A result is a refcounted string of "file=content" pairs separated by ';'. A vertex's fake op
 * (fake_spec) says what its result contains, how long exec sleeps, whether it fails, and how its
 * cache map looks. Every exec, cancel, lookup, load and save is counted in one fake_env.
 */
#ifndef KILN_TESTS_FAKE_OPS_H
#define KILN_TESTS_FAKE_OPS_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/map.h"
#include "base/vec.h"
#include "solver/solver.h"

#define FAKE_MAX_INPUTS 16

typedef struct fake_spec {
    const char *name; /* display name; also the digest unless `digest` is set */
    const char *digest;
    const char *base;  /* cache-map base; NULL = digest */
    const char *files; /* result content; NULL = inputs' contents joined, plus ";<name>" */
    const char *inputs[FAKE_MAX_INPUTS]; /* input digests, NULL-terminated */
    unsigned input_out[FAKE_MAX_INPUTS]; /* output index of each input */
    const char *selectors[FAKE_MAX_INPUTS];
    bool content[FAKE_MAX_INPUTS];
    unsigned noutputs;
    int sleep_ms;
    int rendezvous; /* exec first waits (up to 5 s) until this many execs run at once */
    bool fail;
    unsigned flags;
    const char *log;
    const char *src_file;
    int src_line;
} fake_spec;

typedef struct fake_env {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    kiln_map execs; /* name -> (uintptr_t) count */
    kiln_map store; /* "key#output" -> kiln_solver_result * (a ref) */
    kiln_map keys;  /* key -> (void *)1: keys with results */
    int lookups, loads, saves, cancels, canceled_execs;
    int running, max_running;
    atomic_int live_results;
    kiln_vec events; /* "<type>:<name>" strings */
    int64_t last_event_ns;
    bool events_monotonic;
    bool record_events;
    bool fail_loads;     /* load returns KILN_ENOTFOUND although lookup finds the key */
    bool fail_cache_map; /* cache_map fails */
} fake_env;

extern const kiln_op_ops fake_op_ops;
extern const kiln_cache_ops fake_cache_ops;

void fake_env_init(fake_env *env);
void fake_env_dispose(fake_env *env);
/* Forget the stored cache (results released). */
void fake_env_clear_cache(fake_env *env);
int fake_execs(fake_env *env, const char *name);
int fake_total_execs(fake_env *env);
/* Wait until `running` reaches n (true) or 5 s pass (false). */
bool fake_wait_running(fake_env *env, int n);
/* Wait until *counter (a field of env) reaches n (true) or 5 s pass (false). */
bool fake_wait_count(fake_env *env, const int *counter, int n);

/* Add a vertex described by sp to b. */
int fake_add(kiln_solver_build *b, const fake_spec *sp, kiln_error **err);
/* The progress callback (payload = fake_env *): records events when env->record_events. */
void fake_progress(const kiln_progress_event *ev, void *payload);
/* The content of a result (borrowed). */
const char *fake_result_content(kiln_solver_result *r);
void fake_result_unref(kiln_solver_result *r);

#endif
