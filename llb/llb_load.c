/*
 * llb_load.c: loading an untrusted Definition into a validated graph (BuildKit's loadLLB).
 *
 * Steps: size caps; wire check and decode of the Definition; each def entry is hashed as given
 * (metadata and source locations are keyed by that digest) and decoded; the last entry is the
 * terminal op and needs exactly one input; every other op needs a known kind; inputs must name
 * ops of the Definition with an index in range; mount, file-action, merge, diff and build
 * indexes must be in range; the graph must be acyclic (checked iteratively: a chain of a million
 * ops must not exhaust the stack). Finally each op is re-marshalled canonically with its input
 * digests replaced by the inputs' canonical digests, bottom-up, as BuildKit's recomputeDigests
 * does, so a non-canonical encoder yields the same vertex identity as BuildKit would compute.
 */
#include "base/map.h"
#include "llb/llb_internal.h"

#include "base/base.h"

struct kiln_llb_graph {
    Pb__Definition *def;
    kiln_llb_node *nodes; /* distinct ops in def order; the terminal op last */
    bool *taken;          /* per node: op handed over by kiln_llb_graph_take_op */
    size_t n;
    kiln_map by_digest; /* digest -> kiln_llb_node *, terminal excluded */
};

void
kiln_llb_graph_free(kiln_llb_graph *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++) {
        if (g->nodes[i].op && !(g->taken && g->taken[i]))
            protobuf_c_message_free_unpacked(&g->nodes[i].op->base, NULL);
        free(g->nodes[i].inputs);
    }
    free(g->nodes);
    free(g->taken);
    kiln_map_dispose(&g->by_digest, NULL);
    if (g->def)
        protobuf_c_message_free_unpacked(&g->def->base, NULL);
    free(g);
}

const char *
kiln_llb_op_kind(const Pb__Op *op)
{
    switch (op->op_case) {
    case PB__OP__OP_EXEC:
        return "exec";
    case PB__OP__OP_SOURCE:
        return "source";
    case PB__OP__OP_FILE:
        return "file";
    case PB__OP__OP_BUILD:
        return "build";
    case PB__OP__OP_MERGE:
        return "merge";
    case PB__OP__OP_DIFF:
        return "diff";
    case PB__OP__OP_PASSTHROUGH:
        return "passthrough";
    case PB__OP__OP__NOT_SET:
    case _PB__OP__OP__CASE_IS_INT_SIZE:
        break;
    }
    return "terminal";
}

/* Secret and ssh mounts neither read an input nor produce an output: BuildKit ignores their
 * input and output fields (its Go client leaves them at 0). */
static bool
mount_has_no_io(const Pb__Mount *m)
{
    return m->mounttype == PB__MOUNT_TYPE__SECRET || m->mounttype == PB__MOUNT_TYPE__SSH;
}

/* How many outputs an op has (input indexes pointing at it must be below this). */
static int64_t
op_outputs(const Pb__Op *op)
{
    int64_t n = 0;

    switch (op->op_case) {
    case PB__OP__OP_EXEC:
        for (size_t i = 0; i < op->exec->n_mounts; i++) {
            const Pb__Mount *m = op->exec->mounts[i];
            if (!mount_has_no_io(m))
                n = m->output >= n ? m->output + 1 : n;
        }
        return n;
    case PB__OP__OP_FILE:
        for (size_t i = 0; i < op->file->n_actions; i++)
            n = op->file->actions[i]->output >= n ? op->file->actions[i]->output + 1 : n;
        return n;
    case PB__OP__OP_PASSTHROUGH:
        return op->passthrough->n_outputs ? (int64_t)op->passthrough->n_outputs : 1;
    case PB__OP__OP_SOURCE:
    case PB__OP__OP_BUILD:
    case PB__OP__OP_MERGE:
    case PB__OP__OP_DIFF:
    case PB__OP__OP__NOT_SET:
    case _PB__OP__OP__CASE_IS_INT_SIZE:
        break;
    }
    return 1;
}

static int
check_index(int64_t idx, int64_t lo, int64_t hi, const char *what, size_t pos, kiln_error **err)
{
    if (idx < lo || idx >= hi)
        return kiln_error_set(err, KILN_EINVAL,
                              "%s %zu: input index %lld out of range [%lld, %lld)", what, pos,
                              (long long)idx, (long long)lo, (long long)hi);
    return 0;
}

static int
check_exec(const Pb__ExecOp *e, int64_t n_in, kiln_error **err)
{
    int ret;

    if (!e->meta || e->meta->n_args == 0)
        return kiln_error_set(err, KILN_EINVAL, "exec op without command arguments");
    if (e->n_mounts == 0)
        return kiln_error_set(err, KILN_EINVAL, "exec op without mounts");
    for (size_t i = 0; i < e->n_mounts; i++) {
        const Pb__Mount *m = e->mounts[i];
        if (!mount_has_no_io(m) && (ret = check_index(m->input, -1, n_in, "mount", i, err)) < 0)
            return ret;
        if (m->output < -1)
            return kiln_error_set(err, KILN_EINVAL, "mount %zu: output index %lld", i,
                                  (long long)m->output);
        if ((unsigned)m->mounttype > PB__MOUNT_TYPE__TMPFS)
            return kiln_error_set(err, KILN_EINVAL, "mount %zu: unknown mount type %d", i,
                                  (int)m->mounttype);
    }
    return 0;
}

static int
check_user(const Pb__ChownOpt *c, int64_t hi, size_t pos, kiln_error **err)
{
    const Pb__UserOpt *u[2] = {c ? c->user : NULL, c ? c->group : NULL};
    int ret;

    for (size_t i = 0; i < 2; i++) {
        if (u[i] && u[i]->user_case == PB__USER_OPT__USER_BY_NAME && u[i]->byname &&
            (ret = check_index(u[i]->byname->input, -1, hi, "file action owner", pos, err)) < 0)
            return ret;
    }
    return 0;
}

static const Pb__ChownOpt *
action_owner(const Pb__FileAction *a)
{
    switch (a->action_case) {
    case PB__FILE_ACTION__ACTION_COPY:
        return a->copy->owner;
    case PB__FILE_ACTION__ACTION_MKFILE:
        return a->mkfile->owner;
    case PB__FILE_ACTION__ACTION_MKDIR:
        return a->mkdir->owner;
    case PB__FILE_ACTION__ACTION_SYMLINK:
        return a->symlink->owner;
    case PB__FILE_ACTION__ACTION_RM:
    case PB__FILE_ACTION__ACTION__NOT_SET:
    case _PB__FILE_ACTION__ACTION__CASE_IS_INT_SIZE:
        break;
    }
    return NULL;
}

/* An action may read the op's inputs and the results of earlier actions only (no loops). */
static int
check_file(const Pb__FileOp *f, int64_t n_in, kiln_error **err)
{
    int ret;

    if (f->n_actions == 0)
        return kiln_error_set(err, KILN_EINVAL, "file op without actions");
    for (size_t i = 0; i < f->n_actions; i++) {
        const Pb__FileAction *a = f->actions[i];
        int64_t hi = n_in + (int64_t)i;
        if (a->action_case == PB__FILE_ACTION__ACTION__NOT_SET)
            return kiln_error_set(err, KILN_EINVAL, "file action %zu: no known action", i);
        if ((ret = check_index(a->input, -1, hi, "file action", i, err)) < 0 ||
            (ret = check_index(a->secondaryinput, -1, hi, "file action", i, err)) < 0 ||
            (ret = check_user(action_owner(a), hi, i, err)) < 0)
            return ret;
        if (a->output < -1)
            return kiln_error_set(err, KILN_EINVAL, "file action %zu: output index %lld", i,
                                  (long long)a->output);
    }
    return 0;
}

static int
check_op(const Pb__Op *op, kiln_error **err)
{
    int64_t n_in = (int64_t)op->n_inputs;
    int ret;

    switch (op->op_case) {
    case PB__OP__OP_EXEC:
        return check_exec(op->exec, n_in, err);
    case PB__OP__OP_FILE:
        return check_file(op->file, n_in, err);
    case PB__OP__OP_SOURCE:
        if (!op->source->identifier || !*op->source->identifier)
            return kiln_error_set(err, KILN_EINVAL, "source op without identifier");
        return 0;
    case PB__OP__OP_MERGE:
        if (op->merge->n_inputs == 0)
            return kiln_error_set(err, KILN_EINVAL, "merge op without inputs");
        for (size_t i = 0; i < op->merge->n_inputs; i++) {
            if ((ret = check_index(op->merge->inputs[i]->input, 0, n_in, "merge input", i, err)) <
                0)
                return ret;
        }
        return 0;
    case PB__OP__OP_DIFF:
        if ((op->diff->lower &&
             (ret = check_index(op->diff->lower->input, -1, n_in, "diff lower", 0, err)) < 0) ||
            (op->diff->upper &&
             (ret = check_index(op->diff->upper->input, -1, n_in, "diff upper", 0, err)) < 0))
            return ret;
        return 0;
    case PB__OP__OP_BUILD:
        for (size_t i = 0; i < op->build->n_inputs; i++) {
            const Pb__BuildInput *bi = op->build->inputs[i]->value;
            if (bi && (ret = check_index(bi->input, 0, n_in, "build input", i, err)) < 0)
                return ret;
        }
        return check_index(op->build->builder, -1, n_in, "build builder", 0, err);
    case PB__OP__OP_PASSTHROUGH:
        return 0;
    case PB__OP__OP__NOT_SET:
    case _PB__OP__OP__CASE_IS_INT_SIZE:
        break;
    }
    return kiln_error_set(err, KILN_EINVAL, "no known op kind (unknown or absent oneof `op`)");
}

/* Decode def entry i into the next node (duplicates of an earlier entry are skipped). */
static int
decode_entry(kiln_llb_graph *g, size_t i, const char *given_digest, kiln_error **err)
{
    const ProtobufCBinaryData *e = &g->def->def[i];
    bool terminal = i + 1 == g->def->n_def;
    kiln_llb_node *node = &g->nodes[g->n];
    ProtobufCMessage *msg = NULL;
    int ret;

    if (e->len > KILN_LLB_MAX_OP)
        return kiln_error_set(err, KILN_EINVAL, "op %zu: %zu bytes, over the %u-byte limit", i,
                              e->len, KILN_LLB_MAX_OP);
    if (given_digest)
        kiln_strlcpy(node->digest, given_digest, sizeof(node->digest));
    else
        kiln_llb__digest_bytes(node->digest, e->data, e->len);
    if (kiln_map_has(&g->by_digest, node->digest)) {
        if (terminal)
            return kiln_error_set(err, KILN_EINVAL, "terminal op %zu repeats op %s", i,
                                  node->digest);
        return 0;
    }
    if ((ret = kiln_llb__unpack(&msg, &pb__op__descriptor, e->data, e->len, err)) < 0)
        return kiln_error_wrap(err, "op %zu", i);
    node->op = (Pb__Op *)msg;
    node->index = i;
    node->bytes = e->data;
    node->len = e->len;
    g->n++;
    if (terminal) {
        if (node->op->n_inputs != 1)
            return kiln_error_set(err, KILN_EINVAL, "terminal op has %zu inputs, expected 1",
                                  node->op->n_inputs);
        /* BuildKit ignores a kind on the terminal op; kiln still validates it, so that no
         * consumer ever sees a half-formed op */
        if (node->op->op_case == PB__OP__OP__NOT_SET)
            return 0;
    }
    if ((ret = check_op(node->op, err)) < 0)
        return kiln_error_wrap(err, "op %zu (%s)", i, node->digest);
    if (!terminal)
        kiln_map_put(&g->by_digest, node->digest, node);
    return 0;
}

static int
resolve_node(kiln_llb_graph *g, kiln_llb_node *node, kiln_error **err)
{
    node->n_inputs = node->op->n_inputs;
    node->inputs = xcalloc(node->n_inputs + 1, sizeof(*node->inputs));
    for (size_t i = 0; i < node->n_inputs; i++) {
        const Pb__Input *in = node->op->inputs[i];
        kiln_llb_node *dep = kiln_map_get(&g->by_digest, in->digest ? in->digest : "");
        if (!dep)
            return kiln_error_set(err, KILN_EINVAL,
                                  "op %zu (%s): input %zu refers to `%s`, "
                                  "which is not in the definition",
                                  node->index, kiln_llb_op_kind(node->op), i,
                                  in->digest ? in->digest : "");
        if (in->index < 0 || in->index >= op_outputs(dep->op))
            return kiln_error_set(err, KILN_EINVAL,
                                  "op %zu (%s): input %zu: output index %lld "
                                  "out of range, %s op %s has %lld outputs",
                                  node->index, kiln_llb_op_kind(node->op), i, (long long)in->index,
                                  kiln_llb_op_kind(dep->op), dep->digest,
                                  (long long)op_outputs(dep->op));
        node->inputs[i] = dep;
    }
    return 0;
}

/* Iterative DFS from every node: reject cycles, and list nodes inputs-first in *order. */
static int
topo_sort(kiln_llb_graph *g, kiln_llb_node ***order, kiln_error **err)
{
    cleanup_free unsigned char *color = xcalloc(g->n, 1);
    cleanup_free size_t *stack = xcalloc(g->n, sizeof(size_t));
    cleanup_free size_t *next = xcalloc(g->n, sizeof(size_t));
    kiln_llb_node **out = xcalloc(g->n, sizeof(*out));
    size_t n_out = 0;

    for (size_t root = 0; root < g->n; root++) {
        size_t depth = 0;
        if (color[root])
            continue;
        stack[depth++] = root;
        color[root] = 1;
        while (depth) {
            size_t cur = stack[depth - 1];
            kiln_llb_node *node = &g->nodes[cur];
            if (next[cur] == node->n_inputs) {
                color[cur] = 2;
                out[n_out++] = node;
                depth--;
                continue;
            }
            size_t dep = (size_t)(node->inputs[next[cur]++] - g->nodes);
            if (color[dep] == 1) {
                free(out);
                return kiln_error_set(err, KILN_EINVAL,
                                      "cycle: op %zu (%s) depends on itself "
                                      "through op %zu",
                                      g->nodes[dep].index, g->nodes[dep].digest, node->index);
            }
            if (color[dep] == 0) {
                color[dep] = 1;
                stack[depth++] = dep;
            }
        }
    }
    *order = out;
    return 0;
}

/* Bottom-up: canonical bytes with the inputs' canonical digests, then their sha256. */
static void
canonical_digests(kiln_llb_node **order, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        kiln_llb_node *node = order[k];
        cleanup_free char **saved = xcalloc(node->n_inputs + 1, sizeof(char *));
        kiln_buf buf = KILN_BUF_INIT;

        for (size_t i = 0; i < node->n_inputs; i++) {
            saved[i] = node->op->inputs[i]->digest;
            node->op->inputs[i]->digest = node->inputs[i]->canonical_digest;
        }
        kiln_llb_encode(&buf, &node->op->base);
        for (size_t i = 0; i < node->n_inputs; i++)
            node->op->inputs[i]->digest = saved[i];
        kiln_llb__digest_bytes(node->canonical_digest, buf.ptr, buf.len);
        kiln_buf_dispose(&buf);
    }
}

/* Metadata and locations are keyed by the given digest; for duplicated keys the last entry wins,
 * as with Go's unmarshal of a map. */
static void
attach_metadata(kiln_llb_graph *g)
{
    const Pb__Source *src = g->def->source;
    kiln_map md = KILN_MAP_INIT, locs = KILN_MAP_INIT;

    for (size_t j = 0; j < g->def->n_metadata; j++) {
        if (g->def->metadata[j]->key)
            kiln_map_put(&md, g->def->metadata[j]->key, g->def->metadata[j]->value);
    }
    for (size_t j = 0; src && j < src->n_locations; j++) {
        if (src->locations[j]->key)
            kiln_map_put(&locs, src->locations[j]->key, src->locations[j]->value);
    }
    for (size_t i = 0; i < g->n; i++) {
        g->nodes[i].metadata = kiln_map_get(&md, g->nodes[i].digest);
        g->nodes[i].locations = kiln_map_get(&locs, g->nodes[i].digest);
    }
    kiln_map_dispose(&md, NULL);
    kiln_map_dispose(&locs, NULL);
}

static int
link_graph(kiln_llb_graph *g, kiln_error **err)
{
    cleanup_free kiln_llb_node **order = NULL;
    int ret;

    for (size_t i = 0; i < g->n; i++) {
        if ((ret = resolve_node(g, &g->nodes[i], err)) < 0)
            return ret;
    }
    if ((ret = topo_sort(g, &order, err)) < 0)
        return ret;
    canonical_digests(order, g->n);
    attach_metadata(g);
    return 0;
}

int
kiln_llb__load_with_digests(kiln_llb_graph **out, const void *data, size_t len,
                            const char *const *digests, kiln_error **err)
{
    kiln_llb_graph *g = NULL;
    ProtobufCMessage *msg = NULL;
    int ret;

    if (len > KILN_LLB_MAX_DEFINITION)
        return kiln_error_set(err, KILN_EINVAL, "definition: %zu bytes, over the %u-byte limit",
                              len, KILN_LLB_MAX_DEFINITION);
    if ((ret = kiln_llb__unpack(&msg, &pb__definition__descriptor, data, len, err)) < 0)
        return kiln_error_wrap(err, "definition");
    g = xnew(kiln_llb_graph);
    g->def = (Pb__Definition *)msg;
    kiln_map_init(&g->by_digest);
    if (g->def->n_def < 2) {
        ret = kiln_error_set(err, KILN_EINVAL,
                             "definition has %zu ops, need at least 2 "
                             "(the ops and the terminal op)",
                             g->def->n_def);
        goto fail;
    }
    g->nodes = xcalloc(g->def->n_def, sizeof(*g->nodes));
    for (size_t i = 0; i < g->def->n_def; i++) {
        if ((ret = decode_entry(g, i, digests ? digests[i] : NULL, err)) < 0)
            goto fail;
    }
    if ((ret = link_graph(g, err)) < 0)
        goto fail;
    *out = g;
    return 0;
fail:
    kiln_llb_graph_free(g);
    return ret;
}

int
kiln_llb_load(kiln_llb_graph **out, const void *data, size_t len, kiln_error **err)
{
    return kiln_llb__load_with_digests(out, data, len, NULL, err);
}

size_t
kiln_llb_graph_count(const kiln_llb_graph *g)
{
    return g->n;
}

const kiln_llb_node *
kiln_llb_graph_node(const kiln_llb_graph *g, size_t i)
{
    kiln_assert(i < g->n);
    return &g->nodes[i];
}

Pb__Op *
kiln_llb_graph_take_op(kiln_llb_graph *g, size_t i)
{
    kiln_assert(i < g->n && g->nodes[i].op);
    if (!g->taken)
        g->taken = xcalloc(g->n, sizeof(*g->taken));
    kiln_assert(!g->taken[i]);
    g->taken[i] = true;
    return g->nodes[i].op;
}

const kiln_llb_node *
kiln_llb_graph_terminal(const kiln_llb_graph *g)
{
    return &g->nodes[g->n - 1];
}

const kiln_llb_node *
kiln_llb_graph_find(const kiln_llb_graph *g, const char *digest)
{
    const kiln_llb_node *t = kiln_llb_graph_terminal(g);

    if (kiln_str_eq(t->digest, digest))
        return t;
    return kiln_map_get(&g->by_digest, digest);
}

const Pb__Definition *
kiln_llb_graph_definition(const kiln_llb_graph *g)
{
    return g->def;
}
