/*
 * buf.h: growable byte buffers with an optional size cap, for everything fed by untrusted input
 * (STYLE.md B4: curl's `toobig`). The content is always NUL-terminated (ptr[len] == 0), so a buffer
 * of text can be used as a C string.
 */
#ifndef KILN_BASE_BUF_H
#define KILN_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "base/error.h"

typedef struct kiln_buf {
    char *ptr;  /* NULL until first write; owned */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* cap on len; 0 = unlimited */
} kiln_buf;

#define KILN_BUF_INIT \
    {                 \
        NULL, 0, 0, 0 \
    }

/* Initialise an empty buffer with a size cap (0 = unlimited). */
void kiln_buf_init(kiln_buf *b, size_t max);
/* Free the memory; the buffer is empty and reusable (same cap) afterwards. */
void kiln_buf_dispose(kiln_buf *b);
/* Drop the content, keep the allocation. */
void kiln_buf_clear(kiln_buf *b);
/* Make room for `extra` more bytes. KILN_EINVAL ("too big") when it would pass `max`. */
int kiln_buf_grow(kiln_buf *b, size_t extra, kiln_error **err);
/* Append bytes / a string / a formatted string. KILN_EINVAL when `max` would be passed; then the
 * buffer is unchanged. With max == 0 these cannot fail. */
int kiln_buf_put(kiln_buf *b, const void *data, size_t len, kiln_error **err);
int kiln_buf_puts(kiln_buf *b, const char *s, kiln_error **err);
int kiln_buf_putc(kiln_buf *b, char c, kiln_error **err);
int kiln_buf_printf(kiln_buf *b, kiln_error **err, const char *fmt, ...) KILN_PRINTF(3, 4);
int kiln_buf_vprintf(kiln_buf *b, kiln_error **err, const char *fmt, va_list ap) KILN_PRINTF(3, 0);
/* Take the content as a NUL-terminated heap string (never NULL: "" when empty); the buffer is
 * left empty. Owned by the caller. */
char *kiln_buf_detach(kiln_buf *b);
/* The content as a C string (never NULL), borrowed until the next write. */
const char *kiln_buf_cstr(const kiln_buf *b);

#endif
