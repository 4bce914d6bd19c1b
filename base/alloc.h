/*
 * alloc.h: allocation that cannot fail. Out of memory aborts (as in crun, bubblewrap and redis), so
 * there are no allocation-failure paths anywhere in kiln.
 */
#ifndef KILN_BASE_ALLOC_H
#define KILN_BASE_ALLOC_H

#include <stddef.h>

#include "base/error.h"

void *xmalloc(size_t n);
void *xzalloc(size_t n);                  /* zeroed */
void *xcalloc(size_t nmemb, size_t size); /* zeroed, overflow-checked */
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t nmemb, size_t size); /* overflow-checked */
char *xstrdup(const char *s);                            /* NULL for NULL */
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) KILN_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) KILN_PRINTF(1, 0);

/* Allocate a zeroed T. */
#define xnew(T) ((T *)xzalloc(sizeof(T)))

/* Abort with a message: used only for invariants and OOM. */
__attribute__((noreturn)) void kiln_abort(const char *file, int line, const char *fmt, ...)
        KILN_PRINTF(3, 4);

/* Invariant check, always compiled in (redis serverAssert). Never for bad input. */
#define kiln_assert(cond)                                                  \
    do {                                                                   \
        if (__builtin_expect(!(cond), 0))                                  \
            kiln_abort(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

#endif
