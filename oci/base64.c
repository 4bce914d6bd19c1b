/*
 * base64.c: base64 for the oci module (descriptor `data` fields, docker config `auth` values,
 * Basic authorization headers), on top of OpenSSL's EVP block coders.
 */
#include <openssl/evp.h>

#include "oci/oci_internal.h"

#include "base/base.h"

/* kiln_oci__base64_encode: see oci_internal.h. */
char *
kiln_oci__base64_encode(const void *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);

    kiln_assert(len <= (size_t)INT32_MAX / 2);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static bool
b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* kiln_oci__base64_decode: see oci_internal.h. */
int
kiln_oci__base64_decode(char **out, size_t *len_out, const char *s, size_t max, const char *what,
                        kiln_error **err)
{
    size_t n = strlen(s), pad = 0;
    cleanup_free char *buf = NULL;
    int m;

    if (n > max)
        return kiln_error_set(err, KILN_EINVAL, "%s: base64 longer than %zu bytes", what, max);
    if (n % 4 != 0)
        return kiln_error_set(err, KILN_EPARSE, "%s: invalid base64 (length)", what);
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++) {
        if (!b64_char(s[i]))
            return kiln_error_set(err, KILN_EPARSE, "%s: invalid base64 character", what);
    }
    buf = xmalloc(n / 4 * 3 + 1);
    m = n ? EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)s, (int)n) : 0;
    if (m < 0)
        return kiln_error_set(err, KILN_EPARSE, "%s: invalid base64", what);
    /* EVP_DecodeBlock counts the padding as zero bytes */
    m -= (int)pad;
    buf[m] = '\0';
    *len_out = (size_t)m;
    *out = steal_pointer(&buf);
    return 0;
}
