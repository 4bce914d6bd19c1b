/*
 * exec_run.c: kiln_exec_run(), the parent side of a sandboxed step.
 *
 * Per run: cache mount instances and their locks, the seccomp BPF (compiled once per process), an
 * optional cgroup, and nothing on disk: the state directory only holds two empty mountpoints
 * shared by all runs (rootfs/, secrets/), mounted on inside each sandbox's private mount
 * namespace, and the generated /etc files are written inside the sandbox. Then start the
 * sandbox's pid 1 (exec_child.c: cloned, sharing our memory; we wait while it sets up) and
 * multiplex its stdout/stderr pipes, the sync pipe, the cancellation eventfd and the timeout in
 * one poll loop. Output goes to the callback in chunks as it arrives, so memory stays bounded
 * whatever the step writes. Teardown (always): reap the sandbox's pid 1 (when it is reaped, the
 * kernel has killed every process of its pid namespace and unmounted its mount namespace),
 * destroy the cgroup, release cache locks; only then does kiln_exec_run() return.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define KILN_LOG_DOMAIN "executor"
#include "base/base.h"
#include "base/buf.h"
#include "base/fs.h"
#include "base/path.h"
#include "base/vec.h"
#include "executor/exec_internal.h"

#define OUTPUT_CHUNK  (64 * 1024)
#define SYNC_MAX      (4 * 1024 * 1024)
#define KILL_GRACE_MS 500

struct kiln_exec_cancel {
    int fd; /* eventfd, readable once fired */
    atomic_bool fired;
};

/* ---------------------------------------------------------------------------------------------
 * Cancellation handles
 */

/* Create a handle (see executor.h). KILN_ESYS when no eventfd can be made. */
int
kiln_exec_cancel_new(kiln_exec_cancel **out, kiln_error **err)
{
    kiln_exec_cancel *c = xnew(kiln_exec_cancel);

    c->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->fd < 0) {
        free(c);
        return kiln_error_errno(err, errno, "eventfd");
    }
    atomic_init(&c->fired, false);
    *out = c;
    return 0;
}

/* Fire (see executor.h): one atomic store and one write(2). */
void
kiln_exec_cancel_trigger(kiln_exec_cancel *c)
{
    uint64_t one = 1;

    atomic_store(&c->fired, true);
    if (write(c->fd, &one, sizeof(one)) < 0) {
        /* the counter can only overflow after 2^64 triggers; the flag is set anyway */
    }
}

/* Whether the handle fired. */
bool
kiln_exec_cancel_fired(const kiln_exec_cancel *c)
{
    return c && atomic_load(&((kiln_exec_cancel *)c)->fired);
}

/* Free a handle (NULL-safe). It must not be in use by a running kiln_exec_run(). */
void
kiln_exec_cancel_free(kiln_exec_cancel *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c);
}

/* ---------------------------------------------------------------------------------------------
 * Per-run state
 */

typedef struct run_state {
    char *rootfs_mnt;  /* <state>/rootfs, shared by all runs */
    char *secret_dir;  /* <state>/secrets, shared by all runs */
    char *host_resolv; /* the host's /etc/resolv.conf text, or NULL */
    char **cache_dirs; /* per spec mount, or NULL */
    int *cache_locks;  /* per spec mount, -1 when none */
    size_t n_mounts;
    kiln_exec_cgroup cgroup;
    bool have_cgroup;
    const kiln_buf *bpf;   /* borrowed from the seccomp cache */
    kiln_vec stubs;        /* mountpoints created on the rootfs, relative paths, owned */
    const char *stub_base; /* host dir where the rootfs's new files land (upper or rootfs) */
} run_state;

static char *
read_host_resolv(void)
{
    char buf[16384];
    cleanup_close int fd = open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return NULL;
    n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return xstrdup(buf);
}

/* Root: /run/kiln/executor. Rootless: $XDG_RUNTIME_DIR/kiln/executor, else
 * /tmp/kiln-<uid>/executor. Owned by the caller. */
static char *
default_state_dir(const kiln_exec_spec *spec)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");

    if (spec->state_dir)
        return NULL;
    if (geteuid() == 0)
        return xstrdup(KILN_EXEC_DEFAULT_STATE);
    if (xdg && kiln_path_is_abs(xdg))
        return kiln_path_join(xdg, "kiln/executor");
    return xasprintf("/tmp/kiln-%u/executor", (unsigned)geteuid());
}

/* Make the shared mountpoints <state>/rootfs and <state>/secrets. They are only ever mounted on
 * inside each sandbox's private mount namespace, so concurrent runs share them and they stay
 * empty directories on the host. */
static int
state_create(run_state *st, const kiln_exec_spec *spec, kiln_error **err)
{
    cleanup_free char *own_base = default_state_dir(spec);
    const char *base = spec->state_dir ? spec->state_dir : own_base;
    int ret;

    ret = kiln_fs_mkdir_p(base, 0711, err);
    if (ret < 0)
        return kiln_error_wrap(err, "executor state dir");
    st->rootfs_mnt = kiln_path_join(base, "rootfs");
    st->secret_dir = kiln_path_join(base, "secrets");
    if ((mkdir(st->rootfs_mnt, 0755) < 0 && errno != EEXIST) ||
        (mkdir(st->secret_dir, 0700) < 0 && errno != EEXIST))
        return kiln_error_errno(err, errno, "create mountpoints in %s", base);
    st->host_resolv = read_host_resolv();
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Cache mounts: instances <source>/<N> guarded by flocks on <source>/<N>.lock. Shared users take
 * LOCK_SH on instance 0, locked users LOCK_EX on instance 0 (waiting, cancellably), private users
 * the first instance nobody holds.
 */

/* Take the lock of instance n. With `wait` false a held lock returns KILN_EEXISTS (err unset). */
static int
cache_lock(int *fd_out, const char *source, unsigned n, int op, bool wait,
           const kiln_exec_spec *spec, kiln_error **err)
{
    cleanup_free char *lock = xasprintf("%s/%u.lock", source, n);
    cleanup_close int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct timespec ts = {0, 20 * 1000 * 1000};

    if (fd < 0)
        return kiln_error_errno(err, errno, "cache lock %s", lock);
    while (flock(fd, op | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK)
            return kiln_error_errno(err, errno, "flock %s", lock);
        if (!wait)
            return KILN_EEXISTS;
        if (kiln_exec_cancel_fired(spec->cancel))
            return kiln_error_set(err, KILN_ECANCELED, "canceled waiting for cache lock %s", lock);
        nanosleep(&ts, NULL);
    }
    *fd_out = steal_fd(&fd);
    return 0;
}

static int
cache_acquire(run_state *st, size_t i, const kiln_exec_mount *m, const kiln_exec_spec *spec,
              kiln_error **err)
{
    unsigned n = 0;
    int ret;

    if (!m->source || !kiln_path_is_abs(m->source))
        return kiln_error_set(err, KILN_EINVAL, "cache mount %s: source must be absolute",
                              m->dest ? m->dest : "");
    ret = kiln_fs_mkdir_p(m->source, 0755, err);
    if (ret < 0)
        return ret;
    if (m->sharing == KILN_EXEC_CACHE_PRIVATE) {
        /* instance 0 when nobody uses it, else the first free one */
        for (n = 0;; n++) {
            ret = cache_lock(&st->cache_locks[i], m->source, n, LOCK_EX, false, spec, err);
            if (ret != KILN_EEXISTS)
                break;
        }
    } else {
        ret = cache_lock(&st->cache_locks[i], m->source, 0,
                         m->sharing == KILN_EXEC_CACHE_LOCKED ? LOCK_EX : LOCK_SH, true, spec, err);
    }
    if (ret < 0)
        return ret;
    st->cache_dirs[i] = xasprintf("%s/%u", m->source, n);
    return kiln_fs_mkdir_p(st->cache_dirs[i], 0755, err);
}

static int
state_prepare(run_state *st, const kiln_exec_spec *spec, kiln_error **err)
{
    int ret = state_create(st, spec, err);

    st->n_mounts = spec->n_mounts;
    st->cache_dirs = xcalloc(spec->n_mounts + 1, sizeof(char *));
    st->cache_locks = xcalloc(spec->n_mounts + 1, sizeof(int));
    for (size_t i = 0; i < spec->n_mounts; i++)
        st->cache_locks[i] = -1;
    for (size_t i = 0; i < spec->n_mounts && ret == 0; i++)
        if (spec->mounts[i].type == KILN_EXEC_MOUNT_CACHE)
            ret = cache_acquire(st, i, &spec->mounts[i], spec, err);
    return ret;
}

static void
state_dispose(run_state *st)
{
    if (st->have_cgroup) {
        kiln_error *tmp = NULL;
        if (kiln_exec_cgroup_destroy(&st->cgroup, &tmp) < 0)
            kiln_log_warn("%s", tmp->msg);
        kiln_error_free(&tmp);
    }
    for (size_t i = 0; i < st->n_mounts; i++) {
        free(st->cache_dirs[i]);
        if (st->cache_locks[i] >= 0)
            close(st->cache_locks[i]);
    }
    free(st->cache_dirs);
    free(st->cache_locks);
    kiln_strvec_dispose(&st->stubs);
    free(st->host_resolv);
    free(st->rootfs_mnt);
    free(st->secret_dir);
}

/* ---------------------------------------------------------------------------------------------
 * The poll loop
 */

typedef struct run_io {
    int out_fd, err_fd, sync_fd; /* read ends, -1 once at EOF */
    kiln_buf sync;               /* bytes received on the sync pipe (small) */
    char *chunk;
    pid_t child;
    int64_t deadline_ms; /* timeout, or 0 */
    int64_t kill_at_ms;  /* when to escalate to SIGKILL of A, or 0 */
    bool timed_out, canceled;
} run_io;

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
drain(int *fd, int stream, kiln_buf *sink, char *chunk, const kiln_exec_spec *spec)
{
    ssize_t n = read(*fd, chunk, OUTPUT_CHUNK);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close(*fd);
        *fd = -1;
        return;
    }
    if (sink) {
        /* sync messages come from kiln's own code before exec (an error, one stub per created
         * mountpoint, the status): far below this cap, which only bounds a runaway child */
        if (sink->len < SYNC_MAX)
            kiln_buf_put(sink, chunk, (size_t)n, NULL);
    } else if (spec->on_output) {
        spec->on_output(stream, chunk, (size_t)n, spec->payload);
    }
}

/* Kill the sandbox: SIGKILL of its pid 1 takes the whole pid namespace. The escalation later
 * only repeats it. */
static void
start_kill(run_io *io, run_state *st)
{
    if (io->kill_at_ms)
        return;
    kill(io->child, SIGKILL);
    if (st->have_cgroup && st->cgroup.v2) {
        cleanup_free char *p = xasprintf("%s/cgroup.kill", st->cgroup.dirs[0]);
        cleanup_close int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd >= 0 && write(fd, "1", 1) < 0)
            kiln_log_debug("cgroup.kill: %s", strerror(errno));
    }
    io->kill_at_ms = now_ms() + KILL_GRACE_MS;
}

static int
poll_timeout(const run_io *io)
{
    int64_t now = now_ms(), next = -1;

    if (io->deadline_ms && !io->kill_at_ms)
        next = io->deadline_ms;
    if (io->kill_at_ms)
        next = io->kill_at_ms;
    if (next < 0)
        return -1;
    if (next <= now)
        return 0;
    return next - now > 60000 ? 60000 : (int)(next - now);
}

static void
run_loop(run_io *io, run_state *st, const kiln_exec_spec *spec)
{
    while (io->out_fd >= 0 || io->err_fd >= 0 || io->sync_fd >= 0) {
        struct pollfd p[4] = {{io->out_fd, POLLIN, 0},
                              {io->err_fd, POLLIN, 0},
                              {io->sync_fd, POLLIN, 0},
                              {spec->cancel && !io->kill_at_ms ? spec->cancel->fd : -1, POLLIN, 0}};
        int n = poll(p, 4, poll_timeout(io));

        if (n < 0 && errno != EINTR)
            kiln_abort(__FILE__, __LINE__, "poll: %s", strerror(errno));
        if (p[0].revents)
            drain(&io->out_fd, 1, NULL, io->chunk, spec);
        if (p[1].revents)
            drain(&io->err_fd, 2, NULL, io->chunk, spec);
        if (p[2].revents)
            drain(&io->sync_fd, 0, &io->sync, io->chunk, spec);
        if (p[3].revents && !io->kill_at_ms) {
            io->canceled = true;
            start_kill(io, st);
        }
        if (io->deadline_ms && !io->kill_at_ms && now_ms() >= io->deadline_ms) {
            io->timed_out = true;
            start_kill(io, st);
        }
        if (io->kill_at_ms && now_ms() >= io->kill_at_ms) {
            /* still not gone: repeat (a no-op unless something raced with the first) */
            kill(io->child, SIGKILL);
            io->kill_at_ms = INT64_MAX / 2;
        }
    }
}

/* Turn what the sync pipe carried into the result or an error; *flags gets the STATUS flags. */
static int
interpret(kiln_exec_result *out, int *flags, const run_io *io, int b_status, kiln_error **err)
{
    size_t off = 0;
    bool have_status = false;

    while (off + sizeof(kiln_exec_msg) <= io->sync.len) {
        kiln_exec_msg m;
        memcpy(&m, io->sync.ptr + off, sizeof(m));
        off += sizeof(m);
        if (m.len < 0 || m.len > KILN_EXEC_MSG_MAX || off + (size_t)m.len > io->sync.len)
            break;
        if (m.type == KILN_EXEC_MSG_ERROR) {
            int code = m.code < 0 && m.code >= KILN_EINTERNAL ? m.code : KILN_EINTERNAL;
            if (m.errnum > 0)
                return kiln_error_errno(err, m.errnum, "%.*s", (int)m.len, io->sync.ptr + off);
            return kiln_error_set(err, code, "%.*s", (int)m.len, io->sync.ptr + off);
        }
        if (m.type == KILN_EXEC_MSG_STATUS) {
            have_status = true;
            *flags = m.errnum;
            if (WIFSIGNALED(m.code)) {
                out->signal = WTERMSIG(m.code);
                out->exit_code = 128 + out->signal;
            } else {
                out->exit_code = WEXITSTATUS(m.code);
            }
        }
        off += (size_t)m.len;
    }
    out->timed_out = io->timed_out;
    out->canceled = io->canceled;
    if (io->canceled)
        return kiln_error_set(err, KILN_ECANCELED, "step canceled");
    if (io->timed_out)
        return kiln_error_set(err, KILN_ETIMEOUT, "step timed out");
    if (!have_status)
        return kiln_error_set(err, KILN_EINTERNAL, "sandbox exited without a status (0x%x)",
                              (unsigned)b_status);
    return 0;
}

/* Remove one stub under `base` if it is still an empty directory or an empty file; every lookup
 * stays inside `base` (the step may have replaced components with symlinks). */
static void
remove_stub(int basefd, const char *rel)
{
    cleanup_free char *parent = kiln_path_dir(rel);
    cleanup_free char *name = kiln_path_base(rel);
    cleanup_close int pfd = -1;
    struct stat st;

    pfd = kiln_path_open_in_root(basefd, parent, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, NULL);
    if (pfd < 0 || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return;
    if (S_ISDIR(st.st_mode))
        unlinkat(pfd, name, AT_REMOVEDIR); /* fails, as it should, when not empty */
    else if (S_ISREG(st.st_mode) && st.st_size == 0)
        unlinkat(pfd, name, 0);
}

/* Remove the mount stubs, deepest (last created) first. */
static void
remove_stubs(run_state *st)
{
    cleanup_close int basefd = -1;

    if (!st->stub_base || !st->stubs.len)
        return;
    basefd = open(st->stub_base, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (basefd < 0)
        return;
    for (size_t i = st->stubs.len; i-- > 0;)
        remove_stub(basefd, st->stubs.items[i]);
}

/* Close both ends that are still open and mark them closed: a second close of a reused number
 * would close another thread's descriptor. */
static void
close_pair(int p[2])
{
    for (int i = 0; i < 2; i++) {
        if (p[i] >= 0)
            close(p[i]);
        p[i] = -1;
    }
}

/* Rootless: wait for B's "map me" message (or its setup error), map its user namespace and let
 * it go on. A mapping failure is recorded in io->sync like a child error, and B is killed (it
 * has not touched the heap yet: it waits for the go byte). */
static void
map_userns(run_io *io, int go_fd)
{
    kiln_error *e = NULL;
    kiln_exec_msg m;
    ssize_t n;

    for (;;) {
        n = read(io->sync_fd, &m, sizeof(m));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(m))
            return; /* B died: its error, if any, follows in the pipe */
        kiln_buf_put(&io->sync, &m, sizeof(m), NULL);
        if (m.type == KILN_EXEC_MSG_USERNS)
            break;
        if (m.len > 0 && m.len <= KILN_EXEC_MSG_MAX) {
            char text[KILN_EXEC_MSG_MAX];
            n = read(io->sync_fd, text, (size_t)m.len);
            kiln_buf_put(&io->sync, text, n > 0 ? (size_t)n : 0, NULL);
        }
        if (m.type == KILN_EXEC_MSG_ERROR)
            return;
    }
    if (kiln_exec_userns_map(io->child, &e) == 0) {
        if (write(go_fd, "g", 1) == 1)
            return;
        kiln_error_errno(&e, errno, "release sandbox");
    }
    /* report as if the child had failed: the same path turns it into the caller's error */
    m.type = KILN_EXEC_MSG_ERROR;
    m.code = e->code;
    m.errnum = 0;
    m.len = (int32_t)strnlen(e->msg, KILN_EXEC_MSG_MAX);
    kiln_buf_put(&io->sync, &m, sizeof(m), NULL);
    kiln_buf_put(&io->sync, e->msg, (size_t)m.len, NULL);
    kiln_error_free(&e);
    kill(io->child, SIGKILL);
}

/* B's and C's stacks, in one mapping with a guard page below each. Untouched pages cost
 * nothing, so they are generous: B's setup resolves paths with PATH_MAX buffers. */
#define STACK_SIZE (512 * 1024)
#define GUARD_SIZE (64 * 1024)

typedef struct stacks {
    char *base;
    size_t len;
} stacks;

/* Mappings of finished runs, kept for the next ones: a fresh mapping costs page faults on the
 * pages B and C touch, and unmapping it a TLB shootdown on every CPU running our threads. */
#define STACKS_KEPT 8
static pthread_mutex_t stacks_lock = PTHREAD_MUTEX_INITIALIZER;
static char *stacks_free[STACKS_KEPT];
static size_t stacks_n;

static int
stacks_map(stacks *s, kiln_exec_child_ctx *ctx, kiln_error **err)
{
    s->len = 2 * (GUARD_SIZE + STACK_SIZE);
    pthread_mutex_lock(&stacks_lock);
    s->base = stacks_n ? stacks_free[--stacks_n] : NULL;
    pthread_mutex_unlock(&stacks_lock);
    if (!s->base) {
        s->base = mmap(NULL, s->len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (s->base == MAP_FAILED) {
            s->base = NULL;
            return kiln_error_errno(err, errno, "map sandbox stacks");
        }
        if (mprotect(s->base, GUARD_SIZE, PROT_NONE) < 0 ||
            mprotect(s->base + GUARD_SIZE + STACK_SIZE, GUARD_SIZE, PROT_NONE) < 0)
            return kiln_error_errno(err, errno, "protect sandbox stack guards");
    }
    ctx->init_stack = s->base + GUARD_SIZE + STACK_SIZE;
    ctx->step_stack = s->base + s->len;
    return 0;
}

/* Only once B is reaped (or was never started): nobody runs on the stacks any more. */
static void
stacks_unmap(stacks *s)
{
    if (!s->base)
        return;
    pthread_mutex_lock(&stacks_lock);
    if (stacks_n < STACKS_KEPT) {
        stacks_free[stacks_n++] = s->base;
        s->base = NULL;
    }
    pthread_mutex_unlock(&stacks_lock);
    if (s->base)
        munmap(s->base, s->len);
    s->base = NULL;
}

/* Wait until B releases the memory (one byte) or exits before it does (EOF). Only read(2) here,
 * and errno is not looked at: B may be writing it (see kiln_exec_child_start). */
static void
wait_release(int fd)
{
    char c;

    while (read(fd, &c, 1) < 0)
        ;
}

/* The pipes between us and the sandbox: [0] read end (ours), [1] write end (the sandbox's; for
 * GO the other way round). */
enum { PIPE_OUT, PIPE_ERR, PIPE_SYNC, PIPE_GO, PIPE_RELEASE, PIPE_N };

/* Start B and wait for the release; io->child is B's pid. On success B's ends are closed here
 * and our read ends belong to io. */
static int
start_sandbox(run_io *io, kiln_exec_child_ctx *ctx, const kiln_exec_plan *plan,
              int pipes[PIPE_N][2], kiln_error **err)
{
    io->child = kiln_exec_child_start(ctx);
    if (io->child < 0)
        return kiln_error_errno(err, errno, "start sandbox");
    /* until the release: close() and read() only, no heap, no errno (kiln_exec_child_start) */
    for (int i = 0; i < PIPE_N; i++) {
        if (i != PIPE_GO) {
            close(pipes[i][1]);
            pipes[i][1] = -1;
        }
    }
    io->out_fd = steal_fd(&pipes[PIPE_OUT][0]);
    io->err_fd = steal_fd(&pipes[PIPE_ERR][0]);
    io->sync_fd = steal_fd(&pipes[PIPE_SYNC][0]);
    if (plan->rootless)
        map_userns(io, pipes[PIPE_GO][1]);
    wait_release(pipes[PIPE_RELEASE][0]);
    return 0;
}

/* After the run: keep a clean network namespace for a later step (see exec_netns.c). */
static void
netns_done(int *fd, int flags)
{
    if (flags & KILN_EXEC_STATUS_NETNS_CLEAN)
        kiln_exec_netns_give(steal_fd(fd));
    else if (*fd >= 0)
        close(steal_fd(fd));
}

static int
spawn_and_wait(kiln_exec_result *out, const kiln_exec_spec *spec, const kiln_exec_plan *plan,
               run_state *st, kiln_error **err)
{
    kiln_exec_child_ctx ctx = {.plan = plan,
                               .cgroup = st->have_cgroup ? &st->cgroup : NULL,
                               .rootfs_mnt = st->rootfs_mnt,
                               .secret_dir = st->secret_dir,
                               .seccomp_bpf = plan->sandboxed ? st->bpf : NULL,
                               .netns_fd = -1,
                               .stubs = &st->stubs};
    /* see exec_netns.c for when a network namespace may be reused */
    const bool pool_netns =
            !plan->rootless && plan->sandboxed && (plan->unshare_flags & CLONE_NEWNET);
    int pipes[PIPE_N][2];
    run_io io = {-1, -1, -1, KILN_BUF_INIT, NULL, -1, 0, 0, false, false};
    stacks stk = {NULL, 0};
    int status = 0, flags = 0, netns_fd = -1, ret = 0;

    memset(pipes, -1, sizeof(pipes));
    for (int i = 0; i < PIPE_N && ret == 0; i++)
        if (pipe2(pipes[i], O_CLOEXEC) < 0)
            ret = kiln_error_errno(err, errno, "create pipes");
    if (ret == 0)
        ret = stacks_map(&stk, &ctx, err);
    if (ret < 0)
        goto out;
    if (pool_netns) {
        netns_fd = ctx.netns_fd = kiln_exec_netns_take();
        ctx.check_netns = true;
    }
    ctx.out_fd = pipes[PIPE_OUT][1];
    ctx.err_fd = pipes[PIPE_ERR][1];
    ctx.in_fd = spec->has_stdin ? spec->stdin_fd : -1;
    ctx.sync_fd = pipes[PIPE_SYNC][1];
    ctx.go_fd = pipes[PIPE_GO][0];
    ctx.release_fd = pipes[PIPE_RELEASE][1];
    /* the timeout counts the sandbox's setup too (it fires once B has released us) */
    if (spec->timeout_ms)
        io.deadline_ms = now_ms() + (int64_t)spec->timeout_ms;
    ret = start_sandbox(&io, &ctx, plan, pipes, err);
    if (ret < 0)
        goto out;
    if (pool_netns && netns_fd < 0)
        netns_fd = kiln_exec_netns_open(io.child); /* the one B made; -1 if B is gone already */
    io.chunk = xmalloc(OUTPUT_CHUNK);
    if (kiln_exec_cancel_fired(spec->cancel)) {
        io.canceled = true;
        start_kill(&io, st);
    }
    run_loop(&io, st, spec);
    while (waitpid(io.child, &status, 0) < 0 && errno == EINTR)
        ;
    ret = interpret(out, &flags, &io, status, err);
    free(io.chunk);
    kiln_buf_dispose(&io.sync);
out:
    /* B is reaped (or never ran): nobody runs on the stacks any more */
    stacks_unmap(&stk);
    netns_done(&netns_fd, flags);
    for (int i = 0; i < PIPE_N; i++)
        close_pair(pipes[i]);
    return ret;
}

static int
make_cgroup(run_state *st, const kiln_exec_spec *spec, kiln_error **err)
{
    static atomic_uint counter;
    cleanup_free char *name = NULL;
    int ret;

    if (!spec->memory_max && !spec->pids_max && !spec->cpu_quota_us)
        return 0;
    name = xasprintf("run-%d-%u", (int)getpid(), atomic_fetch_add(&counter, 1));
    ret = kiln_exec_cgroup_create(&st->cgroup, name, spec, err);
    if (ret < 0)
        return ret;
    st->have_cgroup = true;
    return 0;
}

/* "64 MiB", "1.5 GiB", "1000 bytes". */
static void
format_size(char *buf, size_t len, uint64_t n)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;

    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (u == 0 || v == (double)(uint64_t)v)
        snprintf(buf, len, "%llu %s", (unsigned long long)v, units[u]);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
}

/* Describe how the step ended (see executor.h). */
char *
kiln_exec_result_describe(const kiln_exec_result *res)
{
    const char *name = res->signal ? sigdescr_np(res->signal) : NULL;
    char limit[32];

    format_size(limit, sizeof(limit), res->memory_limit);
    if (res->oom_killed && res->signal == SIGKILL)
        return xasprintf("process was killed: out of memory (memory limit %s)", limit);
    if (res->oom_killed)
        return xasprintf("exit code: %d (a process was killed: out of memory, memory limit %s)",
                         res->exit_code, limit);
    if (res->signal)
        return xasprintf("process was killed: signal %d (%s)", res->signal,
                         name ? name : "unknown");
    return xasprintf("exit code: %d", res->exit_code);
}

/* Run one step (see executor.h). */
int
kiln_exec_run(kiln_exec_result *out, const kiln_exec_spec *spec, kiln_error **err)
{
    run_state st;
    kiln_exec_plan plan;
    int ret;

    memset(out, 0, sizeof(*out));
    memset(&st, 0, sizeof(st));
    memset(&plan, 0, sizeof(plan));
    if (kiln_exec_cancel_fired(spec->cancel)) {
        out->canceled = true;
        return kiln_error_set(err, KILN_ECANCELED, "step canceled before it started");
    }
    ret = state_prepare(&st, spec, err);
    if (ret == 0)
        ret = kiln_exec_plan_build(&plan, spec, st.host_resolv, st.cache_dirs, geteuid() != 0, err);
    if (ret == 0 && plan.sandboxed)
        ret = kiln_exec_seccomp_get(&st.bpf, plan.caps, err);
    if (ret == 0 && !plan.rootless)
        ret = make_cgroup(&st, spec, err);
    if (ret == 0) {
        /* only an overlay's upper dir is private to this run: in a plain directory another
         * concurrent step may be using the same stub as its mountpoint, and removing it would
         * unmount that step's mount (the kernel detaches mounts on a deleted dentry) */
        st.stub_base = plan.rootfs_overlay ? spec->upper : NULL;
        ret = spawn_and_wait(out, spec, &plan, &st, err);
        remove_stubs(&st);
    }
    /* read before the cgroup goes: the kill counter lives in it */
    if (st.have_cgroup && spec->memory_max && kiln_exec_cgroup_oom_killed(&st.cgroup)) {
        out->oom_killed = true;
        out->memory_limit = spec->memory_max;
    }
    kiln_exec_plan_dispose(&plan);
    state_dispose(&st);
    return ret;
}
