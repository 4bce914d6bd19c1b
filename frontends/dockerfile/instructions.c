/*
 * instructions.c: typed instruction parsing on top of the AST (BuildKit's instructions package):
 * the `--flag` rules of BFlags, unknown-keyword suggestions (Levenshtein distance below 3, as
 * BuildKit's suggest package), FROM, RUN with --mount/--network/--security, COPY and ADD.
 */
#include "frontends/dockerfile/instructions.h"
#include "base/base.h"
#include "base/buf.h"
#include "frontends/dockerfile/df_internal.h"

static const char *const instruction_names[] = {
        "add",    "arg",   "cmd",         "copy",  "entrypoint", "env",
        "expose", "from",  "healthcheck", "label", "maintainer", "onbuild",
        "run",    "shell", "stopsignal",  "user",  "volume",     "workdir",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------------------------ */
/* suggestions */

static size_t
levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    cleanup_free size_t *row = xcalloc(lb + 1, sizeof(size_t));

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

static bool
all_case(const char *s, bool upper)
{
    for (; *s; s++) {
        if (upper ? (*s >= 'a' && *s <= 'z') : (*s >= 'A' && *s <= 'Z'))
            return false;
    }
    return true;
}

/* The closest option at distance < 3, cased like `val` when case-insensitive; NULL when none or
 * when `val` is itself an option. Owned by the caller. */
static char *
suggest(const char *val, const char *const *opts, size_t n, bool case_sensitive)
{
    cleanup_free char *v = xstrdup(val);
    const char *match = NULL;
    size_t best = 3;

    if (!case_sensitive) {
        for (char *p = v; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
    }
    for (size_t i = 0; i < n; i++) {
        size_t d = levenshtein(v, opts[i]);
        if (d == 0)
            return NULL;
        if (d < best) {
            best = d;
            match = opts[i];
        }
    }
    if (!match)
        return NULL;
    char *out = xstrdup(match);
    if (!case_sensitive && all_case(val, true) && !all_case(val, false)) {
        for (char *p = out; *p; p++)
            *p = (char)((*p >= 'a' && *p <= 'z') ? *p - 'a' + 'A' : *p);
    }
    return out;
}

int
kiln_df_check_keyword(const kiln_df_node *n, kiln_error **err)
{
    for (size_t i = 0; i < NELEM(instruction_names); i++) {
        if (strcmp(n->value, instruction_names[i]) == 0)
            return 0;
    }
    /* report the keyword as written, taken from the original line */
    const char *orig = n->original ? n->original : n->value;
    orig += kiln_df__leading_space(orig, strlen(orig));
    size_t len = 0;
    while (orig[len] && !kiln_df__is_re_ws(orig[len]))
        len++;
    cleanup_free char *kw = xstrndup(orig, len);
    cleanup_free char *s = suggest(kw, instruction_names, NELEM(instruction_names), false);
    if (s)
        kiln_error_set(err, KILN_EPARSE, "unknown instruction: %s (did you mean %s?)", kw, s);
    else
        kiln_error_set(err, KILN_EPARSE, "unknown instruction: %s", kw);
    return kiln_error_set_location(err, NULL, n->start_line, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* flags (BuildKit's BFlags) */

typedef enum { FL_BOOL, FL_STRING, FL_STRINGS } fl_type;

typedef struct flag_def {
    const char *name;
    fl_type type;
    bool used;
    const char *value; /* FL_STRING: borrowed from the node; FL_BOOL: "true"/"false" */
    kiln_vec *values;  /* FL_STRINGS: receives copies */
} flag_def;

static int
set_flag(flag_def *f, const char *arg, const char *eq, kiln_error **err)
{
    const char *value = eq ? eq + 1 : NULL;

    if (f->used && f->type != FL_STRINGS)
        return kiln_error_set(err, KILN_EPARSE, "duplicate flag specified: %s", f->name);
    f->used = true;
    if (f->type == FL_BOOL) {
        if (eq && !value[0])
            return kiln_error_set(err, KILN_EPARSE, "missing a value on flag: %s", f->name);
        if (!value || strcasecmp(value, "true") == 0)
            f->value = "true";
        else if (strcasecmp(value, "false") == 0)
            f->value = "false";
        else
            return kiln_error_set(err, KILN_EPARSE, "expecting boolean value for flag %s, not: %s",
                                  f->name, value);
        return 0;
    }
    if (!eq)
        return kiln_error_set(err, KILN_EPARSE, "missing a value on flag: %s", f->name);
    (void)arg;
    if (f->type == FL_STRING)
        f->value = value;
    else
        kiln_strvec_push(f->values, value);
    return 0;
}

static int
parse_flags(flag_def *defs, size_t n, const kiln_vec *flags, kiln_error **err)
{
    for (size_t i = 0; i < flags->len; i++) {
        const char *arg = flags->items[i], *eq;
        flag_def *f = NULL;
        if (!kiln_str_has_prefix(arg, "--"))
            return kiln_error_set(err, KILN_EPARSE, "arg should start with -- : %s", arg);
        arg += 2;
        eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        for (size_t k = 0; k < n && !f; k++) {
            if (strlen(defs[k].name) == len && strncmp(defs[k].name, arg, len) == 0)
                f = &defs[k];
        }
        if (!f) {
            cleanup_free char *name = xstrndup(arg, len);
            const char *names[8];
            for (size_t k = 0; k < n && k < NELEM(names); k++)
                names[k] = defs[k].name;
            cleanup_free char *s = suggest(name, names, n < NELEM(names) ? n : NELEM(names), true);
            if (s)
                return kiln_error_set(err, KILN_EPARSE, "unknown flag: %s (did you mean %s?)", name,
                                      s);
            return kiln_error_set(err, KILN_EPARSE, "unknown flag: %s", name);
        }
        int rc = set_flag(f, arg, eq, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int
kiln_df_parse_string_flags(const char **values, const kiln_df_node *n, const char *const *names,
                           size_t n_names, kiln_error **err)
{
    flag_def defs[8];
    int rc;

    kiln_assert(n_names <= NELEM(defs));
    for (size_t i = 0; i < n_names; i++)
        defs[i] = (flag_def){names[i], FL_STRING};
    rc = parse_flags(defs, n_names, &n->flags, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n_names; i++)
        values[i] = defs[i].value;
    return 0;
}

static char *
dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* --mount */

/* One record of Go's encoding/csv (no newlines in a flag): fields pushed onto `out`. */
static int
csv_fields(kiln_vec *out, const char *s, kiln_error **err)
{
    for (;;) {
        kiln_buf f = KILN_BUF_INIT;
        if (*s == '"') {
            for (s++;; s++) {
                if (*s == '\0') {
                    kiln_buf_dispose(&f);
                    return kiln_error_set(err, KILN_EPARSE,
                                          "failed to parse csv mounts: extraneous or missing \" "
                                          "in quoted-field");
                }
                if (*s == '"' && s[1] == '"') {
                    kiln_buf_putc(&f, '"', NULL);
                    s++;
                } else if (*s == '"') {
                    s++;
                    break;
                } else {
                    kiln_buf_putc(&f, *s, NULL);
                }
            }
            if (*s != ',' && *s != '\0') {
                kiln_buf_dispose(&f);
                return kiln_error_set(err, KILN_EPARSE,
                                      "failed to parse csv mounts: extraneous or missing \" in "
                                      "quoted-field");
            }
        } else {
            for (; *s && *s != ','; s++) {
                if (*s == '"') {
                    kiln_buf_dispose(&f);
                    return kiln_error_set(err, KILN_EPARSE,
                                          "failed to parse csv mounts: bare \" in "
                                          "non-quoted-field");
                }
                kiln_buf_putc(&f, *s, NULL);
            }
        }
        kiln_vec_push(out, kiln_buf_detach(&f));
        if (*s == '\0')
            return 0;
        s++;
    }
}

/* strconv.ParseBool */
static int
parse_go_bool(const char *v, bool *out)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};

    for (size_t i = 0; i < NELEM(t); i++) {
        if (strcmp(v, t[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(v, f[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* strconv.ParseUint(v, base, 32) */
static int
parse_u32(const char *v, int base, uint32_t *out)
{
    uint64_t x = 0;

    if (!*v)
        return -1;
    for (; *v; v++) {
        int d = *v - '0';
        if (d < 0 || d >= base)
            return -1;
        x = x * (uint64_t)base + (uint64_t)d;
        if (x > UINT32_MAX)
            return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

static const char *const mount_types[] = {"bind", "cache", "tmpfs", "secret", "ssh"};
static const char *const mount_keys[] = {
        "type",     "from",      "source", "target", "readonly",   "id",  "sharing",
        "required", "mode",      "uid",    "gid",    "src",        "dst", "ro",
        "rw",       "readwrite", "size",   "env",    "destination"};

static const char *
mount_type_name(kiln_df_mount_type t)
{
    return mount_types[t];
}

static int
mount_flag_bool(kiln_df_mount *m, const char *key, const char *value, bool *ro_auto,
                kiln_error **err)
{
    bool b = true;

    if (value && parse_go_bool(value, &b) < 0)
        return kiln_error_set(err, KILN_EPARSE, "invalid value for %s: %s", key, value);
    if (strcmp(key, "required") == 0) {
        if (m->type != KILN_DF_MOUNT_SECRET && m->type != KILN_DF_MOUNT_SSH)
            return kiln_error_set(err, KILN_EPARSE, "unexpected key '%s' for mount type '%s'", key,
                                  mount_type_name(m->type));
        m->required = b;
        return 0;
    }
    bool ro = strcmp(key, "readonly") == 0 || strcmp(key, "ro") == 0;
    m->readonly = ro ? b : !b;
    *ro_auto = false;
    return 0;
}

static int
mount_set_type(kiln_df_mount *m, const char *value, kiln_error **err)
{
    for (size_t i = 0; i < NELEM(mount_types); i++) {
        if (strcasecmp(value, mount_types[i]) == 0) {
            m->type = (kiln_df_mount_type)i;
            return 0;
        }
    }
    cleanup_free char *s = suggest(value, mount_types, NELEM(mount_types), true);
    cleanup_free char *q = kiln_str_go_quote(value, strlen(value));
    if (s)
        return kiln_error_set(err, KILN_EPARSE, "unsupported mount type %s (did you mean %s?)", q,
                              s);
    return kiln_error_set(err, KILN_EPARSE, "unsupported mount type %s", q);
}

static int
mount_set_sharing(kiln_df_mount *m, const char *value, kiln_error **err)
{
    static const char *const names[] = {"shared", "private", "locked"};

    for (size_t i = 0; i < NELEM(names); i++) {
        if (strcasecmp(value, names[i]) == 0) {
            m->sharing = (kiln_df_sharing)(i + 1);
            return 0;
        }
    }
    cleanup_free char *q = kiln_str_go_quote(value, strlen(value));
    return kiln_error_set(err, KILN_EPARSE, "unsupported sharing value %s", q);
}

static int
mount_number(const char *key, const char *value, int base, bool *has, uint32_t *out,
             kiln_error **err)
{
    if (parse_u32(value, base, out) < 0)
        return kiln_error_set(err, KILN_EPARSE, "invalid value %s for %s", value, key);
    *has = true;
    return 0;
}

/* One key=value field of a --mount. */
static int
mount_field(kiln_df_mount *m, const char *key, const char *value, const char *field, bool expanded,
            kiln_error **err)
{
    if (strcmp(key, "type") == 0)
        return mount_set_type(m, value, err);
    if (strcmp(key, "sharing") == 0)
        return mount_set_sharing(m, value, err);
    if (strcmp(key, "mode") == 0)
        return mount_number(key, value, 8, &m->has_mode, &m->mode, err);
    if (strcmp(key, "uid") == 0)
        return mount_number(key, value, 10, &m->has_uid, &m->uid, err);
    if (strcmp(key, "gid") == 0)
        return mount_number(key, value, 10, &m->has_gid, &m->gid, err);
    if (strcmp(key, "size") == 0) {
        if (m->type != KILN_DF_MOUNT_TMPFS)
            return kiln_error_set(err, KILN_EPARSE, "unexpected key '%s' for mount type '%s'", key,
                                  mount_type_name(m->type));
        if (kiln_parse_size(value, &m->size, NULL) < 0)
            return kiln_error_set(err, KILN_EPARSE, "invalid value for %s: %s", key, value);
        return 0;
    }
    char **slot = NULL;
    if (strcmp(key, "from") == 0 && !expanded) {
        /* BuildKit reads `from` before expansion to find stage dependencies */
        for (const char *d = strchr(value, '$'); d; d = strchr(d + 1, '$')) {
            if (d[1])
                return kiln_error_set(err, KILN_EPARSE,
                                      "'%s' doesn't support variable expansion, define alias "
                                      "stage instead",
                                      key);
        }
    }
    if (strcmp(key, "from") == 0)
        slot = &m->from;
    else if (strcmp(key, "source") == 0 || strcmp(key, "src") == 0)
        slot = &m->source;
    else if (strcmp(key, "target") == 0 || strcmp(key, "dst") == 0 ||
             strcmp(key, "destination") == 0)
        slot = &m->target;
    else if (strcmp(key, "id") == 0)
        slot = &m->id;
    else if (strcmp(key, "env") == 0)
        slot = &m->env;
    if (!slot) {
        cleanup_free char *s = suggest(key, mount_keys, NELEM(mount_keys), true);
        if (s)
            return kiln_error_set(err, KILN_EPARSE,
                                  "unexpected key '%s' in '%s' (did you mean %s?)", key, field, s);
        return kiln_error_set(err, KILN_EPARSE, "unexpected key '%s' in '%s'", key, field);
    }
    free(*slot);
    *slot = xstrdup(value);
    return 0;
}

/* Cross-field rules once every field is known. */
static int
mount_validate(kiln_df_mount *m, bool ro_auto, kiln_error **err)
{
    bool file_info = m->type == KILN_DF_MOUNT_SECRET || m->type == KILN_DF_MOUNT_SSH ||
                     m->type == KILN_DF_MOUNT_CACHE;
    const char *t = mount_type_name(m->type);

    if (m->has_mode && !file_info)
        return kiln_error_set(err, KILN_EPARSE, "mode not allowed for \"%s\" type mounts", t);
    if (m->has_uid && !file_info)
        return kiln_error_set(err, KILN_EPARSE, "uid not allowed for \"%s\" type mounts", t);
    if (m->has_gid && !file_info)
        return kiln_error_set(err, KILN_EPARSE, "gid not allowed for \"%s\" type mounts", t);
    if (ro_auto)
        m->readonly = m->type != KILN_DF_MOUNT_CACHE && m->type != KILN_DF_MOUNT_TMPFS;
    if (m->sharing != KILN_DF_SHARING_DEFAULT && m->type != KILN_DF_MOUNT_CACHE)
        return kiln_error_set(err, KILN_EPARSE, "invalid cache sharing set for %s mount", t);
    if (m->env && m->type != KILN_DF_MOUNT_SECRET)
        return kiln_error_set(err, KILN_EPARSE, "unexpected key 'env' for mount type '%s'", t);
    if (m->type == KILN_DF_MOUNT_SECRET) {
        if (m->from)
            return kiln_error_set(err, KILN_EPARSE, "secret mount should not have a from");
        if (!m->source && !m->target && !m->id && !m->env)
            return kiln_error_set(err, KILN_EPARSE,
                                  "invalid secret mount. one of source, target required");
        if (m->source && m->id)
            return kiln_error_set(err, KILN_EPARSE, "both source and id can't be set");
    }
    if (!m->target && m->type != KILN_DF_MOUNT_SECRET && m->type != KILN_DF_MOUNT_SSH)
        return kiln_error_set(err, KILN_EPARSE, "mount target is required for %s mounts", t);
    return 0;
}

void
kiln_df_mount_free(kiln_df_mount *m)
{
    if (!m)
        return;
    free(m->from);
    free(m->source);
    free(m->target);
    free(m->id);
    free(m->env);
    free(m);
}

int
kiln_df_parse_mount(kiln_df_mount **out, const char *value, kiln_error **err)
{
    return kiln_df_parse_mount_expand(out, value, NULL, NULL, err);
}

int
kiln_df_parse_mount_expand(kiln_df_mount **out, const char *value, kiln_df_expand_fn expand,
                           void *payload, kiln_error **err)
{
    kiln_vec fields = KILN_VEC_INIT;
    kiln_df_mount *m = xnew(kiln_df_mount);
    bool ro_auto = true;
    int rc = csv_fields(&fields, value, err);

    for (size_t i = 0; rc == 0 && i < fields.len; i++) {
        char *field = fields.items[i], *eq = strchr(field, '=');
        cleanup_free char *key = eq ? xstrndup(field, (size_t)(eq - field)) : xstrdup(field);
        for (char *p = key; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        bool boolkey = strcmp(key, "readonly") == 0 || strcmp(key, "ro") == 0 ||
                       strcmp(key, "readwrite") == 0 || strcmp(key, "rw") == 0 ||
                       strcmp(key, "required") == 0;
        if (boolkey)
            rc = mount_flag_bool(m, key, eq ? eq + 1 : NULL, &ro_auto, err);
        else if (!eq)
            rc = kiln_error_set(err, KILN_EPARSE, "invalid field '%s' must be a key=value pair",
                                field);
        else if (expand) {
            cleanup_free char *v = NULL;
            rc = expand(&v, eq + 1, payload, err);
            if (rc == 0)
                rc = mount_field(m, key, v, field, true, err);
        } else
            rc = mount_field(m, key, eq + 1, field, false, err);
    }
    if (rc == 0)
        rc = mount_validate(m, ro_auto, err);
    kiln_strvec_dispose(&fields);
    if (rc < 0) {
        kiln_df_mount_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* FROM, RUN, COPY/ADD */

static size_t
count_args(const kiln_df_node *n)
{
    size_t c = 0;

    for (const kiln_df_node *a = n->next; a; a = a->next)
        c++;
    return c;
}

static bool
valid_stage_name(const char *s)
{
    if (!(*s >= 'a' && *s <= 'z'))
        return false;
    for (s++; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
              *s == '.'))
            return false;
    }
    return true;
}

int
kiln_df_parse_from(kiln_df_from *out, const kiln_df_node *n, kiln_error **err)
{
    flag_def defs[] = {{"platform", FL_STRING}};
    size_t argc = count_args(n);
    char *stage = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (argc == 3 && strcasecmp(n->next->next->value, "as") == 0) {
        stage = xstrdup(n->next->next->next->value);
        for (char *p = stage; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        if (!valid_stage_name(stage)) {
            cleanup_free char *q = kiln_str_go_quote(n->next->next->next->value,
                                                     strlen(n->next->next->next->value));
            free(stage);
            return kiln_error_set(err, KILN_EPARSE,
                                  "invalid name for build stage: %s, name can't start with a "
                                  "number or contain symbols",
                                  q);
        }
    } else if (argc != 1) {
        return kiln_error_set(err, KILN_EPARSE, "FROM requires either one or three arguments");
    }
    rc = parse_flags(defs, NELEM(defs), &n->flags, err);
    if (rc < 0) {
        free(stage);
        return rc;
    }
    out->image = xstrdup(n->next->value);
    out->stage_name = stage;
    out->platform = dup_or_null(defs[0].value);
    return 0;
}

void
kiln_df_from_dispose(kiln_df_from *f)
{
    free(f->image);
    free(f->stage_name);
    free(f->platform);
    memset(f, 0, sizeof(*f));
}

static int
run_network(kiln_df_run *r, const char *v, kiln_error **err)
{
    if (!v || strcmp(v, "default") == 0)
        r->network = KILN_DF_NETWORK_DEFAULT;
    else if (strcmp(v, "none") == 0)
        r->network = KILN_DF_NETWORK_NONE;
    else if (strcmp(v, "host") == 0)
        r->network = KILN_DF_NETWORK_HOST;
    else
        return kiln_error_set(err, KILN_EPARSE, "invalid network mode \"%s\"", v);
    return 0;
}

int
kiln_df_parse_run(kiln_df_run *out, const kiln_df_node *n, kiln_error **err)
{
    kiln_vec mounts = KILN_VEC_INIT;
    flag_def defs[] = {{"mount", FL_STRINGS, .values = &mounts},
                       {"network", FL_STRING},
                       {"security", FL_STRING}};
    int rc = parse_flags(defs, NELEM(defs), &n->flags, err);

    memset(out, 0, sizeof(*out));
    if (rc == 0)
        rc = run_network(out, defs[1].value, err);
    if (rc == 0 && defs[2].value) {
        if (strcmp(defs[2].value, "insecure") == 0)
            out->insecure = true;
        else if (strcmp(defs[2].value, "sandbox") != 0)
            rc = kiln_error_set(err, KILN_EPARSE, "security \"%s\" is not valid", defs[2].value);
    }
    for (size_t i = 0; rc == 0 && i < mounts.len; i++) {
        kiln_df_mount *m = NULL;
        rc = kiln_df_parse_mount(&m, mounts.items[i], err);
        if (rc < 0)
            kiln_error_wrap(err, "--mount=%s", (const char *)mounts.items[i]);
        else
            kiln_vec_push(&out->mounts, m);
    }
    out->mount_specs = mounts;
    if (rc < 0) {
        kiln_df_run_dispose(out);
        return rc;
    }
    out->json = n->json;
    for (const kiln_df_node *a = n->next; a; a = a->next)
        kiln_strvec_push(&out->args, a->value);
    return 0;
}

void
kiln_df_run_dispose(kiln_df_run *r)
{
    kiln_vec_dispose(&r->mounts, (void (*)(void *))kiln_df_mount_free);
    kiln_strvec_dispose(&r->args);
    kiln_strvec_dispose(&r->mount_specs);
    memset(r, 0, sizeof(*r));
}

static int
copy_flags(kiln_df_copy *out, const kiln_df_node *n, kiln_error **err)
{
    flag_def defs[] = {{"chown", FL_STRING},    {"chmod", FL_STRING},
                       {"link", FL_BOOL},       {"exclude", FL_STRINGS, .values = &out->excludes},
                       {"from", FL_STRING},     {"parents", FL_BOOL},
                       {"checksum", FL_STRING}, {"keep-git-dir", FL_BOOL}};
    /* COPY takes the first six, ADD the first four plus checksum, keep-git-dir and unpack */
    flag_def add_defs[] = {
            defs[0], defs[1], defs[2], defs[3], defs[6], defs[7], {"unpack", FL_BOOL}};
    flag_def *d = out->is_add ? add_defs : defs;
    size_t nd = out->is_add ? NELEM(add_defs) : 6;
    int rc = parse_flags(d, nd, &n->flags, err);

    if (rc < 0)
        return rc;
    out->chown = dup_or_null(d[0].value);
    out->chmod = dup_or_null(d[1].value);
    out->link = kiln_str_eq(d[2].value, "true");
    if (out->is_add) {
        out->checksum = dup_or_null(d[4].value);
        out->keep_git_dir = kiln_str_eq(d[5].value, "true");
        out->unpack = d[6].value ? kiln_str_eq(d[6].value, "true") : -1;
    } else {
        out->from = dup_or_null(d[4].value);
        out->parents = kiln_str_eq(d[5].value, "true");
        out->unpack = -1;
    }
    return 0;
}

int
kiln_df_parse_copy(kiln_df_copy *out, const kiln_df_node *n, kiln_error **err)
{
    const char *name = strcmp(n->value, "add") == 0 ? "ADD" : "COPY";
    int rc;

    memset(out, 0, sizeof(*out));
    out->is_add = name[0] == 'A';
    if (count_args(n) < 2)
        return kiln_error_set(err, KILN_EPARSE,
                              "%s requires at least two arguments, but only one was provided. "
                              "Destination could not be determined.",
                              name);
    rc = copy_flags(out, n, err);
    if (rc < 0) {
        kiln_df_copy_dispose(out);
        return rc;
    }
    for (const kiln_df_node *a = n->next; a; a = a->next) {
        if (a->next)
            kiln_strvec_push(&out->sources, a->value);
        else
            out->dest = xstrdup(a->value);
    }
    return 0;
}

void
kiln_df_copy_dispose(kiln_df_copy *c)
{
    free(c->from);
    free(c->chown);
    free(c->chmod);
    free(c->checksum);
    free(c->dest);
    kiln_strvec_dispose(&c->excludes);
    kiln_strvec_dispose(&c->sources);
    memset(c, 0, sizeof(*c));
}
