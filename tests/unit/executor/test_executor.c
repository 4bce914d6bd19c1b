/*
 * test_executor.c: unit tests of the executor's plain-data parts (no root needed): the sandbox
 * plan built from a spec, user resolution against a rootfs's /etc files, the generated
 * resolv.conf and hosts, the capability set and the seccomp profile compilation.
 */
#include <linux/filter.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/path.h"
#include "executor/exec_internal.h"

#define must(call, e)                                 \
    do {                                              \
        if ((call) < 0)                               \
            fail_msg("%s", (e) ? (e)->msg : "error"); \
    } while (0)

static const char *const true_args[] = {"/bin/true", NULL};

static const kiln_plan_mount *
find_mount(const kiln_exec_plan *plan, const char *dest, size_t *idx)
{
    for (size_t i = 0; i < plan->mounts.len; i++) {
        const kiln_plan_mount *m = plan->mounts.items[i];
        if (strcmp(m->dest, dest) == 0) {
            if (idx)
                *idx = i;
            return m;
        }
    }
    return NULL;
}

static void
test_executor_plan__defaults(void **state)
{
    kiln_exec_spec spec = KILN_EXEC_SPEC_INIT;
    kiln_exec_plan plan;
    kiln_error *e = NULL;
    const kiln_plan_mount *m;
    size_t i_proc, i_dev, i_null, i_mask;

    (void)state;
    spec.rootfs = "/snap/1/fs/";
    spec.args = true_args;
    must(kiln_exec_plan_build(&plan, &spec, NULL, NULL, false, &e), e);
    assert_string_equal(plan.rootfs_source, "/snap/1/fs");
    assert_false(plan.rootfs_overlay);
    assert_string_equal(plan.hostname, "buildkitsandbox");
    assert_int_equal(plan.unshare_flags, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                                                 CLONE_NEWCGROUP | CLONE_NEWNET);
    assert_true(plan.loopback_up);
    assert_true(plan.sandboxed);
    assert_int_equal(plan.caps, 0xa80425fbULL);
    assert_string_equal(plan.cwd, "/");
    assert_null(plan.user);
    assert_string_equal(plan.envp[0], KILN_EXEC_DEFAULT_PATH);
    assert_null(plan.envp[1]);

    m = find_mount(&plan, "/proc", &i_proc);
    assert_non_null(m);
    assert_string_equal(m->fstype, "proc");
    assert_int_equal(m->flags, MS_NOSUID | MS_NOEXEC | MS_NODEV);
    m = find_mount(&plan, "/dev", &i_dev);
    assert_string_equal(m->data, "mode=755,size=65536k");
    m = find_mount(&plan, "/dev/null", &i_null);
    assert_int_equal(m->kind, KILN_PLAN_DEVICE);
    assert_true(i_proc < i_dev && i_dev < i_null);
    assert_string_equal(find_mount(&plan, "/dev/pts", NULL)->data,
                        "newinstance,ptmxmode=0666,mode=0620,gid=5");
    assert_string_equal(find_mount(&plan, "/dev/ptmx", NULL)->source, "pts/ptmx");
    assert_true(find_mount(&plan, "/sys", NULL)->flags & MS_RDONLY);
    /* generated inside the sandbox (a read-only file on its private tmpfs), never on the host */
    m = find_mount(&plan, "/etc/resolv.conf", NULL);
    assert_int_equal(m->kind, KILN_PLAN_SECRET);
    assert_true(m->dest_is_file && m->mode == 0644 && m->uid == 0 && m->gid == 0);
    assert_string_equal(m->content, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    assert_int_equal(m->content_len, strlen(m->content));
    m = find_mount(&plan, "/etc/hosts", NULL);
    assert_int_equal(m->kind, KILN_PLAN_SECRET);
    assert_ptr_equal(m->content, plan.hosts);
    assert_true(kiln_str_has_prefix(plan.hosts, "127.0.0.1\tlocalhost\n"));
    m = find_mount(&plan, "/proc/kcore", &i_mask);
    assert_int_equal(m->kind, KILN_PLAN_MASK);
    assert_true(i_mask > i_null);
    assert_int_equal(find_mount(&plan, "/proc/sys", NULL)->kind, KILN_PLAN_READONLY);
    assert_null(find_mount(&plan, "/run", NULL)); /* BuildKit removes containerd's /run tmpfs */
    assert_null(find_mount(&plan, "/dev/fuse", NULL)); /* insecure mode only */
    kiln_exec_plan_dispose(&plan);
}

static void
test_executor_plan__user_mounts_in_order(void **state)
{
    kiln_exec_mount mounts[] = {
            {.type = KILN_EXEC_MOUNT_BIND,
             .source = "/snap/2",
             .subpath = "a/../b",
             .dest = "/src/../data",
             .readonly = true},
            {.type = KILN_EXEC_MOUNT_TMPFS, .dest = "/tmp", .tmpfs_size = 4096},
            {.type = KILN_EXEC_MOUNT_CACHE, .source = "/cache/x", .dest = "/root/.cache"},
            {.type = KILN_EXEC_MOUNT_SECRET, .dest = "/run/secrets/a", .data = "x", .data_len = 1},
            {.type = KILN_EXEC_MOUNT_SSH,
             .source = "/tmp/agent.sock",
             .dest = "/run/buildkit/ssh_agent.0"},
    };
    char *cache_dirs[] = {NULL, NULL, "/cache/x/0", NULL, NULL};
    kiln_exec_spec spec = KILN_EXEC_SPEC_INIT;
    kiln_exec_plan plan;
    kiln_error *e = NULL;
    const kiln_plan_mount *m;
    size_t i_data = 0, i_tmp = 0, i_sys = 0, i_mask = 0;

    (void)state;
    spec.rootfs = "/r";
    spec.args = true_args;
    spec.mounts = mounts;
    spec.n_mounts = 5;
    must(kiln_exec_plan_build(&plan, &spec, NULL, cache_dirs, false, &e), e);
    m = find_mount(&plan, "/data", &i_data);
    assert_non_null(m);
    assert_string_equal(m->source, "/snap/2/b"); /* subpath resolved inside the source */
    assert_true(m->readonly);
    assert_int_equal(m->flags, MS_BIND | MS_REC);
    m = find_mount(&plan, "/tmp", &i_tmp);
    assert_string_equal(m->data, "mode=1777,size=4096");
    assert_true(i_data < i_tmp);
    assert_string_equal(find_mount(&plan, "/root/.cache", NULL)->source, "/cache/x/0");
    m = find_mount(&plan, "/run/secrets/a", NULL);
    assert_int_equal(m->kind, KILN_PLAN_SECRET);
    assert_int_equal(m->mode, 0400);
    assert_int_equal(m->content_len, 1);
    assert_true(find_mount(&plan, "/run/buildkit/ssh_agent.0", NULL)->dest_is_file);
    /* the op's mounts come after the defaults and before the masks */
    find_mount(&plan, "/sys", &i_sys);
    find_mount(&plan, "/proc/keys", &i_mask);
    assert_true(i_sys < i_data && i_tmp < i_mask);
    kiln_exec_plan_dispose(&plan);
}

static void
test_executor_plan__overlay_and_options(void **state)
{
    const char *lowers[] = {"/l/top", "/l/base"};
    const char *env[] = {"PATH=/x", "A=b", NULL};
    kiln_exec_spec spec = KILN_EXEC_SPEC_INIT;
    kiln_exec_plan plan;
    kiln_error *e = NULL;

    (void)state;
    spec.lowers = lowers;
    spec.n_lowers = 2;
    spec.upper = "/u";
    spec.work = "/w";
    spec.args = true_args;
    spec.env = env;
    spec.network = KILN_EXEC_NET_HOST;
    spec.hostname = "h1";
    spec.user = "nobody";
    spec.cwd = "/a/./b/";
    must(kiln_exec_plan_build(&plan, &spec, NULL, NULL, false, &e), e);
    assert_true(plan.rootfs_overlay);
    assert_string_equal(plan.rootfs_data, "lowerdir=/l/top:/l/base,upperdir=/u,workdir=/w");
    assert_false(plan.unshare_flags & CLONE_NEWNET);
    assert_false(plan.loopback_up);
    assert_string_equal(plan.hostname, "h1");
    assert_string_equal(plan.user, "nobody");
    assert_string_equal(plan.cwd, "/a/b");
    assert_string_equal(plan.envp[0], "PATH=/x");
    assert_string_equal(plan.envp[1], "A=b");
    assert_null(plan.envp[2]);
    kiln_exec_plan_dispose(&plan);
}

static void
expect_plan_error(kiln_exec_spec *spec, const char *msg)
{
    kiln_exec_plan plan;
    kiln_error *e = NULL;

    assert_int_equal(kiln_exec_plan_build(&plan, spec, NULL, NULL, false, &e), KILN_EINVAL);
    assert_non_null(e);
    assert_string_equal(e->msg, msg);
    kiln_error_free(&e);
    kiln_exec_plan_dispose(&plan);
}

static void
test_executor_plan__bad_specs(void **state)
{
    const char *bad_env[] = {"NOEQUALS", NULL};
    const char *lowers[] = {"/a,b"};
    const char *empty_args[] = {NULL};
    kiln_exec_mount rel = {.type = KILN_EXEC_MOUNT_TMPFS, .dest = "tmp"};
    kiln_exec_mount root = {.type = KILN_EXEC_MOUNT_TMPFS, .dest = "/.."};
    kiln_exec_spec spec = KILN_EXEC_SPEC_INIT;

    (void)state;
    spec.args = true_args;
    expect_plan_error(&spec, "rootfs: no directory and no overlay lowers");
    spec.rootfs = "rel/dir";
    expect_plan_error(&spec, "rootfs `rel/dir` is not absolute");
    spec.rootfs = "/r";
    spec.args = empty_args;
    expect_plan_error(&spec, "no command to run");
    spec.args = true_args;
    spec.env = bad_env;
    expect_plan_error(&spec, "env entry `NOEQUALS` is not KEY=VALUE");
    spec.env = NULL;
    spec.security = KILN_EXEC_SECURITY_INSECURE;
    expect_plan_error(&spec, "security.insecure requested but not allowed by the caller");
    spec.security = KILN_EXEC_SECURITY_SANDBOX;
    spec.mounts = &rel;
    spec.n_mounts = 1;
    expect_plan_error(&spec, "mount 0: destination `tmp` is not absolute");
    spec.mounts = &root;
    expect_plan_error(&spec, "mount 0: cannot mount over `/`");
    spec.n_mounts = 0;
    spec.cwd = "rel";
    expect_plan_error(&spec, "working directory `rel` is not absolute");
    spec.cwd = NULL;
    spec.rootfs = NULL;
    spec.lowers = lowers;
    spec.n_lowers = 1;
    expect_plan_error(&spec, "rootfs overlay: bad lower dir `/a,b`");
}

static void
test_executor_plan__insecure(void **state)
{
    kiln_exec_spec spec = KILN_EXEC_SPEC_INIT;
    kiln_exec_plan plan;
    kiln_error *e = NULL;

    (void)state;
    spec.rootfs = "/r";
    spec.args = true_args;
    spec.security = KILN_EXEC_SECURITY_INSECURE;
    spec.allow_insecure = true;
    must(kiln_exec_plan_build(&plan, &spec, NULL, NULL, false, &e), e);
    assert_false(plan.sandboxed);
    assert_int_equal(plan.caps, ~(uint64_t)0);
    assert_null(find_mount(&plan, "/proc/kcore", NULL));
    assert_true(find_mount(&plan, "/dev/fuse", NULL)->optional);
    assert_int_equal(find_mount(&plan, "/dev/loop7", NULL)->kind, KILN_PLAN_DEVICE);
    assert_false(find_mount(&plan, "/sys", NULL)->flags & MS_RDONLY);
    kiln_exec_plan_dispose(&plan);
}

static void
test_executor_plan__rootless(void **state)
{
    kiln_exec_spec spec = KILN_EXEC_SPEC_INIT;
    kiln_exec_plan plan;
    kiln_error *e = NULL;

    (void)state;
    spec.rootfs = "/r";
    spec.args = true_args;
    must(kiln_exec_plan_build(&plan, &spec, NULL, NULL, true, &e), e);
    assert_true(plan.rootless);
    assert_true(plan.unshare_flags & CLONE_NEWUSER);
    /* BuildKit's rootless spec drops every /sys mount (and so the /sys masks) */
    assert_null(find_mount(&plan, "/sys", NULL));
    assert_null(find_mount(&plan, "/sys/fs/cgroup", NULL));
    assert_null(find_mount(&plan, "/sys/firmware", NULL));
    assert_non_null(find_mount(&plan, "/proc/kcore", NULL));
    assert_non_null(find_mount(&plan, "/dev/pts", NULL));
    kiln_exec_plan_dispose(&plan);
}

/* ---------------------------------------------------------------------------------------------
 * User resolution
 */

static char *user_root;

static int
user_setup(void **state)
{
    kiln_error *e = NULL;
    cleanup_free char *etc = NULL;
    cleanup_free char *passwd = NULL;
    cleanup_free char *group = NULL;
    static const char pw[] = "# comment\n"
                             "root:x:0:0:root:/root:/bin/sh\n"
                             "broken line\n"
                             "app:x:1000:1001:App:/home/app:/bin/sh\n"
                             "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    static const char gr[] = "root:x:0:\n"
                             "appgrp:x:1001:\n"
                             "docker:x:999:app,other\n"
                             "wheel:x:10:root,app\n"
                             "nogroup:x:65534:\n";

    (void)state;
    must(kiln_fs_mkdtemp(&user_root, "/tmp", "kiln-user-test-", &e), e);
    etc = kiln_path_join(user_root, "etc");
    must(kiln_fs_mkdir_p(etc, 0755, &e), e);
    passwd = kiln_path_join(etc, "passwd");
    group = kiln_path_join(etc, "group");
    must(kiln_fs_write_atomic(passwd, pw, strlen(pw), 0644, &e), e);
    must(kiln_fs_write_atomic(group, gr, strlen(gr), 0644, &e), e);
    return 0;
}

static int
user_teardown(void **state)
{
    (void)state;
    kiln_fs_rm_rf(user_root, NULL);
    free(user_root);
    return 0;
}

static void
check_user(const char *spec, uid_t uid, gid_t gid, const char *home, size_t n_groups,
           const gid_t *groups)
{
    kiln_exec_ident id;
    kiln_error *e = NULL;

    must(kiln_exec_resolve_user(&id, user_root, spec, &e), e);
    assert_int_equal(id.uid, uid);
    assert_int_equal(id.gid, gid);
    assert_string_equal(id.home, home);
    assert_int_equal(id.n_groups, n_groups);
    for (size_t i = 0; i < n_groups; i++)
        assert_int_equal(id.groups[i], groups[i]);
    kiln_exec_ident_dispose(&id);
}

static void
test_executor_user__forms(void **state)
{
    (void)state;
    check_user(NULL, 0, 0, "/root", 2, (gid_t[]){0, 10});
    check_user("app", 1000, 1001, "/home/app", 3, (gid_t[]){1001, 999, 10});
    check_user("1000", 1000, 1001, "/home/app", 3, (gid_t[]){1001, 999, 10});
    check_user("app:docker", 1000, 999, "/home/app", 1, (gid_t[]){999});
    check_user("1000:42", 1000, 42, "/home/app", 1, (gid_t[]){42});
    check_user("4242", 4242, 0, "/", 1, (gid_t[]){0});
    check_user("4242:4243", 4242, 4243, "/", 1, (gid_t[]){4243});
    check_user("nobody", 65534, 65534, "/nonexistent", 1, (gid_t[]){65534});
}

static void
expect_user_error(const char *spec, const char *msg)
{
    kiln_exec_ident id;
    kiln_error *e = NULL;

    assert_int_equal(kiln_exec_resolve_user(&id, user_root, spec, &e), KILN_EINVAL);
    assert_string_equal(e->msg, msg);
    kiln_error_free(&e);
}

static void
test_executor_user__errors(void **state)
{
    (void)state;
    expect_user_error("ghost", "unable to find user ghost");
    expect_user_error("app:ghosts", "unable to find group ghosts for user app");
    expect_user_error(":docker", "user `:docker` has no user part");
}

static void
test_executor_user__passwd_symlink_stays_in_root(void **state)
{
    cleanup_free char *fake = NULL;
    cleanup_free char *passwd = kiln_path_join(user_root, "etc/passwd");
    cleanup_free char *saved = kiln_path_join(user_root, "etc/passwd.real");
    cleanup_free char *host = NULL;
    kiln_error *e = NULL;
    kiln_exec_ident id;
    static const char evil[] = "evil:x:7:7::/evil:/bin/sh\n";

    (void)state;
    /* an absolute symlink is resolved inside the rootfs, never on the host */
    host = kiln_path_join(user_root, "hostfile");
    must(kiln_fs_write_atomic(host, evil, strlen(evil), 0644, &e), e);
    fake = xasprintf("%s/hostfile", user_root);
    assert_int_equal(rename(passwd, saved), 0);
    assert_int_equal(symlink(fake, passwd), 0);
    assert_int_equal(kiln_exec_resolve_user(&id, user_root, "evil", &e), KILN_EINVAL);
    kiln_error_free(&e);
    unlink(passwd);
    assert_int_equal(symlink("/hostfile", passwd), 0);
    must(kiln_exec_resolve_user(&id, user_root, "evil", &e), e);
    assert_int_equal(id.uid, 7);
    kiln_exec_ident_dispose(&id);
    unlink(passwd);
    assert_int_equal(rename(saved, passwd), 0);
}

/* ---------------------------------------------------------------------------------------------
 * Generated files, caps, seccomp
 */

static void
test_executor_etc__resolv_conf(void **state)
{
    cleanup_free char *a = kiln_exec_gen_resolv_conf("search example.com\n"
                                                     "nameserver 127.0.0.53\n"
                                                     "nameserver 10.0.0.2\n"
                                                     "nameserver ::1\n"
                                                     "options edns0\n",
                                                     false);
    cleanup_free char *b = kiln_exec_gen_resolv_conf("nameserver 127.0.0.1\n", false);
    cleanup_free char *c = kiln_exec_gen_resolv_conf("nameserver 127.0.0.1\n", true);
    cleanup_free char *d = kiln_exec_gen_resolv_conf(NULL, false);

    (void)state;
    assert_string_equal(a, "search example.com\nnameserver 10.0.0.2\noptions edns0\n");
    assert_string_equal(b, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    assert_string_equal(c, "nameserver 127.0.0.1\n");
    assert_string_equal(d, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
}

static void
test_executor_etc__hosts(void **state)
{
    cleanup_free char *h = NULL;
    kiln_error *e = NULL;

    (void)state;
    must(kiln_exec_gen_hosts(&h, "buildkitsandbox", NULL, 0, &e), e);
    assert_string_equal(h, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                           "127.0.0.1\tbuildkitsandbox\n");
}

static void
test_executor_etc__extra_hosts(void **state)
{
    const kiln_exec_host good[] = {{"registry.local", "10.0.0.5"},
                                   {"v6", "2001:DB8:0:0::1"},
                                   {"mapped", "::ffff:192.0.2.1"},
                                   {"registry.local", "10.0.0.6"}};
    const kiln_exec_host bad_ip[] = {{"a", "10.0.0.300"}};
    const kiln_exec_host bad_host[] = {{"a b", "10.0.0.1"}};
    const kiln_exec_host newline[] = {{"a\n1.2.3.4 evil", "10.0.0.1"}};
    const kiln_exec_host empty[] = {{"", "10.0.0.1"}};
    cleanup_free char *h = NULL;
    kiln_error *e = NULL;

    (void)state;
    must(kiln_exec_gen_hosts(&h, "box", good, 4, &e), e);
    /* in order, after the defaults, addresses in canonical form (Go's net.IP.String()) */
    assert_string_equal(h, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                           "127.0.0.1\tbox\n10.0.0.5\tregistry.local\n2001:db8::1\tv6\n"
                           "192.0.2.1\tmapped\n10.0.0.6\tregistry.local\n");
    assert_int_equal(kiln_exec_gen_hosts(&h, "box", bad_ip, 1, &e), KILN_EINVAL);
    assert_string_equal(e->msg, "extra host a: bad IP address `10.0.0.300`");
    kiln_error_free(&e);
    assert_int_equal(kiln_exec_gen_hosts(&h, "box", bad_host, 1, &e), KILN_EINVAL);
    assert_string_equal(e->msg, "extra host 0: bad host name `a b`");
    kiln_error_free(&e);
    assert_int_equal(kiln_exec_gen_hosts(&h, "box", newline, 1, &e), KILN_EINVAL);
    kiln_error_free(&e);
    assert_int_equal(kiln_exec_gen_hosts(&h, "box", empty, 1, &e), KILN_EINVAL);
    kiln_error_free(&e);
}

static void
test_executor_netns__sockstat_empty(void **state)
{
    static const char clean[] = "sockets: used 0\nTCP: inuse 0 orphan 3 tw 0 alloc 12 mem 346\n"
                                "UDP: inuse 0 mem 2\nUDPLITE: inuse 0\nRAW: inuse 0\n"
                                "FRAG: inuse 0 memory 0\n";
    static const char tw[] = "sockets: used 0\nTCP: inuse 0 orphan 0 tw 1 alloc 1 mem 0\n";
    static const char tw10[] = "sockets: used 0\nTCP: inuse 0 orphan 0 tw 10 alloc 1 mem 0\n";
    static const char used[] = "sockets: used 2\nTCP: inuse 0 orphan 0 tw 0 alloc 1 mem 0\n";
    static const char udp6[] = "TCP6: inuse 0\nUDP6: inuse 1\nUDPLITE6: inuse 0\n";

    (void)state;
    /* orphan, alloc and mem are global counters, not the namespace's: ignored */
    assert_true(kiln_exec__sockstat_empty(clean, strlen(clean)));
    assert_false(kiln_exec__sockstat_empty(tw, strlen(tw)));
    assert_false(kiln_exec__sockstat_empty(tw10, strlen(tw10)));
    assert_false(kiln_exec__sockstat_empty(used, strlen(used)));
    assert_false(kiln_exec__sockstat_empty(udp6, strlen(udp6)));
}

static void
test_executor_result__describe(void **state)
{
    kiln_exec_result r = {0};
    char *s;

    (void)state;
    r.exit_code = 2;
    s = kiln_exec_result_describe(&r);
    assert_string_equal(s, "exit code: 2");
    free(s);
    r.signal = SIGKILL;
    r.exit_code = 128 + SIGKILL;
    s = kiln_exec_result_describe(&r);
    assert_string_equal(s, "process was killed: signal 9 (Killed)");
    free(s);
    r.oom_killed = true;
    r.memory_limit = 64 << 20;
    s = kiln_exec_result_describe(&r);
    assert_string_equal(s, "process was killed: out of memory (memory limit 64 MiB)");
    free(s);
    r.signal = 0;
    r.exit_code = 1;
    r.memory_limit = 1536ULL << 20;
    s = kiln_exec_result_describe(&r);
    assert_string_equal(s, "exit code: 1 (a process was killed: out of memory, memory limit "
                           "1.5 GiB)");
    free(s);
}

static void
test_executor_seccomp__compiles(void **state)
{
    kiln_buf sandbox = KILN_BUF_INIT, admin = KILN_BUF_INIT;
    kiln_error *e = NULL;

    (void)state;
    must(kiln_exec_seccomp_compile(&sandbox, kiln_exec_default_caps(), &e), e);
    assert_true(sandbox.len > 100 * sizeof(struct sock_filter));
    assert_int_equal(sandbox.len % sizeof(struct sock_filter), 0);
    /* CAP_SYS_ADMIN unlocks mount/unshare/...: a different program */
    must(kiln_exec_seccomp_compile(&admin, kiln_exec_default_caps() | (1ULL << 21), &e), e);
    assert_int_equal(admin.len % sizeof(struct sock_filter), 0);
    assert_false(admin.len == sandbox.len && memcmp(admin.ptr, sandbox.ptr, admin.len) == 0);
    kiln_buf_dispose(&sandbox);
    kiln_buf_dispose(&admin);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_executor_plan__defaults),
            cmocka_unit_test(test_executor_plan__user_mounts_in_order),
            cmocka_unit_test(test_executor_plan__overlay_and_options),
            cmocka_unit_test(test_executor_plan__bad_specs),
            cmocka_unit_test(test_executor_plan__insecure),
            cmocka_unit_test(test_executor_plan__rootless),
            cmocka_unit_test_setup_teardown(test_executor_user__forms, user_setup, user_teardown),
            cmocka_unit_test_setup_teardown(test_executor_user__errors, user_setup, user_teardown),
            cmocka_unit_test_setup_teardown(test_executor_user__passwd_symlink_stays_in_root,
                                            user_setup, user_teardown),
            cmocka_unit_test(test_executor_etc__resolv_conf),
            cmocka_unit_test(test_executor_etc__hosts),
            cmocka_unit_test(test_executor_etc__extra_hosts),
            cmocka_unit_test(test_executor_result__describe),
            cmocka_unit_test(test_executor_netns__sockstat_empty),
            cmocka_unit_test(test_executor_seccomp__compiles),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
