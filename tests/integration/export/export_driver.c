/*
 * export_driver.c: a small command-line driver of oci/export.h for the export integration tests.
 * It builds an image from a base image config and layer directories, the way the engine will:
 *
 *   export_driver --config BASE_CONFIG.json --work DIR [--epoch N] [--compression gzip|zstd|none]
 *                 --layer full:DIR | --layer upper:DIR ...   (stack order; the first layer reuses
 *                 the base config's history, later ones get a history entry each)
 *                 [--name REF ...] [--oci-tar FILE] [--docker-tar FILE] [--oci-dir DIR]
 *
 * Layer blobs go to DIR/layerN. Prints the OCI manifest digest on success; on failure prints the
 * error to stderr and exits 1.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/str.h"
#include "base/vec.h"
#include "oci/export.h"
#include "oci/oci.h"

typedef struct args {
    const char *config, *work, *oci_tar, *docker_tar, *oci_dir;
    kiln_vec layers; /* "full:DIR" / "upper:DIR", borrowed from argv */
    kiln_vec names;  /* borrowed from argv */
    int64_t epoch;
    kiln_oci_compression compression;
} args;

static int
parse_compression(kiln_oci_compression *out, const char *s, kiln_error **err)
{
    if (strcmp(s, "gzip") == 0)
        *out = KILN_OCI_COMP_GZIP;
    else if (strcmp(s, "zstd") == 0)
        *out = KILN_OCI_COMP_ZSTD;
    else if (strcmp(s, "none") == 0)
        *out = KILN_OCI_COMP_NONE;
    else
        return kiln_error_set(err, KILN_EINVAL, "bad --compression `%s`", s);
    return 0;
}

static int
parse_args(args *a, int argc, char **argv, kiln_error **err)
{
    static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"work", required_argument, NULL, 'w'},
            {"epoch", required_argument, NULL, 'e'},
            {"compression", required_argument, NULL, 'z'},
            {"layer", required_argument, NULL, 'l'},
            {"name", required_argument, NULL, 'n'},
            {"oci-tar", required_argument, NULL, 'o'},
            {"docker-tar", required_argument, NULL, 'd'},
            {"oci-dir", required_argument, NULL, 'D'},
            {NULL, 0, NULL, 0},
    };
    int c, ret;

    a->compression = KILN_OCI_COMP_GZIP;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'w':
            a->work = optarg;
            break;
        case 'o':
            a->oci_tar = optarg;
            break;
        case 'd':
            a->docker_tar = optarg;
            break;
        case 'D':
            a->oci_dir = optarg;
            break;
        case 'l':
            kiln_vec_push(&a->layers, optarg);
            break;
        case 'n':
            kiln_vec_push(&a->names, optarg);
            break;
        case 'e':
            if ((ret = kiln_parse_i64(optarg, &a->epoch, "--epoch", err)) < 0)
                return ret;
            break;
        case 'z':
            if ((ret = parse_compression(&a->compression, optarg, err)) < 0)
                return ret;
            break;
        default:
            return kiln_error_set(err, KILN_EINVAL, "bad arguments");
        }
    }
    if (!a->config || !a->work || a->layers.len == 0)
        return kiln_error_set(err, KILN_EINVAL, "--config, --work and --layer are required");
    return 0;
}

/* Write layer i (spec "full:DIR" or "upper:DIR") and add it to the image. */
static int
add_layer(kiln_export_image *img, const args *a, size_t i, kiln_error **err)
{
    const char *spec = kiln_vec_get(&a->layers, i);
    bool upper = kiln_str_has_prefix(spec, "upper:");
    cleanup_free char *blob = xasprintf("%s/layer%zu", a->work, i);
    cleanup_free char *created_by = xasprintf("kiln export test layer %zu", i);
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_oci_history h = {.created = img->config.created, .created_by = created_by};
    cleanup_close int fd = -1;
    kiln_oci_descriptor d;
    kiln_layer_result r;
    int ret;

    if (!upper && !kiln_str_has_prefix(spec, "full:"))
        return kiln_error_set(err, KILN_EINVAL, "bad --layer `%s`", spec);
    o.mode = upper ? KILN_LAYER_OVERLAY_UPPER : KILN_LAYER_FULL;
    o.compression = a->compression;
    o.time = KILN_LAYER_TIME_CLAMP;
    o.epoch = a->epoch;
    fd = open(blob, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return kiln_error_errno(err, errno, "create `%s`", blob);
    ret = kiln_layer_write(&r, strchr(spec, ':') + 1, fd, &o, err);
    if (ret < 0)
        return ret;
    kiln_layer_descriptor(&d, &r);
    ret = kiln_export_image_add_layer(img, blob, &d, r.diff_id, i == 0 ? NULL : &h, err);
    kiln_oci_descriptor_dispose(&d);
    return ret;
}

static int
load_config(kiln_export_image *img, const char *path, kiln_error **err)
{
    cleanup_free char *data = NULL;
    size_t len = 0;
    int ret = kiln_fs_read_file(&data, &len, path, KILN_OCI_CONFIG_MAX, err);

    if (ret < 0)
        return ret;
    return kiln_oci_config_parse(&img->config, data, len, err);
}

/* OCI outputs with OCI media types, then the docker tar with Docker's (finalize runs again). */
static int
export_all(kiln_export_image *img, const args *a, kiln_error **err)
{
    cleanup_free const char **names = (const char **)kiln_vec_to_array(&a->names);
    cleanup_close int fd = -1;
    int ret = kiln_export_image_finalize(img, KILN_EXPORT_MEDIA_OCI, err);

    if (ret < 0)
        return ret;
    if (a->oci_dir && (ret = kiln_export_oci_dir(img, names, a->oci_dir, err)) < 0)
        return ret;
    if (a->oci_tar) {
        if ((ret = kiln_export_open_output(&fd, a->oci_tar, err)) < 0 ||
            (ret = kiln_export_oci_tar(img, names, a->epoch, fd, err)) < 0)
            return ret;
        close(steal_fd(&fd));
    }
    if (a->docker_tar) {
        if ((ret = kiln_export_image_finalize(img, KILN_EXPORT_MEDIA_DOCKER, err)) < 0 ||
            (ret = kiln_export_open_output(&fd, a->docker_tar, err)) < 0 ||
            (ret = kiln_export_docker_tar(img, names, a->epoch, fd, err)) < 0)
            return ret;
        close(steal_fd(&fd));
    }
    return 0;
}

static int
run(args *a, int argc, char **argv, kiln_error **err)
{
    kiln_export_image img;
    int ret;

    kiln_export_image_init(&img);
    ret = parse_args(a, argc, argv, err);
    if (ret == 0)
        ret = load_config(&img, a->config, err);
    for (size_t i = 0; ret == 0 && i < a->layers.len; i++)
        ret = add_layer(&img, a, i, err);
    if (ret == 0)
        ret = export_all(&img, a, err);
    if (ret == 0)
        ret = kiln_export_image_finalize(&img, KILN_EXPORT_MEDIA_OCI, err);
    if (ret == 0)
        printf("%s\n", img.manifest_digest);
    kiln_export_image_dispose(&img);
    return ret;
}

int
main(int argc, char **argv)
{
    args a = {0};
    kiln_error *err = NULL;
    int ret = run(&a, argc, argv, &err);

    kiln_vec_dispose(&a.layers, NULL);
    kiln_vec_dispose(&a.names, NULL);
    if (ret < 0) {
        fprintf(stderr, "export_driver: %s\n", err ? err->msg : "failed");
        kiln_error_free(&err);
        return 1;
    }
    return 0;
}
