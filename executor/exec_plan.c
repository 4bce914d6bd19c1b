/*
 * exec_plan.c: turn a kiln_exec_spec into a sandbox plan (plain data, no system calls).
 *
 * The plan reproduces the containerd/runc default OCI spec as BuildKit edits it
 * (reference/buildkit.md §5): default mounts (/proc, /dev and its nodes, /dev/pts, /dev/shm,
 * /dev/mqueue, a read-only /sys), the generated /etc/resolv.conf and /etc/hosts, the op's own
 * mounts, then Docker's masked and read-only paths. Everything here is unit-testable without root;
 * exec_child.c applies the plan.
 */
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>

#define KILN_LOG_DOMAIN "executor"
#include "base/base.h"
#include "base/path.h"
#include "base/vec.h"
#include "executor/exec_internal.h"

/* Docker/containerd masked and read-only paths (moby oci/defaults.go). */
static const char *const masked_paths[] = {
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};
static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
static const char *const insecure_devs[] = {
        "/dev/kmsg",         "/dev/cuse",  "/dev/fuse",  "/dev/kvm",   "/dev/net/tun",
        "/dev/loop-control", "/dev/loop0", "/dev/loop1", "/dev/loop2", "/dev/loop3",
        "/dev/loop4",        "/dev/loop5", "/dev/loop6", "/dev/loop7"};

static kiln_plan_mount *
plan_add(kiln_exec_plan *plan, kiln_plan_kind kind, const char *source, const char *dest,
         const char *fstype, unsigned long flags, const char *data)
{
    kiln_plan_mount *m = xnew(kiln_plan_mount);

    m->kind = kind;
    m->source = xstrdup(source);
    m->dest = kiln_path_clean(dest);
    m->fstype = xstrdup(fstype);
    m->flags = flags;
    m->data = xstrdup(data);
    kiln_vec_push(&plan->mounts, m);
    return m;
}

static void
plan_mount_free(void *p)
{
    kiln_plan_mount *m = p;

    free(m->source);
    free(m->dest);
    free(m->fstype);
    free(m->data);
    free(m);
}

/* A generated /etc file: root's, 0644, read-only, on the sandbox's private tmpfs (BuildKit binds
 * its copies from the state dir read-only with nosuid,noexec,nodev: the same, without a file per
 * run on the host's disk). */
static void
plan_etc_file(kiln_exec_plan *plan, const char *dest, const char *text)
{
    kiln_plan_mount *m = plan_add(plan, KILN_PLAN_SECRET, NULL, dest, NULL, 0, NULL);

    m->content = text;
    m->content_len = strlen(text);
    m->mode = 0644;
    m->dest_is_file = true;
}

/* The default mounts every sandbox gets, in the order runc applies them. */
static void
plan_default_mounts(kiln_exec_plan *plan, bool sandboxed)
{
    const bool sys = !plan->rootless;
    const unsigned long nse = MS_NOSUID | MS_NOEXEC | MS_NODEV;
    kiln_plan_mount *m;

    plan_add(plan, KILN_PLAN_MOUNT, "proc", "/proc", "proc", nse, NULL);
    plan_add(plan, KILN_PLAN_MOUNT, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME,
             "mode=755,size=65536k");
    for (size_t i = 0; i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++) {
        cleanup_free char *host = xasprintf("/dev/%s", dev_nodes[i]);
        m = plan_add(plan, KILN_PLAN_DEVICE, host, host, NULL, 0, NULL);
        m->dest_is_file = true;
    }
    /* security.insecure also gets these device nodes, when the host has them (BuildKit) */
    for (size_t i = 0; !sandboxed && i < sizeof(insecure_devs) / sizeof(insecure_devs[0]); i++) {
        m = plan_add(plan, KILN_PLAN_DEVICE, insecure_devs[i], insecure_devs[i], NULL, 0, NULL);
        m->dest_is_file = true;
        m->optional = true;
    }
    plan_add(plan, KILN_PLAN_MOUNT, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5");
    plan_add(plan, KILN_PLAN_SYMLINK, "pts/ptmx", "/dev/ptmx", NULL, 0, NULL);
    plan_add(plan, KILN_PLAN_SYMLINK, "/proc/self/fd", "/dev/fd", NULL, 0, NULL);
    plan_add(plan, KILN_PLAN_SYMLINK, "/proc/self/fd/0", "/dev/stdin", NULL, 0, NULL);
    plan_add(plan, KILN_PLAN_SYMLINK, "/proc/self/fd/1", "/dev/stdout", NULL, 0, NULL);
    plan_add(plan, KILN_PLAN_SYMLINK, "/proc/self/fd/2", "/dev/stderr", NULL, 0, NULL);
    plan_add(plan, KILN_PLAN_MOUNT, "shm", "/dev/shm", "tmpfs", nse, "mode=1777,size=65536k");
    plan_add(plan, KILN_PLAN_MOUNT, "mqueue", "/dev/mqueue", "mqueue", nse, NULL);
    /* insecure mode gets a writable /sys, as BuildKit's security.insecure does; rootless
     * drops every /sys mount (a sysfs needs a network namespace we own), as BuildKit does */
    if (sys)
        plan_add(plan, KILN_PLAN_MOUNT, "sysfs", "/sys", "sysfs", nse | (sandboxed ? MS_RDONLY : 0),
                 NULL);
    /* BuildKit adds the cgroup filesystem read-only; in our cgroup namespace its root is the
     * step's own cgroup (the unified hierarchy, also on hybrid hosts) */
    if (sys)
        plan_add(plan, KILN_PLAN_MOUNT, "cgroup", "/sys/fs/cgroup", "cgroup2",
                 nse | (sandboxed ? MS_RDONLY : 0), NULL);
    plan_etc_file(plan, "/etc/resolv.conf", plan->resolv_conf);
    plan_etc_file(plan, "/etc/hosts", plan->hosts);
}

static int
plan_check_dest(const char *dest, size_t i, kiln_error **err)
{
    cleanup_free char *clean = NULL;

    if (!dest || !kiln_path_is_abs(dest))
        return kiln_error_set(err, KILN_EINVAL, "mount %zu: destination `%s` is not absolute", i,
                              dest ? dest : "");
    clean = kiln_path_clean(dest);
    if (strcmp(clean, "/") == 0)
        return kiln_error_set(err, KILN_EINVAL, "mount %zu: cannot mount over `/`", i);
    return 0;
}

/* One mount of the op (bind, tmpfs, cache, secret, ssh). */
static int
plan_user_mount(kiln_exec_plan *plan, const kiln_exec_mount *um, size_t i, const char *cache_dir,
                kiln_error **err)
{
    const unsigned long ro = um->readonly ? MS_RDONLY : 0;
    cleanup_free char *src = NULL;
    cleanup_free char *data = NULL;
    kiln_plan_mount *m;
    int ret;

    ret = plan_check_dest(um->dest, i, err);
    if (ret < 0)
        return ret;
    switch (um->type) {
    case KILN_EXEC_MOUNT_BIND:
        if (!um->source || !kiln_path_is_abs(um->source))
            return kiln_error_set(err, KILN_EINVAL, "mount %zu (%s): bind source must be absolute",
                                  i, um->dest);
        if (um->subpath && *um->subpath) {
            ret = kiln_path_resolve_in_root(&src, um->source, um->subpath, 0, err);
            if (ret < 0)
                return kiln_error_wrap(err, "mount %zu (%s): subpath `%s`", i, um->dest,
                                       um->subpath);
        } else {
            src = kiln_path_clean(um->source);
        }
        m = plan_add(plan, KILN_PLAN_MOUNT, src, um->dest, NULL, MS_BIND | MS_REC, NULL);
        m->readonly = um->readonly;
        return 0;
    case KILN_EXEC_MOUNT_TMPFS:
        data = um->tmpfs_size ? xasprintf("mode=1777,size=%llu", (unsigned long long)um->tmpfs_size)
                              : xstrdup("mode=1777");
        plan_add(plan, KILN_PLAN_MOUNT, "tmpfs", um->dest, "tmpfs", MS_NOSUID | MS_NODEV | ro,
                 data);
        return 0;
    case KILN_EXEC_MOUNT_CACHE:
        if (!cache_dir)
            return kiln_error_set(err, KILN_EINTERNAL, "mount %zu (%s): no cache instance", i,
                                  um->dest);
        m = plan_add(plan, KILN_PLAN_MOUNT, cache_dir, um->dest, NULL, MS_BIND | MS_REC, NULL);
        m->readonly = um->readonly;
        return 0;
    case KILN_EXEC_MOUNT_SECRET:
        if (!um->data && um->data_len)
            return kiln_error_set(err, KILN_EINVAL, "mount %zu (%s): secret without data", i,
                                  um->dest);
        m = plan_add(plan, KILN_PLAN_SECRET, NULL, um->dest, NULL, 0, NULL);
        m->content = um->data;
        m->content_len = um->data_len;
        m->mode = um->mode ? um->mode & 07777 : 0400;
        m->uid = um->uid;
        m->gid = um->gid;
        m->dest_is_file = true;
        return 0;
    case KILN_EXEC_MOUNT_SSH:
        if (!um->source || !kiln_path_is_abs(um->source))
            return kiln_error_set(err, KILN_EINVAL, "mount %zu (%s): ssh socket must be absolute",
                                  i, um->dest);
        m = plan_add(plan, KILN_PLAN_MOUNT, um->source, um->dest, NULL, MS_BIND, NULL);
        m->dest_is_file = true;
        return 0;
    }
    return kiln_error_set(err, KILN_EINVAL, "mount %zu (%s): unknown type %d", i, um->dest,
                          (int)um->type);
}

static int
plan_rootfs(kiln_exec_plan *plan, const kiln_exec_spec *spec, kiln_error **err)
{
    kiln_buf opts = KILN_BUF_INIT;

    plan->rootfs_readonly = spec->rootfs_readonly;
    if (spec->rootfs && spec->n_lowers)
        return kiln_error_set(err, KILN_EINVAL,
                              "rootfs: give a directory or overlay lowers, "
                              "not both");
    if (spec->rootfs) {
        if (!kiln_path_is_abs(spec->rootfs))
            return kiln_error_set(err, KILN_EINVAL, "rootfs `%s` is not absolute", spec->rootfs);
        plan->rootfs_source = kiln_path_clean(spec->rootfs);
        return 0;
    }
    if (!spec->n_lowers || !spec->lowers)
        return kiln_error_set(err, KILN_EINVAL, "rootfs: no directory and no overlay lowers");
    if (!spec->upper != !spec->work)
        return kiln_error_set(err, KILN_EINVAL, "rootfs overlay: upper and work go together");
    kiln_buf_puts(&opts, "lowerdir=", NULL);
    for (size_t i = 0; i < spec->n_lowers; i++) {
        const char *l = spec->lowers[i];
        /* ':' and ',' separate overlay options; such paths cannot be passed safely */
        if (!l || !kiln_path_is_abs(l) || strpbrk(l, ":,")) {
            kiln_buf_dispose(&opts);
            return kiln_error_set(err, KILN_EINVAL, "rootfs overlay: bad lower dir `%s`",
                                  l ? l : "");
        }
        kiln_buf_printf(&opts, NULL, "%s%s", i ? ":" : "", l);
    }
    if (spec->upper) {
        if (strpbrk(spec->upper, ":,") || strpbrk(spec->work, ":,")) {
            kiln_buf_dispose(&opts);
            return kiln_error_set(err, KILN_EINVAL, "rootfs overlay: bad upper/work dir");
        }
        kiln_buf_printf(&opts, NULL, ",upperdir=%s,workdir=%s", spec->upper, spec->work);
    } else if (spec->n_lowers == 1) {
        /* overlayfs wants two lowers without an upper: a plain read-only bind does the job */
        kiln_buf_dispose(&opts);
        plan->rootfs_source = kiln_path_clean(spec->lowers[0]);
        plan->rootfs_readonly = true;
        return 0;
    }
    plan->rootfs_overlay = true;
    plan->rootfs_data = kiln_buf_detach(&opts);
    return 0;
}

static char **
strv_copy(const char *const *v, size_t extra)
{
    size_t n = 0;
    char **out;

    while (v && v[n])
        n++;
    out = xcalloc(n + extra + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

static int
plan_process(kiln_exec_plan *plan, const kiln_exec_spec *spec, kiln_error **err)
{
    bool has_path = false;
    size_t n = 0;

    if (!spec->args || !spec->args[0] || !*spec->args[0])
        return kiln_error_set(err, KILN_EINVAL, "no command to run");
    plan->argv = strv_copy(spec->args, 0);
    for (const char *const *e = spec->env; e && *e; e++) {
        if (!strchr(*e, '=') || **e == '=')
            return kiln_error_set(err, KILN_EINVAL, "env entry `%s` is not KEY=VALUE", *e);
        if (kiln_str_has_prefix(*e, "PATH="))
            has_path = true;
    }
    plan->envp = strv_copy(spec->env, 1);
    while (plan->envp[n])
        n++;
    if (!has_path)
        plan->envp[n] = xstrdup(KILN_EXEC_DEFAULT_PATH);
    if (spec->cwd && !kiln_path_is_abs(spec->cwd))
        return kiln_error_set(err, KILN_EINVAL, "working directory `%s` is not absolute",
                              spec->cwd);
    plan->cwd = spec->cwd ? kiln_path_clean(spec->cwd) : xstrdup("/");
    plan->user = spec->user && *spec->user ? xstrdup(spec->user) : NULL;
    for (size_t i = 0; i < spec->n_rlimits; i++) {
        const kiln_exec_rlimit *r = &spec->rlimits[i];
        if (r->resource < 0 || r->resource >= RLIM_NLIMITS || r->soft > r->hard)
            return kiln_error_set(err, KILN_EINVAL, "rlimit %d: bad resource or soft > hard",
                                  r->resource);
        plan->rlimits[r->resource].rlim_cur = r->soft;
        plan->rlimits[r->resource].rlim_max = r->hard;
        plan->rlimit_set[r->resource] = true;
    }
    return 0;
}

static int
plan_identity(kiln_exec_plan *plan, const kiln_exec_spec *spec, const char *host_resolv,
              kiln_error **err)
{
    const char *h = spec->hostname && *spec->hostname ? spec->hostname : KILN_EXEC_DEFAULT_HOSTNAME;
    int ret;

    if (strlen(h) > 64 || strpbrk(h, " \t\n/"))
        return kiln_error_set(err, KILN_EINVAL, "bad hostname `%s`", h);
    plan->hostname = xstrdup(h);
    ret = kiln_exec_gen_hosts(&plan->hosts, h, spec->extra_hosts, spec->n_extra_hosts, err);
    if (ret < 0)
        return ret;
    plan->resolv_conf = kiln_exec_gen_resolv_conf(host_resolv, spec->network == KILN_EXEC_NET_HOST);
    if (spec->security == KILN_EXEC_SECURITY_INSECURE && !spec->allow_insecure)
        return kiln_error_set(err, KILN_EINVAL,
                              "security.insecure requested but not allowed by the caller");
    plan->sandboxed = spec->security != KILN_EXEC_SECURITY_INSECURE;
    plan->caps = plan->sandboxed ? kiln_exec_default_caps() : ~(uint64_t)0;
    plan->unshare_flags =
            CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
    if (plan->rootless)
        plan->unshare_flags |= CLONE_NEWUSER;
    if (spec->network == KILN_EXEC_NET_NONE) {
        plan->unshare_flags |= CLONE_NEWNET;
        plan->loopback_up = true;
    } else if (spec->network != KILN_EXEC_NET_HOST) {
        return kiln_error_set(err, KILN_EINVAL, "unknown network mode %d", (int)spec->network);
    }
    return 0;
}

/* Build the plan (see exec_internal.h). */
int
kiln_exec_plan_build(kiln_exec_plan *out, const kiln_exec_spec *spec, const char *host_resolv,
                     char *const *cache_dirs, bool rootless, kiln_error **err)
{
    int ret;

    memset(out, 0, sizeof(*out));
    kiln_vec_init(&out->mounts);
    out->rootless = rootless;
    ret = plan_identity(out, spec, host_resolv, err);
    if (ret == 0)
        ret = plan_rootfs(out, spec, err);
    if (ret == 0)
        ret = plan_process(out, spec, err);
    if (ret < 0)
        return ret;
    plan_default_mounts(out, out->sandboxed);
    for (size_t i = 0; i < spec->n_mounts; i++) {
        ret = plan_user_mount(out, &spec->mounts[i], i, cache_dirs ? cache_dirs[i] : NULL, err);
        if (ret < 0)
            return ret;
    }
    if (!out->sandboxed)
        return 0;
    for (size_t i = 0; i < sizeof(masked_paths) / sizeof(masked_paths[0]); i++)
        if (!rootless || !kiln_str_has_prefix(masked_paths[i], "/sys/"))
            plan_add(out, KILN_PLAN_MASK, NULL, masked_paths[i], NULL, 0, NULL)->optional = true;
    for (size_t i = 0; i < sizeof(readonly_paths) / sizeof(readonly_paths[0]); i++)
        plan_add(out, KILN_PLAN_READONLY, NULL, readonly_paths[i], NULL, 0, NULL)->optional = true;
    return 0;
}

static void
strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* Free everything a plan owns; the plan is zeroed. NULL-safe on its fields. */
void
kiln_exec_plan_dispose(kiln_exec_plan *plan)
{
    kiln_vec_dispose(&plan->mounts, plan_mount_free);
    free(plan->rootfs_source);
    free(plan->rootfs_data);
    free(plan->hostname);
    free(plan->resolv_conf);
    free(plan->hosts);
    strv_free(plan->argv);
    strv_free(plan->envp);
    free(plan->cwd);
    free(plan->user);
    memset(plan, 0, sizeof(*plan));
}
