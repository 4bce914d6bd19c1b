/*
 * cache_content.c: the content store, blobs by digest at blobs/sha256/<hex>.
 *
 * A writer streams into ingest/<random>, hashing as it goes and starting writeback of each 8 MiB
 * written (sync_file_range), so the fsync of a big blob does not wait for all of it. Commit
 * verifies the digest (KILN_EDIGEST removes the temp file and stores nothing), fsyncs, and then,
 * inside one LMDB write transaction, renames the file into place, fsyncs the directory and
 * records the blob. Doing the rename under the write lock orders it against GC, which deletes
 * blob files under the same lock, so a blob being committed can never be deleted by a concurrent
 * prune. Two writers of the same content both succeed: rename replaces identical bytes and the
 * record is kept.
 */
#define KILN_LOG_DOMAIN "cache"

#include <fcntl.h>
#include <sys/stat.h>

#include "base/base.h"
#include "base/digest.h"
#include "base/fs.h"
#include "cache/cache_internal.h"

#define WRITEBACK_CHUNK (8u << 20)

struct kiln_cache_blob_writer {
    kiln_cache *c;
    char *tmp_path; /* NULL once committed or removed */
    int fd;
    uint64_t size;
    uint64_t flushed; /* bytes handed to writeback early (see kiln_cache_blob_writer_write) */
    kiln_sha256_ctx *hash;
    char expected[KILN_DIGEST_STRLEN + 1];
    char *lease; /* lease that takes the blob in the commit transaction, or NULL */
};

void
kiln_cache_blob_info_dispose(kiln_cache_blob_info *i)
{
    free(i->media_type);
    i->media_type = NULL;
}

int
kiln_cache_blob_writer_new(kiln_cache_blob_writer **out, kiln_cache *c, const char *expected,
                           kiln_error **err)
{
    kiln_cache_blob_writer *w;
    char name[33];

    if (expected && !kiln_digest_valid(expected))
        return kiln_error_set(err, KILN_EINVAL, "invalid expected digest `%s`", expected);
    kiln_cache__random_hex(name, 16);
    w = xnew(kiln_cache_blob_writer);
    w->c = c;
    w->tmp_path = xasprintf("%s/ingest/%s", c->root, name);
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        free(w->tmp_path);
        free(w);
        return kiln_error_errno(err, e, "create ingest file in `%s/ingest`", c->root);
    }
    kiln_sha256_ctx_new(&w->hash);
    if (expected)
        kiln_strlcpy(w->expected, expected, sizeof(w->expected));
    *out = w;
    return 0;
}

int
kiln_cache_blob_writer_write(kiln_cache_blob_writer *w, const void *data, size_t len,
                             kiln_error **err)
{
    int ret;

    if (w->tmp_path == NULL)
        return kiln_error_set(err, KILN_EINVAL, "write to a finished blob writer");
    ret = kiln_fd_write_all(w->fd, data, len, err);
    if (ret < 0)
        return kiln_error_wrap(err, "write `%s`", w->tmp_path);
    kiln_sha256_ctx_update(w->hash, data, len);
    w->size += len;
    /* Start writeback of every full WRITEBACK_CHUNK as it is written, so the disk works while
     * the blob is produced and the fsync of commit waits only for the tail. Advisory: the fsync
     * reports any I/O error. */
    if (w->size - w->flushed >= WRITEBACK_CHUNK) {
        (void)sync_file_range(w->fd, (off64_t)w->flushed, (off64_t)(w->size - w->flushed),
                              SYNC_FILE_RANGE_WRITE);
        w->flushed = w->size;
    }
    return 0;
}

static void
writer_discard(kiln_cache_blob_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    if (w->tmp_path)
        unlink(w->tmp_path);
    free(w->tmp_path);
    w->tmp_path = NULL;
}

static int
fsync_dir(const char *dir, kiln_error **err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", dir);
    if (fsync(fd) < 0) {
        int e = errno;
        close(fd);
        return kiln_error_errno(err, e, "fsync `%s`", dir);
    }
    close(fd);
    return 0;
}

/* Rename into place and record, in one write txn. */
static int
writer_publish(kiln_cache_blob_writer *w, const char *digest, const char *media_type,
               kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *path = kiln_cache__blob_path(w->c, digest);
    cleanup_free char *dir = xasprintf("%s/blobs/sha256", w->c->root);
    cache_blob b = {0};
    int ret = kiln_cache__txn_begin(&t, w->c, true, err);

    if (ret < 0)
        return ret;
    if (rename(w->tmp_path, path) < 0)
        return kiln_error_errno(err, errno, "rename blob into `%s`", path);
    free(w->tmp_path);
    w->tmp_path = NULL;
    ret = fsync_dir(dir, err);
    if (ret < 0)
        return ret;
    ret = kiln_cache__blob_load(&b, t, w->c, digest, err);
    if (ret == KILN_ENOTFOUND) {
        kiln_error_free(err);
        ret = 0;
    } else if (ret < 0) {
        return ret;
    }
    b.size = w->size;
    if (media_type && media_type[0]) {
        free(b.media_type);
        b.media_type = xstrdup(media_type);
    }
    ret = kiln_cache__blob_store(t, w->c, digest, &b, err);
    kiln_cache__blob_dispose(&b);
    if (ret == 0 && w->lease) {
        cleanup_free char *owner = xasprintf("lease:%s", w->lease);
        cleanup_free char *target = xasprintf("blob:%s", digest);
        ret = kiln_cache__ref_add(t, w->c, owner, target, err);
    }
    if (ret < 0)
        return ret;
    return kiln_cache__txn_commit(&t, err);
}

int
kiln_cache_blob_writer_commit(kiln_cache_blob_writer *w, const char *media_type, char *digest_out,
                              kiln_error **err)
{
    kiln_sha256 sum;
    char digest[KILN_DIGEST_STRLEN + 1];
    int ret;

    if (w->tmp_path == NULL)
        return kiln_error_set(err, KILN_EINVAL, "commit of a finished blob writer");
    kiln_sha256_ctx_final(w->hash, &sum);
    kiln_digest_format(digest, &sum);
    if (w->expected[0] && strcmp(w->expected, digest) != 0) {
        writer_discard(w);
        return kiln_error_set(err, KILN_EDIGEST, "blob content is %s, expected %s", digest,
                              w->expected);
    }
    if (fsync(w->fd) < 0) {
        ret = kiln_error_errno(err, errno, "fsync `%s`", w->tmp_path);
        writer_discard(w);
        return ret;
    }
    close(w->fd);
    w->fd = -1;
    ret = writer_publish(w, digest, media_type, err);
    if (ret < 0) {
        writer_discard(w);
        return kiln_error_wrap(err, "store blob %s", digest);
    }
    if (digest_out)
        memcpy(digest_out, digest, sizeof(digest));
    return 0;
}

void
kiln_cache_blob_writer_set_lease(kiln_cache_blob_writer *w, const char *lease)
{
    free(w->lease);
    w->lease = xstrdup(lease);
}

void
kiln_cache_blob_writer_free(kiln_cache_blob_writer *w)
{
    if (w == NULL)
        return;
    writer_discard(w);
    free(w->lease);
    kiln_sha256_ctx_free(w->hash);
    free(w);
}

int
kiln_cache_blob_put(kiln_cache *c, const void *data, size_t len, const char *media_type,
                    char *digest_out, kiln_error **err)
{
    kiln_cache_blob_writer *w = NULL;
    int ret = kiln_cache_blob_writer_new(&w, c, NULL, err);

    if (ret == 0)
        ret = kiln_cache_blob_writer_write(w, data, len, err);
    if (ret == 0)
        ret = kiln_cache_blob_writer_commit(w, media_type, digest_out, err);
    kiln_cache_blob_writer_free(w);
    return ret;
}

int
kiln_cache_blob_info_get(kiln_cache_blob_info *out, kiln_cache *c, const char *digest,
                         kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cache_blob b = {0};
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = kiln_cache__blob_load(&b, t, c, digest, err);
    if (ret < 0)
        return ret;
    kiln_strlcpy(out->digest, digest, sizeof(out->digest));
    out->size = b.size;
    out->refcount = b.refs;
    out->media_type = steal_pointer(&b.media_type);
    return 0;
}

bool
kiln_cache_blob_exists(kiln_cache *c, const char *digest)
{
    kiln_cache_blob_info i = {0};
    kiln_error *tmp = NULL;
    bool ok = kiln_cache_blob_info_get(&i, c, digest, &tmp) == 0;

    kiln_error_free(&tmp);
    kiln_cache_blob_info_dispose(&i);
    return ok;
}

int
kiln_cache_blob_open(int *fd_out, kiln_cache *c, const char *digest, kiln_error **err)
{
    cleanup_free char *path = NULL;
    cache_blob b = {0};
    cleanup_mdb_txn MDB_txn *t = NULL;
    int fd, ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = kiln_cache__blob_load(&b, t, c, digest, err);
    if (ret < 0)
        return ret;
    kiln_cache__blob_dispose(&b);
    path = kiln_cache__blob_path(c, digest);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return kiln_error_set(err, KILN_ENOTFOUND, "blob %s: file `%s` is missing", digest, path);
    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", path);
    *fd_out = fd;
    return 0;
}

int
kiln_cache_blob_delete(kiln_cache *c, const char *digest, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    cleanup_free char *path = NULL;
    cache_blob b = {0};
    uint64_t refs;
    int ret = kiln_cache__txn_begin(&t, c, true, err);

    if (ret == 0)
        ret = kiln_cache__blob_load(&b, t, c, digest, err);
    if (ret < 0)
        return ret;
    refs = b.refs;
    kiln_cache__blob_dispose(&b);
    if (refs > 0)
        return kiln_error_set(err, KILN_EEXISTS, "blob %s is still referenced (%llu refs)", digest,
                              (unsigned long long)refs);
    ret = kiln_cache__del(t, c, CACHE_DB_BLOBS, digest, "blob", err);
    if (ret < 0)
        return ret;
    path = kiln_cache__blob_path(c, digest);
    /* Unlink under the write lock (see the file comment); a crash before commit leaves a record
     * with no file and no refs, which the sweep at open drops. */
    if (unlink(path) < 0 && errno != ENOENT)
        return kiln_error_errno(err, errno, "unlink `%s`", path);
    return kiln_cache__txn_commit(&t, err);
}
