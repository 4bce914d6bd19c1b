/*
 * engine_gc.c: disk usage, prune and automatic GC of the state store (kiln du, kiln prune, and
 * the collection after each build).
 *
 * The store does the work (cache/cache_gc.c: reachability in one LMDB transaction, serialised
 * across processes by gc.lock); this file turns its usage records into the engine's, adding what
 * a user wants to read: a description of what made each snapshot (from its labels), its parent
 * and whether other snapshots share it. Automatic GC prunes least recently used cache down to a
 * budget: KILN_GC_KEEP_STORAGE, or 10% of the file system holding the state dir, at least
 * 512 MiB. Nothing referenced by an image, a history record or a running build's lease is ever
 * removed, whatever the budget.
 */
#define KILN_LOG_DOMAIN "engine"

#include <sys/statvfs.h>

#include "base/map.h"
#include "base/str.h"
#include "engine/engine_internal.h"

#include "base/base.h"

#define GC_MIN_KEEP   (512ULL << 20) /* the automatic budget never goes below this */
#define GC_FS_PERCENT 10             /* default budget: this share of the state dir's fs */

#ifndef ENGINE_LABEL_DESCRIPTION
/* Snapshot label: what made it ("RUN make"), shown by du; set by the ops that make snapshots. */
#define ENGINE_LABEL_DESCRIPTION "kiln.description"
#endif

void
kiln_engine_usage_free(kiln_engine_usage *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].kind);
        free(v[i].id);
        free(v[i].description);
        free(v[i].parent);
    }
    free(v);
}

/* The value of label `key` in a NULL-terminated key, value... list, or NULL (borrowed). */
static const char *
label_get(char *const *labels, const char *key)
{
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        if (strcmp(labels[i], key) == 0)
            return labels[i + 1];
    }
    return NULL;
}

/* What made a snapshot, from its labels: an explicit description, an image layer (its diff id),
 * a flattened chain; NULL when nothing says. Owned by the caller. */
static char *
snapshot_description(const kiln_cache_snapshot_info *i)
{
    const char *v = label_get(i->labels, ENGINE_LABEL_DESCRIPTION);
    if (v)
        return xstrdup(v);
    v = label_get(i->labels, "kiln.flattened-from");
    if (v)
        return xasprintf("flattened copy of %s", v);
    for (size_t k = 0; i->labels && i->labels[k] && i->labels[k + 1]; k += 2) {
        if (kiln_str_has_prefix(i->labels[k], ENGINE_LABEL_DIFFID))
            return xasprintf("layer %s", i->labels[k + 1]);
    }
    if (label_get(i->labels, ENGINE_LABEL_LAYER_SOURCE))
        return xasprintf("%s layer", label_get(i->labels, ENGINE_LABEL_LAYER_SOURCE));
    return NULL;
}

/* Details of every snapshot and blob of the store, looked up once per record. */
typedef struct usage_details {
    kiln_map desc;     /* "s:<id>" / "b:<digest>" -> description (owned) */
    kiln_map parent;   /* snapshot id -> parent id (owned) */
    kiln_map children; /* snapshot id -> (void *)count of snapshots naming it as parent */
    kiln_map created;  /* snapshot id -> (void *)(uintptr_t)created */
    kiln_map refs;     /* digest -> (void *)(uintptr_t)refcount */
} usage_details;

static void
details_dispose(usage_details *d)
{
    kiln_map_dispose(&d->desc, free);
    kiln_map_dispose(&d->parent, free);
    kiln_map_dispose(&d->children, NULL);
    kiln_map_dispose(&d->created, NULL);
    kiln_map_dispose(&d->refs, NULL);
}

/* Look up each record of l (snapshots: labels, parent; blobs: media type, refcount). A record
 * that vanished meanwhile (a concurrent prune) just has no details. */
static void
details_load(usage_details *d, kiln_engine *e, const kiln_cache_usage_list *l)
{
    for (size_t i = 0; i < l->len; i++) {
        const kiln_cache_usage *u = &l->items[i];
        kiln_error *tmp = NULL;
        if (strcmp(u->kind, "snapshot") == 0) {
            kiln_cache_snapshot_info info = {0};
            if (kiln_cache_snapshot_info_get(&info, e->cache, u->id, &tmp) == 0) {
                cleanup_free char *k = xasprintf("s:%s", u->id);
                char *desc = snapshot_description(&info);
                if (desc)
                    free(kiln_map_put(&d->desc, k, desc));
                if (info.parent) {
                    uintptr_t n = (uintptr_t)kiln_map_get(&d->children, info.parent);
                    kiln_map_put(&d->children, info.parent, (void *)(n + 1));
                    free(kiln_map_put(&d->parent, u->id, xstrdup(info.parent)));
                }
                kiln_map_put(&d->created, u->id, (void *)(uintptr_t)info.created);
            }
            kiln_cache_snapshot_info_dispose(&info);
        } else if (strcmp(u->kind, "blob") == 0) {
            kiln_cache_blob_info info = {0};
            if (kiln_cache_blob_info_get(&info, e->cache, u->id, &tmp) == 0) {
                cleanup_free char *k = xasprintf("b:%s", u->id);
                if (info.media_type && info.media_type[0])
                    free(kiln_map_put(&d->desc, k, xstrdup(info.media_type)));
                kiln_map_put(&d->refs, u->id, (void *)(uintptr_t)info.refcount);
            }
            kiln_cache_blob_info_dispose(&info);
        }
        kiln_error_free(&tmp);
    }
}

/* Turn the store's list into the engine's; *out owned by the caller. */
static void
usage_convert(kiln_engine_usage **out, size_t *n, const kiln_cache_usage_list *l,
              const usage_details *d)
{
    kiln_engine_usage *v = xcalloc(l->len ? l->len : 1, sizeof(*v));
    for (size_t i = 0; i < l->len; i++) {
        const kiln_cache_usage *u = &l->items[i];
        bool snap = strcmp(u->kind, "snapshot") == 0;
        cleanup_free char *k = xasprintf("%c:%s", snap ? 's' : 'b', u->id);
        const char *desc = kiln_map_get(&d->desc, k);
        const char *parent = snap ? kiln_map_get(&d->parent, u->id) : NULL;
        v[i].kind = xstrdup(u->kind);
        v[i].id = xstrdup(u->id);
        v[i].description = desc ? xstrdup(desc) : NULL;
        v[i].size = u->size;
        v[i].last_used = u->last_used;
        v[i].in_use = u->in_use;
        v[i].parent = parent ? xstrdup(parent) : NULL;
        if (snap) {
            v[i].created = (int64_t)(uintptr_t)kiln_map_get(&d->created, u->id);
            v[i].shared = (uintptr_t)kiln_map_get(&d->children, u->id) > 1;
        } else if (strcmp(u->kind, "blob") == 0) {
            v[i].shared = (uintptr_t)kiln_map_get(&d->refs, u->id) > 1;
        }
    }
    *out = v;
    *n = l->len;
}

int
kiln_engine_du(kiln_engine_usage **out, size_t *n, kiln_engine *e, kiln_error **err)
{
    kiln_cache_usage_list l = {0};
    usage_details d = {KILN_MAP_INIT, KILN_MAP_INIT, KILN_MAP_INIT, KILN_MAP_INIT, KILN_MAP_INIT};
    int ret = kiln_cache_du(&l, e->cache, err);
    if (ret < 0)
        return ret;
    details_load(&d, e, &l);
    usage_convert(out, n, &l, &d);
    details_dispose(&d);
    kiln_cache_usage_list_dispose(&l);
    return 0;
}

int
kiln_engine_prune(kiln_engine_usage **out, size_t *n, kiln_engine *e,
                  const kiln_engine_prune_opts *opts, kiln_error **err)
{
    kiln_cache_prune_opts co = {0};
    kiln_cache_usage_list before = {0}, removed = {0};
    usage_details d = {KILN_MAP_INIT, KILN_MAP_INIT, KILN_MAP_INIT, KILN_MAP_INIT, KILN_MAP_INIT};
    int ret;
    if (opts && opts->version != KILN_ENGINE_PRUNE_OPTS_VERSION)
        return kiln_error_set(err, KILN_EINVAL, "prune options version %d, want %d", opts->version,
                              KILN_ENGINE_PRUNE_OPTS_VERSION);
    if (opts && opts->until < 0)
        return kiln_error_set(err, KILN_EINVAL, "prune: negative age %lld", (long long)opts->until);
    if (opts)
        co = (kiln_cache_prune_opts){opts->all, opts->keep_storage, opts->until, opts->dry_run};
    /* descriptions come from records that the prune deletes: read them first */
    ret = kiln_cache_du(&before, e->cache, err);
    if (ret == 0) {
        details_load(&d, e, &before);
        ret = kiln_cache_prune(&removed, e->cache, &co, err);
    }
    if (ret == 0)
        usage_convert(out, n, &removed, &d);
    details_dispose(&d);
    kiln_cache_usage_list_dispose(&before);
    kiln_cache_usage_list_dispose(&removed);
    return ret;
}

/* The automatic GC budget: KILN_GC_KEEP_STORAGE when set (KILN_EINVAL when malformed), else
 * GC_FS_PERCENT of the file system holding `root`, at least GC_MIN_KEEP. */
static int
gc_budget(uint64_t *out, const char *root, kiln_error **err)
{
    const char *env = getenv("KILN_GC_KEEP_STORAGE");
    struct statvfs fs;
    uint64_t total;
    if (env && *env) {
        if (kiln_parse_size(env, out, err) < 0)
            return kiln_error_wrap(err, "KILN_GC_KEEP_STORAGE");
        return 0;
    }
    if (statvfs(root, &fs) < 0)
        return kiln_error_errno(err, errno, "statvfs `%s`", root);
    total = (uint64_t)fs.f_blocks * (uint64_t)fs.f_frsize;
    *out = total / 100 * GC_FS_PERCENT;
    if (*out < GC_MIN_KEEP)
        *out = GC_MIN_KEEP;
    return 0;
}

void
kiln_engine_gc(kiln_engine *e)
{
    kiln_engine_prune_opts o = {KILN_ENGINE_PRUNE_OPTS_VERSION, false, 0, 0, false};
    kiln_engine_usage *v = NULL;
    kiln_error *err = NULL;
    uint64_t freed = 0;
    size_t n = 0;
    if (gc_budget(&o.keep_storage, kiln_cache_root(e->cache), &err) < 0 ||
        kiln_engine_prune(&v, &n, e, &o, &err) < 0) {
        kiln_log_error("gc: %s", err->msg);
        kiln_error_free(&err);
        return;
    }
    for (size_t i = 0; i < n; i++)
        freed += v[i].size;
    if (n > 0)
        kiln_log_info("gc: freed %llu bytes in %zu records (keep %llu bytes)",
                      (unsigned long long)freed, n, (unsigned long long)o.keep_storage);
    kiln_engine_usage_free(v, n);
}
