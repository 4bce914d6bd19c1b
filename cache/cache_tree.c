/*
 * cache_tree.c: file-tree work of the snapshotter: applying overlay layer directories on top of a
 * tree (used to flatten deep chains and by the naive snapshotter to copy parents), measuring a
 * tree, walking a snapshot's own changes for exporters, and deleting through trash/.
 *
 * Overlay encodes a deletion as a character device 0/0 (a whiteout) and a directory that hides
 * everything below it by the xattr trusted.overlay.opaque="y" (Documentation/filesystems/
 * overlayfs.rst). Hard links inside a layer are copied as separate files.
 */
#define KILN_LOG_DOMAIN "cache"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/map.h"
#include "cache/cache_internal.h"

#define OPAQUE_XATTR "trusted.overlay.opaque"

static bool
is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static bool
is_opaque(const char *path)
{
    char v[2] = {0};
    ssize_t n = lgetxattr(path, OPAQUE_XATTR, v, sizeof(v));
    return n == 1 && v[0] == 'y';
}

static int
cmp_dirent(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int
skip_dots(const struct dirent *d)
{
    return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

/* Sorted entries of a directory (excluding . and ..). *out freed with free_entries. */
static int
list_dir(struct dirent ***out, int *n_out, const char *dir, kiln_error **err)
{
    int n = scandir(dir, out, skip_dots, cmp_dirent);

    if (n < 0)
        return kiln_error_errno(err, errno, "read directory `%s`", dir);
    *n_out = n;
    return 0;
}

static void
free_entries(struct dirent **ents, int n)
{
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
}

/* Copy xattrs except overlay's private ones. Unsupported xattrs on the target are skipped. */
static int
copy_xattrs(const char *src, const char *dst, kiln_error **err)
{
    char names[8192], value[65536];
    ssize_t len = llistxattr(src, names, sizeof(names));

    if (len < 0)
        return (errno == ENOTSUP) ? 0 : kiln_error_errno(err, errno, "list xattrs of `%s`", src);
    for (char *n = names; n < names + len; n += strlen(n) + 1) {
        ssize_t vl;
        if (kiln_str_has_prefix(n, "trusted.overlay."))
            continue;
        vl = lgetxattr(src, n, value, sizeof(value));
        if (vl < 0)
            return kiln_error_errno(err, errno, "read xattr `%s` of `%s`", n, src);
        if (lsetxattr(dst, n, value, (size_t)vl, 0) < 0 && errno != ENOTSUP && errno != EPERM)
            return kiln_error_errno(err, errno, "set xattr `%s` on `%s`", n, dst);
    }
    return 0;
}

/* Owner, mode, xattrs and times of dst from st/src. */
static int
copy_meta(const char *src, const char *dst, const struct stat *st, kiln_error **err)
{
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    int ret;

    if (lchown(dst, st->st_uid, st->st_gid) < 0 && errno != EPERM)
        return kiln_error_errno(err, errno, "chown `%s`", dst);
    if (!S_ISLNK(st->st_mode) && chmod(dst, st->st_mode & 07777) < 0)
        return kiln_error_errno(err, errno, "chmod `%s`", dst);
    ret = copy_xattrs(src, dst, err);
    if (ret < 0)
        return ret;
    if (utimensat(AT_FDCWD, dst, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_errno(err, errno, "set times of `%s`", dst);
    return 0;
}

static int
copy_file_data(const char *src, const char *dst, kiln_error **err)
{
    cleanup_close int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    cleanup_close int out = -1;
    char buf[65536];
    ssize_t n;

    if (in < 0)
        return kiln_error_errno(err, errno, "open `%s`", src);
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0)
        return kiln_error_errno(err, errno, "create `%s`", dst);
    for (;;) {
        n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n == 0)
            return 0;
        if (n < 0)
            break;
    }
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
        return kiln_error_errno(err, errno, "copy `%s` to `%s`", src, dst);
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        int ret = kiln_fd_write_all(out, buf, (size_t)n, err);
        if (ret < 0)
            return ret;
    }
    if (n < 0)
        return kiln_error_errno(err, errno, "read `%s`", src);
    return 0;
}

/* Create dst as a copy of the non-directory src. */
static int
copy_leaf(const char *src, const char *dst, const struct stat *st, kiln_error **err)
{
    char target[4097];
    ssize_t n;
    int ret = 0;

    if (S_ISREG(st->st_mode)) {
        ret = copy_file_data(src, dst, err);
    } else if (S_ISLNK(st->st_mode)) {
        n = readlink(src, target, sizeof(target) - 1);
        if (n < 0)
            return kiln_error_errno(err, errno, "readlink `%s`", src);
        target[n] = 0;
        if (symlink(target, dst) < 0)
            return kiln_error_errno(err, errno, "symlink `%s`", dst);
    } else if (mknod(dst, st->st_mode, st->st_rdev) < 0) {
        return kiln_error_errno(err, errno, "mknod `%s`", dst);
    }
    if (ret < 0)
        return ret;
    return copy_meta(src, dst, st, err);
}

static int apply_dir(const char *src, const char *dst, bool overlay, kiln_error **err);

static int
apply_entry(const char *s, const char *d, bool overlay, kiln_error **err)
{
    struct stat st, dst_st;
    bool dst_exists;
    int ret;

    if (lstat(s, &st) < 0)
        return kiln_error_errno(err, errno, "stat `%s`", s);
    dst_exists = lstat(d, &dst_st) == 0;
    if (overlay && is_whiteout(&st))
        return kiln_fs_rm_rf(d, err);
    if (S_ISDIR(st.st_mode)) {
        if (dst_exists && (!S_ISDIR(dst_st.st_mode) || (overlay && is_opaque(s)))) {
            ret = kiln_fs_rm_rf(d, err);
            if (ret < 0)
                return ret;
            dst_exists = false;
        }
        if (!dst_exists && mkdir(d, 0700) < 0)
            return kiln_error_errno(err, errno, "mkdir `%s`", d);
        ret = apply_dir(s, d, overlay, err);
        if (ret < 0)
            return ret;
        return copy_meta(s, d, &st, err);
    }
    if (dst_exists) {
        ret = kiln_fs_rm_rf(d, err);
        if (ret < 0)
            return ret;
    }
    return copy_leaf(s, d, &st, err);
}

static int
apply_dir(const char *src, const char *dst, bool overlay, kiln_error **err)
{
    struct dirent **ents = NULL;
    int n = 0, ret = list_dir(&ents, &n, src, err);

    for (int i = 0; ret == 0 && i < n; i++) {
        cleanup_free char *s = xasprintf("%s/%s", src, ents[i]->d_name);
        cleanup_free char *d = xasprintf("%s/%s", dst, ents[i]->d_name);
        ret = apply_entry(s, d, overlay, err);
    }
    free_entries(ents, n);
    return ret;
}

int
kiln_cache__apply_layer(const char *layer, const char *dst, kiln_error **err)
{
    return apply_dir(layer, dst, true, err);
}

int
kiln_cache__copy_tree(const char *src, const char *dst, kiln_error **err)
{
    return apply_dir(src, dst, false, err);
}

static int
size_walk(uint64_t *sum, kiln_map *seen, const char *dir, kiln_error **err)
{
    struct dirent **ents = NULL;
    int n = 0, ret = list_dir(&ents, &n, dir, err);

    for (int i = 0; ret == 0 && i < n; i++) {
        cleanup_free char *p = xasprintf("%s/%s", dir, ents[i]->d_name);
        struct stat st;
        if (lstat(p, &st) < 0) {
            ret = kiln_error_errno(err, errno, "stat `%s`", p);
        } else if (S_ISDIR(st.st_mode)) {
            ret = size_walk(sum, seen, p, err);
        } else if (st.st_nlink > 1) {
            cleanup_free char *key = xasprintf("%llu:%llu", (unsigned long long)st.st_dev,
                                               (unsigned long long)st.st_ino);
            if (!kiln_map_has(seen, key)) {
                kiln_map_put(seen, key, NULL);
                *sum += (uint64_t)st.st_size;
            }
        } else {
            *sum += (uint64_t)st.st_size;
        }
    }
    free_entries(ents, n);
    return ret;
}

int
kiln_cache__tree_size(uint64_t *out, const char *dir, kiln_error **err)
{
    kiln_map seen = KILN_MAP_INIT;
    uint64_t sum = 0;
    int ret = size_walk(&sum, &seen, dir, err);

    kiln_map_dispose(&seen, NULL);
    if (ret == 0)
        *out = sum;
    return ret;
}

/* ---- diff walk ---------------------------------------------------------------------------- */

typedef struct diff_ctx {
    kiln_cache_diff_fn fn;
    void *payload;
} diff_ctx;

static int
diff_dir(diff_ctx *ctx, const char *dir, const char *rel, kiln_error **err)
{
    struct dirent **ents = NULL;
    int n = 0, ret = list_dir(&ents, &n, dir, err);

    for (int i = 0; ret == 0 && i < n; i++) {
        cleanup_free char *full = xasprintf("%s/%s", dir, ents[i]->d_name);
        cleanup_free char *path =
                rel[0] ? xasprintf("%s/%s", rel, ents[i]->d_name) : xstrdup(ents[i]->d_name);
        struct stat st;
        if (lstat(full, &st) < 0) {
            ret = kiln_error_errno(err, errno, "stat `%s`", full);
            break;
        }
        if (is_whiteout(&st)) {
            ret = ctx->fn(KILN_CACHE_CHANGE_DELETE, path, NULL, NULL, ctx->payload, err);
            continue;
        }
        ret = ctx->fn(S_ISDIR(st.st_mode) && is_opaque(full) ? KILN_CACHE_CHANGE_OPAQUE_DIR
                                                             : KILN_CACHE_CHANGE_ADD_OR_MODIFY,
                      path, full, &st, ctx->payload, err);
        if (ret == 0 && S_ISDIR(st.st_mode))
            ret = diff_dir(ctx, full, path, err);
    }
    free_entries(ents, n);
    return ret;
}

int
kiln_cache__diff_walk(const char *dir, kiln_cache_diff_fn fn, void *payload, kiln_error **err)
{
    diff_ctx ctx = {fn, payload};
    return diff_dir(&ctx, dir, "", err);
}

/* ---- trash -------------------------------------------------------------------------------- */

int
kiln_cache__trash_dir(kiln_cache *c, const char *dir, kiln_error **err)
{
    char name[33];
    cleanup_free char *dst = NULL;

    kiln_cache__random_hex(name, 16);
    dst = xasprintf("%s/trash/%s", c->root, name);
    if (rename(dir, dst) < 0) {
        if (errno == ENOENT)
            return 0;
        return kiln_error_errno(err, errno, "move `%s` to trash", dir);
    }
    return kiln_fs_rm_rf(dst, err);
}

void
kiln_cache__empty_trash(kiln_cache *c)
{
    cleanup_free char *trash = xasprintf("%s/trash", c->root);
    struct dirent **ents = NULL;
    kiln_error *tmp = NULL;
    int n = 0;

    if (list_dir(&ents, &n, trash, &tmp) < 0) {
        kiln_error_free(&tmp);
        return;
    }
    for (int i = 0; i < n; i++) {
        cleanup_free char *p = xasprintf("%s/%s", trash, ents[i]->d_name);
        if (kiln_fs_rm_rf(p, &tmp) < 0) {
            kiln_log_warn("empty trash: %s", tmp->msg);
            kiln_error_free(&tmp);
        }
    }
    free_entries(ents, n);
}

/* ---- naive diff: double walk of two full trees ------------------------------------------------
 */

typedef struct tree_diff {
    kiln_cache_diff_fn fn;
    void *payload;
} tree_diff;

static bool
same_meta(const char *a, const struct stat *sa, const char *b, const struct stat *sb)
{
    char la[4097], lb[4097];
    ssize_t na, nb;

    if ((sa->st_mode & S_IFMT) != (sb->st_mode & S_IFMT) || sa->st_mode != sb->st_mode ||
        sa->st_uid != sb->st_uid || sa->st_gid != sb->st_gid)
        return false;
    if (S_ISDIR(sa->st_mode))
        return true; /* children are compared one by one; a dir's own mtime changes with them */
    if (sa->st_size != sb->st_size || sa->st_rdev != sb->st_rdev ||
        sa->st_mtim.tv_sec != sb->st_mtim.tv_sec || sa->st_mtim.tv_nsec != sb->st_mtim.tv_nsec)
        return false;
    if (!S_ISLNK(sa->st_mode))
        return true;
    na = readlink(a, la, sizeof(la));
    nb = readlink(b, lb, sizeof(lb));
    return na >= 0 && na == nb && memcmp(la, lb, (size_t)na) == 0;
}

static int tree_diff_dir(tree_diff *d, const char *cur, const char *old, const char *rel,
                         kiln_error **err);

/* Compare one name present in cur (and maybe in old). */
static int
tree_diff_entry(tree_diff *d, const char *cur, const char *old, const char *rel, kiln_error **err)
{
    struct stat sc, so;
    bool in_old = old && lstat(old, &so) == 0;
    bool old_dir = in_old && S_ISDIR(so.st_mode);
    int ret = 0;

    if (lstat(cur, &sc) < 0)
        return kiln_error_errno(err, errno, "stat `%s`", cur);
    if (!in_old || !same_meta(cur, &sc, old, &so))
        ret = d->fn(KILN_CACHE_CHANGE_ADD_OR_MODIFY, rel, cur, &sc, d->payload, err);
    if (ret == 0 && S_ISDIR(sc.st_mode))
        ret = tree_diff_dir(d, cur, old_dir ? old : NULL, rel, err);
    return ret;
}

static int
tree_diff_dir(tree_diff *d, const char *cur, const char *old, const char *rel, kiln_error **err)
{
    struct dirent **ce = NULL, **oe = NULL;
    int nc = 0, no = 0, i = 0, j = 0;
    int ret = list_dir(&ce, &nc, cur, err);

    if (ret == 0 && old)
        ret = list_dir(&oe, &no, old, err);
    while (ret == 0 && (i < nc || j < no)) {
        int cmp = i >= nc ? 1 : j >= no ? -1 : strcmp(ce[i]->d_name, oe[j]->d_name);
        const char *name = cmp <= 0 ? ce[i]->d_name : oe[j]->d_name;
        cleanup_free char *path = rel[0] ? xasprintf("%s/%s", rel, name) : xstrdup(name);
        cleanup_free char *c = xasprintf("%s/%s", cur, name);
        cleanup_free char *o = old ? xasprintf("%s/%s", old, name) : NULL;
        if (cmp > 0)
            ret = d->fn(KILN_CACHE_CHANGE_DELETE, path, NULL, NULL, d->payload, err);
        else
            ret = tree_diff_entry(d, c, cmp == 0 ? o : NULL, path, err);
        i += cmp <= 0;
        j += cmp >= 0;
    }
    free_entries(ce, nc);
    free_entries(oe, no);
    return ret;
}

int
kiln_cache__diff_trees(const char *cur, const char *old, kiln_cache_diff_fn fn, void *payload,
                       kiln_error **err)
{
    tree_diff d = {fn, payload};
    return tree_diff_dir(&d, cur, old, "", err);
}
