/*
 * try-syscall.c: a static helper copied into test sandboxes (bubblewrap's tests/try-syscall.c
 * idea). For each name on the command line it makes that system call with harmless arguments and
 * prints "<name>=<errno name>" ("<name>=0" on success), so a test can check what the sandbox's
 * seccomp filter and capability set allow. Exit status: 0, or 2 for an unknown name.
 *
 * The arguments are chosen so that an allowed call fails harmlessly (ENOENT, EINVAL) or only
 * affects this process: the helper must be safe to run as root on a host by mistake.
 */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "base/base.h"

#ifndef AF_ALG
#define AF_ALG 38
#endif

/* Run the call; return 0 or the errno it failed with. */
static int
try_one(const char *name)
{
    struct {
        unsigned int handle_bytes;
        int handle_type;
        unsigned char f_handle[8];
    } fh = {8, 1, {0}};
    long r;

    errno = 0;
    if (strcmp(name, "mount") == 0)
        r = syscall(SYS_mount, "none", "/nonexistent-kiln-try-syscall", "tmpfs", 0L, NULL);
    else if (strcmp(name, "unshare") == 0)
        r = syscall(SYS_unshare, CLONE_NEWNS);
    else if (strcmp(name, "keyctl") == 0)
        r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
    else if (strcmp(name, "kexec_load") == 0)
        r = syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0xffff0000UL); /* bad flags: EINVAL */
    else if (strcmp(name, "open_by_handle_at") == 0)
        r = syscall(SYS_open_by_handle_at, AT_FDCWD, &fh, O_RDONLY);
    else if (strcmp(name, "chroot") == 0)
        r = syscall(SYS_chroot, "/nonexistent-kiln-try-syscall");
    else if (strcmp(name, "setns") == 0)
        r = syscall(SYS_setns, -1, 0);
    else if (strcmp(name, "socket_alg") == 0)
        r = syscall(SYS_socket, AF_ALG, SOCK_SEQPACKET, 0);
    else if (strcmp(name, "socket_inet") == 0)
        r = syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
    else if (strcmp(name, "clone3") == 0)
        r = syscall(SYS_clone3, NULL, 0UL);
    else if (strcmp(name, "clone_newns") == 0)
        r = syscall(SYS_clone, (long)(CLONE_NEWNS | SIGCHLD), 0L, 0L, 0L, 0L);
    else if (strcmp(name, "getpid") == 0)
        r = syscall(SYS_getpid);
    else
        return -1;
    if (r == 0 && strcmp(name, "clone_newns") == 0)
        _exit(0); /* the clone child */
    if (r > 0 && strcmp(name, "clone_newns") == 0)
        waitpid((pid_t)r, NULL, 0);
    return r < 0 ? errno : 0;
}

int
main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int e = try_one(argv[i]);
        if (e < 0) {
            fprintf(stderr, "try-syscall: unknown call `%s`\n", argv[i]);
            return 2;
        }
        printf("%s=%s\n", argv[i], e ? strerrorname_np(e) : "0");
    }
    return 0;
}
