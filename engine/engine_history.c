/*
 * engine_history.c: build history. Every solve that asks for it leaves a record in the store's
 * history table: its name, start time and duration, outcome, and each step with its status (run,
 * cached, failed...) and time, for `kiln history`. The newest KILN_HISTORY_KEEP records are kept.
 */
#define KILN_LOG_DOMAIN "engine"

#include <jansson.h>
#include <time.h>

#include "base/json.h"
#include "engine/engine_internal.h"

#include "base/base.h"

#define KILN_HISTORY_KEEP 100

static const char *const vstatus_names[] = {
        [KILN_VSTATUS_PENDING] = "pending", [KILN_VSTATUS_CACHED] = "cached",
        [KILN_VSTATUS_SKIPPED] = "skipped", [KILN_VSTATUS_DONE] = "done",
        [KILN_VSTATUS_FAILED] = "failed",   [KILN_VSTATUS_CANCELED] = "canceled",
};

static double
ms(int64_t from, int64_t to)
{
    return from && to >= from ? (double)(to - from) / 1e6 : 0;
}

/* Drop the oldest records beyond the limit (ids sort by time). */
static void
history_trim(kiln_engine *e)
{
    kiln_cache_record *rows = NULL;
    size_t n = 0;
    kiln_error *err = NULL;

    if (kiln_cache_history_list(&rows, &n, e->cache, &err) < 0) {
        kiln_log_warn("build history: %s", err->msg);
        kiln_error_free(&err);
        return;
    }
    for (size_t i = 0; n > KILN_HISTORY_KEEP && i < n - KILN_HISTORY_KEEP; i++) {
        if (kiln_cache_history_delete(e->cache, rows[i].id, &err) < 0) {
            kiln_log_warn("build history: %s", err->msg);
            kiln_error_free(&err);
        }
    }
    kiln_cache_records_free(rows, n);
}

void
engine_history_record(kiln_engine *e, const char *name, int64_t wall_start_ns,
                      const kiln_build_summary *s, const char *result_id, const kiln_error *failure)
{
    json_t *rec = json_object(), *steps = json_array();
    cleanup_free char *id = xasprintf("%020lld", (long long)wall_start_ns);
    cleanup_free char *text = NULL;
    kiln_error *err = NULL;

    json_object_set_new(rec, "id", json_string(id));
    json_object_set_new(rec, "name", json_string(name ? name : ""));
    json_object_set_new(rec, "started", json_integer(wall_start_ns / 1000000000));
    json_object_set_new(rec, "duration_ms", json_real(s ? ms(s->started_ns, s->completed_ns) : 0));
    json_object_set_new(
            rec, "status",
            json_string(failure ? (failure->code == KILN_ECANCELED ? "canceled" : "failed")
                                : "completed"));
    if (failure)
        json_object_set_new(rec, "error", json_string(failure->msg ? failure->msg : ""));
    if (result_id)
        json_object_set_new(rec, "result", json_string(result_id));
    for (size_t i = 0; s && i < s->nvertices; i++) {
        const kiln_vertex_summary *v = &s->vertices[i];
        json_t *st = json_object();
        json_object_set_new(st, "name", json_string(v->name ? v->name : ""));
        json_object_set_new(st, "digest", json_string(v->digest ? v->digest : ""));
        json_object_set_new(st, "status", json_string(vstatus_names[v->status]));
        json_object_set_new(st, "duration_ms", json_real(ms(v->started_ns, v->completed_ns)));
        if (v->error)
            json_object_set_new(st, "error", json_string(v->error));
        json_array_append_new(steps, st);
    }
    json_object_set_new(rec, "steps", steps);
    json_object_set_new(rec, "executed", json_integer(s ? (json_int_t)s->nexecuted : 0));
    json_object_set_new(rec, "cached", json_integer(s ? (json_int_t)s->ncached : 0));
    text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (kiln_cache_history_put(e->cache, id, text, NULL, &err) < 0) {
        kiln_log_warn("build history: %s", err->msg);
        kiln_error_free(&err);
        return;
    }
    history_trim(e);
}

int
kiln_engine_history_list(char ***out, size_t *n, kiln_engine *e, kiln_error **err)
{
    kiln_cache_record *rows = NULL;
    size_t count = 0;
    int ret = kiln_cache_history_list(&rows, &count, e->cache, err);

    if (ret < 0)
        return ret;
    *out = xcalloc(count + 1, sizeof(**out));
    for (size_t i = 0; i < count; i++) {
        (*out)[i] = rows[i].json;
        rows[i].json = NULL;
    }
    *n = count;
    kiln_cache_records_free(rows, count);
    return 0;
}
