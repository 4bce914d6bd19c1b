/*
 * instructions.h: typed views of parsed Dockerfile instructions (BuildKit's instructions package,
 * the part that needs no variable expansion): keyword validation with suggestions, `--flag`
 * parsing with BuildKit's rules, FROM, RUN (--mount, --network, --security) and COPY/ADD.
 *
 * Values are taken as written: ${VAR} references in flag values and arguments are left for the
 * build-time expansion (shell.h) to resolve.
 */
#ifndef KILN_FRONTENDS_DOCKERFILE_INSTRUCTIONS_H
#define KILN_FRONTENDS_DOCKERFILE_INSTRUCTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/vec.h"
#include "frontends/dockerfile/parser.h"

/**
 * Check that an instruction node names a known instruction.
 * @return 0, or KILN_EPARSE "unknown instruction: FOO (did you mean ...?)" with the node's
 *         location as line (file left unset for the caller to add)
 */
int kiln_df_check_keyword(const kiln_df_node *n, kiln_error **err);

typedef struct kiln_df_from {
    char *image;      /* base image reference or stage name, as written */
    char *stage_name; /* lowercased `AS` name, or NULL */
    char *platform;   /* --platform value, or NULL */
} kiln_df_from;

typedef enum kiln_df_mount_type {
    KILN_DF_MOUNT_BIND,
    KILN_DF_MOUNT_CACHE,
    KILN_DF_MOUNT_TMPFS,
    KILN_DF_MOUNT_SECRET,
    KILN_DF_MOUNT_SSH,
} kiln_df_mount_type;

typedef enum kiln_df_sharing {
    KILN_DF_SHARING_DEFAULT, /* not set: shared */
    KILN_DF_SHARING_SHARED,
    KILN_DF_SHARING_PRIVATE,
    KILN_DF_SHARING_LOCKED,
} kiln_df_sharing;

typedef struct kiln_df_mount {
    kiln_df_mount_type type;
    char *from; /* NULL when unset */
    char *source;
    char *target;
    char *id;
    char *env; /* secret exposed as this environment variable */
    bool readonly;
    bool required;
    kiln_df_sharing sharing;
    bool has_mode, has_uid, has_gid;
    uint32_t mode, uid, gid;
    uint64_t size; /* tmpfs size limit in bytes, 0 = none */
} kiln_df_mount;

typedef enum kiln_df_network {
    KILN_DF_NETWORK_DEFAULT,
    KILN_DF_NETWORK_NONE,
    KILN_DF_NETWORK_HOST,
} kiln_df_network;

typedef struct kiln_df_run {
    kiln_vec mounts; /* kiln_df_mount * */
    kiln_df_network network;
    bool insecure;        /* --security=insecure */
    bool json;            /* exec form */
    kiln_vec args;        /* char *: exec-form argv, or one shell command string */
    kiln_vec mount_specs; /* char *: the --mount values as written, for expansion later */
} kiln_df_run;

typedef struct kiln_df_copy {
    bool is_add;
    char *from, *chown, *chmod, *checksum; /* NULL when unset */
    bool link, parents, keep_git_dir;
    int unpack;        /* -1 unset, 0 false, 1 true (ADD --unpack) */
    kiln_vec excludes; /* char *: --exclude patterns */
    kiln_vec sources;  /* char * */
    char *dest;
} kiln_df_copy;

/* FROM [--platform=P] IMAGE [AS NAME]. KILN_EPARSE on bad arity, bad stage name or flags. */
int kiln_df_parse_from(kiln_df_from *out, const kiln_df_node *n, kiln_error **err);
void kiln_df_from_dispose(kiln_df_from *f);

/* RUN [--mount=...]... [--network=...] [--security=...] ARGS. KILN_EPARSE on bad flags or mount
 * options (messages as BuildKit's). */
int kiln_df_parse_run(kiln_df_run *out, const kiln_df_node *n, kiln_error **err);
void kiln_df_run_dispose(kiln_df_run *r);

/* One --mount value ("type=cache,target=/x,..."). *out owned by the caller. */
int kiln_df_parse_mount(kiln_df_mount **out, const char *value, kiln_error **err);
void kiln_df_mount_free(kiln_df_mount *m);

/* Expansion of one word (a --mount value): *out owned by the caller. */
typedef int (*kiln_df_expand_fn)(char **out, const char *word, void *payload, kiln_error **err);

/* kiln_df_parse_mount with every key=value value expanded through `expand` first (BuildKit
 * expands mount options at dispatch time). expand NULL = kiln_df_parse_mount. */
int kiln_df_parse_mount_expand(kiln_df_mount **out, const char *value, kiln_df_expand_fn expand,
                               void *payload, kiln_error **err);

/* Parse an instruction's flags when all of them are strings: values[i] receives the value of
 * names[i] (borrowed from the node) or NULL when absent. KILN_EPARSE on an unknown or duplicate
 * flag, as BuildKit's BFlags ("unknown flag: x"); names may be empty (n = 0: no flags allowed). */
int kiln_df_parse_string_flags(const char **values, const kiln_df_node *n, const char *const *names,
                               size_t n_names, kiln_error **err);

/* COPY or ADD with their flags; at least one source and a destination. */
int kiln_df_parse_copy(kiln_df_copy *out, const kiln_df_node *n, kiln_error **err);
void kiln_df_copy_dispose(kiln_df_copy *c);

#endif
