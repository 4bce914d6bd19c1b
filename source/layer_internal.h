/*
 * layer_internal.h: the input pipeline of layer application, shared by layer.c and
 * layer_stream.c only. The raw bytes (fd or memory) go through a libarchive "raw" reader that
 * detects and removes gzip/zstd compression; the uncompressed bytes feed the tar reader. Both
 * sides are hashed on the way, giving the blob digest and the diffID in the same pass.
 */
#ifndef KILN_SOURCE_LAYER_INTERNAL_H
#define KILN_SOURCE_LAYER_INTERNAL_H

#include <archive.h>
#include <stddef.h>

#include "base/digest.h"
#include "base/error.h"

typedef struct kiln_layer_stream kiln_layer_stream;

/* Open the pipeline over `fd` (when >= 0) or over `mem`/`len` (borrowed until free). *tar_out is
 * the tar reader to iterate, owned by the stream. Errors: KILN_EPARSE for an empty stream or
 * unreadable compression. */
int kiln_layer__stream_open(kiln_layer_stream **out, struct archive **tar_out, int fd,
                            const void *mem, size_t len, kiln_error **err);

/* After the tar reader reached its end: read the rest of the uncompressed and compressed input
 * (tar padding, compression trailer) so the digests cover every byte, and return them.
 * Errors: KILN_EPARSE when the compressed stream is truncated or corrupt, KILN_ESYS on I/O. */
int kiln_layer__stream_finish(kiln_layer_stream *s, kiln_sha256 *blob, kiln_sha256 *diff_id,
                              kiln_error **err);

/* NULL-safe; frees both readers. */
void kiln_layer__stream_free(kiln_layer_stream *s);

#endif
