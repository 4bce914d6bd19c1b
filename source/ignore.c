/*
 * ignore.c: .dockerignore parsing and Docker's pattern matcher.
 *
 * patternmatcher turns each pattern into a Go regexp (or, when it can, an exact/prefix/suffix
 * string comparison). We compile the same pattern into a small token program with the same meaning
 * and run it with a dynamic-programming matcher that is linear in (tokens x path length), so
 * hostile patterns such as "*a*a*a*a*b" cannot make matching exponential. Validation follows Go's
 * filepath.Match grammar, which is what Docker uses to reject bad patterns.
 */
#include <ctype.h>
#include <stdint.h>

#include "base/base.h"
#include "base/path.h"
#include "base/vec.h"
#include "source/ignore.h"

typedef enum tok_kind {
    TOK_LIT,       /* one byte */
    TOK_ANY,       /* "?": one rune except '/' */
    TOK_STAR,      /* "*": any run of runes without '/' */
    TOK_DSTAR,     /* "**" not at the end: regexp "(.*" "/)?" */
    TOK_DSTAR_END, /* "**" at the end in regexp mode: ".*" */
    TOK_CARET,     /* a bare '^' in regexp mode: start-of-text assertion */
    TOK_CLASS,     /* "[...]" */
} tok_kind;

typedef struct range {
    uint32_t lo, hi;
} range;

typedef struct token {
    tok_kind kind;
    unsigned char c; /* TOK_LIT */
    bool negated;    /* TOK_CLASS */
    range *ranges;   /* TOK_CLASS, owned */
    size_t nranges;
} token;

typedef enum match_type {
    MATCH_EXACT,
    MATCH_PREFIX,
    MATCH_SUFFIX,
    MATCH_REGEXP,
} match_type;

typedef struct pattern {
    char *text; /* cleaned, without "!" */
    bool exclusion;
    match_type type;
    token *toks;
    size_t ntoks;
} pattern;

struct kiln_ignore {
    pattern *pats;
    size_t npats;
    bool exclusions;
};

/* ---------------------------------------------------------------------------------------------
 * UTF-8 helpers (Go decodes runes; invalid bytes count as one rune each)
 */

static size_t
rune_decode(const unsigned char *s, size_t len, uint32_t *out)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t r;
    if (c < 0x80) {
        *out = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        n = 2;
        r = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        r = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        r = c & 0x07;
    } else {
        *out = 0xfffd;
        return 1;
    }
    if (n > len) {
        *out = 0xfffd;
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *out = 0xfffd;
            return 1;
        }
        r = (r << 6) | (s[i] & 0x3f);
    }
    *out = r;
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Validation: Go's filepath.Match grammar
 */

/* One class element character (getEsc): not empty, not '-' or ']' unescaped. */
static int
class_char(const char *p, size_t len, size_t *pos, uint32_t *out)
{
    if (*pos >= len || p[*pos] == '-' || p[*pos] == ']')
        return -1;
    if (p[*pos] == '\\') {
        (*pos)++;
        if (*pos >= len)
            return -1;
    }
    *pos += rune_decode((const unsigned char *)p + *pos, len - *pos, out);
    return 0;
}

/* Parse a class starting after '['. On success *pos is after ']' and ranges are appended. */
static int
parse_class(const char *p, size_t len, size_t *pos, token *t)
{
    size_t nrange = 0;
    t->kind = TOK_CLASS;
    if (*pos < len && p[*pos] == '^') {
        t->negated = true;
        (*pos)++;
    }
    for (;;) {
        uint32_t lo, hi;
        if (*pos < len && p[*pos] == ']' && nrange > 0) {
            (*pos)++;
            return 0;
        }
        if (class_char(p, len, pos, &lo) < 0)
            return -1;
        hi = lo;
        if (*pos < len && p[*pos] == '-') {
            (*pos)++;
            if (class_char(p, len, pos, &hi) < 0)
                return -1;
        }
        t->ranges = xreallocarray(t->ranges, t->nranges + 1, sizeof(range));
        t->ranges[t->nranges++] = (range){lo, hi};
        nrange++;
    }
}

/* Check the whole pattern against filepath.Match's grammar (a trailing '\' or a malformed class
 * is an error, wherever it appears). */
static int
validate_pattern(const char *p, kiln_error **err)
{
    size_t len = strlen(p);
    for (size_t i = 0; i < len;) {
        if (p[i] == '\\') {
            if (i + 1 >= len)
                return kiln_error_set(err, KILN_EINVAL, "trailing backslash");
            i += 2;
        } else if (p[i] == '[') {
            token t = {0};
            size_t pos = i + 1;
            int rc = parse_class(p, len, &pos, &t);
            free(t.ranges);
            if (rc < 0)
                return kiln_error_set(err, KILN_EINVAL, "malformed character class at offset %zu",
                                      i);
            i = pos;
        } else {
            i++;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Compilation to tokens (mirrors patternmatcher's regexp translation)
 */

static void
push_tok(pattern *pat, token t)
{
    pat->toks = xreallocarray(pat->toks, pat->ntoks + 1, sizeof(token));
    pat->toks[pat->ntoks++] = t;
}

static void
compile_dstar(pattern *pat, const char *p, size_t len, size_t *i, bool first)
{
    *i += 2;
    if (*i < len && p[*i] == '/')
        (*i)++;
    if (*i >= len) {
        if (pat->type == MATCH_EXACT) {
            pat->type = MATCH_PREFIX;
        } else {
            push_tok(pat, (token){.kind = TOK_DSTAR_END});
            pat->type = MATCH_REGEXP;
        }
    } else {
        push_tok(pat, (token){.kind = TOK_DSTAR});
        pat->type = MATCH_REGEXP;
    }
    if (first)
        pat->type = MATCH_SUFFIX;
}

static void
compile_pattern(pattern *pat)
{
    const char *p = pat->text;
    size_t len = strlen(p);
    pat->type = MATCH_EXACT;
    for (size_t i = 0; i < len;) {
        bool first = i == 0;
        char c = p[i];
        if (c == '*' && i + 1 < len && p[i + 1] == '*') {
            compile_dstar(pat, p, len, &i, first);
        } else if (c == '*') {
            push_tok(pat, (token){.kind = TOK_STAR});
            pat->type = MATCH_REGEXP;
            i++;
        } else if (c == '?') {
            push_tok(pat, (token){.kind = TOK_ANY});
            pat->type = MATCH_REGEXP;
            i++;
        } else if (c == '\\' && i + 1 < len) {
            push_tok(pat, (token){.kind = TOK_LIT, .c = (unsigned char)p[i + 1]});
            pat->type = MATCH_REGEXP;
            i += 2;
        } else if (c == '[') {
            token t = {0};
            size_t pos = i + 1;
            /* validated already, so this cannot fail */
            kiln_assert(parse_class(p, len, &pos, &t) == 0);
            push_tok(pat, t);
            pat->type = MATCH_REGEXP;
            i = pos;
        } else if (c == '^') {
            /* in regexp mode a bare '^' is an anchor; in exact mode the text is compared */
            push_tok(pat, (token){.kind = TOK_CARET});
            i++;
        } else {
            /* ']' outside a class is a literal for Go's regexp too */
            push_tok(pat, (token){.kind = TOK_LIT, .c = (unsigned char)c});
            i++;
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Matching
 */

static bool
class_matches(const token *t, uint32_t r)
{
    bool in = false;
    for (size_t i = 0; i < t->nranges && !in; i++)
        in = t->ranges[i].lo <= r && r <= t->ranges[i].hi;
    return in != t->negated;
}

/* Advance the reachable-position set `cur` (positions 0..n in s) over one token into `next`. */
static void
step_token(const token *t, const unsigned char *s, size_t n, const bool *cur, bool *next)
{
    memset(next, 0, n + 1);
    bool any = false;
    switch (t->kind) {
    case TOK_LIT:
        for (size_t j = 0; j < n; j++)
            if (cur[j] && s[j] == t->c)
                next[j + 1] = true;
        break;
    case TOK_ANY:
    case TOK_CLASS:
        for (size_t j = 0; j < n; j++) {
            uint32_t r;
            size_t w;
            if (!cur[j])
                continue;
            w = rune_decode(s + j, n - j, &r);
            if (t->kind == TOK_ANY ? r != '/' : class_matches(t, r))
                next[j + w] = true;
        }
        break;
    case TOK_STAR:
        for (size_t j = 0; j <= n; j++)
            next[j] = cur[j] || (j > 0 && next[j - 1] && s[j - 1] != '/');
        break;
    case TOK_DSTAR:
        for (size_t j = 0; j <= n; j++) {
            next[j] = cur[j] || (j > 0 && s[j - 1] == '/' && any);
            any = any || cur[j];
        }
        break;
    case TOK_DSTAR_END:
        for (size_t j = 0; j <= n; j++) {
            any = any || cur[j];
            next[j] = any;
        }
        break;
    case TOK_CARET:
        next[0] = cur[0];
        break;
    }
}

static bool
run_tokens(const pattern *pat, const char *path, size_t n)
{
    const unsigned char *s = (const unsigned char *)path;
    cleanup_free bool *a = xcalloc(n + 1, sizeof(bool));
    cleanup_free bool *b = xcalloc(n + 1, sizeof(bool));
    bool *cur = a, *next = b;
    cur[0] = true;
    for (size_t i = 0; i < pat->ntoks; i++) {
        bool *tmp;
        step_token(&pat->toks[i], s, n, cur, next);
        tmp = cur;
        cur = next;
        next = tmp;
    }
    return cur[n];
}

static bool
pattern_match_n(const pattern *pat, const char *path, size_t n)
{
    size_t plen = strlen(pat->text);
    switch (pat->type) {
    case MATCH_EXACT:
        return n == plen && memcmp(path, pat->text, n) == 0;
    case MATCH_PREFIX:
        return n >= plen - 2 && memcmp(path, pat->text, plen - 2) == 0;
    case MATCH_SUFFIX: {
        const char *suffix = pat->text + 2;
        size_t slen = plen - 2;
        if (n >= slen && memcmp(path + n - slen, suffix, slen) == 0)
            return true;
        /* "**" + "/foo" also matches "foo" itself */
        return slen > 0 && suffix[0] == '/' && n == slen - 1 && memcmp(path, suffix + 1, n) == 0;
    }
    case MATCH_REGEXP:
        return run_tokens(pat, path, n);
    }
    return false;
}

/* The pattern matches `path` or one of its parent directories. */
static bool
pattern_match_or_parent(const pattern *pat, const char *path)
{
    size_t n = strlen(path);
    if (pattern_match_n(pat, path, n))
        return true;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '/' && pattern_match_n(pat, path, i))
            return true;
    return false;
}

bool
kiln_ignore_matches(const kiln_ignore *m, const char *path)
{
    bool matched = false;
    if (!m)
        return false;
    for (size_t i = 0; i < m->npats; i++) {
        const pattern *pat = &m->pats[i];
        /* an include cannot change an already matched path, nor an exception an unmatched one */
        if (pat->exclusion != matched)
            continue;
        if (pattern_match_or_parent(pat, path))
            matched = !pat->exclusion;
    }
    return matched;
}

bool
kiln_ignore_matches_walk(const kiln_ignore *m, const char *path, const bool *parent, bool *info)
{
    bool matched = false;
    if (!m)
        return false;
    for (size_t i = 0; i < m->npats; i++) {
        const pattern *pat = &m->pats[i];
        bool match = parent ? parent[i] : false;
        if (!match) {
            if (pat->exclusion != matched) {
                info[i] = false;
                continue;
            }
            if (parent)
                match = pattern_match_n(pat, path, strlen(path));
            else
                match = pattern_match_or_parent(pat, path);
        }
        info[i] = match;
        if (match)
            matched = !pat->exclusion;
    }
    return matched;
}

/* Could `pat` match some path strictly below `dir`? Component-wise and conservative: a component
 * containing "**" or one we cannot judge answers yes. */
static bool
pattern_may_match_below(const pattern *pat, const char *dir)
{
    const char *pc = pat->text;
    const char *dc = dir;
    if (strstr(pat->text, "**"))
        return true;
    for (;;) {
        const char *pe = strchr(pc, '/');
        const char *de = strchr(dc, '/');
        size_t plen = pe ? (size_t)(pe - pc) : strlen(pc);
        size_t dlen = de ? (size_t)(de - dc) : strlen(dc);
        cleanup_free char *comp = xstrndup(pc, plen);
        pattern sub = {.text = comp};
        bool ok;
        /* a class or escape cut in two by the split cannot be judged: answer yes */
        if (validate_pattern(comp, NULL) < 0)
            return true;
        compile_pattern(&sub);
        ok = pattern_match_n(&sub, dc, dlen);
        for (size_t i = 0; i < sub.ntoks; i++)
            free(sub.toks[i].ranges);
        free(sub.toks);
        if (!ok)
            return false;
        if (!pe)
            return true; /* the pattern matches dir or a parent: it matches everything below */
        if (!de)
            return true; /* the pattern continues below dir */
        pc = pe + 1;
        dc = de + 1;
    }
}

bool
kiln_ignore_may_match_below(const kiln_ignore *m, const char *dir, bool exclusions)
{
    if (!m)
        return false;
    for (size_t i = 0; i < m->npats; i++) {
        if (m->pats[i].exclusion != exclusions)
            continue;
        if (pattern_may_match_below(&m->pats[i], dir))
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Construction
 */

/* Go's strings.TrimSpace for ASCII whitespace; returns the trimmed span. */
static const char *
trim_space(const char *s, size_t len, size_t *out_len)
{
    while (len > 0 && isspace((unsigned char)s[0])) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    *out_len = len;
    return s;
}

static void
pattern_dispose(pattern *pat)
{
    for (size_t i = 0; i < pat->ntoks; i++)
        free(pat->toks[i].ranges);
    free(pat->toks);
    free(pat->text);
}

void
kiln_ignore_free(kiln_ignore *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->npats; i++)
        pattern_dispose(&m->pats[i]);
    free(m->pats);
    free(m);
}

static int
add_pattern(kiln_ignore *m, const char *raw, size_t idx, kiln_error **err)
{
    size_t len;
    const char *t = trim_space(raw, strlen(raw), &len);
    cleanup_free char *trimmed = NULL;
    cleanup_free char *clean = NULL;
    pattern pat = {0};
    const char *body;
    if (len == 0)
        return 0;
    trimmed = xstrndup(t, len);
    clean = kiln_path_clean(trimmed);
    body = clean;
    if (body[0] == '!') {
        if (body[1] == '\0')
            return kiln_error_set(err, KILN_EINVAL, "pattern %zu: illegal exclusion pattern \"!\"",
                                  idx);
        pat.exclusion = true;
        m->exclusions = true;
        body++;
    }
    if (validate_pattern(body, err) < 0)
        return kiln_error_wrap(err, "pattern %zu `%s`", idx, raw);
    pat.text = xstrdup(body);
    compile_pattern(&pat);
    m->pats = xreallocarray(m->pats, m->npats + 1, sizeof(pattern));
    m->pats[m->npats++] = pat;
    return 0;
}

int
kiln_ignore_new(kiln_ignore **out, const char *const *patterns, size_t n, kiln_error **err)
{
    kiln_ignore *m = xnew(kiln_ignore);
    for (size_t i = 0; i < n; i++) {
        int rc = add_pattern(m, patterns[i], i, err);
        if (rc < 0) {
            kiln_ignore_free(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

/* One non-comment line of a .dockerignore, trimmed, to its stored pattern form. */
static char *
normalize_line(const char *s, size_t len)
{
    bool invert;
    cleanup_free char *body = NULL;
    cleanup_free char *clean = NULL;
    s = trim_space(s, len, &len);
    if (len == 0)
        return NULL;
    invert = s[0] == '!';
    if (invert)
        s = trim_space(s + 1, len - 1, &len);
    body = xstrndup(s, len);
    if (len > 0) {
        const char *p;
        clean = kiln_path_clean(body);
        p = clean;
        if (strlen(p) > 1 && p[0] == '/')
            p++;
        return xasprintf("%s%s", invert ? "!" : "", p);
    }
    return xasprintf("%s", invert ? "!" : "");
}

int
kiln_ignore_parse_file(kiln_vec *out, const char *data, size_t len, kiln_error **err)
{
    size_t pos = 0;
    size_t lineno = 0;
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - line) : len - pos;
        char *pat;
        lineno++;
        pos += llen + (nl ? 1 : 0);
        if (llen > KILN_IGNORE_MAX_LINE)
            return kiln_error_set(err, KILN_EPARSE, "line %zu: longer than %d bytes", lineno,
                                  KILN_IGNORE_MAX_LINE);
        if (llen > 0 && line[llen - 1] == '\r')
            llen--;
        if (llen > 0 && line[0] == '#')
            continue;
        if (memchr(line, '\0', llen))
            return kiln_error_set(err, KILN_EPARSE, "line %zu: NUL byte in pattern", lineno);
        pat = normalize_line(line, llen);
        if (pat)
            kiln_vec_push(out, pat);
    }
    return 0;
}

int
kiln_ignore_new_from_file(kiln_ignore **out, const char *data, size_t len, const char *what,
                          kiln_error **err)
{
    kiln_vec pats = KILN_VEC_INIT;
    int rc = kiln_ignore_parse_file(&pats, data, len, err);
    if (rc == 0)
        rc = kiln_ignore_new(out, (const char *const *)pats.items, pats.len, err);
    kiln_strvec_dispose(&pats);
    if (rc < 0)
        return kiln_error_wrap(err, "%s", what);
    return 0;
}

size_t
kiln_ignore_count(const kiln_ignore *m)
{
    return m ? m->npats : 0;
}

bool
kiln_ignore_has_exclusions(const kiln_ignore *m)
{
    return m && m->exclusions;
}

const char *
kiln_ignore_pattern(const kiln_ignore *m, size_t i)
{
    kiln_assert(i < m->npats);
    return m->pats[i].text;
}

bool
kiln_ignore_pattern_is_exclusion(const kiln_ignore *m, size_t i)
{
    kiln_assert(i < m->npats);
    return m->pats[i].exclusion;
}
