/*
 * commands.h: the CLI's command tables. Each family lives in cmd_<family>.c and exposes one entry
 * point; a family with subcommands (debug, dockerfile) dispatches through its own table with
 * kiln_cmd_dispatch(). Exit codes: 0 success, 1 failure, 2 usage error.
 */
#ifndef KILN_CMD_COMMANDS_H
#define KILN_CMD_COMMANDS_H

typedef int (*kiln_cmd_fn)(int argc, char **argv);

typedef struct kiln_cmd {
    const char *name;
    kiln_cmd_fn fn;
    const char *summary;
} kiln_cmd;

#define KILN_EXIT_OK      0
#define KILN_EXIT_FAILURE 1
#define KILN_EXIT_USAGE   2

/* Run table entry argv[0] with (argc, argv); prints the table as help for -h/--help/no argument.
 * `group` names the family in messages ("kiln debug"). */
int kiln_cmd_dispatch(const kiln_cmd *table, const char *group, int argc, char **argv);

/* Print an error to stderr as "kiln: <msg>" (the CLI is the layer that reports errors). */
struct kiln_error;
void kiln_cmd_report(const struct kiln_error *e);

int kiln_cmd_version(int argc, char **argv);
int kiln_cmd_debug(int argc, char **argv);
int kiln_cmd_dockerfile(int argc, char **argv);
int kiln_cmd_dockerfile_parse(int argc, char **argv);
int kiln_cmd_dockerfile_llb(int argc, char **argv);
int kiln_cmd_debug_run(int argc, char **argv);
int kiln_cmd_debug_dump_llb(int argc, char **argv);
int kiln_cmd_debug_make_llb(int argc, char **argv);
int kiln_cmd_debug_fsck(int argc, char **argv);
int kiln_cmd_debug_solve(int argc, char **argv);
int kiln_cmd_debug_gc(int argc, char **argv);
/* Start `kiln debug gc` in a detached process (the automatic GC after a build). root may be
 * NULL (the default state dir, or $KILN_ROOT). */
void kiln_cmd_spawn_gc(const char *root);
/* cmd_build.c */
int kiln_cmd_build(int argc, char **argv);
int kiln_cmd_history(int argc, char **argv);
/* cmd_image.c: the local image store */
int kiln_cmd_images(int argc, char **argv);
int kiln_cmd_tag(int argc, char **argv);
int kiln_cmd_rmi(int argc, char **argv);
int kiln_cmd_push(int argc, char **argv);
int kiln_cmd_pull(int argc, char **argv);
int kiln_cmd_save(int argc, char **argv);
int kiln_cmd_load(int argc, char **argv);
int kiln_cmd_inspect(int argc, char **argv);
int kiln_cmd_run(int argc, char **argv);
/* cmd_du.c: disk usage and prune */
int kiln_cmd_du(int argc, char **argv);
int kiln_cmd_prune(int argc, char **argv);

#endif
