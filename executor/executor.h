/*
 * executor.h: run ONE process in a sandbox described by a plain-data spec (DESIGN.md §2).
 *
 * The sandbox follows what BuildKit gets from runc/containerd's default OCI spec: mount, pid, ipc,
 * uts, cgroup and (unless host networking) network namespaces; an overlay or directory rootfs
 * entered with pivot_root; /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue and a read-only /sys;
 * generated /etc/resolv.conf and /etc/hosts; Docker's masked and read-only paths; Docker's 14
 * default capabilities and its default seccomp profile; rlimits; optional cgroup limits.
 *
 * Usage:
 *     kiln_exec_spec spec = KILN_EXEC_SPEC_INIT;
 *     spec.rootfs = "/var/lib/kiln/snapshots/12/fs";
 *     spec.args = (const char *[]){"/bin/sh", "-c", "echo hi", NULL};
 *     spec.on_output = my_cb;
 *     kiln_exec_result res;
 *     if (kiln_exec_run(&res, &spec, &err) < 0) ...
 *
 * All strings in a spec are borrowed for the duration of the call. kiln_exec_run() is thread-safe
 * (each call runs its own sandbox). Called by root it runs the sandbox directly; called by any
 * other user it runs rootless: a user namespace maps container root to the caller and container
 * ids 1..N to the caller's /etc/subuid and /etc/subgid range (newuidmap/newgidmap), /sys is not
 * mounted and cgroup limits are not applied (as BuildKit's rootless mode).
 *
 * Cache mounts: `source` is the cache's base directory; instance N lives in <source>/<N> with its
 * lock file <source>/<N>.lock. Shared users share instance 0 (LOCK_SH), locked users take it one
 * at a time (LOCK_EX, waiting, cancellable), private users take the first instance nobody holds.
 */
#ifndef KILN_EXECUTOR_EXECUTOR_H
#define KILN_EXECUTOR_EXECUTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

typedef enum kiln_exec_net {
    KILN_EXEC_NET_NONE = 0, /* fresh network namespace, only `lo`, up */
    KILN_EXEC_NET_HOST,     /* share the host's network namespace */
} kiln_exec_net;

typedef enum kiln_exec_security {
    KILN_EXEC_SECURITY_SANDBOX = 0, /* default caps, seccomp, masked paths */
    KILN_EXEC_SECURITY_INSECURE,    /* all caps, no seccomp/masks; needs allow_insecure */
} kiln_exec_security;

typedef enum kiln_exec_mount_type {
    KILN_EXEC_MOUNT_BIND = 0, /* host directory or file (another snapshot), with subpath */
    KILN_EXEC_MOUNT_TMPFS,    /* fresh tmpfs, optional size */
    KILN_EXEC_MOUNT_CACHE,    /* persistent host cache dir with a sharing mode */
    KILN_EXEC_MOUNT_SECRET,   /* a file with `data` on a private tmpfs, never on disk */
    KILN_EXEC_MOUNT_SSH,      /* an ssh agent socket from the host */
} kiln_exec_mount_type;

typedef enum kiln_exec_cache_sharing {
    KILN_EXEC_CACHE_SHARED = 0, /* concurrent users share one directory */
    KILN_EXEC_CACHE_PRIVATE,    /* a separate instance directory per concurrent user */
    KILN_EXEC_CACHE_LOCKED,     /* one user at a time: an flock held for the step's duration */
} kiln_exec_cache_sharing;

typedef struct kiln_exec_mount {
    kiln_exec_mount_type type;
    /* BIND: host path; CACHE: the cache's base directory (instances live below it, see the
     * top of this file); SSH: host socket path; TMPFS/SECRET: unused. */
    const char *source;
    const char *subpath; /* BIND: path inside source (resolved inside it); NULL = whole source */
    const char *dest;    /* absolute path inside the sandbox */
    bool readonly;
    uint64_t tmpfs_size;             /* TMPFS: bytes, 0 = kernel default */
    kiln_exec_cache_sharing sharing; /* CACHE */
    const void *data;                /* SECRET: content (borrowed) */
    size_t data_len;                 /* SECRET */
    unsigned mode;                   /* SECRET: file mode, 0 = 0400 */
    uid_t uid;                       /* SECRET: owner */
    gid_t gid;                       /* SECRET: group */
} kiln_exec_mount;

/* An extra /etc/hosts entry (LLB ExecOp.network extraHosts, Dockerfile `--add-host host:ip`). */
typedef struct kiln_exec_host {
    const char *host; /* host name: no whitespace, '#' or '/' */
    const char *ip;   /* IPv4 or IPv6 address, written in canonical form */
} kiln_exec_host;

typedef struct kiln_exec_rlimit {
    int resource; /* RLIMIT_* */
    uint64_t soft;
    uint64_t hard;
} kiln_exec_rlimit;

/* Called from kiln_exec_run's thread as output arrives. `stream` is 1 (stdout) or 2 (stderr);
 * `data` is borrowed for the call; chunks are at most 64 KiB. */
typedef void (*kiln_exec_output_fn)(int stream, const char *data, size_t len, void *payload);

/* A cancellation handle: kiln_exec_cancel_trigger() from any thread makes a running (or the next)
 * kiln_exec_run() using it kill its sandbox and return KILN_ECANCELED within a second. */
typedef struct kiln_exec_cancel kiln_exec_cancel;

typedef struct kiln_exec_spec {
    /* Root filesystem: either `rootfs` (a directory, bind-mounted) or an overlay of `lowers`
     * (top-most first) with `upper` and `work` (all host directories; upper/work may be NULL for
     * a read-only overlay). */
    const char *rootfs;
    const char *const *lowers;
    size_t n_lowers;
    const char *upper;
    const char *work;
    bool rootfs_readonly;

    const char *const *args; /* NULL-terminated, args[0] non-NULL; resolved with PATH if relative */
    const char *const *env;  /* NULL-terminated "K=V" list or NULL; PATH defaulted when absent */
    const char *cwd;         /* NULL = "/"; created (0755) when missing */
    const char *user;        /* NULL = root; "name", "uid", "uid:gid", "name:group" */
    const char *hostname;    /* NULL = "buildkitsandbox" */
    const kiln_exec_host *extra_hosts; /* appended to the generated /etc/hosts, in order */
    size_t n_extra_hosts;
    kiln_exec_net network;
    kiln_exec_security security;
    bool allow_insecure; /* the caller's entitlement check passed */

    const kiln_exec_mount *mounts;
    size_t n_mounts;
    const kiln_exec_rlimit *rlimits;
    size_t n_rlimits;

    /* Cgroup limits; a cgroup (kiln/run-<pid>-<n>, v2 or v1 controllers) is created only when
     * one of them is set, and never in rootless mode. */
    uint64_t memory_max;   /* bytes */
    uint64_t pids_max;     /* processes */
    uint64_t cpu_quota_us; /* per cpu_period_us (default 100000) */
    uint64_t cpu_period_us;

    /* where per-run files go; NULL = /run/kiln/executor (root), $XDG_RUNTIME_DIR/kiln/executor
     * or /tmp/kiln-<uid>/executor (rootless) */
    const char *state_dir;
    uint64_t timeout_ms; /* 0 = none */
    kiln_exec_cancel *cancel;
    kiln_exec_output_fn on_output; /* NULL = output discarded */
    void *payload;
    /* stdin: with `has_stdin`, the process reads host descriptor `stdin_fd` (borrowed; as
     * `docker run -i`), else /dev/null */
    bool has_stdin;
    int stdin_fd;
} kiln_exec_spec;

#define KILN_EXEC_SPEC_INIT \
    {                       \
        0                   \
    }

typedef struct kiln_exec_result {
    int exit_code;  /* the step's exit status, or 128+signal when it was killed */
    int signal;     /* terminating signal, or 0 */
    bool timed_out; /* the timeout fired and the sandbox was killed */
    bool canceled;  /* cancellation fired and the sandbox was killed */
    /* the memory cgroup's OOM killer killed a process of the step (memory_max was hit) */
    bool oom_killed;
    uint64_t memory_limit; /* spec->memory_max when oom_killed, else 0 */
} kiln_exec_result;

/* Run the step described by `spec` and wait for it. Returns 0 when the step ran to completion
 * (whatever its exit status: see out->exit_code / out->signal / out->oom_killed). Errors:
 * KILN_EINVAL for a bad spec, unknown user or bad extra host; KILN_ESYS naming the failing setup
 * step ("mount /proc: Operation not permitted"); KILN_EUNSUPPORTED when a limit's cgroup
 * controller is missing; KILN_ETIMEOUT / KILN_ECANCELED after the sandbox was killed (out is
 * filled). The timeout and cancellation act once the sandbox's setup (mount system calls, no
 * waiting) has finished and its process is started.
 * On return no process, mount or cgroup of the sandbox is left behind: the sandbox's pid 1 has
 * been reaped, which the kernel allows only after it killed every process of the pid namespace
 * and unmounted the private mount namespace. What may outlive the call is, for `network none`,
 * its empty network namespace, kept for a later step when it is clean (see exec_netns.c). */
int kiln_exec_run(kiln_exec_result *out, const kiln_exec_spec *spec, kiln_error **err);

/* How the step ended, in one line for error messages: "exit code: 2", "process was killed: signal
 * 9 (Killed)", "process was killed: out of memory (memory limit 64 MiB)", or "exit code: 1 (a
 * process was killed: out of memory, memory limit 64 MiB)" when the OOM killer took a child and
 * the step went on. Owned by the caller; never fails. */
char *kiln_exec_result_describe(const kiln_exec_result *res);

/* Create a cancellation handle (owned by the caller; free with kiln_exec_cancel_free). */
int kiln_exec_cancel_new(kiln_exec_cancel **out, kiln_error **err);
/* Fire it: async-signal-safe and thread-safe; idempotent. */
void kiln_exec_cancel_trigger(kiln_exec_cancel *c);
bool kiln_exec_cancel_fired(const kiln_exec_cancel *c);
void kiln_exec_cancel_free(kiln_exec_cancel *c);

/* Remove the run cgroups (kiln/run-<pid>-<n>, v2 or the v1 controllers) whose creating process
 * is gone: a kiln killed while a step with limits ran leaves its cgroup behind. What is still in
 * one is killed first. Cgroups of live processes are left alone. Returns how many were removed
 * (0 when there is no kiln cgroup); KILN_ESYS when a stale one cannot be removed (the others are
 * still swept). */
int kiln_exec_sweep_cgroups(kiln_error **err);

/* Docker's 14 default capabilities as a bit mask (bit n = capability n). */
uint64_t kiln_exec_default_caps(void);

#endif
