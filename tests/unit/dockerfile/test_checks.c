/*
 * test_checks.c: unit tests of the Dockerfile build checks (frontends/dockerfile/checks.c). Each
 * rule has a Dockerfile that triggers it, with BuildKit's exact message and line, and one that
 * does not; then rule selection (`# check=` directive, comments above an instruction, the
 * caller's mode), error=true and the ordering of findings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"
#include "frontends/dockerfile/checks.h"
#include "frontends/dockerfile/parser.h"

/* The Env every image base gets in these tests (stage index ignored). */
static const char *const image_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "PYTHON_VERSION=3.12",
                                        NULL};

static const char *const *
test_base_env(size_t stage, void *payload)
{
    size_t *calls = payload;

    (void)stage;
    if (calls)
        (*calls)++;
    return image_env;
}

static const kiln_df_lint_opts with_env = {.base_env = test_base_env};

/* Lint `src`; *rc_out gets the return code, *err_out the error (may be NULL). The warnings are
 * returned in `out` (initialised here). */
static int
lint(kiln_vec *out, const char *src, const kiln_df_lint_opts *opts, kiln_error **err)
{
    kiln_df_result *r = NULL;
    kiln_error *perr = NULL;
    int rc;

    kiln_vec_init(out);
    if (kiln_df_parse(&r, src, strlen(src), NULL, &perr) < 0)
        fail_msg("parse %s: %s", src, perr->msg);
    rc = kiln_df_lint(out, r, opts, err);
    kiln_df_result_free(r);
    return rc;
}

/* Assert that linting `src` succeeds with exactly the NULL-terminated `want` findings. */
static void
expect(const char *src, const kiln_df_lint_opts *opts, const char *const *want)
{
    kiln_vec got;
    kiln_error *err = NULL;
    size_t n = 0;

    if (lint(&got, src, opts, &err) < 0)
        fail_msg("lint %s: %s", src, err->msg);
    for (; want[n]; n++) {
        if (n >= got.len)
            fail_msg("%s: missing finding %s", src, want[n]);
        if (strcmp(got.items[n], want[n]) != 0)
            fail_msg("%s: finding %zu is\n  %s\nwant\n  %s", src, n, (char *)got.items[n], want[n]);
    }
    if (got.len != n)
        fail_msg("%s: unexpected finding %s", src, (char *)got.items[n]);
    kiln_strvec_dispose(&got);
}

#define EXPECT(src, opts, ...) expect(src, opts, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_NONE(src, opts) expect(src, opts, (const char *const[]){NULL})

static void
test_checks_rules__list(void **state)
{
    const char *const *rules = kiln_df_lint_rules();
    static const char *const want[] = {
            "StageNameCasing",
            "FromAsCasing",
            "NoEmptyContinuation",
            "ConsistentInstructionCasing",
            "DuplicateStageName",
            "ReservedStageName",
            "JSONArgsRecommended",
            "MaintainerDeprecated",
            "UndefinedArgInFrom",
            "WorkdirRelativePath",
            "UndefinedVar",
            "MultipleInstructionsDisallowed",
            "LegacyKeyValueFormat",
            "InvalidDefaultArgInFrom",
            "FromPlatformFlagConstDisallowed",
            "RedundantTargetPlatform",
            "SecretsUsedInArgOrEnv",
    };
    size_t n = 0;

    (void)state;
    while (rules[n])
        n++;
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++)
        assert_string_equal(rules[i], want[i]);
}

static void
test_checks_stage_name__casing(void **state)
{
    (void)state;
    EXPECT("FROM scratch AS BadStageName\n", NULL,
           "Dockerfile:1: StageNameCasing: Stage name 'BadStageName' should be lowercase");
    EXPECT_NONE("FROM scratch AS good-name\nFROM scratch\n", NULL);
}

static void
test_checks_from_as__casing(void **state)
{
    (void)state;
    EXPECT("\nFROM scratch AS a\nFROM scratch as base2\n", NULL,
           "Dockerfile:3: FromAsCasing: 'as' and 'FROM' keywords' casing do not match");
    EXPECT("from scratch AS base\nfrom scratch as base2\n", NULL,
           "Dockerfile:1: FromAsCasing: 'AS' and 'from' keywords' casing do not match");
    /* a mixed-case FROM is left to ConsistentInstructionCasing */
    EXPECT("From scratch as base\nFROM scratch AS base2\n", NULL,
           "Dockerfile:1: ConsistentInstructionCasing: Command 'From' should match the case of "
           "the command majority (uppercase)");
    EXPECT_NONE("FROM scratch AS a\nFROM a AS b\n", NULL);
}

static void
test_checks_empty_continuation__warns(void **state)
{
    (void)state;
    EXPECT("\nFROM scratch\n# warning: empty continuation line\nCOPY Dockerfile \\\n\n.\n"
           "COPY Dockerfile \\\n.\n",
           NULL, "Dockerfile:6: NoEmptyContinuation: Empty continuation line");
    EXPECT_NONE("FROM scratch\nCOPY Dockerfile \\\n.\n", NULL);
}

static void
test_checks_casing__majority(void **state)
{
    (void)state;
    EXPECT("FROM scratch\ncopy Dockerfile /foo\nCOPY Dockerfile /bar\n", NULL,
           "Dockerfile:2: ConsistentInstructionCasing: Command 'copy' should match the case of "
           "the command majority (uppercase)");
    EXPECT("frOM scratch as base\nfrom scratch as base2\n", NULL,
           "Dockerfile:1: ConsistentInstructionCasing: Command 'frOM' should match the case of "
           "the command majority (lowercase)");
    EXPECT("FROM scratch\ncopy Dockerfile /foo\ncopy Dockerfile /bar\ncopy Dockerfile /baz\n", NULL,
           "Dockerfile:1: ConsistentInstructionCasing: Command 'FROM' should match the case of "
           "the command majority (lowercase)");
    /* meta ARGs before the first FROM are not counted */
    EXPECT_NONE("ARG A=1\narg B=2\narg C=3\nFROM scratch\nCOPY Dockerfile /bar\n", NULL);
    EXPECT_NONE("from scratch\ncopy Dockerfile /foo\n", NULL);
}

static void
test_checks_stage_name__duplicate_reserved(void **state)
{
    (void)state;
    EXPECT("FROM scratch AS b\nFROM scratch AS B\n", NULL,
           "Dockerfile:2: StageNameCasing: Stage name 'B' should be lowercase",
           "Dockerfile:2: DuplicateStageName: Duplicate stage name \"b\", stage names should be "
           "unique");
    EXPECT("FROM scratch AS scratch\nFROM scratch AS context\n", NULL,
           "Dockerfile:1: ReservedStageName: Stage name should not use the same name as reserved "
           "stage \"scratch\"",
           "Dockerfile:2: ReservedStageName: Stage name should not use the same name as reserved "
           "stage \"context\"");
    EXPECT_NONE("FROM scratch AS b1\nFROM scratch AS b2\nFROM scratch\n", NULL);
}

static void
test_checks_json_args__cmd_entrypoint(void **state)
{
    (void)state;
    EXPECT("FROM scratch\nCMD mycommand\n", NULL,
           "Dockerfile:2: JSONArgsRecommended: JSON arguments recommended for CMD to prevent "
           "unintended behavior related to OS signals");
    EXPECT("FROM scratch\nentrypoint mycommand\n", NULL,
           "Dockerfile:2: ConsistentInstructionCasing: Command 'entrypoint' should match the case "
           "of the command majority (uppercase)",
           "Dockerfile:2: JSONArgsRecommended: JSON arguments recommended for entrypoint to "
           "prevent unintended behavior related to OS signals");
    EXPECT_NONE("FROM scratch\nCMD [\"mycommand\"]\nENTRYPOINT [\"x\"]\n", NULL);
    EXPECT_NONE("FROM scratch\nSHELL [\"/usr/bin/customshell\"]\nCMD mycommand\n", NULL);
    /* SHELL carries over to a stage built on the stage */
    EXPECT_NONE("FROM scratch AS base\nSHELL [\"/bin/x\"]\nFROM base\nENTRYPOINT mycommand\n",
                NULL);
}

static void
test_checks_maintainer__deprecated(void **state)
{
    (void)state;
    EXPECT("FROM scratch\nMAINTAINER me@example.org\n", NULL,
           "Dockerfile:2: MaintainerDeprecated: Maintainer instruction is deprecated in favor of "
           "using label");
    EXPECT_NONE("FROM scratch\nLABEL org.opencontainers.image.authors=\"me@example.org\"\n", NULL);
}

static void
test_checks_undefined_arg__in_from(void **state)
{
    (void)state;
    EXPECT("FROM --platform=$BULIDPLATFORM scratch\n", NULL,
           "Dockerfile:1: UndefinedArgInFrom: FROM argument 'BULIDPLATFORM' is not declared (did "
           "you mean BUILDPLATFORM?)");
    EXPECT("ARG MY_ARCH=amd64\nFROM --platform=linux/${MYARCH} busybox\n", NULL,
           "Dockerfile:2: UndefinedArgInFrom: FROM argument 'MYARCH' is not declared (did you "
           "mean MY_ARCH?)");
    EXPECT("\nARG tag=latest\nFROM busybox:${tag}${version} AS b\n", NULL,
           "Dockerfile:3: UndefinedArgInFrom: FROM argument 'version' is not declared");
    EXPECT_NONE("ARG base=scratch\nFROM $base\n", NULL);
    EXPECT_NONE("FROM --platform=$BUILDPLATFORM scratch\n", NULL);
    EXPECT_NONE("ARG DEBUG\nFROM scra${DEBUG:-tch}\n", NULL);
}

static void
test_checks_workdir__relative(void **state)
{
    static const char *const abs_arg[] = {"DIR=/srv", NULL};
    const kiln_df_lint_opts build_arg = {.build_args = abs_arg};

    (void)state;
    EXPECT("FROM scratch\nWORKDIR app/\nWORKDIR sub\n", NULL,
           "Dockerfile:2: WorkdirRelativePath: Relative workdir \"app/\" can have unexpected "
           "results if the base image changes");
    /* the path is checked after expansion */
    EXPECT("FROM scratch\nARG DIR=a\nWORKDIR $DIR/b\n", NULL,
           "Dockerfile:3: WorkdirRelativePath: Relative workdir \"a/b\" can have unexpected "
           "results if the base image changes");
    EXPECT_NONE("FROM scratch\nARG DIR\nWORKDIR $DIR/b\n", &build_arg);
    EXPECT_NONE("FROM scratch AS a\nWORKDIR /app\nFROM a AS b\nWORKDIR subdir/\n", NULL);
}

static void
test_checks_undefined_var__stage(void **state)
{
    (void)state;
    EXPECT("FROM alpine\nCOPY $foo .\nARG foo=bar\nRUN echo $foo $nope\n", &with_env,
           "Dockerfile:2: UndefinedVar: Usage of undefined variable '$foo'");
    EXPECT("FROM alpine\nARG DIR_BINARIES=binaries/\nARG DIR_ASSETS=assets/\nCOPY $DIR_ASSET .\n",
           &with_env,
           "Dockerfile:4: UndefinedVar: Usage of undefined variable '$DIR_ASSET' (did you mean "
           "$DIR_ASSETS?)");
    EXPECT("FROM scratch\nENV PATH=$PAHT:/tmp/bin\n", NULL,
           "Dockerfile:2: UndefinedVar: Usage of undefined variable '$PAHT' (did you mean "
           "$PATH?)");
    /* ARG defaults are expanded too; ENV pairs of one instruction see the old values */
    EXPECT("FROM scratch\nARG VERSION=$foo\nENV A=1 B=$A\n", NULL,
           "Dockerfile:2: UndefinedVar: Usage of undefined variable '$foo'",
           "Dockerfile:3: UndefinedVar: Usage of undefined variable '$A'");
    EXPECT("FROM scratch\nLABEL a=$x\nUSER $u\nVOLUME $v\nEXPOSE $p\nSTOPSIGNAL $s\n", NULL,
           "Dockerfile:2: UndefinedVar: Usage of undefined variable '$x'",
           "Dockerfile:3: UndefinedVar: Usage of undefined variable '$u'",
           "Dockerfile:4: UndefinedVar: Usage of undefined variable '$v'",
           "Dockerfile:5: UndefinedVar: Usage of undefined variable '$p'",
           "Dockerfile:6: UndefinedVar: Usage of undefined variable '$s'");
    EXPECT("FROM scratch\nCOPY --chown=$who <<EOF /a\n$body\nEOF\n"
           "RUN --mount=type=cache,target=$cache true\n"
           /* the parser drops the quotes; fields after a bad one ("d") are not expanded */
           "RUN --mount=type=secret,\"id=$i,d\",\"env=\"\"$e\" true\n"
           "RUN --mount=type=secret,ro,id=$j,required true\n",
           NULL, "Dockerfile:2: UndefinedVar: Usage of undefined variable '$who'",
           "Dockerfile:2: UndefinedVar: Usage of undefined variable '$body'",
           "Dockerfile:5: UndefinedVar: Usage of undefined variable '$cache'",
           "Dockerfile:6: UndefinedVar: Usage of undefined variable '$i'",
           "Dockerfile:7: UndefinedVar: Usage of undefined variable '$j'");
    /* the predefined platform args live in the global scope only */
    EXPECT("FROM scratch\nCOPY $TARGETARCH /\n", NULL,
           "Dockerfile:2: UndefinedVar: Usage of undefined variable '$TARGETARCH'");
}

static void
test_checks_undefined_var__defined(void **state)
{
    static const char *const build_args[] = {"foo=x", NULL};
    const kiln_df_lint_opts bargs = {.build_args = build_args, .base_env = test_base_env};
    size_t calls = 0;
    const kiln_df_lint_opts counted = {.base_env = test_base_env, .base_env_payload = &calls};

    (void)state;
    EXPECT_NONE("FROM scratch\nARG foo\nCOPY Dockerfile${foo} .\n", NULL);
    EXPECT_NONE("FROM alpine AS base\nARG foo=Dockerfile\nFROM base\nCOPY $foo .\n", &with_env);
    EXPECT_NONE("FROM alpine AS base\nENV E=1\nFROM base\nCOPY $E $PYTHON_VERSION .\n", &counted);
    assert_int_equal(calls, 1); /* only the image base asks for its Env */
    EXPECT_NONE("FROM alpine\nRUN echo $PATH $nope\nCMD [\"echo\", \"$nope\"]\nCOPY $PATH /\n",
                &with_env);
    EXPECT_NONE("ARG G=1\nFROM scratch\nARG G\nARG TARGETOS\nCOPY $G $TARGETOS .\n", NULL);
    EXPECT_NONE("FROM alpine\nARG foo\nCOPY $foo .\n", &bargs);
    /* an unknown image Env (no callback) reports nothing rather than guess */
    EXPECT_NONE("FROM alpine\nCOPY $foo .\nFROM alpine AS x\nFROM x\nCOPY $bar .\n", NULL);
    /* a global ARG is not visible in a stage unless declared there */
    EXPECT("ARG G=1\nFROM scratch\nCOPY $G .\n", NULL,
           "Dockerfile:3: UndefinedVar: Usage of undefined variable '$G'");
}

static void
test_checks_multiple__instructions(void **state)
{
    (void)state;
    EXPECT("FROM scratch\nENTRYPOINT [\"/a\"]\nENTRYPOINT [\"/b\"]\nCMD [\"/a\"]\nCMD [\"/b\"]\n"
           "HEALTHCHECK CMD [\"/a\"]\nHEALTHCHECK NONE\n",
           NULL,
           "Dockerfile:2: MultipleInstructionsDisallowed: Multiple ENTRYPOINT instructions should "
           "not be used in the same stage because only the last one will be used",
           "Dockerfile:4: MultipleInstructionsDisallowed: Multiple CMD instructions should not be "
           "used in the same stage because only the last one will be used",
           "Dockerfile:6: MultipleInstructionsDisallowed: Multiple HEALTHCHECK instructions "
           "should not be used in the same stage because only the last one will be used");
    EXPECT_NONE("FROM scratch AS a\nENTRYPOINT [\"/a\"]\nCMD [\"/a\"]\nFROM a AS b\n"
                "ENTRYPOINT [\"/b\"]\nCMD [\"/b\"]\n",
                NULL);
}

static void
test_checks_legacy__key_value(void **state)
{
    (void)state;
    EXPECT("FROM scratch\nENV testkey value\nLABEL key value\n", NULL,
           "Dockerfile:2: LegacyKeyValueFormat: \"ENV key=value\" should be used instead of "
           "legacy \"ENV key value\" format",
           "Dockerfile:3: LegacyKeyValueFormat: \"LABEL key=value\" should be used instead of "
           "legacy \"LABEL key value\" format");
    EXPECT_NONE("FROM scratch\nENV testkey=value other=\"a b\"\nLABEL key=value\n", NULL);
}

static void
test_checks_invalid_default__arg_in_from(void **state)
{
    static const char *const version[] = {"VERSION=latest", "IMAGE=busybox:latest", NULL};
    const kiln_df_lint_opts bargs = {.build_args = version};

    (void)state;
    EXPECT("ARG VERSION\nFROM busybox:$VERSION\n", &bargs,
           "Dockerfile:2: InvalidDefaultArgInFrom: Default value for ARG busybox:$VERSION "
           "results in empty or invalid base image name");
    EXPECT("ARG IMAGE\nFROM $IMAGE\n", &bargs,
           "Dockerfile:2: InvalidDefaultArgInFrom: Default value for ARG $IMAGE results in empty "
           "or invalid base image name");
    EXPECT_NONE("ARG VERSION=\"latest\"\nFROM busybox:${VERSION}\n", &bargs);
    EXPECT_NONE("ARG V=\"\"\nFROM busybox:stable${V}\nFROM scratch AS s\nFROM s\n", NULL);
}

static void
test_checks_platform__const_and_redundant(void **state)
{
    (void)state;
    EXPECT("FROM --platform=linux/amd64 scratch\n", NULL,
           "Dockerfile:1: FromPlatformFlagConstDisallowed: FROM --platform flag should not use "
           "constant value \"linux/amd64\"");
    EXPECT_NONE("FROM --platform=linux/amd64 scratch AS my_amd64_stage\n", NULL);
    EXPECT_NONE("FROM --platform=linux/arm64 scratch AS linux\n", NULL);
    EXPECT("FROM --platform=$TARGETPLATFORM scratch\n", NULL,
           "Dockerfile:1: RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM "
           "in FROM is redundant as this is the default behavior");
    EXPECT("FROM --platform=${TARGETPLATFORM} scratch\n", NULL,
           "Dockerfile:1: RedundantTargetPlatform: Setting platform to predefined "
           "${TARGETPLATFORM} in FROM is redundant as this is the default behavior");
    EXPECT_NONE("FROM --platform=$BUILDPLATFORM scratch\n", NULL);
    EXPECT_NONE("FROM --platform=${TARGETOS}/${TARGETARCH} scratch\n", NULL);
}

static void
test_checks_secrets__arg_env(void **state)
{
    (void)state;
    EXPECT("FROM scratch\nARG SECRET_PASSPHRASE\nENV SUPER_Secret=foo\n"
           "ENV password=bar secret=baz\nARG super_duper_secret_token=foo auth=bar\n"
           "ENV apikey=bar sunflower=foo\nENV git_key=\nENV PUBLIC_KEY=\nARG public_token\n"
           "ARG SECRET_PASSPHRASE_FILE\nENV password_file=bar secret_File=baz\n"
           "ARG AUTH_MODULE_VERSION\n# check=skip=SecretsUsedInArgOrEnv // allowed here\n"
           "ENV password=bar\n# check=skip=all // local to this instruction\n"
           "ARG alternate_password\nENV authors=x\n",
           NULL,
           "Dockerfile:2: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive "
           "data (ARG \"SECRET_PASSPHRASE\")",
           "Dockerfile:3: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive "
           "data (ENV \"SUPER_Secret\")",
           "Dockerfile:4: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive "
           "data (ENV \"password\")",
           "Dockerfile:4: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive "
           "data (ENV \"secret\")",
           "Dockerfile:5: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive "
           "data (ARG \"super_duper_secret_token\")",
           "Dockerfile:5: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive "
           "data (ARG \"auth\")",
           "Dockerfile:6: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive "
           "data (ENV \"apikey\")",
           "Dockerfile:7: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive "
           "data (ENV \"git_key\")");
}

static void
test_checks_directive__skip(void **state)
{
    (void)state;
    EXPECT_NONE("#check=skip=all\nFROM scratch as base\ncopy Dockerfile .\n", NULL);
    EXPECT_NONE("#check=skip=ConsistentInstructionCasing,FromAsCasing\nFROM scratch as base\n"
                "copy Dockerfile .\n",
                NULL);
    EXPECT("#check=skip=ConsistentInstructionCasing\nFROM scratch as base\ncopy Dockerfile .\n",
           NULL, "Dockerfile:2: FromAsCasing: 'as' and 'FROM' keywords' casing do not match");
    /* a comment right above an instruction skips rules for that instruction only */
    EXPECT("FROM scratch\n# check=skip=JSONArgsRecommended\nCMD a\nENTRYPOINT b\n"
           "# check=skip=MaintainerDeprecated\nMAINTAINER me\n# check=skip=all\nWORKDIR rel\n",
           NULL,
           "Dockerfile:4: JSONArgsRecommended: JSON arguments recommended for ENTRYPOINT to "
           "prevent unintended behavior related to OS signals");
    /* ... but not the whole-file rules */
    EXPECT("FROM scratch\n# check=skip=all\ncopy a b\n", NULL,
           "Dockerfile:3: ConsistentInstructionCasing: Command 'copy' should match the case of "
           "the command majority (uppercase)");
}

static void
test_checks_directive__error(void **state)
{
    kiln_error *err = NULL;
    kiln_vec got;

    (void)state;
    assert_int_equal(lint(&got, "#check=skip=all;error=true\nFROM scratch as base\n", NULL, &err),
                     0);
    assert_int_equal(got.len, 0);
    kiln_strvec_dispose(&got);

    assert_int_equal(lint(&got,
                          "# check=error=true\nFROM scratch AS Base\nMAINTAINER me\n"
                          "FROM scratch as x\n",
                          NULL, &err),
                     KILN_EINVAL);
    assert_string_equal(err->msg,
                        "Dockerfile:2: StageNameCasing: Stage name 'Base' should be lowercase");
    assert_int_equal(got.len, 3);
    assert_string_equal(got.items[2], "Dockerfile:4: FromAsCasing: 'as' and 'FROM' keywords' "
                                      "casing do not match");
    kiln_error_free(&err);
    kiln_strvec_dispose(&got);

    /* a malformed directive */
    assert_int_equal(lint(&got, "# check=skip\nFROM scratch\n", NULL, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "Dockerfile:1: failed to parse check options"));
    assert_int_equal(got.len, 0);
    kiln_error_free(&err);
    kiln_strvec_dispose(&got);
}

static void
test_checks_mode__override(void **state)
{
    const kiln_df_lint_opts skip = {.mode = KILN_DF_CHECK_SKIP};
    const kiln_df_lint_opts error = {.mode = KILN_DF_CHECK_ERROR, .filename = "build/Dockerfile"};
    kiln_error *err = NULL;
    kiln_vec got;

    (void)state;
    /* skip: nothing at all, not even a malformed directive is looked at */
    assert_int_equal(lint(&got, "# check=bogus\nFROM scratch AS Bad\n", &skip, &err), 0);
    assert_int_equal(got.len, 0);
    kiln_vec_dispose(&got, NULL);

    assert_int_equal(lint(&got, "FROM scratch\nCMD x\n", &error, &err), KILN_EINVAL);
    assert_string_equal(err->msg, "build/Dockerfile:2: JSONArgsRecommended: JSON arguments "
                                  "recommended for CMD to prevent unintended behavior related to "
                                  "OS signals");
    assert_int_equal(got.len, 1);
    kiln_error_free(&err);
    kiln_strvec_dispose(&got);

    /* error mode still honours the file's skips; no finding, no error */
    assert_int_equal(
            lint(&got, "# check=skip=JSONArgsRecommended\nFROM scratch\nCMD x\n", &error, &err), 0);
    assert_int_equal(got.len, 0);
    kiln_vec_dispose(&got, NULL);
}

static void
test_checks_mode__build_arg_override(void **state)
{
    static const char *const strict[] = {
            "BUILDKIT_DOCKERFILE_CHECK=skip=ConsistentInstructionCasing;error=true", NULL};
    static const char *const off[] = {"BUILDKIT_DOCKERFILE_CHECK=skip=all", NULL};
    static const char *const bad[] = {"BUILDKIT_DOCKERFILE_CHECK=nope=1", NULL};
    const kiln_df_lint_opts o_strict = {.build_args = strict}, o_off = {.build_args = off},
                            o_bad = {.build_args = bad};
    kiln_error *err = NULL;
    kiln_vec got;

    (void)state;
    /* the build arg replaces the file's directive */
    assert_int_equal(lint(&got, "#check=skip=all\nFROM scratch as base\ncopy Dockerfile .\n",
                          &o_strict, &err),
                     KILN_EINVAL);
    assert_string_equal(
            err->msg, "Dockerfile:2: FromAsCasing: 'as' and 'FROM' keywords' casing do not match");
    assert_int_equal(got.len, 1);
    kiln_error_free(&err);
    kiln_strvec_dispose(&got);
    EXPECT_NONE("#check=error=true\nFROM scratch as base\ncopy Dockerfile .\n", &o_off);
    assert_int_equal(lint(&got, "FROM scratch\n", &o_bad, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "BUILDKIT_DOCKERFILE_CHECK"));
    kiln_error_free(&err);
    kiln_vec_dispose(&got, NULL);
}

static void
test_checks_order__by_line(void **state)
{
    (void)state;
    /* emitted in BuildKit's pass order (parser warnings first), returned by line */
    EXPECT("FROM scratch AS Bad\nMAINTAINER me\nRUN a \\\n\n b\nCMD x\nLABEL k v\n", NULL,
           "Dockerfile:1: StageNameCasing: Stage name 'Bad' should be lowercase",
           "Dockerfile:2: MaintainerDeprecated: Maintainer instruction is deprecated in favor of "
           "using label",
           "Dockerfile:5: NoEmptyContinuation: Empty continuation line",
           "Dockerfile:6: JSONArgsRecommended: JSON arguments recommended for CMD to prevent "
           "unintended behavior related to OS signals",
           "Dockerfile:7: LegacyKeyValueFormat: \"LABEL key=value\" should be used instead of "
           "legacy \"LABEL key value\" format");
}

static void
test_checks_robust__bad_instructions(void **state)
{
    (void)state;
    /* unknown instructions and a FROM that does not parse are skipped, not fatal */
    EXPECT("BADCMD x\nFROM a b\nCMD y\nFROM scratch AS Ok\n", NULL,
           "Dockerfile:3: JSONArgsRecommended: JSON arguments recommended for CMD to prevent "
           "unintended behavior related to OS signals",
           "Dockerfile:4: StageNameCasing: Stage name 'Ok' should be lowercase");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_checks_rules__list),
            cmocka_unit_test(test_checks_stage_name__casing),
            cmocka_unit_test(test_checks_from_as__casing),
            cmocka_unit_test(test_checks_empty_continuation__warns),
            cmocka_unit_test(test_checks_casing__majority),
            cmocka_unit_test(test_checks_stage_name__duplicate_reserved),
            cmocka_unit_test(test_checks_json_args__cmd_entrypoint),
            cmocka_unit_test(test_checks_maintainer__deprecated),
            cmocka_unit_test(test_checks_undefined_arg__in_from),
            cmocka_unit_test(test_checks_workdir__relative),
            cmocka_unit_test(test_checks_undefined_var__stage),
            cmocka_unit_test(test_checks_undefined_var__defined),
            cmocka_unit_test(test_checks_multiple__instructions),
            cmocka_unit_test(test_checks_legacy__key_value),
            cmocka_unit_test(test_checks_invalid_default__arg_in_from),
            cmocka_unit_test(test_checks_platform__const_and_redundant),
            cmocka_unit_test(test_checks_secrets__arg_env),
            cmocka_unit_test(test_checks_directive__skip),
            cmocka_unit_test(test_checks_directive__error),
            cmocka_unit_test(test_checks_mode__override),
            cmocka_unit_test(test_checks_mode__build_arg_override),
            cmocka_unit_test(test_checks_order__by_line),
            cmocka_unit_test(test_checks_robust__bad_instructions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
