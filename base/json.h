/*
 * json.h: JSON via jansson, with the size caps and typed getters kiln uses on untrusted documents
 * (registry manifests, image configs, cache records).
 */
#ifndef KILN_BASE_JSON_H
#define KILN_BASE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

#define KILN_JSON_MAX_DOC (16u << 20) /* default cap for a document we parse: 16 MiB */

/* Parse `len` bytes; KILN_EPARSE with line/column on malformed JSON, KILN_EINVAL over `max` bytes
 * (0 = KILN_JSON_MAX_DOC). `what` names the document in errors ("manifest sha256:..."). *out owned.
 */
int kiln_json_parse(json_t **out, const char *data, size_t len, size_t max, const char *what,
                    kiln_error **err);
/* Compact, sorted keys, no trailing newline: the canonical form kiln writes. Owned by caller. */
char *kiln_json_dump_canonical(const json_t *j);

/* Typed getters on an object. Missing keys: KILN_ENOTFOUND when `required`, else 0 with *out
 * untouched. Wrong type: KILN_EPARSE naming the key. Strings are borrowed from `obj`. */
int kiln_json_get_str(const json_t *obj, const char *key, bool required, const char **out,
                      kiln_error **err);
int kiln_json_get_int(const json_t *obj, const char *key, bool required, int64_t *out,
                      kiln_error **err);
int kiln_json_get_bool(const json_t *obj, const char *key, bool required, bool *out,
                       kiln_error **err);
int kiln_json_get_obj(const json_t *obj, const char *key, bool required, json_t **out,
                      kiln_error **err);
int kiln_json_get_arr(const json_t *obj, const char *key, bool required, json_t **out,
                      kiln_error **err);

static inline void
kiln_cleanup_json(json_t **j)
{
    if (*j)
        json_decref(*j);
}
#define cleanup_json __attribute__((cleanup(kiln_cleanup_json)))

#endif
