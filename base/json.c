/*
 * json.c: parsing untrusted JSON with a size cap and typed getters whose errors name the key, and
 * the canonical dump (compact, sorted keys) kiln writes everywhere it stores or hashes JSON.
 */
#include <jansson.h>
#include <string.h>

#include "base/base.h"
#include "base/json.h"

int
kiln_json_parse(json_t **out, const char *data, size_t len, size_t max, const char *what,
                kiln_error **err)
{
    json_error_t je;
    json_t *j;

    if (!max)
        max = KILN_JSON_MAX_DOC;
    if (len > max)
        return kiln_error_set(err, KILN_EINVAL, "%s: document too big (%zu bytes, limit %zu)", what,
                              len, max);
    j = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!j)
        return kiln_error_set(err, KILN_EPARSE, "%s: invalid JSON at line %d column %d: %s", what,
                              je.line, je.column, je.text);
    *out = j;
    return 0;
}

char *
kiln_json_dump_canonical(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *copy;

    if (!s)
        kiln_abort(__FILE__, __LINE__, "json_dumps failed");
    copy = xstrdup(s);
    free(s);
    return copy;
}

static int
get_typed(const json_t *obj, const char *key, bool required, json_type type, const char *tname,
          json_t **out, kiln_error **err)
{
    json_t *v;

    if (!json_is_object(obj))
        return kiln_error_set(err, KILN_EPARSE, "expected a JSON object around `%s`", key);
    v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return kiln_error_set(err, KILN_ENOTFOUND, "missing field `%s`", key);
        *out = NULL;
        return 0;
    }
    if (json_typeof(v) != type && !(type == JSON_TRUE && json_is_boolean(v)))
        return kiln_error_set(err, KILN_EPARSE, "field `%s`: expected %s", key, tname);
    *out = v;
    return 0;
}

int
kiln_json_get_str(const json_t *obj, const char *key, bool required, const char **out,
                  kiln_error **err)
{
    json_t *v = NULL;
    int rc = get_typed(obj, key, required, JSON_STRING, "a string", &v, err);

    if (rc == 0 && v)
        *out = json_string_value(v);
    return rc;
}

int
kiln_json_get_int(const json_t *obj, const char *key, bool required, int64_t *out, kiln_error **err)
{
    json_t *v = NULL;
    int rc = get_typed(obj, key, required, JSON_INTEGER, "an integer", &v, err);

    if (rc == 0 && v)
        *out = (int64_t)json_integer_value(v);
    return rc;
}

int
kiln_json_get_bool(const json_t *obj, const char *key, bool required, bool *out, kiln_error **err)
{
    json_t *v = NULL;
    int rc = get_typed(obj, key, required, JSON_TRUE, "a boolean", &v, err);

    if (rc == 0 && v)
        *out = json_is_true(v);
    return rc;
}

int
kiln_json_get_obj(const json_t *obj, const char *key, bool required, json_t **out, kiln_error **err)
{
    json_t *v = NULL;
    int rc = get_typed(obj, key, required, JSON_OBJECT, "an object", &v, err);

    if (rc == 0 && v)
        *out = v;
    return rc;
}

int
kiln_json_get_arr(const json_t *obj, const char *key, bool required, json_t **out, kiln_error **err)
{
    json_t *v = NULL;
    int rc = get_typed(obj, key, required, JSON_ARRAY, "an array", &v, err);

    if (rc == 0 && v)
        *out = v;
    return rc;
}
