/*
 * manifest.c: media types, digests, descriptors, image manifests and image indexes (OCI and Docker
 * schema 2; specs.md §1.1-§1.4), and platform selection from an index.
 *
 * Parsing is strict where the spec says MUST (schemaVersion 2, descriptor mediaType/digest/size,
 * the transport and document media types agreeing) and lenient where it says unknown things MUST
 * NOT error (unknown keys, unknown layer/config/manifest media types are kept as opaque strings).
 * Every document is size-capped before jansson sees it.
 */
#include <ctype.h>
#include <inttypes.h>

#include "oci/oci.h"
#include "oci/oci_internal.h"

#include "base/base.h"
#include "base/digest.h"
#include "base/json.h"

/* ---- media types --------------------------------------------------------------------------- */

static const struct {
    const char *type;
    kiln_oci_kind kind;
    kiln_oci_compression comp;
    bool nondist;
} media_types[] = {
        {KILN_OCI_MT_MANIFEST, KILN_OCI_KIND_MANIFEST, KILN_OCI_COMP_NONE, false},
        {KILN_DOCKER_MT_MANIFEST, KILN_OCI_KIND_MANIFEST, KILN_OCI_COMP_NONE, false},
        {KILN_OCI_MT_INDEX, KILN_OCI_KIND_INDEX, KILN_OCI_COMP_NONE, false},
        {KILN_DOCKER_MT_LIST, KILN_OCI_KIND_INDEX, KILN_OCI_COMP_NONE, false},
        {KILN_OCI_MT_CONFIG, KILN_OCI_KIND_CONFIG, KILN_OCI_COMP_NONE, false},
        {KILN_DOCKER_MT_CONFIG, KILN_OCI_KIND_CONFIG, KILN_OCI_COMP_NONE, false},
        {KILN_OCI_MT_LAYER_TAR, KILN_OCI_KIND_LAYER, KILN_OCI_COMP_NONE, false},
        {KILN_OCI_MT_LAYER_GZIP, KILN_OCI_KIND_LAYER, KILN_OCI_COMP_GZIP, false},
        {KILN_OCI_MT_LAYER_ZSTD, KILN_OCI_KIND_LAYER, KILN_OCI_COMP_ZSTD, false},
        {KILN_OCI_MT_LAYER_ND_TAR, KILN_OCI_KIND_LAYER, KILN_OCI_COMP_NONE, true},
        {KILN_OCI_MT_LAYER_ND_GZIP, KILN_OCI_KIND_LAYER, KILN_OCI_COMP_GZIP, true},
        {KILN_OCI_MT_LAYER_ND_ZSTD, KILN_OCI_KIND_LAYER, KILN_OCI_COMP_ZSTD, true},
        {KILN_DOCKER_MT_LAYER_GZIP, KILN_OCI_KIND_LAYER, KILN_OCI_COMP_GZIP, false},
        {KILN_DOCKER_MT_LAYER_TAR, KILN_OCI_KIND_LAYER, KILN_OCI_COMP_NONE, false},
        {KILN_DOCKER_MT_LAYER_FOREIGN, KILN_OCI_KIND_LAYER, KILN_OCI_COMP_GZIP, true},
        {KILN_DOCKER_MT_SCHEMA1, KILN_OCI_KIND_SCHEMA1, KILN_OCI_COMP_NONE, false},
        {"application/vnd.docker.distribution.manifest.v1+json", KILN_OCI_KIND_SCHEMA1,
         KILN_OCI_COMP_NONE, false},
};
#define N_MEDIA_TYPES (sizeof(media_types) / sizeof(media_types[0]))

/* Index into media_types of `mt` with parameters and spaces stripped, or -1. */
static int
media_lookup(const char *mt)
{
    size_t n;

    if (!mt)
        return -1;
    while (*mt == ' ' || *mt == '\t')
        mt++;
    n = strcspn(mt, "; \t");
    for (size_t i = 0; i < N_MEDIA_TYPES; i++) {
        if (strlen(media_types[i].type) == n && strncasecmp(media_types[i].type, mt, n) == 0)
            return (int)i;
    }
    return -1;
}

/* kiln_oci_media_kind: see oci.h. */
kiln_oci_kind
kiln_oci_media_kind(const char *media_type)
{
    int i = media_lookup(media_type);

    return i < 0 ? KILN_OCI_KIND_UNKNOWN : media_types[i].kind;
}

/* kiln_oci_layer_compression: 0 with *out set, or KILN_EUNSUPPORTED for a non-layer type. */
int
kiln_oci_layer_compression(kiln_oci_compression *out, const char *media_type, kiln_error **err)
{
    int i = media_lookup(media_type);

    if (i < 0 || media_types[i].kind != KILN_OCI_KIND_LAYER)
        return kiln_error_set(err, KILN_EUNSUPPORTED, "unsupported layer media type `%s`",
                              media_type ? media_type : "(none)");
    *out = media_types[i].comp;
    return 0;
}

/* kiln_oci_layer_nondistributable: see oci.h. */
bool
kiln_oci_layer_nondistributable(const char *media_type)
{
    int i = media_lookup(media_type);

    return i >= 0 && media_types[i].nondist;
}

static bool
mt_char(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("!#$&^_.+-", c));
}

/* kiln_oci_media_type_valid: type "/" subtype, each [A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}. */
bool
kiln_oci_media_type_valid(const char *s)
{
    for (int part = 0; part < 2; part++) {
        size_t n = 0;

        if (!isalnum((unsigned char)*s))
            return false;
        while (mt_char(*s)) {
            s++;
            if (++n > 127)
                return false;
        }
        if (part == 0 && *s++ != '/')
            return false;
    }
    return *s == '\0';
}

static bool
hex_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

/*
 * kiln_oci_digest_valid: algorithm ":" encoded, algorithm = [a-z0-9]+ joined by [+._-],
 * encoded = [a-zA-Z0-9=_-]+; sha256 needs 64 and sha512 128 lowercase hex.
 */
bool
kiln_oci_digest_valid(const char *s)
{
    const char *colon = s ? strchr(s, ':') : NULL;
    size_t alen, elen;

    if (!colon || colon == s || strlen(s) > 1024)
        return false;
    alen = (size_t)(colon - s);
    for (size_t i = 0; i < alen; i++) {
        bool alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
        bool sep = strchr("+._-", s[i]) != NULL;

        if (!alnum && !(sep && i > 0 && i + 1 < alen && !strchr("+._-", s[i - 1])))
            return false;
    }
    elen = strlen(colon + 1);
    if (elen == 0)
        return false;
    for (size_t i = 0; i < elen; i++) {
        char c = colon[1 + i];

        if (!isalnum((unsigned char)c) && c != '=' && c != '_' && c != '-')
            return false;
    }
    if (alen == 6 && memcmp(s, "sha256", 6) == 0)
        return elen == 64 && hex_lower(colon + 1, elen);
    if (alen == 6 && memcmp(s, "sha512", 6) == 0)
        return elen == 128 && hex_lower(colon + 1, elen);
    return true;
}

/* ---- descriptors --------------------------------------------------------------------------- */

static int
platform_from_json(kiln_oci_platform **out, const json_t *obj, const char *what, kiln_error **err)
{
    json_t *pj = json_object_get(obj, "platform");
    kiln_oci_platform *p;
    int ret;

    if (!pj || json_is_null(pj))
        return 0;
    if (!json_is_object(pj))
        return kiln_error_set(err, KILN_EPARSE, "%s: `platform` is not an object", what);
    p = xnew(kiln_oci_platform);
    *out = p;
    if ((ret = kiln_oci__opt_str(&p->os, pj, "os", what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&p->architecture, pj, "architecture", what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&p->variant, pj, "variant", what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&p->os_version, pj, "os.version", what, err)) < 0 ||
        (ret = kiln_oci__opt_strv(&p->os_features, NULL, pj, "os.features", what, err)) < 0 ||
        (ret = kiln_oci__opt_strv(&p->features, NULL, pj, "features", what, err)) < 0)
        return ret;
    if (!p->os || !p->architecture)
        return kiln_error_set(err, KILN_EPARSE, "%s: platform lacks `os` or `architecture`", what);
    return 0;
}

static int
descriptor_required(kiln_oci_descriptor *d, const json_t *obj, const char *what, kiln_error **err)
{
    json_t *size = json_object_get(obj, "size");
    int ret;

    if ((ret = kiln_oci__opt_str(&d->media_type, obj, "mediaType", what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&d->digest, obj, "digest", what, err)) < 0)
        return ret;
    if (!d->media_type || !kiln_oci_media_type_valid(d->media_type))
        return kiln_error_set(err, KILN_EPARSE, "%s: missing or invalid `mediaType`", what);
    if (!d->digest || !kiln_oci_digest_valid(d->digest))
        return kiln_error_set(err, KILN_EPARSE, "%s: missing or invalid `digest`", what);
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return kiln_error_set(err, KILN_EPARSE, "%s: missing or invalid `size`", what);
    d->size = json_integer_value(size);
    return 0;
}

/* image-spec: embedded `data` must match the descriptor's size and digest (sha256 checked; other
 * algorithms are taken on trust, as unknown algorithms SHOULD pass validation). */
static int
check_embedded_data(const kiln_oci_descriptor *d, const char *b64, const char *what,
                    kiln_error **err)
{
    cleanup_free char *bytes = NULL;
    char got[KILN_DIGEST_STRLEN + 1];
    kiln_sha256 sum;
    size_t len = 0;
    int ret;

    ret = kiln_oci__base64_decode(&bytes, &len, b64, KILN_OCI_MANIFEST_MAX, what, err);
    if (ret < 0)
        return kiln_error_wrap(err, "`data`");
    if ((int64_t)len != d->size)
        return kiln_error_set(err, KILN_EDIGEST, "%s: `data` has %zu bytes, size says %" PRId64,
                              what, len, d->size);
    if (!kiln_str_has_prefix(d->digest, "sha256:"))
        return 0;
    kiln_sha256_buf(&sum, bytes, len);
    kiln_digest_format(got, &sum);
    if (strcmp(got, d->digest) != 0)
        return kiln_error_set(err, KILN_EDIGEST, "%s: `data` has digest %s, expected %s", what, got,
                              d->digest);
    return 0;
}

/* kiln_oci_descriptor_from_json: see oci.h. KILN_EPARSE, or KILN_EDIGEST when an embedded `data`
 * disagrees with size/digest. On failure *out holds partial data: the caller
 * disposes it either way (it starts zeroed). */
int
kiln_oci_descriptor_from_json(kiln_oci_descriptor *out, const json_t *obj, const char *what,
                              kiln_error **err)
{
    json_t *data;
    int ret;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(obj))
        return kiln_error_set(err, KILN_EPARSE, "%s: descriptor is not an object", what);
    if ((ret = descriptor_required(out, obj, what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&out->artifact_type, obj, "artifactType", what, err)) < 0 ||
        (ret = kiln_oci__opt_strv(&out->urls, NULL, obj, "urls", what, err)) < 0 ||
        (ret = kiln_oci__opt_string_map(&out->annotations, obj, "annotations", NULL, what, err)) <
                0 ||
        (ret = platform_from_json(&out->platform, obj, what, err)) < 0)
        return ret;
    data = json_object_get(obj, "data");
    if (data && !json_is_null(data)) {
        if (!json_is_string(data))
            return kiln_error_set(err, KILN_EPARSE, "%s: `data` is not a string", what);
        ret = check_embedded_data(out, json_string_value(data), what, err);
        if (ret < 0)
            return ret;
        out->data = json_incref(data);
    }
    return 0;
}

static json_t *
platform_to_json(const kiln_oci_platform *p)
{
    json_t *o = json_object();

    json_object_set_new(o, "architecture", json_string(p->architecture ? p->architecture : ""));
    json_object_set_new(o, "os", json_string(p->os ? p->os : ""));
    if (p->variant)
        json_object_set_new(o, "variant", json_string(p->variant));
    if (p->os_version)
        json_object_set_new(o, "os.version", json_string(p->os_version));
    if (p->os_features.len)
        json_object_set_new(o, "os.features", kiln_oci__strv_json(&p->os_features));
    if (p->features.len)
        json_object_set_new(o, "features", kiln_oci__strv_json(&p->features));
    return o;
}

/* kiln_oci_descriptor_to_json: a new JSON object (owned by the caller). */
json_t *
kiln_oci_descriptor_to_json(const kiln_oci_descriptor *d)
{
    json_t *o = json_object();

    json_object_set_new(o, "mediaType", json_string(d->media_type ? d->media_type : ""));
    json_object_set_new(o, "digest", json_string(d->digest ? d->digest : ""));
    json_object_set_new(o, "size", json_integer(d->size));
    if (d->artifact_type)
        json_object_set_new(o, "artifactType", json_string(d->artifact_type));
    if (d->urls.len)
        json_object_set_new(o, "urls", kiln_oci__strv_json(&d->urls));
    if (d->annotations && json_object_size(d->annotations))
        json_object_set(o, "annotations", d->annotations);
    if (d->data)
        json_object_set(o, "data", d->data);
    if (d->platform)
        json_object_set_new(o, "platform", platform_to_json(d->platform));
    return o;
}

/* kiln_oci_descriptor_copy: deep copy (JSON values shared by reference); *out owned by caller. */
void
kiln_oci_descriptor_copy(kiln_oci_descriptor *out, const kiln_oci_descriptor *d)
{
    const char *s;

    memset(out, 0, sizeof(*out));
    out->media_type = xstrdup(d->media_type);
    out->digest = xstrdup(d->digest);
    out->size = d->size;
    out->artifact_type = xstrdup(d->artifact_type);
    kiln_vec_foreach(&d->urls, i, s) {
        kiln_strvec_push(&out->urls, s);
    }
    out->annotations = d->annotations ? json_incref(d->annotations) : NULL;
    out->data = d->data ? json_incref(d->data) : NULL;
    if (d->platform) {
        out->platform = xnew(kiln_oci_platform);
        kiln_oci_platform_copy(out->platform, d->platform);
    }
}

/* kiln_oci_descriptor_dispose: free everything *d owns and zero it. */
void
kiln_oci_descriptor_dispose(kiln_oci_descriptor *d)
{
    free(d->media_type);
    free(d->digest);
    free(d->artifact_type);
    kiln_strvec_dispose(&d->urls);
    if (d->annotations)
        json_decref(d->annotations);
    if (d->data)
        json_decref(d->data);
    if (d->platform) {
        kiln_oci_platform_dispose(d->platform);
        free(d->platform);
    }
    memset(d, 0, sizeof(*d));
}
