/*
 * llb_wire.c: a strict pre-check of protobuf bytes before protobuf-c decodes them.
 *
 * protobuf-c rejects malformed input but says nothing about why, and it recurses without a depth
 * limit (Definition -> Source -> SourceInfo -> Definition ... nests without bound, so a few MiB of
 * nested length prefixes would exhaust the stack). This walker follows the descriptors, checks
 * every tag, wire type and length prefix against the bytes that remain (a huge length prefix is an
 * error, never an allocation) and caps nesting at KILN_LLB_MAX_DEPTH, with an error naming the
 * field path and byte offset.
 */
#include "llb/llb_internal.h"

#include "base/base.h"

static bool
read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < 10 && *pos < len; i++) {
        uint8_t byte = p[(*pos)++];
        if (i == 9 && byte > 1)
            return false; /* more than 64 bits */
        v |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* The wire type protobuf-c accepts for a field (2 is also fine for packed repeated scalars). */
static unsigned
expected_wire_type(const ProtobufCFieldDescriptor *f)
{
    return kiln_llb__wire_type(f->type);
}

/* Where the checker is: field names from the top message down, for error messages. */
typedef struct wire_path {
    const char *top;
    const char *names[KILN_LLB_MAX_DEPTH + 2];
    unsigned depth;
} wire_path;

/* "pb.Definition.Source.infos" (at most 6 names, then "...") into buf; returns buf. */
static const char *
path_str(char *buf, size_t size, const wire_path *p)
{
    size_t used = (size_t)snprintf(buf, size, "%s", p->top);

    for (unsigned i = 0; i < p->depth && used < size; i++) {
        if (i == 6 && p->depth > 7) {
            used += (size_t)snprintf(buf + used, size - used, "...");
            i = p->depth - 1;
            if (used >= size)
                break;
        }
        used += (size_t)snprintf(buf + used, size - used, ".%s", p->names[i]);
    }
    return buf;
}

#define PATH(p) path_str(pathbuf, sizeof(pathbuf), (p))

static int check_message(const uint8_t *data, size_t len, const ProtobufCMessageDescriptor *d,
                         wire_path *path, kiln_error **err);

/* proto3 strings must be UTF-8 (Go's decoder rejects anything else). A NUL byte is valid UTF-8
 * but protobuf-c strings are C strings that would silently end there, so it is rejected too. */
static int
check_string(const uint8_t *s, size_t len, const char *path, const char *field, size_t start,
             kiln_error **err)
{
    for (size_t i = 0; i < len;) {
        size_t l = kiln_llb__utf8_len(s + i, len - i);
        if (l == 0 || s[i] == 0)
            return kiln_error_set(err, KILN_EPARSE, "%s.%s at offset %zu: %s at byte %zu", path,
                                  field, start, l ? "NUL character" : "invalid UTF-8", i);
        i += l;
    }
    return 0;
}

static int
check_field(const uint8_t *data, size_t len, size_t *pos, const ProtobufCMessageDescriptor *d,
            wire_path *path, kiln_error **err)
{
    char pathbuf[256];
    size_t start = *pos;
    uint64_t tag, val;
    const ProtobufCFieldDescriptor *f;
    unsigned wt;
    int ret;

    if (!read_varint(data, len, pos, &tag))
        return kiln_error_set(err, KILN_EPARSE, "%s: truncated tag at offset %zu", PATH(path),
                              start);
    wt = (unsigned)(tag & 7);
    if ((tag >> 3) == 0 || (tag >> 3) > 536870911)
        return kiln_error_set(err, KILN_EPARSE, "%s: invalid field number %llu at offset %zu",
                              PATH(path), (unsigned long long)(tag >> 3), start);
    f = protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
    if (f && wt != expected_wire_type(f) &&
        !(wt == 2 && f->label == PROTOBUF_C_LABEL_REPEATED && expected_wire_type(f) != 2))
        return kiln_error_set(err, KILN_EPARSE, "%s.%s: wire type %u, expected %u (offset %zu)",
                              PATH(path), f->name, wt, expected_wire_type(f), start);
    switch (wt) {
    case 0:
        if (!read_varint(data, len, pos, &val))
            return kiln_error_set(err, KILN_EPARSE, "%s: truncated varint at offset %zu",
                                  PATH(path), start);
        return 0;
    case 1:
    case 5:
        if (len - *pos < (wt == 1 ? 8u : 4u))
            return kiln_error_set(err, KILN_EPARSE, "%s: truncated fixed field at offset %zu",
                                  PATH(path), start);
        *pos += wt == 1 ? 8 : 4;
        return 0;
    case 2:
        if (!read_varint(data, len, pos, &val))
            return kiln_error_set(err, KILN_EPARSE, "%s: truncated length at offset %zu",
                                  PATH(path), start);
        if (val > len - *pos)
            return kiln_error_set(err, KILN_EPARSE,
                                  "%s: length %llu at offset %zu exceeds the %zu bytes left",
                                  PATH(path), (unsigned long long)val, start, len - *pos);
        if (f && f->type == PROTOBUF_C_TYPE_STRING &&
            (ret = check_string(data + *pos, (size_t)val, PATH(path), f->name, start, err)) < 0)
            return ret;
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
            path->names[path->depth++] = f->name;
            ret = check_message(data + *pos, (size_t)val, f->descriptor, path, err);
            path->depth--;
            if (ret < 0)
                return ret;
        }
        *pos += (size_t)val;
        return 0;
    default:
        return kiln_error_set(err, KILN_EPARSE, "%s: unsupported wire type %u at offset %zu",
                              PATH(path), wt, start);
    }
}

static int
check_message(const uint8_t *data, size_t len, const ProtobufCMessageDescriptor *d, wire_path *path,
              kiln_error **err)
{
    char pathbuf[256];
    size_t pos = 0;
    int ret;

    if (path->depth > KILN_LLB_MAX_DEPTH)
        return kiln_error_set(err, KILN_EPARSE, "%s: messages nested deeper than %d", PATH(path),
                              KILN_LLB_MAX_DEPTH);
    while (pos < len) {
        if ((ret = check_field(data, len, &pos, d, path, err)) < 0)
            return ret;
    }
    return 0;
}

int
kiln_llb__wire_check(const uint8_t *data, size_t len, const ProtobufCMessageDescriptor *desc,
                     kiln_error **err)
{
    wire_path path = {.top = desc->name};

    return check_message(data, len, desc, &path, err);
}

/*
 * Normalisation. protobuf-c merges a singular message field that occurs twice, as protobuf
 * requires, but not a oneof member: a second `file` in an Op replaces the first instead of merging
 * into it (Go merges; found by the conformance test). So before decoding, each message is
 * rewritten with the trailing run of occurrences of a oneof's last member merged into one field
 * (payloads concatenated, which is protobuf's merge) and earlier members dropped, as Go's decoder
 * would leave them. Other fields are copied, nested messages normalised recursively. Input must
 * have passed the wire check.
 */
typedef struct occ {
    size_t start, end;   /* whole field */
    size_t pstart, plen; /* payload of a length-delimited field */
    const ProtobufCFieldDescriptor *f;
    unsigned wt;
    int role;       /* oneofs: 0 not a oneof, 1 last member, 2 merged into the last, 3 dropped */
    unsigned group; /* which oneof of the message (roles 1 and 2) */
} occ;

#define MAX_ONEOFS 8 /* per message; ops.proto has at most one */

static void normalize(const uint8_t *d, size_t len, const ProtobufCMessageDescriptor *desc,
                      kiln_buf *out);

static size_t
scan_fields(const uint8_t *d, size_t len, const ProtobufCMessageDescriptor *desc, occ **out)
{
    size_t n = 0, cap = 0, pos = 0;
    occ *v = NULL;

    while (pos < len) {
        occ o = {.start = pos};
        uint64_t tag = 0, val = 0;
        read_varint(d, len, &pos, &tag);
        o.wt = (unsigned)(tag & 7);
        o.f = protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3));
        if (o.wt == 0)
            read_varint(d, len, &pos, &val);
        else if (o.wt == 1 || o.wt == 5)
            pos += o.wt == 1 ? 8 : 4;
        else {
            read_varint(d, len, &pos, &val);
            o.pstart = pos;
            o.plen = (size_t)val;
            pos += (size_t)val;
        }
        o.end = pos;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            v = xreallocarray(v, cap, sizeof(*v));
        }
        v[n++] = o;
    }
    *out = v;
    return n;
}

/* Mark oneof occurrences walking backwards: the last one of each oneof wins; earlier ones of the
 * same member, with no other member in between, merge into it. */
static void
mark_oneofs(occ *v, size_t n)
{
    unsigned groups[MAX_ONEOFS], members[MAX_ONEOFS];
    bool open[MAX_ONEOFS];
    size_t n_groups = 0;

    for (size_t i = n; i-- > 0;) {
        size_t g = 0;
        if (!v[i].f || !(v[i].f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        while (g < n_groups && groups[g] != v[i].f->quantifier_offset)
            g++;
        if (g == n_groups) {
            if (n_groups == MAX_ONEOFS)
                continue; /* left to protobuf-c: the last occurrence wins */
            groups[n_groups] = v[i].f->quantifier_offset;
            members[n_groups] = v[i].f->id;
            open[n_groups++] = true;
            v[i].role = 1;
            v[i].group = (unsigned)g;
        } else if (open[g] && members[g] == v[i].f->id && v[i].f->type == PROTOBUF_C_TYPE_MESSAGE) {
            v[i].role = 2;
            v[i].group = (unsigned)g;
        } else {
            open[g] = false;
            v[i].role = 3;
        }
    }
}

static void
put_field(kiln_buf *out, const uint8_t *d, const occ *o, const void *payload, size_t plen)
{
    uint8_t tmp[10];
    size_t n = 0;
    uint64_t v = plen;

    /* the tag bytes are copied as they were; the length is re-encoded */
    size_t tag_len = 0;
    uint64_t tag;
    read_varint(d + o->start, o->end - o->start, &tag_len, &tag);
    kiln_buf_put(out, d + o->start, tag_len, NULL);
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    kiln_buf_put(out, tmp, n, NULL);
    if (plen)
        kiln_buf_put(out, payload, plen, NULL);
}

static void
normalize(const uint8_t *d, size_t len, const ProtobufCMessageDescriptor *desc, kiln_buf *out)
{
    cleanup_free occ *v = NULL;
    size_t n = scan_fields(d, len, desc, &v);
    kiln_buf pending[MAX_ONEOFS]; /* per oneof: payloads merging into its role-1 occurrence */

    for (size_t g = 0; g < MAX_ONEOFS; g++)
        kiln_buf_init(&pending[g], 0);
    mark_oneofs(v, n);
    for (size_t i = 0; i < n; i++) {
        const occ *o = &v[i];
        kiln_buf sub = KILN_BUF_INIT;
        kiln_buf *payload = &pending[o->group];

        if (o->role == 3)
            continue;
        if (o->role == 2) {
            kiln_buf_put(payload, d + o->pstart, o->plen, NULL);
            continue;
        }
        if (!o->f || o->f->type != PROTOBUF_C_TYPE_MESSAGE || o->wt != 2) {
            kiln_buf_put(out, d + o->start, o->end - o->start, NULL);
            continue;
        }
        if (o->role == 0) {
            normalize(d + o->pstart, o->plen, o->f->descriptor, &sub);
        } else {
            kiln_buf_put(payload, d + o->pstart, o->plen, NULL);
            normalize((const uint8_t *)payload->ptr, payload->len, o->f->descriptor, &sub);
        }
        put_field(out, d, o, sub.ptr, sub.len);
        kiln_buf_dispose(&sub);
    }
    for (size_t g = 0; g < MAX_ONEOFS; g++)
        kiln_buf_dispose(&pending[g]);
}

int
kiln_llb__unpack(ProtobufCMessage **out, const ProtobufCMessageDescriptor *desc, const void *data,
                 size_t len, kiln_error **err)
{
    kiln_buf norm = KILN_BUF_INIT;
    ProtobufCMessage *msg;
    int ret;

    if ((ret = kiln_llb__wire_check(data, len, desc, err)) < 0)
        return ret;
    normalize(data, len, desc, &norm);
    msg = protobuf_c_message_unpack(desc, NULL, norm.len, (const uint8_t *)norm.ptr);
    kiln_buf_dispose(&norm);
    if (!msg)
        return kiln_error_set(err, KILN_EPARSE, "malformed %s message", desc->name);
    *out = msg;
    return 0;
}
