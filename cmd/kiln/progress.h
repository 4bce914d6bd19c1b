/*
 * progress.h: the build progress displays of `kiln build`, as buildx draws them.
 *
 *   plain    "#N [stage 2/3] RUN ..." blocks: output lines with their time since the step
 *            started, "#N CACHED", "#N DONE 0.3s", "#N ERROR: ..."
 *   tty      a live view redrawn ten times a second: one line per step with its time, and the
 *            last lines of output of running steps
 *   rawjson  one JSON object per event, one per line (BuildKit's SolveStatus shape)
 *   quiet    nothing
 *
 * Engine events arrive through kiln_progress_engine_event (pass it as the solve's progress
 * callback); the CLI adds steps of its own (loading the Dockerfile, resolving images, exporting)
 * with the step functions. Every function is thread-safe.
 */
#ifndef KILN_CMD_PROGRESS_H
#define KILN_CMD_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include "base/error.h"
#include "kiln/engine.h"

typedef enum kiln_progress_mode {
    KILN_PROGRESS_AUTO = 0, /* tty when the output is a terminal, else plain */
    KILN_PROGRESS_PLAIN,
    KILN_PROGRESS_TTY,
    KILN_PROGRESS_RAWJSON,
    KILN_PROGRESS_QUIET,
} kiln_progress_mode;

typedef struct kiln_progress kiln_progress;

/* "auto", "plain", "tty", "rawjson" or "quiet" -> mode. KILN_EINVAL otherwise. */
int kiln_progress_mode_parse(kiln_progress_mode *out, const char *s, kiln_error **err);

/* A display writing to `out` (borrowed; usually stderr). Starts the redraw thread in tty mode. */
void kiln_progress_new(kiln_progress **out, kiln_progress_mode mode, FILE *stream);
/* Stop the display (final redraw) and free it. NULL-safe. */
void kiln_progress_free(kiln_progress *p);
/* Stop redrawing and print the final state (idempotent); messages printed after it follow the
 * display. */
void kiln_progress_finish(kiln_progress *p);

/* The engine's progress callback (payload = the kiln_progress). */
void kiln_progress_engine_event(const kiln_engine_event *ev, void *payload);

/* A step of the CLI's own ("[internal] load build definition from Dockerfile"): returns its
 * handle (an index). */
int kiln_progress_step(kiln_progress *p, const char *name);
/* A status line of step `id` ("transferring dockerfile: 70B done"). */
void kiln_progress_step_status(kiln_progress *p, int id, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* The step finished: error NULL (done) or its message; cached marks it CACHED. */
void kiln_progress_step_done(kiln_progress *p, int id, const char *error, bool cached);

/* The engine's step `digest`: its name and its last `max` lines of output (joined with '\n',
 * owned by the caller), for the error summary. false when the step is unknown. */
bool kiln_progress_step_tail(char **name_out, char **tail_out, kiln_progress *p, const char *digest,
                             size_t max);
/* The digest of the first step that failed, or NULL (borrowed until kiln_progress_free). */
const char *kiln_progress_failed_digest(kiln_progress *p);
/* Counts for the summary: steps seen, steps taken from the cache. */
void kiln_progress_counts(kiln_progress *p, size_t *total, size_t *cached);

#endif
