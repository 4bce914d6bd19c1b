/*
 * export_dir.c: exporters that write to the file system or take a plain directory: the OCI
 * layout directory writer (blobs copied in atomically, index.json merged so a layout can collect
 * several images), type=local (a tree copy) and type=tar (a deterministic tar of a tree), plus
 * the output opener the engine uses for `dest=` paths.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "oci/export.h"
#include "oci/export_internal.h"

#include "base/base.h"
#include "base/digest.h"
#include "base/fs.h"

#define OCI_LAYOUT_JSON "{\"imageLayoutVersion\":\"1.0.0\"}"
#define COPY_BUF        (128u << 10)

static char *
blob_file(const char *dir, const char *digest)
{
    return xasprintf("%s/blobs/sha256/%s", dir, digest + strlen("sha256:"));
}

/* True when `path` is a regular file of exactly `size` bytes (a blob already in place). */
static bool
blob_present(const char *path, int64_t size)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == size;
}

/* Copy `in` to `out`, checking the size and sha256 `digest` of what was copied. */
static int
copy_fd(int out, int in, int64_t size, const char *digest, const char *what, kiln_error **err)
{
    cleanup_free char *buf = xmalloc(COPY_BUF);
    char got[KILN_DIGEST_STRLEN + 1];
    kiln_sha256_ctx *c = NULL;
    int64_t done = 0;
    kiln_sha256 d;
    int ret;

    kiln_sha256_ctx_new(&c);

    for (;;) {
        ssize_t n = read(in, buf, COPY_BUF);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            kiln_sha256_ctx_free(c);
            return kiln_error_errno(err, errno, "read `%s`", what);
        }
        if (n == 0)
            break;
        kiln_sha256_ctx_update(c, buf, (size_t)n);
        if ((ret = kiln_fd_write_all(out, buf, (size_t)n, err)) < 0) {
            kiln_sha256_ctx_free(c);
            return ret;
        }
        done += n;
    }
    kiln_sha256_ctx_final(c, &d);
    kiln_sha256_ctx_free(c);
    kiln_digest_format(got, &d);
    if (done != size || strcmp(got, digest) != 0)
        return kiln_error_set(err, KILN_EDIGEST, "`%s`: %jd bytes %s, expected %jd bytes %s", what,
                              (intmax_t)done, got, (intmax_t)size, digest);
    return 0;
}

/* Copy a layer blob into the layout through a temporary file and rename. */
static int
put_file_blob(const char *dir, const kiln_export_layer *l, kiln_error **err)
{
    cleanup_free char *dest = blob_file(dir, l->desc.digest);
    cleanup_free char *tmp = xasprintf("%s.tmp.XXXXXX", dest);
    cleanup_close int in = -1;
    cleanup_close int out = -1;
    int ret;

    if (blob_present(dest, l->desc.size))
        return 0;
    in = open(l->path, O_RDONLY | O_CLOEXEC);
    if (in < 0 && errno == ENOENT)
        return kiln_error_set(err, KILN_ENOTFOUND, "layer blob `%s` missing", l->path);
    if (in < 0)
        return kiln_error_errno(err, errno, "open layer blob `%s`", l->path);
    out = mkostemp(tmp, O_CLOEXEC);
    if (out < 0)
        return kiln_error_errno(err, errno, "create `%s`", tmp);
    ret = copy_fd(out, in, l->desc.size, l->desc.digest, l->path, err);
    if (ret == 0 && fchmod(out, 0644) < 0)
        ret = kiln_error_errno(err, errno, "chmod `%s`", tmp);
    if (ret == 0 && fsync(out) < 0)
        ret = kiln_error_errno(err, errno, "fsync `%s`", tmp);
    if (ret == 0 && rename(tmp, dest) < 0)
        ret = kiln_error_errno(err, errno, "rename `%s`", tmp);
    if (ret < 0)
        unlink(tmp);
    return ret;
}

static int
put_mem_blob(const char *dir, const char *digest, const char *data, size_t len, kiln_error **err)
{
    cleanup_free char *dest = blob_file(dir, digest);

    if (blob_present(dest, (int64_t)len))
        return 0;
    return kiln_fs_write_atomic(dest, data, len, 0644, err);
}

static const char *
ref_name_of(const kiln_oci_descriptor *d)
{
    json_t *v = d->annotations
                        ? json_object_get(d->annotations, "org.opencontainers.image.ref.name")
                        : NULL;

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Whether an existing index entry is superseded by one of the new entries. */
static bool
replaced(const kiln_oci_descriptor *old, const kiln_oci_index *fresh)
{
    const char *name = ref_name_of(old);

    for (size_t i = 0; i < fresh->n_manifests; i++) {
        const char *n = ref_name_of(&fresh->manifests[i]);

        if (n ? kiln_str_eq(n, name)
              : (!name && kiln_str_eq(old->digest, fresh->manifests[i].digest)))
            return true;
    }
    return false;
}

/* Entries of the existing index.json (if any) that stay, then the new ones. */
static int
merge_index(kiln_oci_index *fresh, const char *path, kiln_error **err)
{
    cleanup_free char *data = NULL;
    kiln_oci_index old;
    kiln_oci_descriptor *all;
    size_t len = 0, n = 0;
    int ret;

    if (!kiln_fs_exists(path))
        return 0;
    ret = kiln_fs_read_file(&data, &len, path, KILN_OCI_MANIFEST_MAX, err);
    if (ret < 0)
        return ret;
    if ((ret = kiln_oci_index_parse(&old, data, len, NULL, err)) < 0)
        return kiln_error_wrap(err, "existing `%s`", path);
    all = xcalloc(old.n_manifests + fresh->n_manifests + 1, sizeof(*all));
    for (size_t i = 0; i < old.n_manifests; i++) {
        if (!replaced(&old.manifests[i], fresh))
            kiln_oci_descriptor_copy(&all[n++], &old.manifests[i]);
    }
    for (size_t i = 0; i < fresh->n_manifests; i++) {
        all[n++] = fresh->manifests[i];
        memset(&fresh->manifests[i], 0, sizeof(fresh->manifests[i]));
    }
    kiln_oci_index_dispose(&old);
    free(fresh->manifests);
    fresh->manifests = all;
    fresh->n_manifests = n;
    return 0;
}

static int
write_index(const kiln_export_image *img, const char *const *names, const char *dir,
            kiln_error **err)
{
    cleanup_free char *path = xasprintf("%s/index.json", dir);
    cleanup_free char *json = NULL;
    kiln_oci_index ix;
    size_t len = 0;
    int ret = kiln_oci__export_index(&ix, img, names, err);

    if (ret < 0)
        return ret;
    ret = merge_index(&ix, path, err);
    if (ret == 0) {
        json = kiln_oci_index_to_json(&ix, &len);
        ret = kiln_fs_write_atomic(path, json, len, 0644, err);
    }
    kiln_oci_index_dispose(&ix);
    return ret;
}

/* kiln_export_oci_dir: see export.h. */
int
kiln_export_oci_dir(const kiln_export_image *img, const char *const *names, const char *dir,
                    kiln_error **err)
{
    cleanup_free char *blobs = xasprintf("%s/blobs/sha256", dir);
    cleanup_free char *layout = xasprintf("%s/oci-layout", dir);
    int ret;

    if (!img->manifest_json || !img->config_json)
        return kiln_error_set(err, KILN_EINVAL, "export oci dir: image is not finalized");
    ret = kiln_fs_mkdir_p(blobs, 0755, err);
    if (ret == 0 && !kiln_fs_exists(layout))
        ret = kiln_fs_write_atomic(layout, OCI_LAYOUT_JSON, strlen(OCI_LAYOUT_JSON), 0644, err);
    for (size_t i = 0; ret == 0 && i < img->n_layers; i++)
        ret = put_file_blob(dir, &img->layers[i], err);
    if (ret == 0)
        ret = put_mem_blob(dir, img->config_digest, img->config_json, img->config_len, err);
    if (ret == 0)
        ret = put_mem_blob(dir, img->manifest_digest, img->manifest_json, img->manifest_len, err);
    /* index.json last: a reader never sees an entry whose blobs are not all in place. */
    if (ret == 0)
        ret = write_index(img, names, dir, err);
    if (ret < 0)
        return kiln_error_wrap(err, "export oci layout `%s`", dir);
    return 0;
}

/* kiln_export_local: see export.h. */
int
kiln_export_local(const char *src, const char *dest, kiln_error **err)
{
    unsigned flags = KILN_COPY_PRESERVE_XATTRS | KILN_COPY_HARDLINKS;
    int ret;

    if (!kiln_fs_is_dir(src))
        return kiln_error_set(err, KILN_ENOTFOUND, "export local: `%s` is not a directory", src);
    if (geteuid() == 0)
        flags |= KILN_COPY_PRESERVE_OWNER;
    ret = kiln_fs_mkdir_p(dest, 0755, err);
    if (ret == 0)
        ret = kiln_fs_copy_tree(src, dest, flags, err);
    if (ret < 0)
        return kiln_error_wrap(err, "export local to `%s`", dest);
    return 0;
}

/* kiln_export_tar: see export.h. */
int
kiln_export_tar(const char *src, int fd, kiln_layer_time time, int64_t epoch, kiln_error **err)
{
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result r;
    int ret;

    o.mode = KILN_LAYER_FULL;
    o.compression = KILN_OCI_COMP_NONE;
    o.time = time;
    o.epoch = epoch;
    ret = kiln_layer_write(&r, src, fd, &o, err);
    if (ret < 0)
        return kiln_error_wrap(err, "export tar");
    return 0;
}

/* kiln_export_open_output: see export.h. */
int
kiln_export_open_output(int *fd_out, const char *path, kiln_error **err)
{
    int fd;

    if (strcmp(path, "-") == 0)
        fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    else
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0)
        return kiln_error_errno(err, errno, "open output `%s`", path);
    *fd_out = fd;
    return 0;
}
