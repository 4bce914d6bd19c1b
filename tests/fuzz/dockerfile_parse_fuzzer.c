/*
 * dockerfile_parse_fuzzer.c: feeds arbitrary bytes to the Dockerfile parser, dumps what parses,
 * runs the typed instruction parsers on every instruction, and runs syntax detection on the same
 * bytes. Any crash, leak or sanitizer report is a bug.
 */
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "frontends/dockerfile/instructions.h"
#include "frontends/dockerfile/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
typed(const kiln_df_node *n)
{
    kiln_error *err = NULL;

    if (kiln_df_check_keyword(n, &err) < 0) {
        kiln_error_free(&err);
        return;
    }
    if (strcmp(n->value, "from") == 0) {
        kiln_df_from f;
        if (kiln_df_parse_from(&f, n, &err) == 0)
            kiln_df_from_dispose(&f);
    } else if (strcmp(n->value, "run") == 0) {
        kiln_df_run r;
        if (kiln_df_parse_run(&r, n, &err) == 0)
            kiln_df_run_dispose(&r);
    } else if (strcmp(n->value, "copy") == 0 || strcmp(n->value, "add") == 0) {
        kiln_df_copy c;
        if (kiln_df_parse_copy(&c, n, &err) == 0)
            kiln_df_copy_dispose(&c);
    }
    kiln_error_free(&err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_df_result *r = NULL;
    kiln_error *err = NULL;
    char *ref = NULL, *cmdline = NULL;
    int line = 0;

    if (kiln_df_parse(&r, (const char *)data, size, "Dockerfile", &err) == 0) {
        char *dump = kiln_df_node_dump(r->ast);
        free(dump);
        for (size_t i = 0; i < r->ast->children.len; i++)
            typed(r->ast->children.items[i]);
        kiln_df_result_free(r);
    } else {
        char *msg = kiln_error_format(err);
        free(msg);
        kiln_error_free(&err);
    }
    if (kiln_df_detect_syntax(&ref, &cmdline, &line, (const char *)data, size)) {
        free(ref);
        free(cmdline);
    }
    return 0;
}
