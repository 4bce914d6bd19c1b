/*
 * git.h: the git source (libgit2). A remote (local path, file://, git://, http://, https://) is
 * fetched into a bare mirror kept in a shared cache directory, one per URL; a ref (branch, tag,
 * full or abbreviated commit, or the remote's HEAD) is resolved to a commit; its tree, or a
 * subdirectory of it, is checked out into a directory, optionally with a .git directory.
 * Submodules are not checked out.
 *
 * Thread safety: concurrent calls on the same cache directory are serialised per URL with a lock
 * file; different URLs proceed in parallel.
 */
#ifndef KILN_SOURCE_GIT_H
#define KILN_SOURCE_GIT_H

#include <stdbool.h>

#include "base/error.h"

#define KILN_GIT_OID_HEXLEN 40

/* A git source reference as BuildKit writes it: "<remote>[#<ref>[:<subdir>]]". */
typedef struct kiln_git_url {
    char *remote; /* the URL or path, without the fragment; owned */
    char *ref;    /* NULL for the remote's default branch; owned */
    char *subdir; /* NULL for the whole tree; cleaned, relative; owned */
} kiln_git_url;

/* Split "url#ref:subdir". Errors: KILN_EINVAL for an empty remote, a ref starting with '-', or a
 * subdir that leaves the tree (".."). *out is disposed with kiln_git_url_dispose. */
int kiln_git_url_parse(kiln_git_url *out, const char *s, kiln_error **err);
void kiln_git_url_dispose(kiln_git_url *u);

typedef struct kiln_git_opts {
    const char *cache_dir; /* holds the bare mirrors; created if missing (required) */
    bool keep_git_dir;     /* leave a .git (detached at the commit, origin = remote) in dst */
} kiln_git_opts;

/* Fetch `remote` into its mirror and resolve `ref` (NULL or "" = the remote's HEAD) to a commit:
 * exact refs ("refs/..."), then branches, then tags (annotated tags peeled), then a full or
 * abbreviated (at least 4 hex digits) commit id present in the fetched history.
 * commit_out receives 40 lowercase hex digits and a NUL.
 * Errors: KILN_ENOTFOUND when the ref does not exist, KILN_EINVAL for an ambiguous abbreviation,
 * KILN_ESYS / KILN_EAUTH for fetch failures (libgit2's message included). */
int kiln_git_resolve(char commit_out[KILN_GIT_OID_HEXLEN + 1], const char *remote, const char *ref,
                     const kiln_git_opts *opts, kiln_error **err);

/* Check out `commit` (40 hex, from kiln_git_resolve) of `remote`'s mirror into `dst` (created if
 * missing; must be empty). With `subdir`, only that directory's content is written, at the top
 * of dst, and no .git is kept. Errors: KILN_ENOTFOUND for a missing commit or subdir, KILN_EINVAL
 * when subdir is not a directory or dst is not empty, KILN_ESYS on I/O errors. */
int kiln_git_checkout(const char *remote, const char *commit, const char *subdir, const char *dst,
                      const kiln_git_opts *opts, kiln_error **err);

/* kiln_git_url_parse + kiln_git_resolve + kiln_git_checkout for "url#ref:subdir".
 * commit_out may be NULL. */
int kiln_git_fetch_checkout(char commit_out[KILN_GIT_OID_HEXLEN + 1], const char *url,
                            const char *dst, const kiln_git_opts *opts, kiln_error **err);

#endif
