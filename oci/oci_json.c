/*
 * oci_json.c: the typed getters and builders the oci module's documents share (descriptors,
 * manifests, indexes, image configs). Every getter treats a missing key and JSON null alike
 * (nothing is set) and names the document and the key when the type is wrong.
 */
#include <jansson.h>

#include "base/base.h"
#include "base/vec.h"
#include "oci/oci_internal.h"

int
kiln_oci__opt_str(char **out, const json_t *obj, const char *key, const char *what,
                  kiln_error **err)
{
    json_t *v = json_object_get(obj, key);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return kiln_error_set(err, KILN_EPARSE, "%s: `%s` is not a string", what, key);
    *out = xstrdup(json_string_value(v));
    return 0;
}

int
kiln_oci__opt_strv(kiln_vec *out, bool *present, const json_t *obj, const char *key,
                   const char *what, kiln_error **err)
{
    json_t *a = json_object_get(obj, key);
    size_t i;
    json_t *v;

    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return kiln_error_set(err, KILN_EPARSE, "%s: `%s` is not an array", what, key);
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v))
            return kiln_error_set(err, KILN_EPARSE, "%s: `%s[%zu]` is not a string", what, key, i);
        kiln_strvec_push(out, json_string_value(v));
    }
    if (present)
        *present = true;
    return 0;
}

int
kiln_oci__opt_string_map(json_t **out, const json_t *obj, const char *key, const char *item,
                         const char *what, kiln_error **err)
{
    json_t *m = json_object_get(obj, key);
    const char *k;
    json_t *v;

    if (!m || json_is_null(m))
        return 0;
    if (!json_is_object(m))
        return kiln_error_set(err, KILN_EPARSE, "%s: `%s` is not an object", what, key);
    json_object_foreach(m, k, v)
    {
        if (!json_is_string(v) && item)
            return kiln_error_set(err, KILN_EPARSE, "%s: %s `%s` is not a string", what, item, k);
        if (!json_is_string(v))
            return kiln_error_set(err, KILN_EPARSE, "%s: `%s.%s` is not a string", what, key, k);
    }
    *out = json_incref(m);
    return 0;
}

json_t *
kiln_oci__strv_json(const kiln_vec *v)
{
    json_t *a = json_array();
    const char *s;

    kiln_vec_foreach(v, i, s) {
        json_array_append_new(a, json_string(s));
    }
    return a;
}
