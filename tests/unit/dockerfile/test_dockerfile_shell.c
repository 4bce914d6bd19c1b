/*
 * test_dockerfile_shell.c: unit tests of the shell lexer (frontends/dockerfile/shell.c): every
 * expansion operator, with quotes and escapes, word splitting, the referenced-variable report, the
 * lexer options, the glob matcher and the error messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/map.h"
#include "frontends/dockerfile/shell.h"

static const char *const test_env[] = {"PWD=/home",
                                       "EMPTY=",
                                       "FILE=archive.tar.gz",
                                       "PATHV=/usr/local/bin:/usr/bin:/bin",
                                       "SP=a  b ",
                                       "STAR=*",
                                       "Q=it's"};

typedef struct expand_case {
    const char *in;
    const char *want; /* NULL: must fail */
} expand_case;

static void
check_cases(const kiln_shlex *lex, const expand_case *cases, size_t n)
{
    kiln_map env;

    kiln_shlex_env_build(&env, test_env, sizeof(test_env) / sizeof(test_env[0]));
    for (size_t i = 0; i < n; i++) {
        char *got = NULL;
        kiln_error *err = NULL;
        int rc = kiln_shlex_process_word(&got, lex, cases[i].in, &env, &err);
        if (cases[i].want == NULL) {
            if (rc == 0)
                fail_msg("%s: expected an error, got \"%s\"", cases[i].in, got);
            assert_non_null(err);
            assert_true(kiln_str_has_prefix(err->msg, "failed to process \""));
            kiln_error_free(&err);
            continue;
        }
        if (rc < 0)
            fail_msg("%s: %s", cases[i].in, err->msg);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].in, got, cases[i].want);
        free(got);
    }
    kiln_map_dispose(&env, free);
}

#define CHECK(lex, cases) check_cases(lex, cases, sizeof(cases) / sizeof(cases[0]))

static void
test_shell_expand__plain_and_quotes(void **state)
{
    static const expand_case cases[] = {
            {"$PWD", "/home"},
            {"${PWD}x", "/homex"},
            {"$UNSET.x", ".x"},
            {"'$PWD'", "$PWD"},
            {"\"$PWD\"", "/home"},
            {"\\$PWD", "$PWD"},
            {"\"\\$PWD\"", "$PWD"},
            {"\"a\\tb\"", "a\\tb"},
            {"a\\tb", "atb"},
            {"\"${Q}\"", "it's"},
            {"$", "$"},
            {"$.", "$."},
            {"$1x", "x"},
            {"${", NULL},
            {"${}", NULL},
            {"${:-x}", NULL},
            {"'open", NULL},
            {"\"open", NULL},
    };
    kiln_shlex lex;

    (void)state;
    kiln_shlex_init(&lex, '\\');
    CHECK(&lex, cases);
}

static void
test_shell_expand__default_and_alternative(void **state)
{
    static const expand_case cases[] = {
            {"${UNSET:-d}", "d"},
            {"${EMPTY:-d}", "d"},
            {"${PWD:-d}", "/home"},
            {"${UNSET-d}", "d"},
            {"${EMPTY-d}", ""},
            {"${PWD-d}", "/home"},
            {"${UNSET:+a}", ""},
            {"${EMPTY:+a}", ""},
            {"${PWD:+a}", "a"},
            {"${UNSET+a}", ""},
            {"${EMPTY+a}", "a"},
            {"${PWD+a}", "a"},
            {"${UNSET:-'q d'}", "q d"},
            {"${UNSET:-\"$PWD\"}", "/home"},
            {"${UNSET:-\\}}", "}"},
            {"${UNSET:-${EMPTY:-n}}", "n"},
            {"${PWD:+${PWD}:}", "/home:"},
            {"${UNSET:-a", NULL},
            {"${PWD:=x}", NULL},
    };
    kiln_shlex lex;

    (void)state;
    kiln_shlex_init(&lex, '\\');
    CHECK(&lex, cases);
}

static void
test_shell_expand__required(void **state)
{
    static const expand_case cases[] = {
            {"${PWD:?msg}", "/home"}, {"${PWD?msg}", "/home"}, {"${EMPTY?msg}", ""},
            {"${EMPTY:?msg}", NULL},  {"${UNSET?msg}", NULL},  {"${UNSET:?}", NULL},
    };
    kiln_shlex lex;
    kiln_map env;
    kiln_error *err = NULL;
    char *got = NULL;
    static const char *const vars[] = {"ARG=x", "VAR="};

    (void)state;
    kiln_shlex_init(&lex, '\\');
    CHECK(&lex, cases);
    /* the message is expanded too, and reported with the variable name */
    kiln_shlex_env_build(&env, vars, 2);
    assert_int_equal(kiln_shlex_process_word(&got, &lex, "${VAR:?message here$ARG}", &env, &err),
                     KILN_EINVAL);
    assert_non_null(strstr(err->msg, "VAR: message herex"));
    kiln_error_free(&err);
    assert_int_equal(kiln_shlex_process_word(&got, &lex, "${NOPE?}", &env, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "NOPE: is not allowed to be unset"));
    kiln_error_free(&err);
    assert_int_equal(kiln_shlex_process_word(&got, &lex, "${VAR:?}", &env, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "VAR: is not allowed to be empty"));
    kiln_error_free(&err);
    kiln_map_dispose(&env, free);
}

static void
test_shell_expand__trim_prefix_suffix(void **state)
{
    static const expand_case cases[] = {
            {"${FILE#*.}", "tar.gz"},
            {"${FILE##*.}", "gz"},
            {"${FILE%.*}", "archive.tar"},
            {"${FILE%%.*}", "archive"},
            {"${FILE#nomatch}", "archive.tar.gz"},
            {"${FILE%nomatch}", "archive.tar.gz"},
            {"${FILE#arch?ve}", ".tar.gz"},
            {"${FILE#[a-c]*}", "rchive.tar.gz"},
            {"${FILE##[!x]*}", ""},
            {"${PATHV#*:}", "/usr/bin:/bin"},
            {"${PATHV##*:}", "/bin"},
            {"${PATHV%:*}", "/usr/local/bin:/usr/bin"},
            {"${PATHV%%:*}", "/usr/local/bin"},
            {"${STAR#\\*}", ""},
            {"${FILE#\\*}", "archive.tar.gz"},
            {"${FILE#'archive'}", ".tar.gz"},
            {"${UNSET#x}", ""},
            {"${FILE#}", "archive.tar.gz"},
            {"${FILE%*}", "archive.tar.gz"},
            {"${FILE%%*}", ""},
            {"${FILE#*}", "archive.tar.gz"},
            {"${FILE##*}", ""},
            {"${FILE%.*z}", "archive.tar"},
            {"${FILE%%a*}", ""},
            {"${FILE%[.]??}", "archive.tar"},
            {"${FILE%\\.gz}", "archive.tar"},
            {"${FILE:#x}", NULL},
            {"${FILE%x", NULL},
    };
    kiln_shlex lex;

    (void)state;
    kiln_shlex_init(&lex, '\\');
    CHECK(&lex, cases);
}

static void
test_shell_expand__replace(void **state)
{
    static const expand_case cases[] = {
            {"${PATHV/bin/sbin}", "/usr/local/sbin:/usr/bin:/bin"},
            {"${PATHV//bin/sbin}", "/usr/local/sbin:/usr/sbin:/sbin"},
            {"${PATHV//:/ }", "/usr/local/bin /usr/bin /bin"},
            {"${FILE/.*/}", "archive"},
            {"${FILE/a?c/X}", "Xhive.tar.gz"},
            {"${FILE//[.]/_}", "archive_tar_gz"},
            {"${FILE/nomatch/x}", "archive.tar.gz"},
            {"${FILE/*./X}", "Xgz"},
            {"${FILE//a/}", "rchive.tr.gz"},
            {"${FILE//?/-}", "--------------"},
            {"${FILE/%/x}", "archive.tar.gz"},
            {"${FILE/\\./-}", "archive-tar.gz"},
            {"${FILE/tar/$PWD}", "archive./home.gz"},
            {"${EMPTY/*/x}", "x"},
            {"${UNSET/a/b}", ""},
            {"${FILE/a}", NULL},
            {"${FILE/a/b", NULL},
    };
    kiln_shlex lex;

    (void)state;
    kiln_shlex_init(&lex, '\\');
    CHECK(&lex, cases);
}

static void
test_shell_expand__backtick_escape(void **state)
{
    static const expand_case cases[] = {
            {"`$PWD", "$PWD"},
            {"c:\\dir", "c:\\dir"},
            {"\"a`\"b\"", "a\"b"},
            {"${STAR#`*}", ""},
            {"${FILE/`./-}", "archive-tar.gz"},
    };
    kiln_shlex lex;

    (void)state;
    kiln_shlex_init(&lex, '`');
    CHECK(&lex, cases);
}

static void
expect_words(const kiln_shlex *lex, const char *in, const char *want_joined)
{
    kiln_map env;
    kiln_vec words;
    kiln_error *err = NULL;

    kiln_shlex_env_build(&env, test_env, sizeof(test_env) / sizeof(test_env[0]));
    if (kiln_shlex_process_words(&words, lex, in, &env, &err) < 0)
        fail_msg("%s: %s", in, err->msg);
    char *got = kiln_strvec_join(&words, "|");
    if (strcmp(got, want_joined) != 0)
        fail_msg("%s: got [%s], want [%s]", in, got, want_joined);
    free(got);
    kiln_strvec_dispose(&words);
    kiln_map_dispose(&env, free);
}

static void
test_shell_words__splitting(void **state)
{
    kiln_shlex lex;

    (void)state;
    kiln_shlex_init(&lex, '\\');
    expect_words(&lex, "a b  c", "a|b|c");
    expect_words(&lex, "x${SP}y", "xa|b|y");
    expect_words(&lex, "x\"${SP}\"y", "xa  b y");
    expect_words(&lex, "a\\ b 'c d' \"e f\"", "a b|c d|e f");
    expect_words(&lex, "  ", "");
    expect_words(&lex, "'' x", "x");
}

static void
test_shell_process__reports_variables(void **state)
{
    kiln_shlex lex;
    kiln_shlex_result r;
    kiln_map env;
    kiln_error *err = NULL;
    static const char *const vars[] = {"BAR=baz", "ANOTHER=bar", "EMPTY="};

    (void)state;
    kiln_shlex_init(&lex, '\\');
    kiln_shlex_env_build(&env, vars, 3);
    assert_int_equal(kiln_shlex_process(&r, &lex, "foo ${BAR} ${UNUSED:-x} $EMPTY $BAR '$NO'",
                                        kiln_shlex_map_lookup, &env, &err),
                     0);
    assert_string_equal(r.word, "foo baz x  baz $NO");
    assert_int_equal(r.matched.len, 2);
    assert_string_equal(r.matched.items[0], "BAR");
    assert_string_equal(r.matched.items[1], "EMPTY");
    assert_int_equal(r.unset.len, 1);
    assert_string_equal(r.unset.items[0], "UNUSED");
    kiln_shlex_result_dispose(&r);
    kiln_map_dispose(&env, free);
}

static void
test_shell_process__platform_example(void **state)
{
    static const char *const sets[3][4] = {
            {"VERSION=v1.2.3", "TARGETOS=linux", "TARGETARCH=arm", "TARGETVARIANT=v7"},
            {"VERSION=v1.2.3", "TARGETOS=linux", "TARGETARCH=arm64", "TARGETVARIANT="},
            {"VERSION=v1.2.3", "TARGETOS=linux", "TARGETARCH=arm64", "OTHER=1"},
    };
    static const char *const want[3] = {"something-v1.2.3.linux-arm-v7.tar.gz",
                                        "something-v1.2.3.linux-arm64.tar.gz",
                                        "something-v1.2.3.linux-arm64.tar.gz"};
    kiln_shlex lex;

    (void)state;
    kiln_shlex_init(&lex, '\\');
    for (int i = 0; i < 3; i++) {
        kiln_map env;
        char *got = NULL;
        kiln_shlex_env_build(&env, sets[i], 4);
        assert_int_equal(kiln_shlex_process_word(&got, &lex,
                                                 "something-${VERSION}.${TARGETOS}-"
                                                 "${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}"
                                                 ".tar.gz",
                                                 &env, NULL),
                         0);
        assert_string_equal(got, want[i]);
        free(got);
        kiln_map_dispose(&env, free);
    }
}

static void
test_shell_options__raw_and_skip_unset(void **state)
{
    static const expand_case raw[] = {
            {"'a b'\"c\"", "'a b'\"c\""},
            {"$UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b}",
             "$UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b}"},
            {"$PWD", "/home"},
    };
    static const expand_case raw_esc[] = {{"a\\ b\\$c", "a\\ b\\$c"}};
    static const expand_case no_quotes[] = {{"'$PWD'", "'/home'"}};
    kiln_shlex lex;

    (void)state;
    kiln_shlex_init(&lex, '\\');
    lex.raw_quotes = true;
    lex.skip_unset_env = true;
    CHECK(&lex, raw);
    kiln_shlex_init(&lex, '\\');
    lex.raw_escapes = true;
    CHECK(&lex, raw_esc);
    kiln_shlex_init(&lex, '\\');
    lex.skip_process_quotes = true;
    CHECK(&lex, no_quotes);
}

static void
test_shell_expand__nesting_limit(void **state)
{
    kiln_buf b = KILN_BUF_INIT;
    kiln_shlex lex;
    kiln_error *err = NULL;
    char *got = NULL;

    (void)state;
    kiln_shlex_init(&lex, '\\');
    for (int i = 0; i < 10000; i++)
        kiln_buf_puts(&b, "${A:-", NULL);
    assert_int_equal(kiln_shlex_process_word(&got, &lex, kiln_buf_cstr(&b), NULL, &err),
                     KILN_EPARSE);
    assert_non_null(strstr(err->msg, "nested"));
    kiln_error_free(&err);
    kiln_buf_dispose(&b);
}

static void
test_shell_glob__match(void **state)
{
    static const struct {
        const char *pat, *s;
        bool want;
    } cases[] = {
            {"", "", true},
            {"*", "", true},
            {"*", "abc", true},
            {"a*c", "abbbc", true},
            {"a*c", "abbb", false},
            {"?", "é", true},
            {"??", "é", false},
            {"[a-c]x", "bx", true},
            {"[!a-c]x", "bx", false},
            {"[^a]", "b", true},
            {"[]]", "]", true},
            {"[", "[", true},
            {"\\*", "*", true},
            {"\\*", "x", false},
            {"*a*b*c*", "xaybzc", true},
            {"a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = kiln_shlex__glob_match(cases[i].pat, strlen(cases[i].pat), cases[i].s,
                                          strlen(cases[i].s), '\\');
        if (got != cases[i].want)
            fail_msg("glob %s vs %s: got %d", cases[i].pat, cases[i].s, got);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_shell_expand__plain_and_quotes),
            cmocka_unit_test(test_shell_expand__default_and_alternative),
            cmocka_unit_test(test_shell_expand__required),
            cmocka_unit_test(test_shell_expand__trim_prefix_suffix),
            cmocka_unit_test(test_shell_expand__replace),
            cmocka_unit_test(test_shell_expand__backtick_escape),
            cmocka_unit_test(test_shell_words__splitting),
            cmocka_unit_test(test_shell_process__reports_variables),
            cmocka_unit_test(test_shell_process__platform_example),
            cmocka_unit_test(test_shell_options__raw_and_skip_unset),
            cmocka_unit_test(test_shell_expand__nesting_limit),
            cmocka_unit_test(test_shell_glob__match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
