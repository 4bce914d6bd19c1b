/*
 * registry.h: a client of the OCI distribution API / Docker Registry HTTP API v2 (specs.md §3):
 * manifest and blob pulls with digest verification, tag resolution, pushes (blob existence check,
 * cross-repository mount, monolithic or chunked upload, manifest PUT), token (bearer) and basic
 * authentication with credentials from the docker config file and credential helpers, retries with
 * backoff on 429 and 5xx.
 *
 * Transport: https, except plain http for localhost, 127.0.0.0/8, ::1 and the registries listed
 * as insecure in the options. Docker Hub (docker.io) is reached at registry-1.docker.io.
 *
 * Thread safety: one kiln_registry may be used from several threads at once (parallel layer
 * pulls); every request uses its own curl handle, and the token/credential caches are locked.
 * Programs using the client must ignore SIGPIPE (curl runs with CURLOPT_NOSIGNAL for threads).
 */
#ifndef KILN_OCI_REGISTRY_H
#define KILN_OCI_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "oci/oci.h"

typedef struct kiln_registry kiln_registry;

typedef struct kiln_registry_opts {
    int version;               /* KILN_REGISTRY_OPTS_VERSION */
    const char *docker_config; /* directory holding config.json; NULL: $DOCKER_CONFIG, ~/.docker */
    const char *const *insecure; /* NULL-terminated "host[:port]" list reached over plain http */
    int max_retries;             /* retries on 429/5xx/transient errors; 0 = default 4; -1 = none */
    long retry_base_ms;          /* first backoff delay, doubled each retry; 0 = default 200 ms */
    long timeout_s;         /* cap on one request; 0 = none (a low-speed limit still applies) */
    size_t chunk_size;      /* > 0: upload blobs in PATCH chunks of this size */
    const char *user_agent; /* NULL = "kiln/<version>" */
} kiln_registry_opts;

#define KILN_REGISTRY_OPTS_VERSION 1
#define KILN_REGISTRY_OPTS_INIT    \
    {                              \
        KILN_REGISTRY_OPTS_VERSION \
    }

/* A manifest (or index) as fetched: exact bytes, their digest and media type. */
typedef struct kiln_registry_manifest {
    char *media_type; /* Content-Type without parameters (or the document's mediaType); owned */
    char *digest;     /* "sha256:..." of `data`; owned */
    char *data;       /* exact bytes, NUL-terminated; owned */
    size_t len;
} kiln_registry_manifest;

/* Receives blob bytes in order. Return 0, or a negative kiln_errcode (with *err set) to stop. */
typedef int (*kiln_registry_write_fn)(void *payload, const void *data, size_t len,
                                      kiln_error **err);

/* Create a client. `opts` may be NULL (defaults). KILN_EINVAL on a bad options version.
 * *out is owned by the caller (kiln_registry_free). */
int kiln_registry_new(kiln_registry **out, const kiln_registry_opts *opts, kiln_error **err);
void kiln_registry_free(kiln_registry *r);

/* Use these credentials for `host` ("127.0.0.1:5000", "docker.io") instead of the docker config.
 * Copies the strings. */
void kiln_registry_set_credentials(kiln_registry *r, const char *host, const char *username,
                                   const char *password);

/* Resolve a reference to a descriptor (media type, digest, size) with HEAD, falling back to GET
 * when the registry sends no Docker-Content-Digest. KILN_ENOTFOUND (404), KILN_EAUTH (401/403),
 * KILN_EDIGEST (pinned digest differs). *out owned by caller (kiln_oci_descriptor_dispose). */
int kiln_registry_resolve(kiln_registry *r, const kiln_oci_ref *ref, kiln_oci_descriptor *out,
                          kiln_error **err);

/* GET the manifest or index `ref` names, accepting OCI and Docker schema 2 types. The body is
 * capped at KILN_OCI_MANIFEST_MAX and verified against ref->digest (or Docker-Content-Digest).
 * Codes as kiln_registry_resolve. *out owned by caller (kiln_registry_manifest_dispose). */
int kiln_registry_get_manifest(kiln_registry *r, const kiln_oci_ref *ref,
                               kiln_registry_manifest *out, kiln_error **err);

/* Like kiln_registry_get_manifest, but when the reference names an index, select the entry for
 * `platform` (NULL = host) and fetch that image manifest. KILN_ENOTFOUND also when no platform
 * matches. */
int kiln_registry_get_image_manifest(kiln_registry *r, const kiln_oci_ref *ref,
                                     const kiln_oci_platform *platform, kiln_registry_manifest *out,
                                     kiln_error **err);
void kiln_registry_manifest_dispose(kiln_registry_manifest *m);

/* Stream blob `digest` of repository ref to `write` (following redirects; a transfer broken off
 * after some bytes resumes with a Range request, and the bytes are never delivered twice). `size`
 * >= 0 is enforced (more bytes, or fewer, is KILN_EDIGEST); -1 = unknown. The sha256 of the bytes
 * is verified at the end: KILN_EDIGEST on mismatch (the bytes were delivered already; the caller
 * must discard them). KILN_ENOTFOUND, KILN_EAUTH, KILN_EUNSUPPORTED (digest algorithm other than
 * sha256). */
int kiln_registry_get_blob(kiln_registry *r, const kiln_oci_ref *ref, const char *digest,
                           int64_t size, kiln_registry_write_fn write, void *payload,
                           kiln_error **err);

/* HEAD a blob: *exists true on 200, false on 404. */
int kiln_registry_blob_exists(kiln_registry *r, const kiln_oci_ref *ref, const char *digest,
                              bool *exists, kiln_error **err);

/* Upload a blob read from `fd` (bytes [0, size), read with pread) unless the registry has it.
 * With `mount_from` (a repository path on the same registry, e.g. "library/busybox") a
 * cross-repository mount is tried first. The upload is monolithic, or chunked when the options
 * say so. KILN_EAUTH, KILN_EDIGEST (registry computed another digest), KILN_ESYS (read). */
int kiln_registry_push_blob(kiln_registry *r, const kiln_oci_ref *ref, const char *digest,
                            int64_t size, int fd, const char *mount_from, kiln_error **err);
/* The same from memory. */
int kiln_registry_push_blob_mem(kiln_registry *r, const kiln_oci_ref *ref, const char *digest,
                                const void *data, size_t len, const char *mount_from,
                                kiln_error **err);

/* PUT a manifest (exact bytes) under ref's tag, or its digest when it has no tag. `media_type` is
 * the document's type. *digest_out (may be NULL) receives "sha256:..." (owned by caller).
 * KILN_EDIGEST when ref->digest differs from the bytes, KILN_EAUTH, KILN_EINVAL (rejected). */
int kiln_registry_put_manifest(kiln_registry *r, const kiln_oci_ref *ref, const char *media_type,
                               const char *data, size_t len, char **digest_out, kiln_error **err);

/* ---- exposed for tests and fuzzing ---------------------------------------------------------- */

/* One parsed WWW-Authenticate challenge. */
typedef struct kiln_registry_challenge {
    char *scheme;  /* lower-cased: "bearer", "basic", ... */
    char *realm;   /* or NULL */
    char *service; /* or NULL */
    char *scope;   /* or NULL */
    char *error;   /* e.g. "insufficient_scope", or NULL */
} kiln_registry_challenge;

#define KILN_REGISTRY_CHALLENGE_MAX 8192

/* Parse the first challenge of a WWW-Authenticate value (RFC 7235 / RFC 6750 syntax: scheme, then
 * comma-separated auth-params, values as tokens or quoted strings). KILN_EPARSE on malformed
 * input, KILN_EINVAL over KILN_REGISTRY_CHALLENGE_MAX bytes. *out owned by caller. */
int kiln_registry_parse_challenge(kiln_registry_challenge *out, const char *header,
                                  kiln_error **err);
void kiln_registry_challenge_dispose(kiln_registry_challenge *c);

/* Credentials for `host` from the docker config directory `dir` (NULL = default lookup, which
 * reads $DOCKER_AUTH_CONFIG first, then $DOCKER_CONFIG or ~/.docker): credHelpers[host], then
 * credsStore (running docker-credential-<name> get), then auths.
 * *user / *secret owned by the caller, NULL when nothing is configured (return 0).
 * KILN_EPARSE (bad config.json), KILN_ESYS (helper failed to run), KILN_EAUTH (helper error),
 * KILN_ETIMEOUT (helper silent for 30 s). */
int kiln_registry_lookup_credentials(char **user, char **secret, const char *dir, const char *host,
                                     kiln_error **err);

/* What kiln_registry_get_url reports about the final response (after redirects). */
typedef struct kiln_registry_url_reply {
    long status;
    char *content_disposition; /* header values, or NULL; owned */
    char *last_modified;
    char *etag;
} kiln_registry_url_reply;

void kiln_registry_url_reply_dispose(kiln_registry_url_reply *r);

/* GET any http(s) URL (the http source, remote build contexts): no registry authentication,
 * up to 5 redirects followed, proxies from the environment as curl reads them. A 2xx body goes
 * to `sink` in order; other bodies are dropped. Transient transport errors, 429 and 5xx are
 * retried with backoff while no body byte reached the sink. Returns 0 with any status in *reply
 * (the caller maps it), or KILN_ESYS / KILN_ETIMEOUT for transport failures, or the sink's error.
 * *reply is owned by the caller (dispose it in every case). */
int kiln_registry_get_url(kiln_registry *r, const char *url, kiln_registry_write_fn sink,
                          void *payload, kiln_registry_url_reply *reply, kiln_error **err);

#endif
