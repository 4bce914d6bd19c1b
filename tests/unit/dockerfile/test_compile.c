/*
 * test_compile.c: unit tests of the Dockerfile compiler (frontends/dockerfile/compile*.c). Each
 * test compiles a small Dockerfile against a fake image resolver whose configs are written here,
 * loads the resulting LLB Definition back with kiln_llb_load and checks the ops, and parses the
 * image config JSON and checks its fields and history.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/json.h"
#include "frontends/dockerfile/dockerfile.h"
#include "llb/llb.h"
#include "test_compile_helpers.h"

/* ------------------------------------------------------------------------------------------ */
/* single stage */

static void
test_compile__single_stage(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "ENV A=1 B=\"two words\"\n"
                  "RUN echo $A\n"
                  "WORKDIR /app\n"
                  "USER nobody:nogroup\n"
                  "CMD [\"sh\"]\n",
                  NULL);
    /* ops: image, exec, mkdir file op */
    const kiln_llb_node *img =
            tc_find(&r, "[1/3] FROM docker.io/library/busybox:latest@" TC_BB_DIGEST);
    assert_non_null(img);
    assert_string_equal(img->op->source->identifier,
                        "docker-image://docker.io/library/busybox:latest@" TC_BB_DIGEST);
    const kiln_llb_node *run = tc_find(&r, "[2/3] RUN echo 1");
    assert_non_null(run);
    assert_string_equal(kiln_llb_op_kind(run->op), "exec");
    Pb__Meta *m = run->op->exec->meta;
    assert_int_equal(m->n_args, 3);
    assert_string_equal(m->args[0], "/bin/sh");
    assert_string_equal(m->args[1], "-c");
    assert_string_equal(m->args[2], "echo $A");
    assert_string_equal(tc_env(m, "A"), "1");
    assert_string_equal(tc_env(m, "B"), "two words");
    assert_string_equal(tc_env(m, "PATH"), "/usr/bin:/bin");
    assert_string_equal(m->cwd, "/home");
    assert_string_equal(run->inputs[0]->digest, img->digest);
    assert_true(tc_has_location(run, 3, 3));
    assert_string_equal(tc_desc(run, "com.docker.dockerfile.v1.command"), "RUN echo $A");
    const kiln_llb_node *wd = tc_find(&r, "[3/3] WORKDIR /app");
    assert_non_null(wd);
    Pb__FileAction *a = wd->op->file->actions[0];
    assert_int_equal(a->action_case, PB__FILE_ACTION__ACTION_MKDIR);
    assert_string_equal(a->mkdir->path, "/app");
    assert_int_equal(a->mkdir->mode, 0755);
    assert_true(a->mkdir->makeparents);
    /* no USER yet: the directory is not chowned */
    assert_null(a->mkdir->owner);
    assert_ptr_equal(kiln_llb_graph_terminal(r.graph)->inputs[0], wd);

    /* config */
    json_t *cfg = json_object_get(r.config, "config");
    assert_string_equal(tc_strv(json_object_get(cfg, "Env")),
                        "PATH=/usr/bin:/bin,BB=1,A=1,B=two words");
    assert_string_equal(tc_strv(json_object_get(cfg, "Cmd")), "sh");
    assert_string_equal(json_string_value(json_object_get(cfg, "WorkingDir")), "/app");
    assert_string_equal(json_string_value(json_object_get(cfg, "User")), "nobody:nogroup");
    assert_string_equal(json_string_value(json_object_get(r.config, "architecture")), "amd64");
    assert_string_equal(json_string_value(json_object_get(r.config, "os")), "linux");
    assert_true(json_is_null(json_object_get(cfg, "OnBuild")));
    assert_int_equal(
            json_array_size(json_object_get(json_object_get(r.config, "rootfs"), "diff_ids")), 0);
    /* history: base (2) + ENV RUN WORKDIR USER CMD */
    assert_int_equal(tc_history_len(&r), 7);
    tc_assert_history(&r, 2, "ENV A=1 B=two words", true);
    tc_assert_history(&r, 3, "RUN /bin/sh -c echo $A # buildkit", false);
    tc_assert_history(&r, 4, "WORKDIR /app", false);
    tc_assert_history(&r, 5, "USER nobody:nogroup", true);
    tc_assert_history(&r, 6, "CMD [\"sh\"]", true);
    assert_string_equal(tc_history_field(&r, 0, "created_by"),
                        "/bin/sh -c #(nop) ADD file:abc in /");
    assert_string_equal(tc_history_field(&r, 3, "comment"), "buildkit.dockerfile.v0");
    tc_result_dispose(&r);
}

/* ------------------------------------------------------------------------------------------ */
/* stages */

static const char multi_df[] = "FROM busybox AS build\n"
                               "RUN make > /out\n"
                               "FROM alpine AS unused\n"
                               "RUN never\n"
                               "FROM scratch\n"
                               "COPY --from=build /out /bin/out\n";

static void
test_compile__multi_stage(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r, multi_df, NULL);
    /* the unused stage's image is never resolved */
    assert_int_equal(tc_res.calls, 1);
    assert_string_equal(tc_res.refs[0], "docker.io/library/busybox:latest");
    assert_string_equal(tc_res.platforms[0], "linux/amd64");
    assert_null(tc_find(&r, "[unused 2/2] RUN never"));
    assert_int_equal(tc_count(&r, "exec"), 1);
    const kiln_llb_node *run = tc_find(&r, "[build 2/2] RUN make > /out");
    assert_non_null(run);
    assert_non_null(tc_find(&r, "[build 1/2] FROM docker.io/library/busybox:latest@" TC_BB_DIGEST));
    const kiln_llb_node *cp = tc_find(&r, "[stage-2 1/1] COPY --from=build /out /bin/out");
    assert_non_null(cp);
    /* scratch base: the only input is the build stage */
    assert_int_equal(cp->n_inputs, 1);
    assert_ptr_equal(cp->inputs[0], run);
    Pb__FileAction *a = cp->op->file->actions[0];
    assert_int_equal(a->action_case, PB__FILE_ACTION__ACTION_COPY);
    assert_int_equal(a->input, -1);
    assert_int_equal(a->secondaryinput, 0);
    assert_string_equal(a->copy->src, "/out");
    assert_string_equal(a->copy->dest, "/bin/out");
    assert_true(a->copy->followsymlink && a->copy->dircopycontents && a->copy->createdestpath);
    assert_true(a->copy->allowwildcard && a->copy->allowemptywildcard);
    assert_false(a->copy->attemptunpackdockercompatibility);
    /* scratch config */
    assert_string_equal(tc_strv(tc_cfg(&r, "Env")),
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    assert_string_equal(json_string_value(tc_cfg(&r, "WorkingDir")), "/");
    assert_null(tc_cfg(&r, "Cmd"));
    assert_int_equal(tc_history_len(&r), 1);
    tc_assert_history(&r, 0, "COPY /out /bin/out # buildkit", false);
    assert_string_equal(r.out.target, "2");
    tc_result_dispose(&r);

    /* --target: only the build stage, with busybox's config */
    tc_compile_ok(&r, multi_df, "build");
    assert_string_equal(r.out.target, "build");
    assert_ptr_equal(kiln_llb_graph_terminal(r.graph)->inputs[0],
                     tc_find(&r, "[build 2/2] RUN make > /out"));
    assert_int_equal(tc_count(&r, "file"), 0);
    assert_string_equal(tc_strv(tc_cfg(&r, "Cmd")), "sh");
    tc_assert_history(&r, 2, "RUN /bin/sh -c make > /out # buildkit", false);
    tc_result_dispose(&r);

    /* --target is case-insensitive; the other image is the one resolved */
    tc_compile_ok(&r, multi_df, "UNUSED");
    assert_int_equal(tc_res.calls, 1);
    assert_string_equal(tc_res.refs[0], "docker.io/library/alpine:latest");
    tc_result_dispose(&r);
}

static void
test_compile__stage_refs(void **state)
{
    tc_result r;

    (void)state;
    /* by index, FROM <stage>, and an image in --from */
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "RUN echo a > /a\n"
                  "FROM 0 AS second\n"
                  "FROM busybox AS child\n"
                  "COPY --from=0 /a /a\n"
                  "COPY --from=alpine /etc/os-release /os\n"
                  "FROM child\n"
                  "RUN cat /a\n",
                  NULL);
    const kiln_llb_node *a = tc_find(&r, "[stage-0 2/2] RUN echo a > /a");
    assert_non_null(a);
    const kiln_llb_node *c1 = tc_find(&r, "[child 2/3] COPY --from=0 /a /a");
    assert_non_null(c1);
    const kiln_llb_node *al = tc_find(&r, "FROM docker.io/library/alpine:latest@" TC_AL_DIGEST);
    assert_non_null(al);
    const kiln_llb_node *c2 = tc_find(&r, "[child 3/3] COPY --from=alpine /etc/os-release /os");
    assert_non_null(c2);
    assert_int_equal(c2->n_inputs, 2);
    assert_ptr_equal(c2->inputs[0], c1);
    /* as in BuildKit, an image named by --from runs its ONBUILD triggers (alpine has some) */
    assert_string_equal(tc_desc(c2->inputs[1], KILN_LLB_CUSTOM_NAME), "RUN echo triggered");
    assert_ptr_equal(c2->inputs[1]->inputs[0], al);
    /* the last stage continues `child` (no FROM vertex of its own: 1 step) */
    const kiln_llb_node *last = tc_find(&r, "[stage-3 1/1] RUN cat /a");
    assert_non_null(last);
    assert_ptr_equal(last->inputs[0], c2);
    /* busybox resolved once although two stages use it */
    assert_int_equal(tc_res.calls, 2);
    tc_result_dispose(&r);
}

static void
test_compile__errors(void **state)
{
    kiln_df_compile_opts o;
    kiln_error *err;
    char *m;

    (void)state;
    o = tc_opts("FROM busybox\nFORM x\n");
    err = tc_compile_err(&o, KILN_EPARSE);
    assert_string_equal(err->msg, "unknown instruction: FORM (did you mean FROM?)");
    m = kiln_error_format(err);
    assert_string_equal(m, "Dockerfile:2: unknown instruction: FORM (did you mean FROM?)");
    free(m);
    kiln_error_free(&err);

    o = tc_opts("FROM busybox\nRUN true\nCOPY --fromm=x a b\n");
    err = tc_compile_err(&o, KILN_EPARSE);
    assert_string_equal(err->msg, "unknown flag: fromm (did you mean from?)");
    assert_int_equal(err->line, 3);
    kiln_error_free(&err);

    /* errors in stages that are not built still fail the build, as in BuildKit */
    o = tc_opts("FROM busybox AS a\nRUN --network=bogus x\nFROM busybox\n");
    err = tc_compile_err(&o, KILN_EPARSE);
    assert_string_equal(err->msg, "invalid network mode \"bogus\"");
    assert_int_equal(err->line, 2);
    kiln_error_free(&err);

    o = tc_opts(multi_df);
    o.target = "nope";
    err = tc_compile_err(&o, KILN_ENOTFOUND);
    assert_string_equal(err->msg, "target stage \"nope\" could not be found");
    kiln_error_free(&err);

    /* an undefined --from is an image; resolving it fails at its line */
    o = tc_opts("FROM busybox\n\nCOPY --from=nostage /a /b\n");
    err = tc_compile_err(&o, KILN_ENOTFOUND);
    assert_non_null(strstr(err->msg, "nostage"));
    assert_int_equal(err->line, 3);
    kiln_error_free(&err);

    o = tc_opts("FROM busybox\nWORKDIR ${NOPE:?must be set}\n");
    err = tc_compile_err(&o, KILN_EINVAL);
    assert_non_null(strstr(err->msg, "must be set"));
    assert_int_equal(err->line, 2);
    kiln_error_free(&err);

    o = tc_opts("RUN x\nFROM busybox\n");
    err = tc_compile_err(&o, KILN_EPARSE);
    assert_string_equal(err->msg, "no build stage in current context");
    assert_int_equal(err->line, 1);
    kiln_error_free(&err);

    o = tc_opts("FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n");
    err = tc_compile_err(&o, KILN_EINVAL);
    assert_non_null(strstr(err->msg, "circular dependency detected on stage"));
    kiln_error_free(&err);

    o = tc_opts("FROM busybox\nCOPY --from=5 /x /x\n");
    err = tc_compile_err(&o, KILN_EINVAL);
    assert_string_equal(err->msg, "invalid stage index 5");
    kiln_error_free(&err);

    o = tc_opts("FROM busybox\nSTOPSIGNAL NOTASIG\n");
    err = tc_compile_err(&o, KILN_EINVAL);
    assert_string_equal(err->msg, "Invalid signal: NOTASIG");
    kiln_error_free(&err);

    o = tc_opts("FROM busybox\nSHELL /bin/bash -c\n");
    err = tc_compile_err(&o, KILN_EPARSE);
    assert_string_equal(err->msg, "SHELL requires the arguments to be in JSON form");
    kiln_error_free(&err);

    o = tc_opts("FROM busybox\nEXPOSE 80/foo\n");
    err = tc_compile_err(&o, KILN_EINVAL);
    assert_string_equal(err->msg, "invalid proto: foo");
    kiln_error_free(&err);

    o = tc_opts("FROM busybox\nHEALTHCHECK --interval=1ns CMD true\n");
    err = tc_compile_err(&o, KILN_EPARSE);
    assert_string_equal(err->msg, "Interval \"interval\" cannot be less than 1ms");
    kiln_error_free(&err);

    o = tc_opts("FROM ${EMPTY}\n");
    err = tc_compile_err(&o, KILN_EINVAL);
    assert_string_equal(err->msg, "base name (${EMPTY}) should not be blank");
    kiln_error_free(&err);

    /* hostile growth of the environment is refused, not allocated */
    kiln_buf big = KILN_BUF_INIT;
    kiln_buf_puts(&big, "FROM busybox\nENV A=0123456789abcdef0123456789abcdef\n", NULL);
    for (int i = 0; i < 40; i++)
        kiln_buf_puts(&big, "ENV A=$A$A\n", NULL);
    o = tc_opts(kiln_buf_cstr(&big));
    err = tc_compile_err(&o, KILN_EINVAL);
    kiln_buf_dispose(&big);
    assert_true(strstr(err->msg, "too large") != NULL);
    assert_true(err->line > 3 && err->line < 42);
    kiln_error_free(&err);

    o = tc_opts("FROM busybox\nCOPY http://example.com/x /x\n");
    err = tc_compile_err(&o, KILN_EINVAL);
    assert_string_equal(err->msg, "source can't be a URL for COPY");
    kiln_error_free(&err);
}

/* ------------------------------------------------------------------------------------------ */
/* config */

static void
test_compile__base_config(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r, "FROM alpine\nRUN id\n", NULL);
    /* the base image's SHELL, WORKDIR, USER; its ONBUILD triggers ran first */
    const kiln_llb_node *trig = tc_find(&r, "[2/2] RUN echo triggered");
    assert_non_null(trig);
    assert_string_equal(trig->op->exec->meta->args[0], "/bin/bash");
    const kiln_llb_node *run = tc_find(&r, "[3/2] RUN id");
    assert_non_null(run);
    assert_ptr_equal(run->inputs[0], trig);
    Pb__Meta *m = run->op->exec->meta;
    assert_string_equal(m->args[0], "/bin/bash");
    assert_string_equal(m->args[2], "id");
    assert_string_equal(m->cwd, "/w");
    assert_string_equal(m->user, "app");
    assert_string_equal(tc_env(m, "FOO"), "base");
    assert_string_equal(tc_env(m, "TRIG"), "1");
    /* config inherited, triggers consumed */
    assert_string_equal(json_string_value(tc_cfg(&r, "User")), "app");
    assert_string_equal(tc_keys(tc_cfg(&r, "ExposedPorts")), "22/tcp");
    assert_string_equal(tc_keys(tc_cfg(&r, "Volumes")), "/data");
    assert_string_equal(tc_strv(tc_cfg(&r, "Entrypoint")), "/entry");
    assert_string_equal(tc_strv(tc_cfg(&r, "Cmd")), "run");
    assert_string_equal(json_string_value(json_object_get(tc_cfg(&r, "Labels"), "base")), "yes");
    assert_string_equal(json_string_value(tc_cfg(&r, "StopSignal")), "SIGQUIT");
    assert_string_equal(tc_strv(json_object_get(tc_cfg(&r, "Healthcheck"), "Test")), "CMD,true");
    assert_int_equal(json_integer_value(json_object_get(tc_cfg(&r, "Healthcheck"), "Interval")),
                     1000000000);
    assert_string_equal(tc_strv(tc_cfg(&r, "Shell")), "/bin/bash,-c");
    assert_true(json_is_null(tc_cfg(&r, "OnBuild")));
    assert_string_equal(tc_strv(tc_cfg(&r, "Env")), "PATH=/p,FOO=base,TRIG=1");
    assert_int_equal(tc_history_len(&r), 4);
    tc_assert_history(&r, 1, "RUN /bin/bash -c echo triggered # buildkit", false);
    tc_assert_history(&r, 2, "ENV TRIG=1", true);
    tc_assert_history(&r, 3, "RUN /bin/bash -c id # buildkit", false);
    tc_result_dispose(&r);

    /* an image without layers is scratch: no source vertex, its config is kept */
    tc_compile_ok(&r, "FROM empty\nRUN x\n", NULL);
    /* BuildKit counts the FROM step although it makes no vertex */
    assert_int_equal(tc_count(&r, "source"), 0);
    assert_string_equal(tc_strv(tc_cfg(&r, "Env")),
                        "E=1,PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    const kiln_llb_node *x = tc_find(&r, "[1/2] RUN x");
    assert_non_null(x);
    assert_int_equal(x->op->exec->mounts[0]->input, -1);
    tc_result_dispose(&r);
}

static void
test_compile__config_instructions(void **state)
{
    tc_result r;
    kiln_df_compile_opts o;
    const char *const labels[] = {"cli=1", "k=override", NULL};

    (void)state;
    o = tc_opts("FROM busybox\n"
                "MAINTAINER me <me@example.com>\n"
                "LABEL k=v \"spaced key\"=\"a b\"\n"
                "ENV P=53\n"
                "EXPOSE 80 $P/udp 8000-8002\n"
                "VOLUME [\"/a\", \"/b\"]\n"
                "VOLUME /c\n"
                "STOPSIGNAL SIGKILL\n"
                "HEALTHCHECK --interval=5s --timeout=1m30s --retries=3 CMD curl -f x\n"
                "SHELL [\"/bin/bash\", \"-xc\"]\n"
                "CMD echo hi\n"
                "ENTRYPOINT [\"/e\"]\n"
                "ONBUILD RUN echo later\n");
    o.labels = labels;
    tc_compile_opts_ok(&r, &o);
    assert_string_equal(json_string_value(json_object_get(r.config, "author")),
                        "me <me@example.com>");
    json_t *l = tc_cfg(&r, "Labels");
    assert_string_equal(json_string_value(json_object_get(l, "k")), "override");
    assert_string_equal(json_string_value(json_object_get(l, "spaced key")), "a b");
    assert_string_equal(json_string_value(json_object_get(l, "cli")), "1");
    assert_string_equal(tc_keys(tc_cfg(&r, "ExposedPorts")),
                        "53/udp,80/tcp,8000/tcp,8001/tcp,8002/tcp");
    assert_string_equal(tc_keys(tc_cfg(&r, "Volumes")), "/a,/b,/c");
    assert_string_equal(json_string_value(tc_cfg(&r, "StopSignal")), "SIGKILL");
    json_t *h = tc_cfg(&r, "Healthcheck");
    assert_string_equal(tc_strv(json_object_get(h, "Test")), "CMD-SHELL,curl -f x");
    assert_int_equal(json_integer_value(json_object_get(h, "Interval")), 5000000000LL);
    assert_int_equal(json_integer_value(json_object_get(h, "Timeout")), 90000000000LL);
    assert_int_equal(json_integer_value(json_object_get(h, "Retries")), 3);
    assert_string_equal(tc_strv(tc_cfg(&r, "Shell")), "/bin/bash,-xc");
    /* CMD uses the SHELL; ENTRYPOINT after CMD in the same stage keeps it */
    assert_string_equal(tc_strv(tc_cfg(&r, "Cmd")), "/bin/bash,-xc,echo hi");
    assert_string_equal(tc_strv(tc_cfg(&r, "Entrypoint")), "/e");
    assert_true(json_is_true(tc_cfg(&r, "ArgsEscaped")));
    assert_string_equal(tc_strv(tc_cfg(&r, "OnBuild")), "RUN echo later");
    assert_string_equal(json_string_value(json_object_get(r.config, "created")),
                        "2023-11-14T22:13:20Z");
    size_t b = 2;
    tc_assert_history(&r, b++, "MAINTAINER me <me@example.com>", true);
    tc_assert_history(&r, b++, "LABEL k=v spaced key=a b", true);
    tc_assert_history(&r, b++, "ENV P=53", true);
    tc_assert_history(&r, b++,
                      "EXPOSE map[53/udp:{} 80/tcp:{} 8000/tcp:{} 8001/tcp:{} 8002/tcp:{}]", true);
    tc_assert_history(&r, b++, "VOLUME [/a /b]", true);
    tc_assert_history(&r, b++, "VOLUME [/c]", true);
    tc_assert_history(&r, b++, "STOPSIGNAL SIGKILL", true);
    tc_assert_history(
            &r, b++, "HEALTHCHECK &{[\"CMD-SHELL\" \"curl -f x\"] \"5s\" \"1m30s\" \"0s\" '\\x03'}",
            true);
    tc_assert_history(&r, b++, "SHELL [/bin/bash -xc]", true);
    tc_assert_history(&r, b++, "CMD [\"/bin/bash\" \"-xc\" \"echo hi\"]", true);
    tc_assert_history(&r, b++, "ENTRYPOINT [\"/e\"]", true);
    /* ONBUILD records no history */
    assert_int_equal(tc_history_len(&r), b);
    assert_string_equal(tc_history_field(&r, b - 1, "created"), "2023-11-14T22:13:20Z");
    tc_result_dispose(&r);

    /* ENTRYPOINT alone resets the base image's CMD; HEALTHCHECK NONE */
    tc_compile_ok(&r, "FROM busybox\nENTRYPOINT echo hi\nHEALTHCHECK NONE\n", NULL);
    assert_null(tc_cfg(&r, "Cmd"));
    assert_string_equal(tc_strv(tc_cfg(&r, "Entrypoint")), "/bin/sh,-c,echo hi");
    assert_string_equal(tc_strv(json_object_get(tc_cfg(&r, "Healthcheck"), "Test")), "NONE");
    tc_assert_history(&r, 2, "ENTRYPOINT [\"/bin/sh\" \"-c\" \"echo hi\"]", true);
    tc_result_dispose(&r);

    /* target platform in the config and the resolve call */
    o = tc_opts("FROM busybox\nARG TARGETARCH\nARG TARGETVARIANT\nRUN x\n");
    o.platform = "linux/arm64";
    tc_compile_opts_ok(&r, &o);
    assert_string_equal(tc_res.platforms[0], "linux/arm64/v8");
    assert_string_equal(json_string_value(json_object_get(r.config, "architecture")), "arm64");
    assert_string_equal(json_string_value(json_object_get(r.config, "variant")), "v8");
    const kiln_llb_node *x = tc_find(&r, "[2/2] RUN x");
    assert_non_null(x);
    assert_string_equal(tc_env(x->op->exec->meta, "TARGETARCH"), "arm64");
    assert_string_equal(tc_env(x->op->exec->meta, "TARGETVARIANT"), "v8");
    assert_string_equal(x->op->platform->architecture, "arm64");
    tc_result_dispose(&r);
}

static void
test_compile__workdir_user(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "WORKDIR a\n"
                  "ENV U=me D=c\n"
                  "USER $U:1000\n"
                  "WORKDIR b/$D\n"
                  "RUN pwd\n"
                  "WORKDIR /\n",
                  NULL);
    const kiln_llb_node *w1 = tc_find(&r, "[2/5] WORKDIR a");
    assert_non_null(w1);
    assert_string_equal(w1->op->file->actions[0]->mkdir->path, "/home/a");
    const kiln_llb_node *w2 = tc_find(&r, "[3/5] WORKDIR b/c");
    assert_non_null(w2);
    Pb__FileActionMkDir *mk = w2->op->file->actions[0]->mkdir;
    assert_string_equal(mk->path, "/home/a/b/c");
    assert_non_null(mk->owner);
    assert_int_equal(mk->owner->user->user_case, PB__USER_OPT__USER_BY_NAME);
    assert_string_equal(mk->owner->user->byname->name, "me");
    assert_int_equal(mk->owner->group->user_case, PB__USER_OPT__USER_BY_ID);
    assert_int_equal(mk->owner->group->byid, 1000);
    const kiln_llb_node *run = tc_find(&r, "[4/5] RUN pwd");
    assert_non_null(run);
    assert_string_equal(run->op->exec->meta->cwd, "/home/a/b/c");
    assert_string_equal(run->op->exec->meta->user, "me:1000");
    /* WORKDIR / makes no layer and no vertex, but still counts a step */
    assert_null(tc_find(&r, "[5/5] WORKDIR /"));
    assert_ptr_equal(kiln_llb_graph_terminal(r.graph)->inputs[0], run);
    assert_string_equal(json_string_value(tc_cfg(&r, "WorkingDir")), "/");
    tc_assert_history(&r, tc_history_len(&r) - 1, "WORKDIR /", true);
    tc_assert_history(&r, 2, "WORKDIR /home/a", false);
    tc_result_dispose(&r);
}

static void
test_compile__no_cache(void **state)
{
    tc_result r;
    kiln_df_compile_opts o;
    const char *const filter[] = {"build", NULL};

    (void)state;
    o = tc_opts(multi_df);
    o.no_cache = true;
    tc_compile_opts_ok(&r, &o);
    for (size_t i = 0; i + 1 < kiln_llb_graph_count(r.graph); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(r.graph, i);
        assert_non_null(n->metadata);
        assert_true(n->metadata->ignore_cache);
    }
    tc_result_dispose(&r);

    o = tc_opts(multi_df);
    o.no_cache_filter = filter;
    tc_compile_opts_ok(&r, &o);
    assert_true(tc_find(&r, "[build 2/2] RUN make > /out")->metadata->ignore_cache);
    assert_false(
            tc_find(&r, "[stage-2 1/1] COPY --from=build /out /bin/out")->metadata->ignore_cache);
    tc_result_dispose(&r);
}

static void
test_compile__named_contexts(void **state)
{
    tc_result r;
    kiln_df_compile_opts o;
    const kiln_df_named_context nc[] = {
            {"busybox", "docker-image://docker.io/library/alpine:latest"},
            {"extra", "local:extra"},
            {"layout", "oci-layout:///srv/layout:v1"},
    };

    (void)state;
    o = tc_opts("FROM busybox AS first\nCOPY --from=extra /x /x\nFROM layout AS l\nFROM "
                "first\nCOPY --from=l / "
                "/l\n");
    o.named_contexts = nc;
    o.n_named_contexts = 3;
    tc_compile_opts_ok(&r, &o);
    bool saw_local = false, saw_alpine = false, saw_layout = false;
    for (size_t i = 0; i < kiln_llb_graph_count(r.graph); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(r.graph, i);
        if (n->op->op_case != PB__OP__OP_SOURCE)
            continue;
        const char *id = n->op->source->identifier;
        saw_local = saw_local || strcmp(id, "local://extra") == 0;
        saw_alpine =
                saw_alpine || kiln_str_has_prefix(id, "docker-image://docker.io/library/alpine");
        saw_layout = saw_layout || strcmp(id, "oci-layout:///srv/layout@" TC_AL_DIGEST) == 0;
    }
    assert_true(saw_local);
    assert_true(saw_alpine);
    assert_true(saw_layout);
    /* the caller binds these local names */
    assert_int_equal(r.out.locals.len, 1);
    assert_string_equal(r.out.locals.items[0], "extra");
    /* the config comes from the named context's image (alpine) */
    assert_string_equal(json_string_value(tc_cfg(&r, "User")), "app");
    tc_result_dispose(&r);
}

static void
test_compile__checks(void **state)
{
    tc_result r;
    kiln_df_compile_opts o;
    kiln_error *err;

    (void)state;
    o = tc_opts("FROM busybox as build\nMAINTAINER me\nRUN echo $BB $NOPE\n");
    o.check = KILN_DF_CHECK_DEFAULT;
    tc_compile_opts_ok(&r, &o);
    assert_true(r.out.warnings.len >= 2);
    assert_true(kiln_str_has_prefix(r.out.warnings.items[0], "Dockerfile:1: FromAsCasing"));
    bool maint = false;
    for (size_t i = 0; i < r.out.warnings.len; i++)
        maint = maint ||
                kiln_str_has_prefix(r.out.warnings.items[i], "Dockerfile:2: MaintainerDeprecated");
    assert_true(maint);
    tc_result_dispose(&r);

    o.check = KILN_DF_CHECK_SKIP;
    tc_compile_opts_ok(&r, &o);
    assert_int_equal(r.out.warnings.len, 0);
    tc_result_dispose(&r);

    o.check = KILN_DF_CHECK_ERROR;
    err = tc_compile_err(&o, KILN_EINVAL);
    assert_non_null(strstr(err->msg, "FromAsCasing"));
    kiln_error_free(&err);
}

static void
test_compile__onbuild_stage(void **state)
{
    tc_result r;
    kiln_df_compile_opts o;

    (void)state;
    static const char df[] = "FROM busybox AS base\n"
                             "ONBUILD RUN echo child\n"
                             "ONBUILD ENV FROM_PARENT=1\n"
                             "FROM base\n"
                             "RUN x\n";
    tc_compile_ok(&r, df, NULL);
    const kiln_llb_node *t = tc_find(&r, "[stage-1 1/1] RUN echo child");
    assert_non_null(t);
    const kiln_llb_node *x = tc_find(&r, "[stage-1 2/1] RUN x");
    assert_non_null(x);
    assert_ptr_equal(x->inputs[0], t);
    assert_string_equal(tc_env(x->op->exec->meta, "FROM_PARENT"), "1");
    assert_true(json_is_null(tc_cfg(&r, "OnBuild")));
    tc_result_dispose(&r);

    tc_compile_ok(&r, df, "base");
    assert_string_equal(tc_strv(tc_cfg(&r, "OnBuild")), "RUN echo child,ENV FROM_PARENT=1");
    /* the definition of a stage that only changes metadata is its base image */
    assert_string_equal(kiln_llb_graph_terminal(r.graph)->inputs[0]->op->source->identifier,
                        "docker-image://docker.io/library/busybox:latest@" TC_BB_DIGEST);
    tc_result_dispose(&r);

    /* no SOURCE_DATE_EPOCH: no times (the exporter takes them from the layers, as BuildKit),
     * and not the base image's */
    o = tc_opts("FROM busybox\nENV A=1\n");
    o.source_date_epoch = -1;
    tc_compile_opts_ok(&r, &o);
    assert_null(json_object_get(r.config, "created"));
    assert_null(tc_history_field(&r, 2, "created"));
    assert_string_equal(tc_history_field(&r, 2, "created_by"), "ENV A=1");
    tc_result_dispose(&r);
}

static void
test_compile__sets_and_forms(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r,
                  "FROM alpine\n"
                  "EXPOSE 22 22/tcp 23\n"
                  "VOLUME /data /x /x\n"
                  "ENTRYPOINT []\n"
                  "CMD []\n"
                  "WORKDIR /app\n"
                  "COPY . .\n"
                  "COPY f ./sub/\n",
                  NULL);
    /* sets merge with the base image's and stay unique */
    assert_string_equal(tc_keys(tc_cfg(&r, "ExposedPorts")), "22/tcp,23/tcp");
    assert_string_equal(tc_keys(tc_cfg(&r, "Volumes")), "/data,/x");
    tc_assert_history(&r, 3, "EXPOSE map[22/tcp:{} 23/tcp:{}]", true);
    tc_assert_history(&r, 4, "VOLUME [/data /x /x]", true);
    /* empty exec forms clear the values */
    assert_null(tc_cfg(&r, "Entrypoint"));
    assert_null(tc_cfg(&r, "Cmd"));
    tc_assert_history(&r, 5, "ENTRYPOINT []", true);
    tc_assert_history(&r, 6, "CMD []", true);
    /* destinations relative to WORKDIR; "." means the directory itself */
    const kiln_llb_node *c1 = tc_find(&r, "[4/4] COPY . .");
    assert_non_null(c1);
    assert_string_equal(c1->op->file->actions[0]->copy->src, "/");
    assert_string_equal(c1->op->file->actions[0]->copy->dest, "/app/");
    tc_result_dispose(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_compile__single_stage),
            cmocka_unit_test(test_compile__multi_stage),
            cmocka_unit_test(test_compile__stage_refs),
            cmocka_unit_test(test_compile__errors),
            cmocka_unit_test(test_compile__base_config),
            cmocka_unit_test(test_compile__config_instructions),
            cmocka_unit_test(test_compile__workdir_user),
            cmocka_unit_test(test_compile__no_cache),
            cmocka_unit_test(test_compile__named_contexts),
            cmocka_unit_test(test_compile__checks),
            cmocka_unit_test(test_compile__onbuild_stage),
            cmocka_unit_test(test_compile__sets_and_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
