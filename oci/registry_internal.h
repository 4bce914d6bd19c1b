/*
 * registry_internal.h: shared between registry_http.c (transport, auth, retries: the only place
 * that touches libcurl), registry_auth.c and registry.c (the distribution API operations).
 */
#ifndef KILN_OCI_REGISTRY_INTERNAL_H
#define KILN_OCI_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/vec.h"
#include "oci/registry.h"

#define REG_ERROR_BODY_MAX (64u << 10) /* error bodies and small responses we keep */

/* Per-host authentication state (guarded by kiln_registry.lock). */
typedef struct reg_host {
    char *host;   /* "127.0.0.1:5000", "docker.io" */
    bool loaded;  /* credentials looked up (docker config) */
    char *user;   /* or NULL */
    char *secret; /* or NULL */
    char *scheme; /* challenge scheme seen: "basic", "bearer", or NULL */
    char *realm;
    char *service;
    kiln_vec tokens; /* reg_token * */
} reg_host;

typedef struct reg_token {
    char *scope; /* space-separated scopes the token was asked for */
    char *token;
    time_t expires;
} reg_token;

struct kiln_registry {
    kiln_registry_opts opts;
    char *docker_config;
    kiln_vec insecure; /* char * */
    char *user_agent;
    pthread_mutex_t lock;
    kiln_vec hosts; /* reg_host * */
    void *share;    /* CURLSH *: shared DNS and connection cache */
    pthread_mutex_t share_locks[8];
};

/* The body to send. */
typedef struct reg_body {
    const char *data; /* memory, or NULL */
    int fd;           /* or a file read with pread (when data is NULL and fd >= 0) */
    uint64_t off;     /* where the body starts in data/fd */
    uint64_t len;
} reg_body;

/* One HTTP exchange (with auth and retries inside kiln_registry__do). */
typedef struct reg_request {
    const char *method;          /* "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE" */
    char *url;                   /* absolute; owned by caller */
    const char *host;            /* auth host (ref domain), borrowed */
    const char *repo;            /* repository path for the token scope */
    const char *actions;         /* "pull" or "pull,push" */
    const char *mount_from;      /* extra "repository:<from>:pull" scope, or NULL */
    const char *accept;          /* Accept header value, or NULL */
    const char *content_type;    /* or NULL */
    const char *content_range;   /* or NULL */
    const char *range;           /* Range header value ("bytes=N-"), or NULL */
    const reg_body *body;        /* or NULL: no body (POST gets an empty one) */
    size_t max_body;             /* cap on a kept response body; 0 = REG_ERROR_BODY_MAX */
    kiln_registry_write_fn sink; /* 2xx bodies go here instead of resp->body */
    void *sink_payload;
    bool follow_redirects;
} reg_request;

typedef struct reg_response {
    long status;
    kiln_buf body;
    char *content_type;
    char *digest;
    char *location;
    char *www_authenticate;
    char *range;
    char *retry_after;
    char *content_disposition; /* kept for kiln_registry_get_url */
    char *last_modified;
    char *etag;
    int64_t content_length; /* -1 unknown */
    bool sink_used;         /* bytes went to the sink: no retry possible */
    bool transient;         /* the transport failed in a way worth resuming (after an error) */
} reg_response;

void kiln_registry__response_dispose(reg_response *resp);

/* Perform `req` with authentication (one re-try after a 401 challenge) and retries on 429/5xx
 * and transient transport errors. Returns 0 with any HTTP status in resp (the caller maps it), or
 * a negative code for transport failures (KILN_ESYS, KILN_ETIMEOUT), auth setup failures
 * (KILN_EAUTH) or a sink error. resp is owned by caller (dispose it in every case). */
int kiln_registry__do(kiln_registry *r, const reg_request *req, reg_response *resp,
                      kiln_error **err);

/* HEAD a blob asking for a token with `actions` ("pull", or "pull,push" while pushing so that
 * one token serves the whole push). */
int kiln_registry__blob_exists(kiln_registry *r, const kiln_oci_ref *ref, const char *digest,
                               const char *actions, bool *exists, kiln_error **err);

/* "http" or "https" for a registry host; "registry-1.docker.io" for docker.io. Owned by caller. */
char *kiln_registry__base_url(const kiln_registry *r, const char *host);

/* Map a non-success status to an error naming `what` (the reference); adds the registry's error
 * code and message from a JSON error body. 401/403 -> KILN_EAUTH, 404 -> KILN_ENOTFOUND,
 * 405/501 -> KILN_EUNSUPPORTED, other 4xx -> KILN_EINVAL, 5xx/other -> KILN_ESYS. */
int kiln_registry__status_error(const reg_response *resp, const char *what, kiln_error **err);

#endif
