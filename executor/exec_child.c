/*
 * exec_child.c: the sandbox side of kiln_exec_run(): applying a kiln_exec_plan.
 *
 * Three processes, all forked (not cloned), so that libc's atfork handling keeps malloc usable
 * even when the engine is multithreaded:
 *   A  (outside)  joins the cgroup, unshares the namespaces, forks B, then waits for B while
 *                 turning SIGTERM from the parent into SIGKILL of B;
 *   B  (pid 1)    mounts the rootfs and the plan's mounts, pivots into the root, sets the
 *                 hostname and brings `lo` up, forks C, reaps zombies, and reports C's wait
 *                 status; when B exits the kernel kills everything left in the pid namespace;
 *   C  (the step) sets rlimits, drops the bounding set, loads seccomp, switches identity, sets
 *                 the capabilities and execs the command.
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

/* Mount id of the rootfs mount: stubs created on it are reported to the parent (B only). */
static uint64_t root_mnt_id;

/* Tell the parent about a mountpoint we created on the rootfs itself (not on a tmpfs or another
 * mount), so that it can remove it after the run, as BuildKit removes its mount stubs. */
static void
report_stub(const kiln_exec_child_ctx *ctx, const char *host)
{
    struct {
        kiln_exec_msg hdr;
        char text[KILN_EXEC_MSG_MAX];
    } m;
    struct statx stx;
    size_t root_len = strlen(ctx->rootfs_mnt), len;

    if (statx(AT_FDCWD, host, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0 ||
        !(stx.stx_mask & STATX_MNT_ID) || stx.stx_mnt_id != root_mnt_id)
        return;
    len = strlen(host) - root_len;
    if (strncmp(host, ctx->rootfs_mnt, root_len) != 0 || len == 0 || len > KILN_EXEC_MSG_MAX)
        return; /* not below the root, or too long to report: left in place */
    memset(&m.hdr, 0, sizeof(m.hdr));
    m.hdr.type = KILN_EXEC_MSG_STUB;
    m.hdr.len = (int32_t)len;
    memcpy(m.text, host + root_len, len);
    if (write(ctx->sync_fd, &m, sizeof(m.hdr) + len) < 0)
        _exit(126);
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
    static bool tmpfs_ready;
    cleanup_free char *file = xasprintf("%s/%zu", ctx->secret_dir, idx);
    char target[64];
    int fd;

    if (!tmpfs_ready) {
        /* the secrets tmpfs exists only in this mount namespace; nothing reaches a disk */
        if (mount("tmpfs", ctx->secret_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0700") < 0)
            die_errno(ctx, "mount secrets tmpfs");
        tmpfs_ready = true;
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
        root_mnt_id = stx.stx_mnt_id;
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
    if (plan->loopback_up)
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
    /* a rootless sandbox without subordinate ids has setgroups denied: keep no extra groups */
    if (setgroups(id->n_groups, id->groups) < 0 && !(plan->rootless && errno == EPERM))
        die_errno(ctx, "setgroups");
    if (setresgid(id->gid, id->gid, id->gid) < 0)
        die_errno(ctx, "setgid %u", (unsigned)id->gid);
    if (setresuid(id->uid, id->uid, id->uid) < 0)
        die_errno(ctx, "setuid %u", (unsigned)id->uid);
    memset(data, 0, sizeof(data));
    data[0].effective = data[0].permitted = (uint32_t)caps;
    data[1].effective = data[1].permitted = (uint32_t)(caps >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        die_errno(ctx, "set capabilities");
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

static char **
env_with_home(const kiln_exec_plan *plan, const kiln_exec_ident *id)
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
    if (!has_home)
        env[n] = xasprintf("HOME=%s", id->home ? id->home : "/");
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

static __attribute__((noreturn)) void
run_step(const kiln_exec_child_ctx *ctx, const kiln_exec_ident *id)
{
    const kiln_exec_plan *plan = ctx->plan;
    char **env = env_with_home(plan, id);
    sigset_t none;
    int null_fd;

    setsid();
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || dup2(null_fd, 0) < 0)
        die_errno(ctx, "open /dev/null for stdin");
    for (int r = 0; r < RLIM_NLIMITS; r++)
        if (plan->rlimit_set[r] && setrlimit(r, &plan->rlimits[r]) < 0)
            die_errno(ctx, "setrlimit %d", r);
    if (chdir(plan->cwd) < 0)
        die_errno(ctx, "chdir %s", plan->cwd);
    set_privileges(ctx, id);
    exec_command(plan->argv, env);
    die_errno(ctx, "exec %s", plan->argv[0]);
}

/* ---------------------------------------------------------------------------------------------
 * Process B: pid 1 of the sandbox
 */

static __attribute__((noreturn)) void
init_main(const kiln_exec_child_ctx *ctx)
{
    kiln_exec_ident ident;
    struct {
        kiln_exec_msg hdr;
    } m;
    pid_t step, pid;
    int status = 0;

    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    prctl(PR_SET_NAME, "kiln-init", 0, 0, 0);
    setup_sandbox(ctx, &ident);
    step = fork();
    if (step < 0)
        die_errno(ctx, "fork step");
    if (step == 0)
        run_step(ctx, &ident);
    /* reap every orphan until the step itself exits, then report its status */
    while ((pid = waitpid(-1, &status, 0)) != step) {
        if (pid < 0 && errno != EINTR)
            die_errno(ctx, "wait for step");
    }
    memset(&m, 0, sizeof(m));
    m.hdr.type = KILN_EXEC_MSG_STATUS;
    m.hdr.code = status;
    if (write(ctx->sync_fd, &m, sizeof(m)) < 0)
        _exit(126);
    _exit(0);
}

/* Close every descriptor but stdio, the sync pipe and the go pipe. Without this, a sandbox would
 * hold the pipes of any other sandbox that the engine's other threads were starting at the same
 * time, and their parents would wait for EOF until this one ends. */
static void
close_other_fds(const kiln_exec_child_ctx *ctx)
{
    int keep[2] = {ctx->sync_fd, ctx->go_fd};
    unsigned from = 3;

    if (keep[1] >= 0 && keep[1] < keep[0]) {
        keep[0] = ctx->go_fd;
        keep[1] = ctx->sync_fd;
    }
    for (int i = 0; i < 2; i++) {
        if (keep[i] < 0)
            continue;
        if ((unsigned)keep[i] > from)
            syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0);
        from = (unsigned)keep[i] + 1;
    }
    syscall(SYS_close_range, from, ~0U, 0);
}

/* Rootless: unshare the user namespace, let the parent map it, wait until it has. */
static void
enter_userns(const kiln_exec_child_ctx *ctx)
{
    kiln_exec_msg m = {KILN_EXEC_MSG_USERNS, 0, 0, 0};
    char go;

    if (unshare(CLONE_NEWUSER) < 0)
        die_errno(ctx, "unshare user namespace");
    if (write(ctx->sync_fd, &m, sizeof(m)) < 0)
        _exit(126);
    if (read(ctx->go_fd, &go, 1) != 1)
        _exit(125); /* the parent could not map it and reported why */
    close(ctx->go_fd);
}

/* Process A (see exec_internal.h). */
void
kiln_exec_child_main(const kiln_exec_child_ctx *ctx)
{
    sigset_t set;
    siginfo_t si;
    pid_t init;
    int ret, status;

    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    close_other_fds(ctx);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (ctx->cgroup && (ret = kiln_exec_cgroup_enter(ctx->cgroup, 0)) < 0)
        child_die(ctx->sync_fd, KILN_ESYS, -ret, "join cgroup %s", ctx->cgroup->dirs[0]);
    if (ctx->plan->rootless)
        enter_userns(ctx);
    if (unshare(ctx->plan->unshare_flags & ~CLONE_NEWUSER) < 0)
        die_errno(ctx, "unshare namespaces");
    init = fork();
    if (init < 0)
        die_errno(ctx, "fork sandbox init");
    if (init == 0)
        init_main(ctx);
    /* only B and the step hold the output pipes: EOF then means the sandbox is gone */
    close(1);
    close(2);
    for (;;) {
        if (sigwaitinfo(&set, &si) < 0)
            continue;
        if (si.si_signo == SIGTERM)
            kill(init, SIGKILL);
        if (waitpid(init, &status, WNOHANG) == init)
            _exit(0);
    }
}
