/*
 * cmd_debug_gc.c: `kiln debug gc [--root DIR]`: the automatic garbage collection a build starts
 * when it ends (kiln_engine_gc: prune the least recently used cache down to the store's budget),
 * run in a process of its own so that the build's caller does not wait for it. Also usable by
 * hand or from cron. Exit 0 always unless the store cannot be opened (GC errors are logged).
 */
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <unistd.h>

#include "cmd/kiln/cmd_common.h"
#include "cmd/kiln/commands.h"
#include "kiln/engine.h"

#include "base/base.h"

extern char **environ;

int
kiln_cmd_debug_gc(int argc, char **argv)
{
    static const struct option longopts[] = {{"root", required_argument, NULL, 'r'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    cleanup_kiln_error kiln_error *err = NULL;
    const char *root = NULL;
    kiln_engine *e = NULL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'r') {
            root = optarg;
        } else {
            fprintf(c == 'h' ? stdout : stderr, "Usage: kiln debug gc [--root DIR]\n");
            return c == 'h' ? KILN_EXIT_OK : KILN_EXIT_USAGE;
        }
    }
    if (kiln_cmd_open_engine(&e, root, &err) < 0) {
        kiln_cmd_report(err);
        return KILN_EXIT_FAILURE;
    }
    kiln_engine_gc(e);
    kiln_engine_free(e);
    return KILN_EXIT_OK;
}

void
kiln_cmd_spawn_gc(const char *root)
{
    const char *argv[] = {"kiln", "debug", "gc", root ? "--root" : NULL, root, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    pid_t pid;

    /* detached from the terminal and the caller's process group; its output is discarded */
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    if (posix_spawn(&pid, "/proc/self/exe", &fa, &attr, (char *const *)argv, environ) != 0)
        kiln_log_warn("could not start the background gc");
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
}
