/*
 * http.c: the network-free half of the http(s) source (see http.h): choosing the file name as
 * BuildKit does (including a Content-Disposition parser following Go's mime.ParseMediaType and
 * RFC 2231 `filename*`), HTTP dates, and the download into a directory with checksum pinning.
 * Headers are untrusted: a name from them is reduced to its last element and "."/".." are refused,
 * so a server can never place the file outside the destination directory.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/digest.h"
#include "source/http.h"

#define DEFAULT_NAME "download"

void
kiln_http_reply_dispose(kiln_http_reply *r)
{
    free(r->content_disposition);
    free(r->last_modified);
    free(r->etag);
    memset(r, 0, sizeof(*r));
}

void
kiln_http_result_dispose(kiln_http_result *r)
{
    free(r->filename);
    free(r->etag);
    free(r->last_modified);
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------------------------------------
 * Content-Disposition
 */

static bool
is_token_char(char c)
{
    return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

static const char *
skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    return s;
}

/* A token or a quoted string at *s; NULL when neither. Owned by the caller. */
static char *
consume_value(const char **s)
{
    const char *p = *s;
    const char *start;
    kiln_buf b = KILN_BUF_INIT;
    if (*p != '"') {
        while (is_token_char(*p))
            p++;
        if (p == *s)
            return NULL;
        start = *s;
        *s = p;
        return xstrndup(start, (size_t)(p - start));
    }
    for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
            p++;
        kiln_buf_putc(&b, *p, NULL);
    }
    if (*p != '"') {
        kiln_buf_dispose(&b);
        return NULL;
    }
    *s = p + 1;
    return kiln_buf_detach(&b);
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode; NULL on a malformed escape. Owned by the caller. */
static char *
pct_decode(const char *s, size_t n)
{
    kiln_buf b = KILN_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                kiln_buf_dispose(&b);
                return NULL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        kiln_buf_putc(&b, c, NULL);
    }
    return kiln_buf_detach(&b);
}

/* RFC 2231 "charset'lang'value": only UTF-8 and US-ASCII, as Go. */
static char *
decode_2231(const char *v)
{
    const char *q1 = strchr(v, '\'');
    const char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
    cleanup_free char *charset = NULL;
    if (!q2)
        return NULL;
    charset = xstrndup(v, (size_t)(q1 - v));
    if (strcasecmp(charset, "utf-8") != 0 && strcasecmp(charset, "us-ascii") != 0)
        return NULL;
    return pct_decode(q2 + 1, strlen(q2 + 1));
}

/* One "; key=value" parameter. Returns false on a syntax error; *key NULL at a trailing ';'. */
static bool
consume_param(const char **s, char **key, char **value)
{
    const char *p = skip_space(*s);
    const char *k;
    *key = *value = NULL;
    if (*p != ';')
        return false;
    p = skip_space(p + 1);
    if (!*p) {
        *s = p;
        return true; /* trailing semicolon */
    }
    k = p;
    while (is_token_char(*p))
        p++;
    if (p == k)
        return false;
    *key = xstrndup(k, (size_t)(p - k));
    for (char *c = *key; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    p = skip_space(p);
    if (*p != '=')
        return false;
    p = skip_space(p + 1);
    *value = consume_value(&p);
    if (!*value)
        return false;
    *s = p;
    return true;
}

/* The filename parameter of a Content-Disposition value, or NULL when absent or malformed. */
static char *
disposition_filename(const char *cd)
{
    const char *p = skip_space(cd);
    const char *t = p;
    cleanup_free char *plain = NULL;
    cleanup_free char *ext = NULL;
    while (is_token_char(*p))
        p++;
    if (p == t)
        return NULL;
    for (;;) {
        char *key = NULL, *value = NULL;
        bool ok;
        p = skip_space(p);
        if (!*p)
            break;
        ok = consume_param(&p, &key, &value);
        if (ok && key && (strcmp(key, "filename") == 0 || strcmp(key, "filename*") == 0)) {
            char **slot = key[8] ? &ext : &plain;
            ok = *slot == NULL; /* Go rejects duplicate parameters */
            if (ok)
                *slot = steal_pointer(&value);
        }
        free(key);
        free(value);
        if (!ok)
            return NULL;
    }
    if (ext) {
        char *dec = decode_2231(ext);
        if (dec)
            return dec;
    }
    return steal_pointer(&plain);
}

/* Go's path.Base on a '/'-separated path; owned by the caller. */
static char *
path_base(const char *p)
{
    size_t n = strlen(p);
    const char *slash;
    if (n == 0)
        return xstrdup(".");
    while (n > 1 && p[n - 1] == '/')
        n--;
    if (n == 1 && p[0] == '/')
        return xstrdup("/");
    slash = memrchr(p, '/', n);
    return slash ? xstrndup(slash + 1, n - (size_t)(slash + 1 - p)) : xstrndup(p, n);
}

/* The decoded path of a URL (Go's url.URL.Path), or NULL when the escapes are malformed. */
static char *
url_path(const char *url)
{
    const char *p = strstr(url, "://");
    size_t n;
    p = p ? p + 3 : url;
    if (p != url)
        p += strcspn(p, "/?#");
    n = strcspn(p, "?#");
    return pct_decode(p, n);
}

static bool
safe_name(const char *s)
{
    return s && *s && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/');
}

char *
kiln_http_filename(const char *url, const char *manual, const char *content_disposition)
{
    cleanup_free char *path = NULL;
    if (manual && *manual)
        return xstrdup(manual);
    if (content_disposition) {
        cleanup_free char *fn = disposition_filename(content_disposition);
        if (fn && *fn && !kiln_str_has_suffix(fn, "/")) {
            char *base = path_base(fn);
            if (safe_name(base))
                return base;
            free(base);
        }
    }
    path = url_path(url);
    if (path) {
        char *base = path_base(path);
        if (safe_name(base))
            return base;
        free(base);
    }
    return xstrdup(DEFAULT_NAME);
}

int
kiln_http_parse_time(time_t *out, const char *s, kiln_error **err)
{
    static const char *const formats[] = {
            "%a, %d %b %Y %H:%M:%S GMT", /* RFC 1123 */
            "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
            "%a %b %e %H:%M:%S %Y",      /* asctime */
    };
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        struct tm tm;
        const char *end;
        memset(&tm, 0, sizeof(tm));
        end = strptime(s, formats[i], &tm);
        if (end && *end == '\0') {
            *out = timegm(&tm);
            return 0;
        }
    }
    return kiln_error_set(err, KILN_EPARSE, "invalid HTTP date `%s`", s);
}

/* ---------------------------------------------------------------------------------------------
 * Download
 */

static int
status_error(kiln_error **err, int status, const char *url)
{
    if (status == 404 || status == 410)
        return kiln_error_set(err, KILN_ENOTFOUND, "GET `%s`: status %d", url, status);
    if (status == 401 || status == 403)
        return kiln_error_set(err, KILN_EAUTH, "GET `%s`: status %d", url, status);
    return kiln_error_set(err, KILN_ESYS, "GET `%s`: invalid response status %d", url, status);
}

static int
check_opts(const kiln_http_opts *o, kiln_sha256 *want, bool *pinned, kiln_error **err)
{
    *pinned = false;
    if (o->filename && !safe_name(o->filename))
        return kiln_error_set(err, KILN_EINVAL, "invalid download filename `%s`", o->filename);
    if (o->perm > 07777)
        return kiln_error_set(err, KILN_EINVAL, "invalid download mode %o", o->perm);
    if (o->checksum) {
        if (kiln_digest_parse(want, o->checksum, err) < 0)
            return kiln_error_wrap(err, "download checksum");
        *pinned = true;
    }
    return 0;
}

/* A fresh temporary file in dirfd; *name_out is its name. */
static int
open_temp(int dirfd, char name_out[64], kiln_error **err)
{
    static unsigned counter;
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd;
        snprintf(name_out, 64, ".kiln-download-%ld-%u", (long)getpid(),
                 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
        fd = openat(dirfd, name_out, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return kiln_error_errno(err, errno, "create temporary download file");
    }
    return kiln_error_set(err, KILN_EEXISTS, "no free temporary download file name");
}

/* Owner, mode and mtime of the downloaded file, then move it to its name. */
static int
finish_file(int dirfd, int fd, const char *tmp, const char *name, const kiln_http_opts *o,
            const kiln_http_reply *reply, kiln_error **err)
{
    struct timespec ts[2] = {{0, 0}, {0, 0}};
    time_t mtime = 0;
    if ((o->uid || o->gid) && fchown(fd, o->uid, o->gid) < 0)
        return kiln_error_errno(err, errno, "chown download `%s`", name);
    if (fchmod(fd, o->perm ? o->perm : 0600) < 0)
        return kiln_error_errno(err, errno, "chmod download `%s`", name);
    /* as BuildKit: Last-Modified when it parses, else the epoch */
    if (reply->last_modified && kiln_http_parse_time(&mtime, reply->last_modified, NULL) == 0)
        ts[0].tv_sec = mtime;
    ts[1] = ts[0];
    if (futimens(fd, ts) < 0)
        return kiln_error_errno(err, errno, "set times of download `%s`", name);
    if (renameat(dirfd, tmp, dirfd, name) < 0)
        return kiln_error_errno(err, errno, "rename download to `%s`", name);
    return 0;
}

static int
fetch_and_check(kiln_http_result *res, const char *url, int dirfd, int fd, const char *tmp,
                const kiln_http_opts *o, const kiln_http_transport *t, kiln_error **err)
{
    kiln_http_reply reply = {0};
    kiln_sha256 want;
    bool pinned;
    int rc = check_opts(o, &want, &pinned, err);
    if (rc == 0)
        rc = t->get(t->payload, url, fd, &reply, err);
    if (rc == 0 && (reply.status < 200 || reply.status > 299))
        rc = status_error(err, reply.status, url);
    if (rc == 0 && lseek(fd, 0, SEEK_SET) < 0)
        rc = kiln_error_errno(err, errno, "rewind download");
    if (rc == 0)
        rc = kiln_sha256_fd(&res->digest, fd, err);
    if (rc == 0 && pinned && memcmp(&want, &res->digest, sizeof(want)) != 0) {
        char got[KILN_DIGEST_STRLEN + 1];
        kiln_digest_format(got, &res->digest);
        rc = kiln_error_set(err, KILN_EDIGEST, "GET `%s`: content is %s, expected %s", url, got,
                            o->checksum);
    }
    if (rc == 0) {
        res->filename = kiln_http_filename(url, o->filename, reply.content_disposition);
        rc = finish_file(dirfd, fd, tmp, res->filename, o, &reply, err);
    }
    if (rc == 0) {
        res->etag = steal_pointer(&reply.etag);
        res->last_modified = steal_pointer(&reply.last_modified);
    }
    kiln_http_reply_dispose(&reply);
    return rc;
}

int
kiln_http_download(kiln_http_result *out, const char *url, const char *dst_dir,
                   const kiln_http_opts *opts, const kiln_http_transport *t, kiln_error **err)
{
    static const kiln_http_opts defaults = {0};
    cleanup_close int dirfd = -1;
    cleanup_close int fd = -1;
    kiln_http_result res = {0};
    char tmp[64];
    int rc;
    if (!opts)
        opts = &defaults;
    dirfd = open(dst_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return kiln_error_errno(err, errno, "open download directory `%s`", dst_dir);
    fd = open_temp(dirfd, tmp, err);
    if (fd < 0)
        return kiln_error_wrap(err, "download `%s`", url);
    rc = fetch_and_check(&res, url, dirfd, fd, tmp, opts, t, err);
    if (rc < 0) {
        unlinkat(dirfd, tmp, 0); /* the download never becomes visible */
        kiln_http_result_dispose(&res);
        return kiln_error_wrap(err, "download `%s`", url);
    }
    *out = res;
    return 0;
}
