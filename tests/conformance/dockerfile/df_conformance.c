/*
 * df_conformance.c: driver for the Dockerfile conformance suite (tests/conformance/dockerfile).
 *
 *   df_conformance dump DOCKERFILE RESULT   parse must succeed and Dump() + "\n" equal RESULT
 *   df_conformance negative DOCKERFILE      parse must fail with a located, non-empty message
 *   df_conformance lines DOCKERFILE         the testfile-line expectations (specs.md section 5)
 *   df_conformance shell ENVVARTEST WORDSTEST   BuildKit's shell lexer tables, every U/A line
 *
 * Exit 0 pass, 1 fail, 77 skip (input missing).
 */
#include <sys/stat.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/map.h"
#include "frontends/dockerfile/df_internal.h"
#include "frontends/dockerfile/parser.h"
#include "frontends/dockerfile/shell.h"

#define SKIP 77

static int
read_input(char **out, size_t *len, const char *path)
{
    kiln_error *err = NULL;

    if (kiln_fs_read_file(out, len, path, 64u << 20, &err) < 0) {
        fprintf(stderr, "SKIP: cannot read %s: %s\n", path, err->msg);
        kiln_error_free(&err);
        return -1;
    }
    return 0;
}

static int
cmd_dump(const char *df, const char *result)
{
    cleanup_free char *data = NULL;
    cleanup_free char *want = NULL;
    cleanup_free char *got = NULL;
    size_t len, wlen;
    kiln_df_result *r = NULL;
    kiln_error *err = NULL;

    if (read_input(&data, &len, df) < 0 || read_input(&want, &wlen, result) < 0)
        return SKIP;
    if (kiln_df_parse(&r, data, len, df, &err) < 0) {
        cleanup_free char *msg = kiln_error_format(err);
        fprintf(stderr, "FAIL: parse: %s\n", msg);
        kiln_error_free(&err);
        return 1;
    }
    char *dump = kiln_df_node_dump(r->ast);
    got = xasprintf("%s\n", dump);
    free(dump);
    kiln_df_result_free(r);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "FAIL: dump differs\n--- want\n%s--- got\n%s", want, got);
        return 1;
    }
    printf("ok %s\n", df);
    return 0;
}

static int
cmd_negative(const char *df)
{
    cleanup_free char *data = NULL;
    size_t len;
    kiln_df_result *r = NULL;
    kiln_error *err = NULL;

    if (read_input(&data, &len, df) < 0)
        return SKIP;
    if (kiln_df_parse(&r, data, len, df, &err) == 0) {
        fprintf(stderr, "FAIL: %s parsed but must not\n", df);
        kiln_df_result_free(r);
        return 1;
    }
    cleanup_free char *msg = kiln_error_format(err);
    int ok = err->code == KILN_EPARSE && err->file && err->msg && err->msg[0];
    kiln_error_free(&err);
    printf("%s: %s\n", ok ? "ok" : "FAIL", msg);
    return ok ? 0 : 1;
}

static int
cmd_lines(const char *df)
{
    static const int want[3][2] = {{5, 5}, {11, 12}, {17, 31}};
    cleanup_free char *data = NULL;
    size_t len;
    kiln_df_result *r = NULL;
    kiln_error *err = NULL;
    int fails = 0;

    if (read_input(&data, &len, df) < 0)
        return SKIP;
    if (kiln_df_parse(&r, data, len, df, &err) < 0) {
        fprintf(stderr, "FAIL: parse: %s\n", err->msg);
        kiln_error_free(&err);
        return 1;
    }
    if (r->ast->start_line != 5 || r->ast->end_line != 31 || r->ast->children.len != 3) {
        fprintf(stderr, "FAIL: root spans %d-%d with %zu children, want 5-31 with 3\n",
                r->ast->start_line, r->ast->end_line, r->ast->children.len);
        fails++;
    }
    for (size_t i = 0; i < r->ast->children.len && i < 3; i++) {
        const kiln_df_node *c = r->ast->children.items[i];
        if (c->start_line != want[i][0] || c->end_line != want[i][1]) {
            fprintf(stderr, "FAIL: child %zu spans %d-%d, want %d-%d\n", i, c->start_line,
                    c->end_line, want[i][0], want[i][1]);
            fails++;
        }
    }
    kiln_df_result_free(r);
    return fails ? 1 : 0;
}

/* Split `line` on '|' into a strvec. */
static void
split_bar(kiln_vec *out, const char *line)
{
    const char *p = line, *bar;

    while ((bar = strchr(p, '|')) != NULL) {
        kiln_vec_push(out, xstrndup(p, (size_t)(bar - p)));
        p = bar + 1;
    }
    kiln_strvec_push(out, p);
}

static char *
trim(const char *s)
{
    return kiln_df__trim_space_dup(s, strlen(s));
}

/* Each U/A line of envVarTest: "A|source|expected" with expected "error" for failures. */
static int
run_envvar_line(const char *line, const kiln_map *env, int lineno)
{
    kiln_vec parts = KILN_VEC_INIT;
    kiln_shlex lex;
    char *got = NULL;
    kiln_error *err = NULL;
    int fail = 0;

    split_bar(&parts, line);
    if (parts.len != 3) {
        fprintf(stderr, "FAIL: envVarTest:%d: malformed line\n", lineno);
        kiln_strvec_dispose(&parts);
        return 1;
    }
    cleanup_free char *platform = trim(parts.items[0]);
    cleanup_free char *source = trim(parts.items[1]);
    cleanup_free char *expected = trim(parts.items[2]);
    kiln_strvec_dispose(&parts);
    if (strcmp(platform, "U") != 0 && strcmp(platform, "A") != 0)
        return 0;
    kiln_shlex_init(&lex, '\\');
    int rc = kiln_shlex_process_word(&got, &lex, source, env, &err);
    if (strcmp(expected, "error") == 0) {
        fail = rc == 0;
        if (fail)
            fprintf(stderr, "FAIL: envVarTest:%d: %s gave \"%s\", want an error\n", lineno, source,
                    got);
    } else if (rc < 0) {
        fprintf(stderr, "FAIL: envVarTest:%d: %s: %s\n", lineno, source, err->msg);
        fail = 1;
    } else if (strcmp(got, expected) != 0) {
        fprintf(stderr, "FAIL: envVarTest:%d: %s gave \"%s\", want \"%s\"\n", lineno, source, got,
                expected);
        fail = 1;
    }
    free(got);
    kiln_error_free(&err);
    return fail;
}

static int
run_envvar(const char *path, int *cases)
{
    static const char *const envs[] = {"PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="};
    cleanup_free char *data = NULL;
    size_t len;
    kiln_map env;
    int fails = 0, lineno = 0;

    if (read_input(&data, &len, path) < 0)
        return -1;
    kiln_shlex_env_build(&env, envs, 4);
    for (char *line = data, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = '\0';
        lineno++;
        cleanup_free char *t = trim(line);
        if (line[0] == '#' || t[0] == '\0')
            continue;
        (*cases)++;
        fails += run_envvar_line(t, &env, lineno);
    }
    kiln_map_dispose(&env, free);
    return fails;
}

/* One wordsTest case "input | w1,w2,..." ("error" when the lexer must fail). */
static int
run_words_line(const char *line, kiln_vec *envs, int lineno)
{
    kiln_vec parts = KILN_VEC_INIT, want = KILN_VEC_INIT, got = KILN_VEC_INIT;
    kiln_shlex lex;
    kiln_map env;
    kiln_error *err = NULL;
    int fail = 0;

    split_bar(&parts, line);
    if (parts.len != 2) {
        fprintf(stderr, "FAIL: wordsTest:%d: want exactly one '|'\n", lineno);
        kiln_strvec_dispose(&parts);
        return 1;
    }
    cleanup_free char *input = trim(parts.items[0]);
    const char *exp = parts.items[1];
    while (*exp == ' ')
        exp++;
    for (const char *p = exp, *c;; p = c + 1) {
        c = strchr(p, ',');
        kiln_vec_push(&want, c ? xstrndup(p, (size_t)(c - p)) : xstrdup(p));
        if (!c)
            break;
    }
    kiln_shlex_init(&lex, '\\');
    kiln_shlex_env_build(&env, (const char *const *)envs->items, envs->len);
    if (kiln_shlex_process_words(&got, &lex, input, &env, &err) < 0) {
        kiln_error_free(&err);
        kiln_vec_init(&got);
        kiln_strvec_push(&got, "error");
    }
    fail = got.len != want.len;
    for (size_t i = 0; !fail && i < got.len; i++)
        fail = strcmp(got.items[i], want.items[i]) != 0;
    if (fail) {
        cleanup_free char *g = kiln_strvec_join(&got, ",");
        fprintf(stderr, "FAIL: wordsTest:%d: %s gave [%s], want [%s]\n", lineno, input, g, exp);
    }
    kiln_map_dispose(&env, free);
    kiln_strvec_dispose(&parts);
    kiln_strvec_dispose(&want);
    kiln_strvec_dispose(&got);
    return fail;
}

static int
run_words(const char *path, int *cases)
{
    cleanup_free char *data = NULL;
    size_t len;
    kiln_vec envs = KILN_VEC_INIT;
    int fails = 0, lineno = 0;

    if (read_input(&data, &len, path) < 0)
        return -1;
    for (char *line = data, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = '\0';
        lineno++;
        if (line[0] == '#')
            continue;
        if (kiln_str_has_prefix(line, "ENV ")) {
            const char *kv = line + 3;
            while (*kv == ' ')
                kv++;
            kiln_strvec_push(&envs, kv);
            continue;
        }
        (*cases)++;
        fails += run_words_line(line, &envs, lineno);
    }
    kiln_strvec_dispose(&envs);
    return fails;
}

static int
cmd_shell(const char *envvar, const char *words)
{
    int cases = 0, f1, f2;

    f1 = run_envvar(envvar, &cases);
    if (f1 < 0)
        return SKIP;
    f2 = run_words(words, &cases);
    if (f2 < 0)
        return SKIP;
    printf("%d cases, %d failures\n", cases, f1 + f2);
    return f1 + f2 == 0 && cases > 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "dump") == 0)
        return cmd_dump(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "negative") == 0)
        return cmd_negative(argv[2]);
    if (argc == 3 && strcmp(argv[1], "lines") == 0)
        return cmd_lines(argv[2]);
    if (argc == 4 && strcmp(argv[1], "shell") == 0)
        return cmd_shell(argv[2], argv[3]);
    fprintf(stderr, "usage: df_conformance dump|negative|lines|shell FILE...\n");
    return 2;
}
