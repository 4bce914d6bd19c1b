/*
 * git.c: the git source on libgit2 (see git.h).
 *
 * Layout of the cache directory: "<sha256(remote) hex>.git" is a bare mirror of one remote (its
 * branches fetched to refs/heads, its tags to refs/tags), and "<same>.lock" serialises the
 * users of that mirror (flock). Resolution uses the remote's advertisement from the fetch that
 * just happened, so a moved branch is seen at once; abbreviated commit ids are looked up in the
 * mirror's object database. libgit2 values never leave this file: git_fail translates them.
 */
#include <dirent.h>
#include <fcntl.h>
#include <git2.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "base/base.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/path.h"
#include "source/git.h"

KILN_DEFINE_CLEANUP_PTR(git_repository, git_repository_free)
KILN_DEFINE_CLEANUP_PTR(git_remote, git_remote_free)
KILN_DEFINE_CLEANUP_PTR(git_object, git_object_free)
KILN_DEFINE_CLEANUP_PTR(git_tree_entry, git_tree_entry_free)

/* libgit2 is initialised for the duration of each public call (its init is refcounted). */
typedef struct git_session {
    int inited;
} git_session;

static void
git_session_end(git_session *s)
{
    if (s->inited)
        git_libgit2_shutdown();
}
#define cleanup_git_session __attribute__((cleanup(git_session_end)))

/* The one place a libgit2 error becomes a kiln_error. */
static int git_fail(kiln_error **err, int rc, const char *fmt, ...) KILN_PRINTF(3, 4);
static int
git_fail(kiln_error **err, int rc, const char *fmt, ...)
{
    const git_error *ge = git_error_last();
    cleanup_free char *msg = NULL;
    int code;
    va_list ap;
    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    switch (rc) {
    case GIT_ENOTFOUND:
        code = KILN_ENOTFOUND;
        break;
    case GIT_EAUTH:
    case GIT_ECERTIFICATE:
        code = KILN_EAUTH;
        break;
    case GIT_EAMBIGUOUS:
    case GIT_EINVALIDSPEC:
        code = KILN_EINVAL;
        break;
    default:
        code = KILN_ESYS;
        break;
    }
    return kiln_error_set(err, code, "%s: %s", msg, ge && ge->message ? ge->message : "git error");
}

/* ---------------------------------------------------------------------------------------------
 * URLs
 */

void
kiln_git_url_dispose(kiln_git_url *u)
{
    free(u->remote);
    free(u->ref);
    free(u->subdir);
    memset(u, 0, sizeof(*u));
}

int
kiln_git_url_parse(kiln_git_url *out, const char *s, kiln_error **err)
{
    const char *hash = strchr(s, '#');
    kiln_git_url u = {0};
    memset(out, 0, sizeof(*out));
    u.remote = hash ? xstrndup(s, (size_t)(hash - s)) : xstrdup(s);
    if (!u.remote[0]) {
        kiln_git_url_dispose(&u);
        return kiln_error_set(err, KILN_EINVAL, "git url `%s`: empty remote", s);
    }
    if (hash) {
        const char *frag = hash + 1;
        const char *colon = strchr(frag, ':');
        u.ref = colon ? xstrndup(frag, (size_t)(colon - frag)) : xstrdup(frag);
        if (colon && colon[1]) {
            u.subdir = kiln_path_clean(colon + 1);
            if (u.subdir[0] == '/')
                memmove(u.subdir, u.subdir + 1, strlen(u.subdir));
        }
    }
    if (u.ref && !u.ref[0]) {
        free(u.ref);
        u.ref = NULL;
    }
    if (u.ref && u.ref[0] == '-') {
        kiln_git_url_dispose(&u);
        return kiln_error_set(err, KILN_EINVAL, "git url `%s`: invalid ref", s);
    }
    if (u.subdir && (strcmp(u.subdir, "..") == 0 || kiln_str_has_prefix(u.subdir, "../"))) {
        kiln_git_url_dispose(&u);
        return kiln_error_set(err, KILN_EINVAL, "git url `%s`: subdir leaves the repository", s);
    }
    if (u.subdir && (!u.subdir[0] || strcmp(u.subdir, ".") == 0)) {
        free(u.subdir);
        u.subdir = NULL;
    }
    *out = u;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The mirror
 */

static char *
mirror_key(const char *remote)
{
    kiln_sha256 d;
    char hex[2 * KILN_SHA256_LEN + 1];
    kiln_sha256_buf(&d, remote, strlen(remote));
    kiln_hex_encode(hex, d.bytes, KILN_SHA256_LEN);
    return xstrndup(hex, 32);
}

/* Take the per-remote lock; returns the fd holding it. */
static int
lock_mirror(const char *cache_dir, const char *key, kiln_error **err)
{
    cleanup_free char *path = xasprintf("%s/%s.lock", cache_dir, key);
    int fd;
    if (kiln_fs_mkdir_p(cache_dir, 0700, err) < 0)
        return kiln_error_wrap(err, "git cache");
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return kiln_error_errno(err, errno, "open `%s`", path);
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int saved = errno;
            close(fd);
            return kiln_error_errno(err, saved, "lock `%s`", path);
        }
    }
    return fd;
}

static int
open_mirror(git_repository **out, const char *cache_dir, const char *key, bool create,
            kiln_error **err)
{
    cleanup_free char *path = xasprintf("%s/%s.git", cache_dir, key);
    int rc = git_repository_open_bare(out, path);
    if (rc == GIT_ENOTFOUND && create)
        rc = git_repository_init(out, path, 1);
    if (rc < 0)
        return git_fail(err, rc, "open git mirror `%s`", path);
    return 0;
}

/* Fetch every branch and tag of `remote` into the mirror; *out_remote stays usable for ls. */
static int
fetch_mirror(git_remote **out_remote, git_repository *repo, const char *remote, kiln_error **err)
{
    char *specs[] = {"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"};
    git_strarray refspecs = {specs, 2};
    git_fetch_options fo = GIT_FETCH_OPTIONS_INIT;
    cleanup_ptr(git_remote) git_remote *r = NULL;
    int rc = git_remote_create_anonymous(&r, repo, remote);
    if (rc < 0)
        return git_fail(err, rc, "git remote `%s`", remote);
    fo.prune = GIT_FETCH_PRUNE;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE; /* the refspec already takes them all */
    rc = git_remote_fetch(r, &refspecs, &fo, NULL);
    if (rc < 0)
        return git_fail(err, rc, "fetch `%s`", remote);
    *out_remote = steal_pointer(&r);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Resolution
 */

static const git_remote_head *
find_head(const git_remote_head **heads, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(heads[i]->name, name) == 0)
            return heads[i];
    return NULL;
}

static bool
is_hex(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Look `ref` up in the advertisement: exact, branch, peeled tag, tag. */
static bool
advertised(git_oid *out, git_remote *r, const char *ref)
{
    const git_remote_head **heads = NULL;
    size_t n = 0;
    const char *prefixes[] = {"", "refs/heads/", "refs/tags/", "refs/tags/"};
    const char *suffixes[] = {"", "", "^{}", ""};
    if (git_remote_ls(&heads, &n, r) < 0)
        return false;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        cleanup_free char *name = NULL;
        const git_remote_head *h;
        if (i == 0 && strcmp(ref, "HEAD") != 0 && !kiln_str_has_prefix(ref, "refs/"))
            continue;
        name = xasprintf("%s%s%s", prefixes[i], ref, suffixes[i]);
        h = find_head(heads, n, name);
        if (h) {
            git_oid_cpy(out, &h->oid);
            return true;
        }
    }
    return false;
}

static int
peel_commit(char out[KILN_GIT_OID_HEXLEN + 1], git_repository *repo, const git_oid *oid,
            const char *ref, kiln_error **err)
{
    cleanup_ptr(git_object) git_object *obj = NULL;
    cleanup_ptr(git_object) git_object *commit = NULL;
    int rc = git_object_lookup(&obj, repo, oid, GIT_OBJECT_ANY);
    if (rc < 0)
        return git_fail(err, rc, "ref `%s`", ref);
    rc = git_object_peel(&commit, obj, GIT_OBJECT_COMMIT);
    if (rc < 0)
        return git_fail(err, rc, "ref `%s` is not a commit", ref);
    git_oid_tostr(out, KILN_GIT_OID_HEXLEN + 1, git_object_id(commit));
    return 0;
}

static int
resolve_in(char out[KILN_GIT_OID_HEXLEN + 1], git_repository *repo, git_remote *r,
           const char *remote, const char *ref, kiln_error **err)
{
    git_oid oid;
    const char *want = ref && *ref ? ref : "HEAD";
    if (is_hex(want, KILN_GIT_OID_HEXLEN, KILN_GIT_OID_HEXLEN)) {
        if (git_oid_fromstr(&oid, want) < 0)
            return kiln_error_set(err, KILN_EINVAL, "invalid commit id `%s`", want);
    } else if (!advertised(&oid, r, want)) {
        cleanup_ptr(git_object) git_object *obj = NULL;
        int rc;
        if (!is_hex(want, 4, KILN_GIT_OID_HEXLEN - 1))
            return kiln_error_set(err, KILN_ENOTFOUND, "ref `%s` not found in `%s`", want, remote);
        if (git_oid_fromstrn(&oid, want, strlen(want)) < 0)
            return kiln_error_set(err, KILN_EINVAL, "invalid commit id `%s`", want);
        rc = git_object_lookup_prefix(&obj, repo, &oid, strlen(want), GIT_OBJECT_ANY);
        if (rc == GIT_ENOTFOUND)
            return kiln_error_set(err, KILN_ENOTFOUND, "ref `%s` not found in `%s`", want, remote);
        if (rc < 0)
            return git_fail(err, rc, "commit `%s`", want);
        git_oid_cpy(&oid, git_object_id(obj));
    }
    return peel_commit(out, repo, &oid, want, err);
}

int
kiln_git_resolve(char commit_out[KILN_GIT_OID_HEXLEN + 1], const char *remote, const char *ref,
                 const kiln_git_opts *opts, kiln_error **err)
{
    cleanup_git_session git_session s = {git_libgit2_init() > 0};
    cleanup_free char *key = mirror_key(remote);
    cleanup_close int lock = -1;
    cleanup_ptr(git_repository) git_repository *repo = NULL;
    cleanup_ptr(git_remote) git_remote *r = NULL;
    int rc;
    if (!opts || !opts->cache_dir)
        return kiln_error_set(err, KILN_EINVAL, "git source: no cache directory");
    lock = lock_mirror(opts->cache_dir, key, err);
    if (lock < 0)
        return lock;
    rc = open_mirror(&repo, opts->cache_dir, key, true, err);
    if (rc == 0)
        rc = fetch_mirror(&r, repo, remote, err);
    if (rc == 0)
        rc = resolve_in(commit_out, repo, r, remote, ref, err);
    (void)s;
    if (rc < 0)
        return kiln_error_wrap(err, "git source `%s`", remote);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Checkout
 */

static int
ensure_empty_dir(const char *dst, kiln_error **err)
{
    cleanup_dir DIR *d = NULL;
    if (kiln_fs_mkdir_p(dst, 0755, err) < 0)
        return kiln_error_wrap(err, "checkout destination");
    d = opendir(dst);
    if (!d)
        return kiln_error_errno(err, errno, "open `%s`", dst);
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return kiln_error_set(err, KILN_EINVAL, "checkout destination `%s` is not empty", dst);
    return 0;
}

/* The tree to check out: the commit's, or its `subdir`'s. */
static int
lookup_tree(git_object **out, git_repository *repo, const char *commit, const char *subdir,
            kiln_error **err)
{
    cleanup_ptr(git_object) git_object *c = NULL;
    cleanup_ptr(git_object) git_object *tree = NULL;
    cleanup_ptr(git_tree_entry) git_tree_entry *te = NULL;
    git_oid oid;
    int rc;
    if (git_oid_fromstr(&oid, commit) < 0)
        return kiln_error_set(err, KILN_EINVAL, "invalid commit id `%s`", commit);
    rc = git_object_lookup(&c, repo, &oid, GIT_OBJECT_COMMIT);
    if (rc < 0)
        return git_fail(err, rc, "commit %s", commit);
    rc = git_object_peel(&tree, c, GIT_OBJECT_TREE);
    if (rc < 0)
        return git_fail(err, rc, "tree of %s", commit);
    if (!subdir) {
        *out = steal_pointer(&tree);
        return 0;
    }
    rc = git_tree_entry_bypath(&te, (git_tree *)tree, subdir);
    if (rc == GIT_ENOTFOUND)
        return kiln_error_set(err, KILN_ENOTFOUND, "subdir `%s` not found in %s", subdir, commit);
    if (rc < 0)
        return git_fail(err, rc, "subdir `%s`", subdir);
    if (git_tree_entry_type(te) != GIT_OBJECT_TREE)
        return kiln_error_set(err, KILN_EINVAL, "subdir `%s` of %s is not a directory", subdir,
                              commit);
    rc = git_tree_entry_to_object(out, repo, te);
    if (rc < 0)
        return git_fail(err, rc, "subdir `%s`", subdir);
    return 0;
}

static int
checkout_plain(git_repository *mirror, const char *commit, const char *subdir, const char *dst,
               kiln_error **err)
{
    cleanup_ptr(git_object) git_object *tree = NULL;
    git_checkout_options co = GIT_CHECKOUT_OPTIONS_INIT;
    int rc = lookup_tree(&tree, mirror, commit, subdir, err);
    if (rc < 0)
        return rc;
    co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
    co.target_directory = dst;
    rc = git_checkout_tree(mirror, tree, &co);
    if (rc < 0)
        return git_fail(err, rc, "check out %s into `%s`", commit, dst);
    return 0;
}

/* A real repository in dst: cloned from the mirror, HEAD detached at the commit, origin = remote.
 */
static int
checkout_with_git_dir(const char *mirror_path, const char *remote, const char *commit,
                      const char *dst, kiln_error **err)
{
    cleanup_ptr(git_repository) git_repository *repo = NULL;
    git_clone_options clo = GIT_CLONE_OPTIONS_INIT;
    git_checkout_options co = GIT_CHECKOUT_OPTIONS_INIT;
    git_oid oid;
    int rc;
    clo.checkout_opts.checkout_strategy = GIT_CHECKOUT_NONE;
    rc = git_clone(&repo, mirror_path, dst, &clo);
    if (rc < 0)
        return git_fail(err, rc, "clone into `%s`", dst);
    if (git_oid_fromstr(&oid, commit) < 0)
        return kiln_error_set(err, KILN_EINVAL, "invalid commit id `%s`", commit);
    rc = git_repository_set_head_detached(repo, &oid);
    if (rc < 0)
        return git_fail(err, rc, "detach HEAD at %s", commit);
    co.checkout_strategy = GIT_CHECKOUT_FORCE;
    rc = git_checkout_head(repo, &co);
    if (rc < 0)
        return git_fail(err, rc, "check out %s", commit);
    rc = git_remote_set_url(repo, "origin", remote);
    if (rc < 0)
        return git_fail(err, rc, "set origin of `%s`", dst);
    return 0;
}

int
kiln_git_checkout(const char *remote, const char *commit, const char *subdir, const char *dst,
                  const kiln_git_opts *opts, kiln_error **err)
{
    cleanup_git_session git_session s = {git_libgit2_init() > 0};
    cleanup_free char *key = mirror_key(remote);
    cleanup_free char *mirror_path = NULL;
    cleanup_close int lock = -1;
    cleanup_ptr(git_repository) git_repository *repo = NULL;
    int rc;
    (void)s;
    if (!opts || !opts->cache_dir)
        return kiln_error_set(err, KILN_EINVAL, "git source: no cache directory");
    rc = ensure_empty_dir(dst, err);
    if (rc < 0)
        return rc;
    lock = lock_mirror(opts->cache_dir, key, err);
    if (lock < 0)
        return lock;
    mirror_path = xasprintf("%s/%s.git", opts->cache_dir, key);
    rc = open_mirror(&repo, opts->cache_dir, key, false, err);
    if (rc == 0 && opts->keep_git_dir && !subdir) {
        cleanup_ptr(git_object) git_object *tree = NULL;
        rc = lookup_tree(&tree, repo, commit, NULL, err); /* clear error for a missing commit */
        if (rc == 0)
            rc = checkout_with_git_dir(mirror_path, remote, commit, dst, err);
    } else if (rc == 0) {
        rc = checkout_plain(repo, commit, subdir, dst, err);
    }
    if (rc < 0)
        return kiln_error_wrap(err, "git source `%s`", remote);
    return 0;
}

int
kiln_git_fetch_checkout(char commit_out[KILN_GIT_OID_HEXLEN + 1], const char *url, const char *dst,
                        const kiln_git_opts *opts, kiln_error **err)
{
    kiln_git_url u;
    char commit[KILN_GIT_OID_HEXLEN + 1];
    int rc = kiln_git_url_parse(&u, url, err);
    if (rc < 0)
        return rc;
    rc = kiln_git_resolve(commit, u.remote, u.ref, opts, err);
    if (rc == 0)
        rc = kiln_git_checkout(u.remote, commit, u.subdir, dst, opts, err);
    if (rc == 0 && commit_out)
        memcpy(commit_out, commit, sizeof(commit));
    kiln_git_url_dispose(&u);
    return rc;
}
