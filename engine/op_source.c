/*
 * op_source.c: SourceOps. `oci-layout://<dir>@sha256:...` and `oci-layout://<dir>[:<tag>]` read
 * index.json, the manifest (through an image index for the host platform) and the config of a
 * local OCI image layout, then apply each layer (source/layer.h) onto a chain of snapshots, one
 * per layer. Each layer snapshot is recorded under its chain id ("kiln.layer.v1:<chainid>"), so
 * any image sharing a layer prefix reuses the snapshots. Every blob is verified against its
 * digest, and each layer's uncompressed digest against the config's diff_ids. Each layer blob is
 * imported into the content store and recorded on its snapshot (kiln_cache_snapshot_set_blob,
 * with "kiln.diffid:<digest>" and "kiln.layer.source" labels), so an image exported from a build
 * on top keeps the base layers' original blobs and digests (image_export.c).
 *
 * `local://<name>` copies the host directory the solve request bound to <name>, filtered by the
 * attrs local.includepattern / local.excludepatterns (JSON arrays, .dockerignore semantics), into
 * a new snapshot, owned by 0:0 as BuildKit's file sync resets the client's owners. File content
 * hashes are kept in the store's checksum table keyed by stat data, so rescanning an unchanged
 * context reads no file content. Its cache map
 * folds in the checksum of the selected content, so an unchanged context is a cache hit and any
 * change to a selected file is a miss.
 */
#define KILN_LOG_DOMAIN "engine"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "base/digest.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/map.h"
#include "base/path.h"
#include "engine/engine_internal.h"
#include "oci/oci.h"
#include "source/context.h"
#include "source/ignore.h"
#include "source/layer.h"

#include "base/base.h"

#define OCI_REF_NAME "org.opencontainers.image.ref.name"

/* ---- oci-layout ----------------------------------------------------------------------------- */

typedef struct layout_ref {
    char *dir;
    char *tag;    /* or NULL */
    char *digest; /* or NULL */
} layout_ref;

static void
layout_ref_dispose(layout_ref *r)
{
    free(r->dir);
    free(r->tag);
    free(r->digest);
}

static int
layout_ref_parse(layout_ref *out, const char *id, kiln_error **err)
{
    const char *rest = id + strlen("oci-layout://");
    const char *at = strrchr(rest, '@');
    const char *slash = strrchr(rest, '/');
    const char *colon = strrchr(rest, ':');

    memset(out, 0, sizeof(*out));
    if (at) {
        out->dir = xstrndup(rest, (size_t)(at - rest));
        out->digest = xstrdup(at + 1);
        if (!kiln_digest_valid(out->digest))
            return kiln_error_set(err, KILN_EINVAL, "bad digest in `%s`", id);
    } else if (colon && (!slash || colon > slash)) {
        out->dir = xstrndup(rest, (size_t)(colon - rest));
        out->tag = xstrdup(colon + 1);
    } else {
        out->dir = xstrdup(rest);
        out->tag = xstrdup("latest");
    }
    if (!kiln_path_is_abs(out->dir))
        return kiln_error_set(err, KILN_EINVAL, "oci-layout path in `%s` must be absolute", id);
    return 0;
}

/* Read blob `digest` of the layout at `dir` (at most max bytes) and verify it. */
static int
layout_blob(char **out, size_t *len_out, const char *dir, const char *digest, size_t max,
            kiln_error **err)
{
    cleanup_free char *path = NULL;
    cleanup_free char *data = NULL;
    char got[KILN_DIGEST_STRLEN + 1];
    kiln_sha256 d;
    size_t len = 0;
    int ret;

    if (!kiln_digest_valid(digest))
        return kiln_error_set(err, KILN_EUNSUPPORTED, "blob digest `%s`", digest);
    path = xasprintf("%s/blobs/sha256/%s", dir, digest + strlen("sha256:"));
    ret = kiln_fs_read_file(&data, &len, path, max, err);
    if (ret < 0)
        return kiln_error_wrap(err, "blob %s", digest);
    kiln_sha256_buf(&d, data, len);
    kiln_digest_format(got, &d);
    if (strcmp(got, digest) != 0)
        return kiln_error_set(err, KILN_EDIGEST, "blob %s has digest %s", digest, got);
    *out = steal_pointer(&data);
    *len_out = len;
    return 0;
}

static const kiln_oci_descriptor *
index_find(const kiln_oci_index *ix, const layout_ref *ref)
{
    for (size_t i = 0; i < ix->n_manifests; i++) {
        const kiln_oci_descriptor *d = &ix->manifests[i];
        json_t *name = d->annotations ? json_object_get(d->annotations, OCI_REF_NAME) : NULL;
        if (ref->digest && strcmp(d->digest, ref->digest) == 0)
            return d;
        if (ref->tag && json_is_string(name) && strcmp(json_string_value(name), ref->tag) == 0)
            return d;
    }
    return NULL;
}

/* Walk from a descriptor through image indexes (host platform) down to a manifest. */
static int
resolve_descriptor(kiln_oci_manifest *out, char *digest_out, const char *dir,
                   const kiln_oci_descriptor *desc, kiln_error **err)
{
    char cur[KILN_DIGEST_STRLEN + 1];
    kiln_oci_kind kind = kiln_oci_media_kind(desc->media_type);
    int ret;

    kiln_strlcpy(cur, desc->digest, sizeof(cur));
    for (int depth = 0; depth < 4; depth++) {
        cleanup_free char *data = NULL;
        kiln_oci_index ix = {0};
        const kiln_oci_descriptor *sel = NULL;
        size_t len = 0;

        ret = layout_blob(&data, &len, dir, cur, KILN_OCI_MANIFEST_MAX, err);
        if (ret < 0)
            return ret;
        if (kind == KILN_OCI_KIND_UNKNOWN)
            kind = kiln_oci_document_kind(data, len, NULL);
        if (kind != KILN_OCI_KIND_INDEX) {
            ret = kiln_oci_manifest_parse(out, data, len, NULL, err);
            if (ret < 0)
                return kiln_error_wrap(err, "manifest %s", cur);
            kiln_strlcpy(digest_out, cur, KILN_DIGEST_STRLEN + 1);
            return 0;
        }
        ret = kiln_oci_index_parse(&ix, data, len, NULL, err);
        if (ret == 0)
            ret = kiln_oci_index_select(&sel, &ix, NULL, err);
        if (ret == 0) {
            kiln_strlcpy(cur, sel->digest, sizeof(cur));
            kind = kiln_oci_media_kind(sel->media_type);
        }
        kiln_oci_index_dispose(&ix);
        if (ret < 0)
            return kiln_error_wrap(err, "index %s", cur);
    }
    return kiln_error_set(err, KILN_EINVAL, "image indexes nested too deeply");
}

/* Resolve the layout reference to its manifest; digest_out receives the manifest digest. */
static int
layout_resolve(kiln_oci_manifest *out, char *digest_out, const layout_ref *ref, kiln_error **err)
{
    cleanup_free char *path = kiln_path_join(ref->dir, "index.json");
    cleanup_free char *data = NULL;
    kiln_oci_index ix = {0};
    const kiln_oci_descriptor *d;
    size_t len = 0;
    int ret;

    ret = kiln_fs_read_file(&data, &len, path, KILN_OCI_MANIFEST_MAX, err);
    if (ret == 0)
        ret = kiln_oci_index_parse(&ix, data, len, NULL, err);
    if (ret < 0)
        return kiln_error_wrap(err, "oci layout `%s`", ref->dir);
    d = index_find(&ix, ref);
    if (!d && ref->digest) {
        /* a digest pinned below the top index (one platform's manifest of a multi-platform
         * image, as the frontend pins for FROM --platform): read it from the blobs, as
         * BuildKit's content store does */
        cleanup_free char *blob = kiln_path_join(ref->dir, "blobs/sha256");
        cleanup_free char *file = kiln_path_join(blob, ref->digest + strlen("sha256:"));
        kiln_oci_descriptor pinned = {.digest = ref->digest};
        if (kiln_str_has_prefix(ref->digest, "sha256:") && kiln_fs_exists(file))
            ret = resolve_descriptor(out, digest_out, ref->dir, &pinned, err);
        else
            ret = kiln_error_set(err, KILN_ENOTFOUND, "oci layout `%s` has no image %s", ref->dir,
                                 ref->digest);
    } else if (!d) {
        ret = kiln_error_set(err, KILN_ENOTFOUND, "oci layout `%s` has no image %s", ref->dir,
                             ref->digest ? ref->digest : ref->tag);
    } else {
        ret = resolve_descriptor(out, digest_out, ref->dir, d, err);
    }
    kiln_oci_index_dispose(&ix);
    return ret;
}

/* Record the layer's original blob (when the content store has it) and its diffID on layer
 * snapshot `id`, so an image exported from a build on top reuses the blob as it is and keeps its
 * digest. Failures only cost a recompression later: they are logged. */
static void
record_layer_blob(kiln_engine *e, const char *id, const char *digest, const char *diff_id)
{
    cleanup_free char *key = xasprintf(ENGINE_LABEL_DIFFID "%s", digest);
    kiln_cache_snapshot_info info = {0};
    kiln_error *tmp = NULL;
    int ret;

    if (!kiln_cache_blob_exists(e->cache, digest))
        return;
    ret = kiln_cache_snapshot_info_get(&info, e->cache, id, &tmp);
    if (ret == 0 && info.blob) { /* recorded already */
        kiln_cache_snapshot_info_dispose(&info);
        return;
    }
    kiln_cache_snapshot_info_dispose(&info);
    if (ret == 0)
        ret = kiln_cache_snapshot_set_label(e->cache, id, key, diff_id, &tmp);
    if (ret == 0)
        ret = kiln_cache_snapshot_set_label(e->cache, id, ENGINE_LABEL_LAYER_SOURCE, "image", &tmp);
    if (ret == 0)
        ret = kiln_cache_snapshot_set_blob(e->cache, id, digest, &tmp);
    if (ret < 0)
        kiln_log_warn("record blob %s of layer snapshot %s: %s", digest, id, tmp->msg);
    kiln_error_free(&tmp);
}

/* Apply layer `desc` (read from fd) onto a new snapshot above `parent`; checks its blob
 * digest and diff_id. */
static int
apply_layer(char *id_out, kiln_engine *e, int fd, const kiln_oci_descriptor *desc,
            const char *diff_id, const char *parent, kiln_error **err)
{
    kiln_layer_opts lo = {.overlay_whiteouts = kiln_cache_uses_overlay(e->cache)};
    kiln_layer_stats st;
    kiln_cache_mounts m = {0};
    char blob[KILN_DIGEST_STRLEN + 1], did[KILN_DIGEST_STRLEN + 1];
    engine_rw w = {0};
    int ret;

    ret = engine_rw_prepare(&w, &m, e, parent, err);
    if (ret == 0)
        ret = kiln_layer_apply_fd(fd, m.upper, &lo, &st, err);
    kiln_cache_mounts_dispose(&m);
    if (ret == 0) {
        kiln_digest_format(blob, &st.blob_digest);
        kiln_digest_format(did, &st.diff_id);
        if (strcmp(blob, desc->digest) != 0)
            ret = kiln_error_set(err, KILN_EDIGEST, "layer %s has digest %s", desc->digest, blob);
        else if (strcmp(did, diff_id) != 0)
            ret = kiln_error_set(err, KILN_EDIGEST, "layer %s has diff id %s, config says %s",
                                 desc->digest, did, diff_id);
    }
    if (ret == 0) {
        engine_hold(e, w.id); /* before commit: see engine_rw_commit */
        ret = kiln_cache_snapshot_commit(e->cache, w.id, err);
    }
    if (ret < 0) {
        engine_rw_abort(&w, e);
        return kiln_error_wrap(err, "apply layer %s", desc->digest);
    }
    record_layer_blob(e, w.id, desc->digest, diff_id);
    kiln_strlcpy(id_out, w.id, 33);
    return 0;
}

/* The snapshot of layer chain `chain`, if one was recorded and still exists. */
static bool
layer_lookup(char *id_out, kiln_engine *e, const char *key)
{
    kiln_cache_result res = {0};
    kiln_error *tmp = NULL;
    bool ok = kiln_cache_key_get(&res, e->cache, key, &tmp) == 0;

    if (ok)
        kiln_strlcpy(id_out, res.snapshot_id, 33);
    kiln_cache_result_dispose(&res);
    kiln_error_free(&tmp);
    return ok;
}

int
engine_unpack_layers(char *id_out, kiln_engine *e, const kiln_oci_manifest *m,
                     const kiln_oci_config *cfg, engine_layer_open_fn open_layer, void *payload,
                     kiln_op_ctx *ctx, kiln_error **err)
{
    char parent[33] = "", chain[KILN_DIGEST_STRLEN + 1];
    int ret;

    if (cfg->diff_ids.len != m->n_layers)
        return kiln_error_set(err, KILN_EPARSE, "manifest has %zu layers, config %zu diff ids",
                              m->n_layers, cfg->diff_ids.len);
    for (size_t i = 0; i < m->n_layers; i++) {
        cleanup_free char *key = NULL;
        char id[33];
        kiln_oci_chain_id(chain, &cfg->diff_ids, i + 1);
        key = xasprintf("kiln.layer.v1:%s", chain);
        if (!layer_lookup(id, e, key)) {
            cleanup_free char *msg = xasprintf("applying %s", m->layers[i].digest);
            cleanup_close int fd = -1;
            if (ctx)
                kiln_op_ctx_status(ctx, msg, (int64_t)i, (int64_t)m->n_layers);
            ret = open_layer(&fd, &m->layers[i], payload, err);
            if (ret == 0)
                ret = apply_layer(id, e, fd, &m->layers[i], kiln_vec_get(&cfg->diff_ids, i),
                                  i ? parent : NULL, err);
            if (ret == 0)
                ret = kiln_cache_key_put(e->cache, key, id, err);
            if (ret < 0)
                return ret;
        } else {
            record_layer_blob(e, id, m->layers[i].digest, kiln_vec_get(&cfg->diff_ids, i));
        }
        kiln_strlcpy(parent, id, sizeof(parent));
    }
    kiln_strlcpy(id_out, parent, 33);
    return 0;
}

typedef struct layout_src {
    kiln_engine *e;
    const char *dir;
} layout_src;

/* Copy layout blob `path` into the content store (verified against d's digest by the store),
 * under the engine's lease. */
static int
layout_import_blob(kiln_engine *e, const char *path, const kiln_oci_descriptor *d, kiln_error **err)
{
    cleanup_close int in = open(path, O_RDONLY | O_CLOEXEC);
    kiln_cache_blob_writer *w = NULL;
    char buf[1 << 16];
    ssize_t n;
    int ret;

    if (in < 0)
        return kiln_error_errno(err, errno, "open layer `%s`", path);
    ret = kiln_cache_blob_writer_new(&w, e->cache, d->digest, err);
    if (ret < 0)
        return ret;
    kiln_cache_blob_writer_set_lease(w, e->lease);
    while (ret == 0 && (n = read(in, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            ret = kiln_error_errno(err, errno, "read layer `%s`", path);
        else
            ret = kiln_cache_blob_writer_write(w, buf, (size_t)n, err);
    }
    if (ret == 0)
        ret = kiln_cache_blob_writer_commit(w, d->media_type, NULL, err);
    kiln_cache_blob_writer_free(w);
    return ret;
}

/* engine_layer_open_fn: import the layout's layer blob into the content store (so images built
 * on it keep the original blob), then open it there. */
static int
layout_open_layer(int *fd, const kiln_oci_descriptor *d, void *payload, kiln_error **err)
{
    const layout_src *src = payload;
    cleanup_free char *path = NULL;
    int ret = 0;

    if (!kiln_digest_valid(d->digest))
        return kiln_error_set(err, KILN_EUNSUPPORTED, "layer digest `%s`", d->digest);
    path = xasprintf("%s/blobs/sha256/%s", src->dir, d->digest + strlen("sha256:"));
    if (!kiln_cache_blob_exists(src->e->cache, d->digest))
        ret = layout_import_blob(src->e, path, d, err);
    if (ret == 0)
        ret = kiln_cache_blob_open(fd, src->e->cache, d->digest, err);
    if (ret < 0)
        return kiln_error_wrap(err, "layer %s of `%s`", d->digest, src->dir);
    return 0;
}

int
engine_layout_config(char **config, char *digest_out, const char *identifier, kiln_error **err)
{
    layout_ref ref = {0};
    kiln_oci_manifest m = {0};
    size_t len = 0;
    int ret;

    ret = layout_ref_parse(&ref, identifier, err);
    if (ret == 0)
        ret = layout_resolve(&m, digest_out, &ref, err);
    if (ret == 0)
        ret = layout_blob(config, &len, ref.dir, m.config.digest, KILN_OCI_CONFIG_MAX, err);
    kiln_oci_manifest_dispose(&m);
    layout_ref_dispose(&ref);
    return ret;
}

static int
oci_layout_exec(kiln_solver_result **out, const engine_op *eop, kiln_op_ctx *ctx, kiln_error **err)
{
    kiln_engine *e = eop->engine;
    layout_ref ref = {0};
    kiln_oci_manifest m = {0};
    kiln_oci_config cfg;
    cleanup_free char *cdata = NULL;
    char mdigest[KILN_DIGEST_STRLEN + 1], id[33] = "";
    size_t clen = 0;
    int ret;

    kiln_oci_config_init(&cfg);
    ret = layout_ref_parse(&ref, eop->op->source->identifier, err);
    if (ret == 0)
        ret = layout_resolve(&m, mdigest, &ref, err);
    if (ret == 0)
        ret = layout_blob(&cdata, &clen, ref.dir, m.config.digest, KILN_OCI_CONFIG_MAX, err);
    if (ret == 0)
        ret = kiln_oci_config_parse(&cfg, cdata, clen, err);
    if (ret == 0) {
        layout_src src = {e, ref.dir};
        ret = engine_unpack_layers(id, e, &m, &cfg, layout_open_layer, &src, ctx, err);
    }
    if (ret == 0)
        ret = engine_image_result(out, e, id, err);
    kiln_oci_config_dispose(&cfg);
    kiln_oci_manifest_dispose(&m);
    layout_ref_dispose(&ref);
    return ret;
}

int
engine_image_result(kiln_solver_result **out, kiln_engine *e, const char *id, kiln_error **err)
{
    engine_rw w = {0};
    int ret;

    if (*id) {
        *out = engine_result_new(id);
        return 0;
    }
    /* an image without layers is the empty filesystem */
    ret = engine_rw_open(&w, e, NULL, err);
    if (ret == 0)
        ret = engine_rw_commit(out, &w, e, err);
    engine_rw_abort(&w, e);
    return ret;
}

/* ---- local ---------------------------------------------------------------------------------- */

static int
pattern_attr(kiln_ignore **out, const Pb__SourceOp *src, const char *key, kiln_error **err)
{
    json_t *arr = NULL;
    const char **pats = NULL;
    size_t n;
    int ret = 0;

    for (size_t i = 0; i < src->n_attrs; i++) {
        if (strcmp(src->attrs[i]->key, key) != 0)
            continue;
        ret = kiln_json_parse(&arr, src->attrs[i]->value, strlen(src->attrs[i]->value), 0, key,
                              err);
        if (ret < 0)
            return ret;
    }
    if (!arr)
        return 0;
    if (!json_is_array(arr)) {
        json_decref(arr);
        return kiln_error_set(err, KILN_EPARSE, "attr %s is not a JSON array", key);
    }
    n = json_array_size(arr);
    pats = xcalloc(n + 1, sizeof(*pats));
    for (size_t i = 0; i < n; i++) {
        pats[i] = json_string_value(json_array_get(arr, i));
        if (!pats[i])
            ret = kiln_error_set(err, KILN_EPARSE, "attr %s: element %zu is not a string", key, i);
    }
    if (ret == 0 && n > 0)
        ret = kiln_ignore_new(out, pats, n, err);
    free(pats);
    json_decref(arr);
    return ret;
}

/* The context stat cache lives in the state store's checksum table: "kiln.ctx.v1:" + hex of the
 * walker's stat key -> the 16 bytes of the content hash. A walk reads it through one batch (one
 * read transaction for all its lookups) and writes the hashes it computed in one commit at the
 * end, rather than a transaction per file and a durable commit per new hash. */
#define STAT_KEY_PREFIX "kiln.ctx.v1:"

typedef struct stat_cache {
    kiln_cache_checksum_batch *batch;
    char *key; /* the stored key of the last lookup: reused, grown as needed */
    size_t cap;
} stat_cache;

static const char *
stat_key(stat_cache *sc, const void *key, size_t keylen)
{
    size_t need = strlen(STAT_KEY_PREFIX) + 2 * keylen + 1;

    if (need > sc->cap) {
        sc->cap = need < 256 ? 256 : 2 * need;
        sc->key = xrealloc(sc->key, sc->cap);
        memcpy(sc->key, STAT_KEY_PREFIX, strlen(STAT_KEY_PREFIX));
    }
    kiln_hex_encode(sc->key + strlen(STAT_KEY_PREFIX), key, keylen);
    return sc->key;
}

static bool
stat_cache_get(void *payload, const void *key, size_t keylen, kiln_xxh128 *out)
{
    stat_cache *sc = payload;
    const char *k = stat_key(sc, key, keylen);
    unsigned char v[sizeof(uint64_t) * 2];
    kiln_error *tmp = NULL;
    size_t len = sizeof(v);
    bool found = false;

    if (kiln_cache_checksum_batch_get(&found, v, &len, sc->batch, k, &tmp) < 0) {
        kiln_log_debug("context stat cache: %s", tmp->msg);
        kiln_error_free(&tmp);
        return false;
    }
    if (!found || len != sizeof(v))
        return false;
    memcpy(&out->lo, v, sizeof(uint64_t));
    memcpy(&out->hi, v + sizeof(uint64_t), sizeof(uint64_t));
    return true;
}

static void
stat_cache_put(void *payload, const void *key, size_t keylen, kiln_xxh128 value)
{
    stat_cache *sc = payload;
    char v[sizeof(uint64_t) * 2];

    memcpy(v, &value.lo, sizeof(uint64_t));
    memcpy(v + sizeof(uint64_t), &value.hi, sizeof(uint64_t));
    kiln_cache_checksum_batch_put(sc->batch, stat_key(sc, key, keylen), v, sizeof(v));
}

static int
local_walk(kiln_ctx_list **out, const engine_op *eop, bool checksum, kiln_error **err)
{
    const Pb__SourceOp *src = eop->op->source;
    stat_cache sc = {0};
    kiln_ctx_cache_ops cache = {stat_cache_get, stat_cache_put, &sc};
    kiln_ignore *inc = NULL, *exc = NULL;
    kiln_ctx_opts opts = {.checksum = checksum, .cache = checksum ? &cache : NULL};
    kiln_error *tmp = NULL;
    int ret;

    ret = pattern_attr(&inc, src, "local.includepattern", err);
    if (ret == 0)
        ret = pattern_attr(&exc, src, "local.excludepatterns", err);
    opts.include = inc;
    opts.exclude = exc;
    if (checksum)
        kiln_cache_checksum_batch_new(&sc.batch, eop->engine->cache);
    if (ret == 0)
        ret = kiln_ctx_walk(out, eop->local_dir, &opts, err);
    /* the hashes are only a cache: failing to keep them costs a rehash next time */
    if (ret == 0 && sc.batch && kiln_cache_checksum_batch_commit(sc.batch, &tmp) < 0) {
        kiln_log_debug("context stat cache: %s", tmp->msg);
        kiln_error_free(&tmp);
    }
    kiln_cache_checksum_batch_free(sc.batch);
    free(sc.key);
    kiln_ignore_free(inc);
    kiln_ignore_free(exc);
    if (ret < 0)
        return kiln_error_wrap(err, "local source `%s`", eop->local_dir);
    return 0;
}

/* The last snapshot made of a build context (host dir + patterns), with what each of its regular
 * files was, so the next snapshot of that context links the unchanged files from it instead of
 * copying 20,000 files (and allocating as many inodes) for a one-file change. Kept in
 * <root>/local/<sha256 of dir and patterns>: "kiln.local.v1 <snapshot id>\n", then one line per
 * regular file: "<xxh128 hex> <mode> <mtime s>.<ns> <size> <path>\n". A file is linked only when
 * its content digest, mode, mtime and size are those recorded; the snapshot is immutable, so
 * the recorded file is still what is there. */
typedef struct local_prev {
    char id[33];
    kiln_map files; /* path -> local_file * */
} local_prev;

typedef struct local_file {
    char digest[33]; /* xxh128 hex */
    unsigned mode;
    int64_t sec;
    long nsec;
    uint64_t size;
} local_file;

static char *
local_record_path(const engine_op *eop)
{
    const Pb__SourceOp *src = eop->op->source;
    kiln_buf b = KILN_BUF_INIT;
    char hex[KILN_DIGEST_STRLEN + 1];
    kiln_sha256 d;

    kiln_buf_printf(&b, NULL, "%s", eop->local_dir);
    for (size_t i = 0; i < src->n_attrs; i++) {
        if (kiln_str_has_prefix(src->attrs[i]->key, "local.") &&
            strstr(src->attrs[i]->key, "pattern"))
            kiln_buf_printf(&b, NULL, "\n%s=%s", src->attrs[i]->key, src->attrs[i]->value);
    }
    kiln_sha256_buf(&d, b.ptr, b.len);
    kiln_buf_dispose(&b);
    kiln_digest_format(hex, &d);
    return kiln_path_join(eop->engine->localdir, hex + strlen("sha256:"));
}

static void
local_prev_dispose(local_prev *p)
{
    kiln_map_dispose(&p->files, free);
}

/* Load the record (false when there is none, it is unreadable, or its snapshot is gone). */
static bool
local_prev_load(local_prev *p, kiln_engine *e, const char *path)
{
    cleanup_free char *data = NULL;
    kiln_cache_snapshot_info info = {0};
    kiln_error *tmp = NULL;
    size_t len = 0;
    char *line, *save = NULL;
    bool ok;

    memset(p, 0, sizeof(*p));
    kiln_map_init(&p->files);
    if (kiln_fs_read_file(&data, &len, path, 1u << 30, &tmp) < 0 ||
        sscanf(data, "kiln.local.v1 %32s\n", p->id) != 1) {
        kiln_error_free(&tmp);
        return false;
    }
    ok = kiln_cache_snapshot_info_get(&info, e->cache, p->id, &tmp) == 0 &&
         info.kind == KILN_CACHE_SNAPSHOT_COMMITTED;
    kiln_cache_snapshot_info_dispose(&info);
    kiln_error_free(&tmp);
    if (!ok)
        return false;
    line = strtok_r(strchr(data, '\n') ? strchr(data, '\n') + 1 : data + len, "\n", &save);
    for (; line; line = strtok_r(NULL, "\n", &save)) {
        local_file f = {0};
        int off = 0;
        if (sscanf(line, "%32s %o %" SCNd64 ".%ld %" SCNu64 " %n", f.digest, &f.mode, &f.sec,
                   &f.nsec, &f.size, &off) != 5 ||
            off <= 0 || strlen(f.digest) != 32)
            continue;
        kiln_map_put(&p->files, line + off, xmemdup(&f, sizeof(f)));
    }
    return true;
}

static bool
local_linkable(const kiln_ctx_entry *e, void *payload)
{
    const local_prev *p = payload;
    const local_file *f = kiln_map_get(&p->files, e->path);
    char hex[33];

    if (!f || f->mode != (unsigned)e->mode || f->sec != (int64_t)e->mtime.tv_sec ||
        f->nsec != e->mtime.tv_nsec || f->size != e->size)
        return false;
    kiln_xxh128_format(hex, e->digest);
    return strcmp(hex, f->digest) == 0;
}

/* Record snapshot `id` as the context's last (errors only cost copies next time: logged). */
static void
local_prev_save(const char *path, const char *id, const kiln_ctx_list *l)
{
    kiln_buf b = KILN_BUF_INIT;
    kiln_error *tmp = NULL;

    kiln_buf_printf(&b, NULL, "kiln.local.v1 %s\n", id);
    for (size_t i = 0; i < l->len; i++) {
        const kiln_ctx_entry *e = &l->entries[i];
        char hex[33];
        if (!S_ISREG(e->mode) || strchr(e->path, '\n'))
            continue;
        kiln_xxh128_format(hex, e->digest);
        kiln_buf_printf(&b, NULL, "%s %o %" PRId64 ".%09ld %" PRIu64 " %s\n", hex,
                        (unsigned)e->mode, (int64_t)e->mtime.tv_sec, e->mtime.tv_nsec, e->size,
                        e->path);
    }
    cleanup_free char *dir = kiln_path_dir(path);

    if (kiln_fs_mkdir_p(dir, 0700, &tmp) < 0 ||
        kiln_fs_write_atomic(path, b.ptr, b.len, 0600, &tmp) < 0) {
        kiln_log_debug("record build context snapshot: %s", tmp->msg);
        kiln_error_free(&tmp);
    }
    kiln_buf_dispose(&b);
}

static int
local_exec(kiln_solver_result **out, const engine_op *eop, kiln_error **err)
{
    cleanup_free char *record = local_record_path(eop);
    kiln_ctx_list *l = NULL;
    engine_view prev_view = {0};
    engine_rw w = {0};
    local_prev prev;
    kiln_ctx_link_src ls = {.linkable = local_linkable, .payload = &prev};
    bool have_prev = local_prev_load(&prev, eop->engine, record);
    int ret;

    /* digests come from the stat cache the cache map's walk just filled */
    ret = local_walk(&l, eop, true, err);
    if (ret == 0 && have_prev) {
        kiln_error *tmp = NULL;
        engine_hold(eop->engine, prev.id); /* kept while its files are linked */
        if (engine_view_open(&prev_view, eop->engine, prev.id, &tmp) == 0 && !prev_view.mounted &&
            !prev_view.temp)
            ls.root = prev_view.path;
        kiln_error_free(&tmp);
    }
    if (ret == 0)
        ret = engine_rw_open(&w, eop->engine, NULL, err);
    if (ret == 0)
        ret = kiln_ctx_copy_linked(l, eop->local_dir, w.path,
                                   KILN_CTX_COPY_XATTRS | KILN_CTX_COPY_HARDLINKS, /* owners 0:0 */
                                   ls.root ? &ls : NULL, err);
    if (ret == 0)
        ret = engine_rw_commit(out, &w, eop->engine, err);
    if (ret == 0)
        local_prev_save(record, (*out)->id, l);
    engine_rw_abort(&w, eop->engine);
    engine_view_close(&prev_view);
    local_prev_dispose(&prev); /* also when loading it failed: the map is initialised */
    kiln_ctx_list_free(l);
    return ret;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

int
engine_source_cache_extra(char **extra, const engine_op *eop, kiln_error **err)
{
    const char *id = eop->op->source->identifier;
    kiln_oci_manifest m = {0};
    layout_ref ref = {0};
    kiln_ctx_list *l = NULL;
    char digest[KILN_DIGEST_STRLEN + 1], hex[33];
    int ret;

    if (kiln_str_has_prefix(id, "oci-layout://")) {
        ret = layout_ref_parse(&ref, id, err);
        if (ret == 0)
            ret = layout_resolve(&m, digest, &ref, err);
        if (ret == 0)
            *extra = xasprintf("manifest %s", digest);
        kiln_oci_manifest_dispose(&m);
        layout_ref_dispose(&ref);
        return ret;
    }
    if (kiln_str_has_prefix(id, "docker-image://"))
        return engine_image_cache_extra(extra, eop, err);
    if (kiln_str_has_prefix(id, "local://")) {
        ret = local_walk(&l, eop, true, err);
        if (ret < 0)
            return ret;
        kiln_xxh128_format(hex, l->root_digest);
        kiln_log_debug("local://%s: %zu entries, %zu files hashed", eop->local_dir, l->len,
                       l->hashed);
        *extra = xasprintf("content xxh128:%s", hex);
        kiln_ctx_list_free(l);
        return 0;
    }
    if (engine_remote_source(id))
        return engine_remote_cache_extra(extra, eop, err);
    return kiln_error_set(err, KILN_EUNSUPPORTED, "source `%s` is not supported yet", id);
}

int
engine_source_exec(kiln_solver_result **out, const engine_op *eop, kiln_op_ctx *ctx,
                   kiln_error **err)
{
    const char *id = eop->op->source->identifier;

    if (kiln_str_has_prefix(id, "oci-layout://"))
        return oci_layout_exec(out, eop, ctx, err);
    if (kiln_str_has_prefix(id, "docker-image://"))
        return engine_image_exec(out, eop, ctx, err);
    if (kiln_str_has_prefix(id, "local://"))
        return local_exec(out, eop, err);
    if (engine_remote_source(id))
        return engine_remote_exec(out, eop, err);
    return kiln_error_set(err, KILN_EUNSUPPORTED, "source `%s` is not supported yet", id);
}
