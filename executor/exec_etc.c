/*
 * exec_etc.c: the files a sandbox gets bind-mounted read-only at /etc/resolv.conf and /etc/hosts
 * (BuildKit's executor/oci resolvconf.go and hosts.go), and Docker's default capability set.
 */
#include <linux/capability.h>

#include "base/base.h"
#include "base/buf.h"
#include "executor/exec_internal.h"

/* A loopback nameserver (127.0.0.0/8 or ::1) only answers in the host's network namespace. */
static bool
is_loopback_ns(const char *addr, size_t len)
{
    return (len >= 4 && strncmp(addr, "127.", 4) == 0) ||
           (len == 3 && strncmp(addr, "::1", 3) == 0);
}

/* Generate resolv.conf (see exec_internal.h). Owned by the caller. */
char *
kiln_exec_gen_resolv_conf(const char *host_resolv, bool host_network)
{
    kiln_buf out = KILN_BUF_INIT;
    const char *p = host_resolv ? host_resolv : "";
    bool have_ns = false;

    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *a = p + strlen("nameserver");
        bool keep = true;

        if (len > strlen("nameserver") && strncmp(p, "nameserver", 10) == 0 &&
            (*a == ' ' || *a == '\t')) {
            size_t alen;
            while (*a == ' ' || *a == '\t')
                a++;
            alen = strcspn(a, " \t\n#");
            keep = host_network || !is_loopback_ns(a, alen);
            have_ns = have_ns || keep;
        }
        if (keep) {
            kiln_buf_put(&out, p, len, NULL);
            kiln_buf_putc(&out, '\n', NULL);
        }
        p += len + (eol ? 1 : 0);
    }
    if (!have_ns)
        kiln_buf_puts(&out, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n", NULL);
    return kiln_buf_detach(&out);
}

/* Generate /etc/hosts for `hostname`. Owned by the caller. */
char *
kiln_exec_gen_hosts(const char *hostname)
{
    return xasprintf("127.0.0.1\tlocalhost\n"
                     "::1\tlocalhost ip6-localhost ip6-loopback\n"
                     "127.0.0.1\t%s\n",
                     hostname);
}

/* Docker's (and containerd's defaultUnixCaps) 14 default capabilities. */
uint64_t
kiln_exec_default_caps(void)
{
    static const int caps[] = {
            CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
            CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
            CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
            CAP_KILL,    CAP_AUDIT_WRITE,
    };
    uint64_t mask = 0;

    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        mask |= (uint64_t)1 << caps[i];
    return mask;
}
