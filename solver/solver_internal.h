/*
 * solver_internal.h: the structures shared by the solver's files (solver.c: solver and build
 * handles, events, summary; scheduler.c: vertex state machine and pool jobs; cachekey.c: keys;
 * opctx.c: the exec context). Never included outside solver/ (tests excepted).
 *
 * Locking: one mutex per solver (kiln_solver.lock) guards the registry, every vertex's state and
 * every build's state. Op and cache table calls are made without it. Functions named *_locked
 * expect it held.
 */
#ifndef KILN_SOLVER_SOLVER_INTERNAL_H
#define KILN_SOLVER_SOLVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/digest.h"
#include "base/map.h"
#include "base/threadpool.h"
#include "base/vec.h"
#include "solver/solver.h"

typedef struct solver_key {
    char key[KILN_DIGEST_STRLEN + 1];
    bool trusted; /* may be used for lookups (no rebuilt-on-purpose input behind it) */
} solver_key;

/* A vertex of the shared registry. Refcounted: +1 per build that loaded it, +1 per dependant
 * vertex, +1 per in-flight pool job or exec context. */
typedef struct solver_vertex {
    kiln_solver *s;
    char *ident;               /* registry key: digest, plus a suffix when the cache is ignored */
    kiln_vertex_desc desc;     /* strings, inputs and op owned */
    struct solver_vertex **in; /* desc.ninputs inputs (each holds a ref) */
    kiln_vec dependants;       /* borrowed solver_vertex * */
    kiln_vec builds;           /* active builds that need this vertex (borrowed) */
    unsigned refs;
    unsigned nactive; /* == builds.len */
    bool ignore;      /* never look up */
    bool tainted;     /* ignore, or an ancestor ignores: definition keys not trusted */

    /* state machine (see scheduler.c) */
    bool dirty, busy, mapped, map_started, keyed, need_result, probe_started, def_probed,
            def_missed, slow_started, done, failed, cached;
    kiln_cache_map cm;
    solver_key *keys; /* nkeys entries (at most KILN_SOLVER_MAX_KEYS), keys[0] = definition-based
                       * key; allocated when keyed, grown by the slow path only */
    size_t nkeys;
    kiln_solver_result **results; /* desc.noutputs, valid when done */
    kiln_error *error;            /* when failed */
    kiln_op_ctx *ctx;             /* the running exec, or NULL */
    int64_t started_ns, completed_ns;
} solver_vertex;

struct kiln_solver {
    pthread_mutex_t lock;
    kiln_threadpool *pool;
    kiln_threadpool *wait_pool; /* execs of KILN_VERTEX_WAITS vertices */
    unsigned max_parallelism;
    const kiln_op_ops *ops;
    void *op_payload;
    const kiln_cache_ops *cache;
    void *cache_payload;
    kiln_map registry;  /* ident -> solver_vertex * (borrowed: the vertex removes itself) */
    kiln_vec builds;    /* live builds (borrowed) */
    kiln_vec dirty;     /* vertices to advance (each holds a ref) */
    kiln_vec ready;     /* jobs queued by advancing, submitted when the drain ends */
    kiln_vec to_cancel; /* exec contexts to cancel once the lock is dropped (refs) */
    bool draining;
};

struct kiln_solver_build {
    kiln_solver *s;
    bool no_cache;
    kiln_vec filter; /* strvec of names/digests */
    kiln_progress_fn progress;
    void *progress_payload;
    kiln_map pending; /* digest -> kiln_vertex_desc * (owned copies) until start */
    bool started, finished, attached;
    solver_vertex *target;
    unsigned output;
    kiln_vec vertices; /* loaded vertices, inputs first (refs) */
    kiln_vec names;    /* this build's display name of each vertex (strvec), also of merged ones */
    kiln_map index;    /* ident -> (uintptr_t)(position in vertices + 1) */
    kiln_build_summary summary; /* vertices parallel to `vertices` */
    kiln_solver_result *result;
    kiln_error *error;
    pthread_cond_t cond;
};

struct kiln_op_ctx {
    kiln_solver *s;
    solver_vertex *v; /* holds a ref */
    atomic_int refs;
    atomic_bool canceled;
    _Atomic(void *) data;
    pthread_mutex_t mu;
    pthread_cond_t cond;
};

/* solver.c */
void solver_lock(kiln_solver *s);
/* Unlock, then run the cancel callbacks queued under the lock. */
void solver_unlock(kiln_solver *s);
/* Emit ev (digest and name filled in) to every build attached to v / to build b alone. */
void solver_emit_locked(solver_vertex *v, const kiln_progress_event *ev);
void solver_emit_build_locked(kiln_solver_build *b, solver_vertex *v,
                              const kiln_progress_event *ev);
/* Every build attached to v fails with a copy of v->error (then detaches). */
void solver_fail_builds_locked(solver_vertex *v);
kiln_error *solver_canceled_error(void);
/* End build b with error e (takes ownership); no-op when finished. */
void solver_build_fail_locked(kiln_solver_build *b, kiln_error *e);
/* Builds whose target is v (now done) succeed. */
void solver_finish_builds_locked(solver_vertex *v);

/* scheduler.c */
int solver_vertex_new_locked(solver_vertex **out, kiln_solver *s, kiln_vertex_desc *desc,
                             const char *ident, solver_vertex **inputs, bool ignore,
                             kiln_error **err);
void solver_vertex_ref_locked(solver_vertex *v);
void solver_vertex_unref_locked(solver_vertex *v);
void solver_mark_dirty_locked(solver_vertex *v);
/* Advance every dirty vertex until none is left. */
void solver_drain_locked(kiln_solver *s);
/* A build starts/stops needing v. */
void solver_attach_locked(solver_vertex *v, kiln_solver_build *b);
void solver_detach_locked(solver_vertex *v, kiln_solver_build *b);
void solver_desc_free(kiln_vertex_desc *d, kiln_solver *s);

/* cachekey.c */
/* One component of a key: kind 'k' (value = an input key, index = output) or 'c' (content). */
typedef struct solver_key_part {
    char kind;
    const char *value;
    unsigned index;
    const char *selector;
} solver_key_part;
void solver_key_compute(char out[KILN_DIGEST_STRLEN + 1], const char *base,
                        const solver_key_part *parts, size_t nparts);
/* Fill v->keys[1..] with the slow combinations given the content digests (NULL where the dep has
 * no content flag); keys[0] must be set. Returns the new nkeys. */
size_t solver_keys_expand(solver_vertex *v, char *const *content);

/* opctx.c */
kiln_op_ctx *solver_ctx_new(kiln_solver *s, solver_vertex *v);
void solver_ctx_ref(kiln_op_ctx *ctx);
/* Drop a reference; must be called without the solver lock. */
void solver_ctx_unref(kiln_op_ctx *ctx);
/* Mark cancelled and wake kiln_op_ctx_sleep (no op callback). */
void solver_ctx_mark_canceled(kiln_op_ctx *ctx);

#endif
