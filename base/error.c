/*
 * error.c: the kiln_error object (STYLE.md B3). Errors are heap values built at the failure site
 * and wrapped with context as they travel up: "build: step 3/7: mount /proc: Operation not
 * permitted". The first three helpers return the negative code so a failure site is one statement.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

static int set_v(kiln_error **err, int code, int errnum, const char *fmt, va_list ap)
        KILN_PRINTF(4, 0);

static int
set_v(kiln_error **err, int code, int errnum, const char *fmt, va_list ap)
{
    kiln_error *e;
    char *msg;

    if (code >= 0)
        code = KILN_EINTERNAL;
    if (!err)
        return code;
    msg = xvasprintf(fmt, ap);
    if (errnum) {
        char *full = xasprintf("%s: %s", msg, strerror(errnum));
        free(msg);
        msg = full;
    }
    e = xnew(kiln_error);
    e->code = code;
    e->sys_errno = errnum;
    e->msg = msg;
    kiln_error_free(err);
    *err = e;
    return code;
}

int
kiln_error_set(kiln_error **err, int code, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = set_v(err, code, 0, fmt, ap);
    va_end(ap);
    return rc;
}

int
kiln_error_errno(kiln_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = set_v(err, KILN_ESYS, errnum, fmt, ap);
    va_end(ap);
    return rc;
}

int
kiln_error_wrap(kiln_error **err, const char *fmt, ...)
{
    va_list ap;
    char *ctx, *msg;

    if (!err)
        return KILN_EINTERNAL;
    va_start(ap, fmt);
    if (!*err) {
        int rc = set_v(err, KILN_EINTERNAL, 0, fmt, ap);
        va_end(ap);
        return rc;
    }
    ctx = xvasprintf(fmt, ap);
    va_end(ap);
    msg = xasprintf("%s: %s", ctx, (*err)->msg ? (*err)->msg : "");
    free(ctx);
    free((*err)->msg);
    (*err)->msg = msg;
    return (*err)->code;
}

int
kiln_error_set_location(kiln_error **err, const char *file, int line, int column)
{
    if (!err || !*err)
        return KILN_EINTERNAL;
    free((*err)->file);
    (*err)->file = xstrdup(file);
    (*err)->line = line;
    (*err)->column = column;
    return (*err)->code;
}

void
kiln_error_free(kiln_error **err)
{
    if (!err || !*err)
        return;
    free((*err)->msg);
    free((*err)->file);
    free(*err);
    *err = NULL;
}

int
kiln_error_move(kiln_error **dst, kiln_error **src)
{
    int code;

    if (!src || !*src)
        return 0;
    code = (*src)->code;
    if (!dst) {
        kiln_error_free(src);
        return code;
    }
    kiln_error_free(dst);
    *dst = *src;
    *src = NULL;
    return code;
}

kiln_error *
kiln_error_copy(const kiln_error *e)
{
    kiln_error *c;

    if (!e)
        return NULL;
    c = xnew(kiln_error);
    *c = *e;
    c->msg = xstrdup(e->msg);
    c->file = xstrdup(e->file);
    return c;
}

const char *
kiln_errcode_str(int code)
{
    switch ((kiln_errcode)code) {
    case KILN_OK:
        return "ok";
    case KILN_ENOTFOUND:
        return "not found";
    case KILN_EEXISTS:
        return "already exists";
    case KILN_EINVAL:
        return "invalid argument";
    case KILN_EPARSE:
        return "parse error";
    case KILN_EUNSUPPORTED:
        return "unsupported";
    case KILN_ECANCELED:
        return "canceled";
    case KILN_EAUTH:
        return "authentication failed";
    case KILN_EDIGEST:
        return "digest mismatch";
    case KILN_ETIMEOUT:
        return "timed out";
    case KILN_ESYS:
        return "system error";
    case KILN_EINTERNAL:
        return "internal error";
    }
    return "unknown error";
}

char *
kiln_error_format(const kiln_error *e)
{
    const char *msg;

    if (!e)
        return xstrdup("unknown error");
    msg = e->msg ? e->msg : kiln_errcode_str(e->code);
    if (e->file && e->line > 0 && e->column > 0)
        return xasprintf("%s:%d:%d: %s", e->file, e->line, e->column, msg);
    if (e->file && e->line > 0)
        return xasprintf("%s:%d: %s", e->file, e->line, msg);
    if (e->file)
        return xasprintf("%s: %s", e->file, msg);
    return xstrdup(msg);
}
