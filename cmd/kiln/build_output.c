/*
 * build_output.c: `kiln build --output` values, as buildx spells them, and the exporters they
 * select: the local image store (and a registry push), OCI and docker archives, an OCI layout
 * directory, a plain directory and a plain tar.
 */
#include <fcntl.h>
#include <unistd.h>

#include "base/str.h"
#include "cmd/kiln/build.h"

#include "base/base.h"

void
build_output_dispose(build_output *o)
{
    free(o->dest);
    kiln_vec_dispose(&o->names, free);
    memset(o, 0, sizeof(*o));
}

void
build_export_info_dispose(build_export_info *i)
{
    free(i->image_digest);
    free(i->config_digest);
    kiln_vec_dispose(&i->names, free);
    memset(i, 0, sizeof(*i));
}

static int
parse_bool(bool *out, const char *key, const char *v, kiln_error **err)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "") == 0)
        *out = true;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *out = false;
    else
        return kiln_error_set(err, KILN_EINVAL, "invalid value \"%s\" for %s: want true or false",
                              v, key);
    return 0;
}

static int
parse_type(build_output_type *out, const char *v, kiln_error **err)
{
    static const struct {
        const char *name;
        build_output_type type;
    } types[] = {{"image", BUILD_OUTPUT_IMAGE}, {"registry", BUILD_OUTPUT_IMAGE},
                 {"oci", BUILD_OUTPUT_OCI},     {"docker", BUILD_OUTPUT_DOCKER},
                 {"local", BUILD_OUTPUT_LOCAL}, {"tar", BUILD_OUTPUT_TAR}};

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(v, types[i].name) == 0) {
            *out = types[i].type;
            return 0;
        }
    }
    return kiln_error_set(err, KILN_EINVAL,
                          "unknown output type \"%s\": want image, registry, oci, docker, local or "
                          "tar",
                          v);
}

static int
parse_compression(build_output *o, const char *v, kiln_error **err)
{
    if (strcmp(v, "gzip") == 0)
        o->compression = KILN_ENGINE_COMPRESSION_GZIP;
    else if (strcmp(v, "zstd") == 0)
        o->compression = KILN_ENGINE_COMPRESSION_ZSTD;
    else if (strcmp(v, "uncompressed") == 0)
        o->compression = KILN_ENGINE_COMPRESSION_UNCOMPRESSED;
    else
        return kiln_error_set(err, KILN_EINVAL,
                              "unknown compression \"%s\": want gzip, zstd or uncompressed", v);
    return 0;
}

/* One key=value field of an --output value. */
static int
output_field(build_output *o, const char *key, const char *v, bool *registry, kiln_error **err)
{
    int64_t n;

    if (strcmp(key, "type") == 0) {
        *registry = strcmp(v, "registry") == 0;
        return parse_type(&o->type, v, err);
    }
    if (strcmp(key, "dest") == 0) {
        free(o->dest);
        o->dest = xstrdup(v);
        return 0;
    }
    if (strcmp(key, "name") == 0) {
        /* buildx: name=a,b is not possible in CSV, but "name=a,name=b" and quoted lists are */
        char *copy = xstrdup(v), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            kiln_vec_push(&o->names, xstrdup(t));
        free(copy);
        return 0;
    }
    if (strcmp(key, "push") == 0)
        return parse_bool(&o->push, key, v, err);
    if (strcmp(key, "registry.insecure") == 0)
        return parse_bool(&o->insecure, key, v, err);
    if (strcmp(key, "tar") == 0)
        return parse_bool(&o->tar, key, v, err);
    if (strcmp(key, "compression") == 0)
        return parse_compression(o, v, err);
    if (strcmp(key, "compression-level") == 0) {
        if (kiln_parse_i64(v, &n, "compression-level", err) < 0)
            return KILN_EINVAL;
        if (n < 0 || n > 22)
            return kiln_error_set(err, KILN_EINVAL, "compression-level %s out of range", v);
        o->compression_level = (int)n;
        return 0;
    }
    if (strcmp(key, "force-compression") == 0)
        return parse_bool(&o->force_compression, key, v, err);
    if (strcmp(key, "oci-mediatypes") == 0) {
        bool b = false;
        int ret = parse_bool(&b, key, v, err);
        o->oci_mediatypes = b;
        return ret;
    }
    if (strcmp(key, "rewrite-timestamp") == 0) {
        bool b = false;
        int ret = parse_bool(&b, key, v, err);
        o->rewrite_timestamp = b;
        return ret;
    }
    /* accepted for compatibility, no effect here */
    if (strcmp(key, "unpack") == 0 || strcmp(key, "store") == 0 ||
        strcmp(key, "name-canonical") == 0 || strcmp(key, "dangling-name-prefix") == 0)
        return 0;
    return kiln_error_set(err, KILN_EINVAL, "unknown output option \"%s\"", key);
}

int
build_output_parse(build_output *o, const char *value, kiln_error **err)
{
    cleanup_free char *copy = NULL;
    char *save = NULL;
    bool registry = false, has_type = false;
    int ret = 0;

    memset(o, 0, sizeof(*o));
    kiln_vec_init(&o->names);
    o->tar = true;
    o->oci_mediatypes = -1;
    o->rewrite_timestamp = -1;
    /* buildx shorthands: "-" = a tar of the files on stdout, "DIR" = type=local,dest=DIR */
    if (strcmp(value, "-") == 0 || !strchr(value, '=')) {
        o->type = strcmp(value, "-") == 0 ? BUILD_OUTPUT_TAR : BUILD_OUTPUT_LOCAL;
        o->dest = xstrdup(value);
        return 0;
    }
    copy = xstrdup(value);
    for (char *f = strtok_r(copy, ",", &save); f && ret == 0; f = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(f, '=');
        const char *v = eq ? eq + 1 : "";
        if (eq)
            *eq = 0;
        has_type |= strcmp(f, "type") == 0;
        ret = output_field(o, f, v, &registry, err);
    }
    if (ret == 0 && !has_type)
        ret = kiln_error_set(err, KILN_EINVAL, "output \"%s\" has no type= field", value);
    if (ret == 0 && registry)
        o->push = true;
    if (ret == 0 && (o->type == BUILD_OUTPUT_LOCAL || o->type == BUILD_OUTPUT_TAR) && !o->dest)
        ret = kiln_error_set(err, KILN_EINVAL, "output type=%s needs dest=",
                             o->type == BUILD_OUTPUT_LOCAL ? "local" : "tar");
    if (ret == 0 && o->type == BUILD_OUTPUT_LOCAL && strcmp(o->dest, "-") == 0)
        ret = kiln_error_set(err, KILN_EINVAL, "output type=local cannot write to stdout");
    if (ret == 0 && (o->type == BUILD_OUTPUT_OCI || o->type == BUILD_OUTPUT_DOCKER) && !o->dest &&
        isatty(STDOUT_FILENO))
        ret = kiln_error_set(err, KILN_EINVAL,
                             "output type=%s needs dest= (or redirect stdout to a file)",
                             o->type == BUILD_OUTPUT_OCI ? "oci" : "docker");
    if (ret == 0 && o->type == BUILD_OUTPUT_OCI && !o->tar && (!o->dest || !strcmp(o->dest, "-")))
        ret = kiln_error_set(err, KILN_EINVAL, "output type=oci,tar=false needs a dest= directory");
    if (ret == 0 && o->push && o->names.len == 0)
        ret = kiln_error_set(err, KILN_EINVAL, "push=true needs an image name (name= or -t)");
    if (ret < 0)
        build_output_dispose(o);
    return ret;
}

/* ---- exporting ------------------------------------------------------------------------------ */

static int
open_output(int *fd, const char *dest, kiln_error **err)
{
    if (strcmp(dest, "-") == 0) {
        *fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        if (*fd < 0)
            return kiln_error_errno(err, errno, "dup stdout");
        return 0;
    }
    *fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd < 0)
        return kiln_error_errno(err, errno, "open output %s", dest);
    return 0;
}

static int
export_image(build_export_info *info, kiln_engine *e, const kiln_engine_result *r,
             const build_output *o, const char *config_json, int64_t epoch, kiln_progress *p,
             kiln_error **err)
{
    kiln_engine_image_opts io = KILN_ENGINE_IMAGE_OPTS_INIT;
    kiln_engine_image *img = NULL;
    const char *const *names = NULL;
    cleanup_free void **arr = NULL;
    int step, ret;

    io.config_json = config_json;
    io.compression = o->compression;
    io.compression_level = o->compression_level;
    io.force_compression = o->force_compression;
    io.docker_media_types =
            o->oci_mediatypes == -1 ? o->type == BUILD_OUTPUT_DOCKER : !o->oci_mediatypes;
    io.epoch = epoch;
    io.rewrite_timestamp = epoch >= 0 && o->rewrite_timestamp != 0;
    io.progress = kiln_progress_engine_event;
    io.progress_payload = p;
    step = kiln_progress_step(p, o->type == BUILD_OUTPUT_IMAGE ? "exporting to image"
                                 : o->type == BUILD_OUTPUT_OCI
                                         ? "exporting to oci image format"
                                         : "exporting to docker image format");
    kiln_progress_step_status(p, step, "exporting layers");
    ret = kiln_engine_image_export(&img, e, r, &io, err);
    if (ret == 0) {
        kiln_progress_step_status(p, step, "exporting manifest %s done",
                                  kiln_engine_image_digest(img));
        kiln_progress_step_status(p, step, "exporting config %s done",
                                  kiln_engine_image_config_digest(img));
        info->image_digest = xstrdup(kiln_engine_image_digest(img));
        info->config_digest = xstrdup(kiln_engine_image_config_digest(img));
        arr = kiln_vec_to_array(&o->names);
        names = (const char *const *)arr;
    }
    if (ret == 0 && o->type == BUILD_OUTPUT_IMAGE) {
        for (size_t i = 0; i < o->names.len && ret == 0; i++) {
            const char *n = kiln_vec_get(&o->names, i);
            kiln_progress_step_status(p, step, "naming to %s", n);
            ret = kiln_engine_image_tag(e, img, n, err);
            if (ret == 0)
                kiln_vec_push(&info->names, xstrdup(n));
        }
    } else if (ret == 0 && o->type == BUILD_OUTPUT_OCI && !o->tar) {
        kiln_progress_step_status(p, step, "writing layout %s", o->dest);
        ret = kiln_engine_image_write_layout(e, img, names, o->dest, err);
    } else if (ret == 0) {
        int fd = -1;
        kiln_progress_step_status(p, step, "sending tarball");
        ret = open_output(&fd, o->dest ? o->dest : "-", err);
        if (ret == 0)
            ret = kiln_engine_image_write_archive(e, img,
                                                  o->type == BUILD_OUTPUT_DOCKER
                                                          ? KILN_ENGINE_ARCHIVE_DOCKER
                                                          : KILN_ENGINE_ARCHIVE_OCI,
                                                  names, fd, err);
        if (fd >= 0 && close(fd) < 0 && ret == 0)
            ret = kiln_error_errno(err, errno, "close %s", o->dest ? o->dest : "stdout");
    }
    for (size_t i = 0; ret == 0 && o->push && i < o->names.len; i++) {
        const char *n = kiln_vec_get(&o->names, i);
        kiln_progress_step_status(p, step, "pushing %s", n);
        ret = kiln_engine_image_push(e, img, n, o->insecure, err);
    }
    kiln_progress_step_done(p, step, ret < 0 && *err ? (*err)->msg : NULL, false);
    kiln_engine_image_free(img);
    return ret;
}

int
build_export(build_export_info *info, kiln_engine *e, const kiln_engine_result *r,
             const build_output *o, const char *config_json, int64_t epoch, kiln_progress *p,
             kiln_error **err)
{
    int step, ret, fd = -1;

    if (o->type != BUILD_OUTPUT_LOCAL && o->type != BUILD_OUTPUT_TAR)
        return export_image(info, e, r, o, config_json, epoch, p, err);
    step = kiln_progress_step(p, "exporting to client");
    if (o->type == BUILD_OUTPUT_LOCAL) {
        kiln_progress_step_status(p, step, "copying files to %s", o->dest);
        ret = kiln_engine_result_export_dir(e, r, o->dest, err);
    } else {
        kiln_progress_step_status(p, step, "sending tarball");
        ret = open_output(&fd, o->dest, err);
        if (ret == 0)
            ret = kiln_engine_result_export_tar(e, r, fd, o->rewrite_timestamp != 0 ? epoch : -1,
                                                err);
        if (fd >= 0 && close(fd) < 0 && ret == 0)
            ret = kiln_error_errno(err, errno, "close %s", o->dest);
    }
    kiln_progress_step_done(p, step, ret < 0 && *err ? (*err)->msg : NULL, false);
    return ret;
}
