/*
 * cache_tables.c: the simple tables of the state store: cache keys -> results, images, build
 * history, the content-checksum cache, and the refs table that keeps snapshots and blobs alive
 * for images, history records and leases of running builds.
 *
 * Refs are rows owner -> target in a DUPSORT table ("image:<name>" -> "blob:sha256:..."). A blob
 * target also counts in the blob record's refcount, updated in the same transaction.
 */
#define KILN_LOG_DOMAIN "cache"

#include "base/base.h"
#include "base/digest.h"
#include "base/json.h"
#include "base/vec.h"
#include "cache/cache_internal.h"

#define DOC_MAX (4u << 20)

/* ---- refs ----------------------------------------------------------------------------- */

static int
check_target(MDB_txn *t, kiln_cache *c, const char *target, kiln_error **err)
{
    MDB_val v;

    if (kiln_str_has_prefix(target, "blob:")) {
        if (!kiln_digest_valid(target + 5))
            return kiln_error_set(err, KILN_EINVAL, "invalid ref target `%s`", target);
        return kiln_cache__get(&v, t, c, CACHE_DB_BLOBS, target + 5, "blob", err);
    }
    if (kiln_str_has_prefix(target, "snapshot:")) {
        if (!kiln_cache__valid_id(target + 9))
            return kiln_error_set(err, KILN_EINVAL, "invalid ref target `%s`", target);
        return kiln_cache__get(&v, t, c, CACHE_DB_SNAPSHOTS, target + 9, "snapshot", err);
    }
    return kiln_error_set(err, KILN_EINVAL,
                          "ref target `%s`: expected `blob:<digest>` or `snapshot:<id>`", target);
}

int
kiln_cache__ref_add(MDB_txn *t, kiln_cache *c, const char *owner, const char *target,
                    kiln_error **err)
{
    MDB_val k = {strlen(owner), (void *)owner};
    MDB_val v = {strlen(target), (void *)target};
    int rc, ret = check_target(t, c, target, err);

    if (ret < 0)
        return ret;
    if (k.mv_size == 0 || k.mv_size > 511)
        return kiln_error_set(err, KILN_EINVAL, "ref owner of %zu bytes", k.mv_size);
    rc = mdb_put(t, c->dbi[CACHE_DB_REFS], &k, &v, MDB_NODUPDATA);
    if (rc == MDB_KEYEXIST)
        return 0;
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "add ref `%s` -> `%s`", owner, target);
    if (kiln_str_has_prefix(target, "blob:"))
        return kiln_cache__blob_ref(t, c, target + 5, +1, err);
    return 0;
}

int
kiln_cache__ref_drop_owner(MDB_txn *t, kiln_cache *c, const char *owner, kiln_error **err)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {strlen(owner), (void *)owner};
    MDB_val v;
    int rc, ret = 0;

    rc = mdb_cursor_open(t, c->dbi[CACHE_DB_REFS], &cur);
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "open refs cursor");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    while (rc == 0 && ret == 0) {
        cleanup_free char *target = xstrndup(v.mv_data, v.mv_size);
        if (kiln_str_has_prefix(target, "blob:")) {
            ret = kiln_cache__blob_ref(t, c, target + 5, -1, err);
            if (ret == KILN_ENOTFOUND) { /* a missing blob: fsck reports it; keep going */
                kiln_error_free(err);
                ret = 0;
            }
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    }
    mdb_cursor_close(cur);
    if (ret < 0)
        return ret;
    if (rc != MDB_NOTFOUND && rc != 0)
        return kiln_error_from_mdb(err, rc, "read refs of `%s`", owner);
    k.mv_size = strlen(owner);
    k.mv_data = (void *)owner;
    rc = mdb_del(t, c->dbi[CACHE_DB_REFS], &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return kiln_error_from_mdb(err, rc, "drop refs of `%s`", owner);
    return 0;
}

/* ---- cache keys ----------------------------------------------------------------------- */

int
kiln_cache_key_put(kiln_cache *c, const char *key, const char *snapshot_id, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_json json_t *o = json_object();
    cleanup_free char *enc = NULL;
    cache_snap s = {0};
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret < 0)
        return ret;
    ret = kiln_cache__snap_load(&s, t, c, snapshot_id, err);
    if (ret < 0)
        return kiln_error_wrap(err, "cache key `%s`", key);
    if (s.kind != KILN_CACHE_SNAPSHOT_COMMITTED) {
        kiln_cache__snap_dispose(&s);
        return kiln_error_set(err, KILN_EINVAL, "cache key `%s`: snapshot %s is not committed", key,
                              snapshot_id);
    }
    kiln_cache__snap_dispose(&s);
    json_object_set_new(o, "snapshot", json_string(snapshot_id));
    json_object_set_new(o, "created", json_integer(kiln_cache__now()));
    enc = kiln_json_dump_canonical(o);
    ret = kiln_cache__put(t, c, CACHE_DB_KEYS, key, enc, strlen(enc), err);
    if (ret < 0)
        return ret;
    return kiln_cache__txn_commit(&t, err);
}

int
kiln_cache_key_get(kiln_cache_result *out, kiln_cache *c, const char *key, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    kiln_cache_result r = {0};
    cache_snap s = {0};
    MDB_val v;
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret < 0)
        return ret;
    ret = kiln_cache__get(&v, t, c, CACHE_DB_KEYS, key, "cache key", err);
    if (ret == 0)
        ret = kiln_cache__key_decode(&r, &v, key, err);
    if (ret == 0)
        ret = kiln_cache__snap_load(&s, t, c, r.snapshot_id, err);
    if (ret == 0) {
        s.last_used = kiln_cache__now();
        ret = kiln_cache__snap_store(t, c, r.snapshot_id, &s, err);
    }
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    kiln_cache__snap_dispose(&s);
    if (ret < 0) {
        kiln_cache_result_dispose(&r);
        return ret;
    }
    *out = r;
    return 0;
}

int
kiln_cache_key_delete(kiln_cache *c, const char *key, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret == 0)
        ret = kiln_cache__del(t, c, CACHE_DB_KEYS, key, "cache key", err);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    return ret;
}

/* ---- images and history: JSON documents with refs --------------------------------------- */

static int
doc_put(kiln_cache *c, cache_db db, const char *what, const char *name, const char *json,
        const char *const *refs, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_json json_t *doc = NULL;
    cleanup_free char *owner = xasprintf("%s:%s", what, name);
    cleanup_free char *label = xasprintf("%s `%s`", what, name);
    const char *digest = NULL;
    MDB_val v;
    int ret = kiln_json_parse(&doc, json, strlen(json), DOC_MAX, label, err);

    if (ret < 0)
        return ret;
    if (!json_is_object(doc))
        return kiln_error_set(err, KILN_EPARSE, "%s: not a JSON object", label);
    ret = kiln_cache__txn_begin(&t, c, true, err);
    if (ret == 0)
        ret = kiln_cache__ref_drop_owner(t, c, owner, err);
    if (ret == 0)
        ret = kiln_cache__put(t, c, db, name, json, strlen(json), err);
    for (size_t i = 0; ret == 0 && refs && refs[i]; i++)
        ret = kiln_cache__ref_add(t, c, owner, refs[i], err);
    if (ret == 0 && json_is_string(json_object_get(doc, "digest"))) {
        digest = json_string_value(json_object_get(doc, "digest"));
        if (kiln_digest_valid(digest) &&
            mdb_get(t, c->dbi[CACHE_DB_BLOBS], &(MDB_val){strlen(digest), (void *)digest}, &v) ==
                    0) {
            cleanup_free char *target = xasprintf("blob:%s", digest);
            ret = kiln_cache__ref_add(t, c, owner, target, err);
        }
    }
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    if (ret < 0)
        return kiln_error_wrap(err, "store %s", label);
    return 0;
}

static int
doc_get(char **out, kiln_cache *c, cache_db db, const char *what, const char *name,
        kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    MDB_val v;
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = kiln_cache__get(&v, t, c, db, name, what, err);
    if (ret == 0)
        *out = xstrndup(v.mv_data, v.mv_size);
    return ret;
}

static int
doc_delete(kiln_cache *c, cache_db db, const char *what, const char *name, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *owner = xasprintf("%s:%s", what, name);
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret == 0)
        ret = kiln_cache__del(t, c, db, name, what, err);
    if (ret == 0)
        ret = kiln_cache__ref_drop_owner(t, c, owner, err);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    return ret;
}

int
kiln_cache_image_put(kiln_cache *c, const char *name, const char *descriptor_json,
                     const char *const *refs, kiln_error **err)
{
    return doc_put(c, CACHE_DB_IMAGES, "image", name, descriptor_json, refs, err);
}

int
kiln_cache_image_get(char **out, kiln_cache *c, const char *name, kiln_error **err)
{
    return doc_get(out, c, CACHE_DB_IMAGES, "image", name, err);
}

int
kiln_cache_image_delete(kiln_cache *c, const char *name, kiln_error **err)
{
    return doc_delete(c, CACHE_DB_IMAGES, "image", name, err);
}

typedef struct image_scan {
    kiln_vec names, docs;
} image_scan;

static int
image_scan_row(const char *key, const MDB_val *v, void *payload, kiln_error **err)
{
    image_scan *s = payload;

    (void)err;
    kiln_vec_push(&s->names, xstrdup(key));
    kiln_vec_push(&s->docs, xstrndup(v->mv_data, v->mv_size));
    return 0;
}

int
kiln_cache_image_list(kiln_cache_record **out, size_t *n, kiln_cache *c, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    image_scan s = {KILN_VEC_INIT, KILN_VEC_INIT};
    kiln_cache_record *v;
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = kiln_cache__scan(t, c, CACHE_DB_IMAGES, image_scan_row, &s, err);
    if (ret < 0) {
        kiln_vec_dispose(&s.names, free);
        kiln_vec_dispose(&s.docs, free);
        return kiln_error_wrap(err, "list images");
    }
    v = xcalloc(s.names.len + 1, sizeof(*v));
    for (size_t i = 0; i < s.names.len; i++) {
        v[i].id = kiln_vec_get(&s.names, i);
        v[i].json = kiln_vec_get(&s.docs, i);
    }
    *out = v;
    *n = s.names.len;
    kiln_vec_dispose(&s.names, NULL);
    kiln_vec_dispose(&s.docs, NULL);
    return 0;
}

int
kiln_cache_history_put(kiln_cache *c, const char *id, const char *record_json,
                       const char *const *refs, kiln_error **err)
{
    return doc_put(c, CACHE_DB_HISTORY, "history", id, record_json, refs, err);
}

int
kiln_cache_history_get(char **out, kiln_cache *c, const char *id, kiln_error **err)
{
    return doc_get(out, c, CACHE_DB_HISTORY, "history", id, err);
}

int
kiln_cache_history_delete(kiln_cache *c, const char *id, kiln_error **err)
{
    return doc_delete(c, CACHE_DB_HISTORY, "history", id, err);
}

/* ---- content checksums ---------------------------------------------------------------- */

/* LMDB keys are at most 511 bytes; context paths can be longer, so long keys are replaced by
 * "sha256:" + their hash, put in *owned (freed by the caller); short keys are used as they are. */
static const char *
checksum_key(char **owned, const char *key)
{
    kiln_sha256 sum;

    *owned = NULL;
    if (strlen(key) <= 400)
        return key;
    kiln_sha256_buf(&sum, key, strlen(key));
    *owned = kiln_digest_str(&sum);
    return *owned;
}

int
kiln_cache_checksum_put(kiln_cache *c, const char *key, const void *value, size_t len,
                        kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *owned = NULL;
    const char *k = checksum_key(&owned, key);
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret == 0)
        ret = kiln_cache__put(t, c, CACHE_DB_CHECKSUMS, k, value, len, err);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    return ret;
}

/* Called once per file of a build context (the engine's stat cache), so it reads through a
 * renewed spare transaction rather than a new one. */
int
kiln_cache_checksum_get(void **out, size_t *len_out, kiln_cache *c, const char *key,
                        kiln_error **err)
{
    cleanup_free char *owned = NULL;
    const char *k = checksum_key(&owned, key);
    MDB_txn *t = NULL;
    MDB_val mk = {strlen(k), (void *)k}, v;
    char *copy = NULL;
    int rc, ret = kiln_cache__read_begin(&t, c, err);

    if (ret < 0)
        return ret;
    rc = mk.mv_size == 0 ? MDB_BAD_VALSIZE : mdb_get(t, c->dbi[CACHE_DB_CHECKSUMS], &mk, &v);
    if (rc == 0) {
        copy = xmalloc(v.mv_size + 1);
        memcpy(copy, v.mv_data, v.mv_size);
        copy[v.mv_size] = 0;
        if (len_out)
            *len_out = v.mv_size;
    }
    kiln_cache__read_end(c, t);
    if (mk.mv_size == 0)
        return kiln_error_set(err, KILN_EINVAL, "checksum key of 0 bytes (1..511 allowed)");
    if (rc == MDB_NOTFOUND)
        return kiln_error_set(err, KILN_ENOTFOUND, "checksum `%s` not found", k);
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "read checksum `%s`", k);
    *out = copy;
    return 0;
}

int
kiln_cache_checksum_delete(kiln_cache *c, const char *key, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *owned = NULL;
    const char *k = checksum_key(&owned, key);
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret == 0)
        ret = kiln_cache__del(t, c, CACHE_DB_CHECKSUMS, k, "checksum", err);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    return ret;
}

/* ---- leases --------------------------------------------------------------------------- */

int
kiln_cache_lease_add(kiln_cache *c, const char *lease, const char *target, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *owner = xasprintf("lease:%s", lease);
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret == 0)
        ret = kiln_cache__ref_add(t, c, owner, target, err);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    if (ret < 0)
        return kiln_error_wrap(err, "lease `%s`", lease);
    return 0;
}

int
kiln_cache_lease_add_many(kiln_cache *c, const char *lease, const char *const *targets, size_t n,
                          bool *present, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *owner = xasprintf("lease:%s", lease);
    int ret = n ? kiln_cache__txn_begin(&t, c, true, err) : 0;

    for (size_t i = 0; ret == 0 && i < n; i++) {
        kiln_error *tmp = NULL;
        int r = kiln_cache__ref_add(t, c, owner, targets[i], &tmp);

        present[i] = r == 0;
        if (r == KILN_ENOTFOUND)
            kiln_error_free(&tmp);
        else if (r < 0)
            ret = kiln_error_move(err, &tmp);
    }
    if (ret == 0 && n)
        ret = kiln_cache__txn_commit(&t, err);
    if (ret < 0)
        return kiln_error_wrap(err, "lease `%s`", lease);
    return 0;
}

int
kiln_cache_lease_release(kiln_cache *c, const char *lease, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *owner = xasprintf("lease:%s", lease);
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret == 0)
        ret = kiln_cache__ref_drop_owner(t, c, owner, err);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    return ret;
}
