/*
 * cmd_debug_run.c: `kiln debug run`, one command in kiln's sandbox, for developers and tests.
 *
 *     kiln debug run --rootfs DIR [--lower DIR]... [--upper DIR --work DIR]
 *                    [--mount type=bind,src=..,dst=..[,ro]] [--user U] [--network none|host]
 *                    [--hostname H] [--env K=V] [--cwd D] [--timeout SECS] -- cmd args
 *
 * With --lower, the rootfs is an overlay of the lowers (the first one on top), the --rootfs DIR
 * (when also given) becoming the lowest layer. The step's stdout/stderr are copied to ours; the
 * exit status is the step's (128+N when killed by signal N).
 */
#include <getopt.h>
#include <signal.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/vec.h"
#include "cmd/kiln/commands.h"
#include "executor/executor.h"

static void
usage(FILE *f)
{
    fprintf(f, "usage: kiln debug run --rootfs DIR [--lower DIR]... [--upper DIR --work DIR]\n"
               "         [--mount type=bind|tmpfs,src=PATH,dst=PATH[,ro]] [--user U]\n"
               "         [--network none|host] [--hostname H] [--env K=V]... [--cwd DIR]\n"
               "         [--timeout SECS] [--insecure] -- CMD [ARG]...\n");
}

static void
write_output(int stream, const char *data, size_t len, void *payload)
{
    (void)payload;
    kiln_fd_write_all(stream == 1 ? 1 : 2, data, len, NULL);
}

/* Parse "type=bind,src=..,dst=..,ro" into *m; strings point into `opt` (modified). */
static int
parse_mount(kiln_exec_mount *m, char *opt, kiln_error **err)
{
    char *save = NULL;

    memset(m, 0, sizeof(*m));
    for (char *kv = strtok_r(opt, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        if (v)
            *v++ = '\0';
        if (strcmp(kv, "ro") == 0 || strcmp(kv, "readonly") == 0)
            m->readonly = true;
        else if (strcmp(kv, "rw") == 0)
            m->readonly = false;
        else if (v && strcmp(kv, "type") == 0 && strcmp(v, "bind") == 0)
            m->type = KILN_EXEC_MOUNT_BIND;
        else if (v && strcmp(kv, "type") == 0 && strcmp(v, "tmpfs") == 0)
            m->type = KILN_EXEC_MOUNT_TMPFS;
        else if (v && (strcmp(kv, "src") == 0 || strcmp(kv, "source") == 0))
            m->source = v;
        else if (v && (strcmp(kv, "dst") == 0 || strcmp(kv, "target") == 0))
            m->dest = v;
        else
            return kiln_error_set(err, KILN_EINVAL, "--mount: unknown option `%s`", kv);
    }
    if (!m->dest)
        return kiln_error_set(err, KILN_EINVAL, "--mount: dst= is required");
    return 0;
}

typedef struct run_opts {
    kiln_exec_spec spec;
    kiln_vec lowers, env, mounts; /* borrowed strings / owned kiln_exec_mount */
    const char *rootfs;
} run_opts;

static int
parse_args(run_opts *o, int argc, char **argv, kiln_error **err)
{
    static const struct option longopts[] = {
            {"rootfs", required_argument, NULL, 'r'},  {"lower", required_argument, NULL, 'l'},
            {"upper", required_argument, NULL, 'U'},   {"work", required_argument, NULL, 'W'},
            {"mount", required_argument, NULL, 'm'},   {"user", required_argument, NULL, 'u'},
            {"network", required_argument, NULL, 'n'}, {"hostname", required_argument, NULL, 'H'},
            {"env", required_argument, NULL, 'e'},     {"cwd", required_argument, NULL, 'w'},
            {"timeout", required_argument, NULL, 't'}, {"insecure", no_argument, NULL, 'I'},
            {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    kiln_exec_mount *m;
    int64_t secs;
    int c, ret;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            o->rootfs = optarg;
            break;
        case 'l':
            kiln_vec_push(&o->lowers, optarg);
            break;
        case 'U':
            o->spec.upper = optarg;
            break;
        case 'W':
            o->spec.work = optarg;
            break;
        case 'u':
            o->spec.user = optarg;
            break;
        case 'H':
            o->spec.hostname = optarg;
            break;
        case 'e':
            kiln_vec_push(&o->env, optarg);
            break;
        case 'w':
            o->spec.cwd = optarg;
            break;
        case 'I':
            o->spec.security = KILN_EXEC_SECURITY_INSECURE;
            o->spec.allow_insecure = true;
            break;
        case 'n':
            if (strcmp(optarg, "none") != 0 && strcmp(optarg, "host") != 0)
                return kiln_error_set(err, KILN_EINVAL, "--network: want none or host");
            o->spec.network = strcmp(optarg, "host") == 0 ? KILN_EXEC_NET_HOST : KILN_EXEC_NET_NONE;
            break;
        case 't':
            ret = kiln_parse_i64(optarg, &secs, "--timeout", err);
            if (ret < 0 || secs < 0)
                return ret < 0 ? ret : kiln_error_set(err, KILN_EINVAL, "--timeout: negative");
            o->spec.timeout_ms = (uint64_t)secs * 1000;
            break;
        case 'm':
            m = xnew(kiln_exec_mount);
            kiln_vec_push(&o->mounts, m);
            ret = parse_mount(m, optarg, err);
            if (ret < 0)
                return ret;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            return kiln_error_set(err, KILN_EINVAL, "bad option (see --help)");
        }
    }
    if (optind >= argc)
        return kiln_error_set(err, KILN_EINVAL, "no command given (use -- CMD ARGS)");
    if (!o->rootfs && !o->lowers.len)
        return kiln_error_set(err, KILN_EINVAL, "--rootfs or --lower is required");
    if (o->rootfs && o->lowers.len)
        kiln_vec_push(&o->lowers, (void *)o->rootfs);
    else if (o->rootfs)
        o->spec.rootfs = o->rootfs;
    o->spec.args = (const char *const *)argv + optind;
    return 0;
}

static volatile sig_atomic_t got_signal;
static kiln_exec_cancel *the_cancel;

static void
on_signal(int sig)
{
    got_signal = sig;
    if (the_cancel)
        kiln_exec_cancel_trigger(the_cancel);
}

/* `kiln debug run` entry point: exit status of the step, 1 on failure, 2 on usage errors. */
int
kiln_cmd_debug_run(int argc, char **argv)
{
    run_opts o;
    kiln_exec_result res;
    kiln_exec_mount *mounts = NULL;
    kiln_error *err = NULL;
    int ret, status = KILN_EXIT_FAILURE;

    memset(&o, 0, sizeof(o));
    ret = parse_args(&o, argc, argv, &err);
    if (ret != 0) {
        status = ret > 0 ? KILN_EXIT_OK : KILN_EXIT_USAGE;
        goto out;
    }
    kiln_vec_push(&o.env, NULL);
    o.spec.env = (const char *const *)o.env.items;
    o.spec.lowers = (const char *const *)o.lowers.items;
    o.spec.n_lowers = o.lowers.len;
    mounts = xcalloc(o.mounts.len + 1, sizeof(*mounts));
    for (size_t i = 0; i < o.mounts.len; i++)
        mounts[i] = *(kiln_exec_mount *)o.mounts.items[i];
    o.spec.mounts = mounts;
    o.spec.n_mounts = o.mounts.len;
    o.spec.on_output = write_output;
    if (kiln_exec_cancel_new(&the_cancel, &err) < 0)
        goto out;
    o.spec.cancel = the_cancel;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (kiln_exec_run(&res, &o.spec, &err) == 0)
        status = res.exit_code;
out:
    if (err) {
        kiln_cmd_report(err);
        kiln_error_free(&err);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    kiln_exec_cancel_free(the_cancel);
    the_cancel = NULL;
    free(mounts);
    kiln_vec_dispose(&o.mounts, free);
    kiln_vec_dispose(&o.lowers, NULL);
    kiln_vec_dispose(&o.env, NULL);
    return status;
}
