/*
 * cleanup.c: the functions behind the cleanup_* attributes of cleanup.h. Each is NULL/-1 safe and
 * preserves errno, so a cleanup running on an error path never changes what is reported.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"

void
kiln_cleanup_free(void *p)
{
    void **pp = p;
    int saved = errno;

    free(*pp);
    *pp = NULL;
    errno = saved;
}

void
kiln_cleanup_close(int *fd)
{
    int saved = errno;

    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    errno = saved;
}

void
kiln_cleanup_file(FILE **f)
{
    int saved = errno;

    if (*f)
        fclose(*f);
    *f = NULL;
    errno = saved;
}

void
kiln_cleanup_dir(DIR **d)
{
    int saved = errno;

    if (*d)
        closedir(*d);
    *d = NULL;
    errno = saved;
}

void
kiln_cleanup_pid(pid_t *pid)
{
    int saved = errno;

    if (*pid > 0) {
        kill(*pid, SIGKILL);
        while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    *pid = 0;
    errno = saved;
}

void
kiln_cleanup_strv(char ***v)
{
    int saved = errno;

    if (*v) {
        for (char **p = *v; *p; p++)
            free(*p);
        free(*v);
    }
    *v = NULL;
    errno = saved;
}
