/*
 * opctx.c: the context handed to a running exec. It lets the op emit log and status events for
 * its vertex, and learn about cancellation (poll, or sleep until cancelled). A context is
 * refcounted because a cancel may be delivered from another thread while the exec returns.
 */
#include <pthread.h>
#include <time.h>

#include "base/base.h"
#include "solver/solver_internal.h"

int64_t
kiln_solver_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A new context for an exec of v (takes a vertex ref). Call with the solver lock held. */
kiln_op_ctx *
solver_ctx_new(kiln_solver *s, solver_vertex *v)
{
    kiln_op_ctx *ctx = xnew(kiln_op_ctx);
    pthread_condattr_t attr;

    ctx->s = s;
    ctx->v = v;
    solver_vertex_ref_locked(v);
    atomic_init(&ctx->refs, 1);
    atomic_init(&ctx->canceled, false);
    atomic_init(&ctx->data, NULL);
    pthread_mutex_init(&ctx->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&ctx->cond, &attr);
    pthread_condattr_destroy(&attr);
    return ctx;
}

void
solver_ctx_ref(kiln_op_ctx *ctx)
{
    atomic_fetch_add(&ctx->refs, 1);
}

/* Drop a reference; the last one releases the vertex (takes the solver lock). */
void
solver_ctx_unref(kiln_op_ctx *ctx)
{
    if (atomic_fetch_sub(&ctx->refs, 1) != 1)
        return;
    solver_lock(ctx->s);
    solver_vertex_unref_locked(ctx->v);
    solver_unlock(ctx->s);
    pthread_cond_destroy(&ctx->cond);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx);
}

void
solver_ctx_mark_canceled(kiln_op_ctx *ctx)
{
    pthread_mutex_lock(&ctx->mu);
    atomic_store(&ctx->canceled, true);
    pthread_cond_broadcast(&ctx->cond);
    pthread_mutex_unlock(&ctx->mu);
}

bool
kiln_op_ctx_canceled(kiln_op_ctx *ctx)
{
    return atomic_load(&ctx->canceled);
}

int
kiln_op_ctx_sleep(kiln_op_ctx *ctx, int64_t ns, kiln_error **err)
{
    struct timespec deadline;
    int64_t end = kiln_solver_now_ns() + (ns > 0 ? ns : 0);
    bool canceled;

    deadline.tv_sec = end / 1000000000LL;
    deadline.tv_nsec = end % 1000000000LL;
    pthread_mutex_lock(&ctx->mu);
    while (!atomic_load(&ctx->canceled)) {
        if (pthread_cond_timedwait(&ctx->cond, &ctx->mu, &deadline) != 0 &&
            kiln_solver_now_ns() >= end)
            break;
    }
    canceled = atomic_load(&ctx->canceled);
    pthread_mutex_unlock(&ctx->mu);
    if (canceled)
        return kiln_error_set(err, KILN_ECANCELED, "canceled");
    return 0;
}

void
kiln_op_ctx_log(kiln_op_ctx *ctx, int stream, const void *data, size_t len)
{
    kiln_progress_event ev = {
            .type = KILN_PROGRESS_LOG,
            .stream = stream,
            .data = data,
            .len = len,
    };

    solver_lock(ctx->s);
    ev.time_ns = kiln_solver_now_ns(); /* under the lock: events stay in time order */
    solver_emit_locked(ctx->v, &ev);
    solver_unlock(ctx->s);
}

void
kiln_op_ctx_status(kiln_op_ctx *ctx, const char *msg, int64_t current, int64_t total)
{
    kiln_progress_event ev = {
            .type = KILN_PROGRESS_STATUS,
            .data = msg,
            .len = msg ? strlen(msg) : 0,
            .current = current,
            .total = total,
    };

    solver_lock(ctx->s);
    ev.time_ns = kiln_solver_now_ns(); /* under the lock: events stay in time order */
    solver_emit_locked(ctx->v, &ev);
    solver_unlock(ctx->s);
}

void
kiln_op_ctx_set_data(kiln_op_ctx *ctx, void *data)
{
    atomic_store(&ctx->data, data);
}

void *
kiln_op_ctx_get_data(kiln_op_ctx *ctx)
{
    return atomic_load(&ctx->data);
}
