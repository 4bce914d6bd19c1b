/*
 * exec_internal.h: the executor's parts, shared between its files and its unit tests.
 *
 * "Plan, then apply" (STYLE.md B5): kiln_exec_plan_build() turns a kiln_exec_spec into plain data
 * (namespaces, the ordered list of mounts, identity and privilege settings) without touching the
 * system; kiln_exec_child_*() apply a plan inside the sandbox's processes.
 */
#ifndef KILN_EXECUTOR_EXEC_INTERNAL_H
#define KILN_EXECUTOR_EXEC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/vec.h"
#include "executor/executor.h"

#define KILN_EXEC_DEFAULT_HOSTNAME "buildkitsandbox"
#define KILN_EXEC_DEFAULT_PATH     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define KILN_EXEC_DEFAULT_STATE    "/run/kiln/executor"

typedef enum kiln_plan_kind {
    KILN_PLAN_MOUNT = 0, /* mount(source, dest, fstype, flags, data); then ro remount if asked */
    KILN_PLAN_DEVICE,    /* bind the host device node `source` onto the file `dest` */
    KILN_PLAN_SYMLINK,   /* symlink(source, dest) */
    KILN_PLAN_MASK,      /* hide dest: /dev/null over a file, read-only tmpfs over a dir */
    KILN_PLAN_READONLY,  /* bind dest onto itself read-only (when it exists) */
    KILN_PLAN_SECRET,    /* write `content` to a private tmpfs file, bind it read-only at dest
                          * (secrets, and the generated /etc/resolv.conf and /etc/hosts) */
} kiln_plan_kind;

/* One step of the mount plan. Destinations are paths inside the sandbox; they are resolved inside
 * the rootfs (never following a symlink out of it) only when the plan is applied. */
typedef struct kiln_plan_mount {
    kiln_plan_kind kind;
    char *source;        /* host path, fstype source name, or symlink target; owned */
    char *dest;          /* absolute path inside the sandbox, cleaned; owned */
    char *fstype;        /* KILN_PLAN_MOUNT: "proc", "tmpfs", "none" for binds...; owned or NULL */
    unsigned long flags; /* MS_* */
    char *data;          /* mount data or NULL; owned */
    bool readonly;       /* remount read-only after mounting (binds) */
    bool dest_is_file;   /* create the mountpoint as a file, not a directory */
    bool optional; /* skip silently when the source (devices) or dest (masks, ro paths) is missing
                    */
    const void *content; /* KILN_PLAN_SECRET: borrowed from the spec or the plan */
    size_t content_len;
    unsigned mode; /* KILN_PLAN_SECRET file mode */
    uid_t uid;
    gid_t gid;
} kiln_plan_mount;

typedef struct kiln_exec_plan {
    int unshare_flags; /* CLONE_NEW* for unshare(); CLONE_NEWUSER is unshared first */
    bool rootless;     /* user namespace mapped by the parent (newuidmap/newgidmap) */
    /* rootfs: overlay (fstype "overlay" with `rootfs_data`) or a bind of `rootfs_source` */
    bool rootfs_overlay;
    char *rootfs_source; /* bind source (plain dir) or NULL; owned */
    char *rootfs_data;   /* overlay options; owned */
    bool rootfs_readonly;
    kiln_vec mounts; /* kiln_plan_mount *, in application order; owned */
    char *hostname;
    char *resolv_conf; /* generated /etc/resolv.conf text; owned */
    char *hosts;       /* generated /etc/hosts text; owned */
    bool loopback_up;  /* bring `lo` up in the fresh network namespace */
    bool sandboxed;    /* seccomp + default caps (false: insecure mode) */
    uint64_t caps;     /* capability mask kept in bounding/permitted/effective */
    char **argv;       /* NULL-terminated, owned */
    char **envp;       /* NULL-terminated, owned, PATH defaulted */
    char *cwd;
    char *user; /* user spec to resolve against the rootfs, or NULL (root) */
    struct rlimit rlimits[RLIM_NLIMITS];
    bool rlimit_set[RLIM_NLIMITS];
} kiln_exec_plan;

/* Build the plan for `spec`. `host_resolv` is the host's /etc/resolv.conf text (NULL = none),
 * from which the sandbox's is generated; /etc/resolv.conf and /etc/hosts are written inside the
 * sandbox, on its private tmpfs, never on the host. `cache_dirs[i]` is the host directory chosen
 * for spec->mounts[i] when it is a cache mount (NULL entries otherwise; the array may be NULL when
 * there are no cache mounts). `rootless`: the caller is not root; the sandbox gets a user
 * namespace and no /sys mounts. KILN_EINVAL for a bad spec (naming the field, extra hosts
 * included). *out is initialised and owned by the caller. */
int kiln_exec_plan_build(kiln_exec_plan *out, const kiln_exec_spec *spec, const char *host_resolv,
                         char *const *cache_dirs, bool rootless, kiln_error **err);
void kiln_exec_plan_dispose(kiln_exec_plan *plan);

/* A resolved identity. */
typedef struct kiln_exec_ident {
    uid_t uid;
    gid_t gid;
    gid_t *groups; /* supplementary groups, owned */
    size_t n_groups;
    char *home; /* from passwd, or "/"; owned */
} kiln_exec_ident;

/* Resolve a user spec ("name", "uid", "uid:gid", "name:group", "uid:group"; NULL/"" = root)
 * against <rootfs>/etc/passwd and <rootfs>/etc/group, read inside the rootfs (symlinks cannot
 * escape it). Missing files are fine for numeric ids. KILN_EINVAL for an unknown user or group.
 * *out owned by the caller (kiln_exec_ident_dispose). */
int kiln_exec_resolve_user(kiln_exec_ident *out, const char *rootfs, const char *user,
                           kiln_error **err);
void kiln_exec_ident_dispose(kiln_exec_ident *id);

/* Generated /etc files. `host_resolv` is the host's resolv.conf text (NULL = none): loopback
 * nameservers are dropped (they cannot work in another network namespace) and, when none are
 * left, Google's public resolvers are used, as Docker and BuildKit do. Owned by the caller. */
char *kiln_exec_gen_resolv_conf(const char *host_resolv, bool host_network);
/* /etc/hosts for `hostname` plus `n` extra entries ("ip<TAB>host" lines, as BuildKit writes them).
 * KILN_EINVAL naming the entry for a bad address or host name. *out owned by the caller. */
int kiln_exec_gen_hosts(char **out, const char *hostname, const kiln_exec_host *extra, size_t n,
                        kiln_error **err);

/* Compile Docker's default seccomp profile for the capability mask `caps` to classic BPF for the
 * native architecture. *out (owned) holds struct sock_filter entries. KILN_ESYS on libseccomp
 * failure. */
int kiln_exec_seccomp_compile(kiln_buf *out, uint64_t caps, kiln_error **err);
/* The same, compiled once per capability set and cached for the life of the process (thread-safe).
 * *out is borrowed until exit. */
int kiln_exec_seccomp_get(const kiln_buf **out, uint64_t caps, kiln_error **err);

/* Cgroup for one run: v2 (unified /sys/fs/cgroup) or v1 controllers pids/memory/cpu. */
typedef struct kiln_exec_cgroup {
    char *dirs[4]; /* created directories, NULL-terminated; owned */
    bool v2;
} kiln_exec_cgroup;

/* Create kiln/<name> and apply the spec's limits. KILN_ESYS naming the file on failure (nothing
 * is left behind), KILN_EUNSUPPORTED when a requested controller is unavailable. */
int kiln_exec_cgroup_create(kiln_exec_cgroup *cg, const char *name, const kiln_exec_spec *spec,
                            kiln_error **err);
/* Tests only: use the cgroup mount at `root` instead of /sys/fs/cgroup (NULL restores it). */
void kiln_exec__cgroup_root(const char *root);
/* Move process `pid` (0 = self) into the cgroup; async-signal-safe (used in the child). Returns 0
 * or -errno. */
int kiln_exec_cgroup_enter(const kiln_exec_cgroup *cg, pid_t pid);
/* Kill everything in it, wait until it is empty (up to ~2 s), remove it. Idempotent. */
int kiln_exec_cgroup_destroy(kiln_exec_cgroup *cg, kiln_error **err);
/* Whether the OOM killer killed a process in the cgroup: memory.events `oom_kill` (v2), or
 * memory.oom_control `oom_kill` (v1, kernel >= 4.13; older kernels: memory.failcnt > 0). */
bool kiln_exec_cgroup_oom_killed(const kiln_exec_cgroup *cg);
/* Whether the pids limit was hit (pids.events "max" > 0). */
bool kiln_exec_cgroup_pids_hit(const kiln_exec_cgroup *cg);

/* The pool of empty network namespaces (exec_netns.c). take: a pooled namespace fd (owned by the
 * caller), or -1 when the pool is empty; give: return one (takes ownership; closes it when the pool
 * is full; -1 is ignored); open: the namespace of process `pid`, or -1. Thread-safe. */
int kiln_exec_netns_take(void);
void kiln_exec_netns_give(int fd);
int kiln_exec_netns_open(pid_t pid);
/* Whether /proc/net/sockstat(6) text shows no socket at all (exposed for tests). */
bool kiln_exec__sockstat_empty(const char *text, size_t len);

/* Inside the sandbox (see exec_child.c). The sync pipe carries kiln_exec_msg records. */
enum {
    KILN_EXEC_MSG_ERROR = 1,
    KILN_EXEC_MSG_STATUS = 2,
    KILN_EXEC_MSG_USERNS = 4, /* rootless: B is in its new user namespace, map it now */
};
typedef struct kiln_exec_msg {
    int32_t type;
    int32_t code;   /* kiln_errcode for ERROR, wait status for STATUS */
    int32_t errnum; /* errno for ERROR; STATUS: KILN_EXEC_STATUS_* flags */
    int32_t len;    /* message bytes that follow */
} kiln_exec_msg;
#define KILN_EXEC_MSG_MAX 480
/* STATUS flag: the sandbox left no process and no socket behind in its network namespace */
#define KILN_EXEC_STATUS_NETNS_CLEAN 1

/* State B keeps while it sets up (on its own stack). */
typedef struct kiln_exec_child_vars {
    uint64_t root_mnt_id; /* mount id of the rootfs: stubs are recorded only on it */
    bool secrets_ready;   /* the private secrets tmpfs is mounted */
    bool joined_netns;    /* joined a pooled network namespace (its `lo` is up) */
} kiln_exec_child_vars;

typedef struct kiln_exec_child_ctx {
    const kiln_exec_plan *plan;
    const kiln_exec_cgroup *cgroup; /* or NULL */
    const char *rootfs_mnt;         /* host-side mountpoint of the new root */
    const char *secret_dir;         /* host-side dir for the private secrets tmpfs */
    const kiln_buf *seccomp_bpf;    /* or NULL */
    int out_fd, err_fd; /* write ends of the output pipes: the sandbox's stdout and stderr */
    int in_fd;          /* the step's stdin, or -1 for /dev/null */
    int sync_fd;
    int go_fd;        /* rootless: B reads one byte once its user namespace is mapped */
    int release_fd;   /* B writes one byte when it no longer uses the heap (T may go on) */
    int netns_fd;     /* a pooled empty network namespace to join instead of unsharing, or -1 */
    bool check_netns; /* report KILN_EXEC_STATUS_NETNS_CLEAN (the namespace may be pooled) */
    void *init_stack; /* top of B's stack (stacks grow down on every Linux arch we build on) */
    void *step_stack; /* top of C's stack */
    /* mountpoints B created on the rootfs (relative paths, owned strings): B appends while T
     * waits for the release, T reads them after the sandbox is gone */
    kiln_vec *stubs;
    kiln_exec_child_vars *vars; /* B's own; set by B */
} kiln_exec_child_ctx;

/* Map the user namespace that process `pid` has just unshared (see exec_userns.c). KILN_ESYS
 * when newuidmap/newgidmap or the /proc writes fail. */
int kiln_exec_userns_map(pid_t pid, kiln_error **err);

/* Clone the sandbox's pid 1 (B, see exec_child.c) sharing the caller's memory. Returns its pid,
 * or -1 with errno set. Until B writes to release_fd (or closes it by exiting), the calling
 * thread must not use the heap or errno, nor kill B: call only read(2) on the release pipe
 * (or, rootless, kiln_exec_userns_map() once B has sent KILN_EXEC_MSG_USERNS: B waits for the
 * go byte before it touches the heap). `ctx` and both stacks must stay valid until B is
 * reaped. */
pid_t kiln_exec_child_start(const kiln_exec_child_ctx *ctx);

#endif
