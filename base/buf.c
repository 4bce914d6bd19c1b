/*
 * buf.c: growable, optionally capped byte buffers. Every write keeps ptr[len] == '\0'. A write
 * that would pass the cap fails whole and leaves the buffer as it was.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "base/buf.h"

void
kiln_buf_init(kiln_buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void
kiln_buf_dispose(kiln_buf *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
}

void
kiln_buf_clear(kiln_buf *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

int
kiln_buf_grow(kiln_buf *b, size_t extra, kiln_error **err)
{
    size_t need, cap;

    if (extra > SIZE_MAX - b->len - 1)
        return kiln_error_set(err, KILN_EINVAL, "buffer too big");
    need = b->len + extra + 1;
    if (b->max && b->len + extra > b->max)
        return kiln_error_set(err, KILN_EINVAL, "too big: more than %zu bytes", b->max);
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->ptr = xrealloc(b->ptr, cap);
    b->cap = cap;
    return 0;
}

int
kiln_buf_put(kiln_buf *b, const void *data, size_t len, kiln_error **err)
{
    int rc = kiln_buf_grow(b, len, err);

    if (rc < 0)
        return rc;
    if (len)
        memcpy(b->ptr + b->len, data, len);
    b->len += len;
    b->ptr[b->len] = '\0';
    return 0;
}

int
kiln_buf_puts(kiln_buf *b, const char *s, kiln_error **err)
{
    return kiln_buf_put(b, s, strlen(s), err);
}

int
kiln_buf_putc(kiln_buf *b, char c, kiln_error **err)
{
    return kiln_buf_put(b, &c, 1, err);
}

int
kiln_buf_vprintf(kiln_buf *b, kiln_error **err, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    int rc;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return kiln_error_set(err, KILN_EINTERNAL, "format error");
    rc = kiln_buf_grow(b, (size_t)n, err);
    if (rc < 0)
        return rc;
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int
kiln_buf_printf(kiln_buf *b, kiln_error **err, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = kiln_buf_vprintf(b, err, fmt, ap);
    va_end(ap);
    return rc;
}

char *
kiln_buf_detach(kiln_buf *b)
{
    char *p = b->ptr ? b->ptr : xstrdup("");

    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

const char *
kiln_buf_cstr(const kiln_buf *b)
{
    return b->ptr ? b->ptr : "";
}
