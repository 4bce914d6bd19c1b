/*
 * oci_internal.h: helpers shared by the files of the oci module only.
 */
#ifndef KILN_OCI_OCI_INTERNAL_H
#define KILN_OCI_OCI_INTERNAL_H

#include <stddef.h>

#include "base/error.h"

/* Standard base64 (with padding) of `len` bytes; NUL-terminated, owned by caller. */
char *kiln_oci__base64_encode(const void *data, size_t len);

/* Decode standard base64 (padding required, no whitespace) of at most `max` input bytes into
 * *out (NUL-terminated, owned by caller) and *len_out. KILN_EPARSE naming `what` on bad input. */
int kiln_oci__base64_decode(char **out, size_t *len_out, const char *s, size_t max,
                            const char *what, kiln_error **err);

#endif
