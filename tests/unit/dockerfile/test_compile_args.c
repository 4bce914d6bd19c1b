/*
 * test_compile_args.c: ARG and ENV scoping in the Dockerfile compiler, checked against what
 * BuildKit's dockerfile2llb does: global ARGs expand FROM, a stage sees a global ARG only after
 * re-declaring it, --build-arg overrides defaults, ARG values reach RUN's environment and the
 * history ("|N K=V") but never the image config, ENV wins over ARG, words of one instruction
 * all see the environment as it was before it, the automatic platform ARGs, and the proxy build
 * args (Meta.proxy_env of every RUN without an ARG, never in the image).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_compile_helpers.h"

static const Pb__Meta *
run_meta(const tc_result *r, const char *name)
{
    const kiln_llb_node *n = tc_find(r, name);

    assert_non_null(n);
    assert_int_equal(n->op->op_case, PB__OP__OP_EXEC);
    return n->op->exec->meta;
}

static void
test_compile_args__global_and_stage(void **state)
{
    static const char df[] = "ARG BASE=busy\n"
                             "ARG V=global\n"
                             "ARG ONLY_GLOBAL=g\n"
                             "FROM ${BASE}box\n"
                             "ARG V\n"
                             "ARG W=w1\n"
                             "ENV E=$W-env\n"
                             "RUN echo $V $W\n"
                             "ARG W=w2\n"
                             "RUN echo again\n";
    tc_result r;
    const Pb__Meta *m;

    (void)state;
    tc_compile_ok(&r, df, NULL);
    assert_string_equal(tc_res.refs[0], "docker.io/library/busybox:latest");
    m = run_meta(&r, "[2/3] RUN echo global w1");
    assert_string_equal(tc_env(m, "V"), "global");
    assert_string_equal(tc_env(m, "W"), "w1");
    assert_string_equal(tc_env(m, "E"), "w1-env");
    /* global ARGs are not in scope unless re-declared */
    assert_null(tc_env(m, "ONLY_GLOBAL"));
    assert_null(tc_env(m, "BASE"));
    m = run_meta(&r, "[3/3] RUN echo again");
    assert_string_equal(tc_env(m, "W"), "w2");
    /* ARG values are not persisted in the image */
    assert_string_equal(tc_strv(tc_cfg(&r, "Env")), "PATH=/usr/bin:/bin,BB=1,E=w1-env");
    tc_assert_history(&r, 2, "ARG V", true);
    tc_assert_history(&r, 3, "ARG W=w1", true);
    tc_assert_history(&r, 4, "ENV E=w1-env", true);
    tc_assert_history(&r, 5, "RUN |2 V=global W=w1 /bin/sh -c echo $V $W # buildkit", false);
    tc_assert_history(&r, 6, "ARG W=w2", true);
    tc_assert_history(&r, 7, "RUN |3 V=global W=w2 W=w2 /bin/sh -c echo again # buildkit", false);
    tc_result_dispose(&r);
}

static void
test_compile_args__build_args(void **state)
{
    static const char df[] = "ARG TAG=latest\n"
                             "ARG V=global\n"
                             "FROM busybox:$TAG\n"
                             "ARG V\n"
                             "ARG W=default\n"
                             "ARG UNSET\n"
                             "RUN echo\n";
    const char *const args[] = {"TAG=1.36", "V=cli", "W=fromcli", "UNDECLARED=x", NULL};
    kiln_df_compile_opts o = tc_opts(df);
    tc_result r;

    (void)state;
    o.build_args = args;
    tc_compile_opts_ok(&r, &o);
    assert_string_equal(tc_res.refs[0], "docker.io/library/busybox:1.36");
    const Pb__Meta *m = run_meta(&r, "[2/2] RUN echo");
    assert_string_equal(tc_env(m, "V"), "cli");
    assert_string_equal(tc_env(m, "W"), "fromcli");
    /* declared without a value and not given: not in the environment */
    assert_null(tc_env(m, "UNSET"));
    /* given but never declared: invisible */
    assert_null(tc_env(m, "UNDECLARED"));
    /* history keeps the Dockerfile's default, the RUN line shows the value used */
    tc_assert_history(&r, 3, "ARG W=default", true);
    tc_assert_history(&r, 5, "RUN |3 V=cli W=fromcli UNSET= /bin/sh -c echo # buildkit", false);
    tc_result_dispose(&r);
}

static void
test_compile_args__env_wins(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "ARG X=a\n"
                  "ENV X=b\n"
                  "ARG X=c\n"
                  "RUN echo $X\n",
                  NULL);
    /* the later ARG sets the run environment again, as llb's AddEnv does */
    const Pb__Meta *m = run_meta(&r, "[2/2] RUN echo c");
    assert_string_equal(tc_env(m, "X"), "c");
    assert_string_equal(tc_strv(tc_cfg(&r, "Env")), "PATH=/usr/bin:/bin,BB=1,X=b");
    tc_result_dispose(&r);

    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "ARG X=a\n"
                  "ENV X=b\n"
                  "RUN echo $X\n",
                  NULL);
    m = run_meta(&r, "[2/2] RUN echo b");
    assert_string_equal(tc_env(m, "X"), "b");
    tc_assert_history(&r, 4, "RUN |1 X=b /bin/sh -c echo $X # buildkit", false);
    tc_result_dispose(&r);
}

static void
test_compile_args__same_instruction(void **state)
{
    tc_result r;

    (void)state;
    /* every word of one ENV sees the environment from before the instruction */
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "ENV A=1\n"
                  "ENV A=2 B=$A C=${A:-x}${NOPE:-y}\n"
                  "LABEL l=\"$A\" 'raw'='$A'\n"
                  "ENV D $A and more\n"
                  "COPY $A /dst-$B\n",
                  NULL);
    assert_string_equal(tc_strv(tc_cfg(&r, "Env")),
                        "PATH=/usr/bin:/bin,BB=1,A=2,B=1,C=1y,D=2 and more");
    json_t *l = tc_cfg(&r, "Labels");
    assert_string_equal(json_string_value(json_object_get(l, "l")), "2");
    assert_string_equal(json_string_value(json_object_get(l, "raw")), "$A");
    tc_assert_history(&r, 3, "ENV A=2 B=1 C=1y", true);
    tc_assert_history(&r, 5, "ENV D=2 and more", true);
    tc_assert_history(&r, 6, "COPY 2 /dst-1 # buildkit", false);
    const kiln_llb_node *cp = tc_find(&r, "[2/2] COPY 2 /dst-1");
    assert_non_null(cp);
    assert_string_equal(cp->op->file->actions[0]->copy->src, "/2");
    assert_string_equal(cp->op->file->actions[0]->copy->dest, "/dst-1");
    tc_result_dispose(&r);
}

static void
test_compile_args__stage_isolation(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r,
                  "FROM busybox AS a\n"
                  "ARG Y=1\n"
                  "ENV Z=2\n"
                  "RUN true\n"
                  "FROM busybox AS b\n"
                  "COPY --from=a /x /x\n"
                  "RUN echo $Y $Z\n"
                  "FROM a\n"
                  "RUN echo $Y $Z\n",
                  "b");
    const Pb__Meta *m = run_meta(&r, "[b 3/3] RUN echo $Y $Z");
    assert_null(tc_env(m, "Y"));
    assert_null(tc_env(m, "Z"));
    tc_result_dispose(&r);

    /* a stage built on another inherits its state: ENV and, as in BuildKit, ARG values */
    tc_compile_ok(&r,
                  "FROM busybox AS a\n"
                  "ARG Y=1\n"
                  "ENV Z=2\n"
                  "RUN true\n"
                  "FROM a\n"
                  "RUN echo $Y $Z\n",
                  NULL);
    m = run_meta(&r, "[stage-1 1/1] RUN echo 1 2");
    assert_string_equal(tc_env(m, "Y"), "1");
    assert_string_equal(tc_env(m, "Z"), "2");
    /* but only ENV is in the image config */
    assert_string_equal(tc_strv(tc_cfg(&r, "Env")), "PATH=/usr/bin:/bin,BB=1,Z=2");
    tc_result_dispose(&r);
}

static void
test_compile_args__platform_args(void **state)
{
    kiln_df_compile_opts o;
    tc_result r;

    (void)state;
    o = tc_opts("ARG TARGETOS\n"
                "FROM --platform=$BUILDPLATFORM busybox AS build\n"
                "ARG TARGETPLATFORM\n"
                "ARG TARGETOS TARGETARCH\n"
                "ARG BUILDPLATFORM\n"
                "RUN echo $TARGETPLATFORM\n");
    o.platform = "linux/arm/v7";
    tc_compile_opts_ok(&r, &o);
    const Pb__Meta *m = run_meta(&r, "[2/2] RUN echo linux/arm/v7");
    assert_string_equal(tc_env(m, "TARGETPLATFORM"), "linux/arm/v7");
    assert_string_equal(tc_env(m, "TARGETOS"), "linux");
    assert_string_equal(tc_env(m, "TARGETARCH"), "arm");
    /* the stage runs on the build platform (the host) */
    assert_string_equal(tc_res.platforms[0], tc_env(m, "BUILDPLATFORM"));
    tc_result_dispose(&r);

    /* a --build-arg overrides an automatic one */
    const char *const args[] = {"TARGETARCH=riscv64", NULL};
    o = tc_opts("FROM busybox\nARG TARGETARCH\nRUN x\n");
    o.build_args = args;
    tc_compile_opts_ok(&r, &o);
    assert_string_equal(tc_env(run_meta(&r, "[2/2] RUN x"), "TARGETARCH"), "riscv64");
    tc_result_dispose(&r);
}

static void
test_compile_args__not_expanded(void **state)
{
    tc_result r;

    (void)state;
    /* RUN, CMD, ENTRYPOINT and ONBUILD are left to the shell */
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "ENV A=1\n"
                  "RUN echo \"$A\" '$A'\n"
                  "CMD echo $A\n"
                  "ENTRYPOINT [\"e\", \"$A\"]\n"
                  "ONBUILD RUN echo $A\n",
                  NULL);
    const kiln_llb_node *run = tc_find(&r, "[2/2] RUN echo \"1\" '$A'");
    assert_non_null(run);
    assert_string_equal(run->op->exec->meta->args[2], "echo \"$A\" '$A'");
    assert_string_equal(tc_strv(tc_cfg(&r, "Cmd")), "/bin/sh,-c,echo $A");
    assert_string_equal(tc_strv(tc_cfg(&r, "Entrypoint")), "e,$A");
    assert_string_equal(tc_strv(tc_cfg(&r, "OnBuild")), "RUN echo $A");
    tc_result_dispose(&r);
}

/* Every exec of the graph has exactly this proxy env (NULL: none); returns how many execs. */
static size_t
assert_proxy_everywhere(const tc_result *r, const kiln_llb_proxy_env *want)
{
    size_t k = 0;

    for (size_t i = 0; i < kiln_llb_graph_count(r->graph); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(r->graph, i);
        if (n->op->op_case != PB__OP__OP_EXEC)
            continue;
        const Pb__Meta *m = n->op->exec->meta;
        k++;
        /* never in the process env the op carries, in either case */
        assert_null(tc_env(m, "HTTP_PROXY"));
        assert_null(tc_env(m, "http_proxy"));
        assert_null(tc_env(m, "NO_PROXY"));
        if (!want) {
            assert_null(m->proxy_env);
            continue;
        }
        assert_non_null(m->proxy_env);
        assert_string_equal(m->proxy_env->http_proxy, want->http_proxy);
        assert_string_equal(m->proxy_env->https_proxy, want->https_proxy);
        assert_string_equal(m->proxy_env->ftp_proxy, want->ftp_proxy);
        assert_string_equal(m->proxy_env->no_proxy, want->no_proxy);
        assert_string_equal(m->proxy_env->all_proxy, want->all_proxy);
    }
    return k;
}

static void
test_compile_args__proxy_build_args(void **state)
{
    static const char df[] = "FROM busybox AS dep\n"
                             "RUN echo dep > /x\n"
                             "FROM busybox\n"
                             "ENV E=1\n"
                             "RUN echo one\n"
                             "COPY --from=dep /x /x\n"
                             "RUN echo two\n";
    /* any case; the uppercase spelling wins over a later lowercase one; empty counts as given */
    const char *const args[] = {"HTTP_PROXY=http://proxy:3128",
                                "https_proxy=http://s:1",
                                "Ftp_Proxy=ftp://f",
                                "no_proxy=lower",
                                "NO_PROXY=upper",
                                "no_proxy=lower-again",
                                "ALL_PROXY=",
                                "OTHER=x",
                                NULL};
    const kiln_llb_proxy_env want = {"http://proxy:3128", "http://s:1", "ftp://f", "upper", ""};
    const char *const none[] = {"OTHER=x", "HTTP_PROXYX=y", NULL};
    const char *const lower[] = {"no_proxy=a", "no_proxy=b", NULL};
    const kiln_llb_proxy_env want_lower = {"", "", "", "b", ""};
    kiln_df_compile_opts o = tc_opts(df);
    tc_result r;

    (void)state;
    o.build_args = args;
    tc_compile_opts_ok(&r, &o);
    /* every RUN of every stage, without ARG */
    assert_int_equal(assert_proxy_everywhere(&r, &want), 3);
    assert_int_equal(tc_count(&r, "exec"), 3);
    const kiln_llb_node *run = tc_find(&r, "[stage-1 2/4] RUN echo one");
    assert_non_null(run);
    assert_true(run->metadata != NULL);
    bool cap = false;
    for (size_t i = 0; i < run->metadata->n_caps; i++)
        cap |= strcmp(run->metadata->caps[i]->key, "exec.meta.proxyenv") == 0;
    assert_true(cap);
    /* not in the image: neither its Env nor its history */
    assert_string_equal(tc_strv(tc_cfg(&r, "Env")), "PATH=/usr/bin:/bin,BB=1,E=1");
    assert_null(strstr(r.out.config_json, "proxy"));
    assert_null(strstr(r.out.config_json, "PROXY"));
    assert_string_equal(tc_last_history(&r), "RUN /bin/sh -c echo two # buildkit");
    tc_result_dispose(&r);

    /* no proxy build arg: no proxy_env (other undeclared args change nothing) */
    o = tc_opts(df);
    o.build_args = none;
    tc_compile_opts_ok(&r, &o);
    assert_int_equal(assert_proxy_everywhere(&r, NULL), 3);
    tc_result_dispose(&r);
    o = tc_opts(df);
    tc_compile_opts_ok(&r, &o);
    assert_int_equal(assert_proxy_everywhere(&r, NULL), 3);
    tc_result_dispose(&r);

    /* only lowercase spellings: the last one */
    o = tc_opts(df);
    o.build_args = lower;
    tc_compile_opts_ok(&r, &o);
    assert_int_equal(assert_proxy_everywhere(&r, &want_lower), 3);
    tc_result_dispose(&r);
}

static void
test_compile_args__proxy_declared_arg(void **state)
{
    const char *const args[] = {"HTTP_PROXY=http://p:1", NULL};
    kiln_df_compile_opts o = tc_opts("FROM busybox\nARG HTTP_PROXY\nRUN echo\n");
    tc_result r;

    (void)state;
    o.build_args = args;
    tc_compile_opts_ok(&r, &o);
    /* declared: an ordinary ARG as well (env, history), and still the RUN's proxy_env */
    const Pb__Meta *m = run_meta(&r, "[2/2] RUN echo");
    assert_string_equal(tc_env(m, "HTTP_PROXY"), "http://p:1");
    assert_non_null(m->proxy_env);
    assert_string_equal(m->proxy_env->http_proxy, "http://p:1");
    assert_string_equal(tc_last_history(&r),
                        "RUN |1 HTTP_PROXY=http://p:1 /bin/sh -c echo # buildkit");
    assert_string_equal(tc_strv(tc_cfg(&r, "Env")), "PATH=/usr/bin:/bin,BB=1");
    tc_result_dispose(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_compile_args__global_and_stage),
            cmocka_unit_test(test_compile_args__build_args),
            cmocka_unit_test(test_compile_args__env_wins),
            cmocka_unit_test(test_compile_args__same_instruction),
            cmocka_unit_test(test_compile_args__stage_isolation),
            cmocka_unit_test(test_compile_args__platform_args),
            cmocka_unit_test(test_compile_args__not_expanded),
            cmocka_unit_test(test_compile_args__proxy_build_args),
            cmocka_unit_test(test_compile_args__proxy_declared_arg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
