/*
 * dockerfile_checks_fuzzer.c: parses arbitrary bytes as a Dockerfile and runs the build checks
 * over what parses, twice: with the Dockerfile's own rule selection, a known base image Env and
 * build args, and in KILN_DF_CHECK_ERROR mode without them. Every finding must be a
 * "Dockerfile:LINE: Rule: message" line; any crash, leak or sanitizer report is a bug.
 */
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "frontends/dockerfile/checks.h"
#include "frontends/dockerfile/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_env[] = {"PATH=/usr/bin:/bin", "HOME=/root", "LANG", NULL};
static const char *const fuzz_build_args[] = {"VERSION=1.0", "TARGETPLATFORM=linux/arm64", "BASE",
                                              NULL};

static const char *const *
fuzz_base_env(size_t stage, void *payload)
{
    (void)payload;
    return stage % 2 == 0 ? fuzz_env : NULL;
}

static void
lint_once(const kiln_df_result *r, const kiln_df_lint_opts *opts)
{
    kiln_vec warnings = KILN_VEC_INIT;
    kiln_error *err = NULL;
    const char *w;

    if (kiln_df_lint(&warnings, r, opts, &err) < 0) {
        if (!err || !err->msg)
            abort();
        kiln_error_free(&err);
    }
    kiln_vec_foreach(&warnings, i, w) {
        if (!kiln_str_has_prefix(w, "Dockerfile:") || !strstr(w, ": "))
            abort();
    }
    kiln_strvec_dispose(&warnings);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const kiln_df_lint_opts full = {.build_args = fuzz_build_args, .base_env = fuzz_base_env};
    const kiln_df_lint_opts error = {.mode = KILN_DF_CHECK_ERROR};
    kiln_df_result *r = NULL;
    kiln_error *err = NULL;

    if (kiln_df_parse(&r, (const char *)data, size, "Dockerfile", &err) < 0) {
        kiln_error_free(&err);
        return 0;
    }
    lint_once(r, &full);
    lint_once(r, &error);
    kiln_df_result_free(r);
    return 0;
}
