/*
 * cmd_debug_llb.c: `kiln debug dump-llb [FILE|-] [--json]` prints a Definition (validated by the
 * LLB loader) per vertex; `kiln debug make-llb [--example NAME] [-o FILE]` writes one of the
 * builder examples. Both are what the LLB conformance test drives.
 */
#include <getopt.h>

#include "base/buf.h"
#include "base/fs.h"
#include "cmd/kiln/commands.h"
#include "llb/llb.h"

#include "base/base.h"

static void
dump_usage(FILE *out)
{
    fprintf(out, "Usage: kiln debug dump-llb [FILE|-] [--json]\n\n"
                 "Print an LLB Definition (from FILE or stdin) vertex by vertex.\n\n"
                 "  --json   one JSON object per line: {\"Op\", \"Digest\", \"OpMetadata\"}\n");
}

static int
read_input(kiln_buf *out, const char *path, kiln_error **err)
{
    cleanup_free char *data = NULL;
    size_t len = 0;
    int ret;

    if (!path || strcmp(path, "-") == 0)
        return kiln_fd_read_all(STDIN_FILENO, out, KILN_LLB_MAX_DEFINITION, err);
    ret = kiln_fs_read_file(&data, &len, path, KILN_LLB_MAX_DEFINITION, err);
    if (ret < 0)
        return ret;
    return kiln_buf_put(out, data, len, err);
}

/* `kiln debug dump-llb`: exit 0, 1 on a bad or unreadable Definition, 2 on bad usage. */
int
kiln_cmd_debug_dump_llb(int argc, char **argv)
{
    static const struct option longopts[] = {
            {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    cleanup_kiln_error kiln_error *err = NULL;
    kiln_buf in = KILN_BUF_INIT;
    kiln_llb_graph *g = NULL;
    bool json = false;
    int c, ret;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'j') {
            json = true;
        } else if (c == 'h') {
            dump_usage(stdout);
            return KILN_EXIT_OK;
        } else {
            dump_usage(stderr);
            return KILN_EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        dump_usage(stderr);
        return KILN_EXIT_USAGE;
    }
    ret = read_input(&in, optind < argc ? argv[optind] : NULL, &err);
    if (ret == 0)
        ret = kiln_llb_load(&g, in.ptr ? in.ptr : "", in.len, &err);
    if (ret == 0)
        ret = kiln_llb_dump(stdout, g, json, &err);
    kiln_llb_graph_free(g);
    kiln_buf_dispose(&in);
    if (ret < 0) {
        kiln_cmd_report(err);
        return KILN_EXIT_FAILURE;
    }
    return KILN_EXIT_OK;
}

static void
make_usage(FILE *out)
{
    const char *const *names = kiln_llb_example_names();

    fprintf(out, "Usage: kiln debug make-llb [--example NAME] [--base SOURCE] [-o FILE]\n\n"
                 "Write an example LLB Definition (default: hello) to FILE or stdout.\n"
                 "--base replaces the example's images with a source identifier, e.g.\n"
                 "oci-layout:///path/to/layout:latest, to build it offline.\n\n"
                 "Examples:");
    for (size_t i = 0; names[i]; i++)
        fprintf(out, " %s", names[i]);
    fputc('\n', out);
}

/* `kiln debug make-llb`: exit 0, 1 on a write error, 2 on bad usage or an unknown example. */
int
kiln_cmd_debug_make_llb(int argc, char **argv)
{
    static const struct option longopts[] = {{"example", required_argument, NULL, 'e'},
                                             {"base", required_argument, NULL, 'b'},
                                             {"output", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    cleanup_kiln_error kiln_error *err = NULL;
    const char *name = "hello", *output = NULL, *base = NULL;
    kiln_buf def = KILN_BUF_INIT;
    int c, ret;

    optind = 1;
    while ((c = getopt_long(argc, argv, "e:b:o:h", longopts, NULL)) != -1) {
        if (c == 'e') {
            name = optarg;
        } else if (c == 'b') {
            base = optarg;
        } else if (c == 'o') {
            output = optarg;
        } else if (c == 'h') {
            make_usage(stdout);
            return KILN_EXIT_OK;
        } else {
            make_usage(stderr);
            return KILN_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        make_usage(stderr);
        return KILN_EXIT_USAGE;
    }
    ret = kiln_llb_example_on(&def, name, base, &err);
    if (ret == 0 && output && strcmp(output, "-") != 0)
        ret = kiln_fs_write_atomic(output, def.ptr, def.len, 0644, &err);
    else if (ret == 0)
        ret = kiln_fd_write_all(STDOUT_FILENO, def.ptr, def.len, &err);
    kiln_buf_dispose(&def);
    if (ret < 0) {
        kiln_cmd_report(err);
        return ret == KILN_ENOTFOUND ? KILN_EXIT_USAGE : KILN_EXIT_FAILURE;
    }
    return KILN_EXIT_OK;
}
