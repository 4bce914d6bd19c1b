/*
 * map.h: a hash map from NUL-terminated string keys to pointers (open addressing, XXH3 hashing,
 * insertion-order-independent). Keys are copied; values are borrowed or owned as the user decides.
 * Not thread-safe: callers lock.
 */
#ifndef KILN_BASE_MAP_H
#define KILN_BASE_MAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kiln_map_entry {
    char *key; /* NULL = empty slot; (char *)1 would never appear: tombstones use `dead` */
    void *value;
    bool dead;
} kiln_map_entry;

typedef struct kiln_map {
    kiln_map_entry *entries;
    size_t cap;  /* power of two, or 0 */
    size_t len;  /* live entries */
    size_t used; /* live + dead slots */
} kiln_map;

#define KILN_MAP_INIT \
    {                 \
        NULL, 0, 0, 0 \
    }

void kiln_map_init(kiln_map *m);
/* Free keys and slots; if free_fn is set, call it on every value. */
void kiln_map_dispose(kiln_map *m, void (*free_fn)(void *));
/* Insert or replace. Returns the previous value for the key, or NULL. */
void *kiln_map_put(kiln_map *m, const char *key, void *value);
/* The value for key, or NULL. */
void *kiln_map_get(const kiln_map *m, const char *key);
bool kiln_map_has(const kiln_map *m, const char *key);
/* Remove key; returns its value (or NULL when absent). */
void *kiln_map_remove(kiln_map *m, const char *key);
/* The keys, sorted by strcmp, as a vector of borrowed pointers (valid until the map changes).
 * `out` is a kiln_vec * (from base/vec.h), initialised by this function. */
struct kiln_vec;
void kiln_map_sorted_keys(const kiln_map *m, struct kiln_vec *out);

/* Iterate live entries in slot order: kiln_map_foreach(m, e) { e->key, e->value } */
#define kiln_map_foreach(m, e)                                                    \
    for (kiln_map_entry *e = (m)->entries; e && e < (m)->entries + (m)->cap; e++) \
        if (e->key && !e->dead)

#endif
