/*
 * parser.c: the Dockerfile parser's main loop (BuildKit's parser.Parse).
 *
 * Input is read one physical line at a time (lines end at '\n'; trailing '\r's are dropped; a
 * leading UTF-8 BOM is ignored). A logical line starts with leading whitespace removed and comment
 * lines skipped; while it ends with the escape token it continues onto the next physical line,
 * whose leading whitespace is kept. Comment lines and blank lines inside a continuation are skipped
 * (blank ones draw a warning). Leading `# name=value` lines are parser directives until the first
 * line that is not one. A RUN/COPY/ADD line (also under ONBUILD) with heredoc words is followed by
 * the heredoc bodies, read verbatim up to their terminator lines.
 *
 * Every instruction records the physical lines it spans; errors carry file:line:column.
 */
#include "base/base.h"
#include "base/buf.h"
#include "frontends/dockerfile/df_internal.h"

#define DF_EMPTY_CONTINUATION_URL \
    "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"

typedef struct pstate {
    const char *data;
    size_t len;
    size_t pos;
    int line; /* physical lines consumed so far */
    const char *file;
    kiln_df__directives d;
    kiln_df_result *res;
    kiln_vec comments; /* char *: comments since the last instruction */
} pstate;

/* ------------------------------------------------------------------------------------------ */
/* physical lines */

/* The next raw line including its '\n' (if any). 1 = got one, 0 = end of input, negative =
 * error (line too long). Does not count the line: callers do, as BuildKit does. */
static int
next_line(pstate *ps, const char **line, size_t *len, kiln_error **err)
{
    const char *start, *nl;
    size_t left = ps->len - ps->pos, n;

    if (left == 0)
        return 0;
    start = ps->data + ps->pos;
    nl = memchr(start, '\n', left);
    n = nl ? (size_t)(nl - start) + 1 : left;
    if (n - (nl ? 1 : 0) > KILN_DF_MAX_LINE) {
        kiln_error_set(err, KILN_EPARSE, "dockerfile line greater than max allowed size of %d",
                       KILN_DF_MAX_LINE);
        return kiln_error_set_location(err, ps->file, ps->line + 1, 1);
    }
    *line = start;
    *len = n;
    ps->pos += n;
    return 1;
}

/* Length without trailing '\r' and '\n' characters (bytes.TrimRight(line, "\r\n")). */
static size_t
trim_newline_len(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    return len;
}

static bool
is_comment(const char *s, size_t len)
{
    size_t n = trim_newline_len(s, len);
    size_t ws = kiln_df__leading_space(s, n);

    return ws < n && s[ws] == '#';
}

/* BuildKit's processLine: newline (and, for the first line of an instruction, leading space)
 * removed, fed to the directive scanner, then a line starting with '#' becomes empty. */
static int
process_line(pstate *ps, const char *s, size_t len, bool strip_left, char **out, bool *is_directive,
             kiln_error **err)
{
    size_t n = trim_newline_len(s, len), ws = strip_left ? kiln_df__leading_space(s, n) : 0;
    char *line = xstrndup(s + ws, n - ws);
    int rc = kiln_df__directive_line(&ps->d, line, is_directive, err);

    if (rc < 0) {
        free(line);
        return kiln_error_set_location(err, ps->file, ps->line + 1, (int)ws + 1);
    }
    if (line[0] == '#')
        line[0] = '\0';
    *out = line;
    return 0;
}

/* Remove a trailing line-continuation (escape token, then only blanks) in place. Returns true
 * when the line does NOT continue. An escape token preceded by another one is literal. */
static bool
trim_continuation(char *line, char esc)
{
    size_t e = strlen(line);

    while (e > 0 && (line[e - 1] == ' ' || line[e - 1] == '\t'))
        e--;
    if (e == 0 || line[e - 1] != esc)
        return true;
    if (e >= 2 && line[e - 2] == esc)
        return true;
    line[e - 1] = '\0';
    return false;
}

static void
record_comment(pstate *ps, const char *s, size_t len)
{
    /* BuildKit drops the first byte (the '#' when the line is not indented) and trims */
    char *c = kiln_df__trim_space_dup(s + 1, len - 1);

    if (c[0] == '\0') {
        free(c);
        kiln_strvec_dispose(&ps->comments);
        return;
    }
    kiln_vec_push(&ps->comments, c);
}

/* ------------------------------------------------------------------------------------------ */
/* logical lines */

/* Append continuation lines to `buf` until one does not end with the escape token. */
static int
read_continuation(pstate *ps, kiln_buf *buf, bool *has_empty, kiln_error **err)
{
    bool eol = false;

    const char *raw = NULL;
    size_t rawlen = 0;
    int rc;

    while (!eol && (rc = next_line(ps, &raw, &rawlen, err)) != 0) {
        char *line = NULL;
        bool directive;
        if (rc < 0)
            return rc;
        rc = process_line(ps, raw, rawlen, false, &line, &directive, err);
        if (rc < 0)
            return rc;
        ps->line++;
        if (is_comment(raw, rawlen)) {
            free(line);
            continue;
        }
        if (line[kiln_df__leading_space(line, strlen(line))] == '\0') {
            *has_empty = true;
            free(line);
            continue;
        }
        eol = trim_continuation(line, ps->d.escape);
        kiln_buf_puts(buf, line, NULL);
        free(line);
    }
    return 0;
}

static void
add_warning(pstate *ps, const char *line)
{
    kiln_df_warning *w = xnew(kiln_df_warning);

    w->msg = xasprintf("Empty continuation line found in: %s", line);
    w->detail = xstrdup("Empty continuation lines will become errors in a future release");
    w->url = xstrdup(DF_EMPTY_CONTINUATION_URL);
    w->line = ps->line;
    kiln_vec_push(&ps->res->warnings, w);
}

static bool
can_contain_heredoc(const kiln_df_node *n)
{
    if (strcmp(n->value, "onbuild") == 0 && n->next && n->next->children.len > 0)
        n = n->next->children.items[0];
    if (strcmp(n->value, "run") != 0 && strcmp(n->value, "copy") != 0 &&
        strcmp(n->value, "add") != 0)
        return false;
    return !n->json;
}

/* Read the bodies of the heredocs announced on the instruction line into child->heredocs. */
static int
read_heredocs(pstate *ps, kiln_df_node *child, const char *line, int start_line, kiln_error **err)
{
    int rc = kiln_df__heredocs_from_line(&child->heredocs, line, err);

    if (rc < 0)
        return kiln_error_set_location(err, ps->file, start_line, 1);
    for (size_t i = 0; i < child->heredocs.len; i++) {
        kiln_df_heredoc *doc = child->heredocs.items[i];
        kiln_buf content = KILN_BUF_INIT;
        bool terminated = false;
        const char *raw = NULL;
        size_t rawlen = 0;
        while (!terminated && (rc = next_line(ps, &raw, &rawlen, err)) > 0) {
            size_t n = trim_newline_len(raw, rawlen), skip = 0;
            ps->line++;
            while (doc->chomp && skip < n && raw[skip] == '\t')
                skip++;
            if (n - skip == strlen(doc->name) && memcmp(raw + skip, doc->name, n - skip) == 0)
                terminated = true;
            else
                kiln_buf_put(&content, raw, rawlen, NULL);
        }
        doc->content = kiln_buf_detach(&content);
        if (rc < 0)
            return rc;
        if (!terminated) {
            cleanup_free char *q = kiln_str_go_quote(doc->name, strlen(doc->name));
            kiln_error_set(err, KILN_EPARSE, "unterminated heredoc %s", q);
            return kiln_error_set_location(err, ps->file, start_line, 1);
        }
    }
    return 0;
}

/* "RUN foo bar" shortened for error messages; owned by the caller. */
static char *
excerpt(const char *line)
{
    size_t n = strlen(line);
    cleanup_free char *cut = xstrndup(line, n > 72 ? 72 : n);
    char *q = kiln_str_go_quote(cut, strlen(cut));

    if (n > 72) {
        char *longer = xasprintf("%s...", q);
        free(q);
        q = longer;
    }
    return q;
}

static void
add_child(kiln_df_node *root, kiln_df_node *child, int start, int end)
{
    child->start_line = start;
    child->end_line = end;
    if (child->next && child->next->children.len > 0) {
        kiln_df_node *nested = child->next->children.items[0];
        nested->start_line = start;
        nested->end_line = end;
    }
    if (root->start_line < 0)
        root->start_line = start;
    root->end_line = end;
    kiln_vec_push(&root->children, child);
}

/* One instruction, starting at the physical line (raw, rawlen). */
static int
parse_instruction(pstate *ps, const char *raw, size_t rawlen, kiln_error **err)
{
    cleanup_free char *first = NULL;
    kiln_buf buf = KILN_BUF_INIT;
    kiln_df_node *child = NULL;
    bool directive, eol, has_empty = false;
    int rc, start_line, col;

    if (ps->line == 0 && rawlen >= 3 && memcmp(raw, "\xef\xbb\xbf", 3) == 0) {
        raw += 3;
        rawlen -= 3;
    }
    if (is_comment(raw, rawlen))
        record_comment(ps, raw, rawlen);
    rc = process_line(ps, raw, rawlen, true, &first, &directive, err);
    if (rc < 0)
        return rc;
    if (directive && ps->comments.len > 0)
        free(kiln_vec_pop(&ps->comments));
    ps->line++;
    start_line = ps->line;
    col = (int)kiln_df__leading_space(raw, trim_newline_len(raw, rawlen)) + 1;
    eol = trim_continuation(first, ps->d.escape);
    if (eol && first[0] == '\0')
        return 0;
    kiln_buf_puts(&buf, first, NULL);
    rc = eol ? 0 : read_continuation(ps, &buf, &has_empty, err);
    if (rc == 0 && has_empty)
        add_warning(ps, kiln_buf_cstr(&buf));
    if (rc == 0) {
        rc = kiln_df__node_from_line(&child, kiln_buf_cstr(&buf), &ps->d, 0, err);
        if (rc < 0) {
            cleanup_free char *q = excerpt(kiln_buf_cstr(&buf));
            kiln_error_wrap(err, "%s", q);
            kiln_error_set_location(err, ps->file, start_line, col);
        }
    }
    if (rc == 0) {
        child->comments = ps->comments;
        kiln_vec_init(&ps->comments);
        if (can_contain_heredoc(child) && strstr(kiln_buf_cstr(&buf), "<<"))
            rc = read_heredocs(ps, child, kiln_buf_cstr(&buf), start_line, err);
    }
    kiln_buf_dispose(&buf);
    if (rc < 0) {
        kiln_df_node_free(child);
        return rc;
    }
    add_child(ps->res->ast, child, start_line, ps->line);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* entry points */

/* kiln strings cannot carry NUL bytes: refuse them up front with their position. */
static int
check_no_nul(const char *data, size_t len, const char *file, kiln_error **err)
{
    const char *z = len > 0 ? memchr(data, '\0', len) : NULL;
    int line = 1, col = 1;

    if (!z)
        return 0;
    for (const char *p = data; p < z; p++) {
        col++;
        if (*p == '\n') {
            line++;
            col = 1;
        }
    }
    kiln_error_set(err, KILN_EPARSE, "dockerfile contains a NUL byte");
    return kiln_error_set_location(err, file, line, col);
}

int
kiln_df_parse(kiln_df_result **out, const char *data, size_t len, const char *filename,
              kiln_error **err)
{
    pstate ps = {.data = data, .len = len, .file = filename ? filename : "Dockerfile"};
    const char *raw = NULL;
    size_t rawlen = 0;
    int rc;

    rc = check_no_nul(data, len, ps.file, err);
    if (rc < 0)
        return rc;
    ps.res = xnew(kiln_df_result);
    ps.res->ast = kiln_df__node_new(NULL);
    ps.res->ast->start_line = -1;
    ps.d.escape = '\\';
    ps.d.out = &ps.res->directives;
    while ((rc = next_line(&ps, &raw, &rawlen, err)) > 0) {
        rc = parse_instruction(&ps, raw, rawlen, err);
        if (rc < 0)
            break;
    }
    kiln_strvec_dispose(&ps.comments);
    if (rc == 0 && ps.res->ast->start_line < 0) {
        kiln_error_set(err, KILN_EPARSE, "file with no instructions");
        rc = kiln_error_set_location(err, ps.file, ps.line, 0);
    }
    if (rc < 0) {
        kiln_df_result_free(ps.res);
        return rc;
    }
    ps.res->escape_token = ps.d.escape;
    *out = ps.res;
    return 0;
}

void
kiln_df_node_free(kiln_df_node *n)
{
    /* the next chain can be long (one node per argument): walk it instead of recursing */
    while (n) {
        kiln_df_node *next = n->next;
        free(n->value);
        free(n->original);
        kiln_vec_dispose(&n->children, (void (*)(void *))kiln_df_node_free);
        kiln_vec_dispose(&n->heredocs, (void (*)(void *))kiln_df_heredoc_free);
        kiln_strvec_dispose(&n->flags);
        kiln_strvec_dispose(&n->comments);
        free(n);
        n = next;
    }
}

static void
warning_free(void *p)
{
    kiln_df_warning *w = p;

    free(w->msg);
    free(w->detail);
    free(w->url);
    free(w);
}

static void
directive_free(void *p)
{
    kiln_df_directive *d = p;

    free(d->name);
    free(d->value);
    free(d);
}

void
kiln_df_result_free(kiln_df_result *r)
{
    if (!r)
        return;
    kiln_df_node_free(r->ast);
    kiln_vec_dispose(&r->warnings, warning_free);
    kiln_vec_dispose(&r->directives, directive_free);
    free(r);
}
