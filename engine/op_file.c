/*
 * op_file.c: FileOps. The actions of one FileOp form a chain (BuildKit's client builds them so):
 * the first works on an op input (or scratch), each later one on the result of the previous
 * action ("len(inputs) + action index"), and the last result is the op's output. So they all run
 * on one writable snapshot on top of the first action's input, committed at the end.
 *
 * Every path is resolved inside the snapshot (base/path.h: `..` and symlinks as if the snapshot
 * were "/"), copy sources inside a read-only view of their input. Supported: mkdir, mkfile, rm
 * (wildcards in the last element), symlink, copy (wildcards in the last element, dirCopyContents,
 * createDestPath, followSymlink, include/exclude patterns for directories, mode, owner by id or
 * by name from the destination's /etc/passwd and /etc/group, timestamp), and ADD's archive rule
 * (attemptUnpackDockerCompatibility: tar, tar.gz and tar.zst files are extracted, with the layer
 * applier's path safety). Symbolic modes (modeStr) and bzip2/xz archives are not supported yet.
 * A plain COPY of a directory (the op's last action, one source, no owner, mode or time to set)
 * hardlinks the source snapshot's files into the new layer instead of copying them (link_target).
 *
 * Cache map: an input only read by copies is keyed by the content of the copied paths (the
 * newline-joined sources are its selector), so a COPY whose files did not change stays cached.
 */
#define KILN_LOG_DOMAIN "engine"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/fs.h"
#include "base/path.h"
#include "base/vec.h"
#include "engine/engine_internal.h"
#include "source/context.h"
#include "source/ignore.h"
#include "source/layer.h"

#include "base/base.h"

typedef struct file_run {
    kiln_engine *e;
    const Pb__FileOp *f;
    size_t n_inputs;
    kiln_solver_result *const *inputs;
    engine_rw w;
    bool last; /* running the op's last action: nothing reads the tree through overlay after it */
} file_run;

/* ---- owners, modes, times ------------------------------------------------------------------- */

/* Look `name` up in the passwd-style file `file` of the tree: field 3 (index 2) is the id. */
static int
lookup_id(int64_t *out, const char *root, const char *file, const char *name, kiln_error **err)
{
    cleanup_free char *path = NULL;
    cleanup_free char *data = NULL;
    char *save = NULL;
    int ret;

    ret = kiln_path_resolve_in_root(&path, root, file, 0, err);
    if (ret == 0)
        ret = kiln_fs_read_file(&data, NULL, path, 16u << 20, err);
    if (ret < 0)
        return kiln_error_wrap(err, "look up `%s`", name);
    for (char *l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *f0 = l, *f2 = NULL, *c = strchr(l, ':');
        if (!c)
            continue;
        *c = 0;
        if (strcmp(f0, name) != 0)
            continue;
        f2 = strchr(c + 1, ':');
        if (!f2)
            break;
        *strchrnul(f2 + 1, ':') = 0;
        return kiln_parse_i64(f2 + 1, out, name, err);
    }
    return kiln_error_set(err, KILN_ENOTFOUND, "no entry for `%s` in %s", name, file);
}

static int
user_id(int64_t *out, const Pb__UserOpt *u, const char *root, const char *file, kiln_error **err)
{
    *out = -1;
    if (!u)
        return 0;
    if (u->user_case == PB__USER_OPT__USER_BY_ID) {
        *out = u->byid;
        return 0;
    }
    if (u->user_case == PB__USER_OPT__USER_BY_NAME && u->byname)
        return lookup_id(out, root, file, u->byname->name, err);
    return 0;
}

typedef struct meta_apply {
    int64_t uid, gid; /* -1 = keep */
    int32_t mode;     /* -1 = keep */
    int64_t ts;       /* -1 = keep; Unix ns */
} meta_apply;

static int
meta_init(meta_apply *m, const Pb__ChownOpt *own, int32_t mode, int64_t ts, const char *root,
          kiln_error **err)
{
    int ret;

    m->mode = mode;
    m->ts = ts;
    m->uid = m->gid = -1;
    if (!own)
        return 0;
    ret = user_id(&m->uid, own->user, root, "/etc/passwd", err);
    if (ret == 0)
        ret = user_id(&m->gid, own->group, root, "/etc/group", err);
    /* BuildKit: a user without group gets gid = uid */
    if (ret == 0 && m->gid < 0 && m->uid >= 0)
        m->gid = m->uid;
    return ret;
}

static int
meta_apply_path(const meta_apply *m, const char *path, kiln_error **err)
{
    struct stat st;

    if ((m->uid >= 0 || m->gid >= 0) && lchown(path, m->uid >= 0 ? (uid_t)m->uid : (uid_t)-1,
                                               m->gid >= 0 ? (gid_t)m->gid : (gid_t)-1) < 0)
        return kiln_error_errno(err, errno, "chown `%s`", path);
    if (m->mode >= 0 && lstat(path, &st) == 0 && !S_ISLNK(st.st_mode) &&
        chmod(path, (mode_t)m->mode & 07777) < 0)
        return kiln_error_errno(err, errno, "chmod `%s`", path);
    if (m->ts >= 0) {
        struct timespec t[2] = {{m->ts / 1000000000, m->ts % 1000000000},
                                {m->ts / 1000000000, m->ts % 1000000000}};
        if (utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW) < 0)
            return kiln_error_errno(err, errno, "set times of `%s`", path);
    }
    return 0;
}

/* mkdir -p `full` where the directories it creates (not existing ones) get m's owner and
 * timestamp, as fsutil's MkdirAll does for BuildKit's mkdir and copy (COPY --chown to a new
 * directory makes that directory the user's). */
static int
mkdir_p_owned(const char *full, const meta_apply *m, kiln_error **err)
{
    cleanup_free char *first = NULL;
    meta_apply own = *m;
    int ret;

    own.mode = -1;
    /* the top-most missing directory */
    char *p = xstrdup(full);
    while (strcmp(p, "/") != 0 && !kiln_fs_exists(p)) {
        free(first);
        first = p;
        p = kiln_path_dir(first);
    }
    free(p);
    ret = kiln_fs_mkdir_p(full, 0755, err);
    if (ret < 0 || !first || (own.uid < 0 && own.gid < 0 && own.ts < 0))
        return ret;
    /* apply to `first` and every directory below it on the way to `full` */
    for (size_t n = strlen(first);;) {
        cleanup_free char *dir = xstrndup(full, n);
        const char *next;
        ret = meta_apply_path(&own, dir, err);
        if (ret < 0 || full[n] == 0)
            return ret;
        next = strchr(full + n + 1, '/');
        n = next ? (size_t)(next - full) : strlen(full);
    }
}

/* ---- mkdir, mkfile, rm, symlink ------------------------------------------------------------- */

static int
do_mkdir(file_run *r, const Pb__FileActionMkDir *a, kiln_error **err)
{
    cleanup_free char *full = NULL;
    meta_apply m;
    int ret;

    ret = kiln_path_resolve_in_root(&full, r->w.path, a->path, 0, err);
    if (ret == 0)
        ret = meta_init(&m, a->owner, a->mode, a->timestamp, r->w.path, err);
    if (ret < 0)
        return ret;
    if (a->makeparents) {
        ret = mkdir_p_owned(full, &m, err);
    } else if (mkdir(full, 0755) < 0 && errno != EEXIST) {
        ret = kiln_error_errno(err, errno, "mkdir `%s`", a->path);
    }
    if (ret == 0 && !kiln_fs_is_dir(full))
        ret = kiln_error_set(err, KILN_EEXISTS, "`%s` exists and is not a directory", a->path);
    if (ret == 0)
        ret = meta_apply_path(&m, full, err);
    return ret;
}

static int
do_mkfile(file_run *r, const Pb__FileActionMkFile *a, kiln_error **err)
{
    cleanup_free char *full = NULL;
    cleanup_close int fd = -1;
    meta_apply m;
    int ret;

    ret = kiln_path_resolve_in_root(&full, r->w.path, a->path, KILN_RESOLVE_NOFOLLOW, err);
    if (ret == 0)
        ret = meta_init(&m, a->owner, a->mode, a->timestamp, r->w.path, err);
    if (ret < 0)
        return ret;
    fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return kiln_error_errno(err, errno, "create `%s`", a->path);
    ret = kiln_fd_write_all(fd, a->data.data, a->data.len, err);
    if (ret == 0 && m.mode < 0)
        m.mode = 0644;
    if (ret == 0)
        ret = meta_apply_path(&m, full, err);
    return ret;
}

static int
rm_one(const char *full, const char *shown, bool allow_not_found, kiln_error **err)
{
    struct stat st;

    if (lstat(full, &st) < 0) {
        if (errno == ENOENT && allow_not_found)
            return 0;
        if (errno == ENOENT)
            return kiln_error_set(err, KILN_ENOTFOUND, "rm `%s`: not found", shown);
        return kiln_error_errno(err, errno, "stat `%s`", shown);
    }
    return kiln_fs_rm_rf(full, err);
}

static int
do_rm(file_run *r, const Pb__FileActionRm *a, kiln_error **err)
{
    cleanup_free char *full = NULL;
    kiln_vec matches = KILN_VEC_INIT;
    char *m;
    int ret;

    if (a->allowwildcard && engine_has_glob(a->path)) {
        ret = engine_glob_in_root(&matches, r->w.path, a->path, err);
        kiln_vec_foreach(&matches, i, m) {
            if (ret == 0)
                ret = rm_one(m, a->path, true, err);
        }
        if (ret == 0 && matches.len == 0 && !a->allownotfound)
            ret = kiln_error_set(err, KILN_ENOTFOUND, "rm `%s`: no match", a->path);
        kiln_strvec_dispose(&matches);
        return ret;
    }
    ret = kiln_path_resolve_in_root(&full, r->w.path, a->path, KILN_RESOLVE_NOFOLLOW, err);
    if (ret < 0)
        return ret;
    if (strcmp(full, r->w.path) == 0)
        return kiln_error_set(err, KILN_EINVAL, "rm `%s`: cannot remove the root", a->path);
    return rm_one(full, a->path, a->allownotfound, err);
}

static int
do_symlink(file_run *r, const Pb__FileActionSymlink *a, kiln_error **err)
{
    cleanup_free char *full = NULL;
    meta_apply m;
    int ret;

    ret = kiln_path_resolve_in_root(&full, r->w.path, a->newpath, KILN_RESOLVE_NOFOLLOW, err);
    if (ret == 0)
        ret = meta_init(&m, a->owner, -1, a->timestamp, r->w.path, err);
    if (ret < 0)
        return ret;
    if (symlink(a->oldpath, full) < 0)
        return kiln_error_errno(err, errno, "symlink `%s`", a->newpath);
    return meta_apply_path(&m, full, err);
}

/* ---- copy ----------------------------------------------------------------------------------- */

static int
pattern_matcher(kiln_ignore **out, char **pats, size_t n, kiln_error **err)
{
    *out = NULL;
    if (n == 0)
        return 0;
    return kiln_ignore_new(out, (const char *const *)pats, n, err);
}

static int
meta_apply_list(const meta_apply *m, const char *target, const kiln_ctx_list *l, kiln_error **err)
{
    int ret = 0;

    if (m->uid < 0 && m->gid < 0 && m->mode < 0 && m->ts < 0)
        return 0;
    for (size_t i = 0; i < l->len && ret == 0; i++) {
        cleanup_free char *p = kiln_path_join(target, l->entries[i].path);
        ret = meta_apply_path(m, p, err);
    }
    return ret;
}

typedef struct copy_job {
    const Pb__FileActionCopy *a;
    meta_apply m;
    const char *root; /* destination tree */
    char *dest;       /* destination, cleaned, snapshot-absolute; owned */
    bool dest_is_dir; /* sources go below dest */
    /* files may be hardlinked from the source instead of copied (see link_target) */
    const char *upper; /* the writable snapshot's upper dir, or NULL */
    bool src_linkable; /* the source view is a plain directory on the upper's file system */
} copy_job;

/* Where a directory copy may hardlink its files instead of copying them: both snapshots are
 * immutable once committed, so a plain COPY (no --chown, --chmod or timestamp, which would change
 * the shared inodes) of a directory from a single-directory source view links each file into the
 * destination's upper dir, written there directly (overlay's own copy-up of the destination dir is
 * forced first through the merged tree), which is what the copy through overlay would have left
 * there. Returns the upper-dir path of `target` (owned), or NULL to copy. */
static char *
link_target(const copy_job *j, const char *target)
{
    const char *rel;
    struct stat st;

    if (!j->upper || !j->src_linkable || j->m.uid >= 0 || j->m.gid >= 0 || j->m.mode >= 0 ||
        j->m.ts >= 0 || !kiln_str_has_prefix(target, j->root))
        return NULL;
    rel = target + strlen(j->root);
    if (*rel && *rel != '/')
        return NULL;
    if (strcmp(j->root, j->upper) == 0) /* the tree is the upper dir itself (no overlay) */
        return xstrdup(target);
    /* a no-op chown through overlay copies the directory (and its parents) up */
    if (lstat(target, &st) < 0 || !S_ISDIR(st.st_mode) || lchown(target, st.st_uid, st.st_gid) < 0)
        return NULL;
    return xasprintf("%s%s", j->upper, rel);
}

/* Copy directory src to target (contents: into target itself), with the include/exclude
 * patterns of the action. */
static int
copy_dir(const copy_job *j, const char *src, const char *target, bool contents,
         const Pb__FileActionCopy *a, const meta_apply *m, kiln_error **err)
{
    cleanup_free char *linked = NULL;
    kiln_ignore *inc = NULL, *exc = NULL;
    kiln_ctx_list *l = NULL;
    kiln_ctx_opts o = {0};
    struct stat st;
    int ret;

    ret = pattern_matcher(&inc, a->include_patterns, a->n_include_patterns, err);
    if (ret == 0)
        ret = pattern_matcher(&exc, a->exclude_patterns, a->n_exclude_patterns, err);
    o.include = inc;
    o.exclude = exc;
    if (ret == 0)
        ret = kiln_ctx_walk(&l, src, &o, err);
    if (ret == 0 && lstat(src, &st) < 0)
        ret = kiln_error_errno(err, errno, "stat `%s`", src);
    if (ret == 0 && contents)
        ret = kiln_fs_mkdir_p(target, 0755, err);
    if (ret == 0 && !contents) {
        if (mkdir(target, st.st_mode & 07777) < 0 && errno != EEXIST)
            ret = kiln_error_errno(err, errno, "mkdir `%s`", target);
        else if (lchown(target, st.st_uid, st.st_gid) < 0)
            ret = kiln_error_errno(err, errno, "chown `%s`", target);
        if (ret == 0)
            ret = meta_apply_path(m, target, err);
    }
    if (ret == 0)
        linked = link_target(j, target);
    if (ret == 0)
        ret = kiln_ctx_copy(l, src, linked ? linked : target,
                            (m->uid < 0 && m->gid < 0 ? KILN_CTX_COPY_OWNER : 0) |
                                    KILN_CTX_COPY_XATTRS | KILN_CTX_COPY_HARDLINKS |
                                    (linked ? KILN_CTX_COPY_LINK : 0),
                            err);
    if (ret == 0)
        ret = meta_apply_list(m, target, l, err);
    kiln_ctx_list_free(l);
    kiln_ignore_free(inc);
    kiln_ignore_free(exc);
    return ret;
}

/* ADD's archive rule: a regular file that is a tar (plain, gzip or zstd; found by its magic
 * bytes) is extracted into the destination directory instead of copied. */
static bool
is_archive(const char *path)
{
    cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    unsigned char b[512];
    ssize_t n;

    if (fd < 0)
        return false;
    n = pread(fd, b, sizeof(b), 0);
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        return true;
    if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd)
        return true;
    return n >= 262 && memcmp(b + 257, "ustar", 5) == 0;
}

static int
unpack_one(copy_job *j, const char *src, kiln_error **err)
{
    cleanup_free char *target = NULL;
    cleanup_close int fd = -1;
    int ret;

    ret = kiln_path_resolve_in_root(&target, j->root, j->dest, 0, err);
    if (ret == 0)
        ret = kiln_fs_mkdir_p(target, 0755, err);
    if (ret < 0)
        return ret;
    fd = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", src);
    ret = kiln_layer_apply_fd(fd, target, NULL, NULL, err);
    if (ret < 0)
        return kiln_error_wrap(err, "unpack into `%s`", j->dest);
    return 0;
}

/* Copy source `src` (a host path in the source view) named `base` (its name in the request,
 * not the name a followed symlink resolved to). */
static int
copy_one(copy_job *j, const char *src, const char *base, kiln_error **err)
{
    cleanup_free char *rel = j->dest_is_dir ? kiln_path_join(j->dest, base) : xstrdup(j->dest);
    cleanup_free char *target = NULL;
    cleanup_free char *parent = NULL;
    struct stat st, tst;
    bool contents;
    int ret;

    if (lstat(src, &st) < 0)
        return kiln_error_errno(err, errno, "stat `%s`", src);
    if (j->a->attemptunpackdockercompatibility && S_ISREG(st.st_mode) && is_archive(src))
        return unpack_one(j, src, err);
    contents = S_ISDIR(st.st_mode) && j->a->dircopycontents;
    ret = kiln_path_resolve_in_root(&target, j->root, contents ? j->dest : rel,
                                    contents ? 0 : KILN_RESOLVE_NOFOLLOW, err);
    if (ret < 0)
        return ret;
    parent = kiln_path_dir(target);
    if (j->a->createdestpath)
        ret = mkdir_p_owned(contents ? target : parent, &j->m, err);
    else if (!kiln_fs_is_dir(parent))
        ret = kiln_error_set(err, KILN_ENOTFOUND, "copy to `%s`: parent directory missing", rel);
    if (ret < 0)
        return ret;
    /* never write through a symlink left at the target, nor a file onto a directory */
    if (!contents && lstat(target, &tst) == 0 && !S_ISDIR(tst.st_mode) && unlink(target) < 0)
        return kiln_error_errno(err, errno, "replace `%s`", rel);
    if (S_ISDIR(st.st_mode))
        return copy_dir(j, src, target, contents, j->a, &j->m, err);
    if (lstat(target, &tst) == 0 && S_ISDIR(tst.st_mode))
        return kiln_error_set(err, KILN_EEXISTS, "copy to `%s`: a directory is in the way", rel);
    ret = kiln_fs_copy_tree(src, target,
                            (j->m.uid < 0 && j->m.gid < 0 ? KILN_COPY_PRESERVE_OWNER : 0) |
                                    KILN_COPY_PRESERVE_XATTRS,
                            err);
    if (ret == 0)
        ret = meta_apply_path(&j->m, target, err);
    return ret;
}

static int
copy_sources(kiln_vec *out, const char *root, const Pb__FileActionCopy *a, kiln_error **err)
{
    cleanup_free char *full = NULL;
    struct stat st;
    int ret;

    if (a->allowwildcard && engine_has_glob(a->src)) {
        ret = engine_glob_in_root(out, root, a->src, err);
        if (ret == 0 && out->len == 0 && !a->allowemptywildcard)
            return kiln_error_set(err, KILN_ENOTFOUND, "copy source `%s`: no match", a->src);
        return ret;
    }
    ret = kiln_path_resolve_in_root(&full, root, a->src,
                                    a->followsymlink ? 0 : KILN_RESOLVE_NOFOLLOW, err);
    if (ret < 0)
        return ret;
    if (lstat(full, &st) < 0)
        return kiln_error_set(err, KILN_ENOTFOUND, "copy source `%s`: not found", a->src);
    kiln_strvec_push(out, full);
    return 0;
}

/* Allow copy_dir to link files (link_target) when the source and the upper dir share a file
 * system. j->upper is owned by the caller afterwards (freed with the job). */
static void
link_setup(copy_job *j, const file_run *r, const char *src_root)
{
    kiln_cache_mounts m = {0};
    kiln_error *tmp = NULL;
    struct stat a, b;

    if (kiln_cache_snapshot_mounts(&m, r->e->cache, r->w.id, &tmp) == 0 && m.upper &&
        stat(m.upper, &a) == 0 && stat(src_root, &b) == 0 && a.st_dev == b.st_dev) {
        j->upper = xstrdup(m.upper);
        j->src_linkable = true;
    }
    kiln_error_free(&tmp);
    kiln_cache_mounts_dispose(&m);
}

static int
do_copy(file_run *r, const Pb__FileAction *fa, kiln_error **err)
{
    const Pb__FileActionCopy *a = fa->copy;
    copy_job j = {.a = a, .root = r->w.path};
    cleanup_free char *dfull = NULL;
    kiln_vec srcs = KILN_VEC_INIT;
    engine_view view = {0};
    bool glob = a->allowwildcard && engine_has_glob(a->src);
    char *s;
    int ret;

    if (a->modestr && *a->modestr)
        return kiln_error_set(err, KILN_EUNSUPPORTED,
                              "copy `%s`: symbolic modes are not supported yet", a->src);
    if (fa->secondaryinput >= (int64_t)r->n_inputs || fa->secondaryinput < -1)
        return kiln_error_set(err, KILN_EUNSUPPORTED,
                              "copy `%s`: sources from earlier actions are not supported yet",
                              a->src);
    ret = meta_init(&j.m, a->owner, a->mode, a->timestamp, r->w.path, err);
    if (ret == 0)
        ret = engine_view_open(&view, r->e,
                               fa->secondaryinput < 0 ? NULL : r->inputs[fa->secondaryinput]->id,
                               err);
    if (ret == 0)
        ret = copy_sources(&srcs, view.path, a, err);
    j.dest = kiln_path_join("/", a->dest);
    if (ret == 0)
        ret = kiln_path_resolve_in_root(&dfull, r->w.path, j.dest, 0, err);
    j.dest_is_dir =
            kiln_str_has_suffix(a->dest, "/") || srcs.len > 1 || (dfull && kiln_fs_is_dir(dfull));
    if (ret == 0 && r->last && srcs.len == 1 && !view.mounted && !view.temp)
        link_setup(&j, r, view.path);
    kiln_vec_foreach(&srcs, i, s) {
        cleanup_free char *base = kiln_path_base(glob ? s : a->src);
        if (ret == 0)
            ret = copy_one(&j, s, base, err);
    }
    kiln_strvec_dispose(&srcs);
    engine_view_close(&view);
    free(j.dest);
    free((char *)j.upper);
    return ret;
}

/* ---- the op --------------------------------------------------------------------------------- */

static int
run_action(file_run *r, const Pb__FileAction *a, kiln_error **err)
{
    if (a->action_case == PB__FILE_ACTION__ACTION_MKDIR)
        return do_mkdir(r, a->mkdir, err);
    if (a->action_case == PB__FILE_ACTION__ACTION_MKFILE)
        return do_mkfile(r, a->mkfile, err);
    if (a->action_case == PB__FILE_ACTION__ACTION_RM)
        return do_rm(r, a->rm, err);
    if (a->action_case == PB__FILE_ACTION__ACTION_SYMLINK)
        return do_symlink(r, a->symlink, err);
    if (a->action_case == PB__FILE_ACTION__ACTION_COPY)
        return do_copy(r, a, err);
    return kiln_error_set(err, KILN_EINVAL, "file action without a kind");
}

/* Check the chain shape and return the snapshot the first action works on ("" = scratch). */
static int
chain_base(const char **out, const Pb__FileOp *f, size_t n_inputs,
           kiln_solver_result *const *inputs, kiln_error **err)
{
    if (f->n_actions == 0)
        return kiln_error_set(err, KILN_EINVAL, "file op without actions");
    for (size_t i = 1; i < f->n_actions; i++) {
        if (f->actions[i]->input != (int64_t)(n_inputs + i - 1))
            return kiln_error_set(err, KILN_EUNSUPPORTED,
                                  "file action %zu does not work on the previous action's "
                                  "result (not supported yet)",
                                  i);
    }
    if (f->actions[0]->input >= (int64_t)n_inputs || f->actions[0]->input < -1)
        return kiln_error_set(err, KILN_EINVAL, "file action 0: bad input %" PRId64,
                              f->actions[0]->input);
    *out = f->actions[0]->input < 0 ? "" : inputs[f->actions[0]->input]->id;
    return 0;
}

int
engine_file_exec(kiln_solver_result **out, const engine_op *eop, kiln_solver_result *const *inputs,
                 kiln_error **err)
{
    file_run r = {
            .e = eop->engine, .f = eop->op->file, .n_inputs = eop->op->n_inputs, .inputs = inputs};
    const char *base = NULL;
    int ret;

    ret = chain_base(&base, r.f, r.n_inputs, inputs, err);
    if (ret == 0)
        ret = engine_rw_open(&r.w, r.e, base, err);
    for (size_t i = 0; ret == 0 && i < r.f->n_actions; i++) {
        r.last = i + 1 == r.f->n_actions;
        ret = run_action(&r, r.f->actions[i], err);
        if (ret < 0)
            kiln_error_wrap(err, "file action %zu", i);
    }
    if (ret == 0)
        ret = engine_rw_commit(out, &r.w, r.e, err);
    engine_rw_abort(&r.w, r.e);
    return ret;
}

int
engine_file_selectors(kiln_cache_map *cm, const engine_op *eop, kiln_error **err)
{
    const Pb__FileOp *f = eop->op->file;
    kiln_buf *sel = xcalloc(cm->ndeps ? cm->ndeps : 1, sizeof(*sel));
    bool *whole = xcalloc(cm->ndeps ? cm->ndeps : 1, sizeof(*whole));

    (void)err;
    for (size_t i = 0; i < f->n_actions; i++) {
        const Pb__FileAction *a = f->actions[i];
        if (a->input >= 0 && (size_t)a->input < cm->ndeps)
            whole[a->input] = true;
        if (a->action_case == PB__FILE_ACTION__ACTION_COPY && a->secondaryinput >= 0 &&
            (size_t)a->secondaryinput < cm->ndeps) {
            kiln_buf *b = &sel[a->secondaryinput];
            cleanup_free char *p = kiln_path_join("/", a->copy->src);
            kiln_buf_printf(b, NULL, "%s%s", b->len ? "\n" : "", p);
        }
    }
    for (size_t i = 0; i < cm->ndeps; i++) {
        if (!whole[i] && sel[i].len) {
            cm->deps[i].selector = kiln_buf_detach(&sel[i]);
            cm->deps[i].content = true;
        }
        kiln_buf_dispose(&sel[i]);
    }
    free(sel);
    free(whole);
    return 0;
}
