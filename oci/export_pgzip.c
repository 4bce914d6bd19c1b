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
 * Incompressible blocks (already compressed files, random data) are not searched for matches:
 * zlib spends as long failing to compress them as compressing text (about 30 MB/s a core). A
 * cheap probe of a sample of the block (pgz_incompressible) decides, from the bytes alone, to
 * write such a block as stored deflate blocks instead, which costs a copy. Stored blocks end
 * byte-aligned, so the next block's stream follows directly. The decision is made in integer
 * arithmetic over the block's own bytes, so the output stays a function of the input.
 *
 * Output is emitted in block order by whichever pool thread finds the oldest block finished
 * (one thread at a time, under `emitting`), so the consumer (hashing, writing the blob) runs
 * beside the compression instead of on the thread feeding input.
 *
 * Memory stays bounded: at most 2 * threads blocks are in flight; the writer waits for the
 * oldest to be emitted before cutting another.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "oci/export_internal.h"

#include "base/base.h"
#include "base/threadpool.h"

#define PGZ_BLOCK (1u << 20)
#define PGZ_DICT  (32u << 10)

/* The probe: a PGZ_PROBE_WIN sample every PGZ_PROBE_STEP bytes; blocks shorter than
 * PGZ_PROBE_MIN are always deflated. */
#define PGZ_PROBE_WIN  (1u << 10)
#define PGZ_PROBE_STEP (64u << 10)
#define PGZ_PROBE_MIN  (64u << 10)
#define PGZ_STORED_MAX 65535u
#define PGZ_SPARE      4 /* finished blocks' buffers kept for reuse */

typedef struct pgz_job {
    struct kiln_oci__pgzip *z;
    unsigned char *in; /* dict_len bytes of dictionary, then in_len bytes of input */
    size_t dict_len, in_len;
    bool last;
    unsigned char *out; /* compressed bytes */
    size_t out_len, out_cap;
    uLong crc;
    int zerr; /* zlib failure, or 0 */
    bool done;
} pgz_job;

struct kiln_oci__pgzip {
    kiln_threadpool *pool;
    int level;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pgz_job **queue; /* in-flight jobs, oldest first; protected by lock */
    size_t n_queue, max_queue;
    bool emitting;                      /* a pool thread is emitting the queue's head */
    bool abort;                         /* pgzip_free: drop finished jobs unemitted */
    kiln_error *err;                    /* first emit or deflate failure; protected by lock */
    unsigned char *spare_in[PGZ_SPARE]; /* reusable input buffers; protected by lock */
    size_t n_spare_in;
    pgz_job *spare_out[PGZ_SPARE]; /* jobs kept only for their out buffer; protected by lock */
    size_t n_spare_out;
    unsigned char *cur; /* block being filled: dictionary + input, like pgz_job.in */
    size_t cur_dict, cur_len;
    uLong crc;   /* of the emitted blocks; only the emitting thread touches it */
    uLong total; /* input bytes mod 2^32 (ISIZE) */
    kiln_oci__emit_fn emit;
    void *payload;
};

/* Whether deflate would gain next to nothing on a block: a sample of it (PGZ_PROBE_WIN bytes
 * every PGZ_PROBE_STEP) has a flat byte histogram, Renyi entropy H2 = -log2(sum p^2) of at least
 * log2(239) ~ 7.9 bits a byte, a lower bound of the Shannon entropy, so Huffman coding saves
 * under 1.3%; and hardly any 4-byte string of it repeats (under 1 in 64 positions), so LZ77
 * matches save little more. Random data passes with a wide margin (sum p^2 ~ 1/256 + 1/n gives
 * 239 * sum c^2 ~ 0.95 n^2); text, code, tar headers and zeros fail on both counts. Integer
 * arithmetic and little-endian words only, so the answer is the same on every machine. */
static bool
pgz_incompressible(const unsigned char *p, size_t len)
{
    uint32_t hist[256] = {0};
    uint32_t seen[1u << 12] = {0};
    uint64_t n = 0, sq = 0, hits = 0;

    if (len < PGZ_PROBE_MIN)
        return false;
    for (size_t off = 0; off + PGZ_PROBE_WIN <= len; off += PGZ_PROBE_STEP) {
        const unsigned char *w = p + off;

        for (size_t i = 0; i + 4 <= PGZ_PROBE_WIN; i++) {
            uint32_t v = (uint32_t)w[i] | (uint32_t)w[i + 1] << 8 | (uint32_t)w[i + 2] << 16 |
                         (uint32_t)w[i + 3] << 24;
            uint32_t h = (v * 2654435761u) >> 20;

            hits += seen[h] == v;
            seen[h] = v;
            hist[w[i]]++;
        }
        n += PGZ_PROBE_WIN - 3;
    }
    for (size_t i = 0; i < 256; i++)
        sq += (uint64_t)hist[i] * hist[i];
    return sq * 239 <= n * n && hits * 64 <= n;
}

static void
pgz_out_reserve(pgz_job *j, size_t extra)
{
    if (j->out_cap - j->out_len >= extra)
        return;
    j->out_cap = j->out_len + extra;
    j->out = xrealloc(j->out, j->out_cap);
}

/* The block as stored deflate blocks (RFC 1951 3.2.4) of at most 65535 bytes each, starting at
 * a byte boundary (the previous block ended on one) and ending on one; BFINAL on the last piece
 * of the last block. Computes the block's CRC-32 on the way. */
static void
pgz_store(pgz_job *j)
{
    const unsigned char *p = j->in + j->dict_len;
    size_t left = j->in_len;

    pgz_out_reserve(j, left + 5 * (left / PGZ_STORED_MAX + 1));
    while (left > 0) {
        size_t n = left < PGZ_STORED_MAX ? left : PGZ_STORED_MAX;
        unsigned char *h = j->out + j->out_len;

        h[0] = j->last && n == left ? 1 : 0;
        h[1] = (unsigned char)(n & 0xff);
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)(~n & 0xff);
        h[4] = (unsigned char)((~n >> 8) & 0xff);
        memcpy(h + 5, p, n);
        j->crc = crc32(j->crc, p, (uInt)n); /* while the piece is in cache */
        j->out_len += 5 + n;
        p += n;
        left -= n;
    }
}

/* Deflate the block with zlib straight into j->out. */
static int
pgz_deflate(pgz_job *j)
{
    z_stream s = {0};
    int zr = deflateInit2(&s, j->z->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);

    if (zr == Z_OK && j->dict_len)
        zr = deflateSetDictionary(&s, j->in, (uInt)j->dict_len);
    if (zr == Z_OK)
        pgz_out_reserve(j, deflateBound(&s, (uLong)j->in_len) + 16);
    s.next_in = j->in + j->dict_len;
    s.avail_in = (uInt)j->in_len;
    while (zr == Z_OK) {
        s.next_out = j->out + j->out_len;
        s.avail_out = (uInt)(j->out_cap - j->out_len);
        zr = deflate(&s, j->last ? Z_FINISH : Z_SYNC_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
            break;
        j->out_len = j->out_cap - s.avail_out;
        /* done: the stream ended (last block), or the flush fit in the buffer */
        if (j->last ? zr == Z_STREAM_END : s.avail_out != 0) {
            zr = Z_STREAM_END;
            break;
        }
        pgz_out_reserve(j, 64u << 10);
        zr = Z_OK; /* Z_BUF_ERROR here only means "call again" */
    }
    deflateEnd(&s);
    return zr == Z_STREAM_END ? 0 : (zr ? zr : Z_STREAM_ERROR);
}

static void
pgz_job_free(pgz_job *j)
{
    free(j->in);
    free(j->out);
    free(j);
}

/* Keep an emitted job's buffers for the next blocks (fresh pages cost a fault each), or free
 * them. Called with z->lock held. */
static void
pgz_recycle(kiln_oci__pgzip *z, pgz_job *j)
{
    if (z->n_spare_in < PGZ_SPARE)
        z->spare_in[z->n_spare_in++] = steal_pointer(&j->in);
    free(steal_pointer(&j->in));
    if (z->n_spare_out < PGZ_SPARE && j->out) {
        *j = (pgz_job){.out = j->out, .out_cap = j->out_cap};
        z->spare_out[z->n_spare_out++] = j;
        return;
    }
    pgz_job_free(j);
}

/* A job with a reused out buffer when there is one. Called with z->lock held. */
static pgz_job *
pgz_job_get(kiln_oci__pgzip *z)
{
    if (z->n_spare_out > 0)
        return z->spare_out[--z->n_spare_out];
    return xnew(pgz_job);
}

/* An input buffer (dictionary + block), reused when possible. Called with z->lock held. */
static unsigned char *
pgz_in_get(kiln_oci__pgzip *z)
{
    if (z->n_spare_in > 0)
        return z->spare_in[--z->n_spare_in];
    return xmalloc(PGZ_DICT + PGZ_BLOCK);
}

/* Emit the finished jobs at the head of the queue, in order. Called with z->lock held by the one
 * thread that set z->emitting; drops the lock around each emit. A job leaves the queue only once
 * emitted, so an empty queue means every byte went out. */
static void
pgz_emit_ready(kiln_oci__pgzip *z)
{
    while (z->n_queue > 0 && z->queue[0]->done) {
        pgz_job *j = z->queue[0];
        kiln_error *e = NULL;
        bool skip = z->abort || z->err;

        pthread_mutex_unlock(&z->lock);
        if (!skip && j->zerr) {
            kiln_error_set(&e, KILN_EINTERNAL, "deflate failed (%d)", j->zerr);
        } else if (!skip) {
            z->crc = crc32_combine(z->crc, j->crc, (z_off_t)j->in_len);
            z->emit(z->payload, j->out, j->out_len, &e);
        }
        pthread_mutex_lock(&z->lock);
        memmove(z->queue, z->queue + 1, (z->n_queue - 1) * sizeof(*z->queue));
        z->n_queue--;
        if (e && !z->err)
            z->err = steal_pointer(&e);
        kiln_error_free(&e);
        pgz_recycle(z, j);
        pthread_cond_broadcast(&z->cond); /* a queue slot is free */
    }
}

/* Compress one job's block, then emit what is ready; runs on a pool thread. */
static void
pgz_compress(void *arg)
{
    pgz_job *j = arg;
    kiln_oci__pgzip *z = j->z;
    const unsigned char *data = j->in + j->dict_len;

    j->crc = crc32(0, NULL, 0);
    if (pgz_incompressible(data, j->in_len)) {
        pgz_store(j);
    } else {
        j->zerr = pgz_deflate(j);
        j->crc = crc32(0, data, (uInt)j->in_len);
    }
    pthread_mutex_lock(&z->lock);
    j->done = true;
    if (!z->emitting) {
        z->emitting = true;
        pgz_emit_ready(z);
        z->emitting = false;
    }
    pthread_mutex_unlock(&z->lock);
}

/* The first failure, moved to *err (0 when there is none). */
static int
pgz_take_error(kiln_oci__pgzip *z, kiln_error **err)
{
    kiln_error *e;

    pthread_mutex_lock(&z->lock);
    e = steal_pointer(&z->err);
    pthread_mutex_unlock(&z->lock);
    if (!e)
        return 0;
    return kiln_error_move(err, &e);
}

/* Hand the current block to the pool and start the next one primed with its tail. */
static int
pgz_submit(kiln_oci__pgzip *z, bool last, kiln_error **err)
{
    pgz_job *j = NULL;
    unsigned char *next = NULL;
    size_t dict;
    bool failed;

    pthread_mutex_lock(&z->lock);
    while (z->n_queue >= z->max_queue && !z->err)
        pthread_cond_wait(&z->cond, &z->lock);
    failed = z->err != NULL;
    if (!failed) {
        j = pgz_job_get(z);
        next = pgz_in_get(z);
    }
    pthread_mutex_unlock(&z->lock);
    if (failed)
        return pgz_take_error(z, err);
    j->z = z;
    j->in = z->cur;
    j->dict_len = z->cur_dict;
    j->in_len = z->cur_len;
    j->last = last;
    dict = j->in_len < PGZ_DICT ? j->in_len : PGZ_DICT;
    z->cur = next;
    memcpy(z->cur, j->in + j->dict_len + j->in_len - dict, dict);
    z->cur_dict = dict;
    z->cur_len = 0;
    pthread_mutex_lock(&z->lock);
    z->queue[z->n_queue++] = j;
    pthread_mutex_unlock(&z->lock);
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

    if (ret < 0)
        return ret;
    pthread_mutex_lock(&z->lock);
    while (z->n_queue > 0 && !z->err)
        pthread_cond_wait(&z->cond, &z->lock);
    pthread_mutex_unlock(&z->lock);
    if ((ret = pgz_take_error(z, err)) < 0)
        return ret;
    /* every job is emitted: the emitting thread's writes to z->crc happened before the unlock */
    crc = z->crc;
    for (int i = 0; i < 4; i++) {
        trailer[i] = (unsigned char)(crc >> (8 * i));
        trailer[4 + i] = (unsigned char)(size >> (8 * i));
    }
    return z->emit(z->payload, trailer, sizeof(trailer), err);
}

/* kiln_oci__pgzip_free: drops in-flight blocks, waits for the threads, frees everything
 * (NULL-safe). */
void
kiln_oci__pgzip_free(kiln_oci__pgzip *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&z->lock);
    z->abort = true;
    pthread_mutex_unlock(&z->lock);
    kiln_threadpool_free(z->pool); /* waits for every job; each emits (drops) what is ready */
    for (size_t i = 0; i < z->n_queue; i++)
        pgz_job_free(z->queue[i]);
    for (size_t i = 0; i < z->n_spare_in; i++)
        free(z->spare_in[i]);
    for (size_t i = 0; i < z->n_spare_out; i++)
        pgz_job_free(z->spare_out[i]);
    free(z->queue);
    free(z->cur);
    kiln_error_free(&z->err);
    pthread_mutex_destroy(&z->lock);
    pthread_cond_destroy(&z->cond);
    free(z);
}
