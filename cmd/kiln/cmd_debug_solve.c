/*
 * cmd_debug_solve.c: `kiln debug solve [--root DIR] [--local name=DIR]... [--output DIR]
 * [--no-cache] FILE|-` solves an LLB Definition with the embedded engine, printing one progress
 * line per vertex event on stderr ("started", "cached", "done", "error", "canceled"; RUN output
 * is copied through), and prints the result's snapshot id on stdout. With --output the result's
 * files are copied into DIR.
 */
#include <getopt.h>
#include <signal.h>

#include "base/buf.h"
#include "base/fs.h"
#include "base/vec.h"
#include "cmd/kiln/commands.h"
#include "kiln/engine.h"

#include "base/base.h"

#define SOLVE_MAX_DEFINITION (128u << 20)

static void
solve_usage(FILE *out)
{
    fprintf(out, "Usage: kiln debug solve [OPTIONS] FILE|-\n\n"
                 "Solve an LLB Definition (from FILE or stdin) with the embedded engine.\n\n"
                 "  --root DIR          state dir (default /var/lib/kiln for root)\n"
                 "  --local NAME=DIR    bind local://NAME to host directory DIR (repeatable)\n"
                 "  --output DIR        copy the result's files into DIR\n"
                 "  --no-cache          run every vertex\n");
}

static const char *const event_words[] = {
        [KILN_ENGINE_EVENT_STARTED] = "started",   [KILN_ENGINE_EVENT_CACHED] = "cached",
        [KILN_ENGINE_EVENT_LOG] = "log",           [KILN_ENGINE_EVENT_STATUS] = "status",
        [KILN_ENGINE_EVENT_DONE] = "done",         [KILN_ENGINE_EVENT_ERROR] = "error",
        [KILN_ENGINE_EVENT_CANCELED] = "canceled",
};

static void
print_event(const kiln_engine_event *ev, void *payload)
{
    (void)payload;
    if (ev->type == KILN_ENGINE_EVENT_LOG) {
        fwrite(ev->data, 1, ev->len, stderr);
        return;
    }
    if (ev->type == KILN_ENGINE_EVENT_STATUS)
        fprintf(stderr, "status %s: %s\n", ev->name, ev->data ? ev->data : "");
    else if (ev->type == KILN_ENGINE_EVENT_ERROR)
        fprintf(stderr, "error %s\n", ev->error ? ev->error : ev->name);
    else
        fprintf(stderr, "%s %s\n", event_words[ev->type], ev->name);
    fflush(stderr);
}

/* Read the Definition into *out (owned) without an intermediate copy: it is held for the whole
 * solve. */
static int
read_definition(char **out, size_t *len, const char *path, kiln_error **err)
{
    kiln_buf b = KILN_BUF_INIT;
    int ret;

    if (strcmp(path, "-") != 0)
        return kiln_fs_read_file(out, len, path, SOLVE_MAX_DEFINITION, err);
    ret = kiln_fd_read_all(STDIN_FILENO, &b, SOLVE_MAX_DEFINITION, err);
    if (ret < 0) {
        kiln_buf_dispose(&b);
        return ret;
    }
    *len = b.len;
    *out = kiln_buf_detach(&b);
    return 0;
}

/* Split "name=DIR" into locals (pointers into arg); KILN_EINVAL when malformed. */
static int
add_local(kiln_vec *names, kiln_vec *dirs, char *arg, kiln_error **err)
{
    char *eq = strchr(arg, '=');

    if (!eq || eq == arg || !eq[1])
        return kiln_error_set(err, KILN_EINVAL, "--local `%s`: want NAME=DIR", arg);
    *eq = 0;
    kiln_vec_push(names, arg);
    kiln_vec_push(dirs, eq + 1);
    return 0;
}

static int
solve_run(const char *root, const kiln_vec *names, const kiln_vec *dirs, const char *output,
          bool no_cache, const char *file, kiln_error **err)
{
    kiln_engine_opts eo = KILN_ENGINE_OPTS_INIT;
    kiln_engine_solve_opts so = KILN_ENGINE_SOLVE_OPTS_INIT;
    cleanup_free kiln_engine_local *locals = xcalloc(names->len + 1, sizeof(*locals));
    cleanup_free char *def = NULL;
    size_t def_len = 0;
    kiln_engine *e = NULL;
    kiln_engine_result *r = NULL;
    int ret;

    for (size_t i = 0; i < names->len; i++) {
        locals[i].name = kiln_vec_get(names, i);
        locals[i].dir = kiln_vec_get(dirs, i);
    }
    eo.root = root;
    so.no_cache = no_cache;
    so.locals = locals;
    so.n_locals = names->len;
    so.progress = print_event;
    ret = read_definition(&def, &def_len, file, err);
    if (ret == 0)
        ret = kiln_engine_open(&e, &eo, err);
    if (ret == 0)
        ret = kiln_engine_solve(&r, e, def, def_len, &so, err);
    if (ret == 0 && output)
        ret = kiln_engine_result_export_dir(e, r, output, err);
    if (ret == 0)
        printf("%s\n", kiln_engine_result_id(r));
    kiln_engine_result_free(e, r);
    kiln_engine_free(e);
    return ret;
}

/* `kiln debug solve`: exit 0, 1 when the solve fails, 2 on bad usage. */
int
kiln_cmd_debug_solve(int argc, char **argv)
{
    static const struct option longopts[] = {
            {"root", required_argument, NULL, 'r'},   {"local", required_argument, NULL, 'l'},
            {"output", required_argument, NULL, 'o'}, {"no-cache", no_argument, NULL, 'n'},
            {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    cleanup_kiln_error kiln_error *err = NULL;
    kiln_vec names = KILN_VEC_INIT, dirs = KILN_VEC_INIT;
    const char *root = NULL, *output = NULL;
    bool no_cache = false;
    int c, exit_code = KILN_EXIT_OK;

    /* the registry client (docker-image:// sources) needs SIGPIPE ignored */
    signal(SIGPIPE, SIG_IGN);
    optind = 1;
    while (exit_code == KILN_EXIT_OK && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'r') {
            root = optarg;
        } else if (c == 'l') {
            if (add_local(&names, &dirs, optarg, &err) < 0)
                exit_code = KILN_EXIT_USAGE;
        } else if (c == 'o') {
            output = optarg;
        } else if (c == 'n') {
            no_cache = true;
        } else if (c == 'h') {
            solve_usage(stdout);
            exit_code = -1;
        } else {
            exit_code = KILN_EXIT_USAGE;
        }
    }
    if (exit_code == KILN_EXIT_OK && optind + 1 != argc)
        exit_code = KILN_EXIT_USAGE;
    if (exit_code == KILN_EXIT_OK &&
        solve_run(root, &names, &dirs, output, no_cache, argv[optind], &err) < 0)
        exit_code = KILN_EXIT_FAILURE;
    if (exit_code == KILN_EXIT_USAGE && !err)
        solve_usage(stderr);
    if (err)
        kiln_cmd_report(err);
    kiln_vec_dispose(&names, NULL);
    kiln_vec_dispose(&dirs, NULL);
    return exit_code < 0 ? KILN_EXIT_OK : exit_code;
}
