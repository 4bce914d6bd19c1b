/*
 * test_source_git.c: the git source (source/git.h) against a repository made here with the git
 * CLI: a bare repository reached by path, and the same served by `git daemon` on a free loopback
 * port. Skips (77) when git or git-daemon is not installed.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/path.h"
#include "source/git.h"

#define GIT_DAEMON "/usr/lib/git-core/git-daemon"

typedef struct world {
    char *top;
    char *work;
    char *bare;
    char *cache;
    char c_one[41];     /* first commit on main (tagged v1 annotated, light lightweight) */
    char c_feature[41]; /* tip of feature */
    char c_main[41];    /* tip of main */
} world;

static world W;

static void sh(const char *fmt, ...) KILN_PRINTF(1, 2);
static void
sh(const char *fmt, ...)
{
    va_list ap;
    cleanup_free char *cmd = NULL;
    va_start(ap, fmt);
    cmd = xvasprintf(fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

static void
rev_parse(char out[41], const char *repo, const char *rev)
{
    cleanup_free char *cmd = xasprintf("git -C '%s' rev-parse '%s'", repo, rev);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, 41, p));
    pclose(p);
    assert_int_equal(strlen(out), 40);
}

/* Content of dir/rel, or NULL when missing; owned by the caller. */
static char *
read_in(const char *dir, const char *rel)
{
    cleanup_free char *path = kiln_path_join(dir, rel);
    char *out = NULL;
    kiln_error *err = NULL;
    if (kiln_fs_read_file(&out, NULL, path, 0, &err) < 0) {
        kiln_error_free(&err);
        return NULL;
    }
    return out;
}

static bool
exists_in(const char *dir, const char *rel)
{
    cleanup_free char *path = kiln_path_join(dir, rel);
    struct stat st;
    return lstat(path, &st) == 0;
}

static char *
tmpdir(const char *name)
{
    char *p = NULL;
    kiln_error *err = NULL;
    cleanup_free char *parent = kiln_path_join(W.top, "out");
    assert_int_equal(kiln_fs_mkdir_p(parent, 0755, &err), 0);
    p = kiln_path_join(parent, name);
    return p;
}

static int
setup_world(void **state)
{
    kiln_error *err = NULL;
    (void)state;
    assert_int_equal(kiln_fs_mkdtemp(&W.top, "/tmp", "kiln-git-test-", &err), 0);
    W.work = kiln_path_join(W.top, "work");
    W.bare = kiln_path_join(W.top, "repo.git");
    W.cache = kiln_path_join(W.top, "cache");
    sh("set -e; export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t "
       "GIT_COMMITTER_EMAIL=t@e; git init -q -b main '%s'; cd '%s'; echo one > a.txt; "
       "mkdir -p docs/sub; echo doc > docs/readme.md; echo deep > docs/sub/x; "
       "ln -s a.txt link; chmod 755 docs/sub/x; git add -A; git commit -q -m one; "
       "git tag -a v1 -m v1; git tag light; git checkout -q -b feature; echo two > b.txt; "
       "git add -A; git commit -q -m two; git checkout -q main; echo three > a.txt; "
       "git commit -q -am three; git clone -q --bare . '%s'",
       W.work, W.work, W.bare);
    rev_parse(W.c_one, W.work, "v1^{commit}");
    rev_parse(W.c_feature, W.work, "feature");
    rev_parse(W.c_main, W.work, "main");
    return 0;
}

static int
teardown_world(void **state)
{
    kiln_error *err = NULL;
    (void)state;
    assert_int_equal(kiln_fs_rm_rf(W.top, &err), 0);
    free(W.top);
    free(W.work);
    free(W.bare);
    free(W.cache);
    return 0;
}

static void
expect_resolve(const char *remote, const char *ref, const char *want)
{
    kiln_git_opts opts = {.cache_dir = W.cache};
    char got[41];
    kiln_error *err = NULL;
    if (kiln_git_resolve(got, remote, ref, &opts, &err) < 0)
        fail_msg("resolve %s: %s", ref ? ref : "(HEAD)", err->msg);
    assert_string_equal(got, want);
}

static void
test_source_git__url_parse(void **state)
{
    kiln_git_url u;
    kiln_error *err = NULL;
    (void)state;
    assert_int_equal(kiln_git_url_parse(&u, "https://h/r.git#v1.2:docs/./sub/", &err), 0);
    assert_string_equal(u.remote, "https://h/r.git");
    assert_string_equal(u.ref, "v1.2");
    assert_string_equal(u.subdir, "docs/sub");
    kiln_git_url_dispose(&u);
    assert_int_equal(kiln_git_url_parse(&u, "git://h/r#:sub", &err), 0);
    assert_null(u.ref);
    assert_string_equal(u.subdir, "sub");
    kiln_git_url_dispose(&u);
    assert_int_equal(kiln_git_url_parse(&u, "/srv/repo.git", &err), 0);
    assert_null(u.ref);
    assert_null(u.subdir);
    kiln_git_url_dispose(&u);
    assert_int_equal(kiln_git_url_parse(&u, "r#--upload-pack=evil", &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(kiln_git_url_parse(&u, "r#main:../up", &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(kiln_git_url_parse(&u, "#main", &err), KILN_EINVAL);
    kiln_error_free(&err);
}

static void
test_source_git__resolve_refs(void **state)
{
    char shortid[8];
    kiln_git_opts opts = {.cache_dir = W.cache};
    char got[41];
    kiln_error *err = NULL;
    (void)state;
    expect_resolve(W.bare, NULL, W.c_main);
    expect_resolve(W.bare, "main", W.c_main);
    expect_resolve(W.bare, "feature", W.c_feature);
    expect_resolve(W.bare, "refs/heads/feature", W.c_feature);
    expect_resolve(W.bare, "v1", W.c_one); /* annotated tag, peeled */
    expect_resolve(W.bare, "light", W.c_one);
    expect_resolve(W.bare, W.c_feature, W.c_feature);
    memcpy(shortid, W.c_one, 7);
    shortid[7] = '\0';
    expect_resolve(W.bare, shortid, W.c_one);
    assert_int_equal(kiln_git_resolve(got, W.bare, "no-such-branch", &opts, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err->msg, "no-such-branch"));
    kiln_error_free(&err);
    assert_int_equal(kiln_git_resolve(got, "/nonexistent/repo.git", NULL, &opts, &err), KILN_ESYS);
    assert_non_null(strstr(err->msg, "/nonexistent/repo.git"));
    kiln_error_free(&err);
}

static void
test_source_git__branch_moves(void **state)
{
    char newtip[41];
    (void)state;
    expect_resolve(W.bare, "main", W.c_main);
    sh("set -e; cd '%s'; export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t "
       "GIT_COMMITTER_EMAIL=t@e; echo four > c.txt; git add -A; git commit -q -m four; "
       "git push -q '%s' main",
       W.work, W.bare);
    rev_parse(newtip, W.work, "main");
    expect_resolve(W.bare, "main", newtip);
    memcpy(W.c_main, newtip, sizeof(newtip));
}

static void
test_source_git__checkout(void **state)
{
    kiln_git_opts opts = {.cache_dir = W.cache};
    cleanup_free char *dst = tmpdir("plain");
    cleanup_free char *a = NULL;
    cleanup_free char *link = kiln_path_join(dst, "link");
    cleanup_free char *x = kiln_path_join(dst, "docs/sub/x");
    cleanup_free char *url = xasprintf("%s#feature", W.bare);
    char commit[41];
    char target[16] = {0};
    struct stat st;
    kiln_error *err = NULL;
    (void)state;
    if (kiln_git_fetch_checkout(commit, url, dst, &opts, &err) < 0)
        fail_msg("checkout: %s", err->msg);
    assert_string_equal(commit, W.c_feature);
    a = read_in(dst, "a.txt");
    assert_non_null(a);
    assert_string_equal(a, "one\n");
    assert_true(exists_in(dst, "b.txt"));
    assert_int_equal(readlink(link, target, sizeof(target) - 1), 5);
    assert_string_equal(target, "a.txt");
    assert_int_equal(stat(x, &st), 0);
    assert_true(st.st_mode & S_IXUSR);
    assert_false(exists_in(dst, ".git"));
    /* the destination must be empty */
    assert_int_equal(kiln_git_fetch_checkout(NULL, url, dst, &opts, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "not empty"));
    kiln_error_free(&err);
}

static void
test_source_git__subdir(void **state)
{
    kiln_git_opts opts = {.cache_dir = W.cache, .keep_git_dir = true};
    cleanup_free char *dst = tmpdir("subdir");
    cleanup_free char *dst2 = tmpdir("subdir-missing");
    cleanup_free char *dst3 = tmpdir("subdir-file");
    cleanup_free char *url = xasprintf("%s#v1:docs", W.bare);
    cleanup_free char *missing = xasprintf("%s#v1:nope", W.bare);
    cleanup_free char *file = xasprintf("%s#v1:a.txt", W.bare);
    cleanup_free char *readme = NULL;
    kiln_error *err = NULL;
    (void)state;
    if (kiln_git_fetch_checkout(NULL, url, dst, &opts, &err) < 0)
        fail_msg("checkout subdir: %s", err->msg);
    readme = read_in(dst, "readme.md");
    assert_non_null(readme);
    assert_string_equal(readme, "doc\n");
    assert_true(exists_in(dst, "sub/x"));
    assert_false(exists_in(dst, "a.txt"));
    assert_false(exists_in(dst, ".git")); /* no .git for a subdirectory */
    assert_int_equal(kiln_git_fetch_checkout(NULL, missing, dst2, &opts, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err->msg, "nope"));
    kiln_error_free(&err);
    assert_int_equal(kiln_git_fetch_checkout(NULL, file, dst3, &opts, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "not a directory"));
    kiln_error_free(&err);
}

static void
test_source_git__keep_git_dir(void **state)
{
    kiln_git_opts opts = {.cache_dir = W.cache, .keep_git_dir = true};
    cleanup_free char *dst = tmpdir("keep");
    cleanup_free char *url = xasprintf("%s#v1", W.bare);
    cleanup_free char *a = NULL;
    char head[41];
    char commit[41];
    kiln_error *err = NULL;
    (void)state;
    if (kiln_git_fetch_checkout(commit, url, dst, &opts, &err) < 0)
        fail_msg("checkout keep-git-dir: %s", err->msg);
    assert_string_equal(commit, W.c_one);
    assert_true(exists_in(dst, ".git/HEAD"));
    rev_parse(head, dst, "HEAD");
    assert_string_equal(head, W.c_one);
    a = read_in(dst, "a.txt");
    assert_string_equal(a, "one\n");
    assert_false(exists_in(dst, "b.txt"));
    sh("test \"$(git -C '%s' remote get-url origin)\" = '%s'", dst, W.bare);
    sh("test -z \"$(git -C '%s' status --porcelain)\"", dst);
}

/* A free loopback port: bind port 0, read it back, close. */
static int
free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static bool
port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void
test_source_git__git_daemon(void **state)
{
    kiln_git_opts opts = {.cache_dir = W.cache};
    cleanup_free char *dst = tmpdir("daemon");
    cleanup_free char *url = NULL;
    cleanup_free char *b = NULL;
    cleanup_free char *portarg = NULL;
    cleanup_free char *basearg = xasprintf("--base-path=%s", W.top);
    char commit[41];
    kiln_error *err = NULL;
    int port = free_port();
    pid_t pid;
    int status;
    (void)state;
    if (access(GIT_DAEMON, X_OK) != 0) {
        skip();
        return;
    }
    portarg = xasprintf("--port=%d", port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* quiet: the readiness probe below makes it log a hung-up connection */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, STDERR_FILENO);
        /* through `git` so the daemon finds its per-connection helpers on git's exec path */
        execlp("git", "git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", portarg,
               basearg, W.top, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !port_open(port); i++)
        usleep(50 * 1000);
    url = xasprintf("git://127.0.0.1:%d/repo.git#feature", port);
    if (kiln_git_fetch_checkout(commit, url, dst, &opts, &err) < 0) {
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
        fail_msg("git daemon checkout: %s", err->msg);
    }
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_string_equal(commit, W.c_feature);
    b = read_in(dst, "b.txt");
    assert_non_null(b);
    assert_string_equal(b, "two\n");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_source_git__url_parse),
            cmocka_unit_test(test_source_git__resolve_refs),
            cmocka_unit_test(test_source_git__checkout),
            cmocka_unit_test(test_source_git__subdir),
            cmocka_unit_test(test_source_git__keep_git_dir),
            cmocka_unit_test(test_source_git__branch_moves),
            cmocka_unit_test(test_source_git__git_daemon),
    };
    if (system("git --version >/dev/null 2>&1") != 0) {
        printf("skipped: git is not installed\n");
        return 77;
    }
    return cmocka_run_group_tests_name("source_git", tests, setup_world, teardown_world);
}
