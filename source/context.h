/*
 * context.h: the build-context walker (the `local://` source).
 *
 * kiln_ctx_walk() lists a directory tree, keeping the paths selected by include patterns and not
 * excluded by a .dockerignore matcher, with stat data, xattrs and a content checksum per entry in
 * the spirit of BuildKit's contenthash: a file's digest covers its type, permission bits, owner,
 * device numbers, link target, xattrs and content, never its name or mtime; a directory's digest
 * covers its own header and the sorted (name, digest) pairs of its selected children. Digests are
 * XXH3-128: fast, local, never sent anywhere.
 *
 * File content hashes can be kept across runs through a stat-keyed cache given as callbacks (the
 * engine stores it in LMDB), so rescanning an unchanged context reads no file content.
 */
#ifndef KILN_SOURCE_CONTEXT_H
#define KILN_SOURCE_CONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "base/digest.h"
#include "base/error.h"
#include "source/ignore.h"

typedef struct kiln_ctx_xattr {
    char *name;  /* owned */
    void *value; /* owned */
    size_t len;
} kiln_ctx_xattr;

typedef struct kiln_ctx_entry {
    char *path;  /* relative to the root, '/'-separated, no "./" prefix; owned */
    mode_t mode; /* full st_mode: type and permission bits */
    uid_t uid;
    gid_t gid;
    uint64_t size;
    struct timespec mtime;
    dev_t rdev; /* devices only */
    dev_t dev;  /* the filesystem it lives on (for hardlink detection) */
    uint64_t ino;
    nlink_t nlink;
    char *link;             /* symlink target, or NULL; owned */
    kiln_ctx_xattr *xattrs; /* sorted by name; owned */
    size_t nxattrs;
    kiln_xxh128 digest; /* content checksum (zero when checksums were not requested) */
} kiln_ctx_entry;

/* A walk's result: entries in tree order (a parent before its children, siblings by byte order of
 * their names), which is also the order kiln_ctx_path_cmp sorts. */
typedef struct kiln_ctx_list {
    kiln_ctx_entry *entries;
    size_t len;
    kiln_xxh128 root_digest; /* digest of the root directory over the selected entries */
    size_t hashed;           /* files whose content was read (cache misses) */
} kiln_ctx_list;

/* The stat-keyed content-hash cache. The key is an opaque byte string built from the path, size,
 * mtime, ctime, inode and mode of a regular file (and the walker's euid, and whether the file had
 * xattrs: a hit on a "no xattrs" key spares the walk listing them); the value is the hash of its
 * content. get returns true and fills *out on a hit. Both are called from the walking thread
 * only, in tree order; a walk may look a file up twice (a file with xattrs). */
typedef struct kiln_ctx_cache_ops {
    bool (*get)(void *payload, const void *key, size_t keylen, kiln_xxh128 *out);
    void (*put)(void *payload, const void *key, size_t keylen, kiln_xxh128 value);
    void *payload;
} kiln_ctx_cache_ops;

typedef struct kiln_ctx_opts {
    const kiln_ignore *include;      /* include patterns, or NULL for everything; borrowed */
    const kiln_ignore *exclude;      /* .dockerignore matcher, or NULL; borrowed */
    const kiln_ctx_cache_ops *cache; /* or NULL */
    bool checksum;                   /* compute digests */
} kiln_ctx_opts;

/* Walk `root` (a directory; symlinks inside are listed, never followed). *out is owned by the
 * caller (kiln_ctx_list_free). A path is selected when the include matcher (if any) matches it or
 * a parent and the exclude matcher does not; directories leading to a selected path are listed
 * too. Excluded directories are not descended into unless an exception could re-include something
 * below them. Errors: KILN_ENOTFOUND when root is missing, KILN_EINVAL when it is not a directory,
 * KILN_ESYS on I/O errors (naming the path). */
int kiln_ctx_walk(kiln_ctx_list **out, const char *root, const kiln_ctx_opts *opts,
                  kiln_error **err);

/* NULL-safe. */
void kiln_ctx_list_free(kiln_ctx_list *l);

/* Tree-order comparison of two relative paths ('/' sorts before every other byte). */
int kiln_ctx_path_cmp(const char *a, const char *b);

/* The entry for `path` (cleaned, relative), or NULL; borrowed from the list. */
const kiln_ctx_entry *kiln_ctx_list_find(const kiln_ctx_list *l, const char *path);

enum {
    KILN_CTX_COPY_OWNER = 1 << 0,     /* chown to the entry's uid/gid (needs root) */
    KILN_CTX_COPY_XATTRS = 1 << 1,    /* set the recorded xattrs */
    KILN_CTX_COPY_HARDLINKS = 1 << 2, /* recreate hardlinks between listed files */
    /* hardlink regular files to the source's instead of copying them (both trees immutable and
     * on one file system: a COPY between snapshots); a file whose link fails is copied. A linked
     * file has the source's owner, mode, times and xattrs already: none is applied to it. */
    KILN_CTX_COPY_LINK = 1 << 3,
};

/* Copy the listed entries from src_root into dst (created if missing; existing content is merged,
 * non-directories replaced), keeping modes, symlinks, devices, fifos and mtimes (directory times
 * are set after their children). Parents are created inside dst without following symlinks out of
 * it. Errors: KILN_ESYS naming the path, KILN_EINVAL when src changed type under us. */
int kiln_ctx_copy(const kiln_ctx_list *l, const char *src_root, const char *dst, unsigned flags,
                  kiln_error **err);

/* Another tree to take files from by hardlink: a regular file for which `linkable` says yes is
 * linked from the same path below `root` (which must hold it unchanged: same content, mode and
 * times, owned as the copy would be) instead of copied from src_root; when the link fails it is
 * copied. For an immutable earlier copy of the same source (an unchanged build context). */
typedef struct kiln_ctx_link_src {
    const char *root;
    bool (*linkable)(const kiln_ctx_entry *e, void *payload);
    void *payload;
} kiln_ctx_link_src;

/* kiln_ctx_copy with files linked from `ls` (NULL: plain kiln_ctx_copy). */
int kiln_ctx_copy_linked(const kiln_ctx_list *l, const char *src_root, const char *dst,
                         unsigned flags, const kiln_ctx_link_src *ls, kiln_error **err);

#endif
