/*
 * llb_encode.c: Go-deterministic protobuf encoding of any ops.proto message, driven by the
 * protoc-c descriptors.
 *
 * Vertex digests are sha256 over these bytes, so they must equal what Go's protobuf produces with
 * Deterministic: true (BuildKit's client and loader). protobuf-c's own packer differs in one place
 * that matters: map entries are packed as proto3 messages, so an entry with an empty value (an
 * attr "" or a cap set to false) loses its value field, where Go always writes key and value; it
 * also keeps duplicate keys and does not sort. So kiln encodes with this walker instead:
 *   - fields in field-number order (protoc-c emits descriptors sorted by number; asserted),
 *   - proto3 scalars omitted when zero, oneof members written whenever selected,
 *   - map entries sorted bytewise by key, the last duplicate winning (Go's unmarshal keeps the
 *     last), key and value always written,
 *   - repeated scalars packed, unknown fields appended in the order they were read.
 */
#include "llb/llb_internal.h"

#include "base/base.h"

static void encode_message(kiln_buf *out, const ProtobufCMessage *msg);

static void
put_varint(kiln_buf *out, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;

    while (v >= 0x80) {
        tmp[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (unsigned char)v;
    kiln_buf_put(out, tmp, n, NULL);
}

static void
put_tag(kiln_buf *out, uint32_t id, unsigned wire_type)
{
    put_varint(out, ((uint64_t)id << 3) | wire_type);
}

static void
put_fixed(kiln_buf *out, uint64_t v, size_t n)
{
    unsigned char tmp[8];

    for (size_t i = 0; i < n; i++)
        tmp[i] = (unsigned char)(v >> (8 * i));
    kiln_buf_put(out, tmp, n, NULL);
}

static void
put_len_prefixed(kiln_buf *out, const void *data, size_t len)
{
    put_varint(out, len);
    if (len)
        kiln_buf_put(out, data, len, NULL);
}

/* Size in bytes of one element of a field of this type inside a protoc-c struct. */
size_t
kiln_llb__type_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    }
    return 0;
}

static uint64_t
read_u32(const void *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t
read_u64(const void *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

/* Is the scalar at p the proto3 default (omitted when not in a oneof)? */
bool
kiln_llb__value_is_zero(const ProtobufCFieldDescriptor *f, const void *p)
{
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(char *const *)p;
        return !s || !*s;
    }
    if (f->type == PROTOBUF_C_TYPE_BYTES)
        return ((const ProtobufCBinaryData *)p)->len == 0;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(void *const *)p == NULL;
    return kiln_llb__type_size(f->type) == 8 ? read_u64(p) == 0 : read_u32(p) == 0;
}

/* Wire type used for a single (non-packed) value of this type. */
static unsigned
wire_type_of(ProtobufCType type)
{
    if (type == PROTOBUF_C_TYPE_SFIXED32 || type == PROTOBUF_C_TYPE_FIXED32 ||
        type == PROTOBUF_C_TYPE_FLOAT)
        return 5;
    if (type == PROTOBUF_C_TYPE_SFIXED64 || type == PROTOBUF_C_TYPE_FIXED64 ||
        type == PROTOBUF_C_TYPE_DOUBLE)
        return 1;
    if (type == PROTOBUF_C_TYPE_STRING || type == PROTOBUF_C_TYPE_BYTES ||
        type == PROTOBUF_C_TYPE_MESSAGE)
        return 2;
    return 0;
}

unsigned
kiln_llb__wire_type(ProtobufCType type)
{
    return wire_type_of(type);
}

/* The bare value (no tag) of a scalar, string, bytes or message. */
static void
encode_value(kiln_buf *out, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM:
        /* negative int32 and enum values are sign-extended to 10 bytes, as in Go */
        put_varint(out, (uint64_t)(int64_t)(int32_t)read_u32(p));
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_BOOL:
        put_varint(out, read_u32(p));
        break;
    case PROTOBUF_C_TYPE_SINT32: {
        int32_t v = (int32_t)read_u32(p);
        put_varint(out, (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)));
        break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
        put_varint(out, read_u64(p));
        break;
    case PROTOBUF_C_TYPE_SINT64: {
        int64_t v = (int64_t)read_u64(p);
        put_varint(out, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
        break;
    }
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        put_fixed(out, read_u32(p), 4);
        break;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        put_fixed(out, read_u64(p), 8);
        break;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        put_len_prefixed(out, s, s ? strlen(s) : 0);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = p;
        put_len_prefixed(out, bd->data, bd->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
        kiln_buf tmp = KILN_BUF_INIT;
        if (sub)
            encode_message(&tmp, sub);
        put_len_prefixed(out, tmp.ptr, tmp.len);
        kiln_buf_dispose(&tmp);
        break;
    }
    }
}

static void
encode_field(kiln_buf *out, const ProtobufCFieldDescriptor *f, const void *p)
{
    put_tag(out, f->id, wire_type_of(f->type));
    encode_value(out, f, p);
}

/* Map entries generated by protoc-c are the only nested messages in ops.proto. */
bool
kiln_llb__is_map_entry(const ProtobufCMessageDescriptor *d)
{
    size_t n = strlen(d->name);

    return n > 5 && strcmp(d->name + n - 5, "Entry") == 0 && d->n_fields == 2 &&
           d->fields[0].id == 1 && d->fields[1].id == 2 &&
           strchr(d->name + strlen(d->package_name) + 1, '.') != NULL;
}

static const char *
entry_key(const ProtobufCMessage *e)
{
    const ProtobufCFieldDescriptor *kf = &e->descriptor->fields[0];
    const char *k = *(char *const *)((const char *)e + kf->offset);

    return k ? k : "";
}

static int
entry_cmp(const void *a, const void *b)
{
    return strcmp(entry_key(a), entry_key(b));
}

/* Map: entries sorted by key; of equal keys only the last one read is written. */
static void
encode_map(kiln_buf *out, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *entries,
           size_t n)
{
    kiln_vec sorted = KILN_VEC_INIT;
    const ProtobufCMessage *e;

    /* only string keys occur in ops.proto; the sort below relies on it */
    kiln_assert(((const ProtobufCMessageDescriptor *)f->descriptor)->fields[0].type ==
                PROTOBUF_C_TYPE_STRING);
    for (size_t i = 0; i < n; i++)
        kiln_vec_push(&sorted, entries[i]);
    kiln_vec_sort(&sorted, entry_cmp); /* stable: duplicates keep their wire order */
    kiln_vec_foreach(&sorted, i, e) {
        if (i + 1 < sorted.len && strcmp(entry_key(e), entry_key(sorted.items[i + 1])) == 0)
            continue;
        kiln_buf tmp = KILN_BUF_INIT;
        const ProtobufCFieldDescriptor *kv = e->descriptor->fields;
        encode_field(&tmp, &kv[0], (const char *)e + kv[0].offset);
        encode_field(&tmp, &kv[1], (const char *)e + kv[1].offset);
        put_tag(out, f->id, 2);
        put_len_prefixed(out, tmp.ptr, tmp.len);
        kiln_buf_dispose(&tmp);
    }
    kiln_vec_dispose(&sorted, NULL);
}

static void
encode_repeated(kiln_buf *out, const ProtobufCFieldDescriptor *f, const ProtobufCMessage *msg)
{
    size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
    const char *arr = *(char *const *)((const char *)msg + f->offset);
    size_t sz = kiln_llb__type_size(f->type);
    kiln_buf packed = KILN_BUF_INIT;

    if (n == 0)
        return;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && kiln_llb__is_map_entry(f->descriptor)) {
        encode_map(out, f, (ProtobufCMessage *const *)arr, n);
        return;
    }
    if (wire_type_of(f->type) != 2) {
        /* proto3 packs repeated scalars */
        for (size_t i = 0; i < n; i++)
            encode_value(&packed, f, arr + i * sz);
        put_tag(out, f->id, 2);
        put_len_prefixed(out, packed.ptr, packed.len);
        kiln_buf_dispose(&packed);
        return;
    }
    for (size_t i = 0; i < n; i++)
        encode_field(out, f, arr + i * sz);
}

static void
encode_message(kiln_buf *out, const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *p = (const char *)msg + f->offset;

        kiln_assert(i == 0 || d->fields[i - 1].id < f->id);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            encode_repeated(out, f, msg);
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = (uint32_t)read_u32((const char *)msg + f->quantifier_offset);
            if (which == f->id &&
                !(f->type == PROTOBUF_C_TYPE_MESSAGE && *(void *const *)p == NULL))
                encode_field(out, f, p);
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                   f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING) {
            if (read_u32((const char *)msg + f->quantifier_offset))
                encode_field(out, f, p);
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (*(void *const *)p)
                encode_field(out, f, p);
        } else if (!kiln_llb__value_is_zero(f, p)) {
            encode_field(out, f, p);
        }
    }
    for (size_t i = 0; i < msg->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &msg->unknown_fields[i];
        put_tag(out, u->tag, u->wire_type);
        kiln_buf_put(out, u->data, u->len, NULL);
    }
}

void
kiln_llb_encode(kiln_buf *out, const ProtobufCMessage *msg)
{
    encode_message(out, msg);
}

void
kiln_llb__digest_bytes(char out[KILN_DIGEST_STRLEN + 1], const void *data, size_t len)
{
    kiln_sha256 h;

    kiln_sha256_buf(&h, data, len);
    kiln_digest_format(out, &h);
}
