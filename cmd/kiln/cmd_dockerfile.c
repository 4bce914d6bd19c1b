/*
 * cmd_dockerfile.c: `kiln dockerfile ...`: tools over the Dockerfile frontend (parse, dump).
 */
#include "base/base.h"
#include "cmd/kiln/commands.h"

static const kiln_cmd dockerfile_commands[] = {
        {NULL, NULL, NULL},
};

int
kiln_cmd_dockerfile(int argc, char **argv)
{
    return kiln_cmd_dispatch(dockerfile_commands, "kiln dockerfile", argc - 1, argv + 1);
}
