/* cmd_image.c: placeholder until the image store commands lands (prints "not implemented"). */
#include <stdio.h>

#include "cmd/kiln/commands.h"

int
kiln_cmd_images(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: images is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}

int
kiln_cmd_tag(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: tag is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}

int
kiln_cmd_rmi(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: rmi is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}

int
kiln_cmd_push(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: push is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}

int
kiln_cmd_pull(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: pull is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}

int
kiln_cmd_save(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: save is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}

int
kiln_cmd_load(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: load is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}

int
kiln_cmd_inspect(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: inspect is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}

int
kiln_cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "kiln: run is not implemented yet\n");
    return KILN_EXIT_FAILURE;
}
