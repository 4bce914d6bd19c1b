/*
 * main.c: kiln's entry point. Global options come before the command; each command parses its own
 * flags. The command table below is the whole CLI surface.
 */
#include <getopt.h>
#include <signal.h>

#include "base/base.h"
#include "cmd/kiln/commands.h"

static const kiln_cmd commands[] = {
        {"build", kiln_cmd_build, "Build an image from a Dockerfile"},
        {"run", kiln_cmd_run, "Run a command in a new sandbox from an image"},
        {"images", kiln_cmd_images, "List images in the local store"},
        {"tag", kiln_cmd_tag, "Create a name that refers to an image"},
        {"rmi", kiln_cmd_rmi, "Remove image names from the local store"},
        {"inspect", kiln_cmd_inspect, "Show an image's manifest and config"},
        {"push", kiln_cmd_push, "Push an image to a registry"},
        {"pull", kiln_cmd_pull, "Pull an image from a registry"},
        {"save", kiln_cmd_save, "Write images to a docker or OCI tar archive"},
        {"load", kiln_cmd_load, "Load images from a docker or OCI tar archive"},
        {"history", kiln_cmd_history, "Show recorded builds: steps, times, cache hits"},
        {"du", kiln_cmd_du, "Show disk usage of the build cache"},
        {"prune", kiln_cmd_prune, "Remove build cache"},
        {"version", kiln_cmd_version, "Show the kiln version and its libraries"},
        {"debug", kiln_cmd_debug, "Low-level tools: dump and make LLB, run a sandbox"},
        {"dockerfile", kiln_cmd_dockerfile, "Dockerfile tools: parse and dump the AST"},
        {NULL, NULL, NULL},
};

static void
print_table(FILE *out, const kiln_cmd *table, const char *group)
{
    fprintf(out, "Usage: %s COMMAND [OPTIONS]\n\nCommands:\n", group);
    for (const kiln_cmd *c = table; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out, "\nRun '%s COMMAND --help' for more information on a command.\n", group);
}

int
kiln_cmd_dispatch(const kiln_cmd *table, const char *group, int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0 ||
        strcmp(argv[0], "help") == 0) {
        print_table(argc < 1 ? stderr : stdout, table, group);
        return argc < 1 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
    for (const kiln_cmd *c = table; c->name; c++) {
        if (strcmp(c->name, argv[0]) == 0)
            return c->fn(argc, argv);
    }
    fprintf(stderr, "kiln: unknown command '%s' for '%s'\nRun '%s --help' for usage.\n", argv[0],
            group, group);
    return KILN_EXIT_USAGE;
}

void
kiln_cmd_report(const kiln_error *e)
{
    cleanup_free char *msg = NULL;

    if (!e) {
        fprintf(stderr, "kiln: unknown error\n");
        return;
    }
    msg = kiln_error_format(e);
    fprintf(stderr, "kiln: %s\n", msg);
}

int
main(int argc, char **argv)
{
    cleanup_kiln_error kiln_error *err = NULL;
    const char *spec = getenv("KILN_LOG");

    /* A closed pipe (a registry hanging up, `kiln ... | head`) must be an EPIPE error, not a
     * silent death: libcurl runs with CURLOPT_NOSIGNAL because kiln is threaded. */
    signal(SIGPIPE, SIG_IGN);

    if (spec && kiln_log_configure(spec, &err) < 0) {
        kiln_cmd_report(err);
        return KILN_EXIT_USAGE;
    }
    if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0))
        return kiln_cmd_version(1, argv + 1);
    return kiln_cmd_dispatch(commands, "kiln", argc - 1, argv + 1);
}
