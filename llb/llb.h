/*
 * llb.h: LLB, BuildKit's build graph, wire-compatible (solver/pb/ops.proto, package pb).
 *
 * Three parts:
 *   - the builder: frontends create vertices (sources, exec, file, merge, diff) in a
 *     kiln_llb_builder arena and refer to their outputs with kiln_llb_state values, then marshal
 *     a target state into a Definition exactly as BuildKit's Go client does (post-order DFS, each
 *     op once, terminal op last, Go-deterministic protobuf bytes, digest = sha256 of the bytes);
 *   - the loader: kiln_llb_load() parses and validates an untrusted Definition into a graph of
 *     kiln_llb_node, with both the digest of the given bytes and the canonical digest BuildKit's
 *     loader would compute after re-marshalling every op;
 *   - the dump: JSON (protojson mapping, one object per vertex like `buildctl debug dump-llb`)
 *     and a human-readable text form.
 *
 * The decoded ops are the protoc-c structs of llb/ops.proto (Pb__Op, Pb__ExecOp, ...), generated
 * at build time into the build directory.
 */
#ifndef KILN_LLB_LLB_H
#define KILN_LLB_LLB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/buf.h"
#include "base/digest.h"
#include "base/error.h"
#include "llb/ops.pb-c.h"

#define KILN_LLB_MAX_DEFINITION (128u << 20) /* cap on a whole Definition */
#define KILN_LLB_MAX_OP         (16u << 20)  /* cap on one marshalled Op */
#define KILN_LLB_MAX_DEPTH      100          /* nesting of messages (Definition in SourceInfo...) */

/* Well-known attribute and description keys. */
#define KILN_LLB_CUSTOM_NAME "llb.customname"

/* ---------------------------------------------------------------------------------------------
 * Builder
 */

typedef struct kiln_llb_builder kiln_llb_builder;
typedef struct kiln_llb_vertex kiln_llb_vertex;

/* One output of a vertex. {NULL, 0} is scratch, the empty filesystem. A plain value: copy it
 * freely; it stays valid as long as its builder, and may only be used with that builder. Not
 * thread-safe: one builder per thread. */
typedef struct kiln_llb_state {
    kiln_llb_vertex *vertex;
    int64_t output;
} kiln_llb_state;

#define KILN_LLB_SCRATCH ((kiln_llb_state){NULL, 0})

typedef struct kiln_llb_platform {
    const char *os;           /* "linux" */
    const char *architecture; /* "amd64" */
    const char *variant;      /* "v8" or NULL */
    const char *os_version;   /* NULL unless Windows */
} kiln_llb_platform;

typedef struct kiln_llb_attr {
    const char *key;
    const char *value;
} kiln_llb_attr;

/* Create an empty builder (an arena for vertices). Free with kiln_llb_builder_free. */
void kiln_llb_builder_new(kiln_llb_builder **out);
/* Free the builder and every vertex and string it holds (NULL-safe). */
void kiln_llb_builder_free(kiln_llb_builder *b);
/* Platform written into every platform-specific vertex (image sources, exec, file ops) that has
 * none of its own (copied). NULL clears it. As in the Go client, merge, diff and non-image sources
 * never carry a platform. */
void kiln_llb_builder_set_platform(kiln_llb_builder *b, const kiln_llb_platform *p);

/* Is this state scratch? */
bool kiln_llb_state_is_scratch(kiln_llb_state s);

/* --- sources --- */

/* A SourceOp with any identifier ("docker-image://...", "local://ctx", ...) and attrs (copied,
 * duplicate keys: last wins). KILN_EINVAL on an empty identifier. */
int kiln_llb_source(kiln_llb_state *out, kiln_llb_builder *b, const char *identifier,
                    const kiln_llb_attr *attrs, size_t n_attrs, kiln_error **err);

/* An image, with the reference normalised as docker's ParseNormalizedNamed + TagNameOnly do
 * ("alpine" -> "docker.io/library/alpine:latest"). resolve_mode: NULL, "default", "pull" or
 * "local". KILN_EINVAL on a malformed reference or mode. */
int kiln_llb_image(kiln_llb_state *out, kiln_llb_builder *b, const char *ref,
                   const char *resolve_mode, kiln_error **err);

typedef struct kiln_llb_local_opts {
    const char *const *include_patterns; /* NULL-terminated, or NULL */
    const char *const *exclude_patterns; /* NULL-terminated, or NULL */
    const char *const *follow_paths;     /* NULL-terminated, or NULL */
    const char *shared_key_hint;
    const char *session_id;
    const char *unique_id; /* "local.unique" when no session_id (Go: a random id per client) */
} kiln_llb_local_opts;

/* The client's local directory `name` ("local://name"); patterns are JSON-encoded into attrs as
 * BuildKit does. opts may be NULL. KILN_EINVAL on an empty name. */
int kiln_llb_local(kiln_llb_state *out, kiln_llb_builder *b, const char *name,
                   const kiln_llb_local_opts *opts, kiln_error **err);

typedef struct kiln_llb_git_opts {
    bool keep_git_dir;
    const char *subdir; /* appended as "#ref:subdir" */
} kiln_llb_git_opts;

/* A git repository: identifier "git://<host/path>#<ref>[:subdir]" and git.fullurl, as BuildKit's
 * llb.Git. remote may carry a scheme (https://, ssh://, git@host:path). KILN_EINVAL when empty. */
int kiln_llb_git(kiln_llb_state *out, kiln_llb_builder *b, const char *remote, const char *ref,
                 const kiln_llb_git_opts *opts, kiln_error **err);

typedef struct kiln_llb_http_opts {
    const char *checksum; /* "sha256:..." or NULL */
    const char *filename;
    unsigned chmod; /* 0 = default */
    int uid, gid;   /* 0 = default */
} kiln_llb_http_opts;

/* An http(s) URL. KILN_EINVAL unless url starts with http:// or https://, or on a bad checksum. */
int kiln_llb_http(kiln_llb_state *out, kiln_llb_builder *b, const char *url,
                  const kiln_llb_http_opts *opts, kiln_error **err);

/* --- exec --- */

typedef enum kiln_llb_mount_type {
    KILN_LLB_MOUNT_BIND = 0,
    KILN_LLB_MOUNT_SECRET = 1,
    KILN_LLB_MOUNT_SSH = 2,
    KILN_LLB_MOUNT_CACHE = 3,
    KILN_LLB_MOUNT_TMPFS = 4,
} kiln_llb_mount_type;

typedef enum kiln_llb_cache_sharing {
    KILN_LLB_CACHE_SHARED = 0,
    KILN_LLB_CACHE_PRIVATE = 1,
    KILN_LLB_CACHE_LOCKED = 2,
} kiln_llb_cache_sharing;

typedef struct kiln_llb_mount {
    const char *dest; /* absolute path in the container */
    kiln_llb_mount_type type;
    kiln_llb_state source; /* bind and cache: the mounted state (scratch allowed) */
    const char *selector;  /* bind: subpath of source, or NULL */
    bool readonly;
    bool no_output;                 /* writable bind whose result is not needed */
    const char *cache_id;           /* cache */
    kiln_llb_cache_sharing sharing; /* cache */
    int64_t tmpfs_size;             /* tmpfs: bytes, 0 = unlimited */
    const char *id;                 /* secret / ssh id */
    uint32_t uid, gid, mode;        /* secret / ssh file owner and mode */
    bool optional;                  /* secret / ssh */
    kiln_llb_state *result;         /* out, optional: the mount's output state (scratch if none) */
} kiln_llb_mount;

typedef struct kiln_llb_host_ip {
    const char *host;
    const char *ip;
} kiln_llb_host_ip;

typedef struct kiln_llb_ulimit {
    const char *name;
    int64_t soft, hard;
} kiln_llb_ulimit;

typedef struct kiln_llb_secret_env {
    const char *id;
    const char *name;
    bool optional;
} kiln_llb_secret_env;

/* Meta.proxy_env (BuildKit's llb.ProxyEnv, the Dockerfile's proxy build args): at run time each
 * set value is exported as both HTTP_PROXY and http_proxy (and so on), and the exec's cache key
 * ignores the whole message, so changing a proxy does not re-run the step. NULL or "" = unset. */
typedef struct kiln_llb_proxy_env {
    const char *http_proxy;
    const char *https_proxy;
    const char *ftp_proxy;
    const char *no_proxy;
    const char *all_proxy;
} kiln_llb_proxy_env;

typedef struct kiln_llb_exec_opts {
    kiln_llb_state root;     /* the "/" mount */
    const char *const *args; /* NULL-terminated, at least one */
    const char *const *env;  /* NULL-terminated "K=V", or NULL */
    const char *cwd;         /* NULL = "/" */
    const char *user;
    const char *hostname;
    int network;  /* Pb__NetMode: PB__NET_MODE__UNSET/HOST/NONE */
    int security; /* Pb__SecurityMode */
    const kiln_llb_host_ip *extra_hosts;
    size_t n_extra_hosts;
    const kiln_llb_ulimit *ulimits;
    size_t n_ulimits;
    const kiln_llb_secret_env *secret_env;
    size_t n_secret_env;
    const int32_t *valid_exit_codes;
    size_t n_valid_exit_codes;
    const char *cgroup_parent;
    const kiln_llb_proxy_env *proxy_env; /* copied; NULL = no Meta.proxy_env */
    kiln_llb_mount *mounts;              /* extra mounts; their `result` fields are written */
    size_t n_mounts;
} kiln_llb_exec_opts;

/* An ExecOp running opts->args on opts->root with the given mounts. *root_out is the output of
 * the root mount; each writable bind mount with output gets its state through mount->result.
 * Mounts are ordered as BuildKit's client does (binds, caches and tmpfs sorted by dest, then
 * secrets, then ssh), which fixes the output indexes. Meta.removeMountStubsRecursive is set and no
 * default PATH is added (the frontend owns the environment), as in the Go client without caps.
 * A proxy_env is written even when all its values are empty, as llb.WithProxy does.
 * KILN_EINVAL on no args, a relative or duplicate dest, or a mount option that does not fit its
 * type. */
int kiln_llb_exec(kiln_llb_state *root_out, kiln_llb_builder *b, const kiln_llb_exec_opts *opts,
                  kiln_error **err);

/* --- file ops --- */

/* A user or group for chown: name (resolved against the action's input), or id >= 0; neither
 * (name NULL, id < 0) = unset. Use KILN_LLB_USER_UNSET to initialise. */
typedef struct kiln_llb_user {
    const char *name;
    int64_t id;
} kiln_llb_user;
#define KILN_LLB_USER_UNSET ((kiln_llb_user){NULL, -1})

typedef struct kiln_llb_file_info {
    kiln_llb_user user, group; /* owner, both unset = keep */
    int64_t timestamp;         /* Unix ns; -1 = unset */
} kiln_llb_file_info;
#define KILN_LLB_FILE_INFO_INIT    \
    {                              \
        {NULL, -1}, {NULL, -1}, -1 \
    }

typedef struct kiln_llb_copy_opts {
    kiln_llb_file_info info;
    int32_t mode; /* -1 = keep */
    const char *mode_str;
    bool follow_symlink, dir_copy_contents, attempt_unpack, create_dest_path;
    bool allow_wildcard, allow_empty_wildcard, always_replace_existing;
    const char *const *include_patterns; /* NULL-terminated, or NULL */
    const char *const *exclude_patterns;
    const char *const *required_paths;
} kiln_llb_copy_opts;
#define KILN_LLB_COPY_OPTS_INIT                     \
    {                                               \
        .info = KILN_LLB_FILE_INFO_INIT, .mode = -1 \
    }

/* Start a FileOp whose first action works on `base`; returns its vertex in *out. Add actions
 * with the functions below (each applies to the result of the previous one); the op's single
 * output is the result of the last action: kiln_llb_file_state(). */
void kiln_llb_file_new(kiln_llb_vertex **out, kiln_llb_builder *b, kiln_llb_state base);
/* The actions below return KILN_EINVAL when f is not a file op or a path is empty; relative paths
 * are taken from "/" and cleaned. mode is the permission bits; info may be NULL (no owner, no
 * timestamp). */
/* mkdir path (with parents when make_parents). */
int kiln_llb_file_mkdir(kiln_llb_vertex *f, const char *path, int32_t mode, bool make_parents,
                        const kiln_llb_file_info *info, kiln_error **err);
/* Create path with len bytes of data (copied). */
int kiln_llb_file_mkfile(kiln_llb_vertex *f, const char *path, int32_t mode, const void *data,
                         size_t len, const kiln_llb_file_info *info, kiln_error **err);
/* Remove path; allow_wildcard makes it a glob. */
int kiln_llb_file_rm(kiln_llb_vertex *f, const char *path, bool allow_not_found,
                     bool allow_wildcard, kiln_error **err);
/* Create the symlink newpath -> oldpath (oldpath stored verbatim). */
int kiln_llb_file_symlink(kiln_llb_vertex *f, const char *oldpath, const char *newpath,
                          const kiln_llb_file_info *info, kiln_error **err);
/* Copy src (a path in `from`) to dest. opts may be NULL (defaults). */
int kiln_llb_file_copy(kiln_llb_vertex *f, kiln_llb_state from, const char *src, const char *dest,
                       const kiln_llb_copy_opts *opts, kiln_error **err);
/* The output of a FileOp vertex (KILN_EINVAL through marshal if it has no action). */
kiln_llb_state kiln_llb_file_state(kiln_llb_vertex *f);

/* --- merge, diff --- */

/* Merge states (scratch inputs are dropped, as BuildKit does). One non-scratch input returns it
 * unchanged; none returns scratch. */
void kiln_llb_merge(kiln_llb_state *out, kiln_llb_builder *b, const kiln_llb_state *inputs,
                    size_t n);
/* The changes from lower to upper (either may be scratch). */
void kiln_llb_diff(kiln_llb_state *out, kiln_llb_builder *b, kiln_llb_state lower,
                   kiln_llb_state upper);

/* --- per-vertex metadata ---
 * OpMetadata and Op fields of a vertex, written at marshal time. Strings are copied. Metadata is
 * not part of the digest; platform and constraints are. When two vertices marshal to the same
 * digest, the metadata of the first one visited is kept. */

/* OpMetadata.description[key] = value (replacing an earlier value). */
void kiln_llb_vertex_set_description(kiln_llb_vertex *v, const char *key, const char *value);
/* The progress display name: description "llb.customname". */
void kiln_llb_vertex_set_custom_name(kiln_llb_vertex *v, const char *name);
/* OpMetadata.ignore_cache (RUN --no-cache). */
void kiln_llb_vertex_set_ignore_cache(kiln_llb_vertex *v, bool ignore);
/* OpMetadata.export_cache. */
void kiln_llb_vertex_set_export_cache(kiln_llb_vertex *v, bool export_cache);
/* OpMetadata.progress_group. */
void kiln_llb_vertex_set_progress_group(kiln_llb_vertex *v, const char *id, const char *name,
                                        bool weak);
/* OpMetadata.caps[cap] = true (the constructors add the caps of the features they use). */
void kiln_llb_vertex_add_cap(kiln_llb_vertex *v, const char *cap);
/* Op.platform of this vertex, overriding the builder default; NULL = no platform at all.
 * Ignored on vertices that are not platform-specific (merge, diff, non-image sources). */
void kiln_llb_vertex_set_platform(kiln_llb_vertex *v, const kiln_llb_platform *p);
/* Append a worker constraint filter (Op.constraints.filter). */
void kiln_llb_vertex_add_constraint(kiln_llb_vertex *v, const char *filter);

typedef struct kiln_llb_range {
    int32_t start_line, start_char, end_line, end_char;
} kiln_llb_range;

/* Register a source file (e.g. the Dockerfile); *index_out is its index for locations. */
void kiln_llb_builder_add_source(int32_t *index_out, kiln_llb_builder *b, const char *filename,
                                 const void *data, size_t len, const char *language);
/* Attach ranges of source `index` to v. KILN_EINVAL on an unknown index. */
int kiln_llb_vertex_add_location(kiln_llb_vertex *v, int32_t index, const kiln_llb_range *ranges,
                                 size_t n, kiln_error **err);

/* --- marshal --- */

/* Marshal everything `target` depends on into a Definition (appended to *out, which the caller
 * owns), with the terminal op last. digest_out, if non-NULL, receives the target op's digest.
 * KILN_EINVAL when target is scratch or a file op has no action. */
int kiln_llb_marshal(kiln_buf *out, kiln_llb_builder *b, kiln_llb_state target,
                     char digest_out[KILN_DIGEST_STRLEN + 1], kiln_error **err);

/* ---------------------------------------------------------------------------------------------
 * Loading untrusted Definitions
 */

typedef struct kiln_llb_node kiln_llb_node;
struct kiln_llb_node {
    char digest[KILN_DIGEST_STRLEN + 1];           /* sha256 of the def entry as given */
    char canonical_digest[KILN_DIGEST_STRLEN + 1]; /* after canonical re-marshal (BuildKit) */
    size_t index;                                  /* position in Definition.def */
    const uint8_t *bytes;                          /* the def entry, borrowed from the graph */
    size_t len;
    Pb__Op *op;             /* decoded op, owned by the graph */
    kiln_llb_node **inputs; /* op->inputs resolved, n_inputs = op->n_inputs */
    size_t n_inputs;
    const Pb__OpMetadata *metadata; /* or NULL */
    const Pb__Locations *locations; /* source ranges, or NULL */
};

typedef struct kiln_llb_graph kiln_llb_graph;

/* Parse and validate a Definition (bytes borrowed for the call). KILN_EINVAL over the size caps,
 * KILN_EPARSE on malformed protobuf, KILN_EINVAL on a bad graph (unknown op kind, dangling or
 * out-of-range input, cycle, bad mount/file-action index, < 2 ops, bad terminal op).
 * *out owned by the caller (kiln_llb_graph_free). */
int kiln_llb_load(kiln_llb_graph **out, const void *data, size_t len, kiln_error **err);
void kiln_llb_graph_free(kiln_llb_graph *g);
/* Distinct ops in Definition order (a repeated entry counts once); the terminal op is last. */
size_t kiln_llb_graph_count(const kiln_llb_graph *g);
const kiln_llb_node *kiln_llb_graph_node(const kiln_llb_graph *g, size_t i);
/* Hand the decoded op of node i over to the caller (free it with pb__op__free_unpacked), so that
 * a consumer that keeps ops longer than the graph needs no second decode. The node's `op` still
 * points at it, valid for as long as the caller keeps it; the graph no longer frees it. Once per
 * node. */
Pb__Op *kiln_llb_graph_take_op(kiln_llb_graph *g, size_t i);
const kiln_llb_node *kiln_llb_graph_terminal(const kiln_llb_graph *g);
/* Node by (given) digest, or NULL. */
const kiln_llb_node *kiln_llb_graph_find(const kiln_llb_graph *g, const char *digest);
/* The decoded Definition (source infos, metadata); borrowed. */
const Pb__Definition *kiln_llb_graph_definition(const kiln_llb_graph *g);

/* "exec", "source", "file", "build", "merge", "diff", "passthrough" or "terminal". */
const char *kiln_llb_op_kind(const Pb__Op *op);

/* ---------------------------------------------------------------------------------------------
 * Encoding and dump
 */

/* Append the Go-deterministic protobuf encoding of any ops.proto message to out: fields in number
 * order, proto3 zero values omitted, map entries sorted by key (last duplicate wins, both key and
 * value always written), repeated scalars packed, unknown fields kept at the end. */
void kiln_llb_encode(kiln_buf *out, const ProtobufCMessage *msg);

/* The protojson mapping of a message (lowerCamelCase names, int64 as strings, enum names, bytes
 * base64, zero values omitted). New reference owned by the caller. */
json_t *kiln_llb_to_json(const ProtobufCMessage *msg);

/* Print the graph: one JSON line per vertex ({"Op", "Digest", "OpMetadata"}) when json, else a
 * human-readable listing. KILN_ESYS on a write error. */
int kiln_llb_dump(FILE *out, const kiln_llb_graph *g, bool json, kiln_error **err);

/* --- examples (kiln debug make-llb, tests) --- */

/* NULL-terminated list of example names: "hello", "parallel", "files", "everything". */
const char *const *kiln_llb_example_names(void);
/* Build example `name` and append its Definition to out. KILN_ENOTFOUND for an unknown name. */
int kiln_llb_example(kiln_buf *out, const char *name, kiln_error **err);
/* The same with every image of the example replaced by the source identifier `base` (any SourceOp
 * identifier, e.g. "oci-layout:///path/to/layout:latest"); base NULL = kiln_llb_example.
 * KILN_ENOTFOUND for an unknown name, KILN_EINVAL for an empty base. */
int kiln_llb_example_on(kiln_buf *out, const char *name, const char *base, kiln_error **err);

#endif
