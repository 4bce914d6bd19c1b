/*
 * cmd_debug.c: `kiln debug ...`, low-level tools for developers and tests. Each subcommand is
 * implemented in the cmd_debug_<name>.c file of the module it exercises and registered here.
 */
#include "base/base.h"
#include "cmd/kiln/commands.h"

static const kiln_cmd debug_commands[] = {
        {NULL, NULL, NULL},
};

int
kiln_cmd_debug(int argc, char **argv)
{
    return kiln_cmd_dispatch(debug_commands, "kiln debug", argc - 1, argv + 1);
}
