/*
 * op_exec.c: ExecOps. The root mount's input gets a new active snapshot that the executor mounts
 * as an overlay rootfs (lower chain + upper + work; the upper dir alone for a base snapshot or the
 * naive snapshotter). Other mounts: read-only binds of committed inputs (a view, with the mount's
 * selector as subpath), writable binds on a mounted active snapshot (committed as that mount's
 * output, or dropped when it has none), scratch binds on an empty dir, persistent cache mounts in
 * <root>/cache-mounts/<sha256 of the id> (the executor implements the sharing modes), tmpfs.
 * Secrets and ssh sockets come from the solve request (kiln build --secret / --ssh): a secret is a
 * file on a private tmpfs, never in a layer; missing optional ones are skipped, required ones fail.
 *
 * The network modes map as: NONE -> a private network namespace with only loopback; HOST and
 * UNSET (the default) -> the host's network, as buildkitd without a CNI config (kiln has no
 * bridge network). An explicit HOST and security=insecure (all capabilities, no seccomp
 * profile, no masked paths) need the solve's entitlements (network.host, security.insecure),
 * checked when the Definition is loaded (engine.c). Output streams to the vertex's progress
 * log. Meta.proxy_env is
 * added to the process env (HTTP_PROXY and http_proxy, ...) unless Meta.env sets that name.
 */
#define KILN_LOG_DOMAIN "engine"

#include <pthread.h>

#include "base/buf.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/path.h"
#include "base/vec.h"
#include "engine/engine_internal.h"
#include "executor/executor.h"

#include "base/base.h"

/* Guards the exec cancel handle stored in an op ctx against a late cancel callback. */
static pthread_mutex_t cancel_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct mount_state {
    engine_view view; /* read-only bind of an input or scratch */
    engine_rw rw;     /* writable bind */
    bool has_rw;
    char *dir; /* cache mount dir; owned */
} mount_state;

typedef struct exec_run {
    const engine_op *eop;
    const Pb__ExecOp *ex;
    kiln_solver_result *const *inputs;
    engine_rw root;
    kiln_cache_mounts rootm;
    const Pb__Mount *rootmount;
    mount_state *ms;     /* one per ex->mounts entry */
    kiln_exec_mount *xm; /* executor mounts */
    size_t nxm;
} exec_run;

unsigned
engine_exec_noutputs(const Pb__ExecOp *ex)
{
    int64_t max = -1;

    for (size_t i = 0; i < ex->n_mounts; i++) {
        if (ex->mounts[i]->output > max)
            max = ex->mounts[i]->output;
    }
    return max < 0 ? 1 : (unsigned)(max + 1);
}

static const char *
input_id(const exec_run *r, int64_t input)
{
    return input < 0 ? NULL : r->inputs[input]->id;
}

static int
bind_mount(exec_run *r, const Pb__Mount *m, mount_state *s, kiln_exec_mount *x, kiln_error **err)
{
    int ret;

    x->type = KILN_EXEC_MOUNT_BIND;
    x->readonly = m->readonly;
    x->subpath = m->selector && *m->selector ? m->selector : NULL;
    if (m->readonly) {
        ret = engine_view_open(&s->view, r->eop->engine, input_id(r, m->input), err);
        x->source = s->view.path;
        return ret;
    }
    ret = engine_rw_open(&s->rw, r->eop->engine, input_id(r, m->input), err);
    s->has_rw = true;
    x->source = s->rw.path;
    return ret;
}

static int
cache_mount(exec_run *r, const Pb__Mount *m, mount_state *s, kiln_exec_mount *x, kiln_error **err)
{
    const char *id = m->cacheopt && m->cacheopt->id && *m->cacheopt->id ? m->cacheopt->id : m->dest;
    char hex[KILN_DIGEST_STRLEN + 1];
    kiln_sha256 d;

    kiln_sha256_buf(&d, id, strlen(id));
    kiln_digest_format(hex, &d);
    s->dir = xasprintf("%s/%s", r->eop->engine->cachedirs, hex + strlen("sha256:"));
    x->type = KILN_EXEC_MOUNT_CACHE;
    x->source = s->dir;
    x->sharing = KILN_EXEC_CACHE_SHARED;
    if (m->cacheopt && m->cacheopt->sharing == PB__CACHE_SHARING_OPT__PRIVATE)
        x->sharing = KILN_EXEC_CACHE_PRIVATE;
    else if (m->cacheopt && m->cacheopt->sharing == PB__CACHE_SHARING_OPT__LOCKED)
        x->sharing = KILN_EXEC_CACHE_LOCKED;
    return kiln_fs_mkdir_p(s->dir, 0755, err);
}

/* A secret the solve request gave: its bytes on a private tmpfs file. Missing: skipped when
 * optional, else an error naming it (BuildKit's message). */
static int
secret_mount(exec_run *r, const Pb__Mount *m, kiln_exec_mount *x, kiln_error **err)
{
    const Pb__SecretOpt *o = m->secretopt;

    for (size_t i = 0; i < r->eop->n_secrets; i++) {
        if (strcmp(r->eop->secrets[i].id, o->id) != 0)
            continue;
        x->type = KILN_EXEC_MOUNT_SECRET;
        x->data = r->eop->secrets[i].data;
        x->data_len = r->eop->secrets[i].len;
        x->mode = o->mode ? o->mode : 0400;
        x->uid = o->uid;
        x->gid = o->gid;
        r->nxm++;
        return 0;
    }
    if (o->optional)
        return 0;
    return kiln_error_set(err, KILN_ENOTFOUND,
                          "secret %s not found (pass it with --secret id=%s,src=FILE)", o->id,
                          o->id);
}

/* An ssh agent socket the solve request forwarded. */
static int
ssh_mount(exec_run *r, const Pb__Mount *m, kiln_exec_mount *x, kiln_error **err)
{
    const Pb__SSHOpt *o = m->sshopt;
    const char *id = o->id && *o->id ? o->id : "default";

    for (size_t i = 0; i < r->eop->n_ssh; i++) {
        if (strcmp(r->eop->ssh[i].id, id) != 0)
            continue;
        x->type = KILN_EXEC_MOUNT_SSH;
        x->source = r->eop->ssh[i].socket;
        x->mode = o->mode ? o->mode : 0600;
        x->uid = o->uid;
        x->gid = o->gid;
        r->nxm++;
        return 0;
    }
    if (o->optional)
        return 0;
    return kiln_error_set(err, KILN_ENOTFOUND,
                          "no SSH key \"%s\" forwarded from the client (pass --ssh %s)", id, id);
}

static int
setup_mount(exec_run *r, const Pb__Mount *m, mount_state *s, kiln_error **err)
{
    kiln_exec_mount *x = &r->xm[r->nxm];

    memset(x, 0, sizeof(*x));
    x->dest = m->dest;
    if (m->mounttype == PB__MOUNT_TYPE__BIND) {
        r->nxm++;
        return bind_mount(r, m, s, x, err);
    }
    if (m->mounttype == PB__MOUNT_TYPE__CACHE) {
        r->nxm++;
        return cache_mount(r, m, s, x, err);
    }
    if (m->mounttype == PB__MOUNT_TYPE__TMPFS) {
        r->nxm++;
        x->type = KILN_EXEC_MOUNT_TMPFS;
        x->tmpfs_size = m->tmpfsopt && m->tmpfsopt->size > 0 ? (uint64_t)m->tmpfsopt->size : 0;
        return 0;
    }
    if (m->mounttype == PB__MOUNT_TYPE__SECRET && m->secretopt)
        return secret_mount(r, m, x, err);
    if (m->mounttype == PB__MOUNT_TYPE__SSH && m->sshopt)
        return ssh_mount(r, m, x, err);
    return kiln_error_set(err, KILN_EINVAL, "mount at `%s`: unknown mount type %d", m->dest,
                          (int)m->mounttype);
}

static int
setup_mounts(exec_run *r, kiln_error **err)
{
    int ret;

    r->ms = xcalloc(r->ex->n_mounts + 1, sizeof(*r->ms));
    r->xm = xcalloc(r->ex->n_mounts + 1, sizeof(*r->xm));
    for (size_t i = 0; i < r->ex->n_mounts; i++) {
        const Pb__Mount *m = r->ex->mounts[i];
        if (m->input >= (int64_t)r->eop->op->n_inputs || m->input < -1)
            return kiln_error_set(err, KILN_EINVAL, "mount %zu: bad input", i);
        if (strcmp(m->dest, "/") == 0) {
            if (r->rootmount)
                return kiln_error_set(err, KILN_EINVAL, "two root mounts");
            r->rootmount = m;
            continue;
        }
        ret = setup_mount(r, m, &r->ms[i], err);
        if (ret < 0)
            return kiln_error_wrap(err, "mount `%s`", m->dest);
    }
    if (!r->rootmount)
        return kiln_error_set(err, KILN_EINVAL, "exec without a root mount");
    return engine_rw_prepare(&r->root, &r->rootm, r->eop->engine, input_id(r, r->rootmount->input),
                             err);
}

static void
teardown(exec_run *r)
{
    kiln_engine *e = r->eop->engine;

    for (size_t i = 0; r->ms && i < r->ex->n_mounts; i++) {
        engine_view_close(&r->ms[i].view);
        if (r->ms[i].has_rw)
            engine_rw_abort(&r->ms[i].rw, e);
        free(r->ms[i].dir);
    }
    engine_rw_abort(&r->root, e);
    kiln_cache_mounts_dispose(&r->rootm);
    free(r->ms);
    free(r->xm);
}

static void
on_output(int stream, const char *data, size_t len, void *payload)
{
    kiln_op_ctx_log(payload, stream, data, len);
}

static bool
exit_ok(const Pb__Meta *meta, int code)
{
    if (meta->n_validexitcodes == 0)
        return code == 0;
    for (size_t i = 0; i < meta->n_validexitcodes; i++) {
        if (meta->validexitcodes[i] == code)
            return true;
    }
    return false;
}

static char *
args_string(const Pb__Meta *meta)
{
    kiln_buf b = KILN_BUF_INIT;

    for (size_t i = 0; i < meta->n_args; i++)
        kiln_buf_printf(&b, NULL, "%s%s", i ? " " : "", meta->args[i]);
    return kiln_buf_detach(&b);
}

/* Is `name` set by a "K=V" entry of env[0 .. n-1]? */
static bool
env_has(const char *const *env, size_t n, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < n; i++) {
        if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
            return true;
    }
    return false;
}

#define PROXY_VARS 10 /* HTTP_PROXY, http_proxy, ... all_proxy */

/* Meta.proxy_env as BuildKit's proxyEnvList: each non-empty value as both the uppercase and the
 * lowercase variable, after Meta.env. Unlike BuildKit, which appends them even when Meta.env has
 * the name (a duplicate then means whatever the program reading the environment makes of it), a
 * name the step's own env sets (ENV HTTP_PROXY=...) is left alone. Writes "K=V" strings to
 * out[0 .. PROXY_VARS-1] (owned by the caller, NULL-terminated when fewer). */
static void
proxy_env_list(char **out, const char *const *env, size_t n_env, const Pb__ProxyEnv *p)
{
    const struct {
        const char *upper, *lower, *value;
    } vars[] = {
            {"HTTP_PROXY", "http_proxy", p->http_proxy},
            {"HTTPS_PROXY", "https_proxy", p->https_proxy},
            {"FTP_PROXY", "ftp_proxy", p->ftp_proxy},
            {"NO_PROXY", "no_proxy", p->no_proxy},
            {"ALL_PROXY", "all_proxy", p->all_proxy},
    };
    size_t n = 0;

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        if (!vars[i].value || !*vars[i].value)
            continue;
        if (!env_has(env, n_env, vars[i].upper))
            out[n++] = xasprintf("%s=%s", vars[i].upper, vars[i].value);
        if (!env_has(env, n_env, vars[i].lower))
            out[n++] = xasprintf("%s=%s", vars[i].lower, vars[i].value);
    }
}

/* ExecOp.secretenv (RUN --mount=type=secret,env=NAME): "NAME=<the secret's bytes>" for each
 * secret the solve was given, into out (n_secretenv + 1 slots, owned by the caller, who wipes
 * them); a missing one fails unless optional. */
static int
secret_env_list(char **out, const exec_run *r, kiln_error **err)
{
    size_t n = 0;

    for (size_t i = 0; i < r->ex->n_secretenv; i++) {
        const Pb__SecretEnv *se = r->ex->secretenv[i];
        const kiln_engine_secret *sec = NULL;
        for (size_t k = 0; se->id && k < r->eop->n_secrets; k++) {
            if (strcmp(r->eop->secrets[k].id, se->id) == 0)
                sec = &r->eop->secrets[k];
        }
        if (!se->name || !*se->name)
            return kiln_error_set(err, KILN_EINVAL, "secret env without a name");
        if (!sec && se->optional)
            continue;
        if (!sec)
            return kiln_error_set(err, KILN_ENOTFOUND,
                                  "secret `%s` (env %s) was not given (--secret id=%s,...)",
                                  se->id ? se->id : "", se->name, se->id ? se->id : "");
        out[n] = xmalloc(strlen(se->name) + 1 + sec->len + 1);
        memcpy(out[n], se->name, strlen(se->name));
        out[n][strlen(se->name)] = '=';
        memcpy(out[n] + strlen(se->name) + 1, sec->data, sec->len);
        out[n][strlen(se->name) + 1 + sec->len] = '\0';
        n++;
    }
    return 0;
}

static void
wipe_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++) {
        explicit_bzero(v[i], strlen(v[i]));
        free(v[i]);
    }
    free(v);
}

/* env: room for Meta.env, PROXY_VARS and the NULL; proxy: PROXY_VARS + 1 slots. */
static void
fill_spec(kiln_exec_spec *spec, const exec_run *r, const char **args, const char **env,
          char **proxy, kiln_exec_host *hosts)
{
    const Pb__Meta *meta = r->ex->meta;

    if (r->rootm.nlower == 0) {
        spec->rootfs = r->rootm.upper;
    } else {
        spec->lowers = (const char *const *)r->rootm.lower;
        spec->n_lowers = r->rootm.nlower;
        spec->upper = r->rootm.upper;
        spec->work = r->rootm.work;
    }
    for (size_t i = 0; i < meta->n_args; i++)
        args[i] = meta->args[i];
    for (size_t i = 0; i < meta->n_env; i++)
        env[i] = meta->env[i];
    if (meta->proxy_env) {
        proxy_env_list(proxy, env, meta->n_env, meta->proxy_env);
        for (size_t i = 0; proxy[i]; i++)
            env[meta->n_env + i] = proxy[i];
    }
    for (size_t i = 0; i < meta->n_extrahosts; i++) {
        hosts[i].host = meta->extrahosts[i]->host;
        hosts[i].ip = meta->extrahosts[i]->ip;
    }
    spec->extra_hosts = hosts;
    spec->n_extra_hosts = meta->n_extrahosts;
    spec->args = args;
    spec->env = env;
    spec->cwd = meta->cwd && *meta->cwd ? meta->cwd : NULL;
    spec->user = meta->user && *meta->user ? meta->user : NULL;
    spec->hostname = meta->hostname && *meta->hostname ? meta->hostname : NULL;
    /* UNSET (the default) shares the host's network, as buildkitd's default without a CNI
     * config and as dockerd's bridge gives steps the network: RUN apt-get works */
    spec->network = r->ex->network == PB__NET_MODE__NONE ? KILN_EXEC_NET_NONE : KILN_EXEC_NET_HOST;
    spec->security = r->ex->security == PB__SECURITY_MODE__INSECURE ? KILN_EXEC_SECURITY_INSECURE
                                                                    : KILN_EXEC_SECURITY_SANDBOX;
    spec->allow_insecure = r->eop->allow_insecure; /* checked when the solve was loaded */
    spec->mounts = r->xm;
    spec->n_mounts = r->nxm;
}

static int
run_process(exec_run *r, kiln_op_ctx *ctx, kiln_error **err)
{
    const Pb__Meta *meta = r->ex->meta;
    cleanup_free const char **args = xcalloc(meta->n_args + 1, sizeof(char *));
    cleanup_free const char **env =
            xcalloc(meta->n_env + PROXY_VARS + r->ex->n_secretenv + 1, sizeof(char *));
    char **senv = xcalloc(r->ex->n_secretenv + 1, sizeof(char *));
    cleanup_strv char **proxy = xcalloc(PROXY_VARS + 1, sizeof(char *));
    cleanup_free kiln_exec_host *hosts = xcalloc(meta->n_extrahosts + 1, sizeof(*hosts));
    cleanup_free char *shown = args_string(meta);
    cleanup_free char *how = NULL;
    kiln_exec_spec spec = KILN_EXEC_SPEC_INIT;
    kiln_exec_result res = {0};
    kiln_exec_cancel *cancel = NULL;
    int ret;

    fill_spec(&spec, r, args, env, proxy, hosts);
    ret = secret_env_list(senv, r, err);
    if (ret == 0) {
        size_t n = 0;
        while (env[n])
            n++;
        for (size_t i = 0; senv[i]; i++)
            env[n + i] = senv[i];
        ret = kiln_exec_cancel_new(&cancel, err);
    }
    if (ret < 0) {
        wipe_strv(senv);
        return ret;
    }
    pthread_mutex_lock(&cancel_lock);
    kiln_op_ctx_set_data(ctx, cancel);
    pthread_mutex_unlock(&cancel_lock);
    if (kiln_op_ctx_canceled(ctx))
        kiln_exec_cancel_trigger(cancel);
    spec.cancel = cancel;
    spec.on_output = on_output;
    spec.payload = ctx;
    ret = kiln_exec_run(&res, &spec, err);
    pthread_mutex_lock(&cancel_lock);
    kiln_op_ctx_set_data(ctx, NULL);
    pthread_mutex_unlock(&cancel_lock);
    kiln_exec_cancel_free(cancel);
    wipe_strv(senv);
    if (ret < 0)
        return kiln_error_wrap(err, "process \"%s\"", shown);
    if (!exit_ok(meta, res.exit_code)) {
        /* BuildKit's wording, and what killed the step when it was the OOM killer:
         * "...: exit code: 137: process was killed: out of memory (memory limit 64 MiB)" */
        how = res.oom_killed ? kiln_exec_result_describe(&res) : NULL;
        return kiln_error_set(err, KILN_EINVAL,
                              "process \"%s\" did not complete successfully: exit code: %d%s%s",
                              shown, res.exit_code, how ? ": " : "", how ? how : "");
    }
    return 0;
}

static void
set_output(kiln_solver_result **outputs, unsigned n, int64_t idx, kiln_solver_result *r)
{
    if (idx >= 0 && (uint64_t)idx < n && !outputs[idx]) {
        outputs[idx] = r;
        return;
    }
    engine_result_unref(r);
}

static int
commit_outputs(kiln_solver_result **outputs, exec_run *r, kiln_error **err)
{
    kiln_engine *e = r->eop->engine;
    unsigned n = engine_exec_noutputs(r->ex);
    kiln_solver_result *res = NULL;
    int ret;

    ret = engine_rw_commit(&res, &r->root, e, err);
    if (ret < 0)
        return ret;
    /* the root result also stands in for outputs no mount claims (cannot happen in valid LLB) */
    for (unsigned i = 0; i < n; i++) {
        if (i != r->rootmount->output)
            outputs[i] = engine_result_new(res->id);
    }
    set_output(outputs, n, r->rootmount->output, res);
    for (size_t i = 0; i < r->ex->n_mounts; i++) {
        const Pb__Mount *m = r->ex->mounts[i];
        if (!r->ms[i].has_rw || m->output < 0)
            continue;
        ret = engine_rw_commit(&res, &r->ms[i].rw, e, err);
        if (ret < 0)
            return ret;
        if ((uint64_t)m->output < n) {
            engine_result_unref(outputs[m->output]);
            outputs[m->output] = NULL;
        }
        set_output(outputs, n, m->output, res);
    }
    return 0;
}

int
engine_exec_exec(kiln_solver_result **outputs, const engine_op *eop,
                 kiln_solver_result *const *inputs, kiln_op_ctx *ctx, kiln_error **err)
{
    exec_run r = {.eop = eop, .ex = eop->op->exec, .inputs = inputs};
    unsigned n = engine_exec_noutputs(r.ex);
    int ret;

    if (!r.ex->meta || r.ex->meta->n_args == 0)
        return kiln_error_set(err, KILN_EINVAL, "exec without arguments");
    ret = setup_mounts(&r, err);
    if (ret == 0)
        ret = run_process(&r, ctx, err);
    if (ret == 0)
        ret = commit_outputs(outputs, &r, err);
    if (ret < 0) {
        for (unsigned i = 0; i < n; i++) {
            engine_result_unref(outputs[i]);
            outputs[i] = NULL;
        }
    }
    teardown(&r);
    return ret;
}

void
engine_exec_cancel(kiln_op_ctx *ctx)
{
    kiln_exec_cancel *c;

    pthread_mutex_lock(&cancel_lock);
    c = kiln_op_ctx_get_data(ctx);
    if (c)
        kiln_exec_cancel_trigger(c);
    pthread_mutex_unlock(&cancel_lock);
}
