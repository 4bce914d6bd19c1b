/*
 * solver.h: the build solver. It loads a graph of vertices, merges identical vertices (also across
 * builds running at once in one solver), computes cache keys, and runs the vertices a target needs
 * on a pool bounded by max-parallelism. It knows ops only through two function tables filled in
 * by engine/ (kiln_op_ops, kiln_cache_ops), so it is testable without root using fakes.
 *
 * Typical use (engine/):
 *
 *     kiln_solver_new(&s, &opts, err);                  // once per engine
 *     kiln_solver_build_new(&b, s, &solve_opts, err);   // once per build
 *     for each op in the Definition:
 *         kiln_solver_build_add_vertex(b, &desc, err);  // any order
 *     kiln_solver_build_start(b, terminal_input_digest, output_index, err);
 *     kiln_solver_build_wait(&result, b, err);          // or kiln_solver_build_cancel(b)
 *     summary = kiln_solver_build_summary(b);            // for build history
 *     kiln_solver_build_free(b);
 *
 * Scheduling model. Every call into the op and cache tables (cache_map, content digests, cache
 * lookups and loads, exec) runs as a job on one fixed pool of `max_parallelism` worker threads
 * per solver; those calls may block (a sandboxed RUN waits for its process). The graph state
 * machine itself never blocks: it runs under one solver lock in whichever thread finished a job
 * and only queues further jobs (the pool thread that finished a job runs one of them next). So
 * at most max_parallelism op calls are in flight at once, a waiting op occupies exactly one slot,
 * and no ready work waits for anything but a free slot. The exception is the exec of a vertex
 * flagged KILN_VERTEX_WAITS (a RUN that waits for its sandbox): it runs on a second pool of
 * KILN_SOLVER_MAX_WAITING threads, outside the bound.
 *
 * Cache keys (kiln-native format "kiln.cachekey.v1", never shared with BuildKit). For a vertex V
 * with cache map (base, deps[i] = {selector_i, content_i}) and inputs (I_i, output o_i):
 *
 *     key(V) = "sha256:" hex(SHA-256(F("kiln.cachekey.v1") F(base) F(n)
 *                                    for each input i: F(kind_i) F(value_i) F(index_i) F(sel_i)))
 *
 * where F(s) = decimal byte length of s, ':', the bytes of s (so no field can run into another),
 * n = number of inputs in decimal, and for input i either
 *     kind "k", value = a key of I_i, index = o_i in decimal   (definition-based component), or
 *     kind "c", value = compute_content_digest(result of I_i, sel_i), index = "-"   (content).
 * sel_i is the selector string ("" for none). The definition-based key of V uses kind "k" with
 * the definition-based key of every input. When it misses the cache, the solver obtains the input
 * results and tries the other combinations: content components for deps with `content` set, and
 * every key an input is known under (its definition key and its content-derived keys) for the
 * others, at most KILN_SOLVER_MAX_KEYS per vertex. A result is saved under all keys of its vertex,
 * so the next unchanged build hits on the definition-based key alone.
 *
 * A vertex that ignores the cache (flag, no_cache or no_cache_filter) is always executed; its
 * definition-based keys, and those of the vertices below it, are not trusted for lookups (their
 * inputs were rebuilt), but content-based keys are: a dependant whose selected input content did
 * not change is still a cache hit. Builds running at once share a no-cache run of a vertex; a
 * build that starts after such a run finished runs it again.
 */
#ifndef KILN_SOLVER_SOLVER_H
#define KILN_SOLVER_SOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define KILN_SOLVER_MAX_KEYS 16 /* keys tried / recorded per vertex */

typedef struct kiln_solver kiln_solver;
typedef struct kiln_solver_build kiln_solver_build;

/* A result of an op (a snapshot reference in engine/). The solver never looks inside: it only
 * passes it to the op and cache tables and counts references with result_ref/result_unref.
 * The engine defines the struct. */
typedef struct kiln_solver_result kiln_solver_result;

/* The context of one running exec: logs, progress, cancellation (see kiln_op_ctx_* below). */
typedef struct kiln_op_ctx kiln_op_ctx;

enum {
    KILN_VERTEX_IGNORE_CACHE = 1 << 0, /* never look this vertex up in the cache (OpMetadata) */
    /* Its exec mostly waits for a process (a sandboxed RUN): it runs on the solver's waiting pool
     * (KILN_SOLVER_MAX_WAITING at once) and holds none of the max_parallelism slots, so a
     * sleeping step does not hold a core. */
    KILN_VERTEX_WAITS = 1 << 1,
};

#define KILN_SOLVER_MAX_WAITING 32

/* One input edge: the vertex with digest `digest`, output number `output`. */
typedef struct kiln_vertex_input {
    const char *digest;
    unsigned output;
} kiln_vertex_input;

/* A vertex as the engine describes it (from one LLB op), and as the solver shows it to the op
 * table. Strings are copied by kiln_solver_build_add_vertex; `op` is the opaque op payload. */
typedef struct kiln_vertex_desc {
    const char *digest; /* identity, "sha256:<hex>" of the op; required */
    const char *name;   /* display name ("[2/5] RUN make"); NULL = digest */
    const char *kind;   /* op kind ("exec", "source", "file", "merge", ...); NULL = "op" */
    void *op;           /* op payload for the op table; ownership passes to the solver */
    const kiln_vertex_input *inputs;
    size_t ninputs;
    unsigned noutputs;    /* results exec produces; 0 is taken as 1 */
    unsigned flags;       /* KILN_VERTEX_* */
    const char *src_file; /* source location for errors ("Dockerfile"), or NULL */
    int src_line;         /* 1-based line in src_file, or 0 */
} kiln_vertex_desc;

/* What cache_map says about one input of a vertex. */
typedef struct kiln_cache_dep {
    char *selector; /* paths of the input this op reads, or NULL = all; owned by the cache map */
    bool content;   /* key this input by a content digest of its selected paths */
} kiln_cache_dep;

/* The cache map of a vertex: the op's identity without its inputs' identities, plus one entry
 * per input. Filled in by kiln_op_ops.cache_map; the solver frees it with kiln_cache_map_dispose.
 */
typedef struct kiln_cache_map {
    char *base;           /* digest of the op alone (any stable string); owned */
    kiln_cache_dep *deps; /* ndeps entries, ndeps == the vertex's ninputs; owned (xmalloc) */
    size_t ndeps;
} kiln_cache_map;

/* Free the members of `cm` (not `cm` itself) and zero it. NULL-safe. */
void kiln_cache_map_dispose(kiln_cache_map *cm);

#define KILN_OP_OPS_VERSION 1

/* How the solver reaches ops. Every function may be called from any pool thread, concurrently
 * for different vertices; `payload` is kiln_solver_opts.op_payload. `v` is borrowed for the call.
 */
typedef struct kiln_op_ops {
    unsigned version; /* KILN_OP_OPS_VERSION */
    /* Fill *out (zeroed on entry) for vertex v from its definition only (no input results). */
    int (*cache_map)(kiln_cache_map *out, const kiln_vertex_desc *v, void *payload,
                     kiln_error **err);
    /* Digest of the paths `selector` (NULL = all) selects in result `r`: *out owned by the
     * solver (xmalloc'd string). Required when any cache map sets `content`. */
    int (*compute_content_digest)(char **out, kiln_solver_result *r, const char *selector,
                                  void *payload, kiln_error **err);
    /* Run the op. inputs[i] is the result of v->inputs[i] (borrowed for the call). On success
     * fill outputs[0 .. noutputs-1] (zeroed on entry), each an owned reference passed to the
     * solver. Should return KILN_ECANCELED promptly once ctx is cancelled. */
    int (*exec)(kiln_solver_result **outputs, const kiln_vertex_desc *v,
                kiln_solver_result *const *inputs, kiln_op_ctx *ctx, void *payload,
                kiln_error **err);
    /* Optional: make a running exec(ctx) return soon. Called from another thread, with no solver
     * lock held, possibly after exec has already returned; must not block. Ops that only poll
     * kiln_op_ctx_canceled / kiln_op_ctx_sleep need none. */
    void (*cancel)(kiln_op_ctx *ctx, void *payload);
    /* Reference counting of results, and freeing of op payloads: these three may be called with
     * the solver lock held, so they must be quick and must not call kiln_solver_* functions. */
    void (*result_ref)(kiln_solver_result *r, void *payload);
    void (*result_unref)(kiln_solver_result *r, void *payload);
    /* Optional: free a vertex's op payload when the solver drops the vertex. */
    void (*op_free)(void *op, void *payload);
} kiln_op_ops;

#define KILN_CACHE_OPS_VERSION 1

/* The cache store: cache key -> results. Called from pool threads, concurrently. Errors from
 * lookup and load are treated as misses (and logged at debug level); save errors are logged. */
typedef struct kiln_cache_ops {
    unsigned version; /* KILN_CACHE_OPS_VERSION */
    /* *found = whether results are recorded for `key` (all outputs of its vertex). */
    int (*lookup)(bool *found, const char *key, void *payload, kiln_error **err);
    /* *out = an owned reference to result number `output` under `key`; KILN_ENOTFOUND if none. */
    int (*load)(kiln_solver_result **out, const char *key, unsigned output, void *payload,
                kiln_error **err);
    /* Record `r` (borrowed) as result number `output` under `key`. */
    int (*save)(const char *key, unsigned output, kiln_solver_result *r, void *payload,
                kiln_error **err);
} kiln_cache_ops;

typedef struct kiln_solver_opts {
    unsigned max_parallelism;  /* op calls in flight at once; 0 = kiln_ncpus() */
    const kiln_op_ops *op_ops; /* required; borrowed for the solver's life */
    void *op_payload;
    const kiln_cache_ops *cache_ops; /* NULL = no cache: everything executes */
    void *cache_payload;
} kiln_solver_opts;

/* ---- progress ---- */

typedef enum kiln_progress_type {
    KILN_PROGRESS_STARTED,  /* the op began executing */
    KILN_PROGRESS_CACHED,   /* the result comes from the cache (see `loaded`) */
    KILN_PROGRESS_LOG,      /* output of the op: stream, data, len */
    KILN_PROGRESS_STATUS,   /* a sub-step: data = id/message, current/total */
    KILN_PROGRESS_DONE,     /* the op finished successfully */
    KILN_PROGRESS_ERROR,    /* the vertex failed: error */
    KILN_PROGRESS_CANCELED, /* the vertex was running when the build was cancelled or failed */
} kiln_progress_type;

/* One event. All pointers are borrowed for the duration of the callback. */
typedef struct kiln_progress_event {
    kiln_progress_type type;
    int64_t time_ns;         /* CLOCK_MONOTONIC */
    const char *digest;      /* vertex digest */
    const char *name;        /* vertex display name */
    bool loaded;             /* CACHED: result loaded (false: not needed, a dependant was cached) */
    int stream;              /* LOG: 1 = stdout, 2 = stderr */
    const char *data;        /* LOG: bytes (not NUL-terminated); STATUS: NUL-terminated message */
    size_t len;              /* LOG: byte count */
    int64_t current, total;  /* STATUS: progress, total (0 = unknown) */
    const kiln_error *error; /* ERROR */
} kiln_progress_event;

/* Called with an internal solver lock held, in whatever thread produced the event: it must be
 * quick (copy what it needs) and must not call kiln_solver_* functions. Events of one vertex
 * arrive in order (STARTED, LOG/STATUS..., DONE or ERROR or CANCELED; or a single CACHED). */
typedef void (*kiln_progress_fn)(const kiln_progress_event *ev, void *payload);

typedef struct kiln_solve_opts {
    bool no_cache; /* every vertex ignores the cache (buildx --no-cache) */
    /* Vertices to rebuild (buildx --no-cache-filter): matched against a vertex's name or digest.
     * Borrowed during kiln_solver_build_new (copied). */
    const char *const *no_cache_filter;
    size_t n_no_cache_filter;
    kiln_progress_fn progress; /* optional */
    void *progress_payload;
} kiln_solve_opts;

/* ---- summary (build history) ---- */

typedef enum kiln_vertex_status {
    KILN_VSTATUS_PENDING,  /* never reached a final state (build failed or cancelled first) */
    KILN_VSTATUS_CACHED,   /* result loaded from the cache */
    KILN_VSTATUS_SKIPPED,  /* result not needed: a dependant was cached */
    KILN_VSTATUS_DONE,     /* executed */
    KILN_VSTATUS_FAILED,   /* executed and failed */
    KILN_VSTATUS_CANCELED, /* was running when the build stopped */
} kiln_vertex_status;

typedef struct kiln_vertex_summary {
    char *digest, *name; /* owned by the summary */
    kiln_vertex_status status;
    int64_t started_ns;   /* CLOCK_MONOTONIC; 0 = never started */
    int64_t completed_ns; /* 0 = not completed */
    char *cache_key;      /* definition-based key, or NULL when never computed */
    char *error;          /* formatted error for FAILED, else NULL */
} kiln_vertex_summary;

typedef struct kiln_build_summary {
    kiln_vertex_summary *vertices; /* the target and its ancestors, inputs before dependants */
    size_t nvertices;
    int64_t started_ns, completed_ns;
    size_t nexecuted, ncached;
} kiln_build_summary;

/* ---- solver ---- */

/* Create a solver (and its worker pool). KILN_EINVAL for a missing or wrong-version op table;
 * KILN_ESYS when threads cannot be created. *out owned by the caller (kiln_solver_free). */
int kiln_solver_new(kiln_solver **out, const kiln_solver_opts *opts, kiln_error **err);

/* Cancel every running build of the solver (each returns KILN_ECANCELED). Thread-safe. */
void kiln_solver_cancel(kiln_solver *s);

/* Wait for in-flight op calls, then free the solver. Every build must have been freed first.
 * NULL-safe. */
void kiln_solver_free(kiln_solver *s);

/* ---- builds ---- */

/* A new build on solver s with options `opts` (NULL = defaults). *out owned by the caller. */
int kiln_solver_build_new(kiln_solver_build **out, kiln_solver *s, const kiln_solve_opts *opts,
                          kiln_error **err);

/* Add one vertex to a not yet started build, in any order. The desc's strings are copied; the
 * op payload is owned by the solver from now on (freed with op_free), also on error.
 * A repeated digest within the build keeps the first desc. KILN_EINVAL: no/invalid digest, or
 * the build has started. Not thread-safe for one build (one caller thread per build). */
int kiln_solver_build_add_vertex(kiln_solver_build *b, const kiln_vertex_desc *desc,
                                 kiln_error **err);

/* Start solving output `output` of vertex `target`. Only the target and its ancestors are
 * loaded (merged into the solver's shared vertex registry) and run; other added vertices are
 * dropped. KILN_EINVAL: unknown target or input digest, output index out of range, a cycle, or
 * started twice. Returns once the work is queued. */
int kiln_solver_build_start(kiln_solver_build *b, const char *target, unsigned output,
                            kiln_error **err);

/* Wait until the build finishes. On success *out = an owned reference to the target result
 * (release with the op table's result_unref). Errors: the failing vertex's error (its code,
 * message prefixed with the vertex name, its source location), KILN_ECANCELED after a cancel,
 * KILN_EINVAL when the build was never started. Can be called again: same answer. */
int kiln_solver_build_wait(kiln_solver_result **out, kiln_solver_build *b, kiln_error **err);

/* Cancel the build: kiln_solver_build_wait returns KILN_ECANCELED promptly, and ops no other
 * build needs are cancelled (kiln_op_ops.cancel). No effect on a finished build. Thread-safe. */
void kiln_solver_build_cancel(kiln_solver_build *b);

/* The per-vertex record of a finished build (after kiln_solver_build_wait returned); borrowed
 * until kiln_solver_build_free. NULL while the build runs. */
const kiln_build_summary *kiln_solver_build_summary(const kiln_solver_build *b);

/* Cancel if running, then free the build. NULL-safe. Do not call concurrently with
 * kiln_solver_build_wait on the same build. */
void kiln_solver_build_free(kiln_solver_build *b);

/* ---- for ops: the exec context ---- */

/* True once the exec was cancelled. Thread-safe. */
bool kiln_op_ctx_canceled(kiln_op_ctx *ctx);

/* Sleep up to `ns` nanoseconds; returns KILN_ECANCELED (setting *err) as soon as the exec is
 * cancelled, else 0. For ops that wait on something they can poll. */
int kiln_op_ctx_sleep(kiln_op_ctx *ctx, int64_t ns, kiln_error **err);

/* Emit a LOG event (stream 1 = stdout, 2 = stderr) for the running vertex. `data` borrowed. */
void kiln_op_ctx_log(kiln_op_ctx *ctx, int stream, const void *data, size_t len);

/* Emit a STATUS event ("pulling sha256:...", 1024, 4096). `msg` borrowed. */
void kiln_op_ctx_status(kiln_op_ctx *ctx, const char *msg, int64_t current, int64_t total);

/* Per-exec slot for the op (e.g. a pid for its cancel callback). Set/get are atomic. */
void kiln_op_ctx_set_data(kiln_op_ctx *ctx, void *data);
void *kiln_op_ctx_get_data(kiln_op_ctx *ctx);

/* Monotonic clock in nanoseconds, the clock of progress events. */
int64_t kiln_solver_now_ns(void);

#endif
