/*
 * ignore.h: .dockerignore files and Docker's path pattern matcher (moby/patternmatcher).
 *
 * A matcher is an ordered list of patterns; "!pattern" is an exception. A path is matched when the
 * last pattern that matches it (or one of its parent directories) is not an exception. Patterns use
 * Go filepath.Match syntax (`*`, `?`, `[a-z]`, `[^a-z]`, `\` escapes) plus `**`, which matches any
 * number of directories. Matching follows patternmatcher's compiled-regexp semantics, including its
 * prefix/suffix shortcuts (`**foo` matches "xfoo"); `[!a]` is a class of '!' and 'a' as in Go.
 *
 * A matcher is immutable after kiln_ignore_new and may be shared between threads.
 */
#ifndef KILN_SOURCE_IGNORE_H
#define KILN_SOURCE_IGNORE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "base/vec.h"

typedef struct kiln_ignore kiln_ignore;

/* Longest line accepted in a .dockerignore (bufio.Scanner's default token limit). */
#define KILN_IGNORE_MAX_LINE (64 * 1024)

/* Parse the text of a .dockerignore as Docker's ignorefile.ReadAll does: a UTF-8 BOM is dropped,
 * lines starting with '#' are comments, surrounding whitespace is trimmed, blank lines are skipped,
 * each pattern is cleaned (Go filepath.Clean) and a leading "/" removed; a leading "!" is kept.
 * Appends the patterns (owned strings) to `out`, a kiln_vec of char * the caller disposes with
 * kiln_strvec_dispose. Errors: KILN_EPARSE for a line longer than KILN_IGNORE_MAX_LINE. */
int kiln_ignore_parse_file(kiln_vec *out, const char *data, size_t len, kiln_error **err);

/* Compile patterns (as patternmatcher.New: each is trimmed and cleaned, empty ones are skipped).
 * *out is owned by the caller (kiln_ignore_free). Errors: KILN_EINVAL naming the pattern and its
 * index for a syntax error (unclosed "[", empty class, trailing "\", a lone "!"). */
int kiln_ignore_new(kiln_ignore **out, const char *const *patterns, size_t n, kiln_error **err);

/* kiln_ignore_parse_file followed by kiln_ignore_new. `what` names the file in errors. */
int kiln_ignore_new_from_file(kiln_ignore **out, const char *data, size_t len, const char *what,
                              kiln_error **err);

/* NULL-safe. */
void kiln_ignore_free(kiln_ignore *m);

/* Number of compiled patterns, and whether any is an exception ("!..."). */
size_t kiln_ignore_count(const kiln_ignore *m);
bool kiln_ignore_has_exclusions(const kiln_ignore *m);

/* The cleaned text of pattern i (without "!"); borrowed from the matcher. */
const char *kiln_ignore_pattern(const kiln_ignore *m, size_t i);
bool kiln_ignore_pattern_is_exclusion(const kiln_ignore *m, size_t i);

/* True when `path` (slash-separated, relative to the context root, cleaned) is matched: the last
 * pattern matching it or one of its parent directories is not an exception
 * (patternmatcher.MatchesOrParentMatches). A NULL matcher matches nothing. */
bool kiln_ignore_matches(const kiln_ignore *m, const char *path);

/* The same decision for a tree walk, reusing the parent directory's per-pattern results
 * (patternmatcher.MatchesUsingParentResults). `parent` is the parent's result array or NULL at the
 * top level; `info` receives this path's per-pattern results (kiln_ignore_count() bools, caller
 * allocated) to pass to its children when it is a directory. */
bool kiln_ignore_matches_walk(const kiln_ignore *m, const char *path, const bool *parent,
                              bool *info);

/* The skip hint for a walker: true when some pattern of the given kind (exceptions when
 * `exclusions`, plain patterns otherwise) could match a path strictly inside directory `dir`. When
 * `dir` is matched and no exception could match below it, the whole directory can be skipped. */
bool kiln_ignore_may_match_below(const kiln_ignore *m, const char *dir, bool exclusions);

#endif
