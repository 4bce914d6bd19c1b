/*
 * engine_snap.c: access to snapshots for the ops. A committed snapshot is read through a view
 * (its single directory, or a read-only overlay of its chain mounted under <root>/mounts); a new
 * snapshot is written through an active snapshot whose merged tree is mounted (overlay: lower
 * chain + upper + work; naive snapshotter or a base snapshot: the upper dir itself).
 * Also the content digests of selected paths that key COPY sources by content.
 */
#define KILN_LOG_DOMAIN "engine"

#include <fcntl.h>
#include <glob.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/path.h"
#include "base/vec.h"
#include "engine/engine_internal.h"
#include "source/context.h"

#include "base/base.h"

static int
mount_overlay(char **path_out, kiln_engine *e, const kiln_cache_mounts *m, kiln_error **err)
{
    cleanup_free char *dir = NULL;
    kiln_buf opt = KILN_BUF_INIT;
    int ret;

    ret = kiln_fs_mkdtemp(&dir, e->mountdir, "m-", err);
    if (ret < 0)
        return ret;
    kiln_buf_puts(&opt, "lowerdir=", NULL);
    for (size_t i = 0; i < m->nlower; i++)
        kiln_buf_printf(&opt, NULL, "%s%s", i ? ":" : "", m->lower[i]);
    if (m->upper)
        kiln_buf_printf(&opt, NULL, ",upperdir=%s,workdir=%s", m->upper, m->work);
    if (mount("overlay", dir, "overlay", m->upper ? 0 : MS_RDONLY, opt.ptr) < 0) {
        ret = kiln_error_errno(err, errno, "mount overlay at `%s`", dir);
        kiln_buf_dispose(&opt);
        rmdir(dir);
        return ret;
    }
    kiln_buf_dispose(&opt);
    *path_out = steal_pointer(&dir);
    return 0;
}

static void
unmount_dir(char *path)
{
    if (umount2(path, MNT_DETACH) < 0)
        kiln_log_warn("unmount `%s`: %s", path, strerror(errno));
    rmdir(path);
}

int
engine_view_open(engine_view *v, kiln_engine *e, const char *id, kiln_error **err)
{
    kiln_cache_mounts m = {0};
    int ret;

    memset(v, 0, sizeof(*v));
    if (!id || !*id) {
        v->temp = true;
        return kiln_fs_mkdtemp(&v->path, e->mountdir, "scratch-", err);
    }
    ret = kiln_cache_snapshot_mounts(&m, e->cache, id, err);
    if (ret < 0)
        return kiln_error_wrap(err, "snapshot %s", id);
    if (m.nlower == 1) {
        v->path = xstrdup(m.lower[0]);
    } else if (m.nlower > 1) {
        ret = mount_overlay(&v->path, e, &m, err);
        v->mounted = ret == 0;
    } else {
        ret = kiln_error_set(err, KILN_EINTERNAL, "snapshot %s has no lower dir", id);
    }
    kiln_cache_mounts_dispose(&m);
    return ret;
}

void
engine_view_close(engine_view *v)
{
    if (v->path && v->mounted)
        unmount_dir(v->path);
    else if (v->path && v->temp)
        rmdir(v->path);
    free(v->path);
    memset(v, 0, sizeof(*v));
}

int
engine_rw_open(engine_rw *w, kiln_engine *e, const char *parent, kiln_error **err)
{
    kiln_cache_mounts m = {0};
    int ret;

    memset(w, 0, sizeof(*w));
    ret = kiln_cache_snapshot_prepare(w->id, e->cache, parent && *parent ? parent : NULL, err);
    if (ret < 0)
        return kiln_error_wrap(err, "prepare snapshot on %s", parent ? parent : "scratch");
    w->active = true;
    ret = kiln_cache_snapshot_mounts(&m, e->cache, w->id, err);
    if (ret < 0)
        return ret;
    if (m.nlower == 0) {
        w->path = xstrdup(m.upper);
    } else {
        ret = mount_overlay(&w->path, e, &m, err);
        w->mounted = ret == 0;
    }
    kiln_cache_mounts_dispose(&m);
    return ret;
}

int
engine_rw_prepare(engine_rw *w, kiln_cache_mounts *m, kiln_engine *e, const char *parent,
                  kiln_error **err)
{
    int ret;

    memset(w, 0, sizeof(*w));
    ret = kiln_cache_snapshot_prepare(w->id, e->cache, parent && *parent ? parent : NULL, err);
    if (ret < 0)
        return kiln_error_wrap(err, "prepare snapshot on %s", parent ? parent : "scratch");
    w->active = true;
    return kiln_cache_snapshot_mounts(m, e->cache, w->id, err);
}

static void
rw_unmount(engine_rw *w)
{
    if (w->path && w->mounted)
        unmount_dir(w->path);
    free(w->path);
    w->path = NULL;
    w->mounted = false;
}

int
engine_rw_commit(kiln_solver_result **out, engine_rw *w, kiln_engine *e, kiln_error **err)
{
    int ret;

    rw_unmount(w);
    /* lease it while still active: once committed and before a cache key refers to it, a prune
     * in another process would otherwise see an unreferenced snapshot */
    engine_hold(e, w->id);
    ret = kiln_cache_snapshot_commit(e->cache, w->id, err);
    if (ret < 0)
        return kiln_error_wrap(err, "commit snapshot %s", w->id);
    w->active = false;
    *out = engine_result_new(w->id);
    return 0;
}

void
engine_rw_abort(engine_rw *w, kiln_engine *e)
{
    cleanup_kiln_error kiln_error *tmp = NULL;

    rw_unmount(w);
    if (w->active && kiln_cache_snapshot_remove(e->cache, w->id, &tmp) < 0)
        kiln_log_debug("remove snapshot %s: %s", w->id, tmp->msg);
    w->active = false;
}

/* ---- content digests ------------------------------------------------------------------- */

static int
hash_file(kiln_xxh_ctx *h, const char *path, kiln_error **err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    char buf[65536];
    ssize_t n;

    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", path);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kiln_error_errno(err, errno, "read `%s`", path);
        kiln_xxh_ctx_update(h, buf, (size_t)n);
    }
    return 0;
}

/* Fold the digest of one resolved path into h: a directory by its checksummed walk, a file by
 * its type, mode, owner and content, a symlink by its target, a missing path as such. */
static int
digest_path(kiln_xxh_ctx *h, const char *full, kiln_error **err)
{
    kiln_ctx_opts opts = {.checksum = true};
    kiln_ctx_list *l = NULL;
    char hdr[128], link[4096], hex[33];
    struct stat st;
    ssize_t n;
    int ret;

    if (lstat(full, &st) < 0) {
        kiln_xxh_ctx_update(h, "missing", 8);
        return 0;
    }
    snprintf(hdr, sizeof(hdr), "%o:%u:%u:", (unsigned)st.st_mode, (unsigned)st.st_uid,
             (unsigned)st.st_gid);
    kiln_xxh_ctx_update(h, hdr, strlen(hdr));
    if (S_ISDIR(st.st_mode)) {
        ret = kiln_ctx_walk(&l, full, &opts, err);
        if (ret < 0)
            return ret;
        kiln_xxh128_format(hex, l->root_digest);
        kiln_xxh_ctx_update(h, hex, 32);
        kiln_ctx_list_free(l);
    } else if (S_ISLNK(st.st_mode)) {
        n = readlink(full, link, sizeof(link));
        if (n < 0)
            return kiln_error_errno(err, errno, "readlink `%s`", full);
        kiln_xxh_ctx_update(h, link, (size_t)n);
    } else if (S_ISREG(st.st_mode)) {
        return hash_file(h, full, err);
    }
    return 0;
}

bool
engine_has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

int
engine_glob_in_root(kiln_vec *out, const char *root, const char *pattern, kiln_error **err)
{
    cleanup_free char *dir = kiln_path_dir(pattern);
    cleanup_free char *base = kiln_path_base(pattern);
    cleanup_free char *rdir = NULL;
    cleanup_free char *pat = NULL;
    glob_t g = {0};
    int ret;

    /* Only the last element may be a pattern: the directory is resolved safely inside the root,
     * and the matches are its direct children, never followed, so nothing can escape it. */
    if (engine_has_glob(dir))
        return kiln_error_set(err, KILN_EUNSUPPORTED,
                              "wildcards are only supported in the last element of `%s`", pattern);
    ret = kiln_path_resolve_in_root(&rdir, root, dir, 0, err);
    if (ret < 0)
        return ret;
    pat = kiln_path_join(rdir, base);
    if (glob(pat, GLOB_NOESCAPE, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            kiln_strvec_push(out, g.gl_pathv[i]);
    }
    globfree(&g);
    return 0;
}

int
engine_content_digest(char **out, const char *root, const char *selector, kiln_error **err)
{
    cleanup_free char *sel = xstrdup(selector ? selector : "/");
    kiln_xxh_ctx *h = NULL;
    char *save = NULL, hex[33];
    int ret = 0;

    kiln_xxh_ctx_new(&h);
    for (char *p = strtok_r(sel, "\n", &save); p && ret == 0; p = strtok_r(NULL, "\n", &save)) {
        kiln_vec matches = KILN_VEC_INIT;
        cleanup_free char *full = NULL;
        char *m;

        kiln_xxh_ctx_update(h, p, strlen(p) + 1);
        if (engine_has_glob(p)) {
            ret = engine_glob_in_root(&matches, root, p, err);
            kiln_vec_foreach(&matches, i, m) {
                if (ret == 0) {
                    kiln_xxh_ctx_update(h, m + strlen(root), strlen(m + strlen(root)) + 1);
                    ret = digest_path(h, m, err);
                }
            }
            kiln_strvec_dispose(&matches);
            continue;
        }
        ret = kiln_path_resolve_in_root(&full, root, p, 0, err);
        if (ret == 0)
            ret = digest_path(h, full, err);
    }
    kiln_xxh128_format(hex, kiln_xxh_ctx_final128(h));
    kiln_xxh_ctx_free(h);
    if (ret < 0)
        return kiln_error_wrap(err, "content digest of `%s`", selector);
    *out = xasprintf("xxh128:%s", hex);
    return 0;
}
