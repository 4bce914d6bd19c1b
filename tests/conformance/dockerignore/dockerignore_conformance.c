/*
 * dockerignore_conformance.c: replays cases.txt. Each case's .dockerignore text goes through the
 * file parser and the matcher; each expected path is checked with the direct matcher and with the
 * walk matcher fed its parents' results, as the context walker uses it. Prints every failure and
 * exits 1 if there was one.
 */
#include <stdio.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/fs.h"
#include "source/ignore.h"

typedef struct runner {
    const char *name;
    kiln_buf text;
    bool in_checks;
    kiln_ignore *m;
    bool compiled;
    int failures;
    int checks;
} runner;

/* The walk-style answer for `path`: match each ancestor in turn, handing results down. */
static bool
walk_match(const kiln_ignore *m, const char *path)
{
    size_t n = kiln_ignore_count(m) + 1;
    cleanup_free bool *parent = xcalloc(n, sizeof(bool));
    cleanup_free bool *info = xcalloc(n, sizeof(bool));
    cleanup_free char *prefix = xstrdup(path);
    bool first = true, matched = false;
    for (char *p = prefix;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            matched = kiln_ignore_matches_walk(m, prefix, first ? NULL : parent, info);
            memcpy(parent, info, n * sizeof(bool));
            first = false;
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    return matched;
}

static void
compile_case(runner *r)
{
    kiln_error *err = NULL;
    r->compiled = true;
    if (kiln_ignore_new_from_file(&r->m, r->text.ptr ? r->text.ptr : "", r->text.len, r->name,
                                  &err) < 0) {
        r->m = NULL;
        kiln_error_free(&err);
    }
}

static void
check_line(runner *r, const char *line)
{
    if (!r->compiled)
        compile_case(r);
    r->checks++;
    if (line[0] == '!') {
        if (r->m) {
            printf("FAIL %s: patterns were accepted, expected an error\n", r->name);
            r->failures++;
        }
        return;
    }
    if (!r->m) {
        printf("FAIL %s: patterns were rejected\n", r->name);
        r->failures++;
        return;
    }
    bool want = line[0] == '+';
    const char *path = line + 2;
    bool got = kiln_ignore_matches(r->m, path);
    bool walked = walk_match(r->m, path);
    if (got != want || walked != want) {
        printf("FAIL %s: `%s` expected %s, matcher says %s, walk says %s\n", r->name, path,
               want ? "excluded" : "kept", got ? "excluded" : "kept", walked ? "excluded" : "kept");
        r->failures++;
    }
}

static void
end_case(runner *r)
{
    kiln_ignore_free(r->m);
    r->m = NULL;
    r->compiled = false;
    r->in_checks = false;
    kiln_buf_clear(&r->text);
}

int
main(int argc, char **argv)
{
    cleanup_free char *data = NULL;
    cleanup_free char *name = NULL;
    kiln_error *err = NULL;
    runner r = {.text = KILN_BUF_INIT};
    int cases = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: %s cases.txt\n", argv[0]);
        return 2;
    }
    if (kiln_fs_read_file(&data, NULL, argv[1], 0, &err) < 0) {
        fprintf(stderr, "%s\n", err->msg);
        kiln_error_free(&err);
        return 2;
    }
    for (char *line = data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, "=== ", 4) == 0) {
            end_case(&r);
            free(name);
            name = xstrdup(line + 4);
            r.name = name;
            cases++;
        } else if (r.name && !r.in_checks && strcmp(line, "---") == 0) {
            r.in_checks = true;
        } else if (r.name && !r.in_checks) {
            kiln_buf_puts(&r.text, line, NULL);
            kiln_buf_putc(&r.text, '\n', NULL);
        } else if (r.in_checks && (line[0] == '+' || line[0] == '-' || line[0] == '!')) {
            check_line(&r, line);
        }
        line = nl ? nl + 1 : NULL;
    }
    end_case(&r);
    kiln_buf_dispose(&r.text);
    printf("%d cases, %d checks, %d failures\n", cases, r.checks, r.failures);
    return r.failures == 0 && r.checks > 0 ? 0 : 1;
}
