/*
 * layer_stream.c: the two-stage reader behind layer application (see layer_internal.h).
 *
 * libarchive decompresses inside its filter chain and never shows the uncompressed bytes, yet an
 * image pull must check a layer's diffID (the sha256 of the uncompressed tar) as well as its blob
 * digest. So the first reader uses the "raw" format with the gzip and zstd filters and only
 * decompresses; the second reader parses tar from the first one's output through a callback.
 * Both callbacks hash what passes through them.
 */
#include <archive_entry.h>

#include "base/base.h"
#include "source/layer_internal.h"

#define BLOCK (128 * 1024)

struct kiln_layer_stream {
    struct archive *raw; /* decompressor */
    struct archive *tar; /* tar parser fed by raw */
    int fd;
    const unsigned char *mem;
    size_t len, pos;
    kiln_sha256_ctx *blob; /* over the input bytes */
    kiln_sha256_ctx *diff; /* over the uncompressed bytes */
    unsigned char in[BLOCK];
    unsigned char out[BLOCK];
};

static la_ssize_t
raw_read(struct archive *ar, void *payload, const void **buf)
{
    kiln_layer_stream *s = payload;
    ssize_t n;
    if (s->fd < 0) {
        n = (ssize_t)(s->len - s->pos < BLOCK ? s->len - s->pos : BLOCK);
        *buf = s->mem + s->pos;
        s->pos += (size_t)n;
        kiln_sha256_ctx_update(s->blob, *buf, (size_t)n);
        return n;
    }
    do {
        n = read(s->fd, s->in, sizeof(s->in));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        archive_set_error(ar, errno, "read layer: %s", strerror(errno));
        return -1;
    }
    kiln_sha256_ctx_update(s->blob, s->in, (size_t)n);
    *buf = s->in;
    return n;
}

static la_ssize_t
tar_read(struct archive *ar, void *payload, const void **buf)
{
    kiln_layer_stream *s = payload;
    la_ssize_t n = archive_read_data(s->raw, s->out, sizeof(s->out));
    if (n < 0) {
        archive_set_error(ar, EIO, "%s",
                          archive_error_string(s->raw) ? archive_error_string(s->raw)
                                                       : "decompression failed");
        return -1;
    }
    kiln_sha256_ctx_update(s->diff, s->out, (size_t)n);
    *buf = s->out;
    return n;
}

void
kiln_layer__stream_free(kiln_layer_stream *s)
{
    if (!s)
        return;
    if (s->tar)
        archive_read_free(s->tar);
    if (s->raw)
        archive_read_free(s->raw);
    kiln_sha256_ctx_free(s->blob);
    kiln_sha256_ctx_free(s->diff);
    free(s);
}

static int
archive_fail(struct archive *ar, const char *what, kiln_error **err)
{
    const char *msg = archive_error_string(ar);
    return kiln_error_set(err, KILN_EPARSE, "%s: %s", what, msg ? msg : "unknown error");
}

int
kiln_layer__stream_open(kiln_layer_stream **out, struct archive **tar_out, int fd, const void *mem,
                        size_t len, kiln_error **err)
{
    kiln_layer_stream *s = xnew(kiln_layer_stream);
    struct archive_entry *e;
    s->fd = fd;
    s->mem = mem;
    s->len = len;
    kiln_sha256_ctx_new(&s->blob);
    kiln_sha256_ctx_new(&s->diff);
    s->raw = archive_read_new();
    /* layers are tar, uncompressed or gzip/zstd compressed: no other filter is accepted */
    archive_read_support_filter_gzip(s->raw);
    archive_read_support_filter_zstd(s->raw);
    archive_read_support_format_raw(s->raw);
    if (archive_read_open2(s->raw, s, NULL, raw_read, NULL, NULL) != ARCHIVE_OK ||
        archive_read_next_header(s->raw, &e) != ARCHIVE_OK) {
        int rc = archive_fail(s->raw, "open layer stream", err);
        kiln_layer__stream_free(s);
        return rc;
    }
    s->tar = archive_read_new();
    archive_read_support_format_tar(s->tar);
    if (archive_read_open2(s->tar, s, NULL, tar_read, NULL, NULL) != ARCHIVE_OK) {
        int rc = archive_fail(s->tar, "open layer tar", err);
        kiln_layer__stream_free(s);
        return rc;
    }
    *tar_out = s->tar;
    *out = s;
    return 0;
}

int
kiln_layer__stream_finish(kiln_layer_stream *s, kiln_sha256 *blob, kiln_sha256 *diff_id,
                          kiln_error **err)
{
    const void *buf;
    la_ssize_t n;
    /* the tar reader stops at the end-of-archive blocks; the rest is still part of the diff */
    while ((n = archive_read_data(s->raw, s->out, sizeof(s->out))) > 0)
        kiln_sha256_ctx_update(s->diff, s->out, (size_t)n);
    if (n < 0)
        return archive_fail(s->raw, "read layer", err);
    /* bytes after the compressed stream (rare) still belong to the blob */
    while ((n = raw_read(s->raw, s, &buf)) > 0)
        ;
    if (n < 0)
        return kiln_error_errno(err, archive_errno(s->raw), "read layer");
    kiln_sha256_ctx_final(s->blob, blob);
    kiln_sha256_ctx_final(s->diff, diff_id);
    return 0;
}
