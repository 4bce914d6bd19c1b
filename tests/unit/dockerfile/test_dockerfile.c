/*
 * test_dockerfile.c: unit tests of the Dockerfile parser (frontends/dockerfile): argument shapes
 * per instruction, JSON exec form, flags, continuations, directives, heredocs, warnings, limits,
 * error locations and BuildKit's Dump() format. The corpus replay lives in
 * tests/conformance/dockerfile; these tests pin the behaviour the corpus does not cover.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/buf.h"
#include "frontends/dockerfile/df_internal.h"
#include "frontends/dockerfile/parser.h"

/* Parse `src` (must succeed) and return its dump; owned by the caller. */
static char *
dump_of(const char *src)
{
    kiln_df_result *r = NULL;
    kiln_error *err = NULL;
    char *d;

    if (kiln_df_parse(&r, src, strlen(src), "Dockerfile", &err) < 0)
        fail_msg("parse failed: %s (input %s)", err->msg, src);
    d = kiln_df_node_dump(r->ast);
    kiln_df_result_free(r);
    return d;
}

static void
expect_dump(const char *src, const char *want)
{
    char *got = dump_of(src);

    if (strcmp(got, want) != 0)
        fail_msg("input:\n%s\ngot:\n%s\nwant:\n%s", src, got, want);
    free(got);
}

/* Parse `src`, which must fail; returns the error (owned by the caller). */
static kiln_error *
parse_error(const char *src, size_t len)
{
    kiln_df_result *r = NULL;
    kiln_error *err = NULL;

    if (kiln_df_parse(&r, src, len, "Dockerfile", &err) == 0) {
        kiln_df_result_free(r);
        fail_msg("parse of %s succeeded, want an error", src);
    }
    assert_non_null(err);
    assert_string_equal(err->file, "Dockerfile");
    return err;
}

static void
test_dockerfile_parse__argument_shapes(void **state)
{
    (void)state;
    expect_dump("FROM a AS b\nEXPOSE 80/tcp  443\n",
                "(from \"a\" \"AS\" \"b\")\n(expose \"80/tcp\" \"443\")");
    expect_dump("ENV a=1 b=\"x y\"\n", "(env \"a\" \"1\" \"=\" \"b\" \"\\\"x y\\\"\" \"=\")");
    expect_dump("ENV k  v  w\n", "(env \"k\" \"v  w\" \"\")");
    expect_dump("LABEL k=v\n", "(label \"k\" \"v\" \"=\")");
    expect_dump("ARG a=\"1 2\" b\n", "(arg \"a=\\\"1 2\\\"\" \"b\")");
    expect_dump("USER  me:grp \nWORKDIR /a b\n", "(user \"me:grp\")\n(workdir \"/a b\")");
    expect_dump("ENV\nARG\nCMD\n", "(env)\n(arg)\n(cmd)");
    expect_dump("HEALTHCHECK --interval=5s CMD [\"a\"]\nHEALTHCHECK NONE\n",
                "(healthcheck [\"--interval=5s\"] \"CMD\" \"a\")\n(healthcheck \"NONE\")");
    expect_dump("ONBUILD RUN echo hi\n", "(onbuild (run \"echo hi\"))");
    expect_dump("ONBUILD\n", "(onbuild)");
    expect_dump("BOGUS a b\n", "(bogus \"\")");
    expect_dump("run x\nFrOm y\n", "(run \"x\")\n(from \"y\")");
}

static void
test_dockerfile_parse__json_forms(void **state)
{
    kiln_error *err;

    (void)state;
    expect_dump("CMD [\"a\", \"b\"]\n", "(cmd \"a\" \"b\")");
    expect_dump("CMD []\n", "(cmd)");
    expect_dump("CMD [\"a\"] trailing\n", "(cmd \"a\")");
    expect_dump("CMD ['a']\n", "(cmd \"['a']\")");
    expect_dump("CMD [\"a\"\n", "(cmd \"[\\\"a\\\"\")");
    expect_dump("CMD [1e999]\n", "(cmd \"[1e999]\")");
    expect_dump("COPY [\"a b\", \"/c\"]\nCOPY a  /c\n",
                "(copy \"a b\" \"/c\")\n(copy \"a\" \"/c\")");
    expect_dump("RUN [\"\\u00e9\\ud83d\\ude00\\ud800\", \"\\/\"]\n",
                "(run \"é😀\xef\xbf\xbd\" \"/\")");
    expect_dump("RUN [\"\\u0000\"]\n", "(run \"\\x00\")");
    expect_dump("RUN [\"a\xff\"]\n", "(run \"a\xef\xbf\xbd\")");
    static const char *const bad[] = {"CMD [\"a\",42]\n", "CMD [\"a\",{\"c\":\"d\"}]\n",
                                      "CMD [\"a\",[\"c\"]]\n", "CMD [true]\n", "CMD [null]\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = parse_error(bad[i], strlen(bad[i]));
        assert_non_null(strstr(err->msg, "arrays must be comprised of strings only"));
        assert_int_equal(err->line, 1);
        kiln_error_free(&err);
    }
}

static void
test_dockerfile_parse__json_depth_limit(void **state)
{
    kiln_buf b = KILN_BUF_INIT;
    kiln_error *err;

    (void)state;
    /* 9999 nested arrays inside the top one are valid JSON: a non-string element, an error */
    kiln_buf_puts(&b, "CMD [", NULL);
    for (int i = 0; i < 9999; i++)
        kiln_buf_putc(&b, '[', NULL);
    for (int i = 0; i < 10000; i++)
        kiln_buf_putc(&b, ']', NULL);
    err = parse_error(b.ptr, b.len);
    kiln_error_free(&err);
    /* one more level is a JSON syntax error: shell form */
    kiln_buf_clear(&b);
    kiln_buf_puts(&b, "CMD [", NULL);
    for (int i = 0; i < 10000; i++)
        kiln_buf_putc(&b, '[', NULL);
    char *d = dump_of(b.ptr);
    assert_true(kiln_str_has_prefix(d, "(cmd \"[[[["));
    free(d);
    kiln_buf_dispose(&b);
}

static void
test_dockerfile_parse__flags(void **state)
{
    (void)state;
    expect_dump("COPY --from=a --chown=\"x y\" b c\n",
                "(copy [\"--from=a\" \"--chown=x y\"] \"b\" \"c\")");
    expect_dump("COPY --a -- --b c\n", "(copy [\"--a\"] \"--b\" \"c\")");
    expect_dump("RUN --x=a\\ b c\n", "(run [\"--x=a b\"] \"c\")");
    expect_dump("RUN -x c\n", "(run \"-x c\")");
    expect_dump("RUN --only\n", "(run [\"--only\"])");
}

static void
test_dockerfile_parse__words(void **state)
{
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
            {"foo", "foo"},
            {"foo bar", "foo|bar"},
            {"foo\\ bar", "foo\\ bar"},
            {"foo=bar", "foo=bar"},
            {"foo bar 'abc xyz'", "foo|bar|'abc xyz'"},
            {"foo bar \"abc xyz\"", "foo|bar|\"abc xyz\""},
            {"àöû", "àöû"},
            {"föo bàr \"âbc xÿz\"", "föo|bàr|\"âbc xÿz\""},
            {"a\\", "a"},
            {"\"\"", "\"\""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kiln_vec words = KILN_VEC_INIT;
        kiln_df__parse_words(&words, cases[i].in, '\\');
        char *got = kiln_strvec_join(&words, "|");
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s: got [%s] want [%s]", cases[i].in, got, cases[i].want);
        free(got);
        kiln_strvec_dispose(&words);
    }
}

static void
test_dockerfile_parse__name_value_errors(void **state)
{
    kiln_error *err;

    (void)state;
    err = parse_error("FROM a\nENV PATH\n", 16);
    assert_int_equal(err->code, KILN_EPARSE);
    assert_int_equal(err->line, 2);
    assert_int_equal(err->column, 1);
    assert_non_null(strstr(err->msg, "ENV must have two arguments"));
    assert_non_null(strstr(err->msg, "ENV PATH"));
    kiln_error_free(&err);
    err = parse_error("  LABEL a=b c\n", 14);
    assert_int_equal(err->column, 3);
    assert_non_null(strstr(err->msg, "can't find = in \"c\""));
    kiln_error_free(&err);
}

static void
test_dockerfile_parse__continuations(void **state)
{
    kiln_df_result *r = NULL;
    const char *src = "FROM a\n"
                      "RUN one \\\n"
                      "  # comment inside\n"
                      "\n"
                      "   two \\\t \n"
                      "three\n"
                      "RUN keep\\\\\n"
                      "RUN \\\n";

    (void)state;
    expect_dump(src, "(from \"a\")\n(run \"one    two three\")\n(run \"keep\\\\\\\\\")\n(run)");
    assert_int_equal(kiln_df_parse(&r, src, strlen(src), NULL, NULL), 0);
    assert_int_equal(r->ast->children.len, 4);
    const kiln_df_node *run = r->ast->children.items[1];
    assert_int_equal(run->start_line, 2);
    assert_int_equal(run->end_line, 6);
    assert_string_equal(run->original, "RUN one    two three");
    assert_int_equal(r->warnings.len, 1);
    kiln_df_result_free(r);
}

static void
test_dockerfile_parse__empty_continuation_warnings(void **state)
{
    const char *src = "\nFROM alpine:3.6\n\nRUN valid \\\n    continuation\n\n"
                      "RUN something \\\n\n    following \\\n\n    more\n\n"
                      "RUN another \\\n\n    thing\n\n"
                      "RUN non-indented \\\n# this is a comment\n   after-comment\n\n"
                      "RUN indented \\\n    # this is an indented comment\n    comment\n\t";
    kiln_df_result *r = NULL;

    (void)state;
    assert_int_equal(kiln_df_parse(&r, src, strlen(src), NULL, NULL), 0);
    assert_int_equal(r->warnings.len, 2);
    const kiln_df_warning *w0 = r->warnings.items[0], *w1 = r->warnings.items[1];
    assert_non_null(strstr(w0->msg, "Empty continuation line found in"));
    assert_non_null(strstr(w0->msg, "RUN something     following     more"));
    assert_non_null(strstr(w1->msg, "RUN another     thing"));
    assert_non_null(strstr(w0->detail, "will become errors in a future release"));
    kiln_df_result_free(r);
}

static void
test_dockerfile_parse__directives(void **state)
{
    kiln_df_result *r = NULL;
    kiln_error *err;
    const char *src = "# Syntax = docker/dockerfile:1 \n#ESCAPE=`\n# check=skip=all\n"
                      "FROM a\nRUN x `\n  y\nCOPY c\\\\ d\n";

    (void)state;
    assert_int_equal(kiln_df_parse(&r, src, strlen(src), NULL, NULL), 0);
    assert_int_equal(r->escape_token, '`');
    assert_int_equal(r->directives.len, 3);
    const kiln_df_directive *d0 = r->directives.items[0], *d2 = r->directives.items[2];
    assert_string_equal(d0->name, "syntax");
    assert_string_equal(d0->value, "docker/dockerfile:1");
    assert_int_equal(d0->line, 1);
    assert_string_equal(d2->name, "check");
    assert_string_equal(d2->value, "skip=all");
    char *d = kiln_df_node_dump(r->ast);
    assert_string_equal(d, "(from \"a\")\n(run \"x   y\")\n(copy \"c\\\\\\\\\" \"d\")");
    free(d);
    kiln_df_result_free(r);

    /* after a blank line, an instruction or another comment, directives are plain comments */
    expect_dump("\n# escape=`\nRUN a \\\nb\n", "(run \"a b\")");
    expect_dump("# hello\n# escape=`\nRUN a \\\nb\n", "(run \"a b\")");
    expect_dump("# unknown=x\n# escape=`\nRUN a \\\nb\n", "(run \"a b\")");

    err = parse_error("# escape=x\nFROM a\n", 18);
    assert_non_null(strstr(err->msg, "invalid escape token 'x'"));
    assert_int_equal(err->line, 1);
    kiln_error_free(&err);
    err = parse_error("# syntax=a\n# SYNTAX=b\nFROM a\n", 29);
    assert_non_null(strstr(err->msg, "only one syntax parser directive can be used"));
    assert_int_equal(err->line, 2);
    kiln_error_free(&err);
    err = parse_error("# escape= \nFROM a\n", 18);
    assert_non_null(strstr(err->msg, "invalid escape token ' '"));
    kiln_error_free(&err);
}

static void
test_dockerfile_parse__detect_syntax(void **state)
{
    static const struct {
        const char *src;
        const char *ref; /* NULL: not found */
        int line;
    } cases[] = {
            {"# syntax = dockerfile:experimental // opts\nFROM busybox\n",
             "dockerfile:experimental", 1},
            {"#!/bin/sh\n# syntax = dockerfile:experimental\nFROM busybox\n",
             "dockerfile:experimental", 2},
            {"#!/bin/sh\n\n# syntax = dockerfile:experimental\n", NULL, 0},
            {"FROM busybox\nRUN ls\n", NULL, 0},
            {"//syntax=foo\n//key=value", "foo", 1},
            {"#!/bin/sh\n//syntax=x", "x", 2},
            {"{\"syntax\": \"foo\"}", "foo", 0},
            {"{\"syntax\": \"foo\"", NULL, 0},
            {"{\"syntax\": \"foo\"}\n# syntax=bar", NULL, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *ref = NULL, *cmdline = NULL;
        int line = -1;
        bool ok = kiln_df_detect_syntax(&ref, &cmdline, &line, cases[i].src, strlen(cases[i].src));
        if (ok != (cases[i].ref != NULL))
            fail_msg("case %zu: found=%d", i, ok);
        if (ok) {
            assert_string_equal(ref, cases[i].ref);
            assert_int_equal(line, cases[i].line);
        }
        if (i == 0)
            assert_string_equal(cmdline, "dockerfile:experimental // opts");
        free(ref);
        free(cmdline);
    }
}

typedef struct heredoc_want {
    const char *name;
    const char *content;
    bool expand;
    bool chomp;
    unsigned fd;
} heredoc_want;

static void
test_dockerfile_parse__heredocs(void **state)
{
    const char *src = "FROM a\n"
                      "RUN <<EMPTY\nEMPTY\n"
                      "RUN 3<<FD\nFD\n"
                      "RUN \"<<NOPE\"\n"
                      "RUN <<-TABS\n\tbaz\n\tTABS\n"
                      "RUN <<-'Q'\n\tdon't $X\nQ\n"
                      "COPY <<F1 <<F2 /dest\nc1\nF1\nc2\r\nF2\n"
                      "RUN <<eo'f'\necho\neof\n"
                      "RUN <<eo\\'f\necho\neo'f\n"
                      "RUN <<'one two'\nx\none two\n"
                      "RUN <<$EOF\n$EOF\n"
                      "ONBUILD RUN <<OB\nob\nOB\n"
                      "RUN [\"<<EOF\"]\n"
                      "USER <<EOF\n";
    static const heredoc_want want[][2] = {
            {{NULL}},
            {{"EMPTY", "", true, false, 0}},
            {{"FD", "", true, false, 3}},
            {{NULL}},
            {{"TABS", "\tbaz\n", true, true, 0}},
            {{"Q", "\tdon't $X\n", false, true, 0}},
            {{"F1", "c1\n", true, false, 0}, {"F2", "c2\r\n", true, false, 0}},
            {{"eof", "echo\n", false, false, 0}},
            {{"eo'f", "echo\n", true, false, 0}},
            {{"one two", "x\n", false, false, 0}},
            {{"$EOF", "", true, false, 0}},
            {{"OB", "ob\n", true, false, 0}},
            {{NULL}},
            {{NULL}},
    };
    kiln_df_result *r = NULL;
    kiln_error *err = NULL;

    (void)state;
    if (kiln_df_parse(&r, src, strlen(src), NULL, &err) < 0)
        fail_msg("%s", err->msg);
    assert_int_equal(r->ast->children.len, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < r->ast->children.len; i++) {
        const kiln_df_node *n = r->ast->children.items[i];
        size_t nwant = want[i][0].name ? (want[i][1].name ? 2 : 1) : 0;
        if (n->heredocs.len != nwant)
            fail_msg("instruction %zu (%s): %zu heredocs, want %zu", i, n->original,
                     n->heredocs.len, nwant);
        for (size_t k = 0; k < nwant; k++) {
            const kiln_df_heredoc *h = n->heredocs.items[k];
            assert_string_equal(h->name, want[i][k].name);
            assert_string_equal(h->content, want[i][k].content);
            assert_int_equal(h->expand, want[i][k].expand);
            assert_int_equal(h->chomp, want[i][k].chomp);
            assert_int_equal(h->fd, want[i][k].fd);
        }
    }
    const kiln_df_node *copy = r->ast->children.items[6];
    assert_int_equal(copy->start_line, 13);
    assert_int_equal(copy->end_line, 17);
    kiln_df_result_free(r);
}

static void
test_dockerfile_parse__heredoc_helpers(void **state)
{
    static const char *const valid[] = {"<<EOF",    "<<'EOF'",    "<<\"EOF\"", "<<-EOF",
                                        "<<-'EOF'", "<<-\"EOF\"", "<<EO\"F\""};
    static const char *const invalid[] = {"<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""};
    static const char *const not_heredocs[] = {"",     "EOF",    "<<",      "<<-",
                                               "<EOF", "<<<EOF", "<<EOF sh"};
    kiln_df_heredoc *h;
    kiln_error *err = NULL;

    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        assert_int_equal(kiln_df_parse_heredoc(&h, valid[i], NULL), 0);
        assert_non_null(h);
        assert_string_equal(h->name, "EOF");
        kiln_df_heredoc_free(h);
    }
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        assert_int_equal(kiln_df_parse_heredoc(&h, invalid[i], &err), KILN_EPARSE);
        kiln_error_free(&err);
    }
    for (size_t i = 0; i < sizeof(not_heredocs) / sizeof(not_heredocs[0]); i++) {
        assert_int_equal(kiln_df_parse_heredoc(&h, not_heredocs[i], NULL), 0);
        assert_null(h);
    }
    char *c = kiln_df_heredoc_chomp("\thello\n\t\tworld\n x\t\n");
    assert_string_equal(c, "hello\nworld\n x\t\n");
    free(c);
}

static void
test_dockerfile_parse__heredoc_unterminated(void **state)
{
    kiln_error *err;

    (void)state;
    err = parse_error("FROM a\nRUN <<EOF\nbody\n", 22);
    assert_non_null(strstr(err->msg, "unterminated heredoc \"EOF\""));
    assert_int_equal(err->line, 2);
    kiln_error_free(&err);
}

static void
test_dockerfile_parse__limits_and_bytes(void **state)
{
    kiln_buf b = KILN_BUF_INIT;
    kiln_error *err;

    (void)state;
    kiln_buf_puts(&b, "\n\t\tFROM image\n\t\tLABEL test=", NULL);
    for (int i = 0; i < 65536; i++)
        kiln_buf_putc(&b, 'a', NULL);
    kiln_buf_puts(&b, "\n", NULL);
    err = parse_error(b.ptr, b.len);
    assert_string_equal(err->msg, "dockerfile line greater than max allowed size of 65535");
    assert_int_equal(err->line, 3);
    kiln_error_free(&err);
    /* exactly the limit is fine */
    kiln_buf_clear(&b);
    kiln_buf_puts(&b, "LABEL a=", NULL);
    while (b.len < KILN_DF_MAX_LINE)
        kiln_buf_putc(&b, 'b', NULL);
    char *d = dump_of(b.ptr);
    free(d);
    kiln_buf_dispose(&b);

    err = parse_error("FROM a\nRUN a\0b\n", 15);
    assert_non_null(strstr(err->msg, "NUL"));
    assert_int_equal(err->line, 2);
    assert_int_equal(err->column, 6);
    kiln_error_free(&err);
    err = parse_error("", 0);
    assert_string_equal(err->msg, "file with no instructions");
    kiln_error_free(&err);
    kiln_df_result *r = NULL;
    assert_int_equal(kiln_df_parse(&r, NULL, 0, NULL, &err), KILN_EPARSE);
    assert_string_equal(err->file, "Dockerfile");
    kiln_error_free(&err);
    assert_false(kiln_df_detect_syntax(&d, NULL, NULL, NULL, 0));
    err = parse_error("# only\n\n# comments\n", 19);
    assert_string_equal(err->msg, "file with no instructions");
    kiln_error_free(&err);

    expect_dump("\xef\xbb\xbf# escape=`\r\nFROM a\r\nRUN b `\r\n c\r\n",
                "(from \"a\")\n(run \"b  c\")");
}

static void
test_dockerfile_parse__onbuild_nesting(void **state)
{
    kiln_buf b = KILN_BUF_INIT;
    kiln_error *err;

    (void)state;
    expect_dump("ONBUILD ONBUILD ADD a b\n", "(onbuild (onbuild (add \"a\" \"b\")))");
    for (int i = 0; i < 20; i++)
        kiln_buf_puts(&b, "ONBUILD ", NULL);
    kiln_buf_puts(&b, "RUN x\n", NULL);
    err = parse_error(b.ptr, b.len);
    assert_non_null(strstr(err->msg, "ONBUILD nested"));
    kiln_error_free(&err);
    kiln_buf_dispose(&b);
}

static void
test_dockerfile_parse__comments_attached(void **state)
{
    kiln_df_result *r = NULL;
    const char *src = "# syntax=x\n# first\n# second\nFROM a\n#\n# lone\n\nRUN b\n";

    (void)state;
    assert_int_equal(kiln_df_parse(&r, src, strlen(src), NULL, NULL), 0);
    const kiln_df_node *from = r->ast->children.items[0], *run = r->ast->children.items[1];
    assert_int_equal(from->comments.len, 2);
    assert_string_equal(from->comments.items[0], "first");
    assert_int_equal(run->comments.len, 1);
    assert_string_equal(run->comments.items[0], "lone");
    kiln_df_result_free(r);
}

static void
test_dockerfile_parse__check_directive(void **state)
{
    kiln_df_check_config c;
    kiln_error *err = NULL;

    (void)state;
    assert_int_equal(kiln_df_parse_check_directive(
                             &c, "skip=JSONArgsRecommended, StageNameCasing ; error=true", &err),
                     0);
    assert_false(c.skip_all);
    assert_true(c.error);
    assert_int_equal(c.skip.len, 2);
    assert_string_equal(c.skip.items[1], "StageNameCasing");
    kiln_df_check_config_dispose(&c);
    assert_int_equal(kiln_df_parse_check_directive(&c, "SKIP=all", &err), 0);
    assert_true(c.skip_all);
    assert_false(c.error);
    kiln_df_check_config_dispose(&c);
    assert_int_equal(kiln_df_parse_check_directive(&c, "error=maybe", &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "error=maybe is not a boolean"));
    kiln_error_free(&err);
    assert_int_equal(kiln_df_parse_check_directive(&c, "skip=a;fail=1", &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "unknown key 'fail'"));
    kiln_error_free(&err);
    assert_int_equal(kiln_df_parse_check_directive(&c, "skip", &err), KILN_EINVAL);
    kiln_error_free(&err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_dockerfile_parse__argument_shapes),
            cmocka_unit_test(test_dockerfile_parse__json_forms),
            cmocka_unit_test(test_dockerfile_parse__json_depth_limit),
            cmocka_unit_test(test_dockerfile_parse__flags),
            cmocka_unit_test(test_dockerfile_parse__words),
            cmocka_unit_test(test_dockerfile_parse__name_value_errors),
            cmocka_unit_test(test_dockerfile_parse__continuations),
            cmocka_unit_test(test_dockerfile_parse__empty_continuation_warnings),
            cmocka_unit_test(test_dockerfile_parse__directives),
            cmocka_unit_test(test_dockerfile_parse__detect_syntax),
            cmocka_unit_test(test_dockerfile_parse__heredocs),
            cmocka_unit_test(test_dockerfile_parse__heredoc_helpers),
            cmocka_unit_test(test_dockerfile_parse__heredoc_unterminated),
            cmocka_unit_test(test_dockerfile_parse__limits_and_bytes),
            cmocka_unit_test(test_dockerfile_parse__onbuild_nesting),
            cmocka_unit_test(test_dockerfile_parse__comments_attached),
            cmocka_unit_test(test_dockerfile_parse__check_directive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
