/*
 * dockerfile_compile_fuzzer.c: compiles arbitrary bytes as a Dockerfile with the whole frontend
 * (parse, stages, ARG/ENV expansion, every instruction, LLB marshalling, image config), using a
 * fake resolver that answers every image with a small config. A successful compile's Definition
 * must load back through the LLB validator and its config must be JSON. Any crash, leak,
 * sanitizer report or abort is a bug.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "frontends/dockerfile/dockerfile.h"
#include "llb/llb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\"],"
        "\"WorkingDir\":\"/w\",\"User\":\"u:g\",\"OnBuild\":[\"RUN echo ${X:-onbuild}\"]},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]},"
        "\"history\":[{\"created_by\":\"x\"}]}";

static int
resolve(char **config_json, char **manifest_digest, const char *ref, const char *platform,
        void *payload, kiln_error **err)
{
    (void)platform;
    (void)payload;
    if (strstr(ref, "missing"))
        return kiln_error_set(err, KILN_ENOTFOUND, "%s: not found", ref);
    *config_json = xstrdup(config);
    *manifest_digest = xstrdup("sha256:"
                               "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const args[] = {"A=1", "B", NULL};
    static const kiln_df_named_context nc[] = {{"ctx", "local:other"},
                                               {"img", "docker-image://busybox"}};
    kiln_df_compile_opts o = {.version = KILN_DF_COMPILE_OPTS_VERSION,
                              .filename = "Dockerfile",
                              .data = (const char *)data,
                              .len = size,
                              .build_args = args,
                              .named_contexts = nc,
                              .n_named_contexts = 2,
                              .platform = "linux/amd64",
                              .source_date_epoch = 0,
                              .check = KILN_DF_CHECK_DEFAULT,
                              .resolve = resolve};
    kiln_df_compiled out;
    kiln_error *err = NULL;

    if (size > 64 * 1024)
        return 0;
    if (kiln_df_compile(&out, &o, &err) < 0) {
        char *m = kiln_error_format(err);
        free(m);
        kiln_error_free(&err);
        return 0;
    }
    if (out.definition.len) {
        kiln_llb_graph *g = NULL;
        if (kiln_llb_load(&g, out.definition.ptr, out.definition.len, &err) < 0)
            kiln_abort(__FILE__, __LINE__, "compiled LLB does not load: %s", err->msg);
        kiln_llb_graph_free(g);
    }
    json_t *j = json_loads(out.config_json, 0, NULL);
    if (!j)
        kiln_abort(__FILE__, __LINE__, "config is not JSON");
    json_decref(j);
    kiln_df_compiled_dispose(&out);
    return 0;
}
