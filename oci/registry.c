/*
 * registry.c: the distribution API operations of the registry client (specs.md §3.3, §3.4) built
 * on kiln_registry__do(): resolving and fetching manifests with digest checks, streaming blobs
 * with digest verification, and pushing blobs (existence check, cross-repository mount,
 * monolithic or chunked upload) and manifests.
 */
#define KILN_LOG_DOMAIN "registry"

#include <inttypes.h>

#include "oci/registry.h"
#include "oci/registry_internal.h"

#include "base/base.h"
#include "base/digest.h"
#include "base/json.h"

/* Accept for manifest requests: OCI and Docker schema 2, single and lists (containerd's list). */
#define MANIFEST_ACCEPT                                                      \
    KILN_OCI_MT_MANIFEST ", " KILN_OCI_MT_INDEX ", " KILN_DOCKER_MT_MANIFEST \
                         ", " KILN_DOCKER_MT_LIST ", */*;q=0.8"

static char *
repo_url(const kiln_registry *r, const kiln_oci_ref *ref, const char *kind, const char *object)
{
    cleanup_free char *base = kiln_registry__base_url(r, ref->domain);

    return xasprintf("%s/v2/%s/%s/%s", base, ref->path, kind, object ? object : "");
}

static void
init_request(reg_request *req, const char *method, char *url, const kiln_oci_ref *ref,
             const char *actions)
{
    memset(req, 0, sizeof(*req));
    req->method = method;
    req->url = url;
    req->host = ref->domain;
    req->repo = ref->path;
    req->actions = actions;
}

/* Content-Type without parameters; owned by caller. */
static char *
bare_media_type(const char *ct)
{
    size_t n;

    if (!ct)
        return NULL;
    n = strcspn(ct, "; \t");
    return n ? xstrndup(ct, n) : NULL;
}

static void
digest_of(char out[KILN_DIGEST_STRLEN + 1], const void *data, size_t len)
{
    kiln_sha256 d;

    kiln_sha256_buf(&d, data, len);
    kiln_digest_format(out, &d);
}

/* kiln_registry_manifest_dispose: free the fields and zero *m. */
void
kiln_registry_manifest_dispose(kiln_registry_manifest *m)
{
    free(m->media_type);
    free(m->digest);
    free(m->data);
    memset(m, 0, sizeof(*m));
}

/* GET or HEAD a manifest; the caller maps resp. */
static int
manifest_request(kiln_registry *r, const kiln_oci_ref *ref, const char *method, reg_response *resp,
                 kiln_error **err)
{
    reg_request req;
    cleanup_free char *url = repo_url(r, ref, "manifests", kiln_oci_ref_object(ref));
    cleanup_free char *what = kiln_oci_ref_string(ref);
    int ret;

    init_request(&req, method, url, ref, "pull");
    req.accept = MANIFEST_ACCEPT;
    req.max_body = KILN_OCI_MANIFEST_MAX;
    ret = kiln_registry__do(r, &req, resp, err);
    if (ret < 0)
        return kiln_error_wrap(err, "fetch manifest %s", what);
    if (resp->status != 200)
        return kiln_registry__status_error(resp, what, err);
    return 0;
}

/* kiln_registry_get_manifest: see registry.h. */
int
kiln_registry_get_manifest(kiln_registry *r, const kiln_oci_ref *ref, kiln_registry_manifest *out,
                           kiln_error **err)
{
    reg_response resp = {.content_length = -1};
    cleanup_free char *what = kiln_oci_ref_string(ref);
    char dg[KILN_DIGEST_STRLEN + 1];
    const char *expect;
    int ret;

    memset(out, 0, sizeof(*out));
    if (ref->digest && !kiln_str_has_prefix(ref->digest, "sha256:"))
        return kiln_error_set(err, KILN_EUNSUPPORTED, "%s: only sha256 digests are supported",
                              what);
    ret = manifest_request(r, ref, "GET", &resp, err);
    if (ret < 0)
        goto out;
    digest_of(dg, resp.body.ptr ? resp.body.ptr : "", resp.body.len);
    /* pinned digest wins; else the registry's Docker-Content-Digest when it is a sha256 */
    expect = ref->digest ? ref->digest
                         : (resp.digest && kiln_str_has_prefix(resp.digest, "sha256:") ? resp.digest
                                                                                       : NULL);
    if (expect && strcmp(expect, dg) != 0) {
        ret = kiln_error_set(err, KILN_EDIGEST, "manifest %s: content has digest %s, expected %s",
                             what, dg, expect);
        goto out;
    }
    out->media_type = bare_media_type(resp.content_type);
    if (!out->media_type || kiln_oci_media_kind(out->media_type) == KILN_OCI_KIND_UNKNOWN) {
        kiln_oci_kind k = kiln_oci_document_kind(resp.body.ptr, resp.body.len, NULL);

        free(out->media_type);
        out->media_type =
                xstrdup(k == KILN_OCI_KIND_INDEX ? KILN_OCI_MT_INDEX : KILN_OCI_MT_MANIFEST);
    }
    out->digest = xstrdup(dg);
    out->len = resp.body.len;
    out->data = kiln_buf_detach(&resp.body);
out:
    kiln_registry__response_dispose(&resp);
    return ret;
}

/* kiln_registry_resolve: see registry.h. */
int
kiln_registry_resolve(kiln_registry *r, const kiln_oci_ref *ref, kiln_oci_descriptor *out,
                      kiln_error **err)
{
    reg_response resp = {.content_length = -1};
    cleanup_free char *what = kiln_oci_ref_string(ref);
    kiln_registry_manifest m = {0};
    cleanup_free char *mt = NULL;
    int ret;

    memset(out, 0, sizeof(*out));
    ret = manifest_request(r, ref, "HEAD", &resp, err);
    if (ret < 0)
        goto out;
    mt = bare_media_type(resp.content_type);
    if (resp.digest && kiln_oci_digest_valid(resp.digest) && resp.content_length >= 0 && mt &&
        kiln_oci_media_kind(mt) != KILN_OCI_KIND_UNKNOWN) {
        if (ref->digest && strcmp(ref->digest, resp.digest) != 0) {
            ret = kiln_error_set(err, KILN_EDIGEST, "%s: registry reports digest %s", what,
                                 resp.digest);
            goto out;
        }
        out->media_type = steal_pointer(&mt);
        out->digest = xstrdup(resp.digest);
        out->size = resp.content_length;
        goto out;
    }
    /* older registries omit the digest on HEAD: fetch and hash (distribution-spec §3.3) */
    ret = kiln_registry_get_manifest(r, ref, &m, err);
    if (ret < 0)
        goto out;
    out->media_type = steal_pointer(&m.media_type);
    out->digest = steal_pointer(&m.digest);
    out->size = (int64_t)m.len;
out:
    kiln_registry_manifest_dispose(&m);
    kiln_registry__response_dispose(&resp);
    return ret;
}

/* kiln_registry_get_image_manifest: see registry.h. */
int
kiln_registry_get_image_manifest(kiln_registry *r, const kiln_oci_ref *ref,
                                 const kiln_oci_platform *platform, kiln_registry_manifest *out,
                                 kiln_error **err)
{
    kiln_registry_manifest m = {0};
    kiln_oci_index ix = {0};
    const kiln_oci_descriptor *d = NULL;
    cleanup_free char *what = kiln_oci_ref_string(ref);
    kiln_oci_ref child = {0};
    int ret;

    memset(out, 0, sizeof(*out));
    ret = kiln_registry_get_manifest(r, ref, &m, err);
    if (ret < 0)
        return ret;
    /* one level of index only: nested indexes are not produced by image builders */
    if (kiln_oci_document_kind(m.data, m.len, m.media_type) != KILN_OCI_KIND_INDEX) {
        *out = m;
        return 0;
    }
    if ((ret = kiln_oci_index_parse(&ix, m.data, m.len, m.media_type, err)) < 0 ||
        (ret = kiln_oci_index_select(&d, &ix, platform, err)) < 0) {
        kiln_error_wrap(err, "%s", what);
        goto out;
    }
    kiln_oci_ref_copy(&child, ref);
    free(child.digest);
    child.digest = xstrdup(d->digest);
    ret = kiln_registry_get_manifest(r, &child, out, err);
    if (ret == 0 && kiln_oci_media_kind(out->media_type) != KILN_OCI_KIND_MANIFEST) {
        ret = kiln_error_set(err, KILN_EUNSUPPORTED,
                             "%s: platform entry %s is not an image "
                             "manifest (%s)",
                             what, d->digest, out->media_type);
        kiln_registry_manifest_dispose(out);
    }
out:
    kiln_oci_ref_dispose(&child);
    kiln_oci_index_dispose(&ix);
    kiln_registry_manifest_dispose(&m);
    return ret;
}

/* Counts and hashes blob bytes on their way to the caller's sink. After an interrupted transfer
 * the pull resumes with a Range request; a registry that ignores Range answers 200 with the whole
 * blob again, whose first `got` bytes are then skipped (the caller has them already). */
typedef struct blob_sink {
    kiln_registry_write_fn write;
    void *payload;
    kiln_sha256_ctx *ctx;
    int64_t got;  /* bytes delivered to the caller */
    int64_t size; /* expected size or -1 */
    const char *digest;
    const reg_response *resp; /* current attempt, for its status */
    int64_t attempt_start;    /* `got` when this attempt started */
    int64_t attempt_pos;      /* stream position within this attempt's body */
} blob_sink;

static int
blob_sink_write(void *payload, const void *data, size_t len, kiln_error **err)
{
    blob_sink *s = payload;
    const char *p = data;

    if (s->resp->status == 200 && s->attempt_start > 0) {
        /* full body again: drop what the caller already has */
        int64_t skip = s->attempt_start - s->attempt_pos;

        s->attempt_pos += (int64_t)len;
        if (skip >= (int64_t)len)
            return 0;
        if (skip > 0) {
            p += skip;
            len -= (size_t)skip;
        }
    }
    if (s->size >= 0 && s->got + (int64_t)len > s->size)
        return kiln_error_set(err, KILN_EDIGEST,
                              "blob %s: more than the expected %" PRId64 " bytes", s->digest,
                              s->size);
    s->got += (int64_t)len;
    kiln_sha256_ctx_update(s->ctx, p, len);
    return s->write(s->payload, p, len, err);
}

/* Run the GET, resuming after transient transport failures (up to max_retries times). */
static int
blob_transfer(kiln_registry *r, reg_request *req, blob_sink *s, reg_response *resp,
              kiln_error **err)
{
    char range[48];
    int ret;

    for (int resumes = 0;; resumes++) {
        kiln_error *tmp = NULL;

        s->attempt_start = s->got;
        s->attempt_pos = 0;
        req->range = NULL;
        if (s->got > 0) {
            snprintf(range, sizeof(range), "bytes=%" PRId64 "-", s->got);
            req->range = range;
        }
        ret = kiln_registry__do(r, req, resp, &tmp);
        /* resume only after progress: __do already retried failures before the first byte */
        if (ret < 0 && resp->transient && s->got > s->attempt_start &&
            resumes < r->opts.max_retries) {
            kiln_log_debug("resume %s at byte %" PRId64 ": %s", req->url, s->got, tmp->msg);
            kiln_error_free(&tmp);
            continue;
        }
        if (ret < 0)
            return kiln_error_move(err, &tmp);
        /* 206 is a success only when we asked for a range */
        if (resp->status == 206 && req->range)
            resp->status = 200;
        return 0;
    }
}

/* kiln_registry_get_blob: see registry.h. */
int
kiln_registry_get_blob(kiln_registry *r, const kiln_oci_ref *ref, const char *digest, int64_t size,
                       kiln_registry_write_fn write, void *payload, kiln_error **err)
{
    reg_response resp = {.content_length = -1};
    blob_sink s = {write, payload, NULL, 0, size, digest, &resp, 0, 0};
    cleanup_free char *url = NULL, *name = kiln_oci_ref_name(ref);
    char got[KILN_DIGEST_STRLEN + 1];
    kiln_sha256 d;
    reg_request req;
    int ret;

    if (!kiln_oci_digest_valid(digest))
        return kiln_error_set(err, KILN_EINVAL, "%s: invalid blob digest `%s`", name, digest);
    if (!kiln_str_has_prefix(digest, "sha256:"))
        return kiln_error_set(err, KILN_EUNSUPPORTED, "%s: blob %s: only sha256 is supported", name,
                              digest);
    url = repo_url(r, ref, "blobs", digest);
    init_request(&req, "GET", url, ref, "pull");
    req.sink = blob_sink_write;
    req.sink_payload = &s;
    req.follow_redirects = true;
    kiln_sha256_ctx_new(&s.ctx);
    ret = blob_transfer(r, &req, &s, &resp, err);
    if (ret < 0) {
        kiln_error_wrap(err, "pull blob %s from %s", digest, name);
    } else if (resp.status != 200) {
        cleanup_free char *what = xasprintf("blob %s in %s", digest, name);

        ret = kiln_registry__status_error(&resp, what, err);
    } else if (size >= 0 && s.got != size) {
        ret = kiln_error_set(err, KILN_EDIGEST,
                             "blob %s from %s: got %" PRId64 " bytes, expected %" PRId64, digest,
                             name, s.got, size);
    } else {
        kiln_sha256_ctx_final(s.ctx, &d);
        kiln_digest_format(got, &d);
        if (strcmp(got, digest) != 0)
            ret = kiln_error_set(err, KILN_EDIGEST,
                                 "blob from %s: content has digest %s, expected %s", name, got,
                                 digest);
    }
    kiln_sha256_ctx_free(s.ctx);
    kiln_registry__response_dispose(&resp);
    return ret;
}

/* kiln_registry_blob_exists: see registry.h. */
int
kiln_registry_blob_exists(kiln_registry *r, const kiln_oci_ref *ref, const char *digest,
                          bool *exists, kiln_error **err)
{
    return kiln_registry__blob_exists(r, ref, digest, "pull", exists, err);
}

/* kiln_registry__blob_exists: see registry_internal.h. */
int
kiln_registry__blob_exists(kiln_registry *r, const kiln_oci_ref *ref, const char *digest,
                           const char *actions, bool *exists, kiln_error **err)
{
    reg_response resp = {.content_length = -1};
    cleanup_free char *url = repo_url(r, ref, "blobs", digest);
    cleanup_free char *what = NULL;
    reg_request req;
    int ret;

    init_request(&req, "HEAD", url, ref, actions);
    req.follow_redirects = true;
    ret = kiln_registry__do(r, &req, &resp, err);
    if (ret == 0 && (resp.status == 200 || resp.status == 404)) {
        *exists = resp.status == 200;
    } else if (ret == 0) {
        what = xasprintf("blob %s in %s/%s", digest, ref->domain, ref->path);
        ret = kiln_registry__status_error(&resp, what, err);
    }
    kiln_registry__response_dispose(&resp);
    return ret;
}
