/*
 * images_driver.c: what the images suite needs of the engine API that no CLI command offers:
 *
 *   images_driver export ROOT DEF NAME [--epoch N] [--zstd|--uncompressed] [--force]
 *                 [--rewrite] [--docker] [--config FILE]
 *       solve the LLB Definition DEF, export the result as an image (kiln_engine_image_export),
 *       name it NAME (kiln_engine_image_tag), print "<manifest digest> <image id>".
 *
 *   images_driver llb LAYOUT OUT [SCRIPT]
 *       write a Definition: oci-layout LAYOUT, a RUN that changes nothing (an empty layer), a
 *       file op making /x.txt ("x\n") and a RUN writing /y.txt ("y\n") and removing
 *       /etc/group (a whiteout), or running SCRIPT instead.
 *
 *   images_driver naive ROOT
 *       create state dir ROOT with the naive (copying) snapshotter; engines opened on it later
 *       keep that snapshotter.
 *
 *   images_driver resolve ROOT REF
 *       print the manifest digest kiln_engine_resolve_image_config finds for REF.
 *
 * Exit 0 on success, 1 on failure (the error on stderr), 2 on bad usage.
 */
#include <signal.h>

#include "base/buf.h"
#include "base/fs.h"
#include "cache/cache.h"
#include "kiln/engine.h"
#include "llb/llb.h"

#include "base/base.h"

static int
parse_flags(kiln_engine_image_opts *o, char **cfg_path, int argc, char **argv, kiln_error **err)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--epoch") == 0 && i + 1 < argc) {
            if (kiln_parse_i64(argv[++i], &o->epoch, "--epoch", err) < 0)
                return -1;
        } else if (strcmp(argv[i], "--zstd") == 0) {
            o->compression = KILN_ENGINE_COMPRESSION_ZSTD;
        } else if (strcmp(argv[i], "--uncompressed") == 0) {
            o->compression = KILN_ENGINE_COMPRESSION_UNCOMPRESSED;
        } else if (strcmp(argv[i], "--rewrite") == 0) {
            o->rewrite_timestamp = true;
        } else if (strcmp(argv[i], "--force") == 0) {
            o->force_compression = true;
        } else if (strcmp(argv[i], "--docker") == 0) {
            o->docker_media_types = true;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            *cfg_path = argv[++i];
        } else {
            return kiln_error_set(err, KILN_EINVAL, "unknown flag `%s`", argv[i]);
        }
    }
    return 0;
}

static int
run_export(const char *root, const char *def_path, const char *name, int argc, char **argv,
           kiln_error **err)
{
    kiln_engine_opts eo = KILN_ENGINE_OPTS_INIT;
    kiln_engine_image_opts io = KILN_ENGINE_IMAGE_OPTS_INIT;
    cleanup_free char *def = NULL;
    cleanup_free char *cfg = NULL;
    char *cfg_path = NULL;
    kiln_engine *e = NULL;
    kiln_engine_result *r = NULL;
    kiln_engine_image *img = NULL;
    size_t len = 0;
    int ret = parse_flags(&io, &cfg_path, argc, argv, err);

    if (ret == 0 && cfg_path)
        ret = kiln_fs_read_file(&cfg, NULL, cfg_path, 8u << 20, err);
    io.config_json = cfg;
    if (ret == 0)
        ret = kiln_fs_read_file(&def, &len, def_path, 128u << 20, err);
    eo.root = root;
    if (ret == 0)
        ret = kiln_engine_open(&e, &eo, err);
    if (ret == 0)
        ret = kiln_engine_solve(&r, e, def, len, NULL, err);
    if (ret == 0)
        ret = kiln_engine_image_export(&img, e, r, &io, err);
    if (ret == 0)
        ret = kiln_engine_image_tag(e, img, name, err);
    if (ret == 0)
        printf("%s %s\n", kiln_engine_image_digest(img), kiln_engine_image_config_digest(img));
    kiln_engine_image_free(img);
    kiln_engine_result_free(e, r);
    kiln_engine_free(e);
    return ret;
}

static int
run(kiln_llb_state *out, kiln_llb_builder *b, kiln_llb_state root, const char *script,
    kiln_error **err)
{
    const char *args[] = {"/bin/sh", "-c", script, NULL};
    const char *env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    kiln_llb_exec_opts o = {.root = root, .args = args, .env = env, .cwd = "/"};

    return kiln_llb_exec(out, b, &o, err);
}

static int
write_llb(const char *layout, const char *out, const char *script, kiln_error **err)
{
    cleanup_free char *id = xasprintf("oci-layout://%s:latest", layout);
    kiln_llb_builder *b = NULL;
    kiln_llb_state img, empty, files, last;
    kiln_llb_vertex *f;
    kiln_buf def = KILN_BUF_INIT;
    int ret;

    kiln_llb_builder_new(&b);
    ret = kiln_llb_source(&img, b, id, NULL, 0, err);
    if (ret == 0)
        ret = run(&empty, b, img, "true", err);
    if (ret == 0) {
        kiln_llb_file_new(&f, b, empty);
        ret = kiln_llb_file_mkfile(f, "/x.txt", 0644, "x\n", 2, NULL, err);
        files = kiln_llb_file_state(f);
    }
    if (ret == 0)
        ret = run(&last, b, files, script ? script : "echo y > /y.txt; rm /etc/group", err);
    if (ret == 0)
        ret = kiln_llb_marshal(&def, b, last, NULL, err);
    if (ret == 0)
        ret = kiln_fs_write_atomic(out, def.ptr, def.len, 0644, err);
    kiln_buf_dispose(&def);
    kiln_llb_builder_free(b);
    return ret;
}

static int
make_naive(const char *root, kiln_error **err)
{
    kiln_cache_opts o = KILN_CACHE_OPTS_INIT;
    kiln_cache *c = NULL;
    int ret;

    o.snapshotter = KILN_CACHE_SNAPSHOTTER_NAIVE;
    ret = kiln_cache_open(&c, root, &o, err);
    kiln_cache_free(c);
    return ret;
}

static int
resolve(const char *root, const char *ref, kiln_error **err)
{
    kiln_engine_opts eo = KILN_ENGINE_OPTS_INIT;
    cleanup_free char *cfg = NULL;
    cleanup_free char *digest = NULL;
    kiln_engine *e = NULL;
    int ret;

    eo.root = root;
    ret = kiln_engine_open(&e, &eo, err);
    if (ret == 0)
        ret = kiln_engine_resolve_image_config(&cfg, &digest, e, ref, err);
    if (ret == 0)
        printf("%s\n", digest);
    kiln_engine_free(e);
    return ret;
}

int
main(int argc, char **argv)
{
    kiln_error *err = NULL;
    int ret;

    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "naive") == 0) {
        ret = make_naive(argv[2], &err);
    } else if (argc == 4 && strcmp(argv[1], "resolve") == 0) {
        ret = resolve(argv[2], argv[3], &err);
    } else if ((argc == 4 || argc == 5) && strcmp(argv[1], "llb") == 0) {
        ret = write_llb(argv[2], argv[3], argc == 5 ? argv[4] : NULL, &err);
    } else if (argc >= 5 && strcmp(argv[1], "export") == 0) {
        ret = run_export(argv[2], argv[3], argv[4], argc - 5, argv + 5, &err);
    } else {
        fprintf(stderr, "usage: images_driver export ROOT DEF NAME [flags] | llb LAYOUT OUT\n");
        return 2;
    }
    if (ret < 0) {
        cleanup_free char *msg = kiln_error_format(err);
        fprintf(stderr, "images_driver: %s\n", msg);
        kiln_error_free(&err);
        return 1;
    }
    return 0;
}
