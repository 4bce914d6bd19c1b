/*
 * export_internal.h: what the layer writer and the exporters share inside oci/: a streaming
 * sink (compress + hash + write to an fd) and a thin libarchive tar writer on top of it.
 */
#ifndef KILN_OCI_EXPORT_INTERNAL_H
#define KILN_OCI_EXPORT_INTERNAL_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/digest.h"
#include "base/error.h"
#include "oci/export.h"
#include "oci/oci.h"

struct archive;
struct archive_entry;

/* Receives output bytes in order. Returns 0 or a negative code with *err set. */
typedef kiln_layer_emit_fn kiln_oci__emit_fn;

/* Parallel deterministic gzip (export_pgzip.c). */
typedef struct kiln_oci__pgzip kiln_oci__pgzip;
/* Start a gzip stream compressed on `threads` pool threads (0 = one per CPU) at `level` (1-9);
 * writes the gzip header through emit at once. Later emits run on the pool threads, one at a
 * time and in order, until kiln_oci__pgzip_finish returns. *out owned (kiln_oci__pgzip_free). */
int kiln_oci__pgzip_new(kiln_oci__pgzip **out, unsigned threads, int level, kiln_oci__emit_fn emit,
                        void *payload, kiln_error **err);
/* Feed input; compressed blocks are emitted in order as they complete. */
int kiln_oci__pgzip_write(kiln_oci__pgzip *z, const void *data, size_t len, kiln_error **err);
/* Compress the rest and emit the trailer. */
int kiln_oci__pgzip_finish(kiln_oci__pgzip *z, kiln_error **err);
void kiln_oci__pgzip_free(kiln_oci__pgzip *z);

/* Where a sink's output goes: fd (borrowed), or emit(payload, ...) when emit is not NULL. */
typedef struct kiln_oci__dest {
    int fd;
    kiln_oci__emit_fn emit;
    void *payload;
} kiln_oci__dest;

/* What a sink hashes (bits). */
#define KILN_OCI__HASH_IN  1u /* the input: a layer's diffID */
#define KILN_OCI__HASH_OUT 2u /* the output: the blob digest */

/* Bytes in -> (sha256 of input) -> compressor -> (sha256 of output) -> dest. With gzip threads the
 * output side (out_sha, out_bytes, dest) runs on the compressor's threads, one call at a time; it
 * is complete once kiln_oci__sink_finish returns. */
typedef struct kiln_oci__sink {
    kiln_oci__dest dest;
    kiln_oci_compression compression; /* of the output */
    kiln_sha256_ctx *in_sha;          /* uncompressed bytes (diffID), or NULL */
    kiln_sha256_ctx *out_sha;         /* bytes written (blob digest), or NULL */
    void *z;                          /* z_stream * or ZSTD_CCtx * */
    kiln_oci__pgzip *pgz;             /* parallel gzip instead of z, or NULL */
    unsigned char *buf;               /* compressor output buffer */
    size_t buf_cap;
    int64_t in_bytes, out_bytes;
    uint64_t skip;   /* tar writer: bytes of libarchive's output to drop (see export_stream.c) */
    kiln_error *err; /* first failure, reported by the caller */
} kiln_oci__sink;

/* Prepare a sink writing to dest, hashing as `hash` (KILN_OCI__HASH_* bits) says. level 0 =
 * default. gzip_threads > 0: gzip with the parallel block format on that many threads (see
 * export_pgzip.c). KILN_EINVAL on a bad level. */
int kiln_oci__sink_init(kiln_oci__sink *s, const kiln_oci__dest *dest, kiln_oci_compression c,
                        int level, unsigned gzip_threads, unsigned hash, kiln_error **err);
/* Feed bytes. KILN_ESYS on a write failure. */
int kiln_oci__sink_write(kiln_oci__sink *s, const void *data, size_t len, kiln_error **err);
/* Flush the compressor; fill diff_id/digest (KILN_DIGEST_STRLEN + 1 bytes, or NULL) with the
 * digests hashed, or "" for one that was not. */
int kiln_oci__sink_finish(kiln_oci__sink *s, char *diff_id, char *digest, kiln_error **err);
void kiln_oci__sink_dispose(kiln_oci__sink *s);

/* A pax (restricted) tar stream written through a sink. */
typedef struct kiln_oci__tar {
    struct archive *a;
    kiln_oci__sink sink;
    locale_t utf8; /* C.UTF-8 for header writes, or (locale_t)0 */
} kiln_oci__tar;

/* Open a tar stream into dest through a sink (see kiln_oci__sink_init). */
int kiln_oci__tar_open(kiln_oci__tar *t, const kiln_oci__dest *dest, kiln_oci_compression c,
                       int level, unsigned gzip_threads, unsigned hash, kiln_error **err);
/* Write one header (and nothing else) / data of the current entry. KILN_ESYS, KILN_EINVAL. */
int kiln_oci__tar_header(kiln_oci__tar *t, struct archive_entry *e, kiln_error **err);
int kiln_oci__tar_data(kiln_oci__tar *t, const void *data, size_t len, kiln_error **err);
/* Stream `size` bytes of an open file (from its offset) as the current entry's data; KILN_EDIGEST
 * if the file is shorter or longer than `size` (it changed under us), or, when `digest` is not
 * NULL, if its sha256 differs from it. `what` names it in errors. Into an uncompressed, unhashed
 * sink writing to an fd the bytes are copied in the kernel (sendfile) and hashed on a thread. */
int kiln_oci__tar_file_data(kiln_oci__tar *t, int fd, int64_t size, const char *digest,
                            const char *what, kiln_error **err);
/* Write the end-of-archive marker and flush the sink (digests as in kiln_oci__sink_finish). */
int kiln_oci__tar_close(kiln_oci__tar *t, char *diff_id, char *digest, kiln_error **err);
void kiln_oci__tar_dispose(kiln_oci__tar *t);

/* The index.json of an exported image: one entry per name (annotated with
 * io.containerd.image.name and org.opencontainers.image.ref.name), or one plain entry when `names`
 * is NULL or empty. *ix owned by the caller. KILN_EINVAL (bad name, image not finalized). */
int kiln_oci__export_index(kiln_oci_index *ix, const kiln_export_image *img,
                           const char *const *names, kiln_error **err);

#endif
