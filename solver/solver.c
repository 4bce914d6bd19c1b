/*
 * solver.c: the solver and build handles: loading a build's vertices into the shared registry
 * (merging identical vertices across builds), waiting, cancelling, progress events and the build
 * summary endings. The build handle API is in build.c; the state machine is in scheduler.c.
 *
 * A build collects vertex descs in any order, then kiln_solver_build_start() walks from the target
 * (only its ancestors are loaded), finds or creates each registry vertex by identity, attaches the
 * build to them, and asks for the target's result. A build ends exactly once: with the target's
 * result, with the error of a failing vertex, or cancelled; it then detaches from its vertices,
 * which cancels ops that no other build needs.
 */
#define KILN_LOG_DOMAIN "solver"

#include <inttypes.h>
#include <pthread.h>

#include "base/base.h"
#include "solver/solver_internal.h"

void
solver_lock(kiln_solver *s)
{
    pthread_mutex_lock(&s->lock);
}

void
solver_unlock(kiln_solver *s)
{
    kiln_vec cancel = s->to_cancel;
    kiln_op_ctx *ctx;

    kiln_vec_init(&s->to_cancel);
    pthread_mutex_unlock(&s->lock);
    kiln_vec_foreach(&cancel, i, ctx) {
        if (s->ops->cancel)
            s->ops->cancel(ctx, s->op_payload);
        solver_ctx_unref(ctx);
    }
    kiln_vec_dispose(&cancel, NULL);
}

/* ---- progress and summary ---- */

static void
record_event(kiln_vertex_summary *rec, const kiln_progress_event *ev)
{
    switch (ev->type) {
    case KILN_PROGRESS_STARTED:
        rec->started_ns = ev->time_ns;
        break;
    case KILN_PROGRESS_CACHED:
        rec->status = ev->loaded ? KILN_VSTATUS_CACHED : KILN_VSTATUS_SKIPPED;
        rec->started_ns = rec->completed_ns = ev->time_ns;
        break;
    case KILN_PROGRESS_DONE:
        rec->status = KILN_VSTATUS_DONE;
        rec->completed_ns = ev->time_ns;
        break;
    case KILN_PROGRESS_ERROR:
        rec->status = KILN_VSTATUS_FAILED;
        rec->completed_ns = ev->time_ns;
        free(rec->error);
        rec->error = kiln_error_format(ev->error);
        break;
    case KILN_PROGRESS_CANCELED:
        rec->status = KILN_VSTATUS_CANCELED;
        rec->completed_ns = ev->time_ns;
        break;
    case KILN_PROGRESS_LOG:
    case KILN_PROGRESS_STATUS:
        break;
    }
}

void
solver_emit_build_locked(kiln_solver_build *b, solver_vertex *v, const kiln_progress_event *ev)
{
    kiln_progress_event e = *ev;
    uintptr_t pos = (uintptr_t)kiln_map_get(&b->index, v->ident);

    e.digest = v->desc.digest;
    e.name = v->desc.name;
    if (pos) {
        e.name = b->summary.vertices[pos - 1].name; /* this build's name for the vertex */
        record_event(&b->summary.vertices[pos - 1], &e);
    }
    if (b->progress)
        b->progress(&e, b->progress_payload);
}

void
solver_emit_locked(solver_vertex *v, const kiln_progress_event *ev)
{
    for (size_t i = 0; i < v->builds.len; i++)
        solver_emit_build_locked(v->builds.items[i], v, ev);
}

/* ---- build endings ---- */

static void
build_end_locked(kiln_solver_build *b)
{
    kiln_build_summary *sum = &b->summary;
    solver_vertex *v;

    b->finished = true;
    sum->completed_ns = kiln_solver_now_ns();
    kiln_vec_foreach(&b->vertices, i, v) {
        if (v->keyed && !sum->vertices[i].cache_key)
            sum->vertices[i].cache_key = xstrdup(v->keys[0].key);
        sum->nexecuted += sum->vertices[i].status == KILN_VSTATUS_DONE;
        sum->ncached += sum->vertices[i].status == KILN_VSTATUS_CACHED;
    }
    if (b->attached) {
        b->attached = false;
        kiln_vec_foreach(&b->vertices, i, v) {
            solver_detach_locked(v, b);
        }
    }
    pthread_cond_broadcast(&b->cond);
}

/* End b with error e (takes ownership). No-op on a finished build. */
void
solver_build_fail_locked(kiln_solver_build *b, kiln_error *e)
{
    if (b->finished) {
        kiln_error_free(&e);
        return;
    }
    b->error = e;
    build_end_locked(b);
}

void
solver_fail_builds_locked(solver_vertex *v)
{
    kiln_vec snap = KILN_VEC_INIT;
    kiln_solver_build *b;

    kiln_vec_foreach(&v->builds, i, b) {
        kiln_vec_push(&snap, b);
    }
    kiln_vec_foreach(&snap, i, b) {
        solver_build_fail_locked(b, kiln_error_copy(v->error));
    }
    kiln_vec_dispose(&snap, NULL);
}

void
solver_finish_builds_locked(solver_vertex *v)
{
    kiln_vec snap = KILN_VEC_INIT;
    kiln_solver_build *b;
    solver_vertex *u;

    kiln_vec_foreach(&v->builds, i, b) {
        if (b->target == v && !b->finished)
            kiln_vec_push(&snap, b);
    }
    kiln_vec_foreach(&snap, i, b) {
        kiln_progress_event ev = {.type = KILN_PROGRESS_CACHED, .time_ns = kiln_solver_now_ns()};

        b->result = v->results[b->output];
        v->s->ops->result_ref(b->result, v->s->op_payload);
        /* ancestors whose results were not needed: a dependant came from the cache */
        kiln_vec_foreach(&b->vertices, j, u) {
            if (b->summary.vertices[j].status == KILN_VSTATUS_PENDING)
                solver_emit_build_locked(b, u, &ev);
        }
        build_end_locked(b);
    }
    kiln_vec_dispose(&snap, NULL);
}

/* ---- solver ---- */

/* A new "build canceled" error, owned by the caller. */
kiln_error *
solver_canceled_error(void)
{
    kiln_error *e = NULL;

    kiln_error_set(&e, KILN_ECANCELED, "build canceled");
    return e;
}

static int
check_tables(const kiln_solver_opts *o, kiln_error **err)
{
    const kiln_op_ops *ops = o->op_ops;

    if (!ops || ops->version != KILN_OP_OPS_VERSION)
        return kiln_error_set(err, KILN_EINVAL, "solver: missing op table or wrong version");
    if (!ops->cache_map || !ops->exec || !ops->result_ref || !ops->result_unref)
        return kiln_error_set(err, KILN_EINVAL, "solver: op table lacks a required function");
    if (o->cache_ops && (o->cache_ops->version != KILN_CACHE_OPS_VERSION || !o->cache_ops->lookup ||
                         !o->cache_ops->load || !o->cache_ops->save))
        return kiln_error_set(err, KILN_EINVAL, "solver: incomplete cache table");
    return 0;
}

int
kiln_solver_new(kiln_solver **out, const kiln_solver_opts *opts, kiln_error **err)
{
    kiln_solver *s;
    int rc;

    rc = check_tables(opts, err);
    if (rc < 0)
        return rc;
    s = xnew(kiln_solver);
    s->max_parallelism = opts->max_parallelism ? opts->max_parallelism : kiln_ncpus();
    rc = kiln_threadpool_new(&s->pool, s->max_parallelism, err);
    if (rc == 0) {
        rc = kiln_threadpool_new(&s->wait_pool, KILN_SOLVER_MAX_WAITING, err);
        if (rc < 0)
            kiln_threadpool_free(s->pool);
    }
    if (rc < 0) {
        free(s);
        return kiln_error_wrap(err, "solver pool");
    }
    pthread_mutex_init(&s->lock, NULL);
    s->ops = opts->op_ops;
    s->op_payload = opts->op_payload;
    s->cache = opts->cache_ops;
    s->cache_payload = opts->cache_payload;
    kiln_map_init(&s->registry);
    *out = s;
    return 0;
}

void
kiln_solver_cancel(kiln_solver *s)
{
    kiln_solver_build *b;

    solver_lock(s);
    kiln_vec_foreach(&s->builds, i, b) {
        if (b->started && !b->finished)
            solver_build_fail_locked(b, solver_canceled_error());
    }
    solver_drain_locked(s);
    solver_unlock(s);
}

void
kiln_solver_free(kiln_solver *s)
{
    if (!s)
        return;
    kiln_assert(s->builds.len == 0);
    /* jobs of one pool may queue jobs on the other until the last drains have run */
    kiln_threadpool_wait(s->pool);
    kiln_threadpool_wait(s->wait_pool);
    kiln_threadpool_wait(s->pool);
    kiln_threadpool_free(s->wait_pool);
    kiln_threadpool_free(s->pool);
    solver_lock(s);
    solver_drain_locked(s);
    kiln_assert(s->registry.len == 0);
    solver_unlock(s);
    kiln_map_dispose(&s->registry, NULL);
    kiln_vec_dispose(&s->builds, NULL);
    kiln_vec_dispose(&s->dirty, NULL);
    kiln_vec_dispose(&s->ready, NULL);
    kiln_vec_dispose(&s->to_cancel, NULL);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
