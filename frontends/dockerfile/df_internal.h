/*
 * df_internal.h: helpers shared by the Dockerfile parser and the shell lexer, never used outside
 * frontends/dockerfile. They reproduce the Go runtime behaviour BuildKit relies on (UTF-8 decoding
 * that turns each invalid byte into U+FFFD, unicode.IsSpace, strings.TrimSpace, ...), so that the
 * AST we build matches BuildKit's byte for byte.
 */
#ifndef KILN_FRONTENDS_DOCKERFILE_DF_INTERNAL_H
#define KILN_FRONTENDS_DOCKERFILE_DF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/vec.h"

#define DF_RUNE_ERROR 0xFFFDu

/* Decode one rune at s[0..len) as Go's utf8.DecodeRune does: an invalid or truncated sequence
 * yields U+FFFD with width 1. len must be > 0. Returns the width in bytes. */
size_t kiln_df__utf8_decode(const char *s, size_t len, uint32_t *r);

/* Append the UTF-8 encoding of r (invalid code points become U+FFFD, as Go's string(rune)). */
void kiln_df__put_rune(kiln_buf *b, uint32_t r);

/* Go's unicode.IsSpace. */
bool kiln_df__is_space(uint32_t r);

/* unicode.IsSpace(rune(b)) for a single byte: what BuildKit's byte-wise loops test (so the bytes
 * 0x85 and 0xA0 count as spaces there). */
bool kiln_df__is_space_byte(unsigned char b);

/* Go's unicode.IsLetter / unicode.IsDigit (non-ASCII via the C.UTF-8 locale's classes). */
bool kiln_df__is_letter(uint32_t r);
bool kiln_df__is_digit(uint32_t r);

/* Byte offsets of s[0..len) without leading / trailing unicode spaces (strings.TrimSpace). */
void kiln_df__trim_space(const char *s, size_t len, size_t *start, size_t *end);

/* strings.TrimSpace as a new string; owned by the caller. */
char *kiln_df__trim_space_dup(const char *s, size_t len);

/* Length of the leading run of unicode spaces (strings.TrimLeftFunc(s, unicode.IsSpace)). */
size_t kiln_df__leading_space(const char *s, size_t len);

/* True for the bytes of Go's `[\t\v\f\r ]` (BuildKit's reWhitespace). */
bool kiln_df__is_re_ws(char c);

/* Split s on runs of reWhitespace into a string vector (regexp.Split(s, n) with n = -1 or 2).
 * Strings pushed are owned by `out` (a strvec). */
void kiln_df__split_ws(kiln_vec *out, const char *s, int n);

#endif

/* ---- parser family (parser.c, line_parsers.c, df_json.c, dump.c, directives.c) ---- */

#include "base/error.h"
#include "frontends/dockerfile/parser.h"

/* ONBUILD may nest another instruction; deeper nesting than this is refused (BuildKit refuses
 * ONBUILD ONBUILD later anyway, and unbounded recursion would let a long line exhaust the stack).
 */
#define DF_MAX_ONBUILD_DEPTH 8

/* Parser state that instruction parsers need: the escape token and the directive scanner. */
typedef struct kiln_df__directives {
    char escape;   /* '\\' or '`' */
    int line;      /* lines seen by the directive scanner */
    bool done;     /* the leading directive block has ended */
    unsigned seen; /* bit per directive name already used */
    kiln_vec *out; /* kiln_df_directive * collected, or NULL */
} kiln_df__directives;

/* Feed one line (newline and, for first lines, leading space removed) to the directive scanner.
 * *is_directive tells whether the line was a valid directive. KILN_EPARSE for a repeated directive
 * or a bad escape token. */
int kiln_df__directive_line(kiln_df__directives *d, const char *line, bool *is_directive,
                            kiln_error **err);

/* A node with a copy of `value` (may be NULL for ""). */
kiln_df_node *kiln_df__node_new(const char *value);

/* Split an instruction line into keyword, flags and arguments and run the keyword's argument
 * parser (BuildKit's newNodeFromLine). *out owned by the caller. KILN_EPARSE on bad arguments. */
int kiln_df__node_from_line(kiln_df_node **out, const char *line, const kiln_df__directives *d,
                            int depth, kiln_error **err);

/* BuildKit's parseWords: whitespace-separated words, quotes and escapes kept. Strings owned by
 * `out` (a strvec the caller initialised). */
void kiln_df__parse_words(kiln_vec *out, const char *rest, char escape);

typedef enum kiln_df__json_status {
    DF_JSON_OK = 0,
    DF_JSON_SYNTAX,      /* not valid JSON: shell form applies */
    DF_JSON_NOT_STRINGS, /* valid JSON array with a non-string element: an error */
} kiln_df__json_status;

/* Decode the JSON array at the start of s[0..len) (s[0] == '[') as Go's json.Decoder would,
 * ignoring anything after it. On DF_JSON_OK, `out` (initialised by the caller) receives one owned
 * kiln_buf * per element (a decoded "\u0000" makes a NUL byte inside the buffer); free them with
 * kiln_df__json_buf_free. */
kiln_df__json_status kiln_df__parse_json_array(kiln_vec *out, const char *s, size_t len);
void kiln_df__json_buf_free(void *b);

/* The heredoc words of an instruction line (BuildKit's heredocsFromLine); kiln_df_heredoc * are
 * pushed onto `out`. KILN_EPARSE for a malformed heredoc word. */
int kiln_df__heredocs_from_line(kiln_vec *out, const char *line, kiln_error **err);
