/*
 * llb_marshal.c: builder graph -> Definition, as BuildKit's State.Marshal does: a post-order DFS
 * from the target appends every op after its inputs, each digest once; then a terminal op whose
 * only field is inputs = [{target digest, target output}] is appended last, its metadata carrying
 * the caps "constraints", "platform" and the meta.* caps used by any vertex.
 *
 * Input indexes are resolved here: a vertex's refs become Op.inputs (exec and file ops share an
 * input used twice, like the Go client), then every recorded slot gets its numeric index.
 */
#include "base/map.h"
#include "llb/llb_internal.h"

#include "base/base.h"

typedef struct marshal_ctx {
    kiln_llb_builder *b;
    kiln_vec defs;     /* kiln_buf *, one per emitted op */
    kiln_map seen;     /* digest -> (void *)1 */
    kiln_vec md;       /* Pb__Definition__MetadataEntry *, heap */
    kiln_vec locs;     /* Pb__Source__LocationsEntry *, heap */
    int32_t *info_map; /* builder source index -> index in this Definition, or -1 */
    kiln_vec infos;    /* Pb__SourceInfo *, in order of first use */
    size_t total;      /* bytes of ops so far */
    bool any_ignore_cache, any_description, any_export_cache;
} marshal_ctx;

static void
free_buf(void *p)
{
    kiln_buf_dispose(p);
    free(p);
}

/* Op.inputs from refs (into inputs[], entries in storage[]), and every slot's numeric value.
 * ref_to_input[r] receives the input index of refs[r]. */
static void
resolve_inputs(kiln_llb_vertex *v, Pb__Input **inputs, size_t *n_out, Pb__Input *storage,
               int64_t *ref_to_input)
{
    size_t n = 0;

    for (size_t r = 0; r < v->n_refs; r++) {
        const kiln_llb_state *s = &v->refs[r];
        size_t j = v->dedup_inputs ? 0 : n;

        while (j < n && !(strcmp(inputs[j]->digest, s->vertex->digest) == 0 &&
                          inputs[j]->index == s->output))
            j++;
        if (j == n) {
            pb__input__init(&storage[n]);
            storage[n].digest = s->vertex->digest;
            storage[n].index = s->output;
            inputs[n] = &storage[n];
            n++;
        }
        ref_to_input[r] = (int64_t)j;
    }
    for (size_t i = 0; i < v->n_slots; i++) {
        int64_t ref = v->slots[i].ref;
        *v->slots[i].field = ref >= 0    ? ref_to_input[ref]
                             : ref == -1 ? -1
                                         : (int64_t)n + (-2 - ref); /* KILN_LLB__REL */
    }
    *n_out = n;
}

static int
check_refs(const kiln_llb_vertex *v, kiln_error **err)
{
    if (v->op.op_case == PB__OP__OP_FILE && v->op.file->n_actions == 0)
        return kiln_error_set(err, KILN_EINVAL, "file op without actions");
    for (size_t r = 0; r < v->n_refs; r++) {
        const kiln_llb_state *s = &v->refs[r];
        if (s->output < 0 || s->output >= s->vertex->n_outputs)
            return kiln_error_set(err, KILN_EINVAL,
                                  "%s op: input %zu refers to output %lld of "
                                  "a %s op with %lld outputs",
                                  kiln_llb_op_kind(&v->op), r, (long long)s->output,
                                  kiln_llb_op_kind(&s->vertex->op),
                                  (long long)s->vertex->n_outputs);
    }
    return 0;
}

/* Encode v (inputs already visited) into a new kiln_buf and set v->digest. */
static int
encode_vertex(kiln_buf **out, kiln_llb_vertex *v, kiln_error **err)
{
    cleanup_free Pb__Input *storage = xcalloc(v->n_refs + 1, sizeof(Pb__Input));
    cleanup_free Pb__Input **inputs = xcalloc(v->n_refs + 1, sizeof(Pb__Input *));
    cleanup_free int64_t *map = xcalloc(v->n_refs + 1, sizeof(int64_t));
    kiln_buf *buf = xnew(kiln_buf);
    Pb__Platform *saved = v->op.platform;
    Pb__WorkerConstraints none = PB__WORKER_CONSTRAINTS__INIT;

    resolve_inputs(v, inputs, &v->op.n_inputs, storage, map);
    v->op.inputs = inputs;
    /* like the Go client: merge, diff and non-image sources carry no platform, and every op
     * carries a (possibly empty) constraints message */
    if (!v->platform_specific)
        v->op.platform = NULL;
    else if (!v->has_platform)
        v->op.platform = v->b->platform;
    if (!v->op.constraints)
        v->op.constraints = &none;
    kiln_llb_encode(buf, &v->op.base);
    if (v->op.constraints == &none)
        v->op.constraints = NULL;
    v->op.platform = saved;
    v->op.inputs = NULL;
    v->op.n_inputs = 0;
    if (buf->len > KILN_LLB_MAX_OP) {
        size_t len = buf->len;
        free_buf(buf);
        return kiln_error_set(err, KILN_EINVAL, "%s op: %zu bytes, over the %u-byte limit",
                              kiln_llb_op_kind(&v->op), len, KILN_LLB_MAX_OP);
    }
    kiln_llb__digest_bytes(v->digest, buf->ptr, buf->len);
    *out = buf;
    return 0;
}

static void
emit(marshal_ctx *c, kiln_llb_vertex *v, kiln_buf *buf)
{
    if (kiln_map_has(&c->seen, v->digest)) {
        free_buf(buf);
        return;
    }
    kiln_map_put(&c->seen, v->digest, (void *)1);
    c->total += buf->len;
    kiln_vec_push(&c->defs, buf);
    if (v->has_md) {
        Pb__Definition__MetadataEntry *e = xnew(Pb__Definition__MetadataEntry);
        pb__definition__metadata_entry__init(e);
        e->key = v->digest;
        e->value = &v->md;
        kiln_vec_push(&c->md, e);
        c->any_ignore_cache |= v->md.ignore_cache;
        c->any_description |= v->md.n_description > 0;
        c->any_export_cache |= v->md.export_cache != NULL;
    }
    /* like the Go client: every op gets a locations entry, empty or not; the source infos are
     * those referenced, numbered in order of first use */
    Pb__Source__LocationsEntry *e = xnew(Pb__Source__LocationsEntry);
    pb__source__locations_entry__init(e);
    e->key = v->digest;
    e->value = &v->locs;
    kiln_vec_push(&c->locs, e);
    for (size_t i = 0; i < v->locs.n_locations; i++) {
        int32_t idx = v->locs.locations[i]->sourceindex;
        if (c->info_map[idx] < 0) {
            c->info_map[idx] = (int32_t)c->infos.len;
            kiln_vec_push(&c->infos, c->b->infos[idx]);
        }
    }
}

static int
visit(marshal_ctx *c, kiln_llb_vertex *v, kiln_error **err)
{
    kiln_buf *buf = NULL;
    int ret;

    if (v->mark == c->b->generation) {
        if (v->on_stack)
            return kiln_error_set(err, KILN_EINVAL, "%s op depends on itself",
                                  kiln_llb_op_kind(&v->op));
        return 0;
    }
    v->mark = c->b->generation;
    v->on_stack = true;
    for (size_t r = 0; r < v->n_refs; r++) {
        if ((ret = visit(c, v->refs[r].vertex, err)) < 0) {
            v->on_stack = false;
            return ret;
        }
    }
    v->on_stack = false;
    if ((ret = check_refs(v, err)) < 0 || (ret = encode_vertex(&buf, v, err)) < 0)
        return ret;
    emit(c, v, buf);
    if (c->total > KILN_LLB_MAX_DEFINITION)
        return kiln_error_set(err, KILN_EINVAL, "definition over the %u-byte limit",
                              KILN_LLB_MAX_DEFINITION);
    return 0;
}

static void
add_cap(Pb__OpMetadata *md, Pb__OpMetadata__CapsEntry *storage, const char *cap)
{
    Pb__OpMetadata__CapsEntry *e = &storage[md->n_caps];

    pb__op_metadata__caps_entry__init(e);
    e->key = (char *)cap;
    e->value = true;
    md->caps[md->n_caps++] = e;
}

/* The terminal op (inputs = [target]) appended last, with its caps metadata. */
static void
emit_terminal(marshal_ctx *c, kiln_llb_state target, Pb__OpMetadata *md,
              Pb__OpMetadata__CapsEntry *caps, Pb__OpMetadata__CapsEntry **cap_ptrs,
              Pb__Definition__MetadataEntry *md_entry, char digest[KILN_DIGEST_STRLEN + 1])
{
    Pb__Op op = PB__OP__INIT;
    Pb__Input in = PB__INPUT__INIT;
    Pb__Input *inputs[1] = {&in};
    kiln_buf *buf = xnew(kiln_buf);

    in.digest = target.vertex->digest;
    in.index = target.output;
    op.n_inputs = 1;
    op.inputs = inputs;
    kiln_llb_encode(buf, &op.base);
    kiln_llb__digest_bytes(digest, buf->ptr, buf->len);
    kiln_vec_push(&c->defs, buf);

    pb__op_metadata__init(md);
    md->caps = cap_ptrs;
    add_cap(md, caps, "constraints");
    add_cap(md, caps, "platform");
    if (c->any_ignore_cache)
        add_cap(md, caps, "meta.ignorecache");
    if (c->any_description)
        add_cap(md, caps, "meta.description");
    if (c->any_export_cache)
        add_cap(md, caps, "meta.exportcache");
    pb__definition__metadata_entry__init(md_entry);
    md_entry->key = digest;
    md_entry->value = md;
    kiln_vec_push(&c->md, md_entry);
}

/* Switch the sourceIndex of every emitted location between builder numbering and Definition
 * numbering (back when `restore`). */
static void
renumber_locations(marshal_ctx *c, bool restore)
{
    Pb__Source__LocationsEntry *e;

    kiln_vec_foreach(&c->locs, i, e) {
        for (size_t j = 0; j < e->value->n_locations; j++) {
            Pb__Location *l = e->value->locations[j];
            if (!restore) {
                l->sourceindex = c->info_map[l->sourceindex];
                continue;
            }
            for (size_t k = 0; k < c->b->n_infos; k++) {
                if (c->info_map[k] == l->sourceindex) {
                    l->sourceindex = (int32_t)k;
                    break;
                }
            }
        }
    }
}

/* Assemble the Definition message from the emitted pieces and encode it into out. */
static void
encode_definition(kiln_buf *out, marshal_ctx *c)
{
    Pb__Definition def = PB__DEFINITION__INIT;
    Pb__Source src = PB__SOURCE__INIT;
    cleanup_free ProtobufCBinaryData *entries = xcalloc(c->defs.len, sizeof(*entries));
    kiln_buf *buf;

    kiln_vec_foreach(&c->defs, i, buf) {
        entries[i].data = (uint8_t *)buf->ptr;
        entries[i].len = buf->len;
    }
    def.n_def = c->defs.len;
    def.def = entries;
    def.n_metadata = c->md.len;
    def.metadata = (Pb__Definition__MetadataEntry **)c->md.items;
    src.n_locations = c->locs.len;
    src.locations = (Pb__Source__LocationsEntry **)c->locs.items;
    src.n_infos = c->infos.len;
    src.infos = (Pb__SourceInfo **)c->infos.items;
    def.source = &src;
    renumber_locations(c, false);
    kiln_llb_encode(out, &def.base);
    renumber_locations(c, true);
}

int
kiln_llb_marshal(kiln_buf *out, kiln_llb_builder *b, kiln_llb_state target,
                 char digest_out[KILN_DIGEST_STRLEN + 1], kiln_error **err)
{
    marshal_ctx c = {.b = b};
    Pb__OpMetadata term_md;
    Pb__OpMetadata__CapsEntry caps[5];
    Pb__OpMetadata__CapsEntry *cap_ptrs[5];
    Pb__Definition__MetadataEntry term_entry;
    char term_digest[KILN_DIGEST_STRLEN + 1];
    int ret;

    if (kiln_llb_state_is_scratch(target))
        return kiln_error_set(err, KILN_EINVAL, "cannot marshal scratch: it has no op");
    kiln_vec_init(&c.defs);
    kiln_vec_init(&c.md);
    kiln_vec_init(&c.locs);
    kiln_vec_init(&c.infos);
    c.info_map = xcalloc(b->n_infos + 1, sizeof(int32_t));
    for (size_t i = 0; i < b->n_infos; i++)
        c.info_map[i] = -1;
    kiln_map_init(&c.seen);
    b->generation++;
    ret = visit(&c, target.vertex, err);
    if (ret == 0 && (target.output < 0 || target.output >= target.vertex->n_outputs))
        ret = kiln_error_set(err, KILN_EINVAL, "target refers to output %lld of a %s op",
                             (long long)target.output, kiln_llb_op_kind(&target.vertex->op));
    if (ret == 0) {
        emit_terminal(&c, target, &term_md, caps, cap_ptrs, &term_entry, term_digest);
        /* the terminal entry is on the stack: take it out before freeing the heap entries */
        encode_definition(out, &c);
        kiln_vec_pop(&c.md);
        if (digest_out)
            memcpy(digest_out, target.vertex->digest, KILN_DIGEST_STRLEN + 1);
    }
    kiln_vec_dispose(&c.defs, free_buf);
    kiln_vec_dispose(&c.md, free);
    kiln_vec_dispose(&c.locs, free);
    kiln_vec_dispose(&c.infos, NULL);
    free(c.info_map);
    kiln_map_dispose(&c.seen, NULL);
    return ret;
}
