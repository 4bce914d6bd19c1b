/* cmd_build.c: placeholder until the build command lands (prints "not implemented"). */
#include <stdio.h>

#include "cmd/kiln/commands.h"

int
kiln_cmd_build(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: build is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}

int
kiln_cmd_history(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: history is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}
