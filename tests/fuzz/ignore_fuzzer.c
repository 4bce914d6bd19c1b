/*
 * ignore_fuzzer.c: feeds arbitrary bytes to the .dockerignore parser and matcher. The first line
 * of the input is a path to match; the rest is the .dockerignore text. Matching must never crash,
 * and the walk-style and direct matchers must agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "source/ignore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    size_t plen = nl ? (size_t)(nl - text) : size;
    cleanup_free char *path = NULL;
    cleanup_free bool *info = NULL;
    kiln_ignore *m = NULL;
    kiln_error *err = NULL;
    if (memchr(text, '\0', plen))
        return 0;
    path = xstrndup(text, plen);
    if (kiln_ignore_new_from_file(&m, nl ? nl + 1 : text + size, nl ? size - plen - 1 : 0, "fuzz",
                                  &err) < 0) {
        kiln_error_free(&err);
        return 0;
    }
    info = xcalloc(kiln_ignore_count(m) + 1, sizeof(bool));
    if (kiln_ignore_matches(m, path) != kiln_ignore_matches_walk(m, path, NULL, info))
        abort();
    (void)kiln_ignore_may_match_below(m, path, true);
    (void)kiln_ignore_may_match_below(m, path, false);
    kiln_ignore_free(m);
    return 0;
}
