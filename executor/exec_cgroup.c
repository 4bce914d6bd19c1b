/*
 * exec_cgroup.c: one cgroup per run, under a `kiln` parent, carrying the step's memory, pids and
 * cpu limits. On a unified (v2) hierarchy that is /sys/fs/cgroup/kiln/<name> with memory.max,
 * pids.max, cpu.max and cgroup.kill; on a v1/hybrid host it is kiln/<name> in each of the pids,
 * memory and cpu controllers that a limit needs. Destroying kills what is left (cgroup.kill, or
 * SIGKILL to every pid in cgroup.procs on v1), waits for the cgroup to empty and removes it.
 * kiln_exec_sweep_cgroups removes those of kiln processes that died before they could.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#include <linux/magic.h>

#define KILN_LOG_DOMAIN "executor"
#include "base/base.h"
#include "executor/exec_internal.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

/* Where the hierarchies are: CGROUP_ROOT, or a test's own cgroup2 mount (kiln_exec__cgroup_root) */
static const char *cgroup_root = CGROUP_ROOT;

/* Point the executor at another cgroup mount (tests only: call before any run, not thread-safe).
 * NULL restores /sys/fs/cgroup. `root` is borrowed until the next call. */
void
kiln_exec__cgroup_root(const char *root)
{
    cgroup_root = root ? root : CGROUP_ROOT;
}

static int
write_file(const char *dir, const char *file, const char *value, kiln_error **err)
{
    cleanup_free char *path = xasprintf("%s/%s", dir, file);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    size_t len = strlen(value);

    if (fd < 0)
        return kiln_error_errno(err, errno, "cgroup: open %s", path);
    if (write(fd, value, len) != (ssize_t)len)
        return kiln_error_errno(err, errno, "cgroup: write `%s` to %s", value, path);
    return 0;
}

static bool
is_cgroup2(const char *path)
{
    struct statfs sf;

    return statfs(path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

static int
make_dir(kiln_exec_cgroup *cg, const char *hier, const char *name, kiln_error **err)
{
    cleanup_free char *parent = xasprintf("%s/kiln", hier);
    cleanup_free char *dir = xasprintf("%s/%s", parent, name);
    size_t n = 0;

    if (mkdir(parent, 0755) < 0 && errno != EEXIST)
        return kiln_error_errno(err, errno, "cgroup: mkdir %s", parent);
    if (mkdir(dir, 0755) < 0)
        return kiln_error_errno(err, errno, "cgroup: mkdir %s", dir);
    while (cg->dirs[n])
        n++;
    kiln_assert(n + 1 < sizeof(cg->dirs) / sizeof(cg->dirs[0]));
    cg->dirs[n] = steal_pointer(&dir);
    return 0;
}

/* Whether `controller` is listed in dir/cgroup.controllers (v2). */
static bool
has_controller(const char *dir, const char *controller)
{
    cleanup_free char *path = xasprintf("%s/cgroup.controllers", dir);
    cleanup_file FILE *f = fopen(path, "re");
    char name[64];

    while (f && fscanf(f, "%63s", name) == 1)
        if (strcmp(name, controller) == 0)
            return true;
    return false;
}

/* Each limit needs its controller delegated to the run's cgroup. On a hybrid host the unified
 * hierarchy usually has none of them: they are bound to the v1 hierarchies. */
static int
check_v2_controllers(const char *dir, const kiln_exec_spec *spec, kiln_error **err)
{
    const struct {
        bool wanted;
        const char *name;
    } need[] = {{spec->memory_max != 0, "memory"},
                {spec->pids_max != 0, "pids"},
                {spec->cpu_quota_us != 0, "cpu"}};

    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (need[i].wanted && !has_controller(dir, need[i].name))
            return kiln_error_set(err, KILN_EUNSUPPORTED,
                                  "cgroup v2: the %s controller is not available in %s",
                                  need[i].name, dir);
    return 0;
}

static int
create_v2(kiln_exec_cgroup *cg, const char *name, const kiln_exec_spec *spec, kiln_error **err)
{
    cleanup_free char *parent = xasprintf("%s/kiln", cgroup_root);
    char val[64];
    int ret;

    cg->v2 = true;
    ret = make_dir(cg, cgroup_root, name, err);
    if (ret < 0)
        return ret;
    /* enable the controllers for kiln's children; already-enabled ones are fine */
    (void)write_file(cgroup_root, "cgroup.subtree_control", "+memory +pids +cpu", NULL);
    (void)write_file(parent, "cgroup.subtree_control", "+memory +pids +cpu", NULL);
    ret = check_v2_controllers(cg->dirs[0], spec, err);
    if (ret < 0)
        return ret;
    if (spec->memory_max) {
        snprintf(val, sizeof(val), "%llu", (unsigned long long)spec->memory_max);
        ret = write_file(cg->dirs[0], "memory.max", val, err);
        if (ret == 0)
            (void)write_file(cg->dirs[0], "memory.swap.max", "0", NULL);
    }
    if (ret == 0 && spec->pids_max) {
        snprintf(val, sizeof(val), "%llu", (unsigned long long)spec->pids_max);
        ret = write_file(cg->dirs[0], "pids.max", val, err);
    }
    if (ret == 0 && spec->cpu_quota_us) {
        snprintf(val, sizeof(val), "%llu %llu", (unsigned long long)spec->cpu_quota_us,
                 (unsigned long long)(spec->cpu_period_us ? spec->cpu_period_us : 100000));
        ret = write_file(cg->dirs[0], "cpu.max", val, err);
    }
    return ret;
}

static int
create_v1(kiln_exec_cgroup *cg, const char *name, const kiln_exec_spec *spec, kiln_error **err)
{
    char val[64];
    int ret = 0;
    size_t n = 0;

    if (spec->pids_max) {
        cleanup_free char *hier = xasprintf("%s/pids", cgroup_root);
        ret = make_dir(cg, hier, name, err);
        snprintf(val, sizeof(val), "%llu", (unsigned long long)spec->pids_max);
        ret = ret ? ret : write_file(cg->dirs[n++], "pids.max", val, err);
    }
    if (ret == 0 && spec->memory_max) {
        cleanup_free char *hier = xasprintf("%s/memory", cgroup_root);
        ret = make_dir(cg, hier, name, err);
        snprintf(val, sizeof(val), "%llu", (unsigned long long)spec->memory_max);
        ret = ret ? ret : write_file(cg->dirs[n++], "memory.limit_in_bytes", val, err);
    }
    if (ret == 0 && spec->cpu_quota_us) {
        cleanup_free char *hier = xasprintf("%s/cpu", cgroup_root);
        ret = make_dir(cg, hier, name, err);
        snprintf(val, sizeof(val), "%llu",
                 (unsigned long long)(spec->cpu_period_us ? spec->cpu_period_us : 100000));
        ret = ret ? ret : write_file(cg->dirs[n], "cpu.cfs_period_us", val, err);
        snprintf(val, sizeof(val), "%llu", (unsigned long long)spec->cpu_quota_us);
        ret = ret ? ret : write_file(cg->dirs[n], "cpu.cfs_quota_us", val, err);
    }
    return ret;
}

/* Create the run's cgroup (see exec_internal.h). */
int
kiln_exec_cgroup_create(kiln_exec_cgroup *cg, const char *name, const kiln_exec_spec *spec,
                        kiln_error **err)
{
    int ret;

    memset(cg, 0, sizeof(*cg));
    if (is_cgroup2(cgroup_root))
        ret = create_v2(cg, name, spec, err);
    else
        ret = create_v1(cg, name, spec, err);
    if (ret < 0) {
        kiln_exec_cgroup_destroy(cg, NULL);
        return ret;
    }
    return 0;
}

/* Join (see exec_internal.h). Only async-signal-safe calls: it runs in the forked child. */
int
kiln_exec_cgroup_enter(const kiln_exec_cgroup *cg, pid_t pid)
{
    char path[512];
    char val[32];
    int len = snprintf(val, sizeof(val), "%d", (int)pid);

    for (size_t i = 0; cg->dirs[i]; i++) {
        int fd;
        ssize_t n;

        snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dirs[i]);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        n = write(fd, val, (size_t)len);
        if (n != len) {
            int e = errno;
            close(fd);
            return -e;
        }
        close(fd);
    }
    return 0;
}

/* SIGKILL every pid listed in dir/cgroup.procs. Returns how many were listed. */
static int
kill_procs(const char *dir)
{
    cleanup_free char *path = xasprintf("%s/cgroup.procs", dir);
    cleanup_file FILE *f = fopen(path, "re");
    int pid, n = 0;

    if (!f)
        return 0;
    while (fscanf(f, "%d", &pid) == 1) {
        if (pid > 0)
            kill(pid, SIGKILL);
        n++;
    }
    return n;
}

/* Destroy (see exec_internal.h). */
int
kiln_exec_cgroup_destroy(kiln_exec_cgroup *cg, kiln_error **err)
{
    int ret = 0;

    for (size_t i = 0; cg->dirs[i]; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        int tries = 400; /* 2 s */

        if (cg->v2)
            (void)write_file(cg->dirs[i], "cgroup.kill", "1", NULL);
        while (rmdir(cg->dirs[i]) < 0 && errno == EBUSY && tries-- > 0) {
            kill_procs(cg->dirs[i]);
            nanosleep(&ts, NULL);
        }
        if (access(cg->dirs[i], F_OK) == 0 && ret == 0)
            ret = kiln_error_errno(err, errno, "cgroup: remove %s", cg->dirs[i]);
        free(cg->dirs[i]);
        cg->dirs[i] = NULL;
    }
    return ret;
}

/* The value of `key` in a flat-keyed cgroup file ("key value" lines), or -1 when absent. */
static long long
read_key(const char *dir, const char *file, const char *key)
{
    cleanup_free char *path = xasprintf("%s/%s", dir, file);
    cleanup_file FILE *f = fopen(path, "re");
    char name[64];
    long long v;

    while (f && fscanf(f, "%63s %lld", name, &v) == 2)
        if (strcmp(name, key) == 0)
            return v;
    return -1;
}

/* Whether the OOM killer struck (see exec_internal.h). */
bool
kiln_exec_cgroup_oom_killed(const kiln_exec_cgroup *cg)
{
    for (size_t i = 0; cg->dirs[i]; i++) {
        cleanup_free char *failcnt = NULL;
        cleanup_close int fd = -1;
        char buf[32];
        ssize_t n;
        long long v;

        if (cg->v2) {
            if (read_key(cg->dirs[i], "memory.events", "oom_kill") > 0)
                return true;
            continue;
        }
        v = read_key(cg->dirs[i], "memory.oom_control", "oom_kill");
        if (v >= 0) {
            if (v > 0)
                return true;
            continue;
        }
        /* before 4.13 v1 has no kill counter: a limit that was hit is the best evidence */
        failcnt = xasprintf("%s/memory.failcnt", cg->dirs[i]);
        fd = open(failcnt, O_RDONLY | O_CLOEXEC);
        n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (n > 0) {
            buf[n] = '\0';
            if (strtoll(buf, NULL, 10) > 0)
                return true;
        }
    }
    return false;
}

/* Whether the pids controller refused a fork (see exec_internal.h). */
bool
kiln_exec_cgroup_pids_hit(const kiln_exec_cgroup *cg)
{
    for (size_t i = 0; cg->dirs[i]; i++)
        if (read_key(cg->dirs[i], "pids.events", "max") > 0)
            return true;
    return false;
}

/* ---- sweeping the cgroups of dead runs ------------------------------------------------------ */

/* Whether `name` is "run-<pid>-<n>" of a process that no longer exists. */
static bool
stale_run(const char *name)
{
    char *end;
    long pid;

    if (!kiln_str_has_prefix(name, "run-"))
        return false;
    errno = 0;
    pid = strtol(name + 4, &end, 10);
    if (errno || pid <= 0 || pid > INT32_MAX || *end != '-')
        return false;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Sweep <hier>/kiln: returns the number removed, or a negative code (first failure in *err). */
static int
sweep_hier(const char *hier, bool v2, kiln_error **err)
{
    cleanup_free char *parent = xasprintf("%s/kiln", hier);
    cleanup_dir DIR *d = opendir(parent);
    struct dirent *de;
    int removed = 0, ret = 0;

    if (!d)
        return 0; /* no kiln cgroup in this hierarchy */
    while ((de = readdir(d)) != NULL) {
        kiln_exec_cgroup cg = {.v2 = v2};
        kiln_error *tmp = NULL;

        if (de->d_type != DT_DIR || !stale_run(de->d_name))
            continue;
        cg.dirs[0] = xasprintf("%s/%s", parent, de->d_name);
        kiln_log_info("removing cgroup %s of a run whose process is gone", cg.dirs[0]);
        if (kiln_exec_cgroup_destroy(&cg, &tmp) < 0) {
            if (ret == 0)
                ret = kiln_error_move(err, &tmp);
            kiln_error_free(&tmp);
        } else {
            removed++;
        }
    }
    return ret < 0 ? ret : removed;
}

int
kiln_exec_sweep_cgroups(kiln_error **err)
{
    static const char *const v1[] = {"pids", "memory", "cpu"};
    int removed = 0, ret = 0, r;

    if (is_cgroup2(cgroup_root))
        return sweep_hier(cgroup_root, true, err);
    for (size_t i = 0; i < sizeof(v1) / sizeof(v1[0]); i++) {
        cleanup_free char *hier = xasprintf("%s/%s", cgroup_root, v1[i]);
        r = sweep_hier(hier, false, ret < 0 ? NULL : err);
        if (r < 0 && ret == 0)
            ret = r;
        else if (r > 0)
            removed += r;
    }
    return ret < 0 ? ret : removed;
}
