/*
 * http.h: the http(s) source, minus the network. BuildKit's HTTP source downloads one file into
 * an empty directory: the name comes from the LLB `filename` attribute, else from the response's
 * Content-Disposition, else from the last element of the URL path ("download" when there is
 * none); the mode defaults to 0600; the mtime is the Last-Modified time (or the epoch); a pinned
 * sha256 checksum must match. The transfer itself (libcurl, proxies, TLS, redirects, registry
 * style auth) belongs to oci/, the only includer of <curl/curl.h>: the engine passes it in as a
 * kiln_http_transport.
 */
#ifndef KILN_SOURCE_HTTP_H
#define KILN_SOURCE_HTTP_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "base/digest.h"
#include "base/error.h"

/* What the transport reports about the final response (after redirects). */
typedef struct kiln_http_reply {
    int status;                /* HTTP status code */
    char *content_disposition; /* header values, or NULL; owned (xmalloc), freed by dispose */
    char *last_modified;
    char *etag;
} kiln_http_reply;

void kiln_http_reply_dispose(kiln_http_reply *r);

typedef struct kiln_http_transport {
    /* GET `url`, following redirects, writing the body of the final response to `body_fd` and
     * filling *reply. Returns 0 once a response was received (whatever its status), or a
     * negative kiln_errcode when none could be (DNS, TLS, connection, timeout). */
    int (*get)(void *payload, const char *url, int body_fd, kiln_http_reply *reply,
               kiln_error **err);
    void *payload;
} kiln_http_transport;

typedef struct kiln_http_opts {
    const char *checksum; /* "sha256:<hex>" the content must have, or NULL */
    const char *filename; /* the LLB filename attribute, or NULL */
    unsigned perm;        /* file mode; 0 = 0600 */
    uid_t uid;            /* chown when uid or gid is not 0 */
    gid_t gid;
} kiln_http_opts;

typedef struct kiln_http_result {
    kiln_sha256 digest;  /* sha256 of the content */
    char *filename;      /* the name written in dst_dir; owned */
    char *etag;          /* from the response, or NULL; owned */
    char *last_modified; /* from the response, or NULL; owned */
} kiln_http_result;

void kiln_http_result_dispose(kiln_http_result *r);

/* Download `url` through `t` into the existing directory `dst_dir`. The content lands in a
 * temporary file first and is renamed into place only when the status is 2xx and the checksum
 * (if pinned) matches, so a failed download leaves nothing behind. *out is disposed by the caller.
 * Errors: KILN_EINVAL for a bad option (checksum syntax, a filename with '/' or "."/".."),
 * KILN_ENOTFOUND for 404/410, KILN_EAUTH for 401/403, KILN_ESYS for other statuses and I/O,
 * KILN_EDIGEST when the content does not match the checksum; transport errors are passed on. */
int kiln_http_download(kiln_http_result *out, const char *url, const char *dst_dir,
                       const kiln_http_opts *opts, const kiln_http_transport *t, kiln_error **err);

/* The file name BuildKit would choose (see above); `manual` and `content_disposition` may be
 * NULL. Unsafe names ("", ".", "..") from the header are skipped. Owned by the caller. */
char *kiln_http_filename(const char *url, const char *manual, const char *content_disposition);

/* Parse an HTTP date (RFC 1123, RFC 850 or asctime form, as Go's http.ParseTime).
 * KILN_EPARSE when it is none of them. */
int kiln_http_parse_time(time_t *out, const char *s, kiln_error **err);

#endif
