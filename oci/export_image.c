/*
 * export_image.c: assembling a finished image for the exporters. The caller hands in the image
 * config (platform, exec config, the base image's history) and the layer blobs in stack order;
 * finalize writes rootfs.diff_ids (specs.md §1.6), checks that the non-empty history entries
 * match the layers as Docker and BuildKit demand, and serialises config and manifest canonically,
 * in OCI media types or in Docker schema 2 types for the docker exporter. Docker has no zstd
 * layer type, so an image with a zstd layer keeps OCI types throughout (BuildKit does the same).
 */
#include "oci/export.h"

#include "base/base.h"
#include "base/digest.h"

/* kiln_export_image_init: an empty image; see export.h. */
void
kiln_export_image_init(kiln_export_image *img)
{
    memset(img, 0, sizeof(*img));
    kiln_oci_config_init(&img->config);
}

static void
clear_output(kiln_export_image *img)
{
    free(img->config_json);
    img->config_json = NULL;
    free(img->manifest_json);
    img->manifest_json = NULL;
    kiln_oci_manifest_dispose(&img->manifest);
    img->config_digest[0] = img->manifest_digest[0] = 0;
}

/* kiln_export_image_dispose: free everything the image owns; it is re-initialised. */
void
kiln_export_image_dispose(kiln_export_image *img)
{
    for (size_t i = 0; i < img->n_layers; i++) {
        free(img->layers[i].path);
        free(img->layers[i].diff_id);
        kiln_oci_descriptor_dispose(&img->layers[i].desc);
    }
    free(img->layers);
    clear_output(img);
    kiln_oci_config_dispose(&img->config);
    kiln_export_image_init(img);
}

static void
append_history(kiln_oci_config *c, const kiln_oci_history *h)
{
    kiln_oci_history *n;

    c->history = xreallocarray(c->history, c->n_history + 1, sizeof(*c->history));
    n = &c->history[c->n_history++];
    n->created = xstrdup(h->created);
    n->author = xstrdup(h->author);
    n->created_by = xstrdup(h->created_by);
    n->comment = xstrdup(h->comment);
    n->empty_layer = false;
}

/* kiln_export_image_add_layer: see export.h. */
int
kiln_export_image_add_layer(kiln_export_image *img, const char *path,
                            const kiln_oci_descriptor *desc, const char *diff_id,
                            const kiln_oci_history *history, kiln_error **err)
{
    kiln_oci_compression comp;
    kiln_export_layer *l;
    int ret;

    if (!path || !desc || !desc->digest || !kiln_digest_valid(desc->digest))
        return kiln_error_set(err, KILN_EINVAL, "layer: missing path or bad digest");
    if (!diff_id || !kiln_digest_valid(diff_id))
        return kiln_error_set(err, KILN_EINVAL, "layer %s: bad diffID", desc->digest);
    if (desc->size < 0)
        return kiln_error_set(err, KILN_EINVAL, "layer %s: negative size", desc->digest);
    ret = kiln_oci_layer_compression(&comp, desc->media_type, err);
    if (ret < 0)
        return kiln_error_wrap(err, "layer %s", desc->digest);
    if (history && history->empty_layer)
        return kiln_error_set(err, KILN_EINVAL, "layer %s: history entry marked empty_layer",
                              desc->digest);
    img->layers = xreallocarray(img->layers, img->n_layers + 1, sizeof(*img->layers));
    l = &img->layers[img->n_layers++];
    l->path = xstrdup(path);
    l->diff_id = xstrdup(diff_id);
    kiln_oci_descriptor_copy(&l->desc, desc);
    if (history)
        append_history(&img->config, history);
    return 0;
}

/* The media type a layer gets in the manifest. */
static const char *
manifest_layer_type(kiln_oci_compression c, bool docker)
{
    if (c == KILN_OCI_COMP_GZIP)
        return docker ? KILN_DOCKER_MT_LAYER_GZIP : KILN_OCI_MT_LAYER_GZIP;
    if (c == KILN_OCI_COMP_ZSTD)
        return KILN_OCI_MT_LAYER_ZSTD;
    return docker ? KILN_DOCKER_MT_LAYER_TAR : KILN_OCI_MT_LAYER_TAR;
}

static int
check_config(const kiln_export_image *img, kiln_error **err)
{
    const kiln_oci_config *c = &img->config;
    size_t non_empty = 0;

    if (!c->platform.os || !c->platform.os[0] || !c->platform.architecture ||
        !c->platform.architecture[0])
        return kiln_error_set(err, KILN_EINVAL, "image config: os and architecture are required");
    for (size_t i = 0; i < c->n_history; i++)
        non_empty += c->history[i].empty_layer ? 0 : 1;
    if (c->n_history && non_empty != img->n_layers)
        return kiln_error_set(err, KILN_EINVAL,
                              "image config: %zu non-empty history entries for %zu layers",
                              non_empty, img->n_layers);
    return 0;
}

/* Build img->manifest from the layers and the serialised config. */
static int
build_manifest(kiln_export_image *img, bool docker, kiln_error **err)
{
    kiln_oci_manifest *m = &img->manifest;
    kiln_oci_compression comp;
    int ret;

    m->media_type = xstrdup(docker ? KILN_DOCKER_MT_MANIFEST : KILN_OCI_MT_MANIFEST);
    m->config.media_type = xstrdup(docker ? KILN_DOCKER_MT_CONFIG : KILN_OCI_MT_CONFIG);
    m->config.digest = xstrdup(img->config_digest);
    m->config.size = (int64_t)img->config_len;
    m->layers = xcalloc(img->n_layers + 1, sizeof(*m->layers));
    for (size_t i = 0; i < img->n_layers; i++) {
        ret = kiln_oci_layer_compression(&comp, img->layers[i].desc.media_type, err);
        if (ret < 0)
            return ret;
        kiln_oci_descriptor_copy(&m->layers[i], &img->layers[i].desc);
        m->n_layers = i + 1;
        free(m->layers[i].media_type);
        m->layers[i].media_type = xstrdup(manifest_layer_type(comp, docker));
        /* Platforms belong to index entries only. */
        if (m->layers[i].platform) {
            kiln_oci_platform_dispose(m->layers[i].platform);
            free(m->layers[i].platform);
            m->layers[i].platform = NULL;
        }
    }
    return 0;
}

static bool
has_zstd_layer(const kiln_export_image *img)
{
    for (size_t i = 0; i < img->n_layers; i++) {
        kiln_oci_compression comp;
        kiln_error *tmp = NULL;

        if (kiln_oci_layer_compression(&comp, img->layers[i].desc.media_type, &tmp) == 0 &&
            comp == KILN_OCI_COMP_ZSTD)
            return true;
        kiln_error_free(&tmp);
    }
    return false;
}

/* kiln_export_image_finalize: see export.h. */
int
kiln_export_image_finalize(kiln_export_image *img, kiln_export_media media, kiln_error **err)
{
    bool docker = media == KILN_EXPORT_MEDIA_DOCKER && !has_zstd_layer(img);
    kiln_sha256 d;
    int ret;

    clear_output(img);
    ret = check_config(img, err);
    if (ret < 0)
        return ret;
    kiln_strvec_dispose(&img->config.diff_ids);
    for (size_t i = 0; i < img->n_layers; i++)
        kiln_strvec_push(&img->config.diff_ids, img->layers[i].diff_id);
    img->config_json = kiln_oci_config_to_json(&img->config, &img->config_len);
    kiln_sha256_buf(&d, img->config_json, img->config_len);
    kiln_digest_format(img->config_digest, &d);
    ret = build_manifest(img, docker, err);
    if (ret < 0) {
        clear_output(img);
        return kiln_error_wrap(err, "assemble manifest");
    }
    img->manifest_json = kiln_oci_manifest_to_json(&img->manifest, &img->manifest_len);
    kiln_sha256_buf(&d, img->manifest_json, img->manifest_len);
    kiln_digest_format(img->manifest_digest, &d);
    return 0;
}
