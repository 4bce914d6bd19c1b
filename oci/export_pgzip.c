/*
 * export_pgzip.c: gzip compression on several cores (the pigz technique), deterministic.
 *
 * The input is cut into fixed 1 MiB blocks. Each block is raw-deflated on its own by a pool
 * thread, primed with the last 32 KiB of the block before it (deflateSetDictionary) so the ratio
 * stays close to one stream. A block that is not the last ends with a sync flush (a byte-aligned
 * empty stored block); the last ends the deflate stream. The compressed blocks are concatenated
 * in order between a gzip header and a trailer whose CRC-32 is combined from the blocks' CRCs
 * (crc32_combine). Block boundaries depend only on the input, never on the thread count or the
 * timing, so every thread count yields the same bytes (but not the bytes of one zlib stream).
 *
 * Memory stays bounded: at most 2 * threads blocks are in flight; the writer waits for the
 * oldest before cutting another.
 */
#include <pthread.h>
#include <zlib.h>

#include "oci/export_internal.h"

#include "base/base.h"
#include "base/buf.h"
#include "base/threadpool.h"

#define PGZ_BLOCK (1u << 20)
#define PGZ_DICT  (32u << 10)

typedef struct pgz_job {
    struct kiln_oci__pgzip *z;
    unsigned char *in; /* dict_len bytes of dictionary, then in_len bytes of input */
    size_t dict_len, in_len;
    bool last;
    kiln_buf out;
    uLong crc;
    int zerr; /* zlib failure, or 0 */
    bool done;
} pgz_job;

struct kiln_oci__pgzip {
    kiln_threadpool *pool;
    int level;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pgz_job **queue; /* in-flight jobs, oldest first */
    size_t n_queue, max_queue;
    unsigned char *cur; /* block being filled: dictionary + input, like pgz_job.in */
    size_t cur_dict, cur_len;
    uLong crc;
    uLong total; /* input bytes mod 2^32 (ISIZE) */
    kiln_oci__emit_fn emit;
    void *payload;
};

/* Deflate one job's block; runs on a pool thread. */
static void
pgz_compress(void *arg)
{
    pgz_job *j = arg;
    z_stream s = {0};
    unsigned char buf[64 << 10];
    int zr = deflateInit2(&s, j->z->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);

    if (zr == Z_OK && j->dict_len)
        zr = deflateSetDictionary(&s, j->in, (uInt)j->dict_len);
    s.next_in = j->in + j->dict_len;
    s.avail_in = (uInt)j->in_len;
    while (zr == Z_OK) {
        s.next_out = buf;
        s.avail_out = sizeof(buf);
        zr = deflate(&s, j->last ? Z_FINISH : Z_SYNC_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
            break;
        kiln_buf_put(&j->out, buf, sizeof(buf) - s.avail_out, NULL);
        /* done: the stream ended (last block), or the flush fit in the buffer */
        if (j->last ? zr == Z_STREAM_END : s.avail_out != 0) {
            zr = Z_STREAM_END;
            break;
        }
        zr = Z_OK; /* Z_BUF_ERROR here only means "call again" */
    }
    j->zerr = zr == Z_STREAM_END ? 0 : (zr ? zr : Z_STREAM_ERROR);
    deflateEnd(&s);
    j->crc = crc32(0, j->in + j->dict_len, (uInt)j->in_len);
    pthread_mutex_lock(&j->z->lock);
    j->done = true;
    pthread_cond_broadcast(&j->z->cond);
    pthread_mutex_unlock(&j->z->lock);
}

static void
pgz_job_free(pgz_job *j)
{
    free(j->in);
    kiln_buf_dispose(&j->out);
    free(j);
}

/* Wait for the oldest job, emit its bytes and fold its CRC in. */
static int
pgz_retire(kiln_oci__pgzip *z, kiln_error **err)
{
    pgz_job *j = z->queue[0];
    int ret;

    pthread_mutex_lock(&z->lock);
    while (!j->done)
        pthread_cond_wait(&z->cond, &z->lock);
    pthread_mutex_unlock(&z->lock);
    memmove(z->queue, z->queue + 1, (z->n_queue - 1) * sizeof(*z->queue));
    z->n_queue--;
    if (j->zerr) {
        ret = kiln_error_set(err, KILN_EINTERNAL, "deflate failed (%d)", j->zerr);
    } else {
        z->crc = crc32_combine(z->crc, j->crc, (z_off_t)j->in_len);
        ret = z->emit(z->payload, j->out.ptr, j->out.len, err);
    }
    pgz_job_free(j);
    return ret;
}

/* Hand the current block to the pool and start the next one primed with its tail. */
static int
pgz_submit(kiln_oci__pgzip *z, bool last, kiln_error **err)
{
    pgz_job *j = xnew(pgz_job);
    size_t dict;
    int ret;

    while (z->n_queue >= z->max_queue) {
        if ((ret = pgz_retire(z, err)) < 0) {
            free(j);
            return ret;
        }
    }
    j->z = z;
    j->in = z->cur;
    j->dict_len = z->cur_dict;
    j->in_len = z->cur_len;
    j->last = last;
    kiln_buf_init(&j->out, 0);
    dict = j->in_len < PGZ_DICT ? j->in_len : PGZ_DICT;
    z->cur = xmalloc(PGZ_DICT + PGZ_BLOCK);
    memcpy(z->cur, j->in + j->dict_len + j->in_len - dict, dict);
    z->cur_dict = dict;
    z->cur_len = 0;
    z->queue[z->n_queue++] = j;
    kiln_threadpool_submit(z->pool, pgz_compress, j);
    return 0;
}

/* kiln_oci__pgzip_new: see export_internal.h. */
int
kiln_oci__pgzip_new(kiln_oci__pgzip **out, unsigned threads, int level, kiln_oci__emit_fn emit,
                    void *payload, kiln_error **err)
{
    static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    unsigned char hdr[10];
    kiln_oci__pgzip *z = xnew(kiln_oci__pgzip);
    int ret = kiln_threadpool_new(&z->pool, threads, err);

    if (ret < 0) {
        free(z);
        return ret;
    }
    z->level = level;
    z->emit = emit;
    z->payload = payload;
    z->max_queue = 2 * kiln_threadpool_size(z->pool);
    z->queue = xcalloc(z->max_queue, sizeof(*z->queue));
    z->cur = xmalloc(PGZ_DICT + PGZ_BLOCK);
    z->crc = crc32(0, NULL, 0);
    pthread_mutex_init(&z->lock, NULL);
    pthread_cond_init(&z->cond, NULL);
    *out = z;
    /* mtime 0, no name; XFL as zlib sets it for the level (2 = best, 4 = fastest); OS 3 = unix */
    memcpy(hdr, header, sizeof(hdr));
    hdr[8] = level == 9 ? 2 : level == 1 ? 4 : 0;
    return emit(payload, hdr, sizeof(hdr), err);
}

/* kiln_oci__pgzip_write: see export_internal.h. */
int
kiln_oci__pgzip_write(kiln_oci__pgzip *z, const void *data, size_t len, kiln_error **err)
{
    const unsigned char *p = data;
    int ret;

    z->total += (uLong)len;
    while (len > 0) {
        size_t n = PGZ_BLOCK - z->cur_len;

        if (n > len)
            n = len;
        memcpy(z->cur + z->cur_dict + z->cur_len, p, n);
        z->cur_len += n;
        p += n;
        len -= n;
        if (z->cur_len == PGZ_BLOCK && (ret = pgz_submit(z, false, err)) < 0)
            return ret;
    }
    return 0;
}

/* kiln_oci__pgzip_finish: see export_internal.h. */
int
kiln_oci__pgzip_finish(kiln_oci__pgzip *z, kiln_error **err)
{
    unsigned char trailer[8];
    uLong crc, size = z->total & 0xffffffffUL;
    int ret = pgz_submit(z, true, err);

    while (ret == 0 && z->n_queue > 0)
        ret = pgz_retire(z, err);
    if (ret < 0)
        return ret;
    crc = z->crc;
    for (int i = 0; i < 4; i++) {
        trailer[i] = (unsigned char)(crc >> (8 * i));
        trailer[4 + i] = (unsigned char)(size >> (8 * i));
    }
    return z->emit(z->payload, trailer, sizeof(trailer), err);
}

/* kiln_oci__pgzip_free: waits for in-flight blocks, then frees everything (NULL-safe). */
void
kiln_oci__pgzip_free(kiln_oci__pgzip *z)
{
    if (!z)
        return;
    kiln_threadpool_free(z->pool); /* waits for every job */
    for (size_t i = 0; i < z->n_queue; i++)
        pgz_job_free(z->queue[i]);
    free(z->queue);
    free(z->cur);
    pthread_mutex_destroy(&z->lock);
    pthread_cond_destroy(&z->cond);
    free(z);
}
