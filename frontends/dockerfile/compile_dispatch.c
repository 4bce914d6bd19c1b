/*
 * compile_dispatch.c: one handler per Dockerfile instruction (BuildKit's dispatch* functions).
 *
 * Each handler reads its instruction node, expands the words BuildKit expands (with the stage's
 * environment as it was when the instruction started, ARG values included), changes the stage's
 * LLB state and/or image config, and records the history entry BuildKit records. RUN, CMD and
 * ENTRYPOINT are never expanded here: the shell does that at run time. COPY and ADD live in
 * compile_copy.c.
 */
#include <ctype.h>

#include "base/path.h"
#include "frontends/dockerfile/compile_internal.h"
#include "frontends/dockerfile/df_internal.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static size_t
count_args(const kiln_df_node *n)
{
    size_t k = 0;

    for (const kiln_df_node *a = n->next; a; a = a->next)
        k++;
    return k;
}

static const char *
upper_name(const kiln_df_node *n)
{
    static const char *const names[][2] = {{"add", "ADD"},
                                           {"arg", "ARG"},
                                           {"cmd", "CMD"},
                                           {"copy", "COPY"},
                                           {"entrypoint", "ENTRYPOINT"},
                                           {"env", "ENV"},
                                           {"expose", "EXPOSE"},
                                           {"from", "FROM"},
                                           {"healthcheck", "HEALTHCHECK"},
                                           {"label", "LABEL"},
                                           {"maintainer", "MAINTAINER"},
                                           {"onbuild", "ONBUILD"},
                                           {"run", "RUN"},
                                           {"shell", "SHELL"},
                                           {"stopsignal", "STOPSIGNAL"},
                                           {"user", "USER"},
                                           {"volume", "VOLUME"},
                                           {"workdir", "WORKDIR"}};

    for (size_t i = 0; i < NELEM(names); i++) {
        if (strcmp(n->value, names[i][0]) == 0)
            return names[i][1];
    }
    return n->value;
}

/* The command line of RUN/CMD/ENTRYPOINT/SHELL: exec-form elements, or the shell-form string
 * (handleJSONArgs). */
static void
cmdline(kiln_vec *out, const kiln_df_node *n)
{
    kiln_vec words = KILN_VEC_INIT;

    for (const kiln_df_node *a = n->next; a; a = a->next)
        kiln_strvec_push(&words, a->value);
    if (n->json || words.len == 0) {
        *out = words;
        return;
    }
    kiln_vec_init(out);
    kiln_vec_push(out, kiln_strvec_join(&words, " "));
    kiln_strvec_dispose(&words);
}

/* withShell: the image's SHELL (or /bin/sh -c) followed by the joined command. */
static void
with_shell(kiln_vec *out, const kiln_oci_config *img, const kiln_vec *args)
{
    kiln_vec_init(out);
    if (img->shell.len) {
        for (size_t i = 0; i < img->shell.len; i++)
            kiln_strvec_push(out, img->shell.items[i]);
    } else if (kiln_str_eq(img->platform.os, "windows")) {
        kiln_strvec_push(out, "cmd");
        kiln_strvec_push(out, "/S");
        kiln_strvec_push(out, "/C");
    } else {
        kiln_strvec_push(out, "/bin/sh");
        kiln_strvec_push(out, "-c");
    }
    kiln_vec_push(out, kiln_strvec_join(args, " "));
}

void
df_chown(kiln_llb_file_info *out, char *spec)
{
    char *colon = strchr(spec, ':');
    char *parts[2] = {spec, NULL};

    *out = (kiln_llb_file_info)KILN_LLB_FILE_INFO_INIT;
    if (colon) {
        *colon = '\0';
        parts[1] = colon + 1;
    }
    for (int i = 0; i < 2 && parts[i]; i++) {
        kiln_llb_user *u = i == 0 ? &out->user : &out->group;
        char *end;
        long long id = strtoll(parts[i], &end, 10);
        if (strcmp(parts[i], "root") == 0)
            *u = (kiln_llb_user){NULL, 0};
        else if (*parts[i] && *end == '\0' && id >= INT32_MIN && id <= INT32_MAX &&
                 !isspace((unsigned char)*parts[i]))
            *u = (kiln_llb_user){NULL, id};
        else
            *u = (kiln_llb_user){parts[i], -1};
    }
}

/* ------------------------------------------------------------------------------------------ */
/* validation (what instructions.Parse rejects before anything runs) */

static int
no_flags(const kiln_df_node *n, kiln_error **err)
{
    return kiln_df_parse_string_flags(NULL, n, NULL, 0, err);
}

static int
validate_kvps(const kiln_df_node *n, kiln_error **err)
{
    size_t k = 0;

    for (const kiln_df_node *a = n->next; a; a = a->next, k++) {
        if (k % 3 == 0 && a->value[0] == '\0')
            return kiln_error_set(err, KILN_EPARSE, "%s names can not be blank", upper_name(n));
    }
    if (k == 0)
        return kiln_error_set(err, KILN_EPARSE, "%s requires at least one argument", upper_name(n));
    if (k % 3 != 0)
        return kiln_error_set(err, KILN_EPARSE, "Bad input to %s, too many arguments",
                              upper_name(n));
    return no_flags(n, err);
}

static int
validate_onbuild(const kiln_df_node *n, kiln_error **err)
{
    const kiln_df_node *inner =
            n->next && n->next->children.len ? n->next->children.items[0] : NULL;

    if (!inner)
        return kiln_error_set(err, KILN_EPARSE, "ONBUILD requires at least one argument");
    if (strcmp(inner->value, "onbuild") == 0)
        return kiln_error_set(err, KILN_EPARSE,
                              "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    if (strcmp(inner->value, "maintainer") == 0 || strcmp(inner->value, "from") == 0)
        return kiln_error_set(err, KILN_EPARSE, "%s isn't allowed as an ONBUILD trigger",
                              upper_name(inner));
    return no_flags(n, err);
}

typedef struct health {
    bool none;
    kiln_vec test;
    int64_t interval, timeout, start_period, start_interval, retries;
} health;

static int
health_interval(int64_t *out, const char *name, const char *v, kiln_error **err)
{
    *out = 0;
    if (!v || !*v)
        return 0;
    if (df_parse_duration(v, out) < 0)
        return kiln_error_set(err, KILN_EPARSE, "time: invalid duration \"%s\"", v);
    if (*out != 0 && *out < 1000000)
        return kiln_error_set(err, KILN_EPARSE, "Interval \"%s\" cannot be less than 1ms", name);
    return 0;
}

static int
parse_health(health *h, const kiln_df_node *n, kiln_error **err)
{
    static const char *const names[] = {"interval", "timeout", "start-period", "start-interval",
                                        "retries"};
    const char *v[NELEM(names)] = {0};
    int rc;

    memset(h, 0, sizeof(*h));
    if (!n->next)
        return kiln_error_set(err, KILN_EPARSE, "HEALTHCHECK requires at least one argument");
    if (strcasecmp(n->next->value, "NONE") == 0) {
        if (n->next->next)
            return kiln_error_set(err, KILN_EPARSE, "HEALTHCHECK NONE takes no arguments");
        h->none = true;
        kiln_strvec_push(&h->test, "NONE");
        return 0;
    }
    if ((rc = kiln_df_parse_string_flags(v, n, names, NELEM(names), err)) < 0)
        return rc;
    if (strcasecmp(n->next->value, "CMD") != 0) {
        cleanup_free char *t = xstrdup(n->next->value);
        for (char *p = t; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        return kiln_error_set(err, KILN_EPARSE, "Unknown type \"%s\" in HEALTHCHECK (try CMD)", t);
    }
    kiln_strvec_push(&h->test, n->json ? "CMD" : "CMD-SHELL");
    kiln_vec words = KILN_VEC_INIT;
    for (const kiln_df_node *a = n->next->next; a; a = a->next)
        kiln_strvec_push(&words, a->value);
    if (words.len == 0) {
        kiln_strvec_dispose(&h->test);
        return kiln_error_set(err, KILN_EPARSE, "Missing command after HEALTHCHECK CMD");
    }
    if (n->json) {
        for (size_t i = 0; i < words.len; i++)
            kiln_strvec_push(&h->test, words.items[i]);
    } else {
        kiln_vec_push(&h->test, kiln_strvec_join(&words, " "));
    }
    kiln_strvec_dispose(&words);
    if ((rc = health_interval(&h->interval, names[0], v[0], err)) < 0 ||
        (rc = health_interval(&h->timeout, names[1], v[1], err)) < 0 ||
        (rc = health_interval(&h->start_period, names[2], v[2], err)) < 0 ||
        (rc = health_interval(&h->start_interval, names[3], v[3], err)) < 0) {
        kiln_strvec_dispose(&h->test);
        return rc;
    }
    if (v[4] && *v[4]) {
        char *end;
        long long r = strtoll(v[4], &end, 10);
        if (*end || end == v[4] || r > INT32_MAX || r < INT32_MIN) {
            kiln_strvec_dispose(&h->test);
            return kiln_error_set(err, KILN_EPARSE,
                                  "strconv.ParseInt: parsing \"%s\": invalid syntax", v[4]);
        }
        if (r < 0) {
            kiln_strvec_dispose(&h->test);
            return kiln_error_set(err, KILN_EPARSE, "--retries cannot be negative (%lld)", r);
        }
        h->retries = r;
    }
    return 0;
}

static bool
valid_utf8(const char *s, size_t len)
{
    while (len) {
        uint32_t r;
        size_t k = kiln_df__utf8_decode(s, len, &r);
        if (r == DF_RUNE_ERROR && k == 1)
            return false;
        s += k;
        len -= k;
    }
    return true;
}

/* LLB strings are protobuf strings: what reaches them must be UTF-8 without NUL bytes. */
static int
check_text(const kiln_df_node *n, int depth, kiln_error **err)
{
    const char *bad = NULL;

    if (depth > 8)
        return 0;
    if (n->original && !valid_utf8(n->original, strlen(n->original)))
        bad = "invalid UTF-8";
    for (const kiln_df_node *a = n->next; a && !bad; a = a->next) {
        if (a->value && (a->value_len != strlen(a->value)))
            bad = "NUL byte";
        else if (a->value && !valid_utf8(a->value, a->value_len))
            bad = "invalid UTF-8";
        for (size_t i = 0; !bad && i < a->children.len; i++) {
            int rc = check_text(a->children.items[i], depth + 1, err);
            if (rc < 0)
                return rc;
        }
    }
    for (size_t i = 0; !bad && i < n->heredocs.len; i++) {
        const kiln_df_heredoc *h = n->heredocs.items[i];
        if ((h->content && !valid_utf8(h->content, strlen(h->content))) ||
            !valid_utf8(h->name, strlen(h->name)))
            bad = "invalid UTF-8";
    }
    if (bad)
        return kiln_error_set(err, KILN_EPARSE, "%s in %s instruction", bad, upper_name(n));
    return 0;
}

static int
validate_run(const kiln_df_node *n, kiln_error **err)
{
    kiln_df_run r;
    int rc = kiln_df_parse_run(&r, n, err);

    if (rc == 0)
        kiln_df_run_dispose(&r);
    return rc;
}

static int
validate_copy(const kiln_df_node *n, kiln_error **err)
{
    kiln_df_copy cp;
    kiln_df_heredoc *h = NULL;
    int rc = kiln_df_parse_copy(&cp, n, err);

    if (rc < 0)
        return rc;
    rc = kiln_df_parse_heredoc(&h, cp.dest, err);
    if (rc == 0 && h)
        rc = kiln_error_set(err, KILN_EPARSE, "%s cannot accept a heredoc as a destination",
                            upper_name(n));
    kiln_df_heredoc_free(h);
    kiln_df_copy_dispose(&cp);
    return rc;
}

/* MAINTAINER, WORKDIR, USER, STOPSIGNAL (which, as in BuildKit, does not look at flags) */
static int
validate_one_arg(const kiln_df_node *n, kiln_error **err)
{
    if (count_args(n) != 1)
        return kiln_error_set(err, KILN_EPARSE, "%s requires exactly one argument", upper_name(n));
    return strcmp(n->value, "stopsignal") ? no_flags(n, err) : 0;
}

/* EXPOSE, VOLUME, ARG (ARG does not look at flags either) */
static int
validate_some_args(const kiln_df_node *n, kiln_error **err)
{
    bool arg = strcmp(n->value, "arg") == 0;

    if (count_args(n) == 0)
        return kiln_error_set(err, KILN_EPARSE, "%s requires at least one argument", upper_name(n));
    for (const kiln_df_node *a = n->next; a && arg; a = a->next) {
        if (a->value[0] == '=')
            return kiln_error_set(err, KILN_EPARSE, "ARG names can not be blank");
    }
    return arg ? 0 : no_flags(n, err);
}

static int
validate_shell(const kiln_df_node *n, kiln_error **err)
{
    int rc = no_flags(n, err);

    if (rc == 0 && count_args(n) == 0)
        rc = kiln_error_set(err, KILN_EPARSE, "SHELL requires at least one argument");
    else if (rc == 0 && !n->json)
        rc = kiln_error_set(err, KILN_EPARSE, "SHELL requires the arguments to be in JSON form");
    return rc;
}

static int
validate_health(const kiln_df_node *n, kiln_error **err)
{
    health h;
    int rc = parse_health(&h, n, err);

    if (rc == 0)
        kiln_strvec_dispose(&h.test);
    return rc;
}

static const struct {
    const char *name;
    int (*fn)(const kiln_df_node *n, kiln_error **err);
} validators[] = {
        {"run", validate_run},
        {"copy", validate_copy},
        {"add", validate_copy},
        {"env", validate_kvps},
        {"label", validate_kvps},
        {"maintainer", validate_one_arg},
        {"workdir", validate_one_arg},
        {"user", validate_one_arg},
        {"stopsignal", validate_one_arg},
        {"expose", validate_some_args},
        {"volume", validate_some_args},
        {"arg", validate_some_args},
        {"shell", validate_shell},
        {"onbuild", validate_onbuild},
        {"healthcheck", validate_health},
        {"cmd", no_flags},
        {"entrypoint", no_flags},
};

int
df_validate(df_compiler *c, const kiln_df_node *n, kiln_error **err)
{
    int rc = check_text(n, 0, err);

    (void)c;
    for (size_t i = 0; rc == 0 && i < NELEM(validators); i++) {
        if (strcmp(n->value, validators[i].name) == 0)
            return validators[i].fn(n, err);
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* stage sources of a command */

static bool
go_atoi(const char *s, long long *out)
{
    char *end;

    if (!*s || isspace((unsigned char)*s))
        return false;
    *out = strtoll(s, &end, 10);
    return *end == '\0';
}

int
df_command_sources(df_compiler *c, df_cmd *cmd, kiln_error **err)
{
    const kiln_df_node *n = cmd->node;
    int rc;

    if (strcmp(n->value, "copy") == 0) {
        kiln_df_copy cp;
        long long idx;
        if ((rc = kiln_df_parse_copy(&cp, n, err)) < 0)
            return rc;
        if (cp.from && *cp.from) {
            df_stage *s = NULL;
            if (go_atoi(cp.from, &idx)) {
                if (idx < 0 || (size_t)idx >= c->stages.len) {
                    kiln_df_copy_dispose(&cp);
                    return kiln_error_set(err, KILN_EINVAL, "invalid stage index %lld", idx);
                }
                s = c->stages.items[idx];
            } else if (!(s = df_find_stage(c, cp.from))) {
                s = df_add_unregistered(c, cp.from, n, true);
            }
            kiln_vec_push(&cmd->sources, s);
        }
        kiln_df_copy_dispose(&cp);
    } else if (strcmp(n->value, "run") == 0) {
        kiln_df_run r;
        if ((rc = kiln_df_parse_run(&r, n, err)) < 0)
            return rc;
        for (size_t i = 0; i < r.mounts.len; i++) {
            const kiln_df_mount *m = r.mounts.items[i];
            const char *from = m->from && *m->from ? m->from : "scratch";
            df_stage *s = df_find_stage(c, from);
            if (!s)
                s = df_add_unregistered(c, from, n, false);
            kiln_vec_push(&cmd->sources, s);
        }
        kiln_df_run_dispose(&r);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* ENV, LABEL, ARG */

/* Expand the key/value pairs of ENV or LABEL (all with the environment at the start). */
static int
expand_kvps(kiln_vec *out, df_compiler *c, df_stage *s, const kiln_df_node *n, kiln_error **err)
{
    int rc;

    for (const kiln_df_node *k = n->next; k && k->next;
         k = k->next->next ? k->next->next->next : NULL) {
        df_kv *kv = xnew(df_kv);
        kiln_vec_push(out, kv);
        if ((rc = df_expand(&kv->key, c, NULL, k->value, &s->env, err)) < 0 ||
            (rc = df_expand(&kv->value, c, NULL, k->next->value, &s->env, err)) < 0)
            return rc;
    }
    return 0;
}

/* addEnv: replace KEY in place or append. */
static void
image_add_env(kiln_oci_config *img, const char *k, const char *v)
{
    size_t kl = strlen(k);

    for (size_t i = 0; i < img->env.len; i++) {
        char *e = img->env.items[i];
        if (strncmp(e, k, kl) == 0 && (e[kl] == '=' || e[kl] == '\0')) {
            free(e);
            img->env.items[i] = xasprintf("%s=%s", k, v);
            return;
        }
    }
    kiln_vec_push(&img->env, xasprintf("%s=%s", k, v));
}

static int
dispatch_env(df_compiler *c, df_stage *s, const kiln_df_node *n, bool label, kiln_error **err)
{
    kiln_vec kvs = KILN_VEC_INIT;
    kiln_buf msg = KILN_BUF_INIT;
    int rc = expand_kvps(&kvs, c, s, n, err);

    kiln_buf_puts(&msg, label ? "LABEL" : "ENV", NULL);
    for (size_t i = 0; rc == 0 && i < kvs.len; i++) {
        df_kv *kv = kvs.items[i];
        kiln_buf_printf(&msg, NULL, " %s=%s", kv->key, kv->value);
        if (label) {
            if (!s->image.labels)
                s->image.labels = json_object();
            json_object_set_new(s->image.labels, kv->key, json_string(kv->value));
        } else {
            df_env_set(&s->env, kv->key, kv->value);
            image_add_env(&s->image, kv->key, kv->value);
        }
    }
    if (rc == 0)
        rc = df_env_check(&s->env, err);
    if (rc == 0)
        df_history(c, s, kiln_buf_cstr(&msg), false);
    kiln_buf_dispose(&msg);
    kiln_vec_dispose(&kvs, df_kv_free);
    return rc;
}

static const df_kv *
find_kv(const kiln_vec *v, const char *key)
{
    const df_kv *found = NULL;

    for (size_t i = 0; i < v->len; i++) {
        const df_kv *kv = v->items[i];
        if (strcmp(kv->key, key) == 0)
            found = kv;
    }
    return found;
}

static int
dispatch_arg(df_compiler *c, df_stage *s, const kiln_df_node *n, kiln_error **err)
{
    kiln_vec args = KILN_VEC_INIT, commit = KILN_VEC_INIT;
    int rc = 0;

    /* ArgCommand.Expand: keys and defaults, all with the environment at the start */
    for (const kiln_df_node *a = n->next; a && rc == 0; a = a->next) {
        const char *eq = strchr(a->value, '=');
        cleanup_free char *k = eq ? xstrndup(a->value, (size_t)(eq - a->value)) : xstrdup(a->value);
        df_kv *kv = xnew(df_kv);
        kiln_vec_push(&args, kv);
        rc = df_expand(&kv->key, c, NULL, k, &s->env, err);
        if (rc == 0 && eq)
            rc = df_expand(&kv->value, c, NULL, eq + 1, &s->env, err);
    }
    for (size_t i = 0; rc == 0 && i < args.len; i++) {
        const df_kv *arg = args.items[i];
        const df_kv *ba = find_kv(&c->build_args, arg->key);
        const char *value = ba ? ba->value : arg->value;
        if (!value) {
            const df_kv *meta = find_kv(&c->meta_args, arg->key);
            value = meta ? meta->value : NULL;
        }
        if (value && strcmp(arg->key, "BUILDKIT_SBOM_SCAN_CONTEXT") != 0 &&
            strcmp(arg->key, "BUILDKIT_SBOM_SCAN_STAGE") != 0)
            df_env_set(&s->env, arg->key, value);
        kiln_vec_push(&s->build_args, df_kv_new(arg->key, value));
        kiln_vec_push(&commit,
                      arg->value ? xasprintf("%s=%s", arg->key, arg->value) : xstrdup(arg->key));
    }
    if (rc == 0)
        rc = df_env_check(&s->env, err);
    if (rc == 0) {
        cleanup_free char *j = kiln_strvec_join(&commit, " ");
        cleanup_free char *msg = xasprintf("ARG %s", j);
        df_history(c, s, msg, false);
    }
    kiln_strvec_dispose(&commit);
    kiln_vec_dispose(&args, df_kv_free);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* RUN */

static char *
heredoc_summary(const char *doc)
{
    size_t st, en;
    kiln_df__trim_space(doc, strlen(doc), &st, &en);
    const char *nl = memchr(doc + st, '\n', en - st);
    size_t len = nl ? (size_t)(nl - (doc + st)) : en - st;

    if (len && doc[st + len - 1] == '\r' && nl)
        len--;
    return xasprintf("%.*s%s", (int)len, doc + st, nl ? "..." : "");
}

/* runCommandString: "|N K=V ... args" when the stage declared ARGs. */
static char *
run_command_string(const df_stage *s, const kiln_vec *args)
{
    kiln_vec parts = KILN_VEC_INIT;
    char *out;

    if (s->build_args.len)
        kiln_vec_push(&parts, xasprintf("|%zu", s->build_args.len));
    for (size_t i = 0; i < s->build_args.len; i++) {
        const df_kv *kv = s->build_args.items[i];
        const char *v = df_env_get(&s->env, kv->key);
        kiln_vec_push(&parts, xasprintf("%s=%s", kv->key, v ? v : (kv->value ? kv->value : "")));
    }
    for (size_t i = 0; i < args->len; i++)
        kiln_strvec_push(&parts, args->items[i]);
    out = kiln_strvec_join(&parts, " ");
    kiln_strvec_dispose(&parts);
    return out;
}

/* RUN with heredocs, as BuildKit's dispatchRun: a lone `<<EOF` runs the body (a script with a
 * #! line is written to a file and executed), anything else is handed to the shell whole. */
static int
run_heredocs(df_compiler *c, df_stage *s, const kiln_df_node *n, kiln_vec *args, kiln_buf *name,
             kiln_llb_mount *pipe, kiln_llb_state *pipe_state, bool *has_pipe, kiln_error **err)
{
    kiln_df_heredoc *first = n->heredocs.items[0], *h = NULL;
    int rc;

    if (args->len != 1 || n->json)
        return kiln_error_set(err, KILN_EPARSE, "parsing produced an invalid run command");
    if ((rc = kiln_df_parse_heredoc(&h, args->items[0], err)) < 0)
        return rc;
    if (!h) {
        kiln_buf full = KILN_BUF_INIT;
        kiln_buf_puts(&full, args->items[0], NULL);
        for (size_t i = 0; i < n->heredocs.len; i++) {
            const kiln_df_heredoc *d = n->heredocs.items[i];
            kiln_buf_printf(&full, NULL, "\n%s%s", d->content ? d->content : "", d->name);
        }
        free(args->items[0]);
        args->items[0] = kiln_buf_detach(&full);
        return 0;
    }
    kiln_df_heredoc_free(h);
    const char *content = first->content ? first->content : "";
    cleanup_free char *data = first->chomp ? kiln_df_heredoc_chomp(content) : xstrdup(content);
    cleanup_free char *summary = heredoc_summary(content);
    kiln_buf_printf(name, NULL, " (%s)", summary);
    free(args->items[0]);
    if (!kiln_str_eq(s->image.platform.os, "windows") && kiln_str_has_prefix(content, "#!")) {
        kiln_llb_vertex *f;
        cleanup_free char *path = xasprintf("/%s", first->name);
        kiln_llb_file_new(&f, c->b, KILN_LLB_SCRATCH);
        if ((rc = kiln_llb_file_mkfile(f, path, 0755, data, strlen(data), NULL, err)) < 0) {
            args->items[0] = xstrdup("");
            return rc;
        }
        rc = df_vertex_meta(c, s, f, n, "[internal] preparing inline document", NULL, err);
        *pipe_state = kiln_llb_file_state(f);
        *pipe = (kiln_llb_mount){.dest = "/dev/pipes/",
                                 .type = KILN_LLB_MOUNT_BIND,
                                 .source = *pipe_state,
                                 .selector = "/",
                                 .readonly = true};
        *has_pipe = true;
        args->items[0] = kiln_path_join("/dev/pipes/", first->name);
        return rc;
    }
    args->items[0] = steal_pointer(&data);
    return 0;
}

/* The LLB network mode of a RUN: its own --network, else the build's --network (BuildKit's
 * force-network-mode), else the sandbox default. */
static Pb__NetMode
run_network(const df_compiler *c, const kiln_df_run *run)
{
    const char *dflt = c->opts->network;

    if (run->network == KILN_DF_NETWORK_HOST)
        return PB__NET_MODE__HOST;
    if (run->network == KILN_DF_NETWORK_NONE)
        return PB__NET_MODE__NONE;
    if (dflt && strcmp(dflt, "host") == 0)
        return PB__NET_MODE__HOST;
    if (dflt && strcmp(dflt, "none") == 0)
        return PB__NET_MODE__NONE;
    return PB__NET_MODE__UNSET;
}

static int
dispatch_run(df_compiler *c, df_stage *s, const df_cmd *cmd, kiln_error **err)
{
    const kiln_df_node *n = cmd->node;
    kiln_df_run run;
    kiln_vec args = KILN_VEC_INIT, argv = KILN_VEC_INIT;
    kiln_buf code = KILN_BUF_INIT;
    df_run_mounts_out mo = {0};
    kiln_llb_mount pipe = {0};
    kiln_llb_secret_env *senv = NULL;
    kiln_llb_state pipe_state = KILN_LLB_SCRATCH, root;
    bool has_pipe = false;
    cleanup_strv char **env = NULL;
    int rc;

    if ((rc = kiln_df_parse_run(&run, n, err)) < 0)
        return rc;
    cmdline(&args, n);
    cleanup_free char *orig = df_node_code(n);
    kiln_buf_puts(&code, orig, NULL);
    if (n->heredocs.len)
        rc = run_heredocs(c, s, n, &args, &code, &pipe, &pipe_state, &has_pipe, err);
    if (rc == 0 && !n->json)
        with_shell(&argv, &s->image, &args);
    else if (rc == 0)
        argv = args, args = (kiln_vec)KILN_VEC_INIT;
    if (rc == 0)
        rc = df_run_mounts(c, s, cmd, &run, &mo, err);
    if (rc == 0 && has_pipe) {
        mo.mounts = xreallocarray(mo.mounts, mo.n_mounts + 1, sizeof(*mo.mounts));
        mo.mounts[mo.n_mounts++] = pipe;
    }
    if (rc == 0 && mo.secret_env.len) {
        senv = xcalloc(mo.secret_env.len, sizeof(*senv));
        for (size_t i = 0; i < mo.secret_env.len; i++)
            senv[i] = *(kiln_llb_secret_env *)mo.secret_env.items[i];
    }
    if (rc == 0) {
        env = df_env_array(&s->env);
        kiln_vec_push(&argv, NULL);
        kiln_llb_exec_opts eo = {
                .root = s->state,
                .args = (const char *const *)argv.items,
                .env = (const char *const *)env,
                .cwd = s->dir && *s->dir ? s->dir : "/",
                .user = s->user && *s->user ? s->user : NULL,
                .network = run_network(c, &run),
                .security = run.insecure ? PB__SECURITY_MODE__INSECURE : PB__SECURITY_MODE__SANDBOX,
                .mounts = mo.mounts,
                .n_mounts = mo.n_mounts,
                .secret_env = senv,
                .n_secret_env = mo.secret_env.len,
                .proxy_env = c->has_proxy ? &c->proxy : NULL,
        };
        rc = kiln_llb_exec(&root, c->b, &eo, err);
        kiln_vec_pop(&argv);
    }
    if (rc == 0) {
        cleanup_free char *shown = df_cmd_name(c, s, kiln_buf_cstr(&code), true);
        cleanup_free char *name = df_prefix(s, shown);
        rc = df_vertex_meta(c, s, root.vertex, n, name, orig, err);
        s->state = root;
    }
    if (rc == 0) {
        cleanup_free char *rcs = run_command_string(s, &argv);
        cleanup_free char *msg = xasprintf("RUN %s # buildkit", rcs);
        df_history(c, s, msg, true);
    }
    free(senv);
    df_run_mounts_dispose(&mo);
    kiln_strvec_dispose(&args);
    kiln_strvec_dispose(&argv);
    kiln_buf_dispose(&code);
    kiln_df_run_dispose(&run);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* WORKDIR, USER, CMD, ENTRYPOINT, SHELL, MAINTAINER */

static int
dispatch_workdir(df_compiler *c, df_stage *s, const kiln_df_node *n, kiln_error **err)
{
    cleanup_free char *p = NULL, *wd = NULL, *msg = NULL;
    int rc = df_expand(&p, c, NULL, n->next->value, &s->env, err);
    bool layer = false;

    if (rc < 0)
        return rc;
    char *dir =
            kiln_path_is_abs(p) ? xstrdup(p) : kiln_path_join(s->dir && *s->dir ? s->dir : "/", p);
    free(s->dir);
    s->dir = dir;
    if (kiln_path_is_abs(p)) {
        wd = xstrdup(p);
    } else {
        cleanup_free char *base =
                kiln_path_join("/", s->image.working_dir ? s->image.working_dir : "");
        wd = kiln_path_join(base, p);
    }
    free(s->image.working_dir);
    s->image.working_dir = xstrdup(wd);
    if (strcmp(wd, "/") != 0) {
        kiln_llb_vertex *f;
        kiln_llb_file_info info = KILN_LLB_FILE_INFO_INIT;
        cleanup_free char *user = xstrdup(s->image.user);
        if (user && *user)
            df_chown(&info, user);
        kiln_llb_file_new(&f, c->b, s->state);
        if ((rc = kiln_llb_file_mkdir(f, wd, 0755, true, &info, err)) < 0)
            return rc;
        cleanup_free char *code = df_node_code(n);
        cleanup_free char *shown = df_cmd_name(c, s, code, false);
        cleanup_free char *name = df_prefix(s, shown);
        if ((rc = df_vertex_meta(c, s, f, n, name, NULL, err)) < 0)
            return rc;
        s->state = kiln_llb_file_state(f);
        layer = true;
    }
    msg = xasprintf("WORKDIR %s", wd);
    df_history(c, s, msg, layer);
    return 0;
}

static int
dispatch_user(df_compiler *c, df_stage *s, const kiln_df_node *n, kiln_error **err)
{
    cleanup_free char *u = NULL, *msg = NULL;
    int rc = df_expand(&u, c, NULL, n->next->value, &s->env, err);

    if (rc < 0)
        return rc;
    free(s->user);
    s->user = xstrdup(u);
    free(s->image.user);
    s->image.user = xstrdup(u);
    msg = xasprintf("USER %s", u);
    df_history(c, s, msg, false);
    return 0;
}

static void
strv_set(kiln_vec *dst, kiln_vec *src)
{
    kiln_strvec_dispose(dst);
    *dst = *src;
    kiln_vec_init(src);
}

static int
dispatch_cmd(df_compiler *c, df_stage *s, const kiln_df_node *n, bool entrypoint)
{
    kiln_vec args = KILN_VEC_INIT, full = KILN_VEC_INIT;

    cmdline(&args, n);
    if (!n->json)
        with_shell(&full, &s->image, &args);
    else
        full = args, args = (kiln_vec)KILN_VEC_INIT;
    cleanup_free char *q = df_go_quote_strv(&full);
    cleanup_free char *msg = xasprintf("%s %s", entrypoint ? "ENTRYPOINT" : "CMD", q);
    if (entrypoint) {
        s->image.has_entrypoint = full.len > 0;
        strv_set(&s->image.entrypoint, &full);
        if (!s->cmd_set) {
            kiln_strvec_dispose(&s->image.cmd);
            s->image.has_cmd = false;
        }
    } else {
        s->image.has_cmd = full.len > 0;
        strv_set(&s->image.cmd, &full);
        s->image.args_escaped = true;
        s->cmd_set = true;
    }
    df_history(c, s, msg, false);
    kiln_strvec_dispose(&args);
    kiln_strvec_dispose(&full);
    return 0;
}

static int
dispatch_shell(df_compiler *c, df_stage *s, const kiln_df_node *n)
{
    kiln_vec args = KILN_VEC_INIT;

    cmdline(&args, n);
    cleanup_free char *v = df_go_strv(&args);
    cleanup_free char *msg = xasprintf("SHELL %s", v);
    strv_set(&s->image.shell, &args);
    df_history(c, s, msg, false);
    return 0;
}

static int
dispatch_maintainer(df_compiler *c, df_stage *s, const kiln_df_node *n)
{
    cleanup_free char *msg = xasprintf("MAINTAINER %s", n->next->value);

    free(s->image.author);
    s->image.author = xstrdup(n->next->value);
    df_history(c, s, msg, false);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, ONBUILD */

/* Sort a string vector and drop duplicates (sets such as ExposedPorts, Volumes). */
static void
strv_sort_unique(kiln_vec *v)
{
    size_t k = 0;

    kiln_vec_sort(v, kiln_strvec_cmp);
    for (size_t i = 0; i < v->len; i++) {
        if (k && strcmp(v->items[k - 1], v->items[i]) == 0)
            free(v->items[i]);
        else
            v->items[k++] = v->items[i];
    }
    v->len = k;
}

static int
port_number(const char *s, size_t len, unsigned *out)
{
    unsigned v = 0;

    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *out = v;
    return 0;
}

/* nat.ParsePortSpec, container side only: "80", "80/udp", "8000-8010/tcp", "ip:host:80". */
static int
parse_port_spec(kiln_vec *ports, const char *raw, kiln_error **err)
{
    const char *cp = strrchr(raw, ':');
    cleanup_free char *port = xstrdup(cp ? cp + 1 : raw);
    char *slash = strchr(port, '/');
    cleanup_free char *proto = xstrdup(slash && slash[1] ? slash + 1 : "tcp");
    unsigned lo, hi;

    if (slash)
        *slash = '\0';
    for (char *p = proto; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (!*port)
        return kiln_error_set(err, KILN_EINVAL, "no port specified: %s<empty>", raw);
    char *dash = strchr(port, '-');
    if (dash) {
        if (port_number(port, (size_t)(dash - port), &lo) < 0 ||
            port_number(dash + 1, strlen(dash + 1), &hi) < 0 || hi < lo)
            return kiln_error_set(err, KILN_EINVAL, "invalid containerPort: %s", port);
    } else if (port_number(port, strlen(port), &lo) < 0) {
        return kiln_error_set(err, KILN_EINVAL, "invalid containerPort: %s", port);
    } else {
        hi = lo;
    }
    if (strcmp(proto, "tcp") && strcmp(proto, "udp") && strcmp(proto, "sctp"))
        return kiln_error_set(err, KILN_EINVAL, "invalid proto: %s", slash + 1);
    for (unsigned p = lo; p <= hi; p++)
        kiln_vec_push(ports, xasprintf("%u/%s", p, proto));
    return 0;
}

static int
dispatch_expose(df_compiler *c, df_stage *s, const kiln_df_node *n, kiln_error **err)
{
    kiln_vec raw = KILN_VEC_INIT, ports = KILN_VEC_INIT;
    kiln_buf msg = KILN_BUF_INIT;
    int rc = 0;

    for (const kiln_df_node *a = n->next; a; a = a->next)
        kiln_strvec_push(&raw, a->value);
    kiln_vec_sort(&raw, kiln_strvec_cmp);
    for (size_t i = 0; rc == 0 && i < raw.len; i++) {
        kiln_shlex_result r = {0};
        cleanup_free char *probe = NULL;
        /* df_expand bounds the size; the words come from a second, splitting pass */
        rc = df_expand(&probe, c, NULL, raw.items[i], &s->env, err);
        if (rc == 0)
            rc = kiln_shlex_process(&r, &c->lex, raw.items[i], df_env_lookup, &s->env, err);
        if (rc < 0)
            break;
        for (size_t k = 0; rc == 0 && k < r.words.len; k++)
            rc = parse_port_spec(&ports, r.words.items[k], err);
        kiln_shlex_result_dispose(&r);
    }
    if (rc == 0) {
        strv_sort_unique(&ports);
        kiln_buf_puts(&msg, "EXPOSE map[", NULL);
        for (size_t i = 0; i < ports.len; i++) {
            kiln_buf_printf(&msg, NULL, "%s%s:{}", i ? " " : "", (char *)ports.items[i]);
            kiln_strvec_push(&s->image.exposed_ports, ports.items[i]);
        }
        strv_sort_unique(&s->image.exposed_ports);
        kiln_buf_putc(&msg, ']', NULL);
        df_history(c, s, kiln_buf_cstr(&msg), false);
    }
    kiln_buf_dispose(&msg);
    kiln_strvec_dispose(&raw);
    kiln_strvec_dispose(&ports);
    return rc;
}

static int
dispatch_volume(df_compiler *c, df_stage *s, const kiln_df_node *n, kiln_error **err)
{
    kiln_vec vols = KILN_VEC_INIT;
    int rc = 0;

    for (const kiln_df_node *a = n->next; a && rc == 0; a = a->next) {
        char *v = NULL;
        cleanup_free char *t = kiln_df__trim_space_dup(a->value, strlen(a->value));
        if (!*t) {
            rc = kiln_error_set(err, KILN_EINVAL, "VOLUME specified can not be an empty string");
            break;
        }
        if ((rc = df_expand(&v, c, NULL, t, &s->env, err)) < 0)
            break;
        kiln_vec_push(&vols, v);
        if (!*v)
            rc = kiln_error_set(err, KILN_EINVAL, "VOLUME specified can not be an empty string");
    }
    if (rc == 0) {
        cleanup_free char *list = df_go_strv(&vols);
        cleanup_free char *msg = xasprintf("VOLUME %s", list);
        for (size_t i = 0; i < vols.len; i++)
            kiln_strvec_push(&s->image.volumes, vols.items[i]);
        strv_sort_unique(&s->image.volumes);
        df_history(c, s, msg, false);
    }
    kiln_strvec_dispose(&vols);
    return rc;
}

static int
dispatch_stopsignal(df_compiler *c, df_stage *s, const kiln_df_node *n, kiln_error **err)
{
    cleanup_free char *sig = NULL, *msg = NULL;
    int rc = df_expand(&sig, c, NULL, n->next->value, &s->env, err);

    if (rc < 0)
        return rc;
    if (!df_valid_signal(sig))
        return kiln_error_set(err, KILN_EINVAL, "Invalid signal: %s", sig);
    free(s->image.stop_signal);
    s->image.stop_signal = xstrdup(sig);
    msg = xasprintf("STOPSIGNAL %s", sig);
    df_history(c, s, msg, false);
    return 0;
}

static int
dispatch_healthcheck(df_compiler *c, df_stage *s, const kiln_df_node *n, kiln_error **err)
{
    health h;
    int rc = parse_health(&h, n, err);

    if (rc < 0)
        return rc;
    if (s->image.healthcheck)
        kiln_strvec_dispose(&s->image.healthcheck->test);
    else
        s->image.healthcheck = xnew(kiln_oci_healthcheck);
    kiln_oci_healthcheck *hc = s->image.healthcheck;
    hc->test = h.test;
    hc->interval = h.interval;
    hc->timeout = h.timeout;
    hc->start_period = h.start_period;
    hc->start_interval = h.start_interval;
    hc->retries = h.retries;
    /* fmt %q of *HealthConfig: &{[test...] "interval" "timeout" "start" 'retries'} */
    cleanup_free char *t = df_go_quote_strv(&hc->test);
    cleanup_free char *i = df_go_duration(hc->interval);
    cleanup_free char *to = df_go_duration(hc->timeout);
    cleanup_free char *sp = df_go_duration(hc->start_period);
    cleanup_free char *r = df_go_quote_rune(hc->retries);
    cleanup_free char *msg =
            xasprintf("HEALTHCHECK &{%s \"%s\" \"%s\" \"%s\" %s}", t, i, to, sp, r);
    df_history(c, s, msg, false);
    return 0;
}

static int
dispatch_onbuild(df_stage *s, const kiln_df_node *n)
{
    const char *o = n->original ? n->original : "";
    kiln_buf expr = KILN_BUF_INIT;

    /* (?i)^\s*ONBUILD\s* removed */
    o += kiln_df__leading_space(o, strlen(o));
    if (strncasecmp(o, "onbuild", 7) == 0)
        o += 7;
    o += kiln_df__leading_space(o, strlen(o));
    kiln_buf_puts(&expr, o, NULL);
    const kiln_df_node *inner =
            n->next && n->next->children.len ? n->next->children.items[0] : NULL;
    for (size_t i = 0; inner && i < inner->heredocs.len; i++) {
        const kiln_df_heredoc *h = inner->heredocs.items[i];
        kiln_buf_printf(&expr, NULL, "\n%s%s", h->content ? h->content : "", h->name);
    }
    kiln_vec_push(&s->image.on_build, kiln_buf_detach(&expr));
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* dispatch */

int
df_dispatch(df_compiler *c, df_stage *s, const df_cmd *cmd, kiln_error **err)
{
    const kiln_df_node *n = cmd->node;
    const char *v = n->value;

    c->cur = n;
    if (!strcmp(v, "env"))
        return dispatch_env(c, s, n, false, err);
    if (!strcmp(v, "label"))
        return dispatch_env(c, s, n, true, err);
    if (!strcmp(v, "arg"))
        return dispatch_arg(c, s, n, err);
    if (!strcmp(v, "run"))
        return dispatch_run(c, s, cmd, err);
    if (!strcmp(v, "copy") || !strcmp(v, "add"))
        return df_dispatch_copy(c, s, cmd, err);
    if (!strcmp(v, "workdir"))
        return dispatch_workdir(c, s, n, err);
    if (!strcmp(v, "user"))
        return dispatch_user(c, s, n, err);
    if (!strcmp(v, "cmd") || !strcmp(v, "entrypoint"))
        return dispatch_cmd(c, s, n, v[0] == 'e');
    if (!strcmp(v, "shell"))
        return dispatch_shell(c, s, n);
    if (!strcmp(v, "maintainer"))
        return dispatch_maintainer(c, s, n);
    if (!strcmp(v, "expose"))
        return dispatch_expose(c, s, n, err);
    if (!strcmp(v, "volume"))
        return dispatch_volume(c, s, n, err);
    if (!strcmp(v, "stopsignal"))
        return dispatch_stopsignal(c, s, n, err);
    if (!strcmp(v, "healthcheck"))
        return dispatch_healthcheck(c, s, n, err);
    if (!strcmp(v, "onbuild"))
        return dispatch_onbuild(s, n);
    return 0;
}

int
df_dispatch_onbuild_triggers(df_compiler *c, df_stage *s, kiln_error **err)
{
    kiln_vec triggers = s->image.on_build;
    int rc = 0;

    kiln_vec_init(&s->image.on_build);
    for (size_t i = 0; rc == 0 && i < triggers.len; i++) {
        const char *t = triggers.items[i];
        kiln_df_result *ast = NULL;
        df_cmd cmd = {0};
        rc = kiln_df_parse(&ast, t, strlen(t), c->filename, err);
        if (rc == 0 && ast->ast->children.len != 1)
            rc = kiln_error_set(err, KILN_EPARSE, "onbuild trigger should be a single expression");
        if (rc == 0) {
            cmd.node = ast->ast->children.items[0];
            if ((rc = kiln_df_check_keyword(cmd.node, err)) == 0 &&
                (rc = df_validate(c, cmd.node, err)) == 0)
                rc = df_command_sources(c, &cmd, err);
        }
        for (size_t k = 0; rc == 0 && k < cmd.sources.len; k++)
            rc = df_ensure_stage(c, cmd.sources.items[k], err);
        if (rc == 0)
            rc = df_dispatch(c, s, &cmd, err);
        kiln_vec_dispose(&cmd.sources, NULL);
        kiln_df_result_free(ast);
    }
    kiln_strvec_dispose(&triggers);
    if (rc < 0)
        kiln_error_set_location(err, c->filename, s->from ? s->from->start_line : 0, 0);
    return rc;
}
