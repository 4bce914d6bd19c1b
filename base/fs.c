/*
 * fs.c: descriptor and file-tree helpers.
 *
 * kiln_fs_rm_rf and kiln_fs_copy_tree work relative to directory descriptors (openat, unlinkat,
 * fstatat with AT_SYMLINK_NOFOLLOW) so that a symlink planted inside a tree is handled as a link,
 * never followed, and rm_rf never crosses into another mount (a bind mount left inside a rootfs
 * must not take the host's files with it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/fs.h"
#include "base/map.h"
#include "base/path.h"

int
kiln_fd_write_all(int fd, const void *data, size_t len, kiln_error **err)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return kiln_error_errno(err, errno, "write");
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
kiln_fd_read_all(int fd, kiln_buf *out, size_t max, kiln_error **err)
{
    char chunk[65536];

    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return kiln_error_errno(err, errno, "read");
        }
        if (n == 0)
            return 0;
        if (max && out->len + (size_t)n > max)
            return kiln_error_set(err, KILN_EINVAL, "too big: more than %zu bytes", max);
        kiln_buf_put(out, chunk, (size_t)n, NULL);
    }
}

int
kiln_fs_read_file(char **out, size_t *len_out, const char *path, size_t max, kiln_error **err)
{
    cleanup_close int fd = -1;
    kiln_buf b = KILN_BUF_INIT;
    int rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return kiln_error_set(err, KILN_ENOTFOUND, "open `%s`: %s", path, strerror(errno));
        return kiln_error_errno(err, errno, "open `%s`", path);
    }
    rc = kiln_fd_read_all(fd, &b, max, err);
    if (rc < 0) {
        kiln_buf_dispose(&b);
        return kiln_error_wrap(err, "read `%s`", path);
    }
    if (len_out)
        *len_out = b.len;
    *out = kiln_buf_detach(&b);
    return 0;
}

static int
fsync_dir_of(const char *path, kiln_error **err)
{
    cleanup_free char *dir = kiln_path_dir(path);
    cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return kiln_error_errno(err, errno, "open directory `%s`", dir);
    if (fsync(fd) < 0 && errno != EINVAL)
        return kiln_error_errno(err, errno, "fsync `%s`", dir);
    return 0;
}

int
kiln_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, kiln_error **err)
{
    cleanup_free char *tmp = xasprintf("%s.tmp-XXXXXX", path);
    cleanup_close int fd = -1;
    int rc;

    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return kiln_error_errno(err, errno, "create temporary file for `%s`", path);
    rc = kiln_fd_write_all(fd, data, len, err);
    if (rc == 0 && fchmod(fd, mode) < 0)
        rc = kiln_error_errno(err, errno, "chmod `%s`", tmp);
    if (rc == 0 && fsync(fd) < 0)
        rc = kiln_error_errno(err, errno, "fsync `%s`", tmp);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = kiln_error_errno(err, errno, "rename `%s` to `%s`", tmp, path);
    if (rc < 0) {
        unlink(tmp);
        return kiln_error_wrap(err, "write `%s`", path);
    }
    return fsync_dir_of(path, err);
}

int
kiln_fs_mkdir_p(const char *path, mode_t mode, kiln_error **err)
{
    cleanup_free char *p = kiln_path_clean(path);
    struct stat st;

    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return kiln_error_errno(err, errno, "mkdir `%s`", p);
        *s = saved;
        if (saved == '\0')
            break;
    }
    if (stat(p, &st) < 0)
        return kiln_error_errno(err, errno, "stat `%s`", p);
    if (!S_ISDIR(st.st_mode))
        return kiln_error_set(err, KILN_EEXISTS, "mkdir `%s`: exists and is not a directory", p);
    return 0;
}

/* Remove the contents of directory fd (device dev), then nothing else. */
static int
rm_dir_contents(int dfd, dev_t dev, const char *path, kiln_error **err)
{
    cleanup_dir DIR *d = NULL;
    struct dirent *de;
    int fd = dup(dfd);

    if (fd < 0)
        return kiln_error_errno(err, errno, "dup");
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return kiln_error_errno(err, errno, "opendir `%s`", path);
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            return kiln_error_errno(err, errno, "stat `%s/%s`", path, de->d_name);
        }
        if (S_ISDIR(st.st_mode)) {
            cleanup_free char *child = xasprintf("%s/%s", path, de->d_name);
            cleanup_close int cfd = -1;
            int rc;
            if (st.st_dev != dev)
                return kiln_error_set(err, KILN_EINVAL, "remove `%s`: a mount point is inside",
                                      child);
            cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0)
                return kiln_error_errno(err, errno, "open `%s`", child);
            rc = rm_dir_contents(cfd, dev, child, err);
            if (rc < 0)
                return rc;
            if (unlinkat(dfd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return kiln_error_errno(err, errno, "rmdir `%s`", child);
        } else if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT) {
            return kiln_error_errno(err, errno, "unlink `%s/%s`", path, de->d_name);
        }
    }
    if (errno)
        return kiln_error_errno(err, errno, "readdir `%s`", path);
    return 0;
}

int
kiln_fs_rm_rf(const char *path, kiln_error **err)
{
    cleanup_close int fd = -1;
    struct stat st;
    int rc;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : kiln_error_errno(err, errno, "stat `%s`", path);
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return kiln_error_errno(err, errno, "unlink `%s`", path);
        return 0;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", path);
    rc = rm_dir_contents(fd, st.st_dev, path, err);
    if (rc < 0)
        return rc;
    if (rmdir(path) < 0 && errno != ENOENT)
        return kiln_error_errno(err, errno, "rmdir `%s`", path);
    return 0;
}

struct copy_ctx {
    unsigned flags;
    kiln_map links; /* "dev:ino" -> destination path (owned) of the first copy */
};

static int
copy_xattrs(int sfd, const char *src, int dfd, const char *dst, kiln_error **err)
{
    char names[65536], value[65536];
    ssize_t len = sfd >= 0 ? flistxattr(sfd, names, sizeof(names))
                           : llistxattr(src, names, sizeof(names));

    if (len < 0)
        return (errno == ENOTSUP || errno == ENODATA)
                       ? 0
                       : kiln_error_errno(err, errno, "listxattr `%s`", src);
    for (char *n = names; n < names + len; n += strlen(n) + 1) {
        ssize_t vl = sfd >= 0 ? fgetxattr(sfd, n, value, sizeof(value))
                              : lgetxattr(src, n, value, sizeof(value));
        if (vl < 0)
            continue;
        if ((dfd >= 0 ? fsetxattr(dfd, n, value, (size_t)vl, 0)
                      : lsetxattr(dst, n, value, (size_t)vl, 0)) < 0 &&
            errno != ENOTSUP && errno != EPERM)
            return kiln_error_errno(err, errno, "setxattr %s on `%s`", n, dst);
    }
    return 0;
}

static int
copy_file(const char *src, const char *dst, const struct stat *st, struct copy_ctx *c,
          kiln_error **err)
{
    cleanup_close int in = -1, out = -1;
    char buf[65536];

    in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0)
        return kiln_error_errno(err, errno, "open `%s`", src);
    unlink(dst);
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st->st_mode & 07777);
    if (out < 0)
        return kiln_error_errno(err, errno, "create `%s`", dst);
    for (;;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (n == 0)
            break;
        if (n > 0)
            continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
            return kiln_error_errno(err, errno, "copy `%s`", src);
        while ((n = read(in, buf, sizeof(buf))) > 0)
            if (kiln_fd_write_all(out, buf, (size_t)n, err) < 0)
                return kiln_error_wrap(err, "copy `%s`", src);
        if (n < 0)
            return kiln_error_errno(err, errno, "read `%s`", src);
        break;
    }
    if ((c->flags & KILN_COPY_PRESERVE_XATTRS) && copy_xattrs(in, src, out, dst, err) < 0)
        return KILN_ESYS;
    if (fchmod(out, st->st_mode & 07777) < 0)
        return kiln_error_errno(err, errno, "chmod `%s`", dst);
    return 0;
}

static int copy_entry(const char *src, const char *dst, struct copy_ctx *c, kiln_error **err);

static int
copy_dir(const char *src, const char *dst, const struct stat *st, struct copy_ctx *c,
         kiln_error **err)
{
    struct dirent **names = NULL;
    int n, rc = 0;

    if (mkdir(dst, st->st_mode & 07777) < 0 && errno != EEXIST)
        return kiln_error_errno(err, errno, "mkdir `%s`", dst);
    n = scandir(src, &names, NULL, alphasort);
    if (n < 0)
        return kiln_error_errno(err, errno, "scandir `%s`", src);
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (rc == 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            cleanup_free char *s = xasprintf("%s/%s", src, name);
            cleanup_free char *d = xasprintf("%s/%s", dst, name);
            rc = copy_entry(s, d, c, err);
        }
        free(names[i]);
    }
    free(names);
    if (rc == 0 && chmod(dst, st->st_mode & 07777) < 0)
        rc = kiln_error_errno(err, errno, "chmod `%s`", dst);
    return rc;
}

static int
copy_special(const char *src, const char *dst, const struct stat *st, kiln_error **err)
{
    char target[PATH_MAX];
    ssize_t n;

    unlink(dst);
    if (S_ISLNK(st->st_mode)) {
        n = readlink(src, target, sizeof(target) - 1);
        if (n < 0)
            return kiln_error_errno(err, errno, "readlink `%s`", src);
        target[n] = '\0';
        if (symlink(target, dst) < 0)
            return kiln_error_errno(err, errno, "symlink `%s`", dst);
        return 0;
    }
    if (mknod(dst, st->st_mode, st->st_rdev) < 0)
        return kiln_error_errno(err, errno, "mknod `%s`", dst);
    return 0;
}

/* After an entry exists: owner, xattrs (non-regular files) and times, never following links. */
static int
copy_metadata(const char *src, const char *dst, const struct stat *st, struct copy_ctx *c,
              kiln_error **err)
{
    struct timespec ts[2] = {st->st_atim, st->st_mtim};

    if ((c->flags & KILN_COPY_PRESERVE_OWNER) && lchown(dst, st->st_uid, st->st_gid) < 0)
        return kiln_error_errno(err, errno, "chown `%s`", dst);
    if ((c->flags & KILN_COPY_PRESERVE_OWNER) && !S_ISLNK(st->st_mode) &&
        chmod(dst, st->st_mode & 07777) < 0)
        return kiln_error_errno(err, errno, "chmod `%s`", dst);
    if ((c->flags & KILN_COPY_PRESERVE_XATTRS) && !S_ISREG(st->st_mode) &&
        copy_xattrs(-1, src, -1, dst, err) < 0)
        return KILN_ESYS;
    if (utimensat(AT_FDCWD, dst, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_errno(err, errno, "set times on `%s`", dst);
    return 0;
}

static int
copy_entry(const char *src, const char *dst, struct copy_ctx *c, kiln_error **err)
{
    struct stat st;
    int rc;

    if (lstat(src, &st) < 0)
        return kiln_error_errno(err, errno, "stat `%s`", src);
    if (S_ISREG(st.st_mode) && st.st_nlink > 1 && (c->flags & KILN_COPY_HARDLINKS)) {
        cleanup_free char *key = xasprintf("%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
        const char *first = kiln_map_get(&c->links, key);
        if (first) {
            unlink(dst);
            if (link(first, dst) < 0)
                return kiln_error_errno(err, errno, "link `%s`", dst);
            return 0;
        }
        kiln_map_put(&c->links, key, xstrdup(dst));
    }
    if (S_ISDIR(st.st_mode))
        rc = copy_dir(src, dst, &st, c, err);
    else if (S_ISREG(st.st_mode))
        rc = copy_file(src, dst, &st, c, err);
    else if (S_ISSOCK(st.st_mode))
        return 0; /* sockets are not content */
    else
        rc = copy_special(src, dst, &st, err);
    if (rc < 0)
        return rc;
    return copy_metadata(src, dst, &st, c, err);
}

int
kiln_fs_copy_tree(const char *src, const char *dst, unsigned flags, kiln_error **err)
{
    struct copy_ctx c = {.flags = flags};
    int rc;

    kiln_map_init(&c.links);
    rc = copy_entry(src, dst, &c, err);
    kiln_map_dispose(&c.links, free);
    if (rc < 0)
        return kiln_error_wrap(err, "copy `%s` to `%s`", src, dst);
    return 0;
}

int
kiln_fs_mkdtemp(char **out, const char *parent, const char *prefix, kiln_error **err)
{
    char *tmpl;

    if (!parent) {
        parent = getenv("TMPDIR");
        if (!parent || !*parent)
            parent = "/tmp";
    }
    tmpl = xasprintf("%s/%sXXXXXX", parent, prefix);

    if (!mkdtemp(tmpl)) {
        int e = errno;
        free(tmpl);
        return kiln_error_errno(err, e, "create temporary directory in `%s`", parent);
    }
    *out = tmpl;
    return 0;
}

bool
kiln_fs_exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

bool
kiln_fs_is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
