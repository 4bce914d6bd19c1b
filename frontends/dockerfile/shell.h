/*
 * shell.h: BuildKit's shell lexer (frontend/dockerfile/shell): quote removal, escapes and variable
 * expansion in Dockerfile words, without running a shell.
 *
 * Supported: 'single' and "double" quotes, the escape token (`\` or backtick), $V and ${V}, and the
 * modifiers ${V:-w} ${V-w} ${V:+w} ${V+w} ${V:?msg} ${V?msg} ${V#p} ${V##p} ${V%p} ${V%%p}
 * ${V/p/r} ${V//p/r}, where p is a glob (`*`, `?`, `[...]`, escape token for a literal).
 * Positional ($1) and special ($@ $# ...) parameters expand to nothing unless the environment has
 * them. Nesting of ${...} is limited to KILN_SHLEX_MAX_DEPTH levels.
 */
#ifndef KILN_FRONTENDS_DOCKERFILE_SHELL_H
#define KILN_FRONTENDS_DOCKERFILE_SHELL_H

#include <stdbool.h>

#include "base/error.h"
#include "base/map.h"
#include "base/vec.h"

#define KILN_SHLEX_MAX_DEPTH 128

typedef struct kiln_shlex {
    char escape_token;        /* '\\' (default) or '`' */
    bool raw_quotes;          /* keep quote characters in the output */
    bool raw_escapes;         /* keep escape tokens in the output */
    bool skip_process_quotes; /* treat quotes as ordinary characters */
    bool skip_unset_env;      /* leave references to unset variables as written */
} kiln_shlex;

/* A lexer with all options off. */
void kiln_shlex_init(kiln_shlex *lex, char escape_token);

/* Environment lookup: return true and set *value (borrowed until the call returns) when `name` is
 * set. Keys are case-sensitive (Unix semantics). */
typedef bool (*kiln_shlex_lookup_fn)(const char *name, const char **value, void *payload);

typedef struct kiln_shlex_result {
    char *word;       /* the expanded word (ProcessWord); owned */
    kiln_vec words;   /* char *: the word split on unquoted whitespace (ProcessWords); owned */
    kiln_vec matched; /* char *: variables referenced and set, sorted, unique; owned */
    kiln_vec unset;   /* char *: variables referenced but not set, sorted, unique; owned */
} kiln_shlex_result;

/**
 * Expand `word`, looking variables up through `lookup`.
 * @param out filled on success (dispose with kiln_shlex_result_dispose); untouched on failure
 * @return 0, or KILN_EPARSE for syntax errors (unterminated quote, missing '}', bad substitution,
 *         unsupported modifier) and KILN_EINVAL for ${V?msg} / ${V:?msg} on an unset/empty V;
 *         messages read "failed to process \"<word>\": <reason>"
 */
int kiln_shlex_process(kiln_shlex_result *out, const kiln_shlex *lex, const char *word,
                       kiln_shlex_lookup_fn lookup, void *payload, kiln_error **err);

/* Free the contents of a result (the struct itself is the caller's). */
void kiln_shlex_result_dispose(kiln_shlex_result *r);

/* Lookup function over a kiln_map of char * values (payload = the const kiln_map *). */
bool kiln_shlex_map_lookup(const char *name, const char **value, void *payload);

/* BuildKit's BuildEnvs: fill `out` (initialised here) from "KEY=VALUE" strings; a string without
 * '=' sets KEY to ""; later entries win. Values are owned by the map: dispose with
 * kiln_map_dispose(out, free). */
void kiln_shlex_env_build(kiln_map *out, const char *const *kv, size_t n);

/* ProcessWord with a map env: *out owned by the caller. Errors as kiln_shlex_process. */
int kiln_shlex_process_word(char **out, const kiln_shlex *lex, const char *word,
                            const kiln_map *env, kiln_error **err);

/* ProcessWords with a map env: `out` (initialised here) receives owned strings. */
int kiln_shlex_process_words(kiln_vec *out, const kiln_shlex *lex, const char *word,
                             const kiln_map *env, kiln_error **err);

/**
 * Glob match used by the ${V#p} family: `*`, `?`, `[...]` (with `!` or `^` negation and ranges),
 * `escape` makes the next character literal. Matching is by rune. Exposed for tests.
 */
bool kiln_shlex__glob_match(const char *pat, size_t plen, const char *s, size_t slen, char escape);

#endif
