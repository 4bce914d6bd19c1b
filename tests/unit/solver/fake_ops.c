/*
 * fake_ops.c: the fake op table and cache store of fake_ops.h. Thread-safe: the solver calls it
 * from its pool threads.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/digest.h"
#include "tests/unit/solver/fake_ops.h"

struct kiln_solver_result {
    atomic_int refs;
    char *content;
    fake_env *env;
};

typedef struct fake_op {
    char *name, *base, *files, *log;
    char *selectors[FAKE_MAX_INPUTS];
    bool content[FAKE_MAX_INPUTS];
    int sleep_ms;
    int rendezvous;
    bool fail;
} fake_op;

static kiln_solver_result *
result_new(fake_env *env, char *content)
{
    kiln_solver_result *r = xnew(kiln_solver_result);

    atomic_init(&r->refs, 1);
    r->content = content;
    r->env = env;
    atomic_fetch_add(&env->live_results, 1);
    return r;
}

const char *
fake_result_content(kiln_solver_result *r)
{
    return r->content;
}

static void
result_ref(kiln_solver_result *r, void *payload)
{
    (void)payload;
    atomic_fetch_add(&r->refs, 1);
}

void
fake_result_unref(kiln_solver_result *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    atomic_fetch_sub(&r->env->live_results, 1);
    free(r->content);
    free(r);
}

static void
result_unref(kiln_solver_result *r, void *payload)
{
    (void)payload;
    fake_result_unref(r);
}

static void
op_free(void *op, void *payload)
{
    fake_op *o = op;

    (void)payload;
    free(o->name);
    free(o->base);
    free(o->files);
    free(o->log);
    for (int i = 0; i < FAKE_MAX_INPUTS; i++)
        free(o->selectors[i]);
    free(o);
}

static int
cache_map(kiln_cache_map *out, const kiln_vertex_desc *v, void *payload, kiln_error **err)
{
    fake_op *o = v->op;
    fake_env *env = payload;

    if (env->fail_cache_map)
        return kiln_error_set(err, KILN_EAUTH, "resolve `%s`: unauthorized", o->name);
    out->base = xasprintf("fake:%s", o->base);
    out->ndeps = v->ninputs;
    out->deps = xcalloc(v->ninputs ? v->ninputs : 1, sizeof(*out->deps));
    for (size_t i = 0; i < v->ninputs; i++) {
        out->deps[i].selector = xstrdup(o->selectors[i]);
        out->deps[i].content = o->content[i];
    }
    return 0;
}

/* The "file=content" item named sel in content, or the whole content for NULL. */
static int
content_digest(char **out, kiln_solver_result *r, const char *sel, void *payload, kiln_error **err)
{
    const char *c = r->content, *p = c;
    size_t len = strlen(c);
    kiln_sha256 d;

    (void)payload;
    if (sel) {
        size_t sl = strlen(sel);

        for (p = c; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL)
            if (strncmp(p, sel, sl) == 0 && p[sl] == '=')
                break;
        if (!p || !*p)
            return kiln_error_set(err, KILN_ENOTFOUND, "`%s` not found", sel);
        len = strchr(p, ';') ? (size_t)(strchr(p, ';') - p) : strlen(p);
    }
    kiln_sha256_buf(&d, p, len);
    *out = kiln_digest_str(&d);
    return 0;
}

static void
count_exec(fake_env *env, const char *name, int delta_running)
{
    pthread_mutex_lock(&env->mu);
    if (delta_running > 0) {
        uintptr_t n = (uintptr_t)kiln_map_get(&env->execs, name);

        kiln_map_put(&env->execs, name, (void *)(n + 1));
    }
    env->running += delta_running;
    if (env->running > env->max_running)
        env->max_running = env->running;
    pthread_cond_broadcast(&env->cond);
    pthread_mutex_unlock(&env->mu);
}

static char *
derive_content(const fake_op *o, const kiln_vertex_desc *v, kiln_solver_result *const *in)
{
    kiln_buf b = KILN_BUF_INIT;

    if (o->files)
        return xstrdup(o->files);
    for (size_t i = 0; i < v->ninputs; i++)
        kiln_buf_printf(&b, NULL, "%s;", in[i]->content);
    kiln_buf_printf(&b, NULL, "step=%s", o->name);
    return kiln_buf_detach(&b);
}

static int
exec_op(kiln_solver_result **outputs, const kiln_vertex_desc *v, kiln_solver_result *const *inputs,
        kiln_op_ctx *ctx, void *payload, kiln_error **err)
{
    fake_env *env = payload;
    fake_op *o = v->op;
    cleanup_free char *content = NULL;
    int rc;

    count_exec(env, o->name, 1);
    if (o->rendezvous)
        fake_wait_count(env, &env->running, o->rendezvous);
    if (o->log) {
        kiln_op_ctx_log(ctx, 1, o->log, strlen(o->log));
        kiln_op_ctx_status(ctx, "working", 1, 2);
    }
    rc = kiln_op_ctx_sleep(ctx, (int64_t)o->sleep_ms * 1000000, err);
    count_exec(env, o->name, -1);
    if (rc < 0) {
        pthread_mutex_lock(&env->mu);
        env->canceled_execs++;
        pthread_mutex_unlock(&env->mu);
        return rc;
    }
    if (o->fail)
        return kiln_error_set(err, KILN_EINVAL, "process \"%s\" did not complete: exit code 1",
                              o->name);
    content = derive_content(o, v, inputs);
    for (unsigned i = 0; i < v->noutputs; i++)
        outputs[i] =
                result_new(env, i == 0 ? xstrdup(content) : xasprintf("%s;out=%u", content, i));
    return 0;
}

static void
cancel_op(kiln_op_ctx *ctx, void *payload)
{
    fake_env *env = payload;

    (void)ctx;
    pthread_mutex_lock(&env->mu);
    env->cancels++;
    pthread_mutex_unlock(&env->mu);
}

const kiln_op_ops fake_op_ops = {
        .version = KILN_OP_OPS_VERSION,
        .cache_map = cache_map,
        .compute_content_digest = content_digest,
        .exec = exec_op,
        .cancel = cancel_op,
        .result_ref = result_ref,
        .result_unref = result_unref,
        .op_free = op_free,
};

/* ---- cache store ---- */

static int
c_lookup(bool *found, const char *key, void *payload, kiln_error **err)
{
    fake_env *env = payload;

    (void)err;
    pthread_mutex_lock(&env->mu);
    env->lookups++;
    *found = kiln_map_has(&env->keys, key);
    pthread_mutex_unlock(&env->mu);
    return 0;
}

static int
c_load(kiln_solver_result **out, const char *key, unsigned output, void *payload, kiln_error **err)
{
    fake_env *env = payload;
    cleanup_free char *k = xasprintf("%s#%u", key, output);
    kiln_solver_result *r;

    pthread_mutex_lock(&env->mu);
    env->loads++;
    r = env->fail_loads ? NULL : kiln_map_get(&env->store, k);
    if (r)
        result_ref(r, NULL);
    pthread_mutex_unlock(&env->mu);
    if (!r)
        return kiln_error_set(err, KILN_ENOTFOUND, "no result %s", k);
    *out = r;
    return 0;
}

static int
c_save(const char *key, unsigned output, kiln_solver_result *r, void *payload, kiln_error **err)
{
    fake_env *env = payload;
    cleanup_free char *k = xasprintf("%s#%u", key, output);
    kiln_solver_result *old;

    (void)err;
    result_ref(r, NULL);
    pthread_mutex_lock(&env->mu);
    env->saves++;
    old = kiln_map_put(&env->store, k, r);
    kiln_map_put(&env->keys, key, (void *)1);
    pthread_mutex_unlock(&env->mu);
    if (old)
        fake_result_unref(old);
    return 0;
}

const kiln_cache_ops fake_cache_ops = {
        .version = KILN_CACHE_OPS_VERSION,
        .lookup = c_lookup,
        .load = c_load,
        .save = c_save,
};

/* ---- env ---- */

void
fake_env_init(fake_env *env)
{
    memset(env, 0, sizeof(*env));
    pthread_mutex_init(&env->mu, NULL);
    pthread_cond_init(&env->cond, NULL);
    kiln_map_init(&env->execs);
    kiln_map_init(&env->store);
    kiln_map_init(&env->keys);
    atomic_init(&env->live_results, 0);
    env->events_monotonic = true;
}

static void
unref_value(void *r)
{
    fake_result_unref(r);
}

void
fake_env_clear_cache(fake_env *env)
{
    kiln_map_dispose(&env->store, unref_value);
    kiln_map_dispose(&env->keys, NULL);
    kiln_map_init(&env->store);
    kiln_map_init(&env->keys);
}

void
fake_env_dispose(fake_env *env)
{
    fake_env_clear_cache(env);
    kiln_map_dispose(&env->execs, NULL);
    kiln_strvec_dispose(&env->events);
    pthread_cond_destroy(&env->cond);
    pthread_mutex_destroy(&env->mu);
}

int
fake_execs(fake_env *env, const char *name)
{
    uintptr_t n;

    pthread_mutex_lock(&env->mu);
    n = (uintptr_t)kiln_map_get(&env->execs, name);
    pthread_mutex_unlock(&env->mu);
    return (int)n;
}

int
fake_total_execs(fake_env *env)
{
    int n = 0;

    pthread_mutex_lock(&env->mu);
    kiln_map_foreach(&env->execs, e) {
        n += (int)(uintptr_t)e->value;
    }
    pthread_mutex_unlock(&env->mu);
    return n;
}

bool
fake_wait_count(fake_env *env, const int *counter, int n)
{
    int64_t end = kiln_solver_now_ns() + 5000000000LL;
    bool ok;

    pthread_mutex_lock(&env->mu);
    while (*counter < n && kiln_solver_now_ns() < end) {
        pthread_mutex_unlock(&env->mu);
        usleep(1000);
        pthread_mutex_lock(&env->mu);
    }
    ok = *counter >= n;
    pthread_mutex_unlock(&env->mu);
    return ok;
}

bool
fake_wait_running(fake_env *env, int n)
{
    return fake_wait_count(env, &env->running, n);
}

int
fake_add(kiln_solver_build *b, const fake_spec *sp, kiln_error **err)
{
    fake_op *o = xnew(fake_op);
    kiln_vertex_input in[FAKE_MAX_INPUTS];
    size_t n = 0;
    kiln_vertex_desc d = {0};

    o->name = xstrdup(sp->name);
    o->base = xstrdup(sp->base ? sp->base : sp->digest ? sp->digest : sp->name);
    o->files = xstrdup(sp->files);
    o->log = xstrdup(sp->log);
    o->sleep_ms = sp->sleep_ms;
    o->rendezvous = sp->rendezvous;
    o->fail = sp->fail;
    for (; n < FAKE_MAX_INPUTS && sp->inputs[n]; n++) {
        in[n].digest = sp->inputs[n];
        in[n].output = sp->input_out[n];
        o->selectors[n] = xstrdup(sp->selectors[n]);
        o->content[n] = sp->content[n];
    }
    d.digest = sp->digest ? sp->digest : sp->name;
    d.name = sp->name;
    d.kind = "fake";
    d.op = o;
    d.inputs = in;
    d.ninputs = n;
    d.noutputs = sp->noutputs;
    d.flags = sp->flags;
    d.src_file = sp->src_file;
    d.src_line = sp->src_line;
    return kiln_solver_build_add_vertex(b, &d, err);
}

static const char *const event_names[] = {
        [KILN_PROGRESS_STARTED] = "started",   [KILN_PROGRESS_CACHED] = "cached",
        [KILN_PROGRESS_LOG] = "log",           [KILN_PROGRESS_STATUS] = "status",
        [KILN_PROGRESS_DONE] = "done",         [KILN_PROGRESS_ERROR] = "error",
        [KILN_PROGRESS_CANCELED] = "canceled",
};

void
fake_progress(const kiln_progress_event *ev, void *payload)
{
    fake_env *env = payload;
    cleanup_free char *s = NULL;

    if (!env->record_events)
        return;
    if (ev->type == KILN_PROGRESS_LOG)
        s = xasprintf("log:%s:%.*s", ev->name, (int)ev->len, ev->data);
    else if (ev->type == KILN_PROGRESS_CACHED && !ev->loaded)
        s = xasprintf("skipped:%s", ev->name);
    else
        s = xasprintf("%s:%s", event_names[ev->type], ev->name);
    /* called with the solver lock held: env->mu is a leaf lock */
    pthread_mutex_lock(&env->mu);
    if (ev->time_ns < env->last_event_ns)
        env->events_monotonic = false;
    env->last_event_ns = ev->time_ns;
    kiln_strvec_push(&env->events, s);
    pthread_mutex_unlock(&env->mu);
}
