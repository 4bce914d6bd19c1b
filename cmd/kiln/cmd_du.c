/* cmd_du.c: placeholder until the du/prune commands lands (prints "not implemented"). */
#include <stdio.h>

#include "cmd/kiln/commands.h"

int
kiln_cmd_du(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: du is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}

int
kiln_cmd_prune(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: prune is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}
