/*
 * scheduler.c: the vertex state machine and the pool jobs that drive it.
 *
 * A vertex moves through: mapped (cache_map done) -> keyed (definition key computed once every
 * input is keyed) -> [only if a build needs its result] definition-key probe -> hit: load the
 * results, done (cached) | miss: obtain every input's result, then the slow job: content digests,
 * the other key combinations, probe them -> hit: done (cached) | miss: exec, save, done.
 * So a cached target never asks for its inputs' results, and an unchanged chain loads only its
 * last vertex.
 *
 * All state changes happen under the solver lock; op and cache calls run in pool jobs without
 * it. A vertex has at most one job in flight (`busy`). Any change that may let a vertex progress
 * marks it dirty; solver_drain_locked() advances dirty vertices with an explicit work list, so a
 * 10,000-deep chain needs no deep recursion. A vertex works only while an active build needs it
 * (nactive > 0): a job that finds nactive == 0 does nothing, and when the last build detaches
 * from a running exec, the exec is cancelled.
 */
#define KILN_LOG_DOMAIN "solver"

#include <pthread.h>

#include "base/base.h"
#include "solver/solver_internal.h"

enum job_kind { JOB_MAP, JOB_PROBE, JOB_SLOW };

typedef struct solver_job {
    kiln_solver *s;
    solver_vertex *v;
    enum job_kind kind;
    bool waits; /* runs on the waiting pool (the exec of a KILN_VERTEX_WAITS vertex) */
} solver_job;

static void job_main(void *arg);

/* ---- vertex lifecycle ---- */

/*
 * Free the contents of a desc made by kiln_solver_build_add_vertex (strings, inputs, and the op
 * payload through op_free), not the desc itself.
 */
void
solver_desc_free(kiln_vertex_desc *d, kiln_solver *s)
{
    free((char *)d->digest);
    free((char *)d->name);
    free((char *)d->kind);
    free((char *)d->src_file);
    for (size_t i = 0; i < d->ninputs; i++)
        free((char *)d->inputs[i].digest);
    free((void *)d->inputs);
    if (d->op && s->ops->op_free)
        s->ops->op_free(d->op, s->op_payload);
    memset(d, 0, sizeof(*d));
}

/*
 * Create a registry vertex from `desc` (its contents move into the vertex; *desc is zeroed),
 * with input vertices `inputs` (a ref is taken on each) under registry key `ident`.
 */
int
solver_vertex_new_locked(solver_vertex **out, kiln_solver *s, kiln_vertex_desc *desc,
                         const char *ident, solver_vertex **inputs, bool ignore, kiln_error **err)
{
    solver_vertex *v;

    for (size_t i = 0; i < desc->ninputs; i++)
        if (desc->inputs[i].output >= inputs[i]->desc.noutputs)
            return kiln_error_set(err, KILN_EINVAL, "vertex %s: input %zu uses output %u of %s",
                                  desc->digest, i, desc->inputs[i].output, inputs[i]->desc.name);
    v = xnew(solver_vertex);
    v->s = s;
    v->ident = xstrdup(ident);
    v->desc = *desc;
    memset(desc, 0, sizeof(*desc));
    v->in = xcalloc(v->desc.ninputs ? v->desc.ninputs : 1, sizeof(*v->in));
    v->ignore = ignore;
    v->tainted = ignore;
    for (size_t i = 0; i < v->desc.ninputs; i++) {
        v->in[i] = inputs[i];
        solver_vertex_ref_locked(inputs[i]);
        kiln_vec_push(&inputs[i]->dependants, v);
        v->tainted = v->tainted || inputs[i]->tainted;
    }
    v->results = xcalloc(v->desc.noutputs, sizeof(*v->results));
    v->refs = 1;
    kiln_map_put(&s->registry, v->ident, v);
    *out = v;
    return 0;
}

void
solver_vertex_ref_locked(solver_vertex *v)
{
    v->refs++;
}

static void
remove_ptr(kiln_vec *vec, const void *p)
{
    for (size_t i = 0; i < vec->len; i++) {
        if (vec->items[i] == p) {
            kiln_vec_remove(vec, i);
            return;
        }
    }
}

static void
vertex_release_results(solver_vertex *v)
{
    kiln_solver *s = v->s;

    for (unsigned i = 0; i < v->desc.noutputs; i++) {
        if (v->results[i])
            s->ops->result_unref(v->results[i], s->op_payload);
        v->results[i] = NULL;
    }
}

/* Drop a reference; the last one removes the vertex from the registry and releases its inputs
 * (iteratively: a long chain can be released at once). */
void
solver_vertex_unref_locked(solver_vertex *v)
{
    kiln_vec todo = KILN_VEC_INIT;

    kiln_vec_push(&todo, v);
    while ((v = kiln_vec_pop(&todo))) {
        kiln_solver *s = v->s;

        kiln_assert(v->refs > 0);
        if (--v->refs > 0)
            continue;
        kiln_assert(v->nactive == 0 && !v->busy && !v->ctx);
        if (kiln_map_get(&s->registry, v->ident) == v) /* else retired (build.c) */
            kiln_map_remove(&s->registry, v->ident);
        for (size_t i = 0; i < v->desc.ninputs; i++) {
            remove_ptr(&v->in[i]->dependants, v);
            kiln_vec_push(&todo, v->in[i]);
        }
        vertex_release_results(v);
        kiln_cache_map_dispose(&v->cm);
        kiln_error_free(&v->error);
        solver_desc_free(&v->desc, s);
        kiln_vec_dispose(&v->dependants, NULL);
        kiln_vec_dispose(&v->builds, NULL);
        free(v->results);
        free(v->keys);
        free(v->in);
        free(v->ident);
        free(v);
    }
    kiln_vec_dispose(&todo, NULL);
}

void
kiln_cache_map_dispose(kiln_cache_map *cm)
{
    if (!cm)
        return;
    for (size_t i = 0; i < cm->ndeps; i++)
        free(cm->deps[i].selector);
    free(cm->deps);
    free(cm->base);
    memset(cm, 0, sizeof(*cm));
}

/* ---- dirty list ---- */

void
solver_mark_dirty_locked(solver_vertex *v)
{
    if (v->dirty)
        return;
    v->dirty = true;
    solver_vertex_ref_locked(v);
    kiln_vec_push(&v->s->dirty, v);
}

static void
mark_dependants_dirty(solver_vertex *v)
{
    for (size_t i = 0; i < v->dependants.len; i++)
        solver_mark_dirty_locked(v->dependants.items[i]);
}

static void
submit_locked(solver_vertex *v, enum job_kind kind)
{
    solver_job *j = xnew(solver_job);

    v->busy = true;
    solver_vertex_ref_locked(v);
    j->s = v->s;
    j->v = v;
    j->kind = kind;
    j->waits = kind == JOB_SLOW && (v->desc.flags & KILN_VERTEX_WAITS);
    kiln_vec_push(&v->s->ready, j); /* handed to the pool when the drain ends */
}

static void
compute_def_key(solver_vertex *v)
{
    size_t n = v->desc.ninputs;
    cleanup_free solver_key_part *parts = xcalloc(n ? n : 1, sizeof(*parts));

    for (size_t i = 0; i < n; i++) {
        parts[i].kind = 'k';
        parts[i].value = v->in[i]->keys[0].key;
        parts[i].index = v->desc.inputs[i].output;
        parts[i].selector = v->cm.deps[i].selector;
    }
    if (!v->keys)
        v->keys = xnew(solver_key);
    solver_key_compute(v->keys[0].key, v->cm.base, parts, n);
    v->keys[0].trusted = !v->tainted;
    v->nkeys = 1;
}

/* Request the results of v's inputs; true when all are available. */
static bool
inputs_ready(solver_vertex *v)
{
    bool ready = true;

    for (size_t i = 0; i < v->desc.ninputs; i++) {
        solver_vertex *in = v->in[i];

        if (in->done)
            continue;
        ready = false;
        if (!in->need_result) {
            in->need_result = true;
            solver_mark_dirty_locked(in);
        }
    }
    return ready;
}

/* Take v one step further if it can; see the file comment for the states. */
static void
advance_locked(solver_vertex *v)
{
    kiln_solver *s = v->s;

    if (v->nactive == 0 || v->failed || v->busy)
        return;
    if (v->done) {
        solver_finish_builds_locked(v);
        return;
    }
    if (!v->mapped) {
        submit_locked(v, JOB_MAP);
        return;
    }
    if (!v->keyed) {
        for (size_t i = 0; i < v->desc.ninputs; i++)
            if (!v->in[i]->keyed)
                return;
        compute_def_key(v);
        v->keyed = true;
        mark_dependants_dirty(v);
    }
    if (!v->need_result)
        return;
    if (!v->def_probed) {
        if (!v->tainted && s->cache) {
            submit_locked(v, JOB_PROBE);
            return;
        }
        v->def_probed = true;
        v->def_missed = true;
    }
    if (inputs_ready(v))
        submit_locked(v, JOB_SLOW);
}

/*
 * Advance dirty vertices until there are none, then hand the jobs that became ready to the pool;
 * with `keep`, one of them is returned instead, for the calling pool thread to run next (this
 * saves a thread hand-off per job and keeps the parallelism bound, as the caller is a pool
 * thread). Re-entrant calls return at once: the outer loop picks up whatever they marked.
 */
static void
drain_keep_locked(kiln_solver *s, solver_job **keep)
{
    solver_vertex *v;
    solver_job *j;

    if (s->draining)
        return;
    s->draining = true;
    while ((v = kiln_vec_pop(&s->dirty))) {
        v->dirty = false;
        advance_locked(v);
        solver_vertex_unref_locked(v);
    }
    s->draining = false;
    /* the calling (bounded pool) thread keeps a job that belongs to its pool */
    for (size_t i = s->ready.len; keep && i-- > 0;) {
        j = s->ready.items[i];
        if (!j->waits) {
            *keep = kiln_vec_remove(&s->ready, i);
            break;
        }
    }
    kiln_vec_foreach(&s->ready, i, j) {
        kiln_threadpool_submit(j->waits ? s->wait_pool : s->pool, job_main, j);
    }
    s->ready.len = 0;
}

void
solver_drain_locked(kiln_solver *s)
{
    drain_keep_locked(s, NULL);
}

/* ---- attach / detach ---- */

static void
emit_simple_locked(solver_vertex *v, kiln_progress_type type, bool loaded, int64_t t)
{
    kiln_progress_event ev = {.type = type, .time_ns = t, .loaded = loaded};

    solver_emit_locked(v, &ev);
}

/* Forget a failure so that a new build tries again. */
static void
vertex_reset_locked(solver_vertex *v)
{
    v->failed = false;
    kiln_error_free(&v->error);
    v->need_result = false;
    v->started_ns = v->completed_ns = 0;
}

/*
 * Build b needs v: count it, replay v's state to b's stream (done: CACHED; running: STARTED),
 * and queue v for advancing. A failed vertex that is idle starts over.
 */
void
solver_attach_locked(solver_vertex *v, kiln_solver_build *b)
{
    kiln_vec_push(&v->builds, b);
    v->nactive++;
    if (v->failed && !v->busy)
        vertex_reset_locked(v);
    if (v->done || v->ctx) {
        kiln_progress_event ev = {
                .type = v->done ? KILN_PROGRESS_CACHED : KILN_PROGRESS_STARTED,
                .time_ns = v->done ? kiln_solver_now_ns() : v->started_ns,
                .loaded = true,
        };
        solver_emit_build_locked(b, v, &ev);
    }
    solver_mark_dirty_locked(v);
}

/*
 * Build b no longer needs v. When no build needs it, it stops asking for its result and a
 * running exec is cancelled (the op callback runs once the lock is dropped).
 */
void
solver_detach_locked(solver_vertex *v, kiln_solver_build *b)
{
    kiln_solver *s = v->s;

    remove_ptr(&v->builds, b);
    kiln_assert(v->nactive > 0);
    if (v->ctx && b->error) {
        kiln_progress_event ev = {.type = KILN_PROGRESS_CANCELED, .time_ns = kiln_solver_now_ns()};

        solver_emit_build_locked(b, v, &ev);
    }
    if (--v->nactive > 0)
        return;
    v->need_result = false;
    if (v->ctx && !kiln_op_ctx_canceled(v->ctx)) {
        solver_ctx_mark_canceled(v->ctx);
        solver_ctx_ref(v->ctx);
        kiln_vec_push(&s->to_cancel, v->ctx);
    }
}

/* ---- jobs ---- */

/* v failed with *e (moved): record it with the vertex name and location, tell the builds. */
static void
vertex_fail_locked(solver_vertex *v, kiln_error **e)
{
    if (v->nactive == 0) {
        /* nobody waits for it any more (cancelled): forget, a later build retries */
        kiln_error_free(e);
        return;
    }
    kiln_error_wrap(e, "%s", v->desc.name);
    if (v->desc.src_file && !(*e)->file)
        kiln_error_set_location(e, v->desc.src_file, v->desc.src_line, 0);
    v->failed = true;
    v->completed_ns = kiln_solver_now_ns();
    kiln_error_move(&v->error, e);
    {
        kiln_progress_event ev = {
                .type = KILN_PROGRESS_ERROR, .time_ns = v->completed_ns, .error = v->error};
        solver_emit_locked(v, &ev);
    }
    solver_fail_builds_locked(v);
}

static void
vertex_done_locked(solver_vertex *v, kiln_solver_result **results, bool cached)
{
    memcpy(v->results, results, v->desc.noutputs * sizeof(*results));
    v->done = true;
    v->cached = cached;
    v->completed_ns = kiln_solver_now_ns();
    if (cached)
        v->started_ns = v->completed_ns;
    emit_simple_locked(v, cached ? KILN_PROGRESS_CACHED : KILN_PROGRESS_DONE, true,
                       v->completed_ns);
    mark_dependants_dirty(v);
}

static void
job_map(solver_vertex *v)
{
    kiln_solver *s = v->s;
    kiln_cache_map cm = {0};
    kiln_error *e = NULL;
    int rc = s->ops->cache_map(&cm, &v->desc, s->op_payload, &e);

    if (rc == 0 && (cm.ndeps != v->desc.ninputs || !cm.base)) {
        rc = kiln_error_set(&e, KILN_EINTERNAL, "cache map has %zu deps for %zu inputs%s", cm.ndeps,
                            v->desc.ninputs, cm.base ? "" : " and no base");
        kiln_cache_map_dispose(&cm);
    }
    solver_lock(s);
    if (rc < 0) {
        vertex_fail_locked(v, &e);
        return;
    }
    v->cm = cm;
    v->mapped = true;
}

/* Load every output recorded under `key` into results[]; false (nothing kept) on any miss. */
static bool
cache_load_all(solver_vertex *v, const char *key, kiln_solver_result **results)
{
    kiln_solver *s = v->s;
    kiln_error *e = NULL;
    bool found = false;

    if (s->cache->lookup(&found, key, s->cache_payload, &e) < 0 || !found)
        goto miss;
    for (unsigned i = 0; i < v->desc.noutputs; i++)
        if (s->cache->load(&results[i], key, i, s->cache_payload, &e) < 0)
            goto miss;
    return true;
miss:
    if (e)
        kiln_log_debug("cache %s for %s: %s", key, v->desc.name, e->msg);
    kiln_error_free(&e);
    for (unsigned i = 0; i < v->desc.noutputs; i++) {
        if (results[i])
            s->ops->result_unref(results[i], s->op_payload);
        results[i] = NULL;
    }
    return false;
}

static void
job_probe(solver_vertex *v)
{
    kiln_solver *s = v->s;
    cleanup_free kiln_solver_result **res = xcalloc(v->desc.noutputs, sizeof(*res));
    bool hit = cache_load_all(v, v->keys[0].key, res);

    solver_lock(s);
    v->def_probed = true;
    if (hit)
        vertex_done_locked(v, res, true);
    else
        v->def_missed = true;
}

static void
cache_save_all(solver_vertex *v, const solver_key *keys, size_t nkeys, size_t skip,
               kiln_solver_result **results)
{
    kiln_solver *s = v->s;

    if (!s->cache)
        return;
    for (size_t k = 0; k < nkeys; k++) {
        if (k == skip)
            continue;
        for (unsigned i = 0; i < v->desc.noutputs; i++) {
            kiln_error *e = NULL;

            if (s->cache->save(keys[k].key, i, results[i], s->cache_payload, &e) < 0) {
                kiln_log_warn("save cache %s for %s: %s", keys[k].key, v->desc.name,
                              e ? e->msg : "unknown error");
                kiln_error_free(&e);
            }
        }
    }
}

static int
content_digests(char **content, solver_vertex *v, kiln_error **err)
{
    kiln_solver *s = v->s;

    for (size_t i = 0; i < v->desc.ninputs; i++) {
        kiln_solver_result *r = v->in[i]->results[v->desc.inputs[i].output];
        int rc;

        if (!v->cm.deps[i].content)
            continue;
        if (!s->ops->compute_content_digest)
            return kiln_error_set(err, KILN_EINTERNAL, "op table cannot compute content digests");
        rc = s->ops->compute_content_digest(&content[i], r, v->cm.deps[i].selector, s->op_payload,
                                            err);
        if (rc < 0)
            return kiln_error_wrap(err, "checksum input %zu", i);
    }
    return 0;
}

/* Run the op on the input results; save and record its outputs. Returns with the lock held. */
static void
exec_vertex(solver_vertex *v, const solver_key *keys, size_t nkeys)
{
    kiln_solver *s = v->s;
    size_t n = v->desc.ninputs;
    cleanup_free kiln_solver_result **in = xcalloc(n ? n : 1, sizeof(*in));
    cleanup_free kiln_solver_result **out = xcalloc(v->desc.noutputs, sizeof(*out));
    kiln_error *e = NULL;
    kiln_op_ctx *ctx;
    bool canceled;
    int rc;

    solver_lock(s);
    if (v->nactive == 0)
        return;
    ctx = solver_ctx_new(s, v);
    v->ctx = ctx;
    v->started_ns = kiln_solver_now_ns();
    emit_simple_locked(v, KILN_PROGRESS_STARTED, false, v->started_ns);
    solver_unlock(s);

    for (size_t i = 0; i < n; i++)
        in[i] = v->in[i]->results[v->desc.inputs[i].output];
    rc = s->ops->exec(out, &v->desc, in, ctx, s->op_payload, &e);
    for (unsigned i = 0; rc == 0 && i < v->desc.noutputs; i++)
        if (!out[i])
            rc = kiln_error_set(&e, KILN_EINTERNAL, "op returned no result %u", i);
    if (rc == 0)
        cache_save_all(v, keys, nkeys, SIZE_MAX, out);

    solver_lock(s);
    v->ctx = NULL;
    canceled = kiln_op_ctx_canceled(ctx);
    solver_unlock(s);
    solver_ctx_unref(ctx);
    solver_lock(s);
    if (rc == 0) {
        vertex_done_locked(v, out, false);
        return;
    }
    for (unsigned i = 0; i < v->desc.noutputs; i++)
        if (out[i])
            s->ops->result_unref(out[i], s->op_payload);
    if (canceled && rc == KILN_ECANCELED)
        kiln_error_free(&e); /* stays un-done: a build that needs it again re-runs it */
    else
        vertex_fail_locked(v, &e);
}

static void
job_slow(solver_vertex *v)
{
    kiln_solver *s = v->s;
    size_t n = v->desc.ninputs;
    cleanup_free char **content = xcalloc(n + 1, sizeof(char *));
    cleanup_free kiln_solver_result **res = xcalloc(v->desc.noutputs, sizeof(*res));
    solver_key keys[KILN_SOLVER_MAX_KEYS];
    size_t nkeys, hit = SIZE_MAX;
    kiln_error *e = NULL;

    if (content_digests(content, v, &e) < 0) {
        for (size_t i = 0; i < n; i++)
            free(steal_pointer(&content[i]));
        solver_lock(s);
        vertex_fail_locked(v, &e);
        return;
    }
    solver_lock(s);
    nkeys = solver_keys_expand(v, content);
    for (size_t k = 0; v->ignore && k < nkeys; k++)
        v->keys[k].trusted = false;
    memcpy(keys, v->keys, nkeys * sizeof(*keys));
    solver_unlock(s);
    for (size_t i = 0; i < n; i++)
        free(steal_pointer(&content[i]));

    for (size_t k = 1; !v->ignore && s->cache && k < nkeys && hit == SIZE_MAX; k++)
        if (keys[k].trusted && cache_load_all(v, keys[k].key, res))
            hit = k;
    if (hit == SIZE_MAX) {
        exec_vertex(v, keys, nkeys);
        return;
    }
    cache_save_all(v, keys, nkeys, hit, res);
    solver_lock(s);
    vertex_done_locked(v, res, true);
}

/* Run job j; returns with the solver lock held. */
static void
run_job(solver_job *j)
{
    kiln_solver *s = j->s;
    solver_vertex *v = j->v;
    bool skip;

    solver_lock(s);
    skip = v->nactive == 0 || v->failed;
    solver_unlock(s);
    if (skip) {
        solver_lock(s);
        return;
    }
    switch (j->kind) {
    case JOB_MAP:
        job_map(v);
        break;
    case JOB_PROBE:
        job_probe(v);
        break;
    case JOB_SLOW:
        job_slow(v);
        break;
    }
}

static void
job_main(void *arg)
{
    solver_job *j = arg;

    while (j) {
        kiln_solver *s = j->s;
        solver_vertex *v = j->v;
        solver_job *next = NULL;

        run_job(j);
        v->busy = false;
        solver_mark_dirty_locked(v);
        solver_vertex_unref_locked(v);
        /* a waiting-pool thread takes no bounded work: that would pass max_parallelism */
        drain_keep_locked(s, j->waits ? NULL : &next);
        solver_unlock(s);
        free(j);
        j = next;
    }
}
