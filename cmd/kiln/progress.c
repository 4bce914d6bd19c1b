/*
 * progress.c: buildx-style progress displays (plain, tty, rawjson) for `kiln build`.
 *
 * Every step (an engine vertex or a step of the CLI) has a record: its name, times, state and a
 * ring of its last output lines. Plain and rawjson print as events arrive; tty keeps the records
 * and a thread redraws the whole view every 100 ms, moving the cursor back over the previous
 * frame (the frame never grows beyond the terminal's height, so the escape codes stay exact).
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/map.h"
#include "base/vec.h"
#include "cmd/kiln/progress.h"

#include "base/base.h"

#define TAIL_LINES   64 /* output lines kept per step */
#define TTY_LOG_ROWS 6  /* output lines shown under a running step */
#define LINE_MAX_LEN 4096

typedef struct step {
    char *digest; /* engine vertex, or NULL for a CLI step */
    char *name;
    int num;               /* "#N" in plain mode, 1-based */
    int64_t start, end;    /* CLOCK_MONOTONIC ns, 0 = not yet */
    bool cached, canceled; /* states besides running/done */
    char *error;
    char *status;           /* last status line (tty) */
    char *tail[TAIL_LINES]; /* ring of complete output lines */
    size_t ntail, head;
    kiln_buf partial; /* an output line not yet ended */
} step;

struct kiln_progress {
    kiln_progress_mode mode;
    FILE *out;
    pthread_mutex_t lock;
    kiln_vec steps; /* step * in order of first appearance */
    kiln_map by_digest;
    int64_t t0;       /* monotonic start */
    int64_t wall0_ns; /* realtime at t0 */
    int last_plain;   /* plain: number of the step whose lines were printed last, 0 = none */
    char *failed;     /* digest of the first failed engine step */
    /* tty */
    pthread_t thread;
    bool running, finished;
    pthread_cond_t cond;
    int frame_lines; /* lines of the frame on screen */
};

static int64_t
now_ns(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
kiln_progress_mode_parse(kiln_progress_mode *out, const char *s, kiln_error **err)
{
    static const char *const names[] = {"auto", "plain", "tty", "rawjson", "quiet"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (kiln_progress_mode)i;
            return 0;
        }
    }
    return kiln_error_set(err, KILN_EINVAL,
                          "invalid progress mode \"%s\": want auto, plain, tty, rawjson or quiet",
                          s);
}

static void
step_free(void *v)
{
    step *s = v;

    if (!s)
        return;
    free(s->digest);
    free(s->name);
    free(s->error);
    free(s->status);
    for (size_t i = 0; i < TAIL_LINES; i++)
        free(s->tail[i]);
    kiln_buf_dispose(&s->partial);
    free(s);
}

static step *
step_add(kiln_progress *p, const char *digest, const char *name)
{
    step *s = xcalloc(1, sizeof(*s));

    s->digest = digest ? xstrdup(digest) : NULL;
    s->name = xstrdup(name ? name : "");
    s->num = (int)p->steps.len + 1;
    kiln_buf_init(&s->partial, LINE_MAX_LEN);
    kiln_vec_push(&p->steps, s);
    if (s->digest)
        kiln_map_put(&p->by_digest, s->digest, s);
    return s;
}

static void
tail_push(step *s, const char *line, size_t len)
{
    size_t slot = (s->head + s->ntail) % TAIL_LINES;

    if (s->ntail == TAIL_LINES) {
        slot = s->head;
        s->head = (s->head + 1) % TAIL_LINES;
    } else {
        s->ntail++;
    }
    free(s->tail[slot]);
    s->tail[slot] = xstrndup(line, len);
}

static const char *
tail_get(const step *s, size_t i)
{
    return s->tail[(s->head + i) % TAIL_LINES];
}

static double
secs(int64_t ns)
{
    return (double)ns / 1e9;
}

/* ---- plain ---------------------------------------------------------------------------------- */

/* Print the "#N name" header when another step printed last. */
static void
plain_header(kiln_progress *p, step *s)
{
    if (p->last_plain == s->num)
        return;
    if (p->last_plain)
        fputc('\n', p->out);
    fprintf(p->out, "#%d %s\n", s->num, s->name);
    p->last_plain = s->num;
}

static void
plain_line(kiln_progress *p, step *s, const char *line, size_t len, int64_t t)
{
    plain_header(p, s);
    fprintf(p->out, "#%d %.3f %.*s\n", s->num, secs(t - (s->start ? s->start : t)), (int)len, line);
}

/* ---- rawjson -------------------------------------------------------------------------------- */

static char *
rfc3339(kiln_progress *p, int64_t mono)
{
    int64_t wall = p->wall0_ns + (mono - p->t0);
    time_t sec = (time_t)(wall / 1000000000);
    struct tm tm;
    char buf[64];

    gmtime_r(&sec, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    return xasprintf("%s.%09lldZ", buf, (long long)(wall % 1000000000));
}

static void
json_set_time(json_t *o, const char *key, kiln_progress *p, int64_t mono)
{
    char *t;

    if (!mono)
        return;
    t = rfc3339(p, mono);
    json_object_set_new(o, key, json_string(t));
    free(t);
}

static void
json_emit(kiln_progress *p, const char *kind, json_t *item)
{
    json_t *root = json_object();
    json_t *arr = json_array();
    char *text;

    json_array_append_new(arr, item);
    json_object_set_new(root, kind, arr);
    text = json_dumps(root, JSON_COMPACT);
    if (text)
        fprintf(p->out, "%s\n", text);
    free(text);
    json_decref(root);
    fflush(p->out);
}

static const char *
step_id(const step *s, char *buf, size_t len)
{
    if (s->digest)
        return s->digest;
    snprintf(buf, len, "kiln:step:%d", s->num);
    return buf;
}

static void
json_vertex(kiln_progress *p, const step *s)
{
    json_t *v = json_object();
    char id[32];

    json_object_set_new(v, "digest", json_string(step_id(s, id, sizeof(id))));
    json_object_set_new(v, "name", json_string(s->name));
    json_set_time(v, "started", p, s->start);
    json_set_time(v, "completed", p, s->end);
    if (s->cached)
        json_object_set_new(v, "cached", json_true());
    if (s->error)
        json_object_set_new(v, "error", json_string(s->error));
    json_emit(p, "vertexes", v);
}

static void
json_log(kiln_progress *p, const step *s, int stream, const char *data, size_t len, int64_t t)
{
    json_t *l = json_object();
    char id[32];
    size_t cap = 4 * ((len + 2) / 3) + 1;
    cleanup_free unsigned char *b64 = xmalloc(cap);

    EVP_EncodeBlock(b64, (const unsigned char *)data, (int)len);
    json_object_set_new(l, "vertex", json_string(step_id(s, id, sizeof(id))));
    json_object_set_new(l, "stream", json_integer(stream));
    json_object_set_new(l, "data", json_string((const char *)b64));
    json_set_time(l, "timestamp", p, t);
    json_emit(p, "logs", l);
}

static void
json_status(kiln_progress *p, const step *s, const char *msg, int64_t t)
{
    json_t *st = json_object();
    char id[32];

    json_object_set_new(st, "id", json_string(msg));
    json_object_set_new(st, "vertex", json_string(step_id(s, id, sizeof(id))));
    json_set_time(st, "timestamp", p, t);
    json_emit(p, "statuses", st);
}

/* ---- tty ------------------------------------------------------------------------------------ */

static void
term_size(int fd, int *cols, int *rows)
{
    struct winsize ws;

    *cols = 80;
    *rows = 24;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        *cols = ws.ws_col;
        *rows = ws.ws_row > 0 ? ws.ws_row : 24;
    }
}

/* Append one screen line: `text` cut to the width, `right` (may be NULL) aligned at the end. */
static void
frame_line(kiln_buf *f, int cols, const char *text, const char *right)
{
    int rlen = right ? (int)strlen(right) : 0;
    int room = cols - 1 - (rlen ? rlen + 1 : 0);
    int tlen = (int)strlen(text);

    if (room < 8)
        room = 8;
    if (tlen > room)
        tlen = room;
    kiln_buf_printf(f, NULL, "%.*s", tlen, text);
    if (rlen)
        kiln_buf_printf(f, NULL, "%*s%s", room - tlen + 1, "", right);
    kiln_buf_puts(f, "\x1b[K\n", NULL);
}

/* The lines of one step: its own line, then its output or status when it runs. */
static void
frame_step(kiln_buf *lines, kiln_vec *offsets, kiln_progress *p, const step *s, int cols, int64_t t)
{
    cleanup_free char *text = NULL;
    char right[32] = "";
    const char *state = s->error      ? "ERROR "
                        : s->canceled ? "CANCELED "
                        : s->cached   ? "CACHED "
                                      : "";

    text = xasprintf(" => %s%s", state, s->name);
    if (s->start || s->end)
        snprintf(right, sizeof(right), "%.1fs",
                 secs((s->end ? s->end : t) - (s->start ? s->start : t)));
    kiln_vec_push(offsets, (void *)(uintptr_t)lines->len);
    frame_line(lines, cols, text, right);
    if (s->end || !s->start)
        return;
    if (s->status && !s->ntail) {
        cleanup_free char *st = xasprintf(" => => %s", s->status);
        kiln_vec_push(offsets, (void *)(uintptr_t)lines->len);
        frame_line(lines, cols, st, NULL);
    }
    for (size_t i = s->ntail > TTY_LOG_ROWS ? s->ntail - TTY_LOG_ROWS : 0; i < s->ntail; i++) {
        cleanup_free char *l = xasprintf(" => => # %s", tail_get(s, i));
        kiln_vec_push(offsets, (void *)(uintptr_t)lines->len);
        frame_line(lines, cols, l, NULL);
    }
    (void)p;
}

/* Redraw the whole frame (lock held). */
static void
tty_draw(kiln_progress *p, bool final)
{
    kiln_buf lines = KILN_BUF_INIT, f = KILN_BUF_INIT;
    kiln_vec offsets = KILN_VEC_INIT;
    int64_t t = now_ns(CLOCK_MONOTONIC);
    size_t done = 0, first = 0;
    int cols, rows, n;
    cleanup_free char *head = NULL;

    void *item;

    term_size(fileno(p->out), &cols, &rows);
    kiln_vec_foreach(&p->steps, i, item) {
        step *s = item;
        if (s->end)
            done++;
        frame_step(&lines, &offsets, p, s, cols, t);
    }
    head = xasprintf("[+] Building %.1fs (%zu/%zu)%s", secs(t - p->t0), done, p->steps.len,
                     final ? " FINISHED" : "");
    /* keep the frame within the screen: drop the oldest lines (not on the final frame, which
     * stays in the scrollback) */
    n = (int)offsets.len;
    if (!final && n > rows - 2)
        first = (size_t)(n - (rows - 2));
    if (p->frame_lines)
        kiln_buf_printf(&f, NULL, "\x1b[%dA\r", p->frame_lines);
    frame_line(&f, cols, head, NULL);
    if (first < offsets.len) {
        size_t off = (size_t)(uintptr_t)kiln_vec_get(&offsets, first);
        kiln_buf_put(&f, lines.ptr + off, lines.len - off, NULL);
    }
    kiln_buf_puts(&f, "\x1b[J", NULL);
    fwrite(f.ptr, 1, f.len, p->out);
    fflush(p->out);
    p->frame_lines = 1 + (int)(offsets.len - first);
    kiln_buf_dispose(&lines);
    kiln_buf_dispose(&f);
    kiln_vec_dispose(&offsets, NULL);
}

static void *
tty_thread(void *arg)
{
    kiln_progress *p = arg;

    pthread_mutex_lock(&p->lock);
    while (p->running) {
        struct timespec ts;
        tty_draw(p, false);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ---- life cycle ----------------------------------------------------------------------------- */

void
kiln_progress_new(kiln_progress **out, kiln_progress_mode mode, FILE *stream)
{
    kiln_progress *p = xcalloc(1, sizeof(*p));

    if (mode == KILN_PROGRESS_AUTO)
        mode = isatty(fileno(stream)) ? KILN_PROGRESS_TTY : KILN_PROGRESS_PLAIN;
    p->mode = mode;
    p->out = stream;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    kiln_vec_init(&p->steps);
    kiln_map_init(&p->by_digest);
    p->t0 = now_ns(CLOCK_MONOTONIC);
    p->wall0_ns = now_ns(CLOCK_REALTIME);
    if (mode == KILN_PROGRESS_TTY) {
        p->running = true;
        if (pthread_create(&p->thread, NULL, tty_thread, p) != 0) {
            p->running = false;
            p->mode = KILN_PROGRESS_PLAIN;
        }
    }
    *out = p;
}

void
kiln_progress_finish(kiln_progress *p)
{
    bool join;

    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    join = p->running;
    p->running = false;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (join)
        pthread_join(p->thread, NULL);
    pthread_mutex_lock(&p->lock);
    if (!p->finished && p->mode == KILN_PROGRESS_TTY)
        tty_draw(p, true);
    if (!p->finished && p->mode == KILN_PROGRESS_PLAIN && p->last_plain)
        fputc('\n', p->out);
    p->finished = true;
    fflush(p->out);
    pthread_mutex_unlock(&p->lock);
}

void
kiln_progress_free(kiln_progress *p)
{
    if (!p)
        return;
    kiln_progress_finish(p);
    kiln_vec_dispose(&p->steps, step_free);
    kiln_map_dispose(&p->by_digest, NULL);
    free(p->failed);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}

/* ---- events --------------------------------------------------------------------------------- */

static void
on_started(kiln_progress *p, step *s, int64_t t)
{
    if (!s->start)
        s->start = t;
    if (p->mode == KILN_PROGRESS_PLAIN)
        plain_header(p, s);
    else if (p->mode == KILN_PROGRESS_RAWJSON)
        json_vertex(p, s);
}

static void
on_log(kiln_progress *p, step *s, int stream, const char *data, size_t len, int64_t t)
{
    if (p->mode == KILN_PROGRESS_RAWJSON)
        json_log(p, s, stream, data, len, t);
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        if (!nl || s->partial.len) {
            size_t room = LINE_MAX_LEN - 1 - s->partial.len;
            kiln_buf_put(&s->partial, data, n < room ? n : room, NULL);
        }
        if (nl) {
            const char *line = s->partial.len ? s->partial.ptr : data;
            size_t llen = s->partial.len ? s->partial.len : n;
            if (llen && line[llen - 1] == '\r')
                llen--;
            tail_push(s, line, llen);
            if (p->mode == KILN_PROGRESS_PLAIN)
                plain_line(p, s, line, llen, t);
            kiln_buf_clear(&s->partial);
            n++;
        }
        data += n;
        len -= n;
    }
}

/* Print the end of a partial output line before the step's last word. */
static void
flush_partial(kiln_progress *p, step *s, int64_t t)
{
    if (!s->partial.len)
        return;
    tail_push(s, s->partial.ptr, s->partial.len);
    if (p->mode == KILN_PROGRESS_PLAIN)
        plain_line(p, s, s->partial.ptr, s->partial.len, t);
    kiln_buf_clear(&s->partial);
}

/* The engine's messages start with the step's name, which its header line already shows. */
static const char *
strip_name(const step *s, const char *error)
{
    size_t n = strlen(s->name);

    if (n && strncmp(error, s->name, n) == 0 && strncmp(error + n, ": ", 2) == 0)
        return error + n + 2;
    return error;
}

static void
on_end(kiln_progress *p, step *s, const char *error, bool cached, bool canceled, int64_t t)
{
    flush_partial(p, s, t);
    if (s->end)
        return;
    s->end = t;
    s->cached = cached;
    s->canceled = canceled;
    if (error && !s->error)
        s->error = xstrdup(error);
    if (error && s->digest && !p->failed)
        p->failed = xstrdup(s->digest);
    if (p->mode == KILN_PROGRESS_PLAIN) {
        plain_header(p, s);
        if (cached)
            fprintf(p->out, "#%d CACHED\n", s->num);
        else if (error)
            fprintf(p->out, "#%d ERROR: %s\n", s->num, strip_name(s, error));
        else if (canceled)
            fprintf(p->out, "#%d CANCELED\n", s->num);
        else
            fprintf(p->out, "#%d DONE %.1fs\n", s->num, secs(s->end - (s->start ? s->start : t)));
    } else if (p->mode == KILN_PROGRESS_RAWJSON) {
        json_vertex(p, s);
    }
}

void
kiln_progress_engine_event(const kiln_engine_event *ev, void *payload)
{
    kiln_progress *p = payload;
    step *s;
    int64_t t = ev->time_ns ? ev->time_ns : now_ns(CLOCK_MONOTONIC);

    if (p->mode == KILN_PROGRESS_QUIET || !ev->digest)
        return;
    pthread_mutex_lock(&p->lock);
    s = kiln_map_get(&p->by_digest, ev->digest);
    if (!s)
        s = step_add(p, ev->digest, ev->name);
    switch (ev->type) {
    case KILN_ENGINE_EVENT_STARTED:
        on_started(p, s, t);
        break;
    case KILN_ENGINE_EVENT_CACHED:
        if (!s->start)
            s->start = t;
        on_end(p, s, NULL, true, false, t);
        break;
    case KILN_ENGINE_EVENT_LOG:
        if (!s->start)
            on_started(p, s, t);
        on_log(p, s, ev->stream, ev->data, ev->len, t);
        break;
    case KILN_ENGINE_EVENT_STATUS:
        free(s->status);
        s->status = xstrdup(ev->data ? ev->data : "");
        if (p->mode == KILN_PROGRESS_PLAIN) {
            plain_header(p, s);
            fprintf(p->out, "#%d %s\n", s->num, s->status);
        } else if (p->mode == KILN_PROGRESS_RAWJSON) {
            json_status(p, s, s->status, t);
        }
        break;
    case KILN_ENGINE_EVENT_DONE:
        on_end(p, s, NULL, false, false, t);
        break;
    case KILN_ENGINE_EVENT_ERROR:
        on_end(p, s, ev->error ? ev->error : "failed", false, false, t);
        break;
    case KILN_ENGINE_EVENT_CANCELED:
        on_end(p, s, NULL, false, true, t);
        break;
    }
    if (p->mode == KILN_PROGRESS_PLAIN)
        fflush(p->out);
    pthread_mutex_unlock(&p->lock);
}

int
kiln_progress_step(kiln_progress *p, const char *name)
{
    step *s;
    int64_t t = now_ns(CLOCK_MONOTONIC);

    pthread_mutex_lock(&p->lock);
    s = step_add(p, NULL, name);
    if (p->mode != KILN_PROGRESS_QUIET)
        on_started(p, s, t);
    if (p->mode == KILN_PROGRESS_PLAIN)
        fflush(p->out);
    pthread_mutex_unlock(&p->lock);
    return s->num - 1;
}

void
kiln_progress_step_status(kiln_progress *p, int id, const char *fmt, ...)
{
    va_list ap;
    char *msg;
    step *s;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&p->lock);
    s = kiln_vec_get(&p->steps, (size_t)id);
    free(s->status);
    s->status = msg;
    if (p->mode == KILN_PROGRESS_PLAIN) {
        plain_header(p, s);
        fprintf(p->out, "#%d %s\n", s->num, msg);
        fflush(p->out);
    } else if (p->mode == KILN_PROGRESS_RAWJSON) {
        json_status(p, s, msg, now_ns(CLOCK_MONOTONIC));
    }
    pthread_mutex_unlock(&p->lock);
}

void
kiln_progress_step_done(kiln_progress *p, int id, const char *error, bool cached)
{
    step *s;

    pthread_mutex_lock(&p->lock);
    s = kiln_vec_get(&p->steps, (size_t)id);
    if (p->mode != KILN_PROGRESS_QUIET)
        on_end(p, s, error, cached, false, now_ns(CLOCK_MONOTONIC));
    else if (!s->end)
        s->end = now_ns(CLOCK_MONOTONIC);
    if (p->mode == KILN_PROGRESS_PLAIN)
        fflush(p->out);
    pthread_mutex_unlock(&p->lock);
}

bool
kiln_progress_step_tail(char **name_out, char **tail_out, kiln_progress *p, const char *digest,
                        size_t max)
{
    kiln_buf b = KILN_BUF_INIT;
    step *s;

    pthread_mutex_lock(&p->lock);
    s = kiln_map_get(&p->by_digest, digest);
    if (s) {
        size_t from = s->ntail > max ? s->ntail - max : 0;
        for (size_t i = from; i < s->ntail; i++)
            kiln_buf_printf(&b, NULL, "%s%s", i > from ? "\n" : "", tail_get(s, i));
        if (s->partial.len)
            kiln_buf_printf(&b, NULL, "%s%.*s", b.len ? "\n" : "", (int)s->partial.len,
                            s->partial.ptr);
        *name_out = xstrdup(s->name);
        *tail_out = b.len ? kiln_buf_detach(&b) : xstrdup("");
    }
    pthread_mutex_unlock(&p->lock);
    kiln_buf_dispose(&b);
    return s != NULL;
}

const char *
kiln_progress_failed_digest(kiln_progress *p)
{
    const char *d;

    pthread_mutex_lock(&p->lock);
    d = p->failed;
    pthread_mutex_unlock(&p->lock);
    return d;
}

void
kiln_progress_counts(kiln_progress *p, size_t *total, size_t *cached)
{
    pthread_mutex_lock(&p->lock);
    *total = 0;
    *cached = 0;
    void *item;
    kiln_vec_foreach(&p->steps, i, item) {
        const step *s = item;
        if (!s->digest)
            continue;
        (*total)++;
        if (s->cached)
            (*cached)++;
    }
    pthread_mutex_unlock(&p->lock);
}
