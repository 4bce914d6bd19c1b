/*
 * parser.h: the Dockerfile parser (BuildKit's frontend/dockerfile/parser), from bytes to an AST of
 * instructions, and its S-expression dump.
 *
 * The AST follows BuildKit's Node shape so that dumps compare byte for byte with BuildKit's corpus:
 * the root has one child per instruction; an instruction node holds the lowercased keyword in
 * `value`, its `--flags`, and its arguments as the `next` chain. ONBUILD's argument is a node whose
 * single child is the nested instruction. Heredoc bodies hang off the instruction that opened them.
 * Parsing does no variable expansion and no per-instruction validation (instructions come later).
 */
#ifndef KILN_FRONTENDS_DOCKERFILE_PARSER_H
#define KILN_FRONTENDS_DOCKERFILE_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/vec.h"

/* Longest physical line accepted, as BuildKit's bufio.Scanner limit. */
#define KILN_DF_MAX_LINE 65535

typedef struct kiln_df_heredoc {
    char *name;    /* terminator word with quotes removed */
    uint64_t fd;   /* file descriptor prefix (`3<<EOF`), 0 when absent */
    bool expand;   /* false when any part of the word was quoted */
    bool chomp;    /* `<<-`: leading tabs stripped from the terminator (and content later) */
    char *content; /* body with its original line endings */
} kiln_df_heredoc;

typedef struct kiln_df_node kiln_df_node;
struct kiln_df_node {
    char *value;        /* keyword (lowercased) for instructions, else the argument text */
    size_t value_len;   /* strlen(value), except for a JSON argument holding "\u0000": such a
                         * value contains NUL bytes, and consumers must reject it */
    kiln_df_node *next; /* the next argument */
    kiln_vec children;  /* kiln_df_node *: instructions (root) or ONBUILD's nested instruction */
    kiln_vec heredocs;  /* kiln_df_heredoc * */
    kiln_vec flags;     /* char *: "--name=value" words before the arguments */
    kiln_vec comments;  /* char *: comment lines right above the instruction */
    char *original;     /* the logical line (continuations joined), NULL for argument nodes */
    bool json;          /* arguments came from a JSON array (exec form) */
    int start_line;     /* 1-based first and last physical line; the root spans all children */
    int end_line;
};

typedef struct kiln_df_warning {
    char *msg;    /* one line, e.g. "Empty continuation line found in: RUN a  b" */
    char *detail; /* longer explanation */
    char *url;
    int line;
} kiln_df_warning;

typedef struct kiln_df_directive {
    char *name; /* lowercased: "syntax", "escape" or "check" */
    char *value;
    int line;
} kiln_df_directive;

typedef struct kiln_df_result {
    kiln_df_node *ast;   /* root node */
    char escape_token;   /* '\\' or '`' */
    kiln_vec warnings;   /* kiln_df_warning * */
    kiln_vec directives; /* kiln_df_directive * in file order */
} kiln_df_result;

/**
 * Parse a Dockerfile held in memory.
 * @param out      the result, owned by the caller (kiln_df_result_free)
 * @param data     the bytes (need not be NUL-terminated)
 * @param len      their length
 * @param filename name used in error locations ("Dockerfile" when NULL)
 * @return 0, or KILN_EPARSE (syntax error, line too long, no instructions, NUL byte) with the
 *         error's file:line:column set and the offending text in the message.
 */
int kiln_df_parse(kiln_df_result **out, const char *data, size_t len, const char *filename,
                  kiln_error **err);

/* Free a parse result and its whole tree. NULL-safe. */
void kiln_df_result_free(kiln_df_result *r);

/* Free a node, its next chain and its children. NULL-safe. */
void kiln_df_node_free(kiln_df_node *n);

/* Free one heredoc. NULL-safe. */
void kiln_df_heredoc_free(kiln_df_heredoc *h);

/**
 * BuildKit's Node.Dump(): for the root, one "(instruction args...)" line per instruction joined by
 * '\n' with no trailing newline (the corpus `result` files are this plus "\n").
 * @return a string owned by the caller
 */
char *kiln_df_node_dump(const kiln_df_node *n);

/**
 * Parse one heredoc word such as `<<EOF`, `<<-'EOF'` or `3<<"EOF"` (BuildKit's ParseHeredoc).
 * @param out the heredoc (content NULL), or NULL when `word` is not a heredoc; owned by caller
 * @return 0, or KILN_EPARSE when the word looks like a heredoc but is malformed (unterminated
 *         quote)
 */
int kiln_df_parse_heredoc(kiln_df_heredoc **out, const char *word, kiln_error **err);

/* Remove leading tabs from every line of `content` (for `<<-`). Owned by the caller. */
char *kiln_df_heredoc_chomp(const char *content);

/**
 * Find the `syntax` directive the way BuildKit picks a frontend: `# syntax=`, then `// syntax=`
 * (both after an optional `#!` line), then a JSON document with a "syntax" key.
 * @param ref_out     the image reference (the value up to the first space), owned by caller
 * @param cmdline_out the whole value, owned by caller (may be NULL)
 * @param line_out    1-based line of the directive (may be NULL)
 * @return true when found (outputs set), false otherwise (outputs untouched)
 */
bool kiln_df_detect_syntax(char **ref_out, char **cmdline_out, int *line_out, const char *data,
                           size_t len);

/* The `# check=` directive: which build-check rules to skip, and whether findings fail the build.
 */
typedef struct kiln_df_check_config {
    bool skip_all; /* skip=all */
    kiln_vec skip; /* char *: rule names to skip (when not skip_all) */
    bool error;    /* error=true: check findings are build errors */
} kiln_df_check_config;

/**
 * Parse a `check` directive value such as "skip=JSONArgsRecommended,StageNameCasing;error=true"
 * (fields separated by ';', keys case-insensitive, booleans as Go's strconv.ParseBool).
 * @param out initialised here; dispose with kiln_df_check_config_dispose
 * @return 0, or KILN_EINVAL naming the bad field
 */
int kiln_df_parse_check_directive(kiln_df_check_config *out, const char *value, kiln_error **err);
void kiln_df_check_config_dispose(kiln_df_check_config *c);

#endif
