/*
 * cmd_common.c: see cmd_common.h.
 */
#include <getopt.h>

#include "base/path.h"
#include "cmd/kiln/cmd_common.h"

#include "base/base.h"

const char *
kiln_cmd_root(const char *root)
{
    const char *env = getenv("KILN_ROOT");

    if (root)
        return root;
    return env && *env ? env : NULL;
}

int
kiln_cmd_open_engine(kiln_engine **out, const char *root, kiln_error **err)
{
    return kiln_cmd_open_engine_par(out, root, 0, err);
}

int
kiln_cmd_open_engine_par(kiln_engine **out, const char *root, unsigned max_parallelism,
                         kiln_error **err)
{
    kiln_engine_opts eo = KILN_ENGINE_OPTS_INIT;
    cleanup_free char *abs = NULL;
    char cwd[4096];

    eo.root = kiln_cmd_root(root);
    /* the sandbox mounts snapshot dirs by path: they must not depend on the cwd */
    if (eo.root && !kiln_path_is_abs(eo.root)) {
        if (!getcwd(cwd, sizeof(cwd)))
            return kiln_error_errno(err, errno, "getcwd");
        abs = kiln_path_join(cwd, eo.root);
        eo.root = abs;
    }
    eo.max_parallelism = max_parallelism;
    return kiln_engine_open(out, &eo, err);
}

void
kiln_cmd_bad_flag(const char *cmd, int c, int argc, char **argv)
{
    const char *arg = optind >= 1 && optind - 1 < argc ? argv[optind - 1] : "?";

    if (c == ':')
        fprintf(stderr, "kiln %s: flag `%s` needs an argument\n", cmd, arg);
    else if (optopt && optopt < 128 && arg[0] == '-' && arg[1] != '-')
        fprintf(stderr, "kiln %s: unknown flag `-%c`\n", cmd, optopt);
    else
        fprintf(stderr, "kiln %s: unknown flag `%s`\n", cmd, arg);
}
