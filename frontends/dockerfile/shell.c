/*
 * shell.c: BuildKit's shell lexer: expands a Dockerfile word the way a POSIX shell would, minus
 * command substitution, and optionally splits it into words.
 *
 * The lexer walks the word one rune at a time (invalid UTF-8 becomes U+FFFD, as Go's text/scanner
 * does; a leading byte-order mark is skipped). Quotes and `$` dispatch to helpers; a ${...} body
 * recurses into the same loop with a stop character, so `${A:-${B:-x}}` nests naturally. Nesting is
 * capped at KILN_SHLEX_MAX_DEPTH to keep hostile input from exhausting the stack.
 *
 * Word splitting (ProcessWords) happens after expansion: unquoted spaces and spaces produced by
 * unquoted `$` expansions split, quoted text and escaped characters never do.
 */
#include "frontends/dockerfile/shell.h"
#include "base/base.h"
#include "base/buf.h"
#include "frontends/dockerfile/df_internal.h"

#define SH_EOF ((int32_t)-1)

typedef struct shword {
    const kiln_shlex *lex;
    const char *src;
    size_t len;
    size_t pos;
    kiln_shlex_lookup_fn lookup;
    void *payload;
    kiln_map matched; /* names only; values unused */
    kiln_map unset;
    int depth;
} shword;

/* The words being built by ProcessWords (BuildKit's wordsStruct). */
typedef struct words {
    kiln_buf word;
    kiln_vec list;
    bool in_word;
} words;

static int process_stop_on(shword *sw, int32_t stop, bool raw_escapes, kiln_buf *result, words *w,
                           kiln_error **err);
static int process_dollar(shword *sw, kiln_buf *out, kiln_error **err);

void
kiln_shlex_init(kiln_shlex *lex, char escape_token)
{
    memset(lex, 0, sizeof(*lex));
    lex->escape_token = escape_token;
}

/* ------------------------------------------------------------------------------------------ */
/* scanner and word accumulation */

static int32_t
sh_peek(const shword *sw)
{
    uint32_t r;

    if (sw->pos >= sw->len)
        return SH_EOF;
    kiln_df__utf8_decode(sw->src + sw->pos, sw->len - sw->pos, &r);
    return (int32_t)r;
}

static int32_t
sh_next(shword *sw)
{
    uint32_t r;

    if (sw->pos >= sw->len)
        return SH_EOF;
    sw->pos += kiln_df__utf8_decode(sw->src + sw->pos, sw->len - sw->pos, &r);
    return (int32_t)r;
}

static bool
is_escape(const shword *sw, int32_t ch)
{
    return ch == (int32_t)(unsigned char)sw->lex->escape_token;
}

static void
words_push(words *w)
{
    kiln_vec_push(&w->list, kiln_buf_detach(&w->word));
    w->in_word = false;
}

static void
words_add_raw_char(words *w, int32_t ch)
{
    kiln_df__put_rune(&w->word, (uint32_t)ch);
    w->in_word = true;
}

static void
words_add_char(words *w, int32_t ch)
{
    bool space = kiln_df__is_space((uint32_t)ch);

    if (space && w->in_word) {
        if (w->word.len != 0)
            words_push(w);
    } else if (!space) {
        words_add_raw_char(w, ch);
    }
}

/* Text from a `$` expansion: its spaces split words. */
static void
words_add_string(words *w, const char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t r;
        i += kiln_df__utf8_decode(s + i, len - i, &r);
        words_add_char(w, (int32_t)r);
    }
}

/* Quoted text: never splits. */
static void
words_add_raw_string(words *w, const char *s, size_t len)
{
    kiln_buf_put(&w->word, s, len, NULL);
    w->in_word = true;
}

static void
words_finish(words *w)
{
    if (w->word.len > 0)
        words_push(w);
}

/* ------------------------------------------------------------------------------------------ */
/* variables */

static bool
get_env(shword *sw, const char *name, const char **value)
{
    const char *v = NULL;
    bool found = sw->lookup && sw->lookup(name, &v, sw->payload);

    if (name[0] != '\0')
        kiln_map_put(found ? &sw->matched : &sw->unset, name, NULL);
    *value = found && v ? v : "";
    return found;
}

static bool
is_special_param(int32_t ch)
{
    return ch == '@' || ch == '*' || ch == '#' || ch == '?' || ch == '-' || ch == '$' ||
           ch == '!' || ch == '0';
}

/* A name: letters, digits and '_'; or a run of digits (positional); or one special character. */
static void
process_name(shword *sw, kiln_buf *name)
{
    int32_t ch;

    while ((ch = sh_peek(sw)) != SH_EOF) {
        if (name->len == 0 && kiln_df__is_digit((uint32_t)ch)) {
            while ((ch = sh_peek(sw)) != SH_EOF && kiln_df__is_digit((uint32_t)ch))
                kiln_df__put_rune(name, (uint32_t)sh_next(sw));
            return;
        }
        if (name->len == 0 && is_special_param(ch)) {
            kiln_df__put_rune(name, (uint32_t)sh_next(sw));
            return;
        }
        if (!kiln_df__is_letter((uint32_t)ch) && !kiln_df__is_digit((uint32_t)ch) && ch != '_')
            break;
        kiln_df__put_rune(name, (uint32_t)sh_next(sw));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* quotes */

static int
process_single_quote(shword *sw, kiln_buf *out, kiln_error **err)
{
    int32_t ch = sh_next(sw);

    if (sw->lex->raw_quotes)
        kiln_df__put_rune(out, (uint32_t)ch);
    for (;;) {
        ch = sh_next(sw);
        if (ch == SH_EOF)
            return kiln_error_set(err, KILN_EPARSE,
                                  "unexpected end of statement while looking for matching "
                                  "single-quote");
        if (ch == '\'') {
            if (sw->lex->raw_quotes)
                kiln_df__put_rune(out, (uint32_t)ch);
            return 0;
        }
        kiln_df__put_rune(out, (uint32_t)ch);
    }
}

static int
process_double_quote(shword *sw, kiln_buf *out, kiln_error **err)
{
    int32_t ch = sh_next(sw);
    int rc;

    if (sw->lex->raw_quotes)
        kiln_df__put_rune(out, (uint32_t)ch);
    for (;;) {
        int32_t p = sh_peek(sw);
        if (p == SH_EOF)
            return kiln_error_set(err, KILN_EPARSE,
                                  "unexpected end of statement while looking for matching "
                                  "double-quote");
        if (p == '"') {
            ch = sh_next(sw);
            if (sw->lex->raw_quotes)
                kiln_df__put_rune(out, (uint32_t)ch);
            return 0;
        }
        if (p == '$') {
            rc = process_dollar(sw, out, err);
            if (rc < 0)
                return rc;
            continue;
        }
        ch = sh_next(sw);
        if (is_escape(sw, ch)) {
            if (sw->lex->raw_escapes)
                kiln_df__put_rune(out, (uint32_t)ch);
            p = sh_peek(sw);
            if (p == SH_EOF)
                continue; /* a lone escape at the end: reported as unterminated above */
            /* only ", $ and the escape token itself can be escaped inside double quotes */
            if (p == '"' || p == '$' || is_escape(sw, p))
                ch = sh_next(sw);
        }
        kiln_df__put_rune(out, (uint32_t)ch);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* glob patterns */

/* Match a bracket expression at pat[*pi] == '[' against r. Returns 1 match, 0 no match, -1 when
 * the bracket is not closed (then '[' is an ordinary character). Advances *pi past ']' on 0/1. */
static int
match_bracket(const char *pat, size_t plen, size_t *pi, uint32_t r, char esc)
{
    size_t i = *pi + 1;
    bool negate = false, matched = false, first = true;

    if (i < plen && (pat[i] == '!' || pat[i] == '^')) {
        negate = true;
        i++;
    }
    while (i < plen && (pat[i] != ']' || first)) {
        uint32_t lo, hi;
        first = false;
        if (pat[i] == esc && i + 1 < plen)
            i++;
        i += kiln_df__utf8_decode(pat + i, plen - i, &lo);
        hi = lo;
        if (i + 1 < plen && pat[i] == '-' && pat[i + 1] != ']') {
            i++;
            if (pat[i] == esc && i + 1 < plen)
                i++;
            i += kiln_df__utf8_decode(pat + i, plen - i, &hi);
        }
        if (r >= lo && r <= hi)
            matched = true;
    }
    if (i >= plen)
        return -1;
    *pi = i + 1;
    return matched != negate;
}

/* Match the single-rune pattern element at pat[*pi] (not '*') against r; advances *pi on match. */
static bool
match_element(const char *pat, size_t plen, size_t *pi, uint32_t r, char esc)
{
    uint32_t pc;
    size_t i = *pi;

    if (pat[i] == '?') {
        *pi = i + 1;
        return true;
    }
    if (pat[i] == '[') {
        size_t j = i;
        int m = match_bracket(pat, plen, &j, r, esc);
        if (m >= 0) {
            if (m)
                *pi = j;
            return m == 1;
        }
    }
    if (pat[i] == esc && i + 1 < plen)
        i++;
    i += kiln_df__utf8_decode(pat + i, plen - i, &pc);
    if (pc != r)
        return false;
    *pi = i;
    return true;
}

bool
kiln_shlex__glob_match(const char *pat, size_t plen, const char *s, size_t slen, char esc)
{
    size_t pi = 0, si = 0, star_pi = SIZE_MAX, star_si = 0;

    /* classic single-backtrack-point glob matching: linear in practice, never exponential */
    while (si < slen) {
        uint32_t r;
        size_t w = kiln_df__utf8_decode(s + si, slen - si, &r);
        if (pi < plen && pat[pi] == '*') {
            star_pi = ++pi;
            star_si = si;
            continue;
        }
        if (pi < plen && match_element(pat, plen, &pi, r, esc)) {
            si += w;
            continue;
        }
        if (star_pi == SIZE_MAX)
            return false;
        pi = star_pi;
        star_si += kiln_df__utf8_decode(s + star_si, slen - star_si, &r);
        si = star_si;
    }
    while (pi < plen && pat[pi] == '*')
        pi++;
    return pi == plen;
}

/* A glob pattern compiled to one element per rune position, so that every prefix of a string
 * that the pattern matches can be found in a single left-to-right pass (an NFA simulation),
 * instead of one backtracking match per candidate length. */
typedef enum { GEL_STAR, GEL_ANY, GEL_CLASS, GEL_LIT } gel_kind;

typedef struct gel {
    gel_kind kind;
    uint32_t r; /* GEL_LIT */
    size_t cls; /* GEL_CLASS: offset of '[' in the pattern */
} gel;

typedef struct glob {
    const char *pat;
    size_t plen;
    char esc;
    gel *el;
    size_t n;
} glob;

static void
glob_compile(glob *g, const char *pat, char esc)
{
    size_t i = 0;

    g->pat = pat;
    g->plen = strlen(pat);
    g->esc = esc;
    g->el = xcalloc(g->plen + 1, sizeof(gel));
    g->n = 0;
    while (i < g->plen) {
        gel *e = &g->el[g->n++];
        size_t j = i;
        if (pat[i] == '*' || pat[i] == '?') {
            e->kind = pat[i] == '*' ? GEL_STAR : GEL_ANY;
            i++;
            continue;
        }
        if (pat[i] == '[' && match_bracket(pat, g->plen, &j, 0, esc) >= 0) {
            e->kind = GEL_CLASS;
            e->cls = i;
            i = j;
            continue;
        }
        if (pat[i] == esc && i + 1 < g->plen)
            i++;
        e->kind = GEL_LIT;
        i += kiln_df__utf8_decode(pat + i, g->plen - i, &e->r);
    }
}

static bool
gel_match(const glob *g, const gel *e, uint32_t r)
{
    size_t j = e->cls;

    switch (e->kind) {
    case GEL_ANY:
        return true;
    case GEL_LIT:
        return e->r == r;
    case GEL_CLASS:
        return match_bracket(g->pat, g->plen, &j, r, g->esc) == 1;
    case GEL_STAR:
        break;
    }
    return false;
}

/* Stars match the empty string: propagate each active state across following stars. State i
 * stands for element i, or element n-1-i when matching in reverse. */
static void
glob_closure(const glob *g, bool *active, bool reverse)
{
    for (size_t i = 0; i < g->n; i++) {
        if (active[i] && g->el[reverse ? g->n - 1 - i : i].kind == GEL_STAR)
            active[i + 1] = true;
    }
}

/* ends[k] = the pattern matches the first k runes of r[0..nr) (in `reverse` order when set:
 * elements are taken last to first and runes from the end, to match suffixes). */
static void
glob_prefix_ends(const glob *g, const uint32_t *r, size_t nr, bool reverse, bool *ends)
{
    cleanup_free bool *cur = xcalloc(g->n + 1, sizeof(bool));
    cleanup_free bool *nxt = xcalloc(g->n + 1, sizeof(bool));
    bool any = true;

    cur[0] = true;
    glob_closure(g, cur, reverse);
    ends[0] = cur[g->n];
    for (size_t k = 0; k < nr; k++) {
        uint32_t ch = r[reverse ? nr - 1 - k : k];
        memset(nxt, 0, (g->n + 1) * sizeof(bool));
        any = false;
        for (size_t i = 0; i < g->n; i++) {
            const gel *e = &g->el[reverse ? g->n - 1 - i : i];
            if (!cur[i])
                continue;
            if (e->kind == GEL_STAR)
                nxt[i] = any = true;
            else if (gel_match(g, e, ch))
                nxt[i + 1] = any = true;
        }
        glob_closure(g, nxt, reverse);
        ends[k + 1] = nxt[g->n];
        memcpy(cur, nxt, (g->n + 1) * sizeof(bool));
        if (!any) {
            memset(ends + k + 2, 0, (nr - k - 1) * sizeof(bool));
            return;
        }
    }
}

/* Decode v into runes and their byte offsets (off[nr] = strlen(v)). Both owned by the caller. */
static size_t
decode_runes(const char *v, uint32_t **runes, size_t **off)
{
    size_t len = strlen(v), n = 0, i = 0;

    *runes = xcalloc(len + 1, sizeof(uint32_t));
    *off = xcalloc(len + 1, sizeof(size_t));
    while (i < len) {
        (*off)[n] = i;
        i += kiln_df__utf8_decode(v + i, len - i, &(*runes)[n]);
        n++;
    }
    (*off)[n] = len;
    return n;
}

/* ${V#p} ${V##p} (suffix = false) and ${V%p} ${V%%p} (suffix = true): remove the shortest (longest
 * when greedy) matching prefix or suffix. */
static void
trim_affix(kiln_buf *out, const char *pat, const char *v, bool greedy, bool suffix, char esc)
{
    cleanup_free uint32_t *runes = NULL;
    cleanup_free size_t *off = NULL;
    cleanup_free bool *ends = NULL;
    glob g;
    size_t n = decode_runes(v, &runes, &off), best = SIZE_MAX;

    glob_compile(&g, pat, esc);
    ends = xcalloc(n + 1, sizeof(bool));
    glob_prefix_ends(&g, runes, n, suffix, ends);
    free(g.el);
    for (size_t k = 0; k <= n; k++) {
        if (ends[k] && (best == SIZE_MAX || greedy))
            best = k;
    }
    if (best == SIZE_MAX)
        kiln_buf_puts(out, v, NULL);
    else if (suffix)
        kiln_buf_put(out, v, off[n - best], NULL);
    else
        kiln_buf_puts(out, v + off[best], NULL);
}

/* ${V/p/r} and ${V//p/r}: replace the leftmost-longest match (or every one). An empty match only
 * counts when V itself is empty, as in bash; an empty pattern changes nothing. */
static void
replace_pattern(kiln_buf *out, const char *pat, const char *repl, const char *v, bool all, char esc)
{
    cleanup_free uint32_t *runes = NULL;
    cleanup_free size_t *off = NULL;
    cleanup_free bool *ends = NULL;
    size_t n = decode_runes(v, &runes, &off), from = 0;
    glob g;

    if (pat[0] == '\0') {
        kiln_buf_puts(out, v, NULL);
        return;
    }
    glob_compile(&g, pat, esc);
    ends = xcalloc(n + 1, sizeof(bool));
    for (size_t s = 0; s <= n; s++) {
        size_t len = SIZE_MAX;
        if (off[s] < off[from])
            continue;
        glob_prefix_ends(&g, runes + s, n - s, false, ends);
        for (size_t k = n - s + 1; k-- > 0;) {
            if (ends[k] && (k > 0 || n == 0)) {
                len = k;
                break;
            }
        }
        if (len == SIZE_MAX)
            continue;
        kiln_buf_put(out, v + off[from], off[s] - off[from], NULL);
        kiln_buf_puts(out, repl, NULL);
        from = s + len;
        if (!all || n == 0)
            break;
        s = from - 1;
    }
    free(g.el);
    kiln_buf_puts(out, v + off[from], NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* ${...} */

typedef struct subst {
    const char *name;
    char op[4];         /* the operator as written: ":-", "##", "/", ... */
    bool null_is_unset; /* the ':' forms treat an empty value like an unset one */
} subst;

/* Read a ${...} operand up to `stop`, turning "ran out of input" into BuildKit's message. */
static int
read_operand(shword *sw, int32_t stop, bool raw, kiln_buf *out, const char *missing,
             kiln_error **err)
{
    int rc = process_stop_on(sw, stop, raw, out, NULL, err);

    if (rc < 0 && sh_peek(sw) == SH_EOF)
        return kiln_error_set(err, KILN_EPARSE, "syntax error: %s", missing);
    return rc;
}

static int
apply_modifier(shword *sw, const subst *s, const char *word, kiln_buf *out, kiln_error **err)
{
    const char *value;
    bool set = get_env(sw, s->name, &value);
    bool empty = !set || (s->null_is_unset && value[0] == '\0');
    char op = s->op[s->null_is_unset ? 1 : 0];

    if (!set && sw->lex->skip_unset_env) {
        kiln_buf_printf(out, NULL, "${%s%s%s}", s->name, s->op, word);
        return 0;
    }
    switch (op) {
    case '-':
        kiln_buf_puts(out, empty ? word : value, NULL);
        return 0;
    case '+':
        kiln_buf_puts(out, empty ? "" : word, NULL);
        return 0;
    case '?':
        if (empty)
            return kiln_error_set(err, KILN_EINVAL, "%s: %s", s->name,
                                  word[0] ? word
                                  : set   ? "is not allowed to be empty"
                                          : "is not allowed to be unset");
        kiln_buf_puts(out, value, NULL);
        return 0;
    case '#':
        trim_affix(out, word, value, s->op[1] == '#', false, sw->lex->escape_token);
        return 0;
    case '%':
        trim_affix(out, word, value, s->op[1] == '%', true, sw->lex->escape_token);
        return 0;
    default:
        return kiln_error_set(err, KILN_EPARSE, "unsupported modifier (%s) in substitution", s->op);
    }
}

/* After "${name": one of the operators -, +, ?, #, ##, %, %% (optionally after ':'). */
static int
process_modifier(shword *sw, subst *s, int32_t ch, kiln_buf *out, kiln_error **err)
{
    kiln_buf word = KILN_BUF_INIT;
    bool pattern;
    int rc;

    if (ch == ':') {
        s->null_is_unset = true;
        ch = sh_next(sw);
        s->op[0] = ':';
    }
    if (ch == SH_EOF)
        return kiln_error_set(err, KILN_EPARSE, "syntax error: missing '}'");
    s->op[s->null_is_unset ? 1 : 0] = ch < 0x80 ? (char)ch : '?';
    pattern = ch == '#' || ch == '%';
    if (pattern && s->null_is_unset)
        return kiln_error_set(err, KILN_EPARSE, "unsupported modifier (%s) in substitution", s->op);
    if (pattern && sh_peek(sw) == ch) {
        sh_next(sw);
        s->op[1] = (char)ch;
    }
    if (!s->null_is_unset && !pattern && ch != '-' && ch != '+' && ch != '?')
        return kiln_error_set(err, KILN_EPARSE, "unsupported modifier (%s) in substitution", s->op);
    /* patterns keep their escapes so that `\*` stays a literal star for the matcher */
    rc = read_operand(sw, '}', pattern || sw->lex->raw_escapes, &word, "missing '}'", err);
    if (rc == 0)
        rc = apply_modifier(sw, s, kiln_buf_cstr(&word), out, err);
    kiln_buf_dispose(&word);
    return rc;
}

/* After "${name/": ${V/p/r} or ${V//p/r}. */
static int
process_replace(shword *sw, const char *name, kiln_buf *out, kiln_error **err)
{
    kiln_buf pat = KILN_BUF_INIT, repl = KILN_BUF_INIT;
    bool all = sh_peek(sw) == '/';
    const char *value;
    int rc;

    if (all)
        sh_next(sw);
    rc = read_operand(sw, '/', true, &pat, "missing '/' in ${}", err);
    if (rc == 0)
        rc = read_operand(sw, '}', sw->lex->raw_escapes, &repl, "missing '}'", err);
    if (rc == 0) {
        bool set = get_env(sw, name, &value);
        if (!set && sw->lex->skip_unset_env)
            kiln_buf_printf(out, NULL, "${%s%s%s/%s}", name, all ? "//" : "/", kiln_buf_cstr(&pat),
                            kiln_buf_cstr(&repl));
        else
            replace_pattern(out, kiln_buf_cstr(&pat), kiln_buf_cstr(&repl), value, all,
                            sw->lex->escape_token);
    }
    kiln_buf_dispose(&pat);
    kiln_buf_dispose(&repl);
    return rc;
}

/* After "${". */
static int
process_braced(shword *sw, kiln_buf *out, kiln_error **err)
{
    kiln_buf name = KILN_BUF_INIT;
    subst s = {0};
    const char *value;
    int32_t ch = sh_peek(sw);
    int rc = 0;

    if (ch == SH_EOF)
        return kiln_error_set(err, KILN_EPARSE, "syntax error: missing '}'");
    if (ch == '{' || ch == '}' || ch == ':')
        return kiln_error_set(err, KILN_EPARSE, "syntax error: bad substitution");
    process_name(sw, &name);
    s.name = kiln_buf_cstr(&name);
    ch = sh_next(sw);
    if (ch == '}') {
        bool set = get_env(sw, s.name, &value);
        if (!set && sw->lex->skip_unset_env)
            kiln_buf_printf(out, NULL, "${%s}", s.name);
        else
            kiln_buf_puts(out, value, NULL);
    } else if (ch == '/') {
        rc = process_replace(sw, s.name, out, err);
    } else if (ch == SH_EOF) {
        rc = kiln_error_set(err, KILN_EPARSE, "syntax error: missing '}'");
    } else if (ch == ':' || ch == '-' || ch == '+' || ch == '?' || ch == '#' || ch == '%') {
        rc = process_modifier(sw, &s, ch, out, err);
    } else {
        char bad[5] = {0};
        kiln_buf tmp = KILN_BUF_INIT;
        kiln_df__put_rune(&tmp, (uint32_t)ch);
        kiln_strlcpy(bad, kiln_buf_cstr(&tmp), sizeof(bad));
        kiln_buf_dispose(&tmp);
        rc = kiln_error_set(err, KILN_EPARSE, "unsupported modifier (%s) in substitution", bad);
    }
    kiln_buf_dispose(&name);
    return rc;
}

static int
process_dollar(shword *sw, kiln_buf *out, kiln_error **err)
{
    kiln_buf name = KILN_BUF_INIT;
    const char *value;
    int rc;

    sh_next(sw);
    if (sh_peek(sw) != '{') {
        process_name(sw, &name);
        if (name.len == 0) {
            kiln_buf_putc(out, '$', NULL);
        } else if (!get_env(sw, name.ptr, &value) && sw->lex->skip_unset_env) {
            kiln_buf_printf(out, NULL, "$%s", name.ptr);
        } else {
            kiln_buf_puts(out, value, NULL);
        }
        kiln_buf_dispose(&name);
        return 0;
    }
    sh_next(sw);
    if (sw->depth >= KILN_SHLEX_MAX_DEPTH)
        return kiln_error_set(err, KILN_EPARSE, "substitutions nested more than %d deep",
                              KILN_SHLEX_MAX_DEPTH);
    sw->depth++;
    rc = process_braced(sw, out, err);
    sw->depth--;
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* the main loop */

static int
process_special(shword *sw, int32_t ch, kiln_buf *result, words *w, kiln_error **err)
{
    kiln_buf tmp = KILN_BUF_INIT;
    int rc;

    if (ch == '$')
        rc = process_dollar(sw, &tmp, err);
    else if (ch == '\'')
        rc = process_single_quote(sw, &tmp, err);
    else
        rc = process_double_quote(sw, &tmp, err);
    if (rc == 0) {
        kiln_buf_put(result, tmp.ptr ? tmp.ptr : "", tmp.len, NULL);
        if (w && ch == '$')
            words_add_string(w, tmp.ptr ? tmp.ptr : "", tmp.len);
        else if (w)
            words_add_raw_string(w, tmp.ptr ? tmp.ptr : "", tmp.len);
    }
    kiln_buf_dispose(&tmp);
    return rc;
}

/* Process until `stop` (consumed) or, with stop == SH_EOF, the end of input. */
static int
process_stop_on(shword *sw, int32_t stop, bool raw_escapes, kiln_buf *result, words *w,
                kiln_error **err)
{
    int32_t ch;

    while ((ch = sh_peek(sw)) != SH_EOF) {
        if (stop != SH_EOF && ch == stop) {
            sh_next(sw);
            return 0;
        }
        if (ch == '$' || (!sw->lex->skip_process_quotes && (ch == '\'' || ch == '"'))) {
            int rc = process_special(sw, ch, result, w, err);
            if (rc < 0)
                return rc;
            continue;
        }
        ch = sh_next(sw);
        if (is_escape(sw, ch)) {
            if (raw_escapes) {
                if (w)
                    words_add_raw_char(w, ch);
                kiln_df__put_rune(result, (uint32_t)ch);
            }
            /* the escape token escapes the next character; at the very end it is dropped */
            ch = sh_next(sw);
            if (ch == SH_EOF)
                break;
            if (w)
                words_add_raw_char(w, ch);
        } else if (w) {
            words_add_char(w, ch);
        }
        kiln_df__put_rune(result, (uint32_t)ch);
    }
    if (stop != SH_EOF) {
        kiln_buf s = KILN_BUF_INIT;
        int rc;
        kiln_df__put_rune(&s, (uint32_t)stop);
        rc = kiln_error_set(err, KILN_EPARSE,
                            "unexpected end of statement while looking for matching %s",
                            kiln_buf_cstr(&s));
        kiln_buf_dispose(&s);
        return rc;
    }
    return 0;
}

static void
map_keys_to_strvec(kiln_vec *out, const kiln_map *m)
{
    kiln_vec keys;

    kiln_vec_init(out);
    kiln_map_sorted_keys(m, &keys);
    for (size_t i = 0; i < keys.len; i++)
        kiln_strvec_push(out, keys.items[i]);
    kiln_vec_dispose(&keys, NULL);
}

int
kiln_shlex_process(kiln_shlex_result *out, const kiln_shlex *lex, const char *word,
                   kiln_shlex_lookup_fn lookup, void *payload, kiln_error **err)
{
    shword sw = {
            .lex = lex, .src = word, .len = strlen(word), .lookup = lookup, .payload = payload};
    kiln_buf result = KILN_BUF_INIT;
    words w = {KILN_BUF_INIT, KILN_VEC_INIT, false};
    int rc;

    kiln_map_init(&sw.matched);
    kiln_map_init(&sw.unset);
    /* Go's text/scanner skips a byte-order mark at the start */
    if (sw.len >= 3 && memcmp(word, "\xef\xbb\xbf", 3) == 0)
        sw.pos = 3;
    rc = process_stop_on(&sw, SH_EOF, lex->raw_escapes, &result, &w, err);
    if (rc < 0) {
        cleanup_free char *q = kiln_str_go_quote(word, strlen(word));
        kiln_error_wrap(err, "failed to process %s", q);
        kiln_buf_dispose(&result);
        kiln_buf_dispose(&w.word);
        kiln_strvec_dispose(&w.list);
    } else {
        words_finish(&w);
        kiln_buf_dispose(&w.word);
        out->word = kiln_buf_detach(&result);
        out->words = w.list;
        map_keys_to_strvec(&out->matched, &sw.matched);
        map_keys_to_strvec(&out->unset, &sw.unset);
    }
    kiln_map_dispose(&sw.matched, NULL);
    kiln_map_dispose(&sw.unset, NULL);
    return rc;
}

void
kiln_shlex_result_dispose(kiln_shlex_result *r)
{
    if (!r)
        return;
    free(r->word);
    r->word = NULL;
    kiln_strvec_dispose(&r->words);
    kiln_strvec_dispose(&r->matched);
    kiln_strvec_dispose(&r->unset);
}

bool
kiln_shlex_map_lookup(const char *name, const char **value, void *payload)
{
    const kiln_map *m = payload;

    if (!kiln_map_has(m, name))
        return false;
    *value = kiln_map_get(m, name);
    return true;
}

void
kiln_shlex_env_build(kiln_map *out, const char *const *kv, size_t n)
{
    kiln_map_init(out);
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(kv[i], '=');
        cleanup_free char *key = eq ? xstrndup(kv[i], (size_t)(eq - kv[i])) : xstrdup(kv[i]);
        free(kiln_map_put(out, key, xstrdup(eq ? eq + 1 : "")));
    }
}

int
kiln_shlex_process_word(char **out, const kiln_shlex *lex, const char *word, const kiln_map *env,
                        kiln_error **err)
{
    kiln_shlex_result r;
    int rc =
            kiln_shlex_process(&r, lex, word, env ? kiln_shlex_map_lookup : NULL, (void *)env, err);

    if (rc < 0)
        return rc;
    *out = steal_pointer(&r.word);
    kiln_shlex_result_dispose(&r);
    return 0;
}

int
kiln_shlex_process_words(kiln_vec *out, const kiln_shlex *lex, const char *word,
                         const kiln_map *env, kiln_error **err)
{
    kiln_shlex_result r;
    int rc =
            kiln_shlex_process(&r, lex, word, env ? kiln_shlex_map_lookup : NULL, (void *)env, err);

    if (rc < 0)
        return rc;
    *out = r.words;
    kiln_vec_init(&r.words);
    kiln_shlex_result_dispose(&r);
    return 0;
}
