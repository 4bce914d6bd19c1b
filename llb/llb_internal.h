/*
 * llb_internal.h: what the llb_*.c files share: the builder arena, the vertex representation and
 * helpers of the encoder and wire checker. Never included outside llb/ (tests excepted).
 *
 * A vertex holds a protoc-c Pb__Op whose every input-index field (mount input, file action
 * input, merge/diff input, named-user input) is listed in `slots` together with a symbolic
 * reference: a position in `refs` (the states the op reads), -1 for scratch, or
 * KILN_LLB__REL(k) for "result of file action k". Op.inputs and the numeric indexes are filled in
 * at marshal time, once the digests of the inputs are known, because BuildKit dedups equal inputs
 * by digest.
 */
#ifndef KILN_LLB_LLB_INTERNAL_H
#define KILN_LLB_LLB_INTERNAL_H

#include "base/buf.h"
#include "base/map.h"
#include "base/vec.h"
#include "llb/llb.h"

#define KILN_LLB__REL(k) (-2 - (int64_t)(k))

typedef struct kiln_llb__slot {
    int64_t *field; /* points into the op */
    int64_t ref;    /* >= 0: refs index; -1: scratch; <= -2: KILN_LLB__REL(action) */
} kiln_llb__slot;

struct kiln_llb_vertex {
    kiln_llb_builder *b;
    Pb__Op op;
    kiln_llb_state *refs; /* states read by the op, arena-allocated */
    size_t n_refs;
    kiln_llb__slot *slots;
    size_t n_slots;
    bool dedup_inputs;      /* exec and file ops share an input used twice (BuildKit) */
    bool has_platform;      /* op.platform set explicitly */
    bool platform_specific; /* image sources, exec, file: the only ops given a platform */
    Pb__OpMetadata md;      /* description/caps/... as arrays of entries */
    bool has_md;            /* some metadata field was set */
    Pb__Locations locs;     /* source ranges of this vertex */
    int64_t n_outputs;      /* outputs a state may refer to */
    int64_t file_base;      /* file ops: symbolic reference of the next action's input */
    /* marshal state */
    unsigned mark; /* generation of the marshal call that visited it */
    bool on_stack;
    char digest[KILN_DIGEST_STRLEN + 1];
};

struct kiln_llb_builder {
    kiln_vec blocks;        /* arena: every allocation, freed with the builder */
    kiln_vec vertices;      /* kiln_llb_vertex *, in creation order */
    Pb__Platform *platform; /* default platform or NULL */
    Pb__SourceInfo **infos; /* registered source files */
    size_t n_infos;
    unsigned generation;
};

/* Arena: zeroed memory owned by the builder. */
void *kiln_llb__alloc(kiln_llb_builder *b, size_t n);
/* Resize an arena block (p may be NULL); new bytes are zeroed. */
void *kiln_llb__realloc(kiln_llb_builder *b, void *p, size_t old_n, size_t new_n);
/* Arena copy of s; NULL becomes "" (a proto3 string that is not written). */
char *kiln_llb__strdup(kiln_llb_builder *b, const char *s);
/* Append one pointer to an arena pointer array. */
void kiln_llb__push(kiln_llb_builder *b, void *arr_ptr, size_t *n, void *item);

/* A new vertex (op initialised, no kind yet). */
kiln_llb_vertex *kiln_llb__vertex_new(kiln_llb_builder *b);
/* Append s to v->refs and return its reference (-1, nothing appended, for scratch). */
int64_t kiln_llb__add_ref(kiln_llb_vertex *v, kiln_llb_state s);
/* Record that *field holds an input reference: the state `s` (appended to refs), or scratch. */
void kiln_llb__bind_input(kiln_llb_vertex *v, int64_t *field, kiln_llb_state s);
/* Record a raw symbolic reference (scratch or a relative action result). */
void kiln_llb__bind_raw(kiln_llb_vertex *v, int64_t *field, int64_t ref);
/* Add a map<string,string> entry (descriptor d, replacing an equal key) to the arena entry
 * array *arr_ptr of *n entries. */
void kiln_llb__set_attr(kiln_llb_builder *b, const ProtobufCMessageDescriptor *d, void *arr_ptr,
                        size_t *n, const char *key, const char *value);
/* Copy a NULL-terminated string list into arena (n_out set). */
char **kiln_llb__strv(kiln_llb_builder *b, const char *const *v, size_t *n_out);
/* A Pb__Platform copied into the arena. */
Pb__Platform *kiln_llb__platform(kiln_llb_builder *b, const kiln_llb_platform *p);

/* Encoder helpers. */
size_t kiln_llb__type_size(ProtobufCType type);
bool kiln_llb__value_is_zero(const ProtobufCFieldDescriptor *f, const void *p);
/* Length of the valid UTF-8 sequence at p (n > 0 bytes left), 0 if invalid (overlong forms and
 * surrogates included, as Go's utf8.Valid). */
size_t kiln_llb__utf8_len(const unsigned char *p, size_t n);
unsigned kiln_llb__wire_type(ProtobufCType type); /* 0 varint, 1 fixed64, 2 len, 5 fixed32 */
bool kiln_llb__is_map_entry(const ProtobufCMessageDescriptor *d);
void kiln_llb__digest_bytes(char out[KILN_DIGEST_STRLEN + 1], const void *data, size_t len);

/* Check that data is well-formed protobuf for `desc` (tags, wire types, length prefixes within
 * bounds, nesting at most KILN_LLB_MAX_DEPTH) before protobuf-c allocates anything.
 * KILN_EPARSE naming the offset and field. */
int kiln_llb__wire_check(const uint8_t *data, size_t len, const ProtobufCMessageDescriptor *desc,
                         kiln_error **err);

/* Decode with the wire check first. *out freed with protobuf_c_message_free_unpacked. */
int kiln_llb__unpack(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc,
                     const void *data, size_t len, kiln_error **err);

/* Loading with digests supplied by the caller instead of sha256 of each entry (tests use it to
 * build graphs with cycles, which real digests cannot express). digests may be NULL. */
int kiln_llb__load_with_digests(kiln_llb_graph **out, const void *data, size_t len,
                                const char *const *digests, kiln_error **err);

#endif
