/*
 * compile_copy.c: COPY and ADD (BuildKit's dispatchCopy) and the mounts of RUN
 * (dispatchRunMounts, dispatchSecret, dispatchSSH).
 *
 * COPY/ADD make one FileOp whose copy actions run one after the other: local sources come from
 * the build context (or the --from stage) with wildcards and directory-contents semantics, ADD's
 * URLs from an HTTP source, git URLs from a git source, heredoc sources from a small file made
 * on scratch. With --link the FileOp works on scratch and is merged onto the stage (MergeOp), so
 * the layer does not depend on what is below it.
 */
#include <ctype.h>

#include "base/path.h"
#include "frontends/dockerfile/compile_internal.h"
#include "frontends/dockerfile/df_internal.h"

typedef struct expand_ctx {
    df_compiler *c;
    df_stage *s;
} expand_ctx;

static int
expand_cb(char **out, const char *word, void *payload, kiln_error **err)
{
    expand_ctx *x = payload;

    return df_expand(out, x->c, NULL, word, &x->s->env, err);
}

/* ------------------------------------------------------------------------------------------ */
/* RUN --mount */

static const char *
keep_str(kiln_vec *keep, char *s)
{
    kiln_vec_push(keep, s);
    return s;
}

/* A secret as a file (unless only `env` asks for it) and/or an environment variable. Returns 1
 * when no file mount is wanted. */
static int
mount_secret(kiln_llb_mount *lm, kiln_vec *senv, const kiln_df_mount *m, kiln_vec *keep,
             kiln_error **err)
{
    const char *id = m->source && *m->source ? m->source : m->id;
    bool has_target = m->target && *m->target, has_env = m->env && *m->env;

    if (!id || !*id) {
        if (!has_target && !has_env)
            return kiln_error_set(err, KILN_EINVAL, "one of source, target required");
        id = keep_str(keep, has_target ? kiln_path_base(m->target) : xstrdup(m->env));
    } else {
        id = keep_str(keep, xstrdup(id));
    }
    if (has_env) {
        kiln_llb_secret_env *e = xnew(kiln_llb_secret_env);
        e->id = id;
        e->name = keep_str(keep, xstrdup(m->env));
        e->optional = !m->required;
        kiln_vec_push(senv, e);
        if (!has_target)
            return 1;
    }
    lm->type = KILN_LLB_MOUNT_SECRET;
    lm->id = id;
    if (has_target) {
        lm->dest = m->target;
    } else {
        cleanup_free char *b = kiln_path_base(id);
        lm->dest = keep_str(keep, xasprintf("/run/secrets/%s", b));
    }
    lm->optional = !m->required;
    lm->uid = m->has_uid ? m->uid : 0;
    lm->gid = m->has_gid ? m->gid : 0;
    lm->mode = m->has_mode ? m->mode : 0400;
    return 0;
}

static int
mount_ssh(kiln_llb_mount *lm, const kiln_df_mount *m, int index, kiln_vec *keep, kiln_error **err)
{
    if (m->source && *m->source)
        return kiln_error_set(err, KILN_EINVAL, "ssh does not support source");
    lm->type = KILN_LLB_MOUNT_SSH;
    lm->id = m->id && *m->id ? m->id : "default";
    lm->dest = m->target && *m->target
                       ? m->target
                       : keep_str(keep, xasprintf("/run/buildkit/ssh_agent.%d", index));
    lm->optional = !m->required;
    lm->uid = m->has_uid ? m->uid : 0;
    lm->gid = m->has_gid ? m->gid : 0;
    lm->mode = m->has_mode ? m->mode : 0600;
    return 0;
}

/* setCacheUIDGID: a /cache directory with the requested owner and mode on top of `st`. */
static int
cache_dir(kiln_llb_state *st, df_compiler *c, df_stage *s, const kiln_df_mount *m, kiln_error **err)
{
    kiln_llb_file_info info = KILN_LLB_FILE_INFO_INIT;
    kiln_llb_vertex *f;
    int rc;

    info.user.id = m->has_uid ? m->uid : 0;
    info.group.id = m->has_gid ? m->gid : 0;
    kiln_llb_file_new(&f, c->b, *st);
    rc = kiln_llb_file_mkdir(f, "/cache", m->has_mode ? (int32_t)m->mode : 0755, false, &info, err);
    if (rc == 0)
        rc = df_vertex_meta(c, s, f, c->cur, "[internal] settings cache mount permissions", NULL,
                            err);
    *st = kiln_llb_file_state(f);
    return rc;
}

/* One bind/cache/tmpfs mount. */
static int
mount_fs(kiln_llb_mount *lm, df_compiler *c, df_stage *s, const kiln_df_mount *m, df_stage *src,
         kiln_vec *keep, kiln_error **err)
{
    kiln_llb_state st;
    bool from_ctx = (!m->from || !*m->from) && m->type == KILN_DF_MOUNT_BIND;
    int rc;

    if (from_ctx) {
        if ((rc = df_context(&st, c, err)) < 0)
            return rc;
    } else {
        st = src ? src->state : KILN_LLB_SCRATCH;
    }
    lm->type = KILN_LLB_MOUNT_BIND;
    if (m->type == KILN_DF_MOUNT_TMPFS) {
        st = KILN_LLB_SCRATCH;
        lm->type = KILN_LLB_MOUNT_TMPFS;
        lm->tmpfs_size = (int64_t)m->size;
    }
    if (m->readonly)
        lm->readonly = true;
    else if (m->type == KILN_DF_MOUNT_BIND)
        lm->no_output = true;
    if (m->type == KILN_DF_MOUNT_CACHE) {
        cleanup_free char *clean = kiln_path_clean(m->target);
        lm->type = KILN_LLB_MOUNT_CACHE;
        lm->sharing = m->sharing == KILN_DF_SHARING_PRIVATE  ? KILN_LLB_CACHE_PRIVATE
                      : m->sharing == KILN_DF_SHARING_LOCKED ? KILN_LLB_CACHE_LOCKED
                                                             : KILN_LLB_CACHE_SHARED;
        /* BuildKit joins the (empty) cache namespace and the id with "/" */
        lm->cache_id = keep_str(keep, xasprintf("/%s", m->id && *m->id ? m->id : clean));
    }
    cleanup_free char *clean_target = kiln_path_clean(m->target);
    /* an absolute target is used as written, a relative one joins the working directory */
    char *target = kiln_path_is_abs(clean_target)
                           ? xstrdup(m->target)
                           : kiln_path_join(s->dir && *s->dir ? s->dir : "/", m->target);
    lm->dest = keep_str(keep, target);
    if (strcmp(target, "/") == 0)
        return kiln_error_set(err, KILN_EINVAL, "invalid mount target \"%s\"", target);
    cleanup_free char *srcp = kiln_path_join("/", m->source ? m->source : "");
    if (strcmp(srcp, "/") != 0) {
        lm->selector = keep_str(keep, steal_pointer(&srcp));
    } else if (m->has_uid || m->has_gid || m->has_mode) {
        if ((rc = cache_dir(&st, c, s, m, err)) < 0)
            return rc;
        lm->selector = "/cache";
    }
    lm->source = st;
    /* as BuildKit: caches read scratch; bind and tmpfs without from count as context reads */
    if ((!m->from || !*m->from) && m->type != KILN_DF_MOUNT_CACHE)
        df_context_path(c, m->source);
    return 0;
}

int
df_run_mounts(df_compiler *c, df_stage *s, const df_cmd *cmd, const kiln_df_run *run,
              df_run_mounts_out *out, kiln_error **err)
{
    expand_ctx x = {c, s};
    size_t n = run->mount_specs.len, k = 0;
    kiln_llb_mount *lm = n ? xcalloc(n, sizeof(*lm)) : NULL;
    int rc = 0, ssh_index = 0;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        kiln_df_mount *m = NULL;
        df_stage *src = i < cmd->sources.len ? cmd->sources.items[i] : NULL;
        rc = kiln_df_parse_mount_expand(&m, run->mount_specs.items[i], expand_cb, &x, err);
        if (rc < 0)
            break;
        /* the strings the mount points into move to `keep` */
        if (m->target)
            kiln_vec_push(&out->keep, m->target);
        if (m->id)
            kiln_vec_push(&out->keep, m->id);
        if (m->type == KILN_DF_MOUNT_SECRET)
            rc = mount_secret(&lm[k], &out->secret_env, m, &out->keep, err);
        else if (m->type == KILN_DF_MOUNT_SSH)
            rc = mount_ssh(&lm[k], m, ssh_index++, &out->keep, err);
        else
            rc = mount_fs(&lm[k], c, s, m, src, &out->keep, err);
        if (rc == 0)
            k++;
        else if (rc == 1)
            rc = 0;
        m->target = NULL;
        m->id = NULL;
        kiln_df_mount_free(m);
    }
    if (rc < 0) {
        free(lm);
        return rc;
    }
    out->mounts = lm;
    out->n_mounts = k;
    return 0;
}

void
df_run_mounts_dispose(df_run_mounts_out *out)
{
    free(out->mounts);
    kiln_strvec_dispose(&out->keep);
    kiln_vec_dispose(&out->secret_env, free);
    memset(out, 0, sizeof(*out));
}

/* ------------------------------------------------------------------------------------------ */
/* COPY / ADD */

typedef struct copy_job {
    df_compiler *c;
    df_stage *s;
    const kiln_df_node *n;
    kiln_df_copy cp;
    kiln_llb_vertex *f;
    kiln_llb_copy_opts base_opts;
    kiln_llb_file_info info;
    char *dest;
    kiln_buf msg;
} copy_job;

static int
copy_git(copy_job *j, const char *src, kiln_error **err)
{
    cleanup_free char *remote = xstrdup(src);
    char *frag = strchr(remote, '#');
    kiln_llb_git_opts go = {.keep_git_dir = j->cp.keep_git_dir};
    kiln_llb_state st;
    int rc;

    if (!j->cp.is_add)
        return kiln_error_set(err, KILN_EINVAL, "source can't be a git ref for COPY");
    if (frag) {
        *frag++ = '\0';
        char *colon = strchr(frag, ':');
        if (colon) {
            *colon++ = '\0';
            go.subdir = colon;
        }
    }
    if ((rc = kiln_llb_git(&st, j->c->b, remote, frag && *frag ? frag : NULL, &go, err)) < 0)
        return rc;
    if ((rc = df_vertex_meta(j->c, j->s, st.vertex, j->n, NULL, NULL, err)) < 0)
        return rc;
    kiln_llb_copy_opts o = j->base_opts;
    o.create_dest_path = true;
    return kiln_llb_file_copy(j->f, st, "/", j->dest, &o, err);
}

static int
copy_http(copy_job *j, const char *src, kiln_error **err)
{
    cleanup_free char *u = xstrdup(src);
    kiln_llb_state st;
    int rc;

    if (!j->cp.is_add)
        return kiln_error_set(err, KILN_EINVAL, "source can't be a URL for COPY");
    /* the file name is the last element of the URL's path */
    char *p = strstr(u, "://") + 3;
    p[strcspn(p, "?#")] = '\0';
    char *path = strchr(p, '/');
    cleanup_free char *base = path ? kiln_path_base(path) : NULL;
    const char *fname = base && strcmp(base, ".") && strcmp(base, "/") ? base : "__unnamed__";
    kiln_llb_http_opts ho = {.checksum = j->cp.checksum, .filename = fname};
    if ((rc = kiln_llb_http(&st, j->c->b, src, &ho, err)) < 0)
        return rc;
    if ((rc = df_vertex_meta(j->c, j->s, st.vertex, j->n, NULL, "", err)) < 0)
        return rc;
    kiln_llb_copy_opts o = j->base_opts;
    o.create_dest_path = true;
    return kiln_llb_file_copy(j->f, st, fname, j->dest, &o, err);
}

static int
copy_local(copy_job *j, const df_cmd *cmd, const char *src, kiln_error **err)
{
    kiln_llb_state from;
    int rc;

    if (cmd->sources.len && cmd->sources.items[0]) {
        from = ((df_stage *)cmd->sources.items[0])->state;
    } else if ((rc = df_context(&from, j->c, err)) < 0) {
        return rc;
    }
    cleanup_free char *p = NULL, *pattern = NULL;
    const char *include[2] = {NULL, NULL};
    kiln_llb_copy_opts o = j->base_opts;

    if (j->cp.parents) {
        /* --parents: keep the source's parent directories below the pivot "/./" (or all) */
        const char *pivot = strstr(src, "/./");
        cleanup_free char *parent = pivot ? xstrndup(src, (size_t)(pivot - src)) : xstrdup("/");
        cleanup_free char *pat = kiln_path_join("/", pivot ? pivot + 3 : src);
        pattern = xstrdup(pat[1] ? pat + 1 : pat);
        include[0] = pattern;
        o.include_patterns = include;
        p = kiln_path_join("/", parent);
    } else {
        p = kiln_path_join("/", src);
    }
    o.follow_symlink = true;
    o.dir_copy_contents = true;
    o.attempt_unpack = j->cp.unpack >= 0 ? j->cp.unpack == 1 : j->cp.is_add;
    o.create_dest_path = true;
    o.allow_wildcard = true;
    o.allow_empty_wildcard = true;
    return kiln_llb_file_copy(j->f, from, p, j->dest, &o, err);
}

static int
copy_heredoc(copy_job *j, const kiln_df_heredoc *word, kiln_error **err)
{
    const kiln_df_heredoc *doc = NULL;
    kiln_llb_vertex *f;
    int rc;

    for (size_t i = 0; i < j->n->heredocs.len; i++) {
        const kiln_df_heredoc *h = j->n->heredocs.items[i];
        if (strcmp(h->name, word->name) == 0)
            doc = h;
    }
    const char *content = doc && doc->content ? doc->content : "";
    cleanup_free char *data = word->chomp ? kiln_df_heredoc_chomp(content) : xstrdup(content);
    if (word->expand) {
        kiln_shlex lex;
        char *e = NULL;
        kiln_shlex_init(&lex, '\\');
        lex.skip_process_quotes = true;
        if ((rc = df_expand(&e, j->c, &lex, data, &j->s->env, err)) < 0)
            return rc;
        free(data);
        data = e;
    }
    kiln_buf_printf(&j->msg, NULL, " <<%s", word->name);
    kiln_llb_file_new(&f, j->c->b, KILN_LLB_SCRATCH);
    if ((rc = kiln_llb_file_mkfile(f, word->name, 0664, data, strlen(data), NULL, err)) < 0)
        return rc;
    if ((rc = df_vertex_meta(j->c, j->s, f, j->n, "[internal] preparing inline document", NULL,
                             err)) < 0)
        return rc;
    kiln_llb_copy_opts o = j->base_opts;
    o.create_dest_path = true;
    return kiln_llb_file_copy(j->f, kiln_llb_file_state(f), word->name, j->dest, &o, err);
}

/* Expand flags, sources and destination (all with the environment at the start). */
static int
copy_expand(copy_job *j, kiln_error **err)
{
    kiln_df_copy *cp = &j->cp;
    int rc;

    if (cp->chown && *cp->chown) {
        char *v = NULL;
        if ((rc = df_expand(&v, j->c, NULL, cp->chown, &j->s->env, err)) < 0)
            return rc;
        free(cp->chown);
        cp->chown = v;
    }
    if (cp->checksum && *cp->checksum) {
        char *v = NULL;
        if ((rc = df_expand(&v, j->c, NULL, cp->checksum, &j->s->env, err)) < 0)
            return rc;
        free(cp->checksum);
        cp->checksum = v;
    }
    for (size_t i = 0; i < cp->sources.len; i++) {
        kiln_df_heredoc *h = NULL;
        char *v = NULL;
        if ((rc = kiln_df_parse_heredoc(&h, cp->sources.items[i], err)) < 0)
            return rc;
        if (h) {
            kiln_df_heredoc_free(h);
            continue;
        }
        if ((rc = df_expand(&v, j->c, NULL, cp->sources.items[i], &j->s->env, err)) < 0)
            return rc;
        free(cp->sources.items[i]);
        cp->sources.items[i] = v;
    }
    char *d = NULL;
    if ((rc = df_expand(&d, j->c, NULL, cp->dest, &j->s->env, err)) < 0)
        return rc;
    free(cp->dest);
    cp->dest = d;
    return 0;
}

static bool
is_http(const char *s)
{
    return kiln_str_has_prefix(s, "http://") || kiln_str_has_prefix(s, "https://");
}

static int
copy_checks(copy_job *j, kiln_error **err)
{
    const kiln_df_copy *cp = &j->cp;

    if (!cp->checksum || !*cp->checksum)
        return 0;
    if (cp->sources.len != 1)
        return kiln_error_set(err, KILN_EINVAL, "checksum can't be specified for multiple sources");
    if (!is_http(cp->sources.items[0]))
        return kiln_error_set(err, KILN_EINVAL, "checksum can't be specified for non-HTTP sources");
    const char *colon = strchr(cp->checksum, ':');
    bool ok = colon && colon != cp->checksum && colon[1];
    for (const char *p = colon ? colon + 1 : ""; ok && *p; p++)
        ok = isxdigit((unsigned char)*p) && !isupper((unsigned char)*p);
    if (ok && strncmp(cp->checksum, "sha256:", 7) == 0)
        ok = strlen(colon + 1) == 64;
    if (!ok)
        return kiln_error_set(err, KILN_EINVAL, "invalid checksum digest format");
    return 0;
}

/* The destination made absolute against the working directory; a trailing slash (or "." / "")
 * keeps its "copy into the directory" meaning. */
static char *
copy_dest(const df_stage *s, const char *d)
{
    char *pp =
            kiln_path_is_abs(d) ? xstrdup(d) : kiln_path_join(s->dir && *s->dir ? s->dir : "/", d);
    char *dest = kiln_path_join("/", pp);
    size_t l = strlen(d);

    free(pp);
    /* "/" already ends with a slash */
    if ((strcmp(d, ".") == 0 || l == 0 || d[l - 1] == '/') && strcmp(dest, "/") != 0) {
        char *t = xasprintf("%s/", dest);
        free(dest);
        dest = t;
    }
    return dest;
}

static void
copy_mode(copy_job *j)
{
    const char *m = j->cp.chmod;
    char *end;

    if (!m || !*m)
        return;
    unsigned long v = strtoul(m, &end, 8);
    if (*end == '\0' && v <= 0xffffffffUL && isdigit((unsigned char)*m))
        j->base_opts.mode = (int32_t)v;
    else
        j->base_opts.mode_str = m;
}

static int
copy_sources(copy_job *j, const df_cmd *cmd, kiln_error **err)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < j->cp.sources.len; i++) {
        const char *src = j->cp.sources.items[i];
        kiln_df_heredoc *h = NULL;
        if ((rc = kiln_df_parse_heredoc(&h, src, err)) < 0)
            return rc;
        if (h) {
            kiln_df_heredoc_free(h);
            continue;
        }
        kiln_buf_printf(&j->msg, NULL, " %s", src);
        if (j->cp.is_add ? !is_http(src) : !(cmd->sources.len && cmd->sources.items[0]))
            df_context_path(j->c, src);
        if (df_is_git_url(src))
            rc = copy_git(j, src, err);
        else if (is_http(src))
            rc = copy_http(j, src, err);
        else
            rc = copy_local(j, cmd, src, err);
    }
    /* heredoc sources come after the paths, as in BuildKit */
    for (size_t i = 0; rc == 0 && i < j->cp.sources.len; i++) {
        kiln_df_heredoc *h = NULL;
        if ((rc = kiln_df_parse_heredoc(&h, j->cp.sources.items[i], err)) < 0)
            return rc;
        if (h)
            rc = copy_heredoc(j, h, err);
        kiln_df_heredoc_free(h);
    }
    return rc;
}

/* Put the FileOp on the stage: directly, or (--link) on scratch merged onto the stage. */
static int
copy_finish(copy_job *j, kiln_error **err)
{
    df_compiler *c = j->c;
    df_stage *s = j->s;
    cleanup_free char *code = df_node_code(j->n);
    cleanup_free char *shown = df_cmd_name(c, s, code, false);
    cleanup_free char *name = df_prefix(s, shown);
    bool link = j->cp.link && (!j->cp.chmod || !*j->cp.chmod);
    int rc;

    if (!link) {
        if ((rc = df_vertex_meta(c, s, j->f, j->n, name, NULL, err)) < 0)
            return rc;
        s->state = kiln_llb_file_state(j->f);
        return 0;
    }
    cleanup_free char *pg = xasprintf("link-%d", ++c->link_group);
    cleanup_free char *link_name = NULL;
    kiln_llb_state in[2] = {s->state, kiln_llb_file_state(j->f)}, merged;
    s->cmd_index--;
    link_name = xasprintf("LINK %s", shown);
    cleanup_free char *merge_name = df_prefix(s, link_name);
    if ((rc = df_vertex_meta(c, s, j->f, j->n, name, NULL, err)) < 0)
        return rc;
    kiln_llb_vertex_set_progress_group(j->f, pg, name, true);
    kiln_llb_merge(&merged, c->b, in, 2);
    if (merged.vertex && merged.vertex != j->f) {
        if ((rc = df_vertex_meta(c, s, merged.vertex, j->n, merge_name, NULL, err)) < 0)
            return rc;
        kiln_llb_vertex_set_progress_group(merged.vertex, pg, name, false);
    }
    s->state = merged;
    return 0;
}

int
df_dispatch_copy(df_compiler *c, df_stage *s, const df_cmd *cmd, kiln_error **err)
{
    copy_job j = {.c = c, .s = s, .n = cmd->node};
    kiln_llb_copy_opts init = KILN_LLB_COPY_OPTS_INIT;
    cleanup_free char *chown = NULL;
    int rc;

    if ((rc = kiln_df_parse_copy(&j.cp, cmd->node, err)) < 0)
        return rc;
    j.base_opts = init;
    rc = copy_expand(&j, err);
    if (rc == 0)
        rc = copy_checks(&j, err);
    if (rc == 0) {
        j.dest = copy_dest(s, j.cp.dest);
        if (j.cp.chown && *j.cp.chown) {
            chown = xstrdup(j.cp.chown);
            df_chown(&j.base_opts.info, chown);
        }
        copy_mode(&j);
        kiln_vec_push(&j.cp.excludes, NULL);
        j.base_opts.exclude_patterns =
                j.cp.excludes.len > 1 ? (const char *const *)j.cp.excludes.items : NULL;
        bool link = j.cp.link && (!j.cp.chmod || !*j.cp.chmod);
        kiln_llb_file_new(&j.f, c->b, link ? KILN_LLB_SCRATCH : s->state);
        kiln_buf_puts(&j.msg, j.cp.is_add ? "ADD" : "COPY", NULL);
        rc = copy_sources(&j, cmd, err);
        kiln_vec_pop(&j.cp.excludes);
    }
    if (rc == 0) {
        kiln_buf_printf(&j.msg, NULL, " %s # buildkit", j.cp.dest);
        rc = copy_finish(&j, err);
    }
    if (rc == 0)
        df_history(c, s, kiln_buf_cstr(&j.msg), true);
    free(j.dest);
    kiln_buf_dispose(&j.msg);
    kiln_df_copy_dispose(&j.cp);
    return rc;
}
