/*
 * exec_seccomp.c: Docker's default seccomp profile (moby/profiles seccomp/default.json, the
 * version BuildKit vendors; reference/specs.md §6) compiled with libseccomp for the native
 * architecture and the sandbox's capability set. This file is the only includer of <seccomp.h>.
 *
 * The profile: default action EPERM; an allow list of 361 names; ptrace and process_vm_* (kernel
 * >= 4.8, always true for us); socket except AF_ALG (38) and AF_VSOCK (40); personality with five
 * argument values; arch-specific calls; and calls allowed only with a capability. Without
 * CAP_SYS_ADMIN, clone is allowed only without namespace flags and clone3 fails with ENOSYS so
 * that libc falls back to clone. Names this libseccomp or architecture does not know are skipped,
 * as runc does.
 */
#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "base/buf.h"
#include "executor/exec_internal.h"

/* Rule 0 of the profile: allowed unconditionally. */
static const char *const allow_names[] = {
        "accept",
        "accept4",
        "access",
        "adjtimex",
        "alarm",
        "bind",
        "brk",
        "cachestat",
        "capget",
        "capset",
        "chdir",
        "chmod",
        "chown",
        "chown32",
        "clock_adjtime",
        "clock_adjtime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_gettime",
        "clock_gettime64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "close",
        "close_range",
        "connect",
        "copy_file_range",
        "creat",
        "dup",
        "dup2",
        "dup3",
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_pwait",
        "epoll_pwait2",
        "epoll_wait",
        "epoll_wait_old",
        "eventfd",
        "eventfd2",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "faccessat",
        "faccessat2",
        "fadvise64",
        "fadvise64_64",
        "fallocate",
        "fanotify_mark",
        "fchdir",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "fchown",
        "fchown32",
        "fchownat",
        "fcntl",
        "fcntl64",
        "fdatasync",
        "fgetxattr",
        "flistxattr",
        "flock",
        "fork",
        "fremovexattr",
        "fsetxattr",
        "fstat",
        "fstat64",
        "fstatat64",
        "fstatfs",
        "fstatfs64",
        "fsync",
        "ftruncate",
        "ftruncate64",
        "futex",
        "futex_requeue",
        "futex_time64",
        "futex_wait",
        "futex_waitv",
        "futex_wake",
        "futimesat",
        "getcpu",
        "getcwd",
        "getdents",
        "getdents64",
        "getegid",
        "getegid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getgroups",
        "getgroups32",
        "getitimer",
        "getpeername",
        "getpgid",
        "getpgrp",
        "getpid",
        "getppid",
        "getpriority",
        "getrandom",
        "getresgid",
        "getresgid32",
        "getresuid",
        "getresuid32",
        "getrlimit",
        "get_robust_list",
        "getrusage",
        "getsid",
        "getsockname",
        "getsockopt",
        "get_thread_area",
        "gettid",
        "gettimeofday",
        "getuid",
        "getuid32",
        "getxattr",
        "getxattrat",
        "inotify_add_watch",
        "inotify_init",
        "inotify_init1",
        "inotify_rm_watch",
        "io_cancel",
        "ioctl",
        "io_destroy",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
        "ioprio_get",
        "ioprio_set",
        "io_setup",
        "io_submit",
        "ipc",
        "kill",
        "landlock_add_rule",
        "landlock_create_ruleset",
        "landlock_restrict_self",
        "lchown",
        "lchown32",
        "lgetxattr",
        "link",
        "linkat",
        "listen",
        "listmount",
        "listxattr",
        "listxattrat",
        "llistxattr",
        "_llseek",
        "lremovexattr",
        "lseek",
        "lsetxattr",
        "lstat",
        "lstat64",
        "madvise",
        "map_shadow_stack",
        "membarrier",
        "memfd_create",
        "memfd_secret",
        "mincore",
        "mkdir",
        "mkdirat",
        "mknod",
        "mknodat",
        "mlock",
        "mlock2",
        "mlockall",
        "mmap",
        "mmap2",
        "mprotect",
        "mq_getsetattr",
        "mq_notify",
        "mq_open",
        "mq_timedreceive",
        "mq_timedreceive_time64",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_unlink",
        "mremap",
        "mseal",
        "msgctl",
        "msgget",
        "msgrcv",
        "msgsnd",
        "msync",
        "munlock",
        "munlockall",
        "munmap",
        "name_to_handle_at",
        "nanosleep",
        "newfstatat",
        "_newselect",
        "open",
        "openat",
        "openat2",
        "pause",
        "pidfd_open",
        "pidfd_send_signal",
        "pipe",
        "pipe2",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "poll",
        "ppoll",
        "ppoll_time64",
        "prctl",
        "pread64",
        "preadv",
        "preadv2",
        "prlimit64",
        "process_mrelease",
        "pselect6",
        "pselect6_time64",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "read",
        "readahead",
        "readlink",
        "readlinkat",
        "readv",
        "recv",
        "recvfrom",
        "recvmmsg",
        "recvmmsg_time64",
        "recvmsg",
        "remap_file_pages",
        "removexattr",
        "removexattrat",
        "rename",
        "renameat",
        "renameat2",
        "restart_syscall",
        "riscv_hwprobe",
        "rmdir",
        "rseq",
        "rt_sigaction",
        "rt_sigpending",
        "rt_sigprocmask",
        "rt_sigqueueinfo",
        "rt_sigreturn",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo",
        "sched_getaffinity",
        "sched_getattr",
        "sched_getparam",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_getscheduler",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
        "sched_setaffinity",
        "sched_setattr",
        "sched_setparam",
        "sched_setscheduler",
        "sched_yield",
        "seccomp",
        "select",
        "semctl",
        "semget",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "send",
        "sendfile",
        "sendfile64",
        "sendmmsg",
        "sendmsg",
        "sendto",
        "setfsgid",
        "setfsgid32",
        "setfsuid",
        "setfsuid32",
        "setgid",
        "setgid32",
        "setgroups",
        "setgroups32",
        "setitimer",
        "setpgid",
        "setpriority",
        "setregid",
        "setregid32",
        "setresgid",
        "setresgid32",
        "setresuid",
        "setresuid32",
        "setreuid",
        "setreuid32",
        "setrlimit",
        "set_robust_list",
        "setsid",
        "setsockopt",
        "set_thread_area",
        "set_tid_address",
        "setuid",
        "setuid32",
        "setxattr",
        "setxattrat",
        "shmat",
        "shmctl",
        "shmdt",
        "shmget",
        "shutdown",
        "sigaltstack",
        "signalfd",
        "signalfd4",
        "sigprocmask",
        "sigreturn",
        "socketcall",
        "socketpair",
        "splice",
        "stat",
        "stat64",
        "statfs",
        "statfs64",
        "statmount",
        "statx",
        "symlink",
        "symlinkat",
        "sync",
        "sync_file_range",
        "syncfs",
        "sysinfo",
        "tee",
        "tgkill",
        "time",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_gettime64",
        "timer_settime",
        "timer_settime64",
        "timerfd_create",
        "timerfd_gettime",
        "timerfd_gettime64",
        "timerfd_settime",
        "timerfd_settime64",
        "times",
        "tkill",
        "truncate",
        "truncate64",
        "ugetrlimit",
        "umask",
        "uname",
        "unlink",
        "unlinkat",
        "uretprobe",
        "utime",
        "utimensat",
        "utimensat_time64",
        "utimes",
        "vfork",
        "vmsplice",
        "wait4",
        "waitid",
        "waitpid",
        "write",
        "writev",
};

/* Calls allowed only when the sandbox holds a capability. */
static const struct {
    int cap;
    const char *names[10];
} cap_rules[] = {
        {CAP_DAC_READ_SEARCH, {"open_by_handle_at"}},
        {CAP_SYS_BOOT, {"reboot"}},
        {CAP_SYS_CHROOT, {"chroot"}},
        {CAP_SYS_MODULE, {"delete_module", "init_module", "finit_module"}},
        {CAP_SYS_PACCT, {"acct"}},
        {CAP_SYS_PTRACE,
         {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
          "ptrace"}},
        {CAP_SYS_RAWIO, {"iopl", "ioperm"}},
        {CAP_SYS_TIME, {"settimeofday", "stime", "clock_settime", "clock_settime64"}},
        {CAP_SYS_TTY_CONFIG, {"vhangup"}},
        {CAP_SYS_NICE, {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}},
        {CAP_SYSLOG, {"syslog"}},
        {CAP_BPF, {"bpf"}},
        {CAP_PERFMON, {"perf_event_open"}},
};

/* CAP_SYS_ADMIN's list (26 names in the profile). */
static const char *const sys_admin_names[] = {
        "bpf",
        "clone",
        "clone3",
        "fanotify_init",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "lookup_dcookie",
        "lsm_get_self_attr",
        "lsm_list_modules",
        "lsm_set_self_attr",
        "mount",
        "mount_setattr",
        "move_mount",
        "open_tree",
        "perf_event_open",
        "quotactl",
        "quotactl_fd",
        "setdomainname",
        "sethostname",
        "setns",
        "syslog",
        "umount",
        "umount2",
        "unshare",
};

/* Add one rule; unknown names and rules libseccomp rejects for this arch are skipped. */
static int
add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n_args,
         const struct scmp_arg_cmp *args)
{
    int nr = seccomp_syscall_resolve_name(name);
    int ret;

    if (nr == __NR_SCMP_ERROR)
        return 0;
    ret = seccomp_rule_add_array(ctx, action, nr, n_args, args);
    /* -EEXIST: already allowed by another rule; -EDOM/-EINVAL: not on this arch (pseudo nr) */
    if (ret == -EEXIST || ret == -EDOM || ret == -EINVAL || ret == -EACCES)
        return 0;
    return ret;
}

static bool
has_cap(uint64_t caps, int cap)
{
    return cap < 64 && (caps >> cap) & 1;
}

/* The argument-filtered rules: socket, personality, clone/clone3 without CAP_SYS_ADMIN. */
static int
add_conditional_rules(scmp_filter_ctx ctx, uint64_t caps)
{
    static const uint64_t personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
    struct scmp_arg_cmp a;
    int ret = 0;

    a = SCMP_A0(SCMP_CMP_LT, 38); /* AF_ALG = 38, AF_VSOCK = 40 stay denied */
    ret = ret ? ret : add_rule(ctx, SCMP_ACT_ALLOW, "socket", 1, &a);
    a = SCMP_A0(SCMP_CMP_EQ, 39);
    ret = ret ? ret : add_rule(ctx, SCMP_ACT_ALLOW, "socket", 1, &a);
    a = SCMP_A0(SCMP_CMP_GT, 40);
    ret = ret ? ret : add_rule(ctx, SCMP_ACT_ALLOW, "socket", 1, &a);
    for (size_t i = 0; i < sizeof(personas) / sizeof(personas[0]) && !ret; i++) {
        a = SCMP_A0(SCMP_CMP_EQ, personas[i]);
        ret = add_rule(ctx, SCMP_ACT_ALLOW, "personality", 1, &a);
    }
    /* ptrace and process_vm_* need kernel >= 4.8, which every supported kernel is */
    ret = ret ? ret : add_rule(ctx, SCMP_ACT_ALLOW, "ptrace", 0, NULL);
    ret = ret ? ret : add_rule(ctx, SCMP_ACT_ALLOW, "process_vm_readv", 0, NULL);
    ret = ret ? ret : add_rule(ctx, SCMP_ACT_ALLOW, "process_vm_writev", 0, NULL);
    if (ret || has_cap(caps, CAP_SYS_ADMIN))
        return ret;
        /* no CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (0x7E020000); flags are
         * arg1 on s390, arg0 elsewhere */
#if defined(__s390__) || defined(__s390x__)
    a = SCMP_A1(SCMP_CMP_MASKED_EQ, 0x7E020000, 0);
#else
    a = SCMP_A0(SCMP_CMP_MASKED_EQ, 0x7E020000, 0);
#endif
    ret = add_rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &a);
    return ret ? ret : add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
}

static int
add_arch_and_cap_rules(scmp_filter_ctx ctx, uint64_t caps)
{
    static const char *const arch_names[] = {
#if defined(__x86_64__)
        "arch_prctl",
        "modify_ldt",
#elif defined(__i386__)
        "modify_ldt",
#elif defined(__aarch64__) || defined(__arm__)
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "sync_file_range2",
        "breakpoint",
        "cacheflush",
        "set_tls",
#elif defined(__powerpc64__)
        "sync_file_range2",
        "swapcontext",
#elif defined(__s390__) || defined(__s390x__)
        "s390_pci_mmio_read",
        "s390_pci_mmio_write",
        "s390_runtime_instr",
#elif defined(__riscv)
        "riscv_flush_icache",
#endif
        NULL,
    };
    int ret = 0;

    for (size_t i = 0; arch_names[i] && !ret; i++)
        ret = add_rule(ctx, SCMP_ACT_ALLOW, arch_names[i], 0, NULL);
    for (size_t i = 0; i < sizeof(cap_rules) / sizeof(cap_rules[0]) && !ret; i++) {
        if (!has_cap(caps, cap_rules[i].cap))
            continue;
        for (size_t j = 0; j < 10 && cap_rules[i].names[j] && !ret; j++)
            ret = add_rule(ctx, SCMP_ACT_ALLOW, cap_rules[i].names[j], 0, NULL);
    }
    if (!has_cap(caps, CAP_SYS_ADMIN))
        return ret;
    for (size_t i = 0; i < sizeof(sys_admin_names) / sizeof(sys_admin_names[0]) && !ret; i++)
        ret = add_rule(ctx, SCMP_ACT_ALLOW, sys_admin_names[i], 0, NULL);
    return ret;
}

/* libseccomp returns -errno; translate once at the library boundary (STYLE.md B3). */
static int
error_from_seccomp(kiln_error **err, int rc, const char *what)
{
    return kiln_error_errno(err, rc < 0 ? -rc : EINVAL, "seccomp: %s", what);
}

static int
export_bpf(kiln_buf *out, scmp_filter_ctx ctx, kiln_error **err)
{
    cleanup_close int rfd = -1;
    cleanup_close int wfd = -1;
    char chunk[4096];
    ssize_t n;
    int ret;

    /* libseccomp 2.5 can only export to an fd; a memfd holds any filter size */
    wfd = memfd_create("kiln-seccomp", MFD_CLOEXEC);
    if (wfd < 0)
        return kiln_error_errno(err, errno, "seccomp: memfd_create");
    ret = seccomp_export_bpf(ctx, wfd);
    if (ret < 0)
        return error_from_seccomp(err, ret, "export filter");
    rfd = steal_fd(&wfd);
    if (lseek(rfd, 0, SEEK_SET) < 0)
        return kiln_error_errno(err, errno, "seccomp: rewind filter");
    while ((n = read(rfd, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kiln_error_errno(err, errno, "seccomp: read filter");
        kiln_buf_put(out, chunk, (size_t)n, NULL);
    }
    return 0;
}

/* Compile the profile to BPF (see exec_internal.h). */
int
kiln_exec_seccomp_compile(kiln_buf *out, uint64_t caps, kiln_error **err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    int ret = 0;

    if (!ctx)
        return kiln_error_set(err, KILN_ESYS, "seccomp: cannot initialise a filter");
    /* keep the no_new_privs bit as the caller set it: BuildKit runs with NoNewPrivileges false */
    ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    /* a binary tree of syscall numbers instead of a linear list: the kernel runs the program
     * for every syscall number when it is loaded (to fill its action cache) and for every
     * uncached call later, so a 1000-instruction chain costs ~1 ms per sandbox start */
    if (!ret)
        ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
#if defined(__x86_64__)
    /* Docker's archMap: x86_64 also filters x86 and x32 calls instead of killing them */
    if (!ret)
        ret = seccomp_arch_add(ctx, SCMP_ARCH_X86);
    if (!ret)
        ret = seccomp_arch_add(ctx, SCMP_ARCH_X32);
#elif defined(__aarch64__)
    if (!ret)
        ret = seccomp_arch_add(ctx, SCMP_ARCH_ARM);
#endif
    if (ret == -EEXIST)
        ret = 0;
    for (size_t i = 0; i < sizeof(allow_names) / sizeof(allow_names[0]) && !ret; i++)
        ret = add_rule(ctx, SCMP_ACT_ALLOW, allow_names[i], 0, NULL);
    if (!ret)
        ret = add_conditional_rules(ctx, caps);
    if (!ret)
        ret = add_arch_and_cap_rules(ctx, caps);
    if (ret)
        ret = error_from_seccomp(err, ret, "add rule");
    else
        ret = export_bpf(out, ctx, err);
    seccomp_release(ctx);
    return ret;
}

/* Compiled programs, one per capability set, kept for the life of the process: compiling the
 * profile costs ~10 ms, a whole sandboxed step should cost less. */
typedef struct bpf_cache_entry {
    uint64_t caps;
    kiln_buf bpf;
    struct bpf_cache_entry *next;
} bpf_cache_entry;

static pthread_mutex_t bpf_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static bpf_cache_entry *bpf_cache;

/* The compiled program for `caps` (see exec_internal.h). */
int
kiln_exec_seccomp_get(const kiln_buf **out, uint64_t caps, kiln_error **err)
{
    bpf_cache_entry *e;
    int ret = 0;

    pthread_mutex_lock(&bpf_cache_lock);
    for (e = bpf_cache; e && e->caps != caps; e = e->next)
        ;
    if (!e) {
        e = xnew(bpf_cache_entry);
        e->caps = caps;
        ret = kiln_exec_seccomp_compile(&e->bpf, caps, err);
        if (ret < 0) {
            kiln_buf_dispose(&e->bpf);
            free(e);
            e = NULL;
        } else {
            e->next = bpf_cache;
            bpf_cache = e;
        }
    }
    pthread_mutex_unlock(&bpf_cache_lock);
    if (e)
        *out = &e->bpf;
    return ret;
}
