/*
 * df_json.c: the JSON decoding behind exec-form instructions (`RUN ["a", "b"]`), matching Go's
 * encoding/json as BuildKit uses it: json.Decoder reads the first value and ignores what follows;
 * any syntax error (or a number out of float64 range) means "not JSON", so the instruction falls
 * back to shell form; a well-formed array holding anything but strings is an error. Invalid UTF-8
 * in strings becomes U+FFFD and lone surrogates too, as Go does. "\\u0000" decodes to a NUL byte,
 * which the node keeps (with its length) so that the dump can show it.
 *
 * The scanner is iterative with an explicit container stack (Go's nesting limit of 10000), so
 * hostile input cannot exhaust the C stack.
 */
#include <math.h>

#include "base/base.h"
#include "base/buf.h"
#include "frontends/dockerfile/df_internal.h"

#define JSON_MAX_DEPTH 10000

typedef struct jscan {
    const char *s;
    size_t len;
    size_t pos;
} jscan;

static void
skip_ws(jscan *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int
hex4(const char *s, size_t avail, uint32_t *out)
{
    uint32_t v = 0;

    if (avail < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* \uXXXX at p->pos (after the backslash and 'u'), with surrogate pairs. */
static int
scan_unicode_escape(jscan *p, kiln_buf *out)
{
    uint32_t r, lo;

    if (hex4(p->s + p->pos, p->len - p->pos, &r) < 0)
        return -1;
    p->pos += 4;
    if (r >= 0xd800 && r < 0xdc00 && p->pos + 6 <= p->len && p->s[p->pos] == '\\' &&
        p->s[p->pos + 1] == 'u' && hex4(p->s + p->pos + 2, 4, &lo) == 0 && lo >= 0xdc00 &&
        lo <= 0xdfff) {
        r = 0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00);
        p->pos += 6;
    } else if (r >= 0xd800 && r <= 0xdfff) {
        r = DF_RUNE_ERROR;
    }
    if (out)
        kiln_df__put_rune(out, r);
    return 0;
}

static int
simple_escape(char c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '/':
        return '/';
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return -1;
    }
}

/* A string at p->pos == '"'; decoded into out when out != NULL. 0 or -1 (syntax). */
static int
scan_string(jscan *p, kiln_buf *out)
{
    p->pos++;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            int e;
            if (p->pos + 1 >= p->len)
                return -1;
            if (p->s[p->pos + 1] == 'u') {
                p->pos += 2;
                if (scan_unicode_escape(p, out) < 0)
                    return -1;
                continue;
            }
            e = simple_escape(p->s[p->pos + 1]);
            if (e < 0)
                return -1;
            if (out)
                kiln_buf_putc(out, (char)e, NULL);
            p->pos += 2;
            continue;
        }
        uint32_t r;
        size_t w = kiln_df__utf8_decode(p->s + p->pos, p->len - p->pos, &r);
        if (out)
            kiln_df__put_rune(out, r);
        p->pos += w;
    }
    return -1;
}

static size_t
digits(const jscan *p, size_t i)
{
    while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
        i++;
    return i;
}

/* A number per the JSON grammar that also fits a float64 (Go rejects overflow). */
static int
scan_number(jscan *p)
{
    size_t i = p->pos, start = p->pos, j;

    if (i < p->len && p->s[i] == '-')
        i++;
    if (i < p->len && p->s[i] == '0')
        i++;
    else if (i < p->len && p->s[i] >= '1' && p->s[i] <= '9')
        i = digits(p, i);
    else
        return -1;
    if (i < p->len && p->s[i] == '.') {
        j = digits(p, i + 1);
        if (j == i + 1)
            return -1;
        i = j;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        j = digits(p, i);
        if (j == i)
            return -1;
        i = j;
    }
    cleanup_free char *num = xstrndup(p->s + start, i - start);
    if (isinf(strtod(num, NULL)))
        return -1;
    p->pos = i;
    return 0;
}

static int
scan_literal(jscan *p)
{
    static const char *const lits[] = {"true", "false", "null"};

    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(lits[k]);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, lits[k], n) == 0) {
            p->pos += n;
            return 0;
        }
    }
    return -1;
}

enum { EXPECT_VALUE_OR_CLOSE, EXPECT_VALUE, EXPECT_AFTER_VALUE, EXPECT_KEY_OR_CLOSE, EXPECT_KEY };

/* A scalar value at p->pos; strings directly inside the top array are stored in `out`. */
static int
scan_scalar(jscan *p, bool top, kiln_vec *out, bool *non_string)
{
    char c = p->s[p->pos];

    if (c == '"') {
        kiln_buf *b = top ? xnew(kiln_buf) : NULL;
        int rc = scan_string(p, b);
        if (rc == 0 && top)
            kiln_vec_push(out, b);
        else if (b)
            kiln_df__json_buf_free(b);
        return rc;
    }
    if (top)
        *non_string = true;
    if (c == '-' || (c >= '0' && c <= '9'))
        return scan_number(p);
    return scan_literal(p);
}

/* One step of the scanner in state *expect with `stack` holding the open containers. */
static int
scan_step(jscan *p, kiln_buf *stack, int *expect, kiln_vec *out, bool *non_string)
{
    char c = p->s[p->pos];
    char top = stack->ptr[stack->len - 1];

    switch (*expect) {
    case EXPECT_VALUE_OR_CLOSE:
    case EXPECT_VALUE:
        if (c == ']' && *expect == EXPECT_VALUE_OR_CLOSE)
            goto close;
        if (c == '[' || c == '{') {
            if (stack->len == 1)
                *non_string = true;
            if (stack->len >= JSON_MAX_DEPTH)
                return -1;
            kiln_buf_putc(stack, c, NULL);
            p->pos++;
            *expect = c == '[' ? EXPECT_VALUE_OR_CLOSE : EXPECT_KEY_OR_CLOSE;
            return 0;
        }
        if (scan_scalar(p, stack->len == 1, out, non_string) < 0)
            return -1;
        *expect = EXPECT_AFTER_VALUE;
        return 0;
    case EXPECT_KEY_OR_CLOSE:
    case EXPECT_KEY:
        if (c == '}' && *expect == EXPECT_KEY_OR_CLOSE)
            goto close;
        if (c != '"' || scan_string(p, NULL) < 0)
            return -1;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':')
            return -1;
        p->pos++;
        *expect = EXPECT_VALUE;
        return 0;
    default:
        if (c == ',') {
            p->pos++;
            *expect = top == '[' ? EXPECT_VALUE : EXPECT_KEY;
            return 0;
        }
        if ((c == ']' && top == '[') || (c == '}' && top == '{'))
            goto close;
        return -1;
    }
close:
    p->pos++;
    stack->len--;
    *expect = EXPECT_AFTER_VALUE;
    return 0;
}

kiln_df__json_status
kiln_df__parse_json_array(kiln_vec *out, const char *s, size_t len)
{
    jscan p = {s, len, 1};
    kiln_buf stack = KILN_BUF_INIT;
    int expect = EXPECT_VALUE_OR_CLOSE;
    bool non_string = false;
    kiln_df__json_status st = DF_JSON_OK;

    kiln_assert(len > 0 && s[0] == '[');
    kiln_buf_putc(&stack, '[', NULL);
    while (stack.len > 0) {
        skip_ws(&p);
        if (p.pos >= p.len || scan_step(&p, &stack, &expect, out, &non_string) < 0) {
            st = DF_JSON_SYNTAX;
            break;
        }
    }
    kiln_buf_dispose(&stack);
    if (st == DF_JSON_OK && non_string)
        st = DF_JSON_NOT_STRINGS;
    if (st != DF_JSON_OK)
        kiln_vec_dispose(out, kiln_df__json_buf_free);
    return st;
}

void
kiln_df__json_buf_free(void *p)
{
    kiln_buf *b = p;

    kiln_buf_dispose(b);
    free(b);
}
