/*
 * path.h: lexical path helpers and the safe resolver that keeps lookups inside a root.
 *
 * kiln_path_resolve_in_root() and kiln_path_open_in_root() are the only ways kiln touches a path
 * inside a rootfs or snapshot that untrusted content (an image layer, a build step, a Dockerfile)
 * could have shaped: `..` and symlinks (absolute or relative) are resolved as if `root` were `/`,
 * so a lookup can never escape it.
 */
#ifndef KILN_BASE_PATH_H
#define KILN_BASE_PATH_H

#include <stdbool.h>

#include "base/error.h"

/* Go's filepath.Clean: collapse "//", ".", ".." lexically; "" becomes "."; no trailing slash
 * except for "/". Owned by the caller. */
char *kiln_path_clean(const char *path);
/* a + "/" + b, cleaned. A leading "/" on b does not reset to root (b is taken as relative to a).
 * Owned by the caller. */
char *kiln_path_join(const char *a, const char *b);
/* Last element (Go filepath.Base) and all but the last element (filepath.Dir). Owned by caller. */
char *kiln_path_base(const char *path);
char *kiln_path_dir(const char *path);
bool kiln_path_is_abs(const char *path);
/* True when the cleaned `path` is `root` or below it (lexical check only). */
bool kiln_path_has_prefix(const char *path, const char *root);

enum {
    /* Do not follow a symlink in the last path element (lstat semantics). */
    KILN_RESOLVE_NOFOLLOW = 1 << 0,
};

/* Resolve `path` (absolute or relative: both are taken from the root) inside the directory `root`,
 * following symlinks as if `root` were "/". Missing components are allowed: the result is where the
 * path would be created. *out = root + resolved path, cleaned, owned by the caller.
 * Errors: KILN_EINVAL for a symlink loop (more than 255 links), KILN_ESYS for I/O errors.
 * Note: this is a lexical+readlink walk; for TOCTOU-free access prefer kiln_path_open_in_root. */
int kiln_path_resolve_in_root(char **out, const char *root, const char *path, unsigned flags,
                              kiln_error **err);

/* openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) relative to rootfd, with a fallback that walks
 * components with O_NOFOLLOW on kernels without openat2. Returns the fd (>= 0) or a negative code.
 */
int kiln_path_open_in_root(int rootfd, const char *path, int oflags, int mode, kiln_error **err);

#endif
