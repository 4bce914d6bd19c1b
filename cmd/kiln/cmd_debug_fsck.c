/*
 * cmd_debug_fsck.c: `kiln debug fsck [--root DIR] [--deep]`: open a state dir (which sweeps crash
 * debris when no other process uses it) and check its consistency with kiln_cache_fsck(). Each
 * problem is printed on its own line to stdout; the exit status is 1 when there is any.
 */
#include <getopt.h>

#include "base/base.h"
#include "cache/cache.h"
#include "cmd/kiln/commands.h"

static void
fsck_usage(FILE *f)
{
    fprintf(f,
            "Usage: kiln debug fsck [--root DIR] [--deep]\n"
            "Check the consistency of a kiln state dir.\n"
            "  --root DIR  state dir (default: %s)\n"
            "  --deep      also re-hash every blob\n",
            geteuid() == 0 ? "/var/lib/kiln" : "$XDG_DATA_HOME/kiln");
}

int
kiln_cmd_debug_fsck(int argc, char **argv)
{
    static const struct option longopts[] = {
            {"root", required_argument, NULL, 'r'},
            {"deep", no_argument, NULL, 'd'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
    };
    cleanup_kiln_error kiln_error *err = NULL;
    cleanup_free char *root = NULL;
    kiln_cache_fsck_report rep = {0};
    kiln_cache *c = NULL;
    bool deep = false;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "r:dh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            free(root);
            root = xstrdup(optarg);
            break;
        case 'd':
            deep = true;
            break;
        case 'h':
            fsck_usage(stdout);
            return KILN_EXIT_OK;
        default:
            fsck_usage(stderr);
            return KILN_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "kiln: debug fsck: unexpected argument '%s'\n", argv[optind]);
        return KILN_EXIT_USAGE;
    }
    if (root == NULL)
        root = kiln_cache_default_root();
    if (kiln_cache_open(&c, root, NULL, &err) < 0 || kiln_cache_fsck(&rep, c, deep, &err) < 0) {
        kiln_cache_free(c);
        kiln_cmd_report(err);
        return KILN_EXIT_FAILURE;
    }
    for (size_t i = 0; i < rep.len; i++)
        printf("%s\n", rep.problems[i]);
    if (rep.len == 0)
        printf("%s: ok\n", root);
    else
        printf("%s: %zu problem%s\n", root, rep.len, rep.len == 1 ? "" : "s");
    opt = rep.len ? KILN_EXIT_FAILURE : KILN_EXIT_OK;
    kiln_cache_fsck_report_dispose(&rep);
    kiln_cache_free(c);
    return opt;
}
