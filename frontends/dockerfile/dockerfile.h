/*
 * dockerfile.h: the Dockerfile frontend (BuildKit's dockerfile2llb): compile a Dockerfile into an
 * LLB Definition for the target stage plus the image config of that stage.
 *
 * The frontend never touches the engine: base images' configs come through a resolve callback
 * (the CLI passes kiln_engine_resolve_image_config), the build context is the LLB source
 * `local://<context_name>`, and the result is plain data for the caller to solve and export.
 */
#ifndef KILN_FRONTENDS_DOCKERFILE_DOCKERFILE_H
#define KILN_FRONTENDS_DOCKERFILE_DOCKERFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/vec.h"

/* Resolve image `ref` (as written after expansion: "busybox", "host:5000/x:1@sha256:...",
 * or a named context's "docker-image://..." / "oci-layout://..." value) for `platform`
 * ("linux/amd64"): *config_json = the image config's bytes, *manifest_digest = the manifest
 * digest (both owned by the caller, NUL-terminated). Errors as kiln_engine_resolve_image_config. */
typedef int (*kiln_df_resolve_fn)(char **config_json, char **manifest_digest, const char *ref,
                                  const char *platform, void *payload, kiln_error **err);

/* `--build-context name=value`: value is "docker-image://ref", "oci-layout://dir[:tag|@digest]",
 * "local:NAME" (an extra local source the caller binds under NAME) or a URL (git/https). */
typedef struct kiln_df_named_context {
    const char *name;
    const char *value;
} kiln_df_named_context;

typedef enum kiln_df_check_mode {
    KILN_DF_CHECK_DEFAULT = 0, /* as the Dockerfile's `# check=` directive says (warnings) */
    KILN_DF_CHECK_SKIP,        /* --check skip=all */
    KILN_DF_CHECK_ERROR,       /* every warning is an error */
} kiln_df_check_mode;

#define KILN_DF_COMPILE_OPTS_VERSION 1

typedef struct kiln_df_compile_opts {
    int version;          /* KILN_DF_COMPILE_OPTS_VERSION */
    const char *filename; /* for messages and source locations ("Dockerfile") */
    const char *data;     /* the Dockerfile's bytes (borrowed) */
    size_t len;
    const char *target;            /* --target stage name, NULL = the last stage */
    const char *const *build_args; /* "K=V" (or "K": take V from the caller's env), NULL-end */
    const char *const *labels;     /* --label "K=V", NULL-terminated */
    const char *context_name;      /* local name of the build context; NULL = "context" */
    const char *const *context_excludes; /* .dockerignore patterns, NULL-terminated */
    const kiln_df_named_context *named_contexts;
    size_t n_named_contexts;
    const char *platform;               /* target platform "os/arch[/variant]"; NULL = the host */
    bool no_cache;                      /* --no-cache: every vertex ignore_cache */
    const char *const *no_cache_filter; /* stage names whose vertices ignore the cache */
    int64_t source_date_epoch;          /* -1 = unset; else `created` and history times */
    kiln_df_check_mode check;
    kiln_df_resolve_fn resolve; /* required unless every stage is scratch */
    void *resolve_payload;
    const char *network; /* build --network: the network of RUNs without their own --network
                          * (or with --network=default): NULL or "default", "none", "host" */
} kiln_df_compile_opts;

typedef struct kiln_df_compiled {
    kiln_buf definition; /* marshalled LLB Definition of the target stage */
    char *config_json;   /* the target's OCI image config (rootfs.diff_ids left empty for the
                          * exporter; history holds one entry per instruction that Docker
                          * records, empty_layer set where no layer is made) */
    char *target;        /* name (or index as a string) of the stage built */
    kiln_vec warnings;   /* char *: "Dockerfile:LINE: RuleName: message", in line order */
    kiln_vec locals;     /* char *: names of the local sources the Definition reads (the build
                          * context and "local:NAME" named contexts), for the caller to bind */
} kiln_df_compiled;

/**
 * Compile a Dockerfile.
 * @param out  filled on success; dispose with kiln_df_compiled_dispose (also safe when zeroed)
 * @return 0; KILN_EPARSE (syntax, unknown instruction, bad flag: "Dockerfile:LINE: ..."),
 *         KILN_ENOTFOUND (--target names no stage), KILN_EINVAL (bad option, a check error with
 *         KILN_DF_CHECK_ERROR), or the resolve callback's error wrapped with the FROM line
 */
int kiln_df_compile(kiln_df_compiled *out, const kiln_df_compile_opts *opts, kiln_error **err);
void kiln_df_compiled_dispose(kiln_df_compiled *c);

/* Notes on kiln_df_compiled:
 *  - a target stage that is empty (FROM scratch with only metadata instructions) has no LLB
 *    vertex: `definition` is then empty (len 0), as BuildKit's Definition of llb.Scratch();
 *  - RUN/COPY vertices are named as BuildKit's progress ("[stage 2/5] RUN ..."), carry the
 *    instruction's source range, and the Definition's source info holds the Dockerfile. */

#endif
