/*
 * cmd_dockerfile_llb.c: `kiln dockerfile llb [-f FILE] [--target T] [--build-arg K=V]...
 * [--build-context NAME=VALUE]... [--platform P] [--root DIR] [--json]`: compile a Dockerfile with
 * the Dockerfile frontend and print what a build would run: the image config of the target stage,
 * the build-check warnings, and the LLB graph (text, or one JSON line per vertex with --json).
 *
 * Base images are resolved through the engine's image store when --root is given (the image must
 * have been pulled or built there); `oci-layout://DIR[:TAG|@DIGEST]` named contexts are read
 * straight from the layout directory, so they work without --root.
 */
#include <getopt.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/fs.h"
#include "base/vec.h"
#include "cmd/kiln/commands.h"
#include "frontends/dockerfile/dockerfile.h"
#include "kiln/engine.h"
#include "llb/llb.h"
#include "oci/oci.h"

#define DF_MAX_FILE (64u << 20)

typedef struct llb_cli {
    const char *file, *target, *platform, *root;
    bool json;
    kiln_vec build_args; /* char *, borrowed from argv */
    kiln_vec contexts;   /* kiln_df_named_context * */
    kiln_engine *engine;
} llb_cli;

static void
usage(FILE *out)
{
    fprintf(out,
            "Usage: kiln dockerfile llb [OPTIONS] [CONTEXT]\n\n"
            "Compile a Dockerfile to LLB and print the image config and the build graph.\n\n"
            "Options:\n"
            "  -f, --file FILE               the Dockerfile (default: CONTEXT/Dockerfile, \"-\" = "
            "stdin)\n"
            "      --target STAGE            build this stage (default: the last one)\n"
            "      --build-arg K=V           set a build argument (repeatable)\n"
            "      --build-context NAME=VAL  named context: docker-image://, oci-layout://, "
            "local:NAME\n"
            "      --platform OS/ARCH        target platform (default: this machine)\n"
            "      --root DIR                resolve base images in the engine state at DIR\n"
            "      --json                    print the graph as JSON lines\n"
            "  -h, --help                    show this help\n");
}

/* Read blob `digest` of an OCI layout (at most `max` bytes). */
static int
layout_blob(char **out, size_t *len, const char *dir, const char *digest, size_t max,
            kiln_error **err)
{
    cleanup_free char *path = NULL;

    if (!kiln_oci_digest_valid(digest))
        return kiln_error_set(err, KILN_EINVAL, "invalid digest `%s` in layout %s", digest, dir);
    path = xasprintf("%s/blobs/%.*s/%s", dir, (int)strcspn(digest, ":"), digest,
                     strchr(digest, ':') + 1);
    return kiln_fs_read_file(out, len, path, max, err);
}

/* The manifest descriptor a layout reference names: by digest, by tag annotation, or the only
 * entry. *digest_out owned by the caller. */
static int
layout_pick(char **digest_out, const char *dir, const char *tag, const char *digest,
            kiln_error **err)
{
    cleanup_free char *path = xasprintf("%s/index.json", dir), *data = NULL;
    kiln_oci_index ix = {0};
    size_t len = 0;
    int rc;

    if (digest) {
        *digest_out = xstrdup(digest);
        return 0;
    }
    if ((rc = kiln_fs_read_file(&data, &len, path, KILN_OCI_MANIFEST_MAX, err)) < 0 ||
        (rc = kiln_oci_index_parse(&ix, data, len, NULL, err)) < 0)
        return rc;
    *digest_out = NULL;
    for (size_t i = 0; i < ix.n_manifests && !*digest_out; i++) {
        json_t *a = ix.manifests[i].annotations;
        const char *name =
                a ? json_string_value(json_object_get(a, "org.opencontainers.image.ref.name"))
                  : NULL;
        if (kiln_str_eq(name, tag ? tag : "latest"))
            *digest_out = xstrdup(ix.manifests[i].digest);
    }
    if (!*digest_out && !tag && ix.n_manifests == 1)
        *digest_out = xstrdup(ix.manifests[0].digest);
    kiln_oci_index_dispose(&ix);
    if (!*digest_out)
        return kiln_error_set(err, KILN_ENOTFOUND, "no image tagged \"%s\" in layout %s",
                              tag ? tag : "latest", dir);
    return 0;
}

/* Resolve "oci-layout://DIR[:TAG|@DIGEST]" from the directory itself. */
static int
layout_resolve(char **config_json, char **manifest_digest, const char *ref, const char *platform,
               kiln_error **err)
{
    cleanup_free char *dir = xstrdup(ref + strlen("oci-layout://")), *mdg = NULL, *data = NULL;
    cleanup_free char *cfg = NULL;
    char *at = strchr(dir, '@'), *tag = NULL, *slash = strrchr(dir, '/');
    kiln_oci_manifest m = {0};
    size_t len = 0, clen = 0;
    int rc;

    if (at) {
        *at++ = '\0';
    } else if ((tag = strrchr(slash ? slash : dir, ':'))) {
        *tag++ = '\0';
    }
    if ((rc = layout_pick(&mdg, dir, tag, at, err)) < 0 ||
        (rc = layout_blob(&data, &len, dir, mdg, KILN_OCI_MANIFEST_MAX, err)) < 0)
        return rc;
    if (kiln_oci_document_kind(data, len, NULL) == KILN_OCI_KIND_INDEX) {
        kiln_oci_index ix = {0};
        kiln_oci_platform want = {0};
        const kiln_oci_descriptor *d = NULL;
        rc = kiln_oci_platform_parse(&want, platform, err);
        if (rc == 0 && (rc = kiln_oci_index_parse(&ix, data, len, NULL, err)) == 0 &&
            (rc = kiln_oci_index_select(&d, &ix, &want, err)) == 0) {
            free(mdg);
            mdg = xstrdup(d->digest);
        }
        kiln_oci_index_dispose(&ix);
        kiln_oci_platform_dispose(&want);
        free(steal_pointer(&data));
        if (rc == 0)
            rc = layout_blob(&data, &len, dir, mdg, KILN_OCI_MANIFEST_MAX, err);
        if (rc < 0)
            return rc;
    }
    if ((rc = kiln_oci_manifest_parse(&m, data, len, NULL, err)) < 0)
        return rc;
    rc = layout_blob(&cfg, &clen, dir, m.config.digest, KILN_OCI_CONFIG_MAX, err);
    kiln_oci_manifest_dispose(&m);
    if (rc < 0)
        return rc;
    *config_json = steal_pointer(&cfg);
    *manifest_digest = steal_pointer(&mdg);
    return 0;
}

static int
cli_resolve(char **config_json, char **manifest_digest, const char *ref, const char *platform,
            void *payload, kiln_error **err)
{
    llb_cli *cli = payload;

    if (kiln_str_has_prefix(ref, "oci-layout://")) {
        int rc = layout_resolve(config_json, manifest_digest, ref, platform, err);
        return rc < 0 ? kiln_error_wrap(err, "%s", ref) : 0;
    }
    if (!cli->engine)
        return kiln_error_set(err, KILN_ENOTFOUND,
                              "cannot resolve image %s without --root (a kiln state dir)", ref);
    return kiln_engine_resolve_image_config(config_json, manifest_digest, cli->engine, ref, err);
}

static int
read_input(char **out, size_t *len, const char *path, kiln_error **err)
{
    kiln_buf b = KILN_BUF_INIT;
    int rc;

    if (strcmp(path, "-") != 0)
        return kiln_fs_read_file(out, len, path, DF_MAX_FILE, err);
    rc = kiln_fd_read_all(STDIN_FILENO, &b, DF_MAX_FILE, err);
    if (rc < 0) {
        kiln_buf_dispose(&b);
        return kiln_error_wrap(err, "read stdin");
    }
    *len = b.len;
    *out = kiln_buf_detach(&b);
    return 0;
}

static int
add_context(llb_cli *cli, char *arg)
{
    char *eq = strchr(arg, '=');
    kiln_df_named_context *nc;

    if (!eq || eq == arg) {
        fprintf(stderr, "kiln: --build-context expects NAME=VALUE, got \"%s\"\n", arg);
        return -1;
    }
    *eq = '\0';
    nc = xnew(kiln_df_named_context);
    nc->name = arg;
    nc->value = eq + 1;
    kiln_vec_push(&cli->contexts, nc);
    return 0;
}

/* Returns -1 to go on, or the exit code (after --help or a usage error). */
static int
parse_args(llb_cli *cli, int argc, char **argv, const char **context)
{
    enum { O_TARGET = 256, O_ARG, O_CTX, O_PLATFORM, O_ROOT, O_JSON };
    static const struct option opts[] = {
            {"file", required_argument, NULL, 'f'},
            {"target", required_argument, NULL, O_TARGET},
            {"build-arg", required_argument, NULL, O_ARG},
            {"build-context", required_argument, NULL, O_CTX},
            {"platform", required_argument, NULL, O_PLATFORM},
            {"root", required_argument, NULL, O_ROOT},
            {"json", no_argument, NULL, O_JSON},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            cli->file = optarg;
            break;
        case O_TARGET:
            cli->target = optarg;
            break;
        case O_ARG:
            kiln_vec_push(&cli->build_args, optarg);
            break;
        case O_CTX:
            if (add_context(cli, optarg) < 0)
                return KILN_EXIT_USAGE;
            break;
        case O_PLATFORM:
            cli->platform = optarg;
            break;
        case O_ROOT:
            cli->root = optarg;
            break;
        case O_JSON:
            cli->json = true;
            break;
        case 'h':
            usage(stdout);
            return KILN_EXIT_OK;
        default:
            usage(stderr);
            return KILN_EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        usage(stderr);
        return KILN_EXIT_USAGE;
    }
    *context = optind < argc ? argv[optind] : ".";
    return -1;
}

static int
compile_and_print(llb_cli *cli, const char *path, kiln_error **err)
{
    cleanup_free char *data = NULL;
    size_t len = 0, n = cli->contexts.len;
    kiln_df_compiled out = {0};
    kiln_llb_graph *g = NULL;
    int rc;

    if ((rc = read_input(&data, &len, path, err)) < 0)
        return rc;
    kiln_df_named_context *ncs = n ? xcalloc(n, sizeof(*ncs)) : NULL;
    for (size_t i = 0; i < n; i++)
        ncs[i] = *(kiln_df_named_context *)cli->contexts.items[i];
    kiln_vec_push(&cli->build_args, NULL);
    kiln_df_compile_opts o = {.version = KILN_DF_COMPILE_OPTS_VERSION,
                              .filename = strcmp(path, "-") ? path : "Dockerfile",
                              .data = data,
                              .len = len,
                              .target = cli->target,
                              .build_args = (const char *const *)cli->build_args.items,
                              .named_contexts = ncs,
                              .n_named_contexts = n,
                              .platform = cli->platform,
                              .source_date_epoch = -1,
                              .resolve = cli_resolve,
                              .resolve_payload = cli};
    rc = kiln_df_compile(&out, &o, err);
    kiln_vec_pop(&cli->build_args);
    free(ncs);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < out.warnings.len; i++)
        fprintf(stderr, "kiln: warning: %s\n", (const char *)out.warnings.items[i]);
    printf("# target: %s\n# config: %s\n", out.target, out.config_json);
    if (out.definition.len == 0) {
        printf("# (empty result: the target stage is scratch)\n");
    } else if ((rc = kiln_llb_load(&g, out.definition.ptr, out.definition.len, err)) == 0) {
        rc = kiln_llb_dump(stdout, g, cli->json, err);
        kiln_llb_graph_free(g);
    }
    kiln_df_compiled_dispose(&out);
    return rc;
}

int
kiln_cmd_dockerfile_llb(int argc, char **argv)
{
    llb_cli cli = {0};
    kiln_error *err = NULL;
    const char *context = NULL;
    cleanup_free char *path = NULL;
    int rc = parse_args(&cli, argc, argv, &context);

    if (rc >= 0) {
        kiln_vec_dispose(&cli.contexts, free);
        kiln_vec_dispose(&cli.build_args, NULL);
        return rc;
    }
    path = cli.file ? xstrdup(cli.file) : xasprintf("%s/Dockerfile", context);
    if (cli.root) {
        kiln_engine_opts eo = KILN_ENGINE_OPTS_INIT;
        eo.root = cli.root;
        rc = kiln_engine_open(&cli.engine, &eo, &err);
    } else {
        rc = 0;
    }
    if (rc == 0)
        rc = compile_and_print(&cli, path, &err);
    kiln_engine_free(cli.engine);
    kiln_vec_dispose(&cli.contexts, free);
    kiln_vec_dispose(&cli.build_args, NULL);
    if (rc < 0) {
        kiln_cmd_report(err);
        kiln_error_free(&err);
        return KILN_EXIT_FAILURE;
    }
    return KILN_EXIT_OK;
}
