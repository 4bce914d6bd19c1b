/*
 * registry_http.c: the transport of the registry client, and the only file of kiln that includes
 * <curl/curl.h>. One easy handle per request (so any number of threads can pull at once) sharing
 * a DNS and connection cache through a locked CURLSH; curl_global_init runs once per process.
 *
 * kiln_registry__do() wraps one request with:
 *   - authentication: the cached bearer token for (host, scope) or basic credentials; on a 401
 *     the WWW-Authenticate challenge is parsed, a token fetched from the realm (with basic
 *     credentials when known: distribution's token flow, specs.md §3.6) and the request re-sent
 * once;
 *   - retries with exponential backoff on 429 (honouring a small Retry-After), 5xx and transient
 *     transport errors, but never after response bytes reached the caller's sink;
 *   - caps on every body we keep, and on header lines.
 * Authorization is a custom header, which curl (>= 7.58) does not forward to another host on a
 * redirect (blob GETs may be redirected to storage).
 *
 * Handles use CURLOPT_NOSIGNAL (required with threads), so curl does not ignore SIGPIPE for us:
 * programs using this client must ignore SIGPIPE (TLS writes to a closed peer raise it).
 */
#define KILN_LOG_DOMAIN "registry"

#include <curl/curl.h>
#include <pthread.h>
#include <time.h>

#include "oci/oci_internal.h"
#include "oci/registry.h"
#include "oci/registry_internal.h"

#include "base/base.h"
#include "base/json.h"

#define TOKEN_MAX         (1u << 20)
#define RETRY_AFTER_MAX_S 30

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The one translation of CURLcode into kiln errors (STYLE.md B3). */
static int
error_from_curl(kiln_error **err, CURLcode rc, const char *errbuf, const char *method,
                const char *url)
{
    const char *detail = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);

    if (rc == CURLE_OPERATION_TIMEDOUT)
        return kiln_error_set(err, KILN_ETIMEOUT, "%s %s: %s", method, url, detail);
    return kiln_error_set(err, KILN_ESYS, "%s %s: %s", method, url, detail);
}

static bool
curl_transient(CURLcode rc)
{
    /* if-chain rather than switch: -Wswitch-enum over curl's ~100 codes would be noise */
    return rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT ||
           rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
           rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE || rc == CURLE_HTTP2 ||
           rc == CURLE_HTTP2_STREAM;
}

/* ---- client lifecycle ------------------------------------------------------------------------ */

static void
share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userp)
{
    kiln_registry *r = userp;

    (void)h;
    (void)access;
    pthread_mutex_lock(&r->share_locks[(unsigned)data % 8]);
}

static void
share_unlock(CURL *h, curl_lock_data data, void *userp)
{
    kiln_registry *r = userp;

    (void)h;
    pthread_mutex_unlock(&r->share_locks[(unsigned)data % 8]);
}

/* kiln_registry_new: see registry.h. */
int
kiln_registry_new(kiln_registry **out, const kiln_registry_opts *opts, kiln_error **err)
{
    kiln_registry_opts defaults = KILN_REGISTRY_OPTS_INIT;
    kiln_registry *r;
    CURLSH *sh;

    if (!opts)
        opts = &defaults;
    if (opts->version != KILN_REGISTRY_OPTS_VERSION)
        return kiln_error_set(err, KILN_EINVAL, "registry options: unknown version %d",
                              opts->version);
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return kiln_error_set(err, KILN_EINTERNAL, "curl_global_init: %s",
                              curl_easy_strerror(curl_init_rc));
    r = xnew(kiln_registry);
    r->opts = *opts;
    r->docker_config = xstrdup(opts->docker_config);
    r->user_agent = xstrdup(opts->user_agent ? opts->user_agent : "kiln/0.1");
    for (size_t i = 0; opts->insecure && opts->insecure[i]; i++)
        kiln_strvec_push(&r->insecure, opts->insecure[i]);
    if (r->opts.max_retries == 0)
        r->opts.max_retries = 4;
    if (r->opts.retry_base_ms <= 0)
        r->opts.retry_base_ms = 200;
    pthread_mutex_init(&r->lock, NULL);
    for (int i = 0; i < 8; i++)
        pthread_mutex_init(&r->share_locks[i], NULL);
    sh = curl_share_init();
    if (sh) {
        curl_share_setopt(sh, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(sh, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(sh, CURLSHOPT_USERDATA, r);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    }
    r->share = sh;
    *out = r;
    return 0;
}

static void
token_free(void *p)
{
    reg_token *t = p;

    free(t->scope);
    free(t->token);
    free(t);
}

static void
host_free(void *p)
{
    reg_host *h = p;

    free(h->host);
    free(h->user);
    free(h->secret);
    free(h->scheme);
    free(h->realm);
    free(h->service);
    kiln_vec_dispose(&h->tokens, token_free);
    free(h);
}

/* kiln_registry_free: NULL-safe; no request may be running. */
void
kiln_registry_free(kiln_registry *r)
{
    if (!r)
        return;
    if (r->share)
        curl_share_cleanup(r->share);
    kiln_vec_dispose(&r->hosts, host_free);
    kiln_strvec_dispose(&r->insecure);
    free(r->docker_config);
    free(r->user_agent);
    pthread_mutex_destroy(&r->lock);
    for (int i = 0; i < 8; i++)
        pthread_mutex_destroy(&r->share_locks[i]);
    free(r);
}

/* The state of `host`, created on first use. Call with r->lock held. */
static reg_host *
host_get(kiln_registry *r, const char *host)
{
    reg_host *h;

    kiln_vec_foreach(&r->hosts, i, h) {
        if (strcmp(h->host, host) == 0)
            return h;
    }
    h = xnew(reg_host);
    h->host = xstrdup(host);
    kiln_vec_push(&r->hosts, h);
    return h;
}

/* kiln_registry_set_credentials: see registry.h. */
void
kiln_registry_set_credentials(kiln_registry *r, const char *host, const char *username,
                              const char *password)
{
    reg_host *h;

    pthread_mutex_lock(&r->lock);
    h = host_get(r, host);
    free(h->user);
    free(h->secret);
    h->user = xstrdup(username);
    h->secret = xstrdup(password);
    h->loaded = true;
    kiln_vec_dispose(&h->tokens, token_free);
    pthread_mutex_unlock(&r->lock);
}

/* Host without port, brackets removed ("[::1]:5000" -> "::1"). Owned by caller. */
static char *
host_only(const char *host)
{
    if (host[0] == '[') {
        const char *end = strchr(host, ']');

        return end ? xstrndup(host + 1, (size_t)(end - host - 1)) : xstrdup(host);
    }
    return xstrndup(host, strcspn(host, ":"));
}

static bool
plain_http(const kiln_registry *r, const char *host)
{
    cleanup_free char *h = host_only(host);
    const char *s;

    if (strcmp(h, "localhost") == 0 || strcmp(h, "::1") == 0 || kiln_str_has_prefix(h, "127."))
        return true;
    kiln_vec_foreach(&r->insecure, i, s) {
        if (strcmp(s, host) == 0 || strcmp(s, h) == 0)
            return true;
    }
    return false;
}

/* kiln_registry__base_url: see registry_internal.h. */
char *
kiln_registry__base_url(const kiln_registry *r, const char *host)
{
    const char *api = strcmp(host, "docker.io") == 0 ? "registry-1.docker.io" : host;

    return xasprintf("%s://%s", plain_http(r, host) ? "http" : "https", api);
}

/* ---- one HTTP exchange ----------------------------------------------------------------------- */

typedef struct xfer {
    const reg_request *req;
    reg_response *resp;
    CURL *curl;
    uint64_t sent;
    kiln_error *sink_err;
    bool header_overflow;
    size_t header_bytes;
} xfer;

static void
take_header(char **slot, const char *v, size_t n)
{
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    free(*slot);
    *slot = xstrndup(v, n);
}

static size_t
header_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    xfer *x = userp;
    size_t n = size * nitems;
    const char *colon = memchr(buf, ':', n);
    reg_response *resp = x->resp;
    static const struct {
        const char *name;
        size_t off;
    } wanted[] = {
            {"content-type", offsetof(reg_response, content_type)},
            {"docker-content-digest", offsetof(reg_response, digest)},
            {"location", offsetof(reg_response, location)},
            {"www-authenticate", offsetof(reg_response, www_authenticate)},
            {"range", offsetof(reg_response, range)},
            {"retry-after", offsetof(reg_response, retry_after)},
            {"content-disposition", offsetof(reg_response, content_disposition)},
            {"last-modified", offsetof(reg_response, last_modified)},
            {"etag", offsetof(reg_response, etag)},
    };

    x->header_bytes += n;
    if (x->header_bytes > 256u << 10) {
        x->header_overflow = true;
        return 0;
    }
    if (n > 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* a new response (after a redirect or 100): forget the previous headers */
        free(resp->location);
        resp->location = NULL;
        free(resp->www_authenticate);
        resp->www_authenticate = NULL;
        free(resp->content_disposition);
        resp->content_disposition = NULL;
        free(resp->last_modified);
        resp->last_modified = NULL;
        free(resp->etag);
        resp->etag = NULL;
        return n;
    }
    if (!colon)
        return n;
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        size_t len = strlen(wanted[i].name);

        if ((size_t)(colon - buf) == len && strncasecmp(buf, wanted[i].name, len) == 0)
            take_header((char **)((char *)resp + wanted[i].off), colon + 1,
                        n - (size_t)(colon + 1 - buf));
    }
    return n;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    xfer *x = userp;
    size_t n = size * nmemb;
    long status = 0;

    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    if (x->req->sink && status >= 200 && status < 300) {
        x->resp->sink_used = true;
        x->resp->status = status; /* the sink may need to know 200 from 206 */
        if (x->req->sink(x->req->sink_payload, data, n, &x->sink_err) < 0)
            return 0;
        return n;
    }
    if (kiln_buf_put(&x->resp->body, data, n, NULL) < 0 && status >= 200 && status < 300) {
        kiln_error_set(&x->sink_err, KILN_EINVAL, "response body larger than %zu bytes",
                       x->resp->body.max);
        return 0;
    }
    return n; /* an oversized error body is truncated, not fatal */
}

static size_t
read_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    xfer *x = userp;
    const reg_body *b = x->req->body;
    uint64_t left = b->len - x->sent;
    size_t n = size * nitems;
    ssize_t got;

    if (n > left)
        n = (size_t)left;
    if (n == 0)
        return 0;
    if (b->data) {
        memcpy(buf, b->data + b->off + x->sent, n);
        got = (ssize_t)n;
    } else {
        do
            got = pread(b->fd, buf, n, (off_t)(b->off + x->sent));
        while (got < 0 && errno == EINTR);
        if (got <= 0) {
            kiln_error_errno(&x->sink_err, got < 0 ? errno : EIO, "read blob for upload");
            return CURL_READFUNC_ABORT;
        }
    }
    x->sent += (uint64_t)got;
    return (size_t)got;
}

static struct curl_slist *
build_headers(const reg_request *req, const char *auth)
{
    struct curl_slist *h = NULL;
    char line[1024];

    h = curl_slist_append(h, "Expect:");
    if (req->accept) {
        snprintf(line, sizeof(line), "Accept: %s", req->accept);
        h = curl_slist_append(h, line);
    }
    if (req->content_type) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        h = curl_slist_append(h, line);
    }
    if (req->range) {
        snprintf(line, sizeof(line), "Range: %s", req->range);
        h = curl_slist_append(h, line);
    }
    if (req->content_range) {
        snprintf(line, sizeof(line), "Content-Range: %s", req->content_range);
        h = curl_slist_append(h, line);
    }
    if (auth) {
        char *a = xasprintf("Authorization: %s", auth);

        h = curl_slist_append(h, a);
        free(a);
    }
    return h;
}

static void
setup_body(CURL *c, const reg_request *req, xfer *x)
{
    bool is_post = strcmp(req->method, "POST") == 0;

    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (req->body && !is_post) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, x);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body->len);
        if (strcmp(req->method, "PUT") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (is_post) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        if (req->body) {
            curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
            curl_easy_setopt(c, CURLOPT_READDATA, x);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body->len);
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        }
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    }
}

/* One attempt. Returns 0 with resp filled (any status), or a negative code. */
static int
perform(kiln_registry *r, const reg_request *req, const char *auth, reg_response *resp,
        bool *transient, kiln_error **err)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = build_headers(req, auth);
    xfer x = {.req = req, .resp = resp};
    curl_off_t cl = -1;
    CURL *c = curl_easy_init();
    CURLcode rc;
    int ret = 0;

    if (!c) {
        curl_slist_free_all(headers);
        return kiln_error_set(err, KILN_EINTERNAL, "curl_easy_init failed");
    }
    x.curl = c;
    kiln_buf_init(&resp->body, req->max_body ? req->max_body : REG_ERROR_BODY_MAX);
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_SHARE, r->share);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, r->user_agent);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 120L);
    if (r->opts.timeout_s > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT, r->opts.timeout_s);
    if (req->follow_redirects) {
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    }
    setup_body(c, req, &x);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
        resp->content_length = cl;
    if (x.sink_err) {
        ret = kiln_error_move(err, &x.sink_err);
    } else if (x.header_overflow) {
        ret = kiln_error_set(err, KILN_EPARSE, "%s %s: response headers too large", req->method,
                             req->url);
    } else if (rc != CURLE_OK) {
        *transient = curl_transient(rc);
        ret = error_from_curl(err, rc, errbuf, req->method, req->url);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return ret;
}

/* kiln_registry__response_dispose: free what resp holds and reset it for another attempt. */
void
kiln_registry__response_dispose(reg_response *resp)
{
    kiln_buf_dispose(&resp->body);
    free(resp->content_type);
    free(resp->digest);
    free(resp->location);
    free(resp->www_authenticate);
    free(resp->range);
    free(resp->retry_after);
    free(resp->content_disposition);
    free(resp->last_modified);
    free(resp->etag);
    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
}

/* ---- authentication ------------------------------------------------------------------------- */

static char *
request_scope(const reg_request *req)
{
    if (!req->repo)
        return xstrdup("");
    if (req->mount_from)
        return xasprintf("repository:%s:%s repository:%s:pull", req->repo, req->actions,
                         req->mount_from);
    return xasprintf("repository:%s:%s", req->repo, req->actions);
}

/* The Authorization value for a request, or NULL (anonymous). Owned by caller. */
static char *
auth_header(kiln_registry *r, const char *host, const char *scope)
{
    char *auth = NULL;
    reg_host *h;
    reg_token *t;
    time_t now = time(NULL);

    pthread_mutex_lock(&r->lock);
    h = host_get(r, host);
    if (kiln_str_eq(h->scheme, "bearer")) {
        kiln_vec_foreach(&h->tokens, i, t) {
            if (strcmp(t->scope, scope) == 0 && t->expires > now) {
                auth = xasprintf("Bearer %s", t->token);
                break;
            }
        }
    } else if (kiln_str_eq(h->scheme, "basic") && h->user) {
        cleanup_free char *up = xasprintf("%s:%s", h->user, h->secret ? h->secret : "");
        cleanup_free char *b64 = kiln_oci__base64_encode(up, strlen(up));

        auth = xasprintf("Basic %s", b64);
    }
    pthread_mutex_unlock(&r->lock);
    return auth;
}

/* Look up the credentials of `host` once (outside the lock: a helper may run). */
static int
load_credentials(kiln_registry *r, const char *host, char **user, char **secret, kiln_error **err)
{
    reg_host *h;
    bool loaded;
    int ret;

    pthread_mutex_lock(&r->lock);
    h = host_get(r, host);
    loaded = h->loaded;
    *user = xstrdup(h->user);
    *secret = xstrdup(h->secret);
    pthread_mutex_unlock(&r->lock);
    if (loaded)
        return 0;
    ret = kiln_registry_lookup_credentials(user, secret, r->docker_config, host, err);
    if (ret < 0)
        return ret;
    pthread_mutex_lock(&r->lock);
    h = host_get(r, host);
    if (!h->loaded) {
        h->user = xstrdup(*user);
        h->secret = xstrdup(*secret);
        h->loaded = true;
    }
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static char *
escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s ? s : "", 0);
    char *copy = xstrdup(e ? e : "");

    curl_free(e);
    return copy;
}

/* Build the token request: GET realm?service=&scope=... (specs.md §3.6 3a), or the OAuth2 POST
 * with a refresh token when the credentials are an identity token (user "<token>", 3b). */
static void
token_request(reg_request *tr, reg_body *body, char **form, const kiln_registry_challenge *ch,
              const char *scope, const char *user, const char *secret)
{
    cleanup_free char *svc = escape(ch->service);
    kiln_buf url = KILN_BUF_INIT;
    cleanup_free char *copy = xstrdup(scope);
    char *save = NULL;

    memset(tr, 0, sizeof(*tr));
    tr->max_body = TOKEN_MAX;
    if (user && strcmp(user, "<token>") == 0) {
        cleanup_free char *sc = escape(scope), *rt = escape(secret);

        *form = xasprintf("grant_type=refresh_token&refresh_token=%s&service=%s&client_id=kiln"
                          "&scope=%s&access_type=offline",
                          rt, svc, sc);
        body->data = *form;
        body->fd = -1;
        body->off = 0;
        body->len = strlen(*form);
        tr->method = "POST";
        tr->body = body;
        tr->content_type = "application/x-www-form-urlencoded";
        tr->url = xstrdup(ch->realm);
        return;
    }
    kiln_buf_printf(&url, NULL, "%s%sservice=%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?",
                    svc);
    for (char *s = strtok_r(copy, " ", &save); s; s = strtok_r(NULL, " ", &save)) {
        cleanup_free char *e = escape(s);

        kiln_buf_printf(&url, NULL, "&scope=%s", e);
    }
    tr->method = "GET";
    tr->url = kiln_buf_detach(&url);
}

/* Drop expired tokens (call with r->lock held). */
static void
token_prune(kiln_vec *tokens, time_t now)
{
    for (size_t i = tokens->len; i-- > 0;) {
        reg_token *t = kiln_vec_get(tokens, i);

        if (t->expires <= now)
            token_free(kiln_vec_remove(tokens, i));
    }
}

/* Fetch a bearer token for `scope` and cache it. */
static int
fetch_token(kiln_registry *r, const char *host, const kiln_registry_challenge *ch,
            const char *scope, const char *user, const char *secret, kiln_error **err)
{
    reg_request tr;
    reg_body body;
    cleanup_free char *form = NULL, *auth = NULL;
    reg_response resp = {.content_length = -1};
    cleanup_json json_t *j = NULL;
    const char *tok = NULL;
    int64_t expires_in = 60;
    bool transient = false;
    reg_token *t;
    int ret;

    if (!ch->realm ||
        !(kiln_str_has_prefix(ch->realm, "http://") || kiln_str_has_prefix(ch->realm, "https://")))
        return kiln_error_set(err, KILN_EAUTH, "%s: bearer challenge without a usable realm", host);
    token_request(&tr, &body, &form, ch, scope, user, secret);
    if (user && strcmp(user, "<token>") != 0) {
        cleanup_free char *up = xasprintf("%s:%s", user, secret ? secret : "");
        cleanup_free char *b64 = kiln_oci__base64_encode(up, strlen(up));

        auth = xasprintf("Basic %s", b64);
    }
    ret = perform(r, &tr, auth, &resp, &transient, err);
    if (ret == 0 && resp.status != 200)
        ret = kiln_registry__status_error(&resp, ch->realm, err);
    if (ret == 0)
        ret = kiln_json_parse(&j, resp.body.ptr, resp.body.len, TOKEN_MAX, "token response", err);
    if (ret == 0 && (ret = kiln_json_get_str(j, "token", false, &tok, err)) == 0 && !tok)
        ret = kiln_json_get_str(j, "access_token", true, &tok, err);
    if (ret == 0)
        ret = kiln_json_get_int(j, "expires_in", false, &expires_in, err);
    free(tr.url);
    kiln_registry__response_dispose(&resp);
    if (ret < 0)
        return kiln_error_wrap(err, "get token for %s", host);
    t = xnew(reg_token);
    t->scope = xstrdup(scope);
    t->token = xstrdup(tok);
    t->expires = time(NULL) + (expires_in < 60 ? 60 : expires_in) - 5;
    pthread_mutex_lock(&r->lock);
    token_prune(&host_get(r, host)->tokens, time(NULL));
    kiln_vec_push(&host_get(r, host)->tokens, t);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static void
set_scheme(kiln_registry *r, const char *host, const char *scheme)
{
    reg_host *h;

    pthread_mutex_lock(&r->lock);
    h = host_get(r, host);
    free(h->scheme);
    h->scheme = xstrdup(scheme);
    pthread_mutex_unlock(&r->lock);
}

/* React to a 401: returns 1 when the request should be re-sent, 0 when not (no usable challenge,
 * no credentials for basic auth), or a negative code. */
static int
handle_challenge(kiln_registry *r, const reg_request *req, const char *scope,
                 const reg_response *resp, kiln_error **err)
{
    kiln_registry_challenge ch = {0};
    cleanup_free char *user = NULL, *secret = NULL;
    kiln_error *tmp = NULL;
    int ret;

    if (!resp->www_authenticate ||
        kiln_registry_parse_challenge(&ch, resp->www_authenticate, &tmp) < 0) {
        kiln_error_free(&tmp);
        return 0;
    }
    ret = load_credentials(r, req->host, &user, &secret, err);
    if (ret < 0)
        goto out;
    if (strcmp(ch.scheme, "basic") == 0) {
        set_scheme(r, req->host, "basic");
        ret = user ? 1 : 0;
    } else if (strcmp(ch.scheme, "bearer") == 0) {
        set_scheme(r, req->host, "bearer");
        ret = fetch_token(r, req->host, &ch, scope, user, secret, err);
        ret = ret < 0 ? ret : 1;
    } else {
        ret = 0;
    }
out:
    kiln_registry_challenge_dispose(&ch);
    return ret;
}

/* ---- retries -----------------------------------------------------------------------------------
 */

static void
backoff(const kiln_registry *r, int attempt, const reg_response *resp)
{
    int64_t ms = r->opts.retry_base_ms << (attempt < 6 ? attempt : 6);
    struct timespec ts;
    int64_t ra;

    if (resp && resp->retry_after &&
        kiln_parse_i64(resp->retry_after, &ra, "Retry-After", NULL) == 0 && ra >= 0)
        ms = (ra > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : ra) * 1000;
    if (ms > 10000 && !(resp && resp->retry_after))
        ms = 10000;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* kiln_registry__do: see registry_internal.h. */
int
kiln_registry__do(kiln_registry *r, const reg_request *req, reg_response *resp, kiln_error **err)
{
    cleanup_free char *scope = request_scope(req);
    int attempt = 0, auth_round = 0, ret;

    for (;;) {
        cleanup_free char *auth = auth_header(r, req->host, scope);
        kiln_error *tmp = NULL;
        bool transient = false;

        kiln_registry__response_dispose(resp);
        ret = perform(r, req, auth, resp, &transient, &tmp);
        if (ret < 0) {
            resp->transient = transient;
            if (!transient || resp->sink_used || attempt >= r->opts.max_retries)
                return kiln_error_move(err, &tmp);
            kiln_log(KILN_LOG_DEBUG, "retrying %s %s: %s", req->method, req->url, tmp->msg);
            kiln_error_free(&tmp);
            backoff(r, attempt++, NULL);
            continue;
        }
        if (resp->status == 401 && auth_round < 2 && !resp->sink_used) {
            auth_round++;
            ret = handle_challenge(r, req, scope, resp, err);
            if (ret < 0)
                return ret;
            if (ret == 1)
                continue;
            return 0;
        }
        if ((resp->status == 429 || resp->status >= 500) && !resp->sink_used &&
            attempt < r->opts.max_retries) {
            backoff(r, attempt++, resp);
            continue;
        }
        return 0;
    }
}

/* kiln_registry__status_error: see registry_internal.h. */
int
kiln_registry__status_error(const reg_response *resp, const char *what, kiln_error **err)
{
    cleanup_json json_t *j = NULL;
    kiln_error *tmp = NULL;
    const char *code = NULL, *msg = NULL;
    cleanup_free char *detail = NULL;
    int kc;

    if (resp->body.len && kiln_json_parse(&j, resp->body.ptr, resp->body.len, REG_ERROR_BODY_MAX,
                                          "error", &tmp) == 0) {
        json_t *e = json_array_get(json_object_get(j, "errors"), 0);

        code = json_string_value(json_object_get(e, "code"));
        msg = json_string_value(json_object_get(e, "message"));
    }
    kiln_error_free(&tmp);
    detail = code || msg ? xasprintf(" (%s%s%s)", code ? code : "", code && msg ? ": " : "",
                                     msg ? msg : "")
                         : xstrdup("");
    switch (resp->status) {
    case 401:
        return kiln_error_set(err, KILN_EAUTH, "%s: authentication required%s", what, detail);
    case 403:
        return kiln_error_set(err, KILN_EAUTH, "%s: access denied%s", what, detail);
    case 404:
        return kiln_error_set(err, KILN_ENOTFOUND, "%s: not found%s", what, detail);
    default:
        break;
    }
    if (resp->status == 405 || resp->status == 501)
        kc = KILN_EUNSUPPORTED;
    else if (resp->status >= 400 && resp->status < 500)
        kc = KILN_EINVAL;
    else
        kc = KILN_ESYS;
    return kiln_error_set(err, kc, "%s: unexpected HTTP status %ld%s", what, resp->status, detail);
}

/* ---- plain URLs ----------------------------------------------------------------------------- */

void
kiln_registry_url_reply_dispose(kiln_registry_url_reply *r)
{
    free(r->content_disposition);
    free(r->last_modified);
    free(r->etag);
    memset(r, 0, sizeof(*r));
}

/* kiln_registry_get_url: see registry.h. */
int
kiln_registry_get_url(kiln_registry *r, const char *url, kiln_registry_write_fn sink, void *payload,
                      kiln_registry_url_reply *reply, kiln_error **err)
{
    cleanup_free char *u = xstrdup(url);
    reg_request req = {.method = "GET",
                       .url = u,
                       .sink = sink,
                       .sink_payload = payload,
                       .follow_redirects = true};
    reg_response resp = {.content_length = -1};
    int attempt = 0, ret;

    memset(reply, 0, sizeof(*reply));
    for (;;) {
        kiln_error *tmp = NULL;
        bool transient = false;

        kiln_registry__response_dispose(&resp);
        ret = perform(r, &req, NULL, &resp, &transient, &tmp);
        if (ret < 0) {
            if (!transient || resp.sink_used || attempt >= r->opts.max_retries) {
                kiln_registry__response_dispose(&resp);
                return kiln_error_move(err, &tmp);
            }
            kiln_log(KILN_LOG_DEBUG, "retrying GET %s: %s", url, tmp->msg);
            kiln_error_free(&tmp);
            backoff(r, attempt++, NULL);
            continue;
        }
        if ((resp.status == 429 || resp.status >= 500) && !resp.sink_used &&
            attempt < r->opts.max_retries) {
            backoff(r, attempt++, &resp);
            continue;
        }
        break;
    }
    reply->status = resp.status;
    reply->content_disposition = steal_pointer(&resp.content_disposition);
    reply->last_modified = steal_pointer(&resp.last_modified);
    reply->etag = steal_pointer(&resp.etag);
    kiln_registry__response_dispose(&resp);
    return 0;
}
