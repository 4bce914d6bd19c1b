/*
 * test_compile_helpers.h: shared fixtures of the Dockerfile compiler tests: a fake image resolver
 * with hand-written configs, compile + load helpers and lookups into the loaded LLB graph and the
 * image config JSON. Each test executable includes this once.
 */
#ifndef KILN_TESTS_TEST_COMPILE_HELPERS_H
#define KILN_TESTS_TEST_COMPILE_HELPERS_H

#include <jansson.h>
#include <stdio.h>

#include "base/base.h"
#include "base/json.h"
#include "frontends/dockerfile/dockerfile.h"
#include "llb/llb.h"

#define TC_FN static __attribute__((unused))

#define TC_BB_DIGEST "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define TC_AL_DIGEST "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define TC_DIFF      "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* busybox: Env PATH and BB, WorkingDir /home, Cmd sh, one layer */
TC_FN const char tc_busybox_config[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"2020-01-01T00:00:00Z\","
        "\"config\":{\"Env\":[\"PATH=/usr/bin:/bin\",\"BB=1\"],\"Cmd\":[\"sh\"],"
        "\"WorkingDir\":\"/home\"},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" TC_DIFF "\"]},"
        "\"history\":[{\"created\":\"2020-01-01T00:00:00Z\","
        "\"created_by\":\"/bin/sh -c #(nop) ADD file:abc in /\"},"
        "{\"created\":\"2020-01-01T00:00:00Z\",\"created_by\":\"/bin/sh -c #(nop)  CMD "
        "[\\\"sh\\\"]\",\"empty_layer\":true}]}";

/* alpine: every config field set, including ONBUILD triggers and a SHELL */
TC_FN const char tc_alpine_config[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\","
        "\"config\":{\"User\":\"app\",\"ExposedPorts\":{\"22/tcp\":{}},"
        "\"Env\":[\"PATH=/p\",\"FOO=base\"],\"Entrypoint\":[\"/entry\"],\"Cmd\":[\"run\"],"
        "\"Volumes\":{\"/data\":{}},\"WorkingDir\":\"/w\",\"Labels\":{\"base\":\"yes\"},"
        "\"StopSignal\":\"SIGQUIT\",\"Healthcheck\":{\"Test\":[\"CMD\",\"true\"],"
        "\"Interval\":1000000000},\"OnBuild\":[\"RUN echo triggered\",\"ENV TRIG=1\"],"
        "\"Shell\":[\"/bin/bash\",\"-c\"]},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" TC_DIFF "\"]},"
        "\"history\":[{\"created_by\":\"ADD x\"}]}";

/* an image without layers: BuildKit treats it as scratch */
TC_FN const char tc_empty_config[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"E=1\"]},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]},"
        "\"history\":[{\"created_by\":\"LABEL x\",\"empty_layer\":true}]}";

typedef struct tc_resolver {
    int calls;
    char refs[16][128];
    char platforms[16][64];
} tc_resolver;

TC_FN tc_resolver tc_res;

TC_FN int
tc_resolve(char **config_json, char **manifest_digest, const char *ref, const char *platform,
           void *payload, kiln_error **err)
{
    const char *cfg = NULL, *dg = NULL;

    (void)payload;
    if (tc_res.calls < 16) {
        snprintf(tc_res.refs[tc_res.calls], sizeof(tc_res.refs[0]), "%s", ref);
        snprintf(tc_res.platforms[tc_res.calls], sizeof(tc_res.platforms[0]), "%s", platform);
    }
    tc_res.calls++;
    if (strcmp(ref, "docker.io/library/busybox:latest") == 0 ||
        strcmp(ref, "docker.io/library/busybox:1.36") == 0) {
        cfg = tc_busybox_config;
        dg = TC_BB_DIGEST;
    } else if (strcmp(ref, "docker.io/library/alpine:latest") == 0 ||
               strcmp(ref, "docker-image://docker.io/library/alpine:latest") == 0 ||
               kiln_str_has_prefix(ref, "oci-layout://")) {
        cfg = tc_alpine_config;
        dg = TC_AL_DIGEST;
    } else if (strcmp(ref, "docker.io/library/empty:latest") == 0) {
        cfg = tc_empty_config;
    }
    if (!cfg)
        return kiln_error_set(err, KILN_ENOTFOUND, "%s: not found", ref);
    *config_json = xstrdup(cfg);
    *manifest_digest = xstrdup(dg);
    return 0;
}

typedef struct tc_result {
    kiln_df_compiled out;
    kiln_llb_graph *graph;
    json_t *config;
} tc_result;

TC_FN kiln_df_compile_opts
tc_opts(const char *df)
{
    kiln_df_compile_opts o = {.version = KILN_DF_COMPILE_OPTS_VERSION,
                              .filename = "Dockerfile",
                              .data = df,
                              .len = strlen(df),
                              .platform = "linux/amd64",
                              .source_date_epoch = 1700000000,
                              .check = KILN_DF_CHECK_SKIP,
                              .resolve = tc_resolve};
    memset(&tc_res, 0, sizeof(tc_res));
    return o;
}

/* Compile and load; on failure *err is set and r is zeroed. */
TC_FN int
tc_compile(tc_result *r, const kiln_df_compile_opts *o, kiln_error **err)
{
    int rc;

    memset(r, 0, sizeof(*r));
    rc = kiln_df_compile(&r->out, o, err);
    if (rc < 0)
        return rc;
    if (r->out.definition.len) {
        kiln_error *e = NULL;
        if (kiln_llb_load(&r->graph, r->out.definition.ptr, r->out.definition.len, &e) < 0)
            fail_msg("load: %s", e->msg);
    }
    r->config = json_loads(r->out.config_json, 0, NULL);
    assert_non_null(r->config);
    return 0;
}

TC_FN void
tc_compile_opts_ok(tc_result *r, const kiln_df_compile_opts *o)
{
    kiln_error *err = NULL;

    if (tc_compile(r, o, &err) < 0) {
        char *m = kiln_error_format(err);
        fail_msg("compile: %s", m);
    }
}

TC_FN void
tc_compile_ok(tc_result *r, const char *df, const char *target)
{
    kiln_df_compile_opts o = tc_opts(df);

    o.target = target;
    tc_compile_opts_ok(r, &o);
}

/* Compile expecting failure: returns the error (caller frees). */
TC_FN kiln_error *
tc_compile_err(const kiln_df_compile_opts *o, int code)
{
    tc_result r;
    kiln_error *err = NULL;
    int rc = tc_compile(&r, o, &err);

    if (rc == 0)
        fail_msg("compile succeeded, expected %d", code);
    assert_int_equal(rc, code);
    assert_non_null(err);
    assert_int_equal(err->code, code);
    return err;
}

TC_FN void
tc_result_dispose(tc_result *r)
{
    kiln_llb_graph_free(r->graph);
    if (r->config)
        json_decref(r->config);
    kiln_df_compiled_dispose(&r->out);
}

TC_FN const char *
tc_desc(const kiln_llb_node *n, const char *key)
{
    if (!n->metadata)
        return NULL;
    for (size_t i = 0; i < n->metadata->n_description; i++) {
        if (strcmp(n->metadata->description[i]->key, key) == 0)
            return n->metadata->description[i]->value;
    }
    return NULL;
}

/* The node whose custom name is `name`, or NULL. */
TC_FN const kiln_llb_node *
tc_find(const tc_result *r, const char *name)
{
    for (size_t i = 0; r->graph && i < kiln_llb_graph_count(r->graph); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(r->graph, i);
        const char *v = tc_desc(n, KILN_LLB_CUSTOM_NAME);
        if (v && strcmp(v, name) == 0)
            return n;
    }
    fprintf(stderr, "no vertex named \"%s\"; have:\n", name);
    for (size_t i = 0; r->graph && i < kiln_llb_graph_count(r->graph); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(r->graph, i);
        const char *v = tc_desc(n, KILN_LLB_CUSTOM_NAME);
        fprintf(stderr, "  %s %s\n", kiln_llb_op_kind(n->op), v ? v : "(unnamed)");
    }
    return NULL;
}

/* How many ops of `kind` the graph holds (the terminal op excluded). */
TC_FN size_t
tc_count(const tc_result *r, const char *kind)
{
    size_t k = 0;

    for (size_t i = 0; r->graph && i < kiln_llb_graph_count(r->graph); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(r->graph, i);
        if (strcmp(kiln_llb_op_kind(n->op), kind) == 0)
            k++;
    }
    return k;
}

TC_FN const char *
tc_env(const Pb__Meta *m, const char *key)
{
    size_t kl = strlen(key);

    for (size_t i = 0; i < m->n_env; i++) {
        if (strncmp(m->env[i], key, kl) == 0 && m->env[i][kl] == '=')
            return m->env[i] + kl + 1;
    }
    return NULL;
}

TC_FN bool
tc_has_location(const kiln_llb_node *n, int start, int end)
{
    if (!n->locations || n->locations->n_locations == 0)
        return false;
    const Pb__Location *l = n->locations->locations[0];
    return l->n_ranges > 0 && l->ranges[0]->start && l->ranges[0]->start->line == start &&
           l->ranges[0]->end && l->ranges[0]->end->line == end;
}

/* A JSON string array joined with ","; NULL when not an array. Static storage. */
TC_FN const char *
tc_strv(const json_t *a)
{
    static char buf[4096];
    size_t off = 0;

    if (!json_is_array(a))
        return NULL;
    buf[0] = '\0';
    for (size_t i = 0; i < json_array_size(a); i++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", i ? "," : "",
                                json_string_value(json_array_get(a, i)));
    return buf;
}

/* Keys of a JSON object joined with ",". Static storage. */
TC_FN const char *
tc_keys(const json_t *o)
{
    static char buf[4096];
    size_t off = 0;
    const char *k;
    json_t *v;

    buf[0] = '\0';
    json_object_foreach((json_t *)o, k, v)
    {
        (void)v;
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", off ? "," : "", k);
    }
    return buf;
}

TC_FN json_t *
tc_cfg(const tc_result *r, const char *key)
{
    return json_object_get(json_object_get(r->config, "config"), key);
}

TC_FN size_t
tc_history_len(const tc_result *r)
{
    return json_array_size(json_object_get(r->config, "history"));
}

TC_FN const char *
tc_history_field(const tc_result *r, size_t i, const char *field)
{
    json_t *h = json_array_get(json_object_get(r->config, "history"), i);

    return json_string_value(json_object_get(h, field));
}

TC_FN void
tc_assert_history(const tc_result *r, size_t i, const char *created_by, bool empty)
{
    json_t *h = json_array_get(json_object_get(r->config, "history"), i);

    assert_non_null(h);
    assert_string_equal(json_string_value(json_object_get(h, "created_by")), created_by);
    assert_int_equal(json_is_true(json_object_get(h, "empty_layer")), empty);
    assert_string_equal(json_string_value(json_object_get(h, "comment")), "buildkit.dockerfile.v0");
}

/* The last history entry's created_by. */
TC_FN const char *
tc_last_history(const tc_result *r)
{
    return tc_history_field(r, tc_history_len(r) - 1, "created_by");
}

#endif
