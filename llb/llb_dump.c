/*
 * llb_dump.c: `kiln debug dump-llb` output for a loaded graph: one JSON object per vertex and
 * line, shaped like `buildctl debug dump-llb` ({"Op": ..., "Digest": ..., "OpMetadata": ...},
 * with Op and OpMetadata in the protojson mapping, plus "CanonicalDigest" when the op's bytes were
 * not canonical), or a readable text listing.
 */
#include "llb/llb_internal.h"

#include "base/base.h"

static void
print_strings(FILE *out, const char *label, char **v, size_t n)
{
    if (n == 0)
        return;
    fprintf(out, "  %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(out, " %s", v[i]);
    fputc('\n', out);
}

static const char *
enum_name(const ProtobufCEnumDescriptor *d, int v)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);

    return ev ? ev->name : "?";
}

static void
dump_exec(FILE *out, const Pb__ExecOp *e)
{
    const Pb__Meta *m = e->meta;

    print_strings(out, "args", m->args, m->n_args);
    print_strings(out, "env", m->env, m->n_env);
    if (m->cwd && *m->cwd)
        fprintf(out, "  cwd: %s\n", m->cwd);
    if (m->user && *m->user)
        fprintf(out, "  user: %s\n", m->user);
    if (e->network)
        fprintf(out, "  network: %s\n", enum_name(&pb__net_mode__descriptor, e->network));
    if (e->security)
        fprintf(out, "  security: %s\n", enum_name(&pb__security_mode__descriptor, e->security));
    for (size_t i = 0; i < e->n_mounts; i++) {
        const Pb__Mount *mt = e->mounts[i];
        fprintf(out, "  mount %s: %s input=%lld output=%lld%s%s%s\n", mt->dest,
                enum_name(&pb__mount_type__descriptor, mt->mounttype), (long long)mt->input,
                (long long)mt->output, mt->readonly ? " readonly" : "",
                mt->selector && *mt->selector ? " selector=" : "",
                mt->selector ? mt->selector : "");
    }
}

static void
dump_file(FILE *out, const Pb__FileOp *f)
{
    for (size_t i = 0; i < f->n_actions; i++) {
        const Pb__FileAction *a = f->actions[i];
        fprintf(out, "  action %zu (input=%lld secondary=%lld output=%lld): ", i,
                (long long)a->input, (long long)a->secondaryinput, (long long)a->output);
        switch (a->action_case) {
        case PB__FILE_ACTION__ACTION_COPY:
            fprintf(out, "copy %s -> %s\n", a->copy->src, a->copy->dest);
            break;
        case PB__FILE_ACTION__ACTION_MKFILE:
            fprintf(out, "mkfile %s (%zu bytes, mode %o)\n", a->mkfile->path, a->mkfile->data.len,
                    (unsigned)a->mkfile->mode);
            break;
        case PB__FILE_ACTION__ACTION_MKDIR:
            fprintf(out, "mkdir %s (mode %o)\n", a->mkdir->path, (unsigned)a->mkdir->mode);
            break;
        case PB__FILE_ACTION__ACTION_RM:
            fprintf(out, "rm %s\n", a->rm->path);
            break;
        case PB__FILE_ACTION__ACTION_SYMLINK:
            fprintf(out, "symlink %s -> %s\n", a->symlink->newpath, a->symlink->oldpath);
            break;
        case PB__FILE_ACTION__ACTION__NOT_SET:
        case _PB__FILE_ACTION__ACTION__CASE_IS_INT_SIZE:
            fprintf(out, "?\n");
            break;
        }
    }
}

static void
dump_op_body(FILE *out, const Pb__Op *op)
{
    switch (op->op_case) {
    case PB__OP__OP_SOURCE:
        fprintf(out, "  identifier: %s\n", op->source->identifier);
        for (size_t i = 0; i < op->source->n_attrs; i++)
            fprintf(out, "  attr %s=%s\n", op->source->attrs[i]->key, op->source->attrs[i]->value);
        break;
    case PB__OP__OP_EXEC:
        dump_exec(out, op->exec);
        break;
    case PB__OP__OP_FILE:
        dump_file(out, op->file);
        break;
    case PB__OP__OP_MERGE:
        for (size_t i = 0; i < op->merge->n_inputs; i++)
            fprintf(out, "  merge input %lld\n", (long long)op->merge->inputs[i]->input);
        break;
    case PB__OP__OP_DIFF:
        fprintf(out, "  lower=%lld upper=%lld\n",
                op->diff->lower ? (long long)op->diff->lower->input : -1LL,
                op->diff->upper ? (long long)op->diff->upper->input : -1LL);
        break;
    case PB__OP__OP_BUILD:
    case PB__OP__OP_PASSTHROUGH:
    case PB__OP__OP__NOT_SET:
    case _PB__OP__OP__CASE_IS_INT_SIZE:
        break;
    }
}

static void
dump_text_node(FILE *out, const kiln_llb_node *n)
{
    const Pb__Op *op = n->op;

    fprintf(out, "%s %s\n", n->digest, kiln_llb_op_kind(op));
    if (strcmp(n->digest, n->canonical_digest) != 0)
        fprintf(out, "  canonical digest: %s\n", n->canonical_digest);
    if (op->platform)
        fprintf(out, "  platform: %s/%s%s%s\n", op->platform->os, op->platform->architecture,
                op->platform->variant && *op->platform->variant ? "/" : "",
                op->platform->variant ? op->platform->variant : "");
    dump_op_body(out, op);
    for (size_t i = 0; i < n->n_inputs; i++)
        fprintf(out, "  input %zu: %s [%lld]\n", i, n->inputs[i]->digest,
                (long long)op->inputs[i]->index);
    for (size_t i = 0; n->metadata && i < n->metadata->n_description; i++)
        fprintf(out, "  description %s=%s\n", n->metadata->description[i]->key,
                n->metadata->description[i]->value);
}

static int
dump_json_node(FILE *out, const kiln_llb_node *n)
{
    json_t *obj = json_object();
    char *line;
    int rc;

    json_object_set_new(obj, "Op", kiln_llb_to_json(&n->op->base));
    json_object_set_new(obj, "Digest", json_string(n->digest));
    /* kiln's addition: the digest BuildKit's loader uses, when the given bytes are not canonical */
    if (strcmp(n->digest, n->canonical_digest) != 0)
        json_object_set_new(obj, "CanonicalDigest", json_string(n->canonical_digest));
    json_object_set_new(obj, "OpMetadata",
                        n->metadata ? kiln_llb_to_json(&n->metadata->base) : json_object());
    line = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    rc = fprintf(out, "%s\n", line);
    free(line);
    return rc;
}

int
kiln_llb_dump(FILE *out, const kiln_llb_graph *g, bool json, kiln_error **err)
{
    for (size_t i = 0; i < kiln_llb_graph_count(g); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(g, i);
        if (json) {
            if (dump_json_node(out, n) < 0)
                return kiln_error_errno(err, errno, "write dump");
        } else {
            dump_text_node(out, n);
        }
    }
    if (fflush(out) != 0 || ferror(out))
        return kiln_error_errno(err, errno, "write dump");
    return 0;
}
