/*
 * image_store.c: the local image store and image archives. An image is a manifest blob in the
 * content store; a name ("docker.io/library/app:latest", docker's normalisation) maps to a
 * descriptor record in the store's image table:
 *
 *     {"mediaType", "digest", "size"   the manifest descriptor
 *      "config"                        config digest (image id)
 *      "snapshot"                      top layer snapshot, when known (run reuses it)
 *      "created", "imageSize"}         for listings
 *
 * with refs on the config and layer blobs and the snapshot, so GC keeps them (the manifest blob
 * is kept through "digest"). Images are found by name or by a unique prefix of the manifest
 * digest or image id. write_archive / write_layout hand a stored image to the exporters of
 * oci/export.h, reading the layer blobs straight from the content store.
 */
#define KILN_LOG_DOMAIN "engine"

#include <fcntl.h>
#include <time.h>

#include "base/buf.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/json.h"
#include "engine/engine_internal.h"
#include "oci/export.h"
#include "oci/oci.h"

#include "base/base.h"

/* ---- content store helpers ------------------------------------------------------------------ */

int
engine_blob_put(char *digest_out, kiln_engine *e, const void *data, size_t len,
                const char *media_type, kiln_error **err)
{
    kiln_cache_blob_writer *w = NULL;
    char digest[KILN_DIGEST_STRLEN + 1];
    kiln_sha256 sum;
    int ret;

    /* a blob already stored (the config and manifest of an unchanged rebuild) is only leased:
     * no write, no sync */
    kiln_sha256_buf(&sum, data, len);
    kiln_digest_format(digest, &sum);
    if (kiln_cache_blob_exists(e->cache, digest)) {
        cleanup_free char *target = xasprintf("blob:%s", digest);
        kiln_error *tmp = NULL;
        if (kiln_cache_lease_add(e->cache, e->lease, target, &tmp) == 0) {
            if (digest_out)
                memcpy(digest_out, digest, sizeof(digest));
            return 0;
        }
        kiln_error_free(&tmp); /* removed meanwhile: write it again */
    }
    ret = kiln_cache_blob_writer_new(&w, e->cache, NULL, err);
    if (ret < 0)
        return ret;
    kiln_cache_blob_writer_set_lease(w, e->lease);
    ret = kiln_cache_blob_writer_write(w, data, len, err);
    if (ret == 0)
        ret = kiln_cache_blob_writer_commit(w, media_type, digest_out, err);
    kiln_cache_blob_writer_free(w);
    return ret;
}

int
engine_blob_read(char **out, size_t *len_out, kiln_engine *e, const char *digest, size_t max,
                 kiln_error **err)
{
    cleanup_close int fd = -1;
    kiln_buf b;
    int ret = kiln_cache_blob_open(&fd, e->cache, digest, err);

    if (ret < 0)
        return ret;
    kiln_buf_init(&b, max);
    ret = kiln_fd_read_all(fd, &b, max, err);
    if (ret < 0) {
        kiln_buf_dispose(&b);
        return kiln_error_wrap(err, "read blob %s", digest);
    }
    *len_out = b.len;
    *out = b.ptr ? kiln_buf_detach(&b) : xstrdup("");
    kiln_buf_dispose(&b);
    return 0;
}

int
engine_store_open_layer(int *fd, const kiln_oci_descriptor *d, void *payload, kiln_error **err)
{
    kiln_engine *e = payload;
    int ret = kiln_cache_blob_open(fd, e->cache, d->digest, err);

    if (ret < 0)
        return kiln_error_wrap(err, "layer %s", d->digest);
    return 0;
}

/* Unix seconds of an RFC 3339 time ("2024-01-02T03:04:05.123Z", offsets ignored); 0 if bad. */
static int64_t
parse_time(const char *s)
{
    struct tm tm = {0};

    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

int
engine_image_from_store(kiln_engine_image **out, kiln_engine *e, const char *digest,
                        const char *snapshot, kiln_error **err)
{
    kiln_engine_image *img = xnew(kiln_engine_image);
    cleanup_json json_t *cfg = NULL;
    int ret;

    kiln_strlcpy(img->digest, digest, sizeof(img->digest));
    img->manifest = xnew(kiln_oci_manifest);
    ret = engine_blob_read(&img->manifest_json, &img->manifest_len, e, digest,
                           KILN_OCI_MANIFEST_MAX, err);
    if (ret == 0)
        ret = kiln_oci_manifest_parse(img->manifest, img->manifest_json, img->manifest_len, NULL,
                                      err);
    if (ret == 0)
        ret = engine_blob_read(&img->config_json, &img->config_len, e, img->manifest->config.digest,
                               KILN_OCI_CONFIG_MAX, err);
    if (ret == 0)
        ret = kiln_json_parse(&cfg, img->config_json, img->config_len, KILN_OCI_CONFIG_MAX,
                              "image config", err);
    if (ret < 0) {
        kiln_engine_image_free(img);
        return kiln_error_wrap(err, "image %s", digest);
    }
    kiln_strlcpy(img->config_digest, img->manifest->config.digest, sizeof(img->config_digest));
    img->size = (int64_t)(img->manifest_len + img->config_len);
    for (size_t i = 0; i < img->manifest->n_layers; i++)
        img->size += img->manifest->layers[i].size;
    img->created = parse_time(json_string_value(json_object_get(cfg, "created")));
    if (snapshot)
        kiln_strlcpy(img->snapshot, snapshot, sizeof(img->snapshot));
    *out = img;
    return 0;
}

void
kiln_engine_image_free(kiln_engine_image *img)
{
    if (!img)
        return;
    free(img->manifest_json);
    free(img->config_json);
    if (img->manifest)
        kiln_oci_manifest_dispose(img->manifest);
    free(img->manifest);
    free(img);
}

const char *
kiln_engine_image_digest(const kiln_engine_image *img)
{
    return img->digest;
}

const char *
kiln_engine_image_config_digest(const kiln_engine_image *img)
{
    return img->config_digest;
}

const char *
kiln_engine_image_manifest_json(const kiln_engine_image *img)
{
    return img->manifest_json;
}

const char *
kiln_engine_image_config_json(const kiln_engine_image *img)
{
    return img->config_json;
}

int64_t
kiln_engine_image_size(const kiln_engine_image *img)
{
    return img->size;
}

/* ---- names ---------------------------------------------------------------------------------- */

/* Docker's normalisation of an image name; a digest is allowed only when allow_digest (pulls by
 * digest). *out owned by the caller. KILN_EINVAL. */
static int
normalize_name(char **out, const char *name, bool allow_digest, kiln_error **err)
{
    kiln_oci_ref ref = {0};
    int ret = kiln_oci_ref_parse(&ref, name, err);

    if (ret < 0)
        return kiln_error_wrap(err, "image name");
    if (ref.digest && !allow_digest) {
        kiln_oci_ref_dispose(&ref);
        return kiln_error_set(err, KILN_EINVAL, "image name `%s`: a name cannot hold a digest",
                              name);
    }
    *out = kiln_oci_ref_string(&ref);
    kiln_oci_ref_dispose(&ref);
    return 0;
}

/* Whether snapshot `id` still exists. */
static bool
snapshot_exists(kiln_engine *e, const char *id)
{
    kiln_cache_snapshot_info info = {0};
    kiln_error *tmp = NULL;
    bool ok = *id && kiln_cache_snapshot_info_get(&info, e->cache, id, &tmp) == 0;

    kiln_cache_snapshot_info_dispose(&info);
    kiln_error_free(&tmp);
    return ok;
}

/* Store `full` (normalised) -> img. */
static int
store_name(kiln_engine *e, const kiln_engine_image *img, const char *full, kiln_error **err)
{
    cleanup_json json_t *doc = json_object();
    cleanup_free char *enc = NULL;
    kiln_vec refs = KILN_VEC_INIT;
    bool snap = snapshot_exists(e, img->snapshot);
    int ret;

    json_object_set_new(doc, "mediaType", json_string(img->manifest->media_type));
    json_object_set_new(doc, "digest", json_string(img->digest));
    json_object_set_new(doc, "size", json_integer((json_int_t)img->manifest_len));
    json_object_set_new(doc, "config", json_string(img->config_digest));
    json_object_set_new(doc, "created", json_integer(img->created));
    json_object_set_new(doc, "imageSize", json_integer(img->size));
    if (snap)
        json_object_set_new(doc, "snapshot", json_string(img->snapshot));
    enc = kiln_json_dump_canonical(doc);
    kiln_vec_push(&refs, xasprintf("blob:%s", img->config_digest));
    for (size_t i = 0; i < img->manifest->n_layers; i++)
        kiln_vec_push(&refs, xasprintf("blob:%s", img->manifest->layers[i].digest));
    if (snap)
        kiln_vec_push(&refs, xasprintf("snapshot:%s", img->snapshot));
    kiln_vec_push(&refs, NULL);
    ret = kiln_cache_image_put(e->cache, full, enc, (const char *const *)refs.items, err);
    kiln_vec_dispose(&refs, free);
    return ret;
}

int
kiln_engine_image_tag(kiln_engine *e, const kiln_engine_image *img, const char *name,
                      kiln_error **err)
{
    cleanup_free char *full = NULL;
    int ret = normalize_name(&full, name, false, err);

    if (ret == 0)
        ret = store_name(e, img, full, err);
    if (ret < 0)
        return kiln_error_wrap(err, "tag %s as `%s`", img->digest, name);
    return 0;
}

int
engine_image_tag_ref(kiln_engine *e, const kiln_engine_image *img, const char *ref,
                     kiln_error **err)
{
    cleanup_free char *full = NULL;
    int ret = normalize_name(&full, ref, true, err);

    if (ret == 0)
        ret = store_name(e, img, full, err);
    return ret;
}

int
kiln_engine_image_untag(kiln_engine *e, const char *name, kiln_error **err)
{
    cleanup_free char *full = NULL;
    int ret = normalize_name(&full, name, true, err);

    if (ret == 0)
        ret = kiln_cache_image_delete(e->cache, full, err);
    if (ret == KILN_ENOTFOUND) {
        kiln_error_free(err);
        return kiln_error_set(err, KILN_ENOTFOUND, "no such image `%s`", name);
    }
    if (ret < 0)
        return kiln_error_wrap(err, "untag `%s`", name);
    return 0;
}

/* ---- lookup --------------------------------------------------------------------------------- */

/* Open the image of a descriptor record. */
static int
image_from_record(kiln_engine_image **out, kiln_engine *e, const char *doc_json, const char *name,
                  kiln_error **err)
{
    cleanup_json json_t *doc = NULL;
    const char *digest, *snap;
    int ret = kiln_json_parse(&doc, doc_json, strlen(doc_json), 0, "image record", err);

    if (ret < 0)
        return kiln_error_wrap(err, "image `%s`", name);
    digest = json_string_value(json_object_get(doc, "digest"));
    snap = json_string_value(json_object_get(doc, "snapshot"));
    if (!digest || !kiln_digest_valid(digest))
        return kiln_error_set(err, KILN_EPARSE, "image `%s`: record without a digest", name);
    return engine_image_from_store(out, e, digest, snap, err);
}

static int lookup_prefix(kiln_engine_image **out, kiln_engine *e, const char *prefix,
                         kiln_error **err);

/* A reference pinned to a digest ("busybox:latest@sha256:...", as frontends write FROM after
 * resolving it): the named image when it still has that digest, else any stored image with that
 * manifest digest. */
static int
lookup_pinned(kiln_engine_image **out, kiln_engine *e, kiln_oci_ref *ref, kiln_error **err)
{
    cleanup_free char *digest = ref->digest;
    cleanup_free char *name = NULL;
    cleanup_free char *doc = NULL;
    kiln_engine_image *img = NULL;
    kiln_error *tmp = NULL;

    ref->digest = NULL;
    if (ref->tag) {
        name = kiln_oci_ref_string(ref);
        if (kiln_cache_image_get(&doc, e->cache, name, &tmp) == 0 &&
            image_from_record(&img, e, doc, name, &tmp) == 0 && strcmp(img->digest, digest) == 0) {
            *out = img;
            return 0;
        }
        kiln_engine_image_free(img);
        kiln_error_free(&tmp);
    }
    return lookup_prefix(out, e, digest, err);
}

int
engine_image_lookup_local(kiln_engine_image **out, kiln_engine *e, const char *ref,
                          kiln_error **err)
{
    cleanup_free char *full = NULL;
    cleanup_free char *doc = NULL;
    kiln_oci_ref r = {0};
    int ret = kiln_oci_ref_parse(&r, ref, err);

    if (ret < 0)
        return kiln_error_wrap(err, "image name");
    if (r.digest) {
        ret = lookup_pinned(out, e, &r, err);
        kiln_oci_ref_dispose(&r);
        return ret;
    }
    full = kiln_oci_ref_string(&r);
    kiln_oci_ref_dispose(&r);
    ret = kiln_cache_image_get(&doc, e->cache, full, err);
    if (ret == 0)
        ret = image_from_record(out, e, doc, full, err);
    return ret;
}

static bool
is_hex_prefix(const char *s)
{
    if (kiln_str_has_prefix(s, "sha256:"))
        s += strlen("sha256:");
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    }
    return true;
}

static bool
digest_has_prefix(const char *digest, const char *prefix)
{
    if (!digest)
        return false;
    if (kiln_str_has_prefix(prefix, "sha256:"))
        return kiln_str_has_prefix(digest, prefix);
    return kiln_str_has_prefix(digest + strlen("sha256:"), prefix);
}

/* The image whose manifest digest or image id starts with `prefix`, if exactly one does. */
static int
lookup_prefix(kiln_engine_image **out, kiln_engine *e, const char *prefix, kiln_error **err)
{
    kiln_cache_record *v = NULL;
    cleanup_free char *found = NULL;
    cleanup_free char *found_cfg = NULL;
    const char *found_doc = NULL;
    size_t n = 0;
    int ret = kiln_cache_image_list(&v, &n, e->cache, err);

    for (size_t i = 0; ret == 0 && i < n; i++) {
        json_t *doc = json_loads(v[i].json, 0, NULL);
        const char *d = json_string_value(json_object_get(doc, "digest"));
        const char *c = json_string_value(json_object_get(doc, "config"));
        if (d && (digest_has_prefix(d, prefix) || digest_has_prefix(c, prefix))) {
            /* one image id in several manifests (OCI and Docker types) is one image */
            if (found && strcmp(found, d) != 0 && !kiln_str_eq(found_cfg, c))
                ret = kiln_error_set(err, KILN_EINVAL, "image id prefix `%s` is ambiguous", prefix);
            if (!found) {
                found = xstrdup(d);
                found_cfg = xstrdup(c);
                found_doc = v[i].json;
            }
        }
        json_decref(doc);
    }
    if (ret == 0 && !found)
        ret = kiln_error_set(err, KILN_ENOTFOUND, "no such image `%s`", prefix);
    if (ret == 0)
        ret = image_from_record(out, e, found_doc, prefix, err);
    kiln_cache_records_free(v, n);
    return ret;
}

int
kiln_engine_image_get(kiln_engine_image **out, kiln_engine *e, const char *name, kiln_error **err)
{
    kiln_error *tmp = NULL;
    int ret = engine_image_lookup_local(out, e, name, &tmp);

    if (ret == 0)
        return 0;
    if (is_hex_prefix(name)) {
        kiln_error_free(&tmp);
        return lookup_prefix(out, e, name, err);
    }
    if (ret == KILN_ENOTFOUND) {
        kiln_error_free(&tmp);
        return kiln_error_set(err, KILN_ENOTFOUND, "no such image `%s`", name);
    }
    kiln_error_move(err, &tmp);
    return ret;
}

/* ---- listing -------------------------------------------------------------------------------- */

int
kiln_engine_image_list(kiln_engine_image_entry **out, size_t *n, kiln_engine *e, kiln_error **err)
{
    kiln_cache_record *v = NULL;
    kiln_engine_image_entry *res;
    size_t count = 0, k = 0;
    int ret = kiln_cache_image_list(&v, &count, e->cache, err);

    if (ret < 0)
        return ret;
    res = xcalloc(count + 1, sizeof(*res));
    for (size_t i = 0; i < count; i++) {
        json_t *doc = json_loads(v[i].json, 0, NULL);
        const char *d = json_string_value(json_object_get(doc, "digest"));
        const char *c = json_string_value(json_object_get(doc, "config"));

        if (d) {
            res[k].name = xstrdup(v[i].id);
            res[k].digest = xstrdup(d);
            res[k].config_digest = xstrdup(c ? c : "");
            res[k].size = json_integer_value(json_object_get(doc, "imageSize"));
            res[k].created = json_integer_value(json_object_get(doc, "created"));
            k++;
        } else {
            kiln_log_warn("image `%s`: record without a digest", v[i].id);
        }
        json_decref(doc);
    }
    kiln_cache_records_free(v, count);
    *out = res;
    *n = k;
    return 0;
}

void
kiln_engine_image_entries_free(kiln_engine_image_entry *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].name);
        free(v[i].digest);
        free(v[i].config_digest);
    }
    free(v);
}

/* ---- archives and layouts ------------------------------------------------------------------- */

/* A finalized kiln_export_image of a stored image (layer blobs read from the content store). */
static int
export_view(kiln_export_image *x, kiln_engine *e, const kiln_engine_image *img, kiln_error **err)
{
    const kiln_oci_manifest *m = img->manifest;
    int ret;

    kiln_export_image_init(x);
    ret = kiln_oci_manifest_parse(&x->manifest, img->manifest_json, img->manifest_len, NULL, err);
    if (ret < 0)
        return ret;
    x->config_json = xmemdup(img->config_json, img->config_len);
    x->config_len = img->config_len;
    kiln_strlcpy(x->config_digest, img->config_digest, sizeof(x->config_digest));
    x->manifest_json = xmemdup(img->manifest_json, img->manifest_len);
    x->manifest_len = img->manifest_len;
    kiln_strlcpy(x->manifest_digest, img->digest, sizeof(x->manifest_digest));
    x->layers = xcalloc(m->n_layers + 1, sizeof(*x->layers));
    for (size_t i = 0; i < m->n_layers; i++) {
        if (!kiln_digest_valid(m->layers[i].digest))
            return kiln_error_set(err, KILN_EUNSUPPORTED, "layer digest `%s`", m->layers[i].digest);
        x->layers[i].path = xasprintf("%s/blobs/sha256/%s", kiln_cache_root(e->cache),
                                      m->layers[i].digest + strlen("sha256:"));
        kiln_oci_descriptor_copy(&x->layers[i].desc, &m->layers[i]);
        x->n_layers = i + 1;
    }
    return 0;
}

int
kiln_engine_image_write_archive(kiln_engine *e, const kiln_engine_image *img,
                                kiln_engine_archive kind, const char *const *names, int fd,
                                kiln_error **err)
{
    kiln_export_image x;
    int ret = export_view(&x, e, img, err);

    if (ret == 0 && kind == KILN_ENGINE_ARCHIVE_DOCKER)
        ret = kiln_export_docker_tar(&x, names, img->created, fd, err);
    else if (ret == 0)
        ret = kiln_export_oci_tar(&x, names, img->created, fd, err);
    kiln_export_image_dispose(&x);
    if (ret < 0)
        return kiln_error_wrap(err, "write image %s", img->digest);
    return 0;
}

int
kiln_engine_image_write_layout(kiln_engine *e, const kiln_engine_image *img,
                               const char *const *names, const char *dir, kiln_error **err)
{
    kiln_export_image x;
    int ret = export_view(&x, e, img, err);

    if (ret == 0)
        ret = kiln_export_oci_dir(&x, names, dir, err);
    kiln_export_image_dispose(&x);
    if (ret < 0)
        return kiln_error_wrap(err, "write image %s to `%s`", img->digest, dir);
    return 0;
}

int
engine_image_unpack(char *id_out, kiln_engine *e, const kiln_engine_image *img, kiln_op_ctx *ctx,
                    kiln_error **err)
{
    kiln_oci_config cfg;
    int ret;

    kiln_oci_config_init(&cfg);
    ret = kiln_oci_config_parse(&cfg, img->config_json, img->config_len, err);
    if (ret == 0)
        ret = engine_unpack_layers(id_out, e, img->manifest, &cfg, engine_store_open_layer, e, ctx,
                                   err);
    kiln_oci_config_dispose(&cfg);
    if (ret < 0)
        return kiln_error_wrap(err, "unpack image %s", img->digest);
    return 0;
}
