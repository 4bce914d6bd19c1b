/*
 * vec.h: a growable array of pointers. Elements are borrowed or owned as the user decides; dispose
 * takes an optional destructor for owned elements.
 */
#ifndef KILN_BASE_VEC_H
#define KILN_BASE_VEC_H

#include <stddef.h>

typedef struct kiln_vec {
    void **items;
    size_t len;
    size_t cap;
} kiln_vec;

#define KILN_VEC_INIT \
    {                 \
        NULL, 0, 0    \
    }

void kiln_vec_init(kiln_vec *v);
/* Free the array; if `free_fn` is set, call it on each element first. The vector is empty after. */
void kiln_vec_dispose(kiln_vec *v, void (*free_fn)(void *));
void kiln_vec_push(kiln_vec *v, void *item);
/* Remove and return the last element; NULL when empty. */
void *kiln_vec_pop(kiln_vec *v);
/* Element i (asserts i < len). */
void *kiln_vec_get(const kiln_vec *v, size_t i);
/* Insert at position i (0..len), shifting later elements. */
void kiln_vec_insert(kiln_vec *v, size_t i, void *item);
/* Remove element i, shifting later elements; returns it. */
void *kiln_vec_remove(kiln_vec *v, size_t i);
void kiln_vec_reserve(kiln_vec *v, size_t n);
/* Sort with a comparator that receives the elements themselves (not pointers to them). Stable. */
void kiln_vec_sort(kiln_vec *v, int (*cmp)(const void *a, const void *b));
/* A NULL-terminated copy of the pointer array, e.g. for execve argv. The pointers are shared. */
void **kiln_vec_to_array(const kiln_vec *v);

/* Strings: kiln_vec of owned char *. */
void kiln_strvec_push(kiln_vec *v, const char *s);          /* pushes a copy */
void kiln_strvec_dispose(kiln_vec *v);                      /* frees each string */
int kiln_strvec_cmp(const void *a, const void *b);          /* strcmp order, for kiln_vec_sort */
char *kiln_strvec_join(const kiln_vec *v, const char *sep); /* owned by caller */

#define kiln_vec_foreach(v, i, item) \
    for (size_t i = 0; i < (v)->len && (((item) = (v)->items[i]), 1); i++)

#endif
