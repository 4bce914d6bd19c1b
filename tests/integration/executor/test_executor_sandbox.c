/*
 * test_executor_sandbox.c: the executor against the real kernel (root only; exit 77 otherwise).
 *
 * A tiny rootfs is made per run from Debian's static busybox (applet symlinks, /etc/passwd and
 * /etc/group with root and nobody) plus the static try-syscall helper. Each case runs a step and
 * checks what the step sees (pid namespace, hostname, capabilities, seccomp, masks, network) and
 * what the host sees afterwards (escapes contained, no process, mount or cgroup left behind).
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/fs.h"
#include "base/path.h"
#include "executor/exec_internal.h"
#include "executor/executor.h"

static char *tmp_root;  /* the test's temp dir */
static char *rootfs;    /* tmp_root/rootfs */
static char *outside;   /* tmp_root/outside: must never change */
static char *state_dir; /* tmp_root/state */

/* ---------------------------------------------------------------------------------------------
 * Fixture
 */

/* Fail the test with the error's message (a macro: `e` must be read after `call` ran). */
#define must(call, e)                                 \
    do {                                              \
        if ((call) < 0)                               \
            fail_msg("%s", (e) ? (e)->msg : "error"); \
    } while (0)

static void
write_text(const char *path, const char *text)
{
    kiln_error *e = NULL;
    cleanup_free char *dir = kiln_path_dir(path);

    must(kiln_fs_mkdir_p(dir, 0755, &e), e);
    must(kiln_fs_write_atomic(path, text, strlen(text), 0644, &e), e);
}

static void
make_rootfs(const char *helper)
{
    kiln_error *e = NULL;
    cleanup_free char *bin = kiln_path_join(rootfs, "bin");
    cleanup_free char *cmd = NULL;

    must(kiln_fs_mkdir_p(bin, 0755, &e), e);
    cmd = xasprintf(
            "cp /bin/busybox %s/busybox && cp %s %s/try-syscall && "
            "for a in $(/bin/busybox --list); do [ $a = busybox ] || ln -sf busybox %s/$a; done && "
            "mkdir -p %s/tmp %s/proc %s/sys %s/dev %s/etc %s/root && chmod 1777 %s/tmp",
            bin, helper, bin, bin, rootfs, rootfs, rootfs, rootfs, rootfs, rootfs, rootfs);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    cmd = kiln_path_join(rootfs, "etc/passwd");
    write_text(cmd, "root:x:0:0:root:/root:/bin/sh\n"
                    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
    free(cmd);
    cmd = kiln_path_join(rootfs, "etc/group");
    write_text(cmd, "root:x:0:\nwheel:x:10:nobody\nnogroup:x:65534:\n");
}

static int
group_setup(void **state)
{
    const char *helper = getenv("KILN_TRY_SYSCALL");
    kiln_error *e = NULL;

    (void)state;
    if (geteuid() != 0 || !helper || access("/bin/busybox", X_OK) != 0) {
        fprintf(stderr, "skip: needs root, /bin/busybox and KILN_TRY_SYSCALL\n");
        exit(getenv("KILN_TEST_MUST_WORK") ? 1 : 77);
    }
    must(kiln_fs_mkdtemp(&tmp_root, "/tmp", "kiln-exec-test-", &e), e);
    rootfs = kiln_path_join(tmp_root, "rootfs");
    outside = kiln_path_join(tmp_root, "outside");
    state_dir = kiln_path_join(tmp_root, "state");
    must(kiln_fs_mkdir_p(outside, 0755, &e), e);
    make_rootfs(helper);
    return 0;
}

static int
group_teardown(void **state)
{
    kiln_error *e = NULL;

    (void)state;
    if (tmp_root && kiln_fs_rm_rf(tmp_root, &e) < 0) {
        fprintf(stderr, "teardown: %s\n", e->msg);
        kiln_error_free(&e);
    }
    free(tmp_root);
    free(rootfs);
    free(outside);
    free(state_dir);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers
 */

typedef struct capture {
    kiln_buf out;
    kiln_buf err;
    uint64_t total;
    bool keep; /* false: count bytes only */
} capture;

static void
on_output(int stream, const char *data, size_t len, void *payload)
{
    capture *c = payload;

    c->total += len;
    if (c->keep)
        kiln_buf_put(stream == 1 ? &c->out : &c->err, data, len, NULL);
}

static void
spec_init(kiln_exec_spec *spec, capture *cap, const char *const *args)
{
    memset(cap, 0, sizeof(*cap));
    cap->keep = true;
    memset(spec, 0, sizeof(*spec));
    spec->rootfs = rootfs;
    spec->args = args;
    spec->state_dir = state_dir;
    spec->on_output = on_output;
    spec->payload = cap;
}

static void
capture_dispose(capture *c)
{
    kiln_buf_dispose(&c->out);
    kiln_buf_dispose(&c->err);
}

/* Run a shell snippet in the default sandbox; expect exit 0; return stdout (owned). */
static char *
sh(const char *script)
{
    const char *args[] = {"/bin/sh", "-c", script, NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    spec_init(&spec, &cap, args);
    must(kiln_exec_run(&res, &spec, &e), e);
    if (res.exit_code != 0)
        fail_msg("`%s` exited %d: %s", script, res.exit_code, kiln_buf_cstr(&cap.err));
    kiln_buf_dispose(&cap.err);
    return kiln_buf_detach(&cap.out);
}

static bool
dir_is_empty(const char *path)
{
    cleanup_dir DIR *d = opendir(path);
    struct dirent *de;

    assert_non_null(d);
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return false;
    return true;
}

/* The state dir holds only the two mountpoints shared by all runs, both empty (every mount on
 * them was in a sandbox's own mount namespace), and no per-run file. */
static bool
state_dir_clean(void)
{
    cleanup_dir DIR *d = opendir(state_dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d))) {
        cleanup_free char *p = kiln_path_join(state_dir, de->d_name);
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if ((strcmp(de->d_name, "rootfs") != 0 && strcmp(de->d_name, "secrets") != 0) ||
            !dir_is_empty(p))
            return false;
        n++;
    }
    return n == 2;
}

/* Host processes whose command line contains `needle`. */
static int
count_host_procs(const char *needle)
{
    cleanup_dir DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    while ((de = readdir(d))) {
        char path[300], buf[512];
        ssize_t len;
        int fd;

        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        len = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        for (ssize_t i = 0; i < len; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[len > 0 ? len : 0] = '\0';
        if (strstr(buf, needle))
            n++;
    }
    return n;
}

static bool
file_contains(const char *path, const char *needle)
{
    cleanup_free char *text = NULL;

    if (kiln_fs_read_file(&text, NULL, path, 0, NULL) < 0)
        return false;
    return strstr(text, needle) != NULL;
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------------------------
 * What the step sees
 */

static void
test_executor_sandbox__exit_status_and_output(void **state)
{
    const char *args[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 7", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    spec_init(&spec, &cap, args);
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_int_equal(res.exit_code, 7);
    assert_int_equal(res.signal, 0);
    assert_string_equal(kiln_buf_cstr(&cap.out), "out\n");
    assert_string_equal(kiln_buf_cstr(&cap.err), "err\n");
    capture_dispose(&cap);
}

static void
test_executor_sandbox__signal_reported(void **state)
{
    const char *args[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    spec_init(&spec, &cap, args);
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_int_equal(res.signal, 9);
    assert_int_equal(res.exit_code, 128 + 9);
    capture_dispose(&cap);
}

static void
test_executor_sandbox__pid_namespace(void **state)
{
    const char *args[] = {"ps", "-o", "pid,comm", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    spec_init(&spec, &cap, args);
    must(kiln_exec_run(&res, &spec, &e), e);
    /* pid 1 is the sandbox's init, the step is its child; nothing of the host is visible */
    assert_string_equal(kiln_buf_cstr(&cap.out), "PID   COMMAND\n    1 kiln-init\n    2 ps\n");
    capture_dispose(&cap);
}

static void
test_executor_sandbox__hostname(void **state)
{
    const char *args[] = {"/bin/hostname", NULL};
    cleanup_free char *out = sh("hostname; cat /etc/hostname 2>/dev/null; grep -c "
                                "buildkitsandbox /etc/hosts");
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    assert_string_equal(out, "buildkitsandbox\n1\n");
    spec_init(&spec, &cap, args);
    spec.hostname = "custom-host";
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_string_equal(kiln_buf_cstr(&cap.out), "custom-host\n");
    capture_dispose(&cap);
}

static void
test_executor_sandbox__capabilities_and_seccomp(void **state)
{
    cleanup_free char *out = sh("grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|"
                                "Seccomp):' /proc/self/status");
    cleanup_free char *want = xasprintf("CapInh:\t0000000000000000\nCapPrm:\t%016llx\n"
                                        "CapEff:\t%016llx\nCapBnd:\t%016llx\n"
                                        "CapAmb:\t0000000000000000\nNoNewPrivs:\t0\n"
                                        "Seccomp:\t2\n",
                                        (unsigned long long)kiln_exec_default_caps(),
                                        (unsigned long long)kiln_exec_default_caps(),
                                        (unsigned long long)kiln_exec_default_caps());

    (void)state;
    assert_int_equal(kiln_exec_default_caps(), 0xa80425fbULL);
    assert_string_equal(out, want);
}

static void
test_executor_sandbox__denied_syscalls(void **state)
{
    cleanup_free char *out = sh("try-syscall mount unshare keyctl kexec_load open_by_handle_at "
                                "clone_newns clone3 socket_alg chroot setns socket_inet getpid");

    (void)state;
    assert_string_equal(out, "mount=EPERM\nunshare=EPERM\nkeyctl=EPERM\nkexec_load=EPERM\n"
                             "open_by_handle_at=EPERM\nclone_newns=EPERM\nclone3=ENOSYS\n"
                             "socket_alg=EPERM\nchroot=ENOENT\nsetns=EPERM\nsocket_inet=0\n"
                             "getpid=0\n");
}

static void
test_executor_sandbox__masked_and_readonly_paths(void **state)
{
    static const char *const files[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list",
                                        "/proc/sched_debug"};
    cleanup_free char *out =
            sh("exec 2>&1; for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do "
               "[ -e $p ] && wc -c < $p; done; (ls -A /proc/acpi; ls -A /sys/firmware) | wc -l; "
               "echo x 2>/dev/null > /proc/sys/kernel/hostname || echo proc-sys-ro; "
               "touch /sys/x 2>/dev/null || echo sys-ro; "
               "echo x 2>/dev/null > /etc/hosts || echo hosts-ro; ls /dev | sort | tr '\\n' ' '");
    kiln_buf want = KILN_BUF_INIT;

    (void)state;
    /* this kernel may lack some of Docker's masked paths: those that exist read as empty */
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (access(files[i], F_OK) == 0)
            kiln_buf_puts(&want, "0\n", NULL);
    kiln_buf_puts(&want,
                  "0\nproc-sys-ro\nsys-ro\nhosts-ro\n"
                  "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero ",
                  NULL);
    assert_true(want.len > 70); /* at least one masked file exists on any kernel we run on */
    assert_string_equal(out, kiln_buf_cstr(&want));
    kiln_buf_dispose(&want);
}

static void
test_executor_sandbox__network_none_has_only_lo(void **state)
{
    cleanup_free char *out = sh("ls /sys/class/net; cat /sys/class/net/lo/flags");
    cleanup_free char *resolv = sh("grep -c '^nameserver 127\\.' /etc/resolv.conf || true");

    (void)state;
    /* lo is up: IFF_UP (0x1) and IFF_LOOPBACK (0x8) at least */
    assert_true(kiln_str_has_prefix(out, "lo\n0x"));
    assert_true(strtol(out + 3, NULL, 16) & 0x1);
    assert_string_equal(resolv, "0\n");
}

static void
test_executor_sandbox__network_host(void **state)
{
    const char *args[] = {"/bin/sh", "-c", "ls /sys/class/net | wc -l", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;
    cleanup_dir DIR *d = opendir("/sys/class/net");
    int host_ifs = 0;

    (void)state;
    while (d && readdir(d))
        host_ifs++;
    spec_init(&spec, &cap, args);
    spec.network = KILN_EXEC_NET_HOST;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_int_equal(strtol(kiln_buf_cstr(&cap.out), NULL, 10), host_ifs - 2);
    capture_dispose(&cap);
}

static void
test_executor_sandbox__user(void **state)
{
    const char *args[] = {"/bin/sh", "-c", "id; grep CapEff /proc/self/status; echo $HOME", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    spec_init(&spec, &cap, args);
    spec.user = "nobody";
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_string_equal(kiln_buf_cstr(&cap.out),
                        "uid=65534(nobody) gid=65534(nogroup) groups=10(wheel),65534(nogroup)\n"
                        "CapEff:\t0000000000000000\n/nonexistent\n");
    /* the step switched users while sharing our memory: we stay dumpable (core dumps, and
     * newuidmap's ownership check of a rootless sandbox) */
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
    capture_dispose(&cap);

    spec_init(&spec, &cap, args);
    spec.user = "no-such-user";
    assert_int_equal(kiln_exec_run(&res, &spec, &e), KILN_EINVAL);
    assert_string_equal(e->msg, "unable to find user no-such-user");
    kiln_error_free(&e);
    capture_dispose(&cap);
}

static void
test_executor_sandbox__env_and_cwd(void **state)
{
    const char *args[] = {"sh", "-c", "echo $PATH; echo $FOO; pwd", NULL};
    const char *env[] = {"FOO=bar", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;
    cleanup_free char *made = kiln_path_join(rootfs, "work/dir");

    (void)state;
    spec_init(&spec, &cap, args);
    spec.env = env;
    spec.cwd = "/work/dir";
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_string_equal(kiln_buf_cstr(&cap.out),
                        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nbar\n"
                        "/work/dir\n");
    assert_true(kiln_fs_is_dir(made));
    capture_dispose(&cap);
}

static void
test_executor_sandbox__setup_error_names_step(void **state)
{
    const char *args[] = {"/no/such/binary", NULL};
    const char *args2[] = {"/bin/true", NULL};
    kiln_exec_mount m = {.type = KILN_EXEC_MOUNT_BIND, .source = "/no/such/dir", .dest = "/mnt"};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    spec_init(&spec, &cap, args);
    assert_int_equal(kiln_exec_run(&res, &spec, &e), KILN_ESYS);
    assert_string_equal(e->msg, "exec /no/such/binary: No such file or directory");
    assert_int_equal(e->sys_errno, ENOENT);
    kiln_error_free(&e);
    capture_dispose(&cap);

    spec_init(&spec, &cap, args2);
    spec.mounts = &m;
    spec.n_mounts = 1;
    assert_int_equal(kiln_exec_run(&res, &spec, &e), KILN_ESYS);
    assert_string_equal(e->msg, "mount /mnt: source /no/such/dir: No such file or directory");
    kiln_error_free(&e);
    capture_dispose(&cap);
}

/* ---------------------------------------------------------------------------------------------
 * Mounts and escapes
 */

static void
test_executor_sandbox__mounts(void **state)
{
    const char *args[] = {"/bin/sh", "-c",
                          "cat /data/hello; echo x 2>/dev/null >/data/new || echo bind-ro; "
                          "echo y > /rw/new && echo rw-ok; cat /sub/inner; "
                          "df -k /scratch | tail -1 | awk '{print $2}'; "
                          "ls -ln /run/secrets/token | awk '{print $1, $3, $4}'; "
                          "cat /run/secrets/token",
                          NULL};
    cleanup_free char *src = kiln_path_join(tmp_root, "src");
    cleanup_free char *rw = kiln_path_join(tmp_root, "rwsrc");
    cleanup_free char *p = NULL;
    kiln_exec_mount m[5] = {
            {.type = KILN_EXEC_MOUNT_BIND, .source = src, .dest = "/data", .readonly = true},
            {.type = KILN_EXEC_MOUNT_BIND, .source = rw, .dest = "/rw"},
            {.type = KILN_EXEC_MOUNT_BIND, .source = src, .subpath = "sub", .dest = "/sub"},
            {.type = KILN_EXEC_MOUNT_TMPFS, .dest = "/scratch", .tmpfs_size = 1 << 20},
            {.type = KILN_EXEC_MOUNT_SECRET,
             .dest = "/run/secrets/token",
             .data = "s3cret",
             .data_len = 6,
             .mode = 0440,
             .uid = 65534,
             .gid = 10},
    };
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    p = kiln_path_join(src, "hello");
    write_text(p, "hello\n");
    free(p);
    p = kiln_path_join(src, "sub/inner");
    write_text(p, "inner\n");
    must(kiln_fs_mkdir_p(rw, 0755, &e), e);
    spec_init(&spec, &cap, args);
    spec.mounts = m;
    spec.n_mounts = 5;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_string_equal(kiln_buf_cstr(&cap.err), "");
    assert_string_equal(kiln_buf_cstr(&cap.out),
                        "hello\nbind-ro\nrw-ok\ninner\n1024\n-r--r----- 65534 10\ns3cret");
    free(p);
    p = kiln_path_join(rw, "new");
    assert_true(kiln_fs_exists(p));
    free(p);
    /* the secret never reaches the rootfs: only an empty mountpoint stub is there */
    p = kiln_path_join(rootfs, "run/secrets/token");
    assert_true(kiln_fs_exists(p));
    assert_false(file_contains(p, "s3cret"));
    capture_dispose(&cap);
}

static void
test_executor_sandbox__escapes_are_contained(void **state)
{
    const char *args[] = {"/bin/sh", "-c",
                          "echo a > /dotdot/f && echo b > /evil/sub/f && "
                          "cat /run/leak/secret && echo c > /evilfile 2>/dev/null; echo done",
                          NULL};
    cleanup_free char *evil = kiln_path_join(rootfs, "evil");
    cleanup_free char *leak = kiln_path_join(rootfs, "run/leak");
    cleanup_free char *evilfile = kiln_path_join(rootfs, "evilfile");
    cleanup_free char *hostfile = kiln_path_join(outside, "victim");
    cleanup_free char *dotdot = xasprintf("/../../../../..%s/deeper", outside);
    cleanup_free char *run = kiln_path_join(rootfs, "run");
    kiln_exec_mount m[4] = {
            {.type = KILN_EXEC_MOUNT_TMPFS, .dest = "/../../dotdot"},
            {.type = KILN_EXEC_MOUNT_TMPFS, .dest = "/evil/sub"},
            {.type = KILN_EXEC_MOUNT_SECRET,
             .dest = "/run/leak/secret",
             .data = "top",
             .data_len = 3},
            {.type = KILN_EXEC_MOUNT_TMPFS, .dest = dotdot},
    };
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    /* symlinks in the rootfs pointing at host paths, used as mount destinations */
    must(kiln_fs_mkdir_p(run, 0755, &e), e);
    assert_int_equal(symlink(outside, evil), 0);
    assert_int_equal(symlink(outside, leak), 0);
    write_text(hostfile, "victim\n");
    assert_int_equal(symlink(hostfile, evilfile), 0);
    spec_init(&spec, &cap, args);
    spec.mounts = m;
    spec.n_mounts = 4;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_string_equal(kiln_buf_cstr(&cap.err), "");
    assert_string_equal(kiln_buf_cstr(&cap.out), "topdone\n");
    assert_int_equal(res.exit_code, 0);
    /* the host side is untouched: only the victim file, with its content */
    assert_true(file_contains(hostfile, "victim\n"));
    assert_false(file_contains(hostfile, "c\n"));
    unlink(hostfile);
    assert_true(dir_is_empty(outside));
    capture_dispose(&cap);
    unlink(evil);
    unlink(leak);
    unlink(evilfile);
}

static void
test_executor_sandbox__overlay_rootfs(void **state)
{
    const char *args[] = {"/bin/sh", "-c",
                          "echo new > /created; rm /etc/group; cat /sec/s; ls /mnt/t", NULL};
    kiln_exec_mount m[2] = {
            {.type = KILN_EXEC_MOUNT_SECRET, .dest = "/sec/s", .data = "S", .data_len = 1},
            {.type = KILN_EXEC_MOUNT_TMPFS, .dest = "/mnt/t/u"},
    };
    cleanup_free char *upper = kiln_path_join(tmp_root, "ov/upper");
    cleanup_free char *work = kiln_path_join(tmp_root, "ov/work");
    cleanup_free char *p = NULL;
    const char *lowers[] = {rootfs};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    must(kiln_fs_mkdir_p(upper, 0755, &e), e);
    must(kiln_fs_mkdir_p(work, 0755, &e), e);
    spec_init(&spec, &cap, args);
    spec.rootfs = NULL;
    spec.lowers = lowers;
    spec.n_lowers = 1;
    spec.upper = upper;
    spec.work = work;
    spec.mounts = m;
    spec.n_mounts = 2;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(kiln_buf_cstr(&cap.out), "Su\n");
    /* the upper dir holds the step's changes and nothing else: mount stubs were removed */
    p = kiln_path_join(upper, "sec");
    assert_false(kiln_fs_exists(p));
    free(p);
    p = kiln_path_join(upper, "mnt");
    assert_false(kiln_fs_exists(p));
    free(p);
    p = kiln_path_join(upper, "created");
    assert_true(file_contains(p, "new"));
    free(p);
    p = kiln_path_join(rootfs, "created");
    assert_false(kiln_fs_exists(p));
    free(p);
    p = kiln_path_join(rootfs, "etc/group");
    assert_true(kiln_fs_exists(p)); /* deleted in the upper dir only (a whiteout) */
    capture_dispose(&cap);
}

static void
test_executor_sandbox__cache_mount_persists(void **state)
{
    const char *args[] = {"/bin/sh", "-c", "cat /cache/n 2>/dev/null; echo run >> /cache/n", NULL};
    cleanup_free char *cache = kiln_path_join(tmp_root, "cache1");
    kiln_exec_mount m = {.type = KILN_EXEC_MOUNT_CACHE,
                         .source = cache,
                         .dest = "/cache",
                         .sharing = KILN_EXEC_CACHE_LOCKED};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    for (int i = 0; i < 2; i++) {
        spec_init(&spec, &cap, args);
        spec.mounts = &m;
        spec.n_mounts = 1;
        must(kiln_exec_run(&res, &spec, &e), e);
        assert_string_equal(kiln_buf_cstr(&cap.out), i ? "run\n" : "");
        capture_dispose(&cap);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Output volume, limits, cancellation and cleanup
 */

static long
max_rss_kb(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void
test_executor_sandbox__stream_100mb_bounded_memory(void **state)
{
    const char *args[] = {"/bin/dd", "if=/dev/zero", "bs=1048576", "count=100", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;
    long before;

    (void)state;
    spec_init(&spec, &cap, args);
    cap.keep = false;
    before = max_rss_kb();
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_int_equal(res.exit_code, 0);
    /* stdout is exactly 100 MiB; dd's statistics add a little stderr */
    assert_true(cap.total >= 100ULL * 1048576 && cap.total < 100ULL * 1048576 + 1024);
    /* and our memory did not follow it */
    assert_true(max_rss_kb() - before < 16 * 1024);
}

static bool
kiln_cgroups_left(void)
{
    static const char *const roots[] = {"/sys/fs/cgroup/kiln", "/sys/fs/cgroup/pids/kiln",
                                        "/sys/fs/cgroup/memory/kiln", "/sys/fs/cgroup/cpu/kiln"};
    char prefix[64];

    snprintf(prefix, sizeof(prefix), "run-%d-", (int)getpid());
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        cleanup_dir DIR *d = opendir(roots[i]);
        struct dirent *de;
        while (d && (de = readdir(d)))
            if (kiln_str_has_prefix(de->d_name, prefix))
                return true;
    }
    return false;
}

static void
test_executor_sandbox__fork_bomb_under_pids_limit(void **state)
{
    const char *args[] = {"/bin/sh", "-c", "f() { f | f; }; f", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;
    int64_t t0 = now_ms();
    int ret;

    (void)state;
    spec_init(&spec, &cap, args);
    cap.keep = false;
    spec.pids_max = 64;
    spec.timeout_ms = 3000;
    ret = kiln_exec_run(&res, &spec, &e);
    /* the step fails (killed at the deadline, or unwinding with fork errors), the host lives */
    if (ret == 0)
        assert_int_not_equal(res.exit_code, 0);
    else
        assert_int_equal(ret, KILN_ETIMEOUT);
    kiln_error_free(&e);
    assert_true(now_ms() - t0 < 3000 + 1500);
    assert_false(kiln_cgroups_left());
    assert_int_equal(count_host_procs("f() { f | f; }"), 0);
}

static void
test_executor_sandbox__memory_limit(void **state)
{
    /* dd allocates and fills a 96 MiB block: far over a 32 MiB limit */
    const char *args[] = {"/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1", NULL};
    const char *small[] = {"/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=1", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;
    char *text;

    (void)state;
    spec_init(&spec, &cap, args);
    spec.memory_max = 32 << 20;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_int_equal(res.signal, SIGKILL); /* the OOM killer, inside the step's cgroup only */
    assert_true(res.oom_killed);
    assert_true(res.memory_limit == 32 << 20);
    text = kiln_exec_result_describe(&res);
    assert_string_equal(text, "process was killed: out of memory (memory limit 32 MiB)");
    free(text);
    assert_false(kiln_cgroups_left());
    capture_dispose(&cap);
    spec_init(&spec, &cap, small);
    spec.memory_max = 32 << 20;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_int_equal(res.exit_code, 0);
    assert_false(res.oom_killed);
    capture_dispose(&cap);
}

/* A hog that is a child of the step: the shell survives it and says what it saw; the result
 * still records the OOM kill. And a SIGKILL that is not the OOM killer's is not reported as one. */
static void
test_executor_sandbox__oom_of_a_child(void **state)
{
    const char *hog[] = {"/bin/sh", "-c",
                         "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived", NULL};
    const char *child[] = {"/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=96M count=1; echo $?",
                           NULL};
    const char *self_kill[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;
    char *text;

    (void)state;
    spec_init(&spec, &cap, child);
    spec.memory_max = 32 << 20;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(kiln_buf_cstr(&cap.out), "137\n");
    assert_true(res.oom_killed);
    text = kiln_exec_result_describe(&res);
    assert_string_equal(text,
                        "exit code: 0 (a process was killed: out of memory, memory limit 32 MiB)");
    free(text);
    capture_dispose(&cap);

    /* a shell variable growing past the limit: the shell itself is the step and is killed */
    spec_init(&spec, &cap, hog);
    spec.memory_max = 48 << 20;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_true(res.oom_killed);
    assert_string_equal(kiln_buf_cstr(&cap.out), "");
    capture_dispose(&cap);

    spec_init(&spec, &cap, self_kill);
    spec.memory_max = 32 << 20;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_int_equal(res.signal, SIGKILL);
    assert_false(res.oom_killed);
    text = kiln_exec_result_describe(&res);
    assert_string_equal(text, "process was killed: signal 9 (Killed)");
    free(text);
    capture_dispose(&cap);
}

static void
test_executor_sandbox__extra_hosts(void **state)
{
    const char *args[] = {"/bin/sh", "-c",
                          "cat /etc/hosts; ping -c1 -W1 registry.local 2>&1 | head -1", NULL};
    const kiln_exec_host hosts[] = {{"registry.local", "10.11.12.13"}, {"v6.local", "fd00::1"}};
    const kiln_exec_host bad[] = {{"x", "not-an-ip"}};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    spec_init(&spec, &cap, args);
    spec.extra_hosts = hosts;
    spec.n_extra_hosts = 2;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_true(kiln_str_has_prefix(kiln_buf_cstr(&cap.out),
                                    "127.0.0.1\tlocalhost\n"
                                    "::1\tlocalhost ip6-localhost ip6-loopback\n"
                                    "127.0.0.1\tbuildkitsandbox\n"
                                    "10.11.12.13\tregistry.local\nfd00::1\tv6.local\n"
                                    "PING registry.local (10.11.12.13)"));
    capture_dispose(&cap);

    spec_init(&spec, &cap, args);
    spec.extra_hosts = bad;
    spec.n_extra_hosts = 1;
    assert_int_equal(kiln_exec_run(&res, &spec, &e), KILN_EINVAL);
    assert_string_equal(e->msg, "extra host x: bad IP address `not-an-ip`");
    kiln_error_free(&e);
    assert_true(state_dir_clean());
    capture_dispose(&cap);
}

/* The cgroup v2 code path on a cgroup2 mount of our own. On a hybrid host (memory and pids bound
 * to v1 hierarchies) the unified hierarchy has no controller to limit with: creation, joining,
 * cgroup.kill and removal are still checked for real, and a requested limit must be refused
 * with KILN_EUNSUPPORTED instead of being silently ignored. On a v2 host the limits run. */
static bool
cg2_has(const char *root, const char *controller)
{
    cleanup_free char *path = kiln_path_join(root, "cgroup.controllers");
    cleanup_file FILE *f = fopen(path, "re");
    char word[64];

    while (f && fscanf(f, "%63s", word) == 1)
        if (strcmp(word, controller) == 0)
            return true;
    return false;
}

/* Whether `dir` has a subdirectory (a cgroup directory always holds its interface files). */
static bool
has_subdir(const char *dir)
{
    cleanup_dir DIR *d = opendir(dir);
    struct dirent *de;

    while (d && (de = readdir(d)))
        if (de->d_type == DT_DIR && strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return true;
    return false;
}

static void
test_executor_sandbox__cgroup_v2(void **state)
{
    const char *bomb[] = {"/bin/sh", "-c", "for i in $(seq 40); do sleep 5 & done; wait", NULL};
    const char *hog[] = {"/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1", NULL};
    cleanup_free char *root = kiln_path_join(tmp_root, "cg2");
    cleanup_free char *name = xasprintf("v2-test-%d", (int)getpid());
    cleanup_free char *procs = NULL;
    cleanup_free char *parent = NULL;
    cleanup_free char *pidtext = NULL;
    kiln_exec_spec spec;
    kiln_exec_result res;
    kiln_exec_cgroup cg;
    capture cap;
    kiln_error *e = NULL;
    int sync[2], status, ret;
    pid_t pid;
    char c;

    (void)state;
    must(kiln_fs_mkdir_p(root, 0755, &e), e);
    if (mount("none", root, "cgroup2", 0, NULL) < 0)
        skip(); /* no cgroup2 in this kernel */
    kiln_exec__cgroup_root(root);

    /* create, join, kill with cgroup.kill, remove */
    memset(&spec, 0, sizeof(spec));
    must(kiln_exec_cgroup_create(&cg, name, &spec, &e), e);
    assert_true(cg.v2);
    assert_int_equal(pipe(sync), 0);
    pid = fork();
    if (pid == 0) {
        if (kiln_exec_cgroup_enter(&cg, 0) < 0 || write(sync[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    assert_int_equal(read(sync[0], &c, 1), 1);
    procs = kiln_path_join(cg.dirs[0], "cgroup.procs");
    pidtext = xasprintf("%d\n", (int)pid);
    assert_true(file_contains(procs, pidtext));
    parent = kiln_path_dir(cg.dirs[0]);
    must(kiln_exec_cgroup_destroy(&cg, &e), e);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_false(kiln_fs_exists(procs));
    close(sync[0]);
    close(sync[1]);

    /* limits through kiln_exec_run */
    spec_init(&spec, &cap, bomb);
    spec.pids_max = 10;
    ret = kiln_exec_run(&res, &spec, &e);
    if (cg2_has(root, "pids")) {
        must(ret, e);
        assert_true(strstr(kiln_buf_cstr(&cap.err), "fork") != NULL);
    } else {
        assert_int_equal(ret, KILN_EUNSUPPORTED);
        assert_true(kiln_str_has_prefix(e->msg, "cgroup v2: the pids controller is not available"));
        kiln_error_free(&e);
    }
    capture_dispose(&cap);
    spec_init(&spec, &cap, hog);
    spec.memory_max = 32 << 20;
    ret = kiln_exec_run(&res, &spec, &e);
    if (cg2_has(root, "memory")) {
        must(ret, e);
        assert_true(res.oom_killed);
    } else {
        assert_int_equal(ret, KILN_EUNSUPPORTED);
        kiln_error_free(&e);
    }
    capture_dispose(&cap);
    /* nothing left below kiln/ */
    assert_false(has_subdir(parent));

    /* the sweep removes the cgroup of a run whose process is gone (what a kiln killed during a
     * step leaves), with what is still in it, and keeps a live process's */
    {
        cleanup_free char *live = xasprintf("%s/run-%d-1", parent, (int)getpid());
        cleanup_free char *dead = NULL;
        cleanup_free char *dead_procs = NULL;
        pid_t gone = fork(), orphan;
        if (gone == 0)
            _exit(0);
        assert_int_equal(waitpid(gone, &status, 0), gone);
        dead = xasprintf("%s/run-%d-0", parent, (int)gone);
        assert_int_equal(mkdir(live, 0755), 0);
        assert_int_equal(mkdir(dead, 0755), 0);
        dead_procs = kiln_path_join(dead, "cgroup.procs");
        assert_int_equal(pipe(sync), 0);
        orphan = fork();
        if (orphan == 0) { /* a process the dead run left in its cgroup */
            cleanup_free char *me = xasprintf("%d", (int)getpid());
            cleanup_close int fd = open(dead_procs, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write(fd, me, strlen(me)) < 0 || write(sync[1], "x", 1) != 1)
                _exit(1);
            for (;;)
                pause();
        }
        assert_int_equal(read(sync[0], &c, 1), 1);
        assert_int_equal(kiln_exec_sweep_cgroups(&e), 1);
        assert_false(kiln_fs_exists(dead));
        assert_true(kiln_fs_exists(live));
        assert_int_equal(waitpid(orphan, &status, 0), orphan);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        assert_int_equal(kiln_exec_sweep_cgroups(&e), 0); /* idempotent */
        assert_int_equal(rmdir(live), 0);
        close(sync[0]);
        close(sync[1]);
    }
    rmdir(parent);
    kiln_exec__cgroup_root(NULL);
    assert_int_equal(umount(root), 0);
}

/* `network none` namespaces are pooled (exec_netns.c): a clean one is reused by the next step;
 * one with a process or a socket left (here a TCP TIME_WAIT), or used by an insecure step, is
 * not. Every step still sees only `lo`, up. */
static void
test_executor_sandbox__netns_reuse(void **state)
{
    const char *ns[] = {"/bin/readlink", "/proc/self/ns/net", NULL};
    static const char tw[] = "readlink /proc/self/ns/net; nc -l -p 1234 >/dev/null & sleep 0.2; "
                             "echo hi | nc 127.0.0.1 1234; wait";
    cleanup_free char *a = sh("readlink /proc/self/ns/net");
    cleanup_free char *b = sh("readlink /proc/self/ns/net");
    cleanup_free char *c = sh("readlink /proc/self/ns/net; sleep 100 &");
    cleanup_free char *d = sh(tw);
    cleanup_free char *e = sh("readlink /proc/self/ns/net; ls /sys/class/net; "
                              "cat /sys/class/net/lo/flags; grep -c ' tw 0 ' /proc/net/sockstat");
    cleanup_free char *f = NULL;
    cleanup_free char *g = NULL;
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *err = NULL;

    (void)state;
    assert_string_equal(a, b); /* reused */
    assert_string_equal(b, c); /* taken from the pool, and not given back: `sleep` was alive */
    assert_string_not_equal(c, d);
    assert_true(kiln_str_has_prefix(d, "net:["));
    /* d left a TIME_WAIT socket: e gets a namespace other than d's, with nothing in it */
    assert_false(kiln_str_has_prefix(e, d));
    assert_true(strstr(e, "]\nlo\n0x9\n1\n") != NULL); /* lo: IFF_UP | IFF_LOOPBACK */
    spec_init(&spec, &cap, ns);
    spec.security = KILN_EXEC_SECURITY_INSECURE;
    spec.allow_insecure = true;
    must(kiln_exec_run(&res, &spec, &err), err);
    f = kiln_buf_detach(&cap.out);
    capture_dispose(&cap);
    g = sh("readlink /proc/self/ns/net");
    assert_string_not_equal(f, g); /* an insecure step's namespace is never pooled */
}

struct canceller {
    kiln_exec_cancel *c;
    int delay_ms;
    int64_t fired_at;
};

static void *
cancel_later(void *arg)
{
    struct canceller *cl = arg;
    struct timespec ts = {0, (long)cl->delay_ms * 1000000L};

    nanosleep(&ts, NULL);
    cl->fired_at = now_ms();
    kiln_exec_cancel_trigger(cl->c);
    return NULL;
}

static void
test_executor_sandbox__cancel_sleep_leaves_nothing(void **state)
{
    const char *args[] = {"/bin/sleep", "1000", NULL};
    struct canceller cl = {NULL, 300, 0};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;
    pthread_t th;

    (void)state;
    must(kiln_exec_cancel_new(&cl.c, &e), e);
    spec_init(&spec, &cap, args);
    spec.cancel = cl.c;
    spec.pids_max = 100; /* forces a cgroup, which must be removed too */
    assert_int_equal(pthread_create(&th, NULL, cancel_later, &cl), 0);
    assert_int_equal(kiln_exec_run(&res, &spec, &e), KILN_ECANCELED);
    assert_true(now_ms() - cl.fired_at < 1000);
    pthread_join(th, NULL);
    assert_true(res.canceled);
    kiln_error_free(&e);
    assert_int_equal(count_host_procs("sleep 1000"), 0);
    assert_false(file_contains("/proc/self/mountinfo", state_dir));
    assert_false(kiln_cgroups_left());
    assert_true(state_dir_clean());
    kiln_exec_cancel_free(cl.c);
    capture_dispose(&cap);
}

static void
test_executor_sandbox__timeout(void **state)
{
    const char *args[] = {"/bin/sh", "-c", "sleep 1000 & sleep 1000", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;
    int64_t t0 = now_ms();

    (void)state;
    spec_init(&spec, &cap, args);
    spec.timeout_ms = 200;
    assert_int_equal(kiln_exec_run(&res, &spec, &e), KILN_ETIMEOUT);
    assert_true(now_ms() - t0 < 1200);
    assert_true(res.timed_out);
    kiln_error_free(&e);
    assert_int_equal(count_host_procs("sleep 1000"), 0);
    capture_dispose(&cap);
}

static void
test_executor_sandbox__insecure_needs_permission(void **state)
{
    const char *args[] = {"/bin/sh", "-c",
                          "grep -E '^(CapEff|Seccomp):' /proc/self/status; ls /dev", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    spec_init(&spec, &cap, args);
    spec.security = KILN_EXEC_SECURITY_INSECURE;
    assert_int_equal(kiln_exec_run(&res, &spec, &e), KILN_EINVAL);
    kiln_error_free(&e);
    spec.allow_insecure = true;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_true(strstr(kiln_buf_cstr(&cap.out), "Seccomp:\t0\n") != NULL);
    assert_false(strstr(kiln_buf_cstr(&cap.out), "CapEff:\t00000000a80425fb") != NULL);
    /* the insecure device nodes the host has are there */
    assert_int_equal(access("/dev/loop-control", F_OK) == 0,
                     strstr(kiln_buf_cstr(&cap.out), "loop-control") != NULL);
    capture_dispose(&cap);
}

static void
test_executor_sandbox__default_mounts(void **state)
{
    cleanup_free char *out =
            sh("grep -E ' /(proc|dev|dev/pts|dev/shm|dev/mqueue|sys|sys/fs/cgroup|etc/hosts|"
               "etc/resolv.conf) ' /proc/mounts | cut -d' ' -f2,3 | sort");

    (void)state;
    assert_string_equal(out, "/dev tmpfs\n/dev/mqueue mqueue\n/dev/pts devpts\n/dev/shm tmpfs\n"
                             "/etc/hosts tmpfs\n/etc/resolv.conf tmpfs\n/proc proc\n/sys sysfs\n"
                             "/sys/fs/cgroup cgroup2\n");
}

static void
test_executor_sandbox__ssh_socket(void **state)
{
    const char *args[] = {"/bin/sh", "-c", "[ -S /run/buildkit/ssh_agent.0 ] && echo socket", NULL};
    cleanup_free char *sock = kiln_path_join(tmp_root, "agent.sock");
    /* a bound unix socket inode, as an ssh agent's */
    cleanup_free char *cmd = xasprintf("/usr/bin/python3 -c 'import socket; "
                                       "socket.socket(socket.AF_UNIX).bind(\"%s\")'",
                                       sock);
    kiln_exec_mount m = {
            .type = KILN_EXEC_MOUNT_SSH, .source = sock, .dest = "/run/buildkit/ssh_agent.0"};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;

    (void)state;
    assert_int_equal(system(cmd), 0);
    spec_init(&spec, &cap, args);
    spec.mounts = &m;
    spec.n_mounts = 1;
    must(kiln_exec_run(&res, &spec, &e), e);
    assert_string_equal(kiln_buf_cstr(&cap.out), "socket\n");
    capture_dispose(&cap);
    unlink(sock);
}

struct concurrent_run {
    kiln_exec_mount mount;
    const char *script;
    capture cap;
    int ret;
};

static void *
run_thread(void *arg)
{
    struct concurrent_run *r = arg;
    const char *args[] = {"/bin/sh", "-c", r->script, NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    kiln_error *e = NULL;

    spec_init(&spec, &r->cap, args);
    spec.mounts = &r->mount;
    spec.n_mounts = 1;
    r->ret = kiln_exec_run(&res, &spec, &e);
    if (r->ret < 0)
        fprintf(stderr, "run_thread: %s\n", e->msg);
    if (r->ret == 0 && res.exit_code != 0)
        r->ret = -100 - res.exit_code;
    kiln_error_free(&e);
    return NULL;
}

/* Two concurrent steps on one cache: `locked` serialises them, `private` separates them. */
static void
run_pair(kiln_exec_cache_sharing sharing, const char *cache, struct concurrent_run r[2])
{
    pthread_t th[2];

    for (int i = 0; i < 2; i++) {
        r[i].mount = (kiln_exec_mount){.type = KILN_EXEC_MOUNT_CACHE,
                                       .source = cache,
                                       .dest = "/cache",
                                       .sharing = sharing};
        r[i].script = "echo start >> /cache/log; sleep 0.3; echo end >> /cache/log; "
                      "cat /cache/log";
        assert_int_equal(pthread_create(&th[i], NULL, run_thread, &r[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        if (r[i].ret != 0)
            fail_msg("step %d: %d: %s", i, r[i].ret, kiln_buf_cstr(&r[i].cap.err));
    }
}

/* A short step must not wait for a long one started concurrently by another thread (the long
 * sandbox must not inherit the short one's pipes). */
static void
test_executor_sandbox__concurrent_runs_independent(void **state)
{
    struct concurrent_run slow;
    const char *args[] = {"/bin/true", NULL};
    kiln_exec_spec spec;
    kiln_exec_result res;
    capture cap;
    kiln_error *e = NULL;
    pthread_t th;
    int64_t t0;

    (void)state;
    memset(&slow, 0, sizeof(slow));
    slow.mount = (kiln_exec_mount){.type = KILN_EXEC_MOUNT_TMPFS, .dest = "/scratch"};
    slow.script = "sleep 3";
    assert_int_equal(pthread_create(&th, NULL, run_thread, &slow), 0);
    for (int i = 0; i < 5; i++) {
        spec_init(&spec, &cap, args);
        t0 = now_ms();
        must(kiln_exec_run(&res, &spec, &e), e);
        assert_true(now_ms() - t0 < 1500);
        capture_dispose(&cap);
    }
    pthread_join(th, NULL);
    assert_int_equal(slow.ret, 0);
    capture_dispose(&slow.cap);
}

static void
test_executor_sandbox__cache_sharing(void **state)
{
    cleanup_free char *locked = kiln_path_join(tmp_root, "cache-locked");
    cleanup_free char *priv = kiln_path_join(tmp_root, "cache-private");
    cleanup_free char *log = NULL;
    struct concurrent_run r[2];

    (void)state;
    memset(r, 0, sizeof(r));
    run_pair(KILN_EXEC_CACHE_LOCKED, locked, r);
    log = kiln_path_join(locked, "0/log");
    assert_true(file_contains(log, "start\nend\nstart\nend\n")); /* never interleaved */
    capture_dispose(&r[0].cap);
    capture_dispose(&r[1].cap);

    memset(r, 0, sizeof(r));
    run_pair(KILN_EXEC_CACHE_PRIVATE, priv, r);
    /* each step saw only its own instance */
    assert_string_equal(kiln_buf_cstr(&r[0].cap.out), "start\nend\n");
    assert_string_equal(kiln_buf_cstr(&r[1].cap.out), "start\nend\n");
    free(log);
    log = kiln_path_join(priv, "1/log");
    assert_true(kiln_fs_exists(log));
    capture_dispose(&r[0].cap);
    capture_dispose(&r[1].cap);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_executor_sandbox__exit_status_and_output),
            cmocka_unit_test(test_executor_sandbox__signal_reported),
            cmocka_unit_test(test_executor_sandbox__pid_namespace),
            cmocka_unit_test(test_executor_sandbox__hostname),
            cmocka_unit_test(test_executor_sandbox__capabilities_and_seccomp),
            cmocka_unit_test(test_executor_sandbox__denied_syscalls),
            cmocka_unit_test(test_executor_sandbox__masked_and_readonly_paths),
            cmocka_unit_test(test_executor_sandbox__network_none_has_only_lo),
            cmocka_unit_test(test_executor_sandbox__network_host),
            cmocka_unit_test(test_executor_sandbox__netns_reuse),
            cmocka_unit_test(test_executor_sandbox__user),
            cmocka_unit_test(test_executor_sandbox__env_and_cwd),
            cmocka_unit_test(test_executor_sandbox__setup_error_names_step),
            cmocka_unit_test(test_executor_sandbox__mounts),
            cmocka_unit_test(test_executor_sandbox__escapes_are_contained),
            cmocka_unit_test(test_executor_sandbox__overlay_rootfs),
            cmocka_unit_test(test_executor_sandbox__cache_mount_persists),
            cmocka_unit_test(test_executor_sandbox__stream_100mb_bounded_memory),
            cmocka_unit_test(test_executor_sandbox__fork_bomb_under_pids_limit),
            cmocka_unit_test(test_executor_sandbox__memory_limit),
            cmocka_unit_test(test_executor_sandbox__oom_of_a_child),
            cmocka_unit_test(test_executor_sandbox__extra_hosts),
            cmocka_unit_test(test_executor_sandbox__cgroup_v2),
            cmocka_unit_test(test_executor_sandbox__cancel_sleep_leaves_nothing),
            cmocka_unit_test(test_executor_sandbox__timeout),
            cmocka_unit_test(test_executor_sandbox__insecure_needs_permission),
            cmocka_unit_test(test_executor_sandbox__default_mounts),
            cmocka_unit_test(test_executor_sandbox__ssh_socket),
            cmocka_unit_test(test_executor_sandbox__cache_sharing),
            cmocka_unit_test(test_executor_sandbox__concurrent_runs_independent),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
