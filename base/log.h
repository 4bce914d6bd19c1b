/*
 * log.h: diagnostics for operators and developers (STYLE.md B6). Not build progress: RUN output and
 * vertex events travel as progress data, never through kiln_log.
 *
 * Each .c file may define KILN_LOG_DOMAIN before including this header ("solver", "executor"...).
 * The level is tested before any formatting happens. Verbosity comes from kiln_log_configure() or
 * the KILN_LOG environment variable: "debug", or "warn,solver=trace,cache=debug".
 */
#ifndef KILN_BASE_LOG_H
#define KILN_BASE_LOG_H

#include <stdbool.h>

#include "base/error.h"

#ifndef KILN_LOG_DOMAIN
#define KILN_LOG_DOMAIN "kiln"
#endif

typedef enum kiln_log_level {
    KILN_LOG_ERROR = 0,
    KILN_LOG_WARN = 1,
    KILN_LOG_INFO = 2,
    KILN_LOG_DEBUG = 3,
    KILN_LOG_TRACE = 4,
} kiln_log_level;

/* Where formatted log lines go. `line` has no trailing newline; borrowed for the call. */
typedef void (*kiln_log_handler)(kiln_log_level level, const char *domain, const char *line,
                                 void *payload);

/* The highest level any domain logs at: a cheap first test in the macro. */
extern int kiln_log_max_level;

bool kiln_log_enabled(kiln_log_level level, const char *domain);
void kiln_log_write(kiln_log_level level, const char *domain, const char *fmt, ...)
        KILN_PRINTF(3, 4);

/* Parse a spec like "info" or "warn,solver=trace". Returns KILN_EINVAL on a bad spec. */
int kiln_log_configure(const char *spec, kiln_error **err);

/* Replace the output (default: stderr, "kiln: level: domain: msg"). NULL restores the default. */
void kiln_log_set_handler(kiln_log_handler fn, void *payload);

/* The built-in handler that prints one JSON object per line to stderr. */
void kiln_log_json_handler(kiln_log_level level, const char *domain, const char *line,
                           void *payload);

#define kiln_log(level, ...)                                                                  \
    do {                                                                                      \
        if ((int)(level) <= kiln_log_max_level && kiln_log_enabled((level), KILN_LOG_DOMAIN)) \
            kiln_log_write((level), KILN_LOG_DOMAIN, __VA_ARGS__);                            \
    } while (0)

#define kiln_log_error(...) kiln_log(KILN_LOG_ERROR, __VA_ARGS__)
#define kiln_log_warn(...)  kiln_log(KILN_LOG_WARN, __VA_ARGS__)
#define kiln_log_info(...)  kiln_log(KILN_LOG_INFO, __VA_ARGS__)
#define kiln_log_debug(...) kiln_log(KILN_LOG_DEBUG, __VA_ARGS__)
#define kiln_log_trace(...) kiln_log(KILN_LOG_TRACE, __VA_ARGS__)

#endif
