/*
 * map.c: string-keyed hash map with open addressing and linear probing. Removal leaves a tombstone
 * (`dead`) so probe chains stay intact; the table is rebuilt when live + dead slots pass 70 %.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/base.h"
#include "base/map.h"
#include "base/vec.h"

void
kiln_map_init(kiln_map *m)
{
    memset(m, 0, sizeof(*m));
}

void
kiln_map_dispose(kiln_map *m, void (*free_fn)(void *))
{
    for (size_t i = 0; i < m->cap; i++) {
        kiln_map_entry *e = &m->entries[i];
        if (e->key && !e->dead && free_fn)
            free_fn(e->value);
        free(e->key);
    }
    free(m->entries);
    kiln_map_init(m);
}

static size_t
slot_of(const kiln_map *m, const char *key)
{
    return (size_t)XXH3_64bits(key, strlen(key)) & (m->cap - 1);
}

/* The slot holding key, or (for inserts) the first free/dead slot on its probe chain. */
static kiln_map_entry *
find(const kiln_map *m, const char *key, bool for_insert)
{
    kiln_map_entry *tomb = NULL;
    size_t i;

    if (m->cap == 0)
        return NULL;
    i = slot_of(m, key);
    for (size_t n = 0; n < m->cap; n++, i = (i + 1) & (m->cap - 1)) {
        kiln_map_entry *e = &m->entries[i];
        if (!e->key)
            return for_insert ? (tomb ? tomb : e) : NULL;
        if (e->dead) {
            if (!tomb)
                tomb = e;
            continue;
        }
        if (strcmp(e->key, key) == 0)
            return e;
    }
    return for_insert ? tomb : NULL;
}

static void
rehash(kiln_map *m, size_t cap)
{
    kiln_map old = *m;

    m->entries = xcalloc(cap, sizeof(kiln_map_entry));
    m->cap = cap;
    m->len = 0;
    m->used = 0;
    for (size_t i = 0; i < old.cap; i++) {
        kiln_map_entry *e = &old.entries[i];
        if (!e->key)
            continue;
        if (e->dead) {
            free(e->key);
            continue;
        }
        kiln_map_entry *d = find(m, e->key, true);
        d->key = e->key;
        d->value = e->value;
        m->len++;
        m->used++;
    }
    free(old.entries);
}

void *
kiln_map_put(kiln_map *m, const char *key, void *value)
{
    kiln_map_entry *e;
    void *old;

    if ((m->used + 1) * 10 >= m->cap * 7)
        rehash(m, m->cap ? (m->len * 2 >= m->cap / 2 ? m->cap * 2 : m->cap) : 16);
    e = find(m, key, true);
    if (e->key && !e->dead) {
        old = e->value;
        e->value = value;
        return old;
    }
    if (!e->key)
        m->used++;
    free(e->key);
    e->key = xstrdup(key);
    e->dead = false;
    e->value = value;
    m->len++;
    return NULL;
}

void *
kiln_map_get(const kiln_map *m, const char *key)
{
    kiln_map_entry *e = find(m, key, false);

    return e ? e->value : NULL;
}

bool
kiln_map_has(const kiln_map *m, const char *key)
{
    return find(m, key, false) != NULL;
}

void *
kiln_map_remove(kiln_map *m, const char *key)
{
    kiln_map_entry *e = find(m, key, false);
    void *v;

    if (!e)
        return NULL;
    v = e->value;
    e->dead = true;
    e->value = NULL;
    m->len--;
    return v;
}

void
kiln_map_sorted_keys(const kiln_map *m, kiln_vec *out)
{
    kiln_vec_init(out);
    kiln_map_foreach(m, e)
        kiln_vec_push(out, e->key);
    kiln_vec_sort(out, kiln_strvec_cmp);
}
