/*
 * llb_decode_fuzzer.c: fuzz target for the LLB Definition loader (untrusted input from clients
 * and frontends): kiln_llb_load, then everything a loaded graph feeds (JSON and text dump,
 * canonical re-encoding of each op). Any crash, leak or sanitizer report is a bug.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "llb/llb.h"

#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    kiln_error *err = NULL;
    kiln_llb_graph *g = NULL;

    if (!sink)
        sink = fopen("/dev/null", "w");
    if (kiln_llb_load(&g, data, size, &err) < 0) {
        kiln_assert(err && err->msg && err->code < 0);
        kiln_error_free(&err);
        return 0;
    }
    for (size_t i = 0; i < kiln_llb_graph_count(g); i++) {
        kiln_buf b = KILN_BUF_INIT;
        kiln_llb_encode(&b, &kiln_llb_graph_node(g, i)->op->base);
        kiln_buf_dispose(&b);
    }
    if (sink) {
        kiln_llb_dump(sink, g, true, NULL);
        kiln_llb_dump(sink, g, false, NULL);
    }
    kiln_llb_graph_free(g);
    return 0;
}
