/*
 * llb_exec.c: ExecOp construction. Mount order, input/output numbering and caps follow BuildKit's
 * client (client/llb/exec.go): bind, cache and tmpfs mounts sorted by destination (so "/" comes
 * first), then secret mounts, then ssh mounts, in the order given; a mount has an output only when
 * it is a writable bind that was not marked no_output; outputs are numbered in mount order.
 * Secret and ssh mounts keep input 0 and output 0, the Go client's zero values.
 */
#include "llb/llb_internal.h"

#include "base/base.h"

/* A mount in its final position, with where its result state goes. */
typedef struct exec_mount {
    const kiln_llb_mount *m;
    kiln_llb_state *result;
} exec_mount;

static int
mount_rank(const kiln_llb_mount *m)
{
    return m->type == KILN_LLB_MOUNT_SECRET ? 1 : m->type == KILN_LLB_MOUNT_SSH ? 2 : 0;
}

static int
exec_mount_cmp(const void *a, const void *b)
{
    const exec_mount *x = a, *y = b;
    int rx = mount_rank(x->m), ry = mount_rank(y->m);

    if (rx != ry)
        return rx - ry;
    return rx == 0 ? strcmp(x->m->dest, y->m->dest) : 0;
}

static int
check_mount(const kiln_llb_mount *m, const kiln_llb_exec_opts *o, size_t idx, kiln_error **err)
{
    if (!m->dest || m->dest[0] != '/')
        return kiln_error_set(err, KILN_EINVAL, "exec mount %zu: destination `%s` is not absolute",
                              idx, m->dest ? m->dest : "");
    if ((unsigned)m->type > KILN_LLB_MOUNT_TMPFS)
        return kiln_error_set(err, KILN_EINVAL, "exec mount `%s`: unknown type %d", m->dest,
                              (int)m->type);
    if ((m->type == KILN_LLB_MOUNT_SECRET || m->type == KILN_LLB_MOUNT_SSH ||
         m->type == KILN_LLB_MOUNT_TMPFS) &&
        !kiln_llb_state_is_scratch(m->source))
        return kiln_error_set(err, KILN_EINVAL, "exec mount `%s`: this mount type takes no source",
                              m->dest);
    if (m->type == KILN_LLB_MOUNT_CACHE && (!m->cache_id || !*m->cache_id))
        return kiln_error_set(err, KILN_EINVAL, "exec mount `%s`: cache mount without id", m->dest);
    if ((unsigned)m->sharing > KILN_LLB_CACHE_LOCKED)
        return kiln_error_set(err, KILN_EINVAL, "exec mount `%s`: unknown cache sharing %d",
                              m->dest, (int)m->sharing);
    if (strcmp(m->dest, "/") == 0)
        return kiln_error_set(err, KILN_EINVAL, "exec mount `/`: the root is opts->root");
    for (size_t j = 0; j < idx; j++) {
        if (strcmp(o->mounts[j].dest, m->dest) == 0)
            return kiln_error_set(err, KILN_EINVAL, "exec: duplicate mount destination `%s`",
                                  m->dest);
    }
    return 0;
}

static void *
new_msg(kiln_llb_builder *b, const ProtobufCMessageDescriptor *d)
{
    void *p = kiln_llb__alloc(b, d->sizeof_message);

    protobuf_c_message_init(d, p);
    return p;
}

/* Fill the type-specific options of one Pb__Mount and add its caps. */
static void
mount_type_opts(kiln_llb_vertex *v, Pb__Mount *pm, const kiln_llb_mount *m)
{
    kiln_llb_builder *b = v->b;

    pm->mounttype = (Pb__MountType)m->type;
    switch (m->type) {
    case KILN_LLB_MOUNT_BIND:
        break;
    case KILN_LLB_MOUNT_CACHE:
        pm->cacheopt = new_msg(b, &pb__cache_opt__descriptor);
        pm->cacheopt->id = kiln_llb__strdup(b, m->cache_id);
        pm->cacheopt->sharing = (Pb__CacheSharingOpt)m->sharing;
        kiln_llb_vertex_add_cap(v, "exec.mount.cache");
        kiln_llb_vertex_add_cap(v, "exec.mount.cache.sharing");
        break;
    case KILN_LLB_MOUNT_TMPFS:
        pm->tmpfsopt = new_msg(b, &pb__tmpfs_opt__descriptor);
        pm->tmpfsopt->size = m->tmpfs_size;
        kiln_llb_vertex_add_cap(v, "exec.mount.tmpfs");
        if (m->tmpfs_size)
            kiln_llb_vertex_add_cap(v, "exec.mount.tmpfs.size");
        break;
    case KILN_LLB_MOUNT_SECRET:
        pm->secretopt = new_msg(b, &pb__secret_opt__descriptor);
        pm->secretopt->id = kiln_llb__strdup(b, m->id);
        pm->secretopt->uid = m->uid;
        pm->secretopt->gid = m->gid;
        pm->secretopt->mode = m->mode;
        pm->secretopt->optional = m->optional;
        kiln_llb_vertex_add_cap(v, "exec.mount.secret");
        break;
    case KILN_LLB_MOUNT_SSH:
        pm->sshopt = new_msg(b, &pb__sshopt__descriptor);
        pm->sshopt->id = kiln_llb__strdup(b, m->id);
        pm->sshopt->uid = m->uid;
        pm->sshopt->gid = m->gid;
        pm->sshopt->mode = m->mode;
        pm->sshopt->optional = m->optional;
        kiln_llb_vertex_add_cap(v, "exec.mount.ssh");
        break;
    }
}

static void
add_mount(kiln_llb_vertex *v, Pb__ExecOp *e, const exec_mount *em, int64_t *next_output)
{
    const kiln_llb_mount *m = em->m;
    Pb__Mount *pm = new_msg(v->b, &pb__mount__descriptor);
    bool takes_input = m->type == KILN_LLB_MOUNT_BIND || m->type == KILN_LLB_MOUNT_CACHE;

    bool secret_or_ssh = m->type == KILN_LLB_MOUNT_SECRET || m->type == KILN_LLB_MOUNT_SSH;

    /* The Go client leaves input and output of secret and ssh mounts at 0 (their zero values,
     * ignored by the daemon); the digest depends on it. */
    if (!secret_or_ssh)
        kiln_llb__bind_input(v, &pm->input, takes_input ? m->source : KILN_LLB_SCRATCH);
    pm->dest = kiln_llb__strdup(v->b, m->dest);
    pm->selector = kiln_llb__strdup(v->b, m->selector);
    pm->readonly = m->readonly;
    pm->output = secret_or_ssh ? 0 : -1;
    if (m->type == KILN_LLB_MOUNT_BIND && !m->readonly && !m->no_output)
        pm->output = (*next_output)++;
    if (m->type == KILN_LLB_MOUNT_BIND && !kiln_llb_state_is_scratch(m->source))
        kiln_llb_vertex_add_cap(v, "exec.mount.bind");
    if (m->type == KILN_LLB_MOUNT_BIND && !m->readonly && m->no_output)
        kiln_llb_vertex_add_cap(v, "exec.mount.bind.readwrite-nooutput");
    if (m->selector && *m->selector)
        kiln_llb_vertex_add_cap(v, "exec.mount.selector");
    mount_type_opts(v, pm, m);
    if (em->result)
        *em->result = pm->output >= 0 && !secret_or_ssh ? (kiln_llb_state){v, pm->output}
                                                        : KILN_LLB_SCRATCH;
    kiln_llb__push(v->b, &e->mounts, &e->n_mounts, pm);
}

/* As the Go client: with an ssh mount, SSH_AUTH_SOCK (unless the env sets it) is the first ssh
 * mount's socket path, appended to the env. */
static void
ssh_auth_sock(kiln_llb_builder *b, Pb__Meta *meta, const kiln_llb_exec_opts *o)
{
    const char *target = NULL;
    char *var;

    for (size_t i = 0; i < o->n_mounts && !target; i++) {
        if (o->mounts[i].type == KILN_LLB_MOUNT_SSH && o->mounts[i].dest)
            target = o->mounts[i].dest;
    }
    if (!target)
        return;
    for (size_t i = 0; i < meta->n_env; i++) {
        if (kiln_str_has_prefix(meta->env[i], "SSH_AUTH_SOCK="))
            return;
    }
    var = xasprintf("SSH_AUTH_SOCK=%s", target);
    kiln_llb__push(b, &meta->env, &meta->n_env, kiln_llb__strdup(b, var));
    free(var);
}

static Pb__Meta *
build_meta(kiln_llb_vertex *v, const kiln_llb_exec_opts *o)
{
    kiln_llb_builder *b = v->b;
    Pb__Meta *meta = new_msg(b, &pb__meta__descriptor);

    meta->args = kiln_llb__strv(b, o->args, &meta->n_args);
    meta->env = kiln_llb__strv(b, o->env, &meta->n_env);
    ssh_auth_sock(b, meta, o);
    meta->cwd = kiln_llb__strdup(b, o->cwd ? o->cwd : "/");
    meta->user = kiln_llb__strdup(b, o->user);
    meta->hostname = kiln_llb__strdup(b, o->hostname);
    meta->cgroupparent = kiln_llb__strdup(b, o->cgroup_parent);
    /* the Go client always asks for mount stubs to be removed recursively */
    meta->removemountstubsrecursive = true;
    for (size_t i = 0; i < o->n_extra_hosts; i++) {
        Pb__HostIP *h = new_msg(b, &pb__host_ip__descriptor);
        h->host = kiln_llb__strdup(b, o->extra_hosts[i].host);
        h->ip = kiln_llb__strdup(b, o->extra_hosts[i].ip);
        kiln_llb__push(b, &meta->extrahosts, &meta->n_extrahosts, h);
    }
    for (size_t i = 0; i < o->n_ulimits; i++) {
        Pb__Ulimit *u = new_msg(b, &pb__ulimit__descriptor);
        u->name = kiln_llb__strdup(b, o->ulimits[i].name);
        u->soft = o->ulimits[i].soft;
        u->hard = o->ulimits[i].hard;
        kiln_llb__push(b, &meta->ulimit, &meta->n_ulimit, u);
        kiln_llb_vertex_add_cap(v, "exec.meta.ulimit");
    }
    if (o->n_valid_exit_codes) {
        meta->validexitcodes = kiln_llb__alloc(b, o->n_valid_exit_codes * sizeof(int32_t));
        memcpy(meta->validexitcodes, o->valid_exit_codes, o->n_valid_exit_codes * sizeof(int32_t));
        meta->n_validexitcodes = o->n_valid_exit_codes;
    }
    if (o->cgroup_parent && *o->cgroup_parent)
        kiln_llb_vertex_add_cap(v, "exec.meta.cgroup.parent");
    if (o->proxy_env) {
        Pb__ProxyEnv *pe = new_msg(b, &pb__proxy_env__descriptor);
        pe->http_proxy = kiln_llb__strdup(b, o->proxy_env->http_proxy);
        pe->https_proxy = kiln_llb__strdup(b, o->proxy_env->https_proxy);
        pe->ftp_proxy = kiln_llb__strdup(b, o->proxy_env->ftp_proxy);
        pe->no_proxy = kiln_llb__strdup(b, o->proxy_env->no_proxy);
        pe->all_proxy = kiln_llb__strdup(b, o->proxy_env->all_proxy);
        meta->proxy_env = pe;
        kiln_llb_vertex_add_cap(v, "exec.meta.proxyenv");
    }
    return meta;
}

static int
check_exec(const kiln_llb_exec_opts *o, kiln_error **err)
{
    int ret;

    if (!o->args || !o->args[0])
        return kiln_error_set(err, KILN_EINVAL, "exec: no command arguments");
    if (o->network < PB__NET_MODE__UNSET || o->network > PB__NET_MODE__NONE)
        return kiln_error_set(err, KILN_EINVAL, "exec: unknown network mode %d", o->network);
    if (o->security < PB__SECURITY_MODE__SANDBOX || o->security > PB__SECURITY_MODE__INSECURE)
        return kiln_error_set(err, KILN_EINVAL, "exec: unknown security mode %d", o->security);
    for (size_t i = 0; i < o->n_mounts; i++) {
        if ((ret = check_mount(&o->mounts[i], o, i, err)) < 0)
            return ret;
    }
    for (size_t i = 0; i < o->n_secret_env; i++) {
        if (!o->secret_env[i].id || !o->secret_env[i].name)
            return kiln_error_set(err, KILN_EINVAL, "exec: secret env %zu without id or name", i);
    }
    return 0;
}

int
kiln_llb_exec(kiln_llb_state *root_out, kiln_llb_builder *b, const kiln_llb_exec_opts *o,
              kiln_error **err)
{
    kiln_llb_mount root = {.dest = "/", .type = KILN_LLB_MOUNT_BIND, .source = o->root};
    cleanup_free exec_mount *ms = NULL;
    kiln_llb_vertex *v;
    Pb__ExecOp *e;
    int64_t next_output = 0;
    int ret;

    if ((ret = check_exec(o, err)) < 0)
        return ret;
    ms = xcalloc(o->n_mounts + 1, sizeof(*ms));
    ms[0] = (exec_mount){&root, root_out};
    for (size_t i = 0; i < o->n_mounts; i++)
        ms[i + 1] = (exec_mount){&o->mounts[i], o->mounts[i].result};
    /* insertion sort: stable, and mount lists are short */
    for (size_t i = 1; i <= o->n_mounts; i++) {
        exec_mount cur = ms[i];
        size_t j = i;
        for (; j > 0 && exec_mount_cmp(&ms[j - 1], &cur) > 0; j--)
            ms[j] = ms[j - 1];
        ms[j] = cur;
    }
    v = kiln_llb__vertex_new(b);
    v->dedup_inputs = true;
    v->platform_specific = true;
    e = new_msg(b, &pb__exec_op__descriptor);
    v->op.op_case = PB__OP__OP_EXEC;
    v->op.exec = e;
    e->meta = build_meta(v, o);
    e->network = (Pb__NetMode)o->network;
    e->security = (Pb__SecurityMode)o->security;
    for (size_t i = 0; i <= o->n_mounts; i++)
        add_mount(v, e, &ms[i], &next_output);
    for (size_t i = 0; i < o->n_secret_env; i++) {
        Pb__SecretEnv *se = new_msg(b, &pb__secret_env__descriptor);
        se->id = kiln_llb__strdup(b, o->secret_env[i].id);
        se->name = kiln_llb__strdup(b, o->secret_env[i].name);
        se->optional = o->secret_env[i].optional;
        kiln_llb__push(b, &e->secretenv, &e->n_secretenv, se);
        kiln_llb_vertex_add_cap(v, "exec.secretenv");
    }
    v->n_outputs = next_output;
    kiln_llb_vertex_add_cap(v, "exec.meta.base");
    if (o->network)
        kiln_llb_vertex_add_cap(v, "exec.meta.network");
    if (o->security)
        kiln_llb_vertex_add_cap(v, "exec.meta.security");
    return 0;
}
