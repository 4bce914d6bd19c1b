/*
 * cache.h: kiln's state store, what the cache module offers the tree (DESIGN.md §2 `cache/`).
 *
 * One state directory holds:
 *   meta.mdb/             one LMDB environment with every metadata table
 *   blobs/sha256/<hex>    the content store (immutable, verified on write)
 *   ingest/               temp files of blob writers (swept at open)
 *   snapshots/<id>/fs     a snapshot's own changes (overlay upper dir), plus work/ while active
 *   mounts/               a place for callers to mount snapshots (stale mounts swept at open)
 *   trash/                directories being deleted (swept at open)
 *
 * Keys are plain strings and results are snapshot ids, so the solver can use the store through a
 * function table without including this header. Every function is thread-safe: each call runs in
 * its own LMDB transaction (MDB_NOTLS), and several processes may open the same state dir.
 * Multi-record updates happen in one write transaction; files are put in place before the record
 * that names them is committed, so a crash leaves at worst unreferenced files, which the next
 * open sweeps.
 *
 * Error codes most functions return: KILN_ENOTFOUND (unknown key, id or digest), KILN_EINVAL
 * (malformed argument), KILN_EEXISTS (still in use), KILN_EPARSE (corrupt record), KILN_ESYS.
 */
#ifndef KILN_CACHE_CACHE_H
#define KILN_CACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/digest.h"
#include "base/error.h"

typedef struct kiln_cache kiln_cache;

/* ---- opening ---------------------------------------------------------------------------- */

typedef enum kiln_cache_snapshotter {
    KILN_CACHE_SNAPSHOTTER_AUTO = 0, /* overlay when a test mount in the state dir works */
    KILN_CACHE_SNAPSHOTTER_OVERLAY,  /* overlay, KILN_EUNSUPPORTED when it cannot mount */
    KILN_CACHE_SNAPSHOTTER_NAIVE,    /* full copies, for filesystems without overlay */
} kiln_cache_snapshotter;

typedef struct kiln_cache_opts {
    int version;                        /* KILN_CACHE_OPTS_VERSION */
    kiln_cache_snapshotter snapshotter; /* AUTO by default */
    unsigned max_depth;                 /* flatten chains deeper than this (0 = 100) */
} kiln_cache_opts;

#define KILN_CACHE_OPTS_VERSION 1
#define KILN_CACHE_OPTS_INIT                                    \
    {                                                           \
        KILN_CACHE_OPTS_VERSION, KILN_CACHE_SNAPSHOTTER_AUTO, 0 \
    }
#define KILN_CACHE_SCHEMA 1 /* on-disk schema version this code reads and writes */

/* The default state dir: /var/lib/kiln for root, else $XDG_DATA_HOME/kiln or
 * ~/.local/share/kiln. Owned by the caller; never NULL. */
char *kiln_cache_default_root(void);

/* Open (creating when missing) the state dir `root`. `opts` may be NULL. When no other process
 * has the store open, crash debris is swept first: ingest temp files, snapshot dirs and blob
 * files without a record, trash, stale mounts under `root`; and, since no build can be running,
 * every lease is released and every active snapshot or view that no image/history ref holds and
 * that has no "kiln.keep" label (e.g. a persistent cache mount) is removed.
 * *out owned by the caller (kiln_cache_free).
 * The first open records the snapshotter chosen; later opens keep it (AUTO follows the record).
 * One kiln_cache per state dir per process (LMDB's rule); it is shared by all threads.
 * Errors: KILN_EUNSUPPORTED (schema newer than KILN_CACHE_SCHEMA or unknown; overlay requested or
 * recorded but unavailable; a snapshotter other than the recorded one requested), KILN_ESYS,
 * KILN_EPARSE (corrupt meta table). */
int kiln_cache_open(kiln_cache **out, const char *root, const kiln_cache_opts *opts,
                    kiln_error **err);
/* Close the store (NULL-safe). No call may be running on it. */
void kiln_cache_free(kiln_cache *c);
/* The state dir (borrowed from c) and whether snapshots use overlay. */
const char *kiln_cache_root(const kiln_cache *c);
bool kiln_cache_uses_overlay(const kiln_cache *c);

/* ---- cache keys ------------------------------------------------------------------------- */

typedef struct kiln_cache_result {
    char *snapshot_id; /* owned */
    int64_t created;   /* unix seconds */
} kiln_cache_result;

/* Free what the struct owns (it stays reusable, zeroed). NULL members are fine. */
void kiln_cache_result_dispose(kiln_cache_result *r);
/* Record key -> committed snapshot `snapshot_id` (replacing an older result).
 * KILN_ENOTFOUND when the snapshot does not exist, KILN_EINVAL when it is not committed. */
int kiln_cache_key_put(kiln_cache *c, const char *key, const char *snapshot_id, kiln_error **err);
/* Look `key` up and mark its snapshot used now. *out filled, owned by the caller.
 * KILN_ENOTFOUND when there is no result. */
int kiln_cache_key_get(kiln_cache_result *out, kiln_cache *c, const char *key, kiln_error **err);
/* Forget `key`. KILN_ENOTFOUND when absent. */
int kiln_cache_key_delete(kiln_cache *c, const char *key, kiln_error **err);

/* ---- simple tables: images, history, content checksums ---------------------------------- */

/* Store image `name` -> descriptor JSON (a JSON object). Its "digest", when a stored blob, and
 * each target in the NULL-terminated `refs` ("blob:sha256:..." or "snapshot:<id>"; may be NULL)
 * are kept from GC until the image is deleted or replaced. KILN_EPARSE for bad JSON,
 * KILN_ENOTFOUND for a missing ref target. */
int kiln_cache_image_put(kiln_cache *c, const char *name, const char *descriptor_json,
                         const char *const *refs, kiln_error **err);
/* *out = descriptor JSON, owned by the caller. KILN_ENOTFOUND. */
int kiln_cache_image_get(char **out, kiln_cache *c, const char *name, kiln_error **err);
/* Delete image `name` and release its refs in the same transaction. KILN_ENOTFOUND. */
int kiln_cache_image_delete(kiln_cache *c, const char *name, kiln_error **err);
/* Build history records: id -> JSON object, with refs as for images; get/delete behave as the
 * image functions (get: *out owned by the caller; KILN_ENOTFOUND). */
int kiln_cache_history_put(kiln_cache *c, const char *id, const char *record_json,
                           const char *const *refs, kiln_error **err);
int kiln_cache_history_get(char **out, kiln_cache *c, const char *id, kiln_error **err);
int kiln_cache_history_delete(kiln_cache *c, const char *id, kiln_error **err);
/* One row of a document table. */
typedef struct kiln_cache_record {
    char *id;
    char *json;
} kiln_cache_record;
/* Every history record, sorted by id; *out (n rows) owned by the caller
 * (kiln_cache_records_free). */
int kiln_cache_history_list(kiln_cache_record **out, size_t *n, kiln_cache *c, kiln_error **err);
void kiln_cache_records_free(kiln_cache_record *v, size_t n);
/* Every image record (id = the image name, json = its descriptor), sorted by name, read in one
 * transaction; *out (n rows, never NULL) owned by the caller (kiln_cache_records_free). */
int kiln_cache_image_list(kiln_cache_record **out, size_t *n, kiln_cache *c, kiln_error **err);
/* Content-checksum cache (the context stat cache): opaque key (any length; long keys are stored
 * under their SHA-256) -> value bytes. get: *out owned by the caller (NUL-terminated for
 * convenience), *len_out may be NULL; KILN_ENOTFOUND. */
int kiln_cache_checksum_put(kiln_cache *c, const char *key, const void *value, size_t len,
                            kiln_error **err);
int kiln_cache_checksum_get(void **out, size_t *len_out, kiln_cache *c, const char *key,
                            kiln_error **err);
int kiln_cache_checksum_delete(kiln_cache *c, const char *key, kiln_error **err);
/* A batch of checksum-table lookups and writes for one long operation (the build-context walk):
 * lookups share one read transaction, a snapshot of the table taken at the first lookup; writes
 * stay in memory (and are seen by the batch's own lookups) until commit writes them all in one
 * transaction. One thread uses a batch at a time. *out owned by the caller (free, which drops
 * uncommitted writes; NULL-safe). */
typedef struct kiln_cache_checksum_batch kiln_cache_checksum_batch;
void kiln_cache_checksum_batch_new(kiln_cache_checksum_batch **out, kiln_cache *c);
void kiln_cache_checksum_batch_free(kiln_cache_checksum_batch *b);
/* Look `key` up: *found says whether there is a value; then *len (in: the size of buf) is the
 * value's size and min(that, buf size) bytes are copied to buf. A miss is not an error.
 * KILN_ESYS (LMDB failures), KILN_EINVAL (empty key). */
int kiln_cache_checksum_batch_get(bool *found, void *buf, size_t *len, kiln_cache_checksum_batch *b,
                                  const char *key, kiln_error **err);
/* Queue key -> value (copied; a later put of the same key replaces it). */
void kiln_cache_checksum_batch_put(kiln_cache_checksum_batch *b, const char *key, const void *value,
                                   size_t len);
/* End the read snapshot and write the queued values in one transaction (nothing to write: no
 * transaction). The batch stays usable; its next lookup sees the table as it is then. On error
 * the queued values are kept. KILN_ESYS. */
int kiln_cache_checksum_batch_commit(kiln_cache_checksum_batch *b, kiln_error **err);

/* Leases: a running build holds `lease` on snapshots and blobs it still needs, so GC keeps them.
 * A build should lease its active snapshots before committing them (the ref follows the id), and
 * write blobs with kiln_cache_blob_writer_set_lease, until a cache key or image refers to them.
 * target is "snapshot:<id>" or "blob:sha256:..." (KILN_ENOTFOUND when it does not exist).
 * Adding the same target twice is a no-op. release drops every target of the lease. */
int kiln_cache_lease_add(kiln_cache *c, const char *lease, const char *target, kiln_error **err);
/* The same for n targets in one transaction (one sync): present[i] says whether targets[i]
 * existed and is now held; a missing target is skipped, not an error. */
int kiln_cache_lease_add_many(kiln_cache *c, const char *lease, const char *const *targets,
                              size_t n, bool *present, kiln_error **err);
int kiln_cache_lease_release(kiln_cache *c, const char *lease, kiln_error **err);

/* ---- content store ---------------------------------------------------------------------- */

typedef struct kiln_cache_blob_writer kiln_cache_blob_writer;

typedef struct kiln_cache_blob_info {
    char digest[KILN_DIGEST_STRLEN + 1];
    uint64_t size;
    char *media_type; /* owned; "" when unknown */
    uint64_t refcount;
} kiln_cache_blob_info;

/* Free what the struct owns (it stays reusable, zeroed). NULL members are fine. */
void kiln_cache_blob_info_dispose(kiln_cache_blob_info *i);

/* Start writing a blob into an ingest temp file. `expected` ("sha256:...") may be NULL; when set,
 * commit verifies it. *out owned by the caller (kiln_cache_blob_writer_free). KILN_EINVAL for a
 * malformed expected digest. */
int kiln_cache_blob_writer_new(kiln_cache_blob_writer **out, kiln_cache *c, const char *expected,
                               kiln_error **err);
/* Append bytes (hashed as they go). KILN_EINVAL after commit, KILN_ESYS on write errors. */
int kiln_cache_blob_writer_write(kiln_cache_blob_writer *w, const void *data, size_t len,
                                 kiln_error **err);
/* Verify, fsync and move the blob into place, recording it (size, media type) in the same step.
 * Writing a blob that already exists succeeds. digest_out (KILN_DIGEST_STRLEN + 1 bytes) may be
 * NULL. KILN_EDIGEST when the content does not match `expected` (nothing is stored). After commit
 * (successful or not) the writer only accepts kiln_cache_blob_writer_free. */
int kiln_cache_blob_writer_commit(kiln_cache_blob_writer *w, const char *media_type,
                                  char *digest_out, kiln_error **err);
/* Make commit add the blob to lease `lease` (copied; NULL = none) in the same transaction that
 * records it, so a concurrent prune can never remove it before the caller references it. */
void kiln_cache_blob_writer_set_lease(kiln_cache_blob_writer *w, const char *lease);
/* Free the writer; an uncommitted temp file is removed. NULL-safe. */
void kiln_cache_blob_writer_free(kiln_cache_blob_writer *w);
/* Convenience: write `len` bytes as one blob. */
int kiln_cache_blob_put(kiln_cache *c, const void *data, size_t len, const char *media_type,
                        char *digest_out, kiln_error **err);
/* Open a stored blob read-only; *fd_out owned by the caller. KILN_ENOTFOUND, KILN_EINVAL. */
int kiln_cache_blob_open(int *fd_out, kiln_cache *c, const char *digest, kiln_error **err);
/* Size, media type and refcount of a stored blob; out->media_type owned by the caller. */
int kiln_cache_blob_info_get(kiln_cache_blob_info *out, kiln_cache *c, const char *digest,
                             kiln_error **err);
/* Whether a blob record exists (any error reads as false). */
bool kiln_cache_blob_exists(kiln_cache *c, const char *digest);
/* Delete a blob nothing refers to. KILN_EEXISTS when its refcount is not 0, KILN_ENOTFOUND. */
int kiln_cache_blob_delete(kiln_cache *c, const char *digest, kiln_error **err);

/* ---- snapshots -------------------------------------------------------------------------- */

typedef enum kiln_cache_snapshot_kind {
    KILN_CACHE_SNAPSHOT_ACTIVE = 1, /* writable upper dir + work dir */
    KILN_CACHE_SNAPSHOT_COMMITTED,  /* immutable */
    KILN_CACHE_SNAPSHOT_VIEW,       /* read-only use of a parent chain */
} kiln_cache_snapshot_kind;

typedef struct kiln_cache_snapshot_info {
    char id[33];
    char *parent; /* owned, NULL for a base snapshot */
    kiln_cache_snapshot_kind kind;
    uint64_t size; /* bytes of the snapshot's own changes (committed only) */
    int64_t created, last_used;
    char *blob;    /* diff blob digest or NULL; owned */
    char **labels; /* NULL-terminated key, value, key, value...; owned */
} kiln_cache_snapshot_info;

/* Free what the struct owns (it stays reusable, zeroed). NULL members are fine. */
void kiln_cache_snapshot_info_dispose(kiln_cache_snapshot_info *i);

/* The directories to mount for a snapshot (all owned; dispose frees them).
 * overlay: lower[0] is the top-most lower dir; for an active snapshot upper/work are set
 * (nlower may be 0: then mount upper alone, e.g. with a bind mount); for committed snapshots and
 * views upper/work are NULL and a single lower dir may be bind-mounted read-only.
 * naive: one dir in `lower` (committed/view) or upper only (active), holding the full tree. */
typedef struct kiln_cache_mounts {
    char **lower; /* NULL-terminated */
    size_t nlower;
    char *upper;
    char *work;
} kiln_cache_mounts;

/* Free what the struct owns (it stays reusable, zeroed). NULL members are fine. */
void kiln_cache_mounts_dispose(kiln_cache_mounts *m);

/* Create an active snapshot on top of committed `parent` (NULL for an empty base). When the chain
 * would be deeper than max_depth or its lowerdir option too long, the parent chain is flattened
 * into one committed snapshot first (transparently, remembered for reuse). id_out: 33 bytes.
 * KILN_ENOTFOUND (parent), KILN_EINVAL (parent not committed). */
int kiln_cache_snapshot_prepare(char *id_out, kiln_cache *c, const char *parent, kiln_error **err);
/* A read-only view of committed `parent` (must be set): a snapshot record with kind VIEW. */
int kiln_cache_snapshot_view(char *id_out, kiln_cache *c, const char *parent, kiln_error **err);
/* Make active snapshot `id` committed (immutable), measuring its size. KILN_EINVAL when it is
 * not active. */
int kiln_cache_snapshot_commit(kiln_cache *c, const char *id, kiln_error **err);
/* Remove a snapshot and its files. KILN_EEXISTS when still referenced (children, cache keys,
 * images, history or leases). */
int kiln_cache_snapshot_remove(kiln_cache *c, const char *id, kiln_error **err);
/* Describe snapshot `id`; *out's members owned by the caller (dispose). KILN_ENOTFOUND,
 * KILN_EINVAL (malformed id), KILN_EPARSE (corrupt record). */
int kiln_cache_snapshot_info_get(kiln_cache_snapshot_info *out, kiln_cache *c, const char *id,
                                 kiln_error **err);
/* The directories to mount for snapshot `id` (see kiln_cache_mounts); *out owned by the caller.
 * The caller mounts them (e.g. under <root>/mounts) and unmounts before removing the snapshot. */
int kiln_cache_snapshot_mounts(kiln_cache_mounts *out, kiln_cache *c, const char *id,
                               kiln_error **err);
/* Attach a label (value NULL removes it). */
int kiln_cache_snapshot_set_label(kiln_cache *c, const char *id, const char *key, const char *value,
                                  kiln_error **err);
/* Record the diff blob of committed snapshot `id` (the blob must be stored; refcounted). */
int kiln_cache_snapshot_set_blob(kiln_cache *c, const char *id, const char *digest,
                                 kiln_error **err);

/* Diff access: walk snapshot `id`'s own changes in sorted order (parents before children). */
typedef enum kiln_cache_change_kind {
    KILN_CACHE_CHANGE_ADD_OR_MODIFY = 1, /* entry exists in this snapshot */
    KILN_CACHE_CHANGE_DELETE,            /* whiteout: the path was removed */
    KILN_CACHE_CHANGE_OPAQUE_DIR,        /* a directory replacing the lower one entirely */
} kiln_cache_change_kind;

struct stat;
/* path: relative ("etc/passwd"); full: absolute path of the entry (NULL for deletions); st: its
 * lstat (NULL for deletions). All borrowed for the call. A non-zero return stops the walk and is
 * returned by kiln_cache_snapshot_diff (set *err when returning a negative code). */
typedef int (*kiln_cache_diff_fn)(kiln_cache_change_kind kind, const char *path, const char *full,
                                  const struct stat *st, void *payload, kiln_error **err);
/* With overlay the snapshot's own change dir is walked (whiteouts and opaque dirs reported as
 * such); with the naive snapshotter its full tree is compared with its parent's (deletions are
 * reported, opaque dirs never are). A view has no changes. The snapshot must not be modified
 * during the walk. */
int kiln_cache_snapshot_diff(kiln_cache *c, const char *id, kiln_cache_diff_fn fn, void *payload,
                             kiln_error **err);

/* ---- GC, prune, du ---------------------------------------------------------------------- */

typedef struct kiln_cache_usage {
    char *kind;    /* "snapshot", "blob" or "key"; owned */
    char *id;      /* snapshot id, digest or cache key; owned */
    uint64_t size; /* bytes freed when removed (0 for keys) */
    int64_t last_used;
    bool in_use; /* referenced by an image, history record, lease or active snapshot */
} kiln_cache_usage;

typedef struct kiln_cache_usage_list {
    kiln_cache_usage *items;
    size_t len;
    uint64_t total; /* sum of sizes */
} kiln_cache_usage_list;

/* Free what the struct owns (it stays reusable, zeroed). NULL members are fine. */
void kiln_cache_usage_list_dispose(kiln_cache_usage_list *l);

typedef struct kiln_cache_prune_opts {
    bool all;              /* also prune snapshots labelled "kiln.internal" */
    uint64_t keep_storage; /* stop once the store holds at most this many bytes (0 = no limit) */
    int64_t until;         /* seconds: only cache records unused for this long (0 = any age) */
    bool dry_run;          /* report, do not delete */
} kiln_cache_prune_opts;

/* Usage per record (snapshots and blobs), sorted by kind and id; *out owned by the caller. */
int kiln_cache_du(kiln_cache_usage_list *out, kiln_cache *c, kiln_error **err);
/* Remove cache key records selected by opts (least recently used first) and then every snapshot
 * and blob no longer reachable from a cache key, image, history record, lease, active snapshot or
 * view. Nothing still referenced is removed; a blob just written and not yet referenced is not
 * referenced, so hold a lease on it until it is. Serialised across processes by <root>/gc.lock.
 * *out (owned by the caller) lists what was (dry run: would be) freed, sorted by kind and id.
 * KILN_EPARSE when a record is corrupt (prune never guesses: run fsck). */
int kiln_cache_prune(kiln_cache_usage_list *out, kiln_cache *c, const kiln_cache_prune_opts *opts,
                     kiln_error **err);

/* ---- consistency ------------------------------------------------------------------------ */

typedef struct kiln_cache_fsck_report {
    char **problems; /* NULL-terminated, one line each; owned */
    size_t len;
} kiln_cache_fsck_report;

/* Free what the struct owns (it stays reusable, zeroed). NULL members are fine. */
void kiln_cache_fsck_report_dispose(kiln_cache_fsck_report *r);
/* Check every record: files exist, parents exist, refcounts match, records parse; with `deep`
 * also re-hash every blob. Problems go to *out (an empty list means consistent); the return code
 * is for failures to check (KILN_ESYS). */
int kiln_cache_fsck(kiln_cache_fsck_report *out, kiln_cache *c, bool deep, kiln_error **err);

#endif
