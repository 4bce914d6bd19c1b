/*
 * directives.c: parser directives (`# syntax=...`, `# escape=...`, `# check=...`).
 *
 * Directives are only recognised in the leading block of the file: the first line that is not a
 * well-formed directive of a known name (an instruction, an empty line, any other comment) ends
 * the block for good. Names are case-insensitive and each may appear once. The format matches
 * BuildKit's regexp `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, with \s = [\t\n\f\r ].
 */
#include "base/base.h"
#include "base/json.h"
#include "frontends/dockerfile/df_internal.h"

static const char *const directive_names[] = {"syntax", "escape", "check"};

static bool
re_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static bool
ascii_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Match `<prefix>\s*name\s*=\s*value\s*$`; *name and *value owned by the caller on success. */
static bool
match_directive(const char *line, const char *prefix, char **name, char **value)
{
    const char *p = line, *n0, *v0, *v1;

    if (!kiln_str_has_prefix(p, prefix))
        return false;
    p += strlen(prefix);
    while (re_space(*p))
        p++;
    if (!ascii_alpha(*p))
        return false;
    n0 = p;
    while (ascii_alpha(*p) || (*p >= '0' && *p <= '9'))
        p++;
    const char *n1 = p;
    while (re_space(*p))
        p++;
    if (*p != '=')
        return false;
    const char *after_eq = ++p;
    while (re_space(*p))
        p++;
    v0 = p;
    v1 = p + strlen(p);
    while (v1 > v0 && re_space(v1[-1]))
        v1--;
    if (v1 == v0) {
        /* `(.+?)` needs one character: with only blanks after '=', the regexp backtracks and
         * the value is the last blank */
        if (v0 == after_eq)
            return false;
        v0--;
        v1 = v0 + 1;
    }
    *name = xstrndup(n0, (size_t)(n1 - n0));
    for (char *c = *name; *c; c++) {
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    }
    *value = xstrndup(v0, (size_t)(v1 - v0));
    return true;
}

static int
directive_index(const char *name)
{
    for (size_t i = 0; i < sizeof(directive_names) / sizeof(directive_names[0]); i++) {
        if (strcmp(directive_names[i], name) == 0)
            return (int)i;
    }
    return -1;
}

/* Feed a line to a directive scanner with comment prefix `prefix`. 1 = directive (name/value
 * set), 0 = none, negative = error. */
static int
scan_line(kiln_df__directives *d, const char *line, const char *prefix, char **name, char **value,
          kiln_error **err)
{
    int idx;

    d->line++;
    if (d->done)
        return 0;
    if (!match_directive(line, prefix, name, value)) {
        d->done = true;
        return 0;
    }
    idx = directive_index(*name);
    if (idx < 0) {
        free(*name);
        free(*value);
        d->done = true;
        return 0;
    }
    if (d->seen & (1u << idx)) {
        int rc =
                kiln_error_set(err, KILN_EPARSE, "only one %s parser directive can be used", *name);
        free(*name);
        free(*value);
        return rc;
    }
    d->seen |= 1u << idx;
    return 1;
}

int
kiln_df__directive_line(kiln_df__directives *d, const char *line, bool *is_directive,
                        kiln_error **err)
{
    char *name = NULL, *value = NULL;
    int rc = scan_line(d, line, "#", &name, &value, err);

    *is_directive = false;
    if (rc <= 0)
        return rc;
    if (strcmp(name, "escape") == 0) {
        if (strcmp(value, "`") != 0 && strcmp(value, "\\") != 0) {
            rc = kiln_error_set(err, KILN_EPARSE,
                                "invalid escape token '%s' does not match ` or \\", value);
            free(name);
            free(value);
            return rc;
        }
        d->escape = value[0];
    }
    *is_directive = true;
    if (d->out) {
        kiln_df_directive *dir = xnew(kiln_df_directive);
        dir->name = name;
        dir->value = value;
        dir->line = d->line;
        kiln_vec_push(d->out, dir);
    } else {
        free(name);
        free(value);
    }
    return 0;
}

/* Look for `syntax` in the directive block using comment prefix `prefix`. */
static bool
syntax_from_block(const char *data, size_t len, const char *prefix, int first_line,
                  char **value_out, int *line_out)
{
    kiln_df__directives d = {.escape = '\\', .line = first_line};
    size_t pos = 0;

    while (pos < len && !d.done) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        cleanup_free char *line = xstrndup(data + pos, end - pos);
        char *name = NULL, *value = NULL;
        kiln_error *tmp = NULL;
        int rc = scan_line(&d, line, prefix, &name, &value, &tmp);
        kiln_error_free(&tmp);
        if (rc < 0)
            break; /* a repeated directive ends the block; an earlier syntax still counts */
        if (rc == 1 && strcmp(name, "syntax") == 0) {
            free(name);
            *value_out = value;
            *line_out = d.line;
            return true;
        }
        if (rc == 1) {
            free(name);
            free(value);
        }
        pos = end + 1;
    }
    return false;
}

bool
kiln_df_detect_syntax(char **ref_out, char **cmdline_out, int *line_out, const char *data,
                      size_t len)
{
    char *value = NULL;
    int line = 0, first = 0;

    if (len == 0)
        return false;

    /* a leading "#!" line is skipped */
    if (len >= 2 && data[0] == '#' && data[1] == '!') {
        const char *nl = memchr(data, '\n', len);
        size_t skip = nl ? (size_t)(nl - data) + 1 : len;
        data += skip;
        len -= skip;
        first = 1;
    }
    if (!syntax_from_block(data, len, "#", first, &value, &line) &&
        !syntax_from_block(data, len, "//", first, &value, &line)) {
        cleanup_json json_t *doc = NULL;
        const char *s = NULL;
        kiln_error *tmp = NULL;
        if (kiln_json_parse(&doc, data, len, 0, "dockerfile", &tmp) < 0 || !json_is_object(doc) ||
            kiln_json_get_str(doc, "syntax", false, &s, &tmp) < 0 || !s || !s[0]) {
            kiln_error_free(&tmp);
            return false;
        }
        value = xstrdup(s);
        line = first;
    }
    const char *sp = strchr(value, ' ');
    *ref_out = sp ? xstrndup(value, (size_t)(sp - value)) : xstrdup(value);
    if (line_out)
        *line_out = line;
    if (cmdline_out)
        *cmdline_out = value;
    else
        free(value);
    return true;
}

/* strconv.ParseBool */
static int
parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(v, yes[i]) == 0 || strcmp(v, no[i]) == 0) {
            *out = strcmp(v, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

static int
check_field(kiln_df_check_config *out, const char *key, const char *value, kiln_error **err)
{
    if (strcasecmp(key, "error") == 0) {
        if (parse_bool(value, &out->error) < 0)
            return kiln_error_set(err, KILN_EINVAL,
                                  "invalid check directive: error=%s is not a boolean", value);
        return 0;
    }
    if (strcasecmp(key, "experimental") == 0)
        return 0; /* BuildKit's experimental rules: none implemented, accepted and ignored */
    if (strcasecmp(key, "skip") != 0)
        return kiln_error_set(err, KILN_EINVAL, "invalid check directive: unknown key '%s'", key);
    for (const char *p = value, *c;; p = c + 1) {
        c = strchr(p, ',');
        cleanup_free char *rule = kiln_df__trim_space_dup(p, c ? (size_t)(c - p) : strlen(p));
        if (strcasecmp(rule, "all") == 0)
            out->skip_all = true;
        else if (rule[0] != '\0')
            kiln_strvec_push(&out->skip, rule);
        if (!c)
            return 0;
    }
}

int
kiln_df_parse_check_directive(kiln_df_check_config *out, const char *value, kiln_error **err)
{
    int rc = 0;

    memset(out, 0, sizeof(*out));
    for (const char *p = value, *semi; rc == 0; p = semi + 1) {
        semi = strchr(p, ';');
        cleanup_free char *field =
                kiln_df__trim_space_dup(p, semi ? (size_t)(semi - p) : strlen(p));
        char *eq = strchr(field, '=');
        if (field[0] != '\0' && !eq)
            rc = kiln_error_set(err, KILN_EINVAL,
                                "invalid check directive: '%s' must be a key=value pair", field);
        else if (eq) {
            *eq = '\0';
            cleanup_free char *key = kiln_df__trim_space_dup(field, strlen(field));
            cleanup_free char *val = kiln_df__trim_space_dup(eq + 1, strlen(eq + 1));
            rc = check_field(out, key, val, err);
        }
        if (!semi)
            break;
    }
    if (rc < 0)
        kiln_df_check_config_dispose(out);
    return rc;
}

void
kiln_df_check_config_dispose(kiln_df_check_config *c)
{
    kiln_strvec_dispose(&c->skip);
    memset(c, 0, sizeof(*c));
}
