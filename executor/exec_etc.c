/*
 * exec_etc.c: the files a sandbox gets bind-mounted read-only at /etc/resolv.conf and /etc/hosts
 * (BuildKit's executor/oci resolvconf.go and hosts.go, with the op's extra hosts), and Docker's
 * default capability set.
 */
#include <arpa/inet.h>
#include <linux/capability.h>
#include <netinet/in.h>

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

/* Canonical text of an IPv4 or IPv6 address (Go's net.IP.String(), which BuildKit writes), or
 * false when `ip` is not one. */
static bool
canonical_ip(char out[INET6_ADDRSTRLEN], const char *ip)
{
    unsigned char bin[sizeof(struct in6_addr)];

    if (inet_pton(AF_INET, ip, bin) == 1)
        return inet_ntop(AF_INET, bin, out, INET6_ADDRSTRLEN) != NULL;
    if (inet_pton(AF_INET6, ip, bin) != 1)
        return false;
    /* an IPv4-mapped IPv6 address prints as plain IPv4, as in Go */
    if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)bin))
        return inet_ntop(AF_INET, bin + 12, out, INET6_ADDRSTRLEN) != NULL;
    return inet_ntop(AF_INET6, bin, out, INET6_ADDRSTRLEN) != NULL;
}

/* Generate /etc/hosts (see exec_internal.h). */
int
kiln_exec_gen_hosts(char **out, const char *hostname, const kiln_exec_host *extra, size_t n,
                    kiln_error **err)
{
    kiln_buf b = KILN_BUF_INIT;
    char ip[INET6_ADDRSTRLEN];

    kiln_buf_printf(&b, NULL,
                    "127.0.0.1\tlocalhost\n"
                    "::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "127.0.0.1\t%s\n",
                    hostname);
    for (size_t i = 0; i < n; i++) {
        const char *h = extra[i].host;
        /* one name per entry: whitespace would add names, '#' a comment, a newline a line */
        if (!h || !*h || strlen(h) > 255 || strpbrk(h, " \t\r\n#/")) {
            kiln_buf_dispose(&b);
            return kiln_error_set(err, KILN_EINVAL, "extra host %zu: bad host name `%s`", i,
                                  h ? h : "");
        }
        if (!extra[i].ip || !canonical_ip(ip, extra[i].ip)) {
            kiln_buf_dispose(&b);
            return kiln_error_set(err, KILN_EINVAL, "extra host %s: bad IP address `%s`", h,
                                  extra[i].ip ? extra[i].ip : "");
        }
        kiln_buf_printf(&b, NULL, "%s\t%s\n", ip, h);
    }
    *out = kiln_buf_detach(&b);
    return 0;
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
