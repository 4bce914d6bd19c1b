/*
 * exec_user_fuzzer.c: the executor's parsers of image-controlled text: /etc/passwd and /etc/group
 * as read by user resolution, and the host resolv.conf filter. Input layout: the user spec, a
 * newline, the passwd text, a \x01 byte, the group text (any part may be missing).
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "base/base.h"
#include "base/path.h"
#include "executor/exec_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *root;

static void
put_file(const char *name, const char *text, size_t len)
{
    cleanup_free char *path = kiln_path_join(root, name);
    cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd >= 0 && write(fd, text, len) < 0)
        abort();
}

static void
remove_root(void)
{
    static const char *const names[] = {"etc/passwd", "etc/group", "etc", ""};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        cleanup_free char *p = kiln_path_join(root, names[i]);
        if (remove(p) < 0 && errno != ENOENT)
            fprintf(stderr, "exec_user_fuzzer: cannot remove %s\n", p);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cleanup_free char *text = xstrndup((const char *)data, size);
    cleanup_free char *resolv = NULL;
    char *passwd, *group;
    kiln_exec_ident id;
    kiln_error *e = NULL;

    if (!root) {
        char tmpl[] = "/tmp/kiln-fuzz-user-XXXXXX";
        cleanup_free char *etc = NULL;
        if (!mkdtemp(tmpl))
            abort();
        root = xstrdup(tmpl);
        etc = kiln_path_join(root, "etc");
        if (mkdir(etc, 0755) < 0)
            abort();
        atexit(remove_root);
    }
    passwd = strchr(text, '\n');
    if (passwd)
        *passwd++ = '\0';
    group = passwd ? strchr(passwd, '\x01') : NULL;
    if (group)
        *group++ = '\0';
    put_file("etc/passwd", passwd ? passwd : "", passwd ? strlen(passwd) : 0);
    put_file("etc/group", group ? group : "", group ? strlen(group) : 0);
    if (kiln_exec_resolve_user(&id, root, text, &e) == 0) {
        if (id.n_groups == 0 || !id.home)
            abort(); /* a resolved identity always has its primary group and a home */
        kiln_exec_ident_dispose(&id);
    } else if (!e || e->code != KILN_EINVAL) {
        abort(); /* bad input is KILN_EINVAL with a message, never another failure */
    }
    kiln_error_free(&e);
    resolv = kiln_exec_gen_resolv_conf(passwd ? passwd : text, false);
    if (!strstr(resolv, "nameserver"))
        abort(); /* every generated file names at least one resolver */
    return 0;
}
