/*
 * cleanup.h: scope-bound cleanup (STYLE.md B4), the crun/bubblewrap idiom.
 *
 *     cleanup_free char *buf = NULL;
 *     cleanup_close int fd = -1;
 *     ...
 *     *out = steal_pointer(&buf);
 *
 * Declare cleanup variables at the top of the function, initialised (a goto must never skip one).
 */
#ifndef KILN_BASE_CLEANUP_H
#define KILN_BASE_CLEANUP_H

#include <dirent.h>
#include <stdio.h>
#include <sys/types.h>

#include "base/error.h"

void kiln_cleanup_free(void *p);   /* p is a void ** */
void kiln_cleanup_close(int *fd);  /* closes if >= 0, preserves errno */
void kiln_cleanup_file(FILE **f);  /* fclose */
void kiln_cleanup_dir(DIR **d);    /* closedir */
void kiln_cleanup_pid(pid_t *pid); /* SIGKILL + waitpid if > 0 */
void kiln_cleanup_strv(char ***v); /* frees a NULL-terminated string array and its strings */

#define cleanup_free       __attribute__((cleanup(kiln_cleanup_free)))
#define cleanup_close      __attribute__((cleanup(kiln_cleanup_close)))
#define cleanup_file       __attribute__((cleanup(kiln_cleanup_file)))
#define cleanup_dir        __attribute__((cleanup(kiln_cleanup_dir)))
#define cleanup_pid        __attribute__((cleanup(kiln_cleanup_pid)))
#define cleanup_strv       __attribute__((cleanup(kiln_cleanup_strv)))
#define cleanup_kiln_error __attribute__((cleanup(kiln_error_free)))

/* Declare a cleanup function for a type with a `void free_fn(T *)` destructor:
 *     KILN_DEFINE_CLEANUP(kiln_buf, kiln_buf_dispose) -> `cleanup(kiln_buf)`
 * for pointer types use KILN_DEFINE_CLEANUP_PTR(kiln_thing, kiln_thing_free) ->
 * cleanup_ptr(kiln_thing) */
#define KILN_DEFINE_CLEANUP_PTR(T, fn)             \
    static inline void kiln_cleanup_ptr_##T(T **p) \
    {                                              \
        if (*p)                                    \
            fn(*p);                                \
    }
#define cleanup_ptr(T) __attribute__((cleanup(kiln_cleanup_ptr_##T)))

/* Move ownership out of a cleanup variable, leaving NULL behind (type-checked). */
#define steal_pointer(pp)                     \
    ({                                        \
        __typeof__(*(pp)) steal_tmp_ = *(pp); \
        *(pp) = NULL;                         \
        steal_tmp_;                           \
    })

/* Move ownership of a file descriptor out of a cleanup_close variable, leaving -1 behind. */
#define steal_fd(fdp)               \
    ({                              \
        int steal_fd_tmp_ = *(fdp); \
        *(fdp) = -1;                \
        steal_fd_tmp_;              \
    })

#endif
