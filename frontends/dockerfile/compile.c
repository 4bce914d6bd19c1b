/*
 * compile.c: the Dockerfile compiler (BuildKit's dockerfile2llb): from a parsed Dockerfile to the
 * LLB Definition of the target stage and the image config that stage produces.
 *
 * The steps follow toDispatchState: global ARGs (with the automatic platform args) expand the
 * FROM lines; each FROM becomes a stage; the stages each instruction reads (COPY --from,
 * RUN --mount=from) become dependencies; only stages reachable from the target are resolved
 * (one resolve call per distinct image and platform) and dispatched, dependencies first. Each
 * stage starts from its base's state and config: the base image's Env, WorkingDir and User seed
 * the LLB state, and the base's ONBUILD triggers run before the stage's own instructions.
 *
 * The build context's FollowPaths (the paths COPY/ADD/RUN --mount read) are known only once every
 * stage has run, so a Dockerfile that reads the context is compiled twice; image configs are
 * resolved once and reused.
 *
 * Deliberate differences from BuildKit 0.11.6: stages are dispatched dependencies-first (BuildKit
 * dispatches in file order, so a COPY --from a later stage saw an unbuilt state); a global ARG
 * re-declared without a value keeps the automatic platform value; instruction text must be UTF-8
 * (LLB strings are protobuf strings); environments and expansions are bounded (DF_MAX_ENV,
 * DF_MAX_EXPANSION); --no-cache marks every vertex, not only RUN and COPY; COPY --parents and
 * ADD --unpack follow newer Dockerfile syntax; when a proxy build arg is given in several
 * spellings (HTTP_PROXY and http_proxy), the uppercase one wins, else the last one (BuildKit takes
 * whichever its map iteration visits last).
 *
 * Proxy build args (HTTP_PROXY, HTTPS_PROXY, FTP_PROXY, NO_PROXY, ALL_PROXY, in any case) need no
 * ARG: given with --build-arg, they become Meta.proxy_env of every RUN, which the engine exports
 * at run time and leaves out of the cache key. They reach neither the image config nor the
 * history, unless the Dockerfile also declares them with ARG (then they are ordinary ARGs too).
 */
#include <ctype.h>
#include <time.h>

#include "base/json.h"
#include "base/path.h"
#include "frontends/dockerfile/checks.h"
#include "frontends/dockerfile/compile_internal.h"
#include "frontends/dockerfile/df_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers shared with the dispatchers */

int
df_error_at(df_compiler *c, const kiln_df_node *n, kiln_error **err)
{
    return kiln_error_set_location(err, c->filename, n ? n->start_line : 0, 0);
}

int
df_expand(char **out, df_compiler *c, const kiln_shlex *lex, const char *word, const df_env *env,
          kiln_error **err)
{
    kiln_shlex_result r;
    size_t maxv = 0;
    int rc;

    for (size_t i = 0; i < env->items.len; i++) {
        size_t l = strlen(((const df_kv *)env->items.items[i])->value);
        maxv = l > maxv ? l : maxv;
    }
    if (df_expansion_too_large(word, maxv))
        return kiln_error_set(err, KILN_EINVAL, "variable expansion too large in \"%.40s\"", word);
    rc = kiln_shlex_process(&r, lex ? lex : &c->lex, word, df_env_lookup, (void *)env, err);
    if (rc < 0)
        return rc;
    *out = steal_pointer(&r.word);
    kiln_shlex_result_dispose(&r);
    return 0;
}

char *
df_node_code(const kiln_df_node *n)
{
    const char *o = n->original ? n->original : n->value;

    return kiln_df__trim_space_dup(o, strlen(o));
}

char *
df_prefix(df_stage *s, const char *str)
{
    int width = 1;

    if (s->cmd_total == 0)
        return xstrdup(str);
    for (int t = s->cmd_total; t >= 10; t /= 10)
        width++;
    s->cmd_index++;
    if (s->display && *s->display)
        return xasprintf("[%s %*d/%d] %s", s->display, width, s->cmd_index, s->cmd_total, str);
    return xasprintf("[%*d/%d] %s", width, s->cmd_index, s->cmd_total, str);
}

char *
df_cmd_name(df_compiler *c, df_stage *s, const char *code, bool raw)
{
    kiln_shlex lex = c->lex;
    kiln_error *tmp = NULL;
    char *w = NULL;

    if (raw) {
        lex.raw_quotes = true;
        lex.skip_unset_env = true;
    }
    /* processCmdEnv: on an expansion error the line is shown as written */
    if (df_expand(&w, c, &lex, code, &s->env, &tmp) < 0) {
        kiln_error_free(&tmp);
        w = xstrdup(code);
    }
    for (char *p = w; *p && *p != ' '; p++)
        *p = (char)toupper((unsigned char)*p);
    return w;
}

static void
llb_platform_of(kiln_llb_platform *out, const kiln_oci_platform *p)
{
    out->os = p->os;
    out->architecture = p->architecture;
    out->variant = p->variant;
    out->os_version = p->os_version;
}

int
df_vertex_meta(df_compiler *c, df_stage *s, kiln_llb_vertex *v, const kiln_df_node *n,
               const char *name, const char *description, kiln_error **err)
{
    if (!v)
        return 0;
    if (name)
        kiln_llb_vertex_set_custom_name(v, name);
    if (description)
        kiln_llb_vertex_set_description(v, DF_CMD_DESCRIPTION, description);
    if (s && s->ignore_cache)
        kiln_llb_vertex_set_ignore_cache(v, true);
    if (s && s->has_platform) {
        kiln_llb_platform p;
        llb_platform_of(&p, &s->platform);
        kiln_llb_vertex_set_platform(v, &p);
    }
    if (n) {
        kiln_llb_range r = {n->start_line, 0, n->end_line, 0};
        return kiln_llb_vertex_add_location(v, c->src_index, &r, 1, err);
    }
    return 0;
}

static void
add_local(df_compiler *c, const char *name)
{
    for (size_t i = 0; i < c->locals.len; i++) {
        if (strcmp(c->locals.items[i], name) == 0)
            return;
    }
    kiln_strvec_push(&c->locals, name);
}

int
df_context(kiln_llb_state *out, df_compiler *c, kiln_error **err)
{
    if (!c->context_made) {
        const char *name = c->opts->context_name ? c->opts->context_name : "context";
        kiln_llb_local_opts lo = {
                .exclude_patterns = c->opts->context_excludes,
                .follow_paths = c->follow.len ? (const char *const *)c->follow.items : NULL,
                .shared_key_hint = name};
        int rc = kiln_llb_local(&c->context, c->b, name, &lo, err);
        add_local(c, name);
        if (rc < 0)
            return rc;
        kiln_llb_vertex_set_custom_name(c->context.vertex, "[internal] load build context");
        if (c->opts->no_cache)
            kiln_llb_vertex_set_ignore_cache(c->context.vertex, true);
        c->context_made = true;
    }
    *out = c->context;
    return 0;
}

void
df_context_path(df_compiler *c, const char *src)
{
    kiln_vec_push(&c->ctx_paths, kiln_path_join("/", src ? src : ""));
}

void
df_history(df_compiler *c, df_stage *s, const char *created_by, bool layer)
{
    kiln_oci_config *img = &s->image;
    kiln_oci_history *h;

    img->history = xreallocarray(img->history, img->n_history + 1, sizeof(*img->history));
    h = &img->history[img->n_history++];
    memset(h, 0, sizeof(*h));
    h->created = xstrdup(c->created);
    h->created_by = xstrdup(created_by);
    h->comment = xstrdup(DF_HISTORY_COMMENT);
    h->empty_layer = !layer;
}

df_stage *
df_find_stage(df_compiler *c, const char *name)
{
    for (size_t i = 0; i < c->stages.len; i++) {
        df_stage *s = c->stages.items[i];
        if (s->name && strcasecmp(s->name, name) == 0)
            return s;
    }
    return NULL;
}

static df_stage *
stage_new(df_compiler *c)
{
    df_stage *s = xnew(df_stage);

    s->index = c->stages.len;
    df_env_init(&s->env);
    kiln_oci_config_init(&s->image);
    kiln_vec_push(&c->stages, s);
    return s;
}

df_stage *
df_add_unregistered(df_compiler *c, const char *base, const kiln_df_node *at, bool located)
{
    df_stage *s = stage_new(c);

    s->located = located;
    s->unregistered = true;
    s->base_name = xstrdup(base);
    s->display = xstrdup("");
    s->from = at;
    s->ignore_cache = c->opts->no_cache;
    return s;
}

static void
stage_free(void *p)
{
    df_stage *s = p;

    if (!s)
        return;
    free(s->name);
    free(s->display);
    free(s->base_name);
    for (size_t i = 0; i < s->cmds.len; i++) {
        df_cmd *cmd = s->cmds.items[i];
        kiln_vec_dispose(&cmd->sources, NULL);
        free(cmd);
    }
    kiln_vec_dispose(&s->cmds, NULL);
    kiln_vec_dispose(&s->deps, NULL);
    kiln_oci_platform_dispose(&s->platform);
    df_env_dispose(&s->env);
    free(s->dir);
    free(s->user);
    kiln_oci_config_dispose(&s->image);
    kiln_vec_dispose(&s->build_args, df_kv_free);
    kiln_cleanup_strv(&s->base_env);
    free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* images */

static void
strv_copy(kiln_vec *dst, const kiln_vec *src)
{
    for (size_t i = 0; i < src->len; i++)
        kiln_strvec_push(dst, src->items[i]);
}

/* Deep copy of an image config (BuildKit's clone). */
static void
image_clone(kiln_oci_config *dst, const kiln_oci_config *src)
{
    kiln_oci_config_init(dst);
    dst->created = xstrdup(src->created);
    dst->author = xstrdup(src->author);
    kiln_oci_platform_copy(&dst->platform, &src->platform);
    dst->user = xstrdup(src->user);
    strv_copy(&dst->exposed_ports, &src->exposed_ports);
    strv_copy(&dst->env, &src->env);
    strv_copy(&dst->entrypoint, &src->entrypoint);
    dst->has_entrypoint = src->has_entrypoint;
    strv_copy(&dst->cmd, &src->cmd);
    dst->has_cmd = src->has_cmd;
    strv_copy(&dst->volumes, &src->volumes);
    dst->working_dir = xstrdup(src->working_dir);
    dst->labels = src->labels ? json_deep_copy(src->labels) : NULL;
    dst->stop_signal = xstrdup(src->stop_signal);
    dst->args_escaped = src->args_escaped;
    if (src->healthcheck) {
        dst->healthcheck = xnew(kiln_oci_healthcheck);
        *dst->healthcheck = *src->healthcheck;
        kiln_vec_init(&dst->healthcheck->test);
        strv_copy(&dst->healthcheck->test, &src->healthcheck->test);
    }
    strv_copy(&dst->on_build, &src->on_build);
    strv_copy(&dst->shell, &src->shell);
    strv_copy(&dst->diff_ids, &src->diff_ids);
    if (src->n_history) {
        dst->history = xcalloc(src->n_history, sizeof(*dst->history));
        for (size_t i = 0; i < src->n_history; i++) {
            const kiln_oci_history *h = &src->history[i];
            dst->history[i] =
                    (kiln_oci_history){xstrdup(h->created), xstrdup(h->author),
                                       xstrdup(h->created_by), xstrdup(h->comment), h->empty_layer};
        }
        dst->n_history = src->n_history;
    }
}

/* BuildKit's emptyImage: the config of `FROM scratch`. */
static void
image_empty(kiln_oci_config *img, const kiln_oci_platform *p)
{
    kiln_oci_config_init(img);
    kiln_oci_platform_copy(&img->platform, p);
    img->working_dir = xstrdup("/");
    kiln_strvec_push(&img->env, "PATH=" DF_DEFAULT_PATH);
}

static df_resolved *
resolved_find(df_compiler *c, const char *ref, const char *platform)
{
    for (size_t i = 0; i < c->resolved.len; i++) {
        df_resolved *r = c->resolved.items[i];
        if (strcmp(r->ref, ref) == 0 && strcmp(r->platform, platform) == 0)
            return r;
    }
    return NULL;
}

static void
resolved_free(void *p)
{
    df_resolved *r = p;

    free(r->ref);
    free(r->platform);
    free(r->config);
    free(r->digest);
    free(r);
}

/* Resolve `ref` for `p` through the caller's callback, once per (ref, platform). */
static int
resolve_config(df_resolved **out, df_compiler *c, const char *ref, const kiln_oci_platform *p,
               kiln_error **err)
{
    cleanup_free char *ps = kiln_oci_platform_string(p);
    df_resolved *r = resolved_find(c, ref, ps);
    char *config = NULL, *digest = NULL;

    if (!r) {
        if (!c->opts->resolve)
            return kiln_error_set(err, KILN_EINVAL, "no image resolver to load metadata for %s",
                                  ref);
        int rc = c->opts->resolve(&config, &digest, ref, ps, c->opts->resolve_payload, err);
        if (rc < 0)
            return rc;
        r = xnew(df_resolved);
        r->ref = xstrdup(ref);
        r->platform = xstrdup(ps);
        r->config = config ? config : xstrdup("{}");
        r->digest = digest;
        kiln_vec_push(&c->resolved, r);
    }
    *out = r;
    return 0;
}

static int
parse_image(kiln_oci_config *img, const char *json, kiln_error **err)
{
    int rc = kiln_oci_config_parse(img, json, strlen(json), err);

    if (rc < 0)
        return kiln_error_wrap(err, "failed to parse image config");
    free(img->created);
    img->created = NULL;
    if (img->extra) {
        json_decref(img->extra);
        img->extra = NULL;
    }
    return 0;
}

static const char *
named_context(df_compiler *c, const char *name)
{
    for (size_t i = 0; i < c->opts->n_named_contexts; i++) {
        const kiln_df_named_context *nc = &c->opts->named_contexts[i];
        if (nc->name && nc->value && strcmp(nc->name, name) == 0)
            return nc->value;
    }
    return NULL;
}

bool
df_is_git_url(const char *s)
{
    if (kiln_str_has_prefix(s, "git://") || kiln_str_has_prefix(s, "git@"))
        return true;
    if (kiln_str_has_prefix(s, "https://") || kiln_str_has_prefix(s, "http://") ||
        kiln_str_has_prefix(s, "ssh://")) {
        size_t n = strcspn(s, "#");
        return n >= 4 && strncmp(s + n - 4, ".git", 4) == 0;
    }
    return false;
}

/* A named context's value as a state (and, for images, its config). */
static int
context_state(df_compiler *c, df_stage *s, const char *value, const kiln_oci_platform *p,
              bool *has_image, kiln_error **err)
{
    int rc;

    *has_image = false;
    if (kiln_str_has_prefix(value, "docker-image://") ||
        kiln_str_has_prefix(value, "oci-layout://")) {
        df_resolved *r = NULL;
        bool docker = value[0] == 'd';
        if ((rc = resolve_config(&r, c, value, p, err)) < 0)
            return rc;
        kiln_oci_config_dispose(&s->image);
        if ((rc = parse_image(&s->image, r->config, err)) < 0)
            return rc;
        *has_image = true;
        if (docker) {
            cleanup_free char *ref = NULL;
            const char *v = value + strlen("docker-image://");
            if (r->digest && !strchr(v, '@'))
                ref = xasprintf("%s@%s", v, r->digest);
            rc = kiln_llb_image(&s->state, c->b, ref ? ref : v, NULL, err);
        } else if (r->digest && *r->digest && !strchr(value, '@')) {
            /* pin the layout to the manifest resolved (a tag would move) */
            cleanup_free char *pinned = xstrdup(value);
            char *slash = strrchr(pinned, '/'), *colon = strrchr(slash ? slash : pinned, ':');
            if (colon)
                *colon = '\0';
            cleanup_free char *id = xasprintf("%s@%s", pinned, r->digest);
            rc = kiln_llb_source(&s->state, c->b, id, NULL, 0, err);
        } else {
            rc = kiln_llb_source(&s->state, c->b, value, NULL, 0, err);
        }
    } else if (kiln_str_has_prefix(value, "local:")) {
        kiln_llb_local_opts lo = {.shared_key_hint = value + 6};
        rc = kiln_llb_local(&s->state, c->b, value + 6, &lo, err);
        add_local(c, value + 6);
        if (rc == 0) {
            cleanup_free char *n = xasprintf("[internal] load build context %s", value + 6);
            kiln_llb_vertex_set_custom_name(s->state.vertex, n);
        }
    } else if (df_is_git_url(value)) {
        cleanup_free char *remote = xstrdup(value);
        char *frag = strchr(remote, '#');
        kiln_llb_git_opts go = {0};
        if (frag) {
            *frag++ = '\0';
            char *colon = strchr(frag, ':');
            if (colon) {
                *colon++ = '\0';
                go.subdir = colon;
            }
        }
        rc = kiln_llb_git(&s->state, c->b, remote, frag && *frag ? frag : NULL, &go, err);
    } else if (kiln_str_has_prefix(value, "https://") || kiln_str_has_prefix(value, "http://")) {
        rc = kiln_llb_http(&s->state, c->b, value, NULL, err);
    } else {
        return kiln_error_set(err, KILN_EINVAL, "unsupported context source %s", value);
    }
    if (rc < 0)
        return rc;
    return df_vertex_meta(c, s, s->state.vertex, NULL, NULL, NULL, err);
}

/* Does the stage's base name match a named context (as written, or normalised)? */
static const char *
image_named_context(df_compiler *c, const char *orig, const char *normalised)
{
    const char *v = named_context(c, orig);

    return v ? v : named_context(c, normalised);
}

/* The base image from the resolver: config, pinned reference, image source vertex. */
static int
resolve_image(df_compiler *c, df_stage *s, const kiln_oci_platform *p, kiln_oci_ref *ref,
              const char *orig, kiln_error **err)
{
    df_resolved *r = NULL;
    int rc = resolve_config(&r, c, s->base_name, p, err);

    if (rc == 0)
        rc = parse_image(&s->image, r->config, err);
    if (rc < 0)
        return kiln_error_wrap(err, "%s", orig);
    s->image_set = true;
    if (r->digest && *r->digest && !ref->digest) {
        ref->digest = xstrdup(r->digest);
        free(s->base_name);
        s->base_name = kiln_oci_ref_string(ref);
    }
    bool scratch = s->image.diff_ids.len == 0;
    for (size_t i = 0; scratch && i < s->image.n_history; i++)
        scratch = s->image.history[i].empty_layer;
    if (scratch) {
        s->state = KILN_LLB_SCRATCH;
        return 0;
    }
    if ((rc = kiln_llb_image(&s->state, c->b, s->base_name, NULL, err)) < 0)
        return rc;
    cleanup_free char *what = xasprintf("FROM %s", s->base_name);
    cleanup_free char *name = df_prefix(s, what);
    cleanup_free char *code = s->from && !s->unregistered ? df_node_code(s->from) : NULL;
    kiln_llb_platform lp;
    llb_platform_of(&lp, p);
    kiln_llb_vertex_set_platform(s->state.vertex, &lp);
    return df_vertex_meta(c, s, s->state.vertex, s->unregistered && !s->located ? NULL : s->from,
                          name, code ? code : "", err);
}

/* Resolve the base of a stage whose FROM names an image (or scratch). */
static int
resolve_stage(df_compiler *c, df_stage *s, kiln_error **err)
{
    const kiln_oci_platform *p = s->has_platform ? &s->platform : &c->target_platform;
    kiln_oci_ref ref = {0};
    cleanup_free char *orig = NULL;
    bool has_image = false;
    int rc;

    s->resolved = true;
    if (strcmp(s->base_name, "scratch") == 0) {
        s->state = KILN_LLB_SCRATCH;
        image_empty(&s->image, &c->target_platform);
        s->image_set = true;
        return 0;
    }
    if (kiln_oci_ref_parse(&ref, s->base_name, err) < 0)
        return kiln_error_wrap(err, "failed to parse stage name \"%s\"", s->base_name);
    orig = steal_pointer(&s->base_name);
    s->base_name = kiln_oci_ref_string(&ref);
    const char *nc = image_named_context(c, orig, s->base_name);
    if (nc) {
        rc = context_state(c, s, nc, p, &has_image, err);
        if (rc == 0 && !has_image)
            image_empty(&s->image, &c->target_platform);
        s->image_set = true;
    } else {
        rc = resolve_image(c, s, p, &ref, orig, err);
    }
    kiln_oci_ref_dispose(&ref);
    if (rc == 0 && s->image_set) {
        s->base_env = xcalloc(s->image.env.len + 1, sizeof(char *));
        for (size_t i = 0; i < s->image.env.len; i++)
            s->base_env[i] = xstrdup(s->image.env.items[i]);
    }
    if (rc == 0 && !s->has_platform) {
        kiln_oci_platform_copy(&s->platform, p);
        s->has_platform = true;
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* stage dispatch */

static int dispatch_stage(df_compiler *c, df_stage *s, kiln_error **err);

int
df_ensure_stage(df_compiler *c, df_stage *s, kiln_error **err)
{
    int rc;

    if (!s->resolved && !s->base && !s->noinit) {
        if ((rc = resolve_stage(c, s, err)) < 0)
            return df_error_at(c, s->from, err);
    }
    if (s->dispatched || s->noinit)
        return 0;
    if (s->dispatching)
        return kiln_error_set(err, KILN_EINVAL, "circular dependency detected on stage: %s",
                              s->display);
    s->dispatching = true;
    rc = dispatch_stage(c, s, err);
    s->dispatching = false;
    s->dispatched = true;
    return rc;
}

static int
init_from_image(df_compiler *c, df_stage *s)
{
    bool has_path = false;

    (void)c;
    for (size_t i = 0; i < s->image.env.len; i++) {
        const char *e = s->image.env.items[i];
        if (strncmp(e, "PATH=", 5) == 0 || strcmp(e, "PATH") == 0)
            has_path = true;
    }
    if (!has_path)
        kiln_strvec_push(&s->image.env, "PATH=" DF_DEFAULT_PATH);
    for (size_t i = 0; i < s->image.env.len; i++) {
        const char *e = s->image.env.items[i];
        const char *eq = strchr(e, '=');
        cleanup_free char *k = eq ? xstrndup(e, (size_t)(eq - e)) : xstrdup(e);
        df_env_set(&s->env, k, eq ? eq + 1 : "");
    }
    if (s->image.working_dir && *s->image.working_dir) {
        const char *wd = s->image.working_dir;
        char *nd;
        if (kiln_path_is_abs(wd))
            nd = xstrdup(wd);
        else
            nd = kiln_path_join(s->dir && *s->dir ? s->dir : "/", wd);
        free(s->dir);
        s->dir = nd;
    }
    if (s->image.user && *s->image.user) {
        free(s->user);
        s->user = xstrdup(s->image.user);
    }
    return 0;
}

static int
dispatch_stage(df_compiler *c, df_stage *s, kiln_error **err)
{
    int rc;

    if (s->base) {
        if ((rc = df_ensure_stage(c, s->base, err)) < 0)
            return rc;
        s->state = s->base->state;
        if (s->base->has_platform) {
            kiln_oci_platform_dispose(&s->platform);
            kiln_oci_platform_copy(&s->platform, &s->base->platform);
            s->has_platform = true;
        }
        df_env_dispose(&s->env);
        df_env_copy(&s->env, &s->base->env);
        s->dir = xstrdup(s->base->dir);
        s->user = xstrdup(s->base->user);
        kiln_oci_config_dispose(&s->image);
        image_clone(&s->image, &s->base->image);
        s->image_set = true;
    }
    for (size_t i = 0; i < s->deps.len; i++) {
        if ((rc = df_ensure_stage(c, s->deps.items[i], err)) < 0)
            return rc;
    }
    init_from_image(c, s);
    if ((rc = df_dispatch_onbuild_triggers(c, s, err)) < 0)
        return df_error_at(c, s->from, err);
    for (size_t i = 0; i < s->cmds.len; i++) {
        df_cmd *cmd = s->cmds.items[i];
        if ((rc = df_dispatch(c, s, cmd, err)) < 0) {
            if (!(*err)->file || (*err)->line <= 0)
                df_error_at(c, cmd->node, err);
            return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* setup: platforms, args, stages */

static int
setup_platforms(df_compiler *c, kiln_error **err)
{
    kiln_oci_platform_host(&c->build_platform);
    kiln_oci_platform_normalize(&c->build_platform);
    if (c->opts->platform && *c->opts->platform) {
        int rc = kiln_oci_platform_parse(&c->target_platform, c->opts->platform, err);
        if (rc < 0)
            return kiln_error_wrap(err, "failed to parse target platform %s", c->opts->platform);
    } else {
        kiln_oci_platform_copy(&c->target_platform, &c->build_platform);
        c->implicit_target = true;
    }
    return 0;
}

static const char *
build_arg(df_compiler *c, const char *key)
{
    for (size_t i = c->build_args.len; i > 0; i--) {
        df_kv *kv = c->build_args.items[i - 1];
        if (strcmp(kv->key, key) == 0)
            return kv->value;
    }
    return NULL;
}

/* The value of proxy build arg `upper` given in any case (proxyEnvFromBuildArgs): the uppercase
 * spelling wins, else the last one given. NULL when not given. */
static const char *
proxy_arg(df_compiler *c, const char *upper)
{
    const char *value = NULL;
    bool exact = false;

    for (size_t i = 0; i < c->build_args.len; i++) {
        const df_kv *kv = c->build_args.items[i];
        bool up;
        if (strcasecmp(kv->key, upper) != 0)
            continue;
        up = strcmp(kv->key, upper) == 0;
        if (up || !exact) {
            value = kv->value ? kv->value : "";
            exact = up;
        }
    }
    return value;
}

static void
setup_build_args(df_compiler *c)
{
    kiln_llb_proxy_env *p = &c->proxy;

    for (const char *const *a = c->opts->build_args; a && *a; a++) {
        const char *eq = strchr(*a, '=');
        if (eq) {
            cleanup_free char *k = xstrndup(*a, (size_t)(eq - *a));
            kiln_vec_push(&c->build_args, df_kv_new(k, eq + 1));
        } else if (getenv(*a)) {
            kiln_vec_push(&c->build_args, df_kv_new(*a, getenv(*a)));
        }
    }
    p->http_proxy = proxy_arg(c, "HTTP_PROXY");
    p->https_proxy = proxy_arg(c, "HTTPS_PROXY");
    p->ftp_proxy = proxy_arg(c, "FTP_PROXY");
    p->no_proxy = proxy_arg(c, "NO_PROXY");
    p->all_proxy = proxy_arg(c, "ALL_PROXY");
    c->has_proxy = p->http_proxy || p->https_proxy || p->ftp_proxy || p->no_proxy || p->all_proxy;
}

static void
push_meta(df_compiler *c, const char *k, const char *v)
{
    const char *ba = build_arg(c, k);

    kiln_vec_push(&c->meta_args, df_kv_new(k, ba ? ba : v));
}

static void
platform_args(df_compiler *c)
{
    cleanup_free char *bp = kiln_oci_platform_string(&c->build_platform);
    cleanup_free char *tp = kiln_oci_platform_string(&c->target_platform);
    const kiln_oci_platform *b = &c->build_platform, *t = &c->target_platform;

    push_meta(c, "BUILDPLATFORM", bp);
    push_meta(c, "BUILDOS", b->os);
    push_meta(c, "BUILDARCH", b->architecture);
    push_meta(c, "BUILDVARIANT", b->variant ? b->variant : "");
    push_meta(c, "TARGETPLATFORM", tp);
    push_meta(c, "TARGETOS", t->os);
    push_meta(c, "TARGETARCH", t->architecture);
    push_meta(c, "TARGETVARIANT", t->variant ? t->variant : "");
}

static int
expand_meta(char **out, df_compiler *c, const char *word, kiln_error **err)
{
    kiln_shlex_result r;
    size_t maxv = 0;
    int rc;

    for (size_t i = 0; i < c->meta_args.len; i++) {
        const df_kv *kv = c->meta_args.items[i];
        size_t l = kv->value ? strlen(kv->value) : 0;
        maxv = l > maxv ? l : maxv;
    }
    if (df_expansion_too_large(word, maxv))
        return kiln_error_set(err, KILN_EINVAL, "variable expansion too large in \"%.40s\"", word);
    rc = kiln_shlex_process(&r, &c->lex, word, df_kvs_lookup, &c->meta_args, err);

    if (rc < 0)
        return rc;
    *out = steal_pointer(&r.word);
    kiln_shlex_result_dispose(&r);
    return 0;
}

/* A global ARG (before the first FROM): its value is the build arg, or its default expanded
 * with the args declared so far. */
static int
global_arg(df_compiler *c, const kiln_df_node *n, kiln_error **err)
{
    for (const kiln_df_node *a = n->next; a; a = a->next) {
        const char *eq = strchr(a->value, '=');
        cleanup_free char *key =
                eq ? xstrndup(a->value, (size_t)(eq - a->value)) : xstrdup(a->value);
        const char *ba = build_arg(c, key);
        cleanup_free char *val = NULL;
        if (ba) {
            val = xstrdup(ba);
        } else if (eq) {
            int rc = expand_meta(&val, c, eq + 1, err);
            if (rc < 0)
                return rc;
        }
        /* a bare re-declaration keeps the value already known (automatic platform args) */
        const char *known = NULL;
        if (!val && df_kvs_lookup(key, &known, &c->meta_args))
            continue;
        kiln_vec_push(&c->meta_args, df_kv_new(key, val));
    }
    return 0;
}

static int
new_stage(df_compiler *c, const kiln_df_node *n, kiln_error **err)
{
    kiln_df_from f;
    df_stage *s;
    int rc = kiln_df_parse_from(&f, n, err);

    if (rc < 0)
        return rc;
    if (c->stages.len >= DF_MAX_STAGES) {
        kiln_df_from_dispose(&f);
        return kiln_error_set(err, KILN_EINVAL, "too many build stages");
    }
    s = stage_new(c);
    s->from = n;
    s->name = steal_pointer(&f.stage_name);
    rc = expand_meta(&s->base_name, c, f.image, err);
    if (rc == 0 && !*s->base_name)
        rc = kiln_error_set(err, KILN_EINVAL, "base name (%s) should not be blank", f.image);
    if (rc == 0 && f.platform) {
        cleanup_free char *pv = NULL;
        rc = expand_meta(&pv, c, f.platform, err);
        if (rc < 0)
            kiln_error_wrap(err, "failed to process arguments for platform %s", f.platform);
        else if ((rc = kiln_oci_platform_parse(&s->platform, pv, err)) < 0)
            kiln_error_wrap(err, "failed to parse platform %s", pv);
        else
            s->has_platform = true;
    }
    kiln_df_from_dispose(&f);
    return rc;
}

static int
collect_stages(df_compiler *c, kiln_error **err)
{
    const kiln_vec *children = &c->ast->ast->children;
    int rc;

    for (size_t i = 0; i < children->len; i++) {
        const kiln_df_node *n = children->items[i];
        if ((rc = kiln_df_check_keyword(n, err)) < 0 || (rc = df_validate(c, n, err)) < 0)
            return df_error_at(c, n, err);
        if (strcmp(n->value, "from") == 0) {
            if ((rc = new_stage(c, n, err)) < 0)
                return df_error_at(c, n, err);
        } else if (c->stages.len == 0 && strcmp(n->value, "arg") == 0) {
            if ((rc = global_arg(c, n, err)) < 0)
                return df_error_at(c, n, err);
        } else if (c->stages.len == 0) {
            kiln_error_set(err, KILN_EPARSE, "no build stage in current context");
            return df_error_at(c, n, err);
        } else {
            df_stage *s = c->stages.items[c->stages.len - 1];
            df_cmd *cmd = xnew(df_cmd);
            cmd->node = n;
            kiln_vec_push(&s->cmds, cmd);
        }
    }
    if (c->stages.len == 0)
        return kiln_error_set(err, KILN_EPARSE, "%s: no build stage", c->filename);
    return 0;
}

static bool
in_filter(const char *const *filter, const char *name)
{
    for (; filter && *filter; filter++) {
        if (name && strcasecmp(*filter, name) == 0)
            return true;
    }
    return false;
}

/* Names, bases, command totals and cache flags, as the first loop of toDispatchState. */
static void
name_stages(df_compiler *c)
{
    size_t n = c->stages.len;

    for (size_t i = 0; i < n; i++) {
        df_stage *s = c->stages.items[i];
        s->display = s->name ? xstrdup(s->name) : xasprintf("stage-%zu", i);
        for (size_t j = 0; j < i; j++) {
            df_stage *p = c->stages.items[j];
            if (p->name && strcmp(p->name, s->base_name) == 0)
                s->base = p;
        }
        s->scratch_base = strcmp(s->base_name, "scratch") == 0;
        s->cmd_total = (!s->scratch_base && !s->base) ? 1 : 0;
        for (size_t k = 0; k < s->cmds.len; k++) {
            const char *v = ((df_cmd *)s->cmds.items[k])->node->value;
            if (!strcmp(v, "add") || !strcmp(v, "copy") || !strcmp(v, "run") ||
                !strcmp(v, "workdir"))
                s->cmd_total++;
        }
        s->ignore_cache = c->opts->no_cache || in_filter(c->opts->no_cache_filter, s->name);
    }
}

/* Mark every stage `s` needs (its base and the stages its commands read), iteratively. */
static void
mark_reachable(df_stage *target)
{
    kiln_vec todo = KILN_VEC_INIT;

    kiln_vec_push(&todo, target);
    while (todo.len) {
        df_stage *s = kiln_vec_pop(&todo);
        if (s->reachable)
            continue;
        s->reachable = true;
        if (s->base)
            kiln_vec_push(&todo, s->base);
        for (size_t i = 0; i < s->deps.len; i++)
            kiln_vec_push(&todo, s->deps.items[i]);
    }
    kiln_vec_dispose(&todo, NULL);
}

/* Depth-first search for a cycle through deps (colour 1 = on the path, 2 = done). */
static df_stage *
find_cycle(df_stage *s, int depth)
{
    if (s->color == 2 || depth > DF_MAX_STAGES)
        return NULL;
    if (s->color == 1)
        return s;
    s->color = 1;
    for (size_t i = 0; i < s->deps.len; i++) {
        df_stage *c = find_cycle(s->deps.items[i], depth + 1);
        if (c)
            return c;
    }
    s->color = 2;
    return NULL;
}

static int
link_stages(df_compiler *c, kiln_error **err)
{
    size_t n = c->stages.len;
    int rc;

    for (size_t i = 0; i < n; i++) {
        df_stage *s = c->stages.items[i];
        for (size_t k = 0; k < s->cmds.len; k++) {
            df_cmd *cmd = s->cmds.items[k];
            if ((rc = df_command_sources(c, cmd, err)) < 0)
                return df_error_at(c, cmd->node, err);
            for (size_t j = 0; j < cmd->sources.len; j++) {
                df_stage *src = cmd->sources.items[j];
                bool have = false;
                for (size_t d = 0; src && d < s->deps.len; d++)
                    have = have || s->deps.items[d] == src;
                if (src && !have)
                    kiln_vec_push(&s->deps, src);
            }
        }
    }
    for (size_t i = 0; i < c->stages.len; i++) {
        df_stage *s = c->stages.items[i];
        if (find_cycle(s, 0))
            return kiln_error_set(err, KILN_EINVAL, "circular dependency detected on stage: %s",
                                  s->display);
    }
    if (c->stages.len == 1) {
        df_stage *s = c->stages.items[0];
        free(s->display);
        s->display = xstrdup("");
    }
    return 0;
}

static int
find_target(df_stage **out, df_compiler *c, kiln_error **err)
{
    const char *t = c->opts->target;

    if (!t || !*t) {
        /* the last FROM stage (unregistered stages are not targets) */
        for (size_t i = c->stages.len; i > 0; i--) {
            df_stage *s = c->stages.items[i - 1];
            if (!s->unregistered) {
                *out = s;
                return 0;
            }
        }
    }
    *out = t ? df_find_stage(c, t) : NULL;
    if (!*out)
        return kiln_error_set(err, KILN_ENOTFOUND, "target stage \"%s\" could not be found",
                              t ? t : "");
    return 0;
}

/* Named contexts that replace a whole stage (`--build-context name=...` with FROM ... AS name). */
static int
stage_contexts(df_compiler *c, kiln_error **err)
{
    for (size_t i = 0; i < c->stages.len; i++) {
        df_stage *s = c->stages.items[i];
        const char *v = s->name ? named_context(c, s->name) : NULL;
        bool has_image = false;
        int rc;
        if (!v)
            continue;
        const kiln_oci_platform *p = s->has_platform ? &s->platform : &c->target_platform;
        if ((rc = context_state(c, s, v, p, &has_image, err)) < 0)
            return df_error_at(c, s->from, err);
        s->noinit = true;
        s->resolved = true;
        s->base = NULL;
        s->image_set = true;
        if (has_image && s->image.platform.os && s->image.platform.architecture &&
            !s->has_platform) {
            kiln_oci_platform_copy(&s->platform, &s->image.platform);
            s->has_platform = true;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* output: the image config */

static void
put_str(json_t *o, const char *k, const char *v)
{
    if (v && *v)
        json_object_set_new(o, k, json_string(v));
}

static json_t *
strv_json(const kiln_vec *v)
{
    json_t *a = json_array();

    for (size_t i = 0; i < v->len; i++)
        json_array_append_new(a, json_string(v->items[i]));
    return a;
}

static json_t *
set_json(const kiln_vec *v)
{
    kiln_vec sorted = KILN_VEC_INIT;
    json_t *o = json_object();

    for (size_t i = 0; i < v->len; i++)
        kiln_vec_push(&sorted, v->items[i]);
    kiln_vec_sort(&sorted, kiln_strvec_cmp);
    for (size_t i = 0; i < sorted.len; i++)
        json_object_set_new(o, sorted.items[i], json_object());
    kiln_vec_dispose(&sorted, NULL);
    return o;
}

static json_t *
health_json(const kiln_oci_healthcheck *h)
{
    json_t *o = json_object();

    if (h->test.len)
        json_object_set_new(o, "Test", strv_json(&h->test));
    if (h->interval)
        json_object_set_new(o, "Interval", json_integer(h->interval));
    if (h->timeout)
        json_object_set_new(o, "Timeout", json_integer(h->timeout));
    if (h->start_period)
        json_object_set_new(o, "StartPeriod", json_integer(h->start_period));
    if (h->start_interval)
        json_object_set_new(o, "StartInterval", json_integer(h->start_interval));
    if (h->retries)
        json_object_set_new(o, "Retries", json_integer(h->retries));
    return o;
}

/* The "config" object in Go's field order (image.ImageConfig). */
static json_t *
exec_config_json(const kiln_oci_config *img)
{
    json_t *o = json_object();

    put_str(o, "User", img->user);
    if (img->exposed_ports.len)
        json_object_set_new(o, "ExposedPorts", set_json(&img->exposed_ports));
    if (img->env.len)
        json_object_set_new(o, "Env", strv_json(&img->env));
    if (img->has_entrypoint && img->entrypoint.len)
        json_object_set_new(o, "Entrypoint", strv_json(&img->entrypoint));
    if (img->has_cmd && img->cmd.len)
        json_object_set_new(o, "Cmd", strv_json(&img->cmd));
    if (img->volumes.len)
        json_object_set_new(o, "Volumes", set_json(&img->volumes));
    put_str(o, "WorkingDir", img->working_dir);
    if (img->labels && json_object_size(img->labels))
        json_object_set(o, "Labels", img->labels);
    put_str(o, "StopSignal", img->stop_signal);
    if (img->healthcheck)
        json_object_set_new(o, "Healthcheck", health_json(img->healthcheck));
    if (img->args_escaped)
        json_object_set_new(o, "ArgsEscaped", json_true());
    json_object_set_new(o, "OnBuild", img->on_build.len ? strv_json(&img->on_build) : json_null());
    if (img->shell.len)
        json_object_set_new(o, "Shell", strv_json(&img->shell));
    return o;
}

static char *
image_json(const kiln_oci_config *img, const char *created)
{
    json_t *root = json_object(), *rootfs = json_object(), *hist = json_array();
    char *s;

    put_str(root, "created", created);
    put_str(root, "author", img->author);
    json_object_set_new(root, "architecture",
                        json_string(img->platform.architecture ? img->platform.architecture : ""));
    put_str(root, "variant", img->platform.variant);
    json_object_set_new(root, "os", json_string(img->platform.os ? img->platform.os : ""));
    put_str(root, "os.version", img->platform.os_version);
    if (img->platform.os_features.len)
        json_object_set_new(root, "os.features", strv_json(&img->platform.os_features));
    json_object_set_new(root, "config", exec_config_json(img));
    json_object_set_new(rootfs, "type", json_string("layers"));
    json_object_set_new(rootfs, "diff_ids", json_array());
    json_object_set_new(root, "rootfs", rootfs);
    for (size_t i = 0; i < img->n_history; i++) {
        const kiln_oci_history *h = &img->history[i];
        json_t *e = json_object();
        put_str(e, "created", h->created);
        put_str(e, "author", h->author);
        put_str(e, "created_by", h->created_by);
        put_str(e, "comment", h->comment);
        if (h->empty_layer)
            json_object_set_new(e, "empty_layer", json_true());
        json_array_append_new(hist, e);
    }
    if (img->n_history)
        json_object_set_new(root, "history", hist);
    else
        json_decref(hist);
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

static void
apply_labels(df_compiler *c, df_stage *t)
{
    for (const char *const *l = c->opts->labels; l && *l; l++) {
        const char *eq = strchr(*l, '=');
        cleanup_free char *k = eq ? xstrndup(*l, (size_t)(eq - *l)) : xstrdup(*l);
        if (!t->image.labels)
            t->image.labels = json_object();
        json_object_set_new(t->image.labels, k, json_string(eq ? eq + 1 : ""));
    }
}

static char *
rfc3339(int64_t epoch)
{
    time_t t = (time_t)epoch;
    struct tm tm;
    char buf[64];

    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return xstrdup(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* checks */

static const char *const *
lint_base_env(size_t stage, void *payload)
{
    df_compiler *c = payload;
    size_t k = 0;

    for (size_t i = 0; i < c->stages.len; i++) {
        df_stage *s = c->stages.items[i];
        if (s->unregistered)
            continue;
        if (k++ == stage)
            return s->base || s->scratch_base ? NULL : (const char *const *)s->base_env;
    }
    return NULL;
}

static int
run_checks(kiln_df_compiled *out, df_compiler *c, kiln_error **err)
{
    kiln_vec names = KILN_VEC_INIT;
    int rc;

    for (size_t i = 0; i < c->build_args.len; i++)
        kiln_vec_push(&names, ((df_kv *)c->build_args.items[i])->key);
    kiln_vec_push(&names, NULL);
    kiln_df_lint_opts lo = {.filename = c->filename,
                            .mode = c->opts->check,
                            .build_args = (const char *const *)names.items,
                            .base_env = lint_base_env,
                            .base_env_payload = c};
    rc = kiln_df_lint(&out->warnings, c->ast, &lo, err);
    kiln_vec_dispose(&names, NULL);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* entry point */

static void
compiler_dispose(df_compiler *c)
{
    kiln_vec_dispose(&c->stages, stage_free);
    kiln_vec_dispose(&c->meta_args, df_kv_free);
    kiln_vec_dispose(&c->build_args, df_kv_free);
    kiln_vec_dispose(&c->resolved, resolved_free);
    kiln_oci_platform_dispose(&c->target_platform);
    kiln_oci_platform_dispose(&c->build_platform);
    kiln_llb_builder_free(c->b);
    kiln_df_result_free(c->ast);
    kiln_strvec_dispose(&c->ctx_paths);
    kiln_strvec_dispose(&c->locals);
    kiln_strvec_dispose(&c->follow);
    free(c->created);
}

static int
compile_stages(df_stage **target_out, df_compiler *c, kiln_error **err)
{
    df_stage *target = NULL;
    int rc;

    if ((rc = collect_stages(c, err)) < 0)
        return rc;
    name_stages(c);
    if ((rc = find_target(&target, c, err)) < 0 || (rc = stage_contexts(c, err)) < 0 ||
        (rc = link_stages(c, err)) < 0)
        return rc;
    mark_reachable(target);
    for (size_t i = 0; i < c->stages.len; i++) {
        df_stage *s = c->stages.items[i];
        if (s->reachable && (rc = df_ensure_stage(c, s, err)) < 0)
            return rc;
    }
    *target_out = target;
    return 0;
}

static int
finish(kiln_df_compiled *out, df_compiler *c, df_stage *t, kiln_error **err)
{
    kiln_llb_platform lp;
    kiln_llb_state st = t->state;
    int rc;

    apply_labels(c, t);
    if (!c->implicit_target) {
        kiln_oci_platform_dispose(&t->image.platform);
        kiln_oci_platform_copy(&t->image.platform, &c->target_platform);
    } else if (!t->image.platform.os || !t->image.platform.architecture) {
        kiln_oci_platform_dispose(&t->image.platform);
        kiln_oci_platform_copy(&t->image.platform, &c->target_platform);
    }
    llb_platform_of(&lp, &c->target_platform);
    kiln_llb_builder_set_platform(c->b, &lp);
    /* a scratch result has no vertex: the Definition stays empty, as BuildKit's */
    if (!kiln_llb_state_is_scratch(st)) {
        kiln_llb_graph *g = NULL;
        if ((rc = kiln_llb_marshal(&out->definition, c->b, st, NULL, err)) < 0)
            return rc;
        /* values from outside the Dockerfile (build args, contexts) could still make an invalid
         * Definition: check it the way the solver will */
        if ((rc = kiln_llb_load(&g, out->definition.ptr, out->definition.len, err)) < 0)
            return kiln_error_wrap(err, "invalid build definition");
        kiln_llb_graph_free(g);
    }
    for (size_t i = 0; i < c->locals.len; i++)
        kiln_strvec_push(&out->locals, c->locals.items[i]);
    out->config_json = image_json(&t->image, c->created);
    out->target = t->name ? xstrdup(t->name) : xasprintf("%zu", t->index);
    return 0;
}

/* BuildKit's normalizeContextPaths: the context paths COPY/ADD/RUN --mount read, relative and
 * sorted, or none at all (the whole context) when one of them is the root. */
static bool
follow_paths(kiln_vec *out, const kiln_vec *paths)
{
    kiln_vec_init(out);
    if (paths->len == 0)
        return false;
    for (size_t i = 0; i < paths->len; i++) {
        if (strcmp(paths->items[i], "/") == 0) {
            kiln_strvec_dispose(out);
            return false;
        }
        kiln_vec_push(out, kiln_path_clean((const char *)paths->items[i] + 1));
    }
    kiln_vec_sort(out, kiln_strvec_cmp);
    size_t k = 0;
    for (size_t i = 0; i < out->len; i++) {
        if (k && strcmp(out->items[k - 1], out->items[i]) == 0)
            free(out->items[i]);
        else
            out->items[k++] = out->items[i];
    }
    out->len = k;
    kiln_vec_push(out, NULL);
    return true;
}

/* One compilation of every needed stage into a fresh builder (resolved configs are kept). */
static int
compile_pass(df_stage **target, df_compiler *c, kiln_error **err)
{
    kiln_vec_dispose(&c->stages, stage_free);
    kiln_vec_dispose(&c->meta_args, df_kv_free);
    kiln_strvec_dispose(&c->ctx_paths);
    kiln_strvec_dispose(&c->locals);
    kiln_llb_builder_free(c->b);
    c->context_made = false;
    c->link_group = 0;
    kiln_llb_builder_new(&c->b);
    kiln_llb_builder_add_source(&c->src_index, c->b, c->filename, c->opts->data, c->opts->len,
                                "Dockerfile");
    platform_args(c);
    return compile_stages(target, c, err);
}

int
kiln_df_compile(kiln_df_compiled *out, const kiln_df_compile_opts *opts, kiln_error **err)
{
    df_compiler c = {0};
    df_stage *target = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!opts || opts->version != KILN_DF_COMPILE_OPTS_VERSION)
        return kiln_error_set(err, KILN_EINVAL, "unsupported compile options version");
    if (!opts->data || opts->len == 0)
        return kiln_error_set(err, KILN_EINVAL, "the Dockerfile cannot be empty");
    c.opts = opts;
    c.filename = opts->filename ? opts->filename : "Dockerfile";
    /* without SOURCE_DATE_EPOCH, as BuildKit: no time in the config or the new history entries;
     * the exporter takes them from the layers' creation times, so an unchanged rebuild gives
     * the same image */
    c.created = opts->source_date_epoch >= 0 ? rfc3339(opts->source_date_epoch) : NULL;
    rc = kiln_df_parse(&c.ast, opts->data, opts->len, c.filename, err);
    if (rc < 0)
        goto out;
    kiln_shlex_init(&c.lex, c.ast->escape_token);
    setup_build_args(&c);
    if ((rc = setup_platforms(&c, err)) < 0)
        goto out;
    if ((rc = compile_pass(&target, &c, err)) < 0)
        goto out;
    /* the context's follow paths are known only once every stage ran: compile again with them */
    if (follow_paths(&c.follow, &c.ctx_paths) && (rc = compile_pass(&target, &c, err)) < 0)
        goto out;
    if ((rc = finish(out, &c, target, err)) < 0)
        goto out;
    rc = run_checks(out, &c, err);
out:
    compiler_dispose(&c);
    if (rc < 0)
        kiln_df_compiled_dispose(out);
    return rc;
}

void
kiln_df_compiled_dispose(kiln_df_compiled *c)
{
    if (!c)
        return;
    kiln_buf_dispose(&c->definition);
    free(c->config_json);
    free(c->target);
    kiln_strvec_dispose(&c->warnings);
    kiln_strvec_dispose(&c->locals);
    memset(c, 0, sizeof(*c));
}
