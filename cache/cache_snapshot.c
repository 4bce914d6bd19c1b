/*
 * cache_snapshot.c: the snapshotter. A snapshot is snapshots/<id>/fs (its own changes, the
 * overlay upper dir) plus its parent chain; an active one also has snapshots/<id>/work.
 *
 * With overlay, mounting a snapshot stacks the fs dirs of its chain, top-most first. Overlay caps
 * the lowerdir list by the mount option size (one page), so a chain deeper than max_depth or too
 * long to spell is flattened: its layers are applied bottom-up into a new committed base snapshot,
 * recorded in the source snapshot's "flat" field and reused from then on (GC keeps it as long as
 * the source lives). The naive snapshotter (no overlay) stores the full tree in every snapshot:
 * prepare copies the parent's tree.
 *
 * Directories are created before the record that names them is committed and removed after the
 * record is gone, so a crash leaves only unnamed directories, swept at the next open.
 */
#define KILN_LOG_DOMAIN "cache"

#include <sys/stat.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/vec.h"
#include "cache/cache_internal.h"

/* Bytes of "lowerdir=...,upperdir=...,workdir=..." we allow: a page minus room for options the
 * executor may add (index=off, userxattr, ...). */
#define OVERLAY_OPTS_MAX 3840

static const char *
kind_str(kiln_cache_snapshot_kind k)
{
    switch (k) {
    case KILN_CACHE_SNAPSHOT_ACTIVE:
        return "active";
    case KILN_CACHE_SNAPSHOT_COMMITTED:
        return "committed";
    case KILN_CACHE_SNAPSHOT_VIEW:
        return "view";
    }
    return "unknown";
}

void
kiln_cache_snapshot_info_dispose(kiln_cache_snapshot_info *i)
{
    free(i->parent);
    free(i->blob);
    if (i->labels) {
        for (size_t k = 0; i->labels[k]; k++)
            free(i->labels[k]);
        free(i->labels);
    }
    memset(i, 0, sizeof(*i));
}

void
kiln_cache_mounts_dispose(kiln_cache_mounts *m)
{
    for (size_t i = 0; i < m->nlower; i++)
        free(m->lower[i]);
    free(m->lower);
    free(m->upper);
    free(m->work);
    memset(m, 0, sizeof(*m));
}

/* The fs dirs of the chain starting at `id` (included), top-most first, stopping at a flattened
 * copy. Fails with KILN_EPARSE on a cycle or a chain longer than any we create. */
static int
chain_dirs(kiln_vec *out, MDB_txn *t, kiln_cache *c, const char *id, kiln_error **err)
{
    cleanup_free char *cur = xstrdup(id);
    int ret = 0;

    while (cur && ret == 0) {
        cache_snap s = {0};
        if (out->len > 100000)
            return kiln_error_set(err, KILN_EPARSE, "snapshot %s: parent chain has a cycle", id);
        ret = kiln_cache__snap_load(&s, t, c, cur, err);
        if (ret < 0)
            return kiln_error_wrap(err, "parent chain of snapshot %s", id);
        if (s.flat) {
            kiln_vec_push(out, xasprintf("%s/snapshots/%s/fs", c->root, s.flat));
            free(cur);
            cur = NULL;
        } else {
            kiln_vec_push(out, xasprintf("%s/snapshots/%s/fs", c->root, cur));
            free(cur);
            cur = steal_pointer(&s.parent);
        }
        kiln_cache__snap_dispose(&s);
    }
    return ret;
}

static bool
chain_fits(const kiln_cache *c, const kiln_vec *dirs, size_t extra_bytes)
{
    size_t bytes = strlen("lowerdir=") + extra_bytes;

    /* The child snapshot adds one more layer once committed. */
    if (dirs->len + 1 > c->max_depth)
        return false;
    for (size_t i = 0; i < dirs->len; i++)
        bytes += strlen(dirs->items[i]) + 1;
    return bytes <= OVERLAY_OPTS_MAX;
}

/* Create snapshots/<id>/fs (and work when `work`). */
static int
make_snap_dir(kiln_cache *c, const char *id, bool work, kiln_error **err)
{
    cleanup_free char *dir = kiln_cache__snap_dir(c, id);
    cleanup_free char *fs = xasprintf("%s/fs", dir);
    cleanup_free char *wk = xasprintf("%s/work", dir);

    if (mkdir(dir, 0700) < 0)
        return kiln_error_errno(err, errno, "mkdir `%s`", dir);
    if (mkdir(fs, 0755) < 0)
        return kiln_error_errno(err, errno, "mkdir `%s`", fs);
    if (work && mkdir(wk, 0700) < 0)
        return kiln_error_errno(err, errno, "mkdir `%s`", wk);
    return 0;
}

static void
discard_dir(kiln_cache *c, const char *id)
{
    cleanup_free char *dir = kiln_cache__snap_dir(c, id);
    kiln_error *tmp = NULL;

    if (kiln_cache__trash_dir(c, dir, &tmp) < 0) {
        kiln_log_warn("discard snapshot dir: %s", tmp->msg);
        kiln_error_free(&tmp);
    }
}

/* Flatten the chain of committed snapshot `id` into a new committed snapshot, recorded in
 * id's "flat" field. */
static int
flatten(kiln_cache *c, const char *id, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    kiln_vec dirs = KILN_VEC_INIT;
    cache_snap src = {0}, flat = {0};
    char fid[33];
    cleanup_free char *fs = NULL;
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = chain_dirs(&dirs, t, c, id, err);
    kiln_cache__txn_abort(&t);
    kiln_cache__random_hex(fid, 16);
    fs = xasprintf("%s/snapshots/%s/fs", c->root, fid);
    if (ret == 0)
        ret = make_snap_dir(c, fid, false, err);
    for (size_t i = dirs.len; ret == 0 && i > 0; i--)
        ret = kiln_cache__apply_layer(dirs.items[i - 1], fs, err);
    kiln_strvec_dispose(&dirs);
    if (ret == 0)
        ret = kiln_cache__tree_size(&flat.size, fs, err);
    if (ret == 0)
        ret = kiln_cache__txn_begin(&t, c, true, err);
    if (ret == 0)
        ret = kiln_cache__snap_load(&src, t, c, id, err);
    if (ret == 0) {
        flat.kind = KILN_CACHE_SNAPSHOT_COMMITTED;
        flat.created = flat.last_used = kiln_cache__now();
        flat.labels = json_pack("{ss}", "kiln.flattened-from", id);
        free(src.flat);
        src.flat = xstrdup(fid);
        ret = kiln_cache__snap_store(t, c, fid, &flat, err);
    }
    if (ret == 0)
        ret = kiln_cache__snap_store(t, c, id, &src, err);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    kiln_cache__snap_dispose(&src);
    kiln_cache__snap_dispose(&flat);
    if (ret < 0) {
        discard_dir(c, fid);
        return kiln_error_wrap(err, "flatten snapshot %s", id);
    }
    kiln_log_debug("flattened snapshot %s into %s", id, fid);
    return 0;
}

/* Check `parent` is committed and, with overlay, that a snapshot on top of it stays mountable
 * (flattening it otherwise). `extra` = bytes the child adds to the mount options. */
static int
check_parent(kiln_cache *c, const char *parent, size_t extra, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    kiln_vec dirs = KILN_VEC_INIT;
    cache_snap s = {0};
    bool fits = true;
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = kiln_cache__snap_load(&s, t, c, parent, err);
    if (ret < 0)
        return kiln_error_wrap(err, "parent");
    if (s.kind != KILN_CACHE_SNAPSHOT_COMMITTED)
        ret = kiln_error_set(err, KILN_EINVAL, "parent snapshot %s is %s, not committed", parent,
                             kind_str(s.kind));
    kiln_cache__snap_dispose(&s);
    if (ret == 0 && c->overlay) {
        ret = chain_dirs(&dirs, t, c, parent, err);
        fits = chain_fits(c, &dirs, extra);
    }
    kiln_strvec_dispose(&dirs);
    kiln_cache__txn_abort(&t);
    if (ret == 0 && !fits)
        ret = flatten(c, parent, err);
    return ret;
}

static int
create_snapshot(char *id_out, kiln_cache *c, const char *parent, kiln_cache_snapshot_kind kind,
                kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *fs = NULL;
    cleanup_free char *pfs = NULL;
    bool active = kind == KILN_CACHE_SNAPSHOT_ACTIVE;
    cache_snap s = {0};
    char id[33];
    int ret = 0;

    kiln_cache__random_hex(id, 16);
    /* upperdir + workdir of the child: two paths of the same length as a lower dir. */
    if (parent)
        ret = check_parent(c, parent, 2 * (strlen(c->root) + 64), err);
    if (ret == 0)
        ret = make_snap_dir(c, id, active && c->overlay, err);
    if (ret == 0 && parent && !c->overlay && active) {
        fs = xasprintf("%s/snapshots/%s/fs", c->root, id);
        pfs = xasprintf("%s/snapshots/%s/fs", c->root, parent);
        ret = kiln_cache__copy_tree(pfs, fs, err);
    }
    if (ret == 0)
        ret = kiln_cache__txn_begin(&t, c, true, err);
    if (ret == 0) {
        s.kind = kind;
        s.parent = (char *)parent;
        s.created = s.last_used = kiln_cache__now();
        ret = kiln_cache__snap_store(t, c, id, &s, err);
    }
    if (ret == 0 && parent) /* the parent must still exist at commit time */
        ret = kiln_cache__snap_load(&s, t, c, parent, err);
    if (ret == 0) {
        kiln_cache__snap_dispose(&s);
        ret = kiln_cache__txn_commit(&t, err);
    }
    if (ret < 0) {
        kiln_cache__txn_abort(&t);
        discard_dir(c, id);
        return ret;
    }
    memcpy(id_out, id, sizeof(id));
    return 0;
}

int
kiln_cache_snapshot_prepare(char *id_out, kiln_cache *c, const char *parent, kiln_error **err)
{
    int ret = create_snapshot(id_out, c, parent, KILN_CACHE_SNAPSHOT_ACTIVE, err);
    if (ret < 0)
        return kiln_error_wrap(err, "prepare snapshot on %s", parent ? parent : "(none)");
    return 0;
}

int
kiln_cache_snapshot_view(char *id_out, kiln_cache *c, const char *parent, kiln_error **err)
{
    int ret;

    if (parent == NULL)
        return kiln_error_set(err, KILN_EINVAL, "a snapshot view needs a parent");
    ret = create_snapshot(id_out, c, parent, KILN_CACHE_SNAPSHOT_VIEW, err);
    if (ret < 0)
        return kiln_error_wrap(err, "view snapshot %s", parent);
    return 0;
}

int
kiln_cache_snapshot_commit(kiln_cache *c, const char *id, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *fs = NULL;
    cleanup_free char *work = NULL;
    cache_snap s = {0};
    uint64_t size = 0;
    int ret;

    if (!kiln_cache__valid_id(id))
        return kiln_error_set(err, KILN_EINVAL, "invalid snapshot id `%s`", id ? id : "(null)");
    fs = xasprintf("%s/snapshots/%s/fs", c->root, id);
    work = xasprintf("%s/snapshots/%s/work", c->root, id);
    ret = kiln_cache__tree_size(&size, fs, err);
    if (ret == 0)
        ret = kiln_cache__txn_begin(&t, c, true, err);
    if (ret == 0)
        ret = kiln_cache__snap_load(&s, t, c, id, err);
    if (ret == 0 && s.kind != KILN_CACHE_SNAPSHOT_ACTIVE)
        ret = kiln_error_set(err, KILN_EINVAL, "snapshot %s is %s, not active", id,
                             kind_str(s.kind));
    if (ret == 0) {
        s.kind = KILN_CACHE_SNAPSHOT_COMMITTED;
        s.size = size;
        s.last_used = kiln_cache__now();
        ret = kiln_cache__snap_store(t, c, id, &s, err);
    }
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    kiln_cache__snap_dispose(&s);
    if (ret < 0)
        return kiln_error_wrap(err, "commit snapshot %s", id);
    /* The work dir is overlay scratch space; a crash before this leaves it, harmlessly. */
    kiln_error *tmp = NULL;
    if (kiln_fs_rm_rf(work, &tmp) < 0)
        kiln_error_free(&tmp);
    return 0;
}

int
kiln_cache_snapshot_info_get(kiln_cache_snapshot_info *out, kiln_cache *c, const char *id,
                             kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cache_snap s = {0};
    const char *k;
    json_t *v;
    size_t n = 0;
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = kiln_cache__snap_load(&s, t, c, id, err);
    if (ret < 0)
        return ret;
    memset(out, 0, sizeof(*out));
    kiln_strlcpy(out->id, id, sizeof(out->id));
    out->parent = steal_pointer(&s.parent);
    out->blob = steal_pointer(&s.blob);
    out->kind = s.kind;
    out->size = s.size;
    out->created = s.created;
    out->last_used = s.last_used;
    out->labels = xcalloc(2 * json_object_size(s.labels) + 1, sizeof(char *));
    json_object_foreach(s.labels, k, v)
    {
        out->labels[n++] = xstrdup(k);
        out->labels[n++] = xstrdup(json_string_value(v));
    }
    kiln_cache__snap_dispose(&s);
    return 0;
}

/* ---- mounts, labels, blobs, diff ----------------------------------------------------------- */

static int
mounts_overlay(kiln_cache_mounts *m, MDB_txn *t, kiln_cache *c, const char *id, const cache_snap *s,
               kiln_error **err)
{
    kiln_vec dirs = KILN_VEC_INIT;
    int ret = 0;

    if (s->kind == KILN_CACHE_SNAPSHOT_COMMITTED)
        ret = chain_dirs(&dirs, t, c, id, err);
    else if (s->parent)
        ret = chain_dirs(&dirs, t, c, s->parent, err);
    if (ret < 0) {
        kiln_strvec_dispose(&dirs);
        return ret;
    }
    if (s->kind == KILN_CACHE_SNAPSHOT_ACTIVE) {
        m->upper = xasprintf("%s/snapshots/%s/fs", c->root, id);
        m->work = xasprintf("%s/snapshots/%s/work", c->root, id);
    }
    m->nlower = dirs.len;
    kiln_vec_push(&dirs, NULL);
    m->lower = (char **)dirs.items; /* takes the array and its strings */
    return 0;
}

int
kiln_cache_snapshot_mounts(kiln_cache_mounts *out, kiln_cache *c, const char *id, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    kiln_cache_mounts m = {0};
    cache_snap s = {0};
    kiln_vec dirs = KILN_VEC_INIT;
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = kiln_cache__snap_load(&s, t, c, id, err);
    if (ret < 0)
        return kiln_error_wrap(err, "mounts of snapshot");
    if (c->overlay) {
        ret = mounts_overlay(&m, t, c, id, &s, err);
    } else {
        const char *src = s.kind == KILN_CACHE_SNAPSHOT_VIEW ? s.parent : id;
        if (s.kind == KILN_CACHE_SNAPSHOT_ACTIVE) {
            m.upper = xasprintf("%s/snapshots/%s/fs", c->root, id);
        } else {
            kiln_vec_push(&dirs, xasprintf("%s/snapshots/%s/fs", c->root, src));
            m.nlower = 1;
            kiln_vec_push(&dirs, NULL);
            m.lower = (char **)dirs.items;
        }
    }
    kiln_cache__snap_dispose(&s);
    kiln_cache__txn_abort(&t);
    if (ret < 0)
        return ret;
    if (m.lower == NULL)
        m.lower = xcalloc(1, sizeof(char *));
    *out = m;
    return 0;
}

int
kiln_cache_snapshot_set_label(kiln_cache *c, const char *id, const char *key, const char *value,
                              kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cache_snap s = {0};
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (key == NULL || key[0] == 0)
        return kiln_error_set(err, KILN_EINVAL, "empty label key");
    if (ret == 0)
        ret = kiln_cache__snap_load(&s, t, c, id, err);
    if (ret < 0)
        return ret;
    if (value)
        json_object_set_new(s.labels, key, json_string(value));
    else
        json_object_del(s.labels, key);
    ret = kiln_cache__snap_store(t, c, id, &s, err);
    kiln_cache__snap_dispose(&s);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    return ret;
}

int
kiln_cache_snapshot_set_blob(kiln_cache *c, const char *id, const char *digest, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cache_snap s = {0};
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret == 0)
        ret = kiln_cache__snap_load(&s, t, c, id, err);
    if (ret < 0)
        return ret;
    if (s.kind != KILN_CACHE_SNAPSHOT_COMMITTED)
        ret = kiln_error_set(err, KILN_EINVAL, "snapshot %s is not committed", id);
    if (ret == 0)
        ret = kiln_cache__blob_ref(t, c, digest, +1, err);
    if (ret == 0 && s.blob)
        ret = kiln_cache__blob_ref(t, c, s.blob, -1, err);
    if (ret == 0) {
        free(s.blob);
        s.blob = xstrdup(digest);
        ret = kiln_cache__snap_store(t, c, id, &s, err);
    }
    kiln_cache__snap_dispose(&s);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    if (ret < 0)
        return kiln_error_wrap(err, "set diff blob of snapshot %s", id);
    return 0;
}

int
kiln_cache_snapshot_diff(kiln_cache *c, const char *id, kiln_cache_diff_fn fn, void *payload,
                         kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *fs = NULL;
    cleanup_free char *pfs = NULL;
    cache_snap s = {0};
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = kiln_cache__snap_load(&s, t, c, id, err);
    kiln_cache__txn_abort(&t);
    if (ret < 0)
        return ret;
    fs = xasprintf("%s/snapshots/%s/fs", c->root, id);
    if (!c->overlay && s.parent)
        pfs = xasprintf("%s/snapshots/%s/fs", c->root, s.parent);
    if (s.kind == KILN_CACHE_SNAPSHOT_VIEW)
        ret = 0; /* a view has no changes of its own */
    else if (c->overlay)
        ret = kiln_cache__diff_walk(fs, fn, payload, err);
    else
        ret = kiln_cache__diff_trees(fs, pfs, fn, payload, err);
    kiln_cache__snap_dispose(&s);
    if (ret < 0)
        return kiln_error_wrap(err, "diff of snapshot %s", id);
    return ret; /* 0, or the callback's positive stop value */
}
