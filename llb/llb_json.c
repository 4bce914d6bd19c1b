/*
 * llb_json.c: the protojson mapping of ops.proto messages and the `dump-llb` output.
 *
 * The JSON follows protojson (what Go's protojson.Marshal and Python's json_format produce):
 * lowerCamelCase field names, proto3 zero values omitted, 64-bit integers as strings, enums by
 * name, bytes as standard base64, maps as objects, oneof members under their own field name. The
 * conformance test parses it back with Python's json_format. Invalid UTF-8 in strings becomes
 * U+FFFD (protojson would refuse such a message; a dump should still show it).
 */
#include "llb/llb_internal.h"

#include "base/base.h"

static json_t *message_to_json(const ProtobufCMessage *msg);

/* protoc's ToJsonName: drop '_' and upper-case the letter after it. */
static char *
json_name(const char *name)
{
    char *out = xmalloc(strlen(name) + 1), *o = out;
    bool up = false;

    for (const char *p = name; *p; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        *o++ = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        up = false;
    }
    *o = '\0';
    return out;
}

size_t
kiln_llb__utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80         ? 1
                 : (p[0] >> 5) == 6  ? 2
                 : (p[0] >> 4) == 14 ? 3
                 : (p[0] >> 3) == 30 ? 4
                                     : 0;
    uint32_t cp;

    if (len == 0 || len > n)
        return 0;
    if (len == 1)
        return 1;
    cp = p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static json_t *
json_text(const char *s, size_t n)
{
    kiln_buf b = KILN_BUF_INIT;
    json_t *j;

    for (size_t i = 0; i < n;) {
        size_t l = kiln_llb__utf8_len((const unsigned char *)s + i, n - i);
        if (l == 0) {
            kiln_buf_puts(&b, "\xef\xbf\xbd", NULL);
            i++;
            continue;
        }
        kiln_buf_put(&b, s + i, l, NULL);
        i += l;
    }
    j = json_stringn(b.ptr ? b.ptr : "", b.len);
    kiln_buf_dispose(&b);
    return j;
}

static json_t *
base64(const uint8_t *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    kiln_buf b = KILN_BUF_INIT;
    json_t *j;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        kiln_buf_put(&b, q, 4, NULL);
    }
    j = json_stringn(b.ptr ? b.ptr : "", b.len);
    kiln_buf_dispose(&b);
    return j;
}

static json_t *
value_to_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    int32_t i32;
    uint32_t u32;
    int64_t i64;
    char num[32];

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        memcpy(&i32, p, 4);
        return json_integer(i32);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        memcpy(&u32, p, 4);
        return json_integer(u32);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        memcpy(&i64, p, 8);
        snprintf(num, sizeof(num), "%lld", (long long)i64);
        return json_string(num);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        memcpy(&i64, p, 8);
        snprintf(num, sizeof(num), "%llu", (unsigned long long)(uint64_t)i64);
        return json_string(num);
    case PROTOBUF_C_TYPE_FLOAT: {
        float v;
        memcpy(&v, p, 4);
        return json_real(v);
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        memcpy(&v, p, 8);
        return json_real(v);
    }
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev;
        memcpy(&i32, p, 4);
        ev = protobuf_c_enum_descriptor_get_value(f->descriptor, i32);
        return ev ? json_string(ev->name) : json_integer(i32);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_text(s ? s : "", s ? strlen(s) : 0);
    }
    case PROTOBUF_C_TYPE_BYTES:
        return base64(((const ProtobufCBinaryData *)p)->data,
                      ((const ProtobufCBinaryData *)p)->len);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(const ProtobufCMessage *const *)p;
        return m ? message_to_json(m) : json_object();
    }
    }
    return json_null();
}

static json_t *
repeated_to_json(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *msg)
{
    size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
    const char *arr = *(char *const *)((const char *)msg + f->offset);
    size_t sz = kiln_llb__type_size(f->type);
    json_t *out;

    if (f->type == PROTOBUF_C_TYPE_MESSAGE && kiln_llb__is_map_entry(f->descriptor)) {
        out = json_object();
        for (size_t i = 0; i < n; i++) {
            const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[i];
            const ProtobufCFieldDescriptor *kv = e->descriptor->fields;
            const char *key = *(char *const *)((const char *)e + kv[0].offset);
            json_t *k = json_text(key ? key : "", key ? strlen(key) : 0);
            json_object_set_new(out, json_string_value(k),
                                value_to_json(&kv[1], (const char *)e + kv[1].offset));
            json_decref(k);
        }
        return out;
    }
    out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, value_to_json(f, arr + i * sz));
    return out;
}

static json_t *
message_to_json(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    json_t *obj = json_object();

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *p = (const char *)msg + f->offset;
        cleanup_free char *name = json_name(f->name);

        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (*(const size_t *)((const char *)msg + f->quantifier_offset))
                json_object_set_new(obj, name, repeated_to_json(f, msg));
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which;
            memcpy(&which, (const char *)msg + f->quantifier_offset, 4);
            if (which == f->id)
                json_object_set_new(obj, name, value_to_json(f, p));
        } else if (!kiln_llb__value_is_zero(f, p)) {
            json_object_set_new(obj, name, value_to_json(f, p));
        }
    }
    return obj;
}

json_t *
kiln_llb_to_json(const ProtobufCMessage *msg)
{
    return message_to_json(msg);
}
