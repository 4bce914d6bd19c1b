/*
 * cache_history.c: listing the build history table (records are written and read one by one
 * through cache_tables.c).
 */
#define KILN_LOG_DOMAIN "cache"

#include "base/vec.h"
#include "cache/cache_internal.h"

#include "base/base.h"

static int
collect(const char *key, const MDB_val *v, void *payload, kiln_error **err)
{
    kiln_vec *out = payload;
    kiln_cache_record *r = xnew(kiln_cache_record);

    (void)err;
    r->id = xstrdup(key);
    r->json = xstrndup(v->mv_data, v->mv_size);
    kiln_vec_push(out, r);
    return 0;
}

void
kiln_cache_records_free(kiln_cache_record *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].id);
        free(v[i].json);
    }
    free(v);
}

int
kiln_cache_history_list(kiln_cache_record **out, size_t *n, kiln_cache *c, kiln_error **err)
{
    cleanup_mdb_txn MDB_txn *t = NULL;
    kiln_vec rows = KILN_VEC_INIT;
    int ret = kiln_cache__txn_begin(&t, c, false, err);

    if (ret == 0)
        ret = kiln_cache__scan(t, c, CACHE_DB_HISTORY, collect, &rows, err);
    *out = NULL;
    *n = 0;
    if (ret == 0 && rows.len) {
        *out = xcalloc(rows.len, sizeof(**out));
        for (size_t i = 0; i < rows.len; i++) {
            kiln_cache_record *r = kiln_vec_get(&rows, i);
            (*out)[i] = *r;
            free(r);
        }
        *n = rows.len;
        kiln_vec_dispose(&rows, NULL);
    } else {
        for (size_t i = 0; i < rows.len; i++) {
            kiln_cache_record *r = kiln_vec_get(&rows, i);
            free(r->id);
            free(r->json);
        }
        kiln_vec_dispose(&rows, free);
    }
    if (ret < 0)
        return kiln_error_wrap(err, "list build history");
    return 0;
}
