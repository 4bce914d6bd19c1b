/*
 * checks.h: build checks (BuildKit's linter, `docker build --check`, the `# check=` directive):
 * rules over a parsed Dockerfile that find likely mistakes without failing the build, unless the
 * directive or the caller says error=true.
 */
#ifndef KILN_FRONTENDS_DOCKERFILE_CHECKS_H
#define KILN_FRONTENDS_DOCKERFILE_CHECKS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "base/vec.h"
#include "frontends/dockerfile/dockerfile.h"
#include "frontends/dockerfile/parser.h"

/* The environment a stage starts with when its base is an image: "K=V" strings of the image
 * config's Env (NULL-terminated, borrowed until the next call), or NULL when unknown or when the
 * stage's base is another stage or scratch. `stage` counts FROM instructions from 0. */
typedef const char *const *(*kiln_df_base_env_fn)(size_t stage, void *payload);

typedef struct kiln_df_lint_opts {
    const char *filename;          /* for messages ("Dockerfile") */
    kiln_df_check_mode mode;       /* the caller's override of the directive */
    const char *const *build_args; /* names the caller passes with --build-arg ("K" or "K=V") */
    kiln_df_base_env_fn base_env;  /* optional */
    void *base_env_payload;
} kiln_df_lint_opts;

/**
 * Run every enabled rule over `ast` (the `# check=` directive of the file is honoured).
 * @param warnings  initialised by the caller; receives owned "Dockerfile:LINE: Rule: message"
 *                  strings sorted by line
 * @return 0; KILN_EINVAL "Dockerfile:LINE: Rule: message" for the first finding when findings
 *         are errors (error=true); KILN_EINVAL for a malformed check directive
 */
int kiln_df_lint(kiln_vec *warnings, const kiln_df_result *ast, const kiln_df_lint_opts *opts,
                 kiln_error **err);

/* The names of every rule kiln implements, NULL-terminated (for --check help and tests). */
const char *const *kiln_df_lint_rules(void);

#endif
