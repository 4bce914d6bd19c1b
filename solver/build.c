/*
 * build.c: the build handle: collecting vertex descs, loading the target's ancestors into the
 * solver's shared registry (where identical vertices merge, also with other running builds),
 * waiting, cancelling, the summary.
 *
 * Vertex identity in the registry is the op digest, except when the vertex ignores the cache or
 * an input's identity is not its digest: then "<digest>~<16 hex>" (a hash of the ignore flag and
 * the inputs' identities), so a no-cache rebuild of a vertex never merges with a cached run of it
 * in another build, nor do the vertices below it.
 */
#define KILN_LOG_DOMAIN "solver"

#include <pthread.h>

#include "base/base.h"
#include "solver/solver_internal.h"

int
kiln_solver_build_new(kiln_solver_build **out, kiln_solver *s, const kiln_solve_opts *opts,
                      kiln_error **err)
{
    kiln_solver_build *b = xnew(kiln_solver_build);

    (void)err; /* cannot fail today; the signature leaves room for option checks */
    b->s = s;
    if (opts) {
        b->no_cache = opts->no_cache;
        for (size_t i = 0; i < opts->n_no_cache_filter; i++)
            kiln_strvec_push(&b->filter, opts->no_cache_filter[i]);
        b->progress = opts->progress;
        b->progress_payload = opts->progress_payload;
    }
    kiln_map_init(&b->pending);
    kiln_map_init(&b->index);
    pthread_cond_init(&b->cond, NULL);
    solver_lock(s);
    kiln_vec_push(&s->builds, b);
    solver_unlock(s);
    *out = b;
    return 0;
}

static void
free_op(kiln_solver *s, void *op)
{
    if (op && s->ops->op_free)
        s->ops->op_free(op, s->op_payload);
}

int
kiln_solver_build_add_vertex(kiln_solver_build *b, const kiln_vertex_desc *desc, kiln_error **err)
{
    kiln_vertex_desc *d;
    kiln_vertex_input *in;

    if (b->started || b->finished) {
        free_op(b->s, desc->op);
        return kiln_error_set(err, KILN_EINVAL, "add vertex: build already started");
    }
    if (!desc->digest || !*desc->digest || strchr(desc->digest, '~')) {
        free_op(b->s, desc->op);
        return kiln_error_set(err, KILN_EINVAL, "add vertex: invalid digest `%s`",
                              desc->digest ? desc->digest : "");
    }
    if (kiln_map_has(&b->pending, desc->digest)) {
        free_op(b->s, desc->op); /* same digest, same op: keep the first */
        return 0;
    }
    d = xnew(kiln_vertex_desc);
    d->digest = xstrdup(desc->digest);
    d->name = xstrdup(desc->name ? desc->name : desc->digest);
    d->kind = xstrdup(desc->kind ? desc->kind : "op");
    d->op = desc->op;
    d->ninputs = desc->ninputs;
    in = xcalloc(desc->ninputs ? desc->ninputs : 1, sizeof(*in));
    for (size_t i = 0; i < desc->ninputs; i++) {
        in[i].digest = xstrdup(desc->inputs[i].digest ? desc->inputs[i].digest : "");
        in[i].output = desc->inputs[i].output;
    }
    d->inputs = in;
    d->noutputs = desc->noutputs ? desc->noutputs : 1;
    d->flags = desc->flags;
    d->src_file = xstrdup(desc->src_file);
    d->src_line = desc->src_line;
    kiln_map_put(&b->pending, d->digest, d);
    return 0;
}

typedef struct dfs_frame {
    kiln_vertex_desc *d;
    size_t next; /* next input to visit */
} dfs_frame;

/* Post-order of the target's ancestors (inputs first) into `order` (borrowed descs).
 * KILN_EINVAL for an unknown input or a cycle. Iterative: graphs can be 10,000 deep. */
static int
topo_order(kiln_vec *order, kiln_solver_build *b, kiln_vertex_desc *target, kiln_error **err)
{
    kiln_map mark = KILN_MAP_INIT; /* digest -> 1 on the stack, 2 emitted */
    dfs_frame *st = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    kiln_map_put(&mark, target->digest, (void *)1);
    st = xreallocarray(st, cap = 16, sizeof(*st));
    st[n++] = (dfs_frame){target, 0};
    while (n > 0 && rc == 0) {
        dfs_frame *f = &st[n - 1];
        const char *dg;
        kiln_vertex_desc *c;

        if (f->next == f->d->ninputs) {
            kiln_map_put(&mark, f->d->digest, (void *)2);
            kiln_vec_push(order, f->d);
            n--;
            continue;
        }
        dg = f->d->inputs[f->next++].digest;
        c = kiln_map_get(&b->pending, dg);
        if (!c)
            rc = kiln_error_set(err, KILN_EINVAL, "vertex %s: input %s not found", f->d->name, dg);
        else if (kiln_map_get(&mark, dg) == (void *)1)
            rc = kiln_error_set(err, KILN_EINVAL, "vertex %s: cycle through %s", f->d->name,
                                c->name);
        else if (!kiln_map_has(&mark, dg)) {
            kiln_map_put(&mark, dg, (void *)1);
            if (n == cap)
                st = xreallocarray(st, cap *= 2, sizeof(*st));
            st[n++] = (dfs_frame){c, 0};
        }
    }
    free(st);
    kiln_map_dispose(&mark, NULL);
    return rc;
}

static bool
build_ignores(const kiln_solver_build *b, const kiln_vertex_desc *d)
{
    const char *f;

    if (b->no_cache || (d->flags & KILN_VERTEX_IGNORE_CACHE))
        return true;
    kiln_vec_foreach(&b->filter, i, f) {
        if (strcmp(f, d->name) == 0 || strcmp(f, d->digest) == 0)
            return true;
    }
    return false;
}

static char *
make_ident(const kiln_vertex_desc *d, solver_vertex **in, bool ignore)
{
    bool plain = !ignore;
    kiln_sha256_ctx *c = NULL;
    kiln_sha256 h;
    char hex[2 * KILN_SHA256_LEN + 1];

    for (size_t i = 0; i < d->ninputs; i++)
        plain = plain && strcmp(in[i]->ident, in[i]->desc.digest) == 0;
    if (plain)
        return xstrdup(d->digest);
    kiln_sha256_ctx_new(&c);
    kiln_sha256_ctx_update(c, ignore ? "1" : "0", 2);
    for (size_t i = 0; i < d->ninputs; i++)
        kiln_sha256_ctx_update(c, in[i]->ident, strlen(in[i]->ident) + 1);
    kiln_sha256_ctx_final(c, &h);
    kiln_sha256_ctx_free(c);
    kiln_hex_encode(hex, h.bytes, KILN_SHA256_LEN);
    return xasprintf("%s~%.16s", d->digest, hex);
}

/*
 * Whether registry vertex v can serve a build whose inputs for it are `in`. A no-cache vertex
 * that already finished must run again for a later build (it would otherwise hand out the
 * result of an earlier "fresh" run), and so must everything loaded on top of a re-run vertex.
 */
static bool
reusable(const solver_vertex *v, solver_vertex **in)
{
    if (v->ignore && v->done)
        return false;
    for (size_t i = 0; i < v->desc.ninputs; i++)
        if (v->in[i] != in[i])
            return false;
    return true;
}

/* Find or create the registry vertex for d (its contents are moved or freed either way). */
static int
load_one_locked(solver_vertex **out, kiln_solver_build *b, kiln_vertex_desc *d, kiln_map *loaded,
                kiln_error **err)
{
    kiln_solver *s = b->s;
    cleanup_free solver_vertex **in = xcalloc(d->ninputs ? d->ninputs : 1, sizeof(*in));
    cleanup_free char *ident = NULL;
    bool ignore = build_ignores(b, d);
    solver_vertex *v;

    for (size_t i = 0; i < d->ninputs; i++)
        in[i] = kiln_map_get(loaded, d->inputs[i].digest);
    ident = make_ident(d, in, ignore);
    v = kiln_map_get(&s->registry, ident);
    if (v && !reusable(v, in)) {
        kiln_map_remove(&s->registry, ident); /* retired: lives on for its holders only */
        v = NULL;
    }
    if (v) {
        solver_vertex_ref_locked(v);
        solver_desc_free(d, s);
        *out = v;
        return 0;
    }
    return solver_vertex_new_locked(out, s, d, ident, in, ignore, err);
}

static void
add_record(kiln_solver_build *b, solver_vertex *v, const char *name)
{
    kiln_vec_push(&b->vertices, v);
    kiln_strvec_push(&b->names, name);
    kiln_map_put(&b->index, v->ident, (void *)(uintptr_t)b->vertices.len);
}

/* One summary record per loaded vertex, in load order (inputs first). */
static void
init_summary(kiln_solver_build *b)
{
    solver_vertex *v;

    b->summary.vertices =
            xcalloc(b->vertices.len ? b->vertices.len : 1, sizeof(kiln_vertex_summary));
    b->summary.nvertices = b->vertices.len;
    kiln_vec_foreach(&b->vertices, i, v) {
        b->summary.vertices[i].digest = xstrdup(v->desc.digest);
        b->summary.vertices[i].name = xstrdup(b->names.items[i]);
    }
}

/* Load `order` into the registry and attach the build. */
static int
load_locked(kiln_solver_build *b, kiln_vec *order, kiln_error **err)
{
    kiln_map loaded = KILN_MAP_INIT; /* digest -> solver_vertex * */
    kiln_vertex_desc *d;
    solver_vertex *v;
    int rc = 0;

    kiln_vec_foreach(order, i, d) {
        char *digest = xstrdup(d->digest);
        char *name = xstrdup(d->name); /* this build's name, also for a merged vertex */

        rc = load_one_locked(&v, b, d, &loaded, err);
        if (rc == 0) {
            kiln_map_put(&loaded, digest, v);
            if (!kiln_map_has(&b->index, v->ident))
                add_record(b, v, name);
            else
                solver_vertex_unref_locked(v);
        }
        free(name);
        free(digest);
        if (rc < 0)
            break;
    }
    kiln_map_dispose(&loaded, NULL);
    return rc;
}

static void
free_pending(kiln_solver_build *b)
{
    kiln_map_foreach(&b->pending, e) {
        solver_desc_free(e->value, b->s);
        free(e->value);
    }
    kiln_map_dispose(&b->pending, NULL);
    kiln_map_init(&b->pending);
}

static int
start_locked(kiln_solver_build *b, kiln_vertex_desc *target, unsigned output, kiln_error **err)
{
    kiln_vec order = KILN_VEC_INIT;
    solver_vertex *v;
    int rc;

    if (output >= target->noutputs)
        return kiln_error_set(err, KILN_EINVAL, "target %s has no output %u", target->name, output);
    rc = topo_order(&order, b, target, err);
    if (rc == 0)
        rc = load_locked(b, &order, err);
    kiln_vec_dispose(&order, NULL);
    init_summary(b);
    if (rc < 0)
        return rc;
    b->target = b->vertices.items[b->vertices.len - 1];
    b->output = output;
    b->started = true;
    b->attached = true;
    b->summary.started_ns = kiln_solver_now_ns();
    kiln_vec_foreach(&b->vertices, i, v) {
        solver_attach_locked(v, b);
    }
    b->target->need_result = true;
    solver_drain_locked(b->s);
    return 0;
}

int
kiln_solver_build_start(kiln_solver_build *b, const char *target, unsigned output, kiln_error **err)
{
    kiln_vertex_desc *t = target ? kiln_map_get(&b->pending, target) : NULL;
    kiln_error *e = NULL;
    int rc;

    if (b->started)
        return kiln_error_set(err, KILN_EINVAL, "build already started");
    if (b->finished)
        return kiln_error_set(err, KILN_ECANCELED, "build canceled");
    if (!t)
        return kiln_error_set(err, KILN_EINVAL, "target %s not found", target ? target : "");
    solver_lock(b->s);
    rc = start_locked(b, t, output, &e);
    if (rc < 0) {
        b->finished = true;
        b->error = kiln_error_copy(e);
    }
    solver_unlock(b->s);
    free_pending(b);
    if (rc < 0)
        kiln_error_move(err ? err : &e, &e);
    kiln_error_free(&e);
    return rc;
}

int
kiln_solver_build_wait(kiln_solver_result **out, kiln_solver_build *b, kiln_error **err)
{
    kiln_solver *s = b->s;
    kiln_error *e = NULL;
    int rc = 0;

    solver_lock(s);
    if (!b->started && !b->finished) {
        solver_unlock(s);
        return kiln_error_set(err, KILN_EINVAL, "build not started");
    }
    while (!b->finished)
        pthread_cond_wait(&b->cond, &s->lock);
    if (b->error) {
        e = kiln_error_copy(b->error);
        rc = e->code;
    } else if (out) {
        s->ops->result_ref(b->result, s->op_payload);
        *out = b->result;
    }
    solver_unlock(s);
    if (rc < 0 && err)
        kiln_error_move(err, &e);
    kiln_error_free(&e);
    return rc;
}

void
kiln_solver_build_cancel(kiln_solver_build *b)
{
    kiln_solver *s = b->s;

    solver_lock(s);
    if (!b->finished) {
        if (b->started) {
            solver_build_fail_locked(b, solver_canceled_error());
        } else {
            b->finished = true; /* start will refuse */
            b->error = solver_canceled_error();
        }
    }
    solver_drain_locked(s);
    solver_unlock(s);
}

const kiln_build_summary *
kiln_solver_build_summary(const kiln_solver_build *b)
{
    const kiln_build_summary *sum;

    solver_lock(b->s);
    sum = b->started && b->finished ? &b->summary : NULL;
    solver_unlock(b->s);
    return sum;
}

static void
summary_dispose(kiln_build_summary *sum)
{
    for (size_t i = 0; i < sum->nvertices; i++) {
        free(sum->vertices[i].digest);
        free(sum->vertices[i].name);
        free(sum->vertices[i].cache_key);
        free(sum->vertices[i].error);
    }
    free(sum->vertices);
}

void
kiln_solver_build_free(kiln_solver_build *b)
{
    kiln_solver *s;
    solver_vertex *v;

    if (!b)
        return;
    s = b->s;
    kiln_solver_build_cancel(b);
    solver_lock(s);
    kiln_vec_foreach(&b->vertices, i, v) {
        solver_vertex_unref_locked(v);
    }
    for (size_t i = 0; i < s->builds.len; i++) {
        if (s->builds.items[i] == b) {
            kiln_vec_remove(&s->builds, i);
            break;
        }
    }
    solver_unlock(s);
    if (b->result)
        s->ops->result_unref(b->result, s->op_payload);
    free_pending(b);
    kiln_map_dispose(&b->pending, NULL);
    kiln_map_dispose(&b->index, NULL);
    kiln_vec_dispose(&b->vertices, NULL);
    kiln_strvec_dispose(&b->filter);
    kiln_strvec_dispose(&b->names);
    kiln_error_free(&b->error);
    summary_dispose(&b->summary);
    pthread_cond_destroy(&b->cond);
    free(b);
}
