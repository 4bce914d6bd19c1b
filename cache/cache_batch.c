/*
 * cache_batch.c: batched access to the checksum table, for the build-context walk.
 *
 * kiln_cache_checksum_get/put run one transaction per call: a reader-slot round trip per lookup,
 * and a durable commit (an fsync) per new hash, i.e. a cold walk of a 20,000-file context spent
 * seconds in fsync. A batch reads through one read transaction (a snapshot taken at its first
 * lookup) and keeps writes in memory until kiln_cache_checksum_batch_commit writes them all in one
 * write transaction. Lookups see the batch's own pending writes first.
 */
#include <lmdb.h>

#include "base/base.h"
#include "base/map.h"
#include "cache/cache_internal.h"

struct kiln_cache_checksum_batch {
    kiln_cache *c;
    MDB_txn *rt;      /* read transaction, from the first lookup until commit or free */
    MDB_cursor *cur;  /* on rt: lookups in key order (a walk's) mostly stay on its leaf page */
    kiln_map pending; /* stored key -> pending_value * */
};

typedef struct pending_value {
    size_t len;
    unsigned char data[];
} pending_value;

/* The key as the checksum table stores it: as given up to 400 bytes, else its SHA-256 (the same
 * rule as cache_tables.c, so batched and single calls find each other's rows), put in *owned
 * (freed by the caller). */
static const char *
stored_key(char **owned, const char *key)
{
    kiln_sha256 sum;
    *owned = NULL;
    if (strlen(key) <= 400)
        return key;
    kiln_sha256_buf(&sum, key, strlen(key));
    *owned = kiln_digest_str(&sum);
    return *owned;
}

void
kiln_cache_checksum_batch_new(kiln_cache_checksum_batch **out, kiln_cache *c)
{
    kiln_cache_checksum_batch *b = xnew(kiln_cache_checksum_batch);
    b->c = c;
    b->pending = (kiln_map)KILN_MAP_INIT;
    *out = b;
}

static void
end_read(kiln_cache_checksum_batch *b)
{
    if (b->cur)
        mdb_cursor_close(b->cur);
    b->cur = NULL;
    if (b->rt)
        mdb_txn_abort(b->rt);
    b->rt = NULL;
}

void
kiln_cache_checksum_batch_free(kiln_cache_checksum_batch *b)
{
    if (!b)
        return;
    end_read(b);
    kiln_map_dispose(&b->pending, free);
    free(b);
}

static void
copy_out(void *buf, size_t *len, const void *data, size_t n)
{
    memcpy(buf, data, n < *len ? n : *len);
    *len = n;
}

int
kiln_cache_checksum_batch_get(bool *found, void *buf, size_t *len, kiln_cache_checksum_batch *b,
                              const char *key, kiln_error **err)
{
    cleanup_free char *owned = NULL;
    const char *k = stored_key(&owned, key);
    /* a warm rescan queues nothing: no need to hash the key for the map */
    const pending_value *p = b->pending.len ? kiln_map_get(&b->pending, k) : NULL;
    MDB_val mk = {strlen(k), (void *)k}, v;
    int rc;
    *found = false;
    if (p) {
        copy_out(buf, len, p->data, p->len);
        *found = true;
        return 0;
    }
    if (mk.mv_size == 0)
        return kiln_error_set(err, KILN_EINVAL, "empty checksum key");
    if (!b->rt) {
        rc = kiln_cache__txn_begin(&b->rt, b->c, false, err);
        if (rc < 0)
            return rc;
        rc = mdb_cursor_open(b->rt, b->c->dbi[CACHE_DB_CHECKSUMS], &b->cur);
        if (rc != 0) {
            end_read(b);
            return kiln_error_from_mdb(err, rc, "open checksum cursor");
        }
    }
    /* a positioned cursor first looks at its own leaf page (LMDB's mdb_cursor_set), so keys
     * looked up in order skip the descent from the root that mdb_get makes every time */
    rc = mdb_cursor_get(b->cur, &mk, &v, MDB_SET);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "read checksum `%s`", k);
    copy_out(buf, len, v.mv_data, v.mv_size);
    *found = true;
    return 0;
}

void
kiln_cache_checksum_batch_put(kiln_cache_checksum_batch *b, const char *key, const void *value,
                              size_t len)
{
    cleanup_free char *owned = NULL;
    const char *k = stored_key(&owned, key);
    pending_value *p = xmalloc(sizeof(*p) + (len ? len : 1));
    p->len = len;
    if (len)
        memcpy(p->data, value, len);
    free(kiln_map_put(&b->pending, k, p));
}

int
kiln_cache_checksum_batch_commit(kiln_cache_checksum_batch *b, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    int ret = 0;
    end_read(b);
    if (b->pending.len == 0)
        return 0;
    ret = kiln_cache__txn_begin(&t, b->c, true, err);
    kiln_map_foreach(&b->pending, e) {
        const pending_value *p = e->value;
        if (ret == 0)
            ret = kiln_cache__put(t, b->c, CACHE_DB_CHECKSUMS, e->key, p->data, p->len, err);
    }
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    if (ret < 0)
        return kiln_error_wrap(err, "write %zu checksums", b->pending.len);
    kiln_map_dispose(&b->pending, free);
    b->pending = (kiln_map)KILN_MAP_INIT;
    return 0;
}
