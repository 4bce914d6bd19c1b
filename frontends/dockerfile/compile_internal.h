/*
 * compile_internal.h: shared state of the Dockerfile compiler family (compile.c: stages, targets,
 * base images, image config; compile_dispatch.c: one handler per instruction; compile_copy.c:
 * COPY/ADD and RUN --mount; compile_util.c: environment lists and Go-compatible formatting).
 *
 * The model follows BuildKit's dockerfile2llb: one df_stage per FROM (plus "unregistered" stages
 * for `COPY --from=image` and `RUN --mount=from=image`), each carrying an LLB state, the LLB
 * metadata BuildKit keeps on llb.State (env list, dir, user, platform) and the image config the
 * stage would produce.
 */
#ifndef KILN_FRONTENDS_DOCKERFILE_COMPILE_INTERNAL_H
#define KILN_FRONTENDS_DOCKERFILE_COMPILE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/vec.h"
#include "frontends/dockerfile/dockerfile.h"
#include "frontends/dockerfile/instructions.h"
#include "frontends/dockerfile/parser.h"
#include "frontends/dockerfile/shell.h"
#include "llb/llb.h"
#include "oci/oci.h"

#define DF_DEFAULT_PATH    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DF_HISTORY_COMMENT "buildkit.dockerfile.v0"
#define DF_CMD_DESCRIPTION "com.docker.dockerfile.v1.command"
#define DF_MAX_STAGES      512
#define DF_MAX_ENV         (1u << 20) /* bytes of env a stage may hold (execve: 2 MiB) */
#define DF_MAX_EXPANSION   (1u << 20) /* bound on what one word may expand to */

/* One "K=V" pair; value NULL = declared without a value (ARG). */
typedef struct df_kv {
    char *key;
    char *value;
} df_kv;

/* An ordered environment (llb.EnvList): set moves the key to the end, as AddOrReplace. */
typedef struct df_env {
    kiln_vec items; /* df_kv * */
} df_env;

typedef struct df_stage df_stage;

/* An instruction of a stage and the stages it reads (COPY --from: one; RUN: one per --mount). */
typedef struct df_cmd {
    const kiln_df_node *node;
    kiln_vec sources; /* df_stage *, NULL where the build context is meant */
} df_cmd;

struct df_stage {
    size_t index;
    char *name;               /* lowercased AS name, or NULL */
    char *display;            /* name in progress ("build", "stage-1", "" for a single stage) */
    char *base_name;          /* FROM argument after expansion (then normalised / pinned) */
    const kiln_df_node *from; /* the FROM node; NULL for unregistered stages */
    kiln_vec cmds;            /* df_cmd * */
    df_stage *base;           /* FROM <stage> */
    kiln_vec deps;            /* df_stage * read by COPY --from / RUN --mount */
    bool unregistered, noinit, scratch_base, ignore_cache, cmd_set, resolved, dispatched;
    bool dispatching, reachable;
    int color;         /* cycle search */
    bool located;      /* unregistered: its image vertex carries the location of `from` */
    bool has_platform; /* platform set by --platform or the base image */
    kiln_oci_platform platform;
    int cmd_index, cmd_total;
    /* llb.State and its metadata */
    kiln_llb_state state;
    df_env env;
    char *dir;  /* NULL = unset ("/" for exec) */
    char *user; /* NULL = unset */
    /* image config of the stage */
    kiln_oci_config image;
    bool image_set;
    kiln_vec build_args; /* df_kv *: ARGs declared in this stage, with their values */
    char **base_env;     /* the base image's Env (NULL-terminated) for the checks, or NULL */
};

typedef struct df_resolved {
    char *ref, *platform;
    char *config, *digest;
} df_resolved;

typedef struct df_compiler {
    const kiln_df_compile_opts *opts;
    const char *filename;
    kiln_df_result *ast;
    kiln_shlex lex;
    kiln_llb_builder *b;
    int32_t src_index;
    kiln_vec stages;          /* df_stage * */
    kiln_vec meta_args;       /* df_kv *: platform args, then global ARGs */
    kiln_vec build_args;      /* df_kv *: --build-arg values */
    bool has_proxy;           /* a proxy build arg was given: every RUN gets Meta.proxy_env */
    kiln_llb_proxy_env proxy; /* values point into build_args */
    kiln_oci_platform target_platform, build_platform;
    bool implicit_target;
    bool context_made;
    kiln_llb_state context;
    kiln_vec resolved;       /* df_resolved * */
    char *created;           /* RFC 3339 time for `created` and history entries */
    int link_group;          /* counter for --link progress group ids */
    kiln_vec ctx_paths;      /* char *: context paths read ("/a", "/dir/x*") */
    kiln_vec follow;         /* char *: FollowPaths of the context (NULL-terminated), or empty */
    kiln_vec locals;         /* char *: local source names used */
    const kiln_df_node *cur; /* the instruction being dispatched (locations of helper vertices) */
} df_compiler;

/* ---- compile_util.c ---- */
void df_env_init(df_env *e);
void df_env_dispose(df_env *e);
void df_env_copy(df_env *dst, const df_env *src);
void df_env_set(df_env *e, const char *key, const char *value);
const char *df_env_get(const df_env *e, const char *key);
/* kiln_shlex_lookup_fn over a df_env (payload = const df_env *). */
bool df_env_lookup(const char *name, const char **value, void *payload);
/* KILN_EINVAL when the environment holds more than DF_MAX_ENV bytes. */
int df_env_check(const df_env *e, kiln_error **err);
/* Can `word` expand to more than DF_MAX_EXPANSION bytes with values up to `max_value` long? */
bool df_expansion_too_large(const char *word, size_t max_value);
/* "K=V" strings, NULL-terminated; owned by the caller (cleanup_strv). */
char **df_env_array(const df_env *e);
/* kiln_shlex_lookup_fn over a kiln_vec of df_kv * (last wins, NULL value = ""). */
bool df_kvs_lookup(const char *name, const char **value, void *payload);
void df_kv_free(void *p);
df_kv *df_kv_new(const char *key, const char *value);

/* Go's fmt %q of a []string: ["a" "b"]. Owned by the caller. */
char *df_go_quote_strv(const kiln_vec *v);
/* Go's fmt %v of a []string: [a b]. Owned by the caller. */
char *df_go_strv(const kiln_vec *v);
/* Go's time.Duration.String(). Owned by the caller. */
char *df_go_duration(int64_t ns);
/* Go's %q of a rune (int): 'A', '\x03'. Owned by the caller. */
char *df_go_quote_rune(int64_t r);
/* time.ParseDuration: 0 or -1 (bad syntax). */
int df_parse_duration(const char *s, int64_t *out);
/* Is `s` a signal name or number docker accepts (signal.ParseSignal)? */
bool df_valid_signal(const char *s);

/* ---- compile.c ---- */
/* Set the Dockerfile location of node `n` on *err. Returns the code. */
int df_error_at(df_compiler *c, const kiln_df_node *n, kiln_error **err);
/* Expand `word` with `env` (or the lexer in `lex`, NULL = the Dockerfile's). */
int df_expand(char **out, df_compiler *c, const kiln_shlex *lex, const char *word,
              const df_env *env, kiln_error **err);
/* Decorate a vertex created for stage `s` by node `n` (location, ignore_cache, platform,
 * custom name and command description when not NULL). */
int df_vertex_meta(df_compiler *c, df_stage *s, kiln_llb_vertex *v, const kiln_df_node *n,
                   const char *name, const char *description, kiln_error **err);
/* BuildKit's prefixCommand: "[stage N/M] " + str; owned by the caller. Advances cmd_index. */
char *df_prefix(df_stage *s, const char *str);
/* The progress name of an instruction: its source line with variables expanded (raw quotes when
 * `raw`), keyword uppercased. Owned by the caller. */
char *df_cmd_name(df_compiler *c, df_stage *s, const char *code, bool raw);
/* llb.WithUser: "user[:group]" with numeric ids (and "root") as ids, else names. Points into
 * `spec`, which must outlive *out. */
void df_chown(kiln_llb_file_info *out, char *spec);
/* The build context state (created on first use). */
int df_context(kiln_llb_state *out, df_compiler *c, kiln_error **err);
/* Record a context path that COPY/ADD/RUN --mount reads (for the context's follow paths). */
void df_context_path(df_compiler *c, const char *src);
/* Append a history entry to the stage's image. */
void df_history(df_compiler *c, df_stage *s, const char *created_by, bool layer);
/* Make sure stage `s` (a source of another stage) is resolved and dispatched. */
int df_ensure_stage(df_compiler *c, df_stage *s, kiln_error **err);
/* Does `s` name a git repository (gitutil.ParseGitRef, not a local-looking path)? */
bool df_is_git_url(const char *s);
/* Trimmed original line of an instruction node; owned by the caller. */
char *df_node_code(const kiln_df_node *n);

/* ---- compile_dispatch.c ---- */
/* Run one instruction on stage `s`. Errors carry the node's location. */
int df_dispatch(df_compiler *c, df_stage *s, const df_cmd *cmd, kiln_error **err);
/* Run the base image's ONBUILD triggers. */
int df_dispatch_onbuild_triggers(df_compiler *c, df_stage *s, kiln_error **err);
/* Collect the stages `n` reads into cmd->sources (adding unregistered stages to c). */
int df_command_sources(df_compiler *c, df_cmd *cmd, kiln_error **err);
/* Check an instruction's syntax (flags, arity) without running it. */
int df_validate(df_compiler *c, const kiln_df_node *n, kiln_error **err);

/* ---- compile_copy.c ---- */
int df_dispatch_copy(df_compiler *c, df_stage *s, const df_cmd *cmd, kiln_error **err);
/* The mounts of a RUN for kiln_llb_exec; the strings they point into live in `keep`. */
typedef struct df_run_mounts_out {
    kiln_llb_mount *mounts;
    size_t n_mounts;
    kiln_vec secret_env; /* kiln_llb_secret_env * (--mount=type=secret,env=NAME) */
    kiln_vec keep;       /* char * */
} df_run_mounts_out;

/* Build the mounts of a RUN (options expanded with the stage's environment). */
int df_run_mounts(df_compiler *c, df_stage *s, const df_cmd *cmd, const kiln_df_run *run,
                  df_run_mounts_out *out, kiln_error **err);
void df_run_mounts_dispose(df_run_mounts_out *out);

/* Find a stage by (case-insensitive) name. */
df_stage *df_find_stage(df_compiler *c, const char *name);
/* A new unregistered stage for an image named by --from (added to c->stages); `at` is the
 * instruction naming it (for errors, and for the image vertex's location when `located`). */
df_stage *df_add_unregistered(df_compiler *c, const char *base, const kiln_df_node *at,
                              bool located);

#endif
