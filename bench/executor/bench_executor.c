/*
 * bench_executor.c: how long does a sandboxed step cost? Runs `/bin/true` N times (default 100)
 * with kiln_exec_run() on an overlay rootfs (the busybox-based lower dir given with --rootfs, or
 * built from /bin/busybox in a temp dir, and a fresh upper/work pair per run, as a RUN step gets)
 * and prints the median, p90 and max start-to-exit times. A benchmark, never a pass/fail test;
 * needs root. `--load N` runs N busy processes meanwhile (a loaded build machine, reproducibly);
 * `--insecure` compares with seccomp, capabilities and masks off.
 *
 *     bench_executor [--runs N] [--rootfs DIR] [--host-network] [--insecure] [--load N]
 */
#include <getopt.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/path.h"
#include "executor/executor.h"

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time (user + system) of this process and its reaped children, in ms: unlike wall time it
 * does not depend on how loaded the machine is. Sandbox processes are reaped by their parents
 * inside the sandbox, so only A (our child) and what it accounts for are counted. */
static double
cpu_ms(void)
{
    struct rusage self, kids;

    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
                    kids.ru_stime.tv_sec) *
                   1e3 +
           (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
                    kids.ru_stime.tv_usec) /
                   1e3;
}

/* Start n processes that spin until killed; their pids go to pids[]. */
static void
start_load(pid_t *pids, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* never outlive the benchmark */
            for (volatile unsigned long x = 0;; x++)
                ;
        }
    }
}

static void
stop_load(pid_t *pids, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
    }
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* A busybox rootfs in dir/lower; returns 0 or -1. */
static int
make_rootfs(const char *lower)
{
    cleanup_free char *cmd =
            xasprintf("mkdir -p %s/bin %s/etc %s/proc %s/sys %s/dev && cp /bin/busybox %s/bin/ "
                      "&& ln -s busybox %s/bin/true && ln -s busybox %s/bin/sh && "
                      "echo 'root:x:0:0:root:/root:/bin/sh' > %s/etc/passwd && "
                      "echo 'root:x:0:' > %s/etc/group",
                      lower, lower, lower, lower, lower, lower, lower, lower, lower, lower);

    return system(cmd) == 0 ? 0 : -1;
}

static int
one_run(double *ms, const char *base, const char *lower, bool host_net, bool insecure, int i,
        kiln_error **err)
{
    const char *args[] = {"/bin/true", NULL};
    const char *lowers[] = {lower};
    cleanup_free char *upper = xasprintf("%s/run%d/upper", base, i);
    cleanup_free char *work = xasprintf("%s/run%d/work", base, i);
    cleanup_free char *state = kiln_path_join(base, "state");
    kiln_exec_spec spec = KILN_EXEC_SPEC_INIT;
    kiln_exec_result res;
    double t0;
    int ret;

    ret = kiln_fs_mkdir_p(upper, 0755, err);
    if (ret == 0)
        ret = kiln_fs_mkdir_p(work, 0755, err);
    if (ret < 0)
        return ret;
    spec.lowers = lowers;
    spec.n_lowers = 1;
    spec.upper = upper;
    spec.work = work;
    spec.args = args;
    spec.state_dir = state;
    spec.network = host_net ? KILN_EXEC_NET_HOST : KILN_EXEC_NET_NONE;
    spec.security = insecure ? KILN_EXEC_SECURITY_INSECURE : KILN_EXEC_SECURITY_SANDBOX;
    spec.allow_insecure = insecure;
    t0 = now_ms();
    ret = kiln_exec_run(&res, &spec, err);
    *ms = now_ms() - t0;
    if (ret == 0 && res.exit_code != 0)
        ret = kiln_error_set(err, KILN_EINTERNAL, "true exited %d", res.exit_code);
    return ret;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
            {"runs", required_argument, NULL, 'n'},   {"rootfs", required_argument, NULL, 'r'},
            {"host-network", no_argument, NULL, 'H'}, {"insecure", no_argument, NULL, 'I'},
            {"load", required_argument, NULL, 'l'},   {NULL, 0, NULL, 0}};
    cleanup_free char *base = NULL;
    cleanup_free char *lower = NULL;
    cleanup_free double *ms = NULL;
    cleanup_free pid_t *load = NULL;
    kiln_error *err = NULL;
    int64_t runs = 100, n_load = 0;
    bool host_net = false;
    double cpu0;
    /* compare with the sandbox's security off: what seccomp, caps and masks cost */
    bool insecure = false;
    int c, ret = 0;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'n' && kiln_parse_i64(optarg, &runs, "--runs", &err) == 0 && runs > 0)
            continue;
        if (c == 'l' && kiln_parse_i64(optarg, &n_load, "--load", &err) == 0 && n_load >= 0 &&
            n_load <= 64)
            continue;
        if (c == 'r')
            lower = xstrdup(optarg);
        else if (c == 'H')
            host_net = true;
        else if (c == 'I')
            insecure = true;
        else {
            fprintf(stderr, "usage: bench_executor [--runs N] [--rootfs DIR] [--host-network] "
                            "[--insecure] [--load N]\n");
            return 2;
        }
    }
    if (kiln_fs_mkdtemp(&base, "/tmp", "kiln-bench-exec-", &err) < 0)
        goto fail;
    if (!lower) {
        lower = kiln_path_join(base, "lower");
        if (make_rootfs(lower) < 0) {
            kiln_error_set(&err, KILN_EINTERNAL, "cannot build a busybox rootfs");
            goto fail;
        }
    }
    ms = xcalloc((size_t)runs, sizeof(double));
    load = xcalloc((size_t)n_load + 1, sizeof(pid_t));
    start_load(load, n_load);
    cpu0 = cpu_ms();
    for (int64_t i = 0; i < runs; i++)
        if (one_run(&ms[i], base, lower, host_net, insecure, (int)i, &err) < 0)
            goto fail;
    /* before the busy processes are reaped: their time is not ours */
    cpu0 = (cpu_ms() - cpu0) / (double)runs;
    stop_load(load, n_load);
    qsort(ms, (size_t)runs, sizeof(double), cmp_double);
    printf("kiln executor: /bin/true on overlay, %lld runs, network %s%s, %lld busy processes: "
           "median %.2f ms, p90 %.2f ms, max %.2f ms; cpu %.2f ms per run\n",
           (long long)runs, host_net ? "host" : "none", insecure ? ", insecure" : "",
           (long long)n_load, ms[runs / 2], ms[runs * 9 / 10], ms[runs - 1], cpu0);
    goto out;
fail:
    if (load)
        stop_load(load, n_load);
    fprintf(stderr, "bench_executor: %s\n", err ? err->msg : "failed");
    kiln_error_free(&err);
    ret = 1;
out:
    if (base)
        kiln_fs_rm_rf(base, NULL);
    return ret;
}
