/*
 * cache_internal.h: shared state and helpers of the cache module's files (store, content,
 * snapshot, gc, fsck). Never included outside cache/ (and its tests).
 */
#ifndef KILN_CACHE_CACHE_INTERNAL_H
#define KILN_CACHE_CACHE_INTERNAL_H

#include <jansson.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/cache.h"

typedef enum cache_db {
    CACHE_DB_META = 0, /* "schema" -> decimal version */
    CACHE_DB_KEYS,     /* cache key -> {"snapshot","created"} */
    CACHE_DB_SNAPSHOTS,
    CACHE_DB_BLOBS,     /* digest -> {"size","media_type","refs"} */
    CACHE_DB_IMAGES,    /* name -> descriptor JSON */
    CACHE_DB_HISTORY,   /* id -> record JSON */
    CACHE_DB_CHECKSUMS, /* key -> bytes */
    CACHE_DB_REFS,      /* dupsort: owner ("image:n", "history:i", "lease:l") -> target */
    CACHE_DB_COUNT,
} cache_db;

#define CACHE_SPARE_READERS 4

struct kiln_cache {
    char *root;
    MDB_env *env;
    MDB_dbi dbi[CACHE_DB_COUNT];
    int lock_fd;  /* flock(LOCK_SH) held while open; LOCK_EX while sweeping */
    bool overlay; /* snapshotter */
    unsigned max_depth;
    /* Reset read-only transactions kept for kiln_cache__read_begin: renewing one skips the
     * allocation and the reader-table lock of a new one (a lookup per file of a build context). */
    pthread_mutex_t spare_lock;
    MDB_txn *spare[CACHE_SPARE_READERS];
    size_t nspare;
};

/* A decoded snapshot record. */
typedef struct cache_snap {
    char *parent;
    kiln_cache_snapshot_kind kind;
    uint64_t size;
    int64_t created, last_used;
    char *blob;
    char *flat;     /* committed snapshot holding this chain flattened, or NULL */
    json_t *labels; /* object, owned */
} cache_snap;

typedef struct cache_blob {
    uint64_t size;
    char *media_type;
    uint64_t refs;
} cache_blob;

/* Translate an LMDB return code once (STYLE.md B3): MDB_NOTFOUND -> KILN_ENOTFOUND,
 * MDB_MAP_FULL -> KILN_ESYS(ENOSPC), MDB_VERSION_MISMATCH/INVALID/CORRUPTED -> KILN_EPARSE or
 * KILN_EUNSUPPORTED, errno values -> KILN_ESYS. */
int kiln_error_from_mdb(kiln_error **err, int rc, const char *fmt, ...) KILN_PRINTF(3, 4);

void kiln_cache__txn_abort(MDB_txn **t);
#define cleanup_mdb_txn __attribute__((cleanup(kiln_cache__txn_abort)))

int kiln_cache__txn_begin(MDB_txn **out, kiln_cache *c, bool write, kiln_error **err);
/* A read-only transaction for a short lookup, renewed from a spare handle when there is one;
 * end it with kiln_cache__read_end (not abort), which keeps the handle for the next lookup. */
int kiln_cache__read_begin(MDB_txn **out, kiln_cache *c, kiln_error **err);
void kiln_cache__read_end(kiln_cache *c, MDB_txn *t);
/* Commit and clear *t (the cleanup then does nothing). */
int kiln_cache__txn_commit(MDB_txn **t, kiln_error **err);
/* Get: *out borrowed until the txn ends. KILN_ENOTFOUND naming `what`. */
int kiln_cache__get(MDB_val *out, MDB_txn *t, kiln_cache *c, cache_db db, const char *key,
                    const char *what, kiln_error **err);
/* Call fn(key, value, payload, err) for every row of table db in key order (every duplicate of
 * a DUPSORT table too), keys as C strings; values are borrowed for the call. Stops at and returns
 * fn's first negative return. Read-only: fn must not change db. */
typedef int (*kiln_cache__scan_fn)(const char *key, const MDB_val *v, void *payload,
                                   kiln_error **err);
int kiln_cache__scan(MDB_txn *t, kiln_cache *c, cache_db db, kiln_cache__scan_fn fn, void *payload,
                     kiln_error **err);
int kiln_cache__put(MDB_txn *t, kiln_cache *c, cache_db db, const char *key, const void *data,
                    size_t len, kiln_error **err);
/* Delete; a missing key is KILN_ENOTFOUND naming `what`. */
int kiln_cache__del(MDB_txn *t, kiln_cache *c, cache_db db, const char *key, const char *what,
                    kiln_error **err);

/* Records (cache_records.c). Decoders treat LMDB data as untrusted: KILN_EPARSE naming the id. */
int kiln_cache__snap_decode(cache_snap *out, const MDB_val *v, const char *id, kiln_error **err);
char *kiln_cache__snap_encode(const cache_snap *s);
void kiln_cache__snap_dispose(cache_snap *s);
int kiln_cache__snap_load(cache_snap *out, MDB_txn *t, kiln_cache *c, const char *id,
                          kiln_error **err);
int kiln_cache__snap_store(MDB_txn *t, kiln_cache *c, const char *id, const cache_snap *s,
                           kiln_error **err);
int kiln_cache__blob_decode(cache_blob *out, const MDB_val *v, const char *digest,
                            kiln_error **err);
int kiln_cache__blob_load(cache_blob *out, MDB_txn *t, kiln_cache *c, const char *digest,
                          kiln_error **err);
int kiln_cache__blob_store(MDB_txn *t, kiln_cache *c, const char *digest, const cache_blob *b,
                           kiln_error **err);
void kiln_cache__blob_dispose(cache_blob *b);
/* Decode a key record {"snapshot","created"}. */
int kiln_cache__key_decode(kiln_cache_result *out, const MDB_val *v, const char *key,
                           kiln_error **err);
/* Adjust a blob's refcount by delta (+1/-1) inside t. KILN_ENOTFOUND for an unknown blob. */
int kiln_cache__blob_ref(MDB_txn *t, kiln_cache *c, const char *digest, int delta,
                         kiln_error **err);

/* Refs table: add owner -> target (validating the target exists, counting blob refs), or drop
 * every target of owner. */
int kiln_cache__ref_add(MDB_txn *t, kiln_cache *c, const char *owner, const char *target,
                        kiln_error **err);
int kiln_cache__ref_drop_owner(MDB_txn *t, kiln_cache *c, const char *owner, kiln_error **err);

/* Paths (owned by the caller). */
char *kiln_cache__blob_path(const kiln_cache *c, const char *digest);
char *kiln_cache__snap_dir(const kiln_cache *c, const char *id);
/* Random lowercase hex id (2 * nbytes chars + NUL into out). */
void kiln_cache__random_hex(char *out, size_t nbytes);
bool kiln_cache__valid_id(const char *id);
int64_t kiln_cache__now(void);

/* Snapshot directories: move to trash (fast, within a txn) and empty the trash. */
int kiln_cache__trash_dir(kiln_cache *c, const char *dir, kiln_error **err);
void kiln_cache__empty_trash(kiln_cache *c);

/* Sum of the sizes of a tree's non-directory entries (hard links counted once). */
int kiln_cache__tree_size(uint64_t *out, const char *dir, kiln_error **err);
/* Apply an overlay layer dir on top of dst: whiteouts delete, opaque dirs replace, everything
 * else is copied (mode, owner, times, xattrs other than overlay's). */
int kiln_cache__apply_layer(const char *layer, const char *dst, kiln_error **err);

/* A literal copy of src into dst (whiteout-looking devices are kept), for the naive snapshotter. */
int kiln_cache__copy_tree(const char *src, const char *dst, kiln_error **err);
/* Walk `dir` (a snapshot's change dir) in sorted order reporting changes to fn. */
int kiln_cache__diff_walk(const char *dir, kiln_cache_diff_fn fn, void *payload, kiln_error **err);

/* Compare two full trees (old may be NULL: everything in cur is new), reporting what changed
 * from old to cur in sorted order: new or changed entries (type, mode, owner, size, mtime, device,
 * link target) and names only in old as deletions. For the naive snapshotter. */
int kiln_cache__diff_trees(const char *cur, const char *old, kiln_cache_diff_fn fn, void *payload,
                           kiln_error **err);

/* Sweep crash debris (cache_fsck.c); called at open with the exclusive lock. */
int kiln_cache__sweep(kiln_cache *c, kiln_error **err);

#endif
