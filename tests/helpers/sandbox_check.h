/*
 * sandbox_check.h: the one environment condition under which kiln's sandbox cannot run and a
 * test skips instead of failing: a chroot whose root directory is not a mount point (there the
 * sandbox cannot make "/" private without leaking mounts to the host; runc and bubblewrap refuse
 * too). Everything else a sandbox test needs is installed by scripts/deps.sh.
 */
#ifndef KILN_TESTS_HELPERS_SANDBOX_CHECK_H
#define KILN_TESTS_HELPERS_SANDBOX_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NULL when the sandbox can run here, else the reason to print with the skip. */
static inline const char *
kiln_test_sandbox_unavailable(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    int root_is_mount = 0;

    if (!f)
        return "cannot read /proc/self/mountinfo";
    while (!root_is_mount && fgets(line, sizeof(line), f)) {
        /* fields: id parent major:minor root mountpoint ... */
        char mnt[4096];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 && strcmp(mnt, "/") == 0)
            root_is_mount = 1;
    }
    fclose(f);
    return root_is_mount ? NULL
                         : "/ is not a mount point (a chroot): kiln's sandbox, like runc and "
                           "bubblewrap, needs the root directory to be a mount";
}

/* Exit 77 (skip) with the reason when the sandbox cannot run, unless KILN_TEST_MUST_WORK is set. */
static inline void
kiln_test_require_sandbox(void)
{
    const char *why = kiln_test_sandbox_unavailable();

    if (!why)
        return;
    printf("skip: %s\n", why);
    exit(getenv("KILN_TEST_MUST_WORK") ? 1 : 77);
}

#endif
