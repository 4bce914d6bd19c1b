/*
 * error.h: the one error pattern of kiln (STYLE.md B3).
 *
 * A function that can fail returns int: 0 on success, a negative kiln_errcode on failure, and takes
 * `kiln_error **err` as its last parameter. Success leaves *err untouched; failure sets it exactly
 * once. The helpers below return the (negative) code so that each failure site is one statement:
 *
 *     if (ret < 0)
 *         return kiln_error_wrap(err, "apply layer %s", digest);
 *
 * `err` may be NULL when the caller does not want the details; the code is still returned.
 * A kiln_error is a plain heap value: it can move between threads and be serialised.
 */
#ifndef KILN_BASE_ERROR_H
#define KILN_BASE_ERROR_H

#include <stdarg.h>
#include <stddef.h>

typedef enum kiln_errcode {
    KILN_OK = 0,
    KILN_ENOTFOUND = -1,    /* a named thing does not exist */
    KILN_EEXISTS = -2,      /* it exists already */
    KILN_EINVAL = -3,       /* bad user input (flags, options, references) */
    KILN_EPARSE = -4,       /* malformed document (Dockerfile, JSON, protobuf, tar) */
    KILN_EUNSUPPORTED = -5, /* valid but not supported */
    KILN_ECANCELED = -6,    /* the operation was cancelled */
    KILN_EAUTH = -7,        /* authentication or authorisation failed */
    KILN_EDIGEST = -8,      /* content does not match its digest */
    KILN_ETIMEOUT = -9,     /* a deadline passed */
    KILN_ESYS = -10,        /* a system call failed; sys_errno says which errno */
    KILN_EINTERNAL = -11,   /* a bug or an impossible state */
} kiln_errcode;

typedef struct kiln_error {
    int code;      /* negative kiln_errcode */
    int sys_errno; /* errno at the failure site, or 0 */
    char *msg;     /* context chain "outer: inner: root", owned */
    char *file;    /* source file (e.g. Dockerfile) the error points at, or NULL; owned */
    int line;      /* 1-based line in `file`, or 0 */
    int column;    /* 1-based column, or 0 */
} kiln_error;

#define KILN_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))

/* Set *err to a new error with `code` (negative) and a formatted message. Returns `code`.
 * If *err is already set (a bug: errors are set once), the old error is freed first. */
int kiln_error_set(kiln_error **err, int code, const char *fmt, ...) KILN_PRINTF(3, 4);

/* Like kiln_error_set with code KILN_ESYS, appending ": strerror(errnum)" and recording errnum.
 * Returns KILN_ESYS. */
int kiln_error_errno(kiln_error **err, int errnum, const char *fmt, ...) KILN_PRINTF(3, 4);

/* Prefix the message of *err with context ("context: old message"). Keeps the code. Returns the
 * code. If *err is NULL (a caller bug), sets a KILN_EINTERNAL error carrying the context. */
int kiln_error_wrap(kiln_error **err, const char *fmt, ...) KILN_PRINTF(2, 3);

/* Attach a source location (e.g. "Dockerfile", 12, 1) to *err, if set. Returns its code. */
int kiln_error_set_location(kiln_error **err, const char *file, int line, int column);

/* Free *err (NULL-safe) and set it to NULL. */
void kiln_error_free(kiln_error **err);

/* Move *src into *dst (freeing any old *dst); *src becomes NULL. Returns the moved code (or 0). */
int kiln_error_move(kiln_error **dst, kiln_error **src);

/* A deep copy of `e`; owned by the caller. NULL for NULL. */
kiln_error *kiln_error_copy(const kiln_error *e);

/* Stable lowercase name of a code ("not found", "invalid argument", ...). Never NULL. */
const char *kiln_errcode_str(int code);

/* The user-facing one-line message, "file:line:col: msg" when a location is set. Owned by caller.
 */
char *kiln_error_format(const kiln_error *e);

#endif
