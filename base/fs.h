/*
 * fs.h: file and descriptor helpers. Every write that must survive a crash goes through
 * kiln_fs_write_atomic (temp file in the same directory, fsync, rename, fsync of the directory).
 */
#ifndef KILN_BASE_FS_H
#define KILN_BASE_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/error.h"

/* Write all bytes, retrying on EINTR and short writes. */
int kiln_fd_write_all(int fd, const void *data, size_t len, kiln_error **err);
/* Read until EOF, appending to `out`. KILN_EINVAL when more than `max` bytes (0 = no cap). */
int kiln_fd_read_all(int fd, kiln_buf *out, size_t max, kiln_error **err);
/* Read a whole file: *out owned by caller, NUL-terminated; *len_out may be NULL.
 * KILN_ENOTFOUND when missing, KILN_EINVAL when larger than max (0 = no cap). */
int kiln_fs_read_file(char **out, size_t *len_out, const char *path, size_t max, kiln_error **err);
/* Atomically replace `path` with `data` (mode applied to the new file). */
int kiln_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         kiln_error **err);
/* mkdir -p; existing directories are fine, an existing non-directory is KILN_EEXISTS. */
int kiln_fs_mkdir_p(const char *path, mode_t mode, kiln_error **err);
/* rm -rf that never follows symlinks and never crosses into other mounts. Missing is fine. */
int kiln_fs_rm_rf(const char *path, kiln_error **err);

enum {
    KILN_COPY_PRESERVE_OWNER = 1 << 0, /* chown to the source uid/gid */
    KILN_COPY_PRESERVE_XATTRS = 1 << 1,
    KILN_COPY_HARDLINKS = 1 << 2, /* keep hardlinks between copied files */
};
/* Copy a tree (files, dirs, symlinks, fifos, devices; modes and mtimes always kept) from src to
 * dst. dst may exist (contents are merged, files overwritten). Symlinks are copied, not followed.
 */
int kiln_fs_copy_tree(const char *src, const char *dst, unsigned flags, kiln_error **err);
/* Create a fresh directory "<parent>/<prefix>XXXXXX" (parent NULL: $TMPDIR, else /tmp); *out
 * owned by caller. */
int kiln_fs_mkdtemp(char **out, const char *parent, const char *prefix, kiln_error **err);
bool kiln_fs_exists(const char *path);
bool kiln_fs_is_dir(const char *path);

#endif
