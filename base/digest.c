/*
 * digest.c: SHA-256 through OpenSSL's EVP interface and XXH3 through xxhash, with strict parsing
 * of the "sha256:<hex>" form that OCI and LLB use.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/base.h"
#include "base/digest.h"

struct kiln_sha256_ctx {
    EVP_MD_CTX *md;
};

struct kiln_xxh_ctx {
    XXH3_state_t *st;
};

void
kiln_sha256_buf(kiln_sha256 *out, const void *data, size_t len)
{
    unsigned int n = 0;

    if (EVP_Digest(data, len, out->bytes, &n, EVP_sha256(), NULL) != 1 || n != KILN_SHA256_LEN)
        kiln_abort(__FILE__, __LINE__, "EVP_Digest(sha256) failed");
}

void
kiln_sha256_ctx_new(kiln_sha256_ctx **out)
{
    kiln_sha256_ctx *c = xnew(kiln_sha256_ctx);

    c->md = EVP_MD_CTX_new();
    if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
        kiln_abort(__FILE__, __LINE__, "EVP_DigestInit(sha256) failed");
    *out = c;
}

void
kiln_sha256_ctx_update(kiln_sha256_ctx *c, const void *data, size_t len)
{
    if (len && EVP_DigestUpdate(c->md, data, len) != 1)
        kiln_abort(__FILE__, __LINE__, "EVP_DigestUpdate failed");
}

void
kiln_sha256_ctx_final(kiln_sha256_ctx *c, kiln_sha256 *out)
{
    unsigned int n = 0;

    if (EVP_DigestFinal_ex(c->md, out->bytes, &n) != 1 || n != KILN_SHA256_LEN ||
        EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
        kiln_abort(__FILE__, __LINE__, "EVP_DigestFinal(sha256) failed");
}

void
kiln_sha256_ctx_free(kiln_sha256_ctx *c)
{
    if (!c)
        return;
    EVP_MD_CTX_free(c->md);
    free(c);
}

int
kiln_sha256_fd(kiln_sha256 *out, int fd, kiln_error **err)
{
    kiln_sha256_ctx *c = NULL;
    char buf[65536];
    ssize_t n;

    kiln_sha256_ctx_new(&c);
    for (;;) {
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        kiln_sha256_ctx_update(c, buf, (size_t)n);
    }
    if (n < 0) {
        int e = errno;
        kiln_sha256_ctx_free(c);
        return kiln_error_errno(err, e, "read for sha256");
    }
    kiln_sha256_ctx_final(c, out);
    kiln_sha256_ctx_free(c);
    return 0;
}

void
kiln_hex_encode(char *out, const unsigned char *in, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void
kiln_digest_format(char out[KILN_DIGEST_STRLEN + 1], const kiln_sha256 *d)
{
    memcpy(out, "sha256:", 7);
    kiln_hex_encode(out + 7, d->bytes, KILN_SHA256_LEN);
}

char *
kiln_digest_str(const kiln_sha256 *d)
{
    char *s = xmalloc(KILN_DIGEST_STRLEN + 1);

    kiln_digest_format(s, d);
    return s;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int
kiln_digest_parse(kiln_sha256 *out, const char *s, kiln_error **err)
{
    const char *colon = strchr(s, ':');

    if (!colon || colon == s)
        return kiln_error_set(err, KILN_EINVAL, "invalid digest `%.80s`: expected algorithm:hex",
                              s);
    if ((size_t)(colon - s) != 6 || strncmp(s, "sha256", 6) != 0)
        return kiln_error_set(err, KILN_EUNSUPPORTED, "unsupported digest algorithm in `%.80s`", s);
    if (strlen(colon + 1) != 2 * KILN_SHA256_LEN)
        return kiln_error_set(err, KILN_EINVAL, "invalid digest `%.80s`: expected 64 hex digits",
                              s);
    for (size_t i = 0; i < KILN_SHA256_LEN; i++) {
        int hi = hexval(colon[1 + 2 * i]), lo = hexval(colon[2 + 2 * i]);
        if (hi < 0 || lo < 0)
            return kiln_error_set(err, KILN_EINVAL, "invalid digest `%.80s`: not lowercase hex", s);
        out->bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

bool
kiln_digest_valid(const char *s)
{
    kiln_sha256 d;

    return s && kiln_digest_parse(&d, s, NULL) == 0;
}

uint64_t
kiln_xxh3_64(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}

kiln_xxh128
kiln_xxh3_128(const void *data, size_t len)
{
    XXH128_hash_t h = XXH3_128bits(data, len);

    return (kiln_xxh128){h.low64, h.high64};
}

void
kiln_xxh_ctx_new(kiln_xxh_ctx **out)
{
    kiln_xxh_ctx *c = xnew(kiln_xxh_ctx);

    c->st = XXH3_createState();
    if (!c->st)
        kiln_abort(__FILE__, __LINE__, "XXH3_createState failed");
    XXH3_128bits_reset(c->st);
    *out = c;
}

void
kiln_xxh_ctx_update(kiln_xxh_ctx *c, const void *data, size_t len)
{
    XXH3_128bits_update(c->st, data, len);
}

kiln_xxh128
kiln_xxh_ctx_final128(kiln_xxh_ctx *c)
{
    XXH128_hash_t h = XXH3_128bits_digest(c->st);

    XXH3_128bits_reset(c->st);
    return (kiln_xxh128){h.low64, h.high64};
}

void
kiln_xxh_ctx_free(kiln_xxh_ctx *c)
{
    if (!c)
        return;
    XXH3_freeState(c->st);
    free(c);
}

void
kiln_xxh128_format(char out[33], kiln_xxh128 h)
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.hi, (unsigned long long)h.lo);
}
