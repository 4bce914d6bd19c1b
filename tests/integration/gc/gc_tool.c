/*
 * gc_tool.c: the engine's du and automatic GC in exact bytes, for test_gc.sh (the CLI prints
 * rounded sizes).
 *
 *   gc_tool du ROOT    print "<records> <bytes>" of the store (snapshots and blobs)
 *   gc_tool gc ROOT    run kiln_engine_gc (budget from KILN_GC_KEEP_STORAGE or the file
 *                      system), then print as du
 */
#include <stdio.h>

#include "kiln/engine.h"

#include "base/base.h"

static int
print_du(kiln_engine *e)
{
    kiln_engine_usage *v = NULL;
    kiln_error *err = NULL;
    uint64_t total = 0;
    size_t n = 0;
    if (kiln_engine_du(&v, &n, e, &err) < 0) {
        fprintf(stderr, "gc_tool: du: %s\n", err->msg);
        kiln_error_free(&err);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        total += v[i].size;
    printf("%zu %llu\n", n, (unsigned long long)total);
    kiln_engine_usage_free(v, n);
    return 0;
}

int
main(int argc, char **argv)
{
    kiln_engine_opts eo = KILN_ENGINE_OPTS_INIT;
    kiln_engine *e = NULL;
    kiln_error *err = NULL;
    int rc;
    if (argc != 3 || (strcmp(argv[1], "du") != 0 && strcmp(argv[1], "gc") != 0)) {
        fprintf(stderr, "usage: gc_tool du|gc ROOT\n");
        return 2;
    }
    eo.root = argv[2];
    if (kiln_engine_open(&e, &eo, &err) < 0) {
        fprintf(stderr, "gc_tool: open: %s\n", err->msg);
        kiln_error_free(&err);
        return 1;
    }
    if (strcmp(argv[1], "gc") == 0)
        kiln_engine_gc(e);
    rc = print_du(e);
    kiln_engine_free(e);
    return rc;
}
