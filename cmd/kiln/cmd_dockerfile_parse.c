/*
 * cmd_dockerfile_parse.c: `kiln dockerfile parse [--dump] FILE|-`: parse a Dockerfile and print
 * its AST, either exactly as BuildKit's Node.Dump() (--dump, for comparisons with BuildKit) or as
 * a listing with line numbers, directives, flags and heredocs. Parse warnings go to stderr.
 * --check also validates keywords and the flags of FROM, RUN, COPY and ADD.
 */
#include <getopt.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/fs.h"
#include "cmd/kiln/commands.h"
#include "frontends/dockerfile/instructions.h"
#include "frontends/dockerfile/parser.h"

#define DF_MAX_FILE (64u << 20)

static void
usage(FILE *out)
{
    fprintf(out, "Usage: kiln dockerfile parse [--dump] [--check] FILE|-\n\n"
                 "Parse a Dockerfile (\"-\" reads stdin) and print its instructions.\n\n"
                 "Options:\n"
                 "  -d, --dump   print BuildKit's AST dump format, one S-expression per line\n"
                 "  -c, --check  also validate instruction names and FROM/RUN/COPY/ADD flags\n"
                 "  -h, --help   show this help\n");
}

static int
read_dockerfile(char **out, size_t *len, const char *path, kiln_error **err)
{
    kiln_buf b = KILN_BUF_INIT;
    int rc;

    if (strcmp(path, "-") != 0)
        return kiln_fs_read_file(out, len, path, DF_MAX_FILE, err);
    rc = kiln_fd_read_all(STDIN_FILENO, &b, DF_MAX_FILE, err);
    if (rc < 0) {
        kiln_buf_dispose(&b);
        return kiln_error_wrap(err, "read stdin");
    }
    *len = b.len;
    *out = kiln_buf_detach(&b);
    return 0;
}

static void
print_args(const kiln_df_node *n)
{
    for (const kiln_df_node *a = n->next; a; a = a->next) {
        if (a->children.len > 0) {
            const kiln_df_node *c = a->children.items[0];
            printf(" %s", c->original ? c->original : c->value);
            continue;
        }
        cleanup_free char *q = kiln_str_go_quote(a->value, a->value_len);
        printf(" %s", q);
    }
}

/* The friendly listing: "  LINES  KEYWORD [flags] args" plus heredoc summaries. */
static void
print_listing(const kiln_df_result *r)
{
    for (size_t i = 0; i < r->directives.len; i++) {
        const kiln_df_directive *d = r->directives.items[i];
        printf("%5d        # %s=%s\n", d->line, d->name, d->value);
    }
    for (size_t i = 0; i < r->ast->children.len; i++) {
        const kiln_df_node *n = r->ast->children.items[i];
        char range[32];
        snprintf(range, sizeof(range), n->start_line == n->end_line ? "%d" : "%d-%d", n->start_line,
                 n->end_line);
        printf("%11s  ", range);
        for (const char *p = n->value; *p; p++)
            putchar(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
        for (size_t f = 0; f < n->flags.len; f++)
            printf(" %s", (const char *)n->flags.items[f]);
        print_args(n);
        printf("%s\n", n->json ? "  (exec form)" : "");
        for (size_t h = 0; h < n->heredocs.len; h++) {
            const kiln_df_heredoc *doc = n->heredocs.items[h];
            printf("             heredoc <<%s%s: %zu bytes%s\n", doc->chomp ? "-" : "", doc->name,
                   strlen(doc->content), doc->expand ? "" : ", not expanded");
        }
    }
}

/* Typed validation of one instruction (and of ONBUILD's trigger). */
static int
check_instruction(const kiln_df_node *n, kiln_error **err)
{
    int rc = kiln_df_check_keyword(n, err);

    if (rc == 0 && strcmp(n->value, "onbuild") == 0 && n->next && n->next->children.len > 0)
        rc = check_instruction(n->next->children.items[0], err);
    if (rc == 0 && strcmp(n->value, "from") == 0) {
        kiln_df_from f;
        rc = kiln_df_parse_from(&f, n, err);
        if (rc == 0)
            kiln_df_from_dispose(&f);
    } else if (rc == 0 && strcmp(n->value, "run") == 0) {
        kiln_df_run r;
        rc = kiln_df_parse_run(&r, n, err);
        if (rc == 0)
            kiln_df_run_dispose(&r);
    } else if (rc == 0 && (strcmp(n->value, "copy") == 0 || strcmp(n->value, "add") == 0)) {
        kiln_df_copy c;
        rc = kiln_df_parse_copy(&c, n, err);
        if (rc == 0)
            kiln_df_copy_dispose(&c);
    }
    return rc;
}

static int
check_all(const kiln_df_result *r, const char *file, kiln_error **err)
{
    for (size_t i = 0; i < r->ast->children.len; i++) {
        const kiln_df_node *n = r->ast->children.items[i];
        if (check_instruction(n, err) < 0)
            return kiln_error_set_location(err, file, n->start_line, 1);
    }
    return 0;
}

int
kiln_cmd_dockerfile_parse(int argc, char **argv)
{
    static const struct option opts[] = {
            {"dump", no_argument, NULL, 'd'},
            {"check", no_argument, NULL, 'c'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
    };
    cleanup_kiln_error kiln_error *err = NULL;
    cleanup_free char *data = NULL;
    kiln_df_result *r = NULL;
    bool dump = false, check = false;
    size_t len = 0;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "dch", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dump = true;
            break;
        case 'c':
            check = true;
            break;
        case 'h':
            usage(stdout);
            return KILN_EXIT_OK;
        default:
            usage(stderr);
            return KILN_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return KILN_EXIT_USAGE;
    }
    const char *path = argv[optind];
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    if (read_dockerfile(&data, &len, path, &err) < 0 ||
        kiln_df_parse(&r, data, len, name, &err) < 0) {
        kiln_cmd_report(err);
        return KILN_EXIT_FAILURE;
    }
    if (check && check_all(r, name, &err) < 0) {
        kiln_df_result_free(r);
        kiln_cmd_report(err);
        return KILN_EXIT_FAILURE;
    }
    for (size_t i = 0; i < r->warnings.len; i++) {
        const kiln_df_warning *w = r->warnings.items[i];
        fprintf(stderr, "kiln: warning: %s:%d: %s\n", name, w->line, w->msg);
    }
    if (dump) {
        cleanup_free char *s = kiln_df_node_dump(r->ast);
        printf("%s\n", s);
    } else {
        print_listing(r);
    }
    kiln_df_result_free(r);
    return KILN_EXIT_OK;
}
