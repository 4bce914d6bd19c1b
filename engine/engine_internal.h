/*
 * engine_internal.h: what the files of engine/ share: the engine struct, results (refcounted
 * handles around committed snapshot ids), the per-vertex op payload, snapshot access helpers
 * (engine_snap.c) and the op implementations (op_source.c, op_file.c, op_exec.c).
 */
#ifndef KILN_ENGINE_ENGINE_INTERNAL_H
#define KILN_ENGINE_ENGINE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "base/digest.h"
#include "base/error.h"
#include "cache/cache.h"
#include "kiln/engine.h"
#include "llb/llb.h"
#include "oci/oci.h"
#include "solver/solver.h"

struct kiln_engine {
    kiln_cache *cache;
    kiln_solver *solver;
    char *lease;     /* holds every snapshot this engine committed until a key refers to it */
    char *mountdir;  /* <root>/mounts: where snapshots are mounted for ops */
    char *cachedirs; /* <root>/cache-mounts: persistent RUN --mount=type=cache dirs */
    char *gitdir;    /* <root>/git: bare mirrors of git sources, shared by builds */
    char *localdir;  /* <root>/local: the last snapshot of each build context (op_source.c) */
};

/* A result: one committed snapshot. The solver holds references through result_ref/unref. */
struct kiln_solver_result {
    atomic_int refs;
    char id[33];
};

/* The op payload of one vertex: its own decoded copy of the op (the graph is freed after the
 * solve, the solver may keep the vertex longer), plus what the op needs from the solve request. */
typedef struct engine_op {
    kiln_engine *engine;
    Pb__Op *op;      /* owned (pb__op__free_unpacked) */
    char *local_dir; /* local:// sources: the host directory; owned */
    /* git and http sources (op_remote.c), set while the cache map is computed: */
    char *resolved; /* git: the commit; http: "<sha256> <filename>" of the download; owned */
    char *staged;   /* http: the staging directory holding the download; owned, removed */
    /* exec ops with secret or ssh mounts: copies of what the solve request gave */
    kiln_engine_secret *secrets; /* ids, data owned */
    size_t n_secrets;
    kiln_engine_ssh *ssh; /* strings owned */
    size_t n_ssh;
    bool allow_insecure; /* the solve granted security.insecure */
} engine_op;

/* ---- results (engine.c) ---- */

/* A new result with one reference for the committed snapshot `id`. */
kiln_solver_result *engine_result_new(const char *id);
void engine_result_unref(kiln_solver_result *r);

/* Keep committed snapshot `id` from GC while this engine is open, until a cache key refers to
 * it (errors are logged). Active snapshots need no lease: GC never removes them, and an
 * aborted one must stay removable. */
void engine_hold(kiln_engine *e, const char *id);

/* ---- build history (engine_history.c) ---- */

/* Record a finished solve (s may be NULL when it never started; failure NULL = success). Errors
 * are logged. */
void engine_history_record(kiln_engine *e, const char *name, int64_t wall_start_ns,
                           const kiln_build_summary *s, const char *result_id,
                           const kiln_error *failure);

/* ---- snapshot access (engine_snap.c) ---- */

/* A read-only directory showing the whole tree of a committed snapshot. */
typedef struct engine_view {
    char *path;   /* the tree; owned */
    bool mounted; /* path is an overlay mount we made */
    bool temp;    /* path is an empty temp dir (scratch) */
} engine_view;

/* Open a view of committed snapshot `id` (NULL or "" = scratch, an empty dir). KILN_ENOTFOUND,
 * KILN_ESYS. Close with engine_view_close (always, also after errors: it is idempotent). */
int engine_view_open(engine_view *v, kiln_engine *e, const char *id, kiln_error **err);
void engine_view_close(engine_view *v);

/* A writable snapshot on top of committed `parent` (NULL = empty), mounted at `path`. */
typedef struct engine_rw {
    char id[33];
    char *path;   /* the merged tree; owned */
    bool mounted; /* path is an overlay mount we made */
    bool active;  /* the snapshot exists and is not committed yet */
} engine_rw;

/* Prepare and mount. KILN_ENOTFOUND, KILN_ESYS. */
int engine_rw_open(engine_rw *w, kiln_engine *e, const char *parent, kiln_error **err);
/* Prepare without mounting (the executor mounts it): *m = its directories (owned by the
 * caller, also on error). The path member stays NULL. */
int engine_rw_prepare(engine_rw *w, kiln_cache_mounts *m, kiln_engine *e, const char *parent,
                      kiln_error **err);
/* Unmount and commit; *out = a new result. */
int engine_rw_commit(kiln_solver_result **out, engine_rw *w, kiln_engine *e, kiln_error **err);
/* Unmount and remove an uncommitted snapshot (no-op after commit). */
void engine_rw_abort(engine_rw *w, kiln_engine *e);

/* Whether a path holds a glob character (*, ?, [). */
bool engine_has_glob(const char *s);
/* The host paths matching `pattern` (absolute in the snapshot; wildcards only in its last
 * element, KILN_EUNSUPPORTED otherwise) inside view root `root`, sorted; pushed to `out` (a
 * string vector). No match is not an error. */
struct kiln_vec;
int engine_glob_in_root(struct kiln_vec *out, const char *root, const char *pattern,
                        kiln_error **err);

/* Digest "xxh128:<hex>" of the paths listed in `selector` (newline-separated, absolute, glob
 * wildcards allowed in the last element) inside view root `root`. *out owned. */
int engine_content_digest(char **out, const char *root, const char *selector, kiln_error **err);

/* ---- ops ---- */

/* Cache map extras and execution for each op kind. `extra` receives a string folded into the
 * cache map base (NULL when the op's bytes say everything). */
int engine_source_cache_extra(char **extra, const engine_op *eop, kiln_error **err);
int engine_source_exec(kiln_solver_result **out, const engine_op *eop, kiln_op_ctx *ctx,
                       kiln_error **err);
/* git:// and http(s):// sources (op_remote.c); dispose frees what they keep in eop. */
bool engine_remote_source(const char *identifier);
int engine_remote_cache_extra(char **extra, const engine_op *eop, kiln_error **err);
int engine_remote_exec(kiln_solver_result **out, const engine_op *eop, kiln_error **err);
void engine_remote_dispose(engine_op *eop);
/* Images (op_source.c, op_image.c): open layer `d` for reading (*fd owned by the caller). */
struct kiln_oci_descriptor;
struct kiln_oci_manifest;
struct kiln_oci_config;
typedef int (*engine_layer_open_fn)(int *fd, const struct kiln_oci_descriptor *d, void *payload,
                                    kiln_error **err);
/* Apply the layers of manifest m (checked against cfg's diff_ids) onto a chain of snapshots,
 * reusing the snapshot recorded for each chain id; id_out (33 bytes) = the top one, "" when the
 * image has no layers. */
int engine_unpack_layers(char *id_out, kiln_engine *e, const struct kiln_oci_manifest *m,
                         const struct kiln_oci_config *cfg, engine_layer_open_fn open_layer,
                         void *payload, kiln_op_ctx *ctx, kiln_error **err);
/* *out = a result for snapshot `id`, or for a new empty snapshot when id is "". */
int engine_image_result(kiln_solver_result **out, kiln_engine *e, const char *id, kiln_error **err);
/* The config JSON (*config owned, NUL-terminated) and manifest digest (KILN_DIGEST_STRLEN + 1
 * bytes) of an oci-layout:// identifier (op_source.c) or a registry reference (op_image.c). */
int engine_layout_config(char **config, char *digest_out, const char *identifier, kiln_error **err);
int engine_image_config(char **config, char *digest_out, kiln_engine *e, const char *ref,
                        kiln_error **err);
/* docker-image:// sources (op_image.c). */
int engine_image_cache_extra(char **extra, const engine_op *eop, kiln_error **err);
int engine_image_exec(kiln_solver_result **out, const engine_op *eop, kiln_op_ctx *ctx,
                      kiln_error **err);
int engine_file_selectors(kiln_cache_map *cm, const engine_op *eop, kiln_error **err);
int engine_file_exec(kiln_solver_result **out, const engine_op *eop,
                     kiln_solver_result *const *inputs, kiln_error **err);
unsigned engine_exec_noutputs(const Pb__ExecOp *ex);
int engine_exec_exec(kiln_solver_result **outputs, const engine_op *eop,
                     kiln_solver_result *const *inputs, kiln_op_ctx *ctx, kiln_error **err);
void engine_exec_cancel(kiln_op_ctx *ctx);
/* MergeOp and DiffOp (op_merge.c). */
int engine_merge_exec(kiln_solver_result **out, const engine_op *eop,
                      kiln_solver_result *const *inputs, kiln_error **err);

/* ---- images (image_export.c, image_store.c, image_remote.c) ---- */

/* An image of the local store: its manifest and config bytes as stored in the content store. */
struct kiln_engine_image {
    char digest[KILN_DIGEST_STRLEN + 1];        /* manifest */
    char config_digest[KILN_DIGEST_STRLEN + 1]; /* image id */
    char *manifest_json;                        /* exact bytes, NUL-terminated; owned */
    size_t manifest_len;
    char *config_json; /* exact bytes, NUL-terminated; owned */
    size_t config_len;
    struct kiln_oci_manifest *manifest; /* parsed; owned */
    char snapshot[33];                  /* top snapshot of its layers, "" when unknown */
    int64_t size;                       /* manifest + config + layer blobs */
    int64_t created;                    /* config `created`, Unix seconds, 0 = unknown */
};

/* Snapshot labels the image code keeps on layer snapshots: "kiln.diffid:<blob digest>" = the
 * diffID of that blob of the snapshot's changes; "kiln.blob.<gzip|zstd|none>[@<epoch>]" = a
 * blob written in that compression (and timestamp clamp) besides the recorded one;
 * "kiln.layer.source" = "image" for layers unpacked from an image (their blob is the original). */
#define ENGINE_LABEL_DIFFID       "kiln.diffid:"
#define ENGINE_LABEL_LAYER_SOURCE "kiln.layer.source"

/* Store `len` bytes as a blob under the engine's lease; digest_out: KILN_DIGEST_STRLEN + 1. */
int engine_blob_put(char *digest_out, kiln_engine *e, const void *data, size_t len,
                    const char *media_type, kiln_error **err);
/* The compression of stored blob `digest`, from its magic bytes (image_export.c). */
int engine_blob_compression(kiln_oci_compression *out, kiln_engine *e, const char *digest,
                            kiln_error **err);
/* Read blob `digest` from the content store (at most max bytes; *out owned, NUL-terminated). */
int engine_blob_read(char **out, size_t *len_out, kiln_engine *e, const char *digest, size_t max,
                     kiln_error **err);
/* *out = the image whose manifest blob is `digest` (manifest, config read from the store);
 * `snapshot` (may be NULL) = its known top snapshot. KILN_ENOTFOUND, KILN_EPARSE. */
int engine_image_from_store(struct kiln_engine_image **out, kiln_engine *e, const char *digest,
                            const char *snapshot, kiln_error **err);
/* The local store's image named `ref` (normalised), or KILN_ENOTFOUND. */
int engine_image_lookup_local(struct kiln_engine_image **out, kiln_engine *e, const char *ref,
                              kiln_error **err);
/* engine_layer_open_fn for layers already in the content store (payload: the engine). */
int engine_store_open_layer(int *fd, const struct kiln_oci_descriptor *d, void *payload,
                            kiln_error **err);
/* Unpack img's layers from the content store into snapshots; id_out as engine_unpack_layers. */
int engine_image_unpack(char *id_out, kiln_engine *e, const struct kiln_engine_image *img,
                        kiln_op_ctx *ctx, kiln_error **err);
/* Name img `ref` in the store (normalised; unlike kiln_engine_image_tag a digest is allowed). */
int engine_image_tag_ref(kiln_engine *e, const struct kiln_engine_image *img, const char *ref,
                         kiln_error **err);
/* Pull `ref` (host platform) from its registry: manifest, config and layers into the content
 * store under the engine's lease; manifest_digest_out: KILN_DIGEST_STRLEN + 1 (op_image.c). */
int engine_registry_pull(char *manifest_digest_out, kiln_engine *e, const char *ref,
                         kiln_error **err);

#endif
