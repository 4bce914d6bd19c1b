/*
 * registry_push.c: pushing to a registry (specs.md §3.4). A blob push checks existence first
 * (HEAD), then tries a cross-repository mount when a source repository is known, then uploads
 * either monolithically (POST, then PUT <location>&digest=) or in chunks (POST, PATCH with
 * Content-Range per chunk following each new Location, then a closing PUT). A failed upload
 * session is cancelled with DELETE. Manifests go last, byte-exact, with their media type.
 */
#include <inttypes.h>

#include "oci/registry.h"
#include "oci/registry_internal.h"

#include "base/base.h"
#include "base/digest.h"

/* An upload in progress. */
typedef struct upload {
    kiln_registry *r;
    const kiln_oci_ref *ref;
    const char *digest;
    const char *mount_from;
    reg_body body; /* the whole blob */
    char *location;
    char *name; /* "domain/path" for messages */
} upload;

static char *
repo_url(const kiln_registry *r, const kiln_oci_ref *ref, const char *rest)
{
    cleanup_free char *base = kiln_registry__base_url(r, ref->domain);

    return xasprintf("%s/v2/%s/%s", base, ref->path, rest);
}

/* Absolute URL from a Location header (absolute, or relative to the registry). */
static char *
absolute_location(const upload *u, const char *loc)
{
    cleanup_free char *base = NULL;

    if (kiln_str_has_prefix(loc, "http://") || kiln_str_has_prefix(loc, "https://"))
        return xstrdup(loc);
    base = kiln_registry__base_url(u->r, u->ref->domain);
    return xasprintf("%s%s%s", base, loc[0] == '/' ? "" : "/", loc);
}

static void
init_push_request(reg_request *req, const upload *u, const char *method, char *url)
{
    memset(req, 0, sizeof(*req));
    req->method = method;
    req->url = url;
    req->host = u->ref->domain;
    req->repo = u->ref->path;
    req->actions = "pull,push";
    req->mount_from = u->mount_from;
}

/* Take the Location of a 201/202 answer as the upload session. */
static int
take_location(upload *u, const reg_response *resp, const char *step, kiln_error **err)
{
    if (!resp->location || !resp->location[0])
        return kiln_error_set(err, KILN_EINVAL, "push %s to %s: %s answer without Location",
                              u->digest, u->name, step);
    free(u->location);
    u->location = absolute_location(u, resp->location);
    return 0;
}

/* `s` followed by the formatted text; frees s. Owned by caller. */
static char *concat_free(char *s, const char *fmt, ...) KILN_PRINTF(2, 3);

static char *
concat_free(char *s, const char *fmt, ...)
{
    cleanup_free char *tail = NULL;
    char *out;
    va_list ap;

    va_start(ap, fmt);
    tail = xvasprintf(fmt, ap);
    va_end(ap);
    out = xasprintf("%s%s", s, tail);
    free(s);
    return out;
}

static bool
repo_path_safe(const char *s)
{
    if (!*s || strlen(s) > KILN_OCI_REF_MAX)
        return false;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("._-/", *s)))
            return false;
    }
    return true;
}

/* POST an upload session, trying a mount first. Sets *done when the blob got mounted. */
static int
start_upload(upload *u, bool *done, kiln_error **err)
{
    reg_response resp = {.content_length = -1};
    cleanup_free char *url = NULL;
    reg_request req;
    int ret;

    *done = false;
    url = repo_url(u->r, u->ref, "blobs/uploads/");
    if (u->mount_from)
        url = concat_free(url, "?mount=%s&from=%s", u->digest, u->mount_from);
    init_push_request(&req, u, "POST", url);
    ret = kiln_registry__do(u->r, &req, &resp, err);
    if (ret < 0) {
        kiln_error_wrap(err, "push %s to %s: start upload", u->digest, u->name);
    } else if (resp.status == 201 && u->mount_from) {
        *done = true; /* mounted from the other repository */
    } else if (resp.status == 202) {
        ret = take_location(u, &resp, "POST", err);
    } else {
        cleanup_free char *what = xasprintf("push %s to %s", u->digest, u->name);

        ret = kiln_registry__status_error(&resp, what, err);
    }
    kiln_registry__response_dispose(&resp);
    return ret;
}

/* PUT or PATCH a part of the blob to the session; expects `want`; follows the new Location. */
static int
send_part(upload *u, const char *method, const char *url, uint64_t off, uint64_t len, int want,
          kiln_error **err)
{
    reg_response resp = {.content_length = -1};
    reg_body part = u->body;
    char range[64];
    reg_request req;
    int ret;

    part.off = u->body.off + off;
    part.len = len;
    init_push_request(&req, u, method, (char *)url);
    req.mount_from = NULL;
    req.body = &part;
    req.content_type = "application/octet-stream";
    if (strcmp(method, "PATCH") == 0) {
        snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, off, off + len - 1);
        req.content_range = range;
    }
    ret = kiln_registry__do(u->r, &req, &resp, err);
    if (ret < 0) {
        kiln_error_wrap(err, "push %s to %s: %s", u->digest, u->name, method);
    } else if (resp.status != want) {
        cleanup_free char *what = xasprintf("push %s to %s: %s", u->digest, u->name, method);

        ret = kiln_registry__status_error(&resp, what, err);
    } else if (want == 202) {
        ret = take_location(u, &resp, method, err);
    } else if (resp.digest && strcmp(resp.digest, u->digest) != 0) {
        ret = kiln_error_set(err, KILN_EDIGEST, "push %s to %s: registry computed %s", u->digest,
                             u->name, resp.digest);
    }
    kiln_registry__response_dispose(&resp);
    return ret;
}

/* The closing PUT <location>&digest=<d>, carrying `len` bytes from `off`. */
static int
finish_upload(upload *u, uint64_t off, uint64_t len, kiln_error **err)
{
    cleanup_free char *url = xasprintf("%s%sdigest=%s", u->location,
                                       strchr(u->location, '?') ? "&" : "?", u->digest);

    return send_part(u, "PUT", url, off, len, 201, err);
}

static int
upload_chunks(upload *u, size_t chunk, kiln_error **err)
{
    uint64_t off = 0;
    int ret;

    while (off < u->body.len) {
        uint64_t n = u->body.len - off < chunk ? u->body.len - off : chunk;
        cleanup_free char *url = xstrdup(u->location);

        ret = send_part(u, "PATCH", url, off, n, 202, err);
        if (ret < 0)
            return ret;
        off += n;
    }
    return finish_upload(u, off, 0, err);
}

/* Cancel an upload session after a failure; errors are ignored (the session expires anyway). */
static void
cancel_upload(upload *u)
{
    reg_response resp = {.content_length = -1};
    kiln_error *tmp = NULL;
    reg_request req;

    if (!u->location)
        return;
    init_push_request(&req, u, "DELETE", u->location);
    req.mount_from = NULL;
    (void)kiln_registry__do(u->r, &req, &resp, &tmp);
    kiln_error_free(&tmp);
    kiln_registry__response_dispose(&resp);
}

static int
push_blob(kiln_registry *r, const kiln_oci_ref *ref, const char *digest, const reg_body *body,
          const char *mount_from, kiln_error **err)
{
    upload u = {r, ref, digest, NULL, *body, NULL, kiln_oci_ref_name(ref)};
    bool exists = false, mounted = false;
    int ret;

    if (!kiln_oci_digest_valid(digest)) {
        ret = kiln_error_set(err, KILN_EINVAL, "push to %s: invalid digest `%s`", u.name, digest);
        goto out;
    }
    if (mount_from && !repo_path_safe(mount_from)) {
        ret = kiln_error_set(err, KILN_EINVAL, "push %s: invalid mount source `%s`", digest,
                             mount_from);
        goto out;
    }
    if (mount_from && strcmp(mount_from, ref->path) != 0)
        u.mount_from = mount_from;
    ret = kiln_registry__blob_exists(r, ref, digest, "pull,push", &exists, err);
    if (ret < 0 || exists)
        goto out;
    ret = start_upload(&u, &mounted, err);
    if (ret < 0 || mounted)
        goto out;
    if (r->opts.chunk_size > 0 && u.body.len > 0)
        ret = upload_chunks(&u, r->opts.chunk_size, err);
    else
        ret = finish_upload(&u, 0, u.body.len, err);
    if (ret < 0)
        cancel_upload(&u);
out:
    free(u.location);
    free(u.name);
    return ret;
}

/* kiln_registry_push_blob: see registry.h. */
int
kiln_registry_push_blob(kiln_registry *r, const kiln_oci_ref *ref, const char *digest, int64_t size,
                        int fd, const char *mount_from, kiln_error **err)
{
    reg_body body = {NULL, fd, 0, 0};

    if (size < 0 || fd < 0)
        return kiln_error_set(err, KILN_EINVAL, "push %s: invalid size or file", digest);
    body.len = (uint64_t)size;
    return push_blob(r, ref, digest, &body, mount_from, err);
}

/* kiln_registry_push_blob_mem: see registry.h. */
int
kiln_registry_push_blob_mem(kiln_registry *r, const kiln_oci_ref *ref, const char *digest,
                            const void *data, size_t len, const char *mount_from, kiln_error **err)
{
    reg_body body = {data ? data : "", -1, 0, len};

    return push_blob(r, ref, digest, &body, mount_from, err);
}

/* kiln_registry_put_manifest: see registry.h. */
int
kiln_registry_put_manifest(kiln_registry *r, const kiln_oci_ref *ref, const char *media_type,
                           const char *data, size_t len, char **digest_out, kiln_error **err)
{
    reg_response resp = {.content_length = -1};
    char dg[KILN_DIGEST_STRLEN + 1];
    cleanup_free char *url = NULL, *what = kiln_oci_ref_string(ref);
    reg_body body = {data, -1, 0, len};
    kiln_sha256 d;
    reg_request req;
    upload u = {.r = r, .ref = ref};
    int ret;

    if (len > KILN_OCI_MANIFEST_MAX)
        return kiln_error_set(err, KILN_EINVAL, "push %s: manifest larger than %u bytes", what,
                              KILN_OCI_MANIFEST_MAX);
    if (!media_type || !kiln_oci_media_type_valid(media_type))
        return kiln_error_set(err, KILN_EINVAL, "push %s: invalid manifest media type", what);
    kiln_sha256_buf(&d, data, len);
    kiln_digest_format(dg, &d);
    if (ref->digest && strcmp(ref->digest, dg) != 0)
        return kiln_error_set(err, KILN_EDIGEST, "push %s: manifest has digest %s", what, dg);
    url = repo_url(r, ref, "manifests/");
    url = concat_free(url, "%s", ref->tag ? ref->tag : dg);
    init_push_request(&req, &u, "PUT", url);
    req.body = &body;
    req.content_type = media_type;
    ret = kiln_registry__do(r, &req, &resp, err);
    if (ret < 0)
        kiln_error_wrap(err, "push manifest %s", what);
    else if (resp.status != 201 && resp.status != 200)
        ret = kiln_registry__status_error(&resp, what, err);
    else if (resp.digest && strcmp(resp.digest, dg) != 0)
        ret = kiln_error_set(err, KILN_EDIGEST, "push %s: registry computed %s, expected %s", what,
                             resp.digest, dg);
    kiln_registry__response_dispose(&resp);
    if (ret == 0 && digest_out)
        *digest_out = xstrdup(dg);
    return ret;
}
