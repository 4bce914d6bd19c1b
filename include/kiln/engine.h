/*
 * kiln/engine.h: the public engine API (DESIGN.md §2 `engine/`): open an engine on a state dir,
 * solve an LLB Definition with progress events, and get at the result's files.
 *
 * Handles are opaque. Option structs carry a version (KILN_ENGINE_*_VERSION) so that fields can
 * be added later without breaking callers. Errors follow kiln's one pattern: functions return 0
 * or a negative kiln_errcode and fill `*err` (a struct kiln_error, see base/error.h).
 */
#ifndef KILN_ENGINE_H
#define KILN_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kiln_error;

typedef struct kiln_engine kiln_engine;
typedef struct kiln_engine_result kiln_engine_result;

#define KILN_ENGINE_OPTS_VERSION 1

typedef struct kiln_engine_opts {
    int version;              /* KILN_ENGINE_OPTS_VERSION */
    const char *root;         /* state dir; NULL = the default (/var/lib/kiln for root) */
    unsigned max_parallelism; /* ops running at once; 0 = number of cores */
} kiln_engine_opts;

#define KILN_ENGINE_OPTS_INIT             \
    {                                     \
        KILN_ENGINE_OPTS_VERSION, NULL, 0 \
    }

/* A `local://name` source bound to a host directory (the build context). */
typedef struct kiln_engine_local {
    const char *name;
    const char *dir;
} kiln_engine_local;

/* A build secret (`--secret id=...`): RUN --mount=type=secret,id=ID sees its bytes in a file on a
 * private tmpfs, never in an image layer or the cache. */
typedef struct kiln_engine_secret {
    const char *id;
    const void *data;
    size_t len;
} kiln_engine_secret;

/* An SSH agent socket forwarded to RUN --mount=type=ssh,id=ID (`--ssh default=$SSH_AUTH_SOCK`). */
typedef struct kiln_engine_ssh {
    const char *id;
    const char *socket; /* host path of the agent socket */
} kiln_engine_ssh;

typedef enum kiln_engine_event_type {
    KILN_ENGINE_EVENT_STARTED,  /* a vertex began executing */
    KILN_ENGINE_EVENT_CACHED,   /* a vertex's result came from the cache (or was not needed) */
    KILN_ENGINE_EVENT_LOG,      /* output of a running vertex: stream, data, len */
    KILN_ENGINE_EVENT_STATUS,   /* a sub-step message in data (NUL-terminated) */
    KILN_ENGINE_EVENT_DONE,     /* a vertex finished */
    KILN_ENGINE_EVENT_ERROR,    /* a vertex failed: error */
    KILN_ENGINE_EVENT_CANCELED, /* a vertex was stopped because the build ended */
} kiln_engine_event_type;

/* One progress event; every pointer is borrowed for the duration of the callback. */
typedef struct kiln_engine_event {
    kiln_engine_event_type type;
    int64_t time_ns;    /* CLOCK_MONOTONIC */
    const char *digest; /* vertex digest */
    const char *name;   /* vertex display name */
    int stream;         /* LOG: 1 = stdout, 2 = stderr */
    const char *data;   /* LOG: bytes (not NUL-terminated); STATUS: message */
    size_t len;         /* LOG: byte count */
    const char *error;  /* ERROR: formatted message */
} kiln_engine_event;

/* Called from engine worker threads, one event at a time (under a lock): keep it quick and do
 * not call back into the engine. */
typedef void (*kiln_engine_progress_fn)(const kiln_engine_event *ev, void *payload);

#define KILN_ENGINE_SOLVE_OPTS_VERSION 1

typedef struct kiln_engine_solve_opts {
    int version;                     /* KILN_ENGINE_SOLVE_OPTS_VERSION */
    bool no_cache;                   /* run every vertex (results are still recorded) */
    const kiln_engine_local *locals; /* borrowed for the call */
    size_t n_locals;
    kiln_engine_progress_fn progress; /* optional */
    void *progress_payload;
    const char *history_name; /* non-NULL: record the build in the history under this name */
    const kiln_engine_secret *secrets; /* borrowed for the call */
    size_t n_secrets;
    const kiln_engine_ssh *ssh; /* borrowed for the call */
    size_t n_ssh;
    /* entitlements (buildx's --allow): without them a Definition with an exec op asking for
     * the host network or security=insecure is refused before anything runs */
    bool allow_network_host;
    bool allow_security_insecure;
} kiln_engine_solve_opts;

#define KILN_ENGINE_SOLVE_OPTS_INIT                                \
    {                                                              \
        KILN_ENGINE_SOLVE_OPTS_VERSION, false, NULL, 0, NULL, NULL \
    }

/**
 * Open an engine on a state dir (created when missing).
 * @param out   the engine, owned by the caller (kiln_engine_free)
 * @param opts  options, or NULL for the defaults
 * @return 0; KILN_EINVAL (bad options), KILN_EUNSUPPORTED (state dir of a newer kiln), KILN_ESYS
 */
int kiln_engine_open(kiln_engine **out, const kiln_engine_opts *opts, struct kiln_error **err);

/** Close the engine (NULL-safe). Every result must have been freed. */
void kiln_engine_free(kiln_engine *e);

/**
 * Load, validate and solve a marshalled LLB Definition (bytes borrowed for the call). Blocks
 * until the build finishes. Thread-safe: several solves may run at once on one engine and share
 * identical vertices.
 * @param out  the terminal result, owned by the caller (kiln_engine_result_free)
 * @return 0; KILN_EPARSE / KILN_EINVAL (bad Definition, unknown local name), or the failing
 *         vertex's error (its message starts with the vertex name)
 */
int kiln_engine_solve(kiln_engine_result **out, kiln_engine *e, const void *def, size_t len,
                      const kiln_engine_solve_opts *opts, struct kiln_error **err);

/**
 * The image config of an image, as a frontend needs it before writing LLB (BuildKit's
 * ResolveImageConfig): for "oci-layout://<dir>[:tag|@digest]", "docker-image://<ref>" or a plain
 * reference ("busybox", "127.0.0.1:5000/x:1"), the host platform's image.
 * @param config_json      the config's exact bytes (NUL-terminated), owned by the caller
 * @param manifest_digest  optional: the image manifest's digest, owned by the caller
 * @return 0; KILN_ENOTFOUND (no such image or tag), KILN_EINVAL (bad reference), KILN_EDIGEST,
 *         KILN_EAUTH, KILN_EUNSUPPORTED (other schemes), KILN_ESYS
 */
int kiln_engine_resolve_image_config(char **config_json, char **manifest_digest, kiln_engine *e,
                                     const char *ref, struct kiln_error **err);

/**
 * Cancel every solve running on the engine: each returns KILN_ECANCELED promptly, and running
 * sandboxes are killed. Thread-safe (not async-signal-safe); solves started later run normally.
 */
void kiln_engine_cancel(kiln_engine *e);

/** The snapshot id of a result (borrowed from r). */
const char *kiln_engine_result_id(const kiln_engine_result *r);

/**
 * Copy the files of result r into host directory `dir` (created when missing; existing content
 * is merged), keeping modes, owners, xattrs, symlinks and hardlinks.
 * @return 0; KILN_ENOTFOUND (snapshot gone), KILN_ESYS
 */
int kiln_engine_result_export_dir(kiln_engine *e, const kiln_engine_result *r, const char *dir,
                                  struct kiln_error **err);

/**
 * Write the files of result r to fd as an uncompressed tar (type=tar): sorted entries, numeric
 * owners; epoch >= 0 clamps mtimes to it (SOURCE_DATE_EPOCH), -1 keeps them.
 * @return 0; KILN_ENOTFOUND (snapshot gone), KILN_ESYS
 */
int kiln_engine_result_export_tar(kiln_engine *e, const kiln_engine_result *r, int fd,
                                  int64_t epoch, struct kiln_error **err);

/** Release a result (NULL-safe). */
void kiln_engine_result_free(kiln_engine *e, kiln_engine_result *r);

/* ---------------------------------------------------------------------------------------------
 * Images: export a result as an OCI image, the local image store, pushing and running images.
 */

typedef struct kiln_engine_image kiln_engine_image;

typedef enum kiln_engine_compression {
    KILN_ENGINE_COMPRESSION_GZIP = 0,
    KILN_ENGINE_COMPRESSION_ZSTD,
    KILN_ENGINE_COMPRESSION_UNCOMPRESSED,
} kiln_engine_compression;

#define KILN_ENGINE_IMAGE_OPTS_VERSION 1

typedef struct kiln_engine_image_opts {
    int version;             /* KILN_ENGINE_IMAGE_OPTS_VERSION */
    const char *config_json; /* the frontend's image config (rootfs.diff_ids ignored); NULL =
                              * a minimal config for the host platform */
    kiln_engine_compression compression;
    int compression_level;            /* 0 = default */
    bool force_compression;           /* recompress layers stored with another compression */
    bool docker_media_types;          /* Docker schema 2 media types (type=docker, docker load) */
    int64_t epoch;                    /* SOURCE_DATE_EPOCH, -1 = unset: created + history times */
    bool rewrite_timestamp;           /* clamp file mtimes in new layers to epoch (needs epoch) */
    kiln_engine_progress_fn progress; /* optional: "exporting layers" status events */
    void *progress_payload;
} kiln_engine_image_opts;

#define KILN_ENGINE_IMAGE_OPTS_INIT                                                              \
    {                                                                                            \
        KILN_ENGINE_IMAGE_OPTS_VERSION, NULL, KILN_ENGINE_COMPRESSION_GZIP, 0, false, false, -1, \
                false, NULL, NULL                                                                \
    }

/**
 * Make an image of result r: one layer per snapshot of its chain (base image layers keep their
 * original blobs; layers exported before are reused from the content store, never recompressed
 * unless force_compression asks for another compression; a snapshot without changes adds no
 * layer and its history entry becomes empty_layer), the config with rootfs.diff_ids and history
 * aligned to the layers as BuildKit aligns them, and the manifest; every blob is stored in the
 * content store, held by the engine until it closes: name the image (kiln_engine_image_tag)
 * before that to keep it. `opts` may be NULL (gzip, OCI media types, no epoch).
 * @param out  owned by the caller (kiln_engine_image_free)
 * @return 0; KILN_EPARSE (bad config JSON), KILN_EINVAL (bad options), KILN_ENOTFOUND (snapshot
 *         gone), KILN_ESYS
 */
int kiln_engine_image_export(kiln_engine_image **out, kiln_engine *e, const kiln_engine_result *r,
                             const kiln_engine_image_opts *opts, struct kiln_error **err);

/**
 * Load an image of the local store by name ("app", "app:1", "127.0.0.1:5000/x:y") or by
 * (a unique prefix of) its manifest digest or image id ("9a001697", "sha256:9a00...").
 * @return 0; KILN_ENOTFOUND (no such image), KILN_EINVAL (bad reference, ambiguous prefix)
 */
int kiln_engine_image_get(kiln_engine_image **out, kiln_engine *e, const char *name,
                          struct kiln_error **err);

void kiln_engine_image_free(kiln_engine_image *img);

/* The manifest digest, the config digest (= image id), the manifest's and the config's JSON
 * bytes (NUL-terminated), all borrowed from img. */
const char *kiln_engine_image_digest(const kiln_engine_image *img);
const char *kiln_engine_image_config_digest(const kiln_engine_image *img);
const char *kiln_engine_image_manifest_json(const kiln_engine_image *img);
const char *kiln_engine_image_config_json(const kiln_engine_image *img);
/* Total size of the image's blobs (manifest, config, layers) in bytes. */
int64_t kiln_engine_image_size(const kiln_engine_image *img);

/**
 * Name image img in the local store (docker's normalisation: "app" =
 * "docker.io/library/app:latest"; an existing name moves to this image; a name cannot hold a
 * digest). The store keeps the image's blobs and top snapshot from GC.
 * @return 0; KILN_EINVAL (bad name), KILN_ENOTFOUND (a blob of img was pruned)
 */
int kiln_engine_image_tag(kiln_engine *e, const kiln_engine_image *img, const char *name,
                          struct kiln_error **err);

/** Remove name from the local store. KILN_ENOTFOUND. */
int kiln_engine_image_untag(kiln_engine *e, const char *name, struct kiln_error **err);

typedef struct kiln_engine_image_entry {
    char *name;          /* normalised full name */
    char *digest;        /* manifest digest */
    char *config_digest; /* image id */
    int64_t size;        /* bytes of blobs */
    int64_t created;     /* the config's `created`, Unix seconds (0 = unknown) */
} kiln_engine_image_entry;

/** Every named image of the local store, sorted by name. *out and *n owned by the caller
 * (kiln_engine_image_entries_free). */
int kiln_engine_image_list(kiln_engine_image_entry **out, size_t *n, kiln_engine *e,
                           struct kiln_error **err);
void kiln_engine_image_entries_free(kiln_engine_image_entry *v, size_t n);

typedef enum kiln_engine_archive {
    KILN_ENGINE_ARCHIVE_OCI = 0, /* OCI image layout tar (type=oci) */
    KILN_ENGINE_ARCHIVE_DOCKER,  /* docker load-able tar (type=docker) */
} kiln_engine_archive;

/** Write img as a tar to fd (a pipe is fine), tagged with `names` (NULL-terminated, may be NULL).
 */
int kiln_engine_image_write_archive(kiln_engine *e, const kiln_engine_image *img,
                                    kiln_engine_archive kind, const char *const *names, int fd,
                                    struct kiln_error **err);

/** Add img to the OCI image layout directory `dir` (created when missing) under `names`. */
int kiln_engine_image_write_layout(kiln_engine *e, const kiln_engine_image *img,
                                   const char *const *names, const char *dir,
                                   struct kiln_error **err);

/** Push img to a registry as `name` (blobs the registry has are skipped; credentials from the
 * docker config; HTTP for loopback and `insecure`). KILN_EAUTH, KILN_ENOTFOUND, KILN_ESYS. */
int kiln_engine_image_push(kiln_engine *e, const kiln_engine_image *img, const char *name,
                           bool insecure, struct kiln_error **err);

/** Load every image of a docker or OCI archive read from fd into the store (its names as tags;
 * the archive may be compressed). *names_out (NULL-terminated array of owned strings, may be
 * NULL) receives the names loaded, and for an image without a name its image id
 * ("sha256:..."; such an image is not kept once the engine closes). KILN_EPARSE (not a tar,
 * bad JSON), KILN_EINVAL (no index.json or manifest.json), KILN_EDIGEST, KILN_ENOTFOUND (a
 * blob the archive lacks). */
int kiln_engine_image_load(char ***names_out, kiln_engine *e, int fd, struct kiln_error **err);

/** Pull `ref` from its registry into the store under its normalised name. */
int kiln_engine_image_pull(kiln_engine_image **out, kiln_engine *e, const char *ref,
                           struct kiln_error **err);

#define KILN_ENGINE_RUN_OPTS_VERSION 1

typedef struct kiln_engine_run_opts {
    int version;                   /* KILN_ENGINE_RUN_OPTS_VERSION */
    const char *const *args;       /* override Cmd (NULL-terminated) or NULL */
    const char *const *entrypoint; /* override Entrypoint or NULL */
    const char *const *env;        /* extra "K=V", NULL-terminated */
    const char *user;              /* override User */
    const char *workdir;           /* override WorkingDir */
    bool network_host;             /* host network instead of none */
    bool interactive;              /* the process reads the caller's stdin (else /dev/null) */
} kiln_engine_run_opts;

/**
 * Run img's entrypoint/cmd in a sandbox on a throwaway writable layer (removed afterwards), with
 * its Env, User and WorkingDir; output is copied to the caller's stdout/stderr as it arrives
 * (stdin is the caller's with opts->interactive, else /dev/null). `opts` may be NULL.
 * @param status  the process's exit code (128 + signal when killed)
 * @return 0 when the process ran (whatever its status); KILN_EINVAL (no command, unknown
 *         user), KILN_ESYS
 */
int kiln_engine_image_run(int *status, kiln_engine *e, const kiln_engine_image *img,
                          const kiln_engine_run_opts *opts, struct kiln_error **err);

/* ---------------------------------------------------------------------------------------------
 * Disk usage, prune, automatic GC and build history.
 */

typedef struct kiln_engine_usage {
    char *kind; /* "snapshot", "blob" or "key" */
    char *id;
    char *description; /* what made it ("RUN make", "layer sha256:..."), or NULL */
    uint64_t size;     /* bytes freed when removed */
    int64_t last_used; /* Unix seconds (0 = not recorded, e.g. blobs) */
    bool in_use;       /* referenced by an image, history record or running build */
    char *parent;      /* snapshots: the parent snapshot's id, or NULL */
    int64_t created;   /* snapshots: Unix seconds (0 for blobs) */
    bool shared;       /* a snapshot that is the parent of several, a blob with several refs */
} kiln_engine_usage;

void kiln_engine_usage_free(kiln_engine_usage *v, size_t n);

/** Every record of the store (snapshots and blobs) with its size, sorted by kind and id. *out, *n
 * owned by the caller (kiln_engine_usage_free). KILN_EPARSE (corrupt record), KILN_ESYS. */
int kiln_engine_du(kiln_engine_usage **out, size_t *n, kiln_engine *e, struct kiln_error **err);

#define KILN_ENGINE_PRUNE_OPTS_VERSION 1

typedef struct kiln_engine_prune_opts {
    int version;           /* KILN_ENGINE_PRUNE_OPTS_VERSION */
    bool all;              /* also internal records (base image layers, context copies) */
    uint64_t keep_storage; /* bytes to keep, 0 = no limit */
    int64_t until;         /* seconds: only records unused for this long, 0 = any */
    bool dry_run;
} kiln_engine_prune_opts;

#define KILN_ENGINE_PRUNE_OPTS_INIT                        \
    {                                                      \
        KILN_ENGINE_PRUNE_OPTS_VERSION, false, 0, 0, false \
    }

/** Remove unreferenced cache, least recently used first; *out lists what was (or, dry run,
 * would be) freed: cache keys (size 0), snapshots and blobs, sorted by kind and id; owned by the
 * caller (kiln_engine_usage_free). Nothing referenced by an image, a history record or a running
 * build goes. opts may be NULL (remove everything unreferenced). Serialised with other prunes of
 * the state dir, also across processes. KILN_EINVAL (bad opts), KILN_EPARSE (corrupt record:
 * run `kiln debug fsck`), KILN_ESYS. */
int kiln_engine_prune(kiln_engine_usage **out, size_t *n, kiln_engine *e,
                      const kiln_engine_prune_opts *opts, struct kiln_error **err);

/** The build history, oldest first: one JSON object per build (id, name, started (Unix
 * seconds), duration_ms, status completed|failed|canceled, error, result, steps [{name, digest,
 * status done|cached|skipped|failed|canceled|pending, duration_ms, error}], executed, cached).
 * *out (n strings, NULL-terminated) owned by the caller: free each and the array. */
int kiln_engine_history_list(char ***out, size_t *n, kiln_engine *e, struct kiln_error **err);

/** Automatic GC after a build: prune to the store's budget (KILN_GC_KEEP_STORAGE bytes, or 10% of
 * the file system holding the state dir, at least 512 MiB). Errors are logged, not returned. */
void kiln_engine_gc(kiln_engine *e);

/** Whether a build context argument is a git URL as `docker build` reads one: git://, git@,
 * ssh://, github.com/, or an http(s) URL whose path ends in ".git" (then "#ref:subdir"). */
bool kiln_engine_is_git_url(const char *s);

/**
 * Fetch a remote build context into the existing empty directory `dir`: a git URL
 * (kiln_engine_is_git_url) has its ref's tree (or subdir) checked out there, through the state
 * dir's mirror cache (*filename = NULL); any other http(s) URL is downloaded as one file, whose
 * name is returned in *filename (owned by the caller): the caller decides whether it is an
 * archive (the context) or a Dockerfile.
 * @return 0; KILN_EINVAL (not such a URL), KILN_ENOTFOUND (no such ref, subdir, 404),
 *         KILN_EAUTH, KILN_ESYS
 */
int kiln_engine_fetch_context(char **filename, kiln_engine *e, const char *url, const char *dir,
                              struct kiln_error **err);

#endif
