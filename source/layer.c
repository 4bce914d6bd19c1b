/*
 * layer.c: apply an image layer tar stream onto a directory (see layer.h for the rules).
 *
 * Every operation is descriptor-relative: an entry's parent directory is opened by walking its
 * components from the root with O_NOFOLLOW, creating missing ones, and any symlink met on the way
 * is resolved by the kernel inside the root (kiln_path_open_in_root, RESOLVE_IN_ROOT), so neither
 * absolute nor relative links can lead a write out of the root. The final component is always
 * removed and recreated (never opened for writing as it is), so a hardlink or symlink left by a
 * lower layer cannot redirect data. Directory mtimes are set at the end, deepest first.
 *
 * Whiteouts: the paths this layer creates are remembered; a whiteout or an opaque marker only
 * removes what is not among them, which makes the result independent of the tar order.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "base/base.h"
#include "base/map.h"
#include "base/path.h"
#include "base/vec.h"
#include "source/layer.h"
#include "source/layer_internal.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define MAX_DEPTH 256

typedef struct dir_time {
    char *path;
    struct timespec mtime;
} dir_time;

typedef struct applier {
    struct archive *ar;
    int rootfd;
    const char *root;
    kiln_layer_opts opts;
    kiln_layer_stats stats;
    kiln_map created; /* paths made by this layer -> (void *)1 */
    kiln_vec dirs;    /* dir_time *, applied at the end */
    char *root_clean; /* `root` cleaned, for lexical resolution */
    int link_depth;   /* nesting of create_through_link */
} applier;

/* ---------------------------------------------------------------------------------------------
 * Names
 */

int
kiln_layer_clean_name(char **out, const char *name, kiln_error **err)
{
    cleanup_free char *clean = NULL;
    const char *p = name;
    if (!name || !*name)
        return kiln_error_set(err, KILN_EINVAL, "empty entry name");
    if (name[0] == '/')
        return kiln_error_set(err, KILN_EINVAL, "entry `%s`: absolute path", name);
    /* reject ".." anywhere, before cleaning could hide it ("a/../../x") */
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return kiln_error_set(err, KILN_EINVAL, "entry `%s`: `..` component", name);
        p += n + (slash ? 1 : 0);
    }
    clean = kiln_path_clean(name);
    *out = strcmp(clean, ".") == 0 ? xstrdup("") : steal_pointer(&clean);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Directory helpers
 */

/* Does a relative symlink target, seen from directory `dir` (relative to the root), climb out? */
static bool
link_escapes(const char *dir, const char *target)
{
    cleanup_free char *joined = NULL;
    cleanup_free char *clean = NULL;
    if (target[0] == '/')
        return false; /* absolute: resolved from the root, as in a container */
    joined = dir[0] ? xasprintf("%s/%s", dir, target) : xstrdup(target);
    clean = kiln_path_clean(joined);
    return strcmp(clean, "..") == 0 || kiln_str_has_prefix(clean, "../");
}

/* Remember `path` and its parents as made by this layer: opaque markers and whiteouts leave
 * them alone, and descend into the parents to clear only their lower-layer content. */
static void
mark_created(applier *a, const char *path)
{
    cleanup_free char *p = xstrdup(path);
    for (;;) {
        char *slash;
        if (kiln_map_put(&a->created, p, (void *)1) != NULL)
            break; /* already there, so were its parents */
        slash = strrchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
    }
}

static int open_dir(applier *a, const char *dir, bool create, bool *missing, int *out,
                    kiln_error **err);

/* A parent reached through a symlink whose target does not exist yet: create the target's
 * directories (resolved inside the root, as Docker's chrooted MkdirAll would) and open it. */
static int
create_through_link(applier *a, const char *path, kiln_error **err)
{
    cleanup_free char *resolved = NULL;
    cleanup_free char *rel = NULL;
    bool missing = false;
    int fd = -1;
    int rc;
    if (a->link_depth >= 8)
        return kiln_error_set(err, KILN_EINVAL, "too many nested symlinks creating `%s`", path);
    rc = kiln_path_resolve_in_root(&resolved, a->root_clean, path, 0, err);
    if (rc < 0)
        return kiln_error_wrap(err, "resolve `%s` in the layer root", path);
    if (!kiln_path_has_prefix(resolved, a->root_clean))
        return kiln_error_set(err, KILN_EINVAL, "`%s` resolves outside the layer root", path);
    rel = xstrdup(resolved + strlen(a->root_clean) + (strcmp(a->root_clean, "/") != 0));
    if (rel[0] == '/')
        memmove(rel, rel + 1, strlen(rel));
    a->link_depth++;
    rc = open_dir(a, rel, true, &missing, &fd, err);
    a->link_depth--;
    return rc < 0 ? rc : fd;
}

/* Step from directory fd `cur` (at root-relative `curpath`) into component `comp`; creates it when
 * missing and `create`. Returns the new fd, 0 when missing and not created (*missing set). */
static int
step_into(applier *a, int cur, const char *curpath, const char *comp, bool create, bool *missing,
          kiln_error **err)
{
    cleanup_free char *next_path = curpath[0] ? xasprintf("%s/%s", curpath, comp) : xstrdup(comp);
    struct stat st;
    int fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    if (errno == ENOENT) {
        if (!create) {
            *missing = true;
            return 0;
        }
        if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST)
            return kiln_error_errno(err, errno, "create parent `%s`", next_path);
        mark_created(a, next_path);
        fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return kiln_error_errno(err, errno, "open parent `%s`", next_path);
        return fd;
    }
    if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_errno(err, errno, "stat parent `%s`", next_path);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(cur, comp, target, sizeof(target) - 1);
        if (n < 0)
            return kiln_error_errno(err, errno, "readlink `%s`", next_path);
        target[n] = '\0';
        if (link_escapes(curpath, target))
            return kiln_error_set(err, KILN_EINVAL,
                                  "parent `%s` is a symlink to `%s`, outside the layer root",
                                  next_path, target);
        /* follow it inside the root; the kernel keeps the lookup there */
        fd = kiln_path_open_in_root(a->rootfd, next_path, O_PATH | O_DIRECTORY, 0, err);
        if (fd == KILN_ENOTFOUND) {
            if (err)
                kiln_error_free(err);
            if (!create) {
                *missing = true;
                return 0;
            }
            return create_through_link(a, next_path, err);
        }
        if (fd < 0)
            return kiln_error_wrap(err, "follow symlink `%s`", next_path);
        return fd;
    }
    return kiln_error_set(err, KILN_EINVAL, "parent `%s` is not a directory", next_path);
}

/* Open directory `dir` (root-relative, cleaned; "" = root) as an O_PATH fd. With `create`, missing
 * directories are made (0755, as Docker does); without, returns 0 and sets *missing. */
static int
open_dir(applier *a, const char *dir, bool create, bool *missing, int *out, kiln_error **err)
{
    cleanup_free char *copy = xstrdup(dir);
    cleanup_free char *curpath = xstrdup("");
    cleanup_close int cur = fcntl(a->rootfd, F_DUPFD_CLOEXEC, 0);
    char *save = copy;
    int depth = 0;
    *missing = false;
    if (cur < 0)
        return kiln_error_errno(err, errno, "dup root fd");
    while (*save) {
        char *slash = strchr(save, '/');
        char *comp = save;
        char *np;
        int next;
        if (slash)
            *slash = '\0';
        save = slash ? slash + 1 : save + strlen(save);
        if (++depth > MAX_DEPTH)
            return kiln_error_set(err, KILN_EINVAL, "path `%s` is too deep", dir);
        next = step_into(a, cur, curpath, comp, create, missing, err);
        if (next < 0)
            return next;
        if (*missing)
            return 0;
        close(cur);
        cur = next;
        np = curpath[0] ? xasprintf("%s/%s", curpath, comp) : xstrdup(comp);
        free(curpath);
        curpath = np;
    }
    *out = steal_fd(&cur);
    return 0;
}

/* rm -rf of pfd/name without following symlinks. Missing is fine. */
static int
remove_at(int pfd, const char *name, const char *path, int depth, kiln_error **err)
{
    struct stat st;
    cleanup_dir DIR *d = NULL;
    int fd;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : kiln_error_errno(err, errno, "stat `%s`", path);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT)
            return kiln_error_errno(err, errno, "remove `%s`", path);
        return 0;
    }
    if (depth > MAX_DEPTH)
        return kiln_error_set(err, KILN_EINVAL, "`%s` is too deep to remove", path);
    fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", path);
    d = fdopendir(fd);
    if (!d) {
        int saved = errno;
        close(fd);
        return kiln_error_errno(err, saved, "open `%s`", path);
    }
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        cleanup_free char *child = NULL;
        int rc;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        child = xasprintf("%s/%s", path, de->d_name);
        rc = remove_at(dirfd(d), de->d_name, child, depth + 1, err);
        if (rc < 0)
            return rc;
    }
    if (unlinkat(pfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return kiln_error_errno(err, errno, "remove `%s`", path);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Whiteouts
 */

/* Remove the children of directory `dirfd` (root-relative `dir`) not created by this layer;
 * recurse into directories this layer created, which may still hold lower-layer content. */
static int
clear_lower(applier *a, int dfd, const char *dir, int depth, kiln_error **err)
{
    cleanup_dir DIR *d = NULL;
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", dir);
    d = fdopendir(fd);
    if (!d) {
        int saved = errno;
        close(fd);
        return kiln_error_errno(err, saved, "open `%s`", dir);
    }
    if (depth > MAX_DEPTH)
        return kiln_error_set(err, KILN_EINVAL, "`%s` is too deep", dir);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        cleanup_free char *child = NULL;
        int rc = 0;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        child = dir[0] ? xasprintf("%s/%s", dir, de->d_name) : xstrdup(de->d_name);
        if (!kiln_map_has(&a->created, child)) {
            rc = remove_at(dirfd(d), de->d_name, child, 0, err);
        } else if (de->d_type == DT_DIR) {
            cleanup_close int cfd =
                    openat(dirfd(d), de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0)
                return kiln_error_errno(err, errno, "open `%s`", child);
            rc = clear_lower(a, cfd, child, depth + 1, err);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int
apply_opaque(applier *a, const char *dir, kiln_error **err)
{
    cleanup_close int dfd = -1;
    bool missing;
    int rc = open_dir(a, dir, true, &missing, &dfd, err);
    if (rc < 0)
        return rc;
    a->stats.whiteouts++;
    if (a->opts.overlay_whiteouts) {
        cleanup_free char *proc = xasprintf("/proc/self/fd/%d", dfd);
        if (setxattr(proc, "trusted.overlay.opaque", "y", 1, 0) < 0)
            return kiln_error_errno(err, errno, "mark `%s` opaque", dir[0] ? dir : "/");
    }
    return clear_lower(a, dfd, dir, 0, err);
}

static int
apply_whiteout(applier *a, const char *dir, const char *name, kiln_error **err)
{
    cleanup_free char *target = dir[0] ? xasprintf("%s/%s", dir, name) : xstrdup(name);
    cleanup_close int dfd = -1;
    bool missing;
    int rc;
    if (kiln_map_has(&a->created, target))
        return 0; /* a whiteout never hides what its own layer creates */
    rc = open_dir(a, dir, a->opts.overlay_whiteouts, &missing, &dfd, err);
    if (rc < 0 || missing)
        return rc;
    a->stats.whiteouts++;
    rc = remove_at(dfd, name, target, 0, err);
    if (rc < 0)
        return rc;
    if (a->opts.overlay_whiteouts && mknodat(dfd, name, S_IFCHR | 0000, makedev(0, 0)) < 0)
        return kiln_error_errno(err, errno, "create whiteout device `%s`", target);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Entries
 */

static int
write_data(applier *a, int fd, const char *path, kiln_error **err)
{
    const void *buf;
    size_t size;
    la_int64_t offset;
    for (;;) {
        int r = archive_read_data_block(a->ar, &buf, &size, &offset);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_WARN)
            return kiln_error_set(err, KILN_EPARSE, "read data of `%s`: %s", path,
                                  archive_error_string(a->ar));
        if (a->opts.max_bytes && a->stats.bytes + size > a->opts.max_bytes)
            return kiln_error_set(err, KILN_EINVAL, "layer data exceeds %llu bytes at `%s`",
                                  (unsigned long long)a->opts.max_bytes, path);
        /* sparse files come as blocks at offsets: pwrite leaves the holes */
        for (size_t off = 0; off < size;) {
            ssize_t n = pwrite(fd, (const char *)buf + off, size - off, offset + (off_t)off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return kiln_error_errno(err, errno, "write `%s`", path);
            off += (size_t)n;
        }
        a->stats.bytes += size;
    }
}

static int
create_regular(applier *a, int pfd, const char *name, const char *path, struct archive_entry *e,
               kiln_error **err)
{
    cleanup_close int fd =
            openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc;
    if (fd < 0)
        return kiln_error_errno(err, errno, "create `%s`", path);
    rc = write_data(a, fd, path, err);
    if (rc < 0)
        return rc;
    if (ftruncate(fd, archive_entry_size(e)) < 0)
        return kiln_error_errno(err, errno, "size `%s`", path);
    return 0;
}

static int
create_hardlink(applier *a, int pfd, const char *name, const char *path, const char *target,
                kiln_error **err)
{
    cleanup_free char *clean = NULL;
    cleanup_free char *tdir = NULL;
    cleanup_free char *tbase = NULL;
    cleanup_close int tfd = -1;
    bool missing;
    int rc = kiln_layer_clean_name(&clean, target, err);
    if (rc < 0)
        return kiln_error_wrap(err, "hardlink `%s`: target outside the layer root", path);
    if (!clean[0])
        return kiln_error_set(err, KILN_EINVAL, "hardlink `%s` to the root directory", path);
    tdir = kiln_path_dir(clean);
    tbase = kiln_path_base(clean);
    if (strcmp(tdir, ".") == 0) {
        free(tdir);
        tdir = xstrdup("");
    }
    rc = open_dir(a, tdir, false, &missing, &tfd, err);
    if (rc < 0)
        return kiln_error_wrap(err, "hardlink `%s`", path);
    if (missing || linkat(tfd, tbase, pfd, name, 0) < 0) {
        if (missing || errno == ENOENT)
            return kiln_error_set(err, KILN_EINVAL, "hardlink `%s`: target `%s` does not exist",
                                  path, clean);
        return kiln_error_errno(err, errno, "hardlink `%s` to `%s`", path, clean);
    }
    return 0;
}

static int
create_node(applier *a, int pfd, const char *name, const char *path, struct archive_entry *e,
            kiln_error **err)
{
    mode_t type = archive_entry_filetype(e);
    const char *hl = archive_entry_hardlink(e);
    if (hl)
        return create_hardlink(a, pfd, name, path, hl, err);
    switch (type) {
    case AE_IFREG:
        return create_regular(a, pfd, name, path, e, err);
    case AE_IFDIR:
        if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
            return kiln_error_errno(err, errno, "mkdir `%s`", path);
        return 0;
    case AE_IFLNK: {
        const char *target = archive_entry_symlink(e);
        if (!target)
            return kiln_error_set(err, KILN_EPARSE, "symlink `%s` has no target", path);
        if (symlinkat(target, pfd, name) < 0)
            return kiln_error_errno(err, errno, "symlink `%s`", path);
        return 0;
    }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
    case AE_IFSOCK:
        if (mknodat(pfd, name, type | (archive_entry_perm(e) & 07777),
                    makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e))) < 0)
            return kiln_error_errno(err, errno, "mknod `%s`", path);
        return 0;
    default:
        return kiln_error_set(err, KILN_EUNSUPPORTED, "entry `%s`: unsupported type 0%o", path,
                              (unsigned)type);
    }
}

static int
set_xattrs(applier *a, int pfd, const char *name, const char *path, struct archive_entry *e,
           kiln_error **err)
{
    cleanup_free char *proc = NULL;
    const char *xname;
    const void *value;
    size_t size;
    if (a->opts.no_xattrs || archive_entry_xattr_reset(e) == 0)
        return 0;
    proc = xasprintf("/proc/self/fd/%d/%s", pfd, name);
    while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
        if (lsetxattr(proc, xname, value, size, 0) < 0) {
            if (errno == ENOTSUP || errno == EOPNOTSUPP)
                continue; /* the filesystem cannot hold it: as Docker, skip */
            return kiln_error_errno(err, errno, "set xattr %s on `%s`", xname, path);
        }
    }
    return 0;
}

static int
set_attrs(applier *a, int pfd, const char *name, const char *path, struct archive_entry *e,
          kiln_error **err)
{
    mode_t type = archive_entry_filetype(e);
    bool is_link = type == AE_IFLNK && !archive_entry_hardlink(e);
    int rc;
    if (archive_entry_hardlink(e))
        return 0; /* shares the target's inode and attributes */
    if (!a->opts.no_owner && fchownat(pfd, name, (uid_t)archive_entry_uid(e),
                                      (gid_t)archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_errno(err, errno, "chown `%s`", path);
    /* after chown, which clears set-id bits */
    if (!is_link && fchmodat(pfd, name, archive_entry_perm(e) & 07777, 0) < 0)
        return kiln_error_errno(err, errno, "chmod `%s`", path);
    rc = set_xattrs(a, pfd, name, path, e, err);
    if (rc < 0)
        return rc;
    if (type == AE_IFDIR) {
        dir_time *dt = xnew(dir_time);
        dt->path = xstrdup(path);
        dt->mtime.tv_sec = archive_entry_mtime(e);
        dt->mtime.tv_nsec = archive_entry_mtime_nsec(e);
        kiln_vec_push(&a->dirs, dt);
    } else {
        struct timespec ts[2];
        ts[0].tv_sec = archive_entry_mtime(e);
        ts[0].tv_nsec = archive_entry_mtime_nsec(e);
        ts[1] = ts[0];
        if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
            return kiln_error_errno(err, errno, "set times of `%s`", path);
    }
    return 0;
}

/* Make room for the entry: keep an existing directory for a directory entry, remove the rest. */
static int
prepare_slot(int pfd, const char *name, const char *path, bool want_dir, kiln_error **err)
{
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : kiln_error_errno(err, errno, "stat `%s`", path);
    if (want_dir && S_ISDIR(st.st_mode))
        return 0;
    return remove_at(pfd, name, path, 0, err);
}

static int
apply_entry(applier *a, struct archive_entry *e, kiln_error **err)
{
    cleanup_free char *path = NULL;
    cleanup_free char *dir = NULL;
    cleanup_free char *name = NULL;
    cleanup_close int pfd = -1;
    bool missing, is_dir;
    int rc = kiln_layer_clean_name(&path, archive_entry_pathname(e), err);
    if (rc < 0)
        return rc;
    a->stats.entries++;
    if (!path[0])
        return 0; /* the root itself: its attributes belong to the snapshot, not the layer */
    dir = kiln_path_dir(path);
    name = kiln_path_base(path);
    if (strcmp(dir, ".") == 0) {
        free(dir);
        dir = xstrdup("");
    }
    if (strcmp(name, WH_OPAQUE) == 0)
        return apply_opaque(a, dir, err);
    if (kiln_str_has_prefix(name, WH_PREFIX)) {
        if (!name[strlen(WH_PREFIX)])
            return kiln_error_set(err, KILN_EINVAL, "entry `%s`: empty whiteout name", path);
        return apply_whiteout(a, dir, name + strlen(WH_PREFIX), err);
    }
    rc = open_dir(a, dir, true, &missing, &pfd, err);
    if (rc < 0)
        return rc;
    is_dir = archive_entry_filetype(e) == AE_IFDIR && !archive_entry_hardlink(e);
    rc = prepare_slot(pfd, name, path, is_dir, err);
    if (rc == 0)
        rc = create_node(a, pfd, name, path, e, err);
    if (rc == 0)
        rc = set_attrs(a, pfd, name, path, e, err);
    if (rc == 0)
        mark_created(a, path);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The stream
 */

static int
apply_dir_times(applier *a, kiln_error **err)
{
    /* deepest first: setting a child's time would not touch its parent, but creating did */
    for (size_t i = a->dirs.len; i > 0; i--) {
        const dir_time *dt = a->dirs.items[i - 1];
        struct timespec ts[2] = {dt->mtime, dt->mtime};
        cleanup_close int fd = kiln_path_open_in_root(a->rootfd, dt->path,
                                                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, err);
        if (fd == KILN_ENOTFOUND) {
            /* removed again by a later entry of the same layer */
            if (err)
                kiln_error_free(err);
            continue;
        }
        if (fd < 0)
            return fd;
        if (futimens(fd, ts) < 0)
            return kiln_error_errno(err, errno, "set times of `%s`", dt->path);
    }
    return 0;
}

static void
dir_time_free(void *p)
{
    dir_time *dt = p;
    free(dt->path);
    free(dt);
}

static int
run_applier(applier *a, kiln_error **err)
{
    struct archive_entry *e;
    int rc = 0;
    for (;;) {
        int r = archive_read_next_header(a->ar, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            rc = kiln_error_set(err, KILN_EPARSE, "read layer (after %llu entries): %s",
                                (unsigned long long)a->stats.entries,
                                archive_error_string(a->ar) ? archive_error_string(a->ar)
                                                            : "unknown error");
            break;
        }
        rc = apply_entry(a, e, err);
        if (rc < 0)
            break;
    }
    if (rc == 0)
        rc = apply_dir_times(a, err);
    return rc;
}

static int
layer_apply(int fd, const void *mem, size_t len, const char *root, const kiln_layer_opts *opts,
            kiln_layer_stats *stats, kiln_error **err)
{
    applier a = {.root = root, .created = KILN_MAP_INIT, .dirs = KILN_VEC_INIT};
    kiln_layer_stream *stream = NULL;
    int rc;
    if (opts)
        a.opts = *opts;
    a.rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (a.rootfd < 0)
        return kiln_error_errno(err, errno, "open layer root `%s`", root);
    a.root_clean = kiln_path_clean(root);
    rc = kiln_layer__stream_open(&stream, &a.ar, fd, mem, len, err);
    if (rc == 0)
        rc = run_applier(&a, err);
    if (rc == 0)
        rc = kiln_layer__stream_finish(stream, &a.stats.blob_digest, &a.stats.diff_id, err);
    kiln_layer__stream_free(stream);
    close(a.rootfd);
    kiln_map_dispose(&a.created, NULL);
    kiln_vec_dispose(&a.dirs, dir_time_free);
    free(a.root_clean);
    if (stats)
        *stats = a.stats;
    if (rc < 0)
        return kiln_error_wrap(err, "apply layer onto `%s`", root);
    return 0;
}

int
kiln_layer_apply_fd(int fd, const char *root, const kiln_layer_opts *opts, kiln_layer_stats *stats,
                    kiln_error **err)
{
    if (fd < 0)
        return kiln_error_set(err, KILN_EINVAL, "apply layer: invalid file descriptor");
    return layer_apply(fd, NULL, 0, root, opts, stats, err);
}

int
kiln_layer_apply_mem(const void *data, size_t len, const char *root, const kiln_layer_opts *opts,
                     kiln_layer_stats *stats, kiln_error **err)
{
    return layer_apply(-1, data, len, root, opts, stats, err);
}
