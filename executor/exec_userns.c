/*
 * exec_userns.c: the user namespace of a rootless sandbox, mapped from the parent.
 *
 * Container root is the caller's uid/gid; container ids 1..N are the caller's subordinate range
 * from /etc/subuid and /etc/subgid, written by the setuid helpers newuidmap/newgidmap (Debian's
 * uidmap), as rootlesskit and podman do. Without a subordinate range only root is mapped, which
 * an unprivileged process may write itself once setgroups is denied; steps then run as root only.
 */
#include <fcntl.h>
#include <pwd.h>
#include <sys/wait.h>

#define KILN_LOG_DOMAIN "executor"
#include "base/base.h"
#include "executor/exec_internal.h"

/* Find "<user>:<start>:<count>" (user by name or number) in an /etc/sub[ug]id file. */
static bool
find_subid_range(const char *file, const char *name, unsigned long id, unsigned long *start,
                 unsigned long *count)
{
    cleanup_file FILE *f = fopen(file, "re");
    char line[512];

    while (f && fgets(line, sizeof(line), f)) {
        char *save = NULL;
        char *who = strtok_r(line, ":\n", &save);
        char *s = strtok_r(NULL, ":\n", &save);
        char *c = strtok_r(NULL, ":\n", &save);
        int64_t sv, cv, idv;
        bool match;

        if (!who || !s || !c || kiln_parse_i64(s, &sv, "start", NULL) < 0 ||
            kiln_parse_i64(c, &cv, "count", NULL) < 0 || sv < 0 || cv <= 0)
            continue;
        match = (name && strcmp(who, name) == 0) ||
                (kiln_parse_i64(who, &idv, "id", NULL) == 0 && idv == (int64_t)id);
        if (match) {
            *start = (unsigned long)sv;
            *count = (unsigned long)cv;
            return true;
        }
    }
    return false;
}

static int
run_helper(const char *helper, pid_t pid, unsigned long id, unsigned long start,
           unsigned long count, kiln_error **err)
{
    char a_pid[32], a_id[32], a_start[32], a_count[32];
    char *argv[] = {(char *)helper, a_pid, "0", a_id, "1", "1", a_start, a_count, NULL};
    int status;
    pid_t child;

    snprintf(a_pid, sizeof(a_pid), "%d", (int)pid);
    snprintf(a_id, sizeof(a_id), "%lu", id);
    snprintf(a_start, sizeof(a_start), "%lu", start);
    snprintf(a_count, sizeof(a_count), "%lu", count);
    child = fork();
    if (child < 0)
        return kiln_error_errno(err, errno, "fork %s", helper);
    if (child == 0) {
        execv(helper, argv);
        _exit(127);
    }
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return kiln_error_errno(err, errno, "wait for %s", helper);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return kiln_error_set(err, KILN_ESYS, "%s %s 0 %s 1 1 %s %s failed (status 0x%x)", helper,
                              a_pid, a_id, a_start, a_count, (unsigned)status);
    return 0;
}

static int
write_proc(pid_t pid, const char *file, const char *text, kiln_error **err)
{
    char path[64];
    cleanup_close int fd = -1;
    size_t len = strlen(text);

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        return kiln_error_errno(err, errno, "write %s", path);
    return 0;
}

/* Map the user namespace of `pid` (see exec_internal.h). */
int
kiln_exec_userns_map(pid_t pid, kiln_error **err)
{
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    const char *name = NULL;
    unsigned long us = 0, uc = 0, gs = 0, gc = 0;
    uid_t uid = getuid();
    gid_t gid = getgid();
    char text[64];
    int ret;

    if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
        name = res->pw_name;
    if (find_subid_range("/etc/subuid", name, uid, &us, &uc) &&
        find_subid_range("/etc/subgid", name, uid, &gs, &gc)) {
        ret = run_helper("/usr/bin/newuidmap", pid, uid, us, uc, err);
        if (ret == 0)
            ret = run_helper("/usr/bin/newgidmap", pid, gid, gs, gc, err);
        return ret < 0 ? kiln_error_wrap(err, "map user namespace") : 0;
    }
    kiln_log_debug("no subordinate ids for uid %u: mapping root only", (unsigned)uid);
    snprintf(text, sizeof(text), "0 %u 1\n", (unsigned)uid);
    ret = write_proc(pid, "uid_map", text, err);
    if (ret == 0)
        ret = write_proc(pid, "setgroups", "deny", err);
    snprintf(text, sizeof(text), "0 %u 1\n", (unsigned)gid);
    if (ret == 0)
        ret = write_proc(pid, "gid_map", text, err);
    return ret < 0 ? kiln_error_wrap(err, "map user namespace") : 0;
}
