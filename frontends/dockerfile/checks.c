/*
 * checks.c: build checks, BuildKit's Dockerfile linter (frontend/dockerfile/linter and the rule
 * calls spread over instructions/parse.go and dockerfile2llb), over kiln's AST.
 *
 * The linter replays what BuildKit does while it parses and dispatches a Dockerfile, without
 * building anything, in the same passes so that findings come out in BuildKit's order:
 *
 *   1. parser warnings (NoEmptyContinuation);
 *   2. per instruction, what BuildKit checks while typing instructions (StageNameCasing,
 *      FromAsCasing, MaintainerDeprecated);
 *   3. whole-file rules (DuplicateStageName, ReservedStageName, ConsistentInstructionCasing,
 *      InvalidDefaultArgInFrom);
 *   4. per FROM, the expansion of the base name and --platform in the global scope
 *      (UndefinedArgInFrom, RedundantTargetPlatform, FromPlatformFlagConstDisallowed);
 *   5. per stage, a dispatch that tracks variables the way BuildKit's LLB state does (the base
 *      image's Env plus a default PATH, ENV, ARG values, a base stage's state) and expands the
 *      words BuildKit expands, reporting UndefinedVar and the dispatch-time rules.
 *
 * Every stage is linted, as `docker build --check` does (no target). Findings are sorted by line
 * (stably). Rule selection: the file's `# check=` directive, or instead the build arg
 * BUILDKIT_DOCKERFILE_CHECK with the same syntax (BuildKit's override); KILN_DF_CHECK_SKIP turns
 * every rule off and KILN_DF_CHECK_ERROR makes findings errors (the skips still apply). A
 * `# check=` comment right above an instruction adds skips for the rules that instruction
 * triggers (BuildKit merges those in; error=true there has no effect).
 *
 * Two deliberate departures, both to avoid false findings: when the Env of a base image is not
 * known (no callback, or it returns NULL) UndefinedVar is not reported in that stage and in the
 * stages built on it; and instructions BuildKit would reject (unknown keyword, bad FROM) are
 * skipped instead of ending the lint, since the compiler reports those errors itself.
 */
#include <strings.h>

#include "frontends/dockerfile/checks.h"

#include "base/base.h"
#include "frontends/dockerfile/df_internal.h"
#include "frontends/dockerfile/instructions.h"
#include "frontends/dockerfile/shell.h"
#include "oci/oci.h"

enum rule {
    R_STAGE_NAME_CASING,
    R_FROM_AS_CASING,
    R_NO_EMPTY_CONTINUATION,
    R_CONSISTENT_CASING,
    R_DUPLICATE_STAGE_NAME,
    R_RESERVED_STAGE_NAME,
    R_JSON_ARGS,
    R_MAINTAINER,
    R_UNDEFINED_ARG_IN_FROM,
    R_WORKDIR_RELATIVE,
    R_UNDEFINED_VAR,
    R_MULTIPLE_INSTRUCTIONS,
    R_LEGACY_KEY_VALUE,
    R_INVALID_DEFAULT_ARG,
    R_PLATFORM_CONST,
    R_REDUNDANT_TARGET_PLATFORM,
    R_SECRETS,
    R__COUNT,
};

static const char *const rule_names[R__COUNT + 1] = {
        "StageNameCasing",
        "FromAsCasing",
        "NoEmptyContinuation",
        "ConsistentInstructionCasing",
        "DuplicateStageName",
        "ReservedStageName",
        "JSONArgsRecommended",
        "MaintainerDeprecated",
        "UndefinedArgInFrom",
        "WorkdirRelativePath",
        "UndefinedVar",
        "MultipleInstructionsDisallowed",
        "LegacyKeyValueFormat",
        "InvalidDefaultArgInFrom",
        "FromPlatformFlagConstDisallowed",
        "RedundantTargetPlatform",
        "SecretsUsedInArgOrEnv",
        NULL,
};

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Suggestions are computed for names up to this many runes (BuildKit has no limit; longer
 * variable names are not realistic, and the distance is quadratic). */
#define SUGGEST_MAX_RUNES 256

/* ------------------------------------------------------------------------------------------ */
/* variable environments */

/* An environment in definition order (the order suggestions are searched in). */
typedef struct df_env {
    kiln_vec keys;   /* char *, owned */
    kiln_map values; /* key -> char *, owned */
} df_env;

static void
env_init(df_env *e)
{
    kiln_vec_init(&e->keys);
    kiln_map_init(&e->values);
}

static void
env_dispose(df_env *e)
{
    kiln_strvec_dispose(&e->keys);
    kiln_map_dispose(&e->values, free);
}

static const char *
env_get(const df_env *e, const char *key)
{
    return kiln_map_get(&e->values, key);
}

static void
env_set(df_env *e, const char *key, const char *value)
{
    char *old = kiln_map_put(&e->values, key, xstrdup(value));

    if (old)
        free(old);
    else
        kiln_strvec_push(&e->keys, key);
}

/* Add "K=V" strings (a string without '=' sets K to ""), as BuildKit reads an image's Env. */
static void
env_set_kv(df_env *e, const char *kv)
{
    const char *eq = strchr(kv, '=');
    cleanup_free char *key = eq ? xstrndup(kv, (size_t)(eq - kv)) : xstrdup(kv);

    env_set(e, key, eq ? eq + 1 : "");
}

static void
env_copy(df_env *dst, const df_env *src)
{
    const char *key;

    kiln_vec_foreach(&src->keys, i, key)
        env_set(dst, key, env_get(src, key));
}

static bool
env_lookup(const char *name, const char **value, void *payload)
{
    const char *v = env_get(payload, name);

    if (!v)
        return false;
    *value = v;
    return true;
}

static bool
strvec_has(const kiln_vec *v, const char *s)
{
    const char *item;

    kiln_vec_foreach(v, i, item) {
        if (strcmp(item, s) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* suggestions (BuildKit's util/suggest: Levenshtein distance below 3, first best wins) */

static size_t
to_runes(uint32_t *out, const char *s)
{
    size_t n = 0, len = strlen(s);

    for (size_t i = 0; i < len && n <= SUGGEST_MAX_RUNES;) {
        i += kiln_df__utf8_decode(s + i, len - i, &out[n]);
        n++;
    }
    return n;
}

static size_t
levenshtein(const uint32_t *a, size_t la, const uint32_t *b, size_t lb)
{
    size_t row[SUGGEST_MAX_RUNES + 2];

    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* The closest option to `val` (borrowed from options), or NULL when none is close or when
 * `val` is itself an option. Case-sensitive, as BuildKit on Linux. */
static const char *
suggest(const char *val, const kiln_vec *options)
{
    uint32_t a[SUGGEST_MAX_RUNES + 1], b[SUGGEST_MAX_RUNES + 1];
    size_t la = to_runes(a, val), mindist = 3;
    const char *opt, *match = NULL;

    kiln_vec_foreach(options, i, opt) {
        if (strcmp(opt, val) == 0)
            return NULL;
        size_t lb = to_runes(b, opt);
        if (la > SUGGEST_MAX_RUNES || lb > SUGGEST_MAX_RUNES)
            continue;
        if ((la > lb ? la - lb : lb - la) >= mindist)
            continue;
        size_t d = levenshtein(a, la, b, lb);
        if (d < mindist) {
            match = opt;
            mindist = d;
        }
    }
    return match;
}

/* " (did you mean <prefix><match>?)" or ""; owned by the caller. */
static char *
suggest_suffix(const char *val, const kiln_vec *options, const char *prefix)
{
    const char *m = suggest(val, options);

    return m ? xasprintf(" (did you mean %s%s?)", prefix, m) : xstrdup("");
}

/* ------------------------------------------------------------------------------------------ */
/* findings and rule selection */

typedef struct finding {
    int line;
    char *text; /* "Dockerfile:LINE: Rule: message" */
} finding;

static void
finding_free(void *p)
{
    finding *f = p;

    free(f->text);
    free(f);
}

static int
finding_cmp(const void *a, const void *b)
{
    const finding *fa = a, *fb = b;

    return (fa->line > fb->line) - (fa->line < fb->line);
}

typedef enum base_kind {
    BASE_UNKNOWN, /* the FROM did not parse */
    BASE_SCRATCH,
    BASE_IMAGE,
    BASE_STAGE,
} base_kind;

/* One build stage: its FROM, its instructions, and the state its dispatch tracks. */
typedef struct stage {
    const kiln_df_node *from;
    kiln_vec cmds; /* const kiln_df_node *, borrowed from the AST */
    char *name;    /* lowercased AS name, or NULL */
    base_kind base;
    size_t base_stage; /* with BASE_STAGE */
    df_env env;        /* what BuildKit's LLB state holds: image Env, PATH, ENV, ARG values */
    kiln_vec args;     /* char *: ARG names declared so far (inherited from a base stage) */
    bool env_known;    /* false when the base image's Env was not given */
    bool workdir_set, shell_set;
    int cmd_line, entrypoint_line, healthcheck_line; /* 0 = not seen in this stage */
} stage;

static void
stage_free(void *p)
{
    stage *s = p;

    kiln_vec_dispose(&s->cmds, NULL);
    free(s->name);
    env_dispose(&s->env);
    kiln_strvec_dispose(&s->args);
    free(s);
}

typedef struct linter {
    const kiln_df_lint_opts *opts;
    const kiln_df_result *ast;
    const char *file;
    kiln_shlex lex;
    kiln_df_check_config cfg; /* the file's directive (or the caller's override) */
    kiln_vec findings;        /* finding * */
    kiln_vec meta_args;       /* const kiln_df_node *: ARGs before the first FROM */
    kiln_vec stages;          /* stage * */
    df_env globals;           /* predefined args and meta ARGs, with the build args */
    kiln_vec meta_keys;       /* char *: every meta ARG name and every global name */
} linter;

static bool
skipped(const kiln_df_check_config *c, const char *rule)
{
    const char *s;

    if (!c)
        return false;
    if (c->skip_all)
        return true;
    kiln_vec_foreach(&c->skip, i, s) {
        if (strcmp(s, rule) == 0)
            return true;
    }
    return false;
}

/* Record a finding unless the file's or the instruction's (`local`, may be NULL) config skips
 * the rule. */
static void report(linter *l, const kiln_df_check_config *local, enum rule r, int line,
                   const char *fmt, ...) KILN_PRINTF(5, 6);

static void
report(linter *l, const kiln_df_check_config *local, enum rule r, int line, const char *fmt, ...)
{
    cleanup_free char *msg = NULL;
    finding *f;
    va_list ap;

    if (skipped(&l->cfg, rule_names[r]) || skipped(local, rule_names[r]))
        return;
    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    f = xnew(finding);
    f->line = line;
    f->text = xasprintf("%s:%d: %s: %s", l->file, line, rule_names[r], msg);
    kiln_vec_push(&l->findings, f);
}

/* The value the caller passes for build arg `key` (the last one wins; "K" alone is ""). */
static bool
build_arg(const linter *l, const char *key, const char **value)
{
    size_t klen = strlen(key);
    bool found = false;

    for (const char *const *p = l->opts->build_args; p && *p; p++) {
        const char *eq = strchr(*p, '=');
        size_t n = eq ? (size_t)(eq - *p) : strlen(*p);
        if (n == klen && memcmp(*p, key, n) == 0) {
            *value = eq ? eq + 1 : "";
            found = true;
        }
    }
    return found;
}

/* The keyword as written (BuildKit keeps its case; kiln's AST lowercases it). Owned. */
static char *
keyword_as_written(const kiln_df_node *n)
{
    const char *s = n->original ? n->original : n->value;
    size_t start = kiln_df__leading_space(s, strlen(s)), end = start;

    while (s[end] && !kiln_df__is_space_byte((unsigned char)s[end]))
        end++;
    return xstrndup(s + start, end - start);
}

static char *
go_quote(const char *s)
{
    return kiln_str_go_quote(s, strlen(s));
}

/* ------------------------------------------------------------------------------------------ */
/* instruction-level `# check=` comments (BuildKit's WithMergedConfigFromComments) */

/*
 * The first comment above `n` that reads as a `check=` directive (`^name\s*=\s*value`, name
 * case-insensitive), its value cut at the first space ("skip=X // why" -> "skip=X"). Returns true
 * and fills *out when such a comment parses; a malformed one is ignored, as BuildKit does.
 */
static bool
local_config(kiln_df_check_config *out, const kiln_df_node *n)
{
    const char *c;

    kiln_vec_foreach(&n->comments, i, c) {
        size_t p = kiln_df__leading_space(c, strlen(c)), name = p;
        kiln_error *tmp = NULL;

        if (!((c[p] >= 'a' && c[p] <= 'z') || (c[p] >= 'A' && c[p] <= 'Z')))
            continue;
        while ((c[p] >= 'a' && c[p] <= 'z') || (c[p] >= 'A' && c[p] <= 'Z') ||
               (c[p] >= '0' && c[p] <= '9'))
            p++;
        size_t name_len = p - name;
        while (kiln_df__is_re_ws(c[p]))
            p++;
        if (c[p] != '=')
            continue;
        p++;
        p += kiln_df__leading_space(c + p, strlen(c + p));
        if (c[p] == '\0')
            continue;
        if (name_len != 5 || strncasecmp(c + name, "check", 5) != 0)
            continue;
        cleanup_free char *value = xstrndup(c + p, strcspn(c + p, " "));
        if (kiln_df_parse_check_directive(out, value, &tmp) < 0) {
            kiln_error_free(&tmp);
            return false;
        }
        return true;
    }
    return false;
}

/* One instruction being linted, with the rule selection its comments add. */
typedef struct insn {
    linter *l;
    stage *st;
    const kiln_df_node *n;
    const kiln_df_check_config *local; /* NULL or &cfg */
    kiln_df_check_config cfg;
    char *kw; /* keyword as written */
} insn;

static void
insn_init(insn *in, linter *l, stage *st, const kiln_df_node *n)
{
    memset(in, 0, sizeof(*in));
    in->l = l;
    in->st = st;
    in->n = n;
    in->local = local_config(&in->cfg, n) ? &in->cfg : NULL;
    in->kw = keyword_as_written(n);
}

static void
insn_dispose(insn *in)
{
    if (in->local)
        kiln_df_check_config_dispose(&in->cfg);
    free(in->kw);
}

/* ------------------------------------------------------------------------------------------ */
/* pass 1-3: parser warnings, typed-instruction rules, whole-file rules */

static void
lint_parser_warnings(linter *l)
{
    const kiln_df_warning *w;

    kiln_vec_foreach(&l->ast->warnings, i, w)
        report(l, NULL, R_NO_EMPTY_CONTINUATION, w->line, "Empty continuation line");
}

/* 1 all lower case, 2 all upper case, 3 no letters (both), 0 mixed. */
static int
casing(const char *s)
{
    bool lower = true, upper = true;

    for (; *s; s++) {
        if (*s >= 'A' && *s <= 'Z')
            lower = false;
        if (*s >= 'a' && *s <= 'z')
            upper = false;
    }
    return lower && upper ? 3 : lower ? 1 : upper ? 2 : 0;
}

/* StageNameCasing and FromAsCasing, on the FROM arguments as written. */
static void
lint_from_casing(const insn *in)
{
    const kiln_df_node *a = in->n->next;
    const char *args[3] = {NULL, NULL, NULL};
    size_t n = 0;

    for (; a; a = a->next, n++) {
        if (n < 3)
            args[n] = a->value;
    }
    if (n == 3) {
        cleanup_free char *lower = xstrdup(args[2]);
        for (char *p = lower; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        if (strcmp(lower, args[2]) != 0)
            report(in->l, in->local, R_STAGE_NAME_CASING, in->n->start_line,
                   "Stage name '%s' should be lowercase", args[2]);
    }
    if (n < 3)
        return;
    /* an inconsistently cased FROM is ConsistentInstructionCasing's business */
    int from_case = casing(in->kw), as_case = casing(args[1]);
    if (from_case != 0 && (as_case == 0 || (as_case != 3 && as_case != from_case)))
        report(in->l, in->local, R_FROM_AS_CASING, in->n->start_line,
               "'%s' and '%s' keywords' casing do not match", args[1], in->kw);
}

static void
lint_typed_rules(linter *l)
{
    stage *st;
    const kiln_df_node *c;

    kiln_vec_foreach(&l->stages, i, st) {
        insn in;
        insn_init(&in, l, st, st->from);
        lint_from_casing(&in);
        insn_dispose(&in);
        kiln_vec_foreach(&st->cmds, j, c) {
            if (strcmp(c->value, "maintainer") != 0)
                continue;
            insn_init(&in, l, st, c);
            report(l, in.local, R_MAINTAINER, c->start_line,
                   "Maintainer instruction is deprecated in favor of using label");
            insn_dispose(&in);
        }
    }
}

static void
lint_stage_names(linter *l)
{
    kiln_vec seen = KILN_VEC_INIT;
    stage *st;

    kiln_vec_foreach(&l->stages, i, st) {
        if (!st->name)
            continue;
        cleanup_free char *q = go_quote(st->name);
        if (strcmp(st->name, "context") == 0 || strcmp(st->name, "scratch") == 0)
            report(l, NULL, R_RESERVED_STAGE_NAME, st->from->start_line,
                   "Stage name should not use the same name as reserved stage %s", q);
        if (strvec_has(&seen, st->name))
            report(l, NULL, R_DUPLICATE_STAGE_NAME, st->from->start_line,
                   "Duplicate stage name %s, stage names should be unique", q);
        kiln_strvec_push(&seen, st->name);
    }
    kiln_strvec_dispose(&seen);
}

static void
check_case(linter *l, const kiln_df_node *n, bool majority_lower)
{
    cleanup_free char *kw = keyword_as_written(n);
    int c = casing(kw);

    if (majority_lower && c != 1 && c != 3)
        report(l, NULL, R_CONSISTENT_CASING, n->start_line,
               "Command '%s' should match the case of the command majority (lowercase)", kw);
    else if (!majority_lower && c != 2 && c != 3)
        report(l, NULL, R_CONSISTENT_CASING, n->start_line,
               "Command '%s' should match the case of the command majority (uppercase)", kw);
}

/* ConsistentInstructionCasing over the instructions of the stages (not the meta ARGs). */
static void
lint_casing(linter *l)
{
    size_t lower = 0, upper = 0;
    const kiln_df_node *c;
    stage *st;

    kiln_vec_foreach(&l->stages, i, st) {
        for (size_t j = 0; j <= st->cmds.len; j++) {
            const kiln_df_node *n = j == 0 ? st->from : st->cmds.items[j - 1];
            cleanup_free char *kw = keyword_as_written(n);
            int k = casing(kw);
            lower += k == 1 || k == 3;
            upper += k == 2;
        }
    }
    kiln_vec_foreach(&l->stages, i, st) {
        check_case(l, st->from, lower > upper);
        kiln_vec_foreach(&st->cmds, j, c)
            check_case(l, c, lower > upper);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the global scope: predefined args and meta ARGs (BuildKit's defaultArgs + buildMetaArgs) */

static void
predefined_args(linter *l, df_env *env)
{
    kiln_oci_platform host;
    cleanup_free char *plat = NULL;
    const char *target = "default";

    kiln_oci_platform_host(&host);
    plat = kiln_oci_platform_string(&host);
    if (l->stages.len > 0) {
        stage *last = l->stages.items[l->stages.len - 1];
        if (last->name)
            target = last->name;
    }
    const char *const defs[][2] = {
            {"BUILDPLATFORM", plat},
            {"BUILDOS", host.os},
            {"BUILDOSVERSION", ""},
            {"BUILDARCH", host.architecture},
            {"BUILDVARIANT", host.variant ? host.variant : ""},
            {"TARGETPLATFORM", plat},
            {"TARGETOS", host.os},
            {"TARGETOSVERSION", ""},
            {"TARGETARCH", host.architecture},
            {"TARGETVARIANT", host.variant ? host.variant : ""},
            {"TARGETSTAGE", target},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        const char *v = defs[i][1];
        build_arg(l, defs[i][0], &v);
        env_set(env, defs[i][0], v);
    }
    kiln_oci_platform_dispose(&host);
}

/* Split an ARG word into name and optional default ("K" or "K=V"). False for "=V". */
static bool
split_arg(const char *word, char **key, const char **value)
{
    const char *eq = strchr(word, '=');

    if (eq == word)
        return false;
    *key = eq ? xstrndup(word, (size_t)(eq - word)) : xstrdup(word);
    *value = eq ? eq + 1 : NULL;
    return true;
}

/*
 * Evaluate the meta ARGs into `env` (which holds the predefined args): a build arg wins over the
 * default when `with_build_args`; defaults are expanded in the scope built so far.
 * @return 0, or -1 when a default does not expand (BuildKit fails the build there)
 */
static int
eval_meta_args(linter *l, df_env *env, bool with_build_args)
{
    const kiln_df_node *n;

    kiln_vec_foreach(&l->meta_args, i, n) {
        for (const kiln_df_node *a = n->next; a; a = a->next) {
            cleanup_free char *key = NULL;
            const char *def, *bv;
            kiln_shlex_result res;

            if (!split_arg(a->value, &key, &def))
                continue;
            if (with_build_args && build_arg(l, key, &bv)) {
                env_set(env, key, bv);
            } else if (def) {
                if (kiln_shlex_process(&res, &l->lex, def, env_lookup, env, NULL) < 0)
                    return -1;
                env_set(env, key, res.word);
                kiln_shlex_result_dispose(&res);
            }
        }
    }
    return 0;
}

static void
collect_meta_keys(linter *l)
{
    const kiln_df_node *n;
    const char *k;

    kiln_vec_foreach(&l->meta_args, i, n) {
        for (const kiln_df_node *a = n->next; a; a = a->next) {
            cleanup_free char *key = NULL;
            const char *def;
            if (split_arg(a->value, &key, &def) && !strvec_has(&l->meta_keys, key))
                kiln_strvec_push(&l->meta_keys, key);
        }
    }
    kiln_vec_foreach(&l->globals.keys, i, k) {
        if (!strvec_has(&l->meta_keys, k))
            kiln_strvec_push(&l->meta_keys, k);
    }
    kiln_vec_sort(&l->meta_keys, kiln_strvec_cmp);
}

/* InvalidDefaultArgInFrom: every base name must still be a valid reference when the meta ARGs
 * keep their defaults (no build args). */
static void
lint_default_args(linter *l)
{
    df_env env;
    stage *st;

    env_init(&env);
    predefined_args(l, &env);
    if (eval_meta_args(l, &env, false) < 0)
        goto out;
    kiln_vec_foreach(&l->stages, i, st) {
        kiln_df_from f;
        kiln_shlex_result res;
        kiln_oci_ref ref;
        int rc;

        if (kiln_df_parse_from(&f, st->from, NULL) < 0)
            continue;
        rc = kiln_shlex_process(&res, &l->lex, f.image, env_lookup, &env, NULL);
        if (rc == 0 && kiln_oci_ref_parse(&ref, res.word, NULL) < 0)
            report(l, NULL, R_INVALID_DEFAULT_ARG, st->from->start_line,
                   "Default value for ARG %s results in empty or invalid base image name", f.image);
        else if (rc == 0)
            kiln_oci_ref_dispose(&ref);
        if (rc == 0)
            kiln_shlex_result_dispose(&res);
        kiln_df_from_dispose(&f);
        if (rc < 0)
            break; /* BuildKit abandons the rule at the first expansion error */
    }
out:
    env_dispose(&env);
}

/* ------------------------------------------------------------------------------------------ */
/* pass 4: FROM in the global scope */

static void
report_undeclared_from(const insn *in, const kiln_vec *unset)
{
    const char *name;

    kiln_vec_foreach(unset, i, name) {
        if (strvec_has(&in->l->meta_keys, name))
            continue;
        cleanup_free char *sfx = suggest_suffix(name, &in->l->meta_keys, "");
        report(in->l, in->local, R_UNDEFINED_ARG_IN_FROM, in->n->start_line,
               "FROM argument '%s' is not declared%s", name, sfx);
    }
}

static void
lint_from_platform(const insn *in, const char *platform)
{
    linter *l = in->l;
    kiln_shlex_result res;
    kiln_oci_platform p;

    if (kiln_shlex_process(&res, &l->lex, platform, env_lookup, &l->globals, NULL) < 0)
        return;
    report_undeclared_from(in, &res.unset);
    if (res.matched.len == 1 && res.unset.len == 0 &&
        strcmp(res.matched.items[0], "TARGETPLATFORM") == 0 &&
        kiln_str_eq(res.word, env_get(&l->globals, "TARGETPLATFORM")))
        report(l, in->local, R_REDUNDANT_TARGET_PLATFORM, in->n->start_line,
               "Setting platform to predefined %s in FROM is redundant as this is the default "
               "behavior",
               platform);
    if (res.matched.len == 0 && res.unset.len == 0 &&
        kiln_oci_platform_parse(&p, res.word, NULL) == 0) {
        const char *name = in->st->name ? in->st->name : "";
        if (!strstr(name, p.os) && !strstr(name, p.architecture)) {
            cleanup_free char *q = go_quote(res.word);
            report(l, in->local, R_PLATFORM_CONST, in->n->start_line,
                   "FROM --platform flag should not use constant value %s", q);
        }
        kiln_oci_platform_dispose(&p);
    }
    kiln_shlex_result_dispose(&res);
}

/* Expand a FROM's base name and platform in the global scope and find what the stage is built
 * on: an earlier stage (by exact name, as BuildKit), scratch, or an image. */
static void
lint_from(linter *l, size_t idx)
{
    stage *st = l->stages.items[idx];
    kiln_shlex_result res;
    kiln_df_from f;
    insn in;

    if (kiln_df_parse_from(&f, st->from, NULL) < 0)
        return;
    insn_init(&in, l, st, st->from);
    if (kiln_shlex_process(&res, &l->lex, f.image, env_lookup, &l->globals, NULL) == 0) {
        report_undeclared_from(&in, &res.unset);
        st->base = strcmp(res.word, "scratch") == 0 ? BASE_SCRATCH : BASE_IMAGE;
        for (size_t j = idx; j-- > 0;) {
            stage *prev = l->stages.items[j];
            if (kiln_str_eq(prev->name, res.word)) {
                st->base = BASE_STAGE;
                st->base_stage = j;
                break;
            }
        }
        kiln_shlex_result_dispose(&res);
    }
    if (f.platform)
        lint_from_platform(&in, f.platform);
    insn_dispose(&in);
    kiln_df_from_dispose(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* pass 5: dispatch, variable tracking and UndefinedVar */

/* BuildKit keeps these build args out of the environment and never reports them. */
static bool
non_env_arg(const char *name)
{
    return strcmp(name, "BUILDKIT_SBOM_SCAN_CONTEXT") == 0 ||
           strcmp(name, "BUILDKIT_SBOM_SCAN_STAGE") == 0;
}

/*
 * Expand one word of `in` in its stage's environment, as BuildKit's dispatch does, reporting
 * the variables it references that are neither set nor declared by an ARG of the stage.
 * @param out  the expansion (owned by the caller), or NULL
 * @return 0, or -1 when the word does not expand
 */
static int
expand_word(const insn *in, const kiln_shlex *lex, const char *word, char **out)
{
    stage *st = in->st;
    kiln_shlex_result res;
    const char *name;

    if (kiln_shlex_process(&res, lex, word, env_lookup, &st->env, NULL) < 0)
        return -1;
    kiln_vec_foreach(&res.unset, i, name) {
        if (!st->env_known || strvec_has(&st->args, name) || non_env_arg(name))
            continue;
        cleanup_free char *sfx = suggest_suffix(name, &st->env.keys, "$");
        report(in->l, in->local, R_UNDEFINED_VAR, in->n->start_line,
               "Usage of undefined variable '$%s'%s", name, sfx);
    }
    if (out)
        *out = steal_pointer(&res.word);
    kiln_shlex_result_dispose(&res);
    return 0;
}

/* SecretsUsedInArgOrEnv: a '_'-separated part of the name is a secret word, and none is one of
 * the words that make it harmless ("PUBLIC_KEY", "PASSWORD_FILE"). */
static void
check_secret(const insn *in, const char *instruction, const char *key)
{
    static const char *const deny[] = {"apikey",   "auth",  "credential", "credentials", "key",
                                       "password", "pword", "passwd",     "secret",      "token"};
    static const char *const allow[] = {"public", "file", "version"};
    bool denied = false, allowed = false;

    for (const char *p = key;; p++) {
        size_t n = strcspn(p, "_");
        for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++)
            denied |= strlen(deny[i]) == n && strncasecmp(p, deny[i], n) == 0;
        for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++)
            allowed |= strlen(allow[i]) == n && strncasecmp(p, allow[i], n) == 0;
        p += n;
        if (*p == '\0')
            break;
    }
    if (denied && !allowed) {
        cleanup_free char *q = go_quote(key);
        report(in->l, in->local, R_SECRETS, in->n->start_line,
               "Do not use ARG or ENV instructions for sensitive data (%s %s)", instruction, q);
    }
}

static void
lint_arg(insn *in)
{
    linter *l = in->l;
    stage *st = in->st;

    for (const kiln_df_node *a = in->n->next; a; a = a->next) {
        cleanup_free char *key = NULL;
        cleanup_free char *expanded = NULL;
        const char *def, *value = NULL;

        if (!split_arg(a->value, &key, &def))
            continue;
        check_secret(in, "ARG", key);
        /* a build arg wins; else the default, expanded; else the global value of that name */
        if (!build_arg(l, key, &value)) {
            if (def && expand_word(in, &l->lex, def, &expanded) == 0)
                value = expanded;
            else if (!def)
                value = env_get(&l->globals, key);
        }
        if (value && !non_env_arg(key))
            env_set(&st->env, key, value);
        kiln_strvec_push(&st->args, key);
    }
}

/* ENV and LABEL: triplets of key, value and "=" (empty in the legacy `K V` form). Every pair is
 * expanded before any is applied, so `ENV A=1 B=$A` reads the old A, as in BuildKit. */
static void
lint_key_values(insn *in, bool is_env)
{
    kiln_vec pairs = KILN_VEC_INIT, expanded = KILN_VEC_INIT;
    const kiln_df_node *k = in->n->next, *kn;

    for (; k && k->next && k->next->next; k = k->next->next->next) {
        char *ek = NULL, *ev = NULL;
        if (expand_word(in, &in->l->lex, k->value, &ek) == 0 &&
            expand_word(in, &in->l->lex, k->next->value, &ev) < 0) {
            free(ek);
            ek = NULL;
        }
        kiln_vec_push(&pairs, (void *)k);
        kiln_vec_push(&expanded, ek);
        kiln_vec_push(&expanded, ev);
    }
    kiln_vec_foreach(&pairs, i, kn) {
        const char *key = expanded.items[2 * i], *value = expanded.items[2 * i + 1];
        if (kn->next->next->value[0] == '\0')
            report(in->l, in->local, R_LEGACY_KEY_VALUE, in->n->start_line,
                   "\"%s key=value\" should be used instead of legacy \"%s key value\" format",
                   in->kw, in->kw);
        if (!is_env || !key)
            continue;
        check_secret(in, "ENV", key);
        env_set(&in->st->env, key, value);
    }
    kiln_vec_dispose(&pairs, NULL);
    kiln_vec_dispose(&expanded, free);
}

static void
lint_env(insn *in)
{
    lint_key_values(in, true);
}

static void
lint_label(insn *in)
{
    lint_key_values(in, false);
}

/* EXPOSE, USER, VOLUME, STOPSIGNAL: each argument is one word. */
static void
lint_words(insn *in)
{
    for (const kiln_df_node *a = in->n->next; a; a = a->next)
        expand_word(in, &in->l->lex, a->value, NULL);
}

static void
lint_workdir(insn *in)
{
    cleanup_free char *path = NULL;

    if (!in->n->next || expand_word(in, &in->l->lex, in->n->next->value, &path) < 0)
        return;
    if (!in->st->workdir_set && path[0] != '/') {
        cleanup_free char *q = go_quote(path);
        report(in->l, in->local, R_WORKDIR_RELATIVE, in->n->start_line,
               "Relative workdir %s can have unexpected results if the base image changes", q);
    }
    in->st->workdir_set = true;
}

static void
lint_copy(insn *in)
{
    const kiln_df_heredoc *h;
    const char *src;
    kiln_shlex raw;
    kiln_df_copy c;

    if (kiln_df_parse_copy(&c, in->n, NULL) < 0)
        return;
    const char *flags[] = {c.chown ? c.chown : "", c.chmod ? c.chmod : "",
                           c.checksum ? c.checksum : ""};
    for (size_t i = 0; i < (c.is_add ? 3u : 2u); i++)
        expand_word(in, &in->l->lex, flags[i], NULL);
    kiln_vec_foreach(&c.sources, i, src)
        expand_word(in, &in->l->lex, src, NULL);
    expand_word(in, &in->l->lex, c.dest, NULL);
    /* heredoc sources with an unquoted terminator are expanded keeping quotes and escapes */
    kiln_shlex_init(&raw, '\\');
    raw.skip_process_quotes = true;
    kiln_vec_foreach(&in->n->heredocs, i, h) {
        if (h->expand && h->content)
            expand_word(in, &raw, h->content, NULL);
    }
    kiln_df_copy_dispose(&c);
}

/*
 * Split a --mount value into its CSV fields as BuildKit reads it (encoding/csv rules): a field
 * that starts with '"' is quoted, with "" for a quote inside; a quote anywhere else, or an
 * unterminated one, makes the whole value malformed (false; BuildKit then expands nothing).
 */
static bool
csv_fields(kiln_vec *out, const char *s)
{
    kiln_buf field = KILN_BUF_INIT;
    bool ok = true;

    for (;;) {
        kiln_buf_clear(&field);
        if (*s == '"') {
            for (s++;; s++) {
                if (*s == '\0' || (*s == '"' && s[1] != '"' && s[1] != ',' && s[1] != '\0')) {
                    ok = false;
                    break;
                }
                if (*s == '"' && s[1] == '"')
                    s++;
                else if (*s == '"') {
                    s++;
                    break;
                }
                kiln_buf_putc(&field, *s, NULL);
            }
        } else {
            for (; *s && *s != ','; s++) {
                ok = ok && *s != '"';
                kiln_buf_putc(&field, *s, NULL);
            }
        }
        if (!ok)
            break;
        kiln_strvec_push(out, kiln_buf_cstr(&field));
        if (*s != ',')
            break;
        s++;
    }
    kiln_buf_dispose(&field);
    return ok;
}

/* The --mount options that take no value. */
static bool
bare_mount_option(const char *field)
{
    static const char *const names[] = {"readonly", "ro", "readwrite", "rw", "required"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(field, names[i]) == 0)
            return true;
    }
    return false;
}

/* RUN: only the values of --mount options are expanded by the frontend (the command itself is
 * left to the shell). */
static void
lint_run(insn *in)
{
    const char *flag, *field;

    kiln_vec_foreach(&in->n->flags, i, flag) {
        kiln_vec fields = KILN_VEC_INIT;

        if (kiln_str_has_prefix(flag, "--mount=") &&
            csv_fields(&fields, flag + strlen("--mount="))) {
            kiln_vec_foreach(&fields, j, field) {
                const char *eq = strchr(field, '=');
                if (eq)
                    expand_word(in, &in->l->lex, eq + 1, NULL);
                else if (!bare_mount_option(field))
                    break; /* BuildKit stops at the first field it rejects */
            }
        }
        kiln_strvec_dispose(&fields);
    }
}

/* MultipleInstructionsDisallowed reports the earlier instruction, the one that is ignored. */
static void
used_once(insn *in, int *seen_line)
{
    if (*seen_line)
        report(in->l, in->local, R_MULTIPLE_INSTRUCTIONS, *seen_line,
               "Multiple %s instructions should not be used in the same stage because only the "
               "last one will be used",
               in->kw);
    *seen_line = in->n->start_line;
}

static void
json_args(insn *in)
{
    if (!in->n->json && !in->st->shell_set)
        report(in->l, in->local, R_JSON_ARGS, in->n->start_line,
               "JSON arguments recommended for %s to prevent unintended behavior related to OS "
               "signals",
               in->kw);
}

static void
lint_cmd(insn *in)
{
    used_once(in, &in->st->cmd_line);
    json_args(in);
}

static void
lint_entrypoint(insn *in)
{
    used_once(in, &in->st->entrypoint_line);
    json_args(in);
}

static void
lint_healthcheck(insn *in)
{
    used_once(in, &in->st->healthcheck_line);
}

static void
lint_shell(insn *in)
{
    in->st->shell_set = true;
}

static const struct {
    const char *keyword;
    void (*fn)(insn *in);
} dispatch_table[] = {
        {"add", lint_copy},
        {"arg", lint_arg},
        {"cmd", lint_cmd},
        {"copy", lint_copy},
        {"entrypoint", lint_entrypoint},
        {"env", lint_env},
        {"expose", lint_words},
        {"healthcheck", lint_healthcheck},
        {"label", lint_label},
        {"run", lint_run},
        {"shell", lint_shell},
        {"stopsignal", lint_words},
        {"user", lint_words},
        {"volume", lint_words},
        {"workdir", lint_workdir},
};

/* The state a stage starts from (BuildKit's dispatchState.init and the image config). */
static void
stage_start(linter *l, size_t idx)
{
    stage *st = l->stages.items[idx];
    const char *const *env = NULL;

    st->env_known = st->base == BASE_SCRATCH;
    if (st->base == BASE_STAGE) {
        stage *base = l->stages.items[st->base_stage];
        env_copy(&st->env, &base->env);
        for (size_t i = 0; i < base->args.len; i++)
            kiln_strvec_push(&st->args, base->args.items[i]);
        st->env_known = base->env_known;
        st->workdir_set = base->workdir_set;
        st->shell_set = base->shell_set;
        return;
    }
    if (st->base == BASE_IMAGE && l->opts->base_env)
        env = l->opts->base_env(idx, l->opts->base_env_payload);
    if (env)
        st->env_known = true;
    for (; env && *env; env++)
        env_set_kv(&st->env, *env);
    if (!env_get(&st->env, "PATH"))
        env_set(&st->env, "PATH", DEFAULT_PATH);
}

static void
dispatch_stage(linter *l, size_t idx)
{
    stage *st = l->stages.items[idx];
    const kiln_df_node *n;

    stage_start(l, idx);
    kiln_vec_foreach(&st->cmds, i, n) {
        for (size_t k = 0; k < sizeof(dispatch_table) / sizeof(dispatch_table[0]); k++) {
            if (strcmp(n->value, dispatch_table[k].keyword) != 0)
                continue;
            insn in;
            insn_init(&in, l, st, n);
            dispatch_table[k].fn(&in);
            insn_dispose(&in);
            break;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* entry points */

/* Group the instructions into meta ARGs and stages; unknown instructions and instructions
 * before the first FROM other than ARG are left out (BuildKit fails on them). */
static void
split_stages(linter *l)
{
    const kiln_df_node *n;

    kiln_vec_foreach(&l->ast->ast->children, i, n) {
        if (kiln_df_check_keyword(n, NULL) < 0)
            continue;
        if (strcmp(n->value, "from") == 0) {
            stage *st = xnew(stage);
            kiln_df_from f;
            st->from = n;
            env_init(&st->env);
            if (kiln_df_parse_from(&f, n, NULL) == 0) {
                st->name = steal_pointer(&f.stage_name);
                kiln_df_from_dispose(&f);
            }
            kiln_vec_push(&l->stages, st);
        } else if (l->stages.len > 0) {
            stage *st = l->stages.items[l->stages.len - 1];
            kiln_vec_push(&st->cmds, (void *)n);
        } else if (strcmp(n->value, "arg") == 0) {
            kiln_vec_push(&l->meta_args, (void *)n);
        }
    }
}

/*
 * The rule selection: the caller's build arg BUILDKIT_DOCKERFILE_CHECK (which replaces the file's
 * directive, as in BuildKit), else the file's `# check=` directive; KILN_DF_CHECK_ERROR then makes
 * findings errors.
 */
static int
load_config(linter *l, kiln_error **err)
{
    const kiln_df_directive *d;
    const char *value;

    if (build_arg(l, "BUILDKIT_DOCKERFILE_CHECK", &value)) {
        if (kiln_df_parse_check_directive(&l->cfg, value, err) < 0)
            return kiln_error_wrap(err,
                                   "failed to parse check options from BUILDKIT_DOCKERFILE_CHECK");
    } else {
        kiln_vec_foreach(&l->ast->directives, i, d) {
            if (strcmp(d->name, "check") != 0)
                continue;
            if (kiln_df_parse_check_directive(&l->cfg, d->value, err) < 0)
                return kiln_error_wrap(err, "%s:%d: failed to parse check options", l->file,
                                       d->line);
            break;
        }
    }
    if (l->opts->mode == KILN_DF_CHECK_ERROR)
        l->cfg.error = true;
    return 0;
}

static void
linter_dispose(linter *l)
{
    kiln_df_check_config_dispose(&l->cfg);
    kiln_vec_dispose(&l->findings, finding_free);
    kiln_vec_dispose(&l->meta_args, NULL);
    kiln_vec_dispose(&l->stages, stage_free);
    env_dispose(&l->globals);
    kiln_strvec_dispose(&l->meta_keys);
}

static void
run_rules(linter *l)
{
    split_stages(l);
    lint_parser_warnings(l);
    lint_typed_rules(l);
    lint_stage_names(l);
    lint_casing(l);
    lint_default_args(l);
    predefined_args(l, &l->globals);
    /* an unexpandable meta ARG fails BuildKit's build before any stage is dispatched */
    if (eval_meta_args(l, &l->globals, true) < 0)
        return;
    collect_meta_keys(l);
    for (size_t i = 0; i < l->stages.len; i++)
        lint_from(l, i);
    for (size_t i = 0; i < l->stages.len; i++)
        dispatch_stage(l, i);
}

/* kiln_df_lint: see checks.h. */
int
kiln_df_lint(kiln_vec *warnings, const kiln_df_result *ast, const kiln_df_lint_opts *opts,
             kiln_error **err)
{
    static const kiln_df_lint_opts no_opts;
    linter l;
    const finding *f;
    int rc;

    if (!opts)
        opts = &no_opts;
    if (opts->mode == KILN_DF_CHECK_SKIP)
        return 0;
    memset(&l, 0, sizeof(l));
    l.opts = opts;
    l.ast = ast;
    l.file = opts->filename ? opts->filename : "Dockerfile";
    kiln_shlex_init(&l.lex, ast->escape_token);
    env_init(&l.globals);
    rc = load_config(&l, err);
    if (rc == 0)
        run_rules(&l);
    kiln_vec_sort(&l.findings, finding_cmp);
    kiln_vec_foreach(&l.findings, i, f)
        kiln_strvec_push(warnings, f->text);
    if (rc == 0 && l.cfg.error && l.findings.len > 0) {
        f = l.findings.items[0];
        rc = kiln_error_set(err, KILN_EINVAL, "%s", f->text);
    }
    linter_dispose(&l);
    return rc;
}

/* kiln_df_lint_rules: see checks.h. */
const char *const *
kiln_df_lint_rules(void)
{
    return rule_names;
}
