/*
 * cache_records.c: the JSON encoding of snapshot, blob and cache-key records in LMDB.
 *
 * Records are compact JSON objects with sorted keys. Data read back from LMDB is untrusted (a
 * damaged or hostile state dir): decoders check every type and return KILN_EPARSE naming the
 * record, never crash.
 */
#define KILN_LOG_DOMAIN "cache"

#include "base/base.h"
#include "base/digest.h"
#include "base/json.h"
#include "cache/cache_internal.h"

#define RECORD_MAX (1u << 20)

static const char *const kind_names[] = {NULL, "active", "committed", "view"};

static int
parse_record(json_t **out, const MDB_val *v, const char *what, const char *id, kiln_error **err)
{
    cleanup_free char *name = xasprintf("%s record `%s`", what, id);
    int ret = kiln_json_parse(out, v->mv_data, v->mv_size, RECORD_MAX, name, err);

    if (ret < 0)
        return ret;
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return kiln_error_set(err, KILN_EPARSE, "corrupt %s: not an object", name);
    }
    return 0;
}

static int
get_opt_str(char **out, const json_t *o, const char *key, const char *id, kiln_error **err)
{
    const char *s = NULL;

    if (kiln_json_get_str(o, key, false, &s, err) < 0)
        return kiln_error_wrap(err, "record `%s`", id);
    *out = xstrdup(s);
    return 0;
}

static int
get_u64(uint64_t *out, const json_t *o, const char *key, const char *id, kiln_error **err)
{
    int64_t n = 0;

    if (kiln_json_get_int(o, key, true, &n, NULL) < 0)
        return kiln_error_set(err, KILN_EPARSE, "corrupt record `%s`: bad `%s`", id, key);
    if (n < 0)
        return kiln_error_set(err, KILN_EPARSE, "corrupt record `%s`: negative `%s`", id, key);
    *out = (uint64_t)n;
    return 0;
}

void
kiln_cache__snap_dispose(cache_snap *s)
{
    free(s->parent);
    free(s->blob);
    free(s->flat);
    if (s->labels)
        json_decref(s->labels);
    memset(s, 0, sizeof(*s));
}

static int
snap_fields(cache_snap *s, const json_t *o, const char *id, kiln_error **err)
{
    const char *kind = NULL;
    json_t *labels = NULL;
    uint64_t created = 0, used = 0;
    const char *k;
    json_t *v;

    if (kiln_json_get_str(o, "kind", true, &kind, NULL) < 0)
        return kiln_error_set(err, KILN_EPARSE, "corrupt snapshot record `%s`: no kind", id);
    for (int i = 1; i <= 3; i++) {
        if (strcmp(kind, kind_names[i]) == 0)
            s->kind = (kiln_cache_snapshot_kind)i;
    }
    if (s->kind == 0)
        return kiln_error_set(err, KILN_EPARSE, "corrupt snapshot record `%s`: kind `%s`", id,
                              kind);
    if (get_opt_str(&s->parent, o, "parent", id, err) < 0 ||
        get_opt_str(&s->blob, o, "blob", id, err) < 0 ||
        get_opt_str(&s->flat, o, "flat", id, err) < 0 ||
        get_u64(&s->size, o, "size", id, err) < 0 || get_u64(&created, o, "created", id, err) < 0 ||
        get_u64(&used, o, "last_used", id, err) < 0)
        return KILN_EPARSE;
    s->created = (int64_t)created;
    s->last_used = (int64_t)used;
    if ((s->parent && !kiln_cache__valid_id(s->parent)) ||
        (s->flat && !kiln_cache__valid_id(s->flat)) || (s->blob && !kiln_digest_valid(s->blob)))
        return kiln_error_set(err, KILN_EPARSE, "corrupt snapshot record `%s`: bad reference", id);
    if (kiln_json_get_obj(o, "labels", false, &labels, NULL) < 0)
        return kiln_error_set(err, KILN_EPARSE, "corrupt snapshot record `%s`: labels", id);
    s->labels = labels ? json_incref(labels) : json_object();
    json_object_foreach(s->labels, k, v)
    {
        if (!json_is_string(v))
            return kiln_error_set(err, KILN_EPARSE,
                                  "corrupt snapshot record `%s`: label `%s` is not a string", id,
                                  k);
    }
    return 0;
}

int
kiln_cache__snap_decode(cache_snap *out, const MDB_val *v, const char *id, kiln_error **err)
{
    cleanup_json json_t *o = NULL;
    cache_snap s = {0};
    int ret = parse_record(&o, v, "snapshot", id, err);

    if (ret < 0)
        return ret;
    ret = snap_fields(&s, o, id, err);
    if (ret < 0) {
        kiln_cache__snap_dispose(&s);
        return ret;
    }
    *out = s;
    return 0;
}

char *
kiln_cache__snap_encode(const cache_snap *s)
{
    cleanup_json json_t *o = json_object();
    json_t *labels = s->labels ? json_incref(s->labels) : json_object();

    json_object_set_new(o, "kind", json_string(kind_names[s->kind]));
    if (s->parent)
        json_object_set_new(o, "parent", json_string(s->parent));
    if (s->blob)
        json_object_set_new(o, "blob", json_string(s->blob));
    if (s->flat)
        json_object_set_new(o, "flat", json_string(s->flat));
    json_object_set_new(o, "size", json_integer((json_int_t)s->size));
    json_object_set_new(o, "created", json_integer(s->created));
    json_object_set_new(o, "last_used", json_integer(s->last_used));
    json_object_set_new(o, "labels", labels);
    return kiln_json_dump_canonical(o);
}

int
kiln_cache__snap_load(cache_snap *out, MDB_txn *t, kiln_cache *c, const char *id, kiln_error **err)
{
    MDB_val v;
    int ret;

    if (!kiln_cache__valid_id(id))
        return kiln_error_set(err, KILN_EINVAL, "invalid snapshot id `%s`", id ? id : "(null)");
    ret = kiln_cache__get(&v, t, c, CACHE_DB_SNAPSHOTS, id, "snapshot", err);
    if (ret < 0)
        return ret;
    return kiln_cache__snap_decode(out, &v, id, err);
}

int
kiln_cache__snap_store(MDB_txn *t, kiln_cache *c, const char *id, const cache_snap *s,
                       kiln_error **err)
{
    cleanup_free char *enc = kiln_cache__snap_encode(s);
    return kiln_cache__put(t, c, CACHE_DB_SNAPSHOTS, id, enc, strlen(enc), err);
}

void
kiln_cache__blob_dispose(cache_blob *b)
{
    free(b->media_type);
    memset(b, 0, sizeof(*b));
}

int
kiln_cache__blob_decode(cache_blob *out, const MDB_val *v, const char *digest, kiln_error **err)
{
    cleanup_json json_t *o = NULL;
    cache_blob b = {0};
    int ret = parse_record(&o, v, "blob", digest, err);

    if (ret < 0)
        return ret;
    if (get_u64(&b.size, o, "size", digest, err) < 0 ||
        get_u64(&b.refs, o, "refs", digest, err) < 0 ||
        get_opt_str(&b.media_type, o, "media_type", digest, err) < 0) {
        kiln_cache__blob_dispose(&b);
        return KILN_EPARSE;
    }
    if (b.media_type == NULL)
        b.media_type = xstrdup("");
    *out = b;
    return 0;
}

int
kiln_cache__blob_load(cache_blob *out, MDB_txn *t, kiln_cache *c, const char *digest,
                      kiln_error **err)
{
    MDB_val v;
    int ret;

    if (!kiln_digest_valid(digest))
        return kiln_error_set(err, KILN_EINVAL, "invalid digest `%s`", digest ? digest : "(null)");
    ret = kiln_cache__get(&v, t, c, CACHE_DB_BLOBS, digest, "blob", err);
    if (ret < 0)
        return ret;
    return kiln_cache__blob_decode(out, &v, digest, err);
}

int
kiln_cache__blob_store(MDB_txn *t, kiln_cache *c, const char *digest, const cache_blob *b,
                       kiln_error **err)
{
    cleanup_json json_t *o = json_object();
    cleanup_free char *enc = NULL;

    json_object_set_new(o, "size", json_integer((json_int_t)b->size));
    json_object_set_new(o, "refs", json_integer((json_int_t)b->refs));
    json_object_set_new(o, "media_type", json_string(b->media_type ? b->media_type : ""));
    enc = kiln_json_dump_canonical(o);
    return kiln_cache__put(t, c, CACHE_DB_BLOBS, digest, enc, strlen(enc), err);
}

int
kiln_cache__blob_ref(MDB_txn *t, kiln_cache *c, const char *digest, int delta, kiln_error **err)
{
    cache_blob b = {0};
    int ret = kiln_cache__blob_load(&b, t, c, digest, err);

    if (ret < 0)
        return ret;
    if (delta < 0 && b.refs < (uint64_t)-delta)
        b.refs = 0; /* never wrap; fsck reports the mismatch that caused this */
    else
        b.refs = (uint64_t)((int64_t)b.refs + delta);
    ret = kiln_cache__blob_store(t, c, digest, &b, err);
    kiln_cache__blob_dispose(&b);
    return ret;
}

int
kiln_cache__key_decode(kiln_cache_result *out, const MDB_val *v, const char *key, kiln_error **err)
{
    cleanup_json json_t *o = NULL;
    const char *snap = NULL;
    uint64_t created = 0;
    int ret = parse_record(&o, v, "cache key", key, err);

    if (ret < 0)
        return ret;
    if (kiln_json_get_str(o, "snapshot", true, &snap, NULL) < 0 || !kiln_cache__valid_id(snap))
        return kiln_error_set(err, KILN_EPARSE, "corrupt cache key record `%s`: snapshot", key);
    if (get_u64(&created, o, "created", key, err) < 0)
        return KILN_EPARSE;
    out->snapshot_id = xstrdup(snap);
    out->created = (int64_t)created;
    return 0;
}

void
kiln_cache_result_dispose(kiln_cache_result *r)
{
    free(r->snapshot_id);
    r->snapshot_id = NULL;
}
