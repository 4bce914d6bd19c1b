/*
 * engine.c: the composition root. An engine owns the state store (cache/) and one solver whose
 * op and cache tables are filled in here: a solve loads an LLB Definition (llb/), turns every op
 * into a solver vertex (digest = the op's digest, inputs = Op.inputs, one output per op except
 * exec, which has one per mount with an output), starts at the terminal op's input and waits.
 *
 * Results are refcounted handles around committed snapshot ids. Cache keys from the solver map
 * to snapshots as "<key>#<output>" in the store. Every snapshot an engine commits is held by the
 * engine's lease (released when the engine closes), so a concurrent prune cannot remove it before
 * a cache key refers to it.
 *
 * Cache map base of a vertex: "sha256:" of "kiln.engine.op.v1\n" + the Go-deterministic encoding
 * of its Op with Op.inputs removed (the solver adds the inputs' keys), + "\n" + an op-specific
 * extra when the bytes do not say everything (a local source's content checksum, the manifest
 * digest an oci-layout tag resolved to). An exec's Meta.proxy_env is left out, as BuildKit's exec
 * CacheMap clears it: changing a proxy build arg keeps the cache (the vertex digest, the hash of
 * the op bytes as given, still includes it).
 */
#define KILN_LOG_DOMAIN "engine"

#include <stdatomic.h>
#include <time.h>

#include "base/buf.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/path.h"
#include "engine/engine_internal.h"
#include "executor/executor.h"
#include "kiln/engine.h"
#include "oci/export.h"

#include "base/base.h"

struct kiln_engine_result {
    kiln_solver_result *r;
};

static atomic_uint lease_counter;

/* ---- results ------------------------------------------------------------------------------ */

kiln_solver_result *
engine_result_new(const char *id)
{
    kiln_solver_result *r = xnew(kiln_solver_result);

    atomic_init(&r->refs, 1);
    kiln_strlcpy(r->id, id, sizeof(r->id));
    return r;
}

void
engine_result_unref(kiln_solver_result *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        free(r);
}

static void
op_result_ref(kiln_solver_result *r, void *payload)
{
    (void)payload;
    atomic_fetch_add(&r->refs, 1);
}

static void
op_result_unref(kiln_solver_result *r, void *payload)
{
    (void)payload;
    engine_result_unref(r);
}

void
engine_hold(kiln_engine *e, const char *id)
{
    cleanup_kiln_error kiln_error *tmp = NULL;
    cleanup_free char *target = xasprintf("snapshot:%s", id);

    if (kiln_cache_lease_add(e->cache, e->lease, target, &tmp) < 0)
        kiln_log_warn("lease %s: %s", target, tmp->msg);
}

/* ---- the cache table ------------------------------------------------------------------------ */

static int
cache_lookup(bool *found, const char *key, void *payload, kiln_error **err)
{
    kiln_engine *e = payload;
    cleanup_free char *k = xasprintf("%s#0", key);
    kiln_cache_result res = {0};
    kiln_error *tmp = NULL;
    int ret;

    ret = kiln_cache_key_get(&res, e->cache, k, &tmp);
    kiln_cache_result_dispose(&res);
    *found = ret == 0;
    if (ret == KILN_ENOTFOUND) {
        kiln_error_free(&tmp);
        return 0;
    }
    if (ret < 0)
        kiln_error_move(err, &tmp);
    return ret < 0 ? ret : 0;
}

static int
cache_load(kiln_solver_result **out, const char *key, unsigned output, void *payload,
           kiln_error **err)
{
    kiln_engine *e = payload;
    cleanup_free char *k = xasprintf("%s#%u", key, output);
    kiln_cache_result res = {0};
    int ret;

    ret = kiln_cache_key_get(&res, e->cache, k, err);
    if (ret < 0)
        return ret;
    *out = engine_result_new(res.snapshot_id);
    kiln_cache_result_dispose(&res);
    return 0;
}

static int
cache_save(const char *key, unsigned output, kiln_solver_result *r, void *payload, kiln_error **err)
{
    kiln_engine *e = payload;
    cleanup_free char *k = xasprintf("%s#%u", key, output);

    return kiln_cache_key_put(e->cache, k, r->id, err);
}

static const kiln_cache_ops engine_cache_ops = {
        .version = KILN_CACHE_OPS_VERSION,
        .lookup = cache_lookup,
        .load = cache_load,
        .save = cache_save,
};

/* ---- the op table --------------------------------------------------------------------------- */

static char *
op_base_digest(const Pb__Op *op, const char *extra)
{
    Pb__Op copy = *op;
    Pb__ExecOp exec;
    Pb__Meta meta;
    kiln_buf b = KILN_BUF_INIT;
    kiln_sha256 d;

    copy.n_inputs = 0;
    copy.inputs = NULL;
    if (op->op_case == PB__OP__OP_EXEC && op->exec->meta && op->exec->meta->proxy_env) {
        exec = *op->exec;
        meta = *op->exec->meta;
        meta.proxy_env = NULL;
        exec.meta = &meta;
        copy.exec = &exec;
    }
    kiln_buf_puts(&b, "kiln.engine.op.v1\n", NULL);
    kiln_llb_encode(&b, &copy.base);
    if (extra)
        kiln_buf_printf(&b, NULL, "\n%s", extra);
    kiln_sha256_buf(&d, b.ptr, b.len);
    kiln_buf_dispose(&b);
    return kiln_digest_str(&d);
}

static int
op_cache_map(kiln_cache_map *out, const kiln_vertex_desc *v, void *payload, kiln_error **err)
{
    const engine_op *eop = v->op;
    cleanup_free char *extra = NULL;
    int ret = 0;

    (void)payload;
    if (eop->op->op_case == PB__OP__OP_SOURCE)
        ret = engine_source_cache_extra(&extra, eop, err);
    if (ret < 0)
        return ret;
    out->base = op_base_digest(eop->op, extra);
    out->ndeps = v->ninputs;
    out->deps = xcalloc(v->ninputs ? v->ninputs : 1, sizeof(*out->deps));
    if (eop->op->op_case == PB__OP__OP_FILE)
        return engine_file_selectors(out, eop, err);
    return 0;
}

static int
op_content_digest(char **out, kiln_solver_result *r, const char *selector, void *payload,
                  kiln_error **err)
{
    kiln_engine *e = payload;
    engine_view view = {0};
    int ret;

    ret = engine_view_open(&view, e, r->id, err);
    if (ret == 0)
        ret = engine_content_digest(out, view.path, selector, err);
    engine_view_close(&view);
    return ret;
}

static int
op_exec(kiln_solver_result **outputs, const kiln_vertex_desc *v, kiln_solver_result *const *inputs,
        kiln_op_ctx *ctx, void *payload, kiln_error **err)
{
    const engine_op *eop = v->op;

    (void)payload;
    if (eop->op->op_case == PB__OP__OP_SOURCE)
        return engine_source_exec(&outputs[0], eop, ctx, err);
    if (eop->op->op_case == PB__OP__OP_FILE)
        return engine_file_exec(&outputs[0], eop, inputs, err);
    if (eop->op->op_case == PB__OP__OP_EXEC)
        return engine_exec_exec(outputs, eop, inputs, ctx, err);
    if (eop->op->op_case == PB__OP__OP_MERGE || eop->op->op_case == PB__OP__OP_DIFF)
        return engine_merge_exec(&outputs[0], eop, inputs, err);
    return kiln_error_set(err, KILN_EUNSUPPORTED, "%s ops are not supported yet",
                          kiln_llb_op_kind(eop->op));
}

static void
op_cancel(kiln_op_ctx *ctx, void *payload)
{
    (void)payload;
    engine_exec_cancel(ctx);
}

static void
op_free(void *op, void *payload)
{
    engine_op *eop = op;

    (void)payload;
    if (!eop)
        return;
    if (eop->op)
        pb__op__free_unpacked(eop->op, NULL);
    free(eop->local_dir);
    engine_remote_dispose(eop);
    for (size_t i = 0; i < eop->n_secrets; i++) {
        free((char *)eop->secrets[i].id);
        if (eop->secrets[i].data)
            explicit_bzero((void *)eop->secrets[i].data, eop->secrets[i].len);
        free((void *)eop->secrets[i].data);
    }
    free(eop->secrets);
    for (size_t i = 0; i < eop->n_ssh; i++) {
        free((char *)eop->ssh[i].id);
        free((char *)eop->ssh[i].socket);
    }
    free(eop->ssh);
    free(eop);
}

/* Give an exec op copies of the secrets and ssh sockets its mounts name (only those). */
static void
payload_secret(engine_op *eop, const kiln_engine_solve_opts *opts, const char *id)
{
    for (size_t k = 0; k < eop->n_secrets; k++) {
        if (strcmp(eop->secrets[k].id, id) == 0)
            return; /* already copied */
    }
    for (size_t k = 0; k < opts->n_secrets; k++) {
        const kiln_engine_secret *sec = &opts->secrets[k];
        if (strcmp(sec->id, id) != 0)
            continue;
        eop->secrets = xreallocarray(eop->secrets, eop->n_secrets + 1, sizeof(*eop->secrets));
        eop->secrets[eop->n_secrets].id = xstrdup(sec->id);
        eop->secrets[eop->n_secrets].data = xmemdup(sec->data, sec->len ? sec->len : 1);
        eop->secrets[eop->n_secrets].len = sec->len;
        eop->n_secrets++;
        return;
    }
}

static void
payload_secrets(engine_op *eop, const kiln_engine_solve_opts *opts)
{
    const Pb__ExecOp *ex = eop->op->exec;

    for (size_t i = 0; i < ex->n_secretenv; i++) { /* RUN --mount=type=secret,env=NAME */
        if (ex->secretenv[i]->id)
            payload_secret(eop, opts, ex->secretenv[i]->id);
    }

    for (size_t i = 0; i < ex->n_mounts; i++) {
        const Pb__Mount *m = ex->mounts[i];
        if (m->mounttype == PB__MOUNT_TYPE__SECRET && m->secretopt) {
            for (size_t k = 0; k < opts->n_secrets; k++) {
                const kiln_engine_secret *sec = &opts->secrets[k];
                if (strcmp(sec->id, m->secretopt->id) != 0)
                    continue;
                eop->secrets =
                        xreallocarray(eop->secrets, eop->n_secrets + 1, sizeof(*eop->secrets));
                eop->secrets[eop->n_secrets].id = xstrdup(sec->id);
                eop->secrets[eop->n_secrets].data = xmemdup(sec->data, sec->len ? sec->len : 1);
                eop->secrets[eop->n_secrets].len = sec->len;
                eop->n_secrets++;
                break;
            }
        } else if (m->mounttype == PB__MOUNT_TYPE__SSH && m->sshopt) {
            const char *want = m->sshopt->id && *m->sshopt->id ? m->sshopt->id : "default";
            for (size_t k = 0; k < opts->n_ssh; k++) {
                if (strcmp(opts->ssh[k].id, want) != 0)
                    continue;
                eop->ssh = xreallocarray(eop->ssh, eop->n_ssh + 1, sizeof(*eop->ssh));
                eop->ssh[eop->n_ssh].id = xstrdup(opts->ssh[k].id);
                eop->ssh[eop->n_ssh].socket = xstrdup(opts->ssh[k].socket);
                eop->n_ssh++;
                break;
            }
        }
    }
}

static const kiln_op_ops engine_op_ops = {
        .version = KILN_OP_OPS_VERSION,
        .cache_map = op_cache_map,
        .compute_content_digest = op_content_digest,
        .exec = op_exec,
        .cancel = op_cancel,
        .result_ref = op_result_ref,
        .result_unref = op_result_unref,
        .op_free = op_free,
};

/* ---- engine --------------------------------------------------------------------------------- */

int
kiln_engine_open(kiln_engine **out, const kiln_engine_opts *opts, kiln_error **err)
{
    kiln_engine_opts defaults = KILN_ENGINE_OPTS_INIT;
    cleanup_free char *root = NULL;
    kiln_solver_opts so = {0};
    kiln_engine *e;
    int ret;

    if (!opts)
        opts = &defaults;
    if (opts->version != KILN_ENGINE_OPTS_VERSION)
        return kiln_error_set(err, KILN_EINVAL, "engine options version %d (want %d)",
                              opts->version, KILN_ENGINE_OPTS_VERSION);
    root = opts->root ? xstrdup(opts->root) : kiln_cache_default_root();
    e = xnew(kiln_engine);
    ret = kiln_cache_open(&e->cache, root, NULL, err);
    if (ret < 0) {
        free(e);
        return kiln_error_wrap(err, "open state dir `%s`", root);
    }
    e->mountdir = kiln_path_join(root, "mounts");
    e->cachedirs = kiln_path_join(root, "cache-mounts");
    e->gitdir = kiln_path_join(root, "git");
    e->localdir = kiln_path_join(root, "local");
    {
        /* cgroups left by a kiln killed during a step with limits (the store's own leftovers
         * are swept by kiln_cache_open) */
        kiln_error *tmp = NULL;
        if (kiln_exec_sweep_cgroups(&tmp) < 0)
            kiln_log_debug("sweep cgroups: %s", tmp->msg);
        kiln_error_free(&tmp);
    }
    e->lease = xasprintf("engine-%ld-%u", (long)getpid(), atomic_fetch_add(&lease_counter, 1));
    ret = kiln_fs_mkdir_p(e->mountdir, 0700, err);
    if (ret == 0)
        ret = kiln_fs_mkdir_p(e->cachedirs, 0700, err);
    so.max_parallelism = opts->max_parallelism;
    so.op_ops = &engine_op_ops;
    so.op_payload = e;
    so.cache_ops = &engine_cache_ops;
    so.cache_payload = e;
    if (ret == 0)
        ret = kiln_solver_new(&e->solver, &so, err);
    if (ret < 0) {
        kiln_engine_free(e);
        return ret;
    }
    *out = e;
    return 0;
}

void
kiln_engine_free(kiln_engine *e)
{
    cleanup_kiln_error kiln_error *tmp = NULL;

    if (!e)
        return;
    kiln_solver_free(e->solver);
    if (e->cache && kiln_cache_lease_release(e->cache, e->lease, &tmp) < 0 &&
        tmp->code != KILN_ENOTFOUND)
        kiln_log_warn("release lease %s: %s", e->lease, tmp->msg);
    kiln_cache_free(e->cache);
    free(e->lease);
    free(e->mountdir);
    free(e->cachedirs);
    free(e->gitdir);
    free(e->localdir);
    free(e);
}

/* ---- solve ---------------------------------------------------------------------------------- */

static const char *
op_custom_name(const kiln_llb_node *n)
{
    if (!n->metadata)
        return NULL;
    for (size_t i = 0; i < n->metadata->n_description; i++) {
        if (strcmp(n->metadata->description[i]->key, KILN_LLB_CUSTOM_NAME) == 0)
            return n->metadata->description[i]->value;
    }
    return NULL;
}

static const char *
file_action_name(const Pb__FileAction *a)
{
    if (a->action_case == PB__FILE_ACTION__ACTION_COPY)
        return a->copy->dest;
    if (a->action_case == PB__FILE_ACTION__ACTION_MKFILE)
        return a->mkfile->path;
    if (a->action_case == PB__FILE_ACTION__ACTION_MKDIR)
        return a->mkdir->path;
    if (a->action_case == PB__FILE_ACTION__ACTION_RM)
        return a->rm->path;
    if (a->action_case == PB__FILE_ACTION__ACTION_SYMLINK)
        return a->symlink->newpath;
    return "";
}

/* A display name: the llb.customname description, else the op kind and what it works on. */
static char *
vertex_name(const kiln_llb_node *n)
{
    const Pb__Op *op = n->op;
    kiln_buf b = KILN_BUF_INIT;

    if (op_custom_name(n))
        return xstrdup(op_custom_name(n));
    kiln_buf_puts(&b, kiln_llb_op_kind(op), NULL);
    if (op->op_case == PB__OP__OP_SOURCE) {
        kiln_buf_printf(&b, NULL, " %s", op->source->identifier);
    } else if (op->op_case == PB__OP__OP_EXEC && op->exec->meta) {
        for (size_t i = 0; i < op->exec->meta->n_args && b.len < 200; i++)
            kiln_buf_printf(&b, NULL, " %s", op->exec->meta->args[i]);
    } else if (op->op_case == PB__OP__OP_FILE) {
        for (size_t i = 0; i < op->file->n_actions && b.len < 200; i++)
            kiln_buf_printf(&b, NULL, " %s", file_action_name(op->file->actions[i]));
    }
    return kiln_buf_detach(&b);
}

static const char *
find_local(const kiln_engine_solve_opts *opts, const char *name)
{
    for (size_t i = 0; i < opts->n_locals; i++) {
        if (strcmp(opts->locals[i].name, name) == 0)
            return opts->locals[i].dir;
    }
    return NULL;
}

/* The op payload of node i of g: it takes over the node's decoded op (kept for cache maps and
 * exec once the graph is gone), after the checks that may refuse the vertex. */
static int
make_payload(engine_op **out, kiln_engine *e, kiln_llb_graph *g, size_t i,
             const kiln_engine_solve_opts *opts, kiln_error **err)
{
    const kiln_llb_node *n = kiln_llb_graph_node(g, i);
    engine_op *eop;
    const char *id, *dir = NULL;

    if (n->op->op_case != PB__OP__OP_SOURCE && n->op->op_case != PB__OP__OP_FILE &&
        n->op->op_case != PB__OP__OP_EXEC && n->op->op_case != PB__OP__OP_MERGE &&
        n->op->op_case != PB__OP__OP_DIFF)
        return kiln_error_set(err, KILN_EUNSUPPORTED, "vertex %s: %s ops are not supported yet",
                              n->digest, kiln_llb_op_kind(n->op));
    if (n->op->op_case == PB__OP__OP_SOURCE &&
        kiln_str_has_prefix(n->op->source->identifier, "local://")) {
        id = n->op->source->identifier + strlen("local://");
        dir = find_local(opts, id);
        if (!dir)
            return kiln_error_set(err, KILN_EINVAL,
                                  "local source `%s` was not given (--local %s=DIR)", id, id);
    }
    if (n->op->op_case == PB__OP__OP_EXEC) {
        const Pb__ExecOp *ex = n->op->exec;
        const char *denied = NULL;
        if (ex->network == PB__NET_MODE__HOST && !opts->allow_network_host)
            denied = "network.host";
        else if (ex->security == PB__SECURITY_MODE__INSECURE && !opts->allow_security_insecure)
            denied = "security.insecure";
        if (denied)
            return kiln_error_set(err, KILN_EAUTH,
                                  "%s is not allowed: vertex %s asks for it; grant it with "
                                  "--allow %s",
                                  denied, n->digest, denied);
    }
    eop = xnew(engine_op);
    eop->engine = e;
    eop->op = kiln_llb_graph_take_op(g, i);
    if (dir)
        eop->local_dir = xstrdup(dir);
    if (eop->op->op_case == PB__OP__OP_EXEC) {
        eop->allow_insecure = opts->allow_security_insecure;
        payload_secrets(eop, opts);
    }
    *out = eop;
    return 0;
}

/* Add node `pos` of g to b. The solver copies what it keeps, and the payload owns the decoded op:
 * the node's op must not be used once this returns. */
static int
add_vertex(kiln_solver_build *b, kiln_engine *e, kiln_llb_graph *g, size_t pos,
           const kiln_engine_solve_opts *opts, kiln_error **err)
{
    const kiln_llb_node *n = kiln_llb_graph_node(g, pos);
    kiln_vertex_desc d = {0};
    cleanup_free kiln_vertex_input *inputs = NULL;
    cleanup_free char *name = NULL;
    engine_op *eop = NULL;
    int ret;

    ret = make_payload(&eop, e, g, pos, opts, err);
    if (ret < 0)
        return ret;
    inputs = xcalloc(n->op->n_inputs ? n->op->n_inputs : 1, sizeof(*inputs));
    for (size_t i = 0; i < n->op->n_inputs; i++) {
        inputs[i].digest = n->op->inputs[i]->digest;
        inputs[i].output = (unsigned)n->op->inputs[i]->index;
    }
    name = vertex_name(n);
    d.digest = n->digest;
    d.name = name;
    d.kind = kiln_llb_op_kind(n->op);
    d.op = eop;
    d.inputs = inputs;
    d.ninputs = n->op->n_inputs;
    d.noutputs = n->op->op_case == PB__OP__OP_EXEC ? engine_exec_noutputs(n->op->exec) : 1;
    d.flags = n->metadata && n->metadata->ignore_cache ? KILN_VERTEX_IGNORE_CACHE : 0;
    if (n->op->op_case == PB__OP__OP_EXEC)
        d.flags |= KILN_VERTEX_WAITS;
    return kiln_solver_build_add_vertex(b, &d, err);
}

/* The public event types mirror the solver's progress types one to one. */
_Static_assert((int)KILN_ENGINE_EVENT_STARTED == (int)KILN_PROGRESS_STARTED &&
                       (int)KILN_ENGINE_EVENT_CACHED == (int)KILN_PROGRESS_CACHED &&
                       (int)KILN_ENGINE_EVENT_LOG == (int)KILN_PROGRESS_LOG &&
                       (int)KILN_ENGINE_EVENT_STATUS == (int)KILN_PROGRESS_STATUS &&
                       (int)KILN_ENGINE_EVENT_DONE == (int)KILN_PROGRESS_DONE &&
                       (int)KILN_ENGINE_EVENT_ERROR == (int)KILN_PROGRESS_ERROR &&
                       (int)KILN_ENGINE_EVENT_CANCELED == (int)KILN_PROGRESS_CANCELED,
               "engine events must mirror solver progress types");

static void
progress_bridge(const kiln_progress_event *ev, void *payload)
{
    const kiln_engine_solve_opts *opts = payload;
    kiln_engine_event out = {0};
    cleanup_free char *msg = NULL;

    out.type = (kiln_engine_event_type)ev->type;
    out.time_ns = ev->time_ns;
    out.digest = ev->digest;
    out.name = ev->name;
    out.stream = ev->stream;
    out.data = ev->data;
    out.len = ev->len;
    if (ev->type == KILN_PROGRESS_ERROR && ev->error) {
        msg = kiln_error_format(ev->error);
        out.error = msg;
    }
    opts->progress(&out, opts->progress_payload);
}

/* Add every op of g but the terminal one to b; *target (owned) and *output name the terminal
 * op's input. The graph's ops move into the vertices' payloads. */
static int
add_vertices(kiln_solver_build *b, kiln_engine *e, kiln_llb_graph *g,
             const kiln_engine_solve_opts *opts, char **target, unsigned *output, kiln_error **err)
{
    const kiln_llb_node *term = kiln_llb_graph_terminal(g);
    size_t n = kiln_llb_graph_count(g);
    int ret;

    for (size_t i = 0; i < n; i++) {
        if (kiln_llb_graph_node(g, i) == term)
            continue;
        ret = add_vertex(b, e, g, i, opts, err);
        if (ret < 0)
            return ret;
    }
    if (term->op->n_inputs < 1)
        return kiln_error_set(err, KILN_EINVAL, "terminal op has no input");
    *target = xstrdup(term->op->inputs[0]->digest);
    *output = (unsigned)term->op->inputs[0]->index;
    return 0;
}

int
kiln_engine_solve(kiln_engine_result **out, kiln_engine *e, const void *def, size_t len,
                  const kiln_engine_solve_opts *opts, kiln_error **err)
{
    kiln_engine_solve_opts defaults = KILN_ENGINE_SOLVE_OPTS_INIT;
    kiln_solve_opts so = {0};
    kiln_llb_graph *g = NULL;
    kiln_solver_build *b = NULL;
    kiln_solver_result *r = NULL;
    cleanup_free char *target = NULL;
    unsigned output = 0;
    struct timespec wall;
    int ret;

    if (!opts)
        opts = &defaults;
    if (opts->version != KILN_ENGINE_SOLVE_OPTS_VERSION)
        return kiln_error_set(err, KILN_EINVAL, "solve options version %d (want %d)", opts->version,
                              KILN_ENGINE_SOLVE_OPTS_VERSION);
    ret = kiln_llb_load(&g, def, len, err);
    if (ret < 0)
        return kiln_error_wrap(err, "load definition");
    so.no_cache = opts->no_cache;
    if (opts->progress) {
        so.progress = progress_bridge;
        so.progress_payload = (void *)opts;
    }
    clock_gettime(CLOCK_REALTIME, &wall);
    ret = kiln_solver_build_new(&b, e->solver, &so, err);
    if (ret == 0)
        ret = add_vertices(b, e, g, opts, &target, &output, err);
    /* the vertices own copies of what they need: the graph is not kept during the solve */
    kiln_llb_graph_free(g);
    if (ret == 0)
        ret = kiln_solver_build_start(b, target, output, err);
    if (ret == 0)
        ret = kiln_solver_build_wait(&r, b, err);
    if (opts->history_name)
        engine_history_record(
                e, opts->history_name, (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec,
                b ? kiln_solver_build_summary(b) : NULL, r ? r->id : NULL, ret < 0 ? *err : NULL);
    kiln_solver_build_free(b);
    if (ret < 0)
        return ret;
    *out = xnew(kiln_engine_result);
    (*out)->r = r;
    return 0;
}

int
kiln_engine_resolve_image_config(char **config_json, char **manifest_digest, kiln_engine *e,
                                 const char *ref, kiln_error **err)
{
    cleanup_free char *config = NULL;
    char digest[KILN_DIGEST_STRLEN + 1];
    int ret;

    if (kiln_str_has_prefix(ref, "oci-layout://"))
        ret = engine_layout_config(&config, digest, ref, err);
    else if (kiln_str_has_prefix(ref, "docker-image://"))
        ret = engine_image_config(&config, digest, e, ref + strlen("docker-image://"), err);
    else if (strstr(ref, "://"))
        ret = kiln_error_set(err, KILN_EUNSUPPORTED, "image source `%s` is not supported", ref);
    else
        ret = engine_image_config(&config, digest, e, ref, err);
    if (ret < 0)
        return kiln_error_wrap(err, "resolve image config of `%s`", ref);
    *config_json = steal_pointer(&config);
    if (manifest_digest)
        *manifest_digest = xstrdup(digest);
    return 0;
}

void
kiln_engine_cancel(kiln_engine *e)
{
    kiln_solver_cancel(e->solver);
}

const char *
kiln_engine_result_id(const kiln_engine_result *r)
{
    return r->r->id;
}

int
kiln_engine_result_export_dir(kiln_engine *e, const kiln_engine_result *r, const char *dir,
                              kiln_error **err)
{
    engine_view view = {0};
    int ret;

    ret = engine_view_open(&view, e, r->r->id, err);
    if (ret == 0)
        ret = kiln_fs_copy_tree(
                view.path, dir,
                KILN_COPY_PRESERVE_OWNER | KILN_COPY_PRESERVE_XATTRS | KILN_COPY_HARDLINKS, err);
    engine_view_close(&view);
    if (ret < 0)
        return kiln_error_wrap(err, "export to `%s`", dir);
    return 0;
}

int
kiln_engine_result_export_tar(kiln_engine *e, const kiln_engine_result *r, int fd, int64_t epoch,
                              kiln_error **err)
{
    engine_view view = {0};
    int ret;

    ret = engine_view_open(&view, e, r->r->id, err);
    if (ret == 0)
        ret = kiln_export_tar(view.path, fd,
                              epoch >= 0 ? KILN_LAYER_TIME_CLAMP : KILN_LAYER_TIME_KEEP,
                              epoch >= 0 ? epoch : 0, err);
    engine_view_close(&view);
    if (ret < 0)
        return kiln_error_wrap(err, "export as tar");
    return 0;
}

void
kiln_engine_result_free(kiln_engine *e, kiln_engine_result *r)
{
    (void)e;
    if (!r)
        return;
    engine_result_unref(r->r);
    free(r);
}
