/*
 * compile_util.c: small pieces of the Dockerfile compiler: ordered environment lists with the
 * semantics of llb.EnvList, and the Go formatting BuildKit's history strings are made of
 * (%q and %v of string slices, time.Duration, rune quoting) plus duration and signal parsing.
 */
#include <ctype.h>
#include <signal.h>

#include "frontends/dockerfile/compile_internal.h"
#include "frontends/dockerfile/df_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* environment lists */

df_kv *
df_kv_new(const char *key, const char *value)
{
    df_kv *kv = xnew(df_kv);

    kv->key = xstrdup(key);
    kv->value = xstrdup(value);
    return kv;
}

void
df_kv_free(void *p)
{
    df_kv *kv = p;

    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    free(kv);
}

void
df_env_init(df_env *e)
{
    kiln_vec_init(&e->items);
}

void
df_env_dispose(df_env *e)
{
    kiln_vec_dispose(&e->items, df_kv_free);
}

void
df_env_copy(df_env *dst, const df_env *src)
{
    df_env_init(dst);
    for (size_t i = 0; i < src->items.len; i++) {
        const df_kv *kv = src->items.items[i];
        kiln_vec_push(&dst->items, df_kv_new(kv->key, kv->value));
    }
}

void
df_env_set(df_env *e, const char *key, const char *value)
{
    for (size_t i = 0; i < e->items.len; i++) {
        df_kv *kv = e->items.items[i];
        if (strcmp(kv->key, key) == 0) {
            df_kv_free(kiln_vec_remove(&e->items, i));
            break;
        }
    }
    kiln_vec_push(&e->items, df_kv_new(key, value ? value : ""));
}

const char *
df_env_get(const df_env *e, const char *key)
{
    for (size_t i = 0; i < e->items.len; i++) {
        const df_kv *kv = e->items.items[i];
        if (strcmp(kv->key, key) == 0)
            return kv->value;
    }
    return NULL;
}

bool
df_env_lookup(const char *name, const char **value, void *payload)
{
    const char *v = df_env_get(payload, name);

    if (!v)
        return false;
    *value = v;
    return true;
}

int
df_env_check(const df_env *e, kiln_error **err)
{
    size_t total = 0;

    for (size_t i = 0; i < e->items.len; i++) {
        const df_kv *kv = e->items.items[i];
        total += strlen(kv->key) + strlen(kv->value) + 2;
    }
    if (total > DF_MAX_ENV)
        return kiln_error_set(err, KILN_EINVAL, "environment too large (%zu bytes, limit %u)",
                              total, DF_MAX_ENV);
    return 0;
}

bool
df_expansion_too_large(const char *word, size_t max_value)
{
    size_t dollars = 0, len = strlen(word);

    for (const char *p = word; (p = strchr(p, '$')); p++)
        dollars++;
    return dollars && max_value &&
           (dollars > DF_MAX_EXPANSION / max_value || dollars * max_value + len > DF_MAX_EXPANSION);
}

char **
df_env_array(const df_env *e)
{
    char **out = xcalloc(e->items.len + 1, sizeof(char *));

    for (size_t i = 0; i < e->items.len; i++) {
        const df_kv *kv = e->items.items[i];
        out[i] = xasprintf("%s=%s", kv->key, kv->value);
    }
    return out;
}

bool
df_kvs_lookup(const char *name, const char **value, void *payload)
{
    const kiln_vec *v = payload;

    for (size_t i = v->len; i > 0; i--) {
        const df_kv *kv = v->items[i - 1];
        if (strcmp(kv->key, name) == 0) {
            *value = kv->value ? kv->value : "";
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Go formatting */

char *
df_go_quote_strv(const kiln_vec *v)
{
    kiln_buf b = KILN_BUF_INIT;

    kiln_buf_putc(&b, '[', NULL);
    for (size_t i = 0; i < v->len; i++) {
        const char *s = v->items[i];
        cleanup_free char *q = kiln_str_go_quote(s, strlen(s));
        if (i)
            kiln_buf_putc(&b, ' ', NULL);
        kiln_buf_puts(&b, q, NULL);
    }
    kiln_buf_putc(&b, ']', NULL);
    return kiln_buf_detach(&b);
}

char *
df_go_strv(const kiln_vec *v)
{
    cleanup_free char *j = kiln_strvec_join(v, " ");

    return xasprintf("[%s]", j);
}

/* Fraction of v / 10^prec without trailing zeros, as Go's fmtFrac; returns v / 10^prec. */
static uint64_t
go_frac(kiln_buf *digits, uint64_t v, int prec)
{
    char tmp[32];
    int n = 0;
    bool print = false;

    for (int i = 0; i < prec; i++) {
        int d = (int)(v % 10);
        print = print || d != 0;
        if (print)
            tmp[n++] = (char)('0' + d);
        v /= 10;
    }
    if (print) {
        kiln_buf_putc(digits, '.', NULL);
        while (n > 0)
            kiln_buf_putc(digits, tmp[--n], NULL);
    }
    return v;
}

char *
df_go_duration(int64_t ns)
{
    kiln_buf b = KILN_BUF_INIT;
    uint64_t u = ns < 0 ? (uint64_t)(-(ns + 1)) + 1 : (uint64_t)ns;

    if (ns < 0)
        kiln_buf_putc(&b, '-', NULL);
    if (u < 1000000000ull) {
        const char *unit;
        int prec;
        if (u == 0) {
            kiln_buf_dispose(&b);
            return xstrdup("0s");
        } else if (u < 1000ull) {
            kiln_buf_printf(&b, NULL, "%lluns", (unsigned long long)u);
            return kiln_buf_detach(&b);
        } else if (u < 1000000ull) {
            unit = "µs";
            prec = 3;
        } else {
            unit = "ms";
            prec = 6;
        }
        kiln_buf frac = KILN_BUF_INIT;
        uint64_t whole = go_frac(&frac, u, prec);
        kiln_buf_printf(&b, NULL, "%llu%s%s", (unsigned long long)whole, frac.ptr ? frac.ptr : "",
                        unit);
        kiln_buf_dispose(&frac);
        return kiln_buf_detach(&b);
    }
    kiln_buf frac = KILN_BUF_INIT;
    uint64_t secs = go_frac(&frac, u, 9);
    uint64_t s = secs % 60, mins = secs / 60;
    if (mins == 0) {
        kiln_buf_printf(&b, NULL, "%llu%ss", (unsigned long long)s, frac.ptr ? frac.ptr : "");
    } else if (mins < 60) {
        kiln_buf_printf(&b, NULL, "%llum%llu%ss", (unsigned long long)mins, (unsigned long long)s,
                        frac.ptr ? frac.ptr : "");
    } else {
        kiln_buf_printf(&b, NULL, "%lluh%llum%llu%ss", (unsigned long long)(mins / 60),
                        (unsigned long long)(mins % 60), (unsigned long long)s,
                        frac.ptr ? frac.ptr : "");
    }
    kiln_buf_dispose(&frac);
    return kiln_buf_detach(&b);
}

char *
df_go_quote_rune(int64_t r)
{
    static const char esc[] = {'a', 'b', 't', 'n', 'v', 'f', 'r'};

    if (r == '\'' || r == '\\')
        return xasprintf("'\\%c'", (char)r);
    if (r >= 7 && r <= 13)
        return xasprintf("'\\%c'", esc[r - 7]);
    if (r >= 0x20 && r < 0x7f)
        return xasprintf("'%c'", (char)r);
    if (r >= 0 && r < 0x80)
        return xasprintf("'\\x%02x'", (unsigned)r);
    if (r >= 0 && r <= 0x10FFFF && !(r >= 0xD800 && r <= 0xDFFF)) {
        kiln_buf b = KILN_BUF_INIT;
        kiln_buf_putc(&b, '\'', NULL);
        kiln_df__put_rune(&b, (uint32_t)r);
        kiln_buf_putc(&b, '\'', NULL);
        return kiln_buf_detach(&b);
    }
    return xstrdup("'�'");
}

int
df_parse_duration(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"ns", 1},   {"us", 1e3}, {"µs", 1e3}, {"μs", 1e3},
                 {"ms", 1e6}, {"s", 1e9},  {"m", 60e9}, {"h", 3600e9}};
    double total = 0;
    bool neg = false;

    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (!*s)
        return -1;
    while (*s) {
        char *end;
        if (!(isdigit((unsigned char)*s) || *s == '.'))
            return -1;
        double v = strtod(s, &end);
        if (end == s)
            return -1;
        s = end;
        size_t best = 0, bi = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t l = strlen(units[i].unit);
            if (strncmp(s, units[i].unit, l) == 0 && l > best) {
                best = l;
                bi = i;
            }
        }
        if (!best)
            return -1;
        total += v * units[bi].ns;
        s += best;
    }
    if (total > 9.2e18)
        return -1;
    *out = (int64_t)(neg ? -total : total);
    return 0;
}

bool
df_valid_signal(const char *s)
{
    static const char *const names[] = {
            "ABRT", "ALRM",   "BUS",  "CHLD",   "CLD",   "CONT", "FPE",  "HUP",   "ILL",
            "INT",  "IO",     "IOT",  "KILL",   "PIPE",  "POLL", "PROF", "PWR",   "QUIT",
            "SEGV", "STKFLT", "STOP", "SYS",    "TERM",  "TRAP", "TSTP", "TTIN",  "TTOU",
            "URG",  "USR1",   "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX"};
    char *end;

    if (!*s)
        return false;
    long n = strtol(s, &end, 10);
    if (*end == '\0')
        return n > 0 && n <= 64;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i]) == 0)
            return true;
    }
    /* RTMIN+n / RTMAX-n */
    if ((strncasecmp(s, "RTMIN+", 6) == 0 || strncasecmp(s, "RTMAX-", 6) == 0) && s[6]) {
        n = strtol(s + 6, &end, 10);
        return *end == '\0' && n >= 0 && n <= 30;
    }
    return false;
}
