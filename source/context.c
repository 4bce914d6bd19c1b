/*
 * context.c: walk a build context, checksum it, and copy the selection elsewhere.
 *
 * The walk is depth-first with sorted names, descriptor-relative (openat/fstatat), so the result
 * comes out in tree order with no extra sort. Selection follows BuildKit's fsutil walker: include
 * and exclude matchers are evaluated with the parent directory's per-pattern results; an excluded
 * directory is pruned unless an exception could re-include something below it, and a directory
 * that is only a way to a selected path is listed when its first selected descendant appears.
 *
 * Digests: see context.h. The per-file content hash is the expensive part; a stat-keyed cache
 * (callbacks) lets an unchanged tree be rescanned with only readdir, fstatat and llistxattr calls.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "base/base.h"
#include "base/digest.h"
#include "base/path.h"
#include "base/vec.h"
#include "source/context.h"

#define XATTR_LIST_MAX_BYTES  (64 * 1024)
#define XATTR_VALUE_MAX_BYTES (64 * 1024)

typedef struct walker {
    const kiln_ctx_opts *opts;
    kiln_ctx_list *list;
    size_t cap;
    char *root;
} walker;

/* ---------------------------------------------------------------------------------------------
 * Paths and entries
 */

int
kiln_ctx_path_cmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;
    while (*x && *x == *y) {
        x++;
        y++;
    }
    if (*x == *y)
        return 0;
    /* '/' (and the end of the string) sort before any other byte */
    if (*x == '\0')
        return -1;
    if (*y == '\0')
        return 1;
    if (*x == '/')
        return -1;
    if (*y == '/')
        return 1;
    return *x < *y ? -1 : 1;
}

static void
entry_dispose(kiln_ctx_entry *e)
{
    free(e->path);
    free(e->link);
    for (size_t i = 0; i < e->nxattrs; i++) {
        free(e->xattrs[i].name);
        free(e->xattrs[i].value);
    }
    free(e->xattrs);
}

void
kiln_ctx_list_free(kiln_ctx_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->len; i++)
        entry_dispose(&l->entries[i]);
    free(l->entries);
    free(l);
}

const kiln_ctx_entry *
kiln_ctx_list_find(const kiln_ctx_list *l, const char *path)
{
    size_t lo = 0, hi = l->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = kiln_ctx_path_cmp(l->entries[mid].path, path);
        if (c == 0)
            return &l->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static size_t
push_entry(walker *w, const char *path, const struct stat *st)
{
    kiln_ctx_list *l = w->list;
    kiln_ctx_entry *e;
    if (l->len == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        l->entries = xreallocarray(l->entries, w->cap, sizeof(kiln_ctx_entry));
    }
    e = &l->entries[l->len];
    memset(e, 0, sizeof(*e));
    e->path = xstrdup(path);
    e->mode = st->st_mode;
    e->uid = st->st_uid;
    e->gid = st->st_gid;
    e->size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
    e->mtime = st->st_mtim;
    e->rdev = st->st_rdev;
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->nlink = st->st_nlink;
    return l->len++;
}

static int
cmp_xattr(const void *a, const void *b)
{
    return strcmp(((const kiln_ctx_xattr *)a)->name, ((const kiln_ctx_xattr *)b)->name);
}

#ifndef SYS_listxattrat
#define SYS_listxattrat 465 /* Linux 6.13, same number on every architecture */
#endif

/* List the xattr names of dirfd/name without following a final symlink. listxattrat() (Linux
 * 6.13) looks up one component; older kernels fall back to llistxattr on the absolute path,
 * whose full lookup costs more per file in large contexts. */
static ssize_t
list_xattrs(int dirfd, const char *name, const char *abs, char *buf, size_t size)
{
    static int have_at = 1;
    if (__atomic_load_n(&have_at, __ATOMIC_RELAXED)) {
        long n = syscall(SYS_listxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, buf, size);
        if (n >= 0 || (errno != ENOSYS && errno != EPERM))
            return (ssize_t)n;
        /* ENOSYS, or EPERM from a seccomp filter that does not know the call */
        __atomic_store_n(&have_at, 0, __ATOMIC_RELAXED);
    }
    return llistxattr(abs, buf, size);
}

/* Read the xattrs of the entry dirfd/name, also reachable as `abs` (not following symlinks). */
static int
read_xattrs(kiln_ctx_entry *e, int dirfd, const char *name, const char *abs, kiln_error **err)
{
    cleanup_free char *names = NULL;
    ssize_t n = list_xattrs(dirfd, name, abs, NULL, 0);
    if (n < 0) {
        if (errno == ENOTSUP || errno == EOPNOTSUPP)
            return 0;
        return kiln_error_errno(err, errno, "list xattrs of `%s`", abs);
    }
    if (n == 0)
        return 0;
    if (n > XATTR_LIST_MAX_BYTES)
        return kiln_error_set(err, KILN_EINVAL, "xattr list of `%s` too large", abs);
    names = xmalloc((size_t)n);
    n = list_xattrs(dirfd, name, abs, names, (size_t)n);
    if (n < 0)
        return kiln_error_errno(err, errno, "list xattrs of `%s`", abs);
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(names + off) + 1) {
        const char *xname = names + off;
        char value[XATTR_VALUE_MAX_BYTES];
        ssize_t vlen = lgetxattr(abs, xname, value, sizeof(value));
        if (vlen < 0) {
            if (errno == ENODATA)
                continue;
            return kiln_error_errno(err, errno, "read xattr %s of `%s`", xname, abs);
        }
        e->xattrs = xreallocarray(e->xattrs, e->nxattrs + 1, sizeof(kiln_ctx_xattr));
        e->xattrs[e->nxattrs++] =
                (kiln_ctx_xattr){xstrdup(xname), xmemdup(value, (size_t)vlen), (size_t)vlen};
    }
    qsort(e->xattrs, e->nxattrs, sizeof(kiln_ctx_xattr), cmp_xattr);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Digests
 */

static void
hash_u64(kiln_xxh_ctx *h, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    kiln_xxh_ctx_update(h, b, sizeof(b));
}

/* The part of an entry's digest that does not depend on content: no name, no mtime, no size. */
static void
hash_header(kiln_xxh_ctx *h, const kiln_ctx_entry *e)
{
    hash_u64(h, e->mode & S_IFMT);
    hash_u64(h, e->mode & 07777);
    hash_u64(h, e->uid);
    hash_u64(h, e->gid);
    if (S_ISCHR(e->mode) || S_ISBLK(e->mode)) {
        hash_u64(h, major(e->rdev));
        hash_u64(h, minor(e->rdev));
    }
    if (e->link) {
        hash_u64(h, strlen(e->link));
        kiln_xxh_ctx_update(h, e->link, strlen(e->link));
    }
    hash_u64(h, e->nxattrs);
    for (size_t i = 0; i < e->nxattrs; i++) {
        kiln_xxh_ctx_update(h, e->xattrs[i].name, strlen(e->xattrs[i].name) + 1);
        hash_u64(h, e->xattrs[i].len);
        kiln_xxh_ctx_update(h, e->xattrs[i].value, e->xattrs[i].len);
    }
}

static void
hash_digest(kiln_xxh_ctx *h, kiln_xxh128 d)
{
    hash_u64(h, d.lo);
    hash_u64(h, d.hi);
}

static int
hash_content(kiln_xxh128 *out, int dirfd, const char *name, const char *path, kiln_error **err)
{
    cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    kiln_xxh_ctx *h = NULL;
    static __thread char buf[128 * 1024];
    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", path);
    kiln_xxh_ctx_new(&h);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            kiln_xxh_ctx_free(h);
            return kiln_error_errno(err, saved, "read `%s`", path);
        }
        if (n == 0)
            break;
        kiln_xxh_ctx_update(h, buf, (size_t)n);
    }
    *out = kiln_xxh_ctx_final128(h);
    kiln_xxh_ctx_free(h);
    return 0;
}

/* Content hash of a regular file, through the stat-keyed cache when there is one. */
static int
file_content_hash(walker *w, kiln_xxh128 *out, int dirfd, const char *name, const kiln_ctx_entry *e,
                  kiln_error **err)
{
    const kiln_ctx_cache_ops *c = w->opts->cache;
    cleanup_free char *key = NULL;
    size_t keylen = 0;
    int rc;
    if (c) {
        key = xasprintf("%s%c%llu:%lld.%09ld:%llu:%o", e->path, '\0', (unsigned long long)e->size,
                        (long long)e->mtime.tv_sec, (long)e->mtime.tv_nsec,
                        (unsigned long long)e->ino, (unsigned)e->mode);
        keylen = strlen(e->path) + 1 + strlen(key + strlen(e->path) + 1);
        if (c->get(c->payload, key, keylen, out))
            return 0;
    }
    rc = hash_content(out, dirfd, name, e->path, err);
    if (rc < 0)
        return rc;
    w->list->hashed++;
    if (c)
        c->put(c->payload, key, keylen, *out);
    return 0;
}

static int
entry_digest(walker *w, size_t idx, int dirfd, const char *name, kiln_error **err)
{
    kiln_ctx_entry *e = &w->list->entries[idx];
    kiln_xxh_ctx *h = NULL;
    kiln_xxh128 content = {0, 0};
    if (S_ISREG(e->mode)) {
        int rc = file_content_hash(w, &content, dirfd, name, e, err);
        if (rc < 0)
            return rc;
        e = &w->list->entries[idx];
    }
    kiln_xxh_ctx_new(&h);
    hash_header(h, e);
    hash_digest(h, content);
    e->digest = kiln_xxh_ctx_final128(h);
    kiln_xxh_ctx_free(h);
    return 0;
}

/* Directory digest: own header, then (name, digest) of each listed direct child in order. */
static kiln_xxh128
dir_digest(const walker *w, const kiln_ctx_entry *self, const kiln_vec *children)
{
    kiln_xxh_ctx *h = NULL;
    kiln_xxh128 d;
    void *item;
    kiln_xxh_ctx_new(&h);
    if (self)
        hash_header(h, self);
    kiln_vec_foreach(children, i, item) {
        const kiln_ctx_entry *c = &w->list->entries[(size_t)(uintptr_t)item];
        const char *slash = strrchr(c->path, '/');
        const char *base = slash ? slash + 1 : c->path;
        kiln_xxh_ctx_update(h, base, strlen(base) + 1);
        hash_digest(h, c->digest);
    }
    d = kiln_xxh_ctx_final128(h);
    kiln_xxh_ctx_free(h);
    return d;
}

/* ---------------------------------------------------------------------------------------------
 * The walk
 */

static int
cmp_names(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int
ignore_dots(const struct dirent *d)
{
    return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

typedef struct match_state {
    bool *inc; /* per-pattern results of the include matcher for this path */
    bool *exc;
} match_state;

/* Decide whether `path` is selected; *descend says whether a directory must be walked. */
static bool
select_path(walker *w, const char *path, bool is_dir, const match_state *parent, match_state *self,
            bool *descend)
{
    bool selected = true;
    *descend = is_dir;
    if (w->opts->include) {
        bool m = kiln_ignore_matches_walk(w->opts->include, path, parent ? parent->inc : NULL,
                                          self->inc);
        if (!m) {
            selected = false;
            if (!is_dir || !kiln_ignore_may_match_below(w->opts->include, path, false)) {
                *descend = false;
                return false;
            }
        }
    }
    if (w->opts->exclude) {
        bool m = kiln_ignore_matches_walk(w->opts->exclude, path, parent ? parent->exc : NULL,
                                          self->exc);
        if (m) {
            selected = false;
            if (!is_dir || !kiln_ignore_may_match_below(w->opts->exclude, path, true))
                *descend = false;
        }
    }
    return selected;
}

static int walk_dir(walker *w, int dirfd, const char *rel, const match_state *parent,
                    kiln_vec *listed, kiln_error **err);

static int
fill_entry(walker *w, size_t idx, int dirfd, const char *name, kiln_error **err)
{
    kiln_ctx_entry *e = &w->list->entries[idx];
    cleanup_free char *abs = xasprintf("%s/%s", w->root, e->path);
    int rc;
    if (S_ISLNK(e->mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return kiln_error_errno(err, errno, "readlink `%s`", e->path);
        target[n] = '\0';
        e->link = xstrdup(target);
    }
    rc = read_xattrs(e, dirfd, name, abs, err);
    if (rc < 0)
        return rc;
    if (w->opts->checksum && !S_ISDIR(e->mode))
        return entry_digest(w, idx, dirfd, name, err);
    return 0;
}

/* The directory entry at `idx` was pushed: walk below it, then fill it in, or drop it when it
 * was only a possible way to selected paths and none turned up. *dropped tells which. */
static int
walk_subdir(walker *w, size_t idx, int dirfd, const char *name, bool selected,
            const match_state *self, bool *dropped, kiln_error **err)
{
    cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    kiln_vec children = KILN_VEC_INIT;
    const char *path = w->list->entries[idx].path;
    int rc;
    *dropped = false;
    if (fd < 0)
        return kiln_error_errno(err, errno, "open directory `%s`", path);
    rc = walk_dir(w, fd, path, self, &children, err);
    if (rc == 0 && !selected && children.len == 0) {
        /* nothing was listed below, so it is still the last entry */
        entry_dispose(&w->list->entries[--w->list->len]);
        *dropped = true;
    } else if (rc == 0) {
        rc = fill_entry(w, idx, dirfd, name, err);
        if (rc == 0 && w->opts->checksum)
            w->list->entries[idx].digest = dir_digest(w, &w->list->entries[idx], &children);
    }
    kiln_vec_dispose(&children, NULL);
    return rc;
}

/* One child of a directory: select, list, recurse. Appends its index to `listed` if listed. */
static int
walk_child(walker *w, int dirfd, const char *rel, const char *name, const match_state *parent,
           kiln_vec *listed, kiln_error **err)
{
    cleanup_free char *path = rel[0] ? xasprintf("%s/%s", rel, name) : xstrdup(name);
    cleanup_free bool *inc = xcalloc(kiln_ignore_count(w->opts->include) + 1, sizeof(bool));
    cleanup_free bool *exc = xcalloc(kiln_ignore_count(w->opts->exclude) + 1, sizeof(bool));
    match_state self = {inc, exc};
    struct stat st;
    bool descend, selected, dropped = false;
    size_t idx;
    int rc;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0; /* removed while we walked */
        return kiln_error_errno(err, errno, "stat `%s`", path);
    }
    selected = select_path(w, path, S_ISDIR(st.st_mode), parent, &self, &descend);
    if (!selected && !descend)
        return 0;
    idx = push_entry(w, path, &st);
    if (S_ISDIR(st.st_mode))
        rc = walk_subdir(w, idx, dirfd, name, selected, &self, &dropped, err);
    else
        rc = fill_entry(w, idx, dirfd, name, err);
    if (rc < 0 || dropped)
        return rc;
    kiln_vec_push(listed, (void *)(uintptr_t)idx);
    return 0;
}

static int
walk_dir(walker *w, int dirfd, const char *rel, const match_state *parent, kiln_vec *listed,
         kiln_error **err)
{
    struct dirent **names = NULL;
    int rc = 0;
    int dupfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    int n;
    DIR *d;
    if (dupfd < 0)
        return kiln_error_errno(err, errno, "dup directory fd of `%s`", rel[0] ? rel : ".");
    d = fdopendir(dupfd);
    if (!d) {
        int saved = errno;
        close(dupfd);
        return kiln_error_errno(err, saved, "open directory `%s`", rel[0] ? rel : ".");
    }
    /* scandir needs a path; emulate it over the DIR stream */
    n = 0;
    for (struct dirent *de; (errno = 0, de = readdir(d)) != NULL;) {
        if (!ignore_dots(de))
            continue;
        names = xreallocarray(names, (size_t)n + 1, sizeof(*names));
        names[n] = xmemdup(de, sizeof(*de));
        n++;
    }
    if (errno != 0)
        rc = kiln_error_errno(err, errno, "read directory `%s`", rel[0] ? rel : ".");
    closedir(d);
    if (n > 1)
        qsort(names, (size_t)n, sizeof(*names), (int (*)(const void *, const void *))cmp_names);
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            rc = walk_child(w, dirfd, rel, names[i]->d_name, parent, listed, err);
        free(names[i]);
    }
    free(names);
    return rc;
}

int
kiln_ctx_walk(kiln_ctx_list **out, const char *root, const kiln_ctx_opts *opts, kiln_error **err)
{
    static const kiln_ctx_opts defaults = {0};
    cleanup_close int fd = -1;
    kiln_vec top = KILN_VEC_INIT;
    struct stat st;
    walker w = {0};
    int rc;
    if (!opts)
        opts = &defaults;
    if (stat(root, &st) < 0) {
        if (errno == ENOENT)
            return kiln_error_set(err, KILN_ENOTFOUND, "build context `%s` does not exist", root);
        return kiln_error_errno(err, errno, "stat build context `%s`", root);
    }
    if (!S_ISDIR(st.st_mode))
        return kiln_error_set(err, KILN_EINVAL, "build context `%s` is not a directory", root);
    fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_errno(err, errno, "open build context `%s`", root);
    w.opts = opts;
    w.list = xnew(kiln_ctx_list);
    w.root = kiln_path_clean(root);
    rc = walk_dir(&w, fd, "", NULL, &top, err);
    if (rc == 0 && opts->checksum)
        w.list->root_digest = dir_digest(&w, NULL, &top);
    kiln_vec_dispose(&top, NULL);
    free(w.root);
    if (rc < 0) {
        kiln_ctx_list_free(w.list);
        return kiln_error_wrap(err, "walk build context `%s`", root);
    }
    *out = w.list;
    return 0;
}
