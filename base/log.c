/*
 * log.c: leveled, per-domain diagnostics. A global maximum level makes the disabled case one
 * integer compare in the kiln_log() macro; per-domain overrides ("solver=trace") are looked up only
 * when that first test passes. The handler is pluggable (stderr text by default, JSON lines).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/base.h"

#define MAX_DOMAINS 32

struct domain_level {
    char name[32];
    int level;
};

int kiln_log_max_level = KILN_LOG_WARN;
static int default_level = KILN_LOG_WARN;
static struct domain_level domains[MAX_DOMAINS];
static int ndomains;
static kiln_log_handler handler;
static void *handler_payload;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *level_names[] = {"error", "warn", "info", "debug", "trace"};

bool
kiln_log_enabled(kiln_log_level level, const char *domain)
{
    for (int i = 0; i < ndomains; i++) {
        if (strcmp(domains[i].name, domain) == 0)
            return (int)level <= domains[i].level;
    }
    return (int)level <= default_level;
}

static int
parse_level(const char *s, size_t len)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (strlen(level_names[i]) == len && strncasecmp(s, level_names[i], len) == 0)
            return i;
    }
    if (len == 7 && strncasecmp(s, "warning", 7) == 0)
        return KILN_LOG_WARN;
    return -1;
}

static int
configure_item(const char *item, size_t len, int *def, struct domain_level *out, int *nout,
               kiln_error **err)
{
    const char *eq = memchr(item, '=', len);
    int level;

    if (!eq) {
        level = parse_level(item, len);
        if (level < 0)
            return kiln_error_set(err, KILN_EINVAL, "log level `%.*s`: unknown level", (int)len,
                                  item);
        *def = level;
        return 0;
    }
    level = parse_level(eq + 1, len - (size_t)(eq + 1 - item));
    if (level < 0 || eq == item || (size_t)(eq - item) >= sizeof(out->name) || *nout >= MAX_DOMAINS)
        return kiln_error_set(err, KILN_EINVAL, "log spec item `%.*s`: expected DOMAIN=LEVEL",
                              (int)len, item);
    memcpy(out[*nout].name, item, (size_t)(eq - item));
    out[*nout].name[eq - item] = '\0';
    out[*nout].level = level;
    (*nout)++;
    return 0;
}

int
kiln_log_configure(const char *spec, kiln_error **err)
{
    struct domain_level parsed[MAX_DOMAINS];
    int nparsed = 0, def = KILN_LOG_WARN, max;
    const char *p = spec;

    memset(parsed, 0, sizeof(parsed));
    while (p && *p) {
        size_t len = strcspn(p, ",");
        if (len > 0) {
            int rc = configure_item(p, len, &def, parsed, &nparsed, err);
            if (rc < 0)
                return rc;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    max = def;
    for (int i = 0; i < nparsed; i++)
        if (parsed[i].level > max)
            max = parsed[i].level;
    pthread_mutex_lock(&log_lock);
    memcpy(domains, parsed, sizeof(parsed));
    ndomains = nparsed;
    default_level = def;
    kiln_log_max_level = max;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void
kiln_log_set_handler(kiln_log_handler fn, void *payload)
{
    pthread_mutex_lock(&log_lock);
    handler = fn;
    handler_payload = payload;
    pthread_mutex_unlock(&log_lock);
}

void
kiln_log_json_handler(kiln_log_level level, const char *domain, const char *line, void *payload)
{
    struct timespec ts;
    json_t *obj;
    char *text;

    (void)payload;
    clock_gettime(CLOCK_REALTIME, &ts);
    obj = json_pack("{s:f, s:s, s:s, s:s}", "time", (double)ts.tv_sec + ts.tv_nsec / 1e9, "level",
                    level_names[level], "domain", domain, "msg", line);
    if (!obj)
        return;
    text = json_dumps(obj, JSON_COMPACT);
    if (text)
        fprintf(stderr, "%s\n", text);
    free(text);
    json_decref(obj);
}

void
kiln_log_write(kiln_log_level level, const char *domain, const char *fmt, ...)
{
    va_list ap;
    char *line;

    va_start(ap, fmt);
    line = xvasprintf(fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    if (handler)
        handler(level, domain, line, handler_payload);
    else
        fprintf(stderr, "kiln: %s: %s: %s\n", level_names[level], domain, line);
    pthread_mutex_unlock(&log_lock);
    free(line);
}
