/*
 * oci_auth_fuzzer.c: WWW-Authenticate challenge parsing (registry responses are untrusted).
 */
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "oci/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = xstrndup((const char *)data, size);
    kiln_registry_challenge c;
    kiln_error *err = NULL;

    if (kiln_registry_parse_challenge(&c, s, &err) == 0) {
        kiln_assert(c.scheme && c.scheme[0]);
        kiln_registry_challenge_dispose(&c);
    } else {
        kiln_assert(err && err->msg);
    }
    kiln_error_free(&err);
    free(s);
    return 0;
}
