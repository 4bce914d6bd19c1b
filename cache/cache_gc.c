/*
 * cache_gc.c: garbage collection, prune, du and snapshot removal.
 *
 * GC is reachability, computed inside one LMDB write transaction so that it sees a consistent
 * store and no other writer can add a reference meanwhile. Roots that keep things "in use": every
 * target of the refs table (images, history records, leases of running builds) and every active
 * snapshot or view. Cache key records keep their snapshots too, but they are what prune removes.
 * A reachable snapshot keeps its parent, its flattened copy and its diff blob.
 *
 * Keys and snapshot records are deleted in that transaction; snapshot directories are moved to
 * trash/ and removed after the commit (a crash in between leaves unnamed directories, swept at
 * the next open). Dead blobs go in a second transaction once their refcount has dropped to 0
 * (see prune_blobs). An exclusive flock on <root>/gc.lock serialises prunes across
 * processes.
 */
#define KILN_LOG_DOMAIN "cache"

#include <fcntl.h>
#include <sys/file.h>

#include "base/base.h"
#include "base/json.h"
#include "base/map.h"
#include "base/vec.h"
#include "cache/cache_internal.h"

typedef struct gc_key {
    char *key;
    char *snapshot;
    int64_t last_used;
    bool removed;
} gc_key;

typedef struct gc_graph {
    kiln_map snaps; /* id -> cache_snap * */
    kiln_map blobs; /* digest -> cache_blob * */
    kiln_vec keys;  /* gc_key * */
    kiln_vec roots; /* "snapshot:<id>" / "blob:<digest>" targets of the refs table (owned) */
    kiln_map live;  /* "s:<id>" / "b:<digest>" -> (void *)1|2: 1 reachable, 2 in use */
} gc_graph;

static void
snap_free(void *p)
{
    kiln_cache__snap_dispose(p);
    free(p);
}

static void
blob_free(void *p)
{
    kiln_cache__blob_dispose(p);
    free(p);
}

static void
key_free(void *p)
{
    gc_key *k = p;
    free(k->key);
    free(k->snapshot);
    free(k);
}

static void
graph_dispose(gc_graph *g)
{
    kiln_map_dispose(&g->snaps, snap_free);
    kiln_map_dispose(&g->blobs, blob_free);
    kiln_map_dispose(&g->live, NULL);
    kiln_vec_dispose(&g->keys, key_free);
    kiln_strvec_dispose(&g->roots);
}

static int
load_snap(const char *key, const MDB_val *v, void *payload, kiln_error **err)
{
    gc_graph *g = payload;
    cache_snap *s = xnew(cache_snap);
    int ret = kiln_cache__snap_decode(s, v, key, err);

    if (ret < 0) {
        free(s);
        return ret;
    }
    kiln_map_put(&g->snaps, key, s);
    return 0;
}

static int
load_blob(const char *key, const MDB_val *v, void *payload, kiln_error **err)
{
    gc_graph *g = payload;
    cache_blob *b = xnew(cache_blob);
    int ret = kiln_cache__blob_decode(b, v, key, err);

    if (ret < 0) {
        free(b);
        return ret;
    }
    kiln_map_put(&g->blobs, key, b);
    return 0;
}

static int
load_key(const char *key, const MDB_val *v, void *payload, kiln_error **err)
{
    gc_graph *g = payload;
    kiln_cache_result r = {0};
    gc_key *k;
    cache_snap *s;
    int ret = kiln_cache__key_decode(&r, v, key, err);

    if (ret < 0)
        return ret;
    k = xnew(gc_key);
    k->key = xstrdup(key);
    k->snapshot = r.snapshot_id;
    s = kiln_map_get(&g->snaps, k->snapshot);
    k->last_used = s ? s->last_used : r.created;
    kiln_vec_push(&g->keys, k);
    return 0;
}

static int
load_ref(const char *key, const MDB_val *v, void *payload, kiln_error **err)
{
    gc_graph *g = payload;
    (void)key;
    (void)err;
    kiln_vec_push(&g->roots, xstrndup(v->mv_data, v->mv_size));
    return 0;
}

static int
graph_load(gc_graph *g, MDB_txn *t, kiln_cache *c, kiln_error **err)
{
    int ret = kiln_cache__scan(t, c, CACHE_DB_SNAPSHOTS, load_snap, g, err);

    if (ret == 0)
        ret = kiln_cache__scan(t, c, CACHE_DB_BLOBS, load_blob, g, err);
    if (ret == 0)
        ret = kiln_cache__scan(t, c, CACHE_DB_KEYS, load_key, g, err);
    if (ret == 0)
        ret = kiln_cache__scan(t, c, CACHE_DB_REFS, load_ref, g, err); /* with duplicates */
    return ret;
}

/* Mark a snapshot (and what it keeps) with `level` (1 reachable, 2 in use). */
static void
mark_blob(gc_graph *g, const char *digest, uintptr_t level)
{
    cleanup_free char *k = xasprintf("b:%s", digest);
    if ((uintptr_t)kiln_map_get(&g->live, k) < level)
        kiln_map_put(&g->live, k, (void *)level);
}

static void
mark_snap(gc_graph *g, const char *id, uintptr_t level)
{
    while (id) {
        cleanup_free char *k = xasprintf("s:%s", id);
        cache_snap *s = kiln_map_get(&g->snaps, id);
        if (s == NULL || (uintptr_t)kiln_map_get(&g->live, k) >= level)
            return;
        kiln_map_put(&g->live, k, (void *)level);
        if (s->blob)
            mark_blob(g, s->blob, level);
        if (s->flat)
            mark_snap(g, s->flat, level);
        id = s->parent;
    }
}

/* Recompute the live map from the roots and the keys not removed. */
static void
graph_mark(gc_graph *g)
{
    void *item;

    kiln_map_dispose(&g->live, NULL);
    kiln_map_init(&g->live);
    kiln_vec_foreach(&g->roots, i, item) {
        const char *target = item;
        if (kiln_str_has_prefix(target, "snapshot:"))
            mark_snap(g, target + 9, 2);
        else if (kiln_str_has_prefix(target, "blob:"))
            mark_blob(g, target + 5, 2);
    }
    kiln_map_foreach(&g->snaps, e) {
        cache_snap *s = e->value;
        if (s->kind != KILN_CACHE_SNAPSHOT_COMMITTED)
            mark_snap(g, e->key, 2);
    }
    kiln_vec_foreach(&g->keys, i, item) {
        gc_key *k = item;
        if (!k->removed)
            mark_snap(g, k->snapshot, 1);
    }
}

static uintptr_t
live_level(const gc_graph *g, const char *prefix, const char *id)
{
    cleanup_free char *k = xasprintf("%s%s", prefix, id);
    return (uintptr_t)kiln_map_get(&g->live, k);
}

static uint64_t
live_size(const gc_graph *g)
{
    uint64_t sum = 0;

    kiln_map_foreach(&g->snaps, e) {
        if (live_level(g, "s:", e->key))
            sum += ((cache_snap *)e->value)->size;
    }
    kiln_map_foreach(&g->blobs, e) {
        if (live_level(g, "b:", e->key))
            sum += ((cache_blob *)e->value)->size;
    }
    return sum;
}

/* ---- usage lists ------------------------------------------------------------------------ */

void
kiln_cache_usage_list_dispose(kiln_cache_usage_list *l)
{
    for (size_t i = 0; i < l->len; i++) {
        free(l->items[i].kind);
        free(l->items[i].id);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static void
usage_add(kiln_cache_usage_list *l, const char *kind, const char *id, uint64_t size,
          int64_t last_used, bool in_use)
{
    l->items = xreallocarray(l->items, l->len + 1, sizeof(*l->items));
    l->items[l->len++] = (kiln_cache_usage){xstrdup(kind), xstrdup(id), size, last_used, in_use};
    l->total += size;
}

static int
usage_cmp(const void *a, const void *b)
{
    const kiln_cache_usage *x = a, *y = b;
    int r = strcmp(x->kind, y->kind);
    return r ? r : strcmp(x->id, y->id);
}

/* Append every snapshot and blob whose live level satisfies `want(level)`. */
static void
usage_collect(kiln_cache_usage_list *l, const gc_graph *g, bool dead_only)
{
    kiln_map_foreach(&g->snaps, e) {
        cache_snap *s = e->value;
        uintptr_t lv = live_level(g, "s:", e->key);
        if (!dead_only || lv == 0)
            usage_add(l, "snapshot", e->key, s->size, s->last_used, lv == 2);
    }
    kiln_map_foreach(&g->blobs, e) {
        cache_blob *b = e->value;
        uintptr_t lv = live_level(g, "b:", e->key);
        if (!dead_only || lv == 0)
            usage_add(l, "blob", e->key, b->size, 0, lv == 2);
    }
}

int
kiln_cache_du(kiln_cache_usage_list *out, kiln_cache *c, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    gc_graph g = {0};
    kiln_cache_usage_list l = {0};
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = graph_load(&g, t, c, err);
    if (ret == 0) {
        graph_mark(&g);
        usage_collect(&l, &g, false);
        if (l.len)
            qsort(l.items, l.len, sizeof(*l.items), usage_cmp);
        *out = l;
    }
    graph_dispose(&g);
    if (ret < 0)
        return kiln_error_wrap(err, "disk usage of `%s`", c->root);
    return 0;
}

/* ---- prune -------------------------------------------------------------------------------- */

static int
key_lru_cmp(const void *a, const void *b)
{
    const gc_key *x = a, *y = b;
    if (x->last_used != y->last_used)
        return x->last_used < y->last_used ? -1 : 1;
    return strcmp(x->key, y->key);
}

static bool
key_eligible(const gc_graph *g, const gc_key *k, const kiln_cache_prune_opts *o, int64_t now)
{
    cache_snap *s = kiln_map_get(&g->snaps, k->snapshot);

    if (o->until > 0 && k->last_used > now - o->until)
        return false;
    if (!o->all && s && json_object_get(s->labels, "kiln.internal"))
        return false;
    return true;
}

/* Choose which keys to remove (sets k->removed) and mark the graph for the result. */
static void
prune_select(gc_graph *g, const kiln_cache_prune_opts *o)
{
    int64_t now = kiln_cache__now();
    void *item;

    kiln_vec_sort(&g->keys, key_lru_cmp);
    graph_mark(g);
    kiln_vec_foreach(&g->keys, i, item) {
        gc_key *k = item;
        if (o->keep_storage > 0 && live_size(g) <= o->keep_storage)
            break;
        if (!key_eligible(g, k, o, now))
            continue;
        k->removed = true;
        if (o->keep_storage > 0)
            graph_mark(g);
    }
    graph_mark(g);
}

/* Phase 1, inside t: delete the removed keys and the dead snapshots (dropping their blob refs).
 * Collects snapshot dirs to remove after the commit into `dirs`. */
static int
prune_apply(MDB_txn *t, kiln_cache *c, gc_graph *g, kiln_vec *dirs, kiln_error **err)
{
    void *item;
    int ret = 0;

    kiln_vec_foreach(&g->keys, i, item) {
        gc_key *k = item;
        if (k->removed && ret == 0)
            ret = kiln_cache__del(t, c, CACHE_DB_KEYS, k->key, "cache key", err);
    }
    kiln_map_foreach(&g->snaps, e) {
        cache_snap *s = e->value;
        if (ret < 0 || live_level(g, "s:", e->key))
            continue;
        ret = kiln_cache__del(t, c, CACHE_DB_SNAPSHOTS, e->key, "snapshot", err);
        if (ret == 0 && s->blob) {
            ret = kiln_cache__blob_ref(t, c, s->blob, -1, err);
            if (ret == KILN_ENOTFOUND) { /* already inconsistent: fsck reports it */
                kiln_error_free(err);
                ret = 0;
            }
        }
        kiln_strvec_push(dirs, e->key);
    }
    return ret;
}

/* Phase 2, in its own write txn: delete dead blobs whose refcount is now 0. The file is unlinked
 * under the write lock, ordered against writers re-publishing the same digest; a crash before
 * the commit leaves a record with no refs and no file, which the sweep at open drops. A blob
 * referenced again since phase 1 has refs > 0 and stays. */
static int
prune_blobs(kiln_cache *c, gc_graph *g, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    kiln_map_foreach(&g->blobs, e) {
        cache_blob b = {0};
        if (ret < 0 || live_level(g, "b:", e->key))
            continue;
        ret = kiln_cache__blob_load(&b, t, c, e->key, err);
        if (ret == KILN_ENOTFOUND) {
            kiln_error_free(err);
            ret = 0;
            continue;
        }
        if (ret == 0 && b.refs == 0) {
            cleanup_free char *path = kiln_cache__blob_path(c, e->key);
            ret = kiln_cache__del(t, c, CACHE_DB_BLOBS, e->key, "blob", err);
            if (ret == 0 && unlink(path) < 0 && errno != ENOENT)
                ret = kiln_error_errno(err, errno, "unlink `%s`", path);
        }
        kiln_cache__blob_dispose(&b);
    }
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    return ret;
}

static void
prune_report(kiln_cache_usage_list *l, const gc_graph *g)
{
    void *item;

    kiln_vec_foreach(&g->keys, i, item) {
        const gc_key *k = item;
        if (k->removed)
            usage_add(l, "key", k->key, 0, k->last_used, false);
    }
    usage_collect(l, g, true);
    if (l->len)
        qsort(l->items, l->len, sizeof(*l->items), usage_cmp);
}

static int
gc_lock(int *fd_out, kiln_cache *c, kiln_error **err)
{
    cleanup_free char *path = xasprintf("%s/gc.lock", c->root);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", path);
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return kiln_error_errno(err, e, "lock `%s`", path);
        }
    }
    *fd_out = fd;
    return 0;
}

int
kiln_cache_prune(kiln_cache_usage_list *out, kiln_cache *c, const kiln_cache_prune_opts *opts,
                 kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_close int lock = -1;
    kiln_cache_prune_opts defaults = {0};
    kiln_vec dirs = KILN_VEC_INIT;
    kiln_cache_usage_list l = {0};
    gc_graph g = {0};
    void *item;
    int ret = gc_lock(&lock, c, err);

    if (opts == NULL)
        opts = &defaults;
    if (ret == 0)
        ret = kiln_cache__txn_begin(&t, c, !opts->dry_run, err);
    if (ret == 0)
        ret = graph_load(&g, t, c, err);
    if (ret == 0) {
        prune_select(&g, opts);
        prune_report(&l, &g);
        if (!opts->dry_run)
            ret = prune_apply(t, c, &g, &dirs, err);
    }
    if (ret == 0 && !opts->dry_run)
        ret = kiln_cache__txn_commit(&t, err);
    kiln_vec_foreach(&dirs, i, item) {
        cleanup_free char *dir = kiln_cache__snap_dir(c, item);
        kiln_error *tmp = NULL;
        if (ret == 0 && kiln_cache__trash_dir(c, dir, &tmp) < 0) {
            kiln_log_warn("prune: %s", tmp->msg); /* swept at the next open */
            kiln_error_free(&tmp);
        }
    }
    if (ret == 0 && !opts->dry_run)
        ret = prune_blobs(c, &g, err);
    graph_dispose(&g);
    kiln_strvec_dispose(&dirs);
    if (ret < 0) {
        kiln_cache_usage_list_dispose(&l);
        return kiln_error_wrap(err, "prune `%s`", c->root);
    }
    *out = l;
    return 0;
}

/* ---- snapshot removal ----------------------------------------------------------------------- */

/* Why `id` cannot be removed, or NULL. Owned by the caller. */
static char *
snap_user(gc_graph *g, const char *id)
{
    void *item;

    kiln_map_foreach(&g->snaps, e) {
        cache_snap *s = e->value;
        if (kiln_str_eq(s->parent, id))
            return xasprintf("it is the parent of snapshot %s", e->key);
    }
    kiln_vec_foreach(&g->keys, i, item) {
        gc_key *k = item;
        if (strcmp(k->snapshot, id) == 0)
            return xasprintf("cache key `%s` points to it", k->key);
    }
    kiln_vec_foreach(&g->roots, i, item) {
        const char *target = item;
        if (kiln_str_has_prefix(target, "snapshot:") && strcmp(target + 9, id) == 0)
            return xstrdup("an image, history record or lease refers to it");
    }
    return NULL;
}

static int
remove_locked(MDB_txn *t, kiln_cache *c, const char *id, kiln_error **err)
{
    gc_graph g = {0};
    cleanup_free char *user = NULL;
    cache_snap *s = NULL;
    int ret = graph_load(&g, t, c, err);

    if (ret == 0 && (s = kiln_map_get(&g.snaps, id)) == NULL)
        ret = kiln_error_set(err, KILN_ENOTFOUND, "snapshot `%s` not found", id);
    if (ret == 0 && (user = snap_user(&g, id)) != NULL)
        ret = kiln_error_set(err, KILN_EEXISTS, "snapshot %s is in use: %s", id, user);
    if (ret == 0)
        ret = kiln_cache__del(t, c, CACHE_DB_SNAPSHOTS, id, "snapshot", err);
    if (ret == 0 && s->blob)
        ret = kiln_cache__blob_ref(t, c, s->blob, -1, err);
    kiln_map_foreach(&g.snaps, e) /* forget it as the flattened copy of another snapshot */
    {
        cache_snap *o = e->value;
        if (ret == 0 && kiln_str_eq(o->flat, id)) {
            free(o->flat);
            o->flat = NULL;
            ret = kiln_cache__snap_store(t, c, e->key, o, err);
        }
    }
    graph_dispose(&g);
    return ret;
}

int
kiln_cache_snapshot_remove(kiln_cache *c, const char *id, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *dir = NULL;
    int ret;

    if (!kiln_cache__valid_id(id))
        return kiln_error_set(err, KILN_EINVAL, "invalid snapshot id `%s`", id ? id : "(null)");
    ret = kiln_cache__txn_begin(&t, c, true, err);
    if (ret == 0)
        ret = remove_locked(t, c, id, err);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    if (ret < 0)
        return kiln_error_wrap(err, "remove snapshot");
    dir = kiln_cache__snap_dir(c, id);
    return kiln_cache__trash_dir(c, dir, err);
}
