/*
 * path.c: lexical path operations (Go's filepath semantics, which Dockerfiles and BuildKit assume)
 * and lookups confined to a root directory.
 *
 * kiln_path_resolve_in_root() walks the path one component at a time, reading symlinks itself and
 * restarting absolute targets at the root, so `..` and links can never leave the root (the
 * algorithm of Go's securejoin). kiln_path_open_in_root() asks the kernel to do the same atomically
 * (openat2 RESOLVE_IN_ROOT), which also closes the race with a concurrent rename.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/path.h"
#include "base/vec.h"

#define MAX_SYMLINKS 255

char *
kiln_path_clean(const char *path)
{
    size_t n = strlen(path);
    bool rooted = n > 0 && path[0] == '/';
    char *out = xmalloc(n + 2);
    size_t w = 0, r = 0, dotdot = 0;

    if (rooted) {
        out[w++] = '/';
        r = 1;
        dotdot = 1;
    }
    while (r < n) {
        if (path[r] == '/') {
            r++;
        } else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
            r++;
        } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == n || path[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            for (; r < n && path[r] != '/'; r++)
                out[w++] = path[r];
        }
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = '\0';
    return out;
}

char *
kiln_path_join(const char *a, const char *b)
{
    cleanup_free char *tmp = NULL;

    if (!a || !*a)
        return kiln_path_clean(b && *b ? b : ".");
    if (!b || !*b)
        return kiln_path_clean(a);
    tmp = xasprintf("%s/%s", a, b);
    return kiln_path_clean(tmp);
}

char *
kiln_path_base(const char *path)
{
    size_t n = strlen(path);
    const char *start;

    while (n > 0 && path[n - 1] == '/')
        n--;
    if (n == 0)
        return xstrdup(*path ? "/" : ".");
    start = path + n;
    while (start > path && start[-1] != '/')
        start--;
    return xstrndup(start, (size_t)(path + n - start));
}

char *
kiln_path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    cleanup_free char *head = NULL;

    if (!slash)
        return xstrdup(".");
    head = xstrndup(path, (size_t)(slash - path + 1));
    return kiln_path_clean(head);
}

bool
kiln_path_is_abs(const char *path)
{
    return path[0] == '/';
}

bool
kiln_path_has_prefix(const char *path, const char *root)
{
    cleanup_free char *p = kiln_path_clean(path);
    cleanup_free char *r = kiln_path_clean(root);
    size_t rl = strlen(r);

    if (strcmp(r, "/") == 0)
        return p[0] == '/';
    return strncmp(p, r, rl) == 0 && (p[rl] == '\0' || p[rl] == '/');
}

/* Push the components of `path` onto the front of the pending stack (stored reversed). */
static void
push_components(kiln_vec *pending, const char *path)
{
    kiln_vec parts = KILN_VEC_INIT;
    const char *p = path;

    while (*p) {
        size_t len = strcspn(p, "/");
        if (len > 0)
            kiln_vec_push(&parts, xstrndup(p, len));
        p += len;
        while (*p == '/')
            p++;
    }
    for (size_t i = parts.len; i > 0; i--)
        kiln_vec_push(pending, parts.items[i - 1]);
    kiln_vec_dispose(&parts, NULL);
}

static char *
joined(const char *root, const kiln_vec *resolved)
{
    cleanup_free char *rel = kiln_strvec_join(resolved, "/");

    return kiln_path_join(root, rel);
}

/* One step of the walk: `comp` is appended to `resolved` unless it is a symlink, in which case its
 * target's components are queued instead. Returns 0, or a negative code. */
static int
resolve_step(const char *root, kiln_vec *resolved, kiln_vec *pending, char *comp, bool last,
             unsigned flags, int *links, kiln_error **err)
{
    cleanup_free char *full = NULL;
    char target[PATH_MAX];
    struct stat st;
    ssize_t n;

    kiln_vec_push(resolved, comp);
    if (last && (flags & KILN_RESOLVE_NOFOLLOW))
        return 0;
    full = joined(root, resolved);
    if (lstat(full, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return kiln_error_errno(err, errno, "lstat `%s`", full);
    }
    if (!S_ISLNK(st.st_mode))
        return 0;
    if (++*links > MAX_SYMLINKS)
        return kiln_error_set(err, KILN_EINVAL, "too many levels of symbolic links in root `%s`",
                              root);
    n = readlink(full, target, sizeof(target) - 1);
    if (n < 0)
        return kiln_error_errno(err, errno, "readlink `%s`", full);
    target[n] = '\0';
    free(kiln_vec_pop(resolved));
    if (target[0] == '/')
        kiln_vec_dispose(resolved, free);
    push_components(pending, target);
    return 0;
}

int
kiln_path_resolve_in_root(char **out, const char *root, const char *path, unsigned flags,
                          kiln_error **err)
{
    kiln_vec resolved = KILN_VEC_INIT, pending = KILN_VEC_INIT;
    int links = 0, rc = 0;

    push_components(&pending, path);
    while (pending.len > 0) {
        char *comp = kiln_vec_pop(&pending);
        if (strcmp(comp, ".") == 0) {
            free(comp);
        } else if (strcmp(comp, "..") == 0) {
            free(comp);
            free(kiln_vec_pop(&resolved));
        } else {
            rc = resolve_step(root, &resolved, &pending, comp, pending.len == 0, flags, &links,
                              err);
            if (rc < 0)
                break;
        }
    }
    if (rc == 0)
        *out = joined(root, &resolved);
    kiln_vec_dispose(&resolved, free);
    kiln_vec_dispose(&pending, free);
    return rc;
}

/* Fallback for kernels without openat2: resolve lexically, then open without following a final
 * symlink. A concurrent rename can still race this; openat2 is used whenever it exists. */
static int
open_in_root_fallback(int rootfd, const char *path, int oflags, int mode, kiln_error **err)
{
    char proc[64], root[PATH_MAX];
    cleanup_free char *resolved = NULL;
    ssize_t n;
    int fd, rc;

    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", rootfd);
    n = readlink(proc, root, sizeof(root) - 1);
    if (n < 0)
        return kiln_error_errno(err, errno, "readlink `%s`", proc);
    root[n] = '\0';
    rc = kiln_path_resolve_in_root(&resolved, root, path, 0, err);
    if (rc < 0)
        return rc;
    fd = open(resolved, oflags | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s` in root", path);
    return fd;
}

int
kiln_path_open_in_root(int rootfd, const char *path, int oflags, int mode, kiln_error **err)
{
    struct open_how how;
    long fd;

    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(oflags | O_CLOEXEC);
    how.mode = (oflags & (O_CREAT | O_TMPFILE)) ? (uint64_t)mode : 0;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    do {
        fd = syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof(how));
    } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    if (fd < 0 && errno == ENOSYS)
        return open_in_root_fallback(rootfd, path, oflags, mode, err);
    if (fd < 0) {
        if (errno == ENOENT)
            return kiln_error_set(err, KILN_ENOTFOUND, "open `%s` in root: %s", path,
                                  strerror(errno));
        return kiln_error_errno(err, errno, "open `%s` in root", path);
    }
    return (int)fd;
}
