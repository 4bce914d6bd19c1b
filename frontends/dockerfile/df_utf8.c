/*
 * df_utf8.c: the small part of Go's unicode and utf8 packages that the Dockerfile parser and the
 * shell lexer depend on. BuildKit's parser mixes rune-wise loops (parseWords, the shell lexer) with
 * byte-wise ones (flag extraction, HEALTHCHECK), and invalid UTF-8 turns into U+FFFD only in the
 * rune-wise ones; keeping these helpers exact is what makes our AST dumps byte-identical.
 */
#include <locale.h>
#include <pthread.h>
#include <wctype.h>

#include "base/base.h"
#include "frontends/dockerfile/df_internal.h"

size_t
kiln_df__utf8_decode(const char *s, size_t len, uint32_t *r)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t c;
    size_t n;

    if (p[0] < 0x80) {
        *r = p[0];
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        c = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        c = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        c = p[0] & 0x07;
    } else {
        *r = DF_RUNE_ERROR;
        return 1;
    }
    if (n > len)
        goto invalid;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            goto invalid;
        c = (c << 6) | (p[i] & 0x3f);
    }
    /* overlong forms, surrogates and values above U+10FFFF are invalid, as in Go */
    if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10ffff ||
        (c >= 0xd800 && c <= 0xdfff))
        goto invalid;
    *r = c;
    return n;
invalid:
    *r = DF_RUNE_ERROR;
    return 1;
}

void
kiln_df__put_rune(kiln_buf *b, uint32_t r)
{
    char out[4];

    if (r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
        r = DF_RUNE_ERROR;
    if (r < 0x80) {
        kiln_buf_putc(b, (char)r, NULL);
    } else if (r < 0x800) {
        out[0] = (char)(0xc0 | (r >> 6));
        out[1] = (char)(0x80 | (r & 0x3f));
        kiln_buf_put(b, out, 2, NULL);
    } else if (r < 0x10000) {
        out[0] = (char)(0xe0 | (r >> 12));
        out[1] = (char)(0x80 | ((r >> 6) & 0x3f));
        out[2] = (char)(0x80 | (r & 0x3f));
        kiln_buf_put(b, out, 3, NULL);
    } else {
        out[0] = (char)(0xf0 | (r >> 18));
        out[1] = (char)(0x80 | ((r >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((r >> 6) & 0x3f));
        out[3] = (char)(0x80 | (r & 0x3f));
        kiln_buf_put(b, out, 4, NULL);
    }
}

bool
kiln_df__is_space(uint32_t r)
{
    switch (r) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
        return true;
    default:
        return r >= 0x2000 && r <= 0x200a;
    }
}

bool
kiln_df__is_space_byte(unsigned char b)
{
    return kiln_df__is_space(b);
}

/* A C.UTF-8 locale object for the wide-character classes, created once. newlocale() does not
 * touch the process locale, so this is safe in a library. */
static locale_t utf8_locale;
static pthread_once_t utf8_locale_once = PTHREAD_ONCE_INIT;

static void
utf8_locale_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

bool
kiln_df__is_letter(uint32_t r)
{
    if (r < 0x80)
        return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z');
    if (r == DF_RUNE_ERROR)
        return false;
    pthread_once(&utf8_locale_once, utf8_locale_init);
    if (utf8_locale == (locale_t)0)
        return false;
    return iswalpha_l((wint_t)r, utf8_locale) != 0;
}

bool
kiln_df__is_digit(uint32_t r)
{
    return r >= '0' && r <= '9';
}

size_t
kiln_df__leading_space(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t r;
        size_t w = kiln_df__utf8_decode(s + i, len - i, &r);
        if (!kiln_df__is_space(r))
            break;
        i += w;
    }
    return i;
}

void
kiln_df__trim_space(const char *s, size_t len, size_t *start, size_t *end)
{
    size_t b = kiln_df__leading_space(s, len);
    size_t e = len;

    /* walk backwards rune by rune: find the start byte of the last rune */
    while (e > b) {
        size_t k = e - 1;
        uint32_t r;
        while (k > b && e - k < 4 && ((unsigned char)s[k] & 0xc0) == 0x80)
            k--;
        if (kiln_df__utf8_decode(s + k, e - k, &r) != e - k) {
            /* not a whole rune ending at e: Go's DecodeLastRune reports one invalid byte */
            k = e - 1;
            r = DF_RUNE_ERROR;
        }
        if (!kiln_df__is_space(r))
            break;
        e = k;
    }
    *start = b;
    *end = e;
}

char *
kiln_df__trim_space_dup(const char *s, size_t len)
{
    size_t b, e;

    kiln_df__trim_space(s, len, &b, &e);
    return xstrndup(s + b, e - b);
}

bool
kiln_df__is_re_ws(char c)
{
    return c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == ' ';
}

void
kiln_df__split_ws(kiln_vec *out, const char *s, int n)
{
    const char *p = s;

    for (;;) {
        const char *q = p;
        if (n > 0 && (int)out->len == n - 1) {
            kiln_strvec_push(out, p);
            return;
        }
        while (*q && !kiln_df__is_re_ws(*q))
            q++;
        kiln_vec_push(out, xstrndup(p, (size_t)(q - p)));
        if (!*q)
            return;
        while (*q && kiln_df__is_re_ws(*q))
            q++;
        p = q;
    }
}
