/*
 * layer_write.c: a directory becomes a layer tar (specs.md §1.8), deterministically.
 *
 * The walk visits each directory's children sorted by byte order and writes a directory before
 * its children, so entry order depends only on the names. Each header is built from chosen fields
 * (type, mode, numeric uid/gid, whole-second mtime after the timestamp policy, size, link target,
 * device numbers, sorted xattrs) and nothing else. Hardlinks: the first path of an inode with
 * nlink > 1 is written as a file, later ones as hardlink entries naming it.
 *
 * In overlay-upper mode the directory is one layer's changes as the kernel left them: a char
 * device 0:0 is a whiteout (`.wh.<name>`), a directory carrying trusted.overlay.opaque=y (or the
 * rootless user.overlay.opaque=y) hid the lower directory (`.wh..wh..opq`, written right after the
 * directory's own entry so it precedes its siblings as layer.md asks). Overlay's own xattrs are
 * never copied into the layer. redirect_dir and metacopy upper dirs cannot be turned into a
 * changeset from the upper dir alone, so they are refused.
 */
#define KILN_LOG_DOMAIN "export"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "oci/export.h"
#include "oci/export_internal.h"

#include "base/base.h"
#include "base/fs.h"
#include "base/map.h"
#include "base/path.h"
#include "base/vec.h"

#define WH_PREFIX            ".wh."
#define WH_OPAQUE            ".wh..wh..opq"
#define XATTR_LIST_MAX_BYTES (1u << 20)

typedef struct walk {
    const kiln_layer_opts *opts;
    kiln_oci__tar tar;
    kiln_map links; /* "dev:ino" -> first tar path (owned char *) */
} walk;

static int walk_dir(walk *w, const char *full, const char *rel, kiln_error **err);

static time_t
entry_mtime(const walk *w, const struct stat *st)
{
    time_t t = st->st_mtim.tv_sec;

    if (w->opts->time == KILN_LAYER_TIME_SET)
        return (time_t)w->opts->epoch;
    if (w->opts->time == KILN_LAYER_TIME_CLAMP && t > (time_t)w->opts->epoch)
        return (time_t)w->opts->epoch;
    return t;
}

static bool
overlay_private_xattr(const char *name)
{
    return kiln_str_has_prefix(name, "trusted.overlay.") ||
           kiln_str_has_prefix(name, "user.overlay.");
}

/* The value of one xattr, or NULL when absent. *len_out set. Owned by the caller. */
static int
get_xattr(char **out, size_t *len_out, const char *path, const char *name, kiln_error **err)
{
    ssize_t n = lgetxattr(path, name, NULL, 0);
    cleanup_free char *v = NULL;

    *out = NULL;
    if (n < 0 && (errno == ENODATA || errno == ENOTSUP))
        return 0;
    if (n < 0)
        return kiln_error_errno(err, errno, "getxattr `%s` on `%s`", name, path);
    v = xmalloc((size_t)n + 1);
    n = lgetxattr(path, name, v, (size_t)n);
    if (n < 0)
        return kiln_error_errno(err, errno, "getxattr `%s` on `%s`", name, path);
    v[n] = 0;
    *len_out = (size_t)n;
    *out = steal_pointer(&v);
    return 0;
}

/* The xattr names of `path`, sorted, into `names` (owned strings). */
static int
list_xattrs(kiln_vec *names, const char *path, kiln_error **err)
{
    ssize_t n = llistxattr(path, NULL, 0);
    cleanup_free char *list = NULL;

    if (n < 0 && errno == ENOTSUP)
        return 0;
    if (n < 0)
        return kiln_error_errno(err, errno, "listxattr `%s`", path);
    if ((size_t)n > XATTR_LIST_MAX_BYTES)
        return kiln_error_set(err, KILN_EINVAL, "listxattr `%s`: list too long", path);
    list = xmalloc((size_t)n + 1);
    n = llistxattr(path, list, (size_t)n);
    if (n < 0)
        return kiln_error_errno(err, errno, "listxattr `%s`", path);
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1) {
        if (list[off])
            kiln_strvec_push(names, list + off);
    }
    kiln_vec_sort(names, kiln_strvec_cmp);
    return 0;
}

/* Copy the xattrs of `path` into the entry, refusing overlay features we cannot represent. */
static int
add_xattrs(walk *w, struct archive_entry *e, const char *path, kiln_error **err)
{
    kiln_vec names = KILN_VEC_INIT;
    const char *name;
    int ret = list_xattrs(&names, path, err);

    kiln_vec_foreach(&names, i, name) {
        cleanup_free char *v = NULL;
        size_t len = 0;

        if (ret < 0)
            break;
        if (w->opts->mode == KILN_LAYER_OVERLAY_UPPER &&
            (kiln_str_has_suffix(name, "overlay.redirect") ||
             kiln_str_has_suffix(name, "overlay.metacopy"))) {
            ret = kiln_error_set(err, KILN_EUNSUPPORTED,
                                 "`%s` has xattr %s: overlay redirect_dir/metacopy upper dirs "
                                 "cannot be exported",
                                 path, name);
            break;
        }
        if (overlay_private_xattr(name))
            continue;
        ret = get_xattr(&v, &len, path, name, err);
        if (ret == 0 && v)
            archive_entry_xattr_add_entry(e, name, v, len);
    }
    kiln_strvec_dispose(&names);
    return ret;
}

static bool
is_opaque_dir(const char *path)
{
    const char *names[] = {"trusted.overlay.opaque", "user.overlay.opaque"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char v[2];
        ssize_t n = lgetxattr(path, names[i], v, sizeof(v));

        if (n == 1 && v[0] == 'y')
            return true;
    }
    return false;
}

/* An empty regular file entry (whiteouts). */
static int
write_marker(walk *w, const char *rel, const struct stat *st, kiln_error **err)
{
    struct archive_entry *e = archive_entry_new();
    int ret;

    archive_entry_copy_pathname(e, rel);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 0);
    archive_entry_set_mtime(e, entry_mtime(w, st), 0);
    ret = kiln_oci__tar_header(&w->tar, e, err);
    archive_entry_free(e);
    return ret;
}

/* Hardlink bookkeeping: true (and *target borrowed) when this inode was written before. */
static bool
seen_link(walk *w, const struct stat *st, const char *rel, const char **target)
{
    char key[64];
    const char *first;

    if (!S_ISREG(st->st_mode) || st->st_nlink < 2)
        return false;
    snprintf(key, sizeof(key), "%ju:%ju", (uintmax_t)st->st_dev, (uintmax_t)st->st_ino);
    first = kiln_map_get(&w->links, key);
    if (first) {
        *target = first;
        return true;
    }
    kiln_map_put(&w->links, key, xstrdup(rel));
    return false;
}

/* Fill the type-specific fields; a regular file is opened into *fd_out for its data. */
static int
fill_entry(walk *w, struct archive_entry *e, const char *full, const char *rel,
           const struct stat *st, int *fd_out, kiln_error **err)
{
    const char *target = NULL;
    char link[PATH_MAX + 1];
    ssize_t n;

    if (seen_link(w, st, rel, &target)) {
        archive_entry_copy_hardlink(e, target);
        archive_entry_set_size(e, 0);
        return 0;
    }
    if (S_ISREG(st->st_mode)) {
        *fd_out = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (*fd_out < 0)
            return kiln_error_errno(err, errno, "open `%s`", full);
        archive_entry_set_size(e, st->st_size);
    } else if (S_ISLNK(st->st_mode)) {
        n = readlink(full, link, sizeof(link) - 1);
        if (n < 0)
            return kiln_error_errno(err, errno, "readlink `%s`", full);
        link[n] = 0;
        archive_entry_copy_symlink(e, link);
    } else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
        archive_entry_set_rdevmajor(e, major(st->st_rdev));
        archive_entry_set_rdevminor(e, minor(st->st_rdev));
    }
    return 0;
}

/* Write one entry: its header, then the file content for a regular file. */
static int
write_entry(walk *w, const char *full, const char *rel, const struct stat *st, kiln_error **err)
{
    struct archive_entry *e = archive_entry_new();
    cleanup_close int fd = -1;
    int ret;

    archive_entry_copy_pathname(e, rel);
    archive_entry_set_mode(e, st->st_mode);
    archive_entry_set_uid(e, st->st_uid);
    archive_entry_set_gid(e, st->st_gid);
    archive_entry_set_mtime(e, entry_mtime(w, st), 0);
    ret = fill_entry(w, e, full, rel, st, &fd, err);
    if (ret == 0 && !archive_entry_hardlink(e))
        ret = add_xattrs(w, e, full, err);
    if (ret == 0)
        ret = kiln_oci__tar_header(&w->tar, e, err);
    if (ret == 0 && fd >= 0)
        ret = kiln_oci__tar_file_data(&w->tar, fd, st->st_size, NULL, full, err);
    archive_entry_free(e);
    return ret;
}

/* One child of a directory: dispatch on its type. */
static int
walk_child(walk *w, const char *full, const char *rel, const char *name, kiln_error **err)
{
    struct stat st;

    if (lstat(full, &st) < 0)
        return kiln_error_errno(err, errno, "lstat `%s`", full);
    if (w->opts->mode == KILN_LAYER_OVERLAY_UPPER && S_ISCHR(st.st_mode) && st.st_rdev == 0) {
        cleanup_free char *dir = kiln_path_dir(rel);
        cleanup_free char *wh = strcmp(dir, ".") == 0 ? xasprintf(WH_PREFIX "%s", name)
                                                      : xasprintf("%s/" WH_PREFIX "%s", dir, name);

        return write_marker(w, wh, &st, err);
    }
    if (kiln_str_has_prefix(name, WH_PREFIX))
        return kiln_error_set(err, KILN_EINVAL,
                              "`%s`: names starting with \".wh.\" cannot exist in an image", full);
    if (S_ISSOCK(st.st_mode)) {
        kiln_log_debug("skipping socket `%s`", full);
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        cleanup_free char *dirname = xasprintf("%s/", rel);
        int ret = write_entry(w, full, dirname, &st, err);

        if (ret == 0 && w->opts->mode == KILN_LAYER_OVERLAY_UPPER && is_opaque_dir(full)) {
            cleanup_free char *opq = xasprintf("%s/" WH_OPAQUE, rel);

            ret = write_marker(w, opq, &st, err);
        }
        return ret < 0 ? ret : walk_dir(w, full, rel, err);
    }
    return write_entry(w, full, rel, &st, err);
}

/* The names in a directory, sorted by byte order (owned strings). */
static int
read_names(kiln_vec *names, const char *full, kiln_error **err)
{
    cleanup_dir DIR *d = opendir(full);
    struct dirent *de;

    if (!d)
        return kiln_error_errno(err, errno, "open directory `%s`", full);
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de)
            break;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        kiln_strvec_push(names, de->d_name);
    }
    if (errno != 0)
        return kiln_error_errno(err, errno, "read directory `%s`", full);
    kiln_vec_sort(names, kiln_strvec_cmp);
    return 0;
}

static int
walk_dir(walk *w, const char *full, const char *rel, kiln_error **err)
{
    kiln_vec names = KILN_VEC_INIT;
    const char *name;
    int ret = read_names(&names, full, err);

    kiln_vec_foreach(&names, i, name) {
        cleanup_free char *cfull = NULL;
        cleanup_free char *crel = NULL;

        if (ret < 0)
            break;
        cfull = xasprintf("%s/%s", full, name);
        crel = rel[0] ? xasprintf("%s/%s", rel, name) : xstrdup(name);
        ret = walk_child(w, cfull, crel, name, err);
    }
    kiln_strvec_dispose(&names);
    return ret;
}

static int
check_opts(const kiln_layer_opts *o, kiln_error **err)
{
    if (!o || o->version != KILN_LAYER_OPTS_VERSION)
        return kiln_error_set(err, KILN_EINVAL, "layer options: bad version");
    if (o->mode != KILN_LAYER_FULL && o->mode != KILN_LAYER_OVERLAY_UPPER)
        return kiln_error_set(err, KILN_EINVAL, "layer options: bad mode %d", (int)o->mode);
    if (o->time != KILN_LAYER_TIME_KEEP && o->time != KILN_LAYER_TIME_CLAMP &&
        o->time != KILN_LAYER_TIME_SET)
        return kiln_error_set(err, KILN_EINVAL, "layer options: bad time policy %d", (int)o->time);
    if (o->gzip_threads > 1024)
        return kiln_error_set(err, KILN_EINVAL, "layer options: %u gzip threads is too many",
                              o->gzip_threads);
    if (o->time != KILN_LAYER_TIME_KEEP && o->epoch < 0)
        return kiln_error_set(err, KILN_EINVAL, "layer options: negative epoch %" PRId64, o->epoch);
    return 0;
}

static const char *
layer_media_type(kiln_oci_compression c)
{
    switch (c) {
    case KILN_OCI_COMP_GZIP:
        return KILN_OCI_MT_LAYER_GZIP;
    case KILN_OCI_COMP_ZSTD:
        return KILN_OCI_MT_LAYER_ZSTD;
    case KILN_OCI_COMP_NONE:
        break;
    }
    return KILN_OCI_MT_LAYER_TAR;
}

static void
free_str(void *p)
{
    free(p);
}

/* The body of both kiln_layer_write variants: dest and what to hash differ. */
static int
layer_write(kiln_layer_result *out, const char *dir, const kiln_oci__dest *dest, unsigned hash,
            const kiln_layer_opts *opts, kiln_error **err)
{
    walk w = {.opts = opts};
    kiln_layer_result r = {0};
    cleanup_free char *root = NULL;
    int ret;

    if ((ret = check_opts(opts, err)) < 0)
        return ret;
    if (!kiln_fs_is_dir(dir))
        return kiln_error_set(err, KILN_ENOTFOUND, "layer source `%s` is not a directory", dir);
    root = kiln_path_clean(dir);
    kiln_map_init(&w.links);
    ret = kiln_oci__tar_open(&w.tar, dest, opts->compression, opts->level, opts->gzip_threads, hash,
                             err);
    if (ret == 0)
        ret = walk_dir(&w, root, "", err);
    if (ret == 0)
        ret = kiln_oci__tar_close(&w.tar, r.diff_id, r.digest, err);
    if (ret == 0) {
        r.size = w.tar.sink.out_bytes;
        r.tar_size = w.tar.sink.in_bytes;
        r.media_type = layer_media_type(opts->compression);
        *out = r;
    }
    kiln_oci__tar_dispose(&w.tar);
    kiln_map_dispose(&w.links, free_str);
    if (ret < 0)
        return kiln_error_wrap(err, "write layer from `%s`", dir);
    return 0;
}

/* kiln_layer_write: see export.h. */
int
kiln_layer_write(kiln_layer_result *out, const char *dir, int fd, const kiln_layer_opts *opts,
                 kiln_error **err)
{
    kiln_oci__dest dest = {.fd = fd};

    return layer_write(out, dir, &dest, KILN_OCI__HASH_IN | KILN_OCI__HASH_OUT, opts, err);
}

/* kiln_layer_write_emit: see export.h. */
int
kiln_layer_write_emit(kiln_layer_result *out, const char *dir, kiln_layer_emit_fn emit,
                      void *payload, const kiln_layer_opts *opts, kiln_error **err)
{
    kiln_oci__dest dest = {.fd = -1, .emit = emit, .payload = payload};

    return layer_write(out, dir, &dest, KILN_OCI__HASH_IN, opts, err);
}

/* kiln_layer_descriptor: see export.h. */
void
kiln_layer_descriptor(kiln_oci_descriptor *out, const kiln_layer_result *r)
{
    memset(out, 0, sizeof(*out));
    out->media_type = xstrdup(r->media_type);
    out->digest = xstrdup(r->digest);
    out->size = r->size;
    out->annotations = json_object();
    json_object_set_new(out->annotations, "containerd.io/uncompressed", json_string(r->diff_id));
}
