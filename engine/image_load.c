/*
 * image_load.c: kiln_engine_image_load, images from a docker or OCI archive (specs.md §1.7, §2).
 *
 * The archive is read once, sequentially (a pipe is fine), with libarchive: every regular file
 * is streamed into the content store as a blob under the engine's lease, so nothing is unpacked
 * to a temp dir and every byte is hashed as it arrives. Then, as containerd's loader does:
 *   - with index.json (an OCI layout, also what `docker save` >= 25 and kiln's type=docker
 *     write), each entry is an image (an index entry resolves to the host platform's manifest),
 *     named by its io.containerd.image.name annotation (or a full
 * org.opencontainers.image.ref.name, or the RepoTags manifest.json gives its config); every
 * blobs/sha256/<hex> file must hash to <hex>;
 *   - else manifest.json (classic `docker save`): each entry's Config and Layers files become a
 *     Docker schema 2 manifest (layer media types from the files' magic bytes; an uncompressed
 *     layer must hash to its diffID), named by its RepoTags.
 * Symlinked and hardlinked entries (old `docker save` dedups layers that way) resolve to their
 * target's blob. Images without a name are stored but not named; their image ids are returned
 * so the caller can say what was loaded.
 */
#define KILN_LOG_DOMAIN "engine"

#include <archive.h>
#include <archive_entry.h>

#include "base/digest.h"
#include "base/json.h"
#include "base/map.h"
#include "base/path.h"
#include "base/vec.h"
#include "engine/engine_internal.h"
#include "oci/oci.h"

#include "base/base.h"

#define LOAD_MAX_ENTRIES 100000

typedef struct load_ctx {
    kiln_engine *e;
    kiln_map files; /* archive path -> digest string (owned) */
    kiln_map links; /* archive path -> link target path (owned) */
    kiln_vec names; /* loaded names (owned) */
} load_ctx;

/* "./a/b" and "/a/b" -> "a/b"; owned by the caller. */
static char *
clean_path(const char *p)
{
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    while (*p == '/')
        p++;
    return xstrdup(p);
}

static int
store_entry(load_ctx *l, struct archive *a, const char *path, kiln_error **err)
{
    kiln_cache_blob_writer *w = NULL;
    char digest[KILN_DIGEST_STRLEN + 1];
    char buf[1 << 16];
    la_ssize_t n;
    int ret = kiln_cache_blob_writer_new(&w, l->e->cache, NULL, err);

    if (ret < 0)
        return ret;
    kiln_cache_blob_writer_set_lease(w, l->e->lease);
    while (ret == 0 && (n = archive_read_data(a, buf, sizeof(buf))) != 0) {
        if (n < 0)
            ret = kiln_error_set(err, KILN_EPARSE, "read `%s`: %s", path, archive_error_string(a));
        else
            ret = kiln_cache_blob_writer_write(w, buf, (size_t)n, err);
    }
    if (ret == 0)
        ret = kiln_cache_blob_writer_commit(w, "", digest, err);
    kiln_cache_blob_writer_free(w);
    if (ret == 0)
        free(kiln_map_put(&l->files, path, xstrdup(digest)));
    return ret;
}

/* A link entry: remember its target as an archive path. */
static void
store_link(load_ctx *l, const char *path, const char *target, bool hard)
{
    cleanup_free char *dir = kiln_path_dir(path);
    char *full;

    if (hard || target[0] == '/')
        full = clean_path(target);
    else
        full = kiln_path_join(strcmp(dir, ".") == 0 ? "" : dir, target);
    free(kiln_map_put(&l->links, path, clean_path(full)));
    free(full);
}

static int
read_archive(load_ctx *l, int fd, kiln_error **err)
{
    struct archive *a = archive_read_new();
    struct archive_entry *ent;
    size_t count = 0;
    int rc, ret = 0;

    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);
    if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK) {
        ret = kiln_error_set(err, KILN_EPARSE, "open archive: %s", archive_error_string(a));
        archive_read_free(a);
        return ret;
    }
    while (ret == 0 && (rc = archive_read_next_header(a, &ent)) != ARCHIVE_EOF) {
        cleanup_free char *path = NULL;
        if (rc < ARCHIVE_WARN) {
            ret = kiln_error_set(err, KILN_EPARSE, "read archive: %s", archive_error_string(a));
            break;
        }
        if (++count > LOAD_MAX_ENTRIES) {
            ret = kiln_error_set(err, KILN_EINVAL, "archive has over %d entries", LOAD_MAX_ENTRIES);
            break;
        }
        path = clean_path(archive_entry_pathname(ent));
        if (archive_entry_hardlink(ent))
            store_link(l, path, archive_entry_hardlink(ent), true);
        else if (archive_entry_filetype(ent) == AE_IFLNK)
            store_link(l, path, archive_entry_symlink(ent), false);
        else if (archive_entry_filetype(ent) == AE_IFREG)
            ret = store_entry(l, a, path, err);
    }
    archive_read_free(a);
    return ret;
}

/* The digest of archive file `path` (links followed a few levels), or NULL. */
static const char *
file_digest(const load_ctx *l, const char *path)
{
    const char *p = path;

    for (int depth = 0; p && depth < 8; depth++) {
        const char *d = kiln_map_get(&l->files, p);
        if (d)
            return d;
        p = kiln_map_get(&l->links, p);
    }
    return NULL;
}

static int
read_file(char **out, size_t *len, load_ctx *l, const char *path, size_t max, kiln_error **err)
{
    const char *d = file_digest(l, path);

    if (!d)
        return kiln_error_set(err, KILN_ENOTFOUND, "archive has no file `%s`", path);
    return engine_blob_read(out, len, l->e, d, max, err);
}

static void
add_name(load_ctx *l, kiln_engine_image *img, const char *name)
{
    kiln_error *tmp = NULL;

    if (engine_image_tag_ref(l->e, img, name, &tmp) < 0) {
        kiln_log_warn("loaded image %s: cannot name it `%s`: %s", img->digest, name, tmp->msg);
        kiln_error_free(&tmp);
        return;
    }
    kiln_strvec_push(&l->names, name);
}

/* ---- docker manifest.json ------------------------------------------------------------------- */

static const char *
layer_media_type(kiln_oci_compression c)
{
    return c == KILN_OCI_COMP_GZIP   ? KILN_DOCKER_MT_LAYER_GZIP
           : c == KILN_OCI_COMP_ZSTD ? KILN_OCI_MT_LAYER_ZSTD
                                     : KILN_DOCKER_MT_LAYER_TAR;
}

/* Build and store the schema 2 manifest of one manifest.json entry; digest_out its digest. */
static int
docker_manifest(char *digest_out, load_ctx *l, const char *cfg_path, const json_t *layers,
                kiln_error **err)
{
    kiln_oci_manifest m = {0};
    kiln_oci_config cfg;
    cleanup_free char *cdata = NULL;
    cleanup_free char *mjson = NULL;
    size_t clen = 0, mlen = 0, n = json_array_size(layers);
    bool zstd = false;
    int ret;

    kiln_oci_config_init(&cfg);
    ret = read_file(&cdata, &clen, l, cfg_path, KILN_OCI_CONFIG_MAX, err);
    if (ret == 0)
        ret = kiln_oci_config_parse(&cfg, cdata, clen, err);
    if (ret == 0 && cfg.diff_ids.len != n)
        ret = kiln_error_set(err, KILN_EPARSE, "%zu layers for %zu diff ids", n, cfg.diff_ids.len);
    m.config.media_type = xstrdup(KILN_DOCKER_MT_CONFIG);
    m.config.digest = xstrdup(file_digest(l, cfg_path));
    m.config.size = (int64_t)clen;
    m.layers = xcalloc(n + 1, sizeof(*m.layers));
    for (size_t i = 0; ret == 0 && i < n; i++) {
        const char *p = json_string_value(json_array_get(layers, i));
        const char *d = p ? file_digest(l, p) : NULL;
        kiln_cache_blob_info bi = {0};
        kiln_oci_compression c = KILN_OCI_COMP_NONE;

        if (!d)
            ret = kiln_error_set(err, KILN_ENOTFOUND, "layer `%s` is not in the archive",
                                 p ? p : "(not a string)");
        if (ret == 0)
            ret = engine_blob_compression(&c, l->e, d, err);
        if (ret == 0)
            ret = kiln_cache_blob_info_get(&bi, l->e->cache, d, err);
        if (ret == 0 && c == KILN_OCI_COMP_NONE && strcmp(d, kiln_vec_get(&cfg.diff_ids, i)) != 0)
            ret = kiln_error_set(err, KILN_EDIGEST, "layer `%s` has digest %s, diff id is %s", p, d,
                                 (char *)kiln_vec_get(&cfg.diff_ids, i));
        if (ret == 0) {
            m.layers[i].media_type = xstrdup(layer_media_type(c));
            m.layers[i].digest = xstrdup(d);
            m.layers[i].size = (int64_t)bi.size;
            m.n_layers = i + 1;
            zstd = zstd || c == KILN_OCI_COMP_ZSTD;
        }
        kiln_cache_blob_info_dispose(&bi);
    }
    if (ret == 0) {
        /* Docker has no zstd layer type: such images keep OCI types throughout */
        m.media_type = xstrdup(zstd ? KILN_OCI_MT_MANIFEST : KILN_DOCKER_MT_MANIFEST);
        if (zstd) {
            free(m.config.media_type);
            m.config.media_type = xstrdup(KILN_OCI_MT_CONFIG);
        }
        mjson = kiln_oci_manifest_to_json(&m, &mlen);
        ret = engine_blob_put(digest_out, l->e, mjson, mlen, m.media_type, err);
    }
    kiln_oci_manifest_dispose(&m);
    kiln_oci_config_dispose(&cfg);
    if (ret < 0)
        return kiln_error_wrap(err, "image with config `%s`", cfg_path);
    return 0;
}

static int
load_docker_entry(load_ctx *l, const json_t *ent, kiln_error **err)
{
    const char *cfg = json_string_value(json_object_get(ent, "Config"));
    const json_t *layers = json_object_get(ent, "Layers");
    const json_t *tags = json_object_get(ent, "RepoTags");
    kiln_engine_image *img = NULL;
    char digest[KILN_DIGEST_STRLEN + 1];
    int ret;

    if (!cfg || !json_is_array(layers))
        return kiln_error_set(err, KILN_EPARSE, "manifest.json: entry without Config or Layers");
    ret = docker_manifest(digest, l, cfg, layers, err);
    if (ret == 0)
        ret = engine_image_from_store(&img, l->e, digest, NULL, err);
    if (ret < 0)
        return ret;
    for (size_t i = 0; json_is_array(tags) && i < json_array_size(tags); i++) {
        const char *t = json_string_value(json_array_get(tags, i));
        if (t)
            add_name(l, img, t);
    }
    if (!json_is_array(tags) || json_array_size(tags) == 0)
        kiln_strvec_push(&l->names, img->config_digest);
    kiln_engine_image_free(img);
    return 0;
}

static int
load_docker(load_ctx *l, kiln_error **err)
{
    cleanup_free char *data = NULL;
    cleanup_json json_t *root = NULL;
    size_t len = 0;
    int ret = read_file(&data, &len, l, "manifest.json", KILN_OCI_MANIFEST_MAX, err);

    if (ret == 0)
        ret = kiln_json_parse(&root, data, len, KILN_OCI_MANIFEST_MAX, "manifest.json", err);
    if (ret == 0 && !json_is_array(root))
        ret = kiln_error_set(err, KILN_EPARSE, "manifest.json is not a JSON array");
    for (size_t i = 0; ret == 0 && i < json_array_size(root); i++)
        ret = load_docker_entry(l, json_array_get(root, i), err);
    return ret;
}

/* ---- OCI layout ----------------------------------------------------------------------------- */

/* Every blobs/sha256/<hex> file must hash to <hex>. */
static int
check_blobs(const load_ctx *l, kiln_error **err)
{
    kiln_map_foreach(&l->files, ent) {
        cleanup_free char *want = NULL;
        if (!kiln_str_has_prefix(ent->key, "blobs/"))
            continue;
        if (!kiln_str_has_prefix(ent->key, "blobs/sha256/"))
            return kiln_error_set(err, KILN_EUNSUPPORTED, "blob `%s`: digest algorithm", ent->key);
        want = xasprintf("sha256:%s", ent->key + strlen("blobs/sha256/"));
        if (strcmp(want, ent->value) != 0)
            return kiln_error_set(err, KILN_EDIGEST, "blob `%s` has digest %s", ent->key,
                                  (char *)ent->value);
    }
    return 0;
}

/* From an index.json descriptor down to an image manifest digest (host platform). */
static int
resolve_manifest(char *digest_out, load_ctx *l, const kiln_oci_descriptor *top, kiln_error **err)
{
    char cur[KILN_DIGEST_STRLEN + 1];
    int ret;

    kiln_strlcpy(cur, top->digest, sizeof(cur));
    for (int depth = 0; depth < 4; depth++) {
        cleanup_free char *data = NULL;
        kiln_oci_index ix = {0};
        const kiln_oci_descriptor *sel = NULL;
        size_t len = 0;

        if (!kiln_cache_blob_exists(l->e->cache, cur))
            return kiln_error_set(err, KILN_ENOTFOUND, "manifest %s is not in the archive", cur);
        ret = engine_blob_read(&data, &len, l->e, cur, KILN_OCI_MANIFEST_MAX, err);
        if (ret < 0)
            return ret;
        if (kiln_oci_document_kind(data, len, NULL) != KILN_OCI_KIND_INDEX) {
            kiln_strlcpy(digest_out, cur, KILN_DIGEST_STRLEN + 1);
            return 0;
        }
        ret = kiln_oci_index_parse(&ix, data, len, NULL, err);
        if (ret == 0)
            ret = kiln_oci_index_select(&sel, &ix, NULL, err);
        if (ret == 0)
            kiln_strlcpy(cur, sel->digest, sizeof(cur));
        kiln_oci_index_dispose(&ix);
        if (ret < 0)
            return kiln_error_wrap(err, "index %s", cur);
    }
    return kiln_error_set(err, KILN_EINVAL, "image indexes nested too deeply");
}

/* The RepoTags manifest.json gives the image with config `config`, or NULL (borrowed). */
static const json_t *
docker_tags_for(const json_t *docker, const char *config)
{
    cleanup_free char *path = xasprintf("blobs/sha256/%s", config + strlen("sha256:"));

    for (size_t i = 0; json_is_array(docker) && i < json_array_size(docker); i++) {
        const json_t *e = json_array_get(docker, i);
        const char *c = json_string_value(json_object_get(e, "Config"));
        cleanup_free char *cc = c ? clean_path(c) : NULL;
        if (cc && strcmp(cc, path) == 0)
            return json_object_get(e, "RepoTags");
    }
    return NULL;
}

static int
load_oci_entry(load_ctx *l, const kiln_oci_descriptor *d, const json_t *docker, kiln_error **err)
{
    json_t *a = d->annotations;
    const char *cname = json_string_value(json_object_get(a, "io.containerd.image.name"));
    const char *rname = json_string_value(json_object_get(a, "org.opencontainers.image.ref.name"));
    const json_t *tags;
    kiln_engine_image *img = NULL;
    char digest[KILN_DIGEST_STRLEN + 1];
    size_t named = l->names.len;
    int ret;

    ret = resolve_manifest(digest, l, d, err);
    if (ret == 0)
        ret = engine_image_from_store(&img, l->e, digest, NULL, err);
    for (size_t i = 0; ret == 0 && i < img->manifest->n_layers; i++) {
        if (!kiln_cache_blob_exists(l->e->cache, img->manifest->layers[i].digest))
            ret = kiln_error_set(err, KILN_ENOTFOUND, "layer %s is not in the archive",
                                 img->manifest->layers[i].digest);
    }
    if (ret < 0) {
        kiln_engine_image_free(img);
        return kiln_error_wrap(err, "image %s", d->digest);
    }
    if (cname)
        add_name(l, img, cname);
    else if (rname && (strchr(rname, '/') || strchr(rname, ':')))
        add_name(l, img, rname);
    tags = cname ? NULL : docker_tags_for(docker, img->config_digest);
    for (size_t i = 0; json_is_array(tags) && i < json_array_size(tags); i++) {
        const char *t = json_string_value(json_array_get(tags, i));
        if (t)
            add_name(l, img, t);
    }
    if (l->names.len == named)
        kiln_strvec_push(&l->names, img->config_digest);
    kiln_engine_image_free(img);
    return 0;
}

static int
load_oci(load_ctx *l, kiln_error **err)
{
    cleanup_free char *data = NULL;
    cleanup_free char *mdata = NULL;
    cleanup_json json_t *docker = NULL;
    kiln_oci_index ix = {0};
    size_t len = 0;
    int ret = check_blobs(l, err);

    if (ret < 0)
        return ret;
    if (file_digest(l, "manifest.json")) {
        ret = read_file(&mdata, &len, l, "manifest.json", KILN_OCI_MANIFEST_MAX, err);
        if (ret < 0)
            return ret;
        docker = json_loadb(mdata, len, 0, NULL);
    }
    ret = read_file(&data, &len, l, "index.json", KILN_OCI_MANIFEST_MAX, err);
    if (ret == 0)
        ret = kiln_oci_index_parse(&ix, data, len, NULL, err);
    if (ret < 0)
        return kiln_error_wrap(err, "index.json");
    for (size_t i = 0; ret == 0 && i < ix.n_manifests; i++)
        ret = load_oci_entry(l, &ix.manifests[i], docker, err);
    kiln_oci_index_dispose(&ix);
    return ret;
}

int
kiln_engine_image_load(char ***names_out, kiln_engine *e, int fd, kiln_error **err)
{
    load_ctx l = {.e = e, .files = KILN_MAP_INIT, .links = KILN_MAP_INIT, .names = KILN_VEC_INIT};
    int ret = read_archive(&l, fd, err);

    if (ret == 0 && file_digest(&l, "index.json"))
        ret = load_oci(&l, err);
    else if (ret == 0 && file_digest(&l, "manifest.json"))
        ret = load_docker(&l, err);
    else if (ret == 0)
        ret = kiln_error_set(err, KILN_EINVAL,
                             "not an image archive: no index.json or manifest.json");
    kiln_map_dispose(&l.files, free);
    kiln_map_dispose(&l.links, free);
    if (ret < 0) {
        kiln_strvec_dispose(&l.names);
        return kiln_error_wrap(err, "load images");
    }
    if (names_out) {
        kiln_vec_push(&l.names, NULL);
        *names_out = (char **)l.names.items;
    } else {
        kiln_strvec_dispose(&l.names);
    }
    return 0;
}
