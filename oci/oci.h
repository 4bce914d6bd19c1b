/*
 * oci.h: OCI image formats as kiln reads and writes them (reference/specs.md §1, §3.1): image
 * references, media types, descriptors, manifests, indexes, image configs and platforms.
 *
 * Every parser takes untrusted bytes (registry responses, layout files) and enforces a size cap
 * before parsing. Structures returned by the parsers own all their strings; free them with the
 * matching _dispose function. Nothing here does I/O; the registry client is in oci/registry.h.
 */
#ifndef KILN_OCI_OCI_H
#define KILN_OCI_OCI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/vec.h"

/* ---- media types (specs.md §1.1) ----------------------------------------------------------- */
#define KILN_OCI_MT_DESCRIPTOR       "application/vnd.oci.descriptor.v1+json"
#define KILN_OCI_MT_LAYOUT_HEADER    "application/vnd.oci.layout.header.v1+json"
#define KILN_OCI_MT_INDEX            "application/vnd.oci.image.index.v1+json"
#define KILN_OCI_MT_MANIFEST         "application/vnd.oci.image.manifest.v1+json"
#define KILN_OCI_MT_CONFIG           "application/vnd.oci.image.config.v1+json"
#define KILN_OCI_MT_EMPTY            "application/vnd.oci.empty.v1+json"
#define KILN_OCI_MT_LAYER_TAR        "application/vnd.oci.image.layer.v1.tar"
#define KILN_OCI_MT_LAYER_GZIP       "application/vnd.oci.image.layer.v1.tar+gzip"
#define KILN_OCI_MT_LAYER_ZSTD       "application/vnd.oci.image.layer.v1.tar+zstd"
#define KILN_OCI_MT_LAYER_ND_TAR     "application/vnd.oci.image.layer.nondistributable.v1.tar"
#define KILN_OCI_MT_LAYER_ND_GZIP    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define KILN_OCI_MT_LAYER_ND_ZSTD    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
#define KILN_DOCKER_MT_MANIFEST      "application/vnd.docker.distribution.manifest.v2+json"
#define KILN_DOCKER_MT_LIST          "application/vnd.docker.distribution.manifest.list.v2+json"
#define KILN_DOCKER_MT_CONFIG        "application/vnd.docker.container.image.v1+json"
#define KILN_DOCKER_MT_LAYER_GZIP    "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define KILN_DOCKER_MT_LAYER_TAR     "application/vnd.docker.image.rootfs.diff.tar"
#define KILN_DOCKER_MT_LAYER_FOREIGN "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#define KILN_DOCKER_MT_SCHEMA1       "application/vnd.docker.distribution.manifest.v1+prettyjws"

/* What a media type names. */
typedef enum kiln_oci_kind {
    KILN_OCI_KIND_UNKNOWN = 0, /* unknown types MUST NOT error when stored or copied */
    KILN_OCI_KIND_MANIFEST,    /* OCI manifest or Docker schema 2 manifest */
    KILN_OCI_KIND_INDEX,       /* OCI index or Docker manifest list */
    KILN_OCI_KIND_CONFIG,      /* OCI or Docker image config */
    KILN_OCI_KIND_LAYER,       /* any layer, see kiln_oci_layer_compression */
    KILN_OCI_KIND_SCHEMA1,     /* legacy Docker schema 1: rejected */
} kiln_oci_kind;

typedef enum kiln_oci_compression {
    KILN_OCI_COMP_NONE = 0,
    KILN_OCI_COMP_GZIP,
    KILN_OCI_COMP_ZSTD,
} kiln_oci_compression;

/* Classify a media type; parameters (";charset=...") and surrounding spaces are ignored. */
kiln_oci_kind kiln_oci_media_kind(const char *media_type);
/* The compression of a layer media type; KILN_EUNSUPPORTED when `media_type` is no known layer. */
int kiln_oci_layer_compression(kiln_oci_compression *out, const char *media_type, kiln_error **err);
/* True for the (deprecated) non-distributable / foreign layer types: never uploaded. */
bool kiln_oci_layer_nondistributable(const char *media_type);
/* True when `s` matches the RFC 6838 media type grammar of the descriptor schema. */
bool kiln_oci_media_type_valid(const char *s);
/* True when `s` matches the OCI digest grammar, with the strict sha256/sha512 rules of §1.2. */
bool kiln_oci_digest_valid(const char *s);

/* ---- image references (specs.md §3.1, docker's normalisation) ------------------------------ */
typedef struct kiln_oci_ref {
    char *domain; /* "docker.io", "127.0.0.1:5000", "[::1]:5000"; owned */
    char *path;   /* repository path, "library/busybox"; owned */
    char *tag;    /* "latest" when neither tag nor digest was given; NULL with a digest only */
    char *digest; /* "sha256:<hex>" or NULL */
} kiln_oci_ref;

#define KILN_OCI_REF_MAX 255 /* domain + "/" + path, as docker caps it */

/* Parse and normalise a reference like docker: `busybox` -> docker.io/library/busybox:latest,
 * `host:port/repo:tag@sha256:...`. KILN_EINVAL naming the reference and the offending part.
 * *out is owned by the caller (kiln_oci_ref_dispose); untouched on failure. */
int kiln_oci_ref_parse(kiln_oci_ref *out, const char *s, kiln_error **err);
void kiln_oci_ref_dispose(kiln_oci_ref *ref);
/* "domain/path[:tag][@digest]"; owned by caller. */
char *kiln_oci_ref_string(const kiln_oci_ref *ref);
/* "domain/path"; owned by caller. */
char *kiln_oci_ref_name(const kiln_oci_ref *ref);
/* The digest if set, else the tag (what goes after /manifests/). Borrowed from ref. */
const char *kiln_oci_ref_object(const kiln_oci_ref *ref);
/* Deep copy into *out (owned by caller). */
void kiln_oci_ref_copy(kiln_oci_ref *out, const kiln_oci_ref *ref);

/* ---- platforms ------------------------------------------------------------------------------ */
typedef struct kiln_oci_platform {
    char *os;             /* GOOS, e.g. "linux" */
    char *architecture;   /* GOARCH, e.g. "amd64" */
    char *variant;        /* "v8", or NULL */
    char *os_version;     /* or NULL */
    kiln_vec os_features; /* char * owned */
    kiln_vec features;    /* char * owned */
} kiln_oci_platform;

/* Parse "os/arch[/variant]" (e.g. "linux/arm64/v8", also "linux/x86_64" -> amd64) and normalise
 * it. KILN_EINVAL on junk. */
int kiln_oci_platform_parse(kiln_oci_platform *out, const char *s, kiln_error **err);
/* The platform of this machine (architecture from uname, mapped to GOARCH). */
void kiln_oci_platform_host(kiln_oci_platform *out);
/* Normalise in place: lower case, aliases (x86_64, aarch64, armhf...) to GOARCH, default arm
 * variants (arm -> v7, arm64 -> v8 when unset). */
void kiln_oci_platform_normalize(kiln_oci_platform *p);
/* Whether an index entry with platform `have` can run as `want` (both normalised copies are
 * compared: os and architecture equal; variant equal, or arm64 v8 matching an unset variant). */
bool kiln_oci_platform_match(const kiln_oci_platform *want, const kiln_oci_platform *have);
/* "os/arch[/variant]"; owned by caller. */
char *kiln_oci_platform_string(const kiln_oci_platform *p);
void kiln_oci_platform_copy(kiln_oci_platform *out, const kiln_oci_platform *p);
void kiln_oci_platform_dispose(kiln_oci_platform *p);

/* ---- descriptors, manifests, indexes -------------------------------------------------------- */
typedef struct kiln_oci_descriptor {
    char *media_type;
    char *digest;
    int64_t size;
    char *artifact_type;         /* or NULL */
    kiln_vec urls;               /* char * owned */
    json_t *annotations;         /* JSON object of strings, or NULL; owned reference */
    json_t *data;                /* embedded base64 "data" string, or NULL; owned reference */
    kiln_oci_platform *platform; /* index entries only; or NULL; owned */
} kiln_oci_descriptor;

typedef struct kiln_oci_manifest {
    char *media_type; /* from the document, else from the transport, else OCI's */
    char *artifact_type;
    kiln_oci_descriptor config;
    kiln_oci_descriptor *layers; /* n_layers entries, owned */
    size_t n_layers;
    kiln_oci_descriptor *subject; /* or NULL */
    json_t *annotations;
} kiln_oci_manifest;

typedef struct kiln_oci_index {
    char *media_type;
    char *artifact_type;
    kiln_oci_descriptor *manifests; /* n_manifests entries, owned */
    size_t n_manifests;
    kiln_oci_descriptor *subject;
    json_t *annotations;
} kiln_oci_index;

#define KILN_OCI_MANIFEST_MAX (4u << 20) /* registries must accept 4 MiB manifests */
#define KILN_OCI_CONFIG_MAX   (8u << 20)

/* Parse a descriptor object (validated media type, digest, size >= 0; embedded `data` checked
 * against size and sha256 digest). KILN_EPARSE naming `what`, KILN_EDIGEST for bad `data`. */
int kiln_oci_descriptor_from_json(kiln_oci_descriptor *out, const json_t *obj, const char *what,
                                  kiln_error **err);
/* A new JSON object for the descriptor (keys as the spec spells them). */
json_t *kiln_oci_descriptor_to_json(const kiln_oci_descriptor *d);
void kiln_oci_descriptor_copy(kiln_oci_descriptor *out, const kiln_oci_descriptor *d);
void kiln_oci_descriptor_dispose(kiln_oci_descriptor *d);

/* Parse an image manifest (OCI or Docker schema 2). `media_type` is the transport's Content-Type or
 * NULL; if the document has a mediaType too they must agree. At most KILN_OCI_MANIFEST_MAX bytes.
 * KILN_EPARSE (malformed), KILN_EUNSUPPORTED (schema 1, an index), KILN_EINVAL (too big). */
int kiln_oci_manifest_parse(kiln_oci_manifest *out, const char *data, size_t len,
                            const char *media_type, kiln_error **err);
/* Serialise to canonical JSON bytes (owned by caller, *len_out set). */
char *kiln_oci_manifest_to_json(const kiln_oci_manifest *m, size_t *len_out);
void kiln_oci_manifest_dispose(kiln_oci_manifest *m);

/* Parse an image index / Docker manifest list; same rules and codes as the manifest parser. */
int kiln_oci_index_parse(kiln_oci_index *out, const char *data, size_t len, const char *media_type,
                         kiln_error **err);
char *kiln_oci_index_to_json(const kiln_oci_index *ix, size_t *len_out);
void kiln_oci_index_dispose(kiln_oci_index *ix);

/* The kind of a manifest-ish document: the transport type if it is known, else the document's
 * mediaType, else guessed from its keys ("manifests" -> index, "layers"/"config" -> manifest). */
kiln_oci_kind kiln_oci_document_kind(const char *data, size_t len, const char *media_type);

/* Choose the entry of `ix` for platform `want` (NULL = host platform). Entries are scanned in
 * order; an exact variant match wins over a compatible one. KILN_ENOTFOUND listing the
 * available platforms. *out borrows from ix. */
int kiln_oci_index_select(const kiln_oci_descriptor **out, const kiln_oci_index *ix,
                          const kiln_oci_platform *want, kiln_error **err);

/* ---- image config (specs.md §1.5) ----------------------------------------------------------- */
typedef struct kiln_oci_healthcheck {
    kiln_vec test;    /* char * owned; empty = inherit */
    int64_t interval; /* nanoseconds; 0 = inherit */
    int64_t timeout;
    int64_t start_period;
    int64_t start_interval;
    int64_t retries;
} kiln_oci_healthcheck;

typedef struct kiln_oci_history {
    char *created;
    char *author;
    char *created_by;
    char *comment;
    bool empty_layer;
} kiln_oci_history;

typedef struct kiln_oci_config {
    char *created;
    char *author;
    kiln_oci_platform platform; /* architecture, os, variant, os.version, os.features */
    /* "config" object */
    char *user;
    kiln_vec exposed_ports; /* "80/tcp", sorted, owned */
    kiln_vec env;           /* "K=V", owned */
    kiln_vec entrypoint;    /* owned */
    bool has_entrypoint;    /* false = null/absent, true = array (possibly empty) */
    kiln_vec cmd;
    bool has_cmd;
    kiln_vec volumes; /* paths, sorted, owned */
    char *working_dir;
    json_t *labels; /* object of strings or NULL; owned reference */
    char *stop_signal;
    bool args_escaped;
    kiln_oci_healthcheck *healthcheck; /* or NULL */
    kiln_vec on_build;                 /* owned */
    kiln_vec shell;                    /* owned */
    /* rootfs */
    kiln_vec diff_ids; /* "sha256:..." owned */
    kiln_oci_history *history;
    size_t n_history;
    json_t *extra; /* unknown top-level keys (e.g. moby.buildkit.cache.v0), kept; or NULL */
} kiln_oci_config;

/* Parse an image config (OCI or Docker). Checks architecture/os present, rootfs.type "layers",
 * diff_ids are digests and the non-empty history count equals len(diff_ids) when history exists.
 * KILN_EPARSE (naming the field), KILN_EINVAL (over KILN_OCI_CONFIG_MAX). */
int kiln_oci_config_parse(kiln_oci_config *out, const char *data, size_t len, kiln_error **err);
/* Serialise to canonical JSON (sorted keys, compact); owned by caller, *len_out set. */
char *kiln_oci_config_to_json(const kiln_oci_config *c, size_t *len_out);
void kiln_oci_config_init(kiln_oci_config *c);
void kiln_oci_config_dispose(kiln_oci_config *c);

/* ChainID of diff_ids[0..n) (specs.md §1.6) into out (KILN_DIGEST_STRLEN + 1 bytes). n >= 1. */
void kiln_oci_chain_id(char *out, const kiln_vec *diff_ids, size_t n);

#endif
