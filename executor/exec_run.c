/*
 * exec_run.c: kiln_exec_run(), the parent side of a sandboxed step.
 *
 * Per run: a state directory <state>/run-XXXXXX holding the generated resolv.conf and hosts and
 * two empty mountpoints (rootfs/, secrets/) that are only ever mounted on inside the sandbox's
 * private mount namespace; cache mount instances and their locks; the seccomp BPF; an optional
 * cgroup. Then fork process A (exec_child.c) and multiplex its stdout/stderr pipes, the sync pipe,
 * the cancellation eventfd and the timeout in one poll loop. Output goes to the callback in chunks
 * as it arrives, so memory stays bounded whatever the step writes. Teardown (always): reap A,
 * destroy the cgroup, release cache locks, remove the state directory.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/file.h>
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
    char *dir;         /* <state>/run-XXXXXX */
    char *rootfs_mnt;  /* dir/rootfs */
    char *secret_dir;  /* dir/secrets */
    char **cache_dirs; /* per spec mount, or NULL */
    int *cache_locks;  /* per spec mount, -1 when none */
    size_t n_mounts;
    kiln_exec_cgroup cgroup;
    bool have_cgroup;
    const kiln_buf *bpf;   /* borrowed from the seccomp cache */
    kiln_vec stubs;        /* mountpoints created on the rootfs, relative paths, owned */
    const char *stub_base; /* host dir where the rootfs's new files land (upper or rootfs) */
} run_state;

static int
write_small_file(const char *dir, const char *name, const char *text, kiln_error **err)
{
    cleanup_free char *path = kiln_path_join(dir, name);
    cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t len = strlen(text);

    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        return kiln_error_errno(err, errno, "write %s", path);
    return 0;
}

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

static int
state_create(run_state *st, const kiln_exec_spec *spec, kiln_error **err)
{
    cleanup_free char *own_base = default_state_dir(spec);
    const char *base = spec->state_dir ? spec->state_dir : own_base;
    cleanup_free char *tmpl = kiln_path_join(base, "run-XXXXXX");
    cleanup_free char *resolv_host = read_host_resolv();
    cleanup_free char *resolv = NULL;
    cleanup_free char *hosts = NULL;
    int ret;

    ret = kiln_fs_mkdir_p(base, 0711, err);
    if (ret < 0)
        return kiln_error_wrap(err, "executor state dir");
    if (!mkdtemp(tmpl))
        return kiln_error_errno(err, errno, "create run dir under %s", base);
    st->dir = steal_pointer(&tmpl);
    st->rootfs_mnt = kiln_path_join(st->dir, "rootfs");
    st->secret_dir = kiln_path_join(st->dir, "secrets");
    if (mkdir(st->rootfs_mnt, 0755) < 0 || mkdir(st->secret_dir, 0700) < 0)
        return kiln_error_errno(err, errno, "create mountpoints in %s", st->dir);
    resolv = kiln_exec_gen_resolv_conf(resolv_host, spec->network == KILN_EXEC_NET_HOST);
    hosts = kiln_exec_gen_hosts(spec->hostname && *spec->hostname ? spec->hostname
                                                                  : KILN_EXEC_DEFAULT_HOSTNAME);
    ret = write_small_file(st->dir, "resolv.conf", resolv, err);
    return ret ? ret : write_small_file(st->dir, "hosts", hosts, err);
}

static void
state_remove(run_state *st)
{
    static const struct {
        const char *name;
        int flags;
    } entries[] = {
            {"resolv.conf", 0}, {"hosts", 0}, {"rootfs", AT_REMOVEDIR}, {"secrets", AT_REMOVEDIR}};
    cleanup_close int dfd = -1;

    if (!st->dir)
        return;
    /* the mountpoints were only ever mounted on inside the sandbox's mount namespace, so they
     * are empty directories here */
    dfd = open(st->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    for (size_t i = 0; dfd >= 0 && i < sizeof(entries) / sizeof(entries[0]); i++)
        if (unlinkat(dfd, entries[i].name, entries[i].flags) < 0 && errno != ENOENT)
            kiln_log_warn("cannot remove %s/%s: %s", st->dir, entries[i].name, strerror(errno));
    if (rmdir(st->dir) < 0)
        kiln_log_warn("cannot remove run dir %s: %s", st->dir, strerror(errno));
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
    state_remove(st);
    free(st->dir);
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

/* Ask A to kill the sandbox (SIGTERM becomes SIGKILL of its pid 1), escalate later. */
static void
start_kill(run_io *io, run_state *st)
{
    if (io->kill_at_ms)
        return;
    kill(io->child, SIGTERM);
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
            /* A did not finish in time: its death takes pid 1 (PDEATHSIG) and so the sandbox */
            kill(io->child, SIGKILL);
            io->kill_at_ms = INT64_MAX / 2;
        }
    }
}

/* Turn what the sync pipe carried into the result or an error; mount stubs the sandbox created
 * on the rootfs are appended to `stubs` (owned strings). */
static int
interpret(kiln_exec_result *out, const run_io *io, int a_status, kiln_vec *stubs, kiln_error **err)
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
        if (m.type == KILN_EXEC_MSG_STUB)
            kiln_vec_push(stubs, xstrndup(io->sync.ptr + off, (size_t)m.len));
        if (m.type == KILN_EXEC_MSG_STATUS) {
            have_status = true;
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
                              (unsigned)a_status);
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

/* Rootless: wait for A's "map me" message (or its setup error), map its user namespace and let
 * it go on. A mapping failure is recorded in io->sync like a child error, and A is killed. */
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
            return; /* A died: its error, if any, follows in the pipe */
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

static int
spawn_and_wait(kiln_exec_result *out, const kiln_exec_spec *spec, const kiln_exec_plan *plan,
               run_state *st, kiln_error **err)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, ps[2] = {-1, -1};
    kiln_exec_child_ctx ctx = {.plan = plan,
                               .cgroup = st->have_cgroup ? &st->cgroup : NULL,
                               .rootfs_mnt = st->rootfs_mnt,
                               .secret_dir = st->secret_dir,
                               .seccomp_bpf = plan->sandboxed ? st->bpf : NULL,
                               .sync_fd = -1,
                               .go_fd = -1};
    int pg[2] = {-1, -1};
    run_io io = {-1, -1, -1, KILN_BUF_INIT, NULL, -1, 0, 0, false, false};
    int status = 0, ret;

    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 || pipe2(ps, O_CLOEXEC) < 0 ||
        pipe2(pg, O_CLOEXEC) < 0) {
        ret = kiln_error_errno(err, errno, "create pipes");
        goto out;
    }
    ctx.sync_fd = ps[1];
    ctx.go_fd = pg[0];
    io.child = fork();
    if (io.child < 0) {
        ret = kiln_error_errno(err, errno, "fork sandbox");
        goto out;
    }
    if (io.child == 0) {
        int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
            _exit(125);
        kiln_exec_child_main(&ctx);
    }
    io.out_fd = po[0];
    io.err_fd = pe[0];
    io.sync_fd = ps[0];
    po[0] = pe[0] = ps[0] = -1;
    close(po[1]);
    close(pe[1]);
    close(ps[1]);
    po[1] = pe[1] = ps[1] = -1;
    io.chunk = xmalloc(OUTPUT_CHUNK);
    if (plan->rootless)
        map_userns(&io, pg[1]);
    close_pair(pg);
    if (spec->timeout_ms)
        io.deadline_ms = now_ms() + (int64_t)spec->timeout_ms;
    if (kiln_exec_cancel_fired(spec->cancel)) {
        io.canceled = true;
        start_kill(&io, st);
    }
    run_loop(&io, st, spec);
    while (waitpid(io.child, &status, 0) < 0 && errno == EINTR)
        ;
    ret = interpret(out, &io, status, &st->stubs, err);
    free(io.chunk);
    kiln_buf_dispose(&io.sync);
out:
    close_pair(pg);
    close_pair(po);
    close_pair(pe);
    close_pair(ps);
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
        ret = kiln_exec_plan_build(&plan, spec, st.dir, st.cache_dirs, geteuid() != 0, err);
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
    kiln_exec_plan_dispose(&plan);
    state_dispose(&st);
    return ret;
}
