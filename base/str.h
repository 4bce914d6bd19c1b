/*
 * str.h: small string helpers, and checked number parsing (atoi and friends are banned).
 */
#ifndef KILN_BASE_STR_H
#define KILN_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

bool kiln_str_has_prefix(const char *s, const char *prefix);
bool kiln_str_has_suffix(const char *s, const char *suffix);
bool kiln_str_eq(const char *a, const char *b); /* NULL-safe */
/* Copy at most size-1 bytes and NUL-terminate (size > 0). Returns strlen(src). */
size_t kiln_strlcpy(char *dst, const char *src, size_t size);
/* Whole-string decimal parsing with range checks: KILN_EINVAL naming `what` on junk or overflow. */
int kiln_parse_i64(const char *s, int64_t *out, const char *what, kiln_error **err);
int kiln_parse_u64(const char *s, uint64_t *out, const char *what, kiln_error **err);
/* Octal (e.g. "0755", "755"); KILN_EINVAL on junk or values above 07777. */
int kiln_parse_mode(const char *s, unsigned *out, kiln_error **err);
/* Sizes like "64m", "1g", "512k", "100" (bytes), "1.5g" (fractions round down to a byte),
 * case-insensitive, optional "b"/"ib"; every suffix is binary ("512MB" = 512 MiB), as docker's
 * --keep-storage and --memory read them. KILN_EINVAL on junk, negatives and overflow. */
int kiln_parse_size(const char *s, uint64_t *out, kiln_error **err);
/* Go strconv.Quote of a byte string (used by the Dockerfile AST dump). Owned by the caller. */
char *kiln_str_go_quote(const char *s, size_t len);

#endif
