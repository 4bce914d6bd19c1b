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

/** Release a result (NULL-safe). */
void kiln_engine_result_free(kiln_engine *e, kiln_engine_result *r);

#endif
