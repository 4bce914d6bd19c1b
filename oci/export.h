/*
 * export.h: layer creation and image exporters (specs.md §1.6-§1.8, §2).
 *
 * Layers: kiln_layer_write() turns a directory (a full tree, or an overlayfs upper dir holding one
 * layer's changes) into a deterministic layer tar, optionally gzip or zstd compressed, and
 * computes the diffID and the blob digest in the same pass.
 *
 * Images: a kiln_export_image collects the layer blobs (files on disk) and the image config, then
 * kiln_export_image_finalize() writes rootfs.diff_ids and serialises config and manifest. The
 * exporters write such an image as an OCI layout tar (type=oci), a `docker load`-able tar
 * (type=docker) or an OCI layout directory. type=local and type=tar work on plain directories.
 *
 * Every tar stream is written sequentially (no seeking), so the destination may be a pipe.
 * Nothing here is thread-safe per object; distinct objects may be used from distinct threads.
 */
#ifndef KILN_OCI_EXPORT_H
#define KILN_OCI_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/digest.h"
#include "base/error.h"
#include "oci/oci.h"

/* ---- layer creation ------------------------------------------------------------------------- */

typedef enum kiln_layer_mode {
    KILN_LAYER_FULL = 0,      /* every file of the tree is content (base layer, type=tar) */
    KILN_LAYER_OVERLAY_UPPER, /* overlayfs upper dir: char dev 0:0 = whiteout, opaque xattr */
} kiln_layer_mode;

typedef enum kiln_layer_time {
    KILN_LAYER_TIME_KEEP = 0, /* mtimes as on disk (whole seconds) */
    KILN_LAYER_TIME_CLAMP,    /* min(mtime, epoch): BuildKit's rewrite-timestamp */
    KILN_LAYER_TIME_SET,      /* every mtime = epoch */
} kiln_layer_time;

typedef struct kiln_layer_opts {
    int version;                      /* KILN_LAYER_OPTS_VERSION */
    kiln_layer_mode mode;             /* how to read the directory */
    kiln_oci_compression compression; /* of the blob written to the fd */
    int level;                        /* 0 = default (gzip 6, zstd 3); gzip 1-9, zstd 1-22 */
    kiln_layer_time time;             /* timestamp policy */
    int64_t epoch;                    /* SOURCE_DATE_EPOCH for CLAMP/SET (>= 0) */
    /* gzip only. 0: one zlib stream on the calling thread. N > 0: the parallel block format
     * (1 MiB blocks primed with the previous 32 KiB, as pigz; blocks that look incompressible
     * stored, not deflated) on N threads; its bytes are the same for every N > 0 but differ from
     * the N = 0 stream, so pick one setting per cache. */
    unsigned gzip_threads;
} kiln_layer_opts;

#define KILN_LAYER_OPTS_VERSION 1
#define KILN_LAYER_OPTS_INIT    \
    {                           \
        KILN_LAYER_OPTS_VERSION \
    }

typedef struct kiln_layer_result {
    char diff_id[KILN_DIGEST_STRLEN + 1]; /* sha256 of the uncompressed tar */
    char digest[KILN_DIGEST_STRLEN + 1];  /* sha256 of the bytes written to the fd */
    int64_t size;                         /* bytes written to the fd */
    int64_t tar_size;                     /* bytes of the uncompressed tar */
    const char *media_type;               /* OCI layer media type; static string */
} kiln_layer_result;

/* Write the layer tar of `dir` to `fd` (from its current offset, never seeking; a pipe is fine).
 * Entries are sorted by path with parents first, named without a "./" prefix (directories end in
 * "/"), with numeric owners, modes, xattrs (PAX SCHILY.xattr) and hardlinks kept; sockets are
 * skipped and overlay-private xattrs dropped. In KILN_LAYER_OVERLAY_UPPER mode a char device 0:0
 * becomes `.wh.<name>` and a directory with trusted.overlay.opaque=y (or user.overlay.opaque=y)
 * gets a `.wh..wh..opq` entry right after its own entry.
 * Errors: KILN_EINVAL (bad options; a source name starting with ".wh."), KILN_EUNSUPPORTED
 * (overlay redirect/metacopy xattrs), KILN_ENOTFOUND (dir missing), KILN_ESYS (I/O). On failure the
 * fd may hold a partial blob. */
int kiln_layer_write(kiln_layer_result *out, const char *dir, int fd, const kiln_layer_opts *opts,
                     kiln_error **err);

/* Receives a blob's bytes in order. Returns 0 or a negative kiln_errcode with *err set. */
typedef int (*kiln_layer_emit_fn)(void *payload, const void *data, size_t len, kiln_error **err);

/* kiln_layer_write, but the blob goes to `emit` instead of an fd, for a receiver that hashes what
 * it stores (a content store): out->digest is left "" (the diffID, sizes and media type are
 * filled). emit is called one call at a time and in order, but with gzip_threads > 0 from the
 * compressor's threads. A failure of emit stops the write and is returned (wrapped). */
int kiln_layer_write_emit(kiln_layer_result *out, const char *dir, kiln_layer_emit_fn emit,
                          void *payload, const kiln_layer_opts *opts, kiln_error **err);

/* A descriptor for a written layer (media type, digest, size), with the annotation
 * "containerd.io/uncompressed" = diffID as BuildKit writes it. *out owned by the caller. */
void kiln_layer_descriptor(kiln_oci_descriptor *out, const kiln_layer_result *r);

/* ---- image assembly ------------------------------------------------------------------------- */

typedef enum kiln_export_media {
    KILN_EXPORT_MEDIA_OCI = 0, /* OCI manifest/config/layer media types */
    KILN_EXPORT_MEDIA_DOCKER,  /* Docker schema 2 types (zstd layers force OCI types) */
} kiln_export_media;

typedef struct kiln_export_layer {
    char *path;               /* blob file on disk; owned */
    kiln_oci_descriptor desc; /* as given (OCI or Docker layer media type); owned */
    char *diff_id;            /* owned */
} kiln_export_layer;

typedef struct kiln_export_image {
    kiln_oci_config config; /* the caller fills it (platform, exec config, base history...) */
    kiln_export_layer *layers;
    size_t n_layers;
    /* Set by kiln_export_image_finalize, owned: */
    char *config_json;
    size_t config_len;
    char config_digest[KILN_DIGEST_STRLEN + 1];
    kiln_oci_manifest manifest;
    char *manifest_json;
    size_t manifest_len;
    char manifest_digest[KILN_DIGEST_STRLEN + 1];
} kiln_export_image;

void kiln_export_image_init(kiln_export_image *img);
void kiln_export_image_dispose(kiln_export_image *img);

/* Append a layer in stack order (base first): the blob at `path` (copied string) described by
 * `desc` (copied), with `diff_id`. When `history` is not NULL a copy is appended to the config's
 * history (its empty_layer must be false). KILN_EINVAL on a bad digest/diffID or media type. */
int kiln_export_image_add_layer(kiln_export_image *img, const char *path,
                                const kiln_oci_descriptor *desc, const char *diff_id,
                                const kiln_oci_history *history, kiln_error **err);

/* Set rootfs.diff_ids from the layers, check the history agrees with them, and serialise the
 * config and the manifest (in `media` types) with their digests. May be called again.
 * KILN_EINVAL (history/layer mismatch, no os/architecture), KILN_EUNSUPPORTED (unknown layer
 * media type). */
int kiln_export_image_finalize(kiln_export_image *img, kiln_export_media media, kiln_error **err);

/* ---- exporters ------------------------------------------------------------------------------ */

/* Remember that the file at `path` holds exactly the blob `digest` because the caller has just
 * written it and hashed what it wrote (a content-store commit). The tar exporters then skip
 * hashing that blob again while the file is unchanged: same device, inode, size, mtime and ctime
 * (any write, truncation or chmod moves ctime), as git's index trusts unchanged stat data.
 * Process-wide and thread-safe; keeps the last few notes. A file that cannot be stat'ed is not
 * noted. */
void kiln_export_note_verified(const char *path, const char *digest);

/* Write the finalized image as an OCI image layout tar (oci-layout, index.json, blobs/sha256/...)
 * to fd. `names` is a NULL-terminated list of image references (may be NULL): each becomes one
 * index.json entry annotated with io.containerd.image.name (full normalised name) and
 * org.opencontainers.image.ref.name (the tag, or the full name for a digest-only reference).
 * Every tar entry has owner 0:0 and mtime `mtime`. Layer blobs are checked against their size
 * and digest as they stream (on a mismatch the output is left incomplete), except the digest of
 * an unchanged blob noted with kiln_export_note_verified.
 * Errors: KILN_EINVAL (bad name, image not finalized), KILN_EDIGEST (blob size/digest differs),
 * KILN_ENOTFOUND (blob missing), KILN_ESYS. */
int kiln_export_oci_tar(const kiln_export_image *img, const char *const *names, int64_t mtime,
                        int fd, kiln_error **err);

/* Like kiln_export_oci_tar, plus a Docker manifest.json (Config, RepoTags from `names` in
 * familiar form, Layers as blobs/sha256/<hex> paths), as `docker save` >= 25 writes it: loadable
 * by `docker load` with either image store. Names must not be digest-only (KILN_EINVAL). */
int kiln_export_docker_tar(const kiln_export_image *img, const char *const *names, int64_t mtime,
                           int fd, kiln_error **err);

/* Write (or add to) an OCI image layout directory `dir` (created if missing): blobs are copied
 * unless present, index.json gets the entries of kiln_export_oci_tar (entries of an existing
 * index.json carrying one of the same ref names are replaced). Same errors plus KILN_EPARSE for a
 * malformed existing index.json. */
int kiln_export_oci_dir(const kiln_export_image *img, const char *const *names, const char *dir,
                        kiln_error **err);

/* type=local: copy the tree `src` into `dest` (created if missing), keeping modes, mtimes,
 * symlinks, hardlinks, xattrs and, when running as root, owners. KILN_ENOTFOUND, KILN_ESYS. */
int kiln_export_local(const char *src, const char *dest, kiln_error **err);

/* type=tar: a deterministic uncompressed tar of the tree `src` to fd (kiln_layer_write in
 * KILN_LAYER_FULL mode with `time`/`epoch` as in kiln_layer_opts). Same errors. */
int kiln_export_tar(const char *src, int fd, kiln_layer_time time, int64_t epoch, kiln_error **err);

/* Open `path` for an exporter's output: "-" = a dup of stdout, else created/truncated 0644.
 * *fd_out owned by the caller. KILN_ESYS. */
int kiln_export_open_output(int *fd_out, const char *path, kiln_error **err);

#endif
