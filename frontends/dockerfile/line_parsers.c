/*
 * line_parsers.c: from one logical Dockerfile line to an instruction node (BuildKit's
 * split_command.go and line_parsers.go).
 *
 * A line splits into keyword, leading `--flags` and the rest; the keyword picks an argument parser
 * that shapes the `next` chain: JSON-or-shell for RUN/CMD/ENTRYPOINT/SHELL, JSON-or-words for
 * ADD/COPY/VOLUME, key/value triples for ENV/LABEL, quote-aware words for ARG, and so on. Unknown
 * keywords keep a single empty argument, as BuildKit does; rejecting them is the job of the
 * instruction layer. Byte-wise versus rune-wise scanning mirrors BuildKit exactly because the
 * difference is visible in the AST (see df_utf8.c).
 */
#include "base/base.h"
#include "base/buf.h"
#include "frontends/dockerfile/df_internal.h"

typedef struct parsed_args {
    kiln_df_node *next;
    bool json;
} parsed_args;

typedef int (*args_fn)(parsed_args *out, const char *rest, const kiln_df__directives *d, int depth,
                       kiln_error **err);

kiln_df_node *
kiln_df__node_new(const char *value)
{
    kiln_df_node *n = xnew(kiln_df_node);

    n->value = xstrdup(value ? value : "");
    n->value_len = strlen(n->value);
    return n;
}

/* Append n to the chain whose last node is *tail (or start it at *head). */
static void
chain_append(kiln_df_node **head, kiln_df_node **tail, kiln_df_node *n)
{
    if (!*head)
        *head = n;
    else
        (*tail)->next = n;
    *tail = n;
}

/* ------------------------------------------------------------------------------------------ */
/* command and flags */

enum { PH_SPACES, PH_WORD, PH_QUOTE };

/* Byte-wise, with '\\' as the escape whatever the escape directive says; a byte >= 0x80 is taken
 * as the code point of the same value (Go's rune(line[pos])), as BuildKit does. */
static const char *
extract_builder_flags(const char *line, kiln_vec *flags)
{
    size_t len = strlen(line);
    kiln_buf word = KILN_BUF_INIT;
    int phase = PH_SPACES;
    char quote = 0;
    bool blank_ok = false;

    for (size_t pos = 0; pos <= len; pos++) {
        unsigned char ch = pos < len ? (unsigned char)line[pos] : 0;
        if (phase == PH_SPACES) {
            if (pos == len)
                break;
            if (kiln_df__is_space_byte(ch))
                continue;
            if (ch != '-' || pos + 1 == len || line[pos + 1] != '-') {
                kiln_buf_dispose(&word);
                return line + pos;
            }
            phase = PH_WORD;
        }
        if (pos == len) {
            if (!kiln_str_eq(kiln_buf_cstr(&word), "--") && (blank_ok || word.len > 0))
                kiln_vec_push(flags, kiln_buf_detach(&word));
            break;
        }
        if (phase == PH_WORD) {
            if (kiln_df__is_space_byte(ch)) {
                phase = PH_SPACES;
                if (kiln_str_eq(kiln_buf_cstr(&word), "--")) {
                    kiln_buf_dispose(&word);
                    return line + pos;
                }
                if (blank_ok || word.len > 0)
                    kiln_vec_push(flags, kiln_buf_detach(&word));
                kiln_buf_clear(&word);
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = (char)ch;
                blank_ok = true;
                phase = PH_QUOTE;
                continue;
            }
        } else if (ch == (unsigned char)quote) {
            phase = PH_WORD;
            continue;
        }
        if (ch == '\\') {
            if (pos + 1 == len) {
                if (phase == PH_QUOTE)
                    phase = PH_WORD;
                continue; /* a trailing backslash is dropped */
            }
            ch = (unsigned char)line[++pos];
        }
        kiln_df__put_rune(&word, ch);
    }
    kiln_buf_dispose(&word);
    return line + len;
}

/* splitCommand: *cmd and *args owned by the caller; flags pushed onto `flags`. */
static void
split_command(const char *line, char **cmd, char **args, kiln_vec *flags)
{
    cleanup_free char *trimmed = kiln_df__trim_space_dup(line, strlen(line));
    char *p = trimmed;

    while (*p && !kiln_df__is_re_ws(*p))
        p++;
    *cmd = xstrndup(trimmed, (size_t)(p - trimmed));
    if (!*p) {
        *args = xstrdup("");
        return;
    }
    while (*p && kiln_df__is_re_ws(*p))
        p++;
    const char *rest = extract_builder_flags(p, flags);
    *args = kiln_df__trim_space_dup(rest, strlen(rest));
}

/* ------------------------------------------------------------------------------------------ */
/* words */

void
kiln_df__parse_words(kiln_vec *out, const char *rest, char escape)
{
    size_t len = strlen(rest), w = 0;
    kiln_buf word = KILN_BUF_INIT;
    int phase = PH_SPACES;
    uint32_t quote = 0, ch = 0, esc = (unsigned char)escape;
    bool blank_ok = false;

    for (size_t pos = 0; pos <= len; pos += w) {
        if (pos != len)
            w = kiln_df__utf8_decode(rest + pos, len - pos, &ch);
        if (phase == PH_SPACES) {
            if (pos == len)
                break;
            if (kiln_df__is_space(ch))
                continue;
            phase = PH_WORD;
        }
        if (pos == len) {
            if (blank_ok || word.len > 0)
                kiln_vec_push(out, kiln_buf_detach(&word));
            break;
        }
        if (phase == PH_WORD) {
            if (kiln_df__is_space(ch)) {
                phase = PH_SPACES;
                if (blank_ok || word.len > 0)
                    kiln_vec_push(out, kiln_buf_detach(&word));
                kiln_buf_clear(&word);
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = PH_QUOTE;
            }
            if (ch == esc) {
                if (pos + w == len)
                    continue; /* an escape token at the end of the line is dropped */
                /* unquoted: keep the escape token and the character it escapes */
                kiln_df__put_rune(&word, ch);
                pos += w;
                w = kiln_df__utf8_decode(rest + pos, len - pos, &ch);
            }
            kiln_df__put_rune(&word, ch);
            continue;
        }
        /* PH_QUOTE */
        if (ch == quote)
            phase = PH_WORD;
        if (ch == esc && quote != '\'') {
            if (pos + w == len) {
                phase = PH_WORD;
                continue;
            }
            kiln_df__put_rune(&word, ch);
            pos += w;
            w = kiln_df__utf8_decode(rest + pos, len - pos, &ch);
        }
        kiln_df__put_rune(&word, ch);
    }
    kiln_buf_dispose(&word);
}

/* ------------------------------------------------------------------------------------------ */
/* argument parsers, one per instruction family */

static kiln_df_node *
key_value_nodes(const char *key, const char *value, const char *sep)
{
    kiln_df_node *k = kiln_df__node_new(key);

    k->next = kiln_df__node_new(value);
    k->next->next = kiln_df__node_new(sep);
    return k;
}

/* ENV and LABEL: `KEY=VALUE ...` (sep "=") or the legacy `KEY VALUE...` (sep ""). */
static int
parse_name_val(parsed_args *out, const char *rest, const char *key, char escape, kiln_error **err)
{
    kiln_vec words = KILN_VEC_INIT;
    kiln_df_node *head = NULL, *tail = NULL;
    int rc = 0;

    kiln_df__parse_words(&words, rest, escape);
    if (words.len == 0)
        return 0;
    if (!strchr(words.items[0], '=')) {
        kiln_vec parts = KILN_VEC_INIT;
        kiln_df__split_ws(&parts, rest, 2);
        if (parts.len < 2)
            rc = kiln_error_set(err, KILN_EPARSE, "%s must have two arguments", key);
        else
            out->next = key_value_nodes(parts.items[0], parts.items[1], "");
        kiln_strvec_dispose(&parts);
        kiln_strvec_dispose(&words);
        return rc;
    }
    for (size_t i = 0; i < words.len; i++) {
        char *word = words.items[i], *eq = strchr(word, '=');
        if (!eq) {
            cleanup_free char *q = kiln_str_go_quote(word, strlen(word));
            rc = kiln_error_set(err, KILN_EPARSE,
                                "Syntax error - can't find = in %s. Must be of the form: "
                                "name=value",
                                q);
            break;
        }
        *eq = '\0';
        kiln_df_node *kv = key_value_nodes(word, eq + 1, "=");
        chain_append(&head, &tail, kv);
        tail = kv->next->next;
    }
    if (rc < 0)
        kiln_df_node_free(head);
    else
        out->next = head;
    kiln_strvec_dispose(&words);
    return rc;
}

static int
parse_env(parsed_args *out, const char *rest, const kiln_df__directives *d, int depth,
          kiln_error **err)
{
    (void)depth;
    return parse_name_val(out, rest, "ENV", d->escape, err);
}

static int
parse_label(parsed_args *out, const char *rest, const kiln_df__directives *d, int depth,
            kiln_error **err)
{
    (void)depth;
    return parse_name_val(out, rest, "LABEL", d->escape, err);
}

/* ARG: each word (quotes kept) is one argument. */
static int
parse_name_or_name_val(parsed_args *out, const char *rest, const kiln_df__directives *d, int depth,
                       kiln_error **err)
{
    kiln_vec words = KILN_VEC_INIT;
    kiln_df_node *tail = NULL;

    (void)depth;
    (void)err;
    kiln_df__parse_words(&words, rest, d->escape);
    for (size_t i = 0; i < words.len; i++)
        chain_append(&out->next, &tail, kiln_df__node_new(words.items[i]));
    kiln_strvec_dispose(&words);
    return 0;
}

static void
whitespace_list(parsed_args *out, const char *rest)
{
    kiln_vec parts = KILN_VEC_INIT;
    kiln_df_node *tail = NULL;

    if (rest[0] == '\0')
        return;
    kiln_df__split_ws(&parts, rest, -1);
    for (size_t i = 0; i < parts.len; i++)
        chain_append(&out->next, &tail, kiln_df__node_new(parts.items[i]));
    kiln_strvec_dispose(&parts);
}

/* FROM, EXPOSE: words split on whitespace, quotes not special. */
static int
parse_strings_ws(parsed_args *out, const char *rest, const kiln_df__directives *d, int depth,
                 kiln_error **err)
{
    (void)d;
    (void)depth;
    (void)err;
    whitespace_list(out, rest);
    return 0;
}

/* MAINTAINER, USER, WORKDIR, STOPSIGNAL: the rest as one argument. */
static int
parse_string(parsed_args *out, const char *rest, const kiln_df__directives *d, int depth,
             kiln_error **err)
{
    (void)d;
    (void)depth;
    (void)err;
    if (rest[0] != '\0')
        out->next = kiln_df__node_new(rest);
    return 0;
}

/* parseJSON: 1 parsed, 0 not JSON (caller falls back), negative error. */
static int
parse_json(parsed_args *out, const char *rest, kiln_error **err)
{
    size_t skip = kiln_df__leading_space(rest, strlen(rest));
    kiln_vec strs = KILN_VEC_INIT;
    kiln_df_node *tail = NULL;
    kiln_df__json_status st;

    rest += skip;
    if (rest[0] != '[')
        return 0;
    st = kiln_df__parse_json_array(&strs, rest, strlen(rest));
    if (st == DF_JSON_SYNTAX)
        return 0;
    if (st == DF_JSON_NOT_STRINGS)
        return kiln_error_set(err, KILN_EPARSE,
                              "when using JSON array syntax, arrays must be comprised of "
                              "strings only");
    for (size_t i = 0; i < strs.len; i++) {
        kiln_buf *b = strs.items[i];
        kiln_df_node *n = xnew(kiln_df_node);
        n->value_len = b->len;
        n->value = kiln_buf_detach(b);
        chain_append(&out->next, &tail, n);
    }
    kiln_vec_dispose(&strs, kiln_df__json_buf_free);
    out->json = true;
    return 1;
}

/* RUN, CMD, ENTRYPOINT, SHELL: a JSON string array, else the whole rest as one argument. */
static int
parse_maybe_json(parsed_args *out, const char *rest, const kiln_df__directives *d, int depth,
                 kiln_error **err)
{
    int rc;

    (void)d;
    (void)depth;
    if (rest[0] == '\0')
        return 0;
    rc = parse_json(out, rest, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        out->next = kiln_df__node_new(rest);
    return 0;
}

/* ADD, COPY, VOLUME: a JSON string array, else whitespace-separated words. */
static int
parse_maybe_json_to_list(parsed_args *out, const char *rest, const kiln_df__directives *d,
                         int depth, kiln_error **err)
{
    int rc = parse_json(out, rest, err);

    (void)d;
    (void)depth;
    if (rc < 0)
        return rc;
    if (rc == 0)
        whitespace_list(out, rest);
    return 0;
}

/* HEALTHCHECK: a type word (CMD, NONE, ...) then RUN-style arguments. */
static int
parse_health_config(parsed_args *out, const char *rest, const kiln_df__directives *d, int depth,
                    kiln_error **err)
{
    size_t sep = 0, next;
    parsed_args cmd = {0};
    int rc;

    while (rest[sep] && !kiln_df__is_space_byte((unsigned char)rest[sep]))
        sep++;
    next = sep;
    while (rest[next] && kiln_df__is_space_byte((unsigned char)rest[next]))
        next++;
    if (sep == 0)
        return 0;
    rc = parse_maybe_json(&cmd, rest + next, d, depth, err);
    if (rc < 0)
        return rc;
    out->next = xnew(kiln_df_node);
    out->next->value = xstrndup(rest, sep);
    out->next->value_len = sep;
    out->next->next = cmd.next;
    out->json = cmd.json;
    return 0;
}

/* ONBUILD: the rest is an instruction of its own, kept as the single child of one argument. */
static int
parse_sub_command(parsed_args *out, const char *rest, const kiln_df__directives *d, int depth,
                  kiln_error **err)
{
    kiln_df_node *child = NULL;
    int rc;

    if (rest[0] == '\0')
        return 0;
    if (depth >= DF_MAX_ONBUILD_DEPTH)
        return kiln_error_set(err, KILN_EPARSE, "ONBUILD nested more than %d levels deep",
                              DF_MAX_ONBUILD_DEPTH);
    rc = kiln_df__node_from_line(&child, rest, d, depth + 1, err);
    if (rc < 0)
        return rc;
    out->next = kiln_df__node_new(NULL);
    kiln_vec_push(&out->next->children, child);
    return 0;
}

/* Unknown instructions: one empty argument (BuildKit's parseIgnore). */
static int
parse_ignore(parsed_args *out, const char *rest, const kiln_df__directives *d, int depth,
             kiln_error **err)
{
    (void)rest;
    (void)d;
    (void)depth;
    (void)err;
    out->next = kiln_df__node_new(NULL);
    return 0;
}

static const struct {
    const char *name;
    args_fn fn;
} dispatch[] = {
        {"add", parse_maybe_json_to_list},
        {"arg", parse_name_or_name_val},
        {"cmd", parse_maybe_json},
        {"copy", parse_maybe_json_to_list},
        {"entrypoint", parse_maybe_json},
        {"env", parse_env},
        {"expose", parse_strings_ws},
        {"from", parse_strings_ws},
        {"healthcheck", parse_health_config},
        {"label", parse_label},
        {"maintainer", parse_string},
        {"onbuild", parse_sub_command},
        {"run", parse_maybe_json},
        {"shell", parse_maybe_json},
        {"stopsignal", parse_string},
        {"user", parse_string},
        {"volume", parse_maybe_json_to_list},
        {"workdir", parse_string},
};

static args_fn
lookup_parser(const char *lower)
{
    for (size_t i = 0; i < sizeof(dispatch) / sizeof(dispatch[0]); i++) {
        if (strcmp(dispatch[i].name, lower) == 0)
            return dispatch[i].fn;
    }
    return parse_ignore;
}

int
kiln_df__node_from_line(kiln_df_node **out, const char *line, const kiln_df__directives *d,
                        int depth, kiln_error **err)
{
    cleanup_free char *cmd = NULL;
    cleanup_free char *args = NULL;
    kiln_vec flags = KILN_VEC_INIT;
    parsed_args pa = {0};
    kiln_df_node *n;
    int rc;

    split_command(line, &cmd, &args, &flags);
    for (char *p = cmd; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    rc = lookup_parser(cmd)(&pa, args, d, depth, err);
    if (rc < 0) {
        kiln_strvec_dispose(&flags);
        return rc;
    }
    n = kiln_df__node_new(cmd);
    n->original = xstrdup(line);
    n->flags = flags;
    n->next = pa.next;
    n->json = pa.json;
    *out = n;
    return 0;
}
