/*
 * llb_builder.c: the LLB builder arena, source ops, merge/diff ops and per-vertex metadata.
 *
 * Everything a builder creates (vertices, protoc-c structs, strings) lives in one arena freed by
 * kiln_llb_builder_free, so callers never free individual pieces. Ops are built directly as
 * protoc-c structs and encoded by llb_encode.c at marshal time. Exec and file ops are in
 * llb_exec.c and llb_file.c; the marshalling walk in llb_marshal.c.
 */
#include <stddef.h>

#include "base/vec.h"
#include "llb/llb_internal.h"

#include "base/base.h"

/* Arena blocks carry their slot number so that realloc can update the arena in O(1). */
typedef union arena_hdr {
    size_t idx;
    max_align_t align;
} arena_hdr;

void *
kiln_llb__alloc(kiln_llb_builder *b, size_t n)
{
    arena_hdr *h = xzalloc(sizeof(*h) + n);

    h->idx = b->blocks.len;
    kiln_vec_push(&b->blocks, h);
    return h + 1;
}

void *
kiln_llb__realloc(kiln_llb_builder *b, void *p, size_t old_n, size_t new_n)
{
    arena_hdr *h;

    if (!p)
        return kiln_llb__alloc(b, new_n);
    h = xrealloc((arena_hdr *)p - 1, sizeof(*h) + new_n);
    if (new_n > old_n)
        memset((char *)(h + 1) + old_n, 0, new_n - old_n);
    b->blocks.items[h->idx] = h;
    return h + 1;
}

char *
kiln_llb__strdup(kiln_llb_builder *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *c = kiln_llb__alloc(b, n + 1);

    if (n)
        memcpy(c, s, n);
    return c;
}

void
kiln_llb__push(kiln_llb_builder *b, void *arr_ptr, size_t *n, void *item)
{
    void ***arr = arr_ptr;

    *arr = kiln_llb__realloc(b, *arr, *n * sizeof(void *), (*n + 1) * sizeof(void *));
    (*arr)[(*n)++] = item;
}

char **
kiln_llb__strv(kiln_llb_builder *b, const char *const *v, size_t *n_out)
{
    char **out = NULL;

    *n_out = 0;
    for (size_t i = 0; v && v[i]; i++)
        kiln_llb__push(b, &out, n_out, kiln_llb__strdup(b, v[i]));
    return out;
}

void
kiln_llb_builder_new(kiln_llb_builder **out)
{
    kiln_llb_builder *b = xnew(kiln_llb_builder);

    kiln_vec_init(&b->blocks);
    kiln_vec_init(&b->vertices);
    *out = b;
}

void
kiln_llb_builder_free(kiln_llb_builder *b)
{
    if (!b)
        return;
    kiln_vec_dispose(&b->blocks, free);
    kiln_vec_dispose(&b->vertices, NULL);
    free(b);
}

Pb__Platform *
kiln_llb__platform(kiln_llb_builder *b, const kiln_llb_platform *p)
{
    Pb__Platform *pl = kiln_llb__alloc(b, sizeof(*pl));

    pb__platform__init(pl);
    pl->os = kiln_llb__strdup(b, p->os);
    pl->architecture = kiln_llb__strdup(b, p->architecture);
    pl->variant = kiln_llb__strdup(b, p->variant);
    pl->osversion = kiln_llb__strdup(b, p->os_version);
    return pl;
}

void
kiln_llb_builder_set_platform(kiln_llb_builder *b, const kiln_llb_platform *p)
{
    b->platform = p ? kiln_llb__platform(b, p) : NULL;
}

bool
kiln_llb_state_is_scratch(kiln_llb_state s)
{
    return s.vertex == NULL;
}

kiln_llb_vertex *
kiln_llb__vertex_new(kiln_llb_builder *b)
{
    kiln_llb_vertex *v = kiln_llb__alloc(b, sizeof(*v));

    v->b = b;
    pb__op__init(&v->op);
    pb__op_metadata__init(&v->md);
    pb__locations__init(&v->locs);
    v->n_outputs = 1;
    kiln_vec_push(&b->vertices, v);
    return v;
}

void
kiln_llb__bind_raw(kiln_llb_vertex *v, int64_t *field, int64_t ref)
{
    v->slots = kiln_llb__realloc(v->b, v->slots, v->n_slots * sizeof(*v->slots),
                                 (v->n_slots + 1) * sizeof(*v->slots));
    v->slots[v->n_slots].field = field;
    v->slots[v->n_slots].ref = ref;
    v->n_slots++;
    *field = ref < 0 ? ref : 0;
}

int64_t
kiln_llb__add_ref(kiln_llb_vertex *v, kiln_llb_state s)
{
    if (kiln_llb_state_is_scratch(s))
        return -1;
    /* states are arena pointers: mixing builders is a caller bug, not bad input */
    kiln_assert(s.vertex->b == v->b);
    v->refs = kiln_llb__realloc(v->b, v->refs, v->n_refs * sizeof(*v->refs),
                                (v->n_refs + 1) * sizeof(*v->refs));
    v->refs[v->n_refs] = s;
    return (int64_t)v->n_refs++;
}

void
kiln_llb__bind_input(kiln_llb_vertex *v, int64_t *field, kiln_llb_state s)
{
    kiln_llb__bind_raw(v, field, kiln_llb__add_ref(v, s));
}

/* Every map<string,string> entry struct of ops.proto has this layout. */
typedef struct str_entry {
    ProtobufCMessage base;
    char *key;
    char *value;
} str_entry;

void
kiln_llb__set_attr(kiln_llb_builder *b, const ProtobufCMessageDescriptor *d, void *arr_ptr,
                   size_t *n, const char *key, const char *value)
{
    str_entry ***arr = arr_ptr;
    str_entry *e;

    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*arr)[i]->key, key) == 0) {
            (*arr)[i]->value = kiln_llb__strdup(b, value);
            return;
        }
    }
    kiln_assert(d->sizeof_message == sizeof(str_entry));
    e = kiln_llb__alloc(b, sizeof(*e));
    protobuf_c_message_init(d, e);
    e->key = kiln_llb__strdup(b, key);
    e->value = kiln_llb__strdup(b, value);
    kiln_llb__push(b, arr, n, e);
}

/* ---- metadata ---- */

void
kiln_llb_vertex_set_description(kiln_llb_vertex *v, const char *key, const char *value)
{
    kiln_llb__set_attr(v->b, &pb__op_metadata__description_entry__descriptor, &v->md.description,
                       &v->md.n_description, key, value);
    v->has_md = true;
}

void
kiln_llb_vertex_set_custom_name(kiln_llb_vertex *v, const char *name)
{
    kiln_llb_vertex_set_description(v, KILN_LLB_CUSTOM_NAME, name);
}

void
kiln_llb_vertex_set_ignore_cache(kiln_llb_vertex *v, bool ignore)
{
    v->md.ignore_cache = ignore;
    v->has_md = true;
}

void
kiln_llb_vertex_set_export_cache(kiln_llb_vertex *v, bool export_cache)
{
    v->md.export_cache = kiln_llb__alloc(v->b, sizeof(*v->md.export_cache));
    pb__export_cache__init(v->md.export_cache);
    v->md.export_cache->value = export_cache;
    v->has_md = true;
}

void
kiln_llb_vertex_set_progress_group(kiln_llb_vertex *v, const char *id, const char *name, bool weak)
{
    Pb__ProgressGroup *pg = kiln_llb__alloc(v->b, sizeof(*pg));

    pb__progress_group__init(pg);
    pg->id = kiln_llb__strdup(v->b, id);
    pg->name = kiln_llb__strdup(v->b, name);
    pg->weak = weak;
    v->md.progress_group = pg;
    v->has_md = true;
}

void
kiln_llb_vertex_add_cap(kiln_llb_vertex *v, const char *cap)
{
    Pb__OpMetadata__CapsEntry *e;

    for (size_t i = 0; i < v->md.n_caps; i++) {
        if (strcmp(v->md.caps[i]->key, cap) == 0)
            return;
    }
    e = kiln_llb__alloc(v->b, sizeof(*e));
    pb__op_metadata__caps_entry__init(e);
    e->key = kiln_llb__strdup(v->b, cap);
    e->value = true;
    kiln_llb__push(v->b, &v->md.caps, &v->md.n_caps, e);
    v->has_md = true;
}

void
kiln_llb_vertex_set_platform(kiln_llb_vertex *v, const kiln_llb_platform *p)
{
    v->op.platform = p ? kiln_llb__platform(v->b, p) : NULL;
    v->has_platform = true;
}

void
kiln_llb_vertex_add_constraint(kiln_llb_vertex *v, const char *filter)
{
    if (!v->op.constraints) {
        v->op.constraints = kiln_llb__alloc(v->b, sizeof(*v->op.constraints));
        pb__worker_constraints__init(v->op.constraints);
    }
    kiln_llb__push(v->b, &v->op.constraints->filter, &v->op.constraints->n_filter,
                   kiln_llb__strdup(v->b, filter));
}

void
kiln_llb_builder_add_source(int32_t *index_out, kiln_llb_builder *b, const char *filename,
                            const void *data, size_t len, const char *language)
{
    Pb__SourceInfo *si = kiln_llb__alloc(b, sizeof(*si));

    pb__source_info__init(si);
    si->filename = kiln_llb__strdup(b, filename);
    si->language = kiln_llb__strdup(b, language);
    if (len) {
        si->data.data = kiln_llb__alloc(b, len);
        memcpy(si->data.data, data, len);
        si->data.len = len;
    }
    *index_out = (int32_t)b->n_infos;
    kiln_llb__push(b, &b->infos, &b->n_infos, si);
}

static Pb__Position *
new_position(kiln_llb_builder *b, int32_t line, int32_t character)
{
    Pb__Position *p = kiln_llb__alloc(b, sizeof(*p));

    pb__position__init(p);
    p->line = line;
    p->character = character;
    return p;
}

int
kiln_llb_vertex_add_location(kiln_llb_vertex *v, int32_t index, const kiln_llb_range *ranges,
                             size_t n, kiln_error **err)
{
    Pb__Location *loc;

    if (index < 0 || (size_t)index >= v->b->n_infos)
        return kiln_error_set(err, KILN_EINVAL, "source index %d is not registered", index);
    loc = kiln_llb__alloc(v->b, sizeof(*loc));
    pb__location__init(loc);
    loc->sourceindex = index;
    for (size_t i = 0; i < n; i++) {
        Pb__Range *r = kiln_llb__alloc(v->b, sizeof(*r));
        pb__range__init(r);
        r->start = new_position(v->b, ranges[i].start_line, ranges[i].start_char);
        r->end = new_position(v->b, ranges[i].end_line, ranges[i].end_char);
        kiln_llb__push(v->b, &loc->ranges, &loc->n_ranges, r);
    }
    kiln_llb__push(v->b, &v->locs.locations, &v->locs.n_locations, loc);
    return 0;
}

/* ---- merge and diff ---- */

void
kiln_llb_merge(kiln_llb_state *out, kiln_llb_builder *b, const kiln_llb_state *inputs, size_t n)
{
    size_t live = 0, last = 0;
    kiln_llb_vertex *v;
    Pb__MergeOp *m;

    for (size_t i = 0; i < n; i++) {
        if (!kiln_llb_state_is_scratch(inputs[i])) {
            live++;
            last = i;
        }
    }
    if (live <= 1) {
        *out = live ? inputs[last] : KILN_LLB_SCRATCH;
        return;
    }
    v = kiln_llb__vertex_new(b);
    m = kiln_llb__alloc(b, sizeof(*m));
    pb__merge_op__init(m);
    for (size_t i = 0; i < n; i++) {
        Pb__MergeInput *mi;
        if (kiln_llb_state_is_scratch(inputs[i]))
            continue;
        mi = kiln_llb__alloc(b, sizeof(*mi));
        pb__merge_input__init(mi);
        kiln_llb__push(b, &m->inputs, &m->n_inputs, mi);
        kiln_llb__bind_input(v, &mi->input, inputs[i]);
    }
    v->op.op_case = PB__OP__OP_MERGE;
    v->op.merge = m;
    kiln_llb_vertex_add_cap(v, "mergeop");
    *out = (kiln_llb_state){v, 0};
}

void
kiln_llb_diff(kiln_llb_state *out, kiln_llb_builder *b, kiln_llb_state lower, kiln_llb_state upper)
{
    kiln_llb_vertex *v = kiln_llb__vertex_new(b);
    Pb__DiffOp *d = kiln_llb__alloc(b, sizeof(*d));

    pb__diff_op__init(d);
    d->lower = kiln_llb__alloc(b, sizeof(*d->lower));
    pb__lower_diff_input__init(d->lower);
    d->upper = kiln_llb__alloc(b, sizeof(*d->upper));
    pb__upper_diff_input__init(d->upper);
    kiln_llb__bind_input(v, &d->lower->input, lower);
    kiln_llb__bind_input(v, &d->upper->input, upper);
    v->op.op_case = PB__OP__OP_DIFF;
    v->op.diff = d;
    kiln_llb_vertex_add_cap(v, "diffop");
    *out = (kiln_llb_state){v, 0};
}
