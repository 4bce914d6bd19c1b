/*
 * export_stream.c: the byte pipeline under every tar kiln writes. A sink hashes what it is given
 * (the diffID of a layer), compresses it with zlib (gzip wrapper) or zstd, hashes the compressed
 * bytes (the blob digest) and writes them to a file descriptor, never seeking, so the output may be
 * a pipe, or hands them to a callback (a content-store writer, which hashes them itself). gzip
 * output is deterministic: zlib's default gzip header has mtime 0, no file name and a fixed OS
 * byte. zstd runs single-threaded, which is deterministic for a given level. With gzip threads
 * the sink hands the bytes to the parallel block compressor (export_pgzip.c).
 *
 * The tar writer is libarchive's restricted pax format: plain ustar headers unless a field needs a
 * pax record (long names, xattrs, big ids). Entries are built field by field by the callers (never
 * from a struct stat), so no atime/ctime/uname record ever varies between runs; pax header names
 * have no pid in them ("PaxHeader/<name>"), and xattrs are written as SCHILY.xattr only, as Go's
 * archive/tar (BuildKit, containerd) writes them. libarchive runs unblocked: each of its writes
 * goes straight to the sink (the bytes are those of 10 KiB blocking with a last block of 1 byte),
 * which lets an uncompressed archive copy a file's data in the kernel (tar_copy_file).
 *
 * libarchive converts names from the current locale to UTF-8 for pax records. The process locale
 * is usually "C", where any non-ASCII byte fails that conversion; so headers are written under a
 * thread-local C.UTF-8 locale (uselocale, which touches no other thread). A name that is not valid
 * UTF-8 still gets written, as raw bytes with a pax hdrcharset=BINARY record.
 */
#include <archive.h>
#include <archive_entry.h>
#include <locale.h>
#include <pthread.h>
#include <sys/sendfile.h>
#include <zlib.h>
#include <zstd.h>

#define KILN_LOG_DOMAIN "export"

#include "oci/export_internal.h"

#include "base/base.h"
#include "base/fs.h"

#define SINK_BUF (128u << 10)
#define COPY_BUF (1u << 20)

static int
sink_emit(kiln_oci__sink *s, const void *data, size_t len, kiln_error **err)
{
    int ret;

    if (len == 0)
        return 0;
    if (s->out_sha)
        kiln_sha256_ctx_update(s->out_sha, data, len);
    if (s->dest.emit)
        ret = s->dest.emit(s->dest.payload, data, len, err);
    else
        ret = kiln_fd_write_all(s->dest.fd, data, len, err);
    if (ret < 0)
        return kiln_error_wrap(err, "write blob");
    s->out_bytes += (int64_t)len;
    return 0;
}

static int
emit_cb(void *payload, const void *data, size_t len, kiln_error **err)
{
    return sink_emit(payload, data, len, err);
}

static int
gzip_init(kiln_oci__sink *s, int level, unsigned threads, kiln_error **err)
{
    z_stream *z = NULL;

    if (level == 0)
        level = 6;
    if (level < 1 || level > 9)
        return kiln_error_set(err, KILN_EINVAL, "gzip level %d out of range 1-9", level);
    if (threads > 0)
        return kiln_oci__pgzip_new(&s->pgz, threads, level, emit_cb, s, err);
    z = xnew(z_stream);
    /* windowBits 15 + 16: a gzip wrapper whose header zlib writes with mtime 0 and no name. */
    if (deflateInit2(z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return kiln_error_set(err, KILN_EINTERNAL, "deflateInit2 failed");
    }
    s->z = z;
    return 0;
}

static int
zstd_init(kiln_oci__sink *s, int level, kiln_error **err)
{
    ZSTD_CCtx *c;

    if (level == 0)
        level = 3;
    if (level < 1 || level > ZSTD_maxCLevel())
        return kiln_error_set(err, KILN_EINVAL, "zstd level %d out of range 1-%d", level,
                              ZSTD_maxCLevel());
    c = ZSTD_createCCtx();
    kiln_assert(c != NULL);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1))) {
        ZSTD_freeCCtx(c);
        return kiln_error_set(err, KILN_EINTERNAL, "zstd parameters rejected");
    }
    s->z = c;
    return 0;
}

/* kiln_oci__sink_init: see export_internal.h. */
int
kiln_oci__sink_init(kiln_oci__sink *s, const kiln_oci__dest *dest, kiln_oci_compression c,
                    int level, unsigned gzip_threads, unsigned hash, kiln_error **err)
{
    int ret = 0;

    memset(s, 0, sizeof(*s));
    s->dest = *dest;
    s->compression = c;
    if (hash & KILN_OCI__HASH_IN)
        kiln_sha256_ctx_new(&s->in_sha);
    if (hash & KILN_OCI__HASH_OUT)
        kiln_sha256_ctx_new(&s->out_sha);
    switch (c) {
    case KILN_OCI_COMP_NONE:
        break;
    case KILN_OCI_COMP_GZIP:
        ret = gzip_init(s, level, gzip_threads, err);
        break;
    case KILN_OCI_COMP_ZSTD:
        ret = zstd_init(s, level, err);
        break;
    default:
        return kiln_error_set(err, KILN_EINVAL, "unknown compression %d", (int)c);
    }
    if (ret < 0)
        return ret;
    if (c != KILN_OCI_COMP_NONE) {
        s->buf_cap = SINK_BUF;
        s->buf = xmalloc(s->buf_cap);
    }
    return 0;
}

/* Run deflate until the input is consumed (flush = Z_NO_FLUSH) or the stream ends (Z_FINISH). */
static int
gzip_step(kiln_oci__sink *s, const void *data, size_t len, int flush, kiln_error **err)
{
    z_stream *z = s->z;
    int zr, ret;

    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)len;
    do {
        z->next_out = s->buf;
        z->avail_out = (uInt)s->buf_cap;
        zr = deflate(z, flush);
        if (zr == Z_STREAM_ERROR)
            return kiln_error_set(err, KILN_EINTERNAL, "deflate failed");
        ret = sink_emit(s, s->buf, s->buf_cap - z->avail_out, err);
        if (ret < 0)
            return ret;
    } while (z->avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
    return 0;
}

static int
zstd_step(kiln_oci__sink *s, const void *data, size_t len, ZSTD_EndDirective mode, kiln_error **err)
{
    ZSTD_inBuffer in = {data, len, 0};
    size_t left;
    int ret;

    do {
        ZSTD_outBuffer out = {s->buf, s->buf_cap, 0};

        left = ZSTD_compressStream2(s->z, &out, &in, mode);
        if (ZSTD_isError(left))
            return kiln_error_set(err, KILN_EINTERNAL, "zstd: %s", ZSTD_getErrorName(left));
        ret = sink_emit(s, s->buf, out.pos, err);
        if (ret < 0)
            return ret;
    } while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
    return 0;
}

/* kiln_oci__sink_write: see export_internal.h. Large inputs are fed to zlib in pieces because its
 * avail_in is 32-bit. */
int
kiln_oci__sink_write(kiln_oci__sink *s, const void *data, size_t len, kiln_error **err)
{
    const unsigned char *p = data;

    if (s->in_sha)
        kiln_sha256_ctx_update(s->in_sha, data, len);
    s->in_bytes += (int64_t)len;
    while (len > 0) {
        size_t n = len > (1u << 30) ? (1u << 30) : len;
        int ret;

        if (s->pgz)
            ret = kiln_oci__pgzip_write(s->pgz, p, n, err);
        else if (s->compression == KILN_OCI_COMP_GZIP)
            ret = gzip_step(s, p, n, Z_NO_FLUSH, err);
        else if (s->compression == KILN_OCI_COMP_ZSTD)
            ret = zstd_step(s, p, n, ZSTD_e_continue, err);
        else
            ret = sink_emit(s, p, n, err);
        if (ret < 0)
            return ret;
        p += n;
        len -= n;
    }
    return 0;
}

/* kiln_oci__sink_finish: see export_internal.h. */
int
kiln_oci__sink_finish(kiln_oci__sink *s, char *diff_id, char *digest, kiln_error **err)
{
    kiln_sha256 d;
    int ret = 0;

    if (s->pgz)
        ret = kiln_oci__pgzip_finish(s->pgz, err);
    else if (s->compression == KILN_OCI_COMP_GZIP)
        ret = gzip_step(s, NULL, 0, Z_FINISH, err);
    else if (s->compression == KILN_OCI_COMP_ZSTD)
        ret = zstd_step(s, NULL, 0, ZSTD_e_end, err);
    if (ret < 0)
        return ret;
    if (diff_id && s->in_sha) {
        kiln_sha256_ctx_final(s->in_sha, &d);
        kiln_digest_format(diff_id, &d);
    } else if (diff_id) {
        diff_id[0] = 0;
    }
    if (digest && s->out_sha) {
        kiln_sha256_ctx_final(s->out_sha, &d);
        kiln_digest_format(digest, &d);
    } else if (digest) {
        digest[0] = 0;
    }
    return 0;
}

/* kiln_oci__sink_dispose: free the compressor and hash state (NULL-safe members). */
void
kiln_oci__sink_dispose(kiln_oci__sink *s)
{
    if (s->z && s->compression == KILN_OCI_COMP_GZIP) {
        deflateEnd(s->z);
        free(s->z);
    } else if (s->z && s->compression == KILN_OCI_COMP_ZSTD) {
        ZSTD_freeCCtx(s->z);
    }
    s->z = NULL;
    kiln_oci__pgzip_free(s->pgz);
    s->pgz = NULL;
    free(s->buf);
    s->buf = NULL;
    if (s->in_sha)
        kiln_sha256_ctx_free(s->in_sha);
    if (s->out_sha)
        kiln_sha256_ctx_free(s->out_sha);
    s->in_sha = s->out_sha = NULL;
    kiln_error_free(&s->err);
}

/* ---- tar writer ----------------------------------------------------------------------------- */

static la_ssize_t
tar_write_cb(struct archive *a, void *payload, const void *data, size_t len)
{
    kiln_oci__sink *s = payload;

    (void)a;
    if (s->err)
        return -1;
    if (s->skip > 0) { /* the NULs libarchive pads data with that tar_copy_file already wrote */
        size_t n = (uint64_t)len < s->skip ? len : (size_t)s->skip;

        s->skip -= n;
        if (n < len && kiln_oci__sink_write(s, (const char *)data + n, len - n, &s->err) < 0)
            return -1;
        return (la_ssize_t)len;
    }
    if (kiln_oci__sink_write(s, data, len, &s->err) < 0)
        return -1;
    return (la_ssize_t)len;
}

/* Report a libarchive failure: the sink's own error when it caused it, else libarchive's text. */
static int
tar_error(kiln_oci__tar *t, kiln_error **err, const char *what)
{
    const char *msg;

    if (t->sink.err) {
        kiln_error_move(err, &t->sink.err);
        return kiln_error_wrap(err, "%s", what);
    }
    msg = archive_error_string(t->a);
    return kiln_error_set(err, KILN_EINVAL, "%s: %s", what, msg ? msg : "libarchive error");
}

/* kiln_oci__tar_open: see export_internal.h. */
int
kiln_oci__tar_open(kiln_oci__tar *t, const kiln_oci__dest *dest, kiln_oci_compression c, int level,
                   unsigned gzip_threads, unsigned hash, kiln_error **err)
{
    int ret;

    memset(t, 0, sizeof(*t));
    /* Without C.UTF-8 (very old libc) non-ASCII names fall back to raw bytes, see above. */
    t->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    ret = kiln_oci__sink_init(&t->sink, dest, c, level, gzip_threads, hash, err);
    if (ret < 0)
        return ret;
    t->a = archive_write_new();
    kiln_assert(t->a != NULL);
    if (archive_write_set_format_pax_restricted(t->a) != ARCHIVE_OK ||
        archive_write_set_format_option(t->a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
        /* unblocked: libarchive hands every write straight to the sink (no copy through a 10 KiB
         * block buffer); the bytes are those of blocking with a last block of 1 */
        archive_write_set_bytes_per_block(t->a, 0) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(t->a, 1) != ARCHIVE_OK)
        return tar_error(t, err, "configure tar writer");
    if (archive_write_open2(t->a, &t->sink, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK)
        return tar_error(t, err, "open tar stream");
    return 0;
}

/* kiln_oci__tar_header: see export_internal.h. */
int
kiln_oci__tar_header(kiln_oci__tar *t, struct archive_entry *e, kiln_error **err)
{
    locale_t old = t->utf8 ? uselocale(t->utf8) : (locale_t)0;
    int r = archive_write_header(t->a, e);

    if (t->utf8)
        uselocale(old);
    if (r == ARCHIVE_WARN && !t->sink.err) {
        /* written anyway (e.g. a name that is not UTF-8, kept as raw bytes) */
        kiln_log_debug("tar entry `%s`: %s", archive_entry_pathname(e), archive_error_string(t->a));
        return 0;
    }
    if (r != ARCHIVE_OK)
        return tar_error(t, err, archive_entry_pathname(e));
    return 0;
}

/* kiln_oci__tar_data: see export_internal.h. */
int
kiln_oci__tar_data(kiln_oci__tar *t, const void *data, size_t len, kiln_error **err)
{
    const char *p = data;

    while (len > 0) {
        la_ssize_t n = archive_write_data(t->a, p, len);

        if (n <= 0)
            return tar_error(t, err, "write tar data");
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Compare the hash of what was streamed with the expected digest. */
static int
check_digest(kiln_sha256_ctx *c, const char *digest, const char *what, kiln_error **err)
{
    char got[KILN_DIGEST_STRLEN + 1];
    kiln_sha256 d;

    kiln_sha256_ctx_final(c, &d);
    kiln_digest_format(got, &d);
    if (strcmp(got, digest) != 0)
        return kiln_error_set(err, KILN_EDIGEST, "`%s` has digest %s, expected %s", what, got,
                              digest);
    return 0;
}

static int
stream_file(kiln_oci__tar *t, int fd, int64_t size, kiln_sha256_ctx *c, const char *what,
            kiln_error **err)
{
    cleanup_free char *buf = xmalloc(COPY_BUF);
    int64_t done = 0;
    int ret;

    for (;;) {
        ssize_t n = read(fd, buf, COPY_BUF);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kiln_error_errno(err, errno, "read `%s`", what);
        if (n == 0)
            break;
        if (done + n > size)
            return kiln_error_set(err, KILN_EDIGEST, "`%s` grew while being archived", what);
        if (c)
            kiln_sha256_ctx_update(c, buf, (size_t)n);
        ret = kiln_oci__tar_data(t, buf, (size_t)n, err);
        if (ret < 0)
            return ret;
        done += n;
    }
    if (done != size)
        return kiln_error_set(err, KILN_EDIGEST, "`%s` shrank while being archived", what);
    return 0;
}

/* Hashes `size` bytes of a file from `off` with pread on a thread of its own, beside the copy. */
typedef struct hasher {
    int fd;
    off_t off;
    int64_t size;
    kiln_sha256_ctx *c;
    int64_t got;  /* bytes hashed; < size when the file ended first */
    int read_err; /* errno of a failed read, or 0 */
} hasher;

static void *
hasher_run(void *arg)
{
    hasher *h = arg;
    char *buf = xmalloc(COPY_BUF);

    while (h->got < h->size) {
        size_t want = h->size - h->got < COPY_BUF ? (size_t)(h->size - h->got) : COPY_BUF;
        ssize_t n = pread(h->fd, buf, want, h->off + h->got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            h->read_err = errno;
        if (n <= 0)
            break;
        kiln_sha256_ctx_update(h->c, buf, (size_t)n);
        h->got += n;
    }
    free(buf);
    return NULL;
}

/* Copy `size` bytes of fd from `off` to out: sendfile (one copy, in the kernel), or pread and
 * write where sendfile cannot. *copied says how far it got. */
static int
copy_range(int out, int fd, off_t off, int64_t size, int64_t *copied, const char *what,
           kiln_error **err)
{
    cleanup_free char *buf = NULL;
    bool plain = false;

    *copied = 0;
    while (*copied < size) {
        size_t want = size - *copied < (1 << 30) ? (size_t)(size - *copied) : (1u << 30);
        off_t pos = off + *copied;
        ssize_t n;

        if (!plain) {
            n = sendfile(out, fd, &pos, want);
            if (n < 0 && (errno == EINVAL || errno == ENOSYS) && *copied == 0) {
                plain = true;
                continue;
            }
        } else {
            if (!buf)
                buf = xmalloc(COPY_BUF);
            n = pread(fd, buf, want < COPY_BUF ? want : COPY_BUF, pos);
            if (n > 0 && kiln_fd_write_all(out, buf, (size_t)n, err) < 0)
                return kiln_error_wrap(err, "write blob");
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kiln_error_errno(err, errno, "copy `%s`", what);
        if (n == 0)
            return kiln_error_set(err, KILN_EDIGEST, "`%s` shrank while being archived", what);
        *copied += n;
    }
    return 0;
}

/* The current entry's data straight from fd to the output fd, around libarchive: the header is
 * out already (the writer is unblocked), the data is copied in the kernel while a thread hashes
 * the file, and libarchive's NUL padding of the data it did not see is dropped (sink.skip), so
 * only its block padding goes out. For an uncompressed, unhashed sink writing to an fd. */
static int
tar_copy_file(kiln_oci__tar *t, int fd, int64_t size, const char *digest, const char *what,
              kiln_error **err)
{
    hasher h = {.fd = fd, .size = size};
    bool threaded = false;
    pthread_t th;
    int64_t copied = 0;
    char extra;
    int ret;

    h.off = lseek(fd, 0, SEEK_CUR);
    if (h.off < 0)
        return kiln_error_errno(err, errno, "seek `%s`", what);
    if (digest) {
        kiln_sha256_ctx_new(&h.c);
        threaded = pthread_create(&th, NULL, hasher_run, &h) == 0;
    }
    ret = copy_range(t->sink.dest.fd, fd, h.off, size, &copied, what, err);
    t->sink.in_bytes += copied;
    t->sink.out_bytes += copied;
    if (ret == 0 && pread(fd, &extra, 1, h.off + size) == 1)
        ret = kiln_error_set(err, KILN_EDIGEST, "`%s` grew while being archived", what);
    if (threaded)
        pthread_join(th, NULL);
    else if (ret == 0 && digest) /* no thread: hash here, after the copy */
        hasher_run(&h);
    if (ret == 0 && h.read_err)
        ret = kiln_error_errno(err, h.read_err, "read `%s`", what);
    if (ret == 0 && digest && h.got != size)
        ret = kiln_error_set(err, KILN_EDIGEST, "`%s` shrank while being archived", what);
    if (ret == 0 && digest)
        ret = check_digest(h.c, digest, what, err);
    if (h.c)
        kiln_sha256_ctx_free(h.c);
    if (ret < 0)
        return ret;
    t->sink.skip = (uint64_t)size;
    if (archive_write_finish_entry(t->a) != ARCHIVE_OK)
        return tar_error(t, err, "finish tar entry");
    if (t->sink.skip != 0)
        return kiln_error_set(err, KILN_EINTERNAL, "tar entry `%s`: libarchive padding changed",
                              what);
    return 0;
}

/* kiln_oci__tar_file_data: see export_internal.h. */
int
kiln_oci__tar_file_data(kiln_oci__tar *t, int fd, int64_t size, const char *digest,
                        const char *what, kiln_error **err)
{
    kiln_sha256_ctx *c = NULL;
    int ret;

    if (t->sink.compression == KILN_OCI_COMP_NONE && !t->sink.dest.emit && !t->sink.in_sha &&
        !t->sink.out_sha && size > 0)
        return tar_copy_file(t, fd, size, digest, what, err);
    if (digest)
        kiln_sha256_ctx_new(&c);
    ret = stream_file(t, fd, size, c, what, err);
    if (ret == 0 && c)
        ret = check_digest(c, digest, what, err);
    if (c)
        kiln_sha256_ctx_free(c);
    return ret;
}

/* kiln_oci__tar_close: see export_internal.h. */
int
kiln_oci__tar_close(kiln_oci__tar *t, char *diff_id, char *digest, kiln_error **err)
{
    if (archive_write_close(t->a) != ARCHIVE_OK)
        return tar_error(t, err, "finish tar stream");
    return kiln_oci__sink_finish(&t->sink, diff_id, digest, err);
}

/* kiln_oci__tar_dispose: free the archive and the sink (safe after a failed open). */
void
kiln_oci__tar_dispose(kiln_oci__tar *t)
{
    if (t->a)
        archive_write_free(t->a);
    t->a = NULL;
    if (t->utf8)
        freelocale(t->utf8);
    t->utf8 = (locale_t)0;
    kiln_oci__sink_dispose(&t->sink);
}
