/*
 * test_dockerfile_instructions.c: unit tests of the typed instruction layer
 * (frontends/dockerfile/instructions.c): keyword suggestions, BuildKit's flag rules, FROM, RUN
 * mounts/network/security and COPY/ADD.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"
#include "frontends/dockerfile/instructions.h"
#include "frontends/dockerfile/parser.h"

/* Parse a one-instruction Dockerfile; the result owns the node returned through *node. */
static kiln_df_result *
parse_one(const char *src, const kiln_df_node **node)
{
    kiln_df_result *r = NULL;
    kiln_error *err = NULL;

    if (kiln_df_parse(&r, src, strlen(src), NULL, &err) < 0)
        fail_msg("parse %s: %s", src, err->msg);
    *node = r->ast->children.items[0];
    return r;
}

static void
test_dockerfile_instr__unknown_keyword(void **state)
{
    static const struct {
        const char *src, *msg;
    } cases[] = {
            {"FORM x\n", "unknown instruction: FORM (did you mean FROM?)"},
            {"\n\ncopyy a b\n", "unknown instruction: copyy (did you mean copy?)"},
            {"Runn x\n", "unknown instruction: Runn (did you mean run?)"},
            {"XYZZY x\n", "unknown instruction: XYZZY"},
    };
    kiln_error *err = NULL;
    const kiln_df_node *n;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kiln_df_result *r = parse_one(cases[i].src, &n);
        assert_int_equal(kiln_df_check_keyword(n, &err), KILN_EPARSE);
        assert_string_equal(err->msg, cases[i].msg);
        assert_int_equal(err->line, n->start_line);
        kiln_error_free(&err);
        kiln_df_result_free(r);
    }
    kiln_df_result *r = parse_one("healthcheck NONE\n", &n);
    assert_int_equal(kiln_df_check_keyword(n, NULL), 0);
    kiln_df_result_free(r);
}

static void
test_dockerfile_instr__from(void **state)
{
    static const struct {
        const char *src, *image, *stage, *platform, *err;
    } cases[] = {
            {"FROM alpine\n", "alpine", NULL, NULL, NULL},
            {"FROM --platform=$BUILDPLATFORM golang AS Build-1\n", "golang", "build-1",
             "$BUILDPLATFORM", NULL},
            {"FROM a as b\n", "a", "b", NULL, NULL},
            {"FROM a b\n", NULL, NULL, NULL, "FROM requires either one or three arguments"},
            {"FROM a AS 1x\n", NULL, NULL, NULL, "invalid name for build stage: \"1x\""},
            {"FROM --platform a\n", NULL, NULL, NULL, "missing a value on flag: platform"},
            {"FROM --platfrom=x a\n", NULL, NULL, NULL,
             "unknown flag: platfrom (did you mean platform?)"},
            {"FROM --platform=x --platform=y a\n", NULL, NULL, NULL,
             "duplicate flag specified: platform"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const kiln_df_node *n;
        kiln_df_result *r = parse_one(cases[i].src, &n);
        kiln_df_from f;
        kiln_error *err = NULL;
        int rc = kiln_df_parse_from(&f, n, &err);
        if (cases[i].err) {
            assert_int_equal(rc, KILN_EPARSE);
            if (!strstr(err->msg, cases[i].err))
                fail_msg("%s: got %s", cases[i].src, err->msg);
            kiln_error_free(&err);
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(f.image, cases[i].image);
            if (cases[i].stage)
                assert_string_equal(f.stage_name, cases[i].stage);
            else
                assert_null(f.stage_name);
            if (cases[i].platform)
                assert_string_equal(f.platform, cases[i].platform);
            else
                assert_null(f.platform);
            kiln_df_from_dispose(&f);
        }
        kiln_df_result_free(r);
    }
}

static void
test_dockerfile_instr__run_flags(void **state)
{
    const kiln_df_node *n;
    kiln_df_result *r = parse_one("RUN --mount=type=cache,target=/c,sharing=locked,mode=0700,uid=1 "
                                  "--mount=type=secret,id=tok,env=TOKEN,required "
                                  "--mount=target=/src,rw --mount=type=tmpfs,dst=/t,size=64m "
                                  "--network=none --security=insecure [\"make\", \"all\"]\n",
                                  &n);
    kiln_df_run run;
    kiln_error *err = NULL;

    (void)state;
    if (kiln_df_parse_run(&run, n, &err) < 0)
        fail_msg("%s", err->msg);
    assert_int_equal(run.mounts.len, 4);
    const kiln_df_mount *c = run.mounts.items[0], *s = run.mounts.items[1];
    const kiln_df_mount *b = run.mounts.items[2], *t = run.mounts.items[3];
    assert_int_equal(c->type, KILN_DF_MOUNT_CACHE);
    assert_string_equal(c->target, "/c");
    assert_int_equal(c->sharing, KILN_DF_SHARING_LOCKED);
    assert_true(c->has_mode && c->mode == 0700 && c->has_uid && c->uid == 1 && !c->has_gid);
    assert_false(c->readonly);
    assert_int_equal(s->type, KILN_DF_MOUNT_SECRET);
    assert_string_equal(s->id, "tok");
    assert_string_equal(s->env, "TOKEN");
    assert_true(s->required && s->readonly);
    assert_int_equal(b->type, KILN_DF_MOUNT_BIND);
    assert_false(b->readonly);
    assert_int_equal(t->type, KILN_DF_MOUNT_TMPFS);
    assert_int_equal(t->size, 64u << 20);
    assert_int_equal(run.network, KILN_DF_NETWORK_NONE);
    assert_true(run.insecure && run.json);
    assert_int_equal(run.args.len, 2);
    assert_string_equal(run.args.items[1], "all");
    kiln_df_run_dispose(&run);
    kiln_df_result_free(r);
}

static void
test_dockerfile_instr__run_errors(void **state)
{
    static const struct {
        const char *src, *err;
    } cases[] = {
            {"RUN --network=bridge x\n", "invalid network mode \"bridge\""},
            {"RUN --security=root x\n", "security \"root\" is not valid"},
            {"RUN --mount=type=cach,target=/x x\n",
             "unsupported mount type \"cach\" (did you mean cache?)"},
            {"RUN --mount=type=cache,taget=/x x\n",
             "unexpected key 'taget' in 'taget=/x' (did you mean target?)"},
            {"RUN --mount=type=bind,target=/x,mode=0755 x\n",
             "mode not allowed for \"bind\" type mounts"},
            {"RUN --mount=type=cache,target=/x,sharing=all x\n", "unsupported sharing value"},
            {"RUN --mount=type=bind,target=/x,sharing=locked x\n", "invalid cache sharing"},
            {"RUN --mount=type=cache,target=/x,uid=-1 x\n", "invalid value -1 for uid"},
            {"RUN --mount=type=secret,from=a,id=b x\n", "secret mount should not have a from"},
            {"RUN --mount=type=secret,source=a,id=b x\n", "both source and id can't be set"},
            {"RUN --mount=type=bind,target=/x,required x\n", "unexpected key 'required'"},
            {"RUN --mount=type=bind,target=/x,ro=maybe x\n", "invalid value for ro: maybe"},
            {"RUN --mount=type=cache x\n", "mount target is required"},
            {"RUN --mount=type=bind,target x\n", "must be a key=value pair"},
            {"RUN --mount=\\\"type=bind,target=/x x\n", "extraneous or missing \""},
            {"RUN --mount=type=b\\\"ind,target=/x x\n", "bare \" in non-quoted-field"},
            {"RUN --mount=type=bind,target=/x,uid=1 x\n",
             "uid not allowed for \"bind\" type mounts"},
            {"RUN --mount x\n", "missing a value on flag: mount"},
            {"RUN --mout=type=bind x\n", "unknown flag: mout (did you mean mount?)"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const kiln_df_node *n;
        kiln_df_result *r = parse_one(cases[i].src, &n);
        kiln_df_run run;
        kiln_error *err = NULL;
        if (kiln_df_parse_run(&run, n, &err) == 0)
            fail_msg("case %zu (%s): parsed, want an error", i, cases[i].err);
        if (!strstr(err->msg, cases[i].err))
            fail_msg("%s: got %s, want %s", cases[i].src, err->msg, cases[i].err);
        kiln_error_free(&err);
        kiln_df_result_free(r);
    }
}

static void
test_dockerfile_instr__copy_add(void **state)
{
    const kiln_df_node *n;
    kiln_df_copy c;
    kiln_error *err = NULL;
    kiln_df_result *r = parse_one("COPY --from=build --chown=1:2 --chmod=755 --link --parents "
                                  "--exclude=*.md --exclude=x a b /dst/\n",
                                  &n);

    (void)state;
    assert_int_equal(kiln_df_parse_copy(&c, n, &err), 0);
    assert_false(c.is_add);
    assert_string_equal(c.from, "build");
    assert_string_equal(c.chown, "1:2");
    assert_string_equal(c.chmod, "755");
    assert_true(c.link && c.parents);
    assert_int_equal(c.excludes.len, 2);
    assert_int_equal(c.sources.len, 2);
    assert_string_equal(c.dest, "/dst/");
    kiln_df_copy_dispose(&c);
    kiln_df_result_free(r);

    r = parse_one("ADD --checksum=sha256:00 --keep-git-dir=true --unpack=FALSE --link=false "
                  "https://x/y.tar /z\n",
                  &n);
    assert_int_equal(kiln_df_parse_copy(&c, n, &err), 0);
    assert_true(c.is_add && c.keep_git_dir && !c.link);
    assert_int_equal(c.unpack, 0);
    assert_string_equal(c.checksum, "sha256:00");
    assert_null(c.from);
    kiln_df_copy_dispose(&c);
    kiln_df_result_free(r);

    static const struct {
        const char *src, *err;
    } bad[] = {
            {"COPY a\n", "COPY requires at least two arguments"},
            {"ADD --from=x a b\n", "unknown flag: from"},
            {"COPY --unpack a b\n", "unknown flag: unpack"},
            {"COPY --link=yes a b\n", "expecting boolean value for flag link, not: yes"},
            {"COPY --link= a b\n", "missing a value on flag: link"},
            {"COPY --link --link a b\n", "duplicate flag specified: link"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = parse_one(bad[i].src, &n);
        if (kiln_df_parse_copy(&c, n, &err) == 0)
            fail_msg("%s: parsed, want an error", bad[i].src);
        if (!strstr(err->msg, bad[i].err))
            fail_msg("%s: got %s", bad[i].src, err->msg);
        kiln_error_free(&err);
        kiln_df_result_free(r);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_dockerfile_instr__unknown_keyword),
            cmocka_unit_test(test_dockerfile_instr__from),
            cmocka_unit_test(test_dockerfile_instr__run_flags),
            cmocka_unit_test(test_dockerfile_instr__run_errors),
            cmocka_unit_test(test_dockerfile_instr__copy_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
