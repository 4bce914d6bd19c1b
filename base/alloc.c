/*
 * alloc.c: allocation wrappers that abort on out-of-memory, and kiln_abort() for broken invariants.
 * Nothing in kiln handles allocation failure: a build engine that cannot allocate cannot make
 * progress, and error paths for it would be untested code.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

static void
oom(size_t n)
{
    fprintf(stderr, "kiln: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        oom(n);
    return p;
}

void *
xzalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);

    if (!p)
        oom(n);
    return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
    void *p;

    if (nmemb && size > SIZE_MAX / nmemb)
        oom(SIZE_MAX);
    p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        oom(n);
    return q;
}

void *
xreallocarray(void *p, size_t nmemb, size_t size)
{
    if (nmemb && size > SIZE_MAX / nmemb)
        oom(SIZE_MAX);
    return xrealloc(p, nmemb * size);
}

char *
xstrdup(const char *s)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        oom(strlen(s) + 1);
    return d;
}

char *
xstrndup(const char *s, size_t n)
{
    char *d;

    if (!s)
        return NULL;
    d = strndup(s, n);
    if (!d)
        oom(n + 1);
    return d;
}

void *
xmemdup(const void *p, size_t n)
{
    void *d = xmalloc(n);

    if (n)
        memcpy(d, p, n);
    return d;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
    char *s = NULL;

    if (vasprintf(&s, fmt, ap) < 0)
        oom(0);
    return s;
}

char *
xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

void
kiln_abort(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "kiln: fatal: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
