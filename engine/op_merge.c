/*
 * op_merge.c: MergeOp and DiffOp by replaying snapshot diffs (cache/'s diff walk).
 *
 * merge(A, B, ...): a new snapshot onto which the changes of every snapshot in A's chain (base
 * first), then B's chain, ... are applied: additions replace what is there, deletions and opaque
 * directories remove what earlier inputs put there. This is BuildKit's definition (each input's
 * layers applied in order), so a file B's chain deleted from its own base is deleted from A too.
 *
 * diff(lower, upper): the changes of the snapshots between lower and upper, when lower is scratch
 * or an ancestor in upper's chain (the way Dockerfile COPY --link and frontends use it). A diff
 * whose changes delete paths, or whose lower is not an ancestor, is refused as unsupported: a
 * standalone snapshot cannot carry those deletions yet.
 */
#define KILN_LOG_DOMAIN "engine"

#include <sys/stat.h>

#include "base/fs.h"
#include "base/path.h"
#include "base/vec.h"
#include "engine/engine_internal.h"

#include "base/base.h"

#define MERGE_MAX_CHAIN 4096

typedef struct replay {
    const char *root; /* destination tree */
    bool refuse_deletes;
} replay;

/* The chain of committed snapshot `id`, base first, as owned strings in *out. */
static int
snapshot_chain(kiln_vec *out, kiln_engine *e, const char *id, kiln_error **err)
{
    char *cur = xstrdup(id);
    int ret = 0;

    while (cur && ret == 0) {
        kiln_cache_snapshot_info info = {0};
        kiln_vec_insert(out, 0, cur);
        if (out->len > MERGE_MAX_CHAIN)
            return kiln_error_set(err, KILN_EINTERNAL, "snapshot chain of %s too long", id);
        ret = kiln_cache_snapshot_info_get(&info, e->cache, cur, err);
        cur = ret == 0 && info.parent ? xstrdup(info.parent) : NULL;
        kiln_cache_snapshot_info_dispose(&info);
    }
    return ret;
}

static int
apply_dir(const char *t, const struct stat *st, kiln_error **err)
{
    struct stat cur;

    if (lstat(t, &cur) == 0 && !S_ISDIR(cur.st_mode)) {
        if (unlink(t) < 0)
            return kiln_error_errno(err, errno, "replace `%s`", t);
    }
    if (mkdir(t, st->st_mode & 07777) < 0 && errno != EEXIST)
        return kiln_error_errno(err, errno, "mkdir `%s`", t);
    if (lchown(t, st->st_uid, st->st_gid) < 0 || chmod(t, st->st_mode & 07777) < 0)
        return kiln_error_errno(err, errno, "set owner and mode of `%s`", t);
    return 0;
}

/* kiln_cache_diff_fn: apply one change to the destination tree. */
static int
replay_change(kiln_cache_change_kind kind, const char *path, const char *full,
              const struct stat *st, void *payload, kiln_error **err)
{
    replay *r = payload;
    cleanup_free char *t = NULL;
    int ret;

    ret = kiln_path_resolve_in_root(&t, r->root, path, KILN_RESOLVE_NOFOLLOW, err);
    if (ret < 0)
        return ret;
    if (strcmp(t, r->root) == 0)
        return st && S_ISDIR(st->st_mode) ? 0 : kiln_error_set(err, KILN_EINVAL, "bad root change");
    if (kind == KILN_CACHE_CHANGE_DELETE || kind == KILN_CACHE_CHANGE_OPAQUE_DIR) {
        if (r->refuse_deletes)
            return kiln_error_set(err, KILN_EUNSUPPORTED,
                                  "diff deletes `%s`: diffs with deletions are not supported yet",
                                  path);
        ret = kiln_fs_rm_rf(t, err);
        if (ret < 0 || kind == KILN_CACHE_CHANGE_DELETE || !st)
            return ret;
        return apply_dir(t, st, err);
    }
    if (S_ISDIR(st->st_mode))
        return apply_dir(t, st, err);
    ret = kiln_fs_rm_rf(t, err);
    if (ret == 0)
        ret = kiln_fs_copy_tree(full, t, KILN_COPY_PRESERVE_OWNER | KILN_COPY_PRESERVE_XATTRS, err);
    return ret;
}

/* Replay the changes of chain[from..] onto root. */
static int
replay_chain(kiln_engine *e, const kiln_vec *chain, size_t from, replay *r, kiln_error **err)
{
    int ret = 0;

    for (size_t i = from; i < chain->len && ret == 0; i++)
        ret = kiln_cache_snapshot_diff(e->cache, kiln_vec_get(chain, i), replay_change, r, err);
    return ret;
}

static const char *
input_id(kiln_solver_result *const *inputs, size_t n, int64_t idx)
{
    return idx >= 0 && (uint64_t)idx < n ? inputs[idx]->id : NULL;
}

static int
merge_inputs(const engine_op *eop, kiln_solver_result *const *inputs, replay *r, kiln_error **err)
{
    const Pb__MergeOp *m = eop->op->merge;
    int ret = 0;

    for (size_t i = 0; i < m->n_inputs && ret == 0; i++) {
        const char *id = input_id(inputs, eop->op->n_inputs, m->inputs[i]->input);
        kiln_vec chain = KILN_VEC_INIT;
        if (!id)
            continue; /* scratch adds nothing */
        ret = snapshot_chain(&chain, eop->engine, id, err);
        if (ret == 0)
            ret = replay_chain(eop->engine, &chain, 0, r, err);
        kiln_strvec_dispose(&chain);
    }
    return ret;
}

static int
diff_inputs(const engine_op *eop, kiln_solver_result *const *inputs, replay *r, kiln_error **err)
{
    const Pb__DiffOp *d = eop->op->diff;
    const char *lower = d->lower ? input_id(inputs, eop->op->n_inputs, d->lower->input) : NULL;
    const char *upper = d->upper ? input_id(inputs, eop->op->n_inputs, d->upper->input) : NULL;
    kiln_vec chain = KILN_VEC_INIT;
    size_t from = 0;
    int ret;

    if (!upper)
        return lower ? kiln_error_set(err, KILN_EUNSUPPORTED,
                                      "diff onto scratch deletes everything (not supported yet)")
                     : 0;
    ret = snapshot_chain(&chain, eop->engine, upper, err);
    if (ret == 0 && lower) {
        for (from = 0; from < chain.len && strcmp(kiln_vec_get(&chain, from), lower) != 0; from++)
            ;
        if (from == chain.len)
            ret = kiln_error_set(err, KILN_EUNSUPPORTED,
                                 "diff of unrelated snapshots is not supported yet");
        from++;
    }
    r->refuse_deletes = lower != NULL;
    if (ret == 0)
        ret = replay_chain(eop->engine, &chain, from, r, err);
    kiln_strvec_dispose(&chain);
    return ret;
}

int
engine_merge_exec(kiln_solver_result **out, const engine_op *eop, kiln_solver_result *const *inputs,
                  kiln_error **err)
{
    engine_rw w = {0};
    replay r = {0};
    int ret;

    ret = engine_rw_open(&w, eop->engine, NULL, err);
    r.root = w.path;
    if (ret == 0 && eop->op->op_case == PB__OP__OP_MERGE)
        ret = merge_inputs(eop, inputs, &r, err);
    else if (ret == 0)
        ret = diff_inputs(eop, inputs, &r, err);
    if (ret == 0)
        ret = engine_rw_commit(out, &w, eop->engine, err);
    engine_rw_abort(&w, eop->engine);
    return ret;
}
