/*
 * cmd_dockerfile.c: `kiln dockerfile ...`: tools over the Dockerfile frontend (parse, dump).
 */
#include "base/base.h"
#include "cmd/kiln/commands.h"

static const kiln_cmd dockerfile_commands[] = {
        {"parse", kiln_cmd_dockerfile_parse, "Parse a Dockerfile and print its AST"},
        {"llb", kiln_cmd_dockerfile_llb, "Compile a Dockerfile and print its config and LLB"},
        {NULL, NULL, NULL},
};

int
kiln_cmd_dockerfile(int argc, char **argv)
{
    return kiln_cmd_dispatch(dockerfile_commands, "kiln dockerfile", argc - 1, argv + 1);
}
