/*
 * exec_netns.c: a pool of empty network namespaces for `network none` steps.
 *
 * A fresh network namespace costs ~0.5 ms to create and more to destroy (the kernel tears it down
 * in a worker after an RCU grace period), a tenth of a whole sandboxed step. Like BuildKit, which
 * pools its CNI namespaces, kiln keeps the namespaces of finished steps and hands each to one
 * later step at a time: the sandbox's pid 1 joins it with setns() instead of unsharing a new one.
 *
 * Reuse must not let a step see or disturb another. A namespace is given back only when:
 *   - the step ran as root and sandboxed: without CAP_NET_ADMIN it cannot add interfaces, routes,
 *     addresses or firewall rules, and /proc/sys and /sys are read-only, so the namespace still
 *     has only `lo`, up, with the default configuration (an insecure step, or a rootless one whose
 *     namespace belongs to its own user namespace, always gets a fresh one that is not kept);
 *   - its pid 1 found, after the step exited, no process left in the sandbox and no socket of any
 *     kind in the namespace (/proc/net/sockstat and sockstat6: `used`, every `inuse` and the TCP
 *     TIME_WAIT count all 0), so no connection, listener or lingering port binding carries over.
 * What carries over is only the loopback's packet counters.
 */
#include <fcntl.h>
#include <pthread.h>

#include "base/base.h"
#include "executor/exec_internal.h"

#define POOL_MAX 8

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static int pool[POOL_MAX];
static size_t pool_len;

/* Take a pooled namespace (see exec_internal.h). */
int
kiln_exec_netns_take(void)
{
    int fd = -1;

    pthread_mutex_lock(&pool_lock);
    if (pool_len)
        fd = pool[--pool_len];
    pthread_mutex_unlock(&pool_lock);
    return fd;
}

/* Give one back (see exec_internal.h). */
void
kiln_exec_netns_give(int fd)
{
    if (fd < 0)
        return;
    pthread_mutex_lock(&pool_lock);
    if (pool_len < POOL_MAX) {
        pool[pool_len++] = fd;
        fd = -1;
    }
    pthread_mutex_unlock(&pool_lock);
    if (fd >= 0)
        close(fd);
}

/* Open the network namespace of process `pid` (O_CLOEXEC), or -1. */
int
kiln_exec_netns_open(pid_t pid)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* Whether a sockstat text shows no socket: every "used N", "inuse N" and "tw N" is 0. Pure: no
 * libc call that could touch errno (it runs in the sandbox's pid 1 after the release). */
bool
kiln_exec__sockstat_empty(const char *text, size_t len)
{
    static const char *const keys[] = {"used ", "inuse ", "tw "};

    for (size_t i = 0; i < len; i++) {
        if (i > 0 && text[i - 1] != ' ')
            continue;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            size_t kl = strlen(keys[k]);
            if (i + kl >= len || memcmp(text + i, keys[k], kl) != 0)
                continue;
            if (text[i + kl] != '0' ||
                (i + kl + 1 < len && text[i + kl + 1] >= '0' && text[i + kl + 1] <= '9'))
                return false;
        }
    }
    return true;
}
