/*
 * test_ignore.c: unit tests of the .dockerignore parser and matcher (source/ignore.h). The broad
 * behaviour tables live in tests/conformance/dockerignore; these cover the API edges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/vec.h"
#include "source/ignore.h"
#include "test_source.h"

static kiln_ignore *
compile(const char *text)
{
    kiln_ignore *m = NULL;
    kiln_error *err = NULL;
    if (kiln_ignore_new_from_file(&m, text, strlen(text), ".dockerignore", &err) < 0)
        fail_msg("compile: %s", err->msg);
    return m;
}

static void
test_source_ignore__parse_normalises(void **state)
{
    const char text[] = "\xef\xbb\xbf# comment\n\n  ./a//b/  \r\n/c\n! ./d/../e\n!\n#x\n";
    kiln_vec pats = KILN_VEC_INIT;
    kiln_error *err = NULL;
    (void)state;
    assert_int_equal(kiln_ignore_parse_file(&pats, text, strlen(text), &err), 0);
    assert_int_equal(pats.len, 4);
    assert_string_equal(pats.items[0], "a/b");
    assert_string_equal(pats.items[1], "c");
    assert_string_equal(pats.items[2], "!e");
    assert_string_equal(pats.items[3], "!");
    kiln_strvec_dispose(&pats);
}

static void
test_source_ignore__long_line_rejected(void **state)
{
    size_t n = KILN_IGNORE_MAX_LINE + 10;
    cleanup_free char *text = xmalloc(n + 1);
    kiln_vec pats = KILN_VEC_INIT;
    kiln_error *err = NULL;
    (void)state;
    memset(text, 'a', n);
    text[n] = '\0';
    assert_int_equal(kiln_ignore_parse_file(&pats, text, n, &err), KILN_EPARSE);
    assert_non_null(strstr(err->msg, "line 1"));
    kiln_error_free(&err);
    kiln_strvec_dispose(&pats);
}

static void
test_source_ignore__errors_name_pattern(void **state)
{
    const char *bad[] = {"ok", "src/[a-"};
    kiln_ignore *m = NULL;
    kiln_error *err = NULL;
    (void)state;
    assert_int_equal(kiln_ignore_new(&m, bad, 2, &err), KILN_EINVAL);
    assert_null(m);
    assert_non_null(strstr(err->msg, "pattern 1"));
    assert_non_null(strstr(err->msg, "src/[a-"));
    kiln_error_free(&err);

    assert_int_equal(kiln_ignore_new_from_file(&m, "a\n!\n", 4, "ctx/.dockerignore", &err),
                     KILN_EINVAL);
    assert_non_null(strstr(err->msg, "ctx/.dockerignore"));
    assert_non_null(strstr(err->msg, "exclusion"));
    kiln_error_free(&err);
}

static void
test_source_ignore__accessors(void **state)
{
    kiln_ignore *m = compile("*.o\n!keep.o\n");
    (void)state;
    assert_int_equal(kiln_ignore_count(m), 2);
    assert_true(kiln_ignore_has_exclusions(m));
    assert_string_equal(kiln_ignore_pattern(m, 1), "keep.o");
    assert_true(kiln_ignore_pattern_is_exclusion(m, 1));
    assert_false(kiln_ignore_pattern_is_exclusion(m, 0));
    assert_true(kiln_ignore_matches(m, "x.o"));
    assert_false(kiln_ignore_matches(m, "keep.o"));
    kiln_ignore_free(m);
    assert_false(kiln_ignore_matches(NULL, "x"));
    assert_int_equal(kiln_ignore_count(NULL), 0);
}

static void
test_source_ignore__skip_hint(void **state)
{
    kiln_ignore *m = compile("build\nnode_modules\n!build/keep/*.txt\n");
    kiln_ignore *w = compile("vendor\n!**/*.go\n");
    kiln_ignore *c = compile("a\n!a/[xy]*/z\n");
    (void)state;
    /* node_modules: no exception can reach inside, the walker may skip it */
    assert_false(kiln_ignore_may_match_below(m, "node_modules", true));
    assert_true(kiln_ignore_may_match_below(m, "build", true));
    assert_true(kiln_ignore_may_match_below(m, "build/keep", true));
    assert_false(kiln_ignore_may_match_below(m, "build/other", true));
    /* "**" can reach anywhere */
    assert_true(kiln_ignore_may_match_below(w, "vendor", true));
    assert_true(kiln_ignore_may_match_below(c, "a/yes", true));
    assert_false(kiln_ignore_may_match_below(c, "a/no", true));
    /* plain patterns, for include matchers */
    assert_true(kiln_ignore_may_match_below(m, "build", false));
    assert_false(kiln_ignore_may_match_below(m, "src", false));
    kiln_ignore_free(m);
    kiln_ignore_free(w);
    kiln_ignore_free(c);
}

static void
test_source_ignore__walk_matches_direct(void **state)
{
    kiln_ignore *m = compile("a\n!a/b\na/b/c\n");
    bool p1[4] = {0}, p2[4] = {0}, p3[4] = {0};
    (void)state;
    assert_true(kiln_ignore_matches_walk(m, "a", NULL, p1));
    assert_false(kiln_ignore_matches_walk(m, "a/b", p1, p2));
    assert_true(kiln_ignore_matches_walk(m, "a/b/c", p2, p3));
    assert_true(kiln_ignore_matches(m, "a/b/c/d"));
    assert_false(kiln_ignore_matches(m, "a/b/x"));
    kiln_ignore_free(m);
}

static void
test_source_ignore__pathological_pattern_is_fast(void **state)
{
    /* exponential for a backtracking matcher; linear here */
    kiln_ignore *m = compile("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b\n");
    char path[4097];
    (void)state;
    memset(path, 'a', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    assert_false(kiln_ignore_matches(m, path));
    kiln_ignore_free(m);
}

int
test_source_run_ignore(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_source_ignore__parse_normalises),
            cmocka_unit_test(test_source_ignore__long_line_rejected),
            cmocka_unit_test(test_source_ignore__errors_name_pattern),
            cmocka_unit_test(test_source_ignore__accessors),
            cmocka_unit_test(test_source_ignore__skip_hint),
            cmocka_unit_test(test_source_ignore__walk_matches_direct),
            cmocka_unit_test(test_source_ignore__pathological_pattern_is_fast),
    };
    return cmocka_run_group_tests_name("source_ignore", tests, NULL, NULL);
}
