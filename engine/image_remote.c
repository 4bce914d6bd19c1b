/*
 * image_remote.c: images leaving or entering the local store through a registry (push, pull),
 * and running an image.
 *
 * Push uploads the layer blobs straight from the content store (the registry client skips blobs
 * the registry has), then the config, then the manifest's exact bytes, so the pushed manifest
 * digest is the local one. Pull fetches the host platform's manifest, config and layers into the
 * content store (op_image.c's code path) and names the image.
 *
 * Run: the image's filesystem is the snapshot recorded for it (a build result tagged as the
 * image), or its layers unpacked from the content store (shared with docker-image:// sources
 * through the chain-id keys). A throwaway writable snapshot on top becomes the sandbox's rootfs
 * (executor/executor.h) and is removed afterwards; output is copied to the caller's stdout and
 * stderr as it arrives.
 */
#define KILN_LOG_DOMAIN "engine"

#include "base/fs.h"
#include "base/vec.h"
#include "engine/engine_internal.h"
#include "executor/executor.h"
#include "oci/oci.h"
#include "oci/registry.h"

#include "base/base.h"

/* ---- push ----------------------------------------------------------------------------------- */

static int
push_layers(kiln_registry *reg, const kiln_oci_ref *ref, kiln_engine *e,
            const kiln_engine_image *img, kiln_error **err)
{
    const kiln_oci_manifest *m = img->manifest;
    int ret = 0;

    for (size_t i = 0; ret == 0 && i < m->n_layers; i++) {
        const kiln_oci_descriptor *d = &m->layers[i];
        cleanup_close int fd = -1;

        if (kiln_oci_layer_nondistributable(d->media_type))
            continue; /* image-spec: never uploaded */
        ret = kiln_cache_blob_open(&fd, e->cache, d->digest, err);
        if (ret == 0)
            ret = kiln_registry_push_blob(reg, ref, d->digest, d->size, fd, NULL, err);
        if (ret < 0)
            return kiln_error_wrap(err, "push layer %s", d->digest);
    }
    return 0;
}

int
kiln_engine_image_push(kiln_engine *e, const kiln_engine_image *img, const char *name,
                       bool insecure, kiln_error **err)
{
    kiln_registry_opts ro = KILN_REGISTRY_OPTS_INIT;
    kiln_registry *reg = NULL;
    kiln_oci_ref ref = {0};
    const char *insecure_list[2] = {NULL, NULL};
    cleanup_free char *pushed = NULL;
    int ret;

    ret = kiln_oci_ref_parse(&ref, name, err);
    if (ret < 0)
        return kiln_error_wrap(err, "push");
    insecure_list[0] = insecure ? ref.domain : NULL;
    ro.insecure = insecure_list;
    ret = kiln_registry_new(&reg, &ro, err);
    if (ret == 0)
        ret = push_layers(reg, &ref, e, img, err);
    if (ret == 0)
        ret = kiln_registry_push_blob_mem(reg, &ref, img->config_digest, img->config_json,
                                          img->config_len, NULL, err);
    if (ret == 0)
        ret = kiln_registry_put_manifest(reg, &ref, img->manifest->media_type, img->manifest_json,
                                         img->manifest_len, &pushed, err);
    if (ret == 0 && strcmp(pushed, img->digest) != 0)
        ret = kiln_error_set(err, KILN_EDIGEST, "registry stored manifest %s as %s", img->digest,
                             pushed);
    kiln_registry_free(reg);
    kiln_oci_ref_dispose(&ref);
    if (ret < 0)
        return kiln_error_wrap(err, "push `%s`", name);
    return 0;
}

/* ---- pull ----------------------------------------------------------------------------------- */

int
kiln_engine_image_pull(kiln_engine_image **out, kiln_engine *e, const char *ref, kiln_error **err)
{
    kiln_engine_image *img = NULL;
    char digest[KILN_DIGEST_STRLEN + 1];
    int ret;

    ret = engine_registry_pull(digest, e, ref, err);
    if (ret == 0)
        ret = engine_image_from_store(&img, e, digest, NULL, err);
    if (ret == 0)
        ret = engine_image_tag_ref(e, img, ref, err);
    if (ret < 0) {
        kiln_engine_image_free(img);
        return ret;
    }
    *out = img;
    return 0;
}

/* ---- run ------------------------------------------------------------------------------------ */

/* The top snapshot of img's filesystem ("" = empty image). */
static int
image_snapshot(char *id_out, kiln_engine *e, const kiln_engine_image *img, kiln_error **err)
{
    kiln_cache_snapshot_info info = {0};
    kiln_error *tmp = NULL;
    bool ok = img->snapshot[0] &&
              kiln_cache_snapshot_info_get(&info, e->cache, img->snapshot, &tmp) == 0 &&
              info.kind == KILN_CACHE_SNAPSHOT_COMMITTED;

    kiln_cache_snapshot_info_dispose(&info);
    kiln_error_free(&tmp);
    if (ok) {
        engine_hold(e, img->snapshot);
        kiln_strlcpy(id_out, img->snapshot, 33);
        return 0;
    }
    return engine_image_unpack(id_out, e, img, NULL, err);
}

/* argv: entrypoint (override or config) + args (override, or the config's Cmd unless the
 * entrypoint was overridden), as docker run does. Strings borrowed from cfg and opts. */
static void
build_args(kiln_vec *out, const kiln_oci_config *cfg, const kiln_engine_run_opts *opts)
{
    const char *s;

    if (opts->entrypoint) {
        for (size_t i = 0; opts->entrypoint[i]; i++)
            kiln_vec_push(out, (void *)opts->entrypoint[i]);
    } else {
        kiln_vec_foreach(&cfg->entrypoint, i, s)
            kiln_vec_push(out, (void *)s);
    }
    if (opts->args) {
        for (size_t i = 0; opts->args[i]; i++)
            kiln_vec_push(out, (void *)opts->args[i]);
    } else if (!opts->entrypoint) {
        kiln_vec_foreach(&cfg->cmd, i, s)
            kiln_vec_push(out, (void *)s);
    }
    kiln_vec_push(out, NULL);
}

static bool
env_same_key(const char *a, const char *b)
{
    size_t la = strcspn(a, "="), lb = strcspn(b, "=");

    return la == lb && strncmp(a, b, la) == 0;
}

/* The config's Env with opts->env added (a key given again replaces the image's value). */
static void
build_env(kiln_vec *out, const kiln_oci_config *cfg, const kiln_engine_run_opts *opts)
{
    const char *s;

    kiln_vec_foreach(&cfg->env, i, s)
        kiln_vec_push(out, (void *)s);
    for (size_t i = 0; opts->env && opts->env[i]; i++) {
        size_t j;
        for (j = 0; j < out->len; j++) {
            if (env_same_key(out->items[j], opts->env[i]))
                break;
        }
        if (j < out->len)
            out->items[j] = (void *)opts->env[i];
        else
            kiln_vec_push(out, (void *)opts->env[i]);
    }
    kiln_vec_push(out, NULL);
}

static void
copy_output(int stream, const char *data, size_t len, void *payload)
{
    kiln_error *tmp = NULL;

    (void)payload;
    if (kiln_fd_write_all(stream == 2 ? STDERR_FILENO : STDOUT_FILENO, data, len, &tmp) < 0)
        kiln_log_debug("copy container output: %s", tmp->msg);
    kiln_error_free(&tmp);
}

static int
run_in(int *status, kiln_engine *e, const kiln_oci_config *cfg, const kiln_engine_run_opts *opts,
       const kiln_cache_mounts *m, kiln_error **err)
{
    kiln_exec_spec spec = KILN_EXEC_SPEC_INIT;
    kiln_exec_result res = {0};
    kiln_vec args = KILN_VEC_INIT, env = KILN_VEC_INIT;
    int ret;

    (void)e;
    build_args(&args, cfg, opts);
    build_env(&env, cfg, opts);
    if (args.len < 2) {
        kiln_vec_dispose(&args, NULL);
        kiln_vec_dispose(&env, NULL);
        return kiln_error_set(err, KILN_EINVAL, "no command: the image has no Entrypoint or Cmd");
    }
    if (m->nlower == 0) {
        spec.rootfs = m->upper;
    } else {
        spec.lowers = (const char *const *)m->lower;
        spec.n_lowers = m->nlower;
        spec.upper = m->upper;
        spec.work = m->work;
    }
    spec.args = (const char *const *)args.items;
    spec.env = (const char *const *)env.items;
    spec.cwd = opts->workdir && *opts->workdir         ? opts->workdir
               : cfg->working_dir && *cfg->working_dir ? cfg->working_dir
                                                       : NULL;
    spec.user = opts->user && *opts->user ? opts->user : cfg->user && *cfg->user ? cfg->user : NULL;
    spec.network = opts->network_host ? KILN_EXEC_NET_HOST : KILN_EXEC_NET_NONE;
    spec.on_output = copy_output;
    spec.has_stdin = opts->interactive;
    spec.stdin_fd = STDIN_FILENO;
    ret = kiln_exec_run(&res, &spec, err);
    if (ret == 0)
        *status = res.exit_code;
    kiln_vec_dispose(&args, NULL);
    kiln_vec_dispose(&env, NULL);
    return ret;
}

int
kiln_engine_image_run(int *status, kiln_engine *e, const kiln_engine_image *img,
                      const kiln_engine_run_opts *opts, kiln_error **err)
{
    kiln_engine_run_opts defaults = {.version = KILN_ENGINE_RUN_OPTS_VERSION};
    kiln_cache_mounts m = {0};
    kiln_oci_config cfg;
    engine_rw w = {0};
    char top[33] = "";
    int ret;

    if (!opts)
        opts = &defaults;
    if (opts->version != KILN_ENGINE_RUN_OPTS_VERSION)
        return kiln_error_set(err, KILN_EINVAL, "run options version %d (want %d)", opts->version,
                              KILN_ENGINE_RUN_OPTS_VERSION);
    kiln_oci_config_init(&cfg);
    ret = kiln_oci_config_parse(&cfg, img->config_json, img->config_len, err);
    if (ret == 0)
        ret = image_snapshot(top, e, img, err);
    if (ret == 0)
        ret = engine_rw_prepare(&w, &m, e, top, err);
    if (ret == 0)
        ret = run_in(status, e, &cfg, opts, &m, err);
    engine_rw_abort(&w, e);
    kiln_cache_mounts_dispose(&m);
    kiln_oci_config_dispose(&cfg);
    if (ret < 0)
        return kiln_error_wrap(err, "run image %s", img->digest);
    return 0;
}
