/*
 * image_export.c: a build result as an OCI image (kiln_engine_image_export). The result is a
 * committed snapshot; its parent chain, bottom-up, is the image's layer stack: one layer per
 * snapshot. A snapshot whose diff blob is recorded (a base image layer unpacked by op_source.c /
 * op_image.c, or a layer exported before) reuses that blob as stored, never recompressed, so base
 * layers keep their digests and a second export writes no layer blob. Other snapshots get their
 * changes written as a deterministic layer tar (oci/export.h) straight into the content store
 * through a pipe, and the blob and its diffID are recorded on the snapshot for the next export.
 * A snapshot without changes and without a blob adds no layer; its history entry is marked
 * empty_layer.
 *
 * History is aligned with the layers as BuildKit's normalizeLayersAndHistory does: the
 * frontend's non-empty history entries are matched to the snapshots from the top of the stack
 * down; extra entries at the bottom are marked empty, snapshots without an entry get a generated
 * one. With an epoch (SOURCE_DATE_EPOCH) the config's `created` and every history time is that
 * epoch, so two exports of one result have the same manifest digest.
 *
 * Every blob is written under the engine's lease, so a concurrent prune cannot remove it before
 * an image record (kiln_engine_image_tag) or the caller holds it.
 */
#define KILN_LOG_DOMAIN "engine"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "base/digest.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/path.h"
#include "base/vec.h"
#include "engine/engine_internal.h"
#include "oci/export.h"
#include "oci/oci.h"

#include "base/base.h"

/* One snapshot of the chain and what it contributes. */
typedef struct chain_item {
    char id[33];
    int64_t created;
    bool has_layer;
} chain_item;

typedef struct export_ctx {
    kiln_engine *e;
    const kiln_engine_image_opts *opts;
    kiln_oci_compression comp;
    kiln_export_image img;
    chain_item *items;
    size_t n_items;
    kiln_vec leased; /* char *: "blob:<digest>" targets the engine's lease now holds */
} export_ctx;

static const char *
comp_name(kiln_oci_compression c)
{
    return c == KILN_OCI_COMP_GZIP ? "gzip" : c == KILN_OCI_COMP_ZSTD ? "zstd" : "none";
}

static const char *
comp_media_type(kiln_oci_compression c)
{
    return c == KILN_OCI_COMP_GZIP   ? KILN_OCI_MT_LAYER_GZIP
           : c == KILN_OCI_COMP_ZSTD ? KILN_OCI_MT_LAYER_ZSTD
                                     : KILN_OCI_MT_LAYER_TAR;
}

static void report(const export_ctx *x, const char *fmt, ...) KILN_PRINTF(2, 3);

static void
report(const export_ctx *x, const char *fmt, ...)
{
    kiln_engine_event ev = {.type = KILN_ENGINE_EVENT_STATUS, .name = "exporting to image"};
    cleanup_free char *msg = NULL;
    struct timespec ts;
    va_list ap;

    if (!x->opts->progress)
        return;
    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ev.time_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    ev.data = msg;
    x->opts->progress(&ev, x->opts->progress_payload);
}

/* "2006-01-02T15:04:05Z" for Unix time t; owned by the caller. */
static char *
rfc3339(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char buf[64];

    gmtime_r(&tt, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return xstrdup(buf);
}

static const char *
label_get(const kiln_cache_snapshot_info *info, const char *key)
{
    for (size_t i = 0; info->labels && info->labels[i] && info->labels[i + 1]; i += 2) {
        if (strcmp(info->labels[i], key) == 0)
            return info->labels[i + 1];
    }
    return NULL;
}

/* ---- the chain ------------------------------------------------------------------------------ */

static char *alt_label(const export_ctx *x);

/* Lease every stored blob the chain may reuse in one transaction (one sync instead of one per
 * layer); x->leased lists those that exist. */
static void
lease_candidates(export_ctx *x, const kiln_vec *targets)
{
    bool *present = xcalloc(targets->len + 1, sizeof(*present));
    kiln_error *tmp = NULL;

    if (kiln_cache_lease_add_many(x->e->cache, x->e->lease, (const char *const *)targets->items,
                                  targets->len, present, &tmp) == 0) {
        for (size_t i = 0; i < targets->len; i++) {
            if (present[i])
                kiln_vec_push(&x->leased, xstrdup(kiln_vec_get(targets, i)));
        }
    } else { /* add_stored_layer leases them one by one */
        kiln_log_debug("lease layer blobs: %s", tmp->msg);
        kiln_error_free(&tmp);
    }
    free(present);
}

static bool
leased(const export_ctx *x, const char *target)
{
    for (size_t i = 0; i < x->leased.len; i++) {
        if (strcmp(kiln_vec_get(&x->leased, i), target) == 0)
            return true;
    }
    return false;
}

static int
collect_chain(export_ctx *x, const char *top, kiln_error **err)
{
    cleanup_free char *alt = alt_label(x);
    kiln_vec targets = KILN_VEC_INIT;
    cleanup_free char *cur = xstrdup(top);
    kiln_vec v = KILN_VEC_INIT;
    int ret = 0;

    while (cur && ret == 0) {
        kiln_cache_snapshot_info info = {0};
        chain_item *it;

        if (v.len > 100000)
            ret = kiln_error_set(err, KILN_EPARSE, "snapshot %s: parent chain too long", top);
        if (ret == 0)
            ret = kiln_cache_snapshot_info_get(&info, x->e->cache, cur, err);
        if (ret == 0) {
            it = xnew(chain_item);
            kiln_strlcpy(it->id, cur, sizeof(it->id));
            it->created = info.created;
            kiln_vec_push(&v, it);
            if (info.blob)
                kiln_vec_push(&targets, xasprintf("blob:%s", info.blob));
            if (label_get(&info, alt) && kiln_digest_valid(label_get(&info, alt)))
                kiln_vec_push(&targets, xasprintf("blob:%s", label_get(&info, alt)));
            free(cur);
            cur = steal_pointer(&info.parent);
        }
        kiln_cache_snapshot_info_dispose(&info);
    }
    x->items = xcalloc(v.len + 1, sizeof(*x->items));
    x->n_items = v.len;
    for (size_t i = 0; i < v.len; i++) /* bottom-up */
        x->items[i] = *(chain_item *)kiln_vec_get(&v, v.len - 1 - i);
    kiln_vec_dispose(&v, free);
    if (ret == 0)
        lease_candidates(x, &targets);
    kiln_vec_dispose(&targets, free);
    return ret;
}

/* ---- reusing a stored blob ------------------------------------------------------------------ */

/* The compression of a stored blob, from its first bytes. */
int
engine_blob_compression(kiln_oci_compression *out, kiln_engine *e, const char *digest,
                        kiln_error **err)
{
    cleanup_close int fd = -1;
    unsigned char magic[4] = {0};
    ssize_t n;
    int ret = kiln_cache_blob_open(&fd, e->cache, digest, err);

    if (ret < 0)
        return ret;
    n = pread(fd, magic, sizeof(magic), 0);
    if (n < 0)
        return kiln_error_errno(err, errno, "read blob %s", digest);
    if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
        *out = KILN_OCI_COMP_GZIP;
    else if (n == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
        *out = KILN_OCI_COMP_ZSTD;
    else
        *out = KILN_OCI_COMP_NONE;
    return 0;
}

/* Add stored blob `digest` as the next layer if its diffID is known; *ok says whether it was. */
static int
add_stored_layer(bool *ok, export_ctx *x, const kiln_cache_snapshot_info *info, const char *digest,
                 kiln_error **err)
{
    cleanup_free char *key = xasprintf(ENGINE_LABEL_DIFFID "%s", digest);
    cleanup_free char *target = xasprintf("blob:%s", digest);
    cleanup_free char *path = NULL;
    const char *diff_id = label_get(info, key);
    kiln_cache_blob_info bi = {0};
    kiln_oci_descriptor d = {0};
    kiln_oci_compression comp;
    kiln_error *tmp = NULL;
    int ret;

    *ok = false;
    if (!diff_id || !kiln_digest_valid(diff_id))
        return 0;
    /* the lease keeps the blob while the image is assembled (and says whether it is there) */
    if (!leased(x, target) && kiln_cache_lease_add(x->e->cache, x->e->lease, target, &tmp) < 0) {
        kiln_error_free(&tmp);
        return 0;
    }
    ret = kiln_cache_blob_info_get(&bi, x->e->cache, digest, err);
    if (ret == 0)
        ret = engine_blob_compression(&comp, x->e, digest, err);
    if (ret == 0) {
        path = xasprintf("%s/blobs/sha256/%s", kiln_cache_root(x->e->cache),
                         digest + strlen("sha256:"));
        d.media_type = (char *)comp_media_type(comp);
        d.digest = (char *)digest;
        d.size = (int64_t)bi.size;
        ret = kiln_export_image_add_layer(&x->img, path, &d, diff_id, NULL, err);
    }
    kiln_cache_blob_info_dispose(&bi);
    if (ret < 0)
        return kiln_error_wrap(err, "reuse layer blob %s", digest);
    *ok = true;
    return 0;
}

/* The label naming an extra blob in compression `c` (and clamp epoch); owned by the caller. */
static char *
alt_label(const export_ctx *x)
{
    if (x->opts->rewrite_timestamp && x->opts->epoch >= 0)
        return xasprintf("kiln.blob.%s@%lld", comp_name(x->comp), (long long)x->opts->epoch);
    return xasprintf("kiln.blob.%s", comp_name(x->comp));
}

/* Reuse a stored blob of snapshot `info` when one fits the options. */
static int
try_reuse(bool *ok, export_ctx *x, const kiln_cache_snapshot_info *info, kiln_error **err)
{
    cleanup_free char *alt = alt_label(x);
    const char *alt_digest = label_get(info, alt);
    bool image_layer = label_get(info, ENGINE_LABEL_LAYER_SOURCE) != NULL;
    kiln_oci_compression comp;
    kiln_error *tmp = NULL;
    int ret;

    *ok = false;
    /* the recorded blob: the image's own layer, or the first export without a clamp */
    if (info->blob && (image_layer || !x->opts->rewrite_timestamp)) {
        bool fits = !x->opts->force_compression;
        if (!fits && engine_blob_compression(&comp, x->e, info->blob, &tmp) == 0)
            fits = comp == x->comp;
        kiln_error_free(&tmp);
        if (fits) {
            ret = add_stored_layer(ok, x, info, info->blob, err);
            if (ret < 0 || *ok)
                return ret;
        }
    }
    if (alt_digest && kiln_digest_valid(alt_digest))
        return add_stored_layer(ok, x, info, alt_digest, err);
    return 0;
}

/* ---- writing a new layer -------------------------------------------------------------------- */

/* A change that is only a directory copied up with the same mode and owner as below (the
 * sandbox touched a mount point in it) is no change, as BuildKit's overlay differ sees it
 * (directory mtimes are not compared). Stops the walk (1) at the first real change. */
static int
diff_real(kiln_cache_change_kind kind, const char *path, const char *full, const struct stat *st,
          void *payload, kiln_error **err)
{
    const char *lower = payload;
    cleanup_free char *below = NULL;
    struct stat lst;

    (void)full, (void)err;
    if (kind != KILN_CACHE_CHANGE_ADD_OR_MODIFY || !S_ISDIR(st->st_mode) || !lower)
        return 1;
    below = kiln_path_join(lower, path);
    if (lstat(below, &lst) < 0 || !S_ISDIR(lst.st_mode) || lst.st_mode != st->st_mode ||
        lst.st_uid != st->st_uid || lst.st_gid != st->st_gid)
        return 1;
    return 0;
}

static int
snapshot_is_empty(bool *empty, kiln_engine *e, const char *id, const char *parent, kiln_error **err)
{
    engine_view v = {0};
    int ret = engine_view_open(&v, e, parent, err);

    if (ret == 0)
        ret = kiln_cache_snapshot_diff(e->cache, id, diff_real, v.path, err);
    engine_view_close(&v);
    if (ret < 0)
        return ret;
    *empty = ret == 0;
    return 0;
}

/* Naive snapshotter: materialise a snapshot's changes as an overlay-style upper dir. */
typedef struct upper_build {
    const char *dir;  /* the upper dir being built */
    const char *tree; /* the snapshot's full tree */
    kiln_vec made;    /* parent dirs created for unreported ancestors (relative, owned) */
} upper_build;

/* The diff walk of the naive snapshotter reports changed entries, not their unchanged parents:
 * create missing parents like the tree's (times fixed at the end). */
static int
upper_parents(upper_build *u, const char *path, kiln_error **err)
{
    cleanup_free char *rel = xstrdup(path);
    struct stat st;

    for (char *p = strchr(rel, '/'); p; p = strchr(p + 1, '/')) {
        cleanup_free char *dst = NULL;
        cleanup_free char *src = NULL;
        *p = 0;
        dst = kiln_path_join(u->dir, rel);
        if (lstat(dst, &st) < 0) {
            src = kiln_path_join(u->tree, rel);
            if (lstat(src, &st) < 0)
                return kiln_error_errno(err, errno, "stat `%s`", src);
            if (mkdir(dst, st.st_mode & 07777) < 0 || lchown(dst, st.st_uid, st.st_gid) < 0 ||
                chmod(dst, st.st_mode & 07777) < 0)
                return kiln_error_errno(err, errno, "mkdir `%s`", dst);
            kiln_strvec_push(&u->made, rel);
        }
        *p = '/';
    }
    return 0;
}

static int
copy_file(const char *src, const char *dst, const struct stat *st, kiln_error **err)
{
    cleanup_close int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    cleanup_close int out = -1;
    char buf[65536];
    ssize_t n;
    int ret;

    if (in < 0)
        return kiln_error_errno(err, errno, "open `%s`", src);
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st->st_mode & 07777);
    if (out < 0)
        return kiln_error_errno(err, errno, "create `%s`", dst);
    while ((n = read(in, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kiln_error_errno(err, errno, "read `%s`", src);
        ret = kiln_fd_write_all(out, buf, (size_t)n, err);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int
upper_entry(kiln_cache_change_kind kind, const char *path, const char *full, const struct stat *st,
            void *payload, kiln_error **err)
{
    upper_build *u = payload;
    cleanup_free char *dst = kiln_path_join(u->dir, path);
    char link[4096];
    ssize_t n;
    int ret = 0;

    ret = upper_parents(u, path, err);
    if (ret < 0)
        return ret;
    if (kind == KILN_CACHE_CHANGE_DELETE) {
        if (mknod(dst, S_IFCHR | 0000, makedev(0, 0)) < 0)
            return kiln_error_errno(err, errno, "whiteout `%s`", dst);
        return 0;
    }
    if (S_ISDIR(st->st_mode)) {
        if (mkdir(dst, st->st_mode & 07777) < 0 && errno != EEXIST)
            return kiln_error_errno(err, errno, "mkdir `%s`", dst);
    } else if (S_ISREG(st->st_mode)) {
        ret = copy_file(full, dst, st, err);
    } else if (S_ISLNK(st->st_mode)) {
        n = readlink(full, link, sizeof(link) - 1);
        if (n < 0)
            return kiln_error_errno(err, errno, "readlink `%s`", full);
        link[n] = 0;
        if (symlink(link, dst) < 0)
            return kiln_error_errno(err, errno, "symlink `%s`", dst);
    } else if (S_ISSOCK(st->st_mode)) {
        return 0; /* sockets are not layer content */
    } else if (mknod(dst, st->st_mode, st->st_rdev) < 0) {
        return kiln_error_errno(err, errno, "mknod `%s`", dst);
    }
    if (ret < 0)
        return ret;
    if (lchown(dst, st->st_uid, st->st_gid) < 0)
        return kiln_error_errno(err, errno, "chown `%s`", dst);
    if (!S_ISLNK(st->st_mode) && chmod(dst, st->st_mode & 07777) < 0)
        return kiln_error_errno(err, errno, "chmod `%s`", dst);
    return utimensat(AT_FDCWD, dst, (struct timespec[]){st->st_atim, st->st_mtim},
                     AT_SYMLINK_NOFOLLOW) < 0
                   ? kiln_error_errno(err, errno, "set times of `%s`", dst)
                   : 0;
}

/* Directory times change as entries are added: set them again, deepest first. */
static int
upper_fix_dir_times(kiln_cache_change_kind kind, const char *path, const char *full,
                    const struct stat *st, void *payload, kiln_error **err)
{
    upper_build *u = payload;
    cleanup_free char *dst = NULL;

    (void)full;
    if (kind == KILN_CACHE_CHANGE_DELETE || !S_ISDIR(st->st_mode))
        return 0;
    dst = kiln_path_join(u->dir, path);
    if (utimensat(AT_FDCWD, dst, (struct timespec[]){st->st_atim, st->st_mtim}, 0) < 0)
        return kiln_error_errno(err, errno, "set times of `%s`", dst);
    return 0;
}

static int
blob_emit(void *payload, const void *data, size_t len, kiln_error **err)
{
    return kiln_cache_blob_writer_write(payload, data, len, err);
}

/* kiln_layer_write of `dir` straight into a new content-store blob: the store hashes the bytes
 * (the blob digest) as it writes them, on the compressor's threads, while this thread reads the
 * files and hashes the tar (the diffID). */
static int
write_layer_blob(kiln_layer_result *res, export_ctx *x, const char *dir, kiln_layer_mode mode,
                 kiln_error **err)
{
    kiln_layer_opts lo = KILN_LAYER_OPTS_INIT;
    kiln_cache_blob_writer *w = NULL;
    int ret;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    lo.mode = mode;
    lo.compression = x->comp;
    lo.level = x->opts->compression_level;
    lo.gzip_threads = cpus > 0 ? (unsigned)cpus : 1;
    if (x->opts->rewrite_timestamp && x->opts->epoch >= 0) {
        lo.time = KILN_LAYER_TIME_CLAMP;
        lo.epoch = x->opts->epoch;
    }
    ret = kiln_cache_blob_writer_new(&w, x->e->cache, NULL, err);
    if (ret < 0)
        return ret;
    kiln_cache_blob_writer_set_lease(w, x->e->lease);
    ret = kiln_layer_write_emit(res, dir, blob_emit, w, &lo, err);
    if (ret == 0)
        ret = kiln_cache_blob_writer_commit(w, res->media_type, res->digest, err);
    kiln_cache_blob_writer_free(w);
    if (ret == 0) {
        /* the store hashed every byte it wrote: an archive export need not hash them again */
        cleanup_free char *path = xasprintf("%s/blobs/sha256/%s", kiln_cache_root(x->e->cache),
                                            res->digest + strlen("sha256:"));
        kiln_export_note_verified(path, res->digest);
    }
    return ret;
}

/* Write snapshot `id`'s changes as a layer blob (overlay: its own change dir; naive: a temp
 * upper dir built from the diff walk). */
static int
write_snapshot_layer(kiln_layer_result *res, export_ctx *x, const char *id, kiln_error **err)
{
    const char *root = kiln_cache_root(x->e->cache);
    cleanup_free char *fs = NULL;
    cleanup_free char *tmp = NULL;
    kiln_error *ignored = NULL;
    upper_build u;
    int ret;

    if (kiln_cache_uses_overlay(x->e->cache)) {
        /* cache.h: snapshots/<id>/fs is a snapshot's own changes (the overlay upper dir) */
        fs = xasprintf("%s/snapshots/%s/fs", root, id);
        return write_layer_blob(res, x, fs, KILN_LAYER_OVERLAY_UPPER, err);
    }
    ret = kiln_fs_mkdtemp(&tmp, x->e->mountdir, "layer-", err);
    if (ret < 0)
        return ret;
    fs = xasprintf("%s/snapshots/%s/fs", root, id);
    u.dir = tmp;
    u.tree = fs;
    kiln_vec_init(&u.made);
    ret = kiln_cache_snapshot_diff(x->e->cache, id, upper_entry, &u, err);
    if (ret == 0)
        ret = kiln_cache_snapshot_diff(x->e->cache, id, upper_fix_dir_times, &u, err);
    for (size_t i = u.made.len; ret == 0 && i > 0; i--) {
        struct stat st;
        cleanup_free char *src = kiln_path_join(fs, u.made.items[i - 1]);
        cleanup_free char *dst = kiln_path_join(tmp, u.made.items[i - 1]);
        if (lstat(src, &st) < 0 ||
            utimensat(AT_FDCWD, dst, (struct timespec[]){st.st_atim, st.st_mtim}, 0) < 0)
            ret = kiln_error_errno(err, errno, "set times of `%s`", dst);
    }
    kiln_strvec_dispose(&u.made);
    if (ret == 0)
        ret = write_layer_blob(res, x, tmp, KILN_LAYER_OVERLAY_UPPER, err);
    if (kiln_fs_rm_rf(tmp, &ignored) < 0)
        kiln_log_warn("remove `%s`: %s", tmp, ignored->msg);
    kiln_error_free(&ignored);
    return ret;
}

/* Remember a written blob on its snapshot for the next export (failures only cost a rewrite). */
static void
record_layer(export_ctx *x, const kiln_cache_snapshot_info *info, const kiln_layer_result *res)
{
    cleanup_free char *key = xasprintf(ENGINE_LABEL_DIFFID "%s", res->digest);
    cleanup_free char *alt = alt_label(x);
    kiln_error *tmp = NULL;
    int ret;

    ret = kiln_cache_snapshot_set_label(x->e->cache, info->id, key, res->diff_id, &tmp);
    if (ret == 0)
        ret = kiln_cache_snapshot_set_label(x->e->cache, info->id, alt, res->digest, &tmp);
    if (ret == 0 && !info->blob && !(x->opts->rewrite_timestamp && x->opts->epoch >= 0))
        ret = kiln_cache_snapshot_set_blob(x->e->cache, info->id, res->digest, &tmp);
    if (ret < 0)
        kiln_log_warn("record layer %s on snapshot %s: %s", res->digest, info->id, tmp->msg);
    kiln_error_free(&tmp);
}

static int
export_item(export_ctx *x, chain_item *it, kiln_error **err)
{
    kiln_cache_snapshot_info info = {0};
    kiln_layer_result res = {0};
    kiln_oci_descriptor d = {0};
    cleanup_free char *path = NULL;
    bool ok = false, empty = false;
    int ret;

    ret = kiln_cache_snapshot_info_get(&info, x->e->cache, it->id, err);
    if (ret == 0)
        ret = try_reuse(&ok, x, &info, err);
    if (ret == 0 && !ok && !info.blob)
        ret = snapshot_is_empty(&empty, x->e, it->id, info.parent, err);
    if (ret == 0 && !ok && !empty) {
        ret = write_snapshot_layer(&res, x, it->id, err);
        if (ret == 0) {
            record_layer(x, &info, &res);
            path = xasprintf("%s/blobs/sha256/%s", kiln_cache_root(x->e->cache),
                             res.digest + strlen("sha256:"));
            d.media_type = (char *)res.media_type;
            d.digest = res.digest;
            d.size = res.size;
            ret = kiln_export_image_add_layer(&x->img, path, &d, res.diff_id, NULL, err);
        }
    }
    it->has_layer = ret == 0 && !empty;
    kiln_cache_snapshot_info_dispose(&info);
    if (ret < 0)
        return kiln_error_wrap(err, "layer of snapshot %s", it->id);
    return 0;
}

/* ---- config and history --------------------------------------------------------------------- */

static void
history_set(kiln_oci_history *h, const json_t *e)
{
    const char *s;

    memset(h, 0, sizeof(*h));
    if ((s = json_string_value(json_object_get(e, "created"))))
        h->created = xstrdup(s);
    if ((s = json_string_value(json_object_get(e, "author"))))
        h->author = xstrdup(s);
    if ((s = json_string_value(json_object_get(e, "created_by"))))
        h->created_by = xstrdup(s);
    if ((s = json_string_value(json_object_get(e, "comment"))))
        h->comment = xstrdup(s);
    h->empty_layer = json_is_true(json_object_get(e, "empty_layer"));
}

/* Parse the frontend's config without its rootfs and history (*history_out: its history array,
 * a new reference or NULL); NULL config = a minimal config for the host platform. */
static int
parse_config(kiln_oci_config *cfg, json_t **history_out, const char *json, kiln_error **err)
{
    cleanup_json json_t *root = NULL;
    cleanup_free char *dumped = NULL;
    kiln_oci_platform host = {0};
    int ret;

    if (json) {
        ret = kiln_json_parse(&root, json, strlen(json), KILN_OCI_CONFIG_MAX, "image config", err);
        if (ret < 0)
            return ret;
        if (!json_is_object(root))
            return kiln_error_set(err, KILN_EPARSE, "image config is not a JSON object");
    } else {
        root = json_object();
    }
    kiln_oci_platform_host(&host);
    if (!json_is_string(json_object_get(root, "architecture")))
        json_object_set_new(root, "architecture", json_string(host.architecture));
    if (!json_is_string(json_object_get(root, "os")))
        json_object_set_new(root, "os", json_string(host.os));
    kiln_oci_platform_dispose(&host);
    *history_out = json_incref(json_object_get(root, "history"));
    json_object_del(root, "history");
    json_object_set_new(root, "rootfs", json_pack("{s:s,s:[]}", "type", "layers", "diff_ids"));
    dumped = kiln_json_dump_canonical(root);
    ret = kiln_oci_config_parse(cfg, dumped, strlen(dumped), err);
    if (ret < 0) {
        json_decref(*history_out);
        *history_out = NULL;
    }
    return ret;
}

/* The aligned history (see the top of the file) into cfg->history. */
static void
align_history(export_ctx *x, const json_t *hist)
{
    size_t n = json_is_array(hist) ? json_array_size(hist) : 0, ne = 0, gen = 0, k;
    kiln_oci_config *cfg = &x->img.config;
    kiln_oci_history *h = xcalloc(n + x->n_items + 1, sizeof(*h));

    for (size_t i = 0; i < n; i++)
        ne += json_is_true(json_object_get(json_array_get(hist, i), "empty_layer")) ? 0 : 1;
    /* more non-empty entries than snapshots: the bottom ones become empty (BuildKit) */
    if (ne < x->n_items)
        gen = x->n_items - ne;
    for (size_t i = 0; i < gen; i++) {
        const chain_item *it = &x->items[i];
        if (!it->has_layer)
            continue;
        h[cfg->n_history].created = rfc3339(it->created);
        h[cfg->n_history].created_by = xstrdup("");
        h[cfg->n_history].comment = xstrdup("kiln.exporter.image.v0");
        cfg->n_history++;
    }
    k = gen; /* the snapshot the next non-empty entry describes */
    for (size_t i = 0; i < n; i++) {
        kiln_oci_history *e = &h[cfg->n_history++];
        history_set(e, json_array_get(hist, i));
        if (e->empty_layer)
            continue;
        if (ne > x->n_items) {
            e->empty_layer = true;
            ne--;
            continue;
        }
        if (!e->created) /* BuildKit fills it from the layer's creation time */
            e->created = rfc3339(x->items[k].created);
        e->empty_layer = !x->items[k++].has_layer;
    }
    cfg->history = h;
}

/* History entries without a time (the frontend's metadata-only steps, without an epoch) get
 * the time of the first new layer when they come before it, else of the layer before them; the
 * config's time is the last entry's (BuildKit's exporter). An unchanged rebuild thus gives the
 * same config, and the same image. */
static void
fill_times(kiln_oci_config *cfg)
{
    const char *created = NULL, *last = NULL;
    bool gap = false;

    for (size_t i = 0; i < cfg->n_history; i++) {
        if (cfg->history[i].created) {
            created = cfg->history[i].created;
            if (gap)
                break;
        } else {
            gap = true;
        }
    }
    gap = false;
    for (size_t i = 0; i < cfg->n_history; i++) {
        kiln_oci_history *h = &cfg->history[i];
        if (h->created) {
            if (gap)
                created = h->created;
        } else {
            gap = true;
            h->created = xstrdup(created);
        }
        if (h->created)
            last = h->created;
    }
    if (!cfg->created) /* no time anywhere (metadata on scratch): now */
        cfg->created = last ? xstrdup(last) : rfc3339((int64_t)time(NULL));
}

static void
apply_epoch(export_ctx *x)
{
    kiln_oci_config *cfg = &x->img.config;

    if (x->opts->epoch < 0) {
        fill_times(cfg);
        return;
    }
    free(cfg->created);
    cfg->created = rfc3339(x->opts->epoch);
    for (size_t i = 0; i < cfg->n_history; i++) {
        free(cfg->history[i].created);
        cfg->history[i].created = rfc3339(x->opts->epoch);
    }
}

/* ---- the whole export ----------------------------------------------------------------------- */

static int
store_image(kiln_engine_image **out, export_ctx *x, const char *top, kiln_error **err)
{
    kiln_export_image *img = &x->img;
    bool docker = strcmp(img->manifest.media_type, KILN_DOCKER_MT_MANIFEST) == 0;
    char d[KILN_DIGEST_STRLEN + 1];
    int ret;

    ret = engine_blob_put(d, x->e, img->config_json, img->config_len,
                          docker ? KILN_DOCKER_MT_CONFIG : KILN_OCI_MT_CONFIG, err);
    if (ret == 0)
        ret = engine_blob_put(d, x->e, img->manifest_json, img->manifest_len,
                              img->manifest.media_type, err);
    if (ret == 0)
        ret = engine_image_from_store(out, x->e, img->manifest_digest, top, err);
    return ret;
}

static kiln_oci_compression
opts_compression(const kiln_engine_image_opts *o)
{
    if (o->compression == KILN_ENGINE_COMPRESSION_ZSTD)
        return KILN_OCI_COMP_ZSTD;
    if (o->compression == KILN_ENGINE_COMPRESSION_UNCOMPRESSED)
        return KILN_OCI_COMP_NONE;
    return KILN_OCI_COMP_GZIP;
}

static int
export_run(kiln_engine_image **out, export_ctx *x, const char *top, kiln_error **err)
{
    json_t *hist = NULL;
    size_t layers = 0;
    int ret;

    ret = parse_config(&x->img.config, &hist, x->opts->config_json, err);
    if (ret < 0)
        return kiln_error_wrap(err, "image config");
    engine_hold(x->e, top);
    ret = collect_chain(x, top, err);
    for (size_t i = 0; ret == 0 && i < x->n_items; i++) {
        report(x, "exporting layer %zu/%zu", i + 1, x->n_items);
        ret = export_item(x, &x->items[i], err);
        layers += x->items[i].has_layer ? 1 : 0;
    }
    if (ret == 0) {
        align_history(x, hist);
        apply_epoch(x);
        ret = kiln_export_image_finalize(&x->img,
                                         x->opts->docker_media_types ? KILN_EXPORT_MEDIA_DOCKER
                                                                     : KILN_EXPORT_MEDIA_OCI,
                                         err);
    }
    if (ret == 0)
        ret = store_image(out, x, top, err);
    if (ret == 0)
        report(x, "exported %s (%zu layers)", x->img.manifest_digest, layers);
    json_decref(hist);
    return ret;
}

int
kiln_engine_image_export(kiln_engine_image **out, kiln_engine *e, const kiln_engine_result *r,
                         const kiln_engine_image_opts *opts, kiln_error **err)
{
    kiln_engine_image_opts defaults = KILN_ENGINE_IMAGE_OPTS_INIT;
    export_ctx x = {.e = e};
    int ret;

    if (!opts)
        opts = &defaults;
    if (opts->version != KILN_ENGINE_IMAGE_OPTS_VERSION)
        return kiln_error_set(err, KILN_EINVAL, "image options version %d (want %d)", opts->version,
                              KILN_ENGINE_IMAGE_OPTS_VERSION);
    if (opts->compression_level < 0 || opts->compression_level > 22)
        return kiln_error_set(err, KILN_EINVAL, "compression level %d", opts->compression_level);
    x.opts = opts;
    x.comp = opts_compression(opts);
    kiln_export_image_init(&x.img);
    ret = export_run(out, &x, kiln_engine_result_id(r), err);
    kiln_export_image_dispose(&x.img);
    free(x.items);
    kiln_vec_dispose(&x.leased, free);
    if (ret < 0)
        return kiln_error_wrap(err, "export image of result %s", kiln_engine_result_id(r));
    return 0;
}
