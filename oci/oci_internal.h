/*
 * oci_internal.h: helpers shared by the files of the oci module only.
 */
#ifndef KILN_OCI_OCI_INTERNAL_H
#define KILN_OCI_OCI_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "base/vec.h"

/* Standard base64 (with padding) of `len` bytes; NUL-terminated, owned by caller. */
char *kiln_oci__base64_encode(const void *data, size_t len);

/* Decode standard base64 (padding required, no whitespace) of at most `max` input bytes into
 * *out (NUL-terminated, owned by caller) and *len_out. KILN_EPARSE naming `what` on bad input. */
int kiln_oci__base64_decode(char **out, size_t *len_out, const char *s, size_t max,
                            const char *what, kiln_error **err);

/* Optional typed members of a JSON object (oci_json.c). Missing or null: nothing is set, 0.
 * Wrong type: KILN_EPARSE naming `what` and the key. Strings are copied (owned by the caller);
 * the string map is a new reference to an object whose values are all strings; a value of
 * another type is named as "<item> `k`" when item is set ("label"), else as "`key.k`". */
int kiln_oci__opt_str(char **out, const json_t *obj, const char *key, const char *what,
                      kiln_error **err);
/* Appends the array's strings to out; *present (may be NULL) is set when the array is there. */
int kiln_oci__opt_strv(kiln_vec *out, bool *present, const json_t *obj, const char *key,
                       const char *what, kiln_error **err);
int kiln_oci__opt_string_map(json_t **out, const json_t *obj, const char *key, const char *item,
                             const char *what, kiln_error **err);
/* A JSON array of the vector's strings (new reference). */
json_t *kiln_oci__strv_json(const kiln_vec *v);

#endif
