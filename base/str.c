/*
 * str.c: string predicates, checked number parsing and Go-compatible quoting.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "base/buf.h"

bool
kiln_str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool
kiln_str_has_suffix(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);

    return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

bool
kiln_str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

size_t
kiln_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);

    if (size) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

int
kiln_parse_i64(const char *s, int64_t *out, const char *what, kiln_error **err)
{
    char *end = NULL;
    long long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return kiln_error_set(err, KILN_EINVAL, "%s: invalid number `%s`", what, s ? s : "");
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return kiln_error_set(err, KILN_EINVAL, "%s: invalid number `%s`", what, s);
    *out = v;
    return 0;
}

int
kiln_parse_u64(const char *s, uint64_t *out, const char *what, kiln_error **err)
{
    char *end = NULL;
    unsigned long long v;

    if (!s || !isdigit((unsigned char)*s))
        return kiln_error_set(err, KILN_EINVAL, "%s: invalid number `%s`", what, s ? s : "");
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        return kiln_error_set(err, KILN_EINVAL, "%s: invalid number `%s`", what, s);
    *out = v;
    return 0;
}

int
kiln_parse_mode(const char *s, unsigned *out, kiln_error **err)
{
    unsigned v = 0;

    if (!s || !*s)
        return kiln_error_set(err, KILN_EINVAL, "invalid file mode ``");
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '7' || v > 07777)
            return kiln_error_set(err, KILN_EINVAL, "invalid file mode `%s`", s);
        v = v * 8 + (unsigned)(*p - '0');
    }
    if (v > 07777)
        return kiln_error_set(err, KILN_EINVAL, "invalid file mode `%s`: above 07777", s);
    *out = v;
    return 0;
}

/* The multiplier of a size suffix (binary for every spelling, as docker's RAMInBytes:
 * "512MB" = "512m" = "512MiB"); 0 when the suffix is not one. */
static uint64_t
size_unit(const char *u)
{
    static const char units[] = "kmgt";
    const char *p;
    uint64_t mult = 1;
    if (*u == '\0' || strcasecmp(u, "b") == 0)
        return 1;
    p = strchr(units, tolower((unsigned char)*u));
    if (!p)
        return 0;
    mult <<= 10 * (p - units + 1);
    u++;
    if (*u == '\0' || strcasecmp(u, "b") == 0 || strcasecmp(u, "ib") == 0)
        return mult;
    return 0;
}

int
kiln_parse_size(const char *s, uint64_t *out, kiln_error **err)
{
    uint64_t whole = 0, frac = 0, scale = 1, mult;
    const char *p = s;
    long double extra;

    if (!s || !isdigit((unsigned char)*s))
        return kiln_error_set(err, KILN_EINVAL, "invalid size `%s`", s ? s : "");
    for (; isdigit((unsigned char)*p); p++) {
        if (whole > (UINT64_MAX - 9) / 10)
            return kiln_error_set(err, KILN_EINVAL, "invalid size `%s`: too large", s);
        whole = whole * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        if (!isdigit((unsigned char)p[1]))
            return kiln_error_set(err, KILN_EINVAL, "invalid size `%s`", s);
        /* digits past the 18th are read and dropped (long double precision ends sooner) */
        for (p++; isdigit((unsigned char)*p); p++) {
            if (scale < 1000000000000000000ULL) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            }
        }
    }
    mult = size_unit(p);
    if (mult == 0)
        return kiln_error_set(err, KILN_EINVAL, "invalid size `%s`", s);
    if (whole && mult > UINT64_MAX / whole)
        return kiln_error_set(err, KILN_EINVAL, "invalid size `%s`: too large", s);
    extra = (long double)frac / (long double)scale * (long double)mult;
    if ((long double)(UINT64_MAX - whole * mult) < extra)
        return kiln_error_set(err, KILN_EINVAL, "invalid size `%s`: too large", s);
    *out = whole * mult + (uint64_t)extra;
    return 0;
}

/* Decode one UTF-8 sequence; returns its length, or 0 when invalid (Go then prints \x escapes). */
static size_t
utf8_len(const unsigned char *p, size_t left, uint32_t *cp)
{
    size_t n;
    uint32_t c;

    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    } else if ((p[0] & 0xe0) == 0xc0) {
        n = 2;
        c = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        c = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4;
        c = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10ffff ||
        (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

/* Go's strconv.IsPrint, approximated: printable ASCII and every valid non-control code point
 * outside the C1 range and a few format characters. */
static bool
go_printable(uint32_t c)
{
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == 0xad)
        return false;
    if (c == 0xfeff || (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f))
        return false;
    return true;
}

static void
quote_rune(kiln_buf *b, uint32_t c, const unsigned char *p, size_t n)
{
    switch (c) {
    case '\a':
        kiln_buf_puts(b, "\\a", NULL);
        return;
    case '\b':
        kiln_buf_puts(b, "\\b", NULL);
        return;
    case '\f':
        kiln_buf_puts(b, "\\f", NULL);
        return;
    case '\n':
        kiln_buf_puts(b, "\\n", NULL);
        return;
    case '\r':
        kiln_buf_puts(b, "\\r", NULL);
        return;
    case '\t':
        kiln_buf_puts(b, "\\t", NULL);
        return;
    case '\v':
        kiln_buf_puts(b, "\\v", NULL);
        return;
    case '"':
        kiln_buf_puts(b, "\\\"", NULL);
        return;
    case '\\':
        kiln_buf_puts(b, "\\\\", NULL);
        return;
    default:
        break;
    }
    if (go_printable(c))
        kiln_buf_put(b, p, n, NULL);
    else if (c < 0x80)
        kiln_buf_printf(b, NULL, "\\x%02x", c);
    else if (c < 0x10000)
        kiln_buf_printf(b, NULL, "\\u%04x", c);
    else
        kiln_buf_printf(b, NULL, "\\U%08x", c);
}

char *
kiln_str_go_quote(const char *s, size_t len)
{
    kiln_buf b = KILN_BUF_INIT;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    kiln_buf_putc(&b, '"', NULL);
    while (i < len) {
        uint32_t c;
        size_t n = utf8_len(p + i, len - i, &c);
        if (n == 0) {
            kiln_buf_printf(&b, NULL, "\\x%02x", p[i]);
            i++;
            continue;
        }
        quote_rune(&b, c, p + i, n);
        i += n;
    }
    kiln_buf_putc(&b, '"', NULL);
    return kiln_buf_detach(&b);
}
