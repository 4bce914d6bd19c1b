/*
 * layer.h: apply an image layer (a tar changeset, gzip/zstd/uncompressed) onto a directory.
 *
 * The stream is detected from its bytes (libarchive). Entries are created with their mode,
 * owner, mtime, xattrs, device numbers, hardlinks and symlinks (owners and devices need root).
 * Whiteouts follow the image-spec changeset rules: `<dir>/.wh.<name>` deletes `<dir>/<name>` from
 * the layers below, `<dir>/.wh..wh..opq` hides every lower child of `<dir>`, and neither hides what
 * the same layer creates, whatever the tar order. With `overlay_whiteouts` the whiteouts are
 * written the way overlayfs marks them in an upper directory instead (a 0:0 character device, and
 * the xattr trusted.overlay.opaque=y) and nothing is deleted.
 *
 * Untrusted input: every path is resolved inside `root` (symlinks as if root were "/"), and an
 * entry is refused with KILN_EINVAL when its name is absolute or has a ".." component, when a
 * parent is reached through a relative symlink climbing above the root, or when it is a hardlink
 * whose target is outside the layer root. Nothing is ever written outside `root`.
 */
#ifndef KILN_SOURCE_LAYER_H
#define KILN_SOURCE_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/digest.h"
#include "base/error.h"

typedef struct kiln_layer_opts {
    bool overlay_whiteouts; /* write overlayfs whiteouts instead of deleting */
    bool no_owner;          /* do not chown (rootless, or tests as a normal user) */
    bool no_xattrs;         /* ignore xattrs in the stream */
    uint64_t max_bytes;     /* cap on the uncompressed file data written; 0 = no cap */
} kiln_layer_opts;

typedef struct kiln_layer_stats {
    uint64_t entries;        /* tar entries processed, whiteouts included */
    uint64_t bytes;          /* file data written */
    uint64_t whiteouts;      /* whiteouts and opaque markers applied */
    kiln_sha256 blob_digest; /* sha256 of the stream as given (the descriptor digest) */
    kiln_sha256 diff_id;     /* sha256 of the uncompressed tar (the config's diff_ids) */
} kiln_layer_stats;

/* Apply the layer read from `fd` (until EOF) onto the existing directory `root`. `opts` may be NULL
 * (defaults: delete whiteouts, chown, xattrs). `stats` may be NULL; its digests are computed in
 * the same pass, over every byte of the input, for the caller to check against the manifest and
 * the image config. On error the directory may hold
 * part of the layer. Errors: KILN_EPARSE for a malformed, truncated or non-tar stream, KILN_EINVAL
 * for a hostile or invalid entry (the message names it), KILN_EUNSUPPORTED for entry types that
 * cannot be applied, KILN_ESYS for I/O errors. */
int kiln_layer_apply_fd(int fd, const char *root, const kiln_layer_opts *opts,
                        kiln_layer_stats *stats, kiln_error **err);

/* The same for a layer in memory (borrowed for the call). */
int kiln_layer_apply_mem(const void *data, size_t len, const char *root,
                         const kiln_layer_opts *opts, kiln_layer_stats *stats, kiln_error **err);

/* Check and normalise one tar entry name: "./a//b/" -> "a/b", "./" or "." -> "". KILN_EINVAL for
 * an empty, absolute or ".."-containing name. *out owned by the caller. */
int kiln_layer_clean_name(char **out, const char *name, kiln_error **err);

#endif
