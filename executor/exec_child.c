/*
 * exec_child.c: the sandbox side of kiln_exec_run(): applying a kiln_exec_plan.
 *
 * Two processes, and no fork(): copying the engine's page tables for a process that only sets up
 * mounts and execs costs milliseconds (2 ms per fork on our VMs, more with a large heap), more
 * than all the rest of a sandbox start. Both are clone()d sharing the caller's memory (CLONE_VM),
 * with their own stacks, file tables and namespaces:
 *   B  (pid 1)    cloned with CLONE_NEWPID (and CLONE_NEWUSER when rootless) by the calling
 *                 thread T, which then blocks until B releases it. B joins the cgroup, unshares
 *                 the other namespaces, mounts the rootfs and the plan's mounts, pivots into the
 *                 root, sets the hostname, brings `lo` up and starts C. It then releases T and
 *                 becomes the sandbox's init: it reaps orphans, reports C's wait status and
 *                 exits, and the kernel kills everything left in the pid namespace.
 *   C  (the step) cloned by B with CLONE_VM | CLONE_VFORK (B waits until C execs): sets rlimits,
 *                 drops the bounding set, loads seccomp, switches identity, sets the
 *                 capabilities and execs the command.
 * The memory is shared, so exactly one of T, B and C may use the heap (or libc state kept in
 * T's thread-local storage, such as errno and malloc's thread cache) at any time, as after
 * vfork(): T is blocked while B sets up, B is blocked while C runs until exec, and after the
 * release B only makes raw system calls on its own stack (init_wait_loop). Everything B and C
 * allocate is freed before the release, or lives in `ctx->stubs`, owned by T. For the same
 * reason C calls setresuid() & co. as raw system calls: glibc's wrappers would signal T's
 * threads to change their credentials too (the setxid broadcast).
 * Errors before exec are written to the sync pipe as (code, errno, message), the message naming
 * the failing step ("mount /proc"), and the process exits (crun's send_error_to_sync_socket).
 * The sync pipe is close-on-exec, so a successful exec closes C's copy.
 */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "base/base.h"
#include "base/path.h"
#include "executor/exec_internal.h"

/* ---------------------------------------------------------------------------------------------
 * Error reporting
 */

static __attribute__((noreturn, format(printf, 4, 5))) void
child_die(int sync_fd, int code, int errnum, const char *fmt, ...)
{
    struct {
        kiln_exec_msg hdr;
        char text[KILN_EXEC_MSG_MAX];
    } m;
    va_list ap;
    int n;

    memset(&m, 0, sizeof(m));
    va_start(ap, fmt);
    n = vsnprintf(m.text, sizeof(m.text), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(m.text))
        n = sizeof(m.text) - 1;
    m.hdr.type = KILN_EXEC_MSG_ERROR;
    m.hdr.code = code;
    m.hdr.errnum = errnum;
    m.hdr.len = n;
    /* one write below PIPE_BUF: atomic, never interleaved with another process's message */
    if (write(sync_fd, &m, sizeof(m.hdr) + (size_t)n) < 0)
        _exit(126);
    _exit(127);
}

#define die_errno(ctx, ...) child_die((ctx)->sync_fd, KILN_ESYS, errno, __VA_ARGS__)

static __attribute__((noreturn)) void
die_kiln(const kiln_exec_child_ctx *ctx, kiln_error *e)
{
    child_die(ctx->sync_fd, e->code, e->sys_errno, "%s", e->msg);
}

/* ---------------------------------------------------------------------------------------------
 * Mounts (process B, before pivot_root)
 */

/* Record a mountpoint we created on the rootfs itself (not on a tmpfs or another mount), so that
 * the parent can remove it after the run, as BuildKit removes its mount stubs. */
static void
report_stub(const kiln_exec_child_ctx *ctx, const char *host)
{
    struct statx stx;
    size_t root_len = strlen(ctx->rootfs_mnt), len;

    if (statx(AT_FDCWD, host, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0 ||
        !(stx.stx_mask & STATX_MNT_ID) || stx.stx_mnt_id != ctx->vars->root_mnt_id)
        return;
    len = strlen(host) - root_len;
    if (strncmp(host, ctx->rootfs_mnt, root_len) != 0 || len == 0)
        return; /* not below the root: left in place */
    /* B owns the heap while it sets up (see the top of this file); T reads the list later */
    kiln_vec_push(ctx->stubs, xstrndup(host + root_len, len));
}

/* mkdir -p; with `stubs`, every directory created is reported with report_stub(). */
static int
mkdir_p(const kiln_exec_child_ctx *ctx, const char *path, mode_t mode, bool stubs)
{
    cleanup_free char *copy = xstrdup(path);
    size_t root_len = strlen(ctx->rootfs_mnt);

    if (strlen(copy) <= root_len + 1)
        return 0; /* the root itself */
    for (char *p = copy + root_len + 1;; p++) {
        char c = *p;
        if (c != '/' && c != '\0')
            continue;
        *p = '\0';
        if (mkdir(copy, mode) == 0) {
            if (stubs)
                report_stub(ctx, copy);
        } else if (errno != EEXIST) {
            return -1;
        }
        *p = c;
        if (!c)
            return 0;
    }
}

/* Create the mountpoint for `dest` inside the root (a directory, or an empty file), never
 * following a symlink out of it; `stub`: report what was created for removal after the run.
 * Returns the resolved host path (owned). */
static char *
make_mountpoint(const kiln_exec_child_ctx *ctx, const char *dest, bool is_file, bool create,
                bool stub)
{
    cleanup_kiln_error kiln_error *e = NULL;
    cleanup_free char *parent = NULL;
    char *host = NULL;
    struct stat st;
    int fd;

    if (kiln_path_resolve_in_root(&host, ctx->rootfs_mnt, dest, 0, &e) < 0) {
        kiln_error_wrap(&e, "resolve mount destination %s", dest);
        die_kiln(ctx, e);
    }
    if (!create || lstat(host, &st) == 0)
        return host;
    parent = kiln_path_dir(host);
    if (mkdir_p(ctx, is_file ? parent : host, 0755, stub) < 0)
        die_errno(ctx, "create mountpoint %s", dest);
    if (is_file) {
        fd = open(host, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
            die_errno(ctx, "create mountpoint %s", dest);
        close(fd);
        if (stub)
            report_stub(ctx, host);
    }
    return host;
}

/* Open `dest` inside the root as an O_PATH fd (symlinks resolved inside the root) and return
 * "/proc/self/fd/N" for mount(2), the runc way of never mounting through an outside symlink. */
static int
open_target(const kiln_exec_child_ctx *ctx, int rootfd, const char *dest, char *buf, size_t len)
{
    cleanup_kiln_error kiln_error *e = NULL;
    int fd = kiln_path_open_in_root(rootfd, dest, O_PATH | O_CLOEXEC, 0, &e);

    if (fd < 0) {
        kiln_error_wrap(&e, "open mount destination %s", dest);
        die_kiln(ctx, e);
    }
    snprintf(buf, len, "/proc/self/fd/%d", fd);
    return fd;
}

/* MS_* flags a bind remount must repeat: in a user namespace, flags inherited from a more
 * privileged mount are locked and dropping them fails with EPERM (runc's getMountFlags). */
static unsigned long
locked_flags(const char *target)
{
    static const struct {
        unsigned long st, ms;
    } map[] = {{ST_NOSUID, MS_NOSUID},         {ST_NODEV, MS_NODEV},
               {ST_NOEXEC, MS_NOEXEC},         {ST_NOATIME, MS_NOATIME},
               {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME}};
    struct statvfs sv;
    unsigned long out = 0;

    if (statvfs(target, &sv) < 0)
        return 0;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (sv.f_flag & map[i].st)
            out |= map[i].ms;
    return out;
}

static void
remount_ro(const kiln_exec_child_ctx *ctx, int rootfd, const char *dest, unsigned long flags)
{
    char target[64];
    int fd = open_target(ctx, rootfd, dest, target, sizeof(target));
    unsigned long keep = (flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)) | locked_flags(target);

    if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
        die_errno(ctx, "remount %s read-only", dest);
    close(fd);
}

static void
apply_secret(const kiln_exec_child_ctx *ctx, int rootfd, const kiln_plan_mount *m, size_t idx)
{
    cleanup_free char *file = xasprintf("%s/%zu", ctx->secret_dir, idx);
    char target[64];
    int fd;

    if (!ctx->vars->secrets_ready) {
        /* the secrets tmpfs exists only in this mount namespace; nothing reaches a disk */
        if (mount("tmpfs", ctx->secret_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0700") < 0)
            die_errno(ctx, "mount secrets tmpfs");
        ctx->vars->secrets_ready = true;
    }
    fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        die_errno(ctx, "create secret for %s", m->dest);
    if (m->content_len && write(fd, m->content, m->content_len) != (ssize_t)m->content_len)
        die_errno(ctx, "write secret for %s", m->dest);
    if (fchown(fd, m->uid, m->gid) < 0 || fchmod(fd, m->mode) < 0)
        die_errno(ctx, "set owner/mode of secret %s", m->dest);
    close(fd);
    free(make_mountpoint(ctx, m->dest, true, true, true));
    fd = open_target(ctx, rootfd, m->dest, target, sizeof(target));
    if (mount(file, target, NULL, MS_BIND, NULL) < 0)
        die_errno(ctx, "mount secret %s", m->dest);
    close(fd);
    remount_ro(ctx, rootfd, m->dest, MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

static void
apply_mask(const kiln_exec_child_ctx *ctx, int rootfd, const kiln_plan_mount *m, const char *host)
{
    struct stat st;
    char target[64];
    int fd;

    if (lstat(host, &st) < 0)
        return; /* masked paths that do not exist need no mask */
    fd = open_target(ctx, rootfd, m->dest, target, sizeof(target));
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", target, "tmpfs", MS_RDONLY, NULL) < 0)
            die_errno(ctx, "mask %s", m->dest);
    } else if (mount("/dev/null", target, NULL, MS_BIND, NULL) < 0) {
        die_errno(ctx, "mask %s", m->dest);
    }
    close(fd);
}

static void
apply_mount(const kiln_exec_child_ctx *ctx, int rootfd, const kiln_plan_mount *m, size_t idx)
{
    cleanup_free char *host = NULL;
    char target[64];
    struct stat st;
    int fd;

    switch (m->kind) {
    case KILN_PLAN_SECRET:
        apply_secret(ctx, rootfd, m, idx);
        return;
    case KILN_PLAN_SYMLINK:
        host = make_mountpoint(ctx, m->dest, false, false, false);
        if (symlink(m->source, host) < 0 && errno != EEXIST)
            die_errno(ctx, "symlink %s", m->dest);
        return;
    case KILN_PLAN_MASK:
        host = make_mountpoint(ctx, m->dest, false, false, false);
        apply_mask(ctx, rootfd, m, host);
        return;
    case KILN_PLAN_READONLY:
        host = make_mountpoint(ctx, m->dest, false, false, false);
        if (lstat(host, &st) < 0)
            return;
        fd = open_target(ctx, rootfd, m->dest, target, sizeof(target));
        if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0)
            die_errno(ctx, "bind %s", m->dest);
        close(fd);
        remount_ro(ctx, rootfd, m->dest, MS_NOSUID | MS_NODEV | MS_NOEXEC);
        return;
    case KILN_PLAN_DEVICE:
    case KILN_PLAN_MOUNT:
        break;
    }
    if (m->kind == KILN_PLAN_DEVICE || (m->flags & MS_BIND)) {
        if (stat(m->source, &st) < 0 && m->optional && errno == ENOENT)
            return;
        if (stat(m->source, &st) < 0)
            die_errno(ctx, "mount %s: source %s", m->dest, m->source);
        host = make_mountpoint(ctx, m->dest, !S_ISDIR(st.st_mode), true, true);
    } else {
        host = make_mountpoint(ctx, m->dest, m->dest_is_file, true, true);
    }
    fd = open_target(ctx, rootfd, m->dest, target, sizeof(target));
    if (m->kind == KILN_PLAN_DEVICE) {
        if (mount(m->source, target, NULL, MS_BIND, NULL) < 0)
            die_errno(ctx, "mount %s", m->dest);
    } else if (mount(m->source, target, m->fstype, m->flags, m->data) < 0) {
        die_errno(ctx, "mount %s", m->dest);
    }
    close(fd);
    if (m->readonly || ((m->flags & MS_BIND) && (m->flags & MS_RDONLY)))
        remount_ro(ctx, rootfd, m->dest, m->flags);
}

/* Climb from a chroot to the real root of this (already private to us) mount namespace: chroot
 * into a subdirectory leaves the working directory outside the root, so ".." walks up to the
 * namespace's root. Only ever called in the sandbox's own new mount namespace. */
static void
escape_to_namespace_root(const kiln_exec_child_ctx *ctx)
{
    static const char *const subdirs[] = {"/proc", "/dev", "/tmp", "/etc", "/bin"};
    struct stat here, up;
    size_t i;

    if (chdir("/") < 0)
        die_errno(ctx, "chdir /");
    for (i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++)
        if (chroot(subdirs[i]) == 0)
            break;
    if (i == sizeof(subdirs) / sizeof(subdirs[0]))
        die_errno(ctx, "leave the chroot: chroot into a subdirectory");
    for (int n = 0; n < 4096; n++) {
        if (stat(".", &here) < 0 || stat("..", &up) < 0)
            die_errno(ctx, "leave the chroot: stat");
        if (here.st_dev == up.st_dev && here.st_ino == up.st_ino)
            break;
        if (chdir("..") < 0)
            die_errno(ctx, "leave the chroot: chdir ..");
    }
    if (chroot(".") < 0)
        die_errno(ctx, "leave the chroot: chroot .");
}

/* In a chroot whose root is not a mount point, "/" cannot be made private and pivot_root refuses
 * to run. Inside our new mount namespace, step out to the namespace's real root, make every mount
 * private there (so nothing below can propagate to the host), then re-enter the chroot through a
 * private bind mount of itself, so that "/" is a mount point from here on. */
static void
privatize_from_chroot(const kiln_exec_child_ctx *ctx)
{
    char link[64], prefix[PATH_MAX];
    ssize_t n;
    int oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (oldroot < 0)
        die_errno(ctx, "open /");
    escape_to_namespace_root(ctx);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        die_errno(ctx, "make / private");
    snprintf(link, sizeof(link), "/proc/self/fd/%d", oldroot);
    n = readlink(link, prefix, sizeof(prefix) - 1);
    if (n < 0)
        die_errno(ctx, "find the chroot directory (is /proc mounted outside the chroot?)");
    prefix[n] = '\0';
    if (mount(prefix, prefix, NULL, MS_BIND | MS_REC, NULL) < 0)
        die_errno(ctx, "bind-mount the chroot %s onto itself", prefix);
    if (chdir(prefix) < 0 || chroot(".") < 0 || chdir("/") < 0)
        die_errno(ctx, "re-enter the chroot %s", prefix);
    close(oldroot);
}

static void
mount_rootfs(const kiln_exec_child_ctx *ctx)
{
    const kiln_exec_plan *plan = ctx->plan;

    /* nothing we mount may propagate back to the host; EINVAL: "/" is not a mount (a chroot) */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        if (errno != EINVAL)
            die_errno(ctx, "make / private");
        privatize_from_chroot(ctx);
    }
    if (plan->rootfs_overlay) {
        if (mount("overlay", ctx->rootfs_mnt, "overlay", 0, plan->rootfs_data) < 0)
            die_errno(ctx, "mount overlay rootfs");
    } else if (mount(plan->rootfs_source, ctx->rootfs_mnt, NULL, MS_BIND | MS_REC, NULL) < 0) {
        die_errno(ctx, "mount rootfs %s", plan->rootfs_source);
    }
}

static void
bring_up_loopback(const kiln_exec_child_ctx *ctx)
{
    struct ifreq ifr;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (s < 0)
        die_errno(ctx, "socket for lo");
    memset(&ifr, 0, sizeof(ifr));
    kiln_strlcpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name));
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        die_errno(ctx, "get lo flags");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        die_errno(ctx, "bring lo up");
    close(s);
}

static void
enter_root(const kiln_exec_child_ctx *ctx)
{
    const kiln_exec_plan *plan = ctx->plan;

    if (plan->rootfs_readonly &&
        mount(NULL, ctx->rootfs_mnt, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
        die_errno(ctx, "remount rootfs read-only");
    if (chdir(ctx->rootfs_mnt) < 0)
        die_errno(ctx, "chdir to rootfs");
    /* pivot_root(".", ".") stacks the old root under the new one; detach it (runc) */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        die_errno(ctx, "pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        die_errno(ctx, "detach old root");
    if (chdir("/") < 0)
        die_errno(ctx, "chdir /");
}

/* Everything B does before forking the step. *ident receives the resolved user. */
static void
setup_sandbox(const kiln_exec_child_ctx *ctx, kiln_exec_ident *ident)
{
    const kiln_exec_plan *plan = ctx->plan;
    cleanup_kiln_error kiln_error *e = NULL;
    cleanup_free char *cwd = NULL;
    struct statx stx;
    int rootfd;

    mount_rootfs(ctx);
    if (statx(AT_FDCWD, ctx->rootfs_mnt, 0, STATX_MNT_ID, &stx) == 0 &&
        (stx.stx_mask & STATX_MNT_ID))
        ctx->vars->root_mnt_id = stx.stx_mnt_id;
    if (kiln_exec_resolve_user(ident, ctx->rootfs_mnt, plan->user, &e) < 0)
        die_kiln(ctx, e);
    rootfd = open(ctx->rootfs_mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        die_errno(ctx, "open rootfs");
    for (size_t i = 0; i < plan->mounts.len; i++)
        apply_mount(ctx, rootfd, plan->mounts.items[i], i);
    cwd = make_mountpoint(ctx, plan->cwd, false, true, false);
    close(rootfd);
    if (sethostname(plan->hostname, strlen(plan->hostname)) < 0)
        die_errno(ctx, "sethostname %s", plan->hostname);
    /* a pooled namespace's `lo` is up already */
    if (plan->loopback_up && !ctx->vars->joined_netns)
        bring_up_loopback(ctx);
    enter_root(ctx);
}

/* ---------------------------------------------------------------------------------------------
 * The step (process C)
 */

static void
set_privileges(const kiln_exec_child_ctx *ctx, const kiln_exec_ident *id)
{
    const kiln_exec_plan *plan = ctx->plan;
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    uint64_t caps = 0;

    /* only capabilities this kernel knows (and we hold) can be kept */
    for (int c = 0; c < 64; c++)
        if (((plan->caps >> c) & 1) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
            caps |= (uint64_t)1 << c;
    if (plan->sandboxed) {
        for (int c = 0; c < 64; c++) {
            if (!((caps >> c) & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                die_errno(ctx, "drop capability %d from the bounding set", c);
        }
        if (ctx->seccomp_bpf && ctx->seccomp_bpf->len) {
            struct sock_fprog prog = {
                    (unsigned short)(ctx->seccomp_bpf->len / sizeof(struct sock_filter)),
                    (struct sock_filter *)ctx->seccomp_bpf->ptr};
            /* loaded while still holding CAP_SYS_ADMIN: NoNewPrivileges stays false */
            if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
                die_errno(ctx, "load seccomp filter");
        }
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        die_errno(ctx, "keep capabilities");
    /* raw calls, not glibc's wrappers: see the top of this file. A rootless sandbox without
     * subordinate ids has setgroups denied: keep no extra groups */
    if (syscall(SYS_setgroups, id->n_groups, id->groups) < 0 && !(plan->rootless && errno == EPERM))
        die_errno(ctx, "setgroups");
    if (syscall(SYS_setresgid, id->gid, id->gid, id->gid) < 0)
        die_errno(ctx, "setgid %u", (unsigned)id->gid);
    if (syscall(SYS_setresuid, id->uid, id->uid, id->uid) < 0)
        die_errno(ctx, "setuid %u", (unsigned)id->uid);
    memset(data, 0, sizeof(data));
    data[0].effective = data[0].permitted = (uint32_t)caps;
    data[1].effective = data[1].permitted = (uint32_t)(caps >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        die_errno(ctx, "set capabilities");
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

/* The plan's environment plus HOME when it has none; the array and *added (the HOME entry, or
 * NULL) are owned by the caller, the other strings borrowed from the plan. */
static char **
env_with_home(const kiln_exec_plan *plan, const kiln_exec_ident *id, char **added)
{
    size_t n = 0;
    bool has_home = false;
    char **env;

    while (plan->envp[n]) {
        has_home = has_home || kiln_str_has_prefix(plan->envp[n], "HOME=");
        n++;
    }
    env = xcalloc(n + 2, sizeof(char *));
    memcpy(env, plan->envp, n * sizeof(char *));
    *added = has_home ? NULL : xasprintf("HOME=%s", id->home ? id->home : "/");
    env[n] = *added;
    return env;
}

static const char *
env_get(char **env, const char *key)
{
    size_t len = strlen(key);

    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], key, len) == 0 && env[i][len] == '=')
            return env[i] + len + 1;
    return NULL;
}

/* execvpe with the sandbox's PATH (not ours). Returns only on failure, errno set. */
static void
exec_command(char **argv, char **env)
{
    const char *path = env_get(env, "PATH");
    int saved = ENOENT;

    if (strchr(argv[0], '/')) {
        execve(argv[0], argv, env);
        return;
    }
    for (const char *p = path ? path : ""; *p;) {
        size_t len = strcspn(p, ":");
        cleanup_free char *cand = xasprintf("%.*s/%s", (int)len, len ? p : ".", argv[0]);

        execve(cand, argv, env);
        if (errno != ENOENT && errno != ENOTDIR)
            saved = errno;
        p += len + (p[len] == ':');
    }
    errno = saved;
}

/* What B hands to C (on B's stack). */
typedef struct step_args {
    const kiln_exec_child_ctx *ctx;
    const kiln_exec_ident *ident;
    char **env;
} step_args;

/* Process C: entered through clone(CLONE_VM | CLONE_VFORK) from B. */
static int
run_step(void *arg)
{
    const step_args *a = arg;
    const kiln_exec_child_ctx *ctx = a->ctx;
    const kiln_exec_plan *plan = ctx->plan;
    sigset_t none;
    int null_fd;

    setsid();
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (ctx->in_fd < 0) { /* else B's stdin is the caller's, and C inherits it */
        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0 || dup2(null_fd, 0) < 0)
            die_errno(ctx, "open /dev/null for stdin");
        close(null_fd);
    }
    for (int r = 0; r < RLIM_NLIMITS; r++)
        if (plan->rlimit_set[r] && setrlimit(r, &plan->rlimits[r]) < 0)
            die_errno(ctx, "setrlimit %d", r);
    if (chdir(plan->cwd) < 0)
        die_errno(ctx, "chdir %s", plan->cwd);
    set_privileges(ctx, a->ident);
    exec_command(plan->argv, a->env);
    die_errno(ctx, "exec %s", plan->argv[0]);
}

/* ---------------------------------------------------------------------------------------------
 * Process B: pid 1 of the sandbox
 */

/* System calls that do not touch errno: after the release, T owns its thread-local storage again
 * while B still runs on the same memory. */
#if defined(__x86_64__)
static long
raw_syscall4(long n, long a1, long a2, long a3, long a4)
{
    register long r10 __asm__("r10") = a4;
    long ret;

    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
static long
raw_syscall4(long n, long a1, long a2, long a3, long a4)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;

    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
#else
/* glibc's syscall() stores errno on failure; the calls below fail only with EINTR, and all
 * signals are blocked in B */
static long
raw_syscall4(long n, long a1, long a2, long a3, long a4)
{
    return syscall(n, a1, a2, a3, a4);
}
#endif

/* Whether sockstat file `path` (in B's own /proc) shows no socket; raw calls only. */
static bool
sockstat_empty(const char *path)
{
    char buf[1024];
    long fd = raw_syscall4(SYS_openat, AT_FDCWD, (long)path, O_RDONLY | O_CLOEXEC, 0);
    long n;

    if (fd < 0)
        return false;
    n = raw_syscall4(SYS_read, fd, (long)buf, sizeof(buf), 0);
    raw_syscall4(SYS_close, fd, 0, 0, 0);
    return n > 0 && (size_t)n < sizeof(buf) && kiln_exec__sockstat_empty(buf, (size_t)n);
}

/* After the step: is the network namespace fit for reuse (see exec_netns.c)? Reaps what exited
 * meanwhile; any process still alive (orphans are our children) makes it unfit. */
static bool
netns_clean(void)
{
    int status;
    long pid;

    while ((pid = raw_syscall4(SYS_wait4, -1, (long)&status, WNOHANG | __WALL, 0)) > 0)
        ;
    if (pid != -ECHILD)
        return false;
    return sockstat_empty("/proc/self/net/sockstat") && sockstat_empty("/proc/self/net/sockstat6");
}

/* B after the release: reap every orphan until the step exits, report its wait status, exit.
 * No libc call that could touch errno, no heap (see the top of this file). */
static __attribute__((noreturn)) void
init_wait_loop(int sync_fd, pid_t step, bool check_netns)
{
    kiln_exec_msg m = {KILN_EXEC_MSG_STATUS, 0, 0, 0};
    int status = 0;
    long pid;

    for (;;) {
        pid = raw_syscall4(SYS_wait4, -1, (long)&status, 0, 0);
        if (pid == step)
            break;
        if (pid < 0 && pid != -EINTR) {
            status = 127 << 8; /* cannot happen: the step is our child until we reap it */
            break;
        }
    }
    m.code = status;
    if (check_netns && netns_clean())
        m.errnum = KILN_EXEC_STATUS_NETNS_CLEAN;
    raw_syscall4(SYS_write, sync_fd, (long)&m, sizeof(m), 0);
    for (;;)
        raw_syscall4(SYS_exit, 0, 0, 0, 0);
}

/* Close every descriptor but stdio and the `n` in `keep` (-1 entries ignored). Without this, a
 * sandbox would hold the pipes of any other sandbox that the engine's other threads were
 * starting at the same time, and their parents would wait for EOF until this one ends. */
static void
close_other_fds(int *keep, size_t n)
{
    unsigned from = 3;
    int t;

    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (keep[j] < keep[i]) {
                t = keep[i];
                keep[i] = keep[j];
                keep[j] = t;
            }
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < (int)from)
            continue;
        if ((unsigned)keep[i] > from)
            syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0);
        from = (unsigned)keep[i] + 1;
    }
    syscall(SYS_close_range, from, ~0U, 0);
}

/* Rootless: B was cloned into a new user namespace; let the parent map it, wait until it has.
 * Runs before B touches the heap: T maps with newuidmap (fork, malloc) meanwhile. */
static void
wait_for_userns_map(const kiln_exec_child_ctx *ctx)
{
    kiln_exec_msg m = {KILN_EXEC_MSG_USERNS, 0, 0, 0};
    char go;

    if (write(ctx->sync_fd, &m, sizeof(m)) < 0)
        _exit(126);
    if (read(ctx->go_fd, &go, 1) != 1)
        _exit(125); /* the parent could not map it and reported why */
    close(ctx->go_fd);
}

/* B's stdio: the caller's stdin or /dev/null, then the output pipes. */
static void
setup_stdio(const kiln_exec_child_ctx *ctx)
{
    int in_fd = ctx->in_fd >= 0 ? ctx->in_fd : open("/dev/null", O_RDONLY | O_CLOEXEC);

    if (in_fd < 0 || (in_fd != 0 && dup2(in_fd, 0) < 0) || dup2(ctx->out_fd, 1) < 0 ||
        dup2(ctx->err_fd, 2) < 0)
        _exit(125);
    if (in_fd != ctx->in_fd)
        close(in_fd);
}

/* Start C. A change of user makes the kernel mark the memory of the process that changes it
 * non-dumpable (commit_creds), and C shares our caller's memory until it execs: as root, B makes
 * it dumpable again once C has exec'd (it was only non-dumpable meanwhile; never dumpable while
 * C, another user, could be traced). Rootless, the caller maps other sandboxes' user namespaces
 * meanwhile with newuidmap, which refuses a non-dumpable target: C gets its own copy of the
 * memory there (fork), at the cost of copying it. */
static pid_t
start_step(const kiln_exec_child_ctx *ctx, step_args *sa, const kiln_exec_ident *ident)
{
    int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    pid_t step;

    if (ctx->plan->rootless && (ident->uid != 0 || ident->gid != 0)) {
        step = fork();
        if (step == 0)
            run_step(sa);
    } else {
        /* returns once C has exec'd (or died): the memory is B's again */
        step = clone(run_step, ctx->step_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, sa);
        if (step > 0 && dumpable == 1)
            prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    }
    if (step < 0)
        die_errno(ctx, "start the step");
    return step;
}

/* Process B (see exec_internal.h and the top of this file). */
static int
init_main(void *arg)
{
    kiln_exec_child_ctx ctx = *(const kiln_exec_child_ctx *)arg;
    kiln_exec_child_vars vars = {0, false, false};
    int keep[4];
    int unshare_flags;
    kiln_exec_ident ident;
    step_args sa = {&ctx, &ident, NULL};
    char *home = NULL;
    sigset_t all;
    pid_t step;
    int ret;

    ctx.vars = &vars;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    setup_stdio(&ctx);
    keep[0] = ctx.sync_fd;
    keep[1] = ctx.go_fd;
    keep[2] = ctx.release_fd;
    keep[3] = ctx.netns_fd;
    close_other_fds(keep, 4);
    if (ctx.plan->rootless)
        wait_for_userns_map(&ctx);
    /* join the cgroup before unsharing the cgroup namespace: its root is then the step's own */
    if (ctx.cgroup && (ret = kiln_exec_cgroup_enter(ctx.cgroup, 0)) < 0)
        child_die(ctx.sync_fd, KILN_ESYS, -ret, "join cgroup %s", ctx.cgroup->dirs[0]);
    unshare_flags = ctx.plan->unshare_flags & ~(CLONE_NEWUSER | CLONE_NEWPID);
    if (ctx.netns_fd >= 0) {
        if (setns(ctx.netns_fd, CLONE_NEWNET) < 0)
            die_errno(&ctx, "join network namespace");
        close(ctx.netns_fd);
        vars.joined_netns = true;
        unshare_flags &= ~CLONE_NEWNET;
    }
    if (unshare(unshare_flags) < 0)
        die_errno(&ctx, "unshare namespaces");
    prctl(PR_SET_NAME, "kiln-init", 0, 0, 0);
    setup_sandbox(&ctx, &ident);
    sa.env = env_with_home(ctx.plan, &ident, &home);
    step = start_step(&ctx, &sa, &ident);
    free(home);
    free(sa.env);
    kiln_exec_ident_dispose(&ident);
    /* only the step holds the output pipes now: their EOF means it (and what it left behind)
     * is gone */
    close(1);
    close(2);
    if (write(ctx.release_fd, "r", 1) != 1)
        _exit(126);
    init_wait_loop(ctx.sync_fd, step, ctx.check_netns);
}

/* Start the sandbox (see exec_internal.h). */
pid_t
kiln_exec_child_start(const kiln_exec_child_ctx *ctx)
{
    int flags = CLONE_VM | CLONE_NEWPID | SIGCHLD;

    if (ctx->plan->rootless)
        flags |= CLONE_NEWUSER;
    return clone(init_main, ctx->init_stack, flags, (void *)ctx);
}
