/*
 * test_compile_ops.c: the LLB the Dockerfile compiler makes for RUN (--mount of every type,
 * --network, --security, heredocs) and COPY/ADD (flags, wildcards, destinations, URLs, git,
 * heredoc sources, --link).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_compile_helpers.h"

static const Pb__Mount *
mount_at(const kiln_llb_node *n, const char *dest)
{
    for (size_t i = 0; i < n->op->exec->n_mounts; i++) {
        if (strcmp(n->op->exec->mounts[i]->dest, dest) == 0)
            return n->op->exec->mounts[i];
    }
    fail_msg("no mount at %s", dest);
    return NULL;
}

static const char *
source_id(const kiln_llb_node *n)
{
    return n->op->op_case == PB__OP__OP_SOURCE ? n->op->source->identifier : "";
}

static const char *
source_attr(const kiln_llb_node *n, const char *key)
{
    for (size_t i = 0; i < n->op->source->n_attrs; i++) {
        if (strcmp(n->op->source->attrs[i]->key, key) == 0)
            return n->op->source->attrs[i]->value;
    }
    return NULL;
}

/* build --network: the default of RUNs without their own --network (or with =default) */
static void
test_compile_ops__build_network(void **state)
{
    static const char *df = "FROM busybox\n"
                            "RUN a\n"
                            "RUN --network=default b\n"
                            "RUN --network=host c\n"
                            "RUN --network=none d\n";
    static const struct {
        const char *build; /* --network */
        Pb__NetMode want[4];
    } cases[] = {
            {NULL,
             {PB__NET_MODE__UNSET, PB__NET_MODE__UNSET, PB__NET_MODE__HOST, PB__NET_MODE__NONE}},
            {"default",
             {PB__NET_MODE__UNSET, PB__NET_MODE__UNSET, PB__NET_MODE__HOST, PB__NET_MODE__NONE}},
            {"none",
             {PB__NET_MODE__NONE, PB__NET_MODE__NONE, PB__NET_MODE__HOST, PB__NET_MODE__NONE}},
            {"host",
             {PB__NET_MODE__HOST, PB__NET_MODE__HOST, PB__NET_MODE__HOST, PB__NET_MODE__NONE}},
    };
    static const char *names[] = {"[2/5] RUN a", "[3/5] RUN --network=default b",
                                  "[4/5] RUN --network=host c", "[5/5] RUN --network=none d"};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kiln_df_compile_opts o = tc_opts(df);
        tc_result r;

        o.network = cases[i].build;
        tc_compile_opts_ok(&r, &o);
        for (size_t k = 0; k < 4; k++) {
            const kiln_llb_node *run = tc_find(&r, names[k]);
            assert_non_null(run);
            assert_int_equal(run->op->exec->network, cases[i].want[k]);
        }
        tc_result_dispose(&r);
    }
}

static void
test_compile_ops__run_mounts(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r,
                  "FROM busybox AS deps\n"
                  "RUN touch /d\n"
                  "FROM busybox\n"
                  "WORKDIR /src\n"
                  "ARG CACHE=/root/.cache\n"
                  "RUN --mount=type=cache,target=$CACHE,sharing=locked \\\n"
                  "    --mount=type=cache,id=gomod,target=/go,uid=1000,mode=0700 \\\n"
                  "    --mount=type=bind,from=deps,source=/d,target=/mnt/d \\\n"
                  "    --mount=type=bind,target=ctx,rw \\\n"
                  "    --mount=type=tmpfs,target=/tmp,size=64m \\\n"
                  "    --mount=type=secret,id=tok \\\n"
                  "    --mount=type=secret,id=key,target=/k,required,mode=0440,uid=5 \\\n"
                  "    --mount=type=ssh \\\n"
                  "    --mount=type=secret,id=aws,env=AWS_KEY \\\n"
                  "    --network=none --security=insecure make\n",
                  NULL);
    const kiln_llb_node *run =
            tc_find(&r, "[stage-1 3/3] RUN --mount=type=cache,target=/root/.cache,"
                        "sharing=locked     --mount=type=cache,id=gomod,"
                        "target=/go,uid=1000,mode=0700     "
                        "--mount=type=bind,from=deps,source=/d,target=/mnt/d "
                        "    --mount=type=bind,target=ctx,rw     "
                        "--mount=type=tmpfs,target=/tmp,size=64m     "
                        "--mount=type=secret,id=tok     "
                        "--mount=type=secret,id=key,target=/k,required,"
                        "mode=0440,uid=5     --mount=type=ssh     "
                        "--mount=type=secret,id=aws,env=AWS_KEY     "
                        "--network=none --security=insecure make");
    assert_non_null(run);
    const Pb__ExecOp *e = run->op->exec;
    assert_int_equal(e->network, PB__NET_MODE__NONE);
    assert_int_equal(e->security, PB__SECURITY_MODE__INSECURE);
    assert_string_equal(e->meta->cwd, "/src");

    const Pb__Mount *m = mount_at(run, "/root/.cache");
    assert_int_equal(m->mounttype, PB__MOUNT_TYPE__CACHE);
    assert_string_equal(m->cacheopt->id, "//root/.cache");
    assert_int_equal(m->cacheopt->sharing, PB__CACHE_SHARING_OPT__LOCKED);
    assert_false(m->readonly);

    /* a cache with owner/mode mounts /cache of a small mkdir op on scratch */
    m = mount_at(run, "/go");
    assert_string_equal(m->cacheopt->id, "/gomod");
    assert_string_equal(m->selector, "/cache");
    const kiln_llb_node *mk = run->inputs[m->input];
    assert_string_equal(tc_desc(mk, KILN_LLB_CUSTOM_NAME),
                        "[internal] settings cache mount permissions");
    assert_string_equal(mk->op->file->actions[0]->mkdir->path, "/cache");
    assert_int_equal(mk->op->file->actions[0]->mkdir->mode, 0700);
    assert_int_equal(mk->op->file->actions[0]->mkdir->owner->user->byid, 1000);

    m = mount_at(run, "/mnt/d");
    assert_int_equal(m->mounttype, PB__MOUNT_TYPE__BIND);
    assert_string_equal(m->selector, "/d");
    assert_true(m->readonly);
    assert_ptr_equal(run->inputs[m->input], tc_find(&r, "[deps 2/2] RUN touch /d"));

    /* relative target: under the working directory; no from: the build context */
    m = mount_at(run, "/src/ctx");
    assert_false(m->readonly);
    assert_int_equal(m->output, -1);
    assert_string_equal(source_id(run->inputs[m->input]), "local://context");

    m = mount_at(run, "/tmp");
    assert_int_equal(m->mounttype, PB__MOUNT_TYPE__TMPFS);
    assert_int_equal(m->tmpfsopt->size, 64 << 20);

    m = mount_at(run, "/run/secrets/tok");
    assert_int_equal(m->mounttype, PB__MOUNT_TYPE__SECRET);
    assert_string_equal(m->secretopt->id, "tok");
    assert_true(m->secretopt->optional);
    assert_int_equal(m->secretopt->mode, 0400);
    m = mount_at(run, "/k");
    assert_string_equal(m->secretopt->id, "key");
    assert_false(m->secretopt->optional);
    assert_int_equal(m->secretopt->mode, 0440);
    assert_int_equal(m->secretopt->uid, 5);

    /* env= only: an environment variable, no file */
    assert_int_equal(e->n_secretenv, 1);
    assert_string_equal(e->secretenv[0]->id, "aws");
    assert_string_equal(e->secretenv[0]->name, "AWS_KEY");
    assert_true(e->secretenv[0]->optional);
    for (size_t i = 0; i < e->n_mounts; i++)
        assert_true(e->mounts[i]->secretopt == NULL || strcmp(e->mounts[i]->secretopt->id, "aws"));
    m = mount_at(run, "/run/buildkit/ssh_agent.0");
    assert_int_equal(m->mounttype, PB__MOUNT_TYPE__SSH);
    assert_string_equal(m->sshopt->id, "default");
    assert_int_equal(m->sshopt->mode, 0600);
    tc_result_dispose(&r);
}

static void
test_compile_ops__run_forms(void **state)
{
    tc_result r;

    (void)state;
    /* exec form; a single-stage file with a mount gets stage names, as BuildKit does */
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "RUN [\"/bin/echo\", \"a b\"]\n"
                  "RUN --mount=type=cache,target=/c true\n",
                  NULL);
    const kiln_llb_node *x = tc_find(&r, "[stage-0 2/3] RUN [\"/bin/echo\", \"a b\"]");
    assert_non_null(x);
    assert_int_equal(x->op->exec->meta->n_args, 2);
    assert_string_equal(x->op->exec->meta->args[1], "a b");
    assert_non_null(tc_find(&r, "[stage-0 3/3] RUN --mount=type=cache,target=/c true"));
    tc_assert_history(&r, 2, "RUN /bin/echo a b # buildkit", false);
    tc_result_dispose(&r);

    /* heredocs */
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "RUN <<EOF\n"
                  "echo one\n"
                  "echo two\n"
                  "EOF\n"
                  "RUN <<-'SCRIPT'\n"
                  "#!/usr/bin/env python3\n"
                  "\tprint(1)\n"
                  "\tSCRIPT\n"
                  "RUN cat <<A > /a\n"
                  "x\n"
                  "A\n",
                  NULL);
    const kiln_llb_node *h1 = tc_find(&r, "[2/4] RUN <<EOF (echo one...)");
    assert_non_null(h1);
    assert_string_equal(h1->op->exec->meta->args[2], "echo one\necho two\n");
    assert_true(tc_has_location(h1, 2, 5));
    tc_assert_history(&r, 2, "RUN /bin/sh -c echo one\necho two\n # buildkit", false);
    /* #! script: written to a file under /dev/pipes and run */
    const kiln_llb_node *h2 = tc_find(&r, "[3/4] RUN <<-'SCRIPT' (#!/usr/bin/env python3...)");
    assert_non_null(h2);
    assert_string_equal(h2->op->exec->meta->args[2], "/dev/pipes/SCRIPT");
    const Pb__Mount *m = mount_at(h2, "/dev/pipes/");
    assert_true(m->readonly);
    const kiln_llb_node *f = h2->inputs[m->input];
    assert_string_equal(tc_desc(f, KILN_LLB_CUSTOM_NAME), "[internal] preparing inline document");
    assert_true(tc_has_location(f, 6, 9));
    Pb__FileActionMkFile *mf = f->op->file->actions[0]->mkfile;
    assert_string_equal(mf->path, "/SCRIPT");
    assert_int_equal(mf->mode, 0755);
    assert_memory_equal(mf->data.data, "#!/usr/bin/env python3\nprint(1)\n", mf->data.len);
    /* anything else goes to the shell whole */
    const kiln_llb_node *h3 = tc_find(&r, "[4/4] RUN cat <<A > /a");
    assert_non_null(h3);
    assert_string_equal(h3->op->exec->meta->args[2], "cat <<A > /a\nx\nA");
    tc_result_dispose(&r);
}

static void
test_compile_ops__copy_flags(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "WORKDIR /app\n"
                  "COPY --chown=1000:app --chmod=0644 --exclude=*.tmp a b* ./\n"
                  "COPY [\"x y\", \"rel\"]\n"
                  "ADD --chown=root --chmod=u+x archive.tar /opt/\n",
                  NULL);
    const kiln_llb_node *c = tc_find(&r, "[3/5] COPY --chown=1000:app --chmod=0644 "
                                         "--exclude=*.tmp a b* ./");
    assert_non_null(c);
    assert_int_equal(c->op->file->n_actions, 2);
    Pb__FileActionCopy *a = c->op->file->actions[0]->copy;
    assert_string_equal(a->src, "/a");
    assert_string_equal(a->dest, "/app/");
    assert_int_equal(a->mode, 0644);
    assert_int_equal(a->owner->user->user_case, PB__USER_OPT__USER_BY_ID);
    assert_int_equal(a->owner->user->byid, 1000);
    assert_string_equal(a->owner->group->byname->name, "app");
    assert_int_equal(a->n_exclude_patterns, 1);
    assert_string_equal(a->exclude_patterns[0], "*.tmp");
    assert_false(a->attemptunpackdockercompatibility);
    assert_string_equal(c->op->file->actions[1]->copy->src, "/b*");
    /* the second action works on the first one's result */
    assert_int_equal(c->op->file->actions[1]->input, 2);
    tc_assert_history(&r, 3, "COPY a b* ./ # buildkit", false);

    const kiln_llb_node *c2 = tc_find(&r, "[4/5] COPY [x y, rel]");
    assert_non_null(c2);
    assert_string_equal(c2->op->file->actions[0]->copy->src, "/x y");
    assert_string_equal(c2->op->file->actions[0]->copy->dest, "/app/rel");

    const kiln_llb_node *ad = tc_find(&r, "[5/5] ADD --chown=root --chmod=u+x archive.tar /opt/");
    assert_non_null(ad);
    a = ad->op->file->actions[0]->copy;
    assert_true(a->attemptunpackdockercompatibility);
    assert_string_equal(a->modestr, "u+x");
    assert_int_equal(a->owner->user->byid, 0);
    tc_assert_history(&r, 5, "ADD archive.tar /opt/ # buildkit", false);
    tc_result_dispose(&r);
}

static void
test_compile_ops__add_remote(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "ADD --checksum=sha256:"
                  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef "
                  "https://example.com/dl/tool.tar.gz?x=1 /tools/\n"
                  "ADD --keep-git-dir https://github.com/moby/buildkit.git#v0.11.6:docs /docs\n",
                  NULL);
    const kiln_llb_node *http = NULL, *git = NULL;
    for (size_t i = 0; i < kiln_llb_graph_count(r.graph); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(r.graph, i);
        if (kiln_str_has_prefix(source_id(n), "https://"))
            http = n;
        if (kiln_str_has_prefix(source_id(n), "git://"))
            git = n;
    }
    assert_non_null(http);
    assert_string_equal(source_id(http), "https://example.com/dl/tool.tar.gz?x=1");
    assert_string_equal(source_attr(http, "http.checksum"),
                        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_string_equal(source_attr(http, "http.filename"), "tool.tar.gz");
    const kiln_llb_node *a1 = tc_find(&r, "[2/3] ADD --checksum=sha256:"
                                          "0123456789abcdef0123456789abcdef0123456789abcdef"
                                          "0123456789abcdef https://example.com/dl/"
                                          "tool.tar.gz?x=1 /tools/");
    assert_non_null(a1);
    Pb__FileActionCopy *cp = a1->op->file->actions[0]->copy;
    assert_string_equal(cp->src, "/tool.tar.gz");
    assert_string_equal(cp->dest, "/tools/");
    assert_false(cp->attemptunpackdockercompatibility);
    assert_non_null(git);
    assert_string_equal(source_id(git), "git://github.com/moby/buildkit.git#v0.11.6:docs");
    assert_string_equal(source_attr(git, "git.keepgitdir"), "true");
    tc_result_dispose(&r);

    kiln_df_compile_opts o = tc_opts("FROM busybox\nADD --checksum=sha256:00 a /b\n");
    kiln_error *err = tc_compile_err(&o, KILN_EINVAL);
    assert_string_equal(err->msg, "checksum can't be specified for non-HTTP sources");
    kiln_error_free(&err);
    o = tc_opts("FROM busybox\nADD --checksum=sha256:00 https://e.com/a /b\n");
    err = tc_compile_err(&o, KILN_EINVAL);
    assert_string_equal(err->msg, "invalid checksum digest format");
    assert_int_equal(err->line, 2);
    kiln_error_free(&err);
    /* --parents: include patterns below the pivot keep their directories */
    tc_compile_ok(&r, "FROM busybox\nCOPY --parents ./x/./y/*.txt z/a.go /dst/\n", NULL);
    const kiln_llb_node *pc = tc_find(&r, "[2/2] COPY --parents ./x/./y/*.txt z/a.go /dst/");
    assert_non_null(pc);
    Pb__FileActionCopy *c0 = pc->op->file->actions[0]->copy;
    assert_string_equal(c0->src, "/x");
    assert_int_equal(c0->n_include_patterns, 1);
    assert_string_equal(c0->include_patterns[0], "y/*.txt");
    Pb__FileActionCopy *c1 = pc->op->file->actions[1]->copy;
    assert_string_equal(c1->src, "/");
    assert_string_equal(c1->include_patterns[0], "z/a.go");
    tc_result_dispose(&r);

    /* ADD --unpack=false keeps a local archive as it is */
    tc_compile_ok(&r, "FROM busybox\nADD --unpack=false a.tar /x/\n", NULL);
    const kiln_llb_node *u = tc_find(&r, "[2/2] ADD --unpack=false a.tar /x/");
    assert_non_null(u);
    assert_false(u->op->file->actions[0]->copy->attemptunpackdockercompatibility);
    tc_result_dispose(&r);
}

static void
test_compile_ops__copy_heredoc_link(void **state)
{
    tc_result r;

    (void)state;
    tc_compile_ok(&r,
                  "FROM busybox\n"
                  "ENV NAME=world\n"
                  "COPY <<EOF <<'RAW' /etc/\n"
                  "hello $NAME\n"
                  "EOF\n"
                  "keep $NAME\n"
                  "RAW\n"
                  "COPY --link a /b\n",
                  NULL);
    const kiln_llb_node *c = tc_find(&r, "[2/3] COPY <<EOF <<RAW /etc/");
    assert_non_null(c);
    assert_int_equal(c->op->file->n_actions, 2);
    const kiln_llb_node *doc = c->inputs[c->op->file->actions[0]->secondaryinput];
    Pb__FileActionMkFile *mf = doc->op->file->actions[0]->mkfile;
    assert_string_equal(mf->path, "/EOF");
    assert_int_equal(mf->mode, 0664);
    assert_memory_equal(mf->data.data, "hello world\n", mf->data.len);
    const kiln_llb_node *raw = c->inputs[c->op->file->actions[1]->secondaryinput];
    mf = raw->op->file->actions[0]->mkfile;
    assert_memory_equal(mf->data.data, "keep $NAME\n", mf->data.len);
    tc_assert_history(&r, 3, "COPY <<EOF <<RAW /etc/ # buildkit", false);

    /* --link: the copy is made on scratch and merged onto the stage */
    const kiln_llb_node *merge = tc_find(&r, "[3/3] LINK COPY --link a /b");
    assert_non_null(merge);
    assert_string_equal(kiln_llb_op_kind(merge->op), "merge");
    assert_int_equal(merge->n_inputs, 2);
    assert_ptr_equal(merge->inputs[0], c);
    const kiln_llb_node *lf = tc_find(&r, "[3/3] COPY --link a /b");
    assert_non_null(lf);
    assert_ptr_equal(merge->inputs[1], lf);
    assert_int_equal(lf->op->file->actions[0]->input, -1);
    assert_non_null(lf->metadata->progress_group);
    tc_assert_history(&r, 4, "COPY a /b # buildkit", false);
    tc_result_dispose(&r);
}

static const kiln_llb_node *
context_source(const tc_result *r)
{
    for (size_t i = 0; i < kiln_llb_graph_count(r->graph); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(r->graph, i);
        if (strcmp(source_id(n), "local://context") == 0)
            return n;
    }
    fail_msg("no build context source");
    return NULL;
}

static void
test_compile_ops__context(void **state)
{
    tc_result r;
    kiln_df_compile_opts o;
    const char *const excludes[] = {"*.md", "tmp", NULL};

    (void)state;
    /* only the paths the build reads are transferred (FollowPaths), sorted and relative */
    o = tc_opts("FROM busybox AS a\n"
                "COPY dir/b* /b/\n"
                "FROM busybox\n"
                "COPY --from=a /b /b\n"
                "COPY ./z/../a /a\n"
                "ADD https://example.com/f /f\n"
                "RUN --mount=type=bind,source=m,target=/m --mount=type=cache,target=/c true\n");
    o.context_excludes = excludes;
    o.context_name = "ctx";
    tc_compile_opts_ok(&r, &o);
    const kiln_llb_node *ctx = NULL;
    for (size_t i = 0; i < kiln_llb_graph_count(r.graph); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(r.graph, i);
        if (strcmp(source_id(n), "local://ctx") == 0)
            ctx = n;
    }
    assert_non_null(ctx);
    assert_string_equal(source_attr(ctx, "local.followpaths"), "[\"a\",\"dir/b*\",\"m\"]");
    assert_string_equal(source_attr(ctx, "local.excludepatterns"), "[\"*.md\",\"tmp\"]");
    assert_string_equal(source_attr(ctx, "local.sharedkeyhint"), "ctx");
    assert_string_equal(tc_desc(ctx, KILN_LLB_CUSTOM_NAME), "[internal] load build context");
    assert_int_equal(r.out.locals.len, 1);
    assert_string_equal(r.out.locals.items[0], "ctx");
    tc_result_dispose(&r);

    /* copying the root needs the whole context */
    tc_compile_ok(&r, "FROM busybox\nCOPY a /a\nCOPY . /app\n", NULL);
    assert_null(source_attr(context_source(&r), "local.followpaths"));
    tc_result_dispose(&r);

    /* a scratch result has no LLB at all, only a config */
    tc_compile_ok(&r, "FROM scratch\nLABEL a=b\n", NULL);
    assert_int_equal(r.out.definition.len, 0);
    assert_string_equal(json_string_value(json_object_get(tc_cfg(&r, "Labels"), "a")), "b");
    assert_int_equal(tc_res.calls, 0);
    tc_result_dispose(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_compile_ops__run_mounts),
            cmocka_unit_test(test_compile_ops__run_forms),
            cmocka_unit_test(test_compile_ops__copy_flags),
            cmocka_unit_test(test_compile_ops__add_remote),
            cmocka_unit_test(test_compile_ops__copy_heredoc_link),
            cmocka_unit_test(test_compile_ops__context),
            cmocka_unit_test(test_compile_ops__build_network),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
