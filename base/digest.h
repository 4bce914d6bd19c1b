/*
 * digest.h: content digests. SHA-256 (OpenSSL) wherever a digest leaves the machine or names
 * content (OCI, LLB vertex digests); XXH3 (xxhash) for fast local checksums that never leave it.
 */
#ifndef KILN_BASE_DIGEST_H
#define KILN_BASE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define KILN_SHA256_LEN    32
#define KILN_DIGEST_STRLEN 71 /* "sha256:" + 64 hex; a buffer needs KILN_DIGEST_STRLEN + 1 */

typedef struct kiln_sha256 {
    unsigned char bytes[KILN_SHA256_LEN];
} kiln_sha256;

typedef struct kiln_sha256_ctx kiln_sha256_ctx; /* opaque streaming state */

/* One-shot SHA-256 of a buffer. */
void kiln_sha256_buf(kiln_sha256 *out, const void *data, size_t len);
void kiln_sha256_ctx_new(kiln_sha256_ctx **out);
void kiln_sha256_ctx_update(kiln_sha256_ctx *c, const void *data, size_t len);
/* Finish into *out; the context can be reused afterwards (it is reset). */
void kiln_sha256_ctx_final(kiln_sha256_ctx *c, kiln_sha256 *out);
void kiln_sha256_ctx_free(kiln_sha256_ctx *c);
/* Hash a file descriptor from its current offset to EOF. */
int kiln_sha256_fd(kiln_sha256 *out, int fd, kiln_error **err);

/* "sha256:<64 lowercase hex>" into out (KILN_DIGEST_STRLEN + 1 bytes). */
void kiln_digest_format(char out[KILN_DIGEST_STRLEN + 1], const kiln_sha256 *d);
/* The same, heap-allocated; owned by caller. */
char *kiln_digest_str(const kiln_sha256 *d);
/* Parse "sha256:<64 lowercase hex>" strictly. KILN_EINVAL on anything else (other algorithms are
 * KILN_EUNSUPPORTED). */
int kiln_digest_parse(kiln_sha256 *out, const char *s, kiln_error **err);
bool kiln_digest_valid(const char *s);
/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void kiln_hex_encode(char *out, const unsigned char *in, size_t n);

/* XXH3 */
typedef struct kiln_xxh128 {
    uint64_t lo, hi;
} kiln_xxh128;
typedef struct kiln_xxh_ctx kiln_xxh_ctx;

uint64_t kiln_xxh3_64(const void *data, size_t len);
kiln_xxh128 kiln_xxh3_128(const void *data, size_t len);
void kiln_xxh_ctx_new(kiln_xxh_ctx **out);
void kiln_xxh_ctx_update(kiln_xxh_ctx *c, const void *data, size_t len);
kiln_xxh128 kiln_xxh_ctx_final128(kiln_xxh_ctx *c); /* resets the context */
void kiln_xxh_ctx_free(kiln_xxh_ctx *c);
/* 32 lowercase hex chars (+NUL) */
void kiln_xxh128_format(char out[33], kiln_xxh128 h);

#endif
