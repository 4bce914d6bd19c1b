/*
 * context_copy.c: materialise a walked context selection into a destination directory.
 *
 * Entries come in tree order, so a parent directory always exists before its children. Every
 * parent is opened inside the destination with kiln_path_open_in_root, so a symlink already
 * present in the destination cannot redirect a write outside it. Directory mtimes are applied in
 * a second pass, after their children were created.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/map.h"
#include "base/path.h"
#include "source/context.h"

static int
copy_fd(int in, int out, const char *path, kiln_error **err)
{
    char buf[64 * 1024];
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n > 0)
            continue;
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
            return kiln_error_errno(err, errno, "copy `%s`", path);
        break;
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kiln_error_errno(err, errno, "read `%s`", path);
        if (n == 0)
            return 0;
        if (kiln_fd_write_all(out, buf, (size_t)n, err) < 0)
            return kiln_error_wrap(err, "write `%s`", path);
    }
}

/* Make room for a new node at pfd/name. Returns 1 when an existing directory should be kept
 * (want_dir: merge into it), 0 when the slot is free, or a negative code. */
static int
clear_slot(int pfd, const char *name, const char *path, bool want_dir, kiln_error **err)
{
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return kiln_error_errno(err, errno, "stat destination `%s`", path);
    }
    if (S_ISDIR(st.st_mode)) {
        if (want_dir)
            return 1; /* keep it: merge */
        if (unlinkat(pfd, name, AT_REMOVEDIR) < 0)
            return kiln_error_errno(err, errno, "replace directory `%s`", path);
        return 0;
    }
    if (unlinkat(pfd, name, 0) < 0)
        return kiln_error_errno(err, errno, "replace `%s`", path);
    return 0;
}

static int
create_file(int srcfd, int pfd, const char *name, const kiln_ctx_entry *e, kiln_error **err)
{
    cleanup_close int in = -1;
    cleanup_close int out = -1;
    struct stat st;
    in = kiln_path_open_in_root(srcfd, e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0, err);
    if (in < 0)
        return kiln_error_wrap(err, "open source `%s`", e->path);
    if (fstat(in, &st) < 0)
        return kiln_error_errno(err, errno, "stat source `%s`", e->path);
    if (!S_ISREG(st.st_mode))
        return kiln_error_set(err, KILN_EINVAL, "`%s` is no longer a regular file", e->path);
    out = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return kiln_error_errno(err, errno, "create `%s`", e->path);
    return copy_fd(in, out, e->path, err);
}

/* KILN_CTX_COPY_LINK: link the source file itself (opened in the root, never through a symlink).
 * Returns 1 when linked, 0 when the caller should copy it instead. */
static int
link_file(int srcfd, int pfd, const char *name, const kiln_ctx_entry *e)
{
    kiln_error *tmp = NULL;
    cleanup_close int in =
            kiln_path_open_in_root(srcfd, e->path, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, &tmp);
    struct stat st;

    kiln_error_free(&tmp);
    if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    if (linkat(in, "", pfd, name, AT_EMPTY_PATH) == 0)
        return 1;
    if (errno == ENOENT || errno == EPERM) { /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH */
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", in);
        return linkat(AT_FDCWD, proc, pfd, name, AT_SYMLINK_FOLLOW) == 0 ? 1 : 0;
    }
    return 0;
}

/* Where files may be linked from: the source itself (KILN_CTX_COPY_LINK) or another tree. */
typedef struct link_from {
    int fd; /* -1: nowhere */
    const kiln_ctx_link_src *ls;
} link_from;

static int
create_node(int srcfd, int pfd, const char *name, const kiln_ctx_entry *e, kiln_map *links,
            unsigned flags, const link_from *lf, const char **link_to, bool *linked,
            kiln_error **err)
{
    int rc = clear_slot(pfd, name, e->path, S_ISDIR(e->mode), err);
    if (rc < 0 || rc == 1)
        return rc < 0 ? rc : 0;
    if (S_ISREG(e->mode) && lf->fd >= 0 && (!lf->ls || lf->ls->linkable(e, lf->ls->payload)) &&
        link_file(lf->fd, pfd, name, e)) {
        *linked = true;
        return 0;
    }
    if (S_ISDIR(e->mode)) {
        if (mkdirat(pfd, name, 0700) < 0)
            return kiln_error_errno(err, errno, "mkdir `%s`", e->path);
        return 0;
    }
    if (S_ISLNK(e->mode)) {
        if (symlinkat(e->link, pfd, name) < 0)
            return kiln_error_errno(err, errno, "symlink `%s`", e->path);
        return 0;
    }
    if (S_ISREG(e->mode)) {
        cleanup_free char *key =
                xasprintf("%llu:%llu", (unsigned long long)e->dev, (unsigned long long)e->ino);
        const char *first =
                (flags & KILN_CTX_COPY_HARDLINKS) && e->nlink > 1 ? kiln_map_get(links, key) : NULL;
        if (first) {
            *link_to = first; /* the caller links it: that needs the destination root fd */
            return 0;
        }
        if (flags & KILN_CTX_COPY_HARDLINKS && e->nlink > 1)
            kiln_map_put(links, key, e->path);
        return create_file(srcfd, pfd, name, e, err);
    }
    if (mknodat(pfd, name, e->mode & (S_IFMT | 07777), e->rdev) < 0)
        return kiln_error_errno(err, errno, "mknod `%s`", e->path);
    return 0;
}

static int
apply_attrs(int pfd, const char *name, const kiln_ctx_entry *e, unsigned flags, kiln_error **err)
{
    if ((flags & KILN_CTX_COPY_OWNER) &&
        fchownat(pfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_errno(err, errno, "chown `%s`", e->path);
    /* chown clears set-id bits, so the mode comes after it */
    if (!S_ISLNK(e->mode) && fchmodat(pfd, name, e->mode & 07777, 0) < 0)
        return kiln_error_errno(err, errno, "chmod `%s`", e->path);
    if ((flags & KILN_CTX_COPY_XATTRS) && e->nxattrs > 0) {
        cleanup_free char *proc = xasprintf("/proc/self/fd/%d/%s", pfd, name);
        for (size_t i = 0; i < e->nxattrs; i++) {
            if (lsetxattr(proc, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].len, 0) < 0)
                return kiln_error_errno(err, errno, "set xattr %s on `%s`", e->xattrs[i].name,
                                        e->path);
        }
    }
    if (!S_ISDIR(e->mode)) {
        struct timespec ts[2] = {e->mtime, e->mtime};
        if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
            return kiln_error_errno(err, errno, "set times of `%s`", e->path);
    }
    return 0;
}

/* Open the parent directory of `path` inside dst (O_PATH), returning the fd and the base name. */
static int
open_parent(int dstfd, const char *path, char **name_out, kiln_error **err)
{
    cleanup_free char *dir = kiln_path_dir(path);
    int fd = kiln_path_open_in_root(dstfd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, err);
    if (fd < 0)
        return kiln_error_wrap(err, "open parent of `%s`", path);
    *name_out = kiln_path_base(path);
    return fd;
}

static int
copy_entry(int srcfd, int dstfd, const kiln_ctx_entry *e, kiln_map *links, unsigned flags,
           const link_from *lf, kiln_error **err)
{
    cleanup_free char *name = NULL;
    cleanup_close int pfd = open_parent(dstfd, e->path, &name, err);
    const char *first = NULL;
    bool linked = false;
    int rc;
    if (pfd < 0)
        return pfd;
    rc = create_node(srcfd, pfd, name, e, links, flags, lf, &first, &linked, err);
    if (rc == 0 && linked)
        return 0;
    if (rc == 0 && first) {
        if (linkat(dstfd, first, pfd, name, 0) < 0)
            return kiln_error_errno(err, errno, "hardlink `%s` to `%s`", e->path, first);
        return 0;
    }
    if (rc < 0)
        return rc;
    return apply_attrs(pfd, name, e, flags, err);
}

static int
set_dir_times(int dstfd, const kiln_ctx_entry *e, kiln_error **err)
{
    cleanup_free char *name = NULL;
    cleanup_close int pfd = open_parent(dstfd, e->path, &name, err);
    struct timespec ts[2] = {e->mtime, e->mtime};
    if (pfd < 0)
        return pfd;
    if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_errno(err, errno, "set times of `%s`", e->path);
    return 0;
}

int
kiln_ctx_copy(const kiln_ctx_list *l, const char *src_root, const char *dst, unsigned flags,
              kiln_error **err)
{
    return kiln_ctx_copy_linked(l, src_root, dst, flags, NULL, err);
}

int
kiln_ctx_copy_linked(const kiln_ctx_list *l, const char *src_root, const char *dst, unsigned flags,
                     const kiln_ctx_link_src *ls, kiln_error **err)
{
    cleanup_close int srcfd = -1;
    cleanup_close int dstfd = -1;
    cleanup_close int otherfd = -1;
    kiln_map links = KILN_MAP_INIT;
    link_from lf = {-1, ls};
    int rc = 0;
    if (kiln_fs_mkdir_p(dst, 0755, err) < 0)
        return kiln_error_wrap(err, "create copy destination");
    srcfd = open(src_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (srcfd < 0)
        return kiln_error_errno(err, errno, "open `%s`", src_root);
    dstfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dstfd < 0)
        return kiln_error_errno(err, errno, "open `%s`", dst);
    if (ls && ls->root)
        lf.fd = otherfd = open(ls->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* -1: copy all */
    else if (flags & KILN_CTX_COPY_LINK)
        lf.fd = srcfd;
    for (size_t i = 0; i < l->len && rc == 0; i++)
        rc = copy_entry(srcfd, dstfd, &l->entries[i], &links, flags, &lf, err);
    /* children first, so setting a child's time does not disturb its parent's afterwards */
    for (size_t i = l->len; i > 0 && rc == 0; i--)
        if (S_ISDIR(l->entries[i - 1].mode))
            rc = set_dir_times(dstfd, &l->entries[i - 1], err);
    kiln_map_dispose(&links, NULL);
    if (rc < 0)
        return kiln_error_wrap(err, "copy context to `%s`", dst);
    return 0;
}
