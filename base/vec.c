/*
 * vec.c: growable pointer arrays and the string-vector helpers built on them.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/vec.h"

void
kiln_vec_init(kiln_vec *v)
{
    v->items = NULL;
    v->len = 0;
    v->cap = 0;
}

void
kiln_vec_dispose(kiln_vec *v, void (*free_fn)(void *))
{
    if (free_fn)
        for (size_t i = 0; i < v->len; i++)
            free_fn(v->items[i]);
    free(v->items);
    kiln_vec_init(v);
}

void
kiln_vec_reserve(kiln_vec *v, size_t n)
{
    size_t cap;

    if (n <= v->cap)
        return;
    cap = v->cap ? v->cap : 8;
    while (cap < n)
        cap *= 2;
    v->items = xreallocarray(v->items, cap, sizeof(void *));
    v->cap = cap;
}

void
kiln_vec_push(kiln_vec *v, void *item)
{
    kiln_vec_reserve(v, v->len + 1);
    v->items[v->len++] = item;
}

void *
kiln_vec_pop(kiln_vec *v)
{
    if (v->len == 0)
        return NULL;
    return v->items[--v->len];
}

void *
kiln_vec_get(const kiln_vec *v, size_t i)
{
    kiln_assert(i < v->len);
    return v->items[i];
}

void
kiln_vec_insert(kiln_vec *v, size_t i, void *item)
{
    kiln_assert(i <= v->len);
    kiln_vec_reserve(v, v->len + 1);
    memmove(v->items + i + 1, v->items + i, (v->len - i) * sizeof(void *));
    v->items[i] = item;
    v->len++;
}

void *
kiln_vec_remove(kiln_vec *v, size_t i)
{
    void *item;

    kiln_assert(i < v->len);
    item = v->items[i];
    memmove(v->items + i, v->items + i + 1, (v->len - i - 1) * sizeof(void *));
    v->len--;
    return item;
}

/* Stable merge sort: qsort is not stable, and build order must not depend on libc details. */
static void
merge_sort(void **a, void **tmp, size_t n, int (*cmp)(const void *, const void *))
{
    size_t mid, i, j, k;

    if (n < 2)
        return;
    mid = n / 2;
    merge_sort(a, tmp, mid, cmp);
    merge_sort(a + mid, tmp, n - mid, cmp);
    for (i = 0, j = mid, k = 0; i < mid && j < n;)
        tmp[k++] = cmp(a[j], a[i]) < 0 ? a[j++] : a[i++];
    while (i < mid)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof(void *));
}

void
kiln_vec_sort(kiln_vec *v, int (*cmp)(const void *a, const void *b))
{
    void **tmp;

    if (v->len < 2)
        return;
    tmp = xcalloc(v->len, sizeof(void *));
    merge_sort(v->items, tmp, v->len, cmp);
    free(tmp);
}

void **
kiln_vec_to_array(const kiln_vec *v)
{
    void **a = xcalloc(v->len + 1, sizeof(void *));

    if (v->len)
        memcpy(a, v->items, v->len * sizeof(void *));
    return a;
}

void
kiln_strvec_push(kiln_vec *v, const char *s)
{
    kiln_vec_push(v, xstrdup(s));
}

void
kiln_strvec_dispose(kiln_vec *v)
{
    kiln_vec_dispose(v, free);
}

int
kiln_strvec_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

char *
kiln_strvec_join(const kiln_vec *v, const char *sep)
{
    kiln_buf b = KILN_BUF_INIT;

    for (size_t i = 0; i < v->len; i++) {
        if (i)
            kiln_buf_puts(&b, sep, NULL);
        kiln_buf_puts(&b, v->items[i], NULL);
    }
    return kiln_buf_detach(&b);
}
