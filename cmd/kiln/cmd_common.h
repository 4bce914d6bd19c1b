/*
 * cmd_common.h: helpers the CLI's command files share: opening the embedded engine on the state
 * dir a command was given (--root DIR, else $KILN_ROOT, else the default), and getopt error
 * messages in one wording.
 */
#ifndef KILN_CMD_COMMON_H
#define KILN_CMD_COMMON_H

#include "kiln/engine.h"

struct kiln_error;

/* The state dir to use: `root` (a --root value, may be NULL), else $KILN_ROOT when set and not
 * empty, else NULL (the engine's default). Borrowed. */
const char *kiln_cmd_root(const char *root);

/* Open the embedded engine on kiln_cmd_root(root). *out owned by the caller (kiln_engine_free).
 * Errors as kiln_engine_open. */
int kiln_cmd_open_engine(kiln_engine **out, const char *root, struct kiln_error **err);
/* The same with a bound on op calls running at once (0 = the number of cores). */
int kiln_cmd_open_engine_par(kiln_engine **out, const char *root, unsigned max_parallelism,
                             struct kiln_error **err);

/* Report a getopt_long failure of command `cmd` on stderr, given getopt's return `c` ('?' or
 * ':'; run with opterr = 0 and an optstring starting with ':'):
 * "kiln <cmd>: unknown flag `--x`" or "kiln <cmd>: flag `-o` needs an argument". */
void kiln_cmd_bad_flag(const char *cmd, int c, int argc, char **argv);

#endif
