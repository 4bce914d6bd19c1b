/*
 * export_archive.c: the type=oci and type=docker exporters. Both write an OCI image layout
 * (specs.md §1.7) as one sequential tar stream: oci-layout, blobs/sha256/<hex> for the config,
 * the manifest and each layer (a blob used twice is written once), index.json, and for docker a
 * manifest.json as `docker save` >= 25 writes it (specs.md §2), so both the classic and the
 * containerd image store of `docker load` accept it. Every entry is owned by 0:0 with one fixed
 * mtime, so the stream is a function of the image and the names only. Layer blobs are copied in
 * the kernel (see tar_copy_file in export_stream.c) and hashed on the way, unless noted as
 * verified (kiln_export_note_verified) and unchanged since.
 */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "oci/export.h"
#include "oci/export_internal.h"

#include "base/base.h"
#include "base/json.h"
#include "base/map.h"

#define OCI_LAYOUT_JSON "{\"imageLayoutVersion\":\"1.0.0\"}"

/* "docker.io/library/x" -> "x", "docker.io/u/x" -> "u/x", others unchanged. Owned by caller. */
static char *
familiar_name(const kiln_oci_ref *ref)
{
    if (strcmp(ref->domain, "docker.io") != 0)
        return kiln_oci_ref_name(ref);
    if (kiln_str_has_prefix(ref->path, "library/") && !strchr(ref->path + 8, '/'))
        return xstrdup(ref->path + 8);
    return xstrdup(ref->path);
}

/* One index.json entry for the image under `name` (NULL: no annotations). */
static int
index_entry(kiln_oci_descriptor *d, const kiln_export_image *img, const char *name,
            kiln_error **err)
{
    kiln_oci_ref ref = {0};
    cleanup_free char *full = NULL;
    int ret;

    memset(d, 0, sizeof(*d));
    d->media_type = xstrdup(img->manifest.media_type);
    d->digest = xstrdup(img->manifest_digest);
    d->size = (int64_t)img->manifest_len;
    if (!name)
        return 0;
    ret = kiln_oci_ref_parse(&ref, name, err);
    if (ret < 0)
        return kiln_error_wrap(err, "image name");
    full = kiln_oci_ref_string(&ref);
    d->annotations = json_object();
    json_object_set_new(d->annotations, "io.containerd.image.name", json_string(full));
    json_object_set_new(d->annotations, "org.opencontainers.image.ref.name",
                        json_string(ref.tag ? ref.tag : full));
    kiln_oci_ref_dispose(&ref);
    return 0;
}

/* kiln_oci__export_index: see export_internal.h. */
int
kiln_oci__export_index(kiln_oci_index *ix, const kiln_export_image *img, const char *const *names,
                       kiln_error **err)
{
    size_t n = 0;
    int ret;

    if (!img->manifest_json || !img->config_json)
        return kiln_error_set(err, KILN_EINVAL, "export: image is not finalized");
    while (names && names[n])
        n++;
    memset(ix, 0, sizeof(*ix));
    ix->media_type = xstrdup(KILN_OCI_MT_INDEX);
    ix->manifests = xcalloc(n ? n : 1, sizeof(*ix->manifests));
    for (size_t i = 0; i < (n ? n : 1); i++) {
        ret = index_entry(&ix->manifests[i], img, n ? names[i] : NULL, err);
        ix->n_manifests = i + 1;
        if (ret < 0) {
            kiln_oci_index_dispose(ix);
            return ret;
        }
    }
    return 0;
}

static void
set_common(struct archive_entry *e, const char *path, int64_t mtime)
{
    archive_entry_copy_pathname(e, path);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, (time_t)mtime, 0);
}

static int
tar_dir(kiln_oci__tar *t, const char *path, int64_t mtime, kiln_error **err)
{
    struct archive_entry *e = archive_entry_new();
    int ret;

    set_common(e, path, mtime);
    archive_entry_set_filetype(e, AE_IFDIR);
    archive_entry_set_perm(e, 0755);
    ret = kiln_oci__tar_header(t, e, err);
    archive_entry_free(e);
    return ret;
}

static int
tar_mem(kiln_oci__tar *t, const char *path, const void *data, size_t len, int64_t mtime,
        kiln_error **err)
{
    struct archive_entry *e = archive_entry_new();
    int ret;

    set_common(e, path, mtime);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (int64_t)len);
    ret = kiln_oci__tar_header(t, e, err);
    if (ret == 0)
        ret = kiln_oci__tar_data(t, data, len, err);
    archive_entry_free(e);
    return ret;
}

/* ---- blobs known to match their digest ------------------------------------------------------ */

#define VERIFIED_MAX 16

typedef struct verified_note {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    char digest[KILN_DIGEST_STRLEN + 1];
} verified_note;

static pthread_mutex_t verified_lock = PTHREAD_MUTEX_INITIALIZER;
static verified_note verified[VERIFIED_MAX]; /* a ring, newest at verified_next - 1 */
static size_t verified_next;

static bool
same_stat(const verified_note *n, const struct stat *st)
{
    return n->dev == st->st_dev && n->ino == st->st_ino && n->size == st->st_size &&
           n->mtime.tv_sec == st->st_mtim.tv_sec && n->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           n->ctime.tv_sec == st->st_ctim.tv_sec && n->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* kiln_export_note_verified: see export.h. */
void
kiln_export_note_verified(const char *path, const char *digest)
{
    struct stat st;
    verified_note *n;

    if (!kiln_digest_valid(digest) || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    pthread_mutex_lock(&verified_lock);
    n = &verified[verified_next++ % VERIFIED_MAX];
    n->dev = st.st_dev;
    n->ino = st.st_ino;
    n->size = st.st_size;
    n->mtime = st.st_mtim;
    n->ctime = st.st_ctim;
    kiln_strlcpy(n->digest, digest, sizeof(n->digest));
    pthread_mutex_unlock(&verified_lock);
}

/* Whether the open blob `st` was noted as holding `digest` and has not changed since. */
static bool
is_verified(const struct stat *st, const char *digest)
{
    bool found = false;

    pthread_mutex_lock(&verified_lock);
    for (size_t i = 0; i < VERIFIED_MAX && !found; i++)
        found = verified[i].digest[0] && strcmp(verified[i].digest, digest) == 0 &&
                same_stat(&verified[i], st);
    pthread_mutex_unlock(&verified_lock);
    return found;
}

/* "blobs/sha256/<hex>" for a digest; owned by caller. */
static char *
blob_path(const char *digest)
{
    return xasprintf("blobs/sha256/%s", digest + strlen("sha256:"));
}

/* A layer blob from disk, checked against its descriptor's size. */
static int
tar_blob_file(kiln_oci__tar *t, const kiln_export_layer *l, int64_t mtime, kiln_error **err)
{
    struct archive_entry *e = NULL;
    cleanup_free char *path = blob_path(l->desc.digest);
    cleanup_close int fd = open(l->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int ret;

    if (fd < 0 && errno == ENOENT)
        return kiln_error_set(err, KILN_ENOTFOUND, "layer blob `%s` missing", l->path);
    if (fd < 0)
        return kiln_error_errno(err, errno, "open layer blob `%s`", l->path);
    if (fstat(fd, &st) < 0)
        return kiln_error_errno(err, errno, "stat layer blob `%s`", l->path);
    if (!S_ISREG(st.st_mode) || st.st_size != l->desc.size)
        return kiln_error_set(err, KILN_EDIGEST, "layer blob `%s`: size %jd, expected %jd (%s)",
                              l->path, (intmax_t)st.st_size, (intmax_t)l->desc.size,
                              l->desc.digest);
    e = archive_entry_new();
    set_common(e, path, mtime);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, l->desc.size);
    ret = kiln_oci__tar_header(t, e, err);
    if (ret == 0)
        ret = kiln_oci__tar_file_data(t, fd, l->desc.size,
                                      is_verified(&st, l->desc.digest) ? NULL : l->desc.digest,
                                      l->path, err);
    archive_entry_free(e);
    return ret;
}

/* All blobs of the image, each once. */
static int
tar_blobs(kiln_oci__tar *t, const kiln_export_image *img, int64_t mtime, kiln_error **err)
{
    kiln_map seen = KILN_MAP_INIT;
    cleanup_free char *cfg = blob_path(img->config_digest);
    cleanup_free char *man = blob_path(img->manifest_digest);
    int ret;

    if ((ret = tar_dir(t, "blobs/", mtime, err)) < 0 ||
        (ret = tar_dir(t, "blobs/sha256/", mtime, err)) < 0)
        return ret;
    kiln_map_put(&seen, img->config_digest, NULL);
    kiln_map_put(&seen, img->manifest_digest, NULL);
    ret = tar_mem(t, cfg, img->config_json, img->config_len, mtime, err);
    if (ret == 0)
        ret = tar_mem(t, man, img->manifest_json, img->manifest_len, mtime, err);
    for (size_t i = 0; ret == 0 && i < img->n_layers; i++) {
        if (kiln_map_has(&seen, img->layers[i].desc.digest))
            continue;
        kiln_map_put(&seen, img->layers[i].desc.digest, NULL);
        ret = tar_blob_file(t, &img->layers[i], mtime, err);
    }
    kiln_map_dispose(&seen, NULL);
    return ret;
}

/* manifest.json of `docker save`: [{"Config", "RepoTags", "Layers"}]. Owned by caller. */
static int
docker_manifest(char **out, const kiln_export_image *img, const char *const *names,
                kiln_error **err)
{
    cleanup_json json_t *root = json_array();
    cleanup_free char *cfg = blob_path(img->config_digest);
    json_t *obj = json_object();
    json_t *tags = json_array();
    json_t *layers = json_array();

    json_array_append_new(root, obj);
    json_object_set_new(obj, "Config", json_string(cfg));
    json_object_set_new(obj, "RepoTags", tags);
    json_object_set_new(obj, "Layers", layers);
    for (size_t i = 0; i < img->n_layers; i++) {
        char *p = blob_path(img->layers[i].desc.digest);

        json_array_append_new(layers, json_string(p));
        free(p);
    }
    for (size_t i = 0; names && names[i]; i++) {
        kiln_oci_ref ref = {0};
        cleanup_free char *fam = NULL;

        if (kiln_oci_ref_parse(&ref, names[i], err) < 0)
            return kiln_error_wrap(err, "image name");
        fam = familiar_name(&ref);
        if (!ref.tag) {
            kiln_oci_ref_dispose(&ref);
            return kiln_error_set(err, KILN_EINVAL,
                                  "image name `%s`: docker tags need a tag, not a digest",
                                  names[i]);
        }
        json_array_append_new(tags, json_sprintf("%s:%s", fam, ref.tag));
        kiln_oci_ref_dispose(&ref);
    }
    *out = json_dumps(root, JSON_COMPACT);
    return 0;
}

/* The shared body of both exporters; `docker_json` adds manifest.json when not NULL. */
static int
write_layout_tar(const kiln_export_image *img, const char *const *names, const char *docker_json,
                 int64_t mtime, int fd, kiln_error **err)
{
    kiln_oci_index ix;
    kiln_oci__tar t;
    cleanup_free char *index_json = NULL;
    size_t index_len = 0;
    int ret = kiln_oci__export_index(&ix, img, names, err);

    if (ret < 0)
        return ret;
    index_json = kiln_oci_index_to_json(&ix, &index_len);
    kiln_oci_index_dispose(&ix);
    ret = kiln_oci__tar_open(&t, &(kiln_oci__dest){.fd = fd}, KILN_OCI_COMP_NONE, 0, 0, 0, err);
    if (ret == 0)
        ret = tar_mem(&t, "oci-layout", OCI_LAYOUT_JSON, strlen(OCI_LAYOUT_JSON), mtime, err);
    if (ret == 0)
        ret = tar_blobs(&t, img, mtime, err);
    if (ret == 0)
        ret = tar_mem(&t, "index.json", index_json, index_len, mtime, err);
    if (ret == 0 && docker_json)
        ret = tar_mem(&t, "manifest.json", docker_json, strlen(docker_json), mtime, err);
    if (ret == 0)
        ret = kiln_oci__tar_close(&t, NULL, NULL, err);
    kiln_oci__tar_dispose(&t);
    return ret;
}

/* kiln_export_oci_tar: see export.h. */
int
kiln_export_oci_tar(const kiln_export_image *img, const char *const *names, int64_t mtime, int fd,
                    kiln_error **err)
{
    int ret = write_layout_tar(img, names, NULL, mtime, fd, err);

    if (ret < 0)
        return kiln_error_wrap(err, "export oci tar");
    return 0;
}

/* kiln_export_docker_tar: see export.h. */
int
kiln_export_docker_tar(const kiln_export_image *img, const char *const *names, int64_t mtime,
                       int fd, kiln_error **err)
{
    cleanup_free char *mj = NULL;
    int ret;

    if (!img->manifest_json)
        return kiln_error_set(err, KILN_EINVAL, "export docker tar: image is not finalized");
    ret = docker_manifest(&mj, img, names, err);
    if (ret == 0)
        ret = write_layout_tar(img, names, mj, mtime, fd, err);
    if (ret < 0)
        return kiln_error_wrap(err, "export docker tar");
    return 0;
}
