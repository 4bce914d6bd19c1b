/*
 * cmd_debug.c: `kiln debug ...`, low-level tools for developers and tests. Each subcommand is
 * implemented in the cmd_debug_<name>.c file of the module it exercises and registered here.
 */
#include "base/base.h"
#include "cmd/kiln/commands.h"

static const kiln_cmd debug_commands[] = {
        {"run", kiln_cmd_debug_run, "Run one command in the sandbox"},
        {"fsck", kiln_cmd_debug_fsck, "Check the consistency of a state dir"},
        {"dump-llb", kiln_cmd_debug_dump_llb, "Print an LLB definition (text or JSON lines)"},
        {"make-llb", kiln_cmd_debug_make_llb, "Write an example LLB definition"},
        {"solve", kiln_cmd_debug_solve, "Solve an LLB definition with the embedded engine"},
        {"gc", kiln_cmd_debug_gc, "Prune the build cache to its budget (what builds start)"},
        {NULL, NULL, NULL},
};

int
kiln_cmd_debug(int argc, char **argv)
{
    return kiln_cmd_dispatch(debug_commands, "kiln debug", argc - 1, argv + 1);
}
