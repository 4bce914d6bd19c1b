/*
 * cache_store.c: opening the state dir, the LMDB environment and its named databases, the
 * transaction helpers every other cache file uses, and the simple tables (cache keys, images,
 * history, content checksums, leases/refs).
 *
 * Concurrency: the environment is opened with MDB_NOTLS and every call runs its own transaction,
 * so any thread may call in; LMDB's lock file serialises writers across processes. A flock on
 * `<root>/lock` tells whether this process is alone: only then is crash debris swept at open.
 */
#define KILN_LOG_DOMAIN "cache"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/json.h"
#include "cache/cache_internal.h"

#define CACHE_MAP_SIZE ((size_t)8 << 30) /* virtual address space only */

static const char *const db_names[CACHE_DB_COUNT] = {
        "meta", "keys", "snapshots", "blobs", "images", "history", "checksums", "refs",
};

int
kiln_error_from_mdb(kiln_error **err, int rc, const char *fmt, ...)
{
    va_list ap;
    cleanup_free char *ctx = NULL;

    va_start(ap, fmt);
    ctx = xvasprintf(fmt, ap);
    va_end(ap);
    switch (rc) {
    case MDB_NOTFOUND:
        return kiln_error_set(err, KILN_ENOTFOUND, "%s: not found", ctx);
    case MDB_MAP_FULL:
        return kiln_error_errno(err, ENOSPC, "%s: metadata map full", ctx);
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
        return kiln_error_set(err, KILN_EUNSUPPORTED, "%s: %s", ctx, mdb_strerror(rc));
    case MDB_INVALID:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
        return kiln_error_set(err, KILN_EPARSE, "%s: %s", ctx, mdb_strerror(rc));
    default:
        if (rc > 0)
            return kiln_error_errno(err, rc, "%s", ctx);
        return kiln_error_set(err, KILN_EINTERNAL, "%s: %s", ctx, mdb_strerror(rc));
    }
}

void
kiln_cache__txn_abort(MDB_txn **t)
{
    if (*t)
        mdb_txn_abort(*t);
    *t = NULL;
}

int
kiln_cache__txn_begin(MDB_txn **out, kiln_cache *c, bool write, kiln_error **err)
{
    int rc = mdb_txn_begin(c->env, NULL, write ? 0 : MDB_RDONLY, out);
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "begin transaction in `%s`", c->root);
    return 0;
}

int
kiln_cache__read_begin(MDB_txn **out, kiln_cache *c, kiln_error **err)
{
    MDB_txn *t = NULL;

    pthread_mutex_lock(&c->spare_lock);
    if (c->nspare > 0)
        t = c->spare[--c->nspare];
    pthread_mutex_unlock(&c->spare_lock);
    if (t && mdb_txn_renew(t) == 0) {
        *out = t;
        return 0;
    }
    if (t)
        mdb_txn_abort(t);
    return kiln_cache__txn_begin(out, c, false, err);
}

void
kiln_cache__read_end(kiln_cache *c, MDB_txn *t)
{
    mdb_txn_reset(t);
    pthread_mutex_lock(&c->spare_lock);
    if (c->nspare < CACHE_SPARE_READERS) {
        c->spare[c->nspare++] = t;
        t = NULL;
    }
    pthread_mutex_unlock(&c->spare_lock);
    if (t)
        mdb_txn_abort(t);
}

int
kiln_cache__txn_commit(MDB_txn **t, kiln_error **err)
{
    int rc = mdb_txn_commit(*t);
    *t = NULL;
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "commit transaction");
    return 0;
}

int
kiln_cache__get(MDB_val *out, MDB_txn *t, kiln_cache *c, cache_db db, const char *key,
                const char *what, kiln_error **err)
{
    MDB_val k = {strlen(key), (void *)key};
    int rc;

    if (k.mv_size == 0 || k.mv_size > 511)
        return kiln_error_set(err, KILN_EINVAL, "%s key of %zu bytes (1..511 allowed)", what,
                              k.mv_size);
    rc = mdb_get(t, c->dbi[db], &k, out);
    if (rc == MDB_NOTFOUND)
        return kiln_error_set(err, KILN_ENOTFOUND, "%s `%s` not found", what, key);
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "read %s `%s`", what, key);
    return 0;
}

int
kiln_cache__put(MDB_txn *t, kiln_cache *c, cache_db db, const char *key, const void *data,
                size_t len, kiln_error **err)
{
    MDB_val k = {strlen(key), (void *)key};
    MDB_val v = {len, (void *)data};
    int rc;

    if (k.mv_size == 0 || k.mv_size > 511)
        return kiln_error_set(err, KILN_EINVAL, "%s key of %zu bytes (1..511 allowed)",
                              db_names[db], k.mv_size);
    rc = mdb_put(t, c->dbi[db], &k, &v, 0);
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "write %s `%s`", db_names[db], key);
    return 0;
}

int
kiln_cache__del(MDB_txn *t, kiln_cache *c, cache_db db, const char *key, const char *what,
                kiln_error **err)
{
    MDB_val k = {strlen(key), (void *)key};
    int rc;

    if (k.mv_size == 0 || k.mv_size > 511)
        return kiln_error_set(err, KILN_ENOTFOUND, "%s `%s` not found", what, key);
    rc = mdb_del(t, c->dbi[db], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return kiln_error_set(err, KILN_ENOTFOUND, "%s `%s` not found", what, key);
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "delete %s `%s`", what, key);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------------- */

void
kiln_cache__random_hex(char *out, size_t nbytes)
{
    unsigned char raw[64];
    size_t got = 0;

    kiln_assert(nbytes <= sizeof(raw));
    while (got < nbytes) {
        ssize_t n = getrandom(raw + got, nbytes - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        kiln_assert(n > 0);
        got += (size_t)n;
    }
    kiln_hex_encode(out, raw, nbytes);
}

bool
kiln_cache__valid_id(const char *id)
{
    size_t i;

    if (id == NULL)
        return false;
    for (i = 0; id[i]; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    }
    return i == 32;
}

int64_t
kiln_cache__now(void)
{
    return (int64_t)time(NULL);
}

char *
kiln_cache__blob_path(const kiln_cache *c, const char *digest)
{
    return xasprintf("%s/blobs/sha256/%s", c->root, digest + strlen("sha256:"));
}

char *
kiln_cache__snap_dir(const kiln_cache *c, const char *id)
{
    return xasprintf("%s/snapshots/%s", c->root, id);
}

char *
kiln_cache_default_root(void)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    struct passwd *pw;

    if (geteuid() == 0)
        return xstrdup("/var/lib/kiln");
    if (xdg && xdg[0] == '/')
        return xasprintf("%s/kiln", xdg);
    if (home == NULL || home[0] != '/') {
        pw = getpwuid(geteuid());
        home = pw ? pw->pw_dir : "/tmp";
    }
    return xasprintf("%s/.local/share/kiln", home);
}

const char *
kiln_cache_root(const kiln_cache *c)
{
    return c->root;
}

bool
kiln_cache_uses_overlay(const kiln_cache *c)
{
    return c->overlay;
}

/* ---- open ----------------------------------------------------------------------------- */

/* Try an overlay mount inside the state dir (so the probe tests the filesystem that will hold
 * the snapshots, e.g. overlay on overlay fails). */
static bool
probe_overlay(const char *root)
{
    cleanup_free char *dir = NULL;
    cleanup_free char *opts = NULL;
    cleanup_free char *merged = NULL;
    kiln_error *tmp = NULL;
    const char *subs[] = {"lower", "upper", "work", "merged"};
    bool ok = false;
    char *mtmp = xasprintf("%s/mounts", root);

    if (kiln_fs_mkdtemp(&dir, mtmp, "probe-", &tmp) < 0) {
        free(mtmp);
        kiln_error_free(&tmp);
        return false;
    }
    free(mtmp);
    for (size_t i = 0; i < 4; i++) {
        cleanup_free char *p = xasprintf("%s/%s", dir, subs[i]);
        if (mkdir(p, 0700) < 0)
            goto out;
    }
    merged = xasprintf("%s/merged", dir);
    opts = xasprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", dir, dir, dir);
    if (mount("overlay", merged, "overlay", 0, opts) == 0) {
        ok = true;
        umount2(merged, MNT_DETACH);
    }
out:
    kiln_fs_rm_rf(dir, &tmp);
    kiln_error_free(&tmp);
    return ok;
}

/* Read or initialise the schema version. */
static int
check_schema(kiln_cache *c, MDB_txn *t, kiln_error **err)
{
    MDB_val v;
    char buf[32];
    int64_t ver = 0;
    int ret = kiln_cache__get(&v, t, c, CACHE_DB_META, "schema", "meta", err);

    if (ret == KILN_ENOTFOUND) {
        kiln_error_free(err);
        snprintf(buf, sizeof(buf), "%d", KILN_CACHE_SCHEMA);
        return kiln_cache__put(t, c, CACHE_DB_META, "schema", buf, strlen(buf), err);
    }
    if (ret < 0)
        return ret;
    if (v.mv_size == 0 || v.mv_size >= sizeof(buf))
        return kiln_error_set(err, KILN_EUNSUPPORTED, "state dir `%s`: unknown schema version",
                              c->root);
    memcpy(buf, v.mv_data, v.mv_size);
    buf[v.mv_size] = 0;
    if (kiln_parse_i64(buf, &ver, "schema version", NULL) < 0 || ver < 1)
        return kiln_error_set(err, KILN_EUNSUPPORTED, "state dir `%s`: unknown schema version `%s`",
                              c->root, buf);
    if (ver > KILN_CACHE_SCHEMA)
        return kiln_error_set(err, KILN_EUNSUPPORTED,
                              "state dir `%s` has schema version %lld, newer than this kiln "
                              "supports (%d)",
                              c->root, (long long)ver, KILN_CACHE_SCHEMA);
    return 0;
}

static int
open_env(kiln_cache *c, kiln_error **err)
{
    cleanup_free char *dir = xasprintf("%s/meta.mdb", c->root);
    cleanup_mdb_txn MDB_txn *t = NULL;
    int rc, ret;

    rc = mdb_env_create(&c->env);
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "create lmdb environment");
    mdb_env_set_maxdbs(c->env, CACHE_DB_COUNT + 2);
    mdb_env_set_mapsize(c->env, CACHE_MAP_SIZE);
    mdb_env_set_maxreaders(c->env, 254);
    ret = kiln_fs_mkdir_p(dir, 0700, err);
    if (ret < 0)
        return ret;
    rc = mdb_env_open(c->env, dir, MDB_NOTLS, 0600);
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "open `%s`", dir);
    ret = kiln_cache__txn_begin(&t, c, true, err);
    if (ret < 0)
        return ret;
    for (int i = 0; i < CACHE_DB_COUNT; i++) {
        unsigned flags = MDB_CREATE | (i == CACHE_DB_REFS ? MDB_DUPSORT : 0);
        rc = mdb_dbi_open(t, db_names[i], flags, &c->dbi[i]);
        if (rc != 0)
            return kiln_error_from_mdb(err, rc, "open table `%s` in `%s`", db_names[i], dir);
    }
    ret = check_schema(c, t, err);
    if (ret < 0)
        return ret;
    return kiln_cache__txn_commit(&t, err);
}

static int
make_layout(const char *root, kiln_error **err)
{
    const char *subs[] = {"blobs/sha256", "ingest", "snapshots", "mounts", "trash"};
    int ret = kiln_fs_mkdir_p(root, 0700, err);

    for (size_t i = 0; ret == 0 && i < sizeof(subs) / sizeof(subs[0]); i++) {
        cleanup_free char *p = xasprintf("%s/%s", root, subs[i]);
        ret = kiln_fs_mkdir_p(p, 0700, err);
    }
    return ret;
}

static int
lock_and_sweep(kiln_cache *c, kiln_error **err)
{
    cleanup_free char *lock = xasprintf("%s/lock", c->root);
    int ret = 0;

    c->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lock_fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", lock);
    if (flock(c->lock_fd, LOCK_EX | LOCK_NB) == 0) {
        ret = kiln_cache__sweep(c, err);
        if (ret < 0)
            return kiln_error_wrap(err, "sweep `%s`", c->root);
    } else if (errno != EWOULDBLOCK) {
        return kiln_error_errno(err, errno, "lock `%s`", lock);
    }
    /* Converting to shared is not atomic; a racing opener may sweep in between, which is safe
     * because this process has not started any operation yet. */
    if (flock(c->lock_fd, LOCK_SH) < 0)
        return kiln_error_errno(err, errno, "lock `%s`", lock);
    return 0;
}

/* Snapshots of one snapshotter are meaningless to the other (change dirs vs full trees), so the
 * first open records its choice in the meta table and later opens stick to it. */
static int
choose_snapshotter(kiln_cache *c, kiln_cache_snapshotter want, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *have = NULL;
    MDB_val v;
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret < 0)
        return ret;
    ret = kiln_cache__get(&v, t, c, CACHE_DB_META, "snapshotter", "meta", err);
    if (ret == 0)
        have = xstrndup(v.mv_data, v.mv_size);
    else if (ret == KILN_ENOTFOUND)
        kiln_error_free(err);
    else
        return ret;
    if (have && strcmp(have, "overlay") != 0 && strcmp(have, "naive") != 0)
        return kiln_error_set(err, KILN_EUNSUPPORTED, "unknown snapshotter `%s`", have);
    if (kiln_str_eq(have, "naive") && want == KILN_CACHE_SNAPSHOTTER_OVERLAY)
        return kiln_error_set(err, KILN_EUNSUPPORTED, "the state dir uses the naive snapshotter");
    if (kiln_str_eq(have, "overlay") && want == KILN_CACHE_SNAPSHOTTER_NAIVE)
        return kiln_error_set(err, KILN_EUNSUPPORTED, "the state dir uses the overlay snapshotter");
    if (want != KILN_CACHE_SNAPSHOTTER_NAIVE && !kiln_str_eq(have, "naive"))
        c->overlay = probe_overlay(c->root);
    if (!c->overlay && (want == KILN_CACHE_SNAPSHOTTER_OVERLAY || kiln_str_eq(have, "overlay")))
        return kiln_error_set(err, KILN_EUNSUPPORTED, "cannot mount overlay in `%s`", c->root);
    if (have)
        return 0;
    have = xstrdup(c->overlay ? "overlay" : "naive");
    ret = kiln_cache__put(t, c, CACHE_DB_META, "snapshotter", have, strlen(have), err);
    if (ret == 0)
        ret = kiln_cache__txn_commit(&t, err);
    return ret;
}

int
kiln_cache_open(kiln_cache **out, const char *root, const kiln_cache_opts *opts, kiln_error **err)
{
    kiln_cache_opts defaults = KILN_CACHE_OPTS_INIT;
    kiln_cache *c;
    int ret;

    if (opts == NULL)
        opts = &defaults;
    if (opts->version != KILN_CACHE_OPTS_VERSION)
        return kiln_error_set(err, KILN_EINVAL, "cache options version %d (expected %d)",
                              opts->version, KILN_CACHE_OPTS_VERSION);
    if (root == NULL || root[0] == 0)
        return kiln_error_set(err, KILN_EINVAL, "empty state dir path");
    c = xnew(kiln_cache);
    c->root = xstrdup(root);
    c->lock_fd = -1;
    c->max_depth = opts->max_depth ? opts->max_depth : 100;
    pthread_mutex_init(&c->spare_lock, NULL);
    ret = make_layout(root, err);
    if (ret == 0)
        ret = open_env(c, err);
    if (ret == 0)
        ret = lock_and_sweep(c, err);
    if (ret == 0)
        ret = choose_snapshotter(c, opts->snapshotter, err);
    if (ret < 0) {
        kiln_cache_free(c);
        return kiln_error_wrap(err, "open state dir `%s`", root);
    }
    kiln_log_debug("opened `%s` (%s snapshotter)", root, c->overlay ? "overlay" : "naive");
    *out = c;
    return 0;
}

void
kiln_cache_free(kiln_cache *c)
{
    if (c == NULL)
        return;
    while (c->nspare > 0)
        mdb_txn_abort(c->spare[--c->nspare]);
    pthread_mutex_destroy(&c->spare_lock);
    if (c->env)
        mdb_env_close(c->env);
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    free(c->root);
    free(c);
}

int
kiln_cache__scan(MDB_txn *t, kiln_cache *c, cache_db db, kiln_cache__scan_fn fn, void *payload,
                 kiln_error **err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, ret = 0;

    rc = mdb_cursor_open(t, c->dbi[db], &cur);
    if (rc != 0)
        return kiln_error_from_mdb(err, rc, "open cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        cleanup_free char *key = xstrndup(k.mv_data, k.mv_size);
        ret = fn(key, &v, payload, err);
    }
    mdb_cursor_close(cur);
    if (ret < 0)
        return ret;
    if (rc != MDB_NOTFOUND)
        return kiln_error_from_mdb(err, rc, "scan table");
    return 0;
}
