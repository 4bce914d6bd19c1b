/*
 * document.c: image manifests and image indexes (OCI and Docker schema 2, specs.md §1.3-§1.4):
 * parsing from untrusted bytes, canonical serialisation, the kind of a document fetched from a
 * registry, platform selection from an index, and ChainIDs (§1.6).
 */
#include "oci/oci.h"

#include "base/base.h"
#include "base/digest.h"
#include "base/json.h"
#include "oci/oci_internal.h"

#define MAX_ENTRIES 100000 /* layers or index entries: far above any real image */

/* Parse `data`, check schemaVersion 2 and agree on the media type; `kind` is what we want. */
static int
parse_common(json_t **root, char **media_type, const char *data, size_t len, const char *transport,
             kiln_oci_kind kind, const char *what, kiln_error **err)
{
    json_t *sv, *mt;
    const char *doc_mt = NULL;
    int ret;

    ret = kiln_json_parse(root, data, len, KILN_OCI_MANIFEST_MAX, what, err);
    if (ret < 0)
        return ret;
    if (!json_is_object(*root))
        return kiln_error_set(err, KILN_EPARSE, "%s: not a JSON object", what);
    mt = json_object_get(*root, "mediaType");
    if (mt && !json_is_null(mt)) {
        if (!json_is_string(mt))
            return kiln_error_set(err, KILN_EPARSE, "%s: `mediaType` is not a string", what);
        doc_mt = json_string_value(mt);
    }
    if (kiln_oci_media_kind(doc_mt) == KILN_OCI_KIND_SCHEMA1 ||
        kiln_oci_media_kind(transport) == KILN_OCI_KIND_SCHEMA1)
        return kiln_error_set(err, KILN_EUNSUPPORTED,
                              "%s: docker schema 1 manifests are not supported", what);
    sv = json_object_get(*root, "schemaVersion");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2)
        return kiln_error_set(err, KILN_EPARSE, "%s: `schemaVersion` must be 2", what);
    /* distribution-spec: if the body has a mediaType it must match the Content-Type */
    if (doc_mt && transport && kiln_oci_media_kind(transport) != KILN_OCI_KIND_UNKNOWN &&
        kiln_oci_media_kind(transport) != kiln_oci_media_kind(doc_mt))
        return kiln_error_set(err, KILN_EPARSE, "%s: mediaType `%s` does not match `%s`", what,
                              doc_mt, transport);
    if (!doc_mt && transport && kiln_oci_media_kind(transport) != KILN_OCI_KIND_UNKNOWN)
        doc_mt = transport;
    if (doc_mt && kiln_oci_media_kind(doc_mt) != kind)
        return kiln_error_set(err, KILN_EUNSUPPORTED, "%s: `%s` is not an image %s", what, doc_mt,
                              kind == KILN_OCI_KIND_INDEX ? "index" : "manifest");
    *media_type = xstrdup(
            doc_mt ? doc_mt
                   : (kind == KILN_OCI_KIND_INDEX ? KILN_OCI_MT_INDEX : KILN_OCI_MT_MANIFEST));
    return 0;
}

static int
opt_subject(kiln_oci_descriptor **out, const json_t *obj, const char *what, kiln_error **err)
{
    json_t *s = json_object_get(obj, "subject");

    if (!s || json_is_null(s))
        return 0;
    *out = xnew(kiln_oci_descriptor);
    return kiln_oci_descriptor_from_json(*out, s, what, err);
}

/* Parse the array `key` of descriptors into a new array (*n_out entries). */
static int
descriptor_array(kiln_oci_descriptor **out, size_t *n_out, const json_t *obj, const char *key,
                 bool required, const char *what, kiln_error **err)
{
    json_t *arr = json_object_get(obj, key);
    size_t n;
    int ret;

    if (!arr || json_is_null(arr)) {
        if (required)
            return kiln_error_set(err, KILN_EPARSE, "%s: missing `%s`", what, key);
        return 0;
    }
    if (!json_is_array(arr))
        return kiln_error_set(err, KILN_EPARSE, "%s: `%s` is not an array", what, key);
    n = json_array_size(arr);
    if (n > MAX_ENTRIES)
        return kiln_error_set(err, KILN_EINVAL, "%s: more than %d `%s`", what, MAX_ENTRIES, key);
    *out = xcalloc(n ? n : 1, sizeof(**out));
    for (size_t i = 0; i < n; i++) {
        cleanup_free char *w = xasprintf("%s: %s[%zu]", what, key, i);

        *n_out = i + 1; /* so dispose frees partially parsed entries */
        ret = kiln_oci_descriptor_from_json(&(*out)[i], json_array_get(arr, i), w, err);
        if (ret < 0)
            return ret;
    }
    *n_out = n;
    return 0;
}

/* kiln_oci_manifest_parse: see oci.h. *out is zeroed on failure. */
int
kiln_oci_manifest_parse(kiln_oci_manifest *out, const char *data, size_t len,
                        const char *media_type, kiln_error **err)
{
    cleanup_json json_t *root = NULL;
    kiln_oci_manifest m = {0};
    size_t n_cfg = 0;
    kiln_oci_descriptor *cfg = NULL;
    const char *what = "image manifest";
    json_t *wrap = NULL;
    int ret;

    memset(out, 0, sizeof(*out));
    ret = parse_common(&root, &m.media_type, data, len, media_type, KILN_OCI_KIND_MANIFEST, what,
                       err);
    if (ret < 0)
        goto fail;
    if (!json_object_get(root, "config")) {
        ret = kiln_error_set(err, KILN_EPARSE, "%s: missing `config`", what);
        goto fail;
    }
    /* reuse the array parser for the single config descriptor */
    wrap = json_pack("{s:[O]}", "c", json_object_get(root, "config"));
    ret = descriptor_array(&cfg, &n_cfg, wrap, "c", true, "image manifest config", err);
    json_decref(wrap);
    if (cfg) {
        m.config = cfg[0];
        free(cfg);
    }
    if (ret < 0)
        goto fail;
    if ((ret = descriptor_array(&m.layers, &m.n_layers, root, "layers", true, what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&m.artifact_type, root, "artifactType", what, err)) < 0 ||
        (ret = opt_subject(&m.subject, root, "image manifest subject", err)) < 0 ||
        (ret = kiln_oci__opt_string_map(&m.annotations, root, "annotations", "annotation", what,
                                        err)) < 0)
        goto fail;
    *out = m;
    return 0;
fail:
    kiln_oci_manifest_dispose(&m);
    return ret;
}

static char *
dump(json_t *root, size_t *len_out)
{
    char *s = kiln_json_dump_canonical(root);

    json_decref(root);
    *len_out = strlen(s);
    return s;
}

static void
set_common(json_t *root, const char *mt, const char *artifact_type,
           const kiln_oci_descriptor *subject, json_t *annotations)
{
    json_object_set_new(root, "schemaVersion", json_integer(2));
    if (mt)
        json_object_set_new(root, "mediaType", json_string(mt));
    if (artifact_type)
        json_object_set_new(root, "artifactType", json_string(artifact_type));
    if (subject)
        json_object_set_new(root, "subject", kiln_oci_descriptor_to_json(subject));
    if (annotations && json_object_size(annotations))
        json_object_set(root, "annotations", annotations);
}

/* kiln_oci_manifest_to_json: canonical bytes (sorted keys, compact); owned by the caller. */
char *
kiln_oci_manifest_to_json(const kiln_oci_manifest *m, size_t *len_out)
{
    json_t *root = json_object();
    json_t *layers = json_array();

    set_common(root, m->media_type, m->artifact_type, m->subject, m->annotations);
    json_object_set_new(root, "config", kiln_oci_descriptor_to_json(&m->config));
    for (size_t i = 0; i < m->n_layers; i++)
        json_array_append_new(layers, kiln_oci_descriptor_to_json(&m->layers[i]));
    json_object_set_new(root, "layers", layers);
    return dump(root, len_out);
}

/* kiln_oci_manifest_dispose: free everything *m owns and zero it. */
void
kiln_oci_manifest_dispose(kiln_oci_manifest *m)
{
    free(m->media_type);
    free(m->artifact_type);
    kiln_oci_descriptor_dispose(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        kiln_oci_descriptor_dispose(&m->layers[i]);
    free(m->layers);
    if (m->subject) {
        kiln_oci_descriptor_dispose(m->subject);
        free(m->subject);
    }
    if (m->annotations)
        json_decref(m->annotations);
    memset(m, 0, sizeof(*m));
}

/* kiln_oci_index_parse: see oci.h. *out is zeroed on failure. */
int
kiln_oci_index_parse(kiln_oci_index *out, const char *data, size_t len, const char *media_type,
                     kiln_error **err)
{
    cleanup_json json_t *root = NULL;
    kiln_oci_index ix = {0};
    const char *what = "image index";
    int ret;

    memset(out, 0, sizeof(*out));
    if ((ret = parse_common(&root, &ix.media_type, data, len, media_type, KILN_OCI_KIND_INDEX, what,
                            err)) < 0 ||
        (ret = descriptor_array(&ix.manifests, &ix.n_manifests, root, "manifests", true, what,
                                err)) < 0 ||
        (ret = kiln_oci__opt_str(&ix.artifact_type, root, "artifactType", what, err)) < 0 ||
        (ret = opt_subject(&ix.subject, root, "image index subject", err)) < 0 ||
        (ret = kiln_oci__opt_string_map(&ix.annotations, root, "annotations", "annotation", what,
                                        err)) < 0) {
        kiln_oci_index_dispose(&ix);
        return ret;
    }
    *out = ix;
    return 0;
}

/* kiln_oci_index_to_json: canonical bytes; owned by the caller. */
char *
kiln_oci_index_to_json(const kiln_oci_index *ix, size_t *len_out)
{
    json_t *root = json_object();
    json_t *arr = json_array();

    set_common(root, ix->media_type, ix->artifact_type, ix->subject, ix->annotations);
    for (size_t i = 0; i < ix->n_manifests; i++)
        json_array_append_new(arr, kiln_oci_descriptor_to_json(&ix->manifests[i]));
    json_object_set_new(root, "manifests", arr);
    return dump(root, len_out);
}

/* kiln_oci_index_dispose: free everything *ix owns and zero it. */
void
kiln_oci_index_dispose(kiln_oci_index *ix)
{
    free(ix->media_type);
    free(ix->artifact_type);
    for (size_t i = 0; i < ix->n_manifests; i++)
        kiln_oci_descriptor_dispose(&ix->manifests[i]);
    free(ix->manifests);
    if (ix->subject) {
        kiln_oci_descriptor_dispose(ix->subject);
        free(ix->subject);
    }
    if (ix->annotations)
        json_decref(ix->annotations);
    memset(ix, 0, sizeof(*ix));
}

/* kiln_oci_document_kind: see oci.h. */
kiln_oci_kind
kiln_oci_document_kind(const char *data, size_t len, const char *media_type)
{
    cleanup_json json_t *root = NULL;
    kiln_error *tmp = NULL;
    kiln_oci_kind k = kiln_oci_media_kind(media_type);
    const char *mt;

    if (k == KILN_OCI_KIND_MANIFEST || k == KILN_OCI_KIND_INDEX || k == KILN_OCI_KIND_SCHEMA1)
        return k;
    if (kiln_json_parse(&root, data, len, KILN_OCI_MANIFEST_MAX, "manifest", &tmp) < 0) {
        kiln_error_free(&tmp);
        return KILN_OCI_KIND_UNKNOWN;
    }
    if (!json_is_object(root))
        return KILN_OCI_KIND_UNKNOWN;
    mt = json_string_value(json_object_get(root, "mediaType"));
    if (mt && kiln_oci_media_kind(mt) != KILN_OCI_KIND_UNKNOWN)
        return kiln_oci_media_kind(mt);
    if (json_is_array(json_object_get(root, "manifests")))
        return KILN_OCI_KIND_INDEX;
    if (json_object_get(root, "config") || json_object_get(root, "layers"))
        return KILN_OCI_KIND_MANIFEST;
    if (json_object_get(root, "fsLayers"))
        return KILN_OCI_KIND_SCHEMA1;
    return KILN_OCI_KIND_UNKNOWN;
}

/* kiln_oci_index_select: see oci.h. */
int
kiln_oci_index_select(const kiln_oci_descriptor **out, const kiln_oci_index *ix,
                      const kiln_oci_platform *want, kiln_error **err)
{
    kiln_oci_platform host = {0};
    const kiln_oci_descriptor *compatible = NULL;
    cleanup_free char *want_s = NULL;
    kiln_vec avail = KILN_VEC_INIT;
    cleanup_free char *list = NULL;
    int ret = 0;

    if (!want) {
        kiln_oci_platform_host(&host);
        want = &host;
    }
    for (size_t i = 0; i < ix->n_manifests; i++) {
        const kiln_oci_descriptor *d = &ix->manifests[i];
        kiln_oci_kind k = kiln_oci_media_kind(d->media_type);

        /* unknown entries (attestations, artifacts) are skipped, never an error */
        if (!d->platform || (k != KILN_OCI_KIND_MANIFEST && k != KILN_OCI_KIND_INDEX))
            continue;
        kiln_vec_push(&avail, kiln_oci_platform_string(d->platform));
        if (!kiln_oci_platform_match(want, d->platform))
            continue;
        if (kiln_str_eq(d->platform->variant, want->variant) ||
            (!d->platform->variant && !want->variant)) {
            *out = d;
            goto done;
        }
        if (!compatible)
            compatible = d;
    }
    if (compatible) {
        *out = compatible;
        goto done;
    }
    want_s = kiln_oci_platform_string(want);
    list = kiln_strvec_join(&avail, ", ");
    ret = kiln_error_set(err, KILN_ENOTFOUND, "no image for platform %s (available: %s)", want_s,
                         avail.len ? list : "none");
done:
    kiln_strvec_dispose(&avail);
    kiln_oci_platform_dispose(&host);
    return ret;
}

/* kiln_oci_chain_id: see oci.h. Entries of diff_ids must be digest strings. */
void
kiln_oci_chain_id(char *out, const kiln_vec *diff_ids, size_t n)
{
    kiln_assert(n >= 1 && n <= diff_ids->len);
    kiln_strlcpy(out, kiln_vec_get(diff_ids, 0), KILN_DIGEST_STRLEN + 1);
    for (size_t i = 1; i < n; i++) {
        cleanup_free char *s = xasprintf("%s %s", out, (const char *)kiln_vec_get(diff_ids, i));
        kiln_sha256 d;

        kiln_sha256_buf(&d, s, strlen(s));
        kiln_digest_format(out, &d);
    }
}
