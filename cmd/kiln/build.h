/*
 * build.h: what the files of `kiln build` share (cmd_build.c parses the command line and runs
 * the build, build_output.c parses --output values and exports the result, build_report.c
 * prints failures and warnings).
 */
#ifndef KILN_CMD_BUILD_H
#define KILN_CMD_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/vec.h"
#include "cmd/kiln/progress.h"
#include "kiln/engine.h"

typedef enum build_output_type {
    BUILD_OUTPUT_IMAGE = 0, /* the local image store (push=true: also a registry) */
    BUILD_OUTPUT_OCI,       /* OCI layout tar (tar=false: a directory) */
    BUILD_OUTPUT_DOCKER,    /* docker load tar */
    BUILD_OUTPUT_LOCAL,     /* the files into a directory */
    BUILD_OUTPUT_TAR,       /* the files as a tar */
} build_output_type;

typedef struct build_output {
    build_output_type type;
    char *dest;     /* file, directory or "-"; NULL when unset */
    kiln_vec names; /* char *: image names */
    bool push, insecure;
    bool tar; /* oci: a tar (default) or a layout directory */
    kiln_engine_compression compression;
    int compression_level;
    bool force_compression;
    int oci_mediatypes;    /* -1 = the type's default */
    int rewrite_timestamp; /* -1 = default: on when SOURCE_DATE_EPOCH is set (see README) */
} build_output;

/* Parse one --output value ("type=local,dest=out", "out", "-"). KILN_EINVAL with the reason. */
int build_output_parse(build_output *out, const char *value, kiln_error **err);
void build_output_dispose(build_output *o);

/* What the exporters report back for --iidfile and --metadata-file. */
typedef struct build_export_info {
    char *image_digest;  /* manifest digest, when an image was made */
    char *config_digest; /* image id */
    kiln_vec names;      /* char *: names stored or pushed */
} build_export_info;

void build_export_info_dispose(build_export_info *i);

/* Export result r as `o` says, with the frontend's image config and SOURCE_DATE_EPOCH (-1 =
 * unset); progress steps are shown on p. */
int build_export(build_export_info *info, kiln_engine *e, const kiln_engine_result *r,
                 const build_output *o, const char *config_json, int64_t epoch, kiln_progress *p,
                 kiln_error **err);

/* After a failed solve: the failing step's name and last output lines, then the Dockerfile lines
 * of the instruction (from the LLB Definition's source locations), as buildx prints them. */
void build_report_failure(FILE *out, kiln_progress *p, const void *def, size_t def_len);

#endif
