/*
 * cache_fsck.c: crash recovery at open (the sweep) and the consistency checker.
 *
 * The store's write order (files first, then the record naming them; records deleted before their
 * files) means a crash leaves only debris nothing names: ingest temp files, snapshot dirs without
 * a record, blob files without a record, trash, and mounts left under the state dir. The sweep
 * removes them, and runs only when this process is the store's only user (exclusive flock), since
 * another process's in-flight files look exactly like debris. One repair is a record: a blob
 * record whose file is gone with no refs left (a crash inside blob delete or prune, which unlink
 * under the write lock before committing) is dropped. And since no build can be running, leases
 * are released and active snapshots and views that nothing holds are removed (see sweep_stale).
 *
 * kiln_cache_fsck() reads every table and reports what does not hold; it never repairs.
 */
#define KILN_LOG_DOMAIN "cache"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "base/base.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/map.h"
#include "base/vec.h"
#include "cache/cache_internal.h"

/* ---- sweep ---------------------------------------------------------------------------------- */

/* Undo mountinfo's octal escapes (\040 for space...) in place. */
static void
unescape_mountinfo(char *s)
{
    char *w = s;

    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
}

/* Detach every mount below `root` (deepest first: mountinfo lists parents before children). */
static void
sweep_mounts(const char *root)
{
    cleanup_file FILE *f = fopen("/proc/self/mountinfo", "re");
    cleanup_free char *line = NULL;
    cleanup_free char *prefix = xasprintf("%s/", root);
    kiln_vec points = KILN_VEC_INIT;
    size_t cap = 0;

    if (f == NULL)
        return;
    while (getline(&line, &cap, f) > 0) {
        char *save = NULL, *field = strtok_r(line, " ", &save);
        for (int i = 0; field && i < 4; i++)
            field = strtok_r(NULL, " ", &save);
        if (field == NULL)
            continue;
        unescape_mountinfo(field);
        if (kiln_str_has_prefix(field, prefix))
            kiln_strvec_push(&points, field);
    }
    for (size_t i = points.len; i > 0; i--) {
        const char *p = points.items[i - 1];
        if (umount2(p, MNT_DETACH) == 0)
            kiln_log_info("sweep: unmounted stale mount `%s`", p);
    }
    kiln_strvec_dispose(&points);
}

typedef int (*entry_fn)(kiln_cache *c, MDB_txn *t, const char *dir, const char *name,
                        kiln_error **err);

static int
each_entry(kiln_cache *c, MDB_txn *t, const char *dir, entry_fn fn, kiln_error **err)
{
    cleanup_dir DIR *d = opendir(dir);
    struct dirent *e;
    int ret = 0;

    if (d == NULL)
        return errno == ENOENT ? 0 : kiln_error_errno(err, errno, "open `%s`", dir);
    while (ret == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        ret = fn(c, t, dir, e->d_name, err);
    }
    return ret;
}

static int
sweep_rm(kiln_cache *c, MDB_txn *t, const char *dir, const char *name, kiln_error **err)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, name);
    (void)c;
    (void)t;
    kiln_log_info("sweep: removing `%s`", p);
    return kiln_fs_rm_rf(p, err);
}

static bool
has_record(MDB_txn *t, kiln_cache *c, cache_db db, const char *key)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    return k.mv_size > 0 && k.mv_size <= 511 && mdb_get(t, c->dbi[db], &k, &v) == 0;
}

static int
sweep_snapshot(kiln_cache *c, MDB_txn *t, const char *dir, const char *name, kiln_error **err)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, name);

    if (kiln_cache__valid_id(name) && has_record(t, c, CACHE_DB_SNAPSHOTS, name))
        return 0;
    kiln_log_info("sweep: removing snapshot dir without record `%s`", p);
    return kiln_cache__trash_dir(c, p, err);
}

static int
sweep_blob(kiln_cache *c, MDB_txn *t, const char *dir, const char *name, kiln_error **err)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, name);
    cleanup_free char *digest = xasprintf("sha256:%s", name);

    if (kiln_digest_valid(digest) && has_record(t, c, CACHE_DB_BLOBS, digest))
        return 0;
    kiln_log_info("sweep: removing blob file without record `%s`", p);
    if (unlink(p) < 0 && errno != ENOENT)
        return kiln_error_errno(err, errno, "unlink `%s`", p);
    return 0;
}

/* Drop blob records with no file and no refs (a crash between unlink and commit). */
static int
sweep_blob_records(kiln_cache *c, MDB_txn *t, kiln_error **err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, ret = 0;

    rc = mdb_cursor_open(t, c->dbi[CACHE_DB_BLOBS], &cur);
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "open blobs cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        cleanup_free char *digest = xstrndup(k.mv_data, k.mv_size);
        cleanup_free char *path = NULL;
        cache_blob b = {0};
        kiln_error *tmp = NULL;
        if (!kiln_digest_valid(digest) || kiln_cache__blob_decode(&b, &v, digest, &tmp) < 0) {
            kiln_error_free(&tmp); /* fsck reports corrupt records */
            continue;
        }
        path = kiln_cache__blob_path(c, digest);
        if (b.refs == 0 && access(path, F_OK) < 0 && errno == ENOENT) {
            kiln_log_info("sweep: dropping record of missing blob %s", digest);
            rc = mdb_cursor_del(cur, 0);
            if (rc != 0)
                ret = kiln_error_from_mdb(err, rc, "drop blob record %s", digest);
        }
        kiln_cache__blob_dispose(&b);
    }
    mdb_cursor_close(cur);
    if (ret == 0 && rc != MDB_NOTFOUND && rc != 0)
        ret = kiln_error_from_mdb(err, rc, "scan blobs");
    return ret;
}

/* Read the refs table: lease owners into `leases`, other owners' snapshot targets into `held`. */
struct refs_scan {
    kiln_map *leases, *held;
};

static int
read_ref_row(const char *owner, const MDB_val *v, void *payload, kiln_error **err)
{
    struct refs_scan *r = payload;
    cleanup_free char *target = xstrndup(v->mv_data, v->mv_size);

    (void)err;
    if (kiln_str_has_prefix(owner, "lease:"))
        kiln_map_put(r->leases, owner, NULL);
    else if (kiln_str_has_prefix(target, "snapshot:"))
        kiln_map_put(r->held, target + 9, NULL);
    return 0;
}

static int
read_refs(MDB_txn *t, kiln_cache *c, kiln_map *leases, kiln_map *held, kiln_error **err)
{
    struct refs_scan r = {leases, held};

    return kiln_cache__scan(t, c, CACHE_DB_REFS, read_ref_row, &r, err);
}

/* Collect active snapshots and views nothing holds (no ref, no "kiln.keep" label). */
struct stale_scan {
    const kiln_map *held;
    kiln_vec *out;
};

static int
stale_snapshot_row(const char *id, const MDB_val *v, void *payload, kiln_error **err)
{
    struct stale_scan *x = payload;
    cache_snap s = {0};
    kiln_error *tmp = NULL;

    (void)err;
    if (kiln_cache__snap_decode(&s, v, id, &tmp) < 0) {
        kiln_error_free(&tmp); /* fsck reports corrupt records */
        return 0;
    }
    if (s.kind != KILN_CACHE_SNAPSHOT_COMMITTED && !kiln_map_has(x->held, id) &&
        json_object_get(s.labels, "kiln.keep") == NULL)
        kiln_strvec_push(x->out, id);
    kiln_cache__snap_dispose(&s);
    return 0;
}

static int
stale_snapshots(MDB_txn *t, kiln_cache *c, const kiln_map *held, kiln_vec *out, kiln_error **err)
{
    struct stale_scan x = {held, out};

    return kiln_cache__scan(t, c, CACHE_DB_SNAPSHOTS, stale_snapshot_row, &x, err);
}

/* With no other process around, no build is running: every lease is stale, and so is every
 * active snapshot or view nothing holds. Their records go here (one txn); their directories
 * become orphans that the rest of the sweep trashes. */
static int
sweep_stale(kiln_cache *c, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    kiln_map leases = KILN_MAP_INIT, held = KILN_MAP_INIT;
    kiln_vec stale = KILN_VEC_INIT;
    void *item;
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret == 0)
        ret = read_refs(t, c, &leases, &held, err);
    kiln_map_foreach(&leases, e) {
        if (ret == 0) {
            kiln_log_info("sweep: releasing stale %s", e->key);
            ret = kiln_cache__ref_drop_owner(t, c, e->key, err);
        }
    }
    if (ret == 0)
        ret = stale_snapshots(t, c, &held, &stale, err);
    kiln_vec_foreach(&stale, i, item) {
        cache_snap s = {0};
        if (ret == 0)
            ret = kiln_cache__snap_load(&s, t, c, item, err);
        if (ret == 0) {
            kiln_log_info("sweep: removing stale %s snapshot %s",
                          s.kind == KILN_CACHE_SNAPSHOT_ACTIVE ? "active" : "view",
                          (const char *)item);
            ret = kiln_cache__del(t, c, CACHE_DB_SNAPSHOTS, item, "snapshot", err);
        }
        if (ret == 0 && s.blob)
            ret = kiln_cache__blob_ref(t, c, s.blob, -1, err);
        kiln_cache__snap_dispose(&s);
    }
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    kiln_map_dispose(&leases, NULL);
    kiln_map_dispose(&held, NULL);
    kiln_strvec_dispose(&stale);
    return ret;
}

int
kiln_cache__sweep(kiln_cache *c, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *real = realpath(c->root, NULL);
    cleanup_free char *ingest = xasprintf("%s/ingest", c->root);
    cleanup_free char *mounts = xasprintf("%s/mounts", c->root);
    cleanup_free char *snaps = xasprintf("%s/snapshots", c->root);
    cleanup_free char *blobs = xasprintf("%s/blobs/sha256", c->root);
    int ret;

    sweep_mounts(real ? real : c->root);
    ret = each_entry(c, NULL, ingest, sweep_rm, err);
    if (ret == 0)
        ret = each_entry(c, NULL, mounts, sweep_rm, err);
    kiln_cache__empty_trash(c);
    if (ret == 0)
        ret = sweep_stale(c, err);
    if (ret == 0)
        ret = kiln_cache__txn_begin(&t, c, true, err);
    if (ret == 0)
        ret = each_entry(c, t, snaps, sweep_snapshot, err);
    if (ret == 0)
        ret = each_entry(c, t, blobs, sweep_blob, err);
    if (ret == 0)
        ret = sweep_blob_records(c, t, err);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    kiln_cache__empty_trash(c);
    return ret;
}

/* ---- fsck ----------------------------------------------------------------------------------- */

typedef struct fsck_ctx {
    kiln_cache *c;
    MDB_txn *t;
    kiln_vec problems;
    kiln_map snaps;     /* id -> cache_snap * (decoded ones) */
    kiln_map blob_refs; /* digest -> (void *)(uintptr_t)expected refcount */
    bool deep;
} fsck_ctx;

static void problem(fsck_ctx *x, const char *fmt, ...) KILN_PRINTF(2, 3);

static void
problem(fsck_ctx *x, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    kiln_vec_push(&x->problems, xvasprintf(fmt, ap));
    va_end(ap);
}

static void
count_blob_ref(fsck_ctx *x, const char *digest)
{
    uintptr_t n = (uintptr_t)kiln_map_get(&x->blob_refs, digest);
    kiln_map_put(&x->blob_refs, digest, (void *)(n + 1));
}

typedef void (*row_fn)(fsck_ctx *x, const char *key, const MDB_val *v);

struct row_scan {
    fsck_ctx *x;
    row_fn fn;
};

static int
each_row_cb(const char *key, const MDB_val *v, void *payload, kiln_error **err)
{
    struct row_scan *r = payload;

    (void)err;
    r->fn(r->x, key, v);
    return 0;
}

static int
each_row(fsck_ctx *x, cache_db db, row_fn fn, kiln_error **err)
{
    struct row_scan r = {x, fn};

    return kiln_cache__scan(x->t, x->c, db, each_row_cb, &r, err);
}

static void
load_snap_row(fsck_ctx *x, const char *id, const MDB_val *v)
{
    cache_snap *s = xnew(cache_snap);
    kiln_error *tmp = NULL;

    if (!kiln_cache__valid_id(id) || kiln_cache__snap_decode(s, v, id, &tmp) < 0) {
        problem(x, "snapshot `%s`: %s", id, tmp ? tmp->msg : "invalid id");
        kiln_error_free(&tmp);
        free(s);
        return;
    }
    kiln_map_put(&x->snaps, id, s);
    if (s->blob)
        count_blob_ref(x, s->blob);
}

static void
check_dir(fsck_ctx *x, const char *id, const char *sub)
{
    cleanup_free char *p = xasprintf("%s/snapshots/%s/%s", x->c->root, id, sub);
    if (!kiln_fs_is_dir(p))
        problem(x, "snapshot %s: directory `%s` is missing", id, p);
}

static void
check_snap(fsck_ctx *x, const char *id, const cache_snap *s)
{
    const cache_snap *p;
    const char *cur = s->parent;
    size_t depth = 0;

    check_dir(x, id, "fs");
    if (s->kind == KILN_CACHE_SNAPSHOT_ACTIVE && x->c->overlay)
        check_dir(x, id, "work");
    if (s->flat && kiln_map_get(&x->snaps, s->flat) == NULL)
        problem(x, "snapshot %s: flattened copy %s is missing", id, s->flat);
    if (s->parent && (p = kiln_map_get(&x->snaps, s->parent)) == NULL)
        problem(x, "snapshot %s: parent %s is missing", id, s->parent);
    else if (s->parent && p->kind != KILN_CACHE_SNAPSHOT_COMMITTED)
        problem(x, "snapshot %s: parent %s is not committed", id, s->parent);
    while (cur && (p = kiln_map_get(&x->snaps, cur)) != NULL) {
        if (++depth > x->snaps.len) {
            problem(x, "snapshot %s: parent chain has a cycle", id);
            break;
        }
        cur = p->parent;
    }
}

static void
check_key_row(fsck_ctx *x, const char *key, const MDB_val *v)
{
    kiln_cache_result r = {0};
    kiln_error *tmp = NULL;
    cache_snap *s;

    if (kiln_cache__key_decode(&r, v, key, &tmp) < 0) {
        problem(x, "%s", tmp->msg);
        kiln_error_free(&tmp);
        return;
    }
    s = kiln_map_get(&x->snaps, r.snapshot_id);
    if (s == NULL)
        problem(x, "cache key `%s`: snapshot %s is missing", key, r.snapshot_id);
    else if (s->kind != KILN_CACHE_SNAPSHOT_COMMITTED)
        problem(x, "cache key `%s`: snapshot %s is not committed", key, r.snapshot_id);
    kiln_cache_result_dispose(&r);
}

static void
check_json_row(fsck_ctx *x, const char *key, const MDB_val *v)
{
    cleanup_json json_t *j = NULL;
    kiln_error *tmp = NULL;

    if (kiln_json_parse(&j, v->mv_data, v->mv_size, 0, key, &tmp) < 0) {
        problem(x, "record `%s`: %s", key, tmp->msg);
        kiln_error_free(&tmp);
    }
}

static void
check_ref_row(fsck_ctx *x, const char *owner, const MDB_val *v)
{
    cleanup_free char *target = xstrndup(v->mv_data, v->mv_size);
    MDB_val k, tmpv;

    if (kiln_str_has_prefix(target, "snapshot:")) {
        if (kiln_map_get(&x->snaps, target + 9) == NULL)
            problem(x, "ref `%s` -> `%s`: snapshot is missing", owner, target);
        return;
    }
    if (kiln_str_has_prefix(target, "blob:") && kiln_digest_valid(target + 5)) {
        k.mv_size = strlen(target + 5);
        k.mv_data = target + 5;
        if (mdb_get(x->t, x->c->dbi[CACHE_DB_BLOBS], &k, &tmpv) != 0)
            problem(x, "ref `%s` -> `%s`: blob is missing", owner, target);
        count_blob_ref(x, target + 5);
        return;
    }
    problem(x, "ref `%s` -> `%s`: malformed target", owner, target);
}

static void
verify_blob_content(fsck_ctx *x, const char *digest, const char *path)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    kiln_error *tmp = NULL;
    kiln_sha256 sum;
    char got[KILN_DIGEST_STRLEN + 1];

    if (fd < 0 || kiln_sha256_fd(&sum, fd, &tmp) < 0) {
        problem(x, "blob %s: cannot hash `%s`", digest, path);
        kiln_error_free(&tmp);
        return;
    }
    kiln_digest_format(got, &sum);
    if (strcmp(got, digest) != 0)
        problem(x, "blob %s: content hashes to %s", digest, got);
}

static void
check_blob_row(fsck_ctx *x, const char *digest, const MDB_val *v)
{
    cleanup_free char *path = NULL;
    cache_blob b = {0};
    kiln_error *tmp = NULL;
    struct stat st;
    uintptr_t want;

    if (!kiln_digest_valid(digest) || kiln_cache__blob_decode(&b, v, digest, &tmp) < 0) {
        problem(x, "blob `%s`: %s", digest, tmp ? tmp->msg : "invalid digest");
        kiln_error_free(&tmp);
        return;
    }
    path = kiln_cache__blob_path(x->c, digest);
    if (stat(path, &st) < 0)
        problem(x, "blob %s: file `%s` is missing", digest, path);
    else if ((uint64_t)st.st_size != b.size)
        problem(x, "blob %s: file has %lld bytes, record says %llu", digest, (long long)st.st_size,
                (unsigned long long)b.size);
    else if (x->deep)
        verify_blob_content(x, digest, path);
    want = (uintptr_t)kiln_map_get(&x->blob_refs, digest);
    if (b.refs != want)
        problem(x, "blob %s: refcount %llu, but %llu references exist", digest,
                (unsigned long long)b.refs, (unsigned long long)want);
    kiln_map_remove(&x->blob_refs, digest);
    kiln_cache__blob_dispose(&b);
}

/* Only meaningful when no other process is using the store (else files may be in flight). */
static void
check_orphans(fsck_ctx *x)
{
    cleanup_free char *snaps = xasprintf("%s/snapshots", x->c->root);
    cleanup_free char *blobs = xasprintf("%s/blobs/sha256", x->c->root);
    cleanup_dir DIR *d = NULL;
    struct dirent *e;

    d = opendir(snaps);
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (kiln_map_get(&x->snaps, e->d_name) == NULL)
            problem(x, "snapshot dir `%s/%s` has no record", snaps, e->d_name);
    }
    if (d)
        closedir(d);
    d = opendir(blobs);
    while (d && (e = readdir(d)) != NULL) {
        cleanup_free char *digest = xasprintf("sha256:%s", e->d_name);
        MDB_val k = {strlen(digest), digest}, v;
        if (e->d_name[0] == '.')
            continue;
        if (mdb_get(x->t, x->c->dbi[CACHE_DB_BLOBS], &k, &v) != 0)
            problem(x, "blob file `%s/%s` has no record", blobs, e->d_name);
    }
}

static void
snap_free(void *p)
{
    kiln_cache__snap_dispose(p);
    free(p);
}

void
kiln_cache_fsck_report_dispose(kiln_cache_fsck_report *r)
{
    if (r->problems) {
        for (size_t i = 0; i < r->len; i++)
            free(r->problems[i]);
        free(r->problems);
    }
    memset(r, 0, sizeof(*r));
}

static int
fsck_tables(fsck_ctx *x, kiln_error **err)
{
    int ret = each_row(x, CACHE_DB_SNAPSHOTS, load_snap_row, err);

    kiln_map_foreach(&x->snaps, e) {
        check_snap(x, e->key, e->value);
    }
    if (ret == 0)
        ret = each_row(x, CACHE_DB_KEYS, check_key_row, err);
    if (ret == 0)
        ret = each_row(x, CACHE_DB_REFS, check_ref_row, err);
    if (ret == 0)
        ret = each_row(x, CACHE_DB_IMAGES, check_json_row, err);
    if (ret == 0)
        ret = each_row(x, CACHE_DB_HISTORY, check_json_row, err);
    if (ret == 0)
        ret = each_row(x, CACHE_DB_BLOBS, check_blob_row, err);
    kiln_map_foreach(&x->blob_refs, e) /* references to blobs without a record */
    {
        problem(x, "blob %s is referenced but has no record", e->key);
    }
    return ret;
}

int
kiln_cache_fsck(kiln_cache_fsck_report *out, kiln_cache *c, bool deep, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    fsck_ctx x = {c, NULL, KILN_VEC_INIT, KILN_MAP_INIT, KILN_MAP_INIT, deep};
    bool alone;
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret < 0)
        return ret;
    x.t = t;
    ret = fsck_tables(&x, err);
    /* Orphan files are debris only when nobody else can be writing them. */
    alone = c->lock_fd >= 0 && flock(c->lock_fd, LOCK_EX | LOCK_NB) == 0;
    if (ret == 0 && alone)
        check_orphans(&x);
    if (alone)
        flock(c->lock_fd, LOCK_SH);
    kiln_map_dispose(&x.snaps, snap_free);
    kiln_map_dispose(&x.blob_refs, NULL);
    if (ret < 0) {
        kiln_strvec_dispose(&x.problems);
        return kiln_error_wrap(err, "fsck `%s`", c->root);
    }
    out->len = x.problems.len;
    kiln_vec_push(&x.problems, NULL);
    out->problems = (char **)x.problems.items;
    return 0;
}
