/*
 * heredoc.c: recognising heredoc words (`<<EOF`, `<<-EOF`, `3<<'EOF'`) in RUN/COPY/ADD lines.
 *
 * As in BuildKit, the line is first split into words by the shell lexer with quotes and escapes
 * kept, so `"<<EOF"` is not a heredoc; each word matching `^(\d*)<<(-?)([^<]*)$` is then lexed
 * twice, with and without quote removal: the name is the unquoted word, and a difference in the
 * number of quote characters means part of it was quoted, which turns expansion off.
 */
#include "base/base.h"
#include "base/buf.h"
#include "frontends/dockerfile/df_internal.h"
#include "frontends/dockerfile/shell.h"

void
kiln_df_heredoc_free(kiln_df_heredoc *h)
{
    if (!h)
        return;
    free(h->name);
    free(h->content);
    free(h);
}

static size_t
count_quotes(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\'' || *s == '"';
    return n;
}

/* Lex `rest` into words with the heredoc lexer settings. */
static int
lex_words(kiln_vec *out, const char *rest, bool raw_quotes, kiln_error **err)
{
    kiln_shlex lex;

    kiln_shlex_init(&lex, '\\');
    lex.skip_unset_env = true;
    lex.raw_quotes = raw_quotes;
    return kiln_shlex_process_words(out, &lex, rest, NULL, err);
}

int
kiln_df_parse_heredoc(kiln_df_heredoc **out, const char *word, kiln_error **err)
{
    kiln_vec words = KILN_VEC_INIT, raw = KILN_VEC_INIT;
    const char *p = word, *rest;
    uint64_t fd = 0;
    bool chomp;
    int rc;

    *out = NULL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        /* Go's ParseUint saturates on overflow; BuildKit ignores that error */
        fd = fd > (UINT64_MAX - d) / 10 ? UINT64_MAX : fd * 10 + d;
    }
    if (p[0] != '<' || p[1] != '<')
        return 0;
    chomp = p[2] == '-';
    rest = p + 2 + chomp;
    if (rest[0] == '\0' || strchr(rest, '<'))
        return 0;
    rc = lex_words(&words, rest, false, err);
    if (rc < 0)
        return rc;
    if (words.len != 1)
        goto out;
    rc = lex_words(&raw, rest, true, err);
    if (rc < 0)
        goto out;
    if (raw.len != words.len) {
        rc = kiln_error_set(err, KILN_EPARSE,
                            "internal lexing of heredoc produced inconsistent results: %s", rest);
        goto out;
    }
    *out = xnew(kiln_df_heredoc);
    (*out)->name = xstrdup(words.items[0]);
    (*out)->fd = fd;
    (*out)->chomp = chomp;
    (*out)->expand = count_quotes(words.items[0]) == count_quotes(raw.items[0]);
out:
    kiln_strvec_dispose(&words);
    kiln_strvec_dispose(&raw);
    return rc;
}

int
kiln_df__heredocs_from_line(kiln_vec *out, const char *line, kiln_error **err)
{
    kiln_shlex lex;
    kiln_shlex_result r;
    kiln_error *ignored = NULL;
    int rc = 0;

    kiln_shlex_init(&lex, '\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    /* a line the lexer cannot split (say, an unterminated quote) has no heredocs */
    if (kiln_shlex_process(&r, &lex, line, NULL, NULL, &ignored) < 0) {
        kiln_error_free(&ignored);
        return 0;
    }
    for (size_t i = 0; i < r.words.len && rc == 0; i++) {
        kiln_df_heredoc *h = NULL;
        rc = kiln_df_parse_heredoc(&h, r.words.items[i], err);
        if (rc == 0 && h)
            kiln_vec_push(out, h);
    }
    kiln_shlex_result_dispose(&r);
    return rc;
}

char *
kiln_df_heredoc_chomp(const char *content)
{
    kiln_buf b = KILN_BUF_INIT;
    bool line_start = true;

    for (const char *p = content; *p; p++) {
        if (line_start && *p == '\t')
            continue;
        line_start = *p == '\n';
        kiln_buf_putc(&b, *p, NULL);
    }
    return kiln_buf_detach(&b);
}
