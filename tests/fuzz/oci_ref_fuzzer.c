/*
 * oci_ref_fuzzer.c: image reference parsing and normalisation. A parsed reference must print
 * back to a string that parses again to the same reference.
 */
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "oci/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = xstrndup((const char *)data, size);
    kiln_oci_ref r, r2;
    kiln_error *err = NULL;

    if (kiln_oci_ref_parse(&r, s, &err) == 0) {
        char *full = kiln_oci_ref_string(&r);

        kiln_assert(kiln_oci_ref_parse(&r2, full, &err) == 0);
        kiln_assert(strcmp(r.domain, r2.domain) == 0 && strcmp(r.path, r2.path) == 0);
        kiln_assert(kiln_str_eq(r.tag, r2.tag) && kiln_str_eq(r.digest, r2.digest));
        kiln_oci_ref_dispose(&r2);
        free(full);
        kiln_oci_ref_dispose(&r);
    } else {
        kiln_assert(err && err->msg);
    }
    kiln_error_free(&err);
    free(s);
    return 0;
}
